//! Core PV64 structures (`xen.h`, `arch-x86/xen-x86_64.h`): `start_info`,
//! `shared_info`, `vcpu_info`, `vcpu_time_info`, multicall entries, the
//! virtual-address layout, Xen's reserved GDT selectors and VM assists.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

// ---------------------------------------------------------------------------
// Virtual-address layout (PV64).

/// Start of the hypervisor-reserved hole (L4 slot 256).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the hypervisor-reserved hole (L4 slot 272).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Start of the guest-readable machine-to-physical table (`unsigned long m2p[mfn]`).
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the read-only M2P table.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Number of entries in the read-only M2P table.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) / 8;
static_assertions::const_assert_eq!(MACH2PHYS_NR_ENTRIES, 0x8_0000_0000);
/// An M2P entry with the top bit set is invalid (unused frames hold `!0`).
pub const M2P_INVALID_BIT: u64 = 1 << 63;
/// First L4 slot owned by Xen.
pub const XEN_L4_FIRST_SLOT: usize = 256;
/// Last L4 slot owned by Xen (inclusive).
pub const XEN_L4_LAST_SLOT: usize = 271;
/// L4 slots owned by Xen; `mmu_update` on them fails and Xen overwrites them
/// when it validates an L4.
pub const XEN_L4_SLOTS: core::ops::RangeInclusive<usize> = XEN_L4_FIRST_SLOT..=XEN_L4_LAST_SLOT;
/// L4 slot of the read-only M2P.
pub const L4_SLOT_RO_M2P: usize = 256;
/// L4 slot of Xen's linear page-table self-map.
pub const L4_SLOT_LINEAR_PT: usize = 258;
/// L4 slot of Xen's per-domain (GDT/LDT shadow) area.
pub const L4_SLOT_PERDOMAIN: usize = 260;

/// Returns whether L4 slot `slot` belongs to Xen.
#[must_use]
pub const fn is_xen_l4_slot(slot: usize) -> bool {
    slot >= XEN_L4_FIRST_SLOT && slot <= XEN_L4_LAST_SLOT
}

// The hole is exactly the span of the reserved slots (512 GiB per slot).
static_assertions::const_assert_eq!(
    HYPERVISOR_VIRT_START,
    0xFFFF_0000_0000_0000 | ((XEN_L4_FIRST_SLOT as u64) << 39)
);
static_assertions::const_assert_eq!(
    HYPERVISOR_VIRT_END,
    0xFFFF_0000_0000_0000 | (((XEN_L4_LAST_SLOT as u64) + 1) << 39)
);

// ---------------------------------------------------------------------------
// Reserved GDT page (frame 14 of every vCPU's GDT).

/// First GDT entry Xen reserves; guests own entries `0..7168` (frames 0–13).
pub const FIRST_RESERVED_GDT_ENTRY: u32 = 7168;
/// First GDT page reserved for Xen.
pub const FIRST_RESERVED_GDT_PAGE: u32 = 14;
/// Number of `gdt_frames` slots in the vCPU context.
pub const GDT_FRAMES: usize = 16;

/// Xen's ring-0 64-bit code selector.
pub const XEN_CS64: u16 = 0xE008;
/// Xen's ring-0 data selector.
pub const XEN_DS: u16 = 0xE010;
/// Flat 32-bit ring-3 code selector.
pub const FLAT_RING3_CS32: u16 = 0xE023;
/// Flat 64-bit ring-3 code selector.
pub const FLAT_RING3_CS64: u16 = 0xE033;
/// Flat 32-bit ring-3 data selector.
pub const FLAT_RING3_DS32: u16 = 0xE02B;
/// Flat 64-bit ring-3 data selector (the null selector).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// Flat 32-bit ring-3 stack selector.
pub const FLAT_RING3_SS32: u16 = 0xE02B;
/// Flat 64-bit ring-3 stack selector.
pub const FLAT_RING3_SS64: u16 = 0xE02B;
/// Guest kernel code selector (PV64 kernels run at CPL 3).
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// Guest kernel data selector.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// Guest kernel stack selector.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// 32-bit compatibility code selector.
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// Alias used by 64-bit guests.
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Alias used by 64-bit guests.
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Alias used by 64-bit guests.
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;
/// User code selector (same flat segment as the kernel's).
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// User data selector.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// User stack selector.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// 32-bit user code selector.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// Alias used by 64-bit guests.
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// Alias used by 64-bit guests.
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// Alias used by 64-bit guests.
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;
/// Selector of Xen's per-CPU TSS descriptor (16 bytes).
pub const XEN_TSS_SELECTOR: u16 = 0xE040;
/// Selector of the LDT descriptor Xen installs (16 bytes).
pub const XEN_LDT_SELECTOR: u16 = 0xE050;
/// Selector of Xen's per-CPU marker entry.
pub const XEN_PER_CPU_SELECTOR: u16 = 0xE060;

/// Descriptor at [`XEN_CS64`] (entry 7169).
pub const XEN_CS64_DESC: u64 = 0x00AF_9B00_0000_FFFF;
/// Descriptor at [`XEN_DS`] (entry 7170).
pub const XEN_DS_DESC: u64 = 0x00CF_9300_0000_FFFF;
/// Descriptor at [`FLAT_RING3_CS32`] (entry 7172).
pub const FLAT_RING3_CS32_DESC: u64 = 0x00CF_FB00_0000_FFFF;
/// Descriptor at [`FLAT_RING3_DS32`] / [`FLAT_RING3_SS64`] (entry 7173).
pub const FLAT_RING3_DS32_DESC: u64 = 0x00CF_F300_0000_FFFF;
/// Descriptor at [`FLAT_RING3_CS64`] (entry 7174).
pub const FLAT_RING3_CS64_DESC: u64 = 0x00AF_FB00_0000_FFFF;

/// GDT entry index of a selector (`selector >> 3`).
#[must_use]
pub const fn gdt_entry(selector: u16) -> u32 {
    (selector >> 3) as u32
}
static_assertions::const_assert_eq!(gdt_entry(FLAT_RING3_CS64), 7174);
static_assertions::const_assert_eq!(gdt_entry(XEN_CS64), 7169);

// ---------------------------------------------------------------------------
// VM assists (`vm_assist` hypercall).

/// `vm_assist` command: enable an assist.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `vm_assist` command: disable an assist.
pub const VMASST_CMD_DISABLE: u32 = 1;
/// 32-bit only: emulate 4 GiB flat segments.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// 32-bit only: notify the guest when 4 GiB segments are emulated.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Writable page tables: plain stores to L1 entries are emulated as updates.
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// 32-bit PAE only: `cr3` above 4 GiB.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// Virtual IOPL through iret/bounce frames.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Set bit 63 of `state_entry_time` while updating the runstate area.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// Keep the read-only M2P out of user-mode L4s.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

// ---------------------------------------------------------------------------
// CPUID leaves (hypervisor range).

/// Base hypervisor leaf: EAX = max leaf, EBX/ECX/EDX = "XenVMMXenVMM".
pub const CPUID_LEAF_BASE: u32 = 0x4000_0000;
/// Version leaf: EAX = major << 16 | minor.
pub const CPUID_LEAF_VERSION: u32 = 0x4000_0001;
/// Hypercall-page leaf: EAX = pages, EBX = MSR base, ECX bit0 = preserve-AD.
pub const CPUID_LEAF_HYPERCALL: u32 = 0x4000_0002;
/// "XenV" in EBX of [`CPUID_LEAF_BASE`].
pub const CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
/// "MMXe" in ECX of [`CPUID_LEAF_BASE`].
pub const CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// "nVMM" in EDX of [`CPUID_LEAF_BASE`].
pub const CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;
/// MSR that installs the hypercall page (value = frame << 12).
pub const HYPERCALL_MSR: u32 = 0x4000_0000;
/// Prefix (`ud2; .ascii "xen"`) that makes a PV guest's `cpuid` go to Xen.
pub const FORCED_EMULATION_PREFIX: [u8; 5] = [0x0F, 0x0B, 0x78, 0x65, 0x6E];

// ---------------------------------------------------------------------------
// start_info.

/// Length of `start_info.magic`.
pub const START_INFO_MAGIC_LEN: usize = 32;
/// `start_info.magic` for a 64-bit PV guest (without the NUL).
pub const START_INFO_MAGIC_X86_64: &[u8] = b"xen-3.0-x86_64";
/// Size of `start_info.cmd_line` (`MAX_GUEST_CMDLINE`).
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// Privileged domain.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// Initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `mod_start` points to a multiboot-style module package.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `mod_start` is a PFN (module not mapped).
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// Tools understand a virtually-mapped p2m.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// Power-management options byte.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// The console part of `start_info` (a union in Xen).
///
/// The domU view is the named fields; the dom0 view overlays
/// `info_off`/`info_size` on `mfn` (see the accessors).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct StartInfoConsole {
    /// domU: MFN of the console ring page. Written by the domain builder.
    pub mfn: u64,
    /// domU: console event channel (local port). Written by the domain builder.
    pub evtchn: u32,
    /// Padding (zero).
    pub _pad: u32,
}
assert_layout!(StartInfoConsole, size = 16, mfn = 0, evtchn = 8);

impl StartInfoConsole {
    /// dom0 view: offset of `dom0_vga_console_info` in the start_info page.
    #[must_use]
    pub const fn dom0_info_off(&self) -> u32 {
        (self.mfn & 0xFFFF_FFFF) as u32
    }

    /// dom0 view: size of `dom0_vga_console_info`.
    #[must_use]
    pub const fn dom0_info_size(&self) -> u32 {
        (self.mfn >> 32) as u32
    }
}

/// `struct start_info`: what the domain builder tells a PV guest at boot
/// (pointer in `rsi` at entry). Written by the domain builder (and by Xen /
/// the toolstack on resume for `magic` through `console`); read-only to the
/// guest by convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct StartInfo {
    /// NUL-terminated `"xen-<version>-<platform>"`, e.g. `"xen-3.0-x86_64"`.
    pub magic: [u8; START_INFO_MAGIC_LEN],
    /// Total pages allocated to the domain.
    pub nr_pages: u64,
    /// Machine byte address of the shared_info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Padding (zero).
    pub _pad0: u32,
    /// MFN of the xenstore ring page.
    pub store_mfn: u64,
    /// Xenstore event channel (local port).
    pub store_evtchn: u32,
    /// Padding (zero).
    pub _pad1: u32,
    /// Console ring (domU) or VGA info location (dom0).
    pub console: StartInfoConsole,
    /// Virtual address of the bootstrap L4.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m array (`u64[nr_pages]`, PFN → MFN).
    pub mfn_list: u64,
    /// Virtual address of the initrd/module, or its PFN with `SIF_MOD_START_PFN`.
    pub mod_start: u64,
    /// Module size in bytes.
    pub mod_len: u64,
    /// NUL-terminated kernel command line.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the page tables + p2m placed outside the initial mapping, or 0.
    pub first_p2m_pfn: u64,
    /// Number of frames at `first_p2m_pfn`.
    pub nr_p2m_frames: u64,
}
assert_layout!(
    StartInfo,
    size = 1168,
    magic = 0,
    nr_pages = 32,
    shared_info = 40,
    flags = 48,
    _pad0 = 52,
    store_mfn = 56,
    store_evtchn = 64,
    _pad1 = 68,
    console = 72,
    console.mfn = 72,
    console.evtchn = 80,
    console._pad = 84,
    pt_base = 88,
    nr_pt_frames = 96,
    mfn_list = 104,
    mod_start = 112,
    mod_len = 120,
    cmd_line = 128,
    first_p2m_pfn = 1152,
    nr_p2m_frames = 1160
);

impl Default for StartInfo {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

impl StartInfo {
    /// The magic string up to its NUL.
    #[must_use]
    pub fn magic_str(&self) -> &[u8] {
        until_nul(&self.magic)
    }

    /// The command line up to its NUL.
    #[must_use]
    pub fn cmd_line_bytes(&self) -> &[u8] {
        until_nul(&self.cmd_line)
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or(b)
}

/// `struct xen_multiboot_mod_list`: one module of a `SIF_MULTIBOOT_MOD`
/// package; addresses relative to the package start. Written by the builder.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MultibootModList {
    /// Start offset; 0 ends the list.
    pub mod_start: u32,
    /// End offset (inclusive).
    pub mod_end: u32,
    /// Offset of the NUL-terminated command line.
    pub cmdline: u32,
    /// Padding (zero).
    pub pad: u32,
}
assert_layout!(
    MultibootModList,
    size = 16,
    mod_start = 0,
    mod_end = 4,
    cmdline = 8,
    pad = 12
);

// ---------------------------------------------------------------------------
// vcpu_time_info / vcpu_info / shared_info.

/// `vcpu_time_info.flags`: the TSC is stable across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `vcpu_time_info.flags`: the guest was stopped (paused).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info` (pvclock). Written by Xen, read by the guest
/// under the `version` seqlock (see [`crate::pvclock`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Xen: odd while an update is in progress.
    pub version: u32,
    /// Padding (zero).
    pub pad0: u32,
    /// Xen: TSC value at the last update.
    pub tsc_timestamp: u64,
    /// Xen: system time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// Xen: 32.32 fixed-point TSC → ns multiplier (applied after the shift).
    pub tsc_to_system_mul: u32,
    /// Xen: signed power-of-two shift applied to TSC deltas.
    pub tsc_shift: i8,
    /// Xen: `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding (zero).
    pub pad1: [u8; 2],
}
assert_layout!(
    VcpuTimeInfo,
    size = 32,
    version = 0,
    pad0 = 4,
    tsc_timestamp = 8,
    system_time = 16,
    tsc_to_system_mul = 24,
    tsc_shift = 28,
    flags = 29,
    pad1 = 30
);

/// `struct arch_vcpu_info` (x86-64).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ArchVcpuInfo {
    /// Xen: faulting address for a #PF bounce.
    pub cr2: u64,
    /// Padding (zero).
    pub pad: u64,
}
assert_layout!(ArchVcpuInfo, size = 16, cr2 = 0, pad = 8);

/// `struct vcpu_info`: per-vCPU event and time state shared with Xen.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuInfo {
    /// Xen sets it to 1 when events are pending; the guest clears it.
    pub evtchn_upcall_pending: u8,
    /// Guest: 1 = upcalls disabled ("interrupts off"). Xen sets it on callback entry.
    pub evtchn_upcall_mask: u8,
    /// Padding (zero).
    pub pad0: [u8; 6],
    /// Xen sets bit `i` when `evtchn_pending[i]` may have work; guest xchg's it to 0.
    pub evtchn_pending_sel: u64,
    /// Architecture part (Xen writes `cr2`).
    pub arch: ArchVcpuInfo,
    /// Xen: this vCPU's pvclock.
    pub time: VcpuTimeInfo,
}
assert_layout!(
    VcpuInfo,
    size = 64,
    evtchn_upcall_pending = 0,
    evtchn_upcall_mask = 1,
    pad0 = 2,
    evtchn_pending_sel = 8,
    arch = 16,
    arch.cr2 = 16,
    arch.pad = 24,
    time = 32,
    time.version = 32,
    time.tsc_timestamp = 40,
    time.system_time = 48,
    time.tsc_to_system_mul = 56,
    time.tsc_shift = 60,
    time.flags = 61
);

/// `struct arch_shared_info` (x86-64).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ArchSharedInfo {
    /// Guest: number of valid p2m entries (for the tools).
    pub max_pfn: u64,
    /// Guest: MFN of the p2m frame-list-list (0 = unset, !0 = use `p2m_vaddr`).
    pub pfn_to_mfn_frame_list_list: u64,
    /// Xen: NMI reason bits (`NMI_REASON_*`).
    pub nmi_reason: u64,
    /// Guest: cr3-format value of the address space where `p2m_vaddr` is valid.
    pub p2m_cr3: u64,
    /// Guest: virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// Guest: incremented before and after every p2m-mapping change.
    pub p2m_generation: u64,
}
assert_layout!(
    ArchSharedInfo,
    size = 48,
    max_pfn = 0,
    pfn_to_mfn_frame_list_list = 8,
    nmi_reason = 16,
    p2m_cr3 = 24,
    p2m_vaddr = 32,
    p2m_generation = 40
);

/// `arch_shared_info.nmi_reason`: I/O check error.
pub const NMI_REASON_IO_ERROR: u64 = 1 << 0;
/// `arch_shared_info.nmi_reason`: PCI SERR / parity error.
pub const NMI_REASON_PCI_SERR: u64 = 1 << 1;
/// `arch_shared_info.nmi_reason`: unknown reason.
pub const NMI_REASON_UNKNOWN: u64 = 1 << 2;

/// `XEN_LEGACY_MAX_VCPUS`: `vcpu_info` slots inside `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Words in `evtchn_pending` / `evtchn_mask` (64 bits each).
pub const EVTCHN_WORDS: usize = 64;

/// `struct shared_info`: the page Xen shares with every PV domain
/// (machine address in `start_info.shared_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SharedInfo {
    /// Per-vCPU state for vCPUs 0..32 (unless moved with register_vcpu_info).
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Xen sets bit P when port P is raised; the guest clears it.
    pub evtchn_pending: [u64; EVTCHN_WORDS],
    /// Guest: bit P set = port P masked (no upcall).
    pub evtchn_mask: [u64; EVTCHN_WORDS],
    /// Xen: wallclock seqcount (odd = update in progress).
    pub wc_version: u32,
    /// Xen: wallclock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Xen: wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// Xen: high 32 bits of `wc_sec`.
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}
assert_layout!(
    SharedInfo,
    size = 3136,
    vcpu_info = 0,
    evtchn_pending = 2048,
    evtchn_mask = 2560,
    wc_version = 3072,
    wc_sec = 3076,
    wc_nsec = 3080,
    wc_sec_hi = 3084,
    arch = 3088,
    arch.max_pfn = 3088,
    arch.pfn_to_mfn_frame_list_list = 3096,
    arch.nmi_reason = 3104,
    arch.p2m_cr3 = 3112,
    arch.p2m_vaddr = 3120,
    arch.p2m_generation = 3128
);

impl Default for SharedInfo {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

/// Byte offset of `vcpu_info[vcpu]` inside `shared_info`.
#[must_use]
pub const fn vcpu_info_offset(vcpu: usize) -> usize {
    vcpu * core::mem::size_of::<VcpuInfo>()
}

// ---------------------------------------------------------------------------
// multicall.

/// `struct multicall_entry`: one call of a `multicall` batch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MulticallEntry {
    /// Guest: hypercall number.
    pub op: u64,
    /// Xen: that call's return value.
    pub result: u64,
    /// Guest: arguments (Xen uses the first five).
    pub args: [u64; 6],
}
assert_layout!(MulticallEntry, size = 64, op = 0, result = 8, args = 16);
