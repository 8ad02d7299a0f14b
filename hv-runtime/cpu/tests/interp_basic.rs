//! Interpreter behaviour: exits, faults, flags, single-step, deadlines.

mod interp_util;

use hv_cpu::Exit;
use iced_x86::code_asm::*;
use interp_util::*;

#[test]
fn arithmetic_loop_and_hlt_gp() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(rcx, 10u64).unwrap();
        a.xor(eax, eax).unwrap();
        let mut l = a.create_label();
        a.set_label(&mut l).unwrap();
        a.add(rax, rcx).unwrap();
        a.dec(rcx).unwrap();
        a.jnz(l).unwrap();
        a.hlt().unwrap();
    });
    assert_eq!(g.run(), gp0());
    assert_eq!(g.st.gpr[0], 55);
    // rip at the hlt
    let mut d = [0u8; 1];
    g.mem
        .read(hv_cpu::mem::MachineAddr(g.maddr(g.st.rip)), &mut d)
        .unwrap();
    assert_eq!(d[0], 0xf4);
}

#[test]
fn syscall_int_int3_exits() {
    let mut g = Guest::new();
    let n = g.asm(0x40_0000, |a| {
        a.syscall().unwrap();
        a.int(0x80).unwrap();
        a.int3().unwrap();
    });
    assert_eq!(g.run(), Exit::Syscall);
    assert_eq!(g.st.rip, 0x40_0002);
    assert_eq!(g.run(), Exit::SoftInt(0x80));
    assert_eq!(g.st.rip, 0x40_0004);
    assert_eq!(
        g.run(),
        Exit::Exception {
            vector: 3,
            error_code: None,
            cr2: 0
        }
    );
    assert_eq!(g.st.rip, 0x40_0000 + n as u64);
}

/// Emits one instruction into a test program.
type Emit = Box<dyn Fn(&mut CodeAssembler)>;

#[test]
fn privileged_instructions_raise_gp0() {
    let cases: Vec<Emit> = vec![
        Box::new(|a| a.cli().unwrap()),
        Box::new(|a| a.sti().unwrap()),
        Box::new(|a| a.hlt().unwrap()),
        Box::new(|a| a.mov(rax, cr3).unwrap()),
        Box::new(|a| a.mov(cr3, rax).unwrap()),
        Box::new(|a| a.rdmsr().unwrap()),
        Box::new(|a| a.wrmsr().unwrap()),
        Box::new(|a| a.invlpg(ptr(rax)).unwrap()),
        Box::new(|a| a.wbinvd().unwrap()),
        Box::new(|a| a.out(dx, al).unwrap()),
        Box::new(|a| a.in_(al, dx).unwrap()),
        Box::new(|a| a.swapgs().unwrap()),
        Box::new(|a| a.lgdt(ptr(rax)).unwrap()),
        Box::new(|a| a.iretq().unwrap()),
        Box::new(|a| a.clts().unwrap()),
        Box::new(|a| a.sysretq().unwrap()),
    ];
    for (i, c) in cases.iter().enumerate() {
        let mut g = Guest::new();
        g.asm(0x40_0000, |a| {
            a.nop().unwrap();
            c(a);
        });
        assert_eq!(g.run(), gp0(), "case {i}");
        assert_eq!(g.st.rip, 0x40_0001, "case {i}");
    }
}

#[test]
fn cli_allowed_with_iopl3() {
    let mut g = Guest::new();
    g.st.rflags |= 3 << 12;
    g.asm(0x40_0000, |a| {
        a.cli().unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    assert_eq!(g.st.rflags & (1 << 9), 0);
}

#[test]
fn ud2_and_invalid_are_ud() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| a.ud2().unwrap());
    assert_eq!(g.run(), ud());
    assert_eq!(g.st.rip, 0x40_0000);
    let mut g = Guest::new();
    g.poke(0x40_0000, &[0x0f, 0x04]); // invalid opcode
    assert_eq!(g.run(), ud());
    // An instruction we do not implement (VEX AVX) is #UD too.
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| a.vaddps(ymm0, ymm1, ymm2).unwrap());
    assert_eq!(g.run(), ud());
}

#[test]
fn divide_errors() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.xor(ecx, ecx).unwrap();
        a.div(rcx).unwrap();
    });
    assert_eq!(
        g.run(),
        Exit::Exception {
            vector: 0,
            error_code: None,
            cr2: 0
        }
    );
    assert_eq!(g.st.rip, 0x40_0002);
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(edx, 5u32).unwrap();
        a.mov(ecx, 2u32).unwrap();
        a.div(ecx).unwrap();
    });
    assert_eq!(
        g.run().clone(),
        Exit::Exception {
            vector: 0,
            error_code: None,
            cr2: 0
        }
    );
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(rax, 0x8000_0000_0000_0000u64).unwrap();
        a.cqo().unwrap();
        a.mov(rcx, -1i64).unwrap();
        a.idiv(rcx).unwrap();
    });
    assert_eq!(
        g.run(),
        Exit::Exception {
            vector: 0,
            error_code: None,
            cr2: 0
        }
    );
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(rax, 100u64).unwrap();
        a.xor(edx, edx).unwrap();
        a.mov(rcx, 7u64).unwrap();
        a.div(rcx).unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    assert_eq!((g.st.gpr[0], g.st.gpr[2]), (14, 2));
}

#[test]
fn trap_flag_single_steps() {
    let mut g = Guest::new();
    g.st.rflags |= 1 << 8;
    g.asm(0x40_0000, |a| {
        a.mov(eax, 1u32).unwrap();
        a.mov(ebx, 2u32).unwrap();
        a.int3().unwrap();
    });
    let db = Exit::Exception {
        vector: 1,
        error_code: None,
        cr2: 0,
    };
    assert_eq!(g.run(), db);
    assert_eq!(g.st.rip, 0x40_0005);
    assert_eq!(g.st.gpr[0], 1);
    assert_eq!(g.st.gpr[3], 0);
    assert_eq!(g.run(), db);
    assert_eq!(g.st.gpr[3], 2);
}

#[test]
fn deadline_instructions_is_honoured() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        let mut l = a.create_label();
        a.set_label(&mut l).unwrap();
        a.inc(rax).unwrap();
        a.jmp(l).unwrap();
    });
    assert_eq!(g.run_n(1000), Exit::Deadline);
    assert!(
        g.st.gpr[0] >= 500 && g.st.gpr[0] <= 500 + 64,
        "{}",
        g.st.gpr[0]
    );
    assert_eq!(g.run_n(0), Exit::Deadline);
    let before = g.st.gpr[0];
    assert_eq!(g.run_n(100), Exit::Deadline);
    assert!(g.st.gpr[0] - before >= 50);
}

#[test]
fn flags_after_sub_and_pushf() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(eax, 1u32).unwrap();
        a.sub(eax, 2u32).unwrap();
        a.pushfq().unwrap();
        a.pop(rbx).unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    let f = g.st.gpr[3];
    // CF, PF, AF, SF set; ZF, OF clear.
    assert_eq!(f & 0x8d5, 0x1 | 0x4 | 0x10 | 0x80);
    assert_eq!(g.st.rflags & 0x8d5, 0x1 | 0x4 | 0x10 | 0x80);
}

#[test]
fn cpuid_and_rdtsc_come_from_env() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(eax, 7u32).unwrap();
        a.mov(ecx, 1u32).unwrap();
        a.cpuid().unwrap();
        a.mov(r8, rax).unwrap();
        a.rdtsc().unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    assert_eq!(g.st.gpr[8], 7);
    assert_eq!(g.st.gpr[3], 1);
    assert_eq!(g.st.gpr[0], 0x5566_7788);
    assert_eq!(g.st.gpr[2], 0x1122_3344);
}

#[test]
fn string_ops_and_lock() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(rdi, 0x60_0ff0u64).unwrap();
        a.mov(rcx, 100u64).unwrap();
        a.mov(al, 0xabu32).unwrap();
        a.rep().stosb().unwrap();
        a.mov(rsi, 0x60_0ff0u64).unwrap();
        a.mov(rdi, 0x60_3000u64).unwrap();
        a.mov(rcx, 25u64).unwrap();
        a.rep().movsd().unwrap();
        a.mov(rax, 5u64).unwrap();
        a.lock().xadd(qword_ptr(0x60_3000u64), rax).unwrap();
        a.mov(rbx, qword_ptr(0x60_3000u64)).unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    assert_eq!(g.st.gpr[0], 0xabab_abab_abab_abab);
    assert_eq!(g.st.gpr[3], 0xabab_abab_abab_abab + 5);
    assert_eq!(g.peek_u64(0x60_3000 + 96), 0xabab_abab);
}

#[test]
fn segment_loads() {
    let mut g = Guest::new();
    g.asm(0x40_0000, |a| {
        a.mov(eax, 0xe02bu32).unwrap();
        a.mov(ds, ax).unwrap();
        a.mov(ss, ax).unwrap();
        a.mov(eax, 0x1234u32).unwrap();
        a.mov(fs, ax).unwrap();
    });
    assert_eq!(
        g.run(),
        Exit::Exception {
            vector: 13,
            error_code: Some(0x1234),
            cr2: 0
        }
    );
    assert_eq!(g.st.seg[3].selector, 0xe02b);
    assert_eq!(g.st.seg[2].selector, 0xe02b);
}

#[test]
fn fs_relative_addressing() {
    let mut g = Guest::new();
    g.st.seg[4].base = 0x60_0000;
    g.asm(0x40_0000, |a| {
        a.mov(qword_ptr(0x10u64).fs(), 77i32).unwrap();
        a.mov(rax, qword_ptr(0x60_0010u64)).unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    assert_eq!(g.st.gpr[0], 77);
}

const CF: u64 = 1;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;

#[test]
fn single_step_sees_the_flags_of_an_instruction_whose_flags_are_dead_in_its_block() {
    let mut g = Guest::new();
    g.st.rflags |= 1 << 8;
    g.st.gpr[0] = 0xffff_ffff;
    g.st.gpr[3] = 1;
    g.asm(0x40_0000, |a| {
        a.add(eax, ebx).unwrap(); // CF=1 ZF=1, overwritten by the sub below
        a.sub(ecx, 1i32).unwrap();
        a.int3().unwrap();
    });
    let db = Exit::Exception {
        vector: 1,
        error_code: None,
        cr2: 0,
    };
    assert_eq!(g.run(), db);
    assert_eq!(g.st.gpr[0], 0);
    assert_eq!(g.st.rflags & (CF | ZF | SF), CF | ZF);
    assert_eq!(g.run(), db);
    assert_eq!(g.st.rflags & (CF | ZF | SF), CF | SF);
}

#[test]
fn flags_are_exact_at_a_fault_after_instructions_whose_flags_are_overwritten_later() {
    let mut g = Guest::new();
    g.st.gpr[0] = 0xffff_ffff;
    g.st.gpr[3] = 1;
    g.asm(0x40_0000, |a| {
        a.add(eax, ebx).unwrap(); // CF=1 ZF=1
        a.rol(edx, 3i32).unwrap(); // CF/OF only
        a.mov(ecx, dword_ptr(0x70_0000)).unwrap(); // not mapped: #PF
        a.xor(esi, esi).unwrap(); // would overwrite all status flags
        a.int3().unwrap();
    });
    assert_eq!(g.run(), pf(4, 0x70_0000));
    assert_eq!(g.st.rip, 0x40_0000 + 2 + 3);
    // rol of 0 leaves CF=0 (its own CF) and keeps ZF from the add.
    assert_eq!(g.st.rflags & (CF | ZF | SF), ZF);
}

#[test]
fn overlapping_forward_rep_movsb_copies_element_by_element() {
    let mut g = Guest::new();
    g.poke(0x60_0000, b"abc");
    g.asm(0x40_0000, |a| {
        a.mov(rsi, 0x60_0000u64).unwrap();
        a.mov(rdi, 0x60_0003u64).unwrap();
        a.mov(ecx, 9u32).unwrap();
        a.cld().unwrap();
        a.rep().movsb().unwrap();
        a.int3().unwrap();
    });
    let _ = g.run();
    assert_eq!(g.st.gpr[1], 0);
    let lo = g.peek_u64(0x60_0000).to_le_bytes();
    let hi = g.peek_u64(0x60_0008).to_le_bytes();
    assert_eq!(&lo, b"abcabcab");
    assert_eq!(&hi[..4], b"cabc");
}

#[test]
fn read_modify_write_to_a_read_only_page_is_a_write_fault() {
    let mut g = Guest::new();
    g.map_new(0x70_0000, P | US | NX);
    g.asm(0x40_0000, |a| {
        a.mov(rbx, 0x70_0000u64).unwrap();
        a.add(qword_ptr(rbx), rax).unwrap();
        a.int3().unwrap();
    });
    // present | write | user
    assert_eq!(g.run(), pf(7, 0x70_0000));
}
