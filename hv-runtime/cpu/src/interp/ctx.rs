//! The interpreter's execution context, below everything that executes:
//! [`Cpu`] (one run's state, memory and environment), [`Core`] (per-vCPU
//! interpreter state), [`Stop`] and [`BlockEnd`]. Modules above it
//! (`access`, `translate`, `operand`, `alu`, the executors and the run loop
//! in `mod.rs`) import it; it imports only `mmu`'s TLB types and `flags`.

use super::flags::{self, Lazy};
use super::mmu::{Fault, Tlb};
use crate::mem::MachineMemory;
use crate::model::CpuModel;
use crate::state::rflags;
use crate::{CpuEnv, CpuState, Exit};

/// Most instructions in one block.
pub const MAX_BLOCK: usize = 64;

/// Why an instruction did not simply fall through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A fault: the instruction did not retire, `rip` stays at it.
    Fault(Fault),
    /// The instruction retired and the run must exit (`rip` after it).
    Trap(Exit),
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Self {
        Self::Fault(f)
    }
}

/// Per-vCPU interpreter state that is not architectural.
#[derive(Debug)]
pub(crate) struct Core {
    pub tlb: Tlb,
    pub lz: Lazy,
    /// RFLAGS; the status bits are valid only while `lz.op == Eager`.
    pub rf: u64,
    /// Set when a store hit a frame holding translated code.
    pub smc: bool,
    /// The CPU being modelled, read from the guest's `cpuid` at the start
    /// of every run (Note [One modelled CPU]).
    pub model: CpuModel,
}

impl Core {
    /// Fully materialised RFLAGS.
    #[inline]
    pub(crate) fn flags(&self) -> u64 {
        (self.rf & !rflags::STATUS) | self.lz.status(self.rf)
    }
    /// Replace all of RFLAGS (status bits become eager).
    #[inline]
    pub(crate) fn set_flags(&mut self, f: u64) {
        self.rf = (f & !0x8028) | rflags::RESERVED1;
        self.lz.op = flags::FOp::Eager;
    }
    #[inline(always)]
    pub(crate) fn cond(&self, cc: u8) -> bool {
        self.lz.cond(cc, self.rf)
    }
    #[inline(always)]
    pub(crate) fn cf(&self) -> u64 {
        u64::from(self.lz.cond(2, self.rf))
    }
}

/// The execution context of one run: architectural state, memory, the
/// hypervisor's answers and the interpreter's per-vCPU state.
pub(crate) struct Cpu<'a> {
    pub st: &'a mut CpuState,
    pub mem: &'a MachineMemory,
    pub env: &'a dyn CpuEnv,
    pub c: &'a mut Core,
}

/// What running one block produced.
pub(crate) enum BlockEnd {
    Next(u64),
    Stop(Stop, u64, u64),
}
