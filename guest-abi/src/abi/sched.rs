//! Scheduling (`sched_op`, hypercall 29) and `set_timer_op` (15).

pub const SCHEDOP_YIELD: u32 = 0;
pub const SCHEDOP_BLOCK: u32 = 1;
pub const SCHEDOP_SHUTDOWN: u32 = 2;
pub const SCHEDOP_POLL: u32 = 3;
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
pub const SCHEDOP_WATCHDOG: u32 = 6;
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Maximum ports in one `SCHEDOP_poll`.
pub const SCHEDOP_POLL_MAX_PORTS: u32 = 128;
/// Maximum watchdogs per domain.
pub const SCHEDOP_WATCHDOG_MAX: u32 = 2;

pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Suspend: the third `sched_op` argument must be the MFN of start_info.
pub const SHUTDOWN_SUSPEND: u32 = 2;
pub const SHUTDOWN_CRASH: u32 = 3;
pub const SHUTDOWN_WATCHDOG: u32 = 4;
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
