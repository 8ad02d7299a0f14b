//! The pvsdk demo guest: greet, read the paravirtual clock, take three timer
//! ticks through an event channel, power off.
//!
//! It shows the PV essentials in one page: the emergency console
//! (`console_io`), mapping `shared_info`, the pvclock seqlock, binding
//! `VIRQ_TIMER`, a one-shot timer (`set_timer_op`), the event callback with
//! its assembly entry and `HYPERVISOR_iret`, and `SCHEDOP_block`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod upcall;

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, Ordering};

use guest_abi::abi::GuestVa;
use guest_abi::abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT};
use guest_abi::abi::evtchn::VIRQ_TIMER;
use guest_abi::abi::xen::StartInfo;
use guest_abi::pvclock::{read_wallclock, system_time_now};
use guest_abi::{callback, evtchn, sched, vcpu};

guest_abi::entry!(main);

/// Timer ticks seen by the event handler.
static TICKS: AtomicU32 = AtomicU32::new(0);

/// Called by the upcall for every pending port.
fn on_event(port: u32, timer_port: u32) {
    if port == timer_port {
        TICKS.fetch_add(1, Ordering::SeqCst);
    }
}

fn main(si: &'static StartInfo) -> ! {
    let h = upcall::hypercalls();
    println("Hello from a pvsdk PV guest!");

    // shared_info holds our vcpu_info, with the pvclock, and the wallclock.
    let shared = upcall::map_shared_info(si);
    let vcpu0 = shared.vcpu_info(0).expect("vCPU 0 exists");
    let now = || system_time_now(&vcpu0.time(), upcall::rdtsc).unwrap_or(0);
    let wall = read_wallclock(&shared, 1000).unwrap_or_default().at(now());
    printf(format_args!(
        "pvclock: system time {} ns, wallclock {}.{:09} s since 1970",
        now(),
        wall.sec,
        wall.nsec
    ));

    // Timer interrupts arrive as events on a VIRQ_TIMER port.
    let timer = evtchn::bind_virq(&h, VIRQ_TIMER, 0).expect("bind VIRQ_TIMER");
    upcall::set_handler(timer.0, on_event);
    callback::register(
        &h,
        CALLBACKTYPE_EVENT,
        CALLBACKF_MASK_EVENTS,
        GuestVa(upcall::entry_address()),
    )
    .expect("register the event callback");
    vcpu::stop_periodic_timer(&h, 0).expect("stop the 10 ms default timer");

    for tick in 1..=ticks(si) {
        let deadline = now() + 5_000_000; // 5 ms
        sched::set_timer_op(&h, deadline).expect("arm the one-shot timer");
        while TICKS.load(Ordering::SeqCst) < tick {
            // Unmasks events and sleeps until one is delivered.
            sched::block(&h).expect("block");
        }
        vcpu0.set_upcall_mask(1);
        printf(format_args!("tick {tick} at {} ns", now()));
    }

    println("Goodbye.");
    guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_POWEROFF)
}

/// Timer ticks to take: `ticks=N` on the command line (at most 100), else 3.
/// `hv bench` boots `hello` with `ticks=0` to time create → shutdown alone.
fn ticks(si: &StartInfo) -> u32 {
    let line = si.cmd_line.split(|&b| b == 0).next().unwrap_or(&[]);
    line.split(|&b| b == b' ')
        .find_map(|arg| arg.strip_prefix(b"ticks="))
        .and_then(|n| core::str::from_utf8(n).ok()?.parse::<u32>().ok())
        .map_or(3, |n| n.min(100))
}

fn println(s: &str) {
    printf(format_args!("{s}"));
}

/// Print one formatted line on the emergency console.
fn printf(args: core::fmt::Arguments<'_>) {
    struct Line([u8; 128], usize);
    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if let Some(slot) = self.0.get_mut(self.1) {
                    *slot = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut line = Line([0; 128], 0);
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    guest_abi::entry::console_write(line.0.get(..line.1).unwrap_or(&[]));
}
