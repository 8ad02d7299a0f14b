//! Domains: the PV64 kernel image loader and (soon) the domain builder.

pub mod image;
