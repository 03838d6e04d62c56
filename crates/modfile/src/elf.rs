//! A small reader for 64-bit little-endian ELF relocatable files, just enough for kernel
//! modules: the file header, the section headers with their names and data, and the symbol
//! table. Everything is a view over the input bytes; every read is bounds-checked and every
//! offset and size is validated once, in [`Elf::parse`], the way the kernel's
//! `elf_validity_cache_copy()` validates a module before loading it.

use crate::error::{Error, ErrorKind};

const ELF_MAGIC: &[u8] = b"\x7fELF";
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;

const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ELFDATA2MSB: u8 = 2;
const ET_REL: u16 = 1;

pub(crate) const SHT_NULL: u32 = 0;
pub(crate) const SHT_SYMTAB: u32 = 2;
pub(crate) const SHT_NOBITS: u32 = 8;
pub(crate) const SHF_ALLOC: u64 = 0x2;
pub(crate) const SHN_UNDEF: u16 = 0;
pub(crate) const STB_GLOBAL: u8 = 1;

/// `N` little-endian bytes at `at`, if they are all inside `bytes`.
fn le<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    le(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    le(bytes, at).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    le(bytes, at).map(u64::from_le_bytes)
}

/// The bytes from `at` up to (not including) the next NUL, or `None` when `at` is outside
/// `table` or no NUL follows.
fn c_str_at(table: &[u8], at: usize) -> Option<&[u8]> {
    let tail = table.get(at..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    tail.get(..len)
}

/// A `usize` offset as a `u64` for error messages (lossless on every supported target).
fn off(at: usize) -> u64 {
    u64::try_from(at).unwrap_or(u64::MAX)
}

/// One section: its header fields and its validated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section<'a> {
    /// Index in the section header table.
    pub index: usize,
    /// Name from the section name table, without the NUL.
    pub name: &'a [u8],
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_offset`.
    pub offset: u64,
    /// Offset of the section's header in the section header table.
    pub header_offset: u64,
    /// `sh_link`.
    pub link: u32,
    /// The section's bytes (empty for `SHT_NULL` and `SHT_NOBITS`).
    pub data: &'a [u8],
}

impl Section<'_> {
    /// The name for messages: `.modinfo`, or `#3` when unnamed.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            format!("#{}", self.index)
        } else {
            format!("`{}`", String::from_utf8_lossy(self.name))
        }
    }
}

/// The fields of the ELF file header this reader uses.
struct FileHeader {
    e_type: u16,
    shoff: u64,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

impl FileHeader {
    fn parse(header: &[u8]) -> Option<FileHeader> {
        Some(FileHeader {
            e_type: u16_at(header, 16)?,
            shoff: u64_at(header, 40)?,
            shentsize: u16_at(header, 58)?,
            shnum: u16_at(header, 60)?,
            shstrndx: u16_at(header, 62)?,
        })
    }
}

/// Raw fields of one section header, before validation.
struct RawSection {
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
}

impl RawSection {
    fn parse(record: &[u8]) -> Option<RawSection> {
        Some(RawSection {
            name: u32_at(record, 0)?,
            kind: u32_at(record, 4)?,
            flags: u64_at(record, 8)?,
            addr: u64_at(record, 16)?,
            offset: u64_at(record, 24)?,
            size: u64_at(record, 32)?,
            link: u32_at(record, 40)?,
        })
    }
}

/// A parsed ELF64 little-endian relocatable file.
#[derive(Debug)]
pub(crate) struct Elf<'a> {
    sections: Vec<Section<'a>>,
}

impl<'a> Elf<'a> {
    /// Reads and validates the file header, the section header table, the section name table,
    /// every section name and the bounds of every section's data.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, Error> {
        check_ident(data)?;
        let header = data.get(..EHDR_SIZE).ok_or_else(|| {
            Error::at(
                ErrorKind::Truncated,
                0,
                format!(
                    "ELF header needs {EHDR_SIZE} bytes but the input has {}",
                    data.len()
                ),
            )
        })?;
        let FileHeader {
            e_type,
            shoff,
            shentsize,
            shnum,
            shstrndx,
        } = FileHeader::parse(header)
            .ok_or_else(|| Error::at(ErrorKind::Truncated, 0, "ELF header is cut short"))?;
        if e_type != ET_REL {
            return Err(Error::at(
                ErrorKind::NotRelocatable,
                16,
                format!(
                    "ELF type is {} ({e_type}), kernel modules are ET_REL (1)",
                    elf_type_name(e_type)
                ),
            ));
        }
        let (shentsize, shnum, shstrndx) =
            (u64::from(shentsize), u64::from(shnum), u64::from(shstrndx));

        if shnum == 0 {
            return Err(Error::at(
                ErrorKind::NotAModule,
                60,
                "the ELF file has no section headers",
            ));
        }
        if shentsize != off(SHDR_SIZE) {
            return Err(Error::at(
                ErrorKind::Corrupt,
                58,
                format!("section header size is {shentsize} bytes, ELF64 needs {SHDR_SIZE}"),
            ));
        }
        if shoff < off(EHDR_SIZE) {
            return Err(Error::at(
                ErrorKind::Corrupt,
                40,
                format!("section header table offset {shoff:#x} overlaps the ELF header"),
            ));
        }
        let table_len = shnum.saturating_mul(off(SHDR_SIZE));
        let table_end = shoff.checked_add(table_len).ok_or_else(|| {
            Error::at(
                ErrorKind::Corrupt,
                40,
                format!("section header table offset {shoff:#x} is out of range"),
            )
        })?;
        let table = usize::try_from(shoff)
            .ok()
            .zip(usize::try_from(table_end).ok())
            .and_then(|(start, end)| data.get(start..end))
            .ok_or_else(|| {
                Error::at(
                    ErrorKind::Truncated,
                    shoff,
                    format!(
                        "section header table ({shnum} entries of {SHDR_SIZE} bytes, ending at \
                         {table_end:#x}) runs past the end of the input ({} bytes)",
                        data.len()
                    ),
                )
            })?;

        let raw: Vec<RawSection> = table
            .chunks_exact(SHDR_SIZE)
            .filter_map(RawSection::parse)
            .collect();
        let header_offset =
            |index: usize| shoff.saturating_add(off(index).saturating_mul(off(SHDR_SIZE)));

        match raw.first() {
            Some(s0) if s0.kind == SHT_NULL && s0.size == 0 && s0.addr == 0 => {}
            _ => {
                return Err(Error::at(
                    ErrorKind::Corrupt,
                    shoff,
                    "section 0 is not an empty SHT_NULL section",
                ))
            }
        }

        // The section name table: it must exist, fit in the input and end with a NUL, so that
        // every name read from it is terminated.
        let strndx = usize::try_from(shstrndx).unwrap_or(usize::MAX);
        let strhdr = match raw.get(strndx) {
            Some(s) if strndx != 0 => s,
            _ => {
                return Err(Error::at(
                    ErrorKind::Corrupt,
                    62,
                    format!(
                        "section name table index {shstrndx} is not a section (there are {shnum})"
                    ),
                ))
            }
        };
        let shstrtab = section_data(data, strhdr, || {
            format!("section name table (section #{strndx})")
        })?;
        if shstrtab.last() != Some(&0) {
            return Err(Error::at(
                ErrorKind::Corrupt,
                strhdr.offset,
                format!(
                    "section name table (section #{strndx}) is empty or does not end with a NUL"
                ),
            ));
        }

        let mut sections = Vec::with_capacity(raw.len());
        for (index, s) in raw.iter().enumerate() {
            let name = usize::try_from(s.name)
                .ok()
                .and_then(|at| c_str_at(shstrtab, at))
                .ok_or_else(|| {
                    Error::at(
                        ErrorKind::Corrupt,
                        header_offset(index),
                        format!(
                            "section #{index}: name offset {} is outside the section name table \
                             ({} bytes)",
                            s.name,
                            shstrtab.len()
                        ),
                    )
                })?;
            let data = section_data(data, s, || {
                if name.is_empty() {
                    format!("section #{index}")
                } else {
                    format!("section #{index} `{}`", String::from_utf8_lossy(name))
                }
            })?;
            sections.push(Section {
                index,
                name,
                kind: s.kind,
                flags: s.flags,
                offset: s.offset,
                header_offset: header_offset(index),
                link: s.link,
                data,
            });
        }
        Ok(Elf { sections })
    }

    /// All sections, index 0 (the null section) included.
    pub fn sections(&self) -> &[Section<'a>] {
        &self.sections
    }

    /// The sections named `name`, in index order.
    pub fn sections_named<'s>(
        &'s self,
        name: &'s [u8],
    ) -> impl Iterator<Item = &'s Section<'a>> + 's {
        self.sections.iter().skip(1).filter(move |s| s.name == name)
    }

    /// A lazy, fallible iterator over the entries of the symbol table `symtab`.
    pub fn symbols(&self, symtab: &Section<'a>) -> Result<Symbols<'a>, Error> {
        let strtab = usize::try_from(symtab.link)
            .ok()
            .filter(|&link| link != 0)
            .and_then(|link| self.sections.get(link))
            .ok_or_else(|| {
                Error::at(
                    ErrorKind::Corrupt,
                    symtab.header_offset,
                    format!(
                        "symbol table {} links to string table #{}, which is not a section",
                        symtab.display_name(),
                        symtab.link
                    ),
                )
            })?;
        Ok(Symbols {
            entries: symtab.data.chunks_exact(SYM_SIZE),
            strtab: strtab.data,
            offset: symtab.offset,
            index: 0,
        })
    }
}

/// The data of section `s`, or an error naming it (`what`) when it lies outside the input.
fn section_data<'a>(
    data: &'a [u8],
    s: &RawSection,
    what: impl Fn() -> String,
) -> Result<&'a [u8], Error> {
    if s.kind == SHT_NULL || s.kind == SHT_NOBITS {
        return Ok(&[]);
    }
    let end = s.offset.checked_add(s.size).ok_or_else(|| {
        Error::at(
            ErrorKind::Corrupt,
            s.offset,
            format!(
                "{}: offset {:#x} plus size {:#x} overflows",
                what(),
                s.offset,
                s.size
            ),
        )
    })?;
    usize::try_from(s.offset)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(start, end)| data.get(start..end))
        .ok_or_else(|| {
            Error::at(
                ErrorKind::Truncated,
                s.offset,
                format!(
                    "{} ({} bytes, ending at {end:#x}) runs past the end of the input ({} bytes)",
                    what(),
                    s.size,
                    data.len()
                ),
            )
        })
}

/// Checks `e_ident`: the magic, a 64-bit class and little-endian data.
fn check_ident(data: &[u8]) -> Result<(), Error> {
    if data.is_empty() {
        return Err(Error::new(ErrorKind::NotElf, None, "the input is empty"));
    }
    if !data.starts_with(ELF_MAGIC) {
        if ELF_MAGIC.starts_with(data) {
            return Err(Error::at(
                ErrorKind::Truncated,
                0,
                format!("the input ends after {} bytes of the ELF magic", data.len()),
            ));
        }
        return Err(Error::new(
            ErrorKind::NotElf,
            None,
            "the input does not start with the ELF magic 7f 45 4c 46",
        ));
    }
    let (Some(&class), Some(&encoding)) = (data.get(4), data.get(5)) else {
        return Err(Error::at(
            ErrorKind::Truncated,
            0,
            format!(
                "ELF header needs {EHDR_SIZE} bytes but the input has {}",
                data.len()
            ),
        ));
    };
    match class {
        ELFCLASS64 => {}
        ELFCLASS32 => {
            return Err(Error::at(
                ErrorKind::NotAModule,
                4,
                "32-bit ELF (ELFCLASS32): only 64-bit modules are supported",
            ))
        }
        other => {
            return Err(Error::at(
                ErrorKind::Corrupt,
                4,
                format!("invalid ELF class {other}"),
            ))
        }
    }
    match encoding {
        ELFDATA2LSB => Ok(()),
        ELFDATA2MSB => Err(Error::at(
            ErrorKind::NotAModule,
            5,
            "big-endian ELF (ELFDATA2MSB): only little-endian modules are supported",
        )),
        other => Err(Error::at(
            ErrorKind::Corrupt,
            5,
            format!("invalid ELF data encoding {other}"),
        )),
    }
}

fn elf_type_name(e_type: u16) -> &'static str {
    match e_type {
        0 => "ET_NONE",
        1 => "ET_REL",
        2 => "ET_EXEC",
        3 => "ET_DYN",
        4 => "ET_CORE",
        _ => "unknown",
    }
}

/// One entry of a symbol table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol<'a> {
    /// Name from the linked string table, without the NUL (empty for `st_name == 0`).
    pub name: &'a [u8],
    /// Binding, the high nibble of `st_info` (`STB_LOCAL`, `STB_GLOBAL`, `STB_WEAK`, ...).
    pub bind: u8,
    /// `st_shndx`: the section the symbol is defined in, or `SHN_UNDEF`.
    pub shndx: u16,
}

/// Iterator over a symbol table's entries; yields an error (and then stops) at the first entry
/// whose name is out of the string table.
pub(crate) struct Symbols<'a> {
    entries: std::slice::ChunksExact<'a, u8>,
    strtab: &'a [u8],
    offset: u64,
    index: usize,
}

impl<'a> Iterator for Symbols<'a> {
    type Item = Result<Symbol<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next()?;
        let index = self.index;
        self.index += 1;
        let st_name = u32_at(entry, 0).unwrap_or_default();
        let st_info = entry.get(4).copied().unwrap_or_default();
        let shndx = u16_at(entry, 6).unwrap_or_default();
        let name = if st_name == 0 {
            Some(&[][..])
        } else {
            usize::try_from(st_name)
                .ok()
                .and_then(|at| c_str_at(self.strtab, at))
        };
        let Some(name) = name else {
            // Stop after the first error.
            self.entries = [].chunks_exact(SYM_SIZE);
            return Some(Err(Error::at(
                ErrorKind::Corrupt,
                self.offset
                    .saturating_add(off(index).saturating_mul(off(SYM_SIZE))),
                format!(
                    "symbol #{index}: name offset {st_name} is outside the string table ({} \
                     bytes) or not NUL-terminated",
                    self.strtab.len()
                ),
            )));
        };
        Some(Ok(Symbol {
            name,
            bind: st_info >> 4,
            shndx,
        }))
    }
}
