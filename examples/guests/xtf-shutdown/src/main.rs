//! Conformance: `SCHEDOP_shutdown` with the reason given as `reason=N` on the
//! kernel command line (poweroff 0, reboot 1, suspend 2, crash 3, watchdog
//! 4); the host checks that `hv run` exits with that status. With
//! `watchdog=1` it arms a `SCHEDOP_watchdog` instead and blocks until it
//! expires (`SHUTDOWN_watchdog`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use guest_abi::abi::sched::SHUTDOWN_SUSPEND;
use guest_abi::abi::xen::StartInfo;
use xtf_common::{hc, println};

guest_abi::entry!(main);

fn main(si: &'static StartInfo) -> ! {
    if xtf_common::cmdline_u32(si, "watchdog") == Some(1) {
        watchdog_expires()
    }
    let Some(reason) = xtf_common::cmdline_u32(si, "reason") else {
        println!("FAIL: no reason=N on the command line");
        guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_CRASH)
    };
    println!("PASS: shutting down with reason {reason}");
    let r = if reason == SHUTDOWN_SUSPEND {
        // Suspend names the start_info frame in the third argument.
        let mfn = xtf_common::va_to_mfn(si, core::ptr::from_ref(si) as u64).unwrap_or_default();
        guest_abi::sched::suspend(&hc(), mfn).map(drop)
    } else {
        guest_abi::sched::shutdown(&hc(), reason)
    };
    println!("FAIL: SCHEDOP_shutdown({reason}) returned {r:?}");
    guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_CRASH)
}

/// Create watchdogs up to the limit, destroy one, re-arm the other for one
/// second and block until it bites.
fn watchdog_expires() -> ! {
    use guest_abi::abi::Errno;
    use guest_abi::sched::watchdog;
    let h = hc();
    xtf_common::check_eq("create a watchdog (id 1)", watchdog(&h, 0, 60), Ok(1));
    xtf_common::check_eq(
        "create a second watchdog (id 2)",
        watchdog(&h, 0, 60),
        Ok(2),
    );
    xtf_common::check_errno("a third watchdog", watchdog(&h, 0, 60), Errno::ENOSPC);
    xtf_common::check_eq("destroy watchdog 2", watchdog(&h, 2, 0), Ok(0));
    xtf_common::check_errno(
        "re-arm the destroyed watchdog",
        watchdog(&h, 2, 1),
        Errno::EINVAL,
    );
    xtf_common::check_eq("re-arm watchdog 1 for 1 s", watchdog(&h, 1, 1), Ok(0));
    println!("blocking until the watchdog expires");
    loop {
        let _ = guest_abi::sched::block(&h);
    }
}
