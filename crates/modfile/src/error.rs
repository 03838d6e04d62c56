//! The crate's error type: a kind, an optional byte offset and one line of detail.

use std::fmt;

/// What went wrong while reading a module file.
///
/// Match on it through [`Error::kind`]; new kinds may be added.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input does not start with the ELF magic `\x7fELF` (and is not compressed data that
    /// does once decompressed).
    NotElf,
    /// The input ends before a header, table or section that it describes.
    Truncated,
    /// The ELF file is not relocatable (`e_type` is not `ET_REL`), as every kernel module is.
    NotRelocatable,
    /// The ELF file is readable but not a kernel module this crate can parse: it has no
    /// `.modinfo`, no `.gnu.linkonce.this_module`, no symbol table, or it is not a 64-bit
    /// little-endian ELF file.
    NotAModule,
    /// A header field, table or string is inconsistent (an index or offset out of range, a
    /// string without its terminating NUL, a duplicated section the kernel refuses, ...).
    Corrupt,
    /// The compressed data (xz, zstd or gzip) could not be decompressed.
    Decompress,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotElf => "not an ELF file",
            ErrorKind::Truncated => "truncated module file",
            ErrorKind::NotRelocatable => "not a relocatable ELF file",
            ErrorKind::NotAModule => "not a kernel module",
            ErrorKind::Corrupt => "corrupt module file",
            ErrorKind::Decompress => "cannot decompress module file",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from decompressing or parsing a module file.
///
/// It displays as one line: the kind, the byte offset in the (decompressed) ELF image where the
/// problem is when there is one, and the detail, e.g. `truncated module file at offset 0xabf8:
/// section header table (51 entries of 64 bytes, ending at 0xb8b8) runs past the end of the
/// input (30000 bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: Option<u64>,
    detail: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, offset: Option<u64>, detail: impl Into<String>) -> Error {
        Error {
            kind,
            offset,
            detail: detail.into(),
        }
    }

    pub(crate) fn at(kind: ErrorKind, offset: u64, detail: impl Into<String>) -> Error {
        Error::new(kind, Some(offset), detail)
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The byte offset of the problem in the uncompressed ELF image, when there is one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The detail of the problem, without the kind or the offset.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset:#x}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_kind_detail_and_offset() {
        let e = Error::at(ErrorKind::Truncated, 0x40, "section header table");
        assert_eq!(
            e.to_string(),
            "truncated module file at offset 0x40: section header table"
        );
        let e = Error::new(ErrorKind::NotElf, None, "");
        assert_eq!(e.to_string(), "not an ELF file");
        assert_eq!(e.kind(), ErrorKind::NotElf);
        assert_eq!(e.offset(), None);
    }
}
