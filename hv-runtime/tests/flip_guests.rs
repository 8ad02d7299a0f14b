//! The page-flip example pair (`examples/guests/flip-send`, `flip-recv`) run
//! together in one hypervisor, as `hv run flip-send flip-recv` does: the
//! sender (domain 1) fills pages and transfers them, the receiver (domain 2)
//! offers PFN slots through `GTF_accept_transfer` entries, then maps the
//! frames it received and checks their contents; both report on the console
//! and power off cleanly.

use hv_runtime::console::ConsoleCapture;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};
use hv_runtime::machine::DomId;

#[test]
fn flip_send_transfers_pages_that_flip_recv_owns_and_reads() {
    let memory = 16 << 20;
    let out = ConsoleCapture::default();
    let mut hv = Hypervisor::new(
        Hypervisor::frames_for(&[memory, memory]),
        Box::new(out.clone()),
    )
    .unwrap();
    hv.prefix_console = true;
    for name in ["flip-send", "flip-recv"] {
        let path = pvsdk_examples::guest_image(name).unwrap();
        let image = GuestImage::parse(&std::fs::read(path).unwrap()).unwrap();
        let cfg = DomainConfig {
            name: name.into(),
            memory,
            vcpus: 1,
            cmdline: String::new(),
        };
        hv.create_domain(&image, &cfg).unwrap();
    }
    let outcome = hv.run();
    let text = out.text();
    assert_eq!(outcome.exit_status(), 0, "console:\n{text}");
    assert!(
        text.contains("[flip-send] flip-send: gave 4 pages"),
        "{text}"
    );
    assert!(
        text.contains("[flip-recv] flip-recv: received 4 pages"),
        "{text}"
    );
    // Both domains ended: nothing is left pinned or mapped.
    for d in [1, 2] {
        let t = hv.gnttab.table(DomId(d)).unwrap();
        assert!(t.ended());
        assert_eq!(t.mappings().count(), 0);
    }
}
