//! The x87 FPU, on real 80-bit values kept in the FXSAVE image.
//!
//! State lives in [`crate::CpuState::fx`] exactly as `fxsave` writes it
//! (so `fxsave`/`fxrstor` need no conversion): FCW at 0, FSW (with TOP in
//! bits 11..=13) at 2, the abridged tag byte (one bit per *physical*
//! register, 1 = valid) at 4, and ST(0)..ST(7) in 16-byte slots from 32 —
//! in *stack* order, so a push rotates the slots. Arithmetic is
//! bit-exact software extended precision ([`f80`]), honouring FCW.RC and
//! (for `fadd`/`fsub`/`fmul`/`fdiv`/`fsqrt`) FCW.PC.
//!
//! Implemented: `fninit`/`finit`, `fldcw`, `fnstcw`/`fstcw`,
//! `fnstsw`/`fstsw` (AX and m16), `fnclex`/`fclex`, `wait`, `fld`
//! (m32/m64/m80/st(i)), `fst`/`fstp` (m32/m64/st(i), `fstp` m80),
//! `fild` (m16/32/64), `fist`/`fistp` (m16/32, `fistp` m64), `fisttp`,
//! `fxch`, `fld1`/`fldz`/`fldpi`/`fldl2e`/`fldl2t`/`fldlg2`/`fldln2`,
//! `fchs`, `fabs`, `ffree`/`ffreep`,
//! `fincstp`/`fdecstp`, `fnop`, `fadd`/`fsub`/`fsubr`/`fmul`/`fdiv`/`fdivr`
//! in every form (m32, m64, st/st(i), the `p` forms, and the `fi…` m16/m32
//! forms), `fcom`/`fcomp`/`fcompp`/`fucom`/`fucomp`/`fucompp`,
//! `ficom`/`ficomp`, `fcomi`/`fcomip`/`fucomi`/`fucomip`, `ftst`, `fxam`,
//! `fsqrt`, `frndint`, `fcmovcc`, and the 32-bit-operand environment
//! instructions `fnstenv`/`fstenv`/`fldenv` (28 bytes) and
//! `fnsave`/`fsave`/`frstor` (108 bytes). `fxsave`/`fxrstor` live in
//! `sse.rs` and copy this image.
//!
//! Exceptions: masked responses are exact (QNaN indefinite, integer
//! indefinite, stack fault with C1). Unmasked invalid/zero-divide (and
//! denormal, except on loads) leave the destination and the stack alone and
//! report only themselves; unmasked overflow/underflow of a memory store
//! leave memory and the stack alone (no inexact), on a register destination
//! they deliver the exponent-biased result; FSW.ES/B follow the unmasked
//! pending exceptions, and every *waiting* x87 instruction (all but
//! `fninit`/`fnclex`/`fnstcw`/`fnstsw`/`fnstenv`/`fnsave`) raises #MF while
//! ES is set. Tininess is detected after rounding. These details were
//! settled against the host CPU by the `diff_x87` differential tests.
//!
//! Not kept: FOP, FIP and FDP (they stay 0 in the image and in saved
//! environments). Not implemented (#UD): transcendental instructions,
//! `fprem`/`fprem1`/`fscale`/`fxtract`, BCD loads/stores, the
//! 16-bit-operand environment layouts.
//!
//! [`exec`] checks CR0.TS and pending exceptions, then offers the
//! instruction to one function per group (`control`, `load_store`,
//! `stack_unary`, `compare`); the rest is arithmetic (`arith_insn`) or #UD.
//! Operand access comes from `operand`; no other executor is used.

mod f80;

use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};

use f80::{Class, DE, F32, F64, F80, IE, OE, Op, PE, UE, ZE};

use super::ctx::{Cpu, Stop};
use super::mmu::Fault;
use super::operand::{mem_ea, setr};
use super::translate::Uop;
use crate::state::rflags::{AF, CF, OF, PF, SF as RF_SF, ZF};
use crate::vector;

const FSW_SF: u16 = 0x40;
const FSW_ES: u16 = 0x80;
const C0: u16 = 0x100;
const C1: u16 = 0x200;
const C2: u16 = 0x400;
const C3: u16 = 0x4000;
const FSW_B: u16 = 0x8000;
const REGS: usize = 32;
/// The pre-computation exceptions (and the stack fault bit): all that is
/// reported when one of them is unmasked and stops the instruction.
const PRE: u16 = IE | DE | ZE | FSW_SF;

type Fx = [u8; 512];

fn fcw(fx: &Fx) -> u16 {
    u16::from_le_bytes([fx[0], fx[1]])
}
fn fsw(fx: &Fx) -> u16 {
    u16::from_le_bytes([fx[2], fx[3]])
}
fn set_fsw(fx: &mut Fx, v: u16) {
    fx[2..4].copy_from_slice(&v.to_le_bytes());
}
fn top(fx: &Fx) -> usize {
    usize::from((fsw(fx) >> 11) & 7)
}
fn set_top(fx: &mut Fx, t: usize) {
    let s = (fsw(fx) & !0x3800) | (((t & 7) as u16) << 11);
    set_fsw(fx, s);
}
fn phys(fx: &Fx, i: usize) -> usize {
    (top(fx) + i) & 7
}
fn valid(fx: &Fx, i: usize) -> bool {
    fx[4] >> phys(fx, i) & 1 != 0
}
fn set_tag(fx: &mut Fx, i: usize, v: bool) {
    let b = 1u8 << phys(fx, i);
    if v {
        fx[4] |= b;
    } else {
        fx[4] &= !b;
    }
}
fn get(fx: &Fx, i: usize) -> F80 {
    let o = REGS + 16 * (i & 7);
    let mut b = [0u8; 10];
    b.copy_from_slice(&fx[o..o + 10]);
    F80::from_bytes(&b)
}
fn put(fx: &mut Fx, i: usize, v: F80) {
    let o = REGS + 16 * (i & 7);
    fx[o..o + 10].copy_from_slice(&v.to_bytes());
    fx[o + 10..o + 16].fill(0);
    set_tag(fx, i, true);
}
fn push(fx: &mut Fx, v: F80) {
    let t = top(fx);
    set_top(fx, t.wrapping_sub(1));
    fx[REGS..REGS + 128].rotate_right(16);
    put(fx, 0, v);
}
fn pop(fx: &mut Fx) {
    set_tag(fx, 0, false);
    let t = top(fx);
    set_top(fx, t + 1);
    fx[REGS..REGS + 128].rotate_left(16);
}
/// Replace the whole FSW (and so TOP) keeping every *physical* register's
/// contents: the stack-ordered slots rotate with TOP.
fn load_fsw(fx: &mut Fx, sw: u16) {
    let d = (usize::from(sw >> 11) + 8 - top(fx)) & 7;
    fx[REGS..REGS + 128].rotate_left(16 * d);
    set_fsw(fx, sw);
}
/// A loaded control word: reserved bits 7 and 13..=15 read 0, bit 6 reads 1.
fn fcw_value(v: u16) -> u16 {
    (v & !0xe0c0) | 0x40
}
fn rc(fx: &Fx) -> u8 {
    ((fcw(fx) >> 10) & 3) as u8
}
fn pc(fx: &Fx) -> u8 {
    ((fcw(fx) >> 8) & 3) as u8
}
/// Exception bits of `flags` whose mask bit is clear.
fn unmasked(fx: &Fx, flags: u16) -> u16 {
    flags & !fcw(fx) & 0x3f
}
/// Recompute ES and B from the pending exceptions and the masks.
fn update_es(fx: &mut Fx) {
    let s = fsw(fx);
    let s = if s & !fcw(fx) & 0x3f != 0 {
        s | FSW_ES | FSW_B
    } else {
        s & !(FSW_ES | FSW_B)
    };
    set_fsw(fx, s);
}
/// Record exceptions (`SF` added for stack faults by the caller) and C1.
fn status(fx: &mut Fx, flags: u16, c1: bool) {
    let mut s = fsw(fx) | (flags & 0x7f);
    if c1 {
        s |= C1;
    } else {
        s &= !C1;
    }
    set_fsw(fx, s);
    update_es(fx);
}
/// Whether the pre-computation exceptions (invalid, denormal, zero
/// divide) in `flags` are unmasked, so the destination must not change.
fn blocked(fx: &Fx, flags: u16) -> bool {
    unmasked(fx, flags & (IE | DE | ZE)) != 0
}

type R = Option<Result<Option<u64>, Stop>>;

fn sti(ins: &Instruction, k: u32) -> Option<usize> {
    if k < ins.op_count() && ins.op_kind(k) == OpKind::Register {
        let r = ins.op_register(k);
        if r.is_st() {
            return Some(r as usize - Register::ST0 as usize);
        }
    }
    None
}

fn is_x87(m: M) -> bool {
    matches!(
        m,
        M::Fninit
            | M::Finit
            | M::Fneni
            | M::Feni
            | M::Fndisi
            | M::Fdisi
            | M::Fnsetpm
            | M::Fsetpm
            | M::Fldcw
            | M::Fnstcw
            | M::Fstcw
            | M::Fnstsw
            | M::Fstsw
            | M::Fnclex
            | M::Fclex
            | M::Wait
            | M::Fld
            | M::Fst
            | M::Fstp
            | M::Fild
            | M::Fist
            | M::Fistp
            | M::Fisttp
            | M::Fxch
            | M::Fld1
            | M::Fldz
            | M::Fldpi
            | M::Fldl2e
            | M::Fldl2t
            | M::Fldlg2
            | M::Fldln2
            | M::Fchs
            | M::Fabs
            | M::Ffree
            | M::Ffreep
            | M::Fincstp
            | M::Fdecstp
            | M::Fnop
            | M::Fadd
            | M::Faddp
            | M::Fiadd
            | M::Fsub
            | M::Fsubp
            | M::Fisub
            | M::Fsubr
            | M::Fsubrp
            | M::Fisubr
            | M::Fmul
            | M::Fmulp
            | M::Fimul
            | M::Fdiv
            | M::Fdivp
            | M::Fidiv
            | M::Fdivr
            | M::Fdivrp
            | M::Fidivr
            | M::Fcom
            | M::Fcomp
            | M::Fcompp
            | M::Fucom
            | M::Fucomp
            | M::Fucompp
            | M::Ficom
            | M::Ficomp
            | M::Fcomi
            | M::Fcomip
            | M::Fucomi
            | M::Fucomip
            | M::Ftst
            | M::Fxam
            | M::Fsqrt
            | M::Frndint
            | M::Fcmovb
            | M::Fcmove
            | M::Fcmovbe
            | M::Fcmovu
            | M::Fcmovnb
            | M::Fcmovne
            | M::Fcmovnbe
            | M::Fcmovnu
            | M::Fnstenv
            | M::Fstenv
            | M::Fldenv
            | M::Fnsave
            | M::Fsave
            | M::Frstor
    )
}

/// Execute an x87 instruction, or `None` when `ins` is not one.
pub(crate) fn exec(cpu: &mut Cpu<'_>, ins: &Instruction, u: &Uop) -> R {
    let _ = u;
    let m = ins.mnemonic();
    if !is_x87(m) {
        return None;
    }
    if cpu.st.ts {
        return Some(Err(Stop::Fault(Fault::new(vector::NM, None))));
    }
    let waiting = !matches!(
        m,
        M::Fninit
            | M::Fnclex
            | M::Fnstcw
            | M::Fnstsw
            | M::Fnstenv
            | M::Fnsave
            | M::Fneni
            | M::Fndisi
            | M::Fnsetpm
    );
    if waiting && fsw(&cpu.st.fx.0) & FSW_ES != 0 {
        return Some(Err(Stop::Fault(Fault::new(vector::MF, None))));
    }
    Some(exec_inner(cpu, ins, m).map(|()| None))
}

/// Integer memory operand size for the `fi…` forms (bytes).
fn mem_bytes(ins: &Instruction) -> u8 {
    ins.memory_size().size() as u8
}

/// Read a memory operand as an 80-bit value (exact). `quiet`: quiet an
/// SNaN with IE (loads) or keep it signalling (arithmetic operands).
fn read_mem_value(
    cpu: &mut Cpu<'_>,
    ins: &Instruction,
    int: bool,
    quiet: bool,
) -> Result<f80::Res<F80>, Stop> {
    let (a, ss) = mem_ea(cpu, ins);
    let n = mem_bytes(ins);
    if int {
        let raw = cpu.rd(a, n, ss)?;
        let v = match n {
            2 => i64::from(raw as u16 as i16),
            4 => i64::from(raw as u32 as i32),
            _ => raw as i64,
        };
        return Ok(f80::Res {
            v: f80::from_int(v),
            flags: 0,
            up: false,
        });
    }
    Ok(match n {
        4 => f80::from_ieee_q(cpu.rd(a, 4, ss)?, F32, quiet),
        8 => f80::from_ieee_q(cpu.rd(a, 8, ss)?, F64, quiet),
        _ => {
            let mut b = [0u8; 10];
            cpu.rd_bytes(a, &mut b, ss)?;
            f80::Res {
                v: F80::from_bytes(&b),
                flags: 0,
                up: false,
            }
        }
    })
}

/// Push a loaded value (with its load flags), handling stack overflow.
fn push_value(fx: &mut Fx, r: f80::Res<F80>) {
    if valid(fx, 7) {
        if unmasked(fx, IE) == 0 {
            push(fx, F80::INDEF);
        }
        status(fx, IE | FSW_SF, true);
        return;
    }
    // An unmasked denormal operand still loads (the hardware does).
    if !blocked(fx, r.flags & !DE) {
        push(fx, r.v);
    }
    status(fx, r.flags, false);
}

/// A stack underflow: IE + SF, C1 = 0. Returns whether the masked
/// response (write the indefinite) applies.
fn underflow(fx: &mut Fx) -> bool {
    status(fx, IE | FSW_SF, false);
    unmasked(fx, IE) == 0
}

/// An arithmetic instruction: operation, reversed operands (`fsubr`,
/// `fdivr`), and whether it pops.
#[derive(Clone, Copy)]
struct ArithOp {
    op: Op,
    rev: bool,
    pops: bool,
}

fn arith_op(m: M) -> Option<ArithOp> {
    let (op, rev, pops) = match m {
        M::Fadd | M::Fiadd => (Op::Add, false, false),
        M::Faddp => (Op::Add, false, true),
        M::Fsub | M::Fisub => (Op::Sub, false, false),
        M::Fsubp => (Op::Sub, false, true),
        M::Fsubr | M::Fisubr => (Op::Sub, true, false),
        M::Fsubrp => (Op::Sub, true, true),
        M::Fmul | M::Fimul => (Op::Mul, false, false),
        M::Fmulp => (Op::Mul, false, true),
        M::Fdiv | M::Fidiv => (Op::Div, false, false),
        M::Fdivp => (Op::Div, false, true),
        M::Fdivr | M::Fidivr => (Op::Div, true, false),
        M::Fdivrp => (Op::Div, true, true),
        _ => return None,
    };
    Some(ArithOp { op, rev, pops })
}

fn is_nan_or_unsupported(v: F80) -> bool {
    matches!(v.class(), Class::QNaN | Class::SNaN | Class::Unsupported)
}

/// Compute `dst = dst op src` (or reversed) into ST(`d`), with optional pop.
fn arith(fx: &mut Fx, ao: ArithOp, d: usize, a: F80, b: F80, load_flags: u16) {
    let ArithOp { op, rev, pops } = ao;
    let (x, y) = if rev { (b, a) } else { (a, b) };
    let ou = (unmasked(fx, OE) != 0, unmasked(fx, UE) != 0);
    let mut r = f80::arith(op, x, y, pc(fx), rc(fx), ou);
    // A denormal memory operand is reported unless NaNs decide the result
    // or the division is by zero.
    if !(is_nan_or_unsupported(a) || is_nan_or_unsupported(b) || r.flags & ZE != 0) {
        r.flags |= load_flags;
    }
    if blocked(fx, r.flags) {
        status(fx, r.flags & PRE, false);
        return;
    }
    put(fx, d, r.v);
    if pops {
        pop(fx);
    }
    status(fx, r.flags, r.flags & PE != 0 && r.up);
}

/// Condition codes of a comparison in FSW (C3, C2, C0).
fn cmp_cc(o: Option<std::cmp::Ordering>) -> u16 {
    use std::cmp::Ordering;
    match o {
        None => C3 | C2 | C0,
        Some(Ordering::Less) => C0,
        Some(Ordering::Equal) => C3,
        Some(Ordering::Greater) => 0,
    }
}

/// The full tag word (two bits per physical register: valid, zero,
/// special, empty) derived from the abridged tags and the contents.
fn full_tags(fx: &Fx) -> u16 {
    let mut tw = 0u16;
    for p in 0..8 {
        let i = (p + 8 - top(fx)) & 7;
        let t = if fx[4] >> p & 1 == 0 {
            3
        } else {
            match get(fx, i).class() {
                Class::Normal => 0,
                Class::Zero => 1,
                _ => 2,
            }
        };
        tw |= t << (2 * p);
    }
    tw
}

/// The 28-byte protected-mode environment (32-bit operand size). FIP, FOP
/// and FDP are not kept (stored as 0); reserved halves read 0xffff.
fn env_image(fx: &Fx) -> [u8; 28] {
    let mut e = [0u8; 28];
    let dw = |v: u16| (0xffff_0000 | u32::from(v)).to_le_bytes();
    e[0..4].copy_from_slice(&dw(fcw(fx)));
    e[4..8].copy_from_slice(&dw(fsw(fx)));
    e[8..12].copy_from_slice(&dw(full_tags(fx)));
    e[24..28].copy_from_slice(&dw(0));
    e
}

/// Load FCW, FSW and the tags (empty = 11) from an environment image.
fn load_env(fx: &mut Fx, e: &[u8]) {
    let w = |o: usize| u16::from_le_bytes([e[o], e[o + 1]]);
    let (cw, sw, tw) = (w(0), w(4), w(8));
    fx[0..2].copy_from_slice(&fcw_value(cw).to_le_bytes());
    load_fsw(fx, sw);
    let mut ab = 0u8;
    for p in 0..8 {
        if (tw >> (2 * p)) & 3 != 3 {
            ab |= 1 << p;
        }
    }
    fx[4] = ab;
    fx[6..24].fill(0);
    update_es(fx);
}

/// Whether an instruction group ran an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ran {
    /// Not an instruction of this group.
    No,
    /// Executed (or faulted, through the `Err` path).
    Yes,
}

fn exec_inner(cpu: &mut Cpu<'_>, ins: &Instruction, m: M) -> Result<(), Stop> {
    let is_mem = ins.op_count() > 0 && ins.op0_kind() == OpKind::Memory;
    if control(cpu, ins, m, is_mem)? == Ran::Yes
        || load_store(cpu, ins, m)? == Ran::Yes
        || stack_unary(cpu, ins, m)? == Ran::Yes
        || compare(cpu, ins, m, is_mem)? == Ran::Yes
    {
        return Ok(());
    }
    arith_insn(cpu, ins, m, is_mem)
}

/// Control and environment: `wait`/`fnop` and the obsolete controls,
/// `finit`, `fldcw`/`fstcw`, `fstsw`, `fstenv`/`fldenv`, `fsave`/`frstor`,
/// `fclex`.
fn control(cpu: &mut Cpu<'_>, ins: &Instruction, m: M, is_mem: bool) -> Result<Ran, Stop> {
    match m {
        // The 8087/80287 interrupt-enable and protected-mode controls do
        // nothing on the 80387 and later.
        M::Wait | M::Fnop | M::Fneni | M::Feni | M::Fndisi | M::Fdisi | M::Fnsetpm | M::Fsetpm => {}
        M::Fninit | M::Finit => {
            let fx = &mut cpu.st.fx.0;
            fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
            load_fsw(fx, 0);
            fx[4] = 0;
            fx[6..24].fill(0);
        }
        M::Fldcw => {
            let (a, ss) = mem_ea(cpu, ins);
            let v = cpu.rd(a, 2, ss)? as u16;
            let fx = &mut cpu.st.fx.0;
            fx[0..2].copy_from_slice(&fcw_value(v).to_le_bytes());
            update_es(fx);
        }
        M::Fnstcw | M::Fstcw => {
            let (a, ss) = mem_ea(cpu, ins);
            let v = fcw(&cpu.st.fx.0);
            cpu.wr(a, 2, u64::from(v), ss)?;
        }
        M::Fnstsw | M::Fstsw => {
            let v = fsw(&cpu.st.fx.0);
            if is_mem {
                let (a, ss) = mem_ea(cpu, ins);
                cpu.wr(a, 2, u64::from(v), ss)?;
            } else {
                setr(cpu.st, 0, 2, u64::from(v));
            }
        }
        // Only the 32-bit operand-size layouts (28/108 bytes).
        M::Fnstenv | M::Fstenv | M::Fldenv | M::Fnsave | M::Fsave | M::Frstor
            if !matches!(mem_bytes(ins), 28 | 108) =>
        {
            return Err(Stop::Fault(Fault::ud()));
        }
        M::Fnstenv | M::Fstenv | M::Fnsave | M::Fsave => {
            let (a, ss) = mem_ea(cpu, ins);
            let fx = &cpu.st.fx.0;
            let env = env_image(fx);
            if matches!(m, M::Fnsave | M::Fsave) {
                let mut img = [0u8; 108];
                img[..28].copy_from_slice(&env);
                for i in 0..8 {
                    img[28 + 10 * i..38 + 10 * i].copy_from_slice(&get(fx, i).to_bytes());
                }
                cpu.wr_bytes(a, &img, ss)?;
                let fx = &mut cpu.st.fx.0;
                fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
                load_fsw(fx, 0);
                fx[4] = 0;
                fx[6..24].fill(0);
            } else {
                cpu.wr_bytes(a, &env, ss)?;
                // Then every exception is masked.
                let fx = &mut cpu.st.fx.0;
                let cw = fcw(fx) | 0x3f;
                fx[0..2].copy_from_slice(&cw.to_le_bytes());
                update_es(fx);
            }
        }
        M::Fldenv | M::Frstor => {
            let (a, ss) = mem_ea(cpu, ins);
            let mut img = [0u8; 108];
            let n = if m == M::Frstor { 108 } else { 28 };
            cpu.rd_bytes(a, &mut img[..n], ss)?;
            let fx = &mut cpu.st.fx.0;
            load_env(fx, &img[..28]);
            if m == M::Frstor {
                // The registers, in stack order of the loaded TOP.
                for i in 0..8 {
                    let o = REGS + 16 * i;
                    fx[o..o + 10].copy_from_slice(&img[28 + 10 * i..38 + 10 * i]);
                    fx[o + 10..o + 16].fill(0);
                }
            }
        }
        M::Fnclex | M::Fclex => {
            let fx = &mut cpu.st.fx.0;
            let s = fsw(fx) & !0x80ff;
            set_fsw(fx, s);
        }
        _ => return Ok(Ran::No),
    }
    Ok(Ran::Yes)
}

/// Loads and stores: the constants, `fld`/`fild`, `fst(p)`, `fist(p)`/`fisttp`,
/// `fxch`.
fn load_store(cpu: &mut Cpu<'_>, ins: &Instruction, m: M) -> Result<Ran, Stop> {
    match m {
        M::Fldpi | M::Fldl2e | M::Fldl2t | M::Fldlg2 | M::Fldln2 => {
            let fx = &mut cpu.st.fx.0;
            // The round-to-nearest 64-bit significands; the constants are
            // held to more bits, so directed rounding may take one off (or,
            // for log2(10), add one).
            let (se, m, adj): (u16, u64, i8) = match m {
                M::Fldpi => (0x4000, 0xc90f_daa2_2168_c235, -1),
                M::Fldl2e => (0x3fff, 0xb8aa_3b29_5c17_f0bc, -1),
                M::Fldl2t => (0x4000, 0xd49a_784b_cd1b_8afe, 1),
                M::Fldlg2 => (0x3ffd, 0x9a20_9a84_fbcf_f799, -1),
                _ => (0x3ffe, 0xb172_17f7_d1cf_79ac, -1),
            };
            let r = rc(fx);
            let m = match (adj, r) {
                (-1, 1 | 3) => m - 1,
                (1, 2) => m + 1,
                _ => m,
            };
            push_value(
                fx,
                f80::Res {
                    v: F80 { se, m },
                    flags: 0,
                    up: false,
                },
            );
        }
        M::Fld | M::Fild | M::Fld1 | M::Fldz => {
            let r = if let Some(i) = sti(ins, 0) {
                let fx = &mut cpu.st.fx.0;
                if !valid(fx, i) {
                    // Underflow on the source; the masked response pushes
                    // the indefinite (if there is room).
                    if valid(fx, 7) {
                        push_value(
                            fx,
                            f80::Res {
                                v: F80::INDEF,
                                flags: 0,
                                up: false,
                            },
                        );
                        return Ok(Ran::Yes);
                    }
                    if underflow(fx) {
                        push(fx, F80::INDEF);
                    }
                    return Ok(Ran::Yes);
                }
                f80::Res {
                    v: get(fx, i),
                    flags: 0,
                    up: false,
                }
            } else if m == M::Fld1 || m == M::Fldz {
                f80::Res {
                    v: if m == M::Fld1 { F80::ONE } else { F80::ZERO },
                    flags: 0,
                    up: false,
                }
            } else {
                read_mem_value(cpu, ins, m == M::Fild, true)?
            };
            push_value(&mut cpu.st.fx.0, r);
        }
        M::Fst | M::Fstp => {
            let pops = m == M::Fstp;
            if let Some(i) = sti(ins, 0) {
                let fx = &mut cpu.st.fx.0;
                if !valid(fx, 0) {
                    if underflow(fx) {
                        put(fx, i, F80::INDEF);
                        if pops {
                            pop(fx);
                        }
                    }
                    return Ok(Ran::Yes);
                }
                let v = get(fx, 0);
                put(fx, i, v);
                if pops {
                    pop(fx);
                }
                status(fx, 0, false);
                return Ok(Ran::Yes);
            }
            let (a, ss) = mem_ea(cpu, ins);
            let n = mem_bytes(ins);
            let fx = &cpu.st.fx.0;
            let empty = !valid(fx, 0);
            let v = get(fx, 0);
            let (bits, flags, up) = if empty {
                let b = match n {
                    4 => f80::indef_ieee(F32),
                    8 => f80::indef_ieee(F64),
                    _ => 0,
                };
                (b, IE | FSW_SF, false)
            } else {
                match n {
                    4 | 8 => {
                        let f = if n == 4 { F32 } else { F64 };
                        let mut r = f80::to_ieee(v, f, rc(fx));
                        if unmasked(fx, UE) != 0 && f80::tiny_in(v, f, rc(fx)) {
                            r.flags |= UE;
                        }
                        (r.v, r.flags, r.up)
                    }
                    _ => (0, 0, false),
                }
            };
            // Unmasked invalid/denormal/overflow/underflow: nothing stored.
            if unmasked(fx, flags & (IE | DE | OE | UE)) != 0 {
                // (An unmasked overflow/underflow reports no inexact.)
                let flags = if unmasked(fx, flags & (OE | UE)) != 0 {
                    flags & !PE
                } else {
                    flags & PRE
                };
                status(&mut cpu.st.fx.0, flags, false);
                return Ok(Ran::Yes);
            }
            match n {
                4 | 8 => cpu.wr(a, n, bits, ss)?,
                _ => {
                    let val = if empty { F80::INDEF } else { v };
                    cpu.wr_bytes(a, &val.to_bytes(), ss)?;
                }
            }
            let fx = &mut cpu.st.fx.0;
            if pops {
                pop(fx);
            }
            status(fx, flags, flags & PE != 0 && up);
        }
        M::Fist | M::Fistp | M::Fisttp => {
            let (a, ss) = mem_ea(cpu, ins);
            let n = mem_bytes(ins);
            let fx = &cpu.st.fx.0;
            let bits = u32::from(n) * 8;
            let indef = 1u64 << (bits - 1);
            let (val, flags, up) = if valid(fx, 0) {
                let mode = if m == M::Fisttp { 3 } else { rc(fx) };
                let r = f80::to_int(get(fx, 0), bits, mode);
                match r.v {
                    Some(i) => (i as u64, r.flags, r.up),
                    None => (indef, r.flags, false),
                }
            } else {
                (indef, IE | FSW_SF, false)
            };
            if unmasked(fx, flags & IE) != 0 {
                status(&mut cpu.st.fx.0, flags, false);
                return Ok(Ran::Yes);
            }
            cpu.wr(a, n, val & super::flags::mask(n), ss)?;
            let fx = &mut cpu.st.fx.0;
            if m != M::Fist {
                pop(fx);
            }
            status(fx, flags, flags & PE != 0 && up);
        }
        M::Fxch => {
            let i = sti(ins, 1).or_else(|| sti(ins, 0)).unwrap_or(1);
            let fx = &mut cpu.st.fx.0;
            let (v0, vi) = (valid(fx, 0), valid(fx, i));
            if !(v0 && vi) {
                if !underflow(fx) {
                    return Ok(Ran::Yes);
                }
            } else {
                status(fx, 0, false);
            }
            let a = if v0 { get(fx, 0) } else { F80::INDEF };
            let b = if vi { get(fx, i) } else { F80::INDEF };
            put(fx, 0, b);
            put(fx, i, a);
        }
        _ => return Ok(Ran::No),
    }
    Ok(Ran::Yes)
}

/// Register-stack operations on ST(0) or the stack itself: `fchs`/`fabs`,
/// `ffree(p)`, `fincstp`/`fdecstp`, `fsqrt`/`frndint`, `fcmovcc`.
fn stack_unary(cpu: &mut Cpu<'_>, ins: &Instruction, m: M) -> Result<Ran, Stop> {
    match m {
        M::Fchs | M::Fabs => {
            let fx = &mut cpu.st.fx.0;
            if !valid(fx, 0) {
                if underflow(fx) {
                    put(fx, 0, F80::INDEF);
                }
                return Ok(Ran::Yes);
            }
            let v = get(fx, 0);
            let r = if m == M::Fchs {
                v.with_sign(!v.neg())
            } else {
                v.with_sign(false)
            };
            put(fx, 0, r);
            status(fx, 0, false);
        }
        M::Ffree | M::Ffreep => {
            let i = sti(ins, 0).unwrap_or(0);
            set_tag(&mut cpu.st.fx.0, i, false);
            if m == M::Ffreep {
                pop(&mut cpu.st.fx.0);
            }
        }
        M::Fincstp | M::Fdecstp => {
            let fx = &mut cpu.st.fx.0;
            let t = top(fx);
            if m == M::Fincstp {
                set_top(fx, t + 1);
                fx[REGS..REGS + 128].rotate_left(16);
            } else {
                set_top(fx, t.wrapping_sub(1));
                fx[REGS..REGS + 128].rotate_right(16);
            }
            status(fx, 0, false);
        }
        M::Fsqrt | M::Frndint => {
            let fx = &mut cpu.st.fx.0;
            if !valid(fx, 0) {
                if underflow(fx) {
                    put(fx, 0, F80::INDEF);
                }
                return Ok(Ran::Yes);
            }
            let v = get(fx, 0);
            let r = if m == M::Fsqrt {
                f80::sqrt(v, pc(fx), rc(fx))
            } else {
                f80::round_int(v, rc(fx))
            };
            if blocked(fx, r.flags) {
                status(fx, r.flags & PRE, false);
                return Ok(Ran::Yes);
            }
            put(fx, 0, r.v);
            status(fx, r.flags, r.flags & PE != 0 && r.up);
        }
        M::Fcmovb
        | M::Fcmove
        | M::Fcmovbe
        | M::Fcmovu
        | M::Fcmovnb
        | M::Fcmovne
        | M::Fcmovnbe
        | M::Fcmovnu => {
            let i = sti(ins, 1).unwrap_or(0);
            let cc = match m {
                M::Fcmovb => 2,
                M::Fcmove => 4,
                M::Fcmovbe => 6,
                M::Fcmovu => 10,
                M::Fcmovnb => 3,
                M::Fcmovne => 5,
                M::Fcmovnbe => 7,
                _ => 11,
            };
            let take = cpu.c.cond(cc);
            let fx = &mut cpu.st.fx.0;
            if !(valid(fx, 0) && valid(fx, i)) {
                if underflow(fx) {
                    // The masked response loads the indefinite into ST(0).
                    put(fx, 0, F80::INDEF);
                }
                return Ok(Ran::Yes);
            }
            if take {
                let v = get(fx, i);
                put(fx, 0, v);
            }
            status(fx, 0, false);
        }
        _ => return Ok(Ran::No),
    }
    Ok(Ran::Yes)
}

/// Compares and classification: `fcom*`/`fucom*`/`ficom*`/`ftst`,
/// `fcomi*`/`fucomi*` (to RFLAGS), `fxam`.
fn compare(cpu: &mut Cpu<'_>, ins: &Instruction, m: M, is_mem: bool) -> Result<Ran, Stop> {
    match m {
        M::Fcom
        | M::Fcomp
        | M::Fcompp
        | M::Fucom
        | M::Fucomp
        | M::Fucompp
        | M::Ficom
        | M::Ficomp
        | M::Ftst
        | M::Fcomi
        | M::Fcomip
        | M::Fucomi
        | M::Fucomip => {
            let pops = match m {
                M::Fcomp | M::Fucomp | M::Ficomp | M::Fcomip | M::Fucomip => 1,
                M::Fcompp | M::Fucompp => 2,
                _ => 0,
            };
            let unordered_ok = matches!(
                m,
                M::Fucom | M::Fucomp | M::Fucompp | M::Fucomi | M::Fucomip
            );
            let to_eflags = matches!(m, M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip);
            // The second operand.
            let (b, bflags, b_ok) = if is_mem {
                let r = read_mem_value(cpu, ins, m == M::Ficom || m == M::Ficomp, false)?;
                (r.v, r.flags, true)
            } else if m == M::Ftst {
                (F80::ZERO, 0, true)
            } else {
                let i = sti(ins, 1)
                    .filter(|_| ins.op_count() > 1)
                    .or_else(|| sti(ins, 0).filter(|&i| i != 0 || ins.op_count() == 1))
                    .unwrap_or(1);
                let fx = &cpu.st.fx.0;
                (get(fx, i), 0, valid(fx, i))
            };
            let fx = &mut cpu.st.fx.0;
            let (ord, flags) = if valid(fx, 0) && b_ok {
                let a = get(fx, 0);
                let mut r = f80::compare(a, b, !unordered_ok);
                if !(is_nan_or_unsupported(a) || is_nan_or_unsupported(b)) {
                    r.flags |= bflags;
                }
                (r.v, r.flags)
            } else {
                (None, IE | FSW_SF)
            };
            // The condition codes are written even when an unmasked
            // exception suppresses the pops.
            if to_eflags {
                let z = matches!(ord, None | Some(std::cmp::Ordering::Equal));
                let p = ord.is_none();
                let c = matches!(ord, None | Some(std::cmp::Ordering::Less));
                let mut f = cpu.c.flags() & !(CF | PF | ZF | OF | RF_SF | AF);
                f |= if z { ZF } else { 0 } | if p { PF } else { 0 } | if c { CF } else { 0 };
                cpu.c.set_flags(f);
            } else {
                let s = (fsw(fx) & !(C3 | C2 | C0)) | cmp_cc(ord);
                set_fsw(fx, s);
            }
            if !blocked(fx, flags) {
                for _ in 0..pops {
                    pop(fx);
                }
            }
            status(fx, flags, false);
        }
        M::Fxam => {
            let fx = &mut cpu.st.fx.0;
            let v = get(fx, 0);
            let cc = if valid(fx, 0) {
                match v.class() {
                    Class::Unsupported => 0,
                    Class::QNaN | Class::SNaN => C0,
                    Class::Normal => C2,
                    Class::Inf => C2 | C0,
                    Class::Zero => C3,
                    Class::Denormal => C3 | C2,
                }
            } else {
                C3 | C0
            };
            let s = (fsw(fx) & !(C3 | C2 | C1 | C0)) | cc | if v.neg() { C1 } else { 0 };
            set_fsw(fx, s);
        }
        _ => return Ok(Ran::No),
    }
    Ok(Ran::Yes)
}

/// The arithmetic instructions (`fadd`…`fdivr` in every form, [`arith_op`]);
/// anything else is #UD.
fn arith_insn(cpu: &mut Cpu<'_>, ins: &Instruction, m: M, is_mem: bool) -> Result<(), Stop> {
    let Some(ao) = arith_op(m) else {
        return Err(Stop::Fault(Fault::ud()));
    };
    if is_mem {
        let int = matches!(
            m,
            M::Fiadd | M::Fisub | M::Fisubr | M::Fimul | M::Fidiv | M::Fidivr
        );
        let r = read_mem_value(cpu, ins, int, false)?;
        let fx = &mut cpu.st.fx.0;
        if !valid(fx, 0) {
            if underflow(fx) {
                put(fx, 0, F80::INDEF);
            }
            return Ok(());
        }
        let a = get(fx, 0);
        arith(fx, ArithOp { pops: false, ..ao }, 0, a, r.v, r.flags);
    } else {
        // Two register operands: dst = op0, src = op1 (the `p`
        // forms without operands mean st(1), st(0)).
        let d = sti(ins, 0).unwrap_or(1);
        let s = if ins.op_count() > 1 {
            sti(ins, 1).unwrap_or(0)
        } else {
            0
        };
        let fx = &mut cpu.st.fx.0;
        if !(valid(fx, d) && valid(fx, s)) {
            if underflow(fx) {
                put(fx, d, F80::INDEF);
                if ao.pops {
                    pop(fx);
                }
            }
            return Ok(());
        }
        let (a, b) = (get(fx, d), get(fx, s));
        arith(fx, ao, d, a, b, 0);
    }
    Ok(())
}
