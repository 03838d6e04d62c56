//! The kernels kmodlab can use: Debian's installed ones and the lab kernels in the cache.

use crate::build::{kernels_dir, SOURCE_FILE};
use crate::flavour::Flavour;
use crate::marker::LabKernel;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One kernel of `kmodlab kernel list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListedKernel {
    /// `debian` (installed from packages), or the flavour of a lab kernel in the cache (`rust`,
    /// `debug`).
    pub kind: &'static str,
    /// The release, when known (an incomplete build may not have one yet).
    pub release: Option<String>,
    /// `installed`, `built` or `incomplete` (a build that did not finish, or is running).
    pub state: &'static str,
    /// The bootable image.
    pub image: Option<PathBuf>,
    /// The build tree for out-of-tree modules.
    pub tree: PathBuf,
    /// What the kernel came from: its image for Debian, the tarball or tree for a lab
    /// kernel.
    pub source: Option<String>,
    /// The disk space a lab kernel takes in the cache, in bytes (`None` for Debian's).
    pub size_bytes: Option<u64>,
    /// Whether the kernel was built with Rust (`CONFIG_RUST=y` in its tree's `.config`).
    pub rust: bool,
    /// Why a lab kernel whose flavour would have Rust went without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_rust: Option<String>,
}

/// The disk space of everything under `path` (allocated blocks; links are not followed).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            total += disk_usage(&e.path());
        }
    }
    total
}

/// A size for people: `2.4G`, `310M`, `12K`.
pub fn human_size(bytes: u64) -> String {
    const K: u64 = 1024;
    match bytes {
        b if b >= K * K * K => format!("{:.1}G", b as f64 / (K * K * K) as f64),
        b if b >= K * K => format!("{}M", b.div_ceil(K * K)),
        b => format!("{}K", b.div_ceil(K)),
    }
}

/// Debian's kernels under `root` (`/boot/vmlinuz-V` with `/lib/modules/V/build`) and the lab
/// kernels in `cache_dir`, each sorted by release.
pub fn list(root: &Path, cache_dir: &Path) -> Vec<ListedKernel> {
    let mut debian: Vec<ListedKernel> = kmodlab_kbuild::installed(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| {
            let tree = k.tree.filter(|t| t.is_dir())?;
            Some(ListedKernel {
                kind: "debian",
                release: Some(k.release),
                state: "installed",
                source: Some(k.image.display().to_string()),
                image: Some(k.image),
                size_bytes: None,
                rust: crate::tree_has_rust(&tree),
                without_rust: None,
                tree,
            })
        })
        .collect();
    let mut lab: Vec<ListedKernel> = std::fs::read_dir(kernels_dir(cache_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let flavour = Flavour::ALL
                .into_iter()
                .find(|f| name.starts_with(&format!("{}-", f.as_str())))?;
            let tree = e.path();
            Some(match LabKernel::read(&tree).filter(|k| k.image.is_file()) {
                Some(k) => ListedKernel {
                    kind: k.flavour.as_str(),
                    release: Some(k.release),
                    state: "built",
                    image: Some(k.image),
                    size_bytes: Some(match k.disk_bytes {
                        0 => disk_usage(&tree),
                        n => n,
                    }),
                    rust: crate::tree_has_rust(&tree),
                    without_rust: k.without_rust,
                    tree,
                    source: Some(k.source),
                },
                None => ListedKernel {
                    kind: flavour.as_str(),
                    release: std::fs::read_to_string(tree.join("include/config/kernel.release"))
                        .ok()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                    state: "incomplete",
                    image: None,
                    source: std::fs::read_to_string(tree.join(SOURCE_FILE))
                        .ok()
                        .map(|s| s.trim().to_string()),
                    size_bytes: Some(disk_usage(&tree)),
                    rust: crate::tree_has_rust(&tree),
                    without_rust: None,
                    tree,
                },
            })
        })
        .collect();
    lab.sort_by(|a, b| (a.kind, &a.release, &a.tree).cmp(&(b.kind, &b.release, &b.tree)));
    debian.extend(lab);
    debian
}

/// `kmodlab kernel list`'s table: one row per kernel, columns aligned.
pub fn write_table(w: &mut dyn std::io::Write, kernels: &[ListedKernel]) -> std::io::Result<()> {
    let rows: Vec<[String; 6]> = kernels
        .iter()
        .map(|k| {
            [
                k.kind.to_string(),
                k.release.clone().unwrap_or_else(|| "-".into()),
                k.state.to_string(),
                k.size_bytes.map_or_else(|| "-".into(), human_size),
                k.source.clone().unwrap_or_else(|| "-".into()),
                k.tree.display().to_string(),
            ]
        })
        .collect();
    let header = ["KIND", "RELEASE", "STATE", "SIZE", "SOURCE", "TREE"].map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        writeln!(w, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0K");
        assert_eq!(human_size(1500), "2K");
        assert_eq!(human_size(310 << 20), "310M");
        assert_eq!(human_size(2_600_000_000), "2.4G");
    }

    #[test]
    fn lists_debian_kernels_with_headers_and_lab_kernels_by_state() {
        let d = std::env::temp_dir().join(format!("kmodlab-kernel-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let root = d.join("root");
        let cache = d.join("cache");
        std::fs::create_dir_all(root.join("boot")).unwrap();
        for v in ["6.12.9-amd64", "6.1.0-nohdr"] {
            std::fs::write(root.join(format!("boot/vmlinuz-{v}")), "").unwrap();
        }
        std::fs::create_dir_all(root.join("lib/modules/6.12.9-amd64/build")).unwrap();
        let built = cache.join("kernels/rust-7.3-aaaaaaaaaaaa");
        let partial = cache.join("kernels/rust-7.3-bbbbbbbbbbbb");
        let debug = cache.join("kernels/debug-7.3-cccccccccccc");
        std::fs::create_dir_all(built.join("arch/x86/boot")).unwrap();
        std::fs::create_dir_all(debug.join("arch/x86/boot")).unwrap();
        std::fs::write(debug.join("arch/x86/boot/bzImage"), "").unwrap();
        std::fs::write(debug.join(".config"), "CONFIG_KASAN=y\n").unwrap();
        LabKernel {
            flavour: Flavour::Debug,
            without_rust: Some("make rustavailable: no rustc".into()),
            release: "7.3.4".into(),
            image: debug.join("arch/x86/boot/bzImage"),
            tree: debug.clone(),
            make_args: vec![],
            make_env: Default::default(),
            source: "/usr/src/linux-source-7.3.tar.xz".into(),
            key: "cccccccccccc".into(),
            source_edits: Vec::new(),
            build_seconds: 1.0,
            objects: 1,
            disk_bytes: 3 << 30,
        }
        .write()
        .unwrap();
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::create_dir_all(cache.join("kernels/dev")).unwrap();
        std::fs::write(built.join("arch/x86/boot/bzImage"), "").unwrap();
        std::fs::write(
            partial.join(SOURCE_FILE),
            "/usr/src/linux-source-7.3.tar.xz\n",
        )
        .unwrap();
        LabKernel {
            flavour: Flavour::Rust,
            without_rust: None,
            release: "7.3.4".into(),
            image: built.join("arch/x86/boot/bzImage"),
            tree: built.clone(),
            make_args: vec![],
            make_env: Default::default(),
            source: "/usr/src/linux-source-7.3.tar.xz".into(),
            key: "aaaaaaaaaaaa".into(),
            source_edits: Vec::new(),
            build_seconds: 1.0,
            objects: 1,
            disk_bytes: 0,
        }
        .write()
        .unwrap();
        let l = list(&root, &cache);
        let summary: Vec<(&str, Option<&str>, &str)> = l
            .iter()
            .map(|k| (k.kind, k.release.as_deref(), k.state))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("debian", Some("6.12.9-amd64"), "installed"),
                ("debug", Some("7.3.4"), "built"),
                ("rust", None, "incomplete"),
                ("rust", Some("7.3.4"), "built"),
            ]
        );
        assert_eq!(
            l[2].source.as_deref(),
            Some("/usr/src/linux-source-7.3.tar.xz")
        );
        assert_eq!(
            l[0].size_bytes, None,
            "Debian's kernels are not in the cache"
        );
        assert_eq!(l[1].size_bytes, Some(3 << 30), "recorded when built");
        assert!(l[3].size_bytes.unwrap() > 0, "measured when not recorded");
        assert_eq!(
            l[1].without_rust.as_deref(),
            Some("make rustavailable: no rustc")
        );
        let mut table = Vec::new();
        write_table(&mut table, &l).unwrap();
        let table = String::from_utf8(table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        let words = |l: &str| l.split_whitespace().take(5).collect::<Vec<_>>().join(" ");
        assert_eq!(words(lines[0]), "KIND RELEASE STATE SIZE SOURCE", "{table}");
        assert_eq!(
            words(lines[2]),
            "debug 7.3.4 built 3.0G /usr/src/linux-source-7.3.tar.xz",
            "{table}"
        );
        assert!(lines[2].ends_with(&debug.display().to_string()), "{table}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
