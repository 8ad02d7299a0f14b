//! Grant tables over a domain's life: liveness, teardown, the deferred
//! release of dropped runtime mappings, and `XENMAPSPACE_grant_table`.

use guest_abi::abi::Errno;

use super::map;
use super::table::*;
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// Whether `dom` is a live domain with a live grant table.
pub(crate) fn live(hv: &Hypervisor, dom: DomId) -> bool {
    hv.domains.get(&dom).is_some_and(|d| d.shutdown.is_none())
        && hv.gnttab.tables.get(&dom).is_some_and(|t| !t.ended)
}

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
        map::release_mapping(&mut hv.gnt(), dom, h);
    }
    hv.flush_tlbs(dom, hv_cpu::FlushScope::All);
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
    map::release_mapping(&mut hv.gnt(), RUNTIME_DOMID, h.handle);
    true
}

/// Release every runtime mapping dropped since the last call (Note
/// [Deferred release]). Called at the start of every [`super::GrantAccess`]
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
    let Ok(i) = u32::try_from(idx) else {
        return Errno::EINVAL.to_ret();
    };
    if i >= MAX_GRANT_FRAMES {
        return Errno::EINVAL.to_ret();
    }
    let Some(t) = hv.gnttab.tables.get_mut(&dom) else {
        return Errno::EINVAL.to_ret();
    };
    if t.grow(&hv.mem, &mut hv.ft, &hv.m2p, dom, i + 1).is_err() {
        return Errno::ENOMEM.to_ret();
    }
    let Some(&mfn) = t.frames.get(usize::try_from(i).unwrap_or(usize::MAX)) else {
        return Errno::EINVAL.to_ret();
    };
    let _ = hv.m2p.set(&hv.mem, mfn, gpfn);
    if let Some(d) = hv.domains.get_mut(&dom)
        && let Some(slot) = usize::try_from(gpfn).ok().and_then(|p| d.p2m.get_mut(p))
    {
        *slot = mfn;
    }
    0
}
