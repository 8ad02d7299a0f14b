//! Host tests of the typed hypercall wrappers: each test plays the
//! hypervisor with `RecordingHypercall` / `ScriptedHypercall` and checks the
//! hypercall number, argument registers, the bytes of the argument struct the
//! wrapper passed, and how negative returns map to `Errno`.
//!
//! Needs the `testing` feature (on for `cargo test -p guest-abi`).
#![cfg(feature = "testing")]
#![expect(clippy::cast_possible_truncation)] // tests

use std::cell::{Cell, RefCell};

use guest_abi::abi::evtchn::*;
use guest_abi::abi::gnttab::*;
use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::memory::*;
use guest_abi::abi::mmu::*;
use guest_abi::abi::sched::*;
use guest_abi::abi::vcpu::*;
use guest_abi::abi::xen::VcpuTimeInfo;
use guest_abi::abi::{DomId, Errno, EvtchnPort, GrantRef, GuestVa, MachineAddr, Mfn, Pfn};
use guest_abi::gnttab::{GnttabError, GrantEntryAtomic, TransferState};
use guest_abi::hypercall::testing::{HvCall, RecordingHypercall, ScriptedHypercall};
use guest_abi::mmu::{BatchError, MmuBatch};
use guest_abi::pvclock::{self, TimeInfoSource};
use guest_abi::{callback, console, evtchn, gnttab, memory, mmu, sched, vcpu, version};
use zerocopy::{FromBytes, IntoBytes};

/// Reads the argument struct at `args[i]`.
fn arg<T: FromBytes>(c: &HvCall, i: usize) -> T {
    // SAFETY: the wrappers under test pass, in `args[i]`, a pointer to a live
    // `T` they keep borrowed for the whole call.
    unsafe { c.read::<T>(c.args[i]) }
}

/// Writes the argument struct back at `args[i]` (Xen's OUT fields).
fn set_arg<T: IntoBytes + zerocopy::Immutable>(c: &HvCall, i: usize, v: &T) {
    // SAFETY: as in `arg`; the wrapper's buffer is mutably borrowed for the call.
    unsafe { c.write(c.args[i], v) }
}

// --- event channels -----------------------------------------------------------------

#[test]
fn evtchn_alloc_unbound_passes_struct_and_returns_port() {
    let seen = RefCell::new(None);
    let h = ScriptedHypercall::new(|c| {
        let mut a: EvtchnAllocUnbound = arg(c, 1);
        *seen.borrow_mut() = Some((c.nr, c.args[0], a));
        a.port = 17;
        set_arg(c, 1, &a);
        0
    });
    let port = evtchn::alloc_unbound(&h, DomId(0)).unwrap();
    assert_eq!(port, EvtchnPort(17));
    let (n, cmd, a) = seen.borrow().unwrap();
    assert_eq!(n, nr::EVENT_CHANNEL_OP);
    assert_eq!(cmd, u64::from(EVTCHNOP_ALLOC_UNBOUND));
    assert_eq!(a.as_bytes(), &[0xF0, 0x7F, 0, 0, 0, 0, 0, 0]);
    assert_eq!(h.calls()[0].args[2..], [0, 0, 0]);
}

#[test]
fn evtchn_bind_interdomain_and_virq_and_ipi() {
    let h = ScriptedHypercall::new(|c| match c.args[0] as u32 {
        EVTCHNOP_BIND_INTERDOMAIN => {
            let mut a: EvtchnBindInterdomain = arg(c, 1);
            assert_eq!((a.remote_dom, a.remote_port), (5, 9));
            a.local_port = 3;
            set_arg(c, 1, &a);
            0
        }
        EVTCHNOP_BIND_VIRQ => {
            let mut a: EvtchnBindVirq = arg(c, 1);
            assert_eq!((a.virq, a.vcpu), (VIRQ_TIMER, 1));
            a.port = 4;
            set_arg(c, 1, &a);
            0
        }
        EVTCHNOP_BIND_IPI => {
            let mut a: EvtchnBindIpi = arg(c, 1);
            a.port = 5 + a.vcpu;
            set_arg(c, 1, &a);
            0
        }
        _ => Errno::ENOSYS.to_ret(),
    });
    assert_eq!(
        evtchn::bind_interdomain(&h, DomId(5), EvtchnPort(9)),
        Ok(EvtchnPort(3))
    );
    assert_eq!(evtchn::bind_virq(&h, VIRQ_TIMER, 1), Ok(EvtchnPort(4)));
    assert_eq!(evtchn::bind_ipi(&h, 2), Ok(EvtchnPort(7)));
    assert_eq!(evtchn::reset(&h, DomId::SELF), Err(Errno::ENOSYS));
}

#[test]
fn evtchn_simple_ops_pass_port_and_map_errors() {
    let log = RefCell::new(Vec::new());
    let h = ScriptedHypercall::new(|c| {
        let cmd = c.args[0] as u32;
        let word: u32 = arg(c, 1);
        log.borrow_mut().push((cmd, word));
        if cmd == EVTCHNOP_SEND {
            Errno::EINVAL.to_ret()
        } else {
            0
        }
    });
    evtchn::close(&h, EvtchnPort(11)).unwrap();
    assert_eq!(evtchn::send(&h, EvtchnPort(12)), Err(Errno::EINVAL));
    evtchn::unmask(&h, EvtchnPort(13)).unwrap();
    evtchn::bind_vcpu(&h, EvtchnPort(14), 3).unwrap();
    assert_eq!(
        *log.borrow(),
        [
            (EVTCHNOP_CLOSE, 11),
            (EVTCHNOP_SEND, 12),
            (EVTCHNOP_UNMASK, 13),
            (EVTCHNOP_BIND_VCPU, 14)
        ]
    );
}

#[test]
fn evtchn_status_decodes_interdomain() {
    let h = ScriptedHypercall::new(|c| {
        let mut s: EvtchnStatus = arg(c, 1);
        assert_eq!((s.dom, s.port), (0x7FF0, 6));
        s.status = EVTCHNSTAT_INTERDOMAIN;
        s.vcpu = 2;
        s.u = [7, 99];
        set_arg(c, 1, &s);
        0
    });
    let (st, vcpu) = evtchn::status(&h, DomId::SELF, EvtchnPort(6)).unwrap();
    assert_eq!(
        st,
        evtchn::PortStatus::Interdomain {
            dom: DomId(7),
            port: EvtchnPort(99)
        }
    );
    assert_eq!(vcpu, 2);
}

// --- grant tables ----------------------------------------------------------------

#[test]
fn gnttab_setup_table_fills_frame_list() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::GRANT_TABLE_OP);
        assert_eq!(c.args[0], u64::from(GNTTABOP_SETUP_TABLE));
        assert_eq!(c.args[2], 1, "count");
        let a: GnttabSetupTable = arg(c, 1);
        assert_eq!((a.dom, a.nr_frames), (0x7FF0, 2));
        // SAFETY: frame_list points at the caller's 2-element u64 array.
        unsafe { c.write_slice(a.frame_list, &[0x100u64, 0x101]) };
        0
    });
    let mut frames = [0u64; 2];
    gnttab::setup_table(&h, &mut frames).unwrap();
    assert_eq!(frames, [0x100, 0x101]);
}

#[test]
fn gnttab_map_reports_status_and_handle() {
    let h = ScriptedHypercall::new(|c| {
        let mut a: GnttabMapGrantRef = arg(c, 1);
        if a.ref_ == 8 {
            a.status = GNTST_OKAY;
            a.handle = 0x42;
            a.dev_bus_addr = 0x1000;
        } else {
            a.status = GNTST_BAD_GNTREF;
        }
        set_arg(c, 1, &a);
        0
    });
    let flags = GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP;
    let m = gnttab::map_grant_ref(&h, 0xB000, flags, GrantRef(8), DomId(1)).unwrap();
    assert_eq!((m.handle, m.dev_bus_addr), (0x42, 0x1000));
    assert_eq!(
        gnttab::map_grant_ref(&h, 0xB000, flags, GrantRef(9), DomId(1)),
        Err(GnttabError::Status(GntStatus::BAD_GNTREF))
    );
    let r = RecordingHypercall::with_results([Errno::EFAULT.to_ret()]);
    assert_eq!(
        gnttab::query_size(&r),
        Err(GnttabError::Hypercall(Errno::EFAULT))
    );
    assert_eq!(r.last().unwrap().args[0], u64::from(GNTTABOP_QUERY_SIZE));
}

#[test]
fn gnttab_batch_copy_passes_count_and_elements() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.args[0], u64::from(GNTTABOP_COPY));
        assert_eq!(c.args[2], 2);
        // SAFETY: args[1] points at the caller's 2-element GnttabCopy slice.
        let mut ops: Vec<GnttabCopy> = unsafe { c.read_slice(c.args[1], 2) };
        assert_eq!(ops[1].len, 20);
        ops[0].status = GNTST_OKAY;
        ops[1].status = GNTST_BAD_COPY_ARG;
        // SAFETY: as above.
        unsafe { c.write_slice(c.args[1], &ops) };
        0
    });
    let mut ops = [
        GnttabCopy {
            len: 10,
            ..Default::default()
        },
        GnttabCopy {
            len: 20,
            ..Default::default()
        },
    ];
    gnttab::copy(&h, &mut ops).unwrap();
    assert_eq!((ops[0].status, ops[1].status), (0, GNTST_BAD_COPY_ARG));
}

#[test]
fn gnttab_transfer_and_versions() {
    let h = ScriptedHypercall::new(|c| match c.args[0] as u32 {
        GNTTABOP_TRANSFER => {
            let mut t: GnttabTransfer = arg(c, 1);
            assert_eq!((t.mfn, t.domid, t.ref_), (0x55, 3, 12));
            t.status = GNTST_BAD_PAGE;
            set_arg(c, 1, &t);
            0
        }
        GNTTABOP_SET_VERSION => {
            let mut v: GnttabSetVersion = arg(c, 1);
            v.version = 1;
            set_arg(c, 1, &v);
            0
        }
        GNTTABOP_GET_VERSION => {
            let mut v: GnttabGetVersion = arg(c, 1);
            v.version = 1;
            set_arg(c, 1, &v);
            0
        }
        _ => Errno::ENOSYS.to_ret(),
    });
    assert_eq!(
        gnttab::transfer(&h, Mfn(0x55), DomId(3), GrantRef(12)),
        Err(GnttabError::Status(GntStatus::BAD_PAGE))
    );
    assert_eq!(gnttab::set_version(&h, 2), Ok(1));
    assert_eq!(gnttab::get_version(&h, DomId::SELF), Ok(1));
}

fn table(n: usize) -> Vec<GrantEntryAtomic> {
    (0..n).map(|_| GrantEntryAtomic::default()).collect()
}

#[test]
fn grant_access_writes_entry_and_end_access_revokes_when_idle() {
    let t = table(16);
    gnttab::grant_access(&t[..], GrantRef(9), DomId(2), Mfn(0x1234), true).unwrap();
    let e = t[9].load();
    assert_eq!(
        e,
        GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS | GTF_READONLY,
            domid: 2,
            frame: 0x1234
        }
    );
    // In use by the grantee: revocation refused, entry intact.
    t[9].flags
        .fetch_or(GTF_READING, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        gnttab::end_access(&t[..], GrantRef(9)),
        Err(gnttab::EntryError::Busy(_))
    ));
    assert_ne!(t[9].load().flags, 0);
    t[9].flags
        .fetch_and(!GTF_READING, std::sync::atomic::Ordering::SeqCst);
    gnttab::end_access(&t[..], GrantRef(9)).unwrap();
    assert_eq!(t[9].load().flags, 0);
    assert_eq!(
        gnttab::grant_access(&t[..], GrantRef(16), DomId(2), Mfn(1), false),
        Err(gnttab::EntryError::NoSuchRef)
    );
}

#[test]
fn transfer_offer_is_exactly_accept_transfer_and_completes() {
    let t = table(8);
    gnttab::offer_transfer(&t[..], GrantRef(3), DomId(7), Pfn(0x42)).unwrap();
    assert_eq!(
        t[3].load(),
        GrantEntryV1 {
            flags: GTF_ACCEPT_TRANSFER,
            domid: 7,
            frame: 0x42
        }
    );
    assert_eq!(
        gnttab::transfer_state(&t[..], GrantRef(3)),
        Ok(TransferState::Offered)
    );
    // Xen commits, writes the new MFN, then sets completed.
    t[3].flags
        .fetch_or(GTF_TRANSFER_COMMITTED, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        gnttab::transfer_state(&t[..], GrantRef(3)),
        Ok(TransferState::Committed)
    );
    assert!(
        gnttab::revoke_transfer(&t[..], GrantRef(3)).is_err(),
        "committed offers cannot be revoked"
    );
    assert!(gnttab::finish_transfer(&t[..], GrantRef(3)).is_err());
    t[3].frame
        .store(0x9999, std::sync::atomic::Ordering::SeqCst);
    t[3].flags
        .fetch_or(GTF_TRANSFER_COMPLETED, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        gnttab::transfer_state(&t[..], GrantRef(3)),
        Ok(TransferState::Completed(Mfn(0x9999)))
    );
    assert_eq!(
        gnttab::finish_transfer(&t[..], GrantRef(3)),
        Ok(Mfn(0x9999))
    );
    assert_eq!(t[3].load().flags, 0);
}

#[test]
fn uncommitted_transfer_offer_can_be_revoked() {
    let t = table(4);
    gnttab::offer_transfer(&t[..], GrantRef(1), DomId(7), Pfn(5)).unwrap();
    assert!(gnttab::offer_transfer(&t[..], GrantRef(1), DomId(7), Pfn(6)).is_err());
    gnttab::revoke_transfer(&t[..], GrantRef(1)).unwrap();
    assert_eq!(t[1].load().flags, 0);
}

// --- mmu ------------------------------------------------------------------------------

#[test]
fn mmu_update_passes_array_count_pdone_and_foreigndom() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::MMU_UPDATE);
        assert_eq!(c.args[1], 2);
        assert_eq!(c.args[3], 0x7FF0);
        // SAFETY: args[0] points at the caller's 2 MmuUpdate requests.
        let reqs: Vec<MmuUpdate> = unsafe { c.read_slice(c.args[0], 2) };
        assert_eq!(reqs[1], MmuUpdate::machphys(5, 6));
        set_arg(c, 2, &2u32);
        0
    });
    let mut reqs = [MmuUpdate::normal(0x1000, 1), MmuUpdate::machphys(5, 6)];
    assert_eq!(mmu::mmu_update(&h, &mut reqs, mmu::FOREIGNDOM_SELF), Ok(2));
    assert_eq!(mmu::foreigndom(DomId(1), Some(DomId(2))), (3 << 16) | 1);
}

#[test]
fn mmuext_helpers_encode_ops() {
    let ops = RefCell::new(Vec::new());
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::MMUEXT_OP);
        assert_eq!(c.args[1], 1);
        ops.borrow_mut().push(arg::<MmuextOp>(c, 0));
        0
    });
    mmu::pin_table(&h, mmu::PtLevel::L4, Mfn(0x77)).unwrap();
    mmu::new_baseptr(&h, Mfn(0x77)).unwrap();
    mmu::invlpg_local(&h, GuestVa(0x4000)).unwrap();
    mmu::tlb_flush_local(&h).unwrap();
    assert_eq!(mmu::set_ldt(&h, GuestVa(0), 8193), Err(Errno::EINVAL));
    let ops = ops.borrow();
    assert_eq!(ops[0], MmuextOp::with_mfn(MMUEXT_PIN_L4_TABLE, 0x77));
    assert_eq!(ops[1].cmd, MMUEXT_NEW_BASEPTR);
    assert_eq!(
        (ops[2].cmd, ops[2].linear_addr()),
        (MMUEXT_INVLPG_LOCAL, 0x4000)
    );
    assert_eq!(ops[3].cmd, MMUEXT_TLB_FLUSH_LOCAL);
    assert_eq!(ops.len(), 4);
}

#[test]
fn update_va_mapping_uses_registers_only() {
    let r = RecordingHypercall::with_results([0, Errno::EINVAL.to_ret()]);
    mmu::update_va_mapping(&r, GuestVa(0x5000), 0x1234_0003, UVMF_INVLPG | UVMF_ALL).unwrap();
    assert_eq!(
        mmu::update_va_mapping_otherdomain(&r, GuestVa(0x6000), 0, UVMF_NONE, DomId(4)),
        Err(Errno::EINVAL)
    );
    let calls = r.calls();
    assert_eq!(calls[0].nr, nr::UPDATE_VA_MAPPING);
    assert_eq!(calls[0].args, [0x5000, 0x1234_0003, 6, 0, 0]);
    assert_eq!(calls[1].nr, nr::UPDATE_VA_MAPPING_OTHERDOMAIN);
    assert_eq!(calls[1].args, [0x6000, 0, 0, 4, 0]);
}

#[test]
fn mmu_batch_flushes_when_full_and_on_flush() {
    let batches = RefCell::new(Vec::new());
    let h = ScriptedHypercall::new(|c| {
        let n = c.args[1] as usize;
        // SAFETY: args[0] points at the batch's `n` queued requests.
        let reqs: Vec<MmuUpdate> = unsafe { c.read_slice(c.args[0], n) };
        batches
            .borrow_mut()
            .push(reqs.iter().map(|r| r.val).collect::<Vec<_>>());
        set_arg(c, 2, &u32::try_from(n).unwrap());
        0
    });
    let mut b = MmuBatch::<3>::default();
    for v in 0..7u64 {
        b.update_pte(&h, MachineAddr(0x1000 + 8 * v), v).unwrap();
    }
    assert_eq!(*batches.borrow(), [vec![0, 1, 2], vec![3, 4, 5]]);
    assert_eq!(b.pending().len(), 1);
    assert_eq!(b.flush(&h), Ok(1));
    assert_eq!(b.flush(&h), Ok(0), "empty flush makes no call");
    assert_eq!(h.calls().len(), 3);
    assert_eq!(b.total_done(), 7);
}

#[test]
fn mmu_batch_error_mid_batch_reports_done_count() {
    let h = ScriptedHypercall::new(|c| {
        // Apply 2 of the requests, fail the third.
        set_arg(c, 2, &2u32);
        Errno::EINVAL.to_ret()
    });
    let mut b = MmuBatch::<4>::new(mmu::FOREIGNDOM_SELF);
    b.set_m2p(&h, Mfn(1), Pfn(1)).unwrap();
    b.set_m2p(&h, Mfn(2), Pfn(2)).unwrap();
    b.set_m2p(&h, Mfn(3), Pfn(3)).unwrap();
    assert_eq!(
        b.flush(&h),
        Err(BatchError {
            errno: Errno::EINVAL,
            done: 2
        })
    );
    assert_eq!(b.total_done(), 2);
    assert!(b.pending().is_empty(), "a failed batch is dropped");
    let e: Errno = BatchError {
        errno: Errno::EPERM,
        done: 0,
    }
    .into();
    assert_eq!(e, Errno::EPERM);
}

#[test]
fn mmu_batch_error_on_auto_flush_surfaces_from_push() {
    let h = RecordingHypercall::with_results([Errno::ENOMEM.to_ret()]);
    let mut b = MmuBatch::<2>::default();
    b.push(&h, MmuUpdate::normal(0, 0)).unwrap();
    let err = b.push(&h, MmuUpdate::normal(8, 0)).unwrap_err();
    assert_eq!(
        err,
        BatchError {
            errno: Errno::ENOMEM,
            done: 0
        }
    );
}

// --- sched ------------------------------------------------------------------------------

#[test]
fn sched_ops_pass_cmd_and_structs() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::SCHED_OP);
        match c.args[0] as u32 {
            SCHEDOP_YIELD | SCHEDOP_BLOCK => {
                assert_eq!(c.args[1], 0);
                0
            }
            SCHEDOP_SHUTDOWN => {
                let s: SchedShutdown = arg(c, 1);
                if s.reason == SHUTDOWN_SUSPEND {
                    assert_eq!(c.args[2], 0xABC, "start_info MFN in rdx");
                    1
                } else {
                    Errno::EPERM.to_ret()
                }
            }
            SCHEDOP_POLL => {
                let p: SchedPoll = arg(c, 1);
                assert_eq!((p.nr_ports, p.timeout), (2, 5000));
                // SAFETY: p.ports points at the wrapper's port array.
                let ports: Vec<u32> = unsafe { c.read_slice(p.ports, 2) };
                assert_eq!(ports, [3, 4]);
                0
            }
            SCHEDOP_WATCHDOG => {
                let w: SchedWatchdog = arg(c, 1);
                assert_eq!((w.id, w.timeout), (0, 30));
                1
            }
            SCHEDOP_REMOTE_SHUTDOWN => {
                let r: SchedRemoteShutdown = arg(c, 1);
                assert_eq!((r.domain_id, r.reason), (9, SHUTDOWN_REBOOT));
                0
            }
            _ => Errno::ENOSYS.to_ret(),
        }
    });
    sched::yield_(&h).unwrap();
    sched::block(&h).unwrap();
    assert_eq!(sched::shutdown(&h, SHUTDOWN_POWEROFF), Err(Errno::EPERM));
    assert_eq!(sched::suspend(&h, Mfn(0xABC)), Ok(true));
    sched::poll(&h, &[EvtchnPort(3), EvtchnPort(4)], 5000).unwrap();
    assert_eq!(sched::watchdog(&h, 0, 30), Ok(1));
    sched::remote_shutdown(&h, DomId(9), SHUTDOWN_REBOOT).unwrap();
    assert_eq!(
        sched::poll(&h, &[EvtchnPort(0); 129], 0),
        Err(Errno::EINVAL)
    );
}

#[test]
fn set_timer_op_passes_absolute_time() {
    let r = RecordingHypercall::new();
    sched::set_timer_op(&r, 123_456).unwrap();
    assert_eq!(r.last().unwrap().nr, nr::SET_TIMER_OP);
    assert_eq!(r.last().unwrap().args, [123_456, 0, 0, 0, 0]);
}

// --- console / version ----------------------------------------------------------------

#[test]
fn console_write_passes_count_and_buffer() {
    let got = RefCell::new(Vec::new());
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::CONSOLE_IO);
        assert_eq!(c.args[0], 0);
        // SAFETY: args[2] points at `args[1]` bytes of the caller's buffer.
        *got.borrow_mut() = unsafe { c.read_slice::<u8>(c.args[2], c.args[1] as usize) };
        0
    });
    console::write(&h, b"hello\n").unwrap();
    assert_eq!(*got.borrow(), b"hello\n");
    let r = RecordingHypercall::with_results([Errno::EPERM.to_ret(), 3]);
    assert_eq!(console::write(&r, b"x"), Err(Errno::EPERM));
    let mut buf = [0u8; 8];
    assert_eq!(console::read(&r, &mut buf), Ok(3));
    assert_eq!(r.last().unwrap().args[..2], [1, 8]);
}

#[test]
fn version_and_features() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::XEN_VERSION);
        match c.args[0] as u32 {
            0 => (4 << 16) | 23,
            6 => {
                let mut f: guest_abi::abi::version::XenFeatureInfo = arg(c, 1);
                assert_eq!(f.submap_idx, 0);
                f.submap = guest_abi::abi::version::XENFEAT_PV64_DOMU_DEFAULT;
                set_arg(c, 1, &f);
                0
            }
            7 => 4096,
            _ => Errno::ENOSYS.to_ret(),
        }
    });
    assert_eq!(version::version(&h), Ok((4, 23)));
    assert_eq!(version::has_feature(&h, 5), Ok(true));
    assert_eq!(version::has_feature(&h, 2), Ok(false));
    assert_eq!(version::pagesize(&h), Ok(4096));
    assert_eq!(version::platform_parameters(&h), Err(Errno::ENOSYS));
}

// --- vcpu ------------------------------------------------------------------------------

#[test]
fn vcpu_ops_pass_cmd_vcpu_and_arg() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::VCPU_OP);
        match c.args[0] as u32 {
            VCPUOP_IS_UP => 1,
            VCPUOP_UP | VCPUOP_DOWN | VCPUOP_STOP_PERIODIC_TIMER => 0,
            VCPUOP_SET_PERIODIC_TIMER => {
                let t: VcpuSetPeriodicTimer = arg(c, 2);
                if t.period_ns < VCPU_PERIODIC_TIMER_MIN_NS {
                    Errno::EINVAL.to_ret()
                } else {
                    0
                }
            }
            VCPUOP_SET_SINGLESHOT_TIMER => {
                let t: VcpuSetSingleshotTimer = arg(c, 2);
                assert_eq!((t.timeout_abs_ns, t.flags), (777, VCPU_SSHOTTMR_FUTURE));
                0
            }
            VCPUOP_REGISTER_VCPU_INFO => {
                let r: VcpuRegisterVcpuInfo = arg(c, 2);
                assert_eq!((r.mfn, r.offset, r.rsvd), (0x33, 64, 0));
                0
            }
            VCPUOP_INITIALISE => {
                let ctx: VcpuGuestContext = arg(c, 2);
                assert_eq!(ctx.user_regs.rip, 0x1234);
                assert_eq!(ctx.ctrlreg[3], 0x5000);
                0
            }
            _ => Errno::ENOSYS.to_ret(),
        }
    });
    assert_eq!(vcpu::is_up(&h, 1), Ok(true));
    vcpu::up(&h, 1).unwrap();
    vcpu::down(&h, 1).unwrap();
    assert_eq!(vcpu::set_periodic_timer(&h, 0, 10), Err(Errno::EINVAL));
    vcpu::set_periodic_timer(&h, 0, VCPU_DEFAULT_PERIOD_NS).unwrap();
    vcpu::stop_periodic_timer(&h, 0).unwrap();
    vcpu::set_singleshot_timer(&h, 0, 777, VCPU_SSHOTTMR_FUTURE).unwrap();
    vcpu::register_vcpu_info(&h, 2, Mfn(0x33), 64).unwrap();
    assert_eq!(
        vcpu::register_vcpu_info(&h, 2, Mfn(0x33), 4090),
        Err(Errno::EINVAL)
    );
    let mut ctx = VcpuGuestContext::default();
    ctx.user_regs.rip = 0x1234;
    ctx.ctrlreg[3] = Mfn(5).to_cr3();
    vcpu::initialise(&h, 1, &ctx).unwrap();
    assert!(h.calls().iter().all(|c| c.args[3..] == [0, 0]));
    assert_eq!(h.calls()[0].args[1], 1, "vcpu id in rsi");
}

// --- memory ------------------------------------------------------------------------------

#[test]
fn memory_reservation_ops() {
    let h = ScriptedHypercall::new(|c| {
        assert_eq!(c.nr, nr::MEMORY_OP);
        match c.args[0] {
            XENMEM_POPULATE_PHYSMAP | XENMEM_DECREASE_RESERVATION => {
                let r: XenMemoryReservation = arg(c, 1);
                assert_eq!((r.nr_extents, r.extent_order, r.domid), (3, 0, 0x7FF0));
                if c.args[0] == XENMEM_POPULATE_PHYSMAP {
                    // SAFETY: extent_start points at the caller's 3 PFNs.
                    let pfns: Vec<u64> = unsafe { c.read_slice(r.extent_start, 3) };
                    let mfns: Vec<u64> = pfns.iter().map(|p| p + 0x1000).collect();
                    // SAFETY: as above.
                    unsafe { c.write_slice(r.extent_start, &mfns[..2]) };
                    2
                } else {
                    3
                }
            }
            XENMEM_CURRENT_RESERVATION => {
                let d: XenMemoryDomain = arg(c, 1);
                assert_eq!(d.domid, 0x7FF0);
                256
            }
            XENMEM_MAXIMUM_RAM_PAGE => 0xF_FFFF,
            XENMEM_MACHPHYS_MAPPING => {
                let m = XenMachphysMapping {
                    v_start: 0xFFFF_8000_0000_0000,
                    v_end: 0xFFFF_8040_0000_0000,
                    max_mfn: 9,
                };
                set_arg(c, 1, &m);
                0
            }
            XENMEM_MEMORY_MAP => {
                let mut m: XenMemoryMap = arg(c, 1);
                assert_eq!(m.nr_entries, 4);
                let e = [E820Entry {
                    addr: 0,
                    size: 0x1000,
                    type_: E820_RAM,
                }];
                // SAFETY: m.buffer points at the caller's 4-entry array.
                unsafe { c.write_slice(m.buffer, &e) };
                m.nr_entries = 1;
                set_arg(c, 1, &m);
                0
            }
            _ => Errno::ENOSYS.to_ret(),
        }
    });
    let mut pfns = [1u64, 2, 3];
    assert_eq!(memory::populate_physmap(&h, &mut pfns, 0, 0), Ok(2));
    assert_eq!(pfns, [0x1001, 0x1002, 3]);
    assert_eq!(memory::decrease_reservation(&h, &mut [7, 8, 9], 0), Ok(3));
    assert_eq!(memory::current_reservation(&h, DomId::SELF), Ok(256));
    assert_eq!(memory::maximum_ram_page(&h), Ok(0xF_FFFF));
    assert_eq!(
        memory::machphys_mapping(&h).unwrap().v_end,
        0xFFFF_8040_0000_0000
    );
    let mut map = [E820Entry::default(); 4];
    assert_eq!(memory::memory_map(&h, &mut map), Ok(1));
    assert_eq!({ map[0].size }, 0x1000);
    assert_eq!(
        memory::increase_reservation(&h, &mut [0], 0, 0),
        Err(Errno::ENOSYS)
    );
}

// --- callbacks ------------------------------------------------------------------------------

#[test]
fn callback_wrappers() {
    let h = ScriptedHypercall::new(|c| match c.nr {
        nr::SET_CALLBACKS | nr::STACK_SWITCH | nr::SET_SEGMENT_BASE | nr::FPU_TASKSWITCH => 0,
        nr::CALLBACK_OP => {
            let r: guest_abi::abi::callback::CallbackRegister = arg(c, 1);
            assert_eq!((r.type_, r.flags, r.address), (2, 1, 0xFFFF_8800_0000_2000));
            0
        }
        nr::SET_TRAP_TABLE => {
            // SAFETY: args[0] points at the caller's 2-entry trap table.
            let t: Vec<guest_abi::abi::callback::TrapInfo> = unsafe { c.read_slice(c.args[0], 2) };
            assert_eq!((t[0].vector, t[0].dpl(), t[1].address), (14, 0, 0));
            0
        }
        _ => Errno::ENOSYS.to_ret(),
    });
    callback::set_callbacks(&h, GuestVa(1), GuestVa(2), GuestVa(3)).unwrap();
    callback::register(&h, 2, 1, GuestVa(0xFFFF_8800_0000_2000)).unwrap();
    use guest_abi::abi::callback::TrapInfo;
    let table = [TrapInfo::new(14, 0, true, 0x1000), TrapInfo::default()];
    callback::set_trap_table(&h, &table).unwrap();
    assert_eq!(
        callback::set_trap_table(&h, &table[..1]),
        Err(Errno::EINVAL)
    );
    callback::stack_switch(&h, 0xE02B, GuestVa(0x8000)).unwrap();
    callback::fpu_taskswitch(&h, true).unwrap();
    let calls = h.calls();
    assert_eq!(calls[0].args[..3], [1, 2, 3]);
    assert_eq!(calls.last().unwrap().args[0], 1);
    assert_eq!(calls[3].args[..2], [0xE02B, 0x8000]);
    let f = guest_abi::abi::callback::IretFrame::to_user(0x400000, 0x7FFF_0000, 0);
    assert_eq!((f.cs, f.ss, f.rflags), (0xE033, 0xE02B, 0x202));
    let k = guest_abi::abi::callback::IretFrame::to_kernel(1, 2, 0x200, false).in_syscall();
    assert_eq!((k.cs & 3, k.rflags & 0x200, k.flags), (0, 0, 0x100));
}

// --- pvclock ----------------------------------------------------------------------------

#[test]
fn pvclock_system_time_uses_signed_shift_and_wide_multiply() {
    let t = VcpuTimeInfo {
        tsc_timestamp: 1000,
        system_time: 5_000,
        tsc_to_system_mul: 0x8000_0000, // 0.5 ns per (shifted) tick
        tsc_shift: -1,
        ..Default::default()
    };
    // delta 400 >> 1 = 200, * 0.5 = 100.
    assert_eq!(t.system_time(1400), 5_100);
    let t2 = VcpuTimeInfo { tsc_shift: 2, ..t };
    assert_eq!(t2.system_time(1400), 5_000 + 800);
    // Huge deltas do not overflow the intermediate product.
    let t3 = VcpuTimeInfo {
        tsc_timestamp: 0,
        system_time: 0,
        tsc_to_system_mul: u32::MAX,
        tsc_shift: 0,
        ..t
    };
    assert_eq!(
        t3.system_time(u64::MAX),
        ((u128::from(u64::MAX) * u128::from(u32::MAX)) >> 32) as u64
    );
    // 1 GHz: mul = 2^32, shift 0.
    let ghz = VcpuTimeInfo {
        tsc_to_system_mul: 1 << 31,
        tsc_shift: 1,
        ..t
    };
    assert_eq!(ghz.tsc_frequency_hz(), Some(1_000_000_000));
}

/// A time source whose version changes during the first read.
struct Flaky {
    reads: Cell<u32>,
    info: VcpuTimeInfo,
}

impl TimeInfoSource for Flaky {
    fn version(&self) -> u32 {
        let n = self.reads.get();
        self.reads.set(n + 1);
        match n {
            0 => 3, // odd: update in progress
            1 => 4,
            2 => 6, // changed under us
            _ => 6,
        }
    }
    fn fields(&self) -> VcpuTimeInfo {
        self.info
    }
}

#[test]
fn pvclock_read_retries_until_version_stable() {
    let src = Flaky {
        reads: Cell::new(0),
        info: VcpuTimeInfo {
            system_time: 10,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 1,
            ..Default::default()
        },
    };
    let (snap, tsc) = pvclock::read_consistent(&src, || 50, 10).unwrap();
    assert_eq!(snap.version, 6);
    assert_eq!(tsc, 50);
    assert_eq!(snap.system_time(tsc), 60);
    assert!(src.reads.get() >= 5);
    let stuck = VcpuTimeInfo {
        version: 1,
        ..Default::default()
    };
    assert_eq!(pvclock::read_consistent(&stuck, || 0, 3), None);
}

struct Wc(u32, u32, u32, u32);
impl pvclock::WallclockSource for Wc {
    fn wc_version(&self) -> u32 {
        self.0
    }
    fn wc_fields(&self) -> (u32, u32, u32) {
        (self.1, self.2, self.3)
    }
}

#[test]
fn wallclock_combines_high_seconds_and_adds_system_time() {
    let w = pvclock::read_wallclock(&Wc(2, 5, 900_000_000, 1), 4).unwrap();
    assert_eq!(
        w,
        pvclock::Wallclock {
            sec: (1 << 32) + 5,
            nsec: 900_000_000
        }
    );
    let now = w.at(1_200_000_000);
    assert_eq!(
        now,
        pvclock::Wallclock {
            sec: (1 << 32) + 7,
            nsec: 100_000_000
        }
    );
    assert_eq!(pvclock::read_wallclock(&Wc(1, 0, 0, 0), 4), None);
}
