//! A small world of real domains for grant-table tests, the proptest model,
//! the `gnttab_ops` fuzz target and the benchmark. Not a stable API.
//!
//! Each domain is built by the real domain builder from a tiny kernel image
//! and never runs; tests act as its kernel by writing its grant entries
//! (the guest side of the protocol) and issuing `grant_table_op` through the
//! real decoder with arguments placed in its own memory. Per domain:
//!
//! * a *scratch* area (the last [`SCRATCH_PAGES`] pages of the bootstrap
//!   mapping) holds hypercall arguments;
//! * [`SLOTS`] *slot* addresses below it are mapped pages whose L1 entries a
//!   host grant mapping may replace;
//! * *spare* frames are the domain's pages beyond the bootstrap mapping:
//!   owned, unmapped, untyped — free to grant or transfer.

use guest_abi::abi::GrantRef;
use std::collections::BTreeMap;

use guest_abi::abi::gnttab::{GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP, GNTMAP_READONLY};
use guest_abi::abi::gnttab::{
    GTF_ACCEPT_TRANSFER, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING, GrantEntryV1,
};
use hv_cpu::mem::{MachineAddr, Mfn, PAGE_SIZE};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::Pins;
use crate::domain::image::{GuestImage, Segment};
use crate::guestmem;
use crate::hv::{CreateError, DomainConfig, Hypervisor};
use crate::hypercall::Ret;
use crate::hypercall::gnttab::grant_table_op;
use crate::machine::{DomId, Owner, PageType};
use crate::mm::pte;

/// Kernel base of the test image. 1 MiB below a 4 MiB boundary, so the
/// bootstrap mapping (which the builder ends on a 4 MiB boundary) is only
/// 256 pages: small worlds keep the fuzz target and the models fast.
pub const VIRT_BASE: u64 = 0x30_0000;
/// Pages the bootstrap mapping of [`tiny_image`] takes; a domain needs at
/// least this many, the rest are spare.
pub const BOOTSTRAP_PAGES: u64 = 256;
/// The usual test domain size: the bootstrap mapping plus 76 spare pages.
pub const TEST_PAGES: u64 = BOOTSTRAP_PAGES + 76;
/// Pages of hypercall-argument scratch space per domain.
pub const SCRATCH_PAGES: u64 = 16;
/// Host-mapping slot addresses per domain.
pub const SLOTS: u64 = 16;

/// A tiny PV kernel image (never run).
#[must_use]
pub fn tiny_image() -> GuestImage {
    GuestImage {
        entry: VIRT_BASE,
        virt_base: VIRT_BASE,
        paddr_offset: VIRT_BASE,
        hypercall_page: Some(VIRT_BASE + 0x1000),
        segments: vec![Segment {
            vaddr: VIRT_BASE,
            memsz: 0x3000,
            data: vec![0x90; 0x1000],
        }],
        virt_kstart: VIRT_BASE,
        virt_kend: VIRT_BASE + 0x3000,
        guest_os: "gnttab-test".into(),
        xen_version: "xen-3.0".into(),
        loader: "generic".into(),
        features: String::new(),
        suspend_cancel: false,
        mod_start_pfn: false,
    }
}

/// Domains, a hypervisor, and the guest side of the grant protocol.
#[derive(Debug)]
pub struct World {
    /// The hypervisor.
    pub hv: Hypervisor,
    /// Domain ids, in creation order.
    pub doms: Vec<DomId>,
    /// Per domain: PFNs mapped by the bootstrap tables.
    mapped: BTreeMap<DomId, u64>,
}

impl World {
    /// `n` domains of `pages` pages each. The test image's bootstrap mapping
    /// takes [`BOOTSTRAP_PAGES`] (it ends on a 4 MiB boundary); the rest are
    /// spare.
    ///
    /// # Errors
    /// Machine memory or domain building failed.
    pub fn new(n: usize, pages: u64) -> Result<Self, CreateError> {
        let mem = pages * PAGE_SIZE;
        let frames = Hypervisor::frames_for(&vec![mem; n]);
        let mut hv = Hypervisor::new(frames, Box::new(std::io::sink()))?;
        let image = tiny_image();
        let mut doms = Vec::new();
        let mut mapped = BTreeMap::new();
        for i in 0..n {
            let id = hv.create_domain(
                &image,
                &DomainConfig {
                    name: format!("d{i}"),
                    memory: mem,
                    vcpus: 1,
                    cmdline: String::new(),
                },
            )?;
            let cr3 = hv.domains.get(&id).map_or(0, |d| d.vcpus[0].cpu.cr3);
            let mut m = 0;
            while guestmem::translate(&hv.mem, cr3, VIRT_BASE + m * PAGE_SIZE, false).is_ok() {
                m += 1;
            }
            doms.push(id);
            mapped.insert(id, m);
        }
        Ok(Self { hv, doms, mapped })
    }

    fn mapped(&self, dom: DomId) -> u64 {
        self.mapped.get(&dom).copied().unwrap_or(0)
    }

    /// vCPU 0's root table.
    #[must_use]
    pub fn cr3(&self, dom: DomId) -> u64 {
        self.hv
            .domains
            .get(&dom)
            .and_then(|d| d.vcpus.first())
            .map_or(0, |v| v.cpu.cr3)
    }

    /// Start of the scratch area.
    #[must_use]
    pub fn scratch_va(&self, dom: DomId) -> u64 {
        VIRT_BASE + (self.mapped(dom) - SCRATCH_PAGES) * PAGE_SIZE
    }

    /// Virtual address of host-mapping slot `i` (< [`SLOTS`]).
    #[must_use]
    pub fn slot_va(&self, dom: DomId, i: u64) -> u64 {
        VIRT_BASE + (self.mapped(dom) - SCRATCH_PAGES - SLOTS + i % SLOTS) * PAGE_SIZE
    }

    /// Machine address of the L1 entry for slot `i` (for `GNTMAP_contains_pte`).
    #[must_use]
    pub fn slot_pte(&self, dom: DomId, i: u64) -> u64 {
        let va = self.slot_va(dom, i);
        let mut table = self.cr3(dom) & pte::ADDR_MASK;
        for shift in [39u32, 30, 21] {
            let e = self
                .hv
                .mem
                .read_u64(MachineAddr(table + ((va >> shift) & 511) * 8))
                .unwrap_or(0);
            table = e & pte::ADDR_MASK;
        }
        table + ((va >> 12) & 511) * 8
    }

    /// PFNs beyond the bootstrap mapping, with their frames.
    #[must_use]
    pub fn spare_pfns(&self, dom: DomId) -> Vec<(u64, Mfn)> {
        let Some(d) = self.hv.domains.get(&dom) else {
            return Vec::new();
        };
        d.p2m
            .iter()
            .enumerate()
            .skip(usize::try_from(self.mapped(dom)).unwrap_or(usize::MAX))
            .map(|(p, &m)| (p as u64, m))
            .collect()
    }

    /// Frames beyond the bootstrap mapping.
    #[must_use]
    pub fn spare_frames(&self, dom: DomId) -> Vec<Mfn> {
        self.spare_pfns(dom).into_iter().map(|(_, m)| m).collect()
    }

    /// Machine address of `gref` in `dom`'s table.
    #[must_use]
    pub fn entry_addr(&self, dom: DomId, gref: GrantRef) -> Option<MachineAddr> {
        self.hv.gnttab.table(dom)?.entry_addr(gref)
    }

    /// Read an entry.
    #[must_use]
    pub fn entry(&self, dom: DomId, gref: GrantRef) -> GrantEntryV1 {
        let raw = self
            .entry_addr(dom, gref)
            .and_then(|a| self.hv.mem.read_u64(a).ok())
            .unwrap_or(0);
        GrantEntryV1::read_from_bytes(&raw.to_le_bytes()).unwrap_or_default()
    }

    /// Guest side: write an entry (domid and frame, then flags).
    pub fn write_entry(&self, dom: DomId, gref: GrantRef, e: GrantEntryV1) {
        if let Some(at) = self.entry_addr(dom, gref) {
            let _ = self.hv.mem.write_u32(MachineAddr(at.0 + 4), e.frame);
            let _ = self.hv.mem.write_u16(MachineAddr(at.0 + 2), e.domid);
            let _ = self.hv.mem.write_u16(at, e.flags);
        }
    }

    /// Guest side: grant `frame` to `grantee` through `gref`.
    pub fn grant(
        &self,
        granter: DomId,
        gref: GrantRef,
        grantee: DomId,
        frame: Mfn,
        readonly: bool,
    ) {
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.write_entry(
            granter,
            gref,
            GrantEntryV1 {
                flags,
                domid: grantee.0,
                frame: u32::try_from(frame.0).unwrap_or(u32::MAX),
            },
        );
    }

    /// Guest side: offer PFN slot `pfn` for a transfer from `sender`.
    pub fn offer_transfer(&self, receiver: DomId, gref: GrantRef, sender: DomId, pfn: u64) {
        self.write_entry(
            receiver,
            gref,
            GrantEntryV1 {
                flags: GTF_ACCEPT_TRANSFER,
                domid: sender.0,
                frame: u32::try_from(pfn).unwrap_or(u32::MAX),
            },
        );
    }

    /// Guest side: revoke `gref` by compare-exchange of the flags to 0 unless
    /// it is in use. Returns whether it was revoked.
    pub fn end_access(&self, dom: DomId, gref: GrantRef) -> bool {
        let Some(at) = self.entry_addr(dom, gref) else {
            return false;
        };
        let Ok(cur) = self.hv.mem.read_u32(at) else {
            return false;
        };
        let flags = cur & 0xffff;
        if flags & u32::from(GTF_READING | GTF_WRITING) != 0 {
            return false;
        }
        self.hv.mem.cmpxchg_u32(at, cur, cur & 0xffff_0000) == Ok(cur)
    }

    /// Issue `grant_table_op(cmd, ops, ops.len())` as `dom`'s kernel, with
    /// `ops` in its scratch area, following continuations; `ops` gets the
    /// results. Returns the hypercall's value.
    ///
    /// # Panics
    /// If `ops` does not fit the scratch area (a test bug).
    pub fn call<T: FromBytes + IntoBytes + Immutable>(
        &mut self,
        dom: DomId,
        cmd: u32,
        ops: &mut [T],
    ) -> i64 {
        let n = u64::try_from(ops.len()).unwrap_or(u64::MAX);
        self.call_raw(dom, cmd, ops, n)
    }

    /// [`Self::call`] with an explicit `count` (possibly lying).
    ///
    /// # Panics
    /// If `ops` does not fit the scratch area (a test bug).
    pub fn call_raw<T: FromBytes + IntoBytes + Immutable>(
        &mut self,
        dom: DomId,
        cmd: u32,
        ops: &mut [T],
        count: u64,
    ) -> i64 {
        let va = self.scratch_va(dom);
        let bytes = ops.as_bytes();
        assert!(
            bytes.len() as u64 <= SCRATCH_PAGES * PAGE_SIZE,
            "arguments exceed the scratch area"
        );
        let cr3 = self.cr3(dom);
        if guestmem::copy_to_guest(&self.hv.mem, &self.hv.ft, cr3, va, bytes).is_err() {
            return -14;
        }
        let mut a = [u64::from(cmd), va, count, 0, 0];
        let mut r = None;
        for _ in 0..1 << 16 {
            match grant_table_op(&mut self.hv, dom, 0, a, false) {
                Ret::Preempted(next) => a = next,
                Ret::Val(x) | Ret::ValStop(x) => {
                    r = Some(x);
                    break;
                }
                Ret::Done | Ret::Stop => break,
            }
        }
        let mut back = vec![0u8; bytes.len()];
        if guestmem::copy_from_guest(&self.hv.mem, cr3, va, &mut back).is_ok() {
            ops.as_mut_bytes().copy_from_slice(&back);
        }
        r.unwrap_or(-14)
    }

    /// Check the grant and frame-table invariants; `Err` names the first
    /// broken one. With `guest_honest`, also that `GTF_reading` is set iff
    /// an entry is pinned and `GTF_writing` iff it has a writable pin (a
    /// hostile guest may scribble over its own flags).
    ///
    /// # Errors
    /// The broken invariant.
    pub fn check_invariants(&self, guest_honest: bool) -> Result<(), String> {
        check_invariants(&self.hv, guest_honest)
    }
}

/// See [`World::check_invariants`].
///
/// # Errors
/// The broken invariant.
pub fn check_invariants(hv: &Hypervisor, guest_honest: bool) -> Result<(), String> {
    // 1. Pins equal outstanding mappings, by kind.
    let mut expect: BTreeMap<(DomId, u32), (Pins, DomId)> = BTreeMap::new();
    let mut dev_refs: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    let tables: Vec<DomId> = hv.gnttab.tables.keys().copied().collect();
    for &mapper in &tables {
        let Some(t) = hv.gnttab.table(mapper) else {
            continue;
        };
        for (h, m) in t.mappings() {
            let ro = m.flags & GNTMAP_READONLY != 0;
            let incr = Pins::incr(
                m.flags & GNTMAP_HOST_MAP != 0,
                m.flags & GNTMAP_DEVICE_MAP != 0,
                ro,
            );
            let e = expect
                .entry((m.granter, m.gref.0))
                .or_insert((Pins::default(), mapper));
            if e.1 != mapper {
                return Err(format!(
                    "grant {}:{} mapped by both {} and {mapper}",
                    m.granter, m.gref, e.1
                ));
            }
            e.0 = e.0.add(incr).ok_or("pin overflow")?;
            let act = hv
                .gnttab
                .table(m.granter)
                .and_then(|g| g.active(m.gref))
                .ok_or_else(|| format!("handle {h} of {mapper}: grant not active"))?;
            if act.frame != m.frame || act.grantee != mapper {
                return Err(format!("handle {h} of {mapper} disagrees with {act:?}"));
            }
            if m.flags & GNTMAP_DEVICE_MAP != 0 {
                let d = dev_refs.entry(m.frame.0).or_default();
                d.0 += 1;
                d.1 += u32::from(!ro);
            }
        }
    }
    for &granter in &tables {
        let Some(t) = hv.gnttab.table(granter) else {
            continue;
        };
        for (gref, a) in t.actives() {
            let want = expect
                .get(&(granter, gref))
                .map(|e| e.0)
                .unwrap_or_default();
            if a.pins != want {
                return Err(format!(
                    "grant {granter}:{gref} pins {:?}, mappings say {want:?}",
                    a.pins
                ));
            }
            if !a.pins.any() {
                return Err(format!("grant {granter}:{gref} active with no pins"));
            }
        }
        for (&(g, r), _) in expect.iter().filter(|((g, _), _)| *g == granter) {
            if t.active(GrantRef(r)).is_none() {
                return Err(format!("grant {g}:{r} mapped but not active"));
            }
        }
        // 2. Status flags follow the pins.
        if guest_honest && !t.ended() {
            for gref in 0..t.nr_entries() {
                let Some(at) = t.entry_addr(GrantRef(gref)) else {
                    continue;
                };
                let flags = u16::try_from(hv.mem.read_u32(at).unwrap_or(0) & 0xffff).unwrap_or(0);
                if flags & 3 != GTF_PERMIT_ACCESS {
                    continue;
                }
                let pins = t.active(GrantRef(gref)).map(|a| a.pins).unwrap_or_default();
                let reading = flags & GTF_READING != 0;
                let writing = flags & GTF_WRITING != 0;
                if reading != pins.any() || writing != pins.writable() {
                    return Err(format!(
                        "grant {granter}:{gref} flags {flags:#x} but pins {pins:?}"
                    ));
                }
            }
        }
    }
    // 3. Every data frame's references are its allocation, the L1 entries
    //    mapping it and the device mappings holding it. Counters are indexed
    //    by frame number and each L1 table is read in one copy: this runs
    //    after every fuzz step.
    let frames = usize::try_from(hv.ft.frames()).map_err(|e| e.to_string())?;
    let mut l1_refs = vec![(0u32, 0u32); frames];
    let mut page = [0u8; 4096];
    for (mfn, p) in hv.ft.iter() {
        if p.ty != PageType::L1 || p.type_count == 0 || !matches!(p.owner, Owner::Dom(_)) {
            continue;
        }
        hv.mem
            .read(mfn.addr(), &mut page)
            .map_err(|e| format!("read L1 {:#x}: {e}", mfn.0))?;
        crate::mm::fuzzing::for_each_present(&page, |_, e| {
            let t = usize::try_from(pte::mfn(e)).unwrap_or(usize::MAX);
            if let Some(r) = l1_refs.get_mut(t) {
                r.0 += 1;
                r.1 += u32::from(e & pte::RW != 0);
            }
            Ok(())
        })?;
    }
    for (mfn, p) in hv.ft.iter() {
        // 4. Free frames are free.
        if p.owner == Owner::Free && (p.count != 0 || p.type_count != 0) {
            return Err(format!("free frame {:#x} has references", mfn.0));
        }
        if !matches!(p.owner, Owner::Dom(_)) || !matches!(p.ty, PageType::None | PageType::Writable)
        {
            continue;
        }
        if p.type_count > 0 && p.ty == PageType::None {
            return Err(format!("frame {:#x} typed None with refs", mfn.0));
        }
        let i = usize::try_from(mfn.0).unwrap_or(usize::MAX);
        let (l1, l1w) = l1_refs.get(i).copied().unwrap_or_default();
        let (dv, dvw) = dev_refs.get(&mfn.0).copied().unwrap_or_default();
        let want = u32::from(p.allocated) + l1 + dv;
        let want_ty = l1w + dvw;
        let ty_count = if p.ty == PageType::Writable {
            p.type_count
        } else {
            0
        };
        if p.count != want || ty_count != want_ty {
            return Err(format!(
                "frame {:#x} ({:?}) count {} type {} but allocation+L1+device = {want}, writable refs = {want_ty}",
                mfn.0, p.owner, p.count, p.type_count
            ));
        }
    }
    Ok(())
}
