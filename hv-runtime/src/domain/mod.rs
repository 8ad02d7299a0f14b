//! Domains: the PV64 kernel image loader and (soon) the domain builder.

pub mod builder;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod image;
