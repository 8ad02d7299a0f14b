//! `xen_version` (hypercall 17) commands, argument layouts and `XENFEAT_*`.

/// `xen_version` command 0: returns the version as `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// `xen_version` command 1: copy out the version suffix ([`XenExtraversion`]).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// `xen_version` command 2: copy out build details ([`XenCompileInfo`]).
pub const XENVER_COMPILE_INFO: u32 = 2;
/// `xen_version` command 3: copy out the space-separated guest ABIs the host runs
/// ([`XenCapabilitiesInfo`]).
pub const XENVER_CAPABILITIES: u32 = 3;
/// `xen_version` command 4: copy out the source revision Xen was built from ([`XenChangesetInfo`]).
pub const XENVER_CHANGESET: u32 = 4;
/// `xen_version` command 5: read [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// `xen_version` command 6: read one `XENFEAT_*` submap ([`XenFeatureInfo`]).
pub const XENVER_GET_FEATURES: u32 = 6;
/// `xen_version` command 7: returns the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// `xen_version` command 8: copy out the domain's UUID ([`XenDomainHandle`]).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// `xen_version` command 9: copy out Xen's command line, privileged ([`XenCommandline`]).
pub const XENVER_COMMANDLINE: u32 = 9;
/// `xen_version` command 10: copy out the hypervisor build id into a `xen_varbuf`.
pub const XENVER_BUILD_ID: u32 = 10;
/// `xen_version` command 11: the version suffix into a `xen_varbuf` (no fixed size).
pub const XENVER_EXTRAVERSION2: u32 = 11;
/// `xen_version` command 12: the capabilities string into a `xen_varbuf`.
pub const XENVER_CAPABILITIES2: u32 = 12;
/// `xen_version` command 13: the source revision into a `xen_varbuf`.
pub const XENVER_CHANGESET2: u32 = 13;
/// `xen_version` command 14: Xen's command line into a `xen_varbuf`, privileged.
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
    /// Compiler name and version (NUL-terminated).
    pub compiler: [u8; 64],
    /// User who built Xen (NUL-terminated).
    pub compile_by: [u8; 16],
    /// DNS domain of the build host (NUL-terminated).
    pub compile_domain: [u8; 32],
    /// Build date (NUL-terminated).
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

/// Feature 0: the guest may write its page tables as ordinary memory.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Feature 1: the guest may write its GDT and LDT as ordinary memory.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Feature 2: Xen translates guest frames, so the guest never handles MFNs.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// Feature 3: the guest kernel runs in ring 0 (obsolete).
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// Feature 4: a 32-bit PAE guest's top-level table may sit above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// Feature 5: [`MMU_PT_UPDATE_PRESERVE_AD`](super::mmu::MMU_PT_UPDATE_PRESERVE_AD) is available.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// Feature 6: `MMUEXT_CLEAR_PAGE` and `MMUEXT_COPY_PAGE` are available.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Feature 7: grant maps honour the `GNTMAP_*` guest-available bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// Feature 8: an HVM guest may take event upcalls on an IDT vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// Feature 9: the PV clock is safe to use in an HVM guest.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// Feature 10: an HVM guest may receive physical IRQs as event channels.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// Feature 11: this domain is the initial (control) domain.
pub const XENFEAT_DOM0: u32 = 11;
/// Feature 12: granted frames are also mapped at pfn = mfn (deprecated).
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// Feature 13: `memory_op` understands [`XENMEMF_VNODE`](super::memory::XENMEMF_VNODE).
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Feature 14: Arm: the hypervisor supports the SMC calling convention.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// Feature 15: x86 PVH: the ACPI RSDP may lie above the first MiB (Linux guests only).
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// Feature 16: the domain's memory is not 1:1 mapped (gfn ≠ mfn).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// Feature 17: the domain's memory is 1:1 mapped (gfn = mfn).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// Feature 18: `VCPUOP_register_runstate_phys_area` is available.
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
/// Feature 19: `VCPUOP_register_vcpu_time_phys_area` is available.
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
/// Feature 20: device models see every MSI-X vector-control write, not only unmasks.
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
