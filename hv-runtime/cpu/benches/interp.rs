//! Interpreter speed on compiled Rust code (SHA-256 and bitwise CRC-32 from
//! this bench binary, run from its own code mapped into guest memory).
//! Prints MIPS (guest instructions retired / time) and the ratio to native
//! execution, medians of several runs, then runs criterion. Two clocks: wall
//! time, and this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which other processes on a shared, loaded host do not inflate; both the
//! interpreter and the native run are timed on the same clock.

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

/// Seconds this thread has run on a CPU, if the clock is available.
fn thread_cpu_secs() -> Option<f64> {
    cpu_time::ThreadTime::try_now()
        .ok()
        .map(|t| t.as_duration().as_secs_f64())
}

const RUNS: u64 = 7;

fn report(name: &str, img: &HostImage, f: extern "C" fn(u64, u64) -> u64, arg: u64) {
    let mut cpu = InterpVcpu::new();
    let _ = img.call(&mut cpu, f, 1, arg / 16); // warm the block cache
    let (mut mips, mut ratio, mut cmips, mut cratio) = (vec![], vec![], vec![], vec![]);
    for i in 0..RUNS {
        let (t, c) = (Instant::now(), thread_cpu_secs());
        let (r, n) = img.call(&mut cpu, f, 3 + i, arg);
        let (dt, dc) = (
            t.elapsed().as_secs_f64(),
            thread_cpu_secs().zip(c).map(|(b, a)| b - a),
        );
        let (t, c) = (Instant::now(), thread_cpu_secs());
        let native = std::hint::black_box(f)(3 + i, std::hint::black_box(arg));
        let (dn, dnc) = (
            t.elapsed().as_secs_f64(),
            thread_cpu_secs().zip(c).map(|(b, a)| b - a),
        );
        assert_eq!(r, native);
        mips.push(n as f64 / dt / 1e6);
        ratio.push(dt / dn);
        if let (Some(dc), Some(dnc)) = (dc, dnc)
            && dc > 0.0
            && dnc > 0.0
        {
            cmips.push(n as f64 / dc / 1e6);
            cratio.push(dc / dnc);
        }
    }
    println!(
        "interp {name}: wall {:.0} MIPS, {:.1}x slower than native (median of {RUNS})",
        median(mips),
        median(ratio)
    );
    if u64::try_from(cmips.len()) == Ok(RUNS) {
        println!(
            "interp {name}: thread CPU time {:.0} MIPS, {:.1}x slower than native (median of {RUNS})",
            median(cmips),
            median(cratio)
        );
    }
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
