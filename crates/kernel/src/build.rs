//! Building a lab kernel into the cache: extract (or use the user's tree out of tree),
//! configure (tinyconfig + the flavour's fragments), check the fragments stuck, compile, write
//! the marker.

use crate::config::{not_stuck, parse_config};
use crate::flavour::{Flavour, NO_RUST};
use crate::kconfig::unmet_dependencies;
use crate::marker::{cache_key, LabKernel, MARKER};
use crate::progress::{BuildEvent, ObjectCounter};
use crate::source::{newest_tarball, user_source, Source};
use crate::toolchain::{ToolVersions, Toolchain};
use crate::Error;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The make log's file name, in the tree.
pub const BUILD_LOG: &str = "kmodlab-build.log";
/// The Rust lab fragment as merged, in the tree (every flavour merges it first; see
/// [`Flavour::fragments`]).
pub const FRAGMENT_FILE: &str = crate::flavour::RUST_LAB.file;
/// What the tree was made from (written first, for `kernel list` of an incomplete build).
pub const SOURCE_FILE: &str = "kmodlab-source";
/// Written once the tarball is fully extracted.
const EXTRACTED_STAMP: &str = ".kmodlab-extracted";
/// Lines of the make log shown when a step fails.
pub const LOG_TAIL: usize = 20;

/// What to build and where.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Which lab kernel.
    pub flavour: Flavour,
    /// A kernel tree or tarball (`--source`); `None`: the newest
    /// `linux-source-7.*.tar.xz` in [`BuildOptions::usr_src`].
    pub source: Option<PathBuf>,
    /// `make -jN`; `None`: the number of CPUs.
    pub jobs: Option<usize>,
    /// kmodlab's cache directory; kernels go to its `kernels/` directory.
    pub cache_dir: PathBuf,
    /// The tools.
    pub toolchain: Toolchain,
    /// Where Debian's `linux-source` tarballs are (`/usr/src`).
    pub usr_src: PathBuf,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            flavour: Flavour::default(),
            source: None,
            jobs: None,
            cache_dir: kmodlab_kbuild::cache_dir(),
            toolchain: Toolchain::debian(),
            usr_src: "/usr/src".into(),
        }
    }
}

/// Everything known about a build before it starts: the source, the tools, the key, the tree.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Which lab kernel.
    pub flavour: Flavour,
    /// The source.
    pub source: Source,
    /// The tool versions.
    pub tools: ToolVersions,
    /// The cache key.
    pub key: String,
    /// The tree the kernel is built in (`CACHE/kernels/FLAVOUR-VERSION-KEY`): the extracted tarball,
    /// or the `O=` directory of a user's tree.
    pub tree: PathBuf,
    /// Make variables.
    pub make_args: Vec<String>,
    /// Environment variables for make.
    pub make_env: Vec<(String, String)>,
}

impl Plan {
    /// The lock file of this kernel (next to its tree).
    pub fn lock_file(&self) -> PathBuf {
        let mut name = self.tree.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.tree.with_file_name(name)
    }

    /// The make log.
    pub fn log_file(&self) -> PathBuf {
        self.tree.join(BUILD_LOG)
    }
}

/// The directory that holds lab kernels in a cache directory.
pub fn kernels_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("kernels")
}

/// Resolves the source, checks the tools and computes the key and the tree's path. Cheap: no
/// make, no extraction.
pub fn plan(options: &BuildOptions) -> Result<Plan, Error> {
    let source = match &options.source {
        Some(p) => user_source(p)?,
        None => newest_tarball(&options.usr_src)?,
    };
    let tools = options
        .toolchain
        .check(matches!(source, Source::Tarball { .. }))?;
    let make_args = options.toolchain.make_args();
    let flavour = options.flavour;
    let key = cache_key(&source.identity()?, &flavour.key_text(), &tools, &make_args);
    let tree = kernels_dir(&options.cache_dir).join(format!(
        "{}-{}-{key}",
        flavour.as_str(),
        source.version()
    ));
    Ok(Plan {
        flavour,
        source,
        tools,
        key,
        tree,
        make_args,
        make_env: options.toolchain.make_env(),
    })
}

/// The finished kernel of `plan`, when its marker is there, matches and its image exists.
pub fn finished(plan: &Plan) -> Option<LabKernel> {
    LabKernel::read(&plan.tree)
        .filter(|k| k.key == plan.key && k.flavour == plan.flavour && k.image.is_file())
}

/// The lab kernel for `options` if it is already built; never builds.
pub fn cached(options: &BuildOptions) -> Result<Option<LabKernel>, Error> {
    Ok(finished(&plan(options)?))
}

/// Builds the lab kernel (or returns the cached one at once). Another kmodlab building the same
/// kernel is waited for. An interrupted build resumes: the extracted tree is kept and make only
/// redoes what is missing. `on` sees the stages and the compile count.
pub fn build(options: &BuildOptions, on: &mut dyn FnMut(&BuildEvent)) -> Result<LabKernel, Error> {
    let plan = plan(options)?;
    if let Some(k) = finished(&plan) {
        return Ok(k);
    }
    let kernels = kernels_dir(&options.cache_dir);
    std::fs::create_dir_all(&kernels)
        .map_err(|e| Error::io(format!("{}: {e}", kernels.display())))?;
    let lock_path = plan.lock_file();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("{}: {e}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            on(&BuildEvent::Waiting {
                lock: lock_path.clone(),
            });
            lock.lock()
                .map_err(|e| Error::io(format!("{}: {e}", lock_path.display())))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io(format!("{}: {e}", lock_path.display())))
        }
    }
    // The other kmodlab may have finished it while this one waited.
    if let Some(k) = finished(&plan) {
        return Ok(k);
    }
    let result = build_locked(&plan, options, on);
    on(&BuildEvent::Finished);
    drop(lock);
    result
}

fn build_locked(
    plan: &Plan,
    options: &BuildOptions,
    on: &mut dyn FnMut(&BuildEvent),
) -> Result<LabKernel, Error> {
    let started = Instant::now();
    let tree = &plan.tree;
    let io = |what: &Path, e: std::io::Error| Error::io(format!("{}: {e}", what.display()));
    // Where the sources are, and the O= argument when they are not in the tree itself.
    let (src, out_of_tree): (PathBuf, Option<String>) = match &plan.source {
        Source::Tarball { .. } => {
            if !tree.join(EXTRACTED_STAMP).is_file() {
                if tree.exists() {
                    std::fs::remove_dir_all(tree).map_err(|e| io(tree, e))?;
                }
                std::fs::create_dir_all(tree).map_err(|e| io(tree, e))?;
            }
            (tree.clone(), None)
        }
        Source::Tree { path, .. } => {
            std::fs::create_dir_all(tree).map_err(|e| io(tree, e))?;
            (path.clone(), Some(format!("O={}", tree.display())))
        }
    };
    let _ = std::fs::remove_file(tree.join(MARKER));
    std::fs::write(
        tree.join(SOURCE_FILE),
        format!("{}\n", plan.source.path().display()),
    )
    .map_err(|e| io(tree, e))?;
    let log_path = plan.log_file();
    let mut log = Log::create(&log_path)?;

    if let Source::Tarball { path, .. } = &plan.source {
        if !tree.join(EXTRACTED_STAMP).is_file() {
            on(&BuildEvent::Stage(format!(
                "extracting {} into {}",
                path.display(),
                tree.display()
            )));
            let mut tar = options.toolchain.command(Path::new("tar"));
            tar.arg("-xf")
                .arg(path)
                .arg("-C")
                .arg(tree)
                .arg("--strip-components=1");
            log.run(tar, "extracting the source", &mut |_| {})?;
            std::fs::write(tree.join(EXTRACTED_STAMP), "").map_err(|e| io(tree, e))?;
        }
    }

    let flavour = plan.flavour;
    let mut source_edits = Vec::new();
    if let Source::Tarball { .. } = &plan.source {
        for edit in flavour.source_edits() {
            let path = tree.join(edit.file);
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let edited = edit.apply(&text).ok_or_else(|| {
                Error::build(format!(
                    "{}: no single line starting `{}` to edit ({}): is this a kernel source \
                     kmodlab knows?",
                    path.display(),
                    edit.line_start,
                    edit.name
                ))
            })?;
            if edited != text {
                std::fs::write(&path, edited).map_err(|e| io(&path, e))?;
            }
            if !source_edits.iter().any(|n| n == edit.name) {
                source_edits.push(edit.name.to_string());
            }
        }
    }

    let make =
        |targets: &[&str]| make_command(plan, options, &src, out_of_tree.as_deref(), targets);
    let fragment_names: Vec<&str> = flavour
        .fragments()
        .iter()
        .map(|f| {
            f.file
                .trim_start_matches("kmodlab-")
                .trim_end_matches(".config")
        })
        .collect();
    on(&BuildEvent::Stage(format!(
        "configuring {} (make rustavailable, tinyconfig, the {} fragment{}, olddefconfig)",
        tree.display(),
        fragment_names.join(" and "),
        if fragment_names.len() == 1 { "" } else { "s" }
    )));
    // Why this kernel goes without Rust (a flavour that does not need it), when it does.
    let mut without_rust: Option<String> = None;
    if let Err(e) = log.run(make(&["rustavailable"]), "make rustavailable", &mut |_| {}) {
        let why: Vec<String> = log
            .tail
            .iter()
            .filter_map(|l| l.strip_prefix("***"))
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if !flavour.needs_rust() {
            let reason = if why.is_empty() {
                e.message.clone()
            } else {
                format!(
                    "make rustavailable: the kernel cannot use this Rust toolchain: {}",
                    why.join(" ")
                )
            };
            on(&BuildEvent::Note(format!(
                "building without Rust: {reason}"
            )));
            without_rust = Some(reason);
        } else {
            return Err(if why.is_empty() {
                e
            } else {
                Error::tools(vec![format!(
                    "make rustavailable: the kernel cannot use this Rust toolchain: {}: run \
                     scripts/setup",
                    why.join(" ")
                )])
                .with_log(&log_path, log.tail())
            });
        }
    }
    let mut config = configure(
        plan,
        options,
        &src,
        out_of_tree.as_deref(),
        &mut log,
        without_rust.is_none(),
    )?;
    let has_rust = |config: &str| {
        parse_config(config)
            .iter()
            .any(|o| o.name == "CONFIG_RUST" && o.value == "y")
    };
    if without_rust.is_none() && !flavour.needs_rust() && !has_rust(&config) {
        let reason = format!(
            "CONFIG_RUST does not combine with the {} config: {}",
            flavour.as_str(),
            why_no_rust(&src, &config)
        );
        on(&BuildEvent::Note(format!(
            "building without Rust: {reason}"
        )));
        without_rust = Some(reason);
        config = configure(plan, options, &src, out_of_tree.as_deref(), &mut log, false)?;
    }
    let config_path = tree.join(".config");
    let missing = not_stuck(&flavour.options(without_rust.is_none()), &config);
    if !missing.is_empty() {
        let rust = if missing.iter().any(|m| m == "CONFIG_RUST=y") {
            format!(
                " (CONFIG_RUST needs a toolchain `make rustavailable` accepts; here: {})",
                why_no_rust(&src, &config)
            )
        } else {
            String::new()
        };
        return Err(Error::config(format!(
            "the kernel config of {} lacks {}{rust}; see {}",
            tree.display(),
            missing.join(" "),
            config_path.display()
        )));
    }

    let jobs = options.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let last_time = previous_object_count(&kernels_dir(&options.cache_dir), flavour)
        .map(|n| format!(", about {n} objects"))
        .unwrap_or_default();
    let mut targets = vec!["bzImage", "modules"];
    targets.extend(flavour.extra_targets());
    let shown = targets.join(" ");
    on(&BuildEvent::Stage(format!(
        "compiling with make -j{jobs} {shown}{last_time} (log: {})",
        log_path.display()
    )));
    let mut counter = ObjectCounter::default();
    let jflag = format!("-j{jobs}");
    let mut args = vec![jflag.as_str()];
    args.extend(&targets);
    log.run(make(&args), &format!("make {shown}"), &mut |line| {
        if counter.line(line) {
            on(&BuildEvent::Compiled(counter.objects));
        }
    })?;
    let release_path = tree.join("include/config/kernel.release");
    let release = std::fs::read_to_string(&release_path)
        .map_err(|e| io(&release_path, e))?
        .trim()
        .to_string();
    let image = tree.join("arch/x86/boot/bzImage");
    if !image.is_file() {
        return Err(Error::build(format!(
            "make succeeded but there is no {}",
            image.display()
        ))
        .with_log(&log_path, log.tail()));
    }
    let kernel = LabKernel {
        flavour,
        without_rust,
        release,
        image,
        tree: tree.clone(),
        make_args: plan.make_args.clone(),
        make_env: plan.make_env.iter().cloned().collect(),
        source: plan.source.path().display().to_string(),
        key: plan.key.clone(),
        source_edits,
        build_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        objects: counter.objects,
        disk_bytes: crate::list::disk_usage(tree),
    };
    kernel.write().map_err(|e| io(&tree.join(MARKER), e))?;
    Ok(kernel)
}

/// The make command for `targets` in the tree of `plan`, with its variables and environment.
fn make_command(
    plan: &Plan,
    options: &BuildOptions,
    src: &Path,
    out_of_tree: Option<&str>,
    targets: &[&str],
) -> Command {
    let mut c = options.toolchain.command(Path::new("make"));
    c.arg("-C").arg(src);
    if let Some(o) = out_of_tree {
        c.arg(o);
    }
    c.args(&plan.make_args);
    for (k, v) in &plan.make_env {
        c.env(k, v);
    }
    for k in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "KBUILD_OUTPUT"] {
        c.env_remove(k);
    }
    c.args(targets);
    c
}

/// `make tinyconfig`, the flavour's fragments (and, `with_rust` false, [`NO_RUST`]) merged with
/// `merge_config.sh -m`, `make olddefconfig`; returns the final `.config`.
fn configure(
    plan: &Plan,
    options: &BuildOptions,
    src: &Path,
    out_of_tree: Option<&str>,
    log: &mut Log,
    with_rust: bool,
) -> Result<String, Error> {
    let tree = &plan.tree;
    let io = |what: &Path, e: std::io::Error| Error::io(format!("{}: {e}", what.display()));
    let make = |targets: &[&str]| make_command(plan, options, src, out_of_tree, targets);
    log.run(make(&["tinyconfig"]), "make tinyconfig", &mut |_| {})?;
    let mut merge = options
        .toolchain
        .command(&src.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(src)
        .arg("-m")
        .arg("-O")
        .arg(tree)
        .arg(tree.join(".config"));
    let no_rust_path = tree.join(NO_RUST.file);
    let _ = std::fs::remove_file(&no_rust_path);
    let extra = (!with_rust).then_some(&NO_RUST);
    for f in plan.flavour.fragments().iter().chain(extra) {
        let path = tree.join(f.file);
        std::fs::write(&path, f.text).map_err(|e| io(&path, e))?;
        merge.arg(&path);
    }
    log.run(merge, "merge_config.sh -m", &mut |_| {})?;
    log.run(make(&["olddefconfig"]), "make olddefconfig", &mut |_| {})?;
    let config_path = tree.join(".config");
    std::fs::read_to_string(&config_path).map_err(|e| io(&config_path, e))
}

/// Why Kconfig left `CONFIG_RUST` out of `config`: its dependencies in the source's
/// `init/Kconfig` that do not hold.
fn why_no_rust(src: &Path, config: &str) -> String {
    let kconfig = std::fs::read_to_string(src.join("init/Kconfig")).unwrap_or_default();
    match unmet_dependencies(&kconfig, "RUST", config) {
        Some(unmet) if !unmet.is_empty() => unmet.join("; "),
        _ => "Kconfig left it unset, though its dependencies in init/Kconfig hold".into(),
    }
}

/// How many objects the newest finished lab kernel of `flavour` in `kernels` compiled: what to
/// expect.
fn previous_object_count(kernels: &Path, flavour: Flavour) -> Option<usize> {
    std::fs::read_dir(kernels)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            let k = LabKernel::read(&e.path())?;
            (k.flavour == flavour).then_some((modified, k.objects))
        })
        .filter(|(_, n)| *n > 0)
        .max()
        .map(|(_, n)| n)
}

/// The build's log file, and the last lines of the step that ran last.
struct Log {
    path: PathBuf,
    file: File,
    tail: VecDeque<String>,
}

impl Log {
    fn create(path: &Path) -> Result<Log, Error> {
        let file = File::create(path).map_err(|e| Error::io(format!("{}: {e}", path.display())))?;
        Ok(Log {
            path: path.to_path_buf(),
            file,
            tail: VecDeque::new(),
        })
    }

    fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// Runs `cmd` with its output (stdout and stderr, in arrival order) in the log; each line also
    /// goes to `on_line`. A failure is a build error with the last lines of the log.
    fn run(
        &mut self,
        mut cmd: Command,
        what: &str,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), Error> {
        self.tail.clear();
        let shown = format!(
            "{} {}",
            cmd.get_program().to_string_lossy(),
            cmd.get_args()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let _ = writeln!(self.file, "$ {shown}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::tools(vec![format!(
                    "{what}: cannot run {}: {e}: run scripts/setup",
                    cmd.get_program().to_string_lossy()
                )])
            })?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let readers: Vec<_> = [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ]
        .into_iter()
        .map(|r| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(r);
                let mut buf = Vec::new();
                while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    buf.clear();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
        drop(tx);
        for line in rx {
            let _ = writeln!(self.file, "{line}");
            on_line(&line);
            if self.tail.len() == LOG_TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child
            .wait()
            .map_err(|e| Error::io(format!("{what}: {e}")))?;
        let _ = writeln!(self.file, "# {what}: {status}");
        let _ = self.file.flush();
        if status.success() {
            return Ok(());
        }
        Err(Error::build(format!("{what} failed ({status})")).with_log(&self.path, self.tail()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavour::Flavour;

    #[test]
    fn the_lock_sits_beside_the_tree_under_its_whole_name() {
        let plan = Plan {
            flavour: Flavour::Rust,
            source: Source::Tarball {
                path: "/usr/src/linux-source-7.3.tar.xz".into(),
                version: "7.3".into(),
            },
            tools: ToolVersions {
                rustc: String::new(),
                bindgen: String::new(),
                clang: String::new(),
            },
            key: "223f2a64970d".into(),
            tree: "/c/kernels/rust-7.3-223f2a64970d".into(),
            make_args: Vec::new(),
            make_env: Vec::new(),
        };
        assert_eq!(
            plan.lock_file(),
            Path::new("/c/kernels/rust-7.3-223f2a64970d.lock")
        );
        assert_eq!(
            plan.log_file(),
            Path::new("/c/kernels/rust-7.3-223f2a64970d/kmodlab-build.log")
        );
    }

    /// A stand-in for the kernel's make: just enough of `rustavailable`, `tinyconfig`,
    /// `olddefconfig` and `bzImage` for the recipe, steered by marker files in the source tree.
    const FAKE_MAKE: &str = r#"#!/bin/sh
PATH=/usr/bin:/bin
if [ "$1" = --version ]; then echo 'GNU Make 4.3'; exit 0; fi
src=; out=
while [ $# -gt 0 ]; do
  case "$1" in
    -C) src=$2; shift;;
    O=*) out=${1#O=};;
    rustavailable)
      if [ -e "$src/fake-rustc-too-old" ]; then
        echo '***'; echo "*** Rust compiler 'rustc' is too old."; echo '***'; exit 2
      fi
      echo 'Rust is available!';;
    tinyconfig) echo 'CONFIG_CC_IS_GCC=y' > "$out/.config";;
    olddefconfig)
      if [ -e "$src/fake-kconfig-drops-rust-always" ] ||
         { [ -e "$src/fake-kconfig-drops-rust" ] && grep -qx CONFIG_KASAN=y "$out/.config"; }; then
        grep -vx CONFIG_RUST=y "$out/.config" > "$out/.config.new"
        mv "$out/.config.new" "$out/.config"
      fi;;
    bzImage)
      mkdir -p "$out/arch/x86/boot" "$out/include/config"
      echo image > "$out/arch/x86/boot/bzImage"
      echo 7.3.4 > "$out/include/config/kernel.release"
      echo '  CC      init/main.o';;
  esac
  shift
done
"#;

    /// `merge_config.sh -m -O DIR BASE FRAGMENT...`: one line per option, the last one winning.
    const FAKE_MERGE: &str = r#"#!/bin/sh
PATH=/usr/bin:/bin
shift; shift; out=$1; shift
awk '
/^CONFIG_[A-Za-z0-9_]+=/ { n = $0; sub(/=.*/, "", n) }
/^# CONFIG_[A-Za-z0-9_]+ is not set/ { n = $2 }
n != "" { if (!(n in v)) o[++c] = n; v[n] = $0; n = "" }
END { for (i = 1; i <= c; i++) print v[o[i]] }' "$@" > "$out/.config.merged"
mv "$out/.config.merged" "$out/.config"
"#;

    /// A kernel tree with the fake make on the toolchain's path; `marks` are the marker files
    /// that steer it.
    fn fake_kernel(name: &str, marks: &[&str]) -> (PathBuf, BuildOptions) {
        use std::os::unix::fs::PermissionsExt;
        let (dir, toolchain) = crate::toolchain::tests::fake_toolchain(name);
        let exec = |p: &Path, text: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exec(&dir.join("bin/make"), FAKE_MAKE);
        let src = dir.join("linux");
        exec(&src.join("scripts/kconfig/merge_config.sh"), FAKE_MERGE);
        std::fs::write(
            src.join("Makefile"),
            "VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n",
        )
        .unwrap();
        std::fs::write(src.join("Kconfig"), "").unwrap();
        std::fs::create_dir_all(src.join("init")).unwrap();
        std::fs::write(
            src.join("init/Kconfig"),
            "config RUST\n\tbool \"Rust support\"\n\tdepends on !KASAN || CC_IS_CLANG\n",
        )
        .unwrap();
        for m in marks {
            std::fs::write(src.join(m), "").unwrap();
        }
        let options = BuildOptions {
            flavour: Flavour::Debug,
            source: Some(src),
            jobs: Some(1),
            cache_dir: dir.join("cache"),
            toolchain,
            usr_src: dir.join("nowhere"),
        };
        (dir, options)
    }

    fn build_noting(options: &BuildOptions) -> (Result<LabKernel, Error>, Vec<String>) {
        let mut notes = Vec::new();
        let k = build(options, &mut |e| {
            if let BuildEvent::Note(n) = e {
                notes.push(n.clone());
            }
        });
        (k, notes)
    }

    #[test]
    fn the_debug_flavour_goes_without_rust_when_the_toolchain_is_refused_saying_why() {
        let (dir, options) = fake_kernel("no-rustc", &["fake-rustc-too-old"]);
        let (k, notes) = build_noting(&options);
        let k = k.unwrap_or_else(|e| panic!("{}", e.report()));
        let why = "make rustavailable: the kernel cannot use this Rust toolchain: Rust compiler \
                   'rustc' is too old.";
        assert_eq!(notes, vec![format!("building without Rust: {why}")]);
        assert_eq!(k.flavour, Flavour::Debug);
        assert_eq!(k.without_rust.as_deref(), Some(why));
        assert!(k
            .tree
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("debug-7.3.4-"));
        let config = std::fs::read_to_string(k.tree.join(".config")).unwrap();
        assert!(
            config.lines().any(|l| l == "# CONFIG_RUST is not set"),
            "{config}"
        );
        assert!(config.lines().any(|l| l == "CONFIG_KASAN=y"), "{config}");
        assert!(k.tree.join(NO_RUST.file).is_file());
        assert!(k.disk_bytes > 0);
        // Cached: no stage, no note.
        let again = build(&options, &mut |e| panic!("a cached kernel reported {e:?}")).unwrap();
        assert_eq!(again, k);
        // The Rust lab kernel cannot go without Rust: the same refusal stops its build.
        let rust = BuildOptions {
            flavour: Flavour::Rust,
            ..options
        };
        let e = build(&rust, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Tools, "{e}");
        assert!(e.message.contains("'rustc' is too old"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_debug_flavour_goes_without_rust_when_kconfig_rules_it_out_naming_the_dependency() {
        let (dir, options) = fake_kernel("kconfig", &["fake-kconfig-drops-rust"]);
        let (k, notes) = build_noting(&options);
        let k = k.unwrap_or_else(|e| panic!("{}", e.report()));
        let why = "CONFIG_RUST does not combine with the debug config: depends on !KASAN || \
                   CC_IS_CLANG (KASAN=y, CC_IS_CLANG=n)";
        assert_eq!(notes, vec![format!("building without Rust: {why}")]);
        assert_eq!(k.without_rust.as_deref(), Some(why));
        assert!(!crate::tree_has_rust(&k.tree));
        assert!(crate::tree_has_kasan(&k.tree));
        // The Rust lab kernel needs Rust: when Kconfig leaves it out, its build fails.
        let src = options.source.clone().unwrap();
        std::fs::write(src.join("fake-kconfig-drops-rust-always"), "").unwrap();
        let rust = BuildOptions {
            flavour: Flavour::Rust,
            ..options
        };
        let e = build(&rust, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Config, "{e}");
        assert!(
            e.message.contains(
                "lacks CONFIG_RUST=y (CONFIG_RUST needs a toolchain `make rustavailable` \
                 accepts; here: Kconfig left it unset, though its dependencies in init/Kconfig \
                 hold)"
            ),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn with_a_willing_toolchain_the_debug_flavour_keeps_rust() {
        let (dir, options) = fake_kernel("rust-ok", &[]);
        let (k, notes) = build_noting(&options);
        let k = k.unwrap_or_else(|e| panic!("{}", e.report()));
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(k.without_rust, None);
        assert!(crate::tree_has_rust(&k.tree));
        assert!(!k.tree.join(NO_RUST.file).exists());
        for f in Flavour::Debug.fragments() {
            assert_eq!(
                std::fs::read_to_string(k.tree.join(f.file)).unwrap(),
                f.text
            );
        }
        let log = std::fs::read_to_string(k.tree.join(BUILD_LOG)).unwrap();
        assert!(
            log.contains(" bzImage modules scripts_gdb\n"),
            "the gdb helpers are made: {log}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_build_of_the_same_kernel_waits_for_the_lock() {
        let dir = std::env::temp_dir().join(format!("kmodlab-kernel-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("rust-7.3-x.lock");
        let held = File::create(&lock).unwrap();
        held.lock().unwrap();
        let other = File::options().write(true).open(&lock).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
