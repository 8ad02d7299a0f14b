//! Machine frames and their bookkeeping: the frame table.
//!
//! Every machine frame has a [`PageInfo`] as in Xen: an owner, a general
//! reference count, and a *type* (page-table level, descriptor page,
//! writable) with its own type count plus validated/pinned flags. The rules
//! that move frames between types live in [`crate::mm`]; this module only
//! allocates and frees frames and keeps the counts from wrapping.

use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn, PAGE_SIZE};

/// A domain id (`domid_t`).
pub use guest_abi::abi::DomId;

/// Domain 0: the runtime itself (xenstored, the backends).
pub const DOM0: DomId = DomId(0);

/// Who owns a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// On the free list.
    Free,
    /// Allocated to a domain.
    Dom(DomId),
    /// The hypervisor's own frames (M2P table and its page tables, ...).
    Xen,
}

/// A frame's type (Xen's `PGT_*`). The numbers are not ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageType {
    /// No type yet.
    None,
    /// Level-1 page table.
    L1,
    /// Level-2 page table.
    L2,
    /// Level-3 page table.
    L3,
    /// Level-4 (root) page table.
    L4,
    /// GDT/LDT page.
    SegDesc,
    /// Mapped writable somewhere (or otherwise written by the guest).
    Writable,
}

impl PageType {
    /// The page-table type for `level` (1–4).
    #[must_use]
    pub fn table(level: u8) -> Option<Self> {
        match level {
            1 => Some(Self::L1),
            2 => Some(Self::L2),
            3 => Some(Self::L3),
            4 => Some(Self::L4),
            _ => None,
        }
    }

    /// The level (1–4) if this is a page-table type.
    #[must_use]
    pub fn level(self) -> Option<u8> {
        match self {
            Self::L1 => Some(1),
            Self::L2 => Some(2),
            Self::L3 => Some(3),
            Self::L4 => Some(4),
            _ => None,
        }
    }
}

/// Upper bound for general and type reference counts: a guest that tries to
/// take more references gets an error instead of wrapping a counter.
pub const MAX_REFS: u32 = 1 << 30;

/// Xen's per-frame state (`struct page_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Owner.
    pub owner: Owner,
    /// General references, including the allocation reference.
    pub count: u32,
    /// The owner still holds its allocation reference (`PGC_allocated`).
    pub allocated: bool,
    /// Current type (meaningful while `type_count > 0`; sticky afterwards).
    pub ty: PageType,
    /// References to the frame *as* `ty`.
    pub type_count: u32,
    /// The frame's contents were validated as `ty` (page tables only).
    pub validated: bool,
    /// `MMUEXT_PIN_*` holds one type reference and one general reference.
    pub pinned: bool,
    /// Linear page-table bookkeeping (Note [Linear page tables]): positive =
    /// this table holds that many linear entries pointing at other tables;
    /// negative = that many linear entries elsewhere point at this table.
    pub linear: i32,
    /// Shared hypervisor page (e.g. `shared_info`): the guest may map it but
    /// never free, transfer or retype it.
    pub xen_heap: bool,
}

impl PageInfo {
    const FREE: Self = Self {
        owner: Owner::Free,
        count: 0,
        allocated: false,
        ty: PageType::None,
        type_count: 0,
        validated: false,
        pinned: false,
        linear: 0,
        xen_heap: false,
    };
}

/// Errors from frame allocation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// No free frame is left.
    #[error("out of machine memory: no free frame; start hv with more --memory")]
    OutOfMemory,
    /// Zeroing the new frame failed.
    #[error("cannot scrub frame: {0}")]
    Scrub(#[from] hv_cpu::mem::MemError),
}

/// The frame table: one [`PageInfo`] per machine frame and the free list.
#[derive(Debug)]
pub struct FrameTable {
    pages: Vec<PageInfo>,
    /// Free frames, highest first so that `pop` hands out low frames first.
    free: Vec<u64>,
    /// Per frame: may hold non-zero bytes, so allocation must clear it.
    /// All `true` unless the table was made with [`FrameTable::new_zeroed`].
    dirty: Vec<bool>,
}

impl FrameTable {
    /// A table for `frames` frames, all free.
    #[must_use]
    pub fn new(frames: u64) -> Self {
        let mut t = Self::new_zeroed(frames);
        t.dirty.fill(true);
        t
    }

    /// A table for `frames` frames, all free, over machine memory that is
    /// still all zero (freshly mapped): allocation skips clearing a frame
    /// until it has been allocated once, so building a large domain does
    /// not touch (and fault in) memory the guest has not used yet.
    #[must_use]
    pub fn new_zeroed(frames: u64) -> Self {
        let n = usize::try_from(frames).unwrap_or(usize::MAX);
        Self {
            pages: vec![PageInfo::FREE; n],
            free: (0..frames).rev().collect(),
            dirty: vec![false; n],
        }
    }

    /// Clear `mfn` unless it is known to be zero, and mark it dirty (its
    /// owner may write it from now on).
    fn clear_for_use(
        &mut self,
        mem: &MachineMemory,
        mfn: Mfn,
    ) -> Result<(), hv_cpu::mem::MemError> {
        let i = usize::try_from(mfn.0).unwrap_or(usize::MAX);
        if self.dirty.get(i).copied().unwrap_or(true) {
            mem.fill(mfn.addr(), 0, PAGE_SIZE)?;
        }
        if let Some(d) = self.dirty.get_mut(i) {
            *d = true;
        }
        Ok(())
    }

    /// Number of frames.
    #[must_use]
    pub fn frames(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Number of free frames.
    #[must_use]
    pub fn free_frames(&self) -> u64 {
        self.free.len() as u64
    }

    /// The state of frame `mfn`, if it exists.
    #[must_use]
    pub fn get(&self, mfn: Mfn) -> Option<&PageInfo> {
        usize::try_from(mfn.0).ok().and_then(|i| self.pages.get(i))
    }

    /// Mutable state of frame `mfn`, if it exists.
    pub fn get_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo> {
        usize::try_from(mfn.0)
            .ok()
            .and_then(|i| self.pages.get_mut(i))
    }

    /// Iterate over `(mfn, info)` for every frame.
    pub fn iter(&self) -> impl Iterator<Item = (Mfn, &PageInfo)> {
        self.pages
            .iter()
            .enumerate()
            .map(|(i, p)| (Mfn(i as u64), p))
    }

    /// Allocate a zeroed frame to `owner`, holding its allocation reference.
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] when no frame is free.
    pub fn alloc(&mut self, mem: &MachineMemory, owner: Owner) -> Result<Mfn, AllocError> {
        let mfn = Mfn(self.free.pop().ok_or(AllocError::OutOfMemory)?);
        if let Err(e) = self.clear_for_use(mem, mfn) {
            self.free.push(mfn.0);
            return Err(e.into());
        }
        if let Some(p) = self.get_mut(mfn) {
            *p = PageInfo {
                owner,
                count: 1,
                allocated: true,
                ..PageInfo::FREE
            };
        }
        Ok(mfn)
    }

    /// Allocate a specific free frame (used for frames whose number matters,
    /// e.g. the M2P table).
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] when `mfn` is not free.
    pub fn alloc_at(
        &mut self,
        mem: &MachineMemory,
        mfn: Mfn,
        owner: Owner,
    ) -> Result<(), AllocError> {
        let pos = self
            .free
            .iter()
            .position(|&f| f == mfn.0)
            .ok_or(AllocError::OutOfMemory)?;
        self.free.swap_remove(pos);
        // Keep the free list sorted high → low so allocation stays low-first.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        self.clear_for_use(mem, mfn)?;
        if let Some(p) = self.get_mut(mfn) {
            *p = PageInfo {
                owner,
                count: 1,
                allocated: true,
                ..PageInfo::FREE
            };
        }
        Ok(())
    }

    /// Allocate every frame of `range` (all must be free) to `owner` in one
    /// pass over the free list.
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] when a frame of `range` is not free;
    /// nothing is allocated then.
    pub fn alloc_range_at(
        &mut self,
        mem: &MachineMemory,
        range: std::ops::Range<u64>,
        owner: Owner,
    ) -> Result<(), AllocError> {
        let want = range.end.saturating_sub(range.start);
        let free_in = self.free.iter().filter(|f| range.contains(f)).count() as u64;
        if free_in != want {
            return Err(AllocError::OutOfMemory);
        }
        self.free.retain(|f| !range.contains(f));
        for f in range {
            self.clear_for_use(mem, Mfn(f))?;
            if let Some(p) = self.get_mut(Mfn(f)) {
                *p = PageInfo {
                    owner,
                    count: 1,
                    allocated: true,
                    ..PageInfo::FREE
                };
            }
        }
        Ok(())
    }

    /// Return a frame whose last reference went away to the free list.
    pub(crate) fn release(&mut self, mfn: Mfn) {
        if let Some(p) = self.get_mut(mfn) {
            *p = PageInfo::FREE;
            self.free.push(mfn.0);
        }
    }
}

/// The read-only machine-to-physical table every PV guest sees at
/// `0xFFFF800000000000` (XEN-PV-ABI §3): `m2p[mfn]` = the owner's PFN, or
/// all-ones for "none". It lives in hypervisor-owned frames and is mapped by
/// hypervisor-owned page tables that validated L4s point at from slot 256.
#[derive(Debug)]
pub struct M2p {
    /// First frame of the (contiguous) table.
    pub base: Mfn,
    /// Frames of the table.
    pub frames: u64,
    /// The L4 entry to install in slot 256 of every validated L4.
    pub l4e: u64,
}

/// Guest-virtual start of the read-only M2P table.
pub const M2P_VIRT_START: u64 = guest_abi::abi::xen::MACH2PHYS_VIRT_START;
/// Value of an M2P entry that maps nothing.
pub const M2P_INVALID: u64 = u64::MAX;

impl M2p {
    /// Build the table for all of machine memory, at the top frames.
    ///
    /// # Errors
    /// Not enough machine memory for the table and its page tables.
    pub fn new(mem: &MachineMemory, ft: &mut FrameTable) -> Result<Self, AllocError> {
        let total = ft.frames();
        let frames = (total * 8).div_ceil(PAGE_SIZE);
        let l1s = frames.div_ceil(512);
        // One L3 and one L2 cover 1 GiB of table = 2^27 frames = 512 GiB of
        // machine memory, far beyond what one hv process maps.
        let needed = frames + l1s + 2;
        if needed >= total {
            return Err(AllocError::OutOfMemory);
        }
        let first = total - needed;
        ft.alloc_range_at(mem, first..total, Owner::Xen)?;
        let base = Mfn(first);
        let l1_base = first + frames;
        let l2 = Mfn(l1_base + l1s);
        let l3 = Mfn(l1_base + l1s + 1);
        // Read-only, user-accessible, never executable.
        use guest_abi::abi::mmu::PteFlags as F;
        let ro = (F::PRESENT | F::USER | F::ACCESSED | F::NX).bits();
        let dir = (F::PRESENT | F::USER | F::ACCESSED).bits();
        for i in 0..frames {
            let l1 = Mfn(l1_base + i / 512);
            mem.write_u64(
                MachineAddr(l1.addr().0 + (i % 512) * 8),
                ((first + i) << 12) | ro,
            )?;
        }
        for j in 0..l1s {
            mem.write_u64(
                MachineAddr(l2.addr().0 + j * 8),
                ((l1_base + j) << 12) | dir,
            )?;
        }
        mem.write_u64(l3.addr(), (l2.0 << 12) | dir)?;
        mem.fill(base.addr(), 0xff, frames * PAGE_SIZE)?;
        Ok(Self {
            base,
            frames,
            l4e: (l3.0 << 12) | dir,
        })
    }

    /// Set `m2p[mfn] = pfn` (`M2P_INVALID` to clear).
    ///
    /// # Errors
    /// `mfn` is outside machine memory.
    pub fn set(
        &self,
        mem: &MachineMemory,
        mfn: Mfn,
        pfn: u64,
    ) -> Result<(), hv_cpu::mem::MemError> {
        mem.write_u64(self.entry(mfn), pfn)
    }

    fn entry(&self, mfn: Mfn) -> MachineAddr {
        // Out-of-range frames map to an address past machine memory, which
        // the bounds-checked accessors refuse.
        let off = if mfn.0 < self.frames * 512 {
            mfn.0 * 8
        } else {
            u64::MAX / 2
        };
        MachineAddr(self.base.addr().0 + off)
    }

    /// Read `m2p[mfn]`.
    ///
    /// # Errors
    /// `mfn` is outside machine memory.
    pub fn get(&self, mem: &MachineMemory, mfn: Mfn) -> Result<u64, hv_cpu::mem::MemError> {
        mem.read_u64(self.entry(mfn))
    }
}
