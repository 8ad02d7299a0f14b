//! The software CPU implements everything its CPUID advertises: every
//! legacy-encoded (and BMI VEX) instruction of iced-x86's `Code` table whose
//! CPUID features are all advertised by `hv_cpu::interp::mask_cpuid` runs in
//! the interpreter without #UD (other faults — #GP for privileged
//! instructions, #PF, #DE, #XM — are fine: the instruction is implemented).
//! The feature set is read back from `mask_cpuid` itself, so a new CPUID bit
//! without the instructions behind it fails here.

use hv_cpu::interp::{InterpVcpu, mask_cpuid};
use hv_cpu::model::{CpuModel, Vendor};
use hv_cpu::testing::generator::generate_code;
use hv_cpu::testing::vcpu::{FixedEnv, VcpuRunner};
use hv_cpu::testing::{Backend, Stop};
use iced_x86::{Code, CpuidFeature as F, EncodingKind};

/// `#UD`.
const UD: u8 = 6;
/// Instances tried per code (random operands, register and memory forms).
const TRIES: u64 = 4;

/// The iced-x86 features the interpreter advertises: baseline x86-64 and
/// the x87/SSE/SSE2 every x86-64 CPU has, plus each optional feature whose
/// CPUID bit survives `mask_cpuid` with every input bit set.
fn advertised() -> Vec<F> {
    let all = [u32::MAX; 4];
    let [_, _, c1, d1] = mask_cpuid(1, 0, all);
    let [_, b7, _, _] = mask_cpuid(7, 0, all);
    let [_, _, cx, dx] = mask_cpuid(0x8000_0001, 0, all);
    let mut v = vec![
        F::INTEL8086,
        F::INTEL186,
        F::INTEL286,
        F::INTEL386,
        F::INTEL486,
        F::X64,
        F::CPUID,
        F::MULTIBYTENOP,
        F::PAUSE,
        F::MSR,
    ];
    let bits = [
        (d1, 0, F::FPU),
        (d1, 0, F::FPU287),
        (d1, 0, F::FPU387),
        (d1, 4, F::TSC),
        (d1, 8, F::CX8),
        (d1, 15, F::CMOV),
        (d1, 19, F::CLFSH),
        (d1, 23, F::MMX),
        (d1, 24, F::FXSR),
        (d1, 25, F::SSE),
        (d1, 26, F::SSE2),
        (c1, 0, F::SSE3),
        (c1, 3, F::MONITOR),
        (c1, 9, F::SSSE3),
        (c1, 13, F::CMPXCHG16B),
        (c1, 19, F::SSE4_1),
        (c1, 20, F::SSE4_2),
        (c1, 22, F::MOVBE),
        (c1, 23, F::POPCNT),
        (c1, 25, F::AES),
        (c1, 26, F::XSAVE),
        (c1, 28, F::AVX),
        (c1, 30, F::RDRAND),
        (b7, 0, F::FSGSBASE),
        (b7, 3, F::BMI1),
        (b7, 8, F::BMI2),
        (b7, 18, F::RDSEED),
        (b7, 19, F::ADX),
        (cx, 5, F::LZCNT),
        (dx, 11, F::SYSCALL),
        (dx, 27, F::RDTSCP),
    ];
    for (reg, bit, f) in bits {
        if reg >> bit & 1 != 0 {
            v.push(f);
        }
    }
    v
}

/// x87 instructions the software CPU deliberately leaves #UD (documented in
/// `tests/README.md` and `docs/ARCHITECTURE.md`: transcendental and BCD
/// instructions, `fprem`/`fprem1`/`fscale`/`fxtract`, the 16-bit
/// environment/state layouts). They belong to the baseline x87 FPU
/// (CPUID.1:EDX.FPU), which an x86-64 CPU cannot withdraw. The sweep checks
/// that each of them still raises #UD, so an entry goes stale (and fails)
/// once it is implemented.
const KNOWN_X87_GAPS: &[Code] = &[
    Code::Fldenv_m14byte,
    Code::Fnstenv_m14byte,
    Code::Fstenv_m14byte,
    Code::Frstor_m94byte,
    Code::Fnsave_m94byte,
    Code::Fsave_m94byte,
    Code::F2xm1,
    Code::Fyl2x,
    Code::Fptan,
    Code::Fpatan,
    Code::Fxtract,
    Code::Fprem1,
    Code::Fprem,
    Code::Fyl2xp1,
    Code::Fsincos,
    Code::Fscale,
    Code::Fsin,
    Code::Fcos,
    Code::Fbld_m80bcd,
    Code::Fbstp_m80bcd,
];

/// Instructions whose #UD is architectural in this setting even though
/// their features are advertised. The interpreter models the host's vendor
/// here (the runner's `cpuid` is the host's, masked).
fn legitimately_ud(code: Code, model: CpuModel) -> bool {
    let name = format!("{code:?}");
    // ud0/ud1/ud2 are defined to raise #UD.
    name.starts_with("Ud0") || name.starts_with("Ud1") || name.starts_with("Ud2")
        // AMD: `0F 0D` is the PREFETCH group; its register forms are #UD
        // (docs/CPU-VENDORS.md). `vendor_behaviour.rs` checks both vendors.
        || model.vendor == Vendor::Amd
            && matches!(
                code,
                Code::Reservednop_rm16_r16_0F0D
                    | Code::Reservednop_rm32_r32_0F0D
                    | Code::Reservednop_rm64_r64_0F0D
            )
}

/// Features the interpreter executes on the host FPU (`interp::hostfp`):
/// on a host without them it gives the guest #UD (and `mask_cpuid`, which
/// masks the host's CPUID, does not advertise them).
fn host_lacks(f: F) -> bool {
    match f {
        F::SSE3 => !std::is_x86_feature_detected!("sse3"),
        F::SSE4_1 => !std::is_x86_feature_detected!("sse4.1"),
        _ => false,
    }
}

#[test]
fn every_advertised_instruction_is_implemented() {
    let feats = advertised();
    let model = CpuModel::from_env(&FixedEnv);
    eprintln!("the interpreter models {model:?} (the host's vendor)");
    let skipped: Vec<F> = [F::SSE3, F::SSE4_1]
        .into_iter()
        .filter(|&f| host_lacks(f))
        .collect();
    if !skipped.is_empty() {
        eprintln!("the host CPU lacks {skipped:?}: instructions needing them are skipped");
    }
    let mut runner = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    let (mut checked, mut unbuildable) = (0usize, Vec::new());
    let mut missing = Vec::new();
    let mut gaps_seen = Vec::new();
    for code in Code::values() {
        let op = code.op_code();
        let enc_ok = match op.encoding() {
            EncodingKind::Legacy => true,
            // The VEX encodings are advertised only for BMI1/BMI2.
            EncodingKind::VEX => code
                .cpuid_features()
                .iter()
                .all(|f| matches!(f, F::BMI1 | F::BMI2)),
            _ => false,
        };
        if !enc_ok
            || !op.is_instruction()
            || !op.mode64()
            || !code.cpuid_features().iter().all(|f| feats.contains(f))
            || legitimately_ud(code, model)
            || code.cpuid_features().iter().any(|&f| host_lacks(f))
        {
            continue;
        }
        let mut built = false;
        for seed in 0..TRIES {
            let Some(case) = generate_code(code, seed) else {
                continue;
            };
            built = true;
            let out = runner.run(&case);
            if let Stop::Exception { vector: UD, .. } = out.stop {
                if KNOWN_X87_GAPS.contains(&code) {
                    gaps_seen.push(code);
                    break;
                }
                let text = case
                    .instructions()
                    .last()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                missing.push(format!("{code:?} ({text})"));
                break;
            }
        }
        if built {
            checked += 1;
        } else {
            unbuildable.push(format!("{code:?}"));
        }
    }
    eprintln!(
        "{checked} advertised codes run without #UD; {} not built by the generator (operand kinds it cannot make): {unbuildable:?}",
        unbuildable.len()
    );
    assert!(checked > 1000, "only {checked} codes checked");
    let stale: Vec<&Code> = KNOWN_X87_GAPS
        .iter()
        .filter(|c| !gaps_seen.contains(c))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_X87_GAPS entries that no longer raise #UD (remove them): {stale:?}"
    );
    assert!(
        missing.is_empty(),
        "advertised but #UD in the interpreter ({}): {missing:?}",
        missing.len()
    );
}

/// Advertised instructions whose operand kinds the generic sweep cannot
/// build (implicit RDI/RBX memory, 64-bit absolute addresses, segment
/// registers), each with its set-up.
#[test]
fn advertised_instructions_with_implicit_operands_are_implemented() {
    use hv_cpu::testing::SCRATCH_BASE;
    use hv_cpu::testing::generator::case_of;
    use iced_x86::{Instruction as I, MemoryOperand, Register as R};
    let lea = |r: R| {
        I::with2(
            Code::Lea_r64_m,
            r,
            MemoryOperand::with_base_displ(R::R15, 0x40),
        )
    };
    let seqs: Vec<(&str, Vec<Result<I, iced_x86::IcedError>>)> = vec![
        (
            "maskmovdqu",
            vec![
                lea(R::RDI),
                I::with_maskmovdqu(64, R::XMM1, R::XMM2, R::None),
            ],
        ),
        (
            "xlatb",
            vec![
                lea(R::RBX),
                I::with1(Code::Xlat_m8, MemoryOperand::with_base_index(R::RBX, R::AL)),
            ],
        ),
        (
            "mov al, moffs",
            vec![I::with2(
                Code::Mov_moffs8_AL,
                MemoryOperand::with_displ(SCRATCH_BASE, 8),
                R::AL,
            )],
        ),
        (
            "mov rax, moffs",
            vec![I::with2(
                Code::Mov_RAX_moffs64,
                R::RAX,
                MemoryOperand::with_displ(SCRATCH_BASE, 8),
            )],
        ),
        (
            "enter",
            vec![I::with2(Code::Enterq_imm16_imm8, 16u32, 0u32)],
        ),
        (
            "push fs",
            vec![
                I::with1(Code::Pushq_FS, R::FS),
                I::with1(Code::Popq_FS, R::FS),
            ],
        ),
        (
            "push gs",
            vec![
                I::with1(Code::Pushq_GS, R::GS),
                I::with1(Code::Popq_GS, R::GS),
            ],
        ),
        (
            "mov r32, sreg",
            vec![I::with2(Code::Mov_r32m16_Sreg, R::EAX, R::DS)],
        ),
        (
            "mov sreg, r32",
            vec![
                I::with2(Code::Mov_r32m16_Sreg, R::EAX, R::DS),
                I::with2(Code::Mov_Sreg_r32m16, R::ES, R::EAX),
            ],
        ),
    ];
    let mut runner = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    let mut missing = Vec::new();
    for (name, seq) in seqs {
        let seq: Vec<I> = seq
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let case = case_of(&seq, 1).unwrap_or_else(|| panic!("{name}: does not encode"));
        if let Stop::Exception { vector: UD, .. } = runner.run(&case).stop {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "advertised but #UD: {missing:?}");
}

/// MMX is not advertised (CPUID.1:EDX bit 23 is masked), and the MMX-register
/// forms of SSE/SSE2/SSSE3 instructions raise #UD rather than running
/// half-implemented.
#[test]
fn mmx_is_not_advertised_and_its_forms_are_ud() {
    use hv_cpu::testing::generator::case_of;
    use iced_x86::{Instruction as I, Register as R};
    let [_, _, _, d1] = mask_cpuid(1, 0, [u32::MAX; 4]);
    assert_eq!(d1 >> 23 & 1, 0, "MMX advertised");
    let forms = [
        I::with2(Code::Pshufb_mm_mmm64, R::MM0, R::MM1),
        I::with2(Code::Phaddw_mm_mmm64, R::MM2, R::MM3),
        I::with2(Code::Pminub_mm_mmm64, R::MM4, R::MM5),
        I::with2(Code::Cvtpi2ps_xmm_mmm64, R::XMM0, R::MM1),
        I::with2(Code::Movq2dq_xmm_mm, R::XMM1, R::MM2),
        I::with2(Code::Paddb_mm_mmm64, R::MM0, R::MM7),
    ];
    let mut runner = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    for f in forms {
        let i = f.expect("encodable MMX form");
        let case = case_of(&[i], 3).expect("encodes");
        let stop = runner.run(&case).stop;
        assert!(
            matches!(stop, Stop::Exception { vector: UD, .. }),
            "{i}: {stop:?}"
        );
    }
}
