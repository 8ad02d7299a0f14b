//! The vchan example's server (run it with its client: `hv run vchan-a
//! vchan-b`).
//!
//! 1. Grows its grant table (`GNTTABOP_setup_table`), maps frame 0 and
//!    grants two of its own pages — the channel's control and data pages —
//!    to the peer domain; allocates an unbound event channel for it.
//! 2. Publishes the grant refs, the port and the stream length under
//!    `/local/domain/<me>/data/vchan` (readable by the peer only), in one
//!    transaction that also moves its state to `Initialised`; then watches
//!    the peer's state until it is `Connected`, and goes `Connected`.
//! 3. Streams a pseudo-random pattern both ways ([`vchan_common::duplex`]).
//! 4. Goes `Closing`, waits for the peer to unmap and go `Closed`, ends
//!    access to both grants (which works only once nothing maps them),
//!    closes the port, goes `Closed`, prints `PASS` and powers off.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use guest_abi::abi::gnttab::{GNTTAB_NR_RESERVED_ENTRIES, GTF_READING, GTF_WRITING};
use guest_abi::abi::mmu::{PTE_ADDR_MASK, UVMF_INVLPG};
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::xenbus::XenbusState;
use guest_abi::abi::{DomId, GrantRef, GuestVa};
use guest_abi::{evtchn, gnttab, mmu};
use vchan_common::PageSlot;
use vchan_common::{
    CTRL, Chan, DATA, DEFAULT_BYTES, End, OrFail, Path, SEED_C2S, SEED_S2C, fail, hc, println,
    vchan_dir,
};

guest_abi::entry!(main);

/// Where grant-table frame 0 is mapped.
static GNTTAB: PageSlot = PageSlot::new();

fn main(si: &'static StartInfo) -> ! {
    let h = hc();
    vchan_common::setup_events(si);
    let mut xs = vchan_common::store(si);
    let me = vchan_common::own_domid(&mut xs);
    let peer = vchan_common::peer_domid(si, me, End::Server);
    let total = vchan_common::cmdline(si, "bytes").unwrap_or(DEFAULT_BYTES);
    println!("vchan-a: server in domain {me}, peer domain {peer}");

    // Our grant table: one frame, mapped writable over a slot of the image.
    let mut frames = [0u64; 1];
    gnttab::setup_table(&h, &mut frames).or_fail("GNTTABOP_setup_table");
    mmu::update_va_mapping(
        &h,
        GuestVa(GNTTAB.va()),
        ((frames[0] << 12) & PTE_ADDR_MASK) | 0x63,
        UVMF_INVLPG,
    )
    .or_fail("map grant-table frame 0");
    let entries = vchan_common::mem::grant_entries(&GNTTAB);
    let refs = [
        GrantRef(GNTTAB_NR_RESERVED_ENTRIES),
        GrantRef(GNTTAB_NR_RESERVED_ENTRIES + 1),
    ];
    for (r, slot) in refs.iter().zip([&CTRL, &DATA]) {
        let mfn = vchan_common::slot_mfn(si, slot);
        gnttab::grant_access(entries, *r, DomId(peer), mfn, false).or_fail("write a grant entry");
    }
    let port = evtchn::alloc_unbound(&h, DomId(peer)).or_fail("EVTCHNOP_alloc_unbound");
    let mut chan = Chan::init(
        vchan_common::mem::page(&CTRL),
        vchan_common::mem::page(&DATA),
    );
    println!(
        "vchan-a: granted pages as refs {} and {} to domain {peer}, event channel port {}",
        refs[0].0, refs[1].0, port.0
    );

    // Publish, xenbus style.
    vchan_common::make_dir(&mut xs, me, peer);
    let dir = vchan_dir(me);
    let keys: [(&str, u32); 4] = [
        ("ring-ref", refs[0].0),
        ("data-ref", refs[1].0),
        ("event-channel", port.0),
        ("bytes", total),
    ];
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > 16 {
            fail(format_args!("publishing kept conflicting (EAGAIN)"));
        }
        let tx = xs.transaction_start().or_fail("XS_TRANSACTION_START");
        for (k, v) in keys {
            let p = Path::new(format_args!("{}/{k}", dir.as_str()));
            let v = Path::new(format_args!("{v}"));
            xs.write(tx, p.as_str(), v.as_str().as_bytes())
                .or_fail("write a key in the transaction");
        }
        let p = Path::new(format_args!("{}/state", dir.as_str()));
        xs.write(tx, p.as_str(), XenbusState::Initialised.as_str().as_bytes())
            .or_fail("write our state in the transaction");
        match xs.transaction_end(tx, true) {
            Ok(()) => break,
            Err(e) if e.name() == Some("EAGAIN") => {}
            Err(e) => fail(format_args!("XS_TRANSACTION_END: {e}")),
        }
    }
    println!(
        "vchan-a: published under {} (state Initialised); waiting for domain {peer}",
        dir.as_str()
    );
    let s = vchan_common::wait_state(&mut xs, peer, false, |s| s >= XenbusState::Connected);
    if s != Some(XenbusState::Connected) {
        fail(format_args!("the peer did not connect (state {s:?})"));
    }
    vchan_common::set_state(&mut xs, me, XenbusState::Connected);
    println!("vchan-a: peer connected; streaming {total} bytes each way");

    let report = vchan_common::duplex(
        "vchan-a",
        &mut chan,
        port,
        total,
        (SEED_S2C, SEED_C2S, 0xa11c_e5ee_d000_0001),
    )
    .or_fail("stream");
    let _ = chan.close();

    // Tear down: the peer unmaps first, then we revoke the grants.
    vchan_common::set_state(&mut xs, me, XenbusState::Closing);
    let s = vchan_common::wait_state(&mut xs, peer, true, |s| s == XenbusState::Closed);
    println!(
        "vchan-a: peer {}",
        if s.is_some() { "closed" } else { "is gone" }
    );
    for r in refs {
        let flags = entries[r.0 as usize].load().flags;
        if flags & (GTF_READING | GTF_WRITING) != 0 {
            fail(format_args!(
                "grant {} still in use (flags {flags:#x})",
                r.0
            ));
        }
        gnttab::end_access(entries, r).or_fail("end access to a grant");
    }
    evtchn::close(&h, port).or_fail("EVTCHNOP_close");
    vchan_common::set_state(&mut xs, me, XenbusState::Closed);
    println!(
        "vchan-a: {} chunks, slept {} times, sent {} events, {} index updates needed none",
        report.chunks, report.sleeps, report.stats.notified, report.stats.suppressed
    );
    println!(
        "PASS: vchan-a sent {} bytes and received {} verified bytes; grants ended, port closed",
        report.sent, report.received
    );
    guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_POWEROFF)
}
