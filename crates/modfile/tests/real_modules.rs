//! Parses the real modules installed under `/lib/modules/<release>/kernel`, when there are any
//! (each test prints a message and passes when there are none).
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

#[test]
fn installed_module_parses() {
    let releases = installed_releases();
    if releases.is_empty() {
        println!("skipped: no /lib/modules/<release>/kernel directory on this machine");
        return;
    }
    for (release, kernel) in releases {
        let preferred = kernel.join("drivers/char/lp.ko.xz");
        let path = if preferred.is_file() {
            preferred
        } else {
            match module_files(&kernel).into_iter().next() {
                Some(path) => path,
                None => {
                    println!("skipped {release}: no module files in {}", kernel.display());
                    continue;
                }
            }
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
}

#[test]
fn every_char_driver_parses() {
    let mut checked = 0;
    for (release, kernel) in installed_releases() {
        let mut failures = Vec::new();
        for path in module_files(&kernel.join("drivers/char")) {
            match check_module(&path, &release) {
                Ok(_) => checked += 1,
                Err(e) => failures.push(e),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
    if checked == 0 {
        println!("skipped: no modules under /lib/modules/<release>/kernel/drivers/char");
    } else {
        println!("{checked} char driver modules parsed");
    }
}

/// A real module whose `.modinfo` `name=` is renamed away: the name then comes from the
/// `struct module` in `.gnu.linkonce.this_module`, at offset 24.
#[test]
fn installed_module_name_from_struct_module() {
    for (release, kernel) in installed_releases() {
        let Some(path) = module_files(&kernel.join("drivers/char"))
            .into_iter()
            .next()
        else {
            println!("skipped {release}: no modules under drivers/char");
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let mut image = decompress(&bytes).unwrap().into_owned();
        let name = module_name_of(&path).unwrap();
        let entry = format!("\0name={name}\0");
        let Some(at) = image
            .windows(entry.len())
            .position(|w| w == entry.as_bytes())
        else {
            println!("skipped {}: no `name={name}` in .modinfo", path.display());
            continue;
        };
        image[at + 1] = b'x'; // "xame=..."
        let info = parse_module(&image).unwrap();
        assert_eq!(info.modinfo.name(), None, "{}", path.display());
        assert_eq!(info.modinfo.get("xame"), Some(name.as_str()));
        assert_eq!(info.name, name, "{}", path.display());
    }
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
