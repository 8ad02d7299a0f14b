//! The PV64 domain builder: what libxenguest does for a domU (XEN-PV-ABI
//! §10.2–§10.3), written from the protocol facts.
//!
//! Pseudo-physical frames are handed out from PFN 0 and the bootstrap virtual
//! region is a 1:1 image of them (`VA = VIRT_BASE + PFN × 4096`). In order:
//! the kernel image (padding before it if it starts above `VIRT_BASE`), the
//! p2m list, `start_info`, the xenstore ring page, the console ring page, the
//! bootstrap page tables (L4 first, then L3s, L2s, L1s; mapped read-only),
//! one boot-stack page, and padding so that at least 512 KiB of mapped,
//! allocated space follows the boot stack and the mapping ends on a 4 MiB
//! boundary. `shared_info` is a separate frame outside the p2m. The L4 is
//! validated and pinned through [`crate::mm`] — the builder gets no shortcut
//! past the rules guests live by.

use guest_abi::abi::console::XenconsInterface;
use guest_abi::abi::xen::{
    FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, FLAT_RING3_CS64_DESC, FLAT_RING3_DS32_DESC,
    START_INFO_MAGIC_X86_64, StartInfo,
};
use hv_cpu::mem::{MachineAddr, MachineMemory, MemError, Mfn, PAGE_SIZE};
use hv_cpu::state::{reg, sreg};
use hv_cpu::{CpuState, Segment};
use zerocopy::{FromZeros as _, IntoBytes as _};

use super::image::{GuestImage, ImageError};
use crate::machine::{AllocError, DomId, FrameTable, M2P_INVALID, M2p, Owner, PageType};
use crate::mm::{Mm, MmError, pte};

/// Why a domain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The image is not loadable.
    #[error("bad kernel image: {0}")]
    Image(#[from] ImageError),
    /// The domain's memory does not hold the image and its boot structures.
    #[error(
        "the kernel and its boot structures need {needed} pages but the domain has {have}; give it more --memory"
    )]
    TooSmall {
        /// Pages needed.
        needed: u64,
        /// Pages the domain has.
        have: u64,
    },
    /// Machine memory ran out.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// Validation of the bootstrap page tables failed (a builder bug).
    #[error("bootstrap page tables failed validation: {0}")]
    Validate(#[from] MmError),
    /// Machine memory access failed.
    #[error(transparent)]
    Mem(#[from] MemError),
    /// The kernel's virtual range (plus the boot structures after it) is
    /// not page aligned, wraps, is not canonical or reaches into the
    /// hypervisor's part of the address space.
    #[error(
        "the kernel at VIRT_BASE {virt_base:#x} (ending at {virt_kend:#x}) and its boot structures do not fit a page-aligned, canonical guest range outside the hypervisor area (0xffff800000000000-0xffff87ffffffffff)"
    )]
    AddressSpace {
        /// `VIRT_BASE`.
        virt_base: u64,
        /// End of the kernel image.
        virt_kend: u64,
    },
    /// The command line does not fit `start_info.cmd_line`.
    #[error("command line is {0} bytes; at most 1023 fit")]
    CmdlineTooLong(usize),
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// Domain id.
    pub domid: DomId,
    /// Memory in pages.
    pub nr_pages: u64,
    /// Kernel command line.
    pub cmdline: String,
    /// Local port of the console event channel (allocated by the caller).
    pub console_evtchn: u32,
    /// Local port of the xenstore event channel.
    pub store_evtchn: u32,
}

/// Where the builder put things, in PFNs of the new domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootLayout {
    /// `VIRT_BASE`.
    pub virt_base: u64,
    /// First PFN after the kernel image.
    pub kernel_end_pfn: u64,
    /// First PFN of the p2m list.
    pub p2m_pfn: u64,
    /// PFNs of the p2m list.
    pub p2m_frames: u64,
    /// `start_info` page.
    pub start_info_pfn: u64,
    /// xenstore ring page.
    pub store_pfn: u64,
    /// console ring page.
    pub console_pfn: u64,
    /// First bootstrap page-table PFN (the L4).
    pub pt_pfn: u64,
    /// Bootstrap page-table frames (`nr_pt_frames`).
    pub nr_pt: u64,
    /// Boot stack page.
    pub stack_pfn: u64,
    /// End of the bootstrap mapping (exclusive VA).
    pub v_end: u64,
}

impl BootLayout {
    /// Virtual address of `pfn` in the bootstrap mapping.
    #[must_use]
    pub fn va(&self, pfn: u64) -> u64 {
        self.virt_base + pfn * PAGE_SIZE
    }

    /// Pages the bootstrap mapping covers.
    #[must_use]
    pub fn mapped_pages(&self) -> u64 {
        (self.v_end - self.virt_base) / PAGE_SIZE
    }

    /// Compute the layout for `image` in a domain of `nr_pages` pages.
    ///
    /// # Errors
    /// [`BuildError::TooSmall`] when the domain cannot hold it all.
    pub fn compute(image: &GuestImage, nr_pages: u64) -> Result<Self, BuildError> {
        let virt_base = image.virt_base;
        let kernel_end_pfn = (image.virt_kend - virt_base).div_ceil(PAGE_SIZE);
        let p2m_pfn = kernel_end_pfn;
        let p2m_frames = (nr_pages * 8).div_ceil(PAGE_SIZE);
        let start_info_pfn = p2m_pfn + p2m_frames;
        let store_pfn = start_info_pfn + 1;
        let console_pfn = store_pfn + 1;
        let pt_pfn = console_pfn + 1;
        let mut nr_pt = 1;
        let bad = || BuildError::AddressSpace {
            virt_base,
            virt_kend: image.virt_kend,
        };
        if !virt_base.is_multiple_of(PAGE_SIZE) {
            return Err(bad());
        }
        let (stack_pfn, v_end) = loop {
            let stack_pfn = pt_pfn + nr_pt;
            let v_end = (stack_pfn + 1)
                .checked_mul(PAGE_SIZE)
                .and_then(|o| virt_base.checked_add(o))
                .and_then(|after_stack| after_stack.checked_add(512 * 1024))
                .and_then(|e| e.checked_next_multiple_of(4 << 20))
                .ok_or_else(bad)?;
            let need = count_page_tables(virt_base, v_end);
            if need <= nr_pt {
                break (stack_pfn, v_end);
            }
            nr_pt = need;
        };
        if !guest_half(virt_base, v_end) {
            return Err(bad());
        }
        let layout = Self {
            virt_base,
            kernel_end_pfn,
            p2m_pfn,
            p2m_frames,
            start_info_pfn,
            store_pfn,
            console_pfn,
            pt_pfn,
            nr_pt,
            stack_pfn,
            v_end,
        };
        if layout.mapped_pages() > nr_pages {
            return Err(BuildError::TooSmall {
                needed: layout.mapped_pages(),
                have: nr_pages,
            });
        }
        Ok(layout)
    }
}

/// Whether `[start, end)` is a canonical range outside the hypervisor's
/// part of the address space (L4 slots 256–271), where a guest's bootstrap
/// mapping can live.
fn guest_half(start: u64, end: u64) -> bool {
    use crate::guestmem::canonical;
    use guest_abi::abi::xen::{HYPERVISOR_VIRT_END as XEN_END, HYPERVISOR_VIRT_START as XEN_START};
    let Some(last) = end.checked_sub(1) else {
        return false;
    };
    start < end && canonical(start) && canonical(last) && (last < XEN_START || start >= XEN_END)
}

/// Page-table frames (L4 + L3s + L2s + L1s) that map `[start, end)`.
#[must_use]
pub fn count_page_tables(start: u64, end: u64) -> u64 {
    let last = end - 1;
    let span = |shift: u32| (last >> shift) - (start >> shift) + 1;
    1 + span(39) + span(30) + span(21)
}

/// The result of building a domain.
#[derive(Debug)]
pub struct BuiltDomain {
    /// Where everything went.
    pub layout: BootLayout,
    /// PFN → MFN for every page of the domain.
    pub p2m: Vec<Mfn>,
    /// The `shared_info` frame (not in the p2m).
    pub shared_info: Mfn,
    /// The bootstrap L4 (pinned, plus the vCPU's cr3 reference).
    pub l4: Mfn,
    /// The console ring frame.
    pub console: Mfn,
    /// The xenstore ring frame.
    pub store: Mfn,
    /// The `start_info` frame.
    pub start_info: Mfn,
    /// vCPU 0's initial registers (§10.3).
    pub vcpu0: CpuState,
}

/// Fill a hypercall page with Xen's 32-byte PV64 stubs (XEN-PV-ABI §1.3).
///
/// # Errors
/// `page` is outside machine memory.
pub fn write_hypercall_page(mem: &MachineMemory, page: Mfn) -> Result<(), MemError> {
    let mut bytes = [0xccu8; 4096];
    for (nr, stub) in bytes.chunks_exact_mut(32).enumerate() {
        let n = u32::try_from(nr).unwrap_or(0).to_le_bytes();
        if nr == 23 {
            // iret: push rcx; push r11; push rax; mov $23, %eax; syscall
            stub[..11].copy_from_slice(&[
                0x51, 0x41, 0x53, 0x50, 0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05,
            ]);
        } else {
            // push rcx; push r11; mov $N, %eax; syscall; pop r11; pop rcx; ret
            stub[..14].copy_from_slice(&[
                0x51, 0x41, 0x53, 0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3,
            ]);
        }
    }
    mem.write(page.addr(), &bytes)
}

/// A code/data segment register loaded from one of Xen's reserved flat
/// descriptors.
#[must_use]
pub fn flat_segment(selector: u16, desc: u64) -> Segment {
    Segment {
        selector,
        base: 0,
        limit: 0xffff_ffff,
        attr: u16::try_from((desc >> 40) & 0xffff).unwrap_or(0),
    }
}

/// Build domain `cfg.domid` from `image`: allocate its memory, load the
/// image, write the boot structures, validate and pin the bootstrap page
/// tables. On failure every frame allocated to the domain is released.
///
/// # Errors
/// See [`BuildError`].
pub fn build(
    mem: &MachineMemory,
    ft: &mut FrameTable,
    m2p: &M2p,
    image: &GuestImage,
    cfg: &BuildConfig,
) -> Result<BuiltDomain, BuildError> {
    let r = build_inner(mem, ft, m2p, image, cfg);
    if r.is_err() {
        release_domain_frames(ft, cfg.domid);
    }
    r
}

/// Forget every frame owned by `dom` (teardown of a domain that never ran,
/// or whose references are all gone).
pub fn release_domain_frames(ft: &mut FrameTable, dom: DomId) {
    let owned: Vec<Mfn> = ft
        .iter()
        .filter(|(_, p)| p.owner == Owner::Dom(dom))
        .map(|(m, _)| m)
        .collect();
    for mfn in owned {
        ft.release(mfn);
    }
}

fn build_inner(
    mem: &MachineMemory,
    ft: &mut FrameTable,
    m2p: &M2p,
    image: &GuestImage,
    cfg: &BuildConfig,
) -> Result<BuiltDomain, BuildError> {
    if cfg.cmdline.len() >= 1024 {
        return Err(BuildError::CmdlineTooLong(cfg.cmdline.len()));
    }
    let layout = BootLayout::compute(image, cfg.nr_pages)?;
    let owner = Owner::Dom(cfg.domid);

    // Memory, PFN 0 upward, with the M2P kept in step.
    let mut p2m = Vec::with_capacity(usize::try_from(cfg.nr_pages).unwrap_or(0));
    for pfn in 0..cfg.nr_pages {
        let mfn = ft.alloc(mem, owner)?;
        m2p.set(mem, mfn, pfn)?;
        p2m.push(mfn);
    }
    let mfn_of = |pfn: u64| {
        p2m.get(usize::try_from(pfn).unwrap_or(usize::MAX))
            .copied()
            .ok_or(BuildError::TooSmall {
                needed: pfn + 1,
                have: cfg.nr_pages,
            })
    };
    let shared_info = ft.alloc(mem, owner)?;
    m2p.set(mem, shared_info, M2P_INVALID)?;
    if let Some(p) = ft.get_mut(shared_info) {
        p.xen_heap = true;
    }

    // The kernel image.
    for seg in &image.segments {
        let mut va = seg.vaddr;
        let end = seg.vaddr + seg.memsz;
        let mut data = seg.data.as_slice();
        while va < end {
            let pfn = (va - layout.virt_base) / PAGE_SIZE;
            let off = va % PAGE_SIZE;
            let n = (PAGE_SIZE - off).min(end - va);
            let take = usize::try_from(n).unwrap_or(0).min(data.len());
            let (now, rest) = data.split_at(take);
            mem.write(MachineAddr(mfn_of(pfn)?.addr().0 + off), now)?;
            data = rest;
            va += n;
        }
    }

    // The p2m list.
    for (pfn, mfn) in p2m.iter().enumerate() {
        let at = layout.p2m_pfn * PAGE_SIZE + (pfn as u64) * 8;
        let frame = mfn_of(at / PAGE_SIZE)?;
        mem.write_u64(MachineAddr(frame.addr().0 + at % PAGE_SIZE), mfn.0)?;
    }

    // Console page: disconnected until the backend services it.
    let console = mfn_of(layout.console_pfn)?;
    let conn = core::mem::offset_of!(XenconsInterface, connection) as u64;
    mem.write_u8(MachineAddr(console.addr().0 + conn), 1)?;
    let store = mfn_of(layout.store_pfn)?;

    // start_info.
    let start_info = mfn_of(layout.start_info_pfn)?;
    let l4 = mfn_of(layout.pt_pfn)?;
    let mut si = StartInfo::new_zeroed();
    si.magic[..START_INFO_MAGIC_X86_64.len()].copy_from_slice(START_INFO_MAGIC_X86_64);
    si.nr_pages = cfg.nr_pages;
    si.shared_info = shared_info.addr().0;
    si.flags = 0;
    si.store_mfn = store.0;
    si.store_evtchn = cfg.store_evtchn;
    si.console.mfn = console.0;
    si.console.evtchn = cfg.console_evtchn;
    si.pt_base = layout.va(layout.pt_pfn);
    si.nr_pt_frames = layout.nr_pt;
    si.mfn_list = layout.va(layout.p2m_pfn);
    si.cmd_line[..cfg.cmdline.len()].copy_from_slice(cfg.cmdline.as_bytes());
    mem.write(start_info.addr(), si.as_bytes())?;

    // shared_info: every vCPU starts with events masked.
    for v in 0..32u64 {
        mem.write_u8(MachineAddr(shared_info.addr().0 + v * 64 + 1), 1)?;
    }

    // Hypercall page.
    if let Some(va) = image.hypercall_page {
        write_hypercall_page(mem, mfn_of((va - layout.virt_base) / PAGE_SIZE)?)?;
    }

    // Bootstrap page tables: L4, then L3s, L2s, L1s, from the PT region.
    let (start, end) = (layout.virt_base, layout.v_end);
    let n3 = ((end - 1) >> 39) - (start >> 39) + 1;
    let n2 = ((end - 1) >> 30) - (start >> 30) + 1;
    let pt_mfn = |i: u64| mfn_of(layout.pt_pfn + i);
    let dir = pte::P | pte::RW | pte::A | pte::D | pte::US;
    for pfn in 0..layout.mapped_pages() {
        let va = layout.va(pfn);
        let l3 = pt_mfn(1 + ((va >> 39) - (start >> 39)))?;
        let l2 = pt_mfn(1 + n3 + ((va >> 30) - (start >> 30)))?;
        let l1 = pt_mfn(1 + n3 + n2 + ((va >> 21) - (start >> 21)))?;
        let idx = |shift: u32| ((va >> shift) & 511) * 8;
        mem.write_u64(MachineAddr(l4.addr().0 + idx(39)), (l3.0 << 12) | dir)?;
        mem.write_u64(MachineAddr(l3.addr().0 + idx(30)), (l2.0 << 12) | dir)?;
        mem.write_u64(MachineAddr(l2.addr().0 + idx(21)), (l1.0 << 12) | dir)?;
        let is_pt = (layout.pt_pfn..layout.pt_pfn + layout.nr_pt).contains(&pfn);
        let flags = if is_pt {
            pte::P | pte::A
        } else {
            pte::P | pte::RW | pte::A
        };
        mem.write_u64(
            MachineAddr(l1.addr().0 + idx(12)),
            (mfn_of(pfn)?.0 << 12) | flags,
        )?;
    }
    let mut mm = Mm::over(ft, mem, m2p);
    mm.pin(l4, 4, cfg.domid)?;
    // vCPU 0's cr3 holds its own L4 reference.
    mm.get_page_and_type(l4, PageType::L4, cfg.domid)?;

    // vCPU 0 (§10.3).
    let mut gpr = [0u64; 16];
    gpr[reg::RSP] = layout.va(layout.stack_pfn + 1);
    gpr[reg::RSI] = layout.va(layout.start_info_pfn);
    let mut seg = [Segment::default(); 6];
    seg[sreg::CS] = flat_segment(FLAT_KERNEL_CS64, FLAT_RING3_CS64_DESC);
    seg[sreg::SS] = flat_segment(FLAT_KERNEL_SS64, FLAT_RING3_DS32_DESC);
    let vcpu0 = CpuState {
        gpr,
        rip: image.entry,
        rflags: 0x202,
        seg,
        cr3: l4.addr().0,
        ..CpuState::default()
    };

    Ok(BuiltDomain {
        layout,
        p2m,
        shared_info,
        l4,
        console,
        store,
        start_info,
        vcpu0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::image::tests::good_image;

    struct World {
        mem: MachineMemory,
        ft: FrameTable,
        m2p: M2p,
    }

    fn world(frames: u64) -> World {
        let mem = MachineMemory::new(frames).expect("map");
        let mut ft = FrameTable::new(frames);
        let m2p = M2p::new(&mem, &mut ft).expect("m2p");
        World { mem, ft, m2p }
    }

    fn cfg(nr_pages: u64) -> BuildConfig {
        BuildConfig {
            domid: DomId(1),
            nr_pages,
            cmdline: "console=hvc0 quiet".into(),
            console_evtchn: 2,
            store_evtchn: 1,
        }
    }

    /// Software page walk: (frame, effective flags) of `va` under `cr3`.
    fn walk(mem: &MachineMemory, cr3: u64, va: u64) -> Option<(u64, u64)> {
        let mut table = cr3 & pte::ADDR_MASK;
        let mut rw = pte::RW;
        for shift in [39u32, 30, 21, 12] {
            let e = mem
                .read_u64(MachineAddr(table + ((va >> shift) & 511) * 8))
                .ok()?;
            if e & pte::P == 0 {
                return None;
            }
            rw &= e;
            table = e & pte::ADDR_MASK;
        }
        Some((table >> 12, rw))
    }

    #[test]
    fn kernels_outside_the_guest_half_are_refused_not_wrapped() {
        // Seeds 3 and 4 of the ELF fuzz target: VIRT_BASE at the start of
        // the hypervisor area, and so close to 2^64 that the layout wraps.
        let seeds = crate::domain::fuzzing::seeds();
        for seed in &seeds[3..5] {
            let img = GuestImage::parse(seed).expect("seed parses");
            let r = BootLayout::compute(&img, 1100);
            assert!(
                matches!(r, Err(BuildError::AddressSpace { .. })),
                "{:#x}: {r:?}",
                img.virt_base
            );
        }
        let mut w = world(1300);
        let img = GuestImage::parse(&seeds[4]).expect("seed parses");
        let free = w.ft.free_frames();
        assert!(build(&w.mem, &mut w.ft, &w.m2p, &img, &cfg(1100)).is_err());
        assert_eq!(
            w.ft.free_frames(),
            free,
            "nothing allocated for a bad layout"
        );
    }

    #[test]
    fn layout_follows_libxenguest() {
        let img = GuestImage::parse(&good_image().build()).expect("image");
        let l = BootLayout::compute(&img, 2048).expect("fits");
        assert_eq!(l.kernel_end_pfn, 5);
        assert_eq!(l.p2m_frames, 4); // 2048 × 8 bytes
        assert_eq!(
            (l.start_info_pfn, l.store_pfn, l.console_pfn, l.pt_pfn),
            (9, 10, 11, 12)
        );
        // One L4, L3 and L2, and two L1s map [4 MiB, 8 MiB).
        assert_eq!(l.nr_pt, 5);
        assert_eq!(l.stack_pfn, 17);
        assert_eq!(l.v_end % (4 << 20), 0);
        assert!(l.v_end >= l.va(l.stack_pfn + 1) + 512 * 1024);
        assert!(matches!(
            BootLayout::compute(&img, 100),
            Err(BuildError::TooSmall { .. })
        ));
    }

    #[test]
    fn built_domain_boots_by_the_pv64_protocol() {
        let mut w = world(4096);
        let img = GuestImage::parse(&good_image().build()).expect("image");
        let free_before = w.ft.free_frames();
        let d = build(&w.mem, &mut w.ft, &w.m2p, &img, &cfg(2048)).expect("build");
        let l = &d.layout;
        assert_eq!(
            free_before - w.ft.free_frames(),
            2048 + 1,
            "memory + shared_info"
        );

        // Registers (§10.3).
        let st = &d.vcpu0;
        assert_eq!(st.rip, 0x40_0000);
        assert_eq!(st.gpr[reg::RSI], l.va(l.start_info_pfn));
        assert_eq!(st.gpr[reg::RSP], l.va(l.stack_pfn + 1));
        assert_eq!(
            (st.seg[sreg::CS].selector, st.seg[sreg::SS].selector),
            (0xe033, 0xe02b)
        );
        assert_eq!(st.seg[sreg::CS].attr & 0xff, 0xfb);
        assert_eq!(st.rflags, 0x202);
        assert_eq!(st.cr3, d.l4.addr().0);

        // Every mapped page translates to its p2m frame; page tables are
        // read-only, everything else writable; past v_end nothing is mapped.
        for pfn in 0..l.mapped_pages() {
            let (mfn, rw) = walk(&w.mem, st.cr3, l.va(pfn)).expect("mapped");
            assert_eq!(
                mfn,
                d.p2m[usize::try_from(pfn).expect("small")].0,
                "pfn {pfn}"
            );
            let is_pt = (l.pt_pfn..l.pt_pfn + l.nr_pt).contains(&pfn);
            assert_eq!(rw != 0, !is_pt, "pfn {pfn}");
        }
        assert!(walk(&w.mem, st.cr3, l.v_end).is_none());
        // The kernel bytes are where the ELF said.
        let (mfn, _) = walk(&w.mem, st.cr3, 0x40_2000).expect("mapped");
        let mut b = [0u8; 4];
        w.mem.read(Mfn(mfn).addr(), &mut b).expect("read");
        assert_eq!(b, [1, 2, 3, 0], "file bytes then zeroed bss");
        // The M2P is mapped read-only in slot 256 and says pfn for each mfn.
        let m2p_va = crate::machine::M2P_VIRT_START + d.p2m[7].0 * 8;
        let (frame, rw) = walk(&w.mem, st.cr3, m2p_va).expect("m2p mapped");
        assert_eq!(rw, 0);
        assert_eq!(
            w.mem
                .read_u64(MachineAddr((frame << 12) + m2p_va % 4096))
                .expect("read"),
            7
        );

        // start_info.
        let si_va = l.va(l.start_info_pfn);
        let (si_mfn, _) = walk(&w.mem, st.cr3, si_va).expect("si");
        let mut si = StartInfo::new_zeroed();
        w.mem
            .read(Mfn(si_mfn).addr(), si.as_mut_bytes())
            .expect("read");
        assert_eq!(&si.magic[..14], b"xen-3.0-x86_64");
        assert_eq!(si.nr_pages, 2048);
        assert_eq!(si.shared_info, d.shared_info.addr().0);
        assert_eq!((si.store_mfn, si.store_evtchn), (d.store.0, 1));
        assert_eq!((si.console.mfn, si.console.evtchn), (d.console.0, 2));
        assert_eq!(si.pt_base, l.va(l.pt_pfn));
        assert_eq!(si.nr_pt_frames, l.nr_pt);
        assert_eq!(si.mfn_list, l.va(l.p2m_pfn));
        assert!(si.cmd_line.starts_with(b"console=hvc0 quiet\0"));
        // The p2m list in guest memory matches.
        let (p2m_frame, _) = walk(&w.mem, st.cr3, si.mfn_list).expect("p2m");
        assert_eq!(
            w.mem
                .read_u64(MachineAddr((p2m_frame << 12) + 5 * 8))
                .expect("read"),
            d.p2m[5].0
        );

        // Hypercall page: stub 17 and the iret stub.
        let (hp, _) = walk(&w.mem, st.cr3, 0x40_1000).expect("hypercall page");
        let mut stub = [0u8; 32];
        w.mem
            .read(MachineAddr((hp << 12) + 17 * 32), &mut stub)
            .expect("read");
        assert_eq!(
            &stub[..15],
            &[
                0x51, 0x41, 0x53, 0xb8, 17, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3, 0xcc
            ]
        );
        w.mem
            .read(MachineAddr((hp << 12) + 23 * 32), &mut stub)
            .expect("read");
        assert_eq!(
            &stub[..12],
            &[0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05, 0xcc]
        );

        // Console disconnected; events masked on every vCPU.
        assert_eq!(
            w.mem
                .read_u8(MachineAddr(d.console.addr().0 + 3088))
                .expect("read"),
            1
        );
        assert_eq!(
            w.mem
                .read_u8(MachineAddr(d.shared_info.addr().0 + 1))
                .expect("read"),
            1
        );

        // The L4 is pinned and held by the cr3 reference; the tables are typed.
        let l4 = w.ft.get(d.l4).expect("l4");
        assert!(l4.pinned && l4.validated);
        assert_eq!((l4.ty, l4.type_count), (PageType::L4, 2));
        let l1 =
            w.ft.get(d.p2m[usize::try_from(l.pt_pfn + 3).expect("small")])
                .expect("l1");
        assert_eq!((l1.ty, l1.type_count), (PageType::L1, 1));
        let data = w.ft.get(d.p2m[0]).expect("data");
        assert_eq!((data.ty, data.type_count), (PageType::Writable, 1));
    }

    #[test]
    fn a_failed_build_gives_back_every_frame() {
        let mut w = world(4096);
        let free = w.ft.free_frames();
        let img = GuestImage::parse(&good_image().build()).expect("image");
        // More pages than machine memory has.
        assert!(matches!(
            build(&w.mem, &mut w.ft, &w.m2p, &img, &cfg(8000)),
            Err(BuildError::Alloc(_))
        ));
        assert_eq!(w.ft.free_frames(), free);
        let mut c = cfg(2048);
        c.cmdline = "x".repeat(2000);
        assert!(matches!(
            build(&w.mem, &mut w.ft, &w.m2p, &img, &c),
            Err(BuildError::CmdlineTooLong(_))
        ));
        assert_eq!(w.ft.free_frames(), free);
    }
}
