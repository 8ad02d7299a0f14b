//! # guest-abi
//!
//! The Xen x86-64 paravirtual (PV64) guest ABI for `no_std` guest kernels, and
//! the host-side code that must agree with it byte for byte.
//!
//! Layers, bottom up (see `docs/ARCHITECTURE.md`):
//!
//! 1. [`abi`] — raw types with Xen's exact layouts. Every struct derives the
//!    `zerocopy` traits and carries compile-time size and offset checks against
//!    the numbers in the ABI reference.
//! 2. [`hypercall`] — hypercall numbers and the [`hypercall::Hypercall`] trait: the real
//!    x86-64 implementation calls the hypercall page; a recording one lets host
//!    tests drive guest code without a CPU.
//! 3. Safe wrappers, one module per hypercall family, named as in Xen:
//!    [`evtchn`], [`gnttab`], [`mmu`], [`sched`], [`console`], [`vcpu`],
//!    [`memory`], [`version`], plus [`pvclock`].
//! 4. [`ring`] — one generic shared ring (Xen's `io/ring.h` protocol) over
//!    shared memory reached only through volatile copies and atomics.
//! 5. [`xenstore`] — a no-alloc xenstore client over the store ring page.
//! 6. [`entry`](mod@entry) — macros that emit the Xen ELF notes and the entry stub.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod abi;
pub mod callback;
pub mod console;
pub mod entry;
pub mod errno;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall;
pub mod memory;
pub mod mmu;
pub mod pvclock;
pub mod ring;
pub mod sched;
pub mod shared;
pub mod vcpu;
pub mod version;
pub mod xenstore;
