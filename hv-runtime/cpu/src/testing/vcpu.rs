//! Run a case on any [`VcpuBackend`] (the software CPU, later KVM).
//!
//! The test region's code, stack and scratch pages are mapped at their fixed
//! virtual addresses (Note [Test region layout]) by a 4-level page table
//! built in a small [`MachineMemory`]; every other page of the region is not
//! present, so guard-page accesses raise #PF exactly as natively. The
//! sequence is followed by `int3`: a #BP exit whose RIP is one past the end
//! of the sequence means the sequence completed.

use super::generator::Case;
use super::{
    ArchState, Backend, CODE_VA, Outcome, SCRATCH_LEN, SCRATCH_VA, STACK_LEN, STACK_VA, Stop,
};
use crate::mem::{MachineAddr, MachineMemory, Mfn, PAGE_SIZE};
use crate::state::{Segment, sreg};
use crate::{CpuEnv, CpuState, Deadline, Exit, VcpuBackend};

const L4: u64 = 0;
const L3: u64 = 1;
const L2: u64 = 2;
const L1: u64 = 3;
const CODE_MFN: u64 = 4;
const STACK_MFN: u64 = 5;
const SCRATCH_MFN: u64 = 6; // and 7
const FRAMES: u64 = 8;
/// Present, writable, user, accessed, dirty.
const PTE: u64 = 0x67;

/// Instruction budget per run: sequences are short and `rep` counts small,
/// so hitting it means the backend looped.
const BUDGET: u64 = 100_000;

/// The environment of a differential run: `cpuid` is the **host's**,
/// masked to what the interpreter implements, so the interpreter models
/// the host's vendor and features (Note [One modelled CPU] in `interp`);
/// `rdtsc` is 0 (the generator never emits `cpuid`, `rdtsc` or permitted
/// port I/O).
#[derive(Debug, Default)]
pub struct FixedEnv;

impl CpuEnv for FixedEnv {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        crate::interp::mask_cpuid(leaf, subleaf, crate::model::host_cpuid(leaf, subleaf))
    }
    fn cpu_model(&self) -> crate::model::CpuModel {
        // The host does not change: read its (masked) `cpuid` once.
        static MODEL: std::sync::OnceLock<crate::model::CpuModel> = std::sync::OnceLock::new();
        *MODEL.get_or_init(|| crate::model::CpuModel::from_cpuid(&|l, s| self.cpuid(l, s)))
    }
    fn rdtsc(&self) -> u64 {
        0
    }
}

/// Runs cases on a [`VcpuBackend`] made fresh for every case by `make`.
pub struct VcpuRunner<B, F: FnMut() -> B> {
    name: String,
    make: F,
    mem: MachineMemory,
}

impl<B, F: FnMut() -> B> std::fmt::Debug for VcpuRunner<B, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuRunner")
            .field("name", &self.name)
            .finish()
    }
}

fn idx(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 511
}

impl<B: VcpuBackend, F: FnMut() -> B> VcpuRunner<B, F> {
    /// A runner called `name` that builds its backend with `make`.
    ///
    /// # Errors
    /// The machine memory cannot be mapped or the page tables written.
    pub fn new(name: &str, make: F) -> Result<Self, crate::mem::MemError> {
        let mem = MachineMemory::new(FRAMES)?;
        let ent = |table: u64, va: u64, level: u32, target: u64| {
            mem.write_u64(
                MachineAddr(Mfn(table).addr().0 + 8 * idx(va, level)),
                Mfn(target).addr().0 | PTE,
            )
        };
        ent(L4, CODE_VA, 3, L3)?;
        ent(L3, CODE_VA, 2, L2)?;
        ent(L2, CODE_VA, 1, L1)?;
        ent(L1, CODE_VA, 0, CODE_MFN)?;
        ent(L1, STACK_VA, 0, STACK_MFN)?;
        ent(L1, SCRATCH_VA, 0, SCRATCH_MFN)?;
        ent(L1, SCRATCH_VA + PAGE_SIZE, 0, SCRATCH_MFN + 1)?;
        debug_assert_eq!(idx(CODE_VA, 1), idx(SCRATCH_VA + PAGE_SIZE, 1));
        Ok(Self {
            name: name.to_string(),
            make,
            mem,
        })
    }

    fn load(&self, case: &Case) -> Result<CpuState, crate::mem::MemError> {
        let mut code = case.code().to_vec();
        code.resize(0x1000, 0xcc); // int3 after the sequence
        self.mem.write(Mfn(CODE_MFN).addr(), &code)?;
        self.mem.write(Mfn(STACK_MFN).addr(), case.stack())?;
        self.mem.write(Mfn(SCRATCH_MFN).addr(), case.scratch())?;
        let inp = case.input();
        let mut st = CpuState {
            gpr: inp.gpr,
            rip: inp.rip,
            rflags: inp.rflags,
            xmm: inp.xmm,
            mxcsr: inp.mxcsr,
            cr3: Mfn(L4).addr().0,
            ..CpuState::default()
        };
        st.fx.0[24..28].copy_from_slice(&inp.mxcsr.to_le_bytes());
        // Flat 64-bit ring-3 segments, as Xen gives PV guests.
        st.seg[sreg::CS] = Segment {
            selector: 0xe033,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0xa0fb,
        };
        let data = Segment {
            selector: 0xe02b,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0xc0f3,
        };
        st.seg[sreg::SS] = data;
        st.seg[sreg::DS] = data;
        st.seg[sreg::ES] = data;
        Ok(st)
    }
}

impl<B: VcpuBackend, F: FnMut() -> B> Backend for VcpuRunner<B, F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, case: &Case) -> Outcome {
        let mut st = match self.load(case) {
            Ok(st) => st,
            Err(e) => {
                return Outcome {
                    stop: Stop::Other(format!("loading the case: {e}")),
                    state: ArchState::default(),
                    scratch: Vec::new(),
                    stack: Vec::new(),
                };
            }
        };
        let mut backend = (self.make)();
        let exit = backend.run(
            &mut st,
            &self.mem,
            &FixedEnv,
            Deadline::Instructions(BUDGET),
        );
        let end = case.end();
        let mut state = ArchState {
            gpr: st.gpr,
            rip: st.rip,
            rflags: st.rflags,
            xmm: st.xmm,
            mxcsr: st.mxcsr,
        };
        let stop = match exit {
            Exit::Exception { vector: 3, .. } if st.rip == end + 1 => {
                state.rip = end;
                Stop::Completed
            }
            Exit::Exception {
                vector,
                error_code,
                cr2,
            } => Stop::Exception {
                vector,
                error_code,
                cr2: if vector == 14 { cr2 } else { 0 },
            },
            other => Stop::Other(format!("{other:?}")),
        };
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut stack = vec![0u8; STACK_LEN];
        let r1 = self.mem.read(Mfn(SCRATCH_MFN).addr(), &mut scratch);
        let r2 = self.mem.read(Mfn(STACK_MFN).addr(), &mut stack);
        if let Err(e) = r1.and(r2) {
            return Outcome {
                stop: Stop::Other(format!("reading memory back: {e}")),
                state,
                scratch,
                stack,
            };
        }
        Outcome {
            stop,
            state,
            scratch,
            stack,
        }
    }
}
