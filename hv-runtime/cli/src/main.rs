//! `hv`: run Xen x86-64 PV guests without a Xen host.
//!
//! ```text
//! hv run IMAGE [IMAGE...] [--memory SIZE] [--vcpus N] [--cmdline STR] [--console NAME] [--cpu-vendor host|intel|amd]
//! hv run --config FILE.toml [--console NAME]
//! hv bench [--runs N] [--quick]
//! hv examples
//! ```
//!
//! `IMAGE` is a path to a Xen PV64 kernel or the name of a built-in example
//! guest (`hv run hello`). Domains get ids 1 upward in the order given. The
//! exit status is the guests' shutdown reason (poweroff 0, reboot 1,
//! suspend 2, crash 3, watchdog 4; with several domains the first non-zero
//! one); Ctrl-C stops every domain, flushes the consoles and exits 130; a
//! runtime error prints a message and exits 125. stdin goes to the focused
//! domain (the first, or `--console NAME`). `RUST_LOG=debug` traces every
//! hypercall.
//!
//! The one `unsafe` block of the binary is [`thread_cpu_time`] (a libc
//! clock read for `hv bench --clock cpu`), listed in `docs/UNSAFE.md`.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use hv_cli::config::{self, RunConfig};
use hv_cpu::model::{CpuModel, Vendor};
use hv_runtime::bench;
use hv_runtime::console::ThreadedInput;
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, EXIT_INTERRUPTED, Hypervisor};
use hv_runtime::machine::DomId;

/// Exit status for a runtime error (as `env`/`timeout` use it).
const EXIT_RUNTIME_ERROR: u8 = 125;

#[derive(Parser)]
#[command(
    name = "hv",
    version,
    about = "Run Xen x86-64 PV guests in a user-space hypervisor"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot one or more PV64 domains and stream their consoles to stdout.
    Run {
        /// Kernel images (paths, or built-in example names such as `hello`).
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        images: Vec<String>,
        /// A TOML file describing the domains (`[[domain]]` tables with
        /// image, memory, vcpus, cmdline, name).
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// Memory per domain (e.g. 128M, 1G, or bytes).
        #[arg(long, default_value = "128M", value_parser = parse_size, conflicts_with = "config")]
        memory: u64,
        /// vCPUs per domain.
        #[arg(long, default_value_t = 1, conflicts_with = "config")]
        vcpus: u32,
        /// Kernel command line.
        #[arg(long, default_value = "", conflicts_with = "config")]
        cmdline: String,
        /// The domain (by name) that gets stdin; default: the first one.
        #[arg(long, value_name = "NAME")]
        console: Option<String>,
        /// The CPU guests see and the software CPU models: `host` (the
        /// host's vendor), `intel` or `amd`. Overrides `cpu_vendor` in
        /// --config.
        #[arg(long, value_name = "VENDOR", value_parser = ["host", "intel", "amd"])]
        cpu_vendor: Option<String>,
    },
    /// Measure the hypervisor's hot paths (medians of several runs).
    Bench {
        /// Runs per measurement; the median is printed.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=101))]
        runs: u32,
        /// Fewer operations per run (a quick smoke run; noisier figures).
        #[arg(long)]
        quick: bool,
        /// Only the measurements whose group (hypercall, mmu, hello) contains this.
        #[arg(long, default_value = "")]
        only: String,
        /// `cpu`: this thread's CPU time (not inflated when other processes
        /// compete for the host's cores); `wall`: elapsed time.
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "wall"])]
        clock: String,
    },
    /// List the built-in example guests.
    Examples,
}

fn parse_size(s: &str) -> Result<u64, String> {
    config::parse_size(s).map_err(|e| format!("{s:?}: {e}"))
}

fn resolve(image: &str) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(image);
    if p.exists() {
        return Ok(p);
    }
    if let Some(p) = pvsdk_examples::guest_image(image) {
        return Ok(p);
    }
    bail!(
        "no such kernel image {image:?}; give a path or one of the examples: {}",
        pvsdk_examples::GUESTS.join(", ")
    )
}

fn load(image: &str) -> anyhow::Result<GuestImage> {
    let path = resolve(image)?;
    let data = std::fs::read(&path)
        .with_context(|| format!("cannot read kernel image {}", path.display()))?;
    GuestImage::parse(&data).with_context(|| format!("cannot load {}", path.display()))
}

fn run(cfg: &RunConfig, stop: Arc<AtomicBool>) -> anyhow::Result<u32> {
    let mut images = Vec::new();
    for d in &cfg.domains {
        images.push(load(&d.image).with_context(|| format!("domain {}", d.name))?);
    }
    let memories: Vec<u64> = cfg.domains.iter().map(|d| d.memory).collect();
    let frames = Hypervisor::frames_for(&memories);
    let mut hv = Hypervisor::new(frames, Box::new(std::io::stdout()))
        .context("cannot set up machine memory")?;
    hv.prefix_console = cfg.domains.len() > 1;
    if let Some(v) = cfg.cpu_vendor {
        hv.cpu_model = CpuModel::of(v);
    }
    for (d, image) in cfg.domains.iter().zip(&images) {
        let dc = DomainConfig {
            name: d.name.clone(),
            memory: d.memory,
            vcpus: d.vcpus,
            cmdline: d.cmdline.clone(),
        };
        hv.create_domain(image, &dc)
            .with_context(|| format!("cannot create domain {}", d.name))?;
    }
    hv.focus = DomId(u16::try_from(cfg.console_index() + 1).context("too many domains")?);
    hv.input = Some(Box::new(
        ThreadedInput::spawn(std::io::stdin()).context("cannot start the stdin reader")?,
    ));
    hv.stop = Some(stop);
    let outcome = hv.run();
    for (id, name, reason) in &outcome.domains {
        tracing::info!(id = id.0, name, ?reason, "domain finished");
    }
    if outcome.interrupted {
        eprintln!("hv: interrupted; domains stopped");
    }
    Ok(outcome.exit_status())
}

/// What `hv bench` measures: one row per figure.
struct Row {
    name: String,
    ns_per_op: f64,
    goal: Option<Goal>,
}

enum Goal {
    /// At most this many ns per operation.
    MaxNs(f64),
    /// At least this many operations per second.
    MinOps(f64),
}

fn per_op(t: std::time::Duration, ops: u64) -> f64 {
    // Precision loss is irrelevant for reporting.
    t.as_secs_f64() * 1e9 / ops.max(1) as f64
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
#[expect(unsafe_code, reason = "std has no thread CPU clock; docs/UNSAFE.md")]
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call,
    // and `clock_gettime` only writes that struct; CLOCK_THREAD_CPUTIME_ID
    // exists on every Linux we build for (an error leaves `ts` zero).
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if r != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn bench_cmd(runs: u32, quick: bool, only: &str, clock_name: &str) -> anyhow::Result<()> {
    let clock: bench::Clock = if clock_name == "wall" {
        bench::wall_clock
    } else {
        thread_cpu_time
    };
    let scale: u64 = if quick { 10 } else { 1 };
    let mut rows = Vec::new();
    let median = |f: &mut dyn FnMut() -> anyhow::Result<f64>| -> anyhow::Result<f64> {
        let mut xs = Vec::new();
        for _ in 0..runs {
            xs.push(f()?);
        }
        Ok(bench::median(xs))
    };

    if "hypercall".contains(only) {
        let n = 2_000_000 / scale;
        let ns = median(&mut || Ok(per_op(bench::null_hypercall(n, clock)?, n)))?;
        rows.push(Row {
            name: "null hypercall xen_version(0), guest loop".into(),
            ns_per_op: ns,
            goal: Some(Goal::MaxNs(100.0)),
        });
    }

    for batch in [1u32, 16, 512] {
        if !"mmu".contains(only) {
            break;
        }
        // About 2M updates per run at large batches, fewer hypercalls' worth
        // at batch 1.
        let iters = (if batch == 1 {
            500_000
        } else {
            2_000_000 / u64::from(batch) / 2
        }) / scale;
        let ns = median(&mut || {
            let (t, ops) = bench::mmu_update_guest(batch, iters, clock)?;
            Ok(per_op(t, ops))
        })?;
        rows.push(Row {
            name: format!("mmu_update L1, batch {batch:>3}, hypercall from guest"),
            ns_per_op: ns,
            goal: (batch == 512).then_some(Goal::MinOps(10e6)),
        });
        let ns = median(&mut || {
            let (t, ops) = bench::mmu_update_direct(batch, iters, clock)?;
            Ok(per_op(t, ops))
        })?;
        rows.push(Row {
            name: format!("mmu_update L1, batch {batch:>3}, direct mm API"),
            ns_per_op: ns,
            goal: None,
        });
    }

    let hello = load("hello")?;
    for memory in [config::DEFAULT_MEMORY, 16 << 20] {
        if !"hello".contains(only) {
            break;
        }
        let mut phases = Vec::new();
        let ns = median(&mut || {
            let p = bench::create_shutdown(&hello, memory, clock)?;
            phases.push(p);
            Ok(per_op(p.total(), 1))
        })?;
        let med = |f: fn(&bench::CreateShutdown) -> std::time::Duration| {
            bench::median(phases.iter().map(|p| per_op(f(p), 1)).collect())
        };
        rows.push(Row {
            name: format!(
                "hello create->shutdown, {} MiB (machine {:.0} + create {:.0} + run {:.0} us)",
                memory >> 20,
                med(|p| p.machine) / 1e3,
                med(|p| p.create) / 1e3,
                med(|p| p.run) / 1e3,
            ),
            ns_per_op: ns,
            goal: Some(Goal::MaxNs(1e6)),
        });
    }

    println!(
        "hv bench: medians of {runs} run(s), {} time{}",
        if clock_name == "wall" {
            "wall-clock"
        } else {
            "thread CPU"
        },
        if quick { " (quick)" } else { "" }
    );
    println!(
        "{:<86} {:>14} {:>16}  goal",
        "measurement", "ns/op", "ops/s"
    );
    for r in &rows {
        let ops = 1e9 / r.ns_per_op.max(f64::MIN_POSITIVE);
        let goal = match r.goal {
            None => String::new(),
            Some(Goal::MaxNs(g)) => format!(
                "<= {g:.0} ns: {}",
                if r.ns_per_op <= g { "met" } else { "MISSED" }
            ),
            Some(Goal::MinOps(g)) => format!(
                ">= {:.0} M/s: {}",
                g / 1e6,
                if ops >= g { "met" } else { "MISSED" }
            ),
        };
        println!("{:<86} {:>14.1} {:>16.0}  {goal}", r.name, r.ns_per_op, ops);
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Examples => {
            for g in pvsdk_examples::GUESTS {
                println!("{g}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Bench {
            runs,
            quick,
            only,
            clock,
        } => match bench_cmd(runs, quick, &only, &clock) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hv bench: {e:#}");
                ExitCode::from(EXIT_RUNTIME_ERROR)
            }
        },
        Cmd::Run {
            images,
            config,
            memory,
            vcpus,
            cmdline,
            console,
            cpu_vendor,
        } => {
            let cfg = match config {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .and_then(|text| {
                        RunConfig::from_toml(&text)
                            .with_context(|| format!("in {}", path.display()))
                    })
                    .map(|mut c| {
                        // Relative image paths are relative to the config file
                        // when such a file exists there.
                        let dir = path.parent().unwrap_or(std::path::Path::new("."));
                        for d in &mut c.domains {
                            let beside = dir.join(&d.image);
                            if std::path::Path::new(&d.image).is_relative() && beside.is_file() {
                                d.image = beside.to_string_lossy().into_owned();
                            }
                        }
                        c
                    })
                    .and_then(|mut c| {
                        if console.is_some() {
                            c.console = console;
                            if let Some(name) = &c.console
                                && !c.domains.iter().any(|d| &d.name == name)
                            {
                                bail!("--console {name:?} names no domain");
                            }
                        }
                        Ok(c)
                    }),
                None => RunConfig::from_images(&images, memory, vcpus, &cmdline, console)
                    .map_err(anyhow::Error::from),
            }
            .map(|mut c| {
                match cpu_vendor.as_deref() {
                    Some("host") => c.cpu_vendor = None,
                    Some(v) => c.cpu_vendor = Vendor::parse(v),
                    None => {}
                }
                c
            });
            // Ctrl-C: the first stops the run loop (consoles are flushed, exit
            // 130); a second one while stopping exits at once.
            let stop = Arc::new(AtomicBool::new(false));
            let hooks = signal_hook::flag::register_conditional_shutdown(
                signal_hook::consts::SIGINT,
                i32::from(u8::try_from(EXIT_INTERRUPTED).unwrap_or(EXIT_RUNTIME_ERROR)),
                Arc::clone(&stop),
            )
            .and_then(|_| {
                signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))
            });
            let result = hooks
                .context("cannot install the SIGINT handler")
                .and(cfg)
                .and_then(|cfg| run(&cfg, stop));
            match result {
                Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(EXIT_RUNTIME_ERROR)),
                Err(e) => {
                    eprintln!("hv: {e:#}");
                    ExitCode::from(EXIT_RUNTIME_ERROR)
                }
            }
        }
    }
}
