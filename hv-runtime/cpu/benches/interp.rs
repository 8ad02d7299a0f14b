//! Interpreter speed on compiled Rust code (SHA-256 and bitwise CRC-32 from
//! this bench binary, run from its own code mapped into guest memory).
//! Prints MIPS (guest instructions retired / wall time) and the ratio to
//! native execution, medians of several runs, then runs criterion.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/interp_util/mod.rs"]
mod interp_util;

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use hv_cpu::interp::InterpVcpu;
use interp_util::workload::{HostImage, crc32_work, sha256_work};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(name: &str, img: &HostImage, f: extern "C" fn(u64, u64) -> u64, arg: u64) {
    let mut cpu = InterpVcpu::new();
    let _ = img.call(&mut cpu, f, 1, arg / 16); // warm the block cache
    let mut mips = Vec::new();
    let mut ratio = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let (r, n) = img.call(&mut cpu, f, 3 + i, arg);
        let dt = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let native = std::hint::black_box(f)(3 + i, std::hint::black_box(arg));
        let dn = t.elapsed().as_secs_f64();
        assert_eq!(r, native);
        mips.push(n as f64 / dt / 1e6);
        ratio.push(dt / dn);
    }
    println!(
        "interp {name}: {:.0} MIPS (median of 5), {:.1}x slower than native",
        median(mips),
        median(ratio)
    );
}

fn bench(c: &mut Criterion) {
    let img = HostImage::load();
    // 4 MiB of SHA-256 input, 1 MiB of bitwise CRC-32.
    report("sha256 4MiB", &img, sha256_work, 65_536);
    report("crc32 1MiB", &img, crc32_work, 1 << 20);
    let mut g = c.benchmark_group("interp");
    g.sample_size(10);
    let mut cpu = InterpVcpu::new();
    g.bench_function("sha256_64KiB", |b| {
        b.iter(|| img.call(&mut cpu, sha256_work, 5, 1024));
    });
    g.bench_function("crc32_64KiB", |b| {
        b.iter(|| img.call(&mut cpu, crc32_work, 5, 65_536));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
