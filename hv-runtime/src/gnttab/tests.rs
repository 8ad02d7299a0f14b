//! Per-operation tests, including hostile callers: each failure must give
//! Xen's `GNTST_*` and change nothing else (checked by comparing the whole
//! frame table, every grant table and the entries before and after).
#![expect(clippy::cast_possible_truncation)]

use guest_abi::abi::GrantRef;

use guest_abi::abi::gnttab::*;
use hv_cpu::mem::{MachineAddr, Mfn, PAGE_SIZE};

use super::testing::{TEST_PAGES, World};
use super::*;
use crate::machine::{Owner, PageInfo, PageType};
use crate::mm::pte;

fn world() -> World {
    World::new(3, TEST_PAGES).unwrap()
}

/// Everything a failed operation must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// Frame state; a type with no references left is sticky and not
    /// compared (it means nothing).
    frames: Vec<(u64, PageInfo)>,
    entries: Vec<(DomId, u32, u64)>,
    actives: Vec<(DomId, u32, Active)>,
    maps: Vec<(DomId, u32, MapEntry)>,
    tot: Vec<(DomId, u64)>,
}

fn snapshot(w: &World) -> Snapshot {
    let mut entries = Vec::new();
    let mut actives = Vec::new();
    let mut maps = Vec::new();
    for (&d, t) in &w.hv.gnttab.tables {
        for r in 0..t.nr_entries() {
            let e =
                w.hv.mem
                    .read_u64(t.entry_addr(GrantRef(r)).unwrap())
                    .unwrap();
            if e != 0 {
                entries.push((d, r, e));
            }
        }
        actives.extend(t.actives().map(|(r, a)| (d, r, *a)));
        maps.extend(t.mappings().map(|(h, m)| (d, h, *m)));
    }
    Snapshot {
        frames: w
            .hv
            .ft
            .iter()
            .map(|(m, p)| {
                let mut p = *p;
                if p.type_count == 0 {
                    p.ty = PageType::None;
                    p.validated = false;
                }
                (m.0, p)
            })
            .collect(),
        entries,
        actives,
        maps,
        tot: w.hv.domains.values().map(|d| (d.id, d.tot_pages)).collect(),
    }
}

fn map_op(w: &mut World, mapper: DomId, op: GnttabMapGrantRef) -> GnttabMapGrantRef {
    let mut op = op;
    assert_eq!(
        w.call(
            mapper,
            GNTTABOP_MAP_GRANT_REF,
            std::slice::from_mut(&mut op)
        ),
        0
    );
    op
}

fn map(
    w: &mut World,
    mapper: DomId,
    granter: DomId,
    gref: u32,
    flags: u32,
    host_addr: u64,
) -> GnttabMapGrantRef {
    map_op(
        w,
        mapper,
        GnttabMapGrantRef {
            host_addr,
            flags,
            ref_: gref,
            dom: granter.0,
            ..Default::default()
        },
    )
}

fn unmap(w: &mut World, mapper: DomId, host_addr: u64, dev: u64, handle: u32) -> i16 {
    let mut op = GnttabUnmapGrantRef {
        host_addr,
        dev_bus_addr: dev,
        handle,
        ..Default::default()
    };
    assert_eq!(
        w.call(
            mapper,
            GNTTABOP_UNMAP_GRANT_REF,
            std::slice::from_mut(&mut op)
        ),
        0
    );
    op.status
}

fn copy(
    w: &mut World,
    caller: DomId,
    source: GnttabCopyPtr,
    dest: GnttabCopyPtr,
    len: u16,
    flags: u16,
) -> i16 {
    let mut op = GnttabCopy {
        source,
        dest,
        len,
        flags,
        ..Default::default()
    };
    assert_eq!(
        w.call(caller, GNTTABOP_COPY, std::slice::from_mut(&mut op)),
        0
    );
    op.status
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

/// Run `f`, expect `status`, and check that nothing at all changed.
fn fails_cleanly(w: &mut World, status: i16, f: impl FnOnce(&mut World) -> i16) {
    let before = snapshot(w);
    assert_eq!(f(w), status);
    let after = snapshot(w);
    let changed: Vec<_> = before
        .frames
        .iter()
        .zip(&after.frames)
        .filter(|(x, y)| x != y)
        .collect();
    assert!(
        changed.is_empty(),
        "a failed operation changed frames: {changed:?}"
    );
    assert_eq!(after, before, "a failed operation changed state");
    w.check_invariants(true).unwrap();
}

fn read_va(w: &World, dom: DomId, va: u64) -> u64 {
    let mut b = [0u8; 8];
    crate::guestmem::copy_from_guest(&w.hv.mem, w.cr3(dom), va, &mut b).unwrap();
    u64::from_le_bytes(b)
}

// ---- table operations ----------------------------------------------------

#[test]
fn builder_prefills_console_and_xenstore_refs_for_dom0() {
    let w = world();
    let d = w.doms[0];
    let dd = &w.hv.domains[&d];
    let console = w.entry(d, GrantRef(GNTTAB_RESERVED_CONSOLE));
    let store = w.entry(d, GrantRef(GNTTAB_RESERVED_XENSTORE));
    assert_eq!((console.flags, console.domid), (GTF_PERMIT_ACCESS, 0));
    assert_eq!(u64::from(console.frame), dd.console.ring.0);
    assert_eq!((store.flags, store.domid), (GTF_PERMIT_ACCESS, 0));
    assert_eq!(u64::from(store.frame), dd.store.0.0);
}

#[test]
fn setup_table_grows_and_returns_frames() {
    let mut w = world();
    let d = w.doms[0];
    let list = w.scratch_va(d) + 2048;
    let mut op = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 4,
        frame_list: list,
        ..Default::default()
    };
    assert_eq!(
        w.call(d, GNTTABOP_SETUP_TABLE, std::slice::from_mut(&mut op)),
        0
    );
    assert_eq!(op.status, GNTST_OKAY);
    let frames = w.hv.gnttab.table(d).unwrap().frames().to_vec();
    assert_eq!(frames.len(), 4);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(read_va(&w, d, list + i as u64 * 8), f.0);
        let p = w.hv.ft.get(*f).unwrap();
        assert!(p.xen_heap && p.owner == Owner::Dom(d));
    }
    // Entries of the new frames work.
    let f = w.spare_frames(d)[0];
    w.grant(d, GrantRef(3 * 512 + 7), w.doms[1], f, false);
    let e = w.doms[1];
    let m = map(&mut w, e, d, 3 * 512 + 7, GNTMAP_DEVICE_MAP, 0);
    assert_eq!(m.status, GNTST_OKAY);
    // query_size.
    let mut q = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    assert_eq!(
        w.call(d, GNTTABOP_QUERY_SIZE, std::slice::from_mut(&mut q)),
        0
    );
    assert_eq!(
        (q.status, q.nr_frames, q.max_nr_frames),
        (GNTST_OKAY, 4, MAX_GRANT_FRAMES)
    );
}

#[test]
fn setup_table_refuses_too_many_frames_other_domains_and_bad_lists() {
    let mut w = world();
    let (d, e) = (w.doms[0], w.doms[1]);
    let list = w.scratch_va(d) + 2048;
    for (dom, n, list, want) in [
        (DOMID_SELF, MAX_GRANT_FRAMES + 1, list, GNTST_GENERAL_ERROR),
        (e.0, 1, list, GNTST_PERMISSION_DENIED),
        (77, 1, list, GNTST_BAD_DOMAIN),
        (DOMID_SELF, 1, 0xdead_0000, GNTST_BAD_VIRT_ADDR),
    ] {
        let mut op = GnttabSetupTable {
            dom,
            nr_frames: n,
            frame_list: list,
            ..Default::default()
        };
        assert_eq!(
            w.call(d, GNTTABOP_SETUP_TABLE, std::slice::from_mut(&mut op)),
            0
        );
        assert_eq!(op.status, want, "dom {dom} frames {n}");
    }
    assert_eq!(w.hv.gnttab.table(d).unwrap().frames().len(), 1);
    // Single-element commands want count == 1.
    let mut ops = [GnttabQuerySize::default(); 2];
    assert_eq!(w.call(d, GNTTABOP_QUERY_SIZE, &mut ops), -22);
}

#[test]
fn version_1_only_and_v2_is_refused_without_change() {
    let mut w = world();
    let d = w.doms[0];
    for (v, ret) in [(1, 0), (2, -38), (3, -22), (1, 0)] {
        let mut op = GnttabSetVersion { version: v };
        assert_eq!(
            w.call(d, GNTTABOP_SET_VERSION, std::slice::from_mut(&mut op)),
            ret
        );
        assert_eq!(op.version, 1);
    }
    let mut g = GnttabGetVersion {
        dom: DOMID_SELF,
        ..Default::default()
    };
    assert_eq!(
        w.call(d, GNTTABOP_GET_VERSION, std::slice::from_mut(&mut g)),
        0
    );
    assert_eq!(g.version, 1);
    g.dom = w.doms[1].0;
    assert_eq!(
        w.call(d, GNTTABOP_GET_VERSION, std::slice::from_mut(&mut g)),
        -1
    );
    let mut dump = GnttabDumpTable {
        dom: DOMID_SELF,
        status: 5,
    };
    assert_eq!(
        w.call(d, GNTTABOP_DUMP_TABLE, std::slice::from_mut(&mut dump)),
        0
    );
    assert_eq!(dump.status, GNTST_OKAY);
    // Unknown commands and continuation bits.
    assert_eq!(w.call(d, 99, &mut [0u8; 8]), -38);
    assert_eq!(
        w.call(d, GNTTABOP_QUERY_SIZE | (1 << 12), &mut [0u8; 16]),
        -22
    );
    assert_eq!(
        w.call_raw(d, GNTTABOP_COPY, &mut [0u8; 40], 0x8000_0000),
        -22
    );
}

// ---- map / unmap -----------------------------------------------------------

#[test]
fn host_map_installs_a_pte_with_references_and_unmap_removes_it() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.hv.mem.write_u64(frame.addr(), 0x1122_3344).unwrap();
    w.grant(a, GrantRef(10), b, frame, false);
    let va = w.slot_va(b, 0);
    let m = map(&mut w, b, a, 10, GNTMAP_HOST_MAP, va);
    assert_eq!(m.status, GNTST_OKAY);
    assert_eq!(m.dev_bus_addr, frame.0 << 12);
    // The mapper reads and writes the granter's frame through its own VA.
    assert_eq!(read_va(&w, b, va), 0x1122_3344);
    crate::guestmem::copy_to_guest(&w.hv.mem, &w.hv.ft, w.cr3(b), va, &[9u8; 8]).unwrap();
    assert_eq!(
        w.hv.mem.read_u64(frame.addr()).unwrap(),
        0x0909_0909_0909_0909
    );
    let p = *w.hv.ft.get(frame).unwrap();
    assert_eq!(
        (p.owner, p.count, p.ty, p.type_count),
        (Owner::Dom(a), 2, PageType::Writable, 1)
    );
    let e = w.entry(a, GrantRef(10));
    assert_eq!(e.flags, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    w.check_invariants(true).unwrap();
    // The granter cannot make it a page table, nor revoke the grant.
    assert!(w.hv.mm().pin(frame, 1, a).is_err());
    assert!(!w.end_access(a, GrantRef(10)));
    // Unmap.
    assert_eq!(unmap(&mut w, b, va, 0, m.handle), GNTST_OKAY);
    let p = *w.hv.ft.get(frame).unwrap();
    assert_eq!((p.count, p.type_count), (1, 0));
    assert_eq!(w.entry(a, GrantRef(10)).flags, GTF_PERMIT_ACCESS);
    assert!(crate::guestmem::translate(&w.hv.mem, w.cr3(b), va, false).is_err());
    assert!(w.end_access(a, GrantRef(10)));
    w.check_invariants(true).unwrap();
}

#[test]
fn readonly_application_and_avail_bits_shape_the_pte() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(11), b, frame, true);
    let at = w.slot_pte(b, 3);
    let flags = GNTMAP_HOST_MAP
        | GNTMAP_READONLY
        | GNTMAP_CONTAINS_PTE
        | GNTMAP_APPLICATION_MAP
        | (5 << 16);
    let m = map(&mut w, b, a, 11, flags, at);
    assert_eq!(m.status, GNTST_OKAY);
    let e = w.hv.mem.read_u64(MachineAddr(at)).unwrap();
    assert_eq!(pte::mfn(e), frame.0);
    assert_eq!(e & pte::RW, 0);
    assert_ne!(e & (pte::P | pte::US | pte::NX | pte::G), 0);
    assert_eq!(
        e & (pte::US | pte::G | pte::NX | pte::A | pte::D),
        pte::US | pte::G | pte::NX | pte::A | pte::D
    );
    assert_eq!((e >> 9) & 7, 5);
    assert_eq!(
        w.entry(a, GrantRef(11)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING
    );
    let p = *w.hv.ft.get(frame).unwrap();
    assert_eq!((p.count, p.type_count), (2, 0));
    assert_eq!(unmap(&mut w, b, at, 0, m.handle), GNTST_OKAY);
    assert_eq!(
        w.entry(a, GrantRef(11)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY
    );
    w.check_invariants(true).unwrap();
}

#[test]
fn device_map_returns_bus_address_and_needs_it_to_unmap() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[1];
    w.grant(a, GrantRef(12), b, frame, false);
    let m = map(&mut w, b, a, 12, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0);
    assert_eq!((m.status, m.dev_bus_addr), (GNTST_OKAY, frame.0 << 12));
    assert_eq!(
        w.entry(a, GrantRef(12)).flags,
        GTF_PERMIT_ACCESS | GTF_READING
    );
    fails_cleanly(&mut w, GNTST_BAD_DEV_ADDR, |w| {
        unmap(w, b, 0, (frame.0 + 1) << 12, m.handle)
    });
    // dev_bus_addr 0 leaves the device part (and the handle) alone, as Xen.
    assert_eq!(unmap(&mut w, b, 0, 0, m.handle), GNTST_OKAY);
    assert!(w.hv.gnttab.table(b).unwrap().mapping(m.handle).is_some());
    assert_eq!(unmap(&mut w, b, 0, frame.0 << 12, m.handle), GNTST_OKAY);
    assert!(w.hv.gnttab.table(b).unwrap().mapping(m.handle).is_none());
    assert_eq!(w.entry(a, GrantRef(12)).flags, GTF_PERMIT_ACCESS);
    w.check_invariants(true).unwrap();
}

#[test]
fn writable_pin_after_readonly_pin_sets_writing_and_unpins_in_steps() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(13), b, frame, false);
    let ro = map(&mut w, b, a, 13, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0);
    let v1 = w.slot_va(b, 1);
    let rw = map(&mut w, b, a, 13, GNTMAP_HOST_MAP, v1);
    assert_eq!((ro.status, rw.status), (GNTST_OKAY, GNTST_OKAY));
    assert_eq!(
        w.entry(a, GrantRef(13)).flags,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    assert_eq!(unmap(&mut w, b, v1, 0, rw.handle), GNTST_OKAY);
    assert_eq!(
        w.entry(a, GrantRef(13)).flags,
        GTF_PERMIT_ACCESS | GTF_READING
    );
    assert_eq!(unmap(&mut w, b, 0, frame.0 << 12, ro.handle), GNTST_OKAY);
    assert_eq!(w.entry(a, GrantRef(13)).flags, GTF_PERMIT_ACCESS);
    w.check_invariants(true).unwrap();
}

#[test]
fn map_of_a_grant_never_granted_is_a_general_error() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let va = w.slot_va(b, 0);
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 20, GNTMAP_HOST_MAP, va).status
    });
}

#[test]
fn map_of_a_grant_to_another_domain_is_refused() {
    let mut w = world();
    let (a, b, c) = (w.doms[0], w.doms[1], w.doms[2]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(21), c, frame, false);
    let va = w.slot_va(b, 0);
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 21, GNTMAP_HOST_MAP, va).status
    });
    // Pinned by c, still refused to b.
    assert_eq!(
        map(&mut w, c, a, 21, GNTMAP_DEVICE_MAP, 0).status,
        GNTST_OKAY
    );
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 21, GNTMAP_DEVICE_MAP, 0).status
    });
}

#[test]
fn readonly_grant_mapped_writable_is_refused() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(22), b, frame, true);
    let va = w.slot_va(b, 0);
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 22, GNTMAP_HOST_MAP, va).status
    });
    // Also when already pinned read-only.
    assert_eq!(
        map(&mut w, b, a, 22, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0).status,
        GNTST_OKAY
    );
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 22, GNTMAP_DEVICE_MAP, 0).status
    });
}

#[test]
fn hostile_map_arguments_get_xen_status_codes() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(23), b, frame, false);
    let va = w.slot_va(b, 0);
    // No host or device flag.
    fails_cleanly(&mut w, GNTST_BAD_GNTREF, |w| {
        map(w, b, a, 23, GNTMAP_READONLY, va).status
    });
    // Unknown domain, DOMID_SELF is not a domain id here.
    fails_cleanly(&mut w, GNTST_BAD_DOMAIN, |w| {
        map(w, b, DomId(99), 23, GNTMAP_HOST_MAP, va).status
    });
    fails_cleanly(&mut w, GNTST_BAD_DOMAIN, |w| {
        map(w, b, DomId(DOMID_SELF), 23, GNTMAP_HOST_MAP, va).status
    });
    // Past the table.
    fails_cleanly(&mut w, GNTST_BAD_GNTREF, |w| {
        map(w, b, a, 512, GNTMAP_HOST_MAP, va).status
    });
    fails_cleanly(&mut w, GNTST_BAD_GNTREF, |w| {
        map(w, b, a, u32::MAX, GNTMAP_HOST_MAP, va).status
    });
    // Unusable host addresses: unmapped VA, non-canonical, a PTE address that
    // is not in the mapper's L1, a misaligned one.
    for (addr, f) in [
        (0x7000_0000_0000, 0),
        (0x8000_0000_0000_0000, 0),
        (frame.addr().0, GNTMAP_CONTAINS_PTE),
        (w.slot_pte(b, 0) + 1, GNTMAP_CONTAINS_PTE),
        (w.slot_pte(a, 0), GNTMAP_CONTAINS_PTE),
    ] {
        fails_cleanly(&mut w, GNTST_BAD_VIRT_ADDR, |w| {
            map(w, b, a, 23, GNTMAP_HOST_MAP | f, addr).status
        });
    }
    // A granted frame that the granter does not own.
    let foreign = w.spare_frames(b)[0];
    w.grant(a, GrantRef(24), b, foreign, false);
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| {
        map(w, b, a, 24, GNTMAP_DEVICE_MAP, 0).status
    });
    w.grant(a, GrantRef(25), b, Mfn(u64::from(u32::MAX)), false);
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| {
        map(w, b, a, 25, GNTMAP_DEVICE_MAP, 0).status
    });
}

#[test]
fn writable_map_of_a_page_table_frame_is_refused() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    // The granter grants its own L4.
    let l4 = Mfn(w.cr3(a) >> 12);
    w.grant(a, GrantRef(26), b, l4, false);
    let va = w.slot_va(b, 0);
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 26, GNTMAP_HOST_MAP, va).status
    });
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 26, GNTMAP_DEVICE_MAP, 0).status
    });
    // Read-only is fine, as for ordinary mappings.
    assert_eq!(
        map(&mut w, b, a, 26, GNTMAP_HOST_MAP | GNTMAP_READONLY, va).status,
        GNTST_OKAY
    );
    w.check_invariants(true).unwrap();
}

#[test]
fn over_pinning_stops_at_the_limit() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(27), b, frame, false);
    for _ in 0..PIN_LIMIT {
        assert_eq!(
            map(&mut w, b, a, 27, GNTMAP_DEVICE_MAP, 0).status,
            GNTST_OKAY
        );
    }
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        map(w, b, a, 27, GNTMAP_DEVICE_MAP, 0).status
    });
    // Another kind still has room.
    assert_eq!(
        map(&mut w, b, a, 27, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0).status,
        GNTST_OKAY
    );
    w.check_invariants(true).unwrap();
}

#[test]
fn maptrack_is_bounded() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frames = w.spare_frames(a);
    let per = u32::from(PIN_LIMIT);
    let mut n = 0;
    'outer: for (i, f) in frames.iter().enumerate() {
        let gref = 100 + i as u32;
        w.grant(a, GrantRef(gref), b, *f, true);
        for _ in 0..per {
            if n == MAX_MAPTRACK {
                break 'outer;
            }
            let s = map(&mut w, b, a, gref, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0).status;
            assert_eq!(s, GNTST_OKAY);
            n += 1;
        }
    }
    assert_eq!(n, MAX_MAPTRACK);
    w.grant(a, GrantRef(500), b, frames[40], true);
    fails_cleanly(&mut w, GNTST_NO_SPACE, |w| {
        map(w, b, a, 500, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0).status
    });
}

#[test]
fn unmap_twice_and_bad_handles_are_refused() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(30), b, frame, false);
    let va = w.slot_va(b, 2);
    let m = map(&mut w, b, a, 30, GNTMAP_HOST_MAP, va);
    assert_eq!(unmap(&mut w, b, va, 0, m.handle), GNTST_OKAY);
    fails_cleanly(&mut w, GNTST_BAD_HANDLE, |w| unmap(w, b, va, 0, m.handle));
    fails_cleanly(&mut w, GNTST_BAD_HANDLE, |w| unmap(w, b, va, 0, 0xdead));
    // Another domain's handle is not ours.
    let m = map(&mut w, b, a, 30, GNTMAP_HOST_MAP, va);
    let c = w.doms[2];
    fails_cleanly(&mut w, GNTST_BAD_HANDLE, |w| {
        unmap(w, c, va, 0, m.handle + 1)
    });
    // Wrong host address: not mapping the frame / not an L1 entry.
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        unmap(w, b, w.slot_va(b, 5), 0, m.handle)
    });
    fails_cleanly(&mut w, GNTST_BAD_VIRT_ADDR, |w| {
        unmap(w, b, 0x7000_0000_0000, 0, m.handle)
    });
    assert_eq!(unmap(&mut w, b, va, 0, m.handle), GNTST_OKAY);
    w.check_invariants(true).unwrap();
}

#[test]
fn unmap_and_replace_moves_the_other_mapping_in() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(31), b, frame, false);
    let (va, other) = (w.slot_va(b, 0), w.slot_va(b, 1));
    let other_pte = w.hv.mem.read_u64(MachineAddr(w.slot_pte(b, 1))).unwrap();
    let m = map(&mut w, b, a, 31, GNTMAP_HOST_MAP, va);
    let mut op = GnttabUnmapAndReplace {
        host_addr: va,
        new_addr: other,
        handle: m.handle,
        ..Default::default()
    };
    assert_eq!(
        w.call(b, GNTTABOP_UNMAP_AND_REPLACE, std::slice::from_mut(&mut op)),
        0
    );
    assert_eq!(op.status, GNTST_OKAY);
    assert_eq!(
        w.hv.mem.read_u64(MachineAddr(w.slot_pte(b, 0))).unwrap(),
        other_pte
    );
    assert_eq!(w.hv.mem.read_u64(MachineAddr(w.slot_pte(b, 1))).unwrap(), 0);
    assert_eq!(w.entry(a, GrantRef(31)).flags, GTF_PERMIT_ACCESS);
    w.check_invariants(true).unwrap();
}

#[test]
fn guest_zapping_its_grant_pte_keeps_counts_consistent() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(32), b, frame, false);
    let va = w.slot_va(b, 0);
    let m = map(&mut w, b, a, 32, GNTMAP_HOST_MAP, va);
    // The mapper clears the entry itself with mmu_update.
    let at = w.slot_pte(b, 0);
    w.hv.mm().update_entry(at, 0, b, b, false).unwrap();
    assert_eq!(w.hv.ft.get(frame).unwrap().count, 1);
    // Unmap now fails as in Xen; the pin stays until the mapper ends.
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        unmap(w, b, va, 0, m.handle)
    });
    w.check_invariants(false).unwrap();
    domain_ended(&mut w.hv, b);
    assert!(w.hv.gnttab.table(a).unwrap().active(GrantRef(32)).is_none());
    assert_eq!(w.entry(a, GrantRef(32)).flags, GTF_PERMIT_ACCESS);
    w.check_invariants(true).unwrap();
}

#[test]
fn big_batches_continue_and_report_every_status() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(33), b, frame, true);
    let n = crate::hypercall::BATCH as usize + 300;
    let mut ops = vec![
        GnttabMapGrantRef {
            flags: GNTMAP_DEVICE_MAP | GNTMAP_READONLY,
            ref_: 33,
            dom: a.0,
            status: 77,
            ..Default::default()
        };
        n
    ];
    assert_eq!(w.call(b, GNTTABOP_MAP_GRANT_REF, &mut ops), 0);
    let ok = ops.iter().filter(|o| o.status == GNTST_OKAY).count();
    assert_eq!(ok, usize::from(PIN_LIMIT));
    assert!(
        ops.iter()
            .all(|o| o.status == GNTST_OKAY || o.status == GNTST_GENERAL_ERROR)
    );
    // The last element was reached (after a continuation).
    assert_eq!(ops[n - 1].status, GNTST_GENERAL_ERROR);
    w.check_invariants(true).unwrap();
    // Inside a multicall there is no continuation: absurd batches are refused.
    let va = w.scratch_va(b);
    let r = crate::hypercall::gnttab::grant_table_op(
        &mut w.hv,
        b,
        0,
        [
            u64::from(GNTTABOP_COPY),
            va,
            u64::from(crate::hypercall::gnttab::MULTICALL_MAX_BATCH) + 1,
            0,
            0,
        ],
        true,
    );
    assert_eq!(r, crate::hypercall::Ret::Val(-22));
    // A batch running off mapped memory stops with -EFAULT.
    assert_eq!(
        w.call_raw(b, GNTTABOP_UNMAP_GRANT_REF, &mut [0u8; 24], 5000),
        -14
    );
}

// ---- copy -------------------------------------------------------------------

#[test]
fn copy_between_grants_and_local_frames() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let src = w.spare_frames(a)[0];
    let dst = w.spare_frames(b)[0];
    w.hv.mem
        .write(MachineAddr(src.addr().0 + 100), b"grant copy")
        .unwrap();
    w.grant(a, GrantRef(40), b, src, true);
    // b copies a's grant into its own frame.
    let s = copy(
        &mut w,
        b,
        GnttabCopyPtr::gref(a.0, 40, 100),
        GnttabCopyPtr::gmfn(dst.0, 4086),
        10,
        GNTCOPY_SOURCE_GREF,
    );
    assert_eq!(s, GNTST_OKAY);
    let mut got = [0u8; 10];
    w.hv.mem
        .read(MachineAddr(dst.addr().0 + 4086), &mut got)
        .unwrap();
    assert_eq!(&got, b"grant copy");
    // The pin lasted only for the copy.
    assert_eq!(
        w.entry(a, GrantRef(40)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY
    );
    assert!(w.hv.gnttab.table(a).unwrap().active(GrantRef(40)).is_none());
    // b copies its frame into a writable grant of a.
    w.grant(a, GrantRef(41), b, w.spare_frames(a)[1], false);
    let s = copy(
        &mut w,
        b,
        GnttabCopyPtr::gmfn(dst.0, 4086),
        GnttabCopyPtr::gref(a.0, 41, 0),
        10,
        GNTCOPY_DEST_GREF,
    );
    assert_eq!(s, GNTST_OKAY);
    w.hv.mem
        .read(w.spare_frames(a)[1].addr(), &mut got)
        .unwrap();
    assert_eq!(&got, b"grant copy");
    w.check_invariants(true).unwrap();
}

#[test]
fn hostile_copies_get_xen_status_codes() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let src = w.spare_frames(a)[0];
    let mine = w.spare_frames(b)[0];
    w.grant(a, GrantRef(42), b, src, true);
    let g = |off| GnttabCopyPtr::gref(a.0, 42, off);
    let f = |off| GnttabCopyPtr::gmfn(mine.0, off);
    // Past a page end, on either side.
    fails_cleanly(&mut w, GNTST_BAD_COPY_ARG, |w| {
        copy(w, b, g(4000), f(0), 97, GNTCOPY_SOURCE_GREF)
    });
    fails_cleanly(&mut w, GNTST_BAD_COPY_ARG, |w| {
        copy(w, b, g(0), f(4095), 2, GNTCOPY_SOURCE_GREF)
    });
    // Writing into a read-only grant.
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        copy(w, b, f(0), g(0), 8, GNTCOPY_DEST_GREF)
    });
    // A frame side naming another domain; another domain's frame.
    fails_cleanly(&mut w, GNTST_PERMISSION_DENIED, |w| {
        copy(w, b, GnttabCopyPtr { domid: a.0, ..f(0) }, f(8), 8, 0)
    });
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| {
        copy(w, b, GnttabCopyPtr::gmfn(src.0, 0), f(8), 8, 0)
    });
    // Grants never made, past the table, unknown domain.
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        copy(
            w,
            b,
            GnttabCopyPtr::gref(a.0, 43, 0),
            f(0),
            8,
            GNTCOPY_SOURCE_GREF,
        )
    });
    fails_cleanly(&mut w, GNTST_BAD_GNTREF, |w| {
        copy(
            w,
            b,
            GnttabCopyPtr::gref(a.0, 9999, 0),
            f(0),
            8,
            GNTCOPY_SOURCE_GREF,
        )
    });
    fails_cleanly(&mut w, GNTST_BAD_DOMAIN, |w| {
        copy(
            w,
            b,
            GnttabCopyPtr::gref(55, 1, 0),
            f(0),
            8,
            GNTCOPY_SOURCE_GREF,
        )
    });
    // A page-table destination.
    let l4 = w.cr3(b) >> 12;
    fails_cleanly(&mut w, GNTST_GENERAL_ERROR, |w| {
        copy(w, b, f(0), GnttabCopyPtr::gmfn(l4, 0), 8, 0)
    });
}

// ---- transfer ---------------------------------------------------------------

#[test]
fn transfer_moves_ownership_accounting_and_m2p() {
    let mut w = world();
    let (s, r) = (w.doms[0], w.doms[1]);
    // The receiver makes room (as after decrease_reservation).
    w.hv.domains.get_mut(&r).unwrap().max_pages += 1;
    let (spfn, frame) = w.spare_pfns(s)[0];
    w.hv.mem.write_u64(frame.addr(), 0xf1ee).unwrap();
    let slot = 150;
    w.offer_transfer(r, GrantRef(50), s, slot);
    let (ts, tr) = (w.hv.domains[&s].tot_pages, w.hv.domains[&r].tot_pages);
    assert_eq!(transfer(&mut w, s, frame, r, 50), GNTST_OKAY);
    let e = w.entry(r, GrantRef(50));
    assert_eq!(
        e.flags,
        GTF_ACCEPT_TRANSFER | GTF_TRANSFER_COMMITTED | GTF_TRANSFER_COMPLETED
    );
    assert_eq!(u64::from(e.frame), frame.0);
    let p = *w.hv.ft.get(frame).unwrap();
    assert_eq!((p.owner, p.count, p.allocated), (Owner::Dom(r), 1, true));
    assert_eq!(w.hv.m2p.get(&w.hv.mem, frame).unwrap(), slot);
    assert_eq!(w.hv.domains[&r].p2m[slot as usize], frame);
    assert_ne!(w.hv.domains[&s].p2m[spfn as usize], frame);
    assert_eq!(w.hv.domains[&s].tot_pages, ts - 1);
    assert_eq!(w.hv.domains[&r].tot_pages, tr + 1);
    assert_eq!(w.hv.mem.read_u64(frame.addr()).unwrap(), 0xf1ee);
    // The sender can no longer use it; the receiver can.
    assert!(w.hv.mm().get_page(frame, s).is_err());
    w.hv.mm().get_page(frame, r).unwrap();
    w.hv.mm().put_page(frame);
    w.check_invariants(true).unwrap();
}

#[test]
fn transfer_of_a_page_table_or_mapped_or_foreign_frame_is_bad_page_and_kept() {
    let mut w = world();
    let (s, r, c) = (w.doms[0], w.doms[1], w.doms[2]);
    w.hv.domains.get_mut(&r).unwrap().max_pages += 4;
    w.offer_transfer(r, GrantRef(51), s, 150);
    // A page table (the sender's L4).
    let l4 = Mfn(w.cr3(s) >> 12);
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| transfer(w, s, l4, r, 51));
    // A frame the sender maps (a bootstrap page).
    let mapped = w.hv.domains[&s].p2m[2];
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| transfer(w, s, mapped, r, 51));
    // A frame another domain maps through a grant.
    let f = w.spare_frames(s)[0];
    w.grant(s, GrantRef(60), c, f, false);
    assert_eq!(
        map(&mut w, c, s, 60, GNTMAP_DEVICE_MAP, 0).status,
        GNTST_OKAY
    );
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| transfer(w, s, f, r, 51));
    // Someone else's frame, a grant frame, shared_info, no frame at all.
    let theirs = w.spare_frames(c)[0];
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| transfer(w, s, theirs, r, 51));
    let gf = w.hv.gnttab.table(s).unwrap().frames()[0];
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| transfer(w, s, gf, r, 51));
    let si = w.hv.domains[&s].shared_info;
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| transfer(w, s, si, r, 51));
    fails_cleanly(&mut w, GNTST_BAD_PAGE, |w| {
        transfer(w, s, Mfn(1 << 40), r, 51)
    });
}

#[test]
fn transfer_failing_after_the_steal_loses_the_page() {
    let mut w = world();
    let (s, r) = (w.doms[0], w.doms[1]);
    let frames = w.spare_frames(s);
    let tot = w.hv.domains[&s].tot_pages;
    // No accept entry: general error; no headroom: general error; no domain.
    w.hv.domains.get_mut(&r).unwrap().max_pages += 1;
    assert_eq!(transfer(&mut w, s, frames[0], r, 52), GNTST_GENERAL_ERROR);
    w.offer_transfer(r, GrantRef(53), w.doms[2], 150); // offered to someone else
    assert_eq!(transfer(&mut w, s, frames[1], r, 53), GNTST_GENERAL_ERROR);
    assert_eq!(w.entry(r, GrantRef(53)).flags, GTF_ACCEPT_TRANSFER);
    assert_eq!(
        transfer(&mut w, s, frames[2], r, 100_000),
        GNTST_GENERAL_ERROR
    );
    assert_eq!(
        transfer(&mut w, s, frames[3], DomId(77), 0),
        GNTST_BAD_DOMAIN
    );
    w.hv.domains.get_mut(&r).unwrap().max_pages -= 1;
    w.offer_transfer(r, GrantRef(54), s, 150);
    assert_eq!(transfer(&mut w, s, frames[4], r, 54), GNTST_GENERAL_ERROR);
    assert_eq!(w.entry(r, GrantRef(54)).flags, GTF_ACCEPT_TRANSFER);
    for f in &frames[..5] {
        assert_eq!(w.hv.ft.get(*f).unwrap().owner, Owner::Free);
    }
    assert_eq!(w.hv.domains[&s].tot_pages, tot - 5);
    w.check_invariants(true).unwrap();
}

// ---- swap, lifecycle, runtime access ----------------------------------------

#[test]
fn swap_grant_ref_swaps_idle_entries_and_refuses_busy_ones() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(70), b, frame, false);
    let mut op = GnttabSwapGrantRef {
        ref_a: 70,
        ref_b: 71,
        ..Default::default()
    };
    assert_eq!(
        w.call(a, GNTTABOP_SWAP_GRANT_REF, std::slice::from_mut(&mut op)),
        0
    );
    assert_eq!(op.status, GNTST_OKAY);
    assert_eq!(w.entry(a, GrantRef(70)).flags, 0);
    assert_eq!(u64::from(w.entry(a, GrantRef(71)).frame), frame.0);
    assert_eq!(
        map(&mut w, b, a, 71, GNTMAP_DEVICE_MAP, 0).status,
        GNTST_OKAY
    );
    fails_cleanly(&mut w, GNTST_EAGAIN, |w| {
        let mut op = GnttabSwapGrantRef {
            ref_a: 70,
            ref_b: 71,
            ..Default::default()
        };
        w.call(a, GNTTABOP_SWAP_GRANT_REF, std::slice::from_mut(&mut op));
        op.status
    });
}

#[test]
fn ending_a_domain_releases_its_mappings_and_revokes_its_grants() {
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let f0 = w.spare_frames(a)[0];
    let f1 = w.spare_frames(b)[0];
    w.grant(a, GrantRef(80), b, f0, false);
    w.grant(b, GrantRef(81), a, f1, false);
    let (vb, va) = (w.slot_va(b, 0), w.slot_va(a, 0));
    let ma = map(&mut w, b, a, 80, GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP, vb);
    let mb = map(&mut w, a, b, 81, GNTMAP_HOST_MAP, va);
    assert_eq!((ma.status, mb.status), (GNTST_OKAY, GNTST_OKAY));
    // b ends: its mapping of a's grant goes; a's mapping of b's grant stays.
    w.hv.domains.get_mut(&b).unwrap().shutdown = Some(0);
    reap(&mut w.hv);
    assert!(w.hv.gnttab.table(b).unwrap().mappings().next().is_none());
    assert_eq!(w.entry(a, GrantRef(80)).flags, GTF_PERMIT_ACCESS);
    assert_eq!(w.hv.ft.get(f0).unwrap().count, 1);
    assert!(w.hv.gnttab.table(b).unwrap().active(GrantRef(81)).is_some());
    w.check_invariants(false).unwrap();
    // b's grants are revoked for new users.
    assert_eq!(
        map(&mut w, a, b, 81, GNTMAP_DEVICE_MAP, 0).status,
        GNTST_BAD_DOMAIN
    );
    // And b takes no new mappings (they could never be released).
    w.grant(a, GrantRef(82), b, f0, false);
    fails_cleanly(&mut w, GNTST_BAD_DOMAIN, |w| {
        map(w, b, a, 82, GNTMAP_DEVICE_MAP, 0).status
    });
    // a unmaps normally later.
    assert_eq!(unmap(&mut w, a, va, 0, mb.handle), GNTST_OKAY);
    assert_eq!(w.hv.ft.get(f1).unwrap().count, 1);
    w.check_invariants(false).unwrap();
}

#[test]
fn runtime_maps_are_typed_bounded_and_pinned() {
    let mut w = world();
    let a = w.doms[0];
    let f = w.spare_frames(a)[0];
    w.grant(a, GrantRef(90), RUNTIME_DOMID, f, true);
    // Read-only grant: only a read-only mapping.
    assert_eq!(
        w.hv.map_grant_rw(a, GrantRef(90)).unwrap_err().status(),
        GNTST_GENERAL_ERROR
    );
    let m = w.hv.map_grant_ro(a, GrantRef(90)).unwrap();
    assert_eq!(
        w.entry(a, GrantRef(90)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING
    );
    let mut buf = [0u8; 4];
    m.read(&w.hv.mem, 4092, &mut buf).unwrap();
    assert!(m.read(&w.hv.mem, 4093, &mut buf).is_err());
    assert!(m.read(&w.hv.mem, usize::MAX, &mut buf).is_err());
    w.check_invariants(true).unwrap();
    w.hv.unmap_grant(m);
    assert_eq!(
        w.entry(a, GrantRef(90)).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY
    );
    // The console ring grant (ref 0) is the runtime's.
    let ring = w.hv.domains[&a].console.ring;
    w.hv.mem
        .write_u8(MachineAddr(ring.addr().0 + 7), 0x42)
        .unwrap();
    let m =
        w.hv.map_grant_rw(a, GrantRef(GNTTAB_RESERVED_CONSOLE))
            .unwrap();
    assert_eq!(m.read_obj::<u8>(&w.hv.mem, 7).unwrap(), 0x42);
    m.write(&w.hv.mem, 8, &[1, 2]).unwrap();
    assert_eq!(w.hv.ft.get(ring).unwrap().type_count, 2); // bootstrap RW PTE + runtime
    w.hv.unmap_grant(m);
    // One-shot copies.
    let mut got = [0u8; 2];
    w.hv.copy_from_grant(a, GrantRef(GNTTAB_RESERVED_CONSOLE), 8, &mut got)
        .unwrap();
    assert_eq!(got, [1, 2]);
    assert_eq!(
        w.hv.copy_to_grant(a, GrantRef(GNTTAB_RESERVED_CONSOLE), 4095, &[0; 2])
            .unwrap_err()
            .status(),
        GNTST_BAD_COPY_ARG
    );
    assert_eq!(
        w.hv.copy_to_grant(a, GrantRef(90), 0, &[0; 2])
            .unwrap_err()
            .status(),
        GNTST_GENERAL_ERROR
    );
    assert_eq!(
        w.hv.copy_to_grant(a, GrantRef(91), 0, &[0; 2])
            .unwrap_err()
            .status(),
        GNTST_GENERAL_ERROR
    );
    w.check_invariants(true).unwrap();
}

#[test]
fn add_to_physmap_grows_the_table_and_records_the_frame() {
    let mut w = world();
    let a = w.doms[0];
    assert_eq!(add_to_physmap(&mut w.hv, a, 2, 140), 0);
    let t = w.hv.gnttab.table(a).unwrap();
    assert_eq!(t.frames().len(), 3);
    let f = t.frames()[2];
    assert_eq!(w.hv.m2p.get(&w.hv.mem, f).unwrap(), 140);
    assert_eq!(
        add_to_physmap(&mut w.hv, a, u64::from(MAX_GRANT_FRAMES), 1),
        -22
    );
    assert_eq!(add_to_physmap(&mut w.hv, a, 1 << 31, 1), -22);
}

#[test]
fn racing_granter_that_keeps_changing_the_entry_gets_general_error() {
    // The granter flips an unrelated bit between our load and cmpxchg: model
    // it by an entry whose value changes on every access is not possible
    // single-threaded, so check the bounded loop through a thread.
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let f = w.spare_frames(a)[0];
    w.grant(a, GrantRef(95), b, f, false);
    let at = w.entry_addr(a, GrantRef(95)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let mem = &w.hv.mem;
        let stop = &stop;
        sc.spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5_000_000 {
                // Toggle GTF_PWT: never touches the bits the hypervisor sets.
                let _ = mem.fetch_or_u64(at, 0x20);
                let _ = mem.fetch_and_u64(at, !0x20);
                i += 1;
            }
        });
        // Whatever the interleaving: success, or a general error with
        // nothing pinned.
        let r = pin(
            &w.hv.mem,
            &w.hv.ft,
            w.hv.gnttab.tables.get_mut(&a).unwrap(),
            a,
            GrantRef(95),
            b,
            Pins::incr(true, false, false),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match r {
            Ok(frame) => assert_eq!(frame, f),
            Err(e) => {
                assert_eq!(e, PinError::Unstable(95));
                assert!(w.hv.gnttab.table(a).unwrap().active(GrantRef(95)).is_none());
            }
        }
    });
    let _ = PAGE_SIZE;
}

#[test]
fn grant_table_op_is_wired_in_the_hypercall_table_with_continuations() {
    use hv_cpu::state::reg;
    let mut w = world();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frame = w.spare_frames(a)[0];
    w.grant(a, GrantRef(34), b, frame, true);
    let n = crate::hypercall::BATCH as usize + 5;
    let ops = vec![
        GnttabMapGrantRef {
            flags: GNTMAP_DEVICE_MAP | GNTMAP_READONLY,
            ref_: 34,
            dom: a.0,
            ..Default::default()
        };
        n
    ];
    let va = w.scratch_va(b);
    let cr3 = w.cr3(b);
    crate::guestmem::copy_to_guest(
        &w.hv.mem,
        &w.hv.ft,
        cr3,
        va,
        zerocopy::IntoBytes::as_bytes(ops.as_slice()),
    )
    .unwrap();
    let rip = {
        let vc = &mut w.hv.domains.get_mut(&b).unwrap().vcpus[0];
        vc.cpu.gpr[reg::RAX] = u64::from(guest_abi::abi::hypercall_nr::GRANT_TABLE_OP);
        vc.cpu.gpr[reg::RDI] = u64::from(GNTTABOP_MAP_GRANT_REF);
        vc.cpu.gpr[reg::RSI] = va;
        vc.cpu.gpr[reg::RDX] = n as u64;
        vc.cpu.rip
    };
    crate::hypercall::handle_exit(&mut w.hv, b, 0, hv_cpu::Exit::Syscall);
    // The first BATCH ran; the syscall is set up to run again for the rest.
    let vc = &w.hv.domains[&b].vcpus[0];
    assert_eq!(vc.cpu.rip, rip.wrapping_sub(2));
    assert_eq!(
        vc.cpu.gpr[reg::RSI],
        va + 32 * u64::from(crate::hypercall::BATCH)
    );
    assert_eq!(vc.cpu.gpr[reg::RDX], 5);
    let pins =
        w.hv.gnttab
            .table(a)
            .unwrap()
            .active(GrantRef(34))
            .unwrap()
            .pins;
    assert_eq!(pins.dev_ro, PIN_LIMIT);
}
