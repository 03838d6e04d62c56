//! Builds the Rust lab kernel for real, through the library: minutes the first time on two cores,
//! then cached in `~/.cache/kmodlab/kernels/` (CI keeps that directory between runs), so later
//! runs take a second. Needs what `scripts/setup` installs: `/usr/src/linux-source-7.*.tar.xz`,
//! rustc-web, LLVM 19, bindgen-cli.

use kmodlab_kernel::{build, BuildEvent, BuildOptions, StderrProgress};
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
    let started = Instant::now();
    let second = build(&options, &mut |e: &BuildEvent| {
        panic!("a cached kernel reported {e:?}")
    })
    .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the cached call took {took:?}"
    );
    assert_eq!(second, first);

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
    std::fs::remove_dir_all(&dir).unwrap();
}
