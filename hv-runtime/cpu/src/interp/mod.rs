//! The software x86-64 CPU: [`InterpVcpu`].
//!
//! Runs 64-bit CPL-3 code with 4-level paging; every privileged act leaves as
//! an [`Exit`]. Design (see also `docs` in the crate root):
//!
//! * **Decoding** is done once per basic block with `iced-x86` into compact
//!   micro-ops ([`translate::Uop`], one per instruction). Hot operand forms
//!   (`mov`/ALU/`lea`/`jcc`/`call`/`ret`/`push`/`pop`/shifts/`imul`/…
//!   on registers, immediates and simple memory operands) get specialised
//!   kinds; everything else keeps its decoded `iced_x86::Instruction` in the
//!   block and runs through the generic executor — never re-decoded.
//! * **Block cache** keyed by linear `rip` and validated against the machine
//!   address of the code (through the exec TLB), so blocks survive CR3
//!   switches; direct successors are chained (two links per block, valid
//!   while the cache generation is unchanged; any TLB flush or code
//!   invalidation bumps it).
//! * **Code-write detection**: translating marks the code frame in
//!   [`MachineMemory`] (Note [Translated-code tracking] in `mem.rs`); any
//!   write through `MachineMemory` (ours, another vCPU's, the hypervisor's)
//!   clears the mark and logs the frame; every block dispatch compares the
//!   memory's code epoch and drops the blocks of logged frames. Our own
//!   stores to code frames go through the TLB slow path (write tags are
//!   withheld for code frames) and end the current block, so a write to the
//!   next instruction is seen.
//! * **Soft TLB** ([`mmu`]) and **lazy flags** ([`flags`]), plus a
//!   block-local **flag liveness** pass at translation
//!   (`translate::flag_liveness`): a micro-op whose status flags are
//!   overwritten later in the block before anything can observe them (a
//!   condition, a possible fault or exit, the block end) skips computing
//!   them; single-stepping ignores that.
//! * Hot SSE2 integer forms (xmm moves and loads/stores, `movd`/`movq`,
//!   `pand`…`pxor`, `pshufd`, `pcmpeq*`, `padd*`/`psub*`) have their own
//!   micro-ops; the rest of SSE runs in `sse`.
//!
//! Instruction counting for [`Deadline::Instructions`] is per block (a block
//! is at most [`MAX_BLOCK`] instructions); [`Deadline::HostNanos`] is checked
//! every 64 dispatches.
//!
//! ## Module map
//!
//! Layers, top to bottom. A module uses modules below its own layer and
//! never one above (the one-direction rule); the executors of one layer do
//! not use each other. The shared context types (`Cpu`, `Core`, `Stop`,
//! `BlockEnd`) live in `ctx`, near the bottom, so no module imports the
//! root: there are no import circles in the interpreter.
//!
//! | layer | module | holds |
//! |---|---|---|
//! | run loop | `mod.rs` | [`InterpVcpu`], the block cache, the run loop |
//! | block executor | `exec` | the micro-op loop: `exec_block` → `step` (a flat dispatcher) and its inlined per-group helpers; instructions without a micro-op go to `generic`, then `sse`, then `x87` |
//! | instruction executors | `generic` | general-purpose instructions, one function per group (data movement, arithmetic, exchanges, multiply/divide, bit operations, stack and flags, control, strings, system) |
//! | | `sse` | SSE…SSE4.1, one function per group (moves, integer, shuffle, extended integer forms, float, convert, state) |
//! | | `x87` (`x87::f80`) | the x87 FPU, one function per group (control, loads/stores, stack and unary, compare, arithmetic) |
//! | operands and arithmetic | `operand` | registers by encoded number (`getr`/`setr`), memory-operand addresses and operand access (`mem_ea`, `Loc`, `ld`, `st`, `rmw`), status-flag helpers, traps |
//! | | `alu` | flag-setting arithmetic: ALU, shifts and rotates, `imul`, `rcl`/`rcr`, `shld`/`shrd` |
//! | | `seg` | segment-register loads from the descriptor tables |
//! | | `hostfp` | SSE floating point run on the host (the `unsafe` module, docs/UNSAFE.md) |
//! | machine | [`translate`] | decoding blocks into micro-ops, flag liveness, register decoding |
//! | | `access` | guest memory access through the TLB (`Cpu::translate`/`rd`/`wr`/…) |
//! | context | `ctx` | `Cpu` (one run's state, memory and environment), `Core` (per-vCPU interpreter state), `Stop`, `BlockEnd`, [`MAX_BLOCK`] |
//! | | [`mmu`] | the soft TLB and page walks |
//! | | [`flags`] | the lazy flags record and condition evaluation |
//!
//! `fuzzing` (feature `testing`) sits outside the layers: it drives [`InterpVcpu`] for the fuzz
//! targets.
//!
//! ## What the hypervisor must know
//! * `syscall` → [`Exit::Syscall`] with `rip` after the instruction and
//!   **no** RCX/R11 side effects (the hypervisor applies Xen's ABI).
//! * `int n` → [`Exit::SoftInt`]`(n)`, rip after. `int3` → #BP trap, `int1`
//!   → #DB trap (rip after). `into` is #UD in 64-bit mode.
//! * `hlt`, `cli`/`sti` (unless RFLAGS.IOPL = 3), CR/DR moves, descriptor
//!   table loads *and stores* (`sgdt`/`sidt`/`sldt`/`str`/`smsw`: behaving as
//!   with UMIP), `invlpg`, `invd`/`wbinvd`, `rdmsr`/`wrmsr`, `rdpmc`, all
//!   port I/O (`in`/`out`/`ins`/`outs` — Xen emulates allowed port I/O on
//!   #GP, so [`CpuEnv::io_allowed`] is not consulted), `swapgs`, `sysret`,
//!   `sysenter`/`sysexit`, `clts`, `lmsw`, `ltr`, `lldt`, `lgdt`, `lidt`,
//!   `iretq` → #GP(0) with `rip` at the instruction.
//! * `popf` at CPL 3 keeps IOPL and (unless IOPL = 3) IF, silently.
//! * TF set → #DB trap after the next instruction (rip after it).
//! * `rdtscp` returns `TSC_AUX` = 0.
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)] // the interpreter implements x86 wrap-around and truncation semantics

mod access;
mod alu;
mod ctx;
mod exec;
pub mod flags;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
mod generic;
mod hostfp;
pub mod mmu;
mod operand;
mod seg;
mod sse;
pub mod translate;
mod x87;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use iced_x86::Instruction;

use crate::mem::{CodeInvalidations, MachineMemory};
use crate::model::CpuModel;
use crate::state::rflags;
use crate::{CpuEnv, CpuState, Deadline, Exit, FlushScope, VcpuBackend, vector};
use ctx::{BlockEnd, Core, Cpu, Stop};
use flags::Lazy;
use mmu::Tlb;
use translate::Uop;

pub use ctx::MAX_BLOCK;
const MAX_BLOCKS: usize = 1 << 16;
const MAX_UOPS: usize = 1 << 21;

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    rip: u64,
    block: u32,
    generation: u64,
}

#[derive(Clone, Debug)]
struct Block {
    /// Machine address of the first byte.
    maddr: u64,
    /// Linear page and frame of a second page the last instruction reaches
    /// into (`u64::MAX` when none).
    page2: u64,
    frame2: u64,
    start: u32,
    end: u32,
    /// `rip` after the last instruction.
    fall: u64,
    links: [Link; 2],
    dead: bool,
}

/// A fast non-cryptographic hasher for `rip` keys.
#[derive(Default, Clone, Copy, Debug)]
struct RipHasher(u64);

impl Hasher for RipHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<u64, u32, BuildHasherDefault<RipHasher>>,
    blocks: Vec<Block>,
    uops: Vec<Uop>,
    insns: Vec<Instruction>,
    by_frame: HashMap<u64, Vec<u32>, BuildHasherDefault<RipHasher>>,
    generation: u64,
    epoch: u64,
}

impl Cache {
    fn clear(&mut self) {
        self.map.clear();
        self.blocks.clear();
        self.uops.clear();
        self.insns.clear();
        self.by_frame.clear();
        self.generation += 1;
    }

    fn drop_frame(&mut self, mfn: u64) {
        if let Some(list) = self.by_frame.remove(&mfn) {
            for bi in list {
                if let Some(b) = self.blocks.get_mut(bi as usize) {
                    b.dead = true;
                }
            }
        }
        self.generation += 1;
    }

    fn sync_epoch(&mut self, mem: &MachineMemory) {
        match mem.code_invalidations_since(self.epoch) {
            CodeInvalidations::None => {}
            CodeInvalidations::Frames(frames, now) => {
                for f in frames {
                    self.drop_frame(f.0);
                }
                self.epoch = now;
            }
            CodeInvalidations::All(now) => {
                self.clear();
                self.epoch = now;
            }
        }
    }
}

/// Statistics of one interpreter (for benchmarks and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterpStats {
    /// Guest instructions retired over the interpreter's lifetime.
    pub retired: u64,
    /// Blocks translated.
    pub translated_blocks: u64,
}

/// The software CPU backend.
#[derive(Debug)]
pub struct InterpVcpu {
    core: Core,
    cache: Cache,
    last_cr3: Option<u64>,
    stats: InterpStats,
}

impl Default for InterpVcpu {
    fn default() -> Self {
        Self::new()
    }
}

impl InterpVcpu {
    /// A fresh interpreter with empty caches.
    #[must_use]
    pub fn new() -> Self {
        Self {
            core: Core {
                tlb: Tlb::default(),
                lz: Lazy::default(),
                rf: rflags::RESERVED1,
                smc: false,
                model: CpuModel::default(),
            },
            cache: Cache::default(),
            last_cr3: None,
            stats: InterpStats::default(),
        }
    }

    /// Lifetime statistics.
    #[must_use]
    pub fn stats(&self) -> InterpStats {
        self.stats
    }
}

impl Cache {
    /// Find (or translate) the block at `rip`, validated against the current
    /// mapping.
    fn lookup(
        &mut self,
        stats: &mut InterpStats,
        cpu: &mut Cpu<'_>,
        rip: u64,
    ) -> Result<u32, Stop> {
        let frame = cpu.translate(rip, mmu::Acc::Exec, false)?;
        let maddr = frame + (rip & 0xfff);
        if let Some(&bi) = self.map.get(&rip)
            && let Some(b) = self.blocks.get(bi as usize)
            && !b.dead
            && b.maddr == maddr
        {
            if b.page2 == u64::MAX {
                return Ok(bi);
            }
            let (p2, f2) = (b.page2, b.frame2);
            if cpu.translate(p2, mmu::Acc::Exec, false).ok() == Some(f2) {
                return Ok(bi);
            }
        }
        if self.blocks.len() >= MAX_BLOCKS || self.uops.len() >= MAX_UOPS {
            self.clear();
        }
        let start = self.uops.len();
        let out = translate::translate_block(cpu, rip, frame, &mut self.uops, &mut self.insns)?;
        stats.translated_blocks += 1;
        let bi = self.blocks.len() as u32;
        self.blocks.push(Block {
            maddr,
            page2: out.page2,
            frame2: out.frame2,
            start: start as u32,
            end: self.uops.len() as u32,
            fall: out.fall,
            links: [Link::default(); 2],
            dead: false,
        });
        self.by_frame.entry(frame >> 12).or_default().push(bi);
        if out.page2 != u64::MAX {
            self.by_frame.entry(out.frame2 >> 12).or_default().push(bi);
        }
        self.map.insert(rip, bi);
        Ok(bi)
    }
}

impl VcpuBackend for InterpVcpu {
    fn run(
        &mut self,
        state: &mut CpuState,
        mem: &MachineMemory,
        env: &dyn CpuEnv,
        deadline: Deadline,
    ) -> Exit {
        if self.last_cr3 != Some(state.cr3) {
            self.core.tlb.flush();
            self.cache.generation += 1;
            self.last_cr3 = Some(state.cr3);
        }
        // Note [One modelled CPU]: the vendor-specific behaviour follows
        // the `cpuid` this guest sees. Translations may depend on it, so a
        // change (never seen in practice) drops them.
        let model = env.cpu_model();
        if model != self.core.model {
            self.core.model = model;
            self.cache.clear();
        }
        self.core.set_flags(state.rflags);
        self.core.smc = false;
        let limit = match deadline {
            Deadline::Instructions(n) => n,
            _ => u64::MAX,
        };
        let host_deadline = match deadline {
            Deadline::HostNanos(t) => Some(t),
            _ => None,
        };
        let mut retired: u64 = 0;
        let mut countdown = 64u32;
        let mut prev: Option<(u32, usize)> = None;
        let mut cpu = Cpu {
            st: state,
            mem,
            env,
            c: &mut self.core,
        };
        let exit = loop {
            if mem.code_epoch() != self.cache.epoch {
                self.cache.sync_epoch(mem);
                prev = None;
            }
            if retired >= limit {
                break Exit::Deadline;
            }
            if let Some(t) = host_deadline {
                countdown -= 1;
                if countdown == 0 {
                    countdown = 64;
                    if crate::mem::monotonic_ns() >= t {
                        break Exit::Deadline;
                    }
                }
            }
            let rip = cpu.st.rip;
            // Follow a chain link if the previous block recorded one.
            let mut bi = None;
            if let Some((pb, slot)) = prev
                && let Some(b) = self.cache.blocks.get(pb as usize)
                && let Some(l) = b.links.get(slot)
                && l.rip == rip
                && l.generation == self.cache.generation
            {
                bi = Some(l.block);
            }
            let bi = match bi {
                Some(b) => b,
                None => match self.cache.lookup(&mut self.stats, &mut cpu, rip) {
                    Ok(b) => {
                        if let Some((pb, slot)) = prev
                            && let Some(pblk) = self.cache.blocks.get_mut(pb as usize)
                            && let Some(l) = pblk.links.get_mut(slot)
                        {
                            *l = Link {
                                rip,
                                block: b,
                                generation: self.cache.generation,
                            };
                        }
                        b
                    }
                    Err(s) => break stop_exit(&mut cpu, s, rip, rip),
                },
            };
            let Some(b) = self.cache.blocks.get(bi as usize) else {
                break Exit::Exception {
                    vector: vector::UD,
                    error_code: None,
                    cr2: 0,
                };
            };
            let (start, end, fall) = (b.start as usize, b.end as usize, b.fall);
            let single = cpu.c.rf & rflags::TF != 0;
            let uops = self.cache.uops.get(start..end).unwrap_or(&[]);
            let (n, res) = exec::exec_block(&mut cpu, uops, &self.cache.insns, single, fall);
            retired += n;
            match res {
                BlockEnd::Next(next) => {
                    cpu.st.rip = next;
                    if single {
                        break Exit::Exception {
                            vector: vector::DB,
                            error_code: None,
                            cr2: 0,
                        };
                    }
                    if cpu.c.smc {
                        cpu.c.smc = false;
                        self.cache.sync_epoch(mem);
                        prev = None;
                    } else {
                        prev = Some((bi, usize::from(next != fall)));
                    }
                }
                BlockEnd::Stop(s, at, next) => break stop_exit(&mut cpu, s, at, next),
            }
        };
        self.stats.retired += retired;
        let f = cpu.c.flags();
        cpu.st.rflags = f;
        exit
    }

    fn flush_tlb(&mut self, scope: FlushScope) {
        match scope {
            FlushScope::All => self.core.tlb.flush(),
            FlushScope::Page(lin) => self.core.tlb.flush_page(lin),
        }
        self.cache.generation += 1;
    }
}

/// Turn a stop into an exit, updating `rip` (and CR2 for #PF).
fn stop_exit(cpu: &mut Cpu<'_>, s: Stop, at: u64, next: u64) -> Exit {
    match s {
        Stop::Fault(f) => {
            cpu.st.rip = at;
            if f.vector == vector::PF {
                cpu.st.cr2 = f.cr2;
            }
            Exit::Exception {
                vector: f.vector,
                error_code: f.error,
                cr2: f.cr2,
            }
        }
        Stop::Trap(e) => {
            cpu.st.rip = next;
            e
        }
    }
}

pub use crate::model::{features, mask_cpuid};
