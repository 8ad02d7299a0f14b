//! `hv run` end to end with hand-built PV64 ELF guests: stdin reaches the
//! focused domain's `CONSOLEIO_read`, and SIGINT (Ctrl-C) stops a spinning
//! guest with its console flushed and exit status 130.

#![expect(clippy::unwrap_used, reason = "a test: a failed step should panic")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use guest_abi::abi::elfnote as n;
use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::{console as con, sched};
use iced_x86::code_asm::{CodeAssembler, eax, edi, esi, r12, r13, rax, rdx, rsi};

const BASE: u64 = 0x40_0000;
/// Data page: the second page of the image.
const DATA: u64 = BASE + 0x1000;

fn note(ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&4u32.to_le_bytes());
    v.extend_from_slice(&u32::try_from(desc.len()).unwrap().to_le_bytes());
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(b"Xen\0");
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// A PV64 ELF: one RWX `PT_LOAD` of two pages at `BASE` (`code`, then
/// `data` at `DATA`) and a `PT_NOTE` with the notes hv needs.
fn elf(code: &[u8], data: &[u8]) -> Vec<u8> {
    let mut load = code.to_vec();
    load.resize(0x1000, 0xcc);
    load.extend_from_slice(data);
    load.resize(0x2000, 0);
    let mut notes = Vec::new();
    notes.extend(note(n::XEN_ELFNOTE_GUEST_OS, b"pvsdk\0"));
    notes.extend(note(n::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"));
    notes.extend(note(n::XEN_ELFNOTE_LOADER, b"generic\0"));
    notes.extend(note(n::XEN_ELFNOTE_VIRT_BASE, &BASE.to_le_bytes()));
    notes.extend(note(n::XEN_ELFNOTE_PADDR_OFFSET, &BASE.to_le_bytes()));
    notes.extend(note(n::XEN_ELFNOTE_ENTRY, &BASE.to_le_bytes()));
    let phoff = 64u64;
    let load_off = 0x1000u64;
    let note_off = load_off + load.len() as u64;
    let mut out = vec![0u8; 0x1000];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little endian
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&BASE.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&2u16.to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    let phdrs: [(u32, u64, u64, u64, u64); 2] = [
        (1, load_off, BASE, load.len() as u64, 0x1000), // PT_LOAD
        (4, note_off, 0, notes.len() as u64, 4),        // PT_NOTE
    ];
    for (i, (ty, off, addr, size, align)) in phdrs.into_iter().enumerate() {
        let ph = &mut out[64 + 56 * i..64 + 56 * (i + 1)];
        ph[0..4].copy_from_slice(&ty.to_le_bytes());
        ph[4..8].copy_from_slice(&7u32.to_le_bytes());
        ph[8..16].copy_from_slice(&off.to_le_bytes());
        ph[16..24].copy_from_slice(&addr.to_le_bytes());
        ph[24..32].copy_from_slice(&addr.to_le_bytes());
        ph[32..40].copy_from_slice(&size.to_le_bytes());
        ph[40..48].copy_from_slice(&size.to_le_bytes());
        ph[48..56].copy_from_slice(&align.to_le_bytes());
    }
    out.extend_from_slice(&load);
    out.extend_from_slice(&notes);
    out
}

fn write_image(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hv-cli-signals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn console_write(a: &mut CodeAssembler, va: u64, len: u32) {
    a.mov(eax, nr::CONSOLE_IO).unwrap();
    a.mov(edi, con::CONSOLEIO_WRITE).unwrap();
    a.mov(esi, len).unwrap();
    a.mov(rdx, va).unwrap();
    a.syscall().unwrap();
}

fn shutdown(a: &mut CodeAssembler, reason: u32) {
    a.mov(eax, nr::SCHED_OP_COMPAT).unwrap();
    a.mov(edi, sched::SCHEDOP_SHUTDOWN).unwrap();
    a.mov(esi, reason).unwrap();
    a.syscall().unwrap();
    a.hlt().unwrap();
}

/// Kill `child` if the test takes longer than a minute (so a broken `hv`
/// fails the test instead of hanging it).
fn watchdog(child: &Child) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    tx
}

#[test]
fn sigint_stops_the_run_flushes_the_console_and_exits_130() {
    let msg = b"spinning\npartial";
    let mut a = CodeAssembler::new(64).unwrap();
    let mut spin = a.create_label();
    console_write(&mut a, DATA, u32::try_from(msg.len()).unwrap());
    a.set_label(&mut spin).unwrap();
    a.mov(rsi, rsi).unwrap();
    a.jmp(spin).unwrap();
    let img = write_image("spin", &elf(&a.assemble(BASE).unwrap(), msg));

    let mut child = Command::new(env!("CARGO_BIN_EXE_hv"))
        .args(["run", img.to_str().unwrap(), "--memory", "16M"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let done = watchdog(&child);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "spinning\n");
    // The guest is now spinning: interrupt hv.
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let _ = done.send(());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert_eq!(rest, "partial\n", "the held partial line is flushed");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[test]
fn stdin_reaches_the_guest_through_consoleio_read() {
    // Read (yielding while nothing is there, at most 20M times), echo what
    // arrived with a prefix, power off.
    let prefix = b"got: ";
    let buf = DATA + 0x100;
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    let mut got = a.create_label();
    a.mov(r13, 20_000_000u64).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(eax, nr::CONSOLE_IO).unwrap();
    a.mov(edi, con::CONSOLEIO_READ).unwrap();
    a.mov(esi, 64u32).unwrap();
    a.mov(rdx, buf).unwrap();
    a.syscall().unwrap();
    a.test(rax, rax).unwrap();
    a.jne(got).unwrap();
    a.mov(eax, nr::SCHED_OP).unwrap();
    a.mov(edi, sched::SCHEDOP_YIELD).unwrap();
    a.xor(esi, esi).unwrap();
    a.syscall().unwrap();
    a.dec(r13).unwrap();
    a.jne(top).unwrap();
    shutdown(&mut a, sched::SHUTDOWN_CRASH);
    a.set_label(&mut got).unwrap();
    a.mov(r12, rax).unwrap();
    console_write(&mut a, DATA, u32::try_from(prefix.len()).unwrap());
    a.mov(eax, nr::CONSOLE_IO).unwrap();
    a.mov(edi, con::CONSOLEIO_WRITE).unwrap();
    a.mov(rsi, r12).unwrap();
    a.mov(rdx, buf).unwrap();
    a.syscall().unwrap();
    shutdown(&mut a, sched::SHUTDOWN_POWEROFF);
    let img = write_image("echo", &elf(&a.assemble(BASE).unwrap(), prefix));

    let mut child = Command::new(env!("CARGO_BIN_EXE_hv"))
        .args(["run", img.to_str().unwrap(), "--memory", "16M"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let done = watchdog(&child);
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got: ping\n");
}
