//! One run: boot, load with parameters, read files, unload, power off; the verdict from what the
//! agent answered and what the console showed.

use crate::initramfs::{self, GuestModule};
use crate::machine::{Vm, VmSpec, WaitError};
use crate::qemu::{self, Accel};
use kmodlab_crash::{CrashReport, ReportKind, Scanner};
use kmodlab_events::{Event, FileRead, Phase, PhaseResult, RunResult, Verdict};
use kmodlab_proto::{CallStatus, Reply, Request};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The kernel to boot.
#[derive(Clone, Debug)]
pub struct BootKernel {
    /// Kernel release (`uname -r`).
    pub release: String,
    /// The image QEMU boots.
    pub image: PathBuf,
    /// Its module tree (`/lib/modules/RELEASE`), for the agent's transport modules.
    pub modules_dir: Option<PathBuf>,
}

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
    /// The module under test: its name as the kernel knows it.
    pub module_name: String,
    /// The module under test: its uncompressed image.
    pub module_image: Vec<u8>,
    /// Parameters, one `name=value` each.
    pub params: Vec<String>,
    /// Extra paths to read while loaded (the module's /sys/module state is always read).
    pub read_paths: Vec<String>,
    /// Leave the module loaded.
    pub skip_unload: bool,
    /// Deadlines.
    pub deadlines: Deadlines,
    /// The run directory (created).
    pub run_dir: PathBuf,
    /// Guest memory in MiB.
    pub memory_mb: u32,
}

/// The run could not happen: no QEMU, the VM did not boot, ...
#[derive(Debug)]
pub struct InfraError {
    /// One line saying what went wrong.
    pub message: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The last console lines.
    pub console_tail: Vec<String>,
}

impl std::fmt::Display for InfraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (run dir {})", self.message, self.run_dir.display())
    }
}

/// The last `n` lines of a console.
pub fn tail(lines: &[String], n: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(n)..].to_vec()
}

struct Live<'a> {
    scanner: Scanner,
    reports: Vec<CrashReport>,
    sink: &'a mut dyn FnMut(&Event),
    /// Console line index from which reports count (after the agent came up).
    count_from: usize,
    lines_seen: usize,
}

impl Live<'_> {
    fn line(&mut self, line: &str) {
        (self.sink)(&Event::KernelLine(line.to_string()));
        self.lines_seen += 1;
        for r in self.scanner.push_line(line) {
            self.found(r);
        }
    }

    fn found(&mut self, r: CrashReport) {
        if r.lines.0 + 1 < self.count_from {
            return;
        }
        (self.sink)(&Event::ReportFound {
            kind: serde_kind(r.kind),
            title: r.title.clone(),
        });
        self.reports.push(r);
    }

    fn finish(&mut self) {
        for r in self.scanner.finish() {
            self.found(r);
        }
    }
}

fn serde_kind(k: ReportKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// How a phase ended.
enum Step {
    Reply(Reply),
    Timeout,
    Gone(String),
}

fn step(vm: &mut Vm, live: &mut Live, req: &Request, within: Duration) -> Step {
    if let Err(e) = vm.send(req) {
        return Step::Gone(format!("cannot reach the agent: {e}"));
    }
    match vm.wait_reply(Instant::now() + within, &mut |l| live.line(l)) {
        Ok(r) => Step::Reply(r),
        Err(WaitError::Timeout) => Step::Timeout,
        Err(WaitError::Gone(why)) => Step::Gone(why),
    }
}

fn phase_result(status: &CallStatus, log: Vec<String>, unload: bool) -> PhaseResult {
    match *status {
        CallStatus::Ok => PhaseResult {
            ok: true,
            error: None,
            errno: None,
            log,
        },
        CallStatus::Failed { errno } => PhaseResult {
            ok: false,
            error: Some(if unload {
                kmodlab_sys::strerror(errno)
            } else {
                kmodlab_sys::insmod_strerror(errno)
            }),
            errno: kmodlab_sys::errno_name(errno).map(String::from),
            log,
        },
        CallStatus::Killed { signal } => PhaseResult {
            ok: false,
            error: Some(format!("Killed ({})", kmodlab_sys::signal_name(signal))),
            errno: None,
            log,
        },
    }
}

/// Boots a VM and runs one load/check/unload cycle.
pub fn run(plan: &RunPlan, sink: &mut dyn FnMut(&Event)) -> Result<RunResult, InfraError> {
    let started = Instant::now();
    let infra = |message: String, console: &[String]| InfraError {
        message,
        run_dir: plan.run_dir.clone(),
        console_tail: tail(console, 30),
    };
    std::fs::create_dir_all(&plan.run_dir).map_err(|e| {
        infra(
            format!("cannot create {}: {e}", plan.run_dir.display()),
            &[],
        )
    })?;
    let init = std::fs::read(&plan.agent_binary)
        .map_err(|e| infra(format!("{}: {e}", plan.agent_binary.display()), &[]))?;
    let boot_modules = match &plan.kernel.modules_dir {
        Some(dir) => initramfs::transport_modules(dir).map_err(|e| infra(e.to_string(), &[]))?,
        None => Vec::new(),
    };
    let file_name = format!("{}.ko", plan.module_name);
    let module = GuestModule {
        file_name: file_name.clone(),
        image: plan.module_image.clone(),
    };
    let initrd = plan.run_dir.join("initramfs.cpio");
    std::fs::write(&initrd, initramfs::build(&init, &boot_modules, &[module]))
        .map_err(|e| infra(format!("{}: {e}", initrd.display()), &[]))?;

    let spec = VmSpec {
        qemu: plan.qemu.clone(),
        kernel_image: plan.kernel.image.clone(),
        initrd,
        cmdline: qemu::kernel_cmdline(""),
        accel: plan.accel,
        memory_mb: plan.memory_mb,
        run_dir: plan.run_dir.clone(),
    };
    sink(&Event::BootStarted {
        kernel: plan.kernel.release.clone(),
        accel: plan.accel.as_str().to_string(),
        run_dir: plan.run_dir.clone(),
    });
    let mut vm = Vm::start(&spec).map_err(|e| infra(e.to_string(), &[]))?;
    let mut live = Live {
        scanner: Scanner::new(),
        reports: Vec::new(),
        sink,
        count_from: 0,
        lines_seen: 0,
    };

    // Boot until the agent says it is ready.
    (live.sink)(&Event::StepStarted(Phase::Boot));
    let kernel = match vm.wait_reply(Instant::now() + plan.deadlines.boot, &mut |l| live.line(l)) {
        Ok(Reply::Ready { kernel, .. }) => kernel,
        Ok(Reply::Fatal { message }) => {
            vm.kill(&mut |l| live.line(l));
            return Err(infra(
                format!("the guest agent failed: {message}"),
                &vm.console,
            ));
        }
        Ok(other) => {
            vm.kill(&mut |l| live.line(l));
            return Err(infra(
                format!("unexpected first message from the agent: {other:?}"),
                &vm.console,
            ));
        }
        Err(WaitError::Timeout) => {
            vm.kill(&mut |l| live.line(l));
            return Err(infra(
                format!(
                    "the VM did not boot within {:?} (phase boot)",
                    plan.deadlines.boot
                ),
                &vm.console,
            ));
        }
        Err(WaitError::Gone(why)) => {
            vm.kill(&mut |l| live.line(l));
            return Err(infra(format!("the VM did not boot: {why}"), &vm.console));
        }
    };
    live.count_from = live.lines_seen;
    (live.sink)(&Event::AgentReady {
        boot_s: vm.elapsed_s(),
    });

    let mut verdict: Option<Verdict> = None;
    let mut timeout_phase = None;
    let mut load = PhaseResult::default();
    let mut unload = None;
    let mut files = Vec::new();
    let mut vm_gone = false;

    // Load.
    (live.sink)(&Event::StepStarted(Phase::Load));
    let params = kmodlab_proto::param_string(&plan.params);
    let req = Request::Load {
        path: format!("{}/{file_name}", kmodlab_proto::GUEST_MODULE_DIR),
        params,
    };
    let load_from = live.lines_seen;
    match step(&mut vm, &mut live, &req, plan.deadlines.step) {
        Step::Reply(Reply::Call { status, log }) => load = phase_result(&status, log, false),
        Step::Reply(other) => load.error = Some(format!("agent: {other:?}")),
        Step::Timeout => {
            timeout_phase = Some(Phase::Load);
            verdict = Some(Verdict::Timeout);
            load.error = Some("timed out".into());
        }
        Step::Gone(why) => {
            vm_gone = true;
            load.error = Some(why);
        }
    }
    // A phase the agent never answered (a hang, a panic) gets its log from the console instead.
    let mut unanswered: Option<(Phase, usize)> =
        (timeout_phase.is_some() || vm_gone).then_some((Phase::Load, load_from));
    (live.sink)(&Event::StepFinished {
        phase: Phase::Load,
        ok: load.ok,
    });

    if load.ok {
        // Check: the module's /sys/module state and what the spec asks for.
        (live.sink)(&Event::StepStarted(Phase::Check));
        let sys = format!("/sys/module/{}", plan.module_name);
        let params_dir = format!("{sys}/parameters");
        let mut paths = vec![
            format!("{sys}/initstate"),
            format!("{sys}/refcnt"),
            format!("{sys}/taint"),
            params_dir.clone(),
        ];
        for p in &plan.read_paths {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
        let mut ok = false;
        match step(
            &mut vm,
            &mut live,
            &Request::Read { paths },
            plan.deadlines.step,
        ) {
            Step::Reply(Reply::Files { files: got }) => {
                ok = true;
                files = got.into_iter().map(file_read).collect();
                // Parameter values: the parameters directory lists their names.
                let names: Vec<String> = files
                    .iter()
                    .find(|f| f.path == params_dir)
                    .and_then(|f| f.contents.clone())
                    .map(|c| c.lines().map(|n| format!("{params_dir}/{n}")).collect())
                    .unwrap_or_default();
                // The listing itself is only kept when the spec asked for it.
                if !plan.read_paths.contains(&params_dir) {
                    files.retain(|f| f.path != params_dir);
                }
                let names: Vec<String> = names
                    .into_iter()
                    .filter(|p| !files.iter().any(|f| &f.path == p))
                    .collect();
                if !names.is_empty() {
                    if let Step::Reply(Reply::Files { files: more }) = step(
                        &mut vm,
                        &mut live,
                        &Request::Read { paths: names },
                        plan.deadlines.step,
                    ) {
                        files.extend(more.into_iter().map(file_read));
                    }
                }
            }
            Step::Reply(_) => {}
            Step::Timeout => {
                timeout_phase = Some(Phase::Check);
                verdict = Some(Verdict::Timeout);
            }
            Step::Gone(_) => vm_gone = true,
        }
        (live.sink)(&Event::StepFinished {
            phase: Phase::Check,
            ok,
        });

        if !plan.skip_unload && verdict.is_none() && !vm_gone {
            (live.sink)(&Event::StepStarted(Phase::Unload));
            let req = Request::Unload {
                name: plan.module_name.clone(),
            };
            let mut result = PhaseResult::default();
            let unload_from = live.lines_seen;
            match step(&mut vm, &mut live, &req, plan.deadlines.step) {
                Step::Reply(Reply::Call { status, log }) => {
                    result = phase_result(&status, log, true)
                }
                Step::Reply(other) => result.error = Some(format!("agent: {other:?}")),
                Step::Timeout => {
                    timeout_phase = Some(Phase::Unload);
                    verdict = Some(Verdict::Timeout);
                    result.error = Some("timed out".into());
                }
                Step::Gone(why) => {
                    vm_gone = true;
                    result.error = Some(why);
                }
            }
            if timeout_phase.is_some() || vm_gone {
                unanswered = Some((Phase::Unload, unload_from));
            }
            (live.sink)(&Event::StepFinished {
                phase: Phase::Unload,
                ok: result.ok,
            });
            unload = Some(result);
        }
    }

    // Power off (or kill after a timeout), and drain the console to its end.
    if verdict == Some(Verdict::Timeout) || vm_gone {
        vm.kill(&mut |l| live.line(l));
    } else {
        (live.sink)(&Event::StepStarted(Phase::Shutdown));
        let _ = vm.send(&Request::PowerOff);
        let clean = vm.wait_exit(Instant::now() + plan.deadlines.shutdown, &mut |l| {
            live.line(l)
        });
        if !clean {
            vm.kill(&mut |l| live.line(l));
        }
        (live.sink)(&Event::StepFinished {
            phase: Phase::Shutdown,
            ok: clean,
        });
    }
    live.finish();
    if let Some((phase, from)) = unanswered {
        let log: Vec<String> = vm
            .console
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|l| strip_console_prefix(l).to_string())
            .collect();
        match phase {
            Phase::Unload => {
                if let Some(u) = unload.as_mut() {
                    u.log = log;
                }
            }
            _ => load.log = log,
        }
    }
    let status = vm.exit_status().unwrap_or("unknown").to_string();
    (live.sink)(&Event::VmExited { status });

    let verdict = verdict.unwrap_or_else(|| decide(&live.reports, vm_gone, &load, unload.as_ref()));
    let result = RunResult {
        verdict,
        module: plan.module_name.clone(),
        params: plan.params.clone(),
        load,
        unload,
        files,
        reports: live.reports,
        timeout_phase,
        kernel,
        accel: plan.accel.as_str().to_string(),
        run_dir: plan.run_dir.clone(),
        duration_s: started.elapsed().as_secs_f64(),
    };
    // The initramfs is large and can be made again; the run directory keeps what explains the run.
    let _ = std::fs::remove_file(plan.run_dir.join("initramfs.cpio"));
    if let Ok(json) = serde_json::to_string_pretty(&result) {
        let _ = std::fs::write(plan.run_dir.join("result.json"), json + "\n");
    }
    Ok(result)
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

/// The verdict, strongest first: panicked, crashed, load-failed, unload-failed, warned, pass.
pub fn decide(
    reports: &[CrashReport],
    vm_gone: bool,
    load: &PhaseResult,
    unload: Option<&PhaseResult>,
) -> Verdict {
    let has = |k: ReportKind| reports.iter().any(|r| r.kind == k);
    let killed =
        |p: &PhaseResult| !p.ok && p.error.as_deref().is_some_and(|e| e.starts_with("Killed"));
    if vm_gone || has(ReportKind::Panic) {
        Verdict::Panicked
    } else if has(ReportKind::Oops)
        || has(ReportKind::Bug)
        || has(ReportKind::SoftLockup)
        || has(ReportKind::HungTask)
        || killed(load)
        || unload.is_some_and(killed)
    {
        Verdict::Crashed
    } else if !load.ok {
        Verdict::LoadFailed
    } else if unload.is_some_and(|u| !u.ok) {
        Verdict::UnloadFailed
    } else if has(ReportKind::Warning) {
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
    }
}
