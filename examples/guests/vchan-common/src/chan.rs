//! A vchan-like two-way byte channel over two shared pages.
//!
//! The *control* page holds, for each direction, a producer and a consumer
//! index (free-running `u32` byte counts) and two notification requests;
//! the *data* page holds the two byte rings, [`RING_BYTES`] each. The
//! server (the granting end) writes ring 0 and reads ring 1; the client
//! the other way round.
//!
//! Notification suppression: a reader that finds its ring empty sets
//! `want_data` (a writer that finds it full sets `want_space`), issues a
//! full barrier and checks again before it sleeps on the event channel.
//! The other end, after moving its index, issues a full barrier and sends
//! an event only if the request is set (clearing it). Either the sleeper
//! sees the new index or the mover sees the request, so no wake-up is
//! lost, and while both ends keep up no events are sent at all.
//!
//! Everything read from the shared pages is untrusted: indices that claim
//! more than a ring's worth of data end the stream with
//! [`ChanError::Corrupt`].

use guest_abi::ring::RingMem;

/// Bytes of each direction's ring (a power of two).
pub const RING_BYTES: u32 = 2048;
/// Control-page magic ("vchn"), written last by the server.
pub const MAGIC: u32 = 0x6e68_6376;

const OFF_MAGIC: usize = 0;
const OFF_RING_BYTES: usize = 4;
/// Per end (server, client): non-zero once that end has closed.
const OFF_CLOSED: [usize; 2] = [8, 12];
/// Per ring: prod, cons, want_data, want_space.
const fn ring_off(ring: usize) -> usize {
    16 + ring * 16
}
const PROD: usize = 0;
const CONS: usize = 4;
const WANT_DATA: usize = 8;
const WANT_SPACE: usize = 12;

/// Which end of the channel this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The end that owns and grants the pages: writes ring 0.
    Server,
    /// The end that maps them: writes ring 1.
    Client,
}

/// The peer broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChanError {
    /// Indices claim more than a ring's worth of bytes.
    Corrupt {
        /// The ring (0: server to client, 1: client to server).
        ring: usize,
        /// Bytes the indices claim.
        claimed: u32,
    },
    /// The peer closed its end while we still expected bytes or space.
    PeerClosed,
    /// The control page has no magic or the wrong ring size.
    Layout {
        /// Magic found.
        magic: u32,
        /// Ring size found.
        ring_bytes: u32,
    },
}

impl core::fmt::Display for ChanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Corrupt { ring, claimed } => write!(
                f,
                "ring {ring} indices claim {claimed} bytes (ring holds {RING_BYTES})"
            ),
            Self::PeerClosed => f.write_str("the peer closed the channel mid-stream"),
            Self::Layout { magic, ring_bytes } => write!(
                f,
                "control page has magic {magic:#x} and ring size {ring_bytes}; expected {MAGIC:#x} and {RING_BYTES}"
            ),
        }
    }
}

/// Notification counts of one end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events sent to the peer because it asked to be woken.
    pub notified: u32,
    /// Index updates after which the peer had not asked (no event sent).
    pub suppressed: u32,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Chan<M: RingMem> {
    ctrl: M,
    data: M,
    tx: usize,
    rx: usize,
    tx_prod: u32,
    rx_cons: u32,
    /// Notification counts.
    pub stats: Stats,
}

impl<M: RingMem> Chan<M> {
    /// The server end: initialise the control page (empty rings, no
    /// requests), writing the magic last.
    pub fn init(ctrl: M, data: M) -> Self {
        for ring in 0..2 {
            for field in [PROD, CONS, WANT_DATA, WANT_SPACE] {
                ctrl.store_u32_relaxed(ring_off(ring) + field, 0);
            }
        }
        ctrl.store_u32_relaxed(OFF_RING_BYTES, RING_BYTES);
        for at in OFF_CLOSED {
            ctrl.store_u32_relaxed(at, 0);
        }
        ctrl.store_u32_release(OFF_MAGIC, MAGIC);
        Self::new(ctrl, data, End::Server, 0, 0)
    }

    /// The client end, over pages the server initialised.
    ///
    /// # Errors
    /// [`ChanError::Layout`] when the control page is not one.
    pub fn attach(ctrl: M, data: M) -> Result<Self, ChanError> {
        let magic = ctrl.load_u32_acquire(OFF_MAGIC);
        let ring_bytes = ctrl.load_u32_relaxed(OFF_RING_BYTES);
        if magic != MAGIC || ring_bytes != RING_BYTES {
            return Err(ChanError::Layout { magic, ring_bytes });
        }
        let tx_prod = ctrl.load_u32_relaxed(ring_off(1) + PROD);
        let rx_cons = ctrl.load_u32_relaxed(ring_off(0) + CONS);
        Ok(Self::new(ctrl, data, End::Client, tx_prod, rx_cons))
    }

    fn new(ctrl: M, data: M, end: End, tx_prod: u32, rx_cons: u32) -> Self {
        let (tx, rx) = match end {
            End::Server => (0, 1),
            End::Client => (1, 0),
        };
        Self {
            ctrl,
            data,
            tx,
            rx,
            tx_prod,
            rx_cons,
            stats: Stats::default(),
        }
    }

    fn at(ring: usize, field: usize) -> usize {
        ring_off(ring) + field
    }

    /// Bytes of `ring` between `cons` and `prod`, checked.
    fn used(ring: usize, prod: u32, cons: u32) -> Result<u32, ChanError> {
        let n = prod.wrapping_sub(cons);
        if n > RING_BYTES {
            return Err(ChanError::Corrupt { ring, claimed: n });
        }
        Ok(n)
    }

    /// Copy as much of `src` as fits into the outgoing ring. Returns the
    /// bytes written and whether the peer must be notified.
    ///
    /// # Errors
    /// [`ChanError::Corrupt`].
    pub fn write(&mut self, src: &[u8]) -> Result<(usize, bool), ChanError> {
        let cons = self.ctrl.load_u32_acquire(Self::at(self.tx, CONS));
        let space = (RING_BYTES - Self::used(self.tx, self.tx_prod, cons)?) as usize;
        let n = src.len().min(space);
        if n == 0 {
            return Ok((0, false));
        }
        let base = self.tx * RING_BYTES as usize;
        let pos = (self.tx_prod % RING_BYTES) as usize;
        let first = n.min(RING_BYTES as usize - pos);
        self.data.write_bytes(base + pos, &src[..first]);
        self.data.write_bytes(base, &src[first..n]);
        self.tx_prod = self.tx_prod.wrapping_add(small(n));
        self.ctrl
            .store_u32_release(Self::at(self.tx, PROD), self.tx_prod);
        Ok((n, self.take_request(self.tx, WANT_DATA)))
    }

    /// Copy up to `dst.len()` bytes out of the incoming ring. Returns the
    /// bytes read and whether the peer must be notified.
    ///
    /// # Errors
    /// [`ChanError::Corrupt`].
    pub fn read(&mut self, dst: &mut [u8]) -> Result<(usize, bool), ChanError> {
        let prod = self.ctrl.load_u32_acquire(Self::at(self.rx, PROD));
        let avail = Self::used(self.rx, prod, self.rx_cons)? as usize;
        let n = dst.len().min(avail);
        if n == 0 {
            return Ok((0, false));
        }
        let base = self.rx * RING_BYTES as usize;
        let pos = (self.rx_cons % RING_BYTES) as usize;
        let first = n.min(RING_BYTES as usize - pos);
        self.data.read_bytes(base + pos, &mut dst[..first]);
        self.data.read_bytes(base, &mut dst[first..n]);
        // The copies are done before the space is handed back.
        self.ctrl.fence_full();
        self.rx_cons = self.rx_cons.wrapping_add(small(n));
        self.ctrl
            .store_u32_release(Self::at(self.rx, CONS), self.rx_cons);
        Ok((n, self.take_request(self.rx, WANT_SPACE)))
    }

    /// Stop using the channel: mark our end closed in the control page (so
    /// the pages can be unmapped or revoked next) and return the counts.
    pub fn close(self) -> Stats {
        self.ctrl.store_u32_release(OFF_CLOSED[self.tx], 1);
        self.stats
    }

    /// Whether the peer has closed its end.
    pub fn peer_closed(&self) -> bool {
        self.ctrl.load_u32_acquire(OFF_CLOSED[self.rx]) != 0
    }

    /// After moving an index: did the peer ask to be woken? (Clears the
    /// request.)
    fn take_request(&mut self, ring: usize, field: usize) -> bool {
        self.ctrl.fence_full();
        let at = Self::at(ring, field);
        if self.ctrl.load_u32_relaxed(at) != 0 {
            self.ctrl.store_u32_relaxed(at, 0);
            self.stats.notified += 1;
            true
        } else {
            self.stats.suppressed += 1;
            false
        }
    }

    /// About to sleep: ask the peer to wake us when it writes (`for_data`)
    /// and/or reads (`for_space`), then check again. Returns whether the
    /// wait is already over (do not sleep).
    ///
    /// # Errors
    /// [`ChanError::Corrupt`], or [`ChanError::PeerClosed`] when nothing
    /// is left to wait for.
    pub fn prepare_wait(&mut self, for_data: bool, for_space: bool) -> Result<bool, ChanError> {
        if for_data {
            self.ctrl.store_u32_relaxed(Self::at(self.rx, WANT_DATA), 1);
        }
        if for_space {
            self.ctrl
                .store_u32_relaxed(Self::at(self.tx, WANT_SPACE), 1);
        }
        self.ctrl.fence_full();
        let prod = self.ctrl.load_u32_acquire(Self::at(self.rx, PROD));
        let cons = self.ctrl.load_u32_acquire(Self::at(self.tx, CONS));
        let data = Self::used(self.rx, prod, self.rx_cons)? > 0;
        let space = Self::used(self.tx, self.tx_prod, cons)? < RING_BYTES;
        let ready = (for_data && data) || (for_space && space);
        if !ready && self.peer_closed() {
            return Err(ChanError::PeerClosed);
        }
        Ok(ready)
    }
}

/// A ring-bounded length as `u32`.
fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
