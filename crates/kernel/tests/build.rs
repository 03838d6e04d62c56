//! Builds the lab kernels (Rust, debug) for real, through the library: many minutes the first
//! time on two cores, then cached in `~/.cache/kmodlab/kernels/` (CI keeps that directory between
//! runs), so later runs take a second. Needs what `scripts/setup` installs: `/usr/src/linux-source-7.*.tar.xz`,
//! rustc-web, LLVM 19, bindgen-cli.

use kmodlab_kernel::{build, BuildEvent, BuildOptions, Flavour, LabKernel, StderrProgress};
use std::path::Path;
use std::time::{Duration, Instant};

/// A Rust module with an integer parameter: the smallest thing the lab kernel exists for.
const HELLO_RS: &str = r#"// SPDX-License-Identifier: GPL-2.0
//! A Rust module with an integer parameter, built by kmodlab's kernel test.
use kernel::prelude::*;

module! {
    type: KmodlabHello,
    name: "kmodlab_hello",
    authors: ["kmodlab"],
    description: "kmodlab's Rust lab kernel test",
    license: "GPL",
    params: {
        count: i32 {
            default: 1,
            description: "How many greetings",
        },
    },
}

struct KmodlabHello;

impl kernel::Module for KmodlabHello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("hello x{}\n", module_parameters::count.value());
        Ok(KmodlabHello)
    }
}
"#;

#[test]
fn the_rust_lab_kernel_builds_once_and_is_cached_then_builds_rust_modules() {
    let options = BuildOptions::default();
    let mut progress = StderrProgress::new();
    let first =
        build(&options, &mut |e| progress.event(e)).unwrap_or_else(|e| panic!("{}", e.report()));
    assert!(first.image.is_file(), "{}", first.image.display());
    assert!(first.image.ends_with("arch/x86/boot/bzImage"));
    assert!(first
        .tree
        .starts_with(kmodlab_kernel::kernels_dir(&options.cache_dir)));
    assert!(!first.release.is_empty());
    let config = std::fs::read_to_string(first.tree.join(".config")).unwrap();
    for want in [
        "CONFIG_RUST=y",
        "CONFIG_DEBUG_INFO=y",
        "CONFIG_MODULES=y",
        "CONFIG_BUG=y",
    ] {
        assert!(
            config.lines().any(|l| l == want),
            "{want} missing from {}/.config",
            first.tree.display()
        );
    }
    // The bzImage says which release it is, as kbuild reads it.
    let image = std::fs::read(&first.image).unwrap();
    assert_eq!(
        kmodlab_kbuild::bzimage_release(&image).as_deref(),
        Some(first.release.as_str())
    );

    // Cached: the same paths at once, and no stage reported.
    assert_cached(&options, &first);

    // An out-of-tree Rust module builds against it with the kernel's make variables.
    let dir = std::env::temp_dir().join(format!("kmodlab-kernel-hello-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kmodlab_hello.rs"), HELLO_RS).unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := kmodlab_hello.o\n").unwrap();
    let mut log = Vec::new();
    let kos = kmodlab_kbuild::build(&dir, &first.kernel(), &mut log)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&log)));
    assert_eq!(kos.len(), 1);
    let raw = std::fs::read(&kos[0]).unwrap();
    let info = kmodlab_modfile::parse_module_file(&raw).unwrap();
    let vermagic = info.modinfo.vermagic().unwrap_or("");
    assert!(
        vermagic.starts_with(&format!("{} ", first.release)),
        "vermagic {vermagic:?}"
    );
    assert_make_skipped_until_an_edit(&dir, &first.kernel(), "kmodlab_hello.rs");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The debug lab kernel for real (many minutes the first time; cached afterwards, as the Rust lab
/// kernel is): every detector of its fragment in the final `.config`, Rust with KASAN (clang
/// allows it), the vmlinux kept with DWARF 5 and the gdb helpers beside it, and a C module built
/// against the tree with an ordinary Kbuild file.
#[test]
fn the_debug_lab_kernel_builds_once_and_is_cached_with_its_detectors_and_vmlinux() {
    let options = BuildOptions {
        flavour: Flavour::Debug,
        ..BuildOptions::default()
    };
    let mut progress = StderrProgress::new();
    let first =
        build(&options, &mut |e| progress.event(e)).unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(first.flavour, Flavour::Debug);
    assert!(first
        .tree
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("debug-"));
    let config = std::fs::read_to_string(first.tree.join(".config")).unwrap();
    let missing = kmodlab_kernel::not_stuck(&Flavour::Debug.options(true), &config);
    assert!(
        missing.is_empty(),
        "{missing:?} not in {}/.config (without Rust: {:?})",
        first.tree.display(),
        first.without_rust
    );
    assert_eq!(first.without_rust, None, "clang builds Rust with KASAN");
    assert!(kmodlab_kernel::tree_has_kasan(&first.tree));

    let vmlinux = first.tree.join("vmlinux");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "readelf --debug-dump=info '{}' 2>/dev/null | head -n 8",
            vmlinux.display()
        ))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(
        head.lines().any(|l| l.trim() == "Version:       5"),
        "DWARF 5 in {}: {head}",
        vmlinux.display()
    );
    assert!(
        first.tree.join("vmlinux-gdb.py").exists(),
        "the gdb helpers beside vmlinux"
    );

    assert_cached(&options, &first);

    let dir = std::env::temp_dir().join(format!("kmodlab-kernel-debug-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hello_c.c"),
        "#include <linux/module.h>\nstatic int which;\nmodule_param(which, int, 0);\n\
         static int table[4];\nstatic int __init hello_init(void) { return table[which]; }\n\
         module_init(hello_init);\nMODULE_LICENSE(\"GPL\");\nMODULE_DESCRIPTION(\"t\");\n",
    )
    .unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := hello_c.o\n").unwrap();
    let mut log = Vec::new();
    let kos = kmodlab_kbuild::build(&dir, &first.kernel(), &mut log)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&log)));
    let raw = std::fs::read(&kos[0]).unwrap();
    let info = kmodlab_modfile::parse_module_file(&raw).unwrap();
    assert!(
        info.undefined_symbols
            .iter()
            .any(|s| s.starts_with("__asan_") || s.starts_with("__kasan")),
        "the module is KASAN-instrumented: {:?}",
        info.undefined_symbols
    );
    assert_make_skipped_until_an_edit(&dir, &first.kernel(), "hello_c.c");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A second build of a built module skips make (Kbuild's records on this tree say nothing
/// changed); after the source is edited, make runs again and remakes the module.
fn assert_make_skipped_until_an_edit(dir: &Path, kernel: &kmodlab_kbuild::Kernel, source: &str) {
    let build = |what: &str| -> String {
        let mut log = Vec::new();
        kmodlab_kbuild::build(dir, kernel, &mut log)
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", String::from_utf8_lossy(&log)));
        String::from_utf8_lossy(&log).into_owned()
    };
    let log = build("the rebuild");
    assert!(log.contains("make skipped"), "the rebuild ran make:\n{log}");
    let ko_time = |d: &Path| {
        let ko = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "ko"))
            .unwrap();
        ko.metadata().unwrap().modified().unwrap()
    };
    let before = ko_time(dir);
    let f = std::fs::File::options()
        .append(true)
        .open(dir.join(source))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(1))
        .unwrap();
    let log = build("the build after an edit");
    assert!(
        log.contains(&format!("make runs: {source} is newer than")),
        "the build after an edit:\n{log}"
    );
    assert!(ko_time(dir) > before, "make did not remake the module");
}

/// A second build of a built kernel: the same paths at once, and no stage reported.
fn assert_cached(options: &BuildOptions, first: &LabKernel) {
    let started = Instant::now();
    let second = build(options, &mut |e: &BuildEvent| {
        panic!("a cached kernel reported {e:?}")
    })
    .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the cached call took {took:?}"
    );
    assert_eq!(&second, first);
}
