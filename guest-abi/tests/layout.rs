//! Golden layout tests: the compile-time checks in `guest_abi::abi` made
//! visible as runtime facts, by writing known values and checking the bytes
//! at the offsets `XEN-PV-ABI.md` gives.

#![expect(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use core::mem::size_of;

use guest_abi::abi::blkif::*;
use guest_abi::abi::callback::*;
use guest_abi::abi::console::XenconsInterface;
use guest_abi::abi::evtchn::*;
use guest_abi::abi::gnttab::*;
use guest_abi::abi::hypercall_nr;
use guest_abi::abi::memory::*;
use guest_abi::abi::mmu::*;
use guest_abi::abi::netif::*;
use guest_abi::abi::vcpu::*;
use guest_abi::abi::xen::*;
use guest_abi::abi::xenbus::XenbusState;
use guest_abi::abi::xenstore::*;
use guest_abi::abi::{Errno, ring_entries};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

fn bytes_at<T: IntoBytes + Immutable>(v: &T, off: usize, len: usize) -> &[u8] {
    &v.as_bytes()[off..off + len]
}

fn u64_at<T: IntoBytes + Immutable>(v: &T, off: usize) -> u64 {
    u64::from_le_bytes(bytes_at(v, off, 8).try_into().unwrap())
}

fn u32_at<T: IntoBytes + Immutable>(v: &T, off: usize) -> u32 {
    u32::from_le_bytes(bytes_at(v, off, 4).try_into().unwrap())
}

fn u16_at<T: IntoBytes + Immutable>(v: &T, off: usize) -> u16 {
    u16::from_le_bytes(bytes_at(v, off, 2).try_into().unwrap())
}

#[test]
fn start_info_fields_land_at_reference_offsets() {
    let mut si = StartInfo::new_zeroed();
    si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
    si.nr_pages = 0x1111;
    si.shared_info = 0x2222_0000;
    si.flags = SIF_INITDOMAIN | SIF_PRIVILEGED;
    si.store_mfn = 0x3333;
    si.store_evtchn = 7;
    si.console.mfn = 0x4444;
    si.console.evtchn = 9;
    si.pt_base = 0x5555;
    si.nr_pt_frames = 6;
    si.mfn_list = 0x7777;
    si.mod_start = 0x8888;
    si.mod_len = 0x9999;
    si.cmd_line[0] = b'q';
    si.first_p2m_pfn = 0xAAAA;
    si.nr_p2m_frames = 0xBBBB;
    assert_eq!(size_of::<StartInfo>(), 1168);
    assert_eq!(bytes_at(&si, 0, 15), b"xen-3.0-x86_64\0");
    assert_eq!(si.magic_str(), START_INFO_MAGIC_X86_64);
    assert_eq!(u64_at(&si, 32), 0x1111);
    assert_eq!(u64_at(&si, 40), 0x2222_0000);
    assert_eq!(u32_at(&si, 48), 3);
    assert_eq!(u64_at(&si, 56), 0x3333);
    assert_eq!(u32_at(&si, 64), 7);
    assert_eq!(u64_at(&si, 72), 0x4444);
    assert_eq!(u32_at(&si, 80), 9);
    assert_eq!(u64_at(&si, 88), 0x5555);
    assert_eq!(u64_at(&si, 96), 6);
    assert_eq!(u64_at(&si, 104), 0x7777);
    assert_eq!(u64_at(&si, 112), 0x8888);
    assert_eq!(u64_at(&si, 120), 0x9999);
    assert_eq!(bytes_at(&si, 128, 1), b"q");
    assert_eq!(si.cmd_line_bytes(), b"q");
    assert_eq!(u64_at(&si, 1152), 0xAAAA);
    assert_eq!(u64_at(&si, 1160), 0xBBBB);
}

#[test]
fn start_info_dom0_console_view_overlays_domu_mfn() {
    let mut si = StartInfo::new_zeroed();
    si.as_mut_bytes()[72..76].copy_from_slice(&1168u32.to_le_bytes());
    si.as_mut_bytes()[76..80].copy_from_slice(&24u32.to_le_bytes());
    assert_eq!(si.console.dom0_info_off(), 1168);
    assert_eq!(si.console.dom0_info_size(), 24);
}

#[test]
fn shared_info_and_vcpu_info_offsets() {
    let mut s = SharedInfo::new_zeroed();
    s.vcpu_info[1].evtchn_upcall_pending = 1;
    s.vcpu_info[1].evtchn_upcall_mask = 1;
    s.vcpu_info[1].evtchn_pending_sel = 0x8000_0000_0000_0001;
    s.vcpu_info[1].arch.cr2 = 0xDEAD_B000;
    s.vcpu_info[1].time.version = 5;
    s.vcpu_info[1].time.tsc_shift = -2;
    s.evtchn_pending[1] = 0xAB;
    s.evtchn_mask[63] = 0xCD;
    s.wc_version = 2;
    s.wc_sec = 0x1234_5678;
    s.wc_nsec = 999;
    s.wc_sec_hi = 1;
    s.arch.max_pfn = 0x10;
    s.arch.p2m_generation = 0x20;
    assert_eq!(size_of::<SharedInfo>(), 3136);
    assert_eq!(size_of::<VcpuInfo>(), 64);
    let v1 = vcpu_info_offset(1);
    assert_eq!(v1, 64);
    assert_eq!(bytes_at(&s, v1, 2), &[1, 1]);
    assert_eq!(u64_at(&s, v1 + 8), 0x8000_0000_0000_0001);
    assert_eq!(u64_at(&s, v1 + 16), 0xDEAD_B000);
    assert_eq!(u32_at(&s, v1 + 32), 5);
    assert_eq!(bytes_at(&s, v1 + 32 + 28, 1), &[0xFE]); // signed shift -2
    assert_eq!(u64_at(&s, 2048 + 8), 0xAB);
    assert_eq!(u64_at(&s, 2560 + 63 * 8), 0xCD);
    assert_eq!(u32_at(&s, 3072), 2);
    assert_eq!(u32_at(&s, 3076), 0x1234_5678);
    assert_eq!(u32_at(&s, 3080), 999);
    assert_eq!(u32_at(&s, 3084), 1);
    assert_eq!(u64_at(&s, 3088), 0x10);
    assert_eq!(u64_at(&s, 3088 + 40), 0x20);
}

#[test]
fn vcpu_time_info_layout() {
    let t = VcpuTimeInfo {
        version: 1,
        tsc_timestamp: 2,
        system_time: 3,
        tsc_to_system_mul: 4,
        tsc_shift: 5,
        flags: XEN_PVCLOCK_TSC_STABLE_BIT,
        ..Default::default()
    };
    assert_eq!(size_of::<VcpuTimeInfo>(), 32);
    assert_eq!(u32_at(&t, 0), 1);
    assert_eq!(u64_at(&t, 8), 2);
    assert_eq!(u64_at(&t, 16), 3);
    assert_eq!(u32_at(&t, 24), 4);
    assert_eq!(bytes_at(&t, 28, 2), &[5, 1]);
}

#[test]
fn vcpu_guest_context_and_cpu_user_regs_layout() {
    let mut c = VcpuGuestContext::new_zeroed();
    c.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    c.user_regs.rip = 0xFFFF_8800_0000_1000;
    c.user_regs.cs = FLAT_KERNEL_CS;
    c.user_regs.saved_upcall_mask = 1;
    c.user_regs.ss = FLAT_KERNEL_SS;
    c.user_regs.gs = 0x2B;
    c.trap_ctxt[255] = TrapInfo::new(255, 3, true, 0x1234);
    c.ctrlreg[3] = 0x42 << 12;
    c.kernel_sp = 0x9000;
    c.gs_base_user = 0x77;
    assert_eq!(size_of::<VcpuGuestContext>(), 5168);
    assert_eq!(size_of::<CpuUserRegs>(), 200);
    assert_eq!(u64_at(&c, 512), 0x24);
    assert_eq!(u64_at(&c, 520 + 128), 0xFFFF_8800_0000_1000);
    assert_eq!(u16_at(&c, 520 + 136), 0xE033);
    assert_eq!(bytes_at(&c, 520 + 140, 1), &[1]);
    assert_eq!(u16_at(&c, 520 + 160), 0xE02B);
    assert_eq!(u16_at(&c, 520 + 192), 0x2B);
    let t = 720 + 255 * 16;
    assert_eq!(bytes_at(&c, t, 4), &[255, 3 | 4, 0x33, 0xE0]);
    assert_eq!(u64_at(&c, t + 8), 0x1234);
    assert_eq!(u64_at(&c, 4984 + 3 * 8), 0x42 << 12);
    assert_eq!(u64_at(&c, 4976), 0x9000);
    assert_eq!(u64_at(&c, 5160), 0x77);
}

#[test]
fn mmu_structs_and_pte_helpers() {
    let u = MmuUpdate::normal(0x1234_5008, 0xABC);
    assert_eq!(size_of::<MmuUpdate>(), 16);
    assert_eq!(u64_at(&u, 0), 0x1234_5008);
    assert_eq!(u.cmd(), MMU_NORMAL_PT_UPDATE);
    let m = MmuUpdate::machphys(0x55, 0x66);
    assert_eq!(m.ptr, (0x55 << 12) | 1);
    assert_eq!(m.addr(), 0x55 << 12);
    let op = MmuextOp::set_ldt(0x7000, 3);
    assert_eq!(size_of::<MmuextOp>(), 24);
    assert_eq!(u32_at(&op, 0), 13);
    assert_eq!(u64_at(&op, 8), 0x7000);
    assert_eq!(u32_at(&op, 16), 3);
    assert_eq!(op.nr_ents(), 3);
    let pte = make_pte(0x1234, PteFlags::PRESENT | PteFlags::RW | PteFlags::NX);
    assert_eq!(pte, 0x8000_0000_0123_4003);
    assert_eq!(pte_mfn(pte), 0x1234);
    assert_eq!(l4_index(HYPERVISOR_VIRT_START), 256);
    assert_eq!(l4_index(HYPERVISOR_VIRT_END), 272);
    assert!(XEN_L4_SLOTS.contains(&271) && !XEN_L4_SLOTS.contains(&272));
}

#[test]
fn e820_entry_is_packed_20_bytes() {
    let e = E820Entry {
        addr: 0x1000,
        size: 0x2000,
        type_: E820_RAM,
    };
    assert_eq!(size_of::<E820Entry>(), 20);
    assert_eq!(core::mem::align_of::<E820Entry>(), 1);
    assert_eq!(
        e.as_bytes(),
        &[
            0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0
        ]
    );
    let two = [
        e,
        E820Entry {
            addr: 5,
            size: 6,
            type_: E820_RESERVED,
        },
    ];
    assert_eq!(u32_at(&two, 36), E820_RESERVED);
}

#[test]
fn memory_op_structs() {
    let r = XenMemoryReservation {
        extent_start: 0x1000,
        nr_extents: 3,
        extent_order: 9,
        mem_flags: xenmemf_address_bits(32) | xenmemf_node(0),
        domid: 0x7FF0,
        _pad: [0; 6],
    };
    assert_eq!(u64_at(&r, 0), 0x1000);
    assert_eq!(u64_at(&r, 8), 3);
    assert_eq!(u32_at(&r, 16), 9);
    assert_eq!(u32_at(&r, 20), 0x120);
    assert_eq!(u16_at(&r, 24), 0x7FF0);
    let x = XenMemoryExchange {
        in_: r,
        out: r,
        nr_exchanged: 7,
    };
    assert_eq!(u64_at(&x, 32 + 8), 3);
    assert_eq!(u64_at(&x, 64), 7);
    let a = XenAddToPhysmap {
        domid: 1,
        size: 2,
        space: XENMAPSPACE_GMFN_FOREIGN,
        idx: 3,
        gpfn: 4,
    };
    assert_eq!(u32_at(&a, 4), 4);
    assert_eq!(u64_at(&a, 16), 4);
}

#[test]
fn evtchn_structs() {
    let b = EvtchnBindInterdomain {
        remote_dom: 3,
        _pad: 0,
        remote_port: 5,
        local_port: 7,
    };
    assert_eq!(b.as_bytes(), &[3, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0]);
    let a = EvtchnAllocUnbound {
        dom: 0x7FF0,
        remote_dom: 0,
        port: 9,
    };
    assert_eq!(a.as_bytes(), &[0xF0, 0x7F, 0, 0, 9, 0, 0, 0]);
    let mut s = EvtchnStatus::new_zeroed();
    s.as_mut_bytes()[16..18].copy_from_slice(&4u16.to_le_bytes());
    s.as_mut_bytes()[20..24].copy_from_slice(&33u32.to_le_bytes());
    assert_eq!(s.interdomain_dom(), 4);
    assert_eq!(s.interdomain_port(), 33);
    assert_eq!(size_of::<EvtchnStatus>(), 24);
    assert_eq!(size_of::<EvtchnReset>(), 2);
    let op = EvtchnOp::new(EVTCHNOP_SEND, &EvtchnSend { port: 12 }).unwrap();
    assert_eq!(size_of::<EvtchnOp>(), 28);
    assert_eq!(u32_at(&op, 4), 12);
    assert_eq!(op.arg::<EvtchnSend>(), Some(EvtchnSend { port: 12 }));
}

#[test]
fn grant_structs() {
    let e = GrantEntryV1 {
        flags: GTF_PERMIT_ACCESS | GTF_READONLY,
        domid: 2,
        frame: 0x1234,
    };
    assert_eq!(e.as_bytes(), &[5, 0, 2, 0, 0x34, 0x12, 0, 0]);
    let m = GnttabMapGrantRef {
        host_addr: 0xA000,
        flags: GNTMAP_HOST_MAP | GNTMAP_READONLY,
        ref_: 8,
        dom: 1,
        status: GNTST_BAD_GNTREF,
        handle: 0x55,
        dev_bus_addr: 0x66,
    };
    assert_eq!(u64_at(&m, 0), 0xA000);
    assert_eq!(u32_at(&m, 8), 6);
    assert_eq!(u32_at(&m, 12), 8);
    assert_eq!(u16_at(&m, 16), 1);
    assert_eq!(u16_at(&m, 18), 0xFFFD);
    assert_eq!(u32_at(&m, 20), 0x55);
    assert_eq!(u64_at(&m, 24), 0x66);
    let c = GnttabCopy {
        source: GnttabCopyPtr::gref(3, 10, 100),
        dest: GnttabCopyPtr::gmfn(0x999, 200),
        len: 64,
        flags: GNTCOPY_SOURCE_GREF,
        ..Default::default()
    };
    assert_eq!(u32_at(&c, 0), 10);
    assert_eq!(u16_at(&c, 8), 3);
    assert_eq!(u16_at(&c, 10), 100);
    assert_eq!(u64_at(&c, 16), 0x999);
    assert_eq!(u16_at(&c, 24), 0x7FF0);
    assert_eq!(u16_at(&c, 26), 200);
    assert_eq!(u16_at(&c, 32), 64);
    assert_eq!(u16_at(&c, 34), 1);
    let t = GnttabTransfer {
        mfn: 0x77,
        domid: 4,
        ref_: 9,
        status: -9,
        ..Default::default()
    };
    assert_eq!(u16_at(&t, 8), 4);
    assert_eq!(u32_at(&t, 12), 9);
    assert_eq!(u16_at(&t, 16), 0xFFF7);
    assert_eq!(size_of::<GrantEntryV2>(), 16);
    assert_eq!(GntStatus(-12), GntStatus::EAGAIN);
}

#[test]
fn callback_and_frames() {
    let r = CallbackRegister {
        type_: CALLBACKTYPE_NMI,
        flags: CALLBACKF_MASK_EVENTS,
        _pad: 0,
        address: 0xFFFF_8800_0000_0000,
    };
    assert_eq!(bytes_at(&r, 0, 4), &[4, 0, 1, 0]);
    assert_eq!(u64_at(&r, 8), 0xFFFF_8800_0000_0000);
    assert_eq!(size_of::<IretContext>(), 72);
    assert_eq!(size_of::<FailsafeFrame>(), 88);
    assert_eq!(bounce_offset_with_ec(BOUNCE_SS), 56);
    assert!(vector_has_error_code(14) && !vector_has_error_code(3));
    let b = BounceFrame {
        cs: (1 << 32) | 0xE033,
        ..Default::default()
    };
    assert_eq!(b.saved_upcall_mask(), 1);
    assert_eq!(b.cs_selector(), 0xE033);
}

#[test]
fn reserved_gdt_selectors() {
    assert_eq!(FLAT_KERNEL_CS, 0xE033);
    assert_eq!(FLAT_KERNEL_SS, 0xE02B);
    assert_eq!(FLAT_RING3_CS32, 0xE023);
    assert_eq!(FLAT_KERNEL_DS, 0);
    assert_eq!(gdt_entry(FLAT_RING3_DS32), 7173);
    assert_eq!(FLAT_RING3_CS64_DESC, 0x00AF_FB00_0000_FFFF);
}

#[test]
fn console_and_xenstore_rings() {
    let mut c = XenconsInterface::new_zeroed();
    c.out_prod = 5;
    c.connection = 1;
    assert_eq!(size_of::<XenconsInterface>(), 3092);
    assert_eq!(u32_at(&c, 3084), 5);
    assert_eq!(bytes_at(&c, 3088, 1), &[1]);
    let mut x = XenstoreDomainInterface::new_zeroed();
    x.req_prod = 3;
    x.rsp_prod = 4;
    x.evtchn_port = 9;
    assert_eq!(u32_at(&x, 2052), 3);
    assert_eq!(u32_at(&x, 2060), 4);
    assert_eq!(u32_at(&x, 2076), 9);
    let h = XsdSockmsg {
        type_: XS_WATCH_EVENT,
        req_id: 0,
        tx_id: 0,
        len: 6,
    };
    assert_eq!(
        h.as_bytes(),
        &[15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0]
    );
    assert_eq!(XsType::from_u32(20), None);
    assert_eq!(XsType::from_u32(22), Some(XsType::DirectoryPart));
    assert_eq!(XS_INVALID, 0xFFFF);
    assert_eq!(mask_xenstore_idx(1025), 1);
}

#[test]
fn xenstore_error_table_is_in_reference_order() {
    let names: Vec<&str> = XS_ERRORS.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        names,
        [
            "EINVAL",
            "EACCES",
            "EEXIST",
            "EISDIR",
            "ENOENT",
            "ENOMEM",
            "ENOSPC",
            "EIO",
            "ENOTEMPTY",
            "ENOSYS",
            "EROFS",
            "EBUSY",
            "EAGAIN",
            "EISCONN",
            "E2BIG",
            "EPERM"
        ]
    );
    for (e, n) in XS_ERRORS {
        assert_eq!(e.name(), Some(n));
    }
    assert_eq!(xs_error_errno(b"ENOENT\0"), Errno::ENOENT);
    assert_eq!(xs_error_errno(b"EWHAT"), Errno::EINVAL);
}

#[test]
fn xenbus_states_round_trip() {
    for s in XenbusState::ALL {
        assert_eq!(XenbusState::parse(s.as_str().as_bytes()), Some(s));
        assert_eq!(XenbusState::from_u32(s as u32), Some(s));
    }
    assert_eq!(XenbusState::parse(b"4\0"), Some(XenbusState::Connected));
    assert_eq!(XenbusState::parse(b"9"), None);
}

#[test]
fn blkif_layouts_and_ring_size() {
    let mut r = BlkifRequest::new_zeroed();
    r.operation = BLKIF_OP_WRITE;
    r.nr_segments = 11;
    r.handle = 0x0300;
    r.id = 0xAABB;
    r.sector_number = 0x10;
    r.seg[10] = BlkifRequestSegment {
        gref: 0x99,
        first_sect: 0,
        last_sect: 7,
        _pad: 0,
    };
    assert_eq!(size_of::<BlkifRequest>(), 112);
    assert_eq!(bytes_at(&r, 0, 4), &[1, 11, 0, 3]);
    assert_eq!(u64_at(&r, 8), 0xAABB);
    assert_eq!(u64_at(&r, 16), 0x10);
    assert_eq!(u32_at(&r, 24 + 80), 0x99);
    assert_eq!(bytes_at(&r, 24 + 84, 2), &[0, 7]);
    let rsp = BlkifResponse {
        id: 1,
        operation: 1,
        status: BLKIF_RSP_EOPNOTSUPP,
        ..Default::default()
    };
    assert_eq!(u16_at(&rsp, 10), 0xFFFE);
    let ind = BlkifRequestIndirect {
        indirect_grefs: [1, 2, 3, 4, 5, 6, 7, 8],
        handle: 5,
        ..Default::default()
    };
    assert_eq!(u16_at(&ind, 24), 5);
    assert_eq!(u32_at(&ind, 28 + 7 * 4), 8);
    assert_eq!(BLKIF_RING_SIZE, 32);
    assert_eq!(ring_entries(size_of::<BlkifRequest>()), 32);
}

#[test]
fn netif_layouts_and_ring_sizes() {
    let t = NetifTxRequest {
        gref: 1,
        offset: 2,
        flags: NETTXF_MORE_DATA,
        id: 4,
        size: 1514,
    };
    assert_eq!(t.as_bytes(), &[1, 0, 0, 0, 2, 0, 4, 0, 4, 0, 0xEA, 0x05]);
    let x = NetifExtraInfo::gso(1448, XEN_NETIF_GSO_TYPE_TCPV4, 0, false);
    assert_eq!(x.as_bytes(), &[1, 0, 0xA8, 0x05, 1, 0, 0, 0]);
    assert_eq!(x.gso_size(), 1448);
    let rr = NetifRxResponse {
        id: 1,
        offset: 2,
        flags: NETRXF_DATA_VALIDATED,
        status: -2,
    };
    assert_eq!(u16_at(&rr, 6), 0xFFFE);
    assert_eq!(
        (NET_TX_RING_SIZE, NET_RX_RING_SIZE, NET_CTRL_RING_SIZE),
        (256, 256, 128)
    );
    assert_eq!(size_of::<XenNetifCtrlRequest>(), 16);
    assert_eq!(size_of::<XenNetifCtrlResponse>(), 12);
}

#[test]
fn hypercall_page_stubs() {
    let s = hypercall_nr::stub(hypercall_nr::EVENT_CHANNEL_OP);
    assert_eq!(
        &s[..14],
        &[
            0x51, 0x41, 0x53, 0xB8, 32, 0, 0, 0, 0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3
        ]
    );
    assert!(s[14..].iter().all(|&b| b == 0xCC));
    let i = hypercall_nr::stub(hypercall_nr::IRET);
    assert_eq!(
        &i[..11],
        &[0x51, 0x41, 0x53, 0x50, 0xB8, 0x17, 0, 0, 0, 0x0F, 0x05]
    );
    assert!(i[11..].iter().all(|&b| b == 0xCC));
    assert_eq!(hypercall_nr::stub_offset(hypercall_nr::SCHED_OP), 29 * 32);
}

#[test]
fn errno_from_ret_maps_negative_values() {
    assert_eq!(Errno::from_ret(5), Ok(5));
    assert_eq!(Errno::from_ret(-22), Err(Errno::EINVAL));
    assert_eq!(Errno::from_ret(-38).unwrap_err().name(), Some("ENOSYS"));
    assert_eq!(Errno::from_ret(-1000).unwrap_err().raw(), 1000);
    assert_eq!(Errno::from_ret(i64::MIN), Err(Errno::ERANGE));
    assert_eq!(Errno::ALL.len(), 29);
    assert_eq!(Errno::ETIMEDOUT.to_ret(), -110);
}

#[test]
fn multicall_entry_layout() {
    let m = MulticallEntry {
        op: 1,
        result: 2,
        args: [3, 4, 5, 6, 7, 8],
    };
    assert_eq!(size_of::<MulticallEntry>(), 64);
    assert_eq!(u64_at(&m, 16 + 5 * 8), 8);
    let back = MulticallEntry::read_from_bytes(m.as_bytes()).unwrap();
    assert_eq!(back, m);
}
