//! Dropping a runtime [`GrantMapping`] releases it at the next grant
//! operation or run-loop pass (Note [Deferred release]).

use guest_abi::abi::GrantRef;

use guest_abi::abi::gnttab::*;
use hv_cpu::mem::Mfn;

use super::testing::{TEST_PAGES, World};
use super::*;

fn world() -> World {
    World::new(3, TEST_PAGES).unwrap()
}

fn pins(w: &World, dom: DomId, gref: u32) -> Pins {
    w.hv.gnttab
        .table(dom)
        .unwrap()
        .active(GrantRef(gref))
        .map(|a| a.pins)
        .unwrap_or_default()
}

fn runtime_maps(w: &World) -> usize {
    w.hv.gnttab
        .table(RUNTIME_DOMID)
        .map_or(0, |t| t.mappings().count())
}

/// (general count, type count) of `f`.
fn refs(w: &World, f: Mfn) -> (u32, u32) {
    let p = w.hv.ft.get(f).unwrap();
    (p.count, p.type_count)
}

fn transfer(w: &mut World, sender: DomId, mfn: Mfn, receiver: DomId, gref: u32) -> i16 {
    let mut op = GnttabTransfer {
        mfn: mfn.0,
        domid: receiver.0,
        ref_: gref,
        ..Default::default()
    };
    assert_eq!(
        w.call(sender, GNTTABOP_TRANSFER, std::slice::from_mut(&mut op)),
        0
    );
    op.status
}

#[test]
fn dropped_rw_mapping_is_released_by_reap_and_the_frame_can_be_revoked_and_transferred() {
    let mut w = world();
    let (a, r) = (w.doms[0], w.doms[1]);
    let (_, f) = w.spare_pfns(a)[0];
    let before = refs(&w, f);
    w.grant(a, GrantRef(40), RUNTIME_DOMID, f, false);
    let m = w.hv.map_grant_rw(a, GrantRef(40)).unwrap();
    m.write(&w.hv.mem, 0, b"ring").unwrap();
    assert_eq!(
        w.entry(a, GrantRef(40)).flags,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    drop(m);
    // Deferred: still pinned exactly as if held, until the next pass.
    assert_eq!(w.hv.gnttab.pending_releases(), 1);
    assert_eq!(pins(&w, a, 40).dev_rw, 1);
    assert!(!w.end_access(a, GrantRef(40)));
    w.check_invariants(true).unwrap();
    reap(&mut w.hv);
    assert_eq!(w.hv.gnttab.pending_releases(), 0);
    assert!(w.hv.gnttab.table(a).unwrap().active(GrantRef(40)).is_none());
    assert_eq!(w.entry(a, GrantRef(40)).flags, GTF_PERMIT_ACCESS);
    assert_eq!(runtime_maps(&w), 0);
    assert_eq!(refs(&w, f).0, before.0);
    assert_eq!(refs(&w, f).1, before.1);
    w.check_invariants(true).unwrap();
    // The granter revokes the grant and gives the frame away.
    assert!(w.end_access(a, GrantRef(40)));
    w.hv.domains.get_mut(&r).unwrap().max_pages += 1;
    w.offer_transfer(r, GrantRef(50), a, 150);
    assert_eq!(transfer(&mut w, a, f, r, 50), GNTST_OKAY);
    assert_eq!(w.hv.ft.get(f).unwrap().owner, crate::machine::Owner::Dom(r));
    w.check_invariants(true).unwrap();
}

#[test]
fn dropped_ro_mapping_is_released_by_reap() {
    let mut w = world();
    let a = w.doms[0];
    let f = w.spare_frames(a)[0];
    let before = refs(&w, f);
    w.grant(a, GrantRef(41), RUNTIME_DOMID, f, true);
    let m = w.hv.map_grant_ro(a, GrantRef(41)).unwrap();
    assert_eq!(
        w.entry(a, GrantRef(41)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING
    );
    assert_eq!(refs(&w, f).0, before.0 + 1);
    drop(m);
    assert_eq!(pins(&w, a, 41).dev_ro, 1);
    reap(&mut w.hv);
    assert!(w.hv.gnttab.table(a).unwrap().active(GrantRef(41)).is_none());
    assert_eq!(
        w.entry(a, GrantRef(41)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY
    );
    assert_eq!(refs(&w, f), before);
    assert_eq!(runtime_maps(&w), 0);
    assert!(w.end_access(a, GrantRef(41)));
    w.check_invariants(true).unwrap();
}

#[test]
fn dropped_mapping_is_released_by_the_next_grant_access_call() {
    let mut w = world();
    let a = w.doms[0];
    let [f, g] = [w.spare_frames(a)[0], w.spare_frames(a)[1]];
    w.grant(a, GrantRef(42), RUNTIME_DOMID, f, false);
    w.grant(a, GrantRef(43), RUNTIME_DOMID, g, false);
    drop(w.hv.map_grant_rw(a, GrantRef(42)).unwrap());
    assert_eq!(pins(&w, a, 42).dev_rw, 1);
    // A copy of another grant releases it first.
    w.hv.copy_to_grant(a, GrantRef(43), 0, b"x").unwrap();
    assert!(!pins(&w, a, 42).any());
    assert_eq!(w.entry(a, GrantRef(42)).flags, GTF_PERMIT_ACCESS);
    // So does a map (of the same grant, here).
    drop(w.hv.map_grant_ro(a, GrantRef(42)).unwrap());
    let m = w.hv.map_grant_rw(a, GrantRef(42)).unwrap();
    assert_eq!(
        pins(&w, a, 42),
        Pins {
            dev_rw: 1,
            ..Pins::default()
        }
    );
    w.hv.unmap_grant(m);
    assert!(!pins(&w, a, 42).any());
    w.check_invariants(true).unwrap();
}

#[test]
fn dropped_mapping_is_released_before_the_granters_next_grant_hypercall() {
    let mut w = world();
    let (a, r) = (w.doms[0], w.doms[1]);
    let (_, f) = w.spare_pfns(a)[0];
    w.grant(a, GrantRef(44), RUNTIME_DOMID, f, false);
    drop(w.hv.map_grant_rw(a, GrantRef(44)).unwrap());
    assert!(!w.end_access(a, GrantRef(44)));
    // The frame is still referenced: a transfer would be bad_page. The
    // hypercall drains the queue first, so once the guest has revoked the
    // grant (possible once released) the transfer goes through.
    let mut q = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    assert_eq!(
        w.call(a, GNTTABOP_QUERY_SIZE, std::slice::from_mut(&mut q)),
        0
    );
    assert!(w.end_access(a, GrantRef(44)));
    w.hv.domains.get_mut(&r).unwrap().max_pages += 1;
    w.offer_transfer(r, GrantRef(50), a, 150);
    assert_eq!(transfer(&mut w, a, f, r, 50), GNTST_OKAY);
    w.check_invariants(true).unwrap();
}

#[test]
fn explicit_unmap_then_drop_does_not_double_release() {
    let mut w = world();
    let a = w.doms[0];
    let f = w.spare_frames(a)[0];
    w.grant(a, GrantRef(45), RUNTIME_DOMID, f, false);
    let m1 = w.hv.map_grant_rw(a, GrantRef(45)).unwrap();
    let m2 = w.hv.map_grant_rw(a, GrantRef(45)).unwrap();
    assert_eq!(pins(&w, a, 45).dev_rw, 2);
    // unmap_grant consumes (and so drops) m1: nothing may be queued.
    w.hv.unmap_grant(m1);
    assert_eq!(w.hv.gnttab.pending_releases(), 0);
    assert_eq!(pins(&w, a, 45).dev_rw, 1);
    reap(&mut w.hv);
    reap(&mut w.hv);
    assert_eq!(pins(&w, a, 45).dev_rw, 1);
    assert_eq!(
        w.entry(a, GrantRef(45)).flags,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    // m1's handle is reused by a new mapping, which reap must not touch.
    let m3 = w.hv.map_grant_ro(a, GrantRef(45)).unwrap();
    reap(&mut w.hv);
    assert_eq!(pins(&w, a, 45).dev_ro, 1);
    assert_eq!(pins(&w, a, 45).dev_rw, 1);
    w.check_invariants(true).unwrap();
    w.hv.unmap_grant(m2);
    drop(m3);
    reap(&mut w.hv);
    assert!(!pins(&w, a, 45).any());
    assert_eq!(w.entry(a, GrantRef(45)).flags, GTF_PERMIT_ACCESS);
    assert_eq!(runtime_maps(&w), 0);
    w.check_invariants(true).unwrap();
}

enum Held {
    Ro(GrantMapping<Ro>),
    Rw(GrantMapping<Rw>),
}

impl Held {
    fn gref(&self) -> u32 {
        match self {
            Self::Ro(m) => m.gref(),
            Self::Rw(m) => m.gref(),
        }
    }
}

/// Pins the held mappings justify, per gref.
fn expected(held: &[Held]) -> BTreeMap<u32, Pins> {
    let mut out: BTreeMap<u32, Pins> = BTreeMap::new();
    for h in held {
        let e = out.entry(h.gref()).or_default();
        match h {
            Held::Ro(_) => e.dev_ro += 1,
            Held::Rw(_) => e.dev_rw += 1,
        }
    }
    out
}

#[test]
fn many_mappings_dropped_in_any_order_are_all_released() {
    let mut w = world();
    let a = w.doms[0];
    let frames = w.spare_frames(a);
    let grefs: Vec<u32> = (60..68).collect();
    for (i, &r) in grefs.iter().enumerate() {
        w.grant(a, GrantRef(r), RUNTIME_DOMID, frames[i], false);
    }
    let mut held = Vec::new();
    for i in 0..48u32 {
        let r = grefs[(i as usize * 5) % grefs.len()];
        held.push(if i % 3 == 0 {
            Held::Ro(w.hv.map_grant_ro(a, GrantRef(r)).unwrap())
        } else {
            Held::Rw(w.hv.map_grant_rw(a, GrantRef(r)).unwrap())
        });
    }
    // A fixed pseudo-random order; several drops between some drains.
    let mut x: u32 = 0x2545_f491;
    let mut step = 0;
    while !held.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        drop(held.swap_remove(x as usize % held.len()));
        step += 1;
        if step % 3 != 0 {
            continue;
        }
        reap(&mut w.hv);
        let want = expected(&held);
        for &r in &grefs {
            assert_eq!(
                pins(&w, a, r),
                want.get(&r).copied().unwrap_or_default(),
                "gref {r}"
            );
        }
        w.check_invariants(true).unwrap();
    }
    reap(&mut w.hv);
    assert_eq!(runtime_maps(&w), 0);
    for &r in &grefs {
        assert!(!pins(&w, a, r).any());
        assert_eq!(w.entry(a, GrantRef(r)).flags, GTF_PERMIT_ACCESS);
        assert!(w.end_access(a, GrantRef(r)));
    }
    w.check_invariants(true).unwrap();
}

#[test]
fn stale_handle_cannot_release_a_newer_mapping() {
    let mut w = world();
    let a = w.doms[0];
    let [f, g] = [w.spare_frames(a)[0], w.spare_frames(a)[1]];
    w.grant(a, GrantRef(46), RUNTIME_DOMID, f, false);
    w.grant(a, GrantRef(47), RUNTIME_DOMID, g, false);
    let old = w.hv.map_grant_rw(a, GrantRef(46)).unwrap();
    // The mapping is released behind the handle's back (as a runtime
    // teardown would), and a new mapping takes the same maptrack slot.
    map::release_mapping(&mut w.hv.gnt(), RUNTIME_DOMID, old.handle().handle);
    let new = w.hv.map_grant_rw(a, GrantRef(47)).unwrap();
    assert_eq!(new.handle().handle, old.handle().handle);
    assert_ne!(new.handle().generation, old.handle().generation);
    drop(old);
    reap(&mut w.hv);
    assert_eq!(pins(&w, a, 47).dev_rw, 1);
    assert_eq!(
        w.entry(a, GrantRef(47)).flags,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    assert!(!pins(&w, a, 46).any());
    w.check_invariants(true).unwrap();
    // The same through unmap_grant: a stale mapping releases nothing.
    let stale = w.hv.map_grant_ro(a, GrantRef(46)).unwrap();
    map::release_mapping(&mut w.hv.gnt(), RUNTIME_DOMID, stale.handle().handle);
    let newer = w.hv.map_grant_ro(a, GrantRef(46)).unwrap();
    assert_eq!(newer.handle().handle, stale.handle().handle);
    w.hv.unmap_grant(stale);
    assert_eq!(pins(&w, a, 46).dev_ro, 1);
    w.hv.unmap_grant(newer);
    w.hv.unmap_grant(new);
    assert_eq!(runtime_maps(&w), 0);
    w.check_invariants(true).unwrap();
}

#[test]
fn dropped_mapping_of_an_ended_granter_is_released_and_its_frame_freed_of_refs() {
    let mut w = world();
    let a = w.doms[0];
    let f = w.spare_frames(a)[0];
    let before = refs(&w, f);
    w.grant(a, GrantRef(48), RUNTIME_DOMID, f, false);
    let m = w.hv.map_grant_rw(a, GrantRef(48)).unwrap();
    w.hv.domains.get_mut(&a).unwrap().shutdown = Some(0);
    reap(&mut w.hv);
    assert!(w.hv.gnttab.table(a).unwrap().ended());
    // The mapping outlives the granter's end and still works.
    m.write(&w.hv.mem, 0, b"late").unwrap();
    assert_eq!(pins(&w, a, 48).dev_rw, 1);
    drop(m);
    reap(&mut w.hv);
    assert!(!pins(&w, a, 48).any());
    assert_eq!(w.entry(a, GrantRef(48)).flags, GTF_PERMIT_ACCESS);
    assert_eq!(refs(&w, f), before);
    assert_eq!(runtime_maps(&w), 0);
    w.check_invariants(true).unwrap();
}

#[test]
fn another_hypervisors_mapping_is_released_only_by_its_own() {
    let mut w1 = world();
    let mut w2 = world();
    let a = w1.doms[0];
    assert_eq!(w2.doms[0], a);
    for w in [&w1, &w2] {
        let f = w.spare_frames(a)[0];
        w.grant(a, GrantRef(49), RUNTIME_DOMID, f, false);
    }
    let m1 = w1.hv.map_grant_rw(a, GrantRef(49)).unwrap();
    let m2 = w2.hv.map_grant_rw(a, GrantRef(49)).unwrap();
    assert_eq!(m1.handle().handle, m2.handle().handle);
    w1.hv.unmap_grant(m2);
    assert_eq!(pins(&w1, a, 49).dev_rw, 1);
    assert_eq!(w2.hv.gnttab.pending_releases(), 1);
    reap(&mut w2.hv);
    assert!(!pins(&w2, a, 49).any());
    assert_eq!(pins(&w1, a, 49).dev_rw, 1);
    // A mapping outliving its hypervisor drops quietly.
    drop(w1);
    drop(m1);
    w2.check_invariants(true).unwrap();
}
