//! Build the freestanding guest kernels in `examples/guests` (a separate
//! workspace: guests need `panic = "abort"` and a custom linker script) with
//! a nested `cargo build`, so that `cargo build`/`cargo test` at the root
//! produce them with no extra step. The images land in
//! `$OUT_DIR/guests/<name>` and their directory is exported to the crate as
//! `PVSDK_GUEST_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment that the outer cargo sets for build scripts and that must not
/// leak into the nested build (it would apply the outer crate's flags,
/// wrappers or target directory to the guests).
const SCRUB: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "OUT_DIR",
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let guests = manifest_dir.join("guests");
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let target_dir = out_dir.join("target");
    let image_dir = out_dir.join("guests");

    println!("cargo:rerun-if-changed={}", guests.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("c-kernel").display()
    );
    println!("cargo:rerun-if-env-changed=PVSDK_GUEST_CC");
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../guest-abi").display()
    );

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guests)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for var in SCRUB {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| {
            k.starts_with("CARGO_CFG_")
                || k.starts_with("CARGO_FEATURE_")
                || k.starts_with("CARGO_PROFILE_")
        }) {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the example guests: {e}"));
    assert!(
        status.success(),
        "building the example guests in {} failed (see the errors above); \
         try `cd examples/guests && cargo build --release`",
        guests.display()
    );

    std::fs::create_dir_all(&image_dir).expect("create guest image dir");
    let built = target_dir.join("x86_64-unknown-linux-gnu/release");
    let mut names = Vec::new();
    for name in guest_names(&guests) {
        let src = built.join(&name);
        let dst = image_dir.join(&name);
        std::fs::copy(&src, &dst)
            .unwrap_or_else(|e| panic!("copy guest image {}: {e}", src.display()));
        names.push(name);
    }
    // The gcc-built C kernel (no guest-abi: an independent check of the ABI).
    build_c_kernel(&manifest_dir.join("c-kernel"), &image_dir.join(C_KERNEL));
    names.push(C_KERNEL.to_owned());
    names.sort();
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    std::fs::write(
        out_dir.join("guest_names.rs"),
        format!("/// Names of the example guests built by `build.rs`.\npub const GUESTS: &[&str] = &[{}];\n", list.join(", ")),
    )
    .expect("write guest_names.rs");
    println!("cargo:rustc-env=PVSDK_GUEST_DIR={}", image_dir.display());
}

/// Name of the C kernel's image.
const C_KERNEL: &str = "c-kernel";

/// Compile and link `examples/c-kernel` (GNU assembler + C, its own linker
/// script) into a freestanding ELF64 PV kernel at `out`. The compiler is
/// `$PVSDK_GUEST_CC` or `gcc`.
fn build_c_kernel(src: &Path, out: &Path) {
    let cc = std::env::var_os("PVSDK_GUEST_CC").unwrap_or_else(|| "gcc".into());
    let mut cmd = Command::new(&cc);
    cmd.args([
        "-ffreestanding",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-fno-pic",
        // Linked in the top 2 GiB of the address space, as Linux is.
        "-mcmodel=kernel",
        "-mno-red-zone",
        "-mno-sse",
        "-mno-mmx",
        "-fno-stack-protector",
        "-fno-asynchronous-unwind-tables",
        "-fno-builtin",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wl,--build-id=none",
    ])
    .arg(format!("-Wl,-T,{}", src.join("kernel.ld").display()))
    .arg("-o")
    .arg(out)
    .arg(src.join("head.S"))
    .arg(src.join("kernel.c"));
    for var in ["CFLAGS", "LDFLAGS", "CPPFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "cannot run the C compiler {:?} to build examples/c-kernel: {e}. \
             Install gcc (e.g. `apt-get install gcc`) or point PVSDK_GUEST_CC at \
             a gcc-compatible compiler for x86-64.",
            cc
        )
    });
    assert!(
        status.success(),
        "building examples/c-kernel with {cc:?} failed (see the compiler errors above)"
    );
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key} for build scripts"))
}

/// Every package directory under `guests/` with a `Cargo.toml` and a
/// `src/main.rs` is a guest whose binary has the package's directory name;
/// library crates shared by guests (such as `xtf-common`) are skipped.
fn guest_names(guests: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(guests).expect("read examples/guests") {
        let path = entry.expect("dir entry").path();
        if path.join("Cargo.toml").is_file()
            && path.join("src/main.rs").is_file()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_owned());
        }
    }
    names
}
