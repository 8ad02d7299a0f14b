//! The machine-level part of `hello`: the event-callback entry, the
//! shared_info mapping and `rdtsc`.
//!
//! Xen enters the event callback with events masked and its bounce frame on
//! the stack: `rcx, r11, rip, cs, rflags, rsp, ss`. The entry saves the
//! registers Rust may clobber (and the SSE state), runs [`hello_upcall`],
//! restores them, pops `rcx`/`r11`, pushes the iret flags word and jumps to
//! the `iret` stub of the hypercall page, which returns to the interrupted
//! code and restores the event mask from the frame.
#![allow(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use guest_abi::abi::GuestVa;
use guest_abi::abi::mmu::{PTE_ADDR_MASK, UVMF_INVLPG};
use guest_abi::abi::xen::{SharedInfo, StartInfo};
use guest_abi::hypercall::XenHypercallPage;
use guest_abi::shared::SharedInfoPage;

core::arch::global_asm!(
    r#"
    .pushsection .text.hello_upcall_entry, "ax", @progbits
    .globl hello_upcall_entry
hello_upcall_entry:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbp
    mov rbp, rsp
    and rsp, -16
    sub rsp, 512
    fxsave64 [rsp]
    call hello_upcall
    fxrstor64 [rsp]
    mov rsp, rbp
    pop rbp
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    pop rcx
    pop r11
    push 0
    jmp hypercall_page + 23 * 32
    .popsection
    "#
);

unsafe extern "C" {
    fn hello_upcall_entry();
}

/// Address of the event-callback entry.
pub fn entry_address() -> u64 {
    hello_upcall_entry as *const () as u64
}

/// The hypercall page the domain builder filled.
pub fn hypercalls() -> XenHypercallPage {
    // SAFETY: guest-rt's `hypercall_page` is named in the HYPERCALL_PAGE
    // note, so the builder filled it; hello runs in guest kernel mode only.
    unsafe { XenHypercallPage::new(guest_abi::entry::hypercall_page_addr()) }
}

/// The TSC, for pvclock.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A page of the image whose mapping is replaced by shared_info.
#[repr(C, align(4096))]
struct Slot([u8; 4096]);
static SLOT: Slot = Slot([0; 4096]);
static SHARED: AtomicU64 = AtomicU64::new(0);

/// Map shared_info (a machine address in start_info) over [`SLOT`].
pub fn map_shared_info(si: &StartInfo) -> SharedInfoPage {
    let va = core::ptr::addr_of!(SLOT) as u64;
    let pte = (si.shared_info & PTE_ADDR_MASK) | 0x63; // present, writable, A, D
    guest_abi::mmu::update_va_mapping(&hypercalls(), GuestVa(va), pte, UVMF_INVLPG)
        .expect("map shared_info");
    SHARED.store(va, Ordering::SeqCst);
    // SAFETY: `va` now maps our shared_info page, writable, for the rest of
    // the guest's life; SLOT's own bytes are never accessed.
    unsafe { SharedInfoPage::new(NonNull::new(va as *mut SharedInfo).expect("non-null")) }
}

static HANDLER: AtomicUsize = AtomicUsize::new(0);
static HANDLER_PORT: AtomicU32 = AtomicU32::new(0);

/// Call `f(port, timer_port)` for each pending event.
pub fn set_handler(timer_port: u32, f: fn(u32, u32)) {
    HANDLER_PORT.store(timer_port, Ordering::SeqCst);
    HANDLER.store(f as usize, Ordering::SeqCst);
}

fn word(offset: usize) -> &'static AtomicU64 {
    let base = SHARED.load(Ordering::SeqCst) as usize;
    // Only reached from the upcall, registered after `map_shared_info`;
    // Xen also updates these words (pending_sel, evtchn_pending/mask) atomically.
    // SAFETY: `offset` is an aligned word of the mapped shared_info page.
    unsafe { AtomicU64::from_ptr((base + offset) as *mut u64) }
}

/// The 2-level event scan: clear `evtchn_upcall_pending`, take the selector,
/// then clear and handle each pending, unmasked port.
#[unsafe(no_mangle)]
extern "C" fn hello_upcall() {
    let base = SHARED.load(Ordering::SeqCst) as usize;
    // SAFETY: byte 0 of vcpu_info[0] (evtchn_upcall_pending), in the page
    // mapped by `map_shared_info`.
    unsafe { (base as *mut u8).write_volatile(0) };
    let h = HANDLER.load(Ordering::SeqCst);
    if h == 0 {
        return;
    }
    // SAFETY: a non-zero `HANDLER` holds a `fn(u32, u32)` stored by
    // `set_handler`.
    let f: fn(u32, u32) = unsafe { core::mem::transmute(h) };
    let mut sel = word(8).swap(0, Ordering::SeqCst);
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        let mut bits =
            word(2048 + w * 8).load(Ordering::SeqCst) & !word(2560 + w * 8).load(Ordering::SeqCst);
        while bits != 0 {
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            word(2048 + w * 8).fetch_and(!(1 << b), Ordering::SeqCst);
            f(
                u32::try_from(w).unwrap_or(0) * 64 + b,
                HANDLER_PORT.load(Ordering::SeqCst),
            );
        }
    }
}
