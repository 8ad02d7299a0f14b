//! Xen's paravirtual clock (`vcpu_time_info`, §4.4) and the wallclock in
//! `shared_info`.
//!
//! Both are written by Xen under a version seqlock. The readers here are
//! generic over small source traits ([`TimeInfoSource`], [`WallclockSource`])
//! so that a guest reads the live shared page through the volatile accessors
//! in [`crate::shared`] — never through a Rust reference to memory Xen is
//! changing — while host tests can use plain values or fakes that change
//! between reads.

use core::sync::atomic::{Ordering, fence};

use crate::abi::xen::VcpuTimeInfo;

/// Scales a TSC delta to nanoseconds: shift by the signed `shift`, then
/// multiply by the 32.32 fixed-point `mul` in 128 bits.
#[must_use]
pub const fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let amount = shift.unsigned_abs() as u32;
    // Out-of-range shifts (never produced by Xen) saturate to 0 instead of
    // panicking.
    let d = if shift >= 0 {
        delta.checked_shl(amount)
    } else {
        delta.checked_shr(amount)
    };
    let d = match d {
        Some(d) => d,
        None => 0,
    };
    let prod = (d as u128 * mul as u128) >> 32;
    // The product of a u64 and a u32 shifted right by 32 fits in u64.
    #[expect(clippy::cast_possible_truncation)]
    let r = prod as u64;
    r
}

impl VcpuTimeInfo {
    /// System time (ns since boot) at TSC value `tsc`, from this snapshot
    /// (steps 4–5 of §4.4). A `tsc` before `tsc_timestamp` counts as zero
    /// elapsed time.
    #[must_use]
    pub const fn system_time(&self, tsc: u64) -> u64 {
        let delta = tsc.saturating_sub(self.tsc_timestamp);
        self.system_time
            .wrapping_add(scale_delta(delta, self.tsc_to_system_mul, self.tsc_shift))
    }

    /// The TSC frequency (Hz) this snapshot implies, or `None` if `mul` is 0.
    #[must_use]
    pub const fn tsc_frequency_hz(&self) -> Option<u64> {
        if self.tsc_to_system_mul == 0 {
            return None;
        }
        let f = (1_000_000_000u128 << 32) / self.tsc_to_system_mul as u128;
        let amount = self.tsc_shift.unsigned_abs() as u32;
        let f = if self.tsc_shift >= 0 {
            f.checked_shr(amount)
        } else {
            f.checked_shl(amount)
        };
        let f = match f {
            Some(f) => f,
            None => return None,
        };
        if f > u64::MAX as u128 {
            None
        } else {
            #[expect(clippy::cast_possible_truncation)] // bounded just above
            Some(f as u64)
        }
    }
}

/// A `vcpu_time_info` that Xen may be updating.
pub trait TimeInfoSource {
    /// Reads `version` (a single volatile/atomic load).
    fn version(&self) -> u32;
    /// Reads every other field (each a volatile load). `version` in the
    /// result is ignored.
    fn fields(&self) -> VcpuTimeInfo;
}

impl TimeInfoSource for VcpuTimeInfo {
    fn version(&self) -> u32 {
        self.version
    }
    fn fields(&self) -> VcpuTimeInfo {
        *self
    }
}

/// Default retry bound for the seqlock readers.
pub const MAX_RETRIES: u32 = 1_000_000;

/// Reads a consistent snapshot (steps 1–3 of §4.4), calling `read_tsc`
/// inside the read window. Returns the snapshot and the TSC, or `None` if no
/// consistent read happened in `max_retries` attempts.
pub fn read_consistent<S: TimeInfoSource + ?Sized>(
    src: &S,
    mut read_tsc: impl FnMut() -> u64,
    max_retries: u32,
) -> Option<(VcpuTimeInfo, u64)> {
    for _ in 0..max_retries.max(1) {
        let v = src.version();
        if v & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        fence(Ordering::Acquire);
        let mut snap = src.fields();
        let tsc = read_tsc();
        fence(Ordering::Acquire);
        if src.version() == v {
            snap.version = v;
            return Some((snap, tsc));
        }
    }
    None
}

/// Current system time in ns (§4.4 steps 1–5).
pub fn system_time_now<S: TimeInfoSource + ?Sized>(
    src: &S,
    read_tsc: impl FnMut() -> u64,
) -> Option<u64> {
    read_consistent(src, read_tsc, MAX_RETRIES).map(|(snap, tsc)| snap.system_time(tsc))
}

/// The wallclock fields of `shared_info` that Xen may be updating.
pub trait WallclockSource {
    /// Reads `wc_version`.
    fn wc_version(&self) -> u32;
    /// Reads `(wc_sec, wc_nsec, wc_sec_hi)`.
    fn wc_fields(&self) -> (u32, u32, u32);
}

/// Wall time corresponding to system time 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wallclock {
    /// Seconds since the Unix epoch (plus the domain's offset).
    pub sec: u64,
    /// Nanoseconds.
    pub nsec: u32,
}

impl Wallclock {
    /// Wall time at system time `system_ns` as `(sec, nsec)`.
    #[must_use]
    pub const fn at(&self, system_ns: u64) -> Wallclock {
        let total_ns = self.nsec as u64 + system_ns % 1_000_000_000;
        let sec = self.sec + system_ns / 1_000_000_000 + total_ns / 1_000_000_000;
        let nsec = (total_ns % 1_000_000_000) as u32; // < 1e9: exact
        Wallclock { sec, nsec }
    }
}

/// Reads the wallclock under the `wc_version` seqlock.
pub fn read_wallclock<S: WallclockSource + ?Sized>(src: &S, max_retries: u32) -> Option<Wallclock> {
    for _ in 0..max_retries.max(1) {
        let v = src.wc_version();
        if v & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        fence(Ordering::Acquire);
        let (sec, nsec, sec_hi) = src.wc_fields();
        fence(Ordering::Acquire);
        if src.wc_version() == v {
            return Some(Wallclock {
                sec: (u64::from(sec_hi) << 32) | u64::from(sec),
                nsec,
            });
        }
    }
    None
}
