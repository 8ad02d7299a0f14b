//! Requests per second through a one-page shared ring between two host
//! threads, 64-byte requests, compared with `rtrb` (an SPSC ring buffer) with
//! 64-byte elements and the same capacity.
//!
//! The Xen ring is a round trip by design: a slot is free again only after
//! the backend has answered it, so the backend pushes a 4-byte response per
//! request and publishes responses in batches; `rtrb` only moves elements one
//! way. Both sides publish in batches (with the notify check, whose result
//! is ignored: nobody sleeps) and spin briefly, then yield, when idle.
#![expect(clippy::unwrap_used)]

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guest_abi::ring::{BackRing, FrontRing, OwnedRingMem, PAGE_SIZE, RawRingMem, RingMem};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A 64-byte request.
type Req = [u64; 8];
/// A 4-byte status.
type Rsp = u32;

/// 4032 bytes of entries / 64 = 63, rounded down to a power of two.
const SLOTS: usize = 32;

/// Requests per criterion iteration: each sample spawns a consumer thread,
/// so an iteration moves many requests to make that cost negligible.
const PER_ITER: u64 = 4096;

/// Back off when there is nothing to do: spin a little, then yield (the
/// machine may have fewer free cores than threads).
struct Backoff(u32);

impl Backoff {
    fn idle(&mut self) {
        self.0 += 1;
        if self.0 < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

fn pvsdk_ring<M: RingMem + Sync>(mem: &M, count: u64) -> Duration {
    let mut front = FrontRing::<Req, Rsp, _>::init(mem).unwrap();
    let mut back = BackRing::<Req, Rsp, _>::attach(mem).unwrap();
    assert_eq!(front.slots() as usize, SLOTS);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut seen = 0u64;
            let mut backoff = Backoff(0);
            while seen < count {
                let mut batch = 0;
                while let Some(req) = back.take_request().unwrap() {
                    black_box(req[0]);
                    back.push_response(0).unwrap();
                    batch += 1;
                }
                if batch > 0 {
                    back.push_responses_and_check_notify();
                    seen += batch;
                    backoff.reset();
                } else if !back.final_check_for_requests().unwrap() {
                    backoff.idle();
                }
            }
        });
        let (mut sent, mut answered) = (0u64, 0u64);
        let mut backoff = Backoff(0);
        while answered < count {
            let mut progress = false;
            while front.take_response().unwrap().is_some() {
                answered += 1;
                progress = true;
            }
            let before = sent;
            while sent < count && front.push_request([sent; 8]).is_ok() {
                sent += 1;
            }
            if sent != before {
                front.push_requests_and_check_notify();
                progress = true;
            }
            if progress {
                backoff.reset();
            } else {
                backoff.idle();
            }
        }
    });
    started.elapsed()
}

fn rtrb_ring(count: u64) -> Duration {
    let (mut producer, mut consumer) = rtrb::RingBuffer::<Req>::new(SLOTS);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut seen = 0u64;
            let mut backoff = Backoff(0);
            while seen < count {
                let n = consumer.slots();
                if n == 0 {
                    backoff.idle();
                    continue;
                }
                let chunk = consumer.read_chunk(n).unwrap();
                for req in chunk.into_iter() {
                    black_box(req[0]);
                }
                seen += n as u64;
                backoff.reset();
            }
        });
        let mut sent = 0u64;
        let mut backoff = Backoff(0);
        while sent < count {
            let free = producer.slots().min(usize::try_from(count - sent).unwrap());
            if free == 0 {
                backoff.idle();
                continue;
            }
            let chunk = producer.write_chunk_uninit(free).unwrap();
            let start = sent;
            let written = chunk.fill_from_iter((start..).map(|i| [i; 8]));
            sent += written as u64;
            backoff.reset();
        }
    });
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_64B_requests");
    group.throughput(Throughput::Elements(PER_ITER));

    group.bench_function("pvsdk_owned_mem", |b| {
        b.iter_custom(|iters| pvsdk_ring(&OwnedRingMem::<1024>::new(), iters * PER_ITER));
    });

    group.bench_function("pvsdk_raw_mem", |b| {
        b.iter_custom(|iters| {
            let page: Box<[AtomicU64]> = (0..PAGE_SIZE / 8).map(|_| AtomicU64::new(0)).collect();
            let base = NonNull::new(page.as_ptr().cast_mut().cast::<u8>()).unwrap();
            // SAFETY: `page` is PAGE_SIZE bytes, 8-aligned, outlives `mem`
            // (`mem` is declared later, so dropped first), and is
            // accessed only through `mem` while it lives.
            let mem = unsafe { RawRingMem::new(base, PAGE_SIZE) };
            pvsdk_ring(&mem, iters * PER_ITER)
        });
    });

    group.bench_function("rtrb", |b| {
        b.iter_custom(|iters| rtrb_ring(iters * PER_ITER));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
