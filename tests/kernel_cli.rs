//! `kmodlab kernel`: the command line of the lab kernels, without building one (the real builds
//! are `crates/kernel/tests/build.rs` and, for the debug lab kernel, `tests/vm.rs`).

mod util;
use util::*;

#[test]
fn kernel_build_with_a_nonexistent_source_is_one_line_and_exit_2() {
    for flavour in ["--rust", "--debug"] {
        let out = kmodlab()
            .args(["kernel", "build", flavour, "--source", "/nonexistent/linux"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flavour}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{flavour}: {}", show(&out));
        assert!(
            err.starts_with("kmodlab: --source /nonexistent/linux: "),
            "{flavour}: {}",
            show(&out)
        );
        assert!(out.stdout.is_empty(), "{flavour}: {}", show(&out));
    }
}

#[test]
fn kernel_build_of_a_directory_that_is_no_kernel_tree_is_exit_2() {
    let dir = scratch("kernel-notree");
    let out = kmodlab()
        .args(["kernel", "build", "--rust", "--source"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a kernel source tree"),
        "{}",
        show(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn kernel_build_needs_one_flavour() {
    let out = kmodlab().args(["kernel", "build"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<--rust|--debug>"), "{}", show(&out));
    let out = kmodlab()
        .args(["kernel", "build", "--rust", "--debug"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        show(&out)
    );
}

#[test]
fn kernel_list_shows_the_cache_by_state() {
    let cache = scratch("kernel-list");
    let partial = cache.join("kmodlab/kernels/rust-7.3-0123456789ab");
    let debug = cache.join("kmodlab/kernels/debug-7.3-ba9876543210");
    for tree in [&partial, &debug] {
        std::fs::create_dir_all(tree).unwrap();
        std::fs::write(
            tree.join("kmodlab-source"),
            "/usr/src/linux-source-7.3.tar.xz\n",
        )
        .unwrap();
    }
    let out = kmodlab()
        .args(["kernel", "list"])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["KIND", "RELEASE", "STATE", "SIZE", "SOURCE", "TREE"],
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("debug "))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..3], ["debug", "-", "incomplete"], "{row}");
    assert!(cells[3].ends_with('K'), "the size of what is there: {row}");
    assert!(row.ends_with(&debug.display().to_string()), "{row}");
    let row = text
        .lines()
        .find(|l| l.starts_with("rust "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("incomplete"), "{row}");
    assert!(row.contains("/usr/src/linux-source-7.3.tar.xz"), "{row}");
    assert!(row.ends_with(&partial.display().to_string()), "{row}");
    let out = kmodlab()
        .args(["kernel", "list", "--json"])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rust: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "rust")
        .collect();
    assert_eq!(rust.len(), 1, "{v}");
    assert_eq!(rust[0]["state"], "incomplete");
    let debug: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "debug")
        .collect();
    assert_eq!(debug.len(), 1, "{v}");
    assert!(debug[0]["size_bytes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(debug[0]["rust"], false, "{v}");
    std::fs::remove_dir_all(cache).unwrap();
}
