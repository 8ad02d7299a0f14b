//! # hv-runtime
//!
//! A user-space hypervisor for Xen x86-64 PV guests.
#![deny(unsafe_code)]
