//! Host-side hypercall implementations for tests (`cfg(test)` or the `testing`
//! feature): record what guest code asked for and script what "Xen" answers.
//!
//! In a host test the "guest virtual address" a wrapper passes is simply the
//! host address of the caller's buffer, so a scripted hypervisor can read and
//! write it through [`HvCall`]'s `unsafe` accessors.
#![expect(unsafe_code)]

use core::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::vec::Vec;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::Hypercall;

/// One recorded hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// Hypercall number.
    pub nr: u32,
    /// `rdi`, `rsi`, `rdx`, `r10`, `r8`.
    pub args: [u64; 5],
}

/// Records every call and returns queued results (then a default, 0 unless
/// changed). Pointer arguments are recorded as numbers only.
#[derive(Debug, Default)]
pub struct RecordingHypercall {
    calls: RefCell<Vec<Call>>,
    results: RefCell<VecDeque<i64>>,
    default: Cell<i64>,
}

impl RecordingHypercall {
    /// An empty recorder that answers 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that answers `results` in order, then 0.
    #[must_use]
    pub fn with_results(results: impl IntoIterator<Item = i64>) -> Self {
        let r = Self::new();
        r.results.borrow_mut().extend(results);
        r
    }

    /// Queues one more result.
    pub fn push_result(&self, ret: i64) {
        self.results.borrow_mut().push_back(ret);
    }

    /// Sets the result used once the queue is empty.
    pub fn set_default(&self, ret: i64) {
        self.default.set(ret);
    }

    /// The calls so far.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The most recent call.
    #[must_use]
    pub fn last(&self) -> Option<Call> {
        self.calls.borrow().last().copied()
    }

    /// Removes and returns the calls so far.
    pub fn take_calls(&self) -> Vec<Call> {
        core::mem::take(&mut *self.calls.borrow_mut())
    }
}

impl Hypercall for RecordingHypercall {
    fn call(&self, nr: u32, args: [u64; 5]) -> i64 {
        self.calls.borrow_mut().push(Call { nr, args });
        self.results
            .borrow_mut()
            .pop_front()
            .unwrap_or(self.default.get())
    }
}

/// One in-flight call as seen by a [`ScriptedHypercall`] closure.
#[derive(Debug)]
pub struct HvCall {
    /// Hypercall number.
    pub nr: u32,
    /// `rdi`, `rsi`, `rdx`, `r10`, `r8`.
    pub args: [u64; 5],
}

impl HvCall {
    /// Copies a `T` out of guest memory at `addr`.
    ///
    /// # Safety
    ///
    /// `addr` must be a pointer argument of *this* call (or derived from one
    /// by following the hypercall's documented layout, e.g. a handle field),
    /// pointing at at least `size_of::<T>()` readable bytes of the caller's
    /// live buffer.
    #[must_use]
    pub unsafe fn read<T: FromBytes>(&self, addr: u64) -> T {
        let p = core::ptr::with_exposed_provenance::<T>(to_usize(addr));
        // SAFETY: the caller guarantees `addr` names `size_of::<T>()` readable
        // bytes of a live buffer the guest code passed; `T: FromBytes` accepts
        // any bytes; `read_unaligned` does not need alignment.
        unsafe { p.read_unaligned() }
    }

    /// Copies `v` into guest memory at `addr`.
    ///
    /// # Safety
    ///
    /// As for [`HvCall::read`], and the bytes must be writable: the caller's
    /// buffer is borrowed mutably for the call and nothing else reads or
    /// writes it meanwhile.
    pub unsafe fn write<T: IntoBytes + Immutable>(&self, addr: u64, v: &T) {
        let bytes = v.as_bytes();
        let p = core::ptr::with_exposed_provenance_mut::<u8>(to_usize(addr));
        // SAFETY: the caller guarantees `bytes.len()` writable bytes at `addr`
        // that nothing else accesses during the call; the source is a separate
        // local value, so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
    }

    /// Copies `n` consecutive `T`s out of guest memory at `addr`.
    ///
    /// # Safety
    ///
    /// As for [`HvCall::read`], for `n * size_of::<T>()` bytes.
    #[must_use]
    pub unsafe fn read_slice<T: FromBytes>(&self, addr: u64, n: usize) -> Vec<T> {
        (0..n)
            .map(|i| {
                let a = addr + (i * core::mem::size_of::<T>()) as u64;
                // SAFETY: element `i < n` lies inside the range the caller vouched for.
                unsafe { self.read::<T>(a) }
            })
            .collect()
    }

    /// Copies `vs` into guest memory at `addr`.
    ///
    /// # Safety
    ///
    /// As for [`HvCall::write`], for `vs.len() * size_of::<T>()` bytes.
    pub unsafe fn write_slice<T: IntoBytes + Immutable>(&self, addr: u64, vs: &[T]) {
        for (i, v) in vs.iter().enumerate() {
            let a = addr + (i * core::mem::size_of::<T>()) as u64;
            // SAFETY: element `i < vs.len()` lies inside the range the caller vouched for.
            unsafe { self.write(a, v) }
        }
    }
}

fn to_usize(addr: u64) -> usize {
    usize::try_from(addr).unwrap_or(usize::MAX)
}

/// A hypervisor played by a closure: it sees each call (and may read/write
/// the caller's buffers through [`HvCall`]) and returns `rax`. Calls are also
/// recorded.
pub struct ScriptedHypercall<F: Fn(&HvCall) -> i64> {
    f: F,
    calls: RefCell<Vec<Call>>,
}

impl<F: Fn(&HvCall) -> i64> core::fmt::Debug for ScriptedHypercall<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ScriptedHypercall")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl<F: Fn(&HvCall) -> i64> ScriptedHypercall<F> {
    /// A scripted hypervisor.
    pub fn new(f: F) -> Self {
        Self {
            f,
            calls: RefCell::new(Vec::new()),
        }
    }

    /// The calls so far.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
}

impl<F: Fn(&HvCall) -> i64> Hypercall for ScriptedHypercall<F> {
    fn call(&self, nr: u32, args: [u64; 5]) -> i64 {
        self.calls.borrow_mut().push(Call { nr, args });
        (self.f)(&HvCall { nr, args })
    }
}
