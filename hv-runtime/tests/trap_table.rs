//! `set_trap_table` has no length limit (as in Xen): a long table is taken
//! in batches, each batch a continuation that re-issues the `syscall`.
#![expect(clippy::unwrap_used)]

use guest_abi::abi::callback::TrapInfo;
use hv_cpu::Exit;
use hv_cpu::state::reg;
use hv_runtime::gnttab::testing::{TEST_PAGES, World};
use hv_runtime::guestmem;
use hv_runtime::hypercall::{BATCH, handle_exit};
use hv_runtime::machine::DomId;
use zerocopy::IntoBytes;

const SET_TRAP_TABLE: u64 = 0;
/// Where the test's `syscall` instruction ends.
const RIP: u64 = 0x30_1002;

/// Issue `set_trap_table(table)` from vCPU 0 of `dom` as the guest kernel
/// would, re-executing the `syscall` after each continuation. Returns the
/// result and the number of continuations.
fn set_trap_table(w: &mut World, dom: DomId, table: u64) -> (i64, u32) {
    let mut continuations = 0;
    {
        let vc = &mut w.hv.domains.get_mut(&dom).unwrap().vcpus[0];
        vc.cpu.gpr[reg::RAX] = SET_TRAP_TABLE;
        vc.cpu.gpr[reg::RDI] = table;
        vc.cpu.rip = RIP;
    }
    loop {
        handle_exit(&mut w.hv, dom, 0, Exit::Syscall);
        let vc = &mut w.hv.domains.get_mut(&dom).unwrap().vcpus[0];
        if vc.cpu.rip == RIP - 2 {
            // Rewound onto the `syscall`: the guest executes it again.
            assert_eq!(vc.cpu.gpr[reg::RAX], SET_TRAP_TABLE);
            vc.cpu.rip = RIP;
            continuations += 1;
            assert!(continuations < 100, "set_trap_table never finished");
            continue;
        }
        assert_eq!(vc.cpu.rip, RIP);
        #[expect(clippy::cast_possible_wrap)]
        return (vc.cpu.gpr[reg::RAX] as i64, continuations);
    }
}

fn entry(i: u32) -> TrapInfo {
    TrapInfo {
        vector: u8::try_from(i % 256).unwrap(),
        flags: u8::try_from(i % 4).unwrap(),
        cs: 0xe033,
        _pad: 0,
        address: 0xffff_8300_0000_0000 + u64::from(i) * 0x10,
    }
}

#[test]
fn a_table_longer_than_a_batch_is_continued_to_its_end() {
    let mut w = World::new(1, TEST_PAGES).unwrap();
    let dom = w.doms[0];
    let n = BATCH * 2 + 300;
    let mut table: Vec<TrapInfo> = (0..n).map(entry).collect();
    table.push(TrapInfo::default());
    let va = w.scratch_va(dom);
    let cr3 = w.cr3(dom);
    guestmem::copy_to_guest(&w.hv.mem, &w.hv.ft, cr3, va, table.as_bytes()).unwrap();

    let (rc, continuations) = set_trap_table(&mut w, DomId(dom.0), va);
    assert_eq!(rc, 0);
    assert_eq!(continuations, 2, "one continuation per full batch");
    // Later entries for a vector replace earlier ones: the last of each
    // vector wins.
    let traps = &w.hv.domains[&dom].vcpus[0].pv.traps;
    for i in n - 256..n {
        let e = entry(i);
        let t = traps[usize::from(e.vector)];
        assert_eq!(
            (t.address, t.flags),
            (e.address, e.flags),
            "vector {}",
            e.vector
        );
    }
}

#[test]
fn a_bad_entry_after_a_continuation_is_still_refused() {
    let mut w = World::new(1, TEST_PAGES).unwrap();
    let dom = w.doms[0];
    let mut table: Vec<TrapInfo> = (0..BATCH + 10).map(entry).collect();
    table[usize::try_from(BATCH).unwrap() + 5].address = 0x8000_0000_0000_0000;
    let va = w.scratch_va(dom);
    let cr3 = w.cr3(dom);
    guestmem::copy_to_guest(&w.hv.mem, &w.hv.ft, cr3, va, table.as_bytes()).unwrap();
    let (rc, continuations) = set_trap_table(&mut w, DomId(dom.0), va);
    assert_eq!((rc, continuations), (-22, 1));
}

#[test]
fn a_table_running_off_mapped_memory_faults() {
    let mut w = World::new(1, TEST_PAGES).unwrap();
    let dom = w.doms[0];
    // The last scratch page holds entries to its end with no terminator:
    // the walk reaches the unmapped page after the bootstrap mapping.
    let table: Vec<TrapInfo> = (0..256).map(entry).collect();
    let va = w.scratch_va(dom) + 15 * 4096;
    let cr3 = w.cr3(dom);
    guestmem::copy_to_guest(&w.hv.mem, &w.hv.ft, cr3, va, table.as_bytes()).unwrap();
    let (rc, _) = set_trap_table(&mut w, DomId(dom.0), va);
    assert_eq!(rc, -14);
}
