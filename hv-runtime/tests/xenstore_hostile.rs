//! Hostile guests against the runtime's xenstored: bad paths, other
//! domains' nodes, malformed and oversized messages, quota exhaustion,
//! corrupt ring indices, floods. In every case the offender gets an error
//! (or is disconnected) and the other domains keep being served.
#![expect(clippy::unwrap_used)]

mod xs_common;

use guest_abi::abi::xenstore::{
    XENSTORE_CONNECTED, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX,
    XENSTORE_RECONNECT, XS_CONTROL, XS_DIRECTORY, XS_GET_DOMAIN_PATH, XS_GET_PERMS, XS_INTRODUCE,
    XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ, XS_RELEASE, XS_RM, XS_SET_PERMS,
    XS_TRANSACTION_START, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
};
use guest_abi::ring::{OwnedRingMem, RingMem};
use hv_runtime::machine::DomId;
use hv_runtime::xenstore::conn::{Broken, OUTPUT_QUEUE_LIMIT, REPLY_QUEUE_LIMIT, off};
use hv_runtime::xenstore::wire::{Header, Message};
use hv_runtime::xenstore::{Quota, Xenstored, handle};
use xs_common::{error_name, recv_raw, req, roundtrip, send_raw, split};

type Page = OwnedRingMem<1024>;

/// A xenstored with domains 1 and 2 on owned pages, each with its
/// `/local/domain/<id>` nodes.
fn setup(quota: Quota) -> (Xenstored, Page, Page) {
    let mut xs = Xenstored::new(quota);
    let (p1, p2) = (Page::new(), Page::new());
    for (d, p) in [(1u16, &p1), (2, &p2)] {
        xs.write_domain_nodes(&hv_runtime::xenstore::DomainInfo {
            dom: DomId(d),
            name: format!("d{d}"),
            console_mfn: 0,
            console_port: 1,
            store_mfn: 0,
            store_port: 2,
        })
        .unwrap();
        xs.connect_page(DomId(d), 2, p);
    }
    (xs, p1, p2)
}

/// The one reply to a request (watch events filtered out).
fn ask(xs: &mut Xenstored, page: &Page, dom: u16, type_: u32, tx: u32, payload: &[u8]) -> Message {
    let msgs = roundtrip(xs, page, dom, &req(type_, 42, tx, payload));
    let mut replies: Vec<Message> = msgs
        .into_iter()
        .filter(|m| m.header.type_ != XS_WATCH_EVENT)
        .collect();
    assert_eq!(replies.len(), 1, "one reply to one request");
    let r = replies.remove(0);
    assert_eq!(r.header.req_id, 42, "reply echoes the request id");
    r
}

fn err(xs: &mut Xenstored, page: &Page, dom: u16, type_: u32, payload: &[u8]) -> String {
    let r = ask(xs, page, dom, type_, 0, payload);
    error_name(&r)
        .unwrap_or_else(|| panic!("expected an error, got {:?}", r.payload))
        .to_owned()
}

fn ok(xs: &mut Xenstored, page: &Page, dom: u16, type_: u32, payload: &[u8]) -> Vec<u8> {
    let r = ask(xs, page, dom, type_, 0, payload);
    assert_eq!(error_name(&r), None, "unexpected error for {payload:?}");
    r.payload
}

/// Domain 2 still reads its own name.
fn other_domain_still_served(xs: &mut Xenstored, p2: &Page) {
    assert_eq!(ok(xs, p2, 2, XS_READ, b"name\0"), b"d2");
}

#[test]
fn traversal_and_malformed_paths_are_einval() {
    let (mut xs, p1, p2) = setup(Quota::default());
    for bad in [
        &b"../2/name\0"[..],
        b"/local/domain/1/../2/name\0",
        b"data/./x\0",
        b"data//x\0",
        b"data/\0",
        b"\0",
        b"data/x y\0",
        b"data/\xc3\xa9\0",
    ] {
        assert_eq!(err(&mut xs, &p1, 1, XS_READ, bad), "EINVAL", "{bad:?}");
        assert_eq!(err(&mut xs, &p1, 1, XS_WRITE, bad), "EINVAL", "{bad:?}");
    }
    let long_rel = [vec![b'a'; 2049], vec![0]].concat();
    assert_eq!(err(&mut xs, &p1, 1, XS_MKDIR, &long_rel), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_RM, b"/\0"), "EINVAL");
    other_domain_still_served(&mut xs, &p2);
}

#[test]
fn other_domains_nodes_are_eacces_and_toolstack_nodes_read_only() {
    let (mut xs, p1, p2) = setup(Quota::default());
    ok(&mut xs, &p2, 2, XS_WRITE, b"data/secret\0s");
    for p in [
        &b"/local/domain/2/data/secret\0"[..],
        b"/local/domain/2/nothing-here\0",
        b"/local/domain/2\0",
        b"/\0",
    ] {
        assert_eq!(err(&mut xs, &p1, 1, XS_READ, p), "EACCES", "{p:?}");
        assert_eq!(err(&mut xs, &p1, 1, XS_DIRECTORY, p), "EACCES", "{p:?}");
        assert_eq!(err(&mut xs, &p1, 1, XS_GET_PERMS, p), "EACCES", "{p:?}");
    }
    assert_eq!(
        err(&mut xs, &p1, 1, XS_WRITE, b"/local/domain/2/data/x\0v"),
        "EACCES"
    );
    assert_eq!(err(&mut xs, &p1, 1, XS_RM, b"/local/domain/2\0"), "EACCES");
    // A domain cannot remove or rewrite its own toolstack nodes…
    assert_eq!(err(&mut xs, &p1, 1, XS_RM, b"/local/domain/1\0"), "EACCES");
    assert_eq!(err(&mut xs, &p1, 1, XS_WRITE, b"domid\x000"), "EACCES");
    // …nor hand its own nodes to another domain, nor change others' perms.
    ok(&mut xs, &p1, 1, XS_WRITE, b"data/mine\0x");
    assert_eq!(
        err(&mut xs, &p1, 1, XS_SET_PERMS, b"data/mine\0n2\0"),
        "EPERM"
    );
    assert_eq!(err(&mut xs, &p1, 1, XS_SET_PERMS, b"name\0n1\0"), "EACCES");
    // Sharing by ACL works: domain 2 may then read.
    ok(&mut xs, &p1, 1, XS_SET_PERMS, b"data/mine\0n1\0r2\0");
    assert_eq!(
        ok(&mut xs, &p1, 1, XS_GET_PERMS, b"data/mine\0"),
        b"n1\0r2\0"
    );
    assert_eq!(
        err(&mut xs, &p2, 2, XS_READ, b"/local/domain/1\0"),
        "EACCES"
    );
    // Privileged requests are dom0's.
    assert_eq!(
        err(&mut xs, &p1, 1, XS_INTRODUCE, b"5\x00100\x003\0"),
        "EACCES"
    );
    assert_eq!(err(&mut xs, &p1, 1, XS_RELEASE, b"2\0"), "EACCES");
    assert_eq!(
        err(&mut xs, &p1, 1, XS_IS_DOMAIN_INTRODUCED, b"2\0"),
        "EACCES"
    );
    let h = |t| Header {
        type_: t,
        req_id: 1,
        tx_id: 0,
        len: 2,
    };
    let r = handle(&mut xs.store, DomId(0), &h(XS_IS_DOMAIN_INTRODUCED), b"2\0");
    assert_eq!(&r[16..], b"T\0");
    other_domain_still_served(&mut xs, &p2);
    assert_eq!(ok(&mut xs, &p2, 2, XS_READ, b"data/secret\0"), b"s");
}

#[test]
fn malformed_messages_get_errors_and_the_ring_keeps_working() {
    let (mut xs, p1, p2) = setup(Quota::default());
    // Not NUL-terminated, too many or too few arguments.
    assert_eq!(err(&mut xs, &p1, 1, XS_READ, b"name"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_READ, b"name\0extra\0"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_WRITE, b"no-nul-at-all"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_WATCH, b"data\0"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_WATCH, b"data\0tok"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_WATCH, b"@bogus\0t\0"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_SET_PERMS, b"data\0q1\0"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_SET_PERMS, b"data\0"), "EINVAL");
    assert_eq!(err(&mut xs, &p1, 1, XS_GET_DOMAIN_PATH, b"-1\0"), "EINVAL");
    // Bad and server-only types; unimplemented ones.
    for t in [20, 27, 99, 0xFFFF, XS_WATCH_EVENT, 16] {
        assert_eq!(err(&mut xs, &p1, 1, t, b"x\0"), "EINVAL", "type {t}");
    }
    assert_eq!(err(&mut xs, &p1, 1, XS_CONTROL, b"print\0x\0"), "ENOSYS");
    // Unknown or foreign transaction ids.
    let r = ask(&mut xs, &p1, 1, XS_READ, 12345, b"name\0");
    assert_eq!(error_name(&r), Some("ENOENT"));
    let r = ask(&mut xs, &p1, 1, XS_TRANSACTION_START, 0, b"\0");
    let tx: u32 = std::str::from_utf8(r.payload.strip_suffix(&[0]).unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        error_name(&ask(&mut xs, &p2, 2, XS_READ, tx, b"name\0")),
        Some("ENOENT")
    );
    assert_eq!(
        error_name(&ask(&mut xs, &p1, 1, XS_TRANSACTION_START, tx, b"\0")),
        Some("EBUSY")
    );
    assert_eq!(ok(&mut xs, &p1, 1, XS_READ, b"name\0"), b"d1");
    assert!(xs.connection(DomId(1)).unwrap().broken().is_none());
    other_domain_still_served(&mut xs, &p2);
}

#[test]
fn oversized_message_gets_e2big_then_disconnects_until_reset() {
    let (mut xs, p1, p2) = setup(Quota::default());
    let h = Header {
        type_: XS_WRITE,
        req_id: 9,
        tx_id: 0,
        len: 4097,
    };
    let msgs = roundtrip(&mut xs, &p1, 1, &h.to_bytes());
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (error_name(&msgs[0]), msgs[0].header.req_id),
        (Some("E2BIG"), 9)
    );
    assert_eq!(
        xs.connection(DomId(1)).unwrap().broken(),
        Some(Broken::Protocol)
    );
    assert_eq!(p1.load_u32_relaxed(off::ERROR), XENSTORE_ERROR_PROTO);
    // Further requests are not served…
    assert!(roundtrip(&mut xs, &p1, 1, &req(XS_READ, 1, 0, b"name\0")).is_empty());
    other_domain_still_served(&mut xs, &p2);
    // …until the guest asks for a reset.
    p1.store_u32_release(off::CONNECTION, XENSTORE_RECONNECT);
    xs.service_page(&p1, DomId(1));
    assert_eq!(p1.load_u32_relaxed(off::CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(p1.load_u32_relaxed(off::ERROR), XENSTORE_ERROR_NONE);
    assert_eq!(p1.load_u32_relaxed(off::REQ_PROD), 0);
    assert_eq!(ok(&mut xs, &p1, 1, XS_READ, b"name\0"), b"d1");
}

#[test]
fn corrupt_ring_indices_disconnect_only_that_domain() {
    // (field, offset from the server's own index it is compared with)
    for (field, delta) in [
        (off::REQ_PROD, 1025u32),
        (off::REQ_PROD, 5000),
        (off::REQ_PROD, u32::MAX),
        (off::RSP_CONS, 1),
        (off::RSP_CONS, 3000),
    ] {
        let (mut xs, p1, p2) = setup(Quota::default());
        ok(&mut xs, &p1, 1, XS_READ, b"name\0");
        // req_prod ahead of req_cons, or rsp_cons ahead of rsp_prod.
        let base = if field == off::REQ_PROD {
            p1.load_u32_relaxed(off::REQ_CONS)
        } else {
            p1.load_u32_relaxed(off::RSP_PROD)
        };
        let value = base.wrapping_add(delta);
        p1.store_u32_release(field, value);
        xs.service_page(&p1, DomId(1));
        assert_eq!(
            xs.connection(DomId(1)).unwrap().broken(),
            Some(Broken::RingIndex),
            "{field} = {value}"
        );
        assert_eq!(p1.load_u32_relaxed(off::ERROR), XENSTORE_ERROR_RINGIDX);
        // Restoring sane indices does not revive it without a reset.
        let cons = p1.load_u32_relaxed(off::REQ_CONS);
        p1.store_u32_release(off::REQ_PROD, cons);
        p1.store_u32_release(off::RSP_CONS, p1.load_u32_relaxed(off::RSP_PROD));
        assert!(roundtrip(&mut xs, &p1, 1, &req(XS_READ, 1, 0, b"name\0")).is_empty());
        other_domain_still_served(&mut xs, &p2);
    }
}

#[test]
fn quota_exhaustion_is_enospc_or_e2big_and_spares_other_domains() {
    let quota = Quota {
        nodes: 10,
        node_size: 100,
        watches: 3,
        transactions: 2,
        perms: 2,
    };
    let (mut xs, p1, p2) = setup(quota);
    // Node size.
    let mut big = b"data/big\0".to_vec();
    big.extend(vec![b'x'; 101]);
    assert_eq!(err(&mut xs, &p1, 1, XS_WRITE, &big), "ENOSPC");
    // Node count: data/ etc. are already owned by domain 1.
    let owned = xs.store.nodes_owned(DomId(1));
    let mut made = 0;
    for i in 0..20 {
        let r = ask(
            &mut xs,
            &p1,
            1,
            XS_WRITE,
            0,
            format!("data/n{i}\0v").as_bytes(),
        );
        if let Some(e) = error_name(&r) {
            assert_eq!(e, "ENOSPC");
            break;
        }
        made += 1;
    }
    assert_eq!(owned + made, 10);
    // A write creating several ancestors at once is refused whole.
    ok(&mut xs, &p1, 1, XS_RM, b"data/n0\0");
    assert_eq!(err(&mut xs, &p1, 1, XS_WRITE, b"data/a/b/c\0v"), "ENOSPC");
    assert_eq!(err(&mut xs, &p1, 1, XS_READ, b"data/a\0"), "ENOENT");
    // Watches.
    for i in 0..3 {
        ok(
            &mut xs,
            &p1,
            1,
            XS_WATCH,
            format!("data\0t{i}\0").as_bytes(),
        );
    }
    assert_eq!(err(&mut xs, &p1, 1, XS_WATCH, b"data\0t9\0"), "E2BIG");
    assert_eq!(err(&mut xs, &p1, 1, XS_WATCH, b"data\0t0\0"), "EEXIST");
    // Transactions.
    ok(&mut xs, &p1, 1, XS_TRANSACTION_START, b"\0");
    ok(&mut xs, &p1, 1, XS_TRANSACTION_START, b"\0");
    assert_eq!(err(&mut xs, &p1, 1, XS_TRANSACTION_START, b"\0"), "ENOSPC");
    // Permission list length.
    assert_eq!(
        err(&mut xs, &p1, 1, XS_SET_PERMS, b"data/n1\0n1\0r2\0r3\0"),
        "ENOSPC"
    );
    // Domain 2 has its own quota.
    ok(&mut xs, &p2, 2, XS_WRITE, b"data/fine\0v");
    ok(&mut xs, &p2, 2, XS_WATCH, b"data\0t\0");
    ok(&mut xs, &p2, 2, XS_TRANSACTION_START, b"\0");
}

#[test]
fn watch_flood_to_a_guest_that_never_reads_is_bounded() {
    let quota = Quota {
        watches: 128,
        ..Quota::default()
    };
    let (mut xs, p1, p2) = setup(quota);
    // Domain 2 shares a node that everyone may read.
    ok(&mut xs, &p2, 2, XS_WRITE, b"data/hot\0v");
    ok(&mut xs, &p2, 2, XS_SET_PERMS, b"data/hot\0n2\0r1\0");
    // Domain 1 watches it 128 times, then stops reading its ring.
    for i in 0..128 {
        let m = format!("/local/domain/2/data/hot\0t{i}\0");
        ok(&mut xs, &p1, 1, XS_WATCH, m.as_bytes());
    }
    // 200 writes × 128 watches = 25 600 events for domain 1.
    for i in 0..200 {
        let m = format!("data/hot\0{i}");
        ok(&mut xs, &p2, 2, XS_WRITE, m.as_bytes());
        let c = xs.connection(DomId(1)).unwrap();
        assert!(c.queued() <= OUTPUT_QUEUE_LIMIT);
    }
    assert!(xs.connection(DomId(1)).unwrap().dropped_events() > 20_000);
    // Domain 1 is flooded but alive: it stops taking requests while its
    // output is full…
    assert!(send_raw(&p1, &req(XS_READ, 77, 0, b"name\0")));
    xs.service_page(&p1, DomId(1));
    assert!(xs.connection(DomId(1)).unwrap().queued() >= REPLY_QUEUE_LIMIT);
    // …and gets its reply after reading its way through the backlog.
    let mut got = Vec::new();
    for _ in 0..1000 {
        xs.service_page(&p1, DomId(1));
        got.extend(recv_raw(&p1));
        if xs.connection(DomId(1)).unwrap().queued() == 0 {
            break;
        }
    }
    for _ in 0..4 {
        xs.service_page(&p1, DomId(1));
        got.extend(recv_raw(&p1));
    }
    let msgs = split(&got);
    let reply = msgs.iter().find(|m| m.header.req_id == 77).unwrap();
    assert_eq!(reply.payload, b"d1");
    other_domain_still_served(&mut xs, &p2);
}

#[test]
fn guest_that_never_reads_replies_stalls_only_itself() {
    let (mut xs, p1, p2) = setup(Quota::default());
    // Fill the request ring repeatedly without ever consuming responses.
    let mut sent = 0;
    for _ in 0..500 {
        if send_raw(&p1, &req(XS_READ, sent, 0, b"name\0")) {
            sent += 1;
        }
        xs.service_page(&p1, DomId(1));
        other_domain_still_served(&mut xs, &p2);
    }
    let c = xs.connection(DomId(1)).unwrap();
    assert!(c.broken().is_none());
    assert!(c.queued() <= REPLY_QUEUE_LIMIT);
    assert!(sent > 50, "the server took requests until its queue filled");
    assert!(u64::from(sent) > c.requests());
}
