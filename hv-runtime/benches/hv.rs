//! Criterion benches of the hypervisor's hot paths (the same workloads as
//! `hv bench`, see `hv_runtime::bench`). Keep runs short:
//! `cargo bench -p hv-runtime --bench hv -- --warm-up-time 1 --measurement-time 3`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hv_runtime::bench;
use hv_runtime::domain::image::GuestImage;

/// Scale a per-run total to `iters` operations.
fn scaled(t: Duration, per_run: u64, iters: u64) -> Duration {
    let ns = t.as_nanos() * u128::from(iters) / u128::from(per_run.max(1));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

fn hypercall(c: &mut Criterion) {
    let mut g = c.benchmark_group("hypercall");
    g.throughput(Throughput::Elements(1));
    g.bench_function("null_xen_version", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(1000);
            let t = bench::null_hypercall(n, bench::wall_clock).expect("bench guest");
            scaled(t, n, iters)
        });
    });
    g.finish();
}

fn mmu_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("mmu_update_l1");
    g.throughput(Throughput::Elements(1));
    for batch in [1u32, 16, 512] {
        g.bench_with_input(BenchmarkId::new("guest", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(2 * u64::from(batch)).max(64);
                let (t, ops) =
                    bench::mmu_update_guest(batch, rounds, bench::wall_clock).expect("bench guest");
                scaled(t, ops, iters)
            });
        });
        g.bench_with_input(BenchmarkId::new("direct", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(2 * u64::from(batch)).max(64);
                let (t, ops) =
                    bench::mmu_update_direct(batch, rounds, bench::wall_clock).expect("mm updates");
                scaled(t, ops, iters)
            });
        });
    }
    g.finish();
}

fn create_shutdown(c: &mut Criterion) {
    let path = pvsdk_examples::guest_image("hello").expect("hello is built");
    let data = std::fs::read(path).expect("read hello");
    let image = GuestImage::parse(&data).expect("hello parses");
    let mut g = c.benchmark_group("hello");
    g.sample_size(20);
    g.bench_function("create_to_shutdown_128M", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    bench::create_shutdown(&image, 128 << 20, bench::wall_clock)
                        .expect("hello runs")
                        .total()
                })
                .sum()
        });
    });
    g.finish();
}

criterion_group!(benches, hypercall, mmu_update, create_shutdown);
criterion_main!(benches);
