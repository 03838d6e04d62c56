//! Report kinds beyond oopses, `BUG`s, `WARNING`s and panics: sanitizers (KASAN, KMSAN, KCSAN,
//! KFENCE, UBSAN), lockdep, RCU stalls, sleeping in atomic context, memory leaks and the other
//! headers syzkaller's `pkg/report/linux.go` knows, with its titles. Each header becomes an
//! [`Ext`]; [`title`] names the report from its lines with a [`Walk`].

use crate::guilty::Pat::{self, Has, Starts};
use crate::header::find_source;
use crate::stack::{self, Extractor, Found, Part, Walk};
use crate::title;
use crate::ReportKind;

/// A header of one of the kinds of this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ext {
    /// `BUG: KASAN: BUG in FUNC...`: `bug` is `use-after-free`, `slab-out-of-bounds`, ...
    Kasan { bug: String },
    /// `BUG: KASAN: double-free or invalid-free in FUNC`.
    KasanFree,
    /// `BUG: KASAN: BUG on address ...` (old kernels).
    KasanAddr { bug: String },
    /// `BUG: KMSAN: BUG in FUNC`.
    Kmsan { bug: String },
    /// `BUG: KCSAN: TEXT`.
    Kcsan { text: String },
    /// `BUG: KFENCE: WHAT in FUNC`: `use-after-free read`, `invalid free`, ...
    Kfence { what: String },
    /// `UBSAN: TEXT`.
    Ubsan { text: String },
    /// A lockdep report.
    Lockdep(Lock),
    /// `INFO: rcu_sched self-detected stall on CPU`.
    RcuStall,
    /// `INFO: task NAME:PID can't die for more than N seconds.`
    CantDie,
    /// `watchdog: Watchdog detected hard LOCKUP on cpu 1` (titled like a soft lockup).
    HardLockup,
    /// `BUG: TASK stack guard page was hit at ...`.
    StackGuard,
    /// `PANIC: double fault, error_code: 0x0`.
    DoubleFault,
    /// `BUG: sleeping function called from invalid context at FILE:LINE`.
    SleepingInAtomic,
    /// `BUG: scheduling while atomic: ...`.
    SchedulingWhileAtomic,
    /// `BUG: using OP() in preemptible [...] code: ...`.
    Preemptible { op: String },
    /// `BUG: spinlock lockup suspected on CPU#0, ...`: `what` is `spinlock lockup suspected`.
    Spinlock { what: String },
    /// `BUG: memory leak` (kmemleak).
    MemoryLeak,
    /// `BUG: Bad page state in process ...` / `BUG: Bad page cache in process ...`.
    BadPage { what: String },
    /// `INFO: trying to register non-static key.`
    NonStaticKey,
    /// `BUG: workqueue leaked lock or atomic: ...`, named by its `last function:` line.
    WorkqueueLeak,
    /// `BUG: Dentry ... still in use (N) [unmount of FS DEV]`.
    DentryInUse,
    /// arm/arm64: `Unable to handle kernel paging request at virtual address ...`.
    UnableToHandleArm { what: String },
    /// arm64 `Internal error: ...`, arm `Unhandled fault: ...`, `Alignment trap: ...`, `int3:`.
    ArmFault { what: &'static str },
    /// A report titled by its header alone.
    Fixed {
        title: String,
        kind: ReportKind,
        corrupted: bool,
    },
}

/// Lockdep's reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// `WARNING: possible circular locking dependency detected`.
    Circular,
    /// `WARNING: possible irq lock inversion dependency detected`.
    IrqInversion,
    /// `WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected`.
    SafeUnsafe,
    /// `WARNING: possible recursive locking detected`.
    Recursive,
    /// `WARNING: inconsistent lock state`.
    Inconsistent,
    /// `[ INFO: possible circular locking dependency detected ]` and the other 4.x spellings.
    OldDeadlock,
    /// `[ INFO: inconsistent lock state ]`.
    OldInconsistent,
    /// `WARNING: suspicious RCU usage` (`INFO:` on old kernels).
    SuspiciousRcu { info: bool },
    /// `WARNING: bad unlock balance detected!` (`BUG:` on old kernels).
    BadUnlock { bug: bool },
    /// `WARNING: held lock freed!`.
    HeldLockFreed { bug: bool },
    /// `WARNING: TASK/PID still has locks held!`.
    StillHasLocks { bug: bool },
    /// `WARNING: Nested lock was not taken`.
    NotTaken,
    /// `WARNING: lock held when returning to user space!`.
    ReturningToUser { bug: bool },
    /// `BUG: Invalid wait context` (titled as a locking bug).
    InvalidWait,
}

impl Ext {
    /// The report kind.
    pub fn kind(&self) -> ReportKind {
        match self {
            Ext::Kasan { .. } | Ext::KasanFree | Ext::KasanAddr { .. } => ReportKind::Kasan,
            Ext::Kmsan { .. } => ReportKind::Kmsan,
            Ext::Kcsan { .. } => ReportKind::Kcsan,
            Ext::Kfence { .. } => ReportKind::Kfence,
            Ext::Ubsan { .. } => ReportKind::Ubsan,
            Ext::Lockdep(_) | Ext::Preemptible { .. } | Ext::NonStaticKey => ReportKind::Lockdep,
            Ext::RcuStall => ReportKind::RcuStall,
            Ext::CantDie => ReportKind::HungTask,
            Ext::HardLockup => ReportKind::HardLockup,
            Ext::StackGuard => ReportKind::StackOverflow,
            Ext::DoubleFault => ReportKind::DoubleFault,
            Ext::SleepingInAtomic | Ext::SchedulingWhileAtomic => ReportKind::AtomicSleep,
            Ext::Spinlock { what } if what.contains("lockup") => ReportKind::HardLockup,
            Ext::Spinlock { .. } => ReportKind::Lockdep,
            Ext::MemoryLeak => ReportKind::MemoryLeak,
            Ext::BadPage { .. } | Ext::WorkqueueLeak | Ext::DentryInUse => ReportKind::Bug,
            Ext::UnableToHandleArm { .. } | Ext::ArmFault { .. } => ReportKind::Oops,
            Ext::Fixed { kind, .. } => *kind,
        }
    }

    /// How a report of this kind ends when no other report starts.
    pub fn ending(&self) -> Ending {
        match self {
            Ext::Kasan { .. }
            | Ext::KasanFree
            | Ext::KasanAddr { .. }
            | Ext::Kmsan { .. }
            | Ext::Kcsan { .. }
            | Ext::Kfence { .. }
            | Ext::Ubsan { .. } => Ending::Rule,
            Ext::UnableToHandleArm { .. } | Ext::ArmFault { .. } | Ext::DoubleFault => {
                Ending::Marker
            }
            Ext::MemoryLeak => Ending::Backtrace,
            Ext::Fixed { .. } | Ext::WorkqueueLeak | Ext::DentryInUse => Ending::Line,
            _ => Ending::Trace,
        }
    }

    /// Whether this header, inside another report, is part of it rather than a new report.
    pub fn continues_report(&self) -> bool {
        match self {
            Ext::DoubleFault => true,
            Ext::ArmFault { what } => *what == "Internal error",
            Ext::Fixed { title, .. } => title.starts_with("unregister_netdevice"),
            _ => false,
        }
    }

    /// Whether frames are printed right after the header, without a `Call Trace:` line.
    pub fn frames_follow_header(&self) -> bool {
        matches!(self, Ext::Kmsan { .. } | Ext::Kfence { .. })
    }
}

/// How a report ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// At a `=====` rule (sanitizers), or an end marker.
    Rule,
    /// At `---[ end trace`.
    Marker,
    /// With its call trace, like soft lockups.
    Trace,
    /// With its `backtrace:` (kmemleak).
    Backtrace,
    /// A one-line report: at the next line that is not part of it.
    Line,
}

/// A title and its culprit.
pub(crate) struct Titled {
    pub title: String,
    pub key: Option<stack::Key>,
    /// Why the report looks damaged.
    pub corrupted: Option<String>,
}

/// Finds the headers of this module in a console message: the position and the header.
pub(crate) fn detect(msg: &str) -> Option<(usize, Ext)> {
    let mut best: Option<(usize, Ext)> = None;
    let mut offer = |pos: usize, ext: Option<Ext>| {
        if let Some(ext) = ext {
            if best.as_ref().is_none_or(|(p, _)| pos < *p) {
                best = Some((pos, ext));
            }
        }
    };
    if let Some(pos) = msg.find("BUG:").filter(|_| !bug_ignored(msg)) {
        offer(pos, bug(&msg[pos..]));
    }
    if let Some(pos) = msg.find("WARNING:").filter(|_| !warning_ignored(msg)) {
        offer(pos, warning(&msg[pos..]));
    }
    if let Some(pos) = msg.find("INFO:").filter(|_| !info_ignored(msg)) {
        offer(pos, info(&msg[pos..]));
    }
    if let Some(pos) = msg.find("UBSAN:") {
        let text = msg[pos + "UBSAN:".len()..].trim().to_owned();
        offer(pos, Some(Ext::Ubsan { text }));
    }
    if let Some(pos) = msg.find("Watchdog detected hard LOCKUP on cpu") {
        offer(pos, Some(Ext::HardLockup));
    }
    if let Some(pos) = msg.find("PANIC: double fault") {
        offer(pos, Some(Ext::DoubleFault));
    }
    if let Some(pos) = msg.find("Unable to handle kernel ") {
        let rest = &msg[pos + "Unable to handle kernel ".len()..];
        let what = [
            "paging request",
            "NULL pointer dereference",
            "access to user memory",
        ]
        .into_iter()
        .find(|w| rest.starts_with(w));
        // `BUG: unable to handle kernel` (x86) is the oops header's; this is arm's.
        let x86 = msg[..pos].ends_with("BUG: ");
        offer(
            pos,
            what.filter(|_| !x86)
                .map(|w| Ext::UnableToHandleArm { what: w.to_owned() }),
        );
    }
    for (needle, what) in [
        ("Internal error:", "Internal error"),
        ("Unhandled fault:", "Unhandled fault"),
        ("Alignment trap:", "Alignment trap"),
        ("int3: ", "int3"),
    ] {
        if let Some(pos) = msg.find(needle) {
            offer(pos, Some(Ext::ArmFault { what }));
        }
    }
    if let Some(pos) = msg.find("unregister_netdevice: waiting for ") {
        let rest = &msg[pos..];
        offer(
            pos,
            rest.contains(" to become free").then(|| Ext::Fixed {
                title: "unregister_netdevice: waiting for DEV to become free".to_owned(),
                kind: ReportKind::Bug,
                corrupted: false,
            }),
        );
    }
    for (needle, title) in [
        (
            "VFS: Close: file count is 0",
            "VFS: Close: file count is zero (use-after-free)",
        ),
        (
            "VFS: Busy inodes after unmount",
            "VFS: Busy inodes after unmount (use-after-free)",
        ),
    ] {
        if let Some(pos) = msg.find(needle) {
            offer(
                pos,
                Some(Ext::Fixed {
                    title: title.to_owned(),
                    kind: ReportKind::Bug,
                    corrupted: false,
                }),
            );
        }
    }
    if let Some(pos) = msg.find("BUG kmalloc-") {
        offer(
            pos,
            msg[pos..]
                .contains(": Object already free")
                .then(|| Ext::Fixed {
                    title: "BUG: Object already free".to_owned(),
                    kind: ReportKind::Kasan,
                    corrupted: false,
                }),
        );
    }
    best
}

/// Lines with `BUG:` that are no reports (syzkaller's suppressions for `BUG:`).
fn bug_ignored(msg: &str) -> bool {
    msg.contains("DEBUG:")
        || msg.contains("xlog_status:")
        || msg.contains("BUG: no syscalls can create resource")
}

/// Lines with `WARNING:` that are no reports (syzkaller's suppressions for `WARNING:`).
pub(crate) fn warning_ignored(msg: &str) -> bool {
    const IGNORE: &[&str] = &[
        "WARNING: /etc/ssh/moduli does not exist",
        "WARNING: workqueue cpumask: online intersect > possible intersect",
        "WARNING: The mand mount option",
        "WARNING: the mand mount option",
        "WARNING: Unsupported flag value(s) of 0x%x in DT_FLAGS_1",
        "WARNING: Unprivileged eBPF is enabled with eIBRS",
        "WARNING: kernel not compiled with CPU_SRSO",
    ];
    if IGNORE.iter().any(|i| msg.contains(i)) {
        return true;
    }
    if msg.contains("WARNING: fbcon: Driver '")
        && msg.contains("' missed to adjust virtual screen size")
    {
        return true;
    }
    if msg
        .find("WARNING: See https")
        .is_some_and(|i| msg[i..].contains(" for mitigation options."))
    {
        return true;
    }
    // `EXT4-fs (loop0):`, `EXT4-FS:`
    if msg.contains("EXT4-fs") || msg.contains("EXT4-FS") {
        let i = msg.find("EXT4-").unwrap_or(0);
        let rest = &msg[i + "EXT4-fs".len().min(msg.len() - i)..];
        if rest.starts_with(':') || (rest.starts_with(" (") && rest.contains("):")) {
            return true;
        }
    }
    // `XFS (loop4): WARNING`
    if let Some(i) = msg.find("XFS (") {
        let rest = &msg[i + "XFS (".len()..];
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if n > 0 && rest[n..].starts_with("): WARNING") {
            return true;
        }
    }
    let lower = msg.to_ascii_lowercase();
    lower.find("warning: ").is_some_and(|i| {
        let rest = &lower[i..];
        rest.contains(" uses deprecated v2 capabilities")
            || rest.contains(" uses wireless extensions")
    })
}

/// Lines with `INFO:` that are no reports (syzkaller's suppressions for `INFO:`).
fn info_ignored(msg: &str) -> bool {
    const IGNORE: &[&str] = &[
        "INFO: lockdep is turned off",
        "INFO: Stall ended before state dump start",
        "INFO: NMI handler",
        "INFO: recovery required on readonly filesystem",
        "INFO: no syscalls can create resource",
        "rmt_storage:INFO:",
        "_INFO:",
    ];
    if IGNORE.iter().any(|i| msg.contains(i)) {
        return true;
    }
    if msg
        .find("INFO: sys_")
        .is_some_and(|i| msg[i..].contains(" is not present in /proc/kallsyms"))
    {
        return true;
    }
    ["handler", "interrupt"].iter().any(|w| {
        msg.find(w)
            .is_some_and(|i| msg[i..].contains("took too long"))
    })
}

fn fixed(title: &str, kind: ReportKind) -> Option<Ext> {
    Some(Ext::Fixed {
        title: title.to_owned(),
        kind,
        corrupted: false,
    })
}

/// The rest of the header line as the title (syzkaller's fallback when no format matches).
fn whole_line(text: &str, kind: ReportKind, corrupted: bool) -> Option<Ext> {
    Some(Ext::Fixed {
        title: title::replace_dynamic(text.trim_end()),
        kind,
        corrupted,
    })
}

/// `[a-z-]+` at the start.
fn word(s: &str) -> &str {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'-')
        .count();
    &s[..n]
}

/// A `BUG:` header (text starts at `BUG:`).
fn bug(text: &str) -> Option<Ext> {
    let rest = text["BUG:".len()..].trim_start();
    // Messages that are no bugs (syzkaller's ignores).
    if text.contains("BUG: no syscalls can create resource") {
        return None;
    }
    // The x86 oops headers and `BUG: soft lockup` are `header.rs`'s.
    const OOPS: &[&str] = &[
        "kernel NULL pointer dereference",
        "Kernel NULL pointer dereference",
        "unable to handle",
        "Unable to handle",
        "soft lockup",
    ];
    if OOPS.iter().any(|p| rest.starts_with(p)) {
        return None;
    }
    if let Some(r) = rest.strip_prefix("KASAN: ") {
        for free in [
            "double-free or invalid-free in ",
            "double-free in ",
            "invalid-free in ",
        ] {
            if r.starts_with(free) {
                return Some(Ext::KasanFree);
            }
        }
        let bug = word(r);
        if !bug.is_empty() && r[bug.len()..].starts_with(" on address") {
            return Some(Ext::KasanAddr {
                bug: bug.to_owned(),
            });
        }
        return Some(Ext::Kasan {
            bug: bug.to_owned(),
        });
    }
    if let Some(r) = rest.strip_prefix("KMSAN: ") {
        return Some(Ext::Kmsan {
            bug: word(r).to_owned(),
        });
    }
    if let Some(r) = rest.strip_prefix("KCSAN: ") {
        return Some(Ext::Kcsan {
            text: r.trim_end().to_owned(),
        });
    }
    if let Some(r) = rest.strip_prefix("KFENCE: ") {
        let what = r.split(" in ").next().unwrap_or("").trim().to_owned();
        return Some(Ext::Kfence { what });
    }
    if rest.starts_with("sleeping function called from invalid context") {
        return Some(if rest.contains(" at ") {
            Ext::SleepingInAtomic
        } else {
            Ext::Fixed {
                title: title::replace_dynamic(text.trim_end()),
                kind: ReportKind::AtomicSleep,
                corrupted: false,
            }
        });
    }
    if rest.starts_with("scheduling while atomic") {
        return Some(Ext::SchedulingWhileAtomic);
    }
    if rest.starts_with("memory leak") {
        return Some(Ext::MemoryLeak);
    }
    if let Some(r) = rest.strip_prefix("using ") {
        let n = r
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
            .count();
        if n > 0 && r[n..].starts_with("() in preemptible") {
            return Some(Ext::Preemptible {
                op: r[..n].to_owned(),
            });
        }
    }
    for lock in ["spinlock ", "rwlock "] {
        if let Some(r) = rest.strip_prefix(lock) {
            const WHAT: &[&str] = &[
                "lockup suspected",
                "already unlocked",
                "recursion",
                "cpu recursion",
                "bad magic",
                "wrong owner",
                "wrong CPU",
                "trylock failure on UP",
            ];
            if let Some(w) = WHAT.iter().find(|w| r.starts_with(*w)) {
                return Some(Ext::Spinlock {
                    what: format!("{lock}{w}"),
                });
            }
        }
    }
    if rest.contains("still has locks held!") {
        return Some(Ext::Lockdep(Lock::StillHasLocks { bug: true }));
    }
    if rest.starts_with("bad unlock balance detected!") {
        return Some(Ext::Lockdep(Lock::BadUnlock { bug: true }));
    }
    if rest.starts_with("held lock freed!") {
        return Some(Ext::Lockdep(Lock::HeldLockFreed { bug: true }));
    }
    if rest.starts_with("lock held when returning to user space") {
        return Some(Ext::Lockdep(Lock::ReturningToUser { bug: true }));
    }
    if rest.starts_with("Invalid wait context") {
        return Some(Ext::Lockdep(Lock::InvalidWait));
    }
    if rest.contains("stack guard page was hit at") {
        return Some(Ext::StackGuard);
    }
    if rest.starts_with("Bad rss-counter state") {
        return fixed("BUG: Bad rss-counter state", ReportKind::Bug);
    }
    if rest.starts_with("non-zero nr_ptes on freeing mm") {
        return fixed("BUG: non-zero nr_ptes on freeing mm", ReportKind::Bug);
    }
    if rest.starts_with("non-zero nr_pmds on freeing mm") {
        return fixed("BUG: non-zero nr_pmds on freeing mm", ReportKind::Bug);
    }
    if rest.starts_with("Dentry ") && rest.contains(" still in use") {
        return Some(Ext::DentryInUse);
    }
    for what in ["state", "cache"] {
        if rest.starts_with(&format!("Bad page {what}")) {
            return Some(Ext::BadPage {
                what: what.to_owned(),
            });
        }
    }
    if rest.starts_with("Bad page map") {
        return fixed("BUG: Bad page map", ReportKind::Bug);
    }
    if rest.starts_with("workqueue lockup") {
        return fixed("BUG: workqueue lockup", ReportKind::HardLockup);
    }
    if rest.starts_with("workqueue leaked lock or atomic") {
        return Some(Ext::WorkqueueLeak);
    }
    if rest.is_empty() {
        return fixed_corrupted("BUG: corrupted", ReportKind::Bug);
    }
    whole_line(text, ReportKind::Bug, false)
}

fn fixed_corrupted(title: &str, kind: ReportKind) -> Option<Ext> {
    Some(Ext::Fixed {
        title: title.to_owned(),
        kind,
        corrupted: true,
    })
}

/// A `WARNING:` header that is not a plain `WARNING: CPU: ... at file:line` (those are
/// `header.rs`'s).
pub(crate) fn warning(text: &str) -> Option<Ext> {
    let rest = text["WARNING:".len()..].trim_start();
    let lock = |l: Lock| Some(Ext::Lockdep(l));
    if rest.starts_with("possible circular locking dependency detected") {
        return lock(Lock::Circular);
    }
    if rest.starts_with("possible irq lock inversion dependency detected") {
        return lock(Lock::IrqInversion);
    }
    if rest.contains("-safe -> ") && rest.contains("-unsafe lock order detected") {
        return lock(Lock::SafeUnsafe);
    }
    if rest.starts_with("possible recursive locking detected") {
        return lock(Lock::Recursive);
    }
    if rest.starts_with("inconsistent lock state") {
        return lock(Lock::Inconsistent);
    }
    if rest.starts_with("suspicious RCU usage") {
        return lock(Lock::SuspiciousRcu { info: false });
    }
    if rest.starts_with("bad unlock balance detected!") {
        return lock(Lock::BadUnlock { bug: false });
    }
    if rest.starts_with("held lock freed!") {
        return lock(Lock::HeldLockFreed { bug: false });
    }
    if rest.contains("still has locks held!") {
        return lock(Lock::StillHasLocks { bug: false });
    }
    if rest.starts_with("Nested lock was not taken") {
        return lock(Lock::NotTaken);
    }
    if rest.starts_with("lock held when returning to user space") {
        return lock(Lock::ReturningToUser { bug: false });
    }
    if let Some(r) = rest.strip_prefix("kernel stack regs at ") {
        if let Some(i) = r.find(" has bad '") {
            let reg = r[i + " has bad '".len()..].split('\'').next().unwrap_or("");
            if r[i..].contains("' value") {
                return fixed(
                    &format!("WARNING: kernel stack regs has bad '{reg}' value"),
                    ReportKind::Warning,
                );
            }
        }
        if r.contains(" has bad ") {
            return fixed(
                "WARNING: kernel stack regs has bad value",
                ReportKind::Warning,
            );
        }
    }
    if rest.starts_with("kernel stack frame pointer at ") && rest.contains(" has bad value") {
        return fixed(
            "WARNING: kernel stack frame pointer has bad value",
            ReportKind::Warning,
        );
    }
    None
}

/// Whether a `WARNING:` line that no format titles is still a report (syzkaller titles it by
/// the line itself), rather than one of the messages that are no bugs.
pub(crate) fn warning_fallback(msg: &str, pos: usize) -> Option<Ext> {
    if warning_ignored(msg) {
        return None;
    }
    let text = &msg[pos..];
    let rest = text["WARNING:".len()..].trim();
    if rest.is_empty() {
        return fixed_corrupted("WARNING: corrupted", ReportKind::Warning);
    }
    whole_line(text, ReportKind::Warning, false)
}

/// An `INFO:` header.
fn info(text: &str) -> Option<Ext> {
    let rest = text["INFO:".len()..].trim_start();
    let lock = |l: Lock| Some(Ext::Lockdep(l));
    for p in [
        "possible circular locking dependency detected",
        "possible irq lock inversion dependency detected",
        "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
        "possible recursive locking detected",
    ] {
        if rest.starts_with(p) {
            return lock(Lock::OldDeadlock);
        }
    }
    if rest.starts_with("inconsistent lock state") {
        return lock(Lock::OldInconsistent);
    }
    if rest.starts_with("suspicious RCU usage") {
        return lock(Lock::SuspiciousRcu { info: true });
    }
    if rest.starts_with("trying to register non-static key") {
        return Some(Ext::NonStaticKey);
    }
    if is_rcu_stall(rest) {
        return Some(Ext::RcuStall);
    }
    if let Some(r) = rest.strip_prefix("task ") {
        if r.contains(" can't die for more than ") {
            return Some(Ext::CantDie);
        }
        // `blocked for more than` is `header.rs`'s (the task name may hold a newline).
        return None;
    }
    for what in ["Freed", "Allocated"] {
        if let Some(r) = rest.strip_prefix(what).and_then(|r| r.strip_prefix(" in ")) {
            return fixed_corrupted(
                &title::replace_dynamic(&format!("INFO: {what} in {}", r.trim_end())),
                ReportKind::Kasan,
            );
        }
    }
    if rest.is_empty() {
        return fixed_corrupted("INFO: corrupted", ReportKind::Bug);
    }
    whole_line(text, ReportKind::Bug, false)
}

/// `rcu_(preempt|sched|bh|tasks) (self-)?detected( expedited)? stall`
fn is_rcu_stall(rest: &str) -> bool {
    let Some(r) = rest.strip_prefix("rcu_") else {
        return false;
    };
    let Some(r) = ["preempt ", "sched ", "bh ", "tasks "]
        .iter()
        .find_map(|f| r.strip_prefix(f))
    else {
        return false;
    };
    let r = r.strip_prefix("self-").unwrap_or(r);
    let Some(r) = r.strip_prefix("detected") else {
        return false;
    };
    let r = r.strip_prefix(" expedited").unwrap_or(r);
    r.starts_with(" stall")
}

// ---------------------------------------------------------------------------------------------
// Walks.

use Part::{Capture, Find, Stack};

const CALL_TRACE: &[Part] = &[Find(stack::is_call_trace), Stack];
const RIP_CALL_TRACE: &[Part] = &[Capture(stack::rip_func), Find(stack::is_call_trace), Stack];

fn warning_rip(line: &str) -> Option<crate::Frame> {
    stack::rip_func(line).or_else(|| {
        // powerpc: `--- interrupt: 700 at f+0x1/0x2`
        let i = line.find("--- interrupt: ")?;
        let rest = &line[i + "--- interrupt: ".len()..];
        let at = rest.find(" at ")?;
        stack::func_at_start(&rest[at + 4..])
    })
}

/// syzkaller's `warningStackFmt`: the RIP line and the trace after it, else the call trace.
const WARNING_PARTS: &[Part] = &[Capture(warning_rip), Stack];

fn walk_warning(skip: &'static [Pat]) -> Walk {
    Walk::new(WARNING_PARTS).or(CALL_TRACE).skip(skip)
}

fn header_func(line: &str) -> Option<crate::Frame> {
    let i = line.find(" in ")?;
    stack::func_at_start(&line[i + 4..])
}

fn has_apic_timer(line: &str) -> bool {
    line.contains("apic_timer_interrupt")
}

fn is_irq_entry(line: &str) -> bool {
    line.contains("apic_timer_interrupt")
        || line.contains("Exception stack")
        || line.contains("el1h_64_irq")
}

fn is_leak_backtrace(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("backtrace:") || t.starts_with("backtrace (crc ")
}

fn is_uninit_created(line: &str) -> bool {
    (line.contains("Local variable ") && line.contains(" created at:"))
        || line.contains("Uninit was created at:")
}

fn is_page_last_allocated(line: &str) -> bool {
    line.contains("page last allocated")
}

fn is_which_became(line: &str) -> bool {
    line.find("which became ")
        .is_some_and(|i| line[i..].contains(" at:"))
}

const RCU_STALL: Walk = Walk::new(&[Find(has_apic_timer), Capture(stack::rip_func), Stack])
    .or(&[Find(is_irq_entry), Stack])
    .skip(&[Has("apic_timer_interrupt"), Has("rcu")])
    .extractor(Extractor::Stall);

const KASAN: Walk = Walk::new(&[Capture(header_func), Find(stack::is_call_trace), Stack]).skip(&[
    Has("kernel_fault"),
    Has("tag_check"),
    Has("mem_abort"),
    Starts("el1_"),
    Starts("el1h_"),
]);

const KASAN_FREE: Walk = Walk::new(&[Capture(header_func), Find(stack::is_call_trace), Stack])
    .skip(&[Has("slab_"), Has("kfree"), Has("vunmap"), Has("vfree")]);

const KMSAN: Walk = Walk::new(&[Stack, Find(is_uninit_created), Stack]).skip(&[
    Has("alloc_skb"),
    Has("netlink_ack"),
    Has("netlink_rcv_skb"),
    Pat::Ends("_encrypt"),
    Starts("crypto_"),
    Starts("cipher_"),
    Starts("drbg_"),
    Starts("rng_"),
]);

const KMSAN_USB: Walk = Walk::new(&[Stack, Find(is_uninit_created), Stack]).skip(&[
    Has("alloc_skb"),
    Has("usb_submit_urb"),
    Has("usb_start_wait_urb"),
    Has("usb_bulk_msg"),
    Has("usb_interrupt_msg"),
    Has("usb_control_msg"),
]);

const KFENCE: Walk = Walk::new(&[Capture(header_func), Stack]);

const UBSAN: Walk = Walk::new(CALL_TRACE).skip(&[Has("ubsan"), Has("overflow")]);

const LEAK: Walk = Walk::new(&[Find(is_leak_backtrace), Stack]).skip(&[
    Has("kmemleak"),
    Has("mmap"),
    Has("kmem"),
    Has("slab"),
    Has("alloc"),
    Has("create_object"),
    Has("idr_get"),
    Has("list_lru_init"),
    Has("kasprintf"),
    Has("kvasprintf"),
    Has("pcpu_create"),
    Has("strdup"),
    Has("strndup"),
    Has("memdup"),
]);

const CIRCULAR: Walk =
    Walk::new(&[Capture(stack::at_func), Capture(stack::at_func), Stack]).skip(&[
        Has("process_one_work"),
        Has("flush_workqueue"),
        Has("drain_workqueue"),
        Has("destroy_workqueue"),
    ]);

/// Finds the culprit and titles the report. `lines` are the report's messages from the header
/// on (the first is the header text itself).
pub(crate) fn title(ext: &Ext, lines: &[&str]) -> Titled {
    let header = lines.first().copied().unwrap_or("");
    let with = |prefix: &str, found: Found| -> Titled {
        let key = found.first().cloned();
        let name = key.as_ref().map_or("corrupted", |k| k.name.as_str());
        Titled {
            title: format!("{prefix} in {name}"),
            corrupted: (!found.ok || key.is_none())
                .then(|| "no frame to name the report by".to_owned()),
            key,
        }
    };
    let walk = |w: &Walk| stack::walk(lines, w);
    match ext {
        Ext::Kasan { bug } => {
            let access = lines.iter().skip(1).find_map(|l| kasan_access(l));
            match access {
                Some(access) if !bug.is_empty() => {
                    with(&format!("KASAN: {bug} {access}"), walk(&KASAN))
                }
                _ => {
                    let text = header.trim_start_matches("BUG: ").trim_end();
                    Titled {
                        title: title::replace_dynamic(text),
                        key: None,
                        corrupted: Some("the access is not described".to_owned()),
                    }
                }
            }
        }
        Ext::KasanFree => with("KASAN: invalid-free", walk(&KASAN_FREE)),
        Ext::KasanAddr { bug } => {
            let access = lines.iter().skip(1).find_map(|l| {
                ["Read of size ", "Write of size "]
                    .iter()
                    .find(|p| l.contains(*p))
                    .map(|p| &p[..p.find(' ').unwrap_or(0)])
            });
            Titled {
                title: match access {
                    Some(a) => format!("KASAN: {bug} {a}"),
                    None => format!("KASAN: {bug}"),
                },
                key: None,
                corrupted: access
                    .is_none()
                    .then(|| "the access is not described".to_owned()),
            }
        }
        Ext::Kmsan { bug } => {
            let usb = bug == "kernel-usb-infoleak";
            with(
                &format!("KMSAN: {bug}"),
                walk(if usb { &KMSAN_USB } else { &KMSAN }),
            )
        }
        Ext::Kcsan { text } => Titled {
            title: title::replace_dynamic(&format!("KCSAN: {text}")),
            key: stack::walk(lines, &Walk::new(&[Stack])).first().cloned(),
            corrupted: None,
        },
        Ext::Kfence { what } => {
            let prefix = match what.as_str() {
                "invalid free" => "KFENCE: invalid free".to_owned(),
                w => format!("KFENCE: {w}"),
            };
            with(&prefix, walk(&KFENCE))
        }
        Ext::Ubsan { text } => {
            let lower_type = if text.starts_with("Undefined behaviour in") {
                Some("undefined-behaviour".to_owned())
            } else {
                text.find(" in").map(|i| text[..i].to_owned())
            };
            match lower_type {
                Some(t) => with(&format!("UBSAN: {t}"), walk(&UBSAN)),
                None => Titled {
                    title: title::replace_dynamic(&format!("UBSAN: {text}")),
                    key: None,
                    corrupted: None,
                },
            }
        }
        Ext::Lockdep(l) => lockdep(*l, lines, header),
        Ext::RcuStall => with("INFO: rcu detected stall", walk(&RCU_STALL)),
        Ext::CantDie => with(
            "INFO: task can't die",
            walk(&Walk::new(CALL_TRACE).skip(&[Has("schedule")])),
        ),
        Ext::HardLockup => with(
            "BUG: hard lockup",
            walk(&Walk::new(RIP_CALL_TRACE).extractor(Extractor::Stall)),
        ),
        Ext::StackGuard => with(
            "BUG: stack guard page was hit",
            walk(&Walk::new(RIP_CALL_TRACE).extractor(Extractor::Stall)),
        ),
        Ext::DoubleFault => with(
            "PANIC: double fault",
            walk(&Walk::new(&[Capture(stack::rip_func)])),
        ),
        Ext::SleepingInAtomic => with(
            "BUG: sleeping function called from invalid context",
            walk(&Walk::new(CALL_TRACE)),
        ),
        Ext::SchedulingWhileAtomic => with(
            "BUG: scheduling while atomic",
            walk(&Walk::new(CALL_TRACE).skip(&[Has("schedule")])),
        ),
        Ext::Preemptible { op } => with(
            &format!("BUG: using {op}() in preemptible code"),
            walk(&Walk::new(CALL_TRACE).skip(&[
                Has("dump_stack"),
                Has("preemption"),
                Has("preempt"),
                Has("debug_"),
                Has("processor_id"),
                Has("this_cpu"),
            ])),
        ),
        Ext::Spinlock { what } => with(
            &format!("BUG: {what}"),
            walk(&Walk::new(CALL_TRACE).skip(&[Has("spin_"), Has("_lock"), Has("_unlock")])),
        ),
        Ext::MemoryLeak => with("memory leak", walk(&LEAK)),
        Ext::BadPage { what } => with(
            &format!("BUG: Bad page {what}"),
            walk(&Walk::new(&[Find(is_page_last_allocated), Stack]).skip(&[
                Pat::Test(bad_page_skip),
                Has("free_unref"),
                Has("truncate_inode_pages"),
                Has("page_frag_free"),
                Has("alloc"),
                Has("vmap"),
                Has("page_owner"),
            ])),
        ),
        Ext::NonStaticKey => with(
            "INFO: trying to register non-static key",
            walk(&Walk::new(CALL_TRACE).skip(&[Has("stack"), Has("lock"), Has("IRQ")])),
        ),
        Ext::WorkqueueLeak => {
            let f = lines.iter().skip(1).find_map(|l| {
                let i = l.find("last function: ")?;
                let name: String = l[i + "last function: ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            });
            Titled {
                title: format!(
                    "BUG: workqueue leaked lock or atomic in {}",
                    f.as_deref().unwrap_or("corrupted")
                ),
                key: None,
                corrupted: f.is_none().then(|| "no last function".to_owned()),
            }
        }
        Ext::DentryInUse => {
            let what = header
                .find(" [")
                .and_then(|i| header[i + 2..].split(' ').next())
                .unwrap_or("corrupted");
            Titled {
                title: format!("BUG: Dentry still in use in {what}"),
                key: None,
                corrupted: None,
            }
        }
        Ext::UnableToHandleArm { what } => with(
            &format!("BUG: unable to handle kernel {what}"),
            walk(&Walk::new(RIP_CALL_TRACE)),
        ),
        Ext::ArmFault { what } => with(what, walk(&Walk::new(RIP_CALL_TRACE))),
        Ext::Fixed {
            title, corrupted, ..
        } => Titled {
            title: title.clone(),
            key: None,
            corrupted: corrupted.then(|| "the report format is marked as corrupted".to_owned()),
        },
    }
}

/// `(free|put|get|update|release)_page` and `^_*folio`.
fn bad_page_skip(name: &str) -> bool {
    [
        "free_page",
        "put_page",
        "get_page",
        "update_page",
        "release_page",
    ]
    .iter()
    .any(|p| name.contains(p))
        || name.trim_start_matches('_').starts_with("folio")
}

/// `Read of size N`, `Write at addr ...`: the access of a KASAN report.
fn kasan_access(line: &str) -> Option<&'static str> {
    for (word, access) in [("Read ", "Read"), ("Write ", "Write")] {
        for (i, _) in line.match_indices(word) {
            let rest = &line[i + word.len()..];
            let rest = rest
                .strip_prefix("of size ")
                .or_else(|| rest.strip_prefix("at addr "));
            if rest.is_some_and(|r| r.bytes().next().is_some_and(|b| b.is_ascii_hexdigit())) {
                return Some(access);
            }
        }
    }
    None
}

/// The first line after `after` that satisfies `then`, searched from line 1 on; the function
/// it names.
fn after_then(
    lines: &[&str],
    after: fn(&str) -> bool,
    then: fn(&str) -> Option<crate::Frame>,
) -> Option<crate::Frame> {
    let start = lines.iter().skip(1).position(|l| after(l))? + 1;
    lines[start..].iter().find_map(|l| then(l))
}

fn lockdep(l: Lock, lines: &[&str], header: &str) -> Titled {
    let walk = |w: &Walk| stack::walk(lines, w);
    let named = |prefix: &str, f: Option<crate::Frame>| {
        let name = f
            .as_ref()
            .map(|f| crate::guilty::title_name(&f.function).to_owned());
        Titled {
            title: format!("{prefix} in {}", name.as_deref().unwrap_or("corrupted")),
            corrupted: f
                .is_none()
                .then(|| "no frame to name the report by".to_owned()),
            key: f.map(|frame| stack::Key {
                name: name.unwrap_or_default(),
                frame,
            }),
        }
    };
    let with = |prefix: &str, found: Found| {
        let key = found.first().cloned();
        let name = key.as_ref().map_or("corrupted", |k| k.name.as_str());
        Titled {
            title: format!("{prefix} in {name}"),
            corrupted: (!found.ok || key.is_none())
                .then(|| "no frame to name the report by".to_owned()),
            key,
        }
    };
    let trying = |s: &str| s.contains("is trying to acquire");
    match l {
        Lock::Circular => {
            if !lines.iter().any(|s| trying(s)) {
                return named("possible deadlock", None);
            }
            with("possible deadlock", walk(&CIRCULAR))
        }
        Lock::IrqInversion => named(
            "possible deadlock",
            after_then(
                lines,
                |s| s.contains("just changed the state of lock"),
                stack::at_func,
            ),
        ),
        Lock::SafeUnsafe => with(
            "possible deadlock",
            walk(&Walk::new(&[Find(is_which_became), Stack])),
        ),
        Lock::Recursive => named(
            "possible deadlock",
            after_then(
                lines,
                |s| s.contains("is trying to acquire lock"),
                stack::at_func,
            ),
        ),
        Lock::OldDeadlock => {
            let anchor: fn(&str) -> bool = if header.contains("irq lock inversion") {
                |s| s.contains("just changed the state of lock")
            } else {
                |s| s.contains("is trying to acquire")
            };
            named("possible deadlock", after_then(lines, anchor, pc_at_func))
        }
        Lock::Inconsistent => {
            if after_then(lines, |s| s.contains("takes"), stack::at_func).is_none() {
                return named("inconsistent lock state", None);
            }
            with("inconsistent lock state", walk(&Walk::new(CALL_TRACE)))
        }
        Lock::OldInconsistent => named(
            "inconsistent lock state",
            after_then(lines, |s| s.contains("takes"), pc_at_func),
        ),
        Lock::SuspiciousRcu { info } => {
            let prefix = if info {
                "INFO: suspicious RCU usage"
            } else {
                "WARNING: suspicious RCU usage"
            };
            if !lines.iter().skip(1).any(|s| find_source(s).is_some()) {
                return named(prefix, None);
            }
            with(
                prefix,
                walk(&Walk::new(CALL_TRACE).skip(&[Has("rcu"), Has("kmem"), Has("slab")])),
            )
        }
        Lock::BadUnlock { bug } => with(
            if bug {
                "BUG: bad unlock balance"
            } else {
                "WARNING: bad unlock balance"
            },
            walk(&Walk::new(&[
                Capture(stack::pc_func),
                Find(stack::is_call_trace),
                Stack,
            ])),
        ),
        Lock::HeldLockFreed { bug } => named(
            if bug {
                "BUG: held lock freed"
            } else {
                "WARNING: held lock freed"
            },
            lines[1.min(lines.len())..]
                .iter()
                .find_map(|s| stack::at_func(s)),
        ),
        Lock::StillHasLocks { bug } => named(
            if bug {
                "BUG: still has locks held"
            } else {
                "WARNING: still has locks held"
            },
            lines[1.min(lines.len())..].iter().find_map(|s| {
                if bug {
                    stack::pc_func(s)
                } else {
                    stack::at_func_no_pc(s)
                }
            }),
        ),
        Lock::NotTaken => with(
            "WARNING: nested lock was not taken",
            walk(&walk_warning(&[])),
        ),
        Lock::ReturningToUser { bug } => named(
            if bug {
                "BUG: lock held when returning to user space"
            } else {
                "WARNING: lock held when returning to user space"
            },
            after_then(
                lines,
                |s| s.contains("leaving the kernel with locks still held"),
                stack::at_func,
            ),
        ),
        Lock::InvalidWait => with(
            "WARNING: locking bug",
            walk(&Walk::new(CALL_TRACE).skip(&[Has("lock_sock"), Has("release_sock")])),
        ),
    }
}

/// `at: [<ffffffff81234567>] f+0x1/0x2` with the address required (4.x lockdep).
fn pc_at_func(line: &str) -> Option<crate::Frame> {
    let i = line.find("at: ")?;
    let rest = &line[i + 4..];
    let after = stack::skip_pcs(rest);
    (after.len() < rest.len()).then(|| stack::func_at_start(after))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(msg: &str) -> Option<Ext> {
        detect(msg).map(|(_, e)| e)
    }

    #[test]
    fn headers() {
        assert_eq!(
            ext("BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2"),
            Some(Ext::Kasan {
                bug: "slab-out-of-bounds".to_owned()
            })
        );
        assert_eq!(
            ext("BUG: KASAN: double-free or invalid-free in kfree+0x1/0x2"),
            Some(Ext::KasanFree)
        );
        assert_eq!(
            ext("INFO: rcu_preempt self-detected stall on CPU"),
            Some(Ext::RcuStall)
        );
        assert_eq!(
            ext("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"),
            Some(Ext::RcuStall)
        );
        assert_eq!(ext("INFO: lockdep is turned off."), None);
        assert_eq!(
            ext("BUG: kernel NULL pointer dereference, address: 0"),
            None
        );
        assert_eq!(
            ext("WARNING: possible circular locking dependency detected"),
            Some(Ext::Lockdep(Lock::Circular))
        );
        assert_eq!(
            ext("BUG: using smp_processor_id() in preemptible [00000000] code: a/1"),
            Some(Ext::Preemptible {
                op: "smp_processor_id".to_owned()
            })
        );
    }
}
