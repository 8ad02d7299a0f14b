//! `grant_table_op(cmd, uop, count)` (hypercall 20, XEN-PV-ABI §6.1):
//! decoding for [`crate::gnttab`].
//!
//! Batched commands (map, unmap, unmap_and_replace, copy, transfer,
//! swap_grant_ref) copy each element in once, act, and write the element
//! back with its `status` (and other OUT fields); the hypercall returns 0
//! when the batch was processed, `-EFAULT` if an element could not be read
//! or written (elements before it stay done). A batch larger than
//! [`crate::hypercall::BATCH`] is continued: the `syscall` is re-executed with
//! `uop` advanced and `count` reduced, as Xen's continuations do (inside a
//! multicall the whole batch runs at once, up to [`MULTICALL_MAX_BATCH`]). The other commands take exactly
//! one element (`count` ≠ 1 → `-EINVAL`). Bits of `cmd` above the command
//! number (Xen's continuation argument) and a negative `count` are refused
//! with `-EINVAL`; unknown commands get `-ENOSYS`.

use guest_abi::abi::Errno;
use guest_abi::abi::GrantRef;
use guest_abi::abi::gnttab as g;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{BATCH, Ret};
use crate::gnttab::lifecycle::live;
use crate::gnttab::table::{MAX_GRANT_FRAMES, resolve};
use crate::guestmem;
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// Largest batch accepted inside a multicall, where no continuation is
/// possible: a bigger one is refused with `-EINVAL` before anything is done
/// (a guest could otherwise alias one argument page over gigabytes of
/// address space and keep the host CPU for minutes).
pub const MULTICALL_MAX_BATCH: u32 = 1 << 16;

/// `cmd` bits above this are Xen's continuation argument.
const GNTTABOP_CMD_MASK: u64 = (1 << 12) - 1;

/// Handle `grant_table_op` for vCPU `v` of `dom` with arguments `a`
/// (`cmd`, `uop`, `count`).
pub fn grant_table_op(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    a: [u64; 5],
    in_multicall: bool,
) -> Ret {
    // Runtime mappings dropped since the last grant operation go first
    // (Note [Deferred release]), so a guest sees them released.
    crate::gnttab::lifecycle::release_dropped(hv);
    let (cmd, uop) = (a[0], a[1]);
    let raw = a[2] & 0xffff_ffff;
    // `count` is a C int: negative values are refused.
    if raw & 0x8000_0000 != 0 || cmd & !GNTTABOP_CMD_MASK != 0 {
        return Ret::err(Errno::EINVAL);
    }
    let count = u32::try_from(raw).unwrap_or(0);
    let cr3 = hv.cr3(dom, v);
    let ctx = Ctx {
        dom,
        cr3,
        rest: [a[3], a[4]],
        cmd,
        uop,
        count,
        in_multicall,
    };
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::err(Errno::EINVAL);
    };
    match cmd {
        g::GNTTABOP_MAP_GRANT_REF => batch(hv, &ctx, |hv, op: &mut g::GnttabMapGrantRef| {
            match crate::gnttab::map::map_grant_ref(
                &mut hv.gnt(),
                dom,
                cr3,
                op.host_addr,
                op.flags,
                GrantRef(op.ref_),
                DomId(op.dom),
            ) {
                Ok(m) => {
                    op.status = g::GNTST_OKAY;
                    op.handle = m.handle;
                    op.dev_bus_addr = m.dev_bus_addr;
                }
                Err(e) => {
                    tracing::debug!(dom = dom.0, err = %e, "map_grant_ref");
                    op.status = e.status();
                }
            }
        }),
        g::GNTTABOP_UNMAP_GRANT_REF => batch(hv, &ctx, |hv, op: &mut g::GnttabUnmapGrantRef| {
            op.status = crate::gnttab::map::unmap_grant_ref(
                &mut hv.gnt(),
                dom,
                cr3,
                op.host_addr,
                op.dev_bus_addr,
                op.handle,
                None,
            )
            .map_or_else(|e| e.status(), |()| g::GNTST_OKAY);
        }),
        g::GNTTABOP_UNMAP_AND_REPLACE => {
            batch(hv, &ctx, |hv, op: &mut g::GnttabUnmapAndReplace| {
                op.status = crate::gnttab::map::unmap_grant_ref(
                    &mut hv.gnt(),
                    dom,
                    cr3,
                    op.host_addr,
                    0,
                    op.handle,
                    Some(op.new_addr),
                )
                .map_or_else(|e| e.status(), |()| g::GNTST_OKAY);
            })
        }
        g::GNTTABOP_COPY => batch(hv, &ctx, |hv, op: &mut g::GnttabCopy| {
            op.status = crate::gnttab::copy::copy_one(&mut hv.gnt(), dom, op)
                .map_or_else(|e| e.status(), |()| g::GNTST_OKAY);
        }),
        g::GNTTABOP_TRANSFER => batch(hv, &ctx, |hv, op: &mut g::GnttabTransfer| {
            op.status = crate::gnttab::transfer::transfer(
                &mut hv.gnt(),
                dom,
                op.mfn,
                DomId(op.domid),
                GrantRef(op.ref_),
            )
            .map_or_else(|e| e.status(), |()| g::GNTST_OKAY);
        }),
        g::GNTTABOP_SWAP_GRANT_REF => batch(hv, &ctx, |hv, op: &mut g::GnttabSwapGrantRef| {
            op.status = swap_grant_ref(hv, dom, op.ref_a, op.ref_b);
        }),
        g::GNTTABOP_SETUP_TABLE => single(hv, &ctx, setup_table),
        g::GNTTABOP_QUERY_SIZE => single(hv, &ctx, |hv, ctx, op: &mut g::GnttabQuerySize| {
            let target = resolve(DomId(op.dom), ctx.dom);
            op.status = match check_self(hv, ctx.dom, target) {
                Ok(()) => {
                    op.nr_frames = hv
                        .gnttab
                        .table(target)
                        .map_or(0, |t| u32::try_from(t.frames().len()).unwrap_or(0));
                    op.max_nr_frames = MAX_GRANT_FRAMES;
                    g::GNTST_OKAY
                }
                Err(s) => s,
            };
            Ok(())
        }),
        g::GNTTABOP_DUMP_TABLE => single(hv, &ctx, |hv, ctx, op: &mut g::GnttabDumpTable| {
            let target = resolve(DomId(op.dom), ctx.dom);
            op.status = match check_self(hv, ctx.dom, target) {
                Ok(()) => {
                    dump(hv, target);
                    g::GNTST_OKAY
                }
                Err(s) => s,
            };
            Ok(())
        }),
        g::GNTTABOP_SET_VERSION => single(hv, &ctx, |_, _, op: &mut g::GnttabSetVersion| {
            // v2 is not offered: -ENOSYS as Xen with max version 1; the
            // version in force (1) is reported either way.
            let r = match op.version {
                1 => Ok(()),
                2 => Err(Errno::ENOSYS),
                _ => Err(Errno::EINVAL),
            };
            op.version = 1;
            r
        }),
        g::GNTTABOP_GET_VERSION => single(hv, &ctx, |hv, ctx, op: &mut g::GnttabGetVersion| {
            let target = resolve(DomId(op.dom), ctx.dom);
            if target != ctx.dom {
                return Err(if hv.domains.contains_key(&target) {
                    Errno::EPERM
                } else {
                    Errno::ESRCH
                });
            }
            op.version = 1;
            Ok(())
        }),
        g::GNTTABOP_GET_STATUS_FRAMES => {
            single(hv, &ctx, |hv, ctx, op: &mut g::GnttabGetStatusFrames| {
                let target = resolve(DomId(op.dom), ctx.dom);
                op.status = match check_self(hv, ctx.dom, target) {
                    // Status frames exist only for v2 tables.
                    Ok(()) => g::GNTST_GENERAL_ERROR,
                    Err(s) => s,
                };
                Ok(())
            })
        }
        _ => Ret::err(Errno::ENOSYS),
    }
}

/// Decoded hypercall context.
struct Ctx {
    dom: DomId,
    cr3: u64,
    /// The fourth and fifth argument registers, carried into a
    /// continuation unchanged.
    rest: [u64; 2],
    cmd: u64,
    uop: u64,
    count: u32,
    in_multicall: bool,
}

fn batch<T>(hv: &mut Hypervisor, ctx: &Ctx, mut f: impl FnMut(&mut Hypervisor, &mut T)) -> Ret
where
    T: FromBytes + IntoBytes + Immutable,
{
    let size = core::mem::size_of::<T>() as u64;
    let limit = if ctx.in_multicall {
        if ctx.count > MULTICALL_MAX_BATCH {
            return Ret::err(Errno::EINVAL);
        }
        ctx.count
    } else {
        ctx.count.min(BATCH)
    };
    for i in 0..u64::from(limit) {
        let at = ctx.uop.wrapping_add(i * size);
        let Ok(mut op) = guestmem::read_obj::<T>(&hv.mem, ctx.cr3, at) else {
            return Ret::err(Errno::EFAULT);
        };
        f(hv, &mut op);
        if guestmem::copy_to_guest(&hv.mem, &hv.ft, ctx.cr3, at, op.as_bytes()).is_err() {
            return Ret::err(Errno::EFAULT);
        }
    }
    if limit < ctx.count {
        return Ret::Preempted([
            ctx.cmd,
            ctx.uop.wrapping_add(u64::from(limit) * size),
            u64::from(ctx.count - limit),
            ctx.rest[0],
            ctx.rest[1],
        ]);
    }
    Ret::OK
}

fn single<T>(
    hv: &mut Hypervisor,
    ctx: &Ctx,
    f: impl FnOnce(&mut Hypervisor, &Ctx, &mut T) -> Result<(), Errno>,
) -> Ret
where
    T: FromBytes + IntoBytes + Immutable,
{
    if ctx.count != 1 {
        return Ret::err(Errno::EINVAL);
    }
    let Ok(mut op) = guestmem::read_obj::<T>(&hv.mem, ctx.cr3, ctx.uop) else {
        return Ret::err(Errno::EFAULT);
    };
    let r = f(hv, ctx, &mut op);
    if guestmem::copy_to_guest(&hv.mem, &hv.ft, ctx.cr3, ctx.uop, op.as_bytes()).is_err() {
        return Ret::err(Errno::EFAULT);
    }
    Ret::from_result(r)
}

/// An unprivileged domain may only act on its own table.
fn check_self(hv: &Hypervisor, caller: DomId, target: DomId) -> Result<(), i16> {
    if target == caller {
        Ok(())
    } else if live(hv, target) {
        Err(g::GNTST_PERMISSION_DENIED)
    } else {
        Err(g::GNTST_BAD_DOMAIN)
    }
}

fn setup_table(hv: &mut Hypervisor, ctx: &Ctx, op: &mut g::GnttabSetupTable) -> Result<(), Errno> {
    let target = resolve(DomId(op.dom), ctx.dom);
    if let Err(s) = check_self(hv, ctx.dom, target) {
        op.status = s;
        return Ok(());
    }
    if op.nr_frames > MAX_GRANT_FRAMES {
        op.status = g::GNTST_GENERAL_ERROR;
        return Ok(());
    }
    let grown = match hv.gnttab.tables.get_mut(&target) {
        Some(t) => t
            .grow(&hv.mem, &mut hv.ft, &hv.m2p, target, op.nr_frames)
            .is_ok(),
        None => false,
    };
    if !grown {
        op.status = g::GNTST_GENERAL_ERROR;
        return Ok(());
    }
    let frames: Vec<u64> = hv.gnttab.table(target).map_or_else(Vec::new, |t| {
        t.frames()
            .iter()
            .take(usize::try_from(op.nr_frames).unwrap_or(0))
            .map(|f| f.0)
            .collect()
    });
    op.status = g::GNTST_OKAY;
    if !frames.is_empty()
        && guestmem::copy_to_guest(
            &hv.mem,
            &hv.ft,
            ctx.cr3,
            op.frame_list,
            frames.as_slice().as_bytes(),
        )
        .is_err()
    {
        op.status = g::GNTST_BAD_VIRT_ADDR;
    }
    Ok(())
}

/// `GNTTABOP_swap_grant_ref`: swap two unpinned entries of the caller.
fn swap_grant_ref(hv: &mut Hypervisor, dom: DomId, a: u32, b: u32) -> i16 {
    let Some(t) = hv.gnttab.table(dom) else {
        return g::GNTST_BAD_DOMAIN;
    };
    let (Some(pa), Some(pb)) = (t.entry_addr(GrantRef(a)), t.entry_addr(GrantRef(b))) else {
        return g::GNTST_BAD_GNTREF;
    };
    if a == b {
        return g::GNTST_OKAY;
    }
    if t.active(GrantRef(a)).is_some() || t.active(GrantRef(b)).is_some() {
        return g::GNTST_EAGAIN;
    }
    let ea = hv.mem.read_u64(pa).unwrap_or(0);
    let eb = hv.mem.swap_u64(pb, ea).unwrap_or(0);
    let _ = hv.mem.write_u64(pa, eb);
    g::GNTST_OKAY
}

/// `GNTTABOP_dump_table`: log the entries in use.
fn dump(hv: &Hypervisor, dom: DomId) {
    let Some(t) = hv.gnttab.table(dom) else {
        return;
    };
    for gref in 0..t.nr_entries() {
        let Some(at) = t.entry_addr(GrantRef(gref)) else {
            continue;
        };
        let e = hv.mem.read_u64(at).unwrap_or(0);
        if e & 0xffff != 0 {
            tracing::info!(
                dom = %dom,
                gref,
                flags = format_args!("{:#x}", e & 0xffff),
                domid = (e >> 16) & 0xffff,
                frame = format_args!("{:#x}", e >> 32),
                active = ?t.active(GrantRef(gref)),
                "grant entry"
            );
        }
    }
    for (h, m) in t.mappings() {
        tracing::info!(dom = dom.0, handle = h, mapping = ?m, "maptrack");
    }
}
