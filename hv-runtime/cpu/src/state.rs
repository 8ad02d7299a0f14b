//! The neutral vCPU register state shared by every execution backend.
//!
//! `CpuState` is what the hypervisor reads and writes between runs: it never
//! asks which backend produced it. Everything here is plain data; the guest's
//! memory is not part of the state (see [`crate::mem::MachineMemory`]).

/// Index of each general-purpose register in [`CpuState::gpr`], in the x86
/// encoding order (so `gpr[reg_number]` works for ModRM/REX decoding).
pub mod reg {
    /// `rax`.
    pub const RAX: usize = 0;
    /// `rcx`.
    pub const RCX: usize = 1;
    /// `rdx`.
    pub const RDX: usize = 2;
    /// `rbx`.
    pub const RBX: usize = 3;
    /// `rsp` (the stack pointer).
    pub const RSP: usize = 4;
    /// `rbp`.
    pub const RBP: usize = 5;
    /// `rsi`.
    pub const RSI: usize = 6;
    /// `rdi`.
    pub const RDI: usize = 7;
    /// `r8`.
    pub const R8: usize = 8;
    /// `r9`.
    pub const R9: usize = 9;
    /// `r10`.
    pub const R10: usize = 10;
    /// `r11`.
    pub const R11: usize = 11;
    /// `r12`.
    pub const R12: usize = 12;
    /// `r13`.
    pub const R13: usize = 13;
    /// `r14`.
    pub const R14: usize = 14;
    /// `r15`.
    pub const R15: usize = 15;
}

/// RFLAGS bits.
pub mod rflags {
    /// Carry flag.
    pub const CF: u64 = 1 << 0;
    /// Bit 1, always set.
    pub const RESERVED1: u64 = 1 << 1;
    /// Parity flag (of the low byte).
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry (carry out of bit 3).
    pub const AF: u64 = 1 << 4;
    /// Zero flag.
    pub const ZF: u64 = 1 << 6;
    /// Sign flag.
    pub const SF: u64 = 1 << 7;
    /// Trap flag (single-step).
    pub const TF: u64 = 1 << 8;
    /// Interrupt-enable flag.
    pub const IF: u64 = 1 << 9;
    /// Direction flag (string instructions count down).
    pub const DF: u64 = 1 << 10;
    /// Overflow flag.
    pub const OF: u64 = 1 << 11;
    /// I/O privilege level (two bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume flag.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// CPUID-available flag.
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// A segment register: the visible selector and the descriptor fields the CPU
/// cached when it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Visible selector.
    pub selector: u16,
    /// Cached base (for FS/GS in 64-bit mode this is the MSR-backed base).
    pub base: u64,
    /// Cached limit (ignored in 64-bit mode except for FS/GS compatibility).
    pub limit: u32,
    /// Cached access-rights byte and flags (`type`, `S`, `DPL`, `P`, `L`,
    /// `D/B`, `G`), packed as in descriptor bits 40..=55 (so `attr & 0xff` is
    /// the access byte and `attr >> 8` the flags nibble at bits 12..=15).
    pub attr: u16,
}

/// Segment registers by encoding order.
pub mod sreg {
    /// `es`.
    pub const ES: usize = 0;
    /// `cs`.
    pub const CS: usize = 1;
    /// `ss`.
    pub const SS: usize = 2;
    /// `ds`.
    pub const DS: usize = 3;
    /// `fs` (its base is the FS base MSR).
    pub const FS: usize = 4;
    /// `gs` (its base is the GS base MSR).
    pub const GS: usize = 5;
}

/// Where a vCPU's descriptor tables live, as the hypervisor installed them.
///
/// PV guests never load GDTR/LDTR: the hypervisor owns them. The GDT is a list
/// of machine frames (`set_gdt`, up to 14 guest frames = 7168 entries); entries
/// from 7168 upward are the hypervisor's reserved page (flat ring-3 selectors
/// `0xe023`, `0xe02b`, `0xe033`), synthesised by the backend. The LDT is a
/// linear (guest-virtual) range installed by `MMUEXT_SET_LDT`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTables {
    /// Machine frame numbers of the guest GDT pages, in order.
    pub gdt_frames: Vec<u64>,
    /// Number of valid guest GDT entries (8 bytes each), at most 7168.
    pub gdt_entries: u32,
    /// Guest-virtual base of the LDT (page aligned), 0 when none.
    pub ldt_base: u64,
    /// Number of LDT entries, 0 when none.
    pub ldt_entries: u32,
}

/// The x87/SSE state in the 512-byte `FXSAVE` layout, plus nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FxArea(pub [u8; 512]);

impl Default for FxArea {
    fn default() -> Self {
        let mut a = [0u8; 512];
        // FCW = 0x037f (all x87 exceptions masked, extended precision).
        a[0] = 0x7f;
        a[1] = 0x03;
        // MXCSR = 0x1f80 (all SSE exceptions masked, round to nearest).
        a[24] = 0x80;
        a[25] = 0x1f;
        // MXCSR_MASK = 0xffff (the bits we let software set).
        a[28] = 0xff;
        a[29] = 0xff;
        Self(a)
    }
}

/// Neutral architectural state of one vCPU.
///
/// Both guest kernel and guest user run at CPL 3; `cr3` is whatever root table
/// the hypervisor installed for the current guest mode.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuState {
    /// General-purpose registers, indexed by [`reg`].
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// RFLAGS, fully materialised (backends with lazy flags settle them before
    /// returning from `run`).
    pub rflags: u64,
    /// Segment registers, indexed by [`sreg`].
    pub seg: [Segment; 6],
    /// The inactive GS base that `swapgs` would exchange (the hypervisor swaps
    /// it on guest kernel/user transitions; `swapgs` itself exits).
    pub kernel_gs_base: u64,
    /// Last page-fault linear address.
    pub cr2: u64,
    /// Machine address of the active root (L4) page table.
    pub cr3: u64,
    /// XMM0–XMM15.
    pub xmm: [u128; 16],
    /// MXCSR (the copy in `fx` is refreshed on `fxsave`; this is authoritative).
    pub mxcsr: u32,
    /// x87 state and everything else `fxsave` writes, in FXSAVE layout.
    pub fx: FxArea,
    /// Virtual CR0.TS: when set, the next x87/SSE instruction raises #NM.
    pub ts: bool,
    /// Descriptor tables for segment-register loads.
    pub tables: DescriptorTables,
}

impl Default for CpuState {
    fn default() -> Self {
        Self {
            gpr: [0; 16],
            rip: 0,
            rflags: rflags::RESERVED1 | rflags::IF,
            seg: [Segment::default(); 6],
            kernel_gs_base: 0,
            cr2: 0,
            cr3: 0,
            xmm: [0; 16],
            mxcsr: 0x1f80,
            fx: FxArea::default(),
            ts: false,
            tables: DescriptorTables::default(),
        }
    }
}
