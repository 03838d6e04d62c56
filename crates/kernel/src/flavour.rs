//! The lab kernels kmodlab builds: the same source and machinery, different config fragments.

use crate::config::{effective_options, ConfigOption, DEBUG_FRAGMENT, FRAGMENT};
use serde::{Deserialize, Serialize};

/// A lab kernel flavour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// The Rust lab kernel: `CONFIG_RUST=y`, for Rust for Linux modules.
    #[default]
    Rust,
    /// The debug lab kernel: KASAN, kmemleak, lockdep, UBSAN, kgdb and the rest of
    /// `debug-lab.config`, with Rust when the toolchain allows it.
    Debug,
}

/// One config fragment: the file name it is written under in the tree, and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The file name in the tree (`kmodlab-rust-lab.config`).
    pub file: &'static str,
    /// The fragment.
    pub text: &'static str,
}

/// The Rust lab fragment (`crates/kernel/config/rust-lab.config`).
pub const RUST_LAB: Fragment = Fragment {
    file: "kmodlab-rust-lab.config",
    text: FRAGMENT,
};

/// The debug lab fragment (`crates/kernel/config/debug-lab.config`), merged after [`RUST_LAB`].
pub const DEBUG_LAB: Fragment = Fragment {
    file: "kmodlab-debug-lab.config",
    text: DEBUG_FRAGMENT,
};

/// A change kmodlab makes to the kernel's source before building a flavour: one line, found by
/// its start, replaced whole. Only a tree kmodlab extracted itself is edited; a user's tree
/// (`--source DIR`) never is, and its kernel goes without the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceEdit {
    /// A short name, recorded in the built kernel's marker.
    pub name: &'static str,
    /// The file, relative to the source tree.
    pub file: &'static str,
    /// How the line to replace starts (once in the file).
    pub line_start: &'static str,
    /// The line that replaces it.
    pub line: &'static str,
}

/// kmemleak reports an unreferenced object only when it is at least `MSECS_MIN_AGE` old (5 s
/// upstream), but a lab run loads, unloads and scans in well under a second: the debug lab
/// kernel reports objects of any age. kmodlab only counts objects its module allocated, so the
/// transient pointers the age guards against elsewhere in the kernel do not matter.
pub const KMEMLEAK_ANY_AGE: SourceEdit = SourceEdit {
    name: "kmemleak-any-age",
    file: "mm/kmemleak.c",
    line_start: "#define MSECS_MIN_AGE",
    line: "#define MSECS_MIN_AGE\t\t0\t/* kmodlab: report objects of any age */",
};

/// SLUB's per-CPU sheaves (7.x) are arrays of pointers to free objects, kmalloc()ed and so
/// scanned by kmemleak; but a slot keeps its pointer after the object leaves the sheaf (handed
/// out, or flushed back to its slab), so a leaked object is found "referenced" from a stale slot
/// and never reported. The objects in a sheaf are free, not tracked by kmemleak, so the debug lab
/// kernel has kmemleak not scan sheaves at all.
pub const SHEAVES_NOT_SCANNED: SourceEdit = SourceEdit {
    name: "sheaves-not-scanned",
    file: "mm/slub.c",
    line_start: "\tsheaf = kmalloc_flags(sheaf_size, gfp | __GFP_ZERO, alloc_flags, NUMA_NO_NODE);",
    line: "\tsheaf = kmalloc_flags(sheaf_size, gfp | __GFP_ZERO, alloc_flags, NUMA_NO_NODE); \
           kmemleak_no_scan(sheaf); /* kmodlab: stale slots hide leaks */",
};

/// kmemleak reports an unreferenced object only when its contents did not change since the
/// previous scan: a new object is never reported by the first scan that sees it, and a leak
/// check after an unload would need two scans (each seconds long under TCG). The debug lab
/// kernel counts an object's first checksum (from its initial ~0) as unchanged, so that one scan reports it; an
/// object that changes between two scans is still held back.
pub const KMEMLEAK_ONE_SCAN: SourceEdit = SourceEdit {
    name: "kmemleak-one-scan",
    file: "mm/kmemleak.c",
    line_start: "\treturn object->checksum != old_csum;",
    line: "\treturn old_csum != (u32)~0 && object->checksum != old_csum; /* kmodlab: one scan reports */",
};

/// A dead task's kernel stack stays allocated in a per-CPU cache (and is cleared only when a new
/// task takes it); kmemleak scans it as any vmalloc area, so a pointer left in a frame of the
/// `insmod` that loaded a module keeps the module's leak "referenced". The debug lab kernel has
/// kmemleak not scan stacks as memory areas; the stacks of live tasks are still scanned by
/// kmemleak's task walk, unless `stack=off` (which kmodlab's leak check sets).
pub const STACKS_NOT_SCANNED: [SourceEdit; 2] = [
    SourceEdit {
        name: "stacks-not-scanned",
        file: "kernel/fork.c",
        line_start: "#include <linux/vmalloc.h>",
        line: "#include <linux/vmalloc.h>\n#include <linux/kmemleak.h> /* kmodlab */",
    },
    SourceEdit {
        name: "stacks-not-scanned",
        file: "kernel/fork.c",
        line_start: "\tvm_area = find_vm_area(stack);",
        line: "\tvm_area = find_vm_area(stack); kmemleak_no_scan(stack); /* kmodlab: stale frames hide leaks */",
    },
];

/// KASAN's shadow (an eighth of the guest's memory, in 2 MB blocks) is memblock memory that
/// kmemleak records and scans as any other block, though it holds no pointers: two seconds of
/// every scan under TCG. The debug lab kernel allocates it untracked, as arm64's KASAN and the
/// kernel's own `memmap_alloc()` do (`MEMBLOCK_ALLOC_NOLEAKTRACE`).
pub const KASAN_SHADOW_NOT_SCANNED: SourceEdit = SourceEdit {
    name: "kasan-shadow-not-scanned",
    file: "arch/x86/mm/kasan_init_64.c",
    line_start: "\t\t\t__pa(MAX_DMA_ADDRESS), MEMBLOCK_ALLOC_ACCESSIBLE, nid);",
    line: "\t\t\t__pa(MAX_DMA_ADDRESS), MEMBLOCK_ALLOC_NOLEAKTRACE, nid); \
           /* kmodlab: the shadow holds no pointers */",
};

/// The stack depot's hash table (16 MB with KASAN) is a million list heads that point into the
/// depot's own pools, which kmemleak does not track: a second of every scan under TCG, for no
/// object it could reference. The debug lab kernel has kmemleak ignore it.
pub const STACKDEPOT_NOT_SCANNED: [SourceEdit; 2] = [
    SourceEdit {
        name: "stackdepot-not-scanned",
        file: "lib/stackdepot.c",
        line_start: "#include <linux/memblock.h>",
        line: "#include <linux/memblock.h>\n#include <linux/kmemleak.h> /* kmodlab */",
    },
    SourceEdit {
        name: "stackdepot-not-scanned",
        file: "lib/stackdepot.c",
        line_start: "\tpr_info(\"allocating space for %u stack pools via memblock\\n\",",
        line: "\tkmemleak_ignore_phys(__pa(stack_table)); /* kmodlab: no tracked object in it */\n\
               \tpr_info(\"allocating space for %u stack pools via memblock\\n\",",
    },
];

/// When a scan leaves objects unreferenced, kmemleak scans everything a second time and reports
/// only the objects unreferenced by both, against pointers that a concurrent update moved during
/// the first. kmodlab scans after the module under test is gone, whose objects no longer move,
/// and reports only them: the debug lab kernel skips the second scan, which would double the
/// cost of every leak found (a second under TCG).
pub const KMEMLEAK_NO_CONFIRMATION: SourceEdit = SourceEdit {
    name: "kmemleak-no-confirmation-scan",
    file: "mm/kmemleak.c",
    line_start: "\t__kmemleak_scan(false);",
    line: "\t/* kmodlab: no confirmation scan (the module under test is gone) */",
};

/// kmemleak scans the `struct page` of every page in use, reserved ones included (the kernel
/// image, memblock allocations: a third of a small guest's pages), whose `struct page` points
/// to no tracked object. The debug lab kernel skips reserved pages: half of that part of a
/// scan under TCG.
pub const RESERVED_PAGES_NOT_SCANNED: SourceEdit = SourceEdit {
    name: "reserved-pages-not-scanned",
    file: "mm/kmemleak.c",
    line_start: "\t\t\tif (page_count(page) == 0)",
    line: "\t\t\tif (page_count(page) == 0 || PageReserved(page)) /* kmodlab: no pointers */",
};

impl SourceEdit {
    /// `text` with the edit made (unchanged when it is made already); `None` when the line is
    /// not there exactly once. The new text may be several lines.
    pub fn apply(&self, text: &str) -> Option<String> {
        if text
            .split_inclusive('\n')
            .any(|l| l.starts_with(self.line_start))
            && text.contains(&format!("{}\n", self.line))
        {
            return Some(text.to_string());
        }
        let mut found = 0;
        let mut out = String::with_capacity(text.len() + self.line.len());
        for l in text.split_inclusive('\n') {
            if l.starts_with(self.line_start) {
                found += 1;
                out.push_str(self.line);
                out.push_str(&l[l.trim_end_matches('\n').len()..]);
            } else {
                out.push_str(l);
            }
        }
        (found == 1).then_some(out)
    }
}

/// The fragment merged last when a flavour that may go without Rust cannot have it.
pub const NO_RUST: Fragment = Fragment {
    file: "kmodlab-no-rust.config",
    text: "# CONFIG_RUST is not set\n",
};

impl Flavour {
    /// Every flavour.
    pub const ALL: [Flavour; 2] = [Flavour::Rust, Flavour::Debug];

    /// The name on the command line, in the cache and in `kernel list` (`rust`, `debug`).
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Rust => "rust",
            Flavour::Debug => "debug",
        }
    }

    /// Parses [`Flavour::as_str`].
    pub fn from_name(s: &str) -> Option<Flavour> {
        Flavour::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// What people call it (`the Rust lab kernel`).
    pub fn title(self) -> &'static str {
        match self {
            Flavour::Rust => "Rust lab kernel",
            Flavour::Debug => "debug lab kernel",
        }
    }

    /// The fragments merged on top of `make tinyconfig`, in order (a later one wins).
    pub fn fragments(self) -> &'static [Fragment] {
        match self {
            Flavour::Rust => &[RUST_LAB],
            Flavour::Debug => &[RUST_LAB, DEBUG_LAB],
        }
    }

    /// The edits made to an extracted source before the build.
    pub fn source_edits(self) -> &'static [SourceEdit] {
        match self {
            Flavour::Rust => &[],
            Flavour::Debug => &[
                KMEMLEAK_ANY_AGE,
                KMEMLEAK_ONE_SCAN,
                SHEAVES_NOT_SCANNED,
                STACKS_NOT_SCANNED[0],
                STACKS_NOT_SCANNED[1],
                KASAN_SHADOW_NOT_SCANNED,
                STACKDEPOT_NOT_SCANNED[0],
                STACKDEPOT_NOT_SCANNED[1],
                RESERVED_PAGES_NOT_SCANNED,
                KMEMLEAK_NO_CONFIRMATION,
            ],
        }
    }

    /// Whether the flavour exists for Rust: without Rust the build fails. A flavour that does
    /// not need it builds without Rust when Rust is impossible, and says why.
    pub fn needs_rust(self) -> bool {
        self == Flavour::Rust
    }

    /// The make targets of the build, after `bzImage modules`: the debug flavour also makes
    /// the gdb helpers (`vmlinux-gdb.py` beside vmlinux; `make bzImage` alone does not).
    pub fn extra_targets(self) -> &'static [&'static str] {
        match self {
            Flavour::Rust => &[],
            Flavour::Debug => &["scripts_gdb"],
        }
    }

    /// What the cache key covers of the flavour: the Rust lab's fragment alone for the Rust
    /// flavour (so that its key stays what it was before there were flavours), the flavour's
    /// name, fragments and extra targets otherwise.
    pub fn key_text(self) -> String {
        match self {
            Flavour::Rust => FRAGMENT.to_string(),
            _ => {
                let mut s = format!("flavour {}\n", self.as_str());
                for f in self.fragments() {
                    s.push_str(f.text);
                    s.push('\n');
                }
                s.push_str(&self.extra_targets().join(" "));
                for e in self.source_edits() {
                    s.push_str(&format!("\nedit {}: {}", e.file, e.line));
                }
                s
            }
        }
    }

    /// The options the final `.config` must have: those of every fragment, a later fragment
    /// winning, and `CONFIG_RUST` unset when `with_rust` is false.
    pub fn options(self, with_rust: bool) -> Vec<ConfigOption> {
        let mut texts: Vec<&str> = self.fragments().iter().map(|f| f.text).collect();
        if !with_rust {
            texts.push(NO_RUST.text);
        }
        effective_options(&texts)
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(opts: &[ConfigOption], name: &str) -> Option<String> {
        opts.iter()
            .find(|o| o.name == name)
            .map(|o| o.value.clone())
    }

    #[test]
    fn names_round_trip() {
        for f in Flavour::ALL {
            assert_eq!(Flavour::from_name(f.as_str()), Some(f));
        }
        assert_eq!(Flavour::from_name("debian"), None);
        assert_eq!(Flavour::default(), Flavour::Rust);
        assert_eq!(serde_json::to_string(&Flavour::Debug).unwrap(), "\"debug\"");
    }

    #[test]
    fn the_debug_flavour_asks_for_every_detector_of_issue_15() {
        let opts = Flavour::Debug.options(true);
        for name in [
            "CONFIG_KASAN",
            "CONFIG_KASAN_GENERIC",
            "CONFIG_KASAN_INLINE",
            "CONFIG_DEBUG_KMEMLEAK",
            "CONFIG_PROVE_LOCKING",
            "CONFIG_DEBUG_ATOMIC_SLEEP",
            "CONFIG_UBSAN",
            "CONFIG_DEBUG_LIST",
            "CONFIG_DYNAMIC_DEBUG",
            "CONFIG_KGDB",
            "CONFIG_KGDB_KDB",
            "CONFIG_KGDB_SERIAL_CONSOLE",
            "CONFIG_GDB_SCRIPTS",
            "CONFIG_MAGIC_SYSRQ",
            "CONFIG_DEBUG_INFO_DWARF5",
            // What the guest needs, from the Rust lab's fragment.
            "CONFIG_VIRTIO_CONSOLE",
            "CONFIG_SERIAL_8250_CONSOLE",
            "CONFIG_DEVTMPFS",
            "CONFIG_UNIX98_PTYS",
            "CONFIG_DEBUG_FS",
            "CONFIG_MODULE_UNLOAD",
            "CONFIG_RUST",
        ] {
            assert_eq!(value(&opts, name).as_deref(), Some("y"), "{name}");
        }
        // The debug fragment wins over the Rust lab's where both set an option.
        assert_eq!(
            value(&opts, "CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT").as_deref(),
            Some("n")
        );
        assert_eq!(value(&opts, "CONFIG_SLUB_TINY").as_deref(), Some("n"));
        assert_eq!(
            value(&opts, "CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN").as_deref(),
            Some("n"),
            "kmodlab scans itself"
        );
        assert_eq!(
            value(&opts, "CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE").as_deref(),
            Some("16000")
        );
        let without = Flavour::Debug.options(false);
        assert_eq!(value(&without, "CONFIG_RUST").as_deref(), Some("n"));
        assert_eq!(without.len(), opts.len());
        assert!(Flavour::Debug.extra_targets().contains(&"scripts_gdb"));
    }

    #[test]
    fn the_rust_flavour_is_its_fragment_alone() {
        assert_eq!(Flavour::Rust.fragments(), &[RUST_LAB]);
        assert_eq!(
            Flavour::Rust.key_text(),
            FRAGMENT,
            "the Rust lab's key is unchanged"
        );
        assert!(Flavour::Rust.needs_rust());
        assert!(!Flavour::Debug.needs_rust());
        let debug = Flavour::Debug.key_text();
        assert!(debug.starts_with("flavour debug\n"));
        assert!(debug.contains(DEBUG_FRAGMENT) && debug.contains(FRAGMENT));
        assert!(debug.contains("edit mm/kmemleak.c: #define MSECS_MIN_AGE"));
        assert!(Flavour::Rust.source_edits().is_empty());
    }

    #[test]
    fn a_source_edit_replaces_its_one_line() {
        let text = "a\n#define MSECS_MIN_AGE\t\t5000\t/* minimum object age for reporting */\nb\n";
        let edited = KMEMLEAK_ANY_AGE.apply(text).unwrap();
        assert_eq!(
            edited,
            "a\n#define MSECS_MIN_AGE\t\t0\t/* kmodlab: report objects of any age */\nb\n"
        );
        assert_eq!(
            KMEMLEAK_ANY_AGE.apply(&edited).as_deref(),
            Some(edited.as_str())
        );
        assert_eq!(KMEMLEAK_ANY_AGE.apply("a\nb\n"), None);
        let include = STACKS_NOT_SCANNED[0];
        let fork = "#include <linux/sched.h>\n#include <linux/vmalloc.h>\nint x;\n";
        let once = include.apply(fork).unwrap();
        assert_eq!(
            once,
            "#include <linux/sched.h>\n#include <linux/vmalloc.h>\n#include <linux/kmemleak.h> \
             /* kmodlab */\nint x;\n"
        );
        assert_eq!(
            include.apply(&once).as_deref(),
            Some(once.as_str()),
            "idempotent"
        );
        let twice = format!("{text}{text}");
        assert_eq!(KMEMLEAK_ANY_AGE.apply(&twice), None);
    }

    #[test]
    fn the_scan_cost_edits_match_the_kernels_lines() {
        // The lines as Linux 7.3 has them.
        let kasan = "static __init void *early_alloc(size_t size, int nid, bool should_panic)\n{\n\
                     \tvoid *ptr = memblock_alloc_try_nid(size, size,\n\
                     \t\t\t__pa(MAX_DMA_ADDRESS), MEMBLOCK_ALLOC_ACCESSIBLE, nid);\n";
        let edited = KASAN_SHADOW_NOT_SCANNED.apply(kasan).unwrap();
        assert!(edited.contains("MAX_DMA_ADDRESS), MEMBLOCK_ALLOC_NOLEAKTRACE, nid);"));
        assert!(!edited.contains("ACCESSIBLE"));
        let depot = "#include <linux/memblock.h>\n\tinit_stack_table(entries);\n\n\
                     \tpr_info(\"allocating space for %u stack pools via memblock\\n\",\n\
                     \t\tstack_max_pools);\n";
        let once = STACKDEPOT_NOT_SCANNED
            .iter()
            .try_fold(depot.to_string(), |t, e| e.apply(&t))
            .unwrap();
        assert!(once.contains("#include <linux/kmemleak.h>"));
        assert!(once.contains(
            "\tkmemleak_ignore_phys(__pa(stack_table)); /* kmodlab: no tracked object in it */\n\
             \tpr_info(\"allocating space for %u stack pools via memblock\\n\",\n\t\tstack_max_pools);"
        ));
        let again = STACKDEPOT_NOT_SCANNED
            .iter()
            .try_fold(once.clone(), |t, e| e.apply(&t))
            .unwrap();
        assert_eq!(again, once, "idempotent");
        let pages = "\t\t\t/* only scan if page is in use */\n\t\t\tif (page_count(page) == 0)\n\
                     \t\t\t\tcontinue;\n";
        let edited = RESERVED_PAGES_NOT_SCANNED.apply(pages).unwrap();
        assert!(edited.contains("if (page_count(page) == 0 || PageReserved(page))"));
        assert!(edited.ends_with("\t\t\t\tcontinue;\n"));
        let confirm = "\t__kmemleak_scan(false);\n\tif (scan_should_stop())\n";
        let edited = KMEMLEAK_NO_CONFIRMATION.apply(confirm).unwrap();
        assert!(!edited.contains("__kmemleak_scan(false)"));
        assert!(edited.ends_with("\tif (scan_should_stop())\n"));
        for e in [
            KASAN_SHADOW_NOT_SCANNED,
            RESERVED_PAGES_NOT_SCANNED,
            KMEMLEAK_NO_CONFIRMATION,
        ] {
            assert!(Flavour::Debug.source_edits().contains(&e));
        }
        assert!(Flavour::Debug
            .key_text()
            .contains("kmemleak_ignore_phys(__pa(stack_table))"));
    }
}
