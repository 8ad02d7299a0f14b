//! Differential tests: random instruction sequences run natively on the host
//! CPU and in the software CPU ([`InterpVcpu`]); registers, defined flags,
//! MXCSR, scratch memory and exceptions must agree. One test per family so
//! each can be run (and pass) on its own: `cargo test -p hv-cpu --test diff
//! diff_alu`. See `tests/README.md` for the long run and the environment
//! variables.

use hv_cpu::interp::InterpVcpu;
use hv_cpu::model::{CpuModel, HostCpu};
use hv_cpu::testing::diff::{self, Report};
use hv_cpu::testing::generator::{self, Family, case_seed, generate};
use hv_cpu::testing::native::NativeBackend;
use hv_cpu::testing::vcpu::{FixedEnv, VcpuRunner};
use std::collections::BTreeMap;

/// Cases per family in the CI run (8 families: 20 800 cases in all).
const CI_CASES_PER_FAMILY: u64 = 2600;
/// Every form must be generated at least this often in the CI run.
const MIN_USES_PER_FORM: u64 = 5;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let v = v.replace('_', "");
            v.strip_prefix("0x")
                .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
        .unwrap_or(default)
}

fn cases() -> u64 {
    env_u64("PVSDK_DIFF_CASES", CI_CASES_PER_FAMILY)
}

fn base_seed() -> u64 {
    env_u64("PVSDK_DIFF_SEED", 0)
}

fn run(family: Family) -> Report {
    eprintln!(
        "{family}: host CPU {}; the interpreter models {:?}",
        HostCpu::detect(),
        CpuModel::from_env(&FixedEnv)
    );
    for f in generator::skipped_forms(family) {
        eprintln!("{family}: form {} not generated: {}", f.name, f.reason);
    }
    let mut native = NativeBackend::new().expect("map the native test region");
    let mut interp = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    let rep = diff::run_family(family, cases(), base_seed(), &mut native, &mut interp);
    eprintln!("{rep}");
    if std::env::var_os("PVSDK_DIFF_COVERAGE").is_some() {
        eprintln!("coverage ({family}):\n{}", rep.coverage_table());
    }
    rep
}

fn check(family: Family) {
    let rep = run(family);
    assert_eq!(
        rep.failed, 0,
        "{family}: {} of {} cases differ from the host CPU\n{rep}",
        rep.failed, rep.cases
    );
}

#[test]
fn diff_alu() {
    check(Family::Alu);
}

#[test]
fn diff_shift() {
    check(Family::Shift);
}

#[test]
fn diff_muldiv() {
    check(Family::MulDiv);
}

#[test]
fn diff_string() {
    check(Family::String);
}

#[test]
fn diff_sse_int() {
    check(Family::SseInt);
}

#[test]
fn diff_sse_fp() {
    check(Family::SseFp);
}

#[test]
fn diff_x87() {
    check(Family::X87);
}

#[test]
fn diff_faults() {
    check(Family::Faults);
}

/// The CI run exercises every form of the catalogue at least
/// [`MIN_USES_PER_FORM`] times (counted on the generated cases, so it does
/// not depend on the backend passing).
#[test]
fn diff_coverage_every_form_is_exercised() {
    let n = cases();
    let all = generator::forms();
    let mut per_form = vec![0u64; all.len()];
    let mut per_mnemonic: BTreeMap<String, u64> = BTreeMap::new();
    for family in Family::ALL {
        for i in 0..n {
            let case = generate(family, case_seed(family, base_seed(), i));
            for &f in case.forms() {
                per_form[f] += 1;
            }
            for ins in case.instructions() {
                *per_mnemonic
                    .entry(format!("{:?}", ins.mnemonic()))
                    .or_insert(0) += 1;
            }
        }
    }
    let mut table = String::new();
    for family in Family::ALL {
        let fs: Vec<(usize, &generator::Form)> = generator::family_forms(family).collect();
        let min = fs.iter().map(|(i, _)| per_form[*i]).min().unwrap_or(0);
        table.push_str(&format!(
            "  {:<8} {:>4} forms, {:>7} uses, least-used form {min}\n",
            family.name(),
            fs.len(),
            fs.iter().map(|(i, _)| per_form[*i]).sum::<u64>()
        ));
    }
    eprintln!("catalogue: {} forms\n{table}", all.len());
    if std::env::var_os("PVSDK_DIFF_COVERAGE").is_some() {
        for (m, c) in &per_mnemonic {
            eprintln!("  {m:<14} {c:>7}");
        }
        for (i, f) in all.iter().enumerate() {
            eprintln!("  {:<8} {:<40} {:>6}", f.family.name(), f.name, per_form[i]);
        }
    }
    let under: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| per_form[*i] < MIN_USES_PER_FORM.min(n))
        .map(|(_, f)| f.name.as_str())
        .collect();
    assert!(
        under.is_empty(),
        "forms used fewer than {MIN_USES_PER_FORM} times in {n} cases per family: {under:?}"
    );
}

/// Re-run and print one case: `PVSDK_DIFF_ONE=sse_fp:0x1234 cargo test -p
/// hv-cpu --test diff diff_one -- --nocapture` (the family and seed come from
/// a failure report). Does nothing without the variable.
#[test]
fn diff_one() {
    let Some(spec) = std::env::var_os("PVSDK_DIFF_ONE") else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (fam, seed) = spec.split_once(':').expect("PVSDK_DIFF_ONE=family:seed");
    let family = Family::ALL
        .into_iter()
        .find(|f| f.name() == fam)
        .expect("unknown family");
    let seed = u64::from_str_radix(seed.trim_start_matches("0x"), 16).expect("hex seed");
    let case = generate(family, seed);
    let mut native = NativeBackend::new().expect("map the native test region");
    let mut interp = VcpuRunner::new("interp", InterpVcpu::new).expect("machine memory");
    println!("{}", diff::disassemble(&case));
    match diff::minimise(&case, &mut native, &mut interp) {
        Some(m) => println!("{m}"),
        None => println!("native and interp agree"),
    }
}
