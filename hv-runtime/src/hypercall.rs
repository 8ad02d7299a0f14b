//! The exit handler and the hypercall table.
//!
//! Every exit of a vCPU backend lands in [`handle_exit`]: a `syscall` from
//! the guest kernel is a hypercall (number in `rax`, arguments in `rdi`,
//! `rsi`, `rdx`, `r10`, `r8`; result in `rax`), one from guest user mode is
//! bounced to the kernel's syscall callback, faults are emulated (privileged
//! instructions, writes to read-only L1 tables) or bounced through the guest
//! trap table. Each hypercall copies its arguments from guest memory once
//! (through [`crate::guestmem`]), validates them, then acts; a guest only
//! ever sees an errno or, for a broken kernel stack, its own crash.

use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::{console as con, evtchn as ev, sched, vcpu as vo, version as ver};
use hv_cpu::mem::{MachineAddr, Mfn};
use hv_cpu::state::{reg, sreg};
use hv_cpu::{Exit, FlushScope};
use zerocopy::{FromBytes, IntoBytes};

use crate::guestmem::{self, GuestFault};
use crate::hv::{Hypervisor, RunState};
use crate::machine::{DomId, Owner, PageType};
use crate::mm::{Mm, MmLayout, errno, pte};
use crate::vcpu::{self, Bounce, TrapEntry};

/// What the run loop does after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep running this vCPU.
    Continue,
    /// End this vCPU's slice (yield, block, shutdown, crash).
    Stop,
}

/// Largest batch one hypercall invocation processes before it is restarted
/// as a continuation (so a huge batch cannot monopolise the host CPU).
pub const BATCH: u32 = 1024;
/// `mmu_update` requests copied from the guest at a time.
const MMU_REQ_CHUNK: usize = 64;
/// `mmu_update`'s continuation marker in `count`.
const MMU_UPDATE_PREEMPTED: u64 = 0x8000_0000;
/// `DOMID_SELF`.
const DOMID_SELF: u64 = 0x7ff0;

/// Handle one backend exit of vCPU `v` of `dom`.
pub fn handle_exit(hv: &mut Hypervisor, dom: DomId, v: usize, exit: Exit) -> Next {
    match exit {
        Exit::Deadline => Next::Continue,
        Exit::Halt => block(hv, dom, v),
        Exit::Syscall => {
            let kernel = vcpu_ref(hv, dom, v).is_some_and(|x| x.pv.kernel_mode);
            if kernel {
                hypercall(hv, dom, v)
            } else {
                user_syscall(hv, dom, v)
            }
        }
        Exit::SoftInt(n) => soft_int(hv, dom, v, n),
        Exit::Exception {
            vector,
            error_code,
            cr2,
        } => exception(hv, dom, v, vector, error_code, cr2),
    }
}

fn vcpu_ref(hv: &Hypervisor, dom: DomId, v: usize) -> Option<&crate::hv::Vcpu> {
    hv.domains.get(&dom).and_then(|d| d.vcpus.get(v))
}

/// Bounce `what` into the guest kernel, crashing the domain if impossible.
fn deliver(hv: &mut Hypervisor, dom: DomId, v: usize, what: Bounce) -> Next {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return Next::Stop;
    };
    match vcpu::bounce(&mut vc.cpu, &mut vc.pv, &hv.mem, &hv.ft, what) {
        Ok(()) => Next::Continue,
        Err(e) => {
            hv.crash(dom, format!("cannot deliver {what:?}: {e}"));
            Next::Stop
        }
    }
}

fn user_syscall(hv: &mut Hypervisor, dom: DomId, v: usize) -> Next {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return Next::Stop;
    };
    if vc.pv.syscall_callback == 0 {
        // No syscall callback: Xen injects #UD at the syscall instruction.
        vc.cpu.rip = vc.cpu.rip.wrapping_sub(2);
        return deliver(
            hv,
            dom,
            v,
            Bounce::Trap {
                vector: 6,
                error_code: None,
            },
        );
    }
    // The hardware would have put the return RIP/RFLAGS in RCX/R11.
    vc.cpu.gpr[reg::RCX] = vc.cpu.rip;
    vc.cpu.gpr[reg::R11] = vc.cpu.rflags;
    deliver(hv, dom, v, Bounce::Syscall)
}

fn soft_int(hv: &mut Hypervisor, dom: DomId, v: usize, n: u8) -> Next {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return Next::Stop;
    };
    let t = vc.pv.traps[usize::from(n)];
    let need = if vc.pv.kernel_mode { 1 } else { 3 };
    if t.flags & 3 >= need && t.address != 0 {
        deliver(
            hv,
            dom,
            v,
            Bounce::Trap {
                vector: n,
                error_code: None,
            },
        )
    } else {
        // As on hardware: #GP with the IDT-vector error code, at the `int`.
        vc.cpu.rip = vc.cpu.rip.wrapping_sub(2);
        deliver(
            hv,
            dom,
            v,
            Bounce::Trap {
                vector: 13,
                error_code: Some((u32::from(n) << 3) | 2),
            },
        )
    }
}

fn exception(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    vector: u8,
    error_code: Option<u32>,
    cr2: u64,
) -> Next {
    match vector {
        6 if crate::emulate::forced_cpuid(hv, dom, v) => return Next::Continue,
        13 if error_code == Some(0) && crate::emulate::privileged_op(hv, dom, v) => {
            return Next::Continue;
        }
        14 if error_code.is_some_and(|e| e & 3 == 3) && crate::emulate::ptwr(hv, dom, v, cr2) => {
            return Next::Continue;
        }
        _ => {}
    }
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return Next::Stop;
    };
    let mut ec = if vcpu::has_error_code(vector) {
        Some(error_code.unwrap_or(0))
    } else {
        None
    };
    if vector == 14 {
        // cr2 goes to vcpu_info.arch.cr2; the U bit says which guest mode.
        let _ = hv.mem.write_u64(MachineAddr(vc.pv.vcpu_info.0 + 16), cr2);
        vc.cpu.cr2 = cr2;
        ec = ec.map(|e| if vc.pv.kernel_mode { e & !4 } else { e | 4 });
    }
    deliver(
        hv,
        dom,
        v,
        Bounce::Trap {
            vector,
            error_code: ec,
        },
    )
}

fn block(hv: &mut Hypervisor, dom: DomId, v: usize) -> Next {
    let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
        return Next::Stop;
    };
    // SCHEDOP_block re-enables events, then sleeps unless one is deliverable.
    let _ = vc.pv.set_upcall_mask(&hv.mem, false);
    if !vc.pv.upcall_deliverable(&hv.mem) {
        vc.state = RunState::Blocked;
    }
    Next::Stop
}

/// The result of one hypercall.
enum Ret {
    /// Put this in `rax`.
    Val(i64),
    /// Put this in `rax` and end the slice.
    ValStop(i64),
    /// `rax` was set by the call itself (iret).
    Done,
    /// The call did part of its work and must be re-issued with these
    /// arguments (a continuation: the guest re-executes the `syscall`, or
    /// the multicall re-runs this entry).
    Preempted([u64; 5]),
    /// The domain was crashed or shut down.
    Stop,
}

fn neg(e: i32) -> i64 {
    -i64::from(e)
}

const EFAULT: i64 = -14;
const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;
const EPERM: i64 = -1;

impl From<GuestFault> for Ret {
    fn from(_: GuestFault) -> Self {
        Ret::Val(EFAULT)
    }
}

fn hypercall(hv: &mut Hypervisor, dom: DomId, v: usize) -> Next {
    let Some(vc) = vcpu_ref(hv, dom, v) else {
        return Next::Stop;
    };
    let g = &vc.cpu.gpr;
    let op = g[reg::RAX];
    let args = [
        g[reg::RDI],
        g[reg::RSI],
        g[reg::RDX],
        g[reg::R10],
        g[reg::R8],
    ];
    let ret = dispatch(hv, dom, v, op, args, false);
    if tracing::enabled!(tracing::Level::DEBUG) {
        let r = match &ret {
            Ret::Val(x) | Ret::ValStop(x) => format!("{x}"),
            Ret::Done => "(frame)".into(),
            Ret::Preempted(_) => "(continued)".into(),
            Ret::Stop => "(stopped)".into(),
        };
        tracing::debug!(dom, vcpu = v, op, a0 = format_args!("{:#x}", args[0]), a1 = format_args!("{:#x}", args[1]), a2 = format_args!("{:#x}", args[2]), a3 = format_args!("{:#x}", args[3]), a4 = format_args!("{:#x}", args[4]), ret = %r, "hypercall");
    }
    let set = |hv: &mut Hypervisor, x: i64| {
        if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
            vc.cpu.gpr[reg::RAX] = x.cast_unsigned();
        }
    };
    match ret {
        Ret::Val(x) => {
            set(hv, x);
            Next::Continue
        }
        Ret::ValStop(x) => {
            set(hv, x);
            Next::Stop
        }
        Ret::Done => Next::Continue,
        Ret::Preempted(a) => {
            // Continuation: re-execute the `syscall` with the rest of the
            // work, after the run loop had a chance to switch vCPUs.
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                let g = &mut vc.cpu.gpr;
                g[reg::RAX] = op;
                g[reg::RDI] = a[0];
                g[reg::RSI] = a[1];
                g[reg::RDX] = a[2];
                g[reg::R10] = a[3];
                g[reg::R8] = a[4];
                vc.cpu.rip = vc.cpu.rip.wrapping_sub(2);
            }
            Next::Continue
        }
        Ret::Stop => Next::Stop,
    }
}

fn cr3(hv: &Hypervisor, dom: DomId, v: usize) -> u64 {
    vcpu_ref(hv, dom, v).map_or(0, |x| x.cpu.cr3)
}

fn read<T: FromBytes + IntoBytes>(
    hv: &Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
) -> Result<T, GuestFault> {
    guestmem::read_obj(&hv.mem, cr3(hv, dom, v), va)
}

fn write<T: IntoBytes + zerocopy::Immutable>(
    hv: &Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
    val: &T,
) -> Result<(), GuestFault> {
    guestmem::copy_to_guest(&hv.mem, &hv.ft, cr3(hv, dom, v), va, val.as_bytes())
}

fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Start of the hypervisor's part of every address space (L4 slots
/// 256–271).
const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End (exclusive) of the hypervisor's part.
const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;

/// Whether `[va, va + len)` is canonical and outside the hypervisor's area
/// (Xen's `access_ok` for PV64 guests).
fn guest_range(va: u64, len: u64) -> bool {
    let Some(last) = va.checked_add(len.saturating_sub(1)) else {
        return false;
    };
    let low_half = last < HYPERVISOR_VIRT_START;
    let high_half = va >= HYPERVISOR_VIRT_END;
    canonical(va) && canonical(last) && (low_half || high_half)
}

fn dispatch(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    op: u64,
    a: [u64; 5],
    in_multicall: bool,
) -> Ret {
    let Ok(op) = u32::try_from(op) else {
        return Ret::Val(ENOSYS);
    };
    match op {
        nr::CONSOLE_IO => console_io(hv, dom, v, a),
        nr::SCHED_OP => sched_op(hv, dom, v, a[0], a[1]),
        nr::SCHED_OP_COMPAT => match a[0] {
            0 | 1 => sched_op(hv, dom, v, a[0], 0),
            // The compat shutdown passes the reason by value.
            2 => shutdown(hv, dom, a[1]),
            _ => Ret::Val(ENOSYS),
        },
        nr::XEN_VERSION => xen_version(hv, dom, v, a[0], a[1]),
        nr::SET_CALLBACKS => set_callbacks(hv, dom, v, a),
        nr::CALLBACK_OP => callback_op(hv, dom, v, a[0], a[1]),
        nr::SET_TRAP_TABLE => set_trap_table(hv, dom, v, a[0]),
        nr::STACK_SWITCH => with_vcpu(hv, dom, v, |vc| {
            vc.pv.kernel_ss = a[0] | 3;
            vc.pv.kernel_sp = a[1];
            0
        }),
        nr::FPU_TASKSWITCH => with_vcpu(hv, dom, v, |vc| {
            vc.cpu.ts = a[0] != 0;
            0
        }),
        nr::SET_SEGMENT_BASE => set_segment_base(hv, dom, v, a[0], a[1]),
        nr::IRET => {
            if in_multicall {
                return Ret::Val(EINVAL);
            }
            let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
                return Ret::Stop;
            };
            match vcpu::iret(&mut vc.cpu, &mut vc.pv, &hv.mem) {
                Ok(()) => Ret::Done,
                Err(e) => {
                    hv.crash(dom, format!("bad iret: {e}"));
                    Ret::Stop
                }
            }
        }
        nr::SET_TIMER_OP => {
            let now = hv.clock.now_ns();
            let t = a[0];
            with_vcpu(hv, dom, v, |vc| {
                vc.singleshot = match t {
                    0 => None,
                    t if t.cast_signed() < 0 || t > now.saturating_add(1 << 50) => {
                        Some(now + 100_000_000)
                    }
                    t => Some(t),
                };
                0
            })
        }
        nr::VCPU_OP => vcpu_op(hv, dom, v, a),
        nr::EVENT_CHANNEL_OP => evtchn_op(hv, dom, v, a[0], a[1]),
        nr::EVENT_CHANNEL_OP_COMPAT => match read::<[u32; 8]>(hv, dom, v, a[0]) {
            Ok(w) => evtchn_op(hv, dom, v, u64::from(w[0]), a[0] + 4),
            Err(f) => f.into(),
        },
        nr::MMU_UPDATE => mmu_update(hv, dom, v, a),
        nr::MMUEXT_OP => mmuext_op(hv, dom, v, a),
        nr::UPDATE_VA_MAPPING => update_va_mapping(hv, dom, v, a[0], a[1], a[2], DOMID_SELF),
        nr::UPDATE_VA_MAPPING_OTHERDOMAIN => update_va_mapping(hv, dom, v, a[0], a[1], a[2], a[3]),
        nr::VM_ASSIST => vm_assist(hv, dom, a[0], a[1]),
        nr::MEMORY_OP => Ret::Val(crate::memory::memory_op(hv, dom, v, a[0], a[1])),
        nr::GRANT_TABLE_OP => {
            crate::gnttab::grant_table_op(hv, dom, v, a, in_multicall).map_or(Ret::Done, Ret::Val)
        }
        nr::MULTICALL => {
            if in_multicall {
                Ret::Val(EINVAL)
            } else {
                multicall(hv, dom, v, a[0], a[1])
            }
        }
        nr::PHYSDEV_OP => physdev_op(hv, dom, v, a[0], a[1]),
        nr::SET_DEBUGREG => set_debugreg(hv, dom, v, a[0], a[1]),
        nr::GET_DEBUGREG => match (usize::try_from(a[0]), vcpu_ref(hv, dom, v)) {
            (Ok(r @ 0..=7), Some(vc)) if r != 4 && r != 5 => {
                Ret::Val(vc.pv.debugreg[r].cast_signed())
            }
            _ => Ret::Val(EINVAL),
        },
        _ => Ret::Val(ENOSYS),
    }
}

fn with_vcpu(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    f: impl FnOnce(&mut crate::hv::Vcpu) -> i64,
) -> Ret {
    match hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
        Some(vc) => Ret::Val(f(vc)),
        None => Ret::Stop,
    }
}

// ---- console, version, scheduling -------------------------------------

fn console_io(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let Ok(cmd) = u32::try_from(a[0]) else {
        return Ret::Val(ENOSYS);
    };
    match cmd {
        con::CONSOLEIO_WRITE => {
            let count = a[1] & 0xffff_ffff;
            if count > (1 << 20) {
                return Ret::Val(EINVAL);
            }
            let mut buf = vec![0u8; usize::try_from(count).unwrap_or(0)];
            if let Err(f) = guestmem::copy_from_guest(&hv.mem, cr3(hv, dom, v), a[2], &mut buf) {
                return f.into();
            }
            if let Some(d) = hv.domains.get_mut(&dom) {
                d.conio_line.extend_from_slice(&buf);
            }
            hv.service_consoles();
            Ret::Val(0)
        }
        // Input available now (non-blocking); see `Hypervisor::console_read`.
        con::CONSOLEIO_READ => {
            let count = a[1] & 0xffff_ffff;
            if count > 0x8000_0000 {
                return Ret::Val(EINVAL);
            }
            let bytes = hv.console_read(dom, usize::try_from(count).unwrap_or(0));
            if bytes.is_empty() {
                return Ret::Val(0);
            }
            match guestmem::copy_to_guest(&hv.mem, &hv.ft, cr3(hv, dom, v), a[2], &bytes) {
                Ok(()) => Ret::Val(i64::try_from(bytes.len()).unwrap_or(0)),
                Err(f) => f.into(),
            }
        }
        _ => Ret::Val(ENOSYS),
    }
}

fn shutdown(hv: &mut Hypervisor, dom: DomId, reason: u64) -> Ret {
    let Ok(reason) = u32::try_from(reason) else {
        return Ret::Val(EINVAL);
    };
    if reason > sched::SHUTDOWN_MAX {
        return Ret::Val(EINVAL);
    }
    if let Some(d) = hv.domains.get_mut(&dom) {
        d.shutdown = Some(reason);
        tracing::info!(dom, reason, "domain shut down");
    }
    Ret::Stop
}

fn sched_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::Val(ENOSYS);
    };
    match cmd {
        sched::SCHEDOP_YIELD => Ret::ValStop(0),
        sched::SCHEDOP_BLOCK => {
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                vc.cpu.gpr[reg::RAX] = 0;
            }
            block(hv, dom, v);
            Ret::Stop
        }
        sched::SCHEDOP_SHUTDOWN => match read::<u32>(hv, dom, v, arg) {
            Ok(reason) => shutdown(hv, dom, u64::from(reason)),
            Err(f) => f.into(),
        },
        sched::SCHEDOP_SHUTDOWN_CODE => match read::<u32>(hv, dom, v, arg) {
            Ok(r) if r <= sched::SHUTDOWN_MAX => {
                if let Some(d) = hv.domains.get_mut(&dom) {
                    d.shutdown_code = Some(r);
                }
                Ret::Val(0)
            }
            Ok(_) => Ret::Val(EINVAL),
            Err(f) => f.into(),
        },
        sched::SCHEDOP_POLL => poll(hv, dom, v, arg),
        sched::SCHEDOP_WATCHDOG => match read::<sched::SchedWatchdog>(hv, dom, v, arg) {
            Ok(w) => watchdog(hv, dom, w),
            Err(f) => f.into(),
        },
        // Shutting down another domain needs privileges no domain has here.
        sched::SCHEDOP_REMOTE_SHUTDOWN => match read::<[u32; 2]>(hv, dom, v, arg) {
            Ok(_) => Ret::Val(EPERM),
            Err(f) => f.into(),
        },
        _ => Ret::Val(ENOSYS),
    }
}

/// `SCHEDOP_watchdog`: id 0 creates a watchdog (returning its id, 1 or 2,
/// or `ENOSPC`); a live id with timeout 0 destroys it, with a timeout
/// re-arms it; expiry shuts the domain down with `SHUTDOWN_watchdog`.
fn watchdog(hv: &mut Hypervisor, dom: DomId, w: sched::SchedWatchdog) -> Ret {
    const ENOSPC: i64 = -28;
    let deadline = hv
        .clock
        .now_ns()
        .saturating_add(u64::from(w.timeout).saturating_mul(1_000_000_000));
    let Some(d) = hv.domains.get_mut(&dom) else {
        return Ret::Stop;
    };
    if w.id == 0 {
        return match d.watchdogs.iter().position(Option::is_none) {
            Some(i) => {
                if let Some(slot) = d.watchdogs.get_mut(i) {
                    *slot = Some(deadline);
                }
                Ret::Val(i64::try_from(i).unwrap_or(0) + 1)
            }
            None => Ret::Val(ENOSPC),
        };
    }
    let slot = usize::try_from(w.id - 1)
        .ok()
        .and_then(|i| d.watchdogs.get_mut(i));
    match slot {
        Some(t @ Some(_)) => {
            *t = (w.timeout != 0).then_some(deadline);
            Ret::Val(0)
        }
        _ => Ret::Val(EINVAL),
    }
}

fn poll(hv: &mut Hypervisor, dom: DomId, v: usize, arg: u64) -> Ret {
    // struct sched_poll: ports handle @0, nr_ports u32 @8, timeout u64 @16.
    let p: [u64; 3] = match read(hv, dom, v, arg) {
        Ok(p) => p,
        Err(f) => return f.into(),
    };
    let nr_ports = p[1] & 0xffff_ffff;
    if nr_ports > 128 {
        return Ret::Val(EINVAL);
    }
    let mut ports = vec![0u32; usize::try_from(nr_ports).unwrap_or(0)];
    if let Err(f) = guestmem::copy_from_guest(&hv.mem, cr3(hv, dom, v), p[0], ports.as_mut_bytes())
    {
        return f.into();
    }
    if ports.iter().any(|&x| x >= 4096) {
        return Ret::Val(EINVAL);
    }
    let deliverable = vcpu_ref(hv, dom, v).is_some_and(|x| x.pv.upcall_deliverable(&hv.mem));
    if deliverable
        || hv
            .evtchn
            .poll(&hv.mem, dom, u32::try_from(v).unwrap_or(0), &ports)
    {
        return Ret::Val(0);
    }
    let deadline = (p[2] != 0).then_some(p[2]);
    if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
        vc.cpu.gpr[reg::RAX] = 0;
        vc.state = RunState::Polling { deadline };
    }
    Ret::Stop
}

fn xen_version(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::Val(ENOSYS);
    };
    let text = |hv: &Hypervisor, s: &str, len: usize| -> Ret {
        let mut b = vec![0u8; len];
        let n = s.len().min(len - 1);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        match guestmem::copy_to_guest(&hv.mem, &hv.ft, cr3(hv, dom, v), arg, &b) {
            Ok(()) => Ret::Val(0),
            Err(f) => f.into(),
        }
    };
    let (maj, min) = crate::cpuid::XEN_VERSION;
    match cmd {
        ver::XENVER_VERSION => Ret::Val(i64::from((maj << 16) | min)),
        ver::XENVER_EXTRAVERSION => text(hv, ".0-pvsdk", 16),
        ver::XENVER_COMPILE_INFO => {
            let mut b = [0u8; 144];
            b[..5].copy_from_slice(b"rustc");
            b[64..69].copy_from_slice(b"pvsdk");
            match guestmem::copy_to_guest(&hv.mem, &hv.ft, cr3(hv, dom, v), arg, &b) {
                Ok(()) => Ret::Val(0),
                Err(f) => f.into(),
            }
        }
        ver::XENVER_CAPABILITIES => text(hv, "xen-3.0-x86_64 ", 1024),
        ver::XENVER_CHANGESET => text(hv, concat!("pvsdk ", env!("CARGO_PKG_VERSION")), 64),
        ver::XENVER_PLATFORM_PARAMETERS => {
            match write(hv, dom, v, arg, &0xFFFF_8000_0000_0000u64) {
                Ok(()) => Ret::Val(0),
                Err(f) => f.into(),
            }
        }
        ver::XENVER_GET_FEATURES => match read::<[u32; 2]>(hv, dom, v, arg) {
            Ok([0, _]) => {
                let map = (1u32 << ver::XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
                    | (1 << ver::XENFEAT_HIGHMEM_ASSIST);
                match write(hv, dom, v, arg, &[0u32, map]) {
                    Ok(()) => Ret::Val(0),
                    Err(f) => f.into(),
                }
            }
            Ok(_) => Ret::Val(EINVAL),
            Err(f) => f.into(),
        },
        ver::XENVER_PAGESIZE => Ret::Val(4096),
        ver::XENVER_GUEST_HANDLE => {
            let mut uuid = [0u8; 16];
            uuid[..2].copy_from_slice(&dom.to_le_bytes());
            match write(hv, dom, v, arg, &uuid) {
                Ok(()) => Ret::Val(0),
                Err(f) => f.into(),
            }
        }
        ver::XENVER_COMMANDLINE => text(hv, "", 1024),
        _ => Ret::Val(ENOSYS),
    }
}

// ---- callbacks and CPU state -------------------------------------------

fn set_callbacks(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    if !canonical(a[0]) || !canonical(a[1]) || !canonical(a[2]) {
        return Ret::Val(EINVAL);
    }
    with_vcpu(hv, dom, v, |vc| {
        vc.pv.event_callback = a[0];
        vc.pv.failsafe_callback = a[1];
        vc.pv.syscall_callback = a[2];
        vc.pv.syscall_masks_events = false;
        vc.pv.failsafe_masks_events = false;
        0
    })
}

fn callback_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    match cmd {
        0 => {
            // callback_register: type u16 @0, flags u16 @2, address u64 @8.
            let r: [u64; 2] = match read(hv, dom, v, arg) {
                Ok(r) => r,
                Err(f) => return f.into(),
            };
            let (ty, flags, addr) = (r[0] & 0xffff, (r[0] >> 16) & 0xffff, r[1]);
            if !canonical(addr) {
                return Ret::Val(EINVAL);
            }
            let mask = flags & 1 != 0;
            with_vcpu(hv, dom, v, |vc| match ty {
                0 => {
                    vc.pv.event_callback = addr;
                    0
                }
                1 => {
                    vc.pv.failsafe_callback = addr;
                    vc.pv.failsafe_masks_events = mask;
                    0
                }
                2 => {
                    vc.pv.syscall_callback = addr;
                    vc.pv.syscall_masks_events = mask;
                    0
                }
                4 => {
                    vc.pv.nmi_callback = addr;
                    0
                }
                // 32-bit entry points: accepted, never used by 64-bit code.
                5 | 7 => 0,
                _ => EINVAL,
            })
        }
        1 => match read::<u32>(hv, dom, v, arg) {
            Ok(t) if t & 0xffff == 4 => with_vcpu(hv, dom, v, |vc| {
                vc.pv.nmi_callback = 0;
                0
            }),
            Ok(_) => Ret::Val(EINVAL),
            Err(f) => f.into(),
        },
        _ => Ret::Val(ENOSYS),
    }
}

fn set_trap_table(hv: &mut Hypervisor, dom: DomId, v: usize, table: u64) -> Ret {
    if table == 0 {
        return with_vcpu(hv, dom, v, |vc| {
            vc.pv.traps = [TrapEntry::default(); 256];
            0
        });
    }
    // Entries until one with address 0, as in Xen: there is no length
    // limit, so a long (or endless, hostile) table is taken [`BATCH`]
    // entries per call and continued like any other preempted hypercall —
    // the guest re-issues it from where it stopped, and can be descheduled
    // or shut down in between.
    for i in 0..u64::from(BATCH) {
        let e: guest_abi::abi::callback::TrapInfo =
            match read(hv, dom, v, table.wrapping_add(i * 16)) {
                Ok(e) => e,
                Err(f) => return f.into(),
            };
        if e.address == 0 {
            return Ret::Val(0);
        }
        if !canonical(e.address) {
            return Ret::Val(EINVAL);
        }
        if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
            vc.pv.traps[usize::from(e.vector)] = TrapEntry {
                flags: e.flags,
                address: e.address,
            };
        }
    }
    Ret::Preempted([table.wrapping_add(u64::from(BATCH) * 16), 0, 0, 0, 0])
}

fn set_segment_base(hv: &mut Hypervisor, dom: DomId, v: usize, which: u64, base: u64) -> Ret {
    if which != 3 && !canonical(base) {
        return Ret::Val(EINVAL);
    }
    with_vcpu(hv, dom, v, |vc| {
        let kernel = vc.pv.kernel_mode;
        match which {
            0 => vc.cpu.seg[sreg::FS].base = base,
            1 if kernel => vc.pv.inactive_gs_base = base,
            1 => vc.cpu.seg[sreg::GS].base = base,
            2 if kernel => vc.cpu.seg[sreg::GS].base = base,
            2 => vc.pv.inactive_gs_base = base,
            3 => {
                // Load the user %gs selector; only the null and flat
                // selectors exist here, and both have base 0.
                let sel = u16::try_from(base & 0xffff).unwrap_or(0);
                vc.cpu.seg[sreg::GS].selector = sel;
                if kernel {
                    vc.pv.inactive_gs_base = 0;
                } else {
                    vc.cpu.seg[sreg::GS].base = 0;
                }
            }
            _ => return EINVAL,
        }
        vc.cpu.kernel_gs_base = vc.pv.inactive_gs_base;
        0
    })
}

fn set_debugreg(hv: &mut Hypervisor, dom: DomId, v: usize, r: u64, val: u64) -> Ret {
    let ok = match r {
        0..=3 => val < (1 << 47),
        6 => val >> 32 == 0,
        7 => val >> 32 == 0 && val & (1 << 13) == 0,
        _ => false,
    };
    if !ok {
        return Ret::Val(EINVAL);
    }
    with_vcpu(hv, dom, v, |vc| {
        if let Some(slot) = usize::try_from(r)
            .ok()
            .and_then(|i| vc.pv.debugreg.get_mut(i))
        {
            *slot = val;
        }
        0
    })
}

fn vm_assist(hv: &mut Hypervisor, dom: DomId, cmd: u64, ty: u64) -> Ret {
    if !matches!(ty, 0..=5 | 32) {
        return Ret::Val(EINVAL);
    }
    let Some(d) = hv.domains.get_mut(&dom) else {
        return Ret::Stop;
    };
    match cmd {
        0 => d.vm_assist |= 1 << ty,
        1 => d.vm_assist &= !(1 << ty),
        _ => return Ret::Val(ENOSYS),
    }
    Ret::Val(0)
}

fn physdev_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    const PHYSDEVOP_SET_IOPL: u64 = 6;
    match cmd {
        PHYSDEVOP_SET_IOPL => match read::<u32>(hv, dom, v, arg) {
            Ok(iopl) if iopl <= 3 => with_vcpu(hv, dom, v, |vc| {
                vc.pv.iopl = u8::try_from(iopl).unwrap_or(0);
                0
            }),
            Ok(_) => Ret::Val(EINVAL),
            Err(f) => f.into(),
        },
        _ => Ret::Val(ENOSYS),
    }
}

fn vcpu_op(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let Ok(cmd) = u32::try_from(a[0]) else {
        return Ret::Val(ENOSYS);
    };
    let Some(nvcpus) = hv.domains.get(&dom).map(|d| d.vcpus.len()) else {
        return Ret::Stop;
    };
    let Some(target) = usize::try_from(a[1]).ok().filter(|&t| t < nvcpus) else {
        return Ret::Val(neg(2)); // ENOENT
    };
    let now = hv.clock.now_ns();
    match cmd {
        vo::VCPUOP_IS_UP => Ret::Val(i64::from(
            vcpu_ref(hv, dom, target).is_some_and(|x| x.state != RunState::Down),
        )),
        vo::VCPUOP_DOWN => {
            if let Some(vc) = hv
                .domains
                .get_mut(&dom)
                .and_then(|d| d.vcpus.get_mut(target))
            {
                vc.state = RunState::Down;
            }
            if target == v {
                Ret::ValStop(0)
            } else {
                Ret::Val(0)
            }
        }
        vo::VCPUOP_SET_PERIODIC_TIMER => match read::<u64>(hv, dom, v, a[2]) {
            Ok(p) if p >= 1_000_000 => with_vcpu(hv, dom, target, |vc| {
                vc.periodic = Some((p, now + p));
                0
            }),
            Ok(_) => Ret::Val(EINVAL),
            Err(f) => f.into(),
        },
        vo::VCPUOP_STOP_PERIODIC_TIMER => with_vcpu(hv, dom, target, |vc| {
            vc.periodic = None;
            0
        }),
        vo::VCPUOP_SET_SINGLESHOT_TIMER | vo::VCPUOP_STOP_SINGLESHOT_TIMER if target != v => {
            Ret::Val(EINVAL)
        }
        vo::VCPUOP_SET_SINGLESHOT_TIMER => match read::<[u64; 2]>(hv, dom, v, a[2]) {
            // A timeout in the past fires at once (current Xen).
            Ok([t, _]) => with_vcpu(hv, dom, v, |vc| {
                vc.singleshot = Some(t.max(now));
                0
            }),
            Err(f) => f.into(),
        },
        vo::VCPUOP_STOP_SINGLESHOT_TIMER => with_vcpu(hv, dom, v, |vc| {
            vc.singleshot = None;
            0
        }),
        vo::VCPUOP_GET_RUNSTATE_INFO => {
            let Some(vc) = vcpu_ref(hv, dom, target) else {
                return Ret::Stop;
            };
            let state: u64 = match vc.state {
                RunState::Runnable => 0,
                RunState::Blocked | RunState::Polling { .. } => 2,
                RunState::Down => 3,
            };
            let info: [u64; 6] = [
                state,
                now,
                vc.running_ns,
                0,
                now.saturating_sub(vc.running_ns),
                0,
            ];
            match write(hv, dom, v, a[2], &info) {
                Ok(()) => Ret::Val(0),
                Err(f) => f.into(),
            }
        }
        vo::VCPUOP_REGISTER_VCPU_INFO => register_vcpu_info(hv, dom, v, target, a[2]),
        _ => Ret::Val(ENOSYS),
    }
}

fn register_vcpu_info(hv: &mut Hypervisor, dom: DomId, v: usize, target: usize, arg: u64) -> Ret {
    // vcpu_register_vcpu_info: mfn u64 @0, offset u32 @8, rsvd u32 @12.
    let r: [u64; 2] = match read(hv, dom, v, arg) {
        Ok(r) => r,
        Err(f) => return f.into(),
    };
    let (mfn, offset) = (Mfn(r[0]), r[1] & 0xffff_ffff);
    if offset + 64 > 4096 {
        return Ret::Val(EINVAL);
    }
    // Registration is once per vCPU (Xen: -EINVAL the second time).
    let registered = vcpu_ref(hv, dom, target).map(|x| x.pv.vcpu_info_frame.is_some());
    match registered {
        None => return Ret::Stop,
        Some(true) => return Ret::Val(EINVAL),
        Some(false) => {}
    }
    // The hypervisor writes vcpu_info from now on: hold a writable type
    // reference so that the frame can never become a page table (or a
    // descriptor page) while it is registered.
    if mm(hv)
        .get_page_and_type(mfn, PageType::Writable, dom)
        .is_err()
    {
        return Ret::Val(EINVAL);
    }
    let at = MachineAddr(mfn.addr().0 + offset);
    let Some(vc) = hv
        .domains
        .get_mut(&dom)
        .and_then(|d| d.vcpus.get_mut(target))
    else {
        return Ret::Stop;
    };
    vc.pv.vcpu_info_frame = Some(mfn);
    // Carry the current contents over, as Xen does.
    let mut cur = [0u8; 64];
    let _ = hv.mem.read(vc.pv.vcpu_info, &mut cur);
    let _ = hv.mem.write(at, &cur);
    vc.pv.vcpu_info = at;
    if let Some(e) = hv.evtchn.domain_mut(dom) {
        e.set_vcpu_info(u32::try_from(target).unwrap_or(0), at);
    }
    Ret::Val(0)
}

// ---- event channels ---------------------------------------------------

fn evtchn_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::Val(ENOSYS);
    };
    let mem = &hv.mem;
    macro_rules! rd {
        ($t:ty) => {
            match read::<$t>(hv, dom, v, arg) {
                Ok(x) => x,
                Err(f) => return f.into(),
            }
        };
    }
    macro_rules! out {
        ($x:expr) => {
            match write(hv, dom, v, arg, &$x) {
                Ok(()) => Ret::Val(0),
                Err(f) => f.into(),
            }
        };
    }
    let me = dom;
    match cmd {
        ev::EVTCHNOP_ALLOC_UNBOUND => {
            let mut x = rd!(ev::EvtchnAllocUnbound);
            match hv.evtchn.alloc_unbound(me, x.dom, x.remote_dom) {
                Ok(p) => {
                    x.port = p;
                    out!(x)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_BIND_INTERDOMAIN => {
            let mut x = rd!(ev::EvtchnBindInterdomain);
            match hv
                .evtchn
                .bind_interdomain(mem, me, x.remote_dom, x.remote_port)
            {
                Ok((p, kicks)) => {
                    hv.apply_kicks(kicks);
                    x.local_port = p;
                    out!(x)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_BIND_VIRQ => {
            let mut x = rd!(ev::EvtchnBindVirq);
            match hv.evtchn.bind_virq(me, x.virq, x.vcpu) {
                Ok(p) => {
                    x.port = p;
                    out!(x)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_BIND_IPI => {
            let mut x = rd!(ev::EvtchnBindIpi);
            match hv.evtchn.bind_ipi(me, x.vcpu) {
                Ok(p) => {
                    x.port = p;
                    out!(x)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_CLOSE => {
            let x = rd!(ev::EvtchnClose);
            Ret::Val(
                hv.evtchn
                    .close(mem, me, x.port)
                    .map_or_else(|e| neg(e.errno()), |()| 0),
            )
        }
        ev::EVTCHNOP_SEND => {
            let x = rd!(ev::EvtchnSend);
            match hv.evtchn.send(mem, me, x.port) {
                Ok(k) => {
                    hv.apply_kicks(k);
                    Ret::Val(0)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_STATUS => {
            let mut x = rd!(ev::EvtchnStatus);
            match hv.evtchn.status(me, x.dom, x.port) {
                Ok(s) => {
                    x.status = s.status;
                    x.vcpu = s.vcpu;
                    x.u = [s.a, s.b];
                    out!(x)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_UNMASK => {
            let x = rd!(ev::EvtchnUnmask);
            match hv.evtchn.unmask(mem, me, x.port) {
                Ok(k) => {
                    if let Some(k) = k {
                        hv.apply_kicks_one(k);
                    }
                    Ret::Val(0)
                }
                Err(e) => Ret::Val(neg(e.errno())),
            }
        }
        ev::EVTCHNOP_BIND_VCPU => {
            let x = rd!(ev::EvtchnBindVcpu);
            Ret::Val(
                hv.evtchn
                    .bind_vcpu(me, x.port, x.vcpu)
                    .map_or_else(|e| neg(e.errno()), |()| 0),
            )
        }
        ev::EVTCHNOP_RESET => {
            let x = rd!(ev::EvtchnReset);
            if u64::from(x.dom) != DOMID_SELF && x.dom != me {
                return Ret::Val(EPERM);
            }
            Ret::Val(
                hv.evtchn
                    .reset(mem, me)
                    .map_or_else(|e| neg(e.errno()), |()| 0),
            )
        }
        // The FIFO ABI is not offered; guests fall back to 2-level.
        ev::EVTCHNOP_INIT_CONTROL | ev::EVTCHNOP_EXPAND_ARRAY | ev::EVTCHNOP_SET_PRIORITY => {
            Ret::Val(EINVAL)
        }
        ev::EVTCHNOP_BIND_PIRQ => Ret::Val(EPERM),
        _ => Ret::Val(ENOSYS),
    }
}

// ---- memory management ---------------------------------------------------

/// Resolve `foreigndom`: only the caller itself is allowed (no domain here
/// has privileges over another's memory).
fn foreign(dom: DomId, fd: u64) -> Result<DomId, i64> {
    let f = fd & 0xffff;
    let pfd = (fd >> 16) & 0xffff;
    let ok_f = f == DOMID_SELF || f == u64::from(dom);
    let ok_pfd = pfd == 0 || pfd.wrapping_sub(1) == u64::from(dom);
    if ok_f && ok_pfd { Ok(dom) } else { Err(EPERM) }
}

fn flush_domain(hv: &mut Hypervisor, dom: DomId, scope: FlushScope) {
    if let Some(d) = hv.domains.get_mut(&dom) {
        for vc in &mut d.vcpus {
            vc.backend.flush_tlb(scope);
        }
    }
}

fn mm(hv: &mut Hypervisor) -> Mm<'_> {
    Mm {
        ft: &mut hv.ft,
        mem: &hv.mem,
        layout: MmLayout {
            m2p_l4e: hv.m2p.l4e,
        },
    }
}

fn mmu_update(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let (reqs, pdone, fd) = (a[0], a[2], a[3]);
    let cr3v = cr3(hv, dom, v);
    let (count, done) = match batch_resume(hv, cr3v, a[1], pdone) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = foreign(dom, fd) {
        return Ret::Val(e);
    }
    let mut rc = 0i64;
    let mut flush = false;
    let mut i = 0u64;
    // Requests are copied from the guest in chunks (one page walk per chunk
    // instead of per request); each is still copied once before use.
    let mut chunk = [[0u64; 2]; MMU_REQ_CHUNK];
    let (mut have, mut next) = (0usize, 0usize);
    while i < count {
        if i == u64::from(BATCH) {
            break;
        }
        if next == have {
            let limit = count.min(u64::from(BATCH));
            let n = usize::try_from(limit - i).map_or(MMU_REQ_CHUNK, |n| n.min(MMU_REQ_CHUNK));
            let at = reqs.wrapping_add(i * 16);
            have = if guestmem::copy_from_guest(&hv.mem, cr3v, at, chunk[..n].as_mut_bytes())
                .is_ok()
            {
                n
            } else {
                // Some request in the chunk is unreadable: go one by one so
                // the ones before it are still applied, as Xen does.
                match guestmem::read_obj::<[u64; 2]>(&hv.mem, cr3v, at) {
                    Ok(r) => {
                        chunk[0] = r;
                        1
                    }
                    Err(_) => {
                        rc = EFAULT;
                        break;
                    }
                }
            };
            next = 0;
        }
        let [ptr, val] = chunk[next];
        next += 1;
        let r = match ptr & 7 {
            0 | 2 | 3 => mm(hv)
                .update_entry(ptr, val, dom, dom, ptr & 7 == 2)
                .map(|f| flush |= f)
                .map_err(|e| neg(e.errno())),
            1 => {
                let mfn = Mfn(ptr >> 12);
                if hv
                    .ft
                    .get(mfn)
                    .is_some_and(|p| p.owner == Owner::Dom(dom) && !p.xen_heap)
                {
                    hv.m2p.set(&hv.mem, mfn, val).map_err(|_| EFAULT)
                } else {
                    Err(EPERM)
                }
            }
            _ => Err(ENOSYS),
        };
        if let Err(e) = r {
            rc = e;
            break;
        }
        i += 1;
    }
    // L1 changes are the guest's to flush; L2–L4 changes we flush (as Xen).
    if flush {
        flush_domain(hv, dom, FlushScope::All);
    }
    batch_finish(
        hv,
        cr3v,
        rc,
        Batch {
            list: reqs,
            stride: 16,
            i,
            count,
            done,
            pdone,
            fd,
            a4: a[4],
        },
    )
}

fn mmuext_op(hv: &mut Hypervisor, dom: DomId, v: usize, a: [u64; 5]) -> Ret {
    let (ops, pdone, fd) = (a[0], a[2], a[3]);
    let cr3v = cr3(hv, dom, v);
    let (count, done) = match batch_resume(hv, cr3v, a[1], pdone) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = foreign(dom, fd) {
        return Ret::Val(e);
    }
    let mut rc = 0;
    let mut i = 0u64;
    while i < count.min(u64::from(BATCH)) {
        let op: [u64; 3] = match guestmem::read_obj(&hv.mem, cr3v, ops.wrapping_add(i * 24)) {
            Ok(o) => o,
            Err(_) => {
                rc = EFAULT;
                break;
            }
        };
        let cmd = op[0] & 0xffff_ffff;
        let r = mmuext_one(hv, dom, v, cmd, op[1], op[2]);
        if r != 0 {
            rc = r;
            break;
        }
        i += 1;
    }
    batch_finish(
        hv,
        cr3v,
        rc,
        Batch {
            list: ops,
            stride: 24,
            i,
            count,
            done,
            pdone,
            fd,
            a4: a[4],
        },
    )
}

/// `mmu_update`/`mmuext_op` entry: the op count without the continuation
/// marker, and (for a continuation) what earlier invocations did, read
/// from `pdone`.
fn batch_resume(hv: &Hypervisor, cr3v: u64, count_arg: u64, pdone: u64) -> Result<(u64, u64), Ret> {
    let count = count_arg & 0xffff_ffff;
    if count & MMU_UPDATE_PREEMPTED == 0 {
        return Ok((count, 0));
    }
    let count = count & !MMU_UPDATE_PREEMPTED;
    if pdone == 0 {
        return Ok((count, 0));
    }
    match guestmem::read_obj::<u32>(&hv.mem, cr3v, pdone) {
        Ok(d) => Ok((count, u64::from(d))),
        Err(f) => Err(f.into()),
    }
}

/// Where a `mmu_update`/`mmuext_op` invocation stopped.
struct Batch {
    /// Guest address of the op list and the size of one op.
    list: u64,
    stride: u64,
    /// Ops done by this invocation, ops it was asked for, done before it.
    i: u64,
    count: u64,
    done: u64,
    /// The caller's `pdone`, foreign domain and fifth argument.
    pdone: u64,
    fd: u64,
    a4: u64,
}

/// `mmu_update`/`mmuext_op` exit: write the running total to `pdone` and,
/// if the batch was cut at the per-invocation limit without an error,
/// continue with the rest (never truncate).
fn batch_finish(hv: &Hypervisor, cr3v: u64, mut rc: i64, b: Batch) -> Ret {
    if b.pdone != 0 {
        let d = u32::try_from(b.done + b.i).unwrap_or(u32::MAX);
        if guestmem::copy_to_guest(&hv.mem, &hv.ft, cr3v, b.pdone, d.as_bytes()).is_err() && rc == 0
        {
            rc = EFAULT;
        }
    }
    if rc == 0 && b.i < b.count {
        return Ret::Preempted([
            b.list.wrapping_add(b.i * b.stride),
            (b.count - b.i) | MMU_UPDATE_PREEMPTED,
            b.pdone,
            b.fd,
            b.a4,
        ]);
    }
    Ret::Val(rc)
}

fn mmuext_one(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg1: u64, arg2: u64) -> i64 {
    use guest_abi::abi::mmu as m;
    let Ok(cmd) = u32::try_from(cmd) else {
        return ENOSYS;
    };
    let mfn = Mfn(arg1);
    let res = |r: Result<(), crate::mm::MmError>| r.map_or_else(|e| neg(e.errno()), |()| 0);
    match cmd {
        m::MMUEXT_PIN_L1_TABLE..=m::MMUEXT_PIN_L4_TABLE => {
            let level = u8::try_from(cmd - m::MMUEXT_PIN_L1_TABLE + 1).unwrap_or(0);
            res(mm(hv).pin(mfn, level, dom))
        }
        m::MMUEXT_UNPIN_TABLE => {
            let r = res(mm(hv).unpin(mfn, dom));
            flush_domain(hv, dom, FlushScope::All);
            r
        }
        m::MMUEXT_NEW_BASEPTR | m::MMUEXT_NEW_USER_BASEPTR => {
            let user = cmd == m::MMUEXT_NEW_USER_BASEPTR;
            if user && arg1 == 0 {
                let old = hv
                    .domains
                    .get_mut(&dom)
                    .and_then(|d| d.vcpus.get_mut(v))
                    .and_then(|vc| vc.pv.user_l4.take());
                if let Some(old) = old {
                    mm(hv).put_page_and_type(old);
                }
                return 0;
            }
            if let Err(e) = mm(hv).get_page_and_type(mfn, PageType::L4, dom) {
                return neg(e.errno());
            }
            let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
                return 0;
            };
            let old = if user {
                vc.pv.user_l4.replace(mfn)
            } else {
                Some(std::mem::replace(&mut vc.pv.kernel_l4, mfn))
            };
            if vc.pv.kernel_mode != user {
                vc.cpu.cr3 = mfn.addr().0;
            }
            vc.backend.flush_tlb(FlushScope::All);
            if let Some(old) = old {
                mm(hv).put_page_and_type(old);
            }
            0
        }
        m::MMUEXT_TLB_FLUSH_LOCAL => {
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                vc.backend.flush_tlb(FlushScope::All);
            }
            0
        }
        m::MMUEXT_INVLPG_LOCAL => {
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                vc.backend.flush_tlb(FlushScope::Page(arg1));
            }
            0
        }
        // Multi-vCPU masks: flushing every vCPU is a correct superset.
        m::MMUEXT_TLB_FLUSH_MULTI | m::MMUEXT_TLB_FLUSH_ALL => {
            flush_domain(hv, dom, FlushScope::All);
            0
        }
        m::MMUEXT_INVLPG_MULTI | m::MMUEXT_INVLPG_ALL => {
            flush_domain(hv, dom, FlushScope::Page(arg1));
            0
        }
        m::MMUEXT_FLUSH_CACHE | m::MMUEXT_FLUSH_CACHE_GLOBAL => neg(13), // EACCES: no I/O privilege
        m::MMUEXT_SET_LDT => {
            let ents = arg2 & 0xffff_ffff;
            if !arg1.is_multiple_of(4096) || ents > 8192 || !guest_range(arg1, ents * 8) {
                return EINVAL;
            }
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                vc.cpu.tables.ldt_base = if ents == 0 { 0 } else { arg1 };
                vc.cpu.tables.ldt_entries = u32::try_from(ents).unwrap_or(0);
            }
            0
        }
        m::MMUEXT_CLEAR_PAGE => {
            if let Err(e) = mm(hv).get_page_and_type(mfn, PageType::Writable, dom) {
                return neg(e.errno());
            }
            let r = hv.mem.fill(mfn.addr(), 0, 4096);
            mm(hv).put_page_and_type(mfn);
            if r.is_ok() { 0 } else { EFAULT }
        }
        m::MMUEXT_COPY_PAGE => {
            let src = Mfn(arg2);
            if let Err(e) = mm(hv).get_page(src, dom) {
                return neg(e.errno());
            }
            if let Err(e) = mm(hv).get_page_and_type(mfn, PageType::Writable, dom) {
                mm(hv).put_page(src);
                return neg(e.errno());
            }
            let r = hv.mem.copy_within(src.addr(), mfn.addr(), 4096);
            mm(hv).put_page_and_type(mfn);
            mm(hv).put_page(src);
            if r.is_ok() { 0 } else { EFAULT }
        }
        // PV superpages were removed from Xen: always -EOPNOTSUPP.
        m::MMUEXT_MARK_SUPER | m::MMUEXT_UNMARK_SUPER => neg(errno::EOPNOTSUPP),
        _ => ENOSYS,
    }
}

/// The machine address of the L1 entry mapping `va` under `cr3`, which must
/// be reachable through present entries ending in an L1-typed frame.
fn l1e_of(hv: &Hypervisor, cr3: u64, va: u64) -> Option<MachineAddr> {
    if !canonical(va) {
        return None;
    }
    let mut table = cr3 & pte::ADDR_MASK;
    for shift in [39u32, 30, 21] {
        let e = hv
            .mem
            .read_u64(MachineAddr(table + ((va >> shift) & 511) * 8))
            .ok()?;
        if e & pte::P == 0 {
            return None;
        }
        table = e & pte::ADDR_MASK;
    }
    let p = hv.ft.get(Mfn(table >> 12))?;
    (p.ty == PageType::L1 && p.type_count > 0)
        .then_some(MachineAddr(table + ((va >> 12) & 511) * 8))
}

fn update_va_mapping(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
    val: u64,
    flags: u64,
    fd: u64,
) -> Ret {
    let fd = match foreign(dom, fd) {
        Ok(f) => f,
        Err(e) => return Ret::Val(e),
    };
    let Some(at) = l1e_of(hv, cr3(hv, dom, v), va) else {
        return Ret::Val(EINVAL);
    };
    if let Err(e) = mm(hv).update_entry(at.0, val, dom, fd, false) {
        return Ret::Val(neg(e.errno()));
    }
    let scope = match flags & 3 {
        1 => Some(FlushScope::All),
        2 => Some(FlushScope::Page(va)),
        _ => None,
    };
    if let Some(scope) = scope {
        if flags & !3 == 0 {
            if let Some(vc) = hv.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
                vc.backend.flush_tlb(scope);
            }
        } else {
            // UVMF_ALL or a vCPU bitmap: flush every vCPU (a superset).
            flush_domain(hv, dom, scope);
        }
    }
    Ret::Val(0)
}

/// `multicall(list, nr_calls)`. At most [`BATCH`] entries run per
/// invocation; then (or when an entry itself must be continued, after its
/// arguments were rewritten in the entry) the multicall continues itself
/// from the current entry, as Xen's preemptible multicalls do, so one
/// hypercall never monopolises the host CPU.
fn multicall(hv: &mut Hypervisor, dom: DomId, v: usize, list: u64, n: u64) -> Ret {
    // nr_calls is an `unsigned int`.
    let n = n & 0xffff_ffff;
    for i in 0..n {
        let at = list.wrapping_add(i * 64);
        if i == u64::from(BATCH) {
            return Ret::Preempted([at, n - i, 0, 0, 0]);
        }
        let e: [u64; 8] = match read(hv, dom, v, at) {
            Ok(e) => e,
            Err(f) => return f.into(),
        };
        let op = e[0];
        let r = match dispatch(hv, dom, v, op, [e[2], e[3], e[4], e[5], e[6]], true) {
            Ret::Val(x) | Ret::ValStop(x) => x,
            Ret::Done => 0,
            Ret::Preempted(args) => {
                // Store the entry's remaining work in the entry itself and
                // re-run the multicall from it.
                if write(hv, dom, v, at.wrapping_add(16), &args).is_err() {
                    return Ret::Val(EFAULT);
                }
                return Ret::Preempted([at, n - i, 0, 0, 0]);
            }
            Ret::Stop => return Ret::Stop,
        };
        if write(hv, dom, v, at + 8, &r.cast_unsigned()).is_err() {
            return Ret::Val(EFAULT);
        }
        if hv.domains.get(&dom).is_none_or(|d| d.shutdown.is_some()) {
            return Ret::Stop;
        }
    }
    Ret::Val(0)
}

impl Hypervisor {
    /// Wake one vCPU.
    pub fn apply_kicks_one(&mut self, k: crate::evtchn::Kick) {
        if let Some(vc) = self
            .domains
            .get_mut(&k.dom)
            .and_then(|d| d.vcpus.get_mut(k.vcpu as usize))
            && matches!(vc.state, RunState::Blocked | RunState::Polling { .. })
        {
            vc.state = RunState::Runnable;
        }
    }
}
