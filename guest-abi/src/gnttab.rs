//! Grant-table wrappers (`grant_table_op`, hypercall 20) and guest-side
//! grant-entry management, including the page-transfer ("flip") protocol.
//!
//! Hypercall wrappers come in two shapes:
//! - batch functions over slices of the raw argument structs, returning
//!   `Result<(), Errno>` for the hypercall itself and leaving each element's
//!   `status` for the caller;
//! - single-operation helpers returning `Result<_, GnttabError>`, which folds
//!   the hypercall errno and the element's `GNTST_*` status into one error.
//!
//! Grant *entries* (the table the guest shares with Xen) are reached through
//! the [`GrantEntries`] trait, implemented for `[GrantEntryAtomic]` — a view
//! of the real shared frames in a guest, a plain `Vec` in host tests.

use core::fmt;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering, fence};

use crate::abi::gnttab::*;
use crate::abi::hypercall_nr::GRANT_TABLE_OP;
use crate::abi::{DOMID_SELF, DomId, Errno, GrantRef, GuestVa, Mfn, Pfn};
use crate::hypercall::{Hypercall, arg_slice_mut, count_u32};

/// Failure of a single grant operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnttabError {
    /// The hypercall itself failed.
    Hypercall(Errno),
    /// Xen processed the operation and reported a `GNTST_*` failure.
    Status(GntStatus),
}

impl fmt::Display for GnttabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hypercall(e) => write!(f, "grant_table_op failed: {e}"),
            Self::Status(s) => write!(f, "grant operation failed: {s}"),
        }
    }
}

impl core::error::Error for GnttabError {}

impl From<Errno> for GnttabError {
    fn from(e: Errno) -> Self {
        Self::Hypercall(e)
    }
}

/// Issues `grant_table_op(cmd, ops, ops.len())`.
pub fn op<H: Hypercall + ?Sized, T>(h: &H, cmd: u32, ops: &mut [T]) -> Result<(), Errno> {
    let count = count_u32(ops)?;
    Errno::check(h.call(
        GRANT_TABLE_OP,
        [u64::from(cmd), arg_slice_mut(ops), u64::from(count), 0, 0],
    ))
}

fn one<H: Hypercall + ?Sized, T>(
    h: &H,
    cmd: u32,
    arg: &mut T,
    status: impl Fn(&T) -> i16,
) -> Result<(), GnttabError> {
    op(h, cmd, core::slice::from_mut(arg))?;
    GntStatus(status(arg)).check().map_err(GnttabError::Status)
}

/// Grows this domain's grant table to `frames.len()` frames; Xen writes the
/// frames' MFNs into `frames`.
pub fn setup_table<H: Hypercall + ?Sized>(h: &H, frames: &mut [u64]) -> Result<(), GnttabError> {
    let mut a = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: count_u32(frames)?,
        frame_list: arg_slice_mut(frames),
        ..Default::default()
    };
    one(h, GNTTABOP_SETUP_TABLE, &mut a, |a| a.status)
}

/// `(current frames, maximum frames)` of this domain's table.
pub fn query_size<H: Hypercall + ?Sized>(h: &H) -> Result<(u32, u32), GnttabError> {
    let mut a = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    one(h, GNTTABOP_QUERY_SIZE, &mut a, |a| a.status)?;
    Ok((a.nr_frames, a.max_nr_frames))
}

/// Result of a successful map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// Handle for [`unmap_grant_ref`].
    pub handle: GrantHandle,
    /// Bus address (with `GNTMAP_DEVICE_MAP`).
    pub dev_bus_addr: u64,
}

/// Batch `GNTTABOP_map_grant_ref`.
pub fn map_grant_refs<H: Hypercall + ?Sized>(
    h: &H,
    ops: &mut [GnttabMapGrantRef],
) -> Result<(), Errno> {
    op(h, GNTTABOP_MAP_GRANT_REF, ops)
}

/// Maps grant `gref` of domain `dom` at `host_addr` with `GNTMAP_*` `flags`.
pub fn map_grant_ref<H: Hypercall + ?Sized>(
    h: &H,
    host_addr: u64,
    flags: u32,
    gref: GrantRef,
    dom: DomId,
) -> Result<Mapped, GnttabError> {
    let mut a = GnttabMapGrantRef {
        host_addr,
        flags,
        ref_: gref.0,
        dom: dom.0,
        ..Default::default()
    };
    one(h, GNTTABOP_MAP_GRANT_REF, &mut a, |a| a.status)?;
    Ok(Mapped {
        handle: a.handle,
        dev_bus_addr: a.dev_bus_addr,
    })
}

/// Batch `GNTTABOP_unmap_grant_ref`.
pub fn unmap_grant_refs<H: Hypercall + ?Sized>(
    h: &H,
    ops: &mut [GnttabUnmapGrantRef],
) -> Result<(), Errno> {
    op(h, GNTTABOP_UNMAP_GRANT_REF, ops)
}

/// Destroys a mapping made by [`map_grant_ref`].
pub fn unmap_grant_ref<H: Hypercall + ?Sized>(
    h: &H,
    host_addr: u64,
    dev_bus_addr: u64,
    handle: GrantHandle,
) -> Result<(), GnttabError> {
    let mut a = GnttabUnmapGrantRef {
        host_addr,
        dev_bus_addr,
        handle,
        ..Default::default()
    };
    one(h, GNTTABOP_UNMAP_GRANT_REF, &mut a, |a| a.status)
}

/// Batch `GNTTABOP_copy`.
pub fn copy<H: Hypercall + ?Sized>(h: &H, ops: &mut [GnttabCopy]) -> Result<(), Errno> {
    op(h, GNTTABOP_COPY, ops)
}

/// One `GNTTABOP_copy` of `len` bytes.
pub fn copy_one<H: Hypercall + ?Sized>(
    h: &H,
    source: GnttabCopyPtr,
    dest: GnttabCopyPtr,
    len: u16,
    flags: u16,
) -> Result<(), GnttabError> {
    let mut a = GnttabCopy {
        source,
        dest,
        len,
        flags,
        ..Default::default()
    };
    one(h, GNTTABOP_COPY, &mut a, |a| a.status)
}

/// Batch `GNTTABOP_transfer`.
pub fn transfers<H: Hypercall + ?Sized>(h: &H, ops: &mut [GnttabTransfer]) -> Result<(), Errno> {
    op(h, GNTTABOP_TRANSFER, ops)
}

/// Gives frame `mfn` to domain `dom` through its accept-transfer ref `gref`.
///
/// On `GNTST_bad_page` the caller keeps the page; on any other failure it is
/// lost to the caller (§6.6).
pub fn transfer<H: Hypercall + ?Sized>(
    h: &H,
    mfn: Mfn,
    dom: DomId,
    gref: GrantRef,
) -> Result<(), GnttabError> {
    let mut a = GnttabTransfer {
        mfn: mfn.0,
        domid: dom.0,
        ref_: gref.0,
        ..Default::default()
    };
    one(h, GNTTABOP_TRANSFER, &mut a, |a| a.status)
}

/// Selects grant-table version 1 or 2; returns the version in force.
pub fn set_version<H: Hypercall + ?Sized>(h: &H, version: u32) -> Result<u32, Errno> {
    let mut a = GnttabSetVersion { version };
    op(h, GNTTABOP_SET_VERSION, core::slice::from_mut(&mut a))?;
    Ok(a.version)
}

/// The grant-table version of `dom`.
pub fn get_version<H: Hypercall + ?Sized>(h: &H, dom: DomId) -> Result<u32, Errno> {
    let mut a = GnttabGetVersion {
        dom: dom.0,
        ..Default::default()
    };
    op(h, GNTTABOP_GET_VERSION, core::slice::from_mut(&mut a))?;
    Ok(a.version)
}

/// A pointer argument for a host mapping at `va` (no `GNTMAP_CONTAINS_PTE`).
#[must_use]
pub const fn host_addr(va: GuestVa) -> u64 {
    va.0
}

// ---------------------------------------------------------------------------
// Grant entries.

/// A v1 grant entry with atomic fields: the same 8-byte layout as
/// [`GrantEntryV1`], usable over memory Xen modifies concurrently.
#[derive(Debug, Default)]
#[repr(C)]
pub struct GrantEntryAtomic {
    /// See [`GrantEntryV1::flags`].
    pub flags: AtomicU16,
    /// See [`GrantEntryV1::domid`].
    pub domid: AtomicU16,
    /// See [`GrantEntryV1::frame`].
    pub frame: AtomicU32,
}
static_assertions::assert_eq_size!(GrantEntryAtomic, GrantEntryV1);
static_assertions::assert_eq_align!(GrantEntryAtomic, GrantEntryV1);
static_assertions::const_assert_eq!(core::mem::offset_of!(GrantEntryAtomic, flags), 0);
static_assertions::const_assert_eq!(core::mem::offset_of!(GrantEntryAtomic, domid), 2);
static_assertions::const_assert_eq!(core::mem::offset_of!(GrantEntryAtomic, frame), 4);

impl GrantEntryAtomic {
    /// A plain snapshot (each field read atomically; not one atomic unit).
    #[must_use]
    pub fn load(&self) -> GrantEntryV1 {
        GrantEntryV1 {
            flags: self.flags.load(Ordering::Acquire),
            domid: self.domid.load(Ordering::Relaxed),
            frame: self.frame.load(Ordering::Acquire),
        }
    }
}

/// Access to this guest's grant entries (v1).
///
/// Implementations must make `flags` operations atomic with respect to Xen.
pub trait GrantEntries {
    /// The entry for `gref`, if it exists.
    fn entry(&self, gref: GrantRef) -> Option<&GrantEntryAtomic>;
}

impl GrantEntries for [GrantEntryAtomic] {
    fn entry(&self, gref: GrantRef) -> Option<&GrantEntryAtomic> {
        self.get(usize::try_from(gref.0).ok()?)
    }
}

/// Why a grant-entry operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// No such grant ref.
    NoSuchRef,
    /// The entry is not in the state the operation needs (current flags).
    Busy(u16),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchRef => write!(f, "no such grant ref"),
            Self::Busy(fl) => write!(f, "grant entry busy (flags {fl:#x})"),
        }
    }
}

impl core::error::Error for EntryError {}

fn entry<G: GrantEntries + ?Sized>(t: &G, gref: GrantRef) -> Result<&GrantEntryAtomic, EntryError> {
    t.entry(gref).ok_or(EntryError::NoSuchRef)
}

/// Grants domain `dom` access to frame `frame` (an MFN for a PV granter)
/// through `gref`, which must be unused (flags 0).
///
/// Protocol: domid, then frame, then a write barrier, then flags — so Xen
/// never sees a valid type with stale contents.
pub fn grant_access<G: GrantEntries + ?Sized>(
    t: &G,
    gref: GrantRef,
    dom: DomId,
    frame: Mfn,
    readonly: bool,
) -> Result<(), EntryError> {
    let e = entry(t, gref)?;
    let cur = e.flags.load(Ordering::Acquire);
    if cur & GTF_TYPE_MASK != GTF_INVALID {
        return Err(EntryError::Busy(cur));
    }
    let frame = u32::try_from(frame.0).map_err(|_| EntryError::Busy(cur))?;
    e.domid.store(dom.0, Ordering::Relaxed);
    e.frame.store(frame, Ordering::Relaxed);
    fence(Ordering::Release);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    e.flags.store(flags, Ordering::Release);
    Ok(())
}

/// Revokes a permit-access grant if the grantee is not using it: an atomic
/// compare-exchange of `flags` to 0 that fails while `GTF_READING` or
/// `GTF_WRITING` is set.
pub fn end_access<G: GrantEntries + ?Sized>(t: &G, gref: GrantRef) -> Result<(), EntryError> {
    let e = entry(t, gref)?;
    let mut cur = e.flags.load(Ordering::Acquire);
    loop {
        if cur & (GTF_READING | GTF_WRITING) != 0 {
            return Err(EntryError::Busy(cur));
        }
        match e
            .flags
            .compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// Makes a writable grant read-only if the grantee is not writing through it.
pub fn make_readonly<G: GrantEntries + ?Sized>(t: &G, gref: GrantRef) -> Result<(), EntryError> {
    let e = entry(t, gref)?;
    let mut cur = e.flags.load(Ordering::Acquire);
    loop {
        if cur & GTF_WRITING != 0 {
            return Err(EntryError::Busy(cur));
        }
        match e
            .flags
            .compare_exchange(cur, cur | GTF_READONLY, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// State of an accept-transfer entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// Offered; Xen has not committed.
    Offered,
    /// Xen committed; the new frame is on its way (spin until completed).
    Committed,
    /// Done: the new machine frame.
    Completed(Mfn),
    /// The entry is not an accept-transfer entry (its flags).
    NotTransfer(u16),
}

/// Offers PFN slot `pfn` (or 0) for a page transfer from domain `sender`
/// through unused entry `gref`: domid, frame, write barrier, then flags
/// exactly `GTF_ACCEPT_TRANSFER` (Xen requires no other bits).
///
/// The receiver should first give up a page (e.g. with
/// [`crate::memory::decrease_reservation`]) so it has reservation headroom.
pub fn offer_transfer<G: GrantEntries + ?Sized>(
    t: &G,
    gref: GrantRef,
    sender: DomId,
    pfn: Pfn,
) -> Result<(), EntryError> {
    let e = entry(t, gref)?;
    let cur = e.flags.load(Ordering::Acquire);
    if cur != 0 {
        return Err(EntryError::Busy(cur));
    }
    let pfn = u32::try_from(pfn.0).map_err(|_| EntryError::Busy(cur))?;
    e.domid.store(sender.0, Ordering::Relaxed);
    e.frame.store(pfn, Ordering::Relaxed);
    fence(Ordering::Release);
    e.flags.store(GTF_ACCEPT_TRANSFER, Ordering::Release);
    Ok(())
}

/// Where an accept-transfer entry stands. `frame` is read only after
/// `GTF_TRANSFER_COMPLETED` is seen (acquire), matching Xen's write barrier
/// between writing the frame and setting the flag.
pub fn transfer_state<G: GrantEntries + ?Sized>(
    t: &G,
    gref: GrantRef,
) -> Result<TransferState, EntryError> {
    let e = entry(t, gref)?;
    let flags = e.flags.load(Ordering::Acquire);
    if flags & GTF_TYPE_MASK != GTF_ACCEPT_TRANSFER {
        return Ok(TransferState::NotTransfer(flags));
    }
    if flags & GTF_TRANSFER_COMPLETED != 0 {
        return Ok(TransferState::Completed(Mfn(u64::from(
            e.frame.load(Ordering::Acquire),
        ))));
    }
    if flags & GTF_TRANSFER_COMMITTED != 0 {
        return Ok(TransferState::Committed);
    }
    Ok(TransferState::Offered)
}

/// Finishes a completed transfer: returns the new MFN and frees the entry.
/// `Busy` if Xen has not completed it (spin on [`transfer_state`] while it
/// is `Committed`).
///
/// The caller then records `p2m[pfn] = mfn`, maps it (e.g.
/// [`crate::mmu::update_va_mapping`]) and optionally queues
/// `MMU_MACHPHYS_UPDATE` (Xen already set the M2P entry).
pub fn finish_transfer<G: GrantEntries + ?Sized>(t: &G, gref: GrantRef) -> Result<Mfn, EntryError> {
    match transfer_state(t, gref)? {
        TransferState::Completed(mfn) => {
            let e = entry(t, gref)?;
            e.flags.store(0, Ordering::Release);
            Ok(mfn)
        }
        _ => Err(EntryError::Busy(
            entry(t, gref)?.flags.load(Ordering::Acquire),
        )),
    }
}

/// Withdraws an offer Xen has not committed to: compare-exchange of flags
/// from exactly `GTF_ACCEPT_TRANSFER` to 0. `Busy` once committed (then the
/// transfer must be allowed to complete).
pub fn revoke_transfer<G: GrantEntries + ?Sized>(t: &G, gref: GrantRef) -> Result<(), EntryError> {
    let e = entry(t, gref)?;
    e.flags
        .compare_exchange(GTF_ACCEPT_TRANSFER, 0, Ordering::AcqRel, Ordering::Acquire)
        .map(drop)
        .map_err(EntryError::Busy)
}
