//! 80-bit extended-precision arithmetic in software, bit-exact with the x87.
//!
//! Values are [`F80`] (sign + 15-bit exponent, 64-bit significand with an
//! explicit integer bit). Finite non-zero operands are unpacked to a
//! normalised `u128` significand ([`Unp`]); results are rounded once by
//! [`round_bits`] at the position the destination format (and, for
//! arithmetic, the precision control) asks for. Every function returns the
//! exception flags it raised (`FSW` bit positions) and whether the
//! significand was rounded up (the x87 reports that in C1).

/// FSW exception bits.
pub(crate) const IE: u16 = 1;
pub(crate) const DE: u16 = 2;
pub(crate) const ZE: u16 = 4;
pub(crate) const OE: u16 = 8;
pub(crate) const UE: u16 = 0x10;
pub(crate) const PE: u16 = 0x20;

/// Tininess is detected after rounding (as the host's x87 does, checked by
/// the differential tests) when true, before rounding when false.
const TINY_AFTER_ROUNDING: bool = true;

const EMIN80: i32 = -16382;
const EMAX80: i32 = 16383;
const BIAS80: i32 = 16383;

/// An 80-bit extended value as stored in a register (and in memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct F80 {
    /// Sign (bit 15) and biased exponent (bits 0..=14).
    pub se: u16,
    /// Significand, integer bit at bit 63.
    pub m: u64,
}

impl F80 {
    /// The QNaN floating-point indefinite.
    pub(crate) const INDEF: F80 = F80 {
        se: 0xffff,
        m: 0xc000_0000_0000_0000,
    };
    pub(crate) const ZERO: F80 = F80 { se: 0, m: 0 };
    pub(crate) const ONE: F80 = F80 {
        se: 0x3fff,
        m: 1 << 63,
    };

    pub(crate) fn from_bytes(b: &[u8; 10]) -> F80 {
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        F80 {
            m: u64::from_le_bytes(m),
            se: u16::from_le_bytes([b[8], b[9]]),
        }
    }
    pub(crate) fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.m.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }
    pub(crate) fn neg(self) -> bool {
        self.se & 0x8000 != 0
    }
    fn exp(self) -> u16 {
        self.se & 0x7fff
    }
    pub(crate) fn with_sign(self, neg: bool) -> F80 {
        F80 {
            se: (self.se & 0x7fff) | if neg { 0x8000 } else { 0 },
            m: self.m,
        }
    }
    pub(crate) fn class(self) -> Class {
        let e = self.exp();
        let j = self.m >> 63 != 0;
        if e == 0x7fff {
            if !j {
                Class::Unsupported
            } else if self.m << 1 == 0 {
                Class::Inf
            } else if self.m & (1 << 62) != 0 {
                Class::QNaN
            } else {
                Class::SNaN
            }
        } else if e == 0 {
            if self.m == 0 {
                Class::Zero
            } else {
                Class::Denormal
            }
        } else if j {
            Class::Normal
        } else {
            Class::Unsupported
        }
    }
    fn quiet(self) -> F80 {
        F80 {
            se: self.se,
            m: self.m | (1 << 62),
        }
    }
    fn inf(neg: bool) -> F80 {
        F80 {
            se: 0x7fff | if neg { 0x8000 } else { 0 },
            m: 1 << 63,
        }
    }
    fn zero(neg: bool) -> F80 {
        F80::ZERO.with_sign(neg)
    }
    /// Unpack a finite non-zero (normal, denormal or pseudo-denormal) value.
    fn unpack(self) -> Unp {
        let lz = self.m.leading_zeros();
        let e = if self.exp() == 0 {
            EMIN80 - lz as i32
        } else {
            i32::from(self.exp()) - BIAS80
        };
        Unp {
            neg: self.neg(),
            e,
            sig: u128::from(self.m << lz) << 64,
        }
    }
}

/// Operand classes (the x87 treats unnormals, pseudo-NaNs and
/// pseudo-infinities as unsupported: invalid operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Zero,
    Denormal,
    Normal,
    Inf,
    QNaN,
    SNaN,
    Unsupported,
}

impl Class {
    fn nan(self) -> bool {
        matches!(self, Class::QNaN | Class::SNaN)
    }
    fn finite_nonzero(self) -> bool {
        matches!(self, Class::Normal | Class::Denormal)
    }
}

/// A finite non-zero value `sig * 2^(e - 127)` with `sig` bit 127 set.
#[derive(Clone, Copy, Debug)]
struct Unp {
    neg: bool,
    e: i32,
    sig: u128,
}

/// Outcome of an operation: value, flags, and "rounded up" (C1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Res<T> {
    pub v: T,
    pub flags: u16,
    pub up: bool,
}

fn res<T>(v: T, flags: u16) -> Res<T> {
    Res {
        v,
        flags,
        up: false,
    }
}

/// Round `sig * 2^(e-127)` keeping the bits of weight `>= 2^lsb`:
/// `(q, inexact, rounded_up)` with the result `q * 2^lsb`.
fn round_bits(neg: bool, e: i32, sig: u128, lsb: i32, rc: u8) -> (u128, bool, bool) {
    let cut = i64::from(lsb) - i64::from(e) + 127;
    if cut <= 0 {
        // Every bit is kept (callers avoid shifts that would overflow).
        return (sig << (-cut).min(127), false, false);
    }
    let (q, rem_nz, above_half, at_half) = if cut > 128 {
        (0u128, true, false, false)
    } else if cut == 128 {
        (0, true, sig > 1 << 127, sig == 1 << 127)
    } else {
        let q = sig >> cut;
        let rem = sig & ((1u128 << cut) - 1);
        let half = 1u128 << (cut - 1);
        (q, rem != 0, rem > half, rem == half)
    };
    let up = rem_nz
        && match rc & 3 {
            0 => above_half || (at_half && q & 1 == 1),
            1 => neg,
            2 => !neg,
            _ => false,
        };
    (q + u128::from(up), rem_nz, up)
}

fn bitlen(q: u128) -> i32 {
    128 - q.leading_zeros() as i32
}

/// A binary destination format: precision (with the integer bit) and the
/// normal exponent range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fmt {
    prec: i32,
    emin: i32,
    emax: i32,
}

pub(crate) const F32: Fmt = Fmt {
    prec: 24,
    emin: -126,
    emax: 127,
};
pub(crate) const F64: Fmt = Fmt {
    prec: 53,
    emin: -1022,
    emax: 1023,
};

/// The extended format at precision control `pc` (FCW bits 8..=9).
pub(crate) fn ext_fmt(pc: u8) -> Fmt {
    Fmt {
        prec: match pc & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        },
        emin: EMIN80,
        emax: EMAX80,
    }
}

/// A rounded finite value `q * 2^lsb` (`q` may be 0), and its flags.
struct Rounded {
    neg: bool,
    q: u128,
    lsb: i32,
    flags: u16,
    up: bool,
    /// The masked-overflow response (infinity or the largest finite).
    overflow: Option<bool>,
}

fn round_fmt(u: Unp, f: Fmt, rc: u8) -> Rounded {
    let lsb = u.e.max(f.emin) - (f.prec - 1);
    let (q, inexact, up) = round_bits(u.neg, u.e, u.sig, lsb, rc);
    let mut flags = if inexact { PE } else { 0 };
    let tiny = is_tiny(u, f, rc);
    if tiny && inexact {
        flags |= UE;
    }
    let x = lsb + bitlen(q) - 1;
    if q != 0 && x > f.emax {
        let to_inf = match rc & 3 {
            0 => true,
            1 => u.neg,
            2 => !u.neg,
            _ => false,
        };
        return Rounded {
            neg: u.neg,
            q: 0,
            lsb: 0,
            flags: OE | PE,
            up: to_inf,
            overflow: Some(to_inf),
        };
    }
    Rounded {
        neg: u.neg,
        q,
        lsb,
        flags,
        up,
        overflow: None,
    }
}

/// Whether a finite non-zero value is tiny in format `f` (masked underflow
/// needs tiny and inexact, the unmasked response tininess alone).
fn is_tiny(u: Unp, f: Fmt, rc: u8) -> bool {
    if TINY_AFTER_ROUNDING {
        // Round as if the exponent range were unbounded.
        let l2 = u.e - (f.prec - 1);
        let (q2, _, _) = round_bits(u.neg, u.e, u.sig, l2, rc);
        l2 + bitlen(q2) - 1 < f.emin
    } else {
        u.e < f.emin
    }
}

fn pack80(r: &Rounded, f: Fmt) -> F80 {
    if let Some(to_inf) = r.overflow {
        if to_inf {
            return F80::inf(r.neg);
        }
        let m = !0u64 << (64 - f.prec);
        return F80 {
            se: (EMAX80 + BIAS80) as u16 | if r.neg { 0x8000 } else { 0 },
            m,
        };
    }
    if r.q == 0 {
        return F80::zero(r.neg);
    }
    let x = r.lsb + bitlen(r.q) - 1;
    let sign = if r.neg { 0x8000 } else { 0 };
    if x < EMIN80 {
        // Denormal: the significand's lsb has weight 2^(EMIN80 - 63).
        let sh = r.lsb - (EMIN80 - 63);
        F80 {
            se: sign,
            m: (r.q << sh) as u64,
        }
    } else {
        F80 {
            se: (x + BIAS80) as u16 | sign,
            m: ((r.q << (128 - bitlen(r.q))) >> 64) as u64,
        }
    }
}

/// Pack into an IEEE binary format of `f` (32 or 64 bits).
fn pack_ieee(r: &Rounded, f: Fmt) -> u64 {
    let fb = (f.prec - 1) as u32;
    let bias = f.emax;
    let ebits = if f.prec == 24 { 8 } else { 11 };
    let sign = u64::from(r.neg) << (fb + ebits);
    let emask = (1u64 << ebits) - 1;
    if let Some(to_inf) = r.overflow {
        return sign
            | if to_inf {
                emask << fb
            } else {
                ((emask - 1) << fb) | ((1u64 << fb) - 1)
            };
    }
    if r.q == 0 {
        return sign;
    }
    let x = r.lsb + bitlen(r.q) - 1;
    if x < f.emin {
        sign | (r.q as u64)
    } else {
        // `q` has `prec` bits, or `prec + 1` after a carry (a power of two).
        let q = if bitlen(r.q) > fb as i32 + 1 {
            r.q >> 1
        } else {
            r.q << (fb as i32 + 1 - bitlen(r.q))
        };
        let frac = q as u64 & ((1u64 << fb) - 1);
        sign | (((x + bias) as u64) << fb) | frac
    }
}

/// Load an IEEE single/double (`bits`, format `f`) exactly into 80 bits.
/// SNaN → IE (quieted); denormal → DE.
#[cfg(test)]
pub(crate) fn from_ieee(bits: u64, f: Fmt) -> Res<F80> {
    from_ieee_q(bits, f, true)
}

/// As [`from_ieee`]; with `quiet` false an SNaN stays signalling and raises
/// nothing (the arithmetic that consumes it decides).
pub(crate) fn from_ieee_q(bits: u64, f: Fmt, quiet: bool) -> Res<F80> {
    let fb = (f.prec - 1) as u32;
    let ebits = if f.prec == 24 { 8 } else { 11 };
    let neg = (bits >> (fb + ebits)) & 1 != 0;
    let e = ((bits >> fb) & ((1 << ebits) - 1)) as i32;
    let frac = bits & ((1u64 << fb) - 1);
    let sign = if neg { 0x8000 } else { 0 };
    if e == (1 << ebits) - 1 {
        if frac == 0 {
            return res(F80::inf(neg), 0);
        }
        let v = F80 {
            se: 0x7fff | sign,
            m: (1 << 63) | (frac << (63 - fb)),
        };
        return if v.class() == Class::SNaN && quiet {
            res(v.quiet(), IE)
        } else {
            res(v, 0)
        };
    }
    if e == 0 {
        if frac == 0 {
            return res(F80::zero(neg), 0);
        }
        let lz = frac.leading_zeros();
        let x = f.emin - (lz as i32 - (63 - fb as i32));
        return res(
            F80 {
                se: (x + BIAS80) as u16 | sign,
                m: frac << lz,
            },
            DE,
        );
    }
    res(
        F80 {
            se: (e - f.emax + BIAS80) as u16 | sign,
            m: (1 << 63) | (frac << (63 - fb)),
        },
        0,
    )
}

/// Store 80 bits to an IEEE single/double, rounding by `rc`.
/// Returns also whether the value was tiny (for the unmasked underflow
/// response) in `Res::flags` (`UE` is set when tiny, masked rules aside:
/// see [`to_ieee_unmasked_u`]).
pub(crate) fn to_ieee(v: F80, f: Fmt, rc: u8) -> Res<u64> {
    let fb = (f.prec - 1) as u32;
    let ebits = if f.prec == 24 { 8 } else { 11 };
    let sign = u64::from(v.neg()) << (fb + ebits);
    let emask = (1u64 << ebits) - 1;
    match v.class() {
        Class::Zero => res(sign, 0),
        Class::Inf => res(sign | (emask << fb), 0),
        Class::QNaN | Class::SNaN => {
            let fl = if v.class() == Class::SNaN { IE } else { 0 };
            let frac = ((v.m | (1 << 62)) << 1) >> (64 - fb);
            res(sign | (emask << fb) | frac, fl)
        }
        Class::Unsupported => res(indef_ieee(f), IE),
        // A denormal source raises no DE here (as the hardware does).
        Class::Normal | Class::Denormal => {
            let r = round_fmt(v.unpack(), f, rc);
            Res {
                v: pack_ieee(&r, f),
                flags: r.flags,
                up: r.up,
            }
        }
    }
}

/// Whether storing finite `v` to format `f` would be tiny (unmasked
/// underflow fires on tininess alone).
pub(crate) fn tiny_in(v: F80, f: Fmt, rc: u8) -> bool {
    v.class().finite_nonzero() && is_tiny(v.unpack(), f, rc)
}

pub(crate) fn indef_ieee(f: Fmt) -> u64 {
    if f.prec == 24 {
        0xffc0_0000
    } else {
        0xfff8_0000_0000_0000
    }
}

/// Exact integer → 80 bits.
pub(crate) fn from_int(i: i64) -> F80 {
    if i == 0 {
        return F80::ZERO;
    }
    let neg = i < 0;
    let a = i.unsigned_abs();
    let lz = a.leading_zeros();
    F80 {
        se: (BIAS80 + 63 - lz as i32) as u16 | if neg { 0x8000 } else { 0 },
        m: a << lz,
    }
}

/// 80 bits → signed integer of `bits` bits (rounded by `rc`); `None` with
/// IE for NaN, infinity, unsupported and out-of-range values.
pub(crate) fn to_int(v: F80, bits: u32, rc: u8) -> Res<Option<i64>> {
    match v.class() {
        Class::Zero => res(Some(0), 0),
        Class::Normal | Class::Denormal => {
            let u = v.unpack();
            if u.e >= 64 {
                return res(None, IE);
            }
            let (q, inexact, up) = round_bits(u.neg, u.e, u.sig, 0, rc);
            let lim = 1u128 << (bits - 1);
            if q > lim || (q == lim && !u.neg) {
                return res(None, IE);
            }
            let mag = q as i128;
            let val = if u.neg { -mag } else { mag };
            Res {
                v: Some(val as i64),
                flags: if inexact { PE } else { 0 },
                up,
            }
        }
        _ => res(None, IE),
    }
}

/// The x87 rule for a result from two NaN-or-number operands (at least
/// one NaN): the QNaN over the SNaN, else the larger significand (then the
/// positive one), quieted.
fn propagate(a: F80, b: F80) -> F80 {
    let (ca, cb) = (a.class(), b.class());
    if !cb.nan() {
        return a.quiet();
    }
    if !ca.nan() {
        return b.quiet();
    }
    if ca == Class::SNaN && cb == Class::QNaN {
        return b;
    }
    if ca == Class::QNaN && cb == Class::SNaN {
        return a;
    }
    let (qa, qb) = (a.quiet(), b.quiet());
    if qa.m > qb.m || (qa.m == qb.m && qa.se < qb.se) {
        qa
    } else {
        qb
    }
}

/// The arithmetic operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// Handle NaN/unsupported operands: `Some(result)` when the operation is
/// decided by them.
fn nan_operands(a: F80, b: F80) -> Option<Res<F80>> {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        return Some(res(F80::INDEF, IE));
    }
    if ca.nan() || cb.nan() {
        let fl = if ca == Class::SNaN || cb == Class::SNaN {
            IE
        } else {
            0
        };
        return Some(res(propagate(a, b), fl));
    }
    None
}

fn denormal_flag(a: F80, b: F80) -> u16 {
    if a.class() == Class::Denormal || b.class() == Class::Denormal {
        DE
    } else {
        0
    }
}

/// `a op b`, rounded to the extended format at precision control `pc`.
/// `unmasked_ou`: (overflow, underflow) unmasked → the result is the
/// exponent-biased one.
pub(crate) fn arith(op: Op, a: F80, b: F80, pc: u8, rc: u8, unmasked_ou: (bool, bool)) -> Res<F80> {
    if let Some(r) = nan_operands(a, b) {
        return r;
    }
    let de = denormal_flag(a, b);
    let (ca, cb) = (a.class(), b.class());
    let f = ext_fmt(pc);
    let (na, nb) = (a.neg(), b.neg());
    let out = match op {
        Op::Add | Op::Sub => {
            let nb = nb ^ (op == Op::Sub);
            if ca == Class::Inf || cb == Class::Inf {
                if ca == Class::Inf && cb == Class::Inf && na != nb {
                    return res(F80::INDEF, IE);
                }
                let neg = if ca == Class::Inf { na } else { nb };
                return res(F80::inf(neg), de);
            }
            if ca == Class::Zero && cb == Class::Zero {
                let neg = if na == nb { na } else { rc & 3 == 1 };
                return res(F80::zero(neg), de);
            }
            if ca == Class::Zero {
                return finish(b.with_sign(nb).unpack(), f, rc, de, unmasked_ou);
            }
            if cb == Class::Zero {
                return finish(a.unpack(), f, rc, de, unmasked_ou);
            }
            let (ua, mut ub) = (a.unpack(), b.unpack());
            ub.neg = nb;
            let (x, y) = if (ua.e, ua.sig) >= (ub.e, ub.sig) {
                (ua, ub)
            } else {
                (ub, ua)
            };
            let d = (x.e - y.e) as u32;
            let xs = x.sig >> 2;
            let ys = y.sig >> 2;
            let ys = if d >= 127 {
                u128::from(ys != 0)
            } else {
                (ys >> d) | u128::from(ys & ((1u128 << d) - 1) != 0)
            };
            let s = if x.neg == y.neg { xs + ys } else { xs - ys };
            if s == 0 {
                return res(F80::zero(rc & 3 == 1), de);
            }
            let lz = s.leading_zeros() as i32;
            Unp {
                neg: x.neg,
                e: x.e + 2 - lz,
                sig: s << lz,
            }
        }
        Op::Mul => {
            let neg = na ^ nb;
            if ca == Class::Inf || cb == Class::Inf {
                if ca == Class::Zero || cb == Class::Zero {
                    return res(F80::INDEF, IE);
                }
                return res(F80::inf(neg), de);
            }
            if ca == Class::Zero || cb == Class::Zero {
                return res(F80::zero(neg), de);
            }
            let (ua, ub) = (a.unpack(), b.unpack());
            let p = (ua.sig >> 64) * (ub.sig >> 64);
            let lz = p.leading_zeros() as i32;
            Unp {
                neg,
                e: ua.e + ub.e + 1 - lz,
                sig: p << lz,
            }
        }
        Op::Div => {
            let neg = na ^ nb;
            match (ca, cb) {
                (Class::Inf, Class::Inf) | (Class::Zero, Class::Zero) => {
                    return res(F80::INDEF, IE);
                }
                (Class::Inf, _) => return res(F80::inf(neg), de),
                (_, Class::Inf) => return res(F80::zero(neg), de),
                (Class::Zero, _) => return res(F80::zero(neg), de),
                // Division by zero reports no denormal dividend.
                (_, Class::Zero) => return res(F80::inf(neg), ZE),
                _ => {}
            }
            let (ua, ub) = (a.unpack(), b.unpack());
            let (ma, mb) = (ua.sig >> 64, ub.sig >> 64);
            let (num, e) = if ma >= mb {
                (ma << 63, ua.e - ub.e)
            } else {
                (ma << 64, ua.e - ub.e - 1)
            };
            let q1 = num / mb;
            let r1 = num % mb;
            let q2 = (r1 << 64) / mb;
            let r2 = (r1 << 64) % mb;
            let sig = (q1 << 64) | q2 | u128::from(r2 != 0);
            let lz = sig.leading_zeros() as i32;
            Unp {
                neg,
                e: e - lz,
                sig: sig << lz,
            }
        }
    };
    finish(out, f, rc, de, unmasked_ou)
}

/// Round an exact result to `f` with the extended exponent range.
fn finish(u: Unp, f: Fmt, rc: u8, de: u16, unmasked_ou: (bool, bool)) -> Res<F80> {
    let r = round_fmt(u, f, rc);
    if r.overflow.is_some() && unmasked_ou.0 {
        // Unmasked overflow: the result with its exponent reduced by 24576.
        let b = Unp {
            e: u.e - 24576,
            ..u
        };
        let r2 = round_fmt(b, f, rc);
        return Res {
            v: pack80(&r2, f),
            flags: OE | r2.flags | de,
            up: r2.up,
        };
    }
    if unmasked_ou.1 && is_tiny(u, f, rc) {
        let b = Unp {
            e: u.e + 24576,
            ..u
        };
        let r2 = round_fmt(b, f, rc);
        return Res {
            v: pack80(&r2, f),
            flags: UE | r2.flags | de,
            up: r2.up,
        };
    }
    Res {
        v: pack80(&r, f),
        flags: r.flags | de,
        up: r.up,
    }
}

/// Ordering of two values: `Some(Less/Equal/Greater)` or `None`
/// (unordered), with IE for SNaN/unsupported (and any NaN when
/// `signal_qnan`) and DE for denormals.
pub(crate) fn compare(a: F80, b: F80, signal_qnan: bool) -> Res<Option<std::cmp::Ordering>> {
    use std::cmp::Ordering;
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        return res(None, IE);
    }
    if ca.nan() || cb.nan() {
        let sn = ca == Class::SNaN || cb == Class::SNaN;
        return res(None, if sn || signal_qnan { IE } else { 0 });
    }
    let de = denormal_flag(a, b);
    let key = |v: F80| -> (i8, i32, u128) {
        match v.class() {
            Class::Zero => (0, 0, 0),
            Class::Inf => (if v.neg() { -2 } else { 2 }, 0, 0),
            _ => {
                let u = v.unpack();
                if u.neg {
                    (-1, -u.e, !u.sig)
                } else {
                    (1, u.e, u.sig)
                }
            }
        }
    };
    let o: Ordering = key(a).cmp(&key(b));
    res(Some(o), de)
}

/// Round to an integral value (frndint).
pub(crate) fn round_int(v: F80, rc: u8) -> Res<F80> {
    match v.class() {
        Class::Unsupported => res(F80::INDEF, IE),
        Class::SNaN => res(v.quiet(), IE),
        Class::QNaN | Class::Inf | Class::Zero => res(v, 0),
        Class::Normal | Class::Denormal => {
            let de = if v.class() == Class::Denormal { DE } else { 0 };
            let u = v.unpack();
            if u.e >= 63 {
                return res(v, de);
            }
            let (q, inexact, up) = round_bits(u.neg, u.e, u.sig, 0, rc);
            let r = if q == 0 {
                F80::zero(u.neg)
            } else {
                let mag = from_int(q as i64);
                mag.with_sign(u.neg)
            };
            Res {
                v: r,
                flags: de | if inexact { PE } else { 0 },
                up,
            }
        }
    }
}

/// Square root (fsqrt) rounded to precision `pc`.
pub(crate) fn sqrt(v: F80, pc: u8, rc: u8) -> Res<F80> {
    match v.class() {
        Class::Unsupported => res(F80::INDEF, IE),
        Class::SNaN => res(v.quiet(), IE),
        Class::QNaN | Class::Zero => res(v, 0),
        Class::Inf if !v.neg() => res(v, 0),
        _ if v.neg() => res(F80::INDEF, IE),
        _ => {
            let de = if v.class() == Class::Denormal { DE } else { 0 };
            let u = v.unpack();
            // value = m * 2^(e-63) with m = sig>>64 in [2^63, 2^64).
            // Make the exponent even: sqrt(m * 2^k) with k even.
            let m = u.sig >> 64;
            let k = u.e - 63;
            let (n, k) = if k & 1 == 0 { (m, k) } else { (m << 1, k - 1) };
            // Integer square root of n << 62 (about 64-65 result bits),
            // then a sticky bit for the remainder.
            let big = n << 62;
            let mut r = isqrt(big);
            let mut rem = big - r * r;
            // Three more root bits, digit by digit.
            for _ in 0..3 {
                let bit = rem > r;
                rem = if bit { 4 * rem - 4 * r - 1 } else { 4 * rem };
                r = 2 * r + u128::from(bit);
            }
            r = (r << 1) | u128::from(rem != 0);
            // value = r * 2^(k/2 - 31 - 3 - 1)
            let lz = r.leading_zeros() as i32;
            let lsb_exp = k / 2 - 35;
            let e = lsb_exp + (127 - lz);
            finish(
                Unp {
                    neg: false,
                    e,
                    sig: r << lz,
                },
                ext_fmt(pc),
                rc,
                de,
                (false, false),
            )
        }
    }
}

fn isqrt(n: u128) -> u128 {
    if n == 0 {
        return 0;
    }
    // Newton's method from an upper bound.
    let mut x: u128 = 1u128 << ((bitlen(n) + 1) / 2);
    loop {
        let y = (x + n / x) >> 1;
        if y >= x {
            return x;
        }
        x = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> F80 {
        from_ieee(x.to_bits(), F64).v
    }
    fn back(v: F80) -> f64 {
        f64::from_bits(to_ieee(v, F64, 0).v)
    }

    #[test]
    fn double_round_trips_exactly() {
        for x in [1.0, -2.5, 1e300, 5e-324, f64::MAX, f64::MIN_POSITIVE, 0.1] {
            assert_eq!(back(f(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn arithmetic_matches_f64_when_precision_is_double() {
        let xs = [1.0, 3.0, 0.1, -7.25, 1e-310, 1e300, 123_456.789];
        for &a in &xs {
            for &b in &xs {
                for (op, want) in [
                    (Op::Add, a + b),
                    (Op::Sub, a - b),
                    (Op::Mul, a * b),
                    (Op::Div, a / b),
                ] {
                    let r = arith(op, f(a), f(b), 2, 0, (false, false)).v;
                    // Rounding to 53 bits in the extended range, then to
                    // double, equals the double result unless denormal.
                    if want.is_normal() {
                        assert_eq!(back(r).to_bits(), want.to_bits(), "{a} {op:?} {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn sqrt_of_squares_is_exact() {
        for x in [1.0f64, 4.0, 9.0, 2.25, 1e10] {
            let r = sqrt(f(x), 3, 0);
            assert_eq!(back(r.v), x.sqrt());
            assert_eq!(r.flags, 0);
        }
        let r = sqrt(f(2.0), 2, 0);
        assert_eq!(back(r.v), 2f64.sqrt());
    }

    #[test]
    fn integer_conversion_rounds_by_rc_and_flags_overflow() {
        assert_eq!(to_int(f(2.5), 32, 0).v, Some(2));
        assert_eq!(to_int(f(-2.5), 32, 1).v, Some(-3));
        assert_eq!(to_int(f(2.5), 32, 2).v, Some(3));
        assert_eq!(to_int(f(-2.7), 32, 3).v, Some(-2));
        assert_eq!(to_int(f(32768.0), 16, 0).flags, IE);
        assert_eq!(to_int(f(-32768.0), 16, 0).v, Some(-32768));
        assert_eq!(from_int(i64::MIN).m, 1 << 63);
    }
}
