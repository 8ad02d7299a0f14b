//! The xenstore wire protocol (`io/xs_wire.h`): the shared ring page, the
//! message header, message types, error names and limits.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use super::errno::Errno;

/// Bytes in each direction of the ring.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// Position of free-running index `idx` in a ring (`idx & 1023`).
#[must_use]
pub const fn mask_xenstore_idx(idx: u32) -> usize {
    idx as usize & (XENSTORE_RING_SIZE - 1)
}

/// Largest message payload; more kills the connection.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `server_features`: the server supports ring reconnection.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `server_features`: the server reports errors in `error`.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `server_features`: watch depth supported.
pub const XENSTORE_SERVER_FEATURE_WATCHDEPTH: u32 = 4;
/// `server_features`: `DOMID_ANY` supported.
pub const XENSTORE_SERVER_FEATURE_DOMID_ANY: u32 = 8;

/// `connection`: connected.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: the guest asks for a reset.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: bad ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation.
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `struct xenstore_domain_interface` (at offset 0 of the xenstore page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Guest writes: requests.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Server writes: replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Server: request consumer index.
    pub req_cons: u32,
    /// Guest: request producer index.
    pub req_prod: u32,
    /// Guest: response consumer index.
    pub rsp_cons: u32,
    /// Server: response producer index.
    pub rsp_prod: u32,
    /// Server: `XENSTORE_SERVER_FEATURE_*`.
    pub server_features: u32,
    /// Guest sets `XENSTORE_RECONNECT`, server resets to `XENSTORE_CONNECTED`.
    pub connection: u32,
    /// Server: `XENSTORE_ERROR_*`.
    pub error: u32,
    /// Xen (dom0less guests only): event channel; 0 = unused.
    pub evtchn_port: u32,
}
assert_layout!(
    XenstoreDomainInterface,
    size = 2080,
    req = 0,
    rsp = 1024,
    req_cons = 2048,
    req_prod = 2052,
    rsp_cons = 2056,
    rsp_prod = 2060,
    server_features = 2064,
    connection = 2068,
    error = 2072,
    evtchn_port = 2076
);

impl Default for XenstoreDomainInterface {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

zc! {
    /// `struct xsd_sockmsg`: the header before each message payload.
    pub struct XsdSockmsg {
        /// `XS_*` message type.
        pub type_: u32,
        /// Request id, echoed in the reply (0 in watch events).
        pub req_id: u32,
        /// Transaction id (0 = none).
        pub tx_id: u32,
        /// Payload bytes following the header.
        pub len: u32,
    }
}
assert_layout!(
    XsdSockmsg,
    size = 16,
    type_ = 0,
    req_id = 4,
    tx_id = 8,
    len = 12
);

/// `enum xsd_sockmsg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XsType {
    /// Also known as `XS_DEBUG`.
    Control = 0,
    /// List the children of a path.
    Directory = 1,
    /// Read a node's value.
    Read = 2,
    /// Read a node's permissions.
    GetPerms = 3,
    /// Register a watch on a path, with a token.
    Watch = 4,
    /// Remove a watch.
    Unwatch = 5,
    /// Begin a transaction; the reply carries its id.
    TransactionStart = 6,
    /// Commit (`T`) or abort (`F`) a transaction.
    TransactionEnd = 7,
    /// Tell the server about a new domain's ring page and event channel (privileged).
    Introduce = 8,
    /// Make the server forget a domain (privileged).
    Release = 9,
    /// A domain's home path (`/local/domain/<id>`).
    GetDomainPath = 10,
    /// Set a node's value, creating it if needed.
    Write = 11,
    /// Create a node.
    Mkdir = 12,
    /// Remove a node and its children.
    Rm = 13,
    /// Set a node's permissions.
    SetPerms = 14,
    /// Server → client only.
    WatchEvent = 15,
    /// Server → client only.
    Error = 16,
    /// Whether a domain is known to the server.
    IsDomainIntroduced = 17,
    /// Clear a domain's shutdown state after it resumes (privileged).
    Resume = 18,
    /// Let one domain act on another's nodes (privileged).
    SetTarget = 19,
    // 20 was XS_RESTRICT (removed; invalid).
    /// Drop all the connection's watches and transactions.
    ResetWatches = 21,
    /// List part of a large directory, from a byte offset.
    DirectoryPart = 22,
    /// Read server features for a domain.
    GetFeature = 23,
    /// Set server features for a domain (privileged).
    SetFeature = 24,
    /// Read a quota value (global or per domain).
    GetQuota = 25,
    /// Set a quota value (privileged).
    SetQuota = 26,
    /// Never valid.
    Invalid = 0xFFFF,
}

/// Number of message type slots (`XS_TYPE_COUNT`).
pub const XS_TYPE_COUNT: u32 = 27;
/// The removed `XS_RESTRICT` number.
pub const XS_RESTRICT_REMOVED: u32 = 20;

impl XsType {
    /// The type with wire value `v` (`None` for 20, ≥ 27 other than 0xFFFF).
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Control,
            1 => Self::Directory,
            2 => Self::Read,
            3 => Self::GetPerms,
            4 => Self::Watch,
            5 => Self::Unwatch,
            6 => Self::TransactionStart,
            7 => Self::TransactionEnd,
            8 => Self::Introduce,
            9 => Self::Release,
            10 => Self::GetDomainPath,
            11 => Self::Write,
            12 => Self::Mkdir,
            13 => Self::Rm,
            14 => Self::SetPerms,
            15 => Self::WatchEvent,
            16 => Self::Error,
            17 => Self::IsDomainIntroduced,
            18 => Self::Resume,
            19 => Self::SetTarget,
            21 => Self::ResetWatches,
            22 => Self::DirectoryPart,
            23 => Self::GetFeature,
            24 => Self::SetFeature,
            25 => Self::GetQuota,
            26 => Self::SetQuota,
            0xFFFF => Self::Invalid,
            _ => return None,
        })
    }

    /// The wire value.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

/// Wire value of [`XsType::Control`]: a server debug/control command.
pub const XS_CONTROL: u32 = XsType::Control as u32;
/// Old name of [`XS_CONTROL`].
pub const XS_DEBUG: u32 = XsType::Control as u32;
/// Wire value of [`XsType::Directory`]: list the children of a path.
pub const XS_DIRECTORY: u32 = XsType::Directory as u32;
/// Wire value of [`XsType::Read`]: read a node's value.
pub const XS_READ: u32 = XsType::Read as u32;
/// Wire value of [`XsType::GetPerms`]: read a node's permissions.
pub const XS_GET_PERMS: u32 = XsType::GetPerms as u32;
/// Wire value of [`XsType::Watch`]: register a watch on a path, with a token.
pub const XS_WATCH: u32 = XsType::Watch as u32;
/// Wire value of [`XsType::Unwatch`]: remove a watch.
pub const XS_UNWATCH: u32 = XsType::Unwatch as u32;
/// Wire value of [`XsType::TransactionStart`]: begin a transaction; the reply carries its id.
pub const XS_TRANSACTION_START: u32 = XsType::TransactionStart as u32;
/// Wire value of [`XsType::TransactionEnd`]: commit (`T`) or abort (`F`) a transaction.
pub const XS_TRANSACTION_END: u32 = XsType::TransactionEnd as u32;
/// Wire value of [`XsType::Introduce`]: tell the server about a new domain's ring page and event
/// channel (privileged).
pub const XS_INTRODUCE: u32 = XsType::Introduce as u32;
/// Wire value of [`XsType::Release`]: make the server forget a domain (privileged).
pub const XS_RELEASE: u32 = XsType::Release as u32;
/// Wire value of [`XsType::GetDomainPath`]: a domain's home path (`/local/domain/<id>`).
pub const XS_GET_DOMAIN_PATH: u32 = XsType::GetDomainPath as u32;
/// Wire value of [`XsType::Write`]: set a node's value, creating it if needed.
pub const XS_WRITE: u32 = XsType::Write as u32;
/// Wire value of [`XsType::Mkdir`]: create a node.
pub const XS_MKDIR: u32 = XsType::Mkdir as u32;
/// Wire value of [`XsType::Rm`]: remove a node and its children.
pub const XS_RM: u32 = XsType::Rm as u32;
/// Wire value of [`XsType::SetPerms`]: set a node's permissions.
pub const XS_SET_PERMS: u32 = XsType::SetPerms as u32;
/// Wire value of [`XsType::WatchEvent`]: a watched path changed (server to client).
pub const XS_WATCH_EVENT: u32 = XsType::WatchEvent as u32;
/// Wire value of [`XsType::Error`]: a failed request; the payload is an errno name.
pub const XS_ERROR: u32 = XsType::Error as u32;
/// Wire value of [`XsType::IsDomainIntroduced`]: whether a domain is known to the server.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = XsType::IsDomainIntroduced as u32;
/// Wire value of [`XsType::Resume`]: clear a domain's shutdown state after it resumes (privileged).
pub const XS_RESUME: u32 = XsType::Resume as u32;
/// Wire value of [`XsType::SetTarget`]: let one domain act on another's nodes (privileged).
pub const XS_SET_TARGET: u32 = XsType::SetTarget as u32;
/// Wire value of [`XsType::ResetWatches`]: drop all the connection's watches and transactions.
pub const XS_RESET_WATCHES: u32 = XsType::ResetWatches as u32;
/// Wire value of [`XsType::DirectoryPart`]: list part of a large directory, from a byte offset.
pub const XS_DIRECTORY_PART: u32 = XsType::DirectoryPart as u32;
/// Wire value of [`XsType::GetFeature`]: read server features for a domain.
pub const XS_GET_FEATURE: u32 = XsType::GetFeature as u32;
/// Wire value of [`XsType::SetFeature`]: set server features for a domain (privileged).
pub const XS_SET_FEATURE: u32 = XsType::SetFeature as u32;
/// Wire value of [`XsType::GetQuota`]: read a quota value (global or per domain).
pub const XS_GET_QUOTA: u32 = XsType::GetQuota as u32;
/// Wire value of [`XsType::SetQuota`]: set a quota value (privileged).
pub const XS_SET_QUOTA: u32 = XsType::SetQuota as u32;
/// Wire value of [`XsType::Invalid`]: never a valid type.
pub const XS_INVALID: u32 = XsType::Invalid as u32;

/// Error names xenstored sends in `XS_ERROR` replies, in Xen's table order,
/// with their errno values.
pub const XS_ERRORS: [(Errno, &str); 16] = [
    (Errno::EINVAL, "EINVAL"),
    (Errno::EACCES, "EACCES"),
    (Errno::EEXIST, "EEXIST"),
    (Errno::EISDIR, "EISDIR"),
    (Errno::ENOENT, "ENOENT"),
    (Errno::ENOMEM, "ENOMEM"),
    (Errno::ENOSPC, "ENOSPC"),
    (Errno::EIO, "EIO"),
    (Errno::ENOTEMPTY, "ENOTEMPTY"),
    (Errno::ENOSYS, "ENOSYS"),
    (Errno::EROFS, "EROFS"),
    (Errno::EBUSY, "EBUSY"),
    (Errno::EAGAIN, "EAGAIN"),
    (Errno::EISCONN, "EISCONN"),
    (Errno::E2BIG, "E2BIG"),
    (Errno::EPERM, "EPERM"),
];

/// The errno for an `XS_ERROR` payload (NUL optional); unknown names map to
/// `EINVAL` (our choice; the reference does not say).
#[must_use]
pub fn xs_error_errno(name: &[u8]) -> Errno {
    let name = name.strip_suffix(&[0]).unwrap_or(name);
    XS_ERRORS
        .iter()
        .find(|(_, n)| n.as_bytes() == name)
        .map_or(Errno::EINVAL, |(e, _)| *e)
}

/// The `XS_ERROR` name for an errno, if it is in the table.
#[must_use]
pub fn xs_error_name(errno: Errno) -> Option<&'static str> {
    XS_ERRORS.iter().find(|(e, _)| *e == errno).map(|(_, n)| *n)
}
