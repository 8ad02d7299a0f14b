//! Grant-table state: every domain's table, the pins of its entries, the
//! runtime's maptrack and the deferred-release queue. Nothing here needs
//! the hypervisor: [`crate::hv`] holds a [`GnttabSystem`], and the
//! operations that span domains ([`super::map`], [`super::copy`],
//! [`super::transfer`], [`super::access`], [`super::lifecycle`]) sit above it.

use guest_abi::abi::GrantRef;
use std::collections::BTreeMap;

use guest_abi::abi::gnttab::{
    GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GRANT_ENTRIES_V1_PER_FRAME,
    GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING,
};
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};

use std::sync::{Arc, Mutex, PoisonError};

use crate::machine::{AllocError, DomId, FrameTable, M2P_INVALID, M2p, Owner};

/// Maximum grant-table frames per domain (Xen's default is 64; 32 frames =
/// 16384 grants is plenty for PV frontends).
pub const MAX_GRANT_FRAMES: u32 = 32;
/// Grant frames every domain starts with (refs 0 and 1 are pre-filled).
pub const INITIAL_GRANT_FRAMES: u32 = 1;
/// Maximum simultaneous mappings (maptrack handles) per mapping domain.
pub const MAX_MAPTRACK: u32 = 4096;
/// Pins of one kind on one entry (Xen keeps 8-bit counters and refuses to
/// pin a counter whose top bit is set).
pub const PIN_LIMIT: u8 = 0x80;
/// Compare-exchange attempts on a shared entry before giving up on a guest
/// that keeps changing it (`GNTST_general_error`).
pub const SET_STATUS_RETRIES: u32 = 5;
/// The runtime itself: backends in `hv` act as dom0.
pub const RUNTIME_DOMID: DomId = crate::machine::DOM0;
pub use guest_abi::abi::DOMID_SELF;
/// v1 entries per frame.
#[expect(clippy::cast_possible_truncation)] // 512
pub const ENTRIES_PER_FRAME: u32 = GRANT_ENTRIES_V1_PER_FRAME as u32;

/// Pin counts of one active entry, by kind (Xen's `GNTPIN_*` counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    /// Read-only host mappings and read-only copy uses.
    pub host_ro: u8,
    /// Writable host mappings and writable copy uses.
    pub host_rw: u8,
    /// Read-only device (or runtime) mappings.
    pub dev_ro: u8,
    /// Writable device (or runtime) mappings.
    pub dev_rw: u8,
}

impl Pins {
    /// Any pin at all.
    #[must_use]
    pub fn any(self) -> bool {
        self != Self::default()
    }

    /// Any writable pin.
    #[must_use]
    pub fn writable(self) -> bool {
        self.host_rw > 0 || self.dev_rw > 0
    }

    /// Total pins.
    #[must_use]
    pub fn total(self) -> u32 {
        u32::from(self.host_ro)
            + u32::from(self.host_rw)
            + u32::from(self.dev_ro)
            + u32::from(self.dev_rw)
    }

    /// The increment for a host and/or device use.
    #[must_use]
    pub fn incr(host: bool, device: bool, readonly: bool) -> Self {
        let (h, d) = (u8::from(host), u8::from(device));
        if readonly {
            Self {
                host_ro: h,
                dev_ro: d,
                ..Self::default()
            }
        } else {
            Self {
                host_rw: h,
                dev_rw: d,
                ..Self::default()
            }
        }
    }

    pub(crate) fn pairs(self) -> [u8; 4] {
        [self.host_ro, self.host_rw, self.dev_ro, self.dev_rw]
    }

    pub(crate) fn from_pairs(p: [u8; 4]) -> Self {
        Self {
            host_ro: p[0],
            host_rw: p[1],
            dev_ro: p[2],
            dev_rw: p[3],
        }
    }

    /// `self + d`, or `None` if a counter being incremented is at the limit.
    pub(crate) fn add(self, d: Self) -> Option<Self> {
        let (a, b) = (self.pairs(), d.pairs());
        let mut out = [0u8; 4];
        for i in 0..4 {
            if b[i] > 0 && a[i] >= PIN_LIMIT {
                return None;
            }
            out[i] = a[i].checked_add(b[i])?;
        }
        Some(Self::from_pairs(out))
    }

    /// `self - d`, saturating (a runtime bug otherwise; logged).
    pub(crate) fn sub(self, d: Self) -> Self {
        let (a, b) = (self.pairs(), d.pairs());
        let mut out = [0u8; 4];
        for i in 0..4 {
            out[i] = a[i].checked_sub(b[i]).unwrap_or_else(|| {
                tracing::error!("grant pin count underflow");
                0
            });
        }
        Self::from_pairs(out)
    }
}

/// Hypervisor-private state of a pinned grant entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// Pin counts.
    pub pins: Pins,
    /// The domain using the grant (checked at the first pin).
    pub grantee: DomId,
    /// The frame granted (read from the entry at the first pin).
    pub frame: Mfn,
}

/// One mapping a domain holds of another domain's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// Granting domain.
    pub granter: DomId,
    /// Grant ref in the granter's table.
    pub gref: GrantRef,
    /// `GNTMAP_*` still in force (host/device parts drop as they are unmapped).
    pub flags: u32,
    /// Frame mapped.
    pub frame: Mfn,
    /// Machine address of the L1 entry of a host mapping.
    pub pte: Option<MachineAddr>,
}

/// One domain's grant table.
#[derive(Debug, Default)]
pub struct GrantTable {
    pub(crate) frames: Vec<Mfn>,
    pub(crate) active: BTreeMap<u32, Active>,
    pub(crate) maptrack: Vec<Option<MapEntry>>,
    /// Generation of each maptrack slot's current (or last) mapping; a
    /// handle plus its generation names one mapping even after the handle
    /// is reused (Note [Deferred release]).
    pub(crate) generations: Vec<u64>,
    /// Next generation handed out (never reused; 2^64 maps never happen).
    pub(crate) next_generation: u64,
    pub(crate) free_handles: Vec<u32>,
    pub(crate) live_maps: u32,
    pub(crate) ended: bool,
}

impl GrantTable {
    /// Shared frames, in table order.
    #[must_use]
    pub fn frames(&self) -> &[Mfn] {
        &self.frames
    }

    /// Number of v1 entries.
    #[must_use]
    pub fn nr_entries(&self) -> u32 {
        u32::try_from(self.frames.len()).unwrap_or(0) * ENTRIES_PER_FRAME
    }

    /// Machine address of entry `gref`, if it exists.
    #[must_use]
    pub fn entry_addr(&self, gref: GrantRef) -> Option<MachineAddr> {
        let f = self
            .frames
            .get(usize::try_from(gref.0 / ENTRIES_PER_FRAME).ok()?)?;
        Some(MachineAddr(
            f.addr().0 + u64::from(gref.0 % ENTRIES_PER_FRAME) * 8,
        ))
    }

    /// The active state of `gref`, if pinned.
    #[must_use]
    pub fn active(&self, gref: GrantRef) -> Option<&Active> {
        self.active.get(&gref.0)
    }

    /// Every pinned entry.
    pub fn actives(&self) -> impl Iterator<Item = (u32, &Active)> {
        self.active.iter().map(|(&r, a)| (r, a))
    }

    /// The mapping behind `handle`, if live.
    #[must_use]
    pub fn mapping(&self, handle: u32) -> Option<&MapEntry> {
        self.maptrack
            .get(usize::try_from(handle).ok()?)
            .and_then(Option::as_ref)
    }

    /// Every live mapping with its handle.
    pub fn mappings(&self) -> impl Iterator<Item = (u32, &MapEntry)> {
        self.maptrack
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((u32::try_from(i).ok()?, m.as_ref()?)))
    }

    /// Whether the domain has ended (its grants are revoked).
    #[must_use]
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The generation of live mapping `handle` (Note [Deferred release]).
    #[must_use]
    pub fn generation(&self, handle: u32) -> Option<u64> {
        self.mapping(handle)?;
        self.generations.get(usize::try_from(handle).ok()?).copied()
    }

    pub(crate) fn has_free_handle(&self) -> bool {
        self.live_maps < MAX_MAPTRACK
    }

    pub(crate) fn put_handle(&mut self, m: MapEntry) -> Option<u32> {
        if !self.has_free_handle() {
            return None;
        }
        let h = match self.free_handles.pop() {
            Some(h) => h,
            None => {
                let h = u32::try_from(self.maptrack.len()).ok()?;
                self.maptrack.push(None);
                self.generations.push(0);
                h
            }
        };
        let i = usize::try_from(h).ok()?;
        *self.generations.get_mut(i)? = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        *self.maptrack.get_mut(i)? = Some(m);
        self.live_maps += 1;
        Some(h)
    }

    pub(crate) fn drop_handle(&mut self, h: u32) {
        if let Some(slot) = usize::try_from(h)
            .ok()
            .and_then(|i| self.maptrack.get_mut(i))
            && slot.take().is_some()
        {
            self.live_maps -= 1;
            self.free_handles.push(h);
        }
    }

    /// Grow to `want` frames (never shrinks).
    pub(crate) fn grow(
        &mut self,
        mem: &MachineMemory,
        ft: &mut FrameTable,
        m2p: &M2p,
        dom: DomId,
        want: u32,
    ) -> Result<(), AllocError> {
        while self.frames.len() < usize::try_from(want).unwrap_or(0) {
            let mfn = ft.alloc(mem, Owner::Dom(dom))?;
            if let Some(p) = ft.get_mut(mfn) {
                // Shared hypervisor page: mappable (writable) by its owner,
                // never freed, transferred or retyped by it.
                p.xen_heap = true;
            }
            let _ = m2p.set(mem, mfn, M2P_INVALID);
            self.frames.push(mfn);
        }
        Ok(())
    }
}

/// Every domain's grant table, behind the hypervisor's lock.
#[derive(Debug, Default)]
pub struct GnttabSystem {
    pub(crate) tables: BTreeMap<DomId, GrantTable>,
    /// Runtime mappings dropped without `unmap_grant`, waiting for
    /// [`release_dropped`] (Note [Deferred release]).
    pub(crate) releases: ReleaseQueue,
}

impl GnttabSystem {
    /// The table of `dom`.
    #[must_use]
    pub fn table(&self, dom: DomId) -> Option<&GrantTable> {
        self.tables.get(&dom)
    }

    pub(crate) fn table_mut(&mut self, dom: DomId) -> Option<&mut GrantTable> {
        self.tables.get_mut(&dom)
    }

    /// Runtime mappings dropped but not yet released (Note [Deferred
    /// release]).
    #[must_use]
    pub fn pending_releases(&self) -> usize {
        self.releases.len()
    }

    /// The runtime's own table (maptrack only).
    pub(crate) fn runtime_table(&mut self) -> &mut GrantTable {
        self.tables.entry(RUNTIME_DOMID).or_default()
    }

    /// Create `dom`'s table with [`INITIAL_GRANT_FRAMES`] frames and the
    /// reserved entries the domain builder pre-fills (XEN-PV-ABI §6.2): ref
    /// 0 grants the console ring, ref 1 the xenstore ring, both to the
    /// runtime (dom0), whose backends serve them.
    ///
    /// # Errors
    /// Out of machine memory.
    pub fn add_domain(
        &mut self,
        mem: &MachineMemory,
        ft: &mut FrameTable,
        m2p: &M2p,
        dom: DomId,
        console: Mfn,
        store: Mfn,
    ) -> Result<(), AllocError> {
        let mut t = GrantTable::default();
        t.grow(mem, ft, m2p, dom, INITIAL_GRANT_FRAMES)?;
        for (gref, frame) in [
            (GNTTAB_RESERVED_CONSOLE, console),
            (GNTTAB_RESERVED_XENSTORE, store),
        ] {
            if let (Some(at), Ok(f)) = (t.entry_addr(GrantRef(gref)), u32::try_from(frame.0)) {
                let _ = mem.write_u32(MachineAddr(at.0 + 4), f);
                let _ = mem.write_u32(at, u32::from(GTF_PERMIT_ACCESS));
            }
        }
        self.tables.insert(dom, t);
        Ok(())
    }
}

/// Resolve `DOMID_SELF`.
pub(crate) fn resolve(dom: DomId, caller: DomId) -> DomId {
    dom.resolve(caller)
}

// ---- the shared entry (Note [Grant pinning]) -------------------------------

/// Why a grant could not be pinned.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum PinError {
    /// The ref is past the end of the table.
    #[error("grant ref {0} is past the end of the table")]
    BadRef(u32),
    /// The entry is pinned by another domain.
    #[error("grant ref {gref} is in use by domain {by}")]
    OtherGrantee {
        /// Ref.
        gref: GrantRef,
        /// Domain using it.
        by: DomId,
    },
    /// A pin counter is at [`PIN_LIMIT`].
    #[error("grant ref {0} is pinned too many times")]
    Overflow(u32),
    /// The entry does not grant access to this domain.
    #[error(
        "grant ref {gref} does not grant access to domain {to} (flags {flags:#x}, domid {domid})"
    )]
    NotGranted {
        /// Ref.
        gref: GrantRef,
        /// Would-be grantee.
        to: DomId,
        /// Entry flags seen.
        flags: u16,
        /// Entry domid seen.
        domid: u16,
    },
    /// Write access to a read-only grant.
    #[error("grant ref {0} is read-only")]
    ReadOnly(u32),
    /// The guest kept changing the entry.
    #[error("grant ref {0} changed under every compare-exchange")]
    Unstable(u32),
    /// The granted frame is not the granter's.
    #[error("grant ref {gref} names frame {frame:#x}, which the granter does not own")]
    BadFrame {
        /// Ref.
        gref: GrantRef,
        /// Frame named.
        frame: u64,
    },
}

impl PinError {
    /// The `GNTST_*` Xen reports.
    #[must_use]
    pub fn status(&self) -> i16 {
        use guest_abi::abi::gnttab as g;
        match self {
            Self::BadRef(_) => g::GNTST_BAD_GNTREF,
            Self::BadFrame { .. } => g::GNTST_BAD_PAGE,
            _ => g::GNTST_GENERAL_ERROR,
        }
    }
}

/// Set `GTF_reading` (and `GTF_writing`) on the entry at `at`, checking the
/// type and grantee when `first` (Note [Grant pinning]).
pub(crate) fn set_status(
    mem: &MachineMemory,
    at: MachineAddr,
    gref: GrantRef,
    grantee: DomId,
    readonly: bool,
    first: bool,
) -> Result<(), PinError> {
    let unstable = PinError::Unstable(gref.0);
    let mut cur = mem.load_u32_acquire(at).map_err(|_| unstable)?;
    for _ in 0..SET_STATUS_RETRIES {
        let (flags, domid) = split(cur);
        if first && (flags & GTF_TYPE_MASK != GTF_PERMIT_ACCESS || domid != grantee.0) {
            return Err(PinError::NotGranted {
                gref,
                to: grantee,
                flags,
                domid,
            });
        }
        let mut new = flags | GTF_READING;
        if !readonly {
            if flags & GTF_READONLY != 0 {
                return Err(PinError::ReadOnly(gref.0));
            }
            new |= GTF_WRITING;
        }
        let want = (cur & 0xffff_0000) | u32::from(new);
        let seen = mem.cmpxchg_u32(at, cur, want).map_err(|_| unstable)?;
        if seen == cur {
            return Ok(());
        }
        cur = seen;
    }
    Err(unstable)
}

/// Clear the status flags the remaining pins no longer justify (Xen's
/// `reduce_status_for_pin`), with one atomic AND.
pub(crate) fn reduce_status(
    mem: &MachineMemory,
    at: MachineAddr,
    left: Option<Pins>,
    readonly: bool,
) {
    let left = left.unwrap_or_default();
    let mut clear = if left.any() { 0 } else { GTF_READING };
    if !readonly && !left.writable() {
        clear |= GTF_WRITING;
    }
    if clear != 0 {
        // Entries are 8-byte aligned; flags are the low 16 bits.
        let _ = mem.fetch_and_u64(at, !u64::from(clear));
    }
}

pub(crate) fn split(w: u32) -> (u16, u16) {
    (
        u16::try_from(w & 0xffff).unwrap_or(0),
        u16::try_from(w >> 16).unwrap_or(0),
    )
}

/// Pin `gref` of `t` (owned by `granter`) for `grantee` by `incr`; returns
/// the frame. Validates the frame's owner at the first pin.
pub(crate) fn pin(
    mem: &MachineMemory,
    ft: &FrameTable,
    t: &mut GrantTable,
    granter: DomId,
    gref: GrantRef,
    grantee: DomId,
    incr: Pins,
) -> Result<Mfn, PinError> {
    let at = t.entry_addr(gref).ok_or(PinError::BadRef(gref.0))?;
    let act = t.active.get(&gref.0).copied();
    if let Some(a) = act {
        if a.grantee != grantee {
            return Err(PinError::OtherGrantee {
                gref,
                by: a.grantee,
            });
        }
        if a.pins.add(incr).is_none() {
            return Err(PinError::Overflow(gref.0));
        }
    }
    let readonly = !incr.writable();
    let cur = act.map(|a| a.pins);
    if cur.is_none() || (!readonly && !cur.is_some_and(Pins::writable)) {
        set_status(mem, at, gref, grantee, readonly, cur.is_none())?;
    }
    let a = match act {
        Some(a) => a,
        None => {
            let frame = Mfn(u64::from(
                mem.read_u32(MachineAddr(at.0 + 4)).unwrap_or(u32::MAX),
            ));
            let ok = ft
                .get(frame)
                .is_some_and(|p| p.owner == Owner::Dom(granter) && p.count > 0);
            if !ok {
                reduce_status(mem, at, None, readonly);
                return Err(PinError::BadFrame {
                    gref,
                    frame: frame.0,
                });
            }
            Active {
                pins: Pins::default(),
                grantee,
                frame,
            }
        }
    };
    let pins = a.pins.add(incr).ok_or(PinError::Overflow(gref.0))?;
    t.active.insert(gref.0, Active { pins, ..a });
    Ok(a.frame)
}

/// Drop pins taken by [`pin`] and clear status flags accordingly.
pub(crate) fn unpin(mem: &MachineMemory, t: &mut GrantTable, gref: GrantRef, decr: Pins) {
    let Some(a) = t.active.get(&gref.0).copied() else {
        tracing::error!(gref = gref.0, "unpin of an unpinned grant");
        return;
    };
    let pins = a.pins.sub(decr);
    let left = if pins.any() {
        t.active.insert(gref.0, Active { pins, ..a });
        Some(pins)
    } else {
        t.active.remove(&gref.0);
        None
    };
    if let Some(at) = t.entry_addr(gref) {
        reduce_status(mem, at, left, !decr.writable());
    }
}

// ---- domain lifecycle ------------------------------------------------------

/// One runtime mapping: its maptrack handle and the generation the slot
/// had when the mapping was made (a reused handle has a newer generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaptrackHandle {
    /// Index in the runtime's maptrack.
    pub handle: u32,
    /// Generation of the slot ([`super::GrantTable::generation`]).
    pub generation: u64,
}

/// Handles of runtime mappings dropped unreleased, shared by every
/// [`GrantMapping`] with the [`super::GnttabSystem`] that drains it (Note
/// [Deferred release]). Cloning shares the queue.
#[derive(Clone, Default)]
pub(crate) struct ReleaseQueue(Arc<Mutex<Vec<MaptrackHandle>>>);

impl std::fmt::Debug for ReleaseQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseQueue")
            .field("pending", &self.len())
            .finish()
    }
}

impl ReleaseQueue {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MaptrackHandle>> {
        // Nothing can panic while the lock is held (a push or a take), but
        // a poisoned queue is still a valid Vec: keep using it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `h` (called from `Drop`: a push under a short lock).
    pub(crate) fn push(&self, h: MaptrackHandle) {
        self.lock().push(h);
    }

    /// Take every queued handle.
    pub(crate) fn take(&self) -> Vec<MaptrackHandle> {
        let mut q = self.lock();
        if q.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut *q)
        }
    }

    /// Queued handles.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether `self` and `other` are the same queue.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
