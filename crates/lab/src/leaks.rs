//! Whether a module needs the leak check at all.
//!
//! kmemleak's scan after the unload costs most of a warm run on the debug lab kernel (0.7 s or
//! more under TCG), and a module can only leak memory it allocated: a module whose every
//! undefined symbol is a function that never allocates (printk, locks, string functions, the
//! compiler's and sanitizers' helpers) or kernel data it reads (`jiffies`, `init_task`) cannot
//! have made an object kmemleak would report as its own. Any other symbol, known or not, means
//! the scan runs. The one way around this is a call through a function pointer the module found
//! in kernel data without importing the function; kmodlab accepts that gap.

/// Symbols that never allocate memory, exactly.
const NON_ALLOCATING: &[&str] = &[
    "_printk",
    "printk",
    "__dynamic_pr_debug",
    "__warn_printk",
    "dump_stack",
    "dump_stack_lvl",
    "panic",
    "__fentry__",
    "__stack_chk_fail",
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "strlen",
    "strnlen",
    "strcmp",
    "strncmp",
    "strcpy",
    "strscpy",
    "sized_strscpy",
    "snprintf",
    "scnprintf",
    "sprintf",
    "vsnprintf",
    "__rcu_read_lock",
    "__rcu_read_unlock",
    "_raw_spin_lock",
    "_raw_spin_unlock",
    "_raw_spin_lock_irqsave",
    "_raw_spin_unlock_irqrestore",
    "_raw_spin_lock_irq",
    "_raw_spin_unlock_irq",
    "_raw_spin_lock_bh",
    "_raw_spin_unlock_bh",
    "__raw_spin_lock_init",
    "mutex_lock",
    "mutex_unlock",
    "__mutex_init",
    "msleep",
    "usleep_range_state",
    "schedule_timeout",
    "schedule_timeout_uninterruptible",
    "schedule_timeout_interruptible",
    "__msecs_to_jiffies",
    "refcount_warn_saturate",
    "__list_add_valid_or_report",
    "__list_del_entry_valid_or_report",
    "kfree",
    "vfree",
    "kfree_sensitive",
    // Kernel data read by the lab's modules.
    "jiffies",
    "init_task",
    "init_uts_ns",
    "const_pcpu_hot",
    "pcpu_hot",
    "current_task",
];

/// Prefixes of symbol families that never allocate: the sanitizers' and the compiler's helpers,
/// retpoline thunks, static-call trampolines, the module parameter operations (data).
const NON_ALLOCATING_PREFIXES: &[&str] = &[
    "__asan_",
    "__kasan_",
    "__ubsan_handle_",
    "__sanitizer_cov_",
    "__x86_indirect_thunk_",
    "__x86_return_thunk",
    "__SCT__",
    "param_ops_",
];

/// The first of a module's undefined symbols that may allocate memory, or `None` when none may
/// (the leak check is then not needed).
pub fn allocating_symbol(undefined: &[String]) -> Option<&str> {
    undefined.iter().map(String::as_str).find(|s| {
        !NON_ALLOCATING.contains(s) && !NON_ALLOCATING_PREFIXES.iter().any(|p| s.starts_with(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn only_modules_that_call_no_allocator_skip_the_scan() {
        // The hello lab on the debug kernel and on Debian's.
        assert_eq!(
            allocating_symbol(&syms(
                "__asan_register_globals __asan_unregister_globals __dynamic_pr_debug dump_stack"
            )),
            None
        );
        assert_eq!(
            allocating_symbol(&syms("__dynamic_pr_debug __fentry__ __x86_return_thunk")),
            None
        );
        // The process list walks init_task under RCU.
        assert_eq!(
            allocating_symbol(&syms(
                "__fentry__ __rcu_read_lock __rcu_read_unlock _printk const_pcpu_hot init_task"
            )),
            None
        );
        // kmalloc, a proc entry, a vmalloc: the scan runs.
        assert_eq!(
            allocating_symbol(&syms("__kmalloc_cache_noprof _printk kmalloc_caches")),
            Some("__kmalloc_cache_noprof")
        );
        assert_eq!(
            allocating_symbol(&syms("_printk proc_create remove_proc_entry")),
            Some("proc_create")
        );
        assert_eq!(
            allocating_symbol(&syms("vfree vmalloc_noprof")),
            Some("vmalloc_noprof")
        );
        // A name kmodlab does not know is assumed to allocate.
        assert_eq!(allocating_symbol(&syms("_printk kstrdup")), Some("kstrdup"));
    }
}
