//! Embeds the workspace's `labs/` directory: every source, Kbuild, Makefile, spec and README
//! under it (build products are left out), as `(relative path, bytes)` pairs.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Whether a file is lab content (not something a build left in the directory).
fn is_content(name: &str) -> bool {
    matches!(name, "Kbuild" | "Makefile" | "kmodlab.toml" | "README.md")
        || [".c", ".h", ".rs"].iter().any(|e| name.ends_with(e)) && !name.ends_with(".mod.c")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out),
            Ok(t) if t.is_file() && is_content(&name) => out.push(path),
            _ => {}
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let labs = manifest.join("../../labs");
    let labs = labs.canonicalize().unwrap_or(labs);
    let mut files = Vec::new();
    walk(&labs, &mut files);
    files.sort();
    let mut code = String::from("/// The lab files, `(path under labs/, contents)`, sorted.\n");
    code.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f.strip_prefix(&labs).expect("under labs/");
        let _ = writeln!(
            code,
            "    ({:?}, include_bytes!({:?})),",
            rel.to_string_lossy(),
            f.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("labs.rs");
    std::fs::write(out, code).expect("writing labs.rs");
}
