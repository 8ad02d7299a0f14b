//! Fuzz body for the kernel-image loader and the domain builder, shared by
//! `fuzz/fuzz_targets/elf_loader.rs` and the corpus-replay test
//! `tests/elf_fuzz_corpus.rs`. Not a stable API.
//!
//! The input is an arbitrary file handed to `hv run`: it is parsed
//! ([`GuestImage::parse`]); whatever parses must satisfy the loader's
//! promises ([`check_image`]) and is then built into a small machine. A
//! build either succeeds with a consistent domain (its frames owned by it,
//! its bootstrap tables validated, the page-type invariants of
//! [`crate::mm::fuzzing::check_invariants`] intact) or fails having given
//! every frame back. A panic or a broken promise is a finding.

use hv_cpu::mem::MachineMemory;

use super::builder::{self, BuildConfig};
use super::image::{GuestImage, MAX_IMAGE_BYTES};
use crate::machine::{FrameTable, M2p, Owner, PageType};

/// Machine frames of the fuzzed machine.
pub const FRAMES: u64 = 1300;
/// The domain being built.
const DOMID: crate::machine::DomId = crate::machine::DomId(1);

/// The promises a parsed image keeps.
///
/// # Errors
/// The first promise broken.
pub fn check_image(img: &GuestImage) -> Result<(), String> {
    let first = img.segments.first().ok_or("parsed image has no segments")?;
    let last = img.segments.last().ok_or("parsed image has no segments")?;
    if img.virt_kstart != first.vaddr {
        return Err("virt_kstart is not the first segment".into());
    }
    let end = last
        .vaddr
        .checked_add(last.memsz)
        .ok_or("last segment wraps")?;
    if img.virt_kend != end {
        return Err("virt_kend is not the end of the last segment".into());
    }
    if img.virt_kend - img.virt_kstart > MAX_IMAGE_BYTES {
        return Err("image larger than MAX_IMAGE_BYTES".into());
    }
    let mut prev_end = img.virt_kstart;
    for s in &img.segments {
        if s.memsz == 0 || s.data.len() as u64 > s.memsz {
            return Err(format!("segment at {:#x} has bad sizes", s.vaddr));
        }
        if s.vaddr < img.virt_base || s.vaddr < prev_end {
            return Err(format!(
                "segment at {:#x} below VIRT_BASE or overlapping",
                s.vaddr
            ));
        }
        prev_end = s.vaddr.checked_add(s.memsz).ok_or("segment wraps")?;
    }
    if !(img.virt_kstart..img.virt_kend).contains(&img.entry) {
        return Err("entry outside the image".into());
    }
    if let Some(hp) = img.hypercall_page
        && (!hp.is_multiple_of(4096)
            || hp < img.virt_kstart
            || hp.checked_add(4096).is_none_or(|e| e > img.virt_kend))
    {
        return Err("hypercall page misaligned or outside the image".into());
    }
    if !img.loader.starts_with("generic") && !img.guest_os.starts_with("linux") {
        return Err("accepted an image for another loader".into());
    }
    if !img.xen_version.starts_with("xen-3.0") {
        return Err("accepted an image for another Xen interface".into());
    }
    Ok(())
}

/// Parse `data` and, if it parses, build it; panics on a finding.
///
/// # Panics
/// When a promise of the loader or builder is broken (a finding).
pub fn image_and_build(data: &[u8]) {
    if let Err(e) = run(data) {
        panic!("ELF loader / domain builder: {e}");
    }
}

/// [`image_and_build`] returning the broken promise instead of panicking.
///
/// # Errors
/// The first promise broken.
pub fn run(data: &[u8]) -> Result<(), String> {
    let Ok(img) = GuestImage::parse(data) else {
        return Ok(());
    };
    check_image(&img)?;
    let mem = MachineMemory::new(FRAMES).map_err(|e| e.to_string())?;
    let mut ft = FrameTable::new(FRAMES);
    let m2p = M2p::new(&mem, &mut ft).map_err(|e| e.to_string())?;
    let free_before = ft.free_frames();
    // Odd-length inputs get a domain too small for most images.
    let nr_pages = if data.len().is_multiple_of(2) {
        1100
    } else {
        300
    };
    let cfg = BuildConfig {
        domid: DOMID,
        nr_pages,
        cmdline: "console=hvc0".into(),
        console_evtchn: 1,
        store_evtchn: 2,
    };
    match builder::build(&mem, &mut ft, &m2p, &img, &cfg) {
        Ok(b) => {
            if b.p2m.len() as u64 != nr_pages {
                return Err("p2m does not cover the domain".into());
            }
            for (pfn, mfn) in b.p2m.iter().enumerate() {
                if ft.get(*mfn).is_none_or(|p| p.owner != Owner::Dom(DOMID)) {
                    return Err(format!("pfn {pfn} maps a frame the domain does not own"));
                }
            }
            let l4 = ft.get(b.l4).ok_or("L4 outside the machine")?;
            if !(l4.ty == PageType::L4 && l4.validated && l4.pinned) {
                return Err(format!("bootstrap L4 not a pinned, validated L4: {l4:?}"));
            }
            if b.vcpu0.rip != img.entry {
                return Err("vCPU 0 does not start at the entry point".into());
            }
            if b.layout.mapped_pages() > nr_pages {
                return Err("bootstrap mapping larger than the domain".into());
            }
            // The vCPU's cr3 reference is the one reference held outside
            // the tables.
            crate::mm::fuzzing::check_invariants(&ft, &mem, &[b.l4])?;
        }
        Err(_) => {
            if ft.free_frames() != free_before {
                return Err(format!(
                    "failed build leaked {} frames",
                    free_before - ft.free_frames()
                ));
            }
            if ft.iter().any(|(_, p)| p.owner == Owner::Dom(DOMID)) {
                return Err("failed build left frames owned by the domain".into());
            }
        }
    }
    Ok(())
}

/// A minimal ELF64 image: program headers `(p_type, vaddr, paddr, data,
/// memsz)`, file data laid out after the headers.
#[must_use]
pub fn elf(entry: u64, phdrs: &[(u32, u64, u64, Vec<u8>, u64)]) -> Vec<u8> {
    let phoff = 64u64;
    let mut data_off = phoff + 56 * phdrs.len() as u64;
    let mut out = vec![0u8; usize::try_from(data_off).unwrap_or(0)];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little endian
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&u16::try_from(phdrs.len()).unwrap_or(0).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    let mut blobs = Vec::new();
    for (i, (ty, vaddr, paddr, bytes, memsz)) in phdrs.iter().enumerate() {
        let base = 64 + 56 * i;
        let ph = &mut out[base..base + 56];
        ph[0..4].copy_from_slice(&ty.to_le_bytes());
        ph[4..8].copy_from_slice(&7u32.to_le_bytes());
        ph[8..16].copy_from_slice(&data_off.to_le_bytes());
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        ph[48..56].copy_from_slice(&4u64.to_le_bytes());
        blobs.push(bytes.clone());
        data_off += bytes.len() as u64;
    }
    for b in blobs {
        out.extend_from_slice(&b);
    }
    out
}

/// One Xen ELF note.
#[must_use]
pub fn note(ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&4u32.to_le_bytes());
    v.extend_from_slice(&u32::try_from(desc.len()).unwrap_or(0).to_le_bytes());
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(b"Xen\0");
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// Small images that parse, for seeding corpora: a pvsdk-style image, a
/// Linux-style one (VIRT_BASE in the top 2 GiB, PADDR_OFFSET 0), one
/// without VIRT_BASE, and one whose layout lands in the hypervisor area.
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    const PT_LOAD: u32 = 1;
    const PT_NOTE: u32 = 4;
    let notes = |virt_base: Option<u64>, paddr_offset: Option<u64>, hcall: u64| {
        let mut n = Vec::new();
        n.extend(note(6, b"fuzz\0"));
        n.extend(note(5, b"xen-3.0\0"));
        n.extend(note(8, b"generic\0"));
        if let Some(v) = virt_base {
            n.extend(note(3, &v.to_le_bytes()));
        }
        if let Some(p) = paddr_offset {
            n.extend(note(4, &p.to_le_bytes()));
        }
        n.extend(note(2, &hcall.to_le_bytes()));
        n.extend(note(10, b"!writable_page_tables|pae_pgdir_above_4gb\0"));
        n
    };
    let image = |vb: Option<u64>, po: Option<u64>, vaddr: u64, paddr: u64| {
        elf(
            vaddr,
            &[
                (PT_LOAD, vaddr, paddr, vec![0x90; 0x2000], 0x2000),
                (
                    PT_LOAD,
                    vaddr + 0x2000,
                    paddr + 0x2000,
                    vec![1, 2, 3],
                    0x3000,
                ),
                (PT_NOTE, 0, 0, notes(vb, po, vaddr + 0x1000), 0),
            ],
        )
    };
    let linux = 0xffff_ffff_8000_0000;
    vec![
        image(Some(0x40_0000), Some(0x40_0000), 0x40_0000, 0x40_0000),
        image(Some(linux), Some(0), linux + 0x20_0000, 0x20_0000),
        image(None, None, 0x40_0000, 0x40_0000),
        image(
            Some(0xffff_8000_0000_0000),
            Some(0),
            0xffff_8000_0000_0000,
            0,
        ),
        image(
            Some(0xffff_ffff_fff0_0000),
            Some(0),
            0xffff_ffff_fff0_0000,
            0,
        ),
    ]
}
