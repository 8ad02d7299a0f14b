//! Paging in the software CPU: accessed/dirty bits, #PF error codes and CR2,
//! page-crossing accesses and instructions, soft-TLB invalidation and
//! block-cache invalidation for self-modifying and remapped code.
#![expect(clippy::unwrap_used)]

mod interp_util;

use hv_cpu::mem::MachineAddr;
use hv_cpu::{Exit, FlushScope, VcpuBackend};
use iced_x86::code_asm::*;
use interp_util::*;

/// #PF error-code bits.
const E_P: u32 = 1;
const E_W: u32 = 2;
const E_U: u32 = 4;
const E_RSVD: u32 = 8;
const E_I: u32 = 16;

/// A PTE bit the interpreter treats as reserved (it implements 46
/// physical-address bits, so bits 46..=51 are reserved).
const RSVD_BIT: u64 = 1 << 51;
/// Software-available bits (ignored by the walk) an A/D update must keep.
const AVAIL: u64 = (7 << 9) | (0x7f << 52);

/// A linear address in a PML4 slot nothing else uses, so its four entries
/// are all created fresh (without A) by the mapping helper.
const FRESH: u64 = 0x1000_0000_0000;
/// Code lives here.
const CODE: u64 = 0x40_0000;
/// Data page (P|RW|US|NX) from the default layout.
const DATA: u64 = 0x60_0000;

fn soft_int() -> Exit {
    Exit::SoftInt(0x80)
}

/// Run from `CODE` again (rip reset) and return the exit.
fn rerun(g: &mut Guest) -> Exit {
    g.st.rip = CODE;
    g.run()
}

/// `mov rbx, lin; <op>; int 0x80` at `CODE`; returns the address of `<op>`.
fn with_rbx(g: &mut Guest, lin: u64, op: impl FnOnce(&mut CodeAssembler)) -> u64 {
    let n = g.asm(CODE, |a| a.mov(rbx, lin).unwrap());
    let at = CODE + n as u64;
    g.asm(at, |a| {
        op(a);
        a.int(0x80).unwrap();
    });
    at
}

fn read_u64(g: &Guest, ma: u64) -> u64 {
    g.mem.read_u64(MachineAddr(ma)).unwrap()
}

// ---------------------------------------------------------------------------
// 1. Accessed and dirty bits
// ---------------------------------------------------------------------------

#[test]
fn read_sets_accessed_on_every_level_and_no_dirty() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let before = g.entries(FRESH);
    assert!(before.iter().all(|e| e & (A | D) == 0), "{before:x?}");
    with_rbx(&mut g, FRESH + 0x10, |a| {
        a.mov(rax, qword_ptr(rbx)).unwrap()
    });
    assert_eq!(g.run(), soft_int());
    let after = g.entries(FRESH);
    for (lvl, (b, a)) in before.iter().zip(after.iter()).enumerate() {
        assert_eq!(*a, b | A, "level {} entry after a read", 4 - lvl);
    }
}

#[test]
fn write_sets_dirty_on_the_leaf_only_and_accessed_everywhere() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let before = g.entries(FRESH);
    with_rbx(&mut g, FRESH + 0x10, |a| {
        a.mov(qword_ptr(rbx), rax).unwrap()
    });
    assert_eq!(g.run(), soft_int());
    let after = g.entries(FRESH);
    for lvl in 0..3 {
        assert_eq!(after[lvl], before[lvl] | A, "non-leaf level {}", 4 - lvl);
    }
    assert_eq!(after[3], before[3] | A | D, "leaf after a write");
}

#[test]
fn accessed_and_dirty_updates_keep_every_other_bit_of_the_entry() {
    // The update is a read-modify-write (cmpxchg) of the whole entry: the
    // software-available bits and the address must survive it.
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let addrs = g.entry_addrs(FRESH);
    for ma in addrs {
        let e = read_u64(&g, ma);
        g.mem.write_u64(MachineAddr(ma), e | AVAIL).unwrap();
    }
    let before = g.entries(FRESH);
    with_rbx(&mut g, FRESH, |a| a.add(qword_ptr(rbx), 5).unwrap());
    assert_eq!(g.run(), soft_int());
    let after = g.entries(FRESH);
    for lvl in 0..3 {
        assert_eq!(after[lvl], before[lvl] | A);
    }
    assert_eq!(after[3], before[3] | A | D);
    assert_eq!(g.peek_u64(FRESH), 5);
}

#[test]
fn read_then_write_to_a_clean_page_sets_dirty_on_the_write() {
    // The read fills the TLB for a writable page whose D is clear: the
    // following write must not hit that entry without setting D.
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pte_ma = g.entry_addrs(FRESH)[3];
    let n = g.asm(CODE, |a| {
        a.mov(rbx, FRESH).unwrap();
        a.mov(rax, qword_ptr(rbx)).unwrap();
        a.int(0x80).unwrap();
    });
    g.asm(CODE + n as u64, |a| {
        a.mov(qword_ptr(rbx + 8), rbx).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(read_u64(&g, pte_ma) & (A | D), A);
    assert_eq!(g.run(), soft_int());
    assert_eq!(read_u64(&g, pte_ma) & (A | D), A | D);
}

#[test]
fn write_after_the_hypervisor_cleans_dirty_and_flushes_sets_dirty_again() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pte_ma = g.entry_addrs(FRESH)[3];
    with_rbx(&mut g, FRESH, |a| a.mov(qword_ptr(rbx), rax).unwrap());
    assert_eq!(g.run(), soft_int());
    let e = read_u64(&g, pte_ma);
    assert_eq!(e & D, D);
    // Log-dirty style: clear D, invalidate the page, run the store again.
    g.mem.write_u64(MachineAddr(pte_ma), e & !D).unwrap();
    g.cpu.flush_tlb(FlushScope::Page(FRESH));
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(read_u64(&g, pte_ma), e);
}

#[test]
fn instruction_fetch_sets_accessed_on_every_level_and_no_dirty() {
    let mut g = Guest::new();
    // Writable and executable, so "no D" is meaningful.
    g.map_new(FRESH, P | RW | US);
    let before = g.entries(FRESH);
    g.asm(FRESH, |a| a.int(0x80).unwrap());
    g.st.rip = FRESH;
    assert_eq!(g.run(), soft_int());
    let after = g.entries(FRESH);
    for (b, a) in before.iter().zip(after.iter()) {
        assert_eq!(*a, b | A);
    }
}

/// Map `FRESH` as a 2 MiB page over machine frames 0..512 (frame 0 is
/// never allocated by the helper); returns the PDE's machine address.
fn map_large(g: &mut Guest, flags: u64) -> u64 {
    g.pte_addr(FRESH);
    let pde = g.entry_addrs(FRESH)[2];
    g.mem.write_u64(MachineAddr(pde), flags | (1 << 7)).unwrap();
    pde
}

#[test]
fn two_mib_page_read_and_write_set_accessed_and_dirty_on_the_pde() {
    let mut g = Guest::new();
    let pde = map_large(&mut g, P | RW | US | NX);
    g.mem.write_u64(MachineAddr(0x800), 0xfeed).unwrap();
    let before = g.entries(FRESH);
    with_rbx(&mut g, FRESH + 0x800, |a| {
        a.mov(rax, qword_ptr(rbx)).unwrap()
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0xfeed);
    assert_eq!(read_u64(&g, pde), before[2] | A);
    with_rbx(&mut g, FRESH + 0x810, |a| {
        a.mov(qword_ptr(rbx), rax).unwrap()
    });
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.mem.read_u64(MachineAddr(0x810)).unwrap(), 0xfeed);
    let after = g.entries(FRESH);
    assert_eq!(after[0], before[0] | A);
    assert_eq!(after[1], before[1] | A);
    assert_eq!(after[2], before[2] | A | D, "D on the large leaf");
}

#[test]
fn two_mib_page_with_low_address_bits_set_is_a_reserved_bit_fault() {
    let mut g = Guest::new();
    map_large(&mut g, P | RW | US | NX | (1 << 13));
    with_rbx(&mut g, FRESH + 0x800, |a| {
        a.mov(rax, qword_ptr(rbx)).unwrap()
    });
    assert_eq!(g.run(), pf(E_P | E_U | E_RSVD, FRESH + 0x800));
}

// ---------------------------------------------------------------------------
// 2. Permission faults: error code, CR2, rip, no D on a faulting write
// ---------------------------------------------------------------------------

/// `mov ecx, 1; mov rbx, lin; <op>; mov edx, 1; int 0x80`: runs it and
/// checks the #PF, CR2 (exit and state), that rip is at `<op>` and that
/// only the instructions before it retired.
fn expect_pf(g: &mut Guest, lin: u64, op: impl FnOnce(&mut CodeAssembler), code: u32) {
    expect_pf_cr2(g, lin, op, code, lin);
}

/// [`expect_pf`] for an access at `lin` whose fault address is `fault_addr`.
fn expect_pf_cr2(
    g: &mut Guest,
    lin: u64,
    op: impl FnOnce(&mut CodeAssembler),
    code: u32,
    fault_addr: u64,
) {
    let n = g.asm(CODE, |a| {
        a.mov(ecx, 1).unwrap();
        a.mov(rbx, lin).unwrap();
    });
    let at = CODE + n as u64;
    g.asm(at, |a| {
        op(a);
        a.mov(edx, 1).unwrap();
        a.int(0x80).unwrap();
    });
    g.st.rip = CODE;
    assert_eq!(
        g.run(),
        pf(code, fault_addr),
        "error code / CR2 for {lin:#x}"
    );
    assert_eq!(g.st.cr2, fault_addr, "CR2 in the state");
    assert_eq!(g.st.rip, at, "rip at the faulting instruction");
    assert_eq!(g.st.gpr[1], 1, "instruction before the fault retired");
    assert_eq!(g.st.gpr[2], 0, "instruction after the fault did not run");
}

#[test]
fn read_of_a_not_present_page_faults_with_user_only() {
    let mut g = Guest::new();
    expect_pf(
        &mut g,
        0x70_0123,
        |a| a.mov(rax, qword_ptr(rbx)).unwrap(),
        E_U,
    );
}

#[test]
fn write_to_a_not_present_page_faults_with_write_and_user() {
    let mut g = Guest::new();
    expect_pf(
        &mut g,
        0x70_0ff8,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_U | E_W,
    );
}

#[test]
fn read_modify_write_of_a_not_present_page_is_a_write_fault() {
    let mut g = Guest::new();
    expect_pf(
        &mut g,
        0x70_0010,
        |a| a.add(dword_ptr(rbx), 1).unwrap(),
        E_U | E_W,
    );
}

#[test]
fn not_present_upper_level_entry_faults_like_a_not_present_leaf() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pde = g.entry_addrs(FRESH)[2];
    let e = read_u64(&g, pde);
    g.mem.write_u64(MachineAddr(pde), e & !P).unwrap();
    expect_pf(
        &mut g,
        FRESH + 8,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_U | E_W,
    );
}

#[test]
fn write_to_a_read_only_page_faults_with_present_write_user_and_sets_no_dirty() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | US | NX);
    g.poke(FRESH + 0x40, &[0xaa; 8]);
    let before = g.entries(FRESH);
    expect_pf(
        &mut g,
        FRESH + 0x40,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_P | E_W | E_U,
    );
    let after = g.entries(FRESH);
    for (b, a) in before.iter().zip(after.iter()) {
        // The SDM lets A be set on entries used before the fault; D never.
        assert_eq!(a & !A, *b, "only A may change on a faulting write");
    }
    assert_eq!(after[3] & D, 0);
    assert_eq!(g.peek_bytes(FRESH + 0x40, 8), [0xaa; 8]);
}

#[test]
fn write_is_read_only_when_any_level_clears_rw() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pdpte = g.entry_addrs(FRESH)[1];
    let e = read_u64(&g, pdpte);
    g.mem.write_u64(MachineAddr(pdpte), e & !RW).unwrap();
    expect_pf(
        &mut g,
        FRESH,
        |a| a.mov(byte_ptr(rbx), 1).unwrap(),
        E_P | E_W | E_U,
    );
    assert_eq!(g.pte(FRESH) & D, 0);
}

#[test]
fn user_read_of_a_supervisor_leaf_faults_with_present_and_user() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | NX);
    expect_pf(
        &mut g,
        FRESH + 4,
        |a| a.mov(eax, dword_ptr(rbx)).unwrap(),
        E_P | E_U,
    );
}

#[test]
fn user_write_with_supervisor_only_upper_level_faults_and_sets_no_dirty() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pde = g.entry_addrs(FRESH)[2];
    let e = read_u64(&g, pde);
    g.mem.write_u64(MachineAddr(pde), e & !US).unwrap();
    expect_pf(
        &mut g,
        FRESH + 0x800,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_P | E_W | E_U,
    );
    assert_eq!(g.pte(FRESH) & D, 0);
}

#[test]
fn fetch_from_an_nx_page_faults_with_instruction_fetch_bit() {
    // The interpreter runs with EFER.NXE = 1 (as Xen PV guests do): bit 63
    // is the execute-disable bit, not a reserved bit.
    let mut g = Guest::new();
    g.asm(CODE, |a| {
        a.mov(ecx, 1).unwrap();
        a.mov(rax, DATA + 0x20).unwrap();
        a.jmp(rax).unwrap();
    });
    assert_eq!(g.run(), pf(E_P | E_U | E_I, DATA + 0x20));
    assert_eq!(
        g.st.rip,
        DATA + 0x20,
        "rip at the target it could not fetch"
    );
    assert_eq!(g.st.cr2, DATA + 0x20);
    assert_eq!(g.st.gpr[1], 1);
    // The NX page is still readable.
    g.poke(DATA + 0x20, &[0x5a]);
    with_rbx(&mut g, DATA + 0x20, |a| a.mov(al, byte_ptr(rbx)).unwrap());
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.st.gpr[0] & 0xff, 0x5a);
}

#[test]
fn nx_in_an_upper_level_entry_forbids_fetch() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US);
    g.asm(FRESH, |a| a.int(0x80).unwrap());
    let pml4e = g.entry_addrs(FRESH)[0];
    let e = read_u64(&g, pml4e);
    g.mem.write_u64(MachineAddr(pml4e), e | NX).unwrap();
    g.st.rip = FRESH;
    assert_eq!(g.run(), pf(E_P | E_U | E_I, FRESH));
    assert_eq!(g.st.rip, FRESH);
}

#[test]
fn fetch_from_a_not_present_page_faults_with_user_and_fetch() {
    let mut g = Guest::new();
    g.st.rip = 0x70_0000;
    assert_eq!(g.run(), pf(E_U | E_I, 0x70_0000));
    assert_eq!(g.st.rip, 0x70_0000);
}

#[test]
fn reserved_bit_in_the_leaf_faults_with_rsvd_on_read_write_and_fetch() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US);
    g.asm(FRESH, |a| a.int(0x80).unwrap());
    let pte = g.pte(FRESH);
    g.set_pte(FRESH, pte | RSVD_BIT);
    expect_pf(
        &mut g,
        FRESH + 8,
        |a| a.mov(rax, qword_ptr(rbx)).unwrap(),
        E_P | E_U | E_RSVD,
    );
    let mut g2 = Guest::new();
    g2.map_new(FRESH, P | RW | US);
    let pte = g2.pte(FRESH);
    g2.set_pte(FRESH, pte | RSVD_BIT);
    expect_pf(
        &mut g2,
        FRESH + 8,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_P | E_W | E_U | E_RSVD,
    );
    assert_eq!(g2.pte(FRESH) & D, 0);
    g.st.rip = FRESH;
    assert_eq!(g.run(), pf(E_P | E_U | E_I | E_RSVD, FRESH));
    assert_eq!(g.st.rip, FRESH);
}

#[test]
fn reserved_bit_in_an_upper_level_entry_faults_with_rsvd() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pdpte = g.entry_addrs(FRESH)[1];
    let e = read_u64(&g, pdpte);
    g.mem.write_u64(MachineAddr(pdpte), e | RSVD_BIT).unwrap();
    expect_pf(
        &mut g,
        FRESH,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_P | E_W | E_U | E_RSVD,
    );
}

#[test]
fn page_size_bit_in_a_pml4_entry_is_reserved() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pml4e = g.entry_addrs(FRESH)[0];
    let e = read_u64(&g, pml4e);
    g.mem.write_u64(MachineAddr(pml4e), e | (1 << 7)).unwrap();
    expect_pf(
        &mut g,
        FRESH,
        |a| a.mov(rax, qword_ptr(rbx)).unwrap(),
        E_P | E_U | E_RSVD,
    );
}

#[test]
fn reserved_bits_of_a_not_present_entry_are_ignored() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    let pte = g.pte(FRESH);
    g.set_pte(FRESH, (pte & !P) | RSVD_BIT);
    expect_pf(&mut g, FRESH, |a| a.mov(rax, qword_ptr(rbx)).unwrap(), E_U);
}

// ---------------------------------------------------------------------------
// 3. Accesses and instructions that cross a page boundary
// ---------------------------------------------------------------------------

/// Last 8 bytes of the first data page: `[16]` bytes from here straddle it.
const STRADDLE: u64 = DATA + 0x1000 - 8;
/// Frames with fresh pages for the two halves (P|RW|US|NX, no A/D).
fn two_fresh_pages(g: &mut Guest) {
    g.map_new(FRESH, P | RW | US | NX);
    g.map_new(FRESH + 0x1000, P | RW | US | NX);
}

#[test]
fn eight_and_sixteen_byte_loads_straddling_two_pages_read_both() {
    let mut g = Guest::new();
    let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5c).collect();
    g.poke(STRADDLE - 8, &bytes);
    for off in [4u64, 1, 7] {
        let lin = DATA + 0x1000 - off;
        let n = g.asm(CODE, |a| {
            a.mov(rbx, lin).unwrap();
            a.mov(rax, qword_ptr(rbx)).unwrap();
            a.movdqu(xmm1, xmmword_ptr(rbx)).unwrap();
            a.int(0x80).unwrap();
        });
        assert!(n > 0);
        assert_eq!(rerun(&mut g), soft_int());
        let want = g.peek_bytes(lin, 16);
        assert_eq!(
            g.st.gpr[0].to_le_bytes(),
            want[..8],
            "8-byte load at -{off}"
        );
        assert_eq!(
            g.st.xmm[1].to_le_bytes(),
            want[..],
            "16-byte load at -{off}"
        );
    }
}

#[test]
fn eight_and_sixteen_byte_stores_straddling_two_pages_write_both_and_dirty_both() {
    for (size, off) in [(8usize, 3u64), (16, 9), (16, 8)] {
        let mut g = Guest::new();
        two_fresh_pages(&mut g);
        let lin = FRESH + 0x1000 - off;
        let val: u128 = 0x0f1e_2d3c_4b5a_6978_8796_a5b4_c3d2_e1f0;
        g.st.gpr[0] = u64::from_le_bytes(val.to_le_bytes()[..8].try_into().unwrap());
        g.st.xmm[2] = val;
        with_rbx(&mut g, lin, |a| {
            if size == 8 {
                a.mov(qword_ptr(rbx), rax).unwrap();
            } else {
                a.movdqu(xmmword_ptr(rbx), xmm2).unwrap();
            }
        });
        assert_eq!(g.run(), soft_int());
        let got = g.peek_bytes(lin, size);
        assert_eq!(got, val.to_le_bytes()[..size], "{size}-byte store");
        assert_eq!(g.pte(FRESH) & (A | D), A | D, "first page dirty");
        assert_eq!(g.pte(FRESH + 0x1000) & (A | D), A | D, "second page dirty");
    }
}

#[test]
fn straddling_loads_with_the_second_page_absent_fault_at_its_first_byte() {
    for size in [8u64, 16] {
        let mut g = Guest::new();
        g.map_new(FRESH, P | RW | US | NX);
        expect_pf_cr2(
            &mut g,
            FRESH + 0x1000 - 5,
            |a| {
                if size == 8 {
                    a.mov(rax, qword_ptr(rbx)).unwrap();
                } else {
                    a.movdqu(xmm0, xmmword_ptr(rbx)).unwrap();
                }
            },
            E_U,
            FRESH + 0x1000,
        );
        assert_eq!(g.st.gpr[0], 0, "{size}-byte load: destination untouched");
        assert_eq!(g.st.xmm[0], 0);
    }
}

#[test]
fn straddling_stores_with_the_second_page_absent_fault_and_write_nothing() {
    for (size, off) in [(8u64, 1u64), (8, 7), (16, 8), (16, 15)] {
        let mut g = Guest::new();
        g.map_new(FRESH, P | RW | US | NX);
        g.poke(FRESH + 0xff0, &[0xcc; 16]);
        g.st.gpr[0] = u64::MAX;
        g.st.xmm[3] = u128::MAX;
        let pte_before = g.pte(FRESH);
        expect_pf_cr2(
            &mut g,
            FRESH + 0x1000 - off,
            |a| {
                if size == 8 {
                    a.mov(qword_ptr(rbx), rax).unwrap();
                } else {
                    a.movdqu(xmmword_ptr(rbx), xmm3).unwrap();
                }
            },
            E_U | E_W,
            FRESH + 0x1000,
        );
        assert_eq!(
            g.peek_bytes(FRESH + 0xff0, 16),
            [0xcc; 16],
            "{size}-byte store at -{off}: no partial write"
        );
        // A/D of the first page may be set by its (successful) translation;
        // nothing else in its entry may change.
        assert_eq!(g.pte(FRESH) & !(A | D), pte_before);
    }
}

#[test]
fn straddling_store_to_a_read_only_second_page_writes_nothing() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US | NX);
    g.map_new(FRESH + 0x1000, P | US | NX);
    g.poke(FRESH + 0xff8, &[0x11; 8]);
    g.poke(FRESH + 0x1000, &[0x22; 8]);
    g.st.gpr[0] = 0;
    expect_pf_cr2(
        &mut g,
        FRESH + 0xffc,
        |a| a.mov(qword_ptr(rbx), rax).unwrap(),
        E_P | E_W | E_U,
        FRESH + 0x1000,
    );
    assert_eq!(g.peek_bytes(FRESH + 0xff8, 8), [0x11; 8]);
    assert_eq!(g.peek_bytes(FRESH + 0x1000, 8), [0x22; 8]);
    assert_eq!(g.pte(FRESH + 0x1000) & D, 0);
}

#[test]
fn straddling_read_modify_writes_with_a_read_only_second_page_fault_and_write_nothing() {
    type Op = fn(&mut CodeAssembler);
    let ops: [(&str, Op); 3] = [
        ("add", |a| a.add(qword_ptr(rbx), 1).unwrap()),
        ("lock add", |a| a.lock().add(qword_ptr(rbx), 1).unwrap()),
        ("xchg", |a| a.xchg(qword_ptr(rbx), rax).unwrap()),
    ];
    for (name, op) in ops {
        let mut g = Guest::new();
        g.map_new(FRESH, P | RW | US | NX);
        g.map_new(FRESH + 0x1000, P | US | NX);
        g.poke(FRESH + 0xff8, &[0x11; 8]);
        g.poke(FRESH + 0x1000, &[0x22; 8]);
        expect_pf_cr2(&mut g, FRESH + 0xffa, op, E_P | E_W | E_U, FRESH + 0x1000);
        assert_eq!(g.peek_bytes(FRESH + 0xff8, 8), [0x11; 8], "{name}");
        assert_eq!(g.peek_bytes(FRESH + 0x1000, 8), [0x22; 8], "{name}");
        assert_eq!(g.st.gpr[0], 0, "{name}: register untouched");
    }
}

#[test]
fn push_and_call_straddling_into_an_absent_stack_page_fault_and_write_nothing() {
    // The stack's lowest mapped page is 0x7f_c000; with rsp 4 bytes above
    // it, an 8-byte push covers 0x7f_bffc..0x7f_c004.
    let low = 0x7f_c000u64;
    type Op = fn(&mut CodeAssembler);
    let ops: [(&str, Op); 2] = [
        ("push", |a| a.push(rcx).unwrap()),
        ("call", |a| a.call(0x40_0800).unwrap()),
    ];
    for (name, op) in ops {
        let mut g = Guest::new();
        g.poke(low, &[0x5e; 8]);
        let n = g.asm(CODE, |a| a.mov(ecx, 1).unwrap());
        let at = CODE + n as u64;
        g.asm(at, |a| {
            op(a);
            a.int(0x80).unwrap();
        });
        g.st.gpr[4] = low + 4;
        assert_eq!(g.run(), pf(E_U | E_W, low - 4), "{name}");
        assert_eq!(g.st.rip, at, "{name}");
        assert_eq!(g.st.gpr[4], low + 4, "{name}: rsp unchanged");
        assert_eq!(g.peek_bytes(low, 8), [0x5e; 8], "{name}: no partial write");
    }
}

/// Where a 10-byte `mov rax, imm64` straddling the end of the first code
/// page starts (4 bytes on the first page, 6 on the second).
const SPLIT: u64 = CODE + 0x1000 - 4;

#[test]
fn instruction_straddling_two_pages_executes() {
    let mut g = Guest::new();
    let n = g.asm(SPLIT, |a| {
        a.mov(rax, 0x1122_3344_5566_7788u64).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(n, 12);
    g.st.rip = SPLIT;
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x1122_3344_5566_7788);
    assert_eq!(g.st.rip, SPLIT + 12);
}

#[test]
fn instruction_straddling_into_a_not_present_page_faults_at_the_page_start() {
    let mut g = Guest::new();
    // Two instructions run first in the same would-be block.
    let first = SPLIT - 10;
    let n = g.asm(first, |a| {
        a.mov(ecx, 1).unwrap();
        a.mov(edx, 2).unwrap();
    });
    assert_eq!(n, 10);
    g.asm(SPLIT, |a| a.mov(rax, 0x1122_3344_5566_7788u64).unwrap());
    g.set_pte(CODE + 0x1000, 0);
    g.st.rip = first;
    assert_eq!(g.run(), pf(E_U | E_I, CODE + 0x1000));
    assert_eq!(g.st.rip, SPLIT, "rip at the straddling instruction");
    assert_eq!(g.st.cr2, CODE + 0x1000);
    assert_eq!((g.st.gpr[1], g.st.gpr[2], g.st.gpr[0]), (1, 2, 0));
}

#[test]
fn instruction_straddling_into_an_nx_page_faults_with_present_and_fetch() {
    let mut g = Guest::new();
    g.asm(SPLIT, |a| a.mov(rax, 0x1122_3344_5566_7788u64).unwrap());
    let pte = g.pte(CODE + 0x1000);
    g.set_pte(CODE + 0x1000, pte | NX);
    g.st.rip = SPLIT;
    assert_eq!(g.run(), pf(E_P | E_U | E_I, CODE + 0x1000));
    assert_eq!(g.st.rip, SPLIT);
}

#[test]
fn straddling_instruction_sees_a_remapped_second_page_after_a_flush() {
    // The block's second page is validated on every lookup.
    let mut g = Guest::new();
    g.asm(SPLIT, |a| {
        a.mov(rax, 0x1122_3344_5566_7788u64).unwrap();
        a.int(0x80).unwrap();
    });
    g.st.rip = SPLIT;
    assert_eq!(g.run(), soft_int());
    // A new second page holding different immediate bytes and the int.
    let f = g.alloc();
    let old = g.peek_bytes(CODE + 0x1000, 8);
    let mut new = old.clone();
    for b in new.iter_mut().take(6) {
        *b ^= 0xff;
    }
    g.mem.write(MachineAddr(f << 12), &new).unwrap();
    let pte = g.pte(CODE + 0x1000);
    g.set_pte(CODE + 0x1000, (f << 12) | (pte & 0xfff));
    g.cpu.flush_tlb(FlushScope::Page(CODE + 0x1000));
    g.st.rip = SPLIT;
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x1122_3344_5566_7788 ^ 0xffff_ffff_ffff_0000);
}

// ---------------------------------------------------------------------------
// 4. Soft-TLB invalidation
// ---------------------------------------------------------------------------

/// `FRESH` mapped to a frame holding `0xaaaa`, a spare frame holding
/// `0xbbbb`, and code reading `[FRESH]` into rax. Returns the spare frame.
fn remap_setup(g: &mut Guest) -> u64 {
    g.map_new(FRESH, P | RW | US | NX);
    g.poke(FRESH, &0xaaaa_u64.to_le_bytes());
    let b = g.alloc();
    g.mem.write_u64(MachineAddr(b << 12), 0xbbbb).unwrap();
    with_rbx(g, FRESH, |a| a.mov(rax, qword_ptr(rbx)).unwrap());
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0xaaaa);
    b
}

#[test]
fn remapped_page_is_seen_after_a_page_flush() {
    let mut g = Guest::new();
    let b = remap_setup(&mut g);
    g.set_pte(FRESH, (b << 12) | P | RW | US | NX);
    // Without a flush the old translation may still be used (architecturally
    // allowed), so this run's value is not checked.
    assert_eq!(rerun(&mut g), soft_int());
    g.cpu.flush_tlb(FlushScope::Page(FRESH));
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.st.gpr[0], 0xbbbb);
}

#[test]
fn remapped_page_is_seen_after_a_page_flush_of_any_address_in_it() {
    let mut g = Guest::new();
    let b = remap_setup(&mut g);
    g.set_pte(FRESH, (b << 12) | P | RW | US | NX);
    g.cpu.flush_tlb(FlushScope::Page(FRESH + 0xabc));
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.st.gpr[0], 0xbbbb);
}

#[test]
fn remapped_page_is_seen_after_a_full_flush() {
    let mut g = Guest::new();
    let b = remap_setup(&mut g);
    g.set_pte(FRESH, (b << 12) | P | RW | US | NX);
    g.cpu.flush_tlb(FlushScope::All);
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.st.gpr[0], 0xbbbb);
}

#[test]
fn unmapped_page_faults_after_a_page_flush() {
    let mut g = Guest::new();
    remap_setup(&mut g);
    g.set_pte(FRESH, 0);
    g.cpu.flush_tlb(FlushScope::Page(FRESH));
    assert_eq!(rerun(&mut g), pf(E_U, FRESH));
}

#[test]
fn cr3_switch_uses_the_new_tables_without_an_explicit_flush() {
    let mut g = Guest::new();
    let root1 = g.st.cr3;
    // A second root sharing every existing PML4 slot.
    let root2 = g.alloc() << 12;
    for i in 0..512 {
        let e = read_u64(&g, root1 + i * 8);
        g.mem.write_u64(MachineAddr(root2 + i * 8), e).unwrap();
    }
    // FRESH (an unused PML4 slot) maps a different frame under each root.
    let (fa, fb) = (g.alloc(), g.alloc());
    g.mem.write_u64(MachineAddr(fa << 12), 0xaaaa).unwrap();
    g.mem.write_u64(MachineAddr(fb << 12), 0xbbbb).unwrap();
    let pa = g.pte_addr_under(root1, FRESH);
    g.mem
        .write_u64(MachineAddr(pa), (fa << 12) | P | RW | US | NX)
        .unwrap();
    let pb = g.pte_addr_under(root2, FRESH);
    g.mem
        .write_u64(MachineAddr(pb), (fb << 12) | P | RW | US | NX)
        .unwrap();
    assert_ne!(pa, pb);
    with_rbx(&mut g, FRESH, |a| a.mov(rax, qword_ptr(rbx)).unwrap());
    for (root, want) in [(root1, 0xaaaa), (root2, 0xbbbb), (root1, 0xaaaa)] {
        g.st.cr3 = root;
        assert_eq!(rerun(&mut g), soft_int());
        assert_eq!(g.st.gpr[0], want, "cr3 {root:#x}");
    }
}

#[test]
fn write_faults_after_a_read_only_downgrade_and_a_flush() {
    for scope in [FlushScope::Page(FRESH), FlushScope::All] {
        let mut g = Guest::new();
        g.map_new(FRESH, P | RW | US | NX);
        g.st.gpr[0] = 7;
        with_rbx(&mut g, FRESH, |a| a.mov(qword_ptr(rbx), rax).unwrap());
        // The first store fills the TLB's write tag.
        assert_eq!(g.run(), soft_int());
        assert_eq!(g.peek_u64(FRESH), 7);
        let pte = g.pte(FRESH);
        g.set_pte(FRESH, pte & !RW);
        g.cpu.flush_tlb(scope);
        g.st.gpr[0] = 8;
        assert_eq!(rerun(&mut g), pf(E_P | E_W | E_U, FRESH), "{scope:?}");
        assert_eq!(g.peek_u64(FRESH), 7);
    }
}

#[test]
fn fetch_faults_after_an_nx_downgrade_and_a_flush() {
    let mut g = Guest::new();
    g.map_new(FRESH, P | RW | US);
    g.asm(FRESH, |a| a.int(0x80).unwrap());
    g.st.rip = FRESH;
    assert_eq!(g.run(), soft_int());
    let pte = g.pte(FRESH);
    g.set_pte(FRESH, pte | NX);
    g.cpu.flush_tlb(FlushScope::Page(FRESH));
    g.st.rip = FRESH;
    assert_eq!(g.run(), pf(E_P | E_U | E_I, FRESH));
}

#[test]
fn page_flush_of_an_aliasing_tlb_slot_does_not_lose_other_translations() {
    // Pages 256 apart share a direct-mapped TLB slot; flushing one and
    // remapping the other must still give the right answers.
    let mut g = Guest::new();
    let other = FRESH + 256 * 0x1000;
    g.map_new(FRESH, P | RW | US | NX);
    g.map_new(other, P | RW | US | NX);
    g.poke(FRESH, &1u64.to_le_bytes());
    g.poke(other, &2u64.to_le_bytes());
    let n = g.asm(CODE, |a| {
        a.mov(rbx, FRESH).unwrap();
        a.mov(rsi, other).unwrap();
        a.mov(rax, qword_ptr(rbx)).unwrap();
        a.mov(rdx, qword_ptr(rsi)).unwrap();
        a.mov(rcx, qword_ptr(rbx)).unwrap();
        a.int(0x80).unwrap();
    });
    assert!(n > 0);
    assert_eq!(g.run(), soft_int());
    assert_eq!((g.st.gpr[0], g.st.gpr[2], g.st.gpr[1]), (1, 2, 1));
    let f = g.pages[&other];
    let pte = g.pte(FRESH);
    g.set_pte(FRESH, (f << 12) | (pte & 0xfff) | NX);
    g.cpu.flush_tlb(FlushScope::Page(FRESH));
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!((g.st.gpr[0], g.st.gpr[2], g.st.gpr[1]), (2, 2, 2));
}

// ---------------------------------------------------------------------------
// 5. Block-cache invalidation: self-modifying and remapped code
// ---------------------------------------------------------------------------

/// Make the code page at `lin` writable (it is P|US by default).
fn make_code_writable(g: &mut Guest, lin: u64) {
    let pte = g.pte(lin);
    g.set_pte(lin, pte | RW);
}

#[test]
fn store_into_a_later_instruction_of_the_same_block_is_executed() {
    let mut g = Guest::new();
    make_code_writable(&mut g, CODE);
    g.asm(CODE, |a| {
        let mut target = a.create_label();
        a.lea(rbx, ptr(target)).unwrap();
        // `mov eax, imm32` is B8 id: the immediate starts one byte in.
        a.mov(dword_ptr(rbx + 1), 0x4242_4242).unwrap();
        a.mov(ecx, 5).unwrap();
        a.set_label(&mut target).unwrap();
        a.mov(eax, 0x1111_1111).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x4242_4242);
    assert_eq!(g.st.gpr[1], 5);
}

#[test]
fn byte_store_into_the_very_next_instruction_is_executed() {
    let mut g = Guest::new();
    make_code_writable(&mut g, CODE);
    g.asm(CODE, |a| {
        let mut target = a.create_label();
        a.lea(rbx, ptr(target)).unwrap();
        a.mov(byte_ptr(rbx + 1), 0x77).unwrap();
        a.set_label(&mut target).unwrap();
        a.mov(eax, 0x11).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x77);
}

#[test]
fn self_modifying_loop_sees_each_new_immediate() {
    // A loop rewrites the immediate of an instruction inside its own body
    // (a cached, chained block) on every iteration.
    let mut g = Guest::new();
    make_code_writable(&mut g, CODE);
    g.asm(CODE, |a| {
        let mut top = a.create_label();
        let mut imm = a.create_label();
        a.lea(rbx, ptr(imm)).unwrap();
        a.xor(esi, esi).unwrap();
        a.mov(ecx, 10).unwrap();
        a.set_label(&mut top).unwrap();
        a.mov(dword_ptr(rbx + 1), ecx).unwrap();
        a.set_label(&mut imm).unwrap();
        a.mov(eax, 0).unwrap();
        a.add(esi, eax).unwrap();
        a.dec(ecx).unwrap();
        a.jnz(top).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[6], 55, "sum of the immediates written, 10..=1");
}

#[test]
fn code_rewritten_by_the_hypervisor_between_runs_is_retranslated() {
    let mut g = Guest::new();
    g.asm(CODE, |a| {
        a.mov(eax, 0x11).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x11);
    let translated = g.cpu.stats().translated_blocks;
    // Same again: the cached block is reused.
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.cpu.stats().translated_blocks, translated);
    // A MachineMemory write to the immediate (no TLB flush).
    g.poke(CODE + 1, &[0x22]);
    assert_eq!(rerun(&mut g), soft_int());
    assert_eq!(g.st.gpr[0], 0x22);
    assert!(g.cpu.stats().translated_blocks > translated);
}

#[test]
fn store_through_a_writable_alias_of_a_code_frame_invalidates_its_blocks() {
    let mut g = Guest::new();
    let func = CODE + 0x1000;
    let alias = 0x70_0000;
    let frame = g.pages[&func];
    g.map(alias, frame, P | RW | US | NX);
    g.asm(func, |a| {
        a.mov(eax, 0x11).unwrap();
        a.ret().unwrap();
    });
    g.asm(CODE, |a| {
        a.mov(rbx, alias).unwrap();
        // Fill the alias's write tag while the frame holds no code yet.
        a.mov(byte_ptr(rbx + 0x800), 0x90).unwrap();
        a.call(func).unwrap();
        a.mov(ecx, eax).unwrap();
        // Rewrite `func`'s immediate through the alias, call it again.
        a.mov(byte_ptr(rbx + 1), 0x33).unwrap();
        a.call(func).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[1], 0x11, "first call ran the original code");
    assert_eq!(g.st.gpr[0], 0x33, "second call ran the rewritten code");
    // And across runs: rewrite again through the alias from a second run.
    g.asm(CODE + 0x800, |a| {
        a.mov(byte_ptr(rbx + 1), 0x44).unwrap();
        a.call(func).unwrap();
        a.int(0x80).unwrap();
    });
    g.st.rip = CODE + 0x800;
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x44);
}

#[test]
fn store_through_an_alias_whose_write_tag_predates_the_translation_is_seen_by_the_same_block() {
    // The alias's TLB write tag is filled while the frame holds no code;
    // translating the block must withdraw it, so the store in the block
    // takes the code-write path and the rewritten instruction after it in
    // the same block runs with the new immediate.
    let mut g = Guest::new();
    let func = CODE + 0x1000;
    let alias = 0x70_0000;
    let frame = g.pages[&func];
    g.map(alias, frame, P | RW | US | NX);
    // func: mov byte [rbx+5], 0x33 (4 bytes) ; mov eax, imm32 (imm at +5)
    let n = g.asm(func, |a| a.mov(byte_ptr(rbx + 5), 0x33).unwrap());
    assert_eq!(n, 4);
    g.asm(func + 4, |a| {
        a.mov(eax, 0x11).unwrap();
        a.int(0x80).unwrap();
    });
    g.asm(CODE, |a| {
        a.mov(rbx, alias).unwrap();
        a.mov(byte_ptr(rbx + 0x800), 0x90).unwrap();
        a.mov(rax, func).unwrap();
        a.jmp(rax).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0x33);
}

#[test]
fn locked_and_string_stores_into_code_are_seen() {
    let mut g = Guest::new();
    let func = CODE + 0x1000;
    make_code_writable(&mut g, func);
    g.asm(func, |a| {
        a.mov(eax, 0x10).unwrap();
        a.ret().unwrap();
    });
    g.asm(CODE, |a| {
        a.mov(rbx, func).unwrap();
        a.call(func).unwrap();
        a.mov(r8d, eax).unwrap();
        // lock add to the immediate: 0x10 + 5.
        a.lock().add(byte_ptr(rbx + 1), 5).unwrap();
        a.call(func).unwrap();
        a.mov(r9d, eax).unwrap();
        // rep stosb over the immediate's low byte.
        a.lea(rdi, qword_ptr(rbx + 1)).unwrap();
        a.mov(al, 0x66).unwrap();
        a.mov(ecx, 1).unwrap();
        a.rep().stosb().unwrap();
        a.call(func).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[8], 0x10);
    assert_eq!(g.st.gpr[9], 0x15);
    assert_eq!(g.st.gpr[0], 0x66);
}

#[test]
fn code_page_remapped_to_another_frame_runs_the_new_code_after_a_flush() {
    for scope in [FlushScope::Page(CODE + 0x1000), FlushScope::All] {
        let mut g = Guest::new();
        let func = CODE + 0x1000;
        g.asm(func, |a| {
            a.mov(eax, 0x11).unwrap();
            a.ret().unwrap();
        });
        g.asm(CODE, |a| {
            a.call(func).unwrap();
            a.int(0x80).unwrap();
        });
        assert_eq!(g.run(), soft_int());
        assert_eq!(g.st.gpr[0], 0x11);
        let f = g.alloc();
        g.asm_in_frame(f, func, |a| {
            a.mov(eax, 0x22).unwrap();
            a.ret().unwrap();
        });
        let pte = g.pte(func);
        g.set_pte(func, (f << 12) | (pte & 0xfff));
        g.cpu.flush_tlb(scope);
        // Reached through the (chained) call from the unchanged block.
        assert_eq!(rerun(&mut g), soft_int());
        assert_eq!(g.st.gpr[0], 0x22, "{scope:?}");
    }
}

#[test]
fn same_code_frame_mapped_at_two_addresses_runs_at_both() {
    // Blocks are keyed by linear rip and validated by machine address: a
    // second mapping of the frame runs (with its own rip-relative view).
    let mut g = Guest::new();
    let other = 0x50_0000;
    let frame = g.pages[&CODE];
    g.map(other, frame, P | US);
    g.asm(CODE, |a| {
        let mut here = a.create_label();
        a.set_label(&mut here).unwrap();
        a.lea(rax, ptr(here)).unwrap();
        a.int(0x80).unwrap();
    });
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], CODE);
    g.st.rip = other;
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], other);
    // Rewriting the frame (hypervisor) is seen at the second address too.
    g.poke(CODE, &[0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90]);
    g.st.gpr[0] = 0;
    g.st.rip = other;
    assert_eq!(g.run(), soft_int());
    assert_eq!(g.st.gpr[0], 0, "the lea was overwritten with nops");
    assert_eq!(g.st.rip, other + 9);
}
