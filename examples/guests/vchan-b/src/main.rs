//! The vchan example's client (run it with its server: `hv run vchan-a
//! vchan-b`).
//!
//! 1. Makes `/local/domain/<me>/data/vchan` readable by the server and
//!    goes `Initialising`; watches the server's state until it is
//!    `Initialised`, then reads the grant refs, the port and the stream
//!    length it published.
//! 2. Maps the two granted pages over two slots of its own image
//!    (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map`), binds the
//!    server's port (`EVTCHNOP_bind_interdomain`), goes `Connected`.
//! 3. Streams a pseudo-random pattern both ways ([`vchan_common::duplex`]).
//! 4. Goes `Closing`, unmaps both grants, puts its own pages back under the
//!    slots, closes the port, goes `Closed`, waits for the server to close,
//!    prints `PASS` and powers off.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use guest_abi::abi::gnttab::GNTMAP_HOST_MAP;
use guest_abi::abi::mmu::{PTE_ADDR_MASK, UVMF_INVLPG};
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::xenbus::XenbusState;
use guest_abi::abi::{DomId, EvtchnPort, GrantRef, GuestVa};
use guest_abi::{evtchn, gnttab, mmu};
use vchan_common::{CTRL, Chan, DATA, End, OrFail, SEED_C2S, SEED_S2C, fail, hc, println};

guest_abi::entry!(main);

/// Longest stream we agree to (the server's `bytes` value is its word only).
const MAX_BYTES: u32 = 64 << 20;

fn main(si: &'static StartInfo) -> ! {
    let h = hc();
    vchan_common::setup_events(si);
    let mut xs = vchan_common::store(si);
    let me = vchan_common::own_domid(&mut xs);
    let server = vchan_common::peer_domid(si, me, End::Client);
    println!("vchan-b: client in domain {me}, server domain {server}");

    vchan_common::make_dir(&mut xs, me, server);
    let s = vchan_common::wait_state(&mut xs, server, false, |s| s >= XenbusState::Initialised);
    if s != Some(XenbusState::Initialised) {
        fail(format_args!(
            "the server is not offering a channel (state {s:?})"
        ));
    }
    let ring_ref = vchan_common::read_key(&mut xs, server, "ring-ref");
    let data_ref = vchan_common::read_key(&mut xs, server, "data-ref");
    let remote_port = vchan_common::read_key(&mut xs, server, "event-channel");
    let total = vchan_common::read_key(&mut xs, server, "bytes");
    if total > MAX_BYTES {
        fail(format_args!(
            "the server asks for {total} bytes; at most {MAX_BYTES}"
        ));
    }
    println!(
        "vchan-b: server offers refs {ring_ref} and {data_ref}, port {remote_port}, {total} bytes each way"
    );

    // Map the grants where our own slots are (remembering our frames).
    let own = [
        vchan_common::slot_mfn(si, &CTRL),
        vchan_common::slot_mfn(si, &DATA),
    ];
    let mut handles = [None, None];
    for ((r, slot), handle) in [ring_ref, data_ref]
        .into_iter()
        .zip([&CTRL, &DATA])
        .zip(&mut handles)
    {
        let m = gnttab::map_grant_ref(&h, slot.va(), GNTMAP_HOST_MAP, GrantRef(r), DomId(server))
            .or_fail("GNTTABOP_map_grant_ref");
        *handle = Some(m);
    }
    let port = evtchn::bind_interdomain(&h, DomId(server), EvtchnPort(remote_port))
        .or_fail("EVTCHNOP_bind_interdomain");
    let mut chan = Chan::attach(
        vchan_common::mem::page(&CTRL),
        vchan_common::mem::page(&DATA),
    )
    .or_fail("attach to the server's control page");
    vchan_common::set_state(&mut xs, me, XenbusState::Connected);
    println!(
        "vchan-b: mapped both grants at {:#x} and {:#x}, bound local port {}; Connected",
        CTRL.va(),
        DATA.va(),
        port.0
    );

    let report = vchan_common::duplex(
        "vchan-b",
        &mut chan,
        port,
        total,
        (SEED_C2S, SEED_S2C, 0xb0b5_eed0_0000_0002),
    )
    .or_fail("stream");
    let _ = chan.close();

    // Tear down: unmap, put our own pages back, close the port.
    vchan_common::set_state(&mut xs, me, XenbusState::Closing);
    for ((slot, handle), mfn) in [&CTRL, &DATA].into_iter().zip(handles).zip(own) {
        let m = handle.or_fail("mapped");
        gnttab::unmap_grant_ref(&h, slot.va(), 0, m.handle).or_fail("GNTTABOP_unmap_grant_ref");
        mmu::update_va_mapping(
            &h,
            GuestVa(slot.va()),
            ((mfn.0 << 12) & PTE_ADDR_MASK) | 0x63,
            UVMF_INVLPG,
        )
        .or_fail("map our own page back");
    }
    evtchn::close(&h, port).or_fail("EVTCHNOP_close");
    vchan_common::set_state(&mut xs, me, XenbusState::Closed);
    // Stay until the server has revoked its grants and closed too.
    let s = vchan_common::wait_state(&mut xs, server, true, |s| s == XenbusState::Closed);
    println!(
        "vchan-b: server {}",
        if s.is_some() { "closed" } else { "is gone" }
    );
    println!(
        "vchan-b: {} chunks, slept {} times, sent {} events, {} index updates needed none",
        report.chunks, report.sleeps, report.stats.notified, report.stats.suppressed
    );
    println!(
        "PASS: vchan-b sent {} bytes and received {} verified bytes; grants unmapped, port closed",
        report.sent, report.received
    );
    guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_POWEROFF)
}
