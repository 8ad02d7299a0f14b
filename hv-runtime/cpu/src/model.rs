//! Which CPU the software CPU models: [`CpuModel`].
//!
//! Intel and AMD processors differ where their manuals differ (and in a
//! few places where both call a result "undefined" but programs can still
//! observe it). The software CPU models exactly one vendor per vCPU, and it
//! takes that vendor — and the few model-specific features that change
//! behaviour — from the **`cpuid` answers the guest itself gets**
//! ([`CpuEnv::cpuid`]), so what a guest observes is always consistent with
//! the CPU its `cpuid` names. The list of vendor differences, and what the
//! interpreter does for each, is `docs/CPU-VENDORS.md`.
//!
//! ```
//! use hv_cpu::model::{CpuModel, Vendor};
//! let amd = CpuModel::from_cpuid(&|leaf, _| match leaf {
//!     0 => [0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65], // "AuthenticAMD"
//!     0x8000_0000 => [0x8000_0008, 0, 0, 0],
//!     0x8000_0001 => [0, 0, 1 << 7, 0], // MisAlignSse
//!     _ => [0; 4],
//! });
//! assert_eq!(amd.vendor, Vendor::Amd);
//! assert_eq!(amd.mxcsr_mask(), 0x2_ffff);
//! assert_eq!(CpuModel::INTEL.mxcsr_mask(), 0xffff);
//! ```

use crate::CpuEnv;
use std::fmt;

/// A CPU vendor whose documented behaviour the software CPU follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Vendor {
    /// `GenuineIntel` (and any vendor string we do not know).
    #[default]
    Intel,
    /// `AuthenticAMD` (and `HygonGenuine`, AMD's licensed design).
    Amd,
}

impl Vendor {
    /// The 12-byte vendor string as `cpuid` leaf 0 returns it in EBX, EDX,
    /// ECX order: `[ebx, edx, ecx]`.
    #[must_use]
    pub const fn id_words(self) -> [u32; 3] {
        match self {
            // "Genu" "ineI" "ntel"
            Self::Intel => [0x756e_6547, 0x4965_6e69, 0x6c65_746e],
            // "Auth" "enti" "cAMD"
            Self::Amd => [0x6874_7541, 0x6974_6e65, 0x444d_4163],
        }
    }

    /// The vendor named by `cpuid` leaf 0's EBX, EDX, ECX.
    #[must_use]
    pub fn from_id_words(ebx: u32, edx: u32, ecx: u32) -> Self {
        let mut s = [0u8; 12];
        s[..4].copy_from_slice(&ebx.to_le_bytes());
        s[4..8].copy_from_slice(&edx.to_le_bytes());
        s[8..].copy_from_slice(&ecx.to_le_bytes());
        match &s {
            b"AuthenticAMD" | b"HygonGenuine" => Self::Amd,
            _ => Self::Intel,
        }
    }

    /// Parse `intel` or `amd` (case-insensitive).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "intel" => Some(Self::Intel),
            "amd" => Some(Self::Amd),
            _ => None,
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Intel => "intel",
            Self::Amd => "amd",
        })
    }
}

/// `cpuid` 0x8000_0001 ECX bit 7: misaligned SSE mode (AMD).
pub const MISALIGN_SSE_BIT: u32 = 1 << 7;
/// `cpuid` 0x8000_0021 EAX bit 6: loading a null selector clears the
/// segment base (AMD; Intel always does).
pub const NULL_SELECT_CLEARS_BASE_BIT: u32 = 1 << 6;
/// MXCSR bit 17, MM: misaligned-exception mask (AMD misaligned SSE mode).
pub const MXCSR_MM: u32 = 1 << 17;

/// The behaviour-relevant description of the modelled CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CpuModel {
    /// Whose documented behaviour to follow.
    pub vendor: Vendor,
    /// AMD misaligned SSE mode is available: MXCSR.MM (bit 17) is
    /// writable, and with it set, 16-byte SSE memory operands other than
    /// the explicitly aligned moves need no alignment.
    pub misaligned_sse: bool,
    /// Loading a null selector into DS/ES/FS/GS clears the hidden base
    /// (always on Intel; on AMD only where `cpuid` says so).
    pub null_selector_clears_base: bool,
}

impl CpuModel {
    /// An Intel CPU.
    pub const INTEL: Self = Self {
        vendor: Vendor::Intel,
        misaligned_sse: false,
        null_selector_clears_base: true,
    };
    /// An AMD CPU with misaligned SSE mode and without
    /// NullSelectClearsBase (a Zen 1/2 part as Xen presents it).
    pub const AMD: Self = Self {
        vendor: Vendor::Amd,
        misaligned_sse: true,
        null_selector_clears_base: false,
    };

    /// The model a `cpuid` function describes (leaf 0's vendor string,
    /// 0x8000_0001 ECX.MisAlignSse, 0x8000_0021 EAX.NullSelectClearsBase).
    #[must_use]
    pub fn from_cpuid(cpuid: &dyn Fn(u32, u32) -> [u32; 4]) -> Self {
        let [_, b, c, d] = cpuid(0, 0);
        let vendor = Vendor::from_id_words(b, d, c);
        let max_ext = cpuid(0x8000_0000, 0)[0];
        let ext1_ecx = if max_ext >= 0x8000_0001 {
            cpuid(0x8000_0001, 0)[2]
        } else {
            0
        };
        let ext21_eax = if max_ext >= 0x8000_0021 {
            cpuid(0x8000_0021, 0)[0]
        } else {
            0
        };
        match vendor {
            Vendor::Intel => Self::INTEL,
            Vendor::Amd => Self {
                vendor,
                misaligned_sse: ext1_ecx & MISALIGN_SSE_BIT != 0,
                null_selector_clears_base: ext21_eax & NULL_SELECT_CLEARS_BASE_BIT != 0,
            },
        }
    }

    /// The model described by an environment's `cpuid`.
    #[must_use]
    pub fn from_env(env: &dyn CpuEnv) -> Self {
        Self::from_cpuid(&|l, s| env.cpuid(l, s))
    }

    /// The model of the CPU this process runs on (read once: `cpuid` is a
    /// VM exit when the host itself is virtualised).
    #[must_use]
    pub fn host() -> Self {
        static HOST: std::sync::OnceLock<CpuModel> = std::sync::OnceLock::new();
        *HOST.get_or_init(|| Self::from_cpuid(&host_cpuid))
    }

    /// A model of `vendor` with that vendor's usual features
    /// ([`Self::INTEL`] or [`Self::AMD`]).
    #[must_use]
    pub const fn of(vendor: Vendor) -> Self {
        match vendor {
            Vendor::Intel => Self::INTEL,
            Vendor::Amd => Self::AMD,
        }
    }

    /// The `cpuid` answer `[eax, ebx, ecx, edx]` of a fixed CPU of this
    /// model, masked to what the software CPU implements
    /// ([`crate::interp::mask_cpuid`]): the same on every host, so a guest
    /// behaves the same everywhere. [`Self::from_cpuid`] of these answers
    /// gives this model back. Identity: Intel family 6 model 0x9e stepping
    /// 0xc (a Coffee Lake); AMD family 0x17 model 0x31 stepping 0 (a Zen 2
    /// EPYC). Hypervisor leaves (0x4000_0000..) are the caller's.
    #[must_use]
    pub fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let [vb, vd, vc] = self.vendor.id_words();
        let amd = self.vendor == Vendor::Amd;
        let signature = if amd { 0x0083_0f10 } else { 0x0009_06ec };
        let max_ext = if amd && self.null_selector_clears_base {
            0x8000_0021
        } else {
            0x8000_0008
        };
        let raw = match leaf {
            0 => [0xd, vb, vc, vd],
            // CLFLUSH line size 8 (× 8 bytes).
            1 => [signature, 0x0000_0800, u32::MAX, u32::MAX],
            7 => [0, u32::MAX, 0, 0],
            0x8000_0000 => [max_ext, 0, 0, 0],
            0x8000_0001 => {
                let misalign = if self.misaligned_sse {
                    MISALIGN_SSE_BIT
                } else {
                    0
                };
                let ecx = !MISALIGN_SSE_BIT | misalign;
                [if amd { signature } else { 0 }, 0, ecx, u32::MAX]
            }
            // 40 physical / 48 virtual address bits.
            0x8000_0008 => [0x3028, 0, 0, 0],
            0x8000_0021 if max_ext >= 0x8000_0021 => [NULL_SELECT_CLEARS_BASE_BIT, 0, 0, 0],
            _ => [0, 0, 0, 0],
        };
        mask_cpuid(leaf, subleaf, raw)
    }

    /// The MXCSR bits software may set (FXSAVE's MXCSR_MASK field).
    #[must_use]
    pub const fn mxcsr_mask(&self) -> u32 {
        if self.misaligned_sse {
            0xffff | MXCSR_MM
        } else {
            0xffff
        }
    }
}

/// `cpuid` on the host.
#[must_use]
pub fn host_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = std::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

// What the software CPU implements (re-exported as `hv_cpu::interp::{features,
// mask_cpuid}`): the model's `cpuid` is masked to it.

/// CPUID features the interpreter implements.
///
/// Leaf 1 EDX: FPU, TSC, CX8, CMOV, FXSR, SSE, SSE2 (+MMX bit is **not**
/// set: MMX registers are unimplemented); leaf 1 ECX: SSE3, SSSE3, CX16,
/// SSE4.1 (subset, see below), POPCNT; leaf 7 EBX: BMI1, BMI2, FSGSBASE;
/// leaf 0x8000_0001: LAHF-SAHF, ABM/LZCNT, SYSCALL, NX, LM, RDTSCP.
pub mod features {
    /// Leaf 1 EDX bits implemented.
    pub const L1_EDX: u32 = 1 | (1 << 4) | (1 << 8) | (1 << 15) | (1 << 24) | (1 << 25) | (1 << 26);
    /// Leaf 1 ECX bits implemented (SSE3, SSSE3, CX16, SSE4.1, POPCNT).
    pub const L1_ECX: u32 = 1 | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 23);
    /// Leaf 7.0 EBX bits implemented (FSGSBASE, BMI1, BMI2).
    pub const L7_EBX: u32 = 1 | (1 << 3) | (1 << 8);
    /// Leaf 0x8000_0001 ECX (LAHF/SAHF, ABM/LZCNT, MisAlignSse — AMD's
    /// misaligned SSE mode, see [`crate::model`]).
    pub const LX1_ECX: u32 = 1 | (1 << 5) | super::MISALIGN_SSE_BIT;
    /// Leaf 0x8000_0001 EDX (SYSCALL, NX, RDTSCP, LM).
    pub const LX1_EDX: u32 = (1 << 11) | (1 << 20) | (1 << 27) | (1 << 29);
}

/// Mask a `cpuid` answer (`[eax, ebx, ecx, edx]` for `leaf`/`subleaf`) to
/// the features this interpreter implements. Other leaves pass unchanged
/// except leaf 7 ECX/EDX and leaf 0xd (XSAVE state) which are cleared.
#[must_use]
pub fn mask_cpuid(leaf: u32, subleaf: u32, r: [u32; 4]) -> [u32; 4] {
    let [a, b, c, d] = r;
    match leaf {
        1 => [a, b, c & features::L1_ECX, d & features::L1_EDX],
        7 if subleaf == 0 => [0, b & features::L7_EBX, 0, 0],
        7 | 0xd => [0, 0, 0, 0],
        0x8000_0001 => [a, b, c & features::LX1_ECX, d & features::LX1_EDX],
        _ => [a, b, c, d],
    }
}

/// What the host CPU is, for reports: vendor string, family/model/stepping
/// (with the extended fields folded in as both vendors document) and the
/// brand string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCpu {
    /// The raw 12-character vendor string.
    pub vendor_id: String,
    /// Display family.
    pub family: u32,
    /// Display model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
    /// The brand string (leaves 0x8000_0002..4), trimmed.
    pub brand: String,
}

impl HostCpu {
    /// Read the host's identification.
    #[must_use]
    pub fn detect() -> Self {
        let [_, b, c, d] = host_cpuid(0, 0);
        let mut id = Vec::with_capacity(12);
        for w in [b, d, c] {
            id.extend_from_slice(&w.to_le_bytes());
        }
        let vendor_id = String::from_utf8_lossy(&id).into_owned();
        let a = host_cpuid(1, 0)[0];
        let base_family = (a >> 8) & 0xf;
        let family = if base_family == 0xf {
            base_family + ((a >> 20) & 0xff)
        } else {
            base_family
        };
        let model = if base_family == 0x6 || base_family == 0xf {
            ((a >> 4) & 0xf) | (((a >> 16) & 0xf) << 4)
        } else {
            (a >> 4) & 0xf
        };
        let mut brand = Vec::new();
        if host_cpuid(0x8000_0000, 0)[0] >= 0x8000_0004 {
            for leaf in 0x8000_0002..=0x8000_0004 {
                for w in host_cpuid(leaf, 0) {
                    brand.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
        let brand = String::from_utf8_lossy(&brand)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string();
        Self {
            vendor_id,
            family,
            model,
            stepping: a & 0xf,
            brand,
        }
    }
}

impl fmt::Display for HostCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} family {} ({:#x}) model {} ({:#x}) stepping {} \"{}\"",
            self.vendor_id,
            self.family,
            self.family,
            self.model,
            self.model,
            self.stepping,
            self.brand
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_strings_round_trip() {
        for v in [Vendor::Intel, Vendor::Amd] {
            let [b, d, c] = v.id_words();
            assert_eq!(Vendor::from_id_words(b, d, c), v);
        }
    }

    #[test]
    fn intel_cpuid_gives_the_intel_model() {
        let m = CpuModel::from_cpuid(&|leaf, _| match leaf {
            0 => {
                let [b, d, c] = Vendor::Intel.id_words();
                [0xd, b, c, d]
            }
            // Even if an Intel cpuid claimed MisAlignSse, Intel has no MM.
            0x8000_0000 => [0x8000_0008, 0, 0, 0],
            0x8000_0001 => [0, 0, u32::MAX, 0],
            _ => [0; 4],
        });
        assert_eq!(m, CpuModel::INTEL);
    }

    #[test]
    fn amd_features_follow_cpuid() {
        let m = CpuModel::from_cpuid(&|leaf, _| match leaf {
            0 => {
                let [b, d, c] = Vendor::Amd.id_words();
                [0xd, b, c, d]
            }
            0x8000_0000 => [0x8000_0021, 0, 0, 0],
            0x8000_0021 => [NULL_SELECT_CLEARS_BASE_BIT, 0, 0, 0],
            _ => [0; 4],
        });
        assert_eq!(m.vendor, Vendor::Amd);
        assert!(!m.misaligned_sse);
        assert!(m.null_selector_clears_base);
        assert_eq!(m.mxcsr_mask(), 0xffff);
    }

    #[test]
    fn a_models_cpuid_describes_that_model() {
        for vendor in [Vendor::Intel, Vendor::Amd] {
            for misaligned_sse in [false, true] {
                for null_selector_clears_base in [false, true] {
                    let m = CpuModel {
                        vendor,
                        misaligned_sse: misaligned_sse && vendor == Vendor::Amd,
                        null_selector_clears_base: null_selector_clears_base
                            || vendor == Vendor::Intel,
                    };
                    assert_eq!(CpuModel::from_cpuid(&|l, s| m.cpuid(l, s)), m);
                }
            }
        }
    }

    #[test]
    fn host_model_matches_host_vendor_string() {
        let h = HostCpu::detect();
        let m = CpuModel::host();
        let amd = h.vendor_id == "AuthenticAMD" || h.vendor_id == "HygonGenuine";
        assert_eq!(m.vendor == Vendor::Amd, amd, "{h}");
    }
}
