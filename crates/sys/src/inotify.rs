//! Watching a directory for changed files (inotify), for rebuild-on-save.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// An inotify instance watching one directory.
pub struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    /// Watches `dir` for files written and closed, created, deleted or renamed.
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: plain syscall; the descriptor is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = super::cstring(&dir.to_string_lossy())?;
        let mask = libc::IN_CLOSE_WRITE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_CREATE
            | libc::IN_DELETE;
        // SAFETY: valid descriptor and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirWatch { fd })
    }

    /// Waits for changes, at most `timeout` (`None`: as long as it takes), and returns the
    /// names of the files that changed (empty when the time ran out).
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<String>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: reads at most buf.len() bytes into buf.
        let len = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(parse_events(&buf[..len as usize]))
    }
}

/// The file names in a buffer of `struct inotify_event`s.
fn parse_events(mut b: &[u8]) -> Vec<String> {
    const HEADER: usize = 16; // wd, mask, cookie, len
    let mut names = Vec::new();
    while b.len() >= HEADER {
        let len = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]) as usize;
        let Some(name) = b.get(HEADER..HEADER + len) else {
            break;
        };
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        if !name.is_empty() {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        b = &b[HEADER + len..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_file_written_in_the_directory() {
        let dir = std::env::temp_dir().join(format!("kmodlab-inotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = DirWatch::new(&dir).unwrap();
        assert!(w.wait(Some(Duration::from_millis(10))).unwrap().is_empty());
        std::fs::write(dir.join("hello.c"), b"int x;").unwrap();
        let names = w.wait(Some(Duration::from_secs(5))).unwrap();
        assert!(names.iter().any(|n| n == "hello.c"), "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_event_records() {
        let mut b = Vec::new();
        for name in ["a.c", ""] {
            b.extend_from_slice(&1i32.to_ne_bytes());
            b.extend_from_slice(&8u32.to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            b.extend_from_slice(&16u32.to_ne_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(16, 0);
            b.extend_from_slice(&n);
        }
        assert_eq!(parse_events(&b), ["a.c"]);
        assert!(parse_events(&b[..20]).is_empty());
    }
}
