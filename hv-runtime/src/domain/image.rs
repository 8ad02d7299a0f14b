//! Parsing a Xen PV64 kernel image: ELF segments and Xen notes.
//!
//! The rules are libelf's (XEN-PV-ABI §10.1): notes come from `PT_NOTE`
//! segments (those at file offset 0 are skipped), else from `SHT_NOTE`
//! sections, else from the legacy `__xen_guest` section; a segment loads at
//! `p_paddr − PADDR_OFFSET + VIRT_BASE`; the image is accepted only if its
//! `LOADER` starts with `generic` (or its `GUEST_OS` with `linux`) and its
//! `XEN_VERSION` with `xen-3.0`. Everything here is hostile input: every
//! offset and size is checked, and a bad image is an [`ImageError`], never a
//! panic.

use guest_abi::abi::elfnote as note;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _, SectionHeader as _};
use object::{Endianness, Object as _, ObjectSection as _};

/// Largest image span we load (the kernel's virtual extent).
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// Why an image cannot be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Not a parsable ELF file.
    #[error("not a valid ELF file: {0}")]
    Elf(String),
    /// ELF, but not a 64-bit x86-64 executable.
    #[error("not an x86-64 ELF64 image (a Xen PV64 kernel must be EM_X86_64, ELFCLASS64)")]
    NotX86_64,
    /// No Xen notes anywhere.
    #[error("no Xen ELF notes (PT_NOTE, SHT_NOTE or __xen_guest): is this a Xen PV kernel?")]
    NoNotes,
    /// A note is malformed.
    #[error("malformed Xen note: {0}")]
    BadNote(String),
    /// Neither `LOADER=generic` nor a Linux guest.
    #[error(
        "image is built for loader {loader:?} (guest OS {guest_os:?}); only 'generic' loader or Linux images load"
    )]
    BadLoader {
        /// The LOADER note.
        loader: String,
        /// The GUEST_OS note.
        guest_os: String,
    },
    /// `XEN_VERSION` does not start with `xen-3.0`.
    #[error("image wants Xen interface {0:?}; only xen-3.0 images load")]
    BadXenVersion(String),
    /// `PADDR_OFFSET` without `VIRT_BASE`.
    #[error("PADDR_OFFSET is set but VIRT_BASE is not")]
    PaddrOffsetWithoutVirtBase,
    /// A required feature we do not offer.
    #[error("image requires feature {0:?}, which hv does not offer to PV64 guests")]
    UnsupportedFeature(String),
    /// No loadable segment.
    #[error("image has no loadable (PT_LOAD) segment")]
    NoSegments,
    /// A segment's file range is outside the file or filesz > memsz.
    #[error("segment {0} lies outside the file or has p_filesz > p_memsz")]
    BadSegment(usize),
    /// A segment's address computation overflows or is below VIRT_BASE.
    #[error("segment {0} loads at an impossible address (below VIRT_BASE or past 2^64)")]
    BadAddress(usize),
    /// Two segments overlap once loaded.
    #[error("segments overlap at {0:#x} once loaded")]
    Overlap(u64),
    /// The entry point is not inside the image.
    #[error("entry point {entry:#x} is outside the image [{start:#x}, {end:#x})")]
    EntryOutside {
        /// Entry.
        entry: u64,
        /// Image start.
        start: u64,
        /// Image end.
        end: u64,
    },
    /// The hypercall page is misaligned or outside the image.
    #[error("hypercall page {0:#x} is not a page-aligned address inside the image")]
    BadHypercallPage(u64),
    /// The image is too large.
    #[error("image spans {0} bytes; at most 1 GiB is supported")]
    TooLarge(u64),
}

/// One loadable segment, at its load address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address the segment loads at.
    pub vaddr: u64,
    /// Bytes in memory (the tail past `data` is zero).
    pub memsz: u64,
    /// File contents.
    pub data: Vec<u8>,
}

/// A parsed, checked PV64 kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestImage {
    /// Virtual entry point.
    pub entry: u64,
    /// `VIRT_BASE` (0 when absent).
    pub virt_base: u64,
    /// `PADDR_OFFSET` as applied.
    pub paddr_offset: u64,
    /// `HYPERCALL_PAGE` VA, if any.
    pub hypercall_page: Option<u64>,
    /// Loaded segments, sorted by address.
    pub segments: Vec<Segment>,
    /// First byte of the image (lowest segment).
    pub virt_kstart: u64,
    /// One past the last byte of the image.
    pub virt_kend: u64,
    /// `GUEST_OS` note.
    pub guest_os: String,
    /// `XEN_VERSION` note.
    pub xen_version: String,
    /// `LOADER` note.
    pub loader: String,
    /// `FEATURES` note (raw).
    pub features: String,
    /// `SUSPEND_CANCEL` note present and non-zero.
    pub suspend_cancel: bool,
    /// `MOD_START_PFN` note present and non-zero.
    pub mod_start_pfn: bool,
}

/// Features a PV64 guest may require (XEN-PV-ABI §10.1 names).
const SUPPORTED_REQUIRED: &[&str] = &["writable_page_tables", "pae_pgdir_above_4gb"];
/// Feature names Xen recognises; unknown *required* names fail the load.
const KNOWN: &[&str] = &[
    "writable_page_tables",
    "writable_descriptor_tables",
    "auto_translated_physmap",
    "supervisor_mode_kernel",
    "pae_pgdir_above_4gb",
    "hvm_callback_vector",
    "dom0",
];

#[derive(Default)]
struct Notes {
    entry: Option<u64>,
    hypercall_page: Option<u64>,
    virt_base: Option<u64>,
    paddr_offset: Option<u64>,
    xen_version: Option<String>,
    guest_os: Option<String>,
    loader: Option<String>,
    features: Option<String>,
    suspend_cancel: bool,
    mod_start_pfn: bool,
    found: bool,
    legacy: bool,
}

fn num(desc: &[u8]) -> u64 {
    // libelf: 1, 2, 4 or 8 bytes; anything else reads as 0.
    match desc.len() {
        1 | 2 | 4 | 8 => {
            let mut b = [0u8; 8];
            b[..desc.len()].copy_from_slice(desc);
            u64::from_le_bytes(b)
        }
        _ => 0,
    }
}

fn string(desc: &[u8]) -> String {
    let s = desc.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(s).into_owned()
}

impl Notes {
    fn take(&mut self, ty: u32, desc: &[u8]) {
        self.found = true;
        match ty {
            note::XEN_ELFNOTE_ENTRY => self.entry = Some(num(desc)),
            note::XEN_ELFNOTE_HYPERCALL_PAGE => self.hypercall_page = Some(num(desc)),
            note::XEN_ELFNOTE_VIRT_BASE => self.virt_base = Some(num(desc)),
            note::XEN_ELFNOTE_PADDR_OFFSET => self.paddr_offset = Some(num(desc)),
            note::XEN_ELFNOTE_XEN_VERSION => self.xen_version = Some(string(desc)),
            note::XEN_ELFNOTE_GUEST_OS => self.guest_os = Some(string(desc)),
            note::XEN_ELFNOTE_LOADER => self.loader = Some(string(desc)),
            note::XEN_ELFNOTE_FEATURES => self.features = Some(string(desc)),
            note::XEN_ELFNOTE_SUSPEND_CANCEL => self.suspend_cancel = num(desc) != 0,
            note::XEN_ELFNOTE_MOD_START_PFN => self.mod_start_pfn = num(desc) != 0,
            _ => {}
        }
    }

    /// The legacy `__xen_guest` section: `NAME=VALUE,NAME=VALUE...`.
    fn take_legacy(&mut self, text: &[u8]) {
        self.found = true;
        self.legacy = true;
        let text = string(text);
        for item in text.split(',') {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            let n = parse_c_number(v);
            match k {
                "GUEST_OS" => self.guest_os = Some(v.to_owned()),
                "XEN_VER" => self.xen_version = Some(v.to_owned()),
                "LOADER" => self.loader = Some(v.to_owned()),
                "FEATURES" => self.features = Some(v.to_owned()),
                "VIRT_BASE" => self.virt_base = n,
                "PADDR_OFFSET" => self.paddr_offset = n,
                // A page number relative to VIRT_BASE; resolved in `parse`.
                "HYPERCALL_PAGE" => self.hypercall_page = n,
                _ => {}
            }
        }
    }
}

/// `strtoull(s, NULL, 0)`-style: `0x` hex, leading `0` octal, else decimal.
fn parse_c_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn check_features(features: &str) -> Result<(), ImageError> {
    for name in features.split('|').filter(|n| !n.is_empty()) {
        if let Some(req) = name.strip_prefix('!')
            && (!KNOWN.contains(&req) || !SUPPORTED_REQUIRED.contains(&req))
        {
            return Err(ImageError::UnsupportedFeature(req.to_owned()));
        }
    }
    Ok(())
}

impl GuestImage {
    /// Parse and check a PV64 kernel image.
    ///
    /// # Errors
    /// Any [`ImageError`]: the message says what is wrong with the image.
    pub fn parse(data: &[u8]) -> Result<Self, ImageError> {
        let file = ElfFile64::<Endianness>::parse(data).map_err(|e| {
            if data.get(4) == Some(&elf::ELFCLASS32.0) {
                ImageError::NotX86_64
            } else {
                ImageError::Elf(e.to_string())
            }
        })?;
        let endian = file.endian();
        let hdr = file.elf_header();
        if hdr.e_machine(endian) != elf::EM_X86_64 {
            return Err(ImageError::NotX86_64);
        }

        let mut notes = Notes::default();
        // 1. PT_NOTE segments (skipping those at file offset 0).
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) != elf::PT_NOTE || ph.p_offset(endian) == 0 {
                continue;
            }
            read_notes(ph.notes(endian, data), endian, &mut notes)?;
        }
        // 2. SHT_NOTE sections.
        if !notes.found
            && let Ok(sections) = hdr.sections(endian, data)
        {
            for sh in sections.iter() {
                if sh.sh_type(endian) == elf::SHT_NOTE {
                    read_notes(sh.notes(endian, data), endian, &mut notes)?;
                }
            }
        }
        // 3. The legacy __xen_guest section.
        if !notes.found
            && let Some(sec) = file.section_by_name(note::XEN_LEGACY_GUEST_SECTION)
        {
            let text = sec.data().map_err(|e| ImageError::BadNote(e.to_string()))?;
            notes.take_legacy(text);
        }
        if !notes.found {
            return Err(ImageError::NoNotes);
        }

        let loader = notes.loader.clone().unwrap_or_default();
        let guest_os = notes.guest_os.clone().unwrap_or_default();
        if !loader.starts_with(note::XEN_ELFNOTE_LOADER_GENERIC) && !guest_os.starts_with("linux") {
            return Err(ImageError::BadLoader { loader, guest_os });
        }
        let xen_version = notes.xen_version.clone().unwrap_or_default();
        if !xen_version.starts_with(note::XEN_ELFNOTE_XEN_VERSION_PREFIX) {
            return Err(ImageError::BadXenVersion(xen_version));
        }
        let features = notes.features.clone().unwrap_or_default();
        check_features(&features)?;

        if notes.paddr_offset.is_some() && notes.virt_base.is_none() {
            return Err(ImageError::PaddrOffsetWithoutVirtBase);
        }
        let virt_base = notes.virt_base.unwrap_or(0);
        let paddr_offset = notes
            .paddr_offset
            .unwrap_or(if notes.legacy { virt_base } else { 0 });

        // Segments at their load addresses.
        let mut segments = Vec::new();
        for (i, ph) in file.elf_program_headers().iter().enumerate() {
            if ph.p_type(endian) != elf::PT_LOAD {
                continue;
            }
            let (off, filesz, memsz) =
                (ph.p_offset(endian), ph.p_filesz(endian), ph.p_memsz(endian));
            if filesz > memsz {
                return Err(ImageError::BadSegment(i));
            }
            let bytes = off
                .checked_add(filesz)
                .and_then(|end| data.get(usize::try_from(off).ok()?..usize::try_from(end).ok()?))
                .ok_or(ImageError::BadSegment(i))?;
            let vaddr = ph
                .p_paddr(endian)
                .checked_sub(paddr_offset)
                .and_then(|v| v.checked_add(virt_base))
                .filter(|&v| v >= virt_base)
                .ok_or(ImageError::BadAddress(i))?;
            vaddr.checked_add(memsz).ok_or(ImageError::BadAddress(i))?;
            if memsz == 0 {
                continue;
            }
            segments.push(Segment {
                vaddr,
                memsz,
                data: bytes.to_vec(),
            });
        }
        if segments.is_empty() {
            return Err(ImageError::NoSegments);
        }
        segments.sort_by_key(|s| s.vaddr);
        for w in segments.windows(2) {
            if let [a, b] = w
                && a.vaddr + a.memsz > b.vaddr
            {
                return Err(ImageError::Overlap(b.vaddr));
            }
        }
        let virt_kstart = segments.first().map_or(0, |s| s.vaddr);
        let virt_kend = segments.last().map_or(0, |s| s.vaddr + s.memsz);
        let span = virt_kend - virt_kstart;
        if span > MAX_IMAGE_BYTES {
            return Err(ImageError::TooLarge(span));
        }

        let entry = notes.entry.unwrap_or_else(|| hdr.e_entry(endian));
        if !(virt_kstart..virt_kend).contains(&entry) {
            return Err(ImageError::EntryOutside {
                entry,
                start: virt_kstart,
                end: virt_kend,
            });
        }
        let hypercall_page = match notes.hypercall_page {
            None => None,
            Some(p) => {
                let va = if notes.legacy {
                    p.checked_mul(4096).and_then(|o| o.checked_add(virt_base))
                } else {
                    Some(p)
                };
                let va = va.ok_or(ImageError::BadHypercallPage(p))?;
                let inside =
                    va >= virt_kstart && va.checked_add(4096).is_some_and(|e| e <= virt_kend);
                if !va.is_multiple_of(4096) || !inside {
                    return Err(ImageError::BadHypercallPage(va));
                }
                Some(va)
            }
        };

        Ok(Self {
            entry,
            virt_base,
            paddr_offset,
            hypercall_page,
            segments,
            virt_kstart,
            virt_kend,
            guest_os,
            xen_version,
            loader,
            features,
            suspend_cancel: notes.suspend_cancel,
            mod_start_pfn: notes.mod_start_pfn,
        })
    }
}

fn read_notes(
    it: object::read::Result<
        Option<object::read::elf::NoteIterator<'_, elf::FileHeader64<Endianness>>>,
    >,
    endian: Endianness,
    notes: &mut Notes,
) -> Result<(), ImageError> {
    let Some(mut it) = it.map_err(|e| ImageError::BadNote(e.to_string()))? else {
        return Ok(());
    };
    loop {
        match it.next() {
            Ok(Some(n)) => {
                if n.name() == b"Xen" {
                    notes.take(n.n_type(endian).0, n.desc());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(ImageError::BadNote(e.to_string())),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (p_type, p_offset override, vaddr, paddr, data, memsz)
    pub(crate) type Phdr = (u32, Option<u64>, u64, u64, Vec<u8>, u64);

    /// A minimal ELF64 x86-64 writer for tests: program headers and data.
    pub(crate) struct ElfBuilder {
        pub machine: u16,
        pub entry: u64,
        /// (p_type, p_offset override, vaddr, paddr, data, memsz)
        pub phdrs: Vec<Phdr>,
    }

    pub(crate) fn note(ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&u32::try_from(desc.len()).expect("small").to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(b"Xen\0");
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    impl ElfBuilder {
        pub(crate) fn build(&self) -> Vec<u8> {
            let phoff = 64u64;
            let mut data_off = phoff + 56 * self.phdrs.len() as u64;
            let mut out = vec![0u8; usize::try_from(data_off).expect("small")];
            out[..4].copy_from_slice(b"\x7fELF");
            out[4] = 2; // ELFCLASS64
            out[5] = 1; // little endian
            out[6] = 1;
            out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
            out[18..20].copy_from_slice(&self.machine.to_le_bytes());
            out[20..24].copy_from_slice(&1u32.to_le_bytes());
            out[24..32].copy_from_slice(&self.entry.to_le_bytes());
            out[32..40].copy_from_slice(&phoff.to_le_bytes());
            out[52..54].copy_from_slice(&64u16.to_le_bytes());
            out[54..56].copy_from_slice(&56u16.to_le_bytes());
            out[56..58]
                .copy_from_slice(&u16::try_from(self.phdrs.len()).expect("few").to_le_bytes());
            out[58..60].copy_from_slice(&64u16.to_le_bytes());
            let mut blobs = Vec::new();
            for (i, (ty, off, vaddr, paddr, bytes, memsz)) in self.phdrs.iter().enumerate() {
                let o = off.unwrap_or(data_off);
                let base = 64 + 56 * i;
                let ph = &mut out[base..base + 56];
                ph[0..4].copy_from_slice(&ty.to_le_bytes());
                ph[4..8].copy_from_slice(&7u32.to_le_bytes());
                ph[8..16].copy_from_slice(&o.to_le_bytes());
                ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
                ph[24..32].copy_from_slice(&paddr.to_le_bytes());
                ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
                ph[40..48].copy_from_slice(&memsz.to_le_bytes());
                ph[48..56].copy_from_slice(&4u64.to_le_bytes());
                if off.is_none() {
                    blobs.push(bytes.clone());
                    data_off += bytes.len() as u64;
                }
            }
            for b in blobs {
                out.extend_from_slice(&b);
            }
            out
        }
    }

    pub(crate) fn good_notes(virt_base: u64, hypercall_page: u64) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend(note(note::XEN_ELFNOTE_GUEST_OS, b"test\0"));
        n.extend(note(note::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"));
        n.extend(note(note::XEN_ELFNOTE_LOADER, b"generic\0"));
        n.extend(note(note::XEN_ELFNOTE_VIRT_BASE, &virt_base.to_le_bytes()));
        n.extend(note(
            note::XEN_ELFNOTE_PADDR_OFFSET,
            &virt_base.to_le_bytes(),
        ));
        n.extend(note(
            note::XEN_ELFNOTE_HYPERCALL_PAGE,
            &hypercall_page.to_le_bytes(),
        ));
        n
    }

    pub(crate) fn good_image() -> ElfBuilder {
        ElfBuilder {
            machine: elf::EM_X86_64.0,
            entry: 0x40_0000,
            phdrs: vec![
                (
                    elf::PT_LOAD.0,
                    None,
                    0x40_0000,
                    0x40_0000,
                    vec![0x90; 0x2000],
                    0x2000,
                ),
                (
                    elf::PT_LOAD.0,
                    None,
                    0x40_2000,
                    0x40_2000,
                    vec![1, 2, 3],
                    0x3000,
                ),
                (
                    elf::PT_NOTE.0,
                    None,
                    0,
                    0,
                    good_notes(0x40_0000, 0x40_1000),
                    0,
                ),
            ],
        }
    }

    #[test]
    fn a_well_formed_image_parses() {
        let img = GuestImage::parse(&good_image().build()).expect("parses");
        assert_eq!(img.entry, 0x40_0000);
        assert_eq!(img.virt_base, 0x40_0000);
        assert_eq!(img.hypercall_page, Some(0x40_1000));
        assert_eq!((img.virt_kstart, img.virt_kend), (0x40_0000, 0x40_5000));
        assert_eq!(img.segments.len(), 2);
        assert_eq!(img.segments[1].data, vec![1, 2, 3]);
    }

    #[test]
    fn images_without_virt_base_load_at_paddr() {
        let mut b = good_image();
        let mut n = Vec::new();
        n.extend(note(note::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"));
        n.extend(note(note::XEN_ELFNOTE_LOADER, b"generic\0"));
        b.phdrs[2].4 = n;
        let img = GuestImage::parse(&b.build()).expect("parses");
        assert_eq!(img.virt_base, 0);
        assert_eq!(img.virt_kstart, 0x40_0000);
        assert_eq!(img.hypercall_page, None);
    }

    #[test]
    fn paddr_offset_relocates_segments() {
        let mut b = good_image();
        // Linux style: p_paddr is physical, VIRT_BASE high, PADDR_OFFSET 0.
        let base = 0xffff_ffff_8000_0000u64;
        b.entry = base + 0x1000;
        b.phdrs[0].2 = base + 0x1000;
        b.phdrs[0].3 = 0x1000;
        b.phdrs[1].2 = base + 0x3000;
        b.phdrs[1].3 = 0x3000;
        let mut n = Vec::new();
        n.extend(note(note::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"));
        n.extend(note(note::XEN_ELFNOTE_GUEST_OS, b"linux\0"));
        n.extend(note(note::XEN_ELFNOTE_VIRT_BASE, &base.to_le_bytes()));
        n.extend(note(note::XEN_ELFNOTE_PADDR_OFFSET, &0u64.to_le_bytes()));
        b.phdrs[2].4 = n;
        let img = GuestImage::parse(&b.build()).expect("parses");
        assert_eq!(img.virt_kstart, base + 0x1000);
    }

    #[test]
    fn bad_images_fail_with_a_clear_error() {
        type Case = (&'static str, ElfBuilder, fn(&ImageError) -> bool);
        let cases: Vec<Case> = vec![
            (
                "no notes",
                {
                    let mut b = good_image();
                    b.phdrs.pop();
                    b
                },
                |e| *e == ImageError::NoNotes,
            ),
            (
                "wrong machine",
                {
                    let mut b = good_image();
                    b.machine = 3;
                    b
                },
                |e| *e == ImageError::NotX86_64,
            ),
            (
                "entry outside",
                {
                    let mut b = good_image();
                    b.entry = 0x90_0000;
                    b
                },
                |e| matches!(e, ImageError::EntryOutside { .. }),
            ),
            (
                "overlap",
                {
                    let mut b = good_image();
                    b.phdrs[1].2 = 0x40_1000;
                    b.phdrs[1].3 = 0x40_1000;
                    b
                },
                |e| matches!(e, ImageError::Overlap(_)),
            ),
            (
                "segment past eof",
                {
                    let mut b = good_image();
                    b.phdrs[0].1 = Some(1 << 40);
                    b
                },
                |e| matches!(e, ImageError::BadSegment(0)),
            ),
            (
                "filesz > memsz",
                {
                    let mut b = good_image();
                    b.phdrs[1].5 = 1;
                    b
                },
                |e| matches!(e, ImageError::BadSegment(1)),
            ),
            (
                "bad loader",
                {
                    let mut b = good_image();
                    b.phdrs[2].4 = [
                        note(note::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"),
                        note(note::XEN_ELFNOTE_LOADER, b"elf\0"),
                    ]
                    .concat();
                    b
                },
                |e| matches!(e, ImageError::BadLoader { .. }),
            ),
            (
                "bad xen version",
                {
                    let mut b = good_image();
                    b.phdrs[2].4 = [
                        note(note::XEN_ELFNOTE_XEN_VERSION, b"xen-4.0\0"),
                        note(note::XEN_ELFNOTE_LOADER, b"generic\0"),
                    ]
                    .concat();
                    b
                },
                |e| matches!(e, ImageError::BadXenVersion(_)),
            ),
            (
                "paddr offset alone",
                {
                    let mut b = good_image();
                    b.phdrs[2].4 = [
                        note(note::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"),
                        note(note::XEN_ELFNOTE_LOADER, b"generic\0"),
                        note(note::XEN_ELFNOTE_PADDR_OFFSET, &[0; 8]),
                    ]
                    .concat();
                    b
                },
                |e| *e == ImageError::PaddrOffsetWithoutVirtBase,
            ),
            (
                "required unknown feature",
                {
                    let mut b = good_image();
                    b.phdrs[2]
                        .4
                        .extend(note(note::XEN_ELFNOTE_FEATURES, b"!frobnicate\0"));
                    b
                },
                |e| matches!(e, ImageError::UnsupportedFeature(_)),
            ),
            (
                "required translated",
                {
                    let mut b = good_image();
                    b.phdrs[2].4.extend(note(
                        note::XEN_ELFNOTE_FEATURES,
                        b"!auto_translated_physmap\0",
                    ));
                    b
                },
                |e| matches!(e, ImageError::UnsupportedFeature(_)),
            ),
            (
                "misaligned hypercall page",
                {
                    let mut b = good_image();
                    b.phdrs[2].4 = good_notes(0x40_0000, 0x40_1008);
                    b
                },
                |e| matches!(e, ImageError::BadHypercallPage(_)),
            ),
            (
                "hypercall page outside",
                {
                    let mut b = good_image();
                    b.phdrs[2].4 = good_notes(0x40_0000, 0x80_0000);
                    b
                },
                |e| matches!(e, ImageError::BadHypercallPage(_)),
            ),
            (
                "below virt base",
                {
                    let mut b = good_image();
                    b.phdrs[2].4 = good_notes(0x50_0000, 0x40_1000);
                    b
                },
                |e| {
                    matches!(
                        e,
                        ImageError::BadAddress(_) | ImageError::EntryOutside { .. }
                    )
                },
            ),
        ];
        for (name, b, ok) in cases {
            let e = GuestImage::parse(&b.build()).expect_err(name);
            assert!(ok(&e), "{name}: unexpected {e:?}");
            assert!(!e.to_string().is_empty());
        }
        assert!(matches!(
            GuestImage::parse(b"not an elf"),
            Err(ImageError::Elf(_))
        ));
        assert!(matches!(GuestImage::parse(&[]), Err(ImageError::Elf(_))));
    }

    #[test]
    fn optional_features_and_known_required_ones_are_accepted() {
        let mut b = good_image();
        b.phdrs[2].4.extend(note(
            note::XEN_ELFNOTE_FEATURES,
            b"!writable_page_tables|pae_pgdir_above_4gb|frobnicate\0",
        ));
        GuestImage::parse(&b.build()).expect("parses");
    }

    #[test]
    fn truncated_images_never_panic() {
        let full = good_image().build();
        for len in 0..full.len() {
            let _ = GuestImage::parse(&full[..len]);
        }
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut d = full.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = usize::try_from(x).expect("fits") % d.len();
                d[i] = u8::try_from(x >> 24).expect("byte");
            }
            let _ = GuestImage::parse(&d);
        }
    }
}
