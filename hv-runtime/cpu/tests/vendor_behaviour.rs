//! The software CPU follows the vendor its `cpuid` names, whatever the host
//! (docs/CPU-VENDORS.md). The differential tests check the host's vendor
//! against the host; these check both vendors on every host, with a
//! `cpuid` of a fixed Intel or AMD CPU.

mod interp_util;

use hv_cpu::Exit;
use hv_cpu::model::{CpuModel, MXCSR_MM, Vendor};
use hv_cpu::state::{rflags, sreg};
use iced_x86::code_asm::*;
use interp_util::*;

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x60_0000;
const BOTH: [CpuModel; 2] = [CpuModel::INTEL, CpuModel::AMD];

fn bp() -> Exit {
    Exit::Exception {
        vector: 3,
        error_code: None,
        cr2: 0,
    }
}

/// `0F 0D /r`: a reserved NOP on Intel; AMD's PREFETCH group, whose
/// register forms are #UD. The memory forms are prefetches (NOPs) on both.
#[test]
fn prefetch_group_register_forms_are_ud_on_amd_only() {
    for model in BOTH {
        let mut g = Guest::new();
        // nop [rax] via 0F 0D /1 (prefetchw on AMD), then 0F 0D /3 with a
        // register operand (modrm 0xD9: reg 3, rm rcx), then int3.
        g.poke(CODE, &[0x0f, 0x0d, 0x08, 0x0f, 0x0d, 0xd9, 0xcc]);
        g.st.gpr[0] = DATA;
        let exit = g.run_with(&ModelEnv(model));
        match model.vendor {
            Vendor::Amd => {
                assert_eq!(exit, ud(), "{model:?}");
                assert_eq!(g.st.rip, CODE + 3, "the register form faults");
            }
            Vendor::Intel => {
                assert_eq!(exit, bp(), "{model:?}");
                assert_eq!(g.st.rip, CODE + 7);
            }
        }
    }
}

/// `repe cmpsb` that faults part-way: RCX/RSI/RDI count the completed
/// iterations on both; RFLAGS is restored to its value before the
/// instruction on Intel and is the last completed iteration's on AMD.
#[test]
fn rep_cmps_fault_part_way_flags_follow_the_vendor() {
    for model in BOTH {
        let mut g = Guest::new();
        // Unmap the page after the first data page: the compare runs into it.
        let end = DATA + 0x8000;
        let p = g.pte(end);
        g.set_pte(end, p & !P);
        g.asm(CODE, |a| {
            a.cld().unwrap();
            a.repe().cmpsb().unwrap();
        });
        // Equal bytes up to the unmapped page: every completed iteration
        // sets ZF and PF (difference 0).
        g.st.gpr[6] = end - 4; // rsi
        g.st.gpr[7] = end - 4 - 0x1000; // rdi
        g.st.gpr[1] = 100; // rcx
        g.st.rflags = rflags::RESERVED1 | rflags::CF | rflags::SF; // before
        let exit = g.run_with(&ModelEnv(model));
        assert_eq!(exit, pf(4, end), "{model:?}");
        assert_eq!(g.st.gpr[1], 96, "{model:?}: four iterations completed");
        assert_eq!(g.st.gpr[6], end);
        let status = g.st.rflags & rflags::STATUS;
        match model.vendor {
            Vendor::Intel => assert_eq!(status, rflags::CF | rflags::SF),
            Vendor::Amd => assert_eq!(status, rflags::ZF | rflags::PF),
        }
    }
}

/// MXCSR_MASK, MXCSR.MM and misaligned SSE memory operands.
#[test]
fn misaligned_sse_mode_exists_on_the_amd_model_only() {
    for model in BOTH {
        // FXSAVE's MXCSR_MASK.
        let mut g = Guest::new();
        g.asm(CODE, |a| {
            a.fxsave64(ptr(DATA)).unwrap();
            a.int3().unwrap();
        });
        assert_eq!(g.run_with(&ModelEnv(model)), bp());
        let mask = u32::from_le_bytes(g.peek_bytes(DATA + 28, 4).try_into().unwrap());
        assert_eq!(mask, model.mxcsr_mask(), "{model:?}");

        // ldmxcsr with MM, then an unaligned addps and an unaligned movaps.
        let mut g = Guest::new();
        g.poke(DATA, &(0x1f80 | MXCSR_MM).to_le_bytes());
        g.asm(CODE, |a| {
            a.ldmxcsr(dword_ptr(DATA)).unwrap();
            a.addps(xmm0, xmmword_ptr(DATA + 0x101)).unwrap();
            a.movaps(xmm1, xmmword_ptr(DATA + 0x101)).unwrap();
            a.int3().unwrap();
        });
        let exit = g.run_with(&ModelEnv(model));
        assert_eq!(exit, gp0(), "{model:?}");
        match model.vendor {
            // MM is a reserved bit: ldmxcsr faults.
            Vendor::Intel => assert_eq!(g.st.rip, CODE),
            // addps runs misaligned; movaps still needs alignment.
            Vendor::Amd => {
                assert_eq!(g.st.mxcsr, 0x1f80 | MXCSR_MM);
                let movaps = CODE + 8 + 8;
                assert_eq!(g.st.rip, movaps);
            }
        }

        // Without MM, the misaligned addps faults on both.
        let mut g = Guest::new();
        g.asm(CODE, |a| {
            a.addps(xmm0, xmmword_ptr(DATA + 0x101)).unwrap();
            a.int3().unwrap();
        });
        g.st.mxcsr = 0x1f80;
        assert_eq!(g.run_with(&ModelEnv(model)), gp0(), "{model:?}");
        assert_eq!(g.st.rip, CODE);
    }
}

/// Loading a null selector into FS: Intel clears the base, AMD (without
/// NullSelectClearsBase) keeps it.
#[test]
fn null_selector_base_follows_the_vendor() {
    let amd_clearing = CpuModel {
        null_selector_clears_base: true,
        ..CpuModel::AMD
    };
    for model in [CpuModel::INTEL, CpuModel::AMD, amd_clearing] {
        let mut g = Guest::new();
        g.asm(CODE, |a| {
            a.xor(eax, eax).unwrap();
            a.mov(fs, ax).unwrap();
            a.int3().unwrap();
        });
        g.st.seg[sreg::FS].base = 0x1234_5000;
        assert_eq!(g.run_with(&ModelEnv(model)), bp(), "{model:?}");
        let base = g.st.seg[sreg::FS].base;
        assert_eq!(g.st.seg[sreg::FS].selector, 0);
        if model.null_selector_clears_base {
            assert_eq!(base, 0, "{model:?}");
        } else {
            assert_eq!(base, 0x1234_5000, "{model:?}");
        }
    }
}

/// The modelled vendor is the one `cpuid` names, read at every run.
#[test]
fn the_model_is_read_from_cpuid_at_every_run() {
    let mut g = Guest::new();
    g.poke(CODE, &[0x0f, 0x0d, 0xd9, 0xcc]);
    assert_eq!(g.run_with(&ModelEnv(CpuModel::AMD)), ud());
    assert_eq!(g.run_with(&ModelEnv(CpuModel::INTEL)), bp());
}

/// SYSENTER in long mode: Intel #GP(0) at CPL 3 (as with SYSENTER_CS = 0,
/// the hypervisor decides), AMD #UD. SYSRET at CPL 3 is #GP(0) on both.
#[test]
fn sysenter_is_ud_on_amd_and_gp_on_intel() {
    for model in BOTH {
        let mut g = Guest::new();
        g.asm(CODE, |a| a.sysenter().unwrap());
        let want = match model.vendor {
            Vendor::Amd => ud(),
            Vendor::Intel => gp0(),
        };
        assert_eq!(g.run_with(&ModelEnv(model)), want, "{model:?}");
        let mut g = Guest::new();
        g.asm(CODE, |a| a.sysretq().unwrap());
        assert_eq!(g.run_with(&ModelEnv(model)), gp0(), "{model:?}");
    }
}
