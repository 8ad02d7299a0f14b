//! Differential testing of execution backends against the host CPU.
//!
//! Random short x86-64 instruction sequences ([`generator`]) run natively in the
//! test process ([`native`]) and in a [`VcpuBackend`](crate::VcpuBackend)
//! ([`vcpu`]); [`diff`] compares registers, the defined RFLAGS bits, MXCSR,
//! the scratch memory and the exception (vector, error code, CR2, and the
//! register state at the fault point), minimises failing cases and prints
//! them with disassembly.
//!
//! Both sides see the same virtual addresses (Note [Test region layout]), so
//! RIP, CR2, `lea` results and pushed addresses compare directly.
//!
//! ```no_run
//! use hv_cpu::testing::{diff, generator::Family, native::NativeBackend};
//! let mut a = NativeBackend::new().expect("test region");
//! let mut b = NativeBackend::new().expect("test region");
//! let report = diff::run_family(Family::Alu, 100, 1, &mut a, &mut b);
//! assert!(report.failures.is_empty(), "{report}");
//! ```
//!
//! Note [Test region layout]: one fixed virtual range, [`REGION_VA`], holds
//! every page a test case touches. Natively it is mapped with
//! `MAP_FIXED_NOREPLACE`; in a backend it is mapped by 4-level page tables
//! built in a [`MachineMemory`](crate::mem::MachineMemory). Pages marked
//! "guard" are `PROT_NONE` natively and not present in the page tables, so an
//! access there raises #PF with the same error code and CR2 on both sides.
//!
//! | offset | page | native | backend |
//! |---|---|---|---|
//! | `0x0000` | trampoline (prologue, epilogue, recovery stub) | RWX | absent |
//! | `0x1000` | native context (input/output registers, fault record) | RW | absent |
//! | `0x4000` | [`CODE_VA`]: the sequence, then `jmp epilogue` / `int3` | RWX | user RX |
//! | `0x6000` | [`STACK_VA`]: private stack, RSP starts at [`STACK_TOP`] | RW | user RW |
//! | `0x8000` | [`SCRATCH_VA`]: two scratch pages; R15 = [`SCRATCH_BASE`] | RW | user RW |
//! | `0xa000` | [`GUARD_VA`] | none | absent |
//!
//! Every other page of the region is a guard page.

pub mod diff;
pub mod generator;
pub mod native;
pub mod vcpu;

/// Start of the test region (Note [Test region layout]).
pub const REGION_VA: u64 = 0x3e5a_0000_0000;
/// Length of the test region.
pub const REGION_LEN: u64 = 0xb000;
/// The native trampoline page.
pub const TRAMP_VA: u64 = REGION_VA;
/// The native context page.
pub const CTX_VA: u64 = REGION_VA + 0x1000;
/// The page holding the instruction sequence.
pub const CODE_VA: u64 = REGION_VA + 0x4000;
/// The private stack page.
pub const STACK_VA: u64 = REGION_VA + 0x6000;
/// Initial RSP.
pub const STACK_TOP: u64 = STACK_VA + 0x800;
/// First of the two scratch pages.
pub const SCRATCH_VA: u64 = REGION_VA + 0x8000;
/// Size of the scratch area.
pub const SCRATCH_LEN: usize = 0x2000;
/// The value of the base register ([`BASE_REG`]) in every case: the
/// boundary between the two scratch pages.
pub const SCRATCH_BASE: u64 = SCRATCH_VA + 0x1000;
/// The guard page right after the scratch pages.
pub const GUARD_VA: u64 = SCRATCH_VA + 0x2000;
/// Size of the stack page.
pub const STACK_LEN: usize = 0x1000;
/// Index (in [`crate::state::reg`] order) of the register that holds
/// [`SCRATCH_BASE`]; generated code never writes it.
pub const BASE_REG: usize = crate::state::reg::R15;

/// The architectural state a test case sets and compares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchState {
    /// General-purpose registers in encoding order.
    pub gpr: [u64; 16],
    /// RIP (the end of the sequence on completion, the faulting or next
    /// instruction after an exception).
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// XMM0–XMM15.
    pub xmm: [u128; 16],
    /// MXCSR.
    pub mxcsr: u32,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Execution reached the end of the sequence.
    Completed,
    /// An exception was raised (faults: RIP at the instruction; traps such
    /// as #BP: RIP after it).
    Exception {
        /// Vector.
        vector: u8,
        /// Error code for vectors that have one.
        error_code: Option<u32>,
        /// Faulting address (compared for #PF only).
        cr2: u64,
    },
    /// Anything else (an unexpected exit, a timeout, a setup failure).
    Other(String),
}

/// The result of running a case on one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How the run ended.
    pub stop: Stop,
    /// Registers at the end (or at the fault point).
    pub state: ArchState,
    /// The scratch area ([`SCRATCH_VA`], [`SCRATCH_LEN`] bytes).
    pub scratch: Vec<u8>,
    /// The stack page ([`STACK_VA`], [`STACK_LEN`] bytes).
    pub stack: Vec<u8>,
}

/// Something that can run a [`generator::Case`].
pub trait Backend {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// Run the case from its input state and report the outcome.
    fn run(&mut self, case: &generator::Case) -> Outcome;
}

/// Whether `vector` pushes an error code.
#[must_use]
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}
