//! Segment-register loads at CPL 3 (`mov sreg`, `pop fs/gs`).
//!
//! Descriptors come from the guest GDT frames in [`crate::DescriptorTables`],
//! the hypervisor's reserved GDT page (entries 7168.., synthesised here: the
//! flat ring-3 selectors `0xe023`, `0xe02b`, `0xe033`) or the LDT (a linear
//! range, read through paging). The descriptor's accessed bit is not set
//! (Xen validates descriptors with it already set).

use super::ctx::{Cpu, Stop};
use super::mmu::Fault;
use crate::mem::MachineAddr;
use crate::state::{Segment, sreg};
use crate::vector;

/// First GDT entry of the hypervisor's reserved page.
pub const RESERVED_GDT_FIRST: u32 = 7168;

fn reserved_descriptor(index: u32) -> u64 {
    match index {
        7172 => 0x00CF_FB00_0000_FFFF,
        7173 => 0x00CF_F300_0000_FFFF,
        7174 => 0x00AF_FB00_0000_FFFF,
        _ => 0,
    }
}

/// Fetch the 8-byte descriptor for `sel` (not null).
pub(crate) fn descriptor(cpu: &mut Cpu<'_>, sel: u16) -> Result<u64, Stop> {
    let index = u32::from(sel >> 3);
    let err = Stop::Fault(Fault::new(vector::GP, Some(u32::from(sel & 0xfffc))));
    if sel & 4 != 0 {
        let t = &cpu.st.tables;
        if index >= t.ldt_entries {
            return Err(err);
        }
        let lin = t.ldt_base.wrapping_add(u64::from(index) * 8);
        return cpu.rd(lin, 8, false);
    }
    if index >= RESERVED_GDT_FIRST {
        return if index < RESERVED_GDT_FIRST + 512 {
            Ok(reserved_descriptor(index))
        } else {
            Err(err)
        };
    }
    let t = &cpu.st.tables;
    if index >= t.gdt_entries {
        return Err(err);
    }
    let Some(&frame) = t.gdt_frames.get((index / 512) as usize) else {
        return Err(err);
    };
    let addr = (frame << 12) + u64::from(index % 512) * 8;
    cpu.mem.read_u64(MachineAddr(addr)).map_err(|_| err)
}

/// Load segment register `idx` (not CS) with `sel` at CPL 3.
pub(crate) fn load_segment(cpu: &mut Cpu<'_>, idx: usize, sel: u16) -> Result<(), Stop> {
    let gp = |s: u16| Stop::Fault(Fault::new(vector::GP, Some(u32::from(s & 0xfffc))));
    if sel & !3 == 0 {
        // Null selector.
        if idx == sreg::SS {
            return Err(Stop::Fault(Fault::gp0()));
        }
        // Intel clears the hidden base; AMD keeps it unless `cpuid` says
        // NullSelectClearsBase (docs/CPU-VENDORS.md). Only FS and GS
        // bases are used in 64-bit mode.
        let keep_base = !cpu.c.model.null_selector_clears_base;
        if let Some(s) = cpu.st.seg.get_mut(idx) {
            *s = Segment {
                selector: sel,
                base: if keep_base { s.base } else { 0 },
                limit: 0,
                attr: 0,
            };
        }
        return Ok(());
    }
    let d = descriptor(cpu, sel)?;
    let attr = ((d >> 40) & 0xf0ff) as u16;
    let typ = (d >> 40) & 0xf;
    let s_bit = (d >> 44) & 1;
    let dpl = (d >> 45) & 3;
    let present = (d >> 47) & 1;
    let rpl = u64::from(sel & 3);
    let code = typ & 8 != 0;
    if s_bit == 0 {
        return Err(gp(sel));
    }
    if idx == sreg::SS {
        // Writable data, RPL = DPL = CPL = 3.
        if code || typ & 2 == 0 || rpl != 3 || dpl != 3 {
            return Err(gp(sel));
        }
        if present == 0 {
            return Err(Stop::Fault(Fault::new(
                vector::SS,
                Some(u32::from(sel & 0xfffc)),
            )));
        }
    } else {
        // Data or readable code; non-conforming needs DPL >= max(CPL, RPL).
        if code && typ & 2 == 0 {
            return Err(gp(sel));
        }
        let conforming = code && typ & 4 != 0;
        if !conforming && dpl < 3 {
            return Err(gp(sel));
        }
        if present == 0 {
            return Err(Stop::Fault(Fault::new(
                vector::NP,
                Some(u32::from(sel & 0xfffc)),
            )));
        }
    }
    let base = ((d >> 16) & 0xff_ffff) | (((d >> 56) & 0xff) << 24);
    let mut limit = ((d & 0xffff) | ((d >> 32) & 0xf_0000)) as u32;
    if (d >> 55) & 1 != 0 {
        limit = (limit << 12) | 0xfff;
    }
    if let Some(s) = cpu.st.seg.get_mut(idx) {
        *s = Segment {
            selector: sel,
            base: if idx == sreg::FS || idx == sreg::GS {
                base
            } else {
                0
            },
            limit,
            attr,
        };
    }
    Ok(())
}
