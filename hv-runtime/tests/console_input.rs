//! Console input reaches the focused domain (through its PV console ring or
//! `CONSOLEIO_read`) from an injected source, other domains get none, and
//! the stop flag (Ctrl-C in `hv`) ends a run with the consoles flushed.

#![expect(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::{console as con, sched};
use hv_cpu::mem::MachineAddr;
use hv_cpu::state::reg;
use hv_runtime::bench::{VIRT_BASE, synthetic_image};
use hv_runtime::console::ThreadedInput;
use hv_runtime::domain::builder::BootLayout;
use hv_runtime::hv::{DomainConfig, EXIT_INTERRUPTED, Hypervisor};
use hv_runtime::machine::DomId;
use iced_x86::code_asm::{
    CodeAssembler, byte_ptr, dword_ptr, eax, edi, esi, r12, r13, rax, rbx, rdx, rsi,
};

const MEMORY: u64 = 16 << 20;
/// The page after the code: scratch data for the test guests.
const DATA_VA: u64 = VIRT_BASE + 4096;

fn shutdown(a: &mut CodeAssembler, reason: u32) {
    a.mov(eax, nr::SCHED_OP_COMPAT).unwrap();
    a.mov(edi, sched::SCHEDOP_SHUTDOWN).unwrap();
    a.mov(esi, reason).unwrap();
    a.syscall().unwrap();
    a.hlt().unwrap();
}

/// Console ring VA of a synthetic-image domain of `MEMORY` bytes.
fn ring_va() -> u64 {
    let layout = BootLayout::compute(&synthetic_image(Vec::new()), MEMORY / 4096).unwrap();
    layout.va(layout.console_pfn)
}

fn add_domain(hv: &mut Hypervisor, name: &str, code: Vec<u8>) -> DomId {
    let id = hv
        .create_domain(
            &synthetic_image(code),
            &DomainConfig {
                name: name.into(),
                memory: MEMORY,
                vcpus: 1,
                cmdline: String::new(),
            },
        )
        .unwrap();
    // No timer ticks: the tests' guests never enable events anyway.
    for v in &mut hv.domains.get_mut(&id).unwrap().vcpus {
        v.periodic = None;
    }
    id
}

fn hypervisor(domains: usize, out: Box<dyn Write + Send>) -> Hypervisor {
    Hypervisor::new(Hypervisor::frames_for(&vec![MEMORY; domains]), out).unwrap()
}

fn data_addr(hv: &Hypervisor, dom: DomId) -> MachineAddr {
    hv.domains[&dom].p2m[1].addr()
}

fn r12_of(hv: &Hypervisor, dom: DomId) -> i64 {
    hv.domains[&dom].vcpus[0].cpu.gpr[reg::R12].cast_signed()
}

/// A guest that writes a prompt (`>`) to its console ring, waits (yielding,
/// at most 10 000 times) until `n` bytes are in the ring, consumes them and
/// powers off; crashes otherwise.
fn ring_reader(n: u32) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    let mut got = a.create_label();
    a.mov(rbx, ring_va()).unwrap();
    a.mov(byte_ptr(rbx + 1024), u32::from(b'>')).unwrap(); // out[0]
    a.mov(dword_ptr(rbx + 3084), 1u32).unwrap(); // out_prod
    a.mov(r13, 10_000u64).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(eax, dword_ptr(rbx + 3076)).unwrap(); // in_prod
    a.sub(eax, dword_ptr(rbx + 3072)).unwrap(); // - in_cons
    a.cmp(eax, n).unwrap();
    a.jae(got).unwrap();
    a.mov(eax, nr::SCHED_OP).unwrap();
    a.mov(edi, sched::SCHEDOP_YIELD).unwrap();
    a.xor(esi, esi).unwrap();
    a.syscall().unwrap();
    a.dec(r13).unwrap();
    a.jne(top).unwrap();
    shutdown(&mut a, sched::SHUTDOWN_CRASH);
    a.set_label(&mut got).unwrap();
    a.mov(eax, dword_ptr(rbx + 3076)).unwrap();
    a.mov(dword_ptr(rbx + 3072), eax).unwrap();
    shutdown(&mut a, sched::SHUTDOWN_POWEROFF);
    a.assemble(VIRT_BASE).unwrap()
}

/// A guest that makes one `CONSOLEIO_read` of up to 64 bytes into its data
/// page, keeps the result in r12 and powers off.
fn conio_reader() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(eax, nr::CONSOLE_IO).unwrap();
    a.mov(edi, con::CONSOLEIO_READ).unwrap();
    a.mov(esi, 64u32).unwrap();
    a.mov(rdx, DATA_VA).unwrap();
    a.syscall().unwrap();
    a.mov(r12, rax).unwrap();
    shutdown(&mut a, sched::SHUTDOWN_POWEROFF);
    a.assemble(VIRT_BASE).unwrap()
}

#[test]
fn focused_domain_ring_receives_input_and_its_console_event() {
    let mut hv = hypervisor(1, Box::new(std::io::sink()));
    let dom = add_domain(&mut hv, "reader", ring_reader(6));
    let input = ThreadedInput::spawn(std::io::Cursor::new(b"hello\n".to_vec())).unwrap();
    assert_eq!(input.wait_for(6, Duration::from_secs(10)), 6);
    hv.input = Some(Box::new(input));
    let out = hv.run();
    assert_eq!(out.exit_status(), 0, "guest saw the bytes before giving up");
    let d = &hv.domains[&dom];
    let ring = d.console.ring.addr().0;
    let mut got = [0u8; 6];
    hv.mem.read(MachineAddr(ring), &mut got).unwrap();
    assert_eq!(&got, b"hello\n");
    assert_eq!(hv.mem.read_u32(MachineAddr(ring + 3076)).unwrap(), 6);
    assert_eq!(hv.mem.read_u32(MachineAddr(ring + 3072)).unwrap(), 6);
    // evtchn_pending (shared_info + 2048) has the console port's bit.
    let pending = hv
        .mem
        .read_u64(MachineAddr(d.shared_info.addr().0 + 2048))
        .unwrap();
    assert_ne!(pending & (1 << d.console.port), 0);
}

#[test]
fn ring_is_not_filled_before_the_domain_writes_to_it() {
    // conio_reader never touches its ring: input stays in the source for
    // CONSOLEIO_read instead of vanishing into the ring.
    let mut hv = hypervisor(1, Box::new(std::io::sink()));
    let dom = add_domain(&mut hv, "quiet", conio_reader());
    hv.input = Some(Box::new(b"k".iter().copied().collect::<VecDeque<u8>>()));
    assert_eq!(hv.run().exit_status(), 0);
    let ring = hv.domains[&dom].console.ring.addr().0;
    assert_eq!(hv.mem.read_u32(MachineAddr(ring + 3076)).unwrap(), 0);
    assert_eq!(r12_of(&hv, dom), 1);
}

#[test]
fn ring_input_beyond_the_ring_size_waits_for_room_and_is_not_lost() {
    // 1500 bytes > XENCONS_IN_SIZE (1024): the ring takes 1024, the rest
    // stays in the source until the guest consumes.
    let mut hv = hypervisor(1, Box::new(std::io::sink()));
    let dom = add_domain(&mut hv, "reader", ring_reader(1024));
    let data: VecDeque<u8> = (0..1500u32).map(|i| i.to_le_bytes()[0]).collect();
    hv.input = Some(Box::new(data));
    assert_eq!(hv.run().exit_status(), 0);
    let ring = hv.domains[&dom].console.ring.addr().0;
    assert_eq!(hv.mem.read_u32(MachineAddr(ring + 3076)).unwrap(), 1024);
    // The domain is down: nothing more is fed; 476 bytes remain unread.
    let mut rest = [0u8; 2048];
    let n = hv.input.as_mut().unwrap().read_available(&mut rest);
    assert_eq!(n, 476);
    assert_eq!(rest[0], 1024u32.to_le_bytes()[0]);
}

#[test]
fn consoleio_read_returns_available_input_to_the_focused_domain_only() {
    let mut hv = hypervisor(2, Box::new(std::io::sink()));
    let d1 = add_domain(&mut hv, "one", conio_reader());
    let d2 = add_domain(&mut hv, "two", conio_reader());
    hv.input = Some(Box::new(b"abc".iter().copied().collect::<VecDeque<u8>>()));
    assert_eq!(hv.run().exit_status(), 0);
    assert_eq!(r12_of(&hv, d1), 3);
    let mut got = [0u8; 3];
    hv.mem.read(data_addr(&hv, d1), &mut got).unwrap();
    assert_eq!(&got, b"abc");
    assert_eq!(r12_of(&hv, d2), 0, "unfocused domain gets no input");
    assert!(hv.domains[&d1].console.conio_reader);
}

#[test]
fn consoleio_read_goes_to_the_domain_named_as_console() {
    let mut hv = hypervisor(2, Box::new(std::io::sink()));
    let d1 = add_domain(&mut hv, "one", conio_reader());
    let d2 = add_domain(&mut hv, "two", conio_reader());
    hv.focus = d2;
    hv.input = Some(Box::new(b"xy".iter().copied().collect::<VecDeque<u8>>()));
    assert_eq!(hv.run().exit_status(), 0);
    assert_eq!(r12_of(&hv, d1), 0);
    assert_eq!(r12_of(&hv, d2), 2);
}

#[test]
fn consoleio_read_with_no_input_returns_zero_without_blocking() {
    let mut hv = hypervisor(1, Box::new(std::io::sink()));
    let d1 = add_domain(&mut hv, "one", conio_reader());
    let input = ThreadedInput::spawn(std::io::empty()).unwrap();
    hv.input = Some(Box::new(input));
    assert_eq!(hv.run().exit_status(), 0);
    assert_eq!(r12_of(&hv, d1), 0);
}

/// Output that sets `stop` once it has seen a whole line.
struct StopAfterLine {
    seen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Write for StopAfterLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self.seen.lock().unwrap();
        s.extend_from_slice(buf);
        if s.contains(&b'\n') {
            self.stop.store(true, Ordering::Relaxed);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn stop_flag_ends_a_spinning_guest_and_flushes_its_partial_line() {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut hv = hypervisor(
        1,
        Box::new(StopAfterLine {
            seen: Arc::clone(&seen),
            stop: Arc::clone(&stop),
        }),
    );
    let msg = b"line\npartial";
    let mut a = CodeAssembler::new(64).unwrap();
    let mut spin = a.create_label();
    a.mov(eax, nr::CONSOLE_IO).unwrap();
    a.mov(edi, con::CONSOLEIO_WRITE).unwrap();
    a.mov(esi, u32::try_from(msg.len()).unwrap()).unwrap();
    a.mov(rdx, DATA_VA).unwrap();
    a.syscall().unwrap();
    a.set_label(&mut spin).unwrap();
    a.mov(rsi, rsi).unwrap();
    a.jmp(spin).unwrap();
    let dom = add_domain(&mut hv, "spin", a.assemble(VIRT_BASE).unwrap());
    hv.mem.write(data_addr(&hv, dom), msg).unwrap();
    hv.stop = Some(stop);
    let out = hv.run();
    assert!(out.interrupted);
    assert_eq!(out.exit_status(), EXIT_INTERRUPTED);
    assert_eq!(out.domains, vec![(dom, "spin".to_owned(), None)]);
    assert_eq!(&*seen.lock().unwrap(), b"line\npartial\n");
}
