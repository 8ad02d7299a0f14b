//! `hv`: run Xen x86-64 PV guests without a Xen host.
//!
//! ```text
//! hv run IMAGE [IMAGE...] [--memory SIZE] [--vcpus N] [--cmdline STR]
//! ```
//!
//! `IMAGE` is a path to a Xen PV64 kernel or the name of a built-in example
//! guest (`hv run hello`). The exit status is the guest's shutdown reason
//! (poweroff 0, reboot 1, suspend 2, crash 3, watchdog 4; with several
//! domains the first non-zero one); a runtime error prints a message and
//! exits 125. `RUST_LOG=debug` traces every hypercall.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use hv_runtime::domain::image::GuestImage;
use hv_runtime::hv::{DomainConfig, Hypervisor};

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
        #[arg(required = true)]
        images: Vec<String>,
        /// Memory per domain (e.g. 128M, 1G, or bytes).
        #[arg(long, default_value = "128M", value_parser = parse_size)]
        memory: u64,
        /// vCPUs per domain.
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// Kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
    },
    /// List the built-in example guests.
    Examples,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 128M"))?;
    let bytes = n
        .checked_mul(mul)
        .ok_or_else(|| format!("{s} is too large"))?;
    if bytes < (4 << 20) {
        return Err(format!("{s} is too small: a domain needs at least 4M"));
    }
    Ok(bytes)
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

fn run(images: &[String], memory: u64, vcpus: u32, cmdline: &str) -> anyhow::Result<u32> {
    let mut parsed = Vec::new();
    for img in images {
        let path = resolve(img)?;
        let data = std::fs::read(&path)
            .with_context(|| format!("cannot read kernel image {}", path.display()))?;
        let image =
            GuestImage::parse(&data).with_context(|| format!("cannot load {}", path.display()))?;
        let name = path
            .file_stem()
            .map_or_else(|| img.clone(), |s| s.to_string_lossy().into_owned());
        parsed.push((name, image));
    }
    let frames = Hypervisor::frames_for(&vec![memory; parsed.len()]);
    let mut hv = Hypervisor::new(frames, Box::new(std::io::stdout()))
        .context("cannot set up machine memory")?;
    hv.prefix_console = parsed.len() > 1;
    for (name, image) in &parsed {
        let cfg = DomainConfig {
            name: name.clone(),
            memory,
            vcpus,
            cmdline: cmdline.to_owned(),
        };
        hv.create_domain(image, &cfg)
            .with_context(|| format!("cannot create domain {name}"))?;
    }
    let outcome = hv.run();
    for (id, name, reason) in &outcome.domains {
        tracing::info!(id, name, reason, "domain finished");
    }
    Ok(outcome.exit_status())
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
        Cmd::Run {
            images,
            memory,
            vcpus,
            cmdline,
        } => match run(&images, memory, vcpus, &cmdline) {
            Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(125)),
            Err(e) => {
                eprintln!("hv: {e:#}");
                ExitCode::from(125)
            }
        },
    }
}
