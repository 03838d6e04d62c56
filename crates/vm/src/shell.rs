//! A shell in a lab guest: sessions on the guest's PTYs relayed to the host's terminal (and to
//! second terminals that attach), the kernel console between their output, crash reports
//! summarized as they complete, and a fresh guest when one panics or hangs.
//!
//! The loop owns the guest and reacts to one message at a time: console lines, the agent's
//! messages (session output, replies), and [`HostEvent`]s that the host side (keys, signals,
//! rebuilt modules, attaching terminals) posts through a [`HostLink`]. Everything it shows goes
//! through a [`ShellHost`], which also supplies the files every fresh guest gets and the crash
//! summaries.

use crate::guest::{BootSpec, Guest, InfraError};
use crate::machine::VmMessage;
use kmodlab_crash::{CrashReport, Scanner, Severity};
use kmodlab_events::Event;
use kmodlab_proto::{AttachMessage, Envelope, Reply, Request, TermSize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session number of the terminal kmodlab shell runs in.
pub const LOCAL: u32 = 1;
/// How often the loop looks at the clock when nothing happens.
const TICK: Duration = Duration::from_millis(500);
/// Quiet time after which the agent is asked whether it still answers.
const PING_AFTER: Duration = Duration::from_secs(5);
/// How long the agent may leave that question unanswered before the guest counts as hung.
const HUNG_AFTER: Duration = Duration::from_secs(30);
/// How long a request may take to be written to the guest.
const SEND_WITHIN: Duration = Duration::from_secs(10);
/// How long the loop waits, after the interactive shell was killed by a signal, for the crash
/// report that may explain it (the kernel prints an oops before it kills the task, but its
/// lines may come after the agent's word that the shell ended).
const OOPS_GRACE: Duration = Duration::from_secs(3);
/// Host events kept while no guest runs (during a restart); past it, input is dropped.
const HOST_EVENTS_WAITING: usize = 4096;

/// Something on the host side that the shell loop reacts to.
#[derive(Debug)]
pub enum HostEvent {
    /// Bytes typed in a session's terminal.
    Input {
        /// The session.
        session: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A session's input ended (standard input that is not a terminal reached its end).
    InputClosed {
        /// The session.
        session: u32,
    },
    /// A session's terminal has a new size.
    Resize {
        /// The session.
        session: u32,
        /// Its size.
        size: TermSize,
    },
    /// kmodlab got a signal that ends the session (SIGHUP, SIGTERM, SIGINT).
    Signal(i32),
    /// The sources of watched module directory number N changed.
    Changed(usize),
    /// A second terminal attached (`kmodlab shell --attach`).
    Attach(Attached),
    /// An attached terminal went away.
    Detached(u32),
}

/// An attached terminal: where its session's output goes, and what it asked for.
#[derive(Debug)]
pub struct Attached {
    /// The connection to the attached kmodlab.
    pub stream: UnixStream,
    /// Its `TERM`.
    pub term: String,
    /// Its terminal's size.
    pub size: Option<TermSize>,
}

/// Hands an event to a guest's message queue, or gives it back when the guest is gone.
pub(crate) type Deliver = Box<dyn Fn(HostEvent) -> Result<(), HostEvent> + Send>;

#[derive(Default)]
struct LinkState {
    deliver: Option<Deliver>,
    waiting: VecDeque<HostEvent>,
}

/// Where host-side threads post [`HostEvent`]s: to the running guest's message queue, or, while
/// a guest is being replaced, into a queue that the next guest receives first.
#[derive(Clone, Default)]
pub struct HostLink(Arc<Mutex<LinkState>>);

impl HostLink {
    /// A link connected to nothing yet.
    pub fn new() -> HostLink {
        HostLink::default()
    }

    /// Posts an event (it may wait while the loop is behind: the queue is bounded).
    pub fn post(&self, e: HostEvent) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = match s.deliver.as_ref() {
            Some(d) => match d(e) {
                Ok(()) => return,
                Err(e) => {
                    s.deliver = None;
                    e
                }
            },
            None => e,
        };
        if s.waiting.len() < HOST_EVENTS_WAITING || !matches!(e, HostEvent::Input { .. }) {
            s.waiting.push_back(e);
        }
    }

    /// Delivers to `deliver` from now on, starting with what waited. `deliver` gives an event
    /// back when its guest is gone: it then waits for the next connection.
    pub(crate) fn connect(&self, deliver: Deliver) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(e) = s.waiting.pop_front() {
            if let Err(e) = deliver(e) {
                s.waiting.push_front(e);
                return;
            }
        }
        s.deliver = Some(deliver);
    }

    /// Stops delivering (the guest is going away); events wait for the next [`HostLink::connect`].
    pub(crate) fn disconnect(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).deliver = None;
    }
}

/// What the shell loop needs from the host side.
pub trait ShellHost {
    /// The files every fresh guest gets (the modules under test and their sources), at absolute
    /// guest paths.
    fn files(&mut self) -> Vec<(String, Vec<u8>)>;
    /// Watched module directory number `which` changed: rebuild it, say how it went, and return
    /// the files to put into the guest again.
    fn changed(&mut self, which: usize) -> Vec<(String, Vec<u8>)>;
    /// The one-paragraph summary of a crash report found in the guest whose run directory is
    /// `run_dir`.
    fn summary(&mut self, report: &CrashReport, run_dir: &Path) -> String;
    /// Output of the local session (`stream` 1: terminal or standard output, 2: standard error).
    fn output(&mut self, stream: u8, data: &[u8]);
    /// A kernel console line.
    fn console(&mut self, line: &str);
    /// A line of kmodlab's own.
    fn say(&mut self, text: &str);
}

/// What to run.
pub struct ShellPlan {
    /// The guest (its run directory is the session's; guests that replace a crashed one get
    /// `guest-N/` inside it).
    pub boot: BootSpec,
    /// The directory the shells start in.
    pub cwd: String,
    /// Run this command line instead of an interactive shell.
    pub command: Option<String>,
    /// The local terminal's size; `None`: standard input and output are no terminal.
    pub tty: Option<TermSize>,
    /// The local `TERM`.
    pub term: String,
    /// Where the host side posts its events.
    pub link: HostLink,
    /// `kmodlab shell --gdb`: the guest has QEMU's gdb stub (set in `boot`), and each guest's
    /// start says how to attach gdb to it.
    pub gdb: Option<crate::gdb::AttachPlan>,
}

/// How a shell ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ShellEnd {
    /// The local shell exited with this status (128 + N when killed by signal N).
    Exited(i32),
    /// The guest powered itself off (`poweroff`).
    PoweredOff,
    /// kmodlab got this signal.
    Signal(i32),
    /// The guest panicked or hung while running commands (`-c`): they cannot go on. Says which.
    GuestLost(String),
}

/// The socket an attaching kmodlab connects to, in the session's run directory.
pub fn attach_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("shell.sock")
}

/// Reads an attached terminal's messages and posts them as events of `session`.
pub fn relay_attached(stream: UnixStream, session: u32, link: HostLink) {
    std::thread::spawn(move || {
        for msg in AttachMessage::read_all(BufReader::new(stream)) {
            match msg {
                AttachMessage::Data { data } => {
                    if let Some(data) = kmodlab_proto::base64_decode(&data) {
                        link.post(HostEvent::Input { session, data });
                    }
                }
                AttachMessage::Resize { size } => link.post(HostEvent::Resize { session, size }),
                _ => {}
            }
        }
        link.post(HostEvent::Detached(session));
    });
}

enum Pending {
    Ping,
    Put(String),
    Start(u32),
}

/// A session on another terminal.
struct Remote {
    stream: UnixStream,
    term: String,
    size: Option<TermSize>,
}

/// Why the loop stopped looking at the current guest.
enum Turn {
    /// The shell is over.
    End(ShellEnd),
    /// Replace the guest with a fresh one: it panicked, hung or went away (says which).
    Restart(String),
}

/// Runs the shell until the local session ends; returns how it ended.
pub fn run(
    plan: &ShellPlan,
    host: &mut dyn ShellHost,
    sink: &mut dyn FnMut(&Event),
) -> Result<ShellEnd, InfraError> {
    let mut remotes: HashMap<u32, Remote> = HashMap::new();
    let mut next_session = LOCAL + 1;
    let mut number = 1;
    loop {
        let mut spec = plan.boot.clone();
        if number > 1 {
            spec.run_dir = plan.boot.run_dir.join(format!("guest-{number}"));
        }
        spec.files.extend(host.files());
        let mut guest = Guest::boot(&spec, sink)?;
        guest.connect_host(&plan.link);
        if let Some(gdb) = &plan.gdb {
            match crate::gdb::prepare_attach(&mut guest, gdb) {
                Ok(said) => host.say(&said),
                Err(e) => host.say(&format!("kmodlab: gdb cannot attach: {e}")),
            }
        }
        let mut told = Told::default();
        let turn = drive(
            &mut guest,
            plan,
            host,
            &mut told,
            &mut remotes,
            &mut next_session,
            number,
        );
        plan.link.disconnect();
        guest.kill();
        for r in guest.end_reports() {
            told.tell(&r, host, &spec.run_dir);
        }
        for r in told.log.finish() {
            told.tell(&r, host, &spec.run_dir);
        }
        let _ = guest.finish();
        match turn {
            Ok(Turn::End(end)) => {
                for r in remotes.values_mut() {
                    let _ = AttachMessage::Exit { code: 0 }.write_to(&mut r.stream);
                }
                return Ok(end);
            }
            Ok(Turn::Restart(why)) if plan.command.is_some() => {
                return Ok(ShellEnd::GuestLost(why))
            }
            Ok(Turn::Restart(_)) => {
                number += 1;
                host.say("kmodlab: restoring a fresh guest; the modules are put back in /lab");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Drives one guest: starts the sessions, relays until the shell ends or the guest must be
/// replaced.
fn drive(
    guest: &mut Guest,
    plan: &ShellPlan,
    host: &mut dyn ShellHost,
    told: &mut Told,
    remotes: &mut HashMap<u32, Remote>,
    next_session: &mut u32,
    number: u32,
) -> Result<Turn, InfraError> {
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let start = |guest: &mut Guest,
                 pending: &mut HashMap<u64, Pending>,
                 session: u32,
                 size: Option<TermSize>,
                 term: &str,
                 command: Option<String>|
     -> Result<(), InfraError> {
        let req = Request::Shell {
            session,
            command,
            tty: size,
            cwd: plan.cwd.clone(),
            term: term.to_string(),
        };
        let id = guest
            .send(&req, SEND_WITHIN)
            .map_err(|e| guest.infra(format!("cannot start a shell in the guest: {e}")))?;
        pending.insert(id, Pending::Start(session));
        Ok(())
    };
    start(
        guest,
        &mut pending,
        LOCAL,
        plan.tty,
        &plan.term,
        plan.command.clone(),
    )?;
    for (&session, r) in remotes.iter() {
        start(guest, &mut pending, session, r.size, &r.term, None)?;
    }
    if number > 1 {
        for r in remotes.values_mut() {
            let _ = AttachMessage::Say {
                text: "kmodlab: the guest was replaced by a fresh one".into(),
            }
            .write_to(&mut r.stream);
        }
    }
    // Console lines are shown from here on: the boot's are in console.log.
    let mut last_heard = Instant::now();
    let mut ping: Option<Instant> = None;
    // kdb has the machine: the console shows as it comes, the keys go to the serial port.
    let mut kdb = Kdb::default();
    // The interactive shell was killed by a signal: its exit status, and until when a crash
    // report of a shell's task may still say that an oops killed it.
    let mut killed: Option<(i32, Instant)> = None;
    let mut by_shells = told.by_shells;
    loop {
        if let Some((code, until)) = killed {
            if told.by_shells > by_shells {
                killed = None;
                by_shells = told.by_shells;
                host.say(
                    "kmodlab: the oops killed the shell; a new shell starts in the same guest \
                     (its kernel is tainted now: exit, and start kmodlab shell again for a fresh \
                     guest)",
                );
                start(guest, &mut pending, LOCAL, plan.tty, &plan.term, None)?;
            } else if Instant::now() >= until {
                return Ok(Turn::End(ShellEnd::Exited(code)));
            }
        }
        let tick = killed.map_or(TICK, |_| TICK / 5);
        let msg = guest.next_message(Instant::now() + tick);
        // The line first, then the summary of the report it completed.
        if let Some(VmMessage::Console(line)) = &msg {
            if !kdb.on {
                host.console(line);
            }
            if line.contains(crate::machine::KDB_ENTERED) && !kdb.on {
                kdb = Kdb {
                    on: true,
                    typed: Vec::new(),
                };
                host.say(
                    "kmodlab: kdb, the kernel debugger, has the machine: your keys go to it \
                     (help, ps, bt, lsmod, dmesg, md ADDR); go gives the machine back",
                );
            }
        }
        if let Some(VmMessage::ConsoleRaw(bytes)) = &msg {
            if kdb.on {
                host.output(1, bytes);
            }
        }
        for r in guest.new_reports() {
            told.tell(&r, host, guest.run_dir());
        }
        let Some(msg) = msg else {
            if guest.has_exited() {
                return Ok(gone(guest, host, told));
            }
            if kdb.on {
                // The guest is stopped in kdb: it answers nothing, and does not hang.
                continue;
            }
            let now = Instant::now();
            if plan.gdb.is_some()
                && ping.is_some_and(|sent| now.duration_since(sent) > PING_AFTER)
                && guest.is_running(SEND_WITHIN).is_ok_and(|running| !running)
            {
                // Stopped by gdb: it answers nothing, and does not hang.
                ping = None;
                last_heard = now;
                continue;
            }
            match ping {
                Some(sent) if now.duration_since(sent) > HUNG_AFTER => {
                    host.say(&format!(
                        "kmodlab: the guest has not answered for {}s: it hangs (console.log in {})",
                        HUNG_AFTER.as_secs(),
                        guest.run_dir().display()
                    ));
                    return Ok(Turn::Restart("the guest hung".into()));
                }
                None if now.duration_since(last_heard) > PING_AFTER => {
                    let req = Request::Read { paths: Vec::new() };
                    if let Ok(id) = guest.send(&req, SEND_WITHIN) {
                        pending.insert(id, Pending::Ping);
                    }
                    ping = Some(now);
                }
                _ => {}
            }
            continue;
        };
        match msg {
            VmMessage::Console(_) | VmMessage::ConsoleRaw(_) => {}
            VmMessage::Agent(line) => {
                last_heard = Instant::now();
                ping = None;
                if kdb.on {
                    // The guest runs again: kdb is over.
                    kdb.on = false;
                    guest.vm.leave_kdb();
                }
                let envelope = match kmodlab_proto::decode::<Envelope<Reply>>(&line) {
                    Ok(e) => e,
                    Err(e) => {
                        return Err(guest.infra(format!("the agent sent a malformed message ({e})")))
                    }
                };
                match envelope.body {
                    Reply::Output {
                        session,
                        stream,
                        data,
                    } => {
                        let data = kmodlab_proto::base64_decode(&data).unwrap_or_default();
                        if session == LOCAL {
                            host.output(stream, &data);
                        } else if let Some(r) = remotes.get_mut(&session) {
                            let msg = AttachMessage::Data {
                                data: kmodlab_proto::base64_encode(&data),
                            };
                            if msg.write_to(&mut r.stream).is_err() {
                                remotes.remove(&session);
                                let _ = guest.send(&Request::Hangup { session }, SEND_WITHIN);
                            }
                        }
                    }
                    Reply::ShellExited {
                        session,
                        code,
                        signal,
                    } => {
                        let code = code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
                        let interactive = plan.tty.is_some() && plan.command.is_none();
                        if session == LOCAL && signal.is_some() && interactive {
                            // Killed: by an oops of the module (a builtin `echo` into its
                            // file), or by a signal someone sent. A crash report says which.
                            // (Without a terminal, the commands' input went with the shell.)
                            killed = Some((code, Instant::now() + OOPS_GRACE));
                            continue;
                        }
                        if session == LOCAL {
                            return Ok(Turn::End(ShellEnd::Exited(code)));
                        }
                        if let Some(mut r) = remotes.remove(&session) {
                            let _ = AttachMessage::Exit { code }.write_to(&mut r.stream);
                        }
                    }
                    Reply::Kmsg { lines } => {
                        for line in lines {
                            for r in told.log.push_line(&line) {
                                told.tell(&r, host, guest.run_dir());
                            }
                        }
                    }
                    Reply::Fatal { message } => {
                        return Err(guest.infra(format!("the guest agent failed: {message}")))
                    }
                    reply => match pending.remove(&envelope.id) {
                        Some(Pending::Start(session)) => {
                            if let Reply::Error { message } = reply {
                                if session == LOCAL {
                                    return Err(guest.infra(message));
                                }
                                if let Some(mut r) = remotes.remove(&session) {
                                    let _ = AttachMessage::Say { text: message }
                                        .write_to(&mut r.stream);
                                    let _ = AttachMessage::Exit { code: 1 }.write_to(&mut r.stream);
                                }
                            }
                        }
                        Some(Pending::Put(path)) => {
                            if !matches!(
                                reply,
                                Reply::Call {
                                    status: kmodlab_proto::CallStatus::Ok,
                                    ..
                                }
                            ) {
                                host.say(&format!("kmodlab: could not put {path} into the guest"));
                            }
                        }
                        Some(Pending::Ping) | None => {}
                    },
                }
            }
            VmMessage::AgentGarbage(why) => {
                return Err(guest.infra(format!("the agent sent {why}")));
            }
            VmMessage::Exited(_) => return Ok(gone(guest, host, told)),
            VmMessage::ConsoleClosed | VmMessage::AgentClosed => {}
            VmMessage::Host(event) => match event {
                HostEvent::Input { session, data } if kdb.on => {
                    if guest.vm.serial_write(&data).is_err() {
                        host.say("kmodlab: cannot write to the guest's serial port");
                    }
                    if session == LOCAL && kdb.typed(&data) {
                        // `go`: kdb may give the machine back, or ask for a second `go` after
                        // an oops. The agent's answer says that the guest runs again.
                        let req = Request::Read { paths: Vec::new() };
                        if let Ok(id) = guest.send(&req, SEND_WITHIN) {
                            pending.insert(id, Pending::Ping);
                        }
                    }
                }
                HostEvent::Input { session, data } => {
                    let req = Request::Input {
                        session,
                        data: kmodlab_proto::base64_encode(&data),
                        eof: false,
                    };
                    let _ = guest.send(&req, SEND_WITHIN);
                }
                HostEvent::InputClosed { session } => {
                    let req = Request::Input {
                        session,
                        data: String::new(),
                        eof: true,
                    };
                    let _ = guest.send(&req, SEND_WITHIN);
                }
                HostEvent::Resize { session, size } => {
                    if let Some(r) = remotes.get_mut(&session) {
                        r.size = Some(size);
                    }
                    let _ = guest.send(&Request::Resize { session, size }, SEND_WITHIN);
                }
                HostEvent::Signal(sig) => return Ok(Turn::End(ShellEnd::Signal(sig))),
                HostEvent::Changed(which) => {
                    for (path, data) in host.changed(which) {
                        let req = Request::Put {
                            path: path.clone(),
                            data: kmodlab_proto::base64_encode(&data),
                        };
                        if let Ok(id) = guest.send(&req, SEND_WITHIN) {
                            pending.insert(id, Pending::Put(path));
                        }
                    }
                }
                HostEvent::Attach(a) => {
                    let session = *next_session;
                    *next_session += 1;
                    let Ok(reader) = a.stream.try_clone() else {
                        continue;
                    };
                    relay_attached(reader, session, plan.link.clone());
                    remotes.insert(
                        session,
                        Remote {
                            stream: a.stream,
                            term: a.term.clone(),
                            size: a.size,
                        },
                    );
                    start(guest, &mut pending, session, a.size, &a.term, None)?;
                }
                HostEvent::Detached(session) => {
                    if remotes.remove(&session).is_some() {
                        let _ = guest.send(&Request::Hangup { session }, SEND_WITHIN);
                    }
                }
            },
        }
    }
}

/// Whether kdb has the machine, and what was typed to it since the last Enter.
#[derive(Default)]
struct Kdb {
    on: bool,
    typed: Vec<u8>,
}

impl Kdb {
    /// Takes keys sent to kdb; true when they end a `go` line (kdb may give the machine back).
    fn typed(&mut self, data: &[u8]) -> bool {
        let mut go = false;
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    go |= self.typed.trim_ascii() == b"go";
                    self.typed.clear();
                }
                // Backspace and DEL, as kdb's line editing takes them.
                0x08 | 0x7f => {
                    self.typed.pop();
                }
                _ if self.typed.len() < 256 => self.typed.push(b),
                _ => {}
            }
        }
        go
    }
}

/// The crash reports of one guest, found twice: on the console, and in the kernel log records
/// the agent sends (the console only shows what the console log level lets through; the
/// records have everything, but stop when the guest panics or hangs). Each report is summarized
/// once, whichever finds it first.
#[derive(Default)]
struct Told {
    /// The scanner of the agent's kernel log records.
    log: Scanner,
    /// The reports summarized: their first timestamp and title.
    keys: HashSet<String>,
    /// How many of them a shell's task caused (`Comm: sh`): the kernel killed that shell.
    by_shells: usize,
}

impl Told {
    fn tell(&mut self, r: &CrashReport, host: &mut dyn ShellHost, run_dir: &Path) {
        if self.keys.insert(report_key(r)) {
            if r.comm.as_deref() == Some("sh") {
                self.by_shells += 1;
            }
            let text = host.summary(r, run_dir);
            host.say(&text);
        }
    }
}

/// What tells a report apart from the same report seen on the other path: the timestamp of its
/// first stamped line (the same record prints the same stamp on both) and its title.
fn report_key(r: &CrashReport) -> String {
    let stamp = r
        .text
        .lines()
        .find_map(|l| {
            let t = l.trim_start();
            let inner = t.strip_prefix('[')?.split(']').next()?.trim();
            (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .then(|| inner.to_string())
        })
        .unwrap_or_default();
    format!("{stamp}|{}", r.title)
}

/// QEMU is gone: a panic (shown, then a fresh guest), or the guest powered itself off.
fn gone(guest: &mut Guest, host: &mut dyn ShellHost, told: &mut Told) -> Turn {
    for r in guest.end_reports() {
        told.tell(&r, host, guest.run_dir());
    }
    let panicked = guest
        .reports()
        .iter()
        .any(|r| r.kind.severity() == Severity::Panic);
    if panicked {
        return Turn::Restart("the guest panicked".into());
    }
    match guest.exited_by_itself() {
        Some(_) => Turn::End(ShellEnd::PoweredOff),
        None => {
            host.say(&format!(
                "kmodlab: QEMU went away (console.log in {})",
                guest.run_dir().display()
            ));
            Turn::Restart("QEMU went away".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_keyed_by_its_first_stamp_and_title() {
        let mut r = kmodlab_crash::parse_reports(
            "[    9.121769] BUG: kernel NULL pointer dereference, address: 0000000000000000\n\
             [    9.122048] #PF: supervisor write access in kernel mode\n",
        )
        .remove(0);
        let key = report_key(&r);
        assert!(key.starts_with("9.121769|"), "{key}");
        r.text = r.text.replace("[    9.121769]", "[    9.500000]");
        assert_ne!(report_key(&r), key, "another occurrence of the same report");
    }

    #[test]
    fn events_wait_for_a_guest_and_go_to_the_newest() {
        let link = HostLink::new();
        link.post(HostEvent::Changed(1));
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        link.connect(Box::new(move |e| {
            g.lock().unwrap().push(format!("{e:?}"));
            Ok(())
        }));
        link.post(HostEvent::Changed(2));
        link.disconnect();
        link.post(HostEvent::Changed(3));
        assert_eq!(*got.lock().unwrap(), ["Changed(1)", "Changed(2)"]);
        // A guest that is gone: the event waits for the next one.
        link.connect(Box::new(Err));
        link.post(HostEvent::Changed(4));
        let later = Arc::new(Mutex::new(Vec::new()));
        let l = later.clone();
        link.connect(Box::new(move |e| {
            l.lock().unwrap().push(format!("{e:?}"));
            Ok(())
        }));
        assert_eq!(*later.lock().unwrap(), ["Changed(3)", "Changed(4)"]);
    }
}
