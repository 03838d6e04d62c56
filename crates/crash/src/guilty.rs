//! Which frame to blame: the tables of reporting and unwinding plumbing to skip, and the
//! extractors for stalls and hung tasks. The tables follow syzkaller's `pkg/report/linux.go`
//! (its `skipPatterns`, stall anchors and hung-task extractor), rewritten as plain matchers.
//!
//! One rule is ours: a frame in a module is never skipped, and for stalls and hung tasks the
//! first reliable module frame wins. In a module lab the module is the code under test. The
//! exceptions are a compiler's copies of a function (`__cfi_f`, `__pfx_f`) and Rust's panic
//! plumbing ([`RUST_PLUMBING`]: `rust_begin_unwind`, `core::panicking::*`, `core::fmt`,
//! `unwrap()` failures, ...), which can be monomorphized or inlined into a module and still
//! only report the panic of their caller. Names are matched demangled
//! (`<rust_binder::process::Process>::update_ref`), as syzkaller matches them.

use crate::Frame;

/// A name matcher; the regexes of syzkaller's tables, unrolled.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pat {
    /// The name contains this.
    Has(&'static str),
    /// The name starts with this.
    Starts(&'static str),
    /// The name ends with this.
    Ends(&'static str),
    /// The name is this.
    Is(&'static str),
    /// Anything else.
    Test(fn(&str) -> bool),
}

impl Pat {
    fn matches(self, name: &str) -> bool {
        match self {
            Pat::Has(s) => name.contains(s),
            Pat::Starts(s) => name.starts_with(s),
            Pat::Ends(s) => name.ends_with(s),
            Pat::Is(s) => name == s,
            Pat::Test(f) => f(name),
        }
    }
}

/// Whether any pattern matches.
pub(crate) fn matches_any(pats: &[Pat], name: &str) -> bool {
    pats.iter().any(|p| p.matches(name))
}

use Pat::{Ends, Has, Is, Starts, Test};

/// Reporting, unwinding, allocation, locking and string plumbing: never the culprit.
pub(crate) const SKIP: &[Pat] = &[
    Has("__sanitizer"),
    Has("__asan"),
    Has("kasan"),
    Has("hwasan"),
    Has("__msan"),
    Has("kmsan"),
    Has("kcsan_setup_watchpoint"),
    Has("check_memory_region"),
    Has("check_heap_object"),
    Has("check_object"),
    Has("read_word_at_a_time"),
    Test(once_nocheck),
    Has("print_address_description"),
    Has("panic"),
    Has("invalid_op"),
    Has("report_bug"),
    Has("fixup_bug"),
    Has("print_report"),
    Has("print_usage_bug"),
    Has("do_error"),
    Ends("_trap"),
    Has("do_trap"),
    Has("show_stack"),
    Has("dump_stack"),
    Has("walk_stack"),
    Has("dump_backtrace"),
    Has("warn_slowpath"),
    Has("warn_alloc"),
    Has("warn_bogus"),
    Has("__warn"),
    Has("alloc_page"),
    Has("malloc"),
    Has("zalloc"),
    Has("calloc"),
    Has("krealloc"),
    Has("kmem_cache"),
    Has("allocate_slab"),
    Has("__alloc_frozen_pages_noprof"),
    Has("folio_alloc"),
    Has("folio_unlock"),
    Has("filemap_alloc_folio"),
    Has("__filemap_get_folio"),
    Has("find_or_create_page"),
    Has("do_read_cache_folio"),
    Has("read_cache_page"),
    Has("pagecache_get_page"),
    Has("grab_cache_page_write_begin"),
    Has("slab_"),
    Has("debug_object"),
    Has("timer_is_static_object"),
    Has("work_is_static_object"),
    Has("__might_fault"),
    Has("print_unlock"),
    Has("imbalance_bug"),
    Has("lockdep"),
    Has("bh_enable"),
    Has("bh_disable"),
    Has("perf_trace"),
    Has("lock_acquire"),
    Has("lock_release"),
    Has("lock_class"),
    Has("mark_lock"),
    Has("reacquire_held_locks"),
    Has("mark_held_locks"),
    Has("raw_spin_rq"),
    Has("spin_lock"),
    Has("spin_trylock"),
    Has("spin_unlock"),
    Has("read_lock"),
    Has("read_trylock"),
    Has("write_lock"),
    Has("write_trylock"),
    Has("read_unlock"),
    Has("write_unlock"),
    Is("down"),
    Has("down_read"),
    Has("down_write"),
    Has("down_trylock"),
    Has("up_read"),
    Has("up_write"),
    Starts("mutex_"),
    Starts("__mutex_"),
    Starts("rt_mutex_"),
    Has("owner_on_cpu"),
    Has("osq_lock"),
    Has("osq_unlock"),
    Test(atomic_op),
    Has("set_bit"),
    Has("clear_bit"),
    Has("change_bit"),
    Has("test_bit"),
    Has("__wake_up"),
    Starts("refcount_"),
    Starts("kref_"),
    Has("ref_tracker"),
    Has("seqprop_assert"),
    Has("memcpy"),
    Has("memcmp"),
    Has("memset"),
    Has("memchr"),
    Has("memmove"),
    Has("memdup"),
    Has("strcmp"),
    Has("strncmp"),
    Has("strcpy"),
    Has("strlcpy"),
    Has("strncpy"),
    Has("strscpy"),
    Has("strlen"),
    Has("strstr"),
    Has("strnstr"),
    Has("strnlen"),
    Has("strchr"),
    Has("strdup"),
    Has("strndup"),
    Has("copy_to_user"),
    Has("copy_from_user"),
    Has("copy_to_iter"),
    Has("copy_from_iter"),
    Has("copy_page_to_iter"),
    Has("copy_page_from_iter"),
    Has("copy_folio_to_iter"),
    Is("copyin"),
    Is("copyout"),
    Has("put_user"),
    Has("get_user"),
    Has("might_fault"),
    Has("might_sleep"),
    Has("list_add"),
    Has("list_del"),
    Has("list_replace"),
    Has("list_move"),
    Has("list_splice"),
    Starts("rb_"),
    Starts("__rb_"),
    Has("_indirect_thunk_"),
    Has("string"),
    Has("pointer"),
    Has("snprintf"),
    Has("scnprintf"),
    Has("kasprintf"),
    Has("kvasprintf"),
    Has("printk"),
    Has("va_format"),
    Has("dev_info"),
    Has("dev_notice"),
    Has("dev_warn"),
    Has("dev_err"),
    Has("dev_alert"),
    Has("dev_crit"),
    Has("dev_emerg"),
    Has("program_check_exception"),
    Has("program_check_common"),
    Has("del_timer"),
    Has("flush_work"),
    Has("__cancel_work_timer"),
    Has("cancel_work_sync"),
    Has("try_to_grab_pending"),
    Has("flush_workqueue"),
    Has("drain_workqueue"),
    Has("destroy_workqueue"),
    Has("queue_work"),
    Has("finish_wait"),
    Has("kthread_stop"),
    Has("kobject_"),
    Has("add_uevent_var"),
    Has("get_device_parent"),
    Has("device_add"),
    Has("device_del"),
    Has("device_unregister"),
    Has("device_destroy"),
    Has("device_release"),
    Has("devres_release_all"),
    Has("hwrng_unregister"),
    Has("i2c_del_adapter"),
    Has("__unregister_client"),
    Has("device_for_each_child"),
    Has("rollback_registered"),
    Has("unregister_netdev"),
    Has("sysfs_remove"),
    Has("device_remove_file"),
    Has("tty_unregister_device"),
    Has("dummy_urb_enqueue"),
    Has("usb_kill_urb"),
    Has("usb_kill_anchored_urbs"),
    Has("usb_control_msg"),
    Has("usb_hcd_submit_urb"),
    Has("usb_submit_urb"),
    Is("complete"),
    Has("wait_for_completion"),
    Is("kfree"),
    Is("kvfree"),
    Has("kfree_skb"),
    Ends("readb"),
    Ends("readw"),
    Ends("readl"),
    Ends("readq"),
    Ends("writeb"),
    Ends("writew"),
    Ends("writel"),
    Ends("writeq"),
    Has("logic_in"),
    Has("logic_out"),
    Test(crc_n),
    Has("crc_itu_t"),
    Has("__might_resched"),
    Has("assertfail"),
    Is("iput"),
    Is("iput_final"),
    Is("ihold"),
    Has("hex_dump_to_buffer"),
    Has("print_hex_dump"),
    Starts("klist_"),
    Has("trace_hardirq"),
    Has("trace_softirq"),
    Has("lockdep_hardirq"),
    Has("lockdep_softirq"),
    Has("stack_trace_consume_entry"),
    Has("arch_stack_walk"),
    Has("stack_trace_save"),
    Has("insert_work"),
    Has("__queue_delayed_work"),
    Has("queue_delayed_work_on"),
    Has("ida_free"),
    Starts("lock_page"),
    Starts("unlock_page"),
    Has("do_kernel_fault"),
    Has("do_translation_fault"),
    Has("do_mem_abort"),
    Has("el1_abort"),
    Has("el1h_64_sync"),
    Has("print_tainted"),
    Has("xas_start"),
    Has("xas_load"),
    Has("xas_find"),
    Has("find_lock_entries"),
    Has("truncate_inode_pages_range"),
    Has("__phys_addr"),
    Has("__fortify_report"),
    Has("cleanup_srcu_struct"),
    Has("rhashtable_lookup"),
    Has("extract_user_to_sg"),
    Has("extract_iter_to_sg"),
    Has("drop_nlink"),
    Is("get_taint"),
    Is("put_device"),
    Has("lock_timer_base"),
    Has("__timer_delete_sync"),
    Has("sk_stop_timer_sync"),
    Has("__mod_timer"),
    Has("fast_dput"),
    Has("dput"),
    Has("mark_buffer_dirty"),
];

/// Rust's panic plumbing, skipped even in a module: the panic handler (`rust_begin_unwind`,
/// `__rustc::rust_begin_unwind`, the `kernel` crate's `panic`), the `BUG()` it ends in, and
/// `core`'s panicking, formatting and failure functions (`core::panicking::panic_fmt`,
/// `core::panicking::panic_const::panic_const_sub_overflow`, `<core::fmt::Arguments>::...`,
/// `core::result::unwrap_failed`, `core::slice::index::slice_end_index_len_fail`, ...).
pub(crate) const RUST_PLUMBING: &[Pat] = &[
    Has("rust_begin_unwind"),
    Is("rust_helper_BUG"),
    Is("kernel::panic"),
    Starts("kernel::panic::"),
    Test(core_plumbing),
];

/// `core`'s panicking and formatting, and the `core::...` functions that only report a
/// failure (`..._fail`, `..._failed`, `...panic...`: `core::option::expect_failed`,
/// `core::cell::panic_already_borrowed`), also as the self type of an impl
/// (`<&core::panic::panic_info::PanicInfo as core::fmt::Display>::fmt`).
fn core_plumbing(name: &str) -> bool {
    let n = name.trim_start_matches(['<', '&']);
    let n = n.strip_prefix("mut ").unwrap_or(n);
    let Some(path) = n.strip_prefix("core::") else {
        return false;
    };
    ["panicking::", "panic::", "fmt::"]
        .iter()
        .any(|m| path.starts_with(m))
        || path.ends_with("_fail")
        || path.ends_with("_failed")
        || path.contains("panic")
}

/// `(read|write)_once_.*nocheck`
fn once_nocheck(name: &str) -> bool {
    ["read_once_", "write_once_"]
        .iter()
        .any(|p| name.find(p).is_some_and(|i| name[i..].contains("nocheck")))
}

/// `atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)`
fn atomic_op(name: &str) -> bool {
    const OPS: &[&str] = &[
        "dec", "inc", "read", "set", "or", "xor", "and", "add", "sub", "fetch", "xchg", "cmpxchg",
        "try",
    ];
    name.match_indices("atomic").any(|(i, _)| {
        let rest = &name[i + "atomic".len()..];
        let rest = rest.strip_prefix("64").unwrap_or(rest);
        rest.strip_prefix('_')
            .is_some_and(|op| OPS.iter().any(|o| op.starts_with(o)))
    })
}

/// `^crc\d+`
fn crc_n(name: &str) -> bool {
    name.strip_prefix("crc")
        .is_some_and(|r| r.bytes().next().is_some_and(|b| b.is_ascii_digit()))
}

/// Syscall wrappers, stripped from titles (`__x64_sys_finit_module` is titled `sys_finit_module`).
const STRIP_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

/// The name without compiler suffixes (`foo.isra.0` is `foo`), as syzkaller matches and titles it.
pub(crate) fn base_name(function: &str) -> &str {
    function.split('.').next().unwrap_or(function)
}

/// The name used in a title: the base name with the shortest syscall-wrapper prefix removal.
pub(crate) fn title_name(function: &str) -> &str {
    let base = base_name(function);
    STRIP_PREFIXES
        .iter()
        .filter_map(|p| base.strip_prefix(p))
        .filter(|s| !s.is_empty())
        .min_by_key(|s| s.len())
        .unwrap_or(base)
}

/// Whether a frame is plumbing to look past, given the report's own extra patterns.
pub(crate) fn is_skipped(frame: &Frame, extra: &[Pat]) -> bool {
    let symbol = frame.symbol.as_deref().unwrap_or(&frame.function);
    let name = base_name(&frame.function);
    if crate::frame::is_copy(symbol) || matches_any(RUST_PLUMBING, name) {
        return true;
    }
    if frame.module.is_some() {
        return false;
    }
    matches_any(SKIP, name) || matches_any(extra, name)
}

/// The first frame that is not plumbing.
pub(crate) fn first_unskipped<'a>(frames: &[&'a Frame], extra: &[Pat]) -> Option<&'a Frame> {
    frames.iter().copied().find(|f| !is_skipped(f, extra))
}

/// The first frame in a module.
fn first_module_frame<'a>(frames: &[&'a Frame]) -> Option<&'a Frame> {
    frames.iter().copied().find(|f| f.module.is_some())
}

/// Where a stalled CPU's work came from: frames that dispatch work. The frame just above the
/// first of these names the stall.
const STALL_ANCHORS: &[Pat] = &[
    Has("process_one_work"),
    Has("do_syscall_"),
    Has("do_fast_syscall_"),
    Has("sysenter_dispatch"),
    Has("tracesys_phase2"),
    Has("el0_svc_handler"),
    Has("invoke_syscall"),
    Has("ret_fast_syscall"),
    Has("netif_receive_skb"),
    Has("do_softirq"),
    Has("call_timer_fn"),
    Has("_run_timers"),
    Has("run_timer_softirq"),
    Has("hrtimer_run"),
    Has("run_ksoftirqd"),
    Has("smpboot_thread_fn"),
    Is("kthread"),
    Has("start_secondary"),
    Has("cpu_startup_entry"),
    Has("ret_from_fork"),
    Has("vfs_write"),
    Has("vfs_read"),
    Has("vfs_iter_read"),
    Has("vfs_iter_write"),
    Has("do_iter_read"),
    Has("do_iter_write"),
    Has("call_read_iter"),
    Has("call_write_iter"),
    Has("new_sync_read"),
    Has("new_sync_write"),
    Has("vfs_ioctl"),
    Has("ksys_ioctl"),
    Has("compat_ioctl"),
    Has("compat_sys_ioctl"),
    Has("blkdev_driver_ioctl"),
    Has("blkdev_ioctl"),
    Has("do_iter_readv_writev"),
    Starts("call_mmap"),
    Has("mmap_region"),
    Has("do_mmap"),
    Has("do_dentry_open"),
    Has("vfs_open"),
    Starts("sock_sendmsg"),
    Starts("sock_recvmsg"),
    Starts("sock_release"),
    Starts("__sock_release"),
    Is("setsockopt"),
    Has("kernel_setsockopt"),
    Has("sock_common_setsockopt"),
    Is("listen"),
    Has("kernel_listen"),
    Has("sk_common_release"),
    Starts("sock_mmap"),
    Is("accept"),
    Has("kernel_accept"),
    Starts("sock_do_ioctl"),
    Starts("sock_ioctl"),
    Starts("compat_sock_ioctl"),
    Starts("nfnetlink_rcv_msg"),
    Starts("rtnetlink_rcv_msg"),
    Starts("netlink_dump"),
    Test(socket_syscall),
    Has("__do_fault"),
    Has("do_page_fault"),
    Is("page_fault"),
    Has("__fput"),
    Has("task_work_run"),
    Has("exit_to_usermode"),
    Has("smp_call_function"),
    Has("tasklet_action"),
    Has("tasklet_hi_action"),
];

/// `^(sys_)?(socketpair|connect|ioctl)`
fn socket_syscall(name: &str) -> bool {
    let n = name.strip_prefix("sys_").unwrap_or(name);
    ["socketpair", "connect", "ioctl"]
        .iter()
        .any(|p| n.starts_with(p))
}

/// A guilty frame and the name to title it by.
#[derive(Clone, Debug)]
pub(crate) struct Guilty<'a> {
    /// The frame.
    pub frame: &'a Frame,
    /// The name for the title.
    pub name: String,
}

impl<'a> Guilty<'a> {
    fn of(frame: &'a Frame) -> Self {
        Guilty {
            frame,
            name: title_name(&frame.function).to_owned(),
        }
    }
}

/// The first frame that is not plumbing.
pub(crate) fn plain<'a>(frames: &[&'a Frame], extra: &[Pat]) -> Option<Guilty<'a>> {
    first_unskipped(frames, extra).map(Guilty::of)
}

/// Stalls (soft lockups): the first module frame, else the frame just above the first stall
/// anchor (the work the CPU was given), as syzkaller does.
pub(crate) fn stall<'a>(frames: &[&'a Frame], extra: &[Pat]) -> Option<Guilty<'a>> {
    let kept: Vec<&Frame> = frames
        .iter()
        .copied()
        .filter(|f| !is_skipped(f, extra))
        .collect();
    if let Some(f) = first_module_frame(&kept) {
        return Some(Guilty::of(f));
    }
    let mut prev = *kept.first()?;
    for f in &kept {
        let name = title_name(&f.function);
        if matches_any(STALL_ANCHORS, name) {
            if name.contains("smp_call_function") {
                return Some(Guilty {
                    frame: f,
                    name: "smp_call_function".to_owned(),
                });
            }
            return Some(Guilty::of(prev));
        }
        prev = f;
    }
    None
}

/// Hung tasks: the first module frame, else the rtnl/RCU anchors, else the first frame that is
/// not waiting plumbing (schedule, locks, completions), as syzkaller does.
pub(crate) fn hung_task<'a>(frames: &[&'a Frame]) -> Option<Guilty<'a>> {
    let kept: Vec<&Frame> = frames
        .iter()
        .copied()
        .filter(|f| !is_skipped(f, &[]))
        .collect();
    if let Some(f) = first_module_frame(&kept) {
        return Some(Guilty::of(f));
    }
    for f in &kept {
        let name = title_name(&f.function);
        if name.contains("rtnl_lock") {
            return Some(Guilty::of(f));
        }
        const RCU: &[&str] = &[
            "synchronize_rcu",
            "synchronize_srcu",
            "synchronize_net",
            "synchronize_sched",
        ];
        if RCU.iter().any(|a| name.contains(a)) {
            return Some(Guilty {
                frame: f,
                name: "synchronize_rcu".to_owned(),
            });
        }
    }
    const WAITING: &[Pat] = &[
        Has("sched"),
        Has("_lock"),
        Has("_slowlock"),
        Has("down"),
        Has("rwsem"),
        Has("completion"),
        Has("kthread"),
        Has("wait"),
        Has("synchronize"),
        Has("context_switch"),
        Has("__switch_to"),
        Has("cancel_delayed_work"),
        Has("rcu_barrier"),
    ];
    kept.iter()
        .copied()
        .find(|f| !matches_any(WAITING, title_name(&f.function)))
        .map(Guilty::of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, module: Option<&str>) -> Frame {
        Frame {
            function: name.to_owned(),
            module: module.map(str::to_owned),
            reliable: true,
            ..Frame::default()
        }
    }

    #[test]
    fn names() {
        assert_eq!(title_name("__x64_sys_finit_module"), "sys_finit_module");
        assert_eq!(title_name("__do_sys_mount"), "mount");
        assert_eq!(title_name("__se_sys_ioctl"), "ioctl");
        assert_eq!(title_name("shm_open.isra.5.part.6"), "shm_open");
        assert_eq!(title_name("sys_"), "sys_");
    }

    #[test]
    fn skipping() {
        for n in [
            "__warn",
            "warn_slowpath_fmt",
            "report_bug",
            "panic",
            "dump_stack_lvl",
            "__might_sleep",
            "atomic64_read",
            "crc32_le",
            "mutex_lock_nested",
            "kfree",
            "strcpy",
        ] {
            assert!(is_skipped(&frame(n, None), &[]), "{n}");
        }
        for n in ["do_one_initcall", "kfree_rcu_work", "crcx", "atomicity"] {
            assert!(!is_skipped(&frame(n, None), &[]), "{n}");
        }
        assert!(!is_skipped(&frame("panic_init", Some("panic_mod")), &[]));
    }

    #[test]
    fn rust_plumbing_is_skipped_even_in_a_module() {
        for n in [
            "rust_begin_unwind",
            "__rustc::rust_begin_unwind",
            "rust_helper_BUG",
            "kernel::panic",
            "core::panicking::panic_fmt",
            "core::panicking::panic_const::panic_const_sub_overflow",
            "core::panic::panic_info::PanicInfo::message",
            "<&core::panic::panic_info::PanicInfo as core::fmt::Display>::fmt",
            "<core::fmt::Arguments>::estimated_capacity",
            "core::fmt::write",
            "core::option::unwrap_failed",
            "core::option::expect_failed",
            "core::result::unwrap_failed",
            "core::slice::index::slice_end_index_len_fail",
            "core::cell::panic_already_borrowed",
        ] {
            assert!(is_skipped(&frame(n, Some("rust_mod")), &[]), "{n}");
        }
        for n in [
            "rust_mod::underflow",
            "<rust_mod::Dev as kernel::miscdevice::MiscDevice>::ioctl",
            "<rust_mod::State as core::fmt::Debug>::fmt",
            "core::ptr::drop_in_place::<rust_mod::Dev>",
        ] {
            assert!(!is_skipped(&frame(n, Some("rust_mod")), &[]), "{n}");
        }
        // A compiler's copy of a function (CFI, padding) is never guilty.
        let copy = Frame {
            symbol: Some("__cfi__RNvCs1234_8rust_mod9underflow".to_owned()),
            ..frame("rust_mod::underflow", Some("rust_mod"))
        };
        assert!(is_skipped(&copy, &[]));
        assert!(is_skipped(&frame("__pfx_my_init", Some("m")), &[]));
    }

    #[test]
    fn hung_task_frames() {
        let fs = [
            frame("__schedule", None),
            frame("schedule", None),
            frame("schedule_timeout", None),
            frame("msleep", None),
            frame("hung_init", Some("hung_mod")),
            frame("do_one_initcall", None),
        ];
        let refs: Vec<&Frame> = fs.iter().collect();
        assert_eq!(hung_task(&refs).unwrap().name, "hung_init");
        let refs: Vec<&Frame> = fs.iter().filter(|f| f.module.is_none()).collect();
        assert_eq!(hung_task(&refs).unwrap().name, "msleep");
    }

    #[test]
    fn stall_frames() {
        let fs = [
            frame("smp_call_function_many", None),
            frame("on_each_cpu", None),
            frame("process_one_work", None),
        ];
        let refs: Vec<&Frame> = fs.iter().collect();
        assert_eq!(stall(&refs, &[]).unwrap().name, "smp_call_function");
        let fs = [
            frame("foo", None),
            frame("bar", None),
            frame("do_syscall_64", None),
        ];
        let refs: Vec<&Frame> = fs.iter().collect();
        assert_eq!(stall(&refs, &[]).unwrap().name, "bar");
        assert!(stall(&refs[..2], &[]).is_none());
        assert!(stall(&[], &[]).is_none());
    }
}
