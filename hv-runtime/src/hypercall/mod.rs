//! Exits and hypercalls: what happens when a vCPU backend stops.
//!
//! Every exit of a vCPU backend lands in [`handle_exit`]: a `syscall` from
//! the guest kernel is a hypercall (number in `rax`, arguments in `rdi`,
//! `rsi`, `rdx`, `r10`, `r8`; result in `rax`), one from guest user mode is
//! bounced to the kernel's syscall callback, faults are emulated (privileged
//! instructions, writes to read-only L1 tables, forced `cpuid`) or bounced
//! through the guest trap table.
//!
//! ## One hypercall, step by step
//! 1. The guest calls its hypercall page (`guest_abi::hypercall`): `syscall`
//!    with the number in `rax`.
//! 2. The backend exits with [`Exit::Syscall`]; [`handle_exit`] sees guest
//!    kernel mode and calls `hypercall`, which reads the five argument
//!    registers and calls [`dispatch`].
//! 3. [`dispatch`] is the table: hypercall number → the family module named
//!    as in `guest_abi` and Xen's headers ([`mmu`], [`gnttab`], [`evtchn`],
//!    [`memory`], [`vcpu`], [`sched`], [`callback`], [`console`],
//!    [`version`], [`physdev`], [`vm_assist`], [`multicall`]).
//! 4. The family copies its arguments from guest memory **once**
//!    (`read`, `write`, [`crate::guestmem`]) into `guest_abi` types,
//!    decodes and validates them without side effects, then performs the
//!    operation.
//! 5. Every family returns a [`Ret`]: a value for `rax` (`-errno` from
//!    [`Errno`]), "end the slice", "crashed/stopped", or
//!    [`Ret::Preempted`] with the arguments that continue the work.
//! 6. `hypercall` applies the [`Ret`]: `rax`, or — the one continuation
//!    mechanism — the rewritten arguments with `rip` moved back onto the
//!    `syscall` so the guest re-issues the call after the run loop had a
//!    chance to switch vCPUs. Inside a [`multicall`] a preempted entry's
//!    arguments are written back into the entry and the multicall itself
//!    is preempted.
//!
//! Preemptible batches (`mmu_update`, `mmuext_op`, every batched grant op,
//! `multicall`, `set_trap_table`, `memory_op` extents) do at most [`BATCH`]
//! elements per invocation. A guest only ever sees an errno or, for a
//! broken kernel stack, its own crash.

pub mod callback;
pub mod console;
pub mod evtchn;
pub mod gnttab;
pub mod memory;
pub mod mmu;
pub mod multicall;
pub mod physdev;
pub mod sched;
pub mod vcpu;
pub mod version;
pub mod vm_assist;

use guest_abi::abi::Errno;
use guest_abi::abi::hypercall_nr as nr;
use hv_cpu::Exit;
use hv_cpu::mem::MachineAddr;
use hv_cpu::state::reg;
use zerocopy::{FromBytes, IntoBytes};

use crate::guestmem::{self, GuestFault};
use crate::hv::{Hypervisor, Vcpu, VcpuMem};
use crate::machine::DomId;
use crate::vcpu::{self as pv, Bounce};

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

/// The result of one hypercall (every family returns this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
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

impl Ret {
    /// Success: 0 in `rax`.
    pub const OK: Self = Self::Val(0);

    /// `-e` in `rax`.
    #[must_use]
    pub const fn err(e: Errno) -> Self {
        Self::Val(e.to_ret())
    }

    /// 0 or `-errno`.
    #[must_use]
    pub const fn from_result(r: Result<(), Errno>) -> Self {
        match r {
            Ok(()) => Self::OK,
            Err(e) => Self::err(e),
        }
    }
}

impl From<GuestFault> for Ret {
    fn from(_: GuestFault) -> Self {
        Self::err(Errno::EFAULT)
    }
}

impl From<Errno> for Ret {
    fn from(e: Errno) -> Self {
        Self::err(e)
    }
}

/// Handle one backend exit of vCPU `v` of `dom`.
pub fn handle_exit(hv: &mut Hypervisor, dom: DomId, v: usize, exit: Exit) -> Next {
    match exit {
        Exit::Deadline => Next::Continue,
        Exit::Halt => sched::block(hv, dom, v),
        Exit::Syscall => {
            let kernel = hv.vcpu(dom, v).is_some_and(|x| x.pv.kernel_mode);
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

/// Bounce `what` into the guest kernel, crashing the domain if impossible.
fn deliver(hv: &mut Hypervisor, dom: DomId, v: usize, what: Bounce) -> Next {
    let Some(VcpuMem { vc, mem, ft }) = hv.vcpu_mem(dom, v) else {
        return Next::Stop;
    };
    match pv::bounce(&mut vc.cpu, &mut vc.pv, mem, ft, what) {
        Ok(()) => Next::Continue,
        Err(e) => {
            hv.crash_vcpu(dom, v, format!("cannot deliver {what:?}: {e}"));
            Next::Stop
        }
    }
}

fn user_syscall(hv: &mut Hypervisor, dom: DomId, v: usize) -> Next {
    let Some(vc) = hv.vcpu_mut(dom, v) else {
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
    let Some(vc) = hv.vcpu_mut(dom, v) else {
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
        6 if crate::emulate::forced_cpuid(&mut hv.emu(), dom, v) => return Next::Continue,
        13 if error_code == Some(0) && crate::emulate::privileged_op(&mut hv.emu(), dom, v) => {
            return Next::Continue;
        }
        14 if error_code.is_some_and(|e| e & 3 == 3)
            && crate::emulate::ptwr(&mut hv.emu(), dom, v, cr2) =>
        {
            return Next::Continue;
        }
        _ => {}
    }
    let Some(VcpuMem { vc, mem, .. }) = hv.vcpu_mem(dom, v) else {
        return Next::Stop;
    };
    let mut ec = if pv::has_error_code(vector) {
        Some(error_code.unwrap_or(0))
    } else {
        None
    };
    if vector == 14 {
        // cr2 goes to vcpu_info.arch.cr2; the U bit says which guest mode.
        let _ = mem.write_u64(MachineAddr(vc.pv.vcpu_info.0 + 16), cr2);
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

fn hypercall(hv: &mut Hypervisor, dom: DomId, v: usize) -> Next {
    let Some(vc) = hv.vcpu(dom, v) else {
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
        tracing::debug!(dom = dom.0, vcpu = v, op, a0 = format_args!("{:#x}", args[0]), a1 = format_args!("{:#x}", args[1]), a2 = format_args!("{:#x}", args[2]), a3 = format_args!("{:#x}", args[3]), a4 = format_args!("{:#x}", args[4]), ret = %r, "hypercall");
    }
    let set = |hv: &mut Hypervisor, x: i64| {
        if let Some(vc) = hv.vcpu_mut(dom, v) {
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
            if let Some(vc) = hv.vcpu_mut(dom, v) {
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

/// Copy a `T` in from guest virtual address `va` of vCPU `v`'s address
/// space (once; the caller validates the copy).
pub(crate) fn read<T: FromBytes + IntoBytes>(
    hv: &Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
) -> Result<T, GuestFault> {
    guestmem::read_obj(&hv.mem, hv.cr3(dom, v), va)
}

/// Copy `val` out to guest virtual address `va` of vCPU `v`.
pub(crate) fn write<T: IntoBytes + zerocopy::Immutable>(
    hv: &Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
    val: &T,
) -> Result<(), GuestFault> {
    guestmem::copy_to_guest(&hv.mem, &hv.ft, hv.cr3(dom, v), va, val.as_bytes())
}

/// Copy `buf.len()` bytes in from guest virtual address `va` of vCPU `v`.
pub(crate) fn read_bytes(
    hv: &Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
    buf: &mut [u8],
) -> Result<(), GuestFault> {
    guestmem::copy_from_guest(&hv.mem, hv.cr3(dom, v), va, buf)
}

/// Copy `bytes` out to guest virtual address `va` of vCPU `v`.
pub(crate) fn write_bytes(
    hv: &Hypervisor,
    dom: DomId,
    v: usize,
    va: u64,
    bytes: &[u8],
) -> Result<(), GuestFault> {
    guestmem::copy_to_guest(&hv.mem, &hv.ft, hv.cr3(dom, v), va, bytes)
}

/// Whether `[va, va + len)` is canonical and outside the hypervisor's area
/// (Xen's `access_ok` for PV64 guests).
pub(crate) fn guest_range(va: u64, len: u64) -> bool {
    use guest_abi::abi::xen::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
    let Some(last) = va.checked_add(len.saturating_sub(1)) else {
        return false;
    };
    let low_half = last < HYPERVISOR_VIRT_START;
    let high_half = va >= HYPERVISOR_VIRT_END;
    guestmem::canonical(va) && guestmem::canonical(last) && (low_half || high_half)
}

/// Run `f` on vCPU `v` and return its value (`Stop` if the vCPU is gone).
pub(crate) fn with_vcpu(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    f: impl FnOnce(&mut Vcpu) -> i64,
) -> Ret {
    match hv.vcpu_mut(dom, v) {
        Some(vc) => Ret::Val(f(vc)),
        None => Ret::Stop,
    }
}

/// The hypercall table: run hypercall `op` with arguments `a` for vCPU `v`
/// of `dom` (`in_multicall`: called from a [`multicall`] entry).
pub fn dispatch(
    hv: &mut Hypervisor,
    dom: DomId,
    v: usize,
    op: u64,
    a: [u64; 5],
    in_multicall: bool,
) -> Ret {
    let Ok(op) = u32::try_from(op) else {
        return Ret::err(Errno::ENOSYS);
    };
    match op {
        nr::CONSOLE_IO => console::console_io(hv, dom, v, a),
        nr::SCHED_OP => sched::sched_op(hv, dom, v, a[0], a[1]),
        nr::SCHED_OP_COMPAT => sched::sched_op_compat(hv, dom, v, a[0], a[1]),
        nr::SET_TIMER_OP => sched::set_timer_op(hv, dom, v, a[0]),
        nr::XEN_VERSION => version::xen_version(hv, dom, v, a[0], a[1]),
        nr::SET_CALLBACKS => callback::set_callbacks(hv, dom, v, a),
        nr::CALLBACK_OP => callback::callback_op(hv, dom, v, a[0], a[1]),
        nr::SET_TRAP_TABLE => callback::set_trap_table(hv, dom, v, a[0]),
        nr::STACK_SWITCH => callback::stack_switch(hv, dom, v, a[0], a[1]),
        nr::FPU_TASKSWITCH => callback::fpu_taskswitch(hv, dom, v, a[0]),
        nr::SET_SEGMENT_BASE => callback::set_segment_base(hv, dom, v, a[0], a[1]),
        nr::IRET if in_multicall => Ret::err(Errno::EINVAL),
        nr::IRET => callback::iret(hv, dom, v),
        nr::SET_DEBUGREG => callback::set_debugreg(hv, dom, v, a[0], a[1]),
        nr::GET_DEBUGREG => callback::get_debugreg(hv, dom, v, a[0]),
        nr::VCPU_OP => vcpu::vcpu_op(hv, dom, v, a),
        nr::EVENT_CHANNEL_OP => evtchn::evtchn_op(hv, dom, v, a[0], a[1]),
        nr::EVENT_CHANNEL_OP_COMPAT => evtchn::evtchn_op_compat(hv, dom, v, a[0]),
        nr::MMU_UPDATE => mmu::mmu_update(hv, dom, v, a),
        nr::MMUEXT_OP => mmu::mmuext_op(hv, dom, v, a),
        nr::UPDATE_VA_MAPPING => {
            let self_ = u64::from(guest_abi::abi::DOMID_SELF);
            mmu::update_va_mapping(hv, dom, v, a[0], a[1], a[2], self_)
        }
        nr::UPDATE_VA_MAPPING_OTHERDOMAIN => {
            mmu::update_va_mapping(hv, dom, v, a[0], a[1], a[2], a[3])
        }
        nr::VM_ASSIST => vm_assist::vm_assist(hv, dom, a[0], a[1]),
        nr::MEMORY_OP => memory::memory_op(hv, dom, v, a[0], a[1]),
        nr::GRANT_TABLE_OP => gnttab::grant_table_op(hv, dom, v, a, in_multicall),
        nr::MULTICALL if in_multicall => Ret::err(Errno::EINVAL),
        nr::MULTICALL => multicall::multicall(hv, dom, v, a[0], a[1]),
        nr::PHYSDEV_OP => physdev::physdev_op(hv, dom, v, a[0], a[1]),
        _ => Ret::err(Errno::ENOSYS),
    }
}
