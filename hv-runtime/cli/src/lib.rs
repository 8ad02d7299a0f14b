//! # hv-cli
//!
//! The `hv` command (`src/main.rs`): argument parsing, the `--config` TOML
//! file, Ctrl-C handling, logging and `hv bench`, on top of the
//! [`hv_runtime`] library. The library part is what the binary parses before
//! it builds a [`hv_runtime::hv::Hypervisor`]: [`config`], the domains one
//! `hv` process runs.
//!
//! ```
//! use hv_cli::config::RunConfig;
//!
//! let cfg = RunConfig::from_toml(
//!     r#"
//!     [[domain]]
//!     image = "hello"
//!     memory = "64M"
//!     "#,
//! )
//! .expect("a valid configuration");
//! assert_eq!(cfg.domains[0].name, "hello");
//! assert_eq!(cfg.domains[0].memory, 64 << 20);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
