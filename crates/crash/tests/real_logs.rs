//! Real console logs of the project's failure-mode modules (`tests/modules/*`), recorded in the
//! VM on Debian's 6.12 kernel (`tests/logs/NAME.log`): each report's kind, syzkaller-style title,
//! guilty function and module, and the frame a module author looks at.

use kmodlab_crash::{parse_reports, ReportKind};

fn log(name: &str) -> String {
    let path = format!("{}/tests/logs/{name}.log", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn each_failure_kind_is_titled_and_blamed_on_the_module() {
    use ReportKind::*;
    let cases: &[(&str, ReportKind, &str, &str, &str)] = &[
        (
            "divide-error",
            Oops,
            "divide error in divide_error_init",
            "divide_error_init",
            "divide_error",
        ),
        (
            "gpf",
            Oops,
            "general protection fault in gpf_init",
            "gpf_init",
            "gpf",
        ),
        (
            "hung-task",
            HungTask,
            "INFO: task hung in hung_task_init",
            "hung_task_init",
            "hung_task",
        ),
        (
            "invalid-opcode",
            Oops,
            "invalid opcode in invalid_opcode_init",
            "invalid_opcode_init",
            "invalid_opcode",
        ),
        (
            "kfence-oob",
            Kfence,
            "KFENCE: out-of-bounds read in kfence_oob_init",
            "kfence_oob_init",
            "kfence_oob",
        ),
        (
            "list-corruption",
            ListCorruption,
            "BUG: corrupted list in list_corruption_init",
            "list_corruption_init",
            "list_corruption",
        ),
        (
            "paging-request",
            Oops,
            "BUG: unable to handle kernel paging request in paging_request_init",
            "paging_request_init",
            "paging_request",
        ),
        (
            "rcu-stall",
            RcuStall,
            "INFO: rcu detected stall in rcu_stall_init",
            "rcu_stall_init",
            "rcu_stall",
        ),
        (
            "refcount",
            Refcount,
            "WARNING: refcount bug in refcount_init",
            "refcount_init",
            "refcount",
        ),
        (
            "soft-lockup",
            SoftLockup,
            "BUG: soft lockup in soft_lockup_init",
            "soft_lockup_init",
            "soft_lockup",
        ),
        (
            "stack-overflow",
            StackOverflow,
            "BUG: stack guard page was hit in recurse",
            "recurse",
            "stack_overflow",
        ),
    ];
    for &(name, kind, title, function, module) in cases {
        let reports = parse_reports(&log(name));
        let r = reports
            .first()
            .unwrap_or_else(|| panic!("{name}: no report"));
        assert_eq!(r.kind, kind, "{name}");
        assert_eq!(r.title, title, "{name}");
        assert_eq!(r.function.as_deref(), Some(function), "{name}");
        assert_eq!(r.module.as_deref(), Some(module), "{name}");
        assert!(!r.corrupted, "{name}: {:?}", r.corrupted_reason);
        let guilty = &r.frames[r.guilty_frame.expect("a guilty frame")];
        assert_eq!(guilty.module.as_deref(), Some(module), "{name}");
        let user = &r.frames[r.user_frame.expect("a frame in the module")];
        assert_eq!(user.module.as_deref(), Some(module), "{name}");
        // Where the report lists the loaded modules, the module's out-of-tree mark is read.
        if r.text.contains("Modules linked in:") {
            assert!(
                r.modules_linked
                    .iter()
                    .any(|m| m.name == module && m.has_mark('O')),
                "{name}: out-of-tree mark in Modules linked in: {:?}",
                r.modules_linked
            );
        }
        if r.taint.is_some() {
            assert!(r.taint_flags.iter().any(|f| f.letter == 'O'), "{name}");
        }
    }
}

#[test]
fn oopses_keep_registers_code_and_the_rip_frame() {
    for name in ["divide-error", "gpf", "invalid-opcode", "paging-request"] {
        let r = &parse_reports(&log(name))[0];
        assert!(r.frames[0].rip, "{name}: the RIP frame comes first");
        assert!(r.frames[1..].iter().all(|f| !f.rip), "{name}");
        assert!(
            r.registers.iter().any(|(n, _)| n == "RAX"),
            "{name}: {:?}",
            r.registers
        );
        let code = r
            .code
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no Code: line"));
        assert!(
            code.contains('<') || code.starts_with("Unable to access opcode bytes"),
            "{name}: {code}"
        );
    }
}

#[test]
fn a_stack_overflow_ends_in_a_panic_and_a_hung_task_repeats() {
    let reports = parse_reports(&log("stack-overflow"));
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1].kind, ReportKind::Panic);
    assert_eq!(reports[1].title, "kernel panic: Fatal exception");
    let hung = parse_reports(&log("hung-task"));
    assert_eq!(hung.len(), 2, "reported at 2 s and again at 4 s");
    assert!(hung.iter().all(|r| r.kind == ReportKind::HungTask));
}
