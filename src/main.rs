//! kmodlab: the Linux kernel-module lab in one program.
//!
//! A thin binary: it picks a mode from argv[0] and the arguments, calls the library crates, prints,
//! and maps outcomes to exit codes (0 success, 1 a test or verdict failed, 2 usage or input error,
//! 3 infrastructure).

use clap::{Parser, Subcommand, ValueEnum};
use kmodlab_events::{Event, Phase, Verdict};
use kmodlab_lab::{Lab, LabError, RunOptions};
use kmodlab_report::TerminalSafe;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INFRA: u8 = 3;

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
}

#[derive(clap::Args, Clone, Default)]
struct StartArgs {
    /// Boot the guest cold instead of restoring the saved VM state (also KMODLAB_COLD=1). A saved
    /// state is made by the first run for a kernel, agent and VM configuration and restored by
    /// the next ones in about half a second.
    #[arg(long)]
    cold: bool,
}

impl StartArgs {
    /// Labs read the choice from the environment (set before any thread starts).
    fn apply(&self) {
        if self.cold {
            std::env::set_var("KMODLAB_COLD", "1");
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
        /// Print one JSON object (the contract in DESIGN.md) instead of text.
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
        /// VMs to run at once.
        #[arg(short = 'j', long, default_value_t = 2)]
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
    /// prompt. `exit`, Ctrl-D or `poweroff` ends the session.
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
        /// Module directories and .ko files.
        paths: Vec<PathBuf>,
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
    /// Build the Rust lab kernel, or list the kernels kmodlab can use.
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
        /// Print one JSON object, `{"reports": [...]}` (the contract in DESIGN.md).
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
    /// Build the Rust lab kernel (CONFIG_RUST=y, for Rust for Linux modules) into the cache, or
    /// find it there; prints the image and the build tree, one per line.
    ///
    /// The source is the newest /usr/src/linux-source-7.*.tar.xz (7.2 or newer), extracted into
    /// the cache, or --source: a kernel tree (built out of tree with O=, so it stays clean; it must
    /// not be configured in place) or a linux-source tarball. Config: tinyconfig plus kmodlab's
    /// rust-lab fragment. The cache (~/.cache/kmodlab/kernels/rust-VERSION-KEY) is keyed by the
    /// source, the fragment and the tool versions; a second call returns at once. Exit code 2 for
    /// a bad --source, 3 for a missing tool or a failed build (its log's last lines and path are
    /// shown).
    Build {
        /// Build the Rust lab kernel (the only kind kmodlab builds; Debian's come from packages).
        #[arg(long, required = true)]
        rust: bool,
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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Human,
    Ktap,
    Json,
    Junit,
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    // PID 1 of a guest kmodlab booted: the agent (never on the host, nor as PID 1 of a
    // container, whatever the binary is called).
    if kmodlab_agent::is_agent() {
        kmodlab_agent::run();
    }
    // Invoked as a module tool (a link named insmod, modinfo, ...), or as `kmodlab TOOL ...`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = kmodlab_kmod::run(&name, args.clone()) {
        return ExitCode::from(code as u8);
    }
    if name == "dmesg" {
        return ExitCode::from(kmodlab_dmesg::main(args) as u8);
    }
    if let Some(tool) = args.get(1).and_then(|a| a.to_str()) {
        if tool == "dmesg" {
            return ExitCode::from(kmodlab_dmesg::main(args[1..].to_vec()) as u8);
        }
        if kmodlab_kmod::TOOLS.contains(&tool) {
            if let Some(code) = kmodlab_kmod::run(tool, args[1..].to_vec()) {
                return ExitCode::from(code as u8);
            }
        }
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.command {
        Command::Build { dir, kernel } => build(dir, kernel),
        Command::Run {
            json,
            module,
            timeout,
            no_unload,
            kernel,
            start,
            path,
            params,
        } => {
            start.apply();
            run(json, module, timeout, no_unload, kernel, path, params)
        }
        Command::Exec {
            kernel_modules,
            files,
            stop_on,
            json,
            timeout,
            kernel,
            start,
            command,
        } => {
            start.apply();
            exec(
                ExecArgs {
                    kernel_modules,
                    files,
                    stop_on,
                },
                json,
                timeout,
                kernel,
                command,
            )
        }
        Command::Test {
            format,
            jobs,
            verbose,
            kernel,
            start,
            paths,
        } => {
            start.apply();
            test(format, jobs, verbose, kernel, paths)
        }
        Command::New { rust, dir } => new(rust, dir),
        Command::Shell {
            kernel,
            start,
            command,
            attach,
            paths,
        } => {
            start.apply();
            shell(kernel, command, attach, paths)
        }
        Command::Watch {
            kernel,
            start,
            dir,
            params,
        } => {
            start.apply();
            watch(kernel, dir, params)
        }
        Command::Oops {
            json,
            module_dirs,
            vmlinux,
            log,
        } => oops(json, module_dirs, vmlinux, log),
        Command::Kernel { command } => kernel(command),
    };
    ExitCode::from(code)
}

/// A positive number of seconds, for deadlines.
fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) => kmodlab_events::timeout_seconds(v),
        Err(_) => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn fail(e: &LabError) -> u8 {
    eprintln!("kmodlab: {e}");
    e.exit_code() as u8
}

/// The console's last lines after an infrastructure error, escaped (they come from the guest).
fn print_console_tail(lines: &[String]) {
    let mut err = TerminalSafe::new(std::io::stderr().lock());
    for l in lines {
        let _ = writeln!(err, "  | {l}");
    }
}

fn build(dir: PathBuf, k: KernelArgs) -> u8 {
    let lab_kernel = match kmodlab_lab::kernel_kind_for(&dir).and_then(|kind| {
        let mut progress = kmodlab_kernel::StderrProgress::new();
        kmodlab_lab::select_kernel(kind, k.kernel, k.kdir, &mut |e| progress.event(e))
    }) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    eprintln!(
        "kmodlab: building {} for {}",
        dir.display(),
        lab_kernel.release
    );
    match kmodlab_kbuild::build(&dir, &lab_kernel, &mut std::io::stderr()) {
        Ok(kos) => {
            for ko in kos {
                println!("{}", ko.display());
            }
            0
        }
        Err(kmodlab_kbuild::BuildError::Make(s)) => fail(&LabError::Infra(s)),
        Err(kmodlab_kbuild::BuildError::NotModuleDir(s)) => fail(&LabError::Input(s)),
        Err(e) => fail(&LabError::Build(format!("{}: {e}", dir.display()))),
    }
}

/// Progress on stderr while a VM runs: one line per phase, updated in place on a terminal.
struct Progress {
    tty: bool,
}

impl Progress {
    fn event(&self, e: &Event) {
        let msg = match e {
            Event::BootStarted {
                kernel,
                accel,
                run_dir,
            } => {
                format!("booting {kernel} ({accel}), run dir {}", run_dir.display())
            }
            Event::AgentReady { boot_s } => format!("guest ready after {boot_s:.1}s"),
            Event::Started { detail, .. } => {
                // Worth keeping on screen: it says why a run was slower.
                if self.tty {
                    eprintln!("\r\x1b[2Kkmodlab: {detail}");
                } else {
                    eprintln!("kmodlab: {detail}");
                }
                return;
            }
            Event::StepStarted(p) if *p != Phase::Boot => format!("{p}..."),
            Event::ReportFound { kind, title } => {
                format!("{kind}: {}", kmodlab_report::printable(title))
            }
            _ => return,
        };
        if self.tty {
            eprint!("\r\x1b[2Kkmodlab: {msg}");
            if matches!(e, Event::ReportFound { .. }) {
                eprintln!();
            }
        } else {
            eprintln!("kmodlab: {msg}");
        }
    }

    fn done(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}

fn run(
    json: bool,
    module: Option<String>,
    timeout: Duration,
    no_unload: bool,
    k: KernelArgs,
    path: PathBuf,
    params: Vec<String>,
) -> u8 {
    if let Some(bad) = params
        .iter()
        .find(|p| !p.contains('=') || p.starts_with('='))
    {
        eprintln!("kmodlab: parameter {bad:?} is not NAME=VALUE");
        return EXIT_USAGE;
    }
    if !path.exists() {
        return fail(&LabError::Input(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    // The kernel the module needs, and the arguments its spec asks for (detector thresholds).
    let needs = match kmodlab_lab::needs_of(&path) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let mut kernel_progress = kmodlab_kernel::StderrProgress::new();
    let lab = match Lab::for_kind(needs.kernel, k.kernel, k.kdir, &mut |e| {
        kernel_progress.event(e)
    }) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let mut build_log: Box<dyn Write> = if json {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    };
    let module = match lab.prepare(&path, module.as_deref(), &mut build_log) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let deadlines = kmodlab_vm::Deadlines {
        step: timeout,
        ..Default::default()
    };
    let options = RunOptions {
        params,
        read_paths: Vec::new(),
        skip_unload: no_unload,
        deadlines,
    };
    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
    };
    let result = lab.run_with_kernel_args(&module, &options, &needs.kernel_args, &mut |e| {
        progress.event(e)
    });
    progress.done();
    match result {
        Ok(r) => {
            let mut out = std::io::stdout().lock();
            if json {
                let _ = serde_json::to_writer_pretty(&mut out, &r);
                let _ = writeln!(out);
            } else {
                let _ = kmodlab_report::write_human_run(&mut TerminalSafe::new(&mut out), &r);
            }
            if r.verdict == Verdict::Pass {
                0
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("kmodlab: {e}");
            print_console_tail(&e.console_tail);
            EXIT_INFRA
        }
    }
}

/// What `kmodlab exec` puts into the guest and how it runs the commands.
struct ExecArgs {
    kernel_modules: Vec<String>,
    files: Vec<PathBuf>,
    stop_on: Option<String>,
}

fn exec(x: ExecArgs, json: bool, timeout: Duration, k: KernelArgs, words: Vec<String>) -> u8 {
    let commands: Vec<Vec<String>> = words
        .split(|w| w == ";")
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    if commands.is_empty() {
        eprintln!("kmodlab: exec needs a command");
        return EXIT_USAGE;
    }
    let lab = match Lab::new(k.kernel, k.kdir) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let deadlines = kmodlab_vm::Deadlines {
        step: timeout,
        ..Default::default()
    };
    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
    };
    let result = lab.exec(
        &commands,
        &x.kernel_modules,
        &x.files,
        x.stop_on.as_deref(),
        deadlines,
        &mut |e| progress.event(e),
    );
    progress.done();
    let r = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let _ = serde_json::to_writer_pretty(&mut out, &r);
        let _ = writeln!(out);
    } else {
        let mut out = TerminalSafe::new(&mut out);
        for c in &r.commands {
            let _ = writeln!(out, "$ {}", c.argv.join(" "));
            let _ = out.write_all(c.stdout.as_bytes());
            for l in c.stderr.lines() {
                let _ = writeln!(out, "{l}");
            }
            for l in &c.log {
                let _ = writeln!(out, "    kernel: {l}");
            }
            match (&c.error, c.exit_code, &c.signal) {
                (Some(e), _, _) => {
                    let _ = writeln!(out, "[{e}]");
                }
                (None, Some(0), _) => {}
                (None, Some(code), _) => {
                    let _ = writeln!(out, "[exit {code}]");
                }
                (None, None, Some(sig)) => {
                    let _ = writeln!(out, "[killed by {sig}]");
                }
                _ => {}
            }
        }
        for rep in &r.reports {
            let _ = writeln!(
                out,
                "{}: {}",
                serde_json::to_value(rep.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                rep.title
            );
        }
        let _ = writeln!(out, "run dir: {}", r.run_dir.display());
    }
    if r.timed_out || !r.reports.is_empty() {
        EXIT_FAILED
    } else {
        0
    }
}

fn test(format: Format, jobs: usize, verbose: bool, k: KernelArgs, paths: Vec<PathBuf>) -> u8 {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths
    };
    let dirs = match kmodlab_lab::find_specs(&paths) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    if dirs.is_empty() {
        eprintln!(
            "kmodlab: no {} found under {}",
            kmodlab_spec_file(),
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return EXIT_USAGE;
    }
    let specs = match kmodlab_lab::load_specs(&dirs) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut progress = kmodlab_kernel::StderrProgress::new();
    let labs =
        match kmodlab_lab::Labs::for_specs(&specs, k.kernel, k.kdir, &mut |e| progress.event(e)) {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
    for (kind, lab) in labs.ready() {
        let mine: Vec<_> = specs.iter().filter(|s| s.spec.kernel == kind).collect();
        let cases: usize = mine.iter().map(|s| s.spec.cases.len()).sum();
        eprintln!(
            "kmodlab: {} spec{}, {cases} case{} on {} ({}, {}), {} at a time",
            mine.len(),
            if mine.len() == 1 { "" } else { "s" },
            if cases == 1 { "" } else { "s" },
            lab.kernel.release,
            lab.accel.accel.as_str(),
            lab.accel.reason,
            jobs.max(1)
        );
    }
    let human = format == Format::Human;
    let on_done = |o: &kmodlab_report::CaseOutcome| {
        if human {
            let mut out = std::io::stdout().lock();
            let mut out = TerminalSafe::new(&mut out);
            let _ = kmodlab_report::write_human_case(&mut out, o);
            if verbose {
                if let Some(r) = &o.result {
                    let mut buf = Vec::new();
                    let _ = kmodlab_report::write_human_run(&mut buf, r);
                    for line in String::from_utf8_lossy(&buf).lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
        } else {
            eprintln!(
                "kmodlab: {} {} / {}",
                if o.passed() { "ok" } else { "FAIL" },
                o.spec,
                o.case
            );
        }
    };
    let mut build_log = std::io::sink();
    let outcomes = kmodlab_lab::run_specs(&labs, &specs, jobs, &mut build_log, &on_done);
    let mut out = std::io::stdout().lock();
    let _ = match format {
        Format::Human => {
            kmodlab_report::write_human_summary(&mut TerminalSafe::new(&mut out), &outcomes)
        }
        Format::Ktap => kmodlab_report::write_ktap(&mut out, &outcomes),
        Format::Json => kmodlab_report::write_json(&mut out, &outcomes),
        Format::Junit => kmodlab_report::write_junit(&mut out, &outcomes),
    };
    if outcomes.iter().any(|o| o.infra_error) {
        EXIT_INFRA
    } else if outcomes.iter().any(|o| o.input_error) {
        EXIT_USAGE
    } else if outcomes.iter().all(|o| o.passed()) {
        0
    } else {
        EXIT_FAILED
    }
}

fn kernel(command: KernelCommand) -> u8 {
    match command {
        KernelCommand::Build {
            rust: _,
            source,
            jobs,
            json,
        } => kernel_build(source, jobs, json),
        KernelCommand::List { json } => kernel_list(json),
    }
}

fn kernel_build(source: Option<PathBuf>, jobs: Option<usize>, json: bool) -> u8 {
    if jobs == Some(0) {
        eprintln!("kmodlab: -j 0: at least one job is needed");
        return EXIT_USAGE;
    }
    let options = kmodlab_kernel::BuildOptions {
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
            eprintln!(
                "kmodlab: kernel: Rust lab kernel {} from {} ({} in {:.0}s)",
                k.release,
                k.source,
                if built_now { "built" } else { "cached, built" },
                k.build_seconds
            );
            if json {
                print!("{}", k.to_json());
            } else {
                println!("{}", k.image.display());
                println!("{}", k.tree.display());
            }
            0
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

fn kernel_list(json: bool) -> u8 {
    let kernels = kmodlab_kernel::list(std::path::Path::new("/"), &kmodlab_lab::cache_dir());
    let mut out = std::io::stdout().lock();
    if json {
        let _ = serde_json::to_writer_pretty(&mut out, &kernels);
        let _ = writeln!(out);
        return 0;
    }
    let rows: Vec<[String; 5]> = kernels
        .iter()
        .map(|k| {
            [
                k.kind.to_string(),
                k.release.clone().unwrap_or_else(|| "-".into()),
                k.state.to_string(),
                k.source.clone().unwrap_or_else(|| "-".into()),
                k.tree.display().to_string(),
            ]
        })
        .collect();
    let header = ["KIND", "RELEASE", "STATE", "SOURCE", "TREE"].map(String::from);
    let mut widths = [0usize; 5];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    0
}

fn watch(k: KernelArgs, dir: PathBuf, params: Vec<String>) -> u8 {
    let watcher = match kmodlab_sys::DirWatch::new(&dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("kmodlab: {}: cannot watch: {e}", dir.display());
            return EXIT_USAGE;
        }
    };
    loop {
        let code = if dir.join(kmodlab_spec_file()).is_file() {
            test(Format::Human, 1, true, k.clone(), vec![dir.clone()])
        } else {
            run(
                false,
                None,
                Duration::from_secs(30),
                false,
                k.clone(),
                dir.clone(),
                params.clone(),
            )
        };
        eprintln!(
            "kmodlab: watching {} for changes (exit {code} above; Ctrl-C ends)",
            dir.display()
        );
        // Wait for a source change, then let an editor's burst of writes settle.
        let mut changed: Vec<String> = Vec::new();
        while changed.is_empty() {
            match watcher.wait(None) {
                Ok(names) => changed.extend(
                    names
                        .into_iter()
                        .filter(|n| kmodlab_lab::shell::is_source(n)),
                ),
                Err(e) => {
                    eprintln!("kmodlab: {}: {e}", dir.display());
                    return EXIT_INFRA;
                }
            }
        }
        while let Ok(more) = watcher.wait(Some(Duration::from_millis(150))) {
            if more.is_empty() {
                break;
            }
            changed.extend(
                more.into_iter()
                    .filter(|n| kmodlab_lab::shell::is_source(n)),
            );
        }
        changed.sort();
        changed.dedup();
        println!("== {} changed: rebuilding", changed.join(", "));
    }
}

fn shell(k: KernelArgs, command: Option<String>, attach: bool, paths: Vec<PathBuf>) -> u8 {
    use kmodlab_lab::shell::{self as sh, Item};
    // Before any thread starts: the signals are the shell's to handle.
    let signals = match kmodlab_sys::tty::Signals::block(&sh::SIGNALS) {
        Ok(s) => s,
        Err(e) => return fail(&LabError::Infra(format!("cannot handle signals: {e}"))),
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kmodlab_sys::tty::restore_terminal();
        default_hook(info);
    }));
    if attach {
        return match sh::attach(&kmodlab_lab::runs_dir(), signals) {
            Ok(code) => code.clamp(0, 255) as u8,
            Err(e) => fail(&e),
        };
    }
    let link = kmodlab_vm::shell::HostLink::new();
    sh::handle_signals(signals, link.clone());
    let mut items = Vec::new();
    let mut kind = None;
    for p in paths {
        if p.is_dir() {
            items.push(Item::Dir(p.clone()));
        } else if p.is_file() {
            items.push(Item::Ko(p.clone()));
        } else {
            return fail(&LabError::Input(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
        let k = match kmodlab_lab::kernel_kind_for(&p) {
            Ok(k) => k,
            Err(e) => return fail(&e),
        };
        if kind.is_some_and(|prev| prev != k) {
            return fail(&LabError::Input(format!(
                "{}: C and Rust modules need different kernels: open one shell for each",
                p.display()
            )));
        }
        kind = Some(k);
    }
    let mut progress = kmodlab_kernel::StderrProgress::new();
    let lab = match Lab::for_kind(
        kind.unwrap_or(kmodlab_lab::KernelKind::Debian),
        k.kernel,
        k.kdir,
        &mut |e| progress.event(e),
    ) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let mut sink = |e: &Event| match e {
        Event::BootStarted { kernel, accel, .. } => {
            eprint!("kmodlab: booting {kernel} ({accel})\r\n")
        }
        Event::Started { detail, .. } => eprint!("kmodlab: {detail}\r\n"),
        _ => {}
    };
    let options = sh::ShellOptions { items, command };
    match sh::run(&lab, options, link, &mut sink) {
        Ok(code) => code.clamp(0, 255) as u8,
        Err(e) => fail(&e),
    }
}

fn kmodlab_spec_file() -> &'static str {
    "kmodlab.toml"
}

fn oops(
    json: bool,
    module_dirs: Vec<PathBuf>,
    vmlinux: Option<PathBuf>,
    log: Option<PathBuf>,
) -> u8 {
    let (name, bytes) = match log.filter(|p| p.as_os_str() != "-") {
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
        module_dirs,
        module_files: Vec::new(),
        vmlinux,
    };
    let reports = match kmodlab_lab::analyze_log(&text, &options) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "reports": reports }))
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        kmodlab_report::write_crash_reports(&mut TerminalSafe::new(&mut out), &reports)
    };
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("kmodlab: writing the reports of {name}: {e}");
        }
    }
    if reports.is_empty() {
        0
    } else {
        EXIT_FAILED
    }
}

fn new(rust: bool, dir: PathBuf) -> u8 {
    let language = if rust {
        kmodlab_scaffold::Language::Rust
    } else {
        kmodlab_scaffold::Language::C
    };
    match kmodlab_scaffold::create(&dir, language) {
        Ok(files) => {
            for f in &files {
                println!("{}", f.display());
            }
            eprintln!(
                "kmodlab: made {}; next: kmodlab test {}",
                dir.display(),
                dir.display()
            );
            0
        }
        Err(e) => fail(&LabError::Input(e.to_string())),
    }
}
