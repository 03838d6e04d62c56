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

/// The module tools kmodlab itself is in the guest (links to `/init`), found on the shell's
/// `PATH` before any busybox applet of the same name.
pub const GUEST_TOOLS: [&str; 7] = [
    "insmod", "rmmod", "lsmod", "modinfo", "modprobe", "depmod", "dmesg",
];
/// Where the links to [`GUEST_TOOLS`] are.
pub const GUEST_TOOLS_DIR: &str = "usr/local/sbin";

/// A shell and the everyday commands for the guest: a static busybox and its applets.
#[derive(Clone, Debug)]
pub struct Userland {
    /// The static busybox binary.
    pub busybox: Vec<u8>,
    /// Where its applets go, as `busybox --list-full` prints them (`bin/sh`, `usr/bin/tail`).
    pub applets: Vec<String>,
}

impl Userland {
    /// Reads a static busybox and asks it for its applets.
    pub fn from_busybox(path: &Path) -> io::Result<Userland> {
        let busybox = std::fs::read(path)?;
        let out = std::process::Command::new(path)
            .arg("--list-full")
            .stderr(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{} --list-full failed ({})",
                path.display(),
                out.status
            )));
        }
        let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_start_matches('/').to_string())
            .filter(|l| !l.is_empty() && !l.contains("..") && l.contains('/'))
            .filter(|l| !GUEST_TOOLS.contains(&l.rsplit('/').next().unwrap_or(l)))
            .collect();
        let mut busybox = busybox;
        hide_applets(&mut busybox, &GUEST_TOOLS);
        Ok(Userland { busybox, applets })
    }
}

/// Makes busybox forget the applets named `hide`, so that its shell finds kmodlab's tools of
/// those names on `PATH`.
///
/// Debian's static busybox is built to prefer its own applets to `PATH` (ash runs an applet
/// whenever a command has its name), so links in front of it on `PATH` are not enough. Its
/// applet names are one block of NUL-terminated names, sorted; a name whose last letter is
/// made upper case keeps its length and its place in the order (no two applet names differ only
/// in their last letter), so every other applet is still found and the hidden ones are not.
/// Nothing changes when the block is not found exactly once.
pub fn hide_applets(busybox: &mut [u8], hide: &[&str]) -> usize {
    let names = applet_names(busybox);
    let Some((start, names)) = names else {
        return 0;
    };
    let mut at = start;
    let mut hidden = 0;
    for name in names {
        let len = name.len();
        if hide.contains(&name.as_str()) {
            let last = at + len - 1;
            busybox[last] = busybox[last].to_ascii_uppercase();
            hidden += 1;
        }
        at += len + 1;
    }
    hidden
}

/// The applet-name block of a busybox binary: where it starts, and the names. Found as the
/// longest run of sorted lowercase NUL-terminated names that starts with `[\0[[\0`.
fn applet_names(bin: &[u8]) -> Option<(usize, Vec<String>)> {
    let marker = b"\0[\0[[\0";
    let mut found = None;
    let mut from = 0;
    while let Some(i) = bin[from..]
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|i| i + from)
    {
        if found.is_some() {
            return None;
        }
        found = Some(i + 1);
        from = i + 1;
    }
    let start = found?;
    let mut names = Vec::new();
    let mut at = start;
    while at < bin.len() && bin[at] != 0 {
        let end = at + bin[at..].iter().position(|&b| b == 0)?;
        let name = std::str::from_utf8(&bin[at..end]).ok()?;
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"[-_.".contains(&b))
        {
            break;
        }
        if names
            .last()
            .is_some_and(|prev: &String| prev.as_str() >= name)
        {
            break;
        }
        names.push(name.to_string());
        at = end + 1;
    }
    (names.len() > 2).then_some((start, names))
}

/// Builds the initramfs: `/init`, `/dev/console`, the module tools, the shell and its commands
/// (when `userland` is given), the agent's transport modules (in load order) and the modules
/// under test.
pub fn build(
    init: &[u8],
    userland: Option<&Userland>,
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
    // The directories made so far; a file's missing parents are made before it.
    let mut made: Vec<String> = ["dev", "proc", "sys", "tmp", "kmodlab"]
        .map(String::from)
        .to_vec();
    let mut dirs_of = |c: &mut Cpio, path: &str| {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if !made.contains(&parent) {
                c.dir(&parent);
                made.push(parent.clone());
            }
        }
    };
    for tool in GUEST_TOOLS {
        let path = format!("{GUEST_TOOLS_DIR}/{tool}");
        dirs_of(&mut c, &path);
        c.symlink(&path, "/init");
    }
    if let Some(u) = userland {
        dirs_of(&mut c, "bin/busybox");
        c.file("bin/busybox", 0o755, &u.busybox);
        for applet in &u.applets {
            if applet == "bin/busybox" {
                continue;
            }
            dirs_of(&mut c, applet);
            c.symlink(applet, "/bin/busybox");
        }
    }
    let boot = kmodlab_proto::GUEST_BOOT_MODULE_DIR.trim_start_matches('/');
    let mut order = String::new();
    for m in boot_modules {
        let path = format!("{boot}/{}", m.file_name);
        dirs_of(&mut c, &path);
        c.file(&path, 0o644, &m.image);
        order.push_str(&m.file_name);
        order.push('\n');
    }
    let path = format!("{boot}/order");
    dirs_of(&mut c, &path);
    c.file(&path, 0o644, order.as_bytes());
    let dir = kmodlab_proto::GUEST_MODULE_DIR.trim_start_matches('/');
    dirs_of(&mut c, &format!("{dir}/"));
    for m in modules {
        c.file(&format!("{dir}/{}", m.file_name), 0o644, &m.image);
    }
    for (path, data) in files {
        let path = path.trim_start_matches('/');
        dirs_of(&mut c, path);
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

#[cfg(test)]
mod userland_tests {
    use super::*;

    #[test]
    fn hidden_applets_keep_their_length_and_order() {
        let mut bin = b"\x7fELF junk\0[\0[[\0ash\0dmesg\0insmod\0ls\0lsmod\0sh\0\0more".to_vec();
        let before = bin.len();
        assert_eq!(hide_applets(&mut bin, &GUEST_TOOLS), 3);
        assert_eq!(bin.len(), before);
        let text = String::from_utf8_lossy(&bin);
        assert!(
            text.contains("\0ash\0dmesG\0insmoD\0ls\0lsmoD\0sh\0\0"),
            "{text:?}"
        );
    }

    #[test]
    fn no_block_or_two_blocks_change_nothing() {
        let mut none = b"nothing here".to_vec();
        assert_eq!(hide_applets(&mut none, &GUEST_TOOLS), 0);
        let mut two = b"\0[\0[[\0insmod\0\0 \0[\0[[\0insmod\0\0".to_vec();
        let copy = two.clone();
        assert_eq!(hide_applets(&mut two, &GUEST_TOOLS), 0);
        assert_eq!(two, copy);
    }

    /// Debian's busybox-static, when installed: the block is found and every module tool is
    /// hidden, and the patched binary still runs its other applets and refuses the hidden ones.
    #[test]
    fn debians_busybox_forgets_the_module_tools() {
        let Some(path) = kmodlab_testkit::require("/bin/busybox") else {
            return;
        };
        let mut bin = std::fs::read(&path).unwrap();
        let Some((_, names)) = applet_names(&bin) else {
            panic!("no applet names found in {}", path.display());
        };
        let present = GUEST_TOOLS
            .iter()
            .filter(|t| names.iter().any(|n| n == *t))
            .count();
        assert_eq!(hide_applets(&mut bin, &GUEST_TOOLS), present);
        let dir = std::env::temp_dir().join(format!("kmodlab-bb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let patched = dir.join("busybox");
        std::fs::write(&patched, &bin).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&patched, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = |args: &[&str]| {
            std::process::Command::new(&patched)
                .args(args)
                .output()
                .unwrap()
        };
        let echo = run(&["echo", "still here"]);
        assert_eq!(String::from_utf8_lossy(&echo.stdout), "still here\n");
        assert!(!run(&["lsmod"]).status.success());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
