//! `hv run --config FILE.toml`: the domains one `hv` process runs.
//!
//! ```toml
//! console = "web"          # optional: the domain that gets stdin (default: the first)
//! cpu_vendor = "host"      # optional: "host" (default), "intel" or "amd": the CPU guests see
//!
//! [[domain]]
//! name = "web"             # optional: default is the image's file name
//! image = "hello"          # required: a path or a built-in example name
//! memory = "64M"           # optional: "128M", "1G", "4096K" or bytes; default 128M
//! vcpus = 1                # optional: 1 to 32; default 1
//! cmdline = "console=hvc0" # optional: default empty
//! ```
//!
//! Domains get ids 1 upward in file order. Every error names the domain
//! (by position and name) and the field at fault. `hv run --config` looks
//! for a relative `image` path next to the config file first, then in the
//! current directory, then among the built-in examples.

use hv_cpu::model::Vendor;
use serde::Deserialize;

/// Default memory per domain.
pub const DEFAULT_MEMORY: u64 = 128 << 20;
/// Smallest domain.
pub const MIN_MEMORY: u64 = 4 << 20;
/// Largest domain this host-process hypervisor accepts.
pub const MAX_MEMORY: u64 = 64 << 30;
/// Most vCPUs per domain.
pub const MAX_VCPUS: u32 = 32;
/// Most domains per process.
pub const MAX_DOMAINS: usize = 64;

/// One domain to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSpec {
    /// Unique name (console prefix, `--console`).
    pub name: String,
    /// Image path or built-in example name, as written.
    pub image: String,
    /// Memory in bytes.
    pub memory: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Kernel command line.
    pub cmdline: String,
}

/// Everything `hv run` runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// Domains, in domain-id order (1 upward).
    pub domains: Vec<DomainSpec>,
    /// Name of the domain whose console gets stdin (`None`: the first).
    pub console: Option<String>,
    /// The CPU vendor the software CPU presents and models (`None`: the
    /// host's; docs/CPU-VENDORS.md).
    pub cpu_vendor: Option<Vendor>,
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not TOML, or a field of the wrong type, or an unknown key.
    #[error("not a valid hv configuration (domains are [[domain]] tables): {0}")]
    Syntax(String),
    /// `cpu_vendor` is not one we model.
    #[error("cpu_vendor = {0:?}: use \"host\", \"intel\" or \"amd\"")]
    BadCpuVendor(String),
    /// No `[[domain]]` at all.
    #[error("no domains: add at least one [[domain]] table with an image")]
    NoDomains,
    /// More domains than one process runs.
    #[error("{0} domains; at most {MAX_DOMAINS} run in one hv process")]
    TooManyDomains(usize),
    /// A domain without an image.
    #[error(
        "domain #{index} has no image: add image = \"PATH\" (or an example name such as \"hello\")"
    )]
    MissingImage {
        /// 1-based position in the file.
        index: usize,
    },
    /// A memory size that cannot be read or is out of range.
    #[error("domain #{index} ({name}): bad memory size {value:?}: {why}")]
    BadMemory {
        /// 1-based position.
        index: usize,
        /// Domain name.
        name: String,
        /// What was written.
        value: String,
        /// Why it is refused.
        why: SizeError,
    },
    /// vCPU count out of range.
    #[error("domain #{index} ({name}): vcpus must be 1 to {MAX_VCPUS}, not {vcpus}")]
    BadVcpus {
        /// 1-based position.
        index: usize,
        /// Domain name.
        name: String,
        /// What was written.
        vcpus: i64,
    },
    /// A name that is empty or has characters other than `[A-Za-z0-9_.-]`.
    #[error("domain #{index}: name {name:?} must be 1 to 64 of A-Z a-z 0-9 _ . -")]
    BadName {
        /// 1-based position.
        index: usize,
        /// The name.
        name: String,
    },
    /// Two domains with the same name.
    #[error("two domains are named {0:?}; give each a unique name = \"...\"")]
    DuplicateName(String),
    /// `console` names no domain.
    #[error("console = {0:?} names no domain")]
    UnknownConsole(String),
    /// A kernel command line too long for `start_info`.
    #[error("domain #{index} ({name}): cmdline is {len} bytes; at most 1023 fit in start_info")]
    CmdlineTooLong {
        /// 1-based position.
        index: usize,
        /// Domain name.
        name: String,
        /// Its length.
        len: usize,
    },
}

/// Why a memory size is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum SizeError {
    /// Not a number with an optional K/M/G suffix.
    #[error("not a size like 128M, 1G, 4096K or a byte count")]
    Syntax,
    /// Below [`MIN_MEMORY`].
    #[error("too small: a domain needs at least 4M")]
    TooSmall,
    /// Above [`MAX_MEMORY`].
    #[error("too large: at most 64G")]
    TooLarge,
}

/// Parse a memory size: bytes, or a number with a `K`, `M` or `G` suffix
/// (powers of 1024). Must be within [`MIN_MEMORY`]..=[`MAX_MEMORY`].
///
/// # Errors
/// See [`SizeError`].
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::Syntax);
    }
    let n: u64 = num.parse().map_err(|_| SizeError::TooLarge)?;
    check_size(n.checked_mul(mul).ok_or(SizeError::TooLarge)?)
}

fn check_size(bytes: u64) -> Result<u64, SizeError> {
    if bytes < MIN_MEMORY {
        Err(SizeError::TooSmall)
    } else if bytes > MAX_MEMORY {
        Err(SizeError::TooLarge)
    } else {
        Ok(bytes)
    }
}

/// `memory = "128M"` or `memory = 134217728`.
#[derive(Deserialize, Debug)]
#[serde(untagged, expecting = "a size like \"128M\", \"1G\" or a byte count")]
enum RawSize {
    Text(String),
    Bytes(i64),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Option<String>,
    image: Option<String>,
    memory: Option<RawSize>,
    vcpus: Option<i64>,
    cmdline: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    console: Option<String>,
    cpu_vendor: Option<String>,
    #[serde(default)]
    domain: Vec<RawDomain>,
}

/// The name a domain gets from its image when it has none: the file name
/// without directories or extension.
#[must_use]
pub fn default_name(image: &str) -> String {
    let p = std::path::Path::new(image);
    p.file_stem()
        .map_or_else(|| image.to_owned(), |s| s.to_string_lossy().into_owned())
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl RunConfig {
    /// Parse and check a TOML configuration.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        if raw.domain.is_empty() {
            return Err(ConfigError::NoDomains);
        }
        if raw.domain.len() > MAX_DOMAINS {
            return Err(ConfigError::TooManyDomains(raw.domain.len()));
        }
        let mut domains = Vec::with_capacity(raw.domain.len());
        for (i, d) in raw.domain.into_iter().enumerate() {
            let index = i + 1;
            let image = d.image.ok_or(ConfigError::MissingImage { index })?;
            let explicit = d.name.is_some();
            let name = d.name.unwrap_or_else(|| default_name(&image));
            if explicit && !valid_name(&name) {
                return Err(ConfigError::BadName { index, name });
            }
            let memory = match d.memory {
                None => DEFAULT_MEMORY,
                Some(RawSize::Text(s)) => parse_size(&s).map_err(|why| ConfigError::BadMemory {
                    index,
                    name: name.clone(),
                    value: s,
                    why,
                })?,
                Some(RawSize::Bytes(n)) => u64::try_from(n)
                    .map_err(|_| SizeError::Syntax)
                    .and_then(check_size)
                    .map_err(|why| ConfigError::BadMemory {
                        index,
                        name: name.clone(),
                        value: n.to_string(),
                        why,
                    })?,
            };
            let vcpus = d.vcpus.unwrap_or(1);
            let vcpus = u32::try_from(vcpus)
                .ok()
                .filter(|v| (1..=MAX_VCPUS).contains(v))
                .ok_or_else(|| ConfigError::BadVcpus {
                    index,
                    name: name.clone(),
                    vcpus,
                })?;
            let cmdline = d.cmdline.unwrap_or_default();
            if cmdline.len() >= 1024 {
                return Err(ConfigError::CmdlineTooLong {
                    index,
                    name,
                    len: cmdline.len(),
                });
            }
            domains.push((
                explicit,
                DomainSpec {
                    name,
                    image,
                    memory,
                    vcpus,
                    cmdline,
                },
            ));
        }
        let mut cfg = Self::finish(domains, raw.console)?;
        cfg.cpu_vendor = match raw.cpu_vendor.as_deref() {
            None | Some("host") => None,
            Some(v) => Some(Vendor::parse(v).ok_or_else(|| ConfigError::BadCpuVendor(v.into()))?),
        };
        Ok(cfg)
    }

    /// A configuration of `images` that share one memory size, vCPU count
    /// and command line (`hv run IMAGE...`).
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn from_images(
        images: &[String],
        memory: u64,
        vcpus: u32,
        cmdline: &str,
        console: Option<String>,
    ) -> Result<Self, ConfigError> {
        if images.is_empty() {
            return Err(ConfigError::NoDomains);
        }
        if images.len() > MAX_DOMAINS {
            return Err(ConfigError::TooManyDomains(images.len()));
        }
        let domains = images
            .iter()
            .map(|img| {
                (
                    false,
                    DomainSpec {
                        name: default_name(img),
                        image: img.clone(),
                        memory,
                        vcpus,
                        cmdline: cmdline.to_owned(),
                    },
                )
            })
            .collect();
        Self::finish(domains, console)
    }

    /// Reject duplicate explicit names, make derived names unique (a second
    /// `hello` becomes `hello-2`), and check `console`.
    fn finish(
        domains: Vec<(bool, DomainSpec)>,
        console: Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for (explicit, d) in &domains {
            if *explicit && !seen.insert(d.name.clone()) {
                return Err(ConfigError::DuplicateName(d.name.clone()));
            }
        }
        let mut out = Vec::with_capacity(domains.len());
        for (i, (explicit, mut d)) in domains.into_iter().enumerate() {
            if !explicit {
                let base = d.name.clone();
                let mut n = i + 1;
                while seen.contains(&d.name) {
                    d.name = format!("{base}-{n}");
                    n += 1;
                }
                seen.insert(d.name.clone());
            }
            out.push(d);
        }
        if let Some(c) = &console
            && !out.iter().any(|d| &d.name == c)
        {
            return Err(ConfigError::UnknownConsole(c.clone()));
        }
        Ok(Self {
            domains: out,
            console,
            cpu_vendor: None,
        })
    }

    /// Index (0-based, = domain id − 1) of the domain that gets stdin.
    #[must_use]
    pub fn console_index(&self) -> usize {
        self.console
            .as_ref()
            .and_then(|c| self.domains.iter().position(|d| &d.name == c))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        RunConfig::from_toml(text).expect_err("config must be refused")
    }

    #[test]
    fn full_config_parses_with_defaults_and_ids_in_file_order() {
        let c = RunConfig::from_toml(
            r#"
            console = "b"
            [[domain]]
            image = "hello"
            [[domain]]
            name = "b"
            image = "/tmp/kernel.elf"
            memory = "64M"
            vcpus = 2
            cmdline = "console=hvc0"
            [[domain]]
            image = "hello"
            memory = 16777216
            "#,
        )
        .expect("valid");
        assert_eq!(c.domains.len(), 3);
        assert_eq!(c.domains[0].name, "hello");
        assert_eq!(c.domains[0].memory, DEFAULT_MEMORY);
        assert_eq!(c.domains[0].vcpus, 1);
        assert_eq!(c.domains[1].name, "b");
        assert_eq!(c.domains[1].memory, 64 << 20);
        assert_eq!(c.domains[1].vcpus, 2);
        assert_eq!(c.domains[1].cmdline, "console=hvc0");
        assert_eq!(c.domains[2].name, "hello-3");
        assert_eq!(c.domains[2].memory, 16 << 20);
        assert_eq!(c.console_index(), 1);
    }

    #[test]
    fn missing_image_is_reported_with_the_domain_position() {
        let e = err("[[domain]]\nimage = \"hello\"\n[[domain]]\nname = \"x\"\n");
        assert_eq!(e, ConfigError::MissingImage { index: 2 });
        assert!(e.to_string().contains("domain #2 has no image"));
    }

    #[test]
    fn bad_memory_sizes_are_refused_with_the_reason() {
        for (mem, why) in [
            ("\"lots\"", SizeError::Syntax),
            ("\"12X\"", SizeError::Syntax),
            ("\"-5M\"", SizeError::Syntax),
            ("\"1M\"", SizeError::TooSmall),
            ("\"65G\"", SizeError::TooLarge),
            ("\"99999999999999999999G\"", SizeError::TooLarge),
            ("-1", SizeError::Syntax),
            ("4096", SizeError::TooSmall),
        ] {
            let e = err(&format!("[[domain]]\nimage = \"hello\"\nmemory = {mem}\n"));
            match e {
                ConfigError::BadMemory { index, why: w, .. } => {
                    assert_eq!(index, 1, "{mem}");
                    assert_eq!(w, why, "{mem}");
                }
                other => panic!("{mem}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_explicit_names_are_refused() {
        let e = err(
            "[[domain]]\nname = \"a\"\nimage = \"hello\"\n[[domain]]\nname = \"a\"\nimage = \"hello\"\n",
        );
        assert_eq!(e, ConfigError::DuplicateName("a".into()));
    }

    #[test]
    fn derived_name_never_takes_an_explicit_one() {
        let c = RunConfig::from_toml(
            "[[domain]]\nimage = \"hello\"\n[[domain]]\nname = \"hello\"\nimage = \"other\"\n",
        )
        .expect("valid");
        assert_eq!(c.domains[1].name, "hello");
        assert_ne!(c.domains[0].name, "hello");
    }

    #[test]
    fn unknown_keys_bad_vcpus_bad_names_and_no_domains_are_refused() {
        assert!(matches!(
            err("[[domain]]\nimage = \"hello\"\nmem = \"1G\"\n"),
            ConfigError::Syntax(_)
        ));
        assert!(matches!(
            err("[[domain]]\nimage = \"hello\"\nvcpus = 0\n"),
            ConfigError::BadVcpus { vcpus: 0, .. }
        ));
        assert!(matches!(
            err("[[domain]]\nimage = \"hello\"\nvcpus = 33\n"),
            ConfigError::BadVcpus { vcpus: 33, .. }
        ));
        assert!(matches!(
            err("[[domain]]\nimage = \"hello\"\nname = \"a b\"\n"),
            ConfigError::BadName { .. }
        ));
        assert_eq!(err(""), ConfigError::NoDomains);
        assert!(matches!(err("[[domain]\n"), ConfigError::Syntax(_)));
        assert_eq!(
            err("console = \"zz\"\n[[domain]]\nimage = \"hello\"\n"),
            ConfigError::UnknownConsole("zz".into())
        );
    }

    #[test]
    fn cpu_vendor_is_host_intel_or_amd() {
        let cfg = |v: &str| {
            RunConfig::from_toml(&format!(
                "cpu_vendor = \"{v}\"\n[[domain]]\nimage = \"hello\"\n"
            ))
        };
        assert_eq!(cfg("host").map(|c| c.cpu_vendor), Ok(None));
        assert_eq!(cfg("AMD").map(|c| c.cpu_vendor), Ok(Some(Vendor::Amd)));
        assert_eq!(cfg("intel").map(|c| c.cpu_vendor), Ok(Some(Vendor::Intel)));
        assert_eq!(cfg("via"), Err(ConfigError::BadCpuVendor("via".into())));
    }

    #[test]
    fn sizes_accept_suffixes_and_bytes() {
        assert_eq!(parse_size("128M"), Ok(128 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("8192k"), Ok(8 << 20));
        assert_eq!(parse_size("4194304"), Ok(4 << 20));
        assert_eq!(parse_size("M"), Err(SizeError::Syntax));
    }

    #[test]
    fn example_config_in_the_repository_is_valid() {
        let text = include_str!("../../../examples/configs/two-hellos.toml");
        let c = RunConfig::from_toml(text).expect("example config parses");
        assert!(c.domains.len() >= 2);
    }
}
