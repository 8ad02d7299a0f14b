//! The hypervisor: machine memory, the frame table, event channels and the
//! domains, and the loop that runs their vCPUs.
//!
//! Scheduling (for now): one host thread runs every vCPU round-robin for a
//! slice of guest instructions (`Deadline::Instructions`), which makes runs
//! deterministic apart from wall-clock timers. Blocked vCPUs wait for an
//! event; when nothing can run, the loop sleeps until the next timer.
//!
//! Clocks (Note \[Clocks\]): *system time* — what pvclock, `set_timer_op`,
//! VCPUOP timers and `SCHEDOP_poll` timeouts use — is host monotonic time
//! since `hv` started, as Xen's is time since boot; the guest TSC runs at
//! [`TSC_HZ`] on the same clock. Each vCPU also keeps *virtual time*: the
//! nanoseconds it actually spent running guest code, which advances only
//! while it runs (reported as `RUNSTATE_running` time by
//! `VCPUOP_get_runstate_info`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest_abi::abi::console::{XENCONS_IN_SIZE, XENCONS_OUT_SIZE, XenconsInterface};
use hv_cpu::mem::{MachineAddr, MachineMemory, MemError, Mfn};
use hv_cpu::model::CpuModel;
use hv_cpu::{CpuEnv, CpuState, FlushScope, VcpuBackend};

use crate::console::ConsoleInput;
use crate::domain::builder::{self, BuildConfig, BuildError};
use crate::domain::image::GuestImage;
use crate::evtchn::{DomainEvtchn, EvtchnSystem, Kick, Kicks};
use crate::machine::{AllocError, DOM0, DomId, FrameTable, M2p};
use crate::mm::Mm;
use crate::vcpu::PvVcpu;
use crate::xenstore::{DomainInfo, Xenstored};

/// Guest TSC frequency: 2 GHz, so `tsc = 2 × system_time_ns`.
pub const TSC_HZ: u64 = 2_000_000_000;
/// Guest instructions per scheduling slice.
pub const SLICE_INSTRUCTIONS: u64 = 200_000;
/// PV vCPUs start with a 10 ms periodic timer (Xen's default).
pub const DEFAULT_PERIOD_NS: u64 = 10_000_000;

/// A vCPU with the machine memory and frame table (see
/// [`Hypervisor::vcpu_mem`]).
#[derive(Debug)]
pub struct VcpuMem<'a> {
    /// The vCPU.
    pub vc: &'a mut Vcpu,
    /// Machine memory.
    pub mem: &'a MachineMemory,
    /// The frame table (guest writes check page types through it).
    pub ft: &'a FrameTable,
}

/// The two clocks (Note \[Clocks\]).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    wall_at_start: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            wall_at_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }
}

impl Clock {
    /// System time: nanoseconds since `hv` started.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Guest TSC now.
    #[must_use]
    pub fn tsc(&self) -> u64 {
        self.now_ns().wrapping_mul(TSC_HZ / 1_000_000_000)
    }
}

/// What a running vCPU asks the hypervisor: `cpuid` of the modelled CPU
/// and the guest TSC.
pub(crate) struct GuestEnv<'a> {
    pub(crate) clock: &'a Clock,
    pub(crate) model: &'a CpuModel,
}

impl CpuEnv for GuestEnv<'_> {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        crate::cpuid::guest_cpuid(self.model, leaf, subleaf)
    }

    fn rdtsc(&self) -> u64 {
        self.clock.tsc()
    }

    fn cpu_model(&self) -> CpuModel {
        *self.model
    }
}

/// Why `hv` cannot create a domain.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Building the domain failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Machine memory could not be set up.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// Machine memory access failed.
    #[error(transparent)]
    Mem(#[from] MemError),
    /// Too many or too few vCPUs.
    #[error("a domain has 1 to 32 vCPUs, not {0}")]
    Vcpus(u32),
}

/// What a domain looks like to `hv run`.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// Name (for console prefixes and xenstore).
    pub name: String,
    /// Memory in bytes.
    pub memory: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Kernel command line.
    pub cmdline: String,
}

/// A vCPU's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Ready to run.
    Runnable,
    /// In `SCHEDOP_block`: waits for a deliverable event.
    Blocked,
    /// In `SCHEDOP_poll`: waits for one of its ports or the deadline.
    Polling {
        /// Absolute system time at which the poll times out, if any.
        deadline: Option<u64>,
    },
    /// Not brought up (or brought down).
    Down,
}

/// A vCPU: registers, PV state, backend and timers.
pub struct Vcpu {
    /// vCPU id.
    pub id: u32,
    /// Registers.
    pub cpu: CpuState,
    /// PV state.
    pub pv: PvVcpu,
    /// Execution backend.
    pub backend: Box<dyn VcpuBackend + Send>,
    /// Scheduling state.
    pub state: RunState,
    /// Single-shot timer deadline (system time).
    pub singleshot: Option<u64>,
    /// Periodic timer: (period, next deadline).
    pub periodic: Option<(u64, u64)>,
    /// Virtual time: ns spent running guest code.
    pub running_ns: u64,
    /// Guest instructions retired (as counted by slices).
    pub slices: u64,
}

impl std::fmt::Debug for Vcpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcpu")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("rip", &self.cpu.rip)
            .finish_non_exhaustive()
    }
}

/// The PV console backend's view of one domain's ring.
#[derive(Debug)]
pub struct ConsoleBackend {
    /// Ring frame.
    pub ring: Mfn,
    /// The domain's console port.
    pub port: u32,
    /// Output held until a newline (so domains' lines do not interleave).
    pub line: Vec<u8>,
    /// The ring misbehaved; it is no longer serviced.
    pub broken: bool,
    /// The domain reads input with `CONSOLEIO_read`, so the ring's `in`
    /// half is never filled (Note [Console input routing]).
    pub conio_reader: bool,
    /// The domain has written to its ring, so its frontend is live and the
    /// ring's `in` half gets input (Note [Console input routing]).
    pub ring_active: bool,
}

/// A domain.
#[derive(Debug)]
pub struct Domain {
    /// Domain id (1 upward).
    pub id: DomId,
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// `shared_info` frame.
    pub shared_info: Mfn,
    /// PFN → MFN as built.
    pub p2m: Vec<Mfn>,
    /// Shutdown reason once the domain has shut down.
    pub shutdown: Option<u32>,
    /// Reason recorded by `SCHEDOP_shutdown_code`.
    pub shutdown_code: Option<u32>,
    /// Why the domain was crashed by the hypervisor, if it was.
    pub crash_reason: Option<String>,
    /// Console backend.
    pub console: ConsoleBackend,
    /// xenstore ring frame and port.
    pub store: (Mfn, u32),
    /// Pages the domain holds and may hold.
    pub tot_pages: u64,
    /// Upper bound on `tot_pages`.
    pub max_pages: u64,
    /// `vm_assist` bitmap.
    pub vm_assist: u64,
    /// `console_io` output held until a newline.
    pub conio_line: Vec<u8>,
    /// `SCHEDOP_watchdog` timers (ids 1 and 2): expiry in system time.
    pub watchdogs: [Option<u64>; 2],
}

/// The hypervisor.
pub struct Hypervisor {
    /// Machine memory.
    pub mem: MachineMemory,
    /// Frame table.
    pub ft: FrameTable,
    /// Read-only M2P.
    pub m2p: M2p,
    /// Event channels.
    pub evtchn: EvtchnSystem,
    /// Grant tables.
    pub gnttab: crate::gnttab::table::GnttabSystem,
    /// Domains by id.
    pub domains: BTreeMap<DomId, Domain>,
    /// Clocks.
    pub clock: Clock,
    /// Where guest consoles go.
    pub out: Box<dyn Write + Send>,
    /// Prefix console lines with the domain name.
    pub prefix_console: bool,
    next_domid: DomId,
    /// Factory for execution backends.
    pub new_backend: fn() -> Box<dyn VcpuBackend + Send>,
    /// Console input for the focused domain (`None`: no input).
    pub input: Option<Box<dyn ConsoleInput>>,
    /// The domain that gets console input (domain 1 by default).
    pub focus: DomId,
    /// Set (e.g. by a SIGINT handler) to stop [`Hypervisor::run`] at the
    /// next slice boundary.
    pub stop: Option<Arc<AtomicBool>>,
    /// xenstored (the runtime is dom0).
    pub xenstore: Xenstored,
    /// The CPU every vCPU presents (`cpuid`) and models (default: the
    /// host's vendor; docs/CPU-VENDORS.md).
    pub cpu_model: CpuModel,
}

impl std::fmt::Debug for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hypervisor")
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

fn interp_backend() -> Box<dyn VcpuBackend + Send> {
    Box::new(hv_cpu::interp::InterpVcpu::new())
}

/// `hv run`'s exit status when it was stopped (Ctrl-C) before every domain
/// shut down: 128 + SIGINT, as shells report it.
pub const EXIT_INTERRUPTED: u32 = 130;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Per domain: id, name, shutdown reason (`None`: still running when the
    /// run was stopped).
    pub domains: Vec<(DomId, String, Option<u32>)>,
    /// The stop flag ended the run before every domain shut down.
    pub interrupted: bool,
}

/// [`Hypervisor::run_for`] reached its time limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time limit reached with domains still running: {running:?}")]
pub struct RunTimeout {
    /// Names of the domains that had not shut down.
    pub running: Vec<String>,
    /// The outcome so far.
    pub partial: RunOutcome,
}

impl RunOutcome {
    /// `hv run`'s exit status: [`EXIT_INTERRUPTED`] if the run was stopped,
    /// else the first non-zero shutdown reason, else 0.
    #[must_use]
    pub fn exit_status(&self) -> u32 {
        if self.interrupted {
            return EXIT_INTERRUPTED;
        }
        self.domains
            .iter()
            .filter_map(|d| d.2)
            .find(|&r| r != 0)
            .unwrap_or(0)
    }
}

impl Hypervisor {
    /// A hypervisor with `frames` machine frames, writing consoles to `out`.
    ///
    /// # Errors
    /// The host refused the memory.
    pub fn new(frames: u64, out: Box<dyn Write + Send>) -> Result<Self, CreateError> {
        let mem = MachineMemory::new(frames)?;
        // Fresh anonymous memory is zero: frames need no clearing until reused.
        let mut ft = FrameTable::new_zeroed(frames);
        let m2p = M2p::new(&mem, &mut ft)?;
        Ok(Self {
            mem,
            ft,
            m2p,
            evtchn: EvtchnSystem::default(),
            gnttab: crate::gnttab::table::GnttabSystem::default(),
            domains: BTreeMap::new(),
            clock: Clock::default(),
            out,
            prefix_console: false,
            next_domid: DomId(1),
            new_backend: interp_backend,
            input: None,
            focus: DomId(1),
            stop: None,
            xenstore: Xenstored::default(),
            cpu_model: CpuModel::of(CpuModel::host().vendor),
        })
    }

    /// Machine frames needed for domains with these memory sizes.
    #[must_use]
    pub fn frames_for(memories: &[u64]) -> u64 {
        let pages: u64 = memories.iter().map(|m| m.div_ceil(4096) + 16).sum();
        // M2P and its tables, plus headroom for page tables and grants.
        pages + pages / 256 + 1024
    }

    /// Build and register a domain from a kernel image.
    ///
    /// # Errors
    /// See [`CreateError`].
    pub fn create_domain(
        &mut self,
        image: &GuestImage,
        cfg: &DomainConfig,
    ) -> Result<DomId, CreateError> {
        if cfg.vcpus == 0 || cfg.vcpus > 32 {
            return Err(CreateError::Vcpus(cfg.vcpus));
        }
        let id = self.next_domid;
        let nr_pages = cfg.memory.div_ceil(4096);
        // Ports 1 (console) and 2 (xenstore), waiting for the backends in
        // dom0 (this hypervisor).
        let built = builder::build(
            &self.mem,
            &mut self.ft,
            &self.m2p,
            image,
            &BuildConfig {
                domid: id,
                nr_pages,
                cmdline: cfg.cmdline.clone(),
                console_evtchn: 1,
                store_evtchn: 2,
            },
        )?;
        self.next_domid = DomId(self.next_domid.0 + 1);
        self.gnttab.add_domain(
            &self.mem,
            &mut self.ft,
            &self.m2p,
            id,
            built.console,
            built.store,
        )?;
        let mut ev = DomainEvtchn::new(built.shared_info, cfg.vcpus);
        let _ = &mut ev;
        self.evtchn.add_domain(id, ev);
        let console_port = self.evtchn.alloc_unbound(id, id, DOM0).unwrap_or(1);
        let store_port = self.evtchn.alloc_unbound(id, id, DOM0).unwrap_or(2);
        let now = self.clock.now_ns();
        let mut vcpus = Vec::new();
        for v in 0..cfg.vcpus {
            let vcpu_info = MachineAddr(built.shared_info.addr().0 + u64::from(v) * 64);
            let cpu = if v == 0 {
                built.vcpu0.clone()
            } else {
                CpuState::default()
            };
            vcpus.push(Vcpu {
                id: v,
                pv: PvVcpu::new(built.l4, vcpu_info, cpu.gpr[hv_cpu::state::reg::RSP]),
                cpu,
                backend: (self.new_backend)(),
                state: if v == 0 {
                    RunState::Runnable
                } else {
                    RunState::Down
                },
                singleshot: None,
                periodic: Some((DEFAULT_PERIOD_NS, now + DEFAULT_PERIOD_NS)),
                running_ns: 0,
                slices: 0,
            });
        }
        let dom = Domain {
            id,
            name: cfg.name.clone(),
            vcpus,
            shared_info: built.shared_info,
            p2m: built.p2m,
            shutdown: None,
            shutdown_code: None,
            crash_reason: None,
            console: ConsoleBackend {
                ring: built.console,
                port: console_port,
                line: Vec::new(),
                broken: false,
                conio_reader: false,
                ring_active: false,
            },
            store: (built.store, store_port),
            tot_pages: nr_pages,
            max_pages: nr_pages,
            vm_assist: 0,
            conio_line: Vec::new(),
            watchdogs: [None; 2],
        };
        self.write_time(&dom);
        // The console backend services the ring from now on.
        let conn = core::mem::offset_of!(XenconsInterface, connection) as u64;
        self.mem
            .write_u8(MachineAddr(dom.console.ring.addr().0 + conn), 0)?;
        let info = DomainInfo {
            dom: id,
            name: cfg.name.clone(),
            console_mfn: dom.console.ring.0,
            console_port,
            store_mfn: dom.store.0.0,
            store_port,
        };
        self.domains.insert(id, dom);
        if let Err(e) = self.xenstore.add_domain(&self.mem, &info) {
            tracing::warn!(dom = id.0, %e, "domain has no xenstore connection");
        }
        Ok(id)
    }

    /// Publish pvclock parameters and the wallclock for a domain.
    fn write_time(&self, dom: &Domain) {
        // tsc = 2 × ns: ns = (tsc × 2^31) >> 32, shift 0.
        let si = dom.shared_info.addr().0;
        for v in 0..dom.vcpus.len() as u64 {
            let t = si + v * 64 + 32;
            let _ = self.mem.write_u32(MachineAddr(t), 1);
            let _ = self.mem.write_u64(MachineAddr(t + 8), 0);
            let _ = self.mem.write_u64(MachineAddr(t + 16), 0);
            let _ = self.mem.write_u32(MachineAddr(t + 24), 0x8000_0000);
            let _ = self.mem.write_u8(MachineAddr(t + 28), 0);
            let _ = self.mem.write_u8(MachineAddr(t + 29), 1); // TSC_STABLE
            let _ = self.mem.write_u32(MachineAddr(t), 2);
        }
        let wc = self.clock.wall_at_start;
        let _ = self.mem.write_u32(MachineAddr(si + 3072), 1);
        let secs = wc.as_secs();
        let _ = self.mem.write_u32(
            MachineAddr(si + 3076),
            u32::try_from(secs & 0xffff_ffff).unwrap_or(0),
        );
        let _ = self
            .mem
            .write_u32(MachineAddr(si + 3080), wc.subsec_nanos());
        let _ = self.mem.write_u32(
            MachineAddr(si + 3084),
            u32::try_from(secs >> 32).unwrap_or(0),
        );
        let _ = self.mem.write_u32(MachineAddr(si + 3072), 2);
    }

    /// vCPU `v` of `dom`.
    #[must_use]
    pub fn vcpu(&self, dom: DomId, v: usize) -> Option<&Vcpu> {
        self.domains.get(&dom).and_then(|d| d.vcpus.get(v))
    }

    /// vCPU `v` of `dom`, mutably.
    pub fn vcpu_mut(&mut self, dom: DomId, v: usize) -> Option<&mut Vcpu> {
        self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v))
    }

    /// vCPU `v` of `dom` together with the memory it runs on (disjoint
    /// borrows, for code that edits a vCPU and reads or writes guest
    /// memory at once).
    pub fn vcpu_mem(&mut self, dom: DomId, v: usize) -> Option<VcpuMem<'_>> {
        let vc = self
            .domains
            .get_mut(&dom)
            .and_then(|d| d.vcpus.get_mut(v))?;
        Some(VcpuMem {
            vc,
            mem: &self.mem,
            ft: &self.ft,
        })
    }

    /// The page-table root vCPU `v` of `dom` runs on (0 if there is no
    /// such vCPU: every guest access through it then faults).
    #[must_use]
    pub fn cr3(&self, dom: DomId, v: usize) -> u64 {
        self.vcpu(dom, v).map_or(0, |x| x.cpu.cr3)
    }

    /// The page-type rules over this machine's frames ([`Mm`]).
    pub fn mm(&mut self) -> Mm<'_> {
        Mm::over(&mut self.ft, &self.mem, &self.m2p)
    }

    /// Drop cached translations on every vCPU of `dom`.
    pub fn flush_tlbs(&mut self, dom: DomId, scope: FlushScope) {
        if let Some(d) = self.domains.get_mut(&dom) {
            for vc in &mut d.vcpus {
                vc.backend.flush_tlb(scope);
            }
        }
    }

    /// Wake one vCPU.
    pub fn apply_kicks_one(&mut self, k: Kick) {
        if let Some(vc) = self.vcpu_mut(k.dom, k.vcpu as usize)
            && matches!(vc.state, RunState::Blocked | RunState::Polling { .. })
        {
            vc.state = RunState::Runnable;
        }
    }

    /// Crash a domain because of what vCPU `v` did, with a report of where:
    /// the vCPU's mode, RIP, stack, flags, CR2/CR3, every general register
    /// and the instruction bytes at RIP (read through the guest's own page
    /// tables; an unmapped RIP says so). Printed under the crash line.
    pub fn crash_vcpu(&mut self, dom: DomId, v: usize, why: String) {
        let report = self.vcpu(dom, v).map(|vc| {
            let c = &vc.cpu;
            let mode = if vc.pv.kernel_mode { "kernel" } else { "user" };
            let mut lines = vec![format!(
                "(hv)   vcpu {v} in guest {mode} mode: rip {:#018x} rsp {:#018x} rflags {:#x} cr2 {:#x} cr3 {:#x}",
                c.rip,
                c.gpr[hv_cpu::state::reg::RSP],
                c.rflags,
                c.cr2,
                c.cr3
            )];
            const NAMES: [&str; 16] = [
                "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
                "r12", "r13", "r14", "r15",
            ];
            for row in NAMES.chunks(4).zip(c.gpr.chunks(4)) {
                let cells: Vec<String> = row
                    .0
                    .iter()
                    .zip(row.1)
                    .map(|(n, g)| format!("{n:>3} {g:#018x}"))
                    .collect();
                lines.push(format!("(hv)   {}", cells.join("  ")));
            }
            // Up to 16 bytes, or up to the end of RIP's page when the next
            // page is not mapped.
            let to_page_end = usize::try_from(4096 - (c.rip & 0xfff)).unwrap_or(16);
            let mut code = [0u8; 16];
            let mut got = Err(());
            for n in [16, to_page_end.min(16)] {
                if crate::guestmem::copy_from_guest(&self.mem, c.cr3, c.rip, &mut code[..n]).is_ok() {
                    got = Ok(n);
                    break;
                }
            }
            let bytes = match got {
                Ok(n) => code[..n].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
                Err(()) => "(not mapped readable in the guest's page tables)".to_string(),
            };
            lines.push(format!("(hv)   code at rip: {bytes}"));
            lines
        });
        self.crash(dom, why);
        for line in report.into_iter().flatten() {
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// Crash a domain on the hypervisor's initiative.
    pub fn crash(&mut self, dom: DomId, why: String) {
        if let Some(d) = self.domains.get_mut(&dom)
            && d.shutdown.is_none()
        {
            tracing::warn!(dom = dom.0, %why, "crashing domain");
            let _ = writeln!(self.out, "(hv) domain {} ({}) crashed: {why}", dom, d.name);
            d.crash_reason = Some(why);
            d.shutdown = Some(guest_abi::abi::sched::SHUTDOWN_CRASH);
        }
    }

    /// Wake the vCPUs named by `kicks`.
    pub fn apply_kicks(&mut self, kicks: Kicks) {
        for Kick { dom, vcpu } in kicks.iter() {
            if let Some(v) = self
                .domains
                .get_mut(&dom)
                .and_then(|d| d.vcpus.get_mut(vcpu as usize))
                && matches!(v.state, RunState::Blocked | RunState::Polling { .. })
            {
                v.state = RunState::Runnable;
            }
        }
    }

    /// Copy available console input into the focused domain's ring `in`
    /// half (no more than it has room for) and raise its console event.
    pub fn feed_console_input(&mut self) {
        let focus = self.focus;
        let Some(input) = self.input.as_mut() else {
            return;
        };
        let Some(d) = self.domains.get_mut(&focus) else {
            return;
        };
        if d.shutdown.is_some()
            || d.console.broken
            || d.console.conio_reader
            || !d.console.ring_active
        {
            return;
        }
        match fill_console_in(&self.mem, d.console.ring, input.as_mut()) {
            Ok(0) => {}
            Ok(_) => {
                let port = d.console.port;
                let k = self.evtchn.raise(&self.mem, focus, port);
                self.apply_kicks(k);
            }
            Err(()) => {
                d.console.broken = true;
                tracing::warn!(
                    dom = %focus,
                    "console ring input indices are corrupt; no longer serviced"
                );
            }
        }
    }

    /// `CONSOLEIO_read` for `dom`: up to `max` bytes of input available
    /// now. Only the focused domain gets input; from its first call on its
    /// ring is no longer filled (Note [Console input routing]).
    pub fn console_read(&mut self, dom: DomId, max: usize) -> Vec<u8> {
        if dom != self.focus {
            return Vec::new();
        }
        if let Some(d) = self.domains.get_mut(&dom) {
            d.console.conio_reader = true;
        }
        let Some(input) = self.input.as_mut() else {
            return Vec::new();
        };
        let mut buf = vec![0u8; max.min(4096)];
        let n = input.read_available(&mut buf);
        buf.truncate(n);
        buf
    }

    /// Serve the xenstore rings; release the nodes, watches and connection
    /// of domains that have shut down (firing `@releaseDomain`).
    pub fn service_xenstore(&mut self) {
        let gone: Vec<DomId> = self
            .domains
            .values()
            .filter(|d| d.shutdown.is_some() && self.xenstore.has_domain(d.id))
            .map(|d| d.id)
            .collect();
        for id in gone {
            self.xenstore.remove_domain(id);
        }
        for (id, port) in self.xenstore.service(&self.mem) {
            let k = self.evtchn.raise(&self.mem, id, port);
            self.apply_kicks(k);
        }
    }

    /// Drain every domain's console ring to the output.
    pub fn service_consoles(&mut self) {
        let mut next = self.next_domain(None);
        while let Some(id) = next {
            next = self.next_domain(Some(id));
            let mut notify = None;
            if let Some(d) = self.domains.get_mut(&id) {
                if d.console.broken {
                    continue;
                }
                match drain_console(&self.mem, d.console.ring) {
                    Ok(bytes) if !bytes.is_empty() => {
                        d.console.ring_active = true;
                        d.console.line.extend_from_slice(&bytes);
                        notify = Some(d.console.port);
                    }
                    Ok(_) => {}
                    Err(()) => {
                        d.console.broken = true;
                        tracing::warn!(
                            dom = id.0,
                            "console ring indices are corrupt; no longer serviced"
                        );
                    }
                }
            }
            if let Some(port) = notify {
                let k = self.evtchn.raise(&self.mem, id, port);
                self.apply_kicks(k);
            }
            self.emit_lines(id);
        }
    }

    fn emit_lines(&mut self, id: DomId) {
        let Some(d) = self.domains.get_mut(&id) else {
            return;
        };
        let mut wrote = false;
        for buf in [&mut d.console.line, &mut d.conio_line] {
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if self.prefix_console {
                    let _ = write!(self.out, "[{}] ", d.name);
                }
                let _ = self.out.write_all(&sanitize(&line));
                wrote = true;
            }
            // Bound what a guest can make us hold.
            if buf.len() > 64 * 1024 {
                let line: Vec<u8> = std::mem::take(buf);
                let _ = self.out.write_all(&sanitize(&line));
                wrote = true;
            }
        }
        // Called twice per scheduling pass: flush only when there is news.
        if wrote {
            let _ = self.out.flush();
        }
    }

    pub(crate) fn flush_console_lines(&mut self) {
        for d in self.domains.values_mut() {
            for buf in [&mut d.console.line, &mut d.conio_line] {
                if !buf.is_empty() {
                    let mut line = std::mem::take(buf);
                    line.push(b'\n');
                    let _ = self.out.write_all(&sanitize(&line));
                }
            }
        }
        let _ = self.out.flush();
    }
}

/// Keep printable ASCII, newlines and tabs (as Xen does for domU output).
fn sanitize(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .copied()
        .filter(|&b| b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
        .collect()
}

/// Move input into the ring's `in` half; the number of bytes moved. `Err`
/// when the guest's `in_cons` claims more than the ring holds.
fn fill_console_in(
    mem: &MachineMemory,
    ring: Mfn,
    input: &mut dyn ConsoleInput,
) -> Result<usize, ()> {
    let base = ring.addr().0;
    let in_cons_at = MachineAddr(base + core::mem::offset_of!(XenconsInterface, in_cons) as u64);
    let in_prod_at = MachineAddr(base + core::mem::offset_of!(XenconsInterface, in_prod) as u64);
    let cons = mem.load_u32_acquire(in_cons_at).map_err(|_| ())?;
    let prod = mem.load_u32_acquire(in_prod_at).map_err(|_| ())?;
    let used = prod.wrapping_sub(cons) as usize;
    if used > XENCONS_IN_SIZE {
        return Err(());
    }
    let room = XENCONS_IN_SIZE - used;
    if room == 0 {
        return Ok(0);
    }
    let mut bytes = [0u8; XENCONS_IN_SIZE];
    let n = input.read_available(&mut bytes[..room]);
    let ring_in = base + core::mem::offset_of!(XenconsInterface, in_) as u64;
    for (i, &b) in bytes[..n].iter().enumerate() {
        let idx =
            (prod.wrapping_add(u32::try_from(i).unwrap_or(0)) as usize) & (XENCONS_IN_SIZE - 1);
        mem.write_u8(MachineAddr(ring_in + idx as u64), b)
            .map_err(|_| ())?;
    }
    // Bytes before index (release).
    let new_prod = prod.wrapping_add(u32::try_from(n).unwrap_or(0));
    mem.store_u32_release(in_prod_at, new_prod)
        .map_err(|_| ())?;
    Ok(n)
}

/// Take everything the guest wrote to its console ring. `Err` when the
/// indices claim more than the ring holds (a hostile or broken guest).
fn drain_console(mem: &MachineMemory, ring: Mfn) -> Result<Vec<u8>, ()> {
    let base = ring.addr().0;
    let out_cons_at = MachineAddr(base + core::mem::offset_of!(XenconsInterface, out_cons) as u64);
    let out_prod_at = MachineAddr(base + core::mem::offset_of!(XenconsInterface, out_prod) as u64);
    let cons = mem.load_u32_acquire(out_cons_at).map_err(|_| ())?;
    let prod = mem.load_u32_acquire(out_prod_at).map_err(|_| ())?;
    let n = prod.wrapping_sub(cons) as usize;
    if n > XENCONS_OUT_SIZE {
        return Err(());
    }
    let out = base + core::mem::offset_of!(XenconsInterface, out) as u64;
    let mut bytes = vec![0u8; n];
    for (i, b) in bytes.iter_mut().enumerate() {
        let idx =
            (cons.wrapping_add(u32::try_from(i).unwrap_or(0)) as usize) & (XENCONS_OUT_SIZE - 1);
        *b = mem.read_u8(MachineAddr(out + idx as u64)).map_err(|_| ())?;
    }
    mem.store_u32_release(out_cons_at, prod).map_err(|_| ())?;
    Ok(bytes)
}
