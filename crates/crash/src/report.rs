//! Turning the collected lines of one report into a [`CrashReport`].

use crate::ext;
use crate::frame::{self, Rip};
use crate::guilty::{self, Guilty, Pat};
use crate::header::{self, Flavor};
use crate::stack;
use crate::title;
use crate::{CrashReport, Frame, LinkedModule, ReportKind, TaintFlag};

/// One console line of a report.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    /// Zero-based line number in the input.
    pub index: usize,
    /// The line as found (without its line ending).
    pub raw: String,
    /// The kernel message (prefix removed).
    pub msg: String,
    /// The printk caller id, when printed.
    pub caller: Option<String>,
    /// Whether the line had a printk timestamp.
    pub stamped: bool,
}

/// Who printed a report's header line, to tell which later lines can belong to it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Source {
    caller: Option<String>,
    stamped: bool,
    /// The report asked other CPUs for their backtraces (`Sending NMI from CPU ...`): lines
    /// of CPU callers (`[ C1]`) belong to it too.
    pub cpu_traceback: bool,
}

impl Source {
    /// The source of a line.
    pub fn of(line: &Line) -> Source {
        Source {
            caller: line.caller.clone(),
            stamped: line.stamped,
            cpu_traceback: false,
        }
    }

    /// Whether a line can belong to the report: lines from another task or CPU (caller ids),
    /// and lines without a timestamp when the header had one (user space writing to the
    /// console), cannot.
    pub fn admits(&self, line: &Line) -> bool {
        let callers = match (&line.caller, &self.caller) {
            (Some(a), Some(b)) => a == b || (self.cpu_traceback && a.starts_with('C')),
            _ => true,
        };
        callers && (line.stamped || !self.stamped)
    }
}

/// How a report's collection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// `---[ end trace ... ]---`, `---[ end Kernel panic ... ]---` or `Rebooting in`.
    Marker,
    /// The call trace of a report that has no end marker (hung task, soft lockup) ended.
    TraceOver,
    /// Another report started.
    NewReport,
    /// The input ended.
    Eof,
    /// The report grew past the line limit.
    TooLong,
}

/// The guilty frame of the last report, for the panics it causes (`Fatal exception`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Cause {
    /// Guilty function.
    pub function: Option<String>,
    /// Its module.
    pub module: Option<String>,
}

/// The state of a report's call trace while lines arrive.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TraceState {
    /// A `Call Trace:` line was seen.
    pub started: bool,
    /// The kernel marks the task stack with `<TASK>` / `</TASK>`.
    pub markers: bool,
    /// `<TASK>` nesting.
    pub depth: u32,
    /// Frames seen.
    pub frames: usize,
    /// The trace is over (`</TASK>`, or lines that cannot be part of it).
    pub closed: bool,
    /// Lines in a row that cannot be part of a trace (kernels without `<TASK>` markers).
    pub stray: u32,
}

/// What a finished report's lines say, ready to be titled.
pub(crate) struct Collected<'a> {
    /// The report's header.
    pub flavor: &'a Flavor,
    /// All lines of the report (a `cut here` prelude included).
    pub lines: &'a [Line],
    /// Index in `lines` of the header line.
    pub header_at: usize,
    /// The header text (from the header to the end of its line, or of the next line for a
    /// hung task whose name held a newline).
    pub header_text: &'a str,
    /// The trace state at the end.
    pub trace: TraceState,
    /// How collection ended.
    pub end: End,
}

/// Where a panic's title and culprit come from.
struct PanicInfo {
    title: String,
    /// The title is complete without a call trace.
    needs_trace: bool,
    /// The panic only reports an earlier report (`Fatal exception`, `panic_on_warn set`).
    consequence: bool,
    /// Its own guilty frame.
    guilty: Option<(Option<String>, Option<String>)>,
}

/// Builds the report.
pub(crate) fn build(c: &Collected<'_>, cause: Option<&Cause>) -> CrashReport {
    let body = &c.lines[c.header_at.min(c.lines.len())..];
    let start = match c.flavor {
        Flavor::Ext(e) if e.frames_follow_header() => TraceStart::Header,
        Flavor::Ext(ext::Ext::MemoryLeak) => TraceStart::Backtrace,
        _ => TraceStart::CallTrace,
    };
    let facts = Facts::read(body, c.flavor.uses_rip(), start);
    let mut frames: Vec<Frame> = Vec::new();
    if let Some(f) = &facts.rip {
        frames.push(f.clone());
    }
    frames.extend(facts.trace.iter().cloned());
    // Fault injection prints its own stack (`should_fail`); frames from there on may belong
    // to it rather than to the report.
    let candidates: Vec<&Frame> = facts
        .rip
        .iter()
        .chain(facts.trace.iter().filter(|f| f.reliable))
        .take_while(|f| !is_fault_injection(f))
        .collect();
    let fault_injection = facts.trace.iter().any(|f| is_fault_injection(&f));

    let kind = c.flavor.kind();
    let mut reasons: Vec<String> = Vec::new();
    let mut key_frame: Option<Frame> = None;
    let mut source: Option<String> = None;
    let (title, function, module) = if let Flavor::Ext(e) = c.flavor {
        // The header text replaces the header line's message: it starts at the header.
        let msgs: Vec<&str> = std::iter::once(c.header_text.lines().next().unwrap_or(""))
            .chain(body.iter().skip(1).map(|l| l.msg.as_str()))
            .collect();
        let t = ext::title(e, &msgs);
        reasons.extend(t.corrupted);
        let (function, module) = t.key.as_ref().map_or((None, None), |k| {
            (Some(k.frame.function.clone()), k.frame.module.clone())
        });
        key_frame = t.key.map(|k| k.frame);
        (t.title, function, module)
    } else if kind == ReportKind::Panic {
        let info = panic_info(c.header_text, &candidates);
        let (mut function, mut module) = info.guilty.clone().unwrap_or_default();
        key_frame = candidates
            .iter()
            .find(|f| Some(&f.function) == function.as_ref() && f.module == module)
            .map(|f| (*f).clone());
        if info.consequence {
            match cause {
                Some(cause) => {
                    function = cause.function.clone();
                    module = cause.module.clone();
                }
                None => {
                    reasons.push("the report that led to this panic is not in the log".to_owned())
                }
            }
        }
        if info.needs_trace {
            if !facts.has_call_trace {
                reasons.push("no call trace".to_owned());
            } else if !facts.trace.iter().any(|f| f.reliable) {
                reasons.push("no reliable frames in the call trace".to_owned());
            }
        }
        (info.title, function, module)
    } else if *c.flavor == Flavor::RustPanic {
        let panic = RustPanic::read(c.header_text, body);
        source = panic.source;
        if !facts.has_call_trace {
            reasons.push("no call trace".to_owned());
        } else if !facts.trace.iter().any(|f| f.reliable) {
            reasons.push("no reliable frames in the call trace".to_owned());
        }
        let message = match &panic.message {
            Some(m) => title::replace_dynamic(m),
            None => {
                reasons.push("the panic message is missing".to_owned());
                "Rust panic".to_owned()
            }
        };
        match guilty::plain(&candidates, &[]) {
            Some(Guilty { frame, name }) => {
                key_frame = Some(frame.clone());
                (
                    format!("{message} in {name}"),
                    Some(frame.function.clone()),
                    frame.module.clone(),
                )
            }
            None => {
                reasons.push(if fault_injection {
                    "a fault-injection stack is mixed into the call trace".to_owned()
                } else {
                    "no frame to name the report by".to_owned()
                });
                (format!("{message} in corrupted"), None, None)
            }
        }
    } else {
        let extra = c.flavor.extra_skips();
        let guilty = match c.flavor {
            // A fault-injection stack mixed into the trace: no frame can be trusted.
            Flavor::SoftLockup => guilty::stall(&candidates, extra),
            Flavor::HungTask | Flavor::HungTaskTail => guilty::hung_task(&candidates),
            _ => guilty::plain(&candidates, extra),
        };
        if !facts.has_call_trace {
            reasons.push("no call trace".to_owned());
        } else if !facts.trace.iter().any(|f| f.reliable) {
            reasons.push("no reliable frames in the call trace".to_owned());
        }
        if *c.flavor == Flavor::UnableToHandle {
            reasons.push("the header line is cut short".to_owned());
        }
        match guilty {
            Some(Guilty { frame, name }) => {
                key_frame = Some(frame.clone());
                (
                    c.flavor.title(&name),
                    Some(frame.function.clone()),
                    frame.module.clone(),
                )
            }
            None => {
                if fault_injection {
                    reasons.push("a fault-injection stack is mixed into the call trace".to_owned());
                } else if c.flavor.names_function() {
                    reasons.push("no frame to name the report by".to_owned());
                }
                // A warning names its function in its header: keep it as a hint.
                let hint = match c.flavor {
                    Flavor::Warning(_) => header::find_source(c.header_text)
                        .and_then(|(_, after)| frame::parse_frame(after)),
                    _ => None,
                };
                (
                    c.flavor.title("corrupted"),
                    hint.as_ref().map(|f| f.function.clone()),
                    hint.and_then(|f| f.module),
                )
            }
        }
    };
    if c.trace.started && c.trace.markers && !c.trace.closed && c.end != End::Marker {
        reasons.insert(
            0,
            "the report is cut short inside its call trace".to_owned(),
        );
    }
    if c.end == End::TooLong {
        reasons.insert(0, "the report is too long and was cut".to_owned());
    }

    let guilty_frame = key_frame.as_ref().and_then(|k| {
        frames
            .iter()
            .position(|f| f == k)
            .or_else(|| frames.iter().position(|f| same_place(f, k)))
    });
    let user_frame = user_frame(&frames, &facts.modules);
    let (cpu, pid, comm) = header_task(c.flavor, c.header_text);
    let first = c.lines.first().map_or(0, |l| l.index);
    let last = c.lines.last().map_or(first, |l| l.index);
    let text = c
        .lines
        .iter()
        .map(|l| l.raw.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    CrashReport {
        kind,
        title: title::sanitize(&title),
        corrupted: !reasons.is_empty(),
        corrupted_reason: reasons.into_iter().next(),
        module,
        function,
        source,
        frames,
        taint_flags: facts
            .taint
            .clone()
            .flatten()
            .map(|t| TaintFlag::decode(&t))
            .unwrap_or_default(),
        taint: facts.taint.flatten(),
        cpu: facts.cpu.or(cpu),
        pid: facts.pid.or(pid),
        comm: facts.comm.or(comm),
        lines: (first, last),
        text,
        registers: facts.registers,
        code: facts.code,
        guilty_frame,
        user_frame,
        modules_linked: facts.modules,
        notes: Vec::new(),
        context: None,
        disassembly: None,
        stacks: facts.stacks,
    }
}

/// Facts read from a report's lines.
#[derive(Default)]
struct Facts {
    rip: Option<Frame>,
    trace: Vec<Frame>,
    has_call_trace: bool,
    cpu: Option<u32>,
    pid: Option<u32>,
    comm: Option<String>,
    /// `Some(None)` for `Not tainted`.
    taint: Option<Option<String>>,
    registers: Vec<(String, String)>,
    code: Option<String>,
    modules: Vec<LinkedModule>,
    /// KASAN's allocation and free stacks.
    stacks: Vec<crate::LabelledStack>,
}

/// Where a report's own stack starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TraceStart {
    /// At `Call Trace:`.
    CallTrace,
    /// Right after the header (KMSAN, KFENCE).
    Header,
    /// At kmemleak's `backtrace:`.
    Backtrace,
}

impl Facts {
    fn read(body: &[Line], uses_rip: bool, start: TraceStart) -> Facts {
        let mut facts = Facts::default();
        let mut rip_done = !uses_rip;
        let mut collecting = start == TraceStart::Header;
        let mut trace_done = false;
        let mut registers = Registers::default();
        // The labelled stack being read (an index in `facts.stacks`).
        let mut labelled: Option<usize> = None;
        for (i, line) in body.iter().enumerate() {
            let msg = line.msg.as_str();
            let t = msg.trim();
            if t.starts_with("Allocated by task ") || t.starts_with("Freed by task ") {
                facts.stacks.push(crate::LabelledStack {
                    label: t.trim_end_matches(':').to_string(),
                    ..Default::default()
                });
                labelled = Some(facts.stacks.len() - 1);
            } else if let Some(k) = labelled {
                match frame::parse_frame(msg) {
                    Some(f) => facts.stacks[k].frames.push(f),
                    None => labelled = None,
                }
            }
            registers.read(t, &mut facts.registers);
            if facts.code.is_none() {
                if let Some(code) = t.strip_prefix("Code:") {
                    facts.code = Some(code.trim().to_owned());
                }
            }
            if facts.modules.is_empty() {
                if let Some(list) = t.strip_prefix("Modules linked in:") {
                    facts.modules = linked_modules(list);
                }
            }
            if i == 0 && start == TraceStart::Header {
                continue;
            }
            if start == TraceStart::Backtrace
                && !trace_done
                && !collecting
                && (t.starts_with("backtrace:") || t.starts_with("backtrace (crc "))
            {
                collecting = true;
                facts.has_call_trace = true;
                continue;
            }
            let origin = t.ends_with(" created at:") || t.contains("Uninit was created at:");
            if start == TraceStart::Header && collecting && (stack::is_stack_start(t) || origin) {
                collecting = false;
                trace_done = true;
                facts.has_call_trace = true;
                continue;
            }
            if !rip_done {
                if let Some(rip) = frame::parse_rip(msg) {
                    rip_done = true;
                    if let Rip::Kernel(f) = rip {
                        facts.rip = f.map(|f| Frame { rip: true, ..f });
                    }
                }
            }
            if is_stack_start(t) {
                if collecting {
                    collecting = false;
                    trace_done = true;
                } else if !trace_done
                    && (t.starts_with("Call Trace") || t.starts_with("Call trace"))
                {
                    collecting = true;
                    facts.has_call_trace = true;
                }
                continue;
            }
            if collecting {
                if let Some(f) = frame::parse_frame(msg) {
                    facts.trace.push(f);
                    continue;
                }
            }
            if facts.cpu.is_none() {
                if let Some(cpu_line) = t.strip_prefix("CPU: ").filter(|r| r.contains("PID: ")) {
                    facts.read_cpu_line(cpu_line);
                    continue;
                }
            }
            if facts.taint.is_none() {
                if let Some(rest) = t.strip_prefix("Tainted: ") {
                    if rest.bytes().next().is_some_and(|b| b.is_ascii_uppercase()) {
                        facts.taint = Some(taint_letters(rest));
                    }
                } else if t.starts_with("Not tainted") {
                    facts.taint = Some(None);
                }
            }
        }
        facts
    }

    /// `0 UID: 0 PID: 123 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1 ...`
    fn read_cpu_line(&mut self, rest: &str) {
        self.cpu = leading_number(rest);
        self.pid = rest
            .find("PID: ")
            .and_then(|i| leading_number(&rest[i + "PID: ".len()..]));
        if let Some(i) = rest.find("Comm: ") {
            let after = &rest[i + "Comm: ".len()..];
            let end = [" Not tainted", " Tainted: "]
                .iter()
                .filter_map(|m| after.find(m))
                .min()
                .or_else(|| after.find(' '))
                .unwrap_or(after.len());
            let comm = after[..end].trim();
            if !comm.is_empty() {
                self.comm = Some(comm.to_owned());
            }
        }
        if self.taint.is_none() {
            if rest.contains(" Not tainted") {
                self.taint = Some(None);
            } else if let Some(i) = rest.find(" Tainted: ") {
                self.taint = Some(taint_letters(&rest[i + " Tainted: ".len()..]));
            }
        }
    }
}

/// A frame of fault injection's own stack dump.
fn is_fault_injection(f: &&Frame) -> bool {
    matches!(
        guilty::base_name(&f.function),
        "should_fail" | "should_failslab"
    )
}

/// `Call Trace:` and the other lines that start a stack in a report.
fn is_stack_start(t: &str) -> bool {
    t.starts_with("Call Trace")
        || t.starts_with("Call trace")
        || t.starts_with("Allocated by task")
        || t.starts_with("Freed by task")
        || (t.contains(" backtrace:") && !t.contains("stack backtrace:"))
}

/// Reads the first register dump of a report: it starts at a `RIP:` (or `EIP:`, `pc : `) line
/// and ends at the first line that holds no registers (a `Code:` line in between is part of it).
#[derive(Default)]
struct Registers {
    started: bool,
    done: bool,
}

impl Registers {
    fn read(&mut self, t: &str, out: &mut Vec<(String, String)>) {
        if self.done {
            return;
        }
        if !self.started {
            let starts = ["RIP:", "EIP:", "pc : ", "NIP:"]
                .iter()
                .any(|p| t.starts_with(p))
                && frame::parse_rip(t).is_some_and(|r| r != Rip::User || t.starts_with("RIP"))
                || t.starts_with("pc : ");
            if !starts {
                return;
            }
            self.started = true;
        }
        if t.starts_with("Code:") {
            return;
        }
        let pairs = register_pairs(t);
        if pairs.is_empty() {
            self.done = true;
            return;
        }
        out.extend(pairs);
    }
}

/// `RSP: 0018:ffffa9e0c04bfc68 EFLAGS: 00010246` is `[("RSP", "0018:ffffa9e0c04bfc68"),
/// ("EFLAGS", "00010246")]`; a `RIP:` line's value is the rest of the line. Empty when the line
/// is no register line.
fn register_pairs(t: &str) -> Vec<(String, String)> {
    let is_name = |w: &str| {
        !w.is_empty()
            && w.len() <= 8
            && w.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && w.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            || matches!(w, "knlGS" | "pc" | "lr" | "sp" | "pstate")
            || (w.len() <= 3
                && w.starts_with('x')
                && w[1..].bytes().all(|b| b.is_ascii_digit())
                && w.len() > 1)
    };
    for p in ["RIP:", "EIP:", "NIP:"] {
        if let Some(v) = t.strip_prefix(p) {
            return vec![(p[..p.len() - 1].to_owned(), v.trim().to_owned())];
        }
    }
    for p in ["pc : ", "lr : "] {
        if let Some(v) = t.strip_prefix(p) {
            return vec![(p[..2].to_owned(), v.trim().to_owned())];
        }
    }
    // `NAME: VALUE`, `NAME : VALUE` (arm64) or `NAME:VALUE` (`GS:ffff...`), nothing else.
    let tokens: Vec<&str> = t.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let tok = tokens[i];
        let (name, value, next) = if let Some(n) = tok.strip_suffix(':') {
            (n, tokens.get(i + 1).copied(), i + 2)
        } else if tokens.get(i + 1) == Some(&":") {
            (tok, tokens.get(i + 2).copied(), i + 3)
        } else if let Some((n, v)) = tok.split_once(':') {
            (n, Some(v), i + 1)
        } else {
            return Vec::new();
        };
        let Some(value) = value.filter(|v| v.bytes().next().is_some_and(|b| b.is_ascii_hexdigit()))
        else {
            return Vec::new();
        };
        if !is_name(name) {
            return Vec::new();
        }
        out.push((name.to_owned(), value.to_owned()));
        i = next;
    }
    out
}

/// `oops_mod(OE+) virtio_console [last unloaded: x]`
fn linked_modules(list: &str) -> Vec<LinkedModule> {
    let list = list.split(" [last unloaded").next().unwrap_or(list);
    list.split_whitespace()
        .filter_map(|tok| {
            let (name, marks) = match tok.split_once('(') {
                Some((n, m)) => (n, m.trim_end_matches(')')),
                None => (tok, ""),
            };
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            ok.then(|| LinkedModule {
                name: name.to_owned(),
                marks: marks.to_owned(),
            })
        })
        .collect()
}

/// Two frames at the same function of the same module.
fn same_place(a: &Frame, b: &Frame) -> bool {
    guilty::base_name(&a.function) == guilty::base_name(&b.function) && a.module == b.module
}

/// The first frame in a module marked `O` or `E` in `Modules linked in:`, else in any module;
/// reliable frames first.
fn user_frame(frames: &[Frame], modules: &[LinkedModule]) -> Option<usize> {
    let marked = |f: &Frame| {
        f.module.as_ref().is_some_and(|m| {
            modules
                .iter()
                .any(|l| &l.name == m && (l.has_mark('O') || l.has_mark('E')))
        })
    };
    let any = |f: &Frame| f.module.is_some();
    let tests: [&dyn Fn(&Frame) -> bool; 2] = [&marked, &any];
    tests.iter().find_map(|test| {
        frames
            .iter()
            .position(|f| f.reliable && test(f))
            .or_else(|| frames.iter().position(test))
    })
}

/// `G           OE      6.12.12-amd64 #1` is `G           OE`.
fn taint_letters(s: &str) -> Option<String> {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || *b == b' ')
        .count();
    let letters = s[..n].trim();
    (!letters.is_empty()).then(|| letters.to_owned())
}

fn leading_number(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..n].parse().ok()
}

/// CPU, PID and command from the header line itself, for reports without a `CPU:` line.
fn header_task(flavor: &Flavor, text: &str) -> (Option<u32>, Option<u32>, Option<String>) {
    match flavor {
        // WARNING: CPU: 1 PID: 140 at ...
        Flavor::Warning(_) => {
            let cpu = text
                .find("CPU: ")
                .and_then(|i| leading_number(&text[i + "CPU: ".len()..]));
            let pid = text
                .find("PID: ")
                .and_then(|i| leading_number(&text[i + "PID: ".len()..]));
            (cpu, pid, None)
        }
        // BUG: soft lockup - CPU#0 stuck for 22s! [insmod:123]
        Flavor::SoftLockup => {
            let cpu = text
                .find("CPU#")
                .and_then(|i| leading_number(&text[i + "CPU#".len()..]));
            let (pid, comm) = text
                .rfind('[')
                .and_then(|i| text[i + 1..].split(']').next())
                .and_then(|inner| inner.rsplit_once(':'))
                .map_or((None, None), |(comm, pid)| {
                    (pid.parse().ok(), Some(comm.to_owned()))
                });
            (cpu, pid, comm)
        }
        // INFO: task insmod:123 blocked for more than 120 seconds.
        Flavor::HungTask | Flavor::HungTaskTail => {
            let inner = text
                .find("INFO: task ")
                .map(|i| &text[i + "INFO: task ".len()..])
                .and_then(|r| r.find(" blocked").map(|j| &r[..j]));
            let (pid, comm) = inner
                .and_then(|inner| inner.rsplit_once(':'))
                .map_or((None, None), |(comm, pid)| {
                    (pid.parse().ok(), Some(comm.to_owned()))
                });
            (None, pid, comm)
        }
        _ => (None, None, None),
    }
}

/// What a Rust panic's header says.
#[derive(Debug, Default, PartialEq, Eq)]
struct RustPanic {
    /// The panic message (its first line).
    message: Option<String>,
    /// `FILE:LINE` of the `panic!` (the column dropped).
    source: Option<String>,
}

impl RustPanic {
    /// Reads `rust_kernel: panicked at FILE:LINE:COL:` and the message on the next line of the
    /// report (`body[1]`), or older Rust's `rust_kernel: panicked at 'MESSAGE', FILE:LINE:COL`.
    fn read(header_text: &str, body: &[Line]) -> RustPanic {
        let rest = header_text
            .find("panicked at ")
            .map_or("", |i| &header_text[i + "panicked at ".len()..])
            .trim();
        if let Some(quoted) = rest.strip_prefix('\'') {
            if let Some(i) = quoted.rfind("', ") {
                let message = quoted[..i].trim();
                return RustPanic {
                    message: (!message.is_empty()).then(|| message.to_owned()),
                    source: panic_source(quoted[i + 3..].trim()),
                };
            }
        }
        let (location, same_line) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let next = body.get(1).map(|l| l.msg.trim()).filter(|m| {
            !m.is_empty()
                && !m.contains("[ cut here ]")
                && header::detect(m).is_none()
                && !frame::is_trace_line(m)
        });
        let same_line = same_line.trim();
        let message = if same_line.is_empty() {
            next
        } else {
            Some(same_line)
        };
        RustPanic {
            message: message.map(str::to_owned),
            source: panic_source(location.trim_end_matches(':')),
        }
    }
}

/// `drivers/android/binder/node.rs:877:13` is `drivers/android/binder/node.rs:877`.
fn panic_source(location: &str) -> Option<String> {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = location.rsplitn(3, ':');
    let (last, middle, file) = (parts.next()?, parts.next(), parts.next());
    match (middle, file) {
        (Some(line), Some(file)) if number(line) && number(last) && !file.is_empty() => {
            Some(format!("{file}:{line}"))
        }
        (Some(file), _) if number(last) && !file.is_empty() && file.contains('.') => {
            let file = location.rsplit_once(':')?.0;
            Some(format!("{file}:{last}"))
        }
        _ => None,
    }
}

/// The title and culprit of a `Kernel panic - not syncing: MESSAGE` report.
fn panic_info(header_text: &str, candidates: &[&Frame]) -> PanicInfo {
    let message = header_text
        .strip_prefix("Kernel panic - not syncing")
        .unwrap_or(header_text)
        .trim_start_matches(':')
        .trim();
    let of =
        |g: Option<Guilty<'_>>| g.map(|g| (Some(g.frame.function.clone()), g.frame.module.clone()));
    let named = |g: &Option<Guilty<'_>>| {
        g.as_ref()
            .map_or_else(|| "corrupted".to_owned(), |g| g.name.clone())
    };
    let own = of(guilty::plain(candidates, &[]));
    let simple = |title: &str, consequence: bool| PanicInfo {
        title: title.to_owned(),
        needs_trace: !consequence,
        consequence,
        guilty: own.clone(),
    };
    const STACK_CHK: &[Pat] = &[Pat::Has("stack_chk")];
    if let Some(rest) = message.strip_prefix("stack-protector: Kernel stack is corrupted in: ") {
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len > 0 && matches!(rest.as_bytes().get(name_len), Some(b'+' | b'.')) {
            return PanicInfo {
                needs_trace: false,
                ..simple(
                    &format!("kernel panic: stack is corrupted in {}", &rest[..name_len]),
                    false,
                )
            };
        }
        let g = guilty::plain(candidates, STACK_CHK);
        return PanicInfo {
            title: format!("kernel panic: stack is corrupted in {}", named(&g)),
            needs_trace: true,
            consequence: false,
            guilty: of(g),
        };
    }
    if message.starts_with("corrupted stack end detected inside scheduler") {
        let g = guilty::stall(
            candidates,
            &[Pat::Has("schedule"), Pat::Has("retint_kernel")],
        );
        return PanicInfo {
            title: format!("kernel panic: corrupted stack end in {}", named(&g)),
            needs_trace: true,
            consequence: false,
            guilty: of(g),
        };
    }
    if message.starts_with("kernel stack overflow") {
        let g = guilty::stall(candidates, &[Pat::Has("bad_stack")]);
        return PanicInfo {
            title: format!("kernel stack overflow in {}", named(&g)),
            needs_trace: true,
            consequence: false,
            guilty: of(g),
        };
    }
    if message.starts_with("Attempted to kill init!") {
        return simple("kernel panic: Attempted to kill init!", false);
    }
    if message.starts_with("Couldn't open N_TTY ldisc") {
        return simple("kernel panic: Couldn't open N_TTY ldisc", false);
    }
    if message.starts_with("Fatal exception") {
        return simple("kernel panic: Fatal exception", true);
    }
    // arm64 says `Oops: Fatal exception`, after the oops it ends.
    let consequence = message.contains("Fatal exception");
    if message.contains("panic_on_warn set") {
        return simple("kernel panic: panic_on_warn set", true);
    }
    const CONSEQUENCES: &[&str] = &["hung_task: ", "softlockup: ", "hardlockup: ", "Hard LOCKUP"];
    let consequence = consequence || CONSEQUENCES.iter().any(|p| message.starts_with(p));
    PanicInfo {
        title: format!("kernel panic: {}", title::replace_dynamic(message)),
        needs_trace: !consequence,
        consequence,
        guilty: own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(msg: &str) -> Line {
        Line {
            index: 0,
            raw: msg.to_owned(),
            msg: msg.to_owned(),
            caller: None,
            stamped: true,
        }
    }

    #[test]
    fn rust_panic_headers() {
        let body = [
            line("rust_kernel: panicked at drivers/android/binder/node.rs:877:13:"),
            line("attempt to subtract with overflow"),
        ];
        assert_eq!(
            RustPanic::read(&body[0].msg, &body),
            RustPanic {
                message: Some("attempt to subtract with overflow".to_owned()),
                source: Some("drivers/android/binder/node.rs:877".to_owned()),
            }
        );
        let body = [
            line("rust_kernel: panicked at rust/kernel/lib.rs:12:5:"),
            line("------------[ cut here ]------------"),
        ];
        assert_eq!(
            RustPanic::read(&body[0].msg, &body),
            RustPanic {
                message: None,
                source: Some("rust/kernel/lib.rs:12".to_owned()),
            }
        );
        let old = "rust_kernel: panicked at 'explicit panic', samples/rust/rust_minimal.rs:30:9";
        assert_eq!(
            RustPanic::read(old, &[line(old)]),
            RustPanic {
                message: Some("explicit panic".to_owned()),
                source: Some("samples/rust/rust_minimal.rs:30".to_owned()),
            }
        );
        assert_eq!(panic_source("a.rs:7"), Some("a.rs:7".to_owned()));
        assert_eq!(panic_source("a.rs"), None);
        assert_eq!(panic_source("a.rs:x:1"), None);
        assert_eq!(panic_source(""), None);
    }
}
