//! Domains: the PV64 kernel image loader and (soon) the domain builder.

pub mod builder;
pub mod image;
