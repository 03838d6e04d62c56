//! Shell sessions: `/bin/sh` on a PTY (or on pipes), its output sent to the host as it comes,
//! the host's keys written to it, its end reported after all of its output.

use kmodlab_proto::{Reply, TermSize};
use kmodlab_sys::tty::{self, Pty, WinSize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The guest's name, in the prompt.
pub const HOSTNAME: &str = "kmodlab-vm";
/// The prompt: the lab VM and the current directory.
pub const PROMPT: &str = "\\h:\\w# ";
/// The command search path: kmodlab's module tools (in `/usr/local/sbin`) before busybox's.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The console log level of an interactive guest: the kernel's default, as on the lab's VM.
const CONSOLE_LOGLEVEL: &str = "7";
/// The most one output message carries.
const CHUNK: usize = 4096;

struct Handle {
    input: mpsc::Sender<(Vec<u8>, bool)>,
    /// The PTY master, for resizing.
    master: Option<File>,
    /// The session leader (its process group and session id too).
    pid: u32,
}

/// The running sessions.
#[derive(Default)]
pub struct Sessions {
    map: HashMap<u32, Handle>,
    interactive: bool,
}

/// What sends a reply to the host (the agent's port, shared by every session's threads).
pub type Send = fn(&Reply);

impl Sessions {
    /// Starts a session; its output and end go to the host through `send`. The first one also
    /// starts sending the kernel log's records to the host.
    pub fn start(
        &mut self,
        session: u32,
        command: Option<&str>,
        size: Option<TermSize>,
        cwd: &str,
        term: &str,
        send: Send,
    ) -> io::Result<()> {
        if !self.interactive {
            make_interactive();
            follow_kernel_log(send);
            self.interactive = true;
        }
        self.map.retain(|_, h| process_exists(h.pid));
        let mut argv = vec!["sh".to_string()];
        if let Some(c) = command {
            argv.push("-c".into());
            argv.push(c.into());
        }
        let dir = if std::path::Path::new(cwd).is_dir() {
            cwd
        } else {
            "/"
        };
        let term = if term.is_empty() { "linux" } else { term };
        let env = [
            format!("PATH={PATH}"),
            "HOME=/root".into(),
            "SHELL=/bin/sh".into(),
            format!("TERM={term}"),
            format!("PS1={PROMPT}"),
            format!("PWD={dir}"),
        ];
        let spawn = |stdio: [RawFd; 3], controlling_terminal: bool| {
            tty::spawn_session(&tty::SessionSpec {
                program: "/bin/sh",
                argv: &argv,
                env: &env,
                cwd: dir,
                stdio,
                controlling_terminal,
            })
            .map_err(|e| context("/bin/sh", e))
        };
        let exited = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        let (input_tx, input_rx) = mpsc::channel::<(Vec<u8>, bool)>();
        let (pid, master) = match size {
            Some(size) => {
                let pty = Pty::open(Some(WinSize {
                    rows: size.rows,
                    cols: size.cols,
                }))
                .map_err(|e| context("a new PTY (/dev/ptmx)", e))?;
                let fd = pty.slave.as_raw_fd();
                let pid = spawn([fd, fd, fd], true)?;
                drop(pty.slave);
                let out = pty.master.try_clone()?;
                let ex = exited.clone();
                readers.push(std::thread::spawn(move || relay(session, 1, out, ex, send)));
                spawn_writer(pty.master.try_clone()?, input_rx);
                (pid, Some(pty.master))
            }
            None => {
                let (in_r, in_w) = std::io::pipe()?;
                let (out_r, out_w) = std::io::pipe()?;
                let (err_r, err_w) = std::io::pipe()?;
                let pid = spawn(
                    [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
                    false,
                )?;
                drop((in_r, out_w, err_w));
                for (stream, pipe) in [(1u8, out_r), (2u8, err_r)] {
                    let pipe = File::from(OwnedFd::from(pipe));
                    let ex = exited.clone();
                    readers.push(std::thread::spawn(move || {
                        relay(session, stream, pipe, ex, send)
                    }));
                }
                spawn_writer(File::from(OwnedFd::from(in_w)), input_rx);
                (pid, None)
            }
        };
        std::thread::spawn(move || {
            let status = tty::wait_pid(pid);
            exited.store(true, Ordering::SeqCst);
            for r in readers {
                let _ = r.join();
            }
            let (code, signal) = match status {
                Ok(kmodlab_sys::ChildExit::Exited(c)) => (Some(c), None),
                Ok(kmodlab_sys::ChildExit::Signaled(s)) => (None, Some(s)),
                Err(_) => (None, None),
            };
            send(&Reply::ShellExited {
                session,
                code,
                signal,
            });
        });
        self.map.insert(
            session,
            Handle {
                input: input_tx,
                master,
                pid,
            },
        );
        Ok(())
    }

    /// Input for a session (dropped when it has ended).
    pub fn input(&mut self, session: u32, data: Vec<u8>, eof: bool) {
        if let Some(h) = self.map.get(&session) {
            let _ = h.input.send((data, eof));
        }
    }

    /// The terminal of a session has a new size.
    pub fn resize(&mut self, session: u32, size: TermSize) {
        if let Some(master) = self.map.get(&session).and_then(|h| h.master.as_ref()) {
            let _ = tty::set_window_size(
                master.as_raw_fd(),
                WinSize {
                    rows: size.rows,
                    cols: size.cols,
                },
            );
        }
    }

    /// Ends a session: SIGHUP to its process group, SIGKILL shortly after.
    pub fn hangup(&mut self, session: u32) {
        if let Some(h) = self.map.remove(&session) {
            let pid = h.pid;
            tty::signal_group(pid, libc::SIGHUP);
            tty::signal_group(pid, libc::SIGCONT);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                tty::signal_group(pid, libc::SIGKILL);
            });
        }
    }
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Writes the host's input to the session, in order, without holding the agent's request loop
/// up when the session does not read.
fn spawn_writer(mut to: File, rx: mpsc::Receiver<(Vec<u8>, bool)>) {
    std::thread::spawn(move || {
        for (data, eof) in rx {
            if to.write_all(&data).is_err() {
                return;
            }
            if eof {
                return;
            }
        }
    });
}

/// Sends what `from` gives as output of `session` until it ends (end of file, or a PTY whose
/// every slave is closed), or the session's shell has exited and nothing more comes.
fn relay(session: u32, stream: u8, mut from: File, exited: Arc<AtomicBool>, send: Send) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match tty::poll_readable(from.as_raw_fd(), 100) {
            Ok(true) => {}
            Ok(false) if exited.load(Ordering::SeqCst) => return,
            Ok(false) => continue,
            Err(_) => return,
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => send(&Reply::Output {
                session,
                stream,
                data: kmodlab_proto::base64_encode(&buf[..n]),
            }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO: the PTY's slave side is closed everywhere.
            Err(_) => return,
        }
    }
}

/// The most kernel log records one message carries.
const KMSG_BATCH: usize = 64;

/// Sends every kernel log record from now on to the host ([`Reply::Kmsg`]), a batch at a time:
/// crash reports must be found whatever the console log level lets through.
fn follow_kernel_log(send: Send) {
    let Ok(mut dev) = kmodlab_sys::KmsgDevice::open(true, kmodlab_sys::KmsgStart::End) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; kmodlab_sys::KMSG_RECORD_MAX];
        let mut lines = Vec::new();
        loop {
            // Wait for one record, then take what else is there without waiting.
            let wait = if lines.is_empty() { -1 } else { 0 };
            let more = tty::poll_readable(dev.as_raw_fd(), wait).unwrap_or(false);
            if more && lines.len() < KMSG_BATCH {
                match dev.read_record(&mut buf) {
                    Ok(Some(n)) => {
                        if let Some(rec) = kmodlab_kmsg::parse_record(&buf[..n]) {
                            let us = rec.ts_usec();
                            lines.push(format!(
                                "[{:5}.{:06}] {}",
                                us / 1_000_000,
                                us % 1_000_000,
                                rec.text()
                            ));
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
            if !lines.is_empty() {
                send(&Reply::Kmsg {
                    lines: std::mem::take(&mut lines),
                });
            }
        }
    });
}

/// What an interactive guest has that a test run does not need: terminals, debugfs, a tmpfs,
/// a name, the console filtered by its log level as on the lab's VM.
fn make_interactive() {
    let _ = std::fs::create_dir_all("/dev/pts");
    let _ = kmodlab_sys::mount_with("devpts", "/dev/pts".as_ref(), "ptmxmode=0666,mode=0620");
    let _ = kmodlab_sys::mount("debugfs", "/sys/kernel/debug".as_ref());
    let _ = kmodlab_sys::mount_with("tmpfs", "/tmp".as_ref(), "mode=1777");
    let _ = std::fs::create_dir_all("/root");
    let _ = std::fs::create_dir_all("/lab");
    let _ = std::fs::create_dir_all("/etc");
    let _ = std::fs::write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    let _ = std::fs::write("/etc/group", "root:x:0:\n");
    let _ = std::fs::write("/proc/sys/kernel/hostname", HOSTNAME);
    let _ = std::fs::write("/sys/module/printk/parameters/ignore_loglevel", "N");
    let _ = std::fs::write("/proc/sys/kernel/printk", CONSOLE_LOGLEVEL);
}
