//! `vcpu_op` (24): vCPU state, timers, runstate, `vcpu_info` registration.

use guest_abi::abi::{Errno, vcpu as vo};
use hv_cpu::mem::{MachineAddr, Mfn};

use crate::hv::{RunState, VcpuMem};
use crate::machine::PageType;

use super::{Ret, read, with_vcpu, write};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `vcpu_op(cmd, vcpu, arg)`.
pub(super) fn vcpu_op(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let Ok(cmd) = u32::try_from(a[0]) else {
        return Ret::err(Errno::ENOSYS);
    };
    let Some(nvcpus) = hv.domains.get(&dom).map(|d| d.vcpus.len()) else {
        return Ret::Stop;
    };
    let Some(target) = usize::try_from(a[1]).ok().filter(|&t| t < nvcpus) else {
        return Ret::err(Errno::ENOENT); // ENOENT
    };
    let now = hv.clock.now_ns();
    match cmd {
        vo::VCPUOP_IS_UP => Ret::Val(i64::from(
            hv.vcpu(dom, target)
                .is_some_and(|x| x.state != RunState::Down),
        )),
        vo::VCPUOP_DOWN => {
            if let Some(vc) = hv.vcpu_mut(dom, target) {
                vc.state = RunState::Down;
            }
            if target == v {
                Ret::ValStop(0)
            } else {
                Ret::OK
            }
        }
        vo::VCPUOP_SET_PERIODIC_TIMER => {
            match read::<vo::VcpuSetPeriodicTimer>(hv, dom, v, a[2]).map(|t| t.period_ns) {
                Ok(p) if p >= 1_000_000 => with_vcpu(hv, dom, target, |vc| {
                    vc.periodic = Some((p, now + p));
                    0
                }),
                Ok(_) => Ret::err(Errno::EINVAL),
                Err(f) => f.into(),
            }
        }
        vo::VCPUOP_STOP_PERIODIC_TIMER => with_vcpu(hv, dom, target, |vc| {
            vc.periodic = None;
            0
        }),
        vo::VCPUOP_SET_SINGLESHOT_TIMER | vo::VCPUOP_STOP_SINGLESHOT_TIMER if target != v => {
            Ret::err(Errno::EINVAL)
        }
        vo::VCPUOP_SET_SINGLESHOT_TIMER => {
            match read::<vo::VcpuSetSingleshotTimer>(hv, dom, v, a[2]) {
                // A timeout in the past fires at once (current Xen).
                Ok(t) => with_vcpu(hv, dom, v, |vc| {
                    vc.singleshot = Some(t.timeout_abs_ns.max(now));
                    0
                }),
                Err(f) => f.into(),
            }
        }
        vo::VCPUOP_STOP_SINGLESHOT_TIMER => with_vcpu(hv, dom, v, |vc| {
            vc.singleshot = None;
            0
        }),
        vo::VCPUOP_GET_RUNSTATE_INFO => {
            let Some(vc) = hv.vcpu(dom, target) else {
                return Ret::Stop;
            };
            let state: u64 = match vc.state {
                RunState::Runnable => 0,
                RunState::Blocked | RunState::Polling { .. } => 2,
                RunState::Down => 3,
            };
            let info: [u64; 6] = [
                state,
                now,
                vc.running_ns,
                0,
                now.saturating_sub(vc.running_ns),
                0,
            ];
            match write(hv, dom, v, a[2], &info) {
                Ok(()) => Ret::OK,
                Err(f) => f.into(),
            }
        }
        vo::VCPUOP_REGISTER_VCPU_INFO => register_vcpu_info(hv, dom, v, target, a[2]),
        _ => Ret::err(Errno::ENOSYS),
    }
}

fn register_vcpu_info(hv: &mut Hypervisor, dom: DomId, v: usize, target: usize, arg: u64) -> Ret {
    let r: vo::VcpuRegisterVcpuInfo = match read(hv, dom, v, arg) {
        Ok(r) => r,
        Err(f) => return f.into(),
    };
    let (mfn, offset) = (Mfn(r.mfn), u64::from(r.offset));
    if offset + 64 > 4096 {
        return Ret::err(Errno::EINVAL);
    }
    // Registration is once per vCPU (Xen: -Errno::EINVAL.to_ret() the second time).
    let registered = hv.vcpu(dom, target).map(|x| x.pv.vcpu_info_frame.is_some());
    match registered {
        None => return Ret::Stop,
        Some(true) => return Ret::err(Errno::EINVAL),
        Some(false) => {}
    }
    // The hypervisor writes vcpu_info from now on: hold a writable type
    // reference so that the frame can never become a page table (or a
    // descriptor page) while it is registered.
    if hv
        .mm()
        .get_page_and_type(mfn, PageType::Writable, dom)
        .is_err()
    {
        return Ret::err(Errno::EINVAL);
    }
    let at = MachineAddr(mfn.addr().0 + offset);
    let Some(VcpuMem { vc, mem, .. }) = hv.vcpu_mem(dom, target) else {
        return Ret::Stop;
    };
    vc.pv.vcpu_info_frame = Some(mfn);
    // Carry the current contents over, as Xen does.
    let mut cur = [0u8; 64];
    let _ = mem.read(vc.pv.vcpu_info, &mut cur);
    let _ = mem.write(at, &cur);
    vc.pv.vcpu_info = at;
    if let Some(e) = hv.evtchn.domain_mut(dom) {
        e.set_vcpu_info(u32::try_from(target).unwrap_or(0), at);
    }
    Ret::OK
}
