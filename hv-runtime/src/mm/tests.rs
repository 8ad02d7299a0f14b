//! The page-type machine against a brute-force reference model.
//!
//! After every operation the model recomputes, from the tables in memory,
//! what each frame's counts must be, and checks Xen's invariants:
//! type counts equal the number of validated references; no frame is both a
//! page table and writable-mapped; reference counts stay below the cap; every
//! frame mapped from a domain's validated tables is owned by that domain.

use proptest::prelude::*;

use super::*;
use crate::machine::{FrameTable, Owner, PageType};

const FRAMES: u64 = 24;
const DOM: DomId = DomId(1);
const OTHER: DomId = DomId(2);
/// Frames 0..DOM_FRAMES belong to `DOM`, the next 4 to `OTHER`.
const DOM_FRAMES: u64 = 16;

struct World {
    mem: MachineMemory,
    ft: FrameTable,
}

impl World {
    fn new() -> Self {
        let mem = MachineMemory::new(FRAMES).expect("map");
        let mut ft = FrameTable::new(FRAMES);
        for f in 0..FRAMES {
            let owner = if f < DOM_FRAMES {
                Owner::Dom(DOM)
            } else if f < DOM_FRAMES + 4 {
                Owner::Dom(OTHER)
            } else {
                continue;
            };
            ft.alloc_at(&mem, Mfn(f), owner).expect("alloc");
        }
        Self { mem, ft }
    }

    fn mm(&mut self) -> Mm<'_> {
        Mm {
            ft: &mut self.ft,
            mem: &self.mem,
            layout: MmLayout::default(),
        }
    }

    fn entry(&self, table: u64, i: usize) -> u64 {
        self.mem.read_u64(entry_addr(Mfn(table), i)).expect("read")
    }
}

/// Recompute expected counts from scratch and compare.
fn check_invariants(w: &World) -> Result<(), TestCaseError> {
    let n = usize::try_from(FRAMES).expect("small");
    let mut exp_type = vec![0u32; n];
    let mut exp_count = vec![0u32; n];
    let mut writable_mapped = vec![false; n];
    for (mfn, p) in w.ft.iter() {
        let i = usize::try_from(mfn.0).expect("small");
        if p.allocated {
            exp_count[i] += 1;
        }
        if p.pinned {
            exp_count[i] += 1;
            exp_type[i] += 1;
        }
    }
    for (mfn, p) in w.ft.iter() {
        let Some(level) = p.ty.level() else { continue };
        if p.type_count == 0 || !p.validated {
            continue;
        }
        let Owner::Dom(dom) = p.owner else {
            return Err(TestCaseError::fail(format!(
                "validated table {mfn:?} not owned by a domain"
            )));
        };
        for i in 0..512 {
            if level == 4 && XEN_L4_SLOTS.contains(&i) {
                continue;
            }
            let e = w.entry(mfn.0, i);
            if e & pte::P == 0 {
                continue;
            }
            let t = pte::mfn(e);
            if t == mfn.0 && level > 1 {
                prop_assert_eq!(e & pte::RW, 0, "self-map must be read-only");
                continue;
            }
            let ti = usize::try_from(t).expect("small");
            prop_assert!(ti < n, "entry points outside RAM");
            let target = w.ft.get(Mfn(t)).expect("exists");
            prop_assert_eq!(
                target.owner,
                Owner::Dom(dom),
                "mapped frame not owned by the mapper"
            );
            exp_count[ti] += 1;
            if level == 1 {
                prop_assert_eq!(e & pte::L1_DISALLOW, 0);
                prop_assert_ne!(e & pte::US, 0, "US forced on");
                if e & pte::RW != 0 {
                    exp_type[ti] += 1;
                    writable_mapped[ti] = true;
                }
            } else {
                prop_assert_eq!(e & pte::LN_DISALLOW, 0);
                exp_type[ti] += 1;
                let ok = target.ty == PageType::table(level - 1).expect("level")
                    || (target.ty == p.ty && e & pte::RW == 0);
                prop_assert!(
                    ok,
                    "level-{} entry to a frame of type {:?}",
                    level,
                    target.ty
                );
            }
        }
    }
    for (mfn, p) in w.ft.iter() {
        let i = usize::try_from(mfn.0).expect("small");
        prop_assert!(p.count <= MAX_REFS && p.type_count <= MAX_REFS);
        prop_assert_eq!(p.count, exp_count[i], "general count of frame {}", mfn.0);
        prop_assert_eq!(
            p.type_count,
            exp_type[i],
            "type count of frame {} ({:?})",
            mfn.0,
            p.ty
        );
        let is_table = p.type_count > 0 && p.ty.level().is_some();
        prop_assert!(
            !(is_table && writable_mapped[i]),
            "frame {} is a page table and writable-mapped",
            mfn.0
        );
        if p.ty.level().is_some() && p.type_count > 0 {
            prop_assert!(p.validated, "table in use but not validated");
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    /// mmu_update of entry `slot` of frame `table` to point at `target`.
    Update {
        table: u64,
        slot: usize,
        target: u64,
        flags: u64,
        present: bool,
    },
    Pin {
        mfn: u64,
        level: u8,
    },
    Unpin {
        mfn: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let frame = 0..DOM_FRAMES + 4;
    let slot = prop_oneof![Just(0usize), Just(1), Just(2), Just(256), Just(511)];
    let flags = prop_oneof![
        Just(pte::P),
        Just(pte::P | pte::RW),
        Just(pte::P | pte::RW | pte::US),
        Just(pte::P | pte::US | pte::A | pte::D),
        Just(pte::P | pte::PCD),
        Just(pte::P | pte::PAT_PSE),
        Just(pte::P | pte::G),
        Just(pte::P | pte::NX),
    ];
    prop_oneof![
        6 => (frame.clone(), slot, frame.clone(), flags, prop::bool::weighted(0.85))
            .prop_map(|(table, slot, target, flags, present)| Op::Update { table, slot, target, flags, present }),
        3 => (frame.clone(), 1u8..=4).prop_map(|(mfn, level)| Op::Pin { mfn, level }),
        1 => frame.prop_map(|mfn| Op::Unpin { mfn }),
    ]
}

fn apply(w: &mut World, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Update {
            table,
            slot,
            target,
            flags,
            present,
        } => {
            let val = if present { (target << 12) | flags } else { 0 };
            let before = *w.ft.get(Mfn(table)).expect("frame");
            let target_info = *w.ft.get(Mfn(target)).expect("frame");
            let ptr = Mfn(table).addr().0 + (slot as u64) * 8;
            let r = w.mm().update_entry(ptr, val, DOM, DOM, false);
            // Rules the result must obey, whatever else happened.
            let level = if before.type_count > 0 {
                before.ty.level()
            } else {
                None
            };
            if before.owner != Owner::Dom(DOM) {
                prop_assert!(r.is_err(), "updated a table owned by another domain");
            }
            if present && level == Some(1) && flags & pte::RW != 0 {
                let target_is_table =
                    target_info.type_count > 0 && target_info.ty != PageType::Writable;
                if target_is_table || target_info.owner != Owner::Dom(DOM) {
                    prop_assert!(
                        r.is_err(),
                        "writable mapping of a table / foreign frame accepted"
                    );
                }
            }
            if present && level == Some(1) && flags & pte::L1_DISALLOW != 0 {
                prop_assert!(
                    matches!(&r, Err(MmError::ForbiddenBits { .. })),
                    "forbidden bits accepted: {:?}",
                    r
                );
            }
            let reserved = level == Some(4) && XEN_L4_SLOTS.contains(&slot);
            if present && matches!(level, Some(2..=4)) && flags & pte::LN_DISALLOW != 0 && !reserved
            {
                prop_assert!(
                    matches!(&r, Err(MmError::ForbiddenBits { .. })),
                    "forbidden bits accepted: {:?}",
                    r
                );
            }
            if level == Some(4) && XEN_L4_SLOTS.contains(&slot) {
                prop_assert_eq!(&r, &Err(MmError::ReservedSlot(slot)));
            }
            if let Err(e) = &r {
                prop_assert!(e.errno().raw() > 0);
            }
        }
        Op::Pin { mfn, level } => {
            let _ = w.mm().pin(Mfn(mfn), level, DOM);
        }
        Op::Unpin { mfn } => {
            let _ = w.mm().unpin(Mfn(mfn), DOM);
        }
    }
    check_invariants(w)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn page_type_machine_keeps_xen_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in &ops {
            apply(&mut w, op)?;
        }
        // Tear everything down: unpinning all tables must return every count
        // to the bare allocation reference.
        for f in 0..FRAMES {
            let _ = w.mm().unpin(Mfn(f), DOM);
        }
        for (mfn, p) in w.ft.iter() {
            if p.owner == Owner::Dom(DOM) {
                // Entries in untyped frames hold nothing; only tables that are
                // still referenced from another pinned table could remain, and
                // none are pinned now.
                prop_assert_eq!(p.type_count, 0, "frame {} still typed after unpinning all", mfn.0);
                prop_assert_eq!(p.count, 1, "frame {} still referenced", mfn.0);
            }
        }
    }
}

fn write_raw(w: &World, table: u64, slot: usize, val: u64) {
    w.mem
        .write_u64(entry_addr(Mfn(table), slot), val)
        .expect("write");
}

#[test]
fn pinned_l2_cannot_be_mapped_writable() {
    let mut w = World::new();
    // Frame 2 = L1 mapping frame 5; frame 1 = L2 pointing at the L1.
    write_raw(&w, 2, 0, (5 << 12) | pte::P | pte::RW);
    write_raw(&w, 1, 0, (2 << 12) | pte::P | pte::RW);
    w.mm().pin(Mfn(1), 2, DOM).expect("pin L2");
    assert_eq!(w.ft.get(Mfn(2)).expect("f").ty, PageType::L1);
    // Now try to map the L2 (and the L1) writable from another L1 (frame 3).
    w.mm().pin(Mfn(3), 1, DOM).expect("pin empty L1");
    let e = w.mm().update_entry(
        Mfn(3).addr().0,
        (1 << 12) | pte::P | pte::RW,
        DOM,
        DOM,
        false,
    );
    // Xen's get_page_from_l1e: -EBUSY when the writable type is refused.
    assert!(
        matches!(&e, Err(MmError::L1Target { cause, .. }) if matches!(**cause, MmError::TypeConflict { .. })),
        "{e:?}"
    );
    assert_eq!(e.unwrap_err().errno(), Errno::EBUSY);
    let e = w.mm().update_entry(
        Mfn(3).addr().0 + 8,
        (2 << 12) | pte::P | pte::RW,
        DOM,
        DOM,
        false,
    );
    assert!(e.is_err());
    // Read-only is fine.
    w.mm()
        .update_entry(Mfn(3).addr().0, (1 << 12) | pte::P, DOM, DOM, false)
        .expect("ro map of a table");
    check_invariants(&w).expect("invariants");
}

#[test]
fn writable_mapped_frame_cannot_become_a_page_table() {
    let mut w = World::new();
    w.mm().pin(Mfn(3), 1, DOM).expect("pin L1");
    w.mm()
        .update_entry(
            Mfn(3).addr().0,
            (7 << 12) | pte::P | pte::RW,
            DOM,
            DOM,
            false,
        )
        .expect("rw map");
    assert!(matches!(
        w.mm().pin(Mfn(7), 1, DOM),
        Err(MmError::TypeConflict { .. })
    ));
    // Unmap it, and the pin succeeds.
    w.mm()
        .update_entry(Mfn(3).addr().0, 0, DOM, DOM, false)
        .expect("unmap");
    w.mm().pin(Mfn(7), 1, DOM).expect("pin after unmap");
    check_invariants(&w).expect("invariants");
}

#[test]
fn l1_entries_are_rewritten_like_xen() {
    let mut w = World::new();
    w.mm().pin(Mfn(3), 1, DOM).expect("pin L1");
    let base = Mfn(3).addr().0;
    w.mm()
        .update_entry(base, (7 << 12) | pte::P, DOM, DOM, false)
        .expect("kernel map");
    assert_eq!(
        w.entry(3, 0),
        (7 << 12) | pte::P | pte::US | pte::GUEST_KERNEL
    );
    w.mm()
        .update_entry(base + 8, (8 << 12) | pte::P | pte::US, DOM, DOM, false)
        .expect("user map");
    assert_eq!(w.entry(3, 1), (8 << 12) | pte::P | pte::US | pte::G);
}

#[test]
fn reserved_l4_slots_are_refused_and_overwritten() {
    let mut w = World::new();
    // Garbage in a reserved slot before validation is replaced.
    write_raw(&w, 4, 265, (9 << 12) | pte::P | pte::RW);
    w.mm().pin(Mfn(4), 4, DOM).expect("pin L4");
    assert_eq!(w.entry(4, 265), 0);
    assert_eq!(
        w.ft.get(Mfn(9)).expect("f").count,
        1,
        "no reference taken for a reserved slot"
    );
    let r = w
        .mm()
        .update_entry(Mfn(4).addr().0 + 260 * 8, 0, DOM, DOM, false);
    assert_eq!(r, Err(MmError::ReservedSlot(260)));
}

#[test]
fn forbidden_bits_are_refused_per_level() {
    let mut w = World::new();
    w.mm().pin(Mfn(3), 1, DOM).expect("pin L1");
    w.mm().pin(Mfn(4), 2, DOM).expect("pin L2");
    for bit in [pte::PWT, pte::PCD, pte::PAT_PSE] {
        let r = w
            .mm()
            .update_entry(Mfn(3).addr().0, (7 << 12) | pte::P | bit, DOM, DOM, false);
        assert!(
            matches!(r, Err(MmError::ForbiddenBits { level: 1, .. })),
            "{bit:#x}: {r:?}"
        );
    }
    for bit in [pte::PWT, pte::PCD, pte::PAT_PSE, pte::G] {
        let r = w
            .mm()
            .update_entry(Mfn(4).addr().0, (5 << 12) | pte::P | bit, DOM, DOM, false);
        assert!(
            matches!(r, Err(MmError::ForbiddenBits { level: 2, .. })),
            "{bit:#x}: {r:?}"
        );
    }
    // G, NX and the available bits are fine in an L1.
    w.mm()
        .update_entry(
            Mfn(3).addr().0,
            (7 << 12) | pte::P | pte::G | pte::NX | (1 << 9),
            DOM,
            DOM,
            false,
        )
        .expect("ok bits");
}

#[test]
fn foreign_frames_cannot_be_mapped() {
    let mut w = World::new();
    w.mm().pin(Mfn(3), 1, DOM).expect("pin L1");
    let other = DOM_FRAMES; // owned by OTHER
    let r = w
        .mm()
        .update_entry(Mfn(3).addr().0, (other << 12) | pte::P, DOM, DOM, false);
    assert!(
        matches!(&r, Err(MmError::L1Target { cause, .. }) if matches!(**cause, MmError::NotOwner { .. })),
        "{r:?}"
    );
    assert_eq!(r.unwrap_err().errno(), Errno::EBUSY);
    let r = w
        .mm()
        .update_entry(Mfn(3).addr().0, (1000 << 12) | pte::P, DOM, DOM, false);
    assert_eq!(r, Err(MmError::NotRam(1000)));
    assert_eq!(r.unwrap_err().errno(), Errno::EPERM);
    // And another domain cannot update our table.
    let r = w.mm().update_entry(Mfn(3).addr().0, 0, OTHER, OTHER, false);
    assert!(matches!(r, Err(MmError::NotOwner { .. })));
}

#[test]
fn linear_page_tables_follow_xen_rules() {
    let mut w = World::new();
    // Self-map in an L4: read-only accepted, writable refused.
    write_raw(&w, 4, 10, (4 << 12) | pte::P);
    w.mm()
        .pin(Mfn(4), 4, DOM)
        .expect("self-mapped L4 validates");
    let r = w.mm().update_entry(
        Mfn(4).addr().0 + 11 * 8,
        (4 << 12) | pte::P | pte::RW,
        DOM,
        DOM,
        false,
    );
    assert!(matches!(r, Err(MmError::BadLinear(4))));
    // L2 → another validated L2, read-only.
    w.mm().pin(Mfn(5), 2, DOM).expect("pin L2 a");
    w.mm().pin(Mfn(6), 2, DOM).expect("pin L2 b");
    w.mm()
        .update_entry(Mfn(5).addr().0, (6 << 12) | pte::P, DOM, DOM, false)
        .expect("linear ro");
    assert_eq!(w.ft.get(Mfn(5)).expect("f").linear, 1);
    assert_eq!(w.ft.get(Mfn(6)).expect("f").linear, -1);
    // 6 is now a linear target: it may not itself hold linear entries.
    let r = w
        .mm()
        .update_entry(Mfn(6).addr().0, (5 << 12) | pte::P, DOM, DOM, false);
    assert!(matches!(r, Err(MmError::BadLinear(5))), "{r:?}");
    check_invariants(&w).expect("invariants");
    w.mm()
        .update_entry(Mfn(5).addr().0, 0, DOM, DOM, false)
        .expect("drop linear");
    assert_eq!(w.ft.get(Mfn(6)).expect("f").linear, 0);
    check_invariants(&w).expect("invariants");
}

#[test]
fn unvalidated_frames_take_plain_stores_and_preserve_ad_keeps_bits() {
    let mut w = World::new();
    w.mm()
        .update_entry(Mfn(9).addr().0 + 16, 0x1234_5678, DOM, DOM, false)
        .expect("plain store");
    assert_eq!(w.entry(9, 2), 0x1234_5678);
    w.mm().pin(Mfn(3), 1, DOM).expect("pin L1");
    w.mm()
        .update_entry(Mfn(3).addr().0, (7 << 12) | pte::P, DOM, DOM, false)
        .expect("map");
    // The CPU sets A and D behind our back...
    let e = w.entry(3, 0);
    write_raw(&w, 3, 0, e | pte::A | pte::D);
    // ...and PRESERVE_AD keeps them across the update.
    w.mm()
        .update_entry(Mfn(3).addr().0, (8 << 12) | pte::P, DOM, DOM, true)
        .expect("remap");
    assert_eq!(w.entry(3, 0) & (pte::A | pte::D), pte::A | pte::D);
    assert_eq!(pte::mfn(w.entry(3, 0)), 8);
    check_invariants(&w).expect("invariants");
}
