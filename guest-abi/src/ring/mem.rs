//! The one gate to ring shared memory: [`RingMem`] and its implementations.
//!
//! This is the only module of [`ring`](super) that contains `unsafe` code.
//! Everything the ring protocol does to the shared page goes through the five
//! operations of [`RingMem`]:
//!
//! * 32-bit atomic loads and stores for the four indices (with acquire /
//!   release variants, see Note [Ring barriers] in the parent module),
//! * byte copies in and out of the entry array (volatile for
//!   [`RawRingMem`], relaxed atomics for [`OwnedRingMem`]),
//! * a full (sequentially consistent) fence.
//!
//! No Rust reference into the shared bytes is ever created: the peer may write
//! them at any time, so they are only ever *copied*.
//!
//! Every method takes a byte offset and is bounds-checked against
//! [`RingMem::size`] (a failed check is a bug in the caller and panics; it can
//! never be caused by the peer, because the ring computes all offsets from
//! masked indices).
#![expect(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;

use core::sync::atomic as hw;
// The atomics of the owned memory: `loom`'s model atomics under `cfg(loom)`.
#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, Ordering, fence};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering, fence};

/// Shared bytes of a ring, reached only by copies and atomics.
///
/// Offsets are in bytes from the start of the shared ring page(s). Index
/// accessors require `offset % 4 == 0`. Implementations must panic (not
/// misbehave) on an out-of-bounds or misaligned offset.
pub trait RingMem {
    /// Size of the shared area in bytes (the ring's byte size: 4096 for a
    /// one-page ring, `4096 << ring-page-order` for multi-page rings).
    fn size(&self) -> usize;

    /// Atomic 32-bit load with acquire ordering (the consumer's read barrier).
    fn load_u32_acquire(&self, offset: usize) -> u32;

    /// Atomic 32-bit load with no ordering.
    fn load_u32_relaxed(&self, offset: usize) -> u32;

    /// Atomic 32-bit store with release ordering (the producer's write barrier).
    fn store_u32_release(&self, offset: usize, value: u32);

    /// Atomic 32-bit store with no ordering.
    fn store_u32_relaxed(&self, offset: usize, value: u32);

    /// Copy `buf.len()` bytes starting at `offset` out of the shared area.
    fn read_bytes(&self, offset: usize, buf: &mut [u8]);

    /// Copy `src` into the shared area starting at `offset`.
    fn write_bytes(&self, offset: usize, src: &[u8]);

    /// Full barrier: `fence(SeqCst)` (`mfence`/locked RMW on x86-64).
    fn fence_full(&self) {
        fence(Ordering::SeqCst);
    }
}

impl<M: RingMem + ?Sized> RingMem for &M {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        (**self).load_u32_acquire(offset)
    }
    fn load_u32_relaxed(&self, offset: usize) -> u32 {
        (**self).load_u32_relaxed(offset)
    }
    fn store_u32_release(&self, offset: usize, value: u32) {
        (**self).store_u32_release(offset, value);
    }
    fn store_u32_relaxed(&self, offset: usize, value: u32) {
        (**self).store_u32_relaxed(offset, value);
    }
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        (**self).read_bytes(offset, buf);
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        (**self).write_bytes(offset, src);
    }
    fn fence_full(&self) {
        (**self).fence_full();
    }
}

/// Panics unless `[offset, offset + len)` lies inside `size` bytes.
#[inline]
#[track_caller]
fn check_range(offset: usize, len: usize, size: usize) {
    let in_bounds = offset.checked_add(len).is_some_and(|end| end <= size);
    assert!(
        in_bounds,
        "ring memory access out of bounds: {offset}+{len} > {size}"
    );
}

/// Panics unless a 4-byte index at `offset` lies inside `size` and is aligned.
#[inline]
#[track_caller]
fn check_index(offset: usize, size: usize) {
    check_range(offset, 4, size);
    assert!(
        offset.is_multiple_of(4),
        "misaligned ring index offset {offset}"
    );
}

// ---------------------------------------------------------------------------
// Raw pointer memory (guests, mapped grants)
// ---------------------------------------------------------------------------

/// Ring memory at a raw address: a guest's own ring page, or a grant mapped
/// by the runtime.
///
/// Indices are accessed as `AtomicU32`s created from the pointer; entries are
/// copied with volatile reads and writes. Nothing else ever touches the memory
/// through this type.
pub struct RawRingMem {
    base: NonNull<u8>,
    size: usize,
}

impl fmt::Debug for RawRingMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRingMem")
            .field("base", &self.base)
            .field("size", &self.size)
            .finish()
    }
}

// SAFETY: `RawRingMem` is only an address and a length; all accesses through
// it are atomic or volatile copies that tolerate concurrent access by the peer
// (the contract of `RawRingMem::new`), so moving it to another thread is fine.
unsafe impl Send for RawRingMem {}
// SAFETY: as for `Send`: `&RawRingMem` only allows the same atomic/volatile
// copies, which are valid from several threads at once.
unsafe impl Sync for RawRingMem {}

impl RawRingMem {
    /// Wrap `size` bytes of shared ring memory starting at `base`.
    ///
    /// Panics if `base` is not 4-byte aligned or `size` is smaller than the
    /// 64-byte ring header.
    ///
    /// # Safety
    ///
    /// For as long as the returned value (or any ring built on it) exists:
    ///
    /// * `base..base + size` must be valid for reads and writes (mapped,
    ///   writable, not freed or unmapped);
    /// * the memory must be shared only with peers that follow this same ring
    ///   protocol: they access the four index words only with aligned 32-bit
    ///   atomic (or naturally atomic, e.g. x86 `mov`) operations, and nothing
    ///   in the current Rust program holds a reference (`&`/`&mut`) into it.
    ///
    /// The peer may write arbitrary values to the memory at any time; this is
    /// sound, and the ring treats every value it reads as untrusted.
    pub unsafe fn new(base: NonNull<u8>, size: usize) -> Self {
        assert!(
            base.as_ptr().addr().is_multiple_of(4),
            "ring memory must be 4-byte aligned"
        );
        assert!(size >= 64, "ring memory smaller than the ring header");
        Self { base, size }
    }

    /// The base address (for handing the page to a peer, e.g. to grant it).
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    fn atomic(&self, offset: usize) -> &hw::AtomicU32 {
        check_index(offset, self.size);
        // SAFETY: `offset + 4 <= size` was checked, so the pointer stays inside
        // the region `new`'s contract makes valid for the lifetime of `self`;
        // `base` is 4-aligned (checked in `new`) and `offset % 4 == 0`, so
        // the `u32` is aligned. The contract also says every other access to
        // the index words is atomic, which is what `AtomicU32::from_ptr`
        // requires, and the returned reference lives no longer than `self`.
        unsafe { hw::AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast::<u32>()) }
    }
}

impl RingMem for RawRingMem {
    fn size(&self) -> usize {
        self.size
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.atomic(offset).load(hw::Ordering::Acquire)
    }
    fn load_u32_relaxed(&self, offset: usize) -> u32 {
        self.atomic(offset).load(hw::Ordering::Relaxed)
    }
    fn store_u32_release(&self, offset: usize, value: u32) {
        self.atomic(offset).store(value, hw::Ordering::Release);
    }
    fn store_u32_relaxed(&self, offset: usize, value: u32) {
        self.atomic(offset).store(value, hw::Ordering::Relaxed);
    }
    fn fence_full(&self) {
        hw::fence(hw::Ordering::SeqCst);
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        check_range(offset, buf.len(), self.size);
        let mut src = self.base.as_ptr().wrapping_add(offset);
        let mut dst = buf;
        // Copy word-wise where aligned so a 64-byte entry is 8 loads.
        while dst.len() >= 8 && src.addr().is_multiple_of(8) {
            // SAFETY: `src..src+8` lies inside the checked range, which is
            // inside the region valid for reads by `new`'s contract; it is
            // 8-aligned (just checked). A volatile read of memory the peer may
            // write concurrently only yields some bytes, which we treat as
            // untrusted data.
            let word = unsafe { src.cast::<u64>().read_volatile() };
            let (head, rest) = dst.split_at_mut(8);
            head.copy_from_slice(&word.to_ne_bytes());
            dst = rest;
            src = src.wrapping_add(8);
        }
        for byte in dst.iter_mut() {
            // SAFETY: `src` lies inside the checked range (one byte per
            // remaining element of `buf`), valid for reads by `new`'s contract.
            *byte = unsafe { src.read_volatile() };
            src = src.wrapping_add(1);
        }
    }

    fn write_bytes(&self, offset: usize, src: &[u8]) {
        check_range(offset, src.len(), self.size);
        let mut dst = self.base.as_ptr().wrapping_add(offset);
        let mut src = src;
        while src.len() >= 8 && dst.addr().is_multiple_of(8) {
            let (head, rest) = src.split_at(8);
            let mut word = [0u8; 8];
            word.copy_from_slice(head);
            // SAFETY: `dst..dst+8` lies inside the checked range, inside the
            // region valid for writes by `new`'s contract, and is 8-aligned.
            // No Rust reference to this memory exists (contract of `new`).
            unsafe { dst.cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
            src = rest;
            dst = dst.wrapping_add(8);
        }
        for &byte in src {
            // SAFETY: `dst` lies inside the checked range, valid for writes by
            // `new`'s contract; no Rust reference to this memory exists.
            unsafe { dst.write_volatile(byte) };
            dst = dst.wrapping_add(1);
        }
    }
}

// ---------------------------------------------------------------------------
// Owned memory (host tests, benchmarks, loom)
// ---------------------------------------------------------------------------

/// Safe, owned ring memory of `WORDS` 32-bit atomic words (default: one
/// 4 KiB page), for host tests, benchmarks and loom models.
///
/// Byte `i` is byte `i % 4` (in native order) of word `i / 4`, so the layout
/// is exactly that of a shared page. Entry bytes are copied with relaxed
/// atomic accesses, so concurrent use from two threads is data-race free.
/// Under `cfg(loom)` the words are `loom` atomics.
pub struct OwnedRingMem<const WORDS: usize = 1024> {
    words: [AtomicU32; WORDS],
}

impl<const WORDS: usize> fmt::Debug for OwnedRingMem<WORDS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRingMem")
            .field("bytes", &(WORDS * 4))
            .finish_non_exhaustive()
    }
}

impl<const WORDS: usize> Default for OwnedRingMem<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> OwnedRingMem<WORDS> {
    /// Zero-filled memory of `4 * WORDS` bytes.
    pub fn new() -> Self {
        Self {
            words: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    #[inline]
    fn word(&self, index: usize) -> &AtomicU32 {
        // In range: every caller checked the byte range first.
        &self.words[index]
    }
}

impl<const WORDS: usize> RingMem for OwnedRingMem<WORDS> {
    fn size(&self) -> usize {
        WORDS * 4
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        check_index(offset, self.size());
        self.word(offset / 4).load(Ordering::Acquire)
    }
    fn load_u32_relaxed(&self, offset: usize) -> u32 {
        check_index(offset, self.size());
        self.word(offset / 4).load(Ordering::Relaxed)
    }
    fn store_u32_release(&self, offset: usize, value: u32) {
        check_index(offset, self.size());
        self.word(offset / 4).store(value, Ordering::Release);
    }
    fn store_u32_relaxed(&self, offset: usize, value: u32) {
        check_index(offset, self.size());
        self.word(offset / 4).store(value, Ordering::Relaxed);
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        check_range(offset, buf.len(), self.size());
        let mut pos = offset;
        let mut dst = buf;
        while !dst.is_empty() {
            let word = self.word(pos / 4).load(Ordering::Relaxed).to_ne_bytes();
            let start = pos % 4;
            let n = (4 - start).min(dst.len());
            let (head, rest) = dst.split_at_mut(n);
            head.copy_from_slice(&word[start..start + n]);
            dst = rest;
            pos += n;
        }
    }

    fn write_bytes(&self, offset: usize, src: &[u8]) {
        check_range(offset, src.len(), self.size());
        let mut pos = offset;
        let mut src = src;
        while !src.is_empty() {
            let start = pos % 4;
            let n = (4 - start).min(src.len());
            let (head, rest) = src.split_at(n);
            let word = self.word(pos / 4);
            if n == 4 {
                let mut bytes = [0u8; 4];
                bytes.copy_from_slice(head);
                word.store(u32::from_ne_bytes(bytes), Ordering::Relaxed);
            } else {
                // Partial word: the other bytes may belong to a neighbouring
                // entry that the peer writes concurrently, so merge atomically.
                let mut current = word.load(Ordering::Relaxed);
                loop {
                    let mut bytes = current.to_ne_bytes();
                    bytes[start..start + n].copy_from_slice(head);
                    match word.compare_exchange_weak(
                        current,
                        u32::from_ne_bytes(bytes),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(seen) => current = seen,
                    }
                }
            }
            src = rest;
            pos += n;
        }
    }
}
