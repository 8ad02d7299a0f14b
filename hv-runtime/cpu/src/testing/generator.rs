//! Random instruction sequences and input states.
//!
//! The catalogue ([`forms`]) lists every instruction *form* the generator can
//! emit, grouped in [`Family`]s. Most forms are one iced-x86 [`Code`] picked
//! from a per-family mnemonic list and filtered to what this generator can
//! build operands for (legacy or BMI VEX encoding, 64-bit mode, no MMX, no
//! segment or control registers) and what the host CPU supports; the rest
//! are templates (string operations with their set-up, x87 state
//! round trips, deliberate faults). x87 instructions get one form per
//! encoding, each run on a random 80-bit stack and observed through FSW and
//! an 80-bit dump of all eight registers (`gen_x87`).
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
//! `syscall`/`sysenter` (they would enter the host kernel), MMX, and of
//! the x87: transcendental and BCD instructions, `fprem`/`fprem1`/`fscale`/
//! `fxtract`, the 16-bit-operand
//! environment layouts, and FOP/FIP/FDP (cleared in saved images before they
//! are compared: the interpreter does not keep them).

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
    /// x87: every implemented instruction form, environment and FXSAVE
    /// images, unmasked exceptions and #MF.
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
        #[expect(clippy::cast_possible_truncation)]
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
        #[expect(clippy::cast_possible_truncation)]
        let r = (self.next_u64() as u32) & 0x7f7f_ffff;
        f32::from_bits(r)
    }

    /// A 128-bit XMM value: packed floats, doubles, integers or random bits.
    pub fn xmm(&mut self) -> u128 {
        match self.below(5) {
            0 => (0..4).fold(0u128, |a, i| a | (u128::from(self.f32_bits()) << (32 * i))),
            1 => u128::from(self.f64_bits()) | (u128::from(self.f64_bits()) << 64),
            2 => (0..8).fold(0u128, |a, i| {
                #[expect(clippy::cast_possible_truncation)]
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
    /// One x87 instruction with a loaded stack and a dump (see `gen_x87`).
    X87(Code),
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
    "Reservednop",
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
    // SSE3
    "Lddqu",
    // SSSE3
    "Pshufb",
    "Palignr",
    "Phaddw",
    "Phaddd",
    "Phaddsw",
    "Phsubw",
    "Phsubd",
    "Phsubsw",
    "Pmaddubsw",
    "Pmulhrsw",
    "Psignb",
    "Psignw",
    "Psignd",
    "Pabsb",
    "Pabsw",
    "Pabsd",
    // SSE4.1
    "Pblendvb",
    "Pblendw",
    "Mpsadbw",
    "Phminposuw",
    "Pmulld",
    "Pmuldq",
    "Pminsb",
    "Pmaxsb",
    "Pminuw",
    "Pmaxuw",
    "Pminsd",
    "Pmaxsd",
    "Pminud",
    "Pmaxud",
    "Pcmpeqq",
    "Packusdw",
    "Ptest",
    "Pmovzxbw",
    "Pmovzxbd",
    "Pmovzxbq",
    "Pmovzxwd",
    "Pmovzxwq",
    "Pmovzxdq",
    "Pmovsxbw",
    "Pmovsxbd",
    "Pmovsxbq",
    "Pmovsxwd",
    "Pmovsxwq",
    "Pmovsxdq",
    "Pextrb",
    "Pextrd",
    "Pextrq",
    "Pinsrb",
    "Pinsrd",
    "Pinsrq",
    "Movntdqa",
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
    // SSE3
    "Addsubps",
    "Addsubpd",
    "Haddps",
    "Haddpd",
    "Hsubps",
    "Hsubpd",
    "Movshdup",
    "Movsldup",
    "Movddup",
    // SSE4.1
    "Blendps",
    "Blendpd",
    "Blendvps",
    "Blendvpd",
    "Dpps",
    "Dppd",
    "Extractps",
    "Insertps",
    "Roundps",
    "Roundpd",
    "Roundss",
    "Roundsd",
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
        | CpuidFeature::SSE2
        | CpuidFeature::MULTIBYTENOP => true,
        CpuidFeature::POPCNT => std::is_x86_feature_detected!("popcnt"),
        CpuidFeature::LZCNT => std::is_x86_feature_detected!("lzcnt"),
        CpuidFeature::BMI1 => std::is_x86_feature_detected!("bmi1"),
        CpuidFeature::BMI2 => std::is_x86_feature_detected!("bmi2"),
        CpuidFeature::CMPXCHG16B => std::is_x86_feature_detected!("cmpxchg16b"),
        CpuidFeature::SSE3 => std::is_x86_feature_detected!("sse3"),
        CpuidFeature::SSSE3 => std::is_x86_feature_detected!("ssse3"),
        CpuidFeature::SSE4_1 => std::is_x86_feature_detected!("sse4.1"),
        _ => false,
    }
}

/// The optional SIMD extensions whose forms the catalogue leaves out because
/// the host CPU lacks them (the differential tests print this as the reason
/// those forms are skipped).
#[must_use]
pub fn host_missing_features() -> Vec<&'static str> {
    [
        (CpuidFeature::SSE3, "SSE3"),
        (CpuidFeature::SSSE3, "SSSE3"),
        (CpuidFeature::SSE4_1, "SSE4.1"),
        (CpuidFeature::POPCNT, "POPCNT"),
        (CpuidFeature::LZCNT, "LZCNT"),
        (CpuidFeature::BMI1, "BMI1"),
        (CpuidFeature::BMI2, "BMI2"),
        (CpuidFeature::CMPXCHG16B, "CMPXCHG16B"),
    ]
    .into_iter()
    .filter(|(f, _)| !host_has(*f))
    .map(|(_, n)| n)
    .collect()
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

fn code_forms(family: Family, names: &[&str], skipped: &mut Vec<SkippedForm>) -> Vec<Form> {
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
        {
            continue;
        }
        let missing: Vec<String> = code
            .cpuid_features()
            .iter()
            .filter(|&&f| !host_has(f))
            .map(|f| format!("{f:?}"))
            .collect();
        if !missing.is_empty() {
            skipped.push(SkippedForm {
                name: format!("{code:?}"),
                family,
                reason: format!("the host CPU lacks {}", missing.join("+")),
            });
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

/// A form of the catalogue that cannot be compared on this host, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedForm {
    /// The form's name (as in [`Form::name`]).
    pub name: String,
    /// The family it would belong to.
    pub family: Family,
    /// Why it is not generated here.
    pub reason: String,
}

fn catalogue() -> &'static (Vec<Form>, Vec<SkippedForm>) {
    static FORMS: OnceLock<(Vec<Form>, Vec<SkippedForm>)> = OnceLock::new();
    FORMS.get_or_init(build_forms)
}

/// The whole catalogue, in a fixed order.
pub fn forms() -> &'static [Form] {
    &catalogue().0
}

/// The forms of `family` that this host cannot run, so they are not
/// generated here (each with its reason). A differential run prints them:
/// no form is skipped silently.
pub fn skipped_forms(family: Family) -> impl Iterator<Item = &'static SkippedForm> {
    catalogue().1.iter().filter(move |f| f.family == family)
}

/// The catalogue entries of one family.
pub fn family_forms(family: Family) -> impl Iterator<Item = (usize, &'static Form)> {
    forms()
        .iter()
        .enumerate()
        .filter(move |(_, f)| f.family == family)
}

fn build_forms() -> (Vec<Form>, Vec<SkippedForm>) {
    let mut v = Vec::new();
    let mut skipped = Vec::new();
    v.extend(code_forms(Family::Alu, ALU, &mut skipped));
    v.extend(code_forms(Family::Shift, SHIFT, &mut skipped));
    v.extend(code_forms(Family::MulDiv, MULDIV, &mut skipped));
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
    v.extend(code_forms(Family::SseInt, SSE_INT, &mut skipped));
    v.extend(code_forms(Family::SseFp, SSE_FP, &mut skipped));
    let templates: &[(&str, Family, TemplateFn)] = &[
        ("ldmxcsr_valid", Family::SseFp, t_ldmxcsr),
        ("maskmovdqu", Family::SseInt, t_maskmovdqu),
        ("x87_fld_fstp_m64", Family::X87, t_fld_fstp),
        ("x87_fild_fistp_m16", Family::X87, |r| t_fild_fistp(r, 2)),
        ("x87_fild_fistp_m32", Family::X87, |r| t_fild_fistp(r, 4)),
        ("x87_fild_fistp_m64", Family::X87, |r| t_fild_fistp(r, 8)),
        ("x87_fild_fstp_m64_rc", Family::X87, t_fild_fstp_rc),
        ("x87_fld_fistp_m64_rc", Family::X87, t_fld_fistp_rc),
        ("x87_fldcw_fnstcw", Family::X87, t_fldcw_fnstcw),
        ("x87_fxsave_image", Family::X87, t_x87_fxsave),
        ("x87_fxrstor_state", Family::X87, t_x87_fxrstor),
        ("x87_unmasked_ou", Family::X87, t_x87_unmasked_ou),
        ("x87_fnstenv", Family::X87, t_x87_fnstenv),
        ("x87_fldenv", Family::X87, t_x87_fldenv),
        ("x87_fnsave_frstor", Family::X87, t_x87_fnsave_frstor),
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
    v.extend(x87_forms(&mut skipped));
    (v, skipped)
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
    // round*: imm8[3:0] select the rounding; the reserved bits 7:4 are
    // sometimes set too.
    if matches!(
        mn,
        Mnemonic::Roundps | Mnemonic::Roundpd | Mnemonic::Roundss | Mnemonic::Roundsd
    ) {
        return r.range(0, 15) | if r.pct(15) { r.range(1, 15) << 4 } else { 0 };
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
            #[expect(clippy::cast_possible_truncation)]
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
        #[expect(clippy::cast_possible_truncation)]
        let v = r.range(-512, 511) as i32;
        pre.push(Instruction::with2(Code::Mov_rm64_imm32, full64(b), v)?);
    }
    // 16-bit shld/shrd by CL: counts above 16 give undefined results.
    if matches!(mn, Mnemonic::Shld | Mnemonic::Shrd)
        && operand_width(code) == 16
        && matches!(ops.last(), Some(Op::R(Register::CL)))
    {
        #[expect(clippy::cast_possible_truncation)]
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

/// Whether the host has AMD's misaligned SSE mode (MXCSR.MM writable).
fn host_has_mm() -> bool {
    static MM: OnceLock<bool> = OnceLock::new();
    *MM.get_or_init(|| crate::model::CpuModel::host().misaligned_sse)
}

fn random_mxcsr(r: &mut Rng, unmask: bool) -> u32 {
    // Only hosts with MM draw for it, so on other hosts the generated cases
    // are the same as before MM existed (and as recorded in DIFF_FINDINGS).
    let mm = host_has_mm() && r.pct(20);
    let mm = if mm { crate::model::MXCSR_MM } else { 0 };
    #[expect(clippy::cast_possible_truncation)]
    let rc = (r.below(4) as u32) << 13;
    let ftz = if r.pct(25) { 1 << 15 } else { 0 };
    let daz = if r.pct(25) { 1 << 6 } else { 0 };
    #[expect(clippy::cast_possible_truncation)]
    let status = if r.pct(30) { r.below(64) as u32 } else { 0 };
    #[expect(clippy::cast_possible_truncation)]
    let masks = if unmask {
        (r.below(63) as u32) << 7
    } else {
        0x3f << 7
    };
    rc | ftz | daz | status | masks | mm
}

/// `maskmovdqu` stores through RDI: point it into the scratch pages.
fn t_maskmovdqu(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let d = r.range(-0x1000, 0x1000 - 16);
    Ok(vec![
        Instruction::with2(Code::Lea_r64_m, Register::RDI, mem_at(d))?,
        Instruction::with_maskmovdqu(64, r.pick(XMM), r.pick(XMM), Register::None)?,
    ])
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
    let pc = r.pick(&[0u32, 2, 3]) << 8;
    #[expect(clippy::cast_possible_truncation)]
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

// x87: one catalogue form per instruction encoding. Each instance starts
// from `fninit`, maybe loads a random control word (rounding, precision,
// sometimes unmasked exceptions, before or after the loads), pushes a random
// stack of m32/m64/m80/integer/constant operands, runs the instruction, then
// stores FSW to AX and pops all eight registers to memory as 80-bit values
// (empty ones give the masked stack-underflow response), so every register
// bit, tag and status flag reaches the compared state.

/// x87 mnemonics the X87 family exercises.
const X87: &[&str] = &[
    "Fld", "Fst", "Fstp", "Fild", "Fist", "Fistp", "Fisttp", "Fxch", "Fld1", "Fldz", "Fchs",
    "Fabs", "Fnstsw", "Fstsw", "Fnstcw", "Fstcw", "Fldcw", "Fnclex", "Fclex", "Fninit", "Finit",
    "Wait", "Ffree", "Ffreep", "Fldpi", "Fldl2e", "Fldl2t", "Fldlg2", "Fldln2", "Fincstp",
    "Fdecstp", "Fnop", "Fadd", "Faddp", "Fiadd", "Fsub", "Fsubp", "Fisub", "Fsubr", "Fsubrp",
    "Fisubr", "Fmul", "Fmulp", "Fimul", "Fdiv", "Fdivp", "Fidiv", "Fdivr", "Fdivrp", "Fidivr",
    "Fcom", "Fcomp", "Fcompp", "Fucom", "Fucomp", "Fucompp", "Ficom", "Ficomp", "Fcomi", "Fcomip",
    "Fucomi", "Fucomip", "Ftst", "Fxam", "Fsqrt", "Frndint", "Fcmovb", "Fcmove", "Fcmovbe",
    "Fcmovu", "Fcmovnb", "Fcmovne", "Fcmovnbe", "Fcmovnu", "Fneni", "Feni", "Fndisi", "Fdisi",
    "Fnsetpm", "Fsetpm",
];

const ST: [Register; 8] = [
    Register::ST0,
    Register::ST1,
    Register::ST2,
    Register::ST3,
    Register::ST4,
    Register::ST5,
    Register::ST6,
    Register::ST7,
];

fn x87_forms(skipped: &mut Vec<SkippedForm>) -> Vec<Form> {
    if !std::is_x86_feature_detected!("sse3") {
        for c in [
            Code::Fisttp_m16int,
            Code::Fisttp_m32int,
            Code::Fisttp_m64int,
        ] {
            skipped.push(SkippedForm {
                name: format!("x87_{c:?}"),
                family: Family::X87,
                reason: "the host CPU lacks SSE3".into(),
            });
        }
    }
    Code::values()
        .filter(|c| {
            let name = format!("{c:?}");
            let mn = format!("{:?}", c.mnemonic());
            // Undocumented alias encodings (`fcom` DC D0+i, `fxch` DD C8+i, …).
            let alias = [
                "_DCD0", "_DCD8", "_DED0", "_DDC8", "_DFC8", "_DFD0", "_DFD8",
            ]
            .iter()
            .any(|s| name.ends_with(s));
            let op = c.op_code();
            X87.contains(&mn.as_str())
                && !alias
                && op.mode64()
                && op.is_instruction()
                && (c.mnemonic() != Mnemonic::Fisttp || std::is_x86_feature_detected!("sse3"))
        })
        .map(|c| Form {
            name: format!("x87_{c:?}"),
            family: Family::X87,
            kind: FormKind::X87(c),
        })
        .collect()
}

/// A double converted exactly to the 80-bit format (little-endian bytes).
fn f64_to_f80(b: u64) -> [u8; 10] {
    let sign = if b >> 63 != 0 { 0x8000u16 } else { 0 };
    let e = ((b >> 52) & 0x7ff) as u16;
    let f = b & ((1 << 52) - 1);
    let (se, m) = match e {
        0 if f == 0 => (0, 0),
        0 => {
            let lz = f.leading_zeros();
            #[expect(clippy::cast_possible_truncation)]
            (15372 - lz as u16, f << lz)
        }
        0x7ff => (0x7fff, (1 << 63) | (f << 11)),
        _ => (e + (16383 - 1023), (1 << 63) | (f << 11)),
    };
    f80_bytes(se | sign, m)
}

fn f80_bytes(se: u16, m: u64) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&m.to_le_bytes());
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

/// A random 80-bit value: doubles, values near 1, exponent extremes, every
/// special class (denormals, pseudo-denormals, unnormals, pseudo-NaNs,
/// NaNs, infinities) and significands with few bits (rounding ties).
#[expect(clippy::cast_possible_truncation)]
fn x87_f80(r: &mut Rng) -> [u8; 10] {
    let sign: u16 = if r.pct(50) { 0x8000 } else { 0 };
    let mut m = r.next_u64() | (1 << 63);
    if r.pct(30) {
        m &= !0u64 << r.below(64);
    }
    if r.pct(10) {
        // Rounding carries all the way up.
        m = !0u64 << r.below(40);
    }
    let se = match r.below(13) {
        // Around the single/double normal and overflow boundaries (stores
        // that become tiny or overflow only after rounding).
        12 => {
            let b = r.pick(&[16383 - 126, 16383 - 1022, 16383 + 127, 16383 + 1023, 1]);
            m = (!0u64 << r.below(12)) | (r.next_u64() & 0xffff_ffff) | (1 << 63);
            u16::try_from(b + r.range(-2, 1)).unwrap_or(0)
        }
        0..=3 => return f64_to_f80(r.f64_bits()),
        4..=7 => u16::try_from(0x3fff + r.range(-70, 70)).unwrap_or(0x3fff),
        8 => match r.below(9) {
            0 => {
                m = 1 << 63;
                0x7fff
            }
            1 => {
                m |= 1 << 62;
                0x7fff
            }
            2 => {
                m = (m & !(1 << 62)) | 1;
                0x7fff
            }
            3 => {
                m >>= 1 + r.below(63) as u32;
                0
            }
            4 => 0,
            5 => {
                m &= !(1 << 63);
                u16::try_from(r.range(1, 0x7ffe)).unwrap_or(1)
            }
            6 => {
                m &= !(1 << 63);
                0x7fff
            }
            7 => {
                m = !0;
                0x7ffe
            }
            _ => {
                m = 1 << 63;
                1
            }
        },
        9 => (0x7ffe - r.below(70)) as u16,
        10 => (1 + r.below(70)) as u16,
        _ => (r.next_u64() & 0x7fff) as u16,
    };
    f80_bytes(se | sign, m)
}

/// A displacement for an x87 memory operand of `size` bytes.
fn x87_disp(r: &mut Rng, size: i64) -> i64 {
    let d = r.range(-0x1000, 0x1000 - size);
    if r.pct(90) { d & !7 } else { d }
}

/// Emit stores that put `bytes` (2, 4, 8 or 10 of them) at `[r15 + disp]`
/// (8-byte chunks go through RAX).
fn x87_poke(v: &mut Vec<Instruction>, disp: i64, bytes: &[u8]) -> Result<(), GenError> {
    let mut off = 0usize;
    while off < bytes.len() {
        let rest = &bytes[off..];
        let d = disp + i64::try_from(off).unwrap_or(0);
        if rest.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rest[..8]);
            v.push(Instruction::with2(
                Code::Mov_r64_imm64,
                Register::RAX,
                u64::from_le_bytes(b),
            )?);
            v.push(Instruction::with2(
                Code::Mov_rm64_r64,
                mem_at(d),
                Register::RAX,
            )?);
            off += 8;
        } else if rest.len() >= 4 {
            let w = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            v.push(Instruction::with2(Code::Mov_rm32_imm32, mem_at(d), w)?);
            off += 4;
        } else {
            let w = u32::from(u16::from_le_bytes([
                rest[0],
                rest.get(1).copied().unwrap_or(0),
            ]));
            v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(d), w)?);
            off += 2;
        }
    }
    Ok(())
}

/// A random memory operand value of the kind named by a code suffix.
fn x87_value(r: &mut Rng, kind: &str) -> Vec<u8> {
    match kind {
        "m32fp" => r.f32_bits().to_le_bytes().to_vec(),
        "m64fp" => r.f64_bits().to_le_bytes().to_vec(),
        "m80fp" => x87_f80(r).to_vec(),
        "m16int" => r.int().to_le_bytes()[..2].to_vec(),
        "m32int" => r.int().to_le_bytes()[..4].to_vec(),
        "m64int" => r.int().to_le_bytes().to_vec(),
        // m2byte: a control word with random rounding, precision, masks and
        // reserved bits.
        _ => {
            #[expect(clippy::cast_possible_truncation)]
            let cw = (x87_cw(r) as u16) ^ if r.pct(20) { r.next_u64() as u16 } else { 0 };
            cw.to_le_bytes().to_vec()
        }
    }
}

fn mem_len(kind: &str) -> i64 {
    match kind {
        "m32fp" | "m32int" => 4,
        "m64fp" | "m64int" => 8,
        "m80fp" => 10,
        _ => 2,
    }
}

/// Push one random operand.
fn x87_push(r: &mut Rng, v: &mut Vec<Instruction>) -> Result<(), GenError> {
    let (code, kind) = match r.below(20) {
        0..=5 => (Code::Fld_m64fp, "m64fp"),
        6..=10 => (Code::Fld_m80fp, "m80fp"),
        11..=13 => (Code::Fld_m32fp, "m32fp"),
        14 => (Code::Fild_m16int, "m16int"),
        15 => (Code::Fild_m32int, "m32int"),
        16 | 17 => (Code::Fild_m64int, "m64int"),
        18 => {
            v.push(Instruction::with(Code::Fld1));
            return Ok(());
        }
        _ => {
            v.push(Instruction::with(Code::Fldz));
            return Ok(());
        }
    };
    let d = x87_disp(r, mem_len(kind));
    x87_poke(v, d, &x87_value(r, kind))?;
    v.push(Instruction::with1(code, mem_at(d))?);
    Ok(())
}

/// Fill all eight physical registers with known values and reset: natively
/// `fninit` keeps the old register contents, which `fxsave` shows for
/// empty registers.
fn x87_fill(r: &mut Rng, v: &mut Vec<Instruction>) -> Result<(), GenError> {
    v.push(Instruction::with(Code::Fninit));
    for _ in 0..8 {
        x87_push(r, v)?;
    }
    v.push(Instruction::with(Code::Fninit));
    Ok(())
}

/// A 16-byte aligned 512-byte area in the scratch pages.
fn x87_fx_area(r: &mut Rng) -> i64 {
    r.range(-0x100, 0xe0) * 16
}

/// `fxsave64`/`fxsave` of a random x87 state into a zeroed area; FOP, FIP
/// and FDP (not kept by the interpreter) are cleared afterwards.
fn t_x87_fxsave(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut v = Vec::new();
    x87_fill(r, &mut v)?;
    if r.pct(50) {
        let d = x87_disp(r, 2);
        v.push(Instruction::with2(
            Code::Mov_rm16_imm16,
            mem_at(d),
            x87_cw(r),
        )?);
        v.push(Instruction::with1(Code::Fldcw_m2byte, mem_at(d))?);
    }
    for _ in 0..r.below(9) {
        x87_push(r, &mut v)?;
    }
    let a = x87_fx_area(r);
    x87_zero_area(&mut v, a)?;
    let save = if r.pct(50) {
        Code::Fxsave64_m512byte
    } else {
        Code::Fxsave_m512byte
    };
    v.push(Instruction::with1(save, mem_at(a))?);
    x87_clear_pointers(&mut v, a)?;
    Ok(v)
}

/// Zero the 512 bytes at `[r15 + a]` (the hardware `fxsave` leaves bytes
/// 416..512 alone).
fn x87_zero_area(v: &mut Vec<Instruction>, a: i64) -> Result<(), GenError> {
    v.push(Instruction::with2(
        Code::Lea_r64_m,
        Register::RDI,
        mem_at(a),
    )?);
    v.push(Instruction::with2(
        Code::Xor_r32_rm32,
        Register::EAX,
        Register::EAX,
    )?);
    v.push(Instruction::with2(
        Code::Mov_r32_imm32,
        Register::ECX,
        64u32,
    )?);
    v.push(Instruction::with(Code::Cld));
    v.push(Instruction::with_stosq(64, RepPrefixKind::Repe)?);
    Ok(())
}

/// Clear FOP, FIP and FDP in the image at `[r15 + a]`.
fn x87_clear_pointers(v: &mut Vec<Instruction>, a: i64) -> Result<(), GenError> {
    v.push(Instruction::with2(
        Code::Mov_rm16_imm16,
        mem_at(a + 6),
        0u32,
    )?);
    v.push(Instruction::with2(Code::Mov_rm64_imm32, mem_at(a + 8), 0)?);
    v.push(Instruction::with2(Code::Mov_rm64_imm32, mem_at(a + 16), 0)?);
    Ok(())
}

/// `fxsave64`, a changed control word, status word (TOP, flags, condition
/// codes) and tag byte in the image, `fninit`, `fxrstor64`, then the usual
/// FSW + 80-bit dump of all eight registers.
fn t_x87_fxrstor(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut v = Vec::new();
    x87_fill(r, &mut v)?;
    for _ in 0..r.below(9) {
        x87_push(r, &mut v)?;
    }
    let a = x87_fx_area(r);
    x87_zero_area(&mut v, a)?;
    v.push(Instruction::with1(Code::Fxsave64_m512byte, mem_at(a))?);
    x87_clear_pointers(&mut v, a)?;
    if r.pct(60) {
        v.push(Instruction::with2(
            Code::Mov_rm16_imm16,
            mem_at(a),
            x87_cw(r),
        )?);
    }
    if r.pct(60) {
        #[expect(clippy::cast_possible_truncation)]
        let sw = (r.next_u64() as u32) & 0x7f7f;
        v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(a + 2), sw)?);
    }
    if r.pct(60) {
        #[expect(clippy::cast_possible_truncation)]
        let tw = (r.next_u64() as u32) & 0xff;
        v.push(Instruction::with2(Code::Mov_rm8_imm8, mem_at(a + 4), tw)?);
    }
    v.push(Instruction::with(Code::Fninit));
    v.push(Instruction::with1(Code::Fxrstor64_m512byte, mem_at(a))?);
    v.push(Instruction::with1(Code::Fnstsw_AX, Register::AX)?);
    let dump = r.range(-0x1000, 0x1000 - 82);
    for j in 0..8 {
        v.push(Instruction::with1(Code::Fstp_m80fp, mem_at(dump + 10 * j))?);
    }
    v.push(Instruction::with1(Code::Fnstsw_m2byte, mem_at(dump + 80))?);
    Ok(v)
}

/// Arithmetic at the exponent extremes with overflow, underflow and
/// precision exceptions unmasked: the exponent-biased results, flags and C1
/// are observed with `fnstsw` and `fxsave64` (neither waits for the
/// pending #MF); the next waiting instruction then raises #MF.
fn t_x87_unmasked_ou(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut v = Vec::new();
    x87_fill(r, &mut v)?;
    #[expect(clippy::cast_possible_truncation)]
    let unmask = (r.below(8) as u32) << 3; // OM, UM, PM
    let cw = x87_cw(r) & !unmask;
    let d = x87_disp(r, 2);
    v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(d), cw)?);
    v.push(Instruction::with1(Code::Fldcw_m2byte, mem_at(d))?);
    for _ in 0..2 {
        let sign: u16 = if r.pct(50) { 0x8000 } else { 0 };
        let e = if r.pct(50) {
            0x7ffe - r.below(40)
        } else {
            1 + r.below(40)
        };
        let mut m = r.next_u64() | (1 << 63);
        if r.pct(30) {
            m = !0u64 << r.below(40);
        }
        let dd = x87_disp(r, 10);
        #[expect(clippy::cast_possible_truncation)]
        x87_poke(&mut v, dd, &f80_bytes(sign | e as u16, m))?;
        v.push(Instruction::with1(Code::Fld_m80fp, mem_at(dd))?);
    }
    let op = r.pick(&[
        Code::Fmul_st0_sti,
        Code::Fdiv_st0_sti,
        Code::Fdivr_st0_sti,
        Code::Fadd_st0_sti,
        Code::Fsub_st0_sti,
        Code::Fmulp_sti_st0,
        Code::Fdivp_sti_st0,
    ]);
    let (a, b) = if op == Code::Fmulp_sti_st0 || op == Code::Fdivp_sti_st0 {
        (Register::ST1, Register::ST0)
    } else {
        (Register::ST0, Register::ST1)
    };
    v.push(Instruction::with2(op, a, b)?);
    v.push(Instruction::with1(Code::Fnstsw_AX, Register::AX)?);
    let area = x87_fx_area(r);
    x87_zero_area(&mut v, area)?;
    v.push(Instruction::with1(Code::Fxsave64_m512byte, mem_at(area))?);
    x87_clear_pointers(&mut v, area)?;
    v.push(Instruction::with(Code::Wait));
    Ok(v)
}

/// Random x87 state after [`x87_fill`]: a control word (sometimes with
/// unmasked exceptions) and up to eight pushes.
fn x87_random_state(r: &mut Rng, v: &mut Vec<Instruction>) -> Result<(), GenError> {
    x87_fill(r, v)?;
    if r.pct(60) {
        let mut cw = x87_cw(r);
        if r.pct(15) {
            #[expect(clippy::cast_possible_truncation)]
            let unmask = r.below(64) as u32;
            cw &= !unmask;
        }
        let d = x87_disp(r, 2);
        v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(d), cw)?);
        v.push(Instruction::with1(Code::Fldcw_m2byte, mem_at(d))?);
    }
    for _ in 0..r.below(9) {
        x87_push(r, v)?;
    }
    Ok(())
}

/// Observe the x87 state: FSW to AX, FCW to memory, then FSW and all eight
/// registers popped as 80-bit values.
fn x87_observe(r: &mut Rng, v: &mut Vec<Instruction>) -> Result<(), GenError> {
    v.push(Instruction::with1(Code::Fnstsw_AX, Register::AX)?);
    let dump = r.range(-0x1000, 0x1000 - 84);
    v.push(Instruction::with1(Code::Fnstcw_m2byte, mem_at(dump + 82))?);
    for j in 0..8 {
        v.push(Instruction::with1(Code::Fstp_m80fp, mem_at(dump + 10 * j))?);
    }
    v.push(Instruction::with1(Code::Fnstsw_m2byte, mem_at(dump + 80))?);
    Ok(())
}

/// Clear FIP, FCS/FOP, FDP and FDS (bytes 12..28) of a 28-byte environment.
fn x87_clear_env_pointers(v: &mut Vec<Instruction>, a: i64) -> Result<(), GenError> {
    v.push(Instruction::with2(Code::Mov_rm64_imm32, mem_at(a + 12), 0)?);
    v.push(Instruction::with2(Code::Mov_rm64_imm32, mem_at(a + 20), 0)?);
    Ok(())
}

/// Random changes to FCW, FSW (TOP, flags, condition codes) and the full
/// tag word of an environment image at `[r15 + a]`.
fn x87_poke_env(r: &mut Rng, v: &mut Vec<Instruction>, a: i64) -> Result<(), GenError> {
    if r.pct(50) {
        let mut cw = x87_cw(r);
        if r.pct(30) {
            #[expect(clippy::cast_possible_truncation)]
            let unmask = r.below(64) as u32;
            cw &= !unmask;
        }
        v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(a), cw)?);
    }
    if r.pct(50) {
        #[expect(clippy::cast_possible_truncation)]
        let sw = (r.next_u64() as u32) & 0x7f7f;
        v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(a + 4), sw)?);
    }
    if r.pct(50) {
        #[expect(clippy::cast_possible_truncation)]
        let tw = (r.next_u64() as u32) & 0xffff;
        v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(a + 8), tw)?);
    }
    Ok(())
}

/// `fnstenv`/`fstenv` of a random state (the environment image, the masking
/// that follows, and the state afterwards are compared).
fn t_x87_fnstenv(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut v = Vec::new();
    x87_random_state(r, &mut v)?;
    let a = x87_disp(r, 28);
    let code = if r.pct(70) {
        Code::Fnstenv_m28byte
    } else {
        Code::Fstenv_m28byte
    };
    v.push(Instruction::with1(code, mem_at(a))?);
    x87_clear_env_pointers(&mut v, a)?;
    x87_observe(r, &mut v)?;
    Ok(v)
}

/// `fnstenv`, random changes to the image, `fldenv`, observe.
fn t_x87_fldenv(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut v = Vec::new();
    x87_random_state(r, &mut v)?;
    let a = x87_disp(r, 28);
    v.push(Instruction::with1(Code::Fnstenv_m28byte, mem_at(a))?);
    x87_clear_env_pointers(&mut v, a)?;
    x87_poke_env(r, &mut v, a)?;
    v.push(Instruction::with1(Code::Fldenv_m28byte, mem_at(a))?);
    if r.pct(50) {
        // Again, now maybe with unmasked exceptions pending.
        v.push(Instruction::with1(Code::Fldenv_m28byte, mem_at(a))?);
    }
    x87_observe(r, &mut v)?;
    Ok(v)
}

/// `fnsave`/`fsave` (image compared), random changes, `frstor`, observe.
fn t_x87_fnsave_frstor(r: &mut Rng) -> Result<Vec<Instruction>, GenError> {
    let mut v = Vec::new();
    x87_random_state(r, &mut v)?;
    let a = x87_disp(r, 108);
    let code = if r.pct(70) {
        Code::Fnsave_m108byte
    } else {
        Code::Fsave_m108byte
    };
    v.push(Instruction::with1(code, mem_at(a))?);
    x87_clear_env_pointers(&mut v, a)?;
    x87_observe(r, &mut v)?;
    x87_poke_env(r, &mut v, a)?;
    v.push(Instruction::with1(Code::Frstor_m108byte, mem_at(a))?);
    if r.pct(50) {
        v.push(Instruction::with1(Code::Frstor_m108byte, mem_at(a))?);
    }
    x87_observe(r, &mut v)?;
    Ok(v)
}

/// One instance of the x87 form `code` (see the section comment).
fn gen_x87(r: &mut Rng, code: Code) -> Result<Vec<Instruction>, GenError> {
    let name = format!("{code:?}");
    let kind = name.rsplit('_').next().unwrap_or("");
    let op = code.op_code();
    let kinds = op.op_kinds();
    let uses_sti = kinds.contains(&K::sti_opcode);
    let i = if r.pct(75) { r.below(3) } else { r.below(8) };
    let i = usize::try_from(i).unwrap_or(0);
    let mn = code.mnemonic();
    let need = if uses_sti {
        i + 1
    } else if matches!(mn, Mnemonic::Fcompp | Mnemonic::Fucompp) {
        2
    } else if matches!(
        mn,
        Mnemonic::Fld
            | Mnemonic::Fild
            | Mnemonic::Fld1
            | Mnemonic::Fldz
            | Mnemonic::Fldpi
            | Mnemonic::Fldl2e
            | Mnemonic::Fldl2t
            | Mnemonic::Fldlg2
            | Mnemonic::Fldln2
            | Mnemonic::Fninit
            | Mnemonic::Finit
            | Mnemonic::Fldcw
            | Mnemonic::Wait
            | Mnemonic::Fnop
    ) {
        0
    } else {
        1
    };
    // `fxam` of an empty ST(0) reports the sign of whatever the register
    // held before `fninit` (host state natively): keep ST(0) loaded.
    let need = if mn == Mnemonic::Fxam {
        need.max(1)
    } else {
        need
    };
    let depth = if r.pct(85) || mn == Mnemonic::Fxam {
        (need + usize::try_from(r.below(3)).unwrap_or(0)).min(8)
    } else {
        usize::try_from(r.below(9)).unwrap_or(0)
    };
    let mut v = vec![Instruction::with(Code::Fninit)];
    // Control word: often, before or after the loads; sometimes unmasked.
    let cw = if r.pct(60) {
        let mut cw = x87_cw(r);
        if r.pct(10) {
            #[expect(clippy::cast_possible_truncation)]
            let unmask = r.below(64) as u32;
            cw &= !unmask;
        }
        Some((cw, r.pct(75)))
    } else {
        None
    };
    let set_cw = |r: &mut Rng, v: &mut Vec<Instruction>, cw: u32| -> Result<(), GenError> {
        let d = x87_disp(r, 2);
        v.push(Instruction::with2(Code::Mov_rm16_imm16, mem_at(d), cw)?);
        v.push(Instruction::with1(Code::Fldcw_m2byte, mem_at(d))?);
        Ok(())
    };
    if let Some((cw, true)) = cw {
        set_cw(r, &mut v, cw)?;
    }
    for _ in 0..depth {
        x87_push(r, &mut v)?;
    }
    if let Some((cw, false)) = cw {
        set_cw(r, &mut v, cw)?;
    }
    // The instruction under test.
    let mut regs = Vec::new();
    let mut mem = None;
    for &k in kinds {
        match k {
            K::st0 => regs.push(Register::ST0),
            K::sti_opcode => regs.push(ST[i]),
            K::ax => regs.push(Register::AX),
            K::mem => {
                let d = x87_disp(r, mem_len(kind));
                let is_store = matches!(
                    mn,
                    Mnemonic::Fst
                        | Mnemonic::Fstp
                        | Mnemonic::Fist
                        | Mnemonic::Fistp
                        | Mnemonic::Fisttp
                        | Mnemonic::Fnstcw
                        | Mnemonic::Fstcw
                        | Mnemonic::Fnstsw
                        | Mnemonic::Fstsw
                );
                if !is_store {
                    x87_poke(&mut v, d, &x87_value(r, kind))?;
                }
                mem = Some(mem_at(d));
            }
            _ => return Err(GenError::msg("x87 operand kind")),
        }
    }
    let ins = match (mem, regs.as_slice()) {
        (Some(m), []) => Instruction::with1(code, m)?,
        (None, []) => Instruction::with(code),
        (None, [a]) => Instruction::with1(code, *a)?,
        (None, [a, b]) => Instruction::with2(code, *a, *b)?,
        _ => return Err(GenError::msg("x87 operand shape")),
    };
    v.push(ins);
    // Observe: FSW, then all eight registers as 80-bit values, then FSW.
    v.push(Instruction::with1(Code::Fnstsw_AX, Register::AX)?);
    let dump = r.range(-0x1000, 0x1000 - 82);
    for j in 0..8 {
        v.push(Instruction::with1(Code::Fstp_m80fp, mem_at(dump + 10 * j))?);
    }
    v.push(Instruction::with1(Code::Fnstsw_m2byte, mem_at(dump + 80))?);
    Ok(v)
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
///
/// The x87 condition codes C0–C3 (which iced also tracks here) are not
/// counted: the SDM calls them undefined after most x87 instructions, but
/// the hardware leaves them unchanged (as does the interpreter), and the x87
/// family observes them through `fnstsw` after every instruction it tests.
#[must_use]
pub fn insn_undefined(i: &Instruction) -> u32 {
    let rc = matches!(i.mnemonic(), Mnemonic::Rcl | Mnemonic::Rcr)
        && i.op_count() == 2
        && i.op1_kind() == iced_x86::OpKind::Immediate8
        && (i.immediate8() & 31) > 1;
    let fpu_cc = RflagsBits::C0 | RflagsBits::C1 | RflagsBits::C2 | RflagsBits::C3;
    (i.rflags_undefined() & !fpu_cc) | if rc { RflagsBits::OF } else { 0 }
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
        FormKind::X87(c) => gen_x87(r, c),
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

/// A case made of one instance of `code` with random operands of the kinds
/// the generator supports (registers, `[r15 + disp]` scratch memory,
/// immediates), whatever the catalogue holds; `None` if `code` has an
/// operand kind the generator cannot build or no instance encodes. For
/// tests that sweep iced-x86's whole `Code` table.
#[must_use]
pub fn generate_code(code: Code, seed: u64) -> Option<Case> {
    if !code.op_code().op_kinds().iter().all(|&k| supported_kind(k)) {
        return None;
    }
    let mut r = Rng::new(seed);
    let built = (0..16).find_map(|_| {
        gen_code(&mut r, code)
            .ok()
            .filter(|v| encode_at(CODE_VA, v).is_ok())
    })?;
    let input = random_input(&mut r, Family::Alu);
    let scratch = random_memory(&mut r, SCRATCH_LEN);
    let stack = random_memory(&mut r, STACK_LEN);
    Case::assemble(Family::Alu, seed, Vec::new(), &built, input, scratch, stack).ok()
}

/// A case running exactly `insns` from a random input state (seeded by
/// `seed`); `None` if they do not encode.
#[must_use]
pub fn case_of(insns: &[Instruction], seed: u64) -> Option<Case> {
    let mut r = Rng::new(seed);
    let input = random_input(&mut r, Family::Alu);
    let scratch = random_memory(&mut r, SCRATCH_LEN);
    let stack = random_memory(&mut r, STACK_LEN);
    Case::assemble(Family::Alu, seed, Vec::new(), insns, input, scratch, stack).ok()
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
