//! The store itself: a tree of nodes with per-node permissions, watches,
//! transactions and per-domain quotas. Pure data: no rings, no memory, no
//! clock, so it is driven directly by property tests and fuzzers.
//!
//! Semantics (following xenstored; XEN-PV-ABI.md §8.3 for names and limits):
//!
//! * Paths: absolute (`/a/b`) or relative to `/local/domain/<caller>`.
//!   Characters `A-Z a-z 0-9 - / _ @` only (so `.`/`..` never resolve), no
//!   empty components, no trailing `/` (except the root), at most 3072 bytes
//!   absolute / 2048 relative. Anything else is `EINVAL`.
//! * Permissions: a non-empty list; entry 0 names the owner and the access
//!   every domain not listed gets; later entries grant a listed domain its
//!   own access (`n` none, `r` read, `w` write, `b` both). The owner and
//!   dom0 (the runtime) have full access. A new node inherits its parent's
//!   list, with the creating domain (unless dom0) as owner.
//! * A missing node reads as `ENOENT` when its nearest existing ancestor is
//!   readable, `EACCES` otherwise (existence does not leak).
//! * Writes create missing ancestors (write access needed on the nearest
//!   existing one); `XS_RM` of a missing node whose parent exists succeeds.
//! * Watches fire for the node written or removed and every watch above it;
//!   removing a subtree also fires watches registered on nodes inside it.
//!   A watch fires only if its domain may read the node.
//! * Transactions snapshot the tree. Every node a transaction looks at is
//!   remembered with its generation; the commit fails with `EAGAIN` if any of
//!   them changed (or appeared, or vanished) in the meantime.
//! * Quotas (per unprivileged domain): nodes owned, bytes per node, watches,
//!   open transactions, entries per permission list. Over quota is `ENOSPC`
//!   (`E2BIG` for watches), as xenstored answers; `EQUOTA` is not a name of
//!   the Xen error table (`xs_wire.h`), so it is never sent.
//! * `@introduceDomain` / `@releaseDomain` fire for every domain watching
//!   them (no per-domain filtering).
//! * Memory: a transaction snapshot shares node values with the store
//!   (`Arc`), so its cost is the tree's shape, not its data.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use guest_abi::abi::errno::Errno;
use guest_abi::abi::xenstore::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};

use crate::machine::{DOM0, DomId};

/// Transaction id (0 = no transaction).
pub type TxId = u32;

/// The special watch fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// The special watch fired when a domain is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// Watch events queued and not yet taken by [`Store::take_events`] beyond
/// which new events are dropped (and counted).
pub const MAX_QUEUED_EVENTS: usize = 65_536;

/// What a domain may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`.
    None,
    /// `r`.
    Read,
    /// `w`.
    Write,
    /// `b`.
    Both,
}

impl Access {
    /// Reading allowed.
    #[must_use]
    pub fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::Both)
    }

    /// Writing allowed.
    #[must_use]
    pub fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::Both)
    }

    fn letter(self) -> u8 {
        match self {
            Self::None => b'n',
            Self::Read => b'r',
            Self::Write => b'w',
            Self::Both => b'b',
        }
    }
}

/// One permission entry: a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub dom: DomId,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// Parse Xen's form: a letter `n`/`r`/`w`/`b` then a decimal domain id
    /// below `DOMID_FIRST_RESERVED`.
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<Self> {
        let (&letter, num) = s.split_first()?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return None,
        };
        let dom = super::wire::decimal(num)
            .and_then(|v| u16::try_from(v).ok().map(DomId))
            .filter(|&d| d.0 < guest_abi::abi::DOMID_FIRST_RESERVED)?;
        Some(Self { dom, access })
    }

    /// Xen's form (`r1`).
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}{}", char::from(self.access.letter()), self.dom)
    }
}

/// A node's permission list (never empty; entry 0 is the owner).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Perms {
    list: Vec<Perm>,
}

impl Perms {
    /// Owned by `owner`, with `others` for every other domain.
    #[must_use]
    pub fn owned(owner: DomId, others: Access) -> Self {
        Self {
            list: vec![Perm {
                dom: owner,
                access: others,
            }],
        }
    }

    /// From a list; `None` if it is empty.
    #[must_use]
    pub fn from_list(list: &[Perm]) -> Option<Self> {
        (!list.is_empty()).then(|| Self {
            list: list.to_vec(),
        })
    }

    /// Add an entry for `dom` (builder style).
    #[must_use]
    pub fn with(mut self, dom: DomId, access: Access) -> Self {
        self.list.push(Perm { dom, access });
        self
    }

    /// The owner.
    #[must_use]
    pub fn owner(&self) -> DomId {
        self.list.first().map_or(DOM0, |p| p.dom)
    }

    /// The entries, owner first.
    #[must_use]
    pub fn entries(&self) -> &[Perm] {
        &self.list
    }

    /// What `dom` may do.
    #[must_use]
    pub fn access(&self, dom: DomId) -> Access {
        let Some((first, rest)) = self.list.split_first() else {
            return if dom == DOM0 {
                Access::Both
            } else {
                Access::None
            };
        };
        if dom == DOM0 || dom == first.dom {
            return Access::Both;
        }
        rest.iter()
            .find(|p| p.dom == dom)
            .map_or(first.access, |p| p.access)
    }

    /// The `XS_GET_PERMS` payload: each entry NUL-terminated.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.list {
            out.extend_from_slice(p.encode().as_bytes());
            out.push(0);
        }
        out
    }
}

/// Per-domain limits (dom0 is exempt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own.
    pub nodes: u32,
    /// Bytes in one node's value.
    pub node_size: usize,
    /// Watches a domain may hold.
    pub watches: usize,
    /// Transactions a domain may have open.
    pub transactions: usize,
    /// Entries in one permission list.
    pub perms: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            nodes: 1000,
            node_size: 4096,
            watches: 128,
            transactions: 10,
            perms: 5,
        }
    }
}

/// A watch event to deliver: `path\0token\0` to domain `dom`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// Receiving domain.
    pub dom: DomId,
    /// Path as the watcher sees it (relative if it watched a relative path).
    pub path: String,
    /// The watcher's token.
    pub token: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Node {
    /// Shared between the store and transaction snapshots.
    value: Arc<[u8]>,
    perms: Perms,
    children: BTreeSet<String>,
    /// Unique across the store's life: bumped on every change of the node
    /// (its value, permissions or set of children).
    generation: u64,
}

/// Nodes by absolute path, with a count of nodes per owner.
#[derive(Clone, Debug, Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    owned: BTreeMap<DomId, u32>,
}

impl Tree {
    fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn count(&mut self, owner: DomId, up: bool) {
        let c = self.owned.entry(owner).or_insert(0);
        *c = if up {
            c.saturating_add(1)
        } else {
            c.saturating_sub(1)
        };
    }

    fn insert(&mut self, path: String, node: Node) {
        let owner = node.perms.owner();
        if let Some(old) = self.nodes.insert(path, node) {
            self.count(old.perms.owner(), false);
        }
        self.count(owner, true);
    }

    fn remove(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        self.count(old.perms.owner(), false);
        Some(old)
    }

    fn owned(&self, dom: DomId) -> u32 {
        self.owned.get(&dom).copied().unwrap_or(0)
    }
}

/// The parent of an absolute path (`None` for the root).
fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

/// The last component of an absolute, non-root path.
fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

fn child_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `node` is `watch` or below it.
fn is_under(node: &str, watch: &str) -> bool {
    watch == "/"
        || node == watch
        || (node.len() > watch.len()
            && node.starts_with(watch)
            && node.as_bytes().get(watch.len()) == Some(&b'/'))
}

/// `/local/domain/<dom>`.
#[must_use]
pub fn domain_path(dom: DomId) -> String {
    format!("/local/domain/{dom}")
}

/// Resolve and validate a path from domain `dom` (see the module docs).
///
/// # Errors
/// `EINVAL` for an invalid path.
pub fn canonical_path(dom: DomId, raw: &[u8]) -> Result<String, Errno> {
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@');
    if raw.is_empty() || !raw.iter().all(valid) {
        return Err(Errno::EINVAL);
    }
    // All bytes are ASCII: the conversion cannot fail.
    let s = std::str::from_utf8(raw).map_err(|_| Errno::EINVAL)?;
    let abs = if s.starts_with('/') {
        s.to_owned()
    } else {
        if s.len() > XENSTORE_REL_PATH_MAX {
            return Err(Errno::EINVAL);
        }
        format!("{}/{s}", domain_path(dom))
    };
    if abs.len() > XENSTORE_ABS_PATH_MAX || (abs != "/" && abs.ends_with('/')) || abs.contains("//")
    {
        return Err(Errno::EINVAL);
    }
    Ok(abs)
}

#[derive(Clone, Debug)]
struct Watch {
    dom: DomId,
    /// Absolute path or a special (`@…`) name.
    path: String,
    /// The path as registered (echoed in events for relative watches).
    relative: bool,
    token: Vec<u8>,
}

/// What a transaction saw and changed.
#[derive(Clone, Debug, Default)]
struct TxLog {
    /// First-seen generation of every node looked at (`None` = absent).
    seen: BTreeMap<String, Option<u64>>,
    /// Nodes changed (created, modified or removed).
    written: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct Transaction {
    dom: DomId,
    tree: Tree,
    log: TxLog,
}

/// A change to fire watches for.
enum Change {
    /// Node written, created, or its permissions set.
    Node(String, Perms),
    /// Subtree removed: its root and every removed node with its perms.
    Removed(String, Vec<(String, Perms)>),
}

/// The tree an operation works on, with the bookkeeping it needs.
struct View<'a> {
    tree: &'a mut Tree,
    generation: &'a mut u64,
    quota: Quota,
    log: Option<&'a mut TxLog>,
    changes: Vec<Change>,
}

impl View<'_> {
    fn bump(&mut self) -> u64 {
        *self.generation += 1;
        *self.generation
    }

    fn touch(&mut self, path: &str) {
        if let Some(log) = self.log.as_deref_mut()
            && !log.seen.contains_key(path)
        {
            let g = self.tree.get(path).map(|n| n.generation);
            log.seen.insert(path.to_owned(), g);
        }
    }

    fn written(&mut self, path: &str) {
        if let Some(log) = self.log.as_deref_mut() {
            log.written.insert(path.to_owned());
        }
    }

    /// The error for a missing `path`: `EACCES` unless the nearest existing
    /// ancestor is readable.
    fn missing(&mut self, dom: DomId, path: &str) -> Errno {
        let mut p = parent(path);
        while let Some(a) = p {
            self.touch(a);
            if let Some(n) = self.tree.get(a) {
                return if n.perms.access(dom).can_read() {
                    Errno::ENOENT
                } else {
                    Errno::EACCES
                };
            }
            p = parent(a);
        }
        Errno::ENOENT
    }

    fn readable(&mut self, dom: DomId, path: &str) -> Result<&Node, Errno> {
        self.touch(path);
        let Some(n) = self.tree.get(path) else {
            return Err(self.missing(dom, path));
        };
        if !n.perms.access(dom).can_read() {
            return Err(Errno::EACCES);
        }
        // Reborrow to satisfy the checker (the lookup above ended).
        self.tree.get(path).ok_or(Errno::ENOENT)
    }

    fn read(&mut self, dom: DomId, path: &str) -> Result<Vec<u8>, Errno> {
        Ok(self.readable(dom, path)?.value.to_vec())
    }

    fn directory(&mut self, dom: DomId, path: &str) -> Result<Vec<String>, Errno> {
        Ok(self.readable(dom, path)?.children.iter().cloned().collect())
    }

    fn get_perms(&mut self, dom: DomId, path: &str) -> Result<Perms, Errno> {
        Ok(self.readable(dom, path)?.perms.clone())
    }

    /// Replace an existing node's value or perms, recording the change.
    fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) {
        self.touch(path);
        let generation = self.bump();
        if let Some(mut n) = self.tree.remove(path) {
            f(&mut n);
            n.generation = generation;
            let perms = n.perms.clone();
            self.tree.insert(path.to_owned(), n);
            self.written(path);
            self.changes.push(Change::Node(path.to_owned(), perms));
        }
    }

    fn write(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), Errno> {
        if dom != DOM0 && value.len() > self.quota.node_size {
            return Err(Errno::ENOSPC);
        }
        self.touch(path);
        match self.tree.get(path) {
            Some(n) if !n.perms.access(dom).can_write() => Err(Errno::EACCES),
            Some(_) => {
                self.modify(path, |n| n.value = value.into());
                Ok(())
            }
            None => self.create(dom, path, value),
        }
    }

    fn mkdir(&mut self, dom: DomId, path: &str) -> Result<(), Errno> {
        self.touch(path);
        match self.tree.get(path) {
            Some(n) if n.perms.access(dom).can_write() => Ok(()),
            Some(_) => Err(Errno::EACCES),
            None => self.create(dom, path, b""),
        }
    }

    /// Create `path` (absent) and any missing ancestors.
    fn create(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), Errno> {
        // Missing nodes, deepest first; bounded by the path's length.
        let mut missing = vec![path.to_owned()];
        let mut anchor = parent(path);
        while let Some(a) = anchor {
            self.touch(a);
            if self.tree.get(a).is_some() {
                break;
            }
            missing.push(a.to_owned());
            anchor = parent(a);
        }
        let Some(anchor) = anchor else {
            // Only the root has no parent, and the root always exists.
            return Err(Errno::EINVAL);
        };
        let Some(a) = self.tree.get(anchor) else {
            return Err(Errno::ENOENT);
        };
        if !a.perms.access(dom).can_write() {
            return Err(Errno::EACCES);
        }
        if dom != DOM0 {
            let want = u32::try_from(missing.len()).unwrap_or(u32::MAX);
            if self.tree.owned(dom).saturating_add(want) > self.quota.nodes {
                return Err(Errno::ENOSPC);
            }
        }
        let mut perms = a.perms.clone();
        if dom != DOM0
            && let Some(first) = perms.list.first_mut()
        {
            first.dom = dom;
        }
        let anchor = anchor.to_owned();
        let mut dir = anchor.clone();
        for p in missing.into_iter().rev() {
            let name = basename(&p).to_owned();
            self.modify(&dir, |n| {
                n.children.insert(name);
            });
            // The parent's change is not a watch event of its own.
            self.changes.pop();
            let generation = self.bump();
            let leaf = p == path;
            self.tree.insert(
                p.clone(),
                Node {
                    value: if leaf {
                        value.into()
                    } else {
                        Arc::from(&[][..])
                    },
                    perms: perms.clone(),
                    children: BTreeSet::new(),
                    generation,
                },
            );
            self.written(&p);
            dir = p;
        }
        self.changes.push(Change::Node(path.to_owned(), perms));
        Ok(())
    }

    fn rm(&mut self, dom: DomId, path: &str) -> Result<(), Errno> {
        let Some(dir) = parent(path) else {
            return Err(Errno::EINVAL);
        };
        self.touch(path);
        let Some(n) = self.tree.get(path) else {
            self.touch(dir);
            return match self.tree.get(dir) {
                Some(p) if p.perms.access(dom).can_read() => Ok(()),
                Some(_) => Err(Errno::EACCES),
                None => Err(self.missing(dom, dir)),
            };
        };
        if !n.perms.access(dom).can_write() {
            return Err(Errno::EACCES);
        }
        // Collect the subtree (bounded by the tree's size).
        let mut stack = vec![path.to_owned()];
        let mut removed = Vec::new();
        while let Some(p) = stack.pop() {
            self.touch(&p);
            if let Some(node) = self.tree.remove(&p) {
                stack.extend(node.children.iter().map(|c| child_path(&p, c)));
                self.written(&p);
                removed.push((p, node.perms));
            }
        }
        let name = basename(path).to_owned();
        self.modify(dir, |n| {
            n.children.remove(&name);
        });
        self.changes.pop();
        self.changes.push(Change::Removed(path.to_owned(), removed));
        Ok(())
    }

    fn set_perms(&mut self, dom: DomId, path: &str, perms: Perms) -> Result<(), Errno> {
        self.touch(path);
        let Some(n) = self.tree.get(path) else {
            return Err(self.missing(dom, path));
        };
        if dom != DOM0 {
            if n.perms.owner() != dom {
                return Err(Errno::EACCES);
            }
            if perms.owner() != dom {
                return Err(Errno::EPERM);
            }
            if perms.list.len() > self.quota.perms {
                return Err(Errno::ENOSPC);
            }
        }
        self.modify(path, |n| n.perms = perms);
        Ok(())
    }
}

/// The store. See the module docs.
#[derive(Debug)]
pub struct Store {
    tree: Tree,
    generation: u64,
    txs: BTreeMap<TxId, Transaction>,
    next_tx: TxId,
    watches: Vec<Watch>,
    introduced: BTreeSet<DomId>,
    quota: Quota,
    events: VecDeque<WatchEvent>,
    dropped_events: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Quota::default())
    }
}

/// One node as listed by [`Store::dump`].
pub type DumpEntry = (String, Vec<u8>, Perms);

impl Store {
    /// A store holding `/`, `/local` and `/local/domain` (owned by dom0, no
    /// access for others).
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        let mut s = Self {
            tree: Tree::default(),
            generation: 0,
            txs: BTreeMap::new(),
            next_tx: 1,
            watches: Vec::new(),
            introduced: BTreeSet::new(),
            quota,
            events: VecDeque::new(),
            dropped_events: 0,
        };
        s.tree.insert(
            "/".to_owned(),
            Node {
                value: Arc::from(&[][..]),
                perms: Perms::owned(DOM0, Access::None),
                children: BTreeSet::new(),
                generation: 0,
            },
        );
        let _ = s.mkdir(DOM0, 0, b"/local/domain");
        s.events.clear();
        s
    }

    /// The quotas in force.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Run `f` on the tree of transaction `tx` (0 = the store itself) and
    /// fire the watches for what it changed outside transactions.
    fn with_view<R>(
        &mut self,
        dom: DomId,
        tx: TxId,
        f: impl FnOnce(&mut View<'_>) -> Result<R, Errno>,
    ) -> Result<R, Errno> {
        if tx != 0 {
            let t = self
                .txs
                .get_mut(&tx)
                .filter(|t| t.dom == dom)
                .ok_or(Errno::ENOENT)?;
            let mut view = View {
                tree: &mut t.tree,
                generation: &mut self.generation,
                quota: self.quota,
                log: Some(&mut t.log),
                changes: Vec::new(),
            };
            return f(&mut view);
        }
        let mut view = View {
            tree: &mut self.tree,
            generation: &mut self.generation,
            quota: self.quota,
            log: None,
            changes: Vec::new(),
        };
        let r = f(&mut view);
        let changes = view.changes;
        for c in changes {
            self.fire(&c);
        }
        r
    }

    /// `XS_READ`.
    ///
    /// # Errors
    /// `EINVAL`, `ENOENT`, `EACCES`.
    pub fn read(&mut self, dom: DomId, tx: TxId, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.read(dom, &p))
    }

    /// `XS_WRITE` (creates missing ancestors).
    ///
    /// # Errors
    /// `EINVAL`, `EACCES`, `ENOSPC`, `ENOENT` (unknown transaction).
    pub fn write(&mut self, dom: DomId, tx: TxId, path: &[u8], value: &[u8]) -> Result<(), Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.write(dom, &p, value))
    }

    /// `XS_MKDIR` (succeeds on an existing, writable node).
    ///
    /// # Errors
    /// As [`Self::write`].
    pub fn mkdir(&mut self, dom: DomId, tx: TxId, path: &[u8]) -> Result<(), Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.mkdir(dom, &p))
    }

    /// `XS_RM` (a subtree).
    ///
    /// # Errors
    /// `EINVAL` (the root), `EACCES`, `ENOENT`.
    pub fn rm(&mut self, dom: DomId, tx: TxId, path: &[u8]) -> Result<(), Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.rm(dom, &p))
    }

    /// `XS_DIRECTORY`: child names in order.
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn directory(&mut self, dom: DomId, tx: TxId, path: &[u8]) -> Result<Vec<String>, Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.directory(dom, &p))
    }

    /// `XS_GET_PERMS`.
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn get_perms(&mut self, dom: DomId, tx: TxId, path: &[u8]) -> Result<Perms, Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.get_perms(dom, &p))
    }

    /// `XS_SET_PERMS`: only the owner (or dom0) may, and only dom0 may give
    /// a node away.
    ///
    /// # Errors
    /// `EINVAL`, `ENOENT`, `EACCES`, `EPERM`, `ENOSPC`.
    pub fn set_perms(
        &mut self,
        dom: DomId,
        tx: TxId,
        path: &[u8],
        perms: Perms,
    ) -> Result<(), Errno> {
        let p = canonical_path(dom, path)?;
        self.with_view(dom, tx, |v| v.set_perms(dom, &p, perms))
    }

    fn push_event(&mut self, ev: WatchEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.dropped_events += 1;
        } else {
            self.events.push_back(ev);
        }
    }

    fn event_for(w: &Watch, path: &str) -> WatchEvent {
        let prefix = format!("{}/", domain_path(w.dom));
        let shown = match path.strip_prefix(&prefix) {
            Some(rel) if w.relative => rel.to_owned(),
            _ => path.to_owned(),
        };
        WatchEvent {
            dom: w.dom,
            path: shown,
            token: w.token.clone(),
        }
    }

    fn fire(&mut self, change: &Change) {
        let mut out = Vec::new();
        for w in self.watches.iter().filter(|w| w.path.starts_with('/')) {
            match change {
                Change::Node(path, perms) => {
                    if is_under(path, &w.path) && perms.access(w.dom).can_read() {
                        out.push(Self::event_for(w, path));
                    }
                }
                Change::Removed(path, removed) => {
                    let root_perms = removed.first().map(|r| &r.1);
                    if is_under(path, &w.path) {
                        if root_perms.is_some_and(|p| p.access(w.dom).can_read()) {
                            out.push(Self::event_for(w, path));
                        }
                    } else if is_under(&w.path, path)
                        && let Some((p, perms)) = removed.iter().find(|r| r.0 == w.path)
                        && perms.access(w.dom).can_read()
                    {
                        out.push(Self::event_for(w, p));
                    }
                }
            }
        }
        for ev in out {
            self.push_event(ev);
        }
    }

    fn fire_special(&mut self, name: &str) {
        let out: Vec<WatchEvent> = self
            .watches
            .iter()
            .filter(|w| w.path == name)
            .map(|w| Self::event_for(w, name))
            .collect();
        for ev in out {
            self.push_event(ev);
        }
    }

    /// `XS_WATCH`: register and queue the initial event.
    ///
    /// # Errors
    /// `EINVAL` (bad path or unknown special), `EEXIST` (same path and
    /// token), `E2BIG` (over the watch quota).
    pub fn watch(&mut self, dom: DomId, path: &[u8], token: &[u8]) -> Result<(), Errno> {
        let (abs, relative) = if path.first() == Some(&b'@') {
            let s = [INTRODUCE_DOMAIN, RELEASE_DOMAIN]
                .into_iter()
                .find(|s| s.as_bytes() == path)
                .ok_or(Errno::EINVAL)?;
            (s.to_owned(), false)
        } else {
            (canonical_path(dom, path)?, path.first() != Some(&b'/'))
        };
        if self
            .watches
            .iter()
            .any(|w| w.dom == dom && w.path == abs && w.token == token)
        {
            return Err(Errno::EEXIST);
        }
        if dom != DOM0 && self.watches.iter().filter(|w| w.dom == dom).count() >= self.quota.watches
        {
            return Err(Errno::E2BIG);
        }
        self.watches.push(Watch {
            dom,
            path: abs,
            relative,
            token: token.to_vec(),
        });
        self.push_event(WatchEvent {
            dom,
            path: String::from_utf8_lossy(path).into_owned(),
            token: token.to_vec(),
        });
        Ok(())
    }

    /// `XS_UNWATCH`.
    ///
    /// # Errors
    /// `EINVAL` (bad path), `ENOENT` (no such watch).
    pub fn unwatch(&mut self, dom: DomId, path: &[u8], token: &[u8]) -> Result<(), Errno> {
        let abs = if path.first() == Some(&b'@') {
            String::from_utf8_lossy(path).into_owned()
        } else {
            canonical_path(dom, path)?
        };
        let before = self.watches.len();
        self.watches
            .retain(|w| !(w.dom == dom && w.path == abs && w.token == token));
        if self.watches.len() == before {
            return Err(Errno::ENOENT);
        }
        self.events
            .retain(|e| !(e.dom == dom && e.token == token && e.path.as_bytes() == path));
        Ok(())
    }

    /// `XS_RESET_WATCHES`: drop all of `dom`'s watches (and its open
    /// transactions, as xenstored does).
    pub fn reset_watches(&mut self, dom: DomId) {
        self.watches.retain(|w| w.dom != dom);
        self.txs.retain(|_, t| t.dom != dom);
        self.events.retain(|e| e.dom != dom);
    }

    /// Number of watches `dom` holds.
    #[must_use]
    pub fn watch_count(&self, dom: DomId) -> usize {
        self.watches.iter().filter(|w| w.dom == dom).count()
    }

    /// `XS_TRANSACTION_START`.
    ///
    /// # Errors
    /// `ENOSPC` over the transaction quota.
    pub fn transaction_start(&mut self, dom: DomId) -> Result<TxId, Errno> {
        if dom != DOM0
            && self.txs.values().filter(|t| t.dom == dom).count() >= self.quota.transactions
        {
            return Err(Errno::ENOSPC);
        }
        // Bounded: at most `txs.len() + 1` candidates are in use or zero.
        let mut id = self.next_tx;
        for _ in 0..=self.txs.len() + 1 {
            if id != 0 && !self.txs.contains_key(&id) {
                break;
            }
            id = id.wrapping_add(1);
        }
        self.next_tx = id.wrapping_add(1);
        self.txs.insert(
            id,
            Transaction {
                dom,
                tree: self.tree.clone(),
                log: TxLog::default(),
            },
        );
        Ok(id)
    }

    /// `XS_TRANSACTION_END`: commit (`true`) or abort. The transaction is
    /// gone afterwards either way.
    ///
    /// # Errors
    /// `ENOENT` (not `dom`'s transaction), `EAGAIN` (conflict), `ENOSPC`
    /// (the commit would take `dom` over its node quota).
    pub fn transaction_end(&mut self, dom: DomId, tx: TxId, commit: bool) -> Result<(), Errno> {
        if self.txs.get(&tx).is_none_or(|t| t.dom != dom) {
            return Err(Errno::ENOENT);
        }
        let Some(t) = self.txs.remove(&tx) else {
            return Err(Errno::ENOENT);
        };
        if !commit {
            return Ok(());
        }
        let conflict = t
            .log
            .seen
            .iter()
            .any(|(p, g)| self.tree.get(p).map(|n| n.generation) != *g);
        if conflict {
            return Err(Errno::EAGAIN);
        }
        let mut new = self.tree.clone();
        let mut changes = Vec::new();
        for p in &t.log.written {
            match t.tree.get(p) {
                Some(n) => {
                    self.generation += 1;
                    let mut n = n.clone();
                    n.generation = self.generation;
                    changes.push(Change::Node(p.clone(), n.perms.clone()));
                    new.insert(p.clone(), n);
                }
                None => {
                    if let Some(old) = new.remove(p) {
                        changes.push(Change::Removed(p.clone(), vec![(p.clone(), old.perms)]));
                    }
                }
            }
        }
        if dom != DOM0 && new.owned(dom) > self.quota.nodes && new.owned(dom) > self.tree.owned(dom)
        {
            return Err(Errno::ENOSPC);
        }
        self.tree = new;
        for c in &changes {
            self.fire(c);
        }
        Ok(())
    }

    /// Open transactions of `dom`.
    #[must_use]
    pub fn transaction_count(&self, dom: DomId) -> usize {
        self.txs.values().filter(|t| t.dom == dom).count()
    }

    /// Mark `dom` introduced and fire `@introduceDomain`.
    pub fn introduce(&mut self, dom: DomId) {
        self.introduced.insert(dom);
        self.fire_special(INTRODUCE_DOMAIN);
    }

    /// `XS_IS_DOMAIN_INTRODUCED`.
    #[must_use]
    pub fn is_introduced(&self, dom: DomId) -> bool {
        self.introduced.contains(&dom)
    }

    /// Forget `dom`: its watches, transactions, queued events and
    /// `/local/domain/<dom>`; fire `@releaseDomain`. Returns whether it was
    /// introduced.
    pub fn release(&mut self, dom: DomId) -> bool {
        let was = self.introduced.remove(&dom);
        self.reset_watches(dom);
        let _ = self.rm(DOM0, 0, domain_path(dom).as_bytes());
        if was {
            self.fire_special(RELEASE_DOMAIN);
        }
        was
    }

    /// Take the queued watch events.
    pub fn take_events(&mut self) -> VecDeque<WatchEvent> {
        std::mem::take(&mut self.events)
    }

    /// Watch events dropped because the queue was full.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Nodes owned by `dom`.
    #[must_use]
    pub fn nodes_owned(&self, dom: DomId) -> u32 {
        self.tree.owned(dom)
    }

    /// Every node in path order (for tests and debugging).
    #[must_use]
    pub fn dump(&self) -> Vec<DumpEntry> {
        self.tree
            .nodes
            .iter()
            .map(|(p, n)| (p.clone(), n.value.to_vec(), n.perms.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_relative_to_the_domain_and_reject_traversal() {
        assert_eq!(
            canonical_path(DomId(3), b"a/b").unwrap(),
            "/local/domain/3/a/b"
        );
        assert_eq!(canonical_path(DomId(3), b"/x").unwrap(), "/x");
        assert_eq!(canonical_path(DomId(3), b"/").unwrap(), "/");
        for bad in [
            &b""[..],
            b"../1",
            b"/local/domain/3/../1",
            b"a//b",
            b"a/",
            b"/a/",
            b"a b",
            b"a\xffb",
            b".",
        ] {
            assert_eq!(canonical_path(DomId(3), bad), Err(Errno::EINVAL), "{bad:?}");
        }
        assert!(canonical_path(DomId(3), &vec![b'a'; XENSTORE_REL_PATH_MAX]).is_ok());
        assert_eq!(
            canonical_path(DomId(3), &vec![b'a'; XENSTORE_REL_PATH_MAX + 1]),
            Err(Errno::EINVAL)
        );
        let mut abs = vec![b'/'];
        abs.extend(vec![b'a'; XENSTORE_ABS_PATH_MAX]);
        assert_eq!(canonical_path(DomId(0), &abs), Err(Errno::EINVAL));
    }

    #[test]
    fn perms_follow_owner_default_and_acl() {
        let p = Perms::owned(DomId(5), Access::Read)
            .with(DomId(7), Access::None)
            .with(DomId(8), Access::Write);
        assert_eq!(p.access(DomId(0)), Access::Both);
        assert_eq!(p.access(DomId(5)), Access::Both);
        assert_eq!(p.access(DomId(6)), Access::Read);
        assert_eq!(p.access(DomId(7)), Access::None);
        assert_eq!(p.access(DomId(8)), Access::Write);
        assert_eq!(p.encode(), b"r5\0n7\0w8\0");
        assert_eq!(
            Perm::parse(b"b12"),
            Some(Perm {
                dom: DomId(12),
                access: Access::Both
            })
        );
        assert_eq!(Perm::parse(b"x1"), None);
        assert_eq!(Perm::parse(b"r"), None);
        assert_eq!(Perm::parse(b"r32752"), None);
    }

    #[test]
    fn write_creates_ancestors_inheriting_perms_owned_by_writer() {
        let mut s = Store::default();
        s.write(DOM0, 0, b"/t", b"").unwrap();
        s.set_perms(
            DomId(0),
            0,
            b"/t",
            Perms::owned(DOM0, Access::None).with(DomId(1), Access::Both),
        )
        .unwrap();
        s.write(DomId(1), 0, b"/t/a/b", b"v").unwrap();
        assert_eq!(s.read(DomId(1), 0, b"/t/a/b").unwrap(), b"v");
        assert_eq!(s.read(DomId(1), 0, b"/t/a").unwrap(), b"");
        let p = s.get_perms(DomId(1), 0, b"/t/a").unwrap();
        assert_eq!(p.owner(), DomId(1));
        assert_eq!(p.access(DomId(2)), Access::None);
        assert_eq!(
            s.directory(DomId(1), 0, b"/t").unwrap(),
            vec!["a".to_owned()]
        );
        assert_eq!(s.read(DomId(2), 0, b"/t/a/b"), Err(Errno::EACCES));
        assert_eq!(s.read(DomId(2), 0, b"/t/zzz"), Err(Errno::EACCES));
        assert_eq!(s.read(DomId(1), 0, b"/t/zzz"), Err(Errno::ENOENT));
    }

    #[test]
    fn transaction_conflict_is_eagain_and_clean_commit_applies() {
        let mut s = Store::default();
        s.write(DOM0, 0, b"/x", b"1").unwrap();
        let t = s.transaction_start(DomId(0)).unwrap();
        assert_eq!(s.read(DomId(0), t, b"/x").unwrap(), b"1");
        s.write(DomId(0), t, b"/y", b"2").unwrap();
        assert_eq!(s.read(DOM0, 0, b"/y"), Err(Errno::ENOENT));
        s.transaction_end(DomId(0), t, true).unwrap();
        assert_eq!(s.read(DOM0, 0, b"/y").unwrap(), b"2");

        let t = s.transaction_start(DomId(0)).unwrap();
        assert_eq!(s.read(DomId(0), t, b"/x").unwrap(), b"1");
        s.write(DomId(0), t, b"/z", b"3").unwrap();
        s.write(DOM0, 0, b"/x", b"changed").unwrap();
        assert_eq!(s.transaction_end(DomId(0), t, true), Err(Errno::EAGAIN));
        assert_eq!(s.read(DOM0, 0, b"/z"), Err(Errno::ENOENT));
        assert_eq!(s.transaction_end(DomId(0), t, true), Err(Errno::ENOENT));
    }

    #[test]
    fn watches_fire_on_path_children_and_removal_below() {
        let mut s = Store::default();
        s.watch(DomId(0), b"/a", b"tk").unwrap();
        s.watch(DomId(0), b"/a/b/c", b"deep").unwrap();
        let init: Vec<_> = s.take_events().into_iter().map(|e| e.path).collect();
        assert_eq!(init, ["/a", "/a/b/c"]);
        s.write(DOM0, 0, b"/a/b/c/d", b"1").unwrap();
        let got: Vec<_> = s
            .take_events()
            .into_iter()
            .map(|e| (e.path, e.token))
            .collect();
        assert_eq!(
            got,
            [
                ("/a/b/c/d".to_owned(), b"tk".to_vec()),
                ("/a/b/c/d".to_owned(), b"deep".to_vec())
            ]
        );
        s.rm(DOM0, 0, b"/a/b").unwrap();
        let got: Vec<_> = s
            .take_events()
            .into_iter()
            .map(|e| (e.path, e.token))
            .collect();
        assert_eq!(
            got,
            [
                ("/a/b".to_owned(), b"tk".to_vec()),
                ("/a/b/c".to_owned(), b"deep".to_vec())
            ]
        );
    }
}
