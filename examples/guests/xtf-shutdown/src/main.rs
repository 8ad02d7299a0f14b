//! Conformance: `SCHEDOP_shutdown` with the reason given as `reason=N` on the
//! kernel command line (poweroff 0, reboot 1, suspend 2, crash 3, watchdog
//! 4); the host checks that `hv run` exits with that status.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use guest_abi::abi::sched::SHUTDOWN_SUSPEND;
use guest_abi::abi::xen::StartInfo;
use xtf_common::{hc, println};

guest_abi::entry!(main);

fn main(si: &'static StartInfo) -> ! {
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
