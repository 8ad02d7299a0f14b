//! A domain the hypervisor has to crash leaves a report that says where:
//! the vCPU's mode, RIP, registers and the instruction bytes at RIP.

use hv_runtime::bench::{VIRT_BASE, synthetic_image};
use hv_runtime::console::ConsoleCapture;
use hv_runtime::hv::{DomainConfig, Hypervisor};
use iced_x86::code_asm::{CodeAssembler, rbx};

const MEMORY: u64 = 16 << 20;

#[test]
fn an_unhandled_exception_reports_rip_registers_and_code() {
    // No trap table: the `ud2` cannot be bounced and the domain crashes.
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rbx, 0x1234_5678_9abc_def0_u64).unwrap();
    a.ud2().unwrap();
    let code = a.assemble(VIRT_BASE).unwrap();
    let ud2_at = VIRT_BASE + 10; // after the 10-byte `mov rbx, imm64`
    let capture = ConsoleCapture::default();
    let mut hv =
        Hypervisor::new(Hypervisor::frames_for(&[MEMORY]), Box::new(capture.clone())).unwrap();
    hv.create_domain(
        &synthetic_image(code),
        &DomainConfig {
            name: "ud".into(),
            memory: MEMORY,
            vcpus: 1,
            cmdline: String::new(),
        },
    )
    .unwrap();
    hv.run();
    let out = capture.text();
    assert!(
        out.contains("(hv) domain 1 (ud) crashed: cannot deliver"),
        "{out}"
    );
    assert!(
        out.contains(&format!("vcpu 0 in guest kernel mode: rip {ud2_at:#018x}")),
        "{out}"
    );
    assert!(out.contains("rbx 0x123456789abcdef0"), "{out}");
    assert!(out.contains("code at rip: 0f 0b"), "{out}");
}
