//! Callbacks, trap tables, the `iret` frame and the bounce frames Xen builds
//! (`callback.h`, `set_callbacks`, `set_trap_table`, `nmi_op`,
//! `set_segment_base`, `stack_switch`, `fpu_taskswitch`).

/// `callback_op` command 0: install an entry point ([`CallbackRegister`]).
pub const CALLBACKOP_REGISTER: u32 = 0;
/// `callback_op` command 1: remove an entry point ([`CallbackUnregister`]).
pub const CALLBACKOP_UNREGISTER: u32 = 1;

/// Event upcall entry (events always masked on entry).
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Entered when Xen cannot reload guest segment state.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// 64-bit `syscall` from guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Deprecated.
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// NMI (events always masked on entry).
pub const CALLBACKTYPE_NMI: u16 = 4;
/// 32-bit user `sysenter`.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// 32-bit user `syscall`.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

/// `callback_register.flags`: mask events on entry.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

zc! {
    /// `struct callback_register` (`CALLBACKOP_register`).
    pub struct CallbackRegister {
        /// IN: `CALLBACKTYPE_*`.
        pub type_: u16,
        /// IN: `CALLBACKF_*`.
        pub flags: u16,
        /// Padding (zero).
        pub _pad: u32,
        /// IN: canonical entry address.
        pub address: u64,
    }
}
assert_layout!(
    CallbackRegister,
    size = 16,
    type_ = 0,
    flags = 2,
    address = 8
);

zc! {
    /// `struct callback_unregister` (`CALLBACKOP_unregister`; NMI only).
    pub struct CallbackUnregister {
        /// IN: `CALLBACKTYPE_*`.
        pub type_: u16,
        /// Padding (zero).
        pub _pad: u16,
    }
}
assert_layout!(CallbackUnregister, size = 4, type_ = 0);

// --- nmi_op ----------------------------------------------------------------------

/// `nmi_op` command 0: install the NMI handler ([`XennmiCallback`]).
pub const XENNMI_REGISTER_CALLBACK: u32 = 0;
/// `nmi_op` command 1: remove the NMI handler.
pub const XENNMI_UNREGISTER_CALLBACK: u32 = 1;

zc! {
    /// `struct xennmi_callback`.
    pub struct XennmiCallback {
        /// IN: handler address.
        pub handler_address: u64,
        /// Padding (zero).
        pub pad: u64,
    }
}
assert_layout!(XennmiCallback, size = 16, handler_address = 0, pad = 8);

// --- set_segment_base --------------------------------------------------------------

/// `set_segment_base` selector 0: set the FS base.
pub const SEGBASE_FS: u32 = 0;
/// `set_segment_base` selector 1: set the GS base used in guest user mode.
pub const SEGBASE_GS_USER: u32 = 1;
/// `set_segment_base` selector 2: set the GS base used in guest kernel mode.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// Load the user `%gs` selector from `base[15:0]`.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

// --- trap_info ----------------------------------------------------------------------

/// `trap_info.flags` bits 1:0: the DPL allowed to raise the vector with `int n`.
pub const TI_DPL_MASK: u8 = 3;
/// `trap_info.flags` bit 2: mask events on entry (interrupt-gate behaviour).
pub const TI_MASK_EVENTS: u8 = 1 << 2;
/// Entries in a trap table.
pub const TRAP_TABLE_ENTRIES: usize = 256;

zc! {
    /// `struct trap_info`: one virtual IDT entry (`set_trap_table`, and the
    /// 256-entry `trap_ctxt` of the vCPU context). Written by the guest.
    pub struct TrapInfo {
        /// Vector number.
        pub vector: u8,
        /// DPL in bits 1:0, [`TI_MASK_EVENTS`] in bit 2.
        pub flags: u8,
        /// Code selector (forced to RPL 3; ignored for PV64 delivery).
        pub cs: u16,
        /// Padding (zero).
        pub _pad: u32,
        /// Handler address; 0 terminates a `set_trap_table` array.
        pub address: u64,
    }
}
assert_layout!(
    TrapInfo,
    size = 16,
    vector = 0,
    flags = 1,
    cs = 2,
    address = 8
);

impl TrapInfo {
    /// An entry for `vector` with a DPL and event-masking choice.
    #[must_use]
    pub const fn new(vector: u8, dpl: u8, mask_events: bool, address: u64) -> Self {
        let flags = (dpl & TI_DPL_MASK) | if mask_events { TI_MASK_EVENTS } else { 0 };
        Self {
            vector,
            flags,
            cs: super::xen::FLAT_KERNEL_CS,
            _pad: 0,
            address,
        }
    }

    /// The DPL (bits 1:0 of `flags`).
    #[must_use]
    pub const fn dpl(&self) -> u8 {
        self.flags & TI_DPL_MASK
    }

    /// Whether entry masks events.
    #[must_use]
    pub const fn masks_events(&self) -> bool {
        self.flags & TI_MASK_EVENTS != 0
    }
}

// --- iret ----------------------------------------------------------------------------

/// `iret_context.flags`: return via the SYSRET-style path (rcx/r11 discarded).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

zc! {
    /// `struct iret_context`: what `rsp` points at when the iret stub executes
    /// `syscall` (the guest pushed `flags..ss`, the stub pushed rax, r11, rcx).
    pub struct IretContext {
        /// Value restored into rax.
        pub rax: u64,
        /// Restored unless `flags & VGCF_IN_SYSCALL`.
        pub r11: u64,
        /// Restored unless `flags & VGCF_IN_SYSCALL`.
        pub rcx: u64,
        /// [`VGCF_IN_SYSCALL`] or 0.
        pub flags: u64,
        /// RIP to return to.
        pub rip: u64,
        /// RPL 3 returns to guest user mode, otherwise stays in kernel mode.
        pub cs: u64,
        /// IF forced on; `!IF` becomes the new `evtchn_upcall_mask`.
        pub rflags: u64,
        /// RSP to return to.
        pub rsp: u64,
        /// SS to return to.
        pub ss: u64,
    }
}
assert_layout!(
    IretContext,
    size = 72,
    rax = 0,
    r11 = 8,
    rcx = 16,
    flags = 24,
    rip = 32,
    cs = 40,
    rflags = 48,
    rsp = 56,
    ss = 64
);

zc! {
    /// The part of the iret frame the guest pushes itself before jumping to
    /// the iret stub (lowest address first): `flags, rip, cs, rflags, rsp, ss`.
    pub struct IretFrame {
        /// [`VGCF_IN_SYSCALL`] or 0.
        pub flags: u64,
        /// RIP to return to.
        pub rip: u64,
        /// CS to return to (RPL 3 = guest user mode).
        pub cs: u64,
        /// RFLAGS to return to.
        pub rflags: u64,
        /// RSP to return to.
        pub rsp: u64,
        /// SS to return to.
        pub ss: u64,
    }
}
assert_layout!(
    IretFrame,
    size = 48,
    flags = 0,
    rip = 8,
    cs = 16,
    rflags = 24,
    rsp = 32,
    ss = 40
);

// --- bounce frames -----------------------------------------------------------------------

/// Bounce frame without error code: offset of the interrupted RCX.
pub const BOUNCE_RCX: usize = 0;
/// Bounce frame: offset of the interrupted R11.
pub const BOUNCE_R11: usize = 8;
/// Bounce frame with error code: offset of the error code.
pub const BOUNCE_EC_ERROR_CODE: usize = 16;
/// Bounce frame without error code: RIP.
pub const BOUNCE_RIP: usize = 16;
/// Bounce frame without error code: CS (bits 15:0) + saved upcall mask (39:32).
pub const BOUNCE_CS: usize = 24;
/// Bounce frame without error code: RFLAGS.
pub const BOUNCE_RFLAGS: usize = 32;
/// Bounce frame without error code: RSP.
pub const BOUNCE_RSP: usize = 40;
/// Bounce frame without error code: SS.
pub const BOUNCE_SS: usize = 48;
/// Size of a bounce frame without error code.
pub const BOUNCE_FRAME_SIZE: usize = 56;
/// Size of a bounce frame with error code.
pub const BOUNCE_FRAME_EC_SIZE: usize = 64;
/// Shift of the saved upcall mask inside the CS slot.
pub const BOUNCE_CS_SAVED_MASK_SHIFT: u32 = 32;

/// Offset of `slot` (one of the no-error-code `BOUNCE_*` offsets at or above
/// [`BOUNCE_RIP`]) in a frame that carries an error code.
#[must_use]
pub const fn bounce_offset_with_ec(slot: usize) -> usize {
    if slot >= BOUNCE_RIP { slot + 8 } else { slot }
}

zc! {
    /// A bounce frame without error code, as Xen writes it on the guest
    /// kernel stack (ascending addresses).
    pub struct BounceFrame {
        /// RCX at the time of the event (the guest restores it).
        pub rcx: u64,
        /// R11 at the time of the event (the guest restores it).
        pub r11: u64,
        /// Interrupted RIP.
        pub rip: u64,
        /// CS in bits 15:0, previous upcall mask in bits 39:32.
        pub cs: u64,
        /// Interrupted RFLAGS.
        pub rflags: u64,
        /// Interrupted RSP.
        pub rsp: u64,
        /// Interrupted SS.
        pub ss: u64,
    }
}
assert_layout!(
    BounceFrame,
    size = BOUNCE_FRAME_SIZE,
    rcx = BOUNCE_RCX,
    r11 = BOUNCE_R11,
    rip = BOUNCE_RIP,
    cs = BOUNCE_CS,
    rflags = BOUNCE_RFLAGS,
    rsp = BOUNCE_RSP,
    ss = BOUNCE_SS
);

zc! {
    /// A bounce frame with error code.
    pub struct BounceFrameEc {
        /// RCX at the time of the event (the guest restores it).
        pub rcx: u64,
        /// R11 at the time of the event (the guest restores it).
        pub r11: u64,
        /// Error code (upper half 0).
        pub error_code: u64,
        /// Interrupted RIP.
        pub rip: u64,
        /// CS in bits 15:0, previous upcall mask in bits 39:32.
        pub cs: u64,
        /// Interrupted RFLAGS.
        pub rflags: u64,
        /// Interrupted RSP.
        pub rsp: u64,
        /// Interrupted SS.
        pub ss: u64,
    }
}
assert_layout!(
    BounceFrameEc,
    size = BOUNCE_FRAME_EC_SIZE,
    rcx = 0,
    r11 = 8,
    error_code = BOUNCE_EC_ERROR_CODE,
    rip = 24,
    cs = 32,
    rflags = 40,
    rsp = 48,
    ss = 56
);

impl BounceFrame {
    /// The saved `evtchn_upcall_mask` from the CS slot.
    #[must_use]
    pub const fn saved_upcall_mask(&self) -> u8 {
        ((self.cs >> BOUNCE_CS_SAVED_MASK_SHIFT) & 0xFF) as u8
    }
    /// The selector from the CS slot.
    #[must_use]
    pub const fn cs_selector(&self) -> u16 {
        (self.cs & 0xFFFF) as u16
    }
}

zc! {
    /// The failsafe-callback frame (segment reload failure), 11 qwords.
    pub struct FailsafeFrame {
        /// RCX at the time of the failure (the guest restores it).
        pub rcx: u64,
        /// R11 at the time of the failure (the guest restores it).
        pub r11: u64,
        /// DS selector Xen could not load.
        pub ds: u64,
        /// ES selector Xen could not load.
        pub es: u64,
        /// FS selector Xen could not load.
        pub fs: u64,
        /// GS selector Xen could not load.
        pub gs: u64,
        /// Interrupted RIP.
        pub rip: u64,
        /// CS plus saved upcall mask in bits 39:32.
        pub cs: u64,
        /// Interrupted RFLAGS.
        pub rflags: u64,
        /// Interrupted RSP.
        pub rsp: u64,
        /// Interrupted SS.
        pub ss: u64,
    }
}
assert_layout!(
    FailsafeFrame,
    size = 88,
    rcx = 0,
    r11 = 8,
    ds = 16,
    es = 24,
    fs = 32,
    gs = 40,
    rip = 48,
    cs = 56,
    rflags = 64,
    rsp = 72,
    ss = 80
);

/// Whether exception `vector` pushes an error code in its bounce frame.
#[must_use]
pub const fn vector_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}
