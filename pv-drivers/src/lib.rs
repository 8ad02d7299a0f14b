//! # pv-drivers
//!
//! Xen PV split drivers: `no_std` frontends that run in guests and backends
//! that run in `hv`. (Frontends and backends land with the driver issues.)
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
