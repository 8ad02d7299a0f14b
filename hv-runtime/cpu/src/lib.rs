//! # hv-cpu
//!
//! The seam between the hypervisor and whatever executes guest instructions,
//! and the machine memory both sides share.
//!
//! PV guests — kernel and user alike — run at CPL 3 in 64-bit mode with
//! paging. An execution backend therefore only needs to run unprivileged
//! long-mode code: every privileged act (a hypercall `syscall`, a fault, a
//! software interrupt, `hlt`, a privileged instruction) leaves the backend as
//! an [`Exit`] for the hypervisor to handle, after which it resumes the vCPU
//! from the (possibly edited) [`CpuState`].
//!
//! ```
//! use hv_cpu::{CpuState, mem::MachineMemory};
//! let mem = MachineMemory::new(16).unwrap();
//! let mut st = CpuState::default();
//! st.rip = 0x40_0000;
//! assert_eq!(mem.frames(), 16);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod interp;
pub mod mem;
pub mod model;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;

pub use state::{CpuState, DescriptorTables, FxArea, Segment};

/// Why a backend stopped running guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The guest executed `syscall` (`rip` points after it). In guest kernel
    /// mode this is a hypercall; in guest user mode it is bounced to the
    /// guest kernel's syscall callback.
    Syscall,
    /// A fault or trap. `rip` is the faulting instruction for faults and the
    /// next instruction for traps (#DB after single-step, #BP, #OF).
    /// `cr2` is meaningful for #PF (vector 14) only.
    Exception {
        /// Vector number (0–31).
        vector: u8,
        /// Error code for vectors that push one.
        error_code: Option<u32>,
        /// Faulting linear address for #PF.
        cr2: u64,
    },
    /// `int n` (`rip` points after the instruction). The hypervisor checks the
    /// guest trap table's DPL and either bounces or raises #GP itself.
    SoftInt(u8),
    /// `hlt`-like idle request. (At CPL 3 `hlt` raises #GP(0), which the
    /// hypervisor may emulate and turn into a halt; backends with their own
    /// notion of idling report it here.)
    Halt,
    /// The run budget was used up; the state is consistent and resumable.
    Deadline,
}

/// Exception vectors.
pub mod vector {
    /// Divide error.
    pub const DE: u8 = 0;
    /// Debug.
    pub const DB: u8 = 1;
    /// Non-maskable interrupt.
    pub const NMI: u8 = 2;
    /// Breakpoint (`int3`).
    pub const BP: u8 = 3;
    /// Overflow (`into`).
    pub const OF: u8 = 4;
    /// Bound range exceeded.
    pub const BR: u8 = 5;
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// Device not available (FPU/SSE use with CR0.TS set).
    pub const NM: u8 = 7;
    /// Double fault.
    pub const DF: u8 = 8;
    /// Invalid TSS.
    pub const TS: u8 = 10;
    /// Segment not present.
    pub const NP: u8 = 11;
    /// Stack-segment fault.
    pub const SS: u8 = 12;
    /// General protection.
    pub const GP: u8 = 13;
    /// Page fault.
    pub const PF: u8 = 14;
    /// x87 floating-point error.
    pub const MF: u8 = 16;
    /// Alignment check.
    pub const AC: u8 = 17;
    /// SIMD floating-point exception.
    pub const XM: u8 = 19;
}

/// #PF error-code bits.
pub mod pf {
    /// The page was present (a protection fault).
    pub const PRESENT: u32 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u32 = 1 << 1;
    /// The access was from user mode.
    pub const USER: u32 = 1 << 2;
    /// A reserved bit was set in a paging entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch.
    pub const FETCH: u32 = 1 << 4;
}

/// How long a call to [`VcpuBackend::run`] may run before returning
/// [`Exit::Deadline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Stop after about this many guest instructions (backends may overshoot
    /// by at most one basic block). Deterministic.
    Instructions(u64),
    /// Stop at or soon after this host monotonic time (nanoseconds of
    /// `CLOCK_MONOTONIC`).
    HostNanos(u64),
    /// No budget: run until another exit.
    None,
}

/// Which cached translations to drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushScope {
    /// Every translation (CR3 reload, full TLB flush).
    All,
    /// Translations of one linear page (INVLPG).
    Page(u64),
}

/// Answers the CPU asks of the hypervisor: `cpuid`, the time-stamp counter,
/// and port-I/O permission. Called rarely; a `&dyn` is fine.
pub trait CpuEnv {
    /// The `cpuid` result `[eax, ebx, ecx, edx]` for `leaf`/`subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// The guest's time-stamp counter now.
    fn rdtsc(&self) -> u64;
    /// The CPU whose behaviour the backend models: by default read from
    /// [`Self::cpuid`] ([`model::CpuModel::from_env`]). An environment that
    /// builds its `cpuid` from a [`model::CpuModel`] returns that model
    /// directly (cheaper: backends ask at every run); it must be the one
    /// its `cpuid` describes.
    fn cpu_model(&self) -> model::CpuModel {
        model::CpuModel::from_cpuid(&|l, s| self.cpuid(l, s))
    }
    /// Whether `in`/`out` of `width` bytes at `port` may run at CPL 3 (the
    /// virtual IOPL and I/O bitmap the hypervisor keeps). Denied accesses
    /// raise #GP(0).
    fn io_allowed(&self, port: u16, width: u8) -> bool {
        let _ = (port, width);
        false
    }
}

/// An execution backend for one vCPU (the software CPU, later KVM).
///
/// Everything above this trait — hypercalls, bounce frames, scheduling — is
/// shared by every backend and never asks which one is running.
pub trait VcpuBackend {
    /// Run guest code from `state` until the hypervisor must act.
    fn run(
        &mut self,
        state: &mut CpuState,
        mem: &mem::MachineMemory,
        env: &dyn CpuEnv,
        deadline: Deadline,
    ) -> Exit;
    /// Drop cached address translations (the hypervisor changed page tables
    /// or the root table).
    fn flush_tlb(&mut self, scope: FlushScope);
}
