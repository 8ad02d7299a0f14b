//! Hypercall numbers (`__HYPERVISOR_*`) and the hypercall-page stub layout.
//!
//! A PV64 guest kernel puts the number in `rax` (the page stub does that) and
//! up to five arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`; the result comes
//! back in `rax` (negative = `-errno`).

/// Hypercall 0: `set_trap_table` (install virtual IDT entries).
pub const SET_TRAP_TABLE: u32 = 0;
/// Hypercall 1: `mmu_update` (batched page-table and M2P writes).
pub const MMU_UPDATE: u32 = 1;
/// Hypercall 2: `set_gdt` (install GDT frames).
pub const SET_GDT: u32 = 2;
/// Hypercall 3: `stack_switch` (set the kernel stack used on ring transitions).
pub const STACK_SWITCH: u32 = 3;
/// Hypercall 4: `set_callbacks` (legacy event/failsafe/syscall entry registration).
pub const SET_CALLBACKS: u32 = 4;
/// Hypercall 5: `fpu_taskswitch` (set or clear the virtual CR0.TS).
pub const FPU_TASKSWITCH: u32 = 5;
/// Legacy `sched_op` (yield/block/shutdown only).
pub const SCHED_OP_COMPAT: u32 = 6;
/// Privileged platform operations (`dom0_op` in very old interfaces).
pub const PLATFORM_OP: u32 = 7;
/// Hypercall 8: `set_debugreg` (write a debug register).
pub const SET_DEBUGREG: u32 = 8;
/// Hypercall 9: `get_debugreg` (read a debug register).
pub const GET_DEBUGREG: u32 = 9;
/// Hypercall 10: `update_descriptor` (write one GDT/LDT descriptor).
pub const UPDATE_DESCRIPTOR: u32 = 10;
// 11 is unused.
/// Hypercall 12: `memory_op`.
pub const MEMORY_OP: u32 = 12;
/// Hypercall 13: `multicall` (run a batch of hypercalls).
pub const MULTICALL: u32 = 13;
/// Hypercall 14: `update_va_mapping` (write the PTE for one virtual address).
pub const UPDATE_VA_MAPPING: u32 = 14;
/// Hypercall 15: `set_timer_op` (arm the single-shot timer).
pub const SET_TIMER_OP: u32 = 15;
/// Legacy event-channel op taking `struct evtchn_op` (cmd embedded).
pub const EVENT_CHANNEL_OP_COMPAT: u32 = 16;
/// Hypercall 17: `xen_version`.
pub const XEN_VERSION: u32 = 17;
/// Hypercall 18: `console_io` (emergency console read/write).
pub const CONSOLE_IO: u32 = 18;
/// Legacy physdev op (cmd embedded).
pub const PHYSDEV_OP_COMPAT: u32 = 19;
/// Hypercall 20: `grant_table_op`.
pub const GRANT_TABLE_OP: u32 = 20;
/// Hypercall 21: `vm_assist` (enable or disable a `VMASST_TYPE_*` assist).
pub const VM_ASSIST: u32 = 21;
/// Hypercall 22: `update_va_mapping_otherdomain` (as `update_va_mapping`, mapping a frame of
/// another domain).
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// Entered with `jmp`, never returns to the stub (see [`IRET_STUB`]).
pub const IRET: u32 = 23;
/// Hypercall 24: `vcpu_op`.
pub const VCPU_OP: u32 = 24;
/// Hypercall 25: `set_segment_base` (set FS/GS bases).
pub const SET_SEGMENT_BASE: u32 = 25;
/// Hypercall 26: `mmuext_op` (pinning, base pointers, TLB flushes).
pub const MMUEXT_OP: u32 = 26;
/// Hypercall 27: `xsm_op` (security-module (XSM/FLASK) requests).
pub const XSM_OP: u32 = 27;
/// Hypercall 28: `nmi_op` (NMI callback registration).
pub const NMI_OP: u32 = 28;
/// Hypercall 29: `sched_op` (yield, block, shutdown, poll).
pub const SCHED_OP: u32 = 29;
/// Hypercall 30: `callback_op` (register or unregister callbacks).
pub const CALLBACK_OP: u32 = 30;
/// Dropped in Xen 4.22.
pub const XENOPROF_OP: u32 = 31;
/// Hypercall 32: `event_channel_op`.
pub const EVENT_CHANNEL_OP: u32 = 32;
/// Hypercall 33: `physdev_op` (physical-device IRQ and I/O-port control).
pub const PHYSDEV_OP: u32 = 33;
/// Hypercall 34: `hvm_op` (HVM parameters and controls).
pub const HVM_OP: u32 = 34;
/// Hypercall 35: `sysctl` (toolstack host-wide control).
pub const SYSCTL: u32 = 35;
/// Hypercall 36: `domctl` (toolstack per-domain control).
pub const DOMCTL: u32 = 36;
/// Hypercall 37: `kexec_op` (load and run a crash/kexec image).
pub const KEXEC_OP: u32 = 37;
/// Always `-ENOSYS`.
pub const TMEM_OP: u32 = 38;
/// Hypercall 39: `argo_op` (Argo inter-domain messaging).
pub const ARGO_OP: u32 = 39;
/// Hypercall 40: `xenpmu_op` (virtual performance-monitoring unit).
pub const XENPMU_OP: u32 = 40;
/// Hypercall 41: `dm_op` (device-model operations).
pub const DM_OP: u32 = 41;
/// Hypercall 42: `hypfs_op` (hypervisor filesystem access).
pub const HYPFS_OP: u32 = 42;
/// `arch_0`: machine-check architecture on x86.
pub const MCA: u32 = 48;
/// `arch_1`: internal paging-domctl continuation on x86.
pub const PAGING_DOMCTL_CONT: u32 = 49;
/// Hypercall 48: `arch_0`, reserved for architecture-specific use (x86: [`MCA`]).
pub const ARCH_0: u32 = 48;
/// Hypercall 49: `arch_1`, reserved for architecture-specific use (x86: [`PAGING_DOMCTL_CONT`]).
pub const ARCH_1: u32 = 49;
/// Hypercall 50: `arch_2`, reserved for architecture-specific use.
pub const ARCH_2: u32 = 50;
/// Hypercall 51: `arch_3`, reserved for architecture-specific use.
pub const ARCH_3: u32 = 51;
/// Hypercall 52: `arch_4`, reserved for architecture-specific use.
pub const ARCH_4: u32 = 52;
/// Hypercall 53: `arch_5`, reserved for architecture-specific use.
pub const ARCH_5: u32 = 53;
/// Hypercall 54: `arch_6`, reserved for architecture-specific use.
pub const ARCH_6: u32 = 54;
/// Hypercall 55: `arch_7`, reserved for architecture-specific use.
pub const ARCH_7: u32 = 55;

/// Maximum number of hypercall arguments (`rdi`, `rsi`, `rdx`, `r10`, `r8`).
pub const MAX_ARGS: usize = 5;

/// Size of one hypercall-page stub; stub `n` is at `page + n * 32`.
pub const STUB_SIZE: usize = 32;
/// Number of stubs in the 4 KiB hypercall page.
pub const STUBS_PER_PAGE: usize = 128;
static_assertions::const_assert_eq!(STUB_SIZE * STUBS_PER_PAGE, super::XEN_PAGE_SIZE);

/// Byte Xen fills the whole page with before writing the stubs (`int3`).
pub const STUB_FILL: u8 = 0xCC;

/// Offset of the `imm32` hypercall number in a normal stub (`mov $N, %eax`).
pub const STUB_IMM32_OFFSET: usize = 4;
/// Offset of the `syscall` instruction in a normal stub.
pub const STUB_SYSCALL_OFFSET: usize = 8;
/// Length in bytes of the code part of a normal stub (rest is `0xCC`).
pub const STUB_CODE_LEN: usize = 14;

/// Bytes of a normal stub for hypercall `nr` (every `nr` except [`IRET`]):
/// `push %rcx; push %r11; mov $nr,%eax; syscall; pop %r11; pop %rcx; ret`,
/// padded with `int3`.
#[must_use]
pub const fn normal_stub(nr: u32) -> [u8; STUB_SIZE] {
    let mut s = [STUB_FILL; STUB_SIZE];
    let n = nr.to_le_bytes();
    let code: [u8; STUB_CODE_LEN] = [
        0x51, // push %rcx
        0x41, 0x53, // push %r11
        0xB8, n[0], n[1], n[2], n[3], // mov $nr, %eax
        0x0F, 0x05, // syscall
        0x41, 0x5B, // pop %r11
        0x59, // pop %rcx
        0xC3, // ret
    ];
    let mut i = 0;
    while i < STUB_CODE_LEN {
        s[i] = code[i];
        i += 1;
    }
    s
}

/// Offset of the `syscall` instruction in the iret stub.
pub const IRET_STUB_SYSCALL_OFFSET: usize = 9;
/// Length in bytes of the code part of the iret stub.
pub const IRET_STUB_CODE_LEN: usize = 11;

/// The iret stub (hypercall 23): `push %rcx; push %r11; push %rax;
/// mov $23,%eax; syscall`, padded with `int3`. Entered with `jmp`.
pub const IRET_STUB: [u8; STUB_SIZE] = {
    let mut s = [STUB_FILL; STUB_SIZE];
    let code: [u8; IRET_STUB_CODE_LEN] = [
        0x51, // push %rcx
        0x41, 0x53, // push %r11
        0x50, // push %rax
        0xB8, 0x17, 0x00, 0x00, 0x00, // mov $23, %eax
        0x0F, 0x05, // syscall
    ];
    let mut i = 0;
    while i < IRET_STUB_CODE_LEN {
        s[i] = code[i];
        i += 1;
    }
    s
};

/// The stub Xen writes for hypercall `nr` (the iret stub for [`IRET`]).
#[must_use]
pub const fn stub(nr: u32) -> [u8; STUB_SIZE] {
    if nr == IRET {
        IRET_STUB
    } else {
        normal_stub(nr)
    }
}

/// Offset of hypercall `nr`'s stub inside the hypercall page.
#[must_use]
pub const fn stub_offset(nr: u32) -> usize {
    nr as usize * STUB_SIZE
}
