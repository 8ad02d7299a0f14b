//! Conformance: the PV64 boot protocol and the consoles. `start_info` is
//! page-aligned and its fields are consistent with each other, with the M2P
//! and with the bootstrap page tables (cr3); the domU flags are clear;
//! the command line arrives; `console_io` writes and refuses unknown
//! commands; the console ring is drained by the backend.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use guest_abi::abi::console::XENCONS_OUT_SIZE;
use guest_abi::abi::xen::{SIF_INITDOMAIN, SIF_PRIVILEGED, StartInfo};
use guest_abi::abi::{DomId, Errno, EvtchnPort, Mfn};
use guest_abi::entry::VIRT_BASE;
use guest_abi::hypercall::Hypercall as _;
use xtf_common::arch::{self, peek};
use xtf_common::{boot_va, check, check_eq, check_errno, check_ok, finish, hc, m2p, println};

guest_abi::entry!(main);

const RING_LINE: &[u8] = b"xtf-boot: hello through the console ring\n";

fn main(si: &'static StartInfo) -> ! {
    println!("xtf-boot: start_info, console_io and the console ring");
    let h = hc();
    let si_va = core::ptr::from_ref(si) as u64;
    check_eq("start_info is page aligned", si_va % 4096, 0);
    check(
        si.magic_str().starts_with(b"xen-3.0-x86_64"),
        format_args!("magic is xen-3.0-x86_64"),
    );
    check(
        si.nr_pages >= 1024,
        format_args!("nr_pages {} (at least 4 MiB)", si.nr_pages),
    );
    check_eq(
        "domU flags clear",
        si.flags & (SIF_PRIVILEGED | SIF_INITDOMAIN),
        0,
    );
    check_eq("no module", (si.mod_start, si.mod_len), (0, 0));
    check_eq(
        "command line arrives",
        xtf_common::cmdline_u32(si, "answer"),
        Some(42),
    );

    // The p2m list and the M2P agree on every page.
    let bad = (0..si.nr_pages)
        .filter(|&pfn| m2p(Mfn(peek(si.mfn_list + pfn * 8))) != pfn)
        .count();
    check_eq("p2m (mfn_list) and M2P agree on every pfn", bad, 0);
    let si_mfn = xtf_common::va_to_mfn(si, si_va).unwrap_or_default();
    check_eq(
        "start_info VA = VIRT_BASE + pfn * 4096",
        si_va,
        VIRT_BASE + m2p(si_mfn) * 4096,
    );
    // pt_base is the VA of the running root table.
    let l4 = Mfn(arch::read_cr3() >> 12);
    check_eq(
        "pt_base maps cr3's frame",
        boot_va(si, l4),
        Some(si.pt_base),
    );
    check(
        si.nr_pt_frames >= 4,
        format_args!("nr_pt_frames {} (L4..L1)", si.nr_pt_frames),
    );
    check_eq(
        "shared_info is a page-aligned machine address",
        si.shared_info % 4096,
        0,
    );
    check(
        m2p(Mfn(si.shared_info >> 12)) >= si.nr_pages,
        format_args!("shared_info is not one of the domain's pfns"),
    );
    for (name, mfn) in [("xenstore", si.store_mfn), ("console", si.console.mfn)] {
        check(
            m2p(Mfn(mfn)) < si.nr_pages,
            format_args!("{name} ring is one of our pfns"),
        );
    }
    check(
        si.store_evtchn != 0 && si.console.evtchn != 0 && si.store_evtchn != si.console.evtchn,
        format_args!(
            "store ({}) and console ({}) ports distinct and non-zero",
            si.store_evtchn, si.console.evtchn
        ),
    );
    for port in [si.store_evtchn, si.console.evtchn] {
        let st = guest_abi::evtchn::status(&h, DomId::SELF, EvtchnPort(port));
        check(
            matches!(
                st,
                Ok((
                    guest_abi::evtchn::PortStatus::Unbound { remote: DomId(0) },
                    _
                ))
            ),
            format_args!("port {port} waits for the backend in dom0: {st:?}"),
        );
    }

    // console_io.
    check_ok(
        "CONSOLEIO_write",
        guest_abi::console::write(&h, b"xtf-boot: hello through console_io\n"),
    );
    let mut buf = [0u8; 16];
    check_eq(
        "CONSOLEIO_read with no input",
        guest_abi::console::read(&h, &mut buf),
        Ok(0),
    );
    check_errno(
        "console_io with an unknown command",
        guest_abi::abi::Errno::check(
            h.call(guest_abi::abi::hypercall_nr::CONSOLE_IO, [7, 0, 0, 0, 0]),
        ),
        Errno::ENOSYS,
    );

    // The console ring: append a line, notify, wait for the backend to
    // consume it.
    let Some(ring) = boot_va(si, Mfn(si.console.mfn)) else {
        check(
            false,
            format_args!("console ring not in the bootstrap mapping"),
        );
        finish()
    };
    let (out, cons_at, prod_at) = (ring + 1024, ring + 3080, ring + 3084);
    let word = |va: u64| u32::try_from(peek(va & !7) >> ((va & 7) * 8) & 0xffff_ffff).unwrap_or(0);
    let mut prod = word(prod_at);
    for &b in RING_LINE {
        let at = out + u64::from(prod) % XENCONS_OUT_SIZE as u64;
        let q = at & !7;
        let shift = (at & 7) * 8;
        arch::poke(q, (peek(q) & !(0xff << shift)) | (u64::from(b) << shift));
        prod = prod.wrapping_add(1);
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    let q = prod_at & !7;
    arch::poke(q, (peek(q) & 0xffff_ffff) | (u64::from(prod) << 32));
    check_ok(
        "notify the console port",
        guest_abi::evtchn::send(&h, EvtchnPort(si.console.evtchn)),
    );
    for _ in 0..100 {
        if word(cons_at) == prod {
            break;
        }
        let _ = guest_abi::sched::yield_(&h);
    }
    check_eq("backend consumed the console ring", word(cons_at), prod);
    finish()
}
