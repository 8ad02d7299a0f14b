//! The gcc-built C kernel (`examples/c-kernel`, no guest-abi) boots: the
//! ABI holds against an implementation written independently of pvsdk's
//! own guest crates, with a Linux-style layout (kernel in the top 2 GiB,
//! VIRT_BASE 0xffffffff80000000, PADDR_OFFSET 0). `hv run c-kernel` is
//! tested in `hv-runtime/cli/tests/hv_cli_c_kernel.rs`.

use hv_runtime::console::ConsoleCapture;
use hv_runtime::domain::builder::BootLayout;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};

/// What the kernel prints with 8 MiB and the test's command line: the
/// page-table address is where the builder's layout puts them, the version
/// what `xen_version` reports.
fn expected() -> String {
    let img = GuestImage::parse(&c_kernel()).expect("c-kernel parses");
    let layout = BootLayout::compute(&img, 2048).expect("layout");
    let (major, minor) = hv_runtime::cpuid::XEN_VERSION;
    format!(
        "c-kernel: hello from a gcc-built Xen PV64 kernel\n\
         c-kernel: start_info magic xen-3.0-x86_64, 2048 pages, page tables at {:#018x}\n\
         c-kernel: running on Xen {major}.{minor}.0-pvsdk\n\
         c-kernel: .data loaded and .bss zeroed: yes\n\
         c-kernel: command line: console=hvc0 from-the-test\n\
         c-kernel: all checks passed, powering off\n",
        layout.va(layout.pt_pfn)
    )
}

fn c_kernel() -> Vec<u8> {
    let path = pvsdk_examples::guest_image("c-kernel").expect("c-kernel is a built-in example");
    std::fs::read(path).expect("read c-kernel")
}

#[test]
fn c_kernel_image_is_placed_at_virt_base_plus_physical_address() {
    let img = GuestImage::parse(&c_kernel()).expect("c-kernel parses");
    assert_eq!(img.virt_base, 0xffff_ffff_8000_0000);
    assert_eq!(img.paddr_offset, 0);
    assert_eq!(img.virt_kstart, 0xffff_ffff_8020_0000);
    assert_eq!(img.entry, img.virt_kstart);
    assert_eq!(img.hypercall_page, Some(0xffff_ffff_8020_1000));
    assert_eq!(img.guest_os, "c-kernel");
    assert_eq!(img.features, "pae_pgdir_above_4gb");
}

#[test]
fn c_kernel_boots_prints_and_powers_off() {
    let out = ConsoleCapture::default();
    let memory = 8 << 20;
    let mut hv = Hypervisor::new(Hypervisor::frames_for(&[memory]), Box::new(out.clone()))
        .expect("hypervisor");
    let img = GuestImage::parse(&c_kernel()).expect("c-kernel parses");
    hv.create_domain(
        &img,
        &DomainConfig {
            name: "c-kernel".into(),
            memory,
            vcpus: 1,
            cmdline: "console=hvc0 from-the-test".into(),
        },
    )
    .expect("create domain");
    let outcome = hv.run();
    let text = out.text();
    assert_eq!(text, expected());
    assert_eq!(outcome.exit_status(), 0);
    assert_eq!(outcome.domains.len(), 1);
    assert_eq!(outcome.domains[0].2, Some(0), "SHUTDOWN_poweroff");
}
