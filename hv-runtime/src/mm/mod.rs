//! Page types and validated page-table updates: Xen's PV memory rules.
//!
//! Guests build real x86-64 page tables in their own frames and the software
//! CPU (or KVM) walks them directly. Safety therefore rests on one rule set,
//! enforced here exactly as Xen enforces it (XEN-PV-ABI §2.4–§2.6):
//!
//! * A frame has one type at a time; the type changes only when its type
//!   count is 0, and acquiring a page-table type validates every present
//!   entry of the frame.
//! * A present L1 entry takes a general reference on its target, plus a
//!   *writable* type reference if the entry is RW. So a frame that is a page
//!   table (or descriptor page) can never be mapped writable, and a frame
//!   mapped writable can never become a page table.
//! * A present L2/L3/L4 entry takes a general reference plus an L1/L2/L3 type
//!   reference on its target, or — read-only only — a *linear* reference to a
//!   validated table of its own level (Note [Linear page tables]).
//! * Forbidden bits: PWT/PCD/PAT in L1 entries (no domain here has I/O
//!   privileges), PWT/PCD/PSE/G in L2–L4 entries.
//! * L4 slots 256–271 belong to the hypervisor: updates there are refused and
//!   validation overwrites them (slot 256 maps the read-only M2P table).
//! * Present L1 entries are rewritten as Xen does (`adjust_guest_l1e`):
//!   US=0 becomes US=1 plus the guest-kernel marker bit 52; user mappings
//!   get G=1. Present L2–L4 entries get US=1; L4 entries also A=1.
//!
//! Note [Linear page tables]: an Lk entry may point at an Lk table (itself or
//! another) only if it is read-only and the target is already a validated Lk
//! table. A table holding linear entries may not be the target of linear
//! entries and vice versa (`PageInfo::linear` counts both directions), which
//! keeps reference cycles out of the frame table.
//!
//! Every operation runs under the caller's lock on the [`FrameTable`]; the
//! entries themselves are read from and written to machine memory, where the
//! CPU's page walker reads them concurrently (8-byte atomic stores).

use guest_abi::abi::Errno;
use hv_cpu::mem::{MachineAddr, MachineMemory, MemError, Mfn};

use crate::machine::{DomId, FrameTable, M2p, MAX_REFS, Owner, PageType};

#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
#[cfg(test)]
mod tests;

/// PTE bits used by the rules (XEN-PV-ABI §2.5), as plain `u64` masks of
/// `guest_abi`'s [`PteFlags`](guest_abi::abi::mmu::PteFlags) (the one
/// definition of the bits).
pub mod pte {
    use guest_abi::abi::mmu::PteFlags as F;

    /// Present.
    pub const P: u64 = F::PRESENT.bits();
    /// Writable.
    pub const RW: u64 = F::RW.bits();
    /// User.
    pub const US: u64 = F::USER.bits();
    /// Write-through.
    pub const PWT: u64 = F::PWT.bits();
    /// Cache disable.
    pub const PCD: u64 = F::PCD.bits();
    /// Accessed.
    pub const A: u64 = F::ACCESSED.bits();
    /// Dirty.
    pub const D: u64 = F::DIRTY.bits();
    /// PAT in L1 entries, PSE in L2/L3 entries.
    pub const PAT_PSE: u64 = F::PAT.bits();
    /// Global.
    pub const G: u64 = F::GLOBAL.bits();
    /// Xen's marker for guest-kernel mappings in L1 entries.
    pub const GUEST_KERNEL: u64 = F::GUEST_KERNEL.bits();
    /// No-execute.
    pub const NX: u64 = F::NX.bits();
    /// The frame-address bits.
    pub const ADDR_MASK: u64 = guest_abi::abi::mmu::PTE_ADDR_MASK;

    /// Bits a PV guest may never set in a present L1 entry (without I/O
    /// privileges).
    pub const L1_DISALLOW: u64 = PWT | PCD | PAT_PSE;
    /// Bits a PV guest may never set in a present L2/L3/L4 entry.
    pub const LN_DISALLOW: u64 = PWT | PCD | PAT_PSE | G;

    /// Target frame of an entry.
    #[must_use]
    pub const fn mfn(e: u64) -> u64 {
        (e & ADDR_MASK) >> 12
    }
}

/// L4 slot of the read-only M2P table.
pub use guest_abi::abi::xen::L4_SLOT_RO_M2P as M2P_L4_SLOT;
/// First and last L4 slot owned by the hypervisor.
pub use guest_abi::abi::xen::XEN_L4_SLOTS;

/// Why a page-type or page-table operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MmError {
    /// The frame number is not a machine frame.
    #[error("frame {0:#x} does not exist")]
    NoSuchFrame(u64),
    /// Mapping a frame outside RAM needs I/O privileges nobody has here.
    #[error("frame {0:#x} is outside RAM and the domain has no I/O privileges")]
    NotRam(u64),
    /// The frame is not owned by the domain that must own it, or is free.
    #[error("frame {mfn:#x} is not owned by domain {dom}")]
    NotOwner {
        /// Frame.
        mfn: u64,
        /// Expected owner.
        dom: DomId,
    },
    /// The frame already has another type in use.
    #[error("frame {mfn:#x} is in use as {have:?}, cannot use it as {want:?}")]
    TypeConflict {
        /// Frame.
        mfn: u64,
        /// Its current type.
        have: PageType,
        /// The requested type.
        want: PageType,
    },
    /// An entry sets bits the rules forbid at its level.
    #[error("entry {entry:#x} sets forbidden bits {bits:#x} for a level-{level} table")]
    ForbiddenBits {
        /// The entry.
        entry: u64,
        /// The offending bits.
        bits: u64,
        /// Table level.
        level: u8,
    },
    /// A linear (recursive) entry breaks Note [Linear page tables].
    #[error("linear entry to frame {0:#x} is not allowed")]
    BadLinear(u64),
    /// An update targets a hypervisor-owned L4 slot.
    #[error("L4 slot {0} belongs to the hypervisor")]
    ReservedSlot(usize),
    /// A reference count would exceed [`MAX_REFS`].
    #[error("too many references to frame {0:#x}")]
    RefOverflow(u64),
    /// A present L1 entry names a frame it may not reference: not owned by
    /// the expected domain, or not typeable writable for an RW entry (Xen's
    /// `get_page_from_l1e` fails these with `-EBUSY`).
    #[error("L1 entry cannot reference frame {mfn:#x}: {cause}")]
    L1Target {
        /// The target frame.
        mfn: u64,
        /// Why the reference was refused.
        cause: Box<MmError>,
    },
    /// Pin of a pinned table or unpin of an unpinned one.
    #[error("frame {0:#x}: bad pin state")]
    PinState(u64),
    /// The frame table and memory disagree (a runtime bug, never a guest's).
    #[error("internal frame-table inconsistency at frame {0:#x}")]
    Internal(u64),
    /// Machine memory access failed.
    #[error(transparent)]
    Mem(#[from] MemError),
}

impl MmError {
    /// The Xen errno a guest sees for this failure.
    #[must_use]
    pub fn errno(&self) -> Errno {
        match self {
            Self::NotRam(_) => Errno::EPERM,
            Self::RefOverflow(_) | Self::L1Target { .. } => Errno::EBUSY,
            Self::Internal(_) | Self::Mem(_) => Errno::EFAULT,
            Self::NoSuchFrame(_)
            | Self::NotOwner { .. }
            | Self::TypeConflict { .. }
            | Self::ForbiddenBits { .. }
            | Self::BadLinear(_)
            | Self::ReservedSlot(_)
            | Self::PinState(_) => Errno::EINVAL,
        }
    }
}

/// Hypervisor facts validation needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmLayout {
    /// The L4 entry (already formed) that maps the read-only M2P table into
    /// slot 256 of every validated L4, or 0 for none.
    pub m2p_l4e: u64,
}

/// The page-type machine over one frame table and machine memory.
#[derive(Debug)]
pub struct Mm<'a> {
    /// Frame table (the caller holds its lock).
    pub ft: &'a mut FrameTable,
    /// Machine memory holding the tables.
    pub mem: &'a MachineMemory,
    /// Hypervisor layout.
    pub layout: MmLayout,
}

impl<'a> Mm<'a> {
    /// The rules over `ft` and `mem`, with every validated L4 mapping
    /// `m2p` read-only in its slot.
    #[must_use]
    pub fn over(ft: &'a mut FrameTable, mem: &'a MachineMemory, m2p: &M2p) -> Self {
        Self {
            ft,
            mem,
            layout: MmLayout { m2p_l4e: m2p.l4e },
        }
    }
}

fn entry_addr(table: Mfn, index: usize) -> MachineAddr {
    MachineAddr(table.addr().0 + (index as u64) * 8)
}

impl Mm<'_> {
    // ---- general references -------------------------------------------

    /// Take a general reference on `mfn`, which must be allocated to `dom`.
    ///
    /// # Errors
    /// The frame does not exist, is not `dom`'s, or has too many references.
    pub fn get_page(&mut self, mfn: Mfn, dom: DomId) -> Result<(), MmError> {
        let p = self.ft.get_mut(mfn).ok_or(MmError::NoSuchFrame(mfn.0))?;
        if p.owner != Owner::Dom(dom) || p.count == 0 {
            return Err(MmError::NotOwner { mfn: mfn.0, dom });
        }
        if p.count >= MAX_REFS {
            return Err(MmError::RefOverflow(mfn.0));
        }
        p.count += 1;
        Ok(())
    }

    /// Drop a general reference; the frame is freed when the last one goes.
    pub fn put_page(&mut self, mfn: Mfn) {
        let Some(p) = self.ft.get_mut(mfn) else {
            return;
        };
        if p.count == 0 {
            tracing::error!(mfn = mfn.0, "put_page on a frame with no references");
            return;
        }
        p.count -= 1;
        if p.count == 0 {
            self.ft.release(mfn);
        }
    }

    // ---- type references ----------------------------------------------

    /// Take a type reference on `mfn` as `ty`, validating the frame's
    /// contents if it becomes (or again becomes) a page table.
    ///
    /// `dom` owns the frame and is the owner expected for the frames its
    /// entries reference.
    ///
    /// # Errors
    /// A type conflict, a validation failure, or too many references.
    pub fn get_page_type(&mut self, mfn: Mfn, ty: PageType, dom: DomId) -> Result<(), MmError> {
        let p = *self.ft.get(mfn).ok_or(MmError::NoSuchFrame(mfn.0))?;
        if p.xen_heap && ty != PageType::Writable {
            return Err(MmError::TypeConflict {
                mfn: mfn.0,
                have: p.ty,
                want: ty,
            });
        }
        if p.type_count > 0 {
            if p.ty != ty || !p.validated {
                // In use as something else, or mid-validation further up
                // this very call chain (a cycle): refuse.
                return Err(MmError::TypeConflict {
                    mfn: mfn.0,
                    have: p.ty,
                    want: ty,
                });
            }
            if p.type_count >= MAX_REFS {
                return Err(MmError::RefOverflow(mfn.0));
            }
            self.set(mfn, |p| p.type_count += 1)?;
            return Ok(());
        }
        // type_count == 0: the frame may take any type. Page tables (and
        // descriptor pages) are (re)validated; the reference is held while
        // validating so that cycles back to this frame are refused above.
        match ty.level() {
            Some(level) => {
                self.set(mfn, |p| {
                    p.ty = ty;
                    p.type_count = 1;
                    p.validated = false;
                })?;
                match self.validate_table(mfn, level, dom) {
                    Ok(()) => self.set(mfn, |p| p.validated = true),
                    Err(e) => {
                        self.set(mfn, |p| {
                            p.ty = PageType::None;
                            p.type_count = 0;
                            p.validated = false;
                        })?;
                        Err(e)
                    }
                }
            }
            None => self.set(mfn, |p| {
                p.ty = ty;
                p.type_count = 1;
                p.validated = true;
            }),
        }
    }

    /// Drop a type reference; a page table whose last type reference goes
    /// away is devalidated (its entries drop their references).
    pub fn put_page_type(&mut self, mfn: Mfn) {
        let Some(p) = self.ft.get(mfn).copied() else {
            return;
        };
        if p.type_count == 0 {
            tracing::error!(
                mfn = mfn.0,
                "put_page_type on a frame with no type references"
            );
            return;
        }
        let _ = self.set(mfn, |p| p.type_count -= 1);
        if p.type_count == 1
            && let Some(level) = p.ty.level()
        {
            let _ = self.set(mfn, |p| p.validated = false);
            self.devalidate_table(mfn, level);
        }
    }

    /// General plus type reference.
    ///
    /// # Errors
    /// As [`Self::get_page`] and [`Self::get_page_type`].
    pub fn get_page_and_type(&mut self, mfn: Mfn, ty: PageType, dom: DomId) -> Result<(), MmError> {
        self.get_page(mfn, dom)?;
        if let Err(e) = self.get_page_type(mfn, ty, dom) {
            self.put_page(mfn);
            return Err(e);
        }
        Ok(())
    }

    /// Drop a type and a general reference.
    pub fn put_page_and_type(&mut self, mfn: Mfn) {
        self.put_page_type(mfn);
        self.put_page(mfn);
    }

    fn set(
        &mut self,
        mfn: Mfn,
        f: impl FnOnce(&mut crate::machine::PageInfo),
    ) -> Result<(), MmError> {
        let p = self.ft.get_mut(mfn).ok_or(MmError::NoSuchFrame(mfn.0))?;
        f(p);
        Ok(())
    }

    // ---- entries ------------------------------------------------------

    /// Xen's rewrite of a present L1 entry (`adjust_guest_l1e`).
    #[must_use]
    pub fn adjust_l1e(e: u64) -> u64 {
        if e & pte::P == 0 {
            return e;
        }
        let mut e = e;
        if e & pte::US == 0 {
            e |= pte::GUEST_KERNEL | pte::US;
        }
        if e & pte::GUEST_KERNEL == 0 {
            e |= pte::G | pte::US;
        }
        e
    }

    /// Xen's rewrite of a present L2–L4 entry.
    #[must_use]
    pub fn adjust_lne(e: u64, level: u8) -> u64 {
        if e & pte::P == 0 {
            return e;
        }
        if level == 4 {
            e | pte::US | pte::A
        } else {
            e | pte::US
        }
    }

    /// Take the references a present L1 entry `e` needs; `fd` must own the
    /// target frame.
    ///
    /// # Errors
    /// Forbidden bits, a frame outside RAM, a frame not owned by `fd`, or a
    /// writable mapping of a frame in use as a page table or descriptor page.
    pub fn get_page_from_l1e(&mut self, e: u64, fd: DomId) -> Result<(), MmError> {
        if e & pte::P == 0 {
            return Ok(());
        }
        let bad = e & pte::L1_DISALLOW;
        if bad != 0 {
            return Err(MmError::ForbiddenBits {
                entry: e,
                bits: bad,
                level: 1,
            });
        }
        let mfn = Mfn(pte::mfn(e));
        if mfn.0 >= self.ft.frames() {
            return Err(MmError::NotRam(mfn.0));
        }
        let refused = |cause: MmError| MmError::L1Target {
            mfn: mfn.0,
            cause: Box::new(cause),
        };
        self.get_page(mfn, fd).map_err(refused)?;
        if e & pte::RW != 0
            && let Err(err) = self.get_page_type(mfn, PageType::Writable, fd)
        {
            self.put_page(mfn);
            return Err(refused(err));
        }
        Ok(())
    }

    /// Drop what [`Self::get_page_from_l1e`] took.
    pub fn put_page_from_l1e(&mut self, e: u64) {
        if e & pte::P == 0 {
            return;
        }
        let mfn = Mfn(pte::mfn(e));
        if mfn.0 >= self.ft.frames() {
            return;
        }
        if e & pte::RW != 0 {
            self.put_page_type(mfn);
        }
        self.put_page(mfn);
    }

    /// Take the references a present entry `e` of the level-`level` table
    /// `table` (2–4) needs.
    ///
    /// # Errors
    /// Forbidden bits, a bad target, or a type conflict.
    pub fn get_page_from_lne(
        &mut self,
        e: u64,
        level: u8,
        table: Mfn,
        dom: DomId,
    ) -> Result<(), MmError> {
        if e & pte::P == 0 {
            return Ok(());
        }
        let bad = e & pte::LN_DISALLOW;
        if bad != 0 {
            return Err(MmError::ForbiddenBits {
                entry: e,
                bits: bad,
                level,
            });
        }
        let target = Mfn(pte::mfn(e));
        if target.0 >= self.ft.frames() {
            return Err(MmError::NoSuchFrame(target.0));
        }
        let (Some(child_ty), Some(own_ty)) = (PageType::table(level - 1), PageType::table(level))
        else {
            return Err(MmError::Internal(table.0));
        };
        if target == table {
            // Self-map: read-only only, and no references (they would keep
            // the table alive forever).
            return if e & pte::RW == 0 {
                Ok(())
            } else {
                Err(MmError::BadLinear(target.0))
            };
        }
        self.get_page(target, dom)?;
        let tp = *self.ft.get(target).ok_or(MmError::NoSuchFrame(target.0))?;
        if tp.type_count > 0 && tp.ty == own_ty {
            // Linear entry to another table of our own level.
            let this = *self.ft.get(table).ok_or(MmError::NoSuchFrame(table.0))?;
            let ok = e & pte::RW == 0
                && tp.validated
                && this.linear >= 0
                && tp.linear <= 0
                && tp.type_count < MAX_REFS;
            if !ok {
                self.put_page(target);
                return Err(MmError::BadLinear(target.0));
            }
            self.set(target, |p| {
                p.type_count += 1;
                p.linear -= 1;
            })?;
            self.set(table, |p| p.linear += 1)?;
            return Ok(());
        }
        if let Err(err) = self.get_page_type(target, child_ty, dom) {
            self.put_page(target);
            return Err(err);
        }
        Ok(())
    }

    /// Drop what [`Self::get_page_from_lne`] took.
    pub fn put_page_from_lne(&mut self, e: u64, level: u8, table: Mfn) {
        if e & pte::P == 0 {
            return;
        }
        let target = Mfn(pte::mfn(e));
        if target == table || target.0 >= self.ft.frames() {
            return;
        }
        let Some(tp) = self.ft.get(target).copied() else {
            return;
        };
        if PageType::table(level) == Some(tp.ty) {
            let _ = self.set(target, |p| p.linear += 1);
            let _ = self.set(table, |p| p.linear -= 1);
        }
        self.put_page_type(target);
        self.put_page(target);
    }

    fn validate_table(&mut self, table: Mfn, level: u8, dom: DomId) -> Result<(), MmError> {
        let mut done = 0usize;
        let mut result = Ok(());
        for i in 0..512 {
            if level == 4 && XEN_L4_SLOTS.contains(&i) {
                continue;
            }
            let e = match self.mem.read_u64(entry_addr(table, i)) {
                Ok(e) => e,
                Err(err) => {
                    result = Err(err.into());
                    break;
                }
            };
            let r = if level == 1 {
                self.get_page_from_l1e(e, dom)
            } else {
                self.get_page_from_lne(e, level, table, dom)
            };
            if let Err(err) = r {
                result = Err(err);
                break;
            }
            done = i + 1;
        }
        if let Err(err) = result {
            // Undo the references taken for entries before the failing one.
            for i in 0..done {
                if level == 4 && XEN_L4_SLOTS.contains(&i) {
                    continue;
                }
                if let Ok(e) = self.mem.read_u64(entry_addr(table, i)) {
                    self.put_entry(e, level, table);
                }
            }
            return Err(err);
        }
        // Rewrite entries as Xen does, and install the hypervisor's slots.
        for i in 0..512 {
            let a = entry_addr(table, i);
            if level == 4 && XEN_L4_SLOTS.contains(&i) {
                let v = if i == M2P_L4_SLOT {
                    self.layout.m2p_l4e
                } else {
                    0
                };
                self.mem.write_u64(a, v)?;
                continue;
            }
            let e = self.mem.read_u64(a)?;
            let adj = if level == 1 {
                Self::adjust_l1e(e)
            } else {
                Self::adjust_lne(e, level)
            };
            if adj != e {
                self.mem.write_u64(a, adj)?;
            }
        }
        Ok(())
    }

    fn devalidate_table(&mut self, table: Mfn, level: u8) {
        for i in 0..512 {
            if level == 4 && XEN_L4_SLOTS.contains(&i) {
                continue;
            }
            if let Ok(e) = self.mem.read_u64(entry_addr(table, i)) {
                self.put_entry(e, level, table);
            }
        }
    }

    fn put_entry(&mut self, e: u64, level: u8, table: Mfn) {
        if level == 1 {
            self.put_page_from_l1e(e);
        } else {
            self.put_page_from_lne(e, level, table);
        }
    }

    // ---- updates --------------------------------------------------------

    /// `MMU_NORMAL_PT_UPDATE` / `MMU_PT_UPDATE_PRESERVE_AD` of the 8-byte
    /// entry at machine address `ptr` (8-byte aligned), on behalf of `pt_owner`
    /// (who must own the table frame) mapping frames of `fd`.
    ///
    /// Returns whether the change needs a TLB flush (L2–L4 changes always do;
    /// L1 changes are left to the guest, as in Xen).
    ///
    /// # Errors
    /// Any rule breach; nothing changes then.
    pub fn update_entry(
        &mut self,
        ptr: u64,
        new: u64,
        pt_owner: DomId,
        fd: DomId,
        preserve_ad: bool,
    ) -> Result<bool, MmError> {
        let addr = MachineAddr(ptr & !7);
        let table = addr.mfn();
        let index =
            usize::try_from(addr.page_offset() / 8).map_err(|_| MmError::Internal(table.0))?;
        let tp = *self.ft.get(table).ok_or(MmError::NoSuchFrame(table.0))?;
        if tp.owner != Owner::Dom(pt_owner) {
            return Err(MmError::NotOwner {
                mfn: table.0,
                dom: pt_owner,
            });
        }
        let level = if tp.type_count > 0 {
            tp.ty.level()
        } else {
            None
        };
        match level {
            None => {
                // Not a page table in use: a plain store into a frame that
                // must be typeable writable (Xen takes and drops the type).
                self.get_page_and_type(table, PageType::Writable, pt_owner)?;
                let r = self.mem.write_u64(addr, new);
                self.put_page_and_type(table);
                r?;
                Ok(false)
            }
            Some(1) => {
                self.mod_entry(addr, table, 1, new, fd, preserve_ad)?;
                Ok(false)
            }
            Some(level) => {
                if fd != pt_owner {
                    return Err(MmError::NotOwner {
                        mfn: table.0,
                        dom: fd,
                    });
                }
                if level == 4 && XEN_L4_SLOTS.contains(&index) {
                    return Err(MmError::ReservedSlot(index));
                }
                self.mod_entry(addr, table, level, new, fd, preserve_ad)?;
                Ok(true)
            }
        }
    }

    /// Replace one entry of a validated table: take the new entry's
    /// references first, then write it, then drop the old entry's.
    fn mod_entry(
        &mut self,
        addr: MachineAddr,
        table: Mfn,
        level: u8,
        new: u64,
        fd: DomId,
        preserve_ad: bool,
    ) -> Result<(), MmError> {
        let new = if level == 1 {
            Self::adjust_l1e(new)
        } else {
            Self::adjust_lne(new, level)
        };
        if level == 1 {
            self.get_page_from_l1e(new, fd)?;
        } else {
            self.get_page_from_lne(new, level, table, fd)?;
        }
        let old = match self.store_entry(addr, new, preserve_ad) {
            Ok(old) => old,
            Err(e) => {
                self.put_entry(new, level, table);
                return Err(e);
            }
        };
        self.put_entry(old, level, table);
        Ok(())
    }

    /// Store `new` at `addr`, returning the previous entry. With
    /// `preserve_ad`, the old entry's A/D bits (which the CPU may set
    /// concurrently) are ORed into `new` atomically.
    fn store_entry(
        &mut self,
        addr: MachineAddr,
        new: u64,
        preserve_ad: bool,
    ) -> Result<u64, MmError> {
        if !preserve_ad {
            return Ok(self.mem.swap_u64(addr, new)?);
        }
        let mut old = self.mem.read_u64(addr)?;
        loop {
            let want = new | (old & (pte::A | pte::D));
            let seen = self.mem.cmpxchg_u64(addr, old, want)?;
            if seen == old {
                return Ok(old);
            }
            old = seen;
        }
    }

    /// `MMUEXT_PIN_L{level}_TABLE`.
    ///
    /// # Errors
    /// Already pinned, not owned, or validation failed.
    pub fn pin(&mut self, mfn: Mfn, level: u8, dom: DomId) -> Result<(), MmError> {
        let ty = PageType::table(level).ok_or(MmError::Internal(mfn.0))?;
        self.get_page_and_type(mfn, ty, dom)?;
        let pinned = self.ft.get(mfn).is_some_and(|p| p.pinned);
        if pinned {
            self.put_page_and_type(mfn);
            return Err(MmError::PinState(mfn.0));
        }
        self.set(mfn, |p| p.pinned = true)
    }

    /// `MMUEXT_UNPIN_TABLE`.
    ///
    /// # Errors
    /// Not pinned, or not owned by `dom`.
    pub fn unpin(&mut self, mfn: Mfn, dom: DomId) -> Result<(), MmError> {
        let p = *self.ft.get(mfn).ok_or(MmError::NoSuchFrame(mfn.0))?;
        if p.owner != Owner::Dom(dom) {
            return Err(MmError::NotOwner { mfn: mfn.0, dom });
        }
        if !p.pinned {
            return Err(MmError::PinState(mfn.0));
        }
        self.set(mfn, |p| p.pinned = false)?;
        self.put_page_and_type(mfn);
        Ok(())
    }
}
