//! The report kinds beyond oopses, `BUG`s, `WARNING`s and panics (sanitizers, lockdep, stalls,
//! sleeping in atomic context, leaks, ...), and the report structure every kind shares: register
//! dump, `Code:` line, taint flags, `Modules linked in:`, guilty and user frames.
//!
//! The logs are written after Debian 6.12's console output (printk timestamps, some with caller
//! ids) and, for older formats, after syzkaller's corpus. Addresses and register values are made
//! up.

use kmodlab_crash::{
    parse_reports, CrashReport, LinkedModule, ReportKind, Scanner, Severity, TaintFlag,
};

fn only(log: &str) -> CrashReport {
    let mut reports = parse_reports(log);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = reports.remove(0);
    // Whole-log parsing and streaming agree.
    let mut scanner = Scanner::new();
    let mut streamed = Vec::new();
    for line in log.lines() {
        streamed.extend(scanner.push_line(line));
    }
    streamed.extend(scanner.finish());
    assert_eq!(streamed, vec![r.clone()]);
    r
}

fn line_of(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the log"))
}

fn guilty(r: &CrashReport) -> &kmodlab_crash::Frame {
    &r.frames[r.guilty_frame.expect("a guilty frame")]
}

const KASAN: &str = "\
[   10.415113] uaf_mod: loading out-of-tree module taints kernel.
[   10.416781] ==================================================================
[   10.417304] BUG: KASAN: slab-use-after-free in uaf_init+0x3c/0xff0 [uaf_mod]
[   10.417871] Read of size 8 at addr ffff888003a1b2c0 by task insmod/130
[   10.418402] 
[   10.418553] CPU: 0 UID: 0 PID: 130 Comm: insmod Tainted: G    B      OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   10.419383] Tainted: [B]=BAD_PAGE, [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   10.419888] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   10.420611] Call Trace:
[   10.420787]  <TASK>
[   10.420941]  dump_stack_lvl+0x5d/0x80
[   10.421214]  print_report+0xce/0x630
[   10.421480]  ? uaf_init+0x3c/0xff0 [uaf_mod]
[   10.421781]  kasan_report+0xd7/0x110
[   10.422046]  ? uaf_init+0x3c/0xff0 [uaf_mod]
[   10.422347]  uaf_init+0x3c/0xff0 [uaf_mod]
[   10.422636]  ? __pfx_uaf_init+0x10/0x10 [uaf_mod]
[   10.422968]  do_one_initcall+0x5b/0x340
[   10.423248]  do_init_module+0x60/0x240
[   10.423517]  init_module_from_file+0x89/0xe0
[   10.423821]  idempotent_init_module+0x11e/0x310
[   10.424141]  __x64_sys_finit_module+0x5e/0xb0
[   10.424449]  do_syscall_64+0x82/0x190
[   10.424717]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   10.425059] RIP: 0033:0x7f3b8da0a779
[   10.425307] RSP: 002b:00007ffd8e0c3b28 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
[   10.425844]  </TASK>
[   10.425999] 
[   10.426146] Allocated by task 130:
[   10.426395]  kasan_save_stack+0x33/0x60
[   10.426671]  kasan_save_track+0x14/0x30
[   10.426947]  __kasan_kmalloc+0x8f/0xa0
[   10.427217]  uaf_init+0x1f/0xff0 [uaf_mod]
[   10.427504]  do_one_initcall+0x5b/0x340
[   10.427781] 
[   10.427925] Freed by task 130:
[   10.428151]  kasan_save_stack+0x33/0x60
[   10.428427]  kasan_save_free_info+0x3b/0x60
[   10.428725]  __kasan_slab_free+0x4f/0x70
[   10.429006]  kfree+0x114/0x3a0
[   10.429237]  uaf_init+0x2f/0xff0 [uaf_mod]
[   10.429524] 
[   10.429669] The buggy address belongs to the object at ffff888003a1b2c0
[   10.429669]  which belongs to the cache kmalloc-32 of size 32
[   10.430711] ==================================================================
[   10.431236] Disabling lock debugging due to kernel taint
[   10.431700] uaf_mod: read 0 after free
";

#[test]
fn kasan_use_after_free_in_module() {
    let r = only(KASAN);
    assert_eq!(r.kind, ReportKind::Kasan);
    assert_eq!(r.kind.severity(), Severity::Crash);
    assert_eq!(r.title, "KASAN: slab-use-after-free Read in uaf_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.function.as_deref(), Some("uaf_init"));
    assert_eq!(r.module.as_deref(), Some("uaf_mod"));
    assert_eq!(
        r.lines,
        (
            line_of(KASAN, "BUG: KASAN"),
            line_of(KASAN, "Disabling") - 1
        )
    );
    // The frames are the report's own call trace, not the allocation's or the free's.
    assert_eq!(
        r.frames.last().unwrap().function,
        "entry_SYSCALL_64_after_hwframe"
    );
    let g = guilty(&r);
    assert_eq!((g.function.as_str(), g.offset), ("uaf_init", Some(0x3c)));
    assert!(g.reliable);
    assert_eq!(r.user_frame, r.guilty_frame);
    let letters: String = r.taint_flags.iter().map(|t| t.letter).collect();
    assert_eq!(letters, "BOE");
    // The only register dump is user space's, in the trace: still the first `RIP:` block.
    assert_eq!(r.registers[0], ("RIP".into(), "0033:0x7f3b8da0a779".into()));
    assert!(r.frames.iter().all(|f| !f.rip));
    // The allocation and free stacks, each to its blank line.
    let labels: Vec<&str> = r.stacks.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["Allocated by task 130", "Freed by task 130"]);
    let alloc: Vec<&str> = r.stacks[0]
        .frames
        .iter()
        .map(|f| f.function.as_str())
        .collect();
    assert_eq!(
        alloc,
        [
            "kasan_save_stack",
            "kasan_save_track",
            "__kasan_kmalloc",
            "uaf_init",
            "do_one_initcall"
        ]
    );
    let free = &r.stacks[1].frames;
    assert_eq!(free.len(), 5);
    assert_eq!(
        (free[4].function.as_str(), free[4].offset),
        ("uaf_init", Some(0x2f))
    );
    assert_eq!(free[4].module.as_deref(), Some("uaf_mod"));
    assert_eq!(r.stacks[1].source, None, "not symbolized yet");
}

#[test]
fn kasan_older_formats() {
    let log = "\
[   55.468844] ==================================================================
[   55.476243] BUG: KASAN: use-after-free in consume_skb+0x39f/0x530 at addr ffff8801cbeda574
[   55.484627] Read of size 4 by task syz-executor2/4676
[   55.490296] CPU: 1 PID: 4676 Comm: syz-executor2 Not tainted 4.9.0+ #1
[   55.497470] Call Trace:
[   55.499957]  [<ffffffff8234a8d1>] dump_stack+0x2ee/0x3ef
[   55.502578]  [<ffffffff81a6c0a9>] kasan_report+0x469/0x730
[   55.504709]  [<ffffffff8561b6ff>] consume_skb+0x39f/0x530
[   55.507369]  [<ffffffff85624c11>] skb_free_datagram+0x21/0x30
[   55.509369] ==================================================================
";
    let r = only(log);
    assert_eq!(r.title, "KASAN: use-after-free Read in consume_skb");
    let log = "\
[   12.1] BUG: KASAN: double-free or invalid-free in kfree+0xd6/0x260
[   12.2] 
[   12.3] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 4.19.0 #1
[   12.4] Call Trace:
[   12.5]  dump_stack+0x1c4/0x2b4
[   12.6]  print_address_description.cold.8+0x9/0x1ff
[   12.7]  kasan_report_invalid_free+0x64/0xa0
[   12.8]  __kasan_slab_free+0x150/0x170
[   12.9]  kfree+0xd6/0x260
[   13.0]  free_module_data+0x3a/0x50
[   13.1] ==================================================================
";
    let r = only(log);
    assert_eq!(r.title, "KASAN: invalid-free in free_module_data");
}

#[test]
fn kfence_out_of_bounds_in_module() {
    let log = "\
[    7.128349] ==================================================================
[    7.128954] BUG: KFENCE: out-of-bounds read in kfence_oob_init+0xda/0xff0 [kfence_oob]
[    7.128954] 
[    7.129659] Out-of-bounds read at 0x00000000bbcd793f (32B right of kfence-#91):
[    7.130249]  kfence_oob_init+0xda/0xff0 [kfence_oob]
[    7.130419]  do_one_initcall+0x58/0x320
[    7.130512]  do_init_module+0x60/0x270
[    7.130821] 
[    7.131120] kfence-#91: 0x00000000afce547d-0x00000000ec08fd91, size=32, cache=kmalloc-32
[    7.131120] 
[    7.131669] allocated by task 127 on cpu 0 at 7.126195s (0.005429s ago):
[    7.132368]  kfence_oob_init+0x54/0xff0 [kfence_oob]
[    7.132679]  do_one_initcall+0x58/0x320
[    7.134142] 
[    7.134604] CPU: 0 UID: 0 PID: 127 Comm: insmod Tainted: G           OE      6.12.95+deb12-amd64 #1
[    7.135559] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3 04/01/2014
[    7.136243] ==================================================================
[    7.136743] kfence_oob: read went on (value 0)
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::Kfence);
    assert_eq!(r.title, "KFENCE: out-of-bounds read in kfence_oob_init");
    assert_eq!(r.module.as_deref(), Some("kfence_oob"));
    assert_eq!(r.frames[0].function, "kfence_oob_init");
    assert_eq!(r.guilty_frame, Some(0));
    assert_eq!((r.pid, r.comm.as_deref()), (Some(127), Some("insmod")));
}

#[test]
fn kmsan_uninit_value() {
    let log = "\
[  567.476354][    T1] =====================================================
[  567.483452][    T1] BUG: KMSAN: uninit-value in prepare_task_switch+0x284/0xd00
[  567.490925][    T1]  prepare_task_switch+0x284/0xd00
[  567.496040][    T1]  __schedule+0x2da/0x520
[  567.500419][    T1]  __cond_resched+0x43/0xa0
[  567.551059][    T1] 
[  567.553376][    T1] Local variable ----path@step_into created at:
[  567.559600][    T1]  step_into+0xbc/0x1a00
[  567.563850][    T1]  path_openat+0x3603/0x64c0
[  567.568441][    T1] =====================================================
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::Kmsan);
    assert_eq!(r.title, "KMSAN: uninit-value in prepare_task_switch");
    assert_eq!(r.frames.len(), 3);
}

#[test]
fn kcsan_data_race() {
    let log = "\
[   44.1][ T2016] ==================================================================
[   44.2][ T2016] BUG: KCSAN: data-race in ext4_mark_iloc_dirty / ext4_reserve_inode_write
[   44.3][ T2016] 
[   44.4][ T2016] write to 0xffff88812c9ac4b0 of 8 bytes by task 2016 on cpu 1:
[   44.5][ T2016]  ext4_mark_iloc_dirty+0x6b/0x190
[   44.6][ T2016] ==================================================================
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::Kcsan);
    assert_eq!(r.kind.severity(), Severity::Warning);
    assert_eq!(
        r.title,
        "KCSAN: data-race in ext4_mark_iloc_dirty / ext4_reserve_inode_write"
    );
}

#[test]
fn ubsan_shift_out_of_bounds() {
    let log = "\
[   15.1] ================================================================================
[   15.2] UBSAN: shift-out-of-bounds in /build/ubsan_mod/ubsan_mod.c:14:13
[   15.3] shift exponent 40 is too large for 32-bit type 'int'
[   15.4] CPU: 0 UID: 0 PID: 133 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   15.5] Call Trace:
[   15.6]  <TASK>
[   15.7]  dump_stack_lvl+0x5d/0x80
[   15.8]  __ubsan_handle_shift_out_of_bounds.cold+0x61/0xec
[   15.9]  ubsan_init+0x4d/0xff0 [ubsan_mod]
[   16.0]  do_one_initcall+0x5b/0x340
[   16.1]  </TASK>
[   16.2] ---[ end trace ]---
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::Ubsan);
    assert_eq!(r.title, "UBSAN: shift-out-of-bounds in ubsan_init");
    assert_eq!(r.module.as_deref(), Some("ubsan_mod"));
    assert_eq!(r.kind.severity(), Severity::Warning);
}

const LOCKDEP: &str = "\
[   20.100000] ab_mod: taking a then b, then b then a
[   20.100100] 
[   20.100200] ======================================================
[   20.100300] WARNING: possible circular locking dependency detected
[   20.100400] 6.12.12-amd64 #1 Tainted: G           OE     
[   20.100500] ------------------------------------------------------
[   20.100600] insmod/140 is trying to acquire lock:
[   20.100700] ffffffffc0a0f0a0 (lock_a){+.+.}-{3:3}, at: ab_init+0x70/0xff0 [ab_mod]
[   20.100800] 
[   20.100900] but task is already holding lock:
[   20.101000] ffffffffc0a0f040 (lock_b){+.+.}-{3:3}, at: ab_init+0x60/0xff0 [ab_mod]
[   20.101100] 
[   20.101200] which lock already depends on the new lock.
[   20.101300] 
[   20.101400] the existing dependency chain (in reverse order) is:
[   20.101500] 
[   20.101600] -> #1 (lock_b){+.+.}-{3:3}:
[   20.101700]        __mutex_lock+0x9b/0xa20
[   20.101800]        ab_init+0x3c/0xff0 [ab_mod]
[   20.101900]        do_one_initcall+0x5b/0x340
[   20.102000] 
[   20.102100] -> #0 (lock_a){+.+.}-{3:3}:
[   20.102200]        __lock_acquire+0x1200/0x1f20
[   20.102300]        lock_acquire+0xd2/0x2f0
[   20.102400]        __mutex_lock+0x9b/0xa20
[   20.102500]        ab_init+0x70/0xff0 [ab_mod]
[   20.102600] 
[   20.102700] other info that might help us debug this:
[   20.102800] 
[   20.102900]  Possible unsafe locking scenario:
[   20.103000] 
[   20.103100]        CPU0                    CPU1
[   20.103200]        ----                    ----
[   20.103300]   lock(lock_b);
[   20.103400]                                lock(lock_a);
[   20.103500]                                lock(lock_b);
[   20.103600]   lock(lock_a);
[   20.103700] 
[   20.103800]  *** DEADLOCK ***
[   20.103900] 
[   20.104000] 1 lock held by insmod/140:
[   20.104100]  #0: ffffffffc0a0f040 (lock_b){+.+.}-{3:3}, at: ab_init+0x60/0xff0 [ab_mod]
[   20.104200] 
[   20.104300] stack backtrace:
[   20.104400] CPU: 0 UID: 0 PID: 140 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   20.104500] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2 04/01/2014
[   20.104600] Call Trace:
[   20.104700]  <TASK>
[   20.104800]  dump_stack_lvl+0x5d/0x80
[   20.104900]  print_circular_bug+0x26a/0x340
[   20.105000]  check_noncircular+0x144/0x160
[   20.105100]  __lock_acquire+0x1200/0x1f20
[   20.105200]  lock_acquire+0xd2/0x2f0
[   20.105300]  __mutex_lock+0x9b/0xa20
[   20.105400]  ab_init+0x70/0xff0 [ab_mod]
[   20.105500]  do_one_initcall+0x5b/0x340
[   20.105600]  </TASK>
[   20.105700] ab_mod: done
";

#[test]
fn lockdep_circular_dependency_in_module() {
    let r = only(LOCKDEP);
    assert_eq!(r.kind, ReportKind::Lockdep);
    assert_eq!(r.kind.severity(), Severity::Warning);
    assert_eq!(r.title, "possible deadlock in ab_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.module.as_deref(), Some("ab_mod"));
    // The report is over with its call trace.
    assert_eq!(r.lines.1, line_of(LOCKDEP, "</TASK>"));
    let g = guilty(&r);
    assert_eq!((g.function.as_str(), g.offset), ("ab_init", Some(0x70)));
}

#[test]
fn lockdep_other_reports() {
    let inconsistent = "\
[   30.1] ================================
[   30.2] WARNING: inconsistent lock state
[   30.3] 6.12.12-amd64 #1 Tainted: G           OE
[   30.4] --------------------------------
[   30.5] inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage.
[   30.6] insmod/141 [HC0[0]:SC0[0]:HE1:SE1] takes:
[   30.7] ffffffffc0a0f040 (&irq_lock){+.?.}-{2:2}, at: irq_init+0x30/0xff0 [irq_mod]
[   30.8] {IN-SOFTIRQ-W} state was registered at:
[   30.9]   lock_acquire+0xd2/0x2f0
[   31.0] stack backtrace:
[   31.1] CPU: 0 UID: 0 PID: 141 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   31.2] Call Trace:
[   31.3]  <TASK>
[   31.4]  dump_stack_lvl+0x5d/0x80
[   31.5]  mark_lock+0x7d5/0xc30
[   31.6]  __lock_acquire+0x8c4/0x1f20
[   31.7]  lock_acquire+0xd2/0x2f0
[   31.8]  _raw_spin_lock+0x2f/0x40
[   31.9]  irq_init+0x30/0xff0 [irq_mod]
[   32.0]  </TASK>
";
    let r = only(inconsistent);
    assert_eq!(r.kind, ReportKind::Lockdep);
    assert_eq!(r.title, "inconsistent lock state in irq_init");

    let balance = "\
[   40.1] =====================================
[   40.2] WARNING: bad unlock balance detected!
[   40.3] 6.12.12-amd64 #1 Tainted: G           OE
[   40.4] -------------------------------------
[   40.5] insmod/142 is trying to release lock (m) at:
[   40.6] [<ffffffffc0a0e030>] unlock_init+0x30/0xff0 [unlock_mod]
[   40.7] but there are no more locks to release!
[   40.8] stack backtrace:
[   40.9] Call Trace:
[   41.0]  <TASK>
[   41.1]  dump_stack_lvl+0x5d/0x80
[   41.2]  lock_release+0x1d7/0x2c0
[   41.3]  __mutex_unlock_slowpath+0x3a/0x290
[   41.4]  unlock_init+0x30/0xff0 [unlock_mod]
[   41.5]  </TASK>
";
    let r = only(balance);
    assert_eq!(r.title, "WARNING: bad unlock balance in unlock_init");

    let rcu = "\
[   50.1] =============================
[   50.2] WARNING: suspicious RCU usage
[   50.3] 6.12.12-amd64 #1 Tainted: G           OE
[   50.4] -----------------------------
[   50.5] /build/rcu_mod/rcu_mod.c:20 suspicious rcu_dereference_check() usage!
[   50.6] stack backtrace:
[   50.7] Call Trace:
[   50.8]  <TASK>
[   50.9]  dump_stack_lvl+0x5d/0x80
[   51.0]  lockdep_rcu_suspicious+0x155/0x1b0
[   51.1]  rcu_mod_init+0x45/0xff0 [rcu_mod]
[   51.2]  </TASK>
";
    assert_eq!(
        only(rcu).title,
        "WARNING: suspicious RCU usage in rcu_mod_init"
    );
}

#[test]
fn rcu_stall_in_module_with_caller_ids() {
    // The stalled CPU's backtrace comes from another context after `Sending NMI`.
    let log = "\
[   36.423174][    C0] rcu: INFO: rcu_preempt self-detected stall on CPU
[   36.423746][    C0] rcu: \t0-....: (5249 ticks this GP) idle=5fc/1/0x4000000000000000 softirq=3201/3201 fqs=2583
[   36.424509][    C0] rcu: \t(t=5250 jiffies g=2817 q=148 ncpus=2)
[   36.424600][ T1024] stall_mod: still spinning
[   36.425103][    C0] CPU: 0 UID: 0 PID: 152 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   36.425828][    C0] Call Trace:
[   36.427129][    C0]  <IRQ>
[   36.427780][    C0]  dump_stack_lvl+0x5d/0x80
[   36.428427][    C0]  rcu_dump_cpu_stacks+0xed/0x170
[   36.428635][    C0]  rcu_sched_clock_irq+0x10a9/0x1220
[   36.428777][    C0]  update_process_times+0x70/0xc0
[   36.429341][    C0]  __sysvec_apic_timer_interrupt+0x55/0x120
[   36.429474][    C0]  sysvec_apic_timer_interrupt+0x6c/0x90
[   36.429821][    C0]  </IRQ>
[   36.429923][    C0]  <TASK>
[   36.429991][    C0]  asm_sysvec_apic_timer_interrupt+0x1a/0x20
[   36.430376][    C0] RIP: 0010:spin_init+0x21/0xff0 [stall_mod]
[   36.430841][    C0] Code: 48 c7 c7 40 a5 34 c0 e8 e7 03 04 ee <eb> fe 66 0f 1f 44 00 00
[   36.431256][    C0] RSP: 0018:ff3f0d3a805cb9f0 EFLAGS: 00000246
[   36.431420][    C0] RAX: 0000000000000017 RBX: 0000000000000000 RCX: 0000000000000000
[   36.432339][    C0]  ? __pfx_spin_init+0x10/0x10 [stall_mod]
[   36.432562][    C0]  do_one_initcall+0x58/0x320
[   36.432745][    C0]  do_init_module+0x60/0x270
[   36.433136][    C0]  __x64_sys_finit_module+0x5e/0xb0
[   36.433256][    C0]  do_syscall_64+0x87/0x1b0
[   36.435047][    C0]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   36.436979][    C0]  </TASK>
[   37.000000][ T1024] stall_mod: done
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::RcuStall);
    assert_eq!(r.kind.severity(), Severity::Crash);
    assert_eq!(r.title, "INFO: rcu detected stall in spin_init");
    assert_eq!(r.module.as_deref(), Some("stall_mod"));
    // The RIP frame comes first and is the guilty one; the stall's own interrupt frames are
    // reporting plumbing.
    assert!(r.frames[0].rip);
    assert_eq!(r.guilty_frame, Some(0));
    assert_eq!(
        r.registers.first(),
        Some(&(
            "RIP".to_owned(),
            "0010:spin_init+0x21/0xff0 [stall_mod]".to_owned()
        ))
    );
    assert_eq!(
        r.registers.get(1),
        Some(&("RSP".to_owned(), "0018:ff3f0d3a805cb9f0".to_owned()))
    );
    assert_eq!(
        r.code.as_deref(),
        Some("48 c7 c7 40 a5 34 c0 e8 e7 03 04 ee <eb> fe 66 0f 1f 44 00 00")
    );
    assert!(!r.text.contains("still spinning"));
    assert_eq!(r.lines.1, line_of(log, "</TASK>"));
}

#[test]
fn hard_lockup_in_module() {
    let log = "\
[   60.1] watchdog: Watchdog detected hard LOCKUP on cpu 0
[   60.2] Modules linked in: irqoff_mod(OE+) virtio_console
[   60.3] CPU: 0 UID: 0 PID: 160 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   60.4] RIP: 0010:irqoff_init+0x19/0xff0 [irqoff_mod]
[   60.5] Code: Unable to access opcode bytes at 0xffffffffc0a0efef.
[   60.6] RSP: 0018:ffffa9e0c04bfc68 EFLAGS: 00000046
[   60.7] Call Trace:
[   60.8]  <NMI>
[   60.9]  ? watchdog_hardlockup_check+0x1a7/0x210
[   61.0]  </NMI>
[   61.1]  <TASK>
[   61.2]  do_one_initcall+0x5b/0x340
[   61.3]  </TASK>
[   61.4] Kernel panic - not syncing: Hard LOCKUP
";
    let reports = parse_reports(log);
    assert_eq!(reports.len(), 2, "{reports:#?}");
    let r = &reports[0];
    assert_eq!(r.kind, ReportKind::HardLockup);
    assert_eq!(r.title, "BUG: hard lockup in irqoff_init");
    assert_eq!(r.function.as_deref(), Some("irqoff_init"));
    assert_eq!(
        r.code.as_deref(),
        Some("Unable to access opcode bytes at 0xffffffffc0a0efef.")
    );
    assert_eq!(reports[1].kind, ReportKind::Panic);
    assert_eq!(reports[1].function.as_deref(), Some("irqoff_init"));
}

#[test]
fn sleeping_in_atomic_context() {
    let log = "\
[   70.1] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:585
[   70.2] in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 170, name: insmod
[   70.3] preempt_count: 1, expected: 0
[   70.4] RCU nest depth: 0, expected: 0
[   70.5] 1 lock held by insmod/170:
[   70.6]  #0: ffffffffc0a0f040 (&sl){+.+.}-{2:2}, at: atomic_init+0x17/0xff0 [atomic_mod]
[   70.7] Preemption disabled at:
[   70.8] [<ffffffffc0a0e017>] atomic_init+0x17/0xff0 [atomic_mod]
[   70.9] CPU: 0 UID: 0 PID: 170 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   71.0] Call Trace:
[   71.1]  <TASK>
[   71.2]  dump_stack_lvl+0x5d/0x80
[   71.3]  __might_resched+0x1d6/0x220
[   71.4]  __mutex_lock+0x55/0xa20
[   71.5]  atomic_init+0x2c/0xff0 [atomic_mod]
[   71.6]  do_one_initcall+0x5b/0x340
[   71.7]  </TASK>
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::AtomicSleep);
    assert_eq!(r.kind.severity(), Severity::Warning);
    assert_eq!(
        r.title,
        "BUG: sleeping function called from invalid context in atomic_init"
    );
    let log = "\
[   80.1] BUG: scheduling while atomic: insmod/171/0x00000002
[   80.2] Modules linked in: sched_mod(OE+)
[   80.3] CPU: 0 UID: 0 PID: 171 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   80.4] Call Trace:
[   80.5]  <TASK>
[   80.6]  dump_stack_lvl+0x5d/0x80
[   80.7]  __schedule_bug+0x56/0x70
[   80.8]  __schedule+0x10b7/0x1500
[   80.9]  schedule+0x27/0xf0
[   81.0]  schedule_timeout+0x9e/0x170
[   81.1]  sched_init_mod+0x2c/0xff0 [sched_mod]
[   81.2]  </TASK>
";
    let r = only(log);
    assert_eq!(r.title, "BUG: scheduling while atomic in sched_init_mod");
    assert_eq!(
        r.modules_linked,
        vec![LinkedModule {
            name: "sched_mod".into(),
            marks: "OE+".into()
        }]
    );
}

#[test]
fn memory_leak_in_module() {
    let log = "\
[  120.1] kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)
BUG: memory leak
unreferenced object 0xffff888003a1b2c0 (size 32):
  comm \"insmod\", pid 180, jiffies 4294937368
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 5a1b2c3d):
    [<000000005cb5aa0e>] kmemleak_alloc+0x4a/0x80
    [<0000000074d33dbd>] __kmalloc_cache_noprof+0x2b5/0x370
    [<00000000c8234a88>] leak_init+0x1f/0xff0 [leak_mod]
    [<00000000abadf90a>] do_one_initcall+0x5b/0x340

";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::MemoryLeak);
    assert_eq!(r.kind.severity(), Severity::Warning);
    assert_eq!(r.title, "memory leak in leak_init");
    assert_eq!(r.frames.len(), 4);
    assert_eq!(r.guilty_frame, Some(2));
    assert_eq!(r.user_frame, Some(2));
}

#[test]
fn stack_guard_page_and_double_fault() {
    let log = "\
[   90.1] BUG: TASK stack guard page was hit at ffffa9e0c04b7ff8 (stack is ffffa9e0c04b8000..ffffa9e0c04bc000)
[   90.2] Oops: stack guard page: 0000 [#1] PREEMPT SMP NOPTI
[   90.3] CPU: 0 UID: 0 PID: 190 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   90.4] RIP: 0010:recurse+0x11/0x40 [deep_mod]
[   90.5] RSP: 0018:ffffa9e0c04b8000 EFLAGS: 00010292
[   90.6] Call Trace:
[   90.7]  <TASK>
[   90.8]  recurse+0x1e/0x40 [deep_mod]
[   90.9]  recurse+0x1e/0x40 [deep_mod]
[   91.0]  </TASK>
[   91.1] Modules linked in: deep_mod(OE+)
[   91.2] ---[ end trace 0000000000000000 ]---
";
    let r = &parse_reports(log)[0];
    assert_eq!(r.kind, ReportKind::StackOverflow);
    assert_eq!(r.title, "BUG: stack guard page was hit in recurse");
    assert!(r.frames[0].rip);
    let log = "\
[ 4031.436692] PANIC: double fault, error_code: 0x0
[ 4031.439937] CPU: 1 PID: 1227 Comm: kworker/1:1 Not tainted 4.16.0-rc1+ #12
[ 4031.441897] RIP: 0010:kvm_async_pf_task_wait+0x19d/0x250
[ 4031.442411] RSP: 0000:ffffc90000f5fbc0 EFLAGS: 00000202
[ 4031.448354] Call Trace:
[ 4031.450283]  do_async_page_fault+0x67/0x90
[ 4031.451067] ---[ end trace 0000000000000000 ]---
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::DoubleFault);
    assert_eq!(r.title, "PANIC: double fault in kvm_async_pf_task_wait");
    assert_eq!(r.taint_flags, vec![]);
}

#[test]
fn one_line_reports_and_ignored_lines() {
    let log = "\
[  100.1] BUG: Bad rss-counter state mm:00000000b6f9a6c5 type:MM_ANONPAGES val:1
[  100.2] next line
";
    let r = only(log);
    assert_eq!(r.title, "BUG: Bad rss-counter state");
    assert_eq!(r.lines, (0, 0));
    for quiet in [
        "[    1.0] ODEBUG: Out of memory. ODEBUG disabled\n",
        "[    1.0] INFO: lockdep is turned off.\n",
        "[    1.0] [syscamera][BIN_INFO::0x0008]\n",
        "[    1.0] XFS (loop4): WARNING: Reset corrupted AGFL on AG 0.\n",
        "[    1.0] divide_error: dividing 42 by 0\n",
    ] {
        assert!(parse_reports(quiet).is_empty(), "{quiet}");
    }
}

#[test]
fn taint_flags_decode() {
    let flags = TaintFlag::decode("G    B   W  OE");
    let named: Vec<(char, &str)> = flags.iter().map(|t| (t.letter, t.name.as_str())).collect();
    assert_eq!(
        named,
        [
            ('B', "BAD_PAGE"),
            ('W', "WARN"),
            ('O', "OOT_MODULE"),
            ('E', "UNSIGNED_MODULE")
        ]
    );
    assert_eq!(TaintFlag::from_letter('G'), None);
    assert_eq!(
        TaintFlag::from_letter('P').map(|t| t.name),
        Some("PROPRIETARY_MODULE".to_owned())
    );
    assert_eq!(TaintFlag::decode("PFSRMBUDAWCIOELKXTN").len(), 19);
    assert!(TaintFlag::decode("").is_empty());
}

#[test]
fn modules_linked_and_user_frame() {
    // A kernel frame, a frame of an in-tree module, then the out-of-tree module under test:
    // syzkaller's guilty frame is the first that is not plumbing; the user frame is the first
    // in the module marked `O`.
    let log = "\
[   12.877834] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   12.879437] Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI
[   12.879837] CPU: 0 UID: 0 PID: 171 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[   12.881899] RIP: 0010:virtqueue_add_sgs+0x15/0x30 [virtio_ring]
[   12.883265] RAX: 0000000000000000 RBX: ffffffffc0a0f000 RCX: 0000000000000000
[   12.886038] FS:  00007f3b8d8f6740(0000) GS:ffff8c6f3ec00000(0000) knlGS:0000000000000000
[   12.887113] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   12.887669] Call Trace:
[   12.887882]  <TASK>
[   12.888067]  ? __die+0x23/0x70
[   12.889374]  send_it+0x2a/0x60 [virtio_console]
[   12.889806]  user_init+0x15/0x30 [user_mod]
[   12.890204]  do_one_initcall+0x5b/0x340
[   12.898447]  </TASK>
[   12.898634] Modules linked in: user_mod(POE+) virtio_console leaving_mod(-) [last unloaded: old_mod(OE)]
[   12.899356] ---[ end trace 0000000000000000 ]---
";
    let r = only(log);
    assert_eq!(r.kind, ReportKind::Oops);
    assert_eq!(r.kind.severity(), Severity::Crash);
    let names: Vec<(&str, &str)> = r
        .modules_linked
        .iter()
        .map(|m| (m.name.as_str(), m.marks.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("user_mod", "POE+"),
            ("virtio_console", ""),
            ("leaving_mod", "-")
        ]
    );
    assert!(r.modules_linked[0].loading() && r.modules_linked[0].has_mark('O'));
    assert!(r.modules_linked[2].unloading() && !r.modules_linked[2].has_mark('-'));
    assert_eq!(r.guilty_frame, Some(0));
    assert_eq!(guilty(&r).module.as_deref(), Some("virtio_ring"));
    assert_eq!(r.frames[r.user_frame.unwrap()].function, "user_init");
    let regs: Vec<&str> = r.registers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        regs,
        ["RIP", "RAX", "RBX", "RCX", "FS", "GS", "knlGS", "CS", "DS", "ES", "CR0"]
    );
    assert_eq!(r.registers[4].1, "00007f3b8d8f6740(0000)");
}

#[test]
fn kinds_and_severities() {
    use serde::de::{value, Deserialize, IntoDeserializer};
    for kind in ReportKind::ALL {
        // `name()` is the serde (kebab-case) name.
        let de: value::StrDeserializer<'_, value::Error> = kind.name().into_deserializer();
        assert_eq!(ReportKind::deserialize(de), Ok(kind), "{kind:?}");
    }
    assert_eq!(ReportKind::Panic.severity(), Severity::Panic);
    assert_eq!(ReportKind::Warning.severity(), Severity::Warning);
    assert_eq!(ReportKind::Refcount.severity(), Severity::Warning);
    assert_eq!(ReportKind::Lockdep.severity(), Severity::Warning);
    assert_eq!(ReportKind::HungTask.severity(), Severity::Crash);
    assert_eq!(ReportKind::ListCorruption.severity(), Severity::Crash);
    assert!(Severity::Panic > Severity::Crash && Severity::Crash > Severity::Warning);
}
