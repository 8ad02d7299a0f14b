//! Example PV guests and host programs for pvsdk.
//!
//! This crate's build script compiles every guest kernel below, and
//! [`guest_image`] tells host programs and tests (and `hv run NAME`) where
//! each image is. The Rust guests live in `examples/guests/` (a freestanding
//! workspace, `panic = "abort"`, custom linker script):
//!
//! | guest | what it shows |
//! |---|---|
//! | `hello` | the demo: greet on the console, read the paravirtual clock, take timer events, shut down |
//! | `mmu` | page tables the PV way: build and switch to a new address space from the guest's own frames |
//! | `ping`, `pong` | an event-channel ping-pong between two domains (`hv run ping pong`) |
//! | `flip-send`, `flip-recv` | page flipping: grant transfer of filled frames from one domain to another |
//! | `vchan-a`, `vchan-b` | a vchan-like two-way byte channel over granted pages (server and client) |
//! | `xs-demo` | the xenstore client over the real ring |
//! | `victim`, `hostile` | isolation: a hostile guest tries every breach of the PV rules while a well-behaved bystander must be unaffected |
//! | `xtf-boot`, `xtf-events`, `xtf-shutdown`, `xtf-traps`, `xtf-user` | conformance tests in the style of Xen's XTF: boot protocol and consoles, event channels and timers, shutdown reasons, exceptions and software interrupts, guest user mode |
//!
//! Helper crates there (not guests): `vchan-common` (the channel) and
//! `xtf-common` (entry stubs and machine glue). `examples/c-kernel/` is a
//! Xen PV64 kernel in C and GNU assembler (`c-kernel`), built with gcc and
//! its own linker script, using nothing from pvsdk: a guest written by
//! someone else's rules.
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
