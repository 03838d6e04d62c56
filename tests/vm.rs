//! End-to-end tests that boot real VMs: real QEMU, the Debian kernel, real Kbuild builds.
//! Each test names the runs directory it used; a failing case prints its run directory and the
//! console tail. VM tests run one at a time (each may start several VMs itself).

mod util;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use util::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every lab and every failure-mode module, two VMs at a time: each case must pass its spec, and
/// the verdicts must be the ones each module exists to prove.
#[test]
fn vm_labs_and_failure_modes_pass_their_specs() {
    let _g = lock();
    let runs = scratch("vm-all");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "test",
            "-j",
            "2",
            "--format",
            "json",
            "labs/kernel_modules",
            "tests/modules",
        ])
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let cases = json["cases"].as_array().unwrap();
    let mut failed = Vec::new();
    let mut verdicts = BTreeMap::new();
    for c in cases {
        let key = format!(
            "{} / {}",
            c["spec"].as_str().unwrap(),
            c["case"].as_str().unwrap()
        );
        if c["passed"] != Value::Bool(true) {
            failed.push(format!(
                "{key}: {}\n  run dir: {}\n  console tail:\n    {}",
                c["failures"],
                c["result"]["run_dir"],
                c["console_tail"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .map(|l| l.as_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join("\n    "))
                    .unwrap_or_default()
            ));
        }
        verdicts.insert(
            key,
            c["result"]["verdict"]
                .as_str()
                .unwrap_or("none")
                .to_string(),
        );
    }
    assert!(
        failed.is_empty(),
        "failed cases:\n{}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        cases.len() >= 44,
        "every lab and failure mode ran: {verdicts:?}"
    );
    let verdict_of = |spec: &str| -> Vec<&str> {
        verdicts
            .iter()
            .filter(|(k, _)| k.starts_with(spec))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (spec, want) in [
        ("labs/kernel_modules/1-2-test-mod", "pass"),
        ("labs/kernel_modules/4-multi-mod", "pass"),
        ("labs/kernel_modules/5-oops-mod", "crashed"),
        ("labs/kernel_modules/6-cmd-mod", "pass"),
        ("labs/kernel_modules/7-list-proc", "pass"),
        ("labs/kernel_modules/2-printk", "pass"),
        ("labs/kernel_modules/3-error-mod", "pass"),
        ("labs/kernel_modules/9-ps-mod", "pass"),
        ("labs/kernel_modules/10-memory-info", "pass"),
        ("labs/kernel_modules/11-dyndbg", "pass"),
        ("labs/kernel_modules/12-dyndbg-init", "pass"),
        ("tests/modules/init-error", "load-failed"),
        ("tests/modules/unknown-symbol", "load-failed"),
        ("tests/modules/warn", "warned"),
        ("tests/modules/bug", "crashed"),
        ("tests/modules/null-deref", "crashed"),
        ("tests/modules/panic", "panicked"),
        ("tests/modules/busy-loop", "timeout"),
        ("tests/modules/exit-oops", "crashed"),
        ("tests/modules/params", "pass"),
        ("tests/modules/unload-busy", "unload-failed"),
        ("tests/modules/paging-request", "crashed"),
        ("tests/modules/gpf", "crashed"),
        ("tests/modules/divide-error", "crashed"),
        ("tests/modules/invalid-opcode", "crashed"),
        ("tests/modules/list-corruption", "crashed"),
        ("tests/modules/refcount", "warned"),
        ("tests/modules/stack-overflow", "panicked"),
        ("tests/modules/soft-lockup", "crashed"),
        ("tests/modules/hung-task", "crashed"),
        ("tests/modules/rcu-stall", "crashed"),
        ("tests/modules/kfence-oob", "crashed"),
        ("tests/modules/leak-init", "leaked"),
        ("tests/modules/leak-exit", "leaked"),
        ("tests/modules/slab-uaf", "crashed"),
        ("tests/modules/slab-oob", "crashed"),
        ("tests/modules/double-lock", "warned"),
        ("tests/modules/sleep-atomic", "warned"),
        ("tests/modules/clean-debug", "pass"),
    ] {
        let got = verdict_of(spec);
        assert!(
            !got.is_empty() && got.iter().all(|v| *v == want),
            "{spec}: expected {want}, got {got:?}"
        );
    }
    let busy = cases
        .iter()
        .find(|c| c["spec"] == "tests/modules/busy-loop")
        .unwrap();
    assert_eq!(
        busy["result"]["timeout_phase"], "load",
        "the timeout names the phase"
    );
    assert_no_qemu_left(&runs);
}

/// `kmodlab run --json`: the DESIGN.md contract, a parameter value with spaces arriving as one
/// value, and the module's sysfs state.
#[test]
fn vm_run_json_keeps_a_value_with_spaces_as_one_value() {
    let _g = lock();
    let runs = scratch("vm-params");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "run",
            "--json",
            "tests/modules/params",
            "label=two words",
            "count=3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verdict"], "pass");
    for key in ["load", "unload", "reports", "kernel", "accel", "run_dir"] {
        assert!(!r[key].is_null(), "{key} missing: {r}");
    }
    assert_eq!(r["load"]["ok"], true);
    assert_eq!(r["load"]["error"], Value::Null);
    let load_log: Vec<&str> = r["load"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        load_log.contains(&"label=[two words] count=3"),
        "{load_log:?}"
    );
    let files = r["files"].as_array().unwrap();
    let label = files
        .iter()
        .find(|f| f["path"] == "/sys/module/params/parameters/label")
        .expect("label read");
    assert_eq!(label["contents"], "two words\n");
    let run_dir = std::path::PathBuf::from(r["run_dir"].as_str().unwrap());
    let console = std::fs::read_to_string(run_dir.join("console.log")).unwrap();
    assert!(
        console.contains("label=[two words] count=3"),
        "the console log is kept whole"
    );
    let transcript = std::fs::read_to_string(run_dir.join("agent.log")).unwrap();
    assert!(
        transcript.contains("label=\\\"two words\\\""),
        "quoted as kmod does: {transcript}"
    );
    assert_no_qemu_left(&runs);
}

/// The oops lab as a user sees it: the human report names the guilty function, exit code 1.
#[test]
fn vm_run_oops_lab_reports_the_crash() {
    let _g = lock();
    let runs = scratch("vm-oops");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["run", "labs/kernel_modules/5-oops-mod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict: crashed"), "{}", show(&out));
    assert!(
        text.contains("NULL pointer dereference in my_oops_init"),
        "{}",
        show(&out)
    );
    assert!(text.contains("run dir: "), "{}", show(&out));
    // The verdict names the source line of the NULL write, and shows it.
    let src = std::fs::read_to_string("labs/kernel_modules/5-oops-mod/oops_mod.c").unwrap();
    let line = src
        .lines()
        .position(|l| l.trim() == "*p = 'a';")
        .expect("the NULL write in oops_mod.c")
        + 1;
    let want = format!("oops_mod.c:{line}");
    assert!(
        text.contains(&format!("source: {want}")),
        "{want}\n{}",
        show(&out)
    );
    assert!(
        text.contains("*p = 'a';"),
        "the source line is shown\n{}",
        show(&out)
    );

    // `kmodlab oops` on the saved console log, with the module's directory: the same report,
    // symbolized, with the faulting instruction disassembled.
    let run_dir = text
        .lines()
        .find_map(|l| l.strip_prefix("run dir: "))
        .unwrap()
        .to_string();
    let log = std::path::Path::new(&run_dir).join("console.log");
    let out = kmodlab()
        .args([
            "oops",
            "--json",
            "--module-dir",
            "labs/kernel_modules/5-oops-mod",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a report was found\n{}",
        show(&out)
    );
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let r = &json["reports"][0];
    assert_eq!(r["kind"], "oops", "{r}");
    assert_eq!(r["function"], "my_oops_init", "{r}");
    assert_eq!(r["module"], "oops_mod", "{r}");
    assert_eq!(r["source"], want.as_str(), "{r}");
    assert_eq!(r["frames"][0]["rip"], true, "{r}");
    assert_eq!(r["frames"][0]["source"], want.as_str(), "{r}");
    let dis = r["disassembly"]["instructions"]
        .as_array()
        .expect("a disassembly");
    let faulting: Vec<&Value> = dis.iter().filter(|i| i["faulting"] == true).collect();
    assert_eq!(faulting.len(), 1, "one faulting instruction: {dis:?}");
    assert!(
        faulting[0]["text"].as_str().unwrap().starts_with("mov"),
        "{dis:?}"
    );
    assert!(
        r["taint_flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["letter"] == "O"),
        "out-of-tree taint decoded: {r}"
    );

    // A parent directory works as well: the module is found below it, its sources beside it.
    let out = kmodlab()
        .args(["oops", "--json", "--module-dir", "labs"])
        .arg(&log)
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let r2 = &json["reports"][0];
    assert_eq!(r2["source"], want.as_str(), "{r2}");
    assert_eq!(r2["context"]["line"], line, "{r2}");

    // Without debug info the report is the same, with no source line.
    let out = kmodlab()
        .args(["oops", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["reports"][0]["title"], r["title"]);
    assert_eq!(json["reports"][0]["source"], Value::Null);
    assert_no_qemu_left(&runs);
}

/// KTAP output goes through the kernel's own parser (`kunit.py parse`), failures included.
#[test]
fn vm_ktap_is_accepted_by_kunit_parser() {
    let _g = lock();
    let tarball = std::fs::read_dir("/usr/src")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("linux-source-")
                && p.to_string_lossy().ends_with(".tar.xz")
        })
        .expect("linux-source is installed by scripts/setup");
    let work = scratch("vm-ktap");
    let untar = std::process::Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&work)
        .arg("--wildcards")
        .arg("*/tools/testing/kunit/*")
        .output()
        .unwrap();
    assert!(untar.status.success(), "{}", show(&untar));
    let kunit = walk_find(&work, "kunit.py").expect("kunit.py in the tarball");

    // One spec that passes and one that is made to fail (it expects a line that never comes).
    let failing = work.join("failing");
    copy_module(&repo().join("tests/modules/init-error"), &failing);
    let spec = std::fs::read_to_string(failing.join("kmodlab.toml")).unwrap();
    std::fs::write(
        failing.join("kmodlab.toml"),
        spec.replacen("log = [", "log = [\"a line init_error never prints\", ", 1),
    )
    .unwrap();
    let runs = work.join("runs");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "test",
            "--format",
            "ktap",
            "labs/kernel_modules/1-2-test-mod",
        ])
        .arg(&failing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one case fails: {}", show(&out));
    let ktap = out.stdout.clone();
    assert!(String::from_utf8_lossy(&ktap).starts_with("KTAP version 1\n"));
    let mut parse = std::process::Command::new("python3")
        .arg(&kunit)
        .arg("parse")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    parse.stdin.take().unwrap().write_all(&ktap).unwrap();
    let parsed = parse.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&parsed.stdout).to_string();
    assert!(
        text.contains("passed: 1") && text.contains("failed: 1"),
        "kunit.py counted:\n{text}\n{}",
        String::from_utf8_lossy(&ktap)
    );
    assert!(
        !text.contains("CRASHED") && !text.contains("missing"),
        "kunit.py complained:\n{text}"
    );
    assert_no_qemu_left(&runs);
}

fn walk_find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// SIGTERM or Ctrl-C (SIGINT) while a module hangs in init: kmodlab dies and takes QEMU with it.
#[test]
fn vm_sigterm_and_sigint_leave_no_qemu_behind() {
    let _g = lock();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let runs = scratch(&format!("vm-signal-{signal}"));
        let mut child = kmodlab()
            .env("KMODLAB_RUNS", &runs)
            .args(["run", "--timeout", "120", "tests/modules/busy-loop"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut seen = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("load...") {
                break;
            }
        }
        assert!(seen.contains("load..."), "the load began: {seen}");
        let qemu = processes_with(&runs.display().to_string());
        assert_eq!(qemu.len(), 1, "one QEMU runs: {qemu:?}");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{}", qemu[0])).exists() && !is_zombie(qemu[0]) {
            assert!(
                Instant::now() < deadline,
                "QEMU {} outlived kmodlab after signal {signal}",
                qemu[0]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_no_qemu_left(&runs);
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// `kmodlab exec`: commands run in the guest as the multi-call binary, with their output, exit
/// codes and the kernel's module files shipped in.
#[test]
fn vm_exec_runs_commands_in_the_guest() {
    let _g = lock();
    let runs = scratch("vm-exec");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "exec",
            "--json",
            "-m",
            "9p",
            "--",
            "kmodlab",
            "--version",
            ";",
            "kmodlab",
            "run",
            "--no-such-flag",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cmds = r["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 2, "{r}");
    assert_eq!(cmds[0]["exit_code"], 0);
    assert!(
        cmds[0]["stdout"].as_str().unwrap().starts_with("kmodlab "),
        "{r}"
    );
    assert_eq!(
        cmds[1]["exit_code"], 2,
        "usage errors keep exit code 2 in the guest: {r}"
    );
    assert!(
        cmds[1]["stderr"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{r}"
    );
    assert_no_qemu_left(&runs);
}

/// The module tools against the kernel for real: modprobe pulls in a Debian module's
/// dependencies from the real tree, rmmod refuses a module in use and names its holder, and
/// `modprobe -r` removes the module with the dependencies kmod 30 removes.
#[test]
fn vm_modprobe_loads_dependencies_and_removes_them() {
    let _g = lock();
    let runs = scratch("vm-modprobe");
    let script = "modprobe 9p ; lsmod ; rmmod 9pnet ; modprobe -r 9p ; lsmod";
    let mut args = vec!["exec", "--json", "-m", "9p", "--"];
    args.extend(script.split(' '));
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = r["commands"].as_array().unwrap();
    assert_eq!(c.len(), 5, "{r}");
    assert_eq!(c[0]["exit_code"], 0, "modprobe 9p: {}", c[0]);
    let loaded = |i: usize| -> Vec<String> {
        c[i]["stdout"]
            .as_str()
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    };
    let after_load = loaded(1);
    for m in ["9p", "9pnet", "netfs"] {
        assert!(
            after_load.iter().any(|x| x == m),
            "{m} loaded: {after_load:?}"
        );
    }
    assert_eq!(
        c[2]["exit_code"], 1,
        "rmmod of a module in use fails: {}",
        c[2]
    );
    assert_eq!(
        c[2]["stderr"],
        "rmmod: ERROR: Module 9pnet is in use by: 9p\n"
    );
    assert_eq!(c[3]["exit_code"], 0, "modprobe -r 9p: {}", c[3]);
    let after_remove = loaded(4);
    for m in ["9p", "9pnet"] {
        assert!(
            !after_remove.iter().any(|x| x == m),
            "{m} removed: {after_remove:?}"
        );
    }
    // kmod 30 checks netfs's refcount before 9pnet is gone and leaves it loaded; so do we.
    assert!(
        after_remove.iter().any(|x| x == "netfs"),
        "as kmod 30: {after_remove:?}"
    );
    assert_no_qemu_left(&runs);
}

/// `kmodlab run DIR` builds while the guest starts: a rerun with nothing changed skips make; an
/// edit is compiled, and the new module is what the restored guest loads; an edit that does not
/// compile is exit 1 with the error at its `file:line`, and the guest started meanwhile is gone.
/// While a build outlasts the restore, a module of Debian's own tree is loaded and unloaded
/// first (the warm-up), invisibly: the module under test still gets the kernel's first-load
/// messages; a rerun that builds nothing has no warm-up.
#[test]
fn vm_run_builds_while_the_guest_starts() {
    let _g = lock();
    let runs = scratch("vm-build-overlap");
    let warm_dir = runs.join("warm");
    let dir = runs.join("hello");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &dir);
    // The build's and the run's progress are on standard error, the report on standard output.
    let run = || {
        kmodlab()
            .env("KMODLAB_RUNS", &runs)
            .env("KMODLAB_WARM_DIR", &warm_dir)
            .arg("run")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let load_log = |out: &std::process::Output| -> Vec<String> {
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("verdict: pass"), "{}", show(out));
        report
            .lines()
            .skip_while(|l| !l.starts_with("load: "))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let first = run();
    assert!(load_log(&first).contains(&"Hello!".to_string()));
    let again = run();
    assert!(load_log(&again).contains(&"Hello!".to_string()));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("make skipped"), "{}", show(&again));
    assert!(
        err.contains("restored the saved VM state"),
        "{}",
        show(&again)
    );

    // The agent transcript of a run, from the report's last line.
    let transcript = |out: &std::process::Output| -> String {
        let report = String::from_utf8_lossy(&out.stdout);
        let run_dir = report
            .lines()
            .find_map(|l| l.strip_prefix("run dir: "))
            .unwrap_or_else(|| panic!("no run dir: {}", show(out)));
        std::fs::read_to_string(std::path::Path::new(run_dir).join("agent.log")).unwrap()
    };
    let warm_up_load = "\"op\":\"load\",\"path\":\"/kmodlab/warm-up/";
    assert!(
        !transcript(&again).contains(warm_up_load),
        "no build, no warm-up"
    );

    let source = dir.join("hello_mod.c");
    let text = std::fs::read_to_string(&source).unwrap();
    assert!(text.contains("pr_debug(\"Hello!\\n\")"), "{text}");
    std::fs::write(&source, text.replace("Hello!", "Hello again!")).unwrap();
    // A build that surely outlasts the restore: each read of the Kbuild file takes a second.
    let kbuild = dir.join("Kbuild");
    let rules = std::fs::read_to_string(&kbuild).unwrap();
    std::fs::write(&kbuild, format!("$(shell sleep 1)\n{rules}")).unwrap();
    let edited = run();
    let edited_load = load_log(&edited);
    assert!(
        edited_load.contains(&"Hello again!".to_string()),
        "{}",
        show(&edited)
    );
    let err = String::from_utf8_lossy(&edited.stderr);
    assert!(err.contains("make runs: "), "{}", show(&edited));
    let t = transcript(&edited);
    let warm_load = t
        .find(warm_up_load)
        .unwrap_or_else(|| panic!("no warm-up: {t}"));
    let warm_unload = t
        .find("\"op\":\"unload\",\"name\":\"crc_itu_t\"")
        .expect(&t);
    let load = t
        .find("\"op\":\"load\",\"path\":\"/kmodlab/modules/hello_mod.ko\"")
        .expect(&t);
    assert!(warm_load < warm_unload && warm_unload < load, "{t}");
    // The module of Debian's tree is signed and in-tree: the module under test is still the
    // first to taint the kernel.
    assert!(
        edited_load
            .iter()
            .any(|l| l.ends_with("loading out-of-tree module taints kernel.")),
        "{}",
        show(&edited)
    );
    std::fs::write(&kbuild, &rules).unwrap();

    let broken = text.replace("pr_debug(\"Hello!\\n\");", "pr_debug(\"Hello!\\n\") oops");
    std::fs::write(&source, &broken).unwrap();
    let line = broken.lines().position(|l| l.contains(") oops")).unwrap() + 1;
    let failed = run();
    assert_eq!(failed.status.code(), Some(1), "{}", show(&failed));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains(&format!("hello_mod.c:{line}:")) && err.contains("build failed"),
        "{}",
        show(&failed)
    );
    assert_no_qemu_left(&runs);
}

/// `kmodlab new` makes a C module that builds and passes its own spec in the VM, out of the box.
#[test]
fn vm_new_c_module_passes_its_own_test() {
    let _g = lock();
    let runs = scratch("vm-new");
    let dir = runs.join("hello-new");
    let out = kmodlab().arg("new").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["test", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert_eq!(json["passed"], 2, "{json}\n{}", show(&out));
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_no_qemu_left(&runs);
}

/// The Rust lab on the Rust lab kernel, and its step 8 on the debug lab kernel (both built by
/// kmodlab when missing, cached afterwards): every case passes, the oops and the panic name the
/// Rust source line and a demangled function, and a module made by `kmodlab new --rust` passes
/// its own test. `vm_rust_lab_check_grades_solutions_full_and_skeletons_less` grades the lab.
#[test]
fn vm_rust_labs_and_new_rust_module_pass() {
    let _g = lock();
    let runs = scratch("vm-rust");
    let dir = runs.join("rusty");
    let out = kmodlab()
        .args(["new", "--rust"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["test", "-j", "2", "--format", "json", "labs/rust"])
        .arg(&dir)
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let cases = json["cases"].as_array().unwrap();
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c["passed"] != Value::Bool(true))
        .map(|c| {
            format!(
                "{} / {}: {}\n  run dir: {}\n  console tail: {}",
                c["spec"], c["case"], c["failures"], c["result"]["run_dir"], c["console_tail"]
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "failed:\n{}\n{}",
        failed.join("\n"),
        show(&out)
    );
    assert_eq!(
        cases.len(),
        21,
        "19 lab cases and 2 of the new module: {json}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for c in cases {
        assert!(
            c["result"]["kernel"].as_str().unwrap().starts_with("7."),
            "on the Rust or the debug lab kernel: {}",
            c["result"]["kernel"]
        );
    }
    let oops = cases
        .iter()
        .find(|c| c["spec"] == "labs/rust/5-oops-mod")
        .unwrap();
    let r = &oops["result"]["reports"][0];
    assert_eq!(
        r["title"],
        "BUG: unable to handle kernel NULL pointer dereference in oops_mod::my_oops_init",
        "{r}"
    );
    let src = std::fs::read_to_string("labs/rust/5-oops-mod/oops_mod.rs").unwrap();
    let line = src
        .lines()
        .position(|l| l.contains("p.write_volatile(b'a')"))
        .expect("the NULL write in oops_mod.rs")
        + 1;
    assert_eq!(r["source"], format!("oops_mod.rs:{line}"), "{r}");

    // Step 8 on the debug lab kernel: a panic on demand, named at its line.
    let kdb = cases
        .iter()
        .find(|c| c["spec"] == "labs/rust/8-kdb" && c["result"]["verdict"] == "crashed")
        .unwrap();
    let r = &kdb["result"]["reports"][0];
    assert_eq!(r["kind"], "rust-panic", "{r}");
    assert_eq!(r["function"], "kdb_mod::kdb_bug_func", "{r}");
    let src = std::fs::read_to_string("labs/rust/8-kdb/kdb_mod.rs").unwrap();
    let line = src
        .lines()
        .position(|l| l.trim_start().starts_with("panic!("))
        .expect("the panic in kdb_mod.rs")
        + 1;
    assert_eq!(r["source"], format!("kdb_mod.rs:{line}"), "{r}");
    assert_no_qemu_left(&runs);
}

/// The exercise of a lab whose skeleton must not compile: the first compiler error names
/// `file:LINE` with `error` in its text, and LINE is the first line of the skeleton that holds `used`.
struct CompileErrorExercise {
    name: &'static str,
    file: &'static str,
    error: &'static str,
    used: &'static str,
}

/// `kmodlab lab check` grades a lab's solutions and a fresh set of its skeletons in one call:
/// every solution has full marks, every skeleton less; each skeleton builds but `broken`'s,
/// whose build failure names the first use of what is missing at its `file:line`; the class
/// table has both.
fn lab_check_grades_solutions_full_and_skeletons_less(lab: &str, broken: CompileErrorExercise) {
    let _g = lock();
    let runs = scratch(&format!("vm-lab-check-{lab}"));
    let skeletons = runs.join("student");
    let out = kmodlab()
        .args(["lab", "start", lab])
        .arg(&skeletons)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let table = runs.join("grades/class");
    let solutions_dir = format!("labs/{lab}");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["lab", "check", "-j", "2", "--format", "json"])
        .arg(&solutions_dir)
        .arg(&skeletons)
        .arg("--table")
        .arg(&table)
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the skeletons fail: {}",
        show(&out)
    );
    let students = json["students"].as_array().unwrap();
    assert_eq!(students.len(), 2, "{json}");
    let solutions = students
        .iter()
        .find(|s| s["student"] == solutions_dir.as_str())
        .unwrap();
    let skel = students
        .iter()
        .find(|s| s["student"] != solutions_dir.as_str())
        .unwrap();
    assert_eq!(solutions["lab"], lab, "{json}");
    let exercises = |s: &Value| s["exercises"].as_array().unwrap().clone();
    let count = std::fs::read_dir(&solutions_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("kmodlab.toml").is_file())
        .count();
    assert_eq!(exercises(solutions).len(), count, "every exercise graded");
    assert_eq!(exercises(skel).len(), count, "every skeleton graded");
    for e in exercises(solutions) {
        assert!(
            e["total"].as_u64().unwrap() > 0 && e["passed"] == e["total"],
            "a solution without full marks: {e:#}"
        );
    }
    assert_eq!(solutions["passed"], solutions["total"]);
    for e in exercises(skel) {
        let name = e["exercise"].as_str().unwrap();
        assert!(
            e["passed"].as_u64() < e["total"].as_u64(),
            "a skeleton with full marks: {e:#}"
        );
        let problems: Vec<String> = e["todos"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["checks"].as_array().unwrap().clone())
            .flat_map(|c| c["problems"].as_array().unwrap().clone())
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let build_failed = problems.iter().any(|p| p.contains("build failed"));
        if name == broken.name {
            let src = std::fs::read_to_string(skeletons.join(name).join(broken.file)).unwrap();
            // The compiler's first complaint names the first use of what is missing,
            // `FILE:LINE:COL: error...`, and LINE is that use in the skeleton.
            let at = format!("{}:", broken.file);
            let first = problems
                .iter()
                .flat_map(|p| p.lines())
                .find(|l| l.contains(&at) && l.contains(": error"))
                .unwrap_or_else(|| panic!("no error at {at}: {problems:#?}"));
            assert!(build_failed, "{problems:#?}");
            assert!(first.contains(broken.error), "{first}");
            let line: usize = first
                .split(&at)
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let used = src
                .lines()
                .position(|l| l.contains(broken.used))
                .unwrap_or_else(|| panic!("the skeleton has no {:?}", broken.used))
                + 1;
            assert_eq!(line, used, "{first}");
        } else {
            assert!(
                !build_failed,
                "the skeleton of {name} must build: {problems:#?}"
            );
        }
    }
    let csv = std::fs::read_to_string(table.with_extension("csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("student,1-2-test-mod,"), "{csv}");
    let total = solutions["total"].as_u64().unwrap();
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&format!("{solutions_dir},"))
                && r.ends_with(&format!(",{total},{total}"))),
        "{csv}"
    );
    assert!(table.with_extension("json").is_file());
    assert_no_qemu_left(&runs);
}

/// The problems of every check of a `lab check --format json` student, by exercise and case.
fn lab_problems(student: &Value) -> BTreeMap<(String, String), (Vec<String>, String)> {
    let mut out = BTreeMap::new();
    for e in student["exercises"].as_array().unwrap() {
        for t in e["todos"].as_array().unwrap() {
            for c in t["checks"].as_array().unwrap() {
                let problems = c["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect();
                out.insert(
                    (
                        e["exercise"].as_str().unwrap().to_string(),
                        c["case"].as_str().unwrap().to_string(),
                    ),
                    (problems, c["run_dir"].as_str().unwrap_or("").to_string()),
                );
            }
        }
    }
    out
}

/// The process lists (7, 9) and the memory areas (10) are checked against the guest itself: the
/// solutions have full marks, and a ps module that invents a process and skips another, and a
/// memory module that skips the first area, fail with the difference named.
#[test]
fn vm_lab_check_compares_process_lists_and_memory_areas_with_the_guest() {
    let _g = lock();
    let runs = scratch("vm-lab-crosscheck");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["lab", "check", "--format", "json", "labs/kernel_modules"])
        .args(["7", "9", "10"])
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let s = &json["students"][0];
    assert_eq!(s["passed"], s["total"], "{:#?}", lab_problems(s));
    assert_eq!(s["total"], 7, "{json:#}");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let wrong = runs.join("student");
    let edit = |exercise: &str, file: &str, from: &str, to: &str| {
        let dir = wrong.join(exercise);
        copy_module(&repo().join("labs/kernel_modules").join(exercise), &dir);
        let path = dir.join(file);
        let src = std::fs::read_to_string(&path).unwrap();
        assert!(src.contains(from), "{exercise}/{file} has {from:?}");
        std::fs::write(&path, src.replacen(from, to, 1)).unwrap();
    };
    // ps_mod: no ksoftirqd thread, and a process 4242 that does not exist.
    edit(
        "9-ps-mod",
        "ps_mod.c",
        "\tfor_each_process(p) {\n",
        "\tpr_info(\"ps_mod: %5d %5d %c %s\\n\", 4242, 1, 'S', \"foo\");\n\
         \tfor_each_process(p) {\n\t\tif (!strncmp(p->comm, \"ksoftirqd\", 9))\n\t\t\tcontinue;\n",
    );
    // memory_info: every area but the first.
    edit(
        "10-memory-info",
        "memory_info.c",
        "\tfor_each_vma(vmi, vma) {\n",
        "\tfor_each_vma(vmi, vma) {\n\t\tif (vma->vm_start == find_vma(mm, 0)->vm_start)\n\t\t\tcontinue;\n",
    );
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "lab",
            "check",
            "--lab",
            "kernel_modules",
            "--format",
            "json",
        ])
        .arg(&wrong)
        .args(["9", "10"])
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let problems = lab_problems(&json["students"][0]);
    let of = |exercise: &str, case: &str| -> &(Vec<String>, String) {
        problems
            .get(&(exercise.to_string(), case.to_string()))
            .unwrap_or_else(|| panic!("no check {exercise} / {case}: {problems:#?}"))
    };
    for (case, phase) in [
        ("lists every process on load, as ps does", "load"),
        ("lists every process again on unload", "unload"),
    ] {
        let (p, run_dir) = of("9-ps-mod", case);
        let missing: Vec<&String> = p
            .iter()
            .filter(|p| p.starts_with(&format!("{phase} processes: missing pid ")))
            .collect();
        assert_eq!(
            p.len(),
            2,
            "only the two differences: {p:#?} (run dir {run_dir})"
        );
        assert!(
            p.contains(&format!(
                "{phase} processes: pid 4242 (foo) is not a guest process"
            )),
            "{p:#?} (run dir {run_dir})"
        );
        assert!(
            missing.len() == 1 && missing[0].ends_with(" (ksoftirqd/0)"),
            "{p:#?} (run dir {run_dir})"
        );
    }
    let (p, run_dir) = of("9-ps-mod", "prints the current process on load");
    assert!(p.is_empty(), "{p:#?} (run dir {run_dir})");
    // The area named is the loader's first, as its /proc/self/maps said right before the load.
    let (p, run_dir) = of(
        "10-memory-info",
        "prints each VMA of the loader as start-end",
    );
    let result: Value =
        serde_json::from_slice(&std::fs::read(format!("{run_dir}/result.json")).unwrap()).unwrap();
    let maps = result["load"]["maps"].as_str().unwrap();
    let first = maps.split_whitespace().next().unwrap();
    let (start, end) = first.split_once('-').unwrap();
    let range = format!(
        "{:x}-{:x}",
        u64::from_str_radix(start, 16).unwrap(),
        u64::from_str_radix(end, 16).unwrap()
    );
    assert_eq!(p.len(), 1, "{p:#?} (run dir {run_dir})");
    assert!(
        p[0].starts_with(&format!("load vmas: missing {range}")),
        "{p:#?} (run dir {run_dir})"
    );
    let (p, run_dir) = of("10-memory-info", "counts the VMAs");
    assert!(p.is_empty(), "{p:#?} (run dir {run_dir})");
    assert_no_qemu_left(&runs);
}

/// The C lab graded: exercise 3's skeleton lacks the header that declares `init_utsname()`.
#[test]
fn vm_lab_check_grades_solutions_full_and_skeletons_less() {
    lab_check_grades_solutions_full_and_skeletons_less(
        "kernel_modules",
        CompileErrorExercise {
            name: "3-error-mod",
            file: "err_mod.c",
            error: "init_utsname",
            used: "init_utsname()->",
        },
    );
}

/// The Rust lab graded, on the Rust lab kernel and (step 8) the debug lab kernel: exercise 3's
/// skeleton lacks the `use` of `PAGE_SIZE`, and rustc's error is shown at its `.rs` line.
#[test]
fn vm_rust_lab_check_grades_solutions_full_and_skeletons_less() {
    lab_check_grades_solutions_full_and_skeletons_less(
        "rust",
        CompileErrorExercise {
            name: "3-error-mod",
            file: "err_mod.rs",
            error: "cannot find value `PAGE_SIZE` in this scope",
            used: "PAGE_SIZE);",
        },
    );
}

/// The hello lab on the debug lab kernel (built by kmodlab when missing: many minutes on two
/// cores; cached afterwards): `run --lab-kernel debug` builds the C module against the debug tree
/// with its own Kbuild file and passes, booted cold and restored warm, and the guest's kernel log
/// says KASAN, kmemleak and lockdep are live.
#[test]
fn vm_hello_lab_passes_on_the_debug_kernel_with_kasan_live() {
    let _g = lock();
    let runs = scratch("vm-debug-kernel");
    let warm_dir = runs.join("warm");
    let dir = runs.join("1-2-test-mod");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &dir);
    let run = |cold: bool| -> Value {
        let mut cmd = kmodlab();
        cmd.env("KMODLAB_RUNS", &runs)
            .env("KMODLAB_WARM_DIR", &warm_dir)
            .args(["run", "--json", "--lab-kernel", "debug"]);
        if cold {
            cmd.arg("--cold");
        }
        let out = cmd.arg(&dir).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        // The module imports nothing that allocates: kmodlab skips kmemleak's scan, and says so.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no leak check needed") && !err.contains("leak check took"),
            "{}",
            show(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)))
    };
    let log = |r: &Value, phase: &str| -> Vec<String> {
        r[phase]["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let cold = run(true);
    let where_ = format!("run dir {}", cold["run_dir"]);
    assert_eq!(cold["verdict"], "pass", "{where_}");
    assert_eq!(cold["start"], "cold", "{where_}");
    assert!(
        cold["kernel"].as_str().unwrap().starts_with("7."),
        "on the debug lab kernel: {where_}"
    );
    assert!(
        log(&cold, "load").contains(&"Hello!".to_string()),
        "{where_}"
    );
    assert!(
        log(&cold, "unload").contains(&"Goodbye!".to_string()),
        "{where_}"
    );
    // The first run that may start warm boots cold and saves the state; the next restores it.
    let _saved = run(false);
    let warm = run(false);
    let where_ = format!("run dir {}", warm["run_dir"]);
    assert_eq!(warm["start"], "warm", "{where_}");
    assert_eq!(warm["verdict"], "pass", "{where_}");
    assert_eq!(log(&warm, "load"), log(&cold, "load"), "{where_}");
    assert_eq!(warm["kernel"], cold["kernel"], "{where_}");

    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .env("KMODLAB_WARM_DIR", &warm_dir)
        .args(["exec", "--json", "--lab-kernel", "debug", "--", "dmesg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dmesg = r["commands"][0]["stdout"].as_str().unwrap();
    for live in [
        "KernelAddressSanitizer initialized (generic)",
        "kmemleak: Kernel memory leak detector initialized",
        "Lock dependency validator",
    ] {
        assert!(dmesg.contains(live), "{live:?} not in the guest's log: {r}");
    }
    assert!(
        !dmesg.contains("Memory pool empty"),
        "kmemleak's early pool is large enough: {r}"
    );
    assert_no_qemu_left(&runs);
}

/// dmesg in the guest: `-x` and `--json` on the real boot log of the Debian kernel, and
/// `--follow-new` delivering a module's messages as the module prints them (the ticker module
/// prints from one second after its load, while dmesg waits).
#[test]
fn vm_dmesg_decodes_the_real_log_and_follows_a_module() {
    let _g = lock();
    let runs = scratch("vm-dmesg");
    let dir = runs.join("ticker");
    copy_module(&repo().join("tests/modules/ticker"), &dir);
    let b = kmodlab().arg("build").arg(&dir).output().unwrap();
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["exec", "--json", "--stop-on", "ticker: done", "-f"])
        .arg(dir.join("ticker.ko"))
        .args([
            "--", "dmesg", "-x", ";", "dmesg", "--json", ";", "dmesg", ";",
        ])
        .args([
            "insmod",
            "/files/ticker.ko",
            ";",
            "dmesg",
            "--follow-new",
            ";",
        ])
        // Cleared before the unload: `--read-clear` below must not print `ticker: done`, the
        // `--stop-on` line, which would race its exit with the SIGTERM it gets for it.
        .args(["dmesg", "-C", ";"])
        .args([
            "rmmod",
            "ticker",
            ";",
            "dmesg",
            "--read-clear",
            ";",
            "dmesg",
            ";",
        ])
        .args([
            "dmesg",
            "--console-level",
            "8",
            ";",
            "dmesg",
            "-D",
            ";",
            "dmesg",
            "-E",
            ";",
        ])
        .args(["dmesg", "--level", "+"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cmds = r["commands"].as_array().unwrap();
    let where_ = format!("run directory {}", r["run_dir"]);
    assert_eq!(cmds.len(), 13, "{where_}: {r}");
    for c in cmds {
        assert!(c["error"].is_null(), "{where_}: {c}");
    }
    let stdout = |i: usize| cmds[i]["stdout"].as_str().unwrap().to_string();

    // -x: every line decoded as `facility:level : [time] message`.
    let decoded = stdout(0);
    let plain = stdout(2);
    assert!(decoded.lines().count() > 50, "{where_}: {decoded}");
    for line in decoded.lines() {
        let (fac, rest) = line.split_at(6);
        let (lev, rest) = rest[1..].split_at(6);
        assert!(
            ["kern", "user"].contains(&fac.trim_end()) && rest.starts_with(": ["),
            "{where_}: not a decoded line: {line:?}"
        );
        assert!(
            ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]
                .contains(&lev.trim_end()),
            "{where_}: {line:?}"
        );
    }
    assert!(
        decoded
            .lines()
            .any(|l| l.starts_with("kern  :notice: [    0.000000] Linux version ")),
        "{where_}: {decoded}"
    );
    // --json: one object per record, the same messages as the plain output, in order.
    let json: Value = serde_json::from_str(&stdout(1)).expect("dmesg --json is JSON");
    let records = json["dmesg"].as_array().unwrap();
    let plain_lines: Vec<&str> = plain.lines().collect();
    assert!(records.len() > 50 && records.len() <= plain_lines.len());
    let mut at = 0;
    for rec in records {
        assert!(
            rec["pri"].is_u64() && rec["time"].is_f64(),
            "{where_}: {rec}"
        );
        let msg = rec["msg"].as_str().unwrap();
        let first = msg.lines().next().unwrap_or("");
        let found = plain_lines[at..]
            .iter()
            .position(|l| l.ends_with(first))
            .unwrap_or_else(|| panic!("{where_}: {msg:?} not in the plain output"));
        at += found + 1;
    }
    assert!(records[0]["msg"]
        .as_str()
        .unwrap()
        .starts_with("Linux version "));

    // --follow-new: only what the module printed after dmesg started, in order, up to "done".
    assert_eq!(cmds[3]["exit_code"], 0, "{where_}: insmod: {}", cmds[3]);
    let follow = stdout(4);
    assert_eq!(
        cmds[4]["signal"], "SIGTERM",
        "{where_}: stopped on 'ticker: done'"
    );
    assert!(!follow.contains("ticker: loaded"), "{where_}: {follow}");
    assert!(!follow.contains("Linux version"), "{where_}: {follow}");
    let ticks: Vec<u32> = follow
        .lines()
        .filter_map(|l| l.split("ticker: tick ").nth(1))
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(ticks.len() >= 5, "{where_}: {follow}");
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "{where_}: {follow}"
    );
    assert_eq!(ticks.last(), Some(&10), "{where_}: {follow}");
    assert!(
        follow.trim_end().ends_with("] ticker: done"),
        "{where_}: {follow}"
    );
    // `-C` clears the log quietly.
    assert_eq!(cmds[5]["exit_code"], 0, "{where_}: {}", cmds[5]);
    assert_eq!(stdout(5), "", "{where_}");
    // The unload's messages were collected by sequence number: only the module's exit line.
    let unload_log: Vec<&str> = cmds[6]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(unload_log, ["ticker: exit after 10 ticks"], "{where_}");

    // --read-clear prints the log and empties it: a read right after shows nothing.
    assert!(
        stdout(7).contains("] ticker: exit after 10 ticks"),
        "{where_}"
    );
    assert_eq!(cmds[7]["exit_code"], 0, "{where_}: {}", cmds[7]);
    assert!(
        !stdout(7).contains("ticker: done"),
        "{where_}: cleared before"
    );
    assert_eq!(stdout(8), "", "{where_}: the log was cleared");
    assert_eq!(cmds[8]["exit_code"], 0, "{where_}");
    // Console level, off and on are syscalls root may make.
    for c in &cmds[9..=11] {
        assert_eq!(c["exit_code"], 0, "{where_}: {c}");
    }
    // Errors as util-linux words them, exit status 1.
    assert_eq!(cmds[12]["exit_code"], 1, "{where_}");
    assert_eq!(cmds[12]["stderr"], "dmesg: unknown level '+'\n", "{where_}");
    assert_no_qemu_left(&runs);
}

/// A kernel message without what differs from boot to boot: addresses and page-table entries
/// (KASLR; any run of 6+ hex digits), process ids, the
/// `?` frames of a call trace (stale return addresses the unwinder found on the stack), and
/// kernel worker threads in the process-list lab's output (they come and go with timing).
fn stable(line: &str) -> Option<String> {
    // Workers come and go: which ones a process list shows depends on the start.
    let worker = line.contains("; comm = kworker/")
        || line.starts_with("ps_mod:") && line.contains(" kworker/");
    if line.starts_with(" ? ") || worker {
        return None;
    }
    if let Some((before, after)) = line.split_once("pid = ") {
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        return Some(format!("{before}pid = #{}", &after[digits..]));
    }
    let mut out = String::new();
    for word in line.split_inclusive(|c: char| !c.is_ascii_hexdigit() && c != 'x') {
        let body = word.trim_end_matches(|c: char| !c.is_ascii_hexdigit() && c != 'x');
        let hexy = body.len() >= 6 && body.chars().all(|c| c.is_ascii_hexdigit())
            || body.starts_with("0x") && body.len() > 2;
        if hexy {
            out.push('#');
            out.push_str(&word[body.len()..]);
        } else {
            out.push_str(word);
        }
    }
    // "PID: 128 Comm: insmod", "pid 128 (insmod)", "insmod[128]", and the process list of the
    // ps lab ("ps_mod:   128     1 R insmod"): the loader's PID depends on the start.
    let mut words: Vec<String> = out.split(' ').map(String::from).collect();
    let ps = words.first().is_some_and(|w| w == "ps_mod:");
    for i in 1..words.len() {
        let number = !words[i].is_empty() && words[i].chars().all(|c| c.is_ascii_digit());
        if number && (ps || words[i - 1] == "PID:" || words[i - 1] == "pid") {
            words[i] = "#".into();
        }
    }
    if ps {
        // A process list's columns (their widths follow the PIDs) and states (running or
        // sleeping at that instant) depend on the start too.
        words.retain(|w| !w.is_empty());
        for w in words.iter_mut().skip(1) {
            if w.len() == 1 && w.chars().all(|c| c.is_ascii_uppercase()) {
                *w = "?".into();
            }
        }
    }
    let out = words.join(" ");
    Some(match (out.find('['), out.find(']')) {
        (Some(a), Some(b)) if b > a + 1 && out[a + 1..b].chars().all(|c| c.is_ascii_digit()) => {
            format!("{}[#]{}", &out[..a], &out[b + 1..])
        }
        _ => out,
    })
}

/// What a case's result must share between a cold and a warm start.
fn comparable(result: &Value) -> Value {
    let log = |phase: &Value| -> Vec<String> {
        phase["log"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| stable(x.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let titles: Vec<&str> = result["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    serde_json::json!({
        "verdict": result["verdict"],
        "load_ok": result["load"]["ok"],
        "load_error": result["load"]["error"],
        "load_log": log(&result["load"]),
        "unload_ok": result["unload"]["ok"],
        "unload_log": log(&result["unload"]),
        "files": result["files"],
        "reports": titles,
    })
}

fn test_json(runs: &std::path::Path, warm_dir: &std::path::Path, cold: bool) -> Value {
    let mut cmd = kmodlab();
    cmd.env("KMODLAB_RUNS", runs)
        .env("KMODLAB_WARM_DIR", warm_dir)
        .args(["test", "--format", "json"]);
    if cold {
        cmd.arg("--cold");
    }
    let out = cmd.arg(repo().join("labs")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Warm starts: every lab case (C on the Debian kernel, Rust on the Rust lab kernel) gives the same
/// messages, files, reports and verdict restored from a saved state as booted cold (both oops labs
/// included), and a crash in one try leaves nothing behind for the next: the next module loads
/// into a kernel that has never seen a module.
#[test]
fn vm_warm_runs_match_cold_runs_and_a_crash_never_leaks() {
    let _g = lock();
    let runs = scratch("vm-warm");
    let warm_dir = runs.join("warm");
    let cold = test_json(&runs, &warm_dir, true);
    let _first_warm = test_json(&runs, &warm_dir, false);
    let warm = test_json(&runs, &warm_dir, false);
    let cases = |v: &Value| -> BTreeMap<String, Value> {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let key = format!("{} / {}", c["spec"], c["case"]);
                assert!(c["failures"].as_array().unwrap().is_empty(), "{c}");
                (key, c["result"].clone())
            })
            .collect()
    };
    let (cold, warm) = (cases(&cold), cases(&warm));
    assert!(cold.len() >= 13, "C and Rust lab cases: {:?}", cold.keys());
    assert_eq!(
        cold.keys().collect::<Vec<_>>(),
        warm.keys().collect::<Vec<_>>()
    );
    for (name, c) in &cold {
        let w = &warm[name];
        assert_eq!(c["start"], "cold", "{name}");
        assert_eq!(w["start"], "warm", "{name}: run dir {}", w["run_dir"]);
        assert_eq!(
            comparable(c),
            comparable(w),
            "{name}: cold run {} vs warm run {}",
            c["run_dir"],
            w["run_dir"]
        );
    }
    assert!(
        cold.values().any(|c| c["verdict"] == "crashed"),
        "the oops lab is among the cases"
    );

    // A crash, then another module: restored from the same clean state, the kernel has never
    // loaded an out-of-tree module (it says so again) and carries no oops taint.
    let run = |dir: &str| -> Value {
        let out = kmodlab()
            .env("KMODLAB_RUNS", &runs)
            .env("KMODLAB_WARM_DIR", &warm_dir)
            .args(["run", "--json"])
            .arg(repo().join(dir))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
    };
    let oops = run("labs/kernel_modules/5-oops-mod");
    assert_eq!(
        (&oops["verdict"], &oops["start"]),
        (&"crashed".into(), &"warm".into())
    );
    let hello = run("labs/kernel_modules/1-2-test-mod");
    let where_ = format!("run dir {}", hello["run_dir"]);
    assert_eq!(hello["start"], "warm", "{where_}");
    assert_eq!(hello["verdict"], "pass", "{where_}");
    assert!(hello["reports"].as_array().unwrap().is_empty(), "{where_}");
    let load_log: Vec<&str> = hello["load"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        load_log.contains(&"hello_mod: loading out-of-tree module taints kernel."),
        "{where_}: {load_log:?}"
    );
    let taint = hello["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/sys/module/hello_mod/taint")
        .map(|f| f["contents"].as_str().unwrap_or("").trim().to_string());
    assert_eq!(taint.as_deref(), Some("OE"), "{where_}");
    assert_no_qemu_left(&runs);
}

/// The modules that prove the debug lab kernel's findings.
const DEBUG_KERNEL_MODULES: [&str; 7] = [
    "tests/modules/leak-init",
    "tests/modules/leak-exit",
    "tests/modules/slab-uaf",
    "tests/modules/slab-oob",
    "tests/modules/double-lock",
    "tests/modules/sleep-atomic",
    "tests/modules/clean-debug",
];

/// The debug lab kernel's findings (two leaks after the unload, KASAN use-after-free and
/// out-of-bounds, lockdep, sleeping in atomic context, and a clean module's pass) are the same
/// booted cold and restored warm: each case passes its spec, with the same verdict and the same
/// reports (kind, title, function, source line).
#[test]
fn vm_debug_kernel_findings_are_the_same_warm_and_cold() {
    let _g = lock();
    let runs = scratch("vm-debug-findings");
    let warm_dir = runs.join("warm");
    let test = |cold: bool| -> BTreeMap<String, Value> {
        let mut cmd = kmodlab();
        cmd.env("KMODLAB_RUNS", &runs)
            .env("KMODLAB_WARM_DIR", &warm_dir)
            .args(["test", "-j", "2", "--format", "json"]);
        if cold {
            cmd.arg("--cold");
        }
        let out = cmd
            .args(DEBUG_KERNEL_MODULES.map(|d| repo().join(d)))
            .output()
            .unwrap();
        let json: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
        let cases: BTreeMap<String, Value> = json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(
                    c["passed"],
                    Value::Bool(true),
                    "{}: {}\n  run dir: {}\n  console tail: {}",
                    c["spec"],
                    c["failures"],
                    c["result"]["run_dir"],
                    c["console_tail"]
                );
                (c["spec"].as_str().unwrap().to_string(), c["result"].clone())
            })
            .collect();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        cases
    };
    let findings = |r: &Value| -> (Value, Vec<Value>) {
        let reports = r["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| serde_json::json!([x["kind"], x["title"], x["function"], x["source"]]))
            .collect();
        (r["verdict"].clone(), reports)
    };
    let cold = test(true);
    let _saved = test(false);
    let warm = test(false);
    assert_eq!(cold.len(), DEBUG_KERNEL_MODULES.len(), "{:?}", cold.keys());
    for (spec, c) in &cold {
        let w = &warm[spec];
        assert_eq!((&c["start"], &w["start"]), (&"cold".into(), &"warm".into()));
        assert_eq!(
            findings(c),
            findings(w),
            "{spec}: cold run {} vs warm run {}",
            c["run_dir"],
            w["run_dir"]
        );
    }
    let leak = &cold
        .iter()
        .find(|(k, _)| k.ends_with("leak-exit"))
        .unwrap()
        .1;
    assert_eq!(leak["verdict"], "leaked");
    let kmemleak = std::fs::read_to_string(
        std::path::Path::new(leak["run_dir"].as_str().unwrap()).join("kmemleak.txt"),
    )
    .unwrap();
    assert!(
        kmemleak.contains("[leak_exit]")
            && !kmemleak.lines().any(|l| l.trim().starts_with("0xffffffff")),
        "the module's frame named from the .ko, no bare address left: {kmemleak}"
    );
    assert_no_qemu_left(&runs);
}

/// A saved state belongs to one guest code (the agent, the module tools, dmesg), whose identity
/// every build carries: a build that differs in host code only restores the states of the
/// first; a build with other guest code boots cold and saves its own, and each then restores
/// its own state.
#[test]
fn vm_warm_states_are_shared_by_builds_with_the_same_guest_code() {
    let _g = lock();
    let runs = scratch("vm-warm-agent");
    let warm_dir = runs.join("warm");
    let original = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kmodlab"));
    let bytes = std::fs::read(&original).unwrap();
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{} is in the binary", String::from_utf8_lossy(needle)))
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = runs.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    // A build that differs in host code: a byte of `kmodlab gdb`'s help.
    let mut host_only = bytes.clone();
    host_only[find(b"Debug a module with gdb") + 1] = b'u';
    let host_only = write("kmodlab-host-change", &host_only);
    // A build with other guest code: a byte of dmesg's help, and so another identity.
    let mut other = bytes.clone();
    other[find(b"Display or control the kernel ring buffer.") + 1] = b'u';
    let marker = find(b"kmodlab-guest-code:") + b"kmodlab-guest-code:".len();
    other[marker] = if other[marker] == b'0' { b'1' } else { b'0' };
    let other = write("kmodlab-guest-change", &other);
    let run = |binary: &std::path::Path| -> (String, String) {
        let out = std::process::Command::new(binary)
            .env("KMODLAB_RUNS", &runs)
            .env("KMODLAB_WARM_DIR", &warm_dir)
            .args(["run", "--json"])
            .arg(repo().join("labs/kernel_modules/1-2-test-mod"))
            .output()
            .unwrap();
        let r: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
        assert_eq!(r["verdict"], "pass", "{}", show(&out));
        (
            r["start"].as_str().unwrap().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (start, _) = run(&original);
    assert_eq!(
        start, "cold",
        "a fresh state directory has nothing to restore"
    );
    let (start, stderr) = run(&host_only);
    assert_eq!(
        start, "warm",
        "the same guest code restores the state\n{stderr}"
    );
    let (start, stderr) = run(&other);
    assert_eq!(start, "cold", "{stderr}");
    assert!(
        stderr.contains("no saved VM state for this kernel, agent and configuration"),
        "{stderr}"
    );
    assert_eq!(run(&other).0, "warm");
    assert_eq!(run(&original).0, "warm");
    let states = std::fs::read_dir(&warm_dir).unwrap().count();
    assert_eq!(states, 2, "one saved state per guest code");
    assert_no_qemu_left(&runs);
}

/// `kmodlab watch`: runs the module, then reruns it when its source is saved, showing the new
/// message; Ctrl-C ends it with no QEMU left behind.
#[test]
fn vm_watch_reruns_the_module_when_its_source_changes() {
    let _g = lock();
    let runs = scratch("vm-watch");
    let dir = runs.join("hello");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &dir);
    let _ = std::fs::remove_file(dir.join("kmodlab.toml"));
    let source = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains("Hello!")))
        .expect("the hello lab prints Hello!");
    let mut child = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["watch"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let until = |what: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(what);
                    seen.push(line);
                    if done {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no {what:?} from kmodlab watch; output so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    };
    until("verdict: pass", &mut seen);
    assert!(
        seen.iter().any(|l| l.trim() == "Hello!"),
        "{}",
        seen.join("\n")
    );
    let first = seen.len();
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("Hello!", "Hello again!")).unwrap();
    until("verdict: pass", &mut seen);
    let second = &seen[first..];
    assert!(
        second
            .iter()
            .any(|l| l.starts_with("== ") && l.contains("changed: rebuilding")),
        "{}",
        second.join("\n")
    );
    assert!(
        second.iter().any(|l| l.trim() == "Hello again!"),
        "{}",
        second.join("\n")
    );
    // Ctrl-C.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_no_qemu_left(&runs);
}

/// Builds `dir` once with `kmodlab build` and returns its .ko.
fn built(dir: &str) -> std::path::PathBuf {
    let out = kmodlab()
        .arg("build")
        .arg(repo().join(dir))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let ko = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::path::PathBuf::from(ko.lines().last().unwrap_or(""))
}

/// Peak resident memory of a running process in KiB (`VmHWM`), 0 once it is gone.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `cmd` to its end, sampling kmodlab's own peak memory (not QEMU's) while it runs.
fn output_and_peak_rss(cmd: &mut std::process::Command) -> (std::process::Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(peak_rss_kib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, sampler.join().unwrap())
}

/// A module that prints without newlines as fast as it can for its whole deadline: kmodlab's
/// memory stays bounded, `console.log` keeps what it can up to its limit and says where it was
/// cut, the run times out in its load phase, and no QEMU is left.
#[test]
fn vm_a_console_flood_keeps_memory_bounded_and_cuts_the_log() {
    let _g = lock();
    let runs = scratch("vm-flood");
    let limit = 1 << 20;
    let (out, peak_kib) = output_and_peak_rss(
        kmodlab()
            .env("KMODLAB_RUNS", &runs)
            .env("KMODLAB_CONSOLE_LIMIT", limit.to_string())
            .args(["run", "--json", "--timeout", "12"])
            .arg(repo().join("tests/modules/hostile"))
            .arg("flood_ms=600000"),
    );
    let r: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    let run_dir = std::path::PathBuf::from(r["run_dir"].as_str().unwrap());
    assert_eq!(r["verdict"], "timeout", "run dir {}", run_dir.display());
    assert_eq!(r["timeout_phase"], "load");
    assert!(
        peak_kib < 100 * 1024,
        "kmodlab's peak memory {peak_kib} KiB (run dir {})",
        run_dir.display()
    );
    let console = std::fs::read(run_dir.join("console.log")).unwrap();
    let marker = format!("[kmodlab: console.log cut here, at its limit of {limit} bytes");
    let at = console
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .unwrap_or_else(|| panic!("no cut marker in {}", run_dir.display()));
    assert_eq!(
        at,
        limit + 1,
        "everything up to the limit is kept, then the marker"
    );
    assert!(console.len() < limit + 1024);
    let log = r["load"]["log"].as_array().unwrap();
    assert!(
        log.len() <= 2001,
        "the phase log keeps the newest lines only"
    );
    assert!(
        log.iter()
            .any(|l| l.as_str().unwrap().contains("flood-without-newline")),
        "run dir {}",
        run_dir.display()
    );
    eprintln!("console flood: kmodlab peak RSS {} MiB", peak_kib / 1024);
    assert_no_qemu_left(&runs);
}

/// A module whose (fake) Rust panic names a file outside its directory: kmodlab reports the
/// crash, names the source line the kernel printed, and reads nothing of that host file into
/// any output or result.json.
#[test]
fn vm_a_panic_naming_a_host_file_reads_nothing_outside_the_module() {
    let _g = lock();
    let runs = scratch("vm-panic-path");
    let token = format!("kmodlab-secret-{}-{:?}", std::process::id(), Instant::now());
    let secret = runs.join("secret.rs");
    std::fs::write(&secret, format!("{token}\n")).unwrap();
    let module = repo().join("tests/modules/hostile");
    let relative = format!("../../../../../../../../..{}", secret.display());
    for path in [
        secret.display().to_string(),
        relative,
        "/etc/hostname".into(),
    ] {
        let out = kmodlab()
            .env("KMODLAB_RUNS", &runs)
            .args(["run", "--json"])
            .arg(&module)
            .arg(format!("panic_path={path}"))
            .output()
            .unwrap();
        let r: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
        let run_dir = std::path::PathBuf::from(r["run_dir"].as_str().unwrap());
        let where_ = format!("{path}: run dir {}", run_dir.display());
        assert_eq!(r["verdict"], "crashed", "{where_}");
        let report = &r["reports"][0];
        assert_eq!(report["source"], format!("{path}:1"), "{where_}");
        assert!(report["context"].is_null(), "{where_}: {report}");
        let result = std::fs::read_to_string(run_dir.join("result.json")).unwrap();
        for text in [
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            result,
        ] {
            assert!(!text.contains(&token), "{where_}: the host file leaked");
        }
        // The human report too.
        let out = kmodlab()
            .env("KMODLAB_RUNS", &runs)
            .arg("oops")
            .arg("--module-dir")
            .arg(&module)
            .arg(run_dir.join("console.log"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&token),
            "{where_}: kmodlab oops leaked the host file"
        );
    }
    assert_no_qemu_left(&runs);
}

/// QEMU killed from outside while the module loads: an infrastructure error (exit 3) saying
/// QEMU died, never the verdict `panicked`.
#[test]
fn vm_qemu_killed_during_the_load_is_an_infrastructure_error() {
    let _g = lock();
    let runs = scratch("vm-qemu-killed");
    let ko = built("tests/modules/busy-loop");
    let child = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["run", "--timeout", "120"])
        .arg(&ko)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the module is loading (its init spins), then kill QEMU.
    let deadline = Instant::now() + Duration::from_secs(120);
    let qemu = loop {
        assert!(Instant::now() < deadline, "the load never started");
        let loading = walk_find(&runs, "console.log")
            .and_then(|c| std::fs::read_to_string(c).ok())
            .is_some_and(|c| c.contains("busy_loop: spinning"));
        let pids = processes_with(&runs.display().to_string());
        if loading && pids.len() == 1 {
            break pids[0];
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: plain syscall on the QEMU process found above.
    unsafe { libc::kill(qemu as i32, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("QEMU died during the load phase (killed by SIGKILL)"),
        "{}",
        show(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("panicked"));
    assert_no_qemu_left(&runs);
}

/// Busy loops on every core, until dropped.
struct CpuHog(Vec<std::process::Child>);

impl CpuHog {
    fn start() -> CpuHog {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuHog(
            (0..n)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `kmodlab run --json` of a built module with its own states directory: the result, stderr.
fn run_ko(
    runs: &std::path::Path,
    warm_dir: &std::path::Path,
    ko: &std::path::Path,
) -> (Value, String) {
    let out = kmodlab()
        .env("KMODLAB_RUNS", runs)
        .env("KMODLAB_WARM_DIR", warm_dir)
        .args(["run", "--json"])
        .arg(ko)
        .output()
        .unwrap();
    let r: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    assert_eq!(r["verdict"], "pass", "{}", show(&out));
    (r, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Regression: on a busy machine, saving raced QEMU's end of the migration ("Migration is not
/// finalized yet"), and the failure marker turned warm starts off for good. Ten saves in a row
/// with every core busy: each succeeds, and every later run restores warm.
#[test]
fn vm_warm_saves_survive_a_busy_machine() {
    let _g = lock();
    let runs = scratch("vm-warm-busy");
    let ko = built("labs/kernel_modules/1-2-test-mod");
    let _hog = CpuHog::start();
    let states: Vec<std::path::PathBuf> = (0..10).map(|i| runs.join(format!("warm-{i}"))).collect();
    for dir in &states {
        let (r, stderr) = run_ko(&runs, dir, &ko);
        assert_eq!(r["start"], "cold", "{stderr}");
        assert!(
            stderr.contains("booted cold and saved one"),
            "run dir {}: {stderr}",
            r["run_dir"]
        );
    }
    for dir in &states {
        let (r, stderr) = run_ko(&runs, dir, &ko);
        assert_eq!(r["start"], "warm", "run dir {}: {stderr}", r["run_dir"]);
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("failed").exists())
            .collect();
        assert!(left.is_empty(), "a failure marker in {}", dir.display());
    }
    assert_no_qemu_left(&runs);
}

/// A truncated or corrupted saved state: the run boots cold with one line saying why, saves a
/// new state, and the next run is warm again.
#[test]
fn vm_a_damaged_warm_state_falls_back_to_a_cold_boot() {
    let _g = lock();
    let runs = scratch("vm-warm-damaged");
    let warm_dir = runs.join("warm");
    let ko = built("labs/kernel_modules/1-2-test-mod");
    let (first, _) = run_ko(&runs, &warm_dir, &ko);
    assert_eq!(first["start"], "cold");
    let state_dir = std::fs::read_dir(&warm_dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().join("state").is_file())
        .map(|e| e.path())
        .expect("a saved state");
    let state = state_dir.join("state");
    type Damage = fn(&std::path::Path, u64);
    let damages: [(&str, Damage, &str); 2] = [
        (
            "truncated",
            |p, len| {
                std::fs::File::options()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap()
            },
            "is damaged",
        ),
        (
            "overwritten",
            |p, len| std::fs::write(p, vec![0x5au8; len as usize]).unwrap(),
            "restoring",
        ),
    ];
    for (what, damage, says) in damages {
        damage(&state, std::fs::metadata(&state).unwrap().len());
        let (r, stderr) = run_ko(&runs, &warm_dir, &ko);
        assert_eq!(r["start"], "cold", "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        let (r, stderr) = run_ko(&runs, &warm_dir, &ko);
        assert_eq!(r["start"], "warm", "{what}, then saved again: {stderr}");
        assert!(!state_dir.join("failed").exists(), "{what}: marked");
    }
    assert_no_qemu_left(&runs);
}

/// Regression: a parameter read that missed its deadline was ignored, and its late answer was
/// taken for the unload's (the verdict said `unload-failed`). Now the check phase times out,
/// named, and nothing else is attempted.
#[test]
fn vm_a_read_past_its_deadline_is_the_check_phase_timeout() {
    let _g = lock();
    let runs = scratch("vm-slow-read");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["run", "--json", "--timeout", "3"])
        .arg(repo().join("tests/modules/hostile"))
        .arg("slow_read_ms=8000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let where_ = format!("run dir {}", r["run_dir"]);
    assert_eq!(r["load"]["ok"], true, "{where_}");
    assert_eq!(r["verdict"], "timeout", "{where_}");
    assert_eq!(r["timeout_phase"], "check", "{where_}");
    assert!(r["unload"].is_null(), "no unload after a timeout: {where_}");
    assert_no_qemu_left(&runs);
}

/// The number of the first line of `file` (under the repository) whose text, trimmed, is `text`.
fn line_of(file: &str, text: &str) -> usize {
    let src = std::fs::read_to_string(repo().join(file)).unwrap();
    src.lines()
        .position(|l| l.trim() == text)
        .unwrap_or_else(|| panic!("{text:?} in {file}"))
        + 1
}

/// A `kmodlab gdb` run's output, with its run directory's console tail when `ok` is false.
fn gdb_output(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let tail = err
        .lines()
        .find_map(|l| l.strip_prefix("kmodlab: run dir "))
        .and_then(|l| l.split(" (").next())
        .map(|d| {
            let console = std::fs::read_to_string(std::path::Path::new(d).join("console.log"))
                .unwrap_or_default();
            let lines: Vec<&str> = console.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n  | ")
        })
        .unwrap_or_default();
    format!("{}\n--- console tail\n  | {tail}", show(out))
}

/// Asserts that no gdb and no QEMU started for a runs directory still run.
fn assert_no_gdb_or_qemu_left(runs: &std::path::Path) {
    assert_no_qemu_left(runs);
    let needle = runs.display().to_string();
    let gdb: Vec<u32> = kmodlab_processes(&needle, "gdb");
    assert!(gdb.is_empty(), "gdb processes left behind: {gdb:?}");
}

/// PIDs of processes named `comm` whose command line contains `needle`.
fn kmodlab_processes(needle: &str, comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if name.trim() == comm && cmd.contains(needle) && !is_zombie(pid) {
            out.push(pid);
        }
    }
    out
}

/// The gdb session on the oops lab: `kmodlab gdb [OPTIONS] labs/kernel_modules/5-oops-mod
/// -- --batch -ex bt -ex 'info line *$pc' -ex next -ex continue -ex bt`.
fn gdb_on_the_oops_lab(runs: &std::path::Path, options: &[&str]) -> std::process::Output {
    kmodlab()
        .env("KMODLAB_RUNS", runs)
        .env("KMODLAB_WARM_DIR", runs.join("warm"))
        .arg("gdb")
        .args(options)
        .args([
            "labs/kernel_modules/5-oops-mod",
            "--",
            "--batch",
            "-ex",
            "bt",
            "-ex",
            "info line *$pc",
            "-ex",
            "next",
            "-ex",
            "continue",
            "-ex",
            "bt",
        ])
        .output()
        .unwrap()
}

/// `kmodlab gdb` on the debug lab kernel: gdb stops in the oops lab's init before its first
/// line, with source lines; `next` steps to the NULL write; `continue` stops in the kernel's oops
/// path, and `bt` goes on through the fault to the faulting line. Nothing is left running.
#[test]
fn vm_gdb_stops_in_the_oops_labs_init_and_on_its_oops() {
    let _g = lock();
    let runs = scratch("vm-gdb");
    let out = gdb_on_the_oops_lab(&runs, &["--lab-kernel", "debug"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let file = "labs/kernel_modules/5-oops-mod/oops_mod.c";
    let first = line_of(file, "pr_info(\"before init\\n\");");
    let fault = line_of(file, "*p = 'a';");
    let stop = text
        .find("kmodlab: oops (")
        .unwrap_or_else(|| panic!("gdb stopped on the oops\n{}", gdb_output(&out)));
    let (before, after) = text.split_at(stop);
    assert!(
        before.contains(&format!("#0  my_oops_init () at oops_mod.c:{first}\n")),
        "the first stop is in my_oops_init at its first line\n{}",
        gdb_output(&out)
    );
    assert!(
        before.contains(&format!("Line {first} of \"oops_mod.c\"")),
        "{}",
        gdb_output(&out)
    );
    assert!(
        before.contains(&format!("\n{fault}\t\t*p = 'a';\n")),
        "`next` steps to the NULL write\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains(&format!("my_oops_init (oops_mod.c:{fault})")),
        "the oops names the faulting line\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains(&format!("in my_oops_init () at oops_mod.c:{fault}\n")),
        "`bt` shows the faulting frame\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains("#0  die_addr ") || after.contains("#0  __die "),
        "stopped in the kernel's oops path\n{}",
        gdb_output(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", gdb_output(&out));
    assert_no_gdb_or_qemu_left(&runs);

    // The same module without its debug info: one line saying so, and nothing boots.
    let stripped = runs.join("oops_mod.ko");
    let strip = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(repo().join("labs/kernel_modules/5-oops-mod/oops_mod.ko"))
        .arg(&stripped)
        .status()
        .unwrap();
    assert!(strip.success());
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["gdb", "--lab-kernel", "debug"])
        .arg(&stripped)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.ends_with(
            "no debug info (.debug_info), so gdb cannot show its source: build it \
                       against a kernel with CONFIG_DEBUG_INFO (the lab kernels have it), \
                       unstripped\n"
        ) && err.lines().count() == 1,
        "{}",
        show(&out)
    );
}

/// The same for the Rust oops lab on the Rust lab kernel: the first stop is in the module's own
/// `init`, with `.rs` lines; `next` runs into the oops, whose `bt` names the faulting line.
#[test]
fn vm_gdb_stops_in_the_rust_oops_labs_init_and_on_its_oops() {
    let _g = lock();
    let runs = scratch("vm-gdb-rust");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .env("KMODLAB_WARM_DIR", runs.join("warm"))
        .args([
            "gdb",
            "labs/rust/5-oops-mod",
            "--",
            "--batch",
            "-ex",
            "bt 1",
            "-ex",
            "next",
            "-ex",
            "bt",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let file = "labs/rust/5-oops-mod/oops_mod.rs";
    let first = line_of(file, "my_oops_init();");
    let fault = line_of(file, "unsafe { p.write_volatile(b'a') };");
    assert!(
        text.contains("#0  oops_mod::{impl#0}::init ("),
        "the first stop is in the module's init\n{}",
        gdb_output(&out)
    );
    assert!(
        text.contains(&format!(") at oops_mod.rs:{first}\n")),
        "at its first line\n{}",
        gdb_output(&out)
    );
    assert!(
        text.contains(&format!(
            "oops_mod::my_oops_init () at oops_mod.rs:{fault}\n"
        )),
        "`bt` after the oops shows the faulting line\n{}",
        gdb_output(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", gdb_output(&out));
    assert_no_gdb_or_qemu_left(&runs);
}

/// `kmodlab gdb` on Debian's kernel, which has no vmlinux with DWARF here (its `-dbg` package is
/// not installed): kernel functions are named from the guest's `/proc/kallsyms`, the module has
/// its source lines, and the oops stop's `bt` goes from the faulting line to the kernel's
/// `do_one_initcall`.
#[test]
fn vm_gdb_on_debians_kernel_names_kernel_frames_from_kallsyms() {
    let _g = lock();
    let runs = scratch("vm-gdb-debian");
    let out = gdb_on_the_oops_lab(&runs, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no vmlinux with debug info: gdb names kernel functions from the guest's /proc/kallsyms"),
        "kmodlab says where kernel names come from\n{}",
        gdb_output(&out)
    );
    let file = "labs/kernel_modules/5-oops-mod/oops_mod.c";
    let first = line_of(file, "pr_info(\"before init\\n\");");
    let fault = line_of(file, "*p = 'a';");
    let stop = text
        .find("kmodlab: oops (")
        .unwrap_or_else(|| panic!("gdb stopped on the oops\n{}", gdb_output(&out)));
    let (before, after) = text.split_at(stop);
    assert!(
        before.contains("#0  my_oops_init () at ")
            && before.contains(&format!("oops_mod.c:{first}\n{first}\t")),
        "the first stop is in my_oops_init at its first line\n{}",
        gdb_output(&out)
    );
    assert!(
        before.contains(" in do_one_initcall ()\n"),
        "the kernel frame under init is named\n{}",
        gdb_output(&out)
    );
    assert!(
        before.contains(&format!("\n{fault}\t\t*p = 'a';\n")),
        "`next` steps to the NULL write\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains(&format!("oops_mod.c:{fault})")),
        "the oops names the faulting line\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains("#0  0x") && after.contains(" in __die ()\n"),
        "stopped in the kernel's oops path\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains("#1  0x")
            && after.contains(" in my_oops_init () at ")
            && after.contains(&format!("oops_mod.c:{fault}\n#2 ")),
        "`bt` goes from the oops to the faulting line\n{}",
        gdb_output(&out)
    );
    assert!(
        after.contains(" in do_one_initcall ()\n"),
        "and on to the kernel's caller\n{}",
        gdb_output(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", gdb_output(&out));
    assert_no_gdb_or_qemu_left(&runs);
}

/// A pipe's lines as they arrive, gathered by a thread of their own.
fn collect_lines(
    pipe: Box<dyn std::io::Read + Send>,
) -> (std::sync::Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let seen = std::sync::Arc::new(Mutex::new(String::new()));
    let into = seen.clone();
    let thread = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    (seen, thread)
}

/// `kmodlab gdb` of the parameters lab with `str=tired`: `print str` in init shows the value the
/// load gave; a breakpoint in the exit function stops when kmodlab unloads the module. Then
/// SIGTERM while gdb waits in `continue` ends gdb and QEMU, and kmodlab exits 143.
#[test]
fn vm_gdb_prints_a_parameter_stops_at_unload_and_ends_on_sigterm() {
    let _g = lock();
    let runs = scratch("vm-gdb-params");
    let mut child = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .env("KMODLAB_WARM_DIR", runs.join("warm"))
        .args([
            "gdb",
            "labs/kernel_modules/6-cmd-mod",
            "str=tired",
            "--",
            "--batch",
            "-ex",
            "print str",
            "-ex",
            "break cmd_exit",
            "-ex",
            "continue",
            "-ex",
            "bt 1",
            "-ex",
            "continue",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (seen, reader) = collect_lines(Box::new(child.stdout.take().unwrap()));
    let (errors, errors_thread) = collect_lines(Box::new(child.stderr.take().unwrap()));
    let file = "labs/kernel_modules/6-cmd-mod/cmd_mod.c";
    let exit_first = line_of(file, "pr_info(\"Exit\\n\");");
    let deadline = Instant::now() + Duration::from_secs(300);
    let stopped_at_unload = loop {
        let text = seen.lock().unwrap().clone();
        // The second `continue` runs once the exit stop's `bt` printed.
        if text.contains("Breakpoint 2, cmd_exit () at ") && text.contains("#0  cmd_exit () at ") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if stopped_at_unload {
        // gdb waits in the second `continue` now; the guest idles.
        std::thread::sleep(Duration::from_millis(500));
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    } else {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    errors_thread.join().unwrap();
    let err = errors.lock().unwrap().clone();
    let text = seen.lock().unwrap().clone();
    let context = format!("--- stdout\n{text}\n--- stderr\n{err}");
    assert!(
        stopped_at_unload,
        "gdb stopped in cmd_exit at unload\n{context}"
    );
    assert!(
        text.contains("$1 = 0x") && text.contains(" \"tired\"\n"),
        "`print str` shows the parameter's value\n{context}"
    );
    assert!(
        text.contains("cmd_mod.c:") && err.contains("cmd_mod loaded; unloading it"),
        "{context}"
    );
    // gcc's code has no frame pointer: gdb puts a breakpoint on a function at its first
    // instruction, on the line of its opening brace or its first statement.
    let exit_open = exit_first - 1;
    assert!(
        text.contains(&format!("cmd_mod.c:{exit_first}\n"))
            || text.contains(&format!("cmd_mod.c:{exit_open}\n")),
        "the exit stop is at the exit function's start\n{context}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.code(),
        Some(143),
        "kmodlab exits 128 + SIGTERM ({:?})\n{context}",
        status.signal()
    );
    assert_no_gdb_or_qemu_left(&runs);
}

/// `kmodlab shell --gdb`: kmodlab prints the command that attaches gdb to the shell's guest;
/// gdb attached with it gives a module loaded later from the shell its symbols, and stops on
/// its oops at the faulting line. The shell goes on once gdb is gone.
#[test]
fn vm_shell_gdb_attaches_and_gives_a_later_module_its_symbols() {
    let _g = lock();
    let runs = scratch("vm-shell-gdb");
    let mut shell = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .env("KMODLAB_WARM_DIR", runs.join("warm"))
        .args(["shell", "--gdb", "labs/kernel_modules/5-oops-mod"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, out_thread) = collect_lines(Box::new(shell.stdout.take().unwrap()));
    let (err, err_thread) = collect_lines(Box::new(shell.stderr.take().unwrap()));
    let mut stdin = shell.stdin.take().unwrap();
    let wait_for = |seen: &Mutex<String>, what: &str, secs: u64| -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if seen.lock().unwrap().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    const SAYS: &str = "kmodlab: gdb attaches to this guest from another terminal with: ";
    let announced = wait_for(&err, SAYS, 300);
    let command = err
        .lock()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(SAYS).map(str::to_string));
    let mut gdb_text = String::new();
    if let (true, Some(command)) = (announced, command) {
        let mut gdb = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{command} --batch -ex continue -ex bt"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (gdb_out, gdb_thread) = collect_lines(Box::new(gdb.stdout.take().unwrap()));
        if wait_for(&gdb_out, "kmodlab: attached;", 120) {
            use std::io::Write;
            let _ = stdin.write_all(b"insmod oops_mod.ko\n");
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        while gdb.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = gdb.kill();
        let _ = gdb.wait();
        gdb_thread.join().unwrap();
        gdb_text = gdb_out.lock().unwrap().clone();
    }
    {
        use std::io::Write;
        let _ = stdin.write_all(b"lsmod\nexit\n");
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(120);
    while shell.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = shell.kill();
    let status = shell.wait().unwrap();
    out_thread.join().unwrap();
    err_thread.join().unwrap();
    let context = format!(
        "--- gdb\n{gdb_text}\n--- shell stdout\n{}\n--- shell stderr\n{}",
        out.lock().unwrap(),
        err.lock().unwrap()
    );
    assert!(announced, "kmodlab says how to attach gdb\n{context}");
    let fault = line_of("labs/kernel_modules/5-oops-mod/oops_mod.c", "*p = 'a';");
    assert!(
        gdb_text.contains("kmodlab: oops_mod is loading: its symbols are loaded"),
        "the module loaded from the shell got its symbols\n{context}"
    );
    assert!(
        gdb_text.contains(&format!("oops_mod.c:{fault})"))
            && gdb_text.contains(" in my_oops_init () at ")
            && gdb_text.contains(&format!("oops_mod.c:{fault}\n#2 ")),
        "gdb stopped on the oops at the faulting line\n{context}"
    );
    assert!(
        out.lock().unwrap().contains("oops_mod "),
        "the shell went on after gdb detached (lsmod)\n{context}"
    );
    assert_eq!(status.code(), Some(0), "{context}");
    assert_no_gdb_or_qemu_left(&runs);
}
