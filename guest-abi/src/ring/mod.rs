//! One generic implementation of Xen's shared I/O ring (`io/ring.h`).
//!
//! A ring is one shared page (or `2^order` contiguous pages) holding a
//! 64-byte header and an array of `N` entries. The frontend produces requests
//! and consumes responses ([`FrontRing`]); the backend consumes requests and
//! produces responses ([`BackRing`]). A response is written into the slot of
//! a request the backend has already taken, so the array is shared by both
//! directions and each entry is as large as the larger of the two types.
//!
//! ```text
//! off  size  field       written by
//!   0     4  req_prod    front  (free-running request producer index)
//!   4     4  req_event   back   (notify me when req_prod passes this)
//!   8     4  rsp_prod    back   (free-running response producer index)
//!  12     4  rsp_event   front  (notify me when rsp_prod passes this)
//!  16     4  pvt         protocol-specific (netif: smartpoll_active)
//!  20    44  pad         zero
//!  64     …  ring[N]     entries, index = counter & (N - 1)
//! ```
//!
//! The shared memory is reached only through a [`RingMem`]: atomics for the
//! four indices and copies for the entries. No Rust reference into the shared
//! page exists, every entry is copied out once before it is looked at, and
//! every index the peer writes is checked (a peer claiming more entries than
//! the ring can hold gives [`RingError::Overflow`], never an out-of-ring read).
//!
//! Notifications are left to the caller: the `*_and_check_notify` methods say
//! whether the peer must be sent an event, and the `final_check_*` methods
//! implement the "re-check after re-arming the event counter" step that
//! prevents a lost wake-up (see Note [Ring barriers]).
//!
//! # Example
//!
//! ```
//! use guest_abi::ring::{BackRing, FrontRing, OwnedRingMem};
//!
//! let page = OwnedRingMem::<1024>::new(); // one 4 KiB page
//! // Requests are u64 sector numbers, responses u32 statuses: 8-byte entries.
//! let mut front = FrontRing::<u64, u32, _>::init(&page).unwrap();
//! let mut back = BackRing::<u64, u32, _>::attach(&page).unwrap();
//! assert_eq!(front.slots(), 256); // (4096 - 64) / 8 = 504, rounded down
//!
//! front.push_request(7).unwrap();
//! front.push_request(8).unwrap();
//! assert!(front.push_requests_and_check_notify()); // back asked for events
//!
//! while let Some(sector) = back.take_request().unwrap() {
//!     back.push_response(u32::try_from(sector).unwrap() * 10).unwrap();
//! }
//! assert!(!back.final_check_for_requests().unwrap()); // nothing more: sleep
//! assert!(back.push_responses_and_check_notify());
//!
//! assert_eq!(front.take_response().unwrap(), Some(70));
//! assert_eq!(front.take_response().unwrap(), Some(80));
//! assert_eq!(front.take_response().unwrap(), None);
//! assert!(!front.final_check_for_responses().unwrap());
//! ```
//!
//! # Note [Ring barriers]
//!
//! The protocol needs three kinds of barrier; this is how each is expressed
//! and what it compiles to on x86-64 (TSO: loads are not reordered with loads,
//! stores not with stores, but a store may pass a later load):
//!
//! * **Write barrier** (producer: entries visible before the producer index).
//!   The index is stored with `Release` ordering, which orders every earlier
//!   entry write before it. On x86-64 this is a plain `mov` plus a compiler
//!   barrier (Xen's `xen_wmb`; no `sfence` needed for write-back memory).
//! * **Read barrier** (consumer: producer index read before the entries). The
//!   index is loaded with `Acquire` ordering, which keeps every later entry
//!   read after it. On x86-64 a plain `mov` plus a compiler barrier
//!   (`xen_rmb`).
//! * **Full barrier** (store of one index before the load of another, in
//!   "publish then check the event counter" and "re-arm the event counter then
//!   re-check the producer"). This is the store-buffering pattern, which TSO
//!   does *not* order; it is `fence(SeqCst)` (`mfence` or a locked RMW, Xen's
//!   `xen_mb`). With the fence on *both* sides, at least one side sees the
//!   other's store: either the producer sees the re-armed event and notifies,
//!   or the consumer's re-check sees the new entries. That is the no-lost-
//!   wake-up argument checked by the loom models in `tests/ring_loom.rs`.
//!
//! The event counters themselves are plain relaxed accesses: they are ordered
//! only by the full fences around them.

mod mem;

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;

pub use mem::{OwnedRingMem, RawRingMem, RingMem};

use core::fmt;
use core::marker::PhantomData;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Byte offset of `req_prod` in the shared page.
pub const REQ_PROD_OFFSET: usize = 0;
/// Byte offset of `req_event` in the shared page.
pub const REQ_EVENT_OFFSET: usize = 4;
/// Byte offset of `rsp_prod` in the shared page.
pub const RSP_PROD_OFFSET: usize = 8;
/// Byte offset of `rsp_event` in the shared page.
pub const RSP_EVENT_OFFSET: usize = 12;
/// Byte offset of the 4-byte protocol-private area (`pvt`).
pub const PVT_OFFSET: usize = 16;
/// Size of the shared header; the entry array starts here.
pub const HEADER_SIZE: usize = 64;
/// Byte size of a one-page ring.
pub const PAGE_SIZE: usize = 4096;

/// Types that can travel through a ring: plain bytes with no invalid values.
pub trait RingEntry: FromBytes + IntoBytes + Immutable + KnownLayout + Sized {}
impl<T: FromBytes + IntoBytes + Immutable + KnownLayout + Sized> RingEntry for T {}

/// Size of one ring slot for these request and response types: the size of
/// the C `union { Req req; Rsp rsp; }`, i.e. the larger size rounded up to the
/// larger alignment.
pub const fn entry_size<Req, Rsp>() -> usize {
    let size = max(size_of::<Req>(), size_of::<Rsp>());
    let align = max(align_of::<Req>(), align_of::<Rsp>());
    size.div_ceil(align) * align
}

/// Number of slots of a ring of `ring_bytes` bytes with `entry_size`-byte
/// entries: the largest power of two ≤ `(ring_bytes - 64) / entry_size`, or
/// 0 if not even one entry fits.
pub const fn slot_count(ring_bytes: usize, entry_size: usize) -> usize {
    if ring_bytes <= HEADER_SIZE || entry_size == 0 {
        return 0;
    }
    let fit = (ring_bytes - HEADER_SIZE) / entry_size;
    if fit == 0 { 0 } else { 1 << fit.ilog2() }
}

/// [`slot_count`] for a ring of `Req`/`Rsp` entries.
pub const fn ring_slots<Req, Rsp>(ring_bytes: usize) -> usize {
    slot_count(ring_bytes, entry_size::<Req, Rsp>())
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The geometry of one ring: slot count and entry size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    slots: u32,
    entry_size: usize,
}

impl RingLayout {
    /// The layout of a `ring_bytes`-byte ring of `Req`/`Rsp` entries.
    pub const fn new<Req, Rsp>(ring_bytes: usize) -> Result<Self, LayoutError> {
        let entry_size = entry_size::<Req, Rsp>();
        let slots = slot_count(ring_bytes, entry_size);
        if slots == 0 {
            return Err(LayoutError::TooSmall {
                ring_bytes,
                entry_size,
            });
        }
        if slots > 1 << 31 {
            return Err(LayoutError::TooLarge { ring_bytes });
        }
        Ok(Self {
            #[expect(clippy::cast_possible_truncation)] // ≤ 2^31, checked above
            slots: slots as u32,
            entry_size,
        })
    }

    /// Number of slots `N` (a power of two).
    pub const fn slots(&self) -> u32 {
        self.slots
    }

    /// Size of one slot in bytes.
    pub const fn entry_size(&self) -> usize {
        self.entry_size
    }

    /// Byte offset of the slot that free-running index `index` refers to.
    /// Always inside the ring: the index is masked with `N - 1`.
    pub const fn entry_offset(&self, index: u32) -> usize {
        HEADER_SIZE + (index & (self.slots - 1)) as usize * self.entry_size
    }

    /// Bytes of shared memory the ring occupies (header plus `N` slots).
    pub const fn used_bytes(&self) -> usize {
        HEADER_SIZE + self.slots as usize * self.entry_size
    }
}

/// A ring could not be laid out over the given memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Not even one entry fits after the 64-byte header.
    TooSmall {
        /// Size of the ring memory.
        ring_bytes: usize,
        /// Size of one entry.
        entry_size: usize,
    },
    /// More than 2^31 slots: the free-running `u32` indices could not tell a
    /// full ring from an empty one.
    TooLarge {
        /// Size of the ring memory.
        ring_bytes: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall {
                ring_bytes,
                entry_size,
            } => write!(
                f,
                "{ring_bytes}-byte ring has no room for a {entry_size}-byte entry"
            ),
            Self::TooLarge { ring_bytes } => write!(f, "{ring_bytes}-byte ring has too many slots"),
        }
    }
}

impl core::error::Error for LayoutError {}

/// The peer broke the ring protocol. The ring state is unchanged; a driver
/// should stop using the ring and disconnect the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The peer's producer index claims more unconsumed entries than it can
    /// have produced: `prod - cons > max` (wrapping), where `max` is the
    /// number of slots the peer may legitimately have filled. This covers a
    /// producer index more than a ring's worth ahead (`req_prod - rsp_prod_pvt
    /// > N` on the back end) and one that moved backwards.
    Overflow {
        /// The producer index read from the shared page.
        prod: u32,
        /// Our consumer index.
        cons: u32,
        /// The most entries that may be outstanding.
        max: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflow { prod, cons, max } => write!(
                f,
                "peer producer index {prod} is more than {max} entries past consumer index {cons}"
            ),
        }
    }
}

impl core::error::Error for RingError {}

/// No free slot: the ring holds `N` outstanding requests (front), or every
/// request taken has been answered (back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull;

impl fmt::Display for RingFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no free ring slot")
    }
}

impl core::error::Error for RingFull {}

/// Copy the entry at free-running `index` out of the ring.
fn read_entry<T: RingEntry, M: RingMem>(mem: &M, layout: &RingLayout, index: u32) -> T {
    let mut value = T::new_zeroed();
    mem.read_bytes(layout.entry_offset(index), value.as_mut_bytes());
    value
}

/// Copy `value` into the entry at free-running `index`.
fn write_entry<T: RingEntry, M: RingMem>(mem: &M, layout: &RingLayout, index: u32, value: &T) {
    mem.write_bytes(layout.entry_offset(index), value.as_bytes());
}

/// Publish `new` at `prod_offset` and decide whether to notify the peer
/// (steps 1–5 of the publish algorithm; `old` is the previously published
/// value, which we keep privately rather than re-reading it from the page).
fn publish_and_check_notify<M: RingMem>(
    mem: &M,
    prod_offset: usize,
    event_offset: usize,
    old: u32,
    new: u32,
) -> bool {
    // Steps 2–3: write barrier, then the index (Note [Ring barriers]).
    mem.store_u32_release(prod_offset, new);
    // Step 4: full barrier between the index store and the event load.
    mem.fence_full();
    // Step 5: notify iff the peer's event threshold lies in (old, new].
    let event = mem.load_u32_relaxed(event_offset);
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// Check a producer index read from the peer against what it may have
/// produced; returns the number of unconsumed entries.
fn checked_unconsumed(prod: u32, cons: u32, max: u32) -> Result<u32, RingError> {
    let avail = prod.wrapping_sub(cons);
    if avail > max {
        Err(RingError::Overflow { prod, cons, max })
    } else {
        Ok(avail)
    }
}

/// Check that the memory can hold the ring.
fn layout_for<Req, Rsp, M: RingMem>(mem: &M) -> Result<RingLayout, LayoutError> {
    RingLayout::new::<Req, Rsp>(mem.size())
}

// ---------------------------------------------------------------------------
// Front end
// ---------------------------------------------------------------------------

/// The frontend (request producer, response consumer) of a shared ring.
pub struct FrontRing<Req, Rsp, M> {
    mem: M,
    layout: RingLayout,
    /// Private producer: requests pushed but maybe not yet published.
    req_prod_pvt: u32,
    /// The last value we stored to the shared `req_prod`.
    req_published: u32,
    /// Responses consumed.
    rsp_cons: u32,
    /// Last checked value of the shared `rsp_prod`.
    rsp_prod_seen: u32,
    _entries: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp, M> fmt::Debug for FrontRing<Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("layout", &self.layout)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_published", &self.req_published)
            .field("rsp_cons", &self.rsp_cons)
            .finish_non_exhaustive()
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMem> FrontRing<Req, Rsp, M> {
    /// Initialise the shared header (`req_prod = rsp_prod = 0`,
    /// `req_event = rsp_event = 1`, `pvt` and padding zeroed) and take the
    /// front end. The ring's byte size is `mem.size()`.
    pub fn init(mem: M) -> Result<Self, LayoutError> {
        Self::init_at(mem, 0)
    }

    /// Like [`init`](Self::init), but with every index starting at `start`
    /// (events at `start + 1`). Xen always starts at 0; other values exist to
    /// test wrap-around of the free-running counters.
    pub fn init_at(mem: M, start: u32) -> Result<Self, LayoutError> {
        let layout = layout_for::<Req, Rsp, M>(&mem)?;
        for offset in (PVT_OFFSET..HEADER_SIZE).step_by(4) {
            mem.store_u32_relaxed(offset, 0);
        }
        mem.store_u32_relaxed(REQ_EVENT_OFFSET, start.wrapping_add(1));
        mem.store_u32_relaxed(RSP_EVENT_OFFSET, start.wrapping_add(1));
        mem.store_u32_relaxed(RSP_PROD_OFFSET, start);
        mem.store_u32_release(REQ_PROD_OFFSET, start);
        Ok(Self::with_indices(mem, layout, start, start))
    }

    /// Take the front end of an already initialised ring (e.g. after a
    /// reconnect), continuing from the shared `req_prod` and `rsp_prod`.
    ///
    /// A hostile backend can only make this state inconsistent in ways that
    /// later calls report as [`RingError::Overflow`].
    pub fn attach(mem: M) -> Result<Self, LayoutError> {
        let layout = layout_for::<Req, Rsp, M>(&mem)?;
        let req_prod = mem.load_u32_acquire(REQ_PROD_OFFSET);
        let rsp_prod = mem.load_u32_acquire(RSP_PROD_OFFSET);
        Ok(Self::with_indices(mem, layout, req_prod, rsp_prod))
    }

    fn with_indices(mem: M, layout: RingLayout, req_prod: u32, rsp_prod: u32) -> Self {
        Self {
            mem,
            layout,
            req_prod_pvt: req_prod,
            req_published: req_prod,
            rsp_cons: rsp_prod,
            rsp_prod_seen: rsp_prod,
            _entries: PhantomData,
        }
    }

    /// The ring's geometry.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Number of slots `N`.
    pub fn slots(&self) -> u32 {
        self.layout.slots
    }

    /// The shared memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Private request producer index (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Response consumer index (`rsp_cons`).
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Slots free for new requests: `N - (req_prod_pvt - rsp_cons)`.
    pub fn free_requests(&self) -> u32 {
        self.layout.slots - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// `true` when every slot holds an outstanding request.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Copy `req` into the next free slot (not yet visible to the backend:
    /// see [`push_requests_and_check_notify`](Self::push_requests_and_check_notify)).
    pub fn push_request(&mut self, req: Req) -> Result<(), RingFull> {
        if self.is_full() {
            return Err(RingFull);
        }
        write_entry(&self.mem, &self.layout, self.req_prod_pvt, &req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publish pushed requests; `true` if the backend must be notified.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_published;
        let new = self.req_prod_pvt;
        self.req_published = new;
        publish_and_check_notify(&self.mem, REQ_PROD_OFFSET, REQ_EVENT_OFFSET, old, new)
    }

    /// Number of responses ready to take, after checking the backend's
    /// `rsp_prod`: it may not answer more requests than were published.
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        // Read barrier: acquire, so entry reads come after this load.
        let prod = self.mem.load_u32_acquire(RSP_PROD_OFFSET);
        let max = self.req_published.wrapping_sub(self.rsp_cons);
        let avail = checked_unconsumed(prod, self.rsp_cons, max)?;
        self.rsp_prod_seen = prod;
        Ok(avail)
    }

    /// `true` if a response is ready.
    pub fn has_unconsumed_responses(&mut self) -> Result<bool, RingError> {
        Ok(self.rsp_prod_seen != self.rsp_cons || self.unconsumed_responses()? > 0)
    }

    /// Copy the next response out of the ring, if one is ready. The shared
    /// `rsp_prod` is re-read (and checked) only once every response seen by
    /// the previous read has been taken.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.rsp_prod_seen == self.rsp_cons && self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        let rsp = read_entry(&self.mem, &self.layout, self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Final check before waiting for an event: `true` if responses arrived
    /// (keep working), `false` if it is safe to sleep — the backend will
    /// notify for the next response.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        // Step 1.
        if self.has_unconsumed_responses()? {
            return Ok(true);
        }
        // Step 2: ask for an event when rsp_prod passes rsp_cons.
        self.mem
            .store_u32_relaxed(RSP_EVENT_OFFSET, self.rsp_cons.wrapping_add(1));
        // Step 3: full barrier between the event store and the re-check load.
        self.mem.fence_full();
        // Step 4.
        self.has_unconsumed_responses()
    }
}

// ---------------------------------------------------------------------------
// Back end
// ---------------------------------------------------------------------------

/// The backend (request consumer, response producer) of a shared ring.
pub struct BackRing<Req, Rsp, M> {
    mem: M,
    layout: RingLayout,
    /// Private response producer: responses pushed but maybe not published.
    rsp_prod_pvt: u32,
    /// The last value we stored to the shared `rsp_prod`.
    rsp_published: u32,
    /// Requests consumed.
    req_cons: u32,
    /// Last checked value of the shared `req_prod`.
    req_prod_seen: u32,
    _entries: PhantomData<fn(Rsp) -> Req>,
}

impl<Req, Rsp, M> fmt::Debug for BackRing<Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("layout", &self.layout)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_published", &self.rsp_published)
            .field("req_cons", &self.req_cons)
            .finish_non_exhaustive()
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMem> BackRing<Req, Rsp, M> {
    /// Take the back end of a ring the frontend has initialised. Nothing is
    /// written; consumption starts at the current shared `rsp_prod` (the
    /// backend's own index, so a fresh ring starts at 0 as in Xen).
    pub fn attach(mem: M) -> Result<Self, LayoutError> {
        let layout = layout_for::<Req, Rsp, M>(&mem)?;
        let rsp_prod = mem.load_u32_acquire(RSP_PROD_OFFSET);
        Ok(Self {
            mem,
            layout,
            rsp_prod_pvt: rsp_prod,
            rsp_published: rsp_prod,
            req_cons: rsp_prod,
            req_prod_seen: rsp_prod,
            _entries: PhantomData,
        })
    }

    /// The ring's geometry.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Number of slots `N`.
    pub fn slots(&self) -> u32 {
        self.layout.slots
    }

    /// The shared memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Request consumer index (`req_cons`).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Private response producer index (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Requests taken but not yet answered: `req_cons - rsp_prod_pvt`.
    pub fn outstanding(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Number of requests ready to take, after checking the frontend's
    /// `req_prod`: `min(req_prod - req_cons, N - (req_cons - rsp_prod_pvt))`,
    /// except that a `req_prod` beyond that minimum (more than a ring's worth
    /// past `rsp_prod_pvt`, or behind `req_cons`) is reported as
    /// [`RingError::Overflow`] instead of being clamped.
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        // Read barrier: acquire, so entry reads come after this load.
        let prod = self.mem.load_u32_acquire(REQ_PROD_OFFSET);
        let max = self.layout.slots - self.outstanding();
        let avail = checked_unconsumed(prod, self.req_cons, max)?;
        self.req_prod_seen = prod;
        Ok(avail)
    }

    /// `true` if a request is ready.
    pub fn has_unconsumed_requests(&mut self) -> Result<bool, RingError> {
        Ok(self.req_prod_seen != self.req_cons || self.unconsumed_requests()? > 0)
    }

    /// Copy the next request out of the ring, if one is ready. The copy is
    /// the caller's to validate; the shared slot is never read again.
    ///
    /// The shared `req_prod` is re-read (and checked, see
    /// [`unconsumed_requests`](Self::unconsumed_requests)) only once every
    /// request seen by the previous read has been taken.
    pub fn take_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.req_prod_seen == self.req_cons && self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        let req = read_entry(&self.mem, &self.layout, self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Copy `rsp` into the slot of the oldest unanswered request (not yet
    /// visible to the frontend). Fails if every taken request is answered.
    pub fn push_response(&mut self, rsp: Rsp) -> Result<(), RingFull> {
        if self.outstanding() == 0 {
            return Err(RingFull);
        }
        write_entry(&self.mem, &self.layout, self.rsp_prod_pvt, &rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publish pushed responses; `true` if the frontend must be notified.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_published;
        let new = self.rsp_prod_pvt;
        self.rsp_published = new;
        publish_and_check_notify(&self.mem, RSP_PROD_OFFSET, RSP_EVENT_OFFSET, old, new)
    }

    /// Final check before waiting for an event: `true` if requests arrived
    /// (keep working), `false` if it is safe to sleep — the frontend will
    /// notify for the next request.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        // Step 1.
        if self.has_unconsumed_requests()? {
            return Ok(true);
        }
        // Step 2: ask for an event when req_prod passes req_cons.
        self.mem
            .store_u32_relaxed(REQ_EVENT_OFFSET, self.req_cons.wrapping_add(1));
        // Step 3: full barrier between the event store and the re-check load.
        self.mem.fence_full();
        // Step 4.
        self.has_unconsumed_requests()
    }
}
