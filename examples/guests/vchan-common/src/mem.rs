//! The vchan example's only `unsafe` code: views of pages the guest has
//! mapped — ring memory over a page slot (our own page, or a peer's page
//! mapped there through a grant) and the grant-table entries over the
//! mapped grant frame.
#![allow(unsafe_code)]

use core::ptr::NonNull;

use guest_abi::gnttab::GrantEntryAtomic;
use guest_abi::ring::RawRingMem;
use xtf_common::arch::PageSlot;

/// v1 grant entries in one 4 KiB grant frame.
pub const ENTRIES_PER_FRAME: usize = 4096 / core::mem::size_of::<GrantEntryAtomic>();

/// Ring memory over the 4 KiB page mapped at `slot`.
///
/// The caller keeps `slot` mapped (to its own frame or to a granted one)
/// for as long as the returned value is used: the channel that owns it is
/// consumed before a grant mapping is torn down.
#[must_use]
pub fn page(slot: &'static PageSlot) -> RawRingMem {
    let base = NonNull::new(slot.va() as *mut u8).expect("a slot is never at address 0");
    // Rust never references the slot's bytes (only its address); the peer only
    // follows the channel protocol (aligned 32-bit index accesses).
    // SAFETY: `slot` is page-aligned, page-sized, and mapped writable while the ring lives.
    unsafe { RawRingMem::new(base, 4096) }
}

/// The grant entries of the grant frame mapped (writable) at `slot`.
#[must_use]
pub fn grant_entries(slot: &'static PageSlot) -> &'static [GrantEntryAtomic] {
    // The caller mapped this domain's grant-table frame 0 over the slot for
    // the rest of the guest's life; the slot's own bytes are never
    // referenced elsewhere.
    // SAFETY: the mapped frame holds `ENTRIES_PER_FRAME` 8-byte entries, and
    // `GrantEntryAtomic` is only atomics, so Xen's concurrent updates are sound.
    unsafe { core::slice::from_raw_parts(slot.va() as *const GrantEntryAtomic, ENTRIES_PER_FRAME) }
}
