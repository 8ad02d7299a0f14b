//! The example guests are real Xen PV64 images: ELF64 x86-64 executables whose
//! Xen notes sit in a `PT_NOTE` segment, as a PV domain builder expects.

use object::read::elf::{ElfFile64, ProgramHeader as _};
use object::{Endianness, elf};

fn xen_notes(data: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let file = ElfFile64::<Endianness>::parse(data).expect("guest is ELF64");
    let endian = file.endian();
    let mut notes = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) != elf::PT_NOTE {
            continue;
        }
        let mut it = ph
            .notes(endian, data)
            .expect("note segment")
            .expect("is PT_NOTE");
        while let Some(note) = it.next().expect("well-formed note") {
            if note.name() == b"Xen" {
                notes.push((note.n_type(endian).0, note.desc().to_vec()));
            }
        }
    }
    notes
}

fn num(notes: &[(u32, Vec<u8>)], ty: u32) -> u64 {
    let desc = &notes
        .iter()
        .find(|(t, _)| *t == ty)
        .unwrap_or_else(|| panic!("note {ty} present"))
        .1;
    let mut b = [0u8; 8];
    b[..desc.len()].copy_from_slice(desc);
    u64::from_le_bytes(b)
}

fn string(notes: &[(u32, Vec<u8>)], ty: u32) -> String {
    let desc = &notes
        .iter()
        .find(|(t, _)| *t == ty)
        .unwrap_or_else(|| panic!("note {ty} present"))
        .1;
    String::from_utf8(desc.split(|&b| b == 0).next().unwrap_or_default().to_vec()).expect("utf-8")
}

#[test]
fn every_example_guest_carries_the_xen_pv64_notes() {
    assert!(!pvsdk_examples::GUESTS.is_empty());
    // The C kernel is laid out like Linux instead (see the test below).
    for name in pvsdk_examples::GUESTS.iter().filter(|&&n| n != "c-kernel") {
        let path = pvsdk_examples::guest_image(name).expect("listed guest has an image");
        let data = std::fs::read(&path).expect("read guest image");
        let file = ElfFile64::<Endianness>::parse(&*data).expect("ELF64");
        assert_eq!(
            file.elf_header().e_machine.get(file.endian()),
            elf::EM_X86_64,
            "{name}"
        );
        let notes = xen_notes(&data);
        // XEN_ELFNOTE_{GUEST_OS, XEN_VERSION, LOADER}
        assert_eq!(string(&notes, 6), "pvsdk", "{name}");
        assert!(string(&notes, 5).starts_with("xen-3.0"), "{name}");
        assert!(string(&notes, 8).starts_with("generic"), "{name}");
        // ENTRY, HYPERCALL_PAGE, VIRT_BASE, PADDR_OFFSET
        let entry = num(&notes, 1);
        let hypercall_page = num(&notes, 2);
        let virt_base = num(&notes, 3);
        assert_eq!(
            num(&notes, 4),
            virt_base,
            "{name}: p_paddr == p_vaddr images need PADDR_OFFSET == VIRT_BASE"
        );
        assert_eq!(
            entry,
            file.elf_header().e_entry.get(file.endian()),
            "{name}"
        );
        assert_eq!(
            hypercall_page % 4096,
            0,
            "{name}: hypercall page is page aligned"
        );
        // Every loadable segment lies at or above VIRT_BASE, and the entry
        // point and hypercall page are inside executable segments.
        let endian = file.endian();
        let in_text = |va: u64| {
            file.elf_program_headers().iter().any(|ph| {
                ph.p_type(endian) == elf::PT_LOAD
                    && ph.p_flags(endian).0 & elf::PF_X.0 != 0
                    && (ph.p_vaddr(endian)..ph.p_vaddr(endian) + ph.p_memsz(endian)).contains(&va)
            })
        };
        assert!(in_text(entry), "{name}: entry in text");
        assert!(
            in_text(hypercall_page + 4095),
            "{name}: whole hypercall page in text"
        );
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) == elf::PT_LOAD {
                assert!(
                    ph.p_vaddr(endian) >= virt_base,
                    "{name}: segment below VIRT_BASE"
                );
                assert_eq!(ph.p_vaddr(endian), ph.p_paddr(endian), "{name}");
            }
        }
        assert!(
            !file
                .elf_program_headers()
                .iter()
                .any(|ph| ph.p_type(endian) == elf::PT_INTERP),
            "{name}: freestanding, no interpreter"
        );
    }
}

#[test]
fn c_kernel_is_a_linux_style_pv64_image_without_legacy_notes() {
    assert!(pvsdk_examples::GUESTS.contains(&"c-kernel"));
    let path = pvsdk_examples::guest_image("c-kernel").expect("c-kernel is built");
    let data = std::fs::read(&path).expect("read c-kernel");
    let file = ElfFile64::<Endianness>::parse(&*data).expect("ELF64");
    let endian = file.endian();
    assert_eq!(file.elf_header().e_machine.get(endian), elf::EM_X86_64);
    let notes = xen_notes(&data);
    assert_eq!(string(&notes, 6), "c-kernel");
    assert_eq!(string(&notes, 5), "xen-3.0");
    assert_eq!(string(&notes, 8), "generic");
    let virt_base = num(&notes, 3);
    assert_eq!(virt_base, 0xffff_ffff_8000_0000);
    assert_eq!(num(&notes, 4), 0, "PADDR_OFFSET 0: p_paddr is physical");
    assert_eq!(num(&notes, 1), file.elf_header().e_entry.get(endian));
    assert_eq!(num(&notes, 2) % 4096, 0);
    // Segments: physical p_paddr, virtual p_vaddr = VIRT_BASE + p_paddr.
    let loads: Vec<_> = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
        .collect();
    assert!(!loads.is_empty());
    for ph in loads {
        assert!(ph.p_paddr(endian) < 1 << 30);
        assert_eq!(ph.p_vaddr(endian), virt_base + ph.p_paddr(endian));
    }
    // Only ELF notes: no legacy `__xen_guest` section.
    let shdrs = file.elf_section_table();
    assert!(
        shdrs.section_by_name(endian, b"__xen_guest").is_none(),
        "no __xen_guest section"
    );
}
