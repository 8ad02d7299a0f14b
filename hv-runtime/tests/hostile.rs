//! Isolation: the `hostile` example guest tries every rule breach it knows
//! (see `examples/guests/hostile`) while the `victim` guest, in the same
//! hypervisor, keeps a pattern in its memory and checks it after every
//! yield. The hostile domain must see only errors and faults and end crashed
//! by its last breach; the victim's output, exit status and memory must be
//! exactly what they are when it runs alone; the runtime must not panic.

use std::sync::mpsc;
use std::time::Duration;

use hv_runtime::console::ConsoleCapture;
use hv_runtime::cpu::mem::MachineAddr;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};

const VICTIM_MEMORY: u64 = 4 << 20;
const HOSTILE_MEMORY: u64 = 8 << 20;
/// Generous bound that only a hung hypervisor exceeds.
const HANG: Duration = Duration::from_secs(900);

/// What one run left behind.
struct Run {
    output: String,
    /// (name, shutdown reason, crash reason, hash of every p2m frame).
    domains: Vec<(String, u32, Option<String>, Vec<u64>)>,
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn image(name: &str) -> GuestImage {
    let path = pvsdk_examples::guest_image(name).expect("example guest is built");
    let bytes = std::fs::read(&path).expect("read guest image");
    GuestImage::parse(&bytes).expect("example guest parses")
}

/// Start running `guests` (name, memory) in one hypervisor sized for
/// victim + hostile, on a separate thread; [`finish`] waits for it, so that
/// a hang fails the test instead of blocking it.
fn start(guests: &[(&'static str, u64)]) -> mpsc::Receiver<Run> {
    let guests = guests.to_vec();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = ConsoleCapture::default();
        let frames = Hypervisor::frames_for(&[VICTIM_MEMORY, HOSTILE_MEMORY]);
        let mut hv = Hypervisor::new(frames, Box::new(out.clone())).expect("hypervisor");
        hv.prefix_console = true;
        for (name, memory) in &guests {
            hv.create_domain(
                &image(name),
                &DomainConfig {
                    name: (*name).to_owned(),
                    memory: *memory,
                    vcpus: 1,
                    cmdline: String::new(),
                },
            )
            .expect("create domain");
        }
        hv.run();
        let domains = hv
            .domains
            .values()
            .map(|d| {
                let hashes = d
                    .p2m
                    .iter()
                    .map(|mfn| {
                        let mut page = vec![0u8; 4096];
                        hv.mem
                            .read(MachineAddr(mfn.0 << 12), &mut page)
                            .expect("read frame");
                        fnv(&page)
                    })
                    .collect();
                (
                    d.name.clone(),
                    d.shutdown.expect("every domain shut down"),
                    d.crash_reason.clone(),
                    hashes,
                )
            })
            .collect();
        let output = out.text();
        let _ = tx.send(Run { output, domains });
    });
    rx
}

fn finish(rx: &mpsc::Receiver<Run>) -> Run {
    rx.recv_timeout(HANG)
        .expect("the hypervisor ran to completion without panicking or hanging")
}

fn lines<'a>(output: &'a str, prefix: &str) -> Vec<&'a str> {
    output.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn hostile_guest_is_refused_everything_and_cannot_touch_its_neighbour() {
    let alone = start(&[("victim", VICTIM_MEMORY)]);
    let both = start(&[("victim", VICTIM_MEMORY), ("hostile", HOSTILE_MEMORY)]);
    let (alone, both) = (finish(&alone), finish(&both));
    let out = &both.output;

    // The hostile domain: every probe answered with an error or a fault.
    let hostile = lines(out, "[hostile] hostile: ");
    assert!(
        !out.contains("ACCEPTED"),
        "a breach went through:\n{}",
        hostile
            .iter()
            .filter(|l| l.contains("ACCEPTED"))
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summary = hostile
        .iter()
        .find_map(|l| l.strip_suffix(" probes, 0 accepted"))
        .unwrap_or_else(|| panic!("hostile guest ran to the end:\n{out}"));
    let probes: usize = summary
        .trim_start_matches("[hostile] hostile: ")
        .parse()
        .expect("probe count");
    let answered = hostile
        .iter()
        .filter(|l| {
            l.contains(": rejected") || l.contains(": faulted vector=") || l.ends_with(": ok")
        })
        .count();
    assert_eq!(answered, probes, "every probe printed its verdict:\n{out}");
    assert!(probes >= 200, "only {probes} probes ran");
    for must in [
        "update_va_mapping: writable map of own L4: rejected",
        "update_va_mapping: writable map of own L1: rejected",
        "mmu_update: L4 slots 256-271 (map / clear): rejected all 32",
        "update_va_mapping: L1 entry with PCD: rejected",
        "mmu_update: L2 entry with PSE (2M superpage): rejected",
        "store into the M2P: faulted vector=14",
        "mmuext: unpin a data page that is not pinned: rejected",
        "mmuext: pin own L4 as an L1: rejected",
        "mmuext: pin the vcpu_info page as an L1: rejected",
        "update_va_mapping: map foreign frames writable: rejected all",
        "mmu_update: store into foreign frames: rejected all",
        "mmuext: copy_page from foreign frames: rejected all",
        "bad input pointers: mmu_update requests: rejected all",
        "bad output pointers: vcpu_op get_runstate_info: rejected all",
        "mmuext_op: 70000 ops are all done (no silent truncation): ok",
        "multicall: a 3000-update mmu_update entry is completed: ok",
        "mmu_update: count 2^31-1 ending in a hole: rejected",
        "event_channel_op bind_interdomain to another domain's ports: rejected all 8",
        "set_trap_table: garbage table with a non-canonical entry: rejected",
        "mmuext: set_ldt over the M2P: rejected",
        "iret: IOPL and VM stripped from the frame's RFLAGS: ok",
        "iret to a non-canonical RIP: faulted",
        "user-mode wrmsr(hypercall page) traps (#GP) and writes nothing: ok",
        "user-mode mov cr3 traps (#GP): ok",
        "user-mode store into an L1 is a #PF, not a page-table update: ok",
    ] {
        assert!(out.contains(must), "missing verdict {must:?}:\n{out}");
    }
    let (_, reason, crash, _) = both
        .domains
        .iter()
        .find(|d| d.0 == "hostile")
        .expect("hostile domain");
    assert_eq!(
        *reason, 3,
        "the last breach (bad iret) crashes the hostile domain"
    );
    assert!(
        crash.as_deref().is_some_and(|c| c.contains("bad iret")),
        "crash reason: {crash:?}"
    );

    // The victim: same output, same exit status, same memory as alone, and
    // it was still running (and checking) when the hostile domain died.
    let victim_alone = lines(&alone.output, "[victim] ");
    let victim_both = lines(out, "[victim] ");
    assert_eq!(victim_both, victim_alone);
    assert_eq!(
        victim_both.last().copied(),
        Some("[victim] victim: pattern intact after every yield")
    );
    let crashed_at = out.find("(hostile) crashed").expect("crash reported");
    let intact_at = out.find("pattern intact").expect("victim reported");
    assert!(crashed_at < intact_at, "victim outlived the hostile domain");
    let v_alone = &alone.domains[0];
    let v_both = both
        .domains
        .iter()
        .find(|d| d.0 == "victim")
        .expect("victim domain");
    assert_eq!(v_both.1, 0, "victim exit status");
    assert_eq!(v_alone.1, 0);
    let differing: Vec<usize> = (0..v_alone.3.len())
        .filter(|&pfn| v_alone.3.get(pfn) != v_both.3.get(pfn))
        .collect();
    assert!(
        differing.is_empty() && v_alone.3.len() == v_both.3.len(),
        "victim frames differ from a run alone at PFNs {differing:?}"
    );
}
