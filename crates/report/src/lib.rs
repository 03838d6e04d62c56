//! Reporters: turn run results and test outcomes into text for people (human), for the kernel's
//! tooling (KTAP), for CI systems (JUnit XML) and for other programs (JSON).
//!
//! Every writer takes values and a `&mut dyn Write`; nothing here opens files or prints.
//!
//! - [`write_human_run`]: `kmodlab run` output for one [`RunResult`].
//! - [`write_human_case`], [`write_human_summary`]: `kmodlab test` output, one block per case and a
//!   closing `N passed, M failed` line.
//! - [`write_ktap`]: KTAP version 1 (the kernel's `Documentation/dev-tools/ktap.rst`), one subtest
//!   per spec, one result line per case; `tools/testing/kunit/kunit.py parse` accepts it.
//! - [`write_junit`]: JUnit XML, one `<testsuite>` per spec.
//! - [`write_json`]: one JSON document, `{"passed":N,"failed":M,"cases":[...]}`.
//! - [`write_crash_reports`], [`write_crash_report`]: crash reports as `kmodlab oops` and
//!   `kmodlab run` show them (title, where, source line with context, trace, disassembly).
#![deny(missing_docs)]

mod oops;

pub use oops::{write_crash_report, write_crash_reports, Detail};

use kmodlab_crash::ReportKind;
use kmodlab_events::{CommandResult, FileRead, PhaseResult, RunResult};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};

/// A writer that shows control characters escaped, so that text from the guest (a module's
/// messages, file contents, a crash report) cannot drive the terminal it is printed on: C0
/// controls other than tab and newline, and DEL, become `\xNN` (an escape sequence's ESC reads
/// `\x1b`), C1 controls (U+0080 to U+009F) `\u{NN}`. Everything else passes unchanged.
pub struct TerminalSafe<W: Write> {
    inner: W,
    /// A 0xC2 byte at the end of the last write: the first byte of a C1 control, maybe.
    pending_c2: bool,
}

impl<W: Write> TerminalSafe<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> TerminalSafe<W> {
        TerminalSafe {
            inner,
            pending_c2: false,
        }
    }
}

impl<W: Write> Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in buf {
            if std::mem::take(&mut self.pending_c2) {
                if (0x80..=0x9f).contains(&b) {
                    out.extend_from_slice(format!("\\u{{{b:02x}}}").as_bytes());
                    continue;
                }
                out.push(0xc2);
            }
            match b {
                b'\n' | b'\t' => out.push(b),
                0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                0xc2 => self.pending_c2 = true,
                _ => out.push(b),
            }
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.pending_c2) {
            self.inner.write_all(&[0xc2])?;
        }
        self.inner.flush()
    }
}

/// `text` as [`TerminalSafe`] shows it.
pub fn printable(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut w = TerminalSafe::new(&mut out);
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
    String::from_utf8_lossy(&out).into_owned()
}

/// The outcome of one test case of one spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// The spec's label, e.g. `labs/kernel_modules/1-2-test-mod`.
    pub spec: String,
    /// The case's name.
    pub case: String,
    /// The run's result; `None` when the VM could not run the case.
    pub result: Option<RunResult>,
    /// Unmet expectations (from the spec's evaluation), or the infrastructure error text.
    pub failures: Vec<String>,
    /// The failures come from the infrastructure (no QEMU, boot failed, ...), not from the test.
    pub infra_error: bool,
    /// The module could not be used as given (not a module, built for another kernel): the case
    /// never ran.
    #[serde(default)]
    pub input_error: bool,
    /// Wall-clock duration in seconds.
    pub duration_s: f64,
    /// The last lines of the kernel console, shown for failed cases.
    pub console_tail: Vec<String>,
}

impl CaseOutcome {
    /// No unmet expectation, no infrastructure or input error.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && !self.infra_error && !self.input_error
    }

    /// What the case's status is called in short output: the verdict, or why there is none.
    fn status_word(&self) -> &str {
        if self.infra_error {
            "infrastructure error"
        } else if self.input_error {
            "input error"
        } else {
            match &self.result {
                Some(r) => r.verdict.as_str(),
                None => "no result",
            }
        }
    }
}

/// Groups outcomes by spec, specs in order of first appearance, cases in their given order.
fn by_spec(outcomes: &[CaseOutcome]) -> Vec<(&str, Vec<&CaseOutcome>)> {
    let mut groups: Vec<(&str, Vec<&CaseOutcome>)> = Vec::new();
    for o in outcomes {
        match groups.iter_mut().find(|(s, _)| *s == o.spec) {
            Some((_, v)) => v.push(o),
            None => groups.push((&o.spec, vec![o])),
        }
    }
    groups
}

fn seconds(s: f64) -> f64 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        0.0
    }
}

fn kind_name(kind: ReportKind) -> &'static str {
    kind.name()
}

// ---------------------------------------------------------------------------------------------
// Human output.

const INDENT: &str = "    ";

/// Writes one case's block: `ok` or `FAIL` with spec, case name, verdict and duration; for a failed
/// case also each failure, the run directory and the console tail, indented.
pub fn write_human_case(out: &mut dyn Write, o: &CaseOutcome) -> io::Result<()> {
    let mark = if o.passed() { "ok  " } else { "FAIL" };
    writeln!(
        out,
        "{mark} {}: {} ({}, {:.1} s)",
        o.spec,
        o.case,
        o.status_word(),
        seconds(o.duration_s)
    )?;
    if o.passed() {
        return Ok(());
    }
    for f in &o.failures {
        for line in f.lines() {
            writeln!(out, "{INDENT}{line}")?;
        }
    }
    if let Some(r) = &o.result {
        writeln!(out, "{INDENT}run dir: {}", r.run_dir.display())?;
    }
    if !o.console_tail.is_empty() {
        writeln!(
            out,
            "{INDENT}console (last {} lines):",
            o.console_tail.len()
        )?;
        for line in &o.console_tail {
            writeln!(out, "{INDENT}{INDENT}{line}")?;
        }
    }
    Ok(())
}

/// Writes the summary of a test run: the failed cases, if any, then a last line exactly like
/// `3 passed, 1 failed`.
pub fn write_human_summary(out: &mut dyn Write, outcomes: &[CaseOutcome]) -> io::Result<()> {
    let failed: Vec<&CaseOutcome> = outcomes.iter().filter(|o| !o.passed()).collect();
    if !failed.is_empty() {
        writeln!(out, "failed:")?;
        for o in &failed {
            let why = if o.infra_error {
                " (infrastructure error)"
            } else {
                ""
            };
            writeln!(out, "{INDENT}{}: {}{why}", o.spec, o.case)?;
        }
    }
    writeln!(
        out,
        "{} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    )
}

fn quote_param(p: &str) -> String {
    if p.contains(char::is_whitespace) {
        format!("{p:?}")
    } else {
        p.to_string()
    }
}

fn write_phase(out: &mut dyn Write, name: &str, p: &PhaseResult) -> io::Result<()> {
    if p.ok {
        writeln!(out, "{name}: ok")?;
    } else {
        let what = p.error.as_deref().unwrap_or("failed");
        match &p.errno {
            Some(n) => writeln!(out, "{name}: failed: {what} ({n})")?,
            None => writeln!(out, "{name}: failed: {what}")?,
        }
    }
    if p.log.is_empty() {
        writeln!(out, "{INDENT}(no kernel messages)")?;
    }
    for line in &p.log {
        writeln!(out, "{INDENT}{line}")?;
    }
    Ok(())
}

fn write_file(out: &mut dyn Write, f: &FileRead) -> io::Result<()> {
    match (&f.contents, &f.error) {
        _ if !f.exists => writeln!(out, "{INDENT}{}: absent", f.path),
        (Some(c), _) if f.dir => {
            let names: Vec<&str> = c.lines().collect();
            writeln!(out, "{INDENT}{}/: {}", f.path, names.join(" "))
        }
        (Some(c), _) => {
            let c = c.strip_suffix('\n').unwrap_or(c);
            let mut lines = c.lines();
            match (lines.next(), c.contains('\n')) {
                (None, _) => writeln!(out, "{INDENT}{}: (empty)", f.path),
                (Some(first), false) => writeln!(out, "{INDENT}{}: {first}", f.path),
                (Some(first), true) => {
                    writeln!(out, "{INDENT}{}:", f.path)?;
                    for line in std::iter::once(first).chain(lines) {
                        writeln!(out, "{INDENT}{INDENT}{line}")?;
                    }
                    Ok(())
                }
            }
        }
        (None, Some(e)) => writeln!(out, "{INDENT}{}: exists, unreadable: {e}", f.path),
        (None, None) => writeln!(out, "{INDENT}{}: exists", f.path),
    }
}

/// A spec's shell command in a run: `$ LINE`, then, indented, its standard output, its standard
/// error (`stderr: `), the kernel messages it caused (`kernel: `) and, unless it exited with 0,
/// how it ended.
fn write_command(out: &mut dyn Write, c: &CommandResult) -> io::Result<()> {
    writeln!(out, "{INDENT}$ {}", c.command_line())?;
    for line in c.stdout.lines() {
        writeln!(out, "{INDENT}{INDENT}{line}")?;
    }
    for line in c.stderr.lines() {
        writeln!(out, "{INDENT}{INDENT}stderr: {line}")?;
    }
    for line in &c.log {
        writeln!(out, "{INDENT}{INDENT}kernel: {line}")?;
    }
    if !c.succeeded() {
        writeln!(out, "{INDENT}{INDENT}({})", c.ending())?;
    }
    Ok(())
}

/// Writes `kmodlab run`'s human output: kernel and accelerator, the commands run before the
/// load, the load phase and its kernel messages, the files read and the commands run while
/// loaded, the unload phase and its messages, the crash reports
/// (kind, title, function \[module\], source), then `verdict: X` and `run dir: PATH`.
pub fn write_human_run(out: &mut dyn Write, r: &RunResult) -> io::Result<()> {
    writeln!(out, "kernel: {} ({})", r.kernel, r.accel)?;
    let params: Vec<String> = r.params.iter().map(|p| quote_param(p)).collect();
    if params.is_empty() {
        writeln!(out, "module: {}", r.module)?;
    } else {
        writeln!(out, "module: {} {}", r.module, params.join(" "))?;
    }
    if !r.before.is_empty() {
        writeln!(out, "before the load:")?;
        for c in &r.before {
            write_command(out, c)?;
        }
    }
    write_phase(out, "load", &r.load)?;
    if !r.files.is_empty() || !r.commands.is_empty() {
        writeln!(out, "while loaded:")?;
        for f in &r.files {
            write_file(out, f)?;
        }
        for c in &r.commands {
            write_command(out, c)?;
        }
    }
    match &r.unload {
        Some(p) => write_phase(out, "unload", p)?,
        None => writeln!(out, "unload: not attempted")?,
    }
    for report in &r.reports {
        write_crash_report(out, report, Detail::Brief)?;
    }
    if let Some(p) = r.timeout_phase {
        writeln!(out, "timeout: the {p} phase missed its deadline")?;
    }
    writeln!(out, "verdict: {}", r.verdict)?;
    writeln!(out, "run dir: {}", r.run_dir.display())
}

// ---------------------------------------------------------------------------------------------
// KTAP.

/// A KTAP test name: no `#` (it starts a directive), no line breaks, no surrounding spaces.
fn ktap_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| match c {
            '#' => '_',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let name = name.trim();
    // `ok 1 - name` is TAP's optional separator: a leading "- " would be read as it.
    let name = name.strip_prefix("- ").unwrap_or(name);
    if name.is_empty() {
        "unnamed".to_string()
    } else {
        name.to_string()
    }
}

/// Text of one diagnostic line. kunit.py stops reading at lines containing one of a few kernel
/// messages that end a test run; break them with a no-break space so a diagnostic that quotes
/// them does not end the parse.
fn ktap_diag(s: &str) -> String {
    let mut s: String = s
        .chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect();
    for (end, fixed) in [
        ("List of all partitions:", "List of all\u{a0}partitions:"),
        (
            "Kernel panic - not syncing: VFS:",
            "Kernel panic - not syncing:\u{a0}VFS:",
        ),
        ("reboot: System halted", "reboot:\u{a0}System halted"),
    ] {
        s = s.replace(end, fixed);
    }
    // A diagnostic must not read as a subtest header.
    if s.trim_start().starts_with("Subtest:") {
        s.insert_str(0, "> ");
    }
    s
}

/// Writes KTAP version 1: one subtest per spec (in order of first appearance), one result line
/// per case. A failed case's failures and run directory come as `# ` diagnostic lines just before
/// its `not ok` line, as ktap.rst recommends and kunit does.
///
/// The nested header is `KTAP version 1` then `# Subtest: NAME`, the order lib/kunit prints and
/// kunit_parser.py calls preferred.
pub fn write_ktap(out: &mut dyn Write, outcomes: &[CaseOutcome]) -> io::Result<()> {
    let specs = by_spec(outcomes);
    writeln!(out, "KTAP version 1")?;
    writeln!(out, "1..{}", specs.len())?;
    for (i, (spec, cases)) in specs.iter().enumerate() {
        let spec_name = ktap_name(spec);
        writeln!(out, "{INDENT}KTAP version 1")?;
        writeln!(out, "{INDENT}# Subtest: {spec_name}")?;
        writeln!(out, "{INDENT}1..{}", cases.len())?;
        for (j, o) in cases.iter().enumerate() {
            if o.passed() {
                writeln!(out, "{INDENT}ok {} {}", j + 1, ktap_name(&o.case))?;
                continue;
            }
            if o.infra_error {
                writeln!(out, "{INDENT}# infrastructure error")?;
            }
            for f in &o.failures {
                for line in f.lines() {
                    writeln!(out, "{INDENT}# {}", ktap_diag(line))?;
                }
            }
            if let Some(r) = &o.result {
                let dir = r.run_dir.display().to_string();
                writeln!(out, "{INDENT}# run dir: {}", ktap_diag(&dir))?;
            }
            writeln!(out, "{INDENT}not ok {} {}", j + 1, ktap_name(&o.case))?;
        }
        let ok = if cases.iter().all(|o| o.passed()) {
            "ok"
        } else {
            "not ok"
        };
        writeln!(out, "{ok} {} {spec_name}", i + 1)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JUnit XML.

/// Escapes text for an XML 1.0 attribute value.
///
/// `&`, `<`, `>`, `"` and `'` become entities (so `]]>` cannot appear); tab, newline and carriage
/// return become character references (so attribute values keep them); characters XML 1.0 does
/// not allow at all (other C0 controls, U+FFFE, U+FFFF) are written visibly as `\xNN` / `\u{NNNN}`.
pub fn xml_escape(s: &str) -> String {
    escape(s, true)
}

/// Escapes text for XML 1.0 element content: as [`xml_escape`], but tab and newline stay literal.
pub fn xml_escape_text(s: &str) -> String {
    escape(s, false)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' if !attribute => out.push(c),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{FFFE}' | '\u{FFFF}' => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Writes JUnit XML: `<testsuites>` with one `<testsuite>` per spec and one `<testcase>` per case.
/// Unmet expectations are a `<failure>`, infrastructure problems an `<error>`; failed cases carry
/// the console tail in `<system-out>`.
pub fn write_junit(out: &mut dyn Write, outcomes: &[CaseOutcome]) -> io::Result<()> {
    let specs = by_spec(outcomes);
    let count = |cases: &[&CaseOutcome]| {
        let errors = cases.iter().filter(|o| o.infra_error).count();
        let failures = cases.iter().filter(|o| !o.passed()).count() - errors;
        let time: f64 = cases.iter().map(|o| seconds(o.duration_s)).sum();
        (failures, errors, time)
    };
    let all: Vec<&CaseOutcome> = outcomes.iter().collect();
    let (failures, errors, time) = count(&all);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="kmodlab" tests="{}" failures="{failures}" errors="{errors}" time="{time:.3}">"#,
        outcomes.len()
    )?;
    for (spec, cases) in &specs {
        let (failures, errors, time) = count(cases);
        let spec = xml_escape(spec);
        writeln!(
            out,
            r#"  <testsuite name="{spec}" tests="{}" failures="{failures}" errors="{errors}" time="{time:.3}">"#,
            cases.len()
        )?;
        for o in cases {
            let head = format!(
                r#"    <testcase classname="{spec}" name="{}" time="{:.3}""#,
                xml_escape(&o.case),
                seconds(o.duration_s)
            );
            if o.passed() {
                writeln!(out, "{head}/>")?;
                continue;
            }
            writeln!(out, "{head}>")?;
            let (tag, kind) = if o.infra_error {
                ("error", "infrastructure")
            } else {
                ("failure", "expectation")
            };
            let mut message = o.failures.first().cloned().unwrap_or_default();
            if o.failures.len() > 1 {
                message.push_str(&format!(" (and {} more)", o.failures.len() - 1));
            }
            let mut body = o.failures.join("\n");
            if let Some(r) = &o.result {
                body.push_str(&format!("\nverdict: {}", r.verdict));
                body.push_str(&format!("\nrun dir: {}", r.run_dir.display()));
            }
            writeln!(
                out,
                r#"      <{tag} message="{}" type="{kind}">{}</{tag}>"#,
                xml_escape(&message),
                xml_escape_text(&body)
            )?;
            if !o.console_tail.is_empty() {
                writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    xml_escape_text(&o.console_tail.join("\n"))
                )?;
            }
            writeln!(out, "    </testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

// ---------------------------------------------------------------------------------------------
// JSON.

#[derive(Serialize)]
struct JsonCase<'a> {
    passed: bool,
    #[serde(flatten)]
    outcome: &'a CaseOutcome,
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    passed: usize,
    failed: usize,
    cases: Vec<JsonCase<'a>>,
}

/// Writes one JSON document: `{"passed":N,"failed":M,"cases":[...]}`, each case being a
/// [`CaseOutcome`] (its run result embedded, `null` when there is none) plus `"passed": bool`.
pub fn write_json(out: &mut dyn Write, outcomes: &[CaseOutcome]) -> io::Result<()> {
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    let doc = JsonDoc {
        passed,
        failed: outcomes.len() - passed,
        cases: outcomes
            .iter()
            .map(|o| JsonCase {
                passed: o.passed(),
                outcome: o,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// `kmodlab exec`'s human output: each command with what it printed, its kernel messages and
/// how it ended, then the crash reports and the run directory. Text from the guest goes through
/// as is: wrap the writer in [`TerminalSafe`] for a terminal.
pub fn write_human_exec(w: &mut dyn Write, r: &kmodlab_events::ScriptResult) -> io::Result<()> {
    for c in &r.commands {
        writeln!(w, "$ {}", c.argv.join(" "))?;
        w.write_all(c.stdout.as_bytes())?;
        for l in c.stderr.lines() {
            writeln!(w, "{l}")?;
        }
        for l in &c.log {
            writeln!(w, "    kernel: {l}")?;
        }
        match (&c.error, c.exit_code, &c.signal) {
            (Some(e), _, _) => writeln!(w, "[{e}]")?,
            (None, Some(0), _) => {}
            (None, Some(code), _) => writeln!(w, "[exit {code}]")?,
            (None, None, Some(sig)) => writeln!(w, "[killed by {sig}]")?,
            _ => {}
        }
    }
    for rep in &r.reports {
        writeln!(w, "{}: {}", rep.kind.name(), rep.title)?;
    }
    writeln!(w, "run dir: {}", r.run_dir.display())
}

/// Progress on standard error while a VM runs: one line per phase, updated in place on a
/// terminal; lines that explain a slower run (a cold boot and why) and crash reports stay.
pub struct Progress {
    tty: bool,
    /// When the leak check started, to say what it cost.
    leak_check: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Progress {
    /// Progress for standard error, in place when it is a terminal.
    pub fn stderr() -> Progress {
        Progress {
            tty: io::IsTerminal::is_terminal(&io::stderr()),
            leak_check: std::sync::Mutex::new(None),
        }
    }

    /// Shows one event.
    pub fn event(&self, e: &kmodlab_events::Event) {
        use kmodlab_events::{Event, Phase};
        let msg = match e {
            Event::BootStarted {
                kernel,
                accel,
                run_dir,
            } => format!("booting {kernel} ({accel}), run dir {}", run_dir.display()),
            Event::AgentReady { boot_s } => format!("guest ready after {boot_s:.1}s"),
            Event::Started { detail, .. } | Event::Note(detail) => {
                // Worth keeping on screen: it says why a run was slower.
                if self.tty {
                    eprintln!("\r\x1b[2Kkmodlab: {detail}");
                } else {
                    eprintln!("kmodlab: {detail}");
                }
                return;
            }
            Event::StepStarted(p) if *p != Phase::Boot => {
                if *p == Phase::LeakCheck {
                    *self.leak_check.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(std::time::Instant::now());
                }
                format!("{p}...")
            }
            Event::StepFinished {
                phase: Phase::LeakCheck,
                ..
            } => {
                let started = self
                    .leak_check
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let Some(t) = started else { return };
                // What the leak check cost this run: worth keeping on screen.
                let msg = format!("leak check took {:.2}s", t.elapsed().as_secs_f64());
                if self.tty {
                    eprintln!("\r\x1b[2Kkmodlab: {msg}");
                } else {
                    eprintln!("kmodlab: {msg}");
                }
                return;
            }
            Event::ReportFound { kind, title } => format!("{kind}: {}", printable(title)),
            _ => return,
        };
        if self.tty {
            eprint!("\r\x1b[2Kkmodlab: {msg}");
            if matches!(e, Event::ReportFound { .. }) {
                eprintln!();
            }
        } else {
            eprintln!("kmodlab: {msg}");
        }
    }

    /// Clears the progress line.
    pub fn done(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests;
