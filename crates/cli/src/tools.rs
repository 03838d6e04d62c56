//! The commands that boot nothing: build, kernel, oops, new.

use crate::{exit, fail, print, written, KernelChoice};
use kmodlab_lab::LabError;
use kmodlab_report::TerminalSafe;
use std::io::Write;
use std::path::PathBuf;

/// Builds a module directory with Kbuild; prints the `.ko` files.
pub fn build(dir: PathBuf, k: KernelChoice) -> u8 {
    let lab_kernel = match kmodlab_lab::kernel_kind_for(&dir).and_then(|kind| {
        let mut progress = kmodlab_kernel::StderrProgress::new();
        kmodlab_lab::select_kernel(k.kind(kind), k.kernel, k.kdir, &mut |e| progress.event(e))
    }) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    eprintln!(
        "kmodlab: building {} for {}",
        dir.display(),
        lab_kernel.release
    );
    if let Err(e) = kmodlab_lab::check_rust_support(&dir, &lab_kernel) {
        return fail(&e);
    }
    match kmodlab_kbuild::build(&dir, &lab_kernel, &mut std::io::stderr()) {
        Ok(kos) => {
            let mut out = std::io::stdout().lock();
            let result = kos
                .iter()
                .try_for_each(|ko| writeln!(out, "{}", ko.display()));
            written(result, "the module list", exit::OK)
        }
        Err(kmodlab_kbuild::BuildError::Make(s)) => fail(&LabError::Infra(s)),
        Err(kmodlab_kbuild::BuildError::NotModuleDir(s)) => fail(&LabError::Input(s)),
        Err(e) => fail(&LabError::Build(format!("{}: {e}", dir.display()))),
    }
}

/// Builds a lab kernel (or finds it in the cache); prints its image and tree, or its record with
/// `json`.
pub fn kernel_build(
    flavour: kmodlab_kernel::Flavour,
    source: Option<PathBuf>,
    jobs: Option<usize>,
    json: bool,
) -> u8 {
    if jobs == Some(0) {
        eprintln!("kmodlab: -j 0: at least one job is needed");
        return exit::USAGE;
    }
    let options = kmodlab_kernel::BuildOptions {
        flavour,
        source,
        jobs,
        ..Default::default()
    };
    let mut progress = kmodlab_kernel::StderrProgress::new();
    let mut built_now = false;
    match kmodlab_kernel::build(&options, &mut |e| {
        built_now = true;
        progress.event(e)
    }) {
        Ok(k) => {
            let rust = match &k.without_rust {
                Some(why) => format!("; without Rust: {why}"),
                None => String::new(),
            };
            eprintln!(
                "kmodlab: kernel: {} {} from {} ({} in {:.0}s{rust})",
                k.flavour.title(),
                k.release,
                k.source,
                if built_now { "built" } else { "cached, built" },
                k.build_seconds
            );
            let mut out = std::io::stdout().lock();
            let result = if json {
                write!(out, "{}", k.to_json())
            } else {
                writeln!(out, "{}\n{}", k.image.display(), k.tree.display())
            };
            written(result, "the kernel's paths", exit::OK)
        }
        Err(e) => {
            for line in e.message.lines() {
                eprintln!("kmodlab: {line}");
            }
            for line in &e.log_tail {
                eprintln!("  | {line}");
            }
            if let Some(log) = &e.log {
                eprintln!("kmodlab: the full log: {}", log.display());
            }
            e.exit_code() as u8
        }
    }
}

/// Lists Debian's kernels and the lab kernels in the cache.
pub fn kernel_list(json: bool) -> u8 {
    let kernels = kmodlab_kernel::list(std::path::Path::new("/"), &kmodlab_lab::cache_dir());
    let table = |w: &mut dyn Write| kmodlab_kernel::write_table(w, &kernels);
    print(json, &kernels, table, "the kernel list", exit::OK)
}

/// `kmodlab oops`.
#[derive(Clone, Debug)]
pub struct OopsArgs {
    /// Print the JSON contract instead of text.
    pub json: bool,
    /// Directories with the modules' .ko files.
    pub module_dirs: Vec<PathBuf>,
    /// A vmlinux with debug info.
    pub vmlinux: Option<PathBuf>,
    /// The log (`None` or `-`: standard input).
    pub log: Option<PathBuf>,
}

/// Every crash report in a log, symbolized.
pub fn oops(a: OopsArgs) -> u8 {
    let (name, bytes) = match a.log.filter(|p| p.as_os_str() != "-") {
        Some(p) => match std::fs::read(&p) {
            Ok(b) => (p.display().to_string(), b),
            Err(e) => return fail(&LabError::Input(format!("{}: {e}", p.display()))),
        },
        None => {
            let mut b = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut b) {
                return fail(&LabError::Input(format!("standard input: {e}")));
            }
            ("standard input".to_string(), b)
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let options = kmodlab_lab::AnalyzeOptions {
        module_dirs: a.module_dirs,
        module_files: Vec::new(),
        vmlinux: a.vmlinux,
    };
    let reports = match kmodlab_lab::analyze_log(&text, &options) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let code = if reports.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    };
    let human = |w: &mut dyn Write| {
        kmodlab_report::write_crash_reports(&mut TerminalSafe::new(w), &reports)
    };
    let doc = serde_json::json!({ "reports": &reports });
    print(a.json, &doc, human, &format!("the reports of {name}"), code)
}

/// Makes a new module directory that builds and passes its own test.
pub fn new(rust: bool, dir: PathBuf) -> u8 {
    let language = if rust {
        kmodlab_scaffold::Language::Rust
    } else {
        kmodlab_scaffold::Language::C
    };
    match kmodlab_scaffold::create(&dir, language) {
        Ok(files) => {
            let mut out = std::io::stdout().lock();
            let result = files
                .iter()
                .try_for_each(|f| writeln!(out, "{}", f.display()));
            eprintln!(
                "kmodlab: made {}; next: kmodlab test {}",
                dir.display(),
                dir.display()
            );
            written(result, "the files made", exit::OK)
        }
        Err(e) => fail(&LabError::Input(e.to_string())),
    }
}
