//! The skipped `make` gives the same answer as `make`: on the host's Debian kernel headers, each
//! edit a developer makes (a source, a header in the directory and outside it, the Kbuild file, a
//! flag in the environment, a deleted module) is judged from Kbuild's records, then `make` runs
//! and shows whether it remade anything. Whenever make remakes something, the records said
//! stale; whenever they said current, make remade nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use kmodlab_kbuild::fresh::{self, Freshness};
use kmodlab_kbuild::Kernel;

/// Every regular file under `dir` (but the stamp) with its time and size.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_file() && e.file_name() != fresh::STAMP {
            out.insert(e.path(), (m.modified().unwrap(), m.len()));
        }
    }
    out
}

/// Runs Kbuild's own `make` and says whether it remade (or made) any file.
fn make_remakes(dir: &Path, k: &Kernel) -> bool {
    let before = snapshot(dir);
    let out = Command::new("make")
        .arg("-C")
        .arg(&k.kdir)
        .arg(format!("M={}", dir.display()))
        .arg("modules")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    snapshot(dir) != before
}

fn decision(dir: &Path, k: &Kernel) -> Freshness {
    let env: Vec<(String, String)> = std::env::vars().collect();
    fresh::freshness(dir, k, &fresh::stamp_text(dir, k, &env).unwrap())
}

/// Builds through kmodlab, which records the stamp; then the build is current.
fn kmodlab_build(dir: &Path, k: &Kernel) {
    let mut log = Vec::new();
    kmodlab_kbuild::build(dir, k, &mut log)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&log)));
    assert_eq!(decision(dir, k), Freshness::Current, "right after a build");
}

/// Sets a file's time to now, one second on, so that it is newer than anything built before.
fn touch_later(p: &Path) {
    let f = std::fs::File::options().append(true).open(p).unwrap();
    f.set_modified(SystemTime::now() + std::time::Duration::from_secs(1))
        .unwrap();
}

#[test]
fn skipping_make_agrees_with_make() {
    let Ok(k) = kmodlab_kbuild::select(None, None) else {
        kmodlab_testkit::skip("a Debian kernel with its headers (linux-headers-amd64)");
        return;
    };
    if kmodlab_testkit::require_program("make").is_none() {
        return;
    }
    let root = std::env::temp_dir().join(format!("kmodlab-make-agrees-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(root.join("shared.h"), "#define GREETING \"hi\"\n").unwrap();
    std::fs::write(dir.join("hello.h"), "#define WHO \"world\"\n").unwrap();
    std::fs::write(
        dir.join("hello.c"),
        "#include <linux/module.h>\n#include \"hello.h\"\n#include \"../shared.h\"\n\
         static int __init h_init(void) { pr_info(GREETING \" \" WHO \"\\n\"); return 0; }\n\
         static void __exit h_exit(void) { }\n\
         module_init(h_init);\nmodule_exit(h_exit);\nMODULE_LICENSE(\"GPL\");\n",
    )
    .unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := hello.o\n").unwrap();
    std::fs::write(dir.join("kmodlab.toml"), "").unwrap();
    kmodlab_build(&dir, &k);

    // (name, edit, whether make remakes something)
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, bool)> = vec![
        ("nothing changed", Box::new(|_| {}), false),
        (
            "the spec edited",
            Box::new(|d| std::fs::write(d.join("kmodlab.toml"), "timeout = 9\n").unwrap()),
            false,
        ),
        (
            "the source touched",
            Box::new(|d| touch_later(&d.join("hello.c"))),
            true,
        ),
        (
            "a header in the directory edited",
            Box::new(|d| {
                std::fs::write(d.join("hello.h"), "#define WHO \"lab\"\n").unwrap();
                touch_later(&d.join("hello.h"));
            }),
            true,
        ),
        (
            "a header outside the directory edited",
            Box::new(|d| touch_later(&d.join("../shared.h"))),
            true,
        ),
        (
            "a flag added in Kbuild",
            Box::new(|d| {
                std::fs::write(d.join("Kbuild"), "obj-m := hello.o\nccflags-y += -DLAB=1\n")
                    .unwrap()
            }),
            true,
        ),
        (
            "the module deleted",
            Box::new(|d| std::fs::remove_file(d.join("hello.ko")).unwrap()),
            true,
        ),
        (
            "the object touched",
            Box::new(|d| touch_later(&d.join("hello.o"))),
            true,
        ),
    ];
    for (name, edit, remakes) in cases {
        edit(&dir);
        let said = decision(&dir, &k);
        let made = make_remakes(&dir, &k);
        assert_eq!(made, remakes, "{name}: make remade something: {made}");
        assert_eq!(
            said == Freshness::Current,
            !made,
            "{name}: the records said {said:?}, make remade something: {made}"
        );
        kmodlab_build(&dir, &k);
    }

    // A flag in the environment: make remakes, and the stamp saw it.
    std::env::set_var("KCFLAGS", "-DFROM_ENV=1");
    let said = decision(&dir, &k);
    let made = make_remakes(&dir, &k);
    assert!(made, "KCFLAGS: make remade nothing");
    assert_eq!(
        said,
        Freshness::Stale("KCFLAGS changed in the environment".into())
    );
    kmodlab_build(&dir, &k);
    std::env::remove_var("KCFLAGS");
    kmodlab_build(&dir, &k);

    // A comment in Kbuild: make remakes nothing, but the records cannot know the command did not
    // change; the one answer that errs, on the safe side.
    std::fs::write(
        dir.join("Kbuild"),
        "# hello\nobj-m := hello.o\nccflags-y += -DLAB=1\n",
    )
    .unwrap();
    assert_eq!(
        decision(&dir, &k),
        Freshness::Stale("Kbuild changed".into())
    );
    assert!(!make_remakes(&dir, &k));

    // A make run by hand with another flag rewrites Kbuild's records: the stamp sees it.
    kmodlab_build(&dir, &k);
    let out = Command::new("make")
        .arg("-C")
        .arg(&k.kdir)
        .arg(format!("M={}", dir.display()))
        .arg("KCFLAGS=-DBY_HAND=1")
        .arg("modules")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(matches!(decision(&dir, &k), Freshness::Stale(_)));
    let _ = std::fs::remove_dir_all(&root);
}
