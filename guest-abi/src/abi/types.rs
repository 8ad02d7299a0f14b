//! Newtypes for the identifier and address spaces that cross the ABI.
//!
//! Raw `#[repr(C)]` structs keep Xen's plain integer fields (so their
//! layouts stay obvious); the typed wrappers take and return these newtypes
//! so that a machine frame cannot be passed where a pseudo-physical one is
//! expected.

macro_rules! newtype {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}

newtype!(
    /// A domain id (`domid_t`).
    DomId(u16)
);
newtype!(
    /// A local event-channel port (`evtchn_port_t`).
    EvtchnPort(u32)
);
newtype!(
    /// A grant reference: an index into a domain's grant table (`grant_ref_t`).
    GrantRef(u32)
);
newtype!(
    /// A machine frame number (machine address >> 12).
    Mfn(u64)
);
newtype!(
    /// A pseudo-physical frame number (the guest's own frame numbering).
    Pfn(u64)
);
newtype!(
    /// A guest virtual address.
    GuestVa(u64)
);
newtype!(
    /// A machine byte address.
    MachineAddr(u64)
);

impl DomId {
    /// The calling domain ([`super::DOMID_SELF`]).
    pub const SELF: Self = Self(super::DOMID_SELF);

    /// `self`, or `caller` when `self` is [`Self::SELF`].
    #[must_use]
    pub const fn resolve(self, caller: Self) -> Self {
        if self.0 == super::DOMID_SELF {
            caller
        } else {
            self
        }
    }
}

/// Grant refs print as the decimal index.
impl core::fmt::Display for GrantRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

/// Domain ids print as the decimal number (as in xenstore paths and `xl`).
impl core::fmt::Display for DomId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl Mfn {
    /// Machine byte address of the start of this frame.
    #[must_use]
    pub const fn addr(self) -> MachineAddr {
        MachineAddr(self.0 << super::XEN_PAGE_SHIFT)
    }

    /// The frame as a `cr3`-format value (`xen_pfn_to_cr3`).
    #[must_use]
    pub const fn to_cr3(self) -> u64 {
        self.0 << super::XEN_PAGE_SHIFT
    }
}

impl MachineAddr {
    /// The frame containing this address.
    #[must_use]
    pub const fn mfn(self) -> Mfn {
        Mfn(self.0 >> super::XEN_PAGE_SHIFT)
    }

    /// Offset within the frame.
    #[must_use]
    pub const fn page_offset(self) -> u64 {
        self.0 & ((1 << super::XEN_PAGE_SHIFT) - 1)
    }
}
