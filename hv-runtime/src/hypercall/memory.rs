//! `memory_op` (hypercall 12, XEN-PV-ABI §7.7) for PV domains.
//!
//! Reservations move frames between the hypervisor's free pool and a domain,
//! bounded by the domain's `max_pages`, with the M2P kept in step. A frame a
//! guest gives back is only really freed when its last reference goes (its
//! allocation reference is dropped here; mappings keep theirs).

use guest_abi::abi::memory as xm;
use hv_cpu::mem::Mfn;
use zerocopy::IntoBytes;

use guest_abi::abi::Errno;
use guest_abi::abi::xen::{MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};

use super::{BATCH, Ret};
use crate::guestmem;
use crate::hv::Hypervisor;
use crate::machine::{DomId, M2P_INVALID, Owner};

/// `memory_op(cmd, arg)`. Reservation changes do at most [`BATCH`]
/// extents per invocation and continue with the start extent in the upper
/// bits of `cmd`, as Xen does.
pub(crate) fn memory_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let c3 = hv.cr3(dom, v);
    let op = cmd & xm::XENMEM_CMD_MASK;
    let start_extent = cmd >> xm::XENMEM_EXTENT_SHIFT;
    let r = match op {
        xm::XENMEM_MAXIMUM_RAM_PAGE => Ok(i64::try_from(hv.ft.frames() - 1).unwrap_or(0)),
        xm::XENMEM_CURRENT_RESERVATION
        | xm::XENMEM_MAXIMUM_RESERVATION
        | xm::XENMEM_MAXIMUM_GPFN => match guestmem::read_obj::<u16>(&hv.mem, c3, arg) {
            Ok(d) if DomId(d) == DomId::SELF || DomId(d) == dom => {
                let dd = hv.domains.get(&dom);
                let n = match op {
                    xm::XENMEM_CURRENT_RESERVATION => dd.map_or(0, |d| d.tot_pages),
                    xm::XENMEM_MAXIMUM_RESERVATION => dd.map_or(0, |d| d.max_pages),
                    _ => dd.map_or(0, |d| d.p2m.len() as u64).saturating_sub(1),
                };
                Ok(i64::try_from(n).unwrap_or(0))
            }
            Ok(d) if hv.domains.contains_key(&DomId(d)) => Err(Errno::EPERM),
            Ok(_) => Err(Errno::ESRCH),
            Err(_) => Err(Errno::EFAULT),
        },
        xm::XENMEM_MACHPHYS_MAPPING => {
            let v = [MACH2PHYS_VIRT_START, MACH2PHYS_VIRT_END, hv.ft.frames() - 1];
            guestmem::copy_to_guest(&hv.mem, &hv.ft, c3, arg, v.as_bytes())
                .map(|()| 0)
                .map_err(|_| Errno::EFAULT)
        }
        xm::XENMEM_MACHPHYS_MFN_LIST => machphys_mfn_list(hv, c3, arg),
        xm::XENMEM_MEMORY_MAP => memory_map(hv, dom, c3, arg),
        xm::XENMEM_INCREASE_RESERVATION
        | xm::XENMEM_DECREASE_RESERVATION
        | xm::XENMEM_POPULATE_PHYSMAP => {
            return match reservation(hv, dom, c3, op, arg, start_extent) {
                Ok(Extents::Done(x)) => Ret::Val(x),
                Ok(Extents::More(done)) => {
                    Ret::Preempted([op | (done << xm::XENMEM_EXTENT_SHIFT), arg, 0, 0, 0])
                }
                Err(e) => Ret::err(e),
            };
        }
        xm::XENMEM_ADD_TO_PHYSMAP => add_to_physmap(hv, dom, c3, arg),
        // Exchanges are not offered: guests treat the failure as "no".
        xm::XENMEM_EXCHANGE => Err(Errno::ENOSYS),
        _ => Err(Errno::ENOSYS),
    };
    match r {
        Ok(x) => Ret::Val(x),
        Err(e) => Ret::err(e),
    }
}

/// How far a `memory_op` got.
enum Extents {
    /// Finished: the value for `rax`.
    Done(i64),
    /// Continue from this extent.
    More(u64),
}

fn add_to_physmap(hv: &mut Hypervisor, dom: DomId, c3: u64, arg: u64) -> Result<i64, Errno> {
    let a: xm::XenAddToPhysmap = guestmem::read_obj(&hv.mem, c3, arg).map_err(|_| Errno::EFAULT)?;
    if DomId(a.domid) != DomId::SELF && DomId(a.domid) != dom {
        return Err(Errno::EPERM);
    }
    match a.space {
        xm::XENMAPSPACE_GRANT_TABLE => Ok(crate::gnttab::add_to_physmap(hv, dom, a.idx, a.gpfn)),
        _ => Err(Errno::ENOSYS),
    }
}

fn machphys_mfn_list(hv: &Hypervisor, c3: u64, arg: u64) -> Result<i64, Errno> {
    let a: xm::XenMachphysMfnList =
        guestmem::read_obj(&hv.mem, c3, arg).map_err(|_| Errno::EFAULT)?;
    let max = u64::from(a.max_extents);
    let chunks = hv.m2p.frames.div_ceil(512);
    let n = chunks.min(max);
    for i in 0..n {
        let mfn = hv.m2p.base.0 + i * 512;
        guestmem::copy_to_guest(
            &hv.mem,
            &hv.ft,
            c3,
            a.extent_start.wrapping_add(i * 8),
            mfn.as_bytes(),
        )
        .map_err(|_| Errno::EFAULT)?;
    }
    // Only the OUT field is written back.
    let n32 = u32::try_from(n).unwrap_or(0);
    let at = arg.wrapping_add(core::mem::offset_of!(xm::XenMachphysMfnList, nr_extents) as u64);
    guestmem::copy_to_guest(&hv.mem, &hv.ft, c3, at, n32.as_bytes()).map_err(|_| Errno::EFAULT)?;
    Ok(0)
}

fn memory_map(hv: &Hypervisor, dom: DomId, c3: u64, arg: u64) -> Result<i64, Errno> {
    // nr_entries u32 @0 (IN capacity / OUT count), buffer handle @8; one
    // e820 RAM entry covering the domain's pseudo-physical memory.
    let a: xm::XenMemoryMap = guestmem::read_obj(&hv.mem, c3, arg).map_err(|_| Errno::EFAULT)?;
    if a.nr_entries < 1 {
        return Err(Errno::EINVAL);
    }
    let pages = hv.domains.get(&dom).map_or(0, |d| d.p2m.len() as u64);
    let e = xm::E820Entry {
        addr: 0,
        size: pages * 4096,
        type_: xm::E820_RAM,
    };
    guestmem::copy_to_guest(&hv.mem, &hv.ft, c3, a.buffer, e.as_bytes())
        .map_err(|_| Errno::EFAULT)?;
    // Only the OUT field (`nr_entries`, at offset 0) is written back.
    guestmem::copy_to_guest(&hv.mem, &hv.ft, c3, arg, 1u32.as_bytes())
        .map_err(|_| Errno::EFAULT)?;
    Ok(0)
}

fn reservation(
    hv: &mut Hypervisor,
    dom: DomId,
    c3: u64,
    op: u64,
    arg: u64,
    start: u64,
) -> Result<Extents, Errno> {
    // extent_start @0, nr_extents u64 @8, extent_order u32 @16, mem_flags
    // u32 @20, domid u16 @24.
    let r: xm::XenMemoryReservation =
        guestmem::read_obj(&hv.mem, c3, arg).map_err(|_| Errno::EFAULT)?;
    let (list, nr, order, target) = (r.extent_start, r.nr_extents, r.extent_order, r.domid);
    if DomId(target) != DomId::SELF && DomId(target) != dom {
        return Err(Errno::EPERM);
    }
    // Only single pages: PV guests here have no superpages.
    if order != 0 {
        return Err(Errno::EINVAL);
    }
    let nr = nr.min(1 << 20);
    let mut done = start;
    let stop = start.saturating_add(u64::from(BATCH));
    while done < nr {
        if done == stop {
            return Ok(Extents::More(done));
        }
        let slot = list.wrapping_add(done * 8);
        let ok = match op {
            xm::XENMEM_DECREASE_RESERVATION => {
                let mfn =
                    Mfn(guestmem::read_obj::<u64>(&hv.mem, c3, slot).map_err(|_| Errno::EFAULT)?);
                give_back(hv, dom, mfn)
            }
            _ => {
                let pfn = if op == xm::XENMEM_POPULATE_PHYSMAP {
                    Some(guestmem::read_obj::<u64>(&hv.mem, c3, slot).map_err(|_| Errno::EFAULT)?)
                } else {
                    None
                };
                match take_new(hv, dom, pfn) {
                    Some(mfn) => {
                        guestmem::copy_to_guest(&hv.mem, &hv.ft, c3, slot, mfn.0.as_bytes()).is_ok()
                    }
                    None => false,
                }
            }
        };
        if !ok {
            break;
        }
        done += 1;
    }
    Ok(Extents::Done(i64::try_from(done).unwrap_or(0)))
}

fn give_back(hv: &mut Hypervisor, dom: DomId, mfn: Mfn) -> bool {
    let ok = hv
        .ft
        .get(mfn)
        .is_some_and(|p| p.owner == Owner::Dom(dom) && p.allocated && !p.xen_heap);
    if !ok {
        return false;
    }
    if let Some(p) = hv.ft.get_mut(mfn) {
        p.allocated = false;
    }
    let _ = hv.m2p.set(&hv.mem, mfn, M2P_INVALID);
    hv.mm().put_page(mfn);
    if let Some(d) = hv.domains.get_mut(&dom) {
        d.tot_pages = d.tot_pages.saturating_sub(1);
    }
    true
}

fn take_new(hv: &mut Hypervisor, dom: DomId, pfn: Option<u64>) -> Option<Mfn> {
    let d = hv.domains.get(&dom)?;
    if d.tot_pages >= d.max_pages {
        return None;
    }
    let mfn = hv.ft.alloc(&hv.mem, Owner::Dom(dom)).ok()?;
    let _ = hv.m2p.set(&hv.mem, mfn, pfn.unwrap_or(M2P_INVALID));
    if let Some(d) = hv.domains.get_mut(&dom) {
        d.tot_pages += 1;
    }
    Some(mfn)
}
