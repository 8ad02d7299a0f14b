//! Replays the `mm_ops` and `elf_loader` fuzz targets' bodies over their
//! checked-in corpora (`tests/corpus/<target>/`), over their seed
//! generators and over deterministically mutated inputs, so the fuzz
//! properties are checked on stable by `cargo test`.
//!
//! `random_*` (ignored) are the stable-Rust stand-in for a fuzzer: they loop
//! a target over mutated seeds for `PVSDK_FUZZ_ITERS` iterations (default
//! 20000) and save any failing input to `target/fuzz-findings/`:
//!
//! ```sh
//! PVSDK_FUZZ_ITERS=200000 cargo test --release -p hv-runtime --test fuzz_corpus -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};

mod corpus_util;
use corpus_util::corpus;

use hv_runtime::domain::fuzzing as elf_fuzz;
use hv_runtime::mm::fuzzing as mm_fuzz;

fn replay(target: &str, min: usize, run: fn(&[u8]) -> Result<(), String>) {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= min,
        "corpus {target} has only {} inputs",
        inputs.len()
    );
    for (path, data) in inputs {
        if let Err(e) = run(&data) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn mm_ops_corpus_keeps_the_page_type_invariants() {
    replay("mm_ops", 4, mm_fuzz::run);
}

#[test]
fn mm_ops_seeds_keep_the_page_type_invariants() {
    for s in mm_fuzz::seeds() {
        mm_fuzz::run(&s).expect("seed");
    }
}

#[test]
fn elf_loader_corpus_parses_and_builds_consistently() {
    replay("elf_loader", 4, elf_fuzz::run);
}

#[test]
fn elf_loader_seeds_parse_and_build_consistently() {
    let seeds = elf_fuzz::seeds();
    for s in &seeds {
        elf_fuzz::run(s).expect("seed");
    }
    // The first seeds are well-formed images that really parse.
    let parsed = seeds
        .iter()
        .filter(|s| hv_runtime::domain::image::GuestImage::parse(s).is_ok())
        .count();
    assert!(parsed >= 3, "only {parsed} seeds parse");
}

/// A small xorshift generator: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// Mutate `base` the way a fuzzer would: flip bytes, overwrite 1/2/4/8-byte
/// fields with interesting values, insert, delete, splice.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: [u64; 10] = [
        0,
        1,
        0x7f,
        0xff,
        0x1000,
        0xffff_ffff,
        0x8000_0000_0000_0000,
        0xffff_8000_0000_0000,
        0xffff_ffff_8000_0000,
        u64::MAX,
    ];
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(6) {
        if v.is_empty() {
            v.push(0);
        }
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = u8::try_from(rng.next() & 0xff).unwrap_or(0),
            2 => {
                let val = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let w = [1usize, 2, 4, 8][rng.below(4)];
                for (k, b) in val.iter().take(w).enumerate() {
                    if let Some(x) = v.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| (rng.next() & 0xff) as u8).collect();
                v.splice(at..at, bytes);
            }
            4 => {
                let n = rng.below(16).min(v.len() - at);
                v.drain(at..at + n);
            }
            _ => {
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = rng.below(64).min(other.len() - from);
                    let end = (at + n).min(v.len());
                    v.splice(at..end, other[from..from + n].iter().copied());
                }
            }
        }
    }
    v
}

fn iterations() -> u64 {
    std::env::var("PVSDK_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

fn save_finding(target: &str, data: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{hash:016x}"));
    let _ = std::fs::write(&path, data);
    path
}

fn random_driver(target: &str, mut pool: Vec<Vec<u8>>, run: fn(&[u8]) -> Result<(), String>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    let iters = iterations();
    let start = std::time::Instant::now();
    let mut failures = 0;
    for i in 0..iters {
        let a = rng.below(pool.len());
        let b = rng.below(pool.len());
        let input = mutate(&mut rng, &pool[a], &pool[b]);
        let r = std::panic::catch_unwind(|| run(&input));
        match r {
            Ok(Ok(())) => {
                // Keep some inputs so mutations compound.
                if i % 16 == 0 && pool.len() < 4096 {
                    pool.push(input);
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                eprintln!(
                    "{target}: finding {e} saved to {}",
                    save_finding(target, &input).display()
                );
            }
            Err(_) => {
                failures += 1;
                eprintln!(
                    "{target}: panic, input saved to {}",
                    save_finding(target, &input).display()
                );
            }
        }
    }
    eprintln!(
        "{target}: {iters} iterations in {:.1} s, {failures} findings",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(
        failures, 0,
        "{target}: findings saved in target/fuzz-findings"
    );
}

#[test]
#[ignore = "long-running stable fuzz driver; run explicitly"]
fn random_mm_ops() {
    let mut pool = mm_fuzz::seeds();
    pool.extend(corpus("mm_ops").into_iter().map(|(_, d)| d));
    random_driver("mm_ops", pool, mm_fuzz::run);
}

#[test]
#[ignore = "long-running stable fuzz driver; run explicitly"]
fn random_elf_loader() {
    let mut pool = elf_fuzz::seeds();
    pool.extend(corpus("elf_loader").into_iter().map(|(_, d)| d));
    random_driver("elf_loader", pool, elf_fuzz::run);
}

/// Rewrites the generated part of the corpora (`seed-*`) from the seed
/// generators; the other inputs (real kernels, fuzz findings) are kept.
#[test]
#[ignore = "maintenance: regenerates tests/corpus/*/seed-*"]
fn regenerate_seed_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for (target, seeds) in [
        ("mm_ops", mm_fuzz::seeds()),
        ("elf_loader", elf_fuzz::seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).expect("write seed");
        }
    }
}
