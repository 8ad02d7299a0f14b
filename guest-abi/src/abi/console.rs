//! The PV console: `console_io` (hypercall 18) and the shared console ring
//! page (`io/console.h`).

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `console_io` command: write to Xen's console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `console_io` command: read from Xen's console.
pub const CONSOLEIO_READ: u32 = 1;

/// `connection`: the backend services the ring.
pub const XENCONSOLE_CONNECTED: u8 = 0;
/// `connection`: no backend yet (the builder's initial value).
pub const XENCONSOLE_DISCONNECTED: u8 = 1;

/// Size of `in` (backend → guest).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of `out` (guest → backend).
pub const XENCONS_OUT_SIZE: usize = 2048;

/// Position of free-running index `idx` in a ring of `size` bytes (a power of two).
#[must_use]
pub const fn mask_xencons_idx(idx: u32, size: usize) -> usize {
    idx as usize & (size - 1)
}

/// `struct xencons_interface` (at offset 0 of the console ring page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenconsInterface {
    /// Backend writes: keyboard input for the guest.
    pub in_: [u8; XENCONS_IN_SIZE],
    /// Guest writes: console output.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Guest: input consumer index.
    pub in_cons: u32,
    /// Backend: input producer index.
    pub in_prod: u32,
    /// Backend: output consumer index.
    pub out_cons: u32,
    /// Guest: output producer index.
    pub out_prod: u32,
    /// Backend (builder initialises it): `XENCONSOLE_*`.
    pub connection: u8,
    /// Padding (zero).
    pub _pad: [u8; 3],
}
assert_layout!(
    XenconsInterface,
    size = 3092,
    in_ = 0,
    out = 1024,
    in_cons = 3072,
    in_prod = 3076,
    out_cons = 3080,
    out_prod = 3084,
    connection = 3088
);

impl Default for XenconsInterface {
    fn default() -> Self {
        Self::new_zeroed()
    }
}
