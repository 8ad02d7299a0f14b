//! The one gate for hypercall access to guest memory: copy to and from guest
//! *virtual* addresses, translated through the guest's own (validated) page
//! tables, as Xen's `copy_{from,to}_guest` do.
//!
//! Reads need P and US at every level. Writes also need RW at every level,
//! and are performed while the caller holds the frame-table lock after
//! checking that the target frame's type is *writable* — so a hypercall can
//! never write into a page table, a descriptor page or a frame that is being
//! retyped concurrently (Note [Guest writes under the lock]).
//!
//! Note [Guest writes under the lock]: a writable path through validated
//! tables implies a writable type reference on the final frame, because
//! every RW L1 entry holds one and linear entries are read-only. Checking the
//! type under the frame-table lock closes the window in which another vCPU
//! could unmap the frame and make it a page table between translation and
//! write.

use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn, PAGE_SIZE};

use crate::machine::{FrameTable, PageType};
use crate::mm::pte;

/// A guest address that cannot be used; the hypercall fails with `-EFAULT`.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("guest address {va:#x} is not mapped {}", if *.write { "writable" } else { "readable" })]
pub struct GuestFault {
    /// The faulting guest virtual address.
    pub va: u64,
    /// Whether a write was attempted.
    pub write: bool,
}

/// Largest single copy a hypercall may ask for (bounds hostile lengths).
pub const MAX_COPY: usize = 1 << 24;

/// Whether `va` is canonical (bits 63..47 all equal).
#[must_use]
pub fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Translate `va` under root table `cr3` (machine address) for a read or a
/// write at CPL 3.
///
/// # Errors
/// [`GuestFault`] if `va` is non-canonical or not mapped with the needed
/// permissions.
pub fn translate(
    mem: &MachineMemory,
    cr3: u64,
    va: u64,
    write: bool,
) -> Result<MachineAddr, GuestFault> {
    let fault = GuestFault { va, write };
    if !canonical(va) {
        return Err(fault);
    }
    let mut table = cr3 & pte::ADDR_MASK;
    for shift in [39u32, 30, 21, 12] {
        let e = mem
            .read_u64(MachineAddr(table + ((va >> shift) & 511) * 8))
            .map_err(|_| fault)?;
        let need = pte::P | pte::US | if write { pte::RW } else { 0 };
        if e & need != need {
            return Err(fault);
        }
        if shift != 12 && e & pte::PAT_PSE != 0 {
            // PV guests have no superpages; validation forbids PSE.
            return Err(fault);
        }
        table = e & pte::ADDR_MASK;
    }
    Ok(MachineAddr(table | (va & (PAGE_SIZE - 1))))
}

/// Copy `buf.len()` bytes from guest virtual address `va`.
///
/// # Errors
/// [`GuestFault`] on the first unmapped byte.
pub fn copy_from_guest(
    mem: &MachineMemory,
    cr3: u64,
    va: u64,
    buf: &mut [u8],
) -> Result<(), GuestFault> {
    if buf.len() > MAX_COPY {
        return Err(GuestFault { va, write: false });
    }
    let mut done = 0usize;
    while done < buf.len() {
        let cur = va.wrapping_add(done as u64);
        let ma = translate(mem, cr3, cur, false)?;
        let in_page = usize::try_from(PAGE_SIZE - (cur & (PAGE_SIZE - 1))).unwrap_or(0);
        let n = in_page.min(buf.len() - done);
        let dst = buf.get_mut(done..done + n).ok_or(GuestFault {
            va: cur,
            write: false,
        })?;
        mem.read(ma, dst).map_err(|_| GuestFault {
            va: cur,
            write: false,
        })?;
        done += n;
    }
    Ok(())
}

/// Copy `buf` to guest virtual address `va`. The caller holds the frame
/// table (Note [Guest writes under the lock]).
///
/// # Errors
/// [`GuestFault`] if any byte is not writable by the guest or its frame is
/// not a writable-typed frame.
pub fn copy_to_guest(
    mem: &MachineMemory,
    ft: &FrameTable,
    cr3: u64,
    va: u64,
    buf: &[u8],
) -> Result<(), GuestFault> {
    if buf.len() > MAX_COPY {
        return Err(GuestFault { va, write: true });
    }
    // Translate everything first so a fault leaves guest memory untouched.
    // Most copies touch one or two pages: those pieces stay on the stack (no
    // allocation per hypercall); longer copies spill into a Vec.
    let mut inline = [(MachineAddr(0), 0usize, 0usize); 2];
    let mut spill = Vec::new();
    let mut npieces = 0usize;
    let mut done = 0usize;
    while done < buf.len() {
        let cur = va.wrapping_add(done as u64);
        let fault = GuestFault {
            va: cur,
            write: true,
        };
        let ma = translate(mem, cr3, cur, true)?;
        let page = ft.get(ma.mfn()).ok_or(fault)?;
        if page.ty != PageType::Writable || page.type_count == 0 {
            return Err(fault);
        }
        let in_page = usize::try_from(PAGE_SIZE - (cur & (PAGE_SIZE - 1))).unwrap_or(0);
        let n = in_page.min(buf.len() - done);
        match inline.get_mut(npieces) {
            Some(slot) => *slot = (ma, done, n),
            None => spill.push((ma, done, n)),
        }
        npieces += 1;
        done += n;
    }
    let first = inline.get(..npieces.min(2)).unwrap_or(&[]);
    for &(ma, off, n) in first.iter().chain(spill.iter()) {
        let src = buf
            .get(off..off + n)
            .ok_or(GuestFault { va, write: true })?;
        mem.write(ma, src)
            .map_err(|_| GuestFault { va, write: true })?;
    }
    Ok(())
}

/// Read a plain-old-data value from the guest.
///
/// # Errors
/// [`GuestFault`].
pub fn read_obj<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
    mem: &MachineMemory,
    cr3: u64,
    va: u64,
) -> Result<T, GuestFault> {
    let mut v = T::new_zeroed();
    copy_from_guest(mem, cr3, va, v.as_mut_bytes())?;
    Ok(v)
}

/// The machine frame behind guest virtual address `va`, for reading.
///
/// # Errors
/// [`GuestFault`].
pub fn frame_of(mem: &MachineMemory, cr3: u64, va: u64) -> Result<Mfn, GuestFault> {
    translate(mem, cr3, va, false).map(MachineAddr::mfn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::builder::{BuildConfig, build};
    use crate::domain::image::GuestImage;
    use crate::domain::image::tests::good_image;
    use crate::machine::DomId;
    use crate::machine::M2p;

    fn domain() -> (
        MachineMemory,
        FrameTable,
        crate::domain::builder::BuiltDomain,
    ) {
        let mem = MachineMemory::new(4096).expect("map");
        let mut ft = FrameTable::new(4096);
        let m2p = M2p::new(&mem, &mut ft).expect("m2p");
        let img = GuestImage::parse(&good_image().build()).expect("image");
        let cfg = BuildConfig {
            domid: DomId(1),
            nr_pages: 2048,
            cmdline: String::new(),
            console_evtchn: 1,
            store_evtchn: 2,
        };
        let d = build(&mem, &mut ft, &m2p, &img, &cfg).expect("build");
        (mem, ft, d)
    }

    #[test]
    fn copies_cross_pages_both_ways() {
        let (mem, ft, d) = domain();
        let va = d.layout.va(d.layout.stack_pfn) + 4093; // stack page into padding
        let data: Vec<u8> = (0..4100u32).map(|i| i.to_le_bytes()[0]).collect();
        copy_to_guest(&mem, &ft, d.vcpu0.cr3, va, &data).expect("write");
        let mut back = vec![0u8; data.len()];
        copy_from_guest(&mem, d.vcpu0.cr3, va, &mut back).expect("read");
        assert_eq!(back, data);
    }

    #[test]
    fn hypercalls_cannot_write_page_tables_or_unmapped_memory() {
        let (mem, ft, d) = domain();
        let cr3 = d.vcpu0.cr3;
        let l4_va = d.layout.va(d.layout.pt_pfn);
        let mut b = [0u8; 8];
        copy_from_guest(&mem, cr3, l4_va, &mut b).expect("page tables are readable");
        assert_eq!(
            copy_to_guest(&mem, &ft, cr3, l4_va, &b),
            Err(GuestFault {
                va: l4_va,
                write: true
            })
        );
        // A copy that runs into the page tables writes nothing at all.
        let before = d.layout.va(d.layout.pt_pfn) - 4;
        let mut orig = [0u8; 4];
        copy_from_guest(&mem, cr3, before, &mut orig).expect("read");
        assert!(copy_to_guest(&mem, &ft, cr3, before, &[0xaa; 8]).is_err());
        let mut now = [0u8; 4];
        copy_from_guest(&mem, cr3, before, &mut now).expect("read");
        assert_eq!(now, orig);
        for va in [0u64, d.layout.v_end, 0x0000_8000_0000_0000, u64::MAX - 2] {
            assert!(copy_from_guest(&mem, cr3, va, &mut b).is_err(), "{va:#x}");
        }
        // The M2P is readable, never writable.
        let m2p = crate::machine::M2P_VIRT_START;
        copy_from_guest(&mem, cr3, m2p, &mut b).expect("m2p readable");
        assert!(copy_to_guest(&mem, &ft, cr3, m2p, &b).is_err());
        assert!(copy_from_guest(&mem, cr3, 0x40_0000, &mut vec![0; MAX_COPY + 1]).is_err());
    }
}
