//! The page-table family: `mmu_update` (1), `mmuext_op` (26), `update_va_mapping` (14) and `update_va_mapping_otherdomain` (22); the rules live in [`crate::mm`].

use guest_abi::abi::mmu::{
    MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_NO_TRANSLATE,
    MMU_PT_UPDATE_PRESERVE_AD, MMU_UPDATE_PREEMPTED, MmuUpdate, MmuextOp, UVMF_FLUSHTYPE_MASK,
    UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use guest_abi::abi::{DOMID_SELF, Errno};
use hv_cpu::FlushScope;
use hv_cpu::mem::{MachineAddr, Mfn};
use zerocopy::IntoBytes;

use super::{BATCH, Ret, guest_range};
use crate::guestmem::{self, canonical};
use crate::hv::Hypervisor;
use crate::machine::{DomId, Owner, PageType};
use crate::mm::pte;

/// `mmu_update` requests copied from the guest at a time.
const MMU_REQ_CHUNK: usize = 64;
/// Size of one `mmu_update` request in the guest's list.
const REQ_SIZE: u64 = core::mem::size_of::<MmuUpdate>() as u64;
/// Size of one `mmuext_op` in the guest's list.
const EXT_SIZE: u64 = core::mem::size_of::<MmuextOp>() as u64;
/// `mmu_update`'s continuation marker in `count`.
const PREEMPTED: u64 = MMU_UPDATE_PREEMPTED as u64;

/// Resolve `foreigndom`: only the caller itself is allowed (no domain here
/// has privileges over another's memory).
fn foreign(dom: DomId, fd: u64) -> Result<DomId, Errno> {
    let f = fd & 0xffff;
    let pfd = (fd >> 16) & 0xffff;
    let ok_f = f == u64::from(DOMID_SELF) || f == u64::from(dom.0);
    let ok_pfd = pfd == 0 || pfd.wrapping_sub(1) == u64::from(dom.0);
    if ok_f && ok_pfd {
        Ok(dom)
    } else {
        Err(Errno::EPERM)
    }
}

/// `mmu_update`.
pub(super) fn mmu_update(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let (reqs, pdone, fd) = (a[0], a[2], a[3]);
    let cr3v = hv.cr3(dom, v);
    let (count, done) = match batch_resume(hv, dom, cr3v, a[1], pdone, fd) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut rc = 0i64;
    let mut flush = false;
    let mut i = 0u64;
    // Requests are copied from the guest in chunks (one page walk per chunk
    // instead of per request); each is still copied once before use.
    let mut chunk = [MmuUpdate::default(); MMU_REQ_CHUNK];
    let (mut have, mut next) = (0usize, 0usize);
    while i < count {
        if i == u64::from(BATCH) {
            break;
        }
        if next == have {
            let limit = count.min(u64::from(BATCH));
            let n = usize::try_from(limit - i).map_or(MMU_REQ_CHUNK, |n| n.min(MMU_REQ_CHUNK));
            let at = reqs.wrapping_add(i * REQ_SIZE);
            have = if guestmem::copy_from_guest(&hv.mem, cr3v, at, chunk[..n].as_mut_bytes())
                .is_ok()
            {
                n
            } else {
                // Some request in the chunk is unreadable: go one by one so
                // the ones before it are still applied, as Xen does.
                match guestmem::read_obj::<MmuUpdate>(&hv.mem, cr3v, at) {
                    Ok(r) => {
                        chunk[0] = r;
                        1
                    }
                    Err(_) => {
                        rc = Errno::EFAULT.to_ret();
                        break;
                    }
                }
            };
            next = 0;
        }
        let req = chunk[next];
        next += 1;
        let r = match req.cmd() {
            MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD | MMU_PT_UPDATE_NO_TRANSLATE => hv
                .mm()
                .update_entry(
                    req.ptr,
                    req.val,
                    dom,
                    dom,
                    req.cmd() == MMU_PT_UPDATE_PRESERVE_AD,
                )
                .map(|f| flush |= f)
                .map_err(|e| e.errno()),
            MMU_MACHPHYS_UPDATE => {
                let mfn = Mfn(req.addr() >> 12);
                if hv
                    .ft
                    .get(mfn)
                    .is_some_and(|p| p.owner == Owner::Dom(dom) && !p.xen_heap)
                {
                    hv.m2p.set(&hv.mem, mfn, req.val).map_err(|_| Errno::EFAULT)
                } else {
                    Err(Errno::EPERM)
                }
            }
            _ => Err(Errno::ENOSYS),
        };
        if let Err(e) = r {
            rc = e.to_ret();
            break;
        }
        i += 1;
    }
    // L1 changes are the guest's to flush; L2–L4 changes we flush (as Xen).
    if flush {
        hv.flush_tlbs(dom, FlushScope::All);
    }
    batch_finish(
        hv,
        cr3v,
        rc,
        Batch {
            list: reqs,
            stride: REQ_SIZE,
            i,
            count,
            done,
            pdone,
            fd,
            a4: a[4],
        },
    )
}

/// `mmuext_op`.
pub(super) fn mmuext_op(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let (ops, pdone, fd) = (a[0], a[2], a[3]);
    let cr3v = hv.cr3(dom, v);
    let (count, done) = match batch_resume(hv, dom, cr3v, a[1], pdone, fd) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut rc = 0;
    let mut i = 0u64;
    while i < count.min(u64::from(BATCH)) {
        let op: MmuextOp = match guestmem::read_obj(&hv.mem, cr3v, ops.wrapping_add(i * EXT_SIZE)) {
            Ok(o) => o,
            Err(_) => {
                rc = Errno::EFAULT.to_ret();
                break;
            }
        };
        if let Err(e) = mmuext_one(hv, dom, v, &op) {
            rc = e.to_ret();
            break;
        }
        i += 1;
    }
    batch_finish(
        hv,
        cr3v,
        rc,
        Batch {
            list: ops,
            stride: EXT_SIZE,
            i,
            count,
            done,
            pdone,
            fd,
            a4: a[4],
        },
    )
}

/// `mmu_update`/`mmuext_op` entry: the op count without the continuation
/// marker and (for a continuation) what earlier invocations did, read from
/// `pdone`; then the `foreigndom` check (`-EPERM` for another domain).
fn batch_resume(
    hv: &Hypervisor,
    dom: DomId,
    cr3v: u64,
    count_arg: u64,
    pdone: u64,
    fd: u64,
) -> Result<(u64, u64), Ret> {
    let count = count_arg & 0xffff_ffff;
    let resumed = if count & PREEMPTED == 0 {
        (count, 0)
    } else if pdone == 0 {
        (count & !PREEMPTED, 0)
    } else {
        match guestmem::read_obj::<u32>(&hv.mem, cr3v, pdone) {
            Ok(d) => (count & !PREEMPTED, u64::from(d)),
            Err(f) => return Err(f.into()),
        }
    };
    foreign(dom, fd).map_err(Ret::err)?;
    Ok(resumed)
}

/// Where a `mmu_update`/`mmuext_op` invocation stopped.
struct Batch {
    /// Guest address of the op list and the size of one op.
    list: u64,
    stride: u64,
    /// Ops done by this invocation, ops it was asked for, done before it.
    i: u64,
    count: u64,
    done: u64,
    /// The caller's `pdone`, foreign domain and fifth argument.
    pdone: u64,
    fd: u64,
    a4: u64,
}

/// `mmu_update`/`mmuext_op` exit: write the running total to `pdone` and,
/// if the batch was cut at the per-invocation limit without an error,
/// continue with the rest (never truncate).
fn batch_finish(hv: &Hypervisor, cr3v: u64, mut rc: i64, b: Batch) -> Ret {
    if b.pdone != 0 {
        let d = u32::try_from(b.done + b.i).unwrap_or(u32::MAX);
        if guestmem::copy_to_guest(&hv.mem, &hv.ft, cr3v, b.pdone, d.as_bytes()).is_err() && rc == 0
        {
            rc = Errno::EFAULT.to_ret();
        }
    }
    if rc == 0 && b.i < b.count {
        return Ret::Preempted([
            b.list.wrapping_add(b.i * b.stride),
            (b.count - b.i) | PREEMPTED,
            b.pdone,
            b.fd,
            b.a4,
        ]);
    }
    Ret::Val(rc)
}

/// One `mmuext_op`.
fn mmuext_one(hv: &mut Hypervisor, dom: DomId, v: usize, op: &MmuextOp) -> Result<(), Errno> {
    use guest_abi::abi::mmu as m;
    let (cmd, arg1, arg2) = (op.cmd, op.arg1, op.arg2);
    let mfn = Mfn(arg1);
    let res = |r: Result<(), crate::mm::MmError>| r.map_err(|e| e.errno());
    match cmd {
        m::MMUEXT_PIN_L1_TABLE..=m::MMUEXT_PIN_L4_TABLE => {
            let level = u8::try_from(cmd - m::MMUEXT_PIN_L1_TABLE + 1).unwrap_or(0);
            res(hv.mm().pin(mfn, level, dom))
        }
        m::MMUEXT_UNPIN_TABLE => {
            let r = res(hv.mm().unpin(mfn, dom));
            hv.flush_tlbs(dom, FlushScope::All);
            r
        }
        m::MMUEXT_NEW_BASEPTR | m::MMUEXT_NEW_USER_BASEPTR => {
            let user = cmd == m::MMUEXT_NEW_USER_BASEPTR;
            if user && arg1 == 0 {
                let old = hv.vcpu_mut(dom, v).and_then(|vc| vc.pv.user_l4.take());
                if let Some(old) = old {
                    hv.mm().put_page_and_type(old);
                }
                return Ok(());
            }
            if let Err(e) = hv.mm().get_page_and_type(mfn, PageType::L4, dom) {
                return Err(e.errno());
            }
            let Some(vc) = hv.vcpu_mut(dom, v) else {
                return Ok(());
            };
            let old = if user {
                vc.pv.user_l4.replace(mfn)
            } else {
                Some(std::mem::replace(&mut vc.pv.kernel_l4, mfn))
            };
            if vc.pv.kernel_mode != user {
                vc.cpu.cr3 = mfn.addr().0;
            }
            vc.backend.flush_tlb(FlushScope::All);
            if let Some(old) = old {
                hv.mm().put_page_and_type(old);
            }
            Ok(())
        }
        m::MMUEXT_TLB_FLUSH_LOCAL => {
            if let Some(vc) = hv.vcpu_mut(dom, v) {
                vc.backend.flush_tlb(FlushScope::All);
            }
            Ok(())
        }
        m::MMUEXT_INVLPG_LOCAL => {
            if let Some(vc) = hv.vcpu_mut(dom, v) {
                vc.backend.flush_tlb(FlushScope::Page(arg1));
            }
            Ok(())
        }
        // Multi-vCPU masks: flushing every vCPU is a correct superset.
        m::MMUEXT_TLB_FLUSH_MULTI | m::MMUEXT_TLB_FLUSH_ALL => {
            hv.flush_tlbs(dom, FlushScope::All);
            Ok(())
        }
        m::MMUEXT_INVLPG_MULTI | m::MMUEXT_INVLPG_ALL => {
            hv.flush_tlbs(dom, FlushScope::Page(arg1));
            Ok(())
        }
        m::MMUEXT_FLUSH_CACHE | m::MMUEXT_FLUSH_CACHE_GLOBAL => Err(Errno::EACCES), // no I/O privilege
        m::MMUEXT_SET_LDT => {
            let ents = arg2 & 0xffff_ffff;
            if !arg1.is_multiple_of(4096)
                || ents > u64::from(m::MMUEXT_SET_LDT_MAX_ENTS)
                || !guest_range(arg1, ents * 8)
            {
                return Err(Errno::EINVAL);
            }
            if let Some(vc) = hv.vcpu_mut(dom, v) {
                vc.cpu.tables.ldt_base = if ents == 0 { 0 } else { arg1 };
                vc.cpu.tables.ldt_entries = u32::try_from(ents).unwrap_or(0);
            }
            Ok(())
        }
        m::MMUEXT_CLEAR_PAGE => {
            if let Err(e) = hv.mm().get_page_and_type(mfn, PageType::Writable, dom) {
                return Err(e.errno());
            }
            let r = hv.mem.fill(mfn.addr(), 0, 4096);
            hv.mm().put_page_and_type(mfn);
            r.map_err(|_| Errno::EFAULT)
        }
        m::MMUEXT_COPY_PAGE => {
            let src = Mfn(arg2);
            if let Err(e) = hv.mm().get_page(src, dom) {
                return Err(e.errno());
            }
            if let Err(e) = hv.mm().get_page_and_type(mfn, PageType::Writable, dom) {
                hv.mm().put_page(src);
                return Err(e.errno());
            }
            let r = hv.mem.copy_within(src.addr(), mfn.addr(), 4096);
            hv.mm().put_page_and_type(mfn);
            hv.mm().put_page(src);
            r.map_err(|_| Errno::EFAULT)
        }
        // PV superpages were removed from Xen: always -EOPNOTSUPP.
        m::MMUEXT_MARK_SUPER | m::MMUEXT_UNMARK_SUPER => Err(Errno::EOPNOTSUPP),
        _ => Err(Errno::ENOSYS),
    }
}

/// The machine address of the L1 entry mapping `va` under `cr3`, which must
/// be reachable through present entries ending in an L1-typed frame.
fn l1e_of(hv: &Hypervisor, cr3: u64, va: u64) -> Option<MachineAddr> {
    if !canonical(va) {
        return None;
    }
    let mut table = cr3 & pte::ADDR_MASK;
    for shift in [39u32, 30, 21] {
        let e = hv
            .mem
            .read_u64(MachineAddr(table + ((va >> shift) & 511) * 8))
            .ok()?;
        if e & pte::P == 0 {
            return None;
        }
        table = e & pte::ADDR_MASK;
    }
    let p = hv.ft.get(Mfn(table >> 12))?;
    (p.ty == PageType::L1 && p.type_count > 0)
        .then_some(MachineAddr(table + ((va >> 12) & 511) * 8))
}

/// `update_va_mapping`.
pub(super) fn update_va_mapping(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
    val: u64,
    flags: u64,
    fd: u64,
) -> Ret {
    let fd = match foreign(dom, fd) {
        Ok(f) => f,
        Err(e) => return Ret::err(e),
    };
    let Some(at) = l1e_of(hv, hv.cr3(dom, v), va) else {
        return Ret::err(Errno::EINVAL);
    };
    if let Err(e) = hv.mm().update_entry(at.0, val, dom, fd, false) {
        return Ret::err(e.errno());
    }
    let scope = match flags & UVMF_FLUSHTYPE_MASK {
        UVMF_TLB_FLUSH => Some(FlushScope::All),
        UVMF_INVLPG => Some(FlushScope::Page(va)),
        _ => None,
    };
    if let Some(scope) = scope {
        // UVMF_LOCAL (0) with no vCPU bitmap: this vCPU only.
        if flags & !UVMF_FLUSHTYPE_MASK == 0 {
            if let Some(vc) = hv.vcpu_mut(dom, v) {
                vc.backend.flush_tlb(scope);
            }
        } else {
            // UVMF_ALL or a vCPU bitmap: flush every vCPU (a superset).
            hv.flush_tlbs(dom, scope);
        }
    }
    Ret::OK
}
