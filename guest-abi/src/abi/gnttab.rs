//! Grant tables (`grant_table_op`, hypercall 20): grant entries, `GTF_*`,
//! `GNTMAP_*`, `GNTCOPY_*`, `GNTST_*` and every `GNTTABOP_*` argument struct.

use core::fmt;

/// `grant_ref_t`.
pub type GrantRefRaw = u32;
/// `grant_handle_t`: opaque map handle.
pub type GrantHandle = u32;

/// `grant_table_op` command 0: map a granted frame ([`GnttabMapGrantRef`]).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `grant_table_op` command 1: undo a grant mapping ([`GnttabUnmapGrantRef`]).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `grant_table_op` command 2: size the caller's grant table and learn its frames
/// ([`GnttabSetupTable`]).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `grant_table_op` command 3: print a domain's grant table on the Xen console, for debugging
/// ([`GnttabDumpTable`]).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// `grant_table_op` command 4: hand a page over to another domain ([`GnttabTransfer`]).
pub const GNTTABOP_TRANSFER: u32 = 4;
/// `grant_table_op` command 5: copy bytes between granted or local frames ([`GnttabCopy`]).
pub const GNTTABOP_COPY: u32 = 5;
/// `grant_table_op` command 6: read a domain's current and maximum table frames
/// ([`GnttabQuerySize`]).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `grant_table_op` command 7: unmap a grant, putting another mapping in its place
/// ([`GnttabUnmapAndReplace`]).
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// `grant_table_op` command 8: choose the v1 or v2 entry layout ([`GnttabSetVersion`]).
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `grant_table_op` command 9: learn the frames of the v2 status array ([`GnttabGetStatusFrames`]).
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// `grant_table_op` command 10: read a domain's entry layout version ([`GnttabGetVersion`]).
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// `grant_table_op` command 11: exchange two entries of the caller's table
/// ([`GnttabSwapGrantRef`]).
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// `grant_table_op` command 12: clean or invalidate the data cache over a granted range
/// ([`GnttabCacheFlush`]).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// Grant refs reserved for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Ref 0: the console ring, pre-filled by the domain builder.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// Ref 1: the xenstore ring, pre-filled by the domain builder.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;
/// Default maximum grant-table frames per domain.
pub const DEFAULT_MAX_GRANT_FRAMES: u32 = 64;
/// Default maximum maptrack frames per domain.
pub const DEFAULT_MAX_MAPTRACK_FRAMES: u32 = 1024;
/// v1 entries per 4 KiB grant frame.
pub const GRANT_ENTRIES_V1_PER_FRAME: usize = super::XEN_PAGE_SIZE / 8;
/// v2 entries per 4 KiB grant frame.
pub const GRANT_ENTRIES_V2_PER_FRAME: usize = super::XEN_PAGE_SIZE / 16;
/// v2 status entries per 4 KiB status frame.
pub const GRANT_STATUS_PER_FRAME: usize = super::XEN_PAGE_SIZE / 2;
static_assertions::const_assert_eq!(GRANT_ENTRIES_V1_PER_FRAME, 512);

// --- GTF flags (grant_entry.flags) -------------------------------------------

/// Entry type: unused.
pub const GTF_INVALID: u16 = 0;
/// Entry type: the grantee may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Entry type: the granter accepts a page transfer into a PFN slot.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// Entry type (v2): transitive grant.
pub const GTF_TRANSITIVE: u16 = 3;
/// Mask of the entry type.
pub const GTF_TYPE_MASK: u16 = 3;
/// permit_access: read-only for the grantee (guest-set).
pub const GTF_READONLY: u16 = 1 << 2;
/// permit_access: in use for reading (Xen-set).
pub const GTF_READING: u16 = 1 << 3;
/// permit_access: in use for writing (Xen-set).
pub const GTF_WRITING: u16 = 1 << 4;
/// Cache attribute for mappings: write-through.
pub const GTF_PWT: u16 = 1 << 5;
/// Cache attribute for mappings: cache disable.
pub const GTF_PCD: u16 = 1 << 6;
/// Cache attribute for mappings: PAT.
pub const GTF_PAT: u16 = 1 << 7;
/// v2 only: sub-page (copy-only) grant.
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// accept_transfer: Xen has committed to the transfer (Xen-set).
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// accept_transfer: the new frame is in `frame` (Xen-set).
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

// --- GNTMAP flags (map_grant_ref.flags) ---------------------------------------

/// Also return `dev_bus_addr` for DMA.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// Create a CPU mapping.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Read-only mapping/access.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// Mapping usable from guest user mode.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `host_addr` is the machine address of the L1 PTE to write.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// Shift of the guest-available bits copied into PTE bits 9–11.
pub const GNTMAP_GUEST_AVAIL_SHIFT: u32 = 16;
/// Mask of the guest-available bits.
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = 0xFFFF_0000;

// --- GNTCOPY flags ---------------------------------------------------------------

/// `source.u` is a grant ref in `source.domid`.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `dest.u` is a grant ref in `dest.domid`.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

// --- cache_flush ops (Arm-oriented; from grant_table.h) ----------------------

/// `cache_flush.op`: write dirty cache lines back to memory.
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `cache_flush.op`: discard the cache lines.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `cache_flush.op`: `a` holds a grant ref, not a device bus address.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

// --- GNTST status codes --------------------------------------------------------

/// `GNTST_okay`: the operation succeeded.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`: failure with no more specific code.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`: the domain id names no domain.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`: the grant ref is out of range or its entry grants nothing usable.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`: the map handle names no current mapping.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`: the host virtual address (or PTE address) cannot be used.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`: the device bus address does not match the mapping.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`: no room left to make a device (DMA) mapping.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`: the grant does not allow this domain or this kind of access.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`: the frame is not a page the operation can use.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`: a copy range runs past the end of its frame.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`: the page's address is too wide for the receiving domain.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`: the operation did not complete (e.g. frame paged out); retry it.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`: out of room, e.g. no free map-tracking entries.
pub const GNTST_NO_SPACE: i16 = -13;

/// A per-operation grant status (`GNTST_*`), as written by Xen into each
/// argument struct's `status` field.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct GntStatus(pub i16);

impl GntStatus {
    /// [`GNTST_OKAY`]: the operation succeeded.
    pub const OKAY: Self = Self(GNTST_OKAY);
    /// [`GNTST_GENERAL_ERROR`]: failure with no more specific code.
    pub const GENERAL_ERROR: Self = Self(GNTST_GENERAL_ERROR);
    /// [`GNTST_BAD_DOMAIN`]: the domain id names no domain.
    pub const BAD_DOMAIN: Self = Self(GNTST_BAD_DOMAIN);
    /// [`GNTST_BAD_GNTREF`]: the grant ref is out of range or its entry grants nothing usable.
    pub const BAD_GNTREF: Self = Self(GNTST_BAD_GNTREF);
    /// [`GNTST_BAD_HANDLE`]: the map handle names no current mapping.
    pub const BAD_HANDLE: Self = Self(GNTST_BAD_HANDLE);
    /// [`GNTST_BAD_VIRT_ADDR`]: the host virtual address (or PTE address) cannot be used.
    pub const BAD_VIRT_ADDR: Self = Self(GNTST_BAD_VIRT_ADDR);
    /// [`GNTST_BAD_DEV_ADDR`]: the device bus address does not match the mapping.
    pub const BAD_DEV_ADDR: Self = Self(GNTST_BAD_DEV_ADDR);
    /// [`GNTST_NO_DEVICE_SPACE`]: no room left to make a device (DMA) mapping.
    pub const NO_DEVICE_SPACE: Self = Self(GNTST_NO_DEVICE_SPACE);
    /// [`GNTST_PERMISSION_DENIED`]: the grant does not allow this domain or this kind of access.
    pub const PERMISSION_DENIED: Self = Self(GNTST_PERMISSION_DENIED);
    /// [`GNTST_BAD_PAGE`]: the frame is not a page the operation can use.
    pub const BAD_PAGE: Self = Self(GNTST_BAD_PAGE);
    /// [`GNTST_BAD_COPY_ARG`]: a copy range runs past the end of its frame.
    pub const BAD_COPY_ARG: Self = Self(GNTST_BAD_COPY_ARG);
    /// [`GNTST_ADDRESS_TOO_BIG`]: the page's address is too wide for the receiving domain.
    pub const ADDRESS_TOO_BIG: Self = Self(GNTST_ADDRESS_TOO_BIG);
    /// [`GNTST_EAGAIN`]: the operation did not complete (e.g. frame paged out); retry it.
    pub const EAGAIN: Self = Self(GNTST_EAGAIN);
    /// [`GNTST_NO_SPACE`]: out of room, e.g. no free map-tracking entries.
    pub const NO_SPACE: Self = Self(GNTST_NO_SPACE);

    /// Whether this is `GNTST_okay`.
    #[must_use]
    pub const fn is_ok(self) -> bool {
        self.0 == GNTST_OKAY
    }

    /// `Ok(())` for `GNTST_okay`, else `Err(self)`.
    pub const fn check(self) -> Result<(), GntStatus> {
        if self.is_ok() { Ok(()) } else { Err(self) }
    }

    /// Short description, in the order of Xen's status-message table.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "okay",
            -1 => "general error",
            -2 => "bad domain",
            -3 => "bad grant reference",
            -4 => "bad map handle",
            -5 => "bad virtual address",
            -6 => "bad device address",
            -7 => "no device space",
            -8 => "permission denied",
            -9 => "bad page",
            -10 => "copy crosses a page boundary",
            -11 => "address too big",
            -12 => "try again",
            -13 => "no space",
            _ => return None,
        })
    }
}

impl fmt::Debug for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "GntStatus({}: {n})", self.0),
            None => write!(f, "GntStatus({})", self.0),
        }
    }
}

impl fmt::Display for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} (GNTST {})", self.0),
            None => write!(f, "GNTST {}", self.0),
        }
    }
}

impl core::error::Error for GntStatus {}

// --- grant entries -----------------------------------------------------------------

zc! {
    /// `struct grant_entry_v1`: one slot of a v1 grant table (shared between
    /// the granting guest and Xen).
    pub struct GrantEntryV1 {
        /// `GTF_*`: type and `GTF_READONLY` written by the guest (last, after a
        /// write barrier); `GTF_READING`/`WRITING`/`TRANSFER_*` written by Xen.
        pub flags: u16,
        /// Guest: the grantee (or, for accept_transfer, the expected sender).
        pub domid: u16,
        /// Guest: frame granted (MFN for PV) or PFN slot for a transfer;
        /// Xen: new MFN once a transfer completes.
        pub frame: u32,
    }
}
assert_layout!(GrantEntryV1, size = 8, flags = 0, domid = 2, frame = 4);

zc! {
    /// `struct grant_entry_header` (v2).
    pub struct GrantEntryHeader {
        /// `GTF_*` (guest; status bits live in the separate status array).
        pub flags: u16,
        /// Guest: grantee.
        pub domid: u16,
    }
}
assert_layout!(GrantEntryHeader, size = 4, flags = 0, domid = 2);

zc! {
    /// `union grant_entry_v2` (16 bytes), written by the guest.
    ///
    /// The union members are reached through accessors:
    /// `full_page.frame` = `frame` (@8);
    /// `sub_page.page_off` = low half of `w1` (@4), `sub_page.length` = high
    /// half of `w1` (@6), `sub_page.frame` = `frame` (@8);
    /// `transitive.trans_domid` = low half of `w1` (@4),
    /// `transitive.gref` = low 32 bits of `frame` (@8).
    pub struct GrantEntryV2 {
        /// Guest: flags and grantee.
        pub hdr: GrantEntryHeader,
        /// Union word at offset 4.
        pub w1: u32,
        /// Union word at offset 8.
        pub frame: u64,
    }
}
assert_layout!(
    GrantEntryV2,
    size = 16,
    hdr = 0,
    hdr.flags = 0,
    hdr.domid = 2,
    w1 = 4,
    frame = 8
);

impl GrantEntryV2 {
    /// `sub_page.page_off`.
    #[must_use]
    pub const fn page_off(&self) -> u16 {
        (self.w1 & 0xFFFF) as u16
    }
    /// `sub_page.length`.
    #[must_use]
    pub const fn length(&self) -> u16 {
        (self.w1 >> 16) as u16
    }
    /// `transitive.trans_domid`.
    #[must_use]
    pub const fn trans_domid(&self) -> u16 {
        (self.w1 & 0xFFFF) as u16
    }
    /// `transitive.gref`.
    #[must_use]
    pub const fn trans_gref(&self) -> u32 {
        (self.frame & 0xFFFF_FFFF) as u32
    }
}

/// `grant_status_t` (v2): per-entry status word (`GTF_READING`/`WRITING`),
/// written by Xen.
pub type GrantStatusV2 = u16;

// --- GNTTABOP argument structs ------------------------------------------------

zc! {
    /// `GNTTABOP_map_grant_ref`.
    pub struct GnttabMapGrantRef {
        /// IN: VA to map at, or PTE machine address with `GNTMAP_CONTAINS_PTE`.
        pub host_addr: u64,
        /// IN: `GNTMAP_*`.
        pub flags: u32,
        /// IN: grant ref in `dom`'s table.
        pub ref_: u32,
        /// IN: granting domain.
        pub dom: u16,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// OUT: handle for unmap.
        pub handle: u32,
        /// OUT: bus address with `GNTMAP_DEVICE_MAP`.
        pub dev_bus_addr: u64,
    }
}
assert_layout!(
    GnttabMapGrantRef,
    size = 32,
    host_addr = 0,
    flags = 8,
    ref_ = 12,
    dom = 16,
    status = 18,
    handle = 20,
    dev_bus_addr = 24
);

zc! {
    /// `GNTTABOP_unmap_grant_ref`.
    pub struct GnttabUnmapGrantRef {
        /// IN: address used at map time (0 = no host mapping).
        pub host_addr: u64,
        /// IN: bus address from map time (0 = ignore).
        pub dev_bus_addr: u64,
        /// IN: handle from map time.
        pub handle: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad: u16,
    }
}
assert_layout!(
    GnttabUnmapGrantRef,
    size = 24,
    host_addr = 0,
    dev_bus_addr = 8,
    handle = 16,
    status = 20
);

zc! {
    /// `GNTTABOP_setup_table`: grow the table and learn its frames.
    pub struct GnttabSetupTable {
        /// IN: domain (`DOMID_SELF`).
        pub dom: u16,
        /// Padding (zero).
        pub _pad0: u16,
        /// IN: frames wanted.
        pub nr_frames: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad1: [u8; 6],
        /// IN: guest pointer to a `u64[nr_frames]` array that receives the MFNs.
        pub frame_list: u64,
    }
}
assert_layout!(
    GnttabSetupTable,
    size = 24,
    dom = 0,
    nr_frames = 4,
    status = 8,
    frame_list = 16
);

zc! {
    /// `GNTTABOP_dump_table` (debug).
    pub struct GnttabDumpTable {
        /// IN: domain.
        pub dom: u16,
        /// OUT: `GNTST_*`.
        pub status: i16,
    }
}
assert_layout!(GnttabDumpTable, size = 4, dom = 0, status = 2);

zc! {
    /// `GNTTABOP_transfer`: give a page to another domain (PV only, §6.6).
    pub struct GnttabTransfer {
        /// IN: frame to give away (owned by the caller, unreferenced).
        pub mfn: u64,
        /// IN: receiving domain.
        pub domid: u16,
        /// Padding (zero).
        pub _pad0: u16,
        /// IN: receiver's accept_transfer grant ref.
        pub ref_: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad1: [u8; 6],
    }
}
assert_layout!(
    GnttabTransfer,
    size = 24,
    mfn = 0,
    domid = 8,
    ref_ = 12,
    status = 16
);

zc! {
    /// One side of a `GNTTABOP_copy`.
    ///
    /// `u` is Xen's union `{ ref (u32), gmfn (u64) }`: a grant ref when the
    /// matching `GNTCOPY_*_GREF` flag is set, else a local frame.
    pub struct GnttabCopyPtr {
        /// Grant ref (low 32 bits) or local frame number.
        pub u: u64,
        /// Domain owning the ref, or `DOMID_SELF` for a local frame.
        pub domid: u16,
        /// Byte offset within the frame.
        pub offset: u16,
        /// Padding (zero).
        pub _pad: u32,
    }
}
assert_layout!(GnttabCopyPtr, size = 16, u = 0, domid = 8, offset = 10);

impl GnttabCopyPtr {
    /// A side named by grant ref.
    #[must_use]
    pub const fn gref(domid: u16, gref: u32, offset: u16) -> Self {
        Self {
            u: gref as u64,
            domid,
            offset,
            _pad: 0,
        }
    }
    /// A side named by local frame (`domid` = `DOMID_SELF`).
    #[must_use]
    pub const fn gmfn(gmfn: u64, offset: u16) -> Self {
        Self {
            u: gmfn,
            domid: super::DOMID_SELF,
            offset,
            _pad: 0,
        }
    }
    /// The union as a grant ref.
    #[must_use]
    pub const fn ref_(&self) -> u32 {
        (self.u & 0xFFFF_FFFF) as u32
    }
}

zc! {
    /// `GNTTABOP_copy`: hypervisor-mediated copy between frames.
    pub struct GnttabCopy {
        /// IN: source.
        pub source: GnttabCopyPtr,
        /// IN: destination.
        pub dest: GnttabCopyPtr,
        /// IN: bytes; `offset + len <= 4096` on both sides.
        pub len: u16,
        /// IN: `GNTCOPY_*`.
        pub flags: u16,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad: u16,
    }
}
assert_layout!(
    GnttabCopy,
    size = 40,
    source = 0,
    source.u = 0,
    source.domid = 8,
    source.offset = 10,
    dest = 16,
    dest.u = 16,
    dest.domid = 24,
    dest.offset = 26,
    len = 32,
    flags = 34,
    status = 36
);

zc! {
    /// `GNTTABOP_query_size`.
    pub struct GnttabQuerySize {
        /// IN: domain.
        pub dom: u16,
        /// Padding (zero).
        pub _pad0: u16,
        /// OUT: current frames.
        pub nr_frames: u32,
        /// OUT: maximum frames.
        pub max_nr_frames: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad1: u16,
    }
}
assert_layout!(
    GnttabQuerySize,
    size = 16,
    dom = 0,
    nr_frames = 4,
    max_nr_frames = 8,
    status = 12
);

zc! {
    /// `GNTTABOP_unmap_and_replace`.
    pub struct GnttabUnmapAndReplace {
        /// IN: mapped address.
        pub host_addr: u64,
        /// IN: address whose mapping replaces it (zapped afterwards).
        pub new_addr: u64,
        /// IN: map handle.
        pub handle: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad: u16,
    }
}
assert_layout!(
    GnttabUnmapAndReplace,
    size = 24,
    host_addr = 0,
    new_addr = 8,
    handle = 16,
    status = 20
);

zc! {
    /// `GNTTABOP_set_version`.
    pub struct GnttabSetVersion {
        /// IN: 1 or 2; OUT: version now in force.
        pub version: u32,
    }
}
assert_layout!(GnttabSetVersion, size = 4, version = 0);

zc! {
    /// `GNTTABOP_get_status_frames` (v2).
    pub struct GnttabGetStatusFrames {
        /// IN: frames wanted.
        pub nr_frames: u32,
        /// IN: domain.
        pub dom: u16,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// IN: guest pointer to a `u64[nr_frames]` array.
        pub frame_list: u64,
    }
}
assert_layout!(
    GnttabGetStatusFrames,
    size = 16,
    nr_frames = 0,
    dom = 4,
    status = 6,
    frame_list = 8
);

zc! {
    /// `GNTTABOP_get_version`.
    pub struct GnttabGetVersion {
        /// IN: domain.
        pub dom: u16,
        /// Padding (zero).
        pub pad: u16,
        /// OUT: version.
        pub version: u32,
    }
}
assert_layout!(GnttabGetVersion, size = 8, dom = 0, pad = 2, version = 4);

zc! {
    /// `GNTTABOP_swap_grant_ref`.
    pub struct GnttabSwapGrantRef {
        /// IN: first ref.
        pub ref_a: u32,
        /// IN: second ref.
        pub ref_b: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad: u16,
    }
}
assert_layout!(
    GnttabSwapGrantRef,
    size = 12,
    ref_a = 0,
    ref_b = 4,
    status = 8
);

zc! {
    /// `GNTTABOP_cache_flush` (Arm-oriented).
    pub struct GnttabCacheFlush {
        /// IN: union `{ dev_bus_addr (u64), ref (u32) }`.
        pub a: u64,
        /// IN: offset from the start of the grant.
        pub offset: u16,
        /// IN: bytes.
        pub length: u16,
        /// IN: `GNTTAB_CACHE_*`.
        pub op: u32,
    }
}
assert_layout!(
    GnttabCacheFlush,
    size = 16,
    a = 0,
    offset = 8,
    length = 10,
    op = 12
);
