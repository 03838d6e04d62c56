//! The lab loop, put together: pick the kernel, build or read the module, check that it fits the
//! kernel, run it in a VM, and run test specs in parallel. No argument parsing and no printing of
//! its own: the binary does that.
#![deny(missing_docs)]

mod analyze;
pub mod debugger;
pub mod leaks;
pub mod shell;

pub use analyze::{analyze_log, enrich, symbolizer, AnalyzeOptions};

use kmodlab_events::{Event, RunResult};
use kmodlab_kbuild::Kernel;
use kmodlab_kernel::BuildEvent;
use kmodlab_report::CaseOutcome;
pub use kmodlab_spec::KernelKind;
use kmodlab_spec::Spec;
use kmodlab_vm::accel::Decision;
use kmodlab_vm::{BootKernel, Deadlines, InfraError, RunPlan};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What went wrong, sorted by who can fix it; each maps to an exit code.
#[derive(Clone, Debug)]
pub enum LabError {
    /// Bad arguments or input files (exit 2).
    Input(String),
    /// The module failed to build (exit 1).
    Build(String),
    /// No kernel, no QEMU, the VM did not boot (exit 3).
    Infra(String),
}

impl LabError {
    /// The exit code scripts see: 1 build failed, 2 input error, 3 infrastructure.
    pub fn exit_code(&self) -> i32 {
        use kmodlab_events::exit;
        i32::from(match self {
            LabError::Build(_) => exit::FAILED,
            LabError::Input(_) => exit::USAGE,
            LabError::Infra(_) => exit::INFRA,
        })
    }
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabError::Input(s) | LabError::Build(s) | LabError::Infra(s) => f.write_str(s),
        }
    }
}

/// A module ready to load.
#[derive(Clone, Debug)]
pub struct Module {
    /// Its name as the kernel knows it.
    pub name: String,
    /// The .ko file.
    pub ko: PathBuf,
    /// The uncompressed image.
    pub image: Vec<u8>,
}

/// The host side of the lab: kernel, QEMU, accelerator, where runs go.
pub struct Lab {
    /// The kernel modules are built for and booted.
    pub kernel: Kernel,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The accelerator and why.
    pub accel: Decision,
    /// The static binary that becomes the guest's `/init`.
    pub agent_binary: PathBuf,
    /// A static busybox for the guest's shell ([`find_busybox`]).
    pub userland: Option<PathBuf>,
    /// Where run directories are made.
    pub runs_dir: PathBuf,
    kernel_vermagic: Option<String>,
    /// Keeps [`Lab::agent_binary`] from being pruned while this lab lives.
    _agent_lock: Option<std::fs::File>,
    /// Boot every guest cold instead of restoring a saved state.
    pub cold: bool,
    /// Runs end with a kmemleak scan for the module's leaks (the debug lab kernel).
    pub leak_check: bool,
    /// The least time a cold boot is given, whatever the caller asks for: the debug lab
    /// kernel's boot under TCG is slow already, and on a loaded machine several times slower.
    pub min_boot_deadline: Duration,
}

/// How long the debug lab kernel may take to boot: ten times its boot on two quiet cores
/// under TCG (6 s), and room for a machine busy with builds.
const DEBUG_KERNEL_BOOT: Duration = Duration::from_secs(180);

/// The static busybox that gives the guest its shell and everyday commands: `KMODLAB_BUSYBOX`,
/// else Debian's busybox-static (`/bin/busybox`). `None` when there is none, or when it is
/// dynamically linked (Debian's `busybox` package): it could not run in the guest.
pub fn find_busybox() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("KMODLAB_BUSYBOX") {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => vec!["/bin/busybox".into(), "/usr/bin/busybox".into()],
    };
    candidates
        .into_iter()
        .find(|p| elf_head(p).is_ok_and(|head| is_static_elf(&head)))
}

/// The start of a file, enough for an ELF header and its program headers: reading a whole debug
/// build of kmodlab (100 MB) to look at them would be its largest use of memory.
fn elf_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(64 * 1024);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path)?, 64 * 1024),
        &mut head,
    )?;
    Ok(head)
}

/// Where run directories are made: `KMODLAB_RUNS`, else the cache's `runs/`.
pub fn runs_dir() -> PathBuf {
    match std::env::var_os("KMODLAB_RUNS").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => cache_dir().join("runs"),
    }
}

/// Numbers run directories, across all the labs of a process (one per kernel kind).
static RUN_SEQ: AtomicUsize = AtomicUsize::new(0);

/// The Debian kernel ([`kmodlab_kbuild::select`]), with the make variables of its build tree (see
/// [`kmodlab_kernel::tree_make_vars`]: none for Debian's headers, LLVM and Rust ones for a tree
/// built with clang).
fn select_debian(image: Option<PathBuf>, kdir: Option<PathBuf>) -> Result<Kernel, LabError> {
    let mut kernel = kmodlab_kbuild::select(image, kdir).map_err(|e| LabError::Infra(e.0))?;
    (kernel.make_args, kernel.make_env) = kmodlab_kernel::tree_make_vars(&kernel.kdir);
    Ok(kernel)
}

/// The lab kernel flavour of a kernel kind (`None` for Debian's).
pub fn lab_flavour(kind: KernelKind) -> Option<kmodlab_kernel::Flavour> {
    match kind {
        KernelKind::Debian => None,
        KernelKind::Rust => Some(kmodlab_kernel::Flavour::Rust),
        KernelKind::Debug => Some(kmodlab_kernel::Flavour::Debug),
    }
}

/// The kernel for modules of `kind`.
///
/// Debian: `image`/`kdir`, then `KMODLAB_KERNEL`/`KMODLAB_KDIR`, then the newest installed one.
/// A lab kernel (Rust, debug): `image`/`kdir` when `kdir` is a tree of that kind (built with
/// `CONFIG_RUST=y` for Rust, `CONFIG_KASAN=y` for debug; the image defaults to the tree's
/// `arch/x86/boot/bzImage`); otherwise the lab kernel from the cache, built first when it is
/// missing (minutes; `progress` sees the stages).
pub fn select_kernel(
    kind: KernelKind,
    image: Option<PathBuf>,
    kdir: Option<PathBuf>,
    progress: &mut dyn FnMut(&BuildEvent),
) -> Result<Kernel, LabError> {
    let Some(flavour) = lab_flavour(kind) else {
        return select_debian(image, kdir);
    };
    let fits = match flavour {
        kmodlab_kernel::Flavour::Rust => kmodlab_kernel::tree_has_rust,
        kmodlab_kernel::Flavour::Debug => kmodlab_kernel::tree_has_kasan,
    };
    if let Some(tree) = kdir.as_deref().filter(|t| fits(t)) {
        // The tree's own image when no other is named.
        let image =
            image.or_else(|| Some(tree.join("arch/x86/boot/bzImage")).filter(|i| i.is_file()));
        return select_debian(image, kdir);
    }
    let options = kmodlab_kernel::BuildOptions {
        flavour,
        ..Default::default()
    };
    kmodlab_kernel::build(&options, progress)
        .map(|k| k.kernel())
        .map_err(|e| {
            let what = format!("the {}: {}", flavour.title(), e.report());
            if e.exit_code() == i32::from(kmodlab_events::exit::USAGE) {
                LabError::Input(what)
            } else {
                LabError::Infra(what)
            }
        })
}

/// Whether a module directory holds Rust sources (`.rs` files).
pub fn has_rust_sources(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "rs") && e.path().is_file())
    })
}

/// Refuses, before make runs, a Rust module directory for a kernel built without Rust, saying
/// why that kernel has none when kmodlab built it (the debug lab kernel goes without Rust when
/// the toolchain or its options rule Rust out).
pub fn check_rust_support(dir: &Path, kernel: &Kernel) -> Result<(), LabError> {
    if !dir.is_dir() || !has_rust_sources(dir) || kmodlab_kernel::tree_has_rust(&kernel.kdir) {
        return Ok(());
    }
    let why = match kmodlab_kernel::LabKernel::read(&kernel.kdir) {
        Some(k) => match k.without_rust {
            Some(why) => format!(": the {} was built without Rust: {why}", k.flavour.title()),
            None => String::new(),
        },
        None => String::new(),
    };
    Err(LabError::Input(format!(
        "{}: a Rust module needs a kernel built with CONFIG_RUST=y, and {} ({}) has none{why}",
        dir.display(),
        kernel.release,
        kernel.kdir.display()
    )))
}

/// What a module path needs from the guest: the kernel kind and extra kernel arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    /// The spec's `kernel`, else Rust when the directory holds `.rs` files, else Debian.
    pub kernel: KernelKind,
    /// The spec's `kernel_args`; none without a spec.
    pub kernel_args: Vec<String>,
}

/// [`Needs`] of a module directory (its spec read once) or of a `.ko` file (the Debian kernel, no
/// arguments).
pub fn needs_of(path: &Path) -> Result<Needs, LabError> {
    if !path.is_dir() {
        return Ok(Needs {
            kernel: KernelKind::Debian,
            kernel_args: Vec::new(),
        });
    }
    if path.join(kmodlab_spec::SPEC_FILE).is_file() {
        let spec = load_specs(&[path.to_path_buf()])?.remove(0).spec;
        return Ok(Needs {
            kernel: spec.kernel,
            kernel_args: spec.kernel_args,
        });
    }
    Ok(Needs {
        kernel: if has_rust_sources(path) {
            KernelKind::Rust
        } else {
            KernelKind::Debian
        },
        kernel_args: Vec::new(),
    })
}

/// The kernel kind a module path needs (see [`Needs::kernel`]).
pub fn kernel_kind_for(path: &Path) -> Result<KernelKind, LabError> {
    needs_of(path).map(|n| n.kernel)
}

/// The labs of one `kmodlab test` run: one per kernel kind its specs need.
pub struct Labs {
    labs: Vec<(KernelKind, Result<Lab, String>)>,
    /// One lab serves every spec, whatever kernel it asks for ([`Labs::single`]).
    single: bool,
}

impl Labs {
    /// Boot every guest of these labs cold (`--cold`).
    pub fn boot_cold(&mut self) {
        for (_, lab) in &mut self.labs {
            if let Ok(lab) = lab {
                lab.cold = true;
            }
        }
    }

    /// A lab for each kernel kind `specs` need (see [`select_kernel`]); building a lab kernel
    /// first when a spec needs it and it is not in the cache. Fails only when no lab at all
    /// could be made; a kind whose lab failed ends its specs as infrastructure errors.
    pub fn for_specs(
        specs: &[SpecDir],
        image: Option<PathBuf>,
        kdir: Option<PathBuf>,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<Labs, LabError> {
        let mut first_error = None;
        let mut labs = Vec::new();
        for kind in KernelKind::ALL {
            if !specs.iter().any(|s| s.spec.kernel == kind) {
                continue;
            }
            let lab = Lab::for_kind(kind, image.clone(), kdir.clone(), progress).map_err(|e| {
                let text = e.to_string();
                first_error.get_or_insert(e);
                text
            });
            labs.push((kind, lab));
        }
        let labs = Labs {
            labs,
            single: false,
        };
        match first_error {
            Some(e) if labs.ready().is_empty() => Err(e),
            _ => Ok(labs),
        }
    }

    /// One lab for every spec, whatever kernel it asks for.
    pub fn single(lab: Lab) -> Labs {
        Labs {
            labs: vec![(KernelKind::Debian, Ok(lab))],
            single: true,
        }
    }

    /// The lab for `kind`, or why there is none.
    pub fn get(&self, kind: KernelKind) -> Result<&Lab, String> {
        let slot = if self.single {
            self.labs.first()
        } else {
            self.labs.iter().find(|(k, _)| *k == kind)
        };
        match slot {
            Some((_, Ok(lab))) => Ok(lab),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err(format!("no lab for the {} kernel", kind.as_str())),
        }
    }

    /// The labs that could be made, with their kernel kinds.
    pub fn ready(&self) -> Vec<(KernelKind, &Lab)> {
        self.labs
            .iter()
            .filter_map(|(k, l)| Some((*k, l.as_ref().ok()?)))
            .collect()
    }
}

/// The user's cache directory for kmodlab (`$XDG_CACHE_HOME/kmodlab` or `~/.cache/kmodlab`);
/// it lives in `kmodlab-kbuild` so that the kernel builder shares it.
pub use kmodlab_kbuild::cache_dir;

/// Finds QEMU on PATH (or `KMODLAB_QEMU`).
pub fn find_qemu() -> Result<PathBuf, LabError> {
    if let Some(q) = std::env::var_os("KMODLAB_QEMU").filter(|q| !q.is_empty()) {
        let q = PathBuf::from(q);
        if !q.is_file() {
            return Err(LabError::Infra(format!(
                "KMODLAB_QEMU={}: no such file; install qemu-system-x86 (scripts/setup)",
                q.display()
            )));
        }
        return Ok(q);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::Infra(
                "qemu-system-x86_64 not found; install qemu-system-x86 (scripts/setup)".into(),
            )
        })
}

/// A copy of the kmodlab binary without symbols and debug info, for the guest's `/init`: the kernel
/// unpacks the initramfs on every boot, and under TCG its size costs boot time (a debug build is
/// about ten times larger than the stripped one). Made once per binary with `objcopy`, kept in
/// the cache; the binary itself when that fails.
///
/// The copy comes with an open handle holding a shared lock on it: keep it for as long as guests
/// are made from the copy, so that no other kmodlab prunes it meanwhile. Each use marks the copy
/// as recently used.
pub fn stripped_agent(exe: &Path, cache: &Path) -> (PathBuf, Option<std::fs::File>) {
    use std::hash::{Hash, Hasher};
    let Ok(meta) = std::fs::metadata(exe) else {
        return (exe.to_path_buf(), None);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    exe.hash(&mut h);
    meta.len().hash(&mut h);
    meta.modified().ok().hash(&mut h);
    let dir = cache.join("agent");
    let out = dir.join(format!("init-{:016x}", h.finish()));
    if let Some(held) = hold(&out) {
        return (out, Some(held));
    }
    let _ = std::fs::create_dir_all(&dir);
    let tmp = dir.join(format!(".init-{}", std::process::id()));
    let ok = std::process::Command::new("objcopy")
        .arg("--strip-all")
        .arg(exe)
        .arg(&tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok && std::fs::rename(&tmp, &out).is_ok() {
        if let Some(held) = hold(&out) {
            prune(&dir, 4);
            return (out, Some(held));
        }
    }
    let _ = std::fs::remove_file(&tmp);
    (exe.to_path_buf(), None)
}

/// Opens `file` with a shared lock (see [`prune`]) and marks it used now.
fn hold(file: &Path) -> Option<std::fs::File> {
    let f = std::fs::File::options().write(true).open(file).ok()?;
    f.lock_shared().ok()?;
    let _ = f.set_modified(std::time::SystemTime::now());
    Some(f)
}

/// Keeps the `keep` most recently modified entries of `dir` and removes the rest, except files
/// another process holds a lock on (it is using them).
pub fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut all: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, p) in all.into_iter().skip(keep) {
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            let in_use = std::fs::File::open(&p)
                .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
            if in_use {
                continue;
            }
            std::fs::remove_file(&p)
        };
    }
}

/// How many run directories the default runs directory keeps.
pub const RUNS_KEPT: usize = 200;

/// Whether an ELF executable is statically linked (has no PT_INTERP program header).
pub fn is_static_elf(bytes: &[u8]) -> bool {
    let rd16 = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let rd32 = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let rd64 = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
    };
    if bytes.get(..4) != Some(b"\x7fELF") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (rd64(0x20), rd16(0x36), rd16(0x38)) else {
        return false;
    };
    (0..phnum).all(|i| rd32(phoff + i * phentsize) != Some(3))
}

impl Lab {
    /// Selects the kernel (see [`kmodlab_kbuild::select`]), finds QEMU and picks the accelerator.
    /// A build tree made with clang (a Rust kernel given with `kdir`) gets the make variables its
    /// modules need.
    pub fn new(image: Option<PathBuf>, kdir: Option<PathBuf>) -> Result<Lab, LabError> {
        Lab::with_kernel(select_debian(image, kdir)?)
    }

    /// A lab for modules of `kind`: the Debian kernel as [`Lab::new`] selects it, or a lab
    /// kernel (see [`select_kernel`]), built first when it is not in the cache; `progress` sees
    /// that build.
    pub fn for_kind(
        kind: KernelKind,
        image: Option<PathBuf>,
        kdir: Option<PathBuf>,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<Lab, LabError> {
        Lab::with_kernel(select_kernel(kind, image, kdir, progress)?)
    }

    /// A lab on `kernel`: finds QEMU and picks the accelerator.
    pub fn with_kernel(kernel: Kernel) -> Result<Lab, LabError> {
        let qemu = find_qemu()?;
        let agent_binary = std::env::current_exe()
            .map_err(|e| LabError::Infra(format!("cannot find the kmodlab binary: {e}")))?;
        let head = elf_head(&agent_binary)
            .map_err(|e| LabError::Infra(format!("{}: {e}", agent_binary.display())))?;
        if !is_static_elf(&head) {
            return Err(LabError::Infra(format!(
                "{} is not statically linked, so it cannot be the guest's /init; build it with \
                 the repository's .cargo/config.toml",
                agent_binary.display()
            )));
        }
        let cache = cache_dir();
        let (agent_binary, agent_lock) = stripped_agent(&agent_binary, &cache);
        let accel = kmodlab_vm::accel::choose(&qemu, &kernel.image, &cache);
        let runs_dir = runs_dir();
        if std::env::var_os("KMODLAB_RUNS").is_none_or(|d| d.is_empty()) {
            prune(&runs_dir, RUNS_KEPT);
        }
        let kernel_vermagic = kmodlab_kbuild::kernel_vermagic(&kernel);
        let marker = kmodlab_kernel::LabKernel::read(&kernel.kdir);
        let leak_check = marker.as_ref().is_some_and(|k| k.leak_check());
        let debug = marker
            .as_ref()
            .is_some_and(|k| k.flavour == kmodlab_kernel::Flavour::Debug);
        Ok(Lab {
            leak_check,
            min_boot_deadline: if debug {
                DEBUG_KERNEL_BOOT
            } else {
                Duration::ZERO
            },
            kernel,
            qemu,
            accel,
            agent_binary,
            userland: find_busybox(),
            runs_dir,
            kernel_vermagic,
            _agent_lock: agent_lock,
            cold: std::env::var_os("KMODLAB_COLD").is_some_and(|v| !v.is_empty() && v != "0"),
        })
    }

    /// Where saved VM states live (`KMODLAB_WARM_DIR`, default the cache's `warm/`), or `None`
    /// when every run boots cold (`--cold`, `KMODLAB_COLD=1`).
    pub fn warm_dir(&self) -> Option<PathBuf> {
        if self.cold {
            return None;
        }
        Some(
            match std::env::var_os("KMODLAB_WARM_DIR").filter(|d| !d.is_empty()) {
                Some(d) => PathBuf::from(d),
                None => kmodlab_kbuild::cache_dir().join("warm"),
            },
        )
    }

    /// Builds a module directory, or reads a .ko; checks that it fits the kernel.
    /// `want` names the module when a directory builds several.
    pub fn prepare(
        &self,
        path: &Path,
        want: Option<&str>,
        build_log: &mut dyn Write,
    ) -> Result<Module, LabError> {
        let ko = if path.is_dir() {
            check_rust_support(path, &self.kernel)?;
            let kos =
                kmodlab_kbuild::build(path, &self.kernel, build_log).map_err(|e| match e {
                    kmodlab_kbuild::BuildError::Make(s) => LabError::Infra(s),
                    kmodlab_kbuild::BuildError::NotModuleDir(s) => LabError::Input(s),
                    other => LabError::Build(format!("{}: {other}", path.display())),
                })?;
            pick(&kos, want, path)?
        } else if path.exists() {
            path.to_path_buf()
        } else {
            return Err(LabError::Input(format!(
                "{}: no such file or directory",
                path.display()
            )));
        };
        let raw =
            std::fs::read(&ko).map_err(|e| LabError::Input(format!("{}: {e}", ko.display())))?;
        let info = kmodlab_modfile::parse_module_file(&raw).map_err(|e| {
            LabError::Input(format!(
                "{}: not a loadable kernel module: {e}",
                ko.display()
            ))
        })?;
        let vermagic = info.modinfo.vermagic().unwrap_or("").to_string();
        kmodlab_kbuild::check_vermagic(&vermagic, &self.kernel, self.kernel_vermagic.as_deref())
            .map_err(|e| LabError::Input(format!("{}: {e}", ko.display())))?;
        let image = kmodlab_modfile::decompress(&raw)
            .map_err(|e| LabError::Input(format!("{}: {e}", ko.display())))?
            .into_owned();
        Ok(Module {
            name: info.name.clone(),
            ko,
            image,
        })
    }

    /// A new run directory for `what`.
    pub fn new_run_dir(&self, what: &str) -> PathBuf {
        let n = RUN_SEQ.fetch_add(1, Ordering::Relaxed);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let safe: String = what
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.runs_dir
            .join(format!("{secs}-{}-{n}-{safe}", std::process::id()))
    }

    /// Runs one load/unload cycle of `module` in a new VM.
    pub fn run(
        &self,
        module: &Module,
        options: &RunOptions,
        sink: &mut dyn FnMut(&Event),
    ) -> Result<RunResult, InfraError> {
        self.run_with_kernel_args(module, options, &[], sink)
    }

    /// [`Lab::run`] with `kernel_args` appended to the guest kernel's command line (a spec's
    /// `kernel_args`).
    pub fn run_with_kernel_args(
        &self,
        module: &Module,
        options: &RunOptions,
        kernel_args: &[String],
        sink: &mut dyn FnMut(&Event),
    ) -> Result<RunResult, InfraError> {
        let mut plan = self.plan(&module.name, options, kernel_args);
        plan.module_name = module.name.clone();
        plan.module_image = module.image.clone();
        plan.leak_check = self.leak_check && needs_leak_check(module);
        let mut result = kmodlab_vm::run(&plan, sink)?;
        self.after_run(module, &mut result, sink);
        Ok(result)
    }

    /// Builds the module directory `path` (as [`Lab::prepare`]) while the guest starts, then
    /// runs one cycle of it: the restore of a saved state (or a cold boot) overlaps the
    /// compiler. A build that fails stops the guest and is the answer (`Ok(Err(..))`).
    pub fn build_and_run(
        &self,
        path: &Path,
        want: Option<&str>,
        options: &RunOptions,
        kernel_args: &[String],
        build_log: &mut (dyn Write + Send),
        sink: &mut dyn FnMut(&Event),
    ) -> Result<Result<RunResult, LabError>, InfraError> {
        let label = want.map(str::to_string).unwrap_or_else(|| {
            std::fs::canonicalize(path)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "module".into())
        });
        let mut plan = self.plan(&label, options, kernel_args);
        plan.warm_up = self.warm_up_module();
        let built: std::sync::Mutex<Option<Module>> = std::sync::Mutex::new(None);
        let outcome = kmodlab_vm::session::run_while_building(
            &plan,
            || {
                let module = self.prepare(path, want, build_log)?;
                let b = kmodlab_vm::session::BuiltModule {
                    name: module.name.clone(),
                    image: module.image.clone(),
                    leak_check: self.leak_check && needs_leak_check(&module),
                };
                *built.lock().unwrap_or_else(|p| p.into_inner()) = Some(module);
                Ok(b)
            },
            sink,
        )?;
        let mut result = match outcome {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let module = built
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .expect("a run follows a build");
        self.after_run(&module, &mut result, sink);
        Ok(Ok(result))
    }

    /// A run of `options` on this lab, its module still to be named (`label` names the run
    /// directory).
    fn plan(&self, label: &str, options: &RunOptions, kernel_args: &[String]) -> RunPlan {
        RunPlan {
            qemu: self.qemu.clone(),
            kernel: self.boot_kernel(),
            accel: self.accel.accel,
            agent_binary: self.agent_binary.clone(),
            userland: self.userland.clone(),
            module_name: String::new(),
            module_image: Vec::new(),
            params: options.params.clone(),
            read_paths: options.read_paths.clone(),
            before: options.before.clone(),
            loaded_commands: options.loaded_commands.clone(),
            skip_unload: options.skip_unload,
            observe_load: options.observe_load,
            observe_unload: options.observe_unload,
            deadlines: Deadlines {
                boot: options.deadlines.boot.max(self.min_boot_deadline),
                ..options.deadlines
            },
            run_dir: self.new_run_dir(label),
            warm_dir: self.warm_dir(),
            memory_mb: GUEST_MEMORY_MB,
            kernel_args: kernel_args.to_vec(),
            leak_check: false,
            warm_up: None,
        }
    }

    /// A module of the kernel's own tree for [`kmodlab_vm::session::RunPlan::warm_up`]: one of a
    /// few small library modules with no dependencies, signed and in-tree, so that loading it
    /// neither taints the kernel nor prints anything. `None` when the kernel has no such module
    /// (the lab kernels build none).
    fn warm_up_module(&self) -> Option<kmodlab_vm::initramfs::GuestModule> {
        let dir = self.kernel.modules_dir.as_ref()?;
        WARM_UP_MODULES.iter().find_map(|rel| {
            ["", ".xz", ".zst", ".gz"].iter().find_map(|ext| {
                let raw = std::fs::read(dir.join(format!("{rel}{ext}"))).ok()?;
                let image = kmodlab_modfile::decompress(&raw).ok()?.into_owned();
                let info = kmodlab_modfile::parse_module(&image).ok()?;
                let quiet = info.modinfo.get("intree") == Some("Y")
                    && info.modinfo.get("depends").unwrap_or("").is_empty()
                    && matches!(kmodlab_modfile::parse_signature(&image), Ok(Some(_)));
                quiet.then(|| kmodlab_vm::initramfs::GuestModule {
                    file_name: format!("{}.ko", info.name),
                    image,
                })
            })
        })
    }

    /// What follows a run: the note that no leak check was needed, the crash reports
    /// symbolized against the module.
    fn after_run(&self, module: &Module, result: &mut RunResult, sink: &mut dyn FnMut(&Event)) {
        if self.leak_check
            && !needs_leak_check(module)
            && result.unload.as_ref().is_some_and(|u| u.ok)
        {
            sink(&Event::Note(
                "no leak check needed: the module imports no function that can allocate memory"
                    .into(),
            ));
        }
        if !result.reports.is_empty() {
            analyze_run(module, result);
        }
    }
}

/// Whether a module could leak: it imports a function that may allocate (see [`leaks`]).
fn needs_leak_check(module: &Module) -> bool {
    let undefined = kmodlab_modfile::parse_module_file(&module.image)
        .map(|i| i.undefined_symbols)
        .unwrap_or_else(|_| vec!["(unreadable)".into()]);
    leaks::allocating_symbol(&undefined).is_some()
}

/// Symbolizes a run's crash reports against the module that ran (its .ko and its sources, next
/// to it), and rewrites the run directory's `result.json` with them.
fn analyze_run(module: &Module, result: &mut RunResult) {
    let options = AnalyzeOptions {
        module_files: vec![module.ko.clone()],
        ..AnalyzeOptions::default()
    };
    let dirs: Vec<PathBuf> = module
        .ko
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    match symbolizer(&options) {
        Ok(s) => enrich(&mut result.reports, &s, &dirs),
        Err(e) => {
            for r in &mut result.reports {
                r.notes.push(format!("no symbolization: {e}"));
            }
        }
    }
    if let Ok(json) = serde_json::to_string_pretty(&result) {
        let _ = std::fs::write(result.run_dir.join("result.json"), json + "\n");
    }
}

impl Lab {
    /// The files that put `names` (and what they depend on) from the kernel's module tree into the
    /// guest at their usual paths, with the tree's index files (`modules.dep`, `.bin`, ...), so that
    /// `modprobe` in the guest finds them.
    pub fn kernel_module_files(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, LabError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.kernel.modules_dir.as_ref().ok_or_else(|| {
            LabError::Infra(format!(
                "kernel {} has no module tree (no modules.dep)",
                self.kernel.release
            ))
        })?;
        let dep_path = dir.join("modules.dep");
        let dep = std::fs::read_to_string(&dep_path)
            .map_err(|e| LabError::Infra(format!("{}: {e}", dep_path.display())))?;
        let guest_dir = format!("/lib/modules/{}", self.kernel.release);
        let mut rels: Vec<String> = Vec::new();
        for name in names {
            let order = kmodlab_vm::initramfs::load_order(&dep, name).ok_or_else(|| {
                LabError::Input(format!("module {name} not found in {}", dep_path.display()))
            })?;
            for rel in order {
                if !rels.contains(&rel) {
                    rels.push(rel);
                }
            }
        }
        let mut files = Vec::new();
        let read = |p: PathBuf| {
            std::fs::read(&p).map_err(|e| LabError::Infra(format!("{}: {e}", p.display())))
        };
        for rel in rels {
            files.push((format!("{guest_dir}/{rel}"), read(dir.join(&rel))?));
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| LabError::Infra(format!("{}: {e}", dir.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") && e.path().is_file() {
                files.push((format!("{guest_dir}/{name}"), read(e.path())?));
            }
        }
        Ok(files)
    }

    /// Boots a VM with `kernel_modules` from the kernel's tree and runs `commands` in it.
    pub fn exec(
        &self,
        commands: &[Vec<String>],
        kernel_modules: &[String],
        host_files: &[PathBuf],
        stop_on: Option<&str>,
        deadlines: Deadlines,
        sink: &mut dyn FnMut(&Event),
    ) -> Result<kmodlab_vm::script::ScriptResult, LabError> {
        let mut files = self.kernel_module_files(kernel_modules)?;
        for f in host_files {
            let name = f
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| LabError::Input(format!("{}: not a file name", f.display())))?;
            let data =
                std::fs::read(f).map_err(|e| LabError::Input(format!("{}: {e}", f.display())))?;
            files.push((format!("{GUEST_FILES_DIR}/{name}"), data));
        }
        let mut spec = self.boot_spec(self.new_run_dir("exec"), deadlines.boot);
        spec.files = files;
        kmodlab_vm::script::run_script(
            &spec,
            commands,
            stop_on,
            deadlines.step,
            deadlines.shutdown,
            sink,
        )
        .map_err(|e| LabError::Infra(e.to_string()))
    }

    /// A guest of this lab, with nothing of a module in it yet: its files and modules are the
    /// caller's to add.
    pub fn boot_spec(&self, run_dir: PathBuf, boot_deadline: Duration) -> kmodlab_vm::BootSpec {
        kmodlab_vm::BootSpec {
            qemu: self.qemu.clone(),
            kernel: self.boot_kernel(),
            accel: self.accel.accel,
            agent_binary: self.agent_binary.clone(),
            userland: self.userland.clone(),
            memory_mb: GUEST_MEMORY_MB,
            run_dir,
            boot_deadline: boot_deadline.max(self.min_boot_deadline),
            modules: Vec::new(),
            files: Vec::new(),
            kernel_args: Vec::new(),
            warm_dir: self.warm_dir(),
            gdb_stub: false,
        }
    }

    fn boot_kernel(&self) -> BootKernel {
        BootKernel {
            release: self.kernel.release.clone(),
            image: self.kernel.image.clone(),
            modules_dir: self.kernel.modules_dir.clone(),
        }
    }
}

/// Candidates for [`Lab::warm_up_module`], relative to the kernel's module tree (without the
/// compression's extension): small library modules with no init work worth the name.
const WARM_UP_MODULES: &[&str] = &[
    "kernel/lib/crc-itu-t.ko",
    "kernel/lib/crc8.ko",
    "kernel/lib/crc7.ko",
    "kernel/lib/crc16.ko",
];

/// The guest's memory in MiB: one size for every run, so that they share saved states.
const GUEST_MEMORY_MB: u32 = 512;

/// Where `kmodlab exec --file` puts files in the guest.
pub const GUEST_FILES_DIR: &str = "/files";

/// How to run a module.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Parameters, `name=value` each.
    pub params: Vec<String>,
    /// Paths to read while loaded.
    pub read_paths: Vec<String>,
    /// Shell command lines to run in the guest (`sh -c`) before the load, in order.
    pub before: Vec<String>,
    /// Shell command lines to run in the guest (`sh -c`) while loaded, after the reads.
    pub loaded_commands: Vec<String>,
    /// Leave it loaded.
    pub skip_unload: bool,
    /// What to record around the load for a spec's comparisons (processes, memory areas).
    pub observe_load: kmodlab_proto::Observe,
    /// The same around the unload.
    pub observe_unload: kmodlab_proto::Observe,
    /// Deadlines.
    pub deadlines: Deadlines,
}

fn pick(kos: &[PathBuf], want: Option<&str>, dir: &Path) -> Result<PathBuf, LabError> {
    let stem = |p: &PathBuf| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .replace('-', "_")
    };
    match want {
        Some(w) => kos
            .iter()
            .find(|k| stem(k) == w.replace('-', "_"))
            .cloned()
            .ok_or_else(|| {
                LabError::Input(format!(
                    "{}: builds no module named {w} (it builds: {})",
                    dir.display(),
                    kos.iter().map(stem).collect::<Vec<_>>().join(", ")
                ))
            }),
        None if kos.len() == 1 => Ok(kos[0].clone()),
        None => Err(LabError::Input(format!(
            "{}: builds several modules ({}); name one in the spec's `module` key",
            dir.display(),
            kos.iter().map(stem).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Every directory under `paths` (recursively, paths included) that holds a spec file, sorted.
pub fn find_specs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LabError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if dir.join(kmodlab_spec::SPEC_FILE).is_file() {
            out.push(dir.to_path_buf());
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        subdirs.sort();
        for d in subdirs {
            walk(&d, out);
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() && p.file_name().and_then(|n| n.to_str()) == Some(kmodlab_spec::SPEC_FILE) {
            // `kmodlab.toml` alone names the current directory.
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            out.push(dir.unwrap_or(Path::new(".")).to_path_buf());
        } else if p.is_dir() {
            walk(p, &mut out);
        } else {
            return Err(LabError::Input(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    out.dedup();
    Ok(out)
}

/// A parsed spec with its directory.
pub struct SpecDir {
    /// The module directory.
    pub dir: PathBuf,
    /// The label in reports (the directory as given).
    pub label: String,
    /// The spec.
    pub spec: Spec,
}

/// Parses the spec of every directory; the first broken spec is an input error naming FILE:LINE.
pub fn load_specs(dirs: &[PathBuf]) -> Result<Vec<SpecDir>, LabError> {
    dirs.iter()
        .map(|dir| {
            let file = dir.join(kmodlab_spec::SPEC_FILE);
            let label = dir.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| LabError::Input(format!("{}: {e}", file.display())))?;
            let spec = kmodlab_spec::parse(&file.display().to_string(), &text)
                .map_err(|e| LabError::Input(e.to_string()))?;
            Ok(SpecDir {
                dir: dir.clone(),
                label,
                spec,
            })
        })
        .collect()
}

/// Runs every case of every spec, `jobs` VMs at a time, each on the lab of the kernel its spec
/// asks for; `on_done` sees each outcome as it ends. Modules are built first, one directory after
/// another.
pub fn run_specs(
    labs: &Labs,
    specs: &[SpecDir],
    jobs: usize,
    build_log: &mut dyn Write,
    on_done: &(dyn Fn(&CaseOutcome) + Sync),
) -> Vec<CaseOutcome> {
    struct Job<'a> {
        spec: &'a SpecDir,
        case: usize,
        lab: Option<&'a Lab>,
        module: Result<Module, LabError>,
    }
    let mut queue = Vec::new();
    for s in specs {
        let lab = labs.get(s.spec.kernel);
        let module = match &lab {
            Err(e) => Err(LabError::Infra(e.clone())),
            Ok(lab) => lab.prepare(&s.dir, s.spec.module.as_deref(), build_log),
        };
        for case in 0..s.spec.cases.len() {
            queue.push(Job {
                spec: s,
                case,
                lab: lab.as_ref().ok().copied(),
                module: module.clone(),
            });
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, CaseOutcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(queue.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = queue.get(i) else { break };
                let outcome = run_case(job.lab, job.spec, job.case, &job.module);
                on_done(&outcome);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, o)| o).collect()
}

fn run_case(
    lab: Option<&Lab>,
    spec: &SpecDir,
    index: usize,
    module: &Result<Module, LabError>,
) -> CaseOutcome {
    let case = &spec.spec.cases[index];
    let started = std::time::Instant::now();
    let mut outcome = CaseOutcome {
        spec: spec.label.clone(),
        case: case.name.clone(),
        result: None,
        failures: Vec::new(),
        infra_error: false,
        input_error: false,
        duration_s: 0.0,
        console_tail: Vec::new(),
    };
    let (lab, module) = match (lab, module) {
        (Some(lab), Ok(m)) => (lab, m),
        (_, Err(e)) => {
            // A module that does not compile is the case failing (exit 1), one that cannot be
            // used as given an input error (exit 2), anything else the infrastructure's (exit 3).
            outcome.failures.push(e.to_string());
            match e {
                LabError::Build(_) => {}
                LabError::Input(_) => outcome.input_error = true,
                LabError::Infra(_) => outcome.infra_error = true,
            }
            return outcome;
        }
        (None, Ok(_)) => {
            outcome.failures.push("no kernel for this spec".into());
            outcome.infra_error = true;
            return outcome;
        }
    };
    let mut deadlines = Deadlines::default();
    if let Some(t) = case.timeout.or(spec.spec.timeout) {
        deadlines.step = Duration::from_secs_f64(t.max(0.1));
    }
    let options = RunOptions {
        params: case.params.clone(),
        read_paths: case.paths_to_read(),
        before: case.before.clone(),
        loaded_commands: case.loaded.run.clone(),
        skip_unload: case.unload.skip,
        observe_load: observe(&case.load),
        observe_unload: observe(&case.unload.expect),
        deadlines,
    };
    match lab.run_with_kernel_args(module, &options, &spec.spec.kernel_args, &mut |_| {}) {
        Ok(result) => {
            outcome.failures = case.evaluate(&result);
            if !outcome.failures.is_empty() {
                outcome.console_tail = console_tail(&result.run_dir, 30);
            }
            outcome.result = Some(result);
        }
        Err(e) => {
            outcome.failures.push(e.to_string());
            outcome.infra_error = true;
            outcome.console_tail = e.console_tail;
        }
    }
    outcome.duration_s = started.elapsed().as_secs_f64();
    outcome
}

/// What the agent must record around a load or unload for a phase's expectations.
fn observe(expect: &kmodlab_spec::PhaseExpect) -> kmodlab_proto::Observe {
    kmodlab_proto::Observe {
        tasks: expect.processes.is_some(),
        maps: expect.vmas.is_some(),
    }
}

/// The last `n` lines of a run's console log.
pub fn console_tail(run_dir: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(run_dir.join("console.log")).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<String> = text.lines().map(String::from).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod kernel_kind_tests {
    use super::*;

    #[test]
    fn the_kernel_kind_comes_from_the_spec_else_from_rust_sources() {
        let d = std::env::temp_dir().join(format!("kmodlab-lab-kind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let kind = |p: &Path| kernel_kind_for(p).unwrap();
        assert_eq!(kind(&d), KernelKind::Debian);
        std::fs::write(d.join("hello.c"), "").unwrap();
        assert_eq!(kind(&d), KernelKind::Debian);
        std::fs::write(d.join("hello.rs"), "").unwrap();
        assert_eq!(kind(&d), KernelKind::Rust);
        std::fs::write(d.join(kmodlab_spec::SPEC_FILE), "kernel = \"debian\"\n").unwrap();
        assert_eq!(kind(&d), KernelKind::Debian, "the spec wins");
        std::fs::write(d.join(kmodlab_spec::SPEC_FILE), "kernel = \"rust\"\n").unwrap();
        assert_eq!(kind(&d), KernelKind::Rust);
        assert_eq!(kind(&d.join("hello.rs")), KernelKind::Debian, "a file");
        std::fs::write(d.join(kmodlab_spec::SPEC_FILE), "kernel = \"debug\"\n").unwrap();
        assert_eq!(kind(&d), KernelKind::Debug);
        std::fs::write(d.join(kmodlab_spec::SPEC_FILE), "kernel = \"plan9\"\n").unwrap();
        assert!(matches!(kernel_kind_for(&d), Err(LabError::Input(_))));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn each_lab_kind_has_its_flavour() {
        assert_eq!(lab_flavour(KernelKind::Debian), None);
        assert_eq!(
            lab_flavour(KernelKind::Rust),
            Some(kmodlab_kernel::Flavour::Rust)
        );
        assert_eq!(
            lab_flavour(KernelKind::Debug),
            Some(kmodlab_kernel::Flavour::Debug)
        );
    }

    #[test]
    fn a_rust_module_for_a_kernel_without_rust_is_refused_saying_why() {
        let d = std::env::temp_dir().join(format!("kmodlab-lab-norust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let (module, tree) = (d.join("m"), d.join("tree"));
        std::fs::create_dir_all(&module).unwrap();
        std::fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        std::fs::write(tree.join("arch/x86/boot/bzImage"), "").unwrap();
        std::fs::write(tree.join(".config"), "CONFIG_KASAN=y\n").unwrap();
        let kernel = Kernel {
            release: "7.3.4".into(),
            image: tree.join("arch/x86/boot/bzImage"),
            kdir: tree.clone(),
            modules_dir: None,
            make_args: Vec::new(),
            make_env: Vec::new(),
        };
        std::fs::write(module.join("m.c"), "").unwrap();
        assert!(
            check_rust_support(&module, &kernel).is_ok(),
            "C builds anywhere"
        );
        std::fs::write(module.join("m.rs"), "").unwrap();
        let e = check_rust_support(&module, &kernel).unwrap_err();
        assert!(matches!(e, LabError::Input(_)), "{e}");
        assert!(
            e.to_string().ends_with(&format!(
                "needs a kernel built with CONFIG_RUST=y, and 7.3.4 ({}) has none",
                tree.display()
            )),
            "{e}"
        );
        kmodlab_kernel::LabKernel {
            flavour: kmodlab_kernel::Flavour::Debug,
            without_rust: Some("make rustavailable: no rustc".into()),
            release: "7.3.4".into(),
            image: kernel.image.clone(),
            tree: tree.clone(),
            make_args: Vec::new(),
            make_env: Default::default(),
            source: "linux-source-7.3.tar.xz".into(),
            key: "k".into(),
            source_edits: Vec::new(),
            build_seconds: 0.0,
            objects: 0,
            disk_bytes: 0,
        }
        .write()
        .unwrap();
        let e = check_rust_support(&module, &kernel).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "has none: the debug lab kernel was built without Rust: make rustavailable: \
                 no rustc"
            ),
            "{e}"
        );
        std::fs::write(tree.join(".config"), "CONFIG_KASAN=y\nCONFIG_RUST=y\n").unwrap();
        assert!(check_rust_support(&module, &kernel).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Regression: the stripped agent was pruned by creation time, never refreshed on a cache
    /// hit, and removed under a kmodlab still making guests from it.
    #[test]
    fn an_agent_copy_in_use_is_never_pruned() {
        let d = std::env::temp_dir().join(format!("kmodlab-lab-agent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let agents = d.join("agent");
        std::fs::create_dir_all(&agents).unwrap();
        let exe = std::env::current_exe().unwrap();
        let (copy, held) = stripped_agent(&exe, &d);
        assert!(copy.starts_with(&agents), "{}", copy.display());
        assert!(held.is_some());
        // Make it the oldest of many, as if other builds had come since.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(old)
            .unwrap();
        for i in 0..6 {
            std::fs::write(agents.join(format!("init-other{i}")), b"x").unwrap();
        }
        prune(&agents, 4);
        assert!(copy.exists(), "held by this process: kept");
        assert_eq!(std::fs::read_dir(&agents).unwrap().count(), 5);
        drop(held);
        // A cache hit marks it used: the newest again.
        let (again, held) = stripped_agent(&exe, &d);
        assert_eq!(again, copy);
        let mtime = std::fs::metadata(&copy).unwrap().modified().unwrap();
        assert!(mtime > old, "refreshed on a cache hit");
        drop(held);
        prune(&agents, 1);
        assert!(copy.exists(), "the most recently used is kept");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
