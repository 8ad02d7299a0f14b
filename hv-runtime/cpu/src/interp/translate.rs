//! Decoding (`iced-x86`) and translation of basic blocks into micro-ops.
//!
//! One [`Uop`] per guest instruction. Hot operand forms get a specialised
//! [`K`] with the operands pre-extracted (register numbers, a resolved
//! memory operand, the immediate, the branch target); all other
//! instructions become [`K::Generic`] pointing at their decoded
//! `iced_x86::Instruction`, which the generic executor interprets.

use iced_x86::{
    Code, ConditionCode, Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, Mnemonic,
    OpKind, Register,
};

use super::ctx::{Cpu, MAX_BLOCK, Stop};
use super::mmu::Acc;
use crate::mem::{MachineAddr, Mfn};

/// No register.
pub const NOREG: u8 = 0xff;
/// `Uop::seg` values.
pub const SEG_FS: u8 = 1;
/// GS override.
pub const SEG_GS: u8 = 2;
/// Bit in `Uop::seg`: the access is stack-relative (#SS on non-canonical).
pub const SEG_SS: u8 = 0x80;

/// Micro-op kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum K {
    /// Run the stored `Instruction` (`imm` = index) generically.
    Generic,
    /// Invalid encoding: #UD.
    Ud,
    /// No operation (`nop`, hint NOPs, fences).
    Nop,
    /// `syscall`: exit to the hypervisor (every PV hypercall is one, so it
    /// skips the generic executor).
    Syscall,
    /// `mov r, r`.
    MovRR,
    /// `mov r, imm`.
    MovRI,
    /// `mov r, [m]`.
    MovRM,
    /// `mov [m], r`.
    MovMR,
    /// `mov [m], imm`.
    MovMI,
    /// `movzx r, r` (`x` = source size).
    MovzxRR,
    /// `movzx r, [m]` (`x` = source size).
    MovzxRM,
    /// `movsx`/`movsxd r, r` (`x` = source size).
    MovsxRR,
    /// `movsx`/`movsxd r, [m]` (`x` = source size).
    MovsxRM,
    /// `lea r, [m]`.
    Lea,
    /// ALU `r, r` (`x` = the [`alu`] operation).
    AluRR,
    /// ALU `r, imm`.
    AluRI,
    /// ALU `r, [m]`.
    AluRM,
    /// ALU `[m], r` (read-modify-write unless `cmp`/`test`).
    AluMR,
    /// ALU `[m], imm`.
    AluMI,
    /// `inc`/`dec r` (`x` = 0 inc, 1 dec).
    IncDecR,
    /// `not r`.
    NotR,
    /// `neg r`.
    NegR,
    /// Shift/rotate `r` by an immediate (`x` = [`sh`], `imm` = count,
    /// already masked).
    ShiftRI,
    /// Shift/rotate `r` by `cl` (`x` = [`sh`]).
    ShiftRC,
    /// `cmovcc r, r` (`x` = condition code).
    CmovRR,
    /// `cmovcc r, [m]` (`x` = condition code; the load always happens).
    CmovRM,
    /// `setcc r8` (`x` = condition code).
    SetccR,
    /// `imul r, r`.
    ImulRR,
    /// `imul r, [m]`.
    ImulRM,
    /// `imul r, r, imm`.
    ImulRRI,
    /// `imul r, [m], imm`.
    ImulRMI,
    /// `xchg r, r`.
    XchgRR,
    /// `push r64`.
    PushR,
    /// `push imm` (`imm` = value).
    PushI,
    /// `pop r64`.
    PopR,
    /// `jmp rel` (`imm` = target).
    Jmp,
    /// `jcc` (`x` = condition code, `imm` = target).
    Jcc,
    /// `jmp r64`.
    JmpR,
    /// `jmp [m]`.
    JmpM,
    /// `call rel` (`imm` = target).
    CallRel,
    /// `call r64`.
    CallR,
    /// `call [m]`.
    CallM,
    /// `ret` (`imm` = extra bytes popped).
    Ret,
    /// `bswap r`.
    Bswap,
    /// SSE2 integer op on two XMM registers (`x` = [`sse`] op, `imm` =
    /// `pshufd` control).
    SseRR,
    /// `movd`/`movq xmm, r32/r64` (`d` = xmm, `s` = gpr, `sz`).
    MovXR,
    /// `movd`/`movq r32/r64, xmm` (`d` = gpr, `s` = xmm, `sz`).
    MovRX,
    /// 16-byte load into `d` (`x` = 1: must be 16-byte aligned).
    SseLd,
    /// 16-byte store of `s` (`x` = 1: must be 16-byte aligned).
    SseSt,
    /// `MovRR`, `AluRR`, `AluRI`, `ShiftRI` specialised for 64-bit (`q`)
    /// and 32-bit (`d`) operands on registers 0–15 (see `specialise`).
    MovRRq,
    /// `MovRR`, 32-bit.
    MovRRd,
    /// `AluRR`, 64-bit.
    AluRRq,
    /// `AluRR`, 32-bit.
    AluRRd,
    /// `AluRI`, 64-bit.
    AluRIq,
    /// `AluRI`, 32-bit.
    AluRId,
    /// `ShiftRI`, 64-bit.
    ShiftRIq,
    /// `ShiftRI`, 32-bit.
    ShiftRId,
}

/// Swap in the size-specialised kinds (after [`flag_liveness`], which
/// only knows the general ones).
pub(crate) fn specialise(block: &mut [Uop]) {
    for u in block {
        let regs = u.d < 16 && (u.s < 16 || u.s == NOREG);
        if !regs || (u.sz != 4 && u.sz != 8) {
            continue;
        }
        let q = u.sz == 8;
        u.k = match u.k {
            K::MovRR if q => K::MovRRq,
            K::MovRR => K::MovRRd,
            K::AluRR if q => K::AluRRq,
            K::AluRR => K::AluRRd,
            K::AluRI if q => K::AluRIq,
            K::AluRI => K::AluRId,
            K::ShiftRI if q => K::ShiftRIq,
            K::ShiftRI => K::ShiftRId,
            k => k,
        };
    }
}

/// SSE2 integer operations of [`K::SseRR`].
pub mod sse {
    /// `movdqa`/`movdqu`/`movaps`… register copy.
    pub const MOV: u8 = 0;
    /// `pand`.
    pub const PAND: u8 = 1;
    /// `pandn`.
    pub const PANDN: u8 = 2;
    /// `por`.
    pub const POR: u8 = 3;
    /// `pxor`.
    pub const PXOR: u8 = 4;
    /// `pshufd` (`imm` = control).
    pub const PSHUFD: u8 = 5;
    /// `pcmpeqb`.
    pub const PCMPEQB: u8 = 6;
    /// `pcmpeqw`.
    pub const PCMPEQW: u8 = 7;
    /// `pcmpeqd`.
    pub const PCMPEQD: u8 = 8;
    /// `paddb`.
    pub const PADDB: u8 = 9;
    /// `paddw`.
    pub const PADDW: u8 = 10;
    /// `paddd`.
    pub const PADDD: u8 = 11;
    /// `paddq`.
    pub const PADDQ: u8 = 12;
    /// `psubb`.
    pub const PSUBB: u8 = 13;
    /// `psubw`.
    pub const PSUBW: u8 = 14;
    /// `psubd`.
    pub const PSUBD: u8 = 15;
    /// `psubq`.
    pub const PSUBQ: u8 = 16;
}

fn xmm_no(r: Register) -> Option<u8> {
    if r.is_xmm() {
        Some((r as u32 - Register::XMM0 as u32) as u8)
    } else {
        None
    }
}

/// Specialised forms of hot SSE2 integer instructions (legacy encoding).
fn fast_sse(ins: &Instruction) -> Option<Uop> {
    let code = ins.code();
    let op = match code {
        Code::Movdqa_xmm_xmmm128
        | Code::Movdqu_xmm_xmmm128
        | Code::Movaps_xmm_xmmm128
        | Code::Movups_xmm_xmmm128
        | Code::Movdqa_xmmm128_xmm
        | Code::Movdqu_xmmm128_xmm
        | Code::Movaps_xmmm128_xmm
        | Code::Movups_xmmm128_xmm => sse::MOV,
        Code::Pand_xmm_xmmm128 => sse::PAND,
        Code::Pandn_xmm_xmmm128 => sse::PANDN,
        Code::Por_xmm_xmmm128 => sse::POR,
        Code::Pxor_xmm_xmmm128 => sse::PXOR,
        Code::Pshufd_xmm_xmmm128_imm8 => sse::PSHUFD,
        Code::Pcmpeqb_xmm_xmmm128 => sse::PCMPEQB,
        Code::Pcmpeqw_xmm_xmmm128 => sse::PCMPEQW,
        Code::Pcmpeqd_xmm_xmmm128 => sse::PCMPEQD,
        Code::Paddb_xmm_xmmm128 => sse::PADDB,
        Code::Paddw_xmm_xmmm128 => sse::PADDW,
        Code::Paddd_xmm_xmmm128 => sse::PADDD,
        Code::Paddq_xmm_xmmm128 => sse::PADDQ,
        Code::Psubb_xmm_xmmm128 => sse::PSUBB,
        Code::Psubw_xmm_xmmm128 => sse::PSUBW,
        Code::Psubd_xmm_xmmm128 => sse::PSUBD,
        Code::Psubq_xmm_xmmm128 => sse::PSUBQ,
        Code::Movd_xmm_rm32 | Code::Movq_xmm_rm64 => {
            let (s, sz) = gpr(ins.op1_register())?;
            let mut u = Uop::new(K::MovXR, ins);
            (u.d, u.s, u.sz) = (xmm_no(ins.op0_register())?, s, sz);
            return Some(u);
        }
        Code::Movd_rm32_xmm | Code::Movq_rm64_xmm => {
            let (d, sz) = gpr(ins.op0_register())?;
            let mut u = Uop::new(K::MovRX, ins);
            (u.d, u.s, u.sz) = (d, xmm_no(ins.op1_register())?, sz);
            return Some(u);
        }
        _ => return None,
    };
    let aligned = matches!(
        code,
        Code::Movdqa_xmm_xmmm128
            | Code::Movaps_xmm_xmmm128
            | Code::Movdqa_xmmm128_xmm
            | Code::Movaps_xmmm128_xmm
    );
    let mut u;
    match (ins.op0_kind(), ins.op1_kind()) {
        (OpKind::Register, OpKind::Register) => {
            u = Uop::new(K::SseRR, ins);
            (u.d, u.s) = (xmm_no(ins.op0_register())?, xmm_no(ins.op1_register())?);
            if op == sse::PSHUFD {
                u.imm = ins.immediate(2);
            }
        }
        (OpKind::Register, OpKind::Memory) if op == sse::MOV => {
            u = Uop::new(K::SseLd, ins);
            u.d = xmm_no(ins.op0_register())?;
            if !set_mem(&mut u, ins) {
                return None;
            }
        }
        (OpKind::Memory, OpKind::Register) if op == sse::MOV => {
            u = Uop::new(K::SseSt, ins);
            u.s = xmm_no(ins.op1_register())?;
            if !set_mem(&mut u, ins) {
                return None;
            }
            u.x = u8::from(aligned);
            return Some(u);
        }
        _ => return None,
    }
    u.sz = 16;
    if u.k == K::SseLd {
        u.x = u8::from(aligned);
    } else {
        u.x = op;
    }
    Some(u)
}

/// ALU operations (`Uop::x` of the `Alu*` kinds).
pub mod alu {
    /// `add`.
    pub const ADD: u8 = 0;
    /// `or`.
    pub const OR: u8 = 1;
    /// `adc`.
    pub const ADC: u8 = 2;
    /// `sbb`.
    pub const SBB: u8 = 3;
    /// `and`.
    pub const AND: u8 = 4;
    /// `sub`.
    pub const SUB: u8 = 5;
    /// `xor`.
    pub const XOR: u8 = 6;
    /// `cmp` (no write; this and above only set flags).
    pub const CMP: u8 = 7;
    /// `test` (no write).
    pub const TEST: u8 = 8;
}

/// Shift kinds (`Uop::x` of `ShiftR*`).
pub mod sh {
    /// `rol`.
    pub const ROL: u8 = 0;
    /// `ror`.
    pub const ROR: u8 = 1;
    /// `shl`/`sal`.
    pub const SHL: u8 = 4;
    /// `shr`.
    pub const SHR: u8 = 5;
    /// `sar`.
    pub const SAR: u8 = 7;
}

/// One translated instruction.
#[derive(Clone, Copy, Debug)]
pub struct Uop {
    /// Kind.
    pub k: K,
    /// Operand size in bytes.
    pub sz: u8,
    /// Destination register (encoded: 0–15, 16–19 = AH/CH/DH/BH).
    pub d: u8,
    /// Source register.
    pub s: u8,
    /// Sub-operation / condition / source size.
    pub x: u8,
    /// Instruction length.
    pub len: u8,
    /// Memory operand base register or [`NOREG`].
    pub base: u8,
    /// Index register or [`NOREG`].
    pub index: u8,
    /// log2 of the scale.
    pub scale: u8,
    /// Segment override and stack flag.
    pub seg: u8,
    /// The status flags this instruction writes are all overwritten later
    /// in the block before anything can observe them (see
    /// `flag_liveness`): the executor may skip computing them.
    pub nf: bool,
    /// Displacement (absolute address for RIP-relative operands).
    pub disp: u64,
    /// Immediate / branch target / generic index.
    pub imm: u64,
    /// Address of the instruction.
    pub rip: u64,
}

impl Uop {
    fn new(k: K, ins: &Instruction) -> Self {
        Self {
            k,
            sz: 8,
            d: NOREG,
            s: NOREG,
            x: 0,
            len: ins.len() as u8,
            base: NOREG,
            index: NOREG,
            scale: 0,
            seg: 0,
            nf: false,
            disp: 0,
            imm: 0,
            rip: ins.ip(),
        }
    }
    /// `rip` after this instruction.
    #[inline(always)]
    pub fn next(&self) -> u64 {
        self.rip.wrapping_add(u64::from(self.len))
    }
}

/// Encode a general-purpose register: `(number, size)`; 8-bit high
/// registers are 16–19.
#[must_use]
pub fn gpr(r: Register) -> Option<(u8, u8)> {
    let v = r as u32;
    let (al, ax, eax, rax) = (
        Register::AL as u32,
        Register::AX as u32,
        Register::EAX as u32,
        Register::RAX as u32,
    );
    if (al..al + 20).contains(&v) {
        let i = (v - al) as u8;
        return Some(match i {
            0..=3 => (i, 1),
            4..=7 => (i + 12, 1),
            _ => (i - 4, 1),
        });
    }
    if (ax..ax + 16).contains(&v) {
        return Some(((v - ax) as u8, 2));
    }
    if (eax..eax + 16).contains(&v) {
        return Some(((v - eax) as u8, 4));
    }
    if (rax..rax + 16).contains(&v) {
        return Some(((v - rax) as u8, 8));
    }
    None
}

fn gpr64(r: Register) -> Option<u8> {
    match gpr(r) {
        Some((n, 8)) => Some(n),
        _ => None,
    }
}

/// Fill the memory-operand fields for a 64-bit-addressed operand; `false`
/// when the operand needs the generic path.
fn set_mem(u: &mut Uop, ins: &Instruction) -> bool {
    let base = ins.memory_base();
    let index = ins.memory_index();
    if base == Register::RIP {
        u.base = NOREG;
        u.disp = ins.memory_displacement64();
    } else if base == Register::None {
        u.disp = ins.memory_displacement64();
    } else if let Some(b) = gpr64(base) {
        u.base = b;
        u.disp = ins.memory_displacement64();
        if b == 4 || b == 5 {
            u.seg |= SEG_SS;
        }
    } else {
        return false;
    }
    if index != Register::None {
        match gpr64(index) {
            Some(i) => u.index = i,
            None => return false,
        }
        u.scale = ins.memory_index_scale().trailing_zeros() as u8;
    }
    match ins.memory_segment() {
        Register::FS => u.seg |= SEG_FS,
        Register::GS => u.seg |= SEG_GS,
        _ => {}
    }
    true
}

pub(crate) fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

fn cc_of(ins: &Instruction) -> u8 {
    (ins.condition_code() as u8).wrapping_sub(1) & 15
}

fn alu_of(m: Mnemonic) -> Option<u8> {
    Some(match m {
        Mnemonic::Add => alu::ADD,
        Mnemonic::Or => alu::OR,
        Mnemonic::Adc => alu::ADC,
        Mnemonic::Sbb => alu::SBB,
        Mnemonic::And => alu::AND,
        Mnemonic::Sub => alu::SUB,
        Mnemonic::Xor => alu::XOR,
        Mnemonic::Cmp => alu::CMP,
        Mnemonic::Test => alu::TEST,
        _ => return None,
    })
}

fn shift_of(m: Mnemonic) -> Option<u8> {
    Some(match m {
        Mnemonic::Rol => sh::ROL,
        Mnemonic::Ror => sh::ROR,
        Mnemonic::Shl | Mnemonic::Sal => sh::SHL,
        Mnemonic::Shr => sh::SHR,
        Mnemonic::Sar => sh::SAR,
        _ => return None,
    })
}

/// Try to build a specialised micro-op.
fn fast(ins: &Instruction) -> Option<Uop> {
    if ins.has_lock_prefix() || ins.has_rep_prefix() || ins.has_repne_prefix() {
        // `rep`/`repne` on non-string instructions are ignored by hardware,
        // but keep them generic for simplicity (e.g. `rep ret`, `bnd jmp`).
        if !matches!(
            ins.mnemonic(),
            Mnemonic::Ret | Mnemonic::Jmp | Mnemonic::Call
        ) || ins.has_lock_prefix()
        {
            return None;
        }
    }
    if ins.encoding() == iced_x86::EncodingKind::Legacy
        && let Some(u) = fast_sse(ins)
    {
        return Some(u);
    }
    let m = ins.mnemonic();
    let n = ins.op_count();
    let k0 = if n > 0 {
        ins.op0_kind()
    } else {
        OpKind::Register
    };
    let k1 = if n > 1 {
        ins.op1_kind()
    } else {
        OpKind::Register
    };
    let r0 = gpr(ins.op0_register());
    let r1 = gpr(ins.op1_register());
    let mut u;
    match m {
        Mnemonic::Syscall => Some(Uop::new(K::Syscall, ins)),
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
        | Mnemonic::Reservednop
        | Mnemonic::Endbr64
            if !prefetch_group_register_form(ins) =>
        {
            Some(Uop::new(K::Nop, ins))
        }
        Mnemonic::Mov => {
            match (k0, k1) {
                (OpKind::Register, OpKind::Register) => {
                    let ((d, sz), (s, _)) = (r0?, r1?);
                    u = Uop::new(K::MovRR, ins);
                    (u.d, u.s, u.sz) = (d, s, sz);
                }
                (OpKind::Register, k) if is_imm(k) => {
                    let (d, sz) = r0?;
                    u = Uop::new(K::MovRI, ins);
                    (u.d, u.sz, u.imm) = (d, sz, ins.immediate(1));
                }
                (OpKind::Register, OpKind::Memory) => {
                    let (d, sz) = r0?;
                    u = Uop::new(K::MovRM, ins);
                    (u.d, u.sz) = (d, sz);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                (OpKind::Memory, OpKind::Register) => {
                    let (s, sz) = r1?;
                    u = Uop::new(K::MovMR, ins);
                    (u.s, u.sz) = (s, sz);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                (OpKind::Memory, k) if is_imm(k) => {
                    u = Uop::new(K::MovMI, ins);
                    u.sz = ins.memory_size().size() as u8;
                    u.imm = ins.immediate(1);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                _ => return None,
            }
            Some(u)
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            let (d, sz) = r0?;
            let zx = m == Mnemonic::Movzx;
            match k1 {
                OpKind::Register => {
                    let (s, ssz) = r1?;
                    u = Uop::new(if zx { K::MovzxRR } else { K::MovsxRR }, ins);
                    (u.d, u.s, u.sz, u.x) = (d, s, sz, ssz);
                }
                OpKind::Memory => {
                    u = Uop::new(if zx { K::MovzxRM } else { K::MovsxRM }, ins);
                    (u.d, u.sz, u.x) = (d, sz, ins.memory_size().size() as u8);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                _ => return None,
            }
            Some(u)
        }
        Mnemonic::Lea => {
            let (d, sz) = r0?;
            u = Uop::new(K::Lea, ins);
            (u.d, u.sz) = (d, sz);
            if !set_mem(&mut u, ins) {
                return None;
            }
            u.seg = 0;
            Some(u)
        }
        _ if alu_of(m).is_some() => {
            let op = alu_of(m)?;
            match (k0, k1) {
                (OpKind::Register, OpKind::Register) => {
                    let ((d, sz), (s, _)) = (r0?, r1?);
                    u = Uop::new(K::AluRR, ins);
                    (u.d, u.s, u.sz) = (d, s, sz);
                }
                (OpKind::Register, k) if is_imm(k) => {
                    let (d, sz) = r0?;
                    u = Uop::new(K::AluRI, ins);
                    (u.d, u.sz, u.imm) = (d, sz, ins.immediate(1));
                }
                (OpKind::Register, OpKind::Memory) => {
                    let (d, sz) = r0?;
                    u = Uop::new(K::AluRM, ins);
                    (u.d, u.sz) = (d, sz);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                (OpKind::Memory, OpKind::Register) => {
                    let (s, sz) = r1?;
                    u = Uop::new(K::AluMR, ins);
                    (u.s, u.sz) = (s, sz);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                (OpKind::Memory, k) if is_imm(k) => {
                    u = Uop::new(K::AluMI, ins);
                    u.sz = ins.memory_size().size() as u8;
                    u.imm = ins.immediate(1);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                _ => return None,
            }
            u.x = op;
            Some(u)
        }
        Mnemonic::Inc | Mnemonic::Dec | Mnemonic::Not | Mnemonic::Neg if k0 == OpKind::Register => {
            let (d, sz) = r0?;
            u = Uop::new(
                match m {
                    Mnemonic::Inc | Mnemonic::Dec => K::IncDecR,
                    Mnemonic::Not => K::NotR,
                    _ => K::NegR,
                },
                ins,
            );
            (u.d, u.sz, u.x) = (d, sz, u8::from(m == Mnemonic::Dec));
            Some(u)
        }
        _ if shift_of(m).is_some() && k0 == OpKind::Register => {
            let (d, sz) = r0?;
            if k1 == OpKind::Register {
                if ins.op1_register() != Register::CL {
                    return None;
                }
                u = Uop::new(K::ShiftRC, ins);
            } else if is_imm(k1) {
                u = Uop::new(K::ShiftRI, ins);
                u.imm = ins.immediate(1) & if sz == 8 { 63 } else { 31 };
            } else {
                return None;
            }
            (u.d, u.sz, u.x) = (d, sz, shift_of(m)?);
            Some(u)
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
            let (d, sz) = r0?;
            if k1 == OpKind::Register {
                u = Uop::new(K::CmovRR, ins);
                u.s = r1?.0;
            } else {
                u = Uop::new(K::CmovRM, ins);
                if !set_mem(&mut u, ins) {
                    return None;
                }
            }
            (u.d, u.sz, u.x) = (d, sz, cc_of(ins));
            Some(u)
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
        | Mnemonic::Setg
            if k0 == OpKind::Register =>
        {
            u = Uop::new(K::SetccR, ins);
            (u.d, u.sz, u.x) = (r0?.0, 1, cc_of(ins));
            Some(u)
        }
        Mnemonic::Imul if n >= 2 => {
            let (d, sz) = r0?;
            match (k1, n) {
                (OpKind::Register, 2) => {
                    u = Uop::new(K::ImulRR, ins);
                    u.s = r1?.0;
                }
                (OpKind::Memory, 2) => {
                    u = Uop::new(K::ImulRM, ins);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                (OpKind::Register, 3) => {
                    u = Uop::new(K::ImulRRI, ins);
                    u.s = r1?.0;
                    u.imm = ins.immediate(2);
                }
                (OpKind::Memory, 3) => {
                    u = Uop::new(K::ImulRMI, ins);
                    u.imm = ins.immediate(2);
                    if !set_mem(&mut u, ins) {
                        return None;
                    }
                }
                _ => return None,
            }
            (u.d, u.sz) = (d, sz);
            Some(u)
        }
        Mnemonic::Xchg if k0 == OpKind::Register && k1 == OpKind::Register => {
            let ((d, sz), (s, _)) = (r0?, r1?);
            u = Uop::new(K::XchgRR, ins);
            (u.d, u.s, u.sz) = (d, s, sz);
            Some(u)
        }
        Mnemonic::Push => match ins.code() {
            Code::Push_r64 => {
                u = Uop::new(K::PushR, ins);
                u.s = r0?.0;
                Some(u)
            }
            Code::Pushq_imm8 | Code::Pushq_imm32 => {
                u = Uop::new(K::PushI, ins);
                u.imm = ins.immediate(0);
                Some(u)
            }
            _ => None,
        },
        Mnemonic::Pop if ins.code() == Code::Pop_r64 => {
            u = Uop::new(K::PopR, ins);
            u.d = r0?.0;
            Some(u)
        }
        Mnemonic::Jmp => match k0 {
            OpKind::NearBranch64 => {
                u = Uop::new(K::Jmp, ins);
                u.imm = ins.near_branch64();
                Some(u)
            }
            OpKind::Register => {
                let (s, sz) = r0?;
                if sz != 8 {
                    return None;
                }
                u = Uop::new(K::JmpR, ins);
                u.s = s;
                Some(u)
            }
            OpKind::Memory if ins.memory_size().size() == 8 => {
                u = Uop::new(K::JmpM, ins);
                if !set_mem(&mut u, ins) {
                    return None;
                }
                Some(u)
            }
            _ => None,
        },
        Mnemonic::Call => match k0 {
            OpKind::NearBranch64 => {
                u = Uop::new(K::CallRel, ins);
                u.imm = ins.near_branch64();
                Some(u)
            }
            OpKind::Register => {
                let (s, sz) = r0?;
                if sz != 8 {
                    return None;
                }
                u = Uop::new(K::CallR, ins);
                u.s = s;
                Some(u)
            }
            OpKind::Memory if ins.memory_size().size() == 8 => {
                u = Uop::new(K::CallM, ins);
                if !set_mem(&mut u, ins) {
                    return None;
                }
                Some(u)
            }
            _ => None,
        },
        Mnemonic::Ret => match ins.code() {
            Code::Retnq => Some(Uop::new(K::Ret, ins)),
            Code::Retnq_imm16 => {
                u = Uop::new(K::Ret, ins);
                u.imm = ins.immediate(0);
                Some(u)
            }
            _ => None,
        },
        Mnemonic::Bswap => {
            let (d, sz) = r0?;
            if sz < 4 {
                return None;
            }
            u = Uop::new(K::Bswap, ins);
            (u.d, u.sz) = (d, sz);
            Some(u)
        }
        _ if ins.condition_code() != ConditionCode::None
            && ins.flow_control() == FlowControl::ConditionalBranch
            && k0 == OpKind::NearBranch64
            && !matches!(
                m,
                Mnemonic::Jrcxz
                    | Mnemonic::Jecxz
                    | Mnemonic::Loop
                    | Mnemonic::Loope
                    | Mnemonic::Loopne
            ) =>
        {
            u = Uop::new(K::Jcc, ins);
            u.imm = ins.near_branch64();
            u.x = cc_of(ins);
            Some(u)
        }
        _ => None,
    }
}

/// The result of translating one block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Translated {
    pub page2: u64,
    pub frame2: u64,
    pub fall: u64,
}

fn fetch_fault_to_stop(s: Stop) -> Stop {
    s
}

/// Decode and translate the block at `rip` (whose page is at machine
/// address `frame`), appending its micro-ops.
pub(crate) fn translate_block(
    cpu: &mut Cpu<'_>,
    rip: u64,
    frame: u64,
    uops: &mut Vec<Uop>,
    insns: &mut Vec<Instruction>,
) -> Result<Translated, Stop> {
    let mfn = frame >> 12;
    // Mark before reading so a racing write is never missed.
    cpu.mem.mark_code(Mfn(mfn));
    cpu.c.tlb.protect_code_frame(mfn);
    let off = (rip & 0xfff) as usize;
    let first_len = 4096 - off;
    let mut buf = [0u8; 4096 + 16];
    if let Some(dst) = buf.get_mut(..first_len) {
        cpu.mem
            .read(MachineAddr(frame + off as u64), dst)
            .map_err(|_| Stop::Fault(super::mmu::Fault::gp0()))?;
    }
    let mut have = first_len;
    let mut out = Translated {
        page2: u64::MAX,
        frame2: u64::MAX,
        fall: rip,
    };
    let mut pos = 0usize;
    let mut cur = rip;
    let mut n = 0usize;
    let start = uops.len();
    let mut ins = Instruction::default();
    loop {
        if n >= MAX_BLOCK || pos >= first_len {
            break;
        }
        let bytes = buf.get(pos..have).unwrap_or(&[]);
        let mut dec = Decoder::with_ip(64, bytes, cur, DecoderOptions::NONE);
        dec.decode_out(&mut ins);
        if dec.last_error() == DecoderError::NoMoreBytes && have == first_len {
            let next_lin = (rip | 0xfff).wrapping_add(1);
            match cpu.translate(next_lin, Acc::Exec, false) {
                Ok(f2) => {
                    cpu.mem.mark_code(Mfn(f2 >> 12));
                    cpu.c.tlb.protect_code_frame(f2 >> 12);
                    if let Some(dst) = buf.get_mut(first_len..first_len + 16) {
                        cpu.mem
                            .read(MachineAddr(f2), dst)
                            .map_err(|_| Stop::Fault(super::mmu::Fault::gp0()))?;
                    }
                    have = first_len + 16;
                    out.page2 = next_lin;
                    out.frame2 = f2;
                    continue;
                }
                Err(e) => {
                    if n == 0 {
                        return Err(fetch_fault_to_stop(e));
                    }
                    break;
                }
            }
        }
        let len = ins.len();
        let invalid = ins.is_invalid() || dec.last_error() != DecoderError::None || len == 0;
        let end;
        let mut u = if invalid {
            end = true;
            let mut u = Uop::new(K::Ud, &ins);
            u.rip = cur;
            u.len = 1;
            u
        } else {
            end = ins.flow_control() != FlowControl::Next;
            match fast(&ins) {
                Some(u) => u,
                None => {
                    let mut u = Uop::new(K::Generic, &ins);
                    u.imm = insns.len() as u64;
                    insns.push(ins);
                    u
                }
            }
        };
        u.rip = cur;
        uops.push(u);
        n += 1;
        pos += len.max(1);
        cur = cur.wrapping_add(len.max(1) as u64);
        if end {
            break;
        }
    }
    if n == 0 {
        // Cannot happen (the first instruction always starts on the first
        // page), but never leave an empty block.
        let mut u = Uop::new(K::Ud, &ins);
        u.rip = rip;
        uops.push(u);
    }
    out.fall = cur;
    if let Some(block) = uops.get_mut(start..) {
        flag_liveness(block);
        specialise(block);
    }
    Ok(out)
}

const ALL_FLAGS: u8 = 0x3f;
const CF_BIT: u8 = 1;
const OF_BIT: u8 = 0x20;

/// Backward status-flag liveness over one block: marks [`Uop::nf`] on
/// flag-producing micro-ops whose flags are dead.
///
/// Conservative: the flags are live at the block's end and before every
/// micro-op that may fault or exit (any memory access, generic
/// instructions, indirect branches), so the state at every point an
/// exception or exit can observe is exact; conditions read all flags.
/// Single-stepping ignores `nf` (see `exec::exec_block`).
pub(crate) fn flag_liveness(block: &mut [Uop]) {
    let mut live = ALL_FLAGS;
    for u in block.iter_mut().rev() {
        // (flags it may write, flags it surely writes, flags it reads when
        // it computes its flags, flags it always reads, may fault/exit)
        let (may, def, read_if, read, fault) = match u.k {
            K::Nop | K::MovRR | K::MovRI | K::MovzxRR | K::MovsxRR | K::Lea | K::NotR => {
                (0, 0, 0, 0, false)
            }
            K::XchgRR | K::Bswap => (0, 0, 0, 0, false),
            K::AluRR | K::AluRI => {
                let r = if u.x == alu::ADC || u.x == alu::SBB {
                    CF_BIT
                } else {
                    0
                };
                (ALL_FLAGS, ALL_FLAGS, 0, r, false)
            }
            K::AluRM => {
                let r = if u.x == alu::ADC || u.x == alu::SBB {
                    CF_BIT
                } else {
                    0
                };
                (ALL_FLAGS, ALL_FLAGS, 0, r, true)
            }
            K::IncDecR => (ALL_FLAGS & !CF_BIT, ALL_FLAGS & !CF_BIT, CF_BIT, 0, false),
            K::NegR | K::ImulRR | K::ImulRRI => (ALL_FLAGS, ALL_FLAGS, 0, 0, false),
            K::ImulRM | K::ImulRMI => (ALL_FLAGS, ALL_FLAGS, 0, 0, true),
            K::ShiftRI if u.imm == 0 => (0, 0, 0, 0, false),
            K::ShiftRI if u.x == sh::ROL || u.x == sh::ROR => {
                (CF_BIT | OF_BIT, CF_BIT | OF_BIT, ALL_FLAGS, 0, false)
            }
            K::ShiftRI => (ALL_FLAGS, ALL_FLAGS, 0, 0, false),
            K::ShiftRC if u.x == sh::ROL || u.x == sh::ROR => {
                (CF_BIT | OF_BIT, 0, ALL_FLAGS, 0, false)
            }
            K::ShiftRC => (ALL_FLAGS, 0, 0, 0, false),
            _ => (0, 0, 0, ALL_FLAGS, true),
        };
        let nf = may != 0 && live & may == 0;
        u.nf = nf;
        let mut before = (live & !def) | read;
        if !nf {
            before |= read_if;
        }
        if fault {
            before = ALL_FLAGS;
        }
        live = before;
    }
}

/// `0F 0D /r` with a register operand: AMD's PREFETCH/PREFETCHW group,
/// which is #UD there and a reserved NOP on Intel.
pub(crate) fn prefetch_group_register_form(ins: &Instruction) -> bool {
    use iced_x86::Code as C;
    matches!(
        ins.code(),
        C::Reservednop_rm16_r16_0F0D | C::Reservednop_rm32_r32_0F0D | C::Reservednop_rm64_r64_0F0D
    ) && ins.op0_kind() == OpKind::Register
}
