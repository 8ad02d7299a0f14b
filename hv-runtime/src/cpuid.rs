//! The `cpuid` answers guests get: a fixed, deterministic x86-64 CPU (so a
//! guest behaves the same on every host), masked to what the software CPU
//! implements, plus Xen's hypervisor leaves at 0x4000_0000 (XEN-PV-ABI
//! §1.3), which PV guests reach through the forced-emulation prefix.

/// Major/minor Xen version `hv` reports (`XENVER_version`, leaf 0x4000_0001).
pub const XEN_VERSION: (u32, u32) = (4, 19);

/// The answer for `leaf`/`subleaf`.
#[must_use]
pub fn guest_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let raw = match leaf {
        // Max basic leaf and "GenuineIntel".
        0 => [0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        // Family 6 model 0x9e stepping 0xc; CLFLUSH size 8 (×8 bytes).
        1 => [0x0009_06ec, 0x0000_0800, u32::MAX, u32::MAX],
        7 => [0, u32::MAX, 0, 0],
        0x4000_0000 => [0x4000_0002, 0x566e_6558, 0x6558_4d4d, 0x4d4d_566e],
        0x4000_0001 => [(XEN_VERSION.0 << 16) | XEN_VERSION.1, 0, 0, 0],
        // One hypercall page, MSR base 0x4000_0000, PRESERVE_AD supported.
        0x4000_0002 => [1, 0x4000_0000, 1, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        0x8000_0001 => [0, 0, u32::MAX, u32::MAX],
        // 40 physical / 48 virtual address bits.
        0x8000_0008 => [0x3028, 0, 0, 0],
        _ => [0, 0, 0, 0],
    };
    hv_cpu::interp::mask_cpuid(leaf, subleaf, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_leaves_identify_xen() {
        let [_, b, c, d] = guest_cpuid(0x4000_0000, 0);
        let sig: Vec<u8> = [b, c, d].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(&sig, b"XenVMMXenVMM");
        assert_eq!(guest_cpuid(0x4000_0002, 0)[1], 0x4000_0000);
    }

    #[test]
    fn features_are_limited_to_what_the_cpu_implements() {
        let [_, _, c, d] = guest_cpuid(1, 0);
        assert_ne!(d & (1 << 26), 0, "SSE2");
        assert_eq!(c & (1 << 28), 0, "no AVX");
        assert_eq!(guest_cpuid(7, 0)[1] & (1 << 5), 0, "no AVX2");
    }
}
