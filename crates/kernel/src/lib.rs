//! The lab kernels: small kernels built by kmodlab from Debian's `linux-source-7.*` tarball (or a
//! kernel tree the user names) and kept in the cache, so that modules can be built against them
//! (`make -C TREE M=DIR`) and loaded in a VM. Two [`Flavour`]s: the Rust lab kernel
//! (`CONFIG_RUST=y`, for Rust for Linux modules) and the debug lab kernel (KASAN, kmemleak,
//! lockdep, UBSAN, kgdb; with Rust when the toolchain allows).
//!
//! The recipe: `make tinyconfig`, merge the flavour's fragments ([`Flavour::fragments`]:
//! [`FRAGMENT`], then [`DEBUG_FRAGMENT`] for the debug flavour) with
//! `scripts/kconfig/merge_config.sh -m`, `make olddefconfig`, check that every option of the
//! fragments stuck, then `make -jN bzImage modules` (which leaves the tree ready for out-of-tree
//! modules), all with the [`Toolchain`]'s make variables (`LLVM=-19 RUSTC=/usr/bin/rustc ...`).
//! A flavour that can go without Rust does so, and says why ([`LabKernel::without_rust`]), when
//! `make rustavailable` refuses the toolchain or `CONFIG_RUST` does not combine with its options
//! (the failed `depends on` lines of `init/Kconfig` are named).
//!
//! The cache: `CACHE/kernels/FLAVOUR-VERSION-KEY/` where `CACHE` is
//! [`kmodlab_kbuild::cache_dir`] and `KEY` hashes the source's identity, the fragments and the
//! tool versions ([`cache_key`]). A tarball is extracted there and built in place; a user's tree is
//! built out of tree with `O=` that directory, so the user's tree stays clean (it must be clean
//! already: Kbuild refuses `O=` for a tree configured in place). The marker [`MARKER`] is written
//! last and atomically: its presence means the build is complete, and a second build with the same
//! inputs returns at once. A lock file beside the tree keeps two kmodlabs from building the same
//! kernel at once.
#![deny(missing_docs)]

mod build;
mod config;
mod flavour;
mod kconfig;
mod list;
mod marker;
mod progress;
mod source;
mod toolchain;

pub use build::{
    build, cached, finished, kernels_dir, plan, BuildOptions, Plan, BUILD_LOG, FRAGMENT_FILE,
    LOG_TAIL, SOURCE_FILE,
};
pub use config::{
    effective_options, not_stuck, options_not_stuck, parse_config, ConfigOption, DEBUG_FRAGMENT,
    FRAGMENT,
};
pub use flavour::{
    Flavour, Fragment, SourceEdit, DEBUG_LAB, KASAN_SHADOW_NOT_SCANNED, KMEMLEAK_ANY_AGE,
    KMEMLEAK_NO_CONFIRMATION, KMEMLEAK_ONE_SCAN, NO_RUST, RESERVED_PAGES_NOT_SCANNED, RUST_LAB,
    SHEAVES_NOT_SCANNED, STACKDEPOT_NOT_SCANNED, STACKS_NOT_SCANNED,
};
pub use kconfig::unmet_dependencies;
pub use list::{disk_usage, human_size, list, write_table, ListedKernel};
pub use marker::{cache_key, LabKernel, MARKER, RECIPE};
pub use progress::{is_object_line, BuildEvent, ObjectCounter, StderrProgress};
pub use source::{
    makefile_version, newest_tarball, tarball_version, user_source, Source, MIN_KERNEL,
};
pub use toolchain::{
    parse_version, ToolVersions, Toolchain, Version, MIN_BINDGEN, MIN_LLVM, MIN_MAKE, MIN_RUSTC,
};

use std::path::{Path, PathBuf};

/// What kind of problem stopped a kernel build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad `--source` (exit code 2).
    Input,
    /// A tool is missing or too old (exit code 3).
    Tools,
    /// The fragment did not stick in the final `.config` (exit code 3).
    Config,
    /// A step of the build failed (exit code 3).
    Build,
    /// The cache could not be written (exit code 3).
    Io,
}

/// A failed kernel build: what went wrong, in one line per problem, and the end of the make log.
#[derive(Clone, Debug)]
pub struct Error {
    /// The kind of problem.
    pub kind: ErrorKind,
    /// One line per problem.
    pub message: String,
    /// The full log, when a step ran.
    pub log: Option<PathBuf>,
    /// Its last lines ([`LOG_TAIL`]).
    pub log_tail: Vec<String>,
}

impl Error {
    fn new(kind: ErrorKind, message: String) -> Error {
        Error {
            kind,
            message,
            log: None,
            log_tail: Vec::new(),
        }
    }
    pub(crate) fn input(m: String) -> Error {
        Error::new(ErrorKind::Input, m)
    }
    pub(crate) fn infra(m: String) -> Error {
        Error::new(ErrorKind::Tools, m)
    }
    pub(crate) fn tools(problems: Vec<String>) -> Error {
        Error::new(ErrorKind::Tools, problems.join("\n"))
    }
    pub(crate) fn config(m: String) -> Error {
        Error::new(ErrorKind::Config, m)
    }
    pub(crate) fn build(m: String) -> Error {
        Error::new(ErrorKind::Build, m)
    }
    pub(crate) fn io(m: String) -> Error {
        Error::new(ErrorKind::Io, m)
    }
    pub(crate) fn with_log(mut self, log: &Path, tail: Vec<String>) -> Error {
        self.log = Some(log.to_path_buf());
        self.log_tail = tail;
        self
    }

    /// The exit code: 2 for a bad `--source`, 3 (infrastructure) for everything else.
    pub fn exit_code(&self) -> i32 {
        i32::from(match self.kind {
            ErrorKind::Input => kmodlab_events::exit::USAGE,
            _ => kmodlab_events::exit::INFRA,
        })
    }

    /// The message, the log's last lines (indented) and the log's path: what to show a person.
    pub fn report(&self) -> String {
        let mut s = self.message.clone();
        for l in &self.log_tail {
            s.push_str("\n  | ");
            s.push_str(l);
        }
        if let Some(log) = &self.log {
            s.push_str(&format!("\nthe full log: {}", log.display()));
        }
        s
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(log) = &self.log {
            write!(f, " (log: {})", log.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Whether a kernel build tree was built with Rust (`CONFIG_RUST=y` in its `.config`).
pub fn tree_has_rust(tree: &Path) -> bool {
    tree_has(tree, "CONFIG_RUST=y")
}

/// Whether a kernel build tree was built with KASAN (`CONFIG_KASAN=y`): a debug kernel.
pub fn tree_has_kasan(tree: &Path) -> bool {
    tree_has(tree, "CONFIG_KASAN=y")
}

fn tree_has(tree: &Path, line: &str) -> bool {
    std::fs::read_to_string(tree.join(".config")).is_ok_and(|c| c.lines().any(|l| l.trim() == line))
}

/// The make variables and environment for out-of-tree modules of the build tree `tree`: those of
/// its marker when kmodlab built it; the default [`Toolchain`]'s when the tree was built with
/// clang (`CONFIG_CC_IS_CLANG=y`, e.g. a Rust kernel built by hand the same way); none for a
/// gcc-built tree such as Debian's headers.
pub fn tree_make_vars(tree: &Path) -> (Vec<String>, Vec<(String, String)>) {
    if let Some(k) = LabKernel::read(tree) {
        let env = k.make_env.into_iter().collect();
        return (k.make_args, env);
    }
    let clang = std::fs::read_to_string(tree.join(".config"))
        .is_ok_and(|c| c.lines().any(|l| l.trim() == "CONFIG_CC_IS_CLANG=y"));
    if clang {
        let tc = Toolchain::debian();
        return (tc.make_args(), tc.make_env());
    }
    (Vec::new(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_vars_follow_the_tree() {
        let d = std::env::temp_dir().join(format!("kmodlab-kernel-vars-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(tree_make_vars(&d), (vec![], vec![]));
        std::fs::write(d.join(".config"), "CONFIG_CC_IS_GCC=y\n").unwrap();
        assert_eq!(tree_make_vars(&d), (vec![], vec![]));
        assert!(!tree_has_rust(&d));
        std::fs::write(d.join(".config"), "CONFIG_CC_IS_CLANG=y\nCONFIG_RUST=y\n").unwrap();
        let (args, env) = tree_make_vars(&d);
        assert!(args.contains(&"LLVM=-19".to_string()), "{args:?}");
        assert_eq!(env[0].0, "LIBCLANG_PATH");
        assert!(tree_has_rust(&d));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_step_reports_its_log_tail_and_path() {
        let e = Error::build("make bzImage modules failed (exit status: 2)".into()).with_log(
            Path::new("/c/kmodlab-build.log"),
            vec!["a".into(), "b".into()],
        );
        assert_eq!(
            e.to_string(),
            "make bzImage modules failed (exit status: 2) (log: /c/kmodlab-build.log)"
        );
        assert_eq!(
            e.report(),
            "make bzImage modules failed (exit status: 2)\n  | a\n  | b\nthe full log: /c/kmodlab-build.log"
        );
        assert_eq!(e.exit_code(), 3);
    }
}
