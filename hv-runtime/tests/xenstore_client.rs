//! The guest-side client (`guest_abi::xenstore`) talking to the runtime's
//! xenstored through a shared page in machine memory: the real ring code on
//! both sides, the server run whenever the client waits.

mod xs_common;

use hv_runtime::machine::DomId;
use std::cell::RefCell;

use guest_abi::abi::errno::Errno;
use guest_abi::ring::RingMem;
use guest_abi::xenstore::{XsClient, XsError, entries};
use hv_runtime::xenstore::conn::off;
use hv_runtime::xenstore::{DomainInfo, Xenstored};
use xs_common::{Pump, memory, page};

fn info(dom: u16, store_mfn: u64) -> DomainInfo {
    DomainInfo {
        dom: DomId(dom),
        name: format!("guest{dom}"),
        console_mfn: 100 + u64::from(dom),
        console_port: 1,
        store_mfn,
        store_port: 2,
    }
}

fn xen_err(e: XsError) -> String {
    e.name().unwrap_or("not a xen error").to_owned()
}

#[test]
fn client_reads_toolstack_nodes_and_writes_its_data_dir() {
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    xs.borrow_mut().add_domain(&mem, &info(1, 1)).unwrap();
    let mut c = XsClient::new(page(&mem, 1), Pump::new(&xs, page(&mem, 1), 1));
    let mut buf = [0u8; 64];
    let n = c.read(0, "domid", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"1");
    let n = c.read(0, "/local/domain/1/name", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"guest1");
    let n = c.read(0, "store/ring-ref", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"1");
    let n = c.read(0, "console/port", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"1");
    let n = c.get_domain_path(1, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"/local/domain/1");

    // Toolstack nodes are read-only; data/ is the domain's.
    assert_eq!(xen_err(c.write(0, "name", b"evil").unwrap_err()), "EACCES");
    c.write(0, "data/greeting", b"hello").unwrap();
    c.mkdir(0, "data/dir/sub").unwrap();
    let n = c.read(0, "data/greeting", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    let n = c.directory(0, "data", &mut buf).unwrap();
    let names: Vec<&[u8]> = entries(&buf[..n]).collect();
    assert_eq!(names, [&b"dir"[..], b"greeting"]);
    c.rm(0, "data/dir").unwrap();
    let e = c.read(0, "data/dir/sub", &mut buf).unwrap_err();
    assert_eq!(xen_err(e), "ENOENT");
    assert!(matches!(e, XsError::Xen { errno, .. } if errno == Errno::ENOENT));
    assert_eq!(
        c.read(0, "data/greeting", &mut [0u8; 2]),
        Err(XsError::BufferTooSmall { needed: 5 })
    );
    // The call after a too-small buffer still lines up with its reply.
    let n = c.read(0, "data/greeting", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
}

#[test]
fn large_values_straddle_the_ring_in_both_directions() {
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    // Start every index just below the u32 wrap and off the ring's start.
    let p = page(&mem, 2);
    for o in [off::REQ_CONS, off::REQ_PROD, off::RSP_CONS, off::RSP_PROD] {
        p.store_u32_relaxed(o, u32::MAX - 300);
    }
    xs.borrow_mut().add_domain(&mem, &info(3, 2)).unwrap();
    let mut c = XsClient::new(p, Pump::new(&xs, p, 3));
    let value: Vec<u8> = (0..4000u32).map(|i| b'a' + (i % 26) as u8).collect();
    c.write(0, "data/big", &value).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(0, "data/big", &mut buf).unwrap();
    assert_eq!(&buf[..n], &value[..]);
    // The indices wrapped past u32::MAX.
    assert!(p.load_u32_relaxed(off::REQ_PROD) < 10_000);
    // Too long for one message: refused by the client before sending.
    let huge = vec![b'x'; 4096];
    assert_eq!(c.write(0, "data/huge", &huge), Err(XsError::Invalid));
}

#[test]
fn watches_deliver_initial_and_change_events_to_the_client() {
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    xs.borrow_mut().add_domain(&mem, &info(1, 1)).unwrap();
    let mut c = XsClient::new(page(&mem, 1), Pump::new(&xs, page(&mem, 1), 1));
    let mut ev = [0u8; 256];
    c.watch("data/w", "tok").unwrap();
    let e = c.wait_watch_event(&mut ev).unwrap();
    assert_eq!((e.path, e.token), (&b"data/w"[..], &b"tok"[..]));
    c.write(0, "data/w/child", b"1").unwrap();
    let e = c.wait_watch_event(&mut ev).unwrap();
    assert_eq!((e.path, e.token), (&b"data/w/child"[..], &b"tok"[..]));
    // A write outside the watched path fires nothing.
    c.write(0, "data/other", b"1").unwrap();
    assert_eq!(c.poll_watch_event(&mut ev).unwrap(), None);
    c.unwatch("data/w", "tok").unwrap();
    c.write(0, "data/w", b"2").unwrap();
    assert_eq!(c.poll_watch_event(&mut ev).unwrap(), None);
    assert_eq!(xen_err(c.unwatch("data/w", "tok").unwrap_err()), "ENOENT");
    assert_eq!(c.lost_events(), 0);
}

#[test]
fn another_domains_write_wakes_a_watcher_and_transactions_conflict() {
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    xs.borrow_mut().add_domain(&mem, &info(1, 1)).unwrap();
    xs.borrow_mut().add_domain(&mem, &info(2, 2)).unwrap();
    // Domain 1 shares a directory with domain 2 (as a toolstack would).
    {
        let mut x = xs.borrow_mut();
        x.store.write(DomId(0), 0, b"/shared/k", b"0").unwrap();
        let perms =
            hv_runtime::xenstore::Perms::owned(DomId(0), hv_runtime::xenstore::Access::Both);
        x.store
            .set_perms(DomId(0), 0, b"/shared", perms.clone())
            .unwrap();
        x.store.set_perms(DomId(0), 0, b"/shared/k", perms).unwrap();
    }
    let mut a = XsClient::new(page(&mem, 1), Pump::new(&xs, page(&mem, 1), 1));
    let mut b = XsClient::new(page(&mem, 2), Pump::new(&xs, page(&mem, 2), 2));
    let mut ev = [0u8; 128];
    a.watch("/shared", "s").unwrap();
    a.wait_watch_event(&mut ev).unwrap();
    b.write(0, "/shared/k", b"1").unwrap();
    let e = a.wait_watch_event(&mut ev).unwrap();
    assert_eq!((e.path, e.token), (&b"/shared/k"[..], &b"s"[..]));

    // Domain 1 reads k in a transaction; domain 2 changes k; the commit
    // fails with EAGAIN and nothing of the transaction lands.
    let mut buf = [0u8; 16];
    let t = a.transaction_start().unwrap();
    assert_ne!(t, 0);
    let n = a.read(t, "/shared/k", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"1");
    a.write(t, "/shared/from-tx", b"x").unwrap();
    b.write(0, "/shared/k", b"2").unwrap();
    assert_eq!(xen_err(a.transaction_end(t, true).unwrap_err()), "EAGAIN");
    assert_eq!(
        xen_err(a.read(0, "/shared/from-tx", &mut buf).unwrap_err()),
        "ENOENT"
    );
    // Retried without interference, it commits.
    let t = a.transaction_start().unwrap();
    let n = a.read(t, "/shared/k", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"2");
    a.write(t, "/shared/from-tx", b"x").unwrap();
    a.transaction_end(t, true).unwrap();
    let n = b.read(0, "/shared/from-tx", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"x");
    // Aborted transactions leave no trace; an ended one is gone.
    let t = a.transaction_start().unwrap();
    a.write(t, "/shared/aborted", b"x").unwrap();
    a.transaction_end(t, false).unwrap();
    assert_eq!(xen_err(a.transaction_end(t, true).unwrap_err()), "ENOENT");
    assert!(b.read(0, "/shared/aborted", &mut buf).is_err());
    // Domain 2 may not end domain 1's transactions.
    let t = a.transaction_start().unwrap();
    assert_eq!(xen_err(b.transaction_end(t, true).unwrap_err()), "ENOENT");
    a.transaction_end(t, true).unwrap();
}

#[test]
fn domain_cannot_read_another_domains_nodes() {
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    xs.borrow_mut().add_domain(&mem, &info(1, 1)).unwrap();
    xs.borrow_mut().add_domain(&mem, &info(2, 2)).unwrap();
    let mut b = XsClient::new(page(&mem, 2), Pump::new(&xs, page(&mem, 2), 2));
    b.write(0, "data/secret", b"s").unwrap();
    let mut a = XsClient::new(page(&mem, 1), Pump::new(&xs, page(&mem, 1), 1));
    let mut buf = [0u8; 16];
    for p in [
        "/local/domain/2/data/secret",
        "/local/domain/2/name",
        "/local/domain/2/nonexistent",
        "/local/domain",
    ] {
        assert_eq!(
            xen_err(a.read(0, p, &mut buf).unwrap_err()),
            "EACCES",
            "{p}"
        );
    }
    assert_eq!(
        xen_err(a.write(0, "/local/domain/2/data/x", b"1").unwrap_err()),
        "EACCES"
    );
    assert_eq!(
        xen_err(a.rm(0, "/local/domain/2/data/secret").unwrap_err()),
        "EACCES"
    );
    assert_eq!(
        xen_err(a.read(0, "../2/data/secret", &mut buf).unwrap_err()),
        "EINVAL"
    );
    // Domain 2's data is intact.
    let n = b.read(0, "data/secret", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"s");
}

#[test]
fn release_removes_nodes_and_fires_release_domain_for_watchers() {
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    xs.borrow_mut().add_domain(&mem, &info(1, 1)).unwrap();
    let mut a = XsClient::new(page(&mem, 1), Pump::new(&xs, page(&mem, 1), 1));
    let mut ev = [0u8; 128];
    a.watch("@introduceDomain", "in").unwrap();
    a.watch("@releaseDomain", "out").unwrap();
    assert_eq!(a.wait_watch_event(&mut ev).unwrap().token, b"in");
    assert_eq!(a.wait_watch_event(&mut ev).unwrap().token, b"out");
    xs.borrow_mut().add_domain(&mem, &info(2, 2)).unwrap();
    let e = a.wait_watch_event(&mut ev).unwrap();
    assert_eq!((e.path, e.token), (&b"@introduceDomain"[..], &b"in"[..]));
    assert!(xs.borrow_mut().remove_domain(DomId(2)));
    let e = a.wait_watch_event(&mut ev).unwrap();
    assert_eq!((e.path, e.token), (&b"@releaseDomain"[..], &b"out"[..]));
    let mut x = xs.borrow_mut();
    assert_eq!(
        x.store.read(DomId(0), 0, b"/local/domain/2"),
        Err(Errno::ENOENT)
    );
    assert!(!x.store.is_introduced(DomId(2)));
    assert!(x.store.is_introduced(DomId(1)));
}

#[test]
fn set_perms_lets_a_named_peer_read_and_watch_a_domains_data() {
    use guest_abi::xenstore::{XsAccess, XsPerm};
    let mem = memory(4);
    let xs = RefCell::new(Xenstored::default());
    for d in 1..=3 {
        xs.borrow_mut()
            .add_domain(&mem, &info(d, u64::from(d)))
            .unwrap();
    }
    let mut a = XsClient::new(page(&mem, 1), Pump::new(&xs, page(&mem, 1), 1));
    let mut b = XsClient::new(page(&mem, 2), Pump::new(&xs, page(&mem, 2), 2));
    let mut c = XsClient::new(page(&mem, 3), Pump::new(&xs, page(&mem, 3), 3));
    let mut ev = [0u8; 128];
    b.watch("/local/domain/1/data/chan/state", "peer").unwrap();
    b.wait_watch_event(&mut ev).unwrap(); // the initial event
    a.mkdir(0, "data/chan").unwrap();
    let perms = [
        XsPerm {
            dom: 1,
            access: XsAccess::None,
        },
        XsPerm {
            dom: 2,
            access: XsAccess::Read,
        },
    ];
    a.set_perms(0, "data/chan", &perms).unwrap();
    // New children inherit the list (with their creator as owner).
    a.write(0, "data/chan/state", b"3").unwrap();
    let e = b.wait_watch_event(&mut ev).unwrap();
    assert_eq!(e.path, b"/local/domain/1/data/chan/state");
    let mut buf = [0u8; 8];
    let n = b
        .read(0, "/local/domain/1/data/chan/state", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"3");
    // Read is not write, and unlisted domains get entry 0's access.
    assert_eq!(
        xen_err(
            b.write(0, "/local/domain/1/data/chan/state", b"4")
                .unwrap_err()
        ),
        "EACCES"
    );
    assert_eq!(
        xen_err(
            c.read(0, "/local/domain/1/data/chan/state", &mut buf)
                .unwrap_err()
        ),
        "EACCES"
    );
    // Only the owner may change the list; an empty list is refused locally.
    assert_eq!(
        xen_err(
            b.set_perms(0, "/local/domain/1/data/chan", &perms)
                .unwrap_err()
        ),
        "EACCES"
    );
    assert_eq!(a.set_perms(0, "data/chan", &[]), Err(XsError::Invalid));
}
