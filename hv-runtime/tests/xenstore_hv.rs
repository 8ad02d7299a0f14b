//! xenstore wired into the hypervisor: `create_domain` writes the
//! toolstack's nodes and connects the domain's ring; a domain that shuts
//! down is released (nodes removed, `@releaseDomain` fired).
#![expect(clippy::unwrap_used)]

use guest_abi::abi::errno::Errno;
use guest_abi::abi::xenstore::XENSTORE_CONNECTED;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};
use hv_runtime::machine::DomId;
use hv_runtime::xenstore::conn::off;
use hv_runtime::xenstore::{MachinePage, WatchEvent};

fn hello() -> GuestImage {
    let path = pvsdk_examples::guest_image("hello").unwrap();
    GuestImage::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn cfg(name: &str) -> DomainConfig {
    DomainConfig {
        name: name.to_owned(),
        memory: 16 << 20,
        vcpus: 1,
        cmdline: String::new(),
    }
}

#[test]
fn created_domains_get_nodes_and_a_connected_ring_and_are_released_on_shutdown() {
    let mut hv = Hypervisor::new(
        Hypervisor::frames_for(&[16 << 20, 16 << 20]),
        Box::new(std::io::sink()),
    )
    .unwrap();
    let image = hello();
    let a = hv.create_domain(&image, &cfg("alpha")).unwrap();
    let b = hv.create_domain(&image, &cfg("beta")).unwrap();
    for (id, name) in [(a, "alpha"), (b, "beta")] {
        let d = &hv.domains[&id];
        let base = format!("/local/domain/{id}");
        let store = &mut hv.xenstore.store;
        let read = |s: &mut hv_runtime::xenstore::Store, k: &str| {
            s.read(DomId(0), 0, format!("{base}/{k}").as_bytes())
                .unwrap()
        };
        assert_eq!(read(store, "domid"), id.to_string().as_bytes());
        assert_eq!(read(store, "name"), name.as_bytes());
        assert_eq!(
            read(store, "store/ring-ref"),
            d.store.0.0.to_string().as_bytes()
        );
        assert_eq!(read(store, "store/port"), d.store.1.to_string().as_bytes());
        assert_eq!(
            read(store, "console/ring-ref"),
            d.console.ring.0.to_string().as_bytes()
        );
        assert_eq!(
            read(store, "console/port"),
            d.console.port.to_string().as_bytes()
        );
        // The domain reads its own nodes, not the other's.
        let other = if id == a { b } else { a };
        assert_eq!(store.read(id, 0, b"name").unwrap(), name.as_bytes());
        assert_eq!(
            store.read(id, 0, format!("/local/domain/{other}/name").as_bytes()),
            Err(Errno::EACCES)
        );
        assert!(store.is_introduced(id));
        let page = MachinePage::new(&hv.mem, d.store.0).unwrap();
        use guest_abi::ring::RingMem;
        assert_eq!(page.load_u32_acquire(off::CONNECTION), XENSTORE_CONNECTED);
    }
    // dom0 watches for releases (events for dom0 stay in the store's queue).
    hv.xenstore
        .store
        .watch(DomId(0), b"@releaseDomain", b"rel")
        .unwrap();
    assert_eq!(hv.xenstore.take_dom0_events().len(), 1, "initial event");
    let outcome = hv.run();
    assert_eq!(outcome.exit_status(), 0);
    for id in [a, b] {
        assert!(!hv.xenstore.has_domain(id));
        assert!(!hv.xenstore.store.is_introduced(id));
        assert_eq!(
            hv.xenstore
                .store
                .read(DomId(0), 0, format!("/local/domain/{id}").as_bytes()),
            Err(Errno::ENOENT)
        );
    }
    let events: Vec<WatchEvent> = hv.xenstore.take_dom0_events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.path == "@releaseDomain" && e.token == b"rel")
    );
}

/// Console output shared with the test.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn xs_demo_guest_uses_the_client_through_its_real_ring() {
    let path = pvsdk_examples::guest_image("xs-demo").unwrap();
    let image = GuestImage::parse(&std::fs::read(path).unwrap()).unwrap();
    let out = Captured::default();
    let mut hv =
        Hypervisor::new(Hypervisor::frames_for(&[16 << 20]), Box::new(out.clone())).unwrap();
    hv.create_domain(&image, &cfg("xs-demo")).unwrap();
    let outcome = hv.run();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(outcome.exit_status(), 0, "{text}");
    for check in [
        "PASS read own name",
        "PASS write then read back",
        "PASS initial watch event",
        "PASS watch fires for a child",
        "PASS transaction commit",
        "PASS directory lists key, tx, watched",
        "PASS other domain's path is EACCES",
        "PASS rm removes the subtree",
        "xs-demo: all PASS",
    ] {
        assert!(text.contains(check), "missing {check:?} in:\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
}
