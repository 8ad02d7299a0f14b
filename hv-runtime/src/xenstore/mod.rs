//! xenstored, inside the runtime (which plays dom0).
//!
//! Three layers, each testable alone:
//!
//! * [`store`] — the tree, permissions, transactions, watches and quotas:
//!   pure data, no I/O ([`Store`]).
//! * [`wire`] — framing and decoding of `xsd_sockmsg` messages: pure
//!   functions over byte slices. [`handle`] joins the two: one request in,
//!   one reply out (watch events queue in the store).
//! * [`conn`] — one guest's ring page (XEN-PV-ABI.md §8.3), reached only by
//!   copies through [`guest_abi::ring::RingMem`] (for the runtime:
//!   [`conn::MachinePage`] over `MachineMemory`): requests in, replies and
//!   watch events out, with a bounded output queue; a guest whose indices
//!   are corrupt or who sends an oversized message is disconnected.
//!
//! [`Xenstored`] owns the store and every domain's connection; the run loop
//! calls [`Xenstored::service`] and raises the store event channels it
//! returns.

pub mod conn;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod store;
pub mod wire;

use std::collections::{BTreeMap, VecDeque};

use guest_abi::abi::errno::Errno;
use guest_abi::abi::xenstore::{XENSTORE_PAYLOAD_MAX, XsType};
use hv_cpu::mem::{MachineMemory, Mfn};

pub use conn::{Connection, MachinePage};
pub use store::{Access, Perm, Perms, Quota, Store, TxId, WatchEvent, domain_path};
pub use wire::{Header, Message, Request};

use crate::machine::{DOM0, DomId};

const OK: &[u8] = b"OK\0";

/// Handle one request from domain `dom` and return the encoded reply (the
/// request's type with its payload, or `XS_ERROR`). Never panics, whatever
/// the bytes. Requests that only dom0 may make are `EACCES` for others.
pub fn handle(store: &mut Store, dom: DomId, header: &Header, payload: &[u8]) -> Vec<u8> {
    let (req_id, tx) = (header.req_id, header.tx_id);
    match handle_inner(store, dom, header, payload) {
        // Only dom0 can make a node or permission list this large (through
        // the store API); the wire cannot carry it.
        Ok(body) if body.len() > XENSTORE_PAYLOAD_MAX => {
            wire::error_reply(req_id, tx, Errno::E2BIG)
        }
        Ok(body) => wire::serialize(header.type_, req_id, tx, &body),
        Err(e) => wire::error_reply(req_id, tx, e),
    }
}

fn nul_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

fn handle_inner(
    store: &mut Store,
    dom: DomId,
    header: &Header,
    payload: &[u8],
) -> Result<Vec<u8>, Errno> {
    let tx = header.tx_id;
    let req = wire::decode_request(header.type_, payload)?;
    let privileged = dom == DOM0;
    Ok(match req {
        Request::Read(p) => store.read(dom, tx, p)?,
        Request::Write(p, v) => {
            store.write(dom, tx, p, v)?;
            OK.to_vec()
        }
        Request::Mkdir(p) => {
            store.mkdir(dom, tx, p)?;
            OK.to_vec()
        }
        Request::Rm(p) => {
            store.rm(dom, tx, p)?;
            OK.to_vec()
        }
        Request::Directory(p) => {
            let children = store.directory(dom, tx, p)?;
            nul_list(children.iter().map(String::as_str))
        }
        Request::GetPerms(p) => store.get_perms(dom, tx, p)?.encode(),
        Request::SetPerms(p, perms) => {
            store.set_perms(dom, tx, p, perms)?;
            OK.to_vec()
        }
        Request::Watch(p, t) => {
            store.watch(dom, p, t)?;
            OK.to_vec()
        }
        Request::Unwatch(p, t) => {
            store.unwatch(dom, p, t)?;
            OK.to_vec()
        }
        Request::TransactionStart => {
            if tx != 0 {
                return Err(Errno::EBUSY);
            }
            let id = store.transaction_start(dom)?;
            nul_list([id.to_string().as_str()])
        }
        Request::TransactionEnd(commit) => {
            store.transaction_end(dom, tx, commit)?;
            OK.to_vec()
        }
        Request::GetDomainPath(d) => nul_list([domain_path(d).as_str()]),
        Request::Introduce(d, _gfn, _port) => {
            // Ring connections are made by the runtime when it builds a
            // domain; over the wire dom0 can only mark one introduced.
            if !privileged {
                return Err(Errno::EACCES);
            }
            if store.is_introduced(d) {
                return Err(Errno::EEXIST);
            }
            store.introduce(d);
            OK.to_vec()
        }
        Request::Release(d) => {
            if !privileged {
                return Err(Errno::EACCES);
            }
            if !store.release(d) {
                return Err(Errno::ENOENT);
            }
            OK.to_vec()
        }
        Request::IsDomainIntroduced(d) => {
            if !privileged {
                return Err(Errno::EACCES);
            }
            if store.is_introduced(d) {
                b"T\0".to_vec()
            } else {
                b"F\0".to_vec()
            }
        }
        Request::ResetWatches => {
            store.reset_watches(dom);
            OK.to_vec()
        }
    })
}

/// Encode a watch event message.
#[must_use]
pub fn watch_event_message(ev: &WatchEvent) -> Vec<u8> {
    let mut body = Vec::with_capacity(ev.path.len() + ev.token.len() + 2);
    body.extend_from_slice(ev.path.as_bytes());
    body.push(0);
    body.extend_from_slice(&ev.token);
    body.push(0);
    wire::serialize(XsType::WatchEvent.as_u32(), 0, 0, &body)
}

/// What the toolstack writes for a new domain.
#[derive(Clone, Debug)]
pub struct DomainInfo {
    /// Domain id.
    pub dom: DomId,
    /// Name.
    pub name: String,
    /// Console ring frame (`console/ring-ref`, the MFN for PV).
    pub console_mfn: u64,
    /// Console event channel (`console/port`).
    pub console_port: u32,
    /// xenstore ring frame (`store/ring-ref`).
    pub store_mfn: u64,
    /// xenstore event channel (`store/port`).
    pub store_port: u32,
}

/// Why a domain could not be added to xenstore.
#[derive(Debug, thiserror::Error)]
pub enum AddDomainError {
    /// The domain id is already connected.
    #[error("domain {0} already has a xenstore connection; release it first")]
    Exists(DomId),
    /// The ring frame is not in machine memory.
    #[error("xenstore ring frame {0:#x} is outside machine memory")]
    BadRing(u64),
    /// Writing the domain's nodes failed.
    #[error("writing /local/domain/{0}: {1:?}")]
    Store(DomId, Errno),
}

/// The runtime's xenstored: the store and one connection per domain.
#[derive(Debug, Default)]
pub struct Xenstored {
    /// The store.
    pub store: Store,
    conns: BTreeMap<DomId, Connection>,
    /// Ring frames of the connections on machine memory.
    rings: BTreeMap<DomId, Mfn>,
    /// Watch events for dom0 (the runtime's own watches).
    dom0_events: VecDeque<WatchEvent>,
}

/// dom0 watch events kept for [`Xenstored::take_dom0_events`]; older ones
/// are dropped first.
pub const DOM0_EVENT_QUEUE: usize = 4096;

impl Xenstored {
    /// An empty xenstored with these quotas.
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self {
            store: Store::new(quota),
            conns: BTreeMap::new(),
            rings: BTreeMap::new(),
            dom0_events: VecDeque::new(),
        }
    }

    /// Write the toolstack's nodes for a domain (as dom0) under
    /// `/local/domain/<id>`: read-only to the domain (`n0`, `r<id>`) except
    /// the directories a guest writes (`data`, `device`, `drivers`, `feature`,
    /// `attr`, `error`, `control/shutdown`), which it owns.
    ///
    /// # Errors
    /// The store refused a node (only if quotas or paths are broken).
    pub fn write_domain_nodes(&mut self, info: &DomainInfo) -> Result<(), Errno> {
        let d = info.dom;
        let base = domain_path(d);
        let ro = Perms::owned(DOM0, Access::None).with(d, Access::Read);
        let rw = Perms::owned(d, Access::None);
        let s = &mut self.store;
        s.mkdir(DOM0, 0, base.as_bytes())?;
        s.set_perms(DOM0, 0, base.as_bytes(), ro.clone())?;
        let values: [(&str, String); 8] = [
            ("domid", d.to_string()),
            ("name", info.name.clone()),
            ("console/ring-ref", info.console_mfn.to_string()),
            ("console/port", info.console_port.to_string()),
            ("console/type", "xenconsoled".to_owned()),
            ("store/ring-ref", info.store_mfn.to_string()),
            ("store/port", info.store_port.to_string()),
            ("control/shutdown", String::new()),
        ];
        for (k, v) in &values {
            s.write(DOM0, 0, format!("{base}/{k}").as_bytes(), v.as_bytes())?;
        }
        for k in [
            "data",
            "device",
            "drivers",
            "feature",
            "attr",
            "error",
            "control/shutdown",
        ] {
            let p = format!("{base}/{k}");
            s.mkdir(DOM0, 0, p.as_bytes())?;
            s.set_perms(DOM0, 0, p.as_bytes(), rw.clone())?;
        }
        Ok(())
    }

    /// Give a domain its nodes and a connection on its ring page, and fire
    /// `@introduceDomain`.
    ///
    /// # Errors
    /// See [`AddDomainError`].
    pub fn add_domain(
        &mut self,
        mem: &MachineMemory,
        info: &DomainInfo,
    ) -> Result<(), AddDomainError> {
        if self.conns.contains_key(&info.dom) {
            return Err(AddDomainError::Exists(info.dom));
        }
        let page = MachinePage::new(mem, Mfn(info.store_mfn))
            .ok_or(AddDomainError::BadRing(info.store_mfn))?;
        self.write_domain_nodes(info)
            .map_err(|e| AddDomainError::Store(info.dom, e))?;
        let conn = Connection::connect(info.dom, info.store_port, &page);
        self.conns.insert(info.dom, conn);
        self.rings.insert(info.dom, Mfn(info.store_mfn));
        self.store.introduce(info.dom);
        self.route_events();
        Ok(())
    }

    /// Drop a domain's connection, watches, transactions and nodes; fire
    /// `@releaseDomain`. Returns whether it had a connection.
    pub fn remove_domain(&mut self, dom: DomId) -> bool {
        let had = self.conns.remove(&dom).is_some();
        self.rings.remove(&dom);
        self.store.release(dom);
        self.route_events();
        had
    }

    /// Whether `dom` has a connection (broken or not).
    #[must_use]
    pub fn has_domain(&self, dom: DomId) -> bool {
        self.conns.contains_key(&dom)
    }

    /// `dom`'s connection.
    #[must_use]
    pub fn connection(&self, dom: DomId) -> Option<&Connection> {
        self.conns.get(&dom)
    }

    /// Queue the store's watch events on their domains' connections.
    fn route_events(&mut self) {
        for ev in self.store.take_events() {
            if ev.dom == DOM0 {
                if self.dom0_events.len() >= DOM0_EVENT_QUEUE {
                    self.dom0_events.pop_front();
                }
                self.dom0_events.push_back(ev);
            } else if let Some(c) = self.conns.get_mut(&ev.dom) {
                c.queue_event(&ev);
            }
        }
    }

    /// Take the watch events fired for dom0's watches (registered with
    /// `store.watch(0, …)`).
    pub fn take_dom0_events(&mut self) -> Vec<WatchEvent> {
        self.route_events();
        self.dom0_events.drain(..).collect()
    }

    /// Serve every domain's ring in `mem` once: read and answer requests
    /// (a bounded number per domain), deliver watch events. Returns the
    /// `(domain, store port)` pairs to notify.
    pub fn service(&mut self, mem: &MachineMemory) -> Vec<(DomId, u32)> {
        let ids: Vec<DomId> = self.conns.keys().copied().collect();
        let mut notify = Vec::new();
        // Two passes: the second delivers events queued by later domains.
        for _ in 0..2 {
            for &id in &ids {
                self.service_one(mem, id);
            }
        }
        for (&id, c) in &mut self.conns {
            if c.take_notify() {
                notify.push((id, c.port()));
            }
        }
        notify
    }

    fn service_one(&mut self, mem: &MachineMemory, id: DomId) {
        let Some(&mfn) = self.rings.get(&id) else {
            return;
        };
        let Some(page) = MachinePage::new(mem, mfn) else {
            return;
        };
        self.service_page(&page, id);
    }

    /// Serve connection `id` on `page` (any [`guest_abi::ring::RingMem`]:
    /// tests use owned memory as a fake shared page).
    pub fn service_page<M: guest_abi::ring::RingMem>(&mut self, page: &M, id: DomId) {
        for _ in 0..conn::MAX_REQUESTS_PER_SERVICE {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let progressed = c.step(page, &mut self.store);
            self.route_events();
            if !progressed {
                break;
            }
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.flush(page);
        }
    }

    /// Attach a connection for `dom` on any ring memory (tests, fuzzing):
    /// no nodes are written.
    pub fn connect_page<M: guest_abi::ring::RingMem>(&mut self, dom: DomId, port: u32, page: &M) {
        self.conns.insert(dom, Connection::connect(dom, port, page));
        self.store.introduce(dom);
        self.route_events();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(type_: u32, len: usize) -> Header {
        Header {
            type_,
            req_id: 5,
            tx_id: 0,
            len: u32::try_from(len).unwrap_or(0),
        }
    }

    #[test]
    fn replies_too_large_for_the_wire_are_e2big() {
        let mut s = Store::default();
        s.write(DOM0, 0, b"/big", &vec![b'x'; 5000])
            .unwrap_or_default();
        for i in 0..700 {
            s.write(DOM0, 0, format!("/dir/child-{i:04}").as_bytes(), b"")
                .unwrap_or_default();
        }
        let read = handle(
            &mut s,
            DomId(0),
            &header(XsType::Read.as_u32(), 5),
            b"/big\0",
        );
        assert_eq!(&read[16..], b"E2BIG\0");
        let dir = handle(
            &mut s,
            DomId(0),
            &header(XsType::Directory.as_u32(), 5),
            b"/dir\0",
        );
        assert_eq!(&dir[16..], b"E2BIG\0");
        let ok = handle(
            &mut s,
            DomId(0),
            &header(XsType::Read.as_u32(), 18),
            b"/dir/child-0001\0",
        );
        assert_eq!(
            wire::Header::parse(ok.first_chunk().unwrap_or(&[0; 16])).type_,
            2
        );
    }
}
