//! Conformance: guest user mode. The kernel installs a user root table
//! (`MMUEXT_NEW_USER_BASEPTR`) whose L4 slot 1 aliases slot 0, registers a
//! syscall callback and enters user mode with `HYPERVISOR_iret` (CS RPL 3).
//! In user mode: `syscall` reaches the callback (rcx/r11 as the hardware
//! sets them, rax/rdx intact) and returns with its result; `int $0x80`
//! (DPL 3) is delivered; `int $0x81` (DPL 0) and `int $0x82` (DPL 1) raise
//! #GP((n << 3) | 2); #PF carries the U bit; #UD is delivered; a hypercall
//! from user mode is not a hypercall but a syscall; the alias exists only in
//! the user table; an event pending when user mode unmasks events is
//! delivered at once. Every user→kernel entry comes with CS RPL 3 on the kernel
//! stack from `stack_switch`, and the kernel gets back with `iret` to RPL 0.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::abi::Errno;
use guest_abi::abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT, CALLBACKTYPE_SYSCALL};
use guest_abi::abi::mmu::MmuUpdate;
use guest_abi::abi::xen::StartInfo;
use guest_abi::abi::{DomId, GuestVa, Mfn};
use xtf_common::arch::{self, Entry, Op, SYS_EXIT_USER, VEC_EVENT, VEC_SYSCALL};
use xtf_common::{Frames, check, check_eq, check_ok, finish, hc, println};

guest_abi::entry!(main);

/// VA offset of the user-only alias (L4 slot 1).
const ALIAS: u64 = 1 << 39;
static TARGET: AtomicU64 = AtomicU64::new(0x5eed_f00d);
static SYSCALL_RET: AtomicU64 = AtomicU64::new(0);
static ALIAS_READ: AtomicU64 = AtomicU64::new(0);
static ALIAS_FAULTED: AtomicU64 = AtomicU64::new(1);
static PF_RECORD_EC: AtomicU64 = AtomicU64::new(0);
static USER_RSP: AtomicU64 = AtomicU64::new(0);
static HYPERCALL_RET: AtomicU64 = AtomicU64::new(0);

/// Runs in guest user mode.
extern "C" fn user_main() -> ! {
    SYSCALL_RET.store(arch::user_syscall(0x1234, 0xabcd), Ordering::SeqCst);
    USER_RSP.store(arch::expected_rsp(), Ordering::SeqCst);
    let _ = Op::Int80.run();
    let _ = Op::Int81.run();
    let _ = Op::Int82.run();
    match arch::try_read(ALIAS + core::ptr::addr_of!(TARGET) as u64) {
        Ok(v) => {
            ALIAS_READ.store(v, Ordering::SeqCst);
            ALIAS_FAULTED.store(0, Ordering::SeqCst);
        }
        Err(_) => ALIAS_FAULTED.store(1, Ordering::SeqCst),
    }
    if let Err(r) = arch::try_read(0x1000) {
        PF_RECORD_EC.store(r.error_code.unwrap_or(99), Ordering::SeqCst);
    }
    let _ = Op::Ud2.run();
    // console_io from user mode: the stub's `syscall` goes to the callback.
    let msg = b"user mode must not print this\n";
    let r = guest_abi::hypercall::Hypercall::call(
        &hc(),
        guest_abi::abi::hypercall_nr::CONSOLE_IO,
        [0, msg.len() as u64, msg.as_ptr() as u64, 0, 0],
    );
    HYPERCALL_RET.store(r.cast_unsigned(), Ordering::SeqCst);
    let _ = arch::user_syscall(SYS_EXIT_USER, 0);
    loop {
        core::hint::spin_loop();
    }
}

fn main(si: &'static StartInfo) -> ! {
    println!("xtf-user: guest user mode, syscall and user-mode traps");
    let _ = arch::map_shared_info(si);
    arch::note_shared_info_mapped();
    arch::install_trap_table();
    let h = hc();
    check_ok(
        "register the syscall callback (callback_op)",
        guest_abi::callback::register(
            &h,
            CALLBACKTYPE_SYSCALL,
            0,
            GuestVa(Entry::Syscall.address()),
        ),
    );
    xtf_common::check_errno(
        "NEW_USER_BASEPTR of a frame that does not exist",
        guest_abi::mmu::new_user_baseptr(&h, Mfn(0x7fff_ffff)),
        Errno::EINVAL,
    );

    // The user root table: slot 0 as in the kernel table, slot 1 an alias.
    let mut frames = Frames::new(si);
    let (_, user_l4) = frames.alloc();
    let kernel_l4 = Mfn(arch::read_cr3() >> 12);
    let kl4_va = xtf_common::boot_va(si, kernel_l4).unwrap_or(0);
    let e0 = arch::peek(kl4_va);
    let mut reqs = [
        MmuUpdate::normal(user_l4.0 << 12, e0),
        MmuUpdate::normal((user_l4.0 << 12) + 8, e0),
    ];
    check_ok(
        "write the user L4 while it is an ordinary frame (mmu_update)",
        guest_abi::mmu::mmu_update(&h, &mut reqs, guest_abi::mmu::FOREIGNDOM_SELF)
            .map_err(Errno::from),
    );
    check_ok(
        "MMUEXT_NEW_USER_BASEPTR",
        guest_abi::mmu::new_user_baseptr(&h, user_l4),
    );
    check(
        arch::try_read(ALIAS + core::ptr::addr_of!(TARGET) as u64).is_err(),
        format_args!("the alias is absent from the kernel table (#PF in kernel mode)"),
    );

    // An event left pending while masked is delivered as soon as the iret
    // to user mode unmasks events: a bounce from user mode.
    check_ok(
        "register the event callback",
        guest_abi::callback::register(
            &h,
            CALLBACKTYPE_EVENT,
            CALLBACKF_MASK_EVENTS,
            GuestVa(Entry::Event.address()),
        ),
    );
    let a = guest_abi::evtchn::alloc_unbound(&h, DomId::SELF);
    let b = a.and_then(|a| guest_abi::evtchn::bind_interdomain(&h, DomId::SELF, a));
    check(
        b.is_ok(),
        format_args!("loopback channel, bound port pending: {b:?}"),
    );

    arch::set_syscall_result(0x77);
    let before = arch::trap_count();
    arch::enter_user(user_main);
    // A hypercall works again: we are back in kernel mode.
    check(
        true,
        format_args!("back in kernel mode after iret to RPL 0"),
    );
    let n = arch::trap_count() - before;
    check_eq("user-mode entries into the kernel", n, 9);
    // Oldest first: event, syscall, int80, #GP, #GP, #PF, #UD, console
    // syscall, exit.
    let rec = |i: u64| arch::record(n - 1 - i);

    let e = rec(0);
    check_eq("event in user mode: upcall entered", e.vector, VEC_EVENT);
    check_eq(
        "event in user mode: interrupted rip is the user entry",
        e.rip,
        user_main as *const () as u64,
    );
    check_eq(
        "event in user mode: frame CS is the user CS (RPL 3)",
        e.cs & 0xffff,
        0xe033,
    );
    check_eq(
        "event in user mode: saved upcall mask 0, IF set",
        ((e.cs >> 32) & 0xff, (e.rflags >> 9) & 1),
        (0, 1),
    );

    let s = rec(1);
    check_eq(
        "syscall: reaches the syscall callback",
        s.vector,
        VEC_SYSCALL,
    );
    check_eq("syscall: rax (number) intact", s.rax, 0x1234);
    check_eq("syscall: rdx (argument) intact", s.rdx, 0xabcd);
    check_eq(
        "syscall: frame rip after syscall",
        s.rip,
        arch::syscall_probe().resume,
    );
    check_eq(
        "syscall: rcx = return rip",
        s.rcx,
        arch::syscall_probe().resume,
    );
    check_eq(
        "syscall: frame CS is the user CS (RPL 3)",
        s.cs & 0xffff,
        0xe033,
    );
    check_eq(
        "syscall: frame rsp is the user rsp",
        s.rsp,
        USER_RSP.load(Ordering::SeqCst),
    );
    check_eq(
        "syscall: result returned in rax",
        SYSCALL_RET.load(Ordering::SeqCst),
        0x77,
    );

    let i = rec(2);
    check_eq("int $0x80 from user (DPL 3): delivered", i.vector, 0x80);
    check_eq(
        "int $0x80 from user: rip after int",
        i.rip,
        Op::Int80.probe().resume,
    );
    check_eq("int $0x80 from user: CS RPL 3", i.cs & 3, 3);
    let g = rec(3);
    check_eq("int $0x81 from user (DPL 0): #GP", g.vector, 13);
    check_eq(
        "int $0x81 from user: error code",
        g.error_code,
        Some((0x81 << 3) | 2),
    );
    check_eq(
        "int $0x81 from user: rip at int",
        g.rip,
        Op::Int81.probe().insn,
    );
    let g = rec(4);
    check_eq("int $0x82 from user (DPL 1): #GP", g.vector, 13);
    check_eq(
        "int $0x82 from user: error code",
        g.error_code,
        Some((0x82 << 3) | 2),
    );
    let p = rec(5);
    check_eq("#PF from user: vector", p.vector, 14);
    check_eq(
        "#PF from user: error code has U (not present read)",
        p.error_code,
        Some(4),
    );
    check_eq("#PF from user: vcpu_info.arch.cr2", p.cr2, 0x1000);
    check_eq("#PF from user: CS RPL 3", p.cs & 0xffff, 0xe033);
    let u = rec(6);
    check_eq("#UD from user: vector", u.vector, 6);
    check_eq("#UD from user: rip", u.rip, Op::Ud2.probe().insn);
    let c = rec(7);
    check_eq(
        "hypercall from user mode is a syscall (rax = console_io)",
        (c.vector, c.rax),
        (VEC_SYSCALL, 18),
    );
    check_eq(
        "hypercall from user mode returns the callback's rax",
        HYPERCALL_RET.load(Ordering::SeqCst),
        0x77,
    );
    check_eq("user exit syscall", rec(8).rax, SYS_EXIT_USER);
    check_eq(
        "the alias maps the same frame in user mode",
        (
            ALIAS_FAULTED.load(Ordering::SeqCst),
            ALIAS_READ.load(Ordering::SeqCst),
        ),
        (0, 0x5eed_f00d),
    );
    check_eq(
        "#PF error code seen by user-mode probe",
        PF_RECORD_EC.load(Ordering::SeqCst),
        4,
    );
    finish()
}
