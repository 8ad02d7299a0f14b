//! Xen ELF notes (`elfnote.h`) a PV kernel carries so the domain builder can
//! load it.

/// Note owner name (with NUL, so `namesz` = 4).
pub const XEN_ELFNOTE_NAME: &[u8; 4] = b"Xen\0";

/// Unused (an `__xen_guest` string in very old kernels).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// num: virtual entry point.
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// num: VA of the page the builder fills with hypercall stubs.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// num: VA of the start of the initial mapping.
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// num: `load VA = p_paddr - PADDR_OFFSET + VIRT_BASE`.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// str: must start with `"xen-3.0"`.
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// str: guest OS name.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// str: guest version.
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// str: `"generic"`.
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// str: x86_32 only.
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// str: `|`-separated XENFEAT names, `!` = required.
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// str: `"yes"` to load the symbol table.
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// num: 32-bit hypervisor hole (ignored for PV64).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// mask/value pairs recognising non-present L1s that hold MFNs.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// num: cooperative suspend cancel supported.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// num: VA of a p2m list mapped outside the initial mapping.
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// num: the guest accepts an unmapped initrd.
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// num (u32 array): supported-features bitmap.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// num: PVH entry (ignored for PV).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// u32[≤3]: PVH relocation (align, min, max).
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = 19;
/// Largest defined note type.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_RELOC;

/// Required prefix of the `XEN_VERSION` note.
pub const XEN_ELFNOTE_XEN_VERSION_PREFIX: &str = "xen-3.0";
/// The `LOADER` value the builder accepts.
pub const XEN_ELFNOTE_LOADER_GENERIC: &str = "generic";
/// Guest type string for an `EM_X86_64` image.
pub const XEN_GUEST_TYPE_X86_64: &str = "xen-3.0-x86_64";
/// Name of the legacy `NAME=VALUE,...` section.
pub const XEN_LEGACY_GUEST_SECTION: &str = "__xen_guest";

zc! {
    /// `Elf64_Nhdr`: the note header; name and desc follow, each padded to 4.
    pub struct ElfNoteHeader {
        /// Bytes of name including NUL (4 for `"Xen"`).
        pub namesz: u32,
        /// Bytes of desc.
        pub descsz: u32,
        /// `XEN_ELFNOTE_*`.
        pub type_: u32,
    }
}
assert_layout!(ElfNoteHeader, size = 12, namesz = 0, descsz = 4, type_ = 8);

/// `n` rounded up to the 4-byte note alignment.
#[must_use]
pub const fn note_align(n: usize) -> usize {
    (n + 3) & !3
}
