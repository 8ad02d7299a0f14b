//! The grant state machine against a small reference model: random
//! sequences of grant / end-access / map / unmap / copy / offer / transfer
//! over three domains, plus the runtime's own [`GrantAccess`] mappings
//! (dom0), released by `unmap_grant` or by dropping them — the model keeps a
//! dropped mapping pinned until the next grant operation or `reap` (Note
//! [Deferred release]). After every operation the status must be the one the
//! model predicts (Xen's rules, written down independently and simply), and:
//! pins equal outstanding mappings, `GTF_reading`/`GTF_writing` are set iff
//! pinned (read / writable), every data frame's owner is the model's and its
//! reference counts are its allocation plus the mappings holding it
//! ([`super::testing::check_invariants`]), `tot_pages` follow transfers.

use std::collections::BTreeMap;

use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab::*;
use hv_cpu::mem::{MachineAddr, Mfn};
use proptest::prelude::*;

use super::testing::{TEST_PAGES, World};
use super::{GrantAccess, GrantMapping, RUNTIME_DOMID, Ro, Rw};
use crate::machine::{DomId, Owner};

/// What the guest last wrote into an entry (and the transfer progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Invalid,
    Permit {
        grantee: DomId,
        frame: Mfn,
        ro: bool,
    },
    Accept {
        sender: DomId,
        pfn: u64,
    },
    Completed {
        frame: Mfn,
    },
}

#[derive(Clone, Copy, Debug)]
struct Map {
    mapper: DomId,
    handle: u32,
    granter: DomId,
    gref: u32,
    slot: Option<u64>,
    ro: bool,
    frame: Mfn,
}

#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<(DomId, u32), Entry>,
    /// Outstanding mappings, runtime ones (mapper 0) included — a dropped
    /// runtime mapping stays here until the queue is drained.
    maps: Vec<Map>,
    /// Handles of runtime mappings dropped but not yet released.
    dropped: Vec<u32>,
    owner: BTreeMap<Mfn, Option<DomId>>,
    tot: BTreeMap<DomId, u64>,
}

impl Model {
    /// The hypervisor drained its release queue (any grant operation).
    fn drain(&mut self) {
        let dropped = std::mem::take(&mut self.dropped);
        self.maps
            .retain(|m| m.mapper != RUNTIME_DOMID || !dropped.contains(&m.handle));
    }

    fn entry(&self, d: DomId, r: u32) -> Entry {
        self.entries.get(&(d, r)).copied().unwrap_or(Entry::Invalid)
    }

    /// (grantee, writable pins?) of an entry with outstanding maps.
    fn active(&self, d: DomId, r: u32) -> Option<(DomId, bool)> {
        let mut it = self.maps.iter().filter(|m| m.granter == d && m.gref == r);
        let first = it.next()?;
        let w = !first.ro || it.any(|m| !m.ro);
        Some((first.mapper, w))
    }

    fn mapped(&self, f: Mfn) -> bool {
        self.maps.iter().any(|m| m.frame == f)
    }

    /// The status of pinning `(d, r)` for `user`, as Xen decides it.
    fn pin_status(&self, d: DomId, r: u32, user: DomId, ro: bool) -> Result<Mfn, i16> {
        if r >= 512 {
            return Err(GNTST_BAD_GNTREF);
        }
        let act = self.active(d, r);
        if let Some((g, _)) = act
            && g != user
        {
            return Err(GNTST_GENERAL_ERROR);
        }
        let e = self.entry(d, r);
        let (frame, ero) = match e {
            Entry::Permit { grantee, frame, ro } if grantee == user || act.is_some() => (frame, ro),
            _ => return Err(GNTST_GENERAL_ERROR),
        };
        if !ro && ero && !act.is_some_and(|a| a.1) {
            return Err(GNTST_GENERAL_ERROR);
        }
        if act.is_none() && self.owner.get(&frame).copied().flatten() != Some(d) {
            return Err(GNTST_BAD_PAGE);
        }
        Ok(frame)
    }
}

/// One generated operation: kind and raw parameters.
type Op = (u8, u8, u8, u8, u16);

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        (0u8..11, any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>()),
        1..64,
    )
}

/// A runtime mapping the test holds.
enum Held {
    Ro(GrantMapping<Ro>),
    Rw(GrantMapping<Rw>),
}

impl Held {
    fn handle(&self) -> u32 {
        match self {
            Self::Ro(m) => m.handle().handle,
            Self::Rw(m) => m.handle().handle,
        }
    }
}

struct Env {
    w: World,
    m: Model,
    /// Runtime mappings held (each also in `m.maps`, mapper 0).
    held: Vec<Held>,
    /// Data frames: per domain, the first spare frames with their PFNs.
    frames: Vec<(DomId, u64, Mfn)>,
}

impl Env {
    fn new() -> Self {
        let mut w = World::new(3, TEST_PAGES).unwrap();
        let mut m = Model::default();
        let mut frames = Vec::new();
        for &d in &w.doms.clone() {
            for (pfn, f) in w.spare_pfns(d).into_iter().take(4) {
                frames.push((d, pfn, f));
                m.owner.insert(f, Some(d));
            }
            let dd = w.hv.domains.get_mut(&d).unwrap();
            dd.max_pages += 64;
            m.tot.insert(d, dd.tot_pages);
        }
        Self {
            w,
            m,
            held: Vec::new(),
            frames,
        }
    }

    fn dom(&self, b: u8) -> DomId {
        self.w.doms[usize::from(b) % 3]
    }

    fn gref(b: u8) -> u32 {
        if b == 255 { 600 } else { 8 + u32::from(b % 6) }
    }

    /// A frame `d` owns now (or any data frame if none).
    fn own_frame(&self, d: DomId, b: u8) -> Mfn {
        let own: Vec<Mfn> = self
            .m
            .owner
            .iter()
            .filter(|(_, o)| **o == Some(d))
            .map(|(f, _)| *f)
            .collect();
        if own.is_empty() {
            self.frame(b)
        } else {
            own[usize::from(b) % own.len()]
        }
    }

    /// Mostly an existing grant `(granter, gref, grantee)`, so that maps and
    /// copies often succeed; otherwise random choices.
    /// With `runtime`, grants to the runtime (the mapper is then dom0);
    /// otherwise grants to guests.
    fn target(&self, a: u8, b: u8, c: u8) -> (DomId, DomId, u32) {
        self.target_for(a, b, c, false)
    }

    fn target_for(&self, a: u8, b: u8, c: u8, runtime: bool) -> (DomId, DomId, u32) {
        let permits: Vec<(DomId, u32, DomId)> = self
            .m
            .entries
            .iter()
            .filter_map(|(&(g, r), e)| match e {
                Entry::Permit { grantee, .. } if (*grantee == RUNTIME_DOMID) == runtime => {
                    Some((g, r, *grantee))
                }
                _ => None,
            })
            .collect();
        if !c.is_multiple_of(4) && !permits.is_empty() {
            let (g, r, grantee) = permits[usize::from(a) % permits.len()];
            (grantee, g, r)
        } else if runtime {
            (RUNTIME_DOMID, self.dom(b), Self::gref(c))
        } else {
            (self.dom(a), self.dom(b), Self::gref(c))
        }
    }

    fn frame(&self, b: u8) -> Mfn {
        self.frames[usize::from(b) % self.frames.len()].2
    }

    fn step(&mut self, (kind, a, b, c, x): Op) -> Result<(), TestCaseError> {
        // Every hypercall and runtime grant operation first releases the
        // dropped runtime mappings; guest-side writes (grant, end_access,
        // offer) and drops do not.
        // (`unmap_grant` drains in `runtime_release`.)
        // (`map` drains itself: it may return before issuing a hypercall.)
        if matches!(kind, 4 | 5 | 7 | 8 | 10) {
            self.m.drain();
        }
        match kind {
            0 => self.grant(a, b, c, x),
            1 => {
                self.end_access(a, b);
                Ok(())
            }
            2 | 3 => self.map(a, b, c, x),
            4 => self.unmap(a, x),
            5 => self.copy(a, b, c, x),
            6 => {
                let (recv, sender, r) = (self.dom(a), self.dom(b), Self::gref(c));
                if r < 512 && self.m.entry(recv, r) == Entry::Invalid {
                    let pfn = 200 + u64::from(x % 64);
                    self.w.offer_transfer(recv, GrantRef(r), sender, pfn);
                    self.m
                        .entries
                        .insert((recv, r), Entry::Accept { sender, pfn });
                }
                Ok(())
            }
            7 => self.transfer(a, b, c),
            8 => self.runtime_map(a, b, c, x),
            9 => {
                self.runtime_release(a, x);
                Ok(())
            }
            _ => {
                super::reap(&mut self.w.hv);
                Ok(())
            }
        }
    }

    fn runtime_map(&mut self, a: u8, b: u8, c: u8, x: u16) -> Result<(), TestCaseError> {
        let (_, g, r) = self.target_for(a, b, c, true);
        let ro = x & 1 != 0;
        let want = self.m.pin_status(g, r, RUNTIME_DOMID, ro);
        let got = if ro {
            self.w.hv.map_grant_ro(g, GrantRef(r)).map(Held::Ro)
        } else {
            self.w.hv.map_grant_rw(g, GrantRef(r)).map(Held::Rw)
        };
        match (got, want) {
            (Ok(h), Ok(frame)) => {
                self.m.maps.push(Map {
                    mapper: RUNTIME_DOMID,
                    handle: h.handle(),
                    granter: g,
                    gref: r,
                    slot: None,
                    ro,
                    frame,
                });
                self.held.push(h);
            }
            (Err(e), Err(st)) => prop_assert_eq!(e.status(), st, "runtime map {}:{}", g, r),
            (Ok(_), Err(st)) => {
                return Err(TestCaseError::fail(format!(
                    "runtime map {g}:{r} ro {ro} succeeded, model says {st}"
                )));
            }
            (Err(e), Ok(_)) => {
                return Err(TestCaseError::fail(format!(
                    "runtime map {g}:{r} ro {ro} failed ({e}), model says ok"
                )));
            }
        }
        Ok(())
    }

    /// Release a held runtime mapping: `unmap_grant` (even `x`) or drop.
    fn runtime_release(&mut self, a: u8, x: u16) {
        if self.held.is_empty() {
            return;
        }
        let h = self.held.swap_remove(usize::from(a) % self.held.len());
        let handle = h.handle();
        if x & 1 == 0 {
            self.m.drain();
            match h {
                Held::Ro(m) => self.w.hv.unmap_grant(m),
                Held::Rw(m) => self.w.hv.unmap_grant(m),
            }
            self.m
                .maps
                .retain(|m| m.mapper != RUNTIME_DOMID || m.handle != handle);
        } else {
            drop(h);
            self.m.dropped.push(handle);
        }
    }

    fn grant(&mut self, a: u8, b: u8, c: u8, x: u16) -> Result<(), TestCaseError> {
        let grantee = if b % 8 == 7 {
            RUNTIME_DOMID
        } else {
            self.dom(b)
        };
        let (g, r) = (self.dom(a), Self::gref(c));
        if r >= 512 || self.m.entry(g, r) != Entry::Invalid {
            return Ok(());
        }
        let frame = if x & 0x200 == 0 {
            self.own_frame(g, x.to_le_bytes()[0])
        } else {
            self.frame(x.to_le_bytes()[0])
        };
        let ro = x & 0x100 != 0;
        self.w.grant(g, GrantRef(r), grantee, frame, ro);
        self.m
            .entries
            .insert((g, r), Entry::Permit { grantee, frame, ro });
        Ok(())
    }

    fn end_access(&mut self, a: u8, c: u8) {
        let (g, r) = (self.dom(a), Self::gref(c));
        if r >= 512 {
            return;
        }
        match self.m.entry(g, r) {
            Entry::Permit { .. } if self.m.active(g, r).is_some() => {
                assert!(!self.w.end_access(g, GrantRef(r)), "revoked a pinned grant");
            }
            Entry::Completed { .. } => {
                // finish_transfer: the guest frees the entry.
                self.w.write_entry(g, GrantRef(r), GrantEntryV1::default());
                self.m.entries.insert((g, r), Entry::Invalid);
            }
            Entry::Invalid => {}
            _ => {
                assert!(
                    self.w.end_access(g, GrantRef(r)),
                    "could not revoke an idle entry"
                );
                self.m.entries.insert((g, r), Entry::Invalid);
            }
        }
    }

    fn map(&mut self, a: u8, b: u8, c: u8, x: u16) -> Result<(), TestCaseError> {
        let (mapper, g, r) = self.target(a, b, c);
        let ro = x & 1 != 0;
        let slot = (x & 2 != 0).then_some(u64::from((x >> 2) % 4));
        if let Some(s) = slot
            && self
                .m
                .maps
                .iter()
                .any(|m| m.mapper == mapper && m.slot == Some(s))
        {
            // No hypercall, so the dropped runtime mappings stay queued.
            return Ok(());
        }
        self.m.drain();
        let want = self.m.pin_status(g, r, mapper, ro);
        let (flags, host_addr) = match slot {
            Some(s) => (GNTMAP_HOST_MAP, self.w.slot_va(mapper, s)),
            None => (GNTMAP_DEVICE_MAP, 0),
        };
        let mut op = GnttabMapGrantRef {
            host_addr,
            flags: flags | if ro { GNTMAP_READONLY } else { 0 },
            ref_: r,
            dom: g.0,
            ..Default::default()
        };
        prop_assert_eq!(
            self.w.call(
                mapper,
                GNTTABOP_MAP_GRANT_REF,
                std::slice::from_mut(&mut op)
            ),
            0
        );
        prop_assert_eq!(
            op.status,
            want.err().unwrap_or(GNTST_OKAY),
            "map {}:{} by {} ro {}",
            g,
            r,
            mapper,
            ro
        );
        if let Ok(frame) = want {
            prop_assert_eq!(op.dev_bus_addr, frame.0 << 12);
            self.m.maps.push(Map {
                mapper,
                handle: op.handle,
                granter: g,
                gref: r,
                slot,
                ro,
                frame,
            });
        }
        Ok(())
    }

    fn unmap(&mut self, a: u8, x: u16) -> Result<(), TestCaseError> {
        let guest_maps: Vec<usize> = (0..self.m.maps.len())
            .filter(|&i| self.m.maps[i].mapper != RUNTIME_DOMID)
            .collect();
        if guest_maps.is_empty() || x & 7 == 0 {
            // A handle nobody holds.
            let mapper = self.dom(a);
            let handle = 9000 + u32::from(x);
            let mut op = GnttabUnmapGrantRef {
                host_addr: self.w.slot_va(mapper, 0),
                handle,
                ..Default::default()
            };
            prop_assert_eq!(
                self.w.call(
                    mapper,
                    GNTTABOP_UNMAP_GRANT_REF,
                    std::slice::from_mut(&mut op)
                ),
                0
            );
            prop_assert_eq!(op.status, GNTST_BAD_HANDLE);
            return Ok(());
        }
        let i = guest_maps[usize::from(x) % guest_maps.len()];
        let m = self.m.maps.swap_remove(i);
        let (host_addr, dev) = match m.slot {
            Some(s) => (self.w.slot_va(m.mapper, s), 0),
            None => (0, m.frame.0 << 12),
        };
        let mut op = GnttabUnmapGrantRef {
            host_addr,
            dev_bus_addr: dev,
            handle: m.handle,
            ..Default::default()
        };
        prop_assert_eq!(
            self.w.call(
                m.mapper,
                GNTTABOP_UNMAP_GRANT_REF,
                std::slice::from_mut(&mut op)
            ),
            0
        );
        prop_assert_eq!(op.status, GNTST_OKAY);
        Ok(())
    }

    fn copy(&mut self, a: u8, b: u8, c: u8, x: u16) -> Result<(), TestCaseError> {
        let (caller, tg, tr) = self.target(a, b, c);
        let src_gref = b & 1 != 0;
        let dst_gref = b & 2 != 0;
        let len = x % 600;
        let (so, dof) = (u16::from(c) * 16, (x >> 4) % 4096);
        let side =
            |env: &Self, gref: bool, sel: u8| -> (GnttabCopyPtr, Result<(Mfn, DomId, u32), i16>) {
                if gref {
                    let (g, r) = if sel.is_multiple_of(4) {
                        (env.dom(sel), Self::gref(sel >> 2))
                    } else {
                        (tg, tr)
                    };
                    (GnttabCopyPtr::gref(g.0, r, 0), Ok((Mfn(0), g, r)))
                } else {
                    let f = if sel.is_multiple_of(2) {
                        env.own_frame(caller, sel)
                    } else {
                        env.frame(sel)
                    };
                    let own = env.m.owner.get(&f).copied().flatten() == Some(caller);
                    (
                        GnttabCopyPtr::gmfn(f.0, 0),
                        if own {
                            Ok((f, caller, u32::MAX))
                        } else {
                            Err(GNTST_BAD_PAGE)
                        },
                    )
                }
            };
        let (mut sp, sres) = side(self, src_gref, b >> 2);
        let (mut dp, dres) = side(self, dst_gref, c.rotate_left(3));
        sp.offset = so;
        dp.offset = dof;
        // Predict: source, destination (with the source's pin held), offsets.
        let claim = |env: &Self,
                     res: Result<(Mfn, DomId, u32), i16>,
                     gref: bool,
                     ro: bool,
                     extra: Option<(DomId, u32)>| {
            let (f, g, r) = res?;
            if !gref {
                return Ok(f);
            }
            // The source's own transient pin counts as an active read pin.
            if extra == Some((g, r)) && env.m.active(g, r).is_none() {
                return match env.m.entry(g, r) {
                    Entry::Permit { frame, ro: ero, .. } if ro || !ero => Ok(frame),
                    _ => Err(GNTST_GENERAL_ERROR),
                };
            }
            env.m.pin_status(g, r, caller, ro)
        };
        let want = claim(self, sres, src_gref, true, None).and_then(|sf| {
            let src_key = sres.ok().filter(|_| src_gref).map(|(_, g, r)| (g, r));
            claim(self, dres, dst_gref, false, src_key).map(|df| (sf, df))
        });
        let want = want.and_then(|fs| {
            if u32::from(so) + u32::from(len) > 4096 || u32::from(dof) + u32::from(len) > 4096 {
                Err(GNTST_BAD_COPY_ARG)
            } else {
                Ok(fs)
            }
        });
        let before = want.ok().map(|(sf, _)| {
            let mut v = vec![0u8; usize::from(len)];
            self.w
                .hv
                .mem
                .read(MachineAddr(sf.addr().0 + u64::from(so)), &mut v)
                .unwrap();
            v
        });
        let mut op = GnttabCopy {
            source: sp,
            dest: dp,
            len,
            flags: u16::from(src_gref) | (u16::from(dst_gref) << 1),
            ..Default::default()
        };
        prop_assert_eq!(
            self.w
                .call(caller, GNTTABOP_COPY, std::slice::from_mut(&mut op)),
            0
        );
        prop_assert_eq!(op.status, want.err().unwrap_or(GNTST_OKAY), "copy {:?}", op);
        if let (Ok((_, df)), Some(before)) = (want, before) {
            let mut after = vec![0u8; usize::from(len)];
            self.w
                .hv
                .mem
                .read(MachineAddr(df.addr().0 + u64::from(dof)), &mut after)
                .unwrap();
            prop_assert_eq!(after, before);
        }
        Ok(())
    }

    fn transfer(&mut self, a: u8, b: u8, c: u8) -> Result<(), TestCaseError> {
        let accepts: Vec<(DomId, u32, DomId)> = self
            .m
            .entries
            .iter()
            .filter_map(|(&(d, r), e)| match e {
                Entry::Accept { sender, .. } => Some((d, r, *sender)),
                _ => None,
            })
            .collect();
        let (sender, recv, r) = if !c.is_multiple_of(4) && !accepts.is_empty() {
            let (d, r, s) = accepts[usize::from(a) % accepts.len()];
            (s, d, r)
        } else {
            (self.dom(a), self.dom(b), Self::gref(c))
        };
        let frame = if b.is_multiple_of(4) {
            self.frame(c.rotate_left(4))
        } else {
            self.own_frame(sender, c.rotate_left(4))
        };
        let stealable =
            self.m.owner.get(&frame).copied().flatten() == Some(sender) && !self.m.mapped(frame);
        let want = if !stealable {
            GNTST_BAD_PAGE
        } else {
            match self.m.entry(recv, r) {
                Entry::Accept { sender: s, .. } if s == sender && r < 512 => GNTST_OKAY,
                _ => GNTST_GENERAL_ERROR,
            }
        };
        let mut op = GnttabTransfer {
            mfn: frame.0,
            domid: recv.0,
            ref_: r,
            ..Default::default()
        };
        prop_assert_eq!(
            self.w
                .call(sender, GNTTABOP_TRANSFER, std::slice::from_mut(&mut op)),
            0
        );
        prop_assert_eq!(
            op.status,
            want,
            "transfer {:#x} {}->{}:{}",
            frame.0,
            sender,
            recv,
            r
        );
        if stealable {
            *self.m.tot.get_mut(&sender).unwrap() -= 1;
            if want == GNTST_OKAY {
                *self.m.tot.get_mut(&recv).unwrap() += 1;
                self.m.owner.insert(frame, Some(recv));
                self.m.entries.insert((recv, r), Entry::Completed { frame });
                let e = self.w.entry(recv, GrantRef(r));
                prop_assert_eq!(
                    e.flags,
                    GTF_ACCEPT_TRANSFER | GTF_TRANSFER_COMMITTED | GTF_TRANSFER_COMPLETED
                );
                prop_assert_eq!(u64::from(e.frame), frame.0);
            } else {
                self.m.owner.insert(frame, None);
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        self.w.check_invariants(true).map_err(TestCaseError::fail)?;
        for (&f, &o) in &self.m.owner {
            let real = self.w.hv.ft.get(f).unwrap().owner;
            let want = o.map_or(Owner::Free, Owner::Dom);
            prop_assert_eq!(real, want, "owner of frame {:#x}", f.0);
        }
        for (&d, &t) in &self.m.tot {
            prop_assert_eq!(self.w.hv.domains[&d].tot_pages, t);
        }
        // Pins per entry: one per model mapping.
        for &d in &self.w.doms {
            let t = self.w.hv.gnttab.table(d).unwrap();
            for (r, act) in t.actives() {
                let n = self
                    .m
                    .maps
                    .iter()
                    .filter(|m| m.granter == d && m.gref == r)
                    .count();
                prop_assert_eq!(act.pins.total() as usize, n);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn grant_state_machine_matches_the_model(ops in ops()) {
        let mut env = Env::new();
        for op in ops {
            env.step(op)?;
            env.check()?;
        }
        // Everything unmaps cleanly at the end: the runtime's mappings
        // (half dropped, released by reap), then the guests'.
        let mut i = 0u16;
        while !env.held.is_empty() {
            env.runtime_release(0, i);
            i += 1;
        }
        super::reap(&mut env.w.hv);
        env.m.drain();
        env.check()?;
        prop_assert!(env.m.maps.iter().all(|m| m.mapper != RUNTIME_DOMID));
        prop_assert_eq!(
            env.w.hv.gnttab.table(RUNTIME_DOMID).map_or(0, |t| t.mappings().count()),
            0
        );
        while !env.m.maps.is_empty() {
            env.unmap(0, 1)?;
            env.check()?;
        }
        for &d in &env.w.doms {
            prop_assert_eq!(env.w.hv.gnttab.table(d).unwrap().actives().count(), 0);
        }
    }
}
