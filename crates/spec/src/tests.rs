use super::*;
use std::path::PathBuf;

const FULL: &str = r#"# Which kernel the spec needs
kernel = "rust"
module = "hello_mod"
timeout = 30
kernel_args = ["watchdog_thresh=1", "sysctl.kernel.hung_task_timeout_secs=2", "nokaslr"]

[[case]]
name = "prints hello and goodbye"
params = ["str=tired", "label=two words"]
verdict = "pass"
timeout = 5.5

[case.load]
log = ["^Hello!$"]
no_log = ["Oops"]

[case.loaded]
exists = ["/sys/module/hello_mod", "/sys/module/hello_mod/initstate"]
absent = ["/sys/module/hello_mod/parameters"]
files = { "/sys/module/hello_mod/initstate" = "^live$", "/proc/modules" = "hello_mod" }

[case.unload]
log = ["Goodbye!"]
no_log = []

[[case]]
name = "oopses"

[case.crash]
kind = "oops"
title = "NULL pointer dereference"
function = "my_oops_init"
module = "oops_mod"
phase = "load"
source = "oops_mod.c:12"
"#;

fn err(text: &str) -> SpecError {
    parse("labs/x/kmodlab.toml", text).expect_err("spec should be rejected")
}

fn case(text: &str) -> Case {
    let mut spec = parse("kmodlab.toml", text).expect("spec should parse");
    assert_eq!(spec.cases.len(), 1);
    spec.cases.remove(0)
}

// ------------------------------------------------------------------------------------------
// Parsing good specs.

#[test]
fn full_spec_parses() {
    let spec = parse("kmodlab.toml", FULL).unwrap();
    assert_eq!(spec.kernel, KernelKind::Rust);
    assert_eq!(spec.module.as_deref(), Some("hello_mod"));
    assert_eq!(spec.timeout, Some(30.0));
    assert_eq!(
        spec.kernel_args,
        [
            "watchdog_thresh=1",
            "sysctl.kernel.hung_task_timeout_secs=2",
            "nokaslr"
        ]
    );
    assert_eq!(spec.cases.len(), 2);

    let c = &spec.cases[0];
    assert_eq!(c.name, "prints hello and goodbye");
    assert_eq!(c.params, ["str=tired", "label=two words"]);
    assert_eq!(c.verdict, Verdict::Pass);
    assert_eq!(c.timeout, Some(5.5));
    assert_eq!(spec.timeout_for(c), Some(5.5));
    assert_eq!(c.load.log[0].as_str(), "^Hello!$");
    assert_eq!(c.load.no_log[0].as_str(), "Oops");
    assert_eq!(c.load.error, None);
    assert_eq!(c.unload.expect.log[0].as_str(), "Goodbye!");
    assert!(c.unload.expect.no_log.is_empty());
    assert!(!c.unload.skip);
    assert_eq!(c.loaded.files.len(), 2);
    assert_eq!(c.loaded.files[0].0, "/sys/module/hello_mod/initstate");
    assert_eq!(c.loaded.files[1].0, "/proc/modules");
    assert_eq!(
        c.paths_to_read(),
        [
            "/sys/module/hello_mod",
            "/sys/module/hello_mod/initstate",
            "/sys/module/hello_mod/parameters",
            "/proc/modules",
        ]
    );
    assert!(c.crash.is_none());

    let c = &spec.cases[1];
    assert_eq!(spec.timeout_for(c), Some(30.0));
    assert_eq!(c.verdict, Verdict::Crashed);
    let crash = c.crash.as_ref().unwrap();
    assert_eq!(crash.kind, Some(ReportKind::Oops));
    assert_eq!(
        crash.title.as_ref().unwrap().as_str(),
        "NULL pointer dereference"
    );
    assert_eq!(crash.function.as_deref(), Some("my_oops_init"));
    assert_eq!(crash.module.as_deref(), Some("oops_mod"));
    assert_eq!(crash.phase, Some(Phase::Load));
    assert_eq!(crash.source.as_deref(), Some("oops_mod.c:12"));
    assert!(c.paths_to_read().is_empty());
}

#[test]
fn every_kernel_kind_is_named_as_written() {
    for (text, kind) in [
        ("kernel = \"debian\"\n", KernelKind::Debian),
        ("kernel = \"rust\"\n", KernelKind::Rust),
        ("kernel = \"debug\"\n", KernelKind::Debug),
    ] {
        let spec = parse("kmodlab.toml", text).unwrap();
        assert_eq!(spec.kernel, kind, "{text}");
        assert_eq!(KernelKind::from_name(kind.as_str()), Some(kind));
        assert_eq!(kind.is_lab(), kind != KernelKind::Debian);
    }
}

#[test]
fn empty_spec_has_the_implicit_case() {
    for text in ["", "# nothing\n", "module = \"m\"\n"] {
        let spec = parse("kmodlab.toml", text).unwrap();
        assert_eq!(spec.kernel, KernelKind::Debian);
        assert_eq!(spec.timeout, None);
        assert!(spec.kernel_args.is_empty());
        assert_eq!(spec.cases.len(), 1);
        assert_eq!(spec.cases[0].name, IMPLICIT_CASE);
        assert_eq!(spec.cases[0].verdict, Verdict::Pass);
        assert!(spec.cases[0].params.is_empty());
    }
}

#[test]
fn integer_timeouts_are_accepted() {
    let c = case("[[case]]\nname = \"a\"\ntimeout = 7\n");
    assert_eq!(c.timeout, Some(7.0));
}

#[test]
fn param_values_may_hold_spaces_and_equals() {
    let c =
        case("[[case]]\nname = \"a\"\nparams = [\"label=two words\", \"expr=a=b\", \"empty=\"]\n");
    assert_eq!(c.params, ["label=two words", "expr=a=b", "empty="]);
}

#[test]
fn implied_verdicts() {
    let v = |body: &str| case(&format!("[[case]]\nname = \"a\"\n{body}")).verdict;
    assert_eq!(v(""), Verdict::Pass);
    assert_eq!(v("[case.crash]\n"), Verdict::Crashed);
    assert_eq!(v("[case.crash]\nkind = \"oops\"\n"), Verdict::Crashed);
    assert_eq!(v("[case.crash]\nkind = \"bug\"\n"), Verdict::Crashed);
    assert_eq!(
        v("[case.crash]\nkind = \"soft-lockup\"\n"),
        Verdict::Crashed
    );
    assert_eq!(v("[case.crash]\nkind = \"hung-task\"\n"), Verdict::Crashed);
    assert_eq!(v("[case.crash]\nkind = \"warning\"\n"), Verdict::Warned);
    assert_eq!(v("[case.crash]\nkind = \"panic\"\n"), Verdict::Panicked);
    assert_eq!(v("[case.load]\nerror = \"ENODEV\"\n"), Verdict::LoadFailed);
    assert_eq!(
        v("[case.unload]\nerror = \"EAGAIN\"\n"),
        Verdict::UnloadFailed
    );
    // A crash wins over a load error; an explicit verdict wins over everything.
    assert_eq!(
        v("[case.load]\nerror = \"EFAULT\"\n[case.crash]\nkind = \"warning\"\n"),
        Verdict::Warned
    );
    assert_eq!(
        v("verdict = \"timeout\"\n[case.crash]\nkind = \"soft-lockup\"\n"),
        Verdict::Timeout
    );
    for verdict in Verdict::ALL {
        assert_eq!(v(&format!("verdict = \"{verdict}\"\n")), verdict);
    }
}

#[test]
fn unload_skip() {
    let c = case("[[case]]\nname = \"a\"\n[case.unload]\nskip = true\n");
    assert!(c.unload.skip);
    assert_eq!(c.verdict, Verdict::Pass);
}

#[test]
fn files_keep_spec_order() {
    let c = case(
        "[[case]]\nname = \"a\"\n[case.loaded]\nexists = [\"/b\", \"/a\"]\n\
         [case.loaded.files]\n\"/z\" = \"1\"\n\"/b\" = \"2\"\n\"/c\" = \"3\"\n",
    );
    let keys: Vec<&str> = c.loaded.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(keys, ["/z", "/b", "/c"]);
    assert_eq!(c.paths_to_read(), ["/b", "/a", "/z", "/c"]);
}

// ------------------------------------------------------------------------------------------
// Errors: one line, FILE:LINE: message, with the offending line.

fn assert_err(text: &str, line: usize, needle: &str) {
    let e = err(text);
    let shown = e.to_string();
    assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
    assert!(
        shown.starts_with(&format!("labs/x/kmodlab.toml:{line}: ")),
        "wrong location in {shown:?} (want line {line})"
    );
    assert_eq!(e.line(), line, "{shown}");
    assert_eq!(e.file(), "labs/x/kmodlab.toml");
    assert!(
        e.message().contains(needle),
        "{shown:?} does not contain {needle:?}"
    );
}

#[test]
fn toml_syntax_error() {
    assert_err("kernel = \"debian\"\n\nmodule = \n", 3, "");
    assert_err(
        "[[case]]\nname = \"a\"\nparams = [\"x=1\"\n",
        3,
        "unclosed array",
    );
    assert_err(
        "kernel = \"debian\"\nkernel = \"rust\"\n",
        2,
        "duplicate key",
    );
}

#[test]
fn unknown_keys() {
    assert_err(
        "kernel = \"debian\"\nmodules = \"m\"\n",
        2,
        "unknown field `modules`",
    );
    assert_err("[[cases]]\nname = \"a\"\n", 1, "unknown field `cases`");
    assert_err(
        "[[case]]\nname = \"a\"\n[case.load]\nlog = []\nlogs = [\"x\"]\n",
        5,
        "unknown field `logs`",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.unload]\nskip = false\nerrno = \"x\"\n",
        5,
        "unknown field `errno`",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nfile = {}\n",
        4,
        "unknown field `file`",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.crash]\nkind = \"oops\"\nguilty = \"f\"\n",
        5,
        "unknown field `guilty`",
    );
}

#[test]
fn wrong_types() {
    assert_err(
        "timeout = \"30\"\n",
        1,
        "timeout: invalid type: string \"30\", expected a number",
    );
    assert_err("[case]\nname = \"a\"\n", 1, "write [[case]], not [case]");
    assert_err("[[case]]\nname = \"a\"\nparams = \"x=1\"\n", 3, "");
    assert_err(
        "[[case]]\nname = \"a\"\n[case.unload]\nskip = \"yes\"\n",
        4,
        "",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nfiles = { \"/x\" = 1 }\n",
        4,
        "",
    );
    assert_err(
        "module = \"m\"\nkernel_args = \"watchdog_thresh=1\"\n",
        2,
        "kernel_args: invalid type: string \"watchdog_thresh=1\", expected a sequence",
    );
    assert_err(
        "kernel_args = [\n  \"a=1\",\n  2,\n]\n",
        3,
        "kernel_args: invalid type: integer `2`, expected a string",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.crash]\nsource = 12\n",
        4,
        "source: invalid type: integer `12`, expected a string",
    );
}

#[test]
fn bad_regexes() {
    assert_err(
        "[[case]]\nname = \"a\"\n[case.load]\nlog = [\"ok\",\n  \"(unclosed\"]\n",
        5,
        "load.log: invalid regex /(unclosed/",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.load]\nno_log = [\"[z-a]\"]\n",
        4,
        "load.no_log: invalid regex",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n\n[case.unload]\nlog = [\"*\"]\n",
        5,
        "unload.log: invalid regex",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.unload]\nno_log = [\"a{2,1}\"]\n",
        4,
        "unload.no_log: invalid regex",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded.files]\n\"/x\" = \"ok\"\n\"/y\" = \"(\"\n",
        5,
        "loaded.files \"/y\": invalid regex",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.crash]\nkind = \"oops\"\ntitle = \"(\"\n",
        5,
        "crash.title: invalid regex",
    );
}

#[test]
fn unknown_names() {
    assert_err(
        "kernel = \"gentoo\"\n",
        1,
        "unknown kernel \"gentoo\" (expected \"debian\", \"rust\" or \"debug\")",
    );
    assert_err("\nkernel = \"Debug\"\n", 2, "unknown kernel \"Debug\"");
    assert_err(
        "[[case]]\nname = \"a\"\nverdict = \"ok\"\n",
        3,
        "unknown verdict \"ok\" (expected one of: pass, load-failed",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.crash]\nkind = \"Oops\"\n",
        4,
        "unknown report kind \"Oops\"",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.crash]\nphase = \"boot\"\n",
        4,
        "unknown phase \"boot\"",
    );
}

#[test]
fn case_names() {
    assert_err(
        "[[case]]\nname = \"a\"\n\n[[case]]\nname = \"b\"\n[[case]]\n\nname = \"a\"\n",
        8,
        "duplicate case name \"a\" (first used at line 2)",
    );
    assert_err("[[case]]\nname = \"\"\n", 2, "`name` is empty");
    assert_err("[[case]]\nname = \"  \"\n", 2, "`name` is empty");
    let e = err("[[case]]\nname = \"a\"\n\n[[case]]\nparams = []\n");
    assert!(e.message().contains("missing `name`"), "{e}");
    assert!((4..=5).contains(&e.line()), "{e}");
}

#[test]
fn bad_params() {
    assert_err(
        "[[case]]\nname = \"a\"\nparams = [\n  \"a=1\",\n  \"novalue\",\n]\n",
        5,
        "params: \"novalue\" is not name=value",
    );
    assert_err(
        "[[case]]\nname = \"a\"\nparams = [\"=1\"]\n",
        3,
        "is not name=value",
    );
    assert_err(
        "[[case]]\nname = \"a\"\nparams = [\"a b=1\"]\n",
        3,
        "is not name=value",
    );
}

#[test]
fn other_invalid_values() {
    assert_err("timeout = 0\n", 1, "timeout: must be a positive number");
    assert_err("\ntimeout = -1.5\n", 2, "must be a positive number");
    assert_err("timeout = nan\n", 1, "must be a positive number");
    // Regression: a huge deadline was accepted and overflowed the clock (a panic, exit 101).
    assert_err(
        "timeout = 1e20\n",
        1,
        "timeout: must be at most 86400 seconds",
    );
    assert_err(
        "[[case]]\nname = \"x\"\ntimeout = 1e20\n",
        3,
        "must be at most",
    );
    assert_err("[[case]]\nname = \"a\"\ntimeout = 0.0\n", 3, "positive");
    assert_err("module = \"\"\n", 1, "invalid module name");
    assert_err(
        "kernel_args = [\"a=1\",\n \"b=two words\"]\n",
        2,
        "kernel_args: \"b=two words\" is not one kernel parameter",
    );
    assert_err(
        "kernel_args = [\"\"]\n",
        1,
        "kernel_args: \"\" is not one kernel parameter",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.crash]\nsource = \" \"\n",
        4,
        "crash.source: empty",
    );
    assert_err("module = \"a/b\"\n", 1, "invalid module name");
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nexists = [\"sys/module/x\"]\n",
        4,
        "loaded.exists: path \"sys/module/x\" is not absolute",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nabsent = [\"x\"]\n",
        4,
        "loaded.absent: path",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded.files]\n\"x\" = \"y\"\n",
        4,
        "loaded.files: path \"x\" is not absolute",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.unload]\nlog = [\"bye\"]\nskip = true\n",
        5,
        "unload.skip = true conflicts",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.load]\nerror = \"ENODEV\"\n[case.unload]\nerror = \"EBUSY\"\n",
        6,
        "unload.error conflicts with load.error",
    );
}

// ------------------------------------------------------------------------------------------
// Evaluation.

fn phase(ok: bool, log: &[&str]) -> PhaseResult {
    PhaseResult {
        ok,
        error: None,
        errno: None,
        log: log.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn run(verdict: Verdict) -> RunResult {
    RunResult {
        verdict,
        module: "hello_mod".into(),
        params: vec![],
        load: phase(
            true,
            &["Hello!", "loading out-of-tree module taints kernel."],
        ),
        unload: Some(phase(true, &["Goodbye!"])),
        files: vec![],
        before: vec![],
        commands: vec![],
        reports: vec![],
        timeout_phase: None,
        kernel: "6.12.95+deb12-amd64".into(),
        accel: "tcg".into(),
        run_dir: PathBuf::from("/tmp/run"),
        duration_s: 4.5,
        start: "warm".into(),
    }
}

fn file(path: &str, exists: bool, contents: Option<&str>) -> FileRead {
    FileRead {
        path: path.into(),
        exists,
        dir: false,
        contents: contents.map(str::to_string),
        error: None,
    }
}

fn report(
    kind: ReportKind,
    title: &str,
    function: Option<&str>,
    module: Option<&str>,
) -> CrashReport {
    // Built from a parsed log rather than a struct literal, so that fields the crash crate adds
    // do not break these tests.
    let log = "[    1.000000] Kernel panic - not syncing: x\n";
    let mut r = kmodlab_crash::parse_reports(log)
        .into_iter()
        .next()
        .expect("the crash parser finds the panic");
    r.kind = kind;
    r.title = title.into();
    r.corrupted = false;
    r.corrupted_reason = None;
    r.module = module.map(str::to_string);
    r.function = function.map(str::to_string);
    r.source = None;
    r
}

#[test]
fn evaluate_verdict() {
    let c = case("[[case]]\nname = \"a\"\n");
    assert!(c.evaluate(&run(Verdict::Pass)).is_empty());
    assert_eq!(
        c.evaluate(&run(Verdict::Crashed)),
        ["verdict: expected pass, got crashed"]
    );
    let mut r = run(Verdict::Timeout);
    r.timeout_phase = Some(Phase::Unload);
    assert_eq!(
        c.evaluate(&r),
        ["verdict: expected pass, got timeout (the unload phase missed its deadline)"]
    );
}

#[test]
fn evaluate_logs() {
    let c = case(
        "[[case]]\nname = \"a\"\n[case.load]\nlog = [\"^Hello!$\"]\nno_log = [\"Oops\"]\n\
         [case.unload]\nlog = [\"Goodbye\"]\nno_log = [\"WARNING\"]\n",
    );
    assert!(c.evaluate(&run(Verdict::Pass)).is_empty());

    let mut r = run(Verdict::Pass);
    r.load = phase(true, &["Hello! ", "x", "Oops: general protection fault"]);
    r.unload = Some(phase(true, &["WARNING: here"]));
    assert_eq!(
        c.evaluate(&r),
        [
            "load log: no line matches /^Hello!$/ (3 lines seen)",
            "load log: line \"Oops: general protection fault\" matches /Oops/, which must match no line",
            "unload log: no line matches /Goodbye/ (1 line seen)",
            "unload log: line \"WARNING: here\" matches /WARNING/, which must match no line",
        ]
    );

    r.unload = None;
    let f = c.evaluate(&r);
    assert_eq!(
        &f[2..],
        [
            "unload log: expected a line matching /Goodbye/, but unload was not attempted",
            "unload log: expected no line matching /WARNING/, but unload was not attempted",
        ]
    );
}

#[test]
fn evaluate_errors() {
    let c = case("[[case]]\nname = \"a\"\n[case.load]\nerror = \"No such device\"\n");
    let e = case("[[case]]\nname = \"a\"\n[case.load]\nerror = \"ENODEV\"\n");
    let mut r = run(Verdict::LoadFailed);
    r.unload = None;
    r.load = PhaseResult {
        ok: false,
        error: Some("No such device".into()),
        errno: Some("ENODEV".into()),
        log: vec![],
        ..Default::default()
    };
    assert!(c.evaluate(&r).is_empty());
    assert!(e.evaluate(&r).is_empty());

    r.load.error = Some("Invalid argument".into());
    r.load.errno = Some("EINVAL".into());
    assert_eq!(
        c.evaluate(&r),
        ["load error: expected \"No such device\", got \"Invalid argument\" (EINVAL)"]
    );

    let ok = run(Verdict::Pass);
    assert_eq!(
        e.evaluate(&ok),
        [
            "verdict: expected load-failed, got pass",
            "load error: expected \"ENODEV\", load succeeded",
        ]
    );

    let u = case("[[case]]\nname = \"a\"\n[case.unload]\nerror = \"EAGAIN\"\n");
    let mut r = run(Verdict::UnloadFailed);
    r.unload = Some(PhaseResult {
        ok: false,
        error: Some("Resource temporarily unavailable".into()),
        errno: Some("EAGAIN".into()),
        log: vec![],
        ..Default::default()
    });
    assert!(u.evaluate(&r).is_empty());
    r.unload = None;
    r.verdict = Verdict::Crashed;
    assert_eq!(
        u.evaluate(&r),
        [
            "verdict: expected unload-failed, got crashed",
            "unload error: expected \"EAGAIN\", but unload was not attempted",
        ]
    );
}

#[test]
fn evaluate_loaded() {
    let c = case(
        "[[case]]\nname = \"a\"\n[case.loaded]\n\
         exists = [\"/sys/module/hello_mod\"]\n\
         absent = [\"/sys/module/hello_mod/parameters\"]\n\
         files = { \"/sys/module/hello_mod/initstate\" = \"^live$\" }\n",
    );
    let mut r = run(Verdict::Pass);
    r.files = vec![
        file("/sys/module/hello_mod", true, None),
        file("/sys/module/hello_mod/parameters", false, None),
        file("/sys/module/hello_mod/initstate", true, Some("live\n")),
    ];
    assert!(c.evaluate(&r).is_empty());

    r.files = vec![
        FileRead {
            error: Some("No such file or directory".into()),
            ..file("/sys/module/hello_mod", false, None)
        },
        file("/sys/module/hello_mod/parameters", true, None),
        file("/sys/module/hello_mod/initstate", true, Some("coming\n")),
    ];
    assert_eq!(
        c.evaluate(&r),
        [
            "loaded: expected /sys/module/hello_mod to exist, but it does not (No such file or directory)",
            "loaded: expected /sys/module/hello_mod/parameters to be absent, but it exists",
            "loaded: expected /sys/module/hello_mod/initstate to match /^live$/, got \"coming\"",
        ]
    );

    r.files = vec![FileRead {
        error: Some("Permission denied".into()),
        ..file("/sys/module/hello_mod/initstate", true, None)
    }];
    assert_eq!(
        c.evaluate(&r),
        [
            "loaded: /sys/module/hello_mod was not read",
            "loaded: /sys/module/hello_mod/parameters was not read",
            "loaded: expected /sys/module/hello_mod/initstate to match /^live$/, but it could not be read (Permission denied)",
        ]
    );

    r.files = vec![file("/sys/module/hello_mod/initstate", false, None)];
    assert_eq!(
        c.evaluate(&r)[2],
        "loaded: expected /sys/module/hello_mod/initstate to match /^live$/, but it does not exist"
    );

    r.files.clear();
    r.load.ok = false;
    assert_eq!(
        c.evaluate(&r)[0],
        "loaded: /sys/module/hello_mod was not read (the module did not load)"
    );
}

#[test]
fn evaluate_crash() {
    let c = case(
        "[[case]]\nname = \"a\"\n[case.crash]\nkind = \"oops\"\n\
         title = \"NULL pointer dereference\"\nfunction = \"my_oops_init\"\nmodule = \"oops_mod\"\n",
    );
    let good = report(
        ReportKind::Oops,
        "BUG: kernel NULL pointer dereference in my_oops_init",
        Some("my_oops_init"),
        Some("oops_mod"),
    );
    let mut r = run(Verdict::Crashed);
    r.unload = None;
    r.reports = vec![
        report(ReportKind::Warning, "WARNING in f", Some("f"), None),
        good.clone(),
    ];
    assert!(c.evaluate(&r).is_empty());

    let expected = "crash: expected a report with kind oops, title /NULL pointer dereference/, \
                    function my_oops_init, module oops_mod";
    r.reports.clear();
    assert_eq!(c.evaluate(&r), [format!("{expected}, no reports seen")]);

    // Each field on its own can make the match fail.
    let wrong = [
        CrashReport {
            kind: ReportKind::Bug,
            ..good.clone()
        },
        CrashReport {
            title: "general protection fault in my_oops_init".into(),
            ..good.clone()
        },
        CrashReport {
            function: Some("other".into()),
            ..good.clone()
        },
        CrashReport {
            module: None,
            ..good.clone()
        },
    ];
    for w in wrong {
        r.reports = vec![w];
        assert_eq!(c.evaluate(&r).len(), 1, "{:?}", r.reports[0]);
    }
    r.reports = vec![
        CrashReport {
            module: None,
            ..good.clone()
        },
        report(ReportKind::Warning, "WARNING in f", Some("f"), Some("m")),
    ];
    assert_eq!(
        c.evaluate(&r),
        [format!(
            "{expected}, 2 reports seen: oops \"BUG: kernel NULL pointer dereference in my_oops_init\" \
             in my_oops_init; warning \"WARNING in f\" in f [m]"
        )]
    );

    // An empty [case.crash] matches any report.
    let any = case("[[case]]\nname = \"a\"\n[case.crash]\n");
    r.reports = vec![good];
    assert!(any.evaluate(&r).is_empty());
    r.reports.clear();
    assert_eq!(
        any.evaluate(&r),
        ["crash: expected a crash report, no reports seen"]
    );
}

#[test]
fn report_kind_names_match_serde() {
    for (name, kind) in REPORT_KINDS {
        assert_eq!(report_kind_name(kind), name);
        let serde_name = toml::Value::try_from(kind).unwrap();
        assert_eq!(serde_name.as_str(), Some(name));
    }
}

#[test]
fn evaluate_crash_source() {
    let c = case(
        "[[case]]\nname = \"a\"\n[case.crash]\nfunction = \"my_oops_init\"\n\
         source = \"oops_mod.c:12\"\n",
    );
    let mut good = report(
        ReportKind::Oops,
        "BUG: kernel NULL pointer dereference in my_oops_init",
        Some("my_oops_init"),
        Some("oops_mod"),
    );
    let mut r = run(Verdict::Crashed);
    r.unload = None;
    for src in [
        "oops_mod.c:12",
        "/work/labs/oops-mod/oops_mod.c:12",
        "labs/oops_mod.c:12",
    ] {
        good.source = Some(src.into());
        r.reports = vec![good.clone()];
        assert!(c.evaluate(&r).is_empty(), "{src}");
    }
    let expected = "crash: expected a report with function my_oops_init, source oops_mod.c:12";
    for src in [
        "/x/oops_mod.c:112",
        "/x/my_oops_mod.c:12",
        "oops_mod.c:12:5",
    ] {
        good.source = Some(src.into());
        r.reports = vec![good.clone()];
        assert_eq!(
            c.evaluate(&r),
            [format!(
                "{expected}, 1 report seen: oops \"BUG: kernel NULL pointer dereference in \
                 my_oops_init\" in my_oops_init [oops_mod] at {src}"
            )]
        );
    }
    good.source = None;
    r.reports = vec![good];
    assert_eq!(
        c.evaluate(&r),
        [format!(
            "{expected}, 1 report seen: oops \"BUG: kernel NULL pointer dereference in \
             my_oops_init\" in my_oops_init [oops_mod] (no source)"
        )]
    );
}

#[test]
fn lab_fields_parse_and_are_checked() {
    let spec = parse(
        "kmodlab.toml",
        "title = \"Module parameters\"\n[[case]]\nname = \"a\"\ntodo = [1, 3]\nhint = \"set str\"\n",
    )
    .unwrap();
    assert_eq!(spec.title.as_deref(), Some("Module parameters"));
    assert_eq!(spec.cases[0].todo, vec![1, 3]);
    assert_eq!(spec.cases[0].hint.as_deref(), Some("set str"));
    let e = parse("kmodlab.toml", "[[case]]\nname = \"a\"\ntodo = [0]\n").unwrap_err();
    assert_eq!(e.line(), 3);
    assert!(e.message().contains("not a TODO number"), "{e}");
    let e = parse("kmodlab.toml", "title = \"\"\n").unwrap_err();
    assert!(e.message().starts_with("title:"), "{e}");
    assert!(parse("kmodlab.toml", "[[case]]\nname = \"a\"\n")
        .unwrap()
        .cases[0]
        .todo
        .is_empty());
}

// ------------------------------------------------------------------------------------------
// Shell commands: `before` and `loaded.run`.

const COMMANDS: &str = r#"[[case]]
name = "dyndbg"
before = ["echo 8 > /proc/sys/kernel/printk", "mount -t debugfs none /sys/kernel/debug || true"]

[case.loaded]
exists = ["/proc/dyndbg_demo"]
run = ["echo 'module dyndbg_demo +p' > /proc/dynamic_debug/control", "cat /proc/dyndbg_demo"]
output = ["^reads: [0-9]+$"]
log = ["^dyndbg_demo: read$"]
no_log = ["WARNING"]
"#;

fn sh(line: &str, code: i32, stdout: &str, log: &[&str]) -> CommandResult {
    let mut c = CommandResult::new(vec!["/bin/sh".into(), "-c".into(), line.into()]);
    c.exit_code = Some(code);
    c.stdout = stdout.into();
    c.log = log.iter().map(|s| s.to_string()).collect();
    c
}

fn commands_run() -> RunResult {
    let mut r = run(Verdict::Pass);
    r.files = vec![file("/proc/dyndbg_demo", true, Some("reads: 0\n"))];
    r.before = vec![
        sh("echo 8 > /proc/sys/kernel/printk", 0, "", &[]),
        sh(
            "mount -t debugfs none /sys/kernel/debug || true",
            0,
            "",
            &[],
        ),
    ];
    r.commands = vec![
        sh(
            "echo 'module dyndbg_demo +p' > /proc/dynamic_debug/control",
            0,
            "",
            &[],
        ),
        sh(
            "cat /proc/dyndbg_demo",
            0,
            "reads: 1\n",
            &["dyndbg_demo: read"],
        ),
    ];
    r
}

#[test]
fn commands_parse() {
    let c = case(COMMANDS);
    assert_eq!(
        c.before,
        [
            "echo 8 > /proc/sys/kernel/printk",
            "mount -t debugfs none /sys/kernel/debug || true"
        ]
    );
    assert_eq!(c.loaded.run.len(), 2);
    assert_eq!(c.loaded.run[1], "cat /proc/dyndbg_demo");
    assert_eq!(c.loaded.output[0].as_str(), "^reads: [0-9]+$");
    assert_eq!(c.loaded.log[0].as_str(), "^dyndbg_demo: read$");
    assert_eq!(c.loaded.no_log[0].as_str(), "WARNING");
    assert_eq!(c.paths_to_read(), ["/proc/dyndbg_demo"]);
    let plain = case("[[case]]\nname = \"a\"\n");
    assert!(plain.before.is_empty() && plain.loaded.run.is_empty());
}

#[test]
fn bad_commands_are_rejected() {
    assert_err(
        "[[case]]\nname = \"a\"\nbefore = [\"true\",\n  \"  \"]\n",
        4,
        "before: empty command",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nrun = [\"\"]\n",
        4,
        "loaded.run: empty command",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nexists = [\"/x\"]\noutput = [\"x\"]\n",
        5,
        "loaded.output: needs loaded.run",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nno_log = [\"x\"]\n",
        4,
        "loaded.no_log: needs loaded.run",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.loaded]\nrun = [\"true\"]\nlog = [\"(\"]\n",
        5,
        "loaded.log: invalid regex /(/",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.load]\nerror = \"ENODEV\"\n[case.loaded]\nrun = [\"true\"]\n",
        6,
        "loaded.run conflicts with load.error",
    );
    assert_err(
        "[[case]]\nname = \"a\"\nbefore = \"echo 8\"\n",
        3,
        "before: invalid type",
    );
}

#[test]
fn evaluate_commands_pass() {
    let c = case(COMMANDS);
    assert_eq!(c.evaluate(&commands_run()), Vec::<String>::new());
}

#[test]
fn evaluate_a_failed_command_names_it_and_quotes_its_output() {
    let c = case(COMMANDS);
    let mut r = commands_run();
    r.commands.truncate(1);
    r.commands[0].exit_code = Some(1);
    r.commands[0].stderr =
        "sh: can't create /proc/dynamic_debug/control: nonexistent directory\n".into();
    assert_eq!(
        c.evaluate(&r),
        [
            "loaded.run: `echo 'module dyndbg_demo +p' > /proc/dynamic_debug/control` exited with \
             status 1; output: \"sh: can't create /proc/dynamic_debug/control: nonexistent \
             directory\"; 1 command after it not run",
            "loaded.output: no line matches /^reads: [0-9]+$/ (0 lines of output seen)",
            "loaded.log: no line matches /^dyndbg_demo: read$/ (0 lines seen)",
        ]
    );

    let mut r = commands_run();
    r.before.truncate(1);
    r.before[0].exit_code = None;
    r.before[0].error = Some("timed out after 30.0 s".into());
    assert_eq!(
        c.evaluate(&r),
        [
            "before: `echo 8 > /proc/sys/kernel/printk` timed out after 30.0 s; no output; 1 \
             command after it not run"
        ]
    );

    let mut r = commands_run();
    r.commands[1].exit_code = None;
    r.commands[1].signal = Some("SIGSEGV".into());
    r.commands[1].stdout = "x".repeat(500);
    let failures = c.evaluate(&r);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].starts_with(
            "loaded.run: `cat /proc/dyndbg_demo` killed by SIGSEGV; output (its end): \"...xxx"
        ),
        "{failures:?}"
    );
    assert!(failures[0].len() < 500, "{failures:?}");
}

#[test]
fn evaluate_command_output_and_log() {
    let c = case(COMMANDS);
    let mut r = commands_run();
    r.commands[1].stdout = "reads: many\n".into();
    r.commands[1].log = vec!["dyndbg_demo: read".into(), "WARNING: at x".into()];
    assert_eq!(
        c.evaluate(&r),
        [
            "loaded.output: no line matches /^reads: [0-9]+$/ (1 line of output seen)",
            "loaded.log: line \"WARNING: at x\" matches /WARNING/, which must match no line",
        ]
    );
    // The log of every command counts, and the output of every command.
    let mut r = commands_run();
    r.commands[0].stdout = "reads: 7\n".into();
    r.commands[1].stdout = String::new();
    r.commands[0].log = vec!["dyndbg_demo: read".into()];
    r.commands[1].log.clear();
    assert_eq!(c.evaluate(&r), Vec::<String>::new());
}

#[test]
fn evaluate_commands_of_a_module_that_did_not_load() {
    let c = case(COMMANDS);
    let mut r = commands_run();
    r.verdict = Verdict::LoadFailed;
    r.load.ok = false;
    r.files.clear();
    r.commands.clear();
    r.unload = None;
    assert_eq!(
        c.evaluate(&r),
        [
            "verdict: expected pass, got load-failed",
            "loaded: /proc/dyndbg_demo was not read (the module did not load)",
            "loaded.run: `echo 'module dyndbg_demo +p' > /proc/dynamic_debug/control` was not \
             run (the module did not load)",
            "loaded.output: expected a line matching /^reads: [0-9]+$/, but the commands did not \
             run (the module did not load)",
            "loaded.log: expected a line matching /^dyndbg_demo: read$/, but the commands did \
             not run (the module did not load)",
        ]
    );
}

#[test]
fn commands_travel_in_the_run_json() {
    let r = commands_run();
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains(
            "\"before\":[{\"argv\":[\"/bin/sh\",\"-c\",\"echo 8 > /proc/sys/kernel/printk\"]"
        ),
        "{json}"
    );
    let back: RunResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    // A run without commands has neither key, and older JSON without them still reads.
    let plain = serde_json::to_string(&run(Verdict::Pass)).unwrap();
    assert!(!plain.contains("\"before\"") && !plain.contains("\"commands\""));
    let back: RunResult = serde_json::from_str(&plain).unwrap();
    assert!(back.commands.is_empty());
}

#[test]
fn kasan_allocation_and_free_lines_are_checked() {
    use kmodlab_crash::{CrashReport, LabelledStack, ReportKind};
    let c = case("[[case]]\nname = \"uaf\"\n[case.crash]\nkind = \"kasan\"\nallocated = \"uaf.c:20\"\nfreed = \"uaf.c:24\"\n");
    let e = c.crash.clone().unwrap();
    let stack = |label: &str, source: &str| LabelledStack {
        label: label.into(),
        source: Some(source.into()),
        ..Default::default()
    };
    let mut r = CrashReport {
        kind: ReportKind::Kasan,
        stacks: vec![
            stack("Allocated by task 25", "/src/uaf/uaf.c:20"),
            stack("Freed by task 25", "/src/uaf/uaf.c:24"),
        ],
        ..CrashReport::default()
    };
    assert!(e.matches(&r));
    r.stacks[1].source = Some("uaf.c:25".into());
    assert!(!e.matches(&r), "the free at another line");
    r.stacks.truncate(1);
    assert!(!e.matches(&r), "no free stack");
    assert!(e
        .describe()
        .contains("allocated at uaf.c:20, freed at uaf.c:24"));
    let err = parse(
        "kmodlab.toml",
        "[[case]]\nname = \"a\"\n[case.crash]\nfreed = \"\"\n",
    )
    .unwrap_err();
    assert!(err.message().starts_with("crash.freed: empty"), "{err}");
}

#[test]
fn a_command_killed_by_the_expected_crash_is_no_failure() {
    use kmodlab_crash::{CrashReport, ReportKind};
    let c = case(
        "[[case]]\nname = \"bug\"\n[case.loaded]\nrun = [\"echo 1 > /proc/kdb_bug\"]\n\
         [case.crash]\nkind = \"bug\"\n[case.unload]\nskip = true\n",
    );
    let mut r = commands_run();
    r.verdict = Verdict::Crashed;
    r.unload = None;
    r.commands.truncate(1);
    r.commands[0].exit_code = None;
    r.commands[0].signal = Some("SIGSEGV".into());
    r.reports = vec![CrashReport {
        kind: ReportKind::Bug,
        ..CrashReport::default()
    }];
    assert_eq!(c.evaluate(&r), Vec::<String>::new());
    // Without a crash report, being killed is still a failure.
    r.reports.clear();
    assert!(c
        .evaluate(&r)
        .iter()
        .any(|f| f.contains("killed by SIGSEGV")));
}

// ------------------------------------------------------------------------------------------
// Lists checked against the guest: `processes` and `vmas`.

#[test]
fn process_and_area_lists_parse() {
    let c = case(
        r#"[[case]]
name = "lists"
[case.load]
processes = '^ps: +(?P<pid>[0-9]+) +(?P<ppid>[0-9]+) (?P<comm>.*)$'
vmas = '^mi: (?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+)$'
[case.unload]
processes = '^pid = (?P<pid>[0-9]+)$'
"#,
    );
    assert!(c.load.processes.is_some() && c.load.vmas.is_some());
    assert!(c.unload.expect.processes.is_some() && c.unload.expect.vmas.is_none());
    assert_eq!(c.verdict, Verdict::Pass);
}

#[test]
fn process_and_area_lists_need_their_groups() {
    let head = "[[case]]\nname = \"a\"\n[case.load]\n";
    assert_err(
        &format!("{head}processes = '^pid = ([0-9]+)$'\n"),
        4,
        "load.processes: /^pid = ([0-9]+)$/ has no group named pid (write (?P<pid>...))",
    );
    assert_err(
        &format!("{head}processes = '^(?P<pid>[0-9]+) (?P<name>.*)$'\n"),
        4,
        "has a group named name (the groups it may name: pid, ppid, comm)",
    );
    assert_err(
        &format!("{head}vmas = '^(?P<start>[0-9a-f]+)-[0-9a-f]+$'\n"),
        4,
        "load.vmas: /^(?P<start>[0-9a-f]+)-[0-9a-f]+$/ has no group named end",
    );
    assert_err(
        &format!("{head}\n\nvmas = '^(?P<start>[0-9a-f]+'\n"),
        6,
        "load.vmas: invalid regex",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.unload]\nskip = true\nprocesses = '(?P<pid>[0-9]+)'\n",
        4,
        "unload.skip = true conflicts with",
    );
    assert_err(
        "[[case]]\nname = \"a\"\n[case.unload]\nvmas = 3\n",
        4,
        "unload.vmas: invalid type",
    );
}

#[test]
fn evaluate_process_and_area_lists() {
    use kmodlab_events::{Task, Tasks};
    let c = case(
        r#"[[case]]
name = "lists"
[case.load]
processes = '^pid = (?P<pid>[0-9]+); comm = (?P<comm>.*)$'
vmas = '^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+)$'
"#,
    );
    let task = |pid: u32, comm: &str| Task {
        pid,
        ppid: 1,
        comm: comm.into(),
        kthread: false,
        start_time: 10,
    };
    let mut r = run(Verdict::Pass);
    r.load = phase(
        true,
        &[
            "pid = 1; comm = init",
            "pid = 90; comm = insmod",
            "1000-2000",
        ],
    );
    r.load.tasks = Some(Tasks {
        caller: 90,
        before: vec![task(1, "init"), task(90, "insmod")],
        after: vec![task(1, "init")],
    });
    r.load.maps = Some("1000-2000 r--p 00000000 00:02 10 /init\n".into());
    assert_eq!(c.evaluate(&r), Vec::<String>::new());

    r.load.log[0] = "pid = 999; comm = init".into();
    r.load.log.push("3000-4000".into());
    assert_eq!(
        c.evaluate(&r),
        [
            "load processes: pid 999 (init) is not a guest process",
            "load processes: missing pid 1 (init)",
            "load vmas: 3000-4000 is not an area of the loader's memory",
        ]
    );

    // A module that did not get to list anything, and a load that was not attempted.
    r.load = phase(false, &[]);
    assert_eq!(
        c.evaluate(&r),
        [
            "load processes: no line matches /^pid = (?P<pid>[0-9]+); comm = (?P<comm>.*)$/ \
             (0 lines seen)",
            "load vmas: no line matches /^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+)$/ (0 lines seen)",
        ]
    );
    let u = case("[[case]]\nname = \"a\"\n[case.unload]\nprocesses = '(?P<pid>[0-9]+)'\n");
    r.unload = None;
    assert_eq!(
        u.evaluate(&r),
        ["unload processes: expected a process list, but unload was not attempted"]
    );
}

#[test]
fn tasks_and_maps_travel_in_the_run_json_only_when_recorded() {
    let mut r = run(Verdict::Pass);
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("\"tasks\"") && !json.contains("\"maps\""),
        "{json}"
    );
    r.load.maps = Some("1000-2000 r--p 0 00:00 0\n".into());
    r.load.tasks = Some(kmodlab_events::Tasks::default());
    let json = serde_json::to_string(&r).unwrap();
    let back: RunResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}
