//! Kernels and Kbuild: which kernel a module runs on, and building a module directory against it.
#![deny(missing_docs)]

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod fresh;
pub use fresh::fnv1a;

/// A kernel to build modules for and boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Kernel release (`6.12.95+deb12-amd64`).
    pub release: String,
    /// The bootable image.
    pub image: PathBuf,
    /// The build tree for out-of-tree modules (`make -C KDIR M=...`).
    pub kdir: PathBuf,
    /// The installed module tree, when there is one.
    pub modules_dir: Option<PathBuf>,
    /// Extra make variables for `make -C KDIR M=DIR` (a Rust lab kernel's `LLVM=-19`,
    /// `RUSTC=...`); empty for Debian's kernels.
    pub make_args: Vec<String>,
    /// Extra environment for that make (`LIBCLANG_PATH`); empty for Debian's kernels.
    pub make_env: Vec<(String, String)>,
}

/// The user's cache directory for kmodlab (`$XDG_CACHE_HOME/kmodlab` or `~/.cache/kmodlab`).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("kmodlab");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/kmodlab")
}

/// Why no kernel could be selected: always an infrastructure problem (exit code 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

/// The release string inside a bzImage (the `kernel_version` field of the boot header).
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let off = u16::from_le_bytes([*image.get(0x20e)?, *image.get(0x20f)?]) as usize + 0x200;
    let rest = image.get(off..)?;
    let end = rest.iter().take(512).position(|&b| b == 0 || b == b' ')?;
    let s = std::str::from_utf8(&rest[..end]).ok()?;
    (!s.is_empty()).then(|| s.to_string())
}

fn kdir_release(kdir: &Path) -> Option<String> {
    std::fs::read_to_string(kdir.join("include/config/kernel.release"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Compares dotted releases numerically where they are numbers (6.12.10 > 6.12.9).
fn release_key(r: &str) -> Vec<(u64, String)> {
    r.split(['.', '-', '+'])
        .map(|p| (p.parse().unwrap_or(0), p.to_string()))
        .collect()
}

/// An installed distribution kernel: `/boot/vmlinuz-RELEASE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Its release.
    pub release: String,
    /// The image.
    pub image: PathBuf,
    /// `/lib/modules/RELEASE/build`, when its headers are installed.
    pub tree: Option<PathBuf>,
}

/// The distribution's kernels under `root` (`boot/vmlinuz-V`), oldest release first (compared
/// numerically where they are numbers: 6.12.10 after 6.12.9).
pub fn installed(root: &Path) -> std::io::Result<Vec<Installed>> {
    let mut found: Vec<Installed> = std::fs::read_dir(root.join("boot"))?
        .flatten()
        .filter_map(|e| {
            let release = e
                .file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")?
                .to_string();
            let tree = root.join("lib/modules").join(&release).join("build");
            Some(Installed {
                image: e.path(),
                tree: tree.exists().then_some(tree),
                release,
            })
        })
        .collect();
    found.sort_by_key(|k| release_key(&k.release));
    Ok(found)
}

/// Selects the kernel: `image`/`kdir` arguments, then `KMODLAB_KERNEL`/`KMODLAB_KDIR`, then the
/// newest `/boot/vmlinuz-V` whose `/lib/modules/V/build` exists.
pub fn select(image: Option<PathBuf>, kdir: Option<PathBuf>) -> Result<Kernel, KernelError> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    select_in(
        Path::new("/"),
        image.or_else(|| env("KMODLAB_KERNEL")),
        kdir.or_else(|| env("KMODLAB_KDIR")),
    )
}

/// [`select`] below a root directory (for tests).
pub fn select_in(
    root: &Path,
    image: Option<PathBuf>,
    kdir: Option<PathBuf>,
) -> Result<Kernel, KernelError> {
    let install = "install one with scripts/setup (linux-image-amd64 and linux-headers-amd64)";
    let (image, release) = match image {
        Some(image) => {
            let bytes = std::fs::read(&image)
                .map_err(|e| KernelError(format!("kernel image {}: {e}", image.display())))?;
            let release = bzimage_release(&bytes)
                .or_else(|| kdir.as_deref().and_then(kdir_release))
                .ok_or_else(|| {
                    KernelError(format!(
                        "kernel image {}: not a bzImage and no --kdir to tell its release",
                        image.display()
                    ))
                })?;
            (image, release)
        }
        None => {
            let boot = root.join("boot");
            let newest = installed(root)
                .map_err(|e| KernelError(format!("{}: {e}; {install}", boot.display())))?
                .into_iter()
                .rfind(|k| kdir.is_some() || k.tree.is_some());
            let k = newest.ok_or_else(|| {
                KernelError(format!(
                    "no kernel with headers: no {}/vmlinuz-V with /lib/modules/V/build; {install}",
                    boot.display()
                ))
            })?;
            (k.image, k.release)
        }
    };
    let modules_dir = root.join("lib/modules").join(&release);
    let kdir = kdir.unwrap_or_else(|| modules_dir.join("build"));
    if !kdir.join("Makefile").exists() {
        return Err(KernelError(format!(
            "no kernel build tree at {} for {release}; {install}",
            kdir.display()
        )));
    }
    if let Some(kr) = kdir_release(&kdir) {
        if kr != release {
            return Err(KernelError(format!(
                "kernel build tree {} is for {kr}, but the kernel image is {release}",
                kdir.display()
            )));
        }
    }
    Ok(Kernel {
        release,
        image,
        kdir,
        modules_dir: modules_dir
            .join("modules.dep")
            .exists()
            .then_some(modules_dir),
        make_args: Vec::new(),
        make_env: Vec::new(),
    })
}

/// A failed build.
#[derive(Debug)]
pub enum BuildError {
    /// `make` could not run at all (infrastructure).
    Make(String),
    /// The directory is not a module directory (input error).
    NotModuleDir(String),
    /// The module does not compile; the compiler's `file:line: error` lines.
    Compile {
        /// `make`'s exit status.
        status: String,
        /// The diagnostics, `file:line:col: error: ...`.
        errors: Vec<String>,
    },
    /// The build succeeded but produced no module.
    NoModule(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Make(s) | BuildError::NotModuleDir(s) | BuildError::NoModule(s) => {
                f.write_str(s)
            }
            BuildError::Compile { status, errors } => {
                write!(f, "build failed ({status})")?;
                for e in errors {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a compiler output line is a `file:line[:col]: error|warning:` diagnostic.
pub fn is_diagnostic(line: &str) -> bool {
    let mut parts = line.splitn(4, ':');
    let (Some(file), Some(lno)) = (parts.next(), parts.next()) else {
        return false;
    };
    if file.is_empty()
        || file.contains(' ')
        || lno.is_empty()
        || !lno.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    line.contains(": error:") || line.contains(": fatal error:") || line.contains(": warning:")
}

/// A rustc error's headline (`error[E0425]: cannot find value `x` in this scope`), but not its
/// closing summary (`error: aborting due to ...`).
fn rust_error_message(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("error")?;
    let rest = match rest.strip_prefix('[') {
        Some(r) => r.split_once(']')?.1,
        None => rest,
    };
    rest.strip_prefix(": ")?;
    (!line.starts_with("error: aborting due to")).then_some(line)
}

/// Whether a directory holds a Kbuild module (a `Kbuild` file, or a Makefile using `obj-m`).
pub fn is_module_dir(dir: &Path) -> bool {
    dir.join("Kbuild").exists()
        || std::fs::read_to_string(dir.join("Makefile")).is_ok_and(|m| m.contains("obj-m"))
}

/// Builds the modules of `dir` with `make -C KDIR M=DIR modules`, streaming make's output to `out`.
/// Returns the built `.ko` files (from `modules.order`).
pub fn build(dir: &Path, kernel: &Kernel, out: &mut dyn Write) -> Result<Vec<PathBuf>, BuildError> {
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| BuildError::NotModuleDir(format!("{}: {e}", dir.display())))?;
    if !is_module_dir(&dir) {
        return Err(BuildError::NotModuleDir(format!(
            "{}: not a module directory (no Kbuild file, no Makefile with obj-m)",
            dir.display()
        )));
    }
    // Skip make when Kbuild's records say it would remake nothing (`KMODLAB_MAKE=always` runs it
    // anyway). A stamp is taken before make and after; the later one is kept when make succeeded
    // and the inputs did not change meanwhile.
    let env: Vec<(String, String)> = std::env::vars().collect();
    let stamp = fresh::stamp_text(&dir, kernel, &env).ok();
    let always = std::env::var("KMODLAB_MAKE").is_ok_and(|v| v == "always");
    if let (Some(stamp), false) = (&stamp, always) {
        match fresh::freshness(&dir, kernel, stamp) {
            fresh::Freshness::Current => {
                if let Ok(kos) = built_modules(&dir) {
                    let _ = writeln!(
                        out,
                        "kmodlab: {} is up to date (Kbuild's .cmd records); make skipped",
                        dir.display()
                    );
                    return Ok(kos);
                }
            }
            fresh::Freshness::Stale(why) => {
                let _ = writeln!(out, "kmodlab: make runs: {why}");
            }
        }
    }
    fresh::forget(&dir);
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut child = Command::new("make")
        .arg("-C")
        .arg(&kernel.kdir)
        .arg(format!("M={}", dir.display()))
        .arg(format!("-j{jobs}"))
        .args(&kernel.make_args)
        .envs(kernel.make_env.iter().map(|(k, v)| (k, v)))
        .arg("modules")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            BuildError::Make(format!(
                "cannot run make: {e}; install build-essential (scripts/setup)"
            ))
        })?;
    // Merge stdout and stderr line by line, in arrival order.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ]
    .into_iter()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(tx);
    let mut errors = Vec::new();
    let mut rust_error: Option<String> = None;
    for line in rx {
        if is_diagnostic(&line) && (line.contains("error:")) {
            errors.push(line.clone());
        }
        // rustc: `error[E0425]: message` then ` --> file.rs:line:col`.
        if let Some(e) = rust_error_message(&line) {
            rust_error = Some(e.to_string());
        } else if let (Some(e), Some(loc)) = (&rust_error, line.trim_start().strip_prefix("--> ")) {
            errors.push(format!("{}: {e}", loc.trim()));
            rust_error = None;
        }
        let _ = writeln!(out, "{line}");
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().map_err(|e| BuildError::Make(e.to_string()))?;
    if !status.success() {
        return Err(BuildError::Compile {
            status: status.to_string(),
            errors,
        });
    }
    let kos = built_modules(&dir)?;
    if let (Some(before), Ok(after)) = (stamp, fresh::stamp_text(&dir, kernel, &env)) {
        if fresh::same_inputs(&before, &after) {
            let _ = fresh::record(&dir, &after);
        }
    }
    Ok(kos)
}

/// The modules a build made, from its `modules.order`.
fn built_modules(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let order = std::fs::read_to_string(dir.join("modules.order")).unwrap_or_default();
    let kos: Vec<PathBuf> = order
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let rel = l.strip_prefix(&format!("{}/", dir.display())).unwrap_or(l);
            dir.join(rel).with_extension("ko")
        })
        .filter(|p| p.exists())
        .collect();
    if kos.is_empty() {
        return Err(BuildError::NoModule(format!(
            "{}: the build produced no .ko",
            dir.display()
        )));
    }
    Ok(kos)
}

/// The vermagic of the kernel's own modules (read from one installed module), when there is a
/// module tree to read it from.
pub fn kernel_vermagic(kernel: &Kernel) -> Option<String> {
    let dir = kernel.modules_dir.as_ref()?;
    let dep = std::fs::read_to_string(dir.join("modules.dep")).ok()?;
    for line in dep.lines().take(20) {
        let rel = line.split(':').next()?;
        let Ok(raw) = std::fs::read(dir.join(rel)) else {
            continue;
        };
        if let Ok(info) = kmodlab_modfile::parse_module_file(&raw) {
            if let Some(v) = info.modinfo.vermagic() {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// Checks that a module's vermagic fits the kernel: its release must equal the kernel's, and its
/// whole vermagic the kernel modules' vermagic when that is known.
pub fn check_vermagic(
    module_vermagic: &str,
    kernel: &Kernel,
    kernel_vermagic: Option<&str>,
) -> Result<(), String> {
    let release = module_vermagic.split_whitespace().next().unwrap_or("");
    if release != kernel.release {
        return Err(format!(
            "built for kernel {release}, but the kernel is {} (vermagic \"{}\")",
            kernel.release,
            module_vermagic.trim()
        ));
    }
    if let Some(kv) = kernel_vermagic {
        if kv.trim() != module_vermagic.trim() {
            return Err(format!(
                "vermagic \"{}\" does not match the kernel's \"{}\"",
                module_vermagic.trim(),
                kv.trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_are_recognised() {
        assert!(is_diagnostic(
            "/tmp/m/hello.c:12:5: error: expected ';' before '}' token"
        ));
        assert!(is_diagnostic("hello.c:3: warning: unused"));
        assert!(!is_diagnostic("make[1]: *** [Makefile:12: all] Error 2"));
        assert!(!is_diagnostic("  CC [M]  /tmp/m/hello.o"));
    }

    #[test]
    fn rust_errors_are_recognised() {
        assert_eq!(
            rust_error_message("error[E0425]: cannot find value `x` in this scope"),
            Some("error[E0425]: cannot find value `x` in this scope")
        );
        assert!(rust_error_message("error: expected `;`, found `}`").is_some());
        assert_eq!(
            rust_error_message("error: aborting due to 1 previous error"),
            None
        );
        assert_eq!(rust_error_message("errors.o"), None);
    }

    #[test]
    fn bzimage_release_reads_the_header() {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x310].copy_from_slice(b"6.12.1-amd64 (x)");
        assert_eq!(bzimage_release(&img).as_deref(), Some("6.12.1-amd64"));
        assert_eq!(bzimage_release(b"short"), None);
    }

    #[test]
    fn newest_kernel_with_headers_wins() {
        let root = std::env::temp_dir().join(format!("kmodlab-kbuild-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for v in [
            "6.1.0-9-amd64",
            "6.12.9-amd64",
            "6.12.10-amd64",
            "6.13.0-nohdr",
        ] {
            std::fs::create_dir_all(root.join("boot")).unwrap();
            std::fs::write(root.join(format!("boot/vmlinuz-{v}")), b"").unwrap();
            if v != "6.13.0-nohdr" {
                let b = root.join(format!("lib/modules/{v}/build"));
                std::fs::create_dir_all(&b).unwrap();
                std::fs::write(b.join("Makefile"), b"").unwrap();
            }
        }
        let k = select_in(&root, None, None).unwrap();
        assert_eq!(k.release, "6.12.10-amd64");
        assert!(k.image.ends_with("boot/vmlinuz-6.12.10-amd64"));
        // The same list `kernel list` shows: numeric order, headers or not.
        let all: Vec<(String, bool)> = installed(&root)
            .unwrap()
            .into_iter()
            .map(|k| (k.release, k.tree.is_some()))
            .collect();
        assert_eq!(
            all,
            [
                ("6.1.0-9-amd64".to_string(), true),
                ("6.12.9-amd64".to_string(), true),
                ("6.12.10-amd64".to_string(), true),
                ("6.13.0-nohdr".to_string(), false),
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
        let e = select_in(&root, None, None).unwrap_err();
        assert!(e.0.contains("scripts/setup"), "{e}");
    }

    #[test]
    fn vermagic_mismatch_names_both() {
        let k = Kernel {
            release: "6.12.9-amd64".into(),
            image: "/boot/x".into(),
            kdir: "/k".into(),
            modules_dir: None,
            make_args: Vec::new(),
            make_env: Vec::new(),
        };
        let e = check_vermagic("6.1.0-9-amd64 SMP mod_unload ", &k, None).unwrap_err();
        assert!(
            e.contains("6.1.0-9-amd64") && e.contains("6.12.9-amd64"),
            "{e}"
        );
        assert!(check_vermagic(
            "6.12.9-amd64 SMP mod_unload ",
            &k,
            Some("6.12.9-amd64 SMP mod_unload")
        )
        .is_ok());
    }
}
