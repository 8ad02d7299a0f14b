//! Scheduler wrappers (`sched_op`, hypercall 29; `set_timer_op`, 15).

use crate::abi::hypercall_nr::{SCHED_OP, SET_TIMER_OP};
use crate::abi::sched::*;
use crate::abi::{DomId, Errno, EvtchnPort, Mfn};
use crate::hypercall::{Hypercall, arg_mut, arg_ref};

fn op<H: Hypercall + ?Sized>(h: &H, cmd: u32, arg: u64, arg3: u64) -> Result<u64, Errno> {
    h.call_checked(SCHED_OP, [u64::from(cmd), arg, arg3, 0, 0])
}

/// Gives up the CPU.
pub fn yield_<H: Hypercall + ?Sized>(h: &H) -> Result<(), Errno> {
    op(h, SCHEDOP_YIELD, 0, 0).map(drop)
}

/// Unmasks events and blocks until one is deliverable.
pub fn block<H: Hypercall + ?Sized>(h: &H) -> Result<(), Errno> {
    op(h, SCHEDOP_BLOCK, 0, 0).map(drop)
}

/// Stops the domain with `reason` (`SHUTDOWN_*`, not suspend). Returns only on
/// error.
pub fn shutdown<H: Hypercall + ?Sized>(h: &H, reason: u32) -> Result<(), Errno> {
    let mut a = SchedShutdown { reason };
    op(h, SCHEDOP_SHUTDOWN, arg_mut(&mut a), 0).map(drop)
}

/// Suspends; `start_info_mfn` goes in the third argument. Returns `true` if
/// the suspend was cancelled (resumed in the same domain), `false` when
/// resumed in a new domain.
pub fn suspend<H: Hypercall + ?Sized>(h: &H, start_info_mfn: Mfn) -> Result<bool, Errno> {
    let mut a = SchedShutdown {
        reason: SHUTDOWN_SUSPEND,
    };
    op(h, SCHEDOP_SHUTDOWN, arg_mut(&mut a), start_info_mfn.0).map(|r| r != 0)
}

/// Records `reason` for a later shutdown.
pub fn shutdown_code<H: Hypercall + ?Sized>(h: &H, reason: u32) -> Result<(), Errno> {
    let mut a = SchedShutdown { reason };
    op(h, SCHEDOP_SHUTDOWN_CODE, arg_mut(&mut a), 0).map(drop)
}

/// Blocks until one of `ports` is pending or system time reaches `timeout_ns`
/// (0 = none). At most [`SCHEDOP_POLL_MAX_PORTS`] ports.
pub fn poll<H: Hypercall + ?Sized>(
    h: &H,
    ports: &[EvtchnPort],
    timeout_ns: u64,
) -> Result<(), Errno> {
    let nr_ports = u32::try_from(ports.len()).map_err(|_| Errno::EINVAL)?;
    if nr_ports > SCHEDOP_POLL_MAX_PORTS {
        return Err(Errno::EINVAL);
    }
    // Xen reads a plain `evtchn_port_t` array.
    let mut raw = [0u32; SCHEDOP_POLL_MAX_PORTS as usize];
    for (d, s) in raw.iter_mut().zip(ports) {
        *d = s.0;
    }
    let mut a = SchedPoll {
        ports: arg_ref(&raw),
        nr_ports,
        _pad: 0,
        timeout: timeout_ns,
    };
    op(h, SCHEDOP_POLL, arg_mut(&mut a), 0).map(drop)
}

/// Shuts down another domain (privileged).
pub fn remote_shutdown<H: Hypercall + ?Sized>(h: &H, dom: DomId, reason: u32) -> Result<(), Errno> {
    let mut a = SchedRemoteShutdown {
        domain_id: dom.0,
        _pad: 0,
        reason,
    };
    op(h, SCHEDOP_REMOTE_SHUTDOWN, arg_mut(&mut a), 0).map(drop)
}

/// Watchdog control: `id` 0 creates one (returns its id), else re-arms
/// (`timeout_s` > 0) or destroys (`timeout_s` = 0) watchdog `id`.
pub fn watchdog<H: Hypercall + ?Sized>(h: &H, id: u32, timeout_s: u32) -> Result<u32, Errno> {
    let mut a = SchedWatchdog {
        id,
        timeout: timeout_s,
    };
    let r = op(h, SCHEDOP_WATCHDOG, arg_mut(&mut a), 0)?;
    u32::try_from(r).map_err(|_| Errno::ERANGE)
}

/// Arms this vCPU's single-shot timer for absolute system time `abs_ns`
/// (0 cancels).
pub fn set_timer_op<H: Hypercall + ?Sized>(h: &H, abs_ns: u64) -> Result<(), Errno> {
    Errno::check(h.call(SET_TIMER_OP, [abs_ns, 0, 0, 0, 0]))
}
