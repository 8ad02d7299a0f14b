//! Lazy arithmetic flags.
//!
//! ALU handlers do not compute RFLAGS; they record the operation kind, the
//! operand size, the result and the operands (`Lazy`). Conditions (`jcc`,
//! `setcc`, `cmovcc`) are answered directly from that record for the common
//! cases (after `cmp`/`sub` and after logic ops), and the six status flags
//! are materialised only when something needs them all (`pushf`, `lahf`,
//! `adc`, exits).
#![expect(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // x86 wraps

use crate::state::rflags::{AF, CF, OF, PF, SF, STATUS, ZF};

/// What produced the current status flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FOp {
    /// The status flags are in `Core::rf` as they are.
    Eager,
    Add,
    /// `aux` = carry in.
    Adc,
    Sub,
    /// `aux` = borrow in.
    Sbb,
    Logic,
    /// `aux` = the preserved CF (0/1).
    Inc,
    /// `aux` = the preserved CF (0/1).
    Dec,
    Neg,
    /// `a` = value, `b` = count (1..), `res` = result.
    Shl,
    Shr,
    Sar,
    /// CF = OF = `aux` (non-zero when the high half is significant).
    Mul,
}

/// The record of the last flag-setting operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lazy {
    pub op: FOp,
    /// Operand size in bytes (1, 2, 4, 8).
    pub sz: u8,
    pub res: u64,
    pub a: u64,
    pub b: u64,
    pub aux: u64,
}

impl Default for Lazy {
    fn default() -> Self {
        Self {
            op: FOp::Eager,
            sz: 8,
            res: 0,
            a: 0,
            b: 0,
            aux: 0,
        }
    }
}

#[inline(always)]
pub(crate) fn mask(sz: u8) -> u64 {
    u64::MAX >> (64 - 8 * u32::from(sz))
}

#[inline(always)]
pub(crate) fn sign_bit(sz: u8) -> u64 {
    1u64 << (8 * u32::from(sz) - 1)
}

/// Sign-extend the low `sz` bytes of `v`.
#[inline(always)]
pub(crate) fn sext(v: u64, sz: u8) -> i64 {
    let sh = 64 - 8 * u32::from(sz);
    ((v << sh) as i64) >> sh
}

#[inline(always)]
fn parity(res: u64) -> u64 {
    if (res as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

#[inline(always)]
fn szp(res: u64, sz: u8) -> u64 {
    let m = res & mask(sz);
    let mut f = parity(m);
    if m == 0 {
        f |= ZF;
    }
    if m & sign_bit(sz) != 0 {
        f |= SF;
    }
    f
}

impl Lazy {
    /// The six status flags this record implies (other bits zero).
    pub(crate) fn status(&self, eager: u64) -> u64 {
        let sz = self.sz;
        let m = mask(sz);
        let sb = sign_bit(sz);
        let (a, b, r) = (self.a & m, self.b & m, self.res & m);
        match self.op {
            FOp::Eager => eager & STATUS,
            FOp::Add | FOp::Adc => {
                let mut f = szp(r, sz);
                let carry = if self.op == FOp::Adc && self.aux != 0 {
                    r <= a
                } else {
                    r < a
                };
                if carry {
                    f |= CF;
                }
                if (a ^ r) & (b ^ r) & sb != 0 {
                    f |= OF;
                }
                f | ((a ^ b ^ r) & AF)
            }
            FOp::Sub | FOp::Sbb => {
                let mut f = szp(r, sz);
                let borrow = if self.op == FOp::Sbb && self.aux != 0 {
                    a <= b
                } else {
                    a < b
                };
                if borrow {
                    f |= CF;
                }
                if (a ^ b) & (a ^ r) & sb != 0 {
                    f |= OF;
                }
                f | ((a ^ b ^ r) & AF)
            }
            FOp::Logic => szp(r, sz),
            FOp::Inc => {
                let mut f = szp(r, sz) | (self.aux & CF);
                if r == sb {
                    f |= OF;
                }
                if r & 0xf == 0 {
                    f |= AF;
                }
                f
            }
            FOp::Dec => {
                let mut f = szp(r, sz) | (self.aux & CF);
                if a == sb {
                    f |= OF;
                }
                if a & 0xf == 0 {
                    f |= AF;
                }
                f
            }
            FOp::Neg => {
                let mut f = szp(r, sz);
                if a != 0 {
                    f |= CF;
                }
                if a == sb {
                    f |= OF;
                }
                f | ((a ^ r) & AF)
            }
            FOp::Shl => {
                let c = self.b as u32;
                let bits = 8 * u32::from(sz);
                let mut f = szp(r, sz);
                let cf = if c <= bits {
                    (u128::from(a) << c >> bits) as u64 & 1
                } else {
                    0
                };
                if cf != 0 {
                    f |= CF;
                }
                if ((r & sb) != 0) != (cf != 0) {
                    f |= OF;
                }
                f
            }
            FOp::Shr => {
                let c = self.b as u32;
                let mut f = szp(r, sz);
                if (1..=64).contains(&c) && (a >> (c - 1)) & 1 != 0 {
                    f |= CF;
                }
                if a & sb != 0 {
                    f |= OF;
                }
                f
            }
            FOp::Sar => {
                let c = self.b as u32;
                let mut f = szp(r, sz);
                let s = sext(a, sz);
                if c >= 1 && (s >> (c - 1).min(63)) & 1 != 0 {
                    f |= CF;
                }
                f
            }
            FOp::Mul => {
                let mut f = szp(r, sz);
                if self.aux != 0 {
                    f |= CF | OF;
                }
                f
            }
        }
    }

    /// Evaluate condition code `cc` (the x86 encoding, 0 = O … 15 = G).
    #[inline(always)]
    pub(crate) fn cond(&self, cc: u8, eager: u64) -> bool {
        if self.op != FOp::Eager && matches!(cc, 4 | 5 | 8 | 9) {
            // ZF and SF follow the recorded result for every operation.
            let r = self.res & mask(self.sz);
            let v = if cc < 8 {
                r == 0
            } else {
                r & sign_bit(self.sz) != 0
            };
            return v != (cc & 1 != 0);
        }
        match self.op {
            FOp::Sub => {
                let m = mask(self.sz);
                let (a, b) = (self.a & m, self.b & m);
                match cc {
                    2 => return a < b,
                    3 => return a >= b,
                    4 => return a == b,
                    5 => return a != b,
                    6 => return a <= b,
                    7 => return a > b,
                    12 => return sext(a, self.sz) < sext(b, self.sz),
                    13 => return sext(a, self.sz) >= sext(b, self.sz),
                    14 => return sext(a, self.sz) <= sext(b, self.sz),
                    15 => return sext(a, self.sz) > sext(b, self.sz),
                    _ => {}
                }
            }
            FOp::Logic => {
                let r = self.res & mask(self.sz);
                let s = r & sign_bit(self.sz) != 0;
                match cc {
                    0 | 2 => return false,
                    1 | 3 => return true,
                    4 | 6 => return r == 0,
                    5 | 7 => return r != 0,
                    8 | 12 => return s,
                    9 | 13 => return !s,
                    14 => return r == 0 || s,
                    15 => return r != 0 && !s,
                    _ => {}
                }
            }
            _ => {}
        }
        eval_cc(cc, self.status(eager))
    }
}

/// Evaluate condition `cc` against materialised flags.
#[inline]
pub(crate) fn eval_cc(cc: u8, f: u64) -> bool {
    let cf = f & CF != 0;
    let zf = f & ZF != 0;
    let sf = f & SF != 0;
    let of = f & OF != 0;
    let pf = f & PF != 0;
    let r = match cc >> 1 {
        0 => of,
        1 => cf,
        2 => zf,
        3 => cf || zf,
        4 => sf,
        5 => pf,
        6 => sf != of,
        _ => zf || (sf != of),
    };
    r ^ (cc & 1 != 0)
}
