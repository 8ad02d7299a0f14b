//! What `ping` and `pong` share (this file is compiled into both guests):
//! the fixed rendezvous convention, the `shared_info` mapping, event-channel
//! bit operations, pvclock time and console output.
//!
//! # The convention (no xenstore yet)
//!
//! Run them together, ping first: `hv run ping pong`, so that ping is domain
//! [`PING_DOMID`] (1) and pong is domain [`PONG_DOMID`] (2).
//!
//! 1. ping allocates a port for pong with `EVTCHNOP_alloc_unbound(remote =
//!    2)`. Event-channel ports are handed out lowest-free-first and a fresh
//!    domain only holds its console and xenstore ports (both named in
//!    `start_info`), so the port is [`rendezvous_port`]: the lowest port ≥ 1
//!    that is neither of those. ping checks that it got exactly that port.
//! 2. pong computes the same port from its own `start_info` (both domains
//!    are built alike) and calls `EVTCHNOP_bind_interdomain(1, port)`,
//!    retrying after `SCHEDOP_yield` while ping has not allocated it yet
//!    (bounded by [`BIND_ATTEMPTS`]).
//! 3. pong sends one "ready" notification; then they play N rounds: ping
//!    sends, pong waits and answers, ping waits. N comes from `n=COUNT` on
//!    the kernel command line (both get the same one), default
//!    [`DEFAULT_ROUND_TRIPS`].
//!
//! # How they wait
//!
//! Events stay masked for the whole run: the vCPU's `evtchn_upcall_mask`
//! stays 1 as the domain builder left it (no upcall, no event callback) and
//! each side also sets its port's bit in `evtchn_mask`. A side waits with
//! `SCHEDOP_poll` on its one port, which Xen wakes when the port becomes
//! pending whatever the masks say, then test-and-clears the port's
//! `evtchn_pending` bit itself (an atomic on the mapped `shared_info`). Every
//! wait has a deadline in pvclock system time (ping: [`WAIT_TIMEOUT_NS`]
//! after the round started; pong: renewed every 64 notifications), so a
//! lost notification ends the run with a message and `SHUTDOWN_crash`
//! instead of a hang. Since the exchange is lock-step, a duplicated or
//! extra notification would show as ping finding its port pending after
//! the last round, which it also treats as a failure.
//!
//! # What ping prints
//!
//! Round trips run back to back; each sample is the pvclock time between
//! two consecutive answers (send, pong wakes, answers, ping wakes). ping
//! prints the median, mean, 99th percentile, min and max. On a shared host
//! the mean and max include the times the host preempted `hv` itself.
#![allow(unsafe_code)]
// Each guest uses its own part of this file.
#![allow(dead_code)]

use core::fmt::{self, Write as _};
use core::mem::offset_of;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use guest_abi::abi::hypercall_nr::SCHED_OP;
use guest_abi::abi::mmu::UVMF_INVLPG;
use guest_abi::abi::sched::SHUTDOWN_CRASH;
use guest_abi::abi::sched::{SCHEDOP_POLL, SchedPoll};
use guest_abi::abi::xen::{SharedInfo, StartInfo};
use guest_abi::abi::{DomId, Errno, EvtchnPort, GuestVa};
use guest_abi::hypercall::{Hypercall as _, XenHypercallPage, arg_mut, arg_ref};
use guest_abi::pvclock::system_time_now;
use guest_abi::shared::{SharedInfoPage, SharedTimeInfo};

/// ping's domain id (it is started first).
pub const PING_DOMID: DomId = DomId(1);
/// pong's domain id (it is started second).
pub const PONG_DOMID: DomId = DomId(2);
/// Round trips when the command line has no `n=`.
pub const DEFAULT_ROUND_TRIPS: u32 = 10_000;
/// Largest `n=` accepted (ping keeps one sample per round trip).
pub const MAX_ROUND_TRIPS: usize = 100_000;
/// How long one side waits for a notification before declaring it lost.
pub const WAIT_TIMEOUT_NS: u64 = 30_000_000_000;
/// How many times pong tries `bind_interdomain` (yielding in between).
pub const BIND_ATTEMPTS: u32 = 100_000;

/// Page-table entry bits for a present, writable, accessed, dirty page.
const PTE_P_RW_A_D: u64 = guest_abi::abi::mmu::PteFlags::PRESENT
    .union(guest_abi::abi::mmu::PteFlags::RW)
    .union(guest_abi::abi::mmu::PteFlags::ACCESSED)
    .union(guest_abi::abi::mmu::PteFlags::DIRTY)
    .bits();

/// A page of `.bss` whose virtual address the guest remaps onto the
/// `shared_info` frame (the frame it was built with is simply dropped).
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut SHARED_INFO_VA: Page = Page([0; 4096]);

/// The samples buffer, handed out once by [`samples`].
static mut SAMPLES: [u32; MAX_ROUND_TRIPS] = [0; MAX_ROUND_TRIPS];
static SAMPLES_TAKEN: AtomicBool = AtomicBool::new(false);

/// One side of the link: hypercalls, `shared_info`, the clock.
pub struct Link {
    /// Who we are, for messages.
    pub name: &'static str,
    hv: XenHypercallPage,
    shared: NonNull<SharedInfo>,
    time: SharedTimeInfo,
}

impl Link {
    /// Map `shared_info` (from `start_info`) and set up the clock. Crashes
    /// the domain if the mapping is refused.
    pub fn new(name: &'static str, start_info: &StartInfo) -> Self {
        // The wrappers pass only pointers to live locals.
        // SAFETY: the builder filled the hypercall page; we run in kernel mode.
        let hv = unsafe { XenHypercallPage::new(guest_abi::entry::hypercall_page_addr()) };
        let va = (&raw mut SHARED_INFO_VA) as u64;
        let pte = (start_info.shared_info & !0xfff) | PTE_P_RW_A_D;
        if let Err(e) = guest_abi::mmu::update_va_mapping(&hv, GuestVa(va), pte, UVMF_INVLPG) {
            crash(name, format_args!("cannot map shared_info: {e}"));
        }
        let ptr = NonNull::new(va as *mut SharedInfo)
            .unwrap_or_else(|| crash(name, format_args!("shared_info page at VA 0")));
        // SAFETY: `va` now maps this domain's shared_info frame, writable, for
        // the rest of the domain's life; nothing else uses that page.
        let page = unsafe { SharedInfoPage::new(ptr) };
        let time = page
            .vcpu_info(0)
            .unwrap_or_else(|| crash(name, format_args!("no vcpu_info for vCPU 0")))
            .time();
        Self {
            name,
            hv,
            shared: ptr,
            time,
        }
    }

    /// The hypercall interface.
    pub fn hv(&self) -> &XenHypercallPage {
        &self.hv
    }

    /// The `u64` of `evtchn_pending` (or `evtchn_mask`, per `field_off`)
    /// that holds `port`'s bit, and the bit.
    fn word(&self, field_off: usize, port: EvtchnPort) -> (&AtomicU64, u64) {
        let idx = (port.0 as usize / 64) % 64;
        let off = field_off + idx * 8;
        // The bitmaps are 64 aligned words at offsets checked in `guest_abi::abi::xen`;
        // Xen and we only ever access them atomically, and the page lives forever.
        // SAFETY: `off` is an aligned word inside the shared_info page `new` mapped.
        let w = unsafe { self.shared.byte_add(off).cast::<AtomicU64>().as_ref() };
        (w, 1u64 << (port.0 % 64))
    }

    /// Set `port`'s bit in `evtchn_mask`: it never raises an upcall.
    pub fn mask(&self, port: EvtchnPort) {
        let (w, bit) = self.word(offset_of!(SharedInfo, evtchn_mask), port);
        w.fetch_or(bit, Ordering::SeqCst);
    }

    /// Clear `port`'s `evtchn_pending` bit; whether it was set.
    pub fn take_pending(&self, port: EvtchnPort) -> bool {
        let (w, bit) = self.word(offset_of!(SharedInfo, evtchn_pending), port);
        w.fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// System time in ns (pvclock).
    pub fn now_ns(&self) -> u64 {
        system_time_now(&self.time, rdtsc).unwrap_or_else(|| {
            crash(
                self.name,
                format_args!("pvclock never gave a consistent reading"),
            )
        })
    }

    /// Wait until `port` is pending (and clear it), polling with the
    /// deadline `deadline_ns`. `Err` on a timeout or a poll error.
    pub fn wait(&self, port: EvtchnPort, deadline_ns: u64) -> Result<(), WaitError> {
        // The clock is read only after a poll came back with nothing
        // pending (a timeout or a spurious wake-up), never on the fast path.
        let mut polled = false;
        loop {
            if self.take_pending(port) {
                return Ok(());
            }
            if polled && self.now_ns() >= deadline_ns {
                return Err(WaitError::TimedOut);
            }
            self.poll(port, deadline_ns).map_err(WaitError::Poll)?;
            polled = true;
        }
    }

    /// `SCHEDOP_poll` on the single `port`. (`guest_abi::sched::poll` takes
    /// any number of ports and copies them into a 128-entry array first;
    /// for one port that copy is most of the guest's work per wait.)
    fn poll(&self, port: EvtchnPort, deadline_ns: u64) -> Result<(), Errno> {
        let ports = [port.0];
        let mut a = SchedPoll {
            ports: arg_ref(&ports),
            nr_ports: 1,
            _pad: 0,
            timeout: deadline_ns,
        };
        self.hv
            .call_checked(
                SCHED_OP,
                [u64::from(SCHEDOP_POLL), arg_mut(&mut a), 0, 0, 0],
            )
            .map(drop)
    }
}

/// Why [`Link::wait`] gave up.
#[derive(Debug)]
pub enum WaitError {
    /// Nothing arrived before the deadline.
    TimedOut,
    /// `SCHEDOP_poll` failed.
    Poll(Errno),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => write!(f, "timed out after {} ms", WAIT_TIMEOUT_NS / 1_000_000),
            Self::Poll(e) => write!(f, "SCHEDOP_poll failed: {e}"),
        }
    }
}

fn rdtsc() -> u64 {
    #[allow(unused_unsafe)]
    // SAFETY: `rdtsc` only reads the time-stamp counter.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// The buffer ping keeps its round-trip samples in; `None` after the
/// first call (it is handed out once per domain).
pub fn samples() -> Option<&'static mut [u32; MAX_ROUND_TRIPS]> {
    if SAMPLES_TAKEN.swap(true, Ordering::SeqCst) {
        return None;
    }
    // One vCPU, and no other code touches `SAMPLES`.
    // SAFETY: the flag above hands the static out once: this is its only reference.
    unsafe { (&raw mut SAMPLES).as_mut() }
}

/// The rendezvous port (see the module docs): the lowest port ≥ 1 that is
/// neither the console nor the xenstore port named in `start_info`.
pub fn rendezvous_port(start_info: &StartInfo) -> EvtchnPort {
    let taken = [start_info.console.evtchn, start_info.store_evtchn];
    let mut p = 1;
    while taken.contains(&p) {
        p += 1;
    }
    EvtchnPort(p)
}

/// `n=COUNT` from the command line, or [`DEFAULT_ROUND_TRIPS`]. Crashes the
/// domain on a malformed or out-of-range count.
pub fn round_trips(name: &'static str, start_info: &StartInfo) -> u32 {
    let mut n = DEFAULT_ROUND_TRIPS;
    for word in start_info.cmd_line_bytes().split(|&b| b == b' ') {
        let Some(digits) = word.strip_prefix(b"n=") else {
            continue;
        };
        n = parse_u32(digits).unwrap_or_else(|| {
            crash(
                name,
                format_args!("n= wants a decimal count from 1 to {MAX_ROUND_TRIPS}"),
            )
        });
    }
    if n == 0 || n as usize > MAX_ROUND_TRIPS {
        crash(
            name,
            format_args!("n={n} is out of range (1 to {MAX_ROUND_TRIPS})"),
        );
    }
    n
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A console line assembled in a fixed buffer and written with one
/// `console_io` call (longer lines are cut).
pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    /// Write the line (with a newline) to the emergency console.
    pub fn emit(mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
        self.buf[self.len] = b'\n';
        guest_abi::entry::console_write(&self.buf[..=self.len]);
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Print `name: args` on the console.
pub fn say(name: &str, args: fmt::Arguments<'_>) {
    let mut l = Line::new();
    let _ = write!(l, "{name}: {args}");
    l.emit();
}

/// Print `name: FAILED: args` and shut down with `SHUTDOWN_crash`.
pub fn crash(name: &str, args: fmt::Arguments<'_>) -> ! {
    say(name, format_args!("FAILED: {args}"));
    guest_abi::entry::shutdown(SHUTDOWN_CRASH)
}
