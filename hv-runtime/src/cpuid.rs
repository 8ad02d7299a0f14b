//! The `cpuid` answers guests get: a fixed, deterministic x86-64 CPU of the
//! chosen vendor (so a guest behaves the same on every host of that
//! vendor's choice), masked to what the software CPU implements
//! ([`hv_cpu::model::CpuModel::cpuid`]), plus Xen's hypervisor leaves at
//! 0x4000_0000 (XEN-PV-ABI §1.3), which PV guests reach through the
//! forced-emulation prefix. The software CPU reads its vendor-specific
//! behaviour back from these same answers, so what a guest observes always
//! matches the vendor its `cpuid` names (docs/CPU-VENDORS.md).

use hv_cpu::model::CpuModel;

/// Major/minor Xen version `hv` reports (`XENVER_version`, leaf 0x4000_0001).
pub const XEN_VERSION: (u32, u32) = (4, 19);

/// The answer for `leaf`/`subleaf` on a CPU of `model`.
#[must_use]
pub fn guest_cpuid(model: &CpuModel, leaf: u32, subleaf: u32) -> [u32; 4] {
    match leaf {
        0x4000_0000 => [0x4000_0002, 0x566e_6558, 0x6558_4d4d, 0x4d4d_566e],
        0x4000_0001 => [(XEN_VERSION.0 << 16) | XEN_VERSION.1, 0, 0, 0],
        // One hypercall page, MSR base 0x4000_0000, PRESERVE_AD supported.
        0x4000_0002 => [1, 0x4000_0000, 1, 0],
        _ => model.cpuid(leaf, subleaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_leaves_identify_xen() {
        let [_, b, c, d] = guest_cpuid(&CpuModel::INTEL, 0x4000_0000, 0);
        let sig: Vec<u8> = [b, c, d].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(&sig, b"XenVMMXenVMM");
        assert_eq!(guest_cpuid(&CpuModel::AMD, 0x4000_0002, 0)[1], 0x4000_0000);
    }

    #[test]
    fn features_are_limited_to_what_the_cpu_implements() {
        for m in [CpuModel::INTEL, CpuModel::AMD] {
            let [_, _, c, d] = guest_cpuid(&m, 1, 0);
            assert_ne!(d & (1 << 26), 0, "SSE2");
            assert_eq!(c & (1 << 28), 0, "no AVX");
            assert_eq!(guest_cpuid(&m, 7, 0)[1] & (1 << 5), 0, "no AVX2");
        }
    }

    #[test]
    fn the_vendor_string_names_the_modelled_vendor() {
        let id = |m: &CpuModel| {
            let [_, b, c, d] = guest_cpuid(m, 0, 0);
            [b, d, c]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        assert_eq!(id(&CpuModel::INTEL), b"GenuineIntel");
        assert_eq!(id(&CpuModel::AMD), b"AuthenticAMD");
        for m in [CpuModel::INTEL, CpuModel::AMD] {
            let back = CpuModel::from_cpuid(&|l, s| guest_cpuid(&m, l, s));
            assert_eq!(back, m);
        }
    }
}
