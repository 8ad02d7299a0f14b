//! vCPU wrappers (`vcpu_op`, hypercall 24).

use crate::abi::hypercall_nr::VCPU_OP;
use crate::abi::vcpu::*;
use crate::abi::{Errno, GuestVa, Mfn};
use crate::hypercall::{Hypercall, arg_mut, arg_ref};

/// Issues `vcpu_op(cmd, vcpu, arg)`.
pub fn op<H: Hypercall + ?Sized>(h: &H, cmd: u32, vcpu: u32, arg: u64) -> Result<u64, Errno> {
    h.call_checked(VCPU_OP, [u64::from(cmd), u64::from(vcpu), arg, 0, 0])
}

/// Installs the initial state of `vcpu` (once per vCPU).
pub fn initialise<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
    ctx: &VcpuGuestContext,
) -> Result<(), Errno> {
    op(h, VCPUOP_INITIALISE, vcpu, arg_ref(ctx)).map(drop)
}

/// Brings an initialised `vcpu` online.
pub fn up<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<(), Errno> {
    op(h, VCPUOP_UP, vcpu, 0).map(drop)
}

/// Takes `vcpu` offline.
pub fn down<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<(), Errno> {
    op(h, VCPUOP_DOWN, vcpu, 0).map(drop)
}

/// Whether `vcpu` is up.
pub fn is_up<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<bool, Errno> {
    op(h, VCPUOP_IS_UP, vcpu, 0).map(|r| r != 0)
}

/// Sets `vcpu`'s periodic timer (≥ 1 ms).
pub fn set_periodic_timer<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
    period_ns: u64,
) -> Result<(), Errno> {
    let mut a = VcpuSetPeriodicTimer { period_ns };
    op(h, VCPUOP_SET_PERIODIC_TIMER, vcpu, arg_mut(&mut a)).map(drop)
}

/// Stops `vcpu`'s periodic timer.
pub fn stop_periodic_timer<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<(), Errno> {
    op(h, VCPUOP_STOP_PERIODIC_TIMER, vcpu, 0).map(drop)
}

/// Arms the calling vCPU's single-shot timer at absolute system time `abs_ns`.
pub fn set_singleshot_timer<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
    abs_ns: u64,
    flags: u32,
) -> Result<(), Errno> {
    let mut a = VcpuSetSingleshotTimer {
        timeout_abs_ns: abs_ns,
        flags,
        _pad: 0,
    };
    op(h, VCPUOP_SET_SINGLESHOT_TIMER, vcpu, arg_mut(&mut a)).map(drop)
}

/// Cancels the calling vCPU's single-shot timer.
pub fn stop_singleshot_timer<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<(), Errno> {
    op(h, VCPUOP_STOP_SINGLESHOT_TIMER, vcpu, 0).map(drop)
}

/// Moves `vcpu`'s `vcpu_info` to `offset` in machine frame `mfn` (the
/// 64-byte area must not cross the page).
pub fn register_vcpu_info<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
    mfn: Mfn,
    offset: u32,
) -> Result<(), Errno> {
    let end = u64::from(offset) + core::mem::size_of::<crate::abi::VcpuInfo>() as u64;
    if end > crate::abi::XEN_PAGE_SIZE as u64 {
        return Err(Errno::EINVAL);
    }
    let mut a = VcpuRegisterVcpuInfo {
        mfn: mfn.0,
        offset,
        rsvd: 0,
    };
    op(h, VCPUOP_REGISTER_VCPU_INFO, vcpu, arg_mut(&mut a)).map(drop)
}

/// Reads `vcpu`'s runstate.
pub fn get_runstate_info<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
) -> Result<VcpuRunstateInfo, Errno> {
    let mut a = VcpuRunstateInfo::default();
    op(h, VCPUOP_GET_RUNSTATE_INFO, vcpu, arg_mut(&mut a))?;
    Ok(a)
}

/// Asks Xen to keep a `VcpuRunstateInfo` at guest VA `va` up to date.
pub fn register_runstate_memory_area<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
    va: GuestVa,
) -> Result<(), Errno> {
    let mut a = VcpuRegisterMemoryArea { addr: va.0 };
    op(
        h,
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA,
        vcpu,
        arg_mut(&mut a),
    )
    .map(drop)
}

/// Asks Xen to keep a `VcpuTimeInfo` copy at guest VA `va` up to date.
pub fn register_vcpu_time_memory_area<H: Hypercall + ?Sized>(
    h: &H,
    vcpu: u32,
    va: GuestVa,
) -> Result<(), Errno> {
    let mut a = VcpuRegisterMemoryArea { addr: va.0 };
    op(
        h,
        VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
        vcpu,
        arg_mut(&mut a),
    )
    .map(drop)
}

/// Sends an NMI to `vcpu`.
pub fn send_nmi<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<(), Errno> {
    op(h, VCPUOP_SEND_NMI, vcpu, 0).map(drop)
}

/// `(apic_id, acpi_id)` of the physical CPU `vcpu` runs on (privileged).
pub fn get_physid<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<(u32, u32), Errno> {
    let mut a = VcpuGetPhysid::default();
    op(h, VCPUOP_GET_PHYSID, vcpu, arg_mut(&mut a))?;
    let lo = u32::try_from(a.phys_id & 0xFFFF_FFFF).map_err(|_| Errno::ERANGE)?;
    let hi = u32::try_from(a.phys_id >> 32).map_err(|_| Errno::ERANGE)?;
    Ok((lo, hi))
}
