//! [`GrantAccess`]: how the runtime's own backends (console, xenstore, block,
//! net — the runtime acts as dom0) use frontends' grants.
//!
//! A backend either maps a grant for a while — [`GrantMapping<Ro>`] or
//! [`GrantMapping<Rw>`], the rights in the type — or copies in or out of it
//! once ([`GrantAccess::copy_from_grant`], [`GrantAccess::copy_to_grant`],
//! which pin only for the copy, like `GNTTABOP_copy`). A mapping is a device
//! mapping held by the runtime (domid 0): the grant is pinned (`GTF_reading`
//! / `GTF_writing` set, Note [Grant pinning]) and the frame holds a general
//! reference, plus a writable type reference for `Rw`, so it can be neither
//! reassigned nor made a page table while mapped (Note [Grant references]).
//!
//! Access to the bytes goes through `MachineMemory`'s bounds-checked copy
//! APIs; no Rust reference into guest memory is ever made (the guest may
//! write the page concurrently). A mapping is released at once with
//! [`GrantAccess::unmap_grant`]. Dropping it unreleased releases it too, but
//! deferred (mod-level Note [Deferred release]): the drop queues its
//! handle, and the unmap happens at the start of the next [`GrantAccess`]
//! operation or `grant_table_op` hypercall, or in [`super::reap`] — so
//! within the current run-loop pass at the latest. Until then the grant
//! stays pinned.
//!
//! ```
//! use guest_abi::abi::GrantRef;
//! use hv_runtime::gnttab::{GrantAccess, testing::{TEST_PAGES, World}, RUNTIME_DOMID};
//!
//! let mut w = World::new(1, TEST_PAGES).unwrap();
//! let d = w.doms[0];
//! let frame = w.spare_frames(d)[0];
//! w.grant(d, GrantRef(9), RUNTIME_DOMID, frame, false);
//! let m = w.hv.map_grant_rw(d, GrantRef(9)).unwrap();
//! m.write(&w.hv.mem, 100, b"hello").unwrap();
//! let mut back = [0u8; 5];
//! m.read(&w.hv.mem, 100, &mut back).unwrap();
//! assert_eq!(&back, b"hello");
//! assert!(m.write(&w.hv.mem, 4093, b"toolong").is_err());
//! w.hv.unmap_grant(m);
//!
//! // Dropping a mapping releases it at the next grant operation or pass.
//! let m = w.hv.map_grant_ro(d, GrantRef(9)).unwrap();
//! drop(m);
//! hv_runtime::gnttab::reap(&mut w.hv);
//! assert!(w.hv.gnttab.table(d).unwrap().active(GrantRef(9)).is_none());
//! ```

use guest_abi::abi::GrantRef;
use std::marker::PhantomData;

use guest_abi::abi::gnttab::{GNTMAP_DEVICE_MAP, GNTMAP_READONLY};
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn, PAGE_SIZE};

use super::RUNTIME_DOMID;
use super::copy::CopyError;
use super::map::MapGrantError;
use super::table::{MaptrackHandle, ReleaseQueue};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// Read-only access right.
#[derive(Debug, Clone, Copy)]
pub struct Ro;
/// Read-write access right.
#[derive(Debug, Clone, Copy)]
pub struct Rw;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Ro {}
    impl Sealed for super::Rw {}
}

/// An access right ([`Ro`] or [`Rw`]).
pub trait Right: sealed::Sealed {
    /// Whether the right is read-only.
    const READONLY: bool;
}
impl Right for Ro {
    const READONLY: bool = true;
}
impl Right for Rw {
    const READONLY: bool = false;
}

/// A byte range outside the granted page.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("access of {len} bytes at offset {offset} passes the end of the granted page")]
pub struct GrantIoError {
    /// Offset asked for.
    pub offset: usize,
    /// Length asked for.
    pub len: usize,
}

/// A frontend's grant, mapped by the runtime with right `R`.
///
/// Released by [`GrantAccess::unmap_grant`], or — deferred to the next
/// grant operation or run-loop pass — by dropping it (module docs).
#[derive(Debug)]
#[must_use = "dropping a mapping releases it (at the next grant operation); bind it while the page is in use"]
pub struct GrantMapping<R: Right> {
    granter: DomId,
    gref: GrantRef,
    frame: Mfn,
    handle: MaptrackHandle,
    released: bool,
    queue: ReleaseQueue,
    _right: PhantomData<R>,
}

impl<R: Right> GrantMapping<R> {
    /// The granting domain.
    #[must_use]
    pub fn granter(&self) -> DomId {
        self.granter
    }

    /// The grant ref.
    #[must_use]
    pub fn gref(&self) -> u32 {
        self.gref.0
    }

    /// The runtime maptrack handle and its generation.
    #[must_use]
    pub fn handle(&self) -> MaptrackHandle {
        self.handle
    }

    fn at(&self, offset: usize, len: usize) -> Result<MachineAddr, GrantIoError> {
        let err = GrantIoError { offset, len };
        let end = offset.checked_add(len).ok_or(err)?;
        if end as u64 > PAGE_SIZE {
            return Err(err);
        }
        Ok(MachineAddr(self.frame.addr().0 + offset as u64))
    }

    /// Copy `buf.len()` bytes from the page at `offset`.
    ///
    /// # Errors
    /// The range passes the end of the page.
    pub fn read(
        &self,
        mem: &MachineMemory,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), GrantIoError> {
        let at = self.at(offset, buf.len())?;
        mem.read(at, buf).map_err(|_| GrantIoError {
            offset,
            len: buf.len(),
        })
    }

    /// Read a plain-old-data value at `offset`.
    ///
    /// # Errors
    /// The value passes the end of the page.
    pub fn read_obj<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        mem: &MachineMemory,
        offset: usize,
    ) -> Result<T, GrantIoError> {
        let mut v = T::new_zeroed();
        self.read(mem, offset, v.as_mut_bytes())?;
        Ok(v)
    }
}

impl GrantMapping<Rw> {
    /// Copy `buf` into the page at `offset`.
    ///
    /// # Errors
    /// The range passes the end of the page.
    pub fn write(
        &self,
        mem: &MachineMemory,
        offset: usize,
        buf: &[u8],
    ) -> Result<(), GrantIoError> {
        let at = self.at(offset, buf.len())?;
        mem.write(at, buf).map_err(|_| GrantIoError {
            offset,
            len: buf.len(),
        })
    }
}

impl<R: Right> Drop for GrantMapping<R> {
    /// Queue the mapping for release (Note [Deferred release]); nothing if
    /// `unmap_grant` already released it.
    fn drop(&mut self) {
        if !self.released {
            self.released = true;
            tracing::trace!(
                granter = %self.granter,
                gref = %self.gref,
                handle = ?self.handle,
                "grant mapping dropped; release deferred"
            );
            self.queue.push(self.handle);
        }
    }
}

/// The runtime's access to frontends' grants (see the module docs).
pub trait GrantAccess {
    /// Map `gref` of `granter` read-only.
    ///
    /// # Errors
    /// As `GNTTABOP_map_grant_ref` ([`MapGrantError::status`]).
    fn map_grant_ro(
        &mut self,
        granter: DomId,
        gref: GrantRef,
    ) -> Result<GrantMapping<Ro>, MapGrantError>;

    /// Map `gref` of `granter` read-write.
    ///
    /// # Errors
    /// As `GNTTABOP_map_grant_ref`; a read-only grant is refused.
    fn map_grant_rw(
        &mut self,
        granter: DomId,
        gref: GrantRef,
    ) -> Result<GrantMapping<Rw>, MapGrantError>;

    /// Release a mapping now (pins dropped, `GTF_reading` / `GTF_writing`
    /// cleared when the last pin goes). A mapping made by another
    /// hypervisor is not this one's to release: it is dropped instead,
    /// which queues it on its own hypervisor.
    fn unmap_grant<R: Right>(&mut self, m: GrantMapping<R>);

    /// Copy from `gref` of `granter` at `offset` into `buf`.
    ///
    /// # Errors
    /// As `GNTTABOP_copy` ([`CopyError::status`]).
    fn copy_from_grant(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        offset: u16,
        buf: &mut [u8],
    ) -> Result<(), CopyError>;

    /// Copy `buf` into `gref` of `granter` at `offset`.
    ///
    /// # Errors
    /// As `GNTTABOP_copy`.
    fn copy_to_grant(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        offset: u16,
        buf: &[u8],
    ) -> Result<(), CopyError>;
}

fn map<R: Right>(
    hv: &mut Hypervisor,
    granter: DomId,
    gref: GrantRef,
) -> Result<GrantMapping<R>, MapGrantError> {
    let flags = GNTMAP_DEVICE_MAP | if R::READONLY { GNTMAP_READONLY } else { 0 };
    let m = super::map::map_grant_ref(&mut hv.gnt(), RUNTIME_DOMID, 0, 0, flags, gref, granter)?;
    let generation = hv
        .gnttab
        .table(RUNTIME_DOMID)
        .and_then(|t| t.generation(m.handle))
        .unwrap_or(u64::MAX);
    Ok(GrantMapping {
        granter,
        gref,
        frame: Mfn(m.dev_bus_addr >> 12),
        handle: MaptrackHandle {
            handle: m.handle,
            generation,
        },
        released: false,
        queue: hv.gnttab.releases.clone(),
        _right: PhantomData,
    })
}

/// Pin `gref` for one copy, run `f` on the frame's machine address, unpin.
fn with_grant(
    hv: &mut Hypervisor,
    granter: DomId,
    gref: GrantRef,
    offset: u16,
    len: usize,
    writable: bool,
    f: impl FnOnce(&MachineMemory, MachineAddr) -> bool,
) -> Result<(), CopyError> {
    let bad = CopyError::BadCopyArg {
        src: offset,
        dst: offset,
        len: u16::try_from(len).unwrap_or(u16::MAX),
    };
    if u64::from(offset) + len as u64 > PAGE_SIZE {
        return Err(bad);
    }
    // Reuse the copy path's claim rules through a device-style pin.
    let flags = GNTMAP_DEVICE_MAP | if writable { 0 } else { GNTMAP_READONLY };
    let m = super::map::map_grant_ref(&mut hv.gnt(), RUNTIME_DOMID, 0, 0, flags, gref, granter)
        .map_err(|e| match e {
            MapGrantError::BadDomain(d) => CopyError::BadDomain(d),
            MapGrantError::Pin(p) => CopyError::Pin(p),
            MapGrantError::CannotPin { frame, source } => CopyError::NotWritable { frame, source },
            _ => CopyError::BadPage(0),
        })?;
    let at = MachineAddr((m.dev_bus_addr & !(PAGE_SIZE - 1)) + u64::from(offset));
    let ok = f(&hv.mem, at);
    super::map::release_mapping(&mut hv.gnt(), RUNTIME_DOMID, m.handle);
    if ok { Ok(()) } else { Err(bad) }
}

impl GrantAccess for Hypervisor {
    fn map_grant_ro(
        &mut self,
        granter: DomId,
        gref: GrantRef,
    ) -> Result<GrantMapping<Ro>, MapGrantError> {
        super::release_dropped(self);
        map(self, granter, gref)
    }

    fn map_grant_rw(
        &mut self,
        granter: DomId,
        gref: GrantRef,
    ) -> Result<GrantMapping<Rw>, MapGrantError> {
        super::release_dropped(self);
        map(self, granter, gref)
    }

    fn unmap_grant<R: Right>(&mut self, mut m: GrantMapping<R>) {
        super::release_dropped(self);
        if !m.queue.same(&self.gnttab.releases) {
            tracing::warn!(
                granter = %m.granter,
                gref = %m.gref,
                "unmap_grant of another hypervisor's mapping; queued on its own"
            );
            return;
        }
        m.released = true;
        super::release_runtime_mapping(self, m.handle);
    }

    fn copy_from_grant(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        offset: u16,
        buf: &mut [u8],
    ) -> Result<(), CopyError> {
        super::release_dropped(self);
        with_grant(self, granter, gref, offset, buf.len(), false, |mem, at| {
            mem.read(at, buf).is_ok()
        })
    }

    fn copy_to_grant(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        offset: u16,
        buf: &[u8],
    ) -> Result<(), CopyError> {
        super::release_dropped(self);
        with_grant(self, granter, gref, offset, buf.len(), true, |mem, at| {
            mem.write(at, buf).is_ok()
        })
    }
}
