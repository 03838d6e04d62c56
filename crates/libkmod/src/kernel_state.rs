//! What the running kernel says about its modules, read the way libkmod reads it
//! (`/proc/modules`, `/sys/module/NAME/{initstate,refcnt,coresize,holders}`,
//! `/sys/module/compression`, `/proc/cmdline`), and the module syscalls. Every path and the
//! syscalls can be replaced, so the tools can be tested against a fake kernel.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The module syscalls (`kmodlab_sys` on a real system; a fake in tests).
pub trait ModuleSyscalls {
    /// `finit_module(2)`.
    fn finit_module(&self, file: &File, params: &str, flags: u32) -> io::Result<()>;
    /// `init_module(2)`.
    fn init_module(&self, image: &[u8], params: &str) -> io::Result<()>;
    /// `delete_module(2)` with `O_NONBLOCK`, plus `O_TRUNC` when `force`.
    fn delete_module(&self, name: &str, force: bool) -> io::Result<()>;
}

/// The real syscalls.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSyscalls;

impl ModuleSyscalls for RealSyscalls {
    fn finit_module(&self, file: &File, params: &str, flags: u32) -> io::Result<()> {
        kmodlab_sys::finit_module(file, params, flags)
    }
    fn init_module(&self, image: &[u8], params: &str) -> io::Result<()> {
        kmodlab_sys::init_module(image, params)
    }
    fn delete_module(&self, name: &str, force: bool) -> io::Result<()> {
        kmodlab_sys::delete_module(name, force)
    }
}

/// Where the kernel's module state is read from, and how modules are loaded and removed.
pub struct Kernel {
    /// `/sys/module`.
    pub sys_module: PathBuf,
    /// `/proc/modules`.
    pub proc_modules: PathBuf,
    /// `/proc/cmdline`.
    pub proc_cmdline: PathBuf,
    /// The kernel release (`uname -r`); `None` to ask the running kernel.
    pub release: Option<String>,
    /// Where module trees live by default (`/lib/modules`; the tree is `lib_modules/RELEASE`).
    pub lib_modules: PathBuf,
    /// The module syscalls.
    pub syscalls: Box<dyn ModuleSyscalls>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("sys_module", &self.sys_module)
            .field("proc_modules", &self.proc_modules)
            .field("proc_cmdline", &self.proc_cmdline)
            .field("release", &self.release)
            .field("lib_modules", &self.lib_modules)
            .finish_non_exhaustive()
    }
}

impl Default for Kernel {
    fn default() -> Kernel {
        Kernel::host()
    }
}

/// A module's state as `/sys/module/NAME/initstate` tells it (`KMOD_MODULE_*` without builtin,
/// which comes from `modules.builtin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitState {
    /// `live`.
    Live,
    /// `coming`, or a `/sys/module/NAME` directory without `initstate`.
    Coming,
    /// `going`.
    Going,
}

/// Why a sysfs attribute could not be read: an errno, and for unknown contents the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysfsError {
    /// The file could not be opened (errno).
    Open(i32),
    /// It was read but holds something unexpected.
    Invalid(String),
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `strtol(buf, &end, 10)` followed by libkmod's check that a blank follows the number.
fn read_long(bytes: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1i64, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let next = digits.as_bytes().get(n).copied();
    if !next.is_some_and(|c| c.is_ascii_whitespace() || c == 0x0b) {
        return None;
    }
    digits[..n].parse::<i64>().ok().map(|v| v * sign)
}

/// The contents of `/sys/module/NAME/initstate` (at most 31 bytes of them are looked at).
fn read_initstate(bytes: &[u8]) -> Result<InitState, SysfsError> {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(31)]).into_owned();
    match s.as_str() {
        "live\n" => Ok(InitState::Live),
        "coming\n" => Ok(InitState::Coming),
        "going\n" => Ok(InitState::Going),
        _ => Err(SysfsError::Invalid(s)),
    }
}

/// The module names of `/proc/modules` (its `text`), in order: each line's first word.
fn proc_modules_names(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split([' ', '\t']).find(|w| !w.is_empty()))
        .map(str::to_string)
        .collect()
}

/// The size `/proc/modules` (its `text`) gives module `name`: the second word of the first line
/// whose first word is `name`; `-ENOENT` when there is none or it is not a number.
fn proc_modules_size(text: &[u8], name: &str) -> i64 {
    for line in String::from_utf8_lossy(text).lines() {
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        if words.next() != Some(name) {
            continue;
        }
        return words
            .next()
            .and_then(|w| w.parse::<i64>().ok())
            .unwrap_or(-(libc::ENOENT as i64));
    }
    -(libc::ENOENT as i64)
}

/// What kmod makes of some bytes read from the kernel, for the `sysfs_values` fuzz target.
#[doc(hidden)]
#[derive(Debug)]
pub struct FuzzKernelValues {
    /// The bytes as a sysfs number (`refcnt`, `coresize`); `None` is `EINVAL`.
    pub number: Option<i64>,
    /// The bytes as `/sys/module/NAME/initstate`.
    pub initstate: Result<InitState, SysfsError>,
    /// The bytes as `/proc/modules`: the loaded modules' names.
    pub names: Vec<String>,
    /// The size `/proc/modules` gives each of the first 16 names.
    pub sizes: Vec<i64>,
}

/// Reads `bytes` as each file kmod reads from `/sys/module` and `/proc/modules`, for the
/// `sysfs_values` fuzz target.
#[doc(hidden)]
pub fn fuzz_kernel_values(bytes: &[u8]) -> FuzzKernelValues {
    let names = proc_modules_names(bytes);
    let sizes = names
        .iter()
        .take(16)
        .map(|n| proc_modules_size(bytes, n))
        .collect();
    FuzzKernelValues {
        number: read_long(&bytes[..bytes.len().min(31)]),
        initstate: read_initstate(bytes),
        names,
        sizes,
    }
}

impl Kernel {
    /// The running system: `/sys/module`, `/proc/modules`, `/proc/cmdline`, the real syscalls.
    pub fn host() -> Kernel {
        Kernel {
            sys_module: PathBuf::from("/sys/module"),
            proc_modules: PathBuf::from("/proc/modules"),
            proc_cmdline: PathBuf::from("/proc/cmdline"),
            release: None,
            lib_modules: PathBuf::from("/lib/modules"),
            syscalls: Box::new(RealSyscalls),
        }
    }

    /// A kernel whose files all live under `root` (`root/sys/module`, `root/proc/modules`,
    /// `root/proc/cmdline`, module trees in `root/lib/modules`), with the given syscalls.
    pub fn fake(root: &Path, release: &str, syscalls: Box<dyn ModuleSyscalls>) -> Kernel {
        Kernel {
            sys_module: root.join("sys/module"),
            proc_modules: root.join("proc/modules"),
            proc_cmdline: root.join("proc/cmdline"),
            release: Some(release.to_string()),
            lib_modules: root.join("lib/modules"),
            syscalls,
        }
    }

    /// The kernel release, `uname -r`.
    pub fn release(&self) -> io::Result<String> {
        match &self.release {
            Some(r) => Ok(r.clone()),
            None => kmodlab_sys::kernel_release(),
        }
    }

    fn module_dir(&self, name: &str) -> PathBuf {
        self.sys_module.join(name)
    }

    /// `/sys/module/NAME/initstate` (the sysfs half of `kmod_module_get_initstate`). An error is
    /// the errno of opening it when the module directory does not exist either.
    pub fn initstate(&self, name: &str) -> Result<InitState, SysfsError> {
        let path = self.module_dir(name).join("initstate");
        match std::fs::read(&path) {
            Ok(bytes) => read_initstate(&bytes),
            Err(e) => {
                if self.module_dir(name).is_dir() {
                    Ok(InitState::Coming)
                } else {
                    Err(SysfsError::Open(errno_of(&e)))
                }
            }
        }
    }

    /// `/sys/module/NAME/refcnt` (`kmod_module_get_refcnt`).
    pub fn refcnt(&self, name: &str) -> Result<i64, SysfsError> {
        let path = self.module_dir(name).join("refcnt");
        let bytes = std::fs::read(&path).map_err(|e| SysfsError::Open(errno_of(&e)))?;
        read_long(&bytes[..bytes.len().min(31)])
            .ok_or_else(|| SysfsError::Invalid(kmodlab_sys::strerror(libc::EINVAL)))
    }

    /// The modules holding NAME, in directory order (`kmod_module_get_holders`).
    pub fn holders(&self, name: &str) -> io::Result<Vec<String>> {
        let dir = self.module_dir(name).join("holders");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            out.push(name);
        }
        Ok(out)
    }

    /// The path of NAME's holders directory, for messages.
    pub fn holders_path(&self, name: &str) -> String {
        self.module_dir(name).join("holders").display().to_string()
    }

    /// The module's size (`kmod_module_get_size`): `coresize` in sysfs, else its `/proc/modules`
    /// line; a negative errno when the module is not in sysfs.
    pub fn size(&self, name: &str) -> i64 {
        let dir = self.module_dir(name);
        if let Err(e) = std::fs::read_dir(&dir) {
            return -(errno_of(&e) as i64);
        }
        match std::fs::read(dir.join("coresize")) {
            Ok(bytes) => read_long(&bytes[..bytes.len().min(31)]).unwrap_or(-(libc::ENOENT as i64)),
            Err(_) => {
                let Ok(text) = std::fs::read(&self.proc_modules) else {
                    return -(libc::ENOENT as i64);
                };
                proc_modules_size(&text, name)
            }
        }
    }

    /// The names of the loaded modules, in `/proc/modules` order.
    pub fn loaded_modules(&self) -> io::Result<Vec<String>> {
        let text = std::fs::read(&self.proc_modules)?;
        Ok(proc_modules_names(&text))
    }

    /// The compression the kernel decompresses modules with (`/sys/module/compression`).
    pub fn module_compression(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.sys_module.join("compression")).ok()?;
        Some(text.trim_end_matches('\n').to_string())
    }

    /// The kernel command line, `None` when it cannot be read.
    pub fn cmdline(&self) -> Option<Vec<u8>> {
        std::fs::read(&self.proc_cmdline).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_libkmod_reads_them() {
        assert_eq!(read_long(b"3\n"), Some(3));
        assert_eq!(read_long(b"-2\n"), Some(-2));
        assert_eq!(read_long(b"3"), None);
        assert_eq!(read_long(b"x\n"), None);
    }
}
