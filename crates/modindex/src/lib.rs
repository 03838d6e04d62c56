//! The module index: depmod's text files (`modules.dep`, `modules.alias`, ...) and the binary
//! `.bin` tries (magic B007F457, version 2.1), read and written byte for byte as kmod 30 does.
//!
//! Nothing here does I/O: every function takes bytes (or values) and returns bytes (or values)
//! plus the messages kmod would print, as [`Diagnostic`]s.
//!
//! - [`IndexBuilder`] writes a `.bin` index and [`Index`] reads one: exact lookups
//!   ([`Index::lookup`], for `modules.dep.bin`, `modules.symbols.bin`, `modules.builtin.bin`),
//!   wildcard lookups ([`Index::search_wildcard`], for `modules.alias.bin` and
//!   `modules.builtin.alias.bin`) and a dump ([`Index::entries`]).
//! - [`depmod`] is depmod's computation: module order, symbol resolution, dependency sort and
//!   the contents of every output file.
//! - [`config`] parses `depmod.d` files; [`names`] normalises module names and aliases;
//!   [`text`] reads the text files back; [`order`] reproduces the iteration order of kmod's
//!   hash tables, which shows in its outputs; [`fnmatch`] is the wildcard matching of aliases.
//!
//! ```
//! use kmodlab_modindex::{Index, IndexBuilder};
//! let mut builder = IndexBuilder::new();
//! builder.insert(b"vfat", b"kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz", 0)?;
//! let bytes = builder.write();
//! let index = Index::parse(&bytes)?;
//! assert_eq!(index.lookup(b"vfat")?, Some(&b"kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod depmod;
pub mod fnmatch;
pub mod names;
pub mod order;
mod reader;
pub mod text;
mod trie;

pub use reader::{Index, IndexError, IndexErrorKind, Value};
pub use trie::{IndexBuilder, NonAsciiError};

/// How serious a message is: kmod's log priorities, which decide whether it is shown (`-v`
/// raises the threshold) and how it is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `FATAL`: kmod stops (exit status 1).
    Fatal,
    /// `ERROR`.
    Error,
    /// `WARNING`.
    Warning,
    /// `INFO`: shown from `-vv` on.
    Info,
}

impl Level {
    /// The syslog priority kmod logs it with (2 critical ... 6 info).
    pub fn priority(self) -> u8 {
        match self {
            Level::Fatal => 2,
            Level::Error => 3,
            Level::Warning => 4,
            Level::Info => 6,
        }
    }

    /// The label kmod prints: `FATAL`, `ERROR`, `WARNING`, `INFO`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
        }
    }
}

/// A message kmod prints on stderr as `depmod: LABEL: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious it is.
    pub level: Level,
    /// The text, in kmod's wording, ending with a newline as kmod's messages do.
    pub message: String,
}

impl Diagnostic {
    /// A message at `level`.
    pub fn new(level: Level, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level,
            message: message.into(),
        }
    }
}
