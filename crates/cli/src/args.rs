//! The command line of `kmodlab`: its definition (clap) and the dispatch to the commands, each
//! given its options as values.

use crate as cli;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "kmodlab",
    version,
    about = "The Linux kernel-module lab: build a module, boot a throwaway VM, load it, read its \
             messages, unload it, and get a verdict.",
    after_help = "Exit codes: 0 success, 1 a test or verdict failed (or the module did not build), \
                  2 usage or input error, 3 infrastructure (no kernel, no QEMU, VM did not boot).\n\
                  Module tools, compatible with kmod: kmodlab insmod|rmmod|lsmod|modinfo|modprobe|depmod \
                  ARGS, or the binary invoked through a link of that name; likewise dmesg, compatible \
                  with util-linux: kmodlab dmesg ARGS.\n\
                  Environment: KMODLAB_KERNEL, KMODLAB_KDIR (kernel and build tree), KMODLAB_ACCEL \
                  (kvm|tcg), KMODLAB_RUNS (where run directories go), KMODLAB_QEMU, KMODLAB_COLD=1 \
                  (no warm starts), KMODLAB_WARM_DIR (where saved VM states go), KMODLAB_CONSOLE_LIMIT \
                  (bytes of console.log kept per run, default 16 MiB)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Default)]
struct KernelArgs {
    /// Kernel image to boot (default: newest /boot/vmlinuz-V with /lib/modules/V/build; for Rust
    /// modules, the Rust lab kernel, built when missing).
    #[arg(long, value_name = "IMAGE")]
    kernel: Option<PathBuf>,
    /// Kernel build tree for Kbuild (default: /lib/modules/V/build). Rust modules use it too when
    /// it was built with CONFIG_RUST=y.
    #[arg(long, value_name = "DIR")]
    kdir: Option<PathBuf>,
    /// Build for and boot one of kmodlab's lab kernels, whatever the spec or the sources ask
    /// for: `debug` (KASAN, kmemleak, lockdep, UBSAN, kgdb: finds memory and lock bugs) or
    /// `rust` (the Rust lab kernel). Built into the cache when missing (see `kmodlab kernel
    /// build`).
    #[arg(long, value_enum, value_name = "KIND", conflicts_with_all = ["kernel", "kdir"])]
    lab_kernel: Option<LabKernel>,
}

/// The lab kernels `--lab-kernel` names.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LabKernel {
    Debug,
    Rust,
}

#[derive(clap::Args, Clone, Default)]
struct StartArgs {
    /// Boot the guest cold instead of restoring the saved VM state (also KMODLAB_COLD=1). A saved
    /// state is made by the first run for a kernel, agent and VM configuration and restored by
    /// the next ones in about half a second.
    #[arg(long)]
    cold: bool,
}

impl From<KernelArgs> for cli::KernelChoice {
    fn from(k: KernelArgs) -> Self {
        cli::KernelChoice {
            kernel: k.kernel,
            kdir: k.kdir,
            lab_kernel: k.lab_kernel.map(|l| match l {
                LabKernel::Debug => kmodlab_lab::KernelKind::Debug,
                LabKernel::Rust => kmodlab_lab::KernelKind::Rust,
            }),
        }
    }
}

impl From<Format> for cli::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Human => cli::Format::Human,
            Format::Ktap => cli::Format::Ktap,
            Format::Json => cli::Format::Json,
            Format::Junit => cli::Format::Junit,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Build a module directory with Kbuild (make -C KDIR M=DIR modules).
    Build {
        /// The module directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Boot a VM, load a module with parameters, show its messages and /sys/module state, unload it.
    ///
    /// PATH is a module directory (built first) or a .ko file. Parameters are NAME=VALUE; a value
    /// with spaces stays one value (`kmodlab run m.ko 'label=two words'`).
    Run {
        /// Print one JSON object (the contract in docs/contracts.md) instead of text.
        #[arg(long)]
        json: bool,
        /// Module name, when the directory builds several.
        #[arg(long)]
        module: Option<String>,
        /// Per-phase deadline in seconds (load, checks, unload).
        #[arg(long, default_value = "30", value_parser = seconds)]
        timeout: Duration,
        /// Leave the module loaded (skip the unload).
        #[arg(long)]
        no_unload: bool,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// Module directory or .ko file.
        path: PathBuf,
        /// Module parameters, NAME=VALUE.
        params: Vec<String>,
    },
    /// Boot a VM and run commands in it: the module tools (modprobe, lsmod, rmmod, ...) and
    /// dmesg, against modules from the kernel's own tree or files you bring.
    ///
    /// Commands are separated by a `;` argument (quote it from the shell):
    /// `kmodlab exec -m 9p -- modprobe 9p ';' lsmod ';' modprobe -r 9p`, or
    /// `kmodlab exec -f hello.ko -- insmod /files/hello.ko ';' dmesg -x ';' rmmod hello`.
    /// Exit code 0 when every command ran (whatever their exit codes), 1 on a crash report or a
    /// hang, 3 when the VM did not boot.
    Exec {
        /// Put this module of the kernel's tree (with its dependencies and the tree's index files)
        /// into the guest's /lib/modules; repeatable.
        #[arg(short = 'm', long = "kernel-module", value_name = "NAME")]
        kernel_modules: Vec<String>,
        /// Copy this host file into the guest as /files/NAME (a module to insmod, ...); repeatable.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Stop a command (SIGTERM) once its output contains this text, for commands that run
        /// on, such as `dmesg --follow`.
        #[arg(long, value_name = "TEXT")]
        stop_on: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Deadline for each command in seconds.
        #[arg(long, default_value = "30", value_parser = seconds)]
        timeout: Duration,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// The commands, separated by `;`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run every test spec (kmodlab.toml) found under the paths, several VMs at a time.
    Test {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// VMs to run at once (default: one per core, as memory allows: 768 MiB each).
        #[arg(short = 'j', long, default_value_t = default_jobs())]
        jobs: usize,
        /// Also show each case's kernel messages and verdict (human format).
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// Directories to search for specs (default: the current directory).
        paths: Vec<PathBuf>,
    },
    /// Rebuild and rerun a module directory on every save of its sources.
    ///
    /// Runs the directory's kmodlab.toml spec (or, without one, loads the module with PARAMS and
    /// unloads it), prints the module's messages and the verdict, then waits for a change to a
    /// source file (.c, .h, .rs, Kbuild, Makefile, kmodlab.toml) and does it again. Every run
    /// starts from the saved VM state, so a rerun takes about a second plus the build. Ctrl-C
    /// ends it.
    #[command(after_help = "Examples:\n  \
        kmodlab watch labs/kernel_modules/6-cmd-mod\n  \
        kmodlab watch . count=3")]
    Watch {
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// The module directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Module parameters (NAME=VALUE) when the directory has no spec.
        params: Vec<String>,
    },
    /// Open a shell in the lab VM, with your modules in /lab, rebuilt as you edit them.
    ///
    /// Each DIR is built with Kbuild and appears in the guest as /lab/NAME (its .ko files and
    /// sources); the shell starts in the first. A FILE.ko appears as /lab/FILE.ko. The guest has
    /// busybox's commands, with kmodlab's insmod, rmmod, lsmod, modinfo, modprobe, depmod and
    /// dmesg in front; /proc, /sys, /sys/kernel/debug, /dev and /tmp are mounted. While the shell
    /// is open, saving a source file rebuilds its module and puts the new .ko in the guest (rmmod
    /// and insmod it again). Files made or changed in the guest are not copied back to the host.
    ///
    /// The kernel's console shows between the shell's output, filtered by the guest's console
    /// log level as on the lab's serial console (`echo 8 > /proc/sys/kernel/printk` shows
    /// pr_debug); every crash report is caught whatever the level, and followed by a summary
    /// with the module's source line. A panic or a hung guest gives a fresh guest and a new
    /// prompt; an oops that kills the shell itself (a builtin `echo` into the module's file)
    /// gives a new shell in the same guest. `exit`, Ctrl-D or `poweroff` ends the session.
    ///
    /// With -c, or when standard input is no terminal, the commands run without a terminal,
    /// their output is printed (kernel console lines on standard error) and kmodlab exits with
    /// the shell's exit status (1 when the guest panicked, 3 when it did not boot).
    #[command(after_help = "Examples:\n  \
        kmodlab shell labs/kernel_modules/1-2-test-mod\n  \
        kmodlab shell labs/kernel_modules/6-cmd-mod -c 'insmod cmd_mod.ko str=tired; rmmod cmd_mod'\n  \
        kmodlab shell --attach          (a second terminal on the running shell)")]
    Shell {
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// Run these commands in the guest's shell instead of an interactive shell.
        #[arg(short = 'c', value_name = "COMMANDS")]
        command: Option<String>,
        /// Open a second terminal on the newest running `kmodlab shell` instead.
        #[arg(long, conflicts_with_all = ["command", "paths"])]
        attach: bool,
        /// Boot with `nokaslr` and QEMU's gdb stub, and print the command that attaches gdb from
        /// another terminal: the kernel's symbols, and the symbols of the shell's modules, loaded
        /// now or later, at their real addresses; an oops stops gdb. While gdb holds the guest,
        /// the shell waits.
        #[arg(long, conflicts_with = "attach")]
        gdb: bool,
        /// Module directories and .ko files.
        paths: Vec<PathBuf>,
    },
    /// Debug a module with gdb: load it in a lab VM and stop in its init function, before its
    /// first line runs, with its source lines, locals and call stack.
    ///
    /// PATH is a module directory (built first) or a .ko file with debug info; PARAMS are its
    /// parameters (NAME=VALUE). The kernel's symbols come from its vmlinux with DWARF, which the
    /// lab kernels (`--lab-kernel debug` for C modules, `rust` for Rust ones) keep, and Debian's
    /// -dbg package installs; without one, from the guest's /proc/kallsyms (kernel functions
    /// named, no kernel source lines). The guest boots with `nokaslr` and QEMU's gdb stub; the
    /// host's gdb starts with the kernel's symbols, attached to it, and the module's symbols at
    /// the addresses the kernel gave its sections.
    /// `continue` finishes the load, and the module is unloaded right after (a breakpoint in its
    /// exit function stops there); an oops stops gdb in the kernel's oops path, where `bt`
    /// shows the faulting line. Arguments after `--` go to gdb (`--batch -ex CMD` for scripts).
    /// QEMU ends when gdb does. The kernel console goes to console.log in the run directory.
    #[command(after_help = "Examples:\n  \
        kmodlab gdb labs/kernel_modules/5-oops-mod\n  \
        kmodlab gdb --lab-kernel debug labs/kernel_modules/5-oops-mod\n  \
        kmodlab gdb --lab-kernel debug labs/kernel_modules/6-cmd-mod str=tired\n  \
        kmodlab gdb --lab-kernel debug labs/kernel_modules/5-oops-mod -- --batch -ex bt -ex next")]
    Gdb {
        /// Module name, when the directory builds several.
        #[arg(long)]
        module: Option<String>,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// Module directory or .ko file.
        path: PathBuf,
        /// Module parameters, NAME=VALUE.
        params: Vec<String>,
        /// Arguments for gdb, after `--`.
        #[arg(last = true, value_name = "GDB-ARGS")]
        gdb_args: Vec<String>,
    },
    /// Make a new module directory that builds and passes its own test: source, Kbuild,
    /// Makefile and a kmodlab.toml spec.
    ///
    /// C by default (the distribution's kernel); --rust for a Rust module on the Rust lab kernel.
    /// The module is named after the directory (`-` becomes `_`). Never overwrites: an existing
    /// non-empty directory is an error.
    #[command(after_help = "Examples:\n  \
        kmodlab new hello && kmodlab test hello\n  \
        kmodlab new --rust rusty && kmodlab run rusty count=3")]
    New {
        /// Write a Rust module (for the Rust lab kernel) instead of C.
        #[arg(long)]
        rust: bool,
        /// The directory to make.
        dir: PathBuf,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    ///
    /// For bash: `kmodlab completions bash > /etc/bash_completion.d/kmodlab`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages of kmodlab and its commands (kmodlab.1, kmodlab-run.1, ...) into
    /// a directory.
    #[command(
        after_help = "Example:\n  kmodlab man /usr/local/share/man/man1 && man kmodlab-shell"
    )]
    Man {
        /// Where the pages go (made when missing).
        dir: PathBuf,
    },
    /// The labs built into kmodlab: list them, start your own copy from the skeletons, and
    /// check (grade) your work.
    ///
    /// A lab is a set of exercises, one directory each (module sources, Kbuild, Makefile and a
    /// kmodlab.toml spec). Its sources hold `TODO n/k:` comments: `lab start` writes each
    /// exercise with the solution lines after every marker removed, and `lab check` builds
    /// and runs every exercise in throwaway VMs against the lab's own checks, saying per TODO
    /// what passed and, for what failed, what was expected and what the kernel printed.
    #[command(after_help = "Examples:\n  \
        kmodlab lab list kernel_modules\n  \
        kmodlab lab start kernel_modules ~/km && cd ~/km\n  \
        kmodlab lab check . 6                      (exercise 6 only)\n  \
        kmodlab lab check class/* --table grades   (a class: grades.csv, grades.json)\n  \
        kmodlab lab check class/* --partition 2/4  (the second of four CI jobs)")]
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Build a lab kernel (Rust or debug), or list the kernels kmodlab can use.
    Kernel {
        #[command(subcommand)]
        command: KernelCommand,
    },
    /// Find every crash report in a kernel log (console output or dmesg), title it, and point at
    /// the source line: symbolized call trace, disassembly of the faulting code, decoded taint.
    ///
    /// LOG is a saved console log or `dmesg` output, with or without timestamps; `-` or nothing
    /// reads standard input. Module frames are symbolized from the .ko files found under each
    /// --module-dir (the module's build directory: the .ko must be the build that crashed);
    /// kernel frames from --vmlinux (a vmlinux with debug info).
    /// Exit code 0 when the log has no crash report, 1 when it has one or more, 2 when LOG cannot
    /// be read.
    #[command(after_help = "Examples:\n  \
        kmodlab oops --module-dir labs/kernel_modules/5-oops-mod console.log\n  \
        dmesg | kmodlab oops --json --module-dir ~/src/mydriver")]
    Oops {
        /// Print one JSON object, `{"reports": [...]}` (the contract in docs/contracts.md).
        #[arg(long)]
        json: bool,
        /// Directory with the modules' .ko files (searched recursively); repeatable.
        #[arg(long = "module-dir", value_name = "DIR")]
        module_dirs: Vec<PathBuf>,
        /// A vmlinux with debug info, for the kernel's own frames.
        #[arg(long, value_name = "FILE")]
        vmlinux: Option<PathBuf>,
        /// The log (default: standard input).
        log: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KernelCommand {
    /// Build a lab kernel into the cache, or find it there: the Rust lab kernel (--rust:
    /// CONFIG_RUST=y, for Rust for Linux modules) or the debug lab kernel (--debug: KASAN,
    /// kmemleak, lockdep, UBSAN, list and atomic-sleep checks, kgdb/kdb on the serial console,
    /// DWARF 5 with vmlinux and the gdb scripts kept, and Rust when the toolchain allows it);
    /// prints the image and the build tree, one per line.
    ///
    /// The source is the newest /usr/src/linux-source-7.*.tar.xz (7.2 or newer), extracted into
    /// the cache, or --source: a kernel tree (built out of tree with O=, so it stays clean; it must
    /// not be configured in place) or a linux-source tarball. Config: tinyconfig plus kmodlab's
    /// rust-lab fragment (and, for --debug, its debug-lab fragment), every option checked in the
    /// final .config. The cache (~/.cache/kmodlab/kernels/FLAVOUR-VERSION-KEY) is keyed by the
    /// source, the fragments and the tool versions; a second call returns at once. Exit code 2 for
    /// a bad --source, 3 for a missing tool or a failed build (its log's last lines and path are
    /// shown).
    #[command(group(clap::ArgGroup::new("flavour").required(true).args(["rust", "debug"])))]
    Build {
        /// Build the Rust lab kernel.
        #[arg(long)]
        rust: bool,
        /// Build the debug lab kernel.
        #[arg(long)]
        debug: bool,
        /// A kernel source tree or linux-source tarball instead of /usr/src's.
        #[arg(long, value_name = "DIR")]
        source: Option<PathBuf>,
        /// Parallel make jobs (default: the number of CPUs).
        #[arg(short = 'j', long, value_name = "N")]
        jobs: Option<usize>,
        /// Print the kernel's record (kmodlab-kernel.json) instead of the two paths.
        #[arg(long)]
        json: bool,
    },
    /// List Debian's kernels (/boot/vmlinuz-V with /lib/modules/V/build) and the lab kernels in the
    /// cache (built or incomplete).
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// List the labs, or one lab's exercises and their TODOs.
    List {
        /// The lab whose exercises and TODOs to show.
        lab: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a lab's skeletons into DIR (default: ./LAB): each exercise's files with the
    /// solution after every TODO marker removed, the marker kept as your instructions, with
    /// Kbuild, Makefile and the exercise's checks (kmodlab.toml). Never overwrites a file.
    Start {
        /// The lab (`kmodlab lab list` shows them).
        lab: String,
        /// Where to write it.
        dir: Option<PathBuf>,
        /// Only this exercise (its directory name or number); repeatable.
        #[arg(short, long = "exercise", value_name = "EXERCISE")]
        exercises: Vec<String>,
    },
    /// Build and run each exercise of each student directory in throwaway VMs, with the lab's
    /// own checks, and grade it per TODO: `passed [xx/NN]`.
    ///
    /// Arguments are student directories (made by `lab start`, or any directory with the
    /// lab's exercise directories) and exercises (a directory name or number, `6` or
    /// `6-cmd-mod`), in any order; without a directory, the current one. An exercise's own
    /// directory names its student and itself. Each exercise runs on its own VM: a crash or a
    /// hang costs only that exercise. Exit code 0 when every student has full marks, 1 when
    /// not, 3 when a check could not run (no kernel, no QEMU).
    Check {
        /// Output format: the grades per student (human, json) or one test per TODO (ktap,
        /// junit).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// VMs to run at once (default: one per core, as memory allows: 768 MiB each).
        #[arg(short = 'j', long, default_value_t = default_jobs())]
        jobs: usize,
        /// The lab, when it cannot be told from the directories.
        #[arg(long)]
        lab: Option<String>,
        /// Also write the class table: PREFIX.csv (a row per student, a column per exercise)
        /// and PREFIX.json (every TODO and check).
        #[arg(long, value_name = "PREFIX")]
        table: Option<PathBuf>,
        /// Grade only the K-th of N shares of the students (sorted, dealt round-robin): one
        /// CI job each.
        #[arg(long, value_name = "K/N")]
        partition: Option<kmodlab_course::Partition>,
        /// Also show each check's verdict and first kernel messages when it passed.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        start: StartArgs,
        /// Student directories and exercises.
        args: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Human,
    Ktap,
    Json,
    Junit,
}

/// Parses the arguments of `kmodlab` (a subcommand), runs the command, returns its exit code.
pub fn main() -> u8 {
    let parsed = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                cli::exit::USAGE
            } else {
                cli::exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    match parsed.command {
        Command::Build { dir, kernel } => cli::build(dir, kernel.into()),
        Command::Run {
            json,
            module,
            timeout,
            no_unload,
            kernel,
            start,
            path,
            params,
        } => cli::run(cli::RunArgs {
            json,
            module,
            timeout,
            no_unload,
            kernel: kernel.into(),
            cold: start.cold,
            path,
            params,
        }),
        Command::Exec {
            kernel_modules,
            files,
            stop_on,
            json,
            timeout,
            kernel,
            start,
            command,
        } => cli::exec(cli::ExecArgs {
            kernel_modules,
            files,
            stop_on,
            json,
            timeout,
            kernel: kernel.into(),
            cold: start.cold,
            words: command,
        }),
        Command::Test {
            format,
            jobs,
            verbose,
            kernel,
            start,
            paths,
        } => cli::test(cli::TestArgs {
            format: format.into(),
            jobs,
            verbose,
            kernel: kernel.into(),
            cold: start.cold,
            paths,
        }),
        Command::New { rust, dir } => cli::new(rust, dir),
        Command::Gdb {
            module,
            kernel,
            start,
            path,
            params,
            gdb_args,
        } => cli::gdb(cli::GdbArgs {
            module,
            kernel: kernel.into(),
            cold: start.cold,
            path,
            params,
            gdb_args,
        }),
        Command::Shell {
            kernel,
            start,
            command,
            attach,
            gdb,
            paths,
        } => cli::shell(cli::ShellArgs {
            kernel: kernel.into(),
            cold: start.cold,
            command,
            attach,
            gdb,
            paths,
        }),
        Command::Watch {
            kernel,
            start,
            dir,
            params,
        } => cli::watch(cli::WatchArgs {
            kernel: kernel.into(),
            cold: start.cold,
            dir,
            params,
        }),
        Command::Oops {
            json,
            module_dirs,
            vmlinux,
            log,
        } => cli::oops(cli::OopsArgs {
            json,
            module_dirs,
            vmlinux,
            log,
        }),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut cmd, "kmodlab", &mut out);
            cli::exit::OK
        }
        Command::Man { dir } => man_pages(&dir),
        Command::Kernel {
            command:
                KernelCommand::Build {
                    rust: _,
                    debug,
                    source,
                    jobs,
                    json,
                },
        } => {
            let flavour = if debug {
                kmodlab_kernel::Flavour::Debug
            } else {
                kmodlab_kernel::Flavour::Rust
            };
            cli::kernel_build(flavour, source, jobs, json)
        }
        Command::Kernel {
            command: KernelCommand::List { json },
        } => cli::kernel_list(json),
        Command::Lab { command } => match command {
            LabCommand::List { lab, json } => cli::lab_list(lab, json),
            LabCommand::Start {
                lab,
                dir,
                exercises,
            } => cli::lab_start(lab, dir, exercises),
            LabCommand::Check {
                format,
                jobs,
                lab,
                table,
                partition,
                verbose,
                kernel,
                start,
                args,
            } => cli::lab_check(cli::LabCheckArgs {
                verbose,
                format: format.into(),
                jobs,
                kernel: kernel.into(),
                cold: start.cold,
                lab,
                table,
                partition,
                args,
            }),
        },
    }
}

/// A positive number of seconds, for deadlines.
/// VMs at once by default: one per core, but no more than the available memory holds at
/// 768 MiB each (a 512 MiB guest and QEMU's own).
fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let available_kb: Option<u64> = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    });
    let by_memory = available_kb.map_or(cores, |kb| (kb / (768 * 1024)) as usize);
    cores.min(by_memory).max(1)
}

fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) => kmodlab_events::timeout_seconds(v),
        Err(_) => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Writes `kmodlab.1` and one page per command (`kmodlab-run.1`, `kmodlab-kernel-build.1`).
fn man_pages(dir: &std::path::Path) -> u8 {
    let cmd = <Cli as clap::CommandFactory>::command();
    let written = std::fs::create_dir_all(dir).and_then(|()| write_pages(&cmd, "kmodlab", dir));
    match written {
        Ok(()) => cli::exit::OK,
        Err(e) => {
            eprintln!("kmodlab: {}: {e}", dir.display());
            cli::exit::USAGE
        }
    }
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> std::io::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
