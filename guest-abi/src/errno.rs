//! Xen errno values: every typed wrapper returns `Result<_, Errno>`.
//!
//! Re-exports [`crate::abi::errno`] so wrappers and callers can write
//! `guest_abi::errno::Errno`.

pub use crate::abi::errno::Errno;
