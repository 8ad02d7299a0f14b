//! Memory reservation and physmap (`memory_op`, hypercall 12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `memory_op` command 0: allocate extents to a domain ([`XenMemoryReservation`]).
pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
/// `memory_op` command 1: give extents back to Xen ([`XenMemoryReservation`]).
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `memory_op` command 2: returns the highest machine frame number of the host.
pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
/// `memory_op` command 3: returns the pages a domain holds now ([`XenMemoryDomain`]).
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// `memory_op` command 4: returns the most pages a domain may hold ([`XenMemoryDomain`]).
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
/// `memory_op` command 5: list the frames that back the M2P table ([`XenMachphysMfnList`]).
pub const XENMEM_MACHPHYS_MFN_LIST: u64 = 5;
/// `memory_op` command 6: allocate frames and place them at the given PFNs
/// ([`XenMemoryReservation`]).
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `memory_op` command 7: map a page from a `XENMAPSPACE_*` space at a guest frame
/// ([`XenAddToPhysmap`]).
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `memory_op` command 9: read the domain's pseudo-physical e820 map ([`XenMemoryMap`]).
pub const XENMEM_MEMORY_MAP: u64 = 9;
/// `memory_op` command 10: read the host's e820 map, privileged ([`XenMemoryMap`]).
pub const XENMEM_MACHINE_MEMORY_MAP: u64 = 10;
/// `memory_op` command 11: trade extents for new ones with other constraints
/// ([`XenMemoryExchange`]).
pub const XENMEM_EXCHANGE: u64 = 11;
/// `memory_op` command 12: where the read-only M2P table is mapped ([`XenMachphysMapping`]).
pub const XENMEM_MACHPHYS_MAPPING: u64 = 12;
/// `memory_op` command 13: toolstack sets a domain's pseudo-physical e820 map.
pub const XENMEM_SET_MEMORY_MAP: u64 = 13;
/// `memory_op` command 14: returns the highest guest frame a domain uses ([`XenMemoryDomain`]).
pub const XENMEM_MAXIMUM_GPFN: u64 = 14;
/// `memory_op` command 15: unmap a guest frame ([`XenRemoveFromPhysmap`]).
pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
/// Mask of the operation in `cmd`; bits above are Xen's continuation start.
pub const XENMEM_CMD_MASK: u64 = 0x3F;
/// Shift of the continuation start-extent in `cmd`.
pub const XENMEM_EXTENT_SHIFT: u32 = 6;

// --- mem_flags -------------------------------------------------------------------

/// Address-width limit for allocated frames (0 = none).
#[must_use]
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits & 0xFF
}
/// Preferred NUMA node.
#[must_use]
pub const fn xenmemf_node(node: u32) -> u32 {
    ((node + 1) & 0xFF) << 8
}
/// Populate-on-demand.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// Fail rather than fall back to another node.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// The node is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

// --- add_to_physmap spaces (memory.h) ---------------------------------------------

/// `add_to_physmap.space`: the shared-info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `add_to_physmap.space`: a grant-table frame, `idx` being its number.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `add_to_physmap.space`: one of the domain's own frames, moved from `idx`.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `add_to_physmap.space`: `size` of the domain's own frames from `idx`.
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `add_to_physmap.space`: a frame of another domain (batch variant only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `add_to_physmap.space`: device MMIO (Arm, batch variant only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

zc! {
    /// `struct xen_memory_reservation`.
    pub struct XenMemoryReservation {
        /// IN/OUT: guest pointer to a `u64[nr_extents]` array of frames.
        pub extent_start: u64,
        /// IN: number of extents.
        pub nr_extents: u64,
        /// IN: log2 pages per extent.
        pub extent_order: u32,
        /// IN: `XENMEMF_*`.
        pub mem_flags: u32,
        /// IN: `DOMID_SELF` unless privileged.
        pub domid: u16,
        /// Padding (zero).
        pub _pad: [u8; 6],
    }
}
assert_layout!(
    XenMemoryReservation,
    size = 32,
    extent_start = 0,
    nr_extents = 8,
    extent_order = 16,
    mem_flags = 20,
    domid = 24
);

zc! {
    /// The `domid_t` argument of current/maximum reservation and maximum_gpfn.
    pub struct XenMemoryDomain {
        /// IN: domain.
        pub domid: u16,
    }
}
assert_layout!(XenMemoryDomain, size = 2, domid = 0);

zc! {
    /// `struct xen_machphys_mfn_list`.
    pub struct XenMachphysMfnList {
        /// IN: capacity of `extent_start`.
        pub max_extents: u32,
        /// Padding (zero).
        pub _pad0: u32,
        /// IN: guest pointer to a `u64` array receiving 2 MiB-chunk MFNs.
        pub extent_start: u64,
        /// OUT: entries written.
        pub nr_extents: u32,
        /// Padding (zero).
        pub _pad1: u32,
    }
}
assert_layout!(
    XenMachphysMfnList,
    size = 24,
    max_extents = 0,
    extent_start = 8,
    nr_extents = 16
);

zc! {
    /// `struct xen_add_to_physmap` (translated guests only).
    pub struct XenAddToPhysmap {
        /// IN: domain.
        pub domid: u16,
        /// IN: number of pages for `XENMAPSPACE_GMFN_RANGE`.
        pub size: u16,
        /// IN: `XENMAPSPACE_*`.
        pub space: u32,
        /// IN: index in the space.
        pub idx: u64,
        /// IN: guest frame to map at.
        pub gpfn: u64,
    }
}
assert_layout!(
    XenAddToPhysmap,
    size = 24,
    domid = 0,
    size = 2,
    space = 4,
    idx = 8,
    gpfn = 16
);

zc! {
    /// `struct xen_remove_from_physmap` (translated guests only).
    pub struct XenRemoveFromPhysmap {
        /// IN: domain.
        pub domid: u16,
        /// Padding (zero).
        pub _pad: [u8; 6],
        /// IN: guest frame to unmap.
        pub gpfn: u64,
    }
}
assert_layout!(XenRemoveFromPhysmap, size = 16, domid = 0, gpfn = 8);

zc! {
    /// `struct xen_memory_map` (`XENMEM_memory_map`, `machine_memory_map`).
    pub struct XenMemoryMap {
        /// IN: capacity in entries; OUT: entries written.
        pub nr_entries: u32,
        /// Padding (zero).
        pub _pad: u32,
        /// IN: guest pointer to an array of [`E820Entry`].
        pub buffer: u64,
    }
}
assert_layout!(XenMemoryMap, size = 16, nr_entries = 0, buffer = 8);

/// One e820 map entry (packed, 20 bytes, as the BIOS format). Written by Xen.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C, packed)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub type_: u32,
}
assert_layout!(E820Entry, size = 20, addr = 0, size = 8, type_ = 16);

/// e820 type 1: usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type 2: reserved, not for the OS.
pub const E820_RESERVED: u32 = 2;
/// e820 type 3: ACPI tables, reusable once read.
pub const E820_ACPI: u32 = 3;
/// e820 type 4: ACPI non-volatile storage, to be preserved.
pub const E820_NVS: u32 = 4;
/// e820 type 5: memory found faulty.
pub const E820_UNUSABLE: u32 = 5;

zc! {
    /// `struct xen_memory_exchange` (PV only).
    pub struct XenMemoryExchange {
        /// IN: extents to give up.
        pub in_: XenMemoryReservation,
        /// IN/OUT: extents to receive.
        pub out: XenMemoryReservation,
        /// IN: must be 0; OUT: input extents exchanged.
        pub nr_exchanged: u64,
    }
}
assert_layout!(
    XenMemoryExchange,
    size = 72,
    in_ = 0,
    out = 32,
    nr_exchanged = 64
);

zc! {
    /// `struct xen_machphys_mapping`: where the read-only M2P is.
    pub struct XenMachphysMapping {
        /// OUT: start VA.
        pub v_start: u64,
        /// OUT: end VA (exclusive).
        pub v_end: u64,
        /// OUT: largest MFN the table covers.
        pub max_mfn: u64,
    }
}
assert_layout!(
    XenMachphysMapping,
    size = 24,
    v_start = 0,
    v_end = 8,
    max_mfn = 16
);
