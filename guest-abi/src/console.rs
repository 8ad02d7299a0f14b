//! Xen emergency console (`console_io`, hypercall 18).

use crate::abi::Errno;
use crate::abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use crate::abi::hypercall_nr::CONSOLE_IO;
use crate::hypercall::{Hypercall, arg_mut, arg_ref, count_u32};

/// Writes `bytes` to Xen's console (domU: debug hypervisors or the console
/// domain only; otherwise `EPERM`).
pub fn write<H: Hypercall + ?Sized>(h: &H, bytes: &[u8]) -> Result<(), Errno> {
    let n = count_u32(bytes)?;
    Errno::check(h.call(
        CONSOLE_IO,
        [
            u64::from(CONSOLEIO_WRITE),
            u64::from(n),
            arg_ref(bytes),
            0,
            0,
        ],
    ))
}

/// Reads up to `buf.len()` bytes; returns the count read.
pub fn read<H: Hypercall + ?Sized>(h: &H, buf: &mut [u8]) -> Result<usize, Errno> {
    let n = count_u32(buf)?;
    let r = h.call_checked(
        CONSOLE_IO,
        [u64::from(CONSOLEIO_READ), u64::from(n), arg_mut(buf), 0, 0],
    )?;
    usize::try_from(r).map_err(|_| Errno::ERANGE)
}
