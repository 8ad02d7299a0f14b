//! Memory reservation wrappers (`memory_op`, hypercall 12).

use crate::abi::hypercall_nr::MEMORY_OP;
use crate::abi::memory::*;
use crate::abi::{DOMID_SELF, DomId, Errno};
use crate::hypercall::{Hypercall, arg_mut, arg_slice_mut, count_u32};

/// Issues `memory_op(cmd, arg)`.
pub fn op<H: Hypercall + ?Sized>(h: &H, cmd: u64, arg: u64) -> Result<u64, Errno> {
    h.call_checked(MEMORY_OP, [cmd, arg, 0, 0, 0])
}

fn reservation<H: Hypercall + ?Sized>(
    h: &H,
    cmd: u64,
    extents: &mut [u64],
    extent_order: u32,
    mem_flags: u32,
) -> Result<usize, Errno> {
    let mut r = XenMemoryReservation {
        extent_start: arg_slice_mut(extents),
        nr_extents: extents.len() as u64,
        extent_order,
        mem_flags,
        domid: DOMID_SELF,
        _pad: [0; 6],
    };
    let done = op(h, cmd, arg_mut(&mut r))?;
    usize::try_from(done).map_err(|_| Errno::ERANGE)
}

/// Allocates `extents.len()` extents of `2^order` pages; Xen writes their MFNs
/// into `extents`. Returns how many were allocated.
pub fn increase_reservation<H: Hypercall + ?Sized>(
    h: &H,
    extents: &mut [u64],
    order: u32,
    mem_flags: u32,
) -> Result<usize, Errno> {
    reservation(h, XENMEM_INCREASE_RESERVATION, extents, order, mem_flags)
}

/// Returns the frames in `extents` (MFNs for PV) to Xen. Unmap them and
/// clear their p2m entries first. Returns how many were released.
pub fn decrease_reservation<H: Hypercall + ?Sized>(
    h: &H,
    extents: &mut [u64],
    order: u32,
) -> Result<usize, Errno> {
    reservation(h, XENMEM_DECREASE_RESERVATION, extents, order, 0)
}

/// Populates the PFNs in `pfns`; for PV, Xen overwrites each with its new
/// MFN (and sets the M2P). Returns how many were populated.
pub fn populate_physmap<H: Hypercall + ?Sized>(
    h: &H,
    pfns: &mut [u64],
    order: u32,
    mem_flags: u32,
) -> Result<usize, Errno> {
    reservation(h, XENMEM_POPULATE_PHYSMAP, pfns, order, mem_flags)
}

/// Pages currently allocated to `dom`.
pub fn current_reservation<H: Hypercall + ?Sized>(h: &H, dom: DomId) -> Result<u64, Errno> {
    let mut d = XenMemoryDomain { domid: dom.0 };
    op(h, XENMEM_CURRENT_RESERVATION, arg_mut(&mut d))
}

/// Maximum pages `dom` may have.
pub fn maximum_reservation<H: Hypercall + ?Sized>(h: &H, dom: DomId) -> Result<u64, Errno> {
    let mut d = XenMemoryDomain { domid: dom.0 };
    op(h, XENMEM_MAXIMUM_RESERVATION, arg_mut(&mut d))
}

/// Highest GPFN of `dom`.
pub fn maximum_gpfn<H: Hypercall + ?Sized>(h: &H, dom: DomId) -> Result<u64, Errno> {
    let mut d = XenMemoryDomain { domid: dom.0 };
    op(h, XENMEM_MAXIMUM_GPFN, arg_mut(&mut d))
}

/// Highest machine frame of RAM.
pub fn maximum_ram_page<H: Hypercall + ?Sized>(h: &H) -> Result<u64, Errno> {
    op(h, XENMEM_MAXIMUM_RAM_PAGE, 0)
}

/// Location of the read-only M2P.
pub fn machphys_mapping<H: Hypercall + ?Sized>(h: &H) -> Result<XenMachphysMapping, Errno> {
    let mut m = XenMachphysMapping::default();
    op(h, XENMEM_MACHPHYS_MAPPING, arg_mut(&mut m))?;
    Ok(m)
}

/// Reads the domain's e820 map into `buf`; returns the entry count.
pub fn memory_map<H: Hypercall + ?Sized>(h: &H, buf: &mut [E820Entry]) -> Result<usize, Errno> {
    let mut m = XenMemoryMap {
        nr_entries: count_u32(buf)?,
        _pad: 0,
        buffer: arg_slice_mut(buf),
    };
    op(h, XENMEM_MEMORY_MAP, arg_mut(&mut m))?;
    let n = usize::try_from(m.nr_entries).map_err(|_| Errno::ERANGE)?;
    if n > buf.len() {
        return Err(Errno::ERANGE);
    }
    Ok(n)
}

/// Exchanges extents (`exch.nr_exchanged` must be 0 on entry).
pub fn exchange<H: Hypercall + ?Sized>(h: &H, exch: &mut XenMemoryExchange) -> Result<(), Errno> {
    op(h, XENMEM_EXCHANGE, arg_mut(exch)).map(drop)
}
