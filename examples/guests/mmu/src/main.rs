//! Page tables the PV way: build a new address space from our own frames
//! with batched `mmu_update`s ([`MmuBatch`]), pin it bottom-up with
//! `mmuext_op`, switch to it (`MMUEXT_NEW_BASEPTR`), map and unmap a page
//! with `update_va_mapping`, then try every update Xen forbids and print the
//! errno each one gets.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::abi::mmu::{MmuUpdate, MmuextOp, PTE_ADDR_MASK, UVMF_INVLPG};
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{Errno, GuestVa, MachineAddr, Mfn};
use guest_abi::entry::VIRT_BASE;
use guest_abi::hypercall::XenHypercallPage;
use guest_abi::mmu::{self, FOREIGNDOM_SELF, MmuBatch, PtLevel};
use xtf_common::arch::{self, peek};
use xtf_common::{Frames, boot_va, check, check_eq, check_errno, check_ok, finish, hc, println};

guest_abi::entry!(main);

/// Present, writable, accessed, dirty (data pages and table links).
const RW: u64 = guest_abi::abi::mmu::PteFlags::PRESENT
    .union(guest_abi::abi::mmu::PteFlags::RW)
    .union(guest_abi::abi::mmu::PteFlags::ACCESSED)
    .union(guest_abi::abi::mmu::PteFlags::DIRTY)
    .bits();
/// Present, accessed, read-only.
const RO: u64 = 0x21;
/// Where the test maps its data page (L2 slot 256 of the image's 1 GiB).
const WINDOW: u64 = 0x2000_0000;

static COUNTER: AtomicU64 = AtomicU64::new(41);

fn idx(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & 511
}

/// Write `entries` (index, value) into a frame that is not yet a page table
/// (plain stores through `mmu_update`), then pin it as `level`.
fn fill_and_pin(
    h: &XenHypercallPage,
    frame: Mfn,
    level: PtLevel,
    entries: impl Iterator<Item = (u64, u64)>,
) -> bool {
    let mut batch = MmuBatch::<64>::new(FOREIGNDOM_SELF);
    for (i, v) in entries {
        if batch
            .update_pte(h, MachineAddr((frame.0 << 12) + i * 8), v)
            .is_err()
        {
            return false;
        }
    }
    batch.flush(h).is_ok() && mmu::pin_table(h, level, frame).is_ok()
}

fn uvm(h: &XenHypercallPage, va: u64, pte: u64) -> Result<(), Errno> {
    mmu::update_va_mapping(h, GuestVa(va), pte, UVMF_INVLPG)
}

fn ext(h: &XenHypercallPage, op: MmuextOp) -> Result<u32, Errno> {
    mmu::mmuext_op(h, &mut [op], FOREIGNDOM_SELF).map_err(Errno::from)
}

fn update(h: &XenHypercallPage, maddr: u64, val: u64) -> Result<u32, Errno> {
    mmu::mmu_update(h, &mut [MmuUpdate { ptr: maddr, val }], FOREIGNDOM_SELF).map_err(Errno::from)
}

fn main(si: &'static StartInfo) -> ! {
    println!("mmu: building, pinning and switching to our own page tables");
    let _ = arch::map_shared_info(si);
    arch::note_shared_info_mapped();
    arch::install_trap_table();
    let h = hc();
    let mut frames = Frames::new(si);

    // The bootstrap tables, walked through the M2P and the boot mapping.
    let old_l4 = Mfn(arch::read_cr3() >> 12);
    let table = |mfn: Mfn, va: u64, level: u32| {
        let e = peek(boot_va(si, mfn).unwrap_or(0) + idx(va, level) * 8);
        Mfn((e & PTE_ADDR_MASK) >> 12)
    };
    let old_l3 = table(old_l4, VIRT_BASE, 4);
    let old_l2 = table(old_l3, VIRT_BASE, 3);
    let old_l2_va = boot_va(si, old_l2).unwrap_or(0);

    // New L1s: a copy of each bootstrap L1, plus an empty one for WINDOW.
    let mut l2_entries = [(0u64, 0u64); 32];
    let mut n = 0;
    for i in 0..512 {
        let e = peek(old_l2_va + i * 8);
        if e & 1 == 0 {
            continue;
        }
        if n == l2_entries.len() - 1 {
            check(
                false,
                format_args!("the boot mapping has more L1s than this test copies"),
            );
            finish()
        }
        let old_l1_va = boot_va(si, Mfn((e & PTE_ADDR_MASK) >> 12)).unwrap_or(0);
        let (_, l1) = frames.alloc();
        let copy = (0..512)
            .map(|j| (j, peek(old_l1_va + j * 8)))
            .filter(|&(_, v)| v != 0);
        if !fill_and_pin(&h, l1, PtLevel::L1, copy) {
            check(false, format_args!("copy and pin L1 for slot {i}"));
            finish()
        }
        l2_entries[n] = (i, (l1.0 << 12) | RW | 4);
        n += 1;
    }
    let (_, win_l1) = frames.alloc();
    check(
        fill_and_pin(&h, win_l1, PtLevel::L1, core::iter::empty()),
        format_args!("pin an empty L1 for the window"),
    );
    l2_entries[n] = (idx(WINDOW, 2), (win_l1.0 << 12) | RW | 4);
    n += 1;
    let (_, l2) = frames.alloc();
    let (_, l3) = frames.alloc();
    let (_, l4) = frames.alloc();
    check(
        fill_and_pin(&h, l2, PtLevel::L2, l2_entries.iter().take(n).copied()),
        format_args!(
            "fill and pin the L2 ({} L1s, {} copied from the boot tables)",
            n,
            n - 1
        ),
    );
    check(
        fill_and_pin(
            &h,
            l3,
            PtLevel::L3,
            [(idx(VIRT_BASE, 3), (l2.0 << 12) | RW | 4)].into_iter(),
        ),
        format_args!("fill and pin the L3"),
    );
    check(
        fill_and_pin(
            &h,
            l4,
            PtLevel::L4,
            [(idx(VIRT_BASE, 4), (l3.0 << 12) | RW | 4)].into_iter(),
        ),
        format_args!("fill and pin the L4"),
    );
    check_ok("MMUEXT_NEW_BASEPTR to the new L4", mmu::new_baseptr(&h, l4));
    check_eq("cr3 is the new L4", arch::read_cr3() >> 12, l4.0);
    check_eq(
        "code and data still reachable",
        COUNTER.fetch_add(1, Ordering::SeqCst),
        41,
    );
    check_eq(
        "read-only M2P still mapped (slot 256)",
        xtf_common::m2p(old_l4) < si.nr_pages,
        true,
    );

    // Map a fresh data frame at WINDOW, use it, alias it read-only, unmap it.
    let (_, data) = frames.alloc();
    check_ok(
        "update_va_mapping: map a data frame at WINDOW",
        uvm(&h, WINDOW, (data.0 << 12) | RW),
    );
    for i in 0..512 {
        arch::poke(WINDOW + i * 8, 0xdead_0000 + i);
    }
    let ok = (0..512).all(|i| peek(WINDOW + i * 8) == 0xdead_0000 + i);
    check(ok, format_args!("data written through WINDOW reads back"));
    check_ok(
        "map the same frame read-only at WINDOW + 4 KiB",
        uvm(&h, WINDOW + 4096, (data.0 << 12) | RO),
    );
    check_eq(
        "the alias sees the data",
        peek(WINDOW + 4096 + 8 * 7),
        0xdead_0007,
    );
    let w = arch::try_write(WINDOW + 4096, 0);
    check_eq(
        "writing the read-only alias faults with P|W",
        w.map_err(|r| r.error_code),
        Err(Some(3)),
    );
    check_ok("unmap the alias", uvm(&h, WINDOW + 4096, 0));
    check_ok("update_va_mapping: unmap WINDOW", uvm(&h, WINDOW, 0));
    let r = arch::try_read(WINDOW);
    check_eq(
        "WINDOW is gone (#PF, not present)",
        r.map_err(|r| (r.vector, r.error_code)),
        Err((14, Some(0))),
    );

    println!("mmu: forbidden updates and the errno Xen gives each");
    check_errno(
        "writable mapping of a page-table frame",
        uvm(&h, WINDOW, (win_l1.0 << 12) | RW),
        Errno::EBUSY,
    );
    check_ok(
        "read-only mapping of a page-table frame",
        uvm(&h, WINDOW, (win_l1.0 << 12) | RO),
    );
    check_ok("(unmap it)", uvm(&h, WINDOW, 0));
    // Our grant-table frames are ours (shared hypervisor pages a domain may
    // map, as on Xen): skip them too.
    let mut grant_frames = [u64::MAX; 4];
    if let Ok((cur, _)) = guest_abi::gnttab::query_size(&h) {
        let n = usize::try_from(cur).unwrap_or(0).min(grant_frames.len());
        let _ = guest_abi::gnttab::setup_table(&h, &mut grant_frames[..n]);
    }
    let foreign = (0..si.nr_pages * 2)
        .map(Mfn)
        .find(|&m| {
            xtf_common::m2p(m) >= si.nr_pages
                && m.0 != si.shared_info >> 12
                && !grant_frames.contains(&m.0)
        })
        .unwrap_or(Mfn(0));
    check_errno(
        "mapping a frame that is not ours (Xen's or another domain's)",
        uvm(&h, WINDOW, (foreign.0 << 12) | RO),
        Errno::EBUSY,
    );
    check_errno(
        "PCD in an L1 entry",
        uvm(&h, WINDOW, (data.0 << 12) | RW | 0x10),
        Errno::EINVAL,
    );
    check_errno(
        "PAT in an L1 entry",
        uvm(&h, WINDOW, (data.0 << 12) | RW | 0x80),
        Errno::EINVAL,
    );
    let l2e = |i: u64| (l2.0 << 12) + i * 8;
    check_errno(
        "PSE (superpage) in an L2 entry",
        update(&h, l2e(300), (win_l1.0 << 12) | RW | 0x80),
        Errno::EINVAL,
    );
    check_errno(
        "G in an L2 entry",
        update(&h, l2e(300), (win_l1.0 << 12) | RW | 0x100),
        Errno::EINVAL,
    );
    check_errno(
        "update of a reserved (hypervisor) L4 slot",
        update(&h, (l4.0 << 12) + 256 * 8, (l3.0 << 12) | RO),
        Errno::EINVAL,
    );
    check_errno(
        "writable linear (self) map of the L4",
        update(&h, (l4.0 << 12) + 300 * 8, (l4.0 << 12) | RW),
        Errno::EINVAL,
    );
    check_ok(
        "read-only linear (self) map of the L4",
        update(&h, (l4.0 << 12) + 300 * 8, (l4.0 << 12) | RO),
    );
    check_ok("(remove it)", update(&h, (l4.0 << 12) + 300 * 8, 0));
    check_errno(
        "L2 entry to an L2 table (wrong level, writable)",
        update(&h, l2e(300), (l2.0 << 12) | RW),
        Errno::EINVAL,
    );
    check_errno(
        "mmu_update command 4 (undefined)",
        update(&h, l2e(300) | 4, 0),
        Errno::ENOSYS,
    );
    check_errno(
        "update_va_mapping where no L1 maps the address",
        uvm(&h, 0x7000_0000_0000, 0),
        Errno::EINVAL,
    );
    check_ok(
        "map the data frame writable again",
        uvm(&h, WINDOW, (data.0 << 12) | RW),
    );
    check_errno(
        "pin a writably mapped frame as an L1",
        mmu::pin_table(&h, PtLevel::L1, data),
        Errno::EINVAL,
    );
    check_errno(
        "L2 entry to a writably mapped frame",
        update(&h, l2e(300), (data.0 << 12) | RW),
        Errno::EINVAL,
    );
    check_errno(
        "pin an already pinned table",
        mmu::pin_table(&h, PtLevel::L1, win_l1),
        Errno::EINVAL,
    );
    check_ok(
        "unpin the window L1 (still used by the L2)",
        mmu::unpin_table(&h, win_l1),
    );
    check_errno(
        "unpin it twice",
        mmu::unpin_table(&h, win_l1),
        Errno::EINVAL,
    );
    check_errno(
        "NEW_BASEPTR with an L1 table",
        mmu::new_baseptr(&h, win_l1),
        Errno::EINVAL,
    );
    check_errno(
        "MMUEXT_MARK_SUPER (PV superpages are gone)",
        ext(
            &h,
            MmuextOp::with_mfn(guest_abi::abi::mmu::MMUEXT_MARK_SUPER, data.0),
        ),
        Errno::EOPNOTSUPP,
    );
    let done = mmu::mmu_update(
        &h,
        &mut [
            MmuUpdate {
                ptr: l2e(300),
                val: 0,
            },
            MmuUpdate {
                ptr: l2e(301) | 5,
                val: 0,
            },
            MmuUpdate {
                ptr: l2e(302),
                val: 0,
            },
        ],
        FOREIGNDOM_SELF,
    );
    check_eq(
        "a batch stops at the first bad request and reports how many were done",
        done.map_err(|e| (e.errno, e.done)),
        Err((Errno::ENOSYS, 1)),
    );
    let old_pfn = xtf_common::m2p(data);
    check_ok(
        "MMU_MACHPHYS_UPDATE of our own frame",
        update(&h, (data.0 << 12) | 1, 0x1234),
    );
    check_eq("the read-only M2P shows it", xtf_common::m2p(data), 0x1234);
    let _ = update(&h, (data.0 << 12) | 1, old_pfn);

    println!("mmu: writable page tables (stores into an L1 are emulated)");
    let view = WINDOW + 2 * 4096;
    check_ok(
        "map the window L1 read-only inside the window",
        uvm(&h, view, (win_l1.0 << 12) | RO),
    );
    check(
        arch::try_write(view + 3 * 8, (data.0 << 12) | RW).is_ok(),
        format_args!("a plain store of a valid L1 entry is emulated"),
    );
    let _ = mmu::invlpg_local(&h, GuestVa(WINDOW + 3 * 4096));
    check_eq(
        "the stored entry maps the data frame",
        peek(WINDOW + 3 * 4096 + 8 * 7),
        0xdead_0007,
    );
    check_eq(
        "it reads back with the data frame's mfn",
        (peek(view + 3 * 8) & PTE_ADDR_MASK) >> 12,
        data.0,
    );
    let r = arch::try_write(view + 4 * 8, (win_l1.0 << 12) | RW);
    check_eq(
        "a store of a forbidden entry (the L1 itself, writable) faults",
        r.map_err(|r| (r.vector, r.error_code)),
        Err((14, Some(3))),
    );
    check(
        arch::try_write(view + 3 * 8, 0).is_ok(),
        format_args!("a plain store of 0 unmaps (emulated)"),
    );
    check_ok("unmap the L1 view", uvm(&h, view, 0));

    check_ok("back to the boot tables", mmu::new_baseptr(&h, old_l4));
    check_eq("cr3 is the boot L4 again", arch::read_cr3() >> 12, old_l4.0);
    finish()
}
