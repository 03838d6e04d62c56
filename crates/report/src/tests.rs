//! Reporter tests.
//!
//! How the KTAP output was checked against the kernel's own parser: with Debian's linux-source
//! 6.12 package installed, only `tools/testing/kunit` was extracted from
//! `/usr/src/linux-source-6.12.tar.xz` into /tmp, the output of [`sample`] (and the one-spec,
//! all-pass variant) was written to a file by `ktap_is_accepted_by_kunit_parse` below, and
//! `python3 tools/testing/kunit/kunit.py parse FILE` printed the expected tree and summary
//! (`Testing complete. Ran 4 tests: passed: 2, failed: 2` for [`sample`], exit code 1 because
//! tests failed; `Ran 2 tests: passed: 2`, exit code 0, for the all-pass run). That test does
//! this again when `KUNIT_PY` names kunit.py, and does nothing otherwise:
//!
//! ```sh
//! mkdir -p /tmp/kunit && tar -C /tmp/kunit -xJf /usr/src/linux-source-6.12.tar.xz \
//!     --wildcards 'linux-source-6.12/tools/testing/kunit/*'
//! KUNIT_PY=/tmp/kunit/linux-source-6.12/tools/testing/kunit/kunit.py \
//!     cargo test -p kmodlab-report ktap_is_accepted_by_kunit_parse
//! ```

use super::*;
use kmodlab_crash::{CrashReport, Frame};
use kmodlab_events::{CommandResult, Verdict};
use std::path::PathBuf;

fn run(verdict: Verdict) -> RunResult {
    RunResult {
        verdict,
        module: "hello_mod".into(),
        params: vec!["str=tired".into(), "label=two words".into()],
        load: PhaseResult {
            ok: true,
            error: None,
            errno: None,
            log: vec!["Hello!".into()],
            ..Default::default()
        },
        unload: Some(PhaseResult {
            ok: true,
            error: None,
            errno: None,
            log: vec!["Goodbye!".into()],
            ..Default::default()
        }),
        files: vec![
            FileRead {
                path: "/sys/module/hello_mod".into(),
                exists: true,
                dir: true,
                contents: Some("holders\ninitstate\nrefcnt\n".into()),
                error: None,
            },
            FileRead {
                path: "/sys/module/hello_mod/initstate".into(),
                exists: true,
                dir: false,
                contents: Some("live\n".into()),
                error: None,
            },
            FileRead {
                path: "/sys/module/hello_mod/parameters".into(),
                exists: false,
                dir: false,
                contents: None,
                error: Some("No such file or directory".into()),
            },
        ],
        before: vec![],
        commands: vec![],
        reports: vec![],
        timeout_phase: None,
        kernel: "6.12.95+deb12-amd64".into(),
        accel: "tcg".into(),
        run_dir: PathBuf::from("/tmp/kmodlab/run-1"),
        duration_s: 4.25,
        start: "cold".into(),
    }
}

fn oops() -> CrashReport {
    CrashReport {
        kind: ReportKind::Oops,
        title: "BUG: kernel NULL pointer dereference in my_oops_init".into(),
        corrupted: false,
        corrupted_reason: None,
        module: Some("oops_mod".into()),
        function: Some("my_oops_init".into()),
        source: Some("oops_mod.c:12".into()),
        frames: vec![Frame {
            function: "my_oops_init".into(),
            offset: Some(0x15),
            size: Some(0x30),
            module: Some("oops_mod".into()),
            reliable: true,
            rip: true,
            source: Some("oops_mod.c:12".into()),
            ..Frame::default()
        }],
        guilty_frame: Some(0),
        taint: Some("G           OE".into()),
        cpu: Some(0),
        pid: Some(77),
        comm: Some("insmod".into()),
        lines: (10, 40),
        text: "BUG: kernel NULL pointer dereference, address: 0000000000000000".into(),
        ..CrashReport::default()
    }
}

fn outcome(spec: &str, case: &str, result: Option<RunResult>, failures: &[&str]) -> CaseOutcome {
    CaseOutcome {
        spec: spec.into(),
        case: case.into(),
        result,
        failures: failures.iter().map(|s| s.to_string()).collect(),
        infra_error: false,
        input_error: false,
        duration_s: 4.25,
        console_tail: vec![],
    }
}

/// Two specs: one with a passing and a failing case, one with a passing case and an
/// infrastructure error.
fn sample() -> Vec<CaseOutcome> {
    let mut crashed = run(Verdict::Crashed);
    crashed.unload = None;
    crashed.reports = vec![oops()];
    crashed.run_dir = PathBuf::from("/tmp/kmodlab/run-2");
    let mut failing = outcome(
        "labs/kernel_modules/1-2-test-mod",
        "prints #1 hello",
        Some(crashed),
        &[
            "verdict: expected pass, got crashed",
            "load log: no line matches /^Hello!$/ (3 lines seen)",
        ],
    );
    failing.console_tail = vec![
        "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000".into(),
        "[    1.000001] reboot: System halted".into(),
    ];
    let mut infra = outcome(
        "labs/kernel_modules/6-cmd-mod",
        "str=tired",
        None,
        &["VM did not boot: qemu-system-x86_64 not found"],
    );
    infra.infra_error = true;
    infra.duration_s = 0.5;
    vec![
        outcome(
            "labs/kernel_modules/1-2-test-mod",
            "load and unload",
            Some(run(Verdict::Pass)),
            &[],
        ),
        outcome(
            "labs/kernel_modules/6-cmd-mod",
            "default",
            Some(run(Verdict::Pass)),
            &[],
        ),
        failing,
        infra,
    ]
}

fn text(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn passed() {
    let s = sample();
    assert!(s[0].passed());
    assert!(!s[2].passed());
    assert!(!s[3].passed());
    let mut o = s[0].clone();
    o.infra_error = true;
    assert!(!o.passed());
}

// ------------------------------------------------------------------------------------------
// KTAP

const SAMPLE_KTAP: &str = "\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: labs/kernel_modules/1-2-test-mod
    1..2
    ok 1 load and unload
    # verdict: expected pass, got crashed
    # load log: no line matches /^Hello!$/ (3 lines seen)
    # run dir: /tmp/kmodlab/run-2
    not ok 2 prints _1 hello
not ok 1 labs/kernel_modules/1-2-test-mod
    KTAP version 1
    # Subtest: labs/kernel_modules/6-cmd-mod
    1..2
    ok 1 default
    # infrastructure error
    # VM did not boot: qemu-system-x86_64 not found
    not ok 2 str=tired
not ok 2 labs/kernel_modules/6-cmd-mod
";

#[test]
fn ktap_golden() {
    assert_eq!(text(|w| write_ktap(w, &sample())), SAMPLE_KTAP);
}

#[test]
fn ktap_all_pass_and_empty() {
    let s = sample();
    let ok = text(|w| write_ktap(w, &s[..2]));
    assert_eq!(
        ok,
        "KTAP version 1\n1..2\n\
         \x20   KTAP version 1\n    # Subtest: labs/kernel_modules/1-2-test-mod\n    1..1\n    ok 1 load and unload\n\
         ok 1 labs/kernel_modules/1-2-test-mod\n\
         \x20   KTAP version 1\n    # Subtest: labs/kernel_modules/6-cmd-mod\n    1..1\n    ok 1 default\n\
         ok 2 labs/kernel_modules/6-cmd-mod\n"
    );
    assert_eq!(text(|w| write_ktap(w, &[])), "KTAP version 1\n1..0\n");
}

#[test]
fn ktap_names_and_diagnostics_are_sanitized() {
    assert_eq!(ktap_name("a # b"), "a _ b");
    assert_eq!(ktap_name(" two\nlines "), "two lines");
    assert_eq!(ktap_name("- dash"), "dash");
    assert_eq!(ktap_name(""), "unnamed");
    assert_eq!(ktap_diag("Subtest: x"), "> Subtest: x");
    assert_eq!(ktap_diag("a\x1bb"), "a b");
    for end in [
        "List of all partitions:",
        "Kernel panic - not syncing: VFS: Unable to mount root fs",
        "[ 1.0] reboot: System halted",
    ] {
        let d = ktap_diag(end);
        assert_ne!(d, end);
        assert_eq!(d.replace('\u{a0}', " "), end);
    }
    let mut o = outcome("s#1", "c\nd", Some(run(Verdict::Crashed)), &["x\ny"]);
    o.result.as_mut().unwrap().run_dir = PathBuf::from("/r");
    let out = text(|w| write_ktap(w, &[o]));
    assert!(out.contains("    # Subtest: s_1\n"), "{out}");
    assert!(
        out.contains("    # x\n    # y\n    # run dir: /r\n    not ok 1 c d\n"),
        "{out}"
    );
    assert!(out.ends_with("not ok 1 s_1\n"), "{out}");
}

/// Runs the kernel's KTAP parser on our output when `KUNIT_PY` names kunit.py (see the module
/// comment); does nothing otherwise.
#[test]
fn ktap_is_accepted_by_kunit_parse() {
    let Some(kunit) = std::env::var_os("KUNIT_PY") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kmodlab-report-ktap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = sample();
    for (outcomes, code, summary) in [
        (&s[..], 1, "Ran 4 tests: passed: 2, failed: 2"),
        (&s[..2], 0, "Ran 2 tests: passed: 2"),
    ] {
        let file = dir.join("out.ktap");
        std::fs::write(&file, text(|w| write_ktap(w, outcomes))).unwrap();
        let res = std::process::Command::new("python3")
            .arg(&kunit)
            .arg("parse")
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&res.stdout);
        assert_eq!(res.status.code(), Some(code), "{stdout}");
        assert!(stdout.contains(summary), "{stdout}");
        assert!(!stdout.contains("[ERROR]"), "{stdout}");
        assert!(!stdout.contains("CRASHED"), "{stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------------------------------------
// JUnit

#[derive(Debug, Default)]
struct XmlElement {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<XmlElement>,
}

impl XmlElement {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {name}", self.name))
    }
    fn child(&self, name: &str) -> Option<&XmlElement> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parses XML with quick-xml into a tree (checking that it is well-formed and uses only XML 1.0
/// characters) and returns the root element.
fn parse_xml(xml: &str) -> XmlElement {
    use quick_xml::events::{BytesStart, Event};
    use quick_xml::Reader;

    for c in xml.chars() {
        let ok = matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}';
        assert!(ok, "character {c:?} is not allowed in XML 1.0");
    }
    let element = |e: &BytesStart| XmlElement {
        name: e.name().as_ref().to_string(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    a.key.as_ref().to_string(),
                    a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect(),
        ..XmlElement::default()
    };
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<XmlElement> = vec![XmlElement::default()];
    let mut saw_decl = false;
    loop {
        match reader.read_event().unwrap() {
            Event::Decl(_) => saw_decl = true,
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(element(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.as_ref().to_string();
                        quick_xml::escape::unescape(&format!("&{name};"))
                            .unwrap()
                            .into_owned()
                    }
                };
                stack.last_mut().unwrap().text.push_str(&c);
            }
            Event::CData(_) => panic!("no CDATA expected"),
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(saw_decl);
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

#[test]
fn junit_shape() {
    let xml = text(|w| write_junit(w, &sample()));
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attr("tests"), "4");
    assert_eq!(root.attr("failures"), "1");
    assert_eq!(root.attr("errors"), "1");
    assert_eq!(root.attr("time"), "13.250");
    assert_eq!(root.children.len(), 2);

    let suite = &root.children[0];
    assert_eq!(suite.name, "testsuite");
    assert_eq!(suite.attr("name"), "labs/kernel_modules/1-2-test-mod");
    assert_eq!(suite.attr("tests"), "2");
    assert_eq!(suite.attr("failures"), "1");
    assert_eq!(suite.attr("errors"), "0");
    assert_eq!(suite.attr("time"), "8.500");
    let pass = &suite.children[0];
    assert_eq!(pass.name, "testcase");
    assert_eq!(pass.attr("classname"), "labs/kernel_modules/1-2-test-mod");
    assert_eq!(pass.attr("name"), "load and unload");
    assert_eq!(pass.attr("time"), "4.250");
    assert!(pass.children.is_empty());

    let fail = &suite.children[1];
    assert_eq!(fail.attr("name"), "prints #1 hello");
    let failure = fail.child("failure").unwrap();
    assert_eq!(
        failure.attr("message"),
        "verdict: expected pass, got crashed (and 1 more)"
    );
    assert_eq!(
        failure.text,
        "verdict: expected pass, got crashed\n\
         load log: no line matches /^Hello!$/ (3 lines seen)\n\
         verdict: crashed\nrun dir: /tmp/kmodlab/run-2"
    );
    assert!(fail.child("error").is_none());
    assert_eq!(
        fail.child("system-out").unwrap().text,
        "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000\n\
         [    1.000001] reboot: System halted"
    );

    let suite = &root.children[1];
    assert_eq!(suite.attr("failures"), "0");
    assert_eq!(suite.attr("errors"), "1");
    let infra = &suite.children[1];
    let error = infra.child("error").unwrap();
    assert_eq!(error.attr("type"), "infrastructure");
    assert_eq!(
        error.attr("message"),
        "VM did not boot: qemu-system-x86_64 not found"
    );
    assert!(infra.child("failure").is_none());
    assert!(infra.child("system-out").is_none());
}

#[test]
fn xml_escaping() {
    assert_eq!(
        xml_escape("a<b>&\"c\"'d']]>"),
        "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;]]&gt;"
    );
    assert_eq!(xml_escape("\t\n\r"), "&#9;&#10;&#13;");
    assert_eq!(xml_escape_text("\t\n\r"), "\t\n&#13;");
    assert_eq!(
        xml_escape("\0\x01\x08\x0b\x0c\x1b\x1f"),
        "\\x00\\x01\\x08\\x0b\\x0c\\x1b\\x1f"
    );
    assert_eq!(xml_escape("\u{FFFE}\u{FFFF}é😀"), "\\u{fffe}\\u{ffff}é😀");
    assert!(!xml_escape_text("x]]>y").contains("]]>"));

    // Round trip through a real parser, in attributes and in text.
    let nasty = "fail <here> & \"there\" ]]> \x1b[31mred\x1b[0m\ttab\r\nnext \u{7}bell";
    let mut o = outcome(
        "spec & <co>",
        "case ]]> \"q\"",
        Some(run(Verdict::Pass)),
        &[nasty],
    );
    o.console_tail = vec![nasty.to_string(), "]]>".to_string()];
    let xml = text(|w| write_junit(w, &[o]));
    let root = parse_xml(&xml);
    let suite = &root.children[0];
    assert_eq!(suite.attr("name"), "spec & <co>");
    let case = &suite.children[0];
    assert_eq!(case.attr("classname"), "spec & <co>");
    assert_eq!(case.attr("name"), "case ]]> \"q\"");
    let shown = "fail <here> & \"there\" ]]> \\x1b[31mred\\x1b[0m\ttab\r\nnext \\x07bell";
    let failure = case.child("failure").unwrap();
    assert_eq!(failure.attr("message"), shown);
    assert!(failure.text.starts_with(shown), "{:?}", failure.text);
    assert_eq!(
        case.child("system-out").unwrap().text,
        format!("{shown}\n]]>")
    );
}

// ------------------------------------------------------------------------------------------
// JSON

#[test]
fn json_shape() {
    let s = sample();
    let out = text(|w| write_json(w, &s));
    assert!(out.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], 2);
    assert_eq!(v["failed"], 2);
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    assert_eq!(cases[0]["spec"], "labs/kernel_modules/1-2-test-mod");
    assert_eq!(cases[0]["case"], "load and unload");
    assert_eq!(cases[0]["passed"], true);
    assert_eq!(cases[0]["infra_error"], false);
    assert_eq!(cases[0]["failures"].as_array().unwrap().len(), 0);
    assert_eq!(cases[0]["result"]["verdict"], "pass");
    assert_eq!(cases[0]["result"]["load"]["log"][0], "Hello!");
    assert_eq!(cases[2]["passed"], false);
    assert_eq!(cases[2]["result"]["verdict"], "crashed");
    assert_eq!(cases[2]["result"]["unload"], serde_json::Value::Null);
    assert_eq!(cases[2]["result"]["reports"][0]["kind"], "oops");
    assert_eq!(cases[2]["result"]["reports"][0]["function"], "my_oops_init");
    assert_eq!(cases[2]["console_tail"].as_array().unwrap().len(), 2);
    assert_eq!(cases[3]["result"], serde_json::Value::Null);
    assert_eq!(cases[3]["infra_error"], true);
    assert_eq!(cases[3]["duration_s"], 0.5);

    // Each case reads back as a CaseOutcome.
    for (c, o) in cases.iter().zip(&s) {
        let back: CaseOutcome = serde_json::from_value(c.clone()).unwrap();
        assert_eq!(&back, o);
    }
}

// ------------------------------------------------------------------------------------------
// Human

#[test]
fn human_case() {
    let s = sample();
    assert_eq!(
        text(|w| write_human_case(w, &s[0])),
        "ok   labs/kernel_modules/1-2-test-mod: load and unload (pass, 4.2 s)\n"
    );
    assert_eq!(
        text(|w| write_human_case(w, &s[2])),
        "\
FAIL labs/kernel_modules/1-2-test-mod: prints #1 hello (crashed, 4.2 s)
    verdict: expected pass, got crashed
    load log: no line matches /^Hello!$/ (3 lines seen)
    run dir: /tmp/kmodlab/run-2
    console (last 2 lines):
        [    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000
        [    1.000001] reboot: System halted
"
    );
    assert_eq!(
        text(|w| write_human_case(w, &s[3])),
        "\
FAIL labs/kernel_modules/6-cmd-mod: str=tired (infrastructure error, 0.5 s)
    VM did not boot: qemu-system-x86_64 not found
"
    );
}

#[test]
fn human_summary() {
    let s = sample();
    assert_eq!(
        text(|w| write_human_summary(w, &s)),
        "\
failed:
    labs/kernel_modules/1-2-test-mod: prints #1 hello
    labs/kernel_modules/6-cmd-mod: str=tired (infrastructure error)
2 passed, 2 failed
"
    );
    assert_eq!(
        text(|w| write_human_summary(w, &s[..2])),
        "2 passed, 0 failed\n"
    );
    assert_eq!(
        text(|w| write_human_summary(w, &[])),
        "0 passed, 0 failed\n"
    );
}

#[test]
fn human_run_pass() {
    assert_eq!(
        text(|w| write_human_run(w, &run(Verdict::Pass))),
        "\
kernel: 6.12.95+deb12-amd64 (tcg)
module: hello_mod str=tired \"label=two words\"
load: ok
    Hello!
while loaded:
    /sys/module/hello_mod/: holders initstate refcnt
    /sys/module/hello_mod/initstate: live
    /sys/module/hello_mod/parameters: absent
unload: ok
    Goodbye!
verdict: pass
run dir: /tmp/kmodlab/run-1
"
    );
}

#[test]
fn human_run_shows_the_specs_commands() {
    let mut r = run(Verdict::Pass);
    r.files.clear();
    let sh = |line: &str| CommandResult::new(vec!["/bin/sh".into(), "-c".into(), line.into()]);
    let mut before = sh("echo 8 > /proc/sys/kernel/printk");
    before.exit_code = Some(0);
    r.before = vec![before];
    let mut cat = sh("cat /proc/dyndbg_demo");
    cat.exit_code = Some(0);
    cat.stdout = "ticks 1\n".into();
    cat.log = vec!["dyndbg_demo: read".into()];
    let mut bad = sh("cat /nope");
    bad.exit_code = Some(1);
    bad.stderr = "cat: can't open '/nope': No such file or directory\n".into();
    r.commands = vec![cat, bad];
    assert_eq!(
        text(|w| write_human_run(w, &r)),
        "\
kernel: 6.12.95+deb12-amd64 (tcg)
module: hello_mod str=tired \"label=two words\"
before the load:
    $ echo 8 > /proc/sys/kernel/printk
load: ok
    Hello!
while loaded:
    $ cat /proc/dyndbg_demo
        ticks 1
        kernel: dyndbg_demo: read
    $ cat /nope
        stderr: cat: can't open '/nope': No such file or directory
        (exited with status 1)
unload: ok
    Goodbye!
verdict: pass
run dir: /tmp/kmodlab/run-1
"
    );
}

#[test]
fn human_run_crash_and_failures() {
    let mut r = run(Verdict::Crashed);
    r.params.clear();
    r.load.log = vec![];
    r.files = vec![
        FileRead {
            path: "/proc/modules".into(),
            exists: true,
            dir: false,
            contents: Some("a 1 0 - Live\nb 2 0 - Live\n".into()),
            error: None,
        },
        FileRead {
            path: "/sys/module/hello_mod/secret".into(),
            exists: true,
            dir: false,
            contents: None,
            error: Some("Permission denied".into()),
        },
        FileRead {
            path: "/sys/module/hello_mod/empty".into(),
            exists: true,
            dir: false,
            contents: Some(String::new()),
            error: None,
        },
    ];
    r.unload = None;
    let mut corrupted = oops();
    corrupted.kind = ReportKind::SoftLockup;
    corrupted.title = "BUG: soft lockup in spin".into();
    corrupted.function = None;
    corrupted.guilty_frame = None;
    corrupted.source = None;
    corrupted.corrupted = true;
    corrupted.corrupted_reason = Some("no call trace".into());
    r.reports = vec![oops(), corrupted];
    assert_eq!(
        text(|w| write_human_run(w, &r)),
        "\
kernel: 6.12.95+deb12-amd64 (tcg)
module: hello_mod
load: ok
    (no kernel messages)
while loaded:
    /proc/modules:
        a 1 0 - Live
        b 2 0 - Live
    /sys/module/hello_mod/secret: exists, unreadable: Permission denied
    /sys/module/hello_mod/empty: (empty)
unload: not attempted
BUG: kernel NULL pointer dereference in my_oops_init
  kind: oops, CPU 0, PID 77 (insmod)
  where: my_oops_init+0x15/0x30 [oops_mod]
  source: oops_mod.c:12
BUG: soft lockup in spin
  kind: soft-lockup, CPU 0, PID 77 (insmod)
  corrupted: no call trace
verdict: crashed
run dir: /tmp/kmodlab/run-1
"
    );

    let mut r = run(Verdict::LoadFailed);
    r.load = PhaseResult {
        ok: false,
        error: Some("No such device".into()),
        errno: Some("ENODEV".into()),
        log: vec!["cmd_mod: init failed".into()],
        ..Default::default()
    };
    r.files.clear();
    r.unload = None;
    let out = text(|w| write_human_run(w, &r));
    assert!(out.contains("load: failed: No such device (ENODEV)\n    cmd_mod: init failed\nunload: not attempted\nverdict: load-failed\n"), "{out}");

    let mut r = run(Verdict::Timeout);
    r.timeout_phase = Some(kmodlab_events::Phase::Unload);
    let out = text(|w| write_human_run(w, &r));
    assert!(
        out.contains("timeout: the unload phase missed its deadline\nverdict: timeout\n"),
        "{out}"
    );
}

#[test]
fn crash_report_in_full() {
    use kmodlab_crash::{DisasmLine, Disassembly, SourceContext, TaintFlag};
    let mut r = oops();
    r.frames.push(Frame {
        function: "do_one_initcall".into(),
        offset: Some(0x58),
        size: Some(0x320),
        reliable: false,
        ..Frame::default()
    });
    r.frames[0].inlined_by = vec!["outer at oops_mod.c:30".into()];
    r.context = Some(SourceContext {
        source: "oops_mod.c:12".into(),
        path: "/src/oops_mod.c".into(),
        first_line: 11,
        line: 12,
        lines: vec!["{".into(), "    *p = 'a';".into(), String::new()],
    });
    r.disassembly = Some(Disassembly {
        origin: "module".into(),
        function: Some("my_oops_init".into()),
        instructions: vec![
            DisasmLine {
                offset: 0x10,
                bytes: "e8 00 00 00 00".into(),
                text: "call _printk".into(),
                faulting: false,
                source: Some("oops_mod.c:11".into()),
            },
            DisasmLine {
                offset: 0x15,
                bytes: "c6 04 25 00 00 00 00 61".into(),
                text: "movb $0x61,0x0".into(),
                faulting: true,
                source: Some("oops_mod.c:12".into()),
            },
        ],
    });
    r.taint_flags = TaintFlag::decode("G           OE");
    r.notes = vec!["a note".into()];
    let t = text(|w| write_crash_reports(w, &[r.clone()]));
    for want in [
        "BUG: kernel NULL pointer dereference in my_oops_init\n",
        "  kind: oops, CPU 0, PID 77 (insmod), log lines 11-41\n",
        "  where: my_oops_init+0x15/0x30 [oops_mod]\n",
        "  source: oops_mod.c:12\n",
        "      11 | {\n",
        "    > 12 |     *p = 'a';\n",
        "      13 |\n",
        "  *   my_oops_init+0x15/0x30 [oops_mod]  oops_mod.c:12\n",
        "inlined into outer at oops_mod.c:30\n",
        "    ? do_one_initcall+0x58/0x320\n",
        "  code of my_oops_init, from the module file:\n",
        "        oops_mod.c:12:\n",
        "    =>    15:  c6 04 25 00 00 00 00 61  movb $0x61,0x0\n",
        "          10:  e8 00 00 00 00           call _printk\n",
        "  tainted: O (OOT_MODULE), E (UNSIGNED_MODULE)\n",
        "  note: a note\n",
    ] {
        assert!(t.contains(want), "{want:?} in\n{t}");
    }
    let two = text(|w| write_crash_reports(w, &[r.clone(), r]));
    assert!(two.starts_with("[1/2] BUG:"), "{two}");
    assert!(two.contains("\n\n[2/2] BUG:"), "{two}");
    assert_eq!(
        text(|w| write_crash_reports(w, &[])),
        "no crash report found\n"
    );
}

/// Regression: a module's message with an escape sequence reached the terminal raw.
#[test]
fn guest_text_cannot_drive_the_terminal() {
    let mut buf = Vec::new();
    {
        let mut w = TerminalSafe::new(&mut buf);
        write!(
            w,
            "title \x1b]0;pwned\x07 and \x1b[2J, csi \u{9b}2J, bell\r\n"
        )
        .unwrap();
        // A C1 control split across two writes.
        w.write_all(&"\u{9b}".as_bytes()[..1]).unwrap();
        w.write_all(&"\u{9b}".as_bytes()[1..]).unwrap();
        writeln!(w, " é\ttab ok").unwrap();
        w.flush().unwrap();
    }
    let text = String::from_utf8(buf).unwrap();
    assert_eq!(
        text,
        "title \\x1b]0;pwned\\x07 and \\x1b[2J, csi \\u{9b}2J, bell\\x0d\n\\u{9b} é\ttab ok\n"
    );
    assert!(!text.bytes().any(|b| b == 0x1b || b == 0x07 || b == b'\r'));
}
