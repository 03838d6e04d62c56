//! The streaming scanner: lines in, reports out as soon as they are complete.

use crate::console;
use crate::ext::{Ending, Ext};
use crate::frame;
use crate::header::{self, Flavor, Header};
use crate::report::{self, Cause, Collected, End, Line, Source, TraceState};
use crate::{CrashReport, ReportKind};

/// A report longer than this is cut (a lost end marker must not swallow the rest of the log).
const MAX_REPORT_LINES: usize = 1000;

/// How many lines before a header may belong to it (`cut here`, a `WARN()` message).
const PRELUDE_LINES: usize = 6;

/// Lines a panic prints after its call trace.
const PANIC_EPILOGUE: &[&str] = &[
    "Kernel Offset",
    "Kernel offset",
    "Rebooting",
    "---[ end",
    "Dumping ftrace buffer",
    "(ftrace buffer empty)",
    "Shutting down cpus",
    "Memory state",
];

/// Streaming scanner for a live console: feed lines as they arrive.
///
/// A report is returned by [`Scanner::push_line`] as soon as its end is seen:
/// - oops, `kernel BUG` and `WARNING` reports end at `---[ end trace ... ]---`;
/// - soft lockups and hung tasks, which print no end marker, end with their call trace:
///   at `</TASK>`, or on kernels older than 5.16 (no `<TASK>` markers) at the second line in
///   a row that cannot belong to a trace;
/// - panics end at `---[ end Kernel panic ... ]---` or `Rebooting in ...`, or at the first
///   line after their `</TASK>` that is not a panic's epilogue (`Kernel Offset: ...`); with
///   `panic=-1` the machine resets before printing anything more, so such a report comes out
///   of [`Scanner::finish`] (it is not marked corrupted for that);
/// - sanitizer reports (KASAN, KFENCE, KMSAN, KCSAN, UBSAN) end at their closing `=====` line
///   (or an end marker); lockdep reports, RCU stalls, hard lockups, sleeping-in-atomic and
///   the other `BUG:`/`INFO:` reports with a call trace end with it, as soft lockups do;
///   kmemleak's reports end with their `backtrace:`; one-line reports (`BUG: Bad rss-counter
///   state`) end at the next line;
/// - any report ends when another one starts, and at lines that start a stack of their own
///   (fault injection's stack dumps, `vmalloc: allocation failure`).
///
/// A Rust panic (`rust_kernel: panicked at FILE:LINE:COL:`, its message on the next line) ends
/// in `BUG()`: the `kernel BUG at rust/helpers/bug.c` line and the `invalid opcode` oops after
/// it belong to the panic's report (kind [`ReportKind::RustPanic`]), which ends at the oops's
/// end marker.
///
/// A header followed by `** replaying previous printk message **` was cut and is printed again:
/// it is no report. After `Sending NMI from CPU ...` (stall reports asking other CPUs for their
/// backtraces), lines of CPU contexts (`[ C1]`) belong to the report too.
///
/// A `Kernel panic - not syncing` line after a report's call trace starts a report of its own
/// (kind [`ReportKind::Panic`]); when the panic message only points back at the report before
/// it (`Fatal exception`, `panic_on_warn set`, `hung_task: blocked tasks`, ...), the panic
/// report takes its `function` and `module` from that report. A panic that interrupts a report
/// before that report's call trace (older kernels' `panic_on_warn`) is read as part of it, so
/// the report is named from the panic's trace, and a separate panic report follows it.
///
/// With printk caller ids (`[  T123]`), lines from other tasks and CPUs are left out of a
/// report, so they neither end nor garble it; so are lines without a timestamp (user space
/// writing to the console) when the report's header had one.
///
/// Line numbers count every line pushed, from 0, and keep counting after [`Scanner::finish`].
#[derive(Debug, Default)]
pub struct Scanner {
    next_index: usize,
    pending: Option<Pending>,
    /// Lines seen while no report was being collected, newest last, for preludes.
    recent: Vec<Line>,
    cause: Option<Cause>,
}

/// A report being collected.
#[derive(Debug)]
struct Pending {
    flavor: Flavor,
    lines: Vec<Line>,
    header_at: usize,
    header_text: String,
    source: Source,
    trace: TraceState,
    rip_seen: bool,
    /// Index in `lines` of a panic read as part of this report.
    panic_at: Option<usize>,
}

/// What a header means inside a report being collected.
enum InReport {
    /// It belongs to the report (`invalid opcode` after `kernel BUG at`).
    Continue,
    /// A panic that interrupts the report before its call trace: read it as part of it.
    AbsorbPanic,
    /// A new report starts.
    NewReport,
}

impl Scanner {
    /// A scanner at line 0.
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Feed one console line (without its trailing newline). Returns reports that became complete.
    pub fn push_line(&mut self, line: &str) -> Vec<CrashReport> {
        let index = self.next_index;
        self.next_index += 1;
        let split = console::split(line);
        let line = Line {
            index,
            raw: split.raw.to_owned(),
            msg: split.msg.to_owned(),
            caller: split.caller.map(str::to_owned),
            stamped: split.stamped,
        };
        let mut out = Vec::new();
        self.feed(line, &mut out);
        out
    }

    /// End of input: returns any report still being collected; one cut short (inside its call
    /// trace, or before it) is marked corrupted with the reason.
    pub fn finish(&mut self) -> Vec<CrashReport> {
        let mut out = Vec::new();
        if let Some(p) = self.pending.take() {
            self.complete(p, End::Eof, &mut out);
        }
        self.recent.clear();
        out
    }

    /// True while a report has started but is not complete (so the caller can wait a little for the rest).
    pub fn in_report(&self) -> bool {
        self.pending.is_some()
    }

    fn feed(&mut self, line: Line, out: &mut Vec<CrashReport>) {
        let header = header::detect(&line.msg);
        match self.pending.take() {
            None => self.idle(line, header),
            Some(p) => self.collect(p, line, header, out),
        }
    }

    /// A line while no report is being collected.
    fn idle(&mut self, line: Line, header: Option<Header>) {
        if let Some(h) = header {
            let source = Source::of(&line);
            if let Some(prelude) = take_prelude(&mut self.recent, 0, &h.flavor, &source) {
                self.recent.clear();
                self.pending = Some(Pending::start(h, line, prelude));
                return;
            }
        }
        if self.recent.len() >= PRELUDE_LINES {
            self.recent.remove(0);
        }
        self.recent.push(line);
    }

    /// A line while a report is being collected.
    fn collect(
        &mut self,
        mut p: Pending,
        line: Line,
        header: Option<Header>,
        out: &mut Vec<CrashReport>,
    ) {
        if line.msg.contains("** replaying previous printk message **")
            && p.lines.len() == p.header_at + 1
        {
            // The header was cut and is printed again: it was no report of its own.
            self.recent.extend(p.lines);
            let extra = self.recent.len().saturating_sub(PRELUDE_LINES - 1);
            self.recent.drain(..extra);
            self.idle(line, header);
            return;
        }
        if !p.source.admits(&line) {
            // Another task's or CPU's line, or user space's: not part of this report, unless
            // one of our reports starts there.
            if header
                .as_ref()
                .is_some_and(|h| h.flavor != Flavor::HungTaskTail)
            {
                self.complete(p, End::NewReport, out);
                self.idle(line, header);
            } else {
                self.pending = Some(p);
            }
            return;
        }
        if p.ending() == Some(Ending::Line) && p.lines.len() > p.header_at {
            // A one-line report is over at the next line of its source.
            self.complete(p, End::TraceOver, out);
            self.idle(line, header);
            return;
        }
        let msg = line.msg.as_str();
        if p.ending() == Some(Ending::Rule) && is_rule(msg) && p.lines.len() > p.header_at + 1 {
            p.push(line);
            self.complete(p, End::Marker, out);
            return;
        }
        if msg.contains("Sending NMI from CPU") {
            p.source.cpu_traceback = true;
        }
        if msg.contains("---[ end trace") || msg.contains("---[ end Kernel panic") {
            p.push(line);
            self.complete(p, End::Marker, out);
            return;
        }
        if let Some(h) = header {
            match p.classify(&h) {
                InReport::Continue => {}
                InReport::AbsorbPanic => p.panic_at = Some(p.lines.len()),
                InReport::NewReport => {
                    let from = p.header_at + 1;
                    let source = Source::of(&line);
                    // `None`: a hung-task tail without its `INFO: task` line is no header.
                    if let Some(prelude) = take_prelude(&mut p.lines, from, &h.flavor, &source) {
                        self.complete(p, End::NewReport, out);
                        self.pending = Some(Pending::start(h, line, prelude));
                        return;
                    }
                }
            }
        } else if header::interrupts(msg) {
            // Another kind of report starts: this one is over.
            self.complete(p, End::NewReport, out);
            self.idle(line, None);
            return;
        } else if p.trace.started && !p.trace.markers && !p.trace.closed && p.trace.frames > 0 {
            // Older kernels do not mark the end of a trace: two lines in a row that cannot be
            // in one end it (one may be another CPU's line printed in between).
            if frame::is_trace_line(msg) {
                p.trace.stray = 0;
            } else {
                p.trace.stray += 1;
                if p.trace.stray >= 2 {
                    p.trace.closed = true;
                    if p.ends_with_trace() {
                        self.complete(p, End::TraceOver, out);
                        self.idle(line, None);
                        return;
                    }
                }
            }
        }
        let panic_done = (p.trace.closed && p.trace.markers) || p.panic_without_trace();
        if p.in_panic() && panic_done && !is_panic_epilogue(msg) {
            // Whatever follows a finished panic is not part of it. (On kernels without
            // `<TASK>` markers the end of the trace is a guess: wait for the end marker.)
            self.complete(p, End::TraceOver, out);
            self.idle(line, None);
            return;
        }
        let rebooting = p.in_panic() && msg.trim_start().starts_with("Rebooting in");
        p.push(line);
        if rebooting {
            self.complete(p, End::Marker, out);
        } else if p.ends_with_trace() && p.trace.closed {
            self.complete(p, End::TraceOver, out);
        } else if p.lines.len() >= MAX_REPORT_LINES {
            self.complete(p, End::TooLong, out);
        } else {
            self.pending = Some(p);
        }
    }

    fn complete(&mut self, p: Pending, end: End, out: &mut Vec<CrashReport>) {
        let main = report::build(
            &Collected {
                flavor: &p.flavor,
                lines: &p.lines,
                header_at: p.header_at,
                header_text: &p.header_text,
                trace: p.trace,
                end,
            },
            self.cause.as_ref(),
        );
        if main.kind != ReportKind::Panic {
            self.cause = Some(Cause {
                function: main.function.clone(),
                module: main.module.clone(),
            });
        }
        let absorbed = p.panic_at.and_then(|at| {
            let line = p.lines.get(at)?;
            let pos = line.msg.find("Kernel panic - not syncing")?;
            Some(report::build(
                &Collected {
                    flavor: &Flavor::Panic,
                    lines: &p.lines[at..],
                    header_at: 0,
                    header_text: &line.msg[pos..],
                    trace: p.trace,
                    end,
                },
                self.cause.as_ref(),
            ))
        });
        out.push(main);
        out.extend(absorbed);
    }
}

impl Pending {
    fn start(h: Header, line: Line, mut prelude: Vec<Line>) -> Pending {
        let source = Source::of(&line);
        let (flavor, header_at, header_text) = if h.flavor == Flavor::HungTaskTail {
            // `INFO: task NAME` is on the prelude's last line, the rest on this one.
            let info = prelude.last().map_or("", |l| l.msg.as_str());
            let info = info.find("INFO: task").map_or(info, |i| &info[i..]);
            let text = format!("{info}\n{}", &line.msg);
            (Flavor::HungTask, prelude.len().saturating_sub(1), text)
        } else {
            let text = line.msg.get(h.pos..).unwrap_or("").to_owned();
            (h.flavor, prelude.len(), text)
        };
        prelude.push(line);
        let mut p = Pending {
            flavor,
            lines: Vec::with_capacity(64),
            header_at,
            header_text,
            source,
            trace: TraceState::default(),
            rip_seen: false,
            panic_at: None,
        };
        for l in prelude {
            p.push(l);
        }
        p
    }

    fn push(&mut self, line: Line) {
        let t = line.msg.trim();
        let leak = self.ending() == Some(Ending::Backtrace);
        if self.trace.closed
            && self.flavor == Flavor::Ext(Ext::RcuStall)
            && (t.starts_with("Call Trace") || t.starts_with("Call trace"))
        {
            // A stall report prints several stacks (the grace-period kthread's, then each
            // stalled CPU's): a new one starts.
            self.trace = TraceState::default();
        }
        let trace = &mut self.trace;
        if t.starts_with("Call Trace")
            || t.starts_with("Call trace")
            || (leak && (t.starts_with("backtrace:") || t.starts_with("backtrace (crc ")))
        {
            trace.started = true;
        } else if trace.started && !trace.closed {
            if t == "<TASK>" {
                trace.markers = true;
                trace.depth += 1;
            } else if t == "</TASK>" {
                trace.markers = true;
                trace.depth = trace.depth.saturating_sub(1);
                if trace.depth == 0 {
                    trace.closed = true;
                }
            } else if frame::parse_frame(t).is_some() {
                trace.frames += 1;
            }
        }
        if !self.rip_seen && frame::parse_rip(t).is_some() {
            self.rip_seen = true;
        }
        self.lines.push(line);
    }

    fn classify(&self, h: &Header) -> InReport {
        match h.flavor {
            Flavor::InvalidOpcode
                if matches!(
                    self.flavor,
                    Flavor::KernelBug
                        | Flavor::ListCorruption
                        | Flavor::BugUsercopy
                        | Flavor::RustPanic
                ) && !self.rip_seen =>
            {
                InReport::Continue
            }
            // A Rust panic ends in `BUG()`: `kernel BUG at rust/helpers/bug.c:7!`.
            Flavor::KernelBug
                if self.flavor == Flavor::RustPanic && !self.rip_seen && !self.trace.started =>
            {
                InReport::Continue
            }
            Flavor::Panic if !self.in_panic() && !self.trace.started => InReport::AbsorbPanic,
            // These come in the middle of another report (arm's `Internal error: Oops` after
            // `Unable to handle kernel paging request`), as syzkaller reads them.
            Flavor::Ext(ref e) if e.continues_report() => InReport::Continue,
            _ => InReport::NewReport,
        }
    }

    /// Whether this kind of report ends with its call trace (it prints no end marker).
    fn ends_with_trace(&self) -> bool {
        let by_trace = matches!(self.flavor, Flavor::SoftLockup | Flavor::HungTask)
            || matches!(self.ending(), Some(Ending::Trace | Ending::Backtrace));
        // A stall is over with the stack of the stalled code, the one with the registers.
        let stall_done = self.flavor != Flavor::Ext(Ext::RcuStall) || self.rip_seen;
        by_trace && stall_done && self.panic_at.is_none()
    }

    /// How a report of the other kinds (`ext.rs`) ends.
    fn ending(&self) -> Option<Ending> {
        match &self.flavor {
            Flavor::Ext(e) => Some(e.ending()),
            _ => None,
        }
    }

    /// Whether the report is a panic, or has read one.
    fn in_panic(&self) -> bool {
        self.flavor == Flavor::Panic || self.panic_at.is_some()
    }

    /// A panic that prints no call trace of its own (`Fatal exception` after an oops).
    fn panic_without_trace(&self) -> bool {
        self.flavor == Flavor::Panic
            && !self.trace.started
            && self.header_text.contains("Fatal exception")
    }
}

/// `==================================================================`: the line before and
/// after a sanitizer's report.
fn is_rule(msg: &str) -> bool {
    let t = msg.trim();
    t.len() >= 20 && t.bytes().all(|b| b == b'=')
}

fn is_panic_epilogue(msg: &str) -> bool {
    let t = msg.trim();
    t.is_empty() || PANIC_EPILOGUE.iter().any(|p| t.starts_with(p))
}

/// Takes the lines before a header that belong to its report out of `lines` (from index
/// `from` on): `------------[ cut here ]------------` and what follows it for warnings and
/// BUGs, the `INFO: task` line of a hung task whose name held a newline. `None` when a hung-task
/// tail has no such line (then it is no header).
fn take_prelude(
    lines: &mut Vec<Line>,
    from: usize,
    flavor: &Flavor,
    origin: &Source,
) -> Option<Vec<Line>> {
    let from = from.min(lines.len());
    match flavor {
        Flavor::HungTaskTail => {
            let last = lines[from..].iter().rposition(|l| origin.admits(l))? + from;
            lines[last].msg.contains("INFO: task ").then(|| {
                let line = lines.remove(last);
                vec![line]
            })
        }
        Flavor::Warning(_) | Flavor::KernelBug | Flavor::ListCorruption | Flavor::BugUsercopy => {
            let window = lines.len().saturating_sub(PRELUDE_LINES).max(from);
            let cut = lines[window..]
                .iter()
                .rposition(|l| origin.admits(l) && l.msg.contains("------------[ cut here ]"))
                .map(|i| i + window);
            Some(match cut {
                Some(cut) => lines.drain(cut..).filter(|l| origin.admits(l)).collect(),
                None => Vec::new(),
            })
        }
        _ => Some(Vec::new()),
    }
}
