//! Linux kernel module files (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`), read from bytes.
//!
//! Apart from [`kmod_file::ModuleFile::open`], this crate does no I/O: callers read the file
//! and pass its bytes.
//!
//! - [`detect_compression`] tells xz, zstd and gzip apart by their magic bytes (never by file
//!   name) and [`decompress`] undoes them (xz with liblzma, built from source and linked
//!   statically; zstd and gzip with pure-Rust decoders), borrowing the input when it
//!   is not compressed.
//! - [`parse_module`] reads an uncompressed module: a 64-bit little-endian ELF relocatable file
//!   with `.modinfo` and `.gnu.linkonce.this_module` sections. It returns a [`ModuleInfo`]: the
//!   [`Modinfo`] entries, the module name, the undefined symbols and whether it has init and
//!   exit functions.
//! - [`parse_module_file`] does both.
//! - [`parse_signature`] reads the signature appended to a module image (`CONFIG_MODULE_SIG`):
//!   signer, key identifier, digest algorithm and signature bytes, from the PKCS#7 message or
//!   the older trailer formats, as `kmod`'s `modinfo` shows them (see [`signature`]).
//! - [`without_debug_info`] empties a module's `.debug_*` sections, for a guest that only
//!   loads it.
//! - [`kmod_file`] and [`kmod_elf`] are for the module tools that must behave like kmod's: a
//!   module file opened and decompressed, and its ELF image read, the way libkmod does it,
//!   leniently, with libkmod's errno values for failures.
//!
//! Parsing never panics and never reads out of bounds, whatever the input: section headers,
//! string tables and symbol tables may point anywhere, and every failure is an [`Error`] with
//! an [`ErrorKind`], the offset where it happened and one line of detail (an errno value in
//! [`kmod_file`] and [`kmod_elf`]).
//!
//! ```no_run
//! let bytes = std::fs::read("/lib/modules/6.12.0/kernel/drivers/char/lp.ko.xz")?;
//! let module = kmodlab_modfile::parse_module_file(&bytes)?;
//! println!("{} needs {:?}", module.name, module.modinfo.get("depends"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod compression;
mod elf;
mod error;
pub mod kmod_elf;
pub mod kmod_file;
mod modinfo;
mod module;
pub mod signature;
mod strip;
#[cfg(test)]
mod test_image;

pub use compression::{decompress, detect_compression, Compression};
pub use error::{Error, ErrorKind};
pub use modinfo::{modinfo_from_section, Modinfo};
pub use module::{parse_module, ModuleInfo};
pub use signature::{parse_signature, ModuleSignature};
pub use strip::without_debug_info;

/// Detects the compression, decompresses and parses a module file.
///
/// Same as [`decompress`] followed by [`parse_module`]; error offsets are offsets in the
/// decompressed image.
pub fn parse_module_file(bytes: &[u8]) -> Result<ModuleInfo, Error> {
    parse_module(&decompress(bytes)?)
}
