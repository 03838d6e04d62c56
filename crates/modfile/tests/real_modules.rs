//! Parses the real modules of the newest installed kernel, `/lib/modules/<release>/kernel`
//! (each test is skipped, and named in the suite's summary, when there is none).
//!
//! `every_installed_module_parses` reads every module of every release and is `#[ignore]`d;
//! run it with `cargo test -p kmodlab-modfile --release -- --ignored`.

use std::path::{Path, PathBuf};

use kmodlab_modfile::{decompress, parse_module, parse_module_file, ModuleInfo};

/// `(release, /lib/modules/<release>/kernel)` for every release with a `kernel` directory.
fn installed_releases() -> Vec<(String, PathBuf)> {
    let mut releases = Vec::new();
    let Ok(entries) = std::fs::read_dir("/lib/modules") else {
        return releases;
    };
    for entry in entries.flatten() {
        let kernel = entry.path().join("kernel");
        if let (true, Some(release)) = (kernel.is_dir(), entry.file_name().to_str()) {
            releases.push((release.to_owned(), kernel));
        }
    }
    releases.sort();
    releases
}

/// The module name a file stands for: its name without `.ko[.xz|.zst|.gz]`, `-` as `_`.
fn module_name_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    Some(stem.replace('-', "_"))
}

/// Every module file under `dir`, recursively, sorted.
fn module_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if module_name_of(&path).is_some() {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Reads and parses `path`, checking its name and vermagic against the file name and release.
fn check_module(path: &Path, release: &str) -> Result<ModuleInfo, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let info = parse_module_file(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let expected = module_name_of(path).unwrap_or_default();
    if info.name != expected {
        return Err(format!(
            "{}: name {:?}, expected {expected:?}",
            path.display(),
            info.name
        ));
    }
    let vermagic = info.modinfo.vermagic().unwrap_or_default();
    if vermagic.split(' ').next() != Some(release) {
        return Err(format!(
            "{}: vermagic {vermagic:?} does not start with {release:?}",
            path.display()
        ));
    }
    Ok(info)
}

/// The newest installed kernel's `(release, /lib/modules/<release>/kernel)`, or `None` after a
/// skip.
fn host_tree() -> Option<(String, PathBuf)> {
    let host = kmodlab_testkit::host_kernel()?;
    Some((host.release, host.modules_dir.join("kernel")))
}

#[test]
fn installed_module_parses() {
    let Some((release, kernel)) = host_tree() else {
        return;
    };
    let preferred = kernel.join("drivers/char/lp.ko.xz");
    let path = if preferred.is_file() {
        preferred
    } else {
        module_files(&kernel)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no module files in {}", kernel.display()))
    };
    let info = check_module(&path, &release).unwrap();
    assert!(info.modinfo.get("license").is_some(), "{}", path.display());
    println!(
        "{}: {} (vermagic {:?}, {} undefined symbols)",
        path.display(),
        info.name,
        info.modinfo.vermagic().unwrap_or_default(),
        info.undefined_symbols.len()
    );
}

#[test]
fn every_char_driver_parses() {
    let Some((release, kernel)) = host_tree() else {
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in module_files(&kernel.join("drivers/char")) {
        match check_module(&path, &release) {
            Ok(_) => checked += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked > 0,
        "no modules under {}/drivers/char",
        kernel.display()
    );
    println!("{checked} char driver modules parsed");
}

/// A real module whose `.modinfo` `name=` is renamed away: the name then comes from the
/// `struct module` in `.gnu.linkonce.this_module`, at offset 24.
#[test]
fn installed_module_name_from_struct_module() {
    let Some((_, kernel)) = host_tree() else {
        return;
    };
    let path = module_files(&kernel.join("drivers/char"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no modules under {}/drivers/char", kernel.display()));
    let bytes = std::fs::read(&path).unwrap();
    let mut image = decompress(&bytes).unwrap().into_owned();
    let name = module_name_of(&path).unwrap();
    let entry = format!("\0name={name}\0");
    let at = image
        .windows(entry.len())
        .position(|w| w == entry.as_bytes())
        .unwrap_or_else(|| panic!("no `name={name}` in the .modinfo of {}", path.display()));
    image[at + 1] = b'x'; // "xame=..."
    let info = parse_module(&image).unwrap();
    assert_eq!(info.modinfo.name(), None, "{}", path.display());
    assert_eq!(info.modinfo.get("xame"), Some(name.as_str()));
    assert_eq!(info.name, name, "{}", path.display());
}

#[test]
#[ignore = "reads every installed module; run with --release -- --ignored"]
fn every_installed_module_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (release, kernel) in installed_releases() {
        for path in module_files(&kernel) {
            match check_module(&path, &release) {
                Ok(_) => checked += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    println!("{checked} modules parsed, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
