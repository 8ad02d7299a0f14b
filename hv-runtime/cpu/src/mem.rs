//! Machine memory: one host `mmap` of 4 KiB machine frames.
//!
//! This is one of the few modules allowed to use `unsafe` (see
//! `docs/UNSAFE.md`). Guest-writable memory is never handed out as a Rust
//! reference: every access is a bounds-checked copy or an atomic operation on
//! a raw pointer computed inside this module.
//!
//! Note [Racy guest memory]: guests (on other vCPU threads) may write any of
//! their frames at any time. Plain reads here may therefore observe torn or
//! changing values; callers copy once and validate the copy, never read twice
//! expecting the same answer. Rust never holds a reference to these bytes, so
//! no Rust object's invariant can be broken by a concurrent guest write.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Size of a machine frame.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Machine byte addresses and frame numbers are `guest_abi`'s newtypes (one
/// type per concept across the workspace): a [`MachineAddr`] is a byte
/// address inside [`MachineMemory`], an [`Mfn`] a frame of it.
pub use guest_abi::abi::{MachineAddr, Mfn};

/// Errors from machine-memory operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemError {
    /// The host refused the mapping.
    #[error("cannot map {bytes} bytes of machine memory: {errno}; try a smaller --memory")]
    Map {
        /// Requested size.
        bytes: u64,
        /// `errno` from `mmap`.
        errno: i32,
    },
    /// The requested size is zero or not representable.
    #[error("machine memory of {frames} frames is not supported")]
    BadSize {
        /// Requested frames.
        frames: u64,
    },
    /// An access fell (partly) outside machine memory.
    #[error(
        "machine access of {len} bytes at {addr:#x} is outside machine memory ({size:#x} bytes)"
    )]
    OutOfRange {
        /// Start address.
        addr: u64,
        /// Access length.
        len: u64,
        /// Size of machine memory.
        size: u64,
    },
    /// An atomic access was not naturally aligned.
    #[error("atomic machine access at {addr:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Address.
        addr: u64,
        /// Required alignment.
        align: u64,
    },
}

/// All machine frames of one `hv` instance, backed by one anonymous host
/// mapping (lazily committed by the host kernel).
#[derive(Debug)]
pub struct MachineMemory {
    base: NonNull<u8>,
    len: u64,
    /// Note [Translated-code tracking]: one bit per frame, set while some
    /// execution backend holds translated (pre-decoded) code from the frame.
    /// A separate lazily committed anonymous mapping of `code_words` u64s.
    code_map: NonNull<u64>,
    code_words: u64,
    /// Bumped (after logging the frame) whenever a write hits a frame whose
    /// code bit was set; the bit is cleared at the same time.
    code_epoch: AtomicU64,
    /// The most recent invalidations, `(epoch after the bump, frame)`.
    code_log: Mutex<VecDeque<(u64, Mfn)>>,
    /// Serialises [`Self::cmpxchg_u128`] (the host has no stable 128-bit
    /// atomic in Rust): atomic against other 16-byte compare-exchanges only.
    wide_lock: Mutex<()>,
}

/// The host's `CLOCK_MONOTONIC` in nanoseconds (the clock of
/// [`crate::Deadline::HostNanos`]). Lives here because it needs one libc call.
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only the `timespec` we pass, which is a
    // valid, exclusively borrowed local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// How many code-frame invalidations [`MachineMemory`] remembers; a backend
/// that falls further behind drops all its translations.
pub const CODE_LOG_LEN: usize = 256;

/// The answer of [`MachineMemory::code_invalidations_since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeInvalidations {
    /// Nothing was invalidated since the given epoch.
    None,
    /// These frames lost their translated code; the new epoch to remember.
    Frames(Vec<Mfn>, u64),
    /// Too many invalidations to list: drop every translation; the new epoch.
    All(u64),
}

// SAFETY: `MachineMemory` owns its mapping; all access goes through methods
// that use raw pointers with volatile/atomic semantics (Note [Racy guest
// memory]), so sharing it between threads creates no data race on Rust objects.
unsafe impl Send for MachineMemory {}
// SAFETY: as for `Send`: `&MachineMemory` only permits raw, bounds-checked
// copies and atomics, never references into the mapping.
unsafe impl Sync for MachineMemory {}

impl MachineMemory {
    /// Map `frames` zeroed machine frames.
    ///
    /// # Errors
    /// [`MemError::BadSize`] for 0 frames or a size overflowing the address
    /// space, [`MemError::Map`] when the host refuses the mapping.
    pub fn new(frames: u64) -> Result<Self, MemError> {
        let len = frames
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0 && l <= (1u64 << 46))
            .ok_or(MemError::BadSize { frames })?;
        let host_len = usize::try_from(len).map_err(|_| MemError::BadSize { frames })?;
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                host_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(MemError::Map { bytes: len, errno });
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(MemError::Map {
            bytes: len,
            errno: 0,
        })?;
        let code_words = frames.div_ceil(64);
        let code_bytes = code_words * 8;
        #[expect(clippy::cast_possible_truncation)] // ≤ 2^34 / 8, fits a usize
        let code_host_len = code_bytes as usize;
        // SAFETY: as above: an anonymous private mapping has no preconditions.
        let cp = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                code_host_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        let code_map = if cp == libc::MAP_FAILED {
            None
        } else {
            NonNull::new(cp.cast::<u64>())
        };
        let Some(code_map) = code_map else {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            // SAFETY: `p`/`host_len` is the mapping created above, not yet
            // shared with anything.
            unsafe {
                libc::munmap(p, host_len);
            }
            return Err(MemError::Map {
                bytes: code_bytes,
                errno,
            });
        };
        Ok(Self {
            base,
            len,
            code_map,
            code_words,
            code_epoch: AtomicU64::new(0),
            code_log: Mutex::new(VecDeque::with_capacity(CODE_LOG_LEN)),
            wide_lock: Mutex::new(()),
        })
    }

    /// The atomic word of the code bitmap holding `mfn`'s bit, if in range.
    #[inline]
    fn code_word(&self, mfn: u64) -> Option<&AtomicU64> {
        let w = mfn >> 6;
        if w >= self.code_words {
            return None;
        }
        let wi = w as usize;
        // SAFETY: `wi < code_words`, so the word is inside the code mapping,
        // which is 8-byte aligned (page aligned) and lives as long as `self`;
        // it is only ever accessed atomically.
        Some(unsafe { AtomicU64::from_ptr(self.code_map.as_ptr().add(wi)) })
    }

    /// Note [Translated-code tracking]: mark `mfn` as holding code that an
    /// execution backend has translated. Returns whether it was already
    /// marked. Any later write to the frame (through any method of this type)
    /// clears the mark and records an invalidation (see
    /// [`Self::code_invalidations_since`]). Backends mark a frame *before*
    /// reading the bytes they translate, so a racing write is never missed.
    pub fn mark_code(&self, mfn: Mfn) -> bool {
        self.code_word(mfn.0).is_some_and(|w| {
            w.fetch_or(1 << (mfn.0 & 63), Ordering::SeqCst) & (1 << (mfn.0 & 63)) != 0
        })
    }

    /// Whether `mfn` currently holds translated code.
    #[inline]
    #[must_use]
    pub fn is_code(&self, mfn: Mfn) -> bool {
        self.code_word(mfn.0)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (mfn.0 & 63)) != 0)
    }

    /// The code-invalidation epoch (changes whenever a marked frame is
    /// written). Cheap: backends compare it at every block dispatch.
    #[inline]
    #[must_use]
    pub fn code_epoch(&self) -> u64 {
        self.code_epoch.load(Ordering::Acquire)
    }

    /// Frames whose translated code was invalidated after `epoch`.
    pub fn code_invalidations_since(&self, epoch: u64) -> CodeInvalidations {
        let now = self.code_epoch();
        if now == epoch {
            return CodeInvalidations::None;
        }
        let log = match self.code_log.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = self.code_epoch();
        let oldest = log.front().map_or(u64::MAX, |&(e, _)| e);
        if oldest > epoch.wrapping_add(1) {
            return CodeInvalidations::All(now);
        }
        let frames = log
            .iter()
            .filter(|&&(e, _)| e > epoch && e <= now)
            .map(|&(_, m)| m)
            .collect();
        CodeInvalidations::Frames(frames, now)
    }

    /// Note [Translated-code tracking]: called after every write to
    /// `[addr, addr + len)`; clears and logs code marks of the frames hit.
    #[inline]
    fn note_write(&self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = addr >> PAGE_SHIFT;
        let last = (addr + (len - 1)) >> PAGE_SHIFT;
        let mut f = first;
        while f <= last {
            if let Some(w) = self.code_word(f) {
                let bit = 1u64 << (f & 63);
                if w.load(Ordering::Relaxed) & bit != 0 {
                    self.invalidate_code_frame(f, w, bit);
                }
            }
            f += 1;
        }
    }

    #[cold]
    fn invalidate_code_frame(&self, f: u64, w: &AtomicU64, bit: u64) {
        if w.fetch_and(!bit, Ordering::SeqCst) & bit == 0 {
            return;
        }
        let mut log = match self.code_log.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let e = self.code_epoch.load(Ordering::Relaxed) + 1;
        if log.len() >= CODE_LOG_LEN {
            log.pop_front();
        }
        log.push_back((e, Mfn(f)));
        self.code_epoch.store(e, Ordering::Release);
    }

    /// Size in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a `MachineMemory` has at least one frame.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of frames.
    #[must_use]
    pub fn frames(&self) -> u64 {
        self.len >> PAGE_SHIFT
    }

    /// Check that `[addr, addr + len)` lies inside machine memory and return
    /// the host pointer to its first byte.
    #[inline]
    fn range(&self, addr: u64, len: u64) -> Result<*mut u8, MemError> {
        match addr.checked_add(len) {
            Some(end) if end <= self.len => {
                // `addr < self.len <= isize::MAX` (checked in `new`), so the
                // cast is lossless and the offset stays inside the mapping.
                #[expect(clippy::cast_possible_truncation)]
                let off = addr as usize;
                // SAFETY: `off + len <= self.len`, the mapping's length, so
                // the pointer stays within (or one past) the mapped object.
                Ok(unsafe { self.base.as_ptr().add(off) })
            }
            _ => Err(MemError::OutOfRange {
                addr,
                len,
                size: self.len,
            }),
        }
    }

    /// Copy `buf.len()` bytes from machine memory at `addr`.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the range is not inside machine memory.
    #[inline]
    pub fn read(&self, addr: MachineAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let p = self.range(addr.0, buf.len() as u64)?;
        // SAFETY: `p..p+len` is inside the mapping (checked by `range`); `buf`
        // is a distinct Rust allocation, so the ranges do not overlap. The
        // source may be written concurrently (Note [Racy guest memory]).
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copy `buf` into machine memory at `addr`.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the range is not inside machine memory.
    #[inline]
    pub fn write(&self, addr: MachineAddr, buf: &[u8]) -> Result<(), MemError> {
        let p = self.range(addr.0, buf.len() as u64)?;
        // SAFETY: as in `read`, with the roles of source and destination
        // swapped; the destination is never referenced by Rust.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, buf.len()) };
        self.note_write(addr.0, buf.len() as u64);
        Ok(())
    }

    /// Fill `len` bytes at `addr` with `byte`.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the range is not inside machine memory.
    pub fn fill(&self, addr: MachineAddr, byte: u8, len: u64) -> Result<(), MemError> {
        let p = self.range(addr.0, len)?;
        let n = usize::try_from(len).map_err(|_| MemError::OutOfRange {
            addr: addr.0,
            len,
            size: self.len,
        })?;
        // SAFETY: `p..p+n` is inside the mapping (checked by `range`).
        unsafe { std::ptr::write_bytes(p, byte, n) };
        self.note_write(addr.0, len);
        Ok(())
    }

    /// Copy `len` bytes from `src` to `dst` inside machine memory (the ranges
    /// may overlap).
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if either range is not inside machine memory.
    pub fn copy_within(
        &self,
        src: MachineAddr,
        dst: MachineAddr,
        len: u64,
    ) -> Result<(), MemError> {
        let s = self.range(src.0, len)?;
        let d = self.range(dst.0, len)?;
        let n = usize::try_from(len).map_err(|_| MemError::OutOfRange {
            addr: src.0,
            len,
            size: self.len,
        })?;
        // SAFETY: both ranges are inside the mapping; `copy` allows overlap.
        unsafe { std::ptr::copy(s, d, n) };
        self.note_write(dst.0, len);
        Ok(())
    }

    /// Read a little-endian `u8`/`u16`/`u32`/`u64` (any alignment).
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn read_u64(&self, addr: MachineAddr) -> Result<u64, MemError> {
        let p = self.range(addr.0, 8)?;
        // SAFETY: 8 bytes at `p` are inside the mapping; unaligned read of a
        // plain integer (Note [Racy guest memory]).
        Ok(unsafe { p.cast::<u64>().read_unaligned() })
    }

    /// See [`Self::read_u64`].
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn read_u32(&self, addr: MachineAddr) -> Result<u32, MemError> {
        let p = self.range(addr.0, 4)?;
        // SAFETY: 4 bytes at `p` are inside the mapping.
        Ok(unsafe { p.cast::<u32>().read_unaligned() })
    }

    /// See [`Self::read_u64`].
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn read_u16(&self, addr: MachineAddr) -> Result<u16, MemError> {
        let p = self.range(addr.0, 2)?;
        // SAFETY: 2 bytes at `p` are inside the mapping.
        Ok(unsafe { p.cast::<u16>().read_unaligned() })
    }

    /// See [`Self::read_u64`].
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn read_u8(&self, addr: MachineAddr) -> Result<u8, MemError> {
        let p = self.range(addr.0, 1)?;
        // SAFETY: 1 byte at `p` is inside the mapping.
        Ok(unsafe { p.read() })
    }

    /// Write a little-endian `u64` (any alignment).
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn write_u64(&self, addr: MachineAddr, v: u64) -> Result<(), MemError> {
        let p = self.range(addr.0, 8)?;
        // SAFETY: 8 bytes at `p` are inside the mapping.
        unsafe { p.cast::<u64>().write_unaligned(v) };
        self.note_write(addr.0, 8);
        Ok(())
    }

    /// See [`Self::write_u64`].
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn write_u32(&self, addr: MachineAddr, v: u32) -> Result<(), MemError> {
        let p = self.range(addr.0, 4)?;
        // SAFETY: 4 bytes at `p` are inside the mapping.
        unsafe { p.cast::<u32>().write_unaligned(v) };
        self.note_write(addr.0, 4);
        Ok(())
    }

    /// See [`Self::write_u64`].
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn write_u16(&self, addr: MachineAddr, v: u16) -> Result<(), MemError> {
        let p = self.range(addr.0, 2)?;
        // SAFETY: 2 bytes at `p` are inside the mapping.
        unsafe { p.cast::<u16>().write_unaligned(v) };
        self.note_write(addr.0, 2);
        Ok(())
    }

    /// See [`Self::write_u64`].
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] if the value is not inside machine memory.
    #[inline]
    pub fn write_u8(&self, addr: MachineAddr, v: u8) -> Result<(), MemError> {
        let p = self.range(addr.0, 1)?;
        // SAFETY: 1 byte at `p` is inside the mapping.
        unsafe { p.write(v) };
        self.note_write(addr.0, 1);
        Ok(())
    }

    #[inline]
    fn aligned(&self, addr: u64, align: u64) -> Result<*mut u8, MemError> {
        if !addr.is_multiple_of(align) {
            return Err(MemError::Misaligned { addr, align });
        }
        self.range(addr, align)
    }

    /// Atomic 64-bit compare-and-exchange; returns the previous value (equal
    /// to `old` on success).
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn cmpxchg_u64(&self, addr: MachineAddr, old: u64, new: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: `p` is 8-byte aligned and inside the mapping, which lives as
        // long as `self`; the temporary `&AtomicU64` is confined to this call
        // and all other accesses to the word are atomic or racy-by-design
        // (Note [Racy guest memory]).
        let a = unsafe { AtomicU64::from_ptr(p) };
        let r = match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(v) | Err(v) => v,
        };
        if r == old {
            self.note_write(addr.0, 8);
        }
        Ok(r)
    }

    /// Atomic 64-bit OR; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn fetch_or_u64(&self, addr: MachineAddr, bits: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: as in `cmpxchg_u64`.
        let r = unsafe { AtomicU64::from_ptr(p) }.fetch_or(bits, Ordering::SeqCst);
        self.note_write(addr.0, 8);
        Ok(r)
    }

    /// Atomic 64-bit AND; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn fetch_and_u64(&self, addr: MachineAddr, bits: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: as in `cmpxchg_u64`.
        let r = unsafe { AtomicU64::from_ptr(p) }.fetch_and(bits, Ordering::SeqCst);
        self.note_write(addr.0, 8);
        Ok(r)
    }

    /// Atomic 64-bit exchange; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn swap_u64(&self, addr: MachineAddr, v: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: as in `cmpxchg_u64`.
        let r = unsafe { AtomicU64::from_ptr(p) }.swap(v, Ordering::SeqCst);
        self.note_write(addr.0, 8);
        Ok(r)
    }

    /// Atomic 32-bit compare-and-exchange; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 4-byte aligned.
    #[inline]
    pub fn cmpxchg_u32(&self, addr: MachineAddr, old: u32, new: u32) -> Result<u32, MemError> {
        let p = self.aligned(addr.0, 4)?.cast::<u32>();
        // SAFETY: `p` is 4-byte aligned and inside the mapping; see
        // `cmpxchg_u64` for the aliasing argument.
        let a = unsafe { AtomicU32::from_ptr(p) };
        let r = match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(v) | Err(v) => v,
        };
        if r == old {
            self.note_write(addr.0, 4);
        }
        Ok(r)
    }

    /// Atomic 32-bit load with acquire ordering.
    ///
    /// # Errors
    /// Out of range or not 4-byte aligned.
    #[inline]
    pub fn load_u32_acquire(&self, addr: MachineAddr) -> Result<u32, MemError> {
        let p = self.aligned(addr.0, 4)?.cast::<u32>();
        // SAFETY: as in `cmpxchg_u32`.
        Ok(unsafe { AtomicU32::from_ptr(p) }.load(Ordering::Acquire))
    }

    /// Atomic 32-bit store with release ordering.
    ///
    /// # Errors
    /// Out of range or not 4-byte aligned.
    #[inline]
    pub fn store_u32_release(&self, addr: MachineAddr, v: u32) -> Result<(), MemError> {
        let p = self.aligned(addr.0, 4)?.cast::<u32>();
        // SAFETY: as in `cmpxchg_u32`.
        unsafe { AtomicU32::from_ptr(p) }.store(v, Ordering::Release);
        self.note_write(addr.0, 4);
        Ok(())
    }

    /// 16-byte compare-and-exchange (`cmpxchg16b`); returns the previous
    /// value. Atomic with respect to other calls of this method only (plain
    /// 8-byte stores from other threads may interleave).
    ///
    /// # Errors
    /// Out of range or not 16-byte aligned.
    pub fn cmpxchg_u128(&self, addr: MachineAddr, old: u128, new: u128) -> Result<u128, MemError> {
        if !addr.0.is_multiple_of(16) {
            return Err(MemError::Misaligned {
                addr: addr.0,
                align: 16,
            });
        }
        let _g = match self.wide_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let lo = self.read_u64(addr)?;
        let hi = self.read_u64(MachineAddr(addr.0 + 8))?;
        let cur = (u128::from(hi) << 64) | u128::from(lo);
        if cur == old {
            #[expect(clippy::cast_possible_truncation)] // split into halves
            {
                self.write_u64(addr, new as u64)?;
                self.write_u64(MachineAddr(addr.0 + 8), (new >> 64) as u64)?;
            }
        }
        Ok(cur)
    }

    /// Atomic byte exchange; returns the previous value.
    ///
    /// # Errors
    /// Out of range.
    #[inline]
    pub fn swap_u8(&self, addr: MachineAddr, v: u8) -> Result<u8, MemError> {
        let p = self.range(addr.0, 1)?;
        // SAFETY: `p` is inside the mapping; bytes need no alignment; see
        // `cmpxchg_u64` for the aliasing argument.
        let r = unsafe { AtomicU8::from_ptr(p) }.swap(v, Ordering::SeqCst);
        self.note_write(addr.0, 1);
        Ok(r)
    }
}

impl Drop for MachineMemory {
    fn drop(&mut self) {
        #[expect(clippy::cast_possible_truncation)]
        let len = self.len as usize;
        // SAFETY: `base`/`len` describe exactly the mapping created in `new`,
        // and no pointer into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), len);
        }
        #[expect(clippy::cast_possible_truncation)]
        let code_len = (self.code_words * 8) as usize;
        // SAFETY: `code_map`/`code_len` describe exactly the code-bitmap
        // mapping created in `new`; no pointer into it outlives `self`.
        unsafe {
            libc::munmap(self.code_map.as_ptr().cast(), code_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_accesses_are_errors() {
        let m = MachineMemory::new(2).expect("map");
        assert!(m.read_u64(MachineAddr(8192 - 8)).is_ok());
        assert!(matches!(
            m.read_u64(MachineAddr(8192 - 7)),
            Err(MemError::OutOfRange { .. })
        ));
        assert!(m.read_u64(MachineAddr(u64::MAX - 3)).is_err());
        let mut b = [0u8; 16];
        assert!(m.read(MachineAddr(8190), &mut b).is_err());
        assert!(m.write(MachineAddr(u64::MAX), &b).is_err());
    }

    #[test]
    fn values_round_trip_and_atomics_work() {
        let m = MachineMemory::new(1).expect("map");
        m.write_u64(MachineAddr(3), 0x1122_3344_5566_7788)
            .expect("w");
        assert_eq!(
            m.read_u64(MachineAddr(3)).expect("r"),
            0x1122_3344_5566_7788
        );
        assert_eq!(m.read_u8(MachineAddr(3)).expect("r"), 0x88);
        assert_eq!(m.cmpxchg_u64(MachineAddr(16), 0, 5).expect("c"), 0);
        assert_eq!(m.cmpxchg_u64(MachineAddr(16), 0, 7).expect("c"), 5);
        assert_eq!(m.fetch_or_u64(MachineAddr(16), 8).expect("o"), 5);
        assert_eq!(m.read_u64(MachineAddr(16)).expect("r"), 13);
        assert!(matches!(
            m.cmpxchg_u64(MachineAddr(17), 0, 1),
            Err(MemError::Misaligned { .. })
        ));
    }

    #[test]
    fn writes_to_code_frames_are_logged_once() {
        let m = MachineMemory::new(4).expect("map");
        assert!(!m.mark_code(Mfn(2)));
        assert!(m.is_code(Mfn(2)));
        let e0 = m.code_epoch();
        m.write_u8(MachineAddr(0x1000), 1).expect("w");
        assert_eq!(m.code_invalidations_since(e0), CodeInvalidations::None);
        m.write_u32(MachineAddr(0x2ffe), 1).expect("w");
        assert!(!m.is_code(Mfn(2)));
        assert_eq!(
            m.code_invalidations_since(e0),
            CodeInvalidations::Frames(vec![Mfn(2)], e0 + 1)
        );
        m.write_u8(MachineAddr(0x2000), 1).expect("w");
        assert_eq!(m.code_epoch(), e0 + 1);
    }

    #[test]
    fn zero_frames_is_rejected() {
        assert!(matches!(
            MachineMemory::new(0),
            Err(MemError::BadSize { .. })
        ));
    }
}
