//! The toolchain a Rust-enabled kernel is built with, and the checks that each tool is there and
//! new enough.

use crate::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tool version, `major.minor.patch` (a missing part reads as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The version in a tool's `--version` output: the first word made of digits and dots with at
/// least one dot (`rustc 1.96.0 (ac68faa20 2026-05-25)`, `bindgen 0.71.1`,
/// `Debian clang version 19.1.7 (3~deb12u1)`, `GNU Make 4.3`). A suffix after `-` or `+` is
/// ignored (`1.97.0-nightly`).
pub fn parse_version(output: &str) -> Option<Version> {
    let first = output.lines().find(|l| !l.trim().is_empty())?;
    first.split_whitespace().find_map(|word| {
        let core = word.split(['-', '+']).next()?;
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() < 2
            || parts.len() > 4
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let n = |i: usize| parts.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Version(n(0), n(1), n(2)))
    })
}

/// The tools the Rust lab kernel is built with. [`Toolchain::debian`] is the one DESIGN.md
/// describes: Debian's `rustc-web` in `/usr/bin`, LLVM 19, bindgen-cli in `/usr/local/bin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// The `LLVM=` make variable: the suffix of the versioned LLVM tools (`-19`: `clang-19`,
    /// `ld.lld-19`, `llvm-ar-19`, ...).
    pub llvm_suffix: String,
    /// The Rust compiler (`RUSTC=` and `HOSTRUSTC=`); never the rustup proxy.
    pub rustc: PathBuf,
    /// `RUSTDOC=`.
    pub rustdoc: PathBuf,
    /// `BINDGEN=`.
    pub bindgen: PathBuf,
    /// Where bindgen finds libclang (the `LIBCLANG_PATH` environment variable).
    pub libclang_path: PathBuf,
    /// Where tools named without a directory (`make`, `clang-19`, `flex`, ...) are looked up;
    /// `None`: the environment's `PATH`.
    pub search_path: Option<OsString>,
    /// Where the C headers of libelf are expected (objtool needs them).
    pub include_dir: PathBuf,
}

/// Minimum versions for Linux 7.2 (its `scripts/min-tool-version.sh`).
pub const MIN_RUSTC: Version = Version(1, 85, 0);
/// Minimum bindgen.
pub const MIN_BINDGEN: Version = Version(0, 71, 1);
/// Minimum LLVM (clang, lld).
pub const MIN_LLVM: Version = Version(15, 0, 0);
/// Minimum GNU make.
pub const MIN_MAKE: Version = Version(4, 0, 0);

/// The versions of the tools that shape the build's output (part of the cache key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolVersions {
    /// `rustc --version`, first line.
    pub rustc: String,
    /// `bindgen --version`, first line.
    pub bindgen: String,
    /// `clang --version`, first line.
    pub clang: String,
}

impl Default for Toolchain {
    fn default() -> Toolchain {
        Toolchain::debian()
    }
}

impl Toolchain {
    /// The toolchain of DESIGN.md. bindgen is `/usr/local/bin/bindgen`, or, when that is absent,
    /// the copy `scripts/setup` may keep in kmodlab's cache (`tools/bin/bindgen`).
    pub fn debian() -> Toolchain {
        let mut bindgen = PathBuf::from("/usr/local/bin/bindgen");
        if !bindgen.is_file() {
            let cached = kmodlab_kbuild::cache_dir().join("tools/bin/bindgen");
            if cached.is_file() {
                bindgen = cached;
            }
        }
        Toolchain {
            llvm_suffix: "-19".into(),
            rustc: "/usr/bin/rustc".into(),
            rustdoc: "/usr/bin/rustdoc".into(),
            bindgen,
            libclang_path: "/usr/lib/llvm-19/lib".into(),
            search_path: None,
            include_dir: "/usr/include".into(),
        }
    }

    /// The make variables every `make` of the kernel tree needs, including `make -C TREE M=DIR`
    /// for out-of-tree modules.
    pub fn make_args(&self) -> Vec<String> {
        vec![
            format!("LLVM={}", self.llvm_suffix),
            format!("RUSTC={}", self.rustc.display()),
            format!("HOSTRUSTC={}", self.rustc.display()),
            format!("RUSTDOC={}", self.rustdoc.display()),
            format!("BINDGEN={}", self.bindgen.display()),
        ]
    }

    /// The environment variables every `make` of the tree needs.
    pub fn make_env(&self) -> Vec<(String, String)> {
        vec![(
            "LIBCLANG_PATH".into(),
            self.libclang_path.display().to_string(),
        )]
    }

    /// A tool named without a directory, looked up on the search path.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let path = match &self.search_path {
            Some(p) => p.clone(),
            None => std::env::var_os("PATH").unwrap_or_default(),
        };
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// A command for `make` with the search path applied.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some(p) = &self.search_path {
            c.env("PATH", p);
        }
        c
    }

    /// Checks every tool the build needs; one line per problem, each naming the tool, what was
    /// found and what is needed. `extract` adds tar and xz (for a source tarball).
    pub fn check(&self, extract: bool) -> Result<ToolVersions, Error> {
        let mut problems = Vec::new();
        let setup = "run scripts/setup";
        let mut versioned = |name: &str, path: Option<PathBuf>, shown: &str, min: Version| {
            let Some(path) = path.filter(|p| p.is_file()) else {
                problems.push(format!(
                    "{name} {min} or newer needed (found none at {shown}): {setup}"
                ));
                return String::new();
            };
            let out = version_output(self, &path);
            match parse_version(&out) {
                Some(v) if v >= min => out.lines().next().unwrap_or("").trim().to_string(),
                Some(v) => {
                    problems.push(format!(
                        "{name} {min} or newer needed (found {v} at {}): {setup}",
                        path.display()
                    ));
                    String::new()
                }
                None => {
                    problems.push(format!(
                        "{name} {min} or newer needed (found {} with no version in `--version`: \
                         {:?}): {setup}",
                        path.display(),
                        out.lines().next().unwrap_or("").trim()
                    ));
                    String::new()
                }
            }
        };
        let on_path = |n: &str| format!("{n} on PATH");
        versioned("make", self.find("make"), &on_path("make"), MIN_MAKE);
        let rustc = versioned(
            "rustc",
            Some(self.rustc.clone()),
            &self.rustc.display().to_string(),
            MIN_RUSTC,
        );
        versioned(
            "rustdoc",
            Some(self.rustdoc.clone()),
            &self.rustdoc.display().to_string(),
            MIN_RUSTC,
        );
        let bindgen = versioned(
            "bindgen",
            Some(self.bindgen.clone()),
            &self.bindgen.display().to_string(),
            MIN_BINDGEN,
        );
        let clang_name = format!("clang{}", self.llvm_suffix);
        let clang = versioned(
            &clang_name,
            self.find(&clang_name),
            &on_path(&clang_name),
            MIN_LLVM,
        );
        let lld_name = format!("ld.lld{}", self.llvm_suffix);
        versioned(
            &lld_name,
            self.find(&lld_name),
            &on_path(&lld_name),
            MIN_LLVM,
        );
        let mut present = |name: &str, package: &str| {
            if self.find(name).is_none() {
                problems.push(format!(
                    "{name} needed (found none on PATH): {setup} (Debian package {package})"
                ));
            }
        };
        for (tool, package) in [
            (format!("llvm-ar{}", self.llvm_suffix), "llvm-19"),
            (format!("llvm-nm{}", self.llvm_suffix), "llvm-19"),
            (format!("llvm-objcopy{}", self.llvm_suffix), "llvm-19"),
            ("flex".into(), "flex"),
            ("bison".into(), "bison"),
            ("bc".into(), "bc"),
        ] {
            present(&tool, package);
        }
        if extract {
            present("tar", "tar");
            present("xz", "xz-utils");
        }
        let has_libclang = std::fs::read_dir(&self.libclang_path).is_ok_and(|d| {
            d.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("libclang") && n.contains(".so") && !n.starts_with("libclang-cpp")
            })
        });
        if !has_libclang {
            problems.push(format!(
                "libclang needed by bindgen (found no libclang*.so in LIBCLANG_PATH={}): {setup} \
                 (Debian package libclang-19-dev)",
                self.libclang_path.display()
            ));
        }
        if !self.include_dir.join("gelf.h").is_file() {
            problems.push(format!(
                "libelf headers needed by objtool (found no {}): {setup} (Debian package \
                 libelf-dev)",
                self.include_dir.join("gelf.h").display()
            ));
        }
        if !problems.is_empty() {
            return Err(Error::tools(problems));
        }
        Ok(ToolVersions {
            rustc,
            bindgen,
            clang,
        })
    }
}

/// The output of `TOOL --version` (stdout, else stderr); empty when it cannot run.
/// `TOOL --version`, remembered in kmodlab's cache (`tool-versions.json`) for as long as the
/// tool's file stays the same (path, size, times, inode): every lookup of a cached lab kernel
/// checks the toolchain, and running clang, rustc, rustdoc and bindgen costs 0.3-0.7 s.
fn version_output(tc: &Toolchain, tool: &Path) -> String {
    let cache = kmodlab_kbuild::cache_dir().join("tool-versions.json");
    remembered_version_output(tc, tool, &cache)
}

fn remembered_version_output(tc: &Toolchain, tool: &Path, cache: &Path) -> String {
    let Some((real, identity)) = file_identity(tool) else {
        return run_version(tc, tool);
    };
    // Real path -> (identity, output).
    let mut known: std::collections::BTreeMap<String, (String, String)> = std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some((id, out)) = known.get(&real) {
        if *id == identity {
            return out.clone();
        }
    }
    let out = run_version(tc, tool);
    if !out.trim().is_empty() {
        known.retain(|path, _| Path::new(path).exists());
        known.insert(real, (identity, out.clone()));
        if let Ok(json) = serde_json::to_vec_pretty(&known) {
            let tmp = cache.with_extension(format!("json.{}.tmp", std::process::id()));
            let _ = std::fs::create_dir_all(cache.parent().unwrap_or(Path::new(".")));
            if std::fs::write(&tmp, json)
                .and_then(|()| std::fs::rename(&tmp, cache))
                .is_err()
            {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    out
}

/// A tool's real path, and what identifies its file: size, modification and change times,
/// inode; `None` for a rustup proxy (the same file runs whichever toolchain is selected).
fn file_identity(tool: &Path) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(tool).ok()?;
    if real.file_name().is_some_and(|n| n == "rustup") {
        return None;
    }
    let m = std::fs::metadata(&real).ok()?;
    Some((
        real.to_string_lossy().into_owned(),
        format!(
            "{} {}.{:09} {}.{:09} {}",
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino()
        ),
    ))
}

fn run_version(tc: &Toolchain, tool: &Path) -> String {
    let Ok(out) = tc
        .command(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        text
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_version_is_asked_once_while_the_tool_stays_the_same() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("kmodlab-tool-versions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tool = dir.join("tool");
        let calls = dir.join("calls");
        let write = |version: &str| {
            std::fs::write(
                &tool,
                format!(
                    "#!/bin/sh\necho call >> {}\necho 'tool {version}'\n",
                    calls.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("1.2.3");
        let cache = dir.join("versions.json");
        let tc = Toolchain::debian();
        let count = || {
            std::fs::read_to_string(&calls)
                .unwrap_or_default()
                .lines()
                .count()
        };
        assert_eq!(
            remembered_version_output(&tc, &tool, &cache),
            "tool 1.2.3\n"
        );
        assert_eq!(
            remembered_version_output(&tc, &tool, &cache),
            "tool 1.2.3\n"
        );
        assert_eq!(count(), 1, "asked again although the tool did not change");
        write("1.20.0");
        assert_eq!(
            remembered_version_output(&tc, &tool, &cache),
            "tool 1.20.0\n"
        );
        assert_eq!(count(), 2);
        let known: std::collections::BTreeMap<String, (String, String)> =
            serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
        assert_eq!(known.len(), 1, "one entry per tool: {known:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn versions_are_read_from_version_output() {
        let cases = [
            (
                "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)",
                Version(1, 96, 0),
            ),
            ("bindgen 0.71.1\n", Version(0, 71, 1)),
            (
                "Debian clang version 19.1.7 (3~deb12u1)\nTarget: x86_64-pc-linux-gnu",
                Version(19, 1, 7),
            ),
            ("clang version 19.1.7", Version(19, 1, 7)),
            ("GNU Make 4.3\nBuilt for x86_64", Version(4, 3, 0)),
            (
                "Debian LLD 19.1.7 (compatible with GNU linkers)",
                Version(19, 1, 7),
            ),
            ("rustc 1.97.0-nightly (abc 2026-06-01)", Version(1, 97, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_version(text), Some(want), "{text}");
        }
        assert_eq!(parse_version("bindgen"), None);
        assert_eq!(parse_version(""), None);
        assert!(Version(0, 71, 1) >= MIN_BINDGEN);
        assert!(Version(0, 70, 9) < MIN_BINDGEN);
        assert!(Version(1, 96, 0) > MIN_RUSTC);
    }

    pub(crate) fn fake_tool(dir: &Path, name: &str, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho '{version}'\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A toolchain made of shell scripts in a scratch directory.
    pub(crate) fn fake_toolchain(name: &str) -> (PathBuf, Toolchain) {
        let dir =
            std::env::temp_dir().join(format!("kmodlab-kernel-tc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.join("include")).unwrap();
        std::fs::create_dir_all(dir.join("llvm")).unwrap();
        std::fs::write(dir.join("include/gelf.h"), "").unwrap();
        std::fs::write(dir.join("llvm/libclang-19.so.1"), "").unwrap();
        fake_tool(&bin, "make", "GNU Make 4.3");
        fake_tool(&bin, "rustc", "rustc 1.96.0 (ac68faa20 2026-05-25)");
        fake_tool(&bin, "rustdoc", "rustdoc 1.96.0 (ac68faa20 2026-05-25)");
        fake_tool(&bin, "bindgen", "bindgen 0.71.1");
        fake_tool(&bin, "clang-19", "Debian clang version 19.1.7 (3~deb12u1)");
        fake_tool(
            &bin,
            "ld.lld-19",
            "Debian LLD 19.1.7 (compatible with GNU linkers)",
        );
        for t in [
            "llvm-ar-19",
            "llvm-nm-19",
            "llvm-objcopy-19",
            "flex",
            "bison",
            "bc",
            "tar",
            "xz",
        ] {
            fake_tool(&bin, t, "1.0");
        }
        let tc = Toolchain {
            llvm_suffix: "-19".into(),
            rustc: bin.join("rustc"),
            rustdoc: bin.join("rustdoc"),
            bindgen: bin.join("bindgen"),
            libclang_path: dir.join("llvm"),
            search_path: Some(bin.clone().into_os_string()),
            include_dir: dir.join("include"),
        };
        (dir, tc)
    }

    #[test]
    fn a_complete_toolchain_passes_and_reports_versions() {
        let (dir, tc) = fake_toolchain("ok");
        let v = tc.check(true).unwrap();
        assert_eq!(v.bindgen, "bindgen 0.71.1");
        assert!(v.rustc.starts_with("rustc 1.96.0"));
        assert!(v.clang.contains("19.1.7"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_or_old_tool_is_one_line_naming_found_and_needed() {
        let (dir, mut tc) = fake_toolchain("bad");
        tc.bindgen = dir.join("nowhere/bindgen");
        fake_tool(&dir.join("bin"), "rustc", "rustc 1.80.0 (x 2024-07-21)");
        std::fs::remove_file(dir.join("bin/flex")).unwrap();
        let e = tc.check(false).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            format!(
                "rustc 1.85.0 or newer needed (found 1.80.0 at {}): run scripts/setup",
                dir.join("bin/rustc").display()
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "bindgen 0.71.1 or newer needed (found none at {}): run scripts/setup",
                dir.join("nowhere/bindgen").display()
            )
        );
        assert!(
            lines[2].starts_with("flex needed (found none on PATH)"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn make_variables_name_every_tool() {
        let tc = Toolchain::debian();
        let args = tc.make_args();
        assert!(args.contains(&"LLVM=-19".to_string()));
        assert!(args.contains(&"RUSTC=/usr/bin/rustc".to_string()));
        assert!(args.contains(&"RUSTDOC=/usr/bin/rustdoc".to_string()));
        assert!(args.iter().any(|a| a.starts_with("BINDGEN=")));
        assert_eq!(
            tc.make_env(),
            vec![(
                "LIBCLANG_PATH".to_string(),
                "/usr/lib/llvm-19/lib".to_string()
            )]
        );
    }
}
