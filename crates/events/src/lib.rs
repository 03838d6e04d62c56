//! The event stream between the VM driver and its consumers, and the results a run produces.
//!
//! The VM driver only emits [`Event`]s; the live UI, KTAP, JSON and JUnit reporters only consume
//! them. [`RunResult`] is the contract of `kmodlab run --json` (see docs/contracts.md).
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The longest deadline a phase may have, in seconds (a day): anything longer is a mistake, and
/// a deadline must stay a point in time the clock can represent.
pub const MAX_TIMEOUT_S: f64 = 86_400.0;

/// A phase deadline of `seconds`: a positive number of seconds up to [`MAX_TIMEOUT_S`]; the
/// error says what is wrong with it.
pub fn timeout_seconds(seconds: f64) -> Result<Duration, String> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!(
            "must be a positive number of seconds, not {seconds}"
        ));
    }
    if seconds > MAX_TIMEOUT_S {
        return Err(format!(
            "must be at most {MAX_TIMEOUT_S} seconds (a day), not {seconds}"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A phase of a run, for progress, deadlines and timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// From QEMU start until the guest agent says it is ready.
    Boot,
    /// Loading the module (finit_module until it returns).
    Load,
    /// Reading files under /sys and /proc while the module is loaded.
    Check,
    /// Unloading the module (delete_module until it returns).
    Unload,
    /// After a successful unload on a kernel with kmemleak: one scan for objects the module
    /// allocated and nothing references any more.
    LeakCheck,
    /// From the power-off request until QEMU exits.
    Shutdown,
}

impl Phase {
    /// The phase's name as users read it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Boot => "boot",
            Phase::Load => "load",
            Phase::Check => "check",
            Phase::Unload => "unload",
            Phase::LeakCheck => "leak-check",
            Phase::Shutdown => "shutdown",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overall outcome of loading and unloading one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Loaded and unloaded with no crash report.
    Pass,
    /// The kernel refused the module (init returned an error, unknown symbol, ...).
    LoadFailed,
    /// An oops or BUG happened; the kernel survived.
    Crashed,
    /// A WARNING was printed; the kernel survived.
    Warned,
    /// The kernel panicked and the VM went down.
    Panicked,
    /// A phase missed its deadline; the VM was killed.
    Timeout,
    /// The module loaded but could not be unloaded.
    UnloadFailed,
    /// Loaded and unloaded, and then kmemleak found objects the module allocated that nothing
    /// references (a kernel with kmemleak: the debug lab kernel).
    Leaked,
}

impl Verdict {
    /// The verdict's name as in the JSON contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::LoadFailed => "load-failed",
            Verdict::Crashed => "crashed",
            Verdict::Warned => "warned",
            Verdict::Panicked => "panicked",
            Verdict::Timeout => "timeout",
            Verdict::UnloadFailed => "unload-failed",
            Verdict::Leaked => "leaked",
        }
    }

    /// Every verdict, for parsers and help texts.
    pub const ALL: [Verdict; 8] = [
        Verdict::Pass,
        Verdict::LoadFailed,
        Verdict::Crashed,
        Verdict::Warned,
        Verdict::Panicked,
        Verdict::Timeout,
        Verdict::UnloadFailed,
        Verdict::Leaked,
    ];

    /// Parses a verdict name as [`Verdict::as_str`] writes it.
    pub fn from_name(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened in the load or the unload phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The syscall returned success.
    pub ok: bool,
    /// The error as kmod's insmod/rmmod word it (`No such device`), `None` on success.
    pub error: Option<String>,
    /// The errno name (`ENODEV`) when the syscall failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The kernel messages printed during the phase, one per line, without timestamps.
    pub log: Vec<String>,
    /// The guest's processes around the call, when a spec compares the module's process list
    /// with them (and the call reached its syscall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Tasks>,
    /// The calling process's `/proc/self/maps`, read right before the syscall, when a spec
    /// compares the module's list of memory areas with it (and the call reached its syscall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<String>,
}

/// A process of the guest, as `/proc/PID/stat` showed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Its PID.
    pub pid: u32,
    /// Its parent's PID.
    pub ppid: u32,
    /// Its name as `/proc` shows it (a kernel thread's full name, a workqueue worker's with what
    /// it works on: `kworker/0:1-events`).
    pub comm: String,
    /// Whether it is a kernel thread.
    pub kthread: bool,
    /// When it started, in clock ticks after boot: with the PID, which process it is.
    pub start_time: u64,
}

/// The guest's processes around a load or unload call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tasks {
    /// The PID of the process that made the call (the loader or the unloader).
    pub caller: u32,
    /// Every process, read by the caller right before the syscall.
    pub before: Vec<Task>,
    /// Every process, read once the call had ended and the caller was reaped.
    pub after: Vec<Task>,
}

/// A file read inside the guest while the module was loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRead {
    /// Absolute path in the guest.
    pub path: String,
    /// Whether the path exists.
    pub exists: bool,
    /// Whether it is a directory (its contents are then its entry names, one per line).
    #[serde(default)]
    pub dir: bool,
    /// The contents (a directory: its entry names, one per line), `None` when unreadable.
    pub contents: Option<String>,
    /// Why the file could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of one run: boot, load, checks, unload, power off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The overall verdict.
    pub verdict: Verdict,
    /// The module's name (as the kernel knows it).
    pub module: String,
    /// The parameters the module was loaded with, one `name=value` each.
    pub params: Vec<String>,
    /// The load phase.
    pub load: PhaseResult,
    /// The unload phase, `None` when not attempted.
    pub unload: Option<PhaseResult>,
    /// Files read while the module was loaded (`/sys/module/NAME/...` and what specs ask for).
    pub files: Vec<FileRead>,
    /// A spec's `before` shell commands, run with `sh -c` in order before the load; the first
    /// that fails (or has no result) is the last one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<CommandResult>,
    /// A spec's `loaded.run` shell commands, run with `sh -c` in order while the module was
    /// loaded (after the files were read); the first that fails is the last one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandResult>,
    /// Crash reports found on the console.
    pub reports: Vec<kmodlab_crash::CrashReport>,
    /// The phase that missed its deadline, for the `timeout` verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_phase: Option<Phase>,
    /// The kernel release the module ran on.
    pub kernel: String,
    /// The accelerator QEMU used (`kvm` or `tcg`).
    pub accel: String,
    /// The run directory with the console log and agent transcript.
    pub run_dir: PathBuf,
    /// Wall-clock duration of the whole run, in seconds.
    pub duration_s: f64,
    /// How the guest started: `warm` (restored from a saved state) or `cold` (booted).
    #[serde(default)]
    pub start: String,
}

/// One event of the stream from the VM driver to reporters.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// QEMU is starting.
    BootStarted {
        /// Kernel release.
        kernel: String,
        /// Accelerator in use.
        accel: String,
        /// Run directory.
        run_dir: PathBuf,
    },
    /// One line of the kernel console.
    KernelLine(String),
    /// The guest agent is ready for requests.
    AgentReady {
        /// Seconds since QEMU started.
        boot_s: f64,
    },
    /// How the guest was started: restored from a saved state (`warm`) or booted, and why.
    Started {
        /// Restored from a saved state.
        warm: bool,
        /// One line for people.
        detail: String,
    },
    /// A phase began.
    StepStarted(Phase),
    /// A phase ended.
    StepFinished {
        /// The phase.
        phase: Phase,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A crash report was found on the console.
    ReportFound {
        /// Report kind (`oops`, `warning`, ...).
        kind: String,
        /// Report title.
        title: String,
    },
    /// A remark about the run for people (`no leak check needed: ...`).
    Note(String),
    /// QEMU exited.
    VmExited {
        /// Exit status as text.
        status: String,
    },
}

/// What one command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<String>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Kernel messages printed while it ran.
    pub log: Vec<String>,
    /// Why it has no result (timeout, VM gone, agent error), when it has none.
    pub error: Option<String>,
}

impl CommandResult {
    /// A command that has not run yet: no exit code, no output.
    pub fn new(argv: Vec<String>) -> CommandResult {
        CommandResult {
            argv,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            log: Vec::new(),
            error: None,
        }
    }

    /// Whether it exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && self.error.is_none()
    }

    /// The command as one line: a `sh -c` command line as it was written, else the argument
    /// vector joined with spaces.
    pub fn command_line(&self) -> String {
        match self.argv.as_slice() {
            [sh, c, line] if sh.ends_with("sh") && c == "-c" => line.clone(),
            argv => argv.join(" "),
        }
    }

    /// How it ended, in a few words: `exited with status 1`, `killed by SIGSEGV`, or its error.
    pub fn ending(&self) -> String {
        match (&self.error, self.exit_code, &self.signal) {
            (Some(e), _, _) => e.clone(),
            (None, Some(c), _) => format!("exited with status {c}"),
            (None, None, Some(s)) => format!("killed by {s}"),
            (None, None, None) => "ended without a status".to_string(),
        }
    }
}

/// What a script did.
#[derive(Clone, Debug, Serialize)]
pub struct ScriptResult {
    /// One entry per command that was started.
    pub commands: Vec<CommandResult>,
    /// Crash reports found on the console.
    pub reports: Vec<kmodlab_crash::CrashReport>,
    /// Whether a command missed its deadline (the VM was then killed).
    pub timed_out: bool,
    /// The guest kernel release.
    pub kernel: String,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// The exit codes of every kmodlab command, one table: scripts rely on them.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A test or verdict failed, or the module did not build.
    pub const FAILED: u8 = 1;
    /// Usage or input error: bad arguments, a broken spec, a file that is not a module.
    pub const USAGE: u8 = 2;
    /// Infrastructure: no kernel, no QEMU, the VM did not boot.
    pub const INFRA: u8 = 3;
}
