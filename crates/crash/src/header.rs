//! The first line of a report: what starts one, of which kind, and how it is titled.

use crate::ext::{self, Ext};
use crate::guilty::Pat::{self, Has, Starts};
use crate::ReportKind;

/// What a report header says, precisely enough to title the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `BUG: kernel NULL pointer dereference, address: ...` (and older spellings).
    NullDeref,
    /// `BUG: unable to handle page fault for address: ...` / `... kernel paging request at ...`.
    PagingRequest,
    /// `BUG: unable to handle kernel` with the rest of the line lost.
    UnableToHandle,
    /// `general protection fault, ...`
    GeneralProtection,
    /// `divide error: 0000 [#1] ...`
    DivideError,
    /// `invalid opcode: 0000 [#1] ...` without a `kernel BUG at` line before it.
    InvalidOpcode,
    /// `stack segment: 0000 [#1] ...`
    StackSegment,
    /// `kernel BUG at file:line!`
    KernelBug,
    /// `kernel BUG at lib/list_debug.c:...`
    ListCorruption,
    /// `kernel BUG at mm/usercopy.c:...`
    BugUsercopy,
    /// `WARNING: CPU: 0 PID: 1 at file:line func+off/size [mod]`
    Warning(WarningFlavor),
    /// `Kernel panic - not syncing: MESSAGE`
    Panic,
    /// `rust_kernel: panicked at FILE:LINE:COL:` (its message on the next line), or older
    /// Rust's `rust_kernel: panicked at 'MESSAGE', FILE:LINE:COL`.
    RustPanic,
    /// `watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [comm:pid]`
    SoftLockup,
    /// `INFO: task comm:pid blocked for more than 120 seconds.`
    HungTask,
    /// `...:pid blocked for more than 120 seconds.` whose `INFO: task` is on the line before
    /// (the task name held a newline); becomes [`Flavor::HungTask`] once that line is found.
    HungTaskTail,
    /// The other kinds: sanitizers, lockdep, RCU stalls, ... (`ext.rs`).
    Ext(Ext),
}

/// Warnings from well-known checkers get their own titles (syzkaller's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WarningFlavor {
    /// A plain `WARN_ON`.
    Plain,
    /// lib/debugobjects.c
    Odebug,
    /// mm/usercopy.c
    Usercopy,
    /// lib/kobject.c
    Kobject,
    /// fs/proc/generic.c
    ProcRegistration,
    /// lib/refcount.c
    Refcount,
    /// kernel/locking/lockdep.c
    Locking,
    /// mm/ with a kmalloc function
    Kmalloc,
    /// mm/vmalloc.c in __vmalloc_node
    ZeroSizeVmalloc,
    /// usb_submit_urb
    UsbSubmitUrb,
}

/// A header found in a console message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// What it says.
    pub flavor: Flavor,
    /// Where in the message it starts.
    pub pos: usize,
}

impl Flavor {
    /// The report kind.
    pub fn kind(&self) -> ReportKind {
        match self {
            Flavor::NullDeref
            | Flavor::PagingRequest
            | Flavor::UnableToHandle
            | Flavor::GeneralProtection
            | Flavor::DivideError
            | Flavor::InvalidOpcode
            | Flavor::StackSegment => ReportKind::Oops,
            Flavor::KernelBug | Flavor::BugUsercopy => ReportKind::Bug,
            Flavor::ListCorruption => ReportKind::ListCorruption,
            Flavor::Warning(WarningFlavor::Refcount) => ReportKind::Refcount,
            Flavor::Warning(_) => ReportKind::Warning,
            Flavor::Panic => ReportKind::Panic,
            Flavor::RustPanic => ReportKind::RustPanic,
            Flavor::SoftLockup => ReportKind::SoftLockup,
            Flavor::HungTask | Flavor::HungTaskTail => ReportKind::HungTask,
            Flavor::Ext(e) => e.kind(),
        }
    }

    /// Whether the title names a function (`... in FUNC`).
    pub fn names_function(&self) -> bool {
        !matches!(self, Flavor::UnableToHandle | Flavor::Panic)
    }

    /// The title, given the guilty function's name (`corrupted` when there is none).
    pub fn title(&self, func: &str) -> String {
        match self {
            Flavor::NullDeref => {
                format!("BUG: unable to handle kernel NULL pointer dereference in {func}")
            }
            Flavor::PagingRequest => {
                format!("BUG: unable to handle kernel paging request in {func}")
            }
            Flavor::UnableToHandle => "BUG: unable to handle kernel".to_owned(),
            Flavor::GeneralProtection => format!("general protection fault in {func}"),
            Flavor::DivideError => format!("divide error in {func}"),
            Flavor::InvalidOpcode => format!("invalid opcode in {func}"),
            Flavor::StackSegment => format!("stack segment fault in {func}"),
            Flavor::KernelBug => format!("kernel BUG in {func}"),
            Flavor::ListCorruption => format!("BUG: corrupted list in {func}"),
            Flavor::BugUsercopy => format!("BUG: bad usercopy in {func}"),
            Flavor::Warning(w) => match w {
                WarningFlavor::Plain => format!("WARNING in {func}"),
                WarningFlavor::Odebug => format!("WARNING: ODEBUG bug in {func}"),
                WarningFlavor::Usercopy => format!("WARNING: bad usercopy in {func}"),
                WarningFlavor::Kobject => format!("WARNING: kobject bug in {func}"),
                WarningFlavor::ProcRegistration => {
                    format!("WARNING: proc registration bug in {func}")
                }
                WarningFlavor::Refcount => format!("WARNING: refcount bug in {func}"),
                WarningFlavor::Locking => format!("WARNING: locking bug in {func}"),
                WarningFlavor::Kmalloc => format!("WARNING: kmalloc bug in {func}"),
                WarningFlavor::ZeroSizeVmalloc => format!("WARNING: zero-size vmalloc in {func}"),
                WarningFlavor::UsbSubmitUrb => format!("WARNING in {func}/usb_submit_urb"),
            },
            // Panic titles come from the message; see `report.rs`.
            Flavor::Panic => format!("kernel panic: {func}"),
            // Rust panics are titled `MESSAGE in FUNC`; see `report.rs`.
            Flavor::RustPanic => format!("Rust panic in {func}"),
            Flavor::SoftLockup => format!("BUG: soft lockup in {func}"),
            Flavor::HungTask | Flavor::HungTaskTail => format!("INFO: task hung in {func}"),
            // Titled by `ext::title`.
            Flavor::Ext(_) => func.to_owned(),
        }
    }

    /// Extra frames to look past for this flavor.
    pub fn extra_skips(&self) -> &'static [Pat] {
        match self {
            Flavor::KernelBug => &[Starts("skb_")],
            Flavor::BugUsercopy | Flavor::Warning(WarningFlavor::Usercopy) => {
                &[Has("usercopy"), Has("__check")]
            }
            Flavor::Warning(WarningFlavor::Odebug) => &[
                Has("debug_"),
                Has("rcu"),
                Has("hrtimer_"),
                Has("timer_"),
                Has("work_"),
                Has("percpu_"),
                Has("vunmap"),
                Has("vfree"),
                Has("__free_"),
                Has("debug_check"),
                Has("kobject_"),
            ],
            Flavor::Warning(WarningFlavor::Kobject) => &[Has("kobject_")],
            Flavor::Warning(WarningFlavor::ProcRegistration) => &[Has("proc_")],
            Flavor::Warning(WarningFlavor::Refcount) => &[Has("refcount"), Has("kobject_")],
            Flavor::Warning(WarningFlavor::Locking) => &[Has("lock_sock"), Has("release_sock")],
            Flavor::Warning(WarningFlavor::Kmalloc) => {
                &[Has("kmalloc"), Has("krealloc"), Has("slab"), Has("kmem")]
            }
            Flavor::Warning(WarningFlavor::UsbSubmitUrb) => &[
                Has("usb_submit_urb"),
                Has("usb_start_wait_urb"),
                Has("usb_bulk_msg"),
                Has("usb_interrupt_msg"),
                Has("usb_control_msg"),
            ],
            _ => &[],
        }
    }

    /// Whether the `RIP:` line names the culprit before the call trace does.
    pub fn uses_rip(&self) -> bool {
        !matches!(
            self,
            Flavor::Panic
                | Flavor::HungTask
                | Flavor::HungTaskTail
                | Flavor::ListCorruption
                | Flavor::BugUsercopy
        )
    }
}

/// Finds a report header in a console message; the earliest one wins.
pub(crate) fn detect(msg: &str) -> Option<Header> {
    // Cheap pre-filter: every header holds one of these.
    if ![
        "BUG",
        "fault",
        "error",
        "opcode",
        "segment",
        "WARNING",
        "panic",
        "blocked",
        "INFO",
        "UBSAN",
        "PANIC",
        "Unable",
        "trap",
        "int3",
        "unregister_netdevice",
        "VFS:",
        "LOCKUP",
    ]
    .iter()
    .any(|k| msg.contains(k))
    {
        return None;
    }
    /// A header text and what the line from there on says.
    type Classify = fn(&str) -> Option<Flavor>;
    const NEEDLES: &[(&str, Classify)] = &[
        ("BUG: kernel NULL pointer dereference", |_| {
            Some(Flavor::NullDeref)
        }),
        ("BUG: Kernel NULL pointer dereference", |_| {
            Some(Flavor::NullDeref)
        }),
        (
            "BUG: unable to handle kernel NULL pointer dereference",
            |_| Some(Flavor::NullDeref),
        ),
        ("BUG: unable to handle page fault for address", |_| {
            Some(Flavor::PagingRequest)
        }),
        ("BUG: unable to handle kernel paging request", |_| {
            Some(Flavor::PagingRequest)
        }),
        ("BUG: Unable to handle kernel data access", |_| {
            Some(Flavor::PagingRequest)
        }),
        ("BUG: unable to handle kernel", |_| {
            Some(Flavor::UnableToHandle)
        }),
        ("BUG: Unable to handle kernel", |_| {
            Some(Flavor::UnableToHandle)
        }),
        ("general protection fault", general_protection),
        ("divide error:", divide_error),
        ("divide_error:", divide_error),
        ("invalid opcode:", |_| Some(Flavor::InvalidOpcode)),
        ("stack segment: ", |_| Some(Flavor::StackSegment)),
        ("kernel BUG at ", kernel_bug),
        ("WARNING:", |t| {
            warning(t).filter(|_| !ext::warning_ignored(t))
        }),
        ("Kernel panic - not syncing", |_| Some(Flavor::Panic)),
        ("rust_kernel: panicked at ", |_| Some(Flavor::RustPanic)),
        ("BUG: soft lockup", |_| Some(Flavor::SoftLockup)),
        ("INFO: task ", hung_task),
        (" blocked for more than ", |_| Some(Flavor::HungTaskTail)),
    ];
    let mut best: Option<Header> = None;
    for (needle, classify) in NEEDLES {
        let Some(pos) = msg.find(needle) else {
            continue;
        };
        if best.as_ref().is_some_and(|b| b.pos <= pos) {
            continue;
        }
        if let Some(flavor) = classify(&msg[pos..]) {
            best = Some(Header { flavor, pos });
        }
    }
    // A hung-task tail only counts when no `INFO: task` is on the same line.
    if let Some(h) = &best {
        if h.flavor == Flavor::HungTaskTail && msg.contains("INFO: task") {
            return None;
        }
    }
    if let Some((pos, e)) = ext::detect(msg) {
        if best.as_ref().is_none_or(|b| pos < b.pos) {
            best = Some(Header {
                flavor: Flavor::Ext(e),
                pos,
            });
        }
    }
    // A `WARNING:` no format titles is titled by its own text, as syzkaller does.
    if let Some(pos) = msg.find("WARNING:") {
        if best.as_ref().is_none_or(|b| pos < b.pos) {
            if let Some(e) = ext::warning_fallback(msg, pos) {
                best = Some(Header {
                    flavor: Flavor::Ext(e),
                    pos,
                });
            }
        }
    }
    best
}

/// Whether a message starts a kind of report this crate does not title (KASAN, lockdep, RCU
/// stalls, other `BUG:` lines): such a line ends the report being collected, as in syzkaller.
pub(crate) fn interrupts(msg: &str) -> bool {
    const OTHERS: &[&str] = &[
        "BUG: ",
        "UBSAN: ",
        "INFO: rcu",
        "WARNING: possible ",
        "WARNING: inconsistent lock state",
        "WARNING: suspicious RCU usage",
        // Not bugs, but they print a stack trace in the middle of the report.
        "vmalloc: allocation failure:",
        "FAULT_INJECTION: forcing a failure",
        "FAULT_FLAG_ALLOW_RETRY missing",
    ];
    let bytes = msg.as_bytes();
    OTHERS.iter().any(|needle| {
        msg.match_indices(needle)
            .any(|(i, _)| i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
    })
}

/// `traps: a.out[123] general protection fault ip:... error:0 in a.out[...]` is user space.
fn general_protection(text: &str) -> Option<Flavor> {
    let user = text.find(" error:").is_some_and(|i| {
        let rest = &text[i + " error:".len()..];
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        n > 0 && rest[n..].starts_with(" in ")
    });
    (!user).then_some(Flavor::GeneralProtection)
}

/// `divide error: 0000 [#1] ...`: an error code follows (`divide_error: dividing by 0` is a
/// module named `divide_error` talking).
fn divide_error(text: &str) -> Option<Flavor> {
    let rest = text["divide error:".len()..].trim_start();
    let code = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    (code >= 4).then_some(Flavor::DivideError)
}

fn kernel_bug(text: &str) -> Option<Flavor> {
    let path = &text["kernel BUG at ".len()..];
    Some(if path.starts_with("mm/usercopy.c") {
        Flavor::BugUsercopy
    } else if path.starts_with("lib/list_debug.c") {
        Flavor::ListCorruption
    } else {
        Flavor::KernelBug
    })
}

fn hung_task(text: &str) -> Option<Flavor> {
    (text.contains(" blocked for more than ")
        || text.contains(" blocked in I/O wait for more than "))
    .then_some(Flavor::HungTask)
}

/// `WARNING: CPU: 0 PID: 1 at file.c:12 f+0x1/0x2`, `WARNING: at file.c:12 f()`,
/// `WARNING: file.c:12 at f+0x1/0x2, CPU#0: ...`: a warning has a `file:line`.
fn warning(text: &str) -> Option<Flavor> {
    let rest = &text["WARNING:".len()..];
    let (src, after) = find_source(rest)?;
    let func = after.split_whitespace().next().unwrap_or("");
    let func = func.split(['+', '(']).next().unwrap_or("");
    let flavor = if src.contains("lib/debugobjects.c") {
        WarningFlavor::Odebug
    } else if src.contains("mm/usercopy.c") {
        WarningFlavor::Usercopy
    } else if src.contains("lib/kobject.c") {
        WarningFlavor::Kobject
    } else if src.contains("fs/proc/generic.c") {
        WarningFlavor::ProcRegistration
    } else if src.contains("lib/refcount.c") {
        WarningFlavor::Refcount
    } else if src.contains("kernel/locking/lockdep.c") && after.contains("lock_") {
        WarningFlavor::Locking
    } else if src.contains("mm/") && is_kmalloc(func) {
        WarningFlavor::Kmalloc
    } else if src.contains("mm/vmalloc.c") && func.starts_with("__vmalloc_node") {
        WarningFlavor::ZeroSizeVmalloc
    } else if after.contains(" usb_submit_urb") || func.starts_with("usb_submit_urb") {
        WarningFlavor::UsbSubmitUrb
    } else {
        WarningFlavor::Plain
    };
    Some(Flavor::Warning(flavor))
}

/// syzkaller's ` k?.?malloc`.
fn is_kmalloc(func: &str) -> bool {
    let f = func.strip_prefix('k').unwrap_or(func);
    f.starts_with("malloc") || f.get(1..).is_some_and(|r| r.starts_with("malloc"))
}

/// The first `path/file.ext:line` token and what follows it.
pub(crate) fn find_source(text: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for token in text.split(' ') {
        let start = offset;
        offset += token.len() + 1;
        if is_source(token) {
            let after = text.get(start + token.len()..).unwrap_or("");
            return Some((token, after.trim_start()));
        }
    }
    None
}

/// `[a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+`
fn is_source(token: &str) -> bool {
    let token = token.trim_end_matches([',', ':', '!']);
    let Some((path, line)) = token.rsplit_once(':') else {
        return false;
    };
    let Some((_, ext)) = path.rsplit_once('.') else {
        return false;
    };
    !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && !ext.is_empty()
        && ext.bytes().all(|b| b.is_ascii_lowercase())
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(msg: &str) -> Option<Flavor> {
        detect(msg).map(|h| h.flavor)
    }

    #[test]
    fn headers() {
        assert_eq!(
            flavor("BUG: kernel NULL pointer dereference, address: 0000000000000000"),
            Some(Flavor::NullDeref)
        );
        assert_eq!(
            flavor("BUG: unable to handle page fault for address: ffffffffc0a17000"),
            Some(Flavor::PagingRequest)
        );
        assert_eq!(
            flavor("BUG: unable to handle kernel "),
            Some(Flavor::UnableToHandle)
        );
        assert_eq!(
            flavor("Oops: general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1] PREEMPT SMP KASAN NOPTI"),
            Some(Flavor::GeneralProtection)
        );
        assert_eq!(
            flavor("traps: a.out[1] general protection fault ip:4004 sp:7ff error:0 in a.out[400000+1000]"),
            None
        );
        assert_eq!(
            flavor("Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI"),
            Some(Flavor::DivideError)
        );
        assert_eq!(
            flavor("Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"),
            Some(Flavor::InvalidOpcode)
        );
        assert_eq!(
            flavor("kernel BUG at mm/slub.c:123!"),
            Some(Flavor::KernelBug)
        );
        assert_eq!(
            flavor("kernel BUG at lib/list_debug.c:62!"),
            Some(Flavor::ListCorruption)
        );
        assert_eq!(
            flavor("WARNING: CPU: 0 PID: 123 at drivers/foo.c:12 func+0x12/0x30 [mod]"),
            Some(Flavor::Warning(WarningFlavor::Plain))
        );
        assert_eq!(
            flavor(
                "WARNING: CPU: 1 PID: 9 at lib/refcount.c:25 refcount_warn_saturate+0x13e/0x1a0"
            ),
            Some(Flavor::Warning(WarningFlavor::Refcount))
        );
        assert_eq!(
            flavor("WARNING: CPU: 1 PID: 9 at mm/page_alloc.c:4700 kmalloc_large+0x1/0x2"),
            Some(Flavor::Warning(WarningFlavor::Kmalloc))
        );
        assert_eq!(
            flavor("WARNING: /etc/ssh/moduli does not exist, using fixed modulus"),
            None
        );
        assert_eq!(
            flavor("WARNING: possible circular locking dependency detected"),
            Some(Flavor::Ext(Ext::Lockdep(ext::Lock::Circular)))
        );
        assert_eq!(
            flavor("Kernel panic - not syncing: boom"),
            Some(Flavor::Panic)
        );
        assert_eq!(
            flavor("rust_kernel: panicked at drivers/android/binder/node.rs:877:13:"),
            Some(Flavor::RustPanic)
        );
        assert_eq!(
            flavor("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:123]"),
            Some(Flavor::SoftLockup)
        );
        assert_eq!(
            flavor("INFO: task insmod:123 blocked for more than 120 seconds."),
            Some(Flavor::HungTask)
        );
        assert_eq!(
            flavor("x:18088 blocked for more than 143 seconds."),
            Some(Flavor::HungTaskTail)
        );
        assert_eq!(flavor("INFO: task hung"), None);
        assert_eq!(flavor("hello world"), None);
        assert_eq!(flavor(""), None);
    }

    #[test]
    fn other_reports() {
        assert!(interrupts("BUG: KASAN: use-after-free in foo+0x1/0x2"));
        assert!(interrupts(
            "rcu: INFO: rcu_preempt self-detected stall on CPU"
        ));
        assert!(!interrupts(
            "ODEBUG: free active (active state 0) object type: timer_list"
        ));
        assert!(!interrupts("Modules linked in: oops_mod(OE+)"));
    }

    #[test]
    fn earliest_header_wins() {
        let h = detect("kernel BUG at fs/x.c:1! invalid opcode: 0000").unwrap();
        assert_eq!(h.flavor, Flavor::KernelBug);
        assert_eq!(h.pos, 0);
    }

    #[test]
    fn sources() {
        assert_eq!(
            find_source("CPU: 0 PID: 1 at fs/x.c:12 f+0x1/0x2"),
            Some(("fs/x.c:12", "f+0x1/0x2"))
        );
        assert_eq!(find_source("no source here: 12"), None);
    }
}
