//! xenstore request latency.
//!
//! * `wire+store/read`, `wire+store/write`: one encoded request through
//!   `xenstore::handle` — decode, path check, permission check, the store
//!   operation, reply encoding — for domain 1 on a store holding a few
//!   hundred nodes (its `/local/domain/1` nodes plus 256 data nodes).
//! * `ring/read`, `ring/write`: the same requests end to end through a
//!   shared page: the guest client (`guest_abi::xenstore`) writes the
//!   request into the ring, the server connection copies it out, handles it
//!   and writes the reply, the client copies the reply out. Single-threaded:
//!   the transport runs the server when the client waits, so this is the
//!   protocol's CPU cost without scheduling or event-channel latency.
#![expect(clippy::unwrap_used)]

use hv_runtime::machine::DomId;
use std::cell::RefCell;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use guest_abi::abi::xenstore::{XS_READ, XS_WRITE};
use guest_abi::ring::OwnedRingMem;
use guest_abi::xenstore::{XsClient, XsError, XsTransport};
use hv_runtime::xenstore::wire::Header;
use hv_runtime::xenstore::{DomainInfo, Xenstored, handle};

fn populated() -> Xenstored {
    let mut xs = Xenstored::default();
    xs.write_domain_nodes(&DomainInfo {
        dom: DomId(1),
        name: "bench".to_owned(),
        console_mfn: 10,
        console_port: 1,
        store_mfn: 11,
        store_port: 2,
    })
    .unwrap();
    for i in 0..256 {
        let p = format!("data/node{i}");
        xs.store
            .write(DomId(1), 0, p.as_bytes(), b"some value")
            .unwrap();
    }
    xs
}

fn wire_store(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire+store");
    let mut xs = populated();
    let read = b"data/node128\0";
    let rh = Header {
        type_: XS_READ,
        req_id: 1,
        tx_id: 0,
        len: u32::try_from(read.len()).unwrap(),
    };
    g.bench_function("read", |b| {
        b.iter(|| black_box(handle(&mut xs.store, DomId(1), &rh, black_box(read))));
    });
    let write = b"data/node128\0new value";
    let wh = Header {
        type_: XS_WRITE,
        req_id: 2,
        tx_id: 0,
        len: u32::try_from(write.len()).unwrap(),
    };
    g.bench_function("write", |b| {
        b.iter(|| black_box(handle(&mut xs.store, DomId(1), &wh, black_box(write))));
    });
    g.finish();
}

struct Pump<'a> {
    xs: &'a RefCell<Xenstored>,
    page: &'a OwnedRingMem<1024>,
}

impl XsTransport for Pump<'_> {
    fn notify(&mut self) {}
    fn wait(&mut self) -> Result<(), XsError> {
        self.xs.borrow_mut().service_page(self.page, DomId(1));
        Ok(())
    }
}

fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    let page = OwnedRingMem::<1024>::new();
    let xs = RefCell::new(populated());
    xs.borrow_mut().connect_page(DomId(1), 2, &page);
    let mut client = XsClient::new(
        &page,
        Pump {
            xs: &xs,
            page: &page,
        },
    );
    let mut buf = [0u8; 64];
    g.bench_function("read", |b| {
        b.iter(|| black_box(client.read(0, "data/node128", &mut buf).unwrap()));
    });
    g.bench_function("write", |b| {
        b.iter(|| {
            client
                .write(0, "data/node128", black_box(b"new value"))
                .unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, wire_store, ring);
criterion_main!(benches);
