//! Micro-benchmarks of the hypervisor's hot paths, shared by `hv bench` and
//! the criterion benches in `benches/hv.rs`.
//!
//! The guests are assembled in-process with iced-x86's `CodeAssembler` and
//! loaded as a synthetic [`GuestImage`] (no ELF): code at [`VIRT_BASE`],
//! then [`REQ_PAGES`] pages of `mmu_update` request arrays the host fills
//! after the build, then [`TARGET_PAGES`] pages whose L1 entries the
//! `mmu_update` benchmark remaps. Guests issue hypercalls with a bare
//! `syscall` from kernel mode (what the hypercall page stubs do).
//!
//! Every function returns the *total* time of the measured part only
//! (domain setup is excluded unless it is what is measured) on the clock it
//! is given — [`wall_clock`], or a thread CPU-time clock, which a busy
//! shared host does not inflate; callers divide by the operation count and
//! take medians over several runs.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use guest_abi::abi::hypercall_nr as nr;
use guest_abi::abi::sched;
use hv_cpu::mem::{MachineAddr, Mfn};
use hv_cpu::state::reg;
use iced_x86::code_asm::{CodeAssembler, eax, edi, edx, esi, r10d, r12, rax, rbx, rdi};

use crate::domain::image::{GuestImage, Segment};
use crate::hv::{CreateError, DomainConfig, Hypervisor};
use crate::machine::DomId;
use crate::mm::{MmError, pte};

/// Where the synthetic benchmark guests are loaded.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Pages of `mmu_update` requests after the code page: two arrays (A, B) of
/// up to 512 16-byte requests each.
pub const REQ_PAGES: u64 = 4;
/// Largest `mmu_update` batch the benchmark guest issues.
pub const MAX_BATCH: u32 = 512;
/// Pages whose mappings the `mmu_update` benchmark toggles: entry `j` maps
/// target page `j` or target page `MAX_BATCH + j`.
pub const TARGET_PAGES: u64 = 2 * MAX_BATCH as u64;
/// Memory of a benchmark domain.
pub const BENCH_MEMORY: u64 = 32 << 20;
/// `DOMID_SELF`, as the 32-bit immediate the guests load.
const DOMID_SELF: u32 = guest_abi::abi::DOMID_SELF as u32;

/// A benchmark clock: time since an arbitrary fixed point.
pub type Clock = fn() -> Duration;

/// Monotonic wall-clock time (since the first call).
#[must_use]
pub fn wall_clock() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// iced-x86 refused the benchmark guest's code (a bug in this module).
    #[error("cannot assemble the benchmark guest: {0}")]
    Asm(#[from] iced_x86::IcedError),
    /// The domain could not be built.
    #[error("cannot create the benchmark domain: {0}")]
    Create(#[from] CreateError),
    /// The guest did not power off cleanly.
    #[error("benchmark guest shut down with reason {reason} instead of poweroff ({detail})")]
    Guest {
        /// Its shutdown reason.
        reason: u32,
        /// What the guest or the hypervisor said.
        detail: String,
    },
    /// The domain's bootstrap page tables do not map what the guest needs.
    #[error("benchmark setup failed: {0}")]
    Setup(String),
    /// A direct page-table update was refused.
    #[error("page-table update refused: {0}")]
    Mm(#[from] MmError),
    /// Batch size out of range.
    #[error("mmu_update batch must be 1..={MAX_BATCH}, not {0}")]
    Batch(u32),
}

/// A synthetic image: `code` at [`VIRT_BASE`], followed by zeroed request
/// and target pages.
#[must_use]
pub fn synthetic_image(code: Vec<u8>) -> GuestImage {
    let pages = 1 + REQ_PAGES + TARGET_PAGES;
    let end = VIRT_BASE + pages * 4096;
    GuestImage {
        entry: VIRT_BASE,
        virt_base: VIRT_BASE,
        paddr_offset: VIRT_BASE,
        hypercall_page: None,
        segments: vec![Segment {
            vaddr: VIRT_BASE,
            memsz: pages * 4096,
            data: code,
        }],
        virt_kstart: VIRT_BASE,
        virt_kend: end,
        guest_os: "pvsdk".into(),
        xen_version: "xen-3.0".into(),
        loader: "generic".into(),
        features: String::new(),
        suspend_cancel: false,
        mod_start_pfn: false,
    }
}

/// Emit `sched_op_compat(SCHEDOP_shutdown, reason)`.
fn shutdown(a: &mut CodeAssembler, reason: u32) -> Result<(), iced_x86::IcedError> {
    a.mov(eax, nr::SCHED_OP_COMPAT)?;
    a.mov(edi, sched::SCHEDOP_SHUTDOWN)?;
    a.mov(esi, reason)?;
    a.syscall()?;
    a.hlt()
}

/// A hypervisor with one benchmark domain running `code`; consoles go
/// nowhere.
fn bench_domain(code: Vec<u8>) -> Result<(Hypervisor, DomId), BenchError> {
    let image = synthetic_image(code);
    let frames = Hypervisor::frames_for(&[BENCH_MEMORY]);
    let mut hv = Hypervisor::new(frames, Box::new(std::io::sink()))?;
    let dom = hv.create_domain(
        &image,
        &DomainConfig {
            name: "bench".into(),
            memory: BENCH_MEMORY,
            vcpus: 1,
            cmdline: String::new(),
        },
    )?;
    Ok((hv, dom))
}

/// Run until every domain is down; the elapsed time, or why the guest failed.
fn run_timed(hv: &mut Hypervisor, dom: DomId, clock: Clock) -> Result<Duration, BenchError> {
    let t = clock();
    let out = hv.run();
    let elapsed = clock().saturating_sub(t);
    let reason = out.exit_status();
    if reason != 0 {
        let d = hv.domains.get(&dom);
        let detail = d
            .and_then(|d| d.crash_reason.clone())
            .or_else(|| {
                d.and_then(|d| d.vcpus.first()).map(|v| {
                    format!(
                        "last hypercall result {}",
                        v.cpu.gpr[reg::R12].cast_signed()
                    )
                })
            })
            .unwrap_or_default();
        return Err(BenchError::Guest { reason, detail });
    }
    Ok(elapsed)
}

/// (a) `iters` null hypercalls (`xen_version(XENVER_version)`) from a guest
/// loop through the software CPU and the run loop.
///
/// # Errors
/// See [`BenchError`].
pub fn null_hypercall(iters: u64, clock: Clock) -> Result<Duration, BenchError> {
    let mut a = CodeAssembler::new(64)?;
    let mut top = a.create_label();
    a.mov(rbx, iters.max(1))?;
    a.set_label(&mut top)?;
    a.mov(eax, nr::XEN_VERSION)?;
    a.xor(edi, edi)?;
    a.syscall()?;
    a.dec(rbx)?;
    a.jne(top)?;
    shutdown(&mut a, sched::SHUTDOWN_POWEROFF)?;
    let (mut hv, dom) = bench_domain(a.assemble(VIRT_BASE)?)?;
    run_timed(&mut hv, dom, clock)
}

/// Machine address of the L1 entry mapping `va` in the tables under `l4`.
fn l1e_addr(hv: &Hypervisor, l4: u64, va: u64) -> Result<MachineAddr, BenchError> {
    let mut table = l4 & pte::ADDR_MASK;
    for shift in [39u32, 30, 21] {
        let e = hv
            .mem
            .read_u64(MachineAddr(table + ((va >> shift) & 511) * 8))
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        if e & pte::P == 0 {
            return Err(BenchError::Setup(format!("{va:#x} is not mapped")));
        }
        table = e & pte::ADDR_MASK;
    }
    Ok(MachineAddr(table + ((va >> 12) & 511) * 8))
}

/// The two request arrays of the `mmu_update` benchmark: A maps L1 entry
/// `j` (of target page `j`) to target page `MAX_BATCH + j`, B maps it back.
type Requests = (Vec<(u64, u64)>, Vec<(u64, u64)>);

fn mmu_requests(hv: &Hypervisor, dom: DomId) -> Result<Requests, BenchError> {
    let d = hv
        .domains
        .get(&dom)
        .ok_or_else(|| BenchError::Setup("no domain".into()))?;
    let l4 = d.vcpus.first().map_or(0, |v| v.cpu.cr3);
    let first_target = 1 + REQ_PAGES;
    let mfn = |pfn: u64| -> Result<Mfn, BenchError> {
        usize::try_from(pfn)
            .ok()
            .and_then(|p| d.p2m.get(p))
            .copied()
            .ok_or_else(|| BenchError::Setup(format!("pfn {pfn} out of range")))
    };
    let flags = pte::P | pte::RW | pte::A | pte::D;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for j in 0..u64::from(MAX_BATCH) {
        let pfn = first_target + j;
        let at = l1e_addr(hv, l4, VIRT_BASE + pfn * 4096)?.0;
        let other = mfn(pfn + u64::from(MAX_BATCH))?;
        a.push((at, (other.0 << 12) | flags));
        b.push((at, (mfn(pfn)?.0 << 12) | flags));
    }
    Ok((a, b))
}

/// (b) `iters` × 2 `mmu_update` hypercalls of `batch` L1 updates each from a
/// guest loop (each update remaps one page, so every one takes and drops
/// frame references). Returns the time and the number of updates.
///
/// # Errors
/// See [`BenchError`]; a refused update makes the guest crash itself.
pub fn mmu_update_guest(
    batch: u32,
    iters: u64,
    clock: Clock,
) -> Result<(Duration, u64), BenchError> {
    if batch == 0 || batch > MAX_BATCH {
        return Err(BenchError::Batch(batch));
    }
    let req_a = VIRT_BASE + 4096;
    let req_b = req_a + u64::from(MAX_BATCH) * 16;
    let mut a = CodeAssembler::new(64)?;
    let mut top = a.create_label();
    let mut fail = a.create_label();
    a.mov(rbx, iters.max(1))?;
    a.set_label(&mut top)?;
    for reqs in [req_a, req_b] {
        a.mov(eax, nr::MMU_UPDATE)?;
        a.mov(rdi, reqs)?;
        a.mov(esi, batch)?;
        a.xor(edx, edx)?;
        a.mov(r10d, DOMID_SELF)?;
        a.syscall()?;
        a.test(rax, rax)?;
        a.jne(fail)?;
    }
    a.dec(rbx)?;
    a.jne(top)?;
    shutdown(&mut a, sched::SHUTDOWN_POWEROFF)?;
    a.set_label(&mut fail)?;
    a.mov(r12, rax)?;
    shutdown(&mut a, sched::SHUTDOWN_CRASH)?;
    let (mut hv, dom) = bench_domain(a.assemble(VIRT_BASE)?)?;
    let (ra, rb) = mmu_requests(&hv, dom)?;
    // Write the arrays into the guest's request pages (PFNs 1..).
    let d = hv
        .domains
        .get(&dom)
        .ok_or_else(|| BenchError::Setup("no domain".into()))?;
    for (k, reqs) in [ra, rb].iter().enumerate() {
        for (j, (ptr, val)) in reqs.iter().enumerate() {
            let off = (k * usize::try_from(MAX_BATCH).unwrap_or(0) + j) * 16;
            let pfn = 1 + off / 4096;
            let frame = d
                .p2m
                .get(pfn)
                .copied()
                .ok_or_else(|| BenchError::Setup("request page".into()))?;
            let at = frame.addr().0 + (off % 4096) as u64;
            hv.mem
                .write_u64(MachineAddr(at), *ptr)
                .and_then(|()| hv.mem.write_u64(MachineAddr(at + 8), *val))
                .map_err(|e| BenchError::Setup(e.to_string()))?;
        }
    }
    let t = run_timed(&mut hv, dom, clock)?;
    Ok((t, iters.max(1) * 2 * u64::from(batch)))
}

/// (b, for comparison) the same updates applied directly through
/// [`crate::mm::Mm::update_entry`], without a guest or the hypercall path.
///
/// # Errors
/// See [`BenchError`].
pub fn mmu_update_direct(
    batch: u32,
    iters: u64,
    clock: Clock,
) -> Result<(Duration, u64), BenchError> {
    if batch == 0 || batch > MAX_BATCH {
        return Err(BenchError::Batch(batch));
    }
    let mut a = CodeAssembler::new(64)?;
    shutdown(&mut a, sched::SHUTDOWN_POWEROFF)?;
    let (mut hv, dom) = bench_domain(a.assemble(VIRT_BASE)?)?;
    let (ra, rb) = mmu_requests(&hv, dom)?;
    let n = usize::try_from(batch).unwrap_or(0);
    let mut mm = hv.mm();
    let t = clock();
    for _ in 0..iters.max(1) {
        for reqs in [&ra, &rb] {
            for &(ptr, val) in &reqs[..n] {
                mm.update_entry(ptr, val, dom, dom, false)?;
            }
        }
    }
    Ok((
        clock().saturating_sub(t),
        iters.max(1) * 2 * u64::from(batch),
    ))
}

/// Phases of one `hello`-style run.
#[derive(Debug, Clone, Copy)]
pub struct CreateShutdown {
    /// `Hypervisor::new`: machine memory, frame table, M2P.
    pub machine: Duration,
    /// `create_domain`: build, boot structures, page-table validation.
    pub create: Duration,
    /// `run` until the domain has shut down.
    pub run: Duration,
}

impl CreateShutdown {
    /// Create → shutdown: all three phases.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.machine + self.create + self.run
    }
}

/// (c) A fresh hypervisor, one domain of `memory` bytes from `image`, run
/// to shutdown. The domain's periodic timer is switched off and the guest
/// gets `ticks=0` on its command line (the `hello` example then takes no
/// timer ticks), so no tick is involved.
///
/// # Errors
/// See [`BenchError`].
pub fn create_shutdown(
    image: &GuestImage,
    memory: u64,
    clock: Clock,
) -> Result<CreateShutdown, BenchError> {
    let t0 = clock();
    let frames = Hypervisor::frames_for(&[memory]);
    let mut hv = Hypervisor::new(frames, Box::new(std::io::sink()))?;
    let t1 = clock();
    let dom = hv.create_domain(
        image,
        &DomainConfig {
            name: "hello".into(),
            memory,
            vcpus: 1,
            cmdline: "ticks=0".into(),
        },
    )?;
    if let Some(d) = hv.domains.get_mut(&dom) {
        for v in &mut d.vcpus {
            v.periodic = None;
        }
    }
    let t2 = clock();
    run_timed(&mut hv, dom, clock)?;
    let t3 = clock();
    Ok(CreateShutdown {
        machine: t1.saturating_sub(t0),
        create: t2.saturating_sub(t1),
        run: t3.saturating_sub(t2),
    })
}

/// The median of `xs` (0 for none).
#[must_use]
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        f64::midpoint(xs[mid - 1], xs[mid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_hypercall_guest_runs_to_poweroff() {
        null_hypercall(10, wall_clock).expect("guest powers off");
    }

    #[test]
    fn mmu_update_guest_applies_every_batch_size() {
        for batch in [1, 16, 512] {
            let (_, n) = mmu_update_guest(batch, 2, wall_clock).expect("updates accepted");
            assert_eq!(n, 4 * u64::from(batch));
        }
    }

    #[test]
    fn mmu_update_direct_accepts_the_same_updates() {
        let (_, n) = mmu_update_direct(512, 2, wall_clock).expect("updates accepted");
        assert_eq!(n, 2048);
    }

    #[test]
    fn oversize_mmu_batch_is_refused_before_building() {
        assert!(matches!(
            mmu_update_guest(513, 1, wall_clock),
            Err(BenchError::Batch(513))
        ));
    }
}
