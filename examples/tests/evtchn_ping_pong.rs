//! `ping` and `pong` run together in one hypervisor (domains 1 and 2), set
//! up an interdomain event channel without xenstore, and exchange a few
//! hundred notifications; both must power off cleanly with matching counts.
//! Timings are printed by ping but not asserted.

use std::time::Duration;

use hv_runtime::console::ConsoleCapture;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};

const MEMORY: u64 = 32 << 20;
const ROUND_TRIPS: u32 = 300;
/// Generous: the software CPU in an unoptimised test build on a busy host.
const LIMIT: Duration = Duration::from_secs(120);

fn image(name: &str) -> GuestImage {
    let path = pvsdk_examples::guest_image(name).unwrap_or_else(|| panic!("guest {name} is built"));
    let data = std::fs::read(&path).expect("read guest image");
    GuestImage::parse(&data).expect("guest image parses")
}

/// Boot `names` in order (domain ids 1, 2, ...) with `cmdline`; returns the
/// console text and each domain's (name, shutdown reason).
fn run(names: &[&str], cmdline: &str) -> (String, Vec<(String, Option<u32>)>) {
    let out = ConsoleCapture::default();
    let mut hv = Hypervisor::new(
        Hypervisor::frames_for(&vec![MEMORY; names.len()]),
        Box::new(out.clone()),
    )
    .expect("machine memory");
    hv.prefix_console = true;
    for name in names {
        hv.create_domain(
            &image(name),
            &DomainConfig {
                name: (*name).to_owned(),
                memory: MEMORY,
                vcpus: 1,
                cmdline: cmdline.to_owned(),
            },
        )
        .expect("create domain");
    }
    let outcome = hv.run_for(LIMIT).unwrap_or_else(|t| {
        panic!(
            "{names:?} did not finish: {t}\n--- console ---\n{}",
            out.text()
        )
    });
    let reasons = outcome
        .domains
        .into_iter()
        .map(|(_, name, reason)| (name, reason))
        .collect();
    (out.text(), reasons)
}

#[test]
fn ping_and_pong_exchange_every_notification_and_power_off() {
    let (out, reasons) = run(&["ping", "pong"], &format!("n={ROUND_TRIPS}"));
    assert_eq!(
        reasons,
        vec![("ping".to_owned(), Some(0)), ("pong".to_owned(), Some(0))],
        "both power off cleanly\n--- console ---\n{out}"
    );
    assert!(!out.contains("FAILED"), "{out}");
    let n = ROUND_TRIPS;
    let ping_summary = format!(
        "[ping] ping: {n} round trips over port 3 <-> pong port 3: sent {n}, received {n}, none lost"
    );
    assert!(
        out.lines().any(|l| l == ping_summary),
        "no `{ping_summary}`\n--- console ---\n{out}"
    );
    let pong_summary = format!("[pong] pong: received {n}, answered {n}, none lost");
    assert!(
        out.lines().any(|l| l == pong_summary),
        "no `{pong_summary}`\n--- console ---\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("[ping] ping: round trip: median ")),
        "{out}"
    );
}

#[test]
fn pong_without_ping_gives_up_binding_with_a_crash_instead_of_hanging() {
    // Alone, pong is domain 1 and nobody allocates the rendezvous port for
    // it: every bind_interdomain fails, and after its bounded retries pong
    // must report it and crash rather than spin forever.
    let (out, reasons) = run(&["pong"], "n=1");
    assert_eq!(
        reasons,
        vec![("pong".to_owned(), Some(3))],
        "a lone pong cannot bind and crashes\n--- console ---\n{out}"
    );
    assert!(
        out.contains("pong: FAILED: EVTCHNOP_bind_interdomain(domain 1, port 3)"),
        "{out}"
    );
}
