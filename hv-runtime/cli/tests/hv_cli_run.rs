//! The `hv` command: `hv run` with several images or a config file, its
//! exit statuses and error messages.

use std::process::{Command, Output, Stdio};

fn hv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hv"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .output()
        .expect("run hv")
}

fn example_config(name: &str) -> String {
    format!(
        "{}/../../examples/configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn run_config_boots_every_domain_with_prefixed_consoles() {
    let out = hv(&["run", "--config", &example_config("two-hellos.toml")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[greeter] Hello from a pvsdk PV guest!"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[second] Hello from a pvsdk PV guest!"),
        "{stdout}"
    );
}

#[test]
fn run_two_images_gives_unique_names() {
    let out = hv(&["run", "hello", "hello", "--memory", "16M"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("[hello] Hello"), "{stdout}");
    assert!(stdout.contains("[hello-2] Hello"), "{stdout}");
}

#[test]
fn config_errors_exit_125_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("hv-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = [
        ("[[domain]]\nname = \"a\"\n", "has no image"),
        (
            "[[domain]]\nimage = \"hello\"\nmemory = \"lots\"\n",
            "bad memory size",
        ),
        (
            "[[domain]]\nname = \"a\"\nimage = \"hello\"\n[[domain]]\nname = \"a\"\nimage = \"hello\"\n",
            "two domains are named \"a\"",
        ),
        (
            "[[domain]]\nimage = \"no-such-kernel\"\n",
            "no such kernel image",
        ),
    ];
    for (i, (text, msg)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        std::fs::write(&path, text).expect("write config");
        let out = hv(&["run", "--config", path.to_str().expect("utf-8 path")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{text}: {stderr}");
        assert!(stderr.contains(msg), "{text}: {stderr}");
    }
    let out = hv(&[
        "run",
        "--config",
        &example_config("two-hellos.toml"),
        "--console",
        "nobody",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no domain"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_config_file_is_a_runtime_error() {
    let out = hv(&["run", "--config", "/nonexistent/hv.toml"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/hv.toml"));
}

#[test]
fn relative_image_paths_in_a_config_are_found_next_to_it() {
    let dir = std::env::temp_dir().join(format!("hv-cli-rel-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("kernels")).expect("temp dir");
    let hello = pvsdk_examples::guest_image("hello").expect("hello is built");
    std::fs::copy(hello, dir.join("kernels/k.elf")).expect("copy kernel");
    let cfg = dir.join("vm.toml");
    std::fs::write(
        &cfg,
        "[[domain]]\nimage = \"kernels/k.elf\"\nmemory = \"16M\"\n",
    )
    .expect("write config");
    // Run from elsewhere: the path must resolve against the config's directory.
    let out = Command::new(env!("CARGO_BIN_EXE_hv"))
        .args(["run", "--config", cfg.to_str().expect("utf-8 path")])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .output()
        .expect("run hv");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from a pvsdk PV guest!"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The demo boots and shuts down cleanly whichever vendor the guest sees
/// (`--cpu-vendor`), on any host; a bad vendor is a usage error.
#[test]
fn hello_runs_on_both_modelled_vendors() {
    for vendor in ["intel", "amd", "host"] {
        let out = hv(&["run", "hello", "--cpu-vendor", vendor]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{vendor}: {out:?}");
        assert!(stdout.contains("Goodbye."), "{vendor}: {stdout}");
    }
    let out = hv(&["run", "hello", "--cpu-vendor", "via"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("via"));
}
