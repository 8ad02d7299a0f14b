//! Fuzz bodies for xenstore, shared by `fuzz/fuzz_targets/xenstore_msg.rs`
//! and the corpus-replay test `tests/xenstore_fuzz_corpus.rs`. Not a stable
//! API.
//!
//! [`xenstore_msg`] picks one of three bodies with the first input byte:
//!
//! * [`parse_bytes`]: the framing parser and request decoder over arbitrary
//!   bytes — no panic, and every whole message re-encodes to its own bytes;
//! * [`message_sequence`]: a sequence of requests from several domains
//!   (well-formed headers, arbitrary types, transactions and payloads built
//!   from path fragments) against one [`Store`] — no panic, every reply
//!   echoes its request id and fits the payload limit, the tree stays a
//!   tree, quotas hold;
//! * [`hostile_ring`]: a guest scribbling on its ring page (indices,
//!   `connection`, bytes) while the server steps — no panic, no unbounded
//!   queue, and the other domain's connection keeps answering.

use guest_abi::ring::{OwnedRingMem, RingMem};

use super::conn::{self, off};
use super::store::{Quota, Store};
use super::wire::{self, HEADER_LEN, Header};
use super::{Xenstored, handle};

/// A byte cursor over the fuzz input; yields zeros when exhausted.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    fn u8(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
}

/// The fuzz target: dispatch on the first byte.
pub fn xenstore_msg(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => parse_bytes(rest),
        1 => message_sequence(rest),
        _ => hostile_ring(rest),
    }
}

/// Framing and decoding over arbitrary bytes.
pub fn parse_bytes(data: &[u8]) {
    let mut buf = data;
    // Bounded: every iteration consumes at least a header.
    while let Ok(Some((msg, used))) = wire::parse_message(buf) {
        assert!(used >= HEADER_LEN && used <= buf.len());
        let again = wire::serialize(
            msg.header.type_,
            msg.header.req_id,
            msg.header.tx_id,
            &msg.payload,
        );
        assert_eq!(&again[..], &buf[..used]);
        let _ = wire::decode_request(msg.header.type_, &msg.payload);
        buf = &buf[used..];
    }
    // Every type number against the raw bytes as payload.
    for t in 0..28u32 {
        let _ = wire::decode_request(t, data.get(..4096).unwrap_or(data));
    }
}

const FRAGMENTS: [&[u8]; 16] = [
    b"/",
    b"a",
    b"b",
    b"/local/domain/1",
    b"/local/domain/2",
    b"data",
    b"..",
    b"@releaseDomain",
    b"@introduceDomain",
    b"x/y",
    b"/t",
    b"",
    b"//",
    b"\0",
    b"tok",
    b"\xff",
];

/// A request payload assembled from path fragments and raw bytes.
fn payload(input: &mut Input<'_>) -> Vec<u8> {
    let mut p = Vec::new();
    let parts = input.u8() % 6;
    for _ in 0..parts {
        match input.u8() % 4 {
            0 => p.push(0),
            1 => p.push(b'/'),
            2 => {
                let n = usize::from(input.u8() % 8);
                p.extend_from_slice(input.take(n));
            }
            _ => p.extend_from_slice(FRAGMENTS[usize::from(input.u8() % 16)]),
        }
    }
    if !input.u8().is_multiple_of(4) {
        p.push(0);
    }
    p
}

/// Check the tree is a tree: every node's parent exists.
fn check_tree(store: &Store) {
    let dump = store.dump();
    let paths: std::collections::BTreeSet<&str> = dump.iter().map(|d| d.0.as_str()).collect();
    assert!(paths.contains("/"));
    for (p, v, perms) in &dump {
        assert!(!perms.entries().is_empty());
        assert!(v.len() <= guest_abi::abi::xenstore::XENSTORE_PAYLOAD_MAX);
        if p != "/" {
            let cut = p.rfind('/').unwrap_or(0);
            let parent = if cut == 0 { "/" } else { &p[..cut] };
            assert!(paths.contains(parent), "{p} has no parent");
        }
    }
}

/// Requests from domains 0–3 against one store with small quotas.
pub fn message_sequence(data: &[u8]) {
    let mut input = Input { data };
    let quota = Quota {
        nodes: 20,
        node_size: 64,
        watches: 4,
        transactions: 2,
        perms: 3,
    };
    let mut store = Store::new(quota);
    let mut txs = Vec::new();
    let mut steps = 0;
    while input.byte().is_some() && steps < 2_000 {
        steps += 1;
        let dom = u16::from(input.u8() % 4);
        let type_ = u32::from(input.u8() % 28);
        let tx = match input.u8() % 4 {
            0 => txs
                .get(usize::from(input.u8()) % txs.len().max(1))
                .copied()
                .unwrap_or(0),
            1 => input.u32(),
            _ => 0,
        };
        let req_id = input.u32();
        let body = payload(&mut input);
        let header = Header {
            type_,
            req_id,
            tx_id: tx,
            len: u32::try_from(body.len()).unwrap_or(0),
        };
        let reply = handle(&mut store, dom, &header, &body);
        let (msg, used) = wire::parse_message(&reply)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("reply is one whole message"));
        assert_eq!(used, reply.len());
        assert_eq!(msg.header.req_id, req_id);
        if msg.header.type_ == guest_abi::abi::xenstore::XS_TRANSACTION_START
            && let Some(id) = msg
                .payload
                .strip_suffix(&[0])
                .and_then(wire::decimal)
                .and_then(|v| u32::try_from(v).ok())
        {
            txs.push(id);
        }
        let _ = store.take_events();
        for d in 1..4 {
            assert!(store.nodes_owned(d) <= quota.nodes);
            assert!(store.watch_count(d) <= quota.watches);
            assert!(store.transaction_count(d) <= quota.transactions);
        }
    }
    check_tree(&store);
}

/// A legitimate request written at the producer's index.
fn push_request<M: RingMem>(page: &M, bytes: &[u8]) -> bool {
    let prod = page.load_u32_relaxed(off::REQ_PROD);
    let cons = page.load_u32_acquire(off::REQ_CONS);
    let used = prod.wrapping_sub(cons) as usize;
    if used > 1024 || bytes.len() > 1024 - used {
        return false;
    }
    conn::ring_write(page, off::REQ, prod, bytes);
    page.store_u32_release(
        off::REQ_PROD,
        prod.wrapping_add(u32::try_from(bytes.len()).unwrap_or(0)),
    );
    true
}

/// Consume every response byte (a well-behaved reader).
fn drain_responses<M: RingMem>(page: &M) -> usize {
    let prod = page.load_u32_acquire(off::RSP_PROD);
    let cons = page.load_u32_relaxed(off::RSP_CONS);
    let n = prod.wrapping_sub(cons);
    if n <= 1024 {
        page.store_u32_release(off::RSP_CONS, prod);
    }
    n as usize
}

/// A hostile guest (domain 1) and a well-behaved one (domain 2).
pub fn hostile_ring(data: &[u8]) {
    let mut input = Input { data };
    let evil = OwnedRingMem::<1024>::new();
    let good = OwnedRingMem::<1024>::new();
    let start = input.u32();
    for o in [off::REQ_CONS, off::REQ_PROD, off::RSP_CONS, off::RSP_PROD] {
        evil.store_u32_relaxed(o, start);
    }
    let mut xs = Xenstored::new(Quota {
        nodes: 50,
        node_size: 256,
        watches: 8,
        transactions: 2,
        perms: 5,
    });
    xs.connect_page(1, 7, &evil);
    xs.connect_page(2, 8, &good);
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 3_000 {
            break;
        }
        match op % 8 {
            0 => {
                let word = usize::from(input.u8()) % 1024;
                evil.store_u32_relaxed(word * 4, input.u32());
            }
            1 => {
                let o =
                    [off::REQ_PROD, off::RSP_CONS, off::CONNECTION][usize::from(input.u8() % 3)];
                evil.store_u32_release(o, input.u32());
            }
            2 | 3 => {
                let body = payload(&mut input);
                let h = Header {
                    type_: u32::from(input.u8() % 28),
                    req_id: input.u32(),
                    tx_id: 0,
                    len: if op % 8 == 3 {
                        input.u32()
                    } else {
                        u32::try_from(body.len()).unwrap_or(0)
                    },
                };
                let mut msg = h.to_bytes().to_vec();
                msg.extend_from_slice(&body);
                let _ = push_request(&evil, &msg);
            }
            4 => {
                let _ = drain_responses(&evil);
            }
            _ => xs.service_page(&evil, 1),
        }
        if let Some(c) = xs.connection(1) {
            assert!(c.queued() <= conn::OUTPUT_QUEUE_LIMIT);
        }
    }
    // The well-behaved domain still gets answers.
    let _ = drain_responses(&good);
    let read = wire::serialize(guest_abi::abi::xenstore::XS_GET_DOMAIN_PATH, 77, 0, b"2\0");
    assert!(push_request(&good, &read));
    xs.service_page(&good, 2);
    let prod = good.load_u32_acquire(off::RSP_PROD);
    let cons = good.load_u32_relaxed(off::RSP_CONS);
    let n = prod.wrapping_sub(cons) as usize;
    assert!(n >= HEADER_LEN, "domain 2 got no reply");
    let mut buf = vec![0u8; n];
    conn::ring_read(&good, off::RSP, cons, &mut buf);
    let (msg, _) = wire::parse_message(&buf)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("whole reply"));
    assert_eq!(msg.header.req_id, 77);
    assert_eq!(msg.payload, b"/local/domain/2\0");
}
