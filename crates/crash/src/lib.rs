//! Crash reports in kernel console logs: find them, classify them, title them.
//!
//! Parsers take text and return values; they never open files or print.
//!
//! [`Scanner`] reads a console line by line and hands out each report as soon as it is
//! complete; [`parse_reports`] runs it over a whole log. Detected (x86_64, Linux 4.x to 6.x
//! formats): oopses (NULL pointer dereference, paging request, general protection fault, divide
//! error, invalid opcode, stack segment), `kernel BUG at`, `WARNING:`, `Kernel panic - not
//! syncing`, soft lockups and hung tasks. Titles follow syzkaller's conventions
//! (`BUG: unable to handle kernel NULL pointer dereference in my_oops_init`,
//! `WARNING in warn_init`, `kernel panic: boom`); the guilty frame skips reporting and
//! unwinding plumbing as syzkaller does, and never skips a frame in a module.
#![deny(missing_docs)]

mod analysis;
mod console;
mod frame;
mod guilty;
mod header;
mod report;
mod scanner;
mod title;

pub use analysis::{DisasmLine, Disassembly, SourceContext};
pub use scanner::Scanner;

use serde::{Deserialize, Serialize};

/// Finds every crash report in a whole log.
///
/// Lines are split at `\n`; a trailing `\r` is ignored. The same [`Scanner`] a live console
/// uses does the work, so both give the same reports.
pub fn parse_reports(log: &str) -> Vec<CrashReport> {
    let mut scanner = Scanner::new();
    let mut reports = Vec::new();
    let log = log.strip_suffix('\n').unwrap_or(log);
    if !log.is_empty() {
        for line in log.split('\n') {
            reports.extend(scanner.push_line(line));
        }
    }
    reports.extend(scanner.finish());
    reports
}

/// What kind of report this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    /// An oops: NULL dereference, paging request, general protection fault, invalid opcode, ...
    Oops,
    /// `kernel BUG at file:line`.
    Bug,
    /// `WARNING: CPU: ... at file:line func+off/size`.
    Warning,
    /// `Kernel panic - not syncing: ...`.
    Panic,
    /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`.
    SoftLockup,
    /// `INFO: task NAME:PID blocked for more than N seconds.`
    HungTask,
}

/// One call-trace frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Function name as printed (demangled where it was mangled).
    pub function: String,
    /// Offset into the function (`0x15` of `f+0x15/0x30`).
    pub offset: Option<u64>,
    /// Function size (`0x30` of `f+0x15/0x30`).
    pub size: Option<u64>,
    /// Module name from the `[mod]` suffix, `None` for the kernel itself.
    pub module: Option<String>,
    /// `false` for frames printed with a leading `? ` (guesses of the unwinder).
    pub reliable: bool,
    /// `true` for the frame of a `RIP:` line: the faulting instruction itself, not a return
    /// address (symbolizers subtract one from return addresses only).
    #[serde(default)]
    pub rip: bool,
    /// `file:line` once symbolized; `None` until then.
    pub source: Option<String>,
    /// Inline chain, innermost first, once symbolized.
    pub inlined_by: Vec<String>,
}

/// One crash report found in a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    /// The report's kind.
    pub kind: ReportKind,
    /// A title following syzkaller's conventions (`BUG: kernel NULL pointer dereference in f`).
    pub title: String,
    /// Whether the report is incomplete or garbled.
    pub corrupted: bool,
    /// Why the report is considered corrupted.
    pub corrupted_reason: Option<String>,
    /// The module of the guilty frame, `None` when it is in the kernel proper.
    pub module: Option<String>,
    /// The guilty function.
    pub function: Option<String>,
    /// `file:line` of the guilty frame when debug info allows.
    pub source: Option<String>,
    /// The call trace, innermost first; the RIP frame first when there is one.
    pub frames: Vec<Frame>,
    /// The taint string (`G           OE`), when printed.
    pub taint: Option<String>,
    /// CPU number from the report header.
    pub cpu: Option<u32>,
    /// PID from the report header.
    pub pid: Option<u32>,
    /// Command name from the report header.
    pub comm: Option<String>,
    /// Zero-based line range `[first, last]` of the report in the log it was found in.
    pub lines: (usize, usize),
    /// The report's text, lines joined with `\n`, timestamps and `<N>` prefixes kept as found.
    pub text: String,
    /// What symbolization noticed (a stale module build, a module file not found), one line each.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The source lines around [`CrashReport::source`], once symbolized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<SourceContext>,
    /// The faulting code disassembled, once analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disassembly: Option<Disassembly>,
}
