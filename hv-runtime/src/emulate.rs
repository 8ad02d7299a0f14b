//! What Xen emulates for PV kernels (XEN-PV-ABI §1.3, §2.4, §3):
//!
//! * `cpuid` behind the forced-emulation prefix `0f 0b 78 65 6e` (`ud2;
//!   .ascii "xen"`), which raises #UD and is answered with Xen's CPUID view;
//! * privileged instructions that #GP(0) at CPL 3 and that Xen handles for a
//!   PV kernel: `cli`/`sti` and port I/O under the virtual IOPL, reads of
//!   CR0/CR2/CR3/CR4, writes of CR0 (TS only) and CR3 (a new root table),
//!   `clts`, `wbinvd`/`invd` (ignored), the FS/GS base MSRs, EFER and the
//!   hypercall-page MSR;
//! * "writable page tables": a guest's 8-byte store into one of its own L1
//!   tables through a read-only mapping faults; the store is validated and
//!   applied exactly as the `mmu_update` would be.
//!
//! Anything else returns `false` and the caller reflects the fault to the
//! guest. Instruction bytes are copied from guest memory once and decoded
//! with `iced-x86`.

use std::collections::BTreeMap;

use hv_cpu::FlushScope;
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};
use hv_cpu::model::CpuModel;
use hv_cpu::state::reg;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::guestmem;
use crate::hv::{Domain, Hypervisor, Vcpu};
use crate::machine::{DomId, FrameTable, M2p, Owner, PageType};
use crate::mm::Mm;

const FORCED_CPUID: [u8; 7] = [0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2];
/// MSR of the hypercall page (CPUID 0x4000_0002 EBX).
const MSR_HYPERCALL_PAGE: u32 = 0x4000_0000;

/// Fetch and decode the instruction at the vCPU's RIP.
fn fetch(hv: &EmuCtx<'_>, dom: DomId, v: usize) -> Option<(Instruction, [u8; 15])> {
    let vc = hv.domains.get(&dom)?.vcpus.get(v)?;
    let rip = vc.cpu.rip;
    let mut bytes = [0u8; 15];
    // Up to the end of the page first, then the rest if mapped.
    let first = usize::try_from(4096 - (rip & 4095)).unwrap_or(15).min(15);
    guestmem::copy_from_guest(hv.mem, vc.cpu.cr3, rip, &mut bytes[..first]).ok()?;
    if first < 15 {
        let _ = guestmem::copy_from_guest(
            hv.mem,
            vc.cpu.cr3,
            rip.wrapping_add(first as u64),
            &mut bytes[first..],
        );
    }
    let mut d = Decoder::with_ip(64, &bytes, rip, DecoderOptions::NONE);
    let i = d.decode();
    (!i.is_invalid()).then_some((i, bytes))
}

/// The forced-emulation `cpuid`. Returns whether it was one.
pub fn forced_cpuid(hv: &mut EmuCtx<'_>, dom: DomId, v: usize) -> bool {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return false;
    };
    let mut b = [0u8; 7];
    if guestmem::copy_from_guest(hv.mem, vc.cpu.cr3, vc.cpu.rip, &mut b).is_err()
        || b != FORCED_CPUID
    {
        return false;
    }
    let g = &mut vc.cpu.gpr;
    let leaf = u32::try_from(g[reg::RAX] & 0xffff_ffff).unwrap_or(0);
    let sub = u32::try_from(g[reg::RCX] & 0xffff_ffff).unwrap_or(0);
    let [a, b2, c, d] = crate::cpuid::guest_cpuid(hv.cpu_model, leaf, sub);
    g[reg::RAX] = u64::from(a);
    g[reg::RBX] = u64::from(b2);
    g[reg::RCX] = u64::from(c);
    g[reg::RDX] = u64::from(d);
    vc.cpu.rip = vc.cpu.rip.wrapping_add(7);
    true
}

fn gpr(r: Register) -> Option<usize> {
    let full = r.full_register();
    let n = match full {
        Register::RAX => reg::RAX,
        Register::RCX => reg::RCX,
        Register::RDX => reg::RDX,
        Register::RBX => reg::RBX,
        Register::RSP => reg::RSP,
        Register::RBP => reg::RBP,
        Register::RSI => reg::RSI,
        Register::RDI => reg::RDI,
        Register::R8 => reg::R8,
        Register::R9 => reg::R9,
        Register::R10 => reg::R10,
        Register::R11 => reg::R11,
        Register::R12 => reg::R12,
        Register::R13 => reg::R13,
        Register::R14 => reg::R14,
        Register::R15 => reg::R15,
        _ => return None,
    };
    Some(n)
}

/// Emulate a privileged instruction that raised #GP(0). Returns whether it
/// was handled (RIP advanced).
pub fn privileged_op(hv: &mut EmuCtx<'_>, dom: DomId, v: usize) -> bool {
    let Some((i, _)) = fetch(hv, dom, v) else {
        return false;
    };
    let len = i.len() as u64;
    let kernel = hv
        .domains
        .get(&dom)
        .and_then(|d| d.vcpus.get(v))
        .is_some_and(|vc| vc.pv.kernel_mode);
    // Only cli/sti and port I/O are governed by the virtual IOPL; every
    // other privileged instruction is emulated for the guest *kernel* only
    // — from guest user mode it is a #GP, as in Xen.
    let iopl_governed = matches!(
        i.mnemonic(),
        Mnemonic::Cli
            | Mnemonic::Sti
            | Mnemonic::In
            | Mnemonic::Out
            | Mnemonic::Insb
            | Mnemonic::Insw
            | Mnemonic::Insd
            | Mnemonic::Outsb
            | Mnemonic::Outsw
            | Mnemonic::Outsd
    );
    if !kernel && !iopl_governed {
        return false;
    }
    let handled = match i.mnemonic() {
        Mnemonic::Cli | Mnemonic::Sti => {
            let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
                return false;
            };
            let need = if vc.pv.kernel_mode { 1 } else { 3 };
            vc.pv.iopl >= need
                && vc
                    .pv
                    .set_upcall_mask(hv.mem, i.mnemonic() == Mnemonic::Cli)
                    .is_ok()
        }
        Mnemonic::In
        | Mnemonic::Out
        | Mnemonic::Insb
        | Mnemonic::Insw
        | Mnemonic::Insd
        | Mnemonic::Outsb
        | Mnemonic::Outsw
        | Mnemonic::Outsd => port_io(hv, dom, v, &i),
        Mnemonic::Mov
            if matches!(
                i.op0_register(),
                Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4
            ) =>
        {
            let val = gpr(i.op1_register())
                .and_then(|r| hv.domains.get(&dom)?.vcpus.get(v).map(|vc| vc.cpu.gpr[r]));
            val.is_some_and(|val| write_cr(hv, dom, v, i.op0_register(), val))
        }
        Mnemonic::Mov
            if matches!(
                i.op1_register(),
                Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4
            ) =>
        {
            let Some(dst) = gpr(i.op0_register()) else {
                return false;
            };
            let Some(val) = read_cr(hv, dom, v, i.op1_register()) else {
                return false;
            };
            let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
                return false;
            };
            vc.cpu.gpr[dst] = val;
            true
        }
        Mnemonic::Clts => {
            let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
                return false;
            };
            vc.cpu.ts = false;
            true
        }
        Mnemonic::Wbinvd | Mnemonic::Invd => true,
        Mnemonic::Rdmsr => rdmsr(hv, dom, v),
        Mnemonic::Wrmsr => wrmsr(hv, dom, v),
        _ => false,
    };
    if handled && let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
        vc.cpu.rip = vc.cpu.rip.wrapping_add(len);
    }
    handled
}

fn port_io(hv: &mut EmuCtx<'_>, dom: DomId, v: usize, i: &Instruction) -> bool {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return false;
    };
    let need = if vc.pv.kernel_mode { 1 } else { 3 };
    if vc.pv.iopl < need {
        return false;
    }
    // No devices sit behind ports: reads float high, writes vanish.
    if i.mnemonic() == Mnemonic::In {
        let ones = match i.op0_register() {
            Register::AL => 0xff,
            Register::AX => 0xffff,
            _ => 0xffff_ffff,
        };
        let g = &mut vc.cpu.gpr[reg::RAX];
        *g = match i.op0_register() {
            Register::EAX => ones,
            _ => (*g & !ones) | ones,
        };
    }
    matches!(i.mnemonic(), Mnemonic::In | Mnemonic::Out)
}

fn read_cr(hv: &EmuCtx<'_>, dom: DomId, v: usize, cr: Register) -> Option<u64> {
    let vc = hv.domains.get(&dom)?.vcpus.get(v)?;
    Some(match cr {
        // PE|MP|ET|NE|WP|AM|PG, plus the virtual TS.
        Register::CR0 => 0x8005_0033 | if vc.cpu.ts { 8 } else { 0 },
        Register::CR2 => hv.mem.read_u64(MachineAddr(vc.pv.vcpu_info.0 + 16)).ok()?,
        Register::CR3 => vc.cpu.cr3,
        // PAE|PGE|OSFXSR|OSXMMEXCPT.
        Register::CR4 => 0x6a0,
        _ => return None,
    })
}

fn write_cr(hv: &mut EmuCtx<'_>, dom: DomId, v: usize, cr: Register, val: u64) -> bool {
    match cr {
        Register::CR0 => {
            let Some(cur) = read_cr(hv, dom, v, Register::CR0) else {
                return false;
            };
            if (cur ^ val) & !8 != 0 {
                return false;
            }
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                vc.cpu.ts = val & 8 != 0;
            }
            true
        }
        Register::CR3 => {
            // A new root for the current guest mode, as NEW_BASEPTR.
            let mfn = Mfn(val >> 12);
            if hv.mm().get_page_and_type(mfn, PageType::L4, dom).is_err() {
                return false;
            }
            let Some(vc) = hv.vcpu_mut(dom, v) else {
                return false;
            };
            let old = if vc.pv.kernel_mode {
                Some(std::mem::replace(&mut vc.pv.kernel_l4, mfn))
            } else {
                vc.pv.user_l4.replace(mfn)
            };
            vc.cpu.cr3 = mfn.addr().0;
            vc.backend.flush_tlb(FlushScope::All);
            if let Some(old) = old {
                hv.mm().put_page_and_type(old);
            }
            true
        }
        _ => false,
    }
}

fn rdmsr(hv: &mut EmuCtx<'_>, dom: DomId, v: usize) -> bool {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return false;
    };
    let msr = u32::try_from(vc.cpu.gpr[reg::RCX] & 0xffff_ffff).unwrap_or(0);
    let val = match msr {
        // SCE|LME|LMA|NXE
        0xC000_0080 => 0xd01,
        0xC000_0100 => vc.cpu.seg[hv_cpu::state::sreg::FS].base,
        0xC000_0101 => vc.cpu.seg[hv_cpu::state::sreg::GS].base,
        0xC000_0102 => vc.pv.inactive_gs_base,
        _ => return false,
    };
    vc.cpu.gpr[reg::RAX] = val & 0xffff_ffff;
    vc.cpu.gpr[reg::RDX] = val >> 32;
    true
}

fn wrmsr(hv: &mut EmuCtx<'_>, dom: DomId, v: usize) -> bool {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return false;
    };
    let g = &vc.cpu.gpr;
    let msr = u32::try_from(g[reg::RCX] & 0xffff_ffff).unwrap_or(0);
    let val = (g[reg::RDX] << 32) | (g[reg::RAX] & 0xffff_ffff);
    let canonical = (val >> 47) == 0 || (val >> 47) == 0x1_ffff;
    match msr {
        0xC000_0100 if canonical => vc.cpu.seg[hv_cpu::state::sreg::FS].base = val,
        0xC000_0101 if canonical => vc.cpu.seg[hv_cpu::state::sreg::GS].base = val,
        0xC000_0102 if canonical => {
            vc.pv.inactive_gs_base = val;
            vc.cpu.kernel_gs_base = val;
        }
        MSR_HYPERCALL_PAGE => {
            // value = MFN << 12 | page index; one page, index 0.
            if val & 0xfff != 0 {
                return false;
            }
            let mfn = Mfn(val >> 12);
            if hv
                .mm()
                .get_page_and_type(mfn, PageType::Writable, dom)
                .is_err()
            {
                return false;
            }
            let ok = crate::domain::builder::write_hypercall_page(hv.mem, mfn).is_ok();
            hv.mm().put_page_and_type(mfn);
            return ok;
        }
        _ => return false,
    }
    true
}

/// Writable-page-table emulation of a faulting store to a read-only-mapped
/// L1 table at `cr2`. Returns whether it was emulated.
pub fn ptwr(hv: &mut EmuCtx<'_>, dom: DomId, v: usize, cr2: u64) -> bool {
    if cr2 & 7 != 0 {
        return false;
    }
    let Some(vc) = hv.vcpu(dom, v) else {
        return false;
    };
    // Writable page tables are the guest kernel's assist (as in Xen): a
    // store from guest user mode is an ordinary #PF for the kernel.
    if !vc.pv.kernel_mode {
        return false;
    }
    let Ok(ma) = guestmem::translate(hv.mem, vc.cpu.cr3, cr2, false) else {
        return false;
    };
    let is_l1 = hv.ft.get(ma.mfn()).is_some_and(|p| {
        p.owner == Owner::Dom(dom) && p.ty == PageType::L1 && p.type_count > 0 && p.validated
    });
    if !is_l1 {
        return false;
    }
    let Some((i, _)) = fetch(hv, dom, v) else {
        return false;
    };
    let Some(vc) = hv.vcpu(dom, v) else {
        return false;
    };
    if i.op0_kind() != OpKind::Memory || i.memory_size().size() != 8 {
        return false;
    }
    let (val, xchg_reg) = match (i.mnemonic(), i.op1_kind()) {
        (Mnemonic::Mov, OpKind::Register) => match gpr(i.op1_register()) {
            Some(r) => (vc.cpu.gpr[r], None),
            None => return false,
        },
        (Mnemonic::Mov, OpKind::Immediate32to64) => (i.immediate32to64().cast_unsigned(), None),
        (Mnemonic::Xchg, OpKind::Register) => match gpr(i.op1_register()) {
            Some(r) => (vc.cpu.gpr[r], Some(r)),
            None => return false,
        },
        _ => return false,
    };
    let old = hv.mem.read_u64(ma).unwrap_or(0);
    let mut mm = hv.mm();
    if mm.update_entry(ma.0, val, dom, dom, false).is_err() {
        return false;
    }
    let len = i.len() as u64;
    if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
        if let Some(r) = xchg_reg {
            vc.cpu.gpr[r] = old;
        }
        vc.cpu.rip = vc.cpu.rip.wrapping_add(len);
    }
    true
}

/// The part of the hypervisor instruction emulation needs: the domains
/// (the faulting vCPU's state), machine memory, the frame table and M2P
/// (page types for CR3 loads and writable page tables) and the CPU model
/// (`cpuid`). See [`Hypervisor::emu`].
#[derive(Debug)]
pub struct EmuCtx<'a> {
    /// The domains.
    pub domains: &'a mut BTreeMap<DomId, Domain>,
    /// Machine memory.
    pub mem: &'a MachineMemory,
    /// The frame table.
    pub ft: &'a mut FrameTable,
    /// The read-only M2P.
    pub m2p: &'a M2p,
    /// The CPU guests see.
    pub cpu_model: &'a CpuModel,
}

impl EmuCtx<'_> {
    fn vcpu(&self, dom: DomId, v: usize) -> Option<&Vcpu> {
        self.domains.get(&dom).and_then(|d| d.vcpus.get(v))
    }

    fn vcpu_mut(&mut self, dom: DomId, v: usize) -> Option<&mut Vcpu> {
        self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v))
    }

    fn mm(&mut self) -> Mm<'_> {
        Mm::over(self.ft, self.mem, self.m2p)
    }
}

impl Hypervisor {
    /// The narrow borrow instruction emulation works on.
    pub fn emu(&mut self) -> EmuCtx<'_> {
        EmuCtx {
            domains: &mut self.domains,
            mem: &self.mem,
            ft: &mut self.ft,
            m2p: &self.m2p,
            cpu_model: &self.cpu_model,
        }
    }
}
