//! `GNTTABOP_transfer`: page flipping (PV only, XEN-PV-ABI §6.6).
//!
//! The steps, as numbered in §6.6:
//!
//! 1. *Steal*: the sender must own the frame and hold no reference on it
//!    but its allocation (no mapping anywhere, type count 0, not pinned, not
//!    a shared hypervisor page), else `GNTST_bad_page` and the sender keeps
//!    it. From here on, any failure frees the frame: it is lost to the
//!    sender. The sender's `tot_pages` drops and its vCPUs' TLBs are flushed
//!    (a stale translation must not outlive the ownership).
//! 2. The PV sender's physmap is its own business; the runtime's p2m record
//!    forgets the frame.
//! 3. The MFN must fit the v1 entry's 32-bit `frame` (`GNTST_address_too_big`).
//! 4. The receiver must be live (`GNTST_bad_domain` if it does not exist) and
//!    have `tot_pages < max_pages` (`GNTST_general_error`).
//! 5. The receiver's entry must be exactly `GTF_accept_transfer` with
//!    `domid` = sender (and `ref` in range): one atomic compare-exchange adds
//!    `GTF_transfer_committed` (bounded retries), else `GNTST_general_error`.
//! 6. The frame is assigned to the receiver (`tot_pages` + 1, type reset),
//!    `M2P[mfn]` = the PFN slot the receiver put in `frame`, then the MFN is
//!    written into `frame`, and after it (sequentially consistent atomics
//!    order the stores) `GTF_transfer_completed` is ORed into the flags.

use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab::{
    GNTST_ADDRESS_TOO_BIG, GNTST_BAD_DOMAIN, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR,
    GTF_ACCEPT_TRANSFER, GTF_TRANSFER_COMMITTED, GTF_TRANSFER_COMPLETED,
};
use hv_cpu::FlushScope;
use hv_cpu::mem::{MachineAddr, Mfn};

use super::SET_STATUS_RETRIES;
use super::ctx::GntCtx;
use crate::machine::{DomId, M2P_INVALID, Owner, PageType};

/// Why a transfer failed; [`TransferError::status`] is the `GNTST_*`.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum TransferError {
    /// The sender does not own the frame outright (the sender keeps it).
    #[error("frame {0:#x} is not the sender's to give: owned elsewhere, mapped, typed or pinned")]
    BadPage(u64),
    /// No live receiving domain (the frame is lost).
    #[error("no live domain {0} to receive the frame")]
    BadDomain(DomId),
    /// The MFN does not fit a v1 entry (the frame is lost).
    #[error("frame {0:#x} does not fit a 32-bit grant entry")]
    AddressTooBig(u64),
    /// The receiver has no room (the frame is lost).
    #[error("domain {0} has no reservation headroom")]
    NoHeadroom(DomId),
    /// The receiver's entry does not accept a transfer from the sender (the
    /// frame is lost).
    #[error("grant ref {0} does not accept a transfer from the sender")]
    NotAccepting(u32),
}

impl TransferError {
    /// The `GNTST_*` Xen reports.
    #[must_use]
    pub fn status(&self) -> i16 {
        match self {
            Self::BadPage(_) => GNTST_BAD_PAGE,
            Self::BadDomain(_) => GNTST_BAD_DOMAIN,
            Self::AddressTooBig(_) => GNTST_ADDRESS_TOO_BIG,
            Self::NoHeadroom(_) | Self::NotAccepting(_) => GNTST_GENERAL_ERROR,
        }
    }

    /// Whether the sender still owns the frame after this failure.
    #[must_use]
    pub fn sender_keeps_page(&self) -> bool {
        matches!(self, Self::BadPage(_))
    }
}

/// Give `mfn`, owned by `sender`, to `receiver` through its accept-transfer
/// entry `gref`.
///
/// # Errors
/// See [`TransferError`] (and [`TransferError::sender_keeps_page`]).
pub fn transfer(
    hv: &mut GntCtx<'_>,
    sender: DomId,
    mfn: u64,
    receiver: DomId,
    gref: GrantRef,
) -> Result<(), TransferError> {
    let frame = Mfn(mfn);
    // 1. Steal.
    let stealable = hv.ft.get(frame).is_some_and(|p| {
        p.owner == Owner::Dom(sender)
            && p.allocated
            && p.count == 1
            && p.type_count == 0
            && !p.pinned
            && !p.xen_heap
    });
    if !stealable {
        return Err(TransferError::BadPage(mfn));
    }
    let old_pfn = hv.m2p.get(hv.mem, frame).unwrap_or(M2P_INVALID);
    if let Some(d) = hv.domains.get_mut(&sender) {
        d.tot_pages = d.tot_pages.saturating_sub(1);
        // 2. Forget the frame in the sender's p2m record.
        if let Some(slot) = usize::try_from(old_pfn).ok().and_then(|p| d.p2m.get_mut(p))
            && *slot == frame
        {
            *slot = Mfn(M2P_INVALID);
        }
    }
    hv.flush_tlbs(sender, FlushScope::All);
    match give(hv, sender, frame, receiver, gref) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Lost to the sender: free it.
            let _ = hv.m2p.set(hv.mem, frame, M2P_INVALID);
            if let Some(p) = hv.ft.get_mut(frame) {
                p.allocated = false;
            }
            hv.mm().put_page(frame);
            Err(e)
        }
    }
}

fn give(
    hv: &mut GntCtx<'_>,
    sender: DomId,
    frame: Mfn,
    receiver: DomId,
    gref: GrantRef,
) -> Result<(), TransferError> {
    // 3.
    let Ok(f32) = u32::try_from(frame.0) else {
        return Err(TransferError::AddressTooBig(frame.0));
    };
    // 4.
    let Some(d) = hv.domains.get(&receiver) else {
        return Err(TransferError::BadDomain(receiver));
    };
    let Some(t) = hv.gnttab.table(receiver) else {
        return Err(TransferError::BadDomain(receiver));
    };
    if d.shutdown.is_some() || t.ended() || d.tot_pages >= d.max_pages {
        return Err(TransferError::NoHeadroom(receiver));
    }
    // 5.
    let at = t
        .entry_addr(gref)
        .ok_or(TransferError::NotAccepting(gref.0))?;
    commit(hv, at, gref, sender)?;
    // 6.
    if let Some(p) = hv.ft.get_mut(frame) {
        p.owner = Owner::Dom(receiver);
        p.ty = PageType::None;
        p.validated = false;
        p.linear = 0;
    }
    let pfn = u64::from(hv.mem.read_u32(MachineAddr(at.0 + 4)).unwrap_or(0));
    let _ = hv.m2p.set(hv.mem, frame, pfn);
    if let Some(d) = hv.domains.get_mut(&receiver) {
        d.tot_pages += 1;
        if let Some(slot) = usize::try_from(pfn).ok().and_then(|p| d.p2m.get_mut(p)) {
            *slot = frame;
        }
    }
    let _ = hv.mem.write_u32(MachineAddr(at.0 + 4), f32);
    let _ = hv.mem.fetch_or_u64(at, u64::from(GTF_TRANSFER_COMPLETED));
    Ok(())
}

/// Add `GTF_transfer_committed` to an entry that is exactly
/// `GTF_accept_transfer` for `sender`.
fn commit(
    hv: &GntCtx<'_>,
    at: MachineAddr,
    gref: GrantRef,
    sender: DomId,
) -> Result<(), TransferError> {
    let bad = TransferError::NotAccepting(gref.0);
    let mut cur = hv.mem.load_u32_acquire(at).map_err(|_| bad)?;
    for _ in 0..SET_STATUS_RETRIES {
        let flags = cur & 0xffff;
        let domid = cur >> 16;
        if flags != u32::from(GTF_ACCEPT_TRANSFER) || domid != u32::from(sender.0) {
            return Err(bad);
        }
        let want = cur | u32::from(GTF_TRANSFER_COMMITTED);
        let seen = hv.mem.cmpxchg_u32(at, cur, want).map_err(|_| bad)?;
        if seen == cur {
            return Ok(());
        }
        cur = seen;
    }
    Err(bad)
}
