//! A xenstore client for guests (XEN-PV-ABI.md §8.3): `no_std`, no
//! allocation, over the domain's xenstore ring page.
//!
//! The page is reached only through [`RingMem`] (a guest wraps its mapped
//! store page in [`crate::ring::RawRingMem`]); the event channel and the
//! waiting are behind [`XsTransport`], so host tests can connect the client
//! to a server in the same process through a fake shared page.
//!
//! One request is in flight at a time. Watch events that arrive while the
//! client waits for a reply are kept in a small fixed buffer (events that do
//! not fit are counted in [`XsClient::lost_events`] and dropped) and handed
//! out by [`XsClient::poll_watch_event`] / [`XsClient::wait_watch_event`].
//! Every value read from the page is untrusted: indices that claim more than
//! a ring's worth of data, or a reply longer than 4096 bytes, end the call
//! with [`XsError::Protocol`].

use core::fmt;

use crate::abi::errno::Errno;
use crate::abi::xenstore::{
    XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE, XS_DIRECTORY, XS_ERROR, XS_GET_DOMAIN_PATH, XS_MKDIR,
    XS_READ, XS_RM, XS_SET_PERMS, XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH,
    XS_WATCH_EVENT, XS_WRITE, XenstoreDomainInterface as Iface, mask_xenstore_idx, xs_error_errno,
};
use crate::ring::RingMem;

const REQ: usize = core::mem::offset_of!(Iface, req);
const RSP: usize = core::mem::offset_of!(Iface, rsp);
const REQ_CONS: usize = core::mem::offset_of!(Iface, req_cons);
const REQ_PROD: usize = core::mem::offset_of!(Iface, req_prod);
const RSP_CONS: usize = core::mem::offset_of!(Iface, rsp_cons);
const RSP_PROD: usize = core::mem::offset_of!(Iface, rsp_prod);
#[expect(clippy::cast_possible_truncation)] // 1024 fits.
const RING: u32 = XENSTORE_RING_SIZE as u32;
const HEADER: usize = 16;

/// Bytes of watch events the client can hold while it waits for a reply.
pub const EVENT_BUFFER: usize = 2048;

/// How the client signals the server and waits for it.
pub trait XsTransport {
    /// Notify the server (send on the store event channel).
    fn notify(&mut self);

    /// Wait until the server may have made progress (block on the store
    /// event channel). Called only when the client cannot proceed.
    ///
    /// # Errors
    /// Whatever the transport decides ends the wait (for example a
    /// timeout); the client returns it to its caller.
    fn wait(&mut self) -> Result<(), XsError>;
}

/// An error name from an `XS_ERROR` reply (`"ENOENT"`), kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct XsErrorName {
    bytes: [u8; 16],
    len: u8,
}

impl XsErrorName {
    fn new(name: &[u8]) -> Self {
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        let mut bytes = [0u8; 16];
        let n = name.len().min(16);
        bytes[..n].copy_from_slice(&name[..n]);
        Self {
            bytes,
            // n ≤ 16.
            len: u8::try_from(n).unwrap_or(16),
        }
    }

    /// The name as sent (non-ASCII bytes shown as `?`).
    #[must_use]
    pub fn as_str(&self) -> &str {
        let b = &self.bytes[..usize::from(self.len)];
        core::str::from_utf8(b).unwrap_or("?")
    }
}

impl fmt::Debug for XsErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a xenstore call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// The server replied `XS_ERROR` with this name (and its errno).
    Xen {
        /// The name sent (`"EACCES"`).
        name: XsErrorName,
        /// Its errno (`EINVAL` for a name outside Xen's table).
        errno: Errno,
    },
    /// The reply did not fit the caller's buffer; it was discarded.
    BufferTooSmall {
        /// Bytes the reply had.
        needed: usize,
    },
    /// The request would exceed the 4096-byte payload limit, or a path or
    /// token holds a NUL.
    Invalid,
    /// The server broke the protocol (corrupt indices, an oversized or
    /// unexpected reply).
    Protocol,
    /// The transport gave up waiting.
    Timeout,
}

impl XsError {
    /// The Xen error name, for errors the server sent.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Xen { name, .. } => Some(name.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xen { name, .. } => write!(f, "xenstore error {}", name.as_str()),
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "xenstore reply of {needed} bytes does not fit the buffer"
                )
            }
            Self::Invalid => f.write_str("xenstore request too long or holds a NUL"),
            Self::Protocol => f.write_str("xenstore server broke the ring protocol"),
            Self::Timeout => f.write_str("gave up waiting for xenstore"),
        }
    }
}

/// Entries [`XsClient::set_perms`] sends at most.
pub const MAX_PERMS: usize = 16;

/// What a domain may do with a node (the letter of a permission entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsAccess {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl XsAccess {
    /// The wire letter.
    #[must_use]
    pub const fn letter(self) -> u8 {
        match self {
            Self::None => b'n',
            Self::Read => b'r',
            Self::Write => b'w',
            Self::Both => b'b',
        }
    }
}

/// One entry of a node's permission list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsPerm {
    /// The domain.
    pub dom: u16,
    /// Its access (for entry 0: the access of every unlisted domain).
    pub access: XsAccess,
}

/// A watch event: the path that changed and the watch's token, borrowed
/// from the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// Path (relative if the watch was registered relative).
    pub path: &'a [u8],
    /// The token given to [`XsClient::watch`].
    pub token: &'a [u8],
}

/// The NUL-separated names of a directory reply.
pub fn entries(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|&b| b == 0).filter(|s| !s.is_empty())
}

/// The client. See the module docs.
pub struct XsClient<M: RingMem, T: XsTransport> {
    mem: M,
    transport: T,
    next_req: u32,
    events: [u8; EVENT_BUFFER],
    events_len: usize,
    lost: u32,
}

impl<M: RingMem, T: XsTransport> fmt::Debug for XsClient<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XsClient")
            .field("next_req", &self.next_req)
            .field("events_len", &self.events_len)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl<M: RingMem, T: XsTransport> XsClient<M, T> {
    /// A client over the ring page `mem` (at least 2080 bytes).
    pub fn new(mem: M, transport: T) -> Self {
        Self {
            mem,
            transport,
            next_req: 1,
            events: [0; EVENT_BUFFER],
            events_len: 0,
            lost: 0,
        }
    }

    /// The transport (tests reach the server through it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Watch events dropped because the event buffer was full.
    pub fn lost_events(&self) -> u32 {
        self.lost
    }

    // ---- ring I/O -------------------------------------------------------

    /// Write `src` into `req[]`, waiting for space.
    fn put(&mut self, mut src: &[u8]) -> Result<(), XsError> {
        while !src.is_empty() {
            let cons = self.mem.load_u32_acquire(REQ_CONS);
            let prod = self.mem.load_u32_relaxed(REQ_PROD);
            let used = prod.wrapping_sub(cons);
            if used > RING {
                return Err(XsError::Protocol);
            }
            let space = (RING - used) as usize;
            if space == 0 {
                self.transport.notify();
                self.transport.wait()?;
                continue;
            }
            let pos = mask_xenstore_idx(prod);
            let n = src.len().min(space).min(XENSTORE_RING_SIZE - pos);
            self.mem.write_bytes(REQ + pos, &src[..n]);
            self.mem
                .store_u32_release(REQ_PROD, prod.wrapping_add(small(n)));
            src = &src[n..];
        }
        Ok(())
    }

    /// Response bytes available (`None`: corrupt indices).
    fn available(&self) -> Option<u32> {
        let prod = self.mem.load_u32_acquire(RSP_PROD);
        let cons = self.mem.load_u32_relaxed(RSP_CONS);
        let n = prod.wrapping_sub(cons);
        (n <= RING).then_some(n)
    }

    /// Read exactly `n` bytes from `rsp[]` into `out` (or discard them if
    /// `out` is `None`), waiting for them.
    fn get(&mut self, mut out: Option<&mut [u8]>, n: usize) -> Result<(), XsError> {
        let mut done = 0;
        while done < n {
            let avail = self.available().ok_or(XsError::Protocol)? as usize;
            if avail == 0 {
                self.transport.notify();
                self.transport.wait()?;
                continue;
            }
            let cons = self.mem.load_u32_relaxed(RSP_CONS);
            let pos = mask_xenstore_idx(cons);
            let k = (n - done).min(avail).min(XENSTORE_RING_SIZE - pos);
            if let Some(buf) = out.as_deref_mut() {
                self.mem.read_bytes(RSP + pos, &mut buf[done..done + k]);
            }
            self.mem.fence_full();
            self.mem
                .store_u32_release(RSP_CONS, cons.wrapping_add(small(k)));
            done += k;
        }
        self.transport.notify();
        Ok(())
    }

    fn header(&mut self) -> Result<(u32, u32, usize), XsError> {
        let mut h = [0u8; HEADER];
        self.get(Some(&mut h), HEADER)?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let len = word(12) as usize;
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::Protocol);
        }
        Ok((word(0), word(4), len))
    }

    /// Keep a watch event of `len` payload bytes (now at the ring head).
    fn stash_event(&mut self, len: usize) -> Result<(), XsError> {
        let room = EVENT_BUFFER - self.events_len;
        if len + 2 > room {
            self.lost = self.lost.saturating_add(1);
            return self.get(None, len);
        }
        let at = self.events_len;
        self.events[at..at + 2].copy_from_slice(&small(len).to_le_bytes()[..2]);
        // `self.get` borrows the whole client: copy through a small buffer.
        let mut local = [0u8; 256];
        let mut done = 0;
        while done < len {
            let k = (len - done).min(local.len());
            self.get(Some(&mut local[..k]), k)?;
            self.events[at + 2 + done..at + 2 + done + k].copy_from_slice(&local[..k]);
            done += k;
        }
        self.events_len = at + 2 + len;
        Ok(())
    }

    /// Send a request and wait for its reply; the payload goes to `buf`.
    /// Returns the payload length.
    fn call(
        &mut self,
        type_: u32,
        tx: u32,
        parts: &[&[u8]],
        buf: &mut [u8],
    ) -> Result<usize, XsError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::Invalid);
        }
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let mut h = [0u8; HEADER];
        h[0..4].copy_from_slice(&type_.to_le_bytes());
        h[4..8].copy_from_slice(&req_id.to_le_bytes());
        h[8..12].copy_from_slice(&tx.to_le_bytes());
        h[12..16].copy_from_slice(&small(len).to_le_bytes());
        self.put(&h)?;
        for p in parts {
            self.put(p)?;
        }
        self.transport.notify();
        // Bounded by the transport: every loop either consumes a message
        // the server wrote or waits.
        loop {
            let (ty, id, plen) = self.header()?;
            if ty == XS_WATCH_EVENT {
                self.stash_event(plen)?;
                continue;
            }
            if id != req_id {
                // A stale reply (an earlier call gave up): skip it.
                self.get(None, plen)?;
                continue;
            }
            if ty == XS_ERROR {
                let mut name = [0u8; 16];
                let k = plen.min(16);
                self.get(Some(&mut name[..k]), k)?;
                self.get(None, plen - k)?;
                let name = XsErrorName::new(&name[..k]);
                return Err(XsError::Xen {
                    name,
                    errno: xs_error_errno(name.as_str().as_bytes()),
                });
            }
            if ty != type_ {
                self.get(None, plen)?;
                return Err(XsError::Protocol);
            }
            if buf.len() < plen {
                self.get(None, plen)?;
                return Err(XsError::BufferTooSmall { needed: plen });
            }
            self.get(Some(&mut buf[..plen]), plen)?;
            return Ok(plen);
        }
    }

    fn ack(&mut self, type_: u32, tx: u32, parts: &[&[u8]]) -> Result<(), XsError> {
        let mut ok = [0u8; 4];
        match self.call(type_, tx, parts, &mut ok) {
            Ok(_) => Ok(()),
            Err(XsError::BufferTooSmall { .. }) => Err(XsError::Protocol),
            Err(e) => Err(e),
        }
    }

    // ---- requests -------------------------------------------------------

    /// `XS_READ`: the value of `path` into `buf`; returns its length.
    ///
    /// # Errors
    /// The server's error (`ENOENT`, `EACCES`, …), or
    /// [`XsError::BufferTooSmall`].
    pub fn read(&mut self, tx: u32, path: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        let p = cstr(path)?;
        self.call(XS_READ, tx, &[p, b"\0"], buf)
    }

    /// `XS_WRITE`.
    ///
    /// # Errors
    /// The server's error (`EACCES`, `ENOSPC`, …), [`XsError::Invalid`].
    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        let p = cstr(path)?;
        self.ack(XS_WRITE, tx, &[p, b"\0", value])
    }

    /// `XS_MKDIR`.
    ///
    /// # Errors
    /// As [`Self::write`].
    pub fn mkdir(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        let p = cstr(path)?;
        self.ack(XS_MKDIR, tx, &[p, b"\0"])
    }

    /// `XS_RM` (the whole subtree).
    ///
    /// # Errors
    /// As [`Self::write`].
    pub fn rm(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        let p = cstr(path)?;
        self.ack(XS_RM, tx, &[p, b"\0"])
    }

    /// `XS_SET_PERMS`: replace the permission list of `path`. Entry 0
    /// names the owner and the access every domain not listed gets; later
    /// entries give one domain its own access.
    ///
    /// # Errors
    /// The server's error (`EACCES` unless the caller owns the node,
    /// `ENOSPC` over quota), [`XsError::Invalid`] for an empty list or more
    /// than [`MAX_PERMS`] entries.
    pub fn set_perms(&mut self, tx: u32, path: &str, perms: &[XsPerm]) -> Result<(), XsError> {
        let p = cstr(path)?;
        if perms.is_empty() || perms.len() > MAX_PERMS {
            return Err(XsError::Invalid);
        }
        // Each entry is a letter, at most 5 digits and a NUL.
        let mut list = [0u8; MAX_PERMS * 7];
        let mut n = 0;
        for perm in perms {
            list[n] = perm.access.letter();
            let mut digits = [0u8; 5];
            let d = decimal(u32::from(perm.dom), &mut digits);
            list[n + 1..n + 1 + d.len()].copy_from_slice(d);
            n += d.len() + 2; // letter + digits + NUL (already 0)
        }
        self.ack(XS_SET_PERMS, tx, &[p, b"\0", &list[..n]])
    }

    /// `XS_DIRECTORY`: NUL-separated child names into `buf` (iterate them
    /// with [`entries`]); returns the length.
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn directory(&mut self, tx: u32, path: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        let p = cstr(path)?;
        self.call(XS_DIRECTORY, tx, &[p, b"\0"], buf)
    }

    /// `XS_GET_DOMAIN_PATH` of `domid` into `buf` (without the NUL).
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn get_domain_path(&mut self, domid: u16, buf: &mut [u8]) -> Result<usize, XsError> {
        let mut digits = [0u8; 5];
        let d = decimal(u32::from(domid), &mut digits);
        let n = self.call(XS_GET_DOMAIN_PATH, 0, &[d, b"\0"], buf)?;
        Ok(if buf.get(n.wrapping_sub(1)) == Some(&0) {
            n - 1
        } else {
            n
        })
    }

    /// `XS_WATCH`; the server sends an initial event at once.
    ///
    /// # Errors
    /// The server's error (`EEXIST`, `E2BIG`, `EINVAL`), [`XsError::Invalid`].
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        let (p, t) = (cstr(path)?, cstr(token)?);
        self.ack(XS_WATCH, 0, &[p, b"\0", t, b"\0"])
    }

    /// `XS_UNWATCH`.
    ///
    /// # Errors
    /// As [`Self::watch`] (`ENOENT` for an unknown watch).
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        let (p, t) = (cstr(path)?, cstr(token)?);
        self.ack(XS_UNWATCH, 0, &[p, b"\0", t, b"\0"])
    }

    /// `XS_TRANSACTION_START`: the new transaction's id.
    ///
    /// # Errors
    /// The server's error (`ENOSPC` over quota), [`XsError::Protocol`] for
    /// a reply that is not a number.
    pub fn transaction_start(&mut self) -> Result<u32, XsError> {
        let mut buf = [0u8; 16];
        let n = self.call(XS_TRANSACTION_START, 0, &[b"\0"], &mut buf)?;
        parse_u32(buf[..n].strip_suffix(&[0]).unwrap_or(&buf[..n])).ok_or(XsError::Protocol)
    }

    /// `XS_TRANSACTION_END`: commit (`true`) or abort. A conflicting commit
    /// fails with the server's `EAGAIN`: start over.
    ///
    /// # Errors
    /// The server's error (`EAGAIN`, `ENOENT`).
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        self.ack(
            XS_TRANSACTION_END,
            tx,
            &[if commit { b"T\0" } else { b"F\0" }],
        )
    }

    // ---- watch events ---------------------------------------------------

    /// Move the first stashed event into `buf`.
    fn pop_event<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<WatchEvent<'b>>, XsError> {
        if self.events_len < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_le_bytes([self.events[0], self.events[1]]));
        let total = 2 + len;
        if buf.len() < len {
            return Err(XsError::BufferTooSmall { needed: len });
        }
        buf[..len].copy_from_slice(&self.events[2..total]);
        self.events.copy_within(total..self.events_len, 0);
        self.events_len -= total;
        let mut parts = buf[..len].split(|&b| b == 0);
        let path = parts.next().ok_or(XsError::Protocol)?;
        let token = parts.next().ok_or(XsError::Protocol)?;
        Ok(Some(WatchEvent { path, token }))
    }

    /// The next watch event, if one has arrived (never waits for one, but
    /// waits for the rest of a message the server has started writing).
    ///
    /// # Errors
    /// [`XsError::BufferTooSmall`] (the event stays queued),
    /// [`XsError::Protocol`].
    pub fn poll_watch_event<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<WatchEvent<'b>>, XsError> {
        if self.events_len == 0 {
            // Bounded: each message read is consumed from the ring.
            while self.available().ok_or(XsError::Protocol)? > 0 && self.events_len == 0 {
                let (ty, _, plen) = self.header()?;
                if ty == XS_WATCH_EVENT {
                    self.stash_event(plen)?;
                } else {
                    self.get(None, plen)?;
                }
            }
        }
        self.pop_event(buf)
    }

    /// Wait for the next watch event.
    ///
    /// # Errors
    /// As [`Self::poll_watch_event`], or the transport's error.
    pub fn wait_watch_event<'b>(&mut self, buf: &'b mut [u8]) -> Result<WatchEvent<'b>, XsError> {
        loop {
            if self.events_len == 0 && self.available().ok_or(XsError::Protocol)? == 0 {
                self.transport.wait()?;
                continue;
            }
            // Re-borrow `buf` per iteration only when returning.
            if self.events_len > 0 || self.available().ok_or(XsError::Protocol)? > 0 {
                return match self.poll_watch_event(buf)? {
                    Some(ev) => Ok(ev),
                    None => Err(XsError::Protocol),
                };
            }
        }
    }
}

/// A ring-bounded length (≤ 4096 + 16) as `u32`.
fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `s` as bytes if it holds no NUL.
fn cstr(s: &str) -> Result<&[u8], XsError> {
    if s.as_bytes().contains(&0) {
        Err(XsError::Invalid)
    } else {
        Ok(s.as_bytes())
    }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// `v` in decimal, in `buf`'s tail.
fn decimal(mut v: u32, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

// Under `cfg(loom)` `OwnedRingMem` holds loom atomics, which work only
// inside `loom::model`; the loom models live in `tests/ring_loom.rs`.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::OwnedRingMem;
    use std::vec;
    use std::vec::Vec;

    /// A scripted server: on each wait it appends the next chunk of bytes
    /// to the response ring (raw, so it can lie).
    struct Script<'a> {
        mem: &'a OwnedRingMem,
        chunks: Vec<Vec<u8>>,
        waits: u32,
    }

    impl XsTransport for Script<'_> {
        fn notify(&mut self) {}
        fn wait(&mut self) -> Result<(), XsError> {
            self.waits += 1;
            if self.chunks.is_empty() || self.waits > 100 {
                return Err(XsError::Timeout);
            }
            let c = self.chunks.remove(0);
            let prod = self.mem.load_u32_relaxed(RSP_PROD);
            for (i, b) in c.iter().enumerate() {
                let at = RSP + mask_xenstore_idx(prod.wrapping_add(small(i)));
                self.mem.write_bytes(at, &[*b]);
            }
            self.mem
                .store_u32_release(RSP_PROD, prod.wrapping_add(small(c.len())));
            Ok(())
        }
    }

    fn msg(type_: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        for w in [type_, req_id, 0, small(payload.len())] {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m.extend_from_slice(payload);
        m
    }

    fn client(mem: &OwnedRingMem, chunks: Vec<Vec<u8>>) -> XsClient<&OwnedRingMem, Script<'_>> {
        XsClient::new(
            mem,
            Script {
                mem,
                chunks,
                waits: 0,
            },
        )
    }

    #[test]
    fn error_reply_carries_the_xen_name_and_errno() {
        let mem = OwnedRingMem::new();
        let mut c = client(&mem, vec![msg(XS_ERROR, 1, b"ENOENT\0")]);
        let e = c.read(0, "x", &mut [0; 8]).unwrap_err();
        assert_eq!(e.name(), Some("ENOENT"));
        assert!(matches!(e, XsError::Xen { errno, .. } if errno == Errno::ENOENT));
        // The request went out with the path NUL-terminated.
        let mut req = [0u8; 18];
        mem.read_bytes(REQ, &mut req);
        assert_eq!(&req[16..], b"x\0");
        assert_eq!(mem.load_u32_relaxed(REQ_PROD), 18);
    }

    #[test]
    fn events_before_the_reply_are_kept_and_replies_may_arrive_in_pieces() {
        let mem = OwnedRingMem::new();
        let ev = msg(XS_WATCH_EVENT, 0, b"a/b\0tok\0");
        let reply = msg(XS_READ, 1, b"value");
        let mut script = vec![ev];
        script.extend(reply.chunks(3).map(<[u8]>::to_vec));
        let mut c = client(&mem, script);
        let mut buf = [0u8; 16];
        let n = c.read(0, "k", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"value");
        let mut evb = [0u8; 32];
        let e = c.poll_watch_event(&mut evb).unwrap().unwrap();
        assert_eq!((e.path, e.token), (&b"a/b"[..], &b"tok"[..]));
        assert_eq!(c.poll_watch_event(&mut evb).unwrap(), None);
    }

    #[test]
    fn lying_server_is_a_protocol_error_not_a_hang() {
        // Response indices claiming more than a ring.
        let mem = OwnedRingMem::new();
        mem.store_u32_relaxed(RSP_PROD, 5000);
        let mut c = client(&mem, vec![]);
        assert_eq!(c.read(0, "k", &mut [0; 8]), Err(XsError::Protocol));
        // A reply header announcing more than 4096 bytes.
        let mem = OwnedRingMem::new();
        let mut bad = msg(XS_READ, 1, b"");
        bad[12..16].copy_from_slice(&5000u32.to_le_bytes());
        let mut c = client(&mem, vec![bad]);
        assert_eq!(c.read(0, "k", &mut [0; 8]), Err(XsError::Protocol));
        // A reply of the wrong type.
        let mem = OwnedRingMem::new();
        let mut c = client(&mem, vec![msg(XS_WRITE, 1, b"OK\0")]);
        assert_eq!(c.read(0, "k", &mut [0; 8]), Err(XsError::Protocol));
        // A server that never answers: the transport's timeout comes back.
        let mem = OwnedRingMem::new();
        let mut c = client(&mem, vec![]);
        assert_eq!(c.mkdir(0, "k"), Err(XsError::Timeout));
        // Request-side indices claiming more than a ring.
        let mem = OwnedRingMem::new();
        mem.store_u32_relaxed(REQ_CONS, 2000);
        let mut c = client(&mem, vec![]);
        assert_eq!(c.rm(0, "k"), Err(XsError::Protocol));
    }

    #[test]
    fn invalid_requests_are_refused_before_sending() {
        let mem = OwnedRingMem::new();
        let mut c = client(&mem, vec![]);
        assert_eq!(c.write(0, "a\0b", b""), Err(XsError::Invalid));
        assert_eq!(c.watch("p", "t\0"), Err(XsError::Invalid));
        assert_eq!(c.write(0, "p", &[0u8; 4095]), Err(XsError::Invalid));
        assert_eq!(mem.load_u32_relaxed(REQ_PROD), 0);
    }

    #[test]
    fn transaction_ids_and_domain_paths_parse() {
        let mem = OwnedRingMem::new();
        let mut c = client(
            &mem,
            vec![
                msg(XS_TRANSACTION_START, 1, b"42\0"),
                msg(XS_GET_DOMAIN_PATH, 2, b"/local/domain/7\0"),
                msg(XS_TRANSACTION_START, 3, b"x\0"),
            ],
        );
        assert_eq!(c.transaction_start(), Ok(42));
        let mut buf = [0u8; 32];
        let n = c.get_domain_path(7, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"/local/domain/7");
        assert_eq!(c.transaction_start(), Err(XsError::Protocol));
        let mut d = [0u8; 5];
        assert_eq!(decimal(0, &mut d), b"0");
        assert_eq!(decimal(65535, &mut d), b"65535");
    }
}
