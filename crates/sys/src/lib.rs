//! The only crate that talks to the kernel with `unsafe` syscalls: loading and unloading modules,
//! mounting, rebooting, file operations relative to an open directory ([`at`]). Everything above
//! it takes these as plain functions and can be tested with a fake.
#![deny(missing_docs)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod at;
mod inotify;
mod kmsg;
pub mod tty;
pub use inotify::DirWatch;
pub use kmsg::{klogctl, read_syslog_buffer, KmsgDevice, KmsgStart, SyslogAction, KMSG_RECORD_MAX};

/// `MODULE_INIT_IGNORE_MODVERSIONS`: ignore symbol version hashes.
pub const MODULE_INIT_IGNORE_MODVERSIONS: u32 = 1;
/// `MODULE_INIT_IGNORE_VERMAGIC`: ignore the kernel version magic.
pub const MODULE_INIT_IGNORE_VERMAGIC: u32 = 2;
/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the file itself.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `finit_module(2)`: loads the module in `file` with the parameter string `params`.
pub fn finit_module(file: &std::fs::File, params: &str, flags: u32) -> io::Result<()> {
    finit_module_with(file, params, flags, || {})
}

/// [`finit_module`], calling `just_before` once the arguments are ready, right before the
/// syscall: nothing is allocated or freed between the two.
pub fn finit_module_with(
    file: &std::fs::File,
    params: &str,
    flags: u32,
    just_before: impl FnOnce(),
) -> io::Result<()> {
    let params = cstring(params)?;
    just_before();
    // SAFETY: the fd is valid for the call, params is a NUL-terminated string.
    check(unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags as libc::c_long,
        )
    })
}

/// `init_module(2)`: loads the module image `image` with the parameter string `params`.
pub fn init_module(image: &[u8], params: &str) -> io::Result<()> {
    init_module_with(image, params, || {})
}

/// [`init_module`], calling `just_before` right before the syscall, as [`finit_module_with`]
/// does.
pub fn init_module_with(image: &[u8], params: &str, just_before: impl FnOnce()) -> io::Result<()> {
    let params = cstring(params)?;
    just_before();
    // SAFETY: image is a valid buffer of the given length, params is NUL-terminated.
    check(unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len() as libc::c_ulong,
            params.as_ptr(),
        )
    })
}

/// `delete_module(2)` with `O_NONBLOCK` (as rmmod does), or with `O_TRUNC` added when `force`.
pub fn delete_module(name: &str, force: bool) -> io::Result<()> {
    delete_module_with(name, force, || {})
}

/// [`delete_module`], calling `just_before` right before the syscall, as [`finit_module_with`]
/// does.
pub fn delete_module_with(name: &str, force: bool, just_before: impl FnOnce()) -> io::Result<()> {
    let name = cstring(name)?;
    let mut flags = libc::O_NONBLOCK;
    if force {
        flags |= libc::O_TRUNC;
    }
    just_before();
    // SAFETY: name is NUL-terminated.
    check(unsafe {
        libc::syscall(
            libc::SYS_delete_module,
            name.as_ptr(),
            flags as libc::c_long,
        )
    })
}

/// Reads the file at `path` into `buf`, from its start until its end or until `buf` is full;
/// returns how many bytes were read. Allocates nothing: for reading a process's own
/// `/proc/self/maps` without changing the areas it lists.
pub fn read_into(path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the pointer and length stay within buf.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        match r {
            0 => break,
            r if r > 0 => n += r as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(n)
}

/// The running kernel's release, as `uname -r` prints it (`uname(2)`'s `release`).
pub fn kernel_release() -> io::Result<String> {
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `mount(2)` of a pseudo filesystem (`proc`, `sysfs`, `devtmpfs`) at `target`.
pub fn mount(fstype: &str, target: &Path) -> io::Result<()> {
    mount_with(fstype, target, "")
}

/// `mount(2)` of a pseudo filesystem at `target` with filesystem options (`mode=1777`).
pub fn mount_with(fstype: &str, target: &Path, options: &str) -> io::Result<()> {
    let src = cstring(fstype)?;
    let data = cstring(options)?;
    let target = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: all pointers are NUL-terminated strings or null.
    let ret = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            if options.is_empty() {
                std::ptr::null()
            } else {
                data.as_ptr().cast()
            },
        )
    };
    check(ret as libc::c_long)
}

/// How to end the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reboot {
    /// Power off (with ACPI) or halt.
    PowerOff,
    /// Restart; with QEMU's `-no-reboot` this ends QEMU.
    Restart,
}

/// Syncs filesystems and ends the machine. Returns only on failure.
pub fn reboot(how: Reboot) -> io::Error {
    let cmd = match how {
        Reboot::PowerOff => libc::RB_POWER_OFF,
        Reboot::Restart => libc::RB_AUTOBOOT,
    };
    // SAFETY: plain syscalls without pointers.
    unsafe {
        libc::sync();
        libc::reboot(cmd);
    }
    io::Error::last_os_error()
}

/// Reaps every exited child without blocking; returns how many were reaped.
pub fn reap_children() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return n;
        }
        n += 1;
    }
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this status.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

/// Runs `f` in a forked child process and waits for it. The child exits with `f`'s return value.
///
/// Used by the guest agent (PID 1) so that an oops in a module's init or exit code kills a child,
/// never init itself. Call it only from a single-threaded process.
pub fn fork_call(f: impl FnOnce() -> i32) -> io::Result<ChildExit> {
    // SAFETY: the caller is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = f();
        // SAFETY: leave the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    wait_child(pid)
}

/// [`fork_call`] with a pipe from the child: `f` gets its writing end, and what the child writes
/// there comes back with how it ended (read until the child exits or closes its end).
pub fn fork_call_piped(f: impl FnOnce(std::fs::File) -> i32) -> io::Result<(ChildExit, Vec<u8>)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills a valid array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made and are owned here alone.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: as for fork_call.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop(read_end);
        let code = f(std::fs::File::from(write_end));
        // SAFETY: leave the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    let mut out = Vec::new();
    // A read error ends what comes back, not the call: the child's end is what matters.
    let _ = io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut out);
    Ok((wait_child(pid)?, out))
}

fn wait_child(pid: libc::pid_t) -> io::Result<ChildExit> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(if libc::WIFSIGNALED(status) {
                ChildExit::Signaled(libc::WTERMSIG(status))
            } else {
                ChildExit::Exited(libc::WEXITSTATUS(status))
            });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Makes a child started from `cmd` receive SIGKILL when the thread that started it dies, so that
/// no QEMU outlives kmodlab, whatever kills kmodlab.
///
/// Without a race: a parent that died between the fork and the `prctl` would never send the
/// signal, so the child checks that its parent is still the process that started it, and exits
/// when it is not.
pub fn kill_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: plain syscall.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl, getppid and _exit are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// A process referred to by a pidfd: signals reach that process, never another that reused its
/// PID after it was reaped.
#[derive(Debug)]
pub struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`. Call it before the process can be reaped (for a child: before
    /// anything waits for it), so that `pid` is still that process.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        // SAFETY: plain syscall; on success it returns a new descriptor we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        Ok(PidFd(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
        }))
    }

    /// Sends `signal`; an error (ESRCH) once the process has exited and was reaped.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd, no siginfo, no flags.
        check(unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        })
    }

    /// Sends SIGKILL.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(libc::SIGKILL)
    }
}

/// Sets the calling thread's name (`comm`, as oops reports print it), truncated to 15 bytes.
pub fn set_comm(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated buffer of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, buf.as_ptr());
    }
}

/// Sends SIGTERM to `pid`: asks it to end.
pub fn terminate(pid: u32) {
    // SAFETY: plain syscall.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Sends SIGKILL to `pid`.
pub fn kill(pid: u32) {
    // SAFETY: plain syscall.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// The name of a signal (`SIGSEGV`), or its number as text.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        n => format!("signal {n}"),
    }
}

/// The symbolic name of an errno value (`ENODEV`), for messages and specs.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::ENOKEY => "ENOKEY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return None,
    })
}

/// The C library's text for an errno value (`No such device`).
pub fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    // std formats as "TEXT (os error N)".
    match s.rfind(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The error text of a failed module load as kmod's insmod words it.
pub fn insmod_strerror(errno: i32) -> String {
    match errno {
        libc::ENOEXEC => "Invalid module format".into(),
        libc::ENOENT => "Unknown symbol in module".into(),
        libc::ESRCH => "Module has wrong symbol version".into(),
        libc::EINVAL => "Invalid parameters".into(),
        _ => strerror(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_drops_the_os_error_suffix() {
        assert_eq!(strerror(libc::ENODEV), "No such device");
    }

    #[test]
    fn insmod_wording_matches_kmod() {
        assert_eq!(insmod_strerror(libc::ENOENT), "Unknown symbol in module");
        assert_eq!(insmod_strerror(libc::ENOEXEC), "Invalid module format");
        assert_eq!(insmod_strerror(libc::EEXIST), "File exists");
    }

    #[test]
    fn fork_call_reports_exit_codes_and_signals() {
        assert_eq!(fork_call(|| 7).unwrap(), ChildExit::Exited(7));
        let sig = fork_call(|| {
            // SAFETY: the child kills itself.
            unsafe { libc::raise(libc::SIGKILL) };
            0
        })
        .unwrap();
        assert_eq!(sig, ChildExit::Signaled(libc::SIGKILL));
    }

    #[test]
    fn fork_call_piped_returns_what_the_child_wrote() {
        let (exit, out) = fork_call_piped(|mut w| {
            use std::io::Write;
            w.write_all(b"from the child").map_or(1, |()| 3)
        })
        .unwrap();
        assert_eq!(exit, ChildExit::Exited(3));
        assert_eq!(out, b"from the child");
        // A child killed before writing anything: nothing comes back, and no hang.
        let (exit, out) = fork_call_piped(|_| {
            // SAFETY: the child kills itself.
            unsafe { libc::raise(libc::SIGKILL) };
            0
        })
        .unwrap();
        assert_eq!(exit, ChildExit::Signaled(libc::SIGKILL));
        assert!(out.is_empty());
    }

    #[test]
    fn read_into_reads_a_whole_file_or_fills_the_buffer() {
        let dir = std::env::temp_dir().join(format!("kmodlab-sys-read-{}", std::process::id()));
        std::fs::write(&dir, b"0123456789").unwrap();
        let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(read_into(&path, &mut buf).unwrap(), 10);
        assert_eq!(&buf[..10], b"0123456789");
        let mut small = [0u8; 4];
        assert_eq!(read_into(&path, &mut small).unwrap(), 4);
        assert_eq!(&small, b"0123");
        std::fs::remove_file(&dir).unwrap();
        let e = read_into(&path, &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // The process's own memory areas, as the guest agent reads them.
        let n = read_into(c"/proc/self/maps", &mut [0u8; 1 << 16]).unwrap();
        assert!(n > 0);
    }

    #[test]
    fn kernel_release_is_uname_r() {
        let r = kernel_release().unwrap();
        assert!(!r.is_empty() && !r.contains('\0'), "{r:?}");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ENODEV), Some("ENODEV"));
        assert_eq!(errno_name(9999), None);
    }

    #[test]
    fn a_pidfd_signals_its_process_and_nothing_after_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = PidFd::open(child.id()).unwrap();
        fd.kill().unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let e = fd.kill().unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ESRCH),
            "reaped: no process to signal"
        );
    }
}
