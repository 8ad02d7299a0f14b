//! Grant tables v1 (`grant_table_op`, hypercall 20; XEN-PV-ABI §6).
//!
//! Every domain has a [`GrantTable`]: up to [`MAX_GRANT_FRAMES`] shared
//! frames of 512 eight-byte v1 entries that the guest writes and the
//! hypervisor reads and updates atomically, the hypervisor-private *active*
//! state of each entry in use (pin counts, the frame and the grantee seen at
//! the first pin), and a *maptrack* table of the mappings the domain holds
//! of other domains' grants (the handle is the maptrack index).
//!
//! * [`ops`] decodes the hypercall (batches, per-op status, continuations).
//! * [`map`] — `map_grant_ref`, `unmap_grant_ref`, `unmap_and_replace`.
//! * [`copy`] — `GNTTABOP_copy`; [`transfer`] — page flipping.
//! * [`access`] — [`GrantAccess`]: the runtime's own backends (dom0) map
//!   and copy frontends' grants with typed, bounds-checked access.
//! * `testing` / `fuzzing` (feature `testing`) — a small world of domains
//!   for tests, benchmarks and the `gnttab_ops` fuzz target.
//!
//! ```
//! use hv_runtime::gnttab::testing::{TEST_PAGES, World};
//! use guest_abi::abi::gnttab::*;
//!
//! let mut w = World::new(2, TEST_PAGES).unwrap();
//! let (a, b) = (w.doms[0], w.doms[1]);
//! let frame = w.spare_frames(a)[0];
//! w.grant(a, 8, b, frame, false); // guest a grants a frame to b
//! let mut op = GnttabMapGrantRef {
//!     flags: GNTMAP_DEVICE_MAP, ref_: 8, dom: a, ..Default::default()
//! };
//! assert_eq!(w.call(b, GNTTABOP_MAP_GRANT_REF, std::slice::from_mut(&mut op)), 0);
//! assert_eq!(op.status, GNTST_OKAY);
//! assert_eq!(op.dev_bus_addr, frame.0 << 12);
//! assert_ne!(w.entry(a, 8).flags & GTF_WRITING, 0);
//! ```
//!
//! Status codes follow what Xen returns, which is sometimes less specific
//! than the `GNTST_*` names suggest: an entry that does not grant access to
//! the caller, a write to a read-only grant, a grant pinned by another
//! domain, too many pins and a frame that cannot take the needed type are
//! all `GNTST_general_error`; `GNTST_bad_gntref` is a ref past the table (or
//! a map asking for neither host nor device mapping); `GNTST_bad_page` a
//! granted frame the granter does not own, or a transfer of a frame that is
//! not the sender's to give; `GNTST_no_space` the maptrack limit. One
//! deliberate difference: a `host_addr` (or `new_addr`) that names no L1
//! entry of the caller is `GNTST_bad_virt_addr` (XEN-PV-ABI §6.5: "host_addr
//! unusable") where Xen says `general_error`. `GNTST_no_device_space` is
//! never returned (there is no IOMMU). Cache attributes (`GTF_PWT/PCD/PAT`)
//! are ignored, as Xen ignores them for RAM.
//!
//! Note [Grant pinning]: a grant is *pinned* while a mapping, a device
//! mapping, a copy or a runtime backend uses it. The first pin checks the
//! shared entry (type `permit_access`, `domid` = the user) and records the
//! frame and the grantee in the active entry; later pins trust the active
//! entry, except that the first *writable* pin rechecks `GTF_readonly`. The
//! checks and the setting of `GTF_reading` (every pin) / `GTF_writing`
//! (writable pins) are one atomic compare-exchange of the entry's
//! flags+domid word, read with one atomic load and retried at most
//! [`SET_STATUS_RETRIES`] times against a guest that keeps changing it. When
//! the last pin (or the last writable pin) goes, the flag is cleared with an
//! atomic AND. So `GTF_reading` is set iff the entry is pinned and
//! `GTF_writing` iff it has a writable pin — the guest's protocol for
//! revoking access (`cmpxchg(flags → 0)` only while both are clear) is then
//! safe. Pin counts are bounded by [`PIN_LIMIT`] per kind.
//!
//! Note [Grant references]: the frame behind a grant is protected with the
//! frame table's ordinary references (XEN-PV-ABI §2.4), taken through
//! [`crate::mm`]: a host mapping is a real L1 entry, so it holds a general
//! reference and, if writable, a writable type reference exactly like any
//! other L1 entry (the granter cannot make the frame a page table while it
//! is mapped writable); a device mapping or a runtime mapping holds the same
//! references without an entry; a copy holds them for its duration. A
//! transfer needs the frame to have *no* reference but its allocation, so a
//! mapped or pinned frame can never change owner.
//!
//! Note [Deferred release]: a runtime mapping ([`GrantMapping`]) cannot
//! borrow the hypervisor for its life, so dropping one cannot unmap it on
//! the spot. Instead its `Drop` pushes a [`MaptrackHandle`] (maptrack index
//! plus the generation the slot had when the mapping was made) onto a queue
//! shared with [`GnttabSystem`] — a short mutex-held push, never a panic —
//! and [`release_dropped`] later releases each queued mapping through the
//! same path as [`GrantAccess::unmap_grant`] (device references dropped,
//! pins decremented, `GTF_reading` / `GTF_writing` cleared when the last
//! pin, or last writable pin, goes). The queue is drained at the start of
//! every [`GrantAccess`] operation, of every `grant_table_op` hypercall,
//! and by [`reap`], which the run loop calls on every pass. So a dropped
//! mapping is released no later than the next grant operation or the end
//! of the current run-loop pass, whichever comes first; until then it stays
//! pinned exactly as if it were still held. A handle is released only if
//! the slot still holds the same generation: a mapping already released
//! (by `unmap_grant`, which marks it so its drop queues nothing) or a slot
//! since reused by a newer mapping is left alone. A granter that ended
//! meanwhile changes nothing: mappings of its grants stay valid until
//! released, and the release unpins its (revoked) table as usual.

pub mod access;
pub mod copy;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod map;
pub mod ops;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transfer;

#[cfg(test)]
mod drop_tests;
#[cfg(test)]
mod prop;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use guest_abi::abi::gnttab::{
    GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GRANT_ENTRIES_V1_PER_FRAME,
    GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING,
};
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};

pub use access::{GrantAccess, GrantMapping, MaptrackHandle, Ro, Rw};
pub use ops::grant_table_op;

use access::ReleaseQueue;

use crate::hv::Hypervisor;
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
pub const RUNTIME_DOMID: DomId = 0;
/// `DOMID_SELF`.
pub const DOMID_SELF: DomId = 0x7ff0;
/// v1 entries per frame.
#[allow(clippy::cast_possible_truncation)] // 512
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

    fn pairs(self) -> [u8; 4] {
        [self.host_ro, self.host_rw, self.dev_ro, self.dev_rw]
    }

    fn from_pairs(p: [u8; 4]) -> Self {
        Self {
            host_ro: p[0],
            host_rw: p[1],
            dev_ro: p[2],
            dev_rw: p[3],
        }
    }

    /// `self + d`, or `None` if a counter being incremented is at the limit.
    fn add(self, d: Self) -> Option<Self> {
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
    fn sub(self, d: Self) -> Self {
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
    pub gref: u32,
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
    frames: Vec<Mfn>,
    active: BTreeMap<u32, Active>,
    maptrack: Vec<Option<MapEntry>>,
    /// Generation of each maptrack slot's current (or last) mapping; a
    /// handle plus its generation names one mapping even after the handle
    /// is reused (Note [Deferred release]).
    generations: Vec<u64>,
    /// Next generation handed out (never reused; 2^64 maps never happen).
    next_generation: u64,
    free_handles: Vec<u32>,
    live_maps: u32,
    ended: bool,
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
    pub fn entry_addr(&self, gref: u32) -> Option<MachineAddr> {
        let f = self
            .frames
            .get(usize::try_from(gref / ENTRIES_PER_FRAME).ok()?)?;
        Some(MachineAddr(
            f.addr().0 + u64::from(gref % ENTRIES_PER_FRAME) * 8,
        ))
    }

    /// The active state of `gref`, if pinned.
    #[must_use]
    pub fn active(&self, gref: u32) -> Option<&Active> {
        self.active.get(&gref)
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

    fn has_free_handle(&self) -> bool {
        self.live_maps < MAX_MAPTRACK
    }

    fn put_handle(&mut self, m: MapEntry) -> Option<u32> {
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

    fn drop_handle(&mut self, h: u32) {
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
    fn grow(
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
    tables: BTreeMap<DomId, GrantTable>,
    /// Runtime mappings dropped without `unmap_grant`, waiting for
    /// [`release_dropped`] (Note [Deferred release]).
    releases: ReleaseQueue,
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
            if let (Some(at), Ok(f)) = (t.entry_addr(gref), u32::try_from(frame.0)) {
                let _ = mem.write_u32(MachineAddr(at.0 + 4), f);
                let _ = mem.write_u32(at, u32::from(GTF_PERMIT_ACCESS));
            }
        }
        self.tables.insert(dom, t);
        Ok(())
    }
}

/// Whether `dom` is a live domain with a live grant table.
pub(crate) fn live(hv: &Hypervisor, dom: DomId) -> bool {
    hv.domains.get(&dom).is_some_and(|d| d.shutdown.is_none())
        && hv.gnttab.tables.get(&dom).is_some_and(|t| !t.ended)
}

/// Resolve `DOMID_SELF`.
pub(crate) fn resolve(dom: DomId, caller: DomId) -> DomId {
    if dom == DOMID_SELF { caller } else { dom }
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
        gref: u32,
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
        gref: u32,
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
        gref: u32,
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
fn set_status(
    mem: &MachineMemory,
    at: MachineAddr,
    gref: u32,
    grantee: DomId,
    readonly: bool,
    first: bool,
) -> Result<(), PinError> {
    let unstable = PinError::Unstable(gref);
    let mut cur = mem.load_u32_acquire(at).map_err(|_| unstable)?;
    for _ in 0..SET_STATUS_RETRIES {
        let (flags, domid) = split(cur);
        if first && (flags & GTF_TYPE_MASK != GTF_PERMIT_ACCESS || domid != grantee) {
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
                return Err(PinError::ReadOnly(gref));
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
fn reduce_status(mem: &MachineMemory, at: MachineAddr, left: Option<Pins>, readonly: bool) {
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

fn split(w: u32) -> (u16, u16) {
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
    gref: u32,
    grantee: DomId,
    incr: Pins,
) -> Result<Mfn, PinError> {
    let at = t.entry_addr(gref).ok_or(PinError::BadRef(gref))?;
    let act = t.active.get(&gref).copied();
    if let Some(a) = act {
        if a.grantee != grantee {
            return Err(PinError::OtherGrantee {
                gref,
                by: a.grantee,
            });
        }
        if a.pins.add(incr).is_none() {
            return Err(PinError::Overflow(gref));
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
    let pins = a.pins.add(incr).ok_or(PinError::Overflow(gref))?;
    t.active.insert(gref, Active { pins, ..a });
    Ok(a.frame)
}

/// Drop pins taken by [`pin`] and clear status flags accordingly.
pub(crate) fn unpin(mem: &MachineMemory, t: &mut GrantTable, gref: u32, decr: Pins) {
    let Some(a) = t.active.get(&gref).copied() else {
        tracing::error!(gref, "unpin of an unpinned grant");
        return;
    };
    let pins = a.pins.sub(decr);
    let left = if pins.any() {
        t.active.insert(gref, Active { pins, ..a });
        Some(pins)
    } else {
        t.active.remove(&gref);
        None
    };
    if let Some(at) = t.entry_addr(gref) {
        reduce_status(mem, at, left, !decr.writable());
    }
}

// ---- domain lifecycle ------------------------------------------------------

/// A domain has ended: release every mapping it holds (host entries still
/// in its tables are cleared, references and pins dropped) and revoke its
/// grants (no new map, copy or transfer reaches it; existing mappings of its
/// frames by others stay valid until they are unmapped, holding the frames).
pub fn domain_ended(hv: &mut Hypervisor, dom: DomId) {
    let Some(t) = hv.gnttab.tables.get_mut(&dom) else {
        return;
    };
    if t.ended {
        return;
    }
    t.ended = true;
    let handles: Vec<u32> = t.mappings().map(|(h, _)| h).collect();
    for h in handles {
        map::release_mapping(hv, dom, h);
    }
    map::flush(hv, dom, hv_cpu::FlushScope::All);
}

/// Release the runtime mapping `h` if it is still the mapping `h` names
/// (same handle *and* generation); a stale handle — its mapping already
/// released, the slot perhaps reused by a newer one — is ignored. Returns
/// whether a mapping was released. Same path as `unmap_grant`.
pub(crate) fn release_runtime_mapping(hv: &mut Hypervisor, h: MaptrackHandle) -> bool {
    let current = hv
        .gnttab
        .table(RUNTIME_DOMID)
        .and_then(|t| t.generation(h.handle));
    if current != Some(h.generation) {
        tracing::debug!(?h, ?current, "stale runtime grant handle ignored");
        return false;
    }
    map::release_mapping(hv, RUNTIME_DOMID, h.handle);
    true
}

/// Release every runtime mapping dropped since the last call (Note
/// [Deferred release]). Called at the start of every [`GrantAccess`]
/// operation, of every `grant_table_op` hypercall and by [`reap`].
pub fn release_dropped(hv: &mut Hypervisor) {
    for h in hv.gnttab.releases.take() {
        release_runtime_mapping(hv, h);
    }
}

/// Release the runtime mappings dropped since the last pass
/// ([`release_dropped`]) and end the grant tables of every domain that has
/// shut down (called by the run loop on every pass).
pub fn reap(hv: &mut Hypervisor) {
    release_dropped(hv);
    let ended: Vec<DomId> = hv
        .domains
        .values()
        .filter(|d| d.shutdown.is_some())
        .map(|d| d.id)
        .filter(|id| hv.gnttab.tables.get(id).is_some_and(|t| !t.ended))
        .collect();
    for dom in ended {
        domain_ended(hv, dom);
    }
}

/// `XENMEM_add_to_physmap` with `XENMAPSPACE_grant_table`: grant frame
/// `idx` of `dom` (grown to `idx + 1` frames if needed) is recorded at
/// `gpfn` in the M2P and the runtime's p2m record. Xen offers this to
/// translated guests only; here a PV guest may use it too (it then maps the
/// MFN from `setup_table` itself). Bit 31 of `idx` (v2 status frames) is
/// refused. Returns 0 or a negative errno.
pub(crate) fn add_to_physmap(hv: &mut Hypervisor, dom: DomId, idx: u64, gpfn: u64) -> i64 {
    const EINVAL: i64 = -22;
    const ENOMEM: i64 = -12;
    let Ok(i) = u32::try_from(idx) else {
        return EINVAL;
    };
    if i >= MAX_GRANT_FRAMES {
        return EINVAL;
    }
    let Some(t) = hv.gnttab.tables.get_mut(&dom) else {
        return EINVAL;
    };
    if t.grow(&hv.mem, &mut hv.ft, &hv.m2p, dom, i + 1).is_err() {
        return ENOMEM;
    }
    let Some(&mfn) = t.frames.get(usize::try_from(i).unwrap_or(usize::MAX)) else {
        return EINVAL;
    };
    let _ = hv.m2p.set(&hv.mem, mfn, gpfn);
    if let Some(d) = hv.domains.get_mut(&dom)
        && let Some(slot) = usize::try_from(gpfn).ok().and_then(|p| d.p2m.get_mut(p))
    {
        *slot = mfn;
    }
    0
}
