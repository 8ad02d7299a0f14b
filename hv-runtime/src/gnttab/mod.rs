//! Grant tables v1 (`grant_table_op`, hypercall 20; XEN-PV-ABI §6).
//!
//! Every domain has a [`GrantTable`]: up to [`MAX_GRANT_FRAMES`] shared
//! frames of 512 eight-byte v1 entries that the guest writes and the
//! hypervisor reads and updates atomically, the hypervisor-private *active*
//! state of each entry in use (pin counts, the frame and the grantee seen at
//! the first pin), and a *maptrack* table of the mappings the domain holds
//! of other domains' grants (the handle is the maptrack index).
//!
//! * [`table`] — the state: tables, pins, maptrack, the deferred-release
//!   queue (below [`crate::hv`]).
//! * [`crate::hypercall::gnttab`] decodes the hypercall (batches, per-op
//!   status, continuations).
//! * [`lifecycle`] — liveness, teardown, deferred release, grant frames in
//!   the physmap.
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
//! use guest_abi::abi::GrantRef;
//!
//! let mut w = World::new(2, TEST_PAGES).unwrap();
//! let (a, b) = (w.doms[0], w.doms[1]);
//! let frame = w.spare_frames(a)[0];
//! w.grant(a, GrantRef(8), b, frame, false); // guest a grants a frame to b
//! let mut op = GnttabMapGrantRef {
//!     flags: GNTMAP_DEVICE_MAP, ref_: 8, dom: a.0, ..Default::default()
//! };
//! assert_eq!(w.call(b, GNTTABOP_MAP_GRANT_REF, std::slice::from_mut(&mut op)), 0);
//! assert_eq!(op.status, GNTST_OKAY);
//! assert_eq!(op.dev_bus_addr, frame.0 << 12);
//! assert_ne!(w.entry(a, GrantRef(8)).flags & GTF_WRITING, 0);
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
pub mod ctx;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod lifecycle;
pub mod map;
pub mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transfer;

#[cfg(test)]
mod drop_tests;
#[cfg(test)]
mod prop;
#[cfg(test)]
mod tests;

pub use access::{GrantAccess, GrantMapping, Ro, Rw};
pub(crate) use lifecycle::{add_to_physmap, release_runtime_mapping};
pub use lifecycle::{domain_ended, reap, release_dropped};
pub use table::*;

// What the in-crate tests (`use super::*`) expect at this level.
#[cfg(test)]
#[expect(unused_imports, reason = "not every test module uses every name")]
use {
    crate::hv::Hypervisor,
    crate::machine::{DomId, FrameTable, M2p, Owner},
    guest_abi::abi::gnttab::*,
    hv_cpu::mem::{MachineAddr, MachineMemory, Mfn},
    std::collections::BTreeMap,
};
