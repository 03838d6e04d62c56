//! Crash reports of the lab's modules on an x86_64 Debian 6.12 kernel.
//!
//! The logs below are written by hand after the console output of Debian's 6.12 kernel
//! (`console=ttyS0 ignore_loglevel`, printk timestamps on, no printk caller ids), one per kind:
//! the lab's oops module (NULL write in init), a `WARN()`, a `BUG()`, a `panic()` from init,
//! a spinning init (soft lockup) and a sleeping init (hung task). Register values are made up.

use kmodlab_crash::{parse_reports, CrashReport, ReportKind, Scanner};

const BOOT: &str = "\
[    0.000000] Linux version 6.12.12-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.12-1~bpo12+1 (2025-02-23)
[    0.000000] Command line: console=ttyS0 panic=-1 ignore_loglevel
[    1.512034] Run /init as init process
[    2.101337] traps: probe[88] general protection fault ip:401136 sp:7ffc2b8e1f50 error:0 in probe[401000+1000]
";

const OOPS: &str = "\
[   12.874512] oops_mod: loading out-of-tree module taints kernel.
[   12.875220] oops_mod: module verification failed: signature and/or required key missing - tainting kernel
[   12.877834] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   12.878389] #PF: supervisor write access in kernel mode
[   12.878805] #PF: error_code(0x0002) - not-present page
[   12.879211] PGD 0 P4D 0 
[   12.879437] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
[   12.879837] CPU: 0 UID: 0 PID: 171 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   12.880726] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   12.881150] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   12.881899] RIP: 0010:my_oops_init+0x15/0x30 [oops_mod]
[   12.882335] Code: Unable to access opcode bytes at 0xffffffffc0a0efeb.
[   12.882851] RSP: 0018:ffffa9e0c04bfc68 EFLAGS: 00010246
[   12.883265] RAX: 0000000000000000 RBX: ffffffffc0a0f000 RCX: 0000000000000000
[   12.883822] RDX: 0000000000000000 RSI: 0000000000000000 RDI: ffffffffc0a0d038
[   12.884376] RBP: ffffa9e0c04bfc70 R08: 0000000000000000 R09: 0000000000000000
[   12.884930] R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000000000
[   12.885484] R13: ffff8c6f02b2c4c0 R14: 0000000000000000 R15: ffffa9e0c04bfe88
[   12.886038] FS:  00007f3b8d8f6740(0000) GS:ffff8c6f3ec00000(0000) knlGS:0000000000000000
[   12.886664] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   12.887113] CR2: 0000000000000000 CR3: 0000000002c62000 CR4: 00000000000006f0
[   12.887669] Call Trace:
[   12.887882]  <TASK>
[   12.888067]  ? __die+0x23/0x70
[   12.888337]  ? page_fault_oops+0x173/0x5b0
[   12.888683]  ? exc_page_fault+0x7e/0x180
[   12.889017]  ? asm_exc_page_fault+0x26/0x30
[   12.889374]  ? __pfx_my_oops_init+0x10/0x10 [oops_mod]
[   12.889806]  ? my_oops_init+0x15/0x30 [oops_mod]
[   12.890204]  do_one_initcall+0x5b/0x340
[   12.890532]  do_init_module+0x60/0x240
[   12.890853]  init_module_from_file+0x89/0xe0
[   12.891214]  idempotent_init_module+0x11e/0x310
[   12.891595]  __x64_sys_finit_module+0x5e/0xb0
[   12.891966]  do_syscall_64+0x82/0x190
[   12.892281]  ? do_syscall_64+0x8e/0x190
[   12.892940]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   12.893363] RIP: 0033:0x7f3b8da0a779
[   12.893670] Code: ff c3 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 44 00 00 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 8b 0d 4f 86 0d 00 f7 d8 64 89 01 48
[   12.895091] RSP: 002b:00007ffd8e0c3b28 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   12.895678] RAX: ffffffffffffffda RBX: 000055e7e0e0c7a0 RCX: 00007f3b8da0a779
[   12.896231] RDX: 0000000000000000 RSI: 000055e7b8d6a4a2 RDI: 0000000000000003
[   12.896785] RBP: 0000000000000000 R08: 0000000000000000 R09: 000055e7e0e0c760
[   12.897339] R10: 0000000000000003 R11: 0000000000000246 R12: 000055e7b8d6a4a2
[   12.897893] R13: 0000000000040000 R14: 000055e7e0e0c720 R15: 0000000000000000
[   12.898447]  </TASK>
[   12.898634] Modules linked in: oops_mod(OE+) virtio_console
[   12.899082] CR2: 0000000000000000
[   12.899356] ---[ end trace 0000000000000000 ]---
[   12.899741] RIP: 0010:my_oops_init+0x15/0x30 [oops_mod]
[   12.900175] Code: Unable to access opcode bytes at 0xffffffffc0a0efeb.
[   12.900690] RSP: 0018:ffffa9e0c04bfc68 EFLAGS: 00010246
[   12.901105] RAX: 0000000000000000 RBX: ffffffffc0a0f000 RCX: 0000000000000000
[   12.901662] CR2: 0000000000000000 CR3: 0000000002c62000 CR4: 00000000000006f0
[   12.902218] note: insmod[171] exited with irqs disabled
";

/// What `panic_on_oops` adds after the oops.
const FATAL: &str = "\
[   12.902800] Kernel panic - not syncing: Fatal exception
[   12.903391] Kernel Offset: 0x2a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
[   12.904410] ---[ end Kernel panic - not syncing: Fatal exception ]---
";

const WARN: &str = "\
[   20.311874] ------------[ cut here ]------------
[   20.312311] warn_mod: something is off: 42
[   20.312699] WARNING: CPU: 1 PID: 180 at /tmp/kmodlab/warn_mod/warn_mod.c:9 warn_init+0x1e/0x40 [warn_mod]
[   20.313500] Modules linked in: warn_mod(OE+) virtio_console
[   20.313985] CPU: 1 UID: 0 PID: 180 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   20.314873] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   20.315296] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   20.316045] RIP: 0010:warn_init+0x1e/0x40 [warn_mod]
[   20.316464] Code: Unable to access opcode bytes at 0xffffffffc0a33ff4.
[   20.316980] RSP: 0018:ffffa9e0c04c7c68 EFLAGS: 00010282
[   20.317394] RAX: 0000000000000000 RBX: ffffffffc0a34000 RCX: 0000000000000027
[   20.317949] RDX: ffff8c6f3ed1c6c8 RSI: 0000000000000001 RDI: ffff8c6f3ed1c6c0
[   20.318503] RBP: ffffa9e0c04c7c70 R08: 0000000000000000 R09: ffffa9e0c04c7af0
[   20.319058] R10: ffffa9e0c04c7ae8 R11: ffffffffb4ed4428 R12: 0000000000000000
[   20.319612] R13: ffff8c6f02b2d2c0 R14: 0000000000000000 R15: ffffa9e0c04c7e88
[   20.320166] FS:  00007f8c1a7d5740(0000) GS:ffff8c6f3ed00000(0000) knlGS:0000000000000000
[   20.320792] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   20.321241] CR2: 000055d8f0b6e0a8 CR3: 0000000002d9a000 CR4: 00000000000006f0
[   20.321797] Call Trace:
[   20.322008]  <TASK>
[   20.322193]  ? __warn+0x89/0x130
[   20.322473]  ? warn_init+0x1e/0x40 [warn_mod]
[   20.322842]  ? report_bug+0x164/0x190
[   20.323155]  ? handle_bug+0x58/0x90
[   20.323451]  ? exc_invalid_op+0x17/0x70
[   20.323772]  ? asm_exc_invalid_op+0x1a/0x20
[   20.324121]  ? __pfx_warn_init+0x10/0x10 [warn_mod]
[   20.324531]  ? warn_init+0x1e/0x40 [warn_mod]
[   20.324900]  ? __pfx_warn_init+0x10/0x10 [warn_mod]
[   20.325310]  do_one_initcall+0x5b/0x340
[   20.325638]  do_init_module+0x60/0x240
[   20.325959]  init_module_from_file+0x89/0xe0
[   20.326320]  idempotent_init_module+0x11e/0x310
[   20.326701]  __x64_sys_finit_module+0x5e/0xb0
[   20.327072]  do_syscall_64+0x82/0x190
[   20.327387]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   20.327810] RIP: 0033:0x7f8c1a90e779
[   20.328117] RSP: 002b:00007ffe5b2a1c38 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   20.328704]  </TASK>
[   20.328889] ---[ end trace 0000000000000000 ]---
[   20.329270] warn_mod: loaded anyway
";

const BUG: &str = "\
[   30.101010] ------------[ cut here ]------------
[   30.101456] kernel BUG at /tmp/kmodlab/bug_mod/bug_mod.c:8!
[   30.101923] Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[   30.102400] CPU: 0 UID: 0 PID: 190 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   30.103300] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   30.103700] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   30.104400] RIP: 0010:bug_init+0x10/0x20 [bug_mod]
[   30.104800] Code: Unable to access opcode bytes at 0xffffffffc0a3cfe6.
[   30.105300] RSP: 0018:ffffa9e0c04d7c70 EFLAGS: 00010246
[   30.105700] RAX: 0000000000000000 RBX: ffffffffc0a3d000 RCX: 0000000000000000
[   30.108000] CR2: 000055d8f0b6e0a8 CR3: 0000000002d9a000 CR4: 00000000000006f0
[   30.109000] Call Trace:
[   30.109100]  <TASK>
[   30.109200]  ? die+0x36/0x90
[   30.109300]  ? do_trap+0xda/0x100
[   30.109400]  ? bug_init+0x10/0x20 [bug_mod]
[   30.109500]  ? do_error_trap+0x6a/0x90
[   30.109600]  ? bug_init+0x10/0x20 [bug_mod]
[   30.109700]  ? exc_invalid_op+0x50/0x70
[   30.109800]  ? bug_init+0x10/0x20 [bug_mod]
[   30.109900]  ? asm_exc_invalid_op+0x1a/0x20
[   30.110000]  ? __pfx_bug_init+0x10/0x10 [bug_mod]
[   30.110100]  ? bug_init+0x10/0x20 [bug_mod]
[   30.110200]  do_one_initcall+0x5b/0x340
[   30.110300]  do_init_module+0x60/0x240
[   30.110400]  init_module_from_file+0x89/0xe0
[   30.110500]  idempotent_init_module+0x11e/0x310
[   30.110600]  __x64_sys_finit_module+0x5e/0xb0
[   30.110700]  do_syscall_64+0x82/0x190
[   30.110800]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   30.110900] RIP: 0033:0x7f8c1a90e779
[   30.111000]  </TASK>
[   30.111100] Modules linked in: bug_mod(OE+) virtio_console
[   30.111200] ---[ end trace 0000000000000000 ]---
[   30.111300] RIP: 0010:bug_init+0x10/0x20 [bug_mod]
[   30.111400] Code: Unable to access opcode bytes at 0xffffffffc0a3cfe6.
";

/// `panic=-1`: no `---[ end Kernel panic` line, the machine resets right away.
const PANIC: &str = "\
[   40.200000] Kernel panic - not syncing: boom
[   40.200400] CPU: 1 UID: 0 PID: 200 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   40.201300] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   40.201700] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   40.202400] Call Trace:
[   40.202500]  <TASK>
[   40.202600]  dump_stack_lvl+0x5d/0x80
[   40.202700]  panic+0x118/0x2e0
[   40.202800]  ? __pfx_panic_init+0x10/0x10 [panic_mod]
[   40.202900]  panic_init+0x15/0x20 [panic_mod]
[   40.203000]  do_one_initcall+0x5b/0x340
[   40.203100]  do_init_module+0x60/0x240
[   40.203200]  init_module_from_file+0x89/0xe0
[   40.203300]  idempotent_init_module+0x11e/0x310
[   40.203400]  __x64_sys_finit_module+0x5e/0xb0
[   40.203500]  do_syscall_64+0x82/0x190
[   40.203600]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   40.203700] RIP: 0033:0x7f8c1a90e779
[   40.203800] RSP: 002b:00007ffe5b2a1c38 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   40.203900]  </TASK>
[   40.204100] Kernel Offset: 0x2a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
";

const LOCKUP: &str = "\
[   64.321000] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [insmod:210]
[   64.321500] Modules linked in: lockup_mod(OE+) virtio_console
[   64.322000] CPU: 0 UID: 0 PID: 210 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   64.322800] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   64.323200] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   64.323900] RIP: 0010:lockup_init+0x12/0x30 [lockup_mod]
[   64.324400] Code: 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 55 48 89 e5 eb fe <eb> fe 66 2e 0f 1f 84 00 00 00 00 00 90 90 90 90 90 90 90 90 90 90
[   64.325000] RSP: 0018:ffffa9e0c04e7c70 EFLAGS: 00000202
[   64.325400] RAX: 0000000000000000 RBX: ffffffffc0a45000 RCX: 0000000000000000
[   64.328000] CR2: 000055d8f0b6e0a8 CR3: 0000000002d9a000 CR4: 00000000000006f0
[   64.329000] Call Trace:
[   64.329100]  <IRQ>
[   64.329200]  ? watchdog_timer_fn+0x1e6/0x270
[   64.329300]  ? __pfx_watchdog_timer_fn+0x10/0x10
[   64.329400]  ? __hrtimer_run_queues+0x112/0x2a0
[   64.329500]  ? hrtimer_interrupt+0xfa/0x210
[   64.329600]  ? __sysvec_apic_timer_interrupt+0x55/0x100
[   64.329700]  ? sysvec_apic_timer_interrupt+0x6c/0x90
[   64.329800]  </IRQ>
[   64.329900]  <TASK>
[   64.330000]  ? asm_sysvec_apic_timer_interrupt+0x1a/0x20
[   64.330100]  ? __pfx_lockup_init+0x10/0x10 [lockup_mod]
[   64.330200]  ? lockup_init+0x12/0x30 [lockup_mod]
[   64.330300]  ? __pfx_lockup_init+0x10/0x10 [lockup_mod]
[   64.330400]  do_one_initcall+0x5b/0x340
[   64.330500]  do_init_module+0x60/0x240
[   64.330600]  init_module_from_file+0x89/0xe0
[   64.330700]  idempotent_init_module+0x11e/0x310
[   64.330800]  __x64_sys_finit_module+0x5e/0xb0
[   64.330900]  do_syscall_64+0x82/0x190
[   64.331000]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   64.331100] RIP: 0033:0x7f8c1a90e779
[   64.331200]  </TASK>
";

const HUNG: &str = "\
[  245.123456] INFO: task insmod:220 blocked for more than 122 seconds.
[  245.124000]       Tainted: G           OE      6.12.12-amd64 #1 Debian 6.12.12-1~bpo12+1
[  245.124600] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
[  245.125200] task:insmod          state:D stack:0     pid:220   tgid:220   ppid:1      flags:0x00004002
[  245.125900] Call Trace:
[  245.126000]  <TASK>
[  245.126100]  __schedule+0x403/0xbf0
[  245.126200]  schedule+0x27/0xf0
[  245.126300]  schedule_timeout+0x9e/0x160
[  245.126400]  ? __pfx_process_timeout+0x10/0x10
[  245.126500]  msleep+0x2b/0x40
[  245.126600]  hung_init+0x1a/0x30 [hung_mod]
[  245.126700]  ? __pfx_hung_init+0x10/0x10 [hung_mod]
[  245.126800]  do_one_initcall+0x5b/0x340
[  245.126900]  do_init_module+0x60/0x240
[  245.127000]  init_module_from_file+0x89/0xe0
[  245.127100]  idempotent_init_module+0x11e/0x310
[  245.127200]  __x64_sys_finit_module+0x5e/0xb0
[  245.127300]  do_syscall_64+0x82/0x190
[  245.127400]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[  245.127500] RIP: 0033:0x7f8c1a90e779
[  245.127600]  </TASK>
";

/// Feeds a log line by line; returns each report with the index of the line whose push
/// returned it (`None`: returned by `finish`).
fn stream(log: &str) -> Vec<(Option<usize>, CrashReport)> {
    let mut scanner = Scanner::new();
    let mut out = Vec::new();
    for (i, line) in log.lines().enumerate() {
        for r in scanner.push_line(line) {
            out.push((Some(i), r));
        }
    }
    for r in scanner.finish() {
        out.push((None, r));
    }
    assert!(!scanner.in_report());
    out
}

fn line_of(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in log"))
}

fn only(reports: Vec<CrashReport>) -> CrashReport {
    assert_eq!(reports.len(), 1, "{reports:#?}");
    reports.into_iter().next().expect("one report")
}

#[test]
fn null_dereference_oops_in_module_init() {
    let log = format!("{BOOT}{OOPS}");
    let r = only(parse_reports(&log));
    assert_eq!(r.kind, ReportKind::Oops);
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in my_oops_init"
    );
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("my_oops_init"));
    assert_eq!(r.module.as_deref(), Some("oops_mod"));
    assert_eq!(r.source, None);
    assert_eq!(r.taint.as_deref(), Some("G           OE"));
    assert_eq!(
        (r.cpu, r.pid, r.comm.as_deref()),
        (Some(0), Some(171), Some("insmod"))
    );
    let first = line_of(&log, "BUG: kernel NULL pointer");
    let last = line_of(&log, "---[ end trace");
    assert_eq!(r.lines, (first, last));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(r.text, lines[first..=last].join("\n"));

    // The RIP frame first, then the call trace, guesses included.
    let rip = &r.frames[0];
    assert_eq!(rip.function, "my_oops_init");
    assert_eq!((rip.offset, rip.size), (Some(0x15), Some(0x30)));
    assert_eq!(rip.module.as_deref(), Some("oops_mod"));
    assert!(rip.reliable);
    assert_eq!(r.frames[1].function, "__die");
    assert!(!r.frames[1].reliable);
    let reliable: Vec<&str> = r
        .frames
        .iter()
        .skip(1)
        .filter(|f| f.reliable)
        .map(|f| f.function.as_str())
        .collect();
    assert_eq!(
        reliable,
        [
            "do_one_initcall",
            "do_init_module",
            "init_module_from_file",
            "idempotent_init_module",
            "__x64_sys_finit_module",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe"
        ]
    );
}

#[test]
fn other_oops_headers() {
    let header_lines = [
        "BUG: kernel NULL pointer dereference",
        "#PF: supervisor write access",
        "#PF: error_code",
        "PGD 0 P4D 0",
        "Oops: Oops: 0002",
    ];
    let body: Vec<&str> = OOPS
        .lines()
        .filter(|l| !header_lines.iter().any(|h| l.contains(h)))
        .collect();
    let with_header = |header: &[&str]| -> String {
        let mut lines: Vec<String> = body.iter().map(|l| l.to_string()).collect();
        for (i, h) in header.iter().enumerate() {
            lines.insert(2 + i, format!("[   12.877834] {h}"));
        }
        lines.join("\n")
    };
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "BUG: unable to handle page fault for address: ffffffffc0a17000",
                "#PF: supervisor write access in kernel mode",
                "#PF: error_code(0x0003) - permissions violation",
                "Oops: Oops: 0003 [#1] PREEMPT SMP NOPTI",
            ],
            "BUG: unable to handle kernel paging request in my_oops_init",
        ),
        (
            &["Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI"],
            "general protection fault in my_oops_init",
        ),
        (
            &["Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI"],
            "divide error in my_oops_init",
        ),
        (
            &["Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"],
            "invalid opcode in my_oops_init",
        ),
    ];
    for (header, title) in cases {
        let r = only(parse_reports(&with_header(header)));
        assert_eq!(r.kind, ReportKind::Oops);
        assert_eq!(r.title, title);
        assert!(!r.corrupted, "{title}: {:?}", r.corrupted_reason);
        assert_eq!(r.lines.0, 2, "{title}");
    }
}

#[test]
fn oops_in_kernel_code_called_by_module_names_the_module() {
    // The module passed a bad pointer to strcpy: plumbing is skipped.
    let log = OOPS
        .replace(
            "RIP: 0010:my_oops_init+0x15/0x30 [oops_mod]",
            "RIP: 0010:strcpy+0x8/0x20",
        )
        .replace(
            "? my_oops_init+0x15/0x30 [oops_mod]",
            "? strcpy+0x8/0x20\n[   12.889900]  my_oops_init+0x1d/0x30 [oops_mod]",
        );
    let r = only(parse_reports(&log));
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in my_oops_init"
    );
    assert_eq!(r.frames[0].function, "strcpy");
    assert_eq!(r.module.as_deref(), Some("oops_mod"));
}

#[test]
fn oops_is_reported_at_its_end_marker() {
    let log = format!("{BOOT}{OOPS}");
    let got = stream(&log);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Some(line_of(&log, "---[ end trace")));

    let mut scanner = Scanner::new();
    let header = line_of(&log, "BUG: kernel NULL pointer");
    for (i, line) in log.lines().enumerate() {
        let out = scanner.push_line(line);
        let end = line_of(&log, "---[ end trace");
        assert_eq!(scanner.in_report(), (header..end).contains(&i), "line {i}");
        assert_eq!(out.len(), usize::from(i == end), "line {i}");
    }
}

#[test]
fn oops_then_fatal_exception_panic() {
    let log = format!("{BOOT}{OOPS}{FATAL}");
    let got = stream(&log);
    assert_eq!(got.len(), 2, "{got:#?}");
    let (at, oops) = &got[0];
    assert_eq!(*at, Some(line_of(&log, "---[ end trace")));
    assert_eq!(oops.kind, ReportKind::Oops);
    let (at, panic) = &got[1];
    assert_eq!(*at, Some(line_of(&log, "---[ end Kernel panic")));
    assert_eq!(panic.kind, ReportKind::Panic);
    assert_eq!(panic.title, "kernel panic: Fatal exception");
    assert!(!panic.corrupted, "{:?}", panic.corrupted_reason);
    // The panic names the oops' culprit.
    assert_eq!(panic.function.as_deref(), Some("my_oops_init"));
    assert_eq!(panic.module.as_deref(), Some("oops_mod"));
    assert_eq!(
        panic.lines,
        (
            line_of(&log, "Kernel panic - not syncing"),
            line_of(&log, "---[ end Kernel panic")
        )
    );
}

#[test]
fn fatal_exception_alone_is_corrupted() {
    let r = only(parse_reports(FATAL));
    assert_eq!(r.kind, ReportKind::Panic);
    assert_eq!(r.title, "kernel panic: Fatal exception");
    assert!(r.corrupted);
    assert!(r.corrupted_reason.is_some());
}

#[test]
fn warning_in_module_init() {
    let log = format!("{BOOT}{WARN}");
    let got = stream(&log);
    assert_eq!(got.len(), 1, "{got:#?}");
    let (at, r) = &got[0];
    assert_eq!(*at, Some(line_of(&log, "---[ end trace")));
    assert_eq!(r.kind, ReportKind::Warning);
    assert_eq!(r.title, "WARNING in warn_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("warn_init"));
    assert_eq!(r.module.as_deref(), Some("warn_mod"));
    assert_eq!(
        (r.cpu, r.pid, r.comm.as_deref()),
        (Some(1), Some(180), Some("insmod"))
    );
    assert_eq!(r.taint.as_deref(), Some("G           OE"));
    // The report starts at `cut here` and keeps the WARN() message.
    assert_eq!(
        r.lines,
        (
            line_of(&log, "[ cut here ]"),
            line_of(&log, "---[ end trace")
        )
    );
    assert!(r.text.contains("warn_mod: something is off: 42"));
    assert!(!r.text.contains("loaded anyway"));
}

#[test]
fn kernel_bug_in_module_init_is_one_report() {
    let log = format!("{BOOT}{BUG}");
    let r = only(parse_reports(&log));
    assert_eq!(r.kind, ReportKind::Bug);
    assert_eq!(r.title, "kernel BUG in bug_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("bug_init"));
    assert_eq!(r.module.as_deref(), Some("bug_mod"));
    assert_eq!((r.cpu, r.pid), (Some(0), Some(190)));
    assert_eq!(
        r.lines,
        (
            line_of(&log, "[ cut here ]"),
            line_of(&log, "---[ end trace")
        )
    );
}

#[test]
fn panic_from_module_init() {
    let log = format!("{BOOT}{PANIC}");
    let got = stream(&log);
    // With panic=-1 there is no end marker: the report comes out of `finish`.
    assert_eq!(got.len(), 1, "{got:#?}");
    let (at, r) = &got[0];
    assert_eq!(*at, None);
    assert_eq!(r.kind, ReportKind::Panic);
    assert_eq!(r.title, "kernel panic: boom");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("panic_init"));
    assert_eq!(r.module.as_deref(), Some("panic_mod"));
    assert_eq!(
        (r.cpu, r.pid, r.comm.as_deref()),
        (Some(1), Some(200), Some("insmod"))
    );
    assert_eq!(r.frames[0].function, "dump_stack_lvl");
    assert_eq!(
        r.lines,
        (
            line_of(&log, "Kernel panic"),
            line_of(&log, "Kernel Offset")
        )
    );

    // With an end marker it is complete at once.
    let log = format!("{PANIC}[   40.204200] ---[ end Kernel panic - not syncing: boom ]---\n");
    let got = stream(&log);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Some(log.lines().count() - 1));
}

#[test]
fn soft_lockup_in_module_init() {
    let log = format!("{BOOT}{LOCKUP}[   68.000000] random: crng init done\n");
    let got = stream(&log);
    assert_eq!(got.len(), 1, "{got:#?}");
    let (at, r) = &got[0];
    // Soft lockups print no end marker: the report is complete with its trace.
    assert_eq!(*at, Some(line_of(&log, "</TASK>")));
    assert_eq!(r.kind, ReportKind::SoftLockup);
    assert_eq!(r.title, "BUG: soft lockup in lockup_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("lockup_init"));
    assert_eq!(r.module.as_deref(), Some("lockup_mod"));
    assert_eq!(
        (r.cpu, r.pid, r.comm.as_deref()),
        (Some(0), Some(210), Some("insmod"))
    );
}

#[test]
fn hung_task_in_module_init() {
    let log = format!("{BOOT}{HUNG}[  250.000000] random: crng init done\n");
    let got = stream(&log);
    assert_eq!(got.len(), 1, "{got:#?}");
    let (at, r) = &got[0];
    assert_eq!(*at, Some(line_of(&log, "</TASK>")));
    assert_eq!(r.kind, ReportKind::HungTask);
    assert_eq!(r.title, "INFO: task hung in hung_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("hung_init"));
    assert_eq!(r.module.as_deref(), Some("hung_mod"));
    assert_eq!((r.pid, r.comm.as_deref()), (Some(220), Some("insmod")));
    assert_eq!(r.taint.as_deref(), Some("G           OE"));
}

#[test]
fn hung_task_in_kernel_skips_scheduler_plumbing() {
    let log = HUNG
        .replace(
            "hung_init+0x1a/0x30 [hung_mod]",
            "jbd2_log_wait_commit+0xa5/0x120",
        )
        .replace(
            "? __pfx_hung_init+0x10/0x10 [hung_mod]",
            "? __pfx_x+0x10/0x10",
        );
    let r = only(parse_reports(&log));
    assert_eq!(r.title, "INFO: task hung in msleep");
    assert_eq!(r.module, None);
}

#[test]
fn every_kind_in_one_log() {
    let log = format!("{BOOT}{WARN}{BUG}{LOCKUP}{HUNG}{OOPS}{PANIC}");
    let reports = parse_reports(&log);
    let kinds: Vec<ReportKind> = reports.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ReportKind::Warning,
            ReportKind::Bug,
            ReportKind::SoftLockup,
            ReportKind::HungTask,
            ReportKind::Oops,
            ReportKind::Panic
        ]
    );
    for r in &reports {
        assert!(!r.corrupted, "{}: {:?}", r.title, r.corrupted_reason);
        assert!(r.module.is_some(), "{}", r.title);
    }
    // Ranges are ordered and do not overlap.
    for pair in reports.windows(2) {
        assert!(pair[0].lines.1 < pair[1].lines.0);
    }
}

/// The same reports whatever the console's prefixes: none, syslog levels, caller ids, `\r\n`.
#[test]
fn console_prefix_styles() {
    let log = format!("{BOOT}{WARN}{OOPS}{HUNG}{PANIC}");
    let expected: Vec<(String, ReportKind, (usize, usize))> = parse_reports(&log)
        .into_iter()
        .map(|r| (r.title, r.kind, r.lines))
        .collect();
    assert_eq!(expected.len(), 4);
    let restyle = |f: &dyn Fn(&str, &str) -> String| -> String {
        log.lines()
            .map(|l| {
                let (stamp, msg) = l.split_at(l.find("] ").map_or(0, |i| i + 2));
                f(stamp, msg)
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let styles: Vec<(&str, String)> = vec![
        ("no timestamps", restyle(&|_, msg| msg.to_owned())),
        (
            "syslog levels",
            restyle(&|stamp, msg| format!("<4>{stamp}{msg}")),
        ),
        (
            "syslog levels, no timestamps",
            restyle(&|_, msg| format!("<1>{msg}")),
        ),
        (
            "caller ids",
            restyle(&|stamp, msg| format!("{}][  T171] {msg}", stamp.trim_end_matches("] "))),
        ),
        ("crlf", log.replace('\n', "\r\n")),
    ];
    for (name, styled) in styles {
        let got: Vec<(String, ReportKind, (usize, usize))> = parse_reports(&styled)
            .into_iter()
            .map(|r| (r.title, r.kind, r.lines))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

/// Lines of other tasks, and user space writing to the console, stay out of a report.
#[test]
fn interleaved_lines_are_left_out() {
    let mut log = String::new();
    for (i, line) in OOPS.lines().enumerate() {
        let (stamp, msg) = line.split_at(line.find("] ").map_or(0, |i| i + 2));
        log.push_str(&format!(
            "{}][  T171] {msg}\n",
            stamp.trim_end_matches("] ")
        ));
        if i % 7 == 3 {
            log.push_str("[   12.880000][    T5] virtio_net virtio0 enp0s3: renamed from eth0\n");
            log.push_str("kmodlab-agent: waiting for the module\n");
        }
    }
    let r = only(parse_reports(&log));
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in my_oops_init"
    );
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert!(!r.text.contains("renamed from eth0"));
    assert!(!r.text.contains("kmodlab-agent"));
    assert!(r.text.contains("---[ end trace"));
}

#[test]
fn report_cut_short_is_corrupted() {
    // The machine died in the middle of the call trace.
    let cut = line_of(OOPS, "do_init_module");
    let log: String = OOPS.lines().take(cut).map(|l| format!("{l}\n")).collect();
    let mut scanner = Scanner::new();
    for line in log.lines() {
        assert!(scanner.push_line(line).is_empty());
    }
    assert!(scanner.in_report());
    let r = only(scanner.finish());
    assert_eq!(r.kind, ReportKind::Oops);
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in my_oops_init"
    );
    assert!(r.corrupted);
    assert!(r
        .corrupted_reason
        .as_deref()
        .is_some_and(|s| s.contains("cut short")));

    // Only the header line made it.
    let r = only(parse_reports(
        "[   12.877834] BUG: kernel NULL pointer dereference, address: 0000000000000000\n",
    ));
    assert!(r.corrupted);
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in corrupted"
    );
    assert_eq!(r.corrupted_reason.as_deref(), Some("no call trace"));
}

#[test]
fn quiet_logs_have_no_reports() {
    assert!(parse_reports("").is_empty());
    assert!(parse_reports("\n\n\r\n").is_empty());
    assert!(parse_reports(BOOT).is_empty());
    let mut scanner = Scanner::default();
    assert!(scanner
        .push_line("WARNING: /etc/ssh/moduli does not exist")
        .is_empty());
    assert!(!scanner.in_report());
    assert!(scanner.finish().is_empty());
}

#[test]
fn garbage_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let pieces = [
        "BUG: ",
        "kernel NULL pointer dereference",
        "RIP: ",
        "0010:",
        "Call Trace:",
        " <TASK>",
        " </TASK>",
        "+0x",
        "/0x",
        "[",
        "]",
        "<",
        ">",
        "? ",
        "Kernel panic - not syncing: ",
        "---[ end trace",
        "---[ end Kernel panic",
        "WARNING: CPU: 0 PID: 1 at a.c:1 ",
        "f",
        "INFO: task ",
        ":1 blocked for more than 1 seconds.",
        "kernel BUG at x.c:1!",
        "invalid opcode: ",
        "watchdog: BUG: soft lockup - CPU#",
        "[insmod:",
        "\r",
        "é",
        " ",
        "0",
        "ffffffffffffffffffff",
        "CPU: ",
        " PID: ",
        " Comm: ",
        " Tainted: ",
        "[    1.0]",
        "[  T1]",
        "------------[ cut here ]------------",
        "Rebooting in ",
        "Kernel Offset",
    ];
    let mut scanner = Scanner::new();
    for _ in 0..20_000 {
        let mut line = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % 6) as usize;
        for k in 0..n {
            let pick = ((seed >> (k * 8)) as usize) % pieces.len();
            line.push_str(pieces[pick]);
        }
        for r in scanner.push_line(&line) {
            assert!(r.lines.0 <= r.lines.1);
        }
    }
    scanner.finish();
}
