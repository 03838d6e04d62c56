//! The kernels kmodlab can use: Debian's installed ones and the lab kernels in the cache.

use crate::build::{kernels_dir, SOURCE_FILE};
use crate::marker::LabKernel;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One kernel of `kmodlab kernel list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListedKernel {
    /// `debian` (installed from packages) or `rust` (a lab kernel in the cache).
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
                tree,
            })
        })
        .collect();
    let mut lab: Vec<ListedKernel> = std::fs::read_dir(kernels_dir(cache_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("rust-")
                && e.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|e| {
            let tree = e.path();
            match LabKernel::read(&tree).filter(|k| k.image.is_file()) {
                Some(k) => ListedKernel {
                    kind: "rust",
                    release: Some(k.release),
                    state: "built",
                    image: Some(k.image),
                    tree,
                    source: Some(k.source),
                },
                None => ListedKernel {
                    kind: "rust",
                    release: std::fs::read_to_string(tree.join("include/config/kernel.release"))
                        .ok()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                    state: "incomplete",
                    image: None,
                    source: std::fs::read_to_string(tree.join(SOURCE_FILE))
                        .ok()
                        .map(|s| s.trim().to_string()),
                    tree,
                },
            }
        })
        .collect();
    lab.sort_by(|a, b| (&a.release, &a.tree).cmp(&(&b.release, &b.tree)));
    debian.extend(lab);
    debian
}

/// `kmodlab kernel list`'s table: one row per kernel, columns aligned.
pub fn write_table(w: &mut dyn std::io::Write, kernels: &[ListedKernel]) -> std::io::Result<()> {
    let rows: Vec<[String; 5]> = kernels
        .iter()
        .map(|k| {
            [
                k.kind.to_string(),
                k.release.clone().unwrap_or_else(|| "-".into()),
                k.state.to_string(),
                k.source.clone().unwrap_or_else(|| "-".into()),
                k.tree.display().to_string(),
            ]
        })
        .collect();
    let header = ["KIND", "RELEASE", "STATE", "SOURCE", "TREE"].map(String::from);
    let mut widths = [0usize; 5];
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
        std::fs::create_dir_all(built.join("arch/x86/boot")).unwrap();
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::create_dir_all(cache.join("kernels/dev")).unwrap();
        std::fs::write(built.join("arch/x86/boot/bzImage"), "").unwrap();
        std::fs::write(
            partial.join(SOURCE_FILE),
            "/usr/src/linux-source-7.3.tar.xz\n",
        )
        .unwrap();
        LabKernel {
            release: "7.3.4".into(),
            image: built.join("arch/x86/boot/bzImage"),
            tree: built.clone(),
            make_args: vec![],
            make_env: Default::default(),
            source: "/usr/src/linux-source-7.3.tar.xz".into(),
            key: "aaaaaaaaaaaa".into(),
            build_seconds: 1.0,
            objects: 1,
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
                ("rust", None, "incomplete"),
                ("rust", Some("7.3.4"), "built"),
            ]
        );
        assert_eq!(
            l[1].source.as_deref(),
            Some("/usr/src/linux-source-7.3.tar.xz")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
