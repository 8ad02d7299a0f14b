//! Domains: the PV64 kernel image loader and (soon) the domain builder.

pub mod builder;
pub mod fuzzing;
pub mod image;
