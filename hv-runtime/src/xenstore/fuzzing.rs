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
use crate::machine::{DOM0, DomId};

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

/// A path: mostly valid (absolute under `/t`, relative under `data`, or
/// another domain's), sometimes built from hostile fragments.
fn path(input: &mut Input<'_>) -> Vec<u8> {
    let mut p: Vec<u8> = match input.u8() % 8 {
        0..=2 => b"/t".to_vec(),
        3..=4 => b"data".to_vec(),
        5 => format!("/local/domain/{}/data", input.u8() % 4).into_bytes(),
        6 => FRAGMENTS[usize::from(input.u8() % 16)].to_vec(),
        _ => {
            let n = usize::from(input.u8() % 8);
            input.take(n).to_vec()
        }
    };
    for _ in 0..input.u8() % 4 {
        p.push(b'/');
        p.extend_from_slice([&b"a"[..], b"b", b"c"][usize::from(input.u8() % 3)]);
    }
    p
}

/// A request payload for `type_`: usually well-formed, sometimes built
/// from path fragments and raw bytes.
fn payload(input: &mut Input<'_>, type_: u32) -> Vec<u8> {
    use guest_abi::abi::xenstore as x;
    let mode = input.u8();
    let mut p = Vec::new();
    if mode.is_multiple_of(4) {
        // Hostile: fragments, NULs and raw bytes.
        for _ in 0..mode % 6 {
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
        return p;
    }
    match type_ {
        x::XS_WRITE => {
            p.extend(path(input));
            p.push(0);
            let n = usize::from(input.u8() % 16);
            p.extend_from_slice(input.take(n));
        }
        x::XS_WATCH | x::XS_UNWATCH => {
            if input.u8().is_multiple_of(4) {
                p.extend_from_slice(FRAGMENTS[7 + usize::from(input.u8() % 2)]);
            } else {
                p.extend(path(input));
            }
            p.push(0);
            p.extend_from_slice(format!("tok{}", input.u8() % 4).as_bytes());
            p.push(0);
        }
        x::XS_SET_PERMS => {
            p.extend(path(input));
            p.push(0);
            for _ in 0..1 + input.u8() % 4 {
                let letter = b"nrwb"[usize::from(input.u8() % 4)];
                p.push(letter);
                p.extend_from_slice((input.u8() % 4).to_string().as_bytes());
                p.push(0);
            }
        }
        x::XS_TRANSACTION_START | x::XS_RESET_WATCHES => p.push(0),
        x::XS_TRANSACTION_END => p.extend_from_slice(if input.u8().is_multiple_of(4) {
            b"F\0"
        } else {
            b"T\0"
        }),
        x::XS_GET_DOMAIN_PATH | x::XS_RELEASE | x::XS_IS_DOMAIN_INTRODUCED => {
            p.extend_from_slice((input.u8() % 5).to_string().as_bytes());
            p.push(0);
        }
        x::XS_INTRODUCE => p.extend_from_slice(
            format!("{}\0{}\0{}\0", input.u8() % 5, input.u8(), input.u8()).as_bytes(),
        ),
        _ => {
            p.extend(path(input));
            p.push(0);
        }
    }
    p
}

/// A request type: mostly the common ones.
fn request_type(input: &mut Input<'_>) -> u32 {
    const COMMON: [u32; 12] = [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 21];
    let b = input.u8();
    if b < 200 {
        COMMON[usize::from(b) % COMMON.len()]
    } else {
        u32::from(b % 28)
    }
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

/// `/t` (readable by all, writable by domain 1) and each domain's `data`.
fn setup_tree(store: &mut Store) {
    use super::store::{Access, Perms};
    let _ = store.write(DOM0, 0, b"/t", b"");
    let _ = store.set_perms(
        DOM0,
        0,
        b"/t",
        Perms::owned(DOM0, Access::Read).with(DomId(1), Access::Both),
    );
    for d in 1..4u16 {
        let p = format!("/local/domain/{d}/data");
        let _ = store.mkdir(DOM0, 0, p.as_bytes());
        let _ = store.set_perms(DOM0, 0, p.as_bytes(), Perms::owned(DomId(d), Access::None));
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
    setup_tree(&mut store);
    let mut txs = Vec::new();
    let mut steps = 0;
    while input.byte().is_some() && steps < 2_000 {
        steps += 1;
        let dom = DomId(u16::from(input.u8() % 4));
        let type_ = request_type(&mut input);
        let tx = match input.u8() % 4 {
            0 => txs
                .get(usize::from(input.u8()) % txs.len().max(1))
                .copied()
                .unwrap_or(0),
            1 => input.u32(),
            _ => 0,
        };
        let req_id = input.u32();
        let body = payload(&mut input, type_);
        let header = Header {
            type_,
            req_id,
            tx_id: tx,
            len: u32::try_from(body.len()).unwrap_or(0),
        };
        let owned_before: Vec<u32> = (1..4).map(|d| store.nodes_owned(DomId(d))).collect();
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
        for (d, before) in (1..4).map(DomId).zip(owned_before) {
            // A guest's own requests never take it past its node quota.
            // Domain 0 is exempt, as in Xen: nodes it creates inherit
            // their parent's owner and can take that owner past its quota.
            let owned = store.nodes_owned(d);
            assert!(
                owned <= quota.nodes || owned <= before || dom == DOM0,
                "domain {dom} took domain {d} from {before} to {owned} nodes (quota {})",
                quota.nodes
            );
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
    setup_tree(&mut xs.store);
    xs.connect_page(DomId(1), 7, &evil);
    xs.connect_page(DomId(2), 8, &good);
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 3_000 {
            break;
        }
        match op % 16 {
            0 => {
                let word = usize::from(input.u8()) % 1024;
                evil.store_u32_relaxed(word * 4, input.u32());
            }
            1 => {
                let o =
                    [off::REQ_PROD, off::RSP_CONS, off::CONNECTION][usize::from(input.u8() % 3)];
                evil.store_u32_release(o, input.u32());
            }
            2 => evil.store_u32_release(
                off::CONNECTION,
                guest_abi::abi::xenstore::XENSTORE_RECONNECT,
            ),
            3..=7 => {
                let type_ = request_type(&mut input);
                let body = payload(&mut input, type_);
                let h = Header {
                    type_,
                    req_id: input.u32(),
                    tx_id: if op % 16 == 7 { input.u32() % 4 } else { 0 },
                    len: if op % 16 == 3 && input.u8().is_multiple_of(4) {
                        input.u32()
                    } else {
                        u32::try_from(body.len()).unwrap_or(0)
                    },
                };
                let mut msg = h.to_bytes().to_vec();
                msg.extend_from_slice(&body);
                // Sometimes only part of it: the rest never comes or comes later.
                let cut = if input.u8().is_multiple_of(8) {
                    msg.len() / 2
                } else {
                    msg.len()
                };
                let _ = push_request(&evil, &msg[..cut]);
            }
            8..=10 => {
                let _ = drain_responses(&evil);
            }
            _ => xs.service_page(&evil, DomId(1)),
        }
        if let Some(c) = xs.connection(DomId(1)) {
            assert!(c.queued() <= conn::OUTPUT_QUEUE_LIMIT);
        }
    }
    // The well-behaved domain still gets answers.
    let _ = drain_responses(&good);
    let read = wire::serialize(guest_abi::abi::xenstore::XS_GET_DOMAIN_PATH, 77, 0, b"2\0");
    assert!(push_request(&good, &read));
    xs.service_page(&good, DomId(2));
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
