//! Loading one module file into the kernel, the way the kernel prefers it (libkmod 31's
//! `kmod_module_insert_module`): a plain module, or one compressed with the algorithm the kernel
//! decompresses itself (`/sys/module/compression`), is handed over by file descriptor with
//! `finit_module` (plus `MODULE_INIT_COMPRESSED_FILE` when compressed); any other compressed
//! module is decompressed here and loaded with `init_module`. `force` flags become
//! `MODULE_INIT_IGNORE_*` for `finit_module`, and for `init_module` the `__versions` section and
//! the `vermagic=` string are stripped from the image, as libkmod does.

use std::io::Read;
use std::path::Path;

use kmodlab_modfile::{decompress, detect_compression, Compression};

use crate::kernel_state::Kernel;
use crate::module_elf::{strip_section, strip_vermagic};

/// What `-f`, `--force-vermagic` and `--force-modversion` ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForceFlags {
    /// Ignore the kernel version magic.
    pub vermagic: bool,
    /// Ignore symbol version hashes.
    pub modversion: bool,
}

/// A message libkmod prints at INFO level while inserting (`Failed to strip ...`).
pub type InfoMessages = Vec<String>;

/// The name `/sys/module/compression` uses for a compression.
fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Xz => "xz",
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
    }
}

/// Inserts the module file at `path` with the parameter string `options`. Returns the errno of
/// the failure; `info` collects libkmod's INFO messages about stripping.
pub fn insert_module_file(
    kernel: &Kernel,
    path: &Path,
    force: ForceFlags,
    options: &str,
    info: &mut InfoMessages,
) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let mut file = std::fs::File::open(path).map_err(errno)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(errno)?;
    let compression = detect_compression(&bytes);

    let kernel_compression = kernel.module_compression();
    if compression == Compression::None
        || kernel_compression.as_deref() == Some(compression_name(compression))
    {
        let mut flags = 0;
        if compression != Compression::None {
            flags |= kmodlab_sys::MODULE_INIT_COMPRESSED_FILE;
        }
        if force.vermagic {
            flags |= kmodlab_sys::MODULE_INIT_IGNORE_VERMAGIC;
        }
        if force.modversion {
            flags |= kmodlab_sys::MODULE_INIT_IGNORE_MODVERSIONS;
        }
        match kernel.syscalls.finit_module(&file, options, flags) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => return Err(errno(e)),
        }
    }

    let image = decompress(&bytes).map_err(|_| libc::EINVAL)?;
    let mut image = image.into_owned();
    if force.modversion {
        if let Err(e) = strip_section(&mut image, "__versions") {
            info.push(format!(
                "Failed to strip modversion: {}\n",
                kmodlab_sys::strerror(e)
            ));
        }
    }
    if force.vermagic {
        if let Err(e) = strip_vermagic(&mut image) {
            info.push(format!(
                "Failed to strip vermagic: {}\n",
                kmodlab_sys::strerror(e)
            ));
        }
    }
    kernel.syscalls.init_module(&image, options).map_err(errno)
}
