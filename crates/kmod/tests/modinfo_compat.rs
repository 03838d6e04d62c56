//! `modinfo` against kmod's own on every module of the newest installed Debian kernel
//! (`/lib/modules/RELEASE`; 6.12's has 4,228 `.ko.xz` files): plain, `-F parm`, `-0` and
//! `-F alias` by file path, and by module name through the tree's indexes. Standard output,
//! standard error and the exit code must be identical.
//!
//! kmod's `modinfo` takes many modules per run, so each side gets the same batches of
//! arguments (kmod as a process, ours in-process through `modinfo::run`); a batch that differs
//! is compared again module by module to count and show what differs. The test prints the
//! counts and both sides' wall time for each mode.
//!
//! Skipped (named in the suite's summary) when `/sbin/modinfo` or the tree is missing. Run it in release
//! mode: `cargo test --release -p kmodlab-kmod --test modinfo_compat -- --nocapture`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KMOD_MODINFO: &str = "/sbin/modinfo";
const BATCH: usize = 256;

/// What one run printed and returned.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    code: i32,
}

fn kmod(args: &[OsString]) -> Outcome {
    let output = Command::new(KMOD_MODINFO)
        .arg0("modinfo")
        .args(args)
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("run /sbin/modinfo");
    Outcome {
        stdout: output.stdout,
        stderr: output.stderr,
        code: output.status.code().unwrap_or(128),
    }
}

fn ours(args: &[OsString]) -> Outcome {
    let mut argv = vec![OsString::from("modinfo")];
    argv.extend_from_slice(args);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = kmodlab_kmod::modinfo::run(
        &argv,
        &kmodlab_kmod::kernel_state::Kernel::host(),
        &mut stdout,
        &mut stderr,
    );
    Outcome {
        stdout,
        stderr,
        code,
    }
}

fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            module_files(&path, out);
        } else if path.as_os_str().as_bytes().windows(4).any(|w| w == b".ko.")
            || path.as_os_str().as_bytes().ends_with(b".ko")
        {
            out.push(path);
        }
    }
}

/// The module names of the tree: every module in `modules.dep` and every built-in one.
fn module_names(tree: &Path) -> Vec<OsString> {
    let mut names = Vec::new();
    for (file, line_end) in [("modules.dep", b':'), ("modules.builtin", b'\n')] {
        let text = std::fs::read(tree.join(file)).unwrap_or_default();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let path = line.split(|&b| b == line_end).next().unwrap_or_default();
            let base = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
            let name = base.split(|&b| b == b'.').next().unwrap_or_default();
            names.push(OsString::from(std::ffi::OsStr::from_bytes(name)));
        }
    }
    names
}

struct ModeResult {
    same: usize,
    total: usize,
    kmod_time: Duration,
    our_time: Duration,
    differences: Vec<String>,
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.lines().take(12).collect();
    if text.lines().count() > 12 {
        lines.push("...");
    }
    lines.join("\n    ")
}

/// Runs both sides on every item, `BATCH` at a time, with `options` before each batch.
fn compare_mode(options: &[&str], items: &[OsString]) -> ModeResult {
    let mut result = ModeResult {
        same: 0,
        total: items.len(),
        kmod_time: Duration::ZERO,
        our_time: Duration::ZERO,
        differences: Vec::new(),
    };
    let with_options = |chunk: &[OsString]| -> Vec<OsString> {
        options
            .iter()
            .map(OsString::from)
            .chain(chunk.iter().cloned())
            .collect()
    };
    for chunk in items.chunks(BATCH) {
        let args = with_options(chunk);
        let start = Instant::now();
        let theirs = kmod(&args);
        result.kmod_time += start.elapsed();
        let start = Instant::now();
        let mine = ours(&args);
        result.our_time += start.elapsed();
        if theirs == mine {
            result.same += chunk.len();
            continue;
        }
        for item in chunk {
            let args = with_options(std::slice::from_ref(item));
            let (theirs, mine) = (kmod(&args), ours(&args));
            if theirs == mine {
                result.same += 1;
            } else if result.differences.len() < 5 {
                result.differences.push(format!(
                    "{:?} {item:?}:\n  kmod (exit {}):\n    {}\n    stderr: {}\n  ours (exit {}):\n    {}\n    stderr: {}",
                    options,
                    theirs.code,
                    show(&theirs.stdout),
                    show(&theirs.stderr),
                    mine.code,
                    show(&mine.stdout),
                    show(&mine.stderr),
                ));
            }
        }
    }
    result
}

#[test]
fn modinfo_matches_kmod_on_every_debian_module() {
    if kmodlab_testkit::require(KMOD_MODINFO).is_none() {
        return;
    }
    let Some(host) = kmodlab_testkit::host_kernel() else {
        return;
    };
    let tree = host.modules_dir;
    let mut files = Vec::new();
    module_files(&tree.join("kernel"), &mut files);
    files.sort();
    let files: Vec<OsString> = files.into_iter().map(PathBuf::into_os_string).collect();
    let names = module_names(&tree);
    assert!(files.len() > 1000, "only {} modules found", files.len());

    let kversion = format!("--set-version={}", host.release);
    let modes: [(&str, Vec<&str>, &[OsString]); 5] = [
        ("plain", vec![], &files),
        ("-F parm", vec!["-F", "parm"], &files),
        ("-0", vec!["-0"], &files),
        ("-F alias", vec!["-F", "alias"], &files),
        ("by name (-k)", vec![kversion.as_str()], &names),
    ];
    let mut failures = Vec::new();
    let (mut kmod_total, mut our_total) = (Duration::ZERO, Duration::ZERO);
    for (label, options, items) in &modes {
        let r = compare_mode(options, items);
        kmod_total += r.kmod_time;
        our_total += r.our_time;
        println!(
            "modinfo {label}: {}/{} identical to kmod; wall time kmod {:.2} s, kmodlab {:.2} s",
            r.same,
            r.total,
            r.kmod_time.as_secs_f64(),
            r.our_time.as_secs_f64()
        );
        if r.same != r.total {
            failures.push(format!(
                "{label}: {} of {} differ\n{}",
                r.total - r.same,
                r.total,
                r.differences.join("\n")
            ));
        }
    }
    println!(
        "all modes: wall time kmod {:.2} s, kmodlab {:.2} s",
        kmod_total.as_secs_f64(),
        our_total.as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
