//! A booted guest: QEMU plus its agent, with the console scanned live for crash reports. The
//! building block of a run ([`crate::session`]) and of command scripts ([`crate::script`]).

use crate::initramfs::{self, GuestModule};
use crate::machine::{ConsoleTail, Vm, VmMessage, VmSpec, WaitError};
use crate::qemu::{self, Accel};
use kmodlab_crash::{CrashReport, Scanner};
use kmodlab_events::{Event, Phase};
use kmodlab_proto::{Reply, Request};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a guest's events go.
pub(crate) type Sink<'s> = &'s mut dyn FnMut(&Event);

/// Why a warm start did not happen, with the event sink back for a cold boot.
pub(crate) type Fallback<'s> = (String, Sink<'s>);

/// The initramfs of `spec`'s agent and transport modules, holding `modules` and `files` too.
pub(crate) fn initramfs_of(
    spec: &BootSpec,
    modules: &[GuestModule],
    files: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    let init = std::fs::read(&spec.agent_binary)
        .map_err(|e| format!("{}: {e}", spec.agent_binary.display()))?;
    initramfs_with(spec, &init, modules, files)
}

/// The initramfs of `spec` with `init` as its agent.
pub(crate) fn initramfs_with(
    spec: &BootSpec,
    init: &[u8],
    modules: &[GuestModule],
    files: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    let boot_modules = match &spec.kernel.modules_dir {
        Some(dir) => initramfs::transport_modules(dir).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let userland = match &spec.userland {
        Some(busybox) => Some(
            initramfs::Userland::from_busybox(busybox)
                .map_err(|e| format!("{}: {e}", busybox.display()))?,
        ),
        None => None,
    };
    Ok(initramfs::build(
        init,
        userland.as_ref(),
        &boot_modules,
        modules,
        files,
    ))
}

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

/// What to boot and what to put in the guest.
#[derive(Clone, Debug)]
pub struct BootSpec {
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
    /// Guest memory in MiB.
    pub memory_mb: u32,
    /// The run directory (created).
    pub run_dir: PathBuf,
    /// QEMU start until the agent is ready.
    pub boot_deadline: Duration,
    /// Modules under test, placed in [`kmodlab_proto::GUEST_MODULE_DIR`].
    pub modules: Vec<GuestModule>,
    /// More files, at absolute guest paths (parent directories are made).
    pub files: Vec<(String, Vec<u8>)>,
    /// Words appended to the kernel command line (after kmodlab's own, so they can override it).
    pub kernel_args: Vec<String>,
    /// Where saved VM states live: start warm from one ([`crate::warm`]). `None`: boot cold.
    pub warm_dir: Option<PathBuf>,
    /// Give QEMU a gdb stub, listening on [`gdb_socket`] in the run directory. It is no part of
    /// the VM's state: a saved state is restored with or without it.
    pub gdb_stub: bool,
}

/// The socket of a guest's gdb stub in its run directory (see [`BootSpec::gdb_stub`]).
pub fn gdb_socket(run_dir: &std::path::Path) -> PathBuf {
    run_dir.join("gdb.sock")
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

/// How a request ended.
#[derive(Debug)]
pub enum Step {
    /// The agent answered.
    Reply(Reply),
    /// The deadline passed.
    Timeout,
    /// QEMU or the agent went away first.
    Gone(String),
    /// The agent channel broke: a malformed message, or the agent itself failed. Nothing the
    /// module did: an infrastructure error.
    Broken(String),
}

/// The most crash reports one run keeps; the rest are counted on the last one.
pub const MAX_REPORTS: usize = 100;

/// A running guest whose agent is ready.
pub struct Guest<'s> {
    pub(crate) vm: Vm,
    console: ConsoleWatch<'s>,
    run_dir: PathBuf,
    /// The guest kernel's release, as the agent read it.
    pub kernel: String,
    /// Whether it was restored from a saved state rather than booted.
    pub warm: bool,
}

/// What every console line goes through: the event consumer and the crash-report scanner.
struct ConsoleWatch<'s> {
    scanner: Scanner,
    reports: Vec<CrashReport>,
    /// Reports found past [`MAX_REPORTS`].
    reports_dropped: usize,
    sink: &'s mut dyn FnMut(&Event),
    /// Console line index from which reports count (after the agent came up).
    count_from: usize,
    lines_seen: usize,
    /// Reports already returned by [`Guest::new_reports`].
    told: usize,
}

impl ConsoleWatch<'_> {
    fn line(&mut self, line: &str) {
        (self.sink)(&Event::KernelLine(line.to_string()));
        self.lines_seen += 1;
        for r in self.scanner.push_line(line) {
            self.found(r);
        }
    }

    fn found(&mut self, r: CrashReport) {
        // Reports from before the agent came up belong to the boot, not to the module.
        if r.lines.0 + 1 < self.count_from {
            return;
        }
        if self.reports.len() >= MAX_REPORTS {
            self.reports_dropped += 1;
            return;
        }
        (self.sink)(&Event::ReportFound {
            kind: r.kind.name().to_string(),
            title: r.title.clone(),
        });
        self.reports.push(r);
    }
}

impl<'s> Guest<'s> {
    /// Starts the guest and waits until the agent is ready: restored from its saved state when
    /// `spec.warm_dir` is set (saving one first when there is none; any failure falls back to a
    /// cold boot, saying why), booted cold otherwise.
    pub fn boot(spec: &BootSpec, sink: &'s mut dyn FnMut(&Event)) -> Result<Guest<'s>, InfraError> {
        let sink = match &spec.warm_dir {
            Some(dir) => match crate::warm::start(spec, dir, sink) {
                Ok(g) => return Ok(g),
                Err((why, sink)) => {
                    sink(&Event::Started {
                        warm: false,
                        detail: format!("warm start failed ({why}); booting cold"),
                    });
                    sink
                }
            },
            None => sink,
        };
        let infra = |message: String| InfraError {
            message,
            run_dir: spec.run_dir.clone(),
            console_tail: Vec::new(),
        };
        std::fs::create_dir_all(&spec.run_dir)
            .map_err(|e| infra(format!("cannot create {}: {e}", spec.run_dir.display())))?;
        let cpio = initramfs_of(spec, &spec.modules, &spec.files).map_err(infra)?;
        let initrd = spec.run_dir.join("initramfs.cpio");
        std::fs::write(&initrd, cpio).map_err(|e| infra(format!("{}: {e}", initrd.display())))?;
        let mut guest = Guest::launch(spec, initrd, false, sink).map_err(|(m, _)| infra(m))?;
        match guest.wait_ready(spec.boot_deadline) {
            Ok(()) => {
                let boot_s = guest.vm.elapsed_s();
                guest.emit(&Event::AgentReady { boot_s });
                Ok(guest)
            }
            Err(failure) => {
                guest.kill();
                Err(guest.infra(failure))
            }
        }
    }

    /// Starts QEMU on `initrd` (or waiting for a saved state, `incoming`); does not wait.
    pub(crate) fn launch(
        spec: &BootSpec,
        initrd: PathBuf,
        incoming: bool,
        sink: Sink<'s>,
    ) -> Result<Guest<'s>, Fallback<'s>> {
        if let Err(e) = std::fs::create_dir_all(&spec.run_dir) {
            return Err((
                format!("cannot create {}: {e}", spec.run_dir.display()),
                sink,
            ));
        }
        let vm_spec = VmSpec {
            qemu: spec.qemu.clone(),
            kernel_image: spec.kernel.image.clone(),
            initrd,
            cmdline: qemu::kernel_cmdline(&spec.kernel_args.join(" ")),
            accel: spec.accel,
            memory_mb: spec.memory_mb,
            run_dir: spec.run_dir.clone(),
            incoming,
            gdb_socket: spec.gdb_stub.then(|| gdb_socket(&spec.run_dir)),
        };
        sink(&Event::BootStarted {
            kernel: spec.kernel.release.clone(),
            accel: spec.accel.as_str().to_string(),
            run_dir: spec.run_dir.clone(),
        });
        let vm = match Vm::start(&vm_spec) {
            Ok(vm) => vm,
            Err(e) => return Err((e.to_string(), sink)),
        };
        let mut guest = Guest {
            vm,
            console: ConsoleWatch {
                scanner: Scanner::new(),
                reports: Vec::new(),
                reports_dropped: 0,
                sink,
                count_from: 0,
                lines_seen: 0,
                told: 0,
            },
            run_dir: spec.run_dir.clone(),
            kernel: String::new(),
            warm: incoming,
        };
        guest.emit(&Event::StepStarted(Phase::Boot));
        Ok(guest)
    }

    /// Waits for the agent's first message after a cold boot.
    pub(crate) fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        match self.wait(deadline) {
            Ok(Reply::Ready { kernel, .. }) => {
                self.kernel = kernel;
                // Reports from before the agent came up belong to the boot, not to the module.
                self.console.count_from = self.console.lines_seen;
                Ok(())
            }
            Ok(Reply::Fatal { message }) => Err(format!("the guest agent failed: {message}")),
            Ok(other) => Err(format!(
                "unexpected first message from the agent: {other:?}"
            )),
            Err(WaitError::Timeout) => Err(format!(
                "the VM did not boot within {within:?} (phase boot)"
            )),
            Err(WaitError::Gone(why)) => Err(format!("the VM did not boot: {why}")),
            Err(WaitError::Malformed(why)) => Err(why),
        }
    }

    /// Kills QEMU and gives the event sink back, with `why` (for a fallback to a cold boot).
    pub(crate) fn abandon(mut self, why: String) -> Fallback<'s> {
        self.kill();
        (why, self.console.sink)
    }

    fn wait(&mut self, deadline: Instant) -> Result<Reply, WaitError> {
        let console = &mut self.console;
        self.vm.wait_reply(deadline, &mut |l| console.line(l))
    }

    /// An infrastructure error with this guest's run directory and console tail.
    pub fn infra(&self, message: String) -> InfraError {
        InfraError {
            message,
            run_dir: self.run_dir.clone(),
            console_tail: self.vm.console.last(30),
        }
    }

    /// Passes an event to the consumer.
    pub fn emit(&mut self, e: &Event) {
        (self.console.sink)(e);
    }

    /// The next message from the VM, console lines scanned for crash reports first (see
    /// [`Guest::new_reports`]); `None` when the deadline passed or QEMU is gone. For loops that
    /// handle the agent's messages themselves (the shell).
    pub fn next_message(&mut self, deadline: Instant) -> Option<VmMessage> {
        let msg = self.vm.next_message(deadline)?;
        if let VmMessage::Console(line) = &msg {
            self.console.line(line);
        }
        Some(msg)
    }

    /// Stops the guest's CPUs (QMP `stop`): it runs again when told to (`cont`, or gdb's
    /// `continue` through the gdb stub).
    pub fn pause(&mut self, within: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + within;
        self.vm
            .monitor(deadline)?
            .execute("stop", serde_json::Value::Null, deadline)
            .map(drop)
    }

    /// Whether the guest's CPUs run (QMP `query-status`): not while gdb or a `stop` holds them.
    pub fn is_running(&mut self, within: Duration) -> std::io::Result<bool> {
        let deadline = Instant::now() + within;
        let status = self.vm.monitor(deadline)?.execute(
            "query-status",
            serde_json::Value::Null,
            deadline,
        )?;
        Ok(status["running"].as_bool().unwrap_or(true))
    }

    /// Sends a request without waiting for its answer; returns its number.
    pub fn send(&mut self, req: &Request, within: Duration) -> std::io::Result<u64> {
        self.vm.send(req, Instant::now() + within)
    }

    /// Crash reports completed since the last call.
    pub fn new_reports(&mut self) -> Vec<CrashReport> {
        let from = self.console.told.min(self.console.reports.len());
        self.console.told = self.console.reports.len();
        self.console.reports[from..].to_vec()
    }

    /// Ends the report being collected, if any, and returns the reports not yet told (for a
    /// guest that is gone: nothing more will come).
    pub fn end_reports(&mut self) -> Vec<CrashReport> {
        for r in self.console.scanner.finish() {
            self.console.found(r);
        }
        self.new_reports()
    }

    /// Every crash report completed so far.
    pub fn reports(&self) -> &[CrashReport] {
        &self.console.reports
    }

    /// Whether QEMU has exited (by itself or killed).
    pub fn has_exited(&self) -> bool {
        self.vm.exit_status().is_some()
    }

    /// Connects `link` to this guest's VM (see [`crate::machine::Vm::connect_host`]).
    pub fn connect_host(&self, link: &crate::shell::HostLink) {
        self.vm.connect_host(link);
    }

    /// The run directory.
    pub fn run_dir(&self) -> &std::path::Path {
        &self.run_dir
    }

    /// Console lines seen so far.
    pub fn lines_seen(&self) -> usize {
        self.console.lines_seen
    }

    /// The newest console lines.
    pub fn console(&self) -> &ConsoleTail {
        &self.vm.console
    }

    /// Whether QEMU exited on its own (rather than being killed by kmodlab), and how.
    pub fn exited_by_itself(&self) -> Option<&str> {
        self.vm
            .exited_by_itself()
            .then(|| self.vm.exit_status())
            .flatten()
    }

    /// Sends a request and waits for its reply, at most `within` for both.
    pub fn request(&mut self, req: &Request, within: Duration) -> Step {
        let deadline = Instant::now() + within;
        if let Err(e) = self.vm.send(req, deadline).map(drop) {
            if e.kind() == std::io::ErrorKind::TimedOut {
                return Step::Timeout;
            }
            if self.vm.exit_status().is_some() {
                return Step::Gone(format!("cannot reach the agent: {e}"));
            }
            // Did QEMU just die? Its exit may not have been read yet.
            let console = &mut self.console;
            self.vm
                .wait_exit(Instant::now() + Duration::from_millis(500), &mut |l| {
                    console.line(l)
                });
            return Step::Gone(format!("cannot reach the agent: {e}"));
        }
        match self.wait(deadline) {
            Ok(Reply::Fatal { message }) => {
                Step::Broken(format!("the guest agent failed: {message}"))
            }
            Ok(r) => Step::Reply(r),
            Err(WaitError::Timeout) => Step::Timeout,
            Err(WaitError::Gone(why)) => Step::Gone(why),
            Err(WaitError::Malformed(why)) => Step::Broken(why),
        }
    }

    /// Asks the agent to power off and waits for QEMU to exit; kills it past `within`.
    /// Returns whether it ended cleanly.
    pub fn power_off(&mut self, within: Duration) -> bool {
        self.emit(&Event::StepStarted(Phase::Shutdown));
        let deadline = Instant::now() + within;
        let _ = self.vm.send(&Request::PowerOff, deadline);
        let console = &mut self.console;
        let clean = self.vm.wait_exit(deadline, &mut |l| console.line(l));
        if !clean {
            self.kill();
        }
        self.emit(&Event::StepFinished {
            phase: Phase::Shutdown,
            ok: clean,
        });
        clean
    }

    /// Kills QEMU and drains its console.
    pub fn kill(&mut self) {
        let console = &mut self.console;
        self.vm.kill(&mut |l| console.line(l));
    }

    /// Kills QEMU and ends the guest with an infrastructure error saying `why` (with the
    /// console's tail): for when the agent channel broke.
    pub fn abort(mut self, why: String) -> InfraError {
        self.kill();
        let e = self.infra(why);
        let _ = self.finish();
        e
    }

    /// Ends the guest (QEMU must have exited: [`Guest::power_off`] or [`Guest::kill`] first) and
    /// returns the crash reports found and the newest console lines.
    pub fn finish(mut self) -> (Vec<CrashReport>, ConsoleTail) {
        for r in self.console.scanner.finish() {
            self.console.found(r);
        }
        let dropped = self.console.reports_dropped;
        if let Some(last) = self.console.reports.last_mut().filter(|_| dropped > 0) {
            last.notes.push(format!(
                "kmodlab keeps the first {MAX_REPORTS} crash reports of a run: {dropped} more \
                 are only in console.log"
            ));
        }
        let status = self.vm.exit_status().unwrap_or("unknown").to_string();
        self.emit(&Event::VmExited { status });
        // The initramfs is large and can be made again; the run directory keeps what explains it.
        let _ = std::fs::remove_file(self.run_dir.join("initramfs.cpio"));
        (
            std::mem::take(&mut self.console.reports),
            std::mem::take(&mut self.vm.console),
        )
    }
}
