//! Helpers shared by the integration tests: the binary, scratch directories, processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The kmodlab binary under test.
pub fn kmodlab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmodlab"));
    c.current_dir(repo());
    c
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory for one test, removed first if a previous run left it.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kmodlab-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies a module directory's sources (not its build products) into `to`.
pub fn copy_module(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let keep = name.ends_with(".c")
            || name.ends_with(".h")
            || name.ends_with(".rs")
            || name == "Kbuild"
            || name == "Makefile"
            || name == "kmodlab.toml";
        if keep {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Output as text, for messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// PIDs of processes whose command line contains `needle` (QEMU started for a runs directory).
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("qemu-system") && cmd.contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Asserts that no QEMU started under `runs` is still running.
pub fn assert_no_qemu_left(runs: &Path) {
    let left = processes_with(&runs.display().to_string());
    assert!(left.is_empty(), "QEMU processes left behind: {left:?}");
}
