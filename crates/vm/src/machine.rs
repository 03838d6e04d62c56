//! One QEMU process: its console, its agent channel, its exit; every wait has a deadline.

use crate::qemu::{self, Accel};
use kmodlab_proto::{Reply, Request};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What to boot.
#[derive(Clone, Debug)]
pub struct VmSpec {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The kernel image (bzImage / vmlinuz).
    pub kernel_image: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line.
    pub cmdline: String,
    /// The accelerator.
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mb: u32,
    /// Where the console log, the agent transcript and the socket go.
    pub run_dir: PathBuf,
    /// Start from a saved state (a file written by a migration) instead of booting: QEMU waits
    /// for `migrate-incoming` (see [`crate::warm`]).
    pub incoming: bool,
}

/// Something that happened in the VM.
#[derive(Debug)]
pub enum VmMessage {
    /// A console line (without the newline).
    Console(String),
    /// The console closed (QEMU is gone).
    ConsoleClosed,
    /// A line from the agent.
    Agent(String),
    /// The agent channel closed.
    AgentClosed,
    /// QEMU exited.
    Exited(ExitStatus),
}

/// Why a wait ended without what was waited for.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// QEMU exited (or the agent channel closed) first.
    Gone(String),
}

enum Internal {
    Msg(VmMessage),
    Connected(UnixStream),
}

/// A running QEMU. Dropping it kills QEMU and reaps it.
pub struct Vm {
    pid: u32,
    rx: Receiver<Internal>,
    agent: Option<UnixStream>,
    transcript: Arc<Mutex<File>>,
    exited: Option<String>,
    console_closed: bool,
    disconnected: bool,
    /// Every console line so far.
    pub console: Vec<String>,
    started: Instant,
    pending_agent: Vec<String>,
    qmp: Receiver<UnixStream>,
    /// Messages taken off the channel while waiting for the agent's connection.
    queued: std::collections::VecDeque<Internal>,
}

fn spawn_reader<R: Read + Send + 'static>(r: R, tx: Sender<Internal>, log: File) {
    std::thread::spawn(move || {
        let mut log = log;
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = log.write_all(&buf);
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(Internal::Msg(VmMessage::Console(line))).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Internal::Msg(VmMessage::ConsoleClosed));
    });
}

impl Vm {
    /// Starts QEMU. The agent socket is listened on before QEMU starts, so QEMU connects to it.
    pub fn start(spec: &VmSpec) -> io::Result<Vm> {
        std::fs::create_dir_all(&spec.run_dir)?;
        let socket = spec.run_dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        let qmp_socket = spec.run_dir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp_socket);
        let qmp_listener = UnixListener::bind(&qmp_socket)?;
        let transcript = Arc::new(Mutex::new(File::create(spec.run_dir.join("agent.log"))?));
        let mut args = qemu::machine_args(spec.accel, spec.memory_mb, 1);
        args.extend(qemu::boot_args(
            &spec.kernel_image,
            Some(&spec.initrd),
            &spec.cmdline,
        ));
        args.extend(qemu::console_args());
        args.extend(qemu::agent_args(&socket, kmodlab_proto::PORT_NAME));
        args.extend(qemu::qmp_args(&qmp_socket));
        if spec.incoming {
            args.extend(qemu::incoming_defer_args());
        }
        std::fs::write(
            spec.run_dir.join("qemu.cmdline"),
            format!("{} {}\n", spec.qemu.display(), shell_join(&args)),
        )?;
        let stderr = File::create(spec.run_dir.join("qemu.stderr"))?;
        let mut cmd = Command::new(&spec.qemu);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        kmodlab_sys::kill_with_parent(&mut cmd);
        let mut child: Child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", spec.qemu.display()),
            )
        })?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let (qmp_tx, qmp_rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = qmp_listener.accept() {
                let _ = qmp_tx.send(stream);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        spawn_reader(
            stdout,
            tx.clone(),
            File::create(spec.run_dir.join("console.log"))?,
        );
        {
            let tx = tx.clone();
            let transcript = transcript.clone();
            std::thread::spawn(move || {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let Ok(writer) = stream.try_clone() else {
                    return;
                };
                if tx.send(Internal::Connected(writer)).is_err() {
                    return;
                }
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut t) = transcript.lock() {
                        let _ = writeln!(t, "guest< {line}");
                    }
                    if tx.send(Internal::Msg(VmMessage::Agent(line))).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Internal::Msg(VmMessage::AgentClosed));
            });
        }
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(Internal::Msg(VmMessage::Exited(status)));
            }
        });
        Ok(Vm {
            pid,
            rx,
            agent: None,
            transcript,
            exited: None,
            console_closed: false,
            disconnected: false,
            console: Vec::new(),
            started: Instant::now(),
            pending_agent: Vec::new(),
            qmp: qmp_rx,
            queued: std::collections::VecDeque::new(),
        })
    }

    /// QEMU's monitor connection (once per VM), in command mode.
    pub fn qmp(&mut self, deadline: Instant) -> io::Result<crate::qmp::Qmp> {
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = self.qmp.recv_timeout(left).map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "QEMU did not connect its monitor")
        })?;
        crate::qmp::Qmp::new(stream, deadline)
    }

    /// Seconds since QEMU started.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// QEMU's exit status as text, once it has exited.
    pub fn exit_status(&self) -> Option<&str> {
        self.exited.as_deref()
    }

    /// The next message, or `None` when the deadline passed.
    fn next(&mut self, deadline: Instant) -> Option<VmMessage> {
        loop {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            let next = match self.queued.pop_front() {
                Some(m) => Ok(m),
                None => self.rx.recv_timeout(left),
            };
            match next {
                Ok(Internal::Connected(s)) => self.agent = Some(s),
                Ok(Internal::Msg(m)) => {
                    match &m {
                        VmMessage::Console(line) => self.console.push(line.clone()),
                        VmMessage::ConsoleClosed => self.console_closed = true,
                        VmMessage::Exited(status) => self.exited = Some(describe(status)),
                        _ => {}
                    }
                    return Some(m);
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.disconnected = true;
                    if self.exited.is_none() {
                        self.exited = Some("gone".into());
                    }
                    return None;
                }
            }
        }
    }

    /// Waits for the agent's next reply, passing console lines to `on_console` as they arrive.
    pub fn wait_reply(
        &mut self,
        deadline: Instant,
        on_console: &mut dyn FnMut(&str),
    ) -> Result<Reply, WaitError> {
        if !self.pending_agent.is_empty() {
            let line = self.pending_agent.remove(0);
            return kmodlab_proto::decode(&line)
                .map_err(|e| WaitError::Gone(format!("bad reply from the agent: {e}")));
        }
        loop {
            if self.exited.is_some() {
                return Err(WaitError::Gone(format!(
                    "QEMU exited ({})",
                    self.exited.clone().unwrap_or_default()
                )));
            }
            match self.next(deadline) {
                None if self.exited.is_some() => continue,
                None if self.disconnected => return Err(WaitError::Gone("QEMU is gone".into())),
                None => return Err(WaitError::Timeout),
                Some(VmMessage::Console(line)) => on_console(&line),
                Some(VmMessage::Agent(line)) => {
                    return kmodlab_proto::decode(&line)
                        .map_err(|e| WaitError::Gone(format!("bad reply from the agent: {e}")));
                }
                Some(VmMessage::AgentClosed) => {
                    // QEMU closes the channel as it exits: wait for the exit itself.
                    continue;
                }
                Some(VmMessage::ConsoleClosed) | Some(VmMessage::Exited(_)) => continue,
            }
        }
    }

    /// Sends a request to the agent (waiting, at most a few seconds, for QEMU to connect the
    /// agent channel: a restored guest gets a request before it has said anything).
    pub fn send(&mut self, request: &Request) -> io::Result<()> {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while self.agent.is_none() && self.exited.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Internal::Connected(s)) => self.agent = Some(s),
                Ok(other) => self.queued.push_back(other),
                Err(_) => break,
            }
        }
        let line = kmodlab_proto::encode(request);
        if let Ok(mut t) = self.transcript.lock() {
            let _ = write!(t, "host> {line}");
        }
        match self.agent.as_mut() {
            Some(s) => s.write_all(line.as_bytes()),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "agent not connected",
            )),
        }
    }

    /// Waits until QEMU has exited and its console is drained, or the deadline passes.
    pub fn wait_exit(&mut self, deadline: Instant, on_console: &mut dyn FnMut(&str)) -> bool {
        while !(self.exited.is_some() && self.console_closed) {
            match self.next(deadline) {
                None => return self.disconnected,
                Some(VmMessage::Console(line)) => on_console(&line),
                Some(VmMessage::Agent(line)) => self.pending_agent.push(line),
                Some(_) => {}
            }
        }
        true
    }

    /// Kills QEMU and drains what it printed. Safe to call more than once.
    pub fn kill(&mut self, on_console: &mut dyn FnMut(&str)) {
        if self.exited.is_none() {
            kmodlab_sys::kill(self.pid);
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        self.wait_exit(deadline, on_console);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill(&mut |_| {});
    }
}

fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by {}", kmodlab_sys::signal_name(s)),
        _ => "unknown".into(),
    }
}

fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(|c: char| c.is_whitespace() || c == '"') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a process still runs with `needle` in its command line (for tests and checks).
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.is_empty() {
                out.push(pid);
            }
        }
    }
    out
}

/// The path of the agent socket inside a run directory.
pub fn agent_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("agent.sock")
}
