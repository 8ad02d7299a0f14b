//! `xen_version` (hypercall 17) commands, argument layouts and `XENFEAT_*`.

pub const XENVER_VERSION: u32 = 0;
pub const XENVER_EXTRAVERSION: u32 = 1;
pub const XENVER_COMPILE_INFO: u32 = 2;
pub const XENVER_CAPABILITIES: u32 = 3;
pub const XENVER_CHANGESET: u32 = 4;
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
pub const XENVER_GET_FEATURES: u32 = 6;
pub const XENVER_PAGESIZE: u32 = 7;
pub const XENVER_GUEST_HANDLE: u32 = 8;
pub const XENVER_COMMANDLINE: u32 = 9;
pub const XENVER_BUILD_ID: u32 = 10;
pub const XENVER_EXTRAVERSION2: u32 = 11;
pub const XENVER_CAPABILITIES2: u32 = 12;
pub const XENVER_CHANGESET2: u32 = 13;
pub const XENVER_COMMANDLINE2: u32 = 14;

/// `xen_extraversion_t`.
pub type XenExtraversion = [u8; 16];
/// `xen_capabilities_info_t`.
pub type XenCapabilitiesInfo = [u8; 1024];
/// `xen_changeset_info_t`.
pub type XenChangesetInfo = [u8; 64];
/// `xen_domain_handle_t` (UUID).
pub type XenDomainHandle = [u8; 16];
/// `xen_commandline_t`.
pub type XenCommandline = [u8; 1024];

/// `struct xen_compile_info`. Written by Xen.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
#[repr(C)]
pub struct XenCompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}
assert_layout!(
    XenCompileInfo,
    size = 144,
    compiler = 0,
    compile_by = 64,
    compile_domain = 80,
    compile_date = 112
);

zc! {
    /// `struct xen_platform_parameters`.
    pub struct XenPlatformParameters {
        /// OUT: start of the hypervisor hole (0 in debug builds for PV64).
        pub virt_start: u64,
    }
}
assert_layout!(XenPlatformParameters, size = 8, virt_start = 0);

zc! {
    /// `struct xen_feature_info` (`XENVER_get_features`).
    pub struct XenFeatureInfo {
        /// IN: which 32-bit submap (only 0 is defined).
        pub submap_idx: u32,
        /// OUT: bit `n` = `XENFEAT` number `32 * submap_idx + n`.
        pub submap: u32,
    }
}
assert_layout!(XenFeatureInfo, size = 8, submap_idx = 0, submap = 4);

zc! {
    /// Header of `struct xen_varbuf`; `len` bytes of data follow at offset 4.
    pub struct XenVarbufHeader {
        /// IN: buffer capacity; the call returns bytes written.
        pub len: u32,
    }
}
assert_layout!(XenVarbufHeader, size = 4, len = 0);

/// Number of feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
pub const XENFEAT_HVM_PIRQS: u32 = 10;
pub const XENFEAT_DOM0: u32 = 11;
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
pub const XENFEAT_DM_MSIX_ALL_WRITES: u32 = 20;
/// Number of defined feature bits.
pub const XENFEAT_NR: u32 = 21;

/// Feature names as they appear in the `FEATURES` ELF note, indexed by bit.
pub const XENFEAT_NAMES: [&str; XENFEAT_NR as usize] = [
    "writable_page_tables",
    "writable_descriptor_tables",
    "auto_translated_physmap",
    "supervisor_mode_kernel",
    "pae_pgdir_above_4gb",
    "mmu_pt_update_preserve_ad",
    "highmem_assist",
    "gnttab_map_avail_bits",
    "hvm_callback_vector",
    "hvm_safe_pvclock",
    "hvm_pirqs",
    "dom0",
    "grant_map_identity",
    "memory_op_vnode_supported",
    "ARM_SMCCC_supported",
    "linux_rsdp_unrestricted",
    "not_direct_mapped",
    "direct_mapped",
    "runstate_phys_area",
    "vcpu_time_phys_area",
    "dm_msix_all_writes",
];

/// Submap-0 bits Xen reports for a PV64 domU today (5, 6, 7, 13, 17–20).
pub const XENFEAT_PV64_DOMU_DEFAULT: u32 = (1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
    | (1 << XENFEAT_HIGHMEM_ASSIST)
    | (1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS)
    | (1 << XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
    | (1 << XENFEAT_DIRECT_MAPPED)
    | (1 << XENFEAT_RUNSTATE_PHYS_AREA)
    | (1 << XENFEAT_VCPU_TIME_PHYS_AREA)
    | (1 << XENFEAT_DM_MSIX_ALL_WRITES);
