//! `GNTTABOP_copy`: the hypervisor copies bytes between two frames, each
//! named by a grant ref of some domain (`GNTCOPY_source_gref` /
//! `GNTCOPY_dest_gref`) or by one of the caller's own frames (`domid` must
//! then be `DOMID_SELF`).
//!
//! Each side is claimed for the duration of the copy as Xen does: a grant
//! side is pinned (read-only for the source, writable for the destination —
//! Note [Grant pinning]) and the frame gets a general reference, plus a
//! writable type reference on the destination so that it cannot be a page
//! table. The checks run in Xen's order: domains, source, destination, then
//! `offset + len ≤ 4096` on both sides (`GNTST_bad_copy_arg`).

use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab::{
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTST_BAD_COPY_ARG, GNTST_BAD_DOMAIN, GNTST_BAD_PAGE,
    GNTST_GENERAL_ERROR, GNTST_PERMISSION_DENIED, GnttabCopy,
};
use hv_cpu::mem::{MachineAddr, Mfn, PAGE_SIZE};

use super::ctx::GntCtx;
use super::{PinError, Pins, pin, unpin};
use crate::machine::{DomId, PageType};
use crate::mm::MmError;

/// Why a copy failed; [`CopyError::status`] is the `GNTST_*`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyError {
    /// A frame side names another domain than `DOMID_SELF`.
    #[error("a frame (not grant) side must name DOMID_SELF, not {0}")]
    NotSelf(DomId),
    /// The named domain does not exist or has ended.
    #[error("no live domain {0}")]
    BadDomain(DomId),
    /// A grant side could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// A frame side is not the caller's frame.
    #[error("frame {0:#x} is not the caller's")]
    BadPage(u64),
    /// The destination cannot be written (e.g. it is a page table).
    #[error("frame {frame:#x} cannot be written: {source}")]
    NotWritable {
        /// Frame.
        frame: u64,
        /// What the page-type rules said.
        #[source]
        source: MmError,
    },
    /// `offset + len` passes the end of a page.
    #[error("copy of {len} bytes at offsets {src}/{dst} crosses a page end")]
    BadCopyArg {
        /// Source offset.
        src: u16,
        /// Destination offset.
        dst: u16,
        /// Length.
        len: u16,
    },
}

impl CopyError {
    /// The `GNTST_*` Xen reports.
    #[must_use]
    pub fn status(&self) -> i16 {
        match self {
            Self::NotSelf(_) => GNTST_PERMISSION_DENIED,
            Self::BadDomain(_) => GNTST_BAD_DOMAIN,
            Self::Pin(p) => p.status(),
            Self::BadPage(_) => GNTST_BAD_PAGE,
            Self::NotWritable { .. } => GNTST_GENERAL_ERROR,
            Self::BadCopyArg { .. } => GNTST_BAD_COPY_ARG,
        }
    }
}

/// One claimed side of a copy.
#[derive(Clone, Copy, Debug)]
struct Claim {
    frame: Mfn,
    /// `(granter, gref)` for a grant side.
    grant: Option<(DomId, u32)>,
    writable: bool,
}

fn side_domain(caller: DomId, domid: DomId, is_gref: bool) -> Result<DomId, CopyError> {
    if !is_gref && domid != DomId::SELF {
        return Err(CopyError::NotSelf(domid));
    }
    Ok(super::resolve(domid, caller))
}

fn claim(
    hv: &mut GntCtx<'_>,
    caller: DomId,
    dom: DomId,
    u: u64,
    is_gref: bool,
    writable: bool,
) -> Result<Claim, CopyError> {
    if is_gref {
        let gref = u32::try_from(u & 0xffff_ffff).unwrap_or(u32::MAX);
        let incr = Pins::incr(true, false, !writable);
        let frame = {
            let t = hv.gnttab.table_mut(dom).ok_or(CopyError::BadDomain(dom))?;
            pin(hv.mem, hv.ft, t, dom, GrantRef(gref), caller, incr)?
        };
        let mut m = hv.mm();
        let r = if writable {
            m.get_page_and_type(frame, PageType::Writable, dom)
        } else {
            m.get_page(frame, dom)
        };
        if let Err(source) = r {
            if let Some(t) = hv.gnttab.table_mut(dom) {
                unpin(hv.mem, t, GrantRef(gref), incr);
            }
            return Err(CopyError::NotWritable {
                frame: frame.0,
                source,
            });
        }
        Ok(Claim {
            frame,
            grant: Some((dom, gref)),
            writable,
        })
    } else {
        let frame = Mfn(u);
        hv.mm()
            .get_page(frame, caller)
            .map_err(|_| CopyError::BadPage(u))?;
        if writable && let Err(source) = hv.mm().get_page_type(frame, PageType::Writable, caller) {
            hv.mm().put_page(frame);
            return Err(CopyError::NotWritable { frame: u, source });
        }
        Ok(Claim {
            frame,
            grant: None,
            writable,
        })
    }
}

fn release(hv: &mut GntCtx<'_>, c: Claim) {
    if c.writable {
        hv.mm().put_page_and_type(c.frame);
    } else {
        hv.mm().put_page(c.frame);
    }
    if let Some((dom, gref)) = c.grant
        && let Some(t) = hv.gnttab.table_mut(dom)
    {
        unpin(
            hv.mem,
            t,
            GrantRef(gref),
            Pins::incr(true, false, !c.writable),
        );
    }
}

/// One `GNTTABOP_copy` on behalf of `caller`.
///
/// # Errors
/// See [`CopyError`]; no byte is copied then and every pin is dropped.
pub fn copy_one(hv: &mut GntCtx<'_>, caller: DomId, op: &GnttabCopy) -> Result<(), CopyError> {
    let src_gref = op.flags & GNTCOPY_SOURCE_GREF != 0;
    let dst_gref = op.flags & GNTCOPY_DEST_GREF != 0;
    let sd = side_domain(caller, DomId(op.source.domid), src_gref)?;
    let dd = side_domain(caller, DomId(op.dest.domid), dst_gref)?;
    for d in [sd, dd] {
        if !hv.live(d) {
            return Err(CopyError::BadDomain(d));
        }
    }
    let src = claim(hv, caller, sd, op.source.u, src_gref, false)?;
    let dst = match claim(hv, caller, dd, op.dest.u, dst_gref, true) {
        Ok(d) => d,
        Err(e) => {
            release(hv, src);
            return Err(e);
        }
    };
    let r = do_copy(hv, op, src.frame, dst.frame);
    release(hv, dst);
    release(hv, src);
    r
}

fn do_copy(hv: &GntCtx<'_>, op: &GnttabCopy, src: Mfn, dst: Mfn) -> Result<(), CopyError> {
    let (so, dof, len) = (
        u64::from(op.source.offset),
        u64::from(op.dest.offset),
        u64::from(op.len),
    );
    if so + len > PAGE_SIZE || dof + len > PAGE_SIZE {
        return Err(CopyError::BadCopyArg {
            src: op.source.offset,
            dst: op.dest.offset,
            len: op.len,
        });
    }
    hv.mem
        .copy_within(
            MachineAddr(src.addr().0 + so),
            MachineAddr(dst.addr().0 + dof),
            len,
        )
        .map_err(|_| CopyError::BadPage(src.0))
}
