//! `pong`, the second half of the event-channel ping-pong (`hv run ping
//! pong`): domain 2 binds to the port domain 1 (`ping`) allocated for it,
//! says "ready" with one notification, then answers each of ping's N
//! notifications with one of its own. It checks that it received exactly N
//! and answered each, and powers off.
//!
//! The rendezvous convention (domain ids, which port, `n=COUNT` on the
//! command line) and the way both sides wait (events masked, `SCHEDOP_poll`
//! on the port) are described in `../../ping/src/link.rs`, which both guests
//! compile.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

#[path = "../../ping/src/link.rs"]
mod link;

use guest_abi::abi::sched::SHUTDOWN_POWEROFF;
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{DomId, Errno};
use guest_abi::evtchn::{self, PortStatus};
use link::{BIND_ATTEMPTS, Link, PING_DOMID, WAIT_TIMEOUT_NS, crash, say};

const NAME: &str = "pong";
/// Notifications between renewals of the wait deadline.
const DEADLINE_RENEWAL: u32 = 64;

guest_abi::entry!(main);

fn main(start_info: &'static StartInfo) -> ! {
    let link = Link::new(NAME, start_info);
    let hv = link.hv();
    let n = link::round_trips(NAME, start_info);

    // Step 2 of the convention: bind to ping's port once ping has made it.
    // EINVAL: not allocated (for us) yet; ESRCH: domain 1 does not exist yet.
    let remote = link::rendezvous_port(start_info);
    let mut attempt = 0;
    let port = loop {
        match evtchn::bind_interdomain(hv, PING_DOMID, remote) {
            Ok(p) => break p,
            Err(e) if (e == Errno::EINVAL || e == Errno::ESRCH) && attempt < BIND_ATTEMPTS => {
                attempt += 1;
                let _ = guest_abi::sched::yield_(hv);
            }
            Err(e) => crash(
                NAME,
                format_args!(
                    "EVTCHNOP_bind_interdomain(domain {}, port {}): {e} after {attempt} \
                     retries; run ping first: `hv run ping pong`",
                    PING_DOMID.0, remote.0
                ),
            ),
        }
    };
    link.mask(port);
    // Xen sets a freshly bound interdomain port pending.
    if !link.take_pending(port) {
        crash(
            NAME,
            format_args!("bind_interdomain left port {} not pending", port.0),
        );
    }
    match evtchn::status(hv, DomId::SELF, port) {
        Ok((PortStatus::Interdomain { dom, port: p }, _)) if dom == PING_DOMID && p == remote => {}
        Ok((s, _)) => crash(NAME, format_args!("port {} is {s:?} after binding", port.0)),
        Err(e) => crash(NAME, format_args!("EVTCHNOP_status: {e}")),
    }
    say(
        NAME,
        format_args!(
            "port {} bound to domain {} port {} after {attempt} retries",
            port.0, PING_DOMID.0, remote.0
        ),
    );

    // Step 3: ready, then answer every notification.
    if let Err(e) = evtchn::send(hv, port) {
        crash(NAME, format_args!("EVTCHNOP_send (ready): {e}"));
    }
    let mut received: u32 = 0;
    let mut answered: u32 = 0;
    // The wait deadline is renewed every DEADLINE_RENEWAL notifications
    // rather than per wait (a pvclock read is a good part of pong's work per
    // round); a notification lost is still caught within WAIT_TIMEOUT_NS of
    // the last renewal.
    let mut deadline = 0;
    for i in 0..n {
        if i % DEADLINE_RENEWAL == 0 {
            deadline = link.now_ns() + WAIT_TIMEOUT_NS;
        }
        if let Err(e) = link.wait(port, deadline) {
            crash(
                NAME,
                format_args!("notification #{i} lost: {e} ({received} received)"),
            );
        }
        received += 1;
        if let Err(e) = evtchn::send(hv, port) {
            crash(NAME, format_args!("EVTCHNOP_send #{i}: {e}"));
        }
        answered += 1;
    }
    if received != n || answered != received {
        crash(
            NAME,
            format_args!("received {received} and answered {answered}, wanted {n} each"),
        );
    }
    say(
        NAME,
        format_args!("received {received}, answered {answered}, none lost"),
    );
    guest_abi::entry::shutdown(SHUTDOWN_POWEROFF)
}
