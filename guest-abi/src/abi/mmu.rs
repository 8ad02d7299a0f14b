//! Page-table updates: `mmu_update`, `mmuext_op`, `update_va_mapping` and
//! the PV64 PTE bits.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// --- mmu_update -------------------------------------------------------------

/// `ptr` low bits: write a page-table entry (validated if the containing frame
/// is a page table).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `ptr` low bits: set `M2P[ptr >> 12] = val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `ptr` low bits: as normal, but keep the entry's current Accessed/Dirty bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `ptr` low bits: as normal, never translate `val` through the p2m.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;
/// Mask of the command bits in `mmu_update.ptr`.
pub const MMU_UPDATE_CMD_MASK: u64 = 7;
/// Bit of `count` Xen uses for its own continuations; guests never set it.
pub const MMU_UPDATE_PREEMPTED: u32 = 0x8000_0000;

/// `struct mmu_update`: one request of an `mmu_update` batch. Written by the
/// guest.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MmuUpdate {
    /// Machine address of the target (8-byte aligned) ORed with an `MMU_*` command.
    pub ptr: u64,
    /// New PTE value (or PFN for [`MMU_MACHPHYS_UPDATE`]).
    pub val: u64,
}
assert_layout!(MmuUpdate, size = 16, ptr = 0, val = 8);

impl MmuUpdate {
    /// A normal (validated) page-table-entry write at machine address `pte_maddr`.
    #[must_use]
    pub const fn normal(pte_maddr: u64, val: u64) -> Self {
        Self {
            ptr: (pte_maddr & !MMU_UPDATE_CMD_MASK) | MMU_NORMAL_PT_UPDATE,
            val,
        }
    }

    /// An M2P update: `M2P[mfn] = pfn`.
    #[must_use]
    pub const fn machphys(mfn: u64, pfn: u64) -> Self {
        Self {
            ptr: (mfn << super::XEN_PAGE_SHIFT) | MMU_MACHPHYS_UPDATE,
            val: pfn,
        }
    }

    /// The command (`ptr & 7`).
    #[must_use]
    pub const fn cmd(&self) -> u64 {
        self.ptr & MMU_UPDATE_CMD_MASK
    }

    /// The target address (`ptr & !7`).
    #[must_use]
    pub const fn addr(&self) -> u64 {
        self.ptr & !MMU_UPDATE_CMD_MASK
    }
}

// --- update_va_mapping flags -------------------------------------------------

/// No TLB flush.
pub const UVMF_NONE: u64 = 0;
/// Flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Flush only the updated VA.
pub const UVMF_INVLPG: u64 = 2;
/// Mask of the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// Flush on multiple vCPUs: OR in a pointer to a vCPU bitmap (4-byte aligned).
pub const UVMF_MULTI: u64 = 0;
/// Flush on this vCPU only.
pub const UVMF_LOCAL: u64 = 0;
/// Flush on all vCPUs of the domain.
pub const UVMF_ALL: u64 = 4;

// --- mmuext_op ---------------------------------------------------------------

/// `mmuext_op` command 0: validate `mfn` as an L1 table and pin that type.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `mmuext_op` command 1: validate `mfn` as an L2 table and pin that type.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `mmuext_op` command 2: validate `mfn` as an L3 table and pin that type.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `mmuext_op` command 3: validate `mfn` as an L4 table and pin that type.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `mmuext_op` command 4: drop the pin on the table at `mfn`.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `mmuext_op` command 5: load the kernel L4 at `mfn` as the page-table base.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `mmuext_op` command 6: flush this vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `mmuext_op` command 7: invalidate `linear_addr` in this vCPU's TLB.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `mmuext_op` command 8: flush the TLBs of the vCPUs in `vcpumask`.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `mmuext_op` command 9: invalidate `linear_addr` on the vCPUs in `vcpumask`.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `mmuext_op` command 10: flush the TLBs of all the domain's vCPUs.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `mmuext_op` command 11: invalidate `linear_addr` on all the domain's vCPUs.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `mmuext_op` command 12: write back and invalidate the CPU caches (needs cache-flush permission).
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `mmuext_op` command 13: install an LDT at `linear_addr` with `nr_ents` entries.
pub const MMUEXT_SET_LDT: u32 = 13;
// 14 unused (-ENOSYS).
/// `mmuext_op` command 15: set the L4 at `mfn` as the guest user-mode page-table base.
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `mmuext_op` command 16: zero the frame `mfn`.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `mmuext_op` command 17: copy frame `src_mfn` into `mfn`.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `mmuext_op` command 18: write back and invalidate caches on every physical CPU (needs
/// cache-flush permission).
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// Always `-EOPNOTSUPP` today.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// Always `-EOPNOTSUPP` today.
pub const MMUEXT_UNMARK_SUPER: u32 = 20;
/// Maximum `nr_ents` for [`MMUEXT_SET_LDT`].
pub const MMUEXT_SET_LDT_MAX_ENTS: u32 = 8192;

/// `struct mmuext_op`. Written by the guest.
///
/// `arg1` is Xen's union `{ mfn, linear_addr }`; `arg2` is
/// `{ nr_ents (u32), vcpumask (handle), src_mfn }`, kept as a `u64` (the
/// 32-bit member sits in the low half, little-endian).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MmuextOp {
    /// `MMUEXT_*` command.
    pub cmd: u32,
    /// Padding (zero).
    pub _pad: u32,
    /// MFN or linear address, per command.
    pub arg1: u64,
    /// Entry count, vCPU-bitmap pointer or source MFN, per command.
    pub arg2: u64,
}
assert_layout!(MmuextOp, size = 24, cmd = 0, arg1 = 8, arg2 = 16);

impl MmuextOp {
    /// An op with only a command.
    #[must_use]
    pub const fn new(cmd: u32) -> Self {
        Self {
            cmd,
            _pad: 0,
            arg1: 0,
            arg2: 0,
        }
    }

    /// An op whose `arg1` is an MFN (pin/unpin/baseptr/clear).
    #[must_use]
    pub const fn with_mfn(cmd: u32, mfn: u64) -> Self {
        Self {
            cmd,
            _pad: 0,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// An op whose `arg1` is a linear address (invlpg).
    #[must_use]
    pub const fn with_linear_addr(cmd: u32, va: u64) -> Self {
        Self {
            cmd,
            _pad: 0,
            arg1: va,
            arg2: 0,
        }
    }

    /// `SET_LDT` with a page-aligned base and an entry count.
    #[must_use]
    pub const fn set_ldt(linear_addr: u64, nr_ents: u32) -> Self {
        Self {
            cmd: MMUEXT_SET_LDT,
            _pad: 0,
            arg1: linear_addr,
            arg2: nr_ents as u64,
        }
    }

    /// `COPY_PAGE` from `src_mfn` to `dst_mfn`.
    #[must_use]
    pub const fn copy_page(dst_mfn: u64, src_mfn: u64) -> Self {
        Self {
            cmd: MMUEXT_COPY_PAGE,
            _pad: 0,
            arg1: dst_mfn,
            arg2: src_mfn,
        }
    }

    /// `arg1` as an MFN.
    #[must_use]
    pub const fn mfn(&self) -> u64 {
        self.arg1
    }

    /// `arg1` as a linear address.
    #[must_use]
    pub const fn linear_addr(&self) -> u64 {
        self.arg1
    }

    /// `arg2` as `nr_ents` (the low 32 bits of the union).
    #[must_use]
    pub const fn nr_ents(&self) -> u32 {
        (self.arg2 & 0xFFFF_FFFF) as u32
    }

    /// `arg2` as a vCPU-bitmap guest pointer.
    #[must_use]
    pub const fn vcpumask(&self) -> u64 {
        self.arg2
    }

    /// `arg2` as a source MFN.
    #[must_use]
    pub const fn src_mfn(&self) -> u64 {
        self.arg2
    }
}

// --- PTE bits ---------------------------------------------------------------

bitflags::bitflags! {
    /// x86-64 page-table entry bits as Xen validates them for PV64 guests.
    ///
    /// The address field (bits 12–51) is not a flag; see [`PTE_ADDR_MASK`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// Present.
        const PRESENT = 1 << 0;
        /// Writable (a writable L1 mapping takes a writable type ref on the frame).
        const RW = 1 << 1;
        /// User. Xen forces it on for PV64 (see [`PteFlags::GUEST_KERNEL`]).
        const USER = 1 << 2;
        /// Write-through (needs I/O privilege in L1, forbidden above).
        const PWT = 1 << 3;
        /// Cache disable (needs I/O privilege in L1, forbidden above).
        const PCD = 1 << 4;
        /// Accessed.
        const ACCESSED = 1 << 5;
        /// Dirty.
        const DIRTY = 1 << 6;
        /// PAT in an L1 entry; PSE in L2/L3 (PSE is forbidden for PV).
        const PAT = 1 << 7;
        /// Page size (L2/L3): forbidden for PV guests.
        const PSE = 1 << 7;
        /// Global: forbidden above L1; Xen sets it on user L1 mappings.
        const GLOBAL = 1 << 8;
        /// Software-available bit 9.
        const AVAIL0 = 1 << 9;
        /// Software-available bit 10.
        const AVAIL1 = 1 << 10;
        /// Software-available bit 11.
        const AVAIL2 = 1 << 11;
        /// Bit 52: Xen's "guest kernel page" marker set by its L1 rewrite.
        const GUEST_KERNEL = 1 << 52;
        /// Bit 62: grant-mapping marker in debug Xen builds (forbidden there).
        const GNTTAB = 1 << 62;
        /// No-execute.
        const NX = 1 << 63;
    }
}

/// Mask of the frame-address bits (12–51) of a PTE.
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Mask of the software-available high bits (52–62).
pub const PTE_AVAIL_HIGH_MASK: u64 = 0x7FF0_0000_0000_0000;
/// Number of entries in one page-table page.
pub const PT_ENTRIES: usize = 512;
/// L4 index of a virtual address.
#[must_use]
pub const fn l4_index(va: u64) -> usize {
    ((va >> 39) & 0x1FF) as usize
}
/// L3 index of a virtual address.
#[must_use]
pub const fn l3_index(va: u64) -> usize {
    ((va >> 30) & 0x1FF) as usize
}
/// L2 index of a virtual address.
#[must_use]
pub const fn l2_index(va: u64) -> usize {
    ((va >> 21) & 0x1FF) as usize
}
/// L1 index of a virtual address.
#[must_use]
pub const fn l1_index(va: u64) -> usize {
    ((va >> 12) & 0x1FF) as usize
}

/// A PTE mapping machine frame `mfn` with `flags`.
#[must_use]
pub const fn make_pte(mfn: u64, flags: PteFlags) -> u64 {
    ((mfn << super::XEN_PAGE_SHIFT) & PTE_ADDR_MASK) | flags.bits()
}

/// The machine frame a PTE points at.
#[must_use]
pub const fn pte_mfn(pte: u64) -> u64 {
    (pte & PTE_ADDR_MASK) >> super::XEN_PAGE_SHIFT
}
