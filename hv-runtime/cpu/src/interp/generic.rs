//! The generic executor: general-purpose instructions without a specialised
//! micro-op run here from their stored (already decoded)
//! `iced_x86::Instruction`.
//!
//! [`exec`] checks the `lock` prefix and offers the instruction to one
//! function per instruction group (`data`, `arith`, `exchange`, `muldiv`,
//! `bits`, `stack_flags`,
//! `control`, `string`, `system`); their mnemonics are disjoint. Anything
//! none of them takes is returned to `exec` (the block executor), which
//! tries SSE and x87. Operand access comes from `operand`, flag-setting
//! arithmetic from `alu`; this module uses no other executor.

use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

use super::alu::{alu_op, imul_op, rc_op, shd_op, shift_op};
use super::ctx::{Cpu, Stop};
use super::flags::{FOp, Lazy, mask, sext, sign_bit};
use super::mmu::{Acc, Fault, canonical};
use super::operand::{
    Loc, getr, ld, loc, mem_ea, op_size, rmw, seg_base, set_cf_only, set_status, set_zf, setr, st,
    trap,
};
use super::translate::{Uop, alu, prefetch_group_register_form, sh};
use crate::mem::MachineAddr;
use crate::model::Vendor;
use crate::state::rflags::{self, AF, CF, DF, IF, OF, PF, SF, ZF};
use crate::state::sreg;
use crate::{Exit, vector};

fn push(cpu: &mut Cpu<'_>, v: u64, sz: u8) -> Result<(), Stop> {
    let sp = cpu.st.gpr[4].wrapping_sub(u64::from(sz));
    cpu.wr(sp, sz, v, true)?;
    cpu.st.gpr[4] = sp;
    Ok(())
}

fn pop(cpu: &mut Cpu<'_>, sz: u8) -> Result<u64, Stop> {
    let sp = cpu.st.gpr[4];
    let v = cpu.rd(sp, sz, true)?;
    cpu.st.gpr[4] = sp.wrapping_add(u64::from(sz));
    Ok(v)
}

fn gp0<T>() -> Result<T, Stop> {
    Err(Stop::Fault(Fault::gp0()))
}

fn de<T>() -> Result<T, Stop> {
    Err(Stop::Fault(Fault::new(vector::DE, None)))
}

fn iopl(cpu: &Cpu<'_>) -> u64 {
    (cpu.c.rf & rflags::IOPL) >> 12
}

/// Bits `popf` may change at CPL 3.
fn popf_mask(cpu: &Cpu<'_>) -> u64 {
    let mut m = rflags::STATUS | rflags::TF | DF | rflags::NT | rflags::AC | rflags::ID;
    if iopl(cpu) == 3 {
        m |= IF;
    }
    m
}

/// What an instruction group did with an instruction.
#[derive(Clone, Copy, Debug)]
enum Flow {
    /// Not an instruction of this group.
    Pass,
    /// Retired; the block continues with the next instruction.
    Next,
    /// Retired; the block ends and execution continues at this address.
    Jump(u64),
}

impl From<Option<u64>> for Flow {
    fn from(t: Option<u64>) -> Self {
        t.map_or(Self::Next, Self::Jump)
    }
}

/// Execute `ins` if it is a general-purpose instruction: `None` when it is
/// not (the caller tries SSE, then x87); `Ok(Some(t))` ends the block at
/// `t`. A `lock` prefix where it is not allowed is #UD here, before any
/// other executor sees the instruction.
pub(crate) fn exec(
    cpu: &mut Cpu<'_>,
    ins: &Instruction,
    u: &Uop,
) -> Option<Result<Option<u64>, Stop>> {
    if ins.has_lock_prefix() && !lock_ok(ins) {
        return Some(Err(Stop::Fault(Fault::ud())));
    }
    match groups(cpu, ins, u) {
        Ok(Flow::Pass) if hint_nop(ins.code()) => Some(Ok(None)),
        Ok(Flow::Pass) => None,
        Ok(Flow::Next) => Some(Ok(None)),
        Ok(Flow::Jump(t)) => Some(Ok(Some(t))),
        Err(e) => Some(Err(e)),
    }
}

/// Send `ins` to its instruction group ([`group_of`]: one `match` on the
/// mnemonic, not a trial of each group).
fn groups(cpu: &mut Cpu<'_>, ins: &Instruction, u: &Uop) -> Result<Flow, Stop> {
    let m = ins.mnemonic();
    let next = u.next();
    match group_of(m) {
        Group::Data => data(cpu, ins, m),
        Group::Arith => arith(cpu, ins, m),
        Group::Exchange => exchange(cpu, ins, m),
        Group::Muldiv => muldiv(cpu, ins, m),
        Group::Bits => bits(cpu, ins, m),
        Group::StackFlags => stack_flags(cpu, ins, m, next),
        Group::Control => control(cpu, ins, m, next),
        Group::String => string(cpu, ins, m, u),
        Group::System => system(cpu, ins, m),
        Group::None => Ok(Flow::Pass),
    }
}

/// Which group executes `m` (the groups' mnemonics are disjoint; this is
/// their union, so an instruction reaches its group in one `match`).
fn group_of(m: Mnemonic) -> Group {
    use Mnemonic as M;
    match m {
        M::Bswap
        | M::Cbw
        | M::Cdq
        | M::Cdqe
        | M::Cmova
        | M::Cmovae
        | M::Cmovb
        | M::Cmovbe
        | M::Cmove
        | M::Cmovg
        | M::Cmovge
        | M::Cmovl
        | M::Cmovle
        | M::Cmovne
        | M::Cmovno
        | M::Cmovnp
        | M::Cmovns
        | M::Cmovo
        | M::Cmovp
        | M::Cmovs
        | M::Cqo
        | M::Cwd
        | M::Cwde
        | M::Lea
        | M::Mov
        | M::Movbe
        | M::Movnti
        | M::Movsx
        | M::Movsxd
        | M::Movzx
        | M::Seta
        | M::Setae
        | M::Setb
        | M::Setbe
        | M::Sete
        | M::Setg
        | M::Setge
        | M::Setl
        | M::Setle
        | M::Setne
        | M::Setno
        | M::Setnp
        | M::Setns
        | M::Seto
        | M::Setp
        | M::Sets
        | M::Xchg
        | M::Xlatb => Group::Data,
        M::Adc
        | M::Add
        | M::And
        | M::Cmp
        | M::Dec
        | M::Inc
        | M::Neg
        | M::Not
        | M::Or
        | M::Sbb
        | M::Sub
        | M::Test
        | M::Xor => Group::Arith,
        M::Cmpxchg | M::Cmpxchg16b | M::Cmpxchg8b | M::Xadd => Group::Exchange,
        M::Div | M::Idiv | M::Imul | M::Mul => Group::Muldiv,
        M::Andn
        | M::Bextr
        | M::Blsi
        | M::Blsmsk
        | M::Blsr
        | M::Bsf
        | M::Bsr
        | M::Bt
        | M::Btc
        | M::Btr
        | M::Bts
        | M::Bzhi
        | M::Lzcnt
        | M::Mulx
        | M::Pdep
        | M::Pext
        | M::Popcnt
        | M::Rcl
        | M::Rcr
        | M::Rol
        | M::Ror
        | M::Rorx
        | M::Sal
        | M::Sar
        | M::Sarx
        | M::Shl
        | M::Shld
        | M::Shlx
        | M::Shr
        | M::Shrd
        | M::Shrx
        | M::Tzcnt => Group::Bits,
        M::Clc
        | M::Cld
        | M::Cli
        | M::Cmc
        | M::Enter
        | M::Lahf
        | M::Leave
        | M::Pop
        | M::Popf
        | M::Popfq
        | M::Push
        | M::Pushf
        | M::Pushfq
        | M::Sahf
        | M::Stc
        | M::Std
        | M::Sti => Group::StackFlags,
        M::Call | M::Jecxz | M::Jmp | M::Jrcxz | M::Loop | M::Loope | M::Loopne | M::Ret => {
            Group::Control
        }
        M::Cmpsb
        | M::Cmpsd
        | M::Cmpsq
        | M::Cmpsw
        | M::Lodsb
        | M::Lodsd
        | M::Lodsq
        | M::Lodsw
        | M::Movsb
        | M::Movsd
        | M::Movsq
        | M::Movsw
        | M::Scasb
        | M::Scasd
        | M::Scasq
        | M::Scasw
        | M::Stosb
        | M::Stosd
        | M::Stosq
        | M::Stosw => Group::String,
        M::Clflush
        | M::Clflushopt
        | M::Clts
        | M::Cpuid
        | M::Endbr32
        | M::Endbr64
        | M::Hlt
        | M::In
        | M::Insb
        | M::Insd
        | M::Insw
        | M::Int
        | M::Int1
        | M::Int3
        | M::Invd
        | M::Invlpg
        | M::Invpcid
        | M::Iret
        | M::Iretd
        | M::Iretq
        | M::Lar
        | M::Lfence
        | M::Lfs
        | M::Lgdt
        | M::Lgs
        | M::Lidt
        | M::Lldt
        | M::Lmsw
        | M::Lsl
        | M::Lss
        | M::Ltr
        | M::Mfence
        | M::Monitor
        | M::Mwait
        | M::Nop
        | M::Out
        | M::Outsb
        | M::Outsd
        | M::Outsw
        | M::Pause
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw
        | M::Rdfsbase
        | M::Rdgsbase
        | M::Rdmsr
        | M::Rdpmc
        | M::Rdtsc
        | M::Rdtscp
        | M::Reservednop
        | M::Retf
        | M::Sfence
        | M::Sgdt
        | M::Sidt
        | M::Sldt
        | M::Smsw
        | M::Str
        | M::Swapgs
        | M::Syscall
        | M::Sysenter
        | M::Sysexit
        | M::Sysexitq
        | M::Sysret
        | M::Sysretq
        | M::Ud0
        | M::Ud1
        | M::Ud2
        | M::Verr
        | M::Verw
        | M::Wbinvd
        | M::Wbnoinvd
        | M::Wrfsbase
        | M::Wrgsbase
        | M::Wrmsr
        | M::Xsetbv => Group::System,
        _ => Group::None,
    }
}

/// The instruction groups of [`groups`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Data,
    Arith,
    Exchange,
    Muldiv,
    Bits,
    StackFlags,
    Control,
    String,
    System,
    None,
}

/// Data movement: `mov` (with segment registers), `movnti`, `movzx`/`movsx`,
/// `lea`, `xchg`, the accumulator sign extensions, `xlat`, `cmovcc`,
/// `setcc` and `bswap`.
fn data(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Flow, Stop> {
    match m {
        Mnemonic::Mov => {
            let (k0, k1) = (ins.op0_kind(), ins.op1_kind());
            let r0 = ins.op0_register();
            let r1 = ins.op1_register();
            if k0 == OpKind::Register && (r0.is_cr() || r0.is_dr()) {
                return gp0();
            }
            if k1 == OpKind::Register && (r1.is_cr() || r1.is_dr()) {
                return gp0();
            }
            if k0 == OpKind::Register && r0.is_segment_register() {
                let l = loc(cpu, ins, 1)?;
                let sel = ld(cpu, l, 2)? as u16;
                let idx = sreg_index(r0).ok_or(Stop::Fault(Fault::ud()))?;
                if idx == sreg::CS {
                    return Err(Stop::Fault(Fault::ud()));
                }
                super::seg::load_segment(cpu, idx, sel)?;
                return Ok(Flow::Next);
            }
            if k1 == OpKind::Register && r1.is_segment_register() {
                let idx = sreg_index(r1).ok_or(Stop::Fault(Fault::ud()))?;
                let sel = u64::from(cpu.st.seg[idx].selector);
                let l = loc(cpu, ins, 0)?;
                let sz = if matches!(l, Loc::Mem(..)) {
                    2
                } else {
                    op_size(ins, 0)
                };
                st(cpu, l, sz, sel)?;
                return Ok(Flow::Next);
            }
            let sz = op_size(ins, 0);
            let v = {
                let l = loc(cpu, ins, 1)?;
                ld(cpu, l, sz)?
            };
            let l = loc(cpu, ins, 0)?;
            st(cpu, l, sz, v)?;
        }
        Mnemonic::Movnti | Mnemonic::Movbe if m == Mnemonic::Movnti => {
            let sz = op_size(ins, 0);
            let v = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            st(cpu, loc(cpu, ins, 0)?, sz, v)?;
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            let dsz = op_size(ins, 0);
            let ssz = op_size(ins, 1);
            let mut v = ld(cpu, loc(cpu, ins, 1)?, ssz)?;
            if m != Mnemonic::Movzx {
                v = sext(v, ssz) as u64;
            }
            st(cpu, loc(cpu, ins, 0)?, dsz, v)?;
        }
        Mnemonic::Lea => {
            let (a, _) = mem_ea(cpu, ins);
            let a = a.wrapping_sub(seg_base(cpu, ins.memory_segment()));
            st(cpu, loc(cpu, ins, 0)?, op_size(ins, 0), a)?;
        }
        Mnemonic::Xchg => {
            let sz = op_size(ins, 0);
            let l1 = loc(cpu, ins, 1)?;
            let b = ld(cpu, l1, sz)?;
            let l0 = loc(cpu, ins, 0)?;
            // A memory operand makes xchg implicitly locked.
            let lock = matches!(l0, Loc::Mem(..));
            let mut old = 0;
            rmw(cpu, l0, sz, lock, true, |_, a| {
                old = a;
                Some(b)
            })?;
            if let Loc::Mem(..) = l0 {
                st(cpu, l1, sz, old)?;
            } else {
                st(cpu, l1, sz, old)?;
            }
        }
        Mnemonic::Cbw => setr(cpu.st, 0, 2, sext(cpu.st.gpr[0], 1) as u64),
        Mnemonic::Cwde => setr(cpu.st, 0, 4, sext(cpu.st.gpr[0], 2) as u64),
        Mnemonic::Cdqe => setr(cpu.st, 0, 8, sext(cpu.st.gpr[0], 4) as u64),
        Mnemonic::Cwd => setr(cpu.st, 2, 2, (sext(cpu.st.gpr[0], 2) >> 16) as u64),
        Mnemonic::Cdq => setr(cpu.st, 2, 4, (sext(cpu.st.gpr[0], 4) >> 32) as u64),
        Mnemonic::Cqo => setr(cpu.st, 2, 8, ((cpu.st.gpr[0] as i64) >> 63) as u64),
        Mnemonic::Xlatb => {
            let base = cpu.st.gpr[3].wrapping_add(cpu.st.gpr[0] & 0xff);
            let a = base.wrapping_add(seg_base(cpu, ins.memory_segment()));
            let v = cpu.rd(a, 1, false)?;
            setr(cpu.st, 0, 1, v);
        }
        Mnemonic::Cmovo
        | Mnemonic::Cmovno
        | Mnemonic::Cmovb
        | Mnemonic::Cmovae
        | Mnemonic::Cmove
        | Mnemonic::Cmovne
        | Mnemonic::Cmovbe
        | Mnemonic::Cmova
        | Mnemonic::Cmovs
        | Mnemonic::Cmovns
        | Mnemonic::Cmovp
        | Mnemonic::Cmovnp
        | Mnemonic::Cmovl
        | Mnemonic::Cmovge
        | Mnemonic::Cmovle
        | Mnemonic::Cmovg => {
            let sz = op_size(ins, 0);
            let v = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            let cc = (ins.condition_code() as u8).wrapping_sub(1) & 15;
            let l = loc(cpu, ins, 0)?;
            let cur = ld(cpu, l, sz)?;
            st(cpu, l, sz, if cpu.c.cond(cc) { v } else { cur })?;
        }
        Mnemonic::Seto
        | Mnemonic::Setno
        | Mnemonic::Setb
        | Mnemonic::Setae
        | Mnemonic::Sete
        | Mnemonic::Setne
        | Mnemonic::Setbe
        | Mnemonic::Seta
        | Mnemonic::Sets
        | Mnemonic::Setns
        | Mnemonic::Setp
        | Mnemonic::Setnp
        | Mnemonic::Setl
        | Mnemonic::Setge
        | Mnemonic::Setle
        | Mnemonic::Setg => {
            let cc = (ins.condition_code() as u8).wrapping_sub(1) & 15;
            let v = u64::from(cpu.c.cond(cc));
            st(cpu, loc(cpu, ins, 0)?, 1, v)?;
        }
        Mnemonic::Bswap => {
            let sz = op_size(ins, 0);
            let l = loc(cpu, ins, 0)?;
            let v = ld(cpu, l, sz)?;
            let r = match sz {
                8 => v.swap_bytes(),
                4 => u64::from((v as u32).swap_bytes()),
                _ => 0, // bswap r16: undefined; hardware gives 0
            };
            st(cpu, l, sz, r)?;
        }
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

/// Integer arithmetic: the ALU group and `inc`/`dec`/`not`/`neg`.
fn arith(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Flow, Stop> {
    let lock = ins.has_lock_prefix();
    match m {
        Mnemonic::Add
        | Mnemonic::Or
        | Mnemonic::Adc
        | Mnemonic::Sbb
        | Mnemonic::And
        | Mnemonic::Sub
        | Mnemonic::Xor
        | Mnemonic::Cmp
        | Mnemonic::Test => {
            let op = match m {
                Mnemonic::Add => alu::ADD,
                Mnemonic::Or => alu::OR,
                Mnemonic::Adc => alu::ADC,
                Mnemonic::Sbb => alu::SBB,
                Mnemonic::And => alu::AND,
                Mnemonic::Sub => alu::SUB,
                Mnemonic::Xor => alu::XOR,
                Mnemonic::Cmp => alu::CMP,
                _ => alu::TEST,
            };
            let sz = op_size(ins, 0);
            let b = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            let l = loc(cpu, ins, 0)?;
            rmw(cpu, l, sz, lock, op < alu::CMP, |cpu, a| {
                let r = alu_op(cpu.c, op, sz, a, b);
                (op < alu::CMP).then_some(r)
            })?;
        }
        Mnemonic::Inc | Mnemonic::Dec | Mnemonic::Not | Mnemonic::Neg => {
            let sz = op_size(ins, 0);
            let l = loc(cpu, ins, 0)?;
            rmw(cpu, l, sz, lock, true, |cpu, a| {
                let r;
                match m {
                    Mnemonic::Not => return Some(!a),
                    Mnemonic::Neg => {
                        r = a.wrapping_neg() & mask(sz);
                        cpu.c.lz = Lazy {
                            op: FOp::Neg,
                            sz,
                            res: r,
                            a,
                            b: 0,
                            aux: 0,
                        };
                    }
                    _ => {
                        let cf = cpu.c.cf();
                        let inc = m == Mnemonic::Inc;
                        r = if inc {
                            a.wrapping_add(1)
                        } else {
                            a.wrapping_sub(1)
                        } & mask(sz);
                        cpu.c.lz = Lazy {
                            op: if inc { FOp::Inc } else { FOp::Dec },
                            sz,
                            res: r,
                            a,
                            b: 1,
                            aux: cf,
                        };
                    }
                }
                Some(r)
            })?;
        }
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

/// Atomic-capable exchanges: `xadd`, `cmpxchg`, `cmpxchg8b`/`cmpxchg16b`.
fn exchange(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Flow, Stop> {
    let lock = ins.has_lock_prefix();
    match m {
        Mnemonic::Xadd => {
            let sz = op_size(ins, 0);
            let l1 = loc(cpu, ins, 1)?;
            let b = ld(cpu, l1, sz)?;
            let l0 = loc(cpu, ins, 0)?;
            if let Loc::Reg(_) = l0 {
                // TEMP = SRC + DEST; SRC = DEST; DEST = TEMP: with the same
                // register twice the sum wins.
                let a = ld(cpu, l0, sz)?;
                let r = alu_op(cpu.c, alu::ADD, sz, a, b);
                st(cpu, l1, sz, a)?;
                st(cpu, l0, sz, r)?;
            } else {
                let mut old = 0;
                rmw(cpu, l0, sz, lock, true, |cpu, a| {
                    old = a;
                    Some(alu_op(cpu.c, alu::ADD, sz, a, b))
                })?;
                st(cpu, l1, sz, old)?;
            }
        }
        Mnemonic::Cmpxchg => {
            let sz = op_size(ins, 0);
            let src = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            let acc = getr(cpu.st, 0, sz);
            let l0 = loc(cpu, ins, 0)?;
            let mut old = 0;
            let is_mem = matches!(l0, Loc::Mem(..));
            rmw(cpu, l0, sz, lock, true, |cpu, a| {
                old = a;
                alu_op(cpu.c, alu::CMP, sz, acc, a);
                if a == acc {
                    Some(src)
                } else if is_mem {
                    // The destination is written back unchanged.
                    Some(a)
                } else {
                    None
                }
            })?;
            if old != acc {
                setr(cpu.st, 0, sz, old);
            }
        }
        Mnemonic::Cmpxchg8b | Mnemonic::Cmpxchg16b => {
            let (a, ss) = mem_ea(cpu, ins);
            let wide = m == Mnemonic::Cmpxchg16b;
            if wide {
                if a & 15 != 0 {
                    return gp0();
                }
                let ma = cpu.atomic_addr(a, ss)?;
                let cur_page_ok = (a & 0xfff) + 16 <= 4096;
                let exp = (u128::from(cpu.st.gpr[2]) << 64) | u128::from(cpu.st.gpr[0]);
                let new = (u128::from(cpu.st.gpr[1]) << 64) | u128::from(cpu.st.gpr[3]);
                let old = if cur_page_ok {
                    cpu.mem
                        .cmpxchg_u128(MachineAddr(ma), exp, new)
                        .map_err(|_| Stop::Fault(Fault::gp0()))?
                } else {
                    return gp0();
                };
                let eq = old == exp;
                set_zf(cpu, eq);
                if !eq {
                    cpu.st.gpr[0] = old as u64;
                    cpu.st.gpr[2] = (old >> 64) as u64;
                }
            } else {
                let exp = (cpu.st.gpr[2] << 32) | (cpu.st.gpr[0] & 0xffff_ffff);
                let new = (cpu.st.gpr[1] << 32) | (cpu.st.gpr[3] & 0xffff_ffff);
                let mut old = 0;
                rmw(cpu, Loc::Mem(a, ss), 8, true, true, |_, v| {
                    old = v;
                    Some(if v == exp { new } else { v })
                })?;
                let eq = old == exp;
                set_zf(cpu, eq);
                if !eq {
                    cpu.st.gpr[0] = old & 0xffff_ffff;
                    cpu.st.gpr[2] = old >> 32;
                }
            }
        }
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

/// Multiply and divide: one-operand `mul`/`imul`, two- and three-operand
/// `imul`, `div`/`idiv`.
fn muldiv(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Flow, Stop> {
    match m {
        Mnemonic::Mul | Mnemonic::Imul if ins.op_count() == 1 => {
            let sz = op_size(ins, 0);
            let src = ld(cpu, loc(cpu, ins, 0)?, sz)?;
            let a = getr(cpu.st, 0, sz);
            let bits = 8 * u32::from(sz);
            let (lo, hi, ovf) = if m == Mnemonic::Mul {
                let p = u128::from(a) * u128::from(src);
                let lo = (p as u64) & mask(sz);
                let hi = ((p >> bits) as u64) & mask(sz);
                (lo, hi, hi != 0)
            } else {
                let p = i128::from(sext(a, sz)) * i128::from(sext(src, sz));
                let lo = (p as u64) & mask(sz);
                let hi = ((p >> bits) as u64) & mask(sz);
                (lo, hi, i128::from(sext(lo, sz)) != p)
            };
            if sz == 1 {
                setr(cpu.st, 0, 2, (hi << 8) | lo);
            } else {
                setr(cpu.st, 0, sz, lo);
                setr(cpu.st, 2, sz, hi);
            }
            cpu.c.lz = Lazy {
                op: FOp::Mul,
                sz,
                res: lo,
                a,
                b: src,
                aux: u64::from(ovf),
            };
        }
        Mnemonic::Imul => {
            let sz = op_size(ins, 0);
            let (a, b) = if ins.op_count() == 2 {
                (
                    ld(cpu, loc(cpu, ins, 0)?, sz)?,
                    ld(cpu, loc(cpu, ins, 1)?, sz)?,
                )
            } else {
                (ld(cpu, loc(cpu, ins, 1)?, sz)?, ins.immediate(2))
            };
            let r = imul_op(cpu.c, sz, a, b);
            st(cpu, loc(cpu, ins, 0)?, sz, r)?;
        }
        Mnemonic::Div | Mnemonic::Idiv => {
            let sz = op_size(ins, 0);
            let d = ld(cpu, loc(cpu, ins, 0)?, sz)?;
            if d == 0 {
                return de();
            }
            let bits = 8 * u32::from(sz);
            let (lo, hi) = if sz == 1 {
                (cpu.st.gpr[0] & 0xff, (cpu.st.gpr[0] >> 8) & 0xff)
            } else {
                (getr(cpu.st, 0, sz), getr(cpu.st, 2, sz))
            };
            let dividend = (u128::from(hi) << bits) | u128::from(lo);
            let (q, r) = if m == Mnemonic::Div {
                let q = dividend / u128::from(d);
                if q > u128::from(mask(sz)) {
                    return de();
                }
                (q as u64, (dividend % u128::from(d)) as u64)
            } else {
                // Sign-extend the 2*bits dividend.
                let sh = 128 - 2 * bits;
                let n = ((dividend << sh) as i128) >> sh;
                let dv = i128::from(sext(d, sz));
                let Some(q) = n.checked_div(dv) else {
                    return de();
                };
                let r = n.checked_rem(dv).unwrap_or(0);
                let lim = 1i128 << (bits - 1);
                if q >= lim || q < -lim {
                    return de();
                }
                ((q as u64) & mask(sz), (r as u64) & mask(sz))
            };
            if sz == 1 {
                setr(cpu.st, 0, 2, (r << 8) | q);
            } else {
                setr(cpu.st, 0, sz, q);
                setr(cpu.st, 2, sz, r);
            }
        }
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

/// Shifts, rotates and bit operations: `shl`…`rcr`, `shld`/`shrd`, `bt*`,
/// bit scans and counts, and BMI1/BMI2.
fn bits(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Flow, Stop> {
    let lock = ins.has_lock_prefix();
    match m {
        Mnemonic::Rol
        | Mnemonic::Ror
        | Mnemonic::Shl
        | Mnemonic::Sal
        | Mnemonic::Shr
        | Mnemonic::Sar => {
            let kind = match m {
                Mnemonic::Rol => sh::ROL,
                Mnemonic::Ror => sh::ROR,
                Mnemonic::Shr => sh::SHR,
                Mnemonic::Sar => sh::SAR,
                _ => sh::SHL,
            };
            let sz = op_size(ins, 0);
            let cnt = if ins.op_count() > 1 {
                ld(cpu, loc(cpu, ins, 1)?, 1)?
            } else {
                1
            };
            let l = loc(cpu, ins, 0)?;
            // A 32-bit register destination is written (zero-extended)
            // even when the masked count is 0.
            let keep = (sz == 4 && matches!(l, Loc::Reg(_))).then_some(());
            rmw(cpu, l, sz, false, true, |cpu, a| {
                shift_op(cpu.c, kind, sz, a, cnt).or(keep.map(|()| a))
            })?;
        }
        Mnemonic::Rcl | Mnemonic::Rcr => {
            let sz = op_size(ins, 0);
            let cnt = if ins.op_count() > 1 {
                ld(cpu, loc(cpu, ins, 1)?, 1)?
            } else {
                1
            };
            let l = loc(cpu, ins, 0)?;
            let keep = (sz == 4 && matches!(l, Loc::Reg(_))).then_some(());
            rmw(cpu, l, sz, false, true, |cpu, a| {
                rc_op(cpu.c, m == Mnemonic::Rcl, sz, a, cnt).or(keep.map(|()| a))
            })?;
        }
        Mnemonic::Shld | Mnemonic::Shrd => {
            let sz = op_size(ins, 0);
            let src = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            let cnt = ld(cpu, loc(cpu, ins, 2)?, 1)?;
            let l = loc(cpu, ins, 0)?;
            let keep = (sz == 4 && matches!(l, Loc::Reg(_))).then_some(());
            rmw(cpu, l, sz, false, true, |cpu, a| {
                shd_op(cpu.c, m == Mnemonic::Shld, sz, a, src, cnt).or(keep.map(|()| a))
            })?;
        }
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc => {
            let sz = op_size(ins, 0);
            let bits = 8 * u64::from(sz);
            let l0 = loc(cpu, ins, 0)?;
            let off = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            let (l, bit, osz) = match l0 {
                Loc::Mem(a, ss) if ins.op1_kind() == OpKind::Register => {
                    // The operand-sized word holding the bit is accessed
                    // (EA + size * (offset DIV bits), signed offset).
                    let so = sext(off, sz);
                    let words = so >> (bits.trailing_zeros());
                    (
                        Loc::Mem(a.wrapping_add((words * i64::from(sz)) as u64), ss),
                        (so & (bits as i64 - 1)) as u32,
                        sz,
                    )
                }
                _ => (l0, (off % bits) as u32, sz),
            };
            let mut cf = false;
            rmw(cpu, l, osz, lock, m != Mnemonic::Bt, |_, v| {
                cf = (v >> bit) & 1 != 0;
                match m {
                    Mnemonic::Bts => Some(v | (1 << bit)),
                    Mnemonic::Btr => Some(v & !(1 << bit)),
                    Mnemonic::Btc => Some(v ^ (1 << bit)),
                    _ => None,
                }
            })?;
            set_cf_only(cpu, cf);
        }
        Mnemonic::Bsf | Mnemonic::Bsr | Mnemonic::Tzcnt | Mnemonic::Lzcnt | Mnemonic::Popcnt => {
            let sz = op_size(ins, 0);
            let v = ld(cpu, loc(cpu, ins, 1)?, sz)?;
            let bits = 8 * u64::from(sz);
            let l = loc(cpu, ins, 0)?;
            match m {
                Mnemonic::Bsf | Mnemonic::Bsr => {
                    let f = cpu.c.flags() & !ZF;
                    if v == 0 {
                        cpu.c.set_flags(f | ZF);
                    } else {
                        let r = if m == Mnemonic::Bsf {
                            u64::from(v.trailing_zeros())
                        } else {
                            63 - u64::from(v.leading_zeros())
                        };
                        cpu.c.set_flags(f);
                        st(cpu, l, sz, r)?;
                    }
                }
                Mnemonic::Popcnt => {
                    let r = u64::from(v.count_ones());
                    set_status(cpu, if v == 0 { ZF } else { 0 });
                    st(cpu, l, sz, r)?;
                }
                _ => {
                    let r = if m == Mnemonic::Tzcnt {
                        if v == 0 {
                            bits
                        } else {
                            u64::from(v.trailing_zeros())
                        }
                    } else {
                        u64::from(v.leading_zeros()) - (64 - bits)
                    };
                    let mut f = 0;
                    if v == 0 {
                        f |= CF;
                    }
                    if r == 0 {
                        f |= ZF;
                    }
                    set_status(cpu, f);
                    st(cpu, l, sz, r)?;
                }
            }
        }
        Mnemonic::Andn
        | Mnemonic::Bextr
        | Mnemonic::Blsi
        | Mnemonic::Blsmsk
        | Mnemonic::Blsr
        | Mnemonic::Bzhi
        | Mnemonic::Pdep
        | Mnemonic::Pext
        | Mnemonic::Rorx
        | Mnemonic::Sarx
        | Mnemonic::Shlx
        | Mnemonic::Shrx
        | Mnemonic::Mulx => bmi(cpu, ins, m)?,
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

/// The stack and RFLAGS: `push`/`pop` (with segment registers),
/// `pushf`/`popf`, `lahf`/`sahf`, the flag set/clear instructions,
/// `leave` and `enter`.
fn stack_flags(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, next: u64) -> Result<Flow, Stop> {
    match m {
        Mnemonic::Push => {
            let sz = op_size(ins, 0);
            let v = match ins.op0_kind() {
                OpKind::Register if ins.op0_register().is_segment_register() => {
                    let idx = sreg_index(ins.op0_register()).ok_or(Stop::Fault(Fault::ud()))?;
                    // 64-bit push of a segment register writes the selector
                    // zero-extended.
                    u64::from(cpu.st.seg[idx].selector)
                }
                _ => ld(cpu, loc(cpu, ins, 0)?, sz)?,
            };
            let psz = if ins.op0_register().is_segment_register() {
                8
            } else if matches!(
                ins.code(),
                Code::Push_imm16 | Code::Pushw_imm8 | Code::Push_r16 | Code::Push_rm16
            ) {
                2
            } else {
                8
            };
            push(cpu, v, psz)?;
        }
        Mnemonic::Pop => {
            let r0 = ins.op0_register();
            if ins.op0_kind() == OpKind::Register && r0.is_segment_register() {
                let idx = sreg_index(r0).ok_or(Stop::Fault(Fault::ud()))?;
                let sp = cpu.st.gpr[4];
                let sel = cpu.rd(sp, 2, true)? as u16;
                super::seg::load_segment(cpu, idx, sel)?;
                cpu.st.gpr[4] = sp.wrapping_add(8);
            } else {
                let sz = op_size(ins, 0);
                let sp = cpu.st.gpr[4];
                let v = cpu.rd(sp, sz, true)?;
                cpu.st.gpr[4] = sp.wrapping_add(u64::from(sz));
                // The address of a memory destination uses the updated RSP.
                let l = loc(cpu, ins, 0)?;
                if let Err(e) = st(cpu, l, sz, v) {
                    cpu.st.gpr[4] = sp;
                    return Err(e);
                }
            }
        }
        Mnemonic::Pushf | Mnemonic::Pushfq => {
            let f = cpu.c.flags() & !(rflags::RF | rflags::VM);
            push(cpu, f, if m == Mnemonic::Pushf { 2 } else { 8 })?;
        }
        Mnemonic::Popf | Mnemonic::Popfq => {
            let sz = if m == Mnemonic::Popf { 2 } else { 8 };
            let v = pop(cpu, sz)?;
            let mut msk = popf_mask(cpu);
            if sz == 2 {
                msk &= 0xffff;
            }
            let f = (cpu.c.flags() & !msk) | (v & msk);
            cpu.c.set_flags(f & !rflags::RF);
            return Ok(Flow::Jump(next));
        }
        Mnemonic::Lahf => {
            let f = cpu.c.flags();
            let ah = (f & (SF | ZF | AF | PF | CF)) | 2;
            setr(cpu.st, 16, 1, ah);
        }
        Mnemonic::Sahf => {
            let ah = getr(cpu.st, 16, 1);
            set_status(cpu, (ah & (SF | ZF | AF | PF | CF)) | (cpu.c.flags() & OF));
        }
        Mnemonic::Clc | Mnemonic::Stc | Mnemonic::Cmc => {
            let f = cpu.c.flags();
            let cf = match m {
                Mnemonic::Clc => false,
                Mnemonic::Stc => true,
                _ => f & CF == 0,
            };
            set_cf_only(cpu, cf);
        }
        Mnemonic::Cld | Mnemonic::Std => {
            let f = cpu.c.flags() & !DF;
            cpu.c.set_flags(f | if m == Mnemonic::Std { DF } else { 0 });
        }
        Mnemonic::Cli | Mnemonic::Sti => {
            if iopl(cpu) < 3 {
                return gp0();
            }
            let f = cpu.c.flags() & !IF;
            cpu.c.set_flags(f | if m == Mnemonic::Sti { IF } else { 0 });
            return Ok(Flow::Jump(next));
        }
        Mnemonic::Leave => {
            let bp = cpu.st.gpr[5];
            let v = cpu.rd(bp, 8, true)?;
            cpu.st.gpr[4] = bp.wrapping_add(8);
            cpu.st.gpr[5] = v;
        }
        Mnemonic::Enter => {
            let size = ins.immediate(0) & 0xffff;
            let level = ins.immediate(1) & 31;
            let bp = cpu.st.gpr[5];
            let sp0 = cpu.st.gpr[4];
            let mut sp = sp0.wrapping_sub(8);
            cpu.wr(sp, 8, bp, true)?;
            let frame = sp;
            for i in 1..level {
                let v = cpu.rd(bp.wrapping_sub(8 * i), 8, true)?;
                sp = sp.wrapping_sub(8);
                cpu.wr(sp, 8, v, true)?;
            }
            if level > 0 {
                sp = sp.wrapping_sub(8);
                cpu.wr(sp, 8, frame, true)?;
            }
            let new_sp = sp.wrapping_sub(size);
            // The final stack pointer must be writable (probe it).
            cpu.rd(new_sp, 1, true)?;
            cpu.st.gpr[5] = frame;
            cpu.st.gpr[4] = new_sp;
        }
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

/// Control transfers: `jrcxz`/`loop*`, near `jmp`/`call` (far ones are
/// #GP(0)) and `ret`.
fn control(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, next: u64) -> Result<Flow, Stop> {
    match m {
        Mnemonic::Jrcxz | Mnemonic::Jecxz | Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => {
            let asz = if matches!(ins.op0_kind(), OpKind::NearBranch64)
                && !matches!(
                    ins.code(),
                    Code::Jecxz_rel8_64
                        | Code::Loop_rel8_64_ECX
                        | Code::Loope_rel8_64_ECX
                        | Code::Loopne_rel8_64_ECX
                ) {
                8
            } else {
                4
            };
            let t = ins.near_branch64();
            let take = if matches!(m, Mnemonic::Jrcxz | Mnemonic::Jecxz) {
                getr(cpu.st, 1, asz) == 0
            } else {
                let c = getr(cpu.st, 1, asz).wrapping_sub(1);
                setr(cpu.st, 1, asz, c);
                let c = c & mask(asz);
                match m {
                    Mnemonic::Loope => c != 0 && cpu.c.cond(4),
                    Mnemonic::Loopne => c != 0 && cpu.c.cond(5),
                    _ => c != 0,
                }
            };
            Ok(Flow::Jump(if take { t } else { next }))
        }
        Mnemonic::Jmp | Mnemonic::Call => {
            if matches!(ins.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32)
                || ins.memory_size().size() > 8
                || matches!(
                    ins.code(),
                    Code::Jmp_m1616
                        | Code::Jmp_m1632
                        | Code::Jmp_m1664
                        | Code::Call_m1616
                        | Code::Call_m1632
                        | Code::Call_m1664
                )
            {
                // Far transfers: left to the hypervisor.
                return gp0();
            }
            let t = match ins.op0_kind() {
                OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => {
                    ins.near_branch_target()
                }
                _ => {
                    let sz = op_size(ins, 0);
                    ld(cpu, loc(cpu, ins, 0)?, sz)?
                }
            };
            if !canonical(t) {
                return gp0();
            }
            if m == Mnemonic::Call {
                push(cpu, next, 8)?;
            }
            Ok(Flow::Jump(t))
        }
        Mnemonic::Ret => {
            if matches!(ins.code(), Code::Retnw | Code::Retnw_imm16) {
                let t = cpu.rd(cpu.st.gpr[4], 2, true)?;
                cpu.st.gpr[4] = cpu.st.gpr[4]
                    .wrapping_add(2)
                    .wrapping_add(if ins.op_count() > 0 {
                        ins.immediate(0)
                    } else {
                        0
                    });
                return Ok(Flow::Jump(t));
            }
            let t = cpu.rd(cpu.st.gpr[4], 8, true)?;
            if !canonical(t) {
                return gp0();
            }
            cpu.st.gpr[4] = cpu.st.gpr[4]
                .wrapping_add(8)
                .wrapping_add(if ins.op_count() > 0 {
                    ins.immediate(0)
                } else {
                    0
                });
            Ok(Flow::Jump(t))
        }
        _ => Ok(Flow::Pass),
    }
}

/// String instructions (`movs`, `stos`, `lods`, `scas`, `cmps`, with or
/// without `rep`).
fn string(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic, u: &Uop) -> Result<Flow, Stop> {
    match m {
        Mnemonic::Movsb
        | Mnemonic::Movsw
        | Mnemonic::Movsq
        | Mnemonic::Stosb
        | Mnemonic::Stosw
        | Mnemonic::Stosd
        | Mnemonic::Stosq
        | Mnemonic::Lodsb
        | Mnemonic::Lodsw
        | Mnemonic::Lodsd
        | Mnemonic::Lodsq
        | Mnemonic::Scasb
        | Mnemonic::Scasw
        | Mnemonic::Scasd
        | Mnemonic::Scasq
        | Mnemonic::Cmpsb
        | Mnemonic::Cmpsw
        | Mnemonic::Cmpsq => string_op(cpu, ins, u).map(Flow::from),
        Mnemonic::Movsd | Mnemonic::Cmpsd
            if ins.op_count() == 2
                && matches!(
                    ins.op0_kind(),
                    OpKind::MemoryESRDI
                        | OpKind::MemorySegRSI
                        | OpKind::MemoryESEDI
                        | OpKind::MemorySegESI
                ) =>
        {
            string_op(cpu, ins, u).map(Flow::from)
        }
        _ => Ok(Flow::Pass),
    }
}

/// System and miscellaneous: `cpuid`, `rdtsc(p)`, FS/GS base access,
/// `syscall`/`int*` traps, `ud*`, the privileged instructions (#GP(0) at
/// CPL 3) and the NOP family.
fn system(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<Flow, Stop> {
    match m {
        Mnemonic::Cpuid => {
            let r = cpu.env.cpuid(cpu.st.gpr[0] as u32, cpu.st.gpr[1] as u32);
            for (i, reg) in [0usize, 3, 1, 2].into_iter().enumerate() {
                cpu.st.gpr[reg] = u64::from(r[i]);
            }
        }
        Mnemonic::Rdtsc | Mnemonic::Rdtscp => {
            let t = cpu.env.rdtsc();
            cpu.st.gpr[0] = t & 0xffff_ffff;
            cpu.st.gpr[2] = t >> 32;
            if m == Mnemonic::Rdtscp {
                cpu.st.gpr[1] = 0;
            }
        }
        Mnemonic::Rdfsbase | Mnemonic::Rdgsbase => {
            let idx = if m == Mnemonic::Rdfsbase {
                sreg::FS
            } else {
                sreg::GS
            };
            let v = cpu.st.seg[idx].base;
            st(cpu, loc(cpu, ins, 0)?, op_size(ins, 0), v)?;
        }
        Mnemonic::Wrfsbase | Mnemonic::Wrgsbase => {
            let sz = op_size(ins, 0);
            let v = ld(cpu, loc(cpu, ins, 0)?, sz)?;
            if !canonical(v) {
                return gp0();
            }
            let idx = if m == Mnemonic::Wrfsbase {
                sreg::FS
            } else {
                sreg::GS
            };
            cpu.st.seg[idx].base = v;
        }
        Mnemonic::Syscall => return Err(trap(Exit::Syscall)),
        Mnemonic::Int => return Err(trap(Exit::SoftInt(ins.immediate8()))),
        Mnemonic::Int3 => {
            return Err(trap(Exit::Exception {
                vector: vector::BP,
                error_code: None,
                cr2: 0,
            }));
        }
        Mnemonic::Int1 => {
            return Err(trap(Exit::Exception {
                vector: vector::DB,
                error_code: None,
                cr2: 0,
            }));
        }
        Mnemonic::Ud0 | Mnemonic::Ud1 | Mnemonic::Ud2 => return Err(Stop::Fault(Fault::ud())),
        // AMD: SYSENTER/SYSEXIT are invalid in long mode; Intel runs them
        // (and at CPL 3 they fault below, as with IA32_SYSENTER_CS = 0).
        Mnemonic::Sysenter | Mnemonic::Sysexit | Mnemonic::Sysexitq
            if cpu.c.model.vendor == Vendor::Amd =>
        {
            return Err(Stop::Fault(Fault::ud()));
        }
        Mnemonic::Hlt
        | Mnemonic::Lgdt
        | Mnemonic::Lidt
        | Mnemonic::Lldt
        | Mnemonic::Ltr
        | Mnemonic::Lmsw
        | Mnemonic::Clts
        | Mnemonic::Invlpg
        | Mnemonic::Invd
        | Mnemonic::Wbinvd
        | Mnemonic::Rdmsr
        | Mnemonic::Wrmsr
        | Mnemonic::In
        | Mnemonic::Out
        | Mnemonic::Insb
        | Mnemonic::Insw
        | Mnemonic::Insd
        | Mnemonic::Outsb
        | Mnemonic::Outsw
        | Mnemonic::Outsd
        | Mnemonic::Swapgs
        | Mnemonic::Sysretq
        | Mnemonic::Sysret
        | Mnemonic::Sysenter
        | Mnemonic::Sysexitq
        | Mnemonic::Sysexit
        | Mnemonic::Iretq
        | Mnemonic::Iretd
        | Mnemonic::Iret
        | Mnemonic::Rdpmc
        | Mnemonic::Sgdt
        | Mnemonic::Sidt
        | Mnemonic::Sldt
        | Mnemonic::Str
        | Mnemonic::Smsw
        | Mnemonic::Retf
        | Mnemonic::Lar
        | Mnemonic::Lsl
        | Mnemonic::Verr
        | Mnemonic::Verw
        | Mnemonic::Invpcid
        | Mnemonic::Xsetbv
        | Mnemonic::Wbnoinvd
        | Mnemonic::Monitor
        | Mnemonic::Mwait
        | Mnemonic::Lss
        | Mnemonic::Lfs
        | Mnemonic::Lgs => return gp0(),
        // AMD: `0F 0D` is the PREFETCH group, and its register forms are
        // invalid; Intel runs them as reserved NOPs (docs/CPU-VENDORS.md).
        Mnemonic::Reservednop
            if cpu.c.model.vendor == Vendor::Amd && prefetch_group_register_form(ins) =>
        {
            return Err(Stop::Fault(Fault::ud()));
        }
        Mnemonic::Nop
        | Mnemonic::Pause
        | Mnemonic::Lfence
        | Mnemonic::Mfence
        | Mnemonic::Sfence
        | Mnemonic::Prefetchnta
        | Mnemonic::Prefetcht0
        | Mnemonic::Prefetcht1
        | Mnemonic::Prefetcht2
        | Mnemonic::Prefetchw
        | Mnemonic::Endbr64
        | Mnemonic::Endbr32
        | Mnemonic::Reservednop
        | Mnemonic::Clflush
        | Mnemonic::Clflushopt => {}
        _ => return Ok(Flow::Pass),
    }
    Ok(Flow::Next)
}

pub(crate) fn sreg_index(r: Register) -> Option<usize> {
    Some(match r {
        Register::ES => sreg::ES,
        Register::CS => sreg::CS,
        Register::SS => sreg::SS,
        Register::DS => sreg::DS,
        Register::FS => sreg::FS,
        Register::GS => sreg::GS,
        _ => return None,
    })
}

/// Whether a `lock` prefix is legal on this instruction (memory
/// destination of an RMW instruction).
fn lock_ok(ins: &Instruction) -> bool {
    ins.op_count() > 0
        && ins.op0_kind() == OpKind::Memory
        && matches!(
            ins.mnemonic(),
            Mnemonic::Add
                | Mnemonic::Adc
                | Mnemonic::And
                | Mnemonic::Btc
                | Mnemonic::Btr
                | Mnemonic::Bts
                | Mnemonic::Cmpxchg
                | Mnemonic::Cmpxchg8b
                | Mnemonic::Cmpxchg16b
                | Mnemonic::Dec
                | Mnemonic::Inc
                | Mnemonic::Neg
                | Mnemonic::Not
                | Mnemonic::Or
                | Mnemonic::Sbb
                | Mnemonic::Sub
                | Mnemonic::Xor
                | Mnemonic::Xadd
                | Mnemonic::Xchg
        )
}

fn bmi(cpu: &mut Cpu<'_>, ins: &Instruction, m: Mnemonic) -> Result<(), Stop> {
    let sz = op_size(ins, 0);
    let bits = 8 * u64::from(sz);
    let msk = mask(sz);
    let n = ins.op_count();
    let s1 = ld(cpu, loc(cpu, ins, 1)?, sz)?;
    let s2 = if n > 2 {
        ld(
            cpu,
            loc(cpu, ins, 2)?,
            if m == Mnemonic::Rorx { 1 } else { sz },
        )?
    } else {
        0
    };
    let dst = loc(cpu, ins, 0)?;
    let flags_szc = |r: u64, cf: bool| {
        let mut f = 0;
        if r & msk == 0 {
            f |= ZF;
        }
        if r & sign_bit(sz) != 0 {
            f |= SF;
        }
        if cf {
            f |= CF;
        }
        f
    };
    let r = match m {
        Mnemonic::Andn => {
            let r = !s1 & s2 & msk;
            set_status(cpu, flags_szc(r, false));
            r
        }
        Mnemonic::Bextr => {
            let start = s2 & 0xff;
            let len = (s2 >> 8) & 0xff;
            let r = if start >= bits {
                0
            } else {
                let v = s1 >> start;
                if len >= 64 {
                    v
                } else {
                    v & ((1u64 << len) - 1)
                }
            } & msk;
            set_status(cpu, if r == 0 { ZF } else { 0 });
            r
        }
        Mnemonic::Blsi => {
            let r = s1 & s1.wrapping_neg() & msk;
            set_status(cpu, flags_szc(r, s1 != 0));
            r
        }
        Mnemonic::Blsmsk => {
            let r = (s1 ^ s1.wrapping_sub(1)) & msk;
            set_status(cpu, flags_szc(r, s1 == 0));
            r
        }
        Mnemonic::Blsr => {
            let r = s1 & s1.wrapping_sub(1) & msk;
            set_status(cpu, flags_szc(r, s1 == 0));
            r
        }
        Mnemonic::Bzhi => {
            let idx = s2 & 0xff;
            let r = if idx >= bits {
                s1
            } else {
                s1 & ((1u64 << idx) - 1)
            } & msk;
            set_status(cpu, flags_szc(r, idx > bits - 1));
            r
        }
        Mnemonic::Pdep | Mnemonic::Pext => {
            let (src, mk) = (s1, s2);
            let mut r = 0u64;
            let mut k = 0;
            for i in 0..bits {
                if (mk >> i) & 1 != 0 {
                    if m == Mnemonic::Pdep {
                        r |= ((src >> k) & 1) << i;
                    } else {
                        r |= ((src >> i) & 1) << k;
                    }
                    k += 1;
                }
            }
            r & msk
        }
        Mnemonic::Rorx => {
            let c = (s2 % bits) as u32;
            let v = s1 & msk;
            if c == 0 {
                v
            } else {
                ((v >> c) | (v << (bits as u32 - c))) & msk
            }
        }
        Mnemonic::Sarx | Mnemonic::Shlx | Mnemonic::Shrx => {
            let c = (s2 & (bits - 1)) as u32;
            match m {
                Mnemonic::Sarx => (sext(s1, sz) >> c) as u64 & msk,
                Mnemonic::Shlx => (s1 << c) & msk,
                _ => (s1 & msk) >> c,
            }
        }
        _ => {
            // mulx r1, r2, r/m: r1:r2 = rdx * r/m (dst0 = high, dst1 = low).
            let s = ld(cpu, loc(cpu, ins, 2)?, sz)?;
            let d = getr(cpu.st, 2, sz);
            let p = u128::from(d) * u128::from(s);
            let lo = (p as u64) & msk;
            let hi = ((p >> bits) as u64) & msk;
            st(cpu, loc(cpu, ins, 1)?, sz, lo)?;
            hi
        }
    };
    st(cpu, dst, sz, r)
}

/// String instructions (64-bit addressing; 32-bit address size is #UD).
///
/// A fault part-way through a `rep` string instruction leaves RCX/RSI/RDI
/// reflecting the completed iterations. On Intel it restores RFLAGS to its
/// value before the instruction (SDM: "REP/REPE/REPZ/REPNE/REPNZ"); on AMD
/// RFLAGS keeps the flags of the last completed `cmps`/`scas` iteration, as
/// if the instruction had been interrupted between iterations. Either way
/// the instruction resumes correctly (`cmps`/`scas` do not read the flags).
fn string_op(cpu: &mut Cpu<'_>, ins: &Instruction, u: &Uop) -> Result<Option<u64>, Stop> {
    let (lz, rf) = (cpu.c.lz, cpu.c.rf);
    let r = string_op_inner(cpu, ins, u);
    if let Err(Stop::Fault(_)) = r
        && cpu.c.model.vendor == Vendor::Intel
    {
        cpu.c.lz = lz;
        cpu.c.rf = rf;
    }
    r
}

fn string_op_inner(cpu: &mut Cpu<'_>, ins: &Instruction, u: &Uop) -> Result<Option<u64>, Stop> {
    let m = ins.mnemonic();
    let sz: u8 = match m {
        Mnemonic::Movsb | Mnemonic::Stosb | Mnemonic::Lodsb | Mnemonic::Scasb | Mnemonic::Cmpsb => {
            1
        }
        Mnemonic::Movsw | Mnemonic::Stosw | Mnemonic::Lodsw | Mnemonic::Scasw | Mnemonic::Cmpsw => {
            2
        }
        Mnemonic::Movsd | Mnemonic::Stosd | Mnemonic::Lodsd | Mnemonic::Scasd | Mnemonic::Cmpsd => {
            4
        }
        _ => 8,
    };
    for i in 0..ins.op_count() {
        if matches!(
            ins.op_kind(i),
            OpKind::MemoryESEDI
                | OpKind::MemorySegESI
                | OpKind::MemorySegEDI
                | OpKind::MemorySegDI
                | OpKind::MemorySegSI
                | OpKind::MemoryESDI
        ) {
            return Err(Stop::Fault(Fault::ud()));
        }
    }
    let rep = ins.has_rep_prefix() || ins.has_repe_prefix() || ins.has_repne_prefix();
    let repne = ins.has_repne_prefix();
    let cond_rep = matches!(
        m,
        Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Scasq
            | Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Cmpsq
    );
    let step = if cpu.c.flags() & DF != 0 {
        (u64::from(sz)).wrapping_neg()
    } else {
        u64::from(sz)
    };
    let src_base = seg_base(cpu, ins.memory_segment());
    let mut iter = 0u32;
    loop {
        if rep && cpu.st.gpr[1] == 0 {
            return Ok(None);
        }
        if iter >= 4096 {
            // Resume later (keeps deadlines and single-stepping responsive).
            return Ok(Some(u.rip));
        }
        iter += 1;
        let (rsi, rdi) = (cpu.st.gpr[6], cpu.st.gpr[7]);
        match m {
            Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq => {
                // Fast bulk path for forward `rep movs` within pages, unless
                // the destination overlaps the source from above (then
                // every element must see the previous ones' stores).
                if rep && step == u64::from(sz) && cpu.st.gpr[1] > 1 {
                    let src = rsi.wrapping_add(src_base);
                    let n = bulk_len(cpu.st.gpr[1], sz, src, rdi);
                    let bytes = n * u64::from(sz);
                    let overlap = n > 1 && {
                        let sm = cpu.translate(src, Acc::Read, false)? + (src & 0xfff);
                        let dm = cpu.translate(rdi, Acc::Write, false)? + (rdi & 0xfff);
                        dm > sm && dm < sm + bytes
                    };
                    if n > 1 && !overlap {
                        let mut buf = [0u8; 4096];
                        let b = buf.get_mut(..bytes as usize).unwrap_or(&mut []);
                        cpu.rd_bytes(rsi.wrapping_add(src_base), b, false)?;
                        cpu.wr_bytes(rdi, b, false)?;
                        cpu.st.gpr[6] = rsi.wrapping_add(bytes);
                        cpu.st.gpr[7] = rdi.wrapping_add(bytes);
                        cpu.st.gpr[1] -= n;
                        if cpu.c.smc {
                            return Ok(Some(u.next()));
                        }
                        continue;
                    }
                }
                let v = cpu.rd(rsi.wrapping_add(src_base), sz, false)?;
                cpu.wr(rdi, sz, v, false)?;
                cpu.st.gpr[6] = rsi.wrapping_add(step);
                cpu.st.gpr[7] = rdi.wrapping_add(step);
            }
            Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq => {
                let v = getr(cpu.st, 0, sz);
                if rep && step == u64::from(sz) && cpu.st.gpr[1] > 1 {
                    let n = bulk_len(cpu.st.gpr[1], sz, rdi, rdi);
                    if n > 1 {
                        let bytes = n * u64::from(sz);
                        let mut buf = [0u8; 4096];
                        let pat = v.to_le_bytes();
                        for (i, b) in buf.iter_mut().enumerate().take(bytes as usize) {
                            *b = pat.get(i % usize::from(sz)).copied().unwrap_or(0);
                        }
                        let b = buf.get(..bytes as usize).unwrap_or(&[]);
                        cpu.wr_bytes(rdi, b, false)?;
                        cpu.st.gpr[7] = rdi.wrapping_add(bytes);
                        cpu.st.gpr[1] -= n;
                        if cpu.c.smc {
                            return Ok(Some(u.next()));
                        }
                        continue;
                    }
                }
                cpu.wr(rdi, sz, v, false)?;
                cpu.st.gpr[7] = rdi.wrapping_add(step);
            }
            Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq => {
                let v = cpu.rd(rsi.wrapping_add(src_base), sz, false)?;
                setr(cpu.st, 0, sz, v);
                cpu.st.gpr[6] = rsi.wrapping_add(step);
            }
            Mnemonic::Scasb | Mnemonic::Scasw | Mnemonic::Scasd | Mnemonic::Scasq => {
                let v = cpu.rd(rdi, sz, false)?;
                let a = getr(cpu.st, 0, sz);
                alu_op(cpu.c, alu::CMP, sz, a, v);
                cpu.st.gpr[7] = rdi.wrapping_add(step);
            }
            _ => {
                // The destination operand (ES:RDI) is read first, as on the
                // reference hardware: it decides which of two faulting
                // operands is reported.
                let b = cpu.rd(rdi, sz, false)?;
                let a = cpu.rd(rsi.wrapping_add(src_base), sz, false)?;
                alu_op(cpu.c, alu::CMP, sz, a, b);
                cpu.st.gpr[6] = rsi.wrapping_add(step);
                cpu.st.gpr[7] = rdi.wrapping_add(step);
            }
        }
        if !rep {
            return Ok(None);
        }
        cpu.st.gpr[1] = cpu.st.gpr[1].wrapping_sub(1);
        if cpu.c.smc {
            return Ok(Some(u.next()));
        }
        if cond_rep {
            let zf = cpu.c.cond(4);
            if (repne && zf) || (!repne && !zf) {
                return Ok(None);
            }
        }
    }
}

/// How many elements a forward bulk string step may move without crossing
/// a page on either side.
fn bulk_len(count: u64, sz: u8, src: u64, dst: u64) -> u64 {
    let s = u64::from(sz);
    let room = |a: u64| (4096 - (a & 0xfff)) / s;
    count.min(room(src)).min(room(dst)).min(4096 / s)
}

/// Encodings of the hint-NOP space (`0F 0D`, `0F 18`–`0F 1F`) that decode
/// to an instruction of a feature the guest is not offered (AMD `prefetch`,
/// `prefetchwt1`, the reserved prefetch hints, `prefetchit0/1`, `cldemote`,
/// CET `rdssp` without shadow stacks): the hardware executes them as NOPs
/// (no memory access) when the feature is absent or disabled.
fn hint_nop(code: iced_x86::Code) -> bool {
    use iced_x86::Code as C;
    matches!(
        code,
        C::Prefetch_m8
            | C::Prefetchwt1_m8
            | C::Prefetchreserved3_m8
            | C::Prefetchreserved4_m8
            | C::Prefetchreserved5_m8
            | C::Prefetchreserved6_m8
            | C::Prefetchreserved7_m8
            | C::Prefetchit0_m8
            | C::Prefetchit1_m8
            | C::Cldemote_m8
            | C::Rdsspd_r32
            | C::Rdsspq_r64
    )
}
