//! `vm_assist` (21): per-domain assist flags.

use guest_abi::abi::Errno;

use super::Ret;
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `vm_assist`.
pub(super) fn vm_assist(hv: &mut Hypervisor, dom: DomId, cmd: u64, ty: u64) -> Ret {
    if !matches!(ty, 0..=5 | 32) {
        return Ret::err(Errno::EINVAL);
    }
    let Some(d) = hv.domains.get_mut(&dom) else {
        return Ret::Stop;
    };
    match cmd {
        0 => d.vm_assist |= 1 << ty,
        1 => d.vm_assist &= !(1 << ty),
        _ => return Ret::err(Errno::ENOSYS),
    }
    Ret::OK
}
