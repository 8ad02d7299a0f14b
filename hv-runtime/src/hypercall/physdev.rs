//! `physdev_op` (33): only `PHYSDEVOP_set_iopl` (no devices here).

use guest_abi::abi::Errno;

use super::{Ret, read, with_vcpu};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `physdev_op`.
pub(super) fn physdev_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    const PHYSDEVOP_SET_IOPL: u64 = 6;
    match cmd {
        PHYSDEVOP_SET_IOPL => match read::<u32>(hv, dom, v, arg) {
            Ok(iopl) if iopl <= 3 => with_vcpu(hv, dom, v, |vc| {
                vc.pv.iopl = u8::try_from(iopl).unwrap_or(0);
                0
            }),
            Ok(_) => Ret::err(Errno::EINVAL),
            Err(f) => f.into(),
        },
        _ => Ret::err(Errno::ENOSYS),
    }
}
