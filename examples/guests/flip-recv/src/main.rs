//! Page flip, receiver side (domain 2): give up `PAGES` frames, offer their
//! PFN slots for transfer from domain 1, then check the frames that arrive:
//! their contents are the sender's and they are ours (we can map them and
//! set their M2P entries). See `flip_proto.rs`; run with
//! `hv run flip-send flip-recv`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use guest_abi::abi::gnttab::GTF_PERMIT_ACCESS;
use guest_abi::abi::mmu::{MmuUpdate, UVMF_INVLPG};
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{DOMID_SELF, DomId, GrantRef, GuestVa, Mfn, Pfn};
use guest_abi::entry::{hypercalls, p2m_list, shutdown};
use guest_abi::gnttab::{self as gt, GrantEntryAtomic, TransferState};

#[path = "../../flip_proto.rs"]
mod proto;
use proto::*;

guest_abi::entry!(main);

/// The grant table's first frame gets mapped here.
#[repr(C, align(4096))]
struct GrantPage([GrantEntryAtomic; 512]);

static GNT: GrantPage = GrantPage(
    [const {
        GrantEntryAtomic {
            flags: AtomicU16::new(0),
            domid: AtomicU16::new(0),
            frame: AtomicU32::new(0),
        }
    }; 512],
);
static MAILBOX: Page = Page::new();
static RECV: [Page; PAGES] = [const { Page::new() }; PAGES];

const ME: &[u8] = b"flip-recv";

fn main(si: &'static StartInfo) -> ! {
    let h = hypercalls();
    let p2m = p2m_list(si);
    let mfn_of = |p: &Page| {
        p2m.get(p.pfn())
            .map_or(u64::MAX, |m| m.load(Ordering::Relaxed))
    };
    let before = guest_abi::memory::current_reservation(&h, DomId(DOMID_SELF)).unwrap_or(0);

    // Map the grant table over GNT.
    let mut frames = [0u64; 1];
    if gt::setup_table(&h, &mut frames).is_err() {
        fail(ME, b"setup_table failed");
    }
    let gnt_va = core::ptr::from_ref(&GNT) as u64;
    if guest_abi::mmu::update_va_mapping(
        &h,
        GuestVa(gnt_va),
        (frames[0] << 12) | PTE_RW,
        UVMF_INVLPG,
    )
    .is_err()
    {
        fail(ME, b"cannot map the grant table");
    }
    let table = &GNT.0[..];
    // The builder granted the console ring to dom0 in ref 0.
    if table[0].flags.load(Ordering::Acquire) != GTF_PERMIT_ACCESS {
        fail(ME, b"reserved console grant missing");
    }

    // Give up the frames under RECV, then offer their PFNs.
    for (i, p) in RECV.iter().enumerate() {
        let mut mfn = [mfn_of(p)];
        if guest_abi::mmu::update_va_mapping(&h, GuestVa(p.va()), 0, UVMF_INVLPG).is_err()
            || guest_abi::memory::decrease_reservation(&h, &mut mfn, 0) != Ok(1)
        {
            fail(ME, b"cannot give up a frame");
        }
        if let Some(slot) = p2m.get(p.pfn()) {
            slot.store(u64::MAX, Ordering::Relaxed);
        }
        let gref = GrantRef(ACCEPT_REF0 + i as u32);
        if gt::offer_transfer(table, gref, DomId(SENDER), Pfn(p.pfn() as u64)).is_err() {
            fail(ME, b"cannot offer a transfer slot");
        }
    }
    MAILBOX.0[0].store(READY, Ordering::Release);
    if gt::grant_access(
        table,
        GrantRef(MAILBOX_REF),
        DomId(SENDER),
        Mfn(mfn_of(&MAILBOX)),
        false,
    )
    .is_err()
    {
        fail(ME, b"cannot grant the mailbox");
    }

    if !wait(&h, || MAILBOX.0[1].load(Ordering::Acquire) == DONE) {
        fail(ME, b"the sender never finished");
    }

    for (i, p) in RECV.iter().enumerate() {
        let gref = GrantRef(ACCEPT_REF0 + i as u32);
        let Ok(TransferState::Completed(mfn)) = gt::transfer_state(table, gref) else {
            fail(ME, b"a transfer did not complete");
        };
        if gt::finish_transfer(table, gref) != Ok(mfn) {
            fail(ME, b"cannot finish a transfer");
        }
        // Ownership: only our own frames can be mapped and have their M2P set.
        if guest_abi::mmu::update_va_mapping(
            &h,
            GuestVa(p.va()),
            (mfn.0 << 12) | PTE_RW,
            UVMF_INVLPG,
        )
        .is_err()
        {
            fail(ME, b"a received frame cannot be mapped: not ours");
        }
        let mut m2p = [MmuUpdate::machphys(mfn.0, p.pfn() as u64)];
        if guest_abi::mmu::mmu_update(&h, &mut m2p, u32::from(DOMID_SELF)).is_err() {
            fail(ME, b"cannot set the M2P entry of a received frame");
        }
        if let Some(slot) = p2m.get(p.pfn()) {
            slot.store(mfn.0, Ordering::Relaxed);
        }
        for (j, w) in p.0.iter().enumerate() {
            if w.load(Ordering::Relaxed) != pattern(i, j) {
                fail(ME, b"a received page has the wrong contents");
            }
        }
    }
    if gt::end_access(table, GrantRef(MAILBOX_REF)).is_err() {
        fail(ME, b"the mailbox grant is still in use");
    }
    let after = guest_abi::memory::current_reservation(&h, DomId(DOMID_SELF)).unwrap_or(0);
    if after != before {
        fail(ME, b"reservation is not back where it started");
    }
    say(&[
        ME,
        b": received 4 pages from domain 1: contents match, frames are ours, reservation restored",
    ]);
    shutdown(0)
}
