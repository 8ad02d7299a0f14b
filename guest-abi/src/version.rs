//! `xen_version` (hypercall 17) wrappers.

use crate::abi::Errno;
use crate::abi::hypercall_nr::XEN_VERSION;
use crate::abi::version::*;
use crate::hypercall::{Hypercall, arg_mut};

fn op<H: Hypercall + ?Sized>(h: &H, cmd: u32, arg: u64) -> Result<u64, Errno> {
    h.call_checked(XEN_VERSION, [u64::from(cmd), arg, 0, 0, 0])
}

/// `(major, minor)` of the running Xen.
pub fn version<H: Hypercall + ?Sized>(h: &H) -> Result<(u16, u16), Errno> {
    let v = op(h, XENVER_VERSION, 0)?;
    let major = u16::try_from((v >> 16) & 0xFFFF).map_err(|_| Errno::ERANGE)?;
    let minor = u16::try_from(v & 0xFFFF).map_err(|_| Errno::ERANGE)?;
    Ok((major, minor))
}

/// Feature submap `idx` (bit `n` = `XENFEAT` `32 * idx + n`).
pub fn get_features<H: Hypercall + ?Sized>(h: &H, idx: u32) -> Result<u32, Errno> {
    let mut a = XenFeatureInfo {
        submap_idx: idx,
        submap: 0,
    };
    op(h, XENVER_GET_FEATURES, arg_mut(&mut a))?;
    Ok(a.submap)
}

/// Whether feature `feat` (`XENFEAT_*`) is reported.
pub fn has_feature<H: Hypercall + ?Sized>(h: &H, feat: u32) -> Result<bool, Errno> {
    let word = get_features(h, feat / 32)?;
    Ok(word & (1 << (feat % 32)) != 0)
}

/// The extra-version string (e.g. `".0-rc"`), NUL-padded.
pub fn extraversion<H: Hypercall + ?Sized>(h: &H) -> Result<XenExtraversion, Errno> {
    let mut a: XenExtraversion = [0; 16];
    op(h, XENVER_EXTRAVERSION, arg_mut(&mut a))?;
    Ok(a)
}

/// The capabilities string (e.g. `"xen-3.0-x86_64 ..."`), NUL-padded.
pub fn capabilities<H: Hypercall + ?Sized>(
    h: &H,
    out: &mut XenCapabilitiesInfo,
) -> Result<(), Errno> {
    op(h, XENVER_CAPABILITIES, arg_mut(out)).map(drop)
}

/// The changeset string.
pub fn changeset<H: Hypercall + ?Sized>(h: &H) -> Result<XenChangesetInfo, Errno> {
    let mut a: XenChangesetInfo = [0; 64];
    op(h, XENVER_CHANGESET, arg_mut(&mut a))?;
    Ok(a)
}

/// Compiler / build information.
pub fn compile_info<H: Hypercall + ?Sized>(h: &H) -> Result<XenCompileInfo, Errno> {
    let mut a = <XenCompileInfo as zerocopy::FromZeros>::new_zeroed();
    op(h, XENVER_COMPILE_INFO, arg_mut(&mut a))?;
    Ok(a)
}

/// `HYPERVISOR_VIRT_START` as Xen reports it (0 on debug builds).
pub fn platform_parameters<H: Hypercall + ?Sized>(h: &H) -> Result<u64, Errno> {
    let mut a = XenPlatformParameters::default();
    op(h, XENVER_PLATFORM_PARAMETERS, arg_mut(&mut a))?;
    Ok(a.virt_start)
}

/// The page size Xen uses (4096).
pub fn pagesize<H: Hypercall + ?Sized>(h: &H) -> Result<u64, Errno> {
    op(h, XENVER_PAGESIZE, 0)
}

/// The domain's UUID.
pub fn guest_handle<H: Hypercall + ?Sized>(h: &H) -> Result<XenDomainHandle, Errno> {
    let mut a: XenDomainHandle = [0; 16];
    op(h, XENVER_GUEST_HANDLE, arg_mut(&mut a))?;
    Ok(a)
}
