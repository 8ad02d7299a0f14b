//! The `hv` command end to end: built-in guests by name, console on stdout,
//! the guest's shutdown reason as the exit status.

use std::process::Command;

fn hv(args: &[&str]) -> (String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_hv"))
        .args(args)
        .output()
        .expect("run hv");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn hv_run_hello_prints_the_greeting_and_exits_zero() {
    let (out, code) = hv(&["run", "hello", "--memory", "32M"]);
    assert!(out.starts_with("Hello from a pvsdk PV guest!\n"), "{out}");
    assert!(out.contains("tick 3 at "), "{out}");
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn hv_run_exit_status_is_the_shutdown_reason() {
    for reason in ["1", "2", "4"] {
        let cmdline = format!("reason={reason}");
        let (out, code) = hv(&[
            "run",
            "xtf-shutdown",
            "--memory",
            "32M",
            "--cmdline",
            &cmdline,
        ]);
        assert!(
            out.contains(&format!("PASS: shutting down with reason {reason}")),
            "{out}"
        );
        assert_eq!(code, Some(reason.parse().expect("number")), "{out}");
    }
}

#[test]
fn hv_examples_lists_the_built_in_guests() {
    let (out, code) = hv(&["examples"]);
    assert_eq!(code, Some(0));
    for g in [
        "hello",
        "mmu",
        "xtf-boot",
        "xtf-events",
        "xtf-shutdown",
        "xtf-traps",
        "xtf-user",
    ] {
        assert!(out.lines().any(|l| l == g), "{g} missing from {out}");
    }
    assert!(
        !out.lines().any(|l| l == "xtf-common"),
        "library crate listed: {out}"
    );
}
