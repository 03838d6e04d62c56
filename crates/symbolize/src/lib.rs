//! Crash-report frames to source lines and disassembly, for Linux kernel modules (`.ko`, x86_64)
//! and for a vmlinux with debug information, all in one process (no `addr2line`, no `objdump`).
//!
//! - [`DebugFile`] reads one ELF file once (a `.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz` or a
//!   vmlinux). A module is a relocatable file whose code sections all start at address 0 and
//!   whose DWARF data is unrelocated: each code section gets an address of its own, laid out as
//!   the kernel's module loader lays it out, and the `.rela.debug_*` relocations are applied, so
//!   that `.init.text` and `.exit.text` functions (module init and exit) map to the right lines.
//!   [`DebugFile::locate`] turns `function+offset` into a [`Location`] with its inline chain;
//!   [`DebugFile::disassemble_function`] disassembles a function with its calls named
//!   (`call _printk`) and its source lines.
//! - [`disassemble_code_line`] decodes a report's `Code:` line and marks the faulting
//!   instruction.
//! - [`elf_from_kallsyms`] makes a symbol table gdb can read from a running kernel's
//!   `/proc/kallsyms`, for a kernel without its vmlinux.
//! - [`Symbolizer`] holds module files by name and a vmlinux, and fills the `source` and
//!   `inlined_by` of a [`kmodlab_crash::CrashReport`]'s frames.
//!
//! Return addresses are looked up one byte back (inside the call); a function size in the log
//! that differs from the file's means the file is not the build that crashed, and no line is
//! given for it. Rust symbols are demangled (without hash).
//!
//! ```no_run
//! use kmodlab_symbolize::Symbolizer;
//! let log = std::fs::read_to_string("console.log")?;
//! let mut symbolizer = Symbolizer::new();
//! symbolizer.add_module_dir(std::path::Path::new("labs/kernel_modules/5-oops-mod"))?;
//! for mut report in kmodlab_crash::parse_reports(&log) {
//!     for note in symbolizer.symbolize(&mut report) {
//!         eprintln!("note: {note}");
//!     }
//!     println!("{}: {:?}", report.title, report.source);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Parsing never panics, whatever the bytes of the file.
#![deny(missing_docs)]

mod debugfile;
mod disasm;
mod elf;
mod kallsyms;
mod symbolizer;

use std::fmt;
use std::path::{Path, PathBuf};

pub use debugfile::{DebugFile, LocateError, Location};
pub use disasm::{disassemble_code_line, format_listing, parse_code_line, Instruction};
pub use kallsyms::{elf_from_kallsyms, KallsymsElf};
pub use symbolizer::Symbolizer;

/// A file that could not be read: I/O, decompression or an ELF file this crate cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    path: PathBuf,
    detail: String,
}

impl Error {
    pub(crate) fn new(path: &Path, detail: String) -> Error {
        Error {
            path: path.to_path_buf(),
            detail,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.detail)
    }
}

impl std::error::Error for Error {}
