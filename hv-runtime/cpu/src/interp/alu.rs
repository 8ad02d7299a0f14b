//! Flag-setting arithmetic shared by the executors: ALU operations,
//! shifts and rotates, multiplies. Each records its flags in the lazy
//! record ([`super::flags::Lazy`]) or sets them eagerly on [`Core`]; none
//! touches registers or memory. Used by `exec` (micro-ops) and `generic`.

use super::ctx::Core;
use super::flags::{FOp, Lazy, mask, sext, sign_bit};
use super::translate::{alu, sh};
use crate::state::rflags::{CF, OF, PF, SF, STATUS, ZF};

/// Perform an ALU operation and record its flags; returns the result.
#[inline(always)]
pub(crate) fn alu_op(c: &mut Core, op: u8, sz: u8, a: u64, b: u64) -> u64 {
    let m = mask(sz);
    let (a, b) = (a & m, b & m);
    let (fop, r, aux) = match op {
        alu::ADD => (FOp::Add, a.wrapping_add(b), 0),
        alu::OR => (FOp::Logic, a | b, 0),
        alu::ADC => {
            let cf = c.cf();
            (FOp::Adc, a.wrapping_add(b).wrapping_add(cf), cf)
        }
        alu::SBB => {
            let cf = c.cf();
            (FOp::Sbb, a.wrapping_sub(b).wrapping_sub(cf), cf)
        }
        alu::AND | alu::TEST => (FOp::Logic, a & b, 0),
        alu::SUB | alu::CMP => (FOp::Sub, a.wrapping_sub(b), 0),
        _ => (FOp::Logic, a ^ b, 0),
    };
    let r = r & m;
    c.lz = Lazy {
        op: fop,
        sz,
        res: r,
        a,
        b,
        aux,
    };
    r
}

/// The result of an ALU operation without recording flags (their flags
/// are dead).
#[inline(always)]
pub(crate) fn alu_val(c: &Core, op: u8, sz: u8, a: u64, b: u64) -> u64 {
    let r = match op {
        alu::ADD => a.wrapping_add(b),
        alu::OR => a | b,
        alu::ADC => a.wrapping_add(b).wrapping_add(c.cf()),
        alu::SBB => a.wrapping_sub(b).wrapping_sub(c.cf()),
        alu::AND | alu::TEST => a & b,
        alu::SUB | alu::CMP => a.wrapping_sub(b),
        _ => a ^ b,
    };
    r & mask(sz)
}

/// Shift/rotate without flags (dead): `None` when the masked count is 0.
#[inline(always)]
pub(crate) fn shift_val(kind: u8, sz: u8, a: u64, cnt: u64) -> Option<u64> {
    let cnt = (cnt & if sz == 8 { 63 } else { 31 }) as u32;
    if cnt == 0 {
        return None;
    }
    let m = mask(sz);
    let bits = 8 * u32::from(sz);
    let a = a & m;
    Some(match kind {
        sh::SHL | 6 => (a << cnt) & m,
        sh::SHR => a >> cnt,
        sh::SAR => (sext(a, sz) >> cnt) as u64 & m,
        sh::ROL | sh::ROR => {
            let rc = cnt & (bits - 1);
            if rc == 0 {
                a
            } else if kind == sh::ROL {
                ((a << rc) | (a >> (bits - rc))) & m
            } else {
                ((a >> rc) | (a << (bits - rc))) & m
            }
        }
        _ => return None,
    })
}

/// Shift/rotate `a` by `cnt` (unmasked); `None` when the count is zero (no
/// change at all, flags included).
#[inline]
pub(crate) fn shift_op(c: &mut Core, kind: u8, sz: u8, a: u64, cnt: u64) -> Option<u64> {
    let cnt = (cnt & if sz == 8 { 63 } else { 31 }) as u32;
    if cnt == 0 {
        return None;
    }
    let m = mask(sz);
    let bits = 8 * u32::from(sz);
    let a = a & m;
    let (fop, r) = match kind {
        sh::SHL | 6 => (FOp::Shl, if cnt < 64 { (a << cnt) & m } else { 0 }),
        sh::SHR => (FOp::Shr, a >> cnt),
        sh::SAR => (FOp::Sar, (sext(a, sz) >> cnt.min(63)) as u64 & m),
        sh::ROL | sh::ROR => {
            let rc = cnt & (bits - 1);
            let r = if rc == 0 {
                a
            } else if kind == sh::ROL {
                ((a << rc) | (a >> (bits - rc))) & m
            } else {
                ((a >> rc) | (a << (bits - rc))) & m
            };
            let f = c.flags() & !(CF | OF);
            let sb = sign_bit(sz);
            let (cf, of) = if kind == sh::ROL {
                let cf = r & 1 != 0;
                (cf, (r & sb != 0) != cf)
            } else {
                (r & sb != 0, (r & sb != 0) != (r & (sb >> 1) != 0))
            };
            c.set_flags(f | if cf { CF } else { 0 } | if of { OF } else { 0 });
            return Some(r);
        }
        _ => return None,
    };
    c.lz = Lazy {
        op: fop,
        sz,
        res: r,
        a,
        b: u64::from(cnt),
        aux: 0,
    };
    Some(r)
}

/// Signed multiply keeping the low half; records CF/OF.
#[inline(always)]
pub(crate) fn imul_op(c: &mut Core, sz: u8, a: u64, b: u64) -> u64 {
    let p = i128::from(sext(a, sz)) * i128::from(sext(b, sz));
    let r = (p as u64) & mask(sz);
    let of = i128::from(sext(r, sz)) != p;
    c.lz = Lazy {
        op: FOp::Mul,
        sz,
        res: r,
        a,
        b,
        aux: u64::from(of),
    };
    r
}

/// SF, ZF and PF of a result of size `sz`.
pub(crate) fn szp(v: u64, sz: u8) -> u64 {
    let v = v & mask(sz);
    let mut f = if (v as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    };
    if v == 0 {
        f |= ZF;
    }
    if v & sign_bit(sz) != 0 {
        f |= SF;
    }
    f
}

/// `rcl`/`rcr`: rotate through CF; `None` when the reduced count is 0.
pub(crate) fn rc_op(core: &mut Core, left: bool, sz: u8, a: u64, cnt: u64) -> Option<u64> {
    let c = (cnt & if sz == 8 { 63 } else { 31 }) as u32;
    let bits = 8 * u32::from(sz);
    let c = match sz {
        1 => c % 9,
        2 => c % 17,
        _ => c,
    };
    if c == 0 {
        return None;
    }
    let f = core.flags();
    let mut cf = f & CF != 0;
    let mut v = a & mask(sz);
    let sb = sign_bit(sz);
    let pre_of = (v & sb != 0) != cf;
    for _ in 0..c {
        if left {
            let out = v & sb != 0;
            v = ((v << 1) | u64::from(cf)) & mask(sz);
            cf = out;
        } else {
            let out = v & 1 != 0;
            v = (v >> 1) | if cf { 1u64 << (bits - 1) } else { 0 };
            cf = out;
        }
    }
    let of = if left { (v & sb != 0) != cf } else { pre_of };
    let nf = (f & !(CF | OF)) | if cf { CF } else { 0 } | if of { OF } else { 0 };
    core.set_flags(nf);
    Some(v)
}

/// `shld`/`shrd`; `None` when the masked count is 0.
pub(crate) fn shd_op(
    core: &mut Core,
    left: bool,
    sz: u8,
    a: u64,
    src: u64,
    cnt: u64,
) -> Option<u64> {
    let c = (cnt & if sz == 8 { 63 } else { 31 }) as u32;
    if c == 0 {
        return None;
    }
    let bits = 8 * u32::from(sz);
    let m = mask(sz);
    let (a, src) = (a & m, src & m);
    // Work on a 128-bit concatenation; for 16-bit counts > 16 this follows
    // Intel's behaviour of shifting through the source again.
    let (r, cf) = if left {
        let cat = (u128::from(a) << bits) | u128::from(src);
        let cat = if c > bits {
            cat | (u128::from(a) << (2 * bits))
        } else {
            cat
        };
        let r = ((cat << c) >> bits) as u64 & m;
        let cf = if c <= bits {
            (a >> (bits - c)) & 1 != 0
        } else {
            (src >> (2 * bits - c)) & 1 != 0
        };
        (r, cf)
    } else {
        let cat = (u128::from(src) << bits) | u128::from(a);
        let cat = if c > bits {
            cat | (u128::from(a) << (2 * bits))
        } else {
            cat
        };
        let r = (cat >> c) as u64 & m;
        let cf = ((cat >> (c - 1)) & 1) != 0;
        (r, cf)
    };
    let sb = sign_bit(sz);
    let of = (r & sb) != (a & sb);
    let mut f = szp(r, sz);
    if cf {
        f |= CF;
    }
    if of {
        f |= OF;
    }
    core.set_flags((core.flags() & !STATUS) | (f & STATUS));
    Some(r)
}
