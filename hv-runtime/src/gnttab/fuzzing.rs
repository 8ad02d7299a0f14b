//! Fuzz body for grant-table operation sequences, shared by
//! `fuzz/fuzz_targets/gnttab_ops.rs` and the corpus-replay test
//! `tests/gnttab_fuzz_corpus.rs`. Not a stable API.
//!
//! The input drives three domains of a [`World`]: guests that grant, revoke
//! and scribble arbitrary values over their own grant entries, and issue
//! every `grant_table_op` command through the real decoder — well-formed
//! maps, unmaps, copies, transfers and table operations with values picked
//! from what exists (so they often succeed), hostile ones with raw values,
//! and raw argument bytes with lying counts — plus the runtime's own
//! [`GrantAccess`] mappings (released explicitly or by dropping them, which
//! defers the release to the next grant operation or [`super::reap`]) and
//! domains ending. Checked after every step:
//!
//! * nothing panics and every hypercall returns;
//! * [`super::testing::check_invariants`]: pins equal outstanding mappings,
//!   every mapping agrees with its active entry, every data frame's
//!   reference counts are exactly its allocation plus the L1 entries and
//!   device mappings holding it, free frames are unreferenced.

use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab as g;
use hv_cpu::mem::Mfn;

use super::testing::{SLOTS, TEST_PAGES, World, check_invariants};
use super::{GrantAccess, GrantMapping, Ro, Rw};
use crate::fuzz_input::Input;
use crate::machine::DomId;

enum RtMap {
    Ro(GrantMapping<Ro>),
    Rw(GrantMapping<Rw>),
}

struct State {
    w: World,
    /// (mapper, handle, host_addr, dev_bus_addr) of successful maps.
    handles: Vec<(DomId, u32, u64, u64)>,
    runtime: Vec<RtMap>,
}

impl State {
    fn dom(&self, b: u8) -> DomId {
        let n = self.w.doms.len();
        self.w
            .doms
            .get(usize::from(b) % n)
            .copied()
            .unwrap_or(DomId(1))
    }

    /// A domain id: usually one of ours, sometimes a raw value.
    fn domid(&self, b: u8) -> DomId {
        match b % 8 {
            0 => DomId(u16::from(b) << 4),
            1 => DomId::SELF,
            2 => super::RUNTIME_DOMID,
            _ => self.dom(b / 8),
        }
    }

    fn frame(&self, dom: DomId, b: u8, raw: u64) -> Mfn {
        let spare = self.w.spare_frames(dom);
        match (b % 4, spare.len()) {
            (0, _) | (_, 0) => Mfn(raw % (self.w.hv.ft.frames() + 4)),
            (_, n) => spare[usize::from(b / 4) % n],
        }
    }

    fn host_addr(&self, dom: DomId, b: u8, raw: u64) -> (u64, u32) {
        match b % 4 {
            0 => (raw, 0),
            1 => (
                self.w.slot_pte(dom, u64::from(b / 4) % SLOTS),
                g::GNTMAP_CONTAINS_PTE,
            ),
            _ => (self.w.slot_va(dom, u64::from(b / 4) % SLOTS), 0),
        }
    }
}

/// Run one fuzz input (see the module docs).
///
/// # Panics
/// When a checked property fails — that is the point.
pub fn grant_ops(data: &[u8]) {
    let Ok(mut w) = World::new(3, TEST_PAGES) else {
        return;
    };
    // Reservation headroom, so that transfers can succeed.
    for d in w.hv.domains.values_mut() {
        d.max_pages += 32;
    }
    let mut s = State {
        w,
        handles: Vec::new(),
        runtime: Vec::new(),
    };
    let mut input = Input::new(data);
    let mut steps = 0;
    while !input.done() && steps < 256 {
        steps += 1;
        step(&mut s, &mut input);
        if let Err(e) = check_invariants(&s.w.hv, false) {
            panic!("invariant broken after step {steps}: {e}");
        }
    }
    // Release what the runtime holds (half by dropping), end every domain:
    // all pins go.
    for (i, m) in s.runtime.drain(..).enumerate() {
        match m {
            RtMap::Ro(m) if i % 2 == 0 => s.w.hv.unmap_grant(m),
            RtMap::Rw(m) if i % 2 == 0 => s.w.hv.unmap_grant(m),
            RtMap::Ro(m) => drop(m),
            RtMap::Rw(m) => drop(m),
        }
    }
    super::reap(&mut s.w.hv);
    assert_eq!(s.w.hv.gnttab.pending_releases(), 0);
    let doms = s.w.doms.clone();
    for d in doms {
        super::domain_ended(&mut s.w.hv, d);
    }
    if let Err(e) = check_invariants(&s.w.hv, false) {
        panic!("invariant broken after teardown: {e}");
    }
    for (dom, t) in &s.w.hv.gnttab.tables {
        assert_eq!(t.mappings().count(), 0, "domain {dom} still maps grants");
        assert_eq!(t.actives().count(), 0, "domain {dom} grants still pinned");
    }
}

#[expect(clippy::too_many_lines)]
fn step(s: &mut State, input: &mut Input<'_>) {
    let op = input.byte();
    let a = input.byte();
    let b = input.byte();
    match op % 16 {
        0 | 1 => {
            // Grant a frame.
            let granter = s.dom(a);
            let gref = u32::from(input.u16() % 1100);
            let grantee = s.domid(b);
            let fb = input.byte();
            let frame = s.frame(granter, fb, u64::from(input.u32()));
            s.w.grant(granter, GrantRef(gref), grantee, frame, fb & 0x80 != 0);
        }
        2 => {
            let d = s.dom(a);
            let gref = u32::from(input.u16() % 600);
            s.w.end_access(d, GrantRef(gref));
        }
        3 => {
            // Hostile guest: arbitrary entry contents.
            let d = s.dom(a);
            let gref = u32::from(input.u16() % 600);
            let raw = input.u64();
            if let Some(at) = s.w.entry_addr(d, GrantRef(gref)) {
                let _ = s.w.hv.mem.write_u64(at, raw);
            }
        }
        4..=6 => {
            // Map.
            let mapper = s.dom(a);
            let granter = s.domid(b);
            let gref = u32::from(input.u16() % 600);
            let fl = input.byte();
            let hb = input.byte();
            let (host_addr, pte_flag) = s.host_addr(mapper, hb, input.u64());
            let flags = u32::from(fl & 0x0f) | pte_flag | (u32::from(fl >> 4) << 16);
            let mut m = g::GnttabMapGrantRef {
                host_addr,
                flags,
                ref_: gref,
                dom: granter.0,
                ..Default::default()
            };
            let r = s.w.call(
                mapper,
                g::GNTTABOP_MAP_GRANT_REF,
                std::slice::from_mut(&mut m),
            );
            assert_eq!(r, 0, "map_grant_ref hypercall failed");
            if m.status == g::GNTST_OKAY {
                s.handles
                    .push((mapper, m.handle, host_addr, m.dev_bus_addr));
            }
        }
        7 | 8 => {
            // Unmap a known mapping (or a raw handle).
            let which = input.byte();
            let (mapper, handle, host, dev) = if s.handles.is_empty() || which.is_multiple_of(8) {
                (s.dom(a), input.u32() % 8, input.u64(), 0)
            } else {
                let i = usize::from(which) % s.handles.len();
                let h = s.handles[i];
                if !b.is_multiple_of(4) {
                    s.handles.swap_remove(i);
                }
                h
            };
            let dev = if b & 0x10 != 0 { 0 } else { dev };
            if b & 0x20 != 0 {
                let (new_addr, _) = s.host_addr(mapper, input.byte(), 0);
                let mut u = g::GnttabUnmapAndReplace {
                    host_addr: host,
                    new_addr,
                    handle,
                    ..Default::default()
                };
                let r = s.w.call(
                    mapper,
                    g::GNTTABOP_UNMAP_AND_REPLACE,
                    std::slice::from_mut(&mut u),
                );
                assert_eq!(r, 0);
            } else {
                let mut u = g::GnttabUnmapGrantRef {
                    host_addr: host,
                    dev_bus_addr: dev,
                    handle,
                    ..Default::default()
                };
                let r = s.w.call(
                    mapper,
                    g::GNTTABOP_UNMAP_GRANT_REF,
                    std::slice::from_mut(&mut u),
                );
                assert_eq!(r, 0);
            }
        }
        9 => {
            // Copy.
            let caller = s.dom(a);
            let flags = u16::from(b & 3);
            let side = |s: &State, inp: &mut Input<'_>, gref: bool| {
                let x = inp.byte();
                let off = inp.u16() % 4200;
                if gref {
                    g::GnttabCopyPtr::gref(s.domid(x).0, u32::from(inp.u16() % 600), off)
                } else {
                    let f = s.frame(caller, x, u64::from(inp.u32()));
                    g::GnttabCopyPtr::gmfn(f.0, off)
                }
            };
            let source = side(s, input, flags & 1 != 0);
            let dest = side(s, input, flags & 2 != 0);
            let mut c = g::GnttabCopy {
                source,
                dest,
                len: input.u16() % 4200,
                flags,
                ..Default::default()
            };
            let r =
                s.w.call(caller, g::GNTTABOP_COPY, std::slice::from_mut(&mut c));
            assert_eq!(r, 0);
        }
        10 => {
            // Offer a transfer slot.
            let recv = s.dom(a);
            let gref = u32::from(input.u16() % 600);
            let sender = s.domid(b);
            let pfn = u64::from(input.u16());
            s.w.offer_transfer(recv, GrantRef(gref), sender, pfn);
        }
        11 => {
            // Transfer.
            let sender = s.dom(a);
            let fb = input.byte();
            let frame = s.frame(sender, fb, u64::from(input.u32()));
            let mut t = g::GnttabTransfer {
                mfn: frame.0,
                domid: s.domid(b).0,
                ref_: u32::from(input.u16() % 600),
                ..Default::default()
            };
            let r =
                s.w.call(sender, g::GNTTABOP_TRANSFER, std::slice::from_mut(&mut t));
            assert_eq!(r, 0);
        }
        12 => {
            // Table operations.
            let d = s.dom(a);
            match b % 5 {
                0 => {
                    let list = s.w.scratch_va(d) + 2048;
                    let mut st = g::GnttabSetupTable {
                        dom: s.domid(input.byte()).0,
                        nr_frames: u32::from(input.byte() % 40),
                        frame_list: list,
                        ..Default::default()
                    };
                    let _ =
                        s.w.call(d, g::GNTTABOP_SETUP_TABLE, std::slice::from_mut(&mut st));
                }
                1 => {
                    let mut q = g::GnttabQuerySize {
                        dom: s.domid(input.byte()).0,
                        ..Default::default()
                    };
                    let _ =
                        s.w.call(d, g::GNTTABOP_QUERY_SIZE, std::slice::from_mut(&mut q));
                }
                2 => {
                    let mut sw = g::GnttabSwapGrantRef {
                        ref_a: u32::from(input.u16() % 600),
                        ref_b: u32::from(input.u16() % 600),
                        ..Default::default()
                    };
                    let _ =
                        s.w.call(d, g::GNTTABOP_SWAP_GRANT_REF, std::slice::from_mut(&mut sw));
                }
                3 => {
                    let mut v = g::GnttabSetVersion {
                        version: u32::from(input.byte() % 4),
                    };
                    let _ =
                        s.w.call(d, g::GNTTABOP_SET_VERSION, std::slice::from_mut(&mut v));
                }
                _ => {
                    let mut v = g::GnttabGetVersion {
                        dom: s.domid(input.byte()).0,
                        ..Default::default()
                    };
                    let _ =
                        s.w.call(d, g::GNTTABOP_GET_VERSION, std::slice::from_mut(&mut v));
                }
            }
        }
        13 => {
            // Runtime backend mappings.
            let granter = s.domid(a);
            let gref = u32::from(input.u16() % 600);
            match b % 4 {
                0 => {
                    if let Ok(m) = s.w.hv.map_grant_ro(granter, GrantRef(gref)) {
                        let mut buf = [0u8; 16];
                        let _ = m.read(&s.w.hv.mem, usize::from(input.u16()) % 4200, &mut buf);
                        s.runtime.push(RtMap::Ro(m));
                    }
                }
                1 => {
                    if let Ok(m) = s.w.hv.map_grant_rw(granter, GrantRef(gref)) {
                        let _ = m.write(&s.w.hv.mem, usize::from(input.u16()) % 4200, &[0xa5; 16]);
                        s.runtime.push(RtMap::Rw(m));
                    }
                }
                2 => {
                    if !s.runtime.is_empty() {
                        // Top bit: drop (deferred release) instead of unmap.
                        let k = input.byte();
                        let i = usize::from(k) % s.runtime.len();
                        match s.runtime.swap_remove(i) {
                            RtMap::Ro(m) if k & 0x80 == 0 => s.w.hv.unmap_grant(m),
                            RtMap::Rw(m) if k & 0x80 == 0 => s.w.hv.unmap_grant(m),
                            RtMap::Ro(m) => drop(m),
                            RtMap::Rw(m) => drop(m),
                        }
                    }
                }
                _ => {
                    let mut buf = [0u8; 64];
                    let off = input.u16() % 4200;
                    let _ =
                        s.w.hv
                            .copy_from_grant(granter, GrantRef(gref), off, &mut buf);
                    let _ = s.w.hv.copy_to_grant(granter, GrantRef(gref), off, &buf);
                }
            }
        }
        14 => {
            // Raw argument bytes with a lying count.
            let d = s.dom(a);
            let cmd = u32::from(b % 14);
            let count =
                u64::from(input.u16() % 2100) | if input.byte() == 0xff { 1 << 31 } else { 0 };
            let mut raw = [0u8; 256];
            for x in &mut raw {
                *x = input.byte();
            }
            let _ = s.w.call_raw(d, cmd, &mut raw, count);
        }
        _ => {
            // A domain ends (rarely: only when asked twice in a row).
            if a == b && a.is_multiple_of(8) {
                let d = s.dom(a / 8);
                if let Some(dd) = s.w.hv.domains.get_mut(&d) {
                    dd.shutdown = Some(0);
                }
                super::reap(&mut s.w.hv);
            }
        }
    }
}
