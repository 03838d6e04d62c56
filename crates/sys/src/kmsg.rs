//! The kernel log: `/dev/kmsg` (one record per read) and `syslog(2)` (`klogctl`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Where reading `/dev/kmsg` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KmsgStart {
    /// The first record kept since the last `syslog(SYSLOG_ACTION_CLEAR)`.
    AfterClear,
    /// Only records written from now on.
    End,
}

/// `/dev/kmsg` opened for reading.
pub struct KmsgDevice {
    file: File,
}

/// The largest record `/dev/kmsg` returns, plus room for the dictionary.
pub const KMSG_RECORD_MAX: usize = 8192;

impl KmsgDevice {
    /// Opens `/dev/kmsg`; `blocking` reads wait for the next record instead of ending.
    pub fn open(blocking: bool, start: KmsgStart) -> io::Result<KmsgDevice> {
        let mut o = OpenOptions::new();
        o.read(true);
        if !blocking {
            o.custom_flags(libc::O_NONBLOCK);
        }
        let file = o.open("/dev/kmsg")?;
        let whence = match start {
            KmsgStart::AfterClear => libc::SEEK_DATA,
            KmsgStart::End => libc::SEEK_END,
        };
        // SAFETY: lseek on an open descriptor; the result is only a position.
        unsafe { libc::lseek(file.as_raw_fd(), 0, whence) };
        Ok(KmsgDevice { file })
    }

    /// Reads the next record into `buf`: its length, or `None` when a non-blocking read has no
    /// more. A record overwritten while being read (`EPIPE`) is skipped: the sequence numbers
    /// then show the gap.
    pub fn read_record(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.file.read(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for KmsgDevice {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

/// `syslog(2)` actions used by dmesg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum SyslogAction {
    /// Read the whole buffer.
    ReadAll = 3,
    /// Read the whole buffer, then clear it.
    ReadClear = 4,
    /// Clear the buffer.
    Clear = 5,
    /// Stop printing messages to the console.
    ConsoleOff = 6,
    /// Print messages to the console again.
    ConsoleOn = 7,
    /// Set the console log level.
    ConsoleLevel = 8,
    /// The size of the buffer.
    SizeBuffer = 10,
}

/// `klogctl(action, buf, len)`: the kernel's return value.
pub fn klogctl(action: SyslogAction, buf: Option<&mut [u8]>, len: i32) -> io::Result<i32> {
    let (ptr, len) = match buf {
        Some(b) => (
            b.as_mut_ptr() as *mut libc::c_char,
            b.len().min(i32::MAX as usize) as i32,
        ),
        None => (std::ptr::null_mut(), len),
    };
    // SAFETY: the kernel writes at most `len` bytes to `ptr`, which is `buf` or null.
    let r = unsafe { libc::klogctl(action as i32, ptr, len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The whole syslog(2) buffer (`SYSLOG_ACTION_READ_ALL` or `READ_CLEAR`), growing the read
/// buffer until it holds everything; `size` fixes the buffer size instead.
pub fn read_syslog_buffer(action: SyslogAction, size: Option<usize>) -> io::Result<Vec<u8>> {
    let mut sz = match size {
        Some(s) => s + 8,
        None => match klogctl(SyslogAction::SizeBuffer, None, 0) {
            Ok(n) if n > 0 => n as usize + 8,
            _ => 16392,
        },
    };
    loop {
        let mut buf = vec![0u8; sz];
        let n = klogctl(action, Some(&mut buf), 0)? as usize;
        if n < sz || size.is_some() || sz > 1 << 28 {
            buf.truncate(n);
            return Ok(buf);
        }
        sz *= 4;
    }
}
