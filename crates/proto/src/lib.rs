//! The agent protocol: line-delimited JSON between the host and the guest agent, over the
//! virtio-serial port named [`PORT_NAME`]. The host sends [`Request`]s; the agent answers each with
//! one [`Reply`] (except the shell's input, resize and hangup, which have none), and announces
//! itself with [`Reply::Ready`] once. A shell session's output and end come unasked, numbered 0.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// The virtio-serial port name the agent looks for under `/sys/class/virtio-ports/*/name`.
pub const PORT_NAME: &str = "kmodlab.agent";

/// The word kmodlab puts on the guest kernel's command line to make its `/init` the agent. The
/// kernel hands an unknown `NAME=VALUE` word to init as an environment variable, so the binary
/// is the agent only when it runs as PID 1 with [`AGENT_ENV`] set to `1`: PID 1 of a container
/// (`docker run IMAGE kmodlab depmod`) stays a module tool.
pub const AGENT_CMDLINE: &str = "kmodlab_agent=1";
/// The environment variable [`AGENT_CMDLINE`] becomes for init.
pub const AGENT_ENV: &str = "kmodlab_agent";

/// Where the module under test lives inside the guest.
pub const GUEST_MODULE_DIR: &str = "/kmodlab/modules";
/// Modules the agent loads at boot, in order (the agent's own transport, e.g. virtio_console).
pub const GUEST_BOOT_MODULE_DIR: &str = "/kmodlab/boot";

/// A request from the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Load a module file with a kernel parameter string.
    Load {
        /// Path of the .ko inside the guest.
        path: String,
        /// Parameter string as the kernel parses it (`a=1 b="two words"`).
        params: String,
        /// What to record around the call, for a spec to compare the module's output with.
        #[serde(default, skip_serializing_if = "Observe::is_nothing")]
        observe: Observe,
    },
    /// Unload a module by name.
    Unload {
        /// The module's name.
        name: String,
        /// What to record around the call, as for [`Request::Load`].
        #[serde(default, skip_serializing_if = "Observe::is_nothing")]
        observe: Observe,
    },
    /// Read files (or check that paths exist).
    Read {
        /// Absolute paths.
        paths: Vec<String>,
    },
    /// Read part of one file: at most `len` bytes (and at most [`READ_RANGE_MAX`]) from
    /// `offset`, for files larger than what [`Request::Read`] returns (`/proc/kallsyms`), piece
    /// by piece. Answered with [`Reply::Files`], one entry, whose contents are shorter than asked
    /// only at the file's end.
    ReadRange {
        /// Absolute path.
        path: String,
        /// Where to start.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// Run a program in the guest: the kmodlab binary itself under the name `argv[0]` (a module
    /// tool such as `modprobe` or `lsmod`), or an absolute path.
    Exec {
        /// The command and its arguments.
        argv: Vec<String>,
        /// Stop the program (SIGTERM) once its standard output contains this text: for commands
        /// that would run on, such as `dmesg --follow`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_on: Option<String>,
    },
    /// Write a file in the guest (parent directories are made): how a restored guest receives
    /// the module under test. Answered with [`Reply::Call`].
    Put {
        /// Absolute guest path.
        path: String,
        /// The contents, base64 ([`base64_encode`]).
        data: String,
    },
    /// Start a shell session: `/bin/sh` (or `sh -c COMMAND`) in `cwd`, on a new PTY of the given
    /// size, or on pipes when `tty` is `None`. Answered with [`Reply::Call`] once it runs; from then
    /// on it sends [`Reply::Output`] and, last, [`Reply::ShellExited`]. The first session also
    /// makes the guest interactive: devpts, debugfs and a tmpfs on `/tmp` mounted, and the
    /// console filtered by the console log level again (7, the kernel's default).
    Shell {
        /// The host's number for the session.
        session: u32,
        /// Run this command line instead of an interactive shell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        /// The terminal's size; `None`: no terminal, standard input and output are pipes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tty: Option<TermSize>,
        /// The directory it starts in.
        cwd: String,
        /// `TERM` for the session.
        #[serde(default)]
        term: String,
    },
    /// Input for a session's terminal or standard input. Not answered.
    Input {
        /// The session.
        session: u32,
        /// The bytes, base64 ([`base64_encode`]).
        data: String,
        /// Close the session's standard input after these bytes (a session without a terminal).
        #[serde(default)]
        eof: bool,
    },
    /// The host terminal's new size. Not answered.
    Resize {
        /// The session.
        session: u32,
        /// The size.
        size: TermSize,
    },
    /// End a session: its processes get SIGHUP, then SIGKILL. Not answered.
    Hangup {
        /// The session.
        session: u32,
    },
    /// Have kmemleak scan now and send what it reports ([`Reply::Leaks`]): debugfs is mounted
    /// when it is not, and live tasks' stacks are left out of the scan (their stale frames hold
    /// pointers from the load and the unload).
    LeakScan,
    /// Make the guest cheap to save: fault in the free memory as zeroed pages and free it again,
    /// so that every free page is a zero page, which QEMU's migration stream skips. Answered with
    /// [`Reply::Call`].
    ZeroFreeMemory,
    /// Sync and power off.
    PowerOff,
}

/// What the agent records around a load or unload call, besides how it ended and its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observe {
    /// The guest's processes: read by the calling process right before the syscall, and by the
    /// agent once the calling process has been reaped ([`GuestTasks`]).
    #[serde(default)]
    pub tasks: bool,
    /// The calling process's `/proc/self/maps`, read right before the syscall with nothing
    /// allocated or freed in between: the memory areas the module sees as `current->mm`.
    #[serde(default)]
    pub maps: bool,
}

impl Observe {
    /// Nothing to record.
    pub fn is_nothing(&self) -> bool {
        !self.tasks && !self.maps
    }
}

/// A process of the guest, as `/proc/PID/stat` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTask {
    /// Its PID (the thread group's).
    pub pid: u32,
    /// Its parent's PID.
    pub ppid: u32,
    /// Its name as `/proc` shows it: a kernel thread's full name, a workqueue worker's with
    /// what it works on (`kworker/0:1-events`).
    pub comm: String,
    /// A kernel thread (`PF_KTHREAD`).
    pub kthread: bool,
    /// When it started, in clock ticks after boot: with the PID, which process it is.
    pub start_time: u64,
}

/// The guest's processes around one load or unload call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTasks {
    /// The PID of the process that made the call (the loader or unloader).
    pub caller: u32,
    /// Every process, read by the caller right before the syscall.
    pub before: Vec<GuestTask>,
    /// Every process, read after the call ended and the caller was reaped.
    pub after: Vec<GuestTask>,
}

/// A terminal's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// How a load or unload call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CallStatus {
    /// The syscall returned 0.
    Ok,
    /// The syscall failed with this errno.
    Failed {
        /// errno value.
        errno: i32,
    },
    /// The process making the call was killed (an oops in the module's code kills it).
    Killed {
        /// Signal number.
        signal: i32,
    },
}

/// A file read in the guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFile {
    /// Path.
    pub path: String,
    /// Whether the path exists.
    pub exists: bool,
    /// Whether it is a directory.
    #[serde(default)]
    pub dir: bool,
    /// Contents when it is a readable file; for a directory, its entry names, one per line, sorted.
    pub contents: Option<String>,
    /// The read error, when any.
    pub error: Option<String>,
}

/// The most [`Request::ReadRange`] returns at once.
pub const READ_RANGE_MAX: u64 = 4 << 20;

/// A message from the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// The agent is up and waits for requests.
    Ready {
        /// `uname -r` of the guest kernel.
        kernel: String,
        /// Seconds since the guest kernel started.
        uptime_s: f64,
    },
    /// A load or unload finished (also the answer to a put or a shell's start).
    Call {
        /// How it ended.
        status: CallStatus,
        /// Kernel log lines printed during the call.
        log: Vec<String>,
        /// The guest's processes around the call, when asked for ([`Observe::tasks`]) and the
        /// call reached its syscall.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tasks: Option<GuestTasks>,
        /// The caller's `/proc/self/maps` right before the syscall, when asked for
        /// ([`Observe::maps`]) and the call reached its syscall.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maps: Option<String>,
    },
    /// Files that were read.
    Files {
        /// One entry per requested path.
        files: Vec<GuestFile>,
    },
    /// A program run by [`Request::Exec`] ended.
    Exited {
        /// Its exit code, when it exited.
        code: Option<i32>,
        /// The signal that killed it, when it was killed.
        signal: Option<i32>,
        /// What it wrote to standard output.
        stdout: String,
        /// What it wrote to standard error.
        stderr: String,
        /// Kernel log lines printed while it ran.
        log: Vec<String>,
    },
    /// Output of a shell session (no request asks for it: numbered 0).
    Output {
        /// The session.
        session: u32,
        /// 1 for the terminal or standard output, 2 for standard error.
        stream: u8,
        /// The bytes, base64.
        data: String,
    },
    /// A shell session ended (numbered 0), after all of its output.
    ShellExited {
        /// The session.
        session: u32,
        /// Its exit code, when it exited.
        code: Option<i32>,
        /// The signal that killed it, when it was killed.
        signal: Option<i32>,
    },
    /// Kernel log records of an interactive guest, all levels (numbered 0): what the console
    /// shows is filtered by the console log level, so crash reports are found in these too.
    /// Each line is `[SECONDS.MICROS] MESSAGE`, as the console prints it.
    Kmsg {
        /// The records, in order.
        lines: Vec<String>,
    },
    /// What a [`Request::LeakScan`] found.
    Leaks {
        /// The contents of `/sys/kernel/debug/kmemleak` after the scan (every unreferenced
        /// object, the guest's own included); `None` when the kernel has no kmemleak.
        kmemleak: Option<String>,
        /// Why the scan failed (kmemleak turned itself off, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Kernel log lines printed during the scan.
        log: Vec<String>,
    },
    /// The request could not be handled.
    Error {
        /// Why.
        message: String,
    },
    /// The agent hit a bug and powers off.
    Fatal {
        /// The panic message.
        message: String,
    },
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, for file contents in [`Request::Put`].
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes [`base64_encode`]'s output; `None` on anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| B64.iter().position(|&x| x == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i + 1 == s.len() / 4;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// One protocol message with its number. The host numbers its requests from 1; the agent's
/// reply carries the number of the request it answers, so that a late answer to a request that
/// missed its deadline is never taken for the answer to the next one. Messages no request asked
/// for ([`Reply::Ready`], a [`Reply::Fatal`] before any request) carry 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The request's number.
    #[serde(default)]
    pub id: u64,
    /// The request or reply.
    #[serde(flatten)]
    pub body: T,
}

/// Messages between an attached kmodlab and the one that runs the guest: one JSON object per
/// line on the session's socket (`shell.sock` in its run directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AttachMessage {
    /// First from the attaching side: its terminal.
    Hello {
        /// `TERM`.
        term: String,
        /// Its size.
        size: Option<TermSize>,
    },
    /// Typed bytes (attaching side) or output (guest side), base64.
    Data {
        /// The bytes, base64.
        data: String,
    },
    /// The attaching terminal's new size.
    Resize {
        /// Its size.
        size: TermSize,
    },
    /// A line of kmodlab's own, to show.
    Say {
        /// The text.
        text: String,
    },
    /// The session ended with this status.
    Exit {
        /// The exit status.
        code: i32,
    },
}

impl AttachMessage {
    /// Writes the message as one line.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(encode(self).as_bytes())
    }

    /// The messages on a stream, one per line, until it ends or carries anything else.
    pub fn read_all(r: impl std::io::BufRead) -> impl Iterator<Item = AttachMessage> {
        r.split(b'\n').map_while(|line| {
            let line = line.ok()?;
            decode::<AttachMessage>(std::str::from_utf8(&line).ok()?).ok()
        })
    }
}

/// Encodes a message as one protocol line (with the trailing newline).
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).expect("protocol messages always serialize");
    s.push('\n');
    s
}

/// Decodes one protocol line.
pub fn decode<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, serde_json::Error> {
    serde_json::from_str(line.trim_end())
}

/// Joins `name=value` parameters into the kernel's parameter string, quoting a value that contains
/// spaces as modprobe does (`label="two words"`), so that it stays one value.
pub fn param_string(params: &[String]) -> String {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((name, value))
                if value.contains(char::is_whitespace) && !value.starts_with('"') =>
            {
                format!("{name}=\"{value}\"")
            }
            _ => p.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..70 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        for bad in ["Zm9", "Zm=v", "Z===", "Zm8*", "=Zm8"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_round_trip() {
        let r = Request::Load {
            path: "/m.ko".into(),
            params: "a=1".into(),
            observe: Observe::default(),
        };
        let line = encode(&r);
        assert_eq!(
            line,
            "{\"op\":\"load\",\"path\":\"/m.ko\",\"params\":\"a=1\"}\n"
        );
        assert_eq!(decode::<Request>(&line).unwrap(), r);
        let r = Request::Unload {
            name: "m".into(),
            observe: Observe {
                tasks: true,
                maps: false,
            },
        };
        let line = encode(&r);
        assert_eq!(
            line,
            "{\"op\":\"unload\",\"name\":\"m\",\"observe\":{\"tasks\":true,\"maps\":false}}\n"
        );
        assert_eq!(decode::<Request>(&line).unwrap(), r);
        assert_eq!(
            decode::<Request>("{\"op\":\"power-off\"}").unwrap(),
            Request::PowerOff
        );
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply::Call {
            status: CallStatus::Failed { errno: 19 },
            log: vec!["x".into()],
            tasks: None,
            maps: None,
        };
        assert_eq!(decode::<Reply>(&encode(&r)).unwrap(), r);
        let r = Reply::Call {
            status: CallStatus::Ok,
            log: Vec::new(),
            tasks: Some(GuestTasks {
                caller: 90,
                before: vec![GuestTask {
                    pid: 2,
                    ppid: 0,
                    comm: "kthreadd".into(),
                    kthread: true,
                    start_time: 66,
                }],
                after: Vec::new(),
            }),
            maps: Some("7ffe7d497000-7ffe7d4b8000 rw-p 00000000 00:00 0 [stack]\n".into()),
        };
        assert_eq!(decode::<Reply>(&encode(&r)).unwrap(), r);
    }

    #[test]
    fn values_with_spaces_stay_one_value() {
        let p = vec![
            "label=two words".to_string(),
            "count=3".into(),
            "flag".into(),
        ];
        assert_eq!(param_string(&p), "label=\"two words\" count=3 flag");
    }

    #[test]
    fn envelopes_carry_the_request_number() {
        let line = encode(&Envelope {
            id: 7,
            body: Request::Unload {
                name: "m".into(),
                observe: Observe::default(),
            },
        });
        assert_eq!(line, "{\"id\":7,\"op\":\"unload\",\"name\":\"m\"}\n");
        let back: Envelope<Request> = decode(&line).unwrap();
        assert_eq!(back.id, 7);
        assert_eq!(
            back.body,
            Request::Unload {
                name: "m".into(),
                observe: Observe::default()
            }
        );
        let ready = Reply::Ready {
            kernel: "6.12".into(),
            uptime_s: 1.5,
        };
        let e: Envelope<Reply> = decode(&encode(&Envelope {
            id: 0,
            body: ready.clone(),
        }))
        .unwrap();
        assert_eq!(e.body, ready);
        // Without a number: 0.
        let e: Envelope<Reply> = decode("{\"reply\":\"error\",\"message\":\"x\"}").unwrap();
        assert_eq!(e.id, 0);
    }
}
