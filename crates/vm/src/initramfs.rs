//! The guest's root: an initramfs whose `/init` is the kmodlab binary itself.

use crate::cpio::Cpio;
use std::io;
use std::path::{Path, PathBuf};

/// A module file to place in the guest, already decompressed.
#[derive(Clone, Debug)]
pub struct GuestModule {
    /// File name inside the guest directory (`virtio_console.ko`).
    pub file_name: String,
    /// The uncompressed module image.
    pub image: Vec<u8>,
}

/// Builds the initramfs: `/init`, `/dev/console`, the agent's transport modules (in load order) and
/// the modules under test.
pub fn build(
    init: &[u8],
    boot_modules: &[GuestModule],
    modules: &[GuestModule],
    files: &[(String, Vec<u8>)],
) -> Vec<u8> {
    let mut c = Cpio::new();
    for d in ["dev", "proc", "sys", "tmp", "kmodlab"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.char_device("dev/null", 1, 3);
    c.file("init", 0o755, init);
    let boot = kmodlab_proto::GUEST_BOOT_MODULE_DIR;
    c.dir(boot);
    let mut order = String::new();
    for m in boot_modules {
        c.file(&format!("{boot}/{}", m.file_name), 0o644, &m.image);
        order.push_str(&m.file_name);
        order.push('\n');
    }
    c.file(&format!("{boot}/order"), 0o644, order.as_bytes());
    let dir = kmodlab_proto::GUEST_MODULE_DIR;
    c.dir(dir);
    for m in modules {
        c.file(&format!("{dir}/{}", m.file_name), 0o644, &m.image);
    }
    let mut made: Vec<String> = ["dev", "proc", "sys", "tmp", "kmodlab", boot, dir]
        .iter()
        .map(|d| d.trim_start_matches('/').to_string())
        .collect();
    for (path, data) in files {
        let path = path.trim_start_matches('/');
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p)
            .unwrap_or(&[])
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if !made.contains(&parent) {
                c.dir(&parent);
                made.push(parent.clone());
            }
        }
        c.file(path, 0o644, data);
    }
    c.finish()
}

/// The modules the agent needs to reach the host, in load order, read from a kernel's module tree
/// (`/lib/modules/RELEASE`): virtio_console and its dependencies, unless built in.
pub fn transport_modules(modules_dir: &Path) -> io::Result<Vec<GuestModule>> {
    let builtin = std::fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    if builtin.lines().any(|l| l.ends_with("/virtio_console.ko")) {
        return Ok(Vec::new());
    }
    let dep_path = modules_dir.join("modules.dep");
    let deps = std::fs::read_to_string(&dep_path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dep_path.display())))?;
    let order = load_order(&deps, "virtio_console").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{}: virtio_console is neither built in nor a module",
                dep_path.display()
            ),
        )
    })?;
    order
        .into_iter()
        .map(|rel| {
            let path: PathBuf = modules_dir.join(&rel);
            let raw = std::fs::read(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let image = kmodlab_modfile::decompress(&raw)
                .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
                .into_owned();
            let base = rel.rsplit('/').next().unwrap_or(&rel);
            let file_name = format!("{}.ko", base.split(".ko").next().unwrap_or(base));
            Ok(GuestModule { file_name, image })
        })
        .collect()
}

/// The files to load for `module` from the text of modules.dep, dependencies first.
pub fn load_order(modules_dep: &str, module: &str) -> Option<Vec<String>> {
    let name_of = |path: &str| {
        let base = path.rsplit('/').next().unwrap_or(path);
        base.split(".ko").next().unwrap_or(base).replace('-', "_")
    };
    let line = modules_dep.lines().find(|l| {
        l.split_once(':')
            .is_some_and(|(path, _)| name_of(path) == module.replace('-', "_"))
    })?;
    let (path, deps) = line.split_once(':')?;
    // modules.dep lists the deepest dependency last: load in reverse.
    let mut order: Vec<String> = deps.split_whitespace().rev().map(String::from).collect();
    order.push(path.to_string());
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_first() {
        let dep =
            "kernel/a/virtio_console.ko.xz: kernel/b/virtio_ring.ko.xz kernel/c/virtio.ko.xz\n\
                   kernel/c/virtio.ko.xz:\n";
        assert_eq!(
            load_order(dep, "virtio_console").unwrap(),
            [
                "kernel/c/virtio.ko.xz",
                "kernel/b/virtio_ring.ko.xz",
                "kernel/a/virtio_console.ko.xz"
            ]
        );
        assert_eq!(
            load_order(dep, "virtio").unwrap(),
            ["kernel/c/virtio.ko.xz"]
        );
        assert!(load_order(dep, "nope").is_none());
    }
}
