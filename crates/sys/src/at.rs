//! File operations relative to an open directory (`openat(2)` and friends), for code that must
//! not be redirected by symbolic links or by a directory renamed under it: none of these
//! follows a symbolic link in `name`, and `name` is one path component (it may not contain `/`).
//! Directories are plain [`File`]s opened on the directory.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// `name` as a C string; `EINVAL` when it is not one path component.
fn component(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open(dir: &File, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
    let name = component(name)?;
    // SAFETY: the directory fd is open for the call and name is NUL-terminated; a non-negative
    // result is a new descriptor that nothing else owns.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor (see above).
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens the directory `name` in `dir` for reading (`O_DIRECTORY|O_NOFOLLOW`): `ELOOP` or
/// `ENOTDIR` when `name` is a symbolic link.
pub fn open_dir(dir: &File, name: &OsStr) -> io::Result<File> {
    open(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens `name` in `dir` itself, without following it when it is a symbolic link (`O_PATH`):
/// for [`File::metadata`] and [`read_link`] on the link.
pub fn open_path(dir: &File, name: &OsStr) -> io::Result<File> {
    open(dir, name, libc::O_PATH, 0)
}

/// The target of the symbolic link opened with [`open_path`] (`readlinkat(fd, "")`).
pub fn read_link(link: &File) -> io::Result<OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the fd is open for the call, the empty path is NUL-terminated and buf is valid for
    // buf.len() bytes.
    let len = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(OsString::from_vec(buf))
}

/// Opens the existing file `name` in `dir` for reading (`O_NOFOLLOW`: `ELOOP` for a symbolic
/// link; `O_NONBLOCK`: a FIFO does not block the open).
pub fn open_file(dir: &File, name: &OsStr) -> io::Result<File> {
    open(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
}

/// Creates the file `name` in `dir` for writing, with `mode` (less the umask), failing with
/// `EEXIST` when anything is there already, a symbolic link included
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`).
pub fn create_new(dir: &File, name: &OsStr, mode: u32) -> io::Result<File> {
    open(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode as libc::mode_t,
    )
}

/// Creates the directory `name` in `dir` with `mode` (less the umask).
pub fn make_dir(dir: &File, name: &OsStr, mode: u32) -> io::Result<()> {
    let name = component(name)?;
    // SAFETY: the fd is open for the call and name is NUL-terminated.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

/// Renames `from` to `to`, both in `dir` (`renameat`: a symbolic link at `to` is replaced, not
/// followed).
pub fn rename(dir: &File, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (from, to) = (component(from)?, component(to)?);
    // SAFETY: the fd is open for the call and both names are NUL-terminated.
    check(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
}

/// Makes `to` a new name of the file `from`, both in `dir` (`linkat` without
/// `AT_SYMLINK_FOLLOW`): `EEXIST` when `to` exists, so that of two concurrent writers exactly one
/// installs its file.
pub fn hard_link(dir: &File, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (from, to) = (component(from)?, component(to)?);
    // SAFETY: the fd is open for the call and both names are NUL-terminated.
    check(unsafe {
        libc::linkat(
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    })
}

/// Removes the file (or symbolic link) `name` in `dir`.
pub fn remove_file(dir: &File, name: &OsStr) -> io::Result<()> {
    let name = component(name)?;
    // SAFETY: the fd is open for the call and name is NUL-terminated.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

/// The effective user id of the process (`geteuid(2)`).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Fills `buf` from the kernel's random number generator (`getrandom(2)`, blocking until it is
/// seeded).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: rest is valid for rest.len() bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kmodlab-sys-at-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn never_follows_links() {
        let root = temp("links");
        std::fs::write(root.join("victim"), b"keep").unwrap();
        symlink(root.join("victim"), root.join("link")).unwrap();
        symlink(&root, root.join("dirlink")).unwrap();
        let dir = File::open(&root).unwrap();
        let os = OsStr::new;

        let e = create_new(&dir, os("link"), 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        let e = open_file(&dir, os("link")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(open_dir(&dir, os("dirlink")).is_err());
        let link = open_path(&dir, os("link")).unwrap();
        assert!(link.metadata().unwrap().file_type().is_symlink());
        assert_eq!(
            read_link(&link).unwrap(),
            root.join("victim").into_os_string()
        );

        let mut f = create_new(&dir, os("new"), 0o600).unwrap();
        f.write_all(b"data").unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o7777, 0o600);
        rename(&dir, os("new"), os("link")).unwrap();
        let mut s = String::new();
        open_file(&dir, os("link"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "data");
        assert_eq!(std::fs::read(root.join("victim")).unwrap(), b"keep");

        std::fs::write(root.join("other"), b"x").unwrap();
        assert_eq!(
            hard_link(&dir, os("other"), os("link"))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EEXIST)
        );
        hard_link(&dir, os("other"), os("other2")).unwrap();
        assert_eq!(std::fs::read(root.join("other2")).unwrap(), b"x");

        make_dir(&dir, os("sub"), 0o700).unwrap();
        assert!(open_dir(&dir, os("sub")).is_ok());
        remove_file(&dir, os("link")).unwrap();
        assert!(open_path(&dir, os("link")).is_err());
        for bad in ["", "a/b", "/x"] {
            assert_eq!(
                open_file(&dir, os(bad)).unwrap_err().raw_os_error(),
                Some(libc::EINVAL)
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn effective_uid_is_the_owner_of_new_files() {
        use std::os::unix::fs::MetadataExt;
        let root = temp("uid");
        assert_eq!(std::fs::metadata(&root).unwrap().uid(), effective_uid());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn random_bytes_fill_the_buffer() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        random_bytes(&mut a).unwrap();
        random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
