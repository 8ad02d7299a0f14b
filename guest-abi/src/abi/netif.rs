//! The network-device protocol (`io/netif.h`), x86-64 layouts.

use super::ring_entries;

// --- tx ---------------------------------------------------------------------------------

/// Checksum not yet computed.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// Data already validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// More fragments follow.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// An extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

// --- rx ---------------------------------------------------------------------------------

/// Data validated.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// Checksum not computed.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// More fragments follow.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// An extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// Deprecated GSO prefix.
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// Packet dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Error.
pub const NETIF_RSP_ERROR: i16 = -1;
/// Success.
pub const NETIF_RSP_OKAY: i16 = 0;
/// Slot consumed by an extra-info request.
pub const NETIF_RSP_NULL: i16 = 1;

/// Largest packet on the tx path.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;
/// Slots a backend must accept for one packet.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;

// --- extra info -------------------------------------------------------------------------

/// `netif_extra_info.type`: no extra information.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `netif_extra_info.type`: segmentation-offload parameters (`gso.*`).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `netif_extra_info.type`: start receiving the multicast MAC in `mcast.addr`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `netif_extra_info.type`: stop receiving the multicast MAC in `mcast.addr`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `netif_extra_info.type`: the packet's hash value (`hash.*`).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// One past the highest `XEN_NETIF_EXTRA_TYPE_*`.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// `extra_info.flags`: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `gso.type`: no segmentation offload.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// `gso.type`: TCP over IPv4 segmentation.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// `gso.type`: TCP over IPv6 segmentation.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

// --- ctrl ring --------------------------------------------------------------------------

/// Ctrl-ring request type 0: never valid.
pub const XEN_NETIF_CTRL_TYPE_INVALID: u16 = 0;
/// Ctrl-ring request: which hash types the backend can compute.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// Ctrl-ring request: choose the hash types to compute.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// Ctrl-ring request: supply the hash key from a granted page.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// Ctrl-ring request: largest hash-to-queue table the backend accepts.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// Ctrl-ring request: set the hash-to-queue table size.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// Ctrl-ring request: fill hash-to-queue table entries from a granted page.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// Ctrl-ring request: choose the hash algorithm (none or Toeplitz).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;
/// Ctrl-ring request: how many grant refs the backend will keep mapped.
pub const XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u16 = 8;
/// Ctrl-ring request: have the backend keep some grant refs mapped.
pub const XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u16 = 9;
/// Ctrl-ring request: release grant refs the backend keeps mapped.
pub const XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u16 = 10;

/// Ctrl-ring response status: done.
pub const XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0;
/// Ctrl-ring response status: the backend does not implement this type.
pub const XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// Ctrl-ring response status: an argument is out of range.
pub const XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// Ctrl-ring response status: the data does not fit the space given.
pub const XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;

zc! {
    /// `struct netif_tx_request`. Written by the frontend.
    pub struct NetifTxRequest {
        /// Grant ref of the fragment's page (granted read-only).
        pub gref: u32,
        /// Offset in the page.
        pub offset: u16,
        /// `NETTXF_*`.
        pub flags: u16,
        /// Echoed in the response.
        pub id: u16,
        /// First fragment: total packet size; later fragments: own size.
        pub size: u16,
    }
}
assert_layout!(
    NetifTxRequest,
    size = 12,
    gref = 0,
    offset = 4,
    flags = 6,
    id = 8,
    size = 10
);

zc! {
    /// `struct netif_tx_response`. Written by the backend.
    pub struct NetifTxResponse {
        /// The request's id.
        pub id: u16,
        /// `NETIF_RSP_*`.
        pub status: i16,
    }
}
assert_layout!(NetifTxResponse, size = 4, id = 0, status = 2);

zc! {
    /// `struct netif_rx_request`. Written by the frontend.
    pub struct NetifRxRequest {
        /// Echoed in the response.
        pub id: u16,
        /// Padding (zero).
        pub _pad: u16,
        /// Grant ref of the receive page (writable grant, or accept_transfer
        /// in flip mode).
        pub gref: u32,
    }
}
assert_layout!(NetifRxRequest, size = 8, id = 0, gref = 4);

zc! {
    /// `struct netif_rx_response`. Written by the backend.
    pub struct NetifRxResponse {
        /// The request's id.
        pub id: u16,
        /// Data offset in the page.
        pub offset: u16,
        /// `NETRXF_*`.
        pub flags: u16,
        /// > 0: bytes; < 0: `NETIF_RSP_*`.
        pub status: i16,
    }
}
assert_layout!(
    NetifRxResponse,
    size = 8,
    id = 0,
    offset = 2,
    flags = 4,
    status = 6
);

zc! {
    /// `struct netif_extra_info` (8 bytes, overlaid on a ring slot).
    ///
    /// `u` is Xen's union; use the accessors (`gso.size` @2, `gso.type` @4,
    /// `gso.features` @6; `mcast.addr` @2; `hash.type` @2, `hash.algorithm`
    /// @3, `hash.value` @4).
    pub struct NetifExtraInfo {
        /// `XEN_NETIF_EXTRA_TYPE_*`.
        pub type_: u8,
        /// `XEN_NETIF_EXTRA_FLAG_*`.
        pub flags: u8,
        /// The union's bytes (offset 2).
        pub u: [u8; 6],
        /// Gives the struct Xen's 2-byte alignment.
        pub _align: [u16; 0],
    }
}
assert_layout!(NetifExtraInfo, size = 8, type_ = 0, flags = 1, u = 2);
static_assertions::const_assert_eq!(core::mem::align_of::<NetifExtraInfo>(), 2);

impl NetifExtraInfo {
    /// A GSO extra.
    #[must_use]
    pub const fn gso(size: u16, gso_type: u8, features: u16, more: bool) -> Self {
        let s = size.to_le_bytes();
        let f = features.to_le_bytes();
        Self {
            type_: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: if more { XEN_NETIF_EXTRA_FLAG_MORE } else { 0 },
            u: [s[0], s[1], gso_type, 0, f[0], f[1]],
            _align: [],
        }
    }
    /// `gso.size`.
    #[must_use]
    pub const fn gso_size(&self) -> u16 {
        u16::from_le_bytes([self.u[0], self.u[1]])
    }
    /// `gso.type`.
    #[must_use]
    pub const fn gso_type(&self) -> u8 {
        self.u[2]
    }
    /// `gso.features`.
    #[must_use]
    pub const fn gso_features(&self) -> u16 {
        u16::from_le_bytes([self.u[4], self.u[5]])
    }
    /// `mcast.addr`.
    #[must_use]
    pub const fn mcast_addr(&self) -> [u8; 6] {
        self.u
    }
    /// `hash.type`.
    #[must_use]
    pub const fn hash_type(&self) -> u8 {
        self.u[0]
    }
    /// `hash.algorithm`.
    #[must_use]
    pub const fn hash_algorithm(&self) -> u8 {
        self.u[1]
    }
    /// `hash.value`.
    #[must_use]
    pub const fn hash_value(&self) -> [u8; 4] {
        [self.u[2], self.u[3], self.u[4], self.u[5]]
    }
}

zc! {
    /// `struct xen_netif_ctrl_request`. Written by the frontend.
    pub struct XenNetifCtrlRequest {
        /// Echoed in the response.
        pub id: u16,
        /// `XEN_NETIF_CTRL_TYPE_*`.
        pub type_: u16,
        /// Arguments, per `type_`.
        pub data: [u32; 3],
    }
}
assert_layout!(XenNetifCtrlRequest, size = 16, id = 0, type_ = 2, data = 4);

zc! {
    /// `struct xen_netif_ctrl_response`. Written by the backend.
    pub struct XenNetifCtrlResponse {
        /// The request's id.
        pub id: u16,
        /// The request's type.
        pub type_: u16,
        /// `XEN_NETIF_CTRL_STATUS_*`.
        pub status: u32,
        /// Result, per `type_`.
        pub data: u32,
    }
}
assert_layout!(
    XenNetifCtrlResponse,
    size = 12,
    id = 0,
    type_ = 2,
    status = 4,
    data = 8
);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Size of a tx ring slot (union of request and response).
pub const NET_TX_RING_ENTRY_SIZE: usize = max(
    core::mem::size_of::<NetifTxRequest>(),
    core::mem::size_of::<NetifTxResponse>(),
);
/// Size of an rx ring slot.
pub const NET_RX_RING_ENTRY_SIZE: usize = max(
    core::mem::size_of::<NetifRxRequest>(),
    core::mem::size_of::<NetifRxResponse>(),
);
/// Size of a ctrl ring slot.
pub const NET_CTRL_RING_ENTRY_SIZE: usize = max(
    core::mem::size_of::<XenNetifCtrlRequest>(),
    core::mem::size_of::<XenNetifCtrlResponse>(),
);
/// Slots in a one-page tx ring.
pub const NET_TX_RING_SIZE: usize = ring_entries(NET_TX_RING_ENTRY_SIZE);
/// Slots in a one-page rx ring.
pub const NET_RX_RING_SIZE: usize = ring_entries(NET_RX_RING_ENTRY_SIZE);
/// Slots in a one-page ctrl ring.
pub const NET_CTRL_RING_SIZE: usize = ring_entries(NET_CTRL_RING_ENTRY_SIZE);
static_assertions::const_assert_eq!(NET_TX_RING_SIZE, 256);
static_assertions::const_assert_eq!(NET_RX_RING_SIZE, 256);
static_assertions::const_assert_eq!(NET_CTRL_RING_SIZE, 128);
