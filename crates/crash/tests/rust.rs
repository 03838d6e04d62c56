//! Crashes of Rust kernel modules: mangled symbols are demangled in frames and titles, and a
//! Rust `panic!` (`rust_kernel: panicked at FILE:LINE:COL:`, its message, then the `BUG()` oops
//! it ends in) is one report titled `MESSAGE in FUNC`, as syzkaller titles it.
//!
//! The logs are written after Debian 6.12's console output for the lab's C modules
//! (`tests/logs/`) and the Rust panics of syzkaller's corpus (Android's rust_binder and
//! ashmem_rust); the module names and symbol hashes are made up.

use kmodlab_crash::{parse_reports, CrashReport, ReportKind, Scanner, Severity};

/// A loadable Rust module whose init subtracts with overflow (overflow checks on).
const PANIC_LOG: &str = r"[   42.118233] rust_panic_mod: loading out-of-tree module taints kernel.
[   42.118876] rust_panic_mod: module verification failed: signature and/or required key missing - tainting kernel
[   42.120311] rust_kernel: panicked at /home/lab/rust_panic_mod/rust_panic_mod.rs:21:17:
[   42.120311] attempt to subtract with overflow
[   42.121580] ------------[ cut here ]------------
[   42.121894] kernel BUG at rust/helpers/bug.c:7!
[   42.122240] Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[   42.122611] CPU: 1 UID: 0 PID: 873 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1
[   42.123187] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   42.123491] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[   42.124010] RIP: 0010:rust_helper_BUG+0x8/0x10
[   42.124317] Code: cc cc cc cc cc 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 00 b8 8d 71 4c 30 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 55 48 89 e5 <0f> 0b 66 0f 1f 44 00 00 b8 c7 b5 05 bc 90 90 90 90 90 90 90 90 90
[   42.125502] RSP: 0018:ffffa3e4c0a6fb58 EFLAGS: 00010246
[   42.125811] RAX: 0000000000000061 RBX: ffffa3e4c0a6fc08 RCX: 0000000000000000
[   42.126132] RDX: 0000000000000000 RSI: ffff8e2f3ec1b500 RDI: ffff8e2f3ec1b500
[   42.126450] RBP: ffffa3e4c0a6fb58 R08: 0000000000000000 R09: ffffa3e4c0a6f9e8
[   42.126771] R10: ffffa3e4c0a6f9e0 R11: ffffffffa4ad4448 R12: ffffffffc09f2050
[   42.127090] R13: ffffa3e4c0a6fc28 R14: 0000000000000000 R15: ffff8e2f01a8a3c0
[   42.127411] FS:  00007f5c6a7e4740(0000) GS:ffff8e2f3ec80000(0000) knlGS:0000000000000000
[   42.127771] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   42.128030] CR2: 000055d3f1a1e0b8 CR3: 0000000004c2e000 CR4: 0000000000750ef0
[   42.128351] PKRU: 55555554
[   42.128489] Call Trace:
[   42.128617]  <TASK>
[   42.128733]  ? die+0x36/0x90
[   42.128893]  ? do_trap+0xdd/0x100
[   42.129073]  ? rust_helper_BUG+0x8/0x10
[   42.129276]  ? do_error_trap+0x6a/0x90
[   42.129478]  ? rust_helper_BUG+0x8/0x10
[   42.129681]  ? exc_invalid_op+0x50/0x70
[   42.129886]  ? rust_helper_BUG+0x8/0x10
[   42.130089]  ? asm_exc_invalid_op+0x1a/0x20
[   42.130306]  ? rust_helper_BUG+0x8/0x10
[   42.130509]  rust_begin_unwind+0x95/0xa0
[   42.130716]  ? __cfi_rust_begin_unwind+0x10/0x10
[   42.130948]  _RNvNtCs9jEwPDbx20M_4core9panicking9panic_fmt+0x37/0x40
[   42.131251]  _RNvNtNtCs9jEwPDbx20M_4core9panicking11panic_const24panic_const_sub_overflow+0x25/0x30
[   42.131634]  _RNvCs5Wk8Xn2VqLa_14rust_panic_mod9underflow+0x2a/0x30 [rust_panic_mod]
[   42.131957]  ? __cfi__RNvCs5Wk8Xn2VqLa_14rust_panic_mod9underflow+0x10/0x10 [rust_panic_mod]
[   42.132298]  _RNvXCs5Wk8Xn2VqLa_14rust_panic_modNtB2_12RustPanicModNtCs43vyB533jt3_6kernel13InPlaceModule4init+0x1e/0x50 [rust_panic_mod]
[   42.132791]  init_module+0x1a/0x60 [rust_panic_mod]
[   42.133036]  ? __pfx_init_module+0x10/0x10 [rust_panic_mod]
[   42.133302]  do_one_initcall+0x58/0x320
[   42.133511]  do_init_module+0x60/0x270
[   42.133719]  init_module_from_file+0x89/0xe0
[   42.133941]  idempotent_init_module+0x11d/0x310
[   42.134174]  __x64_sys_finit_module+0x5e/0xb0
[   42.134400]  do_syscall_64+0x87/0x1b0
[   42.134600]  ? do_user_addr_fault+0x379/0x670
[   42.134826]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   42.135083] RIP: 0033:0x7f5c6a8fc9f9
[   42.135280] Code: ff ff c3 cc cc cc cc cc cc cc cc cc cc cc cc cc cc 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 c7 c1 a8 ff ff ff f7 d8 64 89 01 48
[   42.136016] RSP: 002b:00007ffd0b1c8f28 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   42.136350] RAX: ffffffffffffffda RBX: 0000000000000002 RCX: 00007f5c6a8fc9f9
[   42.136668] RDX: 0000000000000000 RSI: 000055d3f1a1c4b0 RDI: 0000000000000003
[   42.136987] RBP: 00007ffd0b1cb110 R08: 00007f5c6a9569a8 R09: 000055d3f1a23930
[   42.137306] R10: 00007f5c6a8fc9e0 R11: 0000000000000246 R12: 0000000000001000
[   42.137624] R13: 0000000000000000 R14: 00000000ffffffff R15: 0000000000000000
[   42.137946]  </TASK>
[   42.138066] Modules linked in: rust_panic_mod(OE+) virtio_console
[   42.138378] ---[ end trace 0000000000000000 ]---
[   42.138609] RIP: 0010:rust_helper_BUG+0x8/0x10
[   42.138832] Code: cc cc cc cc cc 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 00 b8 8d 71 4c 30 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 55 48 89 e5 <0f> 0b 66 0f 1f 44 00 00 b8 c7 b5 05 bc 90 90 90 90 90 90 90 90 90
[   42.139570] RSP: 0018:ffffa3e4c0a6fb58 EFLAGS: 00010246
[   42.139830] RAX: 0000000000000061 RBX: ffffa3e4c0a6fc08 RCX: 0000000000000000
";

/// A loadable Rust module whose init writes through a NULL pointer: a plain oops.
const OOPS_LOG: &str = r"[   31.402113] oops_mod: loading out-of-tree module taints kernel.
[   31.402711] oops_mod: module verification failed: signature and/or required key missing - tainting kernel
[   31.404018] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   31.404417] #PF: supervisor write access in kernel mode
[   31.404714] #PF: error_code(0x0002) - not-present page
[   31.405009] PGD 0 P4D 0 
[   31.405178] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
[   31.405463] CPU: 0 UID: 0 PID: 641 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1
[   31.406027] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   31.406322] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[   31.406815] RIP: 0010:_RNvCs1234_8oops_mod4init+0x15/0x30 [oops_mod]
[   31.407201] Code: Unable to access opcode bytes at 0xffffffffc0a3dffb.
[   31.407506] RSP: 0018:ffffb1c0c04a7c68 EFLAGS: 00010246
[   31.407767] RAX: 0000000000000000 RBX: ffffffffc0a3e010 RCX: 0000000000000000
[   31.408089] RDX: 0000000000000000 RSI: 0000000000000000 RDI: 0000000000000000
[   31.408408] RBP: 0000000000000000 R08: 0000000000000000 R09: 0000000000000000
[   31.408728] R10: 0000000000000000 R11: 0000000000000000 R12: 000055f0e2b1a4b0
[   31.409047] R13: ffffb1c0c04a7c70 R14: ffff9d6a41b2fb40 R15: ffff9d6a41acf2f8
[   31.409368] FS:  00007f0b8c1b7740(0000) GS:ffff9d6a5ec00000(0000) knlGS:0000000000000000
[   31.409729] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   31.409990] CR2: 0000000000000000 CR3: 0000000001e5a000 CR4: 0000000000750ef0
[   31.410311] PKRU: 55555554
[   31.410449] Call Trace:
[   31.410577]  <TASK>
[   31.410693]  ? __die+0x23/0x70
[   31.410858]  ? page_fault_oops+0x173/0x5b0
[   31.411072]  ? _RNvCs1234_8oops_mod4init+0x15/0x30 [oops_mod]
[   31.411342]  ? exc_page_fault+0x7e/0x180
[   31.411548]  ? asm_exc_page_fault+0x26/0x30
[   31.411765]  ? _RNvCs1234_8oops_mod4init+0x15/0x30 [oops_mod]
[   31.412035]  _RNvXCs1234_8oops_modNtB2_7OopsModNtCs43vyB533jt3_6kernel6Module4init+0x11/0x40 [oops_mod]
[   31.412456]  init_module+0x1a/0x60 [oops_mod]
[   31.412683]  do_one_initcall+0x58/0x320
[   31.412891]  do_init_module+0x60/0x270
[   31.413096]  init_module_from_file+0x89/0xe0
[   31.413318]  idempotent_init_module+0x11d/0x310
[   31.413549]  __x64_sys_finit_module+0x5e/0xb0
[   31.413772]  do_syscall_64+0x87/0x1b0
[   31.413971]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   31.414226] RIP: 0033:0x7f0b8c2cc9f9
[   31.414421] Code: ff ff c3 cc cc cc cc cc cc cc cc cc cc cc cc cc cc 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 c7 c1 a8 ff ff ff f7 d8 64 89 01 48
[   31.415155] RSP: 002b:00007ffc6a1d0e28 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   31.415488] RAX: ffffffffffffffda RBX: 0000000000000002 RCX: 00007f0b8c2cc9f9
[   31.415806] RDX: 0000000000000000 RSI: 000055f0e2b1a4b0 RDI: 0000000000000003
[   31.416125] RBP: 00007ffc6a1d3010 R08: 00007f0b8c3269a8 R09: 000055f0e2b21930
[   31.416444] R10: 00007f0b8c2cc9e0 R11: 0000000000000246 R12: 0000000000001000
[   31.416762] R13: 0000000000000000 R14: 00000000ffffffff R15: 0000000000000000
[   31.417082]  </TASK>
[   31.417199] Modules linked in: oops_mod(OE+) virtio_console
[   31.417490] CR2: 0000000000000000
[   31.417669] ---[ end trace 0000000000000000 ]---
[   31.417897] RIP: 0010:_RNvCs1234_8oops_mod4init+0x15/0x30 [oops_mod]
[   31.418195] Code: Unable to access opcode bytes at 0xffffffffc0a3dffb.
";

/// The same reports, line by line through a [`Scanner`], with the line each came out at.
fn streamed(log: &str) -> Vec<(usize, CrashReport)> {
    let mut scanner = Scanner::new();
    let mut out = Vec::new();
    for (i, line) in log.lines().enumerate() {
        out.extend(scanner.push_line(line).into_iter().map(|r| (i, r)));
    }
    let end = log.lines().count();
    out.extend(scanner.finish().into_iter().map(|r| (end, r)));
    out
}

#[test]
fn a_rust_panic_is_one_report_titled_by_its_message() {
    let reports = parse_reports(PANIC_LOG);
    assert_eq!(
        reports.len(),
        1,
        "no separate BUG or oops report: {reports:#?}"
    );
    let r = &reports[0];
    assert_eq!(r.kind, ReportKind::RustPanic);
    assert_eq!(r.kind.name(), "rust-panic");
    assert_eq!(r.kind.severity(), Severity::Crash);
    assert_eq!(
        r.title,
        "attempt to subtract with overflow in rust_panic_mod::underflow"
    );
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(
        r.source.as_deref(),
        Some("/home/lab/rust_panic_mod/rust_panic_mod.rs:21")
    );
    assert_eq!(r.function.as_deref(), Some("rust_panic_mod::underflow"));
    assert_eq!(r.module.as_deref(), Some("rust_panic_mod"));
    // The report runs from the panic line to the end marker.
    assert_eq!(r.lines.0, 2);
    assert!(r.text.lines().last().unwrap().contains("---[ end trace"));
    // Its frames: the RIP in `BUG()`, the panic plumbing, then the module's function.
    assert!(r.frames[0].rip);
    assert_eq!(r.frames[0].function, "rust_helper_BUG");
    let guilty = &r.frames[r.guilty_frame.expect("a guilty frame")];
    assert_eq!(guilty.function, "rust_panic_mod::underflow");
    assert_eq!(
        guilty.symbol.as_deref(),
        Some("_RNvCs5Wk8Xn2VqLa_14rust_panic_mod9underflow")
    );
    assert!(guilty.reliable && !guilty.rip);
    assert_eq!(r.user_frame, r.guilty_frame);
    let names: Vec<&str> = r
        .frames
        .iter()
        .filter(|f| f.reliable && !f.rip)
        .map(|f| f.function.as_str())
        .take(5)
        .collect();
    assert_eq!(
        names,
        [
            "rust_begin_unwind",
            "core::panicking::panic_fmt",
            "core::panicking::panic_const::panic_const_sub_overflow",
            "rust_panic_mod::underflow",
            "<rust_panic_mod::RustPanicMod as kernel::InPlaceModule>::init",
        ]
    );
    // The oops's facts are the report's.
    assert_eq!(r.pid, Some(873));
    assert_eq!(r.comm.as_deref(), Some("insmod"));
    assert!(r.code.as_deref().is_some_and(|c| c.contains("<0f> 0b")));
    assert!(r
        .modules_linked
        .iter()
        .any(|m| m.name == "rust_panic_mod" && m.loading()));
}

#[test]
fn a_rust_panic_streams_as_it_parses() {
    let whole = parse_reports(PANIC_LOG);
    let streamed = streamed(PANIC_LOG);
    assert_eq!(
        streamed.iter().map(|(_, r)| r).collect::<Vec<_>>(),
        whole.iter().collect::<Vec<_>>()
    );
    // Out as soon as the end marker is read, before the rest of the log.
    let marker = PANIC_LOG
        .lines()
        .position(|l| l.contains("---[ end trace"))
        .unwrap();
    assert_eq!(streamed[0].0, marker);
    // Cut before its call trace, the report still is a Rust panic.
    let cut: String = PANIC_LOG
        .lines()
        .take(12)
        .map(|l| format!("{l}\n"))
        .collect();
    let reports = parse_reports(&cut);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, ReportKind::RustPanic);
    assert!(reports[0].corrupted);
    assert_eq!(
        reports[0].title,
        "attempt to subtract with overflow in corrupted"
    );
}

#[test]
fn a_rust_panic_interleaved_with_other_tasks_lines() {
    // Caller ids keep another task's lines out (syzkaller's corpus, Android's binder).
    let log = "\
[   23.717039][  T298] rust_kernel: panicked at drivers/android/binder/node.rs:877:13:
[   23.717039][  T298] attempt to subtract with overflow
[   23.732166][   T36] audit: type=1400 audit(1750305980.320:67): avc:  denied  { mount } for  pid=297
[   23.745283][  T298] ------------[ cut here ]------------
[   23.771620][  T298] kernel BUG at rust/helpers/bug.c:7!
[   23.772028][  T298] Oops: invalid opcode: 0000 [#1] PREEMPT SMP KASAN PTI
[   23.800761][  T298] CPU: 0 UID: 0 PID: 298 Comm: syz-executor821 Not tainted 6.12.23-syzkaller #0
[   23.829979][  T298] RIP: 0010:rust_helper_BUG+0x8/0x10
[   23.868946][  T298] RSP: 0018:ffffc9000124dab0 EFLAGS: 00010246
[   24.063751][  T298] Call Trace:
[   24.063751][  T298]  <TASK>
[   24.063751][  T298]  _RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind+0x15b/0x160
[   24.071185][  T298]  ? __cfi__RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind+0x10/0x10
[   24.079157][  T298]  ? _RNvMs0_NtCshgDM7dBCdno_11rust_binder4nodeNtB5_4Node22update_refcount_locked+0x401/0x810
[   24.089370][  T298]  ? __cfi__RNvXs1b_NtCs9jEwPDbx20M_4core3fmtRNtNtNtB8_5panic10panic_info9PanicInfoNtB6_7Display3fmtCs43vyB533jt3_6kernel+0x10/0x10
[   24.128451][  T298]  _RNvNtCs9jEwPDbx20M_4core9panicking9panic_fmt+0x84/0x90
[   24.143499][  T298]  _RNvNtNtCs9jEwPDbx20M_4core9panicking11panic_const24panic_const_sub_overflow+0xb2/0xc0
[   24.163987][  T298]  _RNvMs3_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process10update_ref+0x17e5/0x1860
[   24.204041][  T298]  _RNvMs2_NtCshgDM7dBCdno_11rust_binder6threadNtB5_6Thread10write_read+0x27cf/0x96a0
[   24.509935][  T298]  _RNvMs5_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process5ioctl+0x411/0x2c20
[   24.626243][  T298]  _RNvCshgDM7dBCdno_11rust_binder26rust_binder_unlocked_ioctl+0xa0/0x100
[   24.649179][  T298]  __se_sys_ioctl+0x132/0x1b0
[   24.653831][  T298]  __x64_sys_ioctl+0x7f/0xa0
[   24.667537][  T298]  do_syscall_64+0x58/0xf0
[   24.672647][  T298]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   24.750779][  T298]  </TASK>
[   24.753778][  T298] Modules linked in:
[   24.757801][  T298] ---[ end trace 0000000000000000 ]---
";
    let reports = parse_reports(log);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(
        r.title,
        "attempt to subtract with overflow in <rust_binder::process::Process>::update_ref"
    );
    assert_eq!(
        r.source.as_deref(),
        Some("drivers/android/binder/node.rs:877")
    );
    assert_eq!(r.module, None);
    assert!(!r.text.contains("audit:"));
    assert_eq!(
        streamed(log)
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>(),
        reports
    );
}

#[test]
fn older_rust_prints_the_message_on_the_panic_line() {
    let log = PANIC_LOG
        .replace(
            "rust_kernel: panicked at /home/lab/rust_panic_mod/rust_panic_mod.rs:21:17:",
            "rust_kernel: panicked at 'called `Option::unwrap()` on a `None` value', /home/lab/rust_panic_mod/rust_panic_mod.rs:34:9",
        )
        .replace("[   42.120311] attempt to subtract with overflow\n", "");
    let reports = parse_reports(&log);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        r.title,
        "called `Option::unwrap()` on a `None` value in rust_panic_mod::underflow"
    );
    assert_eq!(
        r.source.as_deref(),
        Some("/home/lab/rust_panic_mod/rust_panic_mod.rs:34")
    );
}

#[test]
fn a_rust_panic_message_loses_run_dependent_numbers() {
    let log = PANIC_LOG.replace(
        "attempt to subtract with overflow",
        "index out of bounds: the len is 3 but the index is 5",
    );
    let r = &parse_reports(&log)[0];
    assert_eq!(
        r.title,
        "index out of bounds: the len is NUM but the index is NUM in rust_panic_mod::underflow"
    );
}

#[test]
fn a_rust_panic_without_its_message_is_corrupted() {
    let log = PANIC_LOG.replace("[   42.120311] attempt to subtract with overflow\n", "");
    let r = &parse_reports(&log)[0];
    assert_eq!(r.kind, ReportKind::RustPanic);
    assert_eq!(r.title, "Rust panic in rust_panic_mod::underflow");
    assert!(r.corrupted);
    assert_eq!(
        r.corrupted_reason.as_deref(),
        Some("the panic message is missing")
    );
}

#[test]
fn a_rust_module_oops_names_the_demangled_function() {
    let reports = parse_reports(OOPS_LOG);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.kind, ReportKind::Oops);
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in oops_mod::init"
    );
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("oops_mod::init"));
    assert_eq!(r.module.as_deref(), Some("oops_mod"));
    assert_eq!(r.source, None);
    let g = r.guilty_frame.expect("a guilty frame");
    assert_eq!(g, 0);
    assert!(r.frames[g].rip);
    assert_eq!(
        r.frames[g].symbol.as_deref(),
        Some("_RNvCs1234_8oops_mod4init")
    );
    assert_eq!(r.user_frame, Some(0));
    assert!(r
        .frames
        .iter()
        .any(|f| f.reliable && f.function == "<oops_mod::OopsMod as kernel::Module>::init"));
    assert_eq!(
        streamed(OOPS_LOG)
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>(),
        reports
    );
}

#[test]
fn frames_serialize_the_raw_symbol_only_when_it_differs() {
    let r = &parse_reports(OOPS_LOG)[0];
    let rip = serde_json::to_value(&r.frames[0]).unwrap();
    assert_eq!(rip["function"], "oops_mod::init");
    assert_eq!(rip["symbol"], "_RNvCs1234_8oops_mod4init");
    let plain = r
        .frames
        .iter()
        .find(|f| f.function == "do_one_initcall")
        .unwrap();
    let plain = serde_json::to_value(plain).unwrap();
    assert!(plain.get("symbol").is_none(), "{plain}");
    // Older JSON, without the field, still reads.
    let mut old = rip.clone();
    old.as_object_mut().unwrap().remove("symbol");
    let f: kmodlab_crash::Frame = serde_json::from_value(old).unwrap();
    assert_eq!(f.symbol, None);
}
