//! Runs every example and conformance guest in the hypervisor (the
//! `hv_runtime` library, console captured in memory) and checks what it
//! printed and how it shut down. Each run is bounded by a wall-time limit.

use std::time::Duration;

use hv_runtime::console::ConsoleCapture;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};

/// Generous: the software CPU in an unoptimised test build, on a busy host.
const LIMIT: Duration = Duration::from_secs(120);
const MEMORY: u64 = 32 << 20;

/// Boot `name` with `cmdline`; returns its console output and the exit
/// status `hv run` would give.
fn run(name: &str, cmdline: &str) -> (String, u32) {
    let path = pvsdk_examples::guest_image(name).unwrap_or_else(|| panic!("guest {name} is built"));
    let data = std::fs::read(&path).expect("read guest image");
    let image = GuestImage::parse(&data).expect("guest image parses");
    let out = ConsoleCapture::default();
    let mut hv = Hypervisor::new(Hypervisor::frames_for(&[MEMORY]), Box::new(out.clone()))
        .expect("machine memory");
    hv.create_domain(
        &image,
        &DomainConfig {
            name: name.to_owned(),
            memory: MEMORY,
            vcpus: 1,
            cmdline: cmdline.to_owned(),
        },
    )
    .expect("create domain");
    let outcome = hv.run_for(LIMIT);
    let text = out.text();
    match outcome {
        Ok(o) => (text, o.exit_status()),
        Err(t) => panic!("{name} did not finish: {t}\n--- console ---\n{text}"),
    }
}

/// Run a conformance guest: no FAIL line, every `expected` PASS line, a
/// clean RESULT line and exit status 0.
fn conforms(name: &str, cmdline: &str, expected: &[&str]) {
    let (out, status) = run(name, cmdline);
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.is_empty(),
        "{name}: {fails:#?}\n--- console ---\n{out}"
    );
    for want in expected {
        assert!(
            out.lines().any(|l| l
                .strip_prefix("PASS: ")
                .is_some_and(|p| p.starts_with(want))),
            "{name}: no `PASS: {want}` line\n--- console ---\n{out}"
        );
    }
    let result = out
        .lines()
        .find(|l| l.starts_with("RESULT: "))
        .unwrap_or_else(|| panic!("{name}: no RESULT line\n{out}"));
    assert!(result.ends_with(" passed, 0 failed"), "{name}: {result}");
    assert_eq!(status, 0, "{name} powered off cleanly\n{out}");
}

#[test]
fn hello_greets_reads_pvclock_takes_three_ticks_and_powers_off() {
    let (out, status) = run("hello", "");
    assert_eq!(status, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"Hello from a pvsdk PV guest!"),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("pvclock: system time ")),
        "{out}"
    );
    let ticks: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("tick "))
        .map(|l| {
            let ns = l.split(" at ").nth(1).and_then(|t| t.strip_suffix(" ns"));
            ns.and_then(|t| t.parse().ok())
                .expect("tick line has a time")
        })
        .collect();
    assert_eq!(ticks.len(), 3, "{out}");
    assert!(
        ticks.windows(2).all(|w| w[1] >= w[0] + 5_000_000),
        "one-shot timer 5 ms apart: {ticks:?}"
    );
    assert_eq!(lines.last(), Some(&"Goodbye."), "{out}");
}

#[test]
fn boot_protocol_start_info_and_consoles_conform() {
    conforms(
        "xtf-boot",
        "answer=42",
        &[
            "start_info is page aligned",
            "magic is xen-3.0-x86_64",
            "domU flags clear",
            "command line arrives",
            "p2m (mfn_list) and M2P agree on every pfn",
            "start_info VA = VIRT_BASE + pfn * 4096",
            "pt_base maps cr3's frame",
            "shared_info is not one of the domain's pfns",
            "CONSOLEIO_write",
            "console_io with an unknown command -> ENOSYS",
            "backend consumed the console ring",
        ],
    );
    let (out, _) = run("xtf-boot", "answer=42");
    assert!(
        out.contains("xtf-boot: hello through console_io\n"),
        "{out}"
    );
    assert!(
        out.contains("xtf-boot: hello through the console ring\n"),
        "{out}"
    );
}

#[test]
fn kernel_mode_exceptions_and_int_n_bounce_with_xen_frames() {
    conforms(
        "xtf-traps",
        "",
        &[
            "#DE (div by 0): rip",
            "#UD (ud2): rip",
            "#GP (non-canonical load): error code",
            "#BP (int3, trap): rip",
            "#PF (not present read): error code",
            "#PF (not present read): vcpu_info.arch.cr2",
            "#PF (read-only write): error code",
            "#PF (read-only write): vcpu_info.arch.cr2",
            "#PF (read-only write): interrupted rsp",
            "int $0x80 (DPL 3 gate): vector",
            "int $0x82 (DPL 1 gate): vector",
            "int $0x81 (DPL 0 gate): error code",
            "#UD with events enabled: saved upcall mask in CS[39:32]",
            "#UD with events enabled: RFLAGS.IF = !saved mask",
            "#UD gate with the mask flag: events masked in the handler",
            "int $0x80 gate without the mask flag: events stay enabled",
            "set_trap_table with a non-canonical handler -> EINVAL",
        ],
    );
}

#[test]
fn user_mode_iret_syscall_and_user_traps_conform() {
    conforms(
        "xtf-user",
        "",
        &[
            "MMUEXT_NEW_USER_BASEPTR",
            "the alias is absent from the kernel table",
            "back in kernel mode after iret to RPL 0",
            "event in user mode: upcall entered",
            "event in user mode: frame CS is the user CS (RPL 3)",
            "syscall: reaches the syscall callback",
            "syscall: rcx = return rip",
            "syscall: result returned in rax",
            "int $0x80 from user (DPL 3): delivered",
            "int $0x81 from user: error code",
            "int $0x82 from user: error code",
            "#PF from user: error code has U",
            "#UD from user: rip",
            "hypercall from user mode is a syscall",
            "the alias maps the same frame in user mode",
        ],
    );
}

#[test]
fn event_channel_loopback_and_timers_conform() {
    conforms(
        "xtf-events",
        "",
        &[
            "bound port",
            "upcall delivered once unmasked",
            "upcall reports the peer port",
            "no upcall for a masked port",
            "unmask re-raises the pending port",
            "singleshot timer fired",
            "set_timer_op timer fired",
            "periodic timer ticks three times",
            "periodic timer below 1 ms refused",
            "binding VIRQ_TIMER twice -> EEXIST",
            "send on an unbound port is dropped",
            "poll returned at its timeout",
            "SCHEDOP_poll (no timeout) on a pending port returns",
        ],
    );
}

#[test]
fn page_tables_build_switch_map_and_every_forbidden_update_is_refused() {
    conforms(
        "mmu",
        "",
        &[
            "fill and pin the L4",
            "MMUEXT_NEW_BASEPTR to the new L4",
            "data written through WINDOW reads back",
            "WINDOW is gone",
            "writable mapping of a page-table frame -> EBUSY",
            "read-only mapping of a page-table frame",
            "mapping a frame that is not ours (Xen's or another domain's) -> EBUSY",
            "PCD in an L1 entry -> EINVAL",
            "PSE (superpage) in an L2 entry -> EINVAL",
            "G in an L2 entry -> EINVAL",
            "update of a reserved (hypervisor) L4 slot -> EINVAL",
            "writable linear (self) map of the L4 -> EINVAL",
            "mmu_update command 4 (undefined) -> ENOSYS",
            "pin a writably mapped frame as an L1 -> EINVAL",
            "pin an already pinned table -> EINVAL",
            "unpin it twice -> EINVAL",
            "NEW_BASEPTR with an L1 table -> EINVAL",
            "MMUEXT_MARK_SUPER (PV superpages are gone) -> EOPNOTSUPP",
            "a batch stops at the first bad request",
            "the read-only M2P shows it",
            "a plain store of a valid L1 entry is emulated",
            "the stored entry maps the data frame",
            "a store of a forbidden entry (the L1 itself, writable) faults",
        ],
    );
}

#[test]
fn each_shutdown_reason_is_the_exit_status() {
    // poweroff, reboot, suspend, crash, watchdog
    for reason in 0..=4u32 {
        let (out, status) = run("xtf-shutdown", &format!("reason={reason}"));
        assert!(
            out.contains(&format!("PASS: shutting down with reason {reason}")),
            "{out}"
        );
        assert!(!out.contains("FAIL"), "{out}");
        assert_eq!(status, reason, "{out}");
    }
}

#[test]
fn an_expired_watchdog_shuts_the_domain_down_with_reason_4() {
    let (out, status) = run("xtf-shutdown", "watchdog=1");
    for want in [
        "PASS: create a watchdog (id 1)",
        "PASS: create a second watchdog (id 2)",
        "PASS: a third watchdog -> ENOSPC",
        "PASS: destroy watchdog 2",
        "PASS: re-arm the destroyed watchdog -> EINVAL",
        "PASS: re-arm watchdog 1 for 1 s",
        "watchdog expired",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert_eq!(status, 4, "{out}");
}

/// Guests whose runs are checked by other test files (relative to the
/// workspace root), each of which must name the guest.
const TESTED_ELSEWHERE: &[(&str, &str)] = &[
    ("c-kernel", "hv-runtime/tests/c_kernel.rs"),
    ("hostile", "hv-runtime/tests/hostile.rs"),
    ("victim", "hv-runtime/tests/hostile.rs"),
    ("xs-demo", "hv-runtime/tests/xenstore_hv.rs"),
    ("ping", "examples/tests/evtchn_ping_pong.rs"),
    ("pong", "examples/tests/evtchn_ping_pong.rs"),
    ("vchan-a", "examples/tests/vchan.rs"),
    ("vchan-b", "examples/tests/vchan.rs"),
    ("flip-send", "hv-runtime/tests/flip_guests.rs"),
    ("flip-recv", "hv-runtime/tests/flip_guests.rs"),
];

#[test]
fn every_guest_is_covered_here() {
    let here = [
        "hello",
        "mmu",
        "xtf-boot",
        "xtf-events",
        "xtf-shutdown",
        "xtf-traps",
        "xtf-user",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for g in pvsdk_examples::GUESTS {
        if here.contains(g) {
            continue;
        }
        let Some((_, file)) = TESTED_ELSEWHERE.iter().find(|(n, _)| n == g) else {
            panic!("guest {g} is run by no test");
        };
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("guest {g}: cannot read its test {file}: {e}"));
        assert!(
            text.contains(&format!("\"{g}\"")),
            "guest {g}: {file} does not run it"
        );
    }
}
