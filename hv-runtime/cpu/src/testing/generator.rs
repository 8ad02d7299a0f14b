//! Random instruction sequences and input states.
//!
//! The catalogue ([`forms`]) lists every instruction *form* the generator can
//! emit, grouped in [`Family`]s. Most forms are one iced-x86 [`Code`] picked
//! from a per-family mnemonic list and filtered to what this generator can
//! build operands for (legacy or BMI VEX encoding, 64-bit mode, no MMX, no
//! segment or control registers) and what the host CPU supports; the rest
//! are templates (string operations with their set-up, x87 load/store
//! round trips, deliberate faults).
//!
//! Sequences are deterministic functions of `(family, seed)`
//! ([`generate`]). Memory operands are `[r15 + disp]` with R15 =
//! [`SCRATCH_BASE`] (Note [Native sandbox] in [`super::native`]). A form
//! whose instruction reads a flag left undefined by an earlier instruction is
//! not emitted there (the generator picks another, or first emits
//! `cmp rax, rax`), so every register result is architecturally defined.
//!
//! Documented exclusions (never generated; see also `tests/README.md`):
//! `rcpps`/`rcpss`/`rsqrtps`/`rsqrtss` (approximations differ between
//! vendors), `cpuid`/`rdtsc`/`rdtscp`/`rdpmc`/`rdrand` (host-specific
//! values), `bswap r16` and 16-bit `shld`/`shrd` with counts above 16
//! (architecturally undefined results), the undocumented `sal` (`/6`)
//! and `test` (`F6 /1`, `F7 /1`) encodings, `movsxd` without REX.W,
//! `int n` other than `int3` (the backend reports it as a software
//! interrupt, the host kernel as #GP or a signal), `smsw`/`sgdt`/`sidt`/
//! `sldt`/`str` (the host kernel emulates them under UMIP),
//! `syscall`/`sysenter` (they would enter the host kernel), x87 arithmetic
//! (a backend may compute in 64-bit precision), and MMX.

use super::native::encode_at;
use super::{ArchState, CODE_VA, SCRATCH_BASE, SCRATCH_LEN, STACK_LEN, STACK_TOP};
use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderOptions, EncodingKind, IcedError, Instruction,
    MemoryOperand, Mnemonic, OpCodeOperandKind as K, Register, RepPrefixKind, RflagsBits,
};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// Why a form could not be instantiated (an operand combination iced-x86
/// rejects, such as AH with a REX prefix); the generator then retries.
#[derive(Debug, Clone)]
pub struct GenError(pub String);

impl GenError {
    fn msg(m: &str) -> Self {
        Self(m.to_string())
    }
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<IcedError> for GenError {
    fn from(e: IcedError) -> Self {
        Self(e.to_string())
    }
}

/// A group of forms that can be tested (and pass) on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Integer ALU, moves, bit operations, BMI, push/pop, flag instructions.
    Alu,
    /// Shifts and rotates (including `shld`/`shrd`, `rcl`/`rcr`).
    Shift,
    /// `mul`/`imul`/`div`/`idiv` (including #DE).
    MulDiv,
    /// String instructions with and without `rep`, both directions.
    String,
    /// SSE2 integer instructions.
    SseInt,
    /// SSE/SSE2 floating point, conversions, MXCSR.
    SseFp,
    /// A few x87 load/store round trips and control-word moves.
    X87,
    /// Deliberate exceptions: #PF, #GP, #UD, #BP, #DE, #XM.
    Faults,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 8] = [
        Family::Alu,
        Family::Shift,
        Family::MulDiv,
        Family::String,
        Family::SseInt,
        Family::SseFp,
        Family::X87,
        Family::Faults,
    ];

    /// Lower-case name (`alu`, `shift`, ...), as used by `PVSDK_DIFF_FAMILIES`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Family::Alu => "alu",
            Family::Shift => "shift",
            Family::MulDiv => "muldiv",
            Family::String => "string",
            Family::SseInt => "sse_int",
            Family::SseFp => "sse_fp",
            Family::X87 => "x87",
            Family::Faults => "faults",
        }
    }

    /// The family's fixed base seed.
    #[must_use]
    pub fn base_seed(self) -> u64 {
        0x9e37_79b9_7f4a_7c15 ^ ((self as u64 + 1) << 40)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A deterministic PRNG (xoshiro256**, seeded with splitmix64).
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    /// Seed the generator.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            *v = splitmix(&mut x);
        }
        Self(s)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform index into a slice of length `n`.
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.wrapping_sub(lo).cast_unsigned().wrapping_add(1);
        lo.wrapping_add(self.below(span).cast_signed())
    }

    /// True with probability `p`/100.
    pub fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Pick one element.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    /// An integer with many boundary values.
    pub fn int(&mut self) -> u64 {
        const SPECIAL: [u64; 18] = [
            0,
            1,
            2,
            u64::MAX,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            0xffff_ffff_8000_0000,
            0xffff_ffff_ffff_ff80,
        ];
        match self.below(10) {
            0 | 1 => self.pick(&SPECIAL),
            2 => self.range(-40, 40).cast_unsigned(),
            3 => self.next_u64() & 0xff,
            4 => self.next_u64() & 0xffff,
            5 => self.next_u64() & 0xffff_ffff,
            6 => 1u64 << self.below(64),
            _ => self.next_u64(),
        }
    }

    /// A single-precision bit pattern with many special values.
    pub fn f32_bits(&mut self) -> u32 {
        let sign = if self.pct(50) { 0x8000_0000 } else { 0 };
        #[allow(clippy::cast_possible_truncation)]
        let r = self.next_u64() as u32;
        let v = match self.below(14) {
            0 => 0,
            1 => 0x7f80_0000,                     // inf
            2 => 0x7fc0_0000 | (r & 0x003f_ffff), // qNaN
            3 => 0x7f80_0001 | (r & 0x003f_ffff), // sNaN
            4 => (r & 0x007f_ffff).max(1),        // denormal
            5 => 0x3f80_0000,                     // 1.0
            6 => 0x7f7f_ffff,                     // max
            7 => 0x0080_0000,                     // min normal
            8 => {
                f32::from(i16::try_from(self.range(-300, 300)).unwrap_or(0)).to_bits() & 0x7fff_ffff
            }
            9 => 0x4f00_0000 + (r & 0xff_ffff),  // around 2^31
            10 => 0x5f00_0000 + (r & 0xff_ffff), // around 2^63
            _ => r & 0x7fff_ffff,
        };
        sign | v
    }

    /// A double-precision bit pattern with many special values.
    pub fn f64_bits(&mut self) -> u64 {
        let sign = if self.pct(50) { 1u64 << 63 } else { 0 };
        let r = self.next_u64();
        let v = match self.below(15) {
            0 => 0,
            1 => 0x7ff0_0000_0000_0000,
            2 => 0x7ff8_0000_0000_0000 | (r & 0x0007_ffff_ffff_ffff),
            3 => 0x7ff0_0000_0000_0001 | (r & 0x0007_ffff_ffff_ffff),
            4 => (r & 0x000f_ffff_ffff_ffff).max(1),
            5 => 0x3ff0_0000_0000_0000,
            6 => 0x7fef_ffff_ffff_ffff,
            7 => 0x0010_0000_0000_0000,
            8 => (self.range(-100_000, 100_000) as f64).to_bits() & !(1u64 << 63),
            9 => 0x41e0_0000_0000_0000 + (r & 0xf_ffff_ffff), // around 2^31
            10 => 0x43e0_0000_0000_0000 + (r & 0xf_ffff_ffff), // around 2^63
            11 => (f64::from(self.f32_bits_plain())).to_bits() & !(1u64 << 63),
            _ => r & 0x7fff_ffff_ffff_ffff,
        };
        sign | v
    }

    fn f32_bits_plain(&mut self) -> f32 {
        #[allow(clippy::cast_possible_truncation)]
        let r = (self.next_u64() as u32) & 0x7f7f_ffff;
        f32::from_bits(r)
    }

    /// A 128-bit XMM value: packed floats, doubles, integers or random bits.
    pub fn xmm(&mut self) -> u128 {
        match self.below(5) {
            0 => (0..4).fold(0u128, |a, i| a | (u128::from(self.f32_bits()) << (32 * i))),
            1 => u128::from(self.f64_bits()) | (u128::from(self.f64_bits()) << 64),
            2 => (0..8).fold(0u128, |a, i| {
                #[allow(clippy::cast_possible_truncation)]
                let w = self.int() as u16;
                a | (u128::from(w) << (16 * i))
            }),
            3 => u128::from(self.int()) | (u128::from(self.int()) << 64),
            _ => u128::from(self.next_u64()) | (u128::from(self.next_u64()) << 64),
        }
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of case `index` of `family` under `base` (a pure function, so any
/// single case can be regenerated from the numbers in a report).
#[must_use]
pub fn case_seed(family: Family, base: u64, index: u64) -> u64 {
    let mut x =
        family.base_seed() ^ base.rotate_left(17) ^ index.wrapping_mul(0x2545_f491_4f6c_dd1d);
    splitmix(&mut x)
}

/// String-instruction operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    /// `movs`.
    Movs,
    /// `stos`.
    Stos,
    /// `lods`.
    Lods,
    /// `cmps`.
    Cmps,
    /// `scas`.
    Scas,
}

type TemplateFn = fn(&mut Rng) -> Result<Vec<Instruction>, GenError>;

#[derive(Clone, Copy, Debug)]
enum FormKind {
    Code(Code),
    Str(StrOp, u32, RepPrefixKind),
    Template(TemplateFn),
}

/// One entry of the generator's catalogue.
#[derive(Clone, Debug)]
pub struct Form {
    /// Unique name (the iced `Code` name for single-instruction forms).
    pub name: String,
    /// The family it belongs to.
    pub family: Family,
    kind: FormKind,
}

const ALU: &[&str] = &[
    "Add",
    "Adc",
    "Sub",
    "Sbb",
    "And",
    "Or",
    "Xor",
    "Cmp",
    "Test",
    "Inc",
    "Dec",
    "Neg",
    "Not",
    "Mov",
    "Movzx",
    "Movsx",
    "Movsxd",
    "Lea",
    "Xchg",
    "Cmpxchg",
    "Cmpxchg8b",
    "Cmpxchg16b",
    "Xadd",
    "Bswap",
    "Bt",
    "Bts",
    "Btr",
    "Btc",
    "Bsf",
    "Bsr",
    "Popcnt",
    "Lzcnt",
    "Tzcnt",
    "Andn",
    "Bextr",
    "Blsi",
    "Blsmsk",
    "Blsr",
    "Bzhi",
    "Mulx",
    "Pdep",
    "Pext",
    "Rorx",
    "Sarx",
    "Shlx",
    "Shrx",
    "Cbw",
    "Cwde",
    "Cdqe",
    "Cwd",
    "Cdq",
    "Cqo",
    "Sahf",
    "Lahf",
    "Clc",
    "Stc",
    "Cmc",
    "Push",
    "Pop",
    "Cmovo",
    "Cmovno",
    "Cmovb",
    "Cmovae",
    "Cmove",
    "Cmovne",
    "Cmovbe",
    "Cmova",
    "Cmovs",
    "Cmovns",
    "Cmovp",
    "Cmovnp",
    "Cmovl",
    "Cmovge",
    "Cmovle",
    "Cmovg",
    "Seto",
    "Setno",
    "Setb",
    "Setae",
    "Sete",
    "Setne",
    "Setbe",
    "Seta",
    "Sets",
    "Setns",
    "Setp",
    "Setnp",
    "Setl",
    "Setge",
    "Setle",
    "Setg",
];
const SHIFT: &[&str] = &[
    "Shl", "Shr", "Sar", "Rol", "Ror", "Rcl", "Rcr", "Shld", "Shrd",
];
const MULDIV: &[&str] = &["Mul", "Imul", "Div", "Idiv"];
const SSE_INT: &[&str] = &[
    "Movd",
    "Movq",
    "Movdqa",
    "Movdqu",
    "Pand",
    "Pandn",
    "Por",
    "Pxor",
    "Paddb",
    "Paddw",
    "Paddd",
    "Paddq",
    "Psubb",
    "Psubw",
    "Psubd",
    "Psubq",
    "Paddsb",
    "Paddsw",
    "Paddusb",
    "Paddusw",
    "Psubsb",
    "Psubsw",
    "Psubusb",
    "Psubusw",
    "Pcmpeqb",
    "Pcmpeqw",
    "Pcmpeqd",
    "Pcmpgtb",
    "Pcmpgtw",
    "Pcmpgtd",
    "Psllw",
    "Pslld",
    "Psllq",
    "Psrlw",
    "Psrld",
    "Psrlq",
    "Psraw",
    "Psrad",
    "Pslldq",
    "Psrldq",
    "Pshufd",
    "Pshuflw",
    "Pshufhw",
    "Punpcklbw",
    "Punpcklwd",
    "Punpckldq",
    "Punpcklqdq",
    "Punpckhbw",
    "Punpckhwd",
    "Punpckhdq",
    "Punpckhqdq",
    "Packsswb",
    "Packssdw",
    "Packuswb",
    "Pmovmskb",
    "Pextrw",
    "Pinsrw",
    "Pmullw",
    "Pmulhw",
    "Pmulhuw",
    "Pmuludq",
    "Pmaddwd",
    "Psadbw",
    "Pavgb",
    "Pavgw",
    "Pmaxsw",
    "Pmaxub",
    "Pminsw",
    "Pminub",
];
const SSE_FP: &[&str] = &[
    "Movaps",
    "Movups",
    "Movapd",
    "Movupd",
    "Movss",
    "Movsd",
    "Movlps",
    "Movhps",
    "Movlpd",
    "Movhpd",
    "Movhlps",
    "Movlhps",
    "Andps",
    "Andnps",
    "Orps",
    "Xorps",
    "Andpd",
    "Andnpd",
    "Orpd",
    "Xorpd",
    "Addps",
    "Addpd",
    "Addss",
    "Addsd",
    "Subps",
    "Subpd",
    "Subss",
    "Subsd",
    "Mulps",
    "Mulpd",
    "Mulss",
    "Mulsd",
    "Divps",
    "Divpd",
    "Divss",
    "Divsd",
    "Sqrtps",
    "Sqrtpd",
    "Sqrtss",
    "Sqrtsd",
    "Minps",
    "Minpd",
    "Minss",
    "Minsd",
    "Maxps",
    "Maxpd",
    "Maxss",
    "Maxsd",
    "Cmpps",
    "Cmppd",
    "Cmpss",
    "Cmpsd",
    "Cvtsi2ss",
    "Cvtsi2sd",
    "Cvtss2si",
    "Cvtsd2si",
    "Cvttss2si",
    "Cvttsd2si",
    "Cvtss2sd",
    "Cvtsd2ss",
    "Cvtps2pd",
    "Cvtpd2ps",
    "Cvtdq2ps",
    "Cvtps2dq",
    "Cvttps2dq",
    "Cvtdq2pd",
    "Cvtpd2dq",
    "Cvttpd2dq",
    "Ucomiss",
    "Ucomisd",
    "Comiss",
    "Comisd",
    "Shufps",
    "Shufpd",
    "Unpcklps",
    "Unpckhps",
    "Unpcklpd",
    "Unpckhpd",
    "Movmskps",
    "Movmskpd",
    "Stmxcsr",
];

/// Codes excluded even though their mnemonic is listed (see the module docs).
const EXCLUDED_CODES: &[Code] = &[
    Code::Bswap_r16,
    Code::Movsxd_r16_rm16,
    Code::Movsxd_r32_rm32,
    // Push/pop of segment registers and the 16-bit immediate/far forms are
    // filtered by operand kind; `pop rsp`-like forms cannot occur because RSP
    // is never chosen.
];

fn host_has(f: CpuidFeature) -> bool {
    match f {
        CpuidFeature::INTEL8086
        | CpuidFeature::INTEL186
        | CpuidFeature::INTEL286
        | CpuidFeature::INTEL386
        | CpuidFeature::INTEL486
        | CpuidFeature::X64
        | CpuidFeature::CMOV
        | CpuidFeature::FPU
        | CpuidFeature::CX8
        | CpuidFeature::FXSR
        | CpuidFeature::SSE
        | CpuidFeature::SSE2 => true,
        CpuidFeature::POPCNT => std::is_x86_feature_detected!("popcnt"),
        CpuidFeature::LZCNT => std::is_x86_feature_detected!("lzcnt"),
        CpuidFeature::BMI1 => std::is_x86_feature_detected!("bmi1"),
        CpuidFeature::BMI2 => std::is_x86_feature_detected!("bmi2"),
        CpuidFeature::CMPXCHG16B => std::is_x86_feature_detected!("cmpxchg16b"),
        _ => false,
    }
}

fn supported_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::xmm_or_mem
            | K::mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_opcode
            | K::r16_rm
            | K::r32_reg
            | K::r32_opcode
            | K::r32_rm
            | K::r32_vvvv
            | K::r64_reg
            | K::r64_opcode
            | K::r64_rm
            | K::r64_vvvv
            | K::xmm_reg
            | K::xmm_rm
            | K::al
            | K::cl
            | K::ax
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
    )
}

fn code_forms(family: Family, names: &[&str]) -> Vec<Form> {
    let mut out = Vec::new();
    for code in Code::values() {
        let mn = format!("{:?}", code.mnemonic());
        // `*_F6r1`/`*_F7r1`: the undocumented `test r/m, imm` aliases.
        let alias = format!("{code:?}").contains("_F6r1") || format!("{code:?}").contains("_F7r1");
        if !names.contains(&mn.as_str()) || EXCLUDED_CODES.contains(&code) || alias {
            continue;
        }
        let op = code.op_code();
        let enc_ok = match op.encoding() {
            EncodingKind::Legacy => true,
            EncodingKind::VEX => family == Family::Alu,
            _ => false,
        };
        if !enc_ok
            || !op.is_instruction()
            || !op.mode64()
            || op.fwait()
            || !op.op_kinds().iter().all(|&k| supported_kind(k))
            || !code.cpuid_features().iter().all(|&f| host_has(f))
        {
            continue;
        }
        // Far/segment/16-bit stack forms of push/pop are filtered by their
        // operand kinds; keep only pushes of 64-bit or 16-bit values.
        out.push(Form {
            name: format!("{code:?}"),
            family,
            kind: FormKind::Code(code),
        });
    }
    out
}

/// The whole catalogue, in a fixed order.
pub fn forms() -> &'static [Form] {
    static FORMS: OnceLock<Vec<Form>> = OnceLock::new();
    FORMS.get_or_init(build_forms)
}

/// The catalogue entries of one family.
pub fn family_forms(family: Family) -> impl Iterator<Item = (usize, &'static Form)> {
    forms()
        .iter()
        .enumerate()
        .filter(move |(_, f)| f.family == family)
}

fn build_forms() -> Vec<Form> {
    let mut v = Vec::new();
    v.extend(code_forms(Family::Alu, ALU));
    v.extend(code_forms(Family::Shift, SHIFT));
    v.extend(code_forms(Family::MulDiv, MULDIV));
    for op in [
        StrOp::Movs,
        StrOp::Stos,
        StrOp::Lods,
        StrOp::Cmps,
        StrOp::Scas,
    ] {
        let reps: &[RepPrefixKind] = match op {
            StrOp::Cmps | StrOp::Scas => &[
                RepPrefixKind::None,
                RepPrefixKind::Repe,
                RepPrefixKind::Repne,
            ],
            _ => &[RepPrefixKind::None, RepPrefixKind::Repe],
        };
        for &size in &[1u32, 2, 4, 8] {
            for &rep in reps {
                let rep_name = match rep {
                    RepPrefixKind::None => "",
                    RepPrefixKind::Repe => {
                        if matches!(op, StrOp::Cmps | StrOp::Scas) {
                            "repe_"
                        } else {
                            "rep_"
                        }
                    }
                    _ => "repne_",
                };
                let suffix = match size {
                    1 => "b",
                    2 => "w",
                    4 => "d",
                    _ => "q",
                };
                v.push(Form {
                    name: format!("{rep_name}{}{suffix}", format!("{op:?}").to_lowercase()),
                    family: Family::String,
                    kind: FormKind::Str(op, size, rep),
                });
            }
        }
    }
    v.extend(code_forms(Family::SseInt, SSE_INT));
    v.extend(code_forms(Family::SseFp, SSE_FP));
    let templates: &[(&str, Family, TemplateFn)] = &[
        ("ldmxcsr_valid", Family::SseFp, t_ldmxcsr),
        ("x87_fld_fstp_m64", Family::X87, t_fld_fstp),
        ("x87_fild_fistp_m16", Family::X87, |r| t_fild_fistp(r, 2)),
        ("x87_fild_fistp_m32", Family::X87, |r| t_fild_fistp(r, 4)),
        ("x87_fild_fistp_m64", Family::X87, |r| t_fild_fistp(r, 8)),
        ("x87_fild_fstp_m64_rc", Family::X87, t_fild_fstp_rc),
        ("x87_fld_fistp_m64_rc", Family::X87, t_fld_fistp_rc),
        ("x87_fldcw_fnstcw", Family::X87, t_fldcw_fnstcw),
        ("pf_read_guard", Family::Faults, t_pf_read),
        ("pf_write_guard", Family::Faults, t_pf_write),
        ("pf_read_crossing", Family::Faults, t_pf_cross_read),
        ("pf_write_crossing", Family::Faults, t_pf_cross_write),
        ("pf_rmw_guard", Family::Faults, t_pf_rmw),
        ("pf_sse_crossing", Family::Faults, t_pf_sse),
        ("pf_rep_stosb", Family::Faults, t_pf_rep_stos),
        ("gp_movaps_misaligned", Family::Faults, t_gp_movaps),
        (
            "gp_movdqa_store_misaligned",
            Family::Faults,
            t_gp_movdqa_store,
        ),
        ("gp_noncanonical", Family::Faults, t_gp_noncanonical),
        ("gp_hlt", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Hlt)])
        }),
        ("gp_cli", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Cli)])
        }),
        ("gp_sti", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Sti)])
        }),
        ("gp_rdmsr", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Rdmsr)])
        }),
        ("gp_wrmsr", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Wrmsr)])
        }),
        ("gp_clts", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Clts)])
        }),
        ("gp_wbinvd", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Wbinvd)])
        }),
        ("gp_swapgs", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Swapgs)])
        }),
        ("gp_mov_r64_cr0", Family::Faults, |_| {
            Ok(vec![Instruction::with2(
                Code::Mov_r64_cr,
                Register::RAX,
                Register::CR0,
            )?])
        }),
        ("gp_mov_cr3_r64", Family::Faults, |_| {
            Ok(vec![Instruction::with2(
                Code::Mov_cr_r64,
                Register::CR3,
                Register::RCX,
            )?])
        }),
        ("gp_in_al_dx", Family::Faults, |_| {
            Ok(vec![Instruction::with2(
                Code::In_AL_DX,
                Register::AL,
                Register::DX,
            )?])
        }),
        ("gp_out_dx_eax", Family::Faults, |_| {
            Ok(vec![Instruction::with2(
                Code::Out_DX_EAX,
                Register::DX,
                Register::EAX,
            )?])
        }),
        ("gp_in_al_imm8", Family::Faults, |r| {
            Ok(vec![Instruction::with2(
                Code::In_AL_imm8,
                Register::AL,
                i32::try_from(r.range(0, 255)).unwrap_or(0),
            )?])
        }),
        ("gp_out_imm8_al", Family::Faults, |r| {
            Ok(vec![Instruction::with2(
                Code::Out_imm8_AL,
                i32::try_from(r.range(0, 255)).unwrap_or(0),
                Register::AL,
            )?])
        }),
        ("gp_invlpg", Family::Faults, |r| {
            Ok(vec![Instruction::with1(Code::Invlpg_m, scratch_mem(r, 1))?])
        }),
        ("gp_lgdt", Family::Faults, |r| {
            Ok(vec![Instruction::with1(
                Code::Lgdt_m1664,
                scratch_mem(r, 8),
            )?])
        }),
        ("ud_ud2", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Ud2)])
        }),
        ("ud_lock_reg", Family::Faults, t_ud_lock),
        ("ud_invalid_opcode", Family::Faults, |r| {
            // 06 (push es), 27 (daa), D6 (salc) are invalid in 64-bit mode.
            Ok(vec![Instruction::with_declare_byte_1(
                r.pick(&[0x06, 0x27, 0xd6, 0x37]),
            )])
        }),
        ("bp_int3", Family::Faults, |_| {
            Ok(vec![Instruction::with(Code::Int3)])
        }),
        ("de_div_zero", Family::Faults, t_de_div0),
        ("de_idiv_overflow", Family::Faults, t_de_idiv_overflow),
        ("xm_unmasked", Family::Faults, t_xm_unmasked),
    ];
    for (name, family, f) in templates {
        v.push(Form {
            name: (*name).to_string(),
            family: *family,
            kind: FormKind::Template(*f),
        });
    }
    v
}

// ---------------------------------------------------------------------------
// Operands.

const R8: &[Register] = &[
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::AH,
    Register::CH,
    Register::DH,
    Register::BH,
    Register::BPL,
    Register::SIL,
    Register::DIL,
    Register::R8L,
    Register::R9L,
    Register::R10L,
    Register::R11L,
    Register::R12L,
    Register::R13L,
    Register::R14L,
];
const R16: &[Register] = &[
    Register::AX,
    Register::CX,
    Register::DX,
    Register::BX,
    Register::BP,
    Register::SI,
    Register::DI,
    Register::R8W,
    Register::R9W,
    Register::R10W,
    Register::R11W,
    Register::R12W,
    Register::R13W,
    Register::R14W,
];
const R32: &[Register] = &[
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::EBP,
    Register::ESI,
    Register::EDI,
    Register::R8D,
    Register::R9D,
    Register::R10D,
    Register::R11D,
    Register::R12D,
    Register::R13D,
    Register::R14D,
];
const R64: &[Register] = &[
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
];
const XMM: &[Register] = &[
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
    Register::XMM8,
    Register::XMM9,
    Register::XMM10,
    Register::XMM11,
    Register::XMM12,
    Register::XMM13,
    Register::XMM14,
    Register::XMM15,
];

/// `[r15 + disp]` for an access of `size` bytes that stays in the scratch
/// pages, aligned to `size` (up to 16) most of the time.
fn scratch_mem(r: &mut Rng, size: u64) -> MemoryOperand {
    let size = size.clamp(1, 512);
    let lo = -0x1000i64;
    let hi = 0x1000 - size.cast_signed();
    let mut d = if r.pct(50) {
        r.range(-64, 64)
    } else {
        r.range(lo, hi)
    };
    let align = size.min(16).next_power_of_two().cast_signed();
    if r.pct(92) {
        d &= !(align - 1);
    }
    MemoryOperand::with_base_displ(Register::R15, d.clamp(lo, hi))
}

fn mem_at(disp: i64) -> MemoryOperand {
    MemoryOperand::with_base_displ(Register::R15, disp)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    R(Register),
    M(MemoryOperand),
    I(i64),
}

fn build(code: Code, ops: &[Op]) -> Result<Instruction, GenError> {
    let i32_of = |v: i64| i32::try_from(v).map_err(|_| GenError::msg("immediate out of range"));
    use Op::{I, M, R};
    match *ops {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Ok(Instruction::with1(code, a)?),
        [M(a)] => Ok(Instruction::with1(code, a)?),
        [I(a)] => Ok(Instruction::with1(code, i32_of(a)?)?),
        [R(a), R(b)] => Ok(Instruction::with2(code, a, b)?),
        [R(a), M(b)] => Ok(Instruction::with2(code, a, b)?),
        [M(a), R(b)] => Ok(Instruction::with2(code, a, b)?),
        [R(a), I(b)] => Ok(Instruction::with2(code, a, b)?),
        [M(a), I(b)] => Ok(Instruction::with2(code, a, i32_of(b)?)?),
        [R(a), R(b), R(c)] => Ok(Instruction::with3(code, a, b, c)?),
        [R(a), R(b), M(c)] => Ok(Instruction::with3(code, a, b, c)?),
        [R(a), M(b), R(c)] => Ok(Instruction::with3(code, a, b, c)?),
        [M(a), R(b), R(c)] => Ok(Instruction::with3(code, a, b, c)?),
        [R(a), R(b), I(c)] => Ok(Instruction::with3(code, a, b, i32_of(c)?)?),
        [R(a), M(b), I(c)] => Ok(Instruction::with3(code, a, b, i32_of(c)?)?),
        [M(a), R(b), I(c)] => Ok(Instruction::with3(code, a, b, i32_of(c)?)?),
        _ => Err(GenError::msg("unsupported operand combination")),
    }
}

fn operand_width(code: Code) -> u64 {
    match code.op_code().operand_size() {
        16 => 16,
        32 => 32,
        64 => 64,
        _ => 8,
    }
}

fn imm_for(r: &mut Rng, code: Code, kind: K) -> i64 {
    let mn = code.mnemonic();
    if matches!(
        mn,
        Mnemonic::Cmpps | Mnemonic::Cmppd | Mnemonic::Cmpss | Mnemonic::Cmpsd
    ) {
        return r.range(0, 7);
    }
    if matches!(mn, Mnemonic::Shld | Mnemonic::Shrd) && operand_width(code) == 16 {
        return shld16_count(r);
    }
    let shiftish = matches!(
        mn,
        Mnemonic::Shl
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shld
            | Mnemonic::Shrd
            | Mnemonic::Rorx
    );
    if shiftish && r.pct(60) {
        return r.range(0, 66);
    }
    match kind {
        K::imm8_const_1 => 1,
        K::imm8 => r.range(0, 255),
        K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => r.range(-128, 127),
        K::imm16 => r.range(0, 0xffff),
        K::imm32 | K::imm32sex64 => {
            #[allow(clippy::cast_possible_truncation)]
            let v = r.int() as i32;
            i64::from(v)
        }
        _ => r.int().cast_signed(),
    }
}

/// A count for 16-bit `shld`/`shrd` whose result is defined (masked count
/// at most 16).
fn shld16_count(r: &mut Rng) -> i64 {
    r.range(0, 16) + if r.pct(30) { 32 } else { 0 }
}

fn full64(reg: Register) -> Register {
    reg.full_register()
}

/// Build one instance of a single-instruction form, with any set-up
/// instructions it needs.
fn gen_code(r: &mut Rng, code: Code) -> Result<Vec<Instruction>, GenError> {
    let op = code.op_code();
    let msize = op.memory_size().size() as u64;
    let mut ops = Vec::new();
    for &k in op.op_kinds() {
        let o = match k {
            K::r8_or_mem if r.pct(35) => Op::M(scratch_mem(r, 1)),
            K::r16_or_mem if r.pct(35) => Op::M(scratch_mem(r, msize.max(2))),
            K::r32_or_mem if r.pct(35) => Op::M(scratch_mem(r, msize.max(4))),
            K::r64_or_mem if r.pct(35) => Op::M(scratch_mem(r, msize.max(8))),
            K::xmm_or_mem if r.pct(30) => Op::M(scratch_mem(r, msize.max(1))),
            K::mem => Op::M(scratch_mem(r, msize.max(1))),
            K::r8_or_mem | K::r8_reg | K::r8_opcode => Op::R(r.pick(R8)),
            K::r16_or_mem | K::r16_reg | K::r16_opcode | K::r16_rm => Op::R(r.pick(R16)),
            K::r32_or_mem | K::r32_reg | K::r32_opcode | K::r32_rm | K::r32_vvvv => {
                Op::R(r.pick(R32))
            }
            K::r64_or_mem | K::r64_reg | K::r64_opcode | K::r64_rm | K::r64_vvvv => {
                Op::R(r.pick(R64))
            }
            K::xmm_or_mem | K::xmm_reg | K::xmm_rm => Op::R(r.pick(XMM)),
            K::al => Op::R(Register::AL),
            K::cl => Op::R(Register::CL),
            K::ax => Op::R(Register::AX),
            K::eax => Op::R(Register::EAX),
            K::rax => Op::R(Register::RAX),
            _ => Op::I(imm_for(r, code, k)),
        };
        ops.push(o);
    }
    let mut pre = Vec::new();
    let mn = code.mnemonic();
    // bt* with a memory operand and a register bit offset: keep the offset
    // small so the access stays in the scratch pages.
    if matches!(
        mn,
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
    ) && let [Op::M(_), Op::R(b)] = ops[..]
    {
        #[allow(clippy::cast_possible_truncation)]
        let v = r.range(-512, 511) as i32;
        pre.push(Instruction::with2(Code::Mov_rm64_imm32, full64(b), v)?);
    }
    // 16-bit shld/shrd by CL: counts above 16 give undefined results.
    if matches!(mn, Mnemonic::Shld | Mnemonic::Shrd)
        && operand_width(code) == 16
        && matches!(ops.last(), Some(Op::R(Register::CL)))
    {
        #[allow(clippy::cast_possible_truncation)]
        let c = shld16_count(r) as i32;
        pre.push(Instruction::with2(Code::Mov_r8_imm8, Register::CL, c)?);
    }
    // div/idiv: usually make the dividend's high half small so the quotient
    // fits; otherwise leave it random (overflow and zero divisors give #DE).
    if matches!(mn, Mnemonic::Div | Mnemonic::Idiv) && r.pct(65) {
        let signed = mn == Mnemonic::Idiv;
        let w = if let Some(Op::R(reg)) = ops.first() {
            reg.size() * 8
        } else {
            usize::try_from(msize * 8).unwrap_or(64)
        };
        pre.push(match (w, signed) {
            (8, false) => Instruction::with2(Code::Movzx_r32_rm8, Register::EAX, Register::AL)?,
            (8, true) => Instruction::with(Code::Cbw),
            (16, true) => Instruction::with(Code::Cwd),
            (32, true) => Instruction::with(Code::Cdq),
            (64, true) => Instruction::with(Code::Cqo),
            _ => Instruction::with2(Code::Xor_r32_rm32, Register::EDX, Register::EDX)?,
        });
    }
    pre.push(build(code, &ops)?);
    Ok(pre)
}

fn gen_str(
    r: &mut Rng,
    op: StrOp,
    size: u32,
    rep: RepPrefixKind,
) -> Result<Vec<Instruction>, GenError> {
    let count = if rep == RepPrefixKind::None {
        1
    } else {
        r.range(0, 12)
    };
    let span = count * i64::from(size) + 16;
    let near_guard = r.pct(8);
    let mut disp = || {
        if near_guard {
            0x1000 - r.range(1, span)
        } else {
            r.range(-0x1000 + span, 0x1000 - span)
        }
    };
    let src = disp();
    let dst = disp();
    let mut v = Vec::new();
    if matches!(op, StrOp::Movs | StrOp::Lods | StrOp::Cmps) {
        v.push(Instruction::with2(
            Code::Lea_r64_m,
            Register::RSI,
            mem_at(src),
        )?);
    }
    if matches!(op, StrOp::Movs | StrOp::Stos | StrOp::Cmps | StrOp::Scas) {
        v.push(Instruction::with2(
            Code::Lea_r64_m,
            Register::RDI,
            mem_at(dst),
        )?);
    }
    if rep != RepPrefixKind::None {
        #[allow(clippy::cast_possible_truncation)]
        v.push(Instruction::with2(
            Code::Mov_r32_imm32,
            Register::ECX,
            u32::try_from(count).unwrap_or(0),
        )?);
    }
    match r.below(4) {
        0 => v.push(Instruction::with(Code::Std)),
        1 => v.push(Instruction::with(Code::Cld)),
        _ => {}
    }
    if near_guard {
        v.push(Instruction::with(Code::Cld));
    }
    let seg = Register::None;
    let i = match (op, size) {
        (StrOp::Movs, 1) => Instruction::with_movsb(64, seg, rep)?,
        (StrOp::Movs, 2) => Instruction::with_movsw(64, seg, rep)?,
        (StrOp::Movs, 4) => Instruction::with_movsd(64, seg, rep)?,
        (StrOp::Movs, _) => Instruction::with_movsq(64, seg, rep)?,
        (StrOp::Stos, 1) => Instruction::with_stosb(64, rep)?,
        (StrOp::Stos, 2) => Instruction::with_stosw(64, rep)?,
        (StrOp::Stos, 4) => Instruction::with_stosd(64, rep)?,
        (StrOp::Stos, _) => Instruction::with_stosq(64, rep)?,
        (StrOp::Lods, 1) => Instruction::with_lodsb(64, seg, rep)?,
        (StrOp::Lods, 2) => Instruction::with_lodsw(64, seg, rep)?,
        (StrOp::Lods, 4) => Instruction::with_lodsd(64, seg, rep)?,
        (StrOp::Lods, _) => Instruction::with_lodsq(64, seg, rep)?,
        (StrOp::Cmps, 1) => Instruction::with_cmpsb(64, seg, rep)?,
        (StrOp::Cmps, 2) => Instruction::with_cmpsw(64, seg, rep)?,
        (StrOp::Cmps, 4) => Instruction::with_cmpsd(64, seg, rep)?,
        (StrOp::Cmps, _) => Instruction::with_cmpsq(64, seg, rep)?,
        (StrOp::Scas, 1) => Instruction::with_scasb(64, rep)?,
        (StrOp::Scas, 2) => Instruction::with_scasw(64, rep)?,
        (StrOp::Scas, 4) => Instruction::with_scasd(64, rep)?,
        (StrOp::Scas, _) => Instruction::with_scasq(64, rep)?,
    };
    v.push(i);
    Ok(v)
}

// ---------------------------------------------------------------------------
// Templates.

fn random_mxcsr(r: &mut Rng, unmask: bool) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let rc = (r.below(4) as u32) << 13;
    let ftz = if r.pct(25) { 1 << 15 } else { 0 };
    let daz = if r.pct(25) { 1 << 6 } else { 0 };
    #[allow(clippy::cast_possible_truncation)]
    let status = if r.pct(30) { r.below(64) as u32 } else { 0 };
    #[allow(clippy::cast_possible_truncation)]
    let masks = if unmask {
        (r.below(63) as u32) << 7
    } else {
        0x3f << 7
    };
    rc | ftz | daz | status | masks
}

fn t_ldmxcsr(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let m = scratch_mem(r, 4);
    let v = random_mxcsr(r, false);
    Ok(vec![
        Instruction::with2(Code::Mov_rm32_imm32, m, v)?,
        Instruction::with1(Code::Ldmxcsr_m32, m)?,
    ])
}

fn x87_cw(r: &mut Rng) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let pc = r.pick(&[0u32, 2, 3]) << 8;
    #[allow(clippy::cast_possible_truncation)]
    let rc = (r.below(4) as u32) << 10;
    0x7f | pc | rc
}

fn two_slots(r: &mut Rng, size: u64) -> (MemoryOperand, MemoryOperand) {
    (scratch_mem(r, size), scratch_mem(r, size))
}

fn t_fld_fstp(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let (a, b) = two_slots(r, 8);
    Ok(vec![
        Instruction::with(Code::Fninit),
        Instruction::with1(Code::Fld_m64fp, a)?,
        Instruction::with1(Code::Fstp_m64fp, b)?,
    ])
}

fn t_fild_fistp(r: &mut Rng, size: u64) -> Result<Vec<Instruction>, GenError> {
    let (a, b) = two_slots(r, size);
    let (ld, st) = match size {
        2 => (Code::Fild_m16int, Code::Fistp_m16int),
        4 => (Code::Fild_m32int, Code::Fistp_m32int),
        _ => (Code::Fild_m64int, Code::Fistp_m64int),
    };
    Ok(vec![
        Instruction::with(Code::Fninit),
        Instruction::with1(ld, a)?,
        Instruction::with1(st, b)?,
    ])
}

fn with_cw(r: &mut Rng, mut body: Vec<Instruction>) -> Result<Vec<Instruction>, GenError> {
    let m = scratch_mem(r, 2);
    let cw = x87_cw(r);
    let mut v = vec![
        Instruction::with(Code::Fninit),
        Instruction::with2(Code::Mov_rm16_imm16, m, cw)?,
        Instruction::with1(Code::Fldcw_m2byte, m)?,
    ];
    v.append(&mut body);
    Ok(v)
}

fn t_fild_fstp_rc(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let (a, b) = two_slots(r, 8);
    let body = vec![
        Instruction::with1(Code::Fild_m64int, a)?,
        Instruction::with1(Code::Fstp_m64fp, b)?,
    ];
    with_cw(r, body)
}

fn t_fld_fistp_rc(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let (a, b) = two_slots(r, 8);
    let st = r.pick(&[Code::Fistp_m64int, Code::Fistp_m32int, Code::Fistp_m16int]);
    let body = vec![
        Instruction::with1(Code::Fld_m64fp, a)?,
        Instruction::with1(st, b)?,
    ];
    with_cw(r, body)
}

fn t_fldcw_fnstcw(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let b = scratch_mem(r, 2);
    let body = vec![Instruction::with1(Code::Fnstcw_m2byte, b)?];
    with_cw(r, body)
}

fn guard_disp(r: &mut Rng) -> i64 {
    0x1000 + r.range(0, 0xff8)
}

fn t_pf_read(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    Ok(vec![Instruction::with2(
        Code::Mov_r64_rm64,
        r.pick(R64),
        mem_at(guard_disp(r)),
    )?])
}

fn t_pf_write(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    Ok(vec![Instruction::with2(
        Code::Mov_rm32_r32,
        mem_at(guard_disp(r)),
        r.pick(R32),
    )?])
}

fn t_pf_cross_read(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let (code, size, reg) = match r.below(3) {
        0 => (Code::Mov_r16_rm16, 2, r.pick(R16)),
        1 => (Code::Mov_r32_rm32, 4, r.pick(R32)),
        _ => (Code::Mov_r64_rm64, 8, r.pick(R64)),
    };
    Ok(vec![Instruction::with2(
        code,
        reg,
        mem_at(0x1000 - r.range(1, size - 1)),
    )?])
}

fn t_pf_cross_write(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let (code, size, reg) = match r.below(3) {
        0 => (Code::Mov_rm16_r16, 2, r.pick(R16)),
        1 => (Code::Mov_rm32_r32, 4, r.pick(R32)),
        _ => (Code::Mov_rm64_r64, 8, r.pick(R64)),
    };
    Ok(vec![Instruction::with2(
        code,
        mem_at(0x1000 - r.range(1, size - 1)),
        reg,
    )?])
}

fn t_pf_rmw(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let code = r.pick(&[Code::Add_rm64_r64, Code::Xadd_rm64_r64, Code::Xchg_rm64_r64]);
    Ok(vec![Instruction::with2(
        code,
        mem_at(0x1000 - r.range(0, 7)),
        r.pick(R64),
    )?])
}

fn t_pf_sse(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let m = mem_at(0x1000 - r.range(1, 15));
    Ok(vec![if r.pct(50) {
        Instruction::with2(Code::Movups_xmm_xmmm128, r.pick(XMM), m)?
    } else {
        Instruction::with2(Code::Movdqu_xmmm128_xmm, m, r.pick(XMM))?
    }])
}

fn t_pf_rep_stos(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let n = r.range(1, 40);
    #[allow(clippy::cast_possible_truncation)]
    Ok(vec![
        Instruction::with2(
            Code::Lea_r64_m,
            Register::RDI,
            mem_at(0x1000 - r.range(0, n)),
        )?,
        Instruction::with2(
            Code::Mov_r32_imm32,
            Register::ECX,
            u32::try_from(n).unwrap_or(0),
        )?,
        Instruction::with(Code::Cld),
        Instruction::with_stosb(64, RepPrefixKind::Repe)?,
    ])
}

fn t_gp_movaps(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let d = (r.range(-200, 200) * 16) + r.range(1, 15);
    Ok(vec![Instruction::with2(
        Code::Movaps_xmm_xmmm128,
        r.pick(XMM),
        mem_at(d),
    )?])
}

fn t_gp_movdqa_store(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let d = (r.range(-200, 200) * 16) + r.range(1, 15);
    Ok(vec![Instruction::with2(
        Code::Movdqa_xmmm128_xmm,
        mem_at(d),
        r.pick(XMM),
    )?])
}

fn t_gp_noncanonical(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let hi = if r.pct(50) {
        0x8000_0000_0000_0000u64
    } else {
        0x0000_8000_0000_0000
    };
    let addr = hi | (r.next_u64() & 0x0000_7fff_ffff_fff0);
    Ok(vec![
        Instruction::with2(Code::Mov_r64_imm64, Register::RAX, addr)?,
        Instruction::with2(
            Code::Mov_r64_rm64,
            Register::RBX,
            MemoryOperand::with_base(Register::RAX),
        )?,
    ])
}

fn t_ud_lock(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut i = Instruction::with2(Code::Add_rm32_r32, r.pick(R32), r.pick(R32))?;
    i.set_has_lock_prefix(true);
    Ok(vec![i])
}

fn t_de_div0(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let code = r.pick(&[
        Code::Div_rm32,
        Code::Idiv_rm32,
        Code::Div_rm64,
        Code::Idiv_rm8,
    ]);
    let reg = match code {
        Code::Div_rm64 => Register::RBX,
        Code::Idiv_rm8 => Register::BL,
        _ => Register::EBX,
    };
    Ok(vec![
        Instruction::with2(Code::Xor_r32_rm32, Register::EBX, Register::EBX)?,
        Instruction::with1(code, reg)?,
    ])
}

fn t_de_idiv_overflow(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let _ = r;
    Ok(vec![
        Instruction::with2(Code::Mov_r64_imm64, Register::RAX, 0x8000_0000_0000_0000u64)?,
        Instruction::with(Code::Cqo),
        Instruction::with2(Code::Mov_rm64_imm32, Register::RCX, -1)?,
        Instruction::with1(Code::Idiv_rm64, Register::RCX)?,
    ])
}

fn t_xm_unmasked(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let m = scratch_mem(r, 4);
    let v = random_mxcsr(r, true) & !0x3f;
    let (a, b) = (r.pick(XMM), r.pick(XMM));
    let op = r.pick(&[
        Code::Divps_xmm_xmmm128,
        Code::Divsd_xmm_xmmm64,
        Code::Sqrtpd_xmm_xmmm128,
        Code::Addss_xmm_xmmm32,
        Code::Mulpd_xmm_xmmm128,
        Code::Cvttsd2si_r32_xmmm64,
        Code::Cvtpd2ps_xmm_xmmm128,
        Code::Comisd_xmm_xmmm64,
    ]);
    let dst = if op == Code::Cvttsd2si_r32_xmmm64 {
        r.pick(R32)
    } else {
        a
    };
    Ok(vec![
        Instruction::with2(Code::Mov_rm32_imm32, m, v)?,
        Instruction::with1(Code::Ldmxcsr_m32, m)?,
        Instruction::with2(op, dst, b)?,
    ])
}

// ---------------------------------------------------------------------------
// Cases.

/// One generated test case: the sequence, its encoding at [`CODE_VA`], and
/// the input registers and memory.
#[derive(Clone, Debug)]
pub struct Case {
    family: Family,
    seed: u64,
    forms: Vec<usize>,
    insns: Vec<Instruction>,
    code: Vec<u8>,
    input: ArchState,
    scratch: Vec<u8>,
    stack: Vec<u8>,
}

impl Case {
    fn assemble(
        family: Family,
        seed: u64,
        forms: Vec<usize>,
        built: &[Instruction],
        input: ArchState,
        scratch: Vec<u8>,
        stack: Vec<u8>,
    ) -> Result<Self, GenError> {
        let code = encode_at(CODE_VA, built)?;
        let mut dec = Decoder::with_ip(64, &code, CODE_VA, DecoderOptions::NONE);
        let insns: Vec<Instruction> = dec.iter().collect();
        Ok(Self {
            family,
            seed,
            forms,
            insns,
            code,
            input,
            scratch,
            stack,
        })
    }

    /// The family it was generated for.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }
    /// The seed it was generated from.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Indexes into [`forms`] of the forms used (in order).
    #[must_use]
    pub fn forms(&self) -> &[usize] {
        &self.forms
    }
    /// The decoded sequence (IPs from [`CODE_VA`]).
    #[must_use]
    pub fn instructions(&self) -> &[Instruction] {
        &self.insns
    }
    /// The encoded sequence, to be placed at [`CODE_VA`].
    #[must_use]
    pub fn code(&self) -> &[u8] {
        &self.code
    }
    /// The input registers.
    #[must_use]
    pub fn input(&self) -> &ArchState {
        &self.input
    }
    /// The initial scratch area.
    #[must_use]
    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }
    /// The initial stack page.
    #[must_use]
    pub fn stack(&self) -> &[u8] {
        &self.stack
    }
    /// The end of the sequence (RIP on completion).
    #[must_use]
    pub fn end(&self) -> u64 {
        CODE_VA + self.code.len() as u64
    }

    /// The same case without the instruction at `index` (for minimising).
    /// `None` if nothing would be left.
    #[must_use]
    pub fn without(&self, index: usize) -> Option<Self> {
        if self.insns.len() <= 1 || index >= self.insns.len() {
            return None;
        }
        let mut built = self.insns.clone();
        built.remove(index);
        Self::assemble(
            self.family,
            self.seed,
            self.forms.clone(),
            &built,
            self.input.clone(),
            self.scratch.clone(),
            self.stack.clone(),
        )
        .ok()
    }

    /// The same case with a different input state (for minimising).
    #[must_use]
    pub fn with_input(&self, input: ArchState) -> Self {
        let mut c = self.clone();
        c.input = input;
        c
    }
}

/// Flags (iced [`RflagsBits`]) one instruction leaves undefined.
///
/// iced-x86 decides `rcl`/`rcr` by an immediate from the count *modulo 9 or
/// 17*; the SDM (and the host) leave OF undefined whenever the masked count
/// (`imm & 31`) is above 1, so that case is added here.
#[must_use]
pub fn insn_undefined(i: &Instruction) -> u32 {
    let rc = matches!(i.mnemonic(), Mnemonic::Rcl | Mnemonic::Rcr)
        && i.op_count() == 2
        && i.op1_kind() == iced_x86::OpKind::Immediate8
        && (i.immediate8() & 31) > 1;
    i.rflags_undefined() | if rc { RflagsBits::OF } else { 0 }
}

/// Flags (iced [`RflagsBits`]) that `i` certainly writes whatever its
/// operands: iced-x86's `rflags_modified`, except for instructions whose
/// flag update depends on a run-time count and can be skipped entirely
/// (they redefine nothing): `rep`/`repe`/`repne` `cmps`/`scas` (RCX may be
/// 0), shifts and rotates by CL (the masked count may be 0) and by an
/// immediate whose masked count (or `rcl`/`rcr` rotation count) is 0.
#[must_use]
pub fn rflags_written(i: &Instruction) -> u32 {
    use iced_x86::OpKind;
    let m = i.mnemonic();
    let string_rep = (i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix())
        && matches!(
            m,
            Mnemonic::Cmpsb
                | Mnemonic::Cmpsw
                | Mnemonic::Cmpsd
                | Mnemonic::Cmpsq
                | Mnemonic::Scasb
                | Mnemonic::Scasw
                | Mnemonic::Scasd
                | Mnemonic::Scasq
        );
    let shift = matches!(
        m,
        Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Shld
            | Mnemonic::Shrd
    );
    let count_may_be_zero = shift && {
        let last = i.op_count().saturating_sub(1);
        match i.op_kind(last) {
            OpKind::Register => true, // CL
            OpKind::Immediate8 => {
                let bits = if i.op_count() > 0 && i.op0_kind() == OpKind::Register {
                    i.op0_register().size() * 8
                } else {
                    i.memory_size().size() * 8
                };
                let c = u32::from(i.immediate8()) & if bits == 64 { 63 } else { 31 };
                let c = match (m, bits) {
                    (Mnemonic::Rcl | Mnemonic::Rcr, 8) => c % 9,
                    (Mnemonic::Rcl | Mnemonic::Rcr, 16) => c % 17,
                    _ => c,
                };
                c == 0
            }
            _ => false, // shift by 1
        }
    };
    if string_rep || count_may_be_zero {
        0
    } else {
        i.rflags_modified()
    }
}

/// Flags (iced [`RflagsBits`]) left undefined after running `insns`.
#[must_use]
pub fn undefined_after(insns: &[Instruction]) -> u32 {
    insns.iter().fold(0, |undef, i| {
        (undef & !rflags_written(i)) | insn_undefined(i)
    })
}

/// Convert iced [`RflagsBits`] to architectural RFLAGS bits.
#[must_use]
pub fn iced_to_rflags(bits: u32) -> u64 {
    use crate::state::rflags as f;
    [
        (RflagsBits::CF, f::CF),
        (RflagsBits::PF, f::PF),
        (RflagsBits::AF, f::AF),
        (RflagsBits::ZF, f::ZF),
        (RflagsBits::SF, f::SF),
        (RflagsBits::OF, f::OF),
        (RflagsBits::DF, f::DF),
    ]
    .iter()
    .filter(|(i, _)| bits & i != 0)
    .fold(0, |a, (_, r)| a | r)
}

fn random_input(r: &mut Rng, family: Family) -> ArchState {
    use crate::state::{reg, rflags};
    let mut s = ArchState::default();
    for g in &mut s.gpr {
        *g = r.int();
    }
    s.gpr[reg::RSP] = STACK_TOP;
    s.gpr[super::BASE_REG] = SCRATCH_BASE;
    s.rflags = rflags::RESERVED1 | rflags::IF | (r.next_u64() & rflags::STATUS);
    if r.pct(if family == Family::String { 50 } else { 20 }) {
        s.rflags |= rflags::DF;
    }
    for x in &mut s.xmm {
        *x = r.xmm();
    }
    s.mxcsr = random_mxcsr(r, false);
    s.rip = CODE_VA;
    s
}

fn random_memory(r: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let w = match r.below(4) {
            0 => r.int(),
            1 => r.f64_bits(),
            2 => u64::from(r.f32_bits()) | (u64::from(r.f32_bits()) << 32),
            _ => r.next_u64(),
        };
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn build_form(r: &mut Rng, form: &Form) -> Result<Vec<Instruction>, GenError> {
    match form.kind {
        FormKind::Code(c) => gen_code(r, c),
        FormKind::Str(op, size, rep) => gen_str(r, op, size, rep),
        FormKind::Template(f) => f(r),
    }
}

/// Instances of `form` that encode (some random operand choices, such as
/// AH with a REX prefix, do not).
fn try_form(r: &mut Rng, form: &Form) -> Option<Vec<Instruction>> {
    for _ in 0..16 {
        if let Ok(v) = build_form(r, form)
            && encode_at(CODE_VA, &v).is_ok()
        {
            return Some(v);
        }
    }
    None
}

/// Generate the case with this seed. `family_forms` of the family are
/// chosen uniformly; the faults family puts one fault form after up to
/// three forms from the other families.
#[must_use]
pub fn generate(family: Family, seed: u64) -> Case {
    let mut r = Rng::new(seed);
    let all = forms();
    let pool: Vec<usize> = family_forms(family).map(|(i, _)| i).collect();
    let (prefix_pool, n_prefix, n_main): (Vec<usize>, u64, u64) = if family == Family::Faults {
        let others: Vec<usize> = (0..all.len())
            .filter(|&i| !matches!(all[i].family, Family::Faults | Family::X87))
            .collect();
        (others, r.below(4), 1)
    } else {
        (Vec::new(), 0, r.range(1, 8).cast_unsigned())
    };
    let mut built: Vec<Instruction> = Vec::new();
    let mut used = Vec::new();
    let mut undef = 0u32;
    let slots = (0..n_prefix)
        .map(|_| true)
        .chain((0..n_main).map(|_| false));
    for from_prefix in slots.collect::<Vec<_>>() {
        let src = if from_prefix { &prefix_pool } else { &pool };
        if src.is_empty() {
            continue;
        }
        let mut placed = false;
        for attempt in 0..24 {
            let fi = src[r.index(src.len())];
            let Some(group) = try_form(&mut r, &all[fi]) else {
                continue;
            };
            // Reject a group that reads a flag that is undefined here.
            let mut u = undef;
            let mut ok = true;
            for i in &group {
                if i.rflags_read() & u != 0 {
                    ok = false;
                    break;
                }
                u = (u & !rflags_written(i)) | insn_undefined(i);
            }
            if !ok && attempt >= 12 {
                // Define every status flag, then use the group.
                if let Ok(c) = Instruction::with2(Code::Cmp_rm64_r64, Register::RAX, Register::RAX)
                {
                    built.push(c);
                    undef = 0;
                    u = group
                        .iter()
                        .fold(0, |u, i| (u & !rflags_written(i)) | insn_undefined(i));
                    ok = true;
                }
            }
            if ok {
                built.extend(group);
                used.push(fi);
                undef = u;
                placed = true;
                break;
            }
        }
        let _ = placed;
    }
    if built.is_empty() {
        built.push(Instruction::with(Code::Nopd));
    }
    let input = random_input(&mut r, family);
    let scratch = random_memory(&mut r, SCRATCH_LEN);
    let stack = random_memory(&mut r, STACK_LEN);
    Case::assemble(family, seed, used, &built, input, scratch, stack)
        .unwrap_or_else(|e| panic!("generated sequence does not encode: {e}"))
}

/// A case made of exactly one instance of the catalogue form called
/// `name` (for targeted tests); `None` if there is no such form.
#[must_use]
pub fn generate_form(name: &str, seed: u64) -> Option<Case> {
    let (fi, form) = forms().iter().enumerate().find(|(_, f)| f.name == name)?;
    let mut r = Rng::new(seed);
    let built = try_form(&mut r, form)?;
    let input = random_input(&mut r, form.family);
    let scratch = random_memory(&mut r, SCRATCH_LEN);
    let stack = random_memory(&mut r, STACK_LEN);
    Case::assemble(form.family, seed, vec![fi], &built, input, scratch, stack).ok()
}

/// Per-family form counts (for reports).
#[must_use]
pub fn catalogue_summary() -> BTreeMap<Family, usize> {
    let mut m = BTreeMap::new();
    for f in forms() {
        *m.entry(f.family).or_insert(0) += 1;
    }
    m
}
