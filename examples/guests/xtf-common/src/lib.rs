//! Support for the pvsdk conformance guests, in the spirit of Xen's XTF test
//! kernels: each guest checks one group of properties of the PV ABI, prints
//! one `PASS: ...` or `FAIL: ...` line per check, then a `RESULT:` line, and
//! powers off (or crashes, if anything failed).
//!
//! * [`println!`] and the [`check`] family write to the emergency console;
//! * [`hc`] is the hypercall page;
//! * [`arch`] holds the only `unsafe` code of the guests: the trap, event and
//!   syscall entry stubs, the shared_info mapping, user-mode entry and raw
//!   memory probes;
//! * [`Frames`] hands out this domain's unmapped frames (from the top of its
//!   memory) for page tables and test pages.
#![no_std]
#![deny(unsafe_code)]

pub mod arch;

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicU32, Ordering};

use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{Errno, Mfn, Pfn};
use guest_abi::hypercall::XenHypercallPage;

pub use guest_abi;

/// The hypercall page this guest was linked with.
#[must_use]
pub fn hc() -> XenHypercallPage {
    arch::hypercall_page()
}

/// A line buffer that goes out in one `console_io` write.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    fn flush(&mut self) {
        guest_abi::entry::console_write(self.buf.get(..self.len).unwrap_or(&[]));
        self.len = 0;
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    line.flush();
}

/// Print a line on the emergency console (`console_io`).
#[macro_export]
macro_rules! println {
    ($($t:tt)*) => {
        $crate::_print(format_args!("{}\n", format_args!($($t)*)))
    };
}

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Record one check: prints `PASS: what` or `FAIL: what`.
pub fn check(ok: bool, what: fmt::Arguments<'_>) -> bool {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        println!("PASS: {what}");
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        println!("FAIL: {what}");
    }
    ok
}

/// Record `got == want`, printing both on failure.
pub fn check_eq<T: PartialEq + fmt::Debug>(what: &str, got: T, want: T) -> bool {
    if got == want {
        check(true, format_args!("{what}"))
    } else {
        check(
            false,
            format_args!("{what}: got {got:#x?}, expected {want:#x?}"),
        )
    }
}

/// Record that a hypercall was refused with exactly `want`.
pub fn check_errno<T: fmt::Debug>(what: &str, got: Result<T, Errno>, want: Errno) -> bool {
    match got {
        Err(e) if e == want => check(true, format_args!("{what} -> {e}")),
        Err(e) => check(false, format_args!("{what}: got {e}, expected {want}")),
        Ok(v) => check(
            false,
            format_args!("{what}: succeeded ({v:?}), expected {want}"),
        ),
    }
}

/// Record that a hypercall succeeded, returning its value.
pub fn check_ok<T>(what: &str, got: Result<T, Errno>) -> Option<T> {
    match got {
        Ok(v) => {
            check(true, format_args!("{what}"));
            Some(v)
        }
        Err(e) => {
            check(false, format_args!("{what}: failed with {e}"));
            None
        }
    }
}

/// Print the summary and shut down: poweroff if every check passed, crash
/// otherwise.
pub fn finish() -> ! {
    let (p, f) = (
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    );
    println!("RESULT: {p} passed, {f} failed");
    guest_abi::entry::shutdown(if f == 0 {
        guest_abi::abi::sched::SHUTDOWN_POWEROFF
    } else {
        guest_abi::abi::sched::SHUTDOWN_CRASH
    })
}

/// Hands out this domain's frames from the top of its memory downwards:
/// the domain builder maps only the low part (`VIRT_BASE` onwards), so these
/// frames have no mapping and can become page tables.
#[derive(Debug)]
pub struct Frames {
    next_pfn: u64,
    mfn_list: u64,
}

impl Frames {
    /// Allocator over the frames of the domain described by `si`.
    #[must_use]
    pub fn new(si: &StartInfo) -> Self {
        Self {
            next_pfn: si.nr_pages,
            mfn_list: si.mfn_list,
        }
    }

    /// The next free frame, zeroed with `MMUEXT_CLEAR_PAGE`.
    ///
    /// # Panics
    /// When the domain runs out of frames (a broken test).
    pub fn alloc(&mut self) -> (Pfn, Mfn) {
        self.next_pfn = self.next_pfn.checked_sub(1).expect("out of frames");
        let pfn = Pfn(self.next_pfn);
        let mfn = Mfn(arch::peek(self.mfn_list + pfn.0 * 8));
        let mut op = [guest_abi::abi::mmu::MmuextOp::with_mfn(
            guest_abi::abi::mmu::MMUEXT_CLEAR_PAGE,
            mfn.0,
        )];
        guest_abi::mmu::mmuext_op(&hc(), &mut op, guest_abi::mmu::FOREIGNDOM_SELF)
            .expect("MMUEXT_CLEAR_PAGE of our own frame");
        (pfn, mfn)
    }
}

/// Machine frame → pseudo-physical frame, through the read-only M2P table
/// Xen maps at `MACH2PHYS_VIRT_START`.
#[must_use]
pub fn m2p(mfn: Mfn) -> u64 {
    arch::peek(guest_abi::abi::xen::MACH2PHYS_VIRT_START + mfn.0 * 8)
}

/// Virtual address of `mfn` in the bootstrap mapping (`VIRT_BASE + pfn ×
/// 4096`), if it lies there.
#[must_use]
pub fn boot_va(si: &StartInfo, mfn: Mfn) -> Option<u64> {
    let pfn = m2p(mfn);
    (pfn < si.nr_pages).then(|| guest_abi::entry::VIRT_BASE + pfn * 4096)
}

/// The machine address of the L1 entry that maps `va` in the current
/// bootstrap-style tables (walked through the M2P and the bootstrap mapping).
#[must_use]
pub fn l1e_maddr(si: &StartInfo, va: u64) -> Option<u64> {
    let mut table_mfn = Mfn(arch::read_cr3() >> 12);
    for shift in [39u32, 30, 21] {
        let table_va = boot_va(si, table_mfn)?;
        let e = arch::peek(table_va + ((va >> shift) & 511) * 8);
        if e & 1 == 0 {
            return None;
        }
        table_mfn = Mfn((e & guest_abi::abi::mmu::PTE_ADDR_MASK) >> 12);
    }
    Some((table_mfn.0 << 12) + ((va >> 12) & 511) * 8)
}

/// Parse `key=<decimal>` from the kernel command line.
#[must_use]
pub fn cmdline_u32(si: &StartInfo, key: &str) -> Option<u32> {
    let end = si.cmd_line.iter().position(|&b| b == 0)?;
    let line = core::str::from_utf8(si.cmd_line.get(..end)?).ok()?;
    line.split(' ').find_map(|w| {
        let v = w.strip_prefix(key)?.strip_prefix('=')?;
        v.parse().ok()
    })
}

/// The machine frame `va` maps to in the current tables, if mapped.
#[must_use]
pub fn va_to_mfn(si: &StartInfo, va: u64) -> Option<Mfn> {
    let maddr = l1e_maddr(si, va)?;
    let l1_va = boot_va(si, Mfn(maddr >> 12))?;
    let e = arch::peek(l1_va + (maddr & 0xfff));
    (e & 1 != 0).then_some(Mfn((e & guest_abi::abi::mmu::PTE_ADDR_MASK) >> 12))
}
