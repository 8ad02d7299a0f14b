//! `sched_op` (29), its compat form (6) and `set_timer_op` (15): yield, block, poll, shutdown, watchdogs, one-shot timers.

use guest_abi::abi::{Errno, sched};
use hv_cpu::state::reg;
use zerocopy::IntoBytes;

use super::{Next, Ret, read, read_bytes, with_vcpu};
use crate::hv::{Hypervisor, RunState, VcpuMem};
use crate::machine::DomId;

/// `SCHEDOP_block` (and an idle `hlt`): re-enable events, then sleep
/// unless one is deliverable.
pub(super) fn block(hv: &mut Hypervisor, dom: DomId, v: usize) -> Next {
    let Some(VcpuMem { vc, mem, .. }) = hv.vcpu_mem(dom, v) else {
        return Next::Stop;
    };
    let _ = vc.pv.set_upcall_mask(mem, false);
    if !vc.pv.upcall_deliverable(mem) {
        vc.state = RunState::Blocked;
    }
    Next::Stop
}

/// `SCHEDOP_shutdown`: record the reason and stop the domain.
pub(super) fn shutdown(hv: &mut Hypervisor, dom: DomId, reason: u64) -> Ret {
    let Ok(reason) = u32::try_from(reason) else {
        return Ret::err(Errno::EINVAL);
    };
    if reason > sched::SHUTDOWN_MAX {
        return Ret::err(Errno::EINVAL);
    }
    if let Some(d) = hv.domains.get_mut(&dom) {
        d.shutdown = Some(reason);
        tracing::info!(dom = dom.0, reason, "domain shut down");
    }
    Ret::Stop
}

/// `sched_op(cmd, arg)`.
pub(super) fn sched_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::err(Errno::ENOSYS);
    };
    match cmd {
        sched::SCHEDOP_YIELD => Ret::ValStop(0),
        sched::SCHEDOP_BLOCK => {
            if let Some(vc) = hv.vcpu_mut(dom, v) {
                vc.cpu.gpr[reg::RAX] = 0;
            }
            block(hv, dom, v);
            Ret::Stop
        }
        sched::SCHEDOP_SHUTDOWN => match read::<u32>(hv, dom, v, arg) {
            Ok(reason) => shutdown(hv, dom, u64::from(reason)),
            Err(f) => f.into(),
        },
        sched::SCHEDOP_SHUTDOWN_CODE => match read::<u32>(hv, dom, v, arg) {
            Ok(r) if r <= sched::SHUTDOWN_MAX => {
                if let Some(d) = hv.domains.get_mut(&dom) {
                    d.shutdown_code = Some(r);
                }
                Ret::OK
            }
            Ok(_) => Ret::err(Errno::EINVAL),
            Err(f) => f.into(),
        },
        sched::SCHEDOP_POLL => poll(hv, dom, v, arg),
        sched::SCHEDOP_WATCHDOG => match read::<sched::SchedWatchdog>(hv, dom, v, arg) {
            Ok(w) => watchdog(hv, dom, w),
            Err(f) => f.into(),
        },
        // Shutting down another domain needs privileges no domain has here.
        sched::SCHEDOP_REMOTE_SHUTDOWN => match read::<sched::SchedRemoteShutdown>(hv, dom, v, arg)
        {
            Ok(_) => Ret::err(Errno::EPERM),
            Err(f) => f.into(),
        },
        _ => Ret::err(Errno::ENOSYS),
    }
}

/// `SCHEDOP_watchdog`: id 0 creates a watchdog (returning its id, 1 or 2,
/// or `ENOSPC`); a live id with timeout 0 destroys it, with a timeout
/// re-arms it; expiry shuts the domain down with `SHUTDOWN_watchdog`.
fn watchdog(hv: &mut Hypervisor, dom: DomId, w: sched::SchedWatchdog) -> Ret {
    let deadline = hv
        .clock
        .now_ns()
        .saturating_add(u64::from(w.timeout).saturating_mul(1_000_000_000));
    let Some(d) = hv.domains.get_mut(&dom) else {
        return Ret::Stop;
    };
    if w.id == 0 {
        return match d.watchdogs.iter().position(Option::is_none) {
            Some(i) => {
                if let Some(slot) = d.watchdogs.get_mut(i) {
                    *slot = Some(deadline);
                }
                Ret::Val(i64::try_from(i).unwrap_or(0) + 1)
            }
            None => Ret::err(Errno::ENOSPC),
        };
    }
    let slot = usize::try_from(w.id - 1)
        .ok()
        .and_then(|i| d.watchdogs.get_mut(i));
    match slot {
        Some(t @ Some(_)) => {
            *t = (w.timeout != 0).then_some(deadline);
            Ret::OK
        }
        _ => Ret::err(Errno::EINVAL),
    }
}

fn poll(hv: &mut Hypervisor, dom: DomId, v: usize, arg: u64) -> Ret {
    let p: sched::SchedPoll = match read(hv, dom, v, arg) {
        Ok(p) => p,
        Err(f) => return f.into(),
    };
    let nr_ports = p.nr_ports;
    if nr_ports > 128 {
        return Ret::err(Errno::EINVAL);
    }
    let mut ports = vec![0u32; usize::try_from(nr_ports).unwrap_or(0)];
    if let Err(f) = read_bytes(hv, dom, v, p.ports, ports.as_mut_bytes()) {
        return f.into();
    }
    if ports.iter().any(|&x| x >= 4096) {
        return Ret::err(Errno::EINVAL);
    }
    let deliverable = hv
        .vcpu(dom, v)
        .is_some_and(|x| x.pv.upcall_deliverable(&hv.mem));
    if deliverable
        || hv
            .evtchn
            .poll(&hv.mem, dom, u32::try_from(v).unwrap_or(0), &ports)
    {
        return Ret::OK;
    }
    let deadline = (p.timeout != 0).then_some(p.timeout);
    if let Some(vc) = hv.vcpu_mut(dom, v) {
        vc.cpu.gpr[reg::RAX] = 0;
        vc.state = RunState::Polling { deadline };
    }
    Ret::Stop
}

/// The compat `sched_op(cmd, arg)` (hypercall 6): yield and block as
/// `sched_op`; shutdown takes the reason by value.
pub(super) fn sched_op_compat(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    cmd: u64,
    arg: u64,
) -> Ret {
    match cmd {
        0 | 1 => sched_op(hv, dom, v, cmd, 0),
        2 => shutdown(hv, dom, arg),
        _ => Ret::err(Errno::ENOSYS),
    }
}

/// `set_timer_op(timeout)`: arm (or with 0 cancel) the one-shot timer at
/// system time `timeout`; a negative or absurdly distant time fires in
/// 100 ms, as Linux's tick needs.
pub(super) fn set_timer_op(hv: &mut Hypervisor, dom: DomId, v: usize, t: u64) -> Ret {
    let now = hv.clock.now_ns();
    with_vcpu(hv, dom, v, |vc| {
        vc.singleshot = match t {
            0 => None,
            t if t.cast_signed() < 0 || t > now.saturating_add(1 << 50) => Some(now + 100_000_000),
            t => Some(t),
        };
        0
    })
}
