//! Conformance: event channels and timers. A loopback channel (an unbound
//! port bound back to by the same domain) delivers an upcall for the other
//! end on `EVTCHNOP_send` (and for the bound port itself on bind), setting the 2-level pending bits and
//! `evtchn_upcall_pending` while events are masked and entering the event
//! callback once they are unmasked; a masked port stays pending until
//! `EVTCHNOP_unmask`; VIRQ_TIMER fires for `VCPUOP_set_singleshot_timer`,
//! `set_timer_op` and the periodic timer, never before the deadline.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

use guest_abi::abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT};
use guest_abi::abi::evtchn::VIRQ_TIMER;
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{DomId, GuestVa};
use guest_abi::evtchn::{self, PortStatus};
use xtf_common::arch::{self, Entry};
use xtf_common::{check, check_eq, check_errno, check_ok, finish, hc, println};

guest_abi::entry!(main);

static LAST_PORT: AtomicU32 = AtomicU32::new(0);
static EVENTS: AtomicU32 = AtomicU32::new(0);
static TIMER_PORT: AtomicU32 = AtomicU32::new(u32::MAX);
static TICKS: AtomicU32 = AtomicU32::new(0);

fn on_event(port: u32) {
    if port == TIMER_PORT.load(Ordering::SeqCst) {
        TICKS.fetch_add(1, Ordering::SeqCst);
    } else {
        LAST_PORT.store(port, Ordering::SeqCst);
        EVENTS.fetch_add(1, Ordering::SeqCst);
    }
}

fn now_ns() -> u64 {
    guest_abi::pvclock::system_time_now(&arch::vcpu0().time(), arch::rdtsc).unwrap_or(0)
}

fn pending(port: u32) -> bool {
    arch::evtchn_pending(port as usize / 64).load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

/// Unmask events and make Xen look at them (a hypercall returns through
/// the upcall check), then mask again.
fn open_window() {
    arch::vcpu0().set_upcall_mask(0);
    let _ = guest_abi::version::version(&hc());
    arch::vcpu0().set_upcall_mask(1);
}

/// Block until `TICKS` passes `target` (bounded).
fn wait_ticks(target: u32) -> bool {
    for _ in 0..1000 {
        if TICKS.load(Ordering::SeqCst) >= target {
            break;
        }
        let _ = guest_abi::sched::block(&hc());
    }
    arch::vcpu0().set_upcall_mask(1);
    TICKS.load(Ordering::SeqCst) >= target
}

fn main(si: &'static StartInfo) -> ! {
    println!("xtf-events: event-channel loopback and timers");
    let _ = arch::map_shared_info(si);
    arch::note_shared_info_mapped();
    arch::install_trap_table();
    arch::set_event_handler(on_event);
    let h = hc();
    check_ok(
        "register the event callback (callback_op, mask events)",
        guest_abi::callback::register(
            &h,
            CALLBACKTYPE_EVENT,
            CALLBACKF_MASK_EVENTS,
            GuestVa(Entry::Event.address()),
        ),
    );

    // Loopback channel.
    let Some(a) = check_ok(
        "alloc_unbound for ourselves",
        evtchn::alloc_unbound(&h, DomId::SELF),
    ) else {
        finish()
    };
    let Some(b) = check_ok(
        "bind_interdomain to our own unbound port",
        evtchn::bind_interdomain(&h, DomId::SELF, a),
    ) else {
        finish()
    };
    check(
        a != b,
        format_args!("two distinct ports {} and {}", a.0, b.0),
    );
    match evtchn::status(&h, DomId::SELF, a) {
        Ok((PortStatus::Interdomain { port, .. }, 0)) => {
            check_eq("status: interdomain, peer port", port, b)
        }
        other => check(false, format_args!("status of port {}: {other:?}", a.0)),
    };

    // The newly bound local port is always set pending.
    check(
        pending(b.0),
        format_args!("bound port {} pending after bind", b.0),
    );
    open_window();
    check_eq(
        "its upcall reports the bound port",
        LAST_PORT.load(Ordering::SeqCst),
        b.0,
    );

    let before = EVENTS.load(Ordering::SeqCst);
    check_ok("send on the loopback channel", evtchn::send(&h, b));
    check(
        pending(a.0),
        format_args!("peer port {} pending after send", a.0),
    );
    check_eq(
        "evtchn_upcall_pending set",
        arch::vcpu0().upcall_pending(),
        1,
    );
    check_eq(
        "no upcall while events are masked",
        EVENTS.load(Ordering::SeqCst),
        before,
    );
    open_window();
    check_eq(
        "upcall delivered once unmasked",
        EVENTS.load(Ordering::SeqCst),
        before + 1,
    );
    check_eq(
        "upcall reports the peer port",
        LAST_PORT.load(Ordering::SeqCst),
        a.0,
    );
    check(
        !pending(a.0),
        format_args!("handler cleared the pending bit"),
    );
    check_ok("send in the other direction", evtchn::send(&h, a));
    open_window();
    check_eq(
        "reverse send delivered to the other port",
        LAST_PORT.load(Ordering::SeqCst),
        b.0,
    );

    // A masked port stays pending until EVTCHNOP_unmask.
    arch::evtchn_mask(a.0 as usize / 64).fetch_or(1 << (a.0 % 64), Ordering::SeqCst);
    let before = EVENTS.load(Ordering::SeqCst);
    let _ = evtchn::send(&h, b);
    open_window();
    check_eq(
        "no upcall for a masked port",
        EVENTS.load(Ordering::SeqCst),
        before,
    );
    check(pending(a.0), format_args!("masked port stays pending"));
    arch::vcpu0().set_upcall_mask(0);
    check_ok("EVTCHNOP_unmask", evtchn::unmask(&h, a));
    arch::vcpu0().set_upcall_mask(1);
    check_eq(
        "unmask re-raises the pending port",
        EVENTS.load(Ordering::SeqCst),
        before + 1,
    );
    check_ok("close the loopback channel", evtchn::close(&h, b));
    let st = evtchn::status(&h, DomId::SELF, a);
    check(
        matches!(st, Ok((PortStatus::Unbound { .. }, _))),
        format_args!("peer of a closed port is unbound again: {st:?}"),
    );

    // Timers on VIRQ_TIMER.
    check_ok(
        "stop the default periodic timer",
        guest_abi::vcpu::stop_periodic_timer(&h, 0),
    );
    let Some(t) = check_ok("bind VIRQ_TIMER", evtchn::bind_virq(&h, VIRQ_TIMER, 0)) else {
        finish()
    };
    TIMER_PORT.store(t.0, Ordering::SeqCst);
    let deadline = now_ns() + 2_000_000;
    check_ok(
        "VCPUOP_set_singleshot_timer",
        guest_abi::vcpu::set_singleshot_timer(&h, 0, deadline, 0),
    );
    check(wait_ticks(1), format_args!("singleshot timer fired"));
    check(
        now_ns() >= deadline,
        format_args!("not before its deadline"),
    );
    let deadline = now_ns() + 1_000_000;
    check_ok("set_timer_op", guest_abi::sched::set_timer_op(&h, deadline));
    check(wait_ticks(2), format_args!("set_timer_op timer fired"));
    check(
        now_ns() >= deadline,
        format_args!("not before its deadline"),
    );
    check_ok(
        "VCPUOP_set_periodic_timer 1 ms",
        guest_abi::vcpu::set_periodic_timer(&h, 0, 1_000_000),
    );
    check(
        wait_ticks(5),
        format_args!("periodic timer ticks three times"),
    );
    check_ok(
        "stop the periodic timer",
        guest_abi::vcpu::stop_periodic_timer(&h, 0),
    );
    check_errno(
        "binding VIRQ_TIMER twice",
        evtchn::bind_virq(&h, VIRQ_TIMER, 0),
        guest_abi::abi::Errno::EEXIST,
    );
    // SCHEDOP_poll: times out with nothing pending, returns at once when a
    // polled port is pending (even with events masked).
    if let Ok(p) = evtchn::alloc_unbound(&h, DomId(0)) {
        check_ok("send on an unbound port is dropped", evtchn::send(&h, p));
        check(!pending(p.0), format_args!("and leaves nothing pending"));
        let deadline = now_ns() + 2_000_000;
        check_ok(
            "SCHEDOP_poll with a timeout",
            guest_abi::sched::poll(&h, &[p], deadline),
        );
        check(
            now_ns() >= deadline,
            format_args!("poll returned at its timeout"),
        );
    }
    arch::evtchn_pending(t.0 as usize / 64).fetch_or(1 << (t.0 % 64), Ordering::SeqCst);
    // No timeout: this returns only because the polled port is pending.
    check_ok(
        "SCHEDOP_poll (no timeout) on a pending port returns",
        guest_abi::sched::poll(&h, &[t], 0),
    );
    arch::evtchn_pending(t.0 as usize / 64).fetch_and(!(1 << (t.0 % 64)), Ordering::SeqCst);
    check_eq(
        "periodic timer below 1 ms refused",
        guest_abi::vcpu::set_periodic_timer(&h, 0, 999_999),
        Err(guest_abi::abi::Errno::EINVAL),
    );
    finish()
}
