//! Grant-table costs per 4 KiB page, through the real hypercall decoder
//! (arguments copied in from and statuses out to guest memory, as a guest's
//! `grant_table_op` would), in batches of 16 operations:
//!
//! * `map_unmap`: `GNTTABOP_map_grant_ref` with `GNTMAP_host_map` at a
//!   virtual address (PTE installed through the page-type rules, pin and
//!   `GTF_*` update), then `GNTTABOP_unmap_grant_ref`;
//! * `copy`: `GNTTABOP_copy` of a whole page from a grant into a local frame
//!   (pin, references, 4 KiB copy, unpin);
//! * `transfer`: `GNTTABOP_transfer` of a page (steal, commit, reassign,
//!   M2P) — each iteration flips pages to the other domain and back, with
//!   the receiver re-offering its entries as a guest would.
//!
//! Run: `cargo bench -p hv-runtime --bench gnttab -- --warm-up-time 1 --measurement-time 3`
#![expect(clippy::unwrap_used, clippy::cast_possible_truncation)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab::*;
use hv_runtime::gnttab::testing::{TEST_PAGES, World};
use std::hint::black_box;

const BATCH: usize = 16;

fn bench(c: &mut Criterion) {
    let mut w = World::new(2, TEST_PAGES).unwrap();
    let (a, b) = (w.doms[0], w.doms[1]);
    let frames = w.spare_frames(a);
    for (i, f) in frames.iter().take(BATCH).enumerate() {
        w.grant(a, GrantRef(8 + i as u32), b, *f, false);
    }
    let mut g = c.benchmark_group("gnttab");
    g.throughput(Throughput::Elements(BATCH as u64));

    let maps: Vec<GnttabMapGrantRef> = (0..BATCH)
        .map(|i| GnttabMapGrantRef {
            host_addr: w.slot_va(b, i as u64),
            flags: GNTMAP_HOST_MAP,
            ref_: 8 + i as u32,
            dom: a.0,
            ..Default::default()
        })
        .collect();
    g.bench_function("map_unmap", |bn| {
        bn.iter(|| {
            let mut m = maps.clone();
            assert_eq!(w.call(b, GNTTABOP_MAP_GRANT_REF, &mut m), 0);
            let mut u: Vec<GnttabUnmapGrantRef> = m
                .iter()
                .map(|m| {
                    assert_eq!(m.status, GNTST_OKAY);
                    GnttabUnmapGrantRef {
                        host_addr: m.host_addr,
                        handle: m.handle,
                        ..Default::default()
                    }
                })
                .collect();
            assert_eq!(w.call(b, GNTTABOP_UNMAP_GRANT_REF, &mut u), 0);
            black_box(u[0].status);
        });
    });

    let mine = w.spare_frames(b);
    let copies: Vec<GnttabCopy> = (0..BATCH)
        .map(|i| GnttabCopy {
            source: GnttabCopyPtr::gref(a.0, 8 + i as u32, 0),
            dest: GnttabCopyPtr::gmfn(mine[i].0, 0),
            len: 4096,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        })
        .collect();
    g.bench_function("copy", |bn| {
        bn.iter(|| {
            let mut cp = copies.clone();
            assert_eq!(w.call(b, GNTTABOP_COPY, &mut cp), 0);
            assert_eq!(cp[BATCH - 1].status, GNTST_OKAY);
        });
    });

    // Transfer: BATCH pages a -> b, then back b -> a, per iteration.
    for d in w.hv.domains.values_mut() {
        d.max_pages += BATCH as u64;
    }
    let mut pages: Vec<u64> = frames[BATCH..2 * BATCH].iter().map(|f| f.0).collect();
    g.throughput(Throughput::Elements(2 * BATCH as u64));
    g.bench_function("transfer", |bn| {
        bn.iter(|| {
            for (from, to) in [(a, b), (b, a)] {
                let mut ops: Vec<GnttabTransfer> = (0..BATCH)
                    .map(|i| {
                        let gref = 100 + i as u32;
                        w.offer_transfer(to, GrantRef(gref), from, 200 + i as u64);
                        GnttabTransfer {
                            mfn: pages[i],
                            domid: to.0,
                            ref_: gref,
                            ..Default::default()
                        }
                    })
                    .collect();
                assert_eq!(w.call(from, GNTTABOP_TRANSFER, &mut ops), 0);
                for (i, op) in ops.iter().enumerate() {
                    assert_eq!(op.status, GNTST_OKAY);
                    pages[i] = u64::from(w.entry(to, GrantRef(100 + i as u32)).frame);
                }
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
