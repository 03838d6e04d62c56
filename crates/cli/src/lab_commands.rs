//! The commands that boot guests: run, exec, test, watch, shell, gdb.

use crate::{exit, fail, print, print_console_tail, written, KernelChoice};
use kmodlab_events::{Event, Verdict};
use kmodlab_lab::{Lab, LabError, RunOptions};
use kmodlab_report::{Progress, TerminalSafe};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `kmodlab run`.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// Print the JSON contract instead of text.
    pub json: bool,
    /// The module, when the directory builds several.
    pub module: Option<String>,
    /// Per-phase deadline.
    pub timeout: Duration,
    /// Leave the module loaded.
    pub no_unload: bool,
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold instead of restoring the saved state.
    pub cold: bool,
    /// Module directory or .ko.
    pub path: PathBuf,
    /// `NAME=VALUE` parameters.
    pub params: Vec<String>,
}

/// `NAME=VALUE` parameters and an existing module path, or the exit code of the error (said).
fn check_module_args(params: &[String], path: &Path) -> Result<(), u8> {
    if let Some(bad) = params
        .iter()
        .find(|p| !p.contains('=') || p.starts_with('='))
    {
        eprintln!("kmodlab: parameter {bad:?} is not NAME=VALUE");
        return Err(exit::USAGE);
    }
    if !path.exists() {
        return Err(fail(&LabError::Input(format!(
            "{}: no such file or directory",
            path.display()
        ))));
    }
    Ok(())
}

/// The lab for the module at `path`: the kernel it needs (its spec's, or the one chosen), and
/// the arguments its spec asks for (detector thresholds); or the exit code of the error (said).
fn lab_for(path: &Path, kernel: KernelChoice, cold: bool) -> Result<(Lab, kmodlab_lab::Needs), u8> {
    let needs = kmodlab_lab::needs_of(path).map_err(|e| fail(&e))?;
    let kind = kernel.kind(needs.kernel);
    let mut kernel_progress = kmodlab_kernel::StderrProgress::new();
    let mut lab = Lab::for_kind(kind, kernel.kernel, kernel.kdir, &mut |e| {
        kernel_progress.event(e)
    })
    .map_err(|e| fail(&e))?;
    lab.cold |= cold;
    Ok((lab, needs))
}

/// Builds (a directory), boots, loads with the parameters, unloads; prints the run.
pub fn run(a: RunArgs) -> u8 {
    if let Err(code) = check_module_args(&a.params, &a.path) {
        return code;
    }
    let (lab, needs) = match lab_for(&a.path, a.kernel, a.cold) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut build_log: Box<dyn Write + Send> = if a.json {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    };
    let options = RunOptions {
        params: a.params,
        read_paths: Vec::new(),
        before: Vec::new(),
        loaded_commands: Vec::new(),
        skip_unload: a.no_unload,
        observe_load: Default::default(),
        observe_unload: Default::default(),
        deadlines: kmodlab_vm::Deadlines {
            step: a.timeout,
            ..Default::default()
        },
    };
    let progress = Progress::stderr();
    // A module directory is built while the guest starts; a .ko is read first.
    let result = if a.path.is_dir() {
        match lab.build_and_run(
            &a.path,
            a.module.as_deref(),
            &options,
            &needs.kernel_args,
            &mut build_log,
            &mut |e| progress.event(e),
        ) {
            Ok(Err(e)) => {
                progress.done();
                return fail(&e);
            }
            Ok(Ok(r)) => Ok(r),
            Err(e) => Err(e),
        }
    } else {
        let module = match lab.prepare(&a.path, a.module.as_deref(), &mut build_log) {
            Ok(m) => m,
            Err(e) => return fail(&e),
        };
        lab.run_with_kernel_args(&module, &options, &needs.kernel_args, &mut |e| {
            progress.event(e)
        })
    };
    progress.done();
    match result {
        Ok(r) => {
            let code = if r.verdict == Verdict::Pass {
                exit::OK
            } else {
                exit::FAILED
            };
            let human =
                |w: &mut dyn Write| kmodlab_report::write_human_run(&mut TerminalSafe::new(w), &r);
            print(a.json, &r, human, "the run", code)
        }
        Err(e) => {
            eprintln!("kmodlab: {e}");
            print_console_tail(&e.console_tail);
            exit::INFRA
        }
    }
}

/// `kmodlab exec`.
#[derive(Clone, Debug)]
pub struct ExecArgs {
    /// Modules of the kernel's tree to put into the guest.
    pub kernel_modules: Vec<String>,
    /// Host files to put under /files.
    pub files: Vec<PathBuf>,
    /// Stop a command once its output contains this.
    pub stop_on: Option<String>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Deadline of each command.
    pub timeout: Duration,
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold.
    pub cold: bool,
    /// The commands' words, commands separated by `;`.
    pub words: Vec<String>,
}

/// Boots a guest and runs commands in it.
pub fn exec(a: ExecArgs) -> u8 {
    let commands: Vec<Vec<String>> = a
        .words
        .split(|w| w == ";")
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    if commands.is_empty() {
        eprintln!("kmodlab: exec needs a command");
        return exit::USAGE;
    }
    let mut kernel_progress = kmodlab_kernel::StderrProgress::new();
    let lab = match a.kernel.lab_kernel {
        Some(kind) => Lab::for_kind(kind, None, None, &mut |e| kernel_progress.event(e)),
        None => Lab::new(a.kernel.kernel, a.kernel.kdir),
    };
    let mut lab = match lab {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    lab.cold |= a.cold;
    let deadlines = kmodlab_vm::Deadlines {
        step: a.timeout,
        ..Default::default()
    };
    let progress = Progress::stderr();
    let result = lab.exec(
        &commands,
        &a.kernel_modules,
        &a.files,
        a.stop_on.as_deref(),
        deadlines,
        &mut |e| progress.event(e),
    );
    progress.done();
    let r = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let code = if r.timed_out || !r.reports.is_empty() {
        exit::FAILED
    } else {
        exit::OK
    };
    let human = |w: &mut dyn Write| kmodlab_report::write_human_exec(&mut TerminalSafe::new(w), &r);
    print(a.json, &r, human, "the commands' results", code)
}

/// `kmodlab test --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Text for people.
    Human,
    /// KTAP version 1.
    Ktap,
    /// The JSON contract.
    Json,
    /// JUnit XML.
    Junit,
}

/// `kmodlab test`.
#[derive(Clone, Debug)]
pub struct TestArgs {
    /// Output format.
    pub format: Format,
    /// VMs at once.
    pub jobs: usize,
    /// Each case's messages and verdict too (human format).
    pub verbose: bool,
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold.
    pub cold: bool,
    /// Where to look for specs (default: `.`).
    pub paths: Vec<PathBuf>,
}

/// Runs every spec found under the paths.
pub fn test(a: TestArgs) -> u8 {
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        a.paths
    };
    let dirs = match kmodlab_lab::find_specs(&paths) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    if dirs.is_empty() {
        eprintln!(
            "kmodlab: no {} found under {}",
            kmodlab_spec::SPEC_FILE,
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return exit::USAGE;
    }
    let mut specs = match kmodlab_lab::load_specs(&dirs) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for s in &mut specs {
        s.spec.kernel = a.kernel.kind(s.spec.kernel);
    }
    let mut progress = kmodlab_kernel::StderrProgress::new();
    let mut labs =
        match kmodlab_lab::Labs::for_specs(&specs, a.kernel.kernel, a.kernel.kdir, &mut |e| {
            progress.event(e)
        }) {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
    if a.cold {
        labs.boot_cold();
    }
    let jobs = a.jobs.max(1);
    for (kind, lab) in labs.ready() {
        let mine: Vec<_> = specs.iter().filter(|s| s.spec.kernel == kind).collect();
        let cases: usize = mine.iter().map(|s| s.spec.cases.len()).sum();
        eprintln!(
            "kmodlab: {} spec{}, {cases} case{} on {} ({}, {}), {jobs} at a time",
            mine.len(),
            if mine.len() == 1 { "" } else { "s" },
            if cases == 1 { "" } else { "s" },
            lab.kernel.release,
            lab.accel.accel.as_str(),
            lab.accel.reason,
        );
    }
    let human = a.format == Format::Human;
    let verbose = a.verbose;
    let on_done = |o: &kmodlab_report::CaseOutcome| {
        if human {
            let mut out = std::io::stdout().lock();
            let mut out = TerminalSafe::new(&mut out);
            let mut block = kmodlab_report::write_human_case(&mut out, o);
            if let (true, Some(r), Ok(())) = (verbose, &o.result, &block) {
                let mut buf = Vec::new();
                let _ = kmodlab_report::write_human_run(&mut buf, r);
                for line in String::from_utf8_lossy(&buf).lines() {
                    block = writeln!(out, "    {line}");
                    if block.is_err() {
                        break;
                    }
                }
            }
        } else {
            progress_line(o);
        }
    };
    let mut build_log = std::io::sink();
    let outcomes = kmodlab_lab::run_specs(&labs, &specs, jobs, &mut build_log, &on_done);
    let code = if outcomes.iter().any(|o| o.infra_error) {
        exit::INFRA
    } else if outcomes.iter().any(|o| o.input_error) {
        exit::USAGE
    } else if outcomes.iter().all(|o| o.passed()) {
        exit::OK
    } else {
        exit::FAILED
    };
    let mut out = std::io::stdout().lock();
    let result = match a.format {
        Format::Human => {
            kmodlab_report::write_human_summary(&mut TerminalSafe::new(&mut out), &outcomes)
        }
        Format::Ktap => kmodlab_report::write_ktap(&mut out, &outcomes),
        Format::Json => kmodlab_report::write_json(&mut out, &outcomes),
        Format::Junit => kmodlab_report::write_junit(&mut out, &outcomes),
    };
    written(result, "the results", code)
}

/// One line on standard error as a case ends: `kmodlab: ok SPEC / CASE` (or `FAIL`).
pub(crate) fn progress_line(o: &kmodlab_report::CaseOutcome) {
    eprintln!(
        "kmodlab: {} {} / {}",
        if o.passed() { "ok" } else { "FAIL" },
        o.spec,
        o.case
    );
}

/// `kmodlab watch`.
#[derive(Clone, Debug)]
pub struct WatchArgs {
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold.
    pub cold: bool,
    /// The module directory.
    pub dir: PathBuf,
    /// Parameters when the directory has no spec.
    pub params: Vec<String>,
}

/// Runs the directory's spec (or loads the module) on every save of its sources.
pub fn watch(a: WatchArgs) -> u8 {
    let watcher = match kmodlab_sys::DirWatch::new(&a.dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("kmodlab: {}: cannot watch: {e}", a.dir.display());
            return exit::USAGE;
        }
    };
    loop {
        let code = if a.dir.join(kmodlab_spec::SPEC_FILE).is_file() {
            test(TestArgs {
                format: Format::Human,
                jobs: 1,
                verbose: true,
                kernel: a.kernel.clone(),
                cold: a.cold,
                paths: vec![a.dir.clone()],
            })
        } else {
            run(RunArgs {
                json: false,
                module: None,
                timeout: Duration::from_secs(30),
                no_unload: false,
                kernel: a.kernel.clone(),
                cold: a.cold,
                path: a.dir.clone(),
                params: a.params.clone(),
            })
        };
        eprintln!(
            "kmodlab: watching {} for changes (exit {code} above; Ctrl-C ends)",
            a.dir.display()
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
                    eprintln!("kmodlab: {}: {e}", a.dir.display());
                    return exit::INFRA;
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
        if writeln!(
            std::io::stdout(),
            "== {} changed: rebuilding",
            changed.join(", ")
        )
        .is_err()
        {
            return code;
        }
    }
}

/// `kmodlab shell`.
#[derive(Clone, Debug)]
pub struct ShellArgs {
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold.
    pub cold: bool,
    /// Commands to run instead of an interactive shell.
    pub command: Option<String>,
    /// Attach to the newest running shell instead.
    pub attach: bool,
    /// Boot with QEMU's gdb stub and say how gdb attaches.
    pub gdb: bool,
    /// Module directories and files.
    pub paths: Vec<PathBuf>,
}

/// A shell in the lab VM (or a second terminal on a running one).
pub fn shell(a: ShellArgs) -> u8 {
    use kmodlab_lab::shell::{self as sh, Item};
    // From now on the signals are the shell's to handle.
    let signals = match kmodlab_sys::tty::Signals::catch(&sh::SIGNALS) {
        Ok(s) => s,
        Err(e) => return fail(&LabError::Infra(format!("cannot handle signals: {e}"))),
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kmodlab_sys::tty::restore_terminal();
        default_hook(info);
    }));
    if a.attach {
        return match sh::attach(&kmodlab_lab::runs_dir(), signals) {
            Ok(code) => code.clamp(0, 255) as u8,
            Err(e) => fail(&e),
        };
    }
    let link = kmodlab_vm::shell::HostLink::new();
    sh::handle_signals(signals, link.clone());
    let mut items = Vec::new();
    let mut kind: Option<(kmodlab_lab::KernelKind, PathBuf)> = None;
    for p in a.paths {
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
            Ok(k) => a.kernel.kind(k),
            Err(e) => return fail(&e),
        };
        if let Some((prev, prev_path)) = kind.as_ref().filter(|(prev, _)| *prev != k) {
            return fail(&LabError::Input(format!(
                "{}: needs the {k} kernel and {} the {prev} kernel: open one shell for each, or \
                 name one kernel for both with --lab-kernel",
                p.display(),
                prev_path.display()
            )));
        }
        kind = Some((k, p));
    }
    let mut progress = kmodlab_kernel::StderrProgress::new();
    let mut lab = match Lab::for_kind(
        kind.map_or(a.kernel.kind(kmodlab_lab::KernelKind::Debian), |(k, _)| k),
        a.kernel.kernel,
        a.kernel.kdir,
        &mut |e| progress.event(e),
    ) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    lab.cold |= a.cold;
    // The terminal may be raw by the time a guest is replaced: lines end in CR LF.
    let mut sink = |e: &Event| match e {
        Event::BootStarted { kernel, accel, .. } => {
            eprint!("kmodlab: starting the guest ({kernel}, {accel})\r\n")
        }
        Event::Started { detail, .. } => eprint!("kmodlab: {detail}\r\n"),
        _ => {}
    };
    let options = sh::ShellOptions {
        items,
        command: a.command,
        gdb: a.gdb,
    };
    match sh::run(&lab, options, link, &mut sink) {
        Ok(code) => code.clamp(0, 255) as u8,
        Err(e) => fail(&e),
    }
}

/// `kmodlab gdb`.
#[derive(Clone, Debug)]
pub struct GdbArgs {
    /// The module, when the directory builds several.
    pub module: Option<String>,
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold instead of restoring the saved state.
    pub cold: bool,
    /// Module directory or .ko.
    pub path: PathBuf,
    /// `NAME=VALUE` parameters.
    pub params: Vec<String>,
    /// The user's arguments to gdb.
    pub gdb_args: Vec<String>,
}

/// Builds (a directory), boots with the gdb stub, and runs gdb on the module's load until gdb
/// ends; returns gdb's exit status.
pub fn gdb(a: GdbArgs) -> u8 {
    if let Err(code) = check_module_args(&a.params, &a.path) {
        return code;
    }
    // Found before anything is built or booted: without gdb there is nothing to do.
    if let Err(e) = kmodlab_lab::debugger::find_gdb() {
        return fail(&e);
    }
    let (lab, needs) = match lab_for(&a.path, a.kernel, a.cold) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let symbols = kmodlab_lab::debugger::kernel_symbols(&lab.kernel.kdir, &lab.kernel.release);
    if let Some(note) = kmodlab_lab::debugger::symbols_note(&symbols, &lab.kernel.release) {
        eprintln!("kmodlab: {note}");
    }
    let module = match lab.prepare(&a.path, a.module.as_deref(), &mut std::io::stderr()) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let link = kmodlab_vm::shell::HostLink::new();
    let gdb_started = match kmodlab_lab::debugger::handle_signals(link.clone()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let options = kmodlab_lab::debugger::GdbOptions {
        params: a.params,
        symbols,
        kernel_args: needs.kernel_args,
        gdb_args: a.gdb_args,
        link,
        gdb_started,
    };
    let plan = match lab.gdb_plan(&module, options) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let run_dir = plan.boot.run_dir.clone();
    let mut sink = |e: &Event| match e {
        Event::BootStarted { kernel, accel, .. } => {
            eprintln!("kmodlab: starting the guest ({kernel}, {accel})")
        }
        Event::Started { detail, .. } => eprintln!("kmodlab: {detail}"),
        Event::Note(text) => eprintln!("kmodlab: {text}"),
        _ => {}
    };
    eprintln!(
        "kmodlab: run dir {} (the kernel console is in its console.log)",
        run_dir.display()
    );
    match kmodlab_vm::gdb::run(&plan, &mut sink) {
        Ok((end, reports)) => {
            for r in &reports {
                eprintln!("kmodlab: the kernel reported: {}", r.title);
            }
            match end {
                kmodlab_vm::gdb::GdbEnd::Exited(code) => code.clamp(0, 255) as u8,
                kmodlab_vm::gdb::GdbEnd::Signal(sig) => (128 + sig).clamp(0, 255) as u8,
            }
        }
        Err(e) => {
            eprintln!("kmodlab: {e}");
            print_console_tail(&e.console_tail);
            exit::INFRA
        }
    }
}
