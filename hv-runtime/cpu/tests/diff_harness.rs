//! Self-tests of the differential-testing harness (`hv_cpu::testing`): the
//! native runner captures each kind of fault with the right vector, error
//! code, CR2 and RIP; native runs are deterministic; and a wrong backend is
//! caught and minimised.

use hv_cpu::testing::diff::{self, compare};
use hv_cpu::testing::generator::{Family, case_seed, generate, generate_form};
use hv_cpu::testing::native::NativeBackend;
use hv_cpu::testing::{Backend, CODE_VA, GUARD_VA, Outcome, SCRATCH_BASE, Stop, generator::Case};

fn native() -> NativeBackend {
    NativeBackend::new().expect("test region")
}

fn run_form(name: &str, seed: u64) -> (Case, Outcome) {
    let case = generate_form(name, seed).unwrap_or_else(|| panic!("no form {name}"));
    let out = native().run(&case);
    (case, out)
}

fn exception(o: &Outcome) -> (u8, Option<u32>, u64) {
    match o.stop {
        Stop::Exception {
            vector,
            error_code,
            cr2,
        } => (vector, error_code, cr2),
        ref s => panic!("expected an exception, got {s:?}"),
    }
}

#[test]
fn native_completes_and_keeps_the_base_register() {
    let (case, out) = run_form("Add_rm64_r64", 1);
    assert_eq!(out.stop, Stop::Completed, "{}", diff::disassemble(&case));
    assert_eq!(out.state.rip, case.end());
    assert_eq!(out.state.gpr[15], SCRATCH_BASE);
}

#[test]
fn native_reports_ud2_as_ud_at_the_instruction() {
    let (_, out) = run_form("ud_ud2", 1);
    assert_eq!(exception(&out), (6, None, 0));
    assert_eq!(out.state.rip, CODE_VA);
}

#[test]
fn native_reports_privileged_instructions_as_gp0() {
    for name in [
        "gp_hlt",
        "gp_cli",
        "gp_rdmsr",
        "gp_mov_cr3_r64",
        "gp_in_al_dx",
        "gp_out_imm8_al",
        "gp_lgdt",
    ] {
        let (_, out) = run_form(name, 3);
        assert_eq!(exception(&out), (13, Some(0), 0), "{name}");
        assert_eq!(out.state.rip, CODE_VA, "{name}");
    }
}

#[test]
fn native_reports_guard_page_accesses_as_pf_with_error_code_and_cr2() {
    for seed in 0..20 {
        let (case, out) = run_form("pf_read_guard", seed);
        let (v, e, cr2) = exception(&out);
        assert_eq!((v, e), (14, Some(4)), "{}", diff::disassemble(&case));
        assert!((GUARD_VA..GUARD_VA + 0x1000).contains(&cr2));
        let (_, out) = run_form("pf_write_guard", seed);
        assert_eq!(exception(&out).1, Some(6));
        let (_, out) = run_form("pf_write_crossing", seed);
        assert_eq!(exception(&out), (14, Some(6), GUARD_VA));
    }
}

#[test]
fn native_reports_int3_as_bp_after_the_instruction() {
    let (_, out) = run_form("bp_int3", 1);
    assert_eq!(exception(&out).0, 3);
    assert_eq!(out.state.rip, CODE_VA + 1);
}

#[test]
fn native_reports_divide_errors_and_misalignment() {
    let (_, out) = run_form("de_div_zero", 1);
    assert_eq!(exception(&out).0, 0);
    let (_, out) = run_form("de_idiv_overflow", 1);
    assert_eq!(exception(&out).0, 0);
    let (_, out) = run_form("gp_movaps_misaligned", 1);
    assert_eq!(exception(&out), (13, Some(0), 0));
    let (_, out) = run_form("gp_noncanonical", 1);
    assert_eq!(exception(&out), (13, Some(0), 0));
}

#[test]
fn native_reports_unmasked_simd_exceptions_as_xm() {
    let mut xm = 0;
    for seed in 0..200 {
        let (_, out) = run_form("xm_unmasked", seed);
        match out.stop {
            Stop::Exception { vector: 19, .. } => xm += 1,
            Stop::Completed => {}
            ref s => panic!("unexpected {s:?}"),
        }
    }
    assert!(xm > 10, "only {xm} #XM");
}

#[test]
fn native_runs_are_deterministic() {
    let mut a = native();
    let mut b = native();
    for family in Family::ALL {
        let rep = diff::run_family(family, 150, 7, &mut a, &mut b);
        assert_eq!(rep.failed, 0, "{rep}");
    }
}

/// A deliberately wrong backend: native, but with bit 0 of RBX flipped
/// whenever the sequence completes.
struct FlipRbx(NativeBackend);

impl Backend for FlipRbx {
    fn name(&self) -> &str {
        "flip-rbx"
    }
    fn run(&mut self, case: &Case) -> Outcome {
        let mut o = self.0.run(case);
        if o.stop == Stop::Completed {
            o.state.gpr[3] ^= 1;
        }
        o
    }
}

#[test]
fn a_wrong_backend_is_caught_and_minimised() {
    let mut a = native();
    let mut b = FlipRbx(native());
    let rep = diff::run_family(Family::Alu, 20, 1, &mut a, &mut b);
    assert!(rep.failed > 0);
    let m = &rep.failures[0];
    assert_eq!(m.case.instructions().len(), 1, "{m}");
    let text = m.to_string();
    assert!(text.contains("rbx:"), "{text}");
    // The same seed regenerates the same case.
    let again = generate(Family::Alu, case_seed(Family::Alu, 1, 0));
    assert_eq!(
        again.code(),
        generate(Family::Alu, case_seed(Family::Alu, 1, 0)).code()
    );
    let o = a.run(&m.case);
    assert!(!compare(&m.case, &o, &o).iter().any(|d| !d.is_empty()));
}
