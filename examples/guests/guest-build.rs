//! Shared build script of every guest kernel: link freestanding with the
//! pvsdk guest linker script.
fn main() {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let ld = dir.join("../../../guest-abi/guest.ld");
    let ld = ld.canonicalize().unwrap_or(ld);
    println!("cargo:rerun-if-changed={}", ld.display());
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", ld.display());
}
