//! # hv-runtime
//!
//! A user-space hypervisor for Xen x86-64 PV guests: Xen's PV ABI and its
//! rules, moved into one process. Modules, bottom up (each imports only
//! the ones before it; docs/ARCHITECTURE.md has the map):
//!
//! * [`machine`] — the frame table (`PageInfo` per machine frame) and M2P.
//! * [`mm`] — page types and validated page-table updates (Xen's rules).
//! * [`guestmem`] — copies to and from guest virtual memory.
//! * [`domain`] — kernel image parsing and the PV64 domain builder.
//! * [`evtchn`] — 2-level event channels.
//! * [`vcpu`] — the PV vCPU: kernel/user mode, trap bounce, `iret`.
//! * [`xenstore`] — xenstored: the store, its wire protocol and the rings.
//! * [`console`], [`cpuid`] — console rings and input; the modelled CPU's
//!   `cpuid` (docs/CPU-VENDORS.md).
//! * [`hv`] — the hypervisor object and its narrow accessors.
//! * [`gnttab`] — grant tables v1: state ([`gnttab::table`]), map, copy,
//!   transfer, and the runtime's own [`gnttab::GrantAccess`].
//! * [`emulate`] — what Xen emulates for PV kernels.
//! * [`hypercall`] — exits and the hypercall table, one module per family
//!   (`mmu`, `gnttab`, `memory`, `evtchn`, `vcpu`, `sched`, `callback`, …).
//! * [`run`] — the run loop.
//! * `bench` (feature `testing`) — the workloads of `hv bench`.
//!
//! Machine memory itself and the execution backends live in `hv-cpu`; the
//! `hv` command lives in `hv-cli` (`hv-runtime/cli/`). The `testing`
//! feature adds the fuzz bodies (`mm::fuzzing`, `gnttab::fuzzing`,
//! `domain::fuzzing`, `xenstore::fuzzing`), the grant-table test world
//! (`gnttab::testing`) and the benchmark guests of `hv bench` (`bench`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

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
pub mod mm;
pub mod run;
pub mod vcpu;
pub mod xenstore;

pub use hv_cpu as cpu;
