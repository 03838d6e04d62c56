//! The marker of a finished build (`kmodlab-kernel.json`) and the cache key.

use crate::flavour::Flavour;
use kmodlab_kbuild::fnv1a;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The marker's file name, in the tree: written last, so its presence means the build is complete.
pub const MARKER: &str = "kmodlab-kernel.json";

/// A built lab kernel, as its marker file records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabKernel {
    /// Which lab kernel (`rust` for markers written before there were flavours).
    #[serde(default)]
    pub flavour: Flavour,
    /// Why this kernel has no Rust although its flavour would have it (a toolchain `make
    /// rustavailable` refuses, a Kconfig dependency the flavour's options break); `None` when it
    /// has Rust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_rust: Option<String>,
    /// Kernel release (`include/config/kernel.release`, `7.3.4`).
    pub release: String,
    /// The bootable image (`TREE/arch/x86/boot/bzImage`).
    pub image: PathBuf,
    /// The build tree for out-of-tree modules (`make -C TREE M=DIR`).
    pub tree: PathBuf,
    /// Make variables every make in the tree needs (`LLVM=-19`, `RUSTC=...`).
    pub make_args: Vec<String>,
    /// Environment variables every make in the tree needs (`LIBCLANG_PATH`).
    pub make_env: BTreeMap<String, String>,
    /// The source: the tarball or the kernel tree it was built from.
    pub source: String,
    /// The cache key (a hash of the source's identity, the config fragment and the tool versions).
    pub key: String,
    /// The source edits made before the build ([`crate::SourceEdit::name`]); none in a user's tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_edits: Vec<String>,
    /// How long the build took, in seconds.
    pub build_seconds: f64,
    /// Objects compiled (make's `CC`, `RUSTC`, `AR`, `LD` lines).
    #[serde(default)]
    pub objects: usize,
    /// The disk space of the tree when the build finished, in bytes (0: not recorded).
    #[serde(default)]
    pub disk_bytes: u64,
}

impl LabKernel {
    /// The kernel as Kbuild and the VM see it: no module tree; the make variables and environment
    /// for out-of-tree modules.
    pub fn kernel(&self) -> kmodlab_kbuild::Kernel {
        kmodlab_kbuild::Kernel {
            release: self.release.clone(),
            image: self.image.clone(),
            kdir: self.tree.clone(),
            modules_dir: None,
            make_args: self.make_args.clone(),
            make_env: self
                .make_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Whether one kmemleak scan right after an unload finds the module's leaks on this kernel:
    /// kmemleak built in, and the source edits that make a new object reportable at once and
    /// keep stale stack and sheaf slots from hiding it (a debug lab kernel built from the
    /// tarball; not one built from a user's tree, which kmodlab does not edit).
    pub fn leak_check(&self) -> bool {
        let edits = [
            crate::KMEMLEAK_ANY_AGE,
            crate::KMEMLEAK_ONE_SCAN,
            crate::SHEAVES_NOT_SCANNED,
            crate::STACKS_NOT_SCANNED[0],
        ];
        let config = std::fs::read_to_string(self.tree.join(".config")).unwrap_or_default();
        edits
            .iter()
            .all(|e| self.source_edits.iter().any(|n| n == e.name))
            && config.lines().any(|l| l == "CONFIG_DEBUG_KMEMLEAK=y")
    }

    /// The marker as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Reads the marker of `tree`; `None` when there is none or it cannot be read (an incomplete
    /// build).
    pub fn read(tree: &Path) -> Option<LabKernel> {
        let text = std::fs::read_to_string(tree.join(MARKER)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the marker into `self.tree` atomically (a temporary file renamed over it).
    pub fn write(&self) -> std::io::Result<()> {
        let tmp = self
            .tree
            .join(format!(".{MARKER}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, self.tree.join(MARKER)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// How the build itself is done; bump it when a change to the recipe must invalidate old trees.
pub const RECIPE: &str = "1";

/// The cache key: 12 hex digits of a hash of the source's identity, the config fragment (for a
/// flavour, [`Flavour::key_text`]), the tool versions and the make variables.
pub fn cache_key(
    source_identity: &str,
    fragment: &str,
    tools: &crate::ToolVersions,
    make_args: &[String],
) -> String {
    let args = make_args.join(" ");
    let h = fnv1a(&[
        RECIPE,
        source_identity,
        fragment,
        &tools.rustc,
        &tools.bindgen,
        &tools.clang,
        &args,
    ]);
    format!("{h:016x}")[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolVersions;

    fn tools() -> ToolVersions {
        ToolVersions {
            rustc: "rustc 1.96.0 (ac68faa20 2026-05-25)".into(),
            bindgen: "bindgen 0.71.1".into(),
            clang: "Debian clang version 19.1.7 (3~deb12u1)".into(),
        }
    }

    #[test]
    fn the_key_changes_with_each_input() {
        let args = vec!["LLVM=-19".to_string()];
        let base = cache_key("tarball a size 1", "CONFIG_RUST=y\n", &tools(), &args);
        assert_eq!(base.len(), 12);
        assert_eq!(
            base,
            cache_key("tarball a size 1", "CONFIG_RUST=y\n", &tools(), &args),
            "stable"
        );
        let mut others = vec![
            cache_key("tarball a size 2", "CONFIG_RUST=y\n", &tools(), &args),
            cache_key(
                "tarball a size 1",
                "CONFIG_RUST=y\nCONFIG_X=y\n",
                &tools(),
                &args,
            ),
            cache_key(
                "tarball a size 1",
                "CONFIG_RUST=y\n",
                &tools(),
                &["LLVM=-18".into()],
            ),
        ];
        for field in 0..3 {
            let mut t = tools();
            match field {
                0 => t.rustc = "rustc 1.97.0 (x 2026-07-01)".into(),
                1 => t.bindgen = "bindgen 0.72.0".into(),
                _ => t.clang = "Debian clang version 19.1.8".into(),
            }
            others.push(cache_key("tarball a size 1", "CONFIG_RUST=y\n", &t, &args));
        }
        for o in &others {
            assert_ne!(o, &base);
        }
        // Parts are delimited: moving a byte from one part to the next changes the key.
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }

    #[test]
    fn the_marker_round_trips_and_is_written_atomically() {
        let tree =
            std::env::temp_dir().join(format!("kmodlab-kernel-marker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree).unwrap();
        assert_eq!(LabKernel::read(&tree), None);
        let k = LabKernel {
            flavour: Flavour::Debug,
            without_rust: Some("make rustavailable: no".into()),
            release: "7.3.4".into(),
            image: tree.join("arch/x86/boot/bzImage"),
            tree: tree.clone(),
            make_args: vec!["LLVM=-19".into(), "RUSTC=/usr/bin/rustc".into()],
            make_env: [(
                "LIBCLANG_PATH".to_string(),
                "/usr/lib/llvm-19/lib".to_string(),
            )]
            .into_iter()
            .collect(),
            source: "/usr/src/linux-source-7.3.tar.xz".into(),
            key: "0123456789ab".into(),
            source_edits: Vec::new(),
            build_seconds: 242.5,
            objects: 1234,
            disk_bytes: 1 << 30,
        };
        k.write().unwrap();
        assert_eq!(LabKernel::read(&tree).as_ref(), Some(&k));
        let names: Vec<String> = std::fs::read_dir(&tree)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![MARKER.to_string()], "no temporary file left");
        let kb = k.kernel();
        assert_eq!(kb.kdir, tree);
        assert_eq!(kb.modules_dir, None);
        assert_eq!(
            kb.make_env,
            vec![(
                "LIBCLANG_PATH".to_string(),
                "/usr/lib/llvm-19/lib".to_string()
            )]
        );
        // A marker from before flavours reads as the Rust lab kernel's.
        let mut old: serde_json::Value = serde_json::from_str(&k.to_json()).unwrap();
        for f in ["flavour", "without_rust", "disk_bytes"] {
            old.as_object_mut().unwrap().remove(f);
        }
        std::fs::write(tree.join(MARKER), old.to_string()).unwrap();
        let read = LabKernel::read(&tree).unwrap();
        assert_eq!(
            (read.flavour, read.without_rust, read.disk_bytes),
            (Flavour::Rust, None, 0)
        );
        std::fs::write(tree.join(MARKER), "{ truncated").unwrap();
        assert_eq!(LabKernel::read(&tree), None);
        std::fs::remove_dir_all(&tree).unwrap();
    }
}
