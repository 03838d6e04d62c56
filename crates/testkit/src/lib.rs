//! What kmodlab's test suites share: where the reference corpora are, which Debian kernel the
//! host has installed, and how a test that cannot run here says so.
//!
//! A test that needs something this machine lacks (a corpus, a reference tool, a kernel tree)
//! calls [`skip`] and returns. A skip is never a silent pass: it is printed, appended to the file
//! named by `KMODLAB_SKIP_LOG` (`scripts/test` sets it and prints one summary line of every skip
//! at the end), and with `KMODLAB_NO_SKIP=1` (set by `.ci/run`) it fails the test instead.
//!
//! Only absence is a skip. Something inside the repository that is missing or does not build is
//! a failure: use [`repo`] paths with plain assertions for those.
#![deny(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repo() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .nth(2)
        .unwrap_or(crate_dir)
        .to_path_buf()
}

/// The name of the running test: `BINARY::TEST` (the test binary without its hash, and the
/// test function as libtest names its thread).
pub fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
            _ => s,
        })
        .unwrap_or_else(|| "test".into());
    match std::thread::current().name() {
        Some(t) if t != "main" => format!("{binary}::{t}"),
        _ => binary,
    }
}

/// Whether skips are turned into failures (`KMODLAB_NO_SKIP=1`, as CI runs the suite).
pub fn skips_forbidden() -> bool {
    std::env::var_os("KMODLAB_NO_SKIP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Records that the running test cannot run here because `missing` is absent (a path, a tool,
/// a corpus), then returns so that the test can return. Panics instead when skips are forbidden
/// ([`skips_forbidden`]).
pub fn skip(missing: &str) {
    let line = format!("{} (missing {missing})", test_name());
    if skips_forbidden() {
        panic!("skipped, and KMODLAB_NO_SKIP forbids skips: {line}");
    }
    eprintln!("SKIPPED: {line}");
    if let Some(log) = std::env::var_os("KMODLAB_SKIP_LOG").filter(|v| !v.is_empty()) {
        // One short write with O_APPEND: lines from parallel tests never interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// The directory holding the reference corpora: `KMODLAB_CORPORA` when set, else
/// `../shared/corpora` beside the repository.
pub fn corpora_dir() -> PathBuf {
    match std::env::var_os("KMODLAB_CORPORA").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => repo()
            .parent()
            .map_or_else(|| repo().join("../shared"), |p| p.join("shared"))
            .join("corpora"),
    }
}

/// The corpus `name` (`util-linux-dmesg`, `syzkaller-linux-reports`), or `None` after a
/// [`skip`] when it is not there.
pub fn corpus(name: &str) -> Option<PathBuf> {
    let dir = corpora_dir().join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(&format!(
            "the {name} corpus at {}; KMODLAB_CORPORA names another corpora directory",
            dir.display()
        ));
        None
    }
}

/// `path` when it exists, else `None` after a [`skip`] naming it.
pub fn require(path: impl AsRef<Path>) -> Option<PathBuf> {
    let path = path.as_ref();
    if path.exists() {
        Some(path.to_path_buf())
    } else {
        skip(&path.display().to_string());
        None
    }
}

/// A program found on `PATH`, or `None` after a [`skip`] naming it.
pub fn require_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        skip(&format!("the program {name}"));
    }
    found
}

/// A Debian kernel installed on the host: its release and module tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKernel {
    /// The release (`6.12.95+deb12-amd64`).
    pub release: String,
    /// `/lib/modules/RELEASE`.
    pub modules_dir: PathBuf,
}

/// Orders kernel releases as `sort -V` does for them: runs of digits by value, the rest by byte.
pub fn release_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(u8, u64, &str)> {
        let mut out = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                let n = rest[..digits].parse().unwrap_or(u64::MAX);
                out.push((1, n, ""));
                rest = &rest[digits..];
            } else {
                let text = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
                out.push((0, 0, &rest[..text]));
                rest = &rest[text..];
            }
        }
        out
    }
    parts(a).cmp(&parts(b))
}

/// The newest kernel under `root/lib/modules` with a module tree (`kernel/`) and the index
/// files depmod wrote (`modules.dep`), whatever its release; `None` when there is none.
pub fn host_kernel_in(root: &Path) -> Option<HostKernel> {
    let base = root.join("lib/modules");
    let mut found: Vec<HostKernel> = std::fs::read_dir(&base)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let release = e.file_name().to_str()?.to_string();
            let dir = e.path();
            (dir.join("kernel").is_dir() && dir.join("modules.dep").is_file()).then_some(
                HostKernel {
                    release,
                    modules_dir: dir,
                },
            )
        })
        .collect();
    found.sort_by(|a, b| release_order(&a.release, &b.release));
    found.pop()
}

/// The host's newest installed kernel with a module tree ([`host_kernel_in`] of `/`), or `None`
/// after a [`skip`].
pub fn host_kernel() -> Option<HostKernel> {
    let k = host_kernel_in(Path::new("/"));
    if k.is_none() {
        skip(
            "an installed kernel with a module tree (/lib/modules/RELEASE/kernel and modules.dep)",
        );
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_sort_as_versions() {
        use std::cmp::Ordering::*;
        assert_eq!(
            release_order("6.12.9+deb12-amd64", "6.12.10+deb12-amd64"),
            Less
        );
        assert_eq!(release_order("6.1.0-28-amd64", "6.12.95+deb12-amd64"), Less);
        assert_eq!(
            release_order("6.12.95+deb12-amd64", "6.12.95+deb12-amd64"),
            Equal
        );
    }

    #[test]
    fn the_newest_kernel_with_a_module_tree_is_found() {
        let root = std::env::temp_dir().join(format!("kmodlab-testkit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (rel, tree) in [
            ("6.1.0-9-amd64", true),
            ("6.12.9+deb12-amd64", true),
            ("7.0-headers", false),
        ] {
            let d = root.join("lib/modules").join(rel);
            std::fs::create_dir_all(&d).unwrap();
            if tree {
                std::fs::create_dir_all(d.join("kernel")).unwrap();
                std::fs::write(d.join("modules.dep"), "").unwrap();
            }
        }
        let k = host_kernel_in(&root).unwrap();
        assert_eq!(k.release, "6.12.9+deb12-amd64");
        assert_eq!(k.modules_dir, root.join("lib/modules/6.12.9+deb12-amd64"));
        assert_eq!(host_kernel_in(&root.join("nowhere")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_test_name_is_binary_and_function() {
        let name = test_name();
        assert!(
            name.ends_with("::tests::the_test_name_is_binary_and_function"),
            "{name}"
        );
        assert!(name.starts_with("kmodlab_testkit"), "{name}");
    }
}
