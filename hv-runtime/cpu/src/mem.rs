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

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Size of a machine frame.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A machine (host-side "physical") byte address inside [`MachineMemory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MachineAddr(pub u64);

/// A machine frame number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mfn(pub u64);

impl Mfn {
    /// The address of the first byte of the frame.
    #[must_use]
    pub const fn addr(self) -> MachineAddr {
        MachineAddr(self.0 << PAGE_SHIFT)
    }
}

impl MachineAddr {
    /// The frame containing this address.
    #[must_use]
    pub const fn mfn(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }
    /// Offset within the frame.
    #[must_use]
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
}

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
        Ok(Self { base, len })
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
                #[allow(clippy::cast_possible_truncation)]
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
        Ok(
            match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(v) | Err(v) => v,
            },
        )
    }

    /// Atomic 64-bit OR; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn fetch_or_u64(&self, addr: MachineAddr, bits: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: as in `cmpxchg_u64`.
        Ok(unsafe { AtomicU64::from_ptr(p) }.fetch_or(bits, Ordering::SeqCst))
    }

    /// Atomic 64-bit AND; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn fetch_and_u64(&self, addr: MachineAddr, bits: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: as in `cmpxchg_u64`.
        Ok(unsafe { AtomicU64::from_ptr(p) }.fetch_and(bits, Ordering::SeqCst))
    }

    /// Atomic 64-bit exchange; returns the previous value.
    ///
    /// # Errors
    /// Out of range or not 8-byte aligned.
    #[inline]
    pub fn swap_u64(&self, addr: MachineAddr, v: u64) -> Result<u64, MemError> {
        let p = self.aligned(addr.0, 8)?.cast::<u64>();
        // SAFETY: as in `cmpxchg_u64`.
        Ok(unsafe { AtomicU64::from_ptr(p) }.swap(v, Ordering::SeqCst))
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
        Ok(
            match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(v) | Err(v) => v,
            },
        )
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
        Ok(())
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
        Ok(unsafe { AtomicU8::from_ptr(p) }.swap(v, Ordering::SeqCst))
    }
}

impl Drop for MachineMemory {
    fn drop(&mut self) {
        #[allow(clippy::cast_possible_truncation)]
        let len = self.len as usize;
        // SAFETY: `base`/`len` describe exactly the mapping created in `new`,
        // and no pointer into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), len);
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
    fn zero_frames_is_rejected() {
        assert!(matches!(
            MachineMemory::new(0),
            Err(MemError::BadSize { .. })
        ));
    }
}
