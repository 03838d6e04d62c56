//! Terminals: pseudo-terminal pairs for the guest shell, raw mode and window sizes for the host's
//! terminal, and the saved terminal state that every exit path puts back.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// A terminal's size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only reads the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// The window size of the terminal `fd`, when it is one and knows its size.
pub fn window_size(fd: RawFd) -> Option<WinSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (ret == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(WinSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sets the window size of the terminal `fd` (on a PTY master, the kernel then sends SIGWINCH to
/// the foreground process group of its slave).
pub fn set_window_size(fd: RawFd, size: WinSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new pseudo-terminal: the master side, and the slave side opened.
pub struct Pty {
    /// The master: what is written here is the terminal's input, what is read its output.
    pub master: File,
    /// The slave: the terminal a program runs on.
    pub slave: File,
}

impl Pty {
    /// Opens a new pseudo-terminal pair (`/dev/ptmx`; devpts must be mounted at `/dev/pts`).
    pub fn open(size: Option<WinSize>) -> io::Result<Pty> {
        // SAFETY: plain syscalls; the descriptors are owned right after.
        let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        if master < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `master` is a fresh descriptor nobody else owns.
        let master = unsafe { File::from_raw_fd(master) };
        // SAFETY: on a valid master descriptor.
        if unsafe { libc::grantpt(master.as_raw_fd()) } != 0
            || unsafe { libc::unlockpt(master.as_raw_fd()) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: ptsname_r writes a NUL-terminated name of at most `name.len()` bytes.
        let ret = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        // SAFETY: `name` is NUL-terminated.
        let slave = unsafe {
            libc::open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        if slave < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `slave` is a fresh descriptor nobody else owns.
        let slave = unsafe { File::from_raw_fd(slave) };
        if let Some(size) = size {
            set_window_size(master.as_raw_fd(), size)?;
        }
        Ok(Pty { master, slave })
    }
}

/// Makes a child started from `cmd` the leader of a new session whose controlling terminal is
/// its standard input (a PTY slave): job control then works in it, and Ctrl-C on the terminal
/// interrupts its foreground job.
pub fn controlling_terminal(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and ioctl are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What [`spawn_session`] starts.
pub struct SessionSpec<'a> {
    /// The program (an absolute path).
    pub program: &'a str,
    /// Its arguments, `argv[0]` first.
    pub argv: &'a [String],
    /// Its whole environment, `NAME=VALUE` each.
    pub env: &'a [String],
    /// The directory it starts in.
    pub cwd: &'a str,
    /// Its standard input, output and error.
    pub stdio: [RawFd; 3],
    /// Make its standard input (a terminal) its controlling terminal.
    pub controlling_terminal: bool,
}

/// Starts a program as the leader of a new session (and process group), optionally with its
/// standard input as controlling terminal; returns its pid, to be waited for with
/// [`wait_pid`].
///
/// A plain `fork` and `execve`, with every string made before the fork, so that it is safe in a
/// process with threads. (The standard library's `Command` with `pre_exec` fails with ENOSYS on
/// the Rust lab kernel's tinyconfig; this path needs nothing beyond fork, setsid, ioctl, dup2,
/// chdir and execve.) An error in the child (its `chdir` or `execve`) is returned here.
pub fn spawn_session(spec: &SessionSpec) -> io::Result<u32> {
    use std::ffi::CString;
    let cstr = |s: &str| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let program = cstr(spec.program)?;
    let cwd = cstr(spec.cwd)?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<io::Result<_>>()?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|a| cstr(a))
        .collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // The child reports a failure on this pipe; a successful execve closes it.
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned from here on.
    let (report_r, report_w) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let stdio = spec.stdio;
    let ctty = spec.controlling_terminal;
    // SAFETY: the child calls only async-signal-safe functions on memory made before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls only; the child ends in execve or _exit.
        unsafe {
            let fail = |step: i32| -> ! {
                let report = [step, *libc::__errno_location()];
                libc::write(report_w.as_raw_fd(), report.as_ptr().cast(), 8);
                libc::_exit(127)
            };
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if libc::setsid() < 0 {
                fail(1);
            }
            for (i, &fd) in stdio.iter().enumerate() {
                if libc::dup2(fd, i as libc::c_int) < 0 {
                    fail(2);
                }
            }
            if ctty && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                fail(3);
            }
            if libc::chdir(cwd.as_ptr()) != 0 {
                fail(4);
            }
            libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            fail(5)
        }
    }
    drop(report_w);
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        // SAFETY: reads into the rest of `report`.
        let n = unsafe {
            libc::read(
                report_r.as_raw_fd(),
                report[got..].as_mut_ptr().cast(),
                report.len() - got,
            )
        };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    if got == 0 {
        return Ok(pid as u32);
    }
    let _ = wait_pid(pid as u32);
    let step = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    let what = match step {
        1 => "setsid",
        2 => "dup2",
        3 => "TIOCSCTTY",
        4 => "chdir",
        _ => "execve",
    };
    let e = io::Error::from_raw_os_error(errno);
    Err(io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// Waits for child `pid` to end.
pub fn wait_pid(pid: u32) -> io::Result<crate::ChildExit> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r == pid as libc::pid_t {
            return Ok(if libc::WIFSIGNALED(status) {
                crate::ChildExit::Signaled(libc::WTERMSIG(status))
            } else {
                crate::ChildExit::Exited(libc::WEXITSTATUS(status))
            });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends `signal` to every process of process group `pgid`.
pub fn signal_group(pgid: u32, signal: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(-(pgid as libc::pid_t), signal);
        }
    }
}

/// The terminal state saved by [`RawMode::enter`], for [`restore_terminal`].
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);

/// The host terminal in raw mode (no echo, no line editing, no signals from keys, no output
/// processing): every key goes to the guest as it is typed. Dropping it puts the terminal back.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts the terminal `fd` in raw mode, saving its state for [`restore_terminal`] too (a
    /// signal handler, a panic hook).
    pub fn enter(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the termios in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((fd, saved));
        // SAFETY: `raw` is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: `saved` is the valid termios read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Puts back the terminal state saved by the last [`RawMode::enter`], if it is still changed:
/// for exit paths that never reach the [`RawMode`]'s drop (a panic, a fatal signal).
pub fn restore_terminal() {
    let guard = match SAVED.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    if let Some((fd, saved)) = guard.as_ref() {
        // SAFETY: a valid termios saved by `enter`.
        unsafe { libc::tcsetattr(*fd, libc::TCSADRAIN, saved) };
    }
}

/// The write end of the pipe the signal handler writes to (-1 before [`Signals::catch`]).
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write is async-signal-safe; a full pipe drops the signal, which is fine for
        // signals that only ask to end or to look at the window size again.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Signals taken by a handler and handed, one at a time, to a thread that asks for them
/// ([`Signals::wait`]). A handler, not a blocked mask: programs this process starts get the
/// default dispositions back when they exec (a blocked mask would be inherited, and the standard
/// library's spawn does not always clear it), so they can still be interrupted and terminated.
pub struct Signals {
    read: File,
}

impl Signals {
    /// Catches `signals` from now on (once per process).
    pub fn catch(signals: &[i32]) -> io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors; the write end lives as long as the process.
        let read = unsafe { File::from_raw_fd(fds[0]) };
        // Blocking reads on the read end; the write end stays non-blocking for the handler.
        // SAFETY: fcntl on a valid descriptor.
        unsafe { libc::fcntl(fds[0], libc::F_SETFL, 0) };
        SIGNAL_PIPE.store(fds[1], std::sync::atomic::Ordering::SeqCst);
        for &sig in signals {
            // SAFETY: sigaction is plain data; the handler only writes to a pipe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Signals { read })
    }

    /// Waits for one of the caught signals and returns its number.
    pub fn wait(&self) -> i32 {
        let mut byte = [0u8; 1];
        loop {
            match (&self.read).read(&mut byte) {
                Ok(1) => return i32::from(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The write end never closes; anything else would be a bug: wait on.
                _ => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1: no limit); returns whether it is
/// readable (or hung up).
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// A duplicate of `fd` that closes on exec.
pub fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the new descriptor is owned right after.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_pty_carries_input_to_output_and_knows_its_size() {
        let size = WinSize {
            rows: 33,
            cols: 101,
        };
        let mut pty = Pty::open(Some(size)).unwrap();
        assert!(is_terminal(pty.slave.as_raw_fd()));
        assert_eq!(window_size(pty.slave.as_raw_fd()), Some(size));
        pty.slave.write_all(b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        assert!(poll_readable(pty.master.as_raw_fd(), 5000).unwrap());
        let n = pty.master.read(&mut buf).unwrap();
        // Output processing turns the newline into CR LF.
        assert_eq!(&buf[..n], b"hi\r\n");
    }

    #[test]
    fn caught_signals_reach_the_waiter_and_not_the_programs_started() {
        let signals = Signals::catch(&[libc::SIGWINCH]).unwrap();
        // SAFETY: plain syscall.
        unsafe { libc::raise(libc::SIGWINCH) };
        assert_eq!(signals.wait(), libc::SIGWINCH);
        // A program started now has nothing blocked and SIGWINCH at its default.
        let out = std::process::Command::new("sh")
            .args(["-c", "grep -E '^Sig(Blk|Cgt):' /proc/self/status"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    }

    #[test]
    fn raw_mode_is_put_back() {
        let pty = Pty::open(None).unwrap();
        let fd = pty.slave.as_raw_fd();
        let lflag = || {
            // SAFETY: zeroed termios filled by tcgetattr.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointer.
            unsafe { libc::tcgetattr(fd, &mut t) };
            t.c_lflag
        };
        let before = lflag();
        assert_ne!(before & libc::ECHO, 0);
        {
            let _raw = RawMode::enter(fd).unwrap();
            assert_eq!(lflag() & (libc::ECHO | libc::ICANON | libc::ISIG), 0);
        }
        assert_eq!(lflag(), before);
    }
}
