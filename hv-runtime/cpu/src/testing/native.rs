//! Run a generated instruction sequence natively, on the host CPU, at CPL 3.
//!
//! The test region (Note [Test region layout]) is mapped once per process at
//! its fixed address. A run writes the input registers into the context page,
//! copies the sequence to [`CODE_VA`] followed by `jmp epilogue`, and calls
//! the trampoline, which saves the host's callee-saved registers, MXCSR and
//! RSP, loads every GPR (RSP = the private stack), RFLAGS, XMM0–15 and MXCSR,
//! and jumps to the sequence. The epilogue stores everything back and returns
//! to Rust.
//!
//! Faults: handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGTRAP
//! (`SA_SIGINFO | SA_ONSTACK`, on a per-thread alternate stack) check whether
//! the interrupted RIP lies inside the test region. If so they copy the
//! signal, `REG_TRAPNO`, `REG_ERR`, `REG_CR2` and every register from the
//! `ucontext_t` into the context page and point RIP at the recovery stub,
//! which restores the host state and returns to Rust normally. Any other
//! fault reinstalls the handler that was there before (Rust's stack-overflow
//! handler or the default action) and returns, so the fault is raised again
//! and handled exactly as without this module.
//!
//! One run at a time: a process-wide mutex serialises native runs (test
//! threads run in parallel), and the signal handler only touches the context
//! page and atomics.
//!
//! Note [Native sandbox]: the sequence runs inside the test process, so its
//! memory accesses must stay in the test region. [`Case`]s are only built
//! by this crate's generator, which addresses memory through the base
//! register R15 (= [`SCRATCH_BASE`], never written) with bounded
//! displacements, through RSI/RDI set up by `lea` from R15 with small RCX,
//! the private stack, or deliberately non-canonical addresses (which fault).
//! It never emits branches, `syscall`, `sysenter` or `int n`, and never
//! writes RSP except by push/pop. [`NativeBackend::run`] additionally
//! refuses sequences containing control transfers or system-call
//! instructions.
#![allow(unsafe_code)]

use super::generator::Case;
use super::{
    ArchState, Backend, CODE_VA, CTX_VA, GUARD_VA, Outcome, REGION_LEN, REGION_VA, SCRATCH_LEN,
    SCRATCH_VA, STACK_LEN, STACK_VA, Stop, TRAMP_VA, has_error_code,
};
use iced_x86::{Code, Encoder, FlowControl, IcedError, Instruction, MemoryOperand, Register};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

// Context-page layout (offsets from CTX_VA).
const IN_GPR: u64 = 0x000;
const IN_RFLAGS: u64 = 0x080;
const IN_MXCSR: u64 = 0x088;
const IN_XMM: u64 = 0x100;
const OUT_GPR: u64 = 0x200;
const OUT_RFLAGS: u64 = 0x280;
const OUT_MXCSR: u64 = 0x288;
const OUT_XMM: u64 = 0x300;
const HOST_RSP: u64 = 0x400;
const HOST_MXCSR: u64 = 0x408;
const STATUS: u64 = 0x410;
const F_SIGNAL: u64 = 0x418;
const F_TRAPNO: u64 = 0x420;
const F_ERR: u64 = 0x428;
const F_CR2: u64 = 0x430;
const F_RIP: u64 = 0x438;
const F_RFLAGS: u64 = 0x440;
const F_MXCSR: u64 = 0x448;
const F_GPR: u64 = 0x500;
const F_XMM: u64 = 0x600;

const STATUS_RUNNING: u64 = 0;
const STATUS_DONE: u64 = 1;
const STATUS_FAULT: u64 = 2;

// Trampoline layout (offsets from TRAMP_VA).
const EPILOGUE: u64 = TRAMP_VA + 0x400;
const RECOVER: u64 = TRAMP_VA + 0x800;

const PAGE: u64 = 0x1000;

/// `ucontext_t` gregs index of each GPR, in x86 encoding order.
const GREG_OF: [usize; 16] = {
    let r = [
        libc::REG_RAX,
        libc::REG_RCX,
        libc::REG_RDX,
        libc::REG_RBX,
        libc::REG_RSP,
        libc::REG_RBP,
        libc::REG_RSI,
        libc::REG_RDI,
        libc::REG_R8,
        libc::REG_R9,
        libc::REG_R10,
        libc::REG_R11,
        libc::REG_R12,
        libc::REG_R13,
        libc::REG_R14,
        libc::REG_R15,
    ];
    let mut out = [0usize; 16];
    let mut i = 0;
    while i < 16 {
        #[expect(clippy::cast_sign_loss)]
        {
            out[i] = r[i] as usize;
        }
        i += 1;
    }
    out
};

const SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
];

/// Serialises native runs: the region and the context page are global.
static RUN_LOCK: Mutex<()> = Mutex::new(());
/// Set while a run is in progress (read by the signal handler).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The handlers that were installed before ours, in [`SIGNALS`] order.
static PREVIOUS: OnceLock<[libc::sigaction; 5]> = OnceLock::new();
/// One-time setup result: the region mapping and the handlers.
static SETUP: OnceLock<Result<(), String>> = OnceLock::new();

thread_local! {
    static ALT_STACK_READY: Cell<bool> = const { Cell::new(false) };
}

/// Runs cases on the host CPU.
#[derive(Debug)]
pub struct NativeBackend {
    _private: (),
}

impl NativeBackend {
    /// Map the test region and install the signal handlers (once per
    /// process).
    ///
    /// # Errors
    /// The region's fixed address is taken, the host refuses an executable
    /// mapping, or a handler cannot be installed.
    pub fn new() -> Result<Self, String> {
        SETUP.get_or_init(setup).clone()?;
        Ok(Self { _private: () })
    }
}

impl Backend for NativeBackend {
    fn name(&self) -> &str {
        "native"
    }

    fn run(&mut self, case: &Case) -> Outcome {
        run_native(case).unwrap_or_else(|e| Outcome {
            stop: Stop::Other(format!("native setup failed: {e}")),
            state: ArchState::default(),
            scratch: Vec::new(),
            stack: Vec::new(),
        })
    }
}

fn ctx_ptr(off: u64) -> *mut u8 {
    usize::try_from(CTX_VA + off).unwrap_or(0) as *mut u8
}

fn va_ptr(va: u64) -> *mut u8 {
    usize::try_from(va).unwrap_or(0) as *mut u8
}

fn setup() -> Result<(), String> {
    map_region()?;
    write_trampoline().map_err(|e| format!("assembling the trampoline: {e}"))?;
    install_handlers()
}

fn map_region() -> Result<(), String> {
    let len = usize::try_from(REGION_LEN).map_err(|e| e.to_string())?;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the
    // result is checked below. The region is never unmapped (it lives for the
    // whole process), so pointers into it stay valid.
    let p = unsafe {
        libc::mmap(
            va_ptr(REGION_VA).cast(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "cannot map the test region at {REGION_VA:#x}: {}",
            std::io::Error::last_os_error()
        ));
    }
    if p as u64 != REGION_VA {
        // An old kernel ignored MAP_FIXED_NOREPLACE; give the range back.
        // SAFETY: `p` is the mapping just created, of `len` bytes.
        unsafe { libc::munmap(p, len) };
        return Err(format!(
            "the host placed the test region at {p:p}, not {REGION_VA:#x}"
        ));
    }
    let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    for (va, prot) in [
        (TRAMP_VA, rwx),
        (CTX_VA, rw),
        (CODE_VA, rwx),
        (STACK_VA, rw),
        (SCRATCH_VA, rw),
        (SCRATCH_VA + PAGE, rw),
    ] {
        // SAFETY: one page inside the region mapped above; changing its
        // protection affects no Rust object.
        let r = unsafe { libc::mprotect(va_ptr(va).cast(), 0x1000, prot) };
        if r != 0 {
            return Err(format!(
                "mprotect({va:#x}, {prot:#x}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    debug_assert_eq!(GUARD_VA, SCRATCH_VA + 2 * PAGE);
    Ok(())
}

fn rip_mem(off: u64) -> MemoryOperand {
    #[expect(clippy::cast_possible_wrap)]
    MemoryOperand::with_base_displ(Register::RIP, (CTX_VA + off) as i64)
}

const GPRS: [Register; 16] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSP,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

const XMMS: [Register; 16] = [
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
    Register::XMM8,
    Register::XMM9,
    Register::XMM10,
    Register::XMM11,
    Register::XMM12,
    Register::XMM13,
    Register::XMM14,
    Register::XMM15,
];

/// Encode `insns` one after the other starting at `ip`.
pub(crate) fn encode_at(ip: u64, insns: &[Instruction]) -> Result<Vec<u8>, IcedError> {
    let mut enc = Encoder::new(64);
    let mut at = ip;
    for i in insns {
        let n = enc.encode(i, at)?;
        at += n as u64;
    }
    Ok(enc.take_buffer())
}

fn write_trampoline() -> Result<(), IcedError> {
    let mut entry = Vec::new();
    for r in [
        Register::RBX,
        Register::RBP,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ] {
        entry.push(Instruction::with1(Code::Push_r64, r)?);
    }
    entry.push(Instruction::with2(
        Code::Mov_rm64_r64,
        rip_mem(HOST_RSP),
        Register::RSP,
    )?);
    entry.push(Instruction::with1(Code::Stmxcsr_m32, rip_mem(HOST_MXCSR))?);
    // A defined x87 start, as the backend's: `fninit` keeps the physical
    // registers' contents (which `fxsave` shows), so fill all eight with
    // +0.0 first. Otherwise a minimised case would inherit the registers
    // of whatever case ran before it.
    entry.push(Instruction::with(Code::Fninit));
    for _ in 0..8 {
        entry.push(Instruction::with(Code::Fldz));
    }
    entry.push(Instruction::with(Code::Fninit));
    entry.push(Instruction::with1(Code::Ldmxcsr_m32, rip_mem(IN_MXCSR))?);
    for (i, x) in (0u64..).zip(XMMS) {
        entry.push(Instruction::with2(
            Code::Movdqu_xmm_xmmm128,
            x,
            rip_mem(IN_XMM + 16 * i),
        )?);
    }
    entry.push(Instruction::with1(Code::Push_rm64, rip_mem(IN_RFLAGS))?);
    entry.push(Instruction::with(Code::Popfq));
    for (i, r) in (0u64..).zip(GPRS) {
        if r != Register::RSP {
            entry.push(Instruction::with2(
                Code::Mov_r64_rm64,
                r,
                rip_mem(IN_GPR + 8 * i),
            )?);
        }
    }
    entry.push(Instruction::with2(
        Code::Mov_r64_rm64,
        Register::RSP,
        rip_mem(IN_GPR + 8 * 4),
    )?);
    entry.push(Instruction::with_branch(Code::Jmp_rel32_64, CODE_VA)?);

    let mut epi = Vec::new();
    for (i, r) in (0u64..).zip(GPRS) {
        epi.push(Instruction::with2(
            Code::Mov_rm64_r64,
            rip_mem(OUT_GPR + 8 * i),
            r,
        )?);
    }
    epi.push(Instruction::with2(
        Code::Mov_r64_rm64,
        Register::RSP,
        rip_mem(HOST_RSP),
    )?);
    epi.push(Instruction::with(Code::Pushfq));
    epi.push(Instruction::with1(Code::Pop_r64, Register::RAX)?);
    epi.push(Instruction::with2(
        Code::Mov_rm64_r64,
        rip_mem(OUT_RFLAGS),
        Register::RAX,
    )?);
    for (i, x) in (0u64..).zip(XMMS) {
        epi.push(Instruction::with2(
            Code::Movdqu_xmmm128_xmm,
            rip_mem(OUT_XMM + 16 * i),
            x,
        )?);
    }
    epi.push(Instruction::with1(Code::Stmxcsr_m32, rip_mem(OUT_MXCSR))?);
    #[expect(clippy::cast_possible_truncation)]
    epi.push(Instruction::with2(
        Code::Mov_rm32_imm32,
        rip_mem(STATUS),
        STATUS_DONE as u32,
    )?);
    epi.push(Instruction::with_branch(Code::Jmp_rel32_64, RECOVER)?);

    let mut rec = vec![
        Instruction::with2(Code::Mov_r64_rm64, Register::RSP, rip_mem(HOST_RSP))?,
        Instruction::with(Code::Cld),
        Instruction::with(Code::Fninit),
        Instruction::with1(Code::Ldmxcsr_m32, rip_mem(HOST_MXCSR))?,
    ];
    for r in [
        Register::R15,
        Register::R14,
        Register::R13,
        Register::R12,
        Register::RBP,
        Register::RBX,
    ] {
        rec.push(Instruction::with1(Code::Pop_r64, r)?);
    }
    rec.push(Instruction::with(Code::Retnq));

    let mut page = vec![0xccu8; 0x1000];
    for (at, insns) in [(TRAMP_VA, &entry), (EPILOGUE, &epi), (RECOVER, &rec)] {
        let bytes = encode_at(at, insns)?;
        let off = usize::try_from(at - TRAMP_VA).unwrap_or(0);
        assert!(bytes.len() <= 0x400, "trampoline part too long");
        page[off..off + bytes.len()].copy_from_slice(&bytes);
    }
    // SAFETY: the trampoline page is mapped RWX for the life of the process
    // and nothing else references it; the mutex is not needed yet because
    // `setup` runs once, before any run.
    unsafe { std::ptr::copy_nonoverlapping(page.as_ptr(), va_ptr(TRAMP_VA), page.len()) };
    Ok(())
}

fn install_handlers() -> Result<(), String> {
    // SAFETY: zeroed `sigaction` structs are valid (no handler, empty mask).
    let mut prev: [libc::sigaction; 5] = unsafe { std::mem::zeroed() };
    for (sig, old) in SIGNALS.iter().zip(prev.iter_mut()) {
        // SAFETY: querying the current action writes only into `old`.
        let r = unsafe { libc::sigaction(*sig, std::ptr::null(), old) };
        if r != 0 {
            return Err(format!("sigaction({sig}) query failed"));
        }
    }
    let _ = PREVIOUS.set(prev);
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting point.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa.sa_mask` is a valid sigset owned by us.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `handler` is async-signal-safe (it only reads the
        // ucontext, writes the context page and reads atomics) and has the
        // SA_SIGINFO signature.
        let r = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if r != 0 {
            return Err(format!("sigaction({sig}) install failed"));
        }
    }
    Ok(())
}

/// Make sure this thread has an alternate signal stack (Rust's runtime
/// gives its threads one, but other threads may not have it).
fn ensure_alt_stack() {
    if ALT_STACK_READY.with(Cell::get) {
        return;
    }
    // SAFETY: a zeroed stack_t is valid for the query, which only writes it.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: query only.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) };
    if cur.ss_flags & libc::SS_DISABLE != 0 || cur.ss_size < 0x8000 {
        let mem: &'static mut [u8] = Box::leak(vec![0u8; 0x10000].into_boxed_slice());
        let st = libc::stack_t {
            ss_sp: mem.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: mem.len(),
        };
        // SAFETY: the stack is a leaked allocation that lives forever; the
        // old alternate stack (if any, smaller) is simply no longer used.
        unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) };
    }
    ALT_STACK_READY.with(|c| c.set(true));
}

extern "C" fn handler(sig: libc::c_int, _info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let uc = uctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
    let g = unsafe { &mut (*uc).uc_mcontext.gregs };
    #[expect(clippy::cast_sign_loss)]
    let rip = g[libc::REG_RIP as usize] as u64;
    if !ACTIVE.load(Ordering::Acquire) || !(REGION_VA..REGION_VA + REGION_LEN).contains(&rip) {
        // Not ours: put the previous action back and return; the fault is
        // raised again and handled as if we had never been installed.
        if let Some(prev) = PREVIOUS.get()
            && let Some(i) = SIGNALS.iter().position(|&s| s == sig)
            && let Some(old) = prev.get(i)
        {
            // SAFETY: restoring a sigaction previously returned by the kernel.
            unsafe { libc::sigaction(sig, old, std::ptr::null_mut()) };
        } else {
            // SAFETY: resetting to the default action is always valid.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        return;
    }
    let put = |off: u64, v: u64| {
        // SAFETY: the context page is mapped RW for the whole process and a
        // run holds RUN_LOCK, so nothing else writes it; offsets are inside
        // the page.
        unsafe { ctx_ptr(off).cast::<u64>().write_volatile(v) };
    };
    #[expect(clippy::cast_sign_loss)]
    {
        put(F_SIGNAL, sig as u64);
        put(F_TRAPNO, g[libc::REG_TRAPNO as usize] as u64);
        put(F_ERR, g[libc::REG_ERR as usize] as u64);
        put(F_CR2, g[libc::REG_CR2 as usize] as u64);
        put(F_RIP, rip);
        put(F_RFLAGS, g[libc::REG_EFL as usize] as u64);
        for (i, &gi) in (0u64..).zip(GREG_OF.iter()) {
            put(F_GPR + 8 * i, g[gi] as u64);
        }
    }
    // SAFETY: valid ucontext (see above); `fpregs` points at the saved FPU
    // state in the signal frame, or is null.
    let fp = unsafe { (*uc).uc_mcontext.fpregs };
    if !fp.is_null() {
        // SAFETY: `fp` is non-null and points into the signal frame.
        let fp = unsafe { &*fp };
        put(F_MXCSR, u64::from(fp.mxcsr));
        for (i, x) in (0u64..).zip(fp._xmm.iter()) {
            let e = x.element;
            put(F_XMM + 16 * i, u64::from(e[0]) | (u64::from(e[1]) << 32));
            put(
                F_XMM + 16 * i + 8,
                u64::from(e[2]) | (u64::from(e[3]) << 32),
            );
        }
    }
    put(STATUS, STATUS_FAULT);
    #[expect(clippy::cast_possible_wrap)]
    {
        g[libc::REG_RIP as usize] = RECOVER as i64;
        // Clear TF and DF so the stub runs normally.
        g[libc::REG_EFL as usize] &= !0x500;
    }
}

fn get(off: u64) -> u64 {
    // SAFETY: the context page is mapped for the whole process; callers
    // hold RUN_LOCK.
    unsafe { ctx_ptr(off).cast::<u64>().read_volatile() }
}

fn set(off: u64, v: u64) {
    // SAFETY: as in `get`.
    unsafe { ctx_ptr(off).cast::<u64>().write_volatile(v) };
}

fn read_state(gpr: u64, rflags: u64, mxcsr: u64, xmm: u64) -> ArchState {
    let mut s = ArchState::default();
    for (i, g) in (0u64..).zip(s.gpr.iter_mut()) {
        *g = get(gpr + 8 * i);
    }
    s.rflags = get(rflags);
    #[expect(clippy::cast_possible_truncation)]
    {
        s.mxcsr = get(mxcsr) as u32;
    }
    for (i, x) in (0u64..).zip(s.xmm.iter_mut()) {
        *x = u128::from(get(xmm + 16 * i)) | (u128::from(get(xmm + 16 * i + 8)) << 64);
    }
    s
}

fn copy_in(va: u64, data: &[u8], len: usize) {
    assert_eq!(data.len(), len, "case memory image has the wrong size");
    // SAFETY: `va..va+len` is one of the RW pages of the region (stack or
    // scratch), mapped for the whole process; callers hold RUN_LOCK.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), va_ptr(va), len) };
}

fn copy_out(va: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    // SAFETY: as in `copy_in`.
    unsafe { std::ptr::copy_nonoverlapping(va_ptr(va), v.as_mut_ptr(), len) };
    v
}

fn check_sandbox(case: &Case) -> Result<(), String> {
    for i in case.instructions() {
        let bad = !matches!(i.flow_control(), FlowControl::Next | FlowControl::Exception)
            || matches!(
                i.code(),
                Code::Syscall | Code::Sysenter | Code::Int_imm8 | Code::Int1 | Code::Into
            );
        if bad && i.code() != Code::Int3 {
            return Err(format!("refusing to run {:?} natively", i.code()));
        }
    }
    Ok(())
}

fn run_native(case: &Case) -> Result<Outcome, String> {
    NativeBackend::new()?;
    check_sandbox(case)?;
    let end = CODE_VA + case.code().len() as u64;
    let mut code = case.code().to_vec();
    code.extend(
        encode_at(
            end,
            &[
                Instruction::with_branch(Code::Jmp_rel32_64, EPILOGUE)
                    .map_err(|e| e.to_string())?,
            ],
        )
        .map_err(|e| e.to_string())?,
    );
    if code.len() > 0x1000 {
        return Err("sequence longer than a page".into());
    }
    code.resize(0x1000, 0xcc);
    let _guard = RUN_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ensure_alt_stack();
    let input = case.input();
    for (i, g) in (0u64..).zip(input.gpr.iter()) {
        set(IN_GPR + 8 * i, *g);
    }
    set(IN_RFLAGS, input.rflags);
    set(IN_MXCSR, u64::from(input.mxcsr));
    for (i, x) in (0u64..).zip(input.xmm.iter()) {
        #[expect(clippy::cast_possible_truncation)]
        {
            set(IN_XMM + 16 * i, *x as u64);
            set(IN_XMM + 16 * i + 8, (*x >> 64) as u64);
        }
    }
    set(STATUS, STATUS_RUNNING);
    copy_in(CODE_VA, &code, 0x1000);
    copy_in(STACK_VA, case.stack(), STACK_LEN);
    copy_in(SCRATCH_VA, case.scratch(), SCRATCH_LEN);
    ACTIVE.store(true, Ordering::Release);
    // SAFETY: TRAMP_VA holds the trampoline written in `setup`: a function
    // with the sysv64 ABI that takes no arguments, preserves every
    // callee-saved register, the host stack, MXCSR and the x87 control word,
    // clears DF, and returns normally both after the epilogue and (through
    // the recovery stub) after a fault in the test region. The sequence it
    // runs stays inside the test region (Note [Native sandbox]).
    unsafe {
        let f: extern "sysv64" fn() =
            std::mem::transmute::<*mut u8, extern "sysv64" fn()>(va_ptr(TRAMP_VA));
        f();
    }
    ACTIVE.store(false, Ordering::Release);
    let status = get(STATUS);
    let (stop, state) = match status {
        STATUS_DONE => {
            let mut s = read_state(OUT_GPR, OUT_RFLAGS, OUT_MXCSR, OUT_XMM);
            s.rip = end;
            (Stop::Completed, s)
        }
        STATUS_FAULT => {
            let mut s = read_state(F_GPR, F_RFLAGS, F_MXCSR, F_XMM);
            s.rip = get(F_RIP);
            let trapno = get(F_TRAPNO);
            let sig = get(F_SIGNAL);
            let stop = match u8::try_from(trapno) {
                Ok(vector) if vector < 32 => Stop::Exception {
                    vector,
                    #[expect(clippy::cast_possible_truncation)]
                    error_code: has_error_code(vector).then_some(get(F_ERR) as u32),
                    cr2: if vector == 14 { get(F_CR2) } else { 0 },
                },
                _ => Stop::Other(format!("signal {sig} with trapno {trapno}")),
            };
            (stop, s)
        }
        other => (
            Stop::Other(format!("native run ended with status {other}")),
            ArchState::default(),
        ),
    };
    Ok(Outcome {
        stop,
        state,
        scratch: copy_out(SCRATCH_VA, SCRATCH_LEN),
        stack: copy_out(STACK_VA, STACK_LEN),
    })
}
