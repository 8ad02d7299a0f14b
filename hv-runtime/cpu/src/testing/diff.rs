//! Compare two backends case by case, minimise failures, count coverage.

use super::generator::{self, Case, Family, forms, iced_to_rflags, undefined_after};
use super::{Backend, Outcome, SCRATCH_VA, STACK_VA, Stop};
use crate::state::{reg, rflags};
use iced_x86::{Formatter, Instruction, IntelFormatter};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// A case skipped on purpose, because the backend under test deliberately
/// differs from the host. Every application is counted in the [`Report`].
#[derive(Clone, Copy, Debug)]
pub struct Exclusion {
    /// Short name.
    pub name: &'static str,
    /// Why the difference is accepted.
    pub reason: &'static str,
    /// Whether the exclusion applies to a case.
    pub applies: fn(&Case) -> bool,
}

/// The documented known-divergence list applied by [`run_family`]. Forms
/// that are never generated at all are listed in [`generator`]'s module docs.
pub const EXCLUSIONS: &[Exclusion] = &[];

const REG_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// The instructions that ran (completely) before the run stopped at `rip`.
fn executed(case: &Case, stop_rip: u64) -> &[Instruction] {
    let n = case
        .instructions()
        .iter()
        .take_while(|i| i.ip() < stop_rip)
        .count();
    &case.instructions()[..n]
}

/// RFLAGS bits compared after `case` stopped at `rip`: the status flags and
/// DF, minus those an executed instruction left undefined.
#[must_use]
pub fn compared_flags(case: &Case, stop_rip: u64) -> u64 {
    (rflags::STATUS | rflags::DF) & !iced_to_rflags(undefined_after(executed(case, stop_rip)))
}

/// Differences between the reference outcome `a` and `b`, one line each;
/// empty when they agree.
#[must_use]
pub fn compare(case: &Case, a: &Outcome, b: &Outcome) -> Vec<String> {
    let mut d = Vec::new();
    if !same_stop(&a.stop, &b.stop) {
        d.push(format!("stop: {:?} vs {:?}", a.stop, b.stop));
    }
    if matches!(a.stop, Stop::Other(_)) || matches!(b.stop, Stop::Other(_)) {
        return d;
    }
    let (x, y) = (&a.state, &b.state);
    if x.rip != y.rip {
        d.push(format!("rip: {:#x} vs {:#x}", x.rip, y.rip));
    }
    for (i, name) in REG_NAMES.iter().enumerate() {
        if x.gpr[i] != y.gpr[i] {
            d.push(format!("{name}: {:#018x} vs {:#018x}", x.gpr[i], y.gpr[i]));
        }
    }
    let mask = compared_flags(case, x.rip.min(y.rip));
    if (x.rflags ^ y.rflags) & mask != 0 {
        d.push(format!(
            "rflags (mask {mask:#x}): {} vs {}",
            flag_str(x.rflags & mask),
            flag_str(y.rflags & mask)
        ));
    }
    if x.mxcsr != y.mxcsr {
        d.push(format!("mxcsr: {:#06x} vs {:#06x}", x.mxcsr, y.mxcsr));
    }
    for i in 0..16 {
        if x.xmm[i] != y.xmm[i] {
            d.push(format!("xmm{i}: {:#034x} vs {:#034x}", x.xmm[i], y.xmm[i]));
        }
    }
    mem_diff(&mut d, "scratch", SCRATCH_VA, &a.scratch, &b.scratch);
    mem_diff(&mut d, "stack", STACK_VA, &a.stack, &b.stack);
    d
}

/// Start of the upper (kernel) half of the canonical address space.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// Whether two stops agree. One bit is host-specific rather than the CPU's:
/// a #PF on an address in the upper half is taken on whatever the *host
/// kernel* maps there for user mode (with KPTI nothing, so P = 0; without
/// it, supervisor pages, so P = 1), while the backend's page tables map
/// nothing there. For those faults the error code's P bit is not compared
/// (the vector, CR2 and every other error-code bit are).
#[must_use]
pub fn same_stop(a: &Stop, b: &Stop) -> bool {
    match (a, b) {
        (
            Stop::Exception {
                vector: 14,
                error_code: Some(ea),
                cr2: ca,
            },
            Stop::Exception {
                vector: 14,
                error_code: Some(eb),
                cr2: cb,
            },
        ) if ca == cb && *ca >= KERNEL_HALF => (ea ^ eb) & !crate::pf::PRESENT == 0,
        _ => a == b,
    }
}

fn mem_diff(d: &mut Vec<String>, what: &str, va: u64, a: &[u8], b: &[u8]) {
    if a.len() != b.len() {
        d.push(format!("{what}: {} vs {} bytes", a.len(), b.len()));
        return;
    }
    let mut shown = 0;
    let mut i = 0;
    while i < a.len() {
        if a[i] == b[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < a.len() && a[i] != b[i] && i - start < 16 {
            i += 1;
        }
        if shown < 4 {
            d.push(format!(
                "{what} @ {:#x}: {} vs {}",
                va + start as u64,
                hex(&a[start..i]),
                hex(&b[start..i])
            ));
        }
        shown += 1;
    }
    if shown > 4 {
        d.push(format!("{what}: {} more differing ranges", shown - 4));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn flag_str(f: u64) -> String {
    let names = [
        (rflags::CF, "CF"),
        (rflags::PF, "PF"),
        (rflags::AF, "AF"),
        (rflags::ZF, "ZF"),
        (rflags::SF, "SF"),
        (rflags::DF, "DF"),
        (rflags::OF, "OF"),
    ];
    let s: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    format!("[{}]", s.join(" "))
}

/// One failing case, minimised, with both outcomes.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// Names of the reference and the backend under test.
    pub names: (String, String),
    /// The minimised case.
    pub case: Case,
    /// Instructions before minimising.
    pub original_len: usize,
    /// Reference outcome.
    pub a: Outcome,
    /// Outcome of the backend under test.
    pub b: Outcome,
    /// The differences.
    pub diffs: Vec<String>,
}

/// Disassemble a case's sequence, one instruction a line.
#[must_use]
pub fn disassemble(case: &Case) -> String {
    let mut f = IntelFormatter::new();
    let mut out = String::new();
    let code = case.code();
    let base = super::CODE_VA;
    for i in case.instructions() {
        let mut text = String::new();
        f.format(i, &mut text);
        let off = usize::try_from(i.ip() - base).unwrap_or(0);
        let bytes = code.get(off..off + i.len()).map(hex).unwrap_or_default();
        let _ = writeln!(out, "  {:#x}  {bytes:<30} {text}", i.ip());
    }
    out
}

fn stop_str(s: &Stop) -> String {
    match s {
        Stop::Completed => "completed".into(),
        Stop::Exception {
            vector,
            error_code,
            cr2,
        } => {
            let mut t = format!("exception {} (vector {vector})", vector_name(*vector));
            if let Some(e) = error_code {
                let _ = write!(t, " error code {e:#x}");
            }
            if *vector == 14 {
                let _ = write!(t, " cr2 {cr2:#x}");
            }
            t
        }
        Stop::Other(m) => format!("other: {m}"),
    }
}

fn vector_name(v: u8) -> &'static str {
    match v {
        0 => "#DE",
        1 => "#DB",
        3 => "#BP",
        6 => "#UD",
        7 => "#NM",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        19 => "#XM",
        _ => "#?",
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.case;
        writeln!(
            f,
            "--- {} vs {}: family {} seed {:#x} (hv_cpu::testing::generator::generate(Family::{:?}, {:#x}))",
            self.names.0,
            self.names.1,
            c.family(),
            c.seed(),
            c.family(),
            c.seed()
        )?;
        writeln!(
            f,
            "sequence ({} of {} instructions after minimising):",
            c.instructions().len(),
            self.original_len
        )?;
        f.write_str(&disassemble(c))?;
        let s = c.input();
        write!(f, "input:")?;
        for (i, name) in REG_NAMES.iter().enumerate() {
            if i % 4 == 0 {
                write!(f, "\n ")?;
            }
            write!(f, " {name:>3}={:#018x}", s.gpr[i])?;
        }
        writeln!(
            f,
            "\n  rflags={:#x} {} mxcsr={:#06x}",
            s.rflags,
            flag_str(s.rflags),
            s.mxcsr
        )?;
        for (i, x) in s.xmm.iter().enumerate() {
            if *x != 0 {
                writeln!(f, "  xmm{i}={x:#034x}")?;
            }
        }
        writeln!(
            f,
            "{}: {} at rip {:#x}",
            self.names.0,
            stop_str(&self.a.stop),
            self.a.state.rip
        )?;
        writeln!(
            f,
            "{}: {} at rip {:#x}",
            self.names.1,
            stop_str(&self.b.stop),
            self.b.state.rip
        )?;
        writeln!(f, "differences ({} vs {}):", self.names.0, self.names.1)?;
        for d in &self.diffs {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

/// The result of running one family.
#[derive(Debug, Default)]
pub struct Report {
    /// Family name.
    pub family: String,
    /// Cases run (including excluded ones).
    pub cases: u64,
    /// Cases whose outcomes differed.
    pub failed: u64,
    /// The first few failures, minimised.
    pub failures: Vec<Mismatch>,
    /// Cases skipped per [`Exclusion`] name.
    pub excluded: BTreeMap<&'static str, u64>,
    /// Uses of each catalogue form (by index into [`forms`]).
    pub form_counts: BTreeMap<usize, u64>,
    /// Executed-instruction counts per iced `Code` (as generated).
    pub code_counts: BTreeMap<String, u64>,
    /// How the reference run ended, counted per kind.
    pub stops: BTreeMap<String, u64>,
    /// Failures grouped by the last instruction of the minimised case and
    /// the first differing item: count and the seed of the first example.
    pub buckets: BTreeMap<String, (u64, u64)>,
}

impl Report {
    /// Forms of `family` used fewer than `n` times.
    #[must_use]
    pub fn under_covered(&self, family: Family, n: u64) -> Vec<String> {
        generator::family_forms(family)
            .filter(|(i, _)| self.form_counts.get(i).copied().unwrap_or(0) < n)
            .map(|(_, f)| f.name.clone())
            .collect()
    }

    /// A coverage table: one line per form of the catalogue used.
    #[must_use]
    pub fn coverage_table(&self) -> String {
        let mut s = String::new();
        let all = forms();
        for (i, n) in &self.form_counts {
            let _ = writeln!(s, "  {:<40} {n:>7}", all[*i].name);
        }
        s
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "family {}: {} cases, {} failed, {} forms used, {} distinct codes",
            self.family,
            self.cases,
            self.failed,
            self.form_counts.len(),
            self.code_counts.len()
        )?;
        let stops: Vec<String> = self.stops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(f, "  reference stops: {}", stops.join(", "))?;
        for (k, v) in &self.excluded {
            writeln!(f, "  excluded by {k}: {v}")?;
        }
        if !self.buckets.is_empty() {
            writeln!(
                f,
                "  failure buckets (minimised; last instruction: first difference):"
            )?;
            for (k, (n, seed)) in &self.buckets {
                writeln!(f, "    {n:>6}  {k}  (e.g. seed {seed:#x})")?;
            }
        }
        for m in &self.failures {
            writeln!(f, "{m}")?;
        }
        Ok(())
    }
}

fn stop_kind(s: &Stop) -> String {
    match s {
        Stop::Completed => "completed".into(),
        Stop::Exception { vector, .. } => vector_name(*vector).into(),
        Stop::Other(_) => "other".into(),
    }
}

fn fails(
    case: &Case,
    a: &mut dyn Backend,
    b: &mut dyn Backend,
) -> Option<(Outcome, Outcome, Vec<String>)> {
    let oa = a.run(case);
    let ob = b.run(case);
    let d = compare(case, &oa, &ob);
    (!d.is_empty()).then_some((oa, ob, d))
}

/// Shrink a failing case: drop instructions, then zero input registers,
/// keeping each change that still fails.
pub fn minimise(case: &Case, a: &mut dyn Backend, b: &mut dyn Backend) -> Option<Mismatch> {
    let original_len = case.instructions().len();
    let (mut oa, mut ob, mut diffs) = fails(case, a, b)?;
    let mut cur = case.clone();
    let mut i = cur.instructions().len();
    while i > 0 {
        i -= 1;
        if let Some(c) = cur.without(i)
            && let Some(r) = fails(&c, a, b)
        {
            cur = c;
            (oa, ob, diffs) = r;
        }
    }
    for g in 0..16 {
        if g == reg::RSP || g == super::BASE_REG || cur.input().gpr[g] == 0 {
            continue;
        }
        let mut s = cur.input().clone();
        s.gpr[g] = 0;
        let c = cur.with_input(s);
        if let Some(r) = fails(&c, a, b) {
            cur = c;
            (oa, ob, diffs) = r;
        }
    }
    for x in 0..16 {
        if cur.input().xmm[x] == 0 {
            continue;
        }
        let mut s = cur.input().clone();
        s.xmm[x] = 0;
        let c = cur.with_input(s);
        if let Some(r) = fails(&c, a, b) {
            cur = c;
            (oa, ob, diffs) = r;
        }
    }
    Some(Mismatch {
        names: (a.name().to_string(), b.name().to_string()),
        case: cur,
        original_len,
        a: oa,
        b: ob,
        diffs,
    })
}

/// Failing cases minimised (and bucketed) per family run.
const MAX_MINIMISED: u64 = 300;
/// Failures printed in full per family run (one per bucket).
const MAX_SHOWN: usize = 6;

/// Run `cases` cases of `family` (seeds derived from `base_seed`) on the
/// reference `a` and the backend under test `b`; minimise and bucket the
/// first failures and keep one example per bucket.
pub fn run_family(
    family: Family,
    cases: u64,
    base_seed: u64,
    a: &mut dyn Backend,
    b: &mut dyn Backend,
) -> Report {
    let mut rep = Report {
        family: family.name().to_string(),
        ..Report::default()
    };
    let all = forms();
    for n in 0..cases {
        let case = generator::generate(family, generator::case_seed(family, base_seed, n));
        rep.cases += 1;
        for &fi in case.forms() {
            *rep.form_counts.entry(fi).or_insert(0) += 1;
        }
        let _ = all;
        for i in case.instructions() {
            *rep.code_counts
                .entry(format!("{:?}", i.code()))
                .or_insert(0) += 1;
        }
        if let Some(e) = EXCLUSIONS.iter().find(|e| (e.applies)(&case)) {
            *rep.excluded.entry(e.name).or_insert(0) += 1;
            continue;
        }
        let oa = a.run(&case);
        *rep.stops.entry(stop_kind(&oa.stop)).or_insert(0) += 1;
        let ob = b.run(&case);
        if compare(&case, &oa, &ob).is_empty() {
            continue;
        }
        rep.failed += 1;
        if rep.failed <= MAX_MINIMISED
            && let Some(m) = minimise(&case, a, b)
        {
            let last = m
                .case
                .instructions()
                .last()
                .map(|i| format!("{:?}", i.code()))
                .unwrap_or_default();
            let what = m
                .diffs
                .first()
                .map(|d| d.split([':', ' ']).next().unwrap_or("").to_string())
                .unwrap_or_default();
            let key = format!("{last}: {what}");
            let new = !rep.buckets.contains_key(&key);
            let e = rep.buckets.entry(key).or_insert((0, case.seed()));
            e.0 += 1;
            if new && rep.failures.len() < MAX_SHOWN {
                rep.failures.push(m);
            }
        }
    }
    rep
}
