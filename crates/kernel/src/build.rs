//! Building the Rust lab kernel into the cache: extract (or use the user's tree out of tree),
//! configure (tinyconfig + the fragment), check the fragment stuck, compile, write the marker.

use crate::config::{options_not_stuck, FRAGMENT};
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
/// The fragment as merged, in the tree.
pub const FRAGMENT_FILE: &str = "kmodlab-rust-lab.config";
/// What the tree was made from (written first, for `kernel list` of an incomplete build).
pub const SOURCE_FILE: &str = "kmodlab-source";
/// Written once the tarball is fully extracted.
const EXTRACTED_STAMP: &str = ".kmodlab-extracted";
/// Lines of the make log shown when a step fails.
pub const LOG_TAIL: usize = 20;

/// What to build and where.
#[derive(Clone, Debug)]
pub struct BuildOptions {
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
    /// The source.
    pub source: Source,
    /// The tool versions.
    pub tools: ToolVersions,
    /// The cache key.
    pub key: String,
    /// The tree the kernel is built in (`CACHE/kernels/rust-VERSION-KEY`): the extracted tarball,
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
    let key = cache_key(&source.identity()?, FRAGMENT, &tools, &make_args);
    let tree = kernels_dir(&options.cache_dir).join(format!("rust-{}-{key}", source.version()));
    Ok(Plan {
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
    LabKernel::read(&plan.tree).filter(|k| k.key == plan.key && k.image.is_file())
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

    let make = |targets: &[&str]| {
        let mut c = options.toolchain.command(Path::new("make"));
        c.arg("-C").arg(&src);
        if let Some(o) = &out_of_tree {
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
    };

    on(&BuildEvent::Stage(format!(
        "configuring {} (make rustavailable, tinyconfig, the rust-lab fragment, olddefconfig)",
        tree.display()
    )));
    if let Err(e) = log.run(make(&["rustavailable"]), "make rustavailable", &mut |_| {}) {
        let why: Vec<String> = log
            .tail
            .iter()
            .filter_map(|l| l.strip_prefix("***"))
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
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
    log.run(make(&["tinyconfig"]), "make tinyconfig", &mut |_| {})?;
    let fragment_path = tree.join(FRAGMENT_FILE);
    std::fs::write(&fragment_path, FRAGMENT).map_err(|e| io(&fragment_path, e))?;
    let mut merge = options
        .toolchain
        .command(&src.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(&src)
        .arg("-m")
        .arg("-O")
        .arg(tree)
        .arg(tree.join(".config"))
        .arg(&fragment_path);
    log.run(merge, "merge_config.sh -m", &mut |_| {})?;
    log.run(make(&["olddefconfig"]), "make olddefconfig", &mut |_| {})?;
    let config_path = tree.join(".config");
    let config = std::fs::read_to_string(&config_path).map_err(|e| io(&config_path, e))?;
    let missing = options_not_stuck(FRAGMENT, &config);
    if !missing.is_empty() {
        let rust = if missing.iter().any(|m| m == "CONFIG_RUST=y") {
            " (CONFIG_RUST needs a toolchain `make rustavailable` accepts and no MODVERSIONS, \
             RANDSTRUCT, GCC_PLUGINS)"
        } else {
            ""
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
    let last_time = previous_object_count(&kernels_dir(&options.cache_dir))
        .map(|n| format!(", about {n} objects"))
        .unwrap_or_default();
    on(&BuildEvent::Stage(format!(
        "compiling with make -j{jobs} bzImage modules{last_time} (log: {})",
        log_path.display()
    )));
    let mut counter = ObjectCounter::default();
    let jflag = format!("-j{jobs}");
    log.run(
        make(&[&jflag, "bzImage", "modules"]),
        "make bzImage modules",
        &mut |line| {
            if counter.line(line) {
                on(&BuildEvent::Compiled(counter.objects));
            }
        },
    )?;
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
        release,
        image,
        tree: tree.clone(),
        make_args: plan.make_args.clone(),
        make_env: plan.make_env.iter().cloned().collect(),
        source: plan.source.path().display().to_string(),
        key: plan.key.clone(),
        build_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        objects: counter.objects,
    };
    kernel.write().map_err(|e| io(&tree.join(MARKER), e))?;
    Ok(kernel)
}

/// How many objects the newest finished lab kernel in `kernels` compiled: what to expect.
fn previous_object_count(kernels: &Path) -> Option<usize> {
    std::fs::read_dir(kernels)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, LabKernel::read(&e.path())?.objects))
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

    #[test]
    fn the_lock_sits_beside_the_tree_under_its_whole_name() {
        let plan = Plan {
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
