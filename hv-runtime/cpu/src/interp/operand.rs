//! Operands of decoded instructions: register access by encoded number
//! ([`getr`]/[`setr`]), memory-operand effective addresses ([`mem_ea`]),
//! operand locations and their loads, stores and read-modify-writes
//! ([`Loc`], [`loc`], [`ld`], [`st`], [`rmw`]), immediates, status-flag
//! helpers and the trap constructor. The lowest layer the executors
//! (`exec`, `generic`, `sse`, `x87`) share; it uses only `flags`, `mmu`
//! and `translate`'s register decoding, never an executor.

use iced_x86::{Instruction, OpKind, Register};

use super::ctx::{Cpu, Stop};
use super::flags::mask;
use super::mmu::Fault;
use super::translate::{gpr, is_imm};
use crate::mem::MachineAddr;
use crate::state::rflags::{self, CF, ZF};
use crate::state::sreg;
use crate::{CpuState, Exit};

/// Value mask by operand size (index = size in bytes).
const SZ_MASK: [u64; 16] = [
    0,
    0xff,
    0xffff,
    0,
    0xffff_ffff,
    0,
    0,
    0,
    u64::MAX,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
];
/// Bits of the old register value kept by a write of each size (32-bit
/// writes zero-extend).
const SZ_KEEP: [u64; 16] = [
    u64::MAX,
    !0xff,
    !0xffff,
    u64::MAX,
    0,
    u64::MAX,
    u64::MAX,
    u64::MAX,
    0,
    u64::MAX,
    u64::MAX,
    u64::MAX,
    u64::MAX,
    u64::MAX,
    u64::MAX,
    u64::MAX,
];

/// Read register `r` (encoded) with size `sz`.
#[inline(always)]
pub(crate) fn getr(st: &CpuState, r: u8, sz: u8) -> u64 {
    if r < 16 {
        st.gpr[usize::from(r & 15)] & SZ_MASK[usize::from(sz & 15)]
    } else {
        (st.gpr[usize::from(r & 3)] >> 8) & 0xff
    }
}

/// Write register `r` (encoded) with x86 merge/zero-extend rules.
#[inline(always)]
pub(crate) fn setr(st: &mut CpuState, r: u8, sz: u8, v: u64) {
    if r < 16 {
        let g = &mut st.gpr[usize::from(r & 15)];
        let z = usize::from(sz & 15);
        *g = (*g & SZ_KEEP[z]) | (v & SZ_MASK[z]);
    } else {
        let j = usize::from(r & 3);
        st.gpr[j] = (st.gpr[j] & !0xff00) | ((v & 0xff) << 8);
    }
}

/// Convenience for handlers: a trap exit after the instruction.
pub(crate) fn trap(e: Exit) -> Stop {
    Stop::Trap(e)
}

/// Where an operand lives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loc {
    Reg(u8),
    Mem(u64, bool),
    Imm(u64),
}

pub(crate) fn seg_base(cpu: &Cpu<'_>, seg: Register) -> u64 {
    match seg {
        Register::FS => cpu.st.seg[sreg::FS].base,
        Register::GS => cpu.st.seg[sreg::GS].base,
        _ => 0,
    }
}

/// Linear address of the memory operand.
pub(crate) fn mem_ea(cpu: &Cpu<'_>, ins: &Instruction) -> (u64, bool) {
    let base = ins.memory_base();
    let index = ins.memory_index();
    let mut a = ins.memory_displacement64();
    let mut ss = false;
    let mut asz32 = false;
    if base != Register::None
        && base != Register::RIP
        && base != Register::EIP
        && let Some((n, sz)) = gpr(base)
    {
        a = a.wrapping_add(getr(cpu.st, n, sz));
        asz32 = sz == 4;
        ss = n == 4 || n == 5;
    }
    if base == Register::EIP {
        asz32 = true;
    }
    if index != Register::None
        && let Some((n, sz)) = gpr(index)
    {
        a = a.wrapping_add(getr(cpu.st, n, sz).wrapping_mul(u64::from(ins.memory_index_scale())));
        asz32 |= sz == 4;
    }
    if asz32 {
        a &= 0xffff_ffff;
    }
    (a.wrapping_add(seg_base(cpu, ins.memory_segment())), ss)
}

pub(crate) fn op_size(ins: &Instruction, i: u32) -> u8 {
    match ins.op_kind(i) {
        OpKind::Register => ins.op_register(i).size() as u8,
        OpKind::Memory => ins.memory_size().size() as u8,
        OpKind::Immediate8 => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    }
}

/// Operand `i` as an immediate, or #UD when it is some other kind.
/// `Instruction::immediate` panics on a non-immediate operand, and which
/// kind an operand has depends on guest bytes (found by the `interp_code`
/// fuzz target: an implicit-XMM0 third operand reached an immediate read).
pub(crate) fn imm(ins: &Instruction, i: u32) -> Result<u64, Stop> {
    let k = ins.op_kind(i);
    if is_imm(k) || k == OpKind::Immediate8_2nd {
        Ok(ins.immediate(i))
    } else {
        Err(Stop::Fault(Fault::ud()))
    }
}

pub(crate) fn loc(cpu: &Cpu<'_>, ins: &Instruction, i: u32) -> Result<Loc, Stop> {
    match ins.op_kind(i) {
        OpKind::Register => match gpr(ins.op_register(i)) {
            Some((n, _)) => Ok(Loc::Reg(n)),
            None => Err(Stop::Fault(Fault::ud())),
        },
        OpKind::Memory => {
            let (a, ss) = mem_ea(cpu, ins);
            Ok(Loc::Mem(a, ss))
        }
        _ => Ok(Loc::Imm(imm(ins, i)?)),
    }
}

pub(crate) fn ld(cpu: &mut Cpu<'_>, l: Loc, sz: u8) -> Result<u64, Stop> {
    match l {
        Loc::Reg(n) => Ok(getr(cpu.st, n, sz)),
        Loc::Mem(a, ss) => cpu.rd(a, sz, ss),
        Loc::Imm(v) => Ok(v & mask(sz)),
    }
}

pub(crate) fn st(cpu: &mut Cpu<'_>, l: Loc, sz: u8, v: u64) -> Result<(), Stop> {
    match l {
        Loc::Reg(n) => {
            setr(cpu.st, n, sz, v);
            Ok(())
        }
        Loc::Mem(a, ss) => cpu.wr(a, sz, v, ss),
        Loc::Imm(_) => Err(Stop::Fault(Fault::ud())),
    }
}

/// Read-modify-write of operand 0 (`f` returns the new value or `None` for
/// no write; `write` says whether the instruction is a writing one, which
/// makes a fault on the read a write fault). With `lock` and an aligned memory operand the update is a
/// `cmpxchg` loop on the containing 8-byte word (atomic against other
/// vCPUs); otherwise load, compute, store (flags restored if the store
/// faults).
pub(crate) fn rmw(
    cpu: &mut Cpu<'_>,
    l: Loc,
    sz: u8,
    lock: bool,
    write: bool,
    mut f: impl FnMut(&mut Cpu<'_>, u64) -> Option<u64>,
) -> Result<(), Stop> {
    if let Loc::Mem(a, ss) = l
        && lock
        && (a & 7) + u64::from(sz) <= 8
    {
        let ma = cpu.atomic_addr(a, ss)?;
        let word = ma & !7;
        let shift = (ma & 7) * 8;
        let m = mask(sz);
        for _ in 0..10_000 {
            let old = cpu
                .mem
                .read_u64(MachineAddr(word))
                .map_err(|_| Stop::Fault(Fault::gp0()))?;
            let cur = (old >> shift) & m;
            let Some(new) = f(cpu, cur) else {
                return Ok(());
            };
            let nw = (old & !(m << shift)) | ((new & m) << shift);
            if nw == old {
                return Ok(());
            }
            match cpu.mem.cmpxchg_u64(MachineAddr(word), old, nw) {
                Ok(p) if p == old => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(Stop::Fault(Fault::gp0())),
            }
        }
        // Pathological contention: fall through to the plain path.
    }
    if write && let Loc::Mem(a, ss) = l {
        // The read is done with write intent: a not-present or read-only
        // page is a write fault.
        cpu.probe_write(a, sz, ss)?;
    }
    let v = ld(cpu, l, sz)?;
    let (lz, rf) = (cpu.c.lz, cpu.c.rf);
    if let Some(n) = f(cpu, v)
        && let Err(e) = st(cpu, l, sz, n)
    {
        cpu.c.lz = lz;
        cpu.c.rf = rf;
        return Err(e);
    }
    Ok(())
}

/// Set CF alone (other flags preserved).
pub(crate) fn set_cf_only(cpu: &mut Cpu<'_>, cf: bool) {
    let f = cpu.c.flags() & !CF;
    cpu.c.set_flags(f | if cf { CF } else { 0 });
}

/// Set the status flags to `status` (other bits preserved).
pub(crate) fn set_status(cpu: &mut Cpu<'_>, status: u64) {
    let f = cpu.c.flags() & !rflags::STATUS;
    cpu.c.set_flags(f | (status & rflags::STATUS));
}

/// Set ZF alone (other flags preserved).
pub(crate) fn set_zf(cpu: &mut Cpu<'_>, z: bool) {
    let f = cpu.c.flags() & !ZF;
    cpu.c.set_flags(f | if z { ZF } else { 0 });
}
