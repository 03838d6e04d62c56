//! depmod against kmod 30's on the same input: every output file byte for byte, stdout, stderr
//! and the exit status.
//!
//! Each case builds a module tree under a temporary BASEDIR, copies it, runs kmod's
//! `/sbin/depmod -b COPY1 ...` and ours (in-process, `kmodlab_kmod::depmod::run`) with
//! `-b COPY2 ...`, and compares everything (with the two BASEDIRs replaced by `BASEDIR` in the
//! messages). The cases skip (named in the suite's summary) when `/sbin/depmod` is missing.
//!
//! - `real_tree`: the newest installed Debian tree (`/lib/modules/RELEASE`, whatever its release;
//!   6.12's has 4,228 `.ko.xz` modules): its `kernel/` linked in, `modules.order`, `modules.builtin` and
//!   `modules.builtin.modinfo` copied. Ours runs twice, with an empty cache and with a full one.
//! - The other cases use small module-shaped ELF files made here (`Ko`): a `.modinfo`, a
//!   `__ksymtab_strings` or `__crc_*` symbols for exports, undefined symbols for needs,
//!   optionally `__versions`; what kmod's libkmod reads, nothing more. They cover what the
//!   Debian tree lacks: softdeps, devname aliases, depmod.d configurations (search order,
//!   override, exclude, external), modules missing from `modules.order` (kmod's hash order),
//!   broken modules, cycles, `-e` with `-F`/`-E`, `-n`, `-A`, `-v`, `-w`, `-P` and module file
//!   arguments.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

const KMOD: &str = "/sbin/depmod";
/// The release of the module trees made here (the real tree keeps its own).
const VERSION: &str = "6.12.95+deb12-amd64";

fn kmod_available() -> bool {
    kmodlab_testkit::require(KMOD).is_some()
}

/// Our cache goes to a directory of this test run (set once, before any depmod runs). Its name
/// is not one a [`TempDir`] can have (`kmodlab-depmod-cache-PID` was the tree directory of the
/// test named `cache`, which removed everyone's cache files when it ended).
fn cache_dir() -> PathBuf {
    static INIT: Once = Once::new();
    let dir = std::env::temp_dir().join(format!("kmodlab-depmod-cachedir.{}", std::process::id()));
    INIT.call_once(|| {
        std::env::set_var("KMODLAB_DEPMOD_CACHE", &dir);
    });
    dir
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("kmodlab-depmod-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // KMODLAB_KEEP_TEST_TREES=1 keeps them for a look after a failure.
        if std::env::var_os("KMODLAB_KEEP_TEST_TREES").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A module-shaped ELF64 relocatable file.
#[derive(Default, Clone)]
struct Ko {
    modinfo: Vec<String>,
    /// Exported symbols, listed in `__ksymtab_strings` (or as `__crc_` symbols with `crcs`).
    exports: Vec<&'static str>,
    /// `(name, crc)`: exports as `__crc_NAME` symbols pointing into `__kcrctab`.
    crcs: Vec<(&'static str, u32)>,
    /// `(name, weak)`: undefined symbols.
    needs: Vec<(&'static str, bool)>,
    /// `(name, crc)`: the `__versions` table.
    versions: Vec<(&'static str, u64)>,
}

impl Ko {
    fn new(name: &str) -> Ko {
        Ko {
            modinfo: vec![
                "license=GPL".into(),
                format!("name={name}"),
                "vermagic=6.12.95+deb12-amd64 SMP preempt mod_unload modversions ".into(),
            ],
            ..Ko::default()
        }
    }

    fn info(mut self, entry: &str) -> Ko {
        self.modinfo.push(entry.into());
        self
    }

    fn exports(mut self, names: &[&'static str]) -> Ko {
        self.exports.extend(names);
        self
    }

    fn needs(mut self, names: &[&'static str]) -> Ko {
        self.needs.extend(names.iter().map(|n| (*n, false)));
        self
    }

    fn build(&self) -> Vec<u8> {
        // (name, type, flags, data, link, entsize)
        type Section<'a> = (&'a str, u32, u64, Vec<u8>, u32, u64);
        let mut sections: Vec<Section> = Vec::new();
        let mut modinfo = Vec::new();
        for entry in &self.modinfo {
            modinfo.extend_from_slice(entry.as_bytes());
            modinfo.push(0);
        }
        sections.push((".modinfo", 1, 2, modinfo, 0, 0));
        if !self.exports.is_empty() {
            let mut strings = Vec::new();
            for name in &self.exports {
                strings.extend_from_slice(name.as_bytes());
                strings.push(0);
            }
            sections.push(("__ksymtab_strings", 1, 2, strings, 0, 0));
        }
        let kcrctab = sections.len() + 1;
        if !self.crcs.is_empty() {
            let data = self
                .crcs
                .iter()
                .flat_map(|(_, c)| c.to_le_bytes())
                .collect();
            sections.push(("__kcrctab", 1, 2, data, 0, 0));
        }
        if !self.versions.is_empty() {
            let mut data = Vec::new();
            for (name, crc) in &self.versions {
                let mut entry = crc.to_le_bytes().to_vec();
                entry.extend_from_slice(name.as_bytes());
                entry.resize(64, 0);
                data.extend(entry);
            }
            sections.push(("__versions", 1, 2, data, 0, 0));
        }
        sections.push((".gnu.linkonce.this_module", 1, 3, vec![0; 64], 0, 0));
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        let mut symbol = |name: &str, info: u8, shndx: u16, value: u64| {
            let at = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            symtab.extend_from_slice(&at.to_le_bytes());
            symtab.push(info);
            symtab.push(0);
            symtab.extend_from_slice(&shndx.to_le_bytes());
            symtab.extend_from_slice(&value.to_le_bytes());
            symtab.extend_from_slice(&0u64.to_le_bytes());
        };
        for (i, (name, _)) in self.crcs.iter().enumerate() {
            symbol(&format!("__crc_{name}"), 0, kcrctab as u16, i as u64 * 4);
        }
        for (name, weak) in &self.needs {
            symbol(name, if *weak { 0x20 } else { 0x10 }, 0, 0);
        }
        let symtab_index = sections.len() + 1;
        sections.push((".symtab", 2, 0, symtab, symtab_index as u32 + 1, 24));
        sections.push((".strtab", 3, 0, strtab, 0, 0));
        let mut shstrtab = vec![0u8];
        let mut names = Vec::new();
        for (name, ..) in &sections {
            names.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
        }
        names.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(b".shstrtab\0");
        sections.push((".shstrtab", 3, 0, shstrtab, 0, 0));

        let mut image = vec![0u8; 64];
        let mut headers = vec![0u8; 64];
        for (i, (_, kind, flags, data, link, entsize)) in sections.iter().enumerate() {
            while !image.len().is_multiple_of(8) {
                image.push(0);
            }
            let offset = image.len() as u64;
            image.extend_from_slice(data);
            let mut h = Vec::with_capacity(64);
            h.extend_from_slice(&names[i].to_le_bytes());
            h.extend_from_slice(&kind.to_le_bytes());
            h.extend_from_slice(&flags.to_le_bytes());
            h.extend_from_slice(&0u64.to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
            h.extend_from_slice(&(data.len() as u64).to_le_bytes());
            h.extend_from_slice(&link.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            h.extend_from_slice(&8u64.to_le_bytes());
            h.extend_from_slice(&entsize.to_le_bytes());
            headers.extend(h);
        }
        while !image.len().is_multiple_of(8) {
            image.push(0);
        }
        let shoff = image.len() as u64;
        image.extend(headers);
        let shnum = sections.len() as u16 + 1;
        let mut ehdr = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ehdr.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
        ehdr.extend_from_slice(&62u16.to_le_bytes()); // x86-64
        ehdr.extend_from_slice(&1u32.to_le_bytes());
        ehdr.extend_from_slice(&0u64.to_le_bytes());
        ehdr.extend_from_slice(&0u64.to_le_bytes());
        ehdr.extend_from_slice(&shoff.to_le_bytes());
        ehdr.extend_from_slice(&0u32.to_le_bytes());
        ehdr.extend_from_slice(&64u16.to_le_bytes());
        ehdr.extend_from_slice(&0u16.to_le_bytes());
        ehdr.extend_from_slice(&0u16.to_le_bytes());
        ehdr.extend_from_slice(&64u16.to_le_bytes());
        ehdr.extend_from_slice(&shnum.to_le_bytes());
        ehdr.extend_from_slice(&(shnum - 1).to_le_bytes());
        image[..64].copy_from_slice(&ehdr);
        image
    }
}

/// Compresses with a command-line tool (`xz`, `zstd`); `None` when it is missing.
fn compress(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(data).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// A module tree being built: `BASE/lib/modules/VERSION/...`.
struct Tree {
    tmp: TempDir,
    version: String,
}

impl Tree {
    fn new(name: &str) -> Tree {
        Tree::with_version(name, VERSION)
    }

    /// A tree of another release (the host's, for the real tree).
    fn with_version(name: &str, version: &str) -> Tree {
        let tree = Tree {
            tmp: TempDir::new(name),
            version: version.to_string(),
        };
        fs::create_dir_all(tree.moddir(&tree.base())).unwrap();
        tree
    }

    /// The tree as built (copied for each run).
    fn base(&self) -> PathBuf {
        self.tmp.0.join("tree")
    }

    fn moddir(&self, base: &Path) -> PathBuf {
        base.join("lib/modules").join(&self.version)
    }

    fn file(&self, rel: &str, data: &[u8]) -> &Tree {
        let path = self.moddir(&self.base()).join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
        self
    }

    fn ko(&self, rel: &str, ko: &Ko) -> &Tree {
        self.file(rel, &ko.build())
    }

    /// A path next to the tree, for configurations and external directories.
    fn aside(&self, rel: &str) -> PathBuf {
        self.tmp.0.join(rel)
    }
}

/// Copies a tree, keeping symbolic links as links.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    /// Every regular file of the module directory (not in subdirectories), sorted.
    files: Vec<(String, Vec<u8>)>,
}

fn outcome(code: i32, stdout: &[u8], stderr: &[u8], base: &Path, moddir: &Path) -> Outcome {
    // The two base directories differ, and so do the pointers libkmod prints with -vv.
    let clean = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes).replace(base.to_str().unwrap(), "BASEDIR");
        let mut out = String::new();
        let mut rest = &text[..];
        while let Some(at) = rest.find("0x") {
            out.push_str(&rest[..at]);
            let hex = rest[at + 2..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len() - at - 2);
            out.push_str(if hex >= 8 {
                "0xPOINTER"
            } else {
                &rest[at..at + 2 + hex]
            });
            rest = &rest[at + 2 + hex..];
        }
        out.push_str(rest);
        out
    };
    let mut files = Vec::new();
    if let Ok(entries) = fs::read_dir(moddir) {
        for entry in entries.flatten() {
            if entry.file_type().unwrap().is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                files.push((name, fs::read(entry.path()).unwrap()));
            }
        }
    }
    files.sort();
    Outcome {
        code,
        stdout: clean(stdout),
        stderr: clean(stderr),
        files,
    }
}

/// Runs `command` to completion, or kills it after `seconds`.
fn run_with_deadline(command: &mut Command, seconds: u64) -> Option<std::process::Output> {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Some(std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

/// Runs kmod's depmod and ours on two copies of `tree` with `args` (`{BASE}` stands for the
/// copy's base directory) and checks that everything matches. Returns our outcome.
fn compare(tree: &Tree, case: &str, args: &[&str]) -> Outcome {
    compare_with(tree, case, args, |_| {})
}

/// [`compare`], with `prepare` run on each copy's base directory first.
fn compare_with(tree: &Tree, case: &str, args: &[&str], prepare: impl Fn(&Path)) -> Outcome {
    let _ = cache_dir();
    // The same paths for every case of a tree: our cache is per module directory.
    let runs = tree.tmp.0.join("runs");
    let _ = fs::remove_dir_all(&runs);
    let (kmod_base, our_base) = (runs.join("kmod"), runs.join("ours"));
    for base in [&kmod_base, &our_base] {
        copy_tree(&tree.base(), base);
        prepare(base);
    }
    let expand = |base: &Path| -> Vec<String> {
        args.iter()
            .map(|a| a.replace("{BASE}", base.to_str().unwrap()))
            .collect()
    };

    let mut our_args = vec![OsString::from(KMOD)];
    our_args.extend(expand(&our_base).into_iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = kmodlab_kmod::depmod::run(&our_args, &host_kernel(), &mut out, &mut err);
    let ours = outcome(code, &out, &err, &our_base, &tree.moddir(&our_base));
    if ours
        .stderr
        .contains("kmod 30 would walk these cycles forever")
    {
        eprintln!("{case}: kmod 30 never finishes on these cycles: not run");
        return ours;
    }

    let Some(kmod) = run_with_deadline(Command::new(KMOD).args(expand(&kmod_base)), 60) else {
        panic!("{case}: kmod's depmod did not finish in 60 s");
    };
    // A signal shows as 128 + its number, as in a shell (kmod can abort on an assertion).
    let status = {
        use std::os::unix::process::ExitStatusExt;
        kmod.status
            .code()
            .unwrap_or_else(|| 128 + kmod.status.signal().unwrap_or(0))
    };
    let theirs = outcome(
        status,
        &kmod.stdout,
        &kmod.stderr,
        &kmod_base,
        &tree.moddir(&kmod_base),
    );

    assert_eq!(
        ours.code, theirs.code,
        "{case}: exit status\nstderr: {}",
        ours.stderr
    );
    assert_eq!(ours.stderr, theirs.stderr, "{case}: stderr");
    assert_eq!(ours.stdout, theirs.stdout, "{case}: stdout");
    let names = |o: &Outcome| o.files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "{case}: files written");
    for ((name, mine), (_, kmods)) in ours.files.iter().zip(&theirs.files) {
        assert!(
            mine == kmods,
            "{case}: {name} differs:\n--- kmod\n{}\n--- ours\n{}",
            String::from_utf8_lossy(kmods),
            String::from_utf8_lossy(mine)
        );
    }
    ours
}

#[test]
fn real_tree() {
    if !kmod_available() {
        return;
    }
    let Some(host) = kmodlab_testkit::host_kernel() else {
        return;
    };
    let real = host.modules_dir.as_path();
    let tree = Tree::with_version("real", &host.release);
    let moddir = tree.moddir(&tree.base());
    symlink(real.join("kernel"), moddir.join("kernel")).unwrap();
    for name in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        fs::copy(real.join(name), moddir.join(name)).unwrap();
    }
    // Cold cache, then warm.
    let cold = compare(&tree, "real-cold", &["-b", "{BASE}", &host.release]);
    let warm = compare(&tree, "real-warm", &["-b", "{BASE}", &host.release]);
    assert_eq!(cold.files, warm.files);
    let dep = &cold
        .files
        .iter()
        .find(|(n, _)| n == "modules.dep")
        .unwrap()
        .1;
    assert!(
        dep.len() > 100_000,
        "modules.dep is only {} bytes",
        dep.len()
    );
}

/// Softdeps, devname aliases, dependency chains, aliases with brackets, compressed modules, and
/// modules that `modules.order` does not list.
#[test]
fn features_the_debian_tree_lacks() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("features");
    tree.ko(
        "kernel/drivers/base_lib.ko",
        &Ko::new("base_lib").exports(&["base_fn", "base_other"]),
    )
    .ko(
        "kernel/drivers/mid-layer.ko",
        &Ko::new("mid_layer")
            .exports(&["mid_fn"])
            .needs(&["base_fn", "printk"])
            .info("alias=mid:v[0-9]*-x*")
            .info("softdep=pre: base_lib post: top_driver"),
    )
    .ko(
        "kernel/drivers/top_driver.ko",
        &Ko::new("top_driver")
            .needs(&["mid_fn", "base_other"])
            .info("alias=pci:v00001234d*sv*sd*bc*sc*i*")
            .info("alias=usb:v1234p[ab]*")
            .info("alias=broken[alias")
            .info("softdep=pre: mid_layer"),
    )
    .ko(
        "kernel/fs/fuse.ko",
        &Ko::new("fuse")
            .info("alias=devname:fuse")
            .info("alias=char-major-10-229")
            .info("alias=fs-fuse")
            .info("alias=fs-fuse"),
    )
    .ko(
        "kernel/block/loop.ko",
        &Ko::new("loop")
            .info("alias=block-major-7-*")
            .info("alias=devname:loop-control")
            .info("alias=char-major-10-237"),
    )
    .ko(
        "kernel/misc/lonely.ko",
        &Ko::new("lonely").info("alias=devname:lonely"),
    );
    // Modules missing from modules.order, in kmod's hash order.
    for name in [
        "zeta", "alpha", "m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08",
    ] {
        let ko = Ko::new(name).needs(&["base_fn"]);
        tree.file(&format!("extra/{name}.ko"), &ko.build());
    }
    let xz_ko = Ko::new("packed_xz").exports(&["xz_fn"]).needs(&["mid_fn"]);
    if let Some(xz) = compress("xz", &["-c", "--check=crc32"], &xz_ko.build()) {
        tree.file("kernel/packed/packed-xz.ko.xz", &xz);
    }
    let zst_ko = Ko::new("packed_zst").needs(&["xz_fn"]).info("alias=zst:*");
    if let Some(zst) = compress("zstd", &["-c", "-q"], &zst_ko.build()) {
        tree.file("kernel/packed/packed_zst.ko.zst", &zst);
    }
    tree.file(
        "modules.order",
        b"kernel/drivers/top_driver.ko\nkernel/drivers/mid-layer.ko\nkernel/fs/fuse.ko\n\
          kernel/drivers/base_lib.ko\nkernel/block/loop.ko\nkernel/misc/lonely.ko\n\
          kernel/packed/packed-xz.ko\nkernel/packed/packed_zst.ko\n",
    );
    tree.file(
        "modules.builtin",
        b"kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c_generic.ko\n",
    );
    tree.file(
        "modules.builtin.modinfo",
        b"ext4.alias=fs-ext4\0ext4.alias=ext3\0ext4.license=GPL\0crc32c_generic.alias=crypto-crc32c\0\
          crc32c_generic.alias=bad[bracket\0",
    );
    compare(&tree, "features", &["-b", "{BASE}", VERSION]);
    compare(&tree, "features-n", &["-b", "{BASE}", "-n", VERSION]);
    compare(&tree, "features-v", &["-v", "-b", "{BASE}", VERSION]);
    compare(&tree, "features-w", &["-w", "--basedir={BASE}", VERSION]);
    // No modules.order at all: every module in hash order.
    compare_with(
        &tree,
        "features-no-order",
        &["-b", "{BASE}", VERSION],
        |base| {
            fs::remove_file(base.join("lib/modules").join(VERSION).join("modules.order")).unwrap();
        },
    );
}

/// depmod.d: search order, override, exclude, external; the default `updates` priority.
#[test]
fn configuration() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("config");
    let sym = |name: &'static str| Ko::new(name).exports(&[name]);
    tree.ko("kernel/a/dup.ko", &sym("dup").info("alias=from-kernel"))
        .ko("updates/dup.ko", &sym("dup").info("alias=from-updates"))
        .ko("extra/dup.ko", &sym("dup").info("alias=from-extra"))
        .ko("kernel/b/over.ko", &sym("over").info("alias=over-kernel"))
        .ko("extra/over.ko", &sym("over").info("alias=over-extra"))
        .ko("skipme/hidden.ko", &sym("hidden"))
        .ko("kernel/skipme/hidden2.ko", &sym("hidden2"))
        .ko(
            "kernel/user.ko",
            &Ko::new("user").needs(&["dup", "over", "ext_fn"]),
        );
    let external = tree.aside("external");
    fs::create_dir_all(external.join("sub")).unwrap();
    fs::write(
        external.join("sub/ext_mod.ko"),
        Ko::new("ext_mod").exports(&["ext_fn"]).build(),
    )
    .unwrap();
    fs::write(
        external.join("dup.ko"),
        sym("dup").info("alias=from-external").build(),
    )
    .unwrap();

    // Default configuration (none given): updates/ wins over kernel/ and extra/.
    let empty = tree.aside("conf-empty");
    fs::create_dir_all(&empty).unwrap();
    compare(
        &tree,
        "default",
        &["-C", empty.to_str().unwrap(), "-b", "{BASE}", VERSION],
    );

    let conf = tree.aside("conf");
    fs::create_dir_all(&conf).unwrap();
    fs::write(
        conf.join("10-search.conf"),
        format!(
            "# kmodlab test\nsearch extra external built-in updates\n\
             override over * extra\noverride over 5\\\\.4.* kernel/b\n\
             external {VERSION} {}\nexternal 5.* /nonexistent\n\
             exclude skipme\nbogus words here\ninclude x\n",
            external.display()
        ),
    )
    .unwrap();
    fs::write(conf.join("README"), "not a .conf file\n").unwrap();
    fs::create_dir_all(conf.join("sub.conf")).unwrap();
    compare(
        &tree,
        "config",
        &["-C", conf.to_str().unwrap(), "-b", "{BASE}", VERSION],
    );
    compare(
        &tree,
        "config-vv",
        &["-vv", "-C", conf.to_str().unwrap(), "-b", "{BASE}", VERSION],
    );

    // A second configuration directory: the same file name again is ignored, others merge.
    let conf2 = tree.aside("conf2");
    fs::create_dir_all(&conf2).unwrap();
    fs::write(conf2.join("10-search.conf"), "search updates\n").unwrap();
    fs::write(
        conf2.join("20-more.conf"),
        "search built-in\nexternal * /missing/dir\n",
    )
    .unwrap();
    compare(
        &tree,
        "config-two-dirs",
        &[
            "-C",
            conf.to_str().unwrap(),
            "-C",
            conf2.to_str().unwrap(),
            "-b",
            "{BASE}",
            VERSION,
        ],
    );
    // A single file given with -C.
    compare(
        &tree,
        "config-file",
        &[
            "-C",
            conf2.join("20-more.conf").to_str().unwrap(),
            "-b",
            "{BASE}",
            VERSION,
        ],
    );
}

/// Broken modules, a missing modules.builtin, files that are not modules, odd entries.
#[test]
fn broken_inputs() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("broken");
    let good = Ko::new("good").exports(&["good_fn"]);
    tree.ko("kernel/good.ko", &good)
        .ko("kernel/user.ko", &Ko::new("user").needs(&["good_fn"]))
        .file("kernel/garbage.ko", b"this is not an ELF file at all")
        .file("kernel/short.ko", b"abc")
        .file("kernel/empty.ko", b"")
        .file("kernel/notes.txt", b"ignored")
        .file("kernel/.ko", b"not a module name")
        .file("kernel/build", b"a file named build is skipped too")
        .file(
            "modules.order",
            b"kernel/good.ko\nkernel/user.ko\nkernel/garbage.ko",
        );
    let mut elf = good.build();
    elf[4] = 9; // bad class
    tree.file("kernel/badclass.ko", &elf);
    if let Some(xz) = compress("xz", &["-c"], &good.build()) {
        tree.file("kernel/cut.ko.xz", &xz[..xz.len() / 2]);
        let mut flipped = xz.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        tree.file("kernel/flipped.ko.xz", &flipped);
    }
    symlink(
        "does-not-exist.ko",
        tree.moddir(&tree.base()).join("kernel/dangling.ko"),
    )
    .unwrap();
    compare(&tree, "broken", &["-b", "{BASE}", VERSION]);
}

/// A dependency cycle: kmod reports it and writes nothing.
#[test]
fn cycles() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("cycles");
    tree.ko(
        "kernel/a.ko",
        &Ko::new("a").exports(&["a_fn"]).needs(&["b_fn"]),
    )
    .ko(
        "kernel/b.ko",
        &Ko::new("b").exports(&["b_fn"]).needs(&["c_fn"]),
    )
    .ko(
        "kernel/c.ko",
        &Ko::new("c").exports(&["c_fn"]).needs(&["a_fn"]),
    )
    .ko("kernel/d.ko", &Ko::new("d").needs(&["a_fn"]))
    .ko("kernel/e.ko", &Ko::new("e").exports(&["e_fn"]));
    let outcome = compare(&tree, "cycles", &["-b", "{BASE}", VERSION]);
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("Cycle detected"),
        "{}",
        outcome.stderr
    );
}

/// `-e` with `-F System.map` and with `-E Module.symvers`; `-P`.
#[test]
fn unresolved_symbols() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("symbols");
    let mut provider = Ko::new("provider").info("alias=provider-alias");
    provider.crcs = vec![("prov_fn", 0x1111), ("prov_other", 0x2222)];
    let mut user = Ko::new("user").needs(&["prov_fn", "printk", "missing_fn", "_prefixed_fn"]);
    user.needs.push(("weak_missing", true));
    user.versions = vec![
        ("module_layout", 0xabc),
        ("prov_fn", 0x1111),
        ("printk", 0x9999),
        ("missing_fn", 0x5),
    ];
    let mut other = Ko::new("other").needs(&["prov_other", "_prov_fn"]);
    other.versions = vec![("prov_other", 0x3333)];
    tree.ko("kernel/provider.ko", &provider)
        .ko("kernel/user.ko", &user)
        .ko("kernel/other.ko", &other);
    let map = tree.aside("System.map");
    fs::write(
        &map,
        "ffffffff81000000 T _text\nffffffff82000000 r __ksymtab_printk\n\
         ffffffff82000010 r __ksymtab_module_layout\nnot a valid line\n\
         ffffffff82000020 r ___ksymtab_prefixed_fn\n",
    )
    .unwrap();
    let symvers = tree.aside("Module.symvers");
    fs::write(
        &symvers,
        "0x00009999\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000abc\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n\
         0x12345678\tdrv_fn\tdrivers/x/y\tEXPORT_SYMBOL_GPL\t\nzzz\tbad_crc\tvmlinux\tEXPORT_SYMBOL\n",
    )
    .unwrap();
    let map = map.to_str().unwrap();
    let symvers = symvers.to_str().unwrap();
    compare(&tree, "e-F", &["-e", "-F", map, "-b", "{BASE}", VERSION]);
    compare(
        &tree,
        "e-E",
        &["-e", "-E", symvers, "-b", "{BASE}", VERSION],
    );
    compare(&tree, "E-only", &["-E", symvers, "-b", "{BASE}", VERSION]);
    compare(&tree, "e-alone", &["-e", "-b", "{BASE}", VERSION]);
    compare(
        &tree,
        "P",
        &["-e", "-P", "_", "-F", map, "-b", "{BASE}", VERSION],
    );
    compare(
        &tree,
        "F-missing",
        &["-F", "/nonexistent/System.map", "-b", "{BASE}", VERSION],
    );
}

/// Options: `-A` (quick), module file arguments, bad versions, `-h`, `-V`, deprecated ones.
#[test]
fn options() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("options");
    tree.ko("kernel/one.ko", &Ko::new("one").exports(&["one_fn"]))
        .ko("kernel/two.ko", &Ko::new("two").needs(&["one_fn"]))
        .ko("kernel/sub/three.ko", &Ko::new("three").needs(&["one_fn"]))
        .ko(
            "kernel/sub/one.ko",
            &Ko::new("one").exports(&["other_one_fn"]),
        )
        .file("modules.order", b"kernel/two.ko\nkernel/one.ko\n");
    compare(&tree, "help", &["-h"]);
    // The one version line of kmodlab's tools: kmod's, but with zlib (gzip modules are read).
    let kmod_version = Command::new(KMOD).arg("-V").output().unwrap();
    let ours = run_ours_with(&tree.base(), &["-V"]);
    assert_eq!(
        ours,
        String::from_utf8_lossy(&kmod_version.stdout).replace("-ZLIB", "+ZLIB")
    );
    compare(&tree, "bad-version", &["-b", "{BASE}", "6"]);
    compare(&tree, "bad-option", &["-b", "{BASE}", "-x", VERSION]);
    compare(
        &tree,
        "deprecated",
        &["-u", "--quiet", "-b", "{BASE}", VERSION],
    );
    compare(&tree, "P-long", &["-P", "ab", "-b", "{BASE}", VERSION]);
    compare(&tree, "missing-dir", &["-b", "{BASE}/nowhere", VERSION]);
    compare(
        &tree,
        "files",
        &[
            "-b",
            "{BASE}",
            VERSION,
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/two.ko"),
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/one.ko"),
        ],
    );
    compare(
        &tree,
        "file-relative",
        &["-b", "{BASE}", VERSION, "kernel/one.ko"],
    );
    compare(
        &tree,
        "file-same-name",
        &[
            "-b",
            "{BASE}",
            VERSION,
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/one.ko"),
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/sub/three.ko"),
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/sub/one.ko"),
        ],
    );
    compare(
        &tree,
        "file-twice",
        &[
            "-b",
            "{BASE}",
            VERSION,
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/one.ko"),
            &format!("{{BASE}}/lib/modules/{VERSION}/kernel/one.ko"),
        ],
    );
    // -A: nothing to do when modules.dep is newer than every module, else a full run.
    compare(&tree, "quick-no-dep", &["-A", "-b", "{BASE}", VERSION]);
    compare_with(
        &tree,
        "quick-up-to-date",
        &["-A", "-b", "{BASE}", VERSION],
        |base| {
            let dep = base.join("lib/modules").join(VERSION).join("modules.dep");
            fs::write(&dep, "stale\n").unwrap();
            let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
            fs::File::options()
                .write(true)
                .open(&dep)
                .unwrap()
                .set_modified(future)
                .unwrap();
        },
    );
    compare_with(
        &tree,
        "quick-outdated",
        &["-A", "-b", "{BASE}", VERSION],
        |base| {
            let dep = base.join("lib/modules").join(VERSION).join("modules.dep");
            fs::write(&dep, "stale\n").unwrap();
            let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
            fs::File::options()
                .write(true)
                .open(&dep)
                .unwrap()
                .set_modified(past)
                .unwrap();
        },
    );
    compare(&tree, "quick-n", &["-A", "-n", "-b", "{BASE}", VERSION]);
}

/// The cache: a module changed between two runs on the same tree is read again, and the
/// result is what kmod makes of the changed tree.
#[test]
fn cache_sees_changes() {
    if !kmod_available() {
        return;
    }
    let tree = Tree::new("cache");
    tree.ko("kernel/one.ko", &Ko::new("one").exports(&["one_fn"]))
        .ko("kernel/two.ko", &Ko::new("two").needs(&["one_fn"]))
        .ko("kernel/three.ko", &Ko::new("three").needs(&["one_fn"]));
    let _ = cache_dir();
    let ours = tree.aside("ours");
    copy_tree(&tree.base(), &ours);
    let run = || {
        let args = ["depmod", "-b", ours.to_str().unwrap(), VERSION];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = kmodlab_kmod::depmod::run(
            &args.iter().map(OsString::from).collect::<Vec<_>>(),
            &host_kernel(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        fs::read(tree.moddir(&ours).join("modules.dep")).unwrap()
    };
    let before = run();
    assert!(String::from_utf8_lossy(&before).contains("kernel/two.ko: kernel/one.ko"));
    // Same path, new contents: two no longer needs one.
    let changed = Ko::new("two").info("alias=changed");
    fs::write(tree.moddir(&ours).join("kernel/two.ko"), changed.build()).unwrap();
    let after = run();
    tree.ko("kernel/two.ko", &changed);
    let theirs = compare(&tree, "cache-changed", &["-b", "{BASE}", VERSION]);
    let kmod_dep = &theirs
        .files
        .iter()
        .find(|(n, _)| n == "modules.dep")
        .unwrap()
        .1;
    assert_eq!(&after, kmod_dep);
    assert_ne!(before, after);
}

/// Random dependency graphs (a fixed seed): the topological sort, the order of every
/// `modules.dep` line, the hash order of modules missing from `modules.order`, and kmod's cycle
/// reports.
#[test]
fn random_graphs() {
    if !kmod_available() {
        return;
    }
    const EXPORTS: [&str; 9] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut codes = [0; 3];
    for case in 0..150 {
        let tree = Tree::new(&format!("random-{case}"));
        let count = 3 + random(6) as usize;
        let cyclic = random(4) == 0;
        let mut order = String::new();
        for (m, export) in EXPORTS.iter().enumerate().take(count) {
            let name = format!("mod{}_{}", m, random(1000));
            let mut ko = Ko::new(&name).exports(&[export]);
            for (d, needed) in EXPORTS.iter().enumerate().take(count) {
                // Acyclic unless this case allows cycles: only later modules are needed.
                if (d > m || (cyclic && d != m)) && random(3) == 0 {
                    ko = ko.needs(&[needed]);
                }
            }
            let dir = ["kernel", "kernel/drivers", "extra", "kernel/fs/x"][random(4) as usize];
            let rel = format!("{dir}/{name}.ko");
            if random(3) != 0 {
                order.push_str(&rel);
                order.push('\n');
            }
            tree.ko(&rel, &ko);
        }
        if random(4) != 0 {
            tree.file("modules.order", order.as_bytes());
        }
        let outcome = compare(&tree, &format!("random-{case}"), &["-b", "{BASE}", VERSION]);
        codes[(outcome.code as usize).min(2)] += 1;
        if outcome.stderr.contains("Cycle detected") {
            codes[2] += 1;
        }
    }
    eprintln!(
        "exit 0: {}, exit 1: {}, with cycle reports: {}",
        codes[0], codes[1], codes[2]
    );
}

/// A tree for the cache's safety tests, its copy that our depmod runs on, and that copy's cache
/// file (each test has its own: the cache is per module directory). `one` has an alias and a
/// softdep, the strings the forgeries below rewrite.
fn cache_safety_tree(name: &str) -> (Tree, PathBuf, PathBuf) {
    let _ = cache_dir();
    let tree = Tree::new(name);
    tree.ko(
        "kernel/one.ko",
        &Ko::new("one")
            .exports(&["one_fn"])
            .info("alias=pci:v0000AAAAd*")
            .info("softdep=pre: two"),
    )
    .ko(
        "kernel/two.ko",
        &Ko::new("two").needs(&["one_fn"]).info("alias=usb:v1111p*"),
    )
    .ko("kernel/three.ko", &Ko::new("three"));
    let ours = tree.aside("ours");
    copy_tree(&tree.base(), &ours);
    let moddir = tree.moddir(&ours);
    let cache = kmodlab_kmod::depmod::cache_file(moddir.to_str().unwrap().as_bytes())
        .expect("the cache is on in these tests");
    fs::create_dir_all(cache.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&cache);
    (tree, ours, cache)
}

/// Our depmod on the copy at `base`, in this process (so through this test run's cache).
fn run_ours(tree: &Tree, base: &Path) -> Outcome {
    let args = ["depmod", "-b", base.to_str().unwrap(), VERSION];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = kmodlab_kmod::depmod::run(
        &args.iter().map(OsString::from).collect::<Vec<_>>(),
        &host_kernel(),
        &mut out,
        &mut err,
    );
    outcome(code, &out, &err, base, &tree.moddir(base))
}

fn file<'o>(outcome: &'o Outcome, name: &str) -> &'o str {
    let (_, bytes) = outcome.files.iter().find(|(n, _)| n == name).unwrap();
    std::str::from_utf8(bytes).unwrap()
}

/// Rewrites the alias and the softdep of `one` in a cache file, in place and at the same length,
/// leaving every file identity as it is: what a forger who can write the file but does not hold
/// the user's secret can do. Panics when the cache does not hold those strings (the forgery
/// would then test nothing).
fn forge(cache: &Path) {
    let mut bytes = fs::read(cache).unwrap_or_else(|e| panic!("{}: {e}", cache.display()));
    let mut replaced = 0;
    for (from, to) in [
        (&b"pci:v0000AAAAd*"[..], &b"pci:v0000EEEEd*"[..]),
        (b"pre: two", b"pre: evl"),
    ] {
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
            bytes[at + i..at + i + from.len()].copy_from_slice(to);
            at += i + from.len();
            replaced += 1;
        }
    }
    assert_eq!(
        replaced, 2,
        "the cache no longer stores these strings as they are"
    );
    // Through a new file, so that the forgery keeps no link to depmod's own (the mode and the
    // owner are set by the callers).
    let tmp = cache.with_extension("forged");
    fs::write(&tmp, &bytes).unwrap();
    fs::rename(&tmp, cache).unwrap();
}

/// A forged cache, whose entries name the modules' real identity (device, inode, size, times)
/// but carry another alias and softdep, changes nothing: the outputs are those of a run without
/// a cache (and kmod's).
#[test]
fn forged_cache_cannot_add_aliases_or_softdeps() {
    let (tree, ours, cache) = cache_safety_tree("cache-forged");
    let cold = run_ours(&tree, &ours);
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert!(file(&cold, "modules.alias").contains("alias pci:v0000AAAAd* one"));
    assert!(file(&cold, "modules.softdep").contains("softdep one pre: two"));

    forge(&cache);
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let warm = run_ours(&tree, &ours);
    assert!(
        !file(&warm, "modules.alias").contains("EEEE")
            && !file(&warm, "modules.softdep").contains("evl"),
        "the forged cache entries were used:\n{}{}",
        file(&warm, "modules.alias"),
        file(&warm, "modules.softdep")
    );
    assert_eq!(warm, cold);
    if kmod_available() {
        let theirs = compare(&tree, "cache-forged-kmod", &["-b", "{BASE}", VERSION]);
        assert_eq!(theirs.files, warm.files);
    }
}

/// A cache file that another user owns, or that group or others can write, is ignored (and
/// replaced by the next save). Needs root (it gives the file to another user); the suite runs as
/// root.
#[test]
fn cache_of_another_user_or_writable_by_others_is_ignored() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if euid() != 0 {
        kmodlab_testkit::skip("root (to give the cache file to another user)");
        return;
    }
    for (case, uid, mode) in [
        ("other-owner", 65534, 0o600),
        ("world-writable", 0, 0o666),
        ("group-writable", 0, 0o620),
    ] {
        let (tree, ours, cache) = cache_safety_tree(&format!("cache-{case}"));
        let cold = run_ours(&tree, &ours);
        assert_eq!(cold.code, 0, "{case}: {}", cold.stderr);
        forge(&cache);
        std::os::unix::fs::chown(&cache, Some(uid), None).unwrap();
        fs::set_permissions(&cache, fs::Permissions::from_mode(mode)).unwrap();
        let warm = run_ours(&tree, &ours);
        assert!(
            !file(&warm, "modules.alias").contains("EEEE")
                && !file(&warm, "modules.softdep").contains("evl"),
            "{case}: the cache file was trusted:\n{}{}",
            file(&warm, "modules.alias"),
            file(&warm, "modules.softdep")
        );
        assert_eq!(warm, cold, "{case}");
        // Replaced by a file of ours that only we can write.
        let meta = fs::symlink_metadata(&cache).unwrap();
        assert!(meta.is_file(), "{case}");
        assert_eq!(meta.uid(), 0, "{case}");
        assert_eq!(meta.mode() & 0o022, 0, "{case}");
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Symbolic links planted at the cache file's name and at the temporary name it is written
/// under (`tree-HASH.tmp.PID` next to it) are never written through: the files they point to
/// keep their contents, and the cache file ends up a regular file.
#[test]
fn cache_never_writes_through_symlinks() {
    let (tree, ours, cache) = cache_safety_tree("cache-symlinks");
    let victims = tree.aside("victims");
    fs::create_dir_all(&victims).unwrap();
    let tmp = cache.with_extension(format!("tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    for (name, at) in [("at-cache", &cache), ("at-tmp", &tmp)] {
        fs::write(victims.join(name), "precious\n").unwrap();
        symlink(victims.join(name), at).unwrap();
    }
    let first = run_ours(&tree, &ours);
    assert_eq!(first.code, 0, "{}", first.stderr);
    for name in ["at-cache", "at-tmp"] {
        let now = fs::read(victims.join(name)).unwrap();
        assert!(
            now == b"precious\n",
            "depmod wrote through the link {name}: it now holds {} bytes",
            now.len()
        );
    }
    assert!(fs::symlink_metadata(&cache).unwrap().is_file());
    let _ = fs::remove_file(&tmp);
    // And the cache written then works.
    assert_eq!(run_ours(&tree, &ours), first);
}

/// A module rewritten in place (same inode) at the same size, its modification time then set
/// back, is read again: the cache's identity includes the status-change time, which nobody can
/// set back.
#[test]
fn cache_sees_rewrites_that_keep_size_and_mtime() {
    let (tree, ours, _cache) = cache_safety_tree("cache-rewrite");
    let first = run_ours(&tree, &ours);
    assert!(file(&first, "modules.alias").contains("alias usb:v1111p* two"));
    let two = tree.moddir(&ours).join("kernel/two.ko");
    let before = fs::metadata(&two).unwrap();
    let changed = Ko::new("two").needs(&["one_fn"]).info("alias=usb:v2222p*");
    fs::OpenOptions::new()
        .write(true)
        .open(&two)
        .unwrap()
        .write_all(&changed.build())
        .unwrap();
    fs::File::options()
        .write(true)
        .open(&two)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let after = fs::metadata(&two).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
            (
                before.ino(),
                before.len(),
                before.mtime(),
                before.mtime_nsec()
            )
        );
    }
    let second = run_ours(&tree, &ours);
    assert!(
        file(&second, "modules.alias").contains("alias usb:v2222p* two"),
        "the cache entry about the old contents was used:\n{}",
        file(&second, "modules.alias")
    );
}

fn host_kernel() -> kmodlab_kmod::kernel_state::Kernel {
    kmodlab_kmod::kernel_state::Kernel::host()
}

/// Runs our depmod with `args` (`{BASE}` replaced by `base`); its standard output. It must
/// succeed.
fn run_ours_with(base: &Path, args: &[&str]) -> String {
    let mut argv = vec![OsString::from("depmod")];
    argv.extend(
        args.iter()
            .map(|a| OsString::from(a.replace("{BASE}", base.to_str().unwrap()))),
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = kmodlab_kmod::depmod::run(&argv, &host_kernel(), &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    String::from_utf8_lossy(&out).into_owned()
}

/// A gzip-compressed module is a module (kmodlab's tools are kmod with zlib; Debian's kmod has
/// none): the tree with `.ko.gz` files gives the indexes kmod gives for the same modules
/// uncompressed, with the paths' `.gz`.
#[test]
fn gzip_modules_are_indexed() {
    if !kmod_available() {
        return;
    }
    let modules = [
        ("kernel/base.ko", Ko::new("base").exports(&["base_fn"])),
        (
            "kernel/user.ko",
            Ko::new("user").needs(&["base_fn"]).info("alias=user-alias"),
        ),
    ];
    let plain = Tree::new("gzip-plain");
    for (rel, ko) in &modules {
        plain.ko(rel, ko);
    }
    let theirs = compare(&plain, "gzip-plain", &["-b", "{BASE}", VERSION]);
    let packed = Tree::new("gzip-packed");
    for (rel, ko) in &modules {
        let Some(gz) = compress("gzip", &["-c", "-n"], &ko.build()) else {
            kmodlab_testkit::skip("gzip");
            return;
        };
        packed.file(&format!("{rel}.gz"), &gz);
    }
    let ours_base = packed.aside("ours");
    copy_tree(&packed.base(), &ours_base);
    let ours = run_ours(&packed, &ours_base);
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    for name in ["modules.dep", "modules.alias", "modules.symbols"] {
        let expected = file(&theirs, name).replace(".ko", ".ko.gz");
        assert_eq!(file(&ours, name), expected, "{name}");
    }
    let dep = file(&ours, "modules.dep");
    assert!(
        dep.contains("kernel/user.ko.gz: kernel/base.ko.gz"),
        "{dep}"
    );
}
