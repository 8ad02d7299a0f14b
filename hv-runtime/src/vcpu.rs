//! The paravirtual part of a vCPU and Xen's trap bounce (XEN-PV-ABI §1.4,
//! §3, §7.5–§7.6).
//!
//! Guest kernel and guest user both run at CPL 3; [`PvVcpu::kernel_mode`] is
//! the hypervisor's record of which one is running. Entering the kernel
//! (exception, event, user `syscall`) switches to the kernel root table and
//! GS base and builds Xen's bounce frame on the kernel stack:
//!
//! ```text
//!   rsp+0   RCX        rsp+8  R11       [rsp+16 error code]
//!   then    RIP, CS (RPL 0 if interrupted in kernel mode; bits 39:32 = saved
//!           upcall mask), RFLAGS (IF = !saved mask), RSP, SS
//! ```
//!
//! `HYPERVISOR_iret` undoes it. A frame that cannot be written crashes the
//! domain (the guest's kernel stack is broken beyond repair).

use guest_abi::abi::callback::IretContext;
use guest_abi::abi::xen::{
    FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, FLAT_RING3_CS64_DESC, FLAT_RING3_DS32_DESC,
    HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START,
};
use hv_cpu::CpuState;
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};
use hv_cpu::state::{reg, rflags, sreg};

use crate::domain::builder::flat_segment;
use crate::guestmem::{self, GuestFault};
use crate::machine::FrameTable;

/// One guest trap-table entry (`trap_info` minus the vector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapEntry {
    /// DPL in bits 1:0, "mask events" in bit 2.
    pub flags: u8,
    /// Handler address (0 = none).
    pub address: u64,
}

/// `trap_info.flags` bit 2: deliver with events masked (interrupt gate).
pub const TI_MASK_EVENTS: u8 = 4;
/// `iret` frame flag: return through the SYSRET path (rcx/r11 discarded).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// The PV state Xen keeps per vCPU beside the registers.
#[derive(Clone, Debug)]
pub struct PvVcpu {
    /// Guest kernel (true) or guest user mode.
    pub kernel_mode: bool,
    /// Kernel stack segment from `stack_switch`.
    pub kernel_ss: u64,
    /// Kernel stack pointer from `stack_switch`.
    pub kernel_sp: u64,
    /// `CALLBACKTYPE_event` entry.
    pub event_callback: u64,
    /// `CALLBACKTYPE_failsafe` entry.
    pub failsafe_callback: u64,
    /// `CALLBACKTYPE_syscall` entry.
    pub syscall_callback: u64,
    /// `CALLBACKTYPE_nmi` entry.
    pub nmi_callback: u64,
    /// Mask events on syscall entry (`CALLBACKF_mask_events`).
    pub syscall_masks_events: bool,
    /// Mask events on failsafe entry.
    pub failsafe_masks_events: bool,
    /// The guest trap table.
    pub traps: [TrapEntry; 256],
    /// Kernel root table (`NEW_BASEPTR`).
    pub kernel_l4: Mfn,
    /// User root table (`NEW_USER_BASEPTR`), if any.
    pub user_l4: Option<Mfn>,
    /// The GS base of the mode that is *not* running (swapped on switches).
    pub inactive_gs_base: u64,
    /// Virtual IOPL (`physdev_op` set_iopl / architectural IOPL).
    pub iopl: u8,
    /// Machine address of this vCPU's `vcpu_info`.
    pub vcpu_info: MachineAddr,
    /// The frame `VCPUOP_register_vcpu_info` moved `vcpu_info` into, on
    /// which the vCPU holds a general and a writable type reference (the
    /// hypervisor writes there, so it may never become a page table).
    /// Registration happens at most once, as in Xen.
    pub vcpu_info_frame: Option<Mfn>,
    /// Debug registers as set by `set_debugreg`.
    pub debugreg: [u64; 8],
}

impl PvVcpu {
    /// A vCPU in kernel mode on `kernel_l4` with `vcpu_info` at `vcpu_info`.
    #[must_use]
    pub fn new(kernel_l4: Mfn, vcpu_info: MachineAddr, kernel_sp: u64) -> Self {
        let mut debugreg = [0; 8];
        debugreg[6] = 0xffff_0ff0;
        debugreg[7] = 0x400;
        Self {
            kernel_mode: true,
            kernel_ss: u64::from(FLAT_KERNEL_SS64),
            kernel_sp,
            event_callback: 0,
            failsafe_callback: 0,
            syscall_callback: 0,
            nmi_callback: 0,
            syscall_masks_events: false,
            failsafe_masks_events: false,
            traps: [TrapEntry::default(); 256],
            kernel_l4,
            user_l4: None,
            inactive_gs_base: 0,
            iopl: 0,
            vcpu_info,
            vcpu_info_frame: None,
            debugreg,
        }
    }

    /// `evtchn_upcall_mask` of this vCPU.
    ///
    /// # Errors
    /// The `vcpu_info` address is outside machine memory.
    pub fn upcall_mask(&self, mem: &MachineMemory) -> Result<bool, hv_cpu::mem::MemError> {
        Ok(mem.read_u8(MachineAddr(self.vcpu_info.0 + 1))? != 0)
    }

    /// Set `evtchn_upcall_mask`.
    ///
    /// # Errors
    /// The `vcpu_info` address is outside machine memory.
    pub fn set_upcall_mask(
        &self,
        mem: &MachineMemory,
        masked: bool,
    ) -> Result<(), hv_cpu::mem::MemError> {
        mem.write_u8(MachineAddr(self.vcpu_info.0 + 1), u8::from(masked))
    }

    /// Whether an event upcall should be delivered now.
    #[must_use]
    pub fn upcall_deliverable(&self, mem: &MachineMemory) -> bool {
        let pending = mem.read_u8(self.vcpu_info).unwrap_or(0) != 0;
        pending && !self.upcall_mask(mem).unwrap_or(true) && self.event_callback != 0
    }

    /// Switch the running mode, swapping root tables and GS bases.
    ///
    /// # Errors
    /// [`BounceError::NoUserTable`] when entering user mode without a user
    /// root table.
    pub fn switch_mode(&mut self, cpu: &mut CpuState, to_kernel: bool) -> Result<(), BounceError> {
        if self.kernel_mode == to_kernel {
            return Ok(());
        }
        let root = if to_kernel {
            self.kernel_l4
        } else {
            self.user_l4.ok_or(BounceError::NoUserTable)?
        };
        cpu.cr3 = root.addr().0;
        std::mem::swap(&mut cpu.seg[sreg::GS].base, &mut self.inactive_gs_base);
        cpu.kernel_gs_base = self.inactive_gs_base;
        self.kernel_mode = to_kernel;
        Ok(())
    }
}

/// Why a bounce or an `iret` could not be done; the domain is crashed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BounceError {
    /// The guest registered no handler for what must be delivered.
    #[error("no guest handler registered for {0}")]
    NoHandler(&'static str),
    /// The bounce frame could not be written (or the iret frame read).
    #[error("guest kernel stack unusable: {0}")]
    Stack(#[from] GuestFault),
    /// A return to user mode with no user page table.
    #[error("return to user mode without a user page table")]
    NoUserTable,
    /// The stack pointer lies in the hypervisor's reserved range.
    #[error("bounce frame in the hypervisor area at {0:#x}")]
    ReservedStack(u64),
    /// `vcpu_info` unreachable.
    #[error("vcpu_info unreachable")]
    VcpuInfo,
}

/// What to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bounce {
    /// An exception or software interrupt through the trap table.
    Trap {
        /// Vector.
        vector: u8,
        /// Error code, for vectors that push one.
        error_code: Option<u32>,
    },
    /// The event upcall.
    Event,
    /// A `syscall` from guest user mode.
    Syscall,
}

/// Vectors whose exceptions push an error code.
#[must_use]
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Build the bounce frame and enter the guest kernel handler.
///
/// # Errors
/// [`BounceError`]: the caller crashes the domain.
pub fn bounce(
    cpu: &mut CpuState,
    pv: &mut PvVcpu,
    mem: &MachineMemory,
    ft: &FrameTable,
    what: Bounce,
) -> Result<(), BounceError> {
    let (handler, mask_events, error_code) = match what {
        Bounce::Trap { vector, error_code } => {
            let t = pv.traps[usize::from(vector)];
            if t.address == 0 {
                return Err(BounceError::NoHandler("this exception vector"));
            }
            (t.address, t.flags & TI_MASK_EVENTS != 0, error_code)
        }
        Bounce::Event => {
            if pv.event_callback == 0 {
                return Err(BounceError::NoHandler("events"));
            }
            (pv.event_callback, true, None)
        }
        Bounce::Syscall => (pv.syscall_callback, pv.syscall_masks_events, None),
    };
    let from_user = !pv.kernel_mode;
    let saved_mask = pv.upcall_mask(mem).map_err(|_| BounceError::VcpuInfo)?;
    let (old_rip, old_rflags, old_rsp) = (cpu.rip, cpu.rflags, cpu.gpr[reg::RSP]);
    let old_cs = u64::from(cpu.seg[sreg::CS].selector);
    let old_ss = u64::from(cpu.seg[sreg::SS].selector);
    let mut sp = if from_user {
        pv.switch_mode(cpu, true)?;
        pv.kernel_sp
    } else {
        old_rsp
    };
    sp &= !15;
    let cs = if from_user { old_cs | 3 } else { old_cs & !3 } | (u64::from(saved_mask) << 32);
    let mut fl = old_rflags & !(rflags::IF | rflags::IOPL);
    if !saved_mask {
        fl |= rflags::IF;
    }
    fl |= u64::from(pv.iopl & 3) << 12;
    let mut frame = vec![cpu.gpr[reg::RCX], cpu.gpr[reg::R11]];
    if let Some(ec) = error_code {
        frame.push(u64::from(ec));
    }
    frame.extend([old_rip, cs, fl, old_rsp, old_ss]);
    let size = frame.len() as u64 * 8;
    let base = sp.wrapping_sub(size);
    // Xen: crash a domain whose bounce frame would land in its own area.
    if (HYPERVISOR_VIRT_START + 1..HYPERVISOR_VIRT_END + 0x40).contains(&base) {
        return Err(BounceError::ReservedStack(base));
    }
    let bytes: Vec<u8> = frame.iter().flat_map(|q| q.to_le_bytes()).collect();
    guestmem::copy_to_guest(mem, ft, cpu.cr3, base, &bytes)?;
    cpu.gpr[reg::RSP] = base;
    cpu.rip = handler;
    cpu.seg[sreg::CS] = flat_segment(FLAT_KERNEL_CS64, FLAT_RING3_CS64_DESC);
    cpu.seg[sreg::SS] = flat_segment(FLAT_KERNEL_SS64, FLAT_RING3_DS32_DESC);
    let mut clear = rflags::TF | rflags::NT | rflags::RF | rflags::VM | rflags::AC;
    if what == Bounce::Syscall {
        clear |= rflags::DF;
    }
    cpu.rflags = (cpu.rflags & !clear) | rflags::IF | rflags::RESERVED1;
    if mask_events {
        pv.set_upcall_mask(mem, true)
            .map_err(|_| BounceError::VcpuInfo)?;
    }
    Ok(())
}

/// `HYPERVISOR_iret`: pop the `iret_context` at `rsp` and return to it.
///
/// # Errors
/// [`BounceError`]: the caller crashes the domain.
pub fn iret(cpu: &mut CpuState, pv: &mut PvVcpu, mem: &MachineMemory) -> Result<(), BounceError> {
    let ctx: IretContext = guestmem::read_obj(mem, cpu.cr3, cpu.gpr[reg::RSP])?;
    let to_user = ctx.cs & 3 == 3;
    if to_user {
        pv.switch_mode(cpu, false)?;
    }
    cpu.gpr[reg::RAX] = ctx.rax;
    if ctx.flags & VGCF_IN_SYSCALL == 0 {
        cpu.gpr[reg::R11] = ctx.r11;
        cpu.gpr[reg::RCX] = ctx.rcx;
    }
    cpu.rip = ctx.rip;
    let cs = u16::try_from(ctx.cs & 0xffff).unwrap_or(0) | 3;
    let ss = u16::try_from(ctx.ss & 0xffff).unwrap_or(0) | 3;
    // Only the flat selectors exist for PV64 code here; others keep the flat
    // descriptor (segment loads of guest GDT entries are the CPU's business).
    cpu.seg[sreg::CS] = flat_segment(cs, FLAT_RING3_CS64_DESC);
    cpu.seg[sreg::SS] = flat_segment(ss, FLAT_RING3_DS32_DESC);
    cpu.rflags = (ctx.rflags & !(rflags::IOPL | rflags::VM)) | rflags::IF | rflags::RESERVED1;
    cpu.gpr[reg::RSP] = ctx.rsp;
    pv.set_upcall_mask(mem, ctx.rflags & rflags::IF == 0)
        .map_err(|_| BounceError::VcpuInfo)?;
    Ok(())
}
