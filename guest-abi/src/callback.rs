//! Callback and trap wrappers: `set_callbacks` (4), `callback_op` (30),
//! `set_trap_table` (0), `stack_switch` (3), `set_segment_base` (25),
//! `fpu_taskswitch` (5), `nmi_op` (28), plus `iret` frame helpers.

use crate::abi::callback::*;
use crate::abi::hypercall_nr::{
    CALLBACK_OP, FPU_TASKSWITCH, NMI_OP, SET_CALLBACKS, SET_SEGMENT_BASE, SET_TRAP_TABLE,
    STACK_SWITCH,
};
use crate::abi::xen::{FLAT_KERNEL_CS, FLAT_KERNEL_SS, FLAT_USER_CS, FLAT_USER_SS};
use crate::abi::{Errno, GuestVa};
use crate::hypercall::{Hypercall, arg_mut, arg_ref};

/// Registers the event, failsafe and syscall entry points (flags 0).
pub fn set_callbacks<H: Hypercall + ?Sized>(
    h: &H,
    event: GuestVa,
    failsafe: GuestVa,
    syscall: GuestVa,
) -> Result<(), Errno> {
    Errno::check(h.call(SET_CALLBACKS, [event.0, failsafe.0, syscall.0, 0, 0]))
}

/// `CALLBACKOP_register` for `type_` (`CALLBACKTYPE_*`) with `flags`.
pub fn register<H: Hypercall + ?Sized>(
    h: &H,
    type_: u16,
    flags: u16,
    address: GuestVa,
) -> Result<(), Errno> {
    let mut a = CallbackRegister {
        type_,
        flags,
        _pad: 0,
        address: address.0,
    };
    Errno::check(h.call(
        CALLBACK_OP,
        [u64::from(CALLBACKOP_REGISTER), arg_mut(&mut a), 0, 0, 0],
    ))
}

/// `CALLBACKOP_unregister` (only NMI can be unregistered).
pub fn unregister<H: Hypercall + ?Sized>(h: &H, type_: u16) -> Result<(), Errno> {
    let mut a = CallbackUnregister { type_, _pad: 0 };
    Errno::check(h.call(
        CALLBACK_OP,
        [u64::from(CALLBACKOP_UNREGISTER), arg_mut(&mut a), 0, 0, 0],
    ))
}

/// Installs trap-table entries. `table` must end with an entry whose
/// `address` is 0 (`EINVAL` otherwise, before any hypercall).
pub fn set_trap_table<H: Hypercall + ?Sized>(h: &H, table: &[TrapInfo]) -> Result<(), Errno> {
    match table.last() {
        Some(t) if t.address == 0 => {}
        _ => return Err(Errno::EINVAL),
    }
    Errno::check(h.call(SET_TRAP_TABLE, [arg_ref(table), 0, 0, 0, 0]))
}

/// Clears all 256 trap-table entries (NULL table).
pub fn clear_trap_table<H: Hypercall + ?Sized>(h: &H) -> Result<(), Errno> {
    Errno::check(h.call(SET_TRAP_TABLE, [0; 5]))
}

/// Sets the kernel stack used when an event or exception arrives in user mode.
pub fn stack_switch<H: Hypercall + ?Sized>(h: &H, ss: u16, rsp: GuestVa) -> Result<(), Errno> {
    Errno::check(h.call(STACK_SWITCH, [u64::from(ss), rsp.0, 0, 0, 0]))
}

/// Sets a segment base (`SEGBASE_*`); must be canonical.
pub fn set_segment_base<H: Hypercall + ?Sized>(h: &H, which: u32, base: u64) -> Result<(), Errno> {
    Errno::check(h.call(SET_SEGMENT_BASE, [u64::from(which), base, 0, 0, 0]))
}

/// Sets (`true`) or clears the virtual CR0.TS.
pub fn fpu_taskswitch<H: Hypercall + ?Sized>(h: &H, set: bool) -> Result<(), Errno> {
    Errno::check(h.call(FPU_TASKSWITCH, [u64::from(set), 0, 0, 0, 0]))
}

/// Registers an NMI handler (`XENNMI_register_callback`).
pub fn nmi_register<H: Hypercall + ?Sized>(h: &H, handler: GuestVa) -> Result<(), Errno> {
    let mut a = XennmiCallback {
        handler_address: handler.0,
        pad: 0,
    };
    Errno::check(h.call(
        NMI_OP,
        [
            u64::from(XENNMI_REGISTER_CALLBACK),
            arg_mut(&mut a),
            0,
            0,
            0,
        ],
    ))
}

/// Interrupt flag in RFLAGS.
pub const RFLAGS_IF: u64 = 1 << 9;
/// Architecturally reserved RFLAGS bit 1 (always set).
pub const RFLAGS_RESERVED1: u64 = 1 << 1;

impl IretFrame {
    /// A frame returning to guest *user* mode at `rip`/`rsp` with the flat
    /// user selectors; `rflags` gets IF and bit 1 set.
    #[must_use]
    pub const fn to_user(rip: u64, rsp: u64, rflags: u64) -> Self {
        Self {
            flags: 0,
            rip,
            cs: FLAT_USER_CS as u64,
            rflags: rflags | RFLAGS_IF | RFLAGS_RESERVED1,
            rsp,
            ss: FLAT_USER_SS as u64,
        }
    }

    /// A frame staying in guest *kernel* mode: CS/SS carry RPL 0 (Xen treats
    /// CS RPL < 3 as "stay in kernel mode" and ORs 3 back in).
    /// `events_enabled` becomes `!evtchn_upcall_mask`.
    #[must_use]
    pub const fn to_kernel(rip: u64, rsp: u64, rflags: u64, events_enabled: bool) -> Self {
        let rflags = if events_enabled {
            rflags | RFLAGS_IF
        } else {
            rflags & !RFLAGS_IF
        };
        Self {
            flags: 0,
            rip,
            cs: (FLAT_KERNEL_CS & !3) as u64,
            rflags: rflags | RFLAGS_RESERVED1,
            rsp,
            ss: (FLAT_KERNEL_SS & !3) as u64,
        }
    }

    /// Marks the frame as a return from a `syscall` (rcx/r11 discarded).
    #[must_use]
    pub const fn in_syscall(mut self) -> Self {
        self.flags |= VGCF_IN_SYSCALL;
        self
    }

    /// The [`IretContext`] Xen sees after the stub pushes `rax`, `r11`, `rcx`.
    #[must_use]
    pub const fn context(&self, rax: u64, r11: u64, rcx: u64) -> IretContext {
        IretContext {
            rax,
            r11,
            rcx,
            flags: self.flags,
            rip: self.rip,
            cs: self.cs,
            rflags: self.rflags,
            rsp: self.rsp,
            ss: self.ss,
        }
    }
}
