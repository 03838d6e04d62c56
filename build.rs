//! The identity of the code this binary runs inside a guest: the agent (PID 1), the module tools
//! and dmesg, which `src/main.rs` dispatches to there. It is a hash of the sources of those
//! crates and of every crate they depend on through path dependencies, of `src/main.rs`, of
//! `Cargo.lock`, and of the compiler, target and profile. `src/main.rs` embeds it as a marker
//! that kmodlab finds in the agent binary: warm VM states are keyed by it instead of the
//! binary's bytes, so that builds differing only in host code (a help text, the lab's checks)
//! restore the same saved states. A state holds the guest's running agent: any change to the
//! guest's code gives another identity and a state of its own.
use std::path::{Path, PathBuf};

/// The crates whose code runs in the guest, as `src/main.rs` dispatches.
const GUEST_CRATES: [&str; 3] = ["agent", "kmod", "dmesg"];

/// Two 64-bit FNV-1a hashes with different starts: 128 bits.
struct Hash([u64; 2]);

impl Hash {
    fn add(&mut self, bytes: &[u8]) {
        for (i, h) in self.0.iter_mut().enumerate() {
            for &b in bytes {
                *h ^= u64::from(b);
                *h = h.wrapping_mul(0x0100_0000_01b3);
            }
            *h ^= bytes.len() as u64 + i as u64;
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// The crates a crate's `Cargo.toml` names as path dependencies (`path = "../NAME"`) in its
/// `[dependencies]`.
fn path_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies {
            continue;
        }
        if let Some(rest) = line.split("path = \"../").nth(1) {
            if let Some(name) = rest.split('"').next() {
                out.push(name.to_string());
            }
        }
    }
    out
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut crates: Vec<String> = Vec::new();
    let mut todo: Vec<String> = GUEST_CRATES.iter().map(|s| s.to_string()).collect();
    while let Some(name) = todo.pop() {
        if crates.contains(&name) {
            continue;
        }
        let manifest = std::fs::read_to_string(root.join("crates").join(&name).join("Cargo.toml"))
            .unwrap_or_default();
        todo.extend(path_dependencies(&manifest));
        crates.push(name);
    }
    crates.sort();
    let mut inputs = vec![
        root.join("src/main.rs"),
        root.join("build.rs"),
        root.join("Cargo.lock"),
    ];
    for name in &crates {
        let dir = root.join("crates").join(name);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        inputs.push(dir.join("Cargo.toml"));
        let mut sources = Vec::new();
        files(&dir.join("src"), &mut sources);
        sources.sort();
        inputs.extend(sources);
    }
    for path in &inputs[..3] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let mut hash = Hash([0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142]);
    for path in &inputs {
        hash.add(
            path.strip_prefix(&root)
                .unwrap_or(path)
                .as_os_str()
                .as_encoded_bytes(),
        );
        hash.add(&std::fs::read(path).unwrap_or_default());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    hash.add(&version);
    for var in [
        "TARGET",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "CARGO_CFG_DEBUG_ASSERTIONS",
    ] {
        hash.add(std::env::var(var).unwrap_or_default().as_bytes());
    }
    println!(
        "cargo:rustc-env=KMODLAB_GUEST_CODE={:016x}{:016x}",
        hash.0[0], hash.0[1]
    );
}
