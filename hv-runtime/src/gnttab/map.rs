//! `GNTTABOP_map_grant_ref`, `unmap_grant_ref` and `unmap_and_replace`.
//!
//! A host mapping is an ordinary L1 entry in the mapper's page tables,
//! installed through [`Mm::get_page_from_l1e`] with the granter as the
//! frame's expected owner (Note [Grant references]). Its PTE is built as Xen
//! builds PV grant PTEs: P|A|D|NX, RW unless read-only, US for an
//! application mapping, `GNTMAP_guest_avail` bits in PTE bits 9–11, then the
//! usual kernel/user rewrite. Without `GNTMAP_contains_pte`, `host_addr` is a
//! virtual address in the caller's current page tables whose L1 table must
//! exist; with it, `host_addr` is the machine address of an entry of an L1
//! table the caller owns.

use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab::{
    GNTMAP_APPLICATION_MAP, GNTMAP_CONTAINS_PTE, GNTMAP_DEVICE_MAP, GNTMAP_GUEST_AVAIL_SHIFT,
    GNTMAP_HOST_MAP, GNTMAP_READONLY, GNTST_BAD_DEV_ADDR, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF,
    GNTST_BAD_HANDLE, GNTST_BAD_VIRT_ADDR, GNTST_GENERAL_ERROR, GNTST_NO_SPACE,
};
use hv_cpu::FlushScope;
use hv_cpu::mem::{MachineAddr, Mfn};

use super::ctx::GntCtx;
use super::{MapEntry, PinError, Pins, pin, unpin};
use crate::machine::{DomId, Owner, PageType};
use crate::mm::{Mm, MmError, pte};

/// Why `map_grant_ref` failed; [`MapGrantError::status`] is the `GNTST_*`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapGrantError {
    /// Neither `GNTMAP_host_map` nor `GNTMAP_device_map`.
    #[error("map flags {0:#x} ask for neither a host nor a device mapping")]
    NoMapKind(u32),
    /// The granting domain does not exist or has ended.
    #[error("no live domain {0} to map a grant of")]
    BadDomain(DomId),
    /// The mapper has [`super::MAX_MAPTRACK`] mappings already.
    #[error("out of map handles: unmap something first")]
    NoSpace,
    /// The grant could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The frame cannot take the references the mapping needs (e.g. a page
    /// table mapped writable).
    #[error("cannot take references on frame {frame:#x}: {source}")]
    CannotPin {
        /// Frame.
        frame: u64,
        /// What the page-type rules said.
        #[source]
        source: MmError,
    },
    /// `host_addr` does not name an L1 entry of the caller.
    #[error("host address {0:#x} does not name an L1 entry the caller owns")]
    BadVirtAddr(u64),
}

impl MapGrantError {
    /// The `GNTST_*` Xen reports.
    #[must_use]
    pub fn status(&self) -> i16 {
        match self {
            Self::NoMapKind(_) => GNTST_BAD_GNTREF,
            Self::BadDomain(_) => GNTST_BAD_DOMAIN,
            Self::NoSpace => GNTST_NO_SPACE,
            Self::Pin(p) => p.status(),
            Self::CannotPin { .. } => GNTST_GENERAL_ERROR,
            Self::BadVirtAddr(_) => GNTST_BAD_VIRT_ADDR,
        }
    }
}

/// Why an unmap failed; [`UnmapGrantError::status`] is the `GNTST_*`.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum UnmapGrantError {
    /// No live mapping has this handle.
    #[error("no mapping with handle {0:#x}")]
    BadHandle(u32),
    /// `dev_bus_addr` is not the mapping's.
    #[error("device address {0:#x} is not the mapped frame's")]
    BadDevAddr(u64),
    /// `host_addr` (or `new_addr`) does not name an L1 entry of the caller.
    #[error("host address {0:#x} does not name an L1 entry the caller owns")]
    BadVirtAddr(u64),
    /// The entry at `host_addr` does not map the granted frame.
    #[error("the entry at {0:#x} does not map the granted frame")]
    NotMapped(u64),
    /// `new_addr` with a `GNTMAP_contains_pte` mapping, or equal to it.
    #[error("cannot replace with address {0:#x}")]
    BadReplace(u64),
}

impl UnmapGrantError {
    /// The `GNTST_*` Xen reports.
    #[must_use]
    pub fn status(&self) -> i16 {
        match self {
            Self::BadHandle(_) => GNTST_BAD_HANDLE,
            Self::BadDevAddr(_) => GNTST_BAD_DEV_ADDR,
            Self::BadVirtAddr(_) => GNTST_BAD_VIRT_ADDR,
            Self::NotMapped(_) | Self::BadReplace(_) => GNTST_GENERAL_ERROR,
        }
    }
}

/// A successful map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// Handle for unmapping.
    pub handle: u32,
    /// Machine address of the frame (Xen reports it for every map).
    pub dev_bus_addr: u64,
}

/// The L1 entry named by `host_addr` for `dom` (see the module docs).
fn l1_entry(
    hv: &GntCtx<'_>,
    dom: DomId,
    cr3: u64,
    host_addr: u64,
    contains_pte: bool,
) -> Option<MachineAddr> {
    let at = if contains_pte {
        if !host_addr.is_multiple_of(8) {
            return None;
        }
        MachineAddr(host_addr)
    } else {
        if !crate::guestmem::canonical(host_addr) || cr3 == 0 {
            return None;
        }
        let mut table = cr3 & pte::ADDR_MASK;
        for shift in [39u32, 30, 21] {
            let e = hv
                .mem
                .read_u64(MachineAddr(table + ((host_addr >> shift) & 511) * 8))
                .ok()?;
            if e & pte::P == 0 || e & pte::PAT_PSE != 0 {
                return None;
            }
            table = e & pte::ADDR_MASK;
        }
        MachineAddr(table + ((host_addr >> 12) & 511) * 8)
    };
    is_own_l1(hv, dom, at).then_some(at)
}

fn is_own_l1(hv: &GntCtx<'_>, dom: DomId, at: MachineAddr) -> bool {
    hv.ft
        .get(at.mfn())
        .is_some_and(|p| p.owner == Owner::Dom(dom) && p.ty == PageType::L1 && p.type_count > 0)
}

/// The PTE of a PV host grant mapping of `frame`.
fn grant_pte(frame: Mfn, flags: u32) -> u64 {
    let mut e = (frame.0 << 12) | pte::P | pte::A | pte::D | pte::NX;
    if flags & GNTMAP_READONLY == 0 {
        e |= pte::RW;
    }
    if flags & GNTMAP_APPLICATION_MAP != 0 {
        e |= pte::US;
    }
    e |= u64::from((flags >> GNTMAP_GUEST_AVAIL_SHIFT) & 7) << 9;
    Mm::adjust_l1e(e)
}

/// Take the references of a device (or runtime) mapping.
fn get_device_refs(
    hv: &mut GntCtx<'_>,
    frame: Mfn,
    granter: DomId,
    readonly: bool,
) -> Result<(), MapGrantError> {
    let mut m = hv.mm();
    let r = if readonly {
        m.get_page(frame, granter)
    } else {
        m.get_page_and_type(frame, PageType::Writable, granter)
    };
    r.map_err(|source| MapGrantError::CannotPin {
        frame: frame.0,
        source,
    })
}

fn put_device_refs(hv: &mut GntCtx<'_>, frame: Mfn, readonly: bool) {
    let mut m = hv.mm();
    if readonly {
        m.put_page(frame);
    } else {
        m.put_page_and_type(frame);
    }
}

/// `GNTTABOP_map_grant_ref` for `mapper`, whose current root table is
/// `cr3` (used to resolve a virtual `host_addr`).
///
/// # Errors
/// See [`MapGrantError`]; nothing changes then.
pub fn map_grant_ref(
    hv: &mut GntCtx<'_>,
    mapper: DomId,
    cr3: u64,
    host_addr: u64,
    flags: u32,
    gref: GrantRef,
    granter: DomId,
) -> Result<Mapped, MapGrantError> {
    let host = flags & GNTMAP_HOST_MAP != 0;
    let device = flags & GNTMAP_DEVICE_MAP != 0;
    let readonly = flags & GNTMAP_READONLY != 0;
    if !host && !device {
        return Err(MapGrantError::NoMapKind(flags));
    }
    if !hv.live(granter) {
        return Err(MapGrantError::BadDomain(granter));
    }
    // A domain that has ended had its mappings released; it takes no new
    // ones (they would never be released).
    if mapper != super::RUNTIME_DOMID && !hv.live(mapper) {
        return Err(MapGrantError::BadDomain(mapper));
    }
    let room = if mapper == super::RUNTIME_DOMID {
        hv.gnttab.runtime_table().has_free_handle()
    } else {
        hv.gnttab
            .table(mapper)
            .is_some_and(super::GrantTable::has_free_handle)
    };
    if !room {
        return Err(MapGrantError::NoSpace);
    }
    let incr = Pins::incr(host, device, readonly);
    let frame = {
        let Some(t) = hv.gnttab.tables.get_mut(&granter) else {
            return Err(MapGrantError::BadDomain(granter));
        };
        pin(hv.mem, hv.ft, t, granter, gref, mapper, incr)?
    };
    match install(
        hv, mapper, cr3, host_addr, flags, frame, granter, device, host,
    ) {
        Ok(pte_at) => {
            let entry = MapEntry {
                granter,
                gref,
                flags: flags
                    & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP | GNTMAP_READONLY | GNTMAP_CONTAINS_PTE),
                frame,
                pte: pte_at,
            };
            let handle = hv
                .gnttab
                .tables
                .get_mut(&mapper)
                .and_then(|t| t.put_handle(entry));
            if let Some(handle) = handle {
                return Ok(Mapped {
                    handle,
                    dev_bus_addr: frame.0 << 12,
                });
            }
            // Unreachable (room was checked), but undo cleanly.
            undo_install(hv, mapper, pte_at, frame, device, readonly);
            if let Some(t) = hv.gnttab.tables.get_mut(&granter) {
                unpin(hv.mem, t, gref, incr);
            }
            Err(MapGrantError::NoSpace)
        }
        Err(e) => {
            if let Some(t) = hv.gnttab.tables.get_mut(&granter) {
                unpin(hv.mem, t, gref, incr);
            }
            Err(e)
        }
    }
}

/// Take the references and write the PTE; all or nothing.
#[expect(clippy::too_many_arguments)]
fn install(
    hv: &mut GntCtx<'_>,
    mapper: DomId,
    cr3: u64,
    host_addr: u64,
    flags: u32,
    frame: Mfn,
    granter: DomId,
    device: bool,
    host: bool,
) -> Result<Option<MachineAddr>, MapGrantError> {
    let readonly = flags & GNTMAP_READONLY != 0;
    if device {
        get_device_refs(hv, frame, granter, readonly)?;
    }
    if !host {
        return Ok(None);
    }
    let contains_pte = flags & GNTMAP_CONTAINS_PTE != 0;
    let Some(at) = l1_entry(hv, mapper, cr3, host_addr, contains_pte) else {
        if device {
            put_device_refs(hv, frame, readonly);
        }
        return Err(MapGrantError::BadVirtAddr(host_addr));
    };
    let e = grant_pte(frame, flags);
    if let Err(source) = hv.mm().get_page_from_l1e(e, granter) {
        if device {
            put_device_refs(hv, frame, readonly);
        }
        return Err(MapGrantError::CannotPin {
            frame: frame.0,
            source,
        });
    }
    let old = match hv.mem.swap_u64(at, e) {
        Ok(old) => old,
        Err(_) => {
            hv.mm().put_page_from_l1e(e);
            if device {
                put_device_refs(hv, frame, readonly);
            }
            return Err(MapGrantError::BadVirtAddr(host_addr));
        }
    };
    hv.mm().put_page_from_l1e(old);
    if old & pte::P != 0 {
        let scope = if contains_pte {
            FlushScope::All
        } else {
            FlushScope::Page(host_addr)
        };
        hv.flush_tlbs(mapper, scope);
    }
    Ok(Some(at))
}

fn undo_install(
    hv: &mut GntCtx<'_>,
    mapper: DomId,
    pte_at: Option<MachineAddr>,
    frame: Mfn,
    device: bool,
    readonly: bool,
) {
    if let Some(at) = pte_at {
        clear_host_pte(hv, mapper, at, frame);
    }
    if device {
        put_device_refs(hv, frame, readonly);
    }
}

/// Clear a host grant entry if it is still in one of `dom`'s L1 tables and
/// still maps `frame`; returns whether it did.
fn clear_host_pte(hv: &mut GntCtx<'_>, dom: DomId, at: MachineAddr, frame: Mfn) -> bool {
    if !is_own_l1(hv, dom, at) {
        return false;
    }
    let Ok(cur) = hv.mem.read_u64(at) else {
        return false;
    };
    if cur & pte::P == 0 || pte::mfn(cur) != frame.0 {
        return false;
    }
    if hv.mem.cmpxchg_u64(at, cur, 0) != Ok(cur) {
        return false;
    }
    hv.mm().put_page_from_l1e(cur);
    true
}

/// `GNTTABOP_unmap_grant_ref` (`new_addr` = `None`) and
/// `GNTTABOP_unmap_and_replace` (`new_addr` = `Some`, no device part).
///
/// As in Xen, a zero `host_addr` leaves the host part mapped and a zero
/// `dev_bus_addr` leaves the device part mapped; the handle stays live
/// until both are gone.
///
/// # Errors
/// See [`UnmapGrantError`]; nothing changes then.
pub fn unmap_grant_ref(
    hv: &mut GntCtx<'_>,
    mapper: DomId,
    cr3: u64,
    host_addr: u64,
    dev_bus_addr: u64,
    handle: u32,
    new_addr: Option<u64>,
) -> Result<(), UnmapGrantError> {
    let m = hv
        .gnttab
        .table(mapper)
        .and_then(|t| t.mapping(handle))
        .copied()
        .ok_or(UnmapGrantError::BadHandle(handle))?;
    let readonly = m.flags & GNTMAP_READONLY != 0;
    let has_dev = m.flags & GNTMAP_DEVICE_MAP != 0;
    let has_host = m.flags & GNTMAP_HOST_MAP != 0;
    if dev_bus_addr != 0 && has_dev && dev_bus_addr != m.frame.0 << 12 {
        return Err(UnmapGrantError::BadDevAddr(dev_bus_addr));
    }
    let mut done_host = false;
    if host_addr != 0 && has_host {
        let contains_pte = m.flags & GNTMAP_CONTAINS_PTE != 0;
        replace_host(hv, mapper, cr3, host_addr, m.frame, contains_pte, new_addr)?;
        done_host = true;
    }
    let done_dev = dev_bus_addr != 0 && has_dev;
    if done_dev {
        put_device_refs(hv, m.frame, readonly);
    }
    finish_unmap(hv, mapper, handle, &m, done_host, done_dev);
    Ok(())
}

/// Remove the host grant entry at `host_addr` (or put `new_addr`'s entry in
/// its place and clear `new_addr`'s).
fn replace_host(
    hv: &mut GntCtx<'_>,
    mapper: DomId,
    cr3: u64,
    host_addr: u64,
    frame: Mfn,
    contains_pte: bool,
    new_addr: Option<u64>,
) -> Result<(), UnmapGrantError> {
    let new_addr = new_addr.filter(|&a| a != 0);
    if new_addr.is_some() && contains_pte {
        return Err(UnmapGrantError::BadReplace(new_addr.unwrap_or(0)));
    }
    let at = l1_entry(hv, mapper, cr3, host_addr, contains_pte)
        .ok_or(UnmapGrantError::BadVirtAddr(host_addr))?;
    let cur = hv
        .mem
        .read_u64(at)
        .map_err(|_| UnmapGrantError::BadVirtAddr(host_addr))?;
    if cur & pte::P == 0 || pte::mfn(cur) != frame.0 {
        return Err(UnmapGrantError::NotMapped(host_addr));
    }
    let replacement = match new_addr {
        None => 0,
        Some(na) => {
            let nat =
                l1_entry(hv, mapper, cr3, na, false).ok_or(UnmapGrantError::BadVirtAddr(na))?;
            if nat == at {
                return Err(UnmapGrantError::BadReplace(na));
            }
            // The replacement entry's references move with it.
            hv.mem
                .swap_u64(nat, 0)
                .map_err(|_| UnmapGrantError::BadVirtAddr(na))?
        }
    };
    let old = match hv.mem.cmpxchg_u64(at, cur, replacement) {
        Ok(old) if old == cur => old,
        _ => {
            // The entry changed under us: put the replacement back.
            if let Some(na) = new_addr
                && let Some(nat) = l1_entry(hv, mapper, cr3, na, false)
            {
                let _ = hv.mem.write_u64(nat, replacement);
            }
            return Err(UnmapGrantError::NotMapped(host_addr));
        }
    };
    hv.mm().put_page_from_l1e(old);
    // A virtual address names the one page to forget; a PTE address does not.
    let scope = if contains_pte || new_addr.is_some() {
        FlushScope::All
    } else {
        FlushScope::Page(host_addr)
    };
    hv.flush_tlbs(mapper, scope);
    Ok(())
}

fn finish_unmap(
    hv: &mut GntCtx<'_>,
    mapper: DomId,
    handle: u32,
    m: &MapEntry,
    done_host: bool,
    done_dev: bool,
) {
    let readonly = m.flags & GNTMAP_READONLY != 0;
    if let Some(t) = hv.gnttab.tables.get_mut(&mapper) {
        let mut left = m.flags;
        if done_host {
            left &= !GNTMAP_HOST_MAP;
        }
        if done_dev {
            left &= !GNTMAP_DEVICE_MAP;
        }
        if left & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) == 0 {
            t.drop_handle(handle);
        } else if let Some(Some(e)) = usize::try_from(handle)
            .ok()
            .and_then(|i| t.maptrack.get_mut(i))
        {
            e.flags = left;
        }
    }
    let decr = Pins::incr(done_host, done_dev, readonly);
    if decr.any()
        && let Some(t) = hv.gnttab.tables.get_mut(&m.granter)
    {
        unpin(hv.mem, t, m.gref, decr);
    }
}

/// Release mapping `handle` of `dom` completely (domain end, runtime
/// release): the host entry is cleared if it is still there.
pub(crate) fn release_mapping(hv: &mut GntCtx<'_>, dom: DomId, handle: u32) {
    let Some(m) = hv
        .gnttab
        .table(dom)
        .and_then(|t| t.mapping(handle))
        .copied()
    else {
        return;
    };
    let readonly = m.flags & GNTMAP_READONLY != 0;
    let has_host = m.flags & GNTMAP_HOST_MAP != 0;
    let has_dev = m.flags & GNTMAP_DEVICE_MAP != 0;
    if has_host && let Some(at) = m.pte {
        clear_host_pte(hv, dom, at, m.frame);
    }
    if has_dev {
        put_device_refs(hv, m.frame, readonly);
    }
    finish_unmap(hv, dom, handle, &m, has_host, has_dev);
}
