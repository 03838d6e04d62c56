//! Crash reports in kernel console logs: find them, classify them, title them.
//!
//! Parsers take text and return values; they never open files or print.
//!
//! [`Scanner`] reads a console line by line and hands out each report as soon as it is
//! complete; [`parse_reports`] runs it over a whole log. Detected (x86_64, Linux 4.x to 6.x
//! formats, and arm/arm64 oopses): oopses (NULL pointer dereference, paging request, general
//! protection fault, divide error, invalid opcode, stack segment), `kernel BUG at`, `WARNING:`,
//! `Kernel panic - not syncing`, soft and hard lockups, hung tasks, RCU stalls, KASAN, KFENCE,
//! KMSAN, KCSAN and UBSAN reports, lockdep (possible deadlocks, inconsistent lock state,
//! suspicious RCU usage, bad unlock balance, ...), sleeping in atomic context, kmemleak's
//! memory leaks, stack overflows, double faults, Rust panics and the other `BUG:`/`INFO:`
//! reports syzkaller knows ([`ReportKind`]). Rust (and plain C++) symbols are demangled as
//! frames are parsed ([`Frame::function`], [`Frame::symbol`]). Titles follow syzkaller's
//! conventions (`BUG: unable to handle kernel NULL pointer dereference in my_oops_init`,
//! `WARNING in warn_init`, `KASAN: slab-use-after-free Read in f`, `possible deadlock in f`,
//! `INFO: rcu detected stall in f`, `kernel panic: boom`, `attempt to subtract with overflow in
//! <rust_binder::process::Process>::update_ref`); the guilty frame skips reporting and
//! unwinding plumbing as syzkaller does, and never skips a frame in a module (Rust's panic
//! plumbing and a compiler's `__cfi_` copies excepted).
//!
//! Each report also carries what a module author looks at: the register dump, the `Code:`
//! line, the decoded taint flags, the `Modules linked in:` list, and the indexes of the guilty
//! frame and of the first frame in the module under test ([`CrashReport`]).
#![deny(missing_docs)]

mod analysis;
mod console;
mod ext;
mod frame;
mod guilty;
mod header;
pub mod kmemleak;
mod report;
mod scanner;
mod stack;
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    /// An oops: NULL dereference, paging request, general protection fault, invalid opcode, ...
    /// (the default, for [`CrashReport::default`]).
    #[default]
    Oops,
    /// `kernel BUG at file:line`, and other `BUG:` reports of no more specific kind (bad page
    /// state, spinlock lockup, workqueue lockup, ...).
    Bug,
    /// `WARNING: CPU: ... at file:line func+off/size`.
    Warning,
    /// `Kernel panic - not syncing: ...`.
    Panic,
    /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`.
    SoftLockup,
    /// `INFO: task NAME:PID blocked for more than N seconds.` (and `can't die`).
    HungTask,
    /// `BUG: KASAN: use-after-free in f` and the other KASAN reports.
    Kasan,
    /// `BUG: KFENCE: use-after-free read in f` and the other KFENCE reports.
    Kfence,
    /// `BUG: KMSAN: uninit-value in f`, `BUG: KMSAN: kernel-infoleak in f`.
    Kmsan,
    /// `BUG: KCSAN: data-race in f / g`.
    Kcsan,
    /// `UBSAN: shift-out-of-bounds in file:line` and the other UBSAN reports.
    Ubsan,
    /// lockdep: possible deadlock, inconsistent lock state, suspicious RCU usage, bad unlock
    /// balance, held lock freed, locks held when returning to user space, ...
    Lockdep,
    /// `INFO: rcu_preempt detected stalls on CPUs/tasks`.
    RcuStall,
    /// `NMI watchdog: Watchdog detected hard LOCKUP on cpu N`.
    HardLockup,
    /// `BUG: sleeping function called from invalid context`, `BUG: scheduling while atomic`.
    AtomicSleep,
    /// `BUG: memory leak` (kmemleak).
    MemoryLeak,
    /// `kernel BUG at lib/list_debug.c`, `list_add corruption`: a corrupted list.
    ListCorruption,
    /// `refcount_t: underflow; use-after-free.` (a `WARNING` in lib/refcount.c).
    Refcount,
    /// `BUG: stack guard page was hit`, `kernel stack overflow`.
    StackOverflow,
    /// `PANIC: double fault`.
    DoubleFault,
    /// `rust_kernel: panicked at FILE:LINE:COL:` and its message: a Rust `panic!` (an overflow,
    /// an `unwrap()` on `None`, an index out of bounds, ...), with the `kernel BUG at
    /// rust/helpers/bug.c` oops that follows it read as part of the same report.
    RustPanic,
}

/// How bad a report is for the task (and the machine) that printed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The kernel warned and went on: the task is alive.
    Warning,
    /// The task was killed, hangs, or memory was accessed out of bounds: the kernel caught a
    /// crash (an oops, a `BUG`, a lockup, a sanitizer's invalid access).
    Crash,
    /// The kernel panicked: the machine is gone.
    Panic,
}

impl ReportKind {
    /// Every kind, in declaration order.
    pub const ALL: [ReportKind; 21] = [
        ReportKind::Oops,
        ReportKind::Bug,
        ReportKind::Warning,
        ReportKind::Panic,
        ReportKind::SoftLockup,
        ReportKind::HungTask,
        ReportKind::Kasan,
        ReportKind::Kfence,
        ReportKind::Kmsan,
        ReportKind::Kcsan,
        ReportKind::Ubsan,
        ReportKind::Lockdep,
        ReportKind::RcuStall,
        ReportKind::HardLockup,
        ReportKind::AtomicSleep,
        ReportKind::MemoryLeak,
        ReportKind::ListCorruption,
        ReportKind::Refcount,
        ReportKind::StackOverflow,
        ReportKind::DoubleFault,
        ReportKind::RustPanic,
    ];
}

impl ReportKind {
    /// The kebab-case name used in JSON and specs (`soft-lockup`).
    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Oops => "oops",
            ReportKind::Bug => "bug",
            ReportKind::Warning => "warning",
            ReportKind::Panic => "panic",
            ReportKind::SoftLockup => "soft-lockup",
            ReportKind::HungTask => "hung-task",
            ReportKind::Kasan => "kasan",
            ReportKind::Kfence => "kfence",
            ReportKind::Kmsan => "kmsan",
            ReportKind::Kcsan => "kcsan",
            ReportKind::Ubsan => "ubsan",
            ReportKind::Lockdep => "lockdep",
            ReportKind::RcuStall => "rcu-stall",
            ReportKind::HardLockup => "hard-lockup",
            ReportKind::AtomicSleep => "atomic-sleep",
            ReportKind::MemoryLeak => "memory-leak",
            ReportKind::ListCorruption => "list-corruption",
            ReportKind::Refcount => "refcount",
            ReportKind::StackOverflow => "stack-overflow",
            ReportKind::DoubleFault => "double-fault",
            ReportKind::RustPanic => "rust-panic",
        }
    }

    /// How bad a report of this kind is: [`Severity::Warning`] for reports after which the
    /// task goes on (`WARNING`, lockdep, refcount, UBSAN, KCSAN data races, sleeping in atomic
    /// context, memory leaks); [`Severity::Panic`] for a panic; [`Severity::Crash`] for
    /// everything else: oopses, `BUG`s, Rust panics (the task is killed, the kernel goes on),
    /// lockups, stalls, hung tasks, and the invalid accesses KASAN, KFENCE and KMSAN catch
    /// before they corrupt memory or leak it.
    pub fn severity(self) -> Severity {
        match self {
            ReportKind::Panic => Severity::Panic,
            ReportKind::Warning
            | ReportKind::Lockdep
            | ReportKind::Refcount
            | ReportKind::Ubsan
            | ReportKind::Kcsan
            | ReportKind::AtomicSleep
            | ReportKind::MemoryLeak => Severity::Warning,
            ReportKind::Oops
            | ReportKind::Bug
            | ReportKind::SoftLockup
            | ReportKind::HungTask
            | ReportKind::Kasan
            | ReportKind::Kfence
            | ReportKind::Kmsan
            | ReportKind::RcuStall
            | ReportKind::HardLockup
            | ReportKind::ListCorruption
            | ReportKind::StackOverflow
            | ReportKind::DoubleFault
            | ReportKind::RustPanic => Severity::Crash,
        }
    }
}

/// One taint flag of the kernel, decoded from a taint string (`G           OE`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaintFlag {
    /// The letter the kernel prints (`O`).
    pub letter: char,
    /// The kernel's name of the flag (`OOT_MODULE`, as in `Tainted: [O]=OOT_MODULE`).
    pub name: String,
}

/// The kernel's taint flags: letter and name (include/linux/panic.h, kernel/panic.c).
const TAINT_FLAGS: &[(char, &str)] = &[
    ('P', "PROPRIETARY_MODULE"),
    ('F', "FORCED_MODULE"),
    ('S', "CPU_OUT_OF_SPEC"),
    ('R', "FORCED_RMMOD"),
    ('M', "MACHINE_CHECK"),
    ('B', "BAD_PAGE"),
    ('U', "USER"),
    ('D', "DIE"),
    ('A', "OVERRIDDEN_ACPI_TABLE"),
    ('W', "WARN"),
    ('C', "CRAP"),
    ('I', "FIRMWARE_WORKAROUND"),
    ('O', "OOT_MODULE"),
    ('E', "UNSIGNED_MODULE"),
    ('L', "SOFTLOCKUP"),
    ('K', "LIVEPATCH"),
    ('X', "AUX"),
    ('T', "RANDSTRUCT"),
    ('N', "TEST"),
];

impl TaintFlag {
    /// The flag a taint letter stands for; `None` for `G` (no proprietary module) and
    /// anything that is no taint letter.
    pub fn from_letter(letter: char) -> Option<TaintFlag> {
        TAINT_FLAGS
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|(l, n)| TaintFlag {
                letter: *l,
                name: (*n).to_owned(),
            })
    }

    /// Decodes a taint string as the kernel prints it (`G    B   W  OE`, or the letters of
    /// `Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE`): its flags in the kernel's order.
    pub fn decode(taint: &str) -> Vec<TaintFlag> {
        TAINT_FLAGS
            .iter()
            .filter(|(l, _)| taint.contains(*l))
            .filter_map(|(l, _)| TaintFlag::from_letter(*l))
            .collect()
    }
}

/// One module of a report's `Modules linked in:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkedModule {
    /// The module name (`oops_mod`).
    pub name: String,
    /// What the kernel printed in parentheses after the name, `""` when nothing: taint letters
    /// of the module (`O` out-of-tree, `E` unsigned, `P` proprietary, ...), then `+` while the
    /// module is loading or `-` while it is unloading (`OE+`).
    pub marks: String,
}

impl LinkedModule {
    /// Whether the module was still loading (its init function running).
    pub fn loading(&self) -> bool {
        self.marks.contains('+')
    }

    /// Whether the module was unloading (its exit function running).
    pub fn unloading(&self) -> bool {
        self.marks.contains('-')
    }

    /// Whether the module carries this taint letter (`O`, `E`, ...).
    pub fn has_mark(&self, letter: char) -> bool {
        letter.is_ascii_uppercase() && self.marks.contains(letter)
    }
}

/// One call-trace frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Function name as printed, demangled where it was mangled: Rust v0 (`_RNv...`) and
    /// legacy (`_ZN...17h<hash>E`) symbols in rustc's alternate form, without the hash
    /// (`<rust_binder::node::Node>::update_refcount_locked`), plain C++ functions without
    /// their parameters (`_Z8fakeNameiii` is `fakeName`). For a compiler's copy of a mangled
    /// function (`__cfi__RNv...`, `__pfx__RNv...`) the prefix is dropped too; such a frame is
    /// never guilty.
    pub function: String,
    /// The symbol as printed when it differs from [`Frame::function`] (a mangled name), for
    /// a symbolizer to look up; `None` when the name was printed as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
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

/// A stack a report prints besides its call trace: KASAN's `Allocated by task N:` and
/// `Freed by task N:`, where the object was allocated and freed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledStack {
    /// The label as printed, without its colon (`Allocated by task 25`).
    pub label: String,
    /// The frames, innermost first.
    pub frames: Vec<Frame>,
    /// The function of its first frame in a module (the module's call to `kmalloc` or
    /// `kfree`), once symbolized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// That frame's line in the module's own sources, once symbolized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One crash report found in a log.
///
/// Fields are added over time: code outside this crate that builds a report should end its
/// struct literal with `..CrashReport::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// `file:line` of the guilty frame when debug info allows; for a Rust panic, the location
    /// of its `panicked at FILE:LINE:COL` line (without the column), which is authoritative
    /// (it may lie in a function inlined into the guilty one).
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
    /// The register dump of the report's first `RIP:` block (`RIP`, `RSP`, `EFLAGS`, `RAX`, ...,
    /// `CR2`), name and value as printed (`("RSP", "0018:ffffa9e0c04bfc68")`).
    #[serde(default)]
    pub registers: Vec<(String, String)>,
    /// The first `Code:` line's text after `Code: ` (`48 89 ... <c7> 04 ...`, or `Unable to
    /// access opcode bytes at 0x...`).
    #[serde(default)]
    pub code: Option<String>,
    /// The flags of [`CrashReport::taint`], decoded.
    #[serde(default)]
    pub taint_flags: Vec<TaintFlag>,
    /// The modules of the `Modules linked in:` line, in the order printed.
    #[serde(default)]
    pub modules_linked: Vec<LinkedModule>,
    /// Index in [`CrashReport::frames`] of the guilty frame (the one the title names, chosen
    /// as syzkaller does, a module frame first), when it is one of the frames.
    #[serde(default)]
    pub guilty_frame: Option<usize>,
    /// Index in [`CrashReport::frames`] of the first frame in a module marked `O` or `E` in
    /// `Modules linked in:` (out-of-tree, unsigned: the module under test), else of the first
    /// frame in any module (reliable frames before `? ` guesses): where a module author looks.
    #[serde(default)]
    pub user_frame: Option<usize>,
    /// What symbolization noticed (a stale module build, a module file not found), one line each.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The source lines around [`CrashReport::source`], once symbolized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<SourceContext>,
    /// The faulting code disassembled, once analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disassembly: Option<Disassembly>,
    /// The other stacks the report prints (KASAN's allocation and free stacks), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<LabelledStack>,
}
