//! # hv-runtime
//!
//! A user-space hypervisor for Xen x86-64 PV guests: Xen's PV ABI and its
//! rules, moved into one process.
//!
//! * [`machine`] — the frame table (`PageInfo` per machine frame) and M2P.
//! * [`mm`] — page types and validated page-table updates (Xen's rules).
//! * [`domain`] — kernel image parsing and the PV64 domain builder.
//! * [`evtchn`] — 2-level event channels.
//! * [`gnttab`] — grant tables v1: map, copy, transfer, and the runtime's
//!   own [`gnttab::GrantAccess`].
//! * [`vcpu`] — the PV vCPU: kernel/user mode, trap bounce, `iret`.
//! * [`hypercall`], [`emulate`], [`memory`] — the exit handler, hypercall
//!   table and what Xen emulates for PV kernels.
//! * [`hv`] — the hypervisor object and its run loop.
//! * [`xenstore`] — xenstored: the store, its wire protocol and the rings.
//!
//! Machine memory itself and the execution backends live in `hv-cpu`; the
//! `hv` command lives in `hv-cli` (`hv-runtime/cli/`). The `testing`
//! feature adds the fuzz bodies (`mm::fuzzing`, `gnttab::fuzzing`,
//! `domain::fuzzing`, `xenstore::fuzzing`), the grant-table test world
//! (`gnttab::testing`) and the benchmark guests of `hv bench` (`bench`).
#![deny(unsafe_code)]

#[cfg(any(test, feature = "testing"))]
pub mod bench;
pub mod console;
pub mod cpuid;
pub mod domain;
pub mod emulate;
pub mod evtchn;
#[cfg(any(test, feature = "testing"))]
mod fuzz_input;
pub mod gnttab;
pub mod guestmem;
pub mod hv;
pub mod hypercall;
pub mod machine;
pub mod memory;
pub mod mm;
pub mod vcpu;
pub mod xenstore;

pub use hv_cpu as cpu;
