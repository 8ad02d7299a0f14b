//! `console_io` (hypercall 18): the emergency console (`CONSOLEIO_write`/`read`).

use guest_abi::abi::{Errno, console as con};

use super::{Ret, read_bytes, write_bytes};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `console_io(cmd, count, buffer)`.
pub(super) fn console_io(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let Ok(cmd) = u32::try_from(a[0]) else {
        return Ret::err(Errno::ENOSYS);
    };
    match cmd {
        con::CONSOLEIO_WRITE => {
            let count = a[1] & 0xffff_ffff;
            if count > (1 << 20) {
                return Ret::err(Errno::EINVAL);
            }
            let mut buf = vec![0u8; usize::try_from(count).unwrap_or(0)];
            if let Err(f) = read_bytes(hv, dom, v, a[2], &mut buf) {
                return f.into();
            }
            if let Some(d) = hv.domains.get_mut(&dom) {
                d.conio_line.extend_from_slice(&buf);
            }
            hv.service_consoles();
            Ret::OK
        }
        // Input available now (non-blocking); see `Hypervisor::console_read`.
        con::CONSOLEIO_READ => {
            let count = a[1] & 0xffff_ffff;
            if count > 0x8000_0000 {
                return Ret::err(Errno::EINVAL);
            }
            let bytes = hv.console_read(dom, usize::try_from(count).unwrap_or(0));
            if bytes.is_empty() {
                return Ret::OK;
            }
            match write_bytes(hv, dom, v, a[2], &bytes) {
                Ok(()) => Ret::Val(i64::try_from(bytes.len()).unwrap_or(0)),
                Err(f) => f.into(),
            }
        }
        _ => Ret::err(Errno::ENOSYS),
    }
}
