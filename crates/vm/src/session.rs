//! One run: boot, load with parameters, read files, unload, power off; the verdict from what the
//! agent answered and what the console showed.

use crate::guest::{BootKernel, BootSpec, Guest, InfraError, Step};
use crate::initramfs::GuestModule;
use crate::qemu::Accel;
use kmodlab_crash::{CrashReport, ReportKind, Severity};
use kmodlab_events::{
    CommandResult, Event, FileRead, Phase, PhaseResult, RunResult, Task, Tasks, Verdict,
};
use kmodlab_proto::{CallStatus, GuestTask, GuestTasks, Observe, Reply, Request};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Per-phase deadlines.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// QEMU start until the agent is ready.
    pub boot: Duration,
    /// Each load, read and unload.
    pub step: Duration,
    /// Power off until QEMU exits.
    pub shutdown: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            boot: Duration::from_secs(60),
            step: Duration::from_secs(30),
            shutdown: Duration::from_secs(10),
        }
    }
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The kernel.
    pub kernel: BootKernel,
    /// The accelerator.
    pub accel: Accel,
    /// The static kmodlab binary that becomes `/init`.
    pub agent_binary: PathBuf,
    /// A static busybox: the guest's shell and everyday commands.
    pub userland: Option<PathBuf>,
    /// The module under test: its name as the kernel knows it.
    pub module_name: String,
    /// The module under test: its uncompressed image.
    pub module_image: Vec<u8>,
    /// Parameters, one `name=value` each.
    pub params: Vec<String>,
    /// Extra paths to read while loaded (the module's /sys/module state is always read).
    pub read_paths: Vec<String>,
    /// Shell command lines run with `sh -c`, in order, before the load (a spec's `before`).
    pub before: Vec<String>,
    /// Shell command lines run with `sh -c`, in order, while the module is loaded, after the
    /// reads (a spec's `loaded.run`).
    pub loaded_commands: Vec<String>,
    /// Leave the module loaded.
    pub skip_unload: bool,
    /// What the agent records around the load (the guest's processes, the loader's memory
    /// areas), for a spec to compare the module's output with.
    pub observe_load: Observe,
    /// The same around the unload.
    pub observe_unload: Observe,
    /// Deadlines.
    pub deadlines: Deadlines,
    /// The run directory (created).
    pub run_dir: PathBuf,
    /// Guest memory in MiB.
    pub memory_mb: u32,
    /// Words appended to the guest kernel's command line.
    pub kernel_args: Vec<String>,
    /// Where saved VM states live (start warm); `None` boots cold.
    pub warm_dir: Option<PathBuf>,
    /// After a successful unload, have kmemleak scan and report the module's leaks (a kernel
    /// with kmemleak).
    pub leak_check: bool,
    /// A module of the kernel's own tree that [`run_while_building`] loads and unloads in a
    /// restored guest while the build still runs (see [`warm_up`]); `None`: no such module.
    pub warm_up: Option<GuestModule>,
}

/// Where [`warm_up`] puts its module in the guest.
const WARM_UP_DIR: &str = "/kmodlab/warm-up";

/// How long each step of [`warm_up`] may take.
const WARM_UP_STEP: Duration = Duration::from_secs(5);

/// Loads and unloads `module` in a restored guest while `building()` says the module under
/// test is still being built. Under TCG, the first run of any guest code pays for its
/// translation: a restored guest's first `finit_module` takes 50-60 ms against 10 ms for the
/// next one. Run on a module of the kernel's own tree, signed and in-tree (no taint, no message,
/// nothing left once unloaded), the load that follows finds the loader's code, in the agent and
/// in the kernel, translated. Each step starts only while the build runs; a load that worked, or
/// did not answer in time, is always undone.
fn warm_up(guest: &mut Guest, module: &GuestModule, building: &dyn Fn() -> bool) {
    let done = |step: Step| {
        matches!(
            step,
            Step::Reply(Reply::Call {
                status: CallStatus::Ok,
                ..
            })
        )
    };
    let path = format!("{WARM_UP_DIR}/{}", module.file_name);
    if !building() {
        return;
    }
    let put = Request::Put {
        path: path.clone(),
        data: kmodlab_proto::base64_encode(&module.image),
    };
    if !done(guest.request(&put, WARM_UP_STEP)) || !building() {
        return;
    }
    let load = Request::Load {
        path,
        params: String::new(),
        observe: Observe::default(),
    };
    // A load that took too long still ends: the unload queued behind it undoes it.
    let loaded = guest.request(&load, WARM_UP_STEP);
    if matches!(loaded, Step::Timeout) || done(loaded) {
        let name = module.file_name.trim_end_matches(".ko").to_string();
        let _ = guest.request(
            &Request::Unload {
                name,
                observe: Observe::default(),
            },
            WARM_UP_STEP,
        );
    }
}

/// The guest's shell, which runs the commands of [`RunPlan::before`] and
/// [`RunPlan::loaded_commands`] (busybox's, from [`RunPlan::userland`]).
pub const GUEST_SHELL: &str = "/bin/sh";

/// Why a series of guest commands stopped before its end, other than a command failing.
enum Halt {
    /// A command missed its deadline.
    Timeout,
    /// QEMU or the agent went away.
    Gone(String),
    /// The agent channel broke (an infrastructure error).
    Broken(String),
}

/// Runs `lines` with `sh -c`, in order, each within `step`, until one fails or has no result;
/// returns the results of those that ran, and why the guest cannot go on, if it cannot.
fn shell_commands(
    guest: &mut Guest,
    lines: &[String],
    step: Duration,
) -> (Vec<CommandResult>, Option<Halt>) {
    let mut done = Vec::new();
    for line in lines {
        let argv = vec![GUEST_SHELL.to_string(), "-c".to_string(), line.clone()];
        let mut r = CommandResult::new(argv.clone());
        let request = Request::Exec {
            argv,
            stop_on: None,
        };
        let halt = match guest.request(&request, step) {
            Step::Reply(reply) => crate::script::record_exec(&mut r, reply)
                .map(|other| Halt::Broken(unexpected("exec", &other))),
            Step::Timeout => {
                r.error = Some(format!("timed out after {:.1} s", step.as_secs_f64()));
                Some(Halt::Timeout)
            }
            Step::Gone(why) => {
                r.error = Some(why.clone());
                Some(Halt::Gone(why))
            }
            Step::Broken(why) => Some(Halt::Broken(why)),
        };
        let ok = r.succeeded();
        done.push(r);
        if halt.is_some() || !ok {
            return (done, halt);
        }
    }
    (done, None)
}

/// The longest a kmemleak scan may take: it depends on the kernel and the guest, not on the
/// module, so a spec's short step deadline does not apply.
const LEAK_SCAN_DEADLINE: Duration = Duration::from_secs(60);

/// A load's or unload's result from the agent's answer.
fn phase_result(
    status: &CallStatus,
    log: Vec<String>,
    unload: bool,
    tasks: Option<GuestTasks>,
    maps: Option<String>,
) -> PhaseResult {
    let tasks = tasks.map(|t| Tasks {
        caller: t.caller,
        before: t.before.into_iter().map(task).collect(),
        after: t.after.into_iter().map(task).collect(),
    });
    let (ok, error, errno) = match *status {
        CallStatus::Ok => (true, None, None),
        CallStatus::Failed { errno } => (
            false,
            Some(if unload {
                kmodlab_sys::strerror(errno)
            } else {
                kmodlab_sys::insmod_strerror(errno)
            }),
            kmodlab_sys::errno_name(errno).map(String::from),
        ),
        CallStatus::Killed { signal } => (
            false,
            Some(format!("Killed ({})", kmodlab_sys::signal_name(signal))),
            None,
        ),
    };
    PhaseResult {
        ok,
        error,
        errno,
        log,
        tasks,
        maps,
    }
}

fn task(t: GuestTask) -> Task {
    Task {
        pid: t.pid,
        ppid: t.ppid,
        comm: t.comm,
        kthread: t.kthread,
        start_time: t.start_time,
    }
}

/// Boots a VM and runs one load/check/unload cycle.
pub fn run(plan: &RunPlan, sink: &mut dyn FnMut(&Event)) -> Result<RunResult, InfraError> {
    let started = Instant::now();
    let spec = boot_spec(plan, true);
    let guest = Guest::boot(&spec, sink)?;
    cycle(guest, plan, started)
}

/// The module a [`run_while_building`] build made.
#[derive(Clone, Debug)]
pub struct BuiltModule {
    /// Its name as the kernel knows it ([`RunPlan::module_name`]).
    pub name: String,
    /// Its uncompressed image ([`RunPlan::module_image`]).
    pub image: Vec<u8>,
    /// Whether the run checks it for leaks ([`RunPlan::leak_check`]).
    pub leak_check: bool,
}

/// [`run`], with the module built by `build` on another thread while the guest starts (the
/// restore of a saved state, or a cold boot, overlaps the compiler). The plan's module fields
/// are taken from what `build` returns. When the build fails, the guest is stopped and the
/// build's error returned (`Ok(Err(..))`); the module reaches the guest over the agent's channel.
pub fn run_while_building<E: Send>(
    plan: &RunPlan,
    build: impl FnOnce() -> Result<BuiltModule, E> + Send,
    sink: &mut dyn FnMut(&Event),
) -> Result<Result<RunResult, E>, InfraError> {
    let started = Instant::now();
    let spec = boot_spec(plan, false);
    std::thread::scope(|scope| {
        let job = scope.spawn(build);
        let mut guest = Guest::boot(&spec, sink);
        if let (Ok(g), Some(module)) = (&mut guest, &plan.warm_up) {
            if g.warm {
                warm_up(g, module, &|| !job.is_finished());
            }
        }
        let built = job
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut guest = guest?;
        let module = match built {
            Ok(m) => m,
            Err(e) => {
                guest.kill();
                let _ = guest.finish();
                return Ok(Err(e));
            }
        };
        let path = format!("{}/{}.ko", kmodlab_proto::GUEST_MODULE_DIR, module.name);
        let put = Request::Put {
            path: path.clone(),
            data: kmodlab_proto::base64_encode(&guest_image(&module.image)),
        };
        match guest.request(&put, plan.deadlines.step.max(Duration::from_secs(20))) {
            Step::Reply(Reply::Call {
                status: CallStatus::Ok,
                ..
            }) => {}
            other => {
                let why = format!("cannot put {path} into the guest: {other:?}");
                return Err(guest.abort(why));
            }
        }
        let plan = RunPlan {
            module_name: module.name,
            module_image: module.image,
            leak_check: module.leak_check,
            ..plan.clone()
        };
        cycle(guest, &plan, started).map(Ok)
    })
}

/// What the guest gets of a module image: the image without its debug information, which the
/// kernel never reads (most of a module built with it, and time on every run to copy into the
/// guest and through `finit_module`). The host keeps the whole image for the crash reports.
fn guest_image(image: &[u8]) -> Vec<u8> {
    kmodlab_modfile::without_debug_info(image).unwrap_or_else(|| image.to_vec())
}

/// What to boot for `plan`, with its module in the initramfs or not.
fn boot_spec(plan: &RunPlan, with_module: bool) -> BootSpec {
    let modules = if with_module {
        vec![GuestModule {
            file_name: format!("{}.ko", plan.module_name),
            image: guest_image(&plan.module_image),
        }]
    } else {
        Vec::new()
    };
    BootSpec {
        qemu: plan.qemu.clone(),
        kernel: plan.kernel.clone(),
        accel: plan.accel,
        agent_binary: plan.agent_binary.clone(),
        userland: plan.userland.clone(),
        memory_mb: plan.memory_mb,
        run_dir: plan.run_dir.clone(),
        boot_deadline: plan.deadlines.boot,
        modules,
        files: Vec::new(),
        kernel_args: plan.kernel_args.clone(),
        warm_dir: plan.warm_dir.clone(),
        gdb_stub: false,
    }
}

/// One load/check/unload cycle of `plan`'s module in a started guest that has it.
fn cycle(mut guest: Guest, plan: &RunPlan, started: Instant) -> Result<RunResult, InfraError> {
    let file_name = format!("{}.ko", plan.module_name);
    let kernel = guest.kernel.clone();
    let start = if guest.warm { "warm" } else { "cold" };

    let mut verdict: Option<Verdict> = None;
    let mut timeout_phase = None;
    let mut load = PhaseResult::default();
    let mut unload = None;
    let mut files = Vec::new();
    let mut before = Vec::new();
    let mut commands = Vec::new();
    // Where the module's sections were while it was loaded (for the leak check).
    let mut sections: Vec<(String, u64)> = Vec::new();
    let mut leaks: Vec<CrashReport> = Vec::new();
    // The phase during which QEMU went away, and its exit status.
    let mut gone: Option<(Phase, String)> = None;

    // The spec's commands before the load (a hang counts as the load phase's).
    let before_from = guest.lines_seen();
    if !plan.before.is_empty() {
        let (done, halt) = shell_commands(&mut guest, &plan.before, plan.deadlines.step);
        before = done;
        match halt {
            None => {}
            Some(Halt::Broken(why)) => return Err(guest.abort(why)),
            Some(Halt::Timeout) => {
                timeout_phase = Some(Phase::Load);
                verdict = Some(Verdict::Timeout);
                load.error = Some("not attempted: a command before the load timed out".into());
            }
            Some(Halt::Gone(why)) => {
                load.error = Some(why.clone());
                gone = Some((Phase::Load, why));
            }
        }
    }
    // A phase the agent never answered (a hang, a panic) gets its log from the console instead.
    let mut unanswered: Option<(Phase, usize)> =
        (timeout_phase.is_some() || gone.is_some()).then_some((Phase::Load, before_from));
    // The same for a command run while loaded: its log comes from the console.
    let mut unanswered_command: Option<usize> = None;

    // Load.
    if unanswered.is_none() {
        guest.emit(&Event::StepStarted(Phase::Load));
        let params = kmodlab_proto::param_string(&plan.params);
        let req = Request::Load {
            path: format!("{}/{file_name}", kmodlab_proto::GUEST_MODULE_DIR),
            params,
            observe: plan.observe_load,
        };
        let load_from = guest.lines_seen();
        match guest.request(&req, plan.deadlines.step) {
            Step::Reply(Reply::Call {
                status,
                log,
                tasks,
                maps,
            }) => load = phase_result(&status, log, false, tasks, maps),
            Step::Reply(other) => return Err(guest.abort(unexpected("load", &other))),
            Step::Timeout => {
                timeout_phase = Some(Phase::Load);
                verdict = Some(Verdict::Timeout);
                load.error = Some("timed out".into());
            }
            Step::Gone(why) => {
                load.error = Some(why.clone());
                gone = Some((Phase::Load, why));
            }
            Step::Broken(why) => return Err(guest.abort(why)),
        }
        if timeout_phase.is_some() || gone.is_some() {
            unanswered = Some((Phase::Load, load_from));
        }
        guest.emit(&Event::StepFinished {
            phase: Phase::Load,
            ok: load.ok,
        });
    }

    if load.ok {
        // Check: the module's /sys/module state and what the spec asks for.
        guest.emit(&Event::StepStarted(Phase::Check));
        let sys = format!("/sys/module/{}", plan.module_name);
        let params_dir = format!("{sys}/parameters");
        let sections_dir = format!("{sys}/sections");
        let mut paths = vec![
            format!("{sys}/initstate"),
            format!("{sys}/refcnt"),
            format!("{sys}/taint"),
            params_dir.clone(),
        ];
        if plan.leak_check {
            paths.push(sections_dir.clone());
        }
        for p in &plan.read_paths {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
        let mut ok = false;
        let mut section_files: Vec<String> = Vec::new();
        let mut step = guest.request(&Request::Read { paths }, plan.deadlines.step);
        if let Step::Reply(Reply::Files { files: got }) = step {
            files = got.into_iter().map(file_read).collect();
            // Parameter values: the parameters directory lists their names.
            let listed = |files: &[FileRead], dir: &str| -> Vec<String> {
                files
                    .iter()
                    .find(|f| f.path == dir)
                    .and_then(|f| f.contents.clone())
                    .map(|c| {
                        c.lines()
                            .filter(|n| *n != "." && *n != "..")
                            .map(|n| format!("{dir}/{n}"))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut names = listed(&files, &params_dir);
            section_files = listed(&files, &sections_dir);
            names.extend(section_files.iter().cloned());
            // The listings themselves are only kept when the spec asked for them.
            files.retain(|f| {
                (f.path != params_dir && f.path != sections_dir)
                    || plan.read_paths.contains(&f.path)
            });
            let names: Vec<String> = names
                .into_iter()
                .filter(|p| !files.iter().any(|f| &f.path == p))
                .collect();
            step = if names.is_empty() {
                Step::Reply(Reply::Files { files: Vec::new() })
            } else {
                guest.request(&Request::Read { paths: names }, plan.deadlines.step)
            };
        }
        match step {
            Step::Reply(Reply::Files { files: more }) => {
                ok = true;
                for f in more {
                    if section_files.contains(&f.path) {
                        let name = f.path.rsplit('/').next().unwrap_or_default();
                        let addr = f.contents.as_deref().and_then(|c| {
                            u64::from_str_radix(c.trim().trim_start_matches("0x"), 16).ok()
                        });
                        if let Some(addr) = addr {
                            sections.push((name.to_string(), addr));
                        }
                        if !plan.read_paths.contains(&f.path) {
                            continue;
                        }
                    }
                    files.push(file_read(f));
                }
            }
            Step::Reply(other) => return Err(guest.abort(unexpected("read", &other))),
            Step::Timeout => {
                timeout_phase = Some(Phase::Check);
                verdict = Some(Verdict::Timeout);
            }
            Step::Gone(why) => gone = Some((Phase::Check, why)),
            Step::Broken(why) => return Err(guest.abort(why)),
        }
        // The spec's commands while loaded, after the reads.
        if ok && !plan.loaded_commands.is_empty() {
            let check_from = guest.lines_seen();
            let (done, halt) =
                shell_commands(&mut guest, &plan.loaded_commands, plan.deadlines.step);
            commands = done;
            ok = commands.iter().all(CommandResult::succeeded);
            if halt.is_some() {
                unanswered_command = Some(check_from);
            }
            match halt {
                None => {}
                Some(Halt::Broken(why)) => return Err(guest.abort(why)),
                Some(Halt::Timeout) => {
                    timeout_phase = Some(Phase::Check);
                    verdict = Some(Verdict::Timeout);
                }
                Some(Halt::Gone(why)) => gone = Some((Phase::Check, why)),
            }
        }
        guest.emit(&Event::StepFinished {
            phase: Phase::Check,
            ok,
        });

        if !plan.skip_unload && verdict.is_none() && gone.is_none() {
            guest.emit(&Event::StepStarted(Phase::Unload));
            let req = Request::Unload {
                name: plan.module_name.clone(),
                observe: plan.observe_unload,
            };
            let mut result = PhaseResult::default();
            let unload_from = guest.lines_seen();
            match guest.request(&req, plan.deadlines.step) {
                Step::Reply(Reply::Call {
                    status,
                    log,
                    tasks,
                    maps,
                }) => result = phase_result(&status, log, true, tasks, maps),
                Step::Reply(other) => return Err(guest.abort(unexpected("unload", &other))),
                Step::Timeout => {
                    timeout_phase = Some(Phase::Unload);
                    verdict = Some(Verdict::Timeout);
                    result.error = Some("timed out".into());
                }
                Step::Gone(why) => {
                    result.error = Some(why.clone());
                    gone = Some((Phase::Unload, why));
                }
                Step::Broken(why) => return Err(guest.abort(why)),
            }
            if timeout_phase.is_some() || gone.is_some() {
                unanswered = Some((Phase::Unload, unload_from));
            }
            guest.emit(&Event::StepFinished {
                phase: Phase::Unload,
                ok: result.ok,
            });
            let unloaded = result.ok && verdict.is_none() && gone.is_none();
            unload = Some(result);
            if unloaded && plan.leak_check {
                guest.emit(&Event::StepStarted(Phase::LeakCheck));
                let mut ok = false;
                match guest.request(&Request::LeakScan, LEAK_SCAN_DEADLINE) {
                    Step::Reply(Reply::Leaks {
                        kmemleak, error, ..
                    }) => {
                        ok = error.is_none();
                        if let Some(text) = kmemleak {
                            leaks = module_leaks(plan, &sections, &text);
                        }
                        if let Some(e) = error {
                            if let Some(u) = unload.as_mut() {
                                u.log.push(format!("[kmodlab: no leak check: {e}]"));
                            }
                        }
                    }
                    Step::Reply(other) => return Err(guest.abort(unexpected("leak scan", &other))),
                    Step::Timeout => {
                        timeout_phase = Some(Phase::LeakCheck);
                        verdict = Some(Verdict::Timeout);
                    }
                    Step::Gone(why) => gone = Some((Phase::LeakCheck, why)),
                    Step::Broken(why) => return Err(guest.abort(why)),
                }
                for r in &leaks {
                    guest.emit(&Event::ReportFound {
                        kind: r.kind.name().to_string(),
                        title: r.title.clone(),
                    });
                }
                guest.emit(&Event::StepFinished {
                    phase: Phase::LeakCheck,
                    ok,
                });
            }
        }
    }

    // Power off (or kill after a timeout), and drain the console to its end.
    if verdict == Some(Verdict::Timeout) || gone.is_some() {
        guest.kill();
    } else {
        guest.power_off(plan.deadlines.shutdown);
    }
    let exit = guest.exited_by_itself().map(String::from);
    let infra = gone
        .as_ref()
        .map(|(phase, _)| guest.infra(qemu_died(&format!("the {phase} phase"), exit.as_deref())));
    let (mut reports, console) = guest.finish();
    reports.append(&mut leaks);
    if let (Some(from), Some(last)) = (unanswered_command, commands.last_mut()) {
        last.log = phase_log_from_console(&console, from);
    }
    if let Some((phase, from)) = unanswered {
        let log = phase_log_from_console(&console, from);
        match phase {
            Phase::Unload => {
                if let Some(u) = unload.as_mut() {
                    u.log = log;
                }
            }
            _ => load.log = log,
        }
    }
    // QEMU going away is the kernel's doing only when the kernel said it panicked.
    let panicked = reports.iter().any(|r| r.kind.severity() == Severity::Panic);
    if let (Some(infra), false) = (infra, panicked) {
        return Err(infra);
    }
    let verdict =
        verdict.unwrap_or_else(|| decide(&reports, gone.is_some(), &load, unload.as_ref()));
    let result = RunResult {
        verdict,
        module: plan.module_name.clone(),
        params: plan.params.clone(),
        load,
        unload,
        files,
        before,
        commands,
        reports,
        timeout_phase,
        kernel,
        accel: plan.accel.as_str().to_string(),
        run_dir: plan.run_dir.clone(),
        duration_s: started.elapsed().as_secs_f64(),
        start: start.to_string(),
    };
    if let Ok(json) = serde_json::to_string_pretty(&result) {
        let _ = std::fs::write(plan.run_dir.join("result.json"), json + "\n");
    }
    Ok(result)
}

/// The most lines a phase's log takes from the console (the newest ones).
pub const PHASE_LOG_LINES: usize = 2000;

/// A phase's log from the console lines from number `from` on: the newest
/// [`PHASE_LOG_LINES`], after a line saying how many earlier ones are only in `console.log`.
fn phase_log_from_console(console: &crate::machine::ConsoleTail, from: usize) -> Vec<String> {
    let (lines, dropped) = console.since(from);
    let skip = lines.len().saturating_sub(PHASE_LOG_LINES);
    let mut log = Vec::with_capacity(lines.len() - skip + 1);
    if dropped + skip > 0 {
        log.push(format!(
            "[kmodlab: {} earlier lines of this phase are only in console.log]",
            dropped + skip
        ));
    }
    log.extend(
        lines[skip..]
            .iter()
            .map(|l| strip_console_prefix(l).to_string()),
    );
    log
}

/// Why a run ended as an infrastructure error when QEMU went away without a kernel panic.
pub(crate) fn qemu_died(during: &str, exit: Option<&str>) -> String {
    match exit {
        Some(status) if status.starts_with("killed") => format!(
            "QEMU died during {during} ({status}), with no kernel panic on the console: \
             something outside the guest ended it"
        ),
        Some(status) => format!(
            "QEMU exited during {during} ({status}) with no kernel panic on the console: the \
             guest reset or powered itself off"
        ),
        None => format!("QEMU went away during {during}, with no kernel panic on the console"),
    }
}

/// The module's leaks in kmemleak's report `text`: objects with an allocation frame in one of
/// the module's `sections` (name, address while loaded), named from the module's image.
fn module_leaks(plan: &RunPlan, sections: &[(String, u64)], text: &str) -> Vec<CrashReport> {
    let path = plan.run_dir.join(format!("{}.ko", plan.module_name));
    let Ok(ko) = kmodlab_symbolize::DebugFile::from_bytes(&path, plan.module_image.clone()) else {
        return Vec::new();
    };
    let resolve = |addr: u64| -> Option<String> {
        sections.iter().find_map(|(name, base)| {
            let size = ko.section_size(name)?;
            let offset = addr.checked_sub(*base).filter(|o| *o < size)?;
            let (function, off, fsize) = ko.symbol_at(name, offset)?;
            Some(format!(
                "{function}+{off:#x}/{fsize:#x} [{}]",
                plan.module_name
            ))
        })
    };
    let reports = kmodlab_crash::kmemleak::module_leaks(text, &resolve);
    if !reports.is_empty() {
        let _ = std::fs::write(plan.run_dir.join("kmemleak.txt"), &reports);
    }
    kmodlab_crash::parse_reports(&reports)
}

fn unexpected(what: &str, reply: &Reply) -> String {
    let text = format!("{reply:?}");
    let cut: String = text.chars().take(200).collect();
    format!("the agent answered the {what} request with {cut}")
}

/// A console line without its `[    1.234567]` timestamp (and caller id), as /dev/kmsg has it.
pub fn strip_console_prefix(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..2 {
        let t = rest.trim_start();
        if let (Some(body), Some(end)) = (t.strip_prefix('['), t.find(']')) {
            let inner = &body[..end - 1];
            let inner = inner.trim();
            let is_stamp = !inner.is_empty()
                && (inner.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    || (inner.len() > 1
                        && (inner.starts_with('T') || inner.starts_with('C'))
                        && inner[1..].bytes().all(|b| b.is_ascii_digit())));
            if is_stamp {
                rest = t[end + 1..].strip_prefix(' ').unwrap_or(&t[end + 1..]);
                continue;
            }
        }
        break;
    }
    rest
}

fn file_read(f: kmodlab_proto::GuestFile) -> FileRead {
    FileRead {
        path: f.path,
        exists: f.exists,
        dir: f.dir,
        contents: f.contents,
        error: f.error,
    }
}

/// The verdict, strongest first: panicked, crashed, load-failed, unload-failed, leaked, warned,
/// pass.
pub fn decide(
    reports: &[CrashReport],
    vm_gone: bool,
    load: &PhaseResult,
    unload: Option<&PhaseResult>,
) -> Verdict {
    let has = |s: Severity| reports.iter().any(|r| r.kind.severity() == s);
    let killed =
        |p: &PhaseResult| !p.ok && p.error.as_deref().is_some_and(|e| e.starts_with("Killed"));
    if vm_gone || has(Severity::Panic) {
        Verdict::Panicked
    } else if has(Severity::Crash) || killed(load) || unload.is_some_and(killed) {
        Verdict::Crashed
    } else if !load.ok {
        Verdict::LoadFailed
    } else if unload.is_some_and(|u| !u.ok) {
        Verdict::UnloadFailed
    } else if reports.iter().any(|r| r.kind == ReportKind::MemoryLeak) {
        Verdict::Leaked
    } else if has(Severity::Warning) {
        Verdict::Warned
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_prefixes_are_stripped() {
        assert_eq!(
            strip_console_prefix("[    4.251596] busy_loop: spinning"),
            "busy_loop: spinning"
        );
        assert_eq!(strip_console_prefix("[    4.25] [  T123] x"), "x");
        assert_eq!(
            strip_console_prefix("[    4.25]  panic+0x344/0x3a0"),
            " panic+0x344/0x3a0"
        );
        assert_eq!(strip_console_prefix("[x] not a stamp"), "[x] not a stamp");
        assert_eq!(strip_console_prefix("no prefix"), "no prefix");
        assert_eq!(strip_console_prefix("["), "[");
    }

    #[test]
    fn verdicts_rank_panic_over_crash_over_failure() {
        let ok = PhaseResult {
            ok: true,
            ..Default::default()
        };
        let failed = PhaseResult {
            ok: false,
            error: Some("No such device".into()),
            ..Default::default()
        };
        let killed = PhaseResult {
            ok: false,
            error: Some("Killed (SIGSEGV)".into()),
            ..Default::default()
        };
        assert_eq!(decide(&[], false, &ok, Some(&ok)), Verdict::Pass);
        assert_eq!(decide(&[], false, &failed, None), Verdict::LoadFailed);
        assert_eq!(
            decide(&[], false, &ok, Some(&failed)),
            Verdict::UnloadFailed
        );
        assert_eq!(decide(&[], false, &killed, None), Verdict::Crashed);
        assert_eq!(decide(&[], true, &killed, None), Verdict::Panicked);
        let leak = kmodlab_crash::parse_reports(
            "BUG: memory leak\nunreferenced object 0xff1 (size 8):\n  backtrace (crc 1):\n    \
             __kmalloc_cache_noprof+0x23b/0x3a0\n    f+0x46/0x80 [m]\n",
        );
        assert_eq!(leak.len(), 1);
        assert_eq!(decide(&leak, false, &ok, Some(&ok)), Verdict::Leaked);
        assert_eq!(
            decide(&leak, false, &ok, Some(&failed)),
            Verdict::UnloadFailed
        );
    }
}
