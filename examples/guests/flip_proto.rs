//! What `flip-send` and `flip-recv` agree on without xenstore (fixed
//! conventions): `hv run flip-send flip-recv` makes the sender domain 1 and
//! the receiver domain 2; the receiver's grant refs are fixed.
//!
//! 1. The receiver gives up `PAGES` frames (unmaps them,
//!    `XENMEM_decrease_reservation`) and offers their PFNs in refs
//!    `ACCEPT_REF0..` as `GTF_accept_transfer` entries for domain 1.
//! 2. It grants its mailbox page to domain 1 (writable, ref `MAILBOX_REF`)
//!    holding `READY` in word 0.
//! 3. The sender polls the mailbox with `GNTTABOP_copy` until it reads
//!    `READY`, fills its pages, unmaps them and transfers them.
//! 4. The sender writes `DONE` into mailbox word 1 with `GNTTABOP_copy`.
//! 5. The receiver sees `DONE`, finishes each transfer, maps the new frames
//!    (which works only for frames it owns) and checks their contents.

#![allow(dead_code)] // each side uses its own half of the protocol

use core::sync::atomic::AtomicU64;

/// Sender's domain id (first image of `hv run`).
pub const SENDER: u16 = 1;
/// Receiver's domain id (second image).
pub const RECEIVER: u16 = 2;
/// Pages flipped.
pub const PAGES: usize = 4;
/// Receiver's grant ref for the mailbox page.
pub const MAILBOX_REF: u32 = 8;
/// First of the receiver's accept-transfer refs.
pub const ACCEPT_REF0: u32 = 9;
/// Mailbox word 0: the receiver's offers are in place.
pub const READY: u64 = 0x5245_4144_595f_4652; // "RF_YDAER"
/// Mailbox word 1: every page has been transferred.
pub const DONE: u64 = 0x444f_4e45_5f5f_4650;
/// Present, writable, accessed, dirty: a kernel data mapping.
pub const PTE_RW: u64 = guest_abi::abi::mmu::PteFlags::PRESENT
    .union(guest_abi::abi::mmu::PteFlags::RW)
    .union(guest_abi::abi::mmu::PteFlags::ACCESSED)
    .union(guest_abi::abi::mmu::PteFlags::DIRTY)
    .bits();
/// How many times a side yields while waiting for the other.
pub const WAIT_LIMIT: u32 = 200_000;

/// A page-aligned page of atomics: a static whose backing frame can be
/// swapped under it (`update_va_mapping`) and read or written by others.
#[repr(C, align(4096))]
pub struct Page(pub [AtomicU64; 512]);

impl Page {
    /// A zeroed page.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; 512])
    }

    /// Its virtual address.
    pub fn va(&self) -> u64 {
        core::ptr::from_ref(self) as u64
    }

    /// Its PFN (the image is loaded at `VIRT_BASE`, PFN 0).
    pub fn pfn(&self) -> usize {
        ((self.va() - guest_abi::entry::VIRT_BASE) >> 12) as usize
    }
}

/// The word `j` of flipped page `i`.
pub const fn pattern(i: usize, j: usize) -> u64 {
    0xF11B_0000_0000_0000 | ((i as u64) << 32) | (j as u64 * 0x9E37)
}

/// Print a line on the emergency console.
pub fn say(parts: &[&[u8]]) {
    for p in parts {
        guest_abi::entry::console_write(p);
    }
    guest_abi::entry::console_write(b"\n");
}

/// Fail: print why and crash the domain (so `hv run` exits non-zero).
pub fn fail(who: &[u8], why: &[u8]) -> ! {
    say(&[who, b": FAILED: ", why]);
    guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_CRASH)
}

/// Yield until `f` holds (bounded).
pub fn wait<H: guest_abi::hypercall::Hypercall>(h: &H, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..WAIT_LIMIT {
        if f() {
            return true;
        }
        let _ = guest_abi::sched::yield_(h);
    }
    false
}
