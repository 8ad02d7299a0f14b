//! The [`Hypercall`] trait: how guest code enters Xen.
//!
//! Everything above this layer (the per-family wrappers in [`crate::evtchn`],
//! [`crate::gnttab`], ...) is generic over a `H: Hypercall`, so the same code
//! runs in a guest kernel (through [`XenHypercallPage`], which calls the
//! hypercall page with inline assembly) and in host tests (through
//! `testing::RecordingHypercall` / `testing::ScriptedHypercall`, behind
//! `cfg(test)` or the `testing` feature).
//!
//! # Calling convention (PV64)
//!
//! The number goes in `rax` (the page stub loads it), arguments 1–5 in
//! `rdi`, `rsi`, `rdx`, `r10`, `r8`, and the result comes back in `rax`:
//! negative values are `-errno` ([`Errno::from_ret`]). A pointer argument is
//! the guest virtual address of caller memory; wrappers build it with
//! [`arg_mut`] / [`arg_ref`] / [`arg_slice_mut`] from a live borrow that
//! outlasts the call.
//!
//! # Unsafe code
//!
//! The crate is `#![deny(unsafe_code)]`; only the [`page`] module (inline
//! assembly) and the test-only `testing` module opt back in with
//! `#![expect(unsafe_code)]`.

use crate::abi::errno::Errno;
pub use crate::abi::hypercall_nr as nr;

#[cfg(target_arch = "x86_64")]
pub mod page;
#[cfg(target_arch = "x86_64")]
pub use page::XenHypercallPage;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// Something that can issue a Xen hypercall.
pub trait Hypercall {
    /// Issues hypercall `nr` with arguments in `rdi`, `rsi`, `rdx`, `r10`,
    /// `r8` order and returns `rax` unchanged (negative = `-errno`).
    ///
    /// Pointer arguments must point at memory that stays valid and is not
    /// otherwise accessed for the duration of the call.
    fn call(&self, nr: u32, args: [u64; 5]) -> i64;

    /// [`Hypercall::call`] with the result mapped through [`Errno::from_ret`].
    fn call_checked(&self, nr: u32, args: [u64; 5]) -> Result<u64, Errno> {
        Errno::from_ret(self.call(nr, args))
    }
}

impl<H: Hypercall + ?Sized> Hypercall for &H {
    fn call(&self, nr: u32, args: [u64; 5]) -> i64 {
        (**self).call(nr, args)
    }
}

/// The hypercall argument for a pointer to `*r` (guest virtual address).
///
/// Taking `&mut` documents that Xen may write through the pointer; the borrow
/// must last until the hypercall returns.
#[must_use]
pub fn arg_mut<T: ?Sized>(r: &mut T) -> u64 {
    core::ptr::from_mut(r).cast::<u8>() as u64
}

/// The hypercall argument for a pointer to `*r` that Xen only reads.
#[must_use]
pub fn arg_ref<T: ?Sized>(r: &T) -> u64 {
    core::ptr::from_ref(r).cast::<u8>() as u64
}

/// The hypercall argument for a pointer to the first element of `s`.
#[must_use]
pub fn arg_slice_mut<T>(s: &mut [T]) -> u64 {
    s.as_mut_ptr() as u64
}

/// A slice length as a hypercall count, or `EINVAL` if it does not fit `u32`.
pub fn count_u32<T>(s: &[T]) -> Result<u32, Errno> {
    u32::try_from(s.len()).map_err(|_| Errno::EINVAL)
}
