//! New module directories: `kmodlab new NAME [--rust]` writes a module (source, Kbuild, Makefile,
//! test spec) that builds and passes its own test out of the box, in C for the distribution's
//! kernel or in Rust for the Rust lab kernel.
//!
//! The templates live in `templates/c` and `templates/rust`; `@NAME@` is the directory name as
//! given, `@MOD@` the module name (the kernel's: `-` becomes `_`), `@TYPE@` the Rust module type
//! (`my_mod` becomes `MyMod`). Nothing is ever overwritten: an existing non-empty directory is
//! an error.
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

/// The language of the new module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// C, built against the distribution's kernel headers.
    C,
    /// Rust, built against the Rust lab kernel's tree.
    Rust,
}

/// Why a module directory could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// The name cannot be a module name.
    BadName(String),
    /// The directory exists and is not empty.
    Exists(PathBuf),
    /// Writing failed.
    Io(PathBuf, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName(why) => f.write_str(why),
            Error::Exists(p) => write!(
                f,
                "{}: exists and is not empty (kmodlab new never overwrites)",
                p.display()
            ),
            Error::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for Error {}

const C_FILES: [(&str, &str); 4] = [
    ("@MOD@.c", include_str!("../templates/c/module.c")),
    ("Kbuild", include_str!("../templates/c/Kbuild")),
    ("Makefile", include_str!("../templates/c/Makefile")),
    ("kmodlab.toml", include_str!("../templates/c/kmodlab.toml")),
];

const RUST_FILES: [(&str, &str); 4] = [
    ("@MOD@.rs", include_str!("../templates/rust/module.rs")),
    ("Kbuild", include_str!("../templates/rust/Kbuild")),
    ("Makefile", include_str!("../templates/rust/Makefile")),
    (
        "kmodlab.toml",
        include_str!("../templates/rust/kmodlab.toml"),
    ),
];

/// The kernel's name for a module in directory `name`: the last path component, `-` as `_`.
/// It must start with a letter and hold only ASCII letters, digits and `_` (at most 55 bytes,
/// the kernel's limit less room for a suffix).
pub fn module_name(dir: &Path) -> Result<String, Error> {
    let last = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::BadName(format!("{}: no usable directory name", dir.display())))?;
    let name = last.replace('-', "_");
    let ok_start = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_start || !ok_chars || name.len() > 55 {
        return Err(Error::BadName(format!(
            "{last:?} cannot name a module: use a letter first, then letters, digits, '_' or '-' \
             (at most 55)"
        )));
    }
    Ok(name)
}

/// `my_mod` → `MyMod`: the Rust type of the module.
fn type_name(module: &str) -> String {
    module
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn fill(text: &str, name: &str, module: &str) -> String {
    text.replace("@NAME@", name)
        .replace("@MOD@", module)
        .replace("@TYPE@", &type_name(module))
}

/// Writes a new module directory `dir` (made if missing; refused if not empty) and returns the
/// files written.
pub fn create(dir: &Path, language: Language) -> Result<Vec<PathBuf>, Error> {
    let module = module_name(dir)?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&module)
        .to_string();
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(Error::Exists(dir.to_path_buf()));
        }
    } else if dir.exists() {
        return Err(Error::Exists(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e.to_string()))?;
    let files: &[(&str, &str)] = match language {
        Language::C => &C_FILES,
        Language::Rust => &RUST_FILES,
    };
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(fill(file, &name, &module));
        std::fs::write(&path, fill(text, &name, &module))
            .map_err(|e| Error::Io(path.clone(), e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kmodlab-scaffold-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn names() {
        assert_eq!(module_name(Path::new("a/my-mod")).unwrap(), "my_mod");
        assert_eq!(module_name(Path::new("demo")).unwrap(), "demo");
        for bad in ["1mod", "a.b", "sp ace", "_x", ""] {
            assert!(module_name(Path::new(bad)).is_err(), "{bad:?}");
        }
        assert!(module_name(&PathBuf::from("x".repeat(56))).is_err());
        assert_eq!(type_name("my_mod"), "MyMod");
        assert_eq!(type_name("demo"), "Demo");
        assert_eq!(type_name("a__b2"), "AB2");
    }

    #[test]
    fn c_module_files_are_filled_in() {
        let root = scratch("c");
        let dir = root.join("my-mod");
        let files = create(&dir, Language::C).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["my_mod.c", "Kbuild", "Makefile", "kmodlab.toml"]);
        let c = std::fs::read_to_string(dir.join("my_mod.c")).unwrap();
        assert!(c.contains("static int __init my_mod_init(void)"));
        assert!(!c.contains('@'), "every placeholder filled: {c}");
        assert_eq!(
            std::fs::read_to_string(dir.join("Kbuild")).unwrap(),
            "obj-m := my_mod.o\n"
        );
        let spec = std::fs::read_to_string(dir.join("kmodlab.toml")).unwrap();
        assert!(spec.contains("module = \"my_mod\""));
        assert!(!spec.contains("kernel = \"rust\""));
        // Never overwritten.
        assert_eq!(create(&dir, Language::C), Err(Error::Exists(dir.clone())));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn rust_module_files_are_filled_in() {
        let root = scratch("rust");
        let dir = root.join("demo");
        std::fs::create_dir_all(&dir).unwrap(); // an empty directory is fine
        create(&dir, Language::Rust).unwrap();
        let rs = std::fs::read_to_string(dir.join("demo.rs")).unwrap();
        assert!(rs.contains("type: Demo,"));
        assert!(rs.contains("name: \"demo\","));
        assert!(!rs.contains('@'), "every placeholder filled: {rs}");
        let spec = std::fs::read_to_string(dir.join("kmodlab.toml")).unwrap();
        assert!(spec.contains("kernel = \"rust\""));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn specs_parse_and_name_their_kernel() {
        for (language, kernel) in [
            (Language::C, kmodlab_spec::KernelKind::Debian),
            (Language::Rust, kmodlab_spec::KernelKind::Rust),
        ] {
            let root = scratch(&format!("spec-{kernel:?}"));
            let dir = root.join("demo");
            create(&dir, language).unwrap();
            let text = std::fs::read_to_string(dir.join("kmodlab.toml")).unwrap();
            let spec = kmodlab_spec::parse("kmodlab.toml", &text).unwrap();
            assert_eq!(spec.kernel, kernel);
            assert_eq!(spec.module.as_deref(), Some("demo"));
            assert_eq!(spec.cases.len(), 2);
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}
