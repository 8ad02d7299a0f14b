//! The block executor: one `match` over specialised micro-ops (`step`),
//! with the longer forms in inlined helpers grouped by instruction kind
//! (data movement, arithmetic, stack and control, SSE), and the dispatch of
//! decoded instructions to the executors below (`generic`, then `sse`, then
//! `x87`). The top of the one-direction layering in `interp` (see its
//! module map): it uses `generic`, `sse`, `x87`, `alu`, `operand`,
//! `translate`, `mmu` and `flags`; nothing uses it but the run loop.

use iced_x86::Instruction;

use super::alu::{alu_op, alu_val, imul_op, shift_op, shift_val};
use super::ctx::{BlockEnd, Cpu, Stop};
use super::flags::{FOp, Lazy, mask, sext};
use super::mmu::{Fault, canonical};
use super::operand::{getr, setr};
use super::translate::{K, NOREG, SEG_SS, Uop, alu, sse};
use super::{generic, x87};
use crate::CpuState;

/// Effective linear address of a micro-op's memory operand.
#[inline(always)]
pub(crate) fn ea(st: &CpuState, u: &Uop) -> u64 {
    let mut a = u.disp;
    if u.base != NOREG {
        a = a.wrapping_add(st.gpr[usize::from(u.base & 15)]);
    }
    if u.index != NOREG {
        a = a.wrapping_add(st.gpr[usize::from(u.index & 15)] << (u.scale & 3));
    }
    match u.seg & 3 {
        1 => a.wrapping_add(st.seg[crate::state::sreg::FS].base),
        2 => a.wrapping_add(st.seg[crate::state::sreg::GS].base),
        _ => a,
    }
}

#[inline(always)]
fn check_target(t: u64) -> Result<u64, Stop> {
    if canonical(t) {
        Ok(t)
    } else {
        Err(Stop::Fault(Fault::gp0()))
    }
}

/// Apply `f` to each `W`-bit lane of `a` and `b`.
#[inline(always)]
fn lanes<const W: u32>(a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    let m = (1u128 << W) - 1;
    let mut r = 0u128;
    let mut i = 0;
    while i < 128 {
        let x = ((a >> i) & m) as u64;
        let y = ((b >> i) & m) as u64;
        r |= (u128::from(f(x, y)) & m) << i;
        i += W;
    }
    r
}

/// The SSE2 integer register-register operations of [`K::SseRR`].
#[inline]
fn sse_rr(op: u8, a: u128, b: u128, imm: u64) -> u128 {
    let eq = |x: u64, y: u64| if x == y { u64::MAX } else { 0 };
    match op {
        sse::MOV => b,
        sse::PAND => a & b,
        sse::PANDN => !a & b,
        sse::POR => a | b,
        sse::PXOR => a ^ b,
        sse::PSHUFD => {
            let mut r = 0u128;
            for i in 0..4 {
                let sel = (imm >> (2 * i)) & 3;
                r |= ((b >> (32 * sel)) & 0xffff_ffff) << (32 * i);
            }
            r
        }
        sse::PCMPEQB => lanes::<8>(a, b, eq),
        sse::PCMPEQW => lanes::<16>(a, b, eq),
        sse::PCMPEQD => lanes::<32>(a, b, eq),
        sse::PADDB => lanes::<8>(a, b, u64::wrapping_add),
        sse::PADDW => lanes::<16>(a, b, u64::wrapping_add),
        sse::PADDD => lanes::<32>(a, b, u64::wrapping_add),
        sse::PADDQ => lanes::<64>(a, b, u64::wrapping_add),
        sse::PSUBB => lanes::<8>(a, b, u64::wrapping_sub),
        sse::PSUBW => lanes::<16>(a, b, u64::wrapping_sub),
        sse::PSUBD => lanes::<32>(a, b, u64::wrapping_sub),
        _ => lanes::<64>(a, b, u64::wrapping_sub),
    }
}

/// An ALU operation on register `u.d` (0–15) of size `sz` (4 or 8) with
/// operand `b`.
#[inline(always)]
fn alu_reg(cpu: &mut Cpu<'_>, u: &Uop, sz: u8, b: u64) {
    let d = usize::from(u.d & 15);
    let a = cpu.st.gpr[d] & mask(sz);
    let r = if u.nf {
        alu_val(cpu.c, u.x, sz, a, b)
    } else {
        alu_op(cpu.c, u.x, sz, a, b)
    };
    if u.x < alu::CMP {
        // Masked to `sz`: a 32-bit write zero-extends.
        cpu.st.gpr[d] = r;
    }
}

/// A shift/rotate by immediate of register `u.d` (0–15) of size `sz`.
#[inline(always)]
fn shift_reg(cpu: &mut Cpu<'_>, u: &Uop, sz: u8) {
    let d = usize::from(u.d & 15);
    let a = cpu.st.gpr[d] & mask(sz);
    let r = if u.nf {
        shift_val(u.x, sz, a, u.imm)
    } else {
        shift_op(cpu.c, u.x, sz, a, u.imm)
    };
    // A 32-bit destination is written even when the count is 0.
    cpu.st.gpr[d] = r.unwrap_or(a);
}

/// Execute one micro-op. `Ok(None)` falls through; `Ok(Some(t))` ends the
/// block and continues at `t`. A flat dispatcher over the micro-op kinds;
/// the longer forms are in their group's helpers below (data movement,
/// arithmetic, stack and control, SSE), all inlined here so this stays one
/// jump table with one fall-through exit.
#[inline(always)]
fn step(cpu: &mut Cpu<'_>, u: &Uop, insns: &[Instruction]) -> Result<Option<u64>, Stop> {
    let ss = u.seg & SEG_SS != 0;
    match u.k {
        K::MovRR => {
            let v = getr(cpu.st, u.s, u.sz);
            setr(cpu.st, u.d, u.sz, v);
        }
        K::MovRI => setr(cpu.st, u.d, u.sz, u.imm),
        K::MovRM => {
            let v = cpu.rd(ea(cpu.st, u), u.sz, ss)?;
            setr(cpu.st, u.d, u.sz, v);
        }
        K::MovMR => return mov_mr(cpu, u),
        K::MovMI => return mov_mi(cpu, u),
        K::MovzxRR => {
            let v = getr(cpu.st, u.s, u.x);
            setr(cpu.st, u.d, u.sz, v);
        }
        K::MovzxRM => {
            let v = cpu.rd(ea(cpu.st, u), u.x, ss)?;
            setr(cpu.st, u.d, u.sz, v);
        }
        K::MovsxRR => {
            let v = sext(getr(cpu.st, u.s, u.x), u.x) as u64;
            setr(cpu.st, u.d, u.sz, v);
        }
        K::MovsxRM => {
            let v = sext(cpu.rd(ea(cpu.st, u), u.x, ss)?, u.x) as u64;
            setr(cpu.st, u.d, u.sz, v);
        }
        K::Lea => {
            let v = ea(cpu.st, u);
            setr(cpu.st, u.d, u.sz, v);
        }
        K::MovRRq => cpu.st.gpr[usize::from(u.d & 15)] = cpu.st.gpr[usize::from(u.s & 15)],
        K::MovRRd => {
            cpu.st.gpr[usize::from(u.d & 15)] = cpu.st.gpr[usize::from(u.s & 15)] & 0xffff_ffff;
        }
        K::AluRRq => {
            let b = cpu.st.gpr[usize::from(u.s & 15)];
            alu_reg(cpu, u, 8, b);
        }
        K::AluRRd => {
            let b = cpu.st.gpr[usize::from(u.s & 15)] & 0xffff_ffff;
            alu_reg(cpu, u, 4, b);
        }
        K::AluRIq => alu_reg(cpu, u, 8, u.imm),
        K::AluRId => alu_reg(cpu, u, 4, u.imm & 0xffff_ffff),
        K::ShiftRIq => shift_reg(cpu, u, 8),
        K::ShiftRId => shift_reg(cpu, u, 4),
        K::AluRR | K::AluRI | K::AluRM if u.nf => alu_r_nf(cpu, u)?,
        K::AluRR => alu_rr(cpu, u)?,
        K::AluRI => alu_ri(cpu, u),
        K::AluRM => alu_rm(cpu, u)?,
        K::AluMR | K::AluMI => return alu_m(cpu, u),
        K::IncDecR if u.nf => incdec_nf(cpu, u),
        K::NegR if u.nf => {
            let a = getr(cpu.st, u.d, u.sz);
            setr(cpu.st, u.d, u.sz, a.wrapping_neg());
        }
        K::ShiftRI | K::ShiftRC if u.nf => shift_r_nf(cpu, u),
        K::ImulRR | K::ImulRRI if u.nf => imul_r_nf(cpu, u),
        K::IncDecR => incdec(cpu, u),
        K::NotR => {
            let a = getr(cpu.st, u.d, u.sz);
            setr(cpu.st, u.d, u.sz, !a);
        }
        K::NegR => neg(cpu, u),
        K::ShiftRI | K::ShiftRC => shift_r(cpu, u),
        K::CmovRR => cmov_rr(cpu, u),
        K::CmovRM => cmov_rm(cpu, u)?,
        K::SetccR => {
            let v = u64::from(cpu.c.cond(u.x));
            setr(cpu.st, u.d, 1, v);
        }
        K::ImulRR | K::ImulRM | K::ImulRRI | K::ImulRMI => imul(cpu, u)?,
        K::XchgRR => xchg_rr(cpu, u),
        K::PushR | K::PushI => return push(cpu, u),
        K::PopR => pop(cpu, u)?,
        K::Jmp => return Ok(Some(u.imm)),
        K::Jcc => {
            return Ok(Some(if cpu.c.cond(u.x) { u.imm } else { u.next() }));
        }
        K::JmpR => return check_target(cpu.st.gpr[usize::from(u.s & 15)]).map(Some),
        K::JmpM => {
            let t = cpu.rd(ea(cpu.st, u), 8, ss)?;
            return check_target(t).map(Some);
        }
        K::CallRel | K::CallR | K::CallM => return call(cpu, u),
        K::Ret => return ret(cpu, u),
        K::Bswap => bswap(cpu, u),
        K::SseRR => sse_rr_op(cpu, u)?,
        K::MovXR => movd_to_xmm(cpu, u)?,
        K::MovRX => movd_from_xmm(cpu, u)?,
        K::SseLd => sse_ld(cpu, u)?,
        K::SseSt => return sse_st(cpu, u),
        K::Nop => {}
        K::Syscall => return Err(Stop::Trap(crate::Exit::Syscall)),
        K::Ud => {
            tracing::debug!(rip = u.rip, "interp: invalid instruction encoding → #UD");
            return Err(Stop::Fault(Fault::ud()));
        }
        K::Generic => {
            let Some(ins) = insns.get(u.imm as usize) else {
                return Err(Stop::Fault(Fault::ud()));
            };
            let r = decoded(cpu, ins, u)?;
            if r.is_none() && cpu.c.smc {
                return Ok(Some(u.next()));
            }
            return Ok(r);
        }
    }
    Ok(None)
}

// ---- Data movement: memory `mov` forms, `movsx`, `cmovcc`, `bswap`.

#[inline(always)]
fn mov_mr(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let ss = u.seg & SEG_SS != 0;
    let v = getr(cpu.st, u.s, u.sz);
    cpu.wr(ea(cpu.st, u), u.sz, v, ss)?;
    if cpu.c.smc {
        return Ok(Some(u.next()));
    }
    Ok(None)
}

#[inline(always)]
fn mov_mi(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let ss = u.seg & SEG_SS != 0;
    cpu.wr(ea(cpu.st, u), u.sz, u.imm, ss)?;
    if cpu.c.smc {
        return Ok(Some(u.next()));
    }
    Ok(None)
}

#[inline(always)]
fn cmov_rr(cpu: &mut Cpu<'_>, u: &Uop) {
    if cpu.c.cond(u.x) {
        let v = getr(cpu.st, u.s, u.sz);
        setr(cpu.st, u.d, u.sz, v);
    } else if u.sz == 4 {
        let v = getr(cpu.st, u.d, 4);
        setr(cpu.st, u.d, 4, v);
    }
}

#[inline(always)]
fn cmov_rm(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let ss = u.seg & SEG_SS != 0;
    // The load happens (and may fault) whatever the condition.
    let v = cpu.rd(ea(cpu.st, u), u.sz, ss)?;
    if cpu.c.cond(u.x) {
        setr(cpu.st, u.d, u.sz, v);
    } else if u.sz == 4 {
        let v = getr(cpu.st, u.d, 4);
        setr(cpu.st, u.d, 4, v);
    }
    Ok(())
}

#[inline(always)]
fn xchg_rr(cpu: &mut Cpu<'_>, u: &Uop) {
    let a = getr(cpu.st, u.d, u.sz);
    let b = getr(cpu.st, u.s, u.sz);
    setr(cpu.st, u.d, u.sz, b);
    setr(cpu.st, u.s, u.sz, a);
}

#[inline(always)]
fn bswap(cpu: &mut Cpu<'_>, u: &Uop) {
    let a = getr(cpu.st, u.d, u.sz);
    let r = if u.sz == 8 {
        a.swap_bytes()
    } else {
        u64::from((a as u32).swap_bytes())
    };
    setr(cpu.st, u.d, u.sz, r);
}

// ---- Integer arithmetic: ALU, `inc`/`dec`/`neg`, shifts, `imul`; the
// `_nf` helpers are the flags-dead variants.

#[inline(always)]
fn alu_r_nf(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let ss = u.seg & SEG_SS != 0;
    if u.x < alu::CMP {
        let a = getr(cpu.st, u.d, u.sz);
        let b = match u.k {
            K::AluRR => getr(cpu.st, u.s, u.sz),
            K::AluRI => u.imm,
            _ => cpu.rd(ea(cpu.st, u), u.sz, ss)?,
        };
        let r = alu_val(cpu.c, u.x, u.sz, a, b);
        setr(cpu.st, u.d, u.sz, r);
    } else if u.k == K::AluRM {
        cpu.rd(ea(cpu.st, u), u.sz, ss)?;
    }
    Ok(())
}

#[inline(always)]
fn alu_rr(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let a = getr(cpu.st, u.d, u.sz);
    let b = getr(cpu.st, u.s, u.sz);
    if u.x == alu::XOR && u.d == u.s {
        cpu.c.lz = Lazy {
            op: FOp::Logic,
            sz: u.sz,
            res: 0,
            a: 0,
            b: 0,
            aux: 0,
        };
        setr(cpu.st, u.d, u.sz, 0);
        return Ok(());
    }
    let r = alu_op(cpu.c, u.x, u.sz, a, b);
    if u.x < alu::CMP {
        setr(cpu.st, u.d, u.sz, r);
    }
    Ok(())
}

#[inline(always)]
fn alu_ri(cpu: &mut Cpu<'_>, u: &Uop) {
    let a = getr(cpu.st, u.d, u.sz);
    let r = alu_op(cpu.c, u.x, u.sz, a, u.imm);
    if u.x < alu::CMP {
        setr(cpu.st, u.d, u.sz, r);
    }
}

#[inline(always)]
fn alu_rm(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let ss = u.seg & SEG_SS != 0;
    let b = cpu.rd(ea(cpu.st, u), u.sz, ss)?;
    let a = getr(cpu.st, u.d, u.sz);
    let r = alu_op(cpu.c, u.x, u.sz, a, b);
    if u.x < alu::CMP {
        setr(cpu.st, u.d, u.sz, r);
    }
    Ok(())
}

#[inline(always)]
fn alu_m(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let ss = u.seg & SEG_SS != 0;
    let addr = ea(cpu.st, u);
    if u.x < alu::CMP {
        // Read with write intent: faults are write faults.
        cpu.probe_write(addr, u.sz, ss)?;
    }
    let a = cpu.rd(addr, u.sz, ss)?;
    let b = if u.k == K::AluMR {
        getr(cpu.st, u.s, u.sz)
    } else {
        u.imm
    };
    let saved = cpu.c.lz;
    let saved_rf = cpu.c.rf;
    let r = alu_op(cpu.c, u.x, u.sz, a, b);
    if u.x < alu::CMP {
        if let Err(e) = cpu.wr(addr, u.sz, r, ss) {
            cpu.c.lz = saved;
            cpu.c.rf = saved_rf;
            return Err(e);
        }
        if cpu.c.smc {
            return Ok(Some(u.next()));
        }
    }
    Ok(None)
}

#[inline(always)]
fn incdec_nf(cpu: &mut Cpu<'_>, u: &Uop) {
    let a = getr(cpu.st, u.d, u.sz);
    let r = if u.x == 0 {
        a.wrapping_add(1)
    } else {
        a.wrapping_sub(1)
    };
    setr(cpu.st, u.d, u.sz, r);
}

#[inline(always)]
fn shift_r_nf(cpu: &mut Cpu<'_>, u: &Uop) {
    let cnt = if u.k == K::ShiftRI {
        u.imm
    } else {
        cpu.st.gpr[1]
    };
    let a = getr(cpu.st, u.d, u.sz);
    if let Some(r) = shift_val(u.x, u.sz, a, cnt) {
        setr(cpu.st, u.d, u.sz, r);
    } else if u.sz == 4 {
        setr(cpu.st, u.d, 4, a);
    }
}

#[inline(always)]
fn imul_r_nf(cpu: &mut Cpu<'_>, u: &Uop) {
    let (a, b) = if u.k == K::ImulRR {
        (getr(cpu.st, u.d, u.sz), getr(cpu.st, u.s, u.sz))
    } else {
        (getr(cpu.st, u.s, u.sz), u.imm)
    };
    setr(cpu.st, u.d, u.sz, a.wrapping_mul(b));
}

#[inline(always)]
fn incdec(cpu: &mut Cpu<'_>, u: &Uop) {
    let a = getr(cpu.st, u.d, u.sz);
    let cf = cpu.c.cf();
    let r = if u.x == 0 {
        a.wrapping_add(1)
    } else {
        a.wrapping_sub(1)
    } & mask(u.sz);
    cpu.c.lz = Lazy {
        op: if u.x == 0 { FOp::Inc } else { FOp::Dec },
        sz: u.sz,
        res: r,
        a,
        b: 1,
        aux: cf,
    };
    setr(cpu.st, u.d, u.sz, r);
}

#[inline(always)]
fn neg(cpu: &mut Cpu<'_>, u: &Uop) {
    let a = getr(cpu.st, u.d, u.sz);
    let r = a.wrapping_neg() & mask(u.sz);
    cpu.c.lz = Lazy {
        op: FOp::Neg,
        sz: u.sz,
        res: r,
        a,
        b: 0,
        aux: 0,
    };
    setr(cpu.st, u.d, u.sz, r);
}

#[inline(always)]
fn shift_r(cpu: &mut Cpu<'_>, u: &Uop) {
    let cnt = if u.k == K::ShiftRI {
        u.imm
    } else {
        cpu.st.gpr[1]
    };
    let a = getr(cpu.st, u.d, u.sz);
    if let Some(r) = shift_op(cpu.c, u.x, u.sz, a, cnt) {
        setr(cpu.st, u.d, u.sz, r);
    } else if u.sz == 4 {
        // A 32-bit destination is written (zero-extended) even
        // when the masked count is 0.
        setr(cpu.st, u.d, 4, a);
    }
}

#[inline(always)]
fn imul(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let ss = u.seg & SEG_SS != 0;
    let (a, b) = match u.k {
        K::ImulRR => (getr(cpu.st, u.d, u.sz), getr(cpu.st, u.s, u.sz)),
        K::ImulRM => (getr(cpu.st, u.d, u.sz), cpu.rd(ea(cpu.st, u), u.sz, ss)?),
        K::ImulRRI => (getr(cpu.st, u.s, u.sz), u.imm),
        _ => (cpu.rd(ea(cpu.st, u), u.sz, ss)?, u.imm),
    };
    let r = imul_op(cpu.c, u.sz, a, b);
    setr(cpu.st, u.d, u.sz, r);
    Ok(())
}

// ---- The stack and control transfers: `push`/`pop`, `call`, `ret`.

#[inline(always)]
fn push(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let v = if u.k == K::PushR {
        cpu.st.gpr[usize::from(u.s & 15)]
    } else {
        u.imm
    };
    let sp = cpu.st.gpr[4].wrapping_sub(8);
    cpu.wr(sp, 8, v, true)?;
    cpu.st.gpr[4] = sp;
    if cpu.c.smc {
        return Ok(Some(u.next()));
    }
    Ok(None)
}

#[inline(always)]
fn pop(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let sp = cpu.st.gpr[4];
    let v = cpu.rd(sp, 8, true)?;
    cpu.st.gpr[4] = sp.wrapping_add(8);
    cpu.st.gpr[usize::from(u.d & 15)] = v;
    Ok(())
}

#[inline(always)]
fn call(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let ss = u.seg & SEG_SS != 0;
    let t = match u.k {
        K::CallRel => u.imm,
        K::CallR => check_target(cpu.st.gpr[usize::from(u.s & 15)])?,
        _ => check_target(cpu.rd(ea(cpu.st, u), 8, ss)?)?,
    };
    let sp = cpu.st.gpr[4].wrapping_sub(8);
    cpu.wr(sp, 8, u.next(), true)?;
    cpu.st.gpr[4] = sp;
    Ok(Some(t))
}

#[inline(always)]
fn ret(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let sp = cpu.st.gpr[4];
    let t = check_target(cpu.rd(sp, 8, true)?)?;
    cpu.st.gpr[4] = sp.wrapping_add(8).wrapping_add(u.imm);
    Ok(Some(t))
}

// ---- Hot SSE2 forms: XMM register operations and 16-byte loads and stores.

#[inline(always)]
fn sse_rr_op(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    if cpu.st.ts {
        return Err(Stop::Fault(Fault::new(crate::vector::NM, None)));
    }
    let a = cpu.st.xmm[usize::from(u.d & 15)];
    let b = cpu.st.xmm[usize::from(u.s & 15)];
    cpu.st.xmm[usize::from(u.d & 15)] = sse_rr(u.x, a, b, u.imm);
    Ok(())
}

#[inline(always)]
fn movd_to_xmm(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    if cpu.st.ts {
        return Err(Stop::Fault(Fault::new(crate::vector::NM, None)));
    }
    cpu.st.xmm[usize::from(u.d & 15)] = u128::from(getr(cpu.st, u.s, u.sz));
    Ok(())
}

#[inline(always)]
fn movd_from_xmm(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    if cpu.st.ts {
        return Err(Stop::Fault(Fault::new(crate::vector::NM, None)));
    }
    let v = cpu.st.xmm[usize::from(u.s & 15)] as u64;
    setr(cpu.st, u.d, u.sz, v);
    Ok(())
}

#[inline(always)]
fn sse_ld(cpu: &mut Cpu<'_>, u: &Uop) -> Result<(), Stop> {
    let ss = u.seg & SEG_SS != 0;
    if cpu.st.ts {
        return Err(Stop::Fault(Fault::new(crate::vector::NM, None)));
    }
    let a = ea(cpu.st, u);
    if u.x != 0 && a & 15 != 0 {
        return Err(Stop::Fault(Fault::gp0()));
    }
    let v = if a & 0xfff <= 0xff0 {
        let lo = cpu.rd(a, 8, ss)?;
        let hi = cpu.rd(a.wrapping_add(8), 8, ss)?;
        u128::from(lo) | (u128::from(hi) << 64)
    } else {
        let mut b = [0u8; 16];
        cpu.rd_bytes(a, &mut b, ss)?;
        u128::from_le_bytes(b)
    };
    cpu.st.xmm[usize::from(u.d & 15)] = v;
    Ok(())
}

#[inline(always)]
fn sse_st(cpu: &mut Cpu<'_>, u: &Uop) -> Result<Option<u64>, Stop> {
    let ss = u.seg & SEG_SS != 0;
    if cpu.st.ts {
        return Err(Stop::Fault(Fault::new(crate::vector::NM, None)));
    }
    let a = ea(cpu.st, u);
    if u.x != 0 && a & 15 != 0 {
        return Err(Stop::Fault(Fault::gp0()));
    }
    let v = cpu.st.xmm[usize::from(u.s & 15)];
    if a & 0xfff <= 0xff0 {
        // Both halves are on one page: the second store cannot
        // fault once the first succeeded.
        cpu.wr(a, 8, v as u64, ss)?;
        cpu.wr(a.wrapping_add(8), 8, (v >> 64) as u64, ss)?;
    } else {
        cpu.wr_bytes(a, &v.to_le_bytes(), ss)?;
    }
    if cpu.c.smc {
        return Ok(Some(u.next()));
    }
    Ok(None)
}

/// Run an instruction that has no specialised micro-op from its decoded
/// form: the general-purpose executor, then SSE, then x87; anything else
/// is #UD.
fn decoded(cpu: &mut Cpu<'_>, ins: &Instruction, u: &Uop) -> Result<Option<u64>, Stop> {
    if let Some(r) = generic::exec(cpu, ins, u) {
        return r;
    }
    if let Some(r) = super::sse::exec(cpu, ins, u) {
        return r;
    }
    if let Some(r) = x87::exec(cpu, ins, u) {
        return r;
    }
    tracing::warn!(
        rip = u.rip,
        mnemonic = ?ins.mnemonic(),
        code = ?ins.code(),
        "interp: unimplemented instruction → #UD"
    );
    Err(Stop::Fault(Fault::ud()))
}

/// Run the micro-ops of one block. Returns the number of instructions
/// retired and how the block ended.
pub(crate) fn exec_block(
    cpu: &mut Cpu<'_>,
    uops: &[Uop],
    insns: &[Instruction],
    single: bool,
    fall: u64,
) -> (u64, BlockEnd) {
    if single {
        return exec_one(cpu, uops, insns, fall);
    }
    for (i, u) in uops.iter().enumerate() {
        match step(cpu, u, insns) {
            Ok(None) => {}
            Ok(Some(t)) => return (i as u64 + 1, BlockEnd::Next(t)),
            Err(s @ Stop::Fault(_)) => return (i as u64, BlockEnd::Stop(s, u.rip, u.next())),
            Err(s @ Stop::Trap(_)) => {
                return (i as u64 + 1, BlockEnd::Stop(s, u.rip, u.next()));
            }
        }
    }
    (uops.len() as u64, BlockEnd::Next(fall))
}

/// Single-step the first micro-op of a block, with exact flags (the
/// observer sees them after every instruction).
#[cold]
#[inline(never)]
fn exec_one(cpu: &mut Cpu<'_>, uops: &[Uop], insns: &[Instruction], fall: u64) -> (u64, BlockEnd) {
    let Some(first) = uops.first() else {
        return (0, BlockEnd::Next(fall));
    };
    let mut u = *first;
    u.nf = false;
    match step(cpu, &u, insns) {
        Ok(None) => (1, BlockEnd::Next(u.next())),
        Ok(Some(t)) => (1, BlockEnd::Next(t)),
        Err(s @ Stop::Fault(_)) => (0, BlockEnd::Stop(s, u.rip, u.next())),
        Err(s @ Stop::Trap(_)) => (1, BlockEnd::Stop(s, u.rip, u.next())),
    }
}
