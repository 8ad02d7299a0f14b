//! `ping`, the first half of the event-channel ping-pong (`hv run ping
//! pong`): domain 1 allocates an interdomain port for domain 2 (`pong`),
//! waits for pong's "ready", then sends N notifications, waiting for pong's
//! answer after each, and times every round trip with pvclock system time.
//! It checks that it received exactly one answer per notification sent and
//! nothing more, prints the median and mean round-trip time, and powers off.
//!
//! The rendezvous convention (domain ids, which port, `n=COUNT` on the
//! command line) and the way both sides wait (events masked, `SCHEDOP_poll`
//! on the port) are described in `link.rs`, which both guests compile.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod link;

use guest_abi::abi::sched::SHUTDOWN_POWEROFF;
use guest_abi::abi::xen::StartInfo;
use guest_abi::evtchn::{self, PortStatus};
use link::{Link, PONG_DOMID, WAIT_TIMEOUT_NS, crash, say};

const NAME: &str = "ping";

guest_abi::entry!(main);

fn main(start_info: &'static StartInfo) -> ! {
    let link = Link::new(NAME, start_info);
    let hv = link.hv();
    let n = link::round_trips(NAME, start_info);

    // Step 1 of the convention: the port pong will bind to.
    let want = link::rendezvous_port(start_info);
    let port = evtchn::alloc_unbound(hv, PONG_DOMID).unwrap_or_else(|e| {
        crash(
            NAME,
            format_args!("EVTCHNOP_alloc_unbound(remote {}): {e}", PONG_DOMID.0),
        )
    });
    if port != want {
        crash(
            NAME,
            format_args!(
                "alloc_unbound gave port {}, but pong will bind to port {} \
                 (the first port after console and xenstore)",
                port.0, want.0
            ),
        );
    }
    link.mask(port);
    say(
        NAME,
        format_args!(
            "port {} is waiting for domain {}; {n} round trips",
            port.0, PONG_DOMID.0
        ),
    );

    // pong's "ready": it has bound the other end.
    if let Err(e) = link.wait(port, link.now_ns() + WAIT_TIMEOUT_NS) {
        crash(NAME, format_args!("pong never said ready: {e}"));
    }
    let peer_port = match evtchn::status(hv, guest_abi::abi::DomId::SELF, port) {
        Ok((PortStatus::Interdomain { dom, port }, _)) if dom == PONG_DOMID => port,
        Ok((s, _)) => crash(
            NAME,
            format_args!("port {} is {s:?}, not bound to pong", port.0),
        ),
        Err(e) => crash(NAME, format_args!("EVTCHNOP_status: {e}")),
    };

    let rtts =
        link::samples().unwrap_or_else(|| crash(NAME, format_args!("samples buffer taken twice")));
    let mut sent: u32 = 0;
    let mut received: u32 = 0;
    // Round trips run back to back: the clock reading that ends one starts
    // the next, so each round costs the guest one pvclock read.
    let mut t0 = link.now_ns();
    for (i, slot) in rtts.iter_mut().take(n as usize).enumerate() {
        if let Err(e) = evtchn::send(hv, port) {
            crash(NAME, format_args!("EVTCHNOP_send #{i}: {e}"));
        }
        sent += 1;
        if let Err(e) = link.wait(port, t0 + WAIT_TIMEOUT_NS) {
            crash(
                NAME,
                format_args!("answer to notification #{i} lost: {e} ({received} received)"),
            );
        }
        received += 1;
        let t1 = link.now_ns();
        *slot = u32::try_from(t1.saturating_sub(t0)).unwrap_or(u32::MAX);
        t0 = t1;
    }
    // pong answers each notification once, so nothing may be left over.
    if link.take_pending(port) {
        crash(NAME, format_args!("an extra notification arrived"));
    }
    if sent != n || received != sent {
        crash(
            NAME,
            format_args!("sent {sent} and received {received}, wanted {n} each"),
        );
    }

    let rtts = &mut rtts[..n as usize];
    let total: u64 = rtts.iter().map(|&x| u64::from(x)).sum();
    let mean = total / u64::from(n);
    let min = rtts.iter().copied().min().unwrap_or(0);
    let max = rtts.iter().copied().max().unwrap_or(0);
    // Upper median; a selection, not a sort, to keep the interpreted
    // epilogue short.
    let len = rtts.len();
    let mid = len / 2;
    let (_, &mut median, upper) = rtts.select_nth_unstable(mid);
    // 99th percentile, selected within the upper half.
    let p99_rank = (len * 99 / 100).saturating_sub(mid + 1);
    let p99 = match upper.len() {
        0 => median,
        len => *upper.select_nth_unstable(p99_rank.min(len - 1)).1,
    };
    say(
        NAME,
        format_args!(
            "{n} round trips over port {} <-> pong port {}: sent {sent}, received {received}, none lost",
            port.0, peer_port.0
        ),
    );
    say(
        NAME,
        format_args!(
            "round trip: median {median} ns, mean {mean} ns, p99 {p99} ns, min {min} ns, max {max} ns"
        ),
    );
    guest_abi::entry::shutdown(SHUTDOWN_POWEROFF)
}
