//! The command line without a VM: usage, bad input and infrastructure errors are caught before
//! anything boots, each with one clear line and the right exit code.

mod util;
use util::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Builds a copy of the hello lab in a scratch directory and returns the .ko path.
fn built_hello(name: &str) -> std::path::PathBuf {
    let dir = scratch(name).join("hello");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &dir);
    let out = kmodlab().arg("build").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let ko = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(ko.ends_with("hello_mod.ko"), "{}", show(&out));
    ko.into()
}

#[test]
fn help_names_every_subcommand() {
    let out = kmodlab().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["build", "run", "test", "exec", "oops", "new", "gdb"] {
        assert!(text.contains(sub), "{text}");
    }
    assert!(text.contains("Exit codes"), "{text}");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = kmodlab()
        .args(["run", "--no-such-flag", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn parameter_without_value_is_a_usage_error() {
    let out = kmodlab()
        .args(["run", "labs/kernel_modules/6-cmd-mod", "novalue"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("\"novalue\" is not NAME=VALUE"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_file_that_is_not_a_module_is_an_input_error() {
    let d = scratch("notmod");
    let f = d.join("notes.ko");
    std::fs::write(&f, "just text\n").unwrap();
    let out = kmodlab().arg("run").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("notes.ko") && e.contains("not an ELF file"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one line: {e}");
}

#[test]
fn a_truncated_module_is_an_input_error() {
    let ko = built_hello("trunc");
    let bytes = std::fs::read(&ko).unwrap();
    let cut = ko.with_file_name("cut.ko");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = kmodlab().arg("run").arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let e = stderr(&out);
    assert!(e.contains("cut.ko") && e.contains("truncated"), "{e}");
}

#[test]
fn a_module_for_another_kernel_is_refused_naming_both() {
    let ko = built_hello("vermagic");
    let mut bytes = std::fs::read(&ko).unwrap();
    let key = b"vermagic=";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("vermagic in .modinfo")
        + key.len();
    // Same length, another release: "6.12.95+deb12-amd64" becomes "0.12.95+deb12-amd64".
    let end = at + bytes[at..].iter().position(|&b| b == b' ').unwrap();
    let theirs = String::from_utf8_lossy(&bytes[at..end]).to_string();
    bytes[at] = b'0';
    let other = String::from_utf8_lossy(&bytes[at..end]).to_string();
    let patched = ko.with_file_name("other.ko");
    std::fs::write(&patched, &bytes).unwrap();
    let out = kmodlab().arg("run").arg(&patched).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&other) && e.contains(&theirs),
        "names both releases: {e}"
    );
}

#[test]
fn a_broken_spec_names_file_and_line() {
    let d = scratch("badspec");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &d);
    std::fs::write(
        d.join("kmodlab.toml"),
        "module = \"hello_mod\"\n\n[[case]]\nname = \"x\"\n[case.load]\nlog = [\"(unclosed\"]\n",
    )
    .unwrap();
    let out = kmodlab().arg("test").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let e = stderr(&out);
    assert!(e.contains("kmodlab.toml:6:"), "{e}");
}

#[test]
fn no_spec_found_is_a_usage_error() {
    let d = scratch("nospec");
    let out = kmodlab().arg("test").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn missing_qemu_is_an_infrastructure_error() {
    let out = kmodlab()
        .env("KMODLAB_QEMU", "/nonexistent/qemu-system-x86_64")
        .args(["run", "labs/kernel_modules/1-2-test-mod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("qemu-system-x86"), "{}", show(&out));
}

#[test]
fn missing_kernel_is_an_infrastructure_error() {
    let out = kmodlab()
        .env("KMODLAB_KERNEL", "/nonexistent/vmlinuz")
        .args(["run", "labs/kernel_modules/1-2-test-mod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("/nonexistent/vmlinuz"),
        "{}",
        show(&out)
    );
}

#[test]
fn missing_headers_is_an_infrastructure_error_naming_the_package() {
    let d = scratch("nokdir");
    let out = kmodlab()
        .arg("build")
        .arg("labs/kernel_modules/1-2-test-mod")
        .arg("--kdir")
        .arg(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("linux-headers-amd64"),
        "{}",
        show(&out)
    );
}

/// A copy of the hello lab with the `;` after its first `pr_debug` removed, and that line's
/// number.
fn broken_hello(name: &str) -> (std::path::PathBuf, usize) {
    let d = scratch(name).join("broken");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &d);
    let src = d.join("hello_mod.c");
    let text = std::fs::read_to_string(&src).unwrap();
    let statement = "pr_debug(\"Hello!\\n\");";
    let line = text.lines().position(|l| l.contains(statement)).unwrap() + 1;
    std::fs::write(&src, text.replacen(statement, "pr_debug(\"Hello!\\n\")", 1)).unwrap();
    (d, line)
}

#[test]
fn a_compile_error_shows_file_and_line() {
    let (d, _) = broken_hello("compile");
    let out = kmodlab().arg("build").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let e = stderr(&out);
    let last = e
        .lines()
        .rev()
        .find(|l| l.contains("hello_mod.c:"))
        .unwrap_or("");
    assert!(
        last.contains(": error:"),
        "the summary names file:line: {e}"
    );
}

#[test]
fn building_a_directory_without_kbuild_is_an_input_error() {
    let d = scratch("nokbuild");
    let out = kmodlab().arg("build").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("not a module directory"),
        "{}",
        show(&out)
    );
}

/// `kmodlab new`: the files of a C and of a Rust module, named after the directory; never
/// overwriting; a name the kernel cannot take is a usage error naming it.
#[test]
fn new_makes_a_module_directory_and_never_overwrites() {
    let root = scratch("cli-new");
    let dir = root.join("my-demo");
    let out = kmodlab().arg("new").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for f in ["my_demo.c", "Kbuild", "Makefile", "kmodlab.toml"] {
        assert!(dir.join(f).is_file(), "{f}\n{}", show(&out));
    }
    let before = std::fs::read_to_string(dir.join("my_demo.c")).unwrap();
    let out = kmodlab()
        .args(["new", "--rust"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("not empty"), "{}", show(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("my_demo.c")).unwrap(),
        before
    );

    let rust = root.join("rusty");
    let out = kmodlab()
        .args(["new", "--rust"])
        .arg(&rust)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let rs = std::fs::read_to_string(rust.join("rusty.rs")).unwrap();
    assert!(rs.contains("module! {"), "{rs}");
    let spec = std::fs::read_to_string(rust.join("kmodlab.toml")).unwrap();
    assert!(spec.contains("kernel = \"rust\""), "{spec}");

    let out = kmodlab()
        .arg("new")
        .arg(root.join("9lives"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("\"9lives\" cannot name a module"),
        "{}",
        show(&out)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// `kmodlab oops` without debug info: titles from a real log, exit 1 on a report, 0 on a clean
/// log (standard input), 2 on an unreadable one or a module directory that is not one.
#[test]
fn oops_reads_logs_and_stdin_with_exit_codes() {
    let log = repo().join("crates/crash/tests/logs/gpf.log");
    let out = kmodlab().arg("oops").arg(&log).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("general protection fault in gpf_init\n"),
        "{text}"
    );
    assert!(text.contains("call trace"), "{text}");
    assert!(text.contains("=>"), "the Code: bytes disassembled: {text}");

    let mut child = kmodlab()
        .arg("oops")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[    1.0] hello: loaded\n[    2.0] hello: unloaded\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no crash report found\n"
    );

    let out = kmodlab()
        .args(["oops", "/nonexistent/console.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("/nonexistent/console.log"),
        "{}",
        show(&out)
    );
    let out = kmodlab()
        .args(["oops", "--module-dir", "/nonexistent"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("/nonexistent: not a directory"),
        "{}",
        show(&out)
    );
}

/// Regression: a deadline too long for the clock was a Rust panic (exit 101), not a usage error.
#[test]
fn a_timeout_beyond_a_day_is_a_usage_error() {
    for t in ["1e20", "86401", "inf", "0"] {
        let out = kmodlab()
            .args(["run", "--timeout", t, "labs/kernel_modules/1-2-test-mod"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--timeout {t}: {}", show(&out));
        assert!(stderr(&out).contains("--timeout"), "{}", show(&out));
    }
}

/// `kmodlab test` of a module that does not compile: the case fails (exit 1, not an
/// infrastructure error) and the compiler's `file:line` is shown; the spec may be named by its
/// file, relative or not.
#[test]
fn test_of_a_module_that_does_not_compile_fails_with_file_and_line() {
    let (d, line) = broken_hello("test-compile");
    for (cwd, spec) in [
        (repo(), d.join("kmodlab.toml")),
        (d.clone(), "kmodlab.toml".into()),
    ] {
        let out = kmodlab()
            .current_dir(&cwd)
            .arg("test")
            .arg(&spec)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            all.contains(&format!("hello_mod.c:{}", line + 1))
                || all.contains(&format!("hello_mod.c:{line}")),
            "names the file and line: {all}"
        );
        assert!(!all.contains("infrastructure"), "{all}");
    }
}

/// `kmodlab test` of a spec whose module the directory does not build is an input error.
#[test]
fn test_of_a_spec_naming_a_module_not_built_is_an_input_error() {
    let d = scratch("test-input").join("hello");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &d);
    std::fs::write(d.join("kmodlab.toml"), "module = \"no_such_mod\"\n").unwrap();
    let out = kmodlab().arg("test").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(all.contains("builds no module named no_such_mod"), "{all}");
}

/// PID 1 is the guest agent only on a kernel command line kmodlab wrote: as PID 1 of a fresh
/// PID namespace (a container's init), the binary stays a module tool.
#[test]
fn pid_1_outside_a_kmodlab_guest_is_not_the_agent() {
    let Some(unshare) = kmodlab_testkit::require_program("unshare") else {
        return;
    };
    // A private mount namespace too: the agent, if it ran, would mount /proc, /sys and /dev.
    let out = std::process::Command::new(unshare)
        .args(["--pid", "--fork", "--mount", "--"])
        .arg(env!("CARGO_BIN_EXE_kmodlab"))
        .args(["depmod", "-V"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("kmod version"),
        "{}",
        show(&out)
    );
}

/// A broken guest, played by `tests/fixtures/fake-qemu` (no VM boots): `kmodlab run` of a
/// built module with that QEMU, cold, and the guest misbehaving as `mode` says.
fn run_with_fake_qemu(mode: &str, timeout: &str) -> (std::process::Output, std::path::PathBuf) {
    let ko = built_hello(&format!("fake-{mode}"));
    let runs = scratch(&format!("fake-runs-{mode}"));
    let out = kmodlab()
        .env("KMODLAB_QEMU", repo().join("tests/fixtures/fake-qemu"))
        .env("KMODLAB_ACCEL", "tcg")
        .env("KMODLAB_RUNS", &runs)
        .env("FAKE_QEMU_MODE", mode)
        .args(["run", "--cold", "--timeout", timeout])
        .arg(&ko)
        .output()
        .unwrap();
    (out, runs)
}

/// Regression: a reply that was not UTF-8 closed the agent channel silently, and the run waited
/// out its deadline and said `timeout`; a malformed reply made it `panicked`. Both are the
/// infrastructure's failures (exit 3), quoting what came.
#[test]
fn garbage_from_the_agent_is_an_infrastructure_error_quoting_it() {
    for (mode, quoted) in [
        (
            "garbage",
            "not UTF-8: \"\u{fffd}\u{fffd} not utf-8 \\u{1b}[2J",
        ),
        ("malformed", "malformed message"),
    ] {
        let (out, runs) = run_with_fake_qemu(mode, "60");
        assert_eq!(out.status.code(), Some(3), "{mode}: {}", show(&out));
        let e = stderr(&out);
        assert!(e.contains(quoted), "{mode}: {e}");
        assert!(!e.contains("timeout"), "{mode}: {e}");
        assert!(
            !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
            "no raw escape reaches the terminal: {e}"
        );
        assert_no_qemu_left(&runs);
    }
}

/// A guest that never answers is the module's timeout (the phase named), and QEMU is gone.
#[test]
fn a_guest_that_never_answers_times_out_in_its_phase() {
    let (out, runs) = run_with_fake_qemu("silent", "2");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(o.contains("verdict: timeout"), "{}", show(&out));
    assert!(
        o.contains("the load phase missed its deadline"),
        "{}",
        show(&out)
    );
    assert_no_qemu_left(&runs);
}

/// Regression: QEMU ending without a kernel panic on the console was the verdict `panicked`.
#[test]
fn qemu_gone_without_a_panic_is_an_infrastructure_error() {
    let (out, runs) = run_with_fake_qemu("exit", "60");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("QEMU exited during the load phase (exit status 0) with no kernel panic"),
        "{e}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("panicked"));
    assert_no_qemu_left(&runs);
}

/// Completion scripts and manual pages come from the same definitions as `--help`: every
/// command is in them.
#[test]
fn completions_and_man_pages_cover_every_command() {
    let commands = [
        "build", "run", "exec", "test", "watch", "shell", "new", "kernel", "oops", "gdb",
    ];
    let out = kmodlab().args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("complete -F _kmodlab"), "{script}");
    for c in commands {
        assert!(
            script.contains(&format!("cmd=\"kmodlab__subcmd__{c}\"")),
            "no {c} in:\n{script}"
        );
    }
    let dir = scratch("man");
    let out = kmodlab().arg("man").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for c in commands {
        let page = std::fs::read_to_string(dir.join(format!("kmodlab-{c}.1")))
            .unwrap_or_else(|e| panic!("kmodlab-{c}.1: {e}"));
        assert!(page.starts_with(".ie"), "{page}");
        assert!(page.contains(&format!(".TH kmodlab-{c} 1")), "{page}");
    }
    let top = std::fs::read_to_string(dir.join("kmodlab.1")).unwrap();
    assert!(top.contains("kmodlab\\-shell"), "{top}");
    let out = kmodlab().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// `--lab-kernel` is on every command that builds or boots, takes `debug` or `rust` only, and
/// never goes with `--kernel` or `--kdir` (it names kmodlab's own kernel, they name another).
#[test]
fn lab_kernel_is_debug_or_rust_on_every_command_that_builds_or_boots() {
    for command in ["build", "run", "test", "exec", "shell", "watch", "gdb"] {
        let out = kmodlab().args([command, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--lab-kernel <KIND>") && help.contains("[possible values: debug, rust]"),
            "{command} --help:\n{help}"
        );
    }
    let out = kmodlab()
        .args([
            "run",
            "--lab-kernel",
            "gentoo",
            "labs/kernel_modules/1-2-test-mod",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("invalid value 'gentoo' for '--lab-kernel <KIND>'")
            && e.contains("[possible values: debug, rust]"),
        "{e}"
    );
    for other in [
        ["--kdir", "/lib/modules/x/build"],
        ["--kernel", "/boot/vmlinuz-x"],
    ] {
        let out = kmodlab()
            .args(["build", "--lab-kernel", "debug"])
            .args(other)
            .arg("labs/kernel_modules/1-2-test-mod")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{}",
            show(&out)
        );
    }
}

/// A spec asks for the debug lab kernel with `kernel = "debug"`; any other name is a spec error
/// at its line that lists the kernels there are.
#[test]
fn a_spec_names_the_debug_kernel_or_is_refused_at_its_line() {
    let d = scratch("spec-kernel");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &d);
    std::fs::write(
        d.join("kmodlab.toml"),
        "module = \"hello_mod\"\nkernel = \"debgu\"\n",
    )
    .unwrap();
    let out = kmodlab().arg("test").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let e = stderr(&out);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("kmodlab.toml:2: kernel: unknown kernel \"debgu\" (expected \"debian\", \"rust\" or \"debug\")"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn lab_start_writes_skeletons_once_and_never_overwrites() {
    let d = scratch("lab-start").join("km");
    let out = kmodlab()
        .args(["lab", "start", "kernel_modules"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read_to_string(d.join(".kmodlab-lab")).unwrap(),
        "kernel_modules\n"
    );
    for f in [
        "README.md",
        "6-cmd-mod/Kbuild",
        "6-cmd-mod/kmodlab.toml",
        "6-cmd-mod/cmd_mod.c",
    ] {
        assert!(d.join(f).is_file(), "{f}: {}", show(&out));
    }
    // Every TODO marker of the solution is in the skeleton; no line after a marker that the
    // marker removes is.
    let solution =
        std::fs::read_to_string(repo().join("labs/kernel_modules/6-cmd-mod/cmd_mod.c")).unwrap();
    let skeleton = std::fs::read_to_string(d.join("6-cmd-mod/cmd_mod.c")).unwrap();
    for l in solution.lines().filter(|l| l.contains("/* TODO ")) {
        assert!(skeleton.contains(l), "{l}");
    }
    // A student's edit survives a second start.
    std::fs::write(d.join("6-cmd-mod/cmd_mod.c"), "mine\n").unwrap();
    let out = kmodlab()
        .args(["lab", "start", "kernel_modules"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("cmd_mod.c: exists, kept as it is"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("6-cmd-mod/cmd_mod.c")).unwrap(),
        "mine\n"
    );
}

#[test]
fn lab_list_and_bad_lab_arguments() {
    let out = kmodlab().args(["lab", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kernel_modules") && text.contains("rust"),
        "{text}"
    );
    assert!(text.contains("6-cmd-mod"), "{text}");
    let out = kmodlab().args(["lab", "list", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("no lab called \"nope\""),
        "{}",
        show(&out)
    );
    let out = kmodlab()
        .args(["lab", "check", "labs/kernel_modules", "99"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("no exercise \"99\""),
        "{}",
        show(&out)
    );
    let empty = scratch("lab-empty");
    let out = kmodlab()
        .args(["lab", "check"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("no exercise of a built-in lab here"),
        "{}",
        show(&out)
    );
    let out = kmodlab()
        .args(["lab", "check", "--partition", "3/2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// `kmodlab gdb` without gdb says so in one line, before building or booting anything.
#[test]
fn gdb_without_gdb_is_one_clear_line() {
    let empty = scratch("no-gdb");
    let out = kmodlab()
        .env("PATH", &empty)
        .env_remove("KMODLAB_GDB")
        .args(["gdb", "labs/kernel_modules/5-oops-mod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(
        stderr(&out),
        "kmodlab: no gdb on PATH: install it (apt-get install gdb, or scripts/setup)\n"
    );
}
