//! The README's one-command two-domain example, through the `hv` binary:
//! `hv run vchan-a vchan-b` streams both ways between the two domains and
//! exits 0 with both `PASS` lines on stdout (prefixed with the domain
//! names, as `hv run` does for several domains).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: an unoptimised `hv` on a busy host. The run is killed after it.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn hv_run_vchan_pair_prints_both_passes_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hv"))
        .args(["run", "vchan-a", "vchan-b", "--memory", "32M"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run hv");
    let start = Instant::now();
    // The output (a few KiB) fits the pipe, so waiting first cannot block hv.
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for hv") {
            break Some(s);
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut text).expect("read hv's stdout");
    }
    let status = status.unwrap_or_else(|| panic!("hv did not finish in {LIMIT:?}\n{text}"));
    for name in ["vchan-a", "vchan-b"] {
        let want =
            format!("[{name}] PASS: {name} sent 131072 bytes and received 131072 verified bytes");
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "no `{want}`\n{text}"
        );
    }
    assert!(!text.contains("FAIL"), "{text}");
    assert_eq!(status.code(), Some(0), "{text}");
}
