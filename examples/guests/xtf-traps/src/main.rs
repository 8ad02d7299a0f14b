//! Conformance: exceptions and software interrupts raised in guest kernel
//! mode are bounced through the trap table (`set_trap_table`) with Xen's
//! frame: the right vector, error code, faulting or next rip, CS with RPL 0
//! and the saved upcall mask in bits 39:32, RFLAGS.IF = !mask, the
//! interrupted rsp and SS; #PF puts the fault address in
//! `vcpu_info.arch.cr2` and clears the U bit; `int n` is delivered only
//! through gates whose DPL allows guest kernel code (1..3), otherwise #GP
//! with the IDT error code `(n << 3) | 2`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use guest_abi::abi::xen::StartInfo;
use xtf_common::arch::{self, Op, TrapRecord};
use xtf_common::{check, check_eq, finish, println};

guest_abi::entry!(main);

/// A page this guest maps read-only (the builder maps the whole image
/// writable) for the write-protection #PF.
static RO_PAGE: arch::PageSlot = arch::PageSlot::new();

fn frame_ok(name: &str, r: &TrapRecord, rsp: u64) {
    let mask = u64::from(arch::vcpu0().upcall_mask());
    check_eq(&concat_name(name, "CS has RPL 0"), r.cs & 0xffff, 0xe030);
    check_eq(
        &concat_name(name, "saved upcall mask in CS[39:32]"),
        (r.cs >> 32) & 0xff,
        mask,
    );
    check_eq(
        &concat_name(name, "RFLAGS.IF = !saved mask"),
        (r.rflags >> 9) & 1,
        mask ^ 1,
    );
    check_eq(&concat_name(name, "interrupted rsp"), r.rsp, rsp);
    check_eq(&concat_name(name, "SS"), r.ss, 0xe02b);
}

/// `"name: what"` in a small fixed buffer.
fn concat_name(name: &str, what: &str) -> Name {
    let mut n = Name {
        buf: [0; 96],
        len: 0,
    };
    for b in name.bytes().chain(": ".bytes()).chain(what.bytes()) {
        if let Some(s) = n.buf.get_mut(n.len) {
            *s = b;
            n.len += 1;
        }
    }
    n
}

struct Name {
    buf: [u8; 96],
    len: usize,
}

impl core::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("?")
    }
}

fn exception(op: Op, name: &str, vector: u64, ec: Option<u64>, at_insn: bool) {
    let p = op.probe();
    let (rec, rsp) = op.run();
    let Some(r) = rec else {
        check(false, format_args!("{name}: not delivered"));
        return;
    };
    check_eq(&concat_name(name, "vector"), r.vector, vector);
    check_eq(&concat_name(name, "error code"), r.error_code, ec);
    let rip = if at_insn { p.insn } else { p.resume };
    check_eq(&concat_name(name, "rip"), r.rip, rip);
    frame_ok(name, &r, rsp);
}

fn main(si: &'static StartInfo) -> ! {
    println!("xtf-traps: exception and int n delivery in guest kernel mode");
    let _ = arch::map_shared_info(si);
    arch::note_shared_info_mapped();
    arch::install_trap_table();

    exception(Op::DivZero, "#DE (div by 0)", 0, None, true);
    exception(Op::Ud2, "#UD (ud2)", 6, None, true);
    exception(
        Op::NonCanonical,
        "#GP (non-canonical load)",
        13,
        Some(0),
        true,
    );
    exception(Op::Int3, "#BP (int3, trap)", 3, None, false);

    // #PF, not present, read: error code 0 (no P, no W, no U in kernel mode).
    let unmapped = 0x1000;
    match arch::try_read(unmapped) {
        Ok(v) => {
            check(
                false,
                format_args!("#PF read of {unmapped:#x}: read {v:#x}"),
            );
        }
        Err(r) => {
            check_eq("#PF (not present read): vector", r.vector, 14);
            check_eq("#PF (not present read): error code", r.error_code, Some(0));
            check_eq(
                "#PF (not present read): rip",
                r.rip,
                arch::read_probe().insn,
            );
            check_eq(
                "#PF (not present read): vcpu_info.arch.cr2",
                r.cr2,
                unmapped,
            );
            frame_ok("#PF (not present read)", &r, arch::expected_rsp());
        }
    }
    // #PF, protection, write: error code P|W.
    let ro = RO_PAGE.va();
    arch::poke(ro, 0x1234_5678);
    let mfn = xtf_common::va_to_mfn(si, ro).map_or(0, |m| m.0);
    let r = guest_abi::mmu::update_va_mapping(
        &xtf_common::hc(),
        guest_abi::abi::GuestVa(ro),
        (mfn << 12) | 0x21, // P|A, read-only
        guest_abi::abi::mmu::UVMF_INVLPG,
    );
    check(r.is_ok(), format_args!("remap a page read-only: {r:?}"));
    match arch::try_write(ro, 1) {
        Ok(()) => {
            check(
                false,
                format_args!("#PF write to read-only {ro:#x}: succeeded"),
            );
        }
        Err(r) => {
            check_eq("#PF (read-only write): vector", r.vector, 14);
            check_eq("#PF (read-only write): error code", r.error_code, Some(3));
            check_eq(
                "#PF (read-only write): rip",
                r.rip,
                arch::write_probe().insn,
            );
            check_eq("#PF (read-only write): vcpu_info.arch.cr2", r.cr2, ro);
            frame_ok("#PF (read-only write)", &r, arch::expected_rsp());
        }
    }
    check_eq("read-only data unchanged", arch::peek(ro), 0x1234_5678);

    // Software interrupts from kernel mode: DPL 3 and DPL 1 gates deliver,
    // a DPL 0 gate raises #GP((n << 3) | 2) at the `int`.
    exception(Op::Int80, "int $0x80 (DPL 3 gate)", 0x80, None, false);
    exception(Op::Int82, "int $0x82 (DPL 1 gate)", 0x82, None, false);
    exception(
        Op::Int81,
        "int $0x81 (DPL 0 gate)",
        13,
        Some((0x81 << 3) | 2),
        true,
    );

    // The same with events enabled: the saved mask (0) and IF follow.
    arch::vcpu0().set_upcall_mask(0);
    exception(Op::Ud2, "#UD with events enabled", 6, None, true);
    check_eq(
        "#UD gate with the mask flag: events masked in the handler",
        arch::record(0).mask,
        1,
    );
    let _ = Op::Int80.run();
    check_eq(
        "int $0x80 gate without the mask flag: events stay enabled in the handler",
        arch::record(0).mask,
        0,
    );
    check_eq(
        "handler returned with events enabled again",
        arch::vcpu0().upcall_mask(),
        0,
    );
    arch::vcpu0().set_upcall_mask(1);
    let bad = [
        guest_abi::abi::callback::TrapInfo::new(0x83, 3, false, 0x8000_0000_0000_0000),
        guest_abi::abi::callback::TrapInfo::new(0, 0, false, 0),
    ];
    xtf_common::check_errno(
        "set_trap_table with a non-canonical handler",
        guest_abi::callback::set_trap_table(&xtf_common::hc(), &bad),
        guest_abi::abi::Errno::EINVAL,
    );
    finish()
}
