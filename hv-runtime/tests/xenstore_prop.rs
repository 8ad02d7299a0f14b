//! The store against a reference model over random operation sequences.
//!
//! The model is a `BTreeMap` of path → (value, permission list) with the
//! access rules of the store's module docs written out naively. Outside
//! transactions every result and the whole tree must match the model.
//! Transactions are checked for what they promise rather than how they
//! detect conflicts:
//! * inside a transaction, results match the model run on the snapshot
//!   taken at its start;
//! * a successful commit is serialisable: replaying the transaction's
//!   operations on the current model gives the same results, and the tree
//!   becomes the replayed model;
//! * `EAGAIN` only when something else was committed or written since the
//!   transaction started; an aborted or failed transaction changes nothing.
#![expect(clippy::unwrap_used)]

use hv_runtime::machine::DomId;
use std::collections::BTreeMap;

use guest_abi::abi::errno::Errno;
use hv_runtime::xenstore::{Access, Perm, Perms, Quota, Store};
use proptest::prelude::*;

type Dom = u16;

#[derive(Clone, Debug)]
enum Op {
    Write(Dom, Option<usize>, String, Vec<u8>),
    Mkdir(Dom, Option<usize>, String),
    Rm(Dom, Option<usize>, String),
    Read(Dom, Option<usize>, String),
    Dir(Dom, Option<usize>, String),
    GetPerms(Dom, Option<usize>, String),
    SetPerms(Dom, Option<usize>, String, Vec<(Dom, u8)>),
    TxStart(Dom),
    TxEnd(usize, bool),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Res {
    Ok,
    Val(Vec<u8>),
    Names(Vec<String>),
    Perms(Vec<(Dom, u8)>),
    Err(Errno),
}

/// A permission list: (domain, letter), owner first.
type PermList = Vec<(Dom, u8)>;
/// A node: value and permissions.
type MNode = (Vec<u8>, PermList);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    nodes: BTreeMap<String, MNode>,
}

fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    let i = p.rfind('/')?;
    Some(if i == 0 { "/" } else { &p[..i] })
}

fn access(perms: &[(Dom, u8)], dom: Dom) -> (bool, bool) {
    if dom == 0 || perms[0].0 == dom {
        return (true, true);
    }
    let a = perms[1..]
        .iter()
        .find(|p| p.0 == dom)
        .map_or(perms[0].1, |p| p.1);
    (a == b'r' || a == b'b', a == b'w' || a == b'b')
}

const PERMS_QUOTA: usize = 5;

impl Model {
    fn new() -> Self {
        let mut m = Self::default();
        for p in ["/", "/local", "/local/domain"] {
            m.nodes.insert(p.to_owned(), (Vec::new(), vec![(0, b'n')]));
        }
        m
    }

    fn valid(p: &str) -> bool {
        p.starts_with('/')
            && !p.contains("//")
            && (p == "/" || !p.ends_with('/'))
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_@".contains(&b))
    }

    fn missing(&self, dom: Dom, p: &str) -> Errno {
        let mut a = parent(p);
        while let Some(x) = a {
            if let Some(n) = self.nodes.get(x) {
                return if access(&n.1, dom).0 {
                    Errno::ENOENT
                } else {
                    Errno::EACCES
                };
            }
            a = parent(x);
        }
        Errno::ENOENT
    }

    fn readable(&self, dom: Dom, p: &str) -> Result<&MNode, Errno> {
        if !Self::valid(p) {
            return Err(Errno::EINVAL);
        }
        match self.nodes.get(p) {
            Some(n) if access(&n.1, dom).0 => Ok(n),
            Some(_) => Err(Errno::EACCES),
            None => Err(self.missing(dom, p)),
        }
    }

    fn create(&mut self, dom: Dom, p: &str, v: &[u8]) -> Res {
        let mut chain = vec![p.to_owned()];
        let mut a = parent(p).unwrap();
        while !self.nodes.contains_key(a) {
            chain.push(a.to_owned());
            a = parent(a).unwrap();
        }
        let ap = self.nodes[a].1.clone();
        if !access(&ap, dom).1 {
            return Res::Err(Errno::EACCES);
        }
        let mut perms = ap;
        if dom != 0 {
            perms[0].0 = dom;
        }
        for c in chain {
            let val = if c == p { v.to_vec() } else { Vec::new() };
            self.nodes.insert(c, (val, perms.clone()));
        }
        Res::Ok
    }

    fn apply(&mut self, op: &Op) -> Res {
        match op {
            Op::Read(d, _, p) => match self.readable(*d, p) {
                Ok(n) => Res::Val(n.0.clone()),
                Err(e) => Res::Err(e),
            },
            Op::GetPerms(d, _, p) => match self.readable(*d, p) {
                Ok(n) => Res::Perms(n.1.clone()),
                Err(e) => Res::Err(e),
            },
            Op::Dir(d, _, p) => match self.readable(*d, p) {
                Ok(_) => {
                    let prefix = if p == "/" {
                        "/".to_owned()
                    } else {
                        format!("{p}/")
                    };
                    Res::Names(
                        self.nodes
                            .keys()
                            .filter_map(|k| k.strip_prefix(&prefix))
                            .filter(|r| !r.is_empty() && !r.contains('/'))
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                Err(e) => Res::Err(e),
            },
            Op::Write(_, _, p, _) | Op::Mkdir(_, _, p) if !Self::valid(p) => {
                Res::Err(Errno::EINVAL)
            }
            Op::Write(d, _, p, v) => match self.nodes.get_mut(p) {
                Some(n) if access(&n.1, *d).1 => {
                    n.0.clone_from(v);
                    Res::Ok
                }
                Some(_) => Res::Err(Errno::EACCES),
                None => self.create(*d, p, v),
            },
            Op::Mkdir(d, _, p) => match self.nodes.get(p) {
                Some(n) if access(&n.1, *d).1 => Res::Ok,
                Some(_) => Res::Err(Errno::EACCES),
                None => self.create(*d, p, b""),
            },
            Op::Rm(d, _, p) => {
                if !Self::valid(p) || p == "/" {
                    return Res::Err(Errno::EINVAL);
                }
                match self.nodes.get(p) {
                    Some(n) if access(&n.1, *d).1 => {
                        let prefix = format!("{p}/");
                        self.nodes.retain(|k, _| k != p && !k.starts_with(&prefix));
                        Res::Ok
                    }
                    Some(_) => Res::Err(Errno::EACCES),
                    None => {
                        let dir = parent(p).unwrap();
                        match self.nodes.get(dir) {
                            Some(n) if access(&n.1, *d).0 => Res::Ok,
                            Some(_) => Res::Err(Errno::EACCES),
                            None => Res::Err(self.missing(*d, dir)),
                        }
                    }
                }
            }
            Op::SetPerms(d, _, p, perms) => {
                if !Self::valid(p) {
                    return Res::Err(Errno::EINVAL);
                }
                let Some(n) = self.nodes.get_mut(p) else {
                    return Res::Err(self.missing(*d, p));
                };
                if *d != 0 {
                    if n.1[0].0 != *d {
                        return Res::Err(Errno::EACCES);
                    }
                    if perms[0].0 != *d {
                        return Res::Err(Errno::EPERM);
                    }
                    if perms.len() > PERMS_QUOTA {
                        return Res::Err(Errno::ENOSPC);
                    }
                }
                n.1.clone_from(perms);
                Res::Ok
            }
            Op::TxStart(_) | Op::TxEnd(..) => unreachable!("handled by the driver"),
        }
    }
}

fn letter_access(l: u8) -> Access {
    match l {
        b'r' => Access::Read,
        b'w' => Access::Write,
        b'b' => Access::Both,
        _ => Access::None,
    }
}

fn to_perms(list: &[(Dom, u8)]) -> Perms {
    let v: Vec<Perm> = list
        .iter()
        .map(|&(dom, l)| Perm {
            dom: DomId(dom),
            access: letter_access(l),
        })
        .collect();
    Perms::from_list(&v).unwrap()
}

fn from_perms(p: &Perms) -> Vec<(Dom, u8)> {
    p.entries()
        .iter()
        .map(|e| {
            let l = match e.access {
                Access::None => b'n',
                Access::Read => b'r',
                Access::Write => b'w',
                Access::Both => b'b',
            };
            (e.dom.0, l)
        })
        .collect()
}

fn run_store(s: &mut Store, op: &Op, tx: u32) -> Res {
    let wrap = |r: Result<(), Errno>| r.map_or_else(Res::Err, |()| Res::Ok);
    match op {
        Op::Write(d, _, p, v) => wrap(s.write(DomId(*d), tx, p.as_bytes(), v)),
        Op::Mkdir(d, _, p) => wrap(s.mkdir(DomId(*d), tx, p.as_bytes())),
        Op::Rm(d, _, p) => wrap(s.rm(DomId(*d), tx, p.as_bytes())),
        Op::Read(d, _, p) => s
            .read(DomId(*d), tx, p.as_bytes())
            .map_or_else(Res::Err, Res::Val),
        Op::Dir(d, _, p) => s
            .directory(DomId(*d), tx, p.as_bytes())
            .map_or_else(Res::Err, Res::Names),
        Op::GetPerms(d, _, p) => s
            .get_perms(DomId(*d), tx, p.as_bytes())
            .map_or_else(Res::Err, |p| Res::Perms(from_perms(&p))),
        Op::SetPerms(d, _, p, perms) => {
            wrap(s.set_perms(DomId(*d), tx, p.as_bytes(), to_perms(perms)))
        }
        Op::TxStart(_) | Op::TxEnd(..) => unreachable!(),
    }
}

fn tx_slot(op: &Op) -> Option<usize> {
    match op {
        Op::Write(_, t, ..)
        | Op::Mkdir(_, t, _)
        | Op::Rm(_, t, _)
        | Op::Read(_, t, _)
        | Op::Dir(_, t, _)
        | Op::GetPerms(_, t, _)
        | Op::SetPerms(_, t, ..) => *t,
        _ => None,
    }
}

fn dom_of(op: &Op) -> Dom {
    match op {
        Op::Write(d, ..)
        | Op::Mkdir(d, ..)
        | Op::Rm(d, ..)
        | Op::Read(d, ..)
        | Op::Dir(d, ..)
        | Op::GetPerms(d, ..)
        | Op::SetPerms(d, ..)
        | Op::TxStart(d) => *d,
        Op::TxEnd(..) => 0,
    }
}

fn is_mutation(op: &Op) -> bool {
    matches!(
        op,
        Op::Write(..) | Op::Mkdir(..) | Op::Rm(..) | Op::SetPerms(..)
    )
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 0..4)
            .prop_map(|c| {
                let mut p = "/t".to_owned();
                for x in c {
                    p.push('/');
                    p.push_str(x);
                }
                p
            }),
        1 => Just("/".to_owned()),
        1 => Just("/t/../a".to_owned()),
        1 => Just("/t/a/".to_owned()),
    ]
}

fn perms() -> impl Strategy<Value = Vec<(Dom, u8)>> {
    let entry = (
        0u16..3,
        prop_oneof![Just(b'n'), Just(b'r'), Just(b'w'), Just(b'b')],
    );
    proptest::collection::vec(entry, 1..4)
}

fn op() -> impl Strategy<Value = Op> {
    let dom = prop_oneof![2 => Just(0u16), 3 => Just(1u16), 2 => Just(2u16)];
    let tx = prop_oneof![3 => Just(None), 1 => (0usize..4).prop_map(Some)];
    let val = proptest::collection::vec(any::<u8>(), 0..6);
    prop_oneof![
        4 => (dom.clone(), tx.clone(), path(), val).prop_map(|(d, t, p, v)| Op::Write(d, t, p, v)),
        2 => (dom.clone(), tx.clone(), path()).prop_map(|(d, t, p)| Op::Mkdir(d, t, p)),
        2 => (dom.clone(), tx.clone(), path()).prop_map(|(d, t, p)| Op::Rm(d, t, p)),
        3 => (dom.clone(), tx.clone(), path()).prop_map(|(d, t, p)| Op::Read(d, t, p)),
        2 => (dom.clone(), tx.clone(), path()).prop_map(|(d, t, p)| Op::Dir(d, t, p)),
        1 => (dom.clone(), tx.clone(), path()).prop_map(|(d, t, p)| Op::GetPerms(d, t, p)),
        2 => (dom.clone(), tx.clone(), path(), perms()).prop_map(|(d, t, p, l)| Op::SetPerms(d, t, p, l)),
        1 => dom.prop_map(Op::TxStart),
        1 => (0usize..4, prop_oneof![3 => Just(true), 1 => Just(false)]).prop_map(|(s, c)| Op::TxEnd(s, c)),
    ]
}

struct OpenTx {
    id: u32,
    dom: Dom,
    snapshot: Model,
    log: Vec<(Op, Res)>,
    mutations_at_start: u64,
}

fn dump_model(s: &Store) -> Model {
    let mut m = Model::default();
    for (p, v, perms) in s.dump() {
        m.nodes.insert(p, (v, from_perms(&perms)));
    }
    m
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut store = Store::new(Quota {
        nodes: 10_000,
        node_size: 4096,
        watches: 128,
        transactions: 10,
        perms: PERMS_QUOTA,
    });
    let mut model = Model::new();
    // /t: owned by dom0, readable by everyone, writable by domain 1.
    let t_perms = vec![(0, b'r'), (1, b'b')];
    store.write(DomId(0), 0, b"/t", b"").unwrap();
    store
        .set_perms(DomId(0), 0, b"/t", to_perms(&t_perms))
        .unwrap();
    model.nodes.insert("/t".to_owned(), (Vec::new(), t_perms));
    let mut txs: Vec<OpenTx> = Vec::new();
    let mut mutations = 0u64;

    for op in ops {
        match op {
            Op::TxStart(d) => {
                let open = txs.iter().filter(|t| t.dom == *d).count();
                match store.transaction_start(DomId(*d)) {
                    Ok(id) => {
                        prop_assert!(*d == 0 || open < 10);
                        prop_assert!(id != 0 && txs.iter().all(|t| t.id != id));
                        txs.push(OpenTx {
                            id,
                            dom: *d,
                            snapshot: model.clone(),
                            log: Vec::new(),
                            mutations_at_start: mutations,
                        });
                    }
                    Err(e) => prop_assert!(e == Errno::ENOSPC && *d != 0 && open >= 10),
                }
            }
            Op::TxEnd(slot, commit) => {
                if txs.is_empty() {
                    continue;
                }
                let t = txs.remove(slot % txs.len());
                let r = store.transaction_end(DomId(t.dom), t.id, *commit);
                if !*commit {
                    prop_assert_eq!(r, Ok(()));
                } else if r == Err(Errno::EAGAIN) {
                    prop_assert!(
                        mutations != t.mutations_at_start,
                        "EAGAIN with no concurrent change"
                    );
                } else {
                    prop_assert_eq!(r, Ok(()));
                    let mut replay = model.clone();
                    for (o, res) in &t.log {
                        let again = replay.apply(o);
                        prop_assert_eq!(&again, res, "commit not serialisable at {:?}", o);
                    }
                    if t.log.iter().any(|(o, r)| is_mutation(o) && *r == Res::Ok) {
                        mutations += 1;
                    }
                    model = replay;
                }
                prop_assert_eq!(
                    store.transaction_end(DomId(t.dom), t.id, true),
                    Err(Errno::ENOENT)
                );
            }
            _ => {
                let slot = tx_slot(op).filter(|_| !txs.is_empty());
                if let Some(s) = slot {
                    let i = s % txs.len();
                    // Only the transaction's own domain may use it.
                    let t = &mut txs[i];
                    let op = retarget(op, t.dom);
                    let got = run_store(&mut store, &op, t.id);
                    let want = t.snapshot.apply(&op);
                    prop_assert_eq!(&got, &want, "in transaction: {:?}", op);
                    prop_assert_eq!(dom_of(&op), t.dom);
                    t.log.push((op, got));
                } else {
                    let got = run_store(&mut store, op, 0);
                    let want = model.apply(op);
                    prop_assert_eq!(&got, &want, "{:?}", op);
                    if is_mutation(op) && got == Res::Ok {
                        mutations += 1;
                    }
                }
            }
        }
        prop_assert_eq!(dump_model(&store), model.clone());
    }
    Ok(())
}

/// The same operation issued by `dom`.
fn retarget(op: &Op, dom: Dom) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Write(d, ..)
        | Op::Mkdir(d, ..)
        | Op::Rm(d, ..)
        | Op::Read(d, ..)
        | Op::Dir(d, ..)
        | Op::GetPerms(d, ..)
        | Op::SetPerms(d, ..) => *d = dom,
        _ => {}
    }
    op
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        check(&ops)?;
    }
}

#[test]
fn model_check_catches_a_foreign_transaction_id() {
    // The store refuses a transaction id used by another domain.
    let mut s = Store::default();
    let t = s.transaction_start(DomId(1)).unwrap();
    assert_eq!(s.read(DomId(2), t, b"/"), Err(Errno::ENOENT));
    assert_eq!(s.transaction_end(DomId(2), t, true), Err(Errno::ENOENT));
    s.transaction_end(DomId(1), t, true).unwrap();
}
