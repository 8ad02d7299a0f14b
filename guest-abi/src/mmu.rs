//! Page-table update wrappers: `mmu_update` (1), `mmuext_op` (26),
//! `update_va_mapping` (14/22), and [`MmuBatch`].

use core::fmt;

use crate::abi::hypercall_nr::{
    MMU_UPDATE, MMUEXT_OP, UPDATE_VA_MAPPING, UPDATE_VA_MAPPING_OTHERDOMAIN,
};
use crate::abi::mmu::*;
use crate::abi::{DOMID_SELF, DomId, Errno, GuestVa, MachineAddr, Mfn};
use crate::hypercall::{Hypercall, arg_mut, arg_slice_mut, count_u32};

/// A batched MMU call that stopped early.
///
/// Requests `0..done` were applied; request `done` failed with `errno`; later
/// requests were not attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// Why request `done` failed.
    pub errno: Errno,
    /// Requests completed before the failure.
    pub done: u32,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {} failed: {}", self.done, self.errno)
    }
}

impl core::error::Error for BatchError {}

impl From<BatchError> for Errno {
    fn from(e: BatchError) -> Self {
        e.errno
    }
}

/// The `foreigndom` argument: `fd` owns the data frames new L1 entries map;
/// `pfd` (if any, else the caller) owns the page tables being changed.
#[must_use]
pub const fn foreigndom(fd: DomId, pfd: Option<DomId>) -> u32 {
    let hi = match pfd {
        Some(p) => (p.0 as u32 + 1) << 16,
        None => 0,
    };
    hi | fd.0 as u32
}

/// `foreigndom` for ordinary self-updates.
pub const FOREIGNDOM_SELF: u32 = DOMID_SELF as u32;

/// Applies `reqs` in order; returns the number done (all of them on success).
pub fn mmu_update<H: Hypercall + ?Sized>(
    h: &H,
    reqs: &mut [MmuUpdate],
    foreigndom: u32,
) -> Result<u32, BatchError> {
    let count = count_u32(reqs).map_err(|errno| BatchError { errno, done: 0 })?;
    let mut done: u32 = 0;
    let r = h.call(
        MMU_UPDATE,
        [
            arg_slice_mut(reqs),
            u64::from(count),
            arg_mut(&mut done),
            u64::from(foreigndom),
            0,
        ],
    );
    match Errno::check(r) {
        Ok(()) => Ok(count),
        Err(errno) => Err(BatchError { errno, done }),
    }
}

/// Runs extended MMU ops in order; returns the number done.
pub fn mmuext_op<H: Hypercall + ?Sized>(
    h: &H,
    ops: &mut [MmuextOp],
    foreigndom: u32,
) -> Result<u32, BatchError> {
    let count = count_u32(ops).map_err(|errno| BatchError { errno, done: 0 })?;
    let mut done: u32 = 0;
    let r = h.call(
        MMUEXT_OP,
        [
            arg_slice_mut(ops),
            u64::from(count),
            arg_mut(&mut done),
            u64::from(foreigndom),
            0,
        ],
    );
    match Errno::check(r) {
        Ok(()) => Ok(count),
        Err(errno) => Err(BatchError { errno, done }),
    }
}

fn ext1<H: Hypercall + ?Sized>(h: &H, op: MmuextOp) -> Result<(), Errno> {
    let mut ops = [op];
    mmuext_op(h, &mut ops, FOREIGNDOM_SELF)
        .map(drop)
        .map_err(|e| e.errno)
}

/// Page-table level for pinning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtLevel {
    /// Level 1: maps 4 KiB pages.
    L1,
    /// Level 2: page directory.
    L2,
    /// Level 3: page-directory pointer table.
    L3,
    /// Level 4: the root (`cr3`).
    L4,
}

/// Pins `mfn` as a page table of `level`.
pub fn pin_table<H: Hypercall + ?Sized>(h: &H, level: PtLevel, mfn: Mfn) -> Result<(), Errno> {
    let cmd = match level {
        PtLevel::L1 => MMUEXT_PIN_L1_TABLE,
        PtLevel::L2 => MMUEXT_PIN_L2_TABLE,
        PtLevel::L3 => MMUEXT_PIN_L3_TABLE,
        PtLevel::L4 => MMUEXT_PIN_L4_TABLE,
    };
    ext1(h, MmuextOp::with_mfn(cmd, mfn.0))
}

/// Unpins `mfn`.
pub fn unpin_table<H: Hypercall + ?Sized>(h: &H, mfn: Mfn) -> Result<(), Errno> {
    ext1(h, MmuextOp::with_mfn(MMUEXT_UNPIN_TABLE, mfn.0))
}

/// Installs `l4` as the kernel-mode root table.
pub fn new_baseptr<H: Hypercall + ?Sized>(h: &H, l4: Mfn) -> Result<(), Errno> {
    ext1(h, MmuextOp::with_mfn(MMUEXT_NEW_BASEPTR, l4.0))
}

/// Installs `l4` (or none, with `Mfn(0)`) as the user-mode root table.
pub fn new_user_baseptr<H: Hypercall + ?Sized>(h: &H, l4: Mfn) -> Result<(), Errno> {
    ext1(h, MmuextOp::with_mfn(MMUEXT_NEW_USER_BASEPTR, l4.0))
}

/// Flushes this vCPU's TLB.
pub fn tlb_flush_local<H: Hypercall + ?Sized>(h: &H) -> Result<(), Errno> {
    ext1(h, MmuextOp::new(MMUEXT_TLB_FLUSH_LOCAL))
}

/// Flushes the TLBs of all vCPUs of the domain.
pub fn tlb_flush_all<H: Hypercall + ?Sized>(h: &H) -> Result<(), Errno> {
    ext1(h, MmuextOp::new(MMUEXT_TLB_FLUSH_ALL))
}

/// Invalidates `va` on this vCPU.
pub fn invlpg_local<H: Hypercall + ?Sized>(h: &H, va: GuestVa) -> Result<(), Errno> {
    ext1(h, MmuextOp::with_linear_addr(MMUEXT_INVLPG_LOCAL, va.0))
}

/// Invalidates `va` on all vCPUs.
pub fn invlpg_all<H: Hypercall + ?Sized>(h: &H, va: GuestVa) -> Result<(), Errno> {
    ext1(h, MmuextOp::with_linear_addr(MMUEXT_INVLPG_ALL, va.0))
}

/// Installs an LDT at page-aligned `base` with `nr_ents` entries (0 = none).
pub fn set_ldt<H: Hypercall + ?Sized>(h: &H, base: GuestVa, nr_ents: u32) -> Result<(), Errno> {
    if nr_ents > MMUEXT_SET_LDT_MAX_ENTS {
        return Err(Errno::EINVAL);
    }
    ext1(h, MmuextOp::set_ldt(base.0, nr_ents))
}

/// Rewrites the L1 entry mapping `va` to `pte`, with `UVMF_*` flush `flags`.
pub fn update_va_mapping<H: Hypercall + ?Sized>(
    h: &H,
    va: GuestVa,
    pte: u64,
    flags: u64,
) -> Result<(), Errno> {
    Errno::check(h.call(UPDATE_VA_MAPPING, [va.0, pte, flags, 0, 0]))
}

/// [`update_va_mapping`] with data-frame owner `dom`.
pub fn update_va_mapping_otherdomain<H: Hypercall + ?Sized>(
    h: &H,
    va: GuestVa,
    pte: u64,
    flags: u64,
    dom: DomId,
) -> Result<(), Errno> {
    Errno::check(h.call(
        UPDATE_VA_MAPPING_OTHERDOMAIN,
        [va.0, pte, flags, u64::from(dom.0), 0],
    ))
}

/// Accumulates up to `N` `mmu_update` requests and submits them in one
/// hypercall when full or on [`MmuBatch::flush`].
///
/// Xen does not flush the TLB for L1 changes made this way; follow with
/// [`tlb_flush_local`] / [`invlpg_local`] as needed.
#[derive(Debug)]
pub struct MmuBatch<const N: usize> {
    reqs: [MmuUpdate; N],
    len: usize,
    foreigndom: u32,
    total_done: u64,
}

impl<const N: usize> Default for MmuBatch<N> {
    fn default() -> Self {
        Self::new(FOREIGNDOM_SELF)
    }
}

impl<const N: usize> MmuBatch<N> {
    const NONZERO: () = assert!(N > 0, "MmuBatch needs room for at least one request");

    /// An empty batch submitting with `foreigndom`.
    #[must_use]
    pub const fn new(foreigndom: u32) -> Self {
        let () = Self::NONZERO;
        Self {
            reqs: [MmuUpdate { ptr: 0, val: 0 }; N],
            len: 0,
            foreigndom,
            total_done: 0,
        }
    }

    /// Requests queued but not yet submitted.
    #[must_use]
    pub fn pending(&self) -> &[MmuUpdate] {
        self.reqs.get(..self.len).unwrap_or(&[])
    }

    /// Requests completed by all successful and failed flushes so far.
    #[must_use]
    pub const fn total_done(&self) -> u64 {
        self.total_done
    }

    /// Queues `req`; if that fills the batch, submits it.
    ///
    /// On a failed submission the whole batch is dropped (see [`BatchError`]
    /// for what was applied).
    pub fn push<H: Hypercall + ?Sized>(&mut self, h: &H, req: MmuUpdate) -> Result<(), BatchError> {
        if let Some(slot) = self.reqs.get_mut(self.len) {
            *slot = req;
            self.len += 1;
        }
        if self.len == N {
            self.flush(h).map(drop)
        } else {
            Ok(())
        }
    }

    /// Queues a validated PTE write at machine address `pte`.
    pub fn update_pte<H: Hypercall + ?Sized>(
        &mut self,
        h: &H,
        pte: MachineAddr,
        val: u64,
    ) -> Result<(), BatchError> {
        self.push(h, MmuUpdate::normal(pte.0, val))
    }

    /// Queues `M2P[mfn] = pfn`.
    pub fn set_m2p<H: Hypercall + ?Sized>(
        &mut self,
        h: &H,
        mfn: Mfn,
        pfn: crate::abi::Pfn,
    ) -> Result<(), BatchError> {
        self.push(h, MmuUpdate::machphys(mfn.0, pfn.0))
    }

    /// Submits the queued requests (no hypercall if none); returns how many
    /// were applied.
    pub fn flush<H: Hypercall + ?Sized>(&mut self, h: &H) -> Result<u32, BatchError> {
        if self.len == 0 {
            return Ok(0);
        }
        let len = self.len;
        self.len = 0;
        let reqs = self.reqs.get_mut(..len).unwrap_or(&mut []);
        let r = mmu_update(h, reqs, self.foreigndom);
        let done = match r {
            Ok(d) => d,
            Err(e) => e.done,
        };
        self.total_done += u64::from(done);
        r
    }
}
