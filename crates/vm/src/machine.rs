//! One QEMU process: its console, its agent channel, its exit; every wait has a deadline.

use crate::qemu::{self, Accel};
use kmodlab_proto::{Reply, Request};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
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
    /// Where QEMU's gdb stub listens (a Unix socket), if it has one. QEMU then runs in a
    /// process group of its own: a Ctrl-C typed at gdb's prompt is gdb's, not QEMU's.
    pub gdb_socket: Option<PathBuf>,
}

/// The longest console line kept as one line; a longer run of bytes without a newline is cut
/// into lines of this size.
pub const CONSOLE_LINE_MAX: usize = 4096;
/// The most `console.log` keeps of a run's console by default: past it, one line says where it
/// was cut and the rest is still read and scanned, but not written. `KMODLAB_CONSOLE_LIMIT`
/// (bytes) sets another limit.
pub const CONSOLE_LOG_LIMIT: u64 = 16 << 20;

/// The limit of `console.log`: `KMODLAB_CONSOLE_LIMIT` when it is a number, else
/// [`CONSOLE_LOG_LIMIT`].
pub fn console_log_limit() -> u64 {
    std::env::var("KMODLAB_CONSOLE_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CONSOLE_LOG_LIMIT)
}
/// The console lines kept in memory: the newest, up to this many bytes of text.
pub const CONSOLE_TAIL_BYTES: usize = 4 << 20;
/// Messages read from QEMU and not yet taken; past this, the readers wait.
const MESSAGES_QUEUED: usize = 256;
/// The longest message the agent may send; a longer one is a broken channel.
pub const AGENT_LINE_MAX: usize = 16 << 20;

/// Something that happened in the VM.
#[derive(Debug)]
pub enum VmMessage {
    /// A console line (without the newline).
    Console(String),
    /// Console bytes as they came, sent besides the lines while the kernel debugger (kdb)
    /// talks on the console: its prompt and its echo of what is typed end no line.
    ConsoleRaw(Vec<u8>),
    /// The console closed (QEMU is gone).
    ConsoleClosed,
    /// A line from the agent.
    Agent(String),
    /// The agent sent something that is no protocol line (not UTF-8, or too long): quoted.
    AgentGarbage(String),
    /// The agent channel closed.
    AgentClosed,
    /// QEMU exited.
    Exited(ExitStatus),
    /// Something on the host side ([`crate::shell::HostEvent`]) posted through a
    /// [`crate::shell::HostLink`].
    Host(crate::shell::HostEvent),
}

/// Why a wait ended without what was waited for.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// QEMU exited (or the agent channel closed) first.
    Gone(String),
    /// The agent channel carried something that is no answer (an infrastructure error).
    Malformed(String),
}

enum Internal {
    Msg(VmMessage),
    Connected(UnixStream),
}

/// The newest console lines, up to [`CONSOLE_TAIL_BYTES`]; line numbers count every line seen.
#[derive(Debug, Default)]
pub struct ConsoleTail {
    lines: std::collections::VecDeque<String>,
    /// The number of the oldest line kept.
    first: usize,
    bytes: usize,
}

impl ConsoleTail {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > CONSOLE_TAIL_BYTES && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
                self.first += 1;
            }
        }
    }

    /// How many lines were seen.
    pub fn seen(&self) -> usize {
        self.first + self.lines.len()
    }

    /// The lines from number `from` on that are still kept, and how many of them are not.
    pub fn since(&self, from: usize) -> (Vec<String>, usize) {
        let skip = from.saturating_sub(self.first);
        let dropped = self.first.saturating_sub(from);
        (self.lines.iter().skip(skip).cloned().collect(), dropped)
    }

    /// The last `n` lines.
    pub fn last(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }
}

/// The agent transcript (`agent.log`): every message each way, each line stamped with the
/// seconds since QEMU was started, so that a run shows where its time went.
struct Transcript {
    file: Mutex<File>,
    started: Instant,
}

impl Transcript {
    fn create(path: &Path) -> io::Result<Transcript> {
        Ok(Transcript {
            file: Mutex::new(File::create(path)?),
            started: Instant::now(),
        })
    }

    /// Writes `text` (one line, its newline optional) after the time stamp.
    fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock() {
            let t = self.started.elapsed().as_secs_f64();
            let _ = writeln!(f, "[{t:9.4}] {}", text.trim_end_matches('\n'));
        }
    }
}

/// A running QEMU. Dropping it kills QEMU and reaps it.
pub struct Vm {
    pidfd: Option<kmodlab_sys::PidFd>,
    pid: u32,
    rx: Receiver<Internal>,
    agent: Option<UnixStream>,
    transcript: Arc<Transcript>,
    exited: Option<String>,
    killed: bool,
    console_closed: bool,
    disconnected: bool,
    /// The newest console lines.
    pub console: ConsoleTail,
    started: Instant,
    pending_agent: Vec<String>,
    qmp: Receiver<UnixStream>,
    /// The monitor connection, once made ([`Vm::monitor`]).
    monitor: Option<crate::qmp::Qmp>,
    /// Messages taken off the channel while waiting for the agent's connection.
    queued: std::collections::VecDeque<Internal>,
    /// The number of the last request sent.
    last_id: u64,
    /// For [`crate::shell::HostLink`]s.
    host_tx: SyncSender<Internal>,
    /// The agent's and the monitor's sockets (and the gdb stub's) in the run directory, removed
    /// with the VM.
    sockets: Vec<PathBuf>,
    /// QEMU's standard input: the serial port's input.
    serial_in: Option<std::process::ChildStdin>,
    /// kdb runs on the console (see [`spawn_console_reader`]).
    kdb: Arc<AtomicBool>,
}

/// The line kdb prints on the console as it takes over the machine.
pub const KDB_ENTERED: &str = "Entering kdb (";

/// Text from the guest quoted for a message: at most `n` characters, escaped.
fn quote(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(n * 4)]);
    let cut: String = text.chars().take(n).collect();
    let more = if cut.len() < bytes.len() { "..." } else { "" };
    format!("{:?}{more}", cut)
}

/// Reads the console: whole lines to `tx` (a run of more than [`CONSOLE_LINE_MAX`] bytes
/// without a newline is cut into lines), the bytes to `log` up to `limit` bytes
/// ([`CONSOLE_LOG_LIMIT`]).
///
/// From a line saying that kdb was entered (`Entering kdb (...)`) until `raw` is cleared
/// ([`Vm::leave_kdb`]), every byte read is also sent as it came ([`VmMessage::ConsoleRaw`]).
fn spawn_console_reader<R: Read + Send + 'static>(
    r: R,
    tx: SyncSender<Internal>,
    log: File,
    limit: u64,
    raw: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut log = std::io::BufWriter::new(log);
        let mut logged: u64 = 0;
        let mut cut = false;
        let mut r = r;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut line: Vec<u8> = Vec::new();
        let emit = |line: &mut Vec<u8>| {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\n', '\r']).to_string();
            line.clear();
            if text.contains(KDB_ENTERED) {
                raw.store(true, Ordering::SeqCst);
            }
            tx.send(Internal::Msg(VmMessage::Console(text))).is_ok()
        };
        let send_raw = |bytes: &[u8]| {
            !raw.load(Ordering::SeqCst)
                || bytes.is_empty()
                || tx
                    .send(Internal::Msg(VmMessage::ConsoleRaw(bytes.to_vec())))
                    .is_ok()
        };
        'read: loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let bytes = &chunk[..n];
            if !cut {
                let room = limit - logged;
                if (n as u64) <= room {
                    let _ = log.write_all(bytes);
                    logged += n as u64;
                } else {
                    let _ = log.write_all(&bytes[..room as usize]);
                    let _ = write!(
                        log,
                        "\n[kmodlab: console.log cut here, at its limit of {limit} bytes; the \
                         console went on and was still scanned for crash reports]\n"
                    );
                    let _ = log.flush();
                    logged = limit;
                    cut = true;
                }
            }
            let mut rest = bytes;
            while !rest.is_empty() {
                // Up to the newline (which takes no room), or as much as the line has room for.
                let room = CONSOLE_LINE_MAX - line.len();
                let end = rest.iter().position(|&b| b == b'\n').map(|i| i + 1);
                let whole = end.filter(|&e| e <= room + 1);
                let take = whole.unwrap_or(rest.len().min(room));
                line.extend_from_slice(&rest[..take]);
                if !send_raw(&rest[..take]) {
                    break 'read;
                }
                rest = &rest[take..];
                if (whole.is_some() || line.len() >= CONSOLE_LINE_MAX) && !emit(&mut line) {
                    break 'read;
                }
            }
            // Keep the log current for whoever reads it while the VM runs.
            let _ = log.flush();
        }
        if !line.is_empty() {
            emit(&mut line);
        }
        let _ = log.flush();
        let _ = tx.send(Internal::Msg(VmMessage::ConsoleClosed));
    })
}

/// Reads the agent's lines: each must be UTF-8 and at most [`AGENT_LINE_MAX`] bytes; anything
/// else is reported once, quoted, and ends the reading.
fn spawn_agent_reader(
    stream: UnixStream,
    tx: SyncSender<Internal>,
    transcript: Arc<Transcript>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line: Vec<u8> = Vec::new();
        loop {
            line.clear();
            let n = match (&mut reader)
                .take(AGENT_LINE_MAX as u64 + 1)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if n > AGENT_LINE_MAX {
                let why = format!(
                    "a message longer than {AGENT_LINE_MAX} bytes, starting {}",
                    quote(&line, 200)
                );
                let _ = tx.send(Internal::Msg(VmMessage::AgentGarbage(why)));
                return;
            }
            let text = match String::from_utf8(std::mem::take(&mut line)) {
                Ok(t) => t,
                Err(e) => {
                    let bytes = e.into_bytes();
                    let why = format!("a message that is not UTF-8: {}", quote(&bytes, 200));
                    let _ = tx.send(Internal::Msg(VmMessage::AgentGarbage(why)));
                    return;
                }
            };
            let text = text.trim_end_matches(['\n', '\r']).to_string();
            transcript.line(&format!("guest< {text}"));
            if tx.send(Internal::Msg(VmMessage::Agent(text))).is_err() {
                return;
            }
        }
        let _ = tx.send(Internal::Msg(VmMessage::AgentClosed));
    })
}

/// Kills a spawned QEMU unless defused: no QEMU is left when setting up around it fails.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Vm {
    /// Starts QEMU. The agent socket is listened on before QEMU starts, so QEMU connects to it.
    /// Every file of the run directory is made first: nothing can fail once QEMU runs.
    pub fn start(spec: &VmSpec) -> io::Result<Vm> {
        std::fs::create_dir_all(&spec.run_dir)?;
        let socket = spec.run_dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        let qmp_socket = spec.run_dir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp_socket);
        let qmp_listener = UnixListener::bind(&qmp_socket)?;
        let transcript = Arc::new(Transcript::create(&spec.run_dir.join("agent.log"))?);
        let console_log = File::create(spec.run_dir.join("console.log"))?;
        let mut args = qemu::machine_args(spec.accel, spec.memory_mb, 1);
        args.extend(qemu::boot_args(
            &spec.kernel_image,
            Some(&spec.initrd),
            &spec.cmdline,
        ));
        args.extend(qemu::console_args());
        args.extend(qemu::agent_args(&socket, kmodlab_proto::PORT_NAME));
        args.extend(qemu::qmp_args(&qmp_socket));
        if let Some(gdb) = &spec.gdb_socket {
            let _ = std::fs::remove_file(gdb);
            args.extend(qemu::gdb_args(gdb));
        }
        if spec.incoming {
            args.extend(qemu::incoming_defer_args());
        }
        std::fs::write(
            spec.run_dir.join("qemu.cmdline"),
            format!("{} {}\n", spec.qemu.display(), shell_join(&args)),
        )?;
        let stderr = File::create(spec.run_dir.join("qemu.stderr"))?;
        let mut cmd = Command::new(&spec.qemu);
        // Standard input is the serial port's: what kdb reads when it runs.
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        kmodlab_sys::kill_with_parent(&mut cmd);
        if spec.gdb_socket.is_some() {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child: Child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", spec.qemu.display()),
            )
        })?;
        let mut guard = KillOnDrop(Some(child));
        let pid = guard.0.as_ref().map_or(0, Child::id);
        // Before anything can reap it: the pidfd is this QEMU's for good.
        let pidfd = kmodlab_sys::PidFd::open(pid).ok();
        let stdout = guard
            .0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .ok_or_else(|| io::Error::other("QEMU's standard output is not a pipe"))?;
        let serial_in = guard.0.as_mut().and_then(|c| c.stdin.take());
        let kdb = Arc::new(AtomicBool::new(false));
        // Bounded: a guest printing faster than kmodlab can take it waits, instead of filling
        // kmodlab's memory.
        let (tx, rx) = mpsc::sync_channel(MESSAGES_QUEUED);
        let host_tx = tx.clone();
        let (qmp_tx, qmp_rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = qmp_listener.accept() {
                let _ = qmp_tx.send(stream);
            }
        });
        spawn_console_reader(
            stdout,
            tx.clone(),
            console_log,
            console_log_limit(),
            kdb.clone(),
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
                let _ = spawn_agent_reader(stream, tx, transcript);
            });
        }
        let mut child = guard.0.take().expect("spawned above");
        let waiter_transcript = transcript.clone();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                waiter_transcript.line(&format!("kmodlab: QEMU exited ({})", describe(&status)));
                let _ = tx.send(Internal::Msg(VmMessage::Exited(status)));
            }
        });
        Ok(Vm {
            pidfd,
            pid,
            rx,
            agent: None,
            transcript,
            exited: None,
            killed: false,
            console_closed: false,
            disconnected: false,
            console: ConsoleTail::default(),
            started: Instant::now(),
            pending_agent: Vec::new(),
            qmp: qmp_rx,
            monitor: None,
            queued: std::collections::VecDeque::new(),
            last_id: 0,
            host_tx,
            sockets: [Some(socket), Some(qmp_socket), spec.gdb_socket.clone()]
                .into_iter()
                .flatten()
                .collect(),
            serial_in,
            kdb,
        })
    }

    /// Writes to the guest's serial port (what kdb reads while it runs).
    pub fn serial_write(&mut self, data: &[u8]) -> io::Result<()> {
        let w = self
            .serial_in
            .as_mut()
            .ok_or_else(|| io::Error::other("no serial input"))?;
        w.write_all(data)?;
        w.flush()
    }

    /// kdb was left (`go`): console bytes are no longer also sent as they came.
    pub fn leave_kdb(&self) {
        self.kdb.store(false, Ordering::SeqCst);
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// QEMU's monitor connection, in command mode: made on first use (QEMU connects once per
    /// VM), then kept for the VM's life.
    pub fn monitor(&mut self, deadline: Instant) -> io::Result<&mut crate::qmp::Qmp> {
        if self.monitor.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let stream = self.qmp.recv_timeout(left).map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "QEMU did not connect its monitor")
            })?;
            self.monitor = Some(crate::qmp::Qmp::new(stream, deadline)?);
        }
        Ok(self.monitor.as_mut().expect("made above"))
    }

    /// Seconds since QEMU started.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// QEMU's exit status as text, once it has exited.
    pub fn exit_status(&self) -> Option<&str> {
        self.exited.as_deref()
    }

    /// Whether QEMU exited on its own (not killed by kmodlab).
    pub fn exited_by_itself(&self) -> bool {
        self.exited.is_some() && !self.killed
    }

    /// Connects `link` to this VM: what is posted to it from now on (and what waited for a VM)
    /// comes out of [`Vm::next_message`].
    pub fn connect_host(&self, link: &crate::shell::HostLink) {
        let tx = self.host_tx.clone();
        link.connect(Box::new(move |e| {
            tx.send(Internal::Msg(VmMessage::Host(e)))
                .map_err(|mpsc::SendError(back)| match back {
                    Internal::Msg(VmMessage::Host(e)) => e,
                    _ => unreachable!("only host events are sent here"),
                })
        }));
    }

    /// The next message (console lines are also kept in [`Vm::console`]), or `None` when the
    /// deadline passed or QEMU is gone.
    pub fn next_message(&mut self, deadline: Instant) -> Option<VmMessage> {
        self.next(deadline)
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

    /// Takes one agent line: the reply to request `id` (or a message no request asked for, when
    /// `id` is 0), `None` for an answer to an earlier request (late, after its deadline).
    fn take_reply(&mut self, line: &str, id: u64) -> Option<Result<Reply, WaitError>> {
        let envelope = match kmodlab_proto::decode::<kmodlab_proto::Envelope<Reply>>(line) {
            Ok(e) => e,
            Err(e) => {
                return Some(Err(WaitError::Malformed(format!(
                    "the agent sent a malformed message ({e}): {}",
                    quote(line.as_bytes(), 200)
                ))))
            }
        };
        // A fatal error or a refused request may come without a number.
        let unnumbered =
            envelope.id == 0 && matches!(envelope.body, Reply::Fatal { .. } | Reply::Error { .. });
        if envelope.id == id || unnumbered {
            return Some(Ok(envelope.body));
        }
        self.transcript.line(&format!(
            "kmodlab: ignored the late answer to request {} (waiting for {id})",
            envelope.id
        ));
        None
    }

    /// Waits for the agent's reply to the last request sent (or its first message, before any),
    /// passing console lines to `on_console` as they arrive. Late answers to earlier requests
    /// are skipped.
    pub fn wait_reply(
        &mut self,
        deadline: Instant,
        on_console: &mut dyn FnMut(&str),
    ) -> Result<Reply, WaitError> {
        let id = self.last_id;
        while !self.pending_agent.is_empty() {
            let line = self.pending_agent.remove(0);
            if let Some(r) = self.take_reply(&line, id) {
                return r;
            }
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
                    if let Some(r) = self.take_reply(&line, id) {
                        return r;
                    }
                }
                Some(VmMessage::AgentGarbage(why)) => {
                    return Err(WaitError::Malformed(format!("the agent sent {why}")))
                }
                Some(VmMessage::AgentClosed) => {
                    // QEMU closes the channel as it exits: wait for the exit itself.
                    continue;
                }
                Some(
                    VmMessage::ConsoleClosed
                    | VmMessage::ConsoleRaw(_)
                    | VmMessage::Exited(_)
                    | VmMessage::Host(_),
                ) => continue,
            }
        }
    }

    /// Sends a request to the agent, numbered, by `deadline` (waiting, within it, for QEMU to
    /// connect the agent channel: a restored guest gets a request before it has said anything).
    pub fn send(&mut self, request: &Request, deadline: Instant) -> io::Result<u64> {
        while self.agent.is_none() && self.exited.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Internal::Connected(s)) => self.agent = Some(s),
                Ok(other) => self.queued.push_back(other),
                Err(_) => break,
            }
        }
        self.last_id += 1;
        let line = kmodlab_proto::encode(&kmodlab_proto::Envelope {
            id: self.last_id,
            body: request,
        });
        self.transcript.line(&format!("host> {line}"));
        let Some(s) = self.agent.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "agent not connected",
            ));
        };
        // A guest that stops reading must not hold kmodlab up: writes have the deadline too.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no time left to write to the agent",
            ));
        }
        s.set_write_timeout(Some(left))?;
        s.write_all(line.as_bytes()).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                "the guest did not take the request in time",
            ),
            _ => e,
        })?;
        Ok(self.last_id)
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

    /// Kills QEMU (through its pidfd: never another process that reused its PID) and drains
    /// what it printed. Safe to call more than once.
    pub fn kill(&mut self, on_console: &mut dyn FnMut(&str)) {
        if self.exited.is_none() {
            self.killed = true;
            match &self.pidfd {
                Some(fd) => {
                    let _ = fd.kill();
                }
                // A kernel without pidfds (before 5.3): QEMU is not reaped until it has
                // exited, and its exit was not seen yet.
                None => kmodlab_sys::kill(self.pid),
            }
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        self.wait_exit(deadline, on_console);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill(&mut |_| {});
        // The sockets mean nothing once QEMU is gone; the logs beside them stay.
        for socket in &self.sockets {
            let _ = std::fs::remove_file(socket);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(rx: &Receiver<Internal>) -> Vec<VmMessage> {
        rx.try_iter()
            .filter_map(|m| match m {
                Internal::Msg(m) => Some(m),
                Internal::Connected(_) => None,
            })
            .collect()
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kmodlab-machine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A guest printing without newlines cannot make one unbounded line, and the log on disk
    /// stops at its limit, saying where.
    #[test]
    fn after_kdb_takes_over_the_console_bytes_also_come_as_they_are() {
        let d = scratch("console-kdb");
        let input = b"[ 1.0] sysrq: DEBUG\n\nEntering kdb (current=0x1, pid 30) on processor 0 due to Keyboard Entry\n[0]kdb> ps\r\n".to_vec();
        let (tx, rx) = mpsc::sync_channel(1000);
        let log = File::create(d.join("console.log")).unwrap();
        let kdb = Arc::new(AtomicBool::new(false));
        spawn_console_reader(std::io::Cursor::new(input), tx, log, 1000, kdb.clone())
            .join()
            .unwrap();
        assert!(kdb.load(Ordering::SeqCst), "kdb was entered");
        let mut lines = Vec::new();
        let mut raw = Vec::new();
        for m in messages(&rx) {
            match m {
                VmMessage::Console(l) => lines.push(l),
                VmMessage::ConsoleRaw(b) => raw.extend(b),
                _ => {}
            }
        }
        assert_eq!(lines[0], "[ 1.0] sysrq: DEBUG");
        assert!(lines[2].starts_with(KDB_ENTERED));
        assert_eq!(
            lines[3], "[0]kdb> ps",
            "the lines still come, for the crash scanner"
        );
        assert_eq!(
            raw, b"[0]kdb> ps\r\n",
            "what followed the line that entered kdb"
        );
    }

    #[test]
    fn console_lines_and_the_log_are_bounded() {
        let d = scratch("console");
        let mut input = b"first\r\nsecond\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', CONSOLE_LINE_MAX * 2 + 10));
        input.extend(b"\n");
        input.extend(std::iter::repeat_n(b'z', CONSOLE_LINE_MAX));
        input.extend(b"\nlast");
        let (tx, rx) = mpsc::sync_channel(1000);
        let log = File::create(d.join("console.log")).unwrap();
        spawn_console_reader(
            std::io::Cursor::new(input.clone()),
            tx,
            log,
            100,
            Arc::new(AtomicBool::new(false)),
        )
        .join()
        .unwrap();
        let lines: Vec<String> = messages(&rx)
            .into_iter()
            .filter_map(|m| match m {
                VmMessage::Console(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(lines[0], "first");
        assert_eq!(lines[1], "second");
        assert_eq!(lines[2].len(), CONSOLE_LINE_MAX);
        assert_eq!(lines[3].len(), CONSOLE_LINE_MAX);
        assert_eq!(lines[4], "x".repeat(10));
        assert_eq!(
            lines[5],
            "z".repeat(CONSOLE_LINE_MAX),
            "a full line ends at its newline"
        );
        assert_eq!(lines[6], "last");
        assert_eq!(lines.len(), 7);
        let logged = std::fs::read(d.join("console.log")).unwrap();
        assert_eq!(
            logged[..100],
            input[..100],
            "kept up to the limit, byte for byte"
        );
        let tail = String::from_utf8_lossy(&logged[100..]);
        assert!(
            tail.contains("console.log cut here, at its limit of 100 bytes"),
            "{tail}"
        );
        assert!(logged.len() < 300);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_console_tail_keeps_the_newest_lines_and_counts_them_all() {
        let mut t = ConsoleTail::default();
        let line = "y".repeat(1000);
        let n = CONSOLE_TAIL_BYTES / 1000 * 2;
        for _ in 0..n {
            t.push(line.clone());
        }
        t.push("end".into());
        assert_eq!(t.seen(), n + 1);
        assert!(t.bytes <= CONSOLE_TAIL_BYTES);
        let (since, dropped) = t.since(0);
        assert_eq!(since.len() + dropped, n + 1);
        assert!(dropped > 0);
        assert_eq!(since.last().unwrap(), "end");
        let (since, dropped) = t.since(n);
        assert_eq!((since, dropped), (vec!["end".to_string()], 0));
        assert_eq!(t.last(1), vec!["end".to_string()]);
    }

    /// Regression: a line that was not UTF-8 closed the channel silently and the run waited
    /// for its deadline, then said `timeout`.
    #[test]
    fn garbage_on_the_agent_channel_is_reported_quoted() {
        let d = scratch("agent");
        for (input, want) in [
            (
                b"{\"reply\":\"ready\"}\nbad \xff\xfe bytes\n".to_vec(),
                "not UTF-8",
            ),
            (vec![b'a'; AGENT_LINE_MAX + 10], "longer than"),
        ] {
            let (mut host, guest) = UnixStream::pair().unwrap();
            let (tx, rx) = mpsc::sync_channel(1000);
            let transcript = Arc::new(Transcript::create(&d.join("agent.log")).unwrap());
            let reader = spawn_agent_reader(guest, tx, transcript);
            let writer = std::thread::spawn(move || {
                let _ = host.write_all(&input);
            });
            reader.join().unwrap();
            drop(writer);
            let garbage: Vec<String> = messages(&rx)
                .into_iter()
                .filter_map(|m| match m {
                    VmMessage::AgentGarbage(why) => Some(why),
                    _ => None,
                })
                .collect();
            assert_eq!(garbage.len(), 1, "{garbage:?}");
            assert!(garbage[0].contains(want), "{}", garbage[0]);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
