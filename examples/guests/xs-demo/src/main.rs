//! xenstore through the real ring: the guest client
//! (`guest_abi::xenstore`) on the domain's store page, talking to the
//! runtime's xenstored. Writes a key and reads it back, watches a key and
//! sees the change, commits a transaction, lists a directory, is refused
//! another domain's nodes, removes its keys. Prints one `PASS` line per
//! check (or a `FAIL` line and shuts down with reason 1).
#![no_std]
#![no_main]

use core::fmt::Write as _;

use guest_abi::abi::xen::StartInfo;
use guest_abi::hypercall::page::XenHypercallPage;
use guest_abi::xenstore::{XsClient, XsError, XsTransport, entries};

guest_abi::entry!(main);

/// Notify on the store event channel; wait by yielding the vCPU (the
/// runtime serves the ring between scheduling slices).
struct Store {
    hc: XenHypercallPage,
    port: u32,
    waits: u32,
}

impl XsTransport for Store {
    fn notify(&mut self) {
        let _ = guest_abi::evtchn::send(&self.hc, guest_abi::abi::EvtchnPort(self.port));
    }

    fn wait(&mut self) -> Result<(), XsError> {
        self.waits += 1;
        if self.waits > 1_000_000 {
            return Err(XsError::Timeout);
        }
        let _ = guest_abi::sched::yield_(&self.hc);
        Ok(())
    }
}

/// A line in a fixed buffer (no allocator here).
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn say(args: core::fmt::Arguments<'_>) {
    let mut l = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = l.write_fmt(args);
    let _ = l.write_str("\n");
    guest_abi::entry::console_write(&l.buf[..l.len]);
}

fn fail(what: &str, e: XsError) -> ! {
    say(format_args!("xs-demo: FAIL {what}: {e}"));
    guest_abi::entry::shutdown(1)
}

fn check(ok: bool, what: &str) {
    if ok {
        say(format_args!("xs-demo: PASS {what}"));
    } else {
        say(format_args!("xs-demo: FAIL {what}"));
        guest_abi::entry::shutdown(1);
    }
}

fn main(si: &'static StartInfo) -> ! {
    let Some(page) = guest_abi::entry::xenstore_ring(si) else {
        say(format_args!("xs-demo: FAIL store page not in the p2m list"));
        guest_abi::entry::shutdown(1)
    };
    let transport = Store {
        hc: guest_abi::entry::hypercalls(),
        port: si.store_evtchn,
        waits: 0,
    };
    let mut xs = XsClient::new(page, transport);
    let mut buf = [0u8; 256];

    let n = xs
        .read(0, "name", &mut buf)
        .unwrap_or_else(|e| fail("read name", e));
    check(&buf[..n] == b"xs-demo", "read own name");

    xs.write(0, "data/demo/key", b"hello xenstore")
        .unwrap_or_else(|e| fail("write", e));
    let n = xs
        .read(0, "data/demo/key", &mut buf)
        .unwrap_or_else(|e| fail("read back", e));
    check(&buf[..n] == b"hello xenstore", "write then read back");

    let mut ev = [0u8; 128];
    xs.watch("data/demo/watched", "w1")
        .unwrap_or_else(|e| fail("watch", e));
    let first = xs
        .wait_watch_event(&mut ev)
        .unwrap_or_else(|e| fail("initial watch event", e));
    check(
        first.path == b"data/demo/watched" && first.token == b"w1",
        "initial watch event",
    );
    xs.write(0, "data/demo/watched/leaf", b"1")
        .unwrap_or_else(|e| fail("write watched", e));
    let e = xs
        .wait_watch_event(&mut ev)
        .unwrap_or_else(|e| fail("watch event", e));
    check(
        e.path == b"data/demo/watched/leaf" && e.token == b"w1",
        "watch fires for a child",
    );
    xs.unwatch("data/demo/watched", "w1")
        .unwrap_or_else(|e| fail("unwatch", e));

    let t = xs
        .transaction_start()
        .unwrap_or_else(|e| fail("transaction start", e));
    xs.write(t, "data/demo/tx", b"committed")
        .unwrap_or_else(|e| fail("write in transaction", e));
    xs.transaction_end(t, true)
        .unwrap_or_else(|e| fail("commit", e));
    let n = xs
        .read(0, "data/demo/tx", &mut buf)
        .unwrap_or_else(|e| fail("read committed", e));
    check(&buf[..n] == b"committed", "transaction commit");

    let n = xs
        .directory(0, "data/demo", &mut buf)
        .unwrap_or_else(|e| fail("directory", e));
    let mut names = 0;
    for name in entries(&buf[..n]) {
        names += usize::from(matches!(name, b"key" | b"watched" | b"tx"));
    }
    check(names == 3, "directory lists key, tx, watched");

    let denied = xs.read(0, "/local/domain/0", &mut buf);
    check(
        matches!(denied, Err(ref e) if e.name() == Some("EACCES")),
        "other domain's path is EACCES",
    );

    xs.rm(0, "data/demo").unwrap_or_else(|e| fail("rm", e));
    let gone = xs.read(0, "data/demo/key", &mut buf);
    check(
        matches!(gone, Err(ref e) if e.name() == Some("ENOENT")),
        "rm removes the subtree",
    );

    say(format_args!("xs-demo: all PASS"));
    guest_abi::entry::shutdown(0)
}
