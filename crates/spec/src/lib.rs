//! Test specs: what a module directory's `kmodlab.toml` expects of its module.
//!
//! A spec names the kernel the module needs and lists test cases. Each case loads the module with
//! some parameters, reads files while it is loaded, unloads it, and compares what happened (a
//! [`RunResult`]) with its expectations. [`parse`] turns the TOML text into a [`Spec`];
//! [`Case::evaluate`] compares a run with a case. Neither opens files nor prints.
//!
//! # The format
//!
//! ```toml
//! # Which kernel the spec needs: "debian" (default: the distro kernel), "rust" (the Rust lab
//! # kernel) or "debug" (the debug lab kernel: KASAN, kmemleak, lockdep, UBSAN, kgdb).
//! kernel = "debian"
//! # The module to load, as the kernel names it; default: the only .ko the directory builds.
//! module = "hello_mod"
//! # Default per-phase deadline in seconds (optional).
//! timeout = 30
//! # Words appended to the guest kernel's command line for every case (optional).
//! kernel_args = ["watchdog_thresh=1", "sysctl.kernel.hung_task_timeout_secs=2"]
//! # What the directory is about, one line (a lab exercise's title; optional).
//! title = "Kernel module: load, list and unload hello"
//!
//! [[case]]
//! name = "prints hello and goodbye"      # required, unique within the spec
//! params = ["str=tired", "label=two words"]   # optional; each element one name=value (value may contain spaces)
//! verdict = "pass"          # optional: pass | load-failed | crashed | warned | panicked | timeout | unload-failed | leaked
//! timeout = 5               # optional per-phase deadline override in seconds (float allowed)
//! todo = [1, 2]             # optional: the lab TODOs this case checks (`kmodlab lab check` grades by them)
//! hint = "print the greeting with pr_info()"   # optional: shown to a student when the case fails
//! before = ["echo 8 > /proc/sys/kernel/printk"]  # optional: shell commands run before the load
//!
//! [case.load]               # expectations about the load phase
//! log = ["^Hello!$"]        # regexes, each must match at least one line of the load-phase kernel log
//! no_log = ["Oops"]         # regexes that must match no line
//! error = "No such device"  # expected load failure: kmod's wording ("No such device") or errno name ("ENODEV")
//! processes = '^pid = (?P<pid>[0-9]+); comm = (?P<comm>.*)$'   # the module's process list (see below)
//! vmas = '^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+)$'   # the module's list of the loader's memory areas
//!
//! [case.loaded]             # checked while the module is loaded
//! exists = ["/sys/module/hello_mod"]               # paths that must exist
//! absent = ["/sys/module/hello_mod/parameters"]     # paths that must not exist
//! files = { "/sys/module/hello_mod/initstate" = "^live$" }   # path -> regex on the contents
//! run = ["cat /proc/hello", "echo 1 > /proc/hello"]  # shell commands run after the reads above
//! output = ["^hello [0-9]+$"]   # regexes, each must match a line of the `run` commands' stdout
//! log = ["^read [0-9]+ bytes$"] # regexes on the kernel log lines printed while `run` ran
//! no_log = ["WARNING"]          # regexes that must match none of those lines
//!
//! [case.unload]
//! log = ["Goodbye!"]
//! no_log = []
//! error = "Resource temporarily unavailable"   # expected unload failure
//! processes = '^pid = (?P<pid>[0-9]+)'   # as for the load, around the unload
//! skip = false              # true: do not unload (leave the module loaded)
//!
//! [case.crash]              # expected crash report
//! kind = "oops"             # oops | bug | warning | panic | soft-lockup | hung-task
//! title = "NULL pointer dereference"   # regex on the report title
//! function = "my_oops_init" # exact guilty function
//! module = "oops_mod"       # exact module of the guilty frame
//! phase = "load"            # load | unload (informational, see below)
//! source = "oops_mod.c:12"  # the guilty frame's source ends with this (see below)
//! allocated = "uaf.c:20"    # KASAN: the module's line in the "Allocated by task" stack (as source)
//! freed = "uaf.c:24"        # KASAN: the module's line in the "Freed by task" stack
//! ```
//!
//! Every key is optional except a case's `name`. Regexes use the [`regex`] crate's syntax and are
//! searched for anywhere in a line (anchor them with `^`/`$` to match whole lines). A file's
//! contents are matched with one trailing newline removed.
//!
//! ## The expected verdict
//!
//! An explicit `verdict` wins. Otherwise a `[case.crash]` table implies `warned` for kind
//! `warning`, `panicked` for kind `panic`, `leaked` for kind `memory-leak` and `crashed` for any
//! other kind (or none); else
//! `load.error` implies `load-failed`; else `unload.error` implies `unload-failed`; else `pass`.
//!
//! A spec with no `[[case]]` at all has one implicit case, [`IMPLICIT_CASE`], which loads the
//! module without parameters and expects `pass`.
//!
//! ## What is an error
//!
//! Unknown keys, values of the wrong type, bad regexes, unknown verdict, kernel, crash kind or
//! phase names, missing, empty or duplicate case names, a `params` element without `=` (or with an
//! empty name), a timeout that is not a positive number of seconds up to a day, a `loaded` path that is not absolute,
//! an empty `before` or `loaded.run` command, `loaded.output`, `loaded.log` or `loaded.no_log`
//! without `loaded.run`, `loaded.run` together with `load.error`,
//! a `processes` regex without a group named `pid` or with a named group other than `pid`,
//! `ppid` and `comm`, a `vmas` regex without groups named `start` and `end` or with another
//! named group,
//! `unload.skip = true` together with other unload expectations, and `load.error` together with
//! `unload.error` (a module that failed to load is never unloaded). Each error is one line,
//! `FILE:LINE: message`, with the line of the offending key or value ([`SpecError`]).
//!
//! ## Shell commands: `before` and `loaded.run`
//!
//! Each element is one command line, run in the guest as `sh -c LINE` (busybox's shell, with its
//! everyday commands: `cat`, `echo`, `grep`, ...), in spec order, one at a time, each within the
//! case's deadline. `before` runs right before the load; `loaded.run` while the module is loaded,
//! after the `exists`, `absent` and `files` reads. A command that exits with a status other than
//! 0 (or is killed, or times out) fails the case with a message naming it and quoting its output,
//! and the commands after it in the same list are not run (write `CMD || true` for a command
//! that may fail). A `before` command that fails does not stop the load. In a case with a
//! `[case.crash]` table, a `loaded.run` command killed by a signal while a crash was reported is
//! what the case expects (the oops killed it), not a failure. `loaded.output`
//! regexes are matched against the lines the `loaded.run` commands wrote to standard output, all
//! of them together; `loaded.log` and `loaded.no_log` against the kernel log lines printed while
//! they ran. A command that hangs ends the run with verdict `timeout`, in the `load` phase for
//! `before` and the `check` phase for `loaded.run`. In a run's JSON, the commands are `before`
//! and `commands` ([`RunResult::before`], [`RunResult::commands`]).
//!
//! ## `processes` and `vmas`: a module's lists checked against the guest
//!
//! In `[case.load]` or `[case.unload]`, each is a regex with named groups; the lines of that
//! phase's kernel log it matches are the module's list, one item per line, and other lines are
//! left alone. The guest agent records what the list must be, around the same call, only for a
//! case that asks ([`RunResult`]'s phase `tasks` and `maps`).
//!
//! `processes`: each line one process, its PID in group `pid` (required), optionally its
//! parent's PID in `ppid` and its name in `comm`. Right before the syscall, the calling process
//! (the loader or unloader) reads every process of the guest from `/proc/PID/stat`; once the
//! call has ended and the caller is reaped, the agent reads them again. The module's list is
//! right when every process in both readings (the same PID with the same start time: one
//! process alive all along), and the caller, is listed, and every process listed is in one of
//! the readings, with the name (and parent) it had there. Processes that started or ended
//! during the call may be listed or not: how a list taken at one instant of the call can differ
//! from the guest's on a slow guest whose kernel workers come and go. A name matches when it is
//! the one `/proc` shows, or, for a kernel thread, its first 15 bytes (the kernel's `comm` keeps
//! no more where `/proc` shows the whole name) or a workqueue worker's name before the `-` or
//! `+` that `/proc` adds with what it works on (`kworker/0:1` for `kworker/0:1-events`). A
//! failure names the difference: `load processes: missing pid 2 (kthreadd)`, `load processes:
//! pid 999 (foo) is not a guest process`, a wrong name or parent, a process listed twice.
//!
//! `vmas`: each line one memory area, its start and end address in hex in groups `start` and
//! `end` (a `0x` prefix and leading zeros are allowed). The caller reads its own
//! `/proc/self/maps` right before the syscall and allocates nothing from then on, so its memory
//! areas are those the module walks through `current->mm`; the list must be exactly those
//! areas, in the same order, except `[vsyscall]`, which `/proc` lists but which is no area of
//! the process's memory. A failure names the areas missing (`load vmas: missing
//! 7ffe7d497000-7ffe7d4b8000 ([stack]) (of the loader's 18 areas)`), those that are not areas of
//! the caller, those listed twice, or the first one out of order.
//!
//! A phase with either key and no line matching fails (`no line matches /REGEX/`); so does one
//! whose call never reached its syscall (nothing was recorded).
//!
//! ## `kernel_args`
//!
//! Each element is one kernel command-line word (`name=value` or a bare flag): not empty and
//! without whitespace (a value with spaces would need the kernel's own quoting, which is not
//! supported). They are appended, in order, after kmodlab's own command line, so they can
//! override it: the lockup and stall detectors are the usual reason (`watchdog_thresh=1`,
//! `sysctl.kernel.hung_task_timeout_secs=2`, `rcupdate.rcu_cpu_stall_timeout=3`). A spec
//! without the key boots the kernel with kmodlab's command line only.
//!
//! ## `crash.source`
//!
//! The report's `source` is the `file:line` of the guilty frame, as the symbolizer found it
//! (often a longer path than the spec gives). `source` is met when the report's source equals
//! the given text or ends with it right after a `/`: `"oops_mod.c:12"` matches
//! `/src/oops_mod/oops_mod.c:12` but neither `my_oops_mod.c:12` nor `oops_mod.c:112`. A report
//! without a source never meets it.
//!
//! ## `crash.phase`
//!
//! A run's result does not record in which phase a crash report appeared, so `phase` is parsed
//! and kept ([`CrashExpect::phase`]) but [`Case::evaluate`] does not check it.
#![deny(missing_docs)]

use kmodlab_crash::{CrashReport, ReportKind};
use kmodlab_events::{CommandResult, FileRead, Phase, PhaseResult, RunResult, Verdict};
use regex::Regex;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// The name of a spec file in a module directory.
pub const SPEC_FILE: &str = "kmodlab.toml";

/// The name of the case a spec without `[[case]]` tables gets.
pub const IMPLICIT_CASE: &str = "load and unload";

/// The kernel a spec needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelKind {
    /// The distro (Debian) kernel, for C modules.
    #[default]
    Debian,
    /// The Rust lab kernel built by kmodlab, for Rust for Linux modules.
    Rust,
    /// The debug lab kernel built by kmodlab (KASAN, kmemleak, lockdep, UBSAN, kgdb), for C
    /// modules and, when it was built with Rust, Rust ones.
    Debug,
}

impl KernelKind {
    /// Every kind, in the order specs name them.
    pub const ALL: [KernelKind; 3] = [KernelKind::Debian, KernelKind::Rust, KernelKind::Debug];

    /// Whether kmodlab builds this kernel itself (a lab kernel) rather than using an installed one.
    pub fn is_lab(self) -> bool {
        self != KernelKind::Debian
    }

    /// The kernel kind's name as written in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelKind::Debian => "debian",
            KernelKind::Rust => "rust",
            KernelKind::Debug => "debug",
        }
    }

    /// Parses a name as [`KernelKind::as_str`] writes it.
    pub fn from_name(s: &str) -> Option<KernelKind> {
        KernelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for KernelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed and validated `kmodlab.toml`.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The kernel the module needs.
    pub kernel: KernelKind,
    /// The module to load, as the kernel names it; `None`: the only module the directory builds.
    pub module: Option<String>,
    /// Default per-phase deadline in seconds.
    pub timeout: Option<f64>,
    /// Words appended to the guest kernel's command line, in spec order (empty: none).
    pub kernel_args: Vec<String>,
    /// The cases, in spec order; never empty (see [`IMPLICIT_CASE`]).
    pub cases: Vec<Case>,
    /// What the directory is about, in one line (a lab exercise's title); `None`: not given.
    pub title: Option<String>,
}

impl Spec {
    /// The per-phase deadline for `case`: its own, else the spec's default.
    pub fn timeout_for(&self, case: &Case) -> Option<f64> {
        case.timeout.or(self.timeout)
    }
}

/// One test case: load with parameters, check, unload, compare.
#[derive(Clone, Debug)]
pub struct Case {
    /// The case's name, unique within its spec.
    pub name: String,
    /// Module parameters, one `name=value` each (the value may contain spaces).
    pub params: Vec<String>,
    /// The expected verdict (explicit or implied, see the crate docs).
    pub verdict: Verdict,
    /// Per-phase deadline override in seconds.
    pub timeout: Option<f64>,
    /// Expectations about the load phase.
    pub load: PhaseExpect,
    /// Expectations about the unload phase.
    pub unload: UnloadExpect,
    /// Expectations checked while the module is loaded.
    pub loaded: LoadedExpect,
    /// The expected crash report, if any.
    pub crash: Option<CrashExpect>,
    /// The lab TODOs this case checks, by number (empty: none named).
    pub todo: Vec<u32>,
    /// What a student should look at when the case fails; `None`: not given.
    pub hint: Option<String>,
    /// Shell command lines run with `sh -c` in the guest, in order, before the load.
    pub before: Vec<String>,
}

/// Expectations about the kernel log and the result of the load or unload phase.
#[derive(Clone, Debug, Default)]
pub struct PhaseExpect {
    /// Each must match at least one line of the phase's kernel log.
    pub log: Vec<Regex>,
    /// None may match any line of the phase's kernel log.
    pub no_log: Vec<Regex>,
    /// The expected failure, as kmod words it (`No such device`) or as an errno name (`ENODEV`).
    pub error: Option<String>,
    /// The module's process list: the log lines this matches, one process each (named groups
    /// `pid`, and optionally `ppid` and `comm`), must be the guest's processes at the time of
    /// the call (see the crate docs).
    pub processes: Option<Regex>,
    /// The module's list of the caller's memory areas: the log lines this matches, one area
    /// each (named groups `start` and `end`, in hex), must be the caller's `/proc/self/maps`
    /// read right before the call, in order.
    pub vmas: Option<Regex>,
}

impl PhaseExpect {
    fn is_empty(&self) -> bool {
        self.log.is_empty()
            && self.no_log.is_empty()
            && self.error.is_none()
            && self.processes.is_none()
            && self.vmas.is_none()
    }
}

/// Expectations about the unload phase.
#[derive(Clone, Debug, Default)]
pub struct UnloadExpect {
    /// Log and error expectations, as for the load phase.
    pub expect: PhaseExpect,
    /// Do not unload: leave the module loaded.
    pub skip: bool,
}

/// Expectations checked while the module is loaded.
#[derive(Clone, Debug, Default)]
pub struct LoadedExpect {
    /// Paths that must exist.
    pub exists: Vec<String>,
    /// Paths that must not exist.
    pub absent: Vec<String>,
    /// Files whose contents (one trailing newline removed) must match a regex, in spec order.
    pub files: Vec<(String, Regex)>,
    /// Shell command lines run with `sh -c` in the guest, in order, after the reads.
    pub run: Vec<String>,
    /// Each must match a line of the `run` commands' standard output.
    pub output: Vec<Regex>,
    /// Each must match a kernel log line printed while the `run` commands ran.
    pub log: Vec<Regex>,
    /// None may match a kernel log line printed while the `run` commands ran.
    pub no_log: Vec<Regex>,
}

/// An expected crash report: a report matching every given field must be found.
#[derive(Clone, Debug, Default)]
pub struct CrashExpect {
    /// The report's kind.
    pub kind: Option<ReportKind>,
    /// A regex searched for in the report's title.
    pub title: Option<Regex>,
    /// The guilty function, exactly.
    pub function: Option<String>,
    /// The module of the guilty frame, exactly.
    pub module: Option<String>,
    /// The phase during which the report appeared ([`Phase::Load`] or [`Phase::Unload`]).
    /// Informational: [`Case::evaluate`] does not check it, as a [`RunResult`] does not say.
    pub phase: Option<Phase>,
    /// The end of the guilty frame's `file:line` (see the crate docs on `crash.source`).
    pub source: Option<String>,
    /// The end of the module's `file:line` in KASAN's `Allocated by task N:` stack (the
    /// allocation), matched as `source` is.
    pub allocated: Option<String>,
    /// The same for KASAN's `Freed by task N:` stack (the free).
    pub freed: Option<String>,
}

impl CrashExpect {
    fn matches(&self, r: &CrashReport) -> bool {
        self.kind.is_none_or(|k| k == r.kind)
            && self.title.as_ref().is_none_or(|t| t.is_match(&r.title))
            && self
                .function
                .as_ref()
                .is_none_or(|f| r.function.as_deref() == Some(f.as_str()))
            && self
                .module
                .as_ref()
                .is_none_or(|m| r.module.as_deref() == Some(m.as_str()))
            && self
                .source
                .as_ref()
                .is_none_or(|s| r.source.as_deref().is_some_and(|rs| source_matches(s, rs)))
            && stack_matches(&self.allocated, r, "Allocated by ")
            && stack_matches(&self.freed, r, "Freed by ")
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(k) = self.kind {
            parts.push(format!("kind {}", report_kind_name(k)));
        }
        if let Some(t) = &self.title {
            parts.push(format!("title /{}/", t.as_str()));
        }
        if let Some(f) = &self.function {
            parts.push(format!("function {f}"));
        }
        if let Some(m) = &self.module {
            parts.push(format!("module {m}"));
        }
        if let Some(s) = &self.source {
            parts.push(format!("source {s}"));
        }
        if let Some(s) = &self.allocated {
            parts.push(format!("allocated at {s}"));
        }
        if let Some(s) = &self.freed {
            parts.push(format!("freed at {s}"));
        }
        if parts.is_empty() {
            "a crash report".to_string()
        } else {
            format!("a report with {}", parts.join(", "))
        }
    }
}

/// Whether a report has a stack labelled `label...` whose module line meets `expected` (always,
/// when nothing is expected).
fn stack_matches(expected: &Option<String>, r: &CrashReport, label: &str) -> bool {
    expected.as_ref().is_none_or(|e| {
        r.stacks.iter().any(|st| {
            st.label.starts_with(label)
                && st.source.as_deref().is_some_and(|s| source_matches(e, s))
        })
    })
}

/// Whether a report's `source` (`/path/to/file.c:12`) meets a spec's `source` (`file.c:12`): equal,
/// or ending with it right after a `/`.
fn source_matches(expected: &str, source: &str) -> bool {
    source == expected
        || source
            .strip_suffix(expected)
            .is_some_and(|head| head.ends_with('/'))
}

/// The crash report kinds as a spec names them (the kebab-case names of [`ReportKind`]).
pub const REPORT_KINDS: [(&str, ReportKind); 21] = [
    ("oops", ReportKind::Oops),
    ("bug", ReportKind::Bug),
    ("warning", ReportKind::Warning),
    ("panic", ReportKind::Panic),
    ("soft-lockup", ReportKind::SoftLockup),
    ("hung-task", ReportKind::HungTask),
    ("kasan", ReportKind::Kasan),
    ("kfence", ReportKind::Kfence),
    ("kmsan", ReportKind::Kmsan),
    ("kcsan", ReportKind::Kcsan),
    ("ubsan", ReportKind::Ubsan),
    ("lockdep", ReportKind::Lockdep),
    ("rcu-stall", ReportKind::RcuStall),
    ("hard-lockup", ReportKind::HardLockup),
    ("atomic-sleep", ReportKind::AtomicSleep),
    ("memory-leak", ReportKind::MemoryLeak),
    ("list-corruption", ReportKind::ListCorruption),
    ("refcount", ReportKind::Refcount),
    ("stack-overflow", ReportKind::StackOverflow),
    ("double-fault", ReportKind::DoubleFault),
    ("rust-panic", ReportKind::RustPanic),
];

/// The spec name of a report kind (`soft-lockup`).
pub fn report_kind_name(kind: ReportKind) -> &'static str {
    REPORT_KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

/// A spec that could not be parsed or is invalid.
///
/// Displays as one line, `FILE:LINE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    file: String,
    line: usize,
    message: String,
}

impl SpecError {
    /// The file label given to [`parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line of the offending key or value.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for SpecError {}

// ---------------------------------------------------------------------------------------------
// Raw TOML shape, with spans.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    kernel: Option<Spanned<String>>,
    module: Option<Spanned<String>>,
    timeout: Option<Spanned<f64>>,
    #[serde(default)]
    kernel_args: Vec<Spanned<String>>,
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
    title: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<Spanned<String>>,
    #[serde(default)]
    params: Vec<Spanned<String>>,
    verdict: Option<Spanned<String>>,
    timeout: Option<Spanned<f64>>,
    #[serde(default)]
    load: RawLoad,
    #[serde(default)]
    loaded: RawLoaded,
    #[serde(default)]
    unload: RawUnload,
    crash: Option<Spanned<RawCrash>>,
    #[serde(default)]
    todo: Vec<Spanned<i64>>,
    hint: Option<Spanned<String>>,
    #[serde(default)]
    before: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    #[serde(default)]
    log: Vec<Spanned<String>>,
    #[serde(default)]
    no_log: Vec<Spanned<String>>,
    error: Option<Spanned<String>>,
    processes: Option<Spanned<String>>,
    vmas: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnload {
    #[serde(default)]
    log: Vec<Spanned<String>>,
    #[serde(default)]
    no_log: Vec<Spanned<String>>,
    error: Option<Spanned<String>>,
    skip: Option<Spanned<bool>>,
    processes: Option<Spanned<String>>,
    vmas: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoaded {
    #[serde(default)]
    exists: Vec<Spanned<String>>,
    #[serde(default)]
    absent: Vec<Spanned<String>>,
    #[serde(default)]
    files: RawFiles,
    #[serde(default)]
    run: Vec<Spanned<String>>,
    #[serde(default)]
    output: Vec<Spanned<String>>,
    #[serde(default)]
    log: Vec<Spanned<String>>,
    #[serde(default)]
    no_log: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrash {
    kind: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    function: Option<Spanned<String>>,
    module: Option<Spanned<String>>,
    phase: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    allocated: Option<Spanned<String>>,
    freed: Option<Spanned<String>>,
}

/// `path -> regex` pairs in document order.
#[derive(Default)]
struct RawFiles(Vec<(Spanned<String>, Spanned<String>)>);

impl<'de> Deserialize<'de> for RawFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FilesVisitor;
        impl<'de> Visitor<'de> for FilesVisitor {
            type Value = RawFiles;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of path = \"regex\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFiles, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = map.next_entry::<Spanned<String>, Spanned<String>>()? {
                    v.push((k, val));
                }
                // The deserializer may hand keys over sorted; restore document order.
                v.sort_by_key(|(k, _)| k.span().start);
                Ok(RawFiles(v))
            }
        }
        d.deserialize_map(FilesVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        SpecError {
            file: self.file.to_string(),
            line: self.line_of(span.start),
            message: one_line(&message.into()),
        }
    }

    fn regex(&self, what: &str, s: &Spanned<String>) -> Result<Regex, SpecError> {
        Regex::new(s.get_ref()).map_err(|e| {
            self.err(
                s.span(),
                format!(
                    "{what}: invalid regex /{}/: {}",
                    s.get_ref(),
                    regex_reason(&e)
                ),
            )
        })
    }

    /// A regex whose named groups are among `allowed` and include every one of `required`.
    fn list_regex(
        &self,
        what: &str,
        s: &Option<Spanned<String>>,
        required: &[&str],
        allowed: &[&str],
    ) -> Result<Option<Regex>, SpecError> {
        let Some(s) = s else { return Ok(None) };
        let re = self.regex(what, s)?;
        let names: Vec<&str> = re.capture_names().flatten().collect();
        if let Some(missing) = required.iter().find(|r| !names.contains(r)) {
            return Err(self.err(
                s.span(),
                format!(
                    "{what}: /{}/ has no group named {missing} (write (?P<{missing}>...))",
                    re.as_str()
                ),
            ));
        }
        if let Some(other) = names.iter().find(|n| !allowed.contains(n)) {
            return Err(self.err(
                s.span(),
                format!(
                    "{what}: /{}/ has a group named {other} (the groups it may name: {})",
                    re.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Some(re))
    }

    fn regexes(&self, what: &str, v: &[Spanned<String>]) -> Result<Vec<Regex>, SpecError> {
        v.iter().map(|s| self.regex(what, s)).collect()
    }

    fn timeout(&self, what: &str, t: &Option<Spanned<f64>>) -> Result<Option<f64>, SpecError> {
        match t {
            None => Ok(None),
            Some(t) => match kmodlab_events::timeout_seconds(*t.get_ref()) {
                Ok(_) => Ok(Some(*t.get_ref())),
                Err(e) => Err(self.err(t.span(), format!("{what}: {e}"))),
            },
        }
    }

    fn commands(&self, what: &str, v: &[Spanned<String>]) -> Result<Vec<String>, SpecError> {
        v.iter()
            .map(|c| {
                if c.get_ref().trim().is_empty() {
                    Err(self.err(c.span(), format!("{what}: empty command")))
                } else {
                    Ok(c.get_ref().clone())
                }
            })
            .collect()
    }

    fn path(&self, what: &str, p: &Spanned<String>) -> Result<String, SpecError> {
        if p.get_ref().starts_with('/') {
            Ok(p.get_ref().clone())
        } else {
            Err(self.err(
                p.span(),
                format!("{what}: path {:?} is not absolute", p.get_ref()),
            ))
        }
    }
}

/// The toml error's message, prefixed with the dotted key it concerns when toml knows it.
fn toml_message(e: &toml::de::Error) -> String {
    let message = e.message().replace("expected f64", "expected a number");
    // Without input, Display is the message plus "in `key.path`" when the key is known.
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    match shown
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
    {
        Some("case") if message.starts_with("invalid type: map") => {
            format!("case: {message} (write [[case]], not [case])")
        }
        Some(keys) if !keys.is_empty() => format!("{keys}: {message}"),
        _ => message,
    }
}

fn one_line(s: &str) -> String {
    s.trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| one_line(&text))
}

fn verdict_names() -> String {
    Verdict::ALL.map(|v| v.as_str()).join(", ")
}

/// Parses and validates a spec. `file_label` is used in error messages only.
///
/// ```
/// let spec = kmodlab_spec::parse("kmodlab.toml", r#"
/// [[case]]
/// name = "default greeting"
/// [case.load]
/// log = ["Early bird gets the worm"]
/// "#).unwrap();
/// assert_eq!(spec.cases[0].name, "default greeting");
/// ```
pub fn parse(file_label: &str, text: &str) -> Result<Spec, SpecError> {
    let cx = Ctx {
        file: file_label,
        text,
    };
    let raw: RawSpec =
        toml::from_str(text).map_err(|e| cx.err(e.span().unwrap_or(0..0), toml_message(&e)))?;

    let kernel = match &raw.kernel {
        None => KernelKind::Debian,
        Some(k) => KernelKind::from_name(k.get_ref()).ok_or_else(|| {
            cx.err(
                k.span(),
                format!(
                    "kernel: unknown kernel {:?} (expected \"debian\", \"rust\" or \"debug\")",
                    k.get_ref()
                ),
            )
        })?,
    };
    let module = match &raw.module {
        None => None,
        Some(m) => {
            let name = m.get_ref();
            if name.is_empty() || name.contains(|c: char| c == '/' || c.is_whitespace()) {
                return Err(cx.err(m.span(), format!("module: invalid module name {name:?}")));
            }
            Some(name.clone())
        }
    };
    let timeout = cx.timeout("timeout", &raw.timeout)?;
    let mut kernel_args = Vec::new();
    for a in &raw.kernel_args {
        let word = a.get_ref();
        if word.is_empty() || word.contains(char::is_whitespace) {
            return Err(cx.err(
                a.span(),
                format!(
                    "kernel_args: {word:?} is not one kernel parameter (empty or with whitespace)"
                ),
            ));
        }
        kernel_args.push(word.clone());
    }

    let mut cases = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for rc in &raw.case {
        let case = case(&cx, rc)?;
        let name_span = rc.get_ref().name.as_ref().map_or(rc.span(), |n| n.span());
        if let Some(first) = seen.get(&case.name) {
            return Err(cx.err(
                name_span,
                format!(
                    "duplicate case name {:?} (first used at line {first})",
                    case.name
                ),
            ));
        }
        seen.insert(case.name.clone(), cx.line_of(name_span.start));
        cases.push(case);
    }
    if cases.is_empty() {
        cases.push(Case {
            name: IMPLICIT_CASE.to_string(),
            params: Vec::new(),
            verdict: Verdict::Pass,
            timeout: None,
            load: PhaseExpect::default(),
            unload: UnloadExpect::default(),
            loaded: LoadedExpect::default(),
            crash: None,
            todo: Vec::new(),
            hint: None,
            before: Vec::new(),
        });
    }
    let title = match &raw.title {
        None => None,
        Some(t) if t.get_ref().trim().is_empty() || t.get_ref().contains('\n') => {
            return Err(cx.err(t.span(), "title: must be one line, not empty"))
        }
        Some(t) => Some(t.get_ref().clone()),
    };
    Ok(Spec {
        kernel,
        module,
        timeout,
        kernel_args,
        cases,
        title,
    })
}

fn case(cx: &Ctx<'_>, rc: &Spanned<RawCase>) -> Result<Case, SpecError> {
    let r = rc.get_ref();
    let name = match &r.name {
        None => return Err(cx.err(rc.span(), "case: missing `name`")),
        Some(n) if n.get_ref().trim().is_empty() => {
            return Err(cx.err(n.span(), "case: `name` is empty"))
        }
        Some(n) => n.get_ref().clone(),
    };

    let mut params = Vec::new();
    for p in &r.params {
        match p.get_ref().split_once('=') {
            Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                params.push(p.get_ref().clone())
            }
            _ => {
                return Err(cx.err(
                    p.span(),
                    format!("params: {:?} is not name=value", p.get_ref()),
                ))
            }
        }
    }

    let explicit_verdict = match &r.verdict {
        None => None,
        Some(v) => Some(Verdict::from_name(v.get_ref()).ok_or_else(|| {
            cx.err(
                v.span(),
                format!(
                    "verdict: unknown verdict {:?} (expected one of: {})",
                    v.get_ref(),
                    verdict_names()
                ),
            )
        })?),
    };
    let timeout = cx.timeout("timeout", &r.timeout)?;

    let processes = |what: &str, re: &Option<Spanned<String>>| {
        cx.list_regex(what, re, &["pid"], &crosscheck::PROCESS_GROUPS)
    };
    let vmas = |what: &str, re: &Option<Spanned<String>>| {
        cx.list_regex(what, re, &crosscheck::VMA_GROUPS, &crosscheck::VMA_GROUPS)
    };
    let load = PhaseExpect {
        log: cx.regexes("load.log", &r.load.log)?,
        no_log: cx.regexes("load.no_log", &r.load.no_log)?,
        error: r.load.error.as_ref().map(|e| e.get_ref().clone()),
        processes: processes("load.processes", &r.load.processes)?,
        vmas: vmas("load.vmas", &r.load.vmas)?,
    };
    let unload = UnloadExpect {
        expect: PhaseExpect {
            log: cx.regexes("unload.log", &r.unload.log)?,
            no_log: cx.regexes("unload.no_log", &r.unload.no_log)?,
            error: r.unload.error.as_ref().map(|e| e.get_ref().clone()),
            processes: processes("unload.processes", &r.unload.processes)?,
            vmas: vmas("unload.vmas", &r.unload.vmas)?,
        },
        skip: r.unload.skip.as_ref().is_some_and(|s| *s.get_ref()),
    };
    if let Some(skip) = &r.unload.skip {
        if *skip.get_ref() && !unload.expect.is_empty() {
            return Err(cx.err(
                skip.span(),
                "unload.skip = true conflicts with unload log/no_log/error/processes/vmas expectations",
            ));
        }
    }
    if let (Some(_), Some(ue)) = (&r.load.error, &r.unload.error) {
        return Err(cx.err(
            ue.span(),
            "unload.error conflicts with load.error: a module that fails to load is not unloaded",
        ));
    }

    let mut loaded = LoadedExpect::default();
    for p in &r.loaded.exists {
        loaded.exists.push(cx.path("loaded.exists", p)?);
    }
    for p in &r.loaded.absent {
        loaded.absent.push(cx.path("loaded.absent", p)?);
    }
    for (p, re) in &r.loaded.files.0 {
        let path = cx.path("loaded.files", p)?;
        loaded.files.push((
            path.clone(),
            cx.regex(&format!("loaded.files {path:?}"), re)?,
        ));
    }

    loaded.run = cx.commands("loaded.run", &r.loaded.run)?;
    loaded.output = cx.regexes("loaded.output", &r.loaded.output)?;
    loaded.log = cx.regexes("loaded.log", &r.loaded.log)?;
    loaded.no_log = cx.regexes("loaded.no_log", &r.loaded.no_log)?;
    if loaded.run.is_empty() {
        let needs_run = [
            ("output", &r.loaded.output),
            ("log", &r.loaded.log),
            ("no_log", &r.loaded.no_log),
        ];
        if let Some((key, v)) = needs_run.iter().find(|(_, v)| !v.is_empty()) {
            return Err(cx.err(
                v[0].span(),
                format!("loaded.{key}: needs loaded.run (it checks what those commands printed)"),
            ));
        }
    }
    if let (Some(_), Some(first)) = (&r.load.error, r.loaded.run.first()) {
        return Err(cx.err(
            first.span(),
            "loaded.run conflicts with load.error: a module that fails to load runs no commands",
        ));
    }
    let before = cx.commands("before", &r.before)?;

    let crash = match &r.crash {
        None => None,
        Some(c) => Some(crash(cx, c.get_ref())?),
    };

    let verdict = explicit_verdict.unwrap_or(match &crash {
        Some(c) => match c.kind {
            Some(ReportKind::Warning) => Verdict::Warned,
            Some(ReportKind::Panic) => Verdict::Panicked,
            Some(ReportKind::MemoryLeak) => Verdict::Leaked,
            _ => Verdict::Crashed,
        },
        None if load.error.is_some() => Verdict::LoadFailed,
        None if unload.expect.error.is_some() => Verdict::UnloadFailed,
        None => Verdict::Pass,
    });

    let mut todo = Vec::new();
    for t in &r.todo {
        match u32::try_from(*t.get_ref()) {
            Ok(n) if n > 0 => todo.push(n),
            _ => {
                return Err(cx.err(
                    t.span(),
                    format!("todo: {} is not a TODO number (1, 2, ...)", t.get_ref()),
                ))
            }
        }
    }
    let hint = r.hint.as_ref().map(|h| h.get_ref().clone());

    Ok(Case {
        name,
        params,
        verdict,
        timeout,
        load,
        unload,
        loaded,
        crash,
        todo,
        hint,
        before,
    })
}

fn crash(cx: &Ctx<'_>, c: &RawCrash) -> Result<CrashExpect, SpecError> {
    let kind = match &c.kind {
        None => None,
        Some(k) => Some(
            REPORT_KINDS
                .iter()
                .find(|(n, _)| *n == k.get_ref())
                .map(|(_, kind)| *kind)
                .ok_or_else(|| {
                    let names: Vec<&str> = REPORT_KINDS.iter().map(|(n, _)| *n).collect();
                    cx.err(
                        k.span(),
                        format!(
                            "crash.kind: unknown report kind {:?} (expected one of: {})",
                            k.get_ref(),
                            names.join(", ")
                        ),
                    )
                })?,
        ),
    };
    let title = match &c.title {
        None => None,
        Some(t) => Some(cx.regex("crash.title", t)?),
    };
    let phase = match &c.phase {
        None => None,
        Some(p) => match p.get_ref().as_str() {
            "load" => Some(Phase::Load),
            "unload" => Some(Phase::Unload),
            other => {
                return Err(cx.err(
                    p.span(),
                    format!(
                        "crash.phase: unknown phase {other:?} (expected \"load\" or \"unload\")"
                    ),
                ))
            }
        },
    };
    let place = |key: &str, v: &Option<Spanned<String>>| match v {
        None => Ok(None),
        Some(s) if s.get_ref().trim().is_empty() => Err(cx.err(
            s.span(),
            format!("crash.{key}: empty (expected \"file.c:LINE\")"),
        )),
        Some(s) => Ok(Some(s.get_ref().clone())),
    };
    Ok(CrashExpect {
        kind,
        title,
        function: c.function.as_ref().map(|f| f.get_ref().clone()),
        module: c.module.as_ref().map(|m| m.get_ref().clone()),
        phase,
        source: place("source", &c.source)?,
        allocated: place("allocated", &c.allocated)?,
        freed: place("freed", &c.freed)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

impl Case {
    /// Paths the guest must read or stat while the module is loaded: the union of
    /// `loaded.exists`, `loaded.absent` and the `loaded.files` keys, in spec order, deduplicated.
    pub fn paths_to_read(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = self
            .loaded
            .exists
            .iter()
            .chain(&self.loaded.absent)
            .chain(self.loaded.files.iter().map(|(p, _)| p));
        for p in all {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Compares a run's result with the expectations; returns one human-readable line per unmet
    /// expectation, saying what was expected and what was seen. Empty: the case passed.
    pub fn evaluate(&self, result: &RunResult) -> Vec<String> {
        let mut out = Vec::new();

        if result.verdict != self.verdict {
            let mut line = format!("verdict: expected {}, got {}", self.verdict, result.verdict);
            if let (Verdict::Timeout, Some(p)) = (result.verdict, result.timeout_phase) {
                line.push_str(&format!(" (the {p} phase missed its deadline)"));
            }
            out.push(line);
        }

        check_phase("load", &self.load, Some(&result.load), &mut out);
        check_phase(
            "unload",
            &self.unload.expect,
            result.unload.as_ref(),
            &mut out,
        );
        check_commands(
            "before",
            &self.before,
            &result.before,
            None,
            false,
            &mut out,
        );
        self.check_loaded(result, &mut out);
        let not_run = (!result.load.ok).then_some("the module did not load");
        // A case that expects a crash expects the command that caused it to be killed by it.
        let crash_kills = self.crash.is_some() && !result.reports.is_empty();
        check_commands(
            "loaded.run",
            &self.loaded.run,
            &result.commands,
            not_run,
            crash_kills,
            &mut out,
        );
        self.check_command_output(result, &mut out);

        if let Some(c) = &self.crash {
            if !result.reports.iter().any(|r| c.matches(r)) {
                let seen = if result.reports.is_empty() {
                    "no reports seen".to_string()
                } else {
                    let list: Vec<String> = result
                        .reports
                        .iter()
                        .map(|r| describe_report(r, c.source.is_some()))
                        .collect();
                    format!(
                        "{} seen: {}",
                        plural(list.len(), "report", "reports"),
                        list.join("; ")
                    )
                };
                out.push(format!("crash: expected {}, {seen}", c.describe()));
            }
        }
        out
    }

    fn check_loaded(&self, result: &RunResult, out: &mut Vec<String>) {
        let find =
            |path: &str| -> Option<&FileRead> { result.files.iter().find(|f| f.path == path) };
        let not_read = |path: &str| {
            if result.load.ok {
                format!("loaded: {path} was not read")
            } else {
                format!("loaded: {path} was not read (the module did not load)")
            }
        };
        for p in &self.loaded.exists {
            match find(p) {
                None => out.push(not_read(p)),
                Some(f) if !f.exists => out.push(format!(
                    "loaded: expected {p} to exist, but it does not{}",
                    error_suffix(f)
                )),
                Some(_) => {}
            }
        }
        for p in &self.loaded.absent {
            match find(p) {
                None => out.push(not_read(p)),
                Some(f) if f.exists => {
                    out.push(format!("loaded: expected {p} to be absent, but it exists"))
                }
                Some(_) => {}
            }
        }
        for (p, re) in &self.loaded.files {
            match find(p) {
                None => out.push(not_read(p)),
                Some(f) if !f.exists => out.push(format!(
                    "loaded: expected {p} to match /{}/, but it does not exist{}",
                    re.as_str(),
                    error_suffix(f)
                )),
                Some(FileRead { contents: None, .. }) => out.push(format!(
                    "loaded: expected {p} to match /{}/, but it could not be read{}",
                    re.as_str(),
                    find(p).map(error_suffix).unwrap_or_default()
                )),
                Some(FileRead {
                    contents: Some(c), ..
                }) => {
                    let c = c.strip_suffix('\n').unwrap_or(c);
                    if !re.is_match(c) {
                        out.push(format!(
                            "loaded: expected {p} to match /{}/, got {:?}",
                            re.as_str(),
                            c
                        ));
                    }
                }
            }
        }
    }
}

impl Case {
    /// `loaded.output`, `loaded.log` and `loaded.no_log` against what the `loaded.run` commands
    /// printed.
    fn check_command_output(&self, result: &RunResult, out: &mut Vec<String>) {
        let l = &self.loaded;
        if l.output.is_empty() && l.log.is_empty() && l.no_log.is_empty() {
            return;
        }
        if result.commands.is_empty() {
            let why = if result.load.ok {
                "the commands did not run"
            } else {
                "the commands did not run (the module did not load)"
            };
            for re in &l.output {
                out.push(format!(
                    "loaded.output: expected a line matching /{}/, but {why}",
                    re.as_str()
                ));
            }
            for re in &l.log {
                out.push(format!(
                    "loaded.log: expected a line matching /{}/, but {why}",
                    re.as_str()
                ));
            }
            return;
        }
        let lines: Vec<&str> = result
            .commands
            .iter()
            .flat_map(|c| c.stdout.lines())
            .collect();
        for re in &l.output {
            if !lines.iter().any(|line| re.is_match(line)) {
                out.push(format!(
                    "loaded.output: no line matches /{}/ ({} of output seen)",
                    re.as_str(),
                    plural(lines.len(), "line", "lines")
                ));
            }
        }
        let log: Vec<&String> = result.commands.iter().flat_map(|c| &c.log).collect();
        for re in &l.log {
            if !log.iter().any(|line| re.is_match(line)) {
                out.push(format!(
                    "loaded.log: no line matches /{}/ ({} seen)",
                    re.as_str(),
                    plural(log.len(), "line", "lines")
                ));
            }
        }
        for re in &l.no_log {
            if let Some(line) = log.iter().find(|line| re.is_match(line)) {
                out.push(format!(
                    "loaded.log: line {line:?} matches /{}/, which must match no line",
                    re.as_str()
                ));
            }
        }
    }
}

/// The most characters of a failed command's output a failure message quotes.
const OUTPUT_QUOTE_CHARS: usize = 400;

/// Checks that each of `commands` (the spec's, under key `what`) ran and succeeded; `not_run`:
/// why none could run, when that is known.
fn check_commands(
    what: &str,
    commands: &[String],
    ran: &[CommandResult],
    not_run: Option<&str>,
    crash_kills: bool,
    out: &mut Vec<String>,
) {
    for (i, line) in commands.iter().enumerate() {
        let Some(r) = ran.get(i) else {
            out.push(match not_run {
                Some(why) => format!("{what}: `{line}` was not run ({why})"),
                None => format!("{what}: `{line}` was not run"),
            });
            return;
        };
        if crash_kills && r.signal.is_some() {
            // The crash the case expects killed it: the commands after it did not run.
            return;
        }
        if !r.succeeded() {
            let later = commands.len() - i - 1;
            let mut msg = format!("{what}: `{}` {}", r.command_line(), r.ending());
            msg.push_str(&quoted_output(r));
            if later > 0 {
                msg.push_str(&format!(
                    "; {} after it not run",
                    plural(later, "command", "commands")
                ));
            }
            out.push(msg);
            return;
        }
    }
}

/// `; output: "..."` with a command's standard error and output (the end of it when long), or
/// `; no output`.
fn quoted_output(r: &CommandResult) -> String {
    let text = format!("{}{}", r.stderr, r.stdout);
    let text = text.trim();
    if text.is_empty() {
        return "; no output".to_string();
    }
    let count = text.chars().count();
    if count <= OUTPUT_QUOTE_CHARS {
        format!("; output: {text:?}")
    } else {
        let tail: String = text.chars().skip(count - OUTPUT_QUOTE_CHARS).collect();
        format!("; output (its end): {:?}", format!("...{tail}"))
    }
}

fn error_suffix(f: &FileRead) -> String {
    match &f.error {
        Some(e) => format!(" ({e})"),
        None => String::new(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A report in one line; `with_source`: also its source (when the spec expects one).
fn describe_report(r: &CrashReport, with_source: bool) -> String {
    let mut s = format!("{} {:?}", report_kind_name(r.kind), r.title);
    if let Some(f) = &r.function {
        s.push_str(&format!(" in {f}"));
    }
    if let Some(m) = &r.module {
        s.push_str(&format!(" [{m}]"));
    }
    if with_source {
        match &r.source {
            Some(src) => s.push_str(&format!(" at {src}")),
            None => s.push_str(" (no source)"),
        }
    }
    s
}

fn check_phase(
    phase: &str,
    expect: &PhaseExpect,
    seen: Option<&PhaseResult>,
    out: &mut Vec<String>,
) {
    let Some(seen) = seen else {
        for re in &expect.log {
            out.push(format!(
                "{phase} log: expected a line matching /{}/, but {phase} was not attempted",
                re.as_str()
            ));
        }
        for re in &expect.no_log {
            out.push(format!(
                "{phase} log: expected no line matching /{}/, but {phase} was not attempted",
                re.as_str()
            ));
        }
        if let Some(e) = &expect.error {
            out.push(format!(
                "{phase} error: expected {e:?}, but {phase} was not attempted"
            ));
        }
        if let Some(re) = &expect.processes {
            out.extend(crosscheck::check_processes(phase, re, None));
        }
        if let Some(re) = &expect.vmas {
            out.extend(crosscheck::check_vmas(phase, re, None));
        }
        return;
    };
    for re in &expect.log {
        if !seen.log.iter().any(|l| re.is_match(l)) {
            out.push(format!(
                "{phase} log: no line matches /{}/ ({} seen)",
                re.as_str(),
                plural(seen.log.len(), "line", "lines")
            ));
        }
    }
    for re in &expect.no_log {
        if let Some(l) = seen.log.iter().find(|l| re.is_match(l)) {
            out.push(format!(
                "{phase} log: line {l:?} matches /{}/, which must match no line",
                re.as_str()
            ));
        }
    }
    if let Some(re) = &expect.processes {
        out.extend(crosscheck::check_processes(phase, re, Some(seen)));
    }
    if let Some(re) = &expect.vmas {
        out.extend(crosscheck::check_vmas(phase, re, Some(seen)));
    }
    if let Some(e) = &expect.error {
        let matches =
            seen.error.as_deref() == Some(e.as_str()) || seen.errno.as_deref() == Some(e.as_str());
        if !matches {
            let got = match (&seen.error, &seen.errno) {
                _ if seen.ok => format!("{phase} succeeded"),
                (Some(t), Some(n)) => format!("got {t:?} ({n})"),
                (Some(t), None) => format!("got {t:?}"),
                (None, Some(n)) => format!("got {n}"),
                (None, None) => format!("{phase} failed without an error text"),
            };
            out.push(format!("{phase} error: expected {e:?}, {got}"));
        }
    }
}

mod crosscheck;

#[cfg(test)]
mod tests;
