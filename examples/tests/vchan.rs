//! The vchan example: `vchan-a` (server) and `vchan-b` (client) run
//! together in one hypervisor — xenstore handshake, grants, an interdomain
//! event channel and a verified byte stream both ways — and both must
//! print `PASS` and power off. Each run is bounded by a wall-time limit.

use std::time::Duration;

use hv_runtime::console::ConsoleCapture;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};

/// Generous: the software CPU in an unoptimised test build, on a busy host.
const LIMIT: Duration = Duration::from_secs(180);
const MEMORY: u64 = 32 << 20;

/// Boot `(guest, cmdline)` pairs as domains 1, 2, … in one hypervisor,
/// console lines prefixed with the guest name as `hv run` does. Returns the
/// console and each domain's (name, shutdown reason).
fn run_together(guests: &[(&str, &str)]) -> (String, Vec<(String, Option<u32>)>) {
    let out = ConsoleCapture::default();
    let mut hv = Hypervisor::new(
        Hypervisor::frames_for(&vec![MEMORY; guests.len()]),
        Box::new(out.clone()),
    )
    .expect("machine memory");
    hv.prefix_console = true;
    for (name, cmdline) in guests {
        let path =
            pvsdk_examples::guest_image(name).unwrap_or_else(|| panic!("guest {name} is built"));
        let image = GuestImage::parse(&std::fs::read(&path).expect("read guest image"))
            .expect("guest image parses");
        hv.create_domain(
            &image,
            &DomainConfig {
                name: (*name).to_owned(),
                memory: MEMORY,
                vcpus: 1,
                cmdline: (*cmdline).to_owned(),
            },
        )
        .expect("create domain");
    }
    let outcome = hv.run_for(LIMIT);
    let text = out.text();
    match outcome {
        Ok(o) => (
            text,
            o.domains.into_iter().map(|(_, n, r)| (n, r)).collect(),
        ),
        Err(t) => panic!("the vchan pair did not finish: {t}\n--- console ---\n{text}"),
    }
}

/// Both ends printed their PASS line with `bytes` each way, no FAIL, and
/// both powered off.
fn assert_both_pass(out: &str, domains: &[(String, Option<u32>)], bytes: u32) {
    assert!(
        !out.lines().any(|l| l.contains("FAIL")),
        "a FAIL line\n--- console ---\n{out}"
    );
    for name in ["vchan-a", "vchan-b"] {
        let want =
            format!("[{name}] PASS: {name} sent {bytes} bytes and received {bytes} verified bytes");
        assert!(
            out.lines().any(|l| l.starts_with(&want)),
            "no `{want}` line\n--- console ---\n{out}"
        );
    }
    for (name, reason) in domains {
        assert_eq!(
            *reason,
            Some(0),
            "{name} did not power off\n--- console ---\n{out}"
        );
    }
}

/// `[sleeps, events sent, suppressed]` from `name`'s summary line
/// (`N chunks, slept S times, sent E events, U index updates needed none`).
fn counts(out: &str, name: &str) -> [u32; 3] {
    let prefix = format!("[{name}] {name}: ");
    let line = out
        .lines()
        .find_map(|l| {
            l.strip_prefix(&prefix)
                .filter(|l| l.contains(" chunks, slept "))
        })
        .unwrap_or_else(|| panic!("no summary line of {name}\n{out}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [_chunks, sleeps, events, suppressed] => [sleeps, events, suppressed],
        _ => panic!("unexpected summary line {line:?}"),
    }
}

#[test]
fn vchan_pair_streams_128k_each_way_and_both_pass() {
    let (out, domains) = run_together(&[("vchan-a", ""), ("vchan-b", "")]);
    assert_both_pass(&out, &domains, 128 * 1024);
    // The handshake happened in xenbus order and the teardown was clean.
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}`\n--- console ---\n{out}"))
    };
    assert!(
        pos("vchan-a: published under /local/domain/1/data/vchan")
            < pos("vchan-b: server offers refs 8 and 9")
    );
    assert!(pos("vchan-b: mapped both grants") < pos("vchan-a: peer connected"));
    // Both ends slept on the event channel (the 2 KiB rings fill up), were
    // woken by events, and skipped events the peer had not asked for.
    for name in ["vchan-a", "vchan-b"] {
        let [sleeps, events, suppressed] = counts(&out, name);
        assert!(
            sleeps > 0 && events > 0 && suppressed > 0,
            "{name}: {sleeps} sleeps, {events} events, {suppressed} suppressed\n{out}"
        );
    }
    assert!(out.contains("grants ended, port closed"), "{out}");
    assert!(out.contains("grants unmapped, port closed"), "{out}");
}

#[test]
fn client_started_first_waits_in_xenstore_for_the_server() {
    // vchan-b is domain 1 and finds no server yet; `peer=` names the ends.
    let (out, domains) = run_together(&[("vchan-b", "peer=2"), ("vchan-a", "peer=1 bytes=20000")]);
    assert_both_pass(&out, &domains, 20000);
    assert!(
        out.contains("vchan-b: client in domain 1, server domain 2"),
        "{out}"
    );
}
