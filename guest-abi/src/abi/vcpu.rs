//! vCPU operations (`vcpu_op`, hypercall 24) and the PV64 vCPU context
//! (`vcpu_guest_context`, `cpu_user_regs`).

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use super::callback::{TRAP_TABLE_ENTRIES, TrapInfo};

/// `vcpu_op` command 0: give a vCPU that has never run its initial state ([`VcpuGuestContext`]).
pub const VCPUOP_INITIALISE: u32 = 0;
/// `vcpu_op` command 1: start a vCPU.
pub const VCPUOP_UP: u32 = 1;
/// `vcpu_op` command 2: stop a vCPU.
pub const VCPUOP_DOWN: u32 = 2;
/// `vcpu_op` command 3: returns 1 if the vCPU is up, else 0.
pub const VCPUOP_IS_UP: u32 = 3;
/// `vcpu_op` command 4: read a vCPU's [`VcpuRunstateInfo`].
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// `vcpu_op` command 5: have Xen keep a [`VcpuRunstateInfo`] up to date at a guest VA.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// `vcpu_op` command 6: start the periodic timer ([`VcpuSetPeriodicTimer`]).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// `vcpu_op` command 7: stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `vcpu_op` command 8: arm the one-shot timer ([`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `vcpu_op` command 9: disarm the one-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `vcpu_op` command 10: move the vCPU's `vcpu_info` to a guest page ([`VcpuRegisterVcpuInfo`]).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `vcpu_op` command 11: raise an NMI on a vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// `vcpu_op` command 12: read the physical CPU ids behind a vCPU, privileged ([`VcpuGetPhysid`]).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// `vcpu_op` command 13: have Xen keep a copy of the vCPU time info at a guest VA.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;
/// `vcpu_op` command 14: as command 5, by guest-physical address.
pub const VCPUOP_REGISTER_RUNSTATE_PHYS_AREA: u32 = 14;
/// `vcpu_op` command 15: as command 13, by guest-physical address.
pub const VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA: u32 = 15;

/// `runstate.state`: running on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// `runstate.state`: ready to run, waiting for a physical CPU.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `runstate.state`: waiting for an event.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `runstate.state`: not runnable: down, or paused by the toolstack.
pub const RUNSTATE_OFFLINE: i32 = 3;
/// Bit of `state_entry_time` set while Xen updates the runstate area.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `set_singleshot_timer.flags`: the timeout must be in the future (ignored
/// by current Xen).
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;
/// Minimum periodic timer period accepted (1 ms).
pub const VCPU_PERIODIC_TIMER_MIN_NS: u64 = 1_000_000;
/// Periodic timer period a PV vCPU starts with (10 ms).
pub const VCPU_DEFAULT_PERIOD_NS: u64 = 10_000_000;

zc! {
    /// `struct vcpu_runstate_info`. Written by Xen.
    pub struct VcpuRunstateInfo {
        /// `RUNSTATE_*`.
        pub state: i32,
        /// Padding (zero).
        pub _pad: u32,
        /// System time of entry into `state` (bit 63 = update in progress).
        pub state_entry_time: u64,
        /// Time spent in each state (ns).
        pub time: [u64; 4],
    }
}
assert_layout!(
    VcpuRunstateInfo,
    size = 48,
    state = 0,
    state_entry_time = 8,
    time = 16
);

zc! {
    /// `struct vcpu_register_runstate_memory_area` (and the time-area and
    /// physical-area variants, which share the layout: one 8-byte address).
    pub struct VcpuRegisterMemoryArea {
        /// IN: guest VA (or guest-physical address for the `_PHYS_AREA` ops;
        /// `!0` unregisters).
        pub addr: u64,
    }
}
assert_layout!(VcpuRegisterMemoryArea, size = 8, addr = 0);

zc! {
    /// `struct vcpu_set_periodic_timer`.
    pub struct VcpuSetPeriodicTimer {
        /// IN: period (≥ 1 ms).
        pub period_ns: u64,
    }
}
assert_layout!(VcpuSetPeriodicTimer, size = 8, period_ns = 0);

zc! {
    /// `struct vcpu_set_singleshot_timer` (calling vCPU only).
    pub struct VcpuSetSingleshotTimer {
        /// IN: absolute system time (ns).
        pub timeout_abs_ns: u64,
        /// IN: `VCPU_SSHOTTMR_*`.
        pub flags: u32,
        /// Padding (zero).
        pub _pad: u32,
    }
}
assert_layout!(
    VcpuSetSingleshotTimer,
    size = 16,
    timeout_abs_ns = 0,
    flags = 8
);

zc! {
    /// `struct vcpu_register_vcpu_info`: move `vcpu_info` out of shared_info.
    pub struct VcpuRegisterVcpuInfo {
        /// IN: MFN of the page holding the new area.
        pub mfn: u64,
        /// IN: offset in that page (the 64-byte area must not cross it).
        pub offset: u32,
        /// Reserved (zero).
        pub rsvd: u32,
    }
}
assert_layout!(
    VcpuRegisterVcpuInfo,
    size = 16,
    mfn = 0,
    offset = 8,
    rsvd = 12
);

zc! {
    /// `struct vcpu_get_physid`.
    pub struct VcpuGetPhysid {
        /// OUT: APIC id (low 32 bits) and ACPI id (high 32 bits).
        pub phys_id: u64,
    }
}
assert_layout!(VcpuGetPhysid, size = 8, phys_id = 0);

// --- vcpu_guest_context --------------------------------------------------------------

/// The FPU state in the context is valid.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// The vCPU starts in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// The failsafe callback masks events.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// The syscall callback masks events.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// The vCPU is online.
pub const VGCF_ONLINE: u64 = 1 << 5;
/// (iret flag; see [`super::callback::VGCF_IN_SYSCALL`].)
pub const VGCF_IN_SYSCALL: u64 = super::callback::VGCF_IN_SYSCALL;

zc! {
    /// `struct cpu_user_regs` (x86-64): the general-purpose register file.
    pub struct CpuUserRegs {
        /// R15.
        pub r15: u64,
        /// R14.
        pub r14: u64,
        /// R13.
        pub r13: u64,
        /// R12.
        pub r12: u64,
        /// RBP.
        pub rbp: u64,
        /// RBX.
        pub rbx: u64,
        /// R11.
        pub r11: u64,
        /// R10.
        pub r10: u64,
        /// R9.
        pub r9: u64,
        /// R8.
        pub r8: u64,
        /// RAX.
        pub rax: u64,
        /// RCX.
        pub rcx: u64,
        /// RDX.
        pub rdx: u64,
        /// RSI.
        pub rsi: u64,
        /// RDI.
        pub rdi: u64,
        /// Xen-private.
        pub error_code: u32,
        /// Xen-private.
        pub entry_vector: u32,
        /// Instruction pointer.
        pub rip: u64,
        /// Code selector.
        pub cs: u16,
        /// Padding (zero).
        pub _pad0: u16,
        /// Xen-private: upcall mask saved in a bounce.
        pub saved_upcall_mask: u8,
        /// Padding (zero).
        pub _pad1: [u8; 3],
        /// RFLAGS.
        pub rflags: u64,
        /// Stack pointer.
        pub rsp: u64,
        /// Stack selector.
        pub ss: u16,
        /// Padding (zero).
        pub _pad2: [u16; 3],
        /// ES selector.
        pub es: u16,
        /// Padding (zero).
        pub _pad3: [u16; 3],
        /// DS selector.
        pub ds: u16,
        /// Padding (zero).
        pub _pad4: [u16; 3],
        /// FS selector.
        pub fs: u16,
        /// Padding (zero).
        pub _pad5: [u16; 3],
        /// GS selector.
        pub gs: u16,
        /// Padding (zero).
        pub _pad6: [u16; 3],
    }
}
assert_layout!(
    CpuUserRegs,
    size = 200,
    r15 = 0,
    r14 = 8,
    r13 = 16,
    r12 = 24,
    rbp = 32,
    rbx = 40,
    r11 = 48,
    r10 = 56,
    r9 = 64,
    r8 = 72,
    rax = 80,
    rcx = 88,
    rdx = 96,
    rsi = 104,
    rdi = 112,
    error_code = 120,
    entry_vector = 124,
    rip = 128,
    cs = 136,
    saved_upcall_mask = 140,
    rflags = 144,
    rsp = 152,
    ss = 160,
    es = 168,
    ds = 176,
    fs = 184,
    gs = 192
);

/// Size of the FXSAVE image at the start of the context.
pub const FPU_CTXT_SIZE: usize = 512;

/// `struct vcpu_guest_context` (PV64): the full state `VCPUOP_initialise`
/// installs. Written by the guest (or toolstack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VcpuGuestContext {
    /// FXSAVE image (valid with `VGCF_I387_VALID`).
    pub fpu_ctxt: [u8; FPU_CTXT_SIZE],
    /// `VGCF_*`.
    pub flags: u64,
    /// Register file.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; TRAP_TABLE_ENTRIES],
    /// LDT linear base (page aligned).
    pub ldt_base: u64,
    /// LDT entries (≤ 8192).
    pub ldt_ents: u64,
    /// GDT frames (MFNs); only 0–13 may be guest frames.
    pub gdt_frames: [u64; super::xen::GDT_FRAMES],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Stack selector used for bounces from user mode.
    pub kernel_ss: u64,
    /// Stack pointer used for bounces from user mode.
    pub kernel_sp: u64,
    /// `ctrlreg[3]` = kernel L4 as `mfn << 12`; `ctrlreg[1]` = user L4 (0 = none).
    pub ctrlreg: [u64; 8],
    /// Debug registers.
    pub debugreg: [u64; 8],
    /// Event callback entry.
    pub event_callback_eip: u64,
    /// Failsafe callback entry.
    pub failsafe_callback_eip: u64,
    /// Syscall callback entry.
    pub syscall_callback_eip: u64,
    /// Bitmap of enabled VM assists.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}
assert_layout!(
    VcpuGuestContext,
    size = 5168,
    fpu_ctxt = 0,
    flags = 512,
    user_regs = 520,
    user_regs.rip = 648,
    trap_ctxt = 720,
    ldt_base = 4816,
    ldt_ents = 4824,
    gdt_frames = 4832,
    gdt_ents = 4960,
    kernel_ss = 4968,
    kernel_sp = 4976,
    ctrlreg = 4984,
    debugreg = 5048,
    event_callback_eip = 5112,
    failsafe_callback_eip = 5120,
    syscall_callback_eip = 5128,
    vm_assist = 5136,
    fs_base = 5144,
    gs_base_kernel = 5152,
    gs_base_user = 5160
);

impl Default for VcpuGuestContext {
    fn default() -> Self {
        Self::new_zeroed()
    }
}
