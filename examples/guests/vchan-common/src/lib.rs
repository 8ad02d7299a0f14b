//! Shared code of the vchan example guests (`vchan-a`, the server, and
//! `vchan-b`, the client):
//!
//! * [`chan`] — the two-way byte channel over two granted pages;
//! * [`mem`] — the only `unsafe` code: views of mapped pages;
//! * the xenstore connection ([`store`]) with a transport that sleeps on
//!   the store event channel, and xenbus-style state helpers;
//! * [`duplex`] — streams a deterministic pseudo-random byte pattern both
//!   ways at once in variable-size chunks, verifying every byte received,
//!   sleeping on the event channel when it can make no progress;
//! * small helpers: page slots, events, paths, failure.
//!
//! Every guest-visible step goes through `guest-abi`; the rest (the console,
//! the shared_info mapping, the M2P) comes from `xtf-common`.
#![no_std]
#![deny(unsafe_code)]

pub mod chan;
pub mod mem;

use core::fmt::{self, Write as _};

use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::xenbus::XenbusState;
use guest_abi::abi::{EvtchnPort, Mfn};
use guest_abi::ring::{RawRingMem, RingMem};
use guest_abi::xenstore::{XsAccess, XsClient, XsError, XsPerm, XsTransport};
use guest_abi::{evtchn, sched};
pub use xtf_common::arch::PageSlot;
use xtf_common::arch::evtchn_pending;
pub use xtf_common::{hc, println};

pub use chan::{Chan, ChanError, End};

/// Bytes streamed each way unless the command line says `bytes=N`.
pub const DEFAULT_BYTES: u32 = 128 * 1024;
/// Largest chunk handed to the channel at once.
pub const MAX_CHUNK: usize = 3000;
/// Pattern seeds: server-to-client and client-to-server streams.
pub const SEED_S2C: u64 = 0x5eed_0000_a2b0_0001;
/// See [`SEED_S2C`].
pub const SEED_C2S: u64 = 0x5eed_0000_b2a0_0002;

/// The control and data pages of the channel (the server's own pages; the
/// client maps the server's grants over its own slots).
pub static CTRL: PageSlot = PageSlot::new();
/// See [`CTRL`].
pub static DATA: PageSlot = PageSlot::new();

/// Print `FAIL: …` and crash the domain.
pub fn fail(what: fmt::Arguments<'_>) -> ! {
    println!("FAIL: {what}");
    guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_CRASH)
}

/// Unwrap or [`fail`] with `what` and the error.
pub trait OrFail<T> {
    /// The value, or a `FAIL` line and a crash.
    fn or_fail(self, what: &str) -> T;
}

impl<T, E: fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => fail(format_args!("{what}: {e}")),
        }
    }
}

impl<T> OrFail<T> for Option<T> {
    fn or_fail(self, what: &str) -> T {
        self.unwrap_or_else(|| fail(format_args!("{what}")))
    }
}

/// A short string built with `write!` (paths, values), no allocation.
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// Formats `args`; [`fail`]s if it does not fit.
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut t = Self {
            buf: [0; N],
            len: 0,
        };
        if t.write_fmt(args).is_err() {
            fail(format_args!("text longer than {N} bytes"));
        }
        t
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A path of at most 96 bytes.
pub type Path = Text<96>;

/// The machine frame behind a page slot of our image.
#[must_use]
pub fn slot_mfn(si: &StartInfo, slot: &PageSlot) -> Mfn {
    xtf_common::va_to_mfn(si, slot.va()).or_fail("a page slot of the image is mapped")
}

/// Map shared_info (for the event bits) and keep event upcalls masked:
/// the guests sleep with `SCHEDOP_poll` and need no callback.
pub fn setup_events(si: &StartInfo) {
    let _ = xtf_common::arch::map_shared_info(si);
    xtf_common::arch::vcpu0().set_upcall_mask(1);
}

/// Clear `port`'s pending bit (after [`setup_events`]).
pub fn clear_pending(port: EvtchnPort) {
    let word = (port.0 / 64) as usize;
    evtchn_pending(word).fetch_and(
        !(1u64 << (port.0 % 64)),
        core::sync::atomic::Ordering::SeqCst,
    );
}

/// Sleep until `port` is pending (returns at once if it already is), then
/// clear it. Callers check their condition again afterwards.
pub fn sleep_on(port: EvtchnPort) {
    sched::poll(&hc(), &[port], 0).or_fail("SCHEDOP_poll");
    clear_pending(port);
}

/// The xenstore transport: notify and sleep on the store event channel.
#[derive(Debug)]
pub struct StoreEvents {
    port: EvtchnPort,
}

impl XsTransport for StoreEvents {
    fn notify(&mut self) {
        // The store port is bound to xenstored; a failure here would show
        // up as a wait that never ends, which the caller's bound reports.
        let _ = evtchn::send(&hc(), self.port);
    }

    fn wait(&mut self) -> Result<(), XsError> {
        sched::poll(&hc(), &[self.port], 0).map_err(|_| XsError::Timeout)?;
        clear_pending(self.port);
        Ok(())
    }
}

/// This guest's xenstore connection.
pub type Store = XsClient<RawRingMem, StoreEvents>;

/// Connect to xenstore over the ring page the domain builder mapped.
#[must_use]
pub fn store(si: &StartInfo) -> Store {
    let page = guest_abi::entry::xenstore_ring(si).or_fail("the xenstore page is mapped");
    XsClient::new(
        page,
        StoreEvents {
            port: EvtchnPort(si.store_evtchn),
        },
    )
}

/// Parse a decimal `u32` (xenstore values, the command line).
#[must_use]
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    let s = s.strip_suffix(&[0]).unwrap_or(s).trim_ascii();
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Read a decimal value; `Ok(None)` when the node is missing or not
/// readable by us (yet).
///
/// # Errors
/// Other xenstore failures, or a value that is not a number.
pub fn read_u32(xs: &mut Store, path: &str) -> Result<Option<u32>, XsError> {
    let mut buf = [0u8; 16];
    match xs.read(0, path, &mut buf) {
        Ok(n) => parse_u32(&buf[..n]).map(Some).ok_or(XsError::Protocol),
        Err(e) if matches!(e.name(), Some("ENOENT" | "EACCES")) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Our domain id (the toolstack's `domid` node).
#[must_use]
pub fn own_domid(xs: &mut Store) -> u16 {
    let id = read_u32(xs, "domid")
        .or_fail("read domid")
        .or_fail("the toolstack wrote our domid");
    u16::try_from(id).or_fail("domid fits 16 bits")
}

/// `key=<decimal>` from the kernel command line.
#[must_use]
pub fn cmdline(si: &StartInfo, key: &str) -> Option<u32> {
    xtf_common::cmdline_u32(si, key)
}

/// The peer's domain id: `peer=N` on the command line, else the domain
/// next to ours (`hv run vchan-a vchan-b` makes them consecutive).
#[must_use]
pub fn peer_domid(si: &StartInfo, me: u16, end: End) -> u16 {
    match cmdline(si, "peer") {
        Some(p) => u16::try_from(p).or_fail("peer= fits 16 bits"),
        None => match end {
            End::Server => me.checked_add(1),
            End::Client => me.checked_sub(1),
        }
        .or_fail("a neighbouring domain id"),
    }
}

/// The channel directory of domain `dom`.
#[must_use]
pub fn vchan_dir(dom: u16) -> Path {
    Path::new(format_args!("/local/domain/{dom}/data/vchan"))
}

/// Create our channel directory readable by `peer` only (children inherit
/// the list), and start in `Initialising`.
pub fn make_dir(xs: &mut Store, me: u16, peer: u16) {
    let dir = vchan_dir(me);
    xs.mkdir(0, dir.as_str())
        .or_fail("mkdir our vchan directory");
    let perms = [
        XsPerm {
            dom: me,
            access: XsAccess::None,
        },
        XsPerm {
            dom: peer,
            access: XsAccess::Read,
        },
    ];
    xs.set_perms(0, dir.as_str(), &perms)
        .or_fail("let the peer read our vchan directory");
    set_state(xs, me, XenbusState::Initialising);
}

/// Write our xenbus state.
pub fn set_state(xs: &mut Store, me: u16, state: XenbusState) {
    let p = Path::new(format_args!("{}/state", vchan_dir(me).as_str()));
    xs.write(0, p.as_str(), state.as_str().as_bytes())
        .or_fail("write our state");
}

/// Wait (with a watch) until `dom`'s state satisfies `done`; returns it,
/// or `None` if the node is gone after it had been seen — `known` says it
/// was seen before the call (the peer's domain ended and xenstored removed
/// its nodes).
pub fn wait_state(
    xs: &mut Store,
    dom: u16,
    known: bool,
    done: impl Fn(XenbusState) -> bool,
) -> Option<XenbusState> {
    let p = Path::new(format_args!("{}/state", vchan_dir(dom).as_str()));
    xs.watch(p.as_str(), "peer-state")
        .or_fail("watch the peer's state");
    let mut seen = known;
    let mut ev = [0u8; 160];
    let out = loop {
        match read_u32(xs, p.as_str()).or_fail("read the peer's state") {
            Some(v) => {
                seen = true;
                let s = XenbusState::from_u32(v).or_fail("the peer's state is a xenbus state");
                if done(s) {
                    break Some(s);
                }
            }
            None if seen => break None,
            None => {}
        }
        xs.wait_watch_event(&mut ev)
            .or_fail("wait for a watch event");
    };
    xs.unwatch(p.as_str(), "peer-state")
        .or_fail("unwatch the peer's state");
    out
}

/// Read a published number of `dom`'s channel directory.
#[must_use]
pub fn read_key(xs: &mut Store, dom: u16, key: &str) -> u32 {
    let p = Path::new(format_args!("{}/{key}", vchan_dir(dom).as_str()));
    read_u32(xs, p.as_str())
        .or_fail("read a key the peer published")
        .unwrap_or_else(|| fail(format_args!("{} is missing", p.as_str())))
}

/// Deterministic pseudo-random bytes (xorshift64*), eight per step.
#[derive(Clone, Debug)]
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next byte of the stream.
    pub fn next_byte(&mut self) -> u8 {
        if self.used == 8 {
            self.word = self.next_u64().to_le_bytes();
            self.used = 0;
        }
        let b = self.word[self.used];
        self.used += 1;
        b
    }

    /// A length in `1..=max`.
    pub fn next_len(&mut self, max: usize) -> usize {
        let max = u64::try_from(max.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % max + 1).unwrap_or(1)
    }
}

/// What [`duplex`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes sent.
    pub sent: u32,
    /// Bytes received and verified.
    pub received: u32,
    /// Chunks handed to the channel.
    pub chunks: u32,
    /// Times we slept on the event channel.
    pub sleeps: u32,
    /// The channel's notification counts.
    pub stats: chan::Stats,
}

/// Stream `total` bytes each way over `chan`: ours from `send_seed`,
/// theirs checked against `recv_seed`, in chunks whose sizes come from
/// `chunk_seed`. Prints progress with `who` every 32 KiB received.
///
/// # Errors
/// The channel's error; a byte that differs from the pattern is a
/// [`fail`].
pub fn duplex<M: RingMem>(
    who: &str,
    chan: &mut Chan<M>,
    port: EvtchnPort,
    total: u32,
    seeds: (u64, u64, u64),
) -> Result<Report, ChanError> {
    let (send_seed, recv_seed, chunk_seed) = seeds;
    let (mut tx_pat, mut rx_pat, mut sizes) = (
        Pattern::new(send_seed),
        Pattern::new(recv_seed),
        Pattern::new(chunk_seed),
    );
    let mut r = Report::default();
    let total_len = total as usize;
    let (mut sent, mut received) = (0usize, 0usize);
    let mut out = [0u8; MAX_CHUNK];
    let (mut out_len, mut out_done) = (0usize, 0usize);
    let mut inb = [0u8; MAX_CHUNK];
    let mut next_report = 32 * 1024;
    let h = hc();
    while sent < total_len || received < total_len {
        let mut progress = false;
        if out_done == out_len && sent < total_len {
            out_len = sizes.next_len(MAX_CHUNK).min(total_len - sent);
            out_done = 0;
            for b in &mut out[..out_len] {
                *b = tx_pat.next_byte();
            }
            r.chunks += 1;
        }
        if out_done < out_len {
            let (n, notify) = chan.write(&out[out_done..out_len])?;
            if notify {
                evtchn::send(&h, port).or_fail("notify the peer");
            }
            out_done += n;
            sent += n;
            progress |= n > 0;
        }
        if received < total_len {
            let want = sizes.next_len(MAX_CHUNK).min(total_len - received);
            let (n, notify) = chan.read(&mut inb[..want])?;
            if notify {
                evtchn::send(&h, port).or_fail("notify the peer");
            }
            for (i, &b) in inb[..n].iter().enumerate() {
                let expect = rx_pat.next_byte();
                if b != expect {
                    fail(format_args!(
                        "{who}: byte {} is {b:#04x}, expected {expect:#04x}",
                        received + i
                    ));
                }
            }
            received += n;
            progress |= n > 0;
            if received >= next_report {
                println!("{who}: received {received}/{total} bytes, sent {sent}");
                next_report += 32 * 1024;
            }
        }
        if !progress {
            clear_pending(port);
            if !chan.prepare_wait(received < total_len, out_done < out_len)? {
                r.sleeps += 1;
                sleep_on(port);
            }
        }
    }
    r.sent = u32::try_from(sent).unwrap_or(u32::MAX);
    r.received = u32::try_from(received).unwrap_or(u32::MAX);
    r.stats = chan.stats;
    Ok(r)
}
