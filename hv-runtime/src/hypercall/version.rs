//! `xen_version` (17): version, extra version, capabilities, features, page size, handle.

use guest_abi::abi::xen::HYPERVISOR_VIRT_START;
use guest_abi::abi::{Errno, version as ver};

use super::{Ret, read, write, write_bytes};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `xen_version(cmd, arg)`.
pub(super) fn xen_version(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::err(Errno::ENOSYS);
    };
    let text = |hv: &Hypervisor, s: &str, len: usize| -> Ret {
        let mut b = vec![0u8; len];
        let n = s.len().min(len - 1);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        match write_bytes(hv, dom, v, arg, &b) {
            Ok(()) => Ret::OK,
            Err(f) => f.into(),
        }
    };
    let (maj, min) = crate::cpuid::XEN_VERSION;
    match cmd {
        ver::XENVER_VERSION => Ret::Val(i64::from((maj << 16) | min)),
        ver::XENVER_EXTRAVERSION => text(hv, ".0-pvsdk", 16),
        ver::XENVER_COMPILE_INFO => {
            let mut b = [0u8; 144];
            b[..5].copy_from_slice(b"rustc");
            b[64..69].copy_from_slice(b"pvsdk");
            match write_bytes(hv, dom, v, arg, &b) {
                Ok(()) => Ret::OK,
                Err(f) => f.into(),
            }
        }
        ver::XENVER_CAPABILITIES => text(hv, "xen-3.0-x86_64 ", 1024),
        ver::XENVER_CHANGESET => text(hv, concat!("pvsdk ", env!("CARGO_PKG_VERSION")), 64),
        ver::XENVER_PLATFORM_PARAMETERS => match write(hv, dom, v, arg, &HYPERVISOR_VIRT_START) {
            Ok(()) => Ret::OK,
            Err(f) => f.into(),
        },
        ver::XENVER_GET_FEATURES => match read::<[u32; 2]>(hv, dom, v, arg) {
            Ok([0, _]) => {
                let map = (1u32 << ver::XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
                    | (1 << ver::XENFEAT_HIGHMEM_ASSIST);
                match write(hv, dom, v, arg, &[0u32, map]) {
                    Ok(()) => Ret::OK,
                    Err(f) => f.into(),
                }
            }
            Ok(_) => Ret::err(Errno::EINVAL),
            Err(f) => f.into(),
        },
        ver::XENVER_PAGESIZE => Ret::Val(4096),
        ver::XENVER_GUEST_HANDLE => {
            let mut uuid = [0u8; 16];
            uuid[..2].copy_from_slice(&dom.0.to_le_bytes());
            match write(hv, dom, v, arg, &uuid) {
                Ok(()) => Ret::OK,
                Err(f) => f.into(),
            }
        }
        ver::XENVER_COMMANDLINE => text(hv, "", 1024),
        _ => Ret::err(Errno::ENOSYS),
    }
}
