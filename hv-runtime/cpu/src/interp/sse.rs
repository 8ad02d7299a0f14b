//! SSE/SSE2/SSE3/SSSE3/SSE4.1 instructions on `CpuState::xmm` (legacy
//! encodings; MMX forms are #UD: MMX is not advertised).
//!
//! Floating-point arithmetic, compares, `(u)comis*` and conversions run on
//! the host CPU under the guest's MXCSR ([`super::hostfp`]), so results,
//! rounding, DAZ/FTZ and the exception flags are the hardware's. Unmasked
//! SIMD exceptions raise #XM here, with the precedence of the SDM ("SIMD
//! Floating-Point Exception Conditions"): the status flags are updated, the
//! destination is not written and the instruction does not retire.
//!
//! [`exec`] reads the operands once and offers the instruction to one
//! function per group (`moves`, `integer`, `shuffle`, `extended`, `float`,
//! `convert`, `state`), tried in that order; a group's result is written to operand 0
//! here. Operand access comes from `operand`; no other executor is used.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::ctx::{Cpu, Stop};
use super::hostfp::{self, DE, FpToInt, IE, ImmOp, IntToFp, OE, UE, XOp, ZE};
use super::mmu::Fault;
use super::operand::{Loc, getr, imm, loc, mem_ea, op_size, seg_base, set_status, st};
use super::translate::{Uop, gpr};
use crate::model::MXCSR_MM;
use crate::state::rflags::{CF, PF, ZF};
use crate::vector;

type R = Option<Result<Option<u64>, Stop>>;

fn xr(cpu: &Cpu<'_>, ins: &Instruction, i: u32) -> Option<usize> {
    let r = ins.op_register(i);
    if ins.op_kind(i) == OpKind::Register && r.is_xmm() {
        Some(r.number() & 15)
    } else {
        None
    }
    .filter(|_| cpu.st.xmm.len() == 16)
}

fn needs_align(m: Mnemonic) -> bool {
    !matches!(
        m,
        Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu | Mnemonic::Lddqu
    )
}

/// Whether a 16-byte memory operand of `m` at `a` raises #GP(0) for its
/// alignment. AMD's misaligned SSE mode (MXCSR.MM set, where the model has
/// it) lifts the check for every instruction but the explicitly aligned
/// moves and the non-temporal moves (docs/CPU-VENDORS.md; `movntdqa` was
/// found by the differential tests on a Zen 4 host).
fn misaligned(cpu: &Cpu<'_>, m: Mnemonic, a: u64) -> bool {
    if a & 15 == 0 || !needs_align(m) {
        return false;
    }
    let mm = cpu.c.model.misaligned_sse && cpu.st.mxcsr & MXCSR_MM != 0;
    !mm || matches!(
        m,
        Mnemonic::Movaps
            | Mnemonic::Movapd
            | Mnemonic::Movdqa
            | Mnemonic::Movntps
            | Mnemonic::Movntpd
            | Mnemonic::Movntdq
            | Mnemonic::Movntdqa
    )
}

/// Read operand `i` as up to 128 bits.
fn rdx(cpu: &mut Cpu<'_>, ins: &Instruction, i: u32) -> Result<u128, Stop> {
    if let Some(x) = xr(cpu, ins, i) {
        return Ok(cpu.st.xmm[x]);
    }
    match ins.op_kind(i) {
        OpKind::Memory => {
            let (a, ss) = mem_ea(cpu, ins);
            let sz = ins.memory_size().size();
            if sz == 16 {
                if misaligned(cpu, ins.mnemonic(), a) {
                    return Err(Stop::Fault(Fault::gp0()));
                }
                let mut b = [0u8; 16];
                cpu.rd_bytes(a, &mut b, ss)?;
                Ok(u128::from_le_bytes(b))
            } else {
                Ok(u128::from(cpu.rd(a, (sz as u8).clamp(1, 8), ss)?))
            }
        }
        OpKind::Register => match gpr(ins.op_register(i)) {
            Some((n, sz)) => Ok(u128::from(getr(cpu.st, n, sz))),
            None => Err(Stop::Fault(Fault::ud())),
        },
        _ => Ok(u128::from(imm(ins, i)?)),
    }
}

/// Write operand 0 (`bytes` = how much of a memory destination).
fn wrx(cpu: &mut Cpu<'_>, ins: &Instruction, v: u128) -> Result<(), Stop> {
    if let Some(x) = xr(cpu, ins, 0) {
        cpu.st.xmm[x] = v;
        return Ok(());
    }
    match ins.op0_kind() {
        OpKind::Memory => {
            let (a, ss) = mem_ea(cpu, ins);
            let sz = ins.memory_size().size();
            if sz == 16 {
                if misaligned(cpu, ins.mnemonic(), a) {
                    return Err(Stop::Fault(Fault::gp0()));
                }
                cpu.wr_bytes(a, &v.to_le_bytes(), ss)
            } else {
                cpu.wr(a, (sz as u8).clamp(1, 8), v as u64, ss)
            }
        }
        _ => {
            let l = loc(cpu, ins, 0)?;
            st(cpu, l, op_size(ins, 0), v as u64)
        }
    }
}

macro_rules! lanes {
    ($name:ident, $t:ty, $n:expr) => {
        fn $name(a: u128, b: u128, f: impl Fn($t, $t) -> $t) -> u128 {
            let w = 128 / $n;
            let m: u128 = (1u128 << w) - 1;
            let mut r = 0u128;
            for i in 0..$n {
                let x = ((a >> (i * w)) & m) as $t;
                let y = ((b >> (i * w)) & m) as $t;
                r |= (u128::from(f(x, y)) & m) << (i * w);
            }
            r
        }
    };
}
lanes!(l8, u8, 16);
lanes!(l16, u16, 8);
lanes!(l32, u32, 4);
lanes!(l64, u64, 2);

fn sat_i16(v: i32) -> u16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16 as u16
}
fn sat_i8(v: i32) -> u8 {
    v.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8 as u8
}
fn sat_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}
fn sat_u16(v: i32) -> u16 {
    v.clamp(0, 65535) as u16
}

fn lo64(v: u128) -> u64 {
    v as u64
}
fn hi64(v: u128) -> u64 {
    (v >> 64) as u64
}
/// Element `i` of width `w` bits.
fn el(v: u128, w: u32, i: u32) -> u64 {
    ((v >> (w * i)) & ((1u128 << w) - 1)) as u64
}

/// `n` elements of `w` bits from `f(i)`.
fn from_els(w: u32, n: u32, f: impl Fn(u32) -> u64) -> u128 {
    let m = (1u128 << w) - 1;
    (0..n).fold(0, |r, i| r | ((u128::from(f(i)) & m) << (w * i)))
}

/// Horizontal pairs: result element `i` of `w` bits is `f(x[2i], x[2i+1])`
/// with `x` the destination elements then the source elements.
fn horiz(d: u128, s: u128, w: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let half = 64 / w;
    from_els(w, 2 * half, |i| {
        let (v, j) = if i < half { (d, i) } else { (s, i - half) };
        f(el(v, w, 2 * j), el(v, w, 2 * j + 1))
    })
}

/// Sign-extend the low `w` bits of `v`.
fn sx(v: u64, w: u32) -> i64 {
    ((v << (64 - w)) as i64) >> (64 - w)
}

/// `psign*`: each destination element negated, zeroed or kept by the sign
/// of the source element.
fn psign(d: u128, s: u128, w: u32) -> u128 {
    from_els(w, 128 / w, |i| {
        let b = sx(el(s, w, i), w);
        let a = el(d, w, i);
        match b.cmp(&0) {
            std::cmp::Ordering::Less => a.wrapping_neg(),
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => a,
        }
    })
}

/// Element-wise select: element `i` of `w` bits from `s` when `pick(i)`.
fn blend(d: u128, s: u128, w: u32, pick: impl Fn(u32) -> bool) -> u128 {
    from_els(
        w,
        128 / w,
        |i| if pick(i) { el(s, w, i) } else { el(d, w, i) },
    )
}

/// Whether the host runs the SSE3/SSE4.1 instruction the interpreter
/// executes natively for `m` (otherwise the guest gets #UD, as on a CPU
/// without the feature).
fn host_can(m: Mnemonic) -> bool {
    use Mnemonic as M;
    match m {
        M::Addsubps | M::Addsubpd | M::Haddps | M::Haddpd | M::Hsubps | M::Hsubpd => {
            std::is_x86_feature_detected!("sse3")
        }
        M::Roundps | M::Roundpd | M::Roundss | M::Roundsd | M::Dpps | M::Dppd => {
            std::is_x86_feature_detected!("sse4.1")
        }
        _ => true,
    }
}

/// Execute an SSE instruction, or `None` when `ins` is not one.
pub(crate) fn exec(cpu: &mut Cpu<'_>, ins: &Instruction, u: &Uop) -> R {
    use Mnemonic as M;
    let m = ins.mnemonic();
    let _ = u;
    // Only legacy-encoded (non-VEX/EVEX) SSE forms are implemented.
    let legacy = ins.encoding() == iced_x86::EncodingKind::Legacy;
    let is_sse = legacy && (0..ins.op_count()).any(|i| ins.op_register(i).is_xmm())
        || matches!(
            m,
            M::Ldmxcsr | M::Stmxcsr | M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64
        )
        || legacy && matches!(m, M::Cvtss2si | M::Cvttss2si | M::Cvtsd2si | M::Cvttsd2si);
    if !is_sse {
        return None;
    }
    if cpu.st.ts {
        return Some(Err(Stop::Fault(Fault::new(vector::NM, None))));
    }
    Some(exec_inner(cpu, ins, m).map(|()| None))
}

/// The operands [`exec_inner`] reads before choosing a group: the
/// destination (when it is an XMM register) and source values, the
/// immediate, and the operand kinds some forms depend on.
#[derive(Clone, Copy, Debug)]
struct Ops {
    d: u128,
    s: u128,
    imm: u64,
    dst_is_xmm: bool,
    s_is_mem: bool,
}

/// What an instruction group did with an instruction.
#[derive(Clone, Copy, Debug)]
enum Out {
    /// Not an instruction of this group.
    Pass,
    /// The result, to be written to operand 0.
    Write(u128),
    /// Finished (it wrote its own destination, or only flags or state).
    Done,
}

fn exec_inner(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<(), Stop> {
    let n = ins.op_count();
    let dst_is_xmm = xr(cpu, ins, 0).is_some();
    let d = if dst_is_xmm && n > 0 {
        rdx(cpu, ins, 0)?
    } else {
        0
    };
    let s = if n > 1 { rdx(cpu, ins, 1)? } else { 0 };
    let imm = if n > 2 && ins.op2_kind() == OpKind::Immediate8 {
        ins.immediate(2)
    } else {
        0
    };
    if !host_can(m) {
        return Err(Stop::Fault(Fault::ud()));
    }
    let o = Ops {
        d,
        s,
        imm,
        dst_is_xmm,
        s_is_mem: n > 1 && ins.op1_kind() == OpKind::Memory,
    };
    let mut out = moves(cpu, ins, m, o)?;
    if let Out::Pass = out {
        out = integer(ins, m, o)?;
    }
    if let Out::Pass = out {
        out = shuffle(cpu, ins, m, o)?;
    }
    if let Out::Pass = out {
        out = extended(cpu, ins, m, o)?;
    }
    if let Out::Pass = out {
        out = float(cpu, m, o)?;
    }
    if let Out::Pass = out {
        out = convert(cpu, ins, m, o)?;
    }
    if let Out::Pass = out {
        out = state(cpu, ins, m)?;
    }
    match out {
        Out::Write(r) => wrx(cpu, ins, r),
        Out::Done => Ok(()),
        Out::Pass => {
            tracing::warn!(mnemonic = ?m, code = ?ins.code(), "interp: unimplemented SSE instruction → #UD");
            Err(Stop::Fault(Fault::ud()))
        }
    }
}

/// Moves between XMM registers, memory and general registers (`mov*`),
/// including the partial moves (`movss`/`movsd`, `movhps`…, `movddup`).
fn moves(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, o: Ops) -> Result<Out, Stop> {
    use Mnemonic as M;
    let Ops {
        d,
        s,
        dst_is_xmm,
        s_is_mem,
        ..
    } = o;
    let r: u128 = match m {
        M::Movaps
        | M::Movapd
        | M::Movdqa
        | M::Movups
        | M::Movupd
        | M::Movdqu
        | M::Lddqu
        | M::Movntps
        | M::Movntpd
        | M::Movntdq
        | M::Movntdqa => s,
        M::Movq => {
            if dst_is_xmm {
                u128::from(lo64(s))
            } else {
                return wrx(cpu, ins, u128::from(lo64(s))).map(|()| Out::Done);
            }
        }
        M::Movd => {
            if dst_is_xmm {
                s & 0xffff_ffff
            } else {
                let l = loc(cpu, ins, 0)?;
                return st(cpu, l, 4, s as u64 & 0xffff_ffff).map(|()| Out::Done);
            }
        }
        M::Movss | M::Movsd => {
            let w = if m == M::Movss { 32 } else { 64 };
            let lm = (1u128 << w) - 1;
            if !dst_is_xmm {
                return wrx(cpu, ins, s & lm).map(|()| Out::Done);
            }
            if s_is_mem {
                s & lm
            } else {
                (d & !lm) | (s & lm)
            }
        }
        M::Movhps | M::Movhpd => {
            if dst_is_xmm {
                (d & u128::from(u64::MAX)) | (u128::from(lo64(s)) << 64)
            } else {
                return wrx(cpu, ins, u128::from(hi64(s))).map(|()| Out::Done);
            }
        }
        M::Movlps | M::Movlpd => {
            if dst_is_xmm {
                (d & !u128::from(u64::MAX)) | u128::from(lo64(s))
            } else {
                return wrx(cpu, ins, u128::from(lo64(s))).map(|()| Out::Done);
            }
        }
        M::Movhlps => (d & !u128::from(u64::MAX)) | u128::from(hi64(s)),
        M::Movlhps => (d & u128::from(u64::MAX)) | (u128::from(lo64(s)) << 64),
        M::Movddup => u128::from(lo64(s)) | (u128::from(lo64(s)) << 64),
        M::Movq2dq | M::Movdq2q => return Err(Stop::Fault(Fault::ud())),
        _ => return Ok(Out::Pass),
    };
    Ok(Out::Write(r))
}

/// Packed integer logic, arithmetic (plain, saturating, multiply, average,
/// min/max, abs), compares and shifts.
fn integer(ins: &Instruction, m: Mnemonic, o: Ops) -> Result<Out, Stop> {
    use Mnemonic as M;
    let Ops { d, s, .. } = o;
    let r: u128 = match m {
        M::Pand | M::Andps | M::Andpd => d & s,
        M::Pandn | M::Andnps | M::Andnpd => !d & s,
        M::Por | M::Orps | M::Orpd => d | s,
        M::Pxor | M::Xorps | M::Xorpd => d ^ s,
        M::Paddb => l8(d, s, u8::wrapping_add),
        M::Paddw => l16(d, s, u16::wrapping_add),
        M::Paddd => l32(d, s, u32::wrapping_add),
        M::Paddq => l64(d, s, u64::wrapping_add),
        M::Psubb => l8(d, s, u8::wrapping_sub),
        M::Psubw => l16(d, s, u16::wrapping_sub),
        M::Psubd => l32(d, s, u32::wrapping_sub),
        M::Psubq => l64(d, s, u64::wrapping_sub),
        M::Paddsb => l8(d, s, |a, b| sat_i8(i32::from(a as i8) + i32::from(b as i8))),
        M::Paddsw => l16(d, s, |a, b| {
            sat_i16(i32::from(a as i16) + i32::from(b as i16))
        }),
        M::Psubsb => l8(d, s, |a, b| sat_i8(i32::from(a as i8) - i32::from(b as i8))),
        M::Psubsw => l16(d, s, |a, b| {
            sat_i16(i32::from(a as i16) - i32::from(b as i16))
        }),
        M::Paddusb => l8(d, s, |a, b| sat_u8(i32::from(a) + i32::from(b))),
        M::Paddusw => l16(d, s, |a, b| sat_u16(i32::from(a) + i32::from(b))),
        M::Psubusb => l8(d, s, |a, b| sat_u8(i32::from(a) - i32::from(b))),
        M::Psubusw => l16(d, s, |a, b| sat_u16(i32::from(a) - i32::from(b))),
        M::Pmullw => l16(d, s, u16::wrapping_mul),
        M::Pmulld => l32(d, s, u32::wrapping_mul),
        M::Pmulhw => l16(d, s, |a, b| {
            ((i32::from(a as i16) * i32::from(b as i16)) >> 16) as u16
        }),
        M::Pmulhuw => l16(d, s, |a, b| ((u32::from(a) * u32::from(b)) >> 16) as u16),
        M::Pmuludq => l64(d, s, |a, b| (a & 0xffff_ffff) * (b & 0xffff_ffff)),
        M::Pmuldq => l64(d, s, |a, b| {
            (i64::from(a as u32 as i32) * i64::from(b as u32 as i32)) as u64
        }),
        M::Pmaddwd => {
            let mut r = 0u128;
            for i in 0..4 {
                let a0 = i32::from((d >> (32 * i)) as u16 as i16);
                let a1 = i32::from((d >> (32 * i + 16)) as u16 as i16);
                let b0 = i32::from((s >> (32 * i)) as u16 as i16);
                let b1 = i32::from((s >> (32 * i + 16)) as u16 as i16);
                let v = (a0 * b0).wrapping_add(a1 * b1) as u32;
                r |= u128::from(v) << (32 * i);
            }
            r
        }
        M::Psadbw => {
            let mut r = 0u128;
            for h in 0..2 {
                let mut sum = 0u64;
                for i in 0..8 {
                    let a = (d >> (64 * h + 8 * i)) as u8;
                    let b = (s >> (64 * h + 8 * i)) as u8;
                    sum += u64::from(a.abs_diff(b));
                }
                r |= u128::from(sum) << (64 * h);
            }
            r
        }
        M::Pavgb => l8(d, s, |a, b| ((u16::from(a) + u16::from(b) + 1) >> 1) as u8),
        M::Pavgw => l16(d, s, |a, b| ((u32::from(a) + u32::from(b) + 1) >> 1) as u16),
        M::Pminub => l8(d, s, u8::min),
        M::Pmaxub => l8(d, s, u8::max),
        M::Pminsw => l16(d, s, |a, b| (a as i16).min(b as i16) as u16),
        M::Pmaxsw => l16(d, s, |a, b| (a as i16).max(b as i16) as u16),
        M::Pminsb => l8(d, s, |a, b| (a as i8).min(b as i8) as u8),
        M::Pmaxsb => l8(d, s, |a, b| (a as i8).max(b as i8) as u8),
        M::Pminuw => l16(d, s, u16::min),
        M::Pmaxuw => l16(d, s, u16::max),
        M::Pminsd => l32(d, s, |a, b| (a as i32).min(b as i32) as u32),
        M::Pmaxsd => l32(d, s, |a, b| (a as i32).max(b as i32) as u32),
        M::Pminud => l32(d, s, u32::min),
        M::Pmaxud => l32(d, s, u32::max),
        M::Pabsb => l8(0, s, |_, b| (b as i8).unsigned_abs()),
        M::Pabsw => l16(0, s, |_, b| (b as i16).unsigned_abs()),
        M::Pabsd => l32(0, s, |_, b| (b as i32).unsigned_abs()),
        M::Pcmpeqb => l8(d, s, |a, b| if a == b { !0 } else { 0 }),
        M::Pcmpeqw => l16(d, s, |a, b| if a == b { !0 } else { 0 }),
        M::Pcmpeqd => l32(d, s, |a, b| if a == b { !0 } else { 0 }),
        M::Pcmpeqq => l64(d, s, |a, b| if a == b { !0 } else { 0 }),
        M::Pcmpgtb => l8(d, s, |a, b| if (a as i8) > (b as i8) { !0 } else { 0 }),
        M::Pcmpgtw => l16(d, s, |a, b| if (a as i16) > (b as i16) { !0 } else { 0 }),
        M::Pcmpgtd => l32(d, s, |a, b| if (a as i32) > (b as i32) { !0 } else { 0 }),
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            let cnt = if ins.op1_kind() == OpKind::Immediate8 {
                u64::from(ins.immediate8())
            } else {
                lo64(s)
            };
            let sh = |w: u64| -> Option<u32> { (cnt < w).then_some(cnt as u32) };
            match m {
                M::Psllw => l16(d, 0, |a, _| sh(16).map_or(0, |c| a << c)),
                M::Pslld => l32(d, 0, |a, _| sh(32).map_or(0, |c| a << c)),
                M::Psllq => l64(d, 0, |a, _| sh(64).map_or(0, |c| a << c)),
                M::Psrlw => l16(d, 0, |a, _| sh(16).map_or(0, |c| a >> c)),
                M::Psrld => l32(d, 0, |a, _| sh(32).map_or(0, |c| a >> c)),
                M::Psrlq => l64(d, 0, |a, _| sh(64).map_or(0, |c| a >> c)),
                M::Psraw => l16(d, 0, |a, _| ((a as i16) >> cnt.min(15)) as u16),
                _ => l32(d, 0, |a, _| ((a as i32) >> cnt.min(31)) as u32),
            }
        }
        M::Pslldq => {
            let c = u32::from(ins.immediate8());
            if c > 15 { 0 } else { d << (8 * c) }
        }
        M::Psrldq => {
            let c = u32::from(ins.immediate8());
            if c > 15 { 0 } else { d >> (8 * c) }
        }
        _ => return Ok(Out::Pass),
    };
    Ok(Out::Write(r))
}

/// Shuffles, unpacks, packs, masks, element extract/insert, `pshufb` and
/// `palignr`.
fn shuffle(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, o: Ops) -> Result<Out, Stop> {
    use Mnemonic as M;
    let Ops { d, s, imm, .. } = o;
    let r: u128 = match m {
        M::Pshufd => {
            let mut r = 0u128;
            for i in 0..4 {
                let sel = (imm >> (2 * i)) & 3;
                r |= ((s >> (32 * sel)) & 0xffff_ffff) << (32 * i);
            }
            r
        }
        M::Pshuflw | M::Pshufhw => {
            let base = if m == M::Pshuflw { 0 } else { 64 };
            let mut r = s;
            let mut half = 0u128;
            for i in 0..4 {
                let sel = (imm >> (2 * i)) & 3;
                half |= ((s >> (base + 16 * sel)) & 0xffff) << (16 * i);
            }
            r &= !(u128::from(u64::MAX) << base);
            r | (half << base)
        }
        M::Shufps => {
            let mut r = 0u128;
            for i in 0..4u64 {
                let sel = (imm >> (2 * i)) & 3;
                let src = if i < 2 { d } else { s };
                r |= ((src >> (32 * sel)) & 0xffff_ffff) << (32 * i);
            }
            r
        }
        M::Shufpd => {
            let a = if imm & 1 == 0 { lo64(d) } else { hi64(d) };
            let b = if imm & 2 == 0 { lo64(s) } else { hi64(s) };
            u128::from(a) | (u128::from(b) << 64)
        }
        M::Punpcklbw | M::Punpckhbw => unpack(d, s, 8, m == M::Punpckhbw),
        M::Punpcklwd | M::Punpckhwd => unpack(d, s, 16, m == M::Punpckhwd),
        M::Punpckldq | M::Punpckhdq | M::Unpcklps | M::Unpckhps => {
            unpack(d, s, 32, matches!(m, M::Punpckhdq | M::Unpckhps))
        }
        M::Punpcklqdq | M::Punpckhqdq | M::Unpcklpd | M::Unpckhpd => {
            unpack(d, s, 64, matches!(m, M::Punpckhqdq | M::Unpckhpd))
        }
        M::Packsswb | M::Packuswb => {
            let mut r = 0u128;
            for (h, src) in [d, s].into_iter().enumerate() {
                for i in 0..8 {
                    let v = i32::from((src >> (16 * i)) as u16 as i16);
                    let b = if m == M::Packsswb {
                        sat_i8(v)
                    } else {
                        sat_u8(v)
                    };
                    r |= u128::from(b) << (8 * (8 * h + i));
                }
            }
            r
        }
        M::Packssdw | M::Packusdw => {
            let mut r = 0u128;
            for (h, src) in [d, s].into_iter().enumerate() {
                for i in 0..4 {
                    let v = (src >> (32 * i)) as u32 as i32;
                    let w = if m == M::Packssdw {
                        sat_i16(v)
                    } else {
                        v.clamp(0, 65535) as u16
                    };
                    r |= u128::from(w) << (16 * (4 * h + i));
                }
            }
            r
        }
        M::Pmovmskb | M::Movmskps | M::Movmskpd => {
            let (w, cnt) = match m {
                M::Pmovmskb => (8, 16),
                M::Movmskps => (32, 4),
                _ => (64, 2),
            };
            let mut r = 0u64;
            for i in 0..cnt {
                if (s >> (w * i + w - 1)) & 1 != 0 {
                    r |= 1 << i;
                }
            }
            let l = loc(cpu, ins, 0)?;
            return st(cpu, l, op_size(ins, 0), r).map(|()| Out::Done);
        }
        M::Pextrw | M::Pextrb | M::Pextrd | M::Pextrq | M::Extractps => {
            let (w, cnt) = match m {
                M::Pextrw => (16, 8),
                M::Pextrb => (8, 16),
                M::Pextrd | M::Extractps => (32, 4),
                _ => (64, 2),
            };
            let sel = u32::from(ins.immediate8()) % cnt;
            let v = (s >> (w * sel)) as u64 & (u64::MAX >> (64 - w));
            let l = loc(cpu, ins, 0)?;
            let sz = if matches!(l, Loc::Mem(..)) {
                (w / 8) as u8
            } else {
                op_size(ins, 0)
            };
            return st(cpu, l, sz, v).map(|()| Out::Done);
        }
        M::Pinsrw | M::Pinsrb | M::Pinsrd | M::Pinsrq => {
            let (w, cnt) = match m {
                M::Pinsrw => (16, 8),
                M::Pinsrb => (8, 16),
                M::Pinsrd => (32, 4),
                _ => (64, 2),
            };
            let sel = u32::from(ins.immediate8()) % cnt;
            let lm = (1u128 << w) - 1;
            (d & !(lm << (w * sel))) | ((s & lm) << (w * sel))
        }
        M::Pshufb => {
            let mut r = 0u128;
            for i in 0..16 {
                let c = (s >> (8 * i)) as u8;
                if c & 0x80 == 0 {
                    r |= ((d >> (8 * u32::from(c & 15))) & 0xff) << (8 * i);
                }
            }
            r
        }
        M::Palignr => {
            let c = (imm & 0xff) as u32;
            let cat = [s, d];
            let mut r = 0u128;
            for i in 0..16u32 {
                let idx = i + c;
                let b = if idx < 32 {
                    (cat[(idx / 16) as usize] >> (8 * (idx % 16))) & 0xff
                } else {
                    0
                };
                r |= b << (8 * i);
            }
            r
        }
        _ => return Ok(Out::Pass),
    };
    Ok(Out::Write(r))
}

/// `maskmovdqu` and the SSE3/SSSE3/SSE4.1 integer forms: `ptest`,
/// `pmovzx`/`pmovsx`, `movshdup`/`movsldup`, horizontal ops, `pmaddubsw`,
/// `pmulhrsw`, `psign*`, blends, `insertps`, `mpsadbw`, `phminposuw`.
fn extended(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, o: Ops) -> Result<Out, Stop> {
    use Mnemonic as M;
    let Ops {
        d,
        s,
        imm,
        s_is_mem,
        ..
    } = o;
    let r: u128 = match m {
        M::Ptest => {
            let mut f = 0;
            if d & s == 0 {
                f |= ZF;
            }
            if !d & s == 0 {
                f |= CF;
            }
            set_status(cpu, f);
            return Ok(Out::Done);
        }
        M::Pmovzxbw
        | M::Pmovzxbd
        | M::Pmovzxbq
        | M::Pmovzxwd
        | M::Pmovzxwq
        | M::Pmovzxdq
        | M::Pmovsxbw
        | M::Pmovsxbd
        | M::Pmovsxbq
        | M::Pmovsxwd
        | M::Pmovsxwq
        | M::Pmovsxdq => {
            let (from, to) = match m {
                M::Pmovzxbw | M::Pmovsxbw => (8, 16),
                M::Pmovzxbd | M::Pmovsxbd => (8, 32),
                M::Pmovzxbq | M::Pmovsxbq => (8, 64),
                M::Pmovzxwd | M::Pmovsxwd => (16, 32),
                M::Pmovzxwq | M::Pmovsxwq => (16, 64),
                _ => (32, 64),
            };
            let signed = format!("{m:?}").starts_with("Pmovsx");
            let mut r = 0u128;
            for i in 0..(128 / to) {
                let v = (s >> (from * i)) as u64 & (u64::MAX >> (64 - from));
                let v = if signed {
                    (((v << (64 - from)) as i64) >> (64 - from)) as u64
                } else {
                    v
                };
                r |= (u128::from(v) & ((1u128 << to) - 1)) << (to * i);
            }
            r
        }
        M::Maskmovdqu => {
            // Store the bytes of operand 1 whose mask byte (operand 2) has
            // its top bit set to [DS:RDI]; nothing is written unless every
            // selected byte is writable.
            let mask = rdx(cpu, ins, 2)?;
            let rdi = getr(cpu.st, 7, 8);
            let off = if ins.op0_kind() == OpKind::MemorySegEDI {
                rdi & 0xffff_ffff
            } else {
                rdi
            };
            let a = off.wrapping_add(seg_base(cpu, ins.memory_segment()));
            let picked: Vec<u64> = (0..16u64)
                .filter(|&i| (mask >> (8 * i + 7)) & 1 != 0)
                .collect();
            for &i in &picked {
                cpu.probe_write(a.wrapping_add(i), 1, false)?;
            }
            for &i in &picked {
                cpu.wr(a.wrapping_add(i), 1, (s >> (8 * i)) as u64 & 0xff, false)?;
            }
            return Ok(Out::Done);
        }
        M::Movshdup => from_els(32, 4, |i| el(s, 32, i | 1)),
        M::Movsldup => from_els(32, 4, |i| el(s, 32, i & !1)),
        M::Phaddw => horiz(d, s, 16, u64::wrapping_add),
        M::Phaddd => horiz(d, s, 32, u64::wrapping_add),
        M::Phsubw => horiz(d, s, 16, u64::wrapping_sub),
        M::Phsubd => horiz(d, s, 32, u64::wrapping_sub),
        M::Phaddsw => horiz(d, s, 16, |a, b| {
            u64::from(sat_i16((sx(a, 16) + sx(b, 16)) as i32))
        }),
        M::Phsubsw => horiz(d, s, 16, |a, b| {
            u64::from(sat_i16((sx(a, 16) - sx(b, 16)) as i32))
        }),
        M::Pmaddubsw => from_els(16, 8, |i| {
            let p = |j: u32| el(d, 8, j) as i32 * sx(el(s, 8, j), 8) as i32;
            u64::from(sat_i16(p(2 * i) + p(2 * i + 1)))
        }),
        M::Pmulhrsw => from_els(16, 8, |i| {
            let p = sx(el(d, 16, i), 16) * sx(el(s, 16, i), 16);
            (((p >> 14) + 1) >> 1) as u64
        }),
        M::Psignb => psign(d, s, 8),
        M::Psignw => psign(d, s, 16),
        M::Psignd => psign(d, s, 32),
        M::Blendps => blend(d, s, 32, |i| imm >> i & 1 != 0),
        M::Blendpd => blend(d, s, 64, |i| imm >> i & 1 != 0),
        M::Pblendw => blend(d, s, 16, |i| imm >> i & 1 != 0),
        M::Blendvps | M::Blendvpd | M::Pblendvb => {
            let w = match m {
                M::Blendvps => 32,
                M::Blendvpd => 64,
                _ => 8,
            };
            let mask = cpu.st.xmm.first().copied().unwrap_or(0);
            blend(d, s, w, |i| el(mask, w, i) >> (w - 1) != 0)
        }
        M::Insertps => {
            let v = if s_is_mem {
                el(s, 32, 0)
            } else {
                el(s, 32, (imm >> 6) as u32 & 3)
            };
            let at = (imm >> 4) as u32 & 3;
            from_els(32, 4, |i| {
                if imm >> i & 1 != 0 {
                    0
                } else if i == at {
                    v
                } else {
                    el(d, 32, i)
                }
            })
        }
        M::Mpsadbw => {
            let doff = 4 * ((imm >> 2) as u32 & 1);
            let soff = 4 * (imm as u32 & 3);
            from_els(16, 8, |i| {
                (0..4)
                    .map(|j| {
                        let a = el(d, 8, doff + i + j) as u8;
                        let b = el(s, 8, soff + j) as u8;
                        u64::from(a.abs_diff(b))
                    })
                    .sum()
            })
        }
        M::Phminposuw => {
            let (v, i) = (0..8u32).map(|i| (el(s, 16, i), i)).min().unwrap_or((0, 0));
            u128::from(v) | (u128::from(i) << 16)
        }
        _ => return Ok(Out::Pass),
    };
    Ok(Out::Write(r))
}

/// Floating point on the host under the guest's MXCSR: `round*`/`dp*`,
/// `cmp*`, `(u)comis*`, and every two-operand arithmetic form ([`xop`]).
fn float(cpu: &mut Cpu<'_>, m: Mnemonic, o: Ops) -> Result<Out, Stop> {
    use Mnemonic as M;
    let Ops { d, s, imm, .. } = o;
    let r: u128 = match m {
        M::Roundps | M::Roundpd | M::Roundss | M::Roundsd | M::Dpps | M::Dppd => {
            let op = match m {
                M::Roundps => ImmOp::Roundps,
                M::Roundpd => ImmOp::Roundpd,
                M::Roundss => ImmOp::Roundss,
                M::Roundsd => ImmOp::Roundsd,
                M::Dpps => ImmOp::Dpps,
                _ => ImmOp::Dppd,
            };
            let imm8 = (imm & 0xff) as u8;
            let (r, f) = hostfp::xmm_imm(op, imm8, d, s, cpu.st.mxcsr);
            let unmasked = !(cpu.st.mxcsr >> 7) & hostfp::FLAGS;
            // Tiny or huge intermediate results can raise an unmasked UE/OE
            // that the masked run does not flag (exact underflow).
            if matches!(op, ImmOp::Dpps | ImmOp::Dppd)
                && (f & unmasked != 0 || unmasked & (OE | UE) != 0)
            {
                dp_stages(cpu, op == ImmOp::Dppd, imm8, d, s)?;
            }
            settle(cpu, f, Vec::new)?;
            match op {
                // The broadcast mask: unselected lanes are +0.0.
                ImmOp::Dpps => blend(0, r, 32, |i| imm8 >> i & 1 != 0),
                ImmOp::Dppd => blend(0, r, 64, |i| imm8 >> i & 1 != 0),
                _ => r,
            }
        }
        M::Cmpps | M::Cmppd | M::Cmpss | M::Cmpsd => {
            let w = match m {
                M::Cmpps => 0,
                M::Cmppd => 1,
                M::Cmpss => 2,
                _ => 3,
            };
            host_xmm(cpu, hostfp::cmp_op(w, imm), d, s)?
        }
        M::Ucomisd | M::Comisd | M::Ucomiss | M::Comiss => {
            let op = match m {
                M::Ucomisd => hostfp::Comis::Ucomisd,
                M::Comisd => hostfp::Comis::Comisd,
                M::Ucomiss => hostfp::Comis::Ucomiss,
                _ => hostfp::Comis::Comiss,
            };
            let ((z, p, c), f) = hostfp::comis(op, lo64(d), lo64(s), cpu.st.mxcsr);
            settle(cpu, f, Vec::new)?;
            let mut fl = 0;
            if z {
                fl |= ZF;
            }
            if p {
                fl |= PF;
            }
            if c {
                fl |= CF;
            }
            set_status(cpu, fl);
            return Ok(Out::Done);
        }
        _ if xop(m).is_some() => match xop(m) {
            Some(op) => host_xmm(cpu, op, d, s)?,
            None => return Err(Stop::Fault(Fault::ud())),
        },
        _ => return Ok(Out::Pass),
    };
    Ok(Out::Write(r))
}

/// Conversions between general registers or memory and scalar floating
/// point (`cvtsi2s*`, `cvt(t)s*2si`).
fn convert(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, o: Ops) -> Result<Out, Stop> {
    use Mnemonic as M;
    let Ops { d, s, .. } = o;
    let r: u128 = match m {
        M::Cvtsi2sd | M::Cvtsi2ss => {
            let op = if m == M::Cvtsi2sd {
                IntToFp::Sd
            } else {
                IntToFp::Ss
            };
            let wide = op_size(ins, 1) == 8;
            let (r, f) = hostfp::int_to_fp(op, d, lo64(s), wide, cpu.st.mxcsr);
            settle(cpu, f, Vec::new)?;
            r
        }
        M::Cvttsd2si | M::Cvtsd2si | M::Cvttss2si | M::Cvtss2si => {
            let op = match m {
                M::Cvttsd2si => FpToInt::Tsd,
                M::Cvtsd2si => FpToInt::Sd,
                M::Cvttss2si => FpToInt::Tss,
                _ => FpToInt::Ss,
            };
            let sz = op_size(ins, 0);
            let l = loc(cpu, ins, 0)?;
            let (v, f) = hostfp::fp_to_int(op, lo64(s), sz == 8, cpu.st.mxcsr);
            settle(cpu, f, Vec::new)?;
            return st(cpu, l, sz, v).map(|()| Out::Done);
        }
        _ => return Ok(Out::Pass),
    };
    Ok(Out::Write(r))
}

/// MXCSR and the FXSAVE image: `ldmxcsr`/`stmxcsr`, `fxsave`/`fxrstor`.
fn state(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Out, Stop> {
    use Mnemonic as M;
    match m {
        M::Ldmxcsr => {
            let (a, ss) = mem_ea(cpu, ins);
            let v = cpu.rd(a, 4, ss)? as u32;
            if v & !cpu.c.model.mxcsr_mask() != 0 {
                return Err(Stop::Fault(Fault::gp0()));
            }
            cpu.st.mxcsr = v;
            Ok(Out::Done)
        }
        M::Stmxcsr => {
            let (a, ss) = mem_ea(cpu, ins);
            cpu.wr(a, 4, u64::from(cpu.st.mxcsr), ss)
                .map(|()| Out::Done)
        }
        M::Fxsave | M::Fxsave64 => {
            let (a, ss) = mem_ea(cpu, ins);
            if a & 15 != 0 {
                return Err(Stop::Fault(Fault::gp0()));
            }
            let mut img = cpu.st.fx.0;
            img[24..28].copy_from_slice(&cpu.st.mxcsr.to_le_bytes());
            img[28..32].copy_from_slice(&cpu.c.model.mxcsr_mask().to_le_bytes());
            for (i, x) in cpu.st.xmm.iter().enumerate() {
                img[160 + 16 * i..176 + 16 * i].copy_from_slice(&x.to_le_bytes());
            }
            cpu.wr_bytes(a, &img, ss).map(|()| Out::Done)
        }
        M::Fxrstor | M::Fxrstor64 => {
            let (a, ss) = mem_ea(cpu, ins);
            if a & 15 != 0 {
                return Err(Stop::Fault(Fault::gp0()));
            }
            let mut img = [0u8; 512];
            cpu.rd_bytes(a, &mut img, ss)?;
            let mx = u32::from_le_bytes([img[24], img[25], img[26], img[27]]);
            if mx & !cpu.c.model.mxcsr_mask() != 0 {
                return Err(Stop::Fault(Fault::gp0()));
            }
            cpu.st.mxcsr = mx;
            for (i, x) in cpu.st.xmm.iter_mut().enumerate() {
                let mut b = [0u8; 16];
                b.copy_from_slice(&img[160 + 16 * i..176 + 16 * i]);
                *x = u128::from_le_bytes(b);
            }
            cpu.st.fx.0 = img;
            Ok(Out::Done)
        }
        _ => Ok(Out::Pass),
    }
}

/// The host instruction for a two-operand XMM floating-point mnemonic.
fn xop(m: Mnemonic) -> Option<XOp> {
    use Mnemonic as M;
    use XOp as X;
    Some(match m {
        M::Addps => X::Addps,
        M::Addpd => X::Addpd,
        M::Addss => X::Addss,
        M::Addsd => X::Addsd,
        M::Subps => X::Subps,
        M::Subpd => X::Subpd,
        M::Subss => X::Subss,
        M::Subsd => X::Subsd,
        M::Mulps => X::Mulps,
        M::Mulpd => X::Mulpd,
        M::Mulss => X::Mulss,
        M::Mulsd => X::Mulsd,
        M::Divps => X::Divps,
        M::Divpd => X::Divpd,
        M::Divss => X::Divss,
        M::Divsd => X::Divsd,
        M::Sqrtps => X::Sqrtps,
        M::Sqrtpd => X::Sqrtpd,
        M::Sqrtss => X::Sqrtss,
        M::Sqrtsd => X::Sqrtsd,
        M::Minps => X::Minps,
        M::Minpd => X::Minpd,
        M::Minss => X::Minss,
        M::Minsd => X::Minsd,
        M::Maxps => X::Maxps,
        M::Maxpd => X::Maxpd,
        M::Maxss => X::Maxss,
        M::Maxsd => X::Maxsd,
        M::Rcpps => X::Rcpps,
        M::Rcpss => X::Rcpss,
        M::Rsqrtps => X::Rsqrtps,
        M::Rsqrtss => X::Rsqrtss,
        M::Cvtss2sd => X::Cvtss2sd,
        M::Cvtsd2ss => X::Cvtsd2ss,
        M::Cvtps2pd => X::Cvtps2pd,
        M::Cvtpd2ps => X::Cvtpd2ps,
        M::Cvtdq2ps => X::Cvtdq2ps,
        M::Cvtps2dq => X::Cvtps2dq,
        M::Cvttps2dq => X::Cvttps2dq,
        M::Cvtdq2pd => X::Cvtdq2pd,
        M::Cvtpd2dq => X::Cvtpd2dq,
        M::Cvttpd2dq => X::Cvttpd2dq,
        M::Addsubps => X::Addsubps,
        M::Addsubpd => X::Addsubpd,
        M::Haddps => X::Haddps,
        M::Haddpd => X::Haddpd,
        M::Hsubps => X::Hsubps,
        M::Hsubpd => X::Hsubpd,
        _ => return None,
    })
}

/// Run `op` on the host under the guest MXCSR and settle its exceptions;
/// the new destination value, or #XM.
fn host_xmm(cpu: &mut Cpu<'_>, op: XOp, d: u128, s: u128) -> Result<u128, Stop> {
    let mx = cpu.st.mxcsr;
    let (r, f) = hostfp::xmm(op, d, s, mx);
    settle(cpu, f, || lanes(op, d, s, mx))?;
    Ok(r)
}

/// One element of an operation that can overflow or underflow, run on its
/// own (scalar form, exceptions masked).
#[derive(Clone, Copy, Debug)]
struct Lane {
    /// Flags of the masked run.
    flags: u32,
    /// The unmasked-underflow condition: the rounded result is below the
    /// smallest normal, exact or not (with FTZ the masked run flags UE for
    /// every such result; without it an exact tiny result shows as a
    /// denormal).
    tiny: bool,
    /// The result rounded to the destination precision with an unbounded
    /// exponent is inexact (what PE reports when OE/UE are unmasked).
    inexact: bool,
}

/// Per-element [`Lane`]s of the operations that can overflow or underflow
/// (empty for the others): each element as the scalar operation that
/// computes it, on its two input elements.
fn lanes(op: XOp, d: u128, s: u128, mx: u32) -> Vec<Lane> {
    use XOp as X;
    let e32 = |v: u128, i: u32| u64::from((v >> (32 * i)) as u32);
    let e64 = |v: u128, i: u32| (v >> (64 * i)) as u64;
    let packed32 = |sc: XOp| {
        (0..4)
            .map(|i| (sc, e32(d, i), e32(s, i)))
            .collect::<Vec<_>>()
    };
    let packed64 = |sc: XOp| {
        (0..2)
            .map(|i| (sc, e64(d, i), e64(s, i)))
            .collect::<Vec<_>>()
    };
    let horiz32 = |sc: XOp| {
        vec![
            (sc, e32(d, 0), e32(d, 1)),
            (sc, e32(d, 2), e32(d, 3)),
            (sc, e32(s, 0), e32(s, 1)),
            (sc, e32(s, 2), e32(s, 3)),
        ]
    };
    let horiz64 = |sc: XOp| vec![(sc, e64(d, 0), e64(d, 1)), (sc, e64(s, 0), e64(s, 1))];
    // (f32 result, elements as (scalar op, a, b))
    let (out32, els): (bool, Vec<(XOp, u64, u64)>) = match op {
        X::Addps => (true, packed32(X::Addss)),
        X::Subps => (true, packed32(X::Subss)),
        X::Mulps => (true, packed32(X::Mulss)),
        X::Divps => (true, packed32(X::Divss)),
        X::Addpd => (false, packed64(X::Addsd)),
        X::Subpd => (false, packed64(X::Subsd)),
        X::Mulpd => (false, packed64(X::Mulsd)),
        X::Divpd => (false, packed64(X::Divsd)),
        X::Cvtpd2ps => (true, packed64(X::Cvtsd2ss)),
        X::Haddps => (true, horiz32(X::Addss)),
        X::Hsubps => (true, horiz32(X::Subss)),
        X::Haddpd => (false, horiz64(X::Addsd)),
        X::Hsubpd => (false, horiz64(X::Subsd)),
        X::Addsubps => (
            true,
            (0..4)
                .map(|i| {
                    let sc = if i % 2 == 0 { X::Subss } else { X::Addss };
                    (sc, e32(d, i), e32(s, i))
                })
                .collect(),
        ),
        X::Addsubpd => (
            false,
            vec![
                (X::Subsd, e64(d, 0), e64(s, 0)),
                (X::Addsd, e64(d, 1), e64(s, 1)),
            ],
        ),
        X::Addss | X::Subss | X::Mulss | X::Divss => (true, vec![(op, e32(d, 0), e32(s, 0))]),
        X::Cvtsd2ss => (true, vec![(op, e64(d, 0), e64(s, 0))]),
        X::Addsd | X::Subsd | X::Mulsd | X::Divsd => (false, vec![(op, e64(d, 0), e64(s, 0))]),
        _ => return Vec::new(),
    };
    lanes_of(out32, els, mx)
}

/// The [`Lane`]s of elements computed by scalar operations on `(a, b)`
/// (`out32`: single-precision results).
fn lanes_of(out32: bool, els: Vec<(XOp, u64, u64)>, mx: u32) -> Vec<Lane> {
    let daz = mx & hostfp::DAZ != 0;
    els.into_iter()
        .map(|(scalar, a, b)| {
            // A scalar operation's result and flags depend on the low
            // elements only.
            let (r, f) = hostfp::xmm(scalar, u128::from(a), u128::from(b), mx);
            let denormal = if out32 {
                let b = r as u32 & 0x7fff_ffff;
                b != 0 && b < 0x0080_0000
            } else {
                let b = r as u64 & 0x7fff_ffff_ffff_ffff;
                b != 0 && b < 0x0010_0000_0000_0000
            };
            Lane {
                flags: f,
                tiny: f & UE != 0 || denormal,
                inexact: inexact_unbounded(scalar, a, b, daz),
            }
        })
        .collect()
}

/// `dpps`/`dppd` with an unmasked exception: the hardware computes the dot
/// product in steps (SDM "DPPS": the products, then pairwise sums, then
/// their sum; `dppd`: products, then one sum) and takes #XM at the first
/// step that raises an unmasked exception, with the flags of the earlier
/// steps already set. Each step is settled like an instruction of its own
/// ([`settle`] over its elements); `Ok` when no step faults (the caller then
/// settles the whole instruction's flags).
fn dp_stages(cpu: &mut Cpu<'_>, double: bool, imm8: u8, d: u128, s: u128) -> Result<(), Stop> {
    use XOp as X;
    let mx = cpu.st.mxcsr;
    let (w, n, mul, add) = if double {
        (64, 2, X::Mulsd, X::Addsd)
    } else {
        (32, 4, X::Mulss, X::Addss)
    };
    // Runs the scalar `op` on each pair; the results and the step's flags.
    let step = |cpu: &mut Cpu<'_>, op: XOp, pairs: &[(u64, u64)]| -> Result<Vec<u64>, Stop> {
        let mut out = Vec::with_capacity(pairs.len());
        let mut f = 0;
        for &(a, b) in pairs {
            let (r, fl) = hostfp::xmm(op, u128::from(a), u128::from(b), mx);
            out.push(el(r, w, 0));
            f |= fl;
        }
        let els: Vec<(XOp, u64, u64)> = pairs.iter().map(|&(a, b)| (op, a, b)).collect();
        settle(cpu, f, || lanes_of(!double, els, mx))?;
        Ok(out)
    };
    let picked: Vec<u32> = (0..n).filter(|i| imm8 >> (4 + i) & 1 != 0).collect();
    let pairs: Vec<(u64, u64)> = picked.iter().map(|&i| (el(d, w, i), el(s, w, i))).collect();
    let prods = step(cpu, mul, &pairs)?;
    // Unselected products are +0.0.
    let mut p = vec![0u64; n as usize];
    for (&i, &v) in picked.iter().zip(&prods) {
        p[i as usize] = v;
    }
    if double {
        step(cpu, add, &[(p[0], p[1])])?;
    } else {
        let t = step(cpu, add, &[(p[0], p[1]), (p[2], p[3])])?;
        step(cpu, add, &[(t[0], t[1])])?;
    }
    Ok(())
}

/// A finite operand as `(negative, integer significand, exponent)` with
/// value `±significand · 2^exponent`; `None` for infinities and NaNs.
fn parts(bits: u64, double: bool, daz: bool) -> Option<(bool, u128, i32)> {
    let (fbits, ebits): (u32, u32) = if double { (52, 11) } else { (23, 8) };
    let bias = (1i32 << (ebits - 1)) - 1;
    let neg = (bits >> (fbits + ebits)) & 1 != 0;
    let e = ((bits >> fbits) & ((1 << ebits) - 1)) as i32;
    let f = bits & ((1u64 << fbits) - 1);
    if e == (1 << ebits) - 1 {
        return None;
    }
    if e == 0 {
        let f = if daz { 0 } else { f };
        return Some((neg, u128::from(f), 1 - bias - fbits as i32));
    }
    Some((
        neg,
        u128::from(f | (1u64 << fbits)),
        e - bias - fbits as i32,
    ))
}

/// Significant bits of `m` (from the highest to the lowest set bit).
fn sig_bits(m: u128) -> u32 {
    if m == 0 {
        0
    } else {
        128 - m.leading_zeros() - m.trailing_zeros()
    }
}

/// Whether the exact result of the scalar `op` on `a`, `b` (low element
/// bits) needs more significand bits than the destination format has.
fn inexact_unbounded(op: XOp, a: u64, b: u64, daz: bool) -> bool {
    use XOp as X;
    let (double_in, prec) = match op {
        X::Addss | X::Subss | X::Mulss | X::Divss => (false, 24),
        X::Cvtsd2ss => (true, 24),
        _ => (true, 53),
    };
    if op == X::Cvtsd2ss {
        return parts(b, true, daz).is_some_and(|(_, m, _)| sig_bits(m) > prec);
    }
    let (Some((sa, ma, ea)), Some((sb, mb, eb))) =
        (parts(a, double_in, daz), parts(b, double_in, daz))
    else {
        return false;
    };
    match op {
        X::Mulss | X::Mulsd => sig_bits(ma * mb) > prec,
        X::Divss | X::Divsd => {
            if mb == 0 {
                return false;
            }
            let odd = mb >> mb.trailing_zeros();
            ma % odd != 0 || sig_bits(ma / odd) > prec
        }
        _ => {
            let sb = sb ^ matches!(op, X::Subss | X::Subsd);
            let ((sx, mx, ex), (sy, my, ey)) = if ea >= eb {
                ((sa, ma, ea), (sb, mb, eb))
            } else {
                ((sb, mb, eb), (sa, ma, ea))
            };
            let shift = (ex - ey) as u32;
            if my == 0 {
                return sig_bits(mx) > prec;
            }
            if shift > 70 {
                // Both non-zero (a zero has the lowest exponent) and the
                // larger operand's lowest bit is far above the smaller one's
                // highest: the exact sum spans more than 70 bits.
                return true;
            }
            let (x, y) = ((mx << shift) as i128, my as i128);
            let sum = if sx == sy { x + y } else { x - y };
            sig_bits(sum.unsigned_abs()) > prec
        }
    }
}

/// Commit the exception flags `f` of a host run (all exceptions masked)
/// to the guest MXCSR, or raise #XM when the guest has one of them
/// unmasked. Precedence (SDM "SIMD Floating-Point Exception Conditions",
/// checked against hardware): an unmasked pre-computation exception
/// (IE/DE/ZE) in any element flags only the pre-computation exceptions of
/// all elements; otherwise an element that overflows with OE unmasked
/// flags OE, and one with a tiny result with UE unmasked flags UE, each
/// with PE only when the result rounded with an unbounded exponent is
/// inexact; every other element flags as masked. `lanes` gives the
/// per-element view of operations that can overflow or underflow.
fn settle(cpu: &mut Cpu<'_>, f: u32, lanes: impl FnOnce() -> Vec<Lane>) -> Result<(), Stop> {
    const PRE: u32 = IE | DE | ZE;
    let unmasked = !(cpu.st.mxcsr >> 7) & hostfp::FLAGS;
    let xm = || Err(Stop::Fault(Fault::new(vector::XM, None)));
    if f & unmasked & PRE != 0 {
        cpu.st.mxcsr |= f & PRE;
        return xm();
    }
    if unmasked & (OE | UE) != 0 {
        let mut acc = 0;
        let mut hit = false;
        for l in lanes() {
            let pe = if l.inexact { hostfp::PE } else { 0 };
            if l.flags & OE != 0 && unmasked & OE != 0 {
                acc |= (l.flags & PRE) | OE | pe;
                hit = true;
            } else if l.tiny && unmasked & UE != 0 {
                acc |= (l.flags & PRE) | UE | pe;
                hit = true;
            } else {
                acc |= l.flags;
            }
        }
        if hit {
            cpu.st.mxcsr |= acc;
            return xm();
        }
    }
    cpu.st.mxcsr |= f;
    if f & unmasked != 0 {
        return xm();
    }
    Ok(())
}

fn unpack(d: u128, s: u128, w: u32, high: bool) -> u128 {
    let n = 64 / w;
    let base = if high { 64 } else { 0 };
    let lm = (1u128 << w) - 1;
    let mut r = 0u128;
    for i in 0..n {
        let a = (d >> (base + w * i)) & lm;
        let b = (s >> (base + w * i)) & lm;
        r |= a << (2 * w * i);
        r |= b << (2 * w * i + w);
    }
    r
}
