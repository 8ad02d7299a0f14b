//! The vCPU entry-point and CPU-state hypercalls (as `guest_abi::callback`): `set_callbacks` (4), `callback_op` (30), `set_trap_table` (0), `stack_switch` (3), `fpu_taskswitch` (5), `set_segment_base` (25), `iret` (23), `set_debugreg`/`get_debugreg` (8/9).

use guest_abi::abi::Errno;
use guest_abi::abi::callback::CallbackRegister;
use hv_cpu::state::sreg;

use super::{BATCH, Ret, read, with_vcpu};
use crate::guestmem::canonical;
use crate::hv::{Hypervisor, VcpuMem};
use crate::machine::DomId;
use crate::vcpu::{self as pv, TrapEntry};

/// `set_callbacks`.
pub(super) fn set_callbacks(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    if !canonical(a[0]) || !canonical(a[1]) || !canonical(a[2]) {
        return Ret::err(Errno::EINVAL);
    }
    with_vcpu(hv, dom, v, |vc| {
        vc.pv.event_callback = a[0];
        vc.pv.failsafe_callback = a[1];
        vc.pv.syscall_callback = a[2];
        vc.pv.syscall_masks_events = false;
        vc.pv.failsafe_masks_events = false;
        0
    })
}

/// `callback_op`.
pub(super) fn callback_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    match cmd {
        0 => {
            let r: CallbackRegister = match read(hv, dom, v, arg) {
                Ok(r) => r,
                Err(f) => return f.into(),
            };
            let (ty, flags, addr) = (r.type_, r.flags, r.address);
            if !canonical(addr) {
                return Ret::err(Errno::EINVAL);
            }
            let mask = flags & 1 != 0;
            with_vcpu(hv, dom, v, |vc| match ty {
                0 => {
                    vc.pv.event_callback = addr;
                    0
                }
                1 => {
                    vc.pv.failsafe_callback = addr;
                    vc.pv.failsafe_masks_events = mask;
                    0
                }
                2 => {
                    vc.pv.syscall_callback = addr;
                    vc.pv.syscall_masks_events = mask;
                    0
                }
                4 => {
                    vc.pv.nmi_callback = addr;
                    0
                }
                // 32-bit entry points: accepted, never used by 64-bit code.
                5 | 7 => 0,
                _ => Errno::EINVAL.to_ret(),
            })
        }
        1 => match read::<u32>(hv, dom, v, arg) {
            Ok(t) if t & 0xffff == 4 => with_vcpu(hv, dom, v, |vc| {
                vc.pv.nmi_callback = 0;
                0
            }),
            Ok(_) => Ret::err(Errno::EINVAL),
            Err(f) => f.into(),
        },
        _ => Ret::err(Errno::ENOSYS),
    }
}

/// `set_trap_table`.
pub(super) fn set_trap_table(hv: &mut Hypervisor, dom: DomId, v: usize, table: u64) -> Ret {
    if table == 0 {
        return with_vcpu(hv, dom, v, |vc| {
            vc.pv.traps = [TrapEntry::default(); 256];
            0
        });
    }
    // Entries until one with address 0, as in Xen: there is no length
    // limit, so a long (or endless, hostile) table is taken [`BATCH`]
    // entries per call and continued like any other preempted hypercall —
    // the guest re-issues it from where it stopped, and can be descheduled
    // or shut down in between.
    for i in 0..u64::from(BATCH) {
        let e: guest_abi::abi::callback::TrapInfo =
            match read(hv, dom, v, table.wrapping_add(i * 16)) {
                Ok(e) => e,
                Err(f) => return f.into(),
            };
        if e.address == 0 {
            return Ret::OK;
        }
        if !canonical(e.address) {
            return Ret::err(Errno::EINVAL);
        }
        if let Some(vc) = hv.vcpu_mut(dom, v) {
            vc.pv.traps[usize::from(e.vector)] = TrapEntry {
                flags: e.flags,
                address: e.address,
            };
        }
    }
    Ret::Preempted([table.wrapping_add(u64::from(BATCH) * 16), 0, 0, 0, 0])
}

/// `set_segment_base`.
pub(super) fn set_segment_base(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    which: u64,
    base: u64,
) -> Ret {
    if which != 3 && !canonical(base) {
        return Ret::err(Errno::EINVAL);
    }
    with_vcpu(hv, dom, v, |vc| {
        let kernel = vc.pv.kernel_mode;
        match which {
            0 => vc.cpu.seg[sreg::FS].base = base,
            1 if kernel => vc.pv.inactive_gs_base = base,
            1 => vc.cpu.seg[sreg::GS].base = base,
            2 if kernel => vc.cpu.seg[sreg::GS].base = base,
            2 => vc.pv.inactive_gs_base = base,
            3 => {
                // Load the user %gs selector; only the null and flat
                // selectors exist here, and both have base 0.
                let sel = u16::try_from(base & 0xffff).unwrap_or(0);
                vc.cpu.seg[sreg::GS].selector = sel;
                if kernel {
                    vc.pv.inactive_gs_base = 0;
                } else {
                    vc.cpu.seg[sreg::GS].base = 0;
                }
            }
            _ => return Errno::EINVAL.to_ret(),
        }
        vc.cpu.kernel_gs_base = vc.pv.inactive_gs_base;
        0
    })
}

/// `set_debugreg`.
pub(super) fn set_debugreg(hv: &mut Hypervisor, dom: DomId, v: usize, r: u64, val: u64) -> Ret {
    let ok = match r {
        0..=3 => val < (1 << 47),
        6 => val >> 32 == 0,
        7 => val >> 32 == 0 && val & (1 << 13) == 0,
        _ => false,
    };
    if !ok {
        return Ret::err(Errno::EINVAL);
    }
    with_vcpu(hv, dom, v, |vc| {
        if let Some(slot) = usize::try_from(r)
            .ok()
            .and_then(|i| vc.pv.debugreg.get_mut(i))
        {
            *slot = val;
        }
        0
    })
}

/// `stack_switch(ss, sp)`: the kernel stack for the next guest-user →
/// kernel transition.
pub(super) fn stack_switch(hv: &mut Hypervisor, dom: DomId, v: usize, ss: u64, sp: u64) -> Ret {
    with_vcpu(hv, dom, v, |vc| {
        vc.pv.kernel_ss = ss | 3;
        vc.pv.kernel_sp = sp;
        0
    })
}

/// `fpu_taskswitch(set)`: set or clear the virtual CR0.TS.
pub(super) fn fpu_taskswitch(hv: &mut Hypervisor, dom: DomId, v: usize, set: u64) -> Ret {
    with_vcpu(hv, dom, v, |vc| {
        vc.cpu.ts = set != 0;
        0
    })
}

/// `iret`: return from the guest kernel through the frame on its stack; a
/// broken frame crashes the domain.
pub(super) fn iret(hv: &mut Hypervisor, dom: DomId, v: usize) -> Ret {
    let Some(VcpuMem { vc, mem, .. }) = hv.vcpu_mem(dom, v) else {
        return Ret::Stop;
    };
    match pv::iret(&mut vc.cpu, &mut vc.pv, mem) {
        Ok(()) => Ret::Done,
        Err(e) => {
            hv.crash_vcpu(dom, v, format!("bad iret: {e}"));
            Ret::Stop
        }
    }
}

/// `get_debugreg(reg)`.
pub(super) fn get_debugreg(hv: &mut Hypervisor, dom: DomId, v: usize, r: u64) -> Ret {
    match (usize::try_from(r), hv.vcpu(dom, v)) {
        (Ok(r @ 0..=7), Some(vc)) if r != 4 && r != 5 => Ret::Val(vc.pv.debugreg[r].cast_signed()),
        _ => Ret::err(Errno::EINVAL),
    }
}
