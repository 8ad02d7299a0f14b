//! Differential test of SIMD floating-point exceptions with **unmasked**
//! MXCSR exceptions: every `sse_fp` case of the generator is re-run with a
//! random MXCSR that unmasks some exceptions (and random RC/FTZ/DAZ and
//! sticky status flags), natively and in [`InterpVcpu`]. Hardware raises
//! #XM with the instruction not retired, the destination untouched and a
//! precise set of MXCSR status flags (pre-computation before
//! post-computation exceptions, PE with unmasked OE/UE by the
//! unbounded-exponent result); the interpreter must agree bit for bit.
//! `diff_faults` only covers eight instructions this way; this covers every
//! SSE/SSE2/SSE3/SSE4.1 floating-point form of the catalogue.

use hv_cpu::interp::InterpVcpu;
use hv_cpu::testing::diff;
use hv_cpu::testing::generator::{Family, Rng, case_seed, generate, generate_form};
use hv_cpu::testing::native::NativeBackend;
use hv_cpu::testing::vcpu::VcpuRunner;
use hv_cpu::testing::{Backend, Stop};

/// Cases in the CI run.
const CASES: u64 = 2600;
/// Failures printed in full.
const SHOWN: usize = 4;

/// `PVSDK_DIFF_CASES` (decimal) or [`CASES`].
fn cases() -> u64 {
    std::env::var("PVSDK_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

fn unmasked_mxcsr(r: &mut Rng) -> u32 {
    let rc = u32::try_from(r.below(4)).unwrap_or(0) << 13;
    let ftz = if r.pct(25) { 1 << 15 } else { 0 };
    let daz = if r.pct(25) { 1 << 6 } else { 0 };
    let status = if r.pct(20) {
        u32::try_from(r.below(64)).unwrap_or(0)
    } else {
        0
    };
    // Never all masked: at least one of the six exceptions is enabled.
    let masks = u32::try_from(r.below(63)).unwrap_or(0) << 7;
    rc | ftz | daz | status | masks
}

#[test]
fn diff_sse_fp_with_unmasked_exceptions() {
    let n = cases();
    let mut native = NativeBackend::new().expect("map the native test region");
    let mut interp = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    let mut rng = Rng::new(0x05ee_d0f5_ee0e);
    let (mut failed, mut xm) = (0u64, 0u64);
    let mut shown = String::new();
    for i in 0..n {
        let base = generate(Family::SseFp, case_seed(Family::SseFp, 0x0e_0e, i));
        let mut input = base.input().clone();
        input.mxcsr = unmasked_mxcsr(&mut rng);
        let case = base.with_input(input);
        let a = native.run(&case);
        if matches!(a.stop, Stop::Exception { vector: 19, .. }) {
            xm += 1;
        }
        let b = interp.run(&case);
        if diff::compare(&case, &a, &b).is_empty() {
            continue;
        }
        failed += 1;
        if failed <= SHOWN as u64
            && let Some(m) = diff::minimise(&case, &mut native, &mut interp)
        {
            shown.push_str(&m.to_string());
        }
    }
    eprintln!(
        "sse_fp with unmasked exceptions: {n} cases, {failed} failed, {xm} raised #XM natively"
    );
    assert_eq!(
        failed, 0,
        "{failed} of {n} cases differ from the host CPU\n{shown}"
    );
    // The run must actually exercise #XM (a large share of random FP
    // operations is inexact, and PE is often unmasked).
    assert!(xm * 10 >= n, "only {xm} of {n} cases raised #XM natively");
}

/// Doubles around the edges of the exponent range, where exact and inexact
/// overflow and underflow happen (scaling by powers of two is exact).
const F64_EDGE: &[u64] = &[
    0x0010_0000_0000_0000, // 2^-1022
    0x0010_0000_0000_0001, // 2^-1022 (1 + 2^-52)
    0x0018_0000_0000_0000, // 1.5 · 2^-1022
    0x000f_ffff_ffff_ffff, // largest denormal
    0x0000_0000_0000_0003, // 3 · 2^-1074
    0x3fe0_0000_0000_0000, // 0.5
    0x3fd0_0000_0000_0000, // 0.25
    0x3ff0_0000_0000_0001, // 1 + 2^-52
    0x3ff8_0000_0000_0000, // 1.5
    0x4000_0000_0000_0000, // 2
    0x4010_0000_0000_0000, // 4
    0x7fe0_0000_0000_0000, // 2^1023
    0x7fe0_0000_0000_0001, // 2^1023 (1 + 2^-52)
    0x7fef_ffff_ffff_ffff, // max
    0x3690_0000_0000_0000, // 2^-150: f32 underflow on cvtpd2ps
    0x3810_0000_0000_0000, // 2^-126 (f32 min normal)
    0x37f0_0000_0000_0000, // 2^-128 (f32 denormal, exact)
    0x37f0_0000_1000_0000, // f32 tiny, inexact
    0x47f0_0000_0000_0000, // 2^128: f32 overflow, exact
    0x47ef_ffff_f000_0000, // f32 max as a double
];

/// Singles around the edges of the exponent range.
const F32_EDGE: &[u32] = &[
    0x0080_0000, // 2^-126
    0x0080_0001,
    0x00c0_0000,
    0x007f_ffff,
    0x0000_0003,
    0x3f00_0000, // 0.5
    0x3e80_0000, // 0.25
    0x3f80_0001,
    0x3fc0_0000, // 1.5
    0x4000_0000, // 2
    0x4080_0000, // 4
    0x7f00_0000, // 2^127
    0x7f00_0001,
    0x7f7f_ffff, // max
];

fn edge_xmm(r: &mut Rng) -> u128 {
    let neg64 = |r: &mut Rng| if r.pct(30) { 1u64 << 63 } else { 0 };
    let neg32 = |r: &mut Rng| if r.pct(30) { 1u32 << 31 } else { 0 };
    if r.pct(50) {
        (0..2).fold(0u128, |a, i| {
            let v = r.pick(F64_EDGE) | neg64(r);
            a | (u128::from(v) << (64 * i))
        })
    } else {
        (0..4).fold(0u128, |a, i| {
            let v = r.pick(F32_EDGE) | neg32(r);
            a | (u128::from(v) << (32 * i))
        })
    }
}

/// The forms of the instructions that can overflow or underflow (SSE/SSE2
/// arithmetic and narrowing conversions, the SSE3 horizontal and
/// add/subtract forms, the SSE4.1 dot products),
/// with all XMM inputs at the edges of the exponent range and random
/// masks: exact and inexact tiny and huge results, the PE rule with OE/UE
/// unmasked, FTZ against unmasked UE.
#[test]
fn diff_sse_fp_overflow_underflow_edges() {
    const FORMS: &[&str] = &[
        "Addps_xmm_xmmm128",
        "Addpd_xmm_xmmm128",
        "Addss_xmm_xmmm32",
        "Addsd_xmm_xmmm64",
        "Subps_xmm_xmmm128",
        "Subpd_xmm_xmmm128",
        "Subss_xmm_xmmm32",
        "Subsd_xmm_xmmm64",
        "Mulps_xmm_xmmm128",
        "Mulpd_xmm_xmmm128",
        "Mulss_xmm_xmmm32",
        "Mulsd_xmm_xmmm64",
        "Divps_xmm_xmmm128",
        "Divpd_xmm_xmmm128",
        "Divss_xmm_xmmm32",
        "Divsd_xmm_xmmm64",
        "Cvtpd2ps_xmm_xmmm128",
        "Cvtsd2ss_xmm_xmmm64",
        "Addsubps_xmm_xmmm128",
        "Addsubpd_xmm_xmmm128",
        "Haddps_xmm_xmmm128",
        "Haddpd_xmm_xmmm128",
        "Hsubps_xmm_xmmm128",
        "Hsubpd_xmm_xmmm128",
        "Dpps_xmm_xmmm128_imm8",
        "Dppd_xmm_xmmm128_imm8",
    ];
    let mut native = NativeBackend::new().expect("map the native test region");
    let mut interp = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    let mut rng = Rng::new(0xed6e_5eed);
    let (mut n, mut failed, mut xm) = (0u64, 0u64, 0u64);
    let mut shown = String::new();
    let per_form = cases() / FORMS.len() as u64;
    for (k, name) in FORMS.iter().enumerate() {
        for i in 0..per_form {
            let base = generate_form(name, (k as u64) << 32 | i)
                .unwrap_or_else(|| panic!("no catalogue form {name}"));
            let mut input = base.input().clone();
            for x in &mut input.xmm {
                *x = edge_xmm(&mut rng);
            }
            input.mxcsr = if rng.pct(20) {
                unmasked_mxcsr(&mut rng) | (0x3f << 7)
            } else {
                unmasked_mxcsr(&mut rng)
            };
            let case = base.with_input(input);
            n += 1;
            let a = native.run(&case);
            if matches!(a.stop, Stop::Exception { vector: 19, .. }) {
                xm += 1;
            }
            let b = interp.run(&case);
            if diff::compare(&case, &a, &b).is_empty() {
                continue;
            }
            failed += 1;
            if failed <= SHOWN as u64
                && let Some(m) = diff::minimise(&case, &mut native, &mut interp)
            {
                shown.push_str(&m.to_string());
            }
        }
    }
    eprintln!("edge values: {n} cases, {failed} failed, {xm} raised #XM natively");
    assert_eq!(
        failed, 0,
        "{failed} of {n} cases differ from the host CPU\n{shown}"
    );
    assert!(xm * 10 >= n, "only {xm} of {n} cases raised #XM natively");
}
