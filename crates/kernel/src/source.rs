//! Where the kernel source comes from: Debian's `linux-source` tarball, or a tree the user names.

use crate::Error;
use std::path::{Path, PathBuf};

/// The oldest kernel the Rust lab supports: 7.2 has integer parameters in Rust modules.
pub const MIN_KERNEL: (u32, u32) = (7, 2);

/// A kernel source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `linux-source-V.tar.xz` tarball: extracted into the cache and built there.
    Tarball {
        /// The tarball.
        path: PathBuf,
        /// `7.3`, from the file name.
        version: String,
    },
    /// An unpacked kernel tree: built out of tree (`make O=CACHEDIR`), so it stays clean.
    Tree {
        /// The tree (canonical).
        path: PathBuf,
        /// `7.3.4`, from its Makefile.
        version: String,
    },
}

impl Source {
    /// The kernel version as far as it is known before building (`7.3`, `7.3.4`).
    pub fn version(&self) -> &str {
        match self {
            Source::Tarball { version, .. } | Source::Tree { version, .. } => version,
        }
    }

    /// The tarball or tree.
    pub fn path(&self) -> &Path {
        match self {
            Source::Tarball { path, .. } | Source::Tree { path, .. } => path,
        }
    }

    /// What identifies the source's contents, for the cache key: the tarball's path, size and
    /// modification time; the tree's path, Makefile version and git `HEAD` when it is a git tree.
    pub fn identity(&self) -> Result<String, Error> {
        match self {
            Source::Tarball { path, .. } => {
                let m = std::fs::metadata(path)
                    .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
                    .unwrap_or_default();
                Ok(format!(
                    "tarball {} size {} mtime {mtime}",
                    path.display(),
                    m.len()
                ))
            }
            Source::Tree { path, version } => {
                let head = if path.join(".git").exists() {
                    std::process::Command::new("git")
                        .arg("-C")
                        .arg(path)
                        .args(["rev-parse", "HEAD"])
                        .stderr(std::process::Stdio::null())
                        .output()
                        .ok()
                        .filter(|o| o.status.success())
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                Ok(format!(
                    "tree {} version {version} head {head}",
                    path.display()
                ))
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

/// `major.minor` of a version string (`7.3.4` -> (7, 3)).
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The version in a tarball name: `linux-source-7.3.tar.xz` -> `7.3`.
pub fn tarball_version(name: &str) -> Option<String> {
    let v = name.strip_prefix("linux-source-")?;
    let v = v.split(".tar").next()?;
    major_minor(v)?;
    Some(v.to_string())
}

/// The newest `linux-source-7.*.tar.xz` in `dir` (`/usr/src`) that is at least [`MIN_KERNEL`].
pub fn newest_tarball(dir: &Path) -> Result<Source, Error> {
    let mut found: Vec<((u32, u32), PathBuf, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if !name.ends_with(".tar.xz") {
                return None;
            }
            let v = tarball_version(&name)?;
            let mm = major_minor(&v)?;
            (mm >= MIN_KERNEL).then(|| (mm, e.path(), v))
        })
        .collect();
    found.sort();
    let (_, path, version) = found.pop().ok_or_else(|| {
        Error::infra(format!(
            "no {}/linux-source-7.*.tar.xz ({}.{} or newer needed): run scripts/setup (Debian \
             package linux-source-7.2 from trixie-backports), or give --source DIR",
            dir.display(),
            MIN_KERNEL.0,
            MIN_KERNEL.1
        ))
    })?;
    Ok(Source::Tarball { path, version })
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from a kernel Makefile.
pub fn makefile_version(makefile: &str) -> Option<String> {
    let get = |key: &str| {
        makefile.lines().take(20).find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (v, p) = (get("VERSION")?, get("PATCHLEVEL")?);
    let s = get("SUBLEVEL")
        .filter(|s| !s.is_empty())
        .unwrap_or("0".into());
    let version = format!("{v}.{p}.{s}");
    major_minor(&version)?;
    Some(version)
}

/// The source the user named with `--source`: a kernel tree (a directory with the kernel's
/// Makefile), or a `linux-source-*.tar.*` tarball. Input errors (exit 2) when it is neither or
/// older than [`MIN_KERNEL`].
pub fn user_source(path: &Path) -> Result<Source, Error> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::input(format!("--source {}: {e}", path.display())))?;
    let canon = std::fs::canonicalize(path)
        .map_err(|e| Error::input(format!("--source {}: {e}", path.display())))?;
    let (source, mm) = if meta.is_dir() {
        let makefile = std::fs::read_to_string(canon.join("Makefile")).unwrap_or_default();
        let version = makefile_version(&makefile)
            .filter(|_| canon.join("Kconfig").is_file())
            .ok_or_else(|| {
                Error::input(format!(
                    "--source {}: not a kernel source tree (no Kconfig, or no Makefile with \
                     VERSION and PATCHLEVEL)",
                    path.display()
                ))
            })?;
        if canon.join(".config").exists() || canon.join("include/config").exists() {
            return Err(Error::input(format!(
                "--source {}: the tree is configured in place (it has a .config), and Kbuild \
                 refuses to build such a tree out of tree (O=): run `make mrproper` in it, or \
                 give a clean copy",
                path.display()
            )));
        }
        let mm = major_minor(&version).unwrap_or((0, 0));
        (
            Source::Tree {
                path: canon,
                version,
            },
            mm,
        )
    } else {
        let name = canon
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let version = tarball_version(name).ok_or_else(|| {
            Error::input(format!(
                "--source {}: neither a kernel source tree nor a linux-source-V.tar.* tarball",
                path.display()
            ))
        })?;
        let mm = major_minor(&version).unwrap_or((0, 0));
        (
            Source::Tarball {
                path: canon,
                version,
            },
            mm,
        )
    };
    if mm < MIN_KERNEL {
        return Err(Error::input(format!(
            "--source {}: Linux {} is too old for the Rust lab ({}.{} or newer needed)",
            path.display(),
            source.version(),
            MIN_KERNEL.0,
            MIN_KERNEL.1
        )));
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_names_give_versions() {
        assert_eq!(
            tarball_version("linux-source-7.3.tar.xz").as_deref(),
            Some("7.3")
        );
        assert_eq!(
            tarball_version("linux-source-6.12.tar.xz").as_deref(),
            Some("6.12")
        );
        assert_eq!(tarball_version("linux-headers-7.3.tar.xz"), None);
        assert_eq!(tarball_version("linux-source-x.tar.xz"), None);
    }

    #[test]
    fn the_newest_supported_tarball_wins() {
        let d = std::env::temp_dir().join(format!("kmodlab-kernel-src-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let e = newest_tarball(&d).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("scripts/setup"), "{e}");
        for n in [
            "linux-source-6.12.tar.xz",
            "linux-source-7.2.tar.xz",
            "linux-source-7.10.tar.xz",
            "linux-source-7.3.tar.xz",
            "linux-source-7.11.tar.bz2",
        ] {
            std::fs::write(d.join(n), "").unwrap();
        }
        let s = newest_tarball(&d).unwrap();
        assert_eq!(s.version(), "7.10");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn makefile_versions() {
        let mk = "# SPDX\nVERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\nEXTRAVERSION =\n";
        assert_eq!(makefile_version(mk).as_deref(), Some("7.3.4"));
        assert_eq!(makefile_version("all:\n").as_deref(), None);
    }

    #[test]
    fn a_nonexistent_source_is_an_input_error_in_one_line() {
        let e = user_source(Path::new("/nonexistent/kmodlab-linux")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("--source /nonexistent/kmodlab-linux: "),
            "{text}"
        );
    }

    #[test]
    fn a_directory_that_is_no_kernel_or_too_old_is_an_input_error() {
        let d = std::env::temp_dir().join(format!("kmodlab-kernel-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let e = user_source(&d).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not a kernel source tree"), "{e}");
        std::fs::write(d.join("Kconfig"), "").unwrap();
        std::fs::write(
            d.join("Makefile"),
            "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 9\n",
        )
        .unwrap();
        let e = user_source(&d).unwrap_err();
        assert!(e.to_string().contains("too old"), "{e}");
        std::fs::write(
            d.join("Makefile"),
            "VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 0\n",
        )
        .unwrap();
        let s = user_source(&d).unwrap();
        assert_eq!(s.version(), "7.3.0");
        std::fs::write(d.join(".config"), "CONFIG_RUST=y\n").unwrap();
        let e = user_source(&d).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("make mrproper"), "{e}");
        std::fs::remove_file(d.join(".config")).unwrap();
        assert!(s.identity().unwrap().contains("version 7.3.0"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
