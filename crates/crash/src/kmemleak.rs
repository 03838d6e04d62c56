//! kmemleak's report file (`/sys/kernel/debug/kmemleak`), read for the leaks of one module.
//!
//! After a module is unloaded, kmemleak prints a frame in its freed code as a bare address
//! (`0xffffffffa0001046`): kallsyms no longer knows it. The caller knows where the module's
//! sections were and what the `.ko` has there; [`module_leaks`] asks it to name each such address
//! and keeps the objects the module allocated, as reports [`crate::parse_reports`] reads.

/// The objects of a kmemleak report with a backtrace frame that `resolve` names (the module's
/// code), each as a `BUG: memory leak` report as syzkaller writes them, those frames rewritten to
/// what kallsyms would have printed (`leak_init+0x46/0x80 [leak_init]`). Objects allocated by
/// anything else are not the module's leaks and are left out.
pub fn module_leaks(report: &str, resolve: &dyn Fn(u64) -> Option<String>) -> String {
    let mut out = String::new();
    let mut object: Vec<String> = Vec::new();
    let mut ours = false;
    let mut in_backtrace = false;
    let mut flush = |object: &mut Vec<String>, ours: bool| {
        if ours {
            out.push_str("BUG: memory leak\n");
            for l in object.iter() {
                out.push_str(l);
                out.push('\n');
            }
        }
        object.clear();
    };
    for line in report.lines() {
        if line.starts_with("unreferenced object ") {
            flush(&mut object, ours);
            ours = false;
            in_backtrace = false;
        } else if object.is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("backtrace") {
            in_backtrace = true;
        } else if in_backtrace {
            if let Some(named) = frame_address(trimmed).and_then(resolve) {
                let indent = &line[..line.len() - trimmed.len()];
                let prefix = trimmed
                    .strip_prefix("[<")
                    .and_then(|r| r.find(">] ").map(|i| &trimmed[..i + 5]))
                    .unwrap_or("");
                object.push(format!("{indent}{prefix}{named}"));
                ours = true;
                continue;
            }
        }
        object.push(line.to_string());
    }
    flush(&mut object, ours);
    out
}

/// The address of a backtrace frame kallsyms could not name: `0xffffffffa0001046`, or
/// `[<ffffffffa0001046>] 0xffffffffa0001046` (kernels that print both).
fn frame_address(frame: &str) -> Option<u64> {
    let name = match frame.strip_prefix("[<") {
        Some(rest) => rest.split_once(">] ")?.1,
        None => frame,
    };
    let hex = name.trim_end().strip_prefix("0x")?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
unreferenced object 0xff11000005637480 (size 96):
  comm \"insmod\", pid 31, jiffies 4294894237
  hex dump (first 32 bytes):
    61 20 62 75 66 66 65 72 20 6e 6f 62 6f 64 79 20  a buffer nobody
  backtrace (crc ad08e58f):
    kmemleak_alloc+0x4d/0x90
    __kmalloc_cache_noprof+0x23b/0x3a0
    0xffffffffa0001046
    do_one_initcall+0x121/0x240
    entry_SYSCALL_64_after_hwframe+0x4b/0x53
unreferenced object 0xff11000004367f00 (size 128):
  comm \"swapper/0\", pid 1, jiffies 4294892296
  backtrace (crc 33fff533):
    kmemleak_alloc+0x4d/0x90
    __kmalloc_cache_noprof+0x23b/0x3a0
    0xffffffffb0002049
    kernel_init+0x20/0x1d0
";

    fn resolve(addr: u64) -> Option<String> {
        (0xffff_ffff_a000_1000..0xffff_ffff_a000_1080)
            .contains(&addr)
            .then(|| {
                format!(
                    "leak_init_init+{:#x}/0x80 [leak_init]",
                    addr - 0xffff_ffff_a000_1000
                )
            })
    }

    #[test]
    fn only_the_modules_objects_are_kept_with_their_frames_named() {
        let out = module_leaks(REPORT, &resolve);
        assert!(out.starts_with("BUG: memory leak\nunreferenced object 0xff11000005637480"));
        assert!(
            out.contains("\n    leak_init_init+0x46/0x80 [leak_init]\n"),
            "{out}"
        );
        assert!(
            !out.contains("0xff11000004367f00"),
            "not the module's: {out}"
        );
        assert_eq!(out.matches("BUG: memory leak").count(), 1);
        let reports = crate::parse_reports(&out);
        assert_eq!(reports.len(), 1, "{out}");
        assert_eq!(reports[0].kind, crate::ReportKind::MemoryLeak);
        assert_eq!(reports[0].title, "memory leak in leak_init_init");
        assert_eq!(reports[0].module.as_deref(), Some("leak_init"));
        assert_eq!(reports[0].function.as_deref(), Some("leak_init_init"));
    }

    #[test]
    fn bracketed_addresses_and_junk_are_read_safely() {
        assert_eq!(
            frame_address("[<ffffffffa0001046>] 0xffffffffa0001046"),
            Some(0xffff_ffff_a000_1046)
        );
        assert_eq!(frame_address("0x"), None);
        assert_eq!(frame_address("0x1ffffffffffffffff"), None);
        assert_eq!(frame_address("do_one_initcall+0x121/0x240"), None);
        let odd = "backtrace:\n    0xffffffffa0001010\nunreferenced object 0x1\n  backtrace:\n    0xffffffffa0001010\n[<";
        let out = module_leaks(odd, &resolve);
        assert_eq!(out.matches("BUG: memory leak").count(), 1, "{out}");
        assert_eq!(module_leaks("", &resolve), "");
    }
}
