//! Domains: the PV64 kernel image loader ([`image`]: ELF, Xen notes,
//! libelf's acceptance rules) and the domain builder ([`builder`]: the PV64
//! boot layout of libxenguest — page tables, p2m, `start_info`, console and
//! xenstore pages, hypercall page, boot stack). `fuzzing` (feature `testing`) holds the fuzz
//! body for both.

pub mod builder;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod image;
