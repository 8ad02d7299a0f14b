//! Raw Xen PV64 types with exact layouts.
//!
//! One module per Xen interface family. Every struct is `#[repr(C)]` (only
//! the e820 entry is `packed`, as in Xen), carries explicit padding fields so
//! that it has no implicit padding, derives the `zerocopy` traits
//! (`FromBytes`, `IntoBytes`, `KnownLayout`, `Immutable`, `FromZeros`) and is
//! followed by compile-time size and offset checks against the numbers in
//! `XEN-PV-ABI.md` (see the `assert_layout!` macro in this module). A layout
//! mistake is therefore a build failure, not a runtime surprise.
//!
//! Field docs say who writes a shared field: the *guest*, *Xen*, the
//! *backend* or the *frontend*. "IN"/"OUT" on hypercall argument structs are
//! from the caller's point of view.
//!
//! Nothing here performs I/O or needs `unsafe`; the hypercall layer is in
//! [`crate::hypercall`] and the typed wrappers live one level up
//! ([`crate::evtchn`], [`crate::gnttab`], ...).

/// Compile-time layout check: total size plus the offset of each listed
/// field (nested fields allowed, e.g. `console.mfn`).
macro_rules! assert_layout {
    ($t:ty, size = $size:expr $(, $field:ident $(. $sub:ident)* = $off:expr)* $(,)?) => {
        static_assertions::const_assert_eq!(core::mem::size_of::<$t>(), $size);
        $(
            static_assertions::const_assert_eq!(
                core::mem::offset_of!($t, $field $(. $sub)*),
                $off
            );
        )*
    };
}

/// Declares an ABI struct: `#[repr(C)]` plus the standard derives
/// (`Clone`, `Copy`, `Debug`, `Default`, `PartialEq`, `Eq` and the zerocopy
/// traits; `FromBytes` implies `FromZeros`).
macro_rules! zc {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable,
        )]
        #[repr(C)]
        pub struct $name { $($body)* }
    };
}

pub mod blkif;
pub mod callback;
pub mod console;
pub mod elfnote;
pub mod errno;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall_nr;
pub mod memory;
pub mod mmu;
pub mod netif;
pub mod sched;
pub mod types;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xenbus;
pub mod xenstore;

pub use errno::Errno;
pub use types::{DomId, EvtchnPort, GrantRef, GuestVa, MachineAddr, Mfn, Pfn};
pub use xen::{ArchSharedInfo, MulticallEntry, SharedInfo, StartInfo, VcpuInfo, VcpuTimeInfo};

/// log2 of the page size used by every hypercall and ring interface.
pub const XEN_PAGE_SHIFT: u32 = 12;
/// Page size used by every hypercall and ring interface (4 KiB).
pub const XEN_PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT;

/// `domid_t`: a domain id.
pub type DomIdRaw = u16;
/// First domain id reserved for special meanings (equal to [`DOMID_SELF`]).
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;
/// "The calling domain".
pub const DOMID_SELF: u16 = 0x7FF0;
/// Pseudo-domain owning I/O memory (map only I/O pages).
pub const DOMID_IO: u16 = 0x7FF1;
/// Pseudo-domain owning Xen heap pages (e.g. the M2P).
pub const DOMID_XEN: u16 = 0x7FF2;
/// Pseudo-domain owning copy-on-write shared pages.
pub const DOMID_COW: u16 = 0x7FF3;
/// "No domain".
pub const DOMID_INVALID: u16 = 0x7FF4;
/// "Any domain" (e.g. xenstore `DOMID_ANY` feature).
pub const DOMID_ANY: u16 = 0x7FF5;
/// The idle domain.
pub const DOMID_IDLE: u16 = 0x7FFF;
/// Mask of the meaningful domain-id bits.
pub const DOMID_MASK: u16 = 0x7FFF;

/// Size of the shared-ring header (`io/ring.h`): producer/consumer indices,
/// event thresholds and padding, before the entry array.
pub const RING_HEADER_SIZE: usize = 64;

/// Number of entries of `entry_size` bytes in a one-page shared ring: the
/// largest power of two that fits in `(4096 - 64) / entry_size`.
///
/// Returns 0 for an `entry_size` of 0 or larger than the usable space.
#[must_use]
pub const fn ring_entries(entry_size: usize) -> usize {
    ring_entries_in(XEN_PAGE_SIZE, entry_size)
}

/// [`ring_entries`] for a ring area of `ring_bytes` bytes (header included).
#[must_use]
pub const fn ring_entries_in(ring_bytes: usize, entry_size: usize) -> usize {
    if entry_size == 0 || ring_bytes < RING_HEADER_SIZE {
        return 0;
    }
    let fit = (ring_bytes - RING_HEADER_SIZE) / entry_size;
    if fit == 0 {
        return 0;
    }
    // Largest power of two <= fit.
    1 << (usize::BITS - 1 - fit.leading_zeros())
}

static_assertions::const_assert_eq!(ring_entries(112), 32);
static_assertions::const_assert_eq!(ring_entries(12), 256);
static_assertions::const_assert_eq!(ring_entries(8), 256);
static_assertions::const_assert_eq!(ring_entries(16), 128);
static_assertions::const_assert_eq!(ring_entries(0), 0);
static_assertions::const_assert_eq!(ring_entries(5000), 0);
