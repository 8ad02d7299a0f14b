//! # hv-cpu
//!
//! The seam between the hypervisor and whatever executes guest instructions
//! (`CpuState`, `VcpuBackend`, `Exit`), and the portable software x86-64 CPU.
#![deny(unsafe_code)]
