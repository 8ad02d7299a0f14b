//! # hv-runtime
//!
//! A user-space hypervisor for Xen x86-64 PV guests: Xen's PV ABI and its
//! rules, moved into one process.
//!
//! * [`machine`] — the frame table (`PageInfo` per machine frame).
//! * [`mm`] — page types and validated page-table updates (Xen's rules).
//!
//! Machine memory itself and the execution backends live in `hv-cpu`.
#![deny(unsafe_code)]

pub mod domain;
pub mod evtchn;
pub mod guestmem;
pub mod machine;
pub mod mm;
pub mod vcpu;

pub use hv_cpu as cpu;
