//! Example PV guests and host programs for pvsdk.
//!
//! The guest kernels live in `examples/guests/` (a freestanding workspace of
//! Rust guests: `hello`, `victim`, `hostile`) and `examples/c-kernel/` (a
//! Xen PV64 kernel in C and GNU assembler, built with gcc and its own linker
//! script, using nothing from pvsdk); this crate's build script compiles
//! them, and [`guest_image`] tells host programs and tests (and `hv run
//! NAME`) where each image is.
//!
//! ```
//! let hello = pvsdk_examples::guest_image("hello").expect("built by build.rs");
//! assert!(hello.is_file());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/guest_names.rs"));

/// Directory holding the built guest images.
#[must_use]
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("PVSDK_GUEST_DIR"))
}

/// Path of the built guest image `name` (e.g. `"hello"`), if there is one.
#[must_use]
pub fn guest_image(name: &str) -> Option<PathBuf> {
    GUESTS.contains(&name).then(|| guest_dir().join(name))
}
