//! Fuzz body for the page-type machine, shared by
//! `fuzz/fuzz_targets/mm_ops.rs` and the corpus-replay test
//! `tests/mm_fuzz_corpus.rs`. Not a stable API.
//!
//! The input is a sequence of the operations guests reach through
//! `mmu_update`, `mmuext_op` and `update_va_mapping` — entry updates of any
//! frame by either of two domains (any slot, any bits, misaligned pointers,
//! frames outside RAM), pins and unpins at every level, base-pointer
//! references taken and dropped, writable references with stores into the
//! frame, and updates reached by walking a virtual address from a root —
//! applied to a small machine. After every operation the frame table is
//! recomputed from the tables in memory and Xen's invariants are checked
//! ([`check_invariants`]); a violated invariant or a panic is a finding.

use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};

use super::{Mm, MmLayout, XEN_L4_SLOTS, pte};
use crate::fuzz_input::Input;
use crate::machine::{DomId, FrameTable, MAX_REFS, Owner, PageType};

/// Frames in the fuzzed machine.
pub const FRAMES: u64 = 32;
/// The two domains and their frames: `DOM` owns 0..20, `OTHER` 20..26,
/// the hypervisor 26..28, the rest are free.
pub const DOM: DomId = DomId(1);
/// The second domain.
pub const OTHER: DomId = DomId(2);
const DOM_END: u64 = 20;
const OTHER_END: u64 = 26;
const XEN_END: u64 = 28;
/// Operations per input (inputs are cut there).
pub const MAX_OPS: usize = 400;

/// The page-table vocabulary of the fuzz input.
trait MmInput {
    fn frame(&mut self) -> u64;
    fn slot(&mut self) -> usize;
    fn dom(&mut self) -> DomId;
    fn flags(&mut self) -> u64;
}

impl MmInput for Input<'_> {
    /// A frame number: mostly inside the machine, sometimes just outside.
    fn frame(&mut self) -> u64 {
        let b = self.byte();
        if b >= 250 {
            FRAMES + u64::from(b - 250) * 1000
        } else {
            u64::from(b) % FRAMES
        }
    }

    fn slot(&mut self) -> usize {
        const SLOTS: [usize; 8] = [0, 1, 2, 255, 256, 271, 272, 511];
        let b = self.byte();
        if b < 128 {
            SLOTS[usize::from(b % 8)]
        } else {
            usize::from(self.u16() % 512)
        }
    }

    fn dom(&mut self) -> DomId {
        if self.byte().is_multiple_of(5) {
            OTHER
        } else {
            DOM
        }
    }

    /// PTE flag bits: the architectural low bits, NX, an available bit and
    /// Xen's guest-kernel marker.
    fn flags(&mut self) -> u64 {
        let low = u64::from(self.u16()) & 0x1ff;
        let high = u64::from(self.byte());
        let mut f = low;
        if high & 1 != 0 {
            f |= pte::NX;
        }
        if high & 2 != 0 {
            f |= 1 << 9;
        }
        if high & 4 != 0 {
            f |= pte::GUEST_KERNEL;
        }
        f
    }
}

/// The fuzzed machine: memory, frame table and the references the harness
/// itself holds (base pointers, like a vCPU's `cr3`).
pub struct World {
    /// Machine memory.
    pub mem: MachineMemory,
    /// Frame table.
    pub ft: FrameTable,
    /// Frames on which the harness holds a general + L4 type reference.
    pub held: Vec<Mfn>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl World {
    /// A fresh machine with the frame ownership described at [`FRAMES`].
    ///
    /// # Panics
    /// The host refuses 32 frames of memory.
    #[must_use]
    pub fn new() -> Self {
        Self::with_memory(MachineMemory::new(FRAMES).expect("map fuzz machine memory"))
    }

    /// A fresh machine on `mem` (of [`FRAMES`] frames), which is zeroed
    /// first: reusing one mapping across fuzz inputs saves the page faults
    /// of a new one, and zeroing keeps each input independent of the last.
    fn with_memory(mem: MachineMemory) -> Self {
        let _ = mem.fill(MachineAddr(0), 0, mem.len());
        let mut ft = FrameTable::new(FRAMES);
        for f in 0..XEN_END {
            let owner = match f {
                f if f < DOM_END => Owner::Dom(DOM),
                f if f < OTHER_END => Owner::Dom(OTHER),
                _ => Owner::Xen,
            };
            ft.alloc_at(&mem, Mfn(f), owner)
                .expect("allocate fuzz frame");
        }
        Self {
            mem,
            ft,
            held: Vec::new(),
        }
    }

    fn mm(&mut self) -> Mm<'_> {
        Mm {
            ft: &mut self.ft,
            mem: &self.mem,
            layout: MmLayout::default(),
        }
    }

    fn entry(&self, table: u64, i: usize) -> u64 {
        self.mem
            .read_u64(MachineAddr(table * 4096 + (i as u64) * 8))
            .unwrap_or(0)
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// Recompute every frame's counts from the tables in memory (plus the
/// allocation, pin and `held` references) and check Xen's invariants: the
/// counts match; no frame is both an in-use page table and writable-mapped;
/// every frame a validated table maps is owned by the table's owner; no
/// validated entry has forbidden bits; L1 entries carry US; counts stay
/// below [`MAX_REFS`]; tables in use are validated.
///
/// # Errors
/// A description of the first invariant that does not hold.
pub fn check_invariants(ft: &FrameTable, mem: &MachineMemory, held: &[Mfn]) -> Result<(), String> {
    let n = usize::try_from(ft.frames()).map_err(|e| e.to_string())?;
    let mut exp_type = vec![0u32; n];
    let mut exp_count = vec![0u32; n];
    let mut writable_mapped = vec![false; n];
    let idx = |m: u64| usize::try_from(m).map_err(|e| e.to_string());
    for (mfn, p) in ft.iter() {
        let i = idx(mfn.0)?;
        if p.allocated {
            exp_count[i] += 1;
        }
        if p.pinned {
            exp_count[i] += 1;
            exp_type[i] += 1;
        }
    }
    for m in held {
        let i = idx(m.0)?;
        exp_count[i] += 1;
        exp_type[i] += 1;
    }
    for (mfn, p) in ft.iter() {
        let Some(level) = p.ty.level() else { continue };
        if p.type_count == 0 || !p.validated {
            continue;
        }
        let Owner::Dom(dom) = p.owner else {
            return Err(format!(
                "validated table {:#x} not owned by a domain",
                mfn.0
            ));
        };
        // One copy per table: this runs after every fuzz step.
        let mut page = [0u8; 4096];
        mem.read(MachineAddr(mfn.0 * 4096), &mut page)
            .map_err(|e| e.to_string())?;
        for_each_present(&page, |i, e| {
            if level == 4 && XEN_L4_SLOTS.contains(&i) {
                return Ok(());
            }
            let t = pte::mfn(e);
            if t == mfn.0 && level > 1 {
                if e & pte::RW != 0 {
                    return Err(format!("writable self-map in table {:#x}", mfn.0));
                }
                return Ok(());
            }
            let ti = idx(t)?;
            if ti >= n {
                return Err(format!("entry {e:#x} of {:#x} points outside RAM", mfn.0));
            }
            let target = ft.get(Mfn(t)).ok_or("target frame missing")?;
            if target.owner != Owner::Dom(dom) {
                return Err(format!(
                    "table {:#x} of domain {dom} maps frame {t:#x} owned by {:?}",
                    mfn.0, target.owner
                ));
            }
            exp_count[ti] += 1;
            if level == 1 {
                if e & pte::L1_DISALLOW != 0 {
                    return Err(format!("L1 entry {e:#x} has forbidden bits"));
                }
                if e & pte::US == 0 {
                    return Err(format!("L1 entry {e:#x} lacks US"));
                }
                if e & pte::RW != 0 {
                    exp_type[ti] += 1;
                    writable_mapped[ti] = true;
                }
            } else {
                if e & pte::LN_DISALLOW != 0 {
                    return Err(format!("level-{level} entry {e:#x} has forbidden bits"));
                }
                exp_type[ti] += 1;
                let child = PageType::table(level - 1).ok_or("bad level")?;
                let ok = target.ty == child || (target.ty == p.ty && e & pte::RW == 0);
                if !ok {
                    return Err(format!(
                        "level-{level} entry of {:#x} to frame {t:#x} of type {:?}",
                        mfn.0, target.ty
                    ));
                }
            }
            Ok(())
        })?;
    }
    for (mfn, p) in ft.iter() {
        let i = idx(mfn.0)?;
        if p.count > MAX_REFS || p.type_count > MAX_REFS {
            return Err(format!("frame {:#x} counts past the cap", mfn.0));
        }
        if p.count != exp_count[i] {
            return Err(format!(
                "general count of frame {:#x} is {}, expected {}",
                mfn.0, p.count, exp_count[i]
            ));
        }
        if p.type_count != exp_type[i] {
            return Err(format!(
                "type count of frame {:#x} ({:?}) is {}, expected {}",
                mfn.0, p.ty, p.type_count, exp_type[i]
            ));
        }
        let is_table = p.type_count > 0 && p.ty.level().is_some();
        if is_table && writable_mapped[i] {
            return Err(format!(
                "frame {:#x} is a page table and writable-mapped",
                mfn.0
            ));
        }
        if is_table && !p.validated {
            return Err(format!("table {:#x} in use but not validated", mfn.0));
        }
    }
    Ok(())
}

/// Call `f` with (slot, entry) for each present entry of a page-table page
/// read into `page`, stopping at its first error. Entries are tested eight
/// at a time, so the mostly empty tables of the fuzz worlds cost few
/// (coverage-instrumented) compares: the invariant checks that use this
/// run after every fuzz step.
///
/// # Errors
/// The first error `f` returns.
pub fn for_each_present(
    page: &[u8; 4096],
    mut f: impl FnMut(usize, u64) -> Result<(), String>,
) -> Result<(), String> {
    let mut words = [0u64; 8];
    for (block, bytes) in page.chunks_exact(64).enumerate() {
        for (w, raw) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(raw.try_into().unwrap_or_default());
        }
        if words.iter().fold(0, |acc, w| acc | w) & pte::P == 0 {
            continue;
        }
        for (i, &e) in words.iter().enumerate() {
            if e & pte::P != 0 {
                f(block * 8 + i, e)?;
            }
        }
    }
    Ok(())
}

/// Follow `va` from the root `l4` through present entries; the machine
/// address of its L1 entry if the walk ends in an in-use L1 owned by `dom`
/// (what `update_va_mapping` updates).
fn l1e_of(w: &World, l4: Mfn, va: u64) -> Option<u64> {
    let mut table = l4.0;
    for shift in [39u32, 30, 21] {
        let i = usize::try_from((va >> shift) & 511).ok()?;
        let e = w.entry(table, i);
        if e & pte::P == 0 {
            return None;
        }
        table = pte::mfn(e);
    }
    let p = w.ft.get(Mfn(table))?;
    (p.ty == PageType::L1 && p.type_count > 0).then_some(table * 4096 + ((va >> 12) & 511) * 8)
}

/// Apply one operation; rule checks on its result.
fn step(w: &mut World, input: &mut Input<'_>) -> Result<(), String> {
    match input.byte() % 8 {
        0 => {
            // mmu_update (MMU_NORMAL_PT_UPDATE / PRESERVE_AD).
            let table = input.frame();
            let slot = input.slot();
            let target = input.frame();
            let flags = input.flags();
            let dom = input.dom();
            // The hypervisor only ever passes the caller as the foreign
            // domain (no domain has privileges over another's memory); a
            // second byte keeps the input format stable.
            let _ = input.byte();
            let fd = dom;
            let preserve_ad = input.byte() & 1 != 0;
            let misalign = u64::from(input.byte() & 7);
            let val = (target << 12) | flags;
            let before = w.ft.get(Mfn(table)).copied();
            let target_info = w.ft.get(Mfn(target)).copied();
            let ptr = table * 4096 + (slot as u64) * 8 + misalign;
            let r = w.mm().update_entry(ptr, val, dom, fd, preserve_ad);
            let level = before.and_then(|b| if b.type_count > 0 { b.ty.level() } else { None });
            if before.is_none_or(|b| b.owner != Owner::Dom(dom)) && r.is_ok() {
                return Err(format!(
                    "domain {dom} updated frame {table:#x} it does not own"
                ));
            }
            if val & pte::P != 0 && level == Some(1) && r.is_ok() {
                let Some(t) = target_info else {
                    return Err(format!("mapped a frame outside RAM: {val:#x}"));
                };
                if t.owner != Owner::Dom(fd) {
                    return Err(format!("mapped frame {target:#x} not owned by {fd}"));
                }
                if flags & pte::RW != 0 && t.type_count > 0 && t.ty != PageType::Writable {
                    return Err(format!("writable mapping of {target:#x} typed {:?}", t.ty));
                }
                if flags & pte::L1_DISALLOW != 0 {
                    return Err(format!("forbidden L1 bits accepted: {val:#x}"));
                }
            }
            if level.is_some_and(|l| l >= 2)
                && val & pte::P != 0
                && flags & pte::LN_DISALLOW != 0
                && r.is_ok()
            {
                return Err(format!(
                    "forbidden bits accepted at level {level:?}: {val:#x}"
                ));
            }
            if level == Some(4) && XEN_L4_SLOTS.contains(&slot) && r.is_ok() {
                return Err(format!("reserved L4 slot {slot} updated"));
            }
            if let Err(e) = &r
                && e.errno().raw() <= 0
            {
                return Err(format!("error {e:?} has no errno"));
            }
        }
        1 => {
            let mfn = Mfn(input.frame());
            let level = input.byte() % 4 + 1;
            let dom = input.dom();
            let before = w.ft.get(mfn).copied();
            let r = w.mm().pin(mfn, level, dom);
            if r.is_ok() && before.is_none_or(|b| b.owner != Owner::Dom(dom) || b.pinned) {
                return Err(format!("pinned frame {:#x} (before: {before:?})", mfn.0));
            }
        }
        2 => {
            let mfn = Mfn(input.frame());
            let dom = input.dom();
            let before = w.ft.get(mfn).copied();
            let r = w.mm().unpin(mfn, dom);
            if r.is_ok() && before.is_none_or(|b| !b.pinned || b.owner != Owner::Dom(dom)) {
                return Err(format!("unpinned frame {:#x} (before: {before:?})", mfn.0));
            }
        }
        3 => {
            // MMUEXT_NEW_BASEPTR: a root reference held by the "vCPU".
            let mfn = Mfn(input.frame());
            if w.held.len() < 8 && w.mm().get_page_and_type(mfn, PageType::L4, DOM).is_ok() {
                w.held.push(mfn);
            }
        }
        4 => {
            if !w.held.is_empty() {
                let i = usize::from(input.byte()) % w.held.len();
                let mfn = w.held.swap_remove(i);
                w.mm().put_page_and_type(mfn);
            }
        }
        5 => {
            // A store through a writable mapping (or MMUEXT_CLEAR_PAGE):
            // only into a frame that can be typed writable.
            let mfn = Mfn(input.frame());
            let slot = input.slot();
            let val = (input.frame() << 12) | input.flags();
            let before = w.ft.get(mfn).copied();
            if w.mm()
                .get_page_and_type(mfn, PageType::Writable, DOM)
                .is_ok()
            {
                if before.is_some_and(|b| b.type_count > 0 && b.ty != PageType::Writable) {
                    return Err(format!("frame {:#x} typed writable while a table", mfn.0));
                }
                let _ = w
                    .mem
                    .write_u64(MachineAddr(mfn.0 * 4096 + (slot as u64) * 8), val);
                w.mm().put_page_and_type(mfn);
            }
        }
        6 => {
            // update_va_mapping: walk a VA from a held root.
            let va = u64::from(input.u32()) << 12 | u64::from(input.u16()) << 44;
            let target = input.frame();
            let flags = input.flags();
            let root = match w.held.first() {
                Some(&r) => r,
                None => Mfn(input.frame()),
            };
            let valid_root =
                w.ft.get(root)
                    .is_some_and(|p| p.ty == PageType::L4 && p.type_count > 0 && p.validated);
            if valid_root && let Some(at) = l1e_of(w, root, va) {
                let r = w
                    .mm()
                    .update_entry(at, (target << 12) | flags, DOM, DOM, false);
                if r.is_ok()
                    && flags & pte::P != 0
                    && w.ft
                        .get(Mfn(target))
                        .is_none_or(|t| t.owner != Owner::Dom(DOM))
                {
                    return Err(format!(
                        "update_va_mapping mapped foreign frame {target:#x}"
                    ));
                }
            }
        }
        _ => {
            // Out-of-range pin levels are refused, never a panic.
            let mfn = Mfn(input.frame());
            let level = if input.byte() & 1 == 0 { 0 } else { 5 };
            if w.mm().pin(mfn, level, DOM).is_ok() {
                return Err(format!("pin at level {level} accepted"));
            }
        }
    }
    check_invariants(&w.ft, &w.mem, &w.held)
}

/// Run the operation sequence in `data`; panics on the first broken
/// invariant (the fuzzer's signal).
///
/// # Panics
/// When an invariant or rule is broken (a finding).
pub fn mm_ops(data: &[u8]) {
    if let Err(e) = run(data) {
        panic!("page-type machine invariant broken: {e}");
    }
}

/// [`mm_ops`] returning the broken invariant instead of panicking.
///
/// # Errors
/// The first invariant or rule that did not hold.
pub fn run(data: &[u8]) -> Result<(), String> {
    thread_local! {
        /// The previous input's machine memory, reused (see
        /// [`World::with_memory`]).
        static SPARE: std::cell::RefCell<Option<MachineMemory>> =
            const { std::cell::RefCell::new(None) };
    }
    let mut w = match SPARE.with(|s| s.borrow_mut().take()) {
        Some(mem) => World::with_memory(mem),
        None => World::new(),
    };
    let r = run_on(&mut w, data);
    SPARE.with(|s| *s.borrow_mut() = Some(w.mem));
    r
}

fn run_on(w: &mut World, data: &[u8]) -> Result<(), String> {
    let mut input = Input::new(data);
    let mut ops = 0;
    while !input.done() && ops < MAX_OPS {
        step(w, &mut input)?;
        ops += 1;
    }
    // Teardown: drop the held roots and every pin; every domain frame must
    // be back to its bare allocation reference.
    for mfn in std::mem::take(&mut w.held) {
        w.mm().put_page_and_type(mfn);
    }
    for f in 0..FRAMES {
        for dom in [DOM, OTHER] {
            let _ = w.mm().unpin(Mfn(f), dom);
        }
    }
    check_invariants(&w.ft, &w.mem, &w.held)?;
    for (mfn, p) in w.ft.iter() {
        if matches!(p.owner, Owner::Dom(_)) && (p.type_count != 0 || p.count != 1) {
            return Err(format!(
                "frame {:#x} still referenced after teardown: {p:?}",
                mfn.0
            ));
        }
    }
    Ok(())
}

/// Inputs that reach deep states, for seeding corpora: build and pin a
/// 4-level hierarchy, map frames through it, break rules along the way.
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    // Encoders for the ops above.
    let update = |table: u8, slot: u8, target: u8, flags: u16, dom_other: bool| {
        let mut v = vec![0, table, slot, target];
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&[0, if dom_other { 0 } else { 1 }, 1, 0, 0]);
        v
    };
    let pin = |mfn: u8, level: u8| vec![1, mfn, level - 1, 1];
    let unpin = |mfn: u8| vec![2, mfn, 1];
    let base = |mfn: u8| vec![3, mfn];
    let mut seeds = Vec::new();
    // 1: L4(4) -> L3(5) -> L2(6) -> L1(7) -> frames 8, 9 (rw), then pin.
    // Flag bits as the 16-bit little-endian field the decoder reads.
    let bits = |f: u64| u16::try_from(f & 0xffff).unwrap_or(0);
    let p = bits(pte::P);
    let rw = bits(pte::P | pte::RW);
    let mut s = Vec::new();
    s.extend(update(7, 0, 8, p, false));
    s.extend(update(7, 1, 9, rw, false));
    s.extend(update(6, 0, 7, rw, false));
    s.extend(update(5, 0, 6, rw, false));
    s.extend(update(4, 0, 5, rw, false));
    s.extend(pin(4, 4));
    s.extend(base(4));
    // Remap through the hierarchy, try to map the tables writable.
    s.extend(update(7, 2, 4, rw, false));
    s.extend(update(7, 2, 5, p, false));
    s.extend(update(7, 3, 20, p, false));
    s.extend(vec![6, 0, 0, 0, 0, 0, 0, 10, 3, 0, 0]);
    s.extend(unpin(4));
    seeds.push(s.clone());
    // 2: the same plus linear entries, reserved slots and forbidden bits.
    s.extend(update(4, 1, 4, p, false));
    s.extend(update(4, 2, 4, rw, false));
    s.extend(update(4, 0, 5, bits(pte::P | pte::PAT_PSE), false));
    s.extend(vec![0, 4, 4, 5, 1, 0, 0, 1, 1, 0, 0]); // slot 256
    s.extend(pin(6, 2));
    s.extend(pin(6, 3));
    s.extend(update(10, 0, 6, p, false));
    s.extend(pin(10, 2));
    s.extend(vec![5, 7, 0, 9, 3, 0, 0]);
    s.extend(vec![4, 0]);
    seeds.push(s);
    // 3: the other domain attacks.
    let mut s = Vec::new();
    s.extend(update(7, 0, 8, rw, false));
    s.extend(pin(7, 1));
    s.extend(update(7, 0, 21, rw, true));
    s.extend(update(21, 0, 7, rw, true));
    s.extend(vec![1, 21, 0, 0]);
    s.extend(vec![0, 7, 1, 255, 3, 0, 0, 1, 1, 1, 0]);
    s.extend(vec![7, 3, 0, 7, 3, 1]);
    seeds.push(s);
    // 4: a writable-mapped frame cannot become a table until unmapped;
    // preserve-A/D updates; a misaligned pointer.
    let mut s = Vec::new();
    s.extend(pin(3, 1));
    s.extend(update(3, 0, 7, rw, false));
    s.extend(pin(7, 1));
    s.extend(update(3, 0, 7, 0, false));
    s.extend(pin(7, 1));
    s.extend(vec![0, 3, 1, 8, 0x61, 0, 0, 1, 1, 1, 5]);
    s.extend(unpin(7));
    s.extend(unpin(3));
    seeds.push(s);
    seeds
}
