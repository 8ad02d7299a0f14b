//! SSE/SSE2/SSE3/SSE4.1 floating point executed by the host CPU under the
//! guest's MXCSR.
//!
//! Every function here runs exactly **one** SSE instruction on the host
//! inside **one** `asm!` block: save the host MXCSR, load the guest's
//! rounding control, DAZ and FTZ with all exceptions masked and the status
//! flags clear, load the operands into XMM0/XMM1 (or a general register)
//! from general registers, run the instruction, store MXCSR, restore the
//! host MXCSR, move the result back to general registers. Results and
//! exception flags are therefore the hardware's by construction (NaN
//! propagation, min/max operand order, denormals, rounding, integer
//! indefinite). Because all exceptions are masked on the host, nothing here
//! can trap; deciding whether the guest takes #XM from the returned flags
//! and its masks is the caller's job (`sse.rs`).
//!
//! The SSE3 (`addsub*`, `hadd*`, `hsub*`) and SSE4.1 (`round*`, `dpps`,
//! `dppd`) operations must only be called when the host has the feature
//! (`sse.rs` checks, and gives the guest #UD otherwise). Instructions with an
//! immediate get one `asm!` text per immediate value that changes the
//! computation ([`xmm_imm`]).
//!
//! The only memory the blocks touch is a two-word local array holding the
//! MXCSR values (`ldmxcsr`/`stmxcsr` have no register form). The host is
//! x86-64, so SSE2 is always present; MXCSR bits the host does not
//! implement (DAZ on very old parts) are dropped, read once from the host's
//! FXSAVE `MXCSR_MASK`.
#![allow(unsafe_code)]

use std::arch::asm;
use std::sync::OnceLock;

/// MXCSR exception status flags (bits 0–5).
pub(crate) const FLAGS: u32 = 0x3f;
/// Invalid operation.
pub(crate) const IE: u32 = 1 << 0;
/// Denormal operand.
pub(crate) const DE: u32 = 1 << 1;
/// Divide by zero.
pub(crate) const ZE: u32 = 1 << 2;
/// Overflow.
pub(crate) const OE: u32 = 1 << 3;
/// Underflow.
pub(crate) const UE: u32 = 1 << 4;
/// Precision (inexact).
pub(crate) const PE: u32 = 1 << 5;
/// Denormals are zero.
pub(crate) const DAZ: u32 = 1 << 6;
/// Flush to zero.
pub(crate) const FTZ: u32 = 1 << 15;
/// All exception mask bits (7–12).
const MASKS: u32 = 0x3f << 7;
/// Rounding control (bits 13–14).
const RC: u32 = 3 << 13;

#[repr(C, align(16))]
struct FxImage([u8; 512]);

/// The MXCSR bits the host accepts in `ldmxcsr`.
fn host_mxcsr_mask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        let mut img = FxImage([0; 512]);
        // SAFETY: `fxsave` writes exactly 512 bytes at a 16-byte aligned
        // address; `img` is a local, 16-byte aligned, 512-byte buffer that
        // nothing else references. FXSR is architectural on x86-64.
        unsafe {
            asm!("fxsave64 [{p}]", p = in(reg) img.0.as_mut_ptr(), options(nostack, preserves_flags));
        }
        let m = u32::from_le_bytes([img.0[28], img.0[29], img.0[30], img.0[31]]);
        // A zero MXCSR_MASK means the default mask (no DAZ).
        if m == 0 { 0xffbf } else { m }
    })
}

/// The MXCSR the host runs the instruction under: the guest's RC, DAZ and
/// FTZ, all exceptions masked, no status flags.
fn run_csr(guest: u32) -> u32 {
    (guest & (RC | DAZ | FTZ) & host_mxcsr_mask()) | MASKS
}

fn lo(v: u128) -> u64 {
    v as u64
}
fn hi(v: u128) -> u64 {
    (v >> 64) as u64
}
fn join(l: u64, h: u64) -> u128 {
    u128::from(l) | (u128::from(h) << 64)
}

/// `xmm0 = insn(xmm0 = d, xmm1 = s)` under `$csr`; evaluates to
/// `(xmm0, new status flags)`.
macro_rules! run_xx {
    ($text:expr, $d:expr, $s:expr, $csr:expr) => {{
        let (mut l, mut h) = (lo($d), hi($d));
        let (sl, sh) = (lo($s), hi($s));
        let mut csr: [u32; 2] = [run_csr($csr), 0];
        // SAFETY: register-only except `csr`, a local two-word array
        // (`stmxcsr` saves the host MXCSR in word 1, `ldmxcsr` loads the
        // guest's from word 0, the final `stmxcsr` writes word 0 and the
        // host MXCSR is restored from word 1 before the block ends). The
        // loaded value has only RC/DAZ/FTZ (filtered by the host's
        // MXCSR_MASK) and all mask bits set, so `ldmxcsr` cannot #GP and the
        // instruction cannot raise #XM. XMM0–XMM2 are declared clobbered.
        unsafe {
            asm!(
                "stmxcsr dword ptr [{p} + 4]",
                "ldmxcsr dword ptr [{p}]",
                "movq xmm0, {l}",
                "movq xmm2, {h}",
                "punpcklqdq xmm0, xmm2",
                "movq xmm1, {sl}",
                "movq xmm2, {sh}",
                "punpcklqdq xmm1, xmm2",
                $text,
                "stmxcsr dword ptr [{p}]",
                "ldmxcsr dword ptr [{p} + 4]",
                "movq {l}, xmm0",
                "punpckhqdq xmm0, xmm0",
                "movq {h}, xmm0",
                p = in(reg) csr.as_mut_ptr(),
                l = inout(reg) l,
                h = inout(reg) h,
                sl = in(reg) sl,
                sh = in(reg) sh,
                out("xmm0") _,
                out("xmm1") _,
                out("xmm2") _,
                options(nostack),
            );
        }
        (join(l, h), csr[0] & FLAGS)
    }};
}

macro_rules! xmm_ops {
    ($($name:ident => $text:literal,)*) => {
        /// Two-operand XMM instructions (`xmm0 = op(xmm0, xmm1)`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum XOp { $($name,)* }

        /// Run `op` with destination `d` and source `s` under the guest
        /// MXCSR `mxcsr` (exceptions masked); returns the full 128-bit
        /// destination and the exception flags raised.
        pub(crate) fn xmm(op: XOp, d: u128, s: u128, mxcsr: u32) -> (u128, u32) {
            match op {
                $(XOp::$name => run_xx!($text, d, s, mxcsr),)*
            }
        }
    };
}

xmm_ops! {
    Addps => "addps xmm0, xmm1",
    Addpd => "addpd xmm0, xmm1",
    Addss => "addss xmm0, xmm1",
    Addsd => "addsd xmm0, xmm1",
    Subps => "subps xmm0, xmm1",
    Subpd => "subpd xmm0, xmm1",
    Subss => "subss xmm0, xmm1",
    Subsd => "subsd xmm0, xmm1",
    Mulps => "mulps xmm0, xmm1",
    Mulpd => "mulpd xmm0, xmm1",
    Mulss => "mulss xmm0, xmm1",
    Mulsd => "mulsd xmm0, xmm1",
    Divps => "divps xmm0, xmm1",
    Divpd => "divpd xmm0, xmm1",
    Divss => "divss xmm0, xmm1",
    Divsd => "divsd xmm0, xmm1",
    Sqrtps => "sqrtps xmm0, xmm1",
    Sqrtpd => "sqrtpd xmm0, xmm1",
    Sqrtss => "sqrtss xmm0, xmm1",
    Sqrtsd => "sqrtsd xmm0, xmm1",
    Minps => "minps xmm0, xmm1",
    Minpd => "minpd xmm0, xmm1",
    Minss => "minss xmm0, xmm1",
    Minsd => "minsd xmm0, xmm1",
    Maxps => "maxps xmm0, xmm1",
    Maxpd => "maxpd xmm0, xmm1",
    Maxss => "maxss xmm0, xmm1",
    Maxsd => "maxsd xmm0, xmm1",
    Rcpps => "rcpps xmm0, xmm1",
    Rcpss => "rcpss xmm0, xmm1",
    Rsqrtps => "rsqrtps xmm0, xmm1",
    Rsqrtss => "rsqrtss xmm0, xmm1",
    Cvtss2sd => "cvtss2sd xmm0, xmm1",
    Cvtsd2ss => "cvtsd2ss xmm0, xmm1",
    Cvtps2pd => "cvtps2pd xmm0, xmm1",
    Cvtpd2ps => "cvtpd2ps xmm0, xmm1",
    Cvtdq2ps => "cvtdq2ps xmm0, xmm1",
    Cvtps2dq => "cvtps2dq xmm0, xmm1",
    Cvttps2dq => "cvttps2dq xmm0, xmm1",
    Cvtdq2pd => "cvtdq2pd xmm0, xmm1",
    Cvtpd2dq => "cvtpd2dq xmm0, xmm1",
    Cvttpd2dq => "cvttpd2dq xmm0, xmm1",
    Addsubps => "addsubps xmm0, xmm1",
    Addsubpd => "addsubpd xmm0, xmm1",
    Haddps => "haddps xmm0, xmm1",
    Haddpd => "haddpd xmm0, xmm1",
    Hsubps => "hsubps xmm0, xmm1",
    Hsubpd => "hsubpd xmm0, xmm1",
    Cmpeqps => "cmpps xmm0, xmm1, 0",
    Cmpltps => "cmpps xmm0, xmm1, 1",
    Cmpleps => "cmpps xmm0, xmm1, 2",
    Cmpunordps => "cmpps xmm0, xmm1, 3",
    Cmpneqps => "cmpps xmm0, xmm1, 4",
    Cmpnltps => "cmpps xmm0, xmm1, 5",
    Cmpnleps => "cmpps xmm0, xmm1, 6",
    Cmpordps => "cmpps xmm0, xmm1, 7",
    Cmpeqpd => "cmppd xmm0, xmm1, 0",
    Cmpltpd => "cmppd xmm0, xmm1, 1",
    Cmplepd => "cmppd xmm0, xmm1, 2",
    Cmpunordpd => "cmppd xmm0, xmm1, 3",
    Cmpneqpd => "cmppd xmm0, xmm1, 4",
    Cmpnltpd => "cmppd xmm0, xmm1, 5",
    Cmpnlepd => "cmppd xmm0, xmm1, 6",
    Cmpordpd => "cmppd xmm0, xmm1, 7",
    Cmpeqss => "cmpss xmm0, xmm1, 0",
    Cmpltss => "cmpss xmm0, xmm1, 1",
    Cmpless => "cmpss xmm0, xmm1, 2",
    Cmpunordss => "cmpss xmm0, xmm1, 3",
    Cmpneqss => "cmpss xmm0, xmm1, 4",
    Cmpnltss => "cmpss xmm0, xmm1, 5",
    Cmpnless => "cmpss xmm0, xmm1, 6",
    Cmpordss => "cmpss xmm0, xmm1, 7",
    Cmpeqsd => "cmpsd xmm0, xmm1, 0",
    Cmpltsd => "cmpsd xmm0, xmm1, 1",
    Cmplesd => "cmpsd xmm0, xmm1, 2",
    Cmpunordsd => "cmpsd xmm0, xmm1, 3",
    Cmpneqsd => "cmpsd xmm0, xmm1, 4",
    Cmpnltsd => "cmpsd xmm0, xmm1, 5",
    Cmpnlesd => "cmpsd xmm0, xmm1, 6",
    Cmpordsd => "cmpsd xmm0, xmm1, 7",
}

/// SSE4.1 floating-point instructions with an immediate operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImmOp {
    /// `roundps` (imm8 bits 0–3).
    Roundps,
    /// `roundpd`.
    Roundpd,
    /// `roundss`.
    Roundss,
    /// `roundsd`.
    Roundsd,
    /// `dpps` with the product mask `imm8[7:4]` and every result lane
    /// written (the caller applies the broadcast mask `imm8[3:0]`, which
    /// does not change the computation or its flags).
    Dpps,
    /// `dppd` with the product mask `imm8[5:4]` and both result lanes
    /// written (the caller applies `imm8[1:0]`).
    Dppd,
}

/// `run_xx!` with the text `$op` followed by one of the 16 immediates
/// `$base + 16·k` (`$k` = `k`, 0–15) or `k | $base` for round (`$base` 0).
macro_rules! imm16 {
    ($op:literal, $k:expr, $d:expr, $s:expr, $csr:expr; $($n:literal => $i:literal,)*) => {
        match $k {
            $($n => run_xx!(concat!($op, $i), $d, $s, $csr),)*
            _ => unreachable!("imm16: index above 15"),
        }
    };
}

macro_rules! imm16_arms {
    ($op:literal, $k:expr, $d:expr, $s:expr, $csr:expr, low) => {
        imm16!($op, $k, $d, $s, $csr;
            0 => "0", 1 => "1", 2 => "2", 3 => "3", 4 => "4", 5 => "5", 6 => "6", 7 => "7",
            8 => "8", 9 => "9", 10 => "10", 11 => "11", 12 => "12", 13 => "13", 14 => "14",
            15 => "15",)
    };
    ($op:literal, $k:expr, $d:expr, $s:expr, $csr:expr, high) => {
        imm16!($op, $k, $d, $s, $csr;
            0 => "0x0f", 1 => "0x1f", 2 => "0x2f", 3 => "0x3f", 4 => "0x4f", 5 => "0x5f",
            6 => "0x6f", 7 => "0x7f", 8 => "0x8f", 9 => "0x9f", 10 => "0xaf", 11 => "0xbf",
            12 => "0xcf", 13 => "0xdf", 14 => "0xef", 15 => "0xff",)
    };
}

/// Run the immediate form `op` (`xmm0 = op(xmm0 = d, xmm1 = s, imm8)`)
/// under the guest MXCSR (exceptions masked). Only the immediate bits
/// that select the computation are used (see [`ImmOp`]): one `asm!` text
/// per distinct computation.
pub(crate) fn xmm_imm(op: ImmOp, imm: u8, d: u128, s: u128, mxcsr: u32) -> (u128, u32) {
    match op {
        ImmOp::Roundps => imm16_arms!("roundps xmm0, xmm1, ", imm & 15, d, s, mxcsr, low),
        ImmOp::Roundpd => imm16_arms!("roundpd xmm0, xmm1, ", imm & 15, d, s, mxcsr, low),
        ImmOp::Roundss => imm16_arms!("roundss xmm0, xmm1, ", imm & 15, d, s, mxcsr, low),
        ImmOp::Roundsd => imm16_arms!("roundsd xmm0, xmm1, ", imm & 15, d, s, mxcsr, low),
        ImmOp::Dpps => imm16_arms!("dpps xmm0, xmm1, ", imm >> 4, d, s, mxcsr, high),
        ImmOp::Dppd => match (imm >> 4) & 3 {
            0 => run_xx!("dppd xmm0, xmm1, 0x03", d, s, mxcsr),
            1 => run_xx!("dppd xmm0, xmm1, 0x13", d, s, mxcsr),
            2 => run_xx!("dppd xmm0, xmm1, 0x23", d, s, mxcsr),
            _ => run_xx!("dppd xmm0, xmm1, 0x33", d, s, mxcsr),
        },
    }
}

/// The compare of `width` (`ps`, `pd`, `ss`, `sd` as 0–3) with predicate
/// `pred` (imm8; only bits 0–2 are used by the legacy encodings).
pub(crate) fn cmp_op(width: u8, pred: u64) -> XOp {
    use XOp as X;
    const T: [[XOp; 8]; 4] = [
        [
            X::Cmpeqps,
            X::Cmpltps,
            X::Cmpleps,
            X::Cmpunordps,
            X::Cmpneqps,
            X::Cmpnltps,
            X::Cmpnleps,
            X::Cmpordps,
        ],
        [
            X::Cmpeqpd,
            X::Cmpltpd,
            X::Cmplepd,
            X::Cmpunordpd,
            X::Cmpneqpd,
            X::Cmpnltpd,
            X::Cmpnlepd,
            X::Cmpordpd,
        ],
        [
            X::Cmpeqss,
            X::Cmpltss,
            X::Cmpless,
            X::Cmpunordss,
            X::Cmpneqss,
            X::Cmpnltss,
            X::Cmpnless,
            X::Cmpordss,
        ],
        [
            X::Cmpeqsd,
            X::Cmpltsd,
            X::Cmplesd,
            X::Cmpunordsd,
            X::Cmpneqsd,
            X::Cmpnltsd,
            X::Cmpnlesd,
            X::Cmpordsd,
        ],
    ];
    T[usize::from(width & 3)][(pred & 7) as usize]
}

/// `comiss`/`ucomiss`/`comisd`/`ucomisd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comis {
    /// `comiss` (signalling on QNaN).
    Comiss,
    /// `ucomiss`.
    Ucomiss,
    /// `comisd` (signalling on QNaN).
    Comisd,
    /// `ucomisd`.
    Ucomisd,
}

macro_rules! run_comis {
    ($text:literal, $a:expr, $b:expr, $csr:expr) => {{
        let (a, b) = ($a, $b);
        let (mut z, mut p, mut c): (u8, u8, u8);
        let mut csr: [u32; 2] = [run_csr($csr), 0];
        // SAFETY: as in `run_xx!`: register-only except the local `csr`
        // array, host MXCSR saved and restored inside the block, guest
        // MXCSR with all exceptions masked. XMM0/XMM1 are clobbered; RFLAGS
        // is clobbered (no `preserves_flags`).
        unsafe {
            asm!(
                "stmxcsr dword ptr [{p} + 4]",
                "ldmxcsr dword ptr [{p}]",
                "movq xmm0, {a}",
                "movq xmm1, {b}",
                $text,
                "setz {z}",
                "setp {pf}",
                "setc {c}",
                "stmxcsr dword ptr [{p}]",
                "ldmxcsr dword ptr [{p} + 4]",
                p = in(reg) csr.as_mut_ptr(),
                a = in(reg) a,
                b = in(reg) b,
                z = out(reg_byte) z,
                pf = out(reg_byte) p,
                c = out(reg_byte) c,
                out("xmm0") _,
                out("xmm1") _,
                options(nostack),
            );
        }
        ((z, p, c), csr[0] & FLAGS)
    }};
}

/// Compare the low lanes of `a` and `b`; returns `(ZF, PF, CF)` and the
/// exception flags.
pub(crate) fn comis(op: Comis, a: u64, b: u64, mxcsr: u32) -> ((bool, bool, bool), u32) {
    let ((z, p, c), f) = match op {
        Comis::Comiss => run_comis!("comiss xmm0, xmm1", a, b, mxcsr),
        Comis::Ucomiss => run_comis!("ucomiss xmm0, xmm1", a, b, mxcsr),
        Comis::Comisd => run_comis!("comisd xmm0, xmm1", a, b, mxcsr),
        Comis::Ucomisd => run_comis!("ucomisd xmm0, xmm1", a, b, mxcsr),
    };
    ((z != 0, p != 0, c != 0), f)
}

/// `cvtsi2ss`/`cvtsi2sd` destination format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntToFp {
    /// `cvtsi2ss`.
    Ss,
    /// `cvtsi2sd`.
    Sd,
}

macro_rules! run_i2f {
    ($text:literal, $d:expr, $v:expr, $csr:expr) => {{
        let (mut l, mut h) = (lo($d), hi($d));
        let v: u64 = $v;
        let mut csr: [u32; 2] = [run_csr($csr), 0];
        // SAFETY: as in `run_xx!`: register-only except the local `csr`
        // array, host MXCSR saved and restored inside the block, guest
        // MXCSR with all exceptions masked; XMM0/XMM2 clobbered.
        unsafe {
            asm!(
                "stmxcsr dword ptr [{p} + 4]",
                "ldmxcsr dword ptr [{p}]",
                "movq xmm0, {l}",
                "movq xmm2, {h}",
                "punpcklqdq xmm0, xmm2",
                $text,
                "stmxcsr dword ptr [{p}]",
                "ldmxcsr dword ptr [{p} + 4]",
                "movq {l}, xmm0",
                "punpckhqdq xmm0, xmm0",
                "movq {h}, xmm0",
                p = in(reg) csr.as_mut_ptr(),
                l = inout(reg) l,
                h = inout(reg) h,
                v = in(reg) v,
                out("xmm0") _,
                out("xmm2") _,
                options(nostack),
            );
        }
        (join(l, h), csr[0] & FLAGS)
    }};
}

/// `cvtsi2ss`/`cvtsi2sd xmm0 = d, v` with a 32-bit (`wide` false) or
/// 64-bit signed source.
pub(crate) fn int_to_fp(op: IntToFp, d: u128, v: u64, wide: bool, mxcsr: u32) -> (u128, u32) {
    match (op, wide) {
        (IntToFp::Ss, false) => run_i2f!("cvtsi2ss xmm0, {v:e}", d, v, mxcsr),
        (IntToFp::Ss, true) => run_i2f!("cvtsi2ss xmm0, {v:r}", d, v, mxcsr),
        (IntToFp::Sd, false) => run_i2f!("cvtsi2sd xmm0, {v:e}", d, v, mxcsr),
        (IntToFp::Sd, true) => run_i2f!("cvtsi2sd xmm0, {v:r}", d, v, mxcsr),
    }
}

/// `cvt(t)ss2si`/`cvt(t)sd2si`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FpToInt {
    /// `cvtss2si` (MXCSR rounding).
    Ss,
    /// `cvttss2si` (truncating).
    Tss,
    /// `cvtsd2si`.
    Sd,
    /// `cvttsd2si`.
    Tsd,
}

macro_rules! run_f2i {
    ($text:literal, $s:expr, $csr:expr) => {{
        let s: u64 = $s;
        let r: u64;
        let mut csr: [u32; 2] = [run_csr($csr), 0];
        // SAFETY: as in `run_xx!`: register-only except the local `csr`
        // array, host MXCSR saved and restored inside the block, guest
        // MXCSR with all exceptions masked; XMM1 clobbered.
        unsafe {
            asm!(
                "stmxcsr dword ptr [{p} + 4]",
                "ldmxcsr dword ptr [{p}]",
                "movq xmm1, {s}",
                "xor {r:e}, {r:e}",
                $text,
                "stmxcsr dword ptr [{p}]",
                "ldmxcsr dword ptr [{p} + 4]",
                p = in(reg) csr.as_mut_ptr(),
                s = in(reg) s,
                r = out(reg) r,
                out("xmm1") _,
                options(nostack),
            );
        }
        (r, csr[0] & FLAGS)
    }};
}

/// Convert the low lane of `s` (its low 32 or 64 bits) to a 32-bit
/// (`wide` false, zero-extended) or 64-bit signed integer.
pub(crate) fn fp_to_int(op: FpToInt, s: u64, wide: bool, mxcsr: u32) -> (u64, u32) {
    match (op, wide) {
        (FpToInt::Ss, false) => run_f2i!("cvtss2si {r:e}, xmm1", s, mxcsr),
        (FpToInt::Ss, true) => run_f2i!("cvtss2si {r:r}, xmm1", s, mxcsr),
        (FpToInt::Tss, false) => run_f2i!("cvttss2si {r:e}, xmm1", s, mxcsr),
        (FpToInt::Tss, true) => run_f2i!("cvttss2si {r:r}, xmm1", s, mxcsr),
        (FpToInt::Sd, false) => run_f2i!("cvtsd2si {r:e}, xmm1", s, mxcsr),
        (FpToInt::Sd, true) => run_f2i!("cvtsd2si {r:r}, xmm1", s, mxcsr),
        (FpToInt::Tsd, false) => run_f2i!("cvttsd2si {r:e}, xmm1", s, mxcsr),
        (FpToInt::Tsd, true) => run_f2i!("cvttsd2si {r:r}, xmm1", s, mxcsr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_F64: u64 = 0x3ff0_0000_0000_0000;

    #[test]
    fn addsd_rounds_by_guest_rc_and_reports_inexact() {
        // 1 + 2^-60 is inexact: nearest gives 1, up gives 1 + ulp.
        let d = u128::from(ONE_F64);
        let s = u128::from(0x3c30_0000_0000_0000u64);
        let (r, f) = xmm(XOp::Addsd, d, s, 0x1f80);
        assert_eq!((r, f), (d, PE));
        let (r, f) = xmm(XOp::Addsd, d, s, 0x1f80 | (2 << 13));
        assert_eq!((r, f), (u128::from(ONE_F64 + 1), PE));
    }

    #[test]
    fn guest_masks_and_flags_do_not_leak_into_the_host_run() {
        // Unmasked ZE in the guest MXCSR: the host run is still masked and
        // reports ZE; old status bits are not returned.
        let (r, f) = xmm(XOp::Divsd, u128::from(ONE_F64), 0, 0x3f);
        assert_eq!((r as u64, f), (0x7ff0_0000_0000_0000, ZE));
    }

    #[test]
    fn daz_and_ftz_follow_the_guest() {
        // min denormal * 1.0: DE without DAZ, zero input with DAZ.
        let (r, f) = xmm(XOp::Mulsd, 1, u128::from(ONE_F64), 0x1f80);
        assert_eq!((r, f), (1, DE));
        let (r, f) = xmm(XOp::Mulsd, 1, u128::from(ONE_F64), 0x1f80 | DAZ);
        assert_eq!((r, f), (0, 0));
        // 2^-1022 * 0.5 is an exact denormal; FTZ flushes it with UE|PE.
        let (r, f) = xmm(
            XOp::Mulsd,
            1 << 52,
            u128::from(0x3fe0_0000_0000_0000u64),
            0x1f80 | FTZ,
        );
        assert_eq!((r, f), (0, UE | PE));
    }

    #[test]
    fn host_mxcsr_is_restored() {
        let before = host_csr();
        let _ = xmm(XOp::Addps, 0, 0, 0x7fc0);
        let _ = comis(Comis::Comisd, 0, 0, 0x7fc0);
        let _ = int_to_fp(IntToFp::Sd, 0, 3, true, 0x7fc0);
        let _ = fp_to_int(FpToInt::Sd, ONE_F64, true, 0x7fc0);
        if std::is_x86_feature_detected!("sse4.1") {
            let _ = xmm_imm(ImmOp::Roundsd, 4, 0, 0, 0x7fc0);
        }
        assert_eq!(host_csr(), before);
    }

    fn host_csr() -> u32 {
        let mut c = 0u32;
        // SAFETY: `stmxcsr` writes the 4-byte local `c`.
        unsafe {
            asm!("stmxcsr dword ptr [{p}]", p = in(reg) &raw mut c, options(nostack, preserves_flags));
        }
        c
    }

    #[test]
    fn round_uses_the_immediate_or_the_guest_rc() {
        if !std::is_x86_feature_detected!("sse4.1") {
            eprintln!("skipped: the host CPU has no SSE4.1");
            return;
        }
        let two_and_half = u128::from(0x4004_0000_0000_0000u64);
        let (two, three) = (0x4000_0000_0000_0000u64, 0x4008_0000_0000_0000u64);
        // imm 0: nearest-even; imm 2: up; imm 4: MXCSR.RC (here up); bit 3
        // suppresses PE.
        let up = 0x1f80 | (2 << 13);
        assert_eq!(
            xmm_imm(ImmOp::Roundsd, 0, 0, two_and_half, up),
            (u128::from(two), PE)
        );
        assert_eq!(
            xmm_imm(ImmOp::Roundsd, 2, 0, two_and_half, 0x1f80),
            (u128::from(three), PE)
        );
        assert_eq!(
            xmm_imm(ImmOp::Roundsd, 4, 0, two_and_half, up),
            (u128::from(three), PE)
        );
        assert_eq!(
            xmm_imm(ImmOp::Roundsd, 8, 0, two_and_half, up),
            (u128::from(two), 0)
        );
    }

    #[test]
    fn dpps_runs_with_every_result_lane_written() {
        if !std::is_x86_feature_detected!("sse4.1") {
            eprintln!("skipped: the host CPU has no SSE4.1");
            return;
        }
        // (1, 2, 3, 4) · (1, 1, 1, 1) over products 0 and 2 = 4.0 in all
        // lanes whatever the broadcast bits of the immediate.
        let one = 0x3f80_0000u128;
        let d = one | (0x4000_0000 << 32) | (0x4040_0000 << 64) | (0x4080_0000 << 96);
        let s = one | (one << 32) | (one << 64) | (one << 96);
        let four = 0x4080_0000u128;
        let all4 = four | (four << 32) | (four << 64) | (four << 96);
        assert_eq!(xmm_imm(ImmOp::Dpps, 0x51, d, s, 0x1f80), (all4, 0));
        assert_eq!(xmm_imm(ImmOp::Dpps, 0x5e, d, s, 0x1f80), (all4, 0));
    }

    #[test]
    fn conversions_use_the_integer_indefinite_and_flag_invalid() {
        let nan = 0x7ff8_0000_0000_0000u64;
        assert_eq!(
            fp_to_int(FpToInt::Tsd, nan, false, 0x1f80),
            (0x8000_0000, IE)
        );
        assert_eq!(
            fp_to_int(FpToInt::Sd, nan, true, 0x1f80),
            (0x8000_0000_0000_0000, IE)
        );
        // 2.5 rounds to even (2) under RN, to 3 under RC = up.
        let two_and_half = 0x4004_0000_0000_0000u64;
        assert_eq!(fp_to_int(FpToInt::Sd, two_and_half, true, 0x1f80), (2, PE));
        assert_eq!(
            fp_to_int(FpToInt::Sd, two_and_half, true, 0x1f80 | (2 << 13)),
            (3, PE)
        );
        assert_eq!(
            fp_to_int(FpToInt::Tsd, two_and_half, false, 0x1f80 | (2 << 13)),
            (2, PE)
        );
        let (r, f) = int_to_fp(IntToFp::Ss, 0, 0xffff_ffff, false, 0x1f80);
        assert_eq!((r, f), (u128::from(0xbf80_0000u32), 0));
    }

    #[test]
    fn comis_sets_unordered_and_signals_on_qnan() {
        let qnan = 0x7ff8_0000_0000_0000u64;
        assert_eq!(
            comis(Comis::Ucomisd, qnan, 0, 0x1f80),
            ((true, true, true), 0)
        );
        assert_eq!(
            comis(Comis::Comisd, qnan, 0, 0x1f80),
            ((true, true, true), IE)
        );
        assert_eq!(
            comis(Comis::Comisd, 0, ONE_F64, 0x1f80),
            ((false, false, true), 0)
        );
    }
}
