//! A well-behaved PV guest used as the bystander in isolation tests: it
//! fills a buffer in its own memory with a pattern, yields the CPU many
//! times (so that other domains run in between), checks after every yield
//! that the pattern is intact, and reports the result.
//!
//! Exit status: 0 when the pattern survived, `SHUTDOWN_crash` otherwise.
#![no_std]
#![no_main]

use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::sched;
use guest_abi::abi::xen::StartInfo;
use guest_abi::entry::{console_write, hypercall_page_addr, shutdown};
use guest_abi::hypercall::{Hypercall, XenHypercallPage};

guest_abi::entry!(main);

/// Words in the pattern buffer (32 KiB, spanning several frames).
const WORDS: usize = 4096;
/// Times the guest yields (and re-checks) before reporting.
const YIELDS: u32 = 3000;

/// The pattern word at index `i`: distinct per word and per frame.
fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_0000_0000_a5a5
}

/// The index of the first word that differs from the pattern, if any.
fn first_bad(buf: &[u64]) -> Option<usize> {
    buf.iter()
        .enumerate()
        .find(|&(i, &w)| core::hint::black_box(w) != pattern(i))
        .map(|(i, _)| i)
}

fn main(start_info: &'static StartInfo) -> ! {
    let _ = start_info;
    // The hypercall page is the one the domain builder filled for this image
    // (its HYPERCALL_PAGE note).
    // SAFETY: that page is mapped executable and called only in kernel mode.
    let hc = unsafe { XenHypercallPage::new(hypercall_page_addr()) };
    let mut buf = [0u64; WORDS];
    for (i, w) in buf.iter_mut().enumerate() {
        *w = pattern(i);
    }
    console_write(b"victim: pattern written\n");
    for _ in 0..YIELDS {
        let _ = hc.call(nr::SCHED_OP, [u64::from(sched::SCHEDOP_YIELD), 0, 0, 0, 0]);
        if first_bad(core::hint::black_box(&buf)).is_some() {
            console_write(b"victim: PATTERN CORRUPTED\n");
            shutdown(sched::SHUTDOWN_CRASH);
        }
    }
    console_write(b"victim: pattern intact after every yield\n");
    shutdown(sched::SHUTDOWN_POWEROFF)
}
