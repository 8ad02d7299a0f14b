//! The guests' machine-level glue: entry stubs for exceptions, software
//! interrupts, the event upcall and the syscall callback; entry to guest user
//! mode; the shared_info mapping; raw probes of guest memory.
//!
//! Note [Entry stubs]: Xen enters a handler with its bounce frame on the
//! kernel stack — `rcx, r11, [error code], rip, cs, rflags, rsp, ss` — and the
//! handler returns with `HYPERVISOR_iret`. Each stub saves the caller-saved
//! registers (and the SSE state, as Rust code may use it), calls
//! [`xtf_dispatch`] with the vector and a pointer to the frame, restores
//! everything, pops `rcx`/`r11` from the frame (and drops the error code),
//! pushes the iret `flags` word (0) and jumps to the iret stub of the
//! hypercall page. The dispatcher may rewrite the frame (resume address,
//! return to kernel mode) before the iret.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::abi::callback::TrapInfo;
use guest_abi::abi::xen::{SharedInfo, StartInfo, VcpuInfo};
use guest_abi::hypercall::XenHypercallPage;
use guest_abi::shared::{SharedInfoPage, SharedVcpuInfo};

/// Pseudo-vector of the event upcall in [`TrapRecord::vector`].
pub const VEC_EVENT: u64 = 0x100;
/// Pseudo-vector of the syscall callback.
pub const VEC_SYSCALL: u64 = 0x101;
/// The syscall number (`rax`) with which user code asks to return to the
/// kernel ([`enter_user`] returns).
pub const SYS_EXIT_USER: u64 = 0x5555;

core::arch::global_asm!(
    r#"
    .macro XTF_ENTRY name, vec, ec
    .pushsection .text.\name, "ax", @progbits
    .globl \name
\name:
    push rbx
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    mov edi, \vec
    lea rsi, [rsp + 80]
    mov edx, \ec
    mov rbx, rsp
    and rsp, -16
    sub rsp, 512
    fxsave64 [rsp]
    call xtf_dispatch
    fxrstor64 [rsp]
    mov rsp, rbx
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    pop rbx
    pop rcx
    pop r11
    .if \ec
    mov qword ptr [rsp], 0
    .else
    push 0
    .endif
    jmp hypercall_page + 23 * 32
    .popsection
    .endm

    XTF_ENTRY xtf_entry_de, 0, 0
    XTF_ENTRY xtf_entry_bp, 3, 0
    XTF_ENTRY xtf_entry_ud, 6, 0
    XTF_ENTRY xtf_entry_gp, 13, 1
    XTF_ENTRY xtf_entry_pf, 14, 1
    XTF_ENTRY xtf_entry_int80, 0x80, 0
    XTF_ENTRY xtf_entry_int81, 0x81, 0
    XTF_ENTRY xtf_entry_int82, 0x82, 0
    XTF_ENTRY xtf_entry_event, 0x100, 0
    XTF_ENTRY xtf_entry_syscall, 0x101, 0

    .pushsection .text.xtf_user, "ax", @progbits
    // enter_user(rip = rdi, rsp = rsi): save the callee-saved registers,
    // remember the kernel stack, and iret to user mode. User code comes back
    // with `syscall(SYS_EXIT_USER)`; the dispatcher then irets to
    // xtf_user_return on the saved stack, still in kernel mode.
    .globl xtf_enter_user
xtf_enter_user:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rip + XTF_KERNEL_RSP], rsp
    push 0xe02b
    push rsi
    push 0x202
    push 0xe033
    push rdi
    push 0
    jmp hypercall_page + 23 * 32
    .globl xtf_user_return
xtf_user_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

    // Probes: one faulting instruction each, labelled so tests know the
    // faulting rip, and a `ret` to resume at.
    .globl xtf_probe_read, xtf_probe_read_insn, xtf_probe_read_resume
xtf_probe_read:
    mov [rip + XTF_EXPECT_RSP], rsp
    xor eax, eax
xtf_probe_read_insn:
    mov rax, [rdi]
xtf_probe_read_resume:
    ret
    .globl xtf_probe_write, xtf_probe_write_insn, xtf_probe_write_resume
xtf_probe_write:
    mov [rip + XTF_EXPECT_RSP], rsp
xtf_probe_write_insn:
    mov [rdi], rsi
xtf_probe_write_resume:
    ret
    .globl xtf_do_de, xtf_de_insn, xtf_de_resume
xtf_do_de:
    mov [rip + XTF_EXPECT_RSP], rsp
    xor ecx, ecx
    xor edx, edx
    mov eax, 1
xtf_de_insn:
    div rcx
xtf_de_resume:
    ret
    .globl xtf_do_ud, xtf_ud_insn, xtf_ud_resume
xtf_do_ud:
    mov [rip + XTF_EXPECT_RSP], rsp
xtf_ud_insn:
    ud2
xtf_ud_resume:
    ret
    .globl xtf_do_gp, xtf_gp_insn, xtf_gp_resume
xtf_do_gp:
    mov [rip + XTF_EXPECT_RSP], rsp
    movabs rax, 0x8000000000000000
xtf_gp_insn:
    mov rax, [rax]
xtf_gp_resume:
    ret
    .globl xtf_do_bp, xtf_bp_insn, xtf_bp_resume
xtf_do_bp:
    mov [rip + XTF_EXPECT_RSP], rsp
xtf_bp_insn:
    int3
xtf_bp_resume:
    ret
    .globl xtf_do_int80, xtf_int80_insn, xtf_int80_resume
xtf_do_int80:
    mov [rip + XTF_EXPECT_RSP], rsp
xtf_int80_insn:
    int 0x80
xtf_int80_resume:
    ret
    .globl xtf_do_int81, xtf_int81_insn, xtf_int81_resume
xtf_do_int81:
    mov [rip + XTF_EXPECT_RSP], rsp
xtf_int81_insn:
    int 0x81
xtf_int81_resume:
    ret
    .globl xtf_do_int82, xtf_int82_insn, xtf_int82_resume
xtf_do_int82:
    mov [rip + XTF_EXPECT_RSP], rsp
xtf_int82_insn:
    int 0x82
xtf_int82_resume:
    ret
    // user_syscall(rdi = nr, rsi = arg) -> rax, from guest user mode.
    .globl xtf_do_syscall, xtf_syscall_insn, xtf_syscall_resume
xtf_do_syscall:
    mov [rip + XTF_EXPECT_RSP], rsp
    mov rax, rdi
    mov rdx, rsi
xtf_syscall_insn:
    syscall
xtf_syscall_resume:
    ret
    .popsection
    "#
);

unsafe extern "C" {
    fn xtf_entry_de();
    fn xtf_entry_bp();
    fn xtf_entry_ud();
    fn xtf_entry_gp();
    fn xtf_entry_pf();
    fn xtf_entry_int80();
    fn xtf_entry_int81();
    fn xtf_entry_int82();
    fn xtf_entry_event();
    fn xtf_entry_syscall();
    fn xtf_enter_user(rip: u64, rsp: u64);
    fn xtf_user_return();
    fn xtf_probe_read(va: u64) -> u64;
    fn xtf_probe_write(va: u64, val: u64);
    fn xtf_do_de();
    fn xtf_do_ud();
    fn xtf_do_gp();
    fn xtf_do_bp();
    fn xtf_do_int80();
    fn xtf_do_int81();
    fn xtf_do_int82();
    fn xtf_do_syscall(nr: u64, arg: u64) -> u64;
    static xtf_probe_read_insn: u8;
    static xtf_probe_read_resume: u8;
    static xtf_probe_write_insn: u8;
    static xtf_probe_write_resume: u8;
    static xtf_de_insn: u8;
    static xtf_de_resume: u8;
    static xtf_ud_insn: u8;
    static xtf_ud_resume: u8;
    static xtf_gp_insn: u8;
    static xtf_gp_resume: u8;
    static xtf_bp_insn: u8;
    static xtf_bp_resume: u8;
    static xtf_int80_insn: u8;
    static xtf_int80_resume: u8;
    static xtf_int81_insn: u8;
    static xtf_int81_resume: u8;
    static xtf_int82_insn: u8;
    static xtf_int82_resume: u8;
    static xtf_syscall_insn: u8;
    static xtf_syscall_resume: u8;
}

/// Kernel stack pointer saved by `xtf_enter_user`.
#[unsafe(no_mangle)]
static XTF_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// `rsp` just before the faulting instruction of a probe.
#[unsafe(no_mangle)]
static XTF_EXPECT_RSP: AtomicU64 = AtomicU64::new(0);

/// The hypercall page.
#[must_use]
pub fn hypercall_page() -> XenHypercallPage {
    // `hypercall_page_addr` is guest-rt's linker-visible symbol, named in the
    // HYPERCALL_PAGE note.
    // SAFETY: the builder filled that page; every caller runs in kernel mode.
    unsafe { XenHypercallPage::new(guest_abi::entry::hypercall_page_addr()) }
}

/// Read the 8 bytes at `va` (which must be mapped).
#[must_use]
pub fn peek(va: u64) -> u64 {
    // Callers name the bootstrap mapping, the M2P or pages they mapped; a
    // wrong address faults into the trap handlers, which report it.
    // SAFETY: `va` is mapped readable and a volatile read has no other effect.
    unsafe { (va as *const u64).read_volatile() }
}

/// Write 8 bytes at `va` (which must be mapped writable).
pub fn poke(va: u64, val: u64) {
    // SAFETY: as for `peek`; callers write only pages they own and mapped.
    unsafe { (va as *mut u64).write_volatile(val) }
}

/// The guest TSC.
#[must_use]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc reads the time-stamp counter and has no other effect.
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// `mov %cr3, %rax` (emulated by Xen for a PV kernel): the machine address
/// of the current root table.
#[must_use]
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading cr3 is a privileged instruction Xen emulates for the
    // guest kernel; it changes nothing.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// A page-aligned, page-sized hole in the image whose mapping tests replace.
#[repr(C, align(4096))]
pub struct PageSlot(UnsafeCell<[u8; 4096]>);

// SAFETY: the slot's bytes are never accessed through Rust references; only
// its address is used (as a VA whose mapping hypercalls replace).
unsafe impl Sync for PageSlot {}

impl PageSlot {
    /// A new slot (in `.bss`).
    #[must_use]
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; 4096]))
    }

    /// Its virtual address.
    #[must_use]
    pub fn va(&self) -> u64 {
        self.0.get() as u64
    }
}

impl Default for PageSlot {
    fn default() -> Self {
        Self::new()
    }
}

static SHARED_INFO_SLOT: PageSlot = PageSlot::new();

/// Map the shared_info frame (a machine address in `start_info`) over a slot
/// of the image and return the view of it.
///
/// # Panics
/// If Xen refuses the mapping (a broken hypervisor; the test cannot go on).
#[must_use]
pub fn map_shared_info(si: &StartInfo) -> SharedInfoPage {
    let va = SHARED_INFO_SLOT.va();
    let pte = (si.shared_info & guest_abi::abi::mmu::PTE_ADDR_MASK) | 0x63; // P|RW|A|D
    guest_abi::mmu::update_va_mapping(
        &hypercall_page(),
        guest_abi::abi::GuestVa(va),
        pte,
        guest_abi::abi::mmu::UVMF_INVLPG,
    )
    .expect("map shared_info");
    // SAFETY: `va` now maps this domain's shared_info page, writable, for
    // the rest of the guest's life (nothing else remaps the slot).
    unsafe { SharedInfoPage::new(NonNull::new(va as *mut SharedInfo).expect("non-null slot")) }
}

fn shared_info_ptr() -> *mut u8 {
    SHARED_INFO_SLOT.va() as *mut u8
}

/// vCPU 0's `vcpu_info` (after [`map_shared_info`]).
#[must_use]
pub fn vcpu0() -> SharedVcpuInfo {
    // SAFETY: `vcpu_info[0]` lies at offset 0 of the shared_info page mapped
    // by `map_shared_info` for the guest's lifetime.
    unsafe {
        SharedVcpuInfo::new(NonNull::new(shared_info_ptr().cast::<VcpuInfo>()).expect("slot"))
    }
}

fn shared_word(offset: usize) -> &'static AtomicU64 {
    // Callers pass evtchn_pending/mask words or pending_sel; Xen updates
    // these words atomically too, so atomics are the right access.
    // SAFETY: `offset` is 8-byte aligned inside the lifetime-mapped shared_info page.
    unsafe { AtomicU64::from_ptr(shared_info_ptr().add(offset).cast::<u64>()) }
}

/// `evtchn_pending[word]`.
#[must_use]
pub fn evtchn_pending(word: usize) -> &'static AtomicU64 {
    shared_word(2048 + (word % 64) * 8)
}

/// `evtchn_mask[word]`.
#[must_use]
pub fn evtchn_mask(word: usize) -> &'static AtomicU64 {
    shared_word(2560 + (word % 64) * 8)
}

/// vCPU 0's `evtchn_pending_sel`.
#[must_use]
pub fn pending_sel() -> &'static AtomicU64 {
    shared_word(8)
}

/// What the last exception, interrupt, event or syscall entry saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapRecord {
    /// Vector, or [`VEC_EVENT`] / [`VEC_SYSCALL`].
    pub vector: u64,
    /// Error code, if the frame had one.
    pub error_code: Option<u64>,
    /// The frame's fields.
    pub rcx: u64,
    /// The frame's R11.
    pub r11: u64,
    /// Interrupted (or faulting) rip.
    pub rip: u64,
    /// CS slot (selector plus saved upcall mask in bits 39:32).
    pub cs: u64,
    /// RFLAGS slot.
    pub rflags: u64,
    /// Interrupted rsp.
    pub rsp: u64,
    /// SS slot.
    pub ss: u64,
    /// `vcpu_info.arch.cr2` when the handler ran (if shared_info is mapped).
    pub cr2: u64,
    /// `rax` at entry (the syscall number for syscalls).
    pub rax: u64,
    /// `rdx` at entry (the syscall argument in [`user_syscall`]).
    pub rdx: u64,
    /// `evtchn_upcall_mask` inside the handler (if shared_info is mapped).
    pub mask: u8,
}

/// Entries remembered by [`record`].
pub const RECORDS_KEPT: u64 = 16;

struct Records(UnsafeCell<[TrapRecord; RECORDS_KEPT as usize]>);
// SAFETY: one vCPU; the records are written only by `xtf_dispatch` (which
// runs with the interrupted code stopped) and read by test code between
// traps, through volatile copies.
unsafe impl Sync for Records {}

static RECORDS: Records = Records(UnsafeCell::new(
    [TrapRecord {
        vector: 0,
        error_code: None,
        rcx: 0,
        r11: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
        cr2: 0,
        rax: 0,
        rdx: 0,
        mask: 0,
    }; RECORDS_KEPT as usize],
));
static TRAP_COUNT: AtomicU64 = AtomicU64::new(0);
static FIXUP: AtomicU64 = AtomicU64::new(0);
static SHARED_MAPPED: AtomicU64 = AtomicU64::new(0);
static EVENT_HANDLER: AtomicU64 = AtomicU64::new(0);
static SYSCALL_RESULT: AtomicU64 = AtomicU64::new(0);

/// Number of entries taken so far (all kinds).
#[must_use]
pub fn trap_count() -> u64 {
    TRAP_COUNT.load(Ordering::SeqCst)
}

/// The `n`-th most recent entry (0 = latest).
#[must_use]
pub fn record(n: u64) -> TrapRecord {
    let count = trap_count();
    if n >= count || n >= RECORDS_KEPT {
        return TrapRecord::default();
    }
    let idx = usize::try_from((count - 1 - n) % RECORDS_KEPT).unwrap_or(0);
    // SAFETY: see `Records`; `idx < RECORDS_KEPT`.
    unsafe { (RECORDS.0.get().cast::<TrapRecord>().add(idx)).read_volatile() }
}

/// Where the next trap resumes (one shot); 0 = a trap is unexpected.
pub fn set_fixup(rip: u64) {
    FIXUP.store(rip, Ordering::SeqCst);
}

/// Route events to `f(port)` (called from the upcall with events masked).
pub fn set_event_handler(f: fn(u32)) {
    EVENT_HANDLER.store(f as usize as u64, Ordering::SeqCst);
}

/// Value the syscall callback returns in `rax` to user code.
pub fn set_syscall_result(v: u64) {
    SYSCALL_RESULT.store(v, Ordering::SeqCst);
}

/// Mark shared_info as mapped (so handlers read cr2 from it).
pub fn note_shared_info_mapped() {
    SHARED_MAPPED.store(1, Ordering::SeqCst);
}

/// Scan the 2-level pending bitmap and call the handler for each port.
fn scan_events() {
    let vi = vcpu0();
    vi.clear_upcall_pending();
    let h = EVENT_HANDLER.load(Ordering::SeqCst);
    let mut sel = pending_sel().swap(0, Ordering::SeqCst);
    while sel != 0 {
        let word = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        let mut bits =
            evtchn_pending(word).load(Ordering::SeqCst) & !evtchn_mask(word).load(Ordering::SeqCst);
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            evtchn_pending(word).fetch_and(!(1u64 << bit), Ordering::SeqCst);
            let port = u32::try_from(word).unwrap_or(0) * 64 + bit;
            if h != 0 {
                // SAFETY: `h` was stored from a `fn(u32)` by
                // `set_event_handler`.
                let f: fn(u32) = unsafe { core::mem::transmute(h as usize) };
                f(port);
            }
        }
    }
}

/// The common handler behind every entry stub (Note [Entry stubs]).
///
/// # Safety
/// Called only by the stubs, with `frame` pointing at Xen's bounce frame on
/// the current stack, below which the stub saved ten registers.
#[unsafe(no_mangle)]
unsafe extern "C" fn xtf_dispatch(vector: u64, frame: *mut u64, has_ec: u64) {
    let at = |i: usize| {
        // SAFETY: the frame has 7 (8 with an error code) slots; callers pass
        // indices below that.
        unsafe { frame.add(i) }
    };
    let ec_slots = usize::from(has_ec != 0);
    let rip_slot = 2 + ec_slots;
    // SAFETY: the stub pushed rax at frame[-2] and rdx at frame[-4].
    let (rax, rdx) = unsafe { (frame.sub(2).read(), frame.sub(4).read()) };
    // SAFETY: indices within the frame (see `at`).
    let rec = unsafe {
        TrapRecord {
            vector,
            error_code: (has_ec != 0).then(|| at(2).read()),
            rcx: at(0).read(),
            r11: at(1).read(),
            rip: at(rip_slot).read(),
            cs: at(rip_slot + 1).read(),
            rflags: at(rip_slot + 2).read(),
            rsp: at(rip_slot + 3).read(),
            ss: at(rip_slot + 4).read(),
            cr2: if SHARED_MAPPED.load(Ordering::SeqCst) != 0 {
                vcpu0().cr2()
            } else {
                0
            },
            rax,
            rdx,
            mask: if SHARED_MAPPED.load(Ordering::SeqCst) != 0 {
                vcpu0().upcall_mask()
            } else {
                0
            },
        }
    };
    let n = TRAP_COUNT.load(Ordering::SeqCst);
    let idx = usize::try_from(n % RECORDS_KEPT).unwrap_or(0);
    // SAFETY: see `Records`; `idx < RECORDS_KEPT`.
    unsafe {
        RECORDS
            .0
            .get()
            .cast::<TrapRecord>()
            .add(idx)
            .write_volatile(rec)
    };
    TRAP_COUNT.store(n + 1, Ordering::SeqCst);

    match vector {
        VEC_EVENT => scan_events(),
        VEC_SYSCALL if rax == SYS_EXIT_USER => {
            // Back to `xtf_enter_user`'s caller, in kernel mode (CS RPL 0),
            // with events masked (IF clear).
            // SAFETY: frame slots as above.
            unsafe {
                at(rip_slot).write(xtf_user_return as *const () as u64);
                at(rip_slot + 1).write(0xe030);
                at(rip_slot + 2).write(0x2);
                at(rip_slot + 3).write(XTF_KERNEL_RSP.load(Ordering::SeqCst));
                at(rip_slot + 4).write(0xe028);
            }
        }
        VEC_SYSCALL => {
            // SAFETY: the stub restores rax from frame[-2].
            unsafe { frame.sub(2).write(SYSCALL_RESULT.load(Ordering::SeqCst)) };
        }
        // A delivered `int n` resumes after the instruction.
        0x80..=0x82 => {}
        _ => {
            let fix = FIXUP.swap(0, Ordering::SeqCst);
            if fix == 0 {
                crate::println!(
                    "FAIL: unexpected trap {vector} at {:#x} (error code {:?})",
                    rec.rip,
                    rec.error_code
                );
                guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_CRASH);
            }
            // SAFETY: frame slot as above.
            unsafe { at(rip_slot).write(fix) };
        }
    }
}

/// Addresses of a probe's faulting instruction and its resume point.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// The faulting (or trapping) instruction.
    pub insn: u64,
    /// The instruction after it.
    pub resume: u64,
}

macro_rules! probe {
    ($insn:ident, $resume:ident) => {
        Probe {
            insn: core::ptr::addr_of!($insn) as u64,
            resume: core::ptr::addr_of!($resume) as u64,
        }
    };
}

/// The instruction probes.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// `div` by zero (#DE).
    DivZero,
    /// `ud2` (#UD).
    Ud2,
    /// Load from a non-canonical address (#GP(0)).
    NonCanonical,
    /// `int3` (#BP).
    Int3,
    /// `int $0x80`.
    Int80,
    /// `int $0x81`.
    Int81,
    /// `int $0x82`.
    Int82,
}

impl Op {
    /// Where this probe's instruction is.
    #[must_use]
    pub fn probe(self) -> Probe {
        match self {
            Op::DivZero => probe!(xtf_de_insn, xtf_de_resume),
            Op::Ud2 => probe!(xtf_ud_insn, xtf_ud_resume),
            Op::NonCanonical => probe!(xtf_gp_insn, xtf_gp_resume),
            Op::Int3 => probe!(xtf_bp_insn, xtf_bp_resume),
            Op::Int80 => probe!(xtf_int80_insn, xtf_int80_resume),
            Op::Int81 => probe!(xtf_int81_insn, xtf_int81_resume),
            Op::Int82 => probe!(xtf_int82_insn, xtf_int82_resume),
        }
    }

    /// Run it with the resume point armed; returns the entry it caused, if
    /// any, and the rsp at the instruction.
    pub fn run(self) -> (Option<TrapRecord>, u64) {
        let before = trap_count();
        set_fixup(self.probe().resume);
        // SAFETY: each probe is a leaf routine of the asm block above that
        // clobbers only rax/rcx/rdx (declared caller-saved by the C ABI) and
        // resumes at its `ret` after the trap.
        unsafe {
            match self {
                Op::DivZero => xtf_do_de(),
                Op::Ud2 => xtf_do_ud(),
                Op::NonCanonical => xtf_do_gp(),
                Op::Int3 => xtf_do_bp(),
                Op::Int80 => xtf_do_int80(),
                Op::Int81 => xtf_do_int81(),
                Op::Int82 => xtf_do_int82(),
            }
        }
        set_fixup(0);
        let rsp = XTF_EXPECT_RSP.load(Ordering::SeqCst);
        ((trap_count() != before).then(|| record(0)), rsp)
    }
}

/// Probe of the read instruction.
#[must_use]
pub fn read_probe() -> Probe {
    probe!(xtf_probe_read_insn, xtf_probe_read_resume)
}

/// Probe of the write instruction.
#[must_use]
pub fn write_probe() -> Probe {
    probe!(xtf_probe_write_insn, xtf_probe_write_resume)
}

/// Probe of the user-mode `syscall` instruction.
#[must_use]
pub fn syscall_probe() -> Probe {
    probe!(xtf_syscall_insn, xtf_syscall_resume)
}

/// Read `va`, catching a fault: `Ok(value)` or `Err(the #PF/#GP record)`.
pub fn try_read(va: u64) -> Result<u64, TrapRecord> {
    let before = trap_count();
    set_fixup(read_probe().resume);
    // SAFETY: the probe reads `va`; a fault resumes at its `ret` (fixup).
    let v = unsafe { xtf_probe_read(va) };
    set_fixup(0);
    if trap_count() == before {
        Ok(v)
    } else {
        Err(record(0))
    }
}

/// Write `val` at `va`, catching a fault.
pub fn try_write(va: u64, val: u64) -> Result<(), TrapRecord> {
    let before = trap_count();
    set_fixup(write_probe().resume);
    // SAFETY: the probe writes `va`, which callers choose to be either a
    // page of their own or a page that must fault; a fault resumes at its
    // `ret`.
    unsafe { xtf_probe_write(va, val) };
    set_fixup(0);
    if trap_count() == before {
        Ok(())
    } else {
        Err(record(0))
    }
}

/// rsp just before the last probe's instruction.
#[must_use]
pub fn expected_rsp() -> u64 {
    XTF_EXPECT_RSP.load(Ordering::SeqCst)
}

/// `syscall` from guest user mode with `rax = nr`, `rdx = arg`; returns rax.
#[must_use]
pub fn user_syscall(nr: u64, arg: u64) -> u64 {
    // SAFETY: a `syscall` from user mode enters the registered syscall
    // callback, which returns here via iret with rax set.
    unsafe { xtf_do_syscall(nr, arg) }
}

/// Which entry stub to install.
#[derive(Clone, Copy, Debug)]
pub enum Entry {
    /// #DE.
    De,
    /// #BP.
    Bp,
    /// #UD.
    Ud,
    /// #GP.
    Gp,
    /// #PF.
    Pf,
    /// `int $0x80`.
    Int80,
    /// `int $0x81`.
    Int81,
    /// `int $0x82`.
    Int82,
    /// The event upcall.
    Event,
    /// The syscall callback.
    Syscall,
}

impl Entry {
    /// Address of the stub.
    #[must_use]
    pub fn address(self) -> u64 {
        let f: unsafe extern "C" fn() = match self {
            Entry::De => xtf_entry_de,
            Entry::Bp => xtf_entry_bp,
            Entry::Ud => xtf_entry_ud,
            Entry::Gp => xtf_entry_gp,
            Entry::Pf => xtf_entry_pf,
            Entry::Int80 => xtf_entry_int80,
            Entry::Int81 => xtf_entry_int81,
            Entry::Int82 => xtf_entry_int82,
            Entry::Event => xtf_entry_event,
            Entry::Syscall => xtf_entry_syscall,
        };
        f as usize as u64
    }
}

/// Install the exception entries (#DE, #BP, #UD, #GP, #PF; DPL 3 for #BP as
/// on native kernels, events masked) plus `int $0x80` (DPL 3), `$0x81`
/// (DPL 0) and `$0x82` (DPL 1).
///
/// # Panics
/// If Xen refuses the table.
pub fn install_trap_table() {
    let t = [
        TrapInfo::new(0, 0, true, Entry::De.address()),
        TrapInfo::new(3, 3, true, Entry::Bp.address()),
        TrapInfo::new(6, 0, true, Entry::Ud.address()),
        TrapInfo::new(13, 0, true, Entry::Gp.address()),
        TrapInfo::new(14, 0, true, Entry::Pf.address()),
        TrapInfo::new(0x80, 3, false, Entry::Int80.address()),
        TrapInfo::new(0x81, 0, false, Entry::Int81.address()),
        TrapInfo::new(0x82, 1, false, Entry::Int82.address()),
        TrapInfo::new(0, 0, false, 0),
    ];
    guest_abi::callback::set_trap_table(&hypercall_page(), &t).expect("set_trap_table");
}

#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; 16384]>);
// SAFETY: only used as raw memory by the CPU (as a stack).
unsafe impl Sync for Stack {}
static KERNEL_STACK: Stack = Stack(UnsafeCell::new([0; 16384]));
static USER_STACK: Stack = Stack(UnsafeCell::new([0; 16384]));

/// Run `f` in guest user mode on a stack of its own; it must finish with
/// `user_syscall(SYS_EXIT_USER, _)`. Needs a user root table
/// (`MMUEXT_NEW_USER_BASEPTR`) and the syscall callback registered; sets the
/// kernel stack for user→kernel entries (`stack_switch`).
///
/// # Panics
/// If `stack_switch` fails.
pub fn enter_user(f: extern "C" fn() -> !) {
    let ktop = KERNEL_STACK.0.get() as u64 + 16384;
    guest_abi::callback::stack_switch(
        &hypercall_page(),
        guest_abi::abi::xen::FLAT_KERNEL_SS,
        guest_abi::abi::GuestVa(ktop),
    )
    .expect("stack_switch");
    let utop = USER_STACK.0.get() as u64 + 16384 - 8;
    // SAFETY: `xtf_enter_user` saves the callee-saved registers and returns
    // here once user code makes the exit syscall (Note [Entry stubs]); the
    // user stack is ours and unused otherwise.
    unsafe { xtf_enter_user(f as usize as u64, utop) };
}
