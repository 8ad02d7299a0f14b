//! Entry glue for freestanding guest kernels: the Xen ELF notes, the entry
//! stub, the hypercall page and the few C symbols `rustc` expects.
//!
//! A guest kernel is a `#![no_std] #![no_main]` binary for the host target
//! (`x86_64-unknown-linux-gnu`), built with `panic = "abort"` and linked with
//! `guest-abi/guest.ld`. It depends on `guest-abi` with the `guest-rt`
//! feature and names its entry point with [`entry!`](crate::entry!):
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use guest_abi::abi::xen::StartInfo;
//!
//! guest_abi::entry!(main);
//!
//! fn main(start_info: &'static StartInfo) -> ! {
//!     guest_abi::entry::console_write(b"hello\n");
//!     guest_abi::entry::shutdown(guest_abi::abi::sched::SHUTDOWN_POWEROFF)
//! }
//! ```
//!
//! With `guest-rt` the crate contributes (see `rt`):
//!
//! * the Xen notes in a `.note.Xen` section that the linker script places in a
//!   `PT_NOTE` segment: `GUEST_OS`, `GUEST_VERSION`, `XEN_VERSION`, `LOADER`,
//!   `ENTRY`, `HYPERCALL_PAGE`, `VIRT_BASE`, `PADDR_OFFSET` (no `FEATURES`:
//!   the guest requires nothing beyond what Xen gives every PV64 guest);
//! * `_start`, which clears DF, switches to a 64 KiB stack of its own, and
//!   calls the author's `main` with the `start_info` pointer the domain
//!   builder put in `rsi`;
//! * the 4 KiB `hypercall_page` that the domain builder fills with stubs;
//! * `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` (no libc here);
//! * a panic handler that prints the panic message on the emergency console
//!   and shuts the domain down with `SHUTDOWN_crash`.

/// Virtual address the guest image is linked at (`guest.ld`), which is also
/// the `VIRT_BASE` and `PADDR_OFFSET` notes.
pub const VIRT_BASE: u64 = 0x40_0000;

/// Size of the stack `_start` switches to.
pub const STACK_SIZE: usize = 64 * 1024;

/// Declare the guest's entry point: `fn(&'static StartInfo) -> !`.
///
/// Requires the `guest-rt` feature of `guest-abi` in the guest crate.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(export_name = "__pvsdk_main")]
        extern "C" fn __pvsdk_main(start_info: *const $crate::abi::xen::StartInfo) -> ! {
            // SAFETY: `_start` passes the pointer the domain builder placed
            // in `rsi`: a page-aligned, mapped `start_info` page that the
            // guest owns for its whole life (Xen PV64 boot protocol).
            let start_info: &'static $crate::abi::xen::StartInfo = unsafe { &*start_info };
            let main: fn(&'static $crate::abi::xen::StartInfo) -> ! = $main;
            main(start_info)
        }
    };
}

#[cfg(all(feature = "guest-rt", target_arch = "x86_64", not(test)))]
pub use rt::{console_write, hypercall_page_addr, hypercalls, p2m_list, shutdown, xenstore_ring};

/// The freestanding runtime linked into guest kernels.
#[cfg(all(feature = "guest-rt", target_arch = "x86_64", not(test)))]
#[expect(unsafe_code)]
pub mod rt {
    use core::fmt::Write as _;

    // Note [Guest entry]: the domain builder enters `_start` at CPL 3 in
    // guest kernel mode with rsi = VA of start_info and rsp = top of a
    // one-page boot stack (XEN-PV-ABI §10.3). Events are masked
    // (evtchn_upcall_mask = 1), so nothing interrupts us before the guest
    // registers callbacks.
    core::arch::global_asm!(
        r#"
        .pushsection .text.pvsdk_entry, "ax", @progbits
        .globl _start
        .type _start, @function
    _start:
        cld
        lea rsp, [rip + __pvsdk_stack_top]
        xor ebp, ebp
        mov rdi, rsi
        call __pvsdk_main
        ud2
        .size _start, . - _start
        .popsection

        .pushsection .text.hypercall_page, "ax", @progbits
        .balign 4096
        .globl hypercall_page
        .type hypercall_page, @object
    hypercall_page:
        .fill 4096, 1, 0xcc
        .size hypercall_page, 4096
        .popsection

        .pushsection .bss.pvsdk_stack, "aw", @nobits
        .balign 16
    __pvsdk_stack_bottom:
        .skip {stack_size}
    __pvsdk_stack_top:
        .popsection

        .pushsection .note.Xen, "a", @note
        .macro pvsdk_note_str type, value
        .balign 4
        .long 4
        .long 2f - 1f
        .long \type
        .asciz "Xen"
    1:  .asciz "\value"
    2:  .balign 4
        .endm
        .macro pvsdk_note_quad type, value
        .balign 4
        .long 4
        .long 8
        .long \type
        .asciz "Xen"
        .quad \value
        .endm

        pvsdk_note_str 6, "pvsdk"
        pvsdk_note_str 7, "0.1"
        pvsdk_note_str 5, "xen-3.0"
        pvsdk_note_str 8, "generic"
        pvsdk_note_quad 1, _start
        pvsdk_note_quad 2, hypercall_page
        pvsdk_note_quad 3, {virt_base}
        pvsdk_note_quad 4, {virt_base}
        .popsection
        "#,
        stack_size = const super::STACK_SIZE,
        virt_base = const super::VIRT_BASE,
    );

    unsafe extern "C" {
        static hypercall_page: [u8; 4096];
    }

    /// Virtual address of the hypercall page (filled by the domain builder).
    #[must_use]
    pub fn hypercall_page_addr() -> usize {
        // Taking the address of an extern static is safe; its bytes are never
        // read through a Rust reference.
        core::ptr::addr_of!(hypercall_page) as usize
    }

    /// Issue hypercall `nr` with up to three arguments through the page.
    fn raw_call3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
        let target = hypercall_page_addr() + (nr as usize) * 32;
        let ret: i64;
        // SAFETY: `target` is a 32-byte stub of the hypercall page, which the
        // domain builder fills before entry (Note [Guest entry]); the stub
        // saves rcx/r11 around `syscall` and returns with `ret`. Argument
        // registers are marked clobbered (Xen may scribble on them) and the
        // stub uses our stack, so no `nostack`.
        unsafe {
            core::arch::asm!(
                "call {t}",
                t = in(reg) target,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                inlateout("rdx") a3 => _,
                lateout("r10") _,
                lateout("r8") _,
                lateout("rax") ret,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        ret
    }

    /// The hypercall page as a [`crate::hypercall::Hypercall`]
    /// implementation for the typed wrappers.
    #[must_use]
    pub fn hypercalls() -> crate::hypercall::page::XenHypercallPage {
        // SAFETY: `hypercall_page` is the page the `HYPERCALL_PAGE` note
        // names, which the domain builder fills before entry (Note [Guest
        // entry]); guest kernels built on this runtime run in kernel mode.
        unsafe { crate::hypercall::page::XenHypercallPage::new(hypercall_page_addr()) }
    }

    /// The xenstore ring page (`start_info.store_mfn`) as ring memory for
    /// [`crate::xenstore::XsClient`]: its PFN is found in the p2m list
    /// (`start_info.mfn_list`), and the page is at `VIRT_BASE + pfn * 4096`
    /// in the bootstrap mapping. `None` if no PFN maps to it.
    #[must_use]
    pub fn xenstore_ring(
        start_info: &crate::abi::xen::StartInfo,
    ) -> Option<crate::ring::RawRingMem> {
        let list = start_info.mfn_list as *const u64;
        for pfn in 0..start_info.nr_pages {
            // SAFETY: the domain builder maps the p2m list (`nr_pages`
            // entries at `mfn_list`) in the bootstrap mapping for the
            // domain's whole life (XEN-PV-ABI start-of-day layout); the
            // entry is read by value.
            let mfn = unsafe { core::ptr::read_volatile(list.add(pfn as usize)) };
            if mfn == start_info.store_mfn {
                let va = super::VIRT_BASE + pfn * 4096;
                let base = core::ptr::NonNull::new(va as *mut u8)?;
                // SAFETY: the store page is part of the bootstrap mapping
                // (mapped, writable) for the domain's life, shared only with
                // xenstored, which follows the xenstore ring protocol; no
                // Rust reference to it exists.
                return Some(unsafe { crate::ring::RawRingMem::new(base, 4096) });
            }
        }
        None
    }

    /// The p2m list (PFN → MFN) the domain builder mapped at
    /// `start_info.mfn_list`, as atomics: the guest may update it.
    #[must_use]
    pub fn p2m_list(
        start_info: &'static crate::abi::xen::StartInfo,
    ) -> &'static [core::sync::atomic::AtomicU64] {
        let n = usize::try_from(start_info.nr_pages).unwrap_or(0);
        // SAFETY: the PV64 boot protocol (XEN-PV-ABI §10.2) maps `nr_pages`
        // u64 entries at `mfn_list`, page-aligned and writable, for the
        // guest's whole life; `AtomicU64` has `u64`'s size and alignment,
        // and every access through the slice is atomic.
        unsafe {
            core::slice::from_raw_parts(
                start_info.mfn_list as *const core::sync::atomic::AtomicU64,
                n,
            )
        }
    }

    /// Write bytes on the emergency console (`console_io(CONSOLEIO_write)`).
    pub fn console_write(bytes: &[u8]) {
        for chunk in bytes.chunks(1024) {
            let _ = raw_call3(
                18, // __HYPERVISOR_console_io
                0,  // CONSOLEIO_write
                chunk.len() as u64,
                chunk.as_ptr() as u64,
            );
        }
    }

    /// Shut the domain down with `reason` (`SHUTDOWN_*`).
    pub fn shutdown(reason: u32) -> ! {
        let arg = reason;
        loop {
            let _ = raw_call3(
                29, // __HYPERVISOR_sched_op
                2,  // SCHEDOP_shutdown
                core::ptr::addr_of!(arg) as u64,
                0,
            );
        }
    }

    struct Console;

    impl core::fmt::Write for Console {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            console_write(s.as_bytes());
            Ok(())
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(Console, "guest panic: {info}");
        shutdown(3) // SHUTDOWN_crash
    }

    /// The precompiled `core` was built for unwinding and references this
    /// symbol from its unwind tables; guests abort on panic and never unwind,
    /// so it is never called.
    #[unsafe(no_mangle)]
    extern "C" fn rust_eh_personality() {}

    // Note [Guest mem functions]: `rustc` lowers copies and fills to calls
    // of these C symbols, which libc would normally provide. They are written
    // with string instructions in inline assembly so the compiler cannot
    // recognise the loop and turn it back into a call to itself.

    /// C `memcpy`.
    ///
    /// # Safety
    /// `dst` and `src` are valid for `n` bytes and do not overlap.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes;
        // `rep movsb` with DF = 0 (the ABI's state) copies exactly `n` bytes.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        }
        dst
    }

    /// C `memmove`.
    ///
    /// # Safety
    /// `dst` and `src` are valid for `n` bytes (they may overlap).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dst as usize).wrapping_sub(src as usize) >= n {
            // Forward copy is safe: dst is before src or the ranges are apart.
            // SAFETY: forwarded caller guarantee; a forward `rep movsb` reads
            // each source byte before any overlapping write reaches it.
            unsafe {
                core::arch::asm!(
                    "rep movsb",
                    inout("rcx") n => _,
                    inout("rdi") dst => _,
                    inout("rsi") src => _,
                    options(nostack, preserves_flags)
                );
            }
        } else if n > 0 {
            // SAFETY: forwarded caller guarantee; copying backwards (DF = 1)
            // from the last byte handles dst overlapping the end of src. DF
            // is restored before returning, as the ABI requires.
            unsafe {
                core::arch::asm!(
                    "std",
                    "rep movsb",
                    "cld",
                    inout("rcx") n => _,
                    inout("rdi") dst.add(n - 1) => _,
                    inout("rsi") src.add(n - 1) => _,
                    options(nostack)
                );
            }
        }
        dst
    }

    /// C `memset`.
    ///
    /// # Safety
    /// `dst` is valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `dst` is valid for `n` bytes.
        unsafe {
            core::arch::asm!(
                "rep stosb",
                inout("rcx") n => _,
                inout("rdi") dst => _,
                in("al") c as u8,
                options(nostack, preserves_flags)
            );
        }
        dst
    }

    /// C `memcmp`.
    ///
    /// # Safety
    /// `a` and `b` are valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        let mut i = 0;
        while i < n {
            // SAFETY: `i < n` and the caller guarantees `n` readable bytes.
            let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
            if x != y {
                return i32::from(x) - i32::from(y);
            }
            i += 1;
        }
        0
    }

    /// C `bcmp`.
    ///
    /// # Safety
    /// `a` and `b` are valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: forwarded caller guarantee.
        unsafe { memcmp(a, b, n) }
    }
}
