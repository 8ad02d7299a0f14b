//! Compiled Rust code (this test binary's own functions) runs correctly in
//! the interpreter.

mod interp_util;

use hv_cpu::interp::InterpVcpu;
use interp_util::workload::{HostImage, crc32_work, sha256_work};

#[test]
fn crc32_matches_native() {
    let img = HostImage::load();
    let mut cpu = InterpVcpu::new();
    let (r, n) = img.call(&mut cpu, crc32_work, 7, 4096);
    assert_eq!(r, crc32_work(7, 4096), "crc32");
    assert!(n > 4096 * 8);
}

/// Unoptimised builds call libc's `memcpy`/`memset` (AVX variants, not
/// mapped), so SHA-256 runs only in optimised builds (`--release`).
#[test]
fn sha256_matches_native() {
    if cfg!(debug_assertions) {
        return;
    }
    let img = HostImage::load();
    let mut cpu = InterpVcpu::new();
    let (r, n) = img.call(&mut cpu, sha256_work, 42, 256);
    assert_eq!(r, sha256_work(42, 256), "sha256");
    assert!(n > 1000);
}
