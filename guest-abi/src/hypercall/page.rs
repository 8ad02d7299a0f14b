//! The real hypercall path: `call hypercall_page + nr * 32`.
#![expect(unsafe_code)]

use super::Hypercall;
use crate::abi::errno::Errno;
use crate::abi::hypercall_nr::{IRET, STUB_SIZE, STUBS_PER_PAGE};

/// Issues hypercalls through a hypercall page Xen (or the domain builder)
/// filled with 32-byte stubs.
///
/// Holds the page's virtual address; a guest normally gets it from the
/// `XEN_ELFNOTE_HYPERCALL_PAGE` symbol its entry macro emits.
#[derive(Debug)]
pub struct XenHypercallPage {
    page_va: usize,
}

impl XenHypercallPage {
    /// Wraps the hypercall page at virtual address `page_va`.
    ///
    /// # Safety
    ///
    /// For as long as the returned value (or anything it was copied into) is
    /// used:
    /// - `page_va` is the page-aligned virtual address of a hypercall page
    ///   that Xen populated (via the ELF note or the hypercall MSR), mapped
    ///   executable in the current address space;
    /// - calls are made from guest *kernel* mode (a `syscall` from guest user
    ///   mode is not a hypercall);
    /// - callers of [`Hypercall::call`] pass pointer arguments that are valid
    ///   for the access Xen will make, as the typed wrappers do.
    #[must_use]
    pub const unsafe fn new(page_va: usize) -> Self {
        Self { page_va }
    }

    /// The page's virtual address.
    #[must_use]
    pub const fn page_va(&self) -> usize {
        self.page_va
    }

    /// Address of hypercall `nr`'s stub.
    #[must_use]
    pub const fn stub_va(&self, nr: u32) -> usize {
        self.page_va + nr as usize * STUB_SIZE
    }
}

impl Hypercall for XenHypercallPage {
    fn call(&self, nr: u32, args: [u64; 5]) -> i64 {
        // The iret stub never returns to its caller; it needs a hand-built
        // frame and `jmp`, not `call`. Out-of-page numbers have no stub.
        if nr == IRET || nr as usize >= STUBS_PER_PAGE {
            return Errno::ENOSYS.to_ret();
        }
        let target = self.stub_va(nr);
        let ret: i64;
        // SAFETY: `target` is a stub inside the hypercall page that
        // `XenHypercallPage::new`'s contract says Xen populated and mapped
        // executable. The stub pushes/pops rcx and r11 (so the stack is used:
        // no `nostack`), executes `syscall` with eax = nr and returns. We
        // declare every register Xen may change: rax (result), rcx/r11
        // (syscall), and all five argument registers (Xen may scribble on
        // them or rewrite them for continuations). Memory is not marked
        // `nomem`/`readonly`: Xen reads and writes the buffers the pointer
        // arguments name, which the caller keeps borrowed across this call.
        unsafe {
            core::arch::asm!(
                "call {target}",
                target = in(reg) target,
                inout("rdi") args[0] => _,
                inout("rsi") args[1] => _,
                inout("rdx") args[2] => _,
                inout("r10") args[3] => _,
                inout("r8") args[4] => _,
                lateout("rax") ret,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        ret
    }
}
