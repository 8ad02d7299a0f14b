//! The block-device protocol (`io/blkif.h`), x86-64 layouts.

use super::ring_entries;

/// `blkif_request.operation`: read sectors into the granted frames.
pub const BLKIF_OP_READ: u8 = 0;
/// `blkif_request.operation`: write sectors from the granted frames.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `blkif_request.operation`: write that is ordered after every earlier write reaches stable
/// storage (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `blkif_request.operation`: flush the backend's write cache to stable storage
/// (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `blkif_request.operation`: reserved number (once a vendor pass-through command); never sent.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `blkif_request.operation`: the sector range is no longer needed (`feature-discard`); the slot
/// holds a [`BlkifRequestDiscard`].
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `blkif_request.operation`: the segments live in granted indirect pages
/// (`feature-max-indirect-segments`); the slot holds a [`BlkifRequestIndirect`].
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `blkif_response.status`: the request succeeded.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// `blkif_response.status`: the request failed (I/O error or bad request).
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `blkif_response.status`: the backend does not support this operation.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// Direct segments per request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Indirect pages per indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments held by one indirect page.
pub const BLKIF_SEGS_PER_INDIRECT_FRAME: usize = super::XEN_PAGE_SIZE / 8;
/// Sector unit of `sector_number`, `first_sect`, `last_sect`.
pub const BLKIF_SECTOR_SIZE: usize = 512;
/// Sectors per 4 KiB frame (`last_sect` ≤ 7).
pub const BLKIF_SECTORS_PER_FRAME: u8 = 8;

/// `discard.flag`: secure discard.
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// `info` bit: CD-ROM.
pub const VDISK_CDROM: u32 = 1;
/// `info` bit: removable.
pub const VDISK_REMOVABLE: u32 = 2;
/// `info` bit: read-only.
pub const VDISK_READONLY: u32 = 4;

/// Value of the frontend's `protocol` key for the native 64-bit ABI.
pub const XEN_IO_PROTO_ABI_X86_64: &str = "x86_64-abi";
/// Value of `protocol` for 32-bit frontends.
pub const XEN_IO_PROTO_ABI_X86_32: &str = "x86_32-abi";

zc! {
    /// `struct blkif_request_segment`. Written by the frontend.
    pub struct BlkifRequestSegment {
        /// Grant ref of the data frame.
        pub gref: u32,
        /// First 512-byte sector within the frame.
        pub first_sect: u8,
        /// Last sector (inclusive), ≤ 7.
        pub last_sect: u8,
        /// Padding (zero).
        pub _pad: u16,
    }
}
assert_layout!(
    BlkifRequestSegment,
    size = 8,
    gref = 0,
    first_sect = 4,
    last_sect = 5
);

zc! {
    /// `struct blkif_request`. Written by the frontend.
    pub struct BlkifRequest {
        /// `BLKIF_OP_*`.
        pub operation: u8,
        /// Segments used (≤ 11).
        pub nr_segments: u8,
        /// Virtual device handle.
        pub handle: u16,
        /// Padding (zero).
        pub _pad: u32,
        /// Echoed in the response.
        pub id: u64,
        /// Start sector (512-byte units).
        pub sector_number: u64,
        /// Segments.
        pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
    }
}
assert_layout!(
    BlkifRequest,
    size = 112,
    operation = 0,
    nr_segments = 1,
    handle = 2,
    id = 8,
    sector_number = 16,
    seg = 24
);

zc! {
    /// `struct blkif_request_discard`. Written by the frontend.
    pub struct BlkifRequestDiscard {
        /// `BLKIF_OP_DISCARD`.
        pub operation: u8,
        /// `BLKIF_DISCARD_*`.
        pub flag: u8,
        /// Virtual device handle.
        pub handle: u16,
        /// Padding (zero).
        pub _pad: u32,
        /// Echoed in the response.
        pub id: u64,
        /// First sector to discard (512-byte units).
        pub sector_number: u64,
        /// Number of sectors to discard.
        pub nr_sectors: u64,
    }
}
assert_layout!(
    BlkifRequestDiscard,
    size = 32,
    operation = 0,
    flag = 1,
    handle = 2,
    id = 8,
    sector_number = 16,
    nr_sectors = 24
);

zc! {
    /// `struct blkif_request_indirect` (x86-64 layout). Written by the frontend.
    pub struct BlkifRequestIndirect {
        /// `BLKIF_OP_INDIRECT`.
        pub operation: u8,
        /// `BLKIF_OP_READ` or `BLKIF_OP_WRITE`.
        pub indirect_op: u8,
        /// Total segments across the indirect pages.
        pub nr_segments: u16,
        /// Padding (zero).
        pub _pad0: u32,
        /// Echoed in the response.
        pub id: u64,
        /// Start sector (512-byte units).
        pub sector_number: u64,
        /// Virtual device handle.
        pub handle: u16,
        /// Padding (zero).
        pub _pad1: u16,
        /// Grant refs of pages holding `BlkifRequestSegment` arrays.
        pub indirect_grefs: [u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
        /// Padding (zero).
        pub _pad2: u32,
    }
}
assert_layout!(
    BlkifRequestIndirect,
    size = 64,
    operation = 0,
    indirect_op = 1,
    nr_segments = 2,
    id = 8,
    sector_number = 16,
    handle = 24,
    indirect_grefs = 28
);

zc! {
    /// `struct blkif_response`. Written by the backend.
    pub struct BlkifResponse {
        /// The request's id.
        pub id: u64,
        /// The request's operation.
        pub operation: u8,
        /// Padding (zero).
        pub _pad0: u8,
        /// `BLKIF_RSP_*`.
        pub status: i16,
        /// Padding (zero).
        pub _pad1: u32,
    }
}
assert_layout!(BlkifResponse, size = 16, id = 0, operation = 8, status = 10);

/// Size of one blkif ring slot (union of request and response).
pub const BLKIF_RING_ENTRY_SIZE: usize = max(
    core::mem::size_of::<BlkifRequest>(),
    core::mem::size_of::<BlkifResponse>(),
);
/// Slots in a one-page blkif ring.
pub const BLKIF_RING_SIZE: usize = ring_entries(BLKIF_RING_ENTRY_SIZE);
static_assertions::const_assert_eq!(BLKIF_RING_SIZE, 32);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}
