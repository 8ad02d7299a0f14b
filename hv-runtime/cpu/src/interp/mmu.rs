//! Paging and the soft TLB.
//!
//! Every guest access is CPL 3 (user). A TLB miss walks the 4-level tables in
//! machine memory from `CpuState::cr3`, checks P / RW / US / NX and reserved
//! bits, sets A (and D on writes) with `cmpxchg`, and fills a direct-mapped
//! entry whose separate read / write / exec tags make the permission check a
//! single compare:
//!
//! * the **read** tag is set by every successful walk;
//! * the **write** tag only when the page is writable, its D bit is set, and
//!   the frame holds no translated code (so stores to code frames take the
//!   slow path, which notes self-modifying code, see Note [Translated-code
//!   tracking] in `mem.rs`);
//! * the **exec** tag only by a fetch walk (NX clear at every level).
//!
//! Non-canonical addresses never match a tag (tags are only filled for
//! canonical pages), so the canonical check costs nothing on hits.

use crate::mem::{MachineAddr, MachineMemory};
use crate::pf;
use crate::vector;

/// Physical-address width the interpreter implements (CPUID 0x8000_0008
/// should report it); PTE bits 46..=51 are reserved.
pub const PHYS_ADDR_BITS: u32 = 46;
const ADDR_MASK: u64 = ((1u64 << PHYS_ADDR_BITS) - 1) & !0xfff;
const RSVD_HIGH: u64 = ((1u64 << 52) - 1) & !((1u64 << PHYS_ADDR_BITS) - 1);

// The architectural PTE bits, as `guest_abi` defines them (one definition
// across the workspace); re-exported once, for tests and tools, as
// `hv_cpu::interp::mmu::pte`.
const P: u64 = pte::P;
const RW: u64 = pte::RW;
const US: u64 = pte::US;
const A: u64 = pte::A;
const D: u64 = pte::D;
const PS: u64 = pte::PS;
const NX: u64 = pte::NX;

/// PTE bits the software CPU's page walk uses (`guest_abi`'s `PteFlags`
/// as `u64` masks).
pub mod pte {
    use guest_abi::abi::mmu::PteFlags as F;
    /// Present.
    pub const P: u64 = F::PRESENT.bits();
    /// Writable.
    pub const RW: u64 = F::RW.bits();
    /// User.
    pub const US: u64 = F::USER.bits();
    /// Accessed.
    pub const A: u64 = F::ACCESSED.bits();
    /// Dirty.
    pub const D: u64 = F::DIRTY.bits();
    /// Page size (L2/L3).
    pub const PS: u64 = F::PSE.bits();
    /// No-execute.
    pub const NX: u64 = F::NX.bits();
}

/// A tag value that never equals a page address.
pub(crate) const INVALID: u64 = 1;
/// Number of TLB entries (direct-mapped).
pub const TLB_ENTRIES: usize = 256;

/// An exception raised by an instruction (the instruction did not retire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub vector: u8,
    pub error: Option<u32>,
    pub cr2: u64,
}

impl Fault {
    pub(crate) const fn gp0() -> Self {
        Self {
            vector: vector::GP,
            error: Some(0),
            cr2: 0,
        }
    }
    pub(crate) const fn ud() -> Self {
        Self {
            vector: vector::UD,
            error: None,
            cr2: 0,
        }
    }
    pub(crate) const fn new(vector: u8, error: Option<u32>) -> Self {
        Self {
            vector,
            error,
            cr2: 0,
        }
    }
}

/// What an access wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acc {
    Read,
    Write,
    Exec,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TlbEntry {
    pub r: u64,
    pub w: u64,
    pub x: u64,
    /// Machine address of the 4 KiB frame.
    pub base: u64,
    /// Writable with D set (a write needs no walk even if `w` is withheld
    /// because the frame holds code).
    pub wd: bool,
}

pub(crate) const EMPTY: TlbEntry = TlbEntry {
    r: INVALID,
    w: INVALID,
    x: INVALID,
    base: 0,
    wd: false,
};

/// The soft TLB.
#[derive(Debug)]
pub(crate) struct Tlb {
    pub e: Box<[TlbEntry; TLB_ENTRIES]>,
}

impl Default for Tlb {
    fn default() -> Self {
        Self {
            e: Box::new([EMPTY; TLB_ENTRIES]),
        }
    }
}

impl Tlb {
    pub(crate) fn flush(&mut self) {
        self.e.fill(EMPTY);
    }
    pub(crate) fn flush_page(&mut self, lin: u64) {
        let i = (lin >> 12) as usize % TLB_ENTRIES;
        if let Some(e) = self.e.get_mut(i) {
            *e = EMPTY;
        }
    }
    /// Withhold fast write tags for `mfn` (it now holds translated code).
    pub(crate) fn protect_code_frame(&mut self, mfn: u64) {
        for e in self.e.iter_mut() {
            if e.base >> 12 == mfn {
                e.w = INVALID;
            }
        }
    }
}

#[inline(always)]
pub(crate) fn canonical(lin: u64) -> bool {
    (((lin << 16) as i64) >> 16) as u64 == lin
}

/// Result of a successful walk.
pub(crate) struct Walked {
    pub(crate) frame: u64,
    pub(crate) writable_dirty: bool,
    pub(crate) exec: bool,
}

pub(crate) fn pf_fault(lin: u64, code: u32) -> Fault {
    Fault {
        vector: vector::PF,
        error: Some(code),
        cr2: lin,
    }
}

/// Walk the page tables for `lin` (canonical) and perform A/D updates.
pub(crate) fn walk(mem: &MachineMemory, cr3: u64, lin: u64, acc: Acc) -> Result<Walked, Fault> {
    let mut base_code = pf::USER;
    match acc {
        Acc::Write => base_code |= pf::WRITE,
        Acc::Exec => base_code |= pf::FETCH,
        Acc::Read => {}
    }
    'retry: for attempt in 0..8 {
        let mut table = cr3 & ADDR_MASK;
        let mut addrs = [0u64; 4];
        let mut vals = [0u64; 4];
        let mut n = 0usize;
        let mut rw = true;
        let mut us = true;
        let mut nx = false;
        let mut level = 4u32;
        let frame = loop {
            let idx = (lin >> (12 + 9 * (level - 1))) & 511;
            let ea = table + idx * 8;
            let Ok(e) = mem.read_u64(MachineAddr(ea)) else {
                return Err(pf_fault(lin, base_code | pf::PRESENT | pf::RSVD));
            };
            if e & P == 0 {
                return Err(pf_fault(lin, base_code));
            }
            let large = e & PS != 0 && (level == 2 || level == 3);
            let mut rsvd = e & RSVD_HIGH != 0;
            if level == 4 && e & PS != 0 {
                rsvd = true;
            }
            if large {
                let low = if level == 3 { 0x3fff_e000 } else { 0x001f_e000 };
                if e & low != 0 {
                    rsvd = true;
                }
            }
            if rsvd {
                return Err(pf_fault(lin, base_code | pf::PRESENT | pf::RSVD));
            }
            rw &= e & RW != 0;
            us &= e & US != 0;
            nx |= e & NX != 0;
            if let (Some(a), Some(v)) = (addrs.get_mut(n), vals.get_mut(n)) {
                *a = ea;
                *v = e;
            }
            n += 1;
            if level == 1 || large {
                break match level {
                    3 => (e & ADDR_MASK & !0x3fff_ffff) | (lin & 0x3fff_f000),
                    2 => (e & ADDR_MASK & !0x1f_ffff) | (lin & 0x1f_f000),
                    _ => e & ADDR_MASK,
                };
            }
            table = e & ADDR_MASK;
            level -= 1;
        };
        let ok = us
            && match acc {
                Acc::Read => true,
                Acc::Write => rw,
                Acc::Exec => !nx,
            };
        if !ok {
            return Err(pf_fault(lin, base_code | pf::PRESENT));
        }
        if frame.checked_add(4096).is_none_or(|end| end > mem.len()) {
            // A mapping of a frame outside machine memory (the hypervisor's
            // validation should prevent it): reported as a reserved-bit #PF.
            return Err(pf_fault(lin, base_code | pf::PRESENT | pf::RSVD));
        }
        // Set accessed (and dirty on the leaf for writes) atomically; if an
        // entry changed under us, walk again.
        let mut dirty = false;
        for i in 0..n.min(4) {
            let (ea, old) = (addrs[i], vals[i]);
            let mut want = A;
            if i + 1 == n {
                if acc == Acc::Write {
                    want |= D;
                }
                dirty = old & D != 0 || acc == Acc::Write;
            }
            if old & want != want {
                match mem.cmpxchg_u64(MachineAddr(ea), old, old | want) {
                    Ok(prev) if prev == old => {}
                    Ok(_) if attempt < 7 => continue 'retry,
                    Ok(_) => {
                        let _ = mem.fetch_or_u64(MachineAddr(ea), want);
                    }
                    Err(_) => return Err(pf_fault(lin, base_code | pf::PRESENT | pf::RSVD)),
                }
            }
        }
        return Ok(Walked {
            frame,
            writable_dirty: rw && dirty,
            exec: !nx,
        });
    }
    Err(pf_fault(lin, base_code | pf::PRESENT | pf::RSVD))
}
