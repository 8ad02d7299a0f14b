//! `hv run c-kernel`: the gcc-built C kernel (`examples/c-kernel`) found by
//! name and booted through the `hv` command, its console on stdout. The
//! library-level checks are in `hv-runtime/tests/c_kernel.rs`.

use hv_runtime::domain::builder::BootLayout;
use hv_runtime::domain::image::GuestImage;

/// What the kernel prints with 8 MiB and the test's command line: the
/// page-table address is where the builder's layout puts them, the version
/// what `xen_version` reports.
fn expected() -> String {
    let path = pvsdk_examples::guest_image("c-kernel").expect("c-kernel is a built-in example");
    let img =
        GuestImage::parse(&std::fs::read(path).expect("read c-kernel")).expect("c-kernel parses");
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

#[test]
fn hv_run_finds_the_c_kernel_by_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hv"))
        .args([
            "run",
            "c-kernel",
            "--memory",
            "8M",
            "--cmdline",
            "console=hvc0 from-the-test",
        ])
        .output()
        .expect("run hv");
    assert!(out.status.success(), "hv run c-kernel: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected());
}
