//! Hypercall numbers (`__HYPERVISOR_*`) and the hypercall-page stub layout.
//!
//! A PV64 guest kernel puts the number in `rax` (the page stub does that) and
//! up to five arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`; the result comes
//! back in `rax` (negative = `-errno`).

pub const SET_TRAP_TABLE: u32 = 0;
pub const MMU_UPDATE: u32 = 1;
pub const SET_GDT: u32 = 2;
pub const STACK_SWITCH: u32 = 3;
pub const SET_CALLBACKS: u32 = 4;
pub const FPU_TASKSWITCH: u32 = 5;
/// Legacy `sched_op` (yield/block/shutdown only).
pub const SCHED_OP_COMPAT: u32 = 6;
/// Privileged platform operations (`dom0_op` in very old interfaces).
pub const PLATFORM_OP: u32 = 7;
pub const SET_DEBUGREG: u32 = 8;
pub const GET_DEBUGREG: u32 = 9;
pub const UPDATE_DESCRIPTOR: u32 = 10;
// 11 is unused.
pub const MEMORY_OP: u32 = 12;
pub const MULTICALL: u32 = 13;
pub const UPDATE_VA_MAPPING: u32 = 14;
pub const SET_TIMER_OP: u32 = 15;
/// Legacy event-channel op taking `struct evtchn_op` (cmd embedded).
pub const EVENT_CHANNEL_OP_COMPAT: u32 = 16;
pub const XEN_VERSION: u32 = 17;
pub const CONSOLE_IO: u32 = 18;
/// Legacy physdev op (cmd embedded).
pub const PHYSDEV_OP_COMPAT: u32 = 19;
pub const GRANT_TABLE_OP: u32 = 20;
pub const VM_ASSIST: u32 = 21;
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// Entered with `jmp`, never returns to the stub (see [`IRET_STUB`]).
pub const IRET: u32 = 23;
pub const VCPU_OP: u32 = 24;
pub const SET_SEGMENT_BASE: u32 = 25;
pub const MMUEXT_OP: u32 = 26;
pub const XSM_OP: u32 = 27;
pub const NMI_OP: u32 = 28;
pub const SCHED_OP: u32 = 29;
pub const CALLBACK_OP: u32 = 30;
/// Dropped in Xen 4.22.
pub const XENOPROF_OP: u32 = 31;
pub const EVENT_CHANNEL_OP: u32 = 32;
pub const PHYSDEV_OP: u32 = 33;
pub const HVM_OP: u32 = 34;
pub const SYSCTL: u32 = 35;
pub const DOMCTL: u32 = 36;
pub const KEXEC_OP: u32 = 37;
/// Always `-ENOSYS`.
pub const TMEM_OP: u32 = 38;
pub const ARGO_OP: u32 = 39;
pub const XENPMU_OP: u32 = 40;
pub const DM_OP: u32 = 41;
pub const HYPFS_OP: u32 = 42;
/// `arch_0`: machine-check architecture on x86.
pub const MCA: u32 = 48;
/// `arch_1`: internal paging-domctl continuation on x86.
pub const PAGING_DOMCTL_CONT: u32 = 49;
pub const ARCH_0: u32 = 48;
pub const ARCH_1: u32 = 49;
pub const ARCH_2: u32 = 50;
pub const ARCH_3: u32 = 51;
pub const ARCH_4: u32 = 52;
pub const ARCH_5: u32 = 53;
pub const ARCH_6: u32 = 54;
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
