//! Loading one module file into the kernel, the way the kernel prefers it (libkmod 31's
//! `kmod_module_insert_module`): a plain module, or one compressed with the algorithm the kernel
//! decompresses itself (`/sys/module/compression`), is handed over by file descriptor with
//! `finit_module` (plus `MODULE_INIT_COMPRESSED_FILE` when compressed); any other compressed
//! module is decompressed here and loaded with `init_module`. `force` flags become
//! `MODULE_INIT_IGNORE_*` for `finit_module`, and for `init_module` the `__versions` section and
//! the `vermagic=` string are stripped from the image, as libkmod does.

use std::borrow::Cow;
use std::path::Path;

use kmodlab_modfile::kmod_elf::KmodElf;
use kmodlab_modfile::kmod_file::{Compressions, ModuleFile};
use kmodlab_modfile::Compression;

use crate::kernel_state::Kernel;

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
    let file = ModuleFile::open(path, Compressions::ALL)?;
    let compression = file.compression();

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
        match kernel.syscalls.finit_module(file.file(), options, flags) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => return Err(errno(e)),
        }
    }

    let mut image = file.into_image()?;
    if force.modversion || force.vermagic {
        // An image that is not ELF libkmod can read is passed on as it is (the kernel refuses
        // it), each edit reported as failed with the reader's errno.
        let mut elf = KmodElf::new(&image[..]);
        let mut strip = |what: &str, edit: &dyn Fn(&mut KmodElf) -> Result<(), i32>| {
            if let Err(e) = elf.as_mut().map_err(|e| *e).and_then(edit) {
                info.push(format!(
                    "Failed to strip {what}: {}\n",
                    kmodlab_sys::strerror(e)
                ));
            }
        };
        if force.modversion {
            strip("modversion", &|elf| elf.strip_section(b"__versions"));
        }
        if force.vermagic {
            strip("vermagic", &|elf| elf.strip_vermagic());
        }
        // Copied on the first edit, as libkmod does.
        if let Ok(Cow::Owned(edited)) = elf.map(KmodElf::into_image) {
            image = edited;
        }
    }
    kernel.syscalls.init_module(&image, options).map_err(errno)
}
