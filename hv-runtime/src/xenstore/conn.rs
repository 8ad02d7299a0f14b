//! One domain's xenstore ring (XEN-PV-ABI.md §8.3): the server side.
//!
//! The page is reached only through [`RingMem`] copies and atomics (never a
//! reference into guest memory). Requests are copied out of `req[]` into a
//! private buffer of at most one message (header + 4096 bytes), so messages
//! may straddle the ring's wrap and arrive in pieces. Replies and watch
//! events go to a bounded output queue and from there into `rsp[]` as space
//! allows (a message may be written in pieces too).
//!
//! Bounds and failure handling (the guest is hostile):
//! * requests are only taken while fewer than [`REPLY_QUEUE_LIMIT`] messages
//!   wait for the guest to read them: a guest that never reads its replies
//!   stalls only itself;
//! * watch events beyond [`OUTPUT_QUEUE_LIMIT`] queued messages are dropped
//!   (and counted);
//! * indices claiming more than 1024 bytes in flight, or a payload length
//!   over 4096, disconnect the domain: `error` is set to
//!   `XENSTORE_ERROR_RINGIDX` / `XENSTORE_ERROR_PROTO` (the oversized request
//!   first gets an `E2BIG` error reply), its watches and transactions are
//!   dropped, and the ring is no longer read — until the guest asks for a
//!   reset (`connection = XENSTORE_RECONNECT`), which zeroes the indices and
//!   starts afresh.

use std::collections::VecDeque;

use guest_abi::abi::errno::Errno;
use guest_abi::abi::xenstore::{
    XENSTORE_CONNECTED, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX,
    XENSTORE_RECONNECT, XENSTORE_RING_SIZE, XENSTORE_SERVER_FEATURE_ERROR,
    XENSTORE_SERVER_FEATURE_RECONNECTION, XenstoreDomainInterface, mask_xenstore_idx,
};
use guest_abi::ring::RingMem;
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};

use super::store::{Store, WatchEvent};
use super::wire::{self, HEADER_LEN, Header};
use crate::machine::DomId;

/// Messages waiting for the guest beyond which no more requests are taken.
pub const REPLY_QUEUE_LIMIT: usize = 64;
/// Messages waiting for the guest beyond which watch events are dropped.
pub const OUTPUT_QUEUE_LIMIT: usize = 128;
/// Steps (request reads) per domain per [`super::Xenstored::service`].
pub const MAX_REQUESTS_PER_SERVICE: usize = 64;

#[expect(clippy::cast_possible_truncation)] // 1024 fits.
const RING: u32 = XENSTORE_RING_SIZE as u32;

/// Byte offsets of the interface's fields.
pub mod off {
    use super::XenstoreDomainInterface as I;
    /// `req[]`.
    pub const REQ: usize = core::mem::offset_of!(I, req);
    /// `rsp[]`.
    pub const RSP: usize = core::mem::offset_of!(I, rsp);
    /// `req_cons`.
    pub const REQ_CONS: usize = core::mem::offset_of!(I, req_cons);
    /// `req_prod`.
    pub const REQ_PROD: usize = core::mem::offset_of!(I, req_prod);
    /// `rsp_cons`.
    pub const RSP_CONS: usize = core::mem::offset_of!(I, rsp_cons);
    /// `rsp_prod`.
    pub const RSP_PROD: usize = core::mem::offset_of!(I, rsp_prod);
    /// `server_features`.
    pub const SERVER_FEATURES: usize = core::mem::offset_of!(I, server_features);
    /// `connection`.
    pub const CONNECTION: usize = core::mem::offset_of!(I, connection);
    /// `error`.
    pub const ERROR: usize = core::mem::offset_of!(I, error);
}

/// One guest page of machine memory as [`RingMem`]: every access is a
/// bounds-checked copy or atomic through `MachineMemory`.
#[derive(Debug, Clone, Copy)]
pub struct MachinePage<'a> {
    mem: &'a MachineMemory,
    base: u64,
}

impl<'a> MachinePage<'a> {
    /// Frame `mfn` of `mem`, if it exists.
    #[must_use]
    pub fn new(mem: &'a MachineMemory, mfn: Mfn) -> Option<Self> {
        let base = mfn.0.checked_mul(4096)?;
        (base.checked_add(4096)? <= mem.len()).then_some(Self { mem, base })
    }

    fn at(&self, offset: usize, len: usize) -> MachineAddr {
        // Offsets come from our own masked indices and field offsets: a
        // violation is a bug in this module, never the guest's doing.
        assert!(
            offset.checked_add(len).is_some_and(|e| e <= 4096),
            "xenstore page access out of bounds: {offset}+{len}"
        );
        MachineAddr(self.base + offset as u64)
    }
}

impl RingMem for MachinePage<'_> {
    fn size(&self) -> usize {
        4096
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.mem
            .load_u32_acquire(self.at(offset, 4))
            .unwrap_or_default()
    }
    fn load_u32_relaxed(&self, offset: usize) -> u32 {
        self.mem.read_u32(self.at(offset, 4)).unwrap_or_default()
    }
    fn store_u32_release(&self, offset: usize, value: u32) {
        let _ = self.mem.store_u32_release(self.at(offset, 4), value);
    }
    fn store_u32_relaxed(&self, offset: usize, value: u32) {
        let _ = self.mem.write_u32(self.at(offset, 4), value);
    }
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        if self.mem.read(self.at(offset, buf.len()), buf).is_err() {
            buf.fill(0);
        }
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let _ = self.mem.write(self.at(offset, src.len()), src);
    }
}

/// Copy `buf.len()` (≤ 1024) bytes out of a ring area at free-running
/// index `idx`, wrapping.
pub fn ring_read<M: RingMem>(page: &M, area: usize, idx: u32, buf: &mut [u8]) {
    let pos = mask_xenstore_idx(idx);
    let first = buf.len().min(XENSTORE_RING_SIZE - pos);
    let (a, b) = buf.split_at_mut(first);
    page.read_bytes(area + pos, a);
    page.read_bytes(area, b);
}

/// Copy `src` (≤ 1024 bytes) into a ring area at index `idx`, wrapping.
pub fn ring_write<M: RingMem>(page: &M, area: usize, idx: u32, src: &[u8]) {
    let pos = mask_xenstore_idx(idx);
    let first = src.len().min(XENSTORE_RING_SIZE - pos);
    let (a, b) = src.split_at(first);
    page.write_bytes(area + pos, a);
    page.write_bytes(area, b);
}

/// Why a connection stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Indices claimed more than a ring's worth of data.
    RingIndex,
    /// A message announced a payload over 4096 bytes.
    Protocol,
}

/// One domain's connection state.
#[derive(Debug)]
pub struct Connection {
    dom: DomId,
    port: u32,
    /// Our request consumer index (the page's copy is only written).
    req_cons: u32,
    /// Our response producer index.
    rsp_prod: u32,
    /// The message being received (at most `MAX_MSG_LEN` bytes).
    inbuf: Vec<u8>,
    /// Encoded messages for the guest; the first may be partly written.
    out: VecDeque<Vec<u8>>,
    out_off: usize,
    broken: Option<Broken>,
    notify: bool,
    dropped_events: u64,
    requests: u64,
}

impl Connection {
    /// Take over `page` for `dom`: keep whatever indices the page holds,
    /// advertise reconnection and error reporting, mark it connected.
    pub fn connect<M: RingMem>(dom: DomId, port: u32, page: &M) -> Self {
        let req_cons = page.load_u32_relaxed(off::REQ_CONS);
        let rsp_prod = page.load_u32_relaxed(off::RSP_PROD);
        page.store_u32_relaxed(
            off::SERVER_FEATURES,
            XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR,
        );
        page.store_u32_relaxed(off::ERROR, XENSTORE_ERROR_NONE);
        page.store_u32_release(off::CONNECTION, XENSTORE_CONNECTED);
        Self {
            dom,
            port,
            req_cons,
            rsp_prod,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_off: 0,
            broken: None,
            notify: true,
            dropped_events: 0,
            requests: 0,
        }
    }

    /// The domain's store event channel port.
    #[must_use]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Why the connection stopped, if it did.
    #[must_use]
    pub fn broken(&self) -> Option<Broken> {
        self.broken
    }

    /// Watch events dropped for a full output queue.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Requests answered.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Messages waiting for the guest.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Whether the guest should be notified (cleared by the call).
    pub fn take_notify(&mut self) -> bool {
        std::mem::take(&mut self.notify)
    }

    /// Queue a watch event (dropped if the output queue is full).
    pub fn queue_event(&mut self, ev: &WatchEvent) {
        if self.broken.is_some() {
            return;
        }
        if self.out.len() >= OUTPUT_QUEUE_LIMIT {
            if self.dropped_events == 0 {
                tracing::warn!(
                    dom = %self.dom,
                    "xenstore output queue full; dropping watch events"
                );
            }
            self.dropped_events += 1;
            return;
        }
        self.out.push_back(super::watch_event_message(ev));
    }

    fn disconnect<M: RingMem>(&mut self, page: &M, store: &mut Store, why: Broken) {
        tracing::warn!(
            dom = %self.dom,
            ?why,
            "xenstore ring misbehaved; disconnected"
        );
        self.broken = Some(why);
        self.inbuf = Vec::new();
        self.out.clear();
        self.out_off = 0;
        store.reset_watches(self.dom);
        let code = match why {
            Broken::RingIndex => XENSTORE_ERROR_RINGIDX,
            Broken::Protocol => XENSTORE_ERROR_PROTO,
        };
        page.store_u32_release(off::ERROR, code);
        self.notify = true;
    }

    /// The guest asked for a reset: drop everything, zero the indices.
    fn reset<M: RingMem>(&mut self, page: &M, store: &mut Store) {
        store.reset_watches(self.dom);
        self.inbuf = Vec::new();
        self.out.clear();
        self.out_off = 0;
        self.req_cons = 0;
        self.rsp_prod = 0;
        self.broken = None;
        for o in [off::REQ_CONS, off::REQ_PROD, off::RSP_CONS, off::RSP_PROD] {
            page.store_u32_relaxed(o, 0);
        }
        page.store_u32_relaxed(off::ERROR, XENSTORE_ERROR_NONE);
        page.fence_full();
        page.store_u32_release(off::CONNECTION, XENSTORE_CONNECTED);
        self.notify = true;
    }

    /// Write queued output into `rsp[]` as far as it fits.
    pub fn flush<M: RingMem>(&mut self, page: &M) {
        if self.broken.is_some() {
            return;
        }
        let used = self
            .rsp_prod
            .wrapping_sub(page.load_u32_acquire(off::RSP_CONS));
        if used > RING {
            return; // `step` disconnects.
        }
        let mut space = (RING - used) as usize;
        let mut wrote = false;
        while space > 0 {
            let Some(front) = self.out.front() else {
                break;
            };
            let chunk = front.get(self.out_off..).unwrap_or_default();
            let n = chunk.len().min(space);
            ring_write(page, off::RSP, self.rsp_prod, &chunk[..n]);
            self.rsp_prod = self.rsp_prod.wrapping_add(u32::try_from(n).unwrap_or(0));
            space -= n;
            self.out_off += n;
            wrote = true;
            if self.out_off >= front.len() {
                self.out.pop_front();
                self.out_off = 0;
            }
        }
        if wrote {
            page.store_u32_release(off::RSP_PROD, self.rsp_prod);
            self.notify = true;
        }
    }

    /// One step: honour a reset request, check the indices, flush output,
    /// read request bytes and answer a request once it is complete. Returns
    /// whether anything was consumed (so the caller may step again).
    pub fn step<M: RingMem>(&mut self, page: &M, store: &mut Store) -> bool {
        if page.load_u32_acquire(off::CONNECTION) == XENSTORE_RECONNECT {
            self.reset(page, store);
            return false;
        }
        if self.broken.is_some() {
            return false;
        }
        let rsp_cons = page.load_u32_acquire(off::RSP_CONS);
        let req_prod = page.load_u32_acquire(off::REQ_PROD);
        let avail = req_prod.wrapping_sub(self.req_cons);
        if self.rsp_prod.wrapping_sub(rsp_cons) > RING || avail > RING {
            self.disconnect(page, store, Broken::RingIndex);
            return false;
        }
        self.flush(page);
        if self.out.len() >= REPLY_QUEUE_LIMIT || avail == 0 {
            return false;
        }
        let want = if self.inbuf.len() < HEADER_LEN {
            HEADER_LEN - self.inbuf.len()
        } else {
            let h = header_of(&self.inbuf);
            (HEADER_LEN + h.payload_len().unwrap_or(0)).saturating_sub(self.inbuf.len())
        };
        let n = want.min(avail as usize);
        let start = self.inbuf.len();
        self.inbuf.resize(start + n, 0);
        ring_read(page, off::REQ, self.req_cons, &mut self.inbuf[start..]);
        self.req_cons = self.req_cons.wrapping_add(u32::try_from(n).unwrap_or(0));
        page.store_u32_release(off::REQ_CONS, self.req_cons);
        self.notify = true;

        if self.inbuf.len() < HEADER_LEN {
            return true;
        }
        let h = header_of(&self.inbuf);
        let Some(len) = h.payload_len() else {
            self.out
                .push_back(wire::error_reply(h.req_id, h.tx_id, Errno::E2BIG));
            self.flush(page);
            self.disconnect_keep_output(page, store);
            return false;
        };
        if self.inbuf.len() < HEADER_LEN + len {
            return true;
        }
        let reply = super::handle(store, self.dom, &h, &self.inbuf[HEADER_LEN..]);
        self.requests += 1;
        self.inbuf.clear();
        self.out.push_back(reply);
        self.flush(page);
        true
    }

    /// Disconnect for a protocol error after the error reply was written.
    fn disconnect_keep_output<M: RingMem>(&mut self, page: &M, store: &mut Store) {
        self.disconnect(page, store, Broken::Protocol);
    }
}

fn header_of(buf: &[u8]) -> Header {
    buf.first_chunk::<HEADER_LEN>()
        .map(Header::parse)
        .unwrap_or_default()
}
