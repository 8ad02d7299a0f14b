//! Helpers shared by the xenstore integration tests: a fake shared page in
//! machine memory, a transport that runs the server when the client waits,
//! and a raw (possibly hostile) guest that writes bytes to its ring.
#![allow(dead_code, clippy::unwrap_used)] // shared by test binaries that each use a subset

use hv_runtime::machine::DomId;
use std::cell::RefCell;

use guest_abi::ring::RingMem;
use guest_abi::xenstore::{XsError, XsTransport};
use hv_runtime::cpu::mem::{MachineMemory, Mfn};
use hv_runtime::xenstore::conn::{off, ring_read, ring_write};
use hv_runtime::xenstore::wire::{self, Message};
use hv_runtime::xenstore::{MachinePage, Xenstored};

/// Machine memory with `frames` frames (each a possible ring page).
pub fn memory(frames: u64) -> MachineMemory {
    MachineMemory::new(frames).unwrap()
}

/// Frame `n` as a ring page.
pub fn page(mem: &MachineMemory, n: u64) -> MachinePage<'_> {
    MachinePage::new(mem, Mfn(n)).unwrap()
}

/// Runs the server for domain `dom` whenever the client waits.
pub struct Pump<'a> {
    pub xs: &'a RefCell<Xenstored>,
    pub page: MachinePage<'a>,
    pub dom: u16,
    pub waits: u32,
    pub notifies: u32,
}

impl<'a> Pump<'a> {
    pub fn new(xs: &'a RefCell<Xenstored>, page: MachinePage<'a>, dom: u16) -> Self {
        Self {
            xs,
            page,
            dom,
            waits: 0,
            notifies: 0,
        }
    }
}

impl XsTransport for Pump<'_> {
    fn notify(&mut self) {
        self.notifies += 1;
    }

    fn wait(&mut self) -> Result<(), XsError> {
        self.waits += 1;
        if self.waits > 100_000 {
            return Err(XsError::Timeout);
        }
        self.xs
            .borrow_mut()
            .service_page(&self.page, DomId(self.dom));
        Ok(())
    }
}

/// Write `bytes` at the guest's request producer index; false if they do
/// not fit.
pub fn send_raw<M: RingMem>(page: &M, bytes: &[u8]) -> bool {
    let prod = page.load_u32_relaxed(off::REQ_PROD);
    let cons = page.load_u32_acquire(off::REQ_CONS);
    let used = prod.wrapping_sub(cons) as usize;
    if used > 1024 || bytes.len() > 1024 - used {
        return false;
    }
    ring_write(page, off::REQ, prod, bytes);
    page.store_u32_release(
        off::REQ_PROD,
        prod.wrapping_add(u32::try_from(bytes.len()).unwrap()),
    );
    true
}

/// Take every response byte the server has written.
pub fn recv_raw<M: RingMem>(page: &M) -> Vec<u8> {
    let prod = page.load_u32_acquire(off::RSP_PROD);
    let cons = page.load_u32_relaxed(off::RSP_CONS);
    let n = prod.wrapping_sub(cons) as usize;
    assert!(n <= 1024, "server produced more than a ring");
    let mut buf = vec![0u8; n];
    ring_read(page, off::RSP, cons, &mut buf);
    page.store_u32_release(off::RSP_CONS, prod);
    buf
}

/// Split a response stream into messages (all must be whole).
pub fn split(mut bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (m, used) = wire::parse_message(bytes).unwrap().expect("whole message");
        out.push(m);
        bytes = &bytes[used..];
    }
    out
}

/// A request message.
pub fn req(type_: u32, req_id: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    wire::serialize(type_, req_id, tx, payload)
}

/// Send one request on `page` for `dom`, run the server, return what came
/// back (replies and events).
pub fn roundtrip<M: RingMem>(xs: &mut Xenstored, page: &M, dom: u16, msg: &[u8]) -> Vec<Message> {
    let mut got = Vec::new();
    let mut rest = msg;
    // Bounded: each round sends at least one byte or the server is stuck
    // (then the request is simply not delivered further).
    for _ in 0..64 {
        if rest.is_empty() {
            break;
        }
        let prod = page.load_u32_relaxed(off::REQ_PROD);
        let used = prod.wrapping_sub(page.load_u32_acquire(off::REQ_CONS)) as usize;
        let n = rest.len().min(1024usize.saturating_sub(used));
        assert!(send_raw(page, &rest[..n]));
        rest = &rest[n..];
        xs.service_page(page, DomId(dom));
        got.extend(recv_raw(page));
    }
    for _ in 0..16 {
        xs.service_page(page, DomId(dom));
        got.extend(recv_raw(page));
    }
    split(&got)
}

/// The payload of an `XS_ERROR`, or `None` for another type.
pub fn error_name(m: &Message) -> Option<&str> {
    (m.header.type_ == guest_abi::abi::xenstore::XS_ERROR)
        .then(|| std::str::from_utf8(m.payload.strip_suffix(&[0]).unwrap()).unwrap())
}
