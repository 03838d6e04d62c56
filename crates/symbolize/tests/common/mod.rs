//! Building real modules with Kbuild for the tests, and running binutils to check against.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    kmodlab_testkit::repo()
}

/// The kernel build tree: the newest `/lib/modules/REL/build` that has a Makefile (not
/// necessarily the running kernel's).
pub fn kdir() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KMODLAB_KDIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(k));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/lib/modules")
        .ok()?
        .flatten()
        .map(|e| e.path().join("build"))
        .filter(|b| b.join("Makefile").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_build_output(name: &str) -> bool {
    name.ends_with(".o")
        || name.ends_with(".ko")
        || name.ends_with(".mod")
        || name.ends_with(".mod.c")
        || name.ends_with(".cmd")
        || name == "Module.symvers"
        || name == "modules.order"
}

/// Copies the module sources of `src` to a fresh directory named `name` under the tests'
/// temporary directory and builds them there; returns the `.ko` (named `ko`), or `None` without
/// a kernel build tree.
pub fn build_at(src: &Path, name: &str, ko: &str) -> Option<PathBuf> {
    let kdir = kdir()?;
    // The sources are part of the repository: their absence is a failure, never a skip.
    assert!(
        src.is_dir(),
        "{}: no such module source directory",
        src.display()
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("symbolize")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let fname = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_file() && !is_build_output(&fname) {
            std::fs::copy(entry.path(), dir.join(&fname)).unwrap();
        }
    }
    let out = Command::new("make")
        .arg("-C")
        .arg(&kdir)
        .arg(format!("M={}", dir.display()))
        .arg("modules")
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "building {} failed:\n{}\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ko = dir.join(ko);
    assert!(ko.exists(), "{} not built", ko.display());
    Some(ko)
}

macro_rules! built {
    ($fn:ident, $src:expr, $name:expr, $ko:expr) => {
        /// The module, built once per test binary; `None`, after a skip naming what is missing,
        /// without a kernel build tree.
        pub fn $fn() -> Option<PathBuf> {
            static KO: OnceLock<Option<PathBuf>> = OnceLock::new();
            let ko = KO
                .get_or_init(|| build_at(&repo().join($src), $name, $ko))
                .clone();
            if ko.is_none() {
                kmodlab_testkit::skip("a kernel build tree (/lib/modules/RELEASE/build)");
            }
            ko
        }
    };
}

built!(
    oops_mod,
    "labs/kernel_modules/5-oops-mod",
    "oops-mod",
    "oops_mod.ko"
);
built!(
    null_deref,
    "tests/modules/null-deref",
    "null-deref",
    "null_deref.ko"
);
built!(
    exit_oops,
    "tests/modules/exit-oops",
    "exit-oops",
    "exit_oops.ko"
);
built!(
    kfence_oob,
    "tests/modules/kfence-oob",
    "kfence-oob",
    "kfence_oob.ko"
);
built!(
    symfix,
    "crates/symbolize/tests/fixtures/symfix",
    "symfix",
    "symfix.ko"
);

/// The 1-based line of the first line of `file` containing `needle`.
pub fn line_of(file: &Path, needle: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display())) as u32
        + 1
}

/// `st_value` and `st_size` of a symbol, from `readelf -sW`.
pub fn readelf_symbol(ko: &Path, name: &str) -> (u64, u64) {
    let out = Command::new("readelf").arg("-sW").arg(ko).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 8 && f[7] == name && f[3] == "FUNC" {
            let value = u64::from_str_radix(f[1], 16).unwrap();
            let size = if let Some(h) = f[2].strip_prefix("0x") {
                u64::from_str_radix(h, 16).unwrap()
            } else {
                f[2].parse().unwrap()
            };
            return (value, size);
        }
    }
    panic!("no symbol {name} in {}", ko.display());
}

/// Section-relative addresses of the instructions of `section` whose objdump text contains
/// `needle` (`objdump -d --no-show-raw-insn -j SECTION`).
pub fn objdump_find(ko: &Path, section: &str, needle: &str) -> Vec<u64> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn", "-j", section])
        .arg(ko)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            let (addr, _) = l.trim_start().split_once(':')?;
            u64::from_str_radix(addr, 16).ok()
        })
        .collect()
}

/// One frame of binutils `addr2line -i -f`: function and `basename:line`.
pub type A2lFrame = (String, String);

/// `addr2line -i -f -j SECTION -e FILE ADDR...`: for each address, its frames innermost first
/// (an empty list when binutils knows no line).
pub fn addr2line(ko: &Path, section: &str, addrs: &[u64]) -> Vec<Vec<A2lFrame>> {
    // With -a, each address's output starts with a `0x...` line.
    let out = Command::new("addr2line")
        .args(["-a", "-i", "-f", "-j", section, "-e"])
        .arg(ko)
        .args(addrs.iter().map(|a| format!("{a:#x}")))
        .output()
        .expect("run addr2line");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result: Vec<Vec<A2lFrame>> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("0x") {
            result.push(Vec::new());
            continue;
        }
        let func = l.to_string();
        let loc = lines.next().unwrap_or("??:0");
        let loc = loc.split(" (discriminator").next().unwrap();
        let (file, line) = loc.rsplit_once(':').unwrap();
        if line == "0" || line == "?" || file == "??" {
            continue;
        }
        let base = Path::new(file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        result
            .last_mut()
            .unwrap()
            .push((func, format!("{base}:{line}")));
    }
    assert_eq!(result.len(), addrs.len());
    result
}
