//! Page flip, sender side (domain 1): fill `PAGES` pages with a pattern and
//! give them to domain 2 with `GNTTABOP_transfer`. See `flip_proto.rs` for
//! the protocol; run with `hv run flip-send flip-recv`.
#![no_std]
#![no_main]

use core::sync::atomic::Ordering;

use guest_abi::abi::gnttab::{GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GntStatus, GnttabCopyPtr};
use guest_abi::abi::mmu::UVMF_INVLPG;
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{DOMID_SELF, DomId, GrantRef, GuestVa, Mfn};
use guest_abi::entry::{hypercalls, p2m_list, shutdown};
use guest_abi::gnttab::{self as gt, GnttabError};

#[path = "../../flip_proto.rs"]
mod proto;
use proto::*;

guest_abi::entry!(main);

static SEND: [Page; PAGES] = [const { Page::new() }; PAGES];
/// Where the receiver's mailbox is copied to.
static SCRATCH: Page = Page::new();
/// Source of the `DONE` message.
static NOTE: Page = Page::new();

const ME: &[u8] = b"flip-send";

fn main(si: &'static StartInfo) -> ! {
    let h = hypercalls();
    let p2m = p2m_list(si);
    let mfn_of = |p: &Page| {
        p2m.get(p.pfn())
            .map_or(u64::MAX, |m| m.load(Ordering::Relaxed))
    };
    let before = guest_abi::memory::current_reservation(&h, DomId(DOMID_SELF)).unwrap_or(0);

    for (i, p) in SEND.iter().enumerate() {
        for (j, w) in p.0.iter().enumerate() {
            w.store(pattern(i, j), Ordering::Relaxed);
        }
    }

    // Wait for the receiver's offers, reading its mailbox grant by copy
    // (the copy fails harmlessly until the grant exists).
    let scratch = mfn_of(&SCRATCH);
    let ready = wait(&h, || {
        gt::copy_one(
            &h,
            GnttabCopyPtr::gref(RECEIVER, MAILBOX_REF, 0),
            GnttabCopyPtr::gmfn(scratch, 0),
            8,
            GNTCOPY_SOURCE_GREF,
        )
        .is_ok()
            && SCRATCH.0[0].load(Ordering::Acquire) == READY
    });
    if !ready {
        fail(ME, b"the receiver never became ready");
    }

    // A page that is still mapped cannot be given away, and stays ours.
    match gt::transfer(&h, Mfn(scratch), DomId(RECEIVER), GrantRef(ACCEPT_REF0)) {
        Err(GnttabError::Status(s)) if s == GntStatus::BAD_PAGE => {}
        _ => fail(
            ME,
            b"transfer of a mapped page was not refused with bad_page",
        ),
    }
    SCRATCH.0[1].store(1, Ordering::Relaxed);

    for (i, p) in SEND.iter().enumerate() {
        let mfn = mfn_of(p);
        if guest_abi::mmu::update_va_mapping(&h, GuestVa(p.va()), 0, UVMF_INVLPG).is_err() {
            fail(ME, b"cannot unmap a page to give away");
        }
        let gref = GrantRef(ACCEPT_REF0 + i as u32);
        if gt::transfer(&h, Mfn(mfn), DomId(RECEIVER), gref).is_err() {
            fail(ME, b"transfer failed");
        }
        if let Some(slot) = p2m.get(p.pfn()) {
            slot.store(u64::MAX, Ordering::Relaxed);
        }
        // Not ours any more: it cannot be mapped back.
        let back = guest_abi::mmu::update_va_mapping(
            &h,
            GuestVa(p.va()),
            (mfn << 12) | PTE_RW,
            UVMF_INVLPG,
        );
        if back.is_ok() {
            fail(
                ME,
                b"a transferred page could still be mapped by the sender",
            );
        }
    }

    NOTE.0[0].store(DONE, Ordering::Release);
    let told = gt::copy_one(
        &h,
        GnttabCopyPtr::gmfn(mfn_of(&NOTE), 0),
        GnttabCopyPtr::gref(RECEIVER, MAILBOX_REF, 8),
        8,
        GNTCOPY_DEST_GREF,
    );
    if told.is_err() {
        fail(ME, b"cannot write DONE into the receiver's mailbox");
    }
    let after = guest_abi::memory::current_reservation(&h, DomId(DOMID_SELF)).unwrap_or(0);
    if after + PAGES as u64 != before {
        fail(ME, b"reservation did not drop by the pages given away");
    }
    say(&[ME, b": gave 4 pages to domain 2 (mapped page refused with bad_page; given pages no longer mappable)"]);
    shutdown(0)
}
