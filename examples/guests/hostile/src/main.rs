//! A hostile PV guest: it tries every breach of the PV rules it can think of
//! — writable mappings of its own page tables, mappings of other domains'
//! frames (it guesses MFNs), the hypervisor's L4 slots, forbidden PTE bits,
//! writes to the M2P, bad pins and unpins, over-long batches, bad pointers
//! passed to every hypercall, bad event-channel ports, garbage trap tables,
//! bad `iret` frames — and prints what the hypervisor answered.
//!
//! Every probe prints one line:
//!
//! ```text
//! hostile: <probe>: rejected rc=-22       the hypervisor refused (good)
//! hostile: <probe>: faulted vector=14     the access trapped (good)
//! hostile: <probe>: ACCEPTED ...          a breach went through (bad)
//! ```
//!
//! and the run ends with `hostile: N probes, M accepted` followed by one last
//! breach that must crash the domain (an `iret` whose frame is unreadable).
//! The isolation test (`hv-runtime/tests/hostile.rs`) runs it beside a victim
//! domain and checks those lines, the crash and the victim's memory.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::fmt::Write as _;

use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::mmu::PteFlags;
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{evtchn as ev, memory as xm, mmu, sched, vcpu as vo, version as ver};
use guest_abi::entry::{VIRT_BASE, console_write, hypercall_page_addr};
use guest_abi::hypercall::{Hypercall, XenHypercallPage};

guest_abi::entry!(main);

// ---- constants --------------------------------------------------------------

/// Where Xen maps the read-only M2P table (L4 slot 256).
const M2P_VA: u64 = 0xffff_8000_0000_0000;
/// An unmapped hypervisor-area address (L4 slot 258).
const HV_HOLE_VA: u64 = 0xffff_8100_0000_0000;
/// The last page of the hypervisor area (L4 slot 271).
const HV_LAST_VA: u64 = 0xffff_87ff_ffff_f000;
/// Non-canonical addresses.
const NONCANON_LOW: u64 = 0x0000_8000_0000_0000;
const NONCANON_HIGH: u64 = 0xdead_beef_0000_0000;
/// An unmapped guest address below the image.
const UNMAPPED_VA: u64 = 0x1000;
const PTE_P: u64 = PteFlags::PRESENT.bits();
const PTE_RW: u64 = PteFlags::RW.bits();
const PTE_PWT: u64 = PteFlags::PWT.bits();
const PTE_PCD: u64 = PteFlags::PCD.bits();
const PTE_PAT_PSE: u64 = PteFlags::PAT.bits();
const PTE_G: u64 = PteFlags::GLOBAL.bits();
const ADDR_MASK: u64 = guest_abi::abi::mmu::PTE_ADDR_MASK;
const DOMID_SELF: u64 = guest_abi::abi::DOMID_SELF as u64;
const FLAT_KERNEL_CS_RPL0: u64 = 0xe030;
const FLAT_KERNEL_SS: u64 = 0xe02b;
/// The flat 64-bit code selector with RPL 3: `iret` to guest user mode.
const FLAT_USER_CS: u64 = 0xe033;

// ---- trap handling and fault probes (assembly) ------------------------------
//
// Note [Recoverable faults]: a probe arms `hostile_recover_{rip,rsp}` and
// then performs one dangerous access. If it traps, Xen bounces the trap to
// one of the `hostile_trap_N` entries below (installed with
// set_trap_table), which records the vector and `iret`s to the recovery
// point with the probe's stack: the probe then returns 0x100 | vector. A
// trap while no probe is armed shuts the domain down as crashed.

core::arch::global_asm!(
    r#"
    .pushsection .bss.hostile, "aw", @nobits
    .balign 8
    .globl hostile_recover_rip
hostile_recover_rip: .skip 8
hostile_recover_rsp: .skip 8
    .globl hostile_last_vector
hostile_last_vector: .skip 8
    .globl hostile_trap_count
hostile_trap_count: .skip 8
    .globl hostile_landing_rflags
hostile_landing_rflags: .skip 8
    .globl hostile_landing_cs
hostile_landing_cs: .skip 8
    .popsection

    .pushsection .data.hostile, "aw", @progbits
    .balign 4
hostile_crash_reason: .long 3
    .popsection

    .pushsection .text.hostile, "ax", @progbits
    .macro hostile_stub n
hostile_trap_\n:
    mov qword ptr [rip + hostile_last_vector], \n
    jmp hostile_trap_common
    .pushsection .data.hostile, "aw", @progbits
    .quad hostile_trap_\n
    .popsection
    .endm
    .pushsection .data.hostile, "aw", @progbits
    .balign 8
    .globl hostile_trap_stubs
hostile_trap_stubs:
    .popsection
    hostile_stub 0
    hostile_stub 1
    hostile_stub 2
    hostile_stub 3
    hostile_stub 4
    hostile_stub 5
    hostile_stub 6
    hostile_stub 7
    hostile_stub 8
    hostile_stub 9
    hostile_stub 10
    hostile_stub 11
    hostile_stub 12
    hostile_stub 13
    hostile_stub 14
    hostile_stub 15
    hostile_stub 16
    hostile_stub 17
    hostile_stub 18
    hostile_stub 19

hostile_trap_common:
    add qword ptr [rip + hostile_trap_count], 1
    cmp qword ptr [rip + hostile_recover_rip], 0
    je hostile_unexpected_trap
    mov rsp, qword ptr [rip + hostile_recover_rsp]
    push {ss}
    push qword ptr [rip + hostile_recover_rsp]
    push 2
    push {cs}
    push qword ptr [rip + hostile_recover_rip]
    push 0
    jmp hypercall_page + 23 * 32

hostile_unexpected_trap:
    mov edi, 2
    lea rsi, [rip + hostile_crash_reason]
    mov eax, 29
    syscall
    jmp hostile_unexpected_trap

    // u64 hostile_probe_write(u64 addr, u64 val)
    .globl hostile_probe_write
hostile_probe_write:
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_probe_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    mov qword ptr [rdi], rsi
    xor eax, eax
    jmp hostile_probe_out

    // u64 hostile_probe_read(u64 addr, u64 *out)
    .globl hostile_probe_read
hostile_probe_read:
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_probe_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    mov rax, qword ptr [rdi]
    mov qword ptr [rsi], rax
    xor eax, eax
    jmp hostile_probe_out

    // u64 hostile_probe_mov_cr3(u64 val)
    .globl hostile_probe_mov_cr3
hostile_probe_mov_cr3:
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_probe_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    mov cr3, rdi
    xor eax, eax
    jmp hostile_probe_out

    // u64 hostile_probe_wrmsr(u32 msr, u64 val)
    .globl hostile_probe_wrmsr
hostile_probe_wrmsr:
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_probe_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    mov ecx, edi
    mov rax, rsi
    mov rdx, rsi
    shr rdx, 32
    wrmsr
    xor eax, eax
    jmp hostile_probe_out

    // u64 hostile_probe_int80(void): a software interrupt with no gate
    .globl hostile_probe_int80
hostile_probe_int80:
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_probe_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    int 0x80
    xor eax, eax
    jmp hostile_probe_out

    // u64 hostile_probe_iret(u64 *frame_top): jump to the iret stub with
    // rsp = frame_top, where [flags, rip, cs, rflags, rsp, ss] lie.
    .globl hostile_probe_iret
hostile_probe_iret:
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_probe_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    mov rsp, rdi
    jmp hypercall_page + 23 * 32

    // Frames built by the iret probes return here: record RFLAGS.
    .globl hostile_iret_landing
hostile_iret_landing:
    mov rsp, qword ptr [rip + hostile_recover_rsp]
    pushfq
    pop rax
    cld
    mov qword ptr [rip + hostile_landing_rflags], rax
    mov ax, cs
    movzx eax, ax
    mov qword ptr [rip + hostile_landing_cs], rax
    xor eax, eax
    jmp hostile_probe_out

hostile_probe_fault:
    mov rax, qword ptr [rip + hostile_last_vector]
    or rax, 0x100
hostile_probe_out:
    mov qword ptr [rip + hostile_recover_rip], 0
    ret

    // u64 hostile_user_probe(u64 user_rip, u64 user_rsp, u64 r12, u64 r13):
    // iret to guest user mode at user_rip with r12/r13 set; the routine
    // there does one privileged thing and then ud2, so the vector the
    // kernel sees says whether the privileged thing trapped (13/14) or was
    // carried out (6).
    .globl hostile_user_probe
hostile_user_probe:
    push r12
    push r13
    mov r12, rdx
    mov r13, rcx
    mov qword ptr [rip + hostile_recover_rsp], rsp
    lea rax, [rip + hostile_user_fault]
    mov qword ptr [rip + hostile_recover_rip], rax
    push {ss}
    push rsi
    push 2
    push {ucs}
    push rdi
    push 0
    jmp hypercall_page + 23 * 32
hostile_user_fault:
    mov rax, qword ptr [rip + hostile_last_vector]
    or rax, 0x100
    pop r13
    pop r12
    mov qword ptr [rip + hostile_recover_rip], 0
    ret

    .globl hostile_user_wrmsr
hostile_user_wrmsr:
    mov ecx, 0x40000000
    mov rax, r12
    mov rdx, r12
    shr rdx, 32
    wrmsr
    ud2
    .globl hostile_user_mov_cr3
hostile_user_mov_cr3:
    mov cr3, r12
    ud2
    .globl hostile_user_store
hostile_user_store:
    mov qword ptr [r12], r13
    ud2

    // ! hostile_bad_iret(u64 rsp): HYPERVISOR_iret with an unreadable frame.
    .globl hostile_bad_iret
hostile_bad_iret:
    mov rsp, rdi
    mov eax, 23
    syscall
    ud2

    // i64 hostile_raw_syscall(u64 nr): a hypercall number past the page.
    .globl hostile_raw_syscall
hostile_raw_syscall:
    mov rax, rdi
    push rcx
    push r11
    syscall
    pop r11
    pop rcx
    ret
    .popsection
    "#,
    ss = const FLAT_KERNEL_SS,
    cs = const FLAT_KERNEL_CS_RPL0,
    ucs = const FLAT_USER_CS,
);

unsafe extern "C" {
    static hostile_trap_stubs: [u64; 20];
    static hostile_iret_landing: u8;
    static hostile_landing_rflags: u64;
    static hostile_landing_cs: u64;
    fn hostile_probe_write(addr: u64, val: u64) -> u64;
    fn hostile_probe_read(addr: u64, out: *mut u64) -> u64;
    fn hostile_probe_mov_cr3(val: u64) -> u64;
    fn hostile_probe_wrmsr(msr: u32, val: u64) -> u64;
    fn hostile_probe_int80() -> u64;
    fn hostile_probe_iret(frame_top: *mut u64) -> u64;
    fn hostile_bad_iret(rsp: u64) -> !;
    fn hostile_user_probe(rip: u64, rsp: u64, r12: u64, r13: u64) -> u64;
    static hostile_user_wrmsr: u8;
    static hostile_user_mov_cr3: u8;
    static hostile_user_store: u8;
    fn hostile_raw_syscall(nr: u64) -> i64;
}

/// Address of trap stub `n` (from the table the assembly builds).
fn trap_stub(n: usize) -> u64 {
    // SAFETY: the table is initialised data with 20 entries, never written.
    unsafe { core::ptr::addr_of!(hostile_trap_stubs).read_volatile()[n] }
}

// ---- output -----------------------------------------------------------------

/// Console writer with a line buffer.
struct Con {
    buf: [u8; 256],
    len: usize,
}

impl Con {
    const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    fn flush(&mut self) {
        console_write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl core::fmt::Write for Con {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

macro_rules! say {
    ($($t:tt)*) => {{
        let mut c = Con::new();
        let _ = writeln!(c, $($t)*);
        c.flush();
    }};
}

// ---- page-aligned scratch memory --------------------------------------------

#[repr(C, align(4096))]
struct Pages<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the guest has one vCPU and no event handlers; the pages are only
// touched from `main`'s thread of control.
unsafe impl<const N: usize> Sync for Pages<N> {}

impl<const N: usize> Pages<N> {
    const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    fn va(&self) -> u64 {
        self.0.get() as u64
    }

    fn page_va(&self, i: usize) -> u64 {
        self.va() + (i as u64) * 4096
    }

    fn fill_u64(&self, i: usize, f: impl Fn(usize) -> u64) {
        let p = self.page_va(i) as *mut u64;
        for k in 0..512 {
            // SAFETY: page `i` of this static is mapped writable while we
            // fill it (callers fill pages before remapping them).
            unsafe { p.add(k).write_volatile(f(k)) };
        }
    }
}

/// Pages whose mappings the probes change (and restore).
static SCRATCH: Pages<{ 4 * 4096 }> = Pages::new();
/// Buffers for hypercall arguments: request lists, trap tables, frames.
static ARGS: Pages<{ 16 * 4096 }> = Pages::new();
/// A big buffer for over-long batches (70000 mmuext ops × 24 bytes).
static BIG: Pages<{ 411 * 4096 }> = Pages::new();

// ---- the world as the guest sees it ----------------------------------------

struct World {
    hc: XenHypercallPage,
    si: &'static StartInfo,
    domid: u64,
    l4: u64,
    nr_pages: u64,
    max_mfn: u64,
    probes: u32,
    accepted: u32,
    /// Our own grant-table frames: shared hypervisor pages that we own and
    /// may map, as on Xen, so they are not "foreign".
    grant_frames: [u64; 4],
}

fn m2p(mfn: u64) -> u64 {
    // SAFETY: the M2P is mapped read-only into every PV guest at M2P_VA;
    // entries up to max_mfn exist (callers stay within that bound).
    unsafe { ((M2P_VA + mfn * 8) as *const u64).read_volatile() }
}

impl World {
    fn call(&self, nr: u32, a: [u64; 5]) -> i64 {
        self.hc.call(nr, a)
    }

    fn p2m(&self, pfn: u64) -> u64 {
        // SAFETY: `mfn_list` is the builder's p2m array of `nr_pages`
        // entries, mapped in the bootstrap region; pfn < nr_pages.
        unsafe { ((self.si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    fn mfn_of_va(&self, va: u64) -> u64 {
        self.p2m((va - VIRT_BASE) / 4096)
    }

    fn is_own(&self, mfn: u64) -> bool {
        let pfn = m2p(mfn);
        (pfn < self.nr_pages && self.p2m(pfn) == mfn)
            || mfn == self.si.shared_info >> 12
            || self.grant_frames.contains(&mfn)
    }

    /// VA of one of our own bootstrap-mapped frames.
    fn va_of_mfn(&self, mfn: u64) -> u64 {
        VIRT_BASE + m2p(mfn) * 4096
    }

    fn read_entry(&self, table_mfn: u64, idx: u64) -> u64 {
        // SAFETY: our page-table frames are mapped (read-only) in the
        // bootstrap region; idx < 512.
        unsafe { ((self.va_of_mfn(table_mfn) + idx * 8) as *const u64).read_volatile() }
    }

    /// (machine address of the L1 entry for `va`, L1, L2, L3 frames).
    fn walk(&self, va: u64) -> (u64, [u64; 3]) {
        let l3 = (self.read_entry(self.l4, (va >> 39) & 511) & ADDR_MASK) >> 12;
        let l2 = (self.read_entry(l3, (va >> 30) & 511) & ADDR_MASK) >> 12;
        let l1 = (self.read_entry(l2, (va >> 21) & 511) & ADDR_MASK) >> 12;
        ((l1 << 12) + ((va >> 12) & 511) * 8, [l1, l2, l3])
    }

    fn uvm(&self, va: u64, val: u64) -> i64 {
        self.call(nr::UPDATE_VA_MAPPING, [va, val, mmu::UVMF_INVLPG, 0, 0])
    }

    fn mmu1(&self, ptr: u64, val: u64) -> i64 {
        let req = ARGS.page_va(15) as *mut u64;
        // SAFETY: ARGS page 15 is mapped writable and only used here.
        unsafe {
            req.write_volatile(ptr);
            req.add(1).write_volatile(val);
        }
        self.call(nr::MMU_UPDATE, [req as u64, 1, 0, DOMID_SELF, 0])
    }

    fn ext1(&self, cmd: u32, arg1: u64, arg2: u64) -> i64 {
        let op = (ARGS.page_va(15) + 64) as *mut u64;
        // SAFETY: as in `mmu1`.
        unsafe {
            op.write_volatile(u64::from(cmd));
            op.add(1).write_volatile(arg1);
            op.add(2).write_volatile(arg2);
        }
        self.call(nr::MMUEXT_OP, [op as u64, 1, 0, DOMID_SELF, 0])
    }

    fn evt(&self, cmd: u32, words: &[u32]) -> (i64, [u32; 8]) {
        let p = (ARGS.page_va(15) + 256) as *mut u32;
        for k in 0..8 {
            let w = words.get(k).copied().unwrap_or(0);
            // SAFETY: as in `mmu1`.
            unsafe { p.add(k).write_volatile(w) };
        }
        let rc = self.call(nr::EVENT_CHANNEL_OP, [u64::from(cmd), p as u64, 0, 0, 0]);
        let mut out = [0u32; 8];
        for (k, o) in out.iter_mut().enumerate() {
            // SAFETY: as above.
            *o = unsafe { p.add(k).read_volatile() };
        }
        (rc, out)
    }

    // ---- reporting --------------------------------------------------------

    fn expect_err(&mut self, what: &str, rc: i64) {
        self.probes += 1;
        if rc < 0 {
            say!("hostile: {what}: rejected rc={rc}");
        } else {
            self.accepted += 1;
            say!("hostile: {what}: ACCEPTED rc={rc}");
        }
    }

    fn expect_fault(&mut self, what: &str, r: u64) {
        self.probes += 1;
        if r & 0x100 != 0 {
            say!("hostile: {what}: faulted vector={}", r & 0xff);
        } else {
            self.accepted += 1;
            say!("hostile: {what}: ACCEPTED (no fault)");
        }
    }

    fn expect_none(&mut self, what: &str, tried: u32, ok: u32) {
        self.probes += 1;
        if ok == 0 {
            say!("hostile: {what}: rejected all {tried}");
        } else {
            self.accepted += 1;
            say!("hostile: {what}: ACCEPTED {ok} of {tried}");
        }
    }

    fn note(&mut self, what: &str, ok: bool) {
        self.probes += 1;
        if ok {
            say!("hostile: {what}: ok");
        } else {
            self.accepted += 1;
            say!("hostile: {what}: ACCEPTED (hypervisor misbehaved)");
        }
    }
}

// ---- probes -----------------------------------------------------------------

fn install_traps(w: &World) -> i64 {
    // struct trap_info: vector u8, flags u8, cs u16, pad u32, address u64.
    let t = ARGS.page_va(14) as *mut u64;
    for n in 0..20usize {
        // SAFETY: ARGS page 14 is mapped writable; 21 entries × 16 bytes.
        unsafe {
            t.add(2 * n)
                .write_volatile(n as u64 | (FLAT_KERNEL_CS_RPL0 << 16));
            t.add(2 * n + 1).write_volatile(trap_stub(n));
        }
    }
    // SAFETY: terminator entry.
    unsafe {
        t.add(40).write_volatile(0);
        t.add(41).write_volatile(0);
    }
    w.call(nr::SET_TRAP_TABLE, [t as u64, 0, 0, 0, 0])
}

/// Page tables: writable mappings of our own tables, reserved slots,
/// forbidden bits, linear RW entries.
fn page_table_probes(w: &mut World) {
    let s = SCRATCH.page_va(0);
    let s_mfn = w.mfn_of_va(s);
    let (s_l1e, [l1, l2, l3]) = w.walk(s);
    let own_rw = (s_mfn << 12) | PTE_P | PTE_RW;
    for (name, mfn) in [("L4", w.l4), ("L3", l3), ("L2", l2), ("L1", l1)] {
        let rc = w.uvm(s, (mfn << 12) | PTE_P | PTE_RW);
        w.expect_err(
            &fmt_name("update_va_mapping: writable map of own ", name),
            rc,
        );
        let rc = w.mmu1(s_l1e, (mfn << 12) | PTE_P | PTE_RW);
        w.expect_err(&fmt_name("mmu_update: writable map of own ", name), rc);
    }
    let _ = w.uvm(s, own_rw);
    // Reserved L4 slots.
    let mut ok = 0;
    for slot in 256..272u64 {
        if w.mmu1((w.l4 << 12) + slot * 8, (l3 << 12) | PTE_P) >= 0 {
            ok += 1;
        }
        if w.mmu1((w.l4 << 12) + slot * 8, 0) >= 0 {
            ok += 1;
        }
    }
    w.expect_none("mmu_update: L4 slots 256-271 (map / clear)", 32, ok);
    // Forbidden bits.
    for (name, bits) in [("PWT", PTE_PWT), ("PCD", PTE_PCD), ("PAT", PTE_PAT_PSE)] {
        let rc = w.uvm(s, own_rw | bits);
        w.expect_err(&fmt_name("update_va_mapping: L1 entry with ", name), rc);
    }
    let _ = w.uvm(s, own_rw);
    let l2e = (l2 << 12) + ((s >> 21) & 511) * 8;
    let cur_l2e = w.read_entry(l2, (s >> 21) & 511);
    for (name, bits) in [
        ("PSE (2M superpage)", PTE_PAT_PSE),
        ("G", PTE_G),
        ("PCD", PTE_PCD),
    ] {
        let rc = w.mmu1(l2e, cur_l2e | bits);
        w.expect_err(&fmt_name("mmu_update: L2 entry with ", name), rc);
    }
    // A superpage mapping of frame 0 (the hypervisor's) through a free L2
    // slot.
    let free_l2 = (l2 << 12) + 511 * 8;
    let rc = w.mmu1(free_l2, PTE_P | PTE_RW | PTE_PAT_PSE);
    w.expect_err("mmu_update: L2 superpage over machine frame 0", rc);
    // Linear entries must be read-only.
    let rc = w.mmu1(free_l2, (l2 << 12) | PTE_P | PTE_RW);
    w.expect_err("mmu_update: writable L2 self-map", rc);
    let free_l4 = (w.l4 << 12) + 300 * 8;
    let rc = w.mmu1(free_l4, (w.l4 << 12) | PTE_P | PTE_RW);
    w.expect_err("mmu_update: writable L4 self-map", rc);
    // An L2 entry pointing at the L4 (wrong level, would expose it as L1).
    let rc = w.mmu1(free_l2, (w.l4 << 12) | PTE_P);
    w.expect_err("mmu_update: L2 entry pointing at the L4", rc);
    // Stores through the read-only mappings of our tables.
    let l4_va = w.si.pt_base;
    // SAFETY: probes recover from the fault they provoke.
    let r = unsafe { hostile_probe_write(l4_va + 300 * 8, (w.l4 << 12) | 7) };
    w.expect_fault("store to own L4 through its read-only mapping", r);
    let l1_va = w.va_of_mfn(l1) + ((s >> 12) & 511) * 8;
    // SAFETY: as above.
    let r = unsafe { hostile_probe_write(l1_va, (l2 << 12) | PTE_P | PTE_RW) };
    w.expect_fault("writable-pagetable store mapping own L2 writable", r);
    // A legitimate emulated L1 store (the writable-page-tables assist).
    // SAFETY: as above; this one is expected to be emulated, not fault.
    let r = unsafe { hostile_probe_write(l1_va, own_rw) };
    w.note(
        "writable-pagetable store of a valid entry (allowed)",
        r == 0,
    );
    // The M2P is read-only.
    // SAFETY: as above.
    let r = unsafe { hostile_probe_write(M2P_VA + 8, 0x1234) };
    w.expect_fault("store into the M2P", r);
    let mut sink = 0u64;
    // SAFETY: as above.
    let r = unsafe { hostile_probe_read(HV_HOLE_VA, &raw mut sink) };
    w.expect_fault("load from an unmapped hypervisor address", r);
    // SAFETY: as above.
    let r = unsafe { hostile_probe_read(NONCANON_HIGH, &raw mut sink) };
    w.expect_fault("load from a non-canonical address", r);
    let shared = w.si.shared_info >> 12;
    let rc = w.mmu1((shared << 12) | mmu::MMU_MACHPHYS_UPDATE, 7);
    w.expect_err("mmu_update: M2P entry of shared_info (hypervisor page)", rc);
    let rc = w.mmu1((2u64 << 12) | 5, 0);
    w.expect_err("mmu_update: unknown command 5", rc);
    let rc = w.call(
        nr::MMU_UPDATE,
        [ARGS.page_va(15), 1, 0, DOMID_SELF | (5 << 16), 0],
    );
    w.expect_err("mmu_update: foreign pt owner", rc);
}

/// Pins, unpins, base pointers and page copies.
fn pin_probes(w: &mut World) {
    let s = SCRATCH.page_va(1);
    let s_mfn = w.mfn_of_va(s);
    let (_, [l1, l2, l3]) = w.walk(s);
    let rc = w.ext1(mmu::MMUEXT_UNPIN_TABLE, s_mfn, 0);
    w.expect_err("mmuext: unpin a data page that is not pinned", rc);
    let rc = w.ext1(mmu::MMUEXT_UNPIN_TABLE, l1, 0);
    w.expect_err("mmuext: unpin an L1 that is not pinned", rc);
    let rc = w.ext1(mmu::MMUEXT_PIN_L1_TABLE, w.l4, 0);
    w.expect_err("mmuext: pin own L4 as an L1", rc);
    let rc = w.ext1(mmu::MMUEXT_PIN_L3_TABLE, l2, 0);
    w.expect_err("mmuext: pin own L2 as an L3", rc);
    let rc = w.ext1(mmu::MMUEXT_PIN_L4_TABLE, w.l4, 0);
    w.expect_err("mmuext: pin the already pinned L4 again", rc);
    let rc = w.ext1(mmu::MMUEXT_PIN_L2_TABLE, s_mfn, 0);
    w.expect_err("mmuext: pin a page that is mapped writable", rc);
    let rc = w.ext1(mmu::MMUEXT_NEW_BASEPTR, l3, 0);
    w.expect_err("mmuext: new_baseptr to an L3", rc);
    let rc = w.ext1(mmu::MMUEXT_NEW_BASEPTR, s_mfn, 0);
    w.expect_err("mmuext: new_baseptr to a writable data page", rc);
    let rc = w.ext1(mmu::MMUEXT_CLEAR_PAGE, w.l4, 0);
    w.expect_err("mmuext: clear_page of own L4", rc);
    let rc = w.ext1(mmu::MMUEXT_COPY_PAGE, l1, s_mfn);
    w.expect_err("mmuext: copy_page over own L1", rc);
    // SAFETY: mov to cr3 traps and is emulated or refused; recoverable.
    let r = unsafe { hostile_probe_mov_cr3(s_mfn << 12) };
    w.expect_fault("mov cr3 to a data page", r);

    // Garbage contents: remap the page read-only, then try to pin it.
    SCRATCH.fill_u64(1, |k| (k as u64) << 12 | 0x1ff);
    let rc = w.uvm(s, (s_mfn << 12) | PTE_P);
    w.note("remap scratch page read-only", rc == 0);
    for (name, cmd) in [
        ("L1", mmu::MMUEXT_PIN_L1_TABLE),
        ("L2", mmu::MMUEXT_PIN_L2_TABLE),
        ("L3", mmu::MMUEXT_PIN_L3_TABLE),
        ("L4", mmu::MMUEXT_PIN_L4_TABLE),
    ] {
        let rc = w.ext1(cmd, s_mfn, 0);
        w.expect_err(&fmt_name("mmuext: pin a garbage page as ", name), rc);
    }
    let _ = w.uvm(s, (s_mfn << 12) | PTE_P | PTE_RW);

    // vcpu_info in a frame, then that frame as a page table: the
    // hypervisor writes vcpu_info there, so it must stay a writable page.
    let v = SCRATCH.page_va(2);
    let v_mfn = w.mfn_of_va(v);
    SCRATCH.fill_u64(2, |_| 0);
    let req = ARGS.page_va(15) + 512;
    // SAFETY: ARGS page 15 is ours; struct vcpu_register_vcpu_info.
    unsafe {
        (req as *mut u64).write_volatile(v_mfn);
        ((req + 8) as *mut u64).write_volatile(0);
    }
    let rc = w.call(
        nr::VCPU_OP,
        [u64::from(vo::VCPUOP_REGISTER_VCPU_INFO), 0, req, 0, 0],
    );
    w.note("register vcpu_info in an own page (allowed)", rc == 0);
    let rc = w.call(
        nr::VCPU_OP,
        [u64::from(vo::VCPUOP_REGISTER_VCPU_INFO), 0, req, 0, 0],
    );
    w.expect_err("vcpu_op: register vcpu_info a second time", rc);
    let rc = w.uvm(v, (v_mfn << 12) | PTE_P);
    w.note("remap the vcpu_info page read-only", rc == 0);
    let rc = w.ext1(mmu::MMUEXT_PIN_L1_TABLE, v_mfn, 0);
    w.expect_err("mmuext: pin the vcpu_info page as an L1", rc);
    if rc >= 0 {
        let _ = w.ext1(mmu::MMUEXT_UNPIN_TABLE, v_mfn, 0);
    }
    let _ = w.uvm(v, (v_mfn << 12) | PTE_P | PTE_RW);
    // SAFETY: as before.
    unsafe {
        (req as *mut u64).write_volatile(w.l4);
    }
    let rc = w.call(
        nr::VCPU_OP,
        [u64::from(vo::VCPUOP_REGISTER_VCPU_INFO), 0, req, 0, 0],
    );
    w.expect_err("vcpu_op: register vcpu_info in own L4", rc);
}

/// Frames of other domains, of the hypervisor and free ones: map them, write
/// them, pin them, copy them, claim them.
fn foreign_frame_probes(w: &mut World) {
    let s = SCRATCH.page_va(3);
    let s_mfn = w.mfn_of_va(s);
    let (s_l1e, _) = w.walk(s);
    let mut tried = 0u32;
    let mut ok = [0u32; 10];
    let mut victims = 0u32;
    for mfn in 0..=w.max_mfn + 16 {
        if mfn <= w.max_mfn && w.is_own(mfn) {
            continue;
        }
        if mfn <= w.max_mfn && m2p(mfn) < (1 << 40) {
            victims += 1;
        }
        tried += 1;
        let rcs = [
            w.uvm(s, (mfn << 12) | PTE_P),
            w.uvm(s, (mfn << 12) | PTE_P | PTE_RW),
            w.mmu1(s_l1e, (mfn << 12) | PTE_P),
            w.mmu1(mfn << 12, 0x67),
            w.mmu1((mfn << 12) | mmu::MMU_MACHPHYS_UPDATE, 0),
            w.ext1(mmu::MMUEXT_PIN_L1_TABLE, mfn, 0),
            w.ext1(mmu::MMUEXT_UNPIN_TABLE, mfn, 0),
            w.ext1(mmu::MMUEXT_COPY_PAGE, s_mfn, mfn),
            w.ext1(mmu::MMUEXT_CLEAR_PAGE, mfn, 0),
            w.ext1(mmu::MMUEXT_NEW_BASEPTR, mfn, 0),
        ];
        for (n, rc) in rcs.iter().enumerate() {
            if *rc >= 0 {
                ok[n] += 1;
            }
        }
        if rcs[0] >= 0 || rcs[1] >= 0 || rcs[2] >= 0 {
            let _ = w.uvm(s, (s_mfn << 12) | PTE_P | PTE_RW);
        }
    }
    say!("hostile: frames not ours: {tried} (of which {victims} have an M2P entry)");
    let names = [
        "update_va_mapping: map foreign frames read-only",
        "update_va_mapping: map foreign frames writable",
        "mmu_update: L1 entry to foreign frames",
        "mmu_update: store into foreign frames",
        "mmu_update: M2P entry of foreign frames",
        "mmuext: pin foreign frames",
        "mmuext: unpin foreign frames",
        "mmuext: copy_page from foreign frames",
        "mmuext: clear_page of foreign frames",
        "mmuext: new_baseptr to foreign frames",
    ];
    for (name, n) in names.iter().zip(ok) {
        w.expect_none(name, tried, n);
    }
    // A page of our own filled with L1 entries for every foreign frame,
    // remapped read-only and pinned as an L1.
    let p = SCRATCH.page_va(3);
    let mut next = 0u64;
    SCRATCH.fill_u64(3, |_| 0);
    let q = p as *mut u64;
    let mut k = 0;
    while k < 512 && next <= w.max_mfn {
        if !w.is_own(next) {
            // SAFETY: page 3 of SCRATCH is mapped writable here.
            unsafe { q.add(k).write_volatile((next << 12) | PTE_P) };
            k += 1;
        }
        next += 1;
    }
    let _ = w.uvm(s, (s_mfn << 12) | PTE_P);
    let rc = w.ext1(mmu::MMUEXT_PIN_L1_TABLE, s_mfn, 0);
    w.expect_err("mmuext: pin an L1 mapping foreign frames", rc);
    if rc >= 0 {
        let _ = w.ext1(mmu::MMUEXT_UNPIN_TABLE, s_mfn, 0);
    }
    let _ = w.uvm(s, (s_mfn << 12) | PTE_P | PTE_RW);
    // Foreign-domain arguments.
    for dom in 0..5u64 {
        if dom == w.domid {
            continue;
        }
        let rc = w.call(
            nr::UPDATE_VA_MAPPING_OTHERDOMAIN,
            [s, (s_mfn << 12) | PTE_P, 0, dom, 0],
        );
        w.expect_err("update_va_mapping_otherdomain", rc);
        let rc = w.call(nr::MMU_UPDATE, [ARGS.page_va(15), 1, 0, dom, 0]);
        w.expect_err("mmu_update with foreigndom", rc);
        let rc = w.call(nr::MMUEXT_OP, [ARGS.page_va(15) + 64, 1, 0, dom, 0]);
        w.expect_err("mmuext_op with foreigndom", rc);
        let arg = ARGS.page_va(15) + 768;
        // SAFETY: ARGS page 15 is ours.
        unsafe {
            (arg as *mut u32).write_volatile(u32::try_from(dom).unwrap_or(0));
            ((arg + 4) as *mut u32).write_volatile(0);
        }
        let rc = w.call(
            nr::SCHED_OP,
            [u64::from(sched::SCHEDOP_REMOTE_SHUTDOWN), arg, 0, 0, 0],
        );
        w.expect_err("sched_op: remote_shutdown of another domain", rc);
        // struct xen_memory_reservation for another domain.
        let r = ARGS.page_va(13) as *mut u64;
        // SAFETY: ARGS page 13 is ours.
        unsafe {
            r.write_volatile(ARGS.page_va(13) + 256);
            r.add(1).write_volatile(1);
            r.add(2).write_volatile(0);
            r.add(3).write_volatile(dom);
            ((ARGS.page_va(13) + 256) as *mut u64).write_volatile(0);
        }
        let rc = w.call(
            nr::MEMORY_OP,
            [xm::XENMEM_INCREASE_RESERVATION, r as u64, 0, 0, 0],
        );
        w.expect_err("memory_op: increase_reservation for another domain", rc);
    }
    // Giving back frames that are not ours.
    let list = ARGS.page_va(12) as *mut u64;
    let mut n = 0usize;
    let mut mfn = 0;
    while n < 256 && mfn <= w.max_mfn {
        if !w.is_own(mfn) {
            // SAFETY: ARGS page 12 is ours.
            unsafe { list.add(n).write_volatile(mfn) };
            n += 1;
        }
        mfn += 1;
    }
    let r = ARGS.page_va(13) as *mut u64;
    // SAFETY: ARGS page 13 is ours.
    unsafe {
        r.write_volatile(list as u64);
        r.add(1).write_volatile(n as u64);
        r.add(2).write_volatile(0);
        r.add(3).write_volatile(DOMID_SELF);
    }
    let rc = w.call(
        nr::MEMORY_OP,
        [xm::XENMEM_DECREASE_RESERVATION, r as u64, 0, 0, 0],
    );
    w.probes += 1;
    if rc <= 0 {
        say!("hostile: memory_op: decrease_reservation of foreign frames: rejected rc={rc}");
    } else {
        w.accepted += 1;
        say!("hostile: memory_op: decrease_reservation of foreign frames: ACCEPTED {rc}");
    }
    // SAFETY: recoverable probe.
    let r = unsafe { hostile_probe_mov_cr3(1 << 12) };
    w.expect_fault("mov cr3 to a foreign frame", r);
}

/// Bad pointers passed to every pointer-taking hypercall.
fn bad_pointer_probes(w: &mut World) {
    let pt_ro = w.si.pt_base; // our L4, mapped read-only
    let reads = [
        0,
        UNMAPPED_VA,
        NONCANON_LOW,
        NONCANON_HIGH,
        HV_HOLE_VA,
        HV_LAST_VA,
        u64::MAX - 7,
        0x0000_7fff_ffff_fffc,
    ];
    // Outputs also fail on readable but read-only memory.
    let writes = [
        UNMAPPED_VA,
        NONCANON_LOW,
        NONCANON_HIGH,
        HV_HOLE_VA,
        HV_LAST_VA,
        u64::MAX - 7,
        M2P_VA,
        pt_ro,
    ];
    type Call = (&'static str, u32, [u64; 5], usize);
    // (name, hypercall, args, which arg is the pointer)
    let reading: [Call; 24] = [
        ("console_io write", nr::CONSOLE_IO, [0, 16, 0, 0, 0], 2),
        ("sched_op shutdown", nr::SCHED_OP, [2, 0, 0, 0, 0], 1),
        ("sched_op shutdown_code", nr::SCHED_OP, [5, 0, 0, 0, 0], 1),
        ("sched_op poll", nr::SCHED_OP, [3, 0, 0, 0, 0], 1),
        ("sched_op remote_shutdown", nr::SCHED_OP, [4, 0, 0, 0, 0], 1),
        ("set_trap_table", nr::SET_TRAP_TABLE, [0; 5], 0),
        ("callback_op register", nr::CALLBACK_OP, [0, 0, 0, 0, 0], 1),
        (
            "callback_op unregister",
            nr::CALLBACK_OP,
            [1, 0, 0, 0, 0],
            1,
        ),
        (
            "vcpu_op set_periodic_timer",
            nr::VCPU_OP,
            [6, 0, 0, 0, 0],
            2,
        ),
        (
            "vcpu_op set_singleshot_timer",
            nr::VCPU_OP,
            [8, 0, 0, 0, 0],
            2,
        ),
        (
            "vcpu_op register_vcpu_info",
            nr::VCPU_OP,
            [10, 0, 0, 0, 0],
            2,
        ),
        (
            "event_channel_op send",
            nr::EVENT_CHANNEL_OP,
            [4, 0, 0, 0, 0],
            1,
        ),
        (
            "event_channel_op alloc_unbound",
            nr::EVENT_CHANNEL_OP,
            [6, 0, 0, 0, 0],
            1,
        ),
        (
            "event_channel_op close",
            nr::EVENT_CHANNEL_OP,
            [3, 0, 0, 0, 0],
            1,
        ),
        (
            "event_channel_op_compat",
            nr::EVENT_CHANNEL_OP_COMPAT,
            [0; 5],
            0,
        ),
        (
            "mmu_update requests",
            nr::MMU_UPDATE,
            [0, 1, 0, DOMID_SELF, 0],
            0,
        ),
        ("mmuext_op ops", nr::MMUEXT_OP, [0, 1, 0, DOMID_SELF, 0], 0),
        ("multicall list", nr::MULTICALL, [0, 1, 0, 0, 0], 0),
        (
            "memory_op decrease_reservation",
            nr::MEMORY_OP,
            [1, 0, 0, 0, 0],
            1,
        ),
        (
            "memory_op populate_physmap",
            nr::MEMORY_OP,
            [6, 0, 0, 0, 0],
            1,
        ),
        (
            "memory_op current_reservation",
            nr::MEMORY_OP,
            [3, 0, 0, 0, 0],
            1,
        ),
        ("memory_op memory_map", nr::MEMORY_OP, [9, 0, 0, 0, 0], 1),
        ("physdev_op set_iopl", nr::PHYSDEV_OP, [6, 0, 0, 0, 0], 1),
        (
            "xen_version get_features",
            nr::XEN_VERSION,
            [6, 0, 0, 0, 0],
            1,
        ),
    ];
    for (name, op, args, at) in reading {
        let mut ok = 0;
        let mut tried = 0;
        for &p in &reads {
            if p == 0 && op == nr::SET_TRAP_TABLE {
                continue; // a null table legitimately clears the table
            }
            let mut a = args;
            a[at] = p;
            tried += 1;
            if w.call(op, a) >= 0 {
                ok += 1;
            }
        }
        w.expect_none(&fmt_name("bad input pointers: ", name), tried, ok);
    }
    let _ = install_traps(w);
    let writing: [Call; 13] = [
        (
            "xen_version extraversion",
            nr::XEN_VERSION,
            [1, 0, 0, 0, 0],
            1,
        ),
        (
            "xen_version compile_info",
            nr::XEN_VERSION,
            [2, 0, 0, 0, 0],
            1,
        ),
        (
            "xen_version capabilities",
            nr::XEN_VERSION,
            [3, 0, 0, 0, 0],
            1,
        ),
        ("xen_version changeset", nr::XEN_VERSION, [4, 0, 0, 0, 0], 1),
        (
            "xen_version platform_parameters",
            nr::XEN_VERSION,
            [5, 0, 0, 0, 0],
            1,
        ),
        (
            "xen_version guest_handle",
            nr::XEN_VERSION,
            [8, 0, 0, 0, 0],
            1,
        ),
        (
            "xen_version commandline",
            nr::XEN_VERSION,
            [9, 0, 0, 0, 0],
            1,
        ),
        ("vcpu_op get_runstate_info", nr::VCPU_OP, [4, 0, 0, 0, 0], 2),
        (
            "memory_op machphys_mapping",
            nr::MEMORY_OP,
            [12, 0, 0, 0, 0],
            1,
        ),
        (
            "mmu_update pdone",
            nr::MMU_UPDATE,
            [0, 0, 0, DOMID_SELF, 0],
            2,
        ),
        (
            "mmuext_op pdone",
            nr::MMUEXT_OP,
            [0, 0, 0, DOMID_SELF, 0],
            2,
        ),
        (
            "event_channel_op bind_ipi out",
            nr::EVENT_CHANNEL_OP,
            [7, 0, 0, 0, 0],
            1,
        ),
        (
            "grant_table_op setup_table",
            nr::GRANT_TABLE_OP,
            [2, 0, 1, 0, 0],
            1,
        ),
    ];
    for (name, op, args, at) in writing {
        let mut ok = 0;
        let mut tried = 0;
        for &p in &writes {
            let mut a = args;
            a[at] = p;
            // Outputs of calls that also read: give them valid input.
            if op == nr::MMU_UPDATE || op == nr::MMUEXT_OP {
                a[0] = ARGS.page_va(15) + if op == nr::MMU_UPDATE { 1024 } else { 1088 };
                a[1] = 0;
            }
            tried += 1;
            if w.call(op, a) >= 0 {
                ok += 1;
            }
        }
        w.expect_none(&fmt_name("bad output pointers: ", name), tried, ok);
    }
    // A request list that starts mapped and runs into unmapped memory.
    let edge = HV_HOLE_VA - 8;
    let rc = w.call(nr::MMU_UPDATE, [edge, 1, 0, DOMID_SELF, 0]);
    w.expect_err(
        "mmu_update: request straddling into the hypervisor area",
        rc,
    );
    // Hypercall numbers with no stub and far out of range.
    for n in [64u64, 1000, 1 << 32, u64::MAX] {
        // SAFETY: a raw `syscall` from guest kernel mode is a hypercall.
        let rc = unsafe { hostile_raw_syscall(n) };
        w.expect_err("hypercall number out of range", rc);
    }
}

/// Batches that are too long, multicalls that are huge or nested.
fn batch_probes(w: &mut World) {
    let s = SCRATCH.page_va(0);
    let s_mfn = w.mfn_of_va(s);
    let (s_l1e, _) = w.walk(s);
    let entry = (s_mfn << 12) | PTE_P | PTE_RW;
    let done = (ARGS.page_va(15) + 2048) as *mut u32;
    let set_done = |v: u32| {
        // SAFETY: ARGS page 15 is ours.
        unsafe { done.write_volatile(v) }
    };
    // SAFETY: as above.
    let get_done = || unsafe { done.read_volatile() };
    let fill_mmu = |first: usize, n: usize| {
        let reqs = BIG.va() as *mut u64;
        for k in first..first + n {
            // SAFETY: callers stay inside BIG, mapped writable.
            unsafe {
                reqs.add(2 * k).write_volatile(s_l1e);
                reqs.add(2 * k + 1).write_volatile(entry);
            }
        }
    };
    let fill_mc = |first: usize, n: usize| {
        let mc = BIG.va() as *mut u64;
        for k in first..first + n {
            // SAFETY: callers stay inside BIG, mapped writable.
            unsafe {
                let e = mc.add(8 * k);
                e.write_volatile(u64::from(nr::XEN_VERSION));
                e.add(1).write_volatile(0xdead);
                for j in 2..8 {
                    e.add(j).write_volatile(0);
                }
            }
        }
    };

    // 3000 valid updates (the same entry rewritten): more than one
    // invocation's batch, so the call continues itself; all are done.
    fill_mmu(0, 3000);
    set_done(0);
    let rc = w.call(nr::MMU_UPDATE, [BIG.va(), 3000, done as u64, DOMID_SELF, 0]);
    say!(
        "hostile: mmu_update: 3000 updates: rc={rc} done={}",
        get_done()
    );
    w.note(
        "mmu_update: 3000 valid updates all done",
        rc == 0 && get_done() == 3000,
    );
    // The same 3000 updates as one multicall entry: the entry is continued
    // (its arguments rewritten in place) until all are done.
    let e = ARGS.page_va(7) as *mut u64;
    set_done(0);
    // SAFETY: ARGS page 7 is ours; one multicall entry.
    unsafe {
        for (k, v) in [
            u64::from(nr::MMU_UPDATE),
            0xdead,
            BIG.va(),
            3000,
            done as u64,
            DOMID_SELF,
            0,
            0,
        ]
        .iter()
        .enumerate()
        {
            e.add(k).write_volatile(*v);
        }
    }
    let rc = w.call(nr::MULTICALL, [e as u64, 1, 0, 0, 0]);
    // SAFETY: as above.
    let r = unsafe { e.add(1).read_volatile() };
    say!(
        "hostile: multicall of 3000 mmu updates: rc={rc} result={r} done={}",
        get_done()
    );
    w.note(
        "multicall: a 3000-update mmu_update entry is completed",
        rc == 0 && r == 0 && get_done() == 3000,
    );
    // A forged continuation (count with the preempted bit, done from us).
    let rc = w.call(
        nr::MMU_UPDATE,
        [
            BIG.va() + 3000 * 16,
            0xffff_ffff,
            done as u64,
            DOMID_SELF,
            0,
        ],
    );
    w.expect_err("mmu_update: forged continuation over zeroed requests", rc);

    // 70000 mmuext TLB flushes: more than one invocation's batch; all must
    // be done (or the call must fail), never silently truncated.
    let ops = BIG.va() as *mut u64;
    let n_ops = 70_000usize;
    for k in 0..n_ops {
        // SAFETY: 70000 × 24 bytes fit in BIG (411 pages).
        unsafe {
            ops.add(3 * k)
                .write_volatile(u64::from(mmu::MMUEXT_TLB_FLUSH_LOCAL));
            ops.add(3 * k + 1).write_volatile(0);
            ops.add(3 * k + 2).write_volatile(0);
        }
    }
    set_done(0);
    let rc = w.call(
        nr::MMUEXT_OP,
        [ops as u64, n_ops as u64, done as u64, DOMID_SELF, 0],
    );
    say!(
        "hostile: mmuext_op: 70000 flushes: rc={rc} done={}",
        get_done()
    );
    w.note(
        "mmuext_op: 70000 ops are all done (no silent truncation)",
        rc < 0 || get_done() == 70_000,
    );

    // Multicall: 3000 xen_version calls (more than one batch), every result
    // written.
    let mc = BIG.va() as *mut u64;
    fill_mc(0, 3000);
    let rc = w.call(nr::MULTICALL, [mc as u64, 3000, 0, 0, 0]);
    let version = w.call(nr::XEN_VERSION, [0; 5]);
    let mut all = 0;
    for k in 0..3000 {
        // SAFETY: inside BIG.
        if unsafe { mc.add(8 * k + 1).read_volatile() } == version as u64 {
            all += 1;
        }
    }
    say!("hostile: multicall: 3000 xen_version: rc={rc}, {all} results written");
    w.note(
        "multicall: 3000 entries all executed",
        rc == 0 && all == 3000,
    );

    // Huge counts that run into unmapped memory: unmap the last page of
    // BIG so that the lists end in a hole.
    let edge = BIG.page_va(410);
    let edge_mfn = w.mfn_of_va(edge);
    let rc = w.uvm(edge, 0);
    w.note("unmap the page after the request lists", rc == 0);
    let per_page = 4096 / 64;
    fill_mc(400 * per_page, 10 * per_page);
    let rc = w.call(nr::MULTICALL, [BIG.page_va(400), u64::MAX, 0, 0, 0]);
    say!("hostile: multicall: count 2^64-1 ending in a hole: rc={rc}");
    w.expect_err("multicall: count 2^64-1 ending in a hole", rc);
    fill_mmu(409 * 256, 256);
    set_done(0);
    let rc = w.call(
        nr::MMU_UPDATE,
        [BIG.page_va(409), 0x7fff_ffff, done as u64, DOMID_SELF, 0],
    );
    say!(
        "hostile: mmu_update: count 2^31-1 ending in a hole: rc={rc} done={}",
        get_done()
    );
    w.expect_err("mmu_update: count 2^31-1 ending in a hole", rc);
    let rc = w.uvm(edge, (edge_mfn << 12) | PTE_P | PTE_RW);
    w.note("remap the page after the request lists", rc == 0);

    // Nested multicall, iret and a bad batch inside a multicall.
    // SAFETY: BIG is ours; three entries.
    unsafe {
        for k in 0..24 {
            mc.add(k).write_volatile(0);
        }
        let e = mc;
        e.write_volatile(u64::from(nr::MULTICALL));
        e.add(2).write_volatile(mc as u64);
        e.add(3).write_volatile(1);
        let e = mc.add(8);
        e.write_volatile(u64::from(nr::IRET));
        let e = mc.add(16);
        e.write_volatile(u64::from(nr::MMU_UPDATE));
        e.add(2).write_volatile(HV_HOLE_VA - 16);
        e.add(3).write_volatile(0x7fff_ffff);
        e.add(4).write_volatile(0);
        e.add(5).write_volatile(DOMID_SELF);
    }
    let rc = w.call(nr::MULTICALL, [mc as u64, 3, 0, 0, 0]);
    // SAFETY: as above.
    let (r0, r1, r2) = unsafe {
        (
            mc.add(1).read_volatile() as i64,
            mc.add(9).read_volatile() as i64,
            mc.add(17).read_volatile() as i64,
        )
    };
    say!("hostile: multicall of multicall/iret/bad mmu_update: rc={rc} results {r0} {r1} {r2}");
    w.probes += 1;
    if r0 < 0 && r1 < 0 && r2 < 0 {
        say!("hostile: multicall: nested multicall, iret, bad batch: rejected");
    } else {
        w.accepted += 1;
        say!("hostile: multicall: nested multicall, iret, bad batch: ACCEPTED");
    }
    // A multicall whose entries (and results) are in the read-only L4.
    let rc = w.call(nr::MULTICALL, [w.si.pt_base, 1, 0, 0, 0]);
    w.expect_err("multicall: entry list in the read-only L4", rc);
}

/// Event channels: bad ports, other domains' ports, exhaustion.
fn evtchn_probes(w: &mut World) {
    for port in [0u32, 4095, 4096, 1 << 20, u32::MAX] {
        let (rc, _) = w.evt(ev::EVTCHNOP_SEND, &[port]);
        w.expect_err("event_channel_op send to a bad port", rc);
        let (rc, _) = w.evt(ev::EVTCHNOP_UNMASK, &[port]);
        w.expect_err("event_channel_op unmask of a bad port", rc);
        let (rc, _) = w.evt(ev::EVTCHNOP_CLOSE, &[port]);
        w.expect_err("event_channel_op close of a bad port", rc);
        let (rc, _) = w.evt(ev::EVTCHNOP_BIND_VCPU, &[port, 0]);
        w.expect_err("event_channel_op bind_vcpu of a bad port", rc);
    }
    let (rc, _) = w.evt(ev::EVTCHNOP_BIND_VCPU, &[1, 31]);
    w.expect_err("event_channel_op bind_vcpu to a missing vCPU", rc);
    let (rc, _) = w.evt(ev::EVTCHNOP_BIND_VIRQ, &[99, 0]);
    w.expect_err("event_channel_op bind_virq of VIRQ 99", rc);
    let (rc, _) = w.evt(ev::EVTCHNOP_BIND_VIRQ, &[0, 31]);
    w.expect_err("event_channel_op bind_virq on a missing vCPU", rc);
    let (rc, _) = w.evt(ev::EVTCHNOP_BIND_IPI, &[1000]);
    w.expect_err("event_channel_op bind_ipi on a missing vCPU", rc);
    let (rc, _) = w.evt(ev::EVTCHNOP_BIND_PIRQ, &[1, 0]);
    w.expect_err("event_channel_op bind_pirq", rc);
    let (rc, _) = w.evt(ev::EVTCHNOP_INIT_CONTROL, &[0, 0, 0, 0]);
    w.expect_err("event_channel_op init_control (FIFO)", rc);
    for dom in 0..5u32 {
        if u64::from(dom) == w.domid {
            continue;
        }
        let mut bound = 0;
        for port in 0..8u32 {
            let (rc, out) = w.evt(ev::EVTCHNOP_BIND_INTERDOMAIN, &[dom, port]);
            if rc >= 0 {
                bound += 1;
                let _ = w.evt(ev::EVTCHNOP_CLOSE, &[out[2]]);
            }
        }
        w.expect_none(
            "event_channel_op bind_interdomain to another domain's ports",
            8,
            bound,
        );
        let (rc, _) = w.evt(ev::EVTCHNOP_ALLOC_UNBOUND, &[dom, 0]);
        w.expect_err("event_channel_op alloc_unbound in another domain", rc);
        let (rc, _) = w.evt(ev::EVTCHNOP_STATUS, &[dom, 1]);
        w.expect_err("event_channel_op status of another domain's port", rc);
        let (rc, _) = w.evt(ev::EVTCHNOP_RESET, &[dom]);
        w.expect_err("event_channel_op reset of another domain", rc);
    }
    // Exhaust our ports, then give them back.
    let mut got = [0u32; 4096];
    let mut n = 0usize;
    let mut last = 0;
    while n < got.len() {
        let (rc, out) = w.evt(ev::EVTCHNOP_ALLOC_UNBOUND, &[DOMID_SELF as u32, 0]);
        if rc < 0 {
            last = rc;
            break;
        }
        got[n] = out[1];
        n += 1;
    }
    say!("hostile: event channels: allocated {n} ports before rc={last}");
    w.note(
        "event channel exhaustion ends with an error",
        last < 0 && n < 4096,
    );
    let mut closed = 0;
    for &p in &got[..n] {
        if w.evt(ev::EVTCHNOP_CLOSE, &[p]).0 == 0 {
            closed += 1;
        }
    }
    w.note("event channel ports given back", closed == n);
    // SCHEDOP_poll with too many ports and bad port numbers.
    let ports = (ARGS.page_va(15) + 3072) as *mut u32;
    let poll = (ARGS.page_va(15) + 3584) as *mut u64;
    // SAFETY: ARGS is ours.
    unsafe {
        ports.write_volatile(5000);
        poll.write_volatile(ports as u64);
        poll.add(1).write_volatile(1);
        poll.add(2).write_volatile(1);
    }
    let rc = w.call(
        nr::SCHED_OP,
        [u64::from(sched::SCHEDOP_POLL), poll as u64, 0, 0, 0],
    );
    w.expect_err("sched_op poll of port 5000", rc);
    // SAFETY: as above.
    unsafe { poll.add(1).write_volatile(129) };
    let rc = w.call(
        nr::SCHED_OP,
        [u64::from(sched::SCHEDOP_POLL), poll as u64, 0, 0, 0],
    );
    w.expect_err("sched_op poll of 129 ports", rc);
}

/// Callbacks, trap tables, segment bases, debug registers, LDT.
fn cpu_state_probes(w: &mut World) {
    let t = ARGS.page_va(11) as *mut u64;
    // A trap table with a non-canonical handler.
    // SAFETY: ARGS page 11 is ours.
    unsafe {
        t.write_volatile(14 | (FLAT_KERNEL_CS_RPL0 << 16));
        t.add(1).write_volatile(NONCANON_HIGH);
        t.add(2).write_volatile(0);
        t.add(3).write_volatile(0);
    }
    let rc = w.call(nr::SET_TRAP_TABLE, [t as u64, 0, 0, 0, 0]);
    w.expect_err("set_trap_table: non-canonical handler", rc);
    // A full page of entries with no terminator, running off into
    // unmapped memory: must end (EFAULT), not loop.
    let g = HV_HOLE_VA;
    let rc = w.call(nr::SET_TRAP_TABLE, [g - 16, 0, 0, 0, 0]);
    w.expect_err("set_trap_table: table running into the hypervisor area", rc);
    // Garbage entries (any vector, flags and selector) with a
    // non-canonical handler in the middle: refused at that entry.
    for k in 0..255u64 {
        let addr = if k == 200 {
            NONCANON_LOW + k
        } else {
            0x4000_0000 + k
        };
        // SAFETY: 256 entries × 16 bytes in ARGS page 11.
        unsafe {
            t.add(2 * k as usize)
                .write_volatile((k & 0xff) | 0xffff_ff00);
            t.add(2 * k as usize + 1).write_volatile(addr);
        }
    }
    let rc = w.call(nr::SET_TRAP_TABLE, [t as u64, 0, 0, 0, 0]);
    w.expect_err(
        "set_trap_table: garbage table with a non-canonical entry",
        rc,
    );
    let rc = install_traps(w);
    w.note("set_trap_table: our own table reinstalled", rc == 0);
    let rc = w.call(nr::SET_CALLBACKS, [NONCANON_LOW, 0, 0, 0, 0]);
    w.expect_err("set_callbacks: non-canonical event callback", rc);
    let cb = (ARGS.page_va(15) + 3800) as *mut u64;
    // SAFETY: ARGS is ours. struct callback_register.
    unsafe {
        cb.write_volatile(0);
        cb.add(1).write_volatile(NONCANON_HIGH);
    }
    let rc = w.call(nr::CALLBACK_OP, [0, cb as u64, 0, 0, 0]);
    w.expect_err("callback_op: non-canonical callback", rc);
    // SAFETY: as above.
    unsafe {
        cb.write_volatile(77);
        cb.add(1).write_volatile(0x40_0000);
    }
    let rc = w.call(nr::CALLBACK_OP, [0, cb as u64, 0, 0, 0]);
    w.expect_err("callback_op: unknown callback type", rc);
    for which in [0u64, 1, 2] {
        let rc = w.call(nr::SET_SEGMENT_BASE, [which, NONCANON_LOW, 0, 0, 0]);
        w.expect_err("set_segment_base: non-canonical base", rc);
    }
    let rc = w.call(nr::SET_SEGMENT_BASE, [99, 0, 0, 0, 0]);
    w.expect_err("set_segment_base: unknown register", rc);
    for (r, v) in [
        (0u64, HV_HOLE_VA),
        (7, 1 << 40),
        (7, 1 << 13),
        (4, 0),
        (8, 0),
    ] {
        let rc = w.call(nr::SET_DEBUGREG, [r, v, 0, 0, 0]);
        w.expect_err("set_debugreg: bad register or value", rc);
    }
    let rc = w.call(nr::PHYSDEV_OP, [6, ARGS.page_va(10), 0, 0, 0]);
    // SAFETY: ARGS page 10 holds 0 (iopl 0) — a legitimate call; then 9.
    w.note("physdev_op set_iopl 0 (allowed)", rc == 0);
    // SAFETY: ARGS is ours.
    unsafe { (ARGS.page_va(10) as *mut u32).write_volatile(9) };
    let rc = w.call(nr::PHYSDEV_OP, [6, ARGS.page_va(10), 0, 0, 0]);
    w.expect_err("physdev_op set_iopl 9", rc);
    let rc = w.call(nr::VM_ASSIST, [0, 31, 0, 0, 0]);
    w.expect_err("vm_assist: unknown type", rc);
    let rc = w.call(nr::VM_ASSIST, [7, 0, 0, 0, 0]);
    w.expect_err("vm_assist: unknown command", rc);
    let rc = w.call(nr::CONSOLE_IO, [0, (1 << 20) + 1, ARGS.va(), 0, 0]);
    w.expect_err("console_io: 1 MiB + 1 bytes", rc);
    let rc = w.call(nr::VCPU_OP, [0, 31, 0, 0, 0]);
    w.expect_err("vcpu_op: vCPU 31 of a 1-vCPU domain", rc);
    let rc = w.call(nr::VCPU_OP, [3, u64::MAX, 0, 0, 0]);
    w.expect_err("vcpu_op: vCPU 2^64-1", rc);
    // LDT in the hypervisor area and non-canonical.
    for (what, base) in [
        ("mmuext: set_ldt over the M2P", M2P_VA),
        ("mmuext: set_ldt in the hypervisor area", HV_HOLE_VA),
        ("mmuext: set_ldt non-canonical", NONCANON_LOW),
        (
            "mmuext: set_ldt ending in the hypervisor area",
            M2P_VA - 4096,
        ),
    ] {
        let rc = w.ext1(mmu::MMUEXT_SET_LDT, base, 8192);
        w.expect_err(what, rc);
    }
    let _ = w.ext1(mmu::MMUEXT_SET_LDT, 0, 0);
    // MSRs and software interrupts.
    // SAFETY: recoverable probes.
    let r = unsafe { hostile_probe_wrmsr(0xc000_0100, NONCANON_HIGH) };
    w.expect_fault("wrmsr FS base non-canonical", r);
    // SAFETY: as above.
    let r = unsafe { hostile_probe_wrmsr(0xc000_0082, 0x40_0000) };
    w.expect_fault("wrmsr LSTAR", r);
    // SAFETY: as above.
    let r = unsafe { hostile_probe_int80() };
    w.expect_fault("int 0x80 without a gate", r);
}

/// `iret` with frames that try to raise privilege or go to bad places
/// (recoverable ones; the unrecoverable one ends the run).
fn iret_probes(w: &mut World) {
    let f = ARGS.page_va(9) as *mut u64;
    let landing = core::ptr::addr_of!(hostile_iret_landing) as u64;
    let sp = ARGS.page_va(8) + 2048;
    let set = |rip: u64, cs: u64, rflags: u64, rsp: u64, ss: u64| {
        // SAFETY: ARGS page 9 is ours: [rax, r11, rcx, flags, rip, cs,
        // rflags, rsp, ss].
        unsafe {
            for (k, v) in [0, 0, 0, 0, rip, cs, rflags, rsp, ss].iter().enumerate() {
                f.add(k).write_volatile(*v);
            }
            f.add(3)
        }
    };
    // IOPL 3, VM, all the flags: the hypervisor must strip IOPL and VM.
    let top = set(
        landing,
        FLAT_KERNEL_CS_RPL0,
        0x0002_3cd7,
        sp,
        FLAT_KERNEL_SS,
    );
    // SAFETY: recoverable probe (lands at hostile_iret_landing).
    let r = unsafe { hostile_probe_iret(top) };
    // SAFETY: written by the landing code.
    let fl = unsafe { core::ptr::addr_of!(hostile_landing_rflags).read_volatile() };
    say!("hostile: iret with IOPL=3|VM: r={r:#x} rflags after={fl:#x}");
    w.note(
        "iret: IOPL and VM stripped from the frame's RFLAGS",
        r == 0 && fl & 0x0002_3000 == 0,
    );
    // Non-canonical RIP: the return faults in the guest (#GP), not in hv.
    let top = set(NONCANON_HIGH, FLAT_KERNEL_CS_RPL0, 2, sp, FLAT_KERNEL_SS);
    // SAFETY: recoverable probe.
    let r = unsafe { hostile_probe_iret(top) };
    w.expect_fault("iret to a non-canonical RIP", r);
    // RIP in the hypervisor area.
    let top = set(HV_HOLE_VA, FLAT_KERNEL_CS_RPL0, 2, sp, FLAT_KERNEL_SS);
    // SAFETY: recoverable probe.
    let r = unsafe { hostile_probe_iret(top) };
    w.expect_fault("iret to a hypervisor-area RIP", r);
    // Garbage selectors: must not give ring 0 (CS RPL forced to 3).
    let top = set(landing, 0x0008, 2, sp, 0x0010);
    // SAFETY: recoverable probe.
    let r = unsafe { hostile_probe_iret(top) };
    // SAFETY: written by the landing code.
    let cs = unsafe { core::ptr::addr_of!(hostile_landing_cs).read_volatile() };
    say!("hostile: iret with ring-0 selectors: r={r:#x} cs after={cs:#x}");
    w.note(
        "iret: ring-0 selectors come back with RPL 3",
        r == 0 && cs & 3 == 3,
    );
}

/// Guest user mode may not do what only the guest kernel may: privileged
/// instructions and writable-page-table stores must reach the kernel as
/// faults instead of being carried out.
fn user_mode_probes(w: &mut World) {
    let kstack = ARGS.page_va(6) + 4096;
    let rc = w.call(nr::STACK_SWITCH, [FLAT_KERNEL_SS, kstack, 0, 0, 0]);
    w.note(
        "stack_switch to a kernel stack for user-mode traps",
        rc == 0,
    );
    let rc = w.ext1(mmu::MMUEXT_NEW_USER_BASEPTR, w.l4, 0);
    w.note("user page table = our L4 (allowed)", rc == 0);
    let ustack = ARGS.page_va(5) + 4096 - 64;
    // wrmsr(MSR_HYPERCALL_PAGE) would write hypercall stubs over a page
    // of the kernel's choosing (here: a zeroed scratch page).
    SCRATCH.fill_u64(1, |_| 0);
    let target = w.mfn_of_va(SCRATCH.page_va(1));
    let rip = core::ptr::addr_of!(hostile_user_wrmsr) as u64;
    // SAFETY: recoverable probe (the user routine ends in a trap).
    let r = unsafe { hostile_user_probe(rip, ustack, target << 12, 0) };
    // SAFETY: SCRATCH page 1 is ours and mapped.
    let first = unsafe { (SCRATCH.page_va(1) as *const u64).read_volatile() };
    say!("hostile: user-mode wrmsr(hypercall page): r={r:#x} page word0={first:#x}");
    w.note(
        "user-mode wrmsr(hypercall page) traps (#GP) and writes nothing",
        r == 0x10d && first == 0,
    );
    let rip = core::ptr::addr_of!(hostile_user_mov_cr3) as u64;
    // SAFETY: as above.
    let r = unsafe { hostile_user_probe(rip, ustack, w.l4 << 12, 0) };
    w.note("user-mode mov cr3 traps (#GP)", r == 0x10d);
    let s = SCRATCH.page_va(0);
    let (_, [l1, ..]) = w.walk(s);
    let l1e_va = w.va_of_mfn(l1) + ((s >> 12) & 511) * 8;
    let cur = w.read_entry(l1, (s >> 12) & 511);
    let rip = core::ptr::addr_of!(hostile_user_store) as u64;
    // SAFETY: as above.
    let r = unsafe { hostile_user_probe(rip, ustack, l1e_va, cur & !PTE_RW) };
    let after = w.read_entry(l1, (s >> 12) & 511);
    w.note(
        "user-mode store into an L1 is a #PF, not a page-table update",
        r == 0x10e && after == cur,
    );
    let rc = w.ext1(mmu::MMUEXT_NEW_USER_BASEPTR, 0, 0);
    w.note("user page table dropped", rc == 0);
}

fn fmt_name(a: &str, b: &str) -> Name {
    let mut n = Name {
        buf: [0; 96],
        len: 0,
    };
    for &c in a.as_bytes().iter().chain(b.as_bytes()) {
        if n.len < n.buf.len() {
            n.buf[n.len] = c;
            n.len += 1;
        }
    }
    n
}

/// A short owned string for probe names.
struct Name {
    buf: [u8; 96],
    len: usize,
}

impl core::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

fn main(si: &'static StartInfo) -> ! {
    // SAFETY: the hypercall page is the one the domain builder filled for
    // this image, and we call it from guest kernel mode.
    let hc = unsafe { XenHypercallPage::new(hypercall_page_addr()) };
    let l4 = {
        let pfn = (si.pt_base - VIRT_BASE) / 4096;
        // SAFETY: mfn_list has nr_pages entries; pt_base is in the image.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    };
    let max_mfn = hc.call(nr::MEMORY_OP, [xm::XENMEM_MAXIMUM_RAM_PAGE, 0, 0, 0, 0]);
    let mut handle = [0u8; 16];
    let _ = hc.call(
        nr::XEN_VERSION,
        [
            u64::from(ver::XENVER_GUEST_HANDLE),
            handle.as_mut_ptr() as u64,
            0,
            0,
            0,
        ],
    );
    let domid = u64::from(u16::from_le_bytes([handle[0], handle[1]]));
    let mut w = World {
        hc,
        si,
        domid,
        l4,
        nr_pages: si.nr_pages,
        max_mfn: u64::try_from(max_mfn).unwrap_or(0).min(1 << 20),
        probes: 0,
        accepted: 0,
        grant_frames: [u64::MAX; 4],
    };
    // Learn our grant-table frames (GNTTABOP_setup_table with the current
    // size) so the foreign-frame probes skip them.
    if let Ok((cur, _)) = guest_abi::gnttab::query_size(&w.hc) {
        let n = usize::try_from(cur).unwrap_or(0).min(w.grant_frames.len());
        let mut frames = [0u64; 4];
        if guest_abi::gnttab::setup_table(&w.hc, &mut frames[..n]).is_ok() {
            w.grant_frames[..n].copy_from_slice(&frames[..n]);
        }
    }
    say!(
        "hostile: domain {} with {} pages, L4 at mfn {:#x}, machine has {} frames",
        w.domid,
        w.nr_pages,
        w.l4,
        w.max_mfn + 1
    );
    let rc = install_traps(&w);
    w.note("set_trap_table: fault handlers installed", rc == 0);
    page_table_probes(&mut w);
    pin_probes(&mut w);
    foreign_frame_probes(&mut w);
    bad_pointer_probes(&mut w);
    batch_probes(&mut w);
    evtchn_probes(&mut w);
    cpu_state_probes(&mut w);
    iret_probes(&mut w);
    user_mode_probes(&mut w);
    say!("hostile: {} probes, {} accepted", w.probes, w.accepted);
    say!("hostile: last breach: iret with an unreadable frame (must crash me)");
    // SAFETY: deliberately unrecoverable.
    unsafe { hostile_bad_iret(UNMAPPED_VA + 64) }
}
