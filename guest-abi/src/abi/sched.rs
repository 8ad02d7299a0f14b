//! Scheduling (`sched_op`, hypercall 29) and `set_timer_op` (15).

/// Give up the CPU; stay runnable.
pub const SCHEDOP_YIELD: u32 = 0;
/// Sleep until an event is pending for this vCPU (unmasks upcalls).
pub const SCHEDOP_BLOCK: u32 = 1;
/// Stop the domain with a reason ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Sleep until one of the listed ports is pending or a timeout ([`SchedPoll`]).
pub const SCHEDOP_POLL: u32 = 3;
/// Shut down another domain (privileged; [`SchedRemoteShutdown`]).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// Record the shutdown reason without shutting down ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// Create, pet or destroy a watchdog timer.
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// Pin the vCPU to a physical CPU (privileged).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Maximum ports in one `SCHEDOP_poll`.
pub const SCHEDOP_POLL_MAX_PORTS: u32 = 128;
/// Maximum watchdogs per domain.
pub const SCHEDOP_WATCHDOG_MAX: u32 = 2;

/// Reason: the domain halted (exit status 0 in `hv`).
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Reason: the domain asks to be restarted.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Suspend: the third `sched_op` argument must be the MFN of start_info.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Reason: the domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Reason: a watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Reason: reset the domain keeping its memory (kexec).
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// Largest defined reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `set_timer_op` values further than this many ns in the future are
/// replaced by "now + 100 ms" (as are negative ones).
pub const SET_TIMER_MAX_DELTA_NS: u64 = 1 << 50;

zc! {
    /// `struct sched_shutdown` (`SCHEDOP_shutdown`, `SCHEDOP_shutdown_code`).
    pub struct SchedShutdown {
        /// IN: `SHUTDOWN_*`.
        pub reason: u32,
    }
}
assert_layout!(SchedShutdown, size = 4, reason = 0);

zc! {
    /// `struct sched_poll`.
    pub struct SchedPoll {
        /// IN: guest pointer to a `u32` array of ports.
        pub ports: u64,
        /// IN: number of ports (≤ 128).
        pub nr_ports: u32,
        /// Padding (zero).
        pub _pad: u32,
        /// IN: absolute system time (ns) to give up at; 0 = no timeout.
        pub timeout: u64,
    }
}
assert_layout!(SchedPoll, size = 24, ports = 0, nr_ports = 8, timeout = 16);

zc! {
    /// `struct sched_remote_shutdown` (privileged / device model).
    pub struct SchedRemoteShutdown {
        /// IN: target domain.
        pub domain_id: u16,
        /// Padding (zero).
        pub _pad: u16,
        /// IN: `SHUTDOWN_*`.
        pub reason: u32,
    }
}
assert_layout!(SchedRemoteShutdown, size = 8, domain_id = 0, reason = 4);

zc! {
    /// `struct sched_watchdog`.
    pub struct SchedWatchdog {
        /// IN: 0 = create (returns the new id); else the watchdog to re-arm/destroy.
        pub id: u32,
        /// IN: seconds; 0 with a non-zero id destroys it.
        pub timeout: u32,
    }
}
assert_layout!(SchedWatchdog, size = 8, id = 0, timeout = 4);

zc! {
    /// `struct sched_pin_override` (hardware domain only).
    pub struct SchedPinOverride {
        /// IN: physical CPU, or negative to drop the override.
        pub pcpu: i32,
    }
}
assert_layout!(SchedPinOverride, size = 4, pcpu = 0);
