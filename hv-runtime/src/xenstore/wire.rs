//! The xenstore wire format (XEN-PV-ABI.md §8.3): the 16-byte `xsd_sockmsg`
//! header, payload framing, and the decoding of request payloads into
//! [`Request`]s. Pure functions over byte slices: no I/O, no store access, so
//! every function here can be fuzzed directly (`xenstore::fuzzing`).
//!
//! Decoding rules (ours, following what xenstored accepts):
//! * a request whose arguments are strings must end with a NUL after its
//!   last argument, and have exactly as many NUL-terminated arguments as the
//!   type takes (otherwise `EINVAL`);
//! * `XS_WRITE` is `path\0value` where the value runs to the end of the
//!   payload and may hold any bytes;
//! * numbers (domain ids, ports, frame numbers) are plain decimal;
//! * server-only types (`XS_WATCH_EVENT`, `XS_ERROR`) and unknown type numbers
//!   are `EINVAL`; known types this store does not implement are `ENOSYS`.

use guest_abi::abi::errno::Errno;
use guest_abi::abi::xenstore::{XENSTORE_PAYLOAD_MAX, XS_ERROR, XsType, xs_error_name};

use super::store::{Perm, Perms};
use crate::machine::DomId;

/// Bytes in a message header.
pub const HEADER_LEN: usize = 16;
/// Largest message on the wire: header plus the largest payload.
pub const MAX_MSG_LEN: usize = HEADER_LEN + XENSTORE_PAYLOAD_MAX;

/// A decoded `xsd_sockmsg` header (host order; the wire is little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// `XS_*` type number (not yet validated).
    pub type_: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0 = none).
    pub tx_id: u32,
    /// Payload length (not yet validated).
    pub len: u32,
}

impl Header {
    /// Decode the 16 header bytes.
    #[must_use]
    pub fn parse(b: &[u8; HEADER_LEN]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            type_: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    /// Encode into 16 bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.type_.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// The payload length if it is within `XENSTORE_PAYLOAD_MAX`.
    #[must_use]
    pub fn payload_len(&self) -> Option<usize> {
        usize::try_from(self.len)
            .ok()
            .filter(|&l| l <= XENSTORE_PAYLOAD_MAX)
    }
}

/// A whole message: header and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Header (its `len` equals `payload.len()`).
    pub header: Header,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Why a byte stream is not a sequence of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a payload over `XENSTORE_PAYLOAD_MAX`; the
    /// protocol says the connection is then dead.
    #[error("message payload of {0} bytes exceeds the 4096-byte limit")]
    TooLong(u32),
}

/// Split one message off the front of `buf`: `Ok(None)` while `buf` holds
/// less than a whole message, `Ok(Some((message, bytes used)))` otherwise.
///
/// # Errors
/// [`FrameError::TooLong`] as soon as the header is complete and its length
/// is over the limit.
pub fn parse_message(buf: &[u8]) -> Result<Option<(Message, usize)>, FrameError> {
    let Some(hdr) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(hdr);
    let len = header
        .payload_len()
        .ok_or(FrameError::TooLong(header.len))?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((
        Message {
            header,
            payload: payload.to_vec(),
        },
        HEADER_LEN + len,
    )))
}

/// Encode a message. Payloads over the limit are a bug of the caller (the
/// store never produces them); they are cut to the limit rather than panic.
#[must_use]
pub fn serialize(type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let payload = payload.get(..XENSTORE_PAYLOAD_MAX).unwrap_or(payload);
    let header = Header {
        type_,
        req_id,
        tx_id,
        len: u32::try_from(payload.len()).unwrap_or(0),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// An `XS_ERROR` reply to the request with `req_id`/`tx_id`.
#[must_use]
pub fn error_reply(req_id: u32, tx_id: u32, errno: Errno) -> Vec<u8> {
    let name = xs_error_name(errno).unwrap_or("EINVAL");
    let mut payload = Vec::with_capacity(name.len() + 1);
    payload.extend_from_slice(name.as_bytes());
    payload.push(0);
    serialize(XS_ERROR, req_id, tx_id, &payload)
}

/// A decoded request. Paths and tokens are still raw bytes: the store
/// validates paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `XS_READ path`.
    Read(&'a [u8]),
    /// `XS_WRITE path value`.
    Write(&'a [u8], &'a [u8]),
    /// `XS_MKDIR path`.
    Mkdir(&'a [u8]),
    /// `XS_RM path`.
    Rm(&'a [u8]),
    /// `XS_DIRECTORY path`.
    Directory(&'a [u8]),
    /// `XS_GET_PERMS path`.
    GetPerms(&'a [u8]),
    /// `XS_SET_PERMS path perms`.
    SetPerms(&'a [u8], Perms),
    /// `XS_WATCH path token`.
    Watch(&'a [u8], &'a [u8]),
    /// `XS_UNWATCH path token`.
    Unwatch(&'a [u8], &'a [u8]),
    /// `XS_TRANSACTION_START`.
    TransactionStart,
    /// `XS_TRANSACTION_END` (true = commit).
    TransactionEnd(bool),
    /// `XS_GET_DOMAIN_PATH domid`.
    GetDomainPath(DomId),
    /// `XS_INTRODUCE domid gfn port`.
    Introduce(DomId, u64, u32),
    /// `XS_RELEASE domid`.
    Release(DomId),
    /// `XS_IS_DOMAIN_INTRODUCED domid`.
    IsDomainIntroduced(DomId),
    /// `XS_RESET_WATCHES`.
    ResetWatches,
}

/// Split a payload into exactly `n` NUL-terminated arguments.
fn args<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], Errno> {
    let body = payload.strip_suffix(&[0]).ok_or(Errno::EINVAL)?;
    let mut out = [&[][..]; N];
    let mut parts = body.split(|&b| b == 0);
    for slot in &mut out {
        *slot = parts.next().ok_or(Errno::EINVAL)?;
    }
    if parts.next().is_some() {
        return Err(Errno::EINVAL);
    }
    Ok(out)
}

/// A plain decimal number with no sign, spaces or leading `+`.
pub fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A domain id argument (below `DOMID_FIRST_RESERVED`).
fn domid(s: &[u8]) -> Result<DomId, Errno> {
    decimal(s)
        .and_then(|v| u16::try_from(v).ok().map(DomId))
        .filter(|&d| d.0 < guest_abi::abi::DOMID_FIRST_RESERVED)
        .ok_or(Errno::EINVAL)
}

/// Decode the payload of a request of type `type_`.
///
/// # Errors
/// `EINVAL` for malformed payloads, server-only or unknown types; `ENOSYS`
/// for known types this store does not implement (`XS_CONTROL`, quotas,
/// features, `XS_DIRECTORY_PART`, `XS_SET_TARGET`, `XS_RESUME`).
pub fn decode_request(type_: u32, payload: &[u8]) -> Result<Request<'_>, Errno> {
    let ty = XsType::from_u32(type_).ok_or(Errno::EINVAL)?;
    Ok(match ty {
        XsType::Read => Request::Read(args::<1>(payload)?[0]),
        XsType::Mkdir => Request::Mkdir(args::<1>(payload)?[0]),
        XsType::Rm => Request::Rm(args::<1>(payload)?[0]),
        XsType::Directory => Request::Directory(args::<1>(payload)?[0]),
        XsType::GetPerms => Request::GetPerms(args::<1>(payload)?[0]),
        XsType::Write => {
            let nul = payload.iter().position(|&b| b == 0).ok_or(Errno::EINVAL)?;
            Request::Write(&payload[..nul], &payload[nul + 1..])
        }
        XsType::SetPerms => {
            let body = payload.strip_suffix(&[0]).ok_or(Errno::EINVAL)?;
            let mut parts = body.split(|&b| b == 0);
            let path = parts.next().ok_or(Errno::EINVAL)?;
            let mut list = Vec::new();
            for p in parts {
                // Bounded: at most 4096 / 3 entries; the store limits further.
                list.push(Perm::parse(p).ok_or(Errno::EINVAL)?);
            }
            Request::SetPerms(path, Perms::from_list(&list).ok_or(Errno::EINVAL)?)
        }
        XsType::Watch => {
            let [p, t] = args::<2>(payload)?;
            Request::Watch(p, t)
        }
        XsType::Unwatch => {
            let [p, t] = args::<2>(payload)?;
            Request::Unwatch(p, t)
        }
        XsType::TransactionStart => {
            // Xen clients send a single NUL; accept an empty payload too.
            if payload != b"\0" && !payload.is_empty() {
                return Err(Errno::EINVAL);
            }
            Request::TransactionStart
        }
        XsType::TransactionEnd => match args::<1>(payload)?[0] {
            b"T" => Request::TransactionEnd(true),
            b"F" => Request::TransactionEnd(false),
            _ => return Err(Errno::EINVAL),
        },
        XsType::GetDomainPath => Request::GetDomainPath(domid(args::<1>(payload)?[0])?),
        XsType::Introduce => {
            let [d, gfn, port] = args::<3>(payload)?;
            Request::Introduce(
                domid(d)?,
                decimal(gfn).ok_or(Errno::EINVAL)?,
                decimal(port)
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or(Errno::EINVAL)?,
            )
        }
        XsType::Release => Request::Release(domid(args::<1>(payload)?[0])?),
        XsType::IsDomainIntroduced => Request::IsDomainIntroduced(domid(args::<1>(payload)?[0])?),
        XsType::ResetWatches => Request::ResetWatches,
        XsType::WatchEvent | XsType::Error | XsType::Invalid => return Err(Errno::EINVAL),
        XsType::Control
        | XsType::Resume
        | XsType::SetTarget
        | XsType::DirectoryPart
        | XsType::GetFeature
        | XsType::SetFeature
        | XsType::GetQuota
        | XsType::SetQuota => return Err(Errno::ENOSYS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let h = Header {
            type_: 2,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 5,
        };
        let b = h.to_bytes();
        assert_eq!(&b[4..8], &[4, 3, 2, 1]);
        assert_eq!(Header::parse(&b), h);
    }

    #[test]
    fn parse_message_waits_for_whole_message_and_rejects_oversize() {
        let m = serialize(2, 9, 0, b"a\0");
        assert_eq!(parse_message(&m[..10]), Ok(None));
        assert_eq!(parse_message(&m[..17]), Ok(None));
        let (msg, used) = parse_message(&m).unwrap().unwrap();
        assert_eq!(
            (msg.header.req_id, &msg.payload[..], used),
            (9, &b"a\0"[..], 18)
        );
        let mut big = Header {
            len: 4097,
            ..Header::default()
        }
        .to_bytes()
        .to_vec();
        big.push(0);
        assert_eq!(parse_message(&big), Err(FrameError::TooLong(4097)));
    }

    #[test]
    fn requests_need_nul_terminated_arguments() {
        assert_eq!(decode_request(2, b"a/b\0"), Ok(Request::Read(b"a/b")));
        assert_eq!(decode_request(2, b"a/b"), Err(Errno::EINVAL));
        assert_eq!(decode_request(2, b"a\0b\0"), Err(Errno::EINVAL));
        assert_eq!(
            decode_request(4, b"p\0tok\0"),
            Ok(Request::Watch(b"p", b"tok"))
        );
        assert_eq!(decode_request(4, b"p\0tok"), Err(Errno::EINVAL));
        assert_eq!(
            decode_request(11, b"p\0v\0x"),
            Ok(Request::Write(b"p", b"v\0x"))
        );
        assert_eq!(decode_request(11, b"p"), Err(Errno::EINVAL));
    }

    #[test]
    fn unknown_and_server_only_types_are_einval_unimplemented_enosys() {
        assert_eq!(decode_request(20, b""), Err(Errno::EINVAL));
        assert_eq!(decode_request(15, b""), Err(Errno::EINVAL));
        assert_eq!(decode_request(99, b""), Err(Errno::EINVAL));
        assert_eq!(decode_request(0, b"x\0"), Err(Errno::ENOSYS));
    }

    #[test]
    fn numbers_are_strict_decimal() {
        assert_eq!(decimal(b"042"), Some(42));
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"+1"), None);
        assert_eq!(decimal(b"99999999999999999999999"), None);
        assert_eq!(decode_request(10, b"32752\0"), Err(Errno::EINVAL));
        assert_eq!(
            decode_request(10, b"3\0"),
            Ok(Request::GetDomainPath(DomId(3)))
        );
    }
}
