//! A module image as libkmod's ELF reader sees it (`libkmod/libkmod-elf.c` of kmod 30), for the
//! module tools that must behave like kmod's: modinfo's `.modinfo` strings, depmod's exported
//! and needed symbols, modprobe's `--show-modversions` and `--show-exports`, and the two edits
//! of a forced load.
//!
//! It is as lenient as libkmod, and as strict: 32- and 64-bit, little- and big-endian ELF files
//! of any type are read; only the ELF header, the section header table and the section name
//! table need to be sound. A section is found by name (the first one, from index 1, whose data
//! lies inside the file); sections whose data does not fit are skipped. Failures are the errno
//! values libkmod returns, so that the tools' messages match kmod's: `ENOEXEC` (not ELF),
//! `EINVAL` (ELF that libkmod cannot read, a table of the wrong size), `ENOENT` (no such
//! section). Every read is bounds-checked: no input makes it panic or read out of bounds. Where
//! libkmod would read past the end of the file (a string without its NUL), the string ends at
//! the end of the file; where libkmod asserts (a section name table index of 0), the file is
//! `EINVAL`.
//!
//! [`KmodElf`] is this crate's only reader of this kind; [`crate::parse_module`] is the strict
//! parser for modules kmodlab builds and checks.

use std::borrow::Cow;
use std::collections::HashMap;

use libc::{EINVAL, ENOENT, ENOEXEC};

const EI_NIDENT: usize = 16;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
const SHF_ALLOC: u64 = 0x2;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STT_REGISTER: u8 = 13;
const EM_SPARC: u16 = 2;
const EM_SPARCV9: u16 = 43;
/// One `__versions` entry: a CRC (4 bytes in a 32-bit file, 8 in a 64-bit one), then the name.
const MODVERSION_SIZE: u64 = 64;
const CRC_PREFIX: &[u8] = b"__crc_";
const VERMAGIC: &[u8] = b"vermagic=";

/// How a symbol is bound, as libkmod reports it (`enum kmod_symbol_bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bind {
    /// Neither of the others (an ELF binding libkmod does not name).
    None,
    /// `STB_LOCAL`.
    Local,
    /// `STB_GLOBAL`; every export read from `__ksymtab_strings`.
    Global,
    /// `STB_WEAK`: a needed symbol the module loads without.
    Weak,
    /// A needed symbol (undefined, not weak), and every `__versions` entry.
    Undef,
}

/// A symbol with its CRC (libkmod's `struct kmod_modversion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The name, as in the file (up to its NUL, or to the end of the file without one).
    pub name: &'a [u8],
    /// The CRC: from `__versions`, or what a `__crc_` symbol gives; `u64::MAX` when a `__crc_`
    /// symbol points where no CRC can be read; 0 when there is none.
    pub crc: u64,
    /// How the symbol is bound.
    pub bind: Bind,
}

/// A module image read as libkmod's `struct kmod_elf`: the ELF header and the section name
/// table checked, everything else read on demand.
///
/// The image is borrowed, or owned when the caller hands it over; like libkmod's, it is copied
/// on the first edit of a borrowed image ([`KmodElf::strip_section`],
/// [`KmodElf::strip_vermagic`]) and [`KmodElf::into_image`] gives it back, edited.
#[derive(Debug, Clone)]
pub struct KmodElf<'a> {
    image: Cow<'a, [u8]>,
    is64: bool,
    msb: bool,
    shoff: u64,
    shnum: u16,
    machine: u16,
    /// Offset and size of the section name table (not empty, ends with NUL).
    names: (u64, u64),
}

/// Where a section's data is, and where its name is in the section name table.
#[derive(Debug, Clone, Copy)]
struct SectionInfo {
    offset: u64,
    size: u64,
    name_offset: u64,
}

impl<'a> KmodElf<'a> {
    /// `kmod_elf_new`: checks the ELF identification, the section header table (its entry size
    /// must be the class's and it must lie inside the file) and the section name table (it must
    /// lie inside the file, not be empty, and end with NUL).
    ///
    /// `ENOEXEC` when the image is 16 bytes or shorter or does not start with the ELF magic;
    /// `EINVAL` for anything else wrong.
    pub fn new(image: impl Into<Cow<'a, [u8]>>) -> Result<KmodElf<'a>, i32> {
        let image = image.into();
        if image.len() <= EI_NIDENT || !image.starts_with(b"\x7fELF") {
            return Err(ENOEXEC);
        }
        // The file must be longer than its ELF header (52 or 64 bytes).
        let is64 = match image[4] {
            1 if image.len() > 52 => false,
            2 if image.len() > 64 => true,
            _ => return Err(EINVAL),
        };
        let msb = match image[5] {
            1 => false,
            2 => true,
            _ => return Err(EINVAL),
        };
        let mut elf = KmodElf {
            image,
            is64,
            msb,
            shoff: 0,
            shnum: 0,
            machine: 0,
            names: (0, 0),
        };
        // The ELF header is inside the file: none of these reads fails.
        let (shoff, fields, entsize) = if is64 {
            (elf.uint(40, 8), 58, 64)
        } else {
            (elf.uint(32, 4), 46, 40)
        };
        let shentsize = elf.uint(fields, 2);
        elf.shoff = shoff;
        elf.shnum = elf.uint(fields + 2, 2) as u16;
        elf.machine = elf.uint(18, 2) as u16;
        let shstrndx = elf.uint(fields + 4, 2) as u16;
        if shentsize != entsize {
            return Err(EINVAL);
        }
        match (entsize * u64::from(elf.shnum)).checked_add(shoff) {
            Some(end) if end <= elf.len() => {}
            _ => return Err(EINVAL),
        }
        // libkmod asserts (and aborts) on a section name table index of 0 or out of range;
        // here that is an invalid file like any other.
        let names = elf.section_info(shstrndx).ok_or(EINVAL)?;
        if names.size == 0 || elf.uint(names.offset + names.size - 1, 1) != 0 {
            return Err(EINVAL);
        }
        elf.names = (names.offset, names.size);
        Ok(elf)
    }

    /// The image, with the edits made so far.
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// The image, with the edits made so far: borrowed when nothing was edited in a borrowed
    /// image.
    pub fn into_image(self) -> Cow<'a, [u8]> {
        self.image
    }

    fn len(&self) -> u64 {
        self.image.len() as u64
    }

    /// `elf_get_uint`: `size` bytes at `offset` in the file's byte order; `u64::MAX` when they
    /// are not all inside the file.
    fn uint(&self, offset: u64, size: usize) -> u64 {
        let Some(bytes) = usize::try_from(offset)
            .ok()
            .and_then(|start| self.image.get(start..start.checked_add(size)?))
        else {
            return u64::MAX;
        };
        if self.msb {
            bytes.iter().fold(0, |v, &b| (v << 8) | u64::from(b))
        } else {
            bytes.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b))
        }
    }

    /// The bytes at `offset` up to the first NUL, or up to the end of the file when no NUL
    /// follows (libkmod reads names straight out of the file with `strlen`).
    fn c_str(&self, offset: u64) -> &[u8] {
        let tail = usize::try_from(offset)
            .ok()
            .and_then(|at| self.image.get(at..))
            .unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    /// `size` bytes at `offset`, which the caller knows are inside the file.
    fn bytes(&self, offset: u64, size: u64) -> &[u8] {
        let start = offset as usize;
        self.image
            .get(start..start.saturating_add(size as usize))
            .unwrap_or_default()
    }

    /// The offset of section `index`'s header (`index` below the section count: inside the
    /// file, as `new` checked).
    fn header(&self, index: u16) -> u64 {
        let entsize = if self.is64 { 64 } else { 40 };
        self.shoff + u64::from(index) * entsize
    }

    /// `elf_get_section_info`: `None` for section 0, an index past the table, or data that
    /// does not fit in the file.
    fn section_info(&self, index: u16) -> Option<SectionInfo> {
        if index == SHN_UNDEF || index >= self.shnum {
            return None;
        }
        let header = self.header(index);
        let (offset, size) = if self.is64 {
            (self.uint(header + 24, 8), self.uint(header + 32, 8))
        } else {
            (self.uint(header + 16, 4), self.uint(header + 20, 4))
        };
        match offset.checked_add(size) {
            Some(end) if end <= self.len() => Some(SectionInfo {
                offset,
                size,
                name_offset: self.uint(header, 4),
            }),
            _ => None,
        }
    }

    /// `elf_find_section`: the index and place of the first section (from index 1) called
    /// `name` whose data fits in the file.
    fn find(&self, name: &[u8]) -> Option<(u16, SectionInfo)> {
        let (names_at, names_size) = self.names;
        (1..self.shnum).find_map(|index| {
            let info = self.section_info(index)?;
            if info.name_offset >= names_size {
                return None;
            }
            // The name table ends with NUL: the name ends inside it.
            (self.c_str(names_at + info.name_offset) == name).then_some((index, info))
        })
    }

    /// `kmod_elf_get_section`: the data of the first section (from index 1) called `name`
    /// whose data fits in the file; `None` (libkmod: `ENOENT`) when there is none.
    pub fn section(&self, name: &[u8]) -> Option<&[u8]> {
        let (_, info) = self.find(name)?;
        Some(self.bytes(info.offset, info.size))
    }

    /// `kmod_elf_get_strings`: the strings of section `name` (`.modinfo`, say), split at runs
    /// of NUL bytes; the leading NUL padding is skipped, and when at most one byte is left
    /// after it there are none. A last string without its NUL is kept. `ENOENT` when there is
    /// no such section.
    pub fn strings(&self, name: &[u8]) -> Result<Vec<&[u8]>, i32> {
        self.section(name).map(split_strings).ok_or(ENOENT)
    }

    /// `kmod_elf_get_modversions`: the entries of `__versions` (the symbol versions the module
    /// was built against; a leading `.` of a name is dropped), bound [`Bind::Undef`]. `ENOENT`
    /// when there is no such section, `EINVAL` when its size is not a multiple of 64.
    pub fn modversions(&self) -> Result<Vec<Symbol<'_>>, i32> {
        let (_, versions) = self.find(b"__versions").ok_or(ENOENT)?;
        if versions.size % MODVERSION_SIZE != 0 {
            return Err(EINVAL);
        }
        let crc_size = self.crc_size();
        Ok((0..versions.size / MODVERSION_SIZE)
            .map(|i| {
                let entry = versions.offset + i * MODVERSION_SIZE;
                let name = self.c_str(entry + crc_size);
                Symbol {
                    name: name.strip_prefix(b".").unwrap_or(name),
                    crc: self.uint(entry, crc_size as usize),
                    bind: Bind::Undef,
                }
            })
            .collect())
    }

    /// `kmod_elf_get_symbols`: the symbols the module exports. They are the `__crc_NAME`
    /// symbols of `.symtab` (named `NAME`, each with the CRC it gives, bound as the ELF symbol
    /// is) when there are any and every symbol's name lies inside `.strtab`; else the strings
    /// of `__ksymtab_strings` (CRC 0, [`Bind::Global`]). `ENOENT` when it comes to
    /// `__ksymtab_strings` and there is none.
    pub fn symbols(&self) -> Result<Vec<Symbol<'_>>, i32> {
        if let Some(exports) = self.crc_symbols() {
            return Ok(exports);
        }
        let strings = self.section(b"__ksymtab_strings").ok_or(ENOENT)?;
        Ok(split_strings(strings)
            .into_iter()
            .map(|name| Symbol {
                name,
                crc: 0,
                bind: Bind::Global,
            })
            .collect())
    }

    /// `kmod_elf_get_dependency_symbols`: the symbols the module needs. They are its undefined
    /// symbols in symbol table order (empty names and SPARC register symbols left out; weak
    /// ones [`Bind::Weak`], the others [`Bind::Undef`]), each with the CRC of the first
    /// `__versions` entry of that name (0 without one), then the `__versions` entries that no
    /// undefined symbol named (`module_layout`), in their order. A `__versions` section whose
    /// size is not a multiple of 64 counts as none. `EINVAL` when `.strtab` or `.symtab` is
    /// missing, the symbol table is not a whole number of entries, or a needed symbol's name
    /// lies outside `.strtab`.
    pub fn dependency_symbols(&self) -> Result<Vec<Symbol<'_>>, i32> {
        let crc_size = self.crc_size();
        let (versions_at, version_count) = self
            .find(b"__versions")
            .map(|(_, v)| v)
            .filter(|v| v.size % MODVERSION_SIZE == 0)
            .map_or((0, 0), |v| (v.offset, v.size / MODVERSION_SIZE));
        let version_name = |i: u64| self.c_str(versions_at + i * MODVERSION_SIZE + crc_size);
        let version_crc = |i: u64| self.uint(versions_at + i * MODVERSION_SIZE, crc_size as usize);
        let (strtab, symtab, count) = self.symbol_tables().ok_or(EINVAL)?;
        // libkmod searches `__versions` from the start for each symbol: the first entry with a
        // name wins.
        let mut by_name: HashMap<&[u8], u64> = HashMap::with_capacity(version_count as usize);
        for i in 0..version_count {
            by_name.entry(version_name(i)).or_insert(i);
        }
        let mut visited = vec![false; version_count as usize];
        let sparc = self.machine == EM_SPARC || self.machine == EM_SPARCV9;
        let mut needed = Vec::new();
        for i in 1..count {
            let symbol = self.symbol(symtab.offset + i * self.symbol_size());
            if symbol.shndx != SHN_UNDEF || (sparc && symbol.info & 0xf == STT_REGISTER) {
                continue;
            }
            if symbol.name >= strtab.size {
                return Err(EINVAL);
            }
            let name = self.c_str(strtab.offset + symbol.name);
            if name.is_empty() {
                continue;
            }
            let crc = match by_name.get(name) {
                Some(&index) => {
                    visited[index as usize] = true;
                    version_crc(index)
                }
                None => 0,
            };
            let bind = if symbol.info >> 4 == STB_WEAK {
                Bind::Weak
            } else {
                Bind::Undef
            };
            needed.push(Symbol { name, crc, bind });
        }
        for (i, _) in visited.iter().enumerate().filter(|(_, &seen)| !seen) {
            let i = i as u64;
            needed.push(Symbol {
                name: version_name(i),
                crc: version_crc(i),
                bind: Bind::Undef,
            });
        }
        Ok(needed)
    }

    /// `kmod_elf_strip_section`: clears `SHF_ALLOC` in the flags of the first section called
    /// `name`, so that the kernel does not load it. `ENOENT` when there is no such section.
    pub fn strip_section(&mut self, name: &[u8]) -> Result<(), i32> {
        let (index, _) = self.find(name).ok_or(ENOENT)?;
        // `sh_flags` follows `sh_name` and `sh_type` in both classes: 8 bytes, or 4 in ELF32.
        let at = self.header(index) + 8;
        let size = if self.is64 { 8 } else { 4 };
        let flags = (self.uint(at, size) & !SHF_ALLOC).to_le_bytes();
        let msb = self.msb;
        self.write(at, size, |field| {
            field.copy_from_slice(&flags[..size]);
            if msb {
                field.reverse();
            }
        });
        Ok(())
    }

    /// `kmod_elf_strip_vermagic`: blanks the first `vermagic=...` string of `.modinfo` with
    /// NULs. `ENOENT` when there is no `.modinfo` or no such string in it (a `.modinfo` that
    /// is empty, or a single byte after its leading NULs, is left as it is without an error).
    pub fn strip_vermagic(&mut self) -> Result<(), i32> {
        let (_, modinfo) = self.find(b".modinfo").ok_or(ENOENT)?;
        let data = self.bytes(modinfo.offset, modinfo.size);
        let Some(start) = data.iter().position(|&b| b != 0) else {
            return Ok(());
        };
        let strings = &data[start..];
        if strings.len() <= 1 {
            return Ok(());
        }
        let mut i = 0;
        while i < strings.len() {
            let rest = &strings[i..];
            let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            // libkmod looks at a string only when more than `vermagic=` is left of the section
            // from its start.
            if len > 0 && rest.len() > VERMAGIC.len() && rest.starts_with(VERMAGIC) {
                // Blanked up to its NUL, which libkmod looks for past the section too.
                let at = modinfo.offset + (start + i) as u64;
                let len = self.c_str(at).len();
                self.write(at, len, |string| string.fill(0));
                return Ok(());
            }
            i += len.max(1);
        }
        Err(ENOENT)
    }

    /// Changes the `len` bytes at `at` (inside the file) with `edit`, copying a borrowed image
    /// first.
    fn write(&mut self, at: u64, len: usize, edit: impl FnOnce(&mut [u8])) {
        let at = at as usize;
        if let Some(target) = self.image.to_mut().get_mut(at..at.saturating_add(len)) {
            edit(target);
        }
    }

    fn crc_size(&self) -> u64 {
        if self.is64 {
            8
        } else {
            4
        }
    }

    fn symbol_size(&self) -> u64 {
        if self.is64 {
            24
        } else {
            16
        }
    }

    /// The symbol table entry at `offset` (inside `.symtab`).
    fn symbol(&self, offset: u64) -> ElfSymbol {
        if self.is64 {
            ElfSymbol {
                name: self.uint(offset, 4),
                info: self.uint(offset + 4, 1) as u8,
                shndx: self.uint(offset + 6, 2) as u16,
                value: self.uint(offset + 8, 8),
            }
        } else {
            ElfSymbol {
                name: self.uint(offset, 4),
                value: self.uint(offset + 4, 4),
                info: self.uint(offset + 12, 1) as u8,
                shndx: self.uint(offset + 14, 2) as u16,
            }
        }
    }

    /// `.strtab` and `.symtab`, when both are there and the symbol table is a whole number of
    /// entries; with the number of entries.
    fn symbol_tables(&self) -> Option<(SectionInfo, SectionInfo, u64)> {
        let (_, strtab) = self.find(b".strtab")?;
        let (_, symtab) = self.find(b".symtab")?;
        let size = self.symbol_size();
        (symtab.size % size == 0).then_some((strtab, symtab, symtab.size / size))
    }

    /// The exports named by `__crc_*` symbols; `None` (libkmod falls back to
    /// `__ksymtab_strings`) when the symbol tables are unusable, a symbol's name lies outside
    /// `.strtab`, or there is no such symbol.
    fn crc_symbols(&self) -> Option<Vec<Symbol<'_>>> {
        let (strtab, symtab, count) = self.symbol_tables()?;
        let size = self.symbol_size();
        let symbols = (1..count).map(|i| self.symbol(symtab.offset + i * size));
        if symbols.clone().any(|s| s.name >= strtab.size) {
            return None;
        }
        let exports: Vec<Symbol<'_>> = symbols
            .filter_map(|s| {
                let name = self
                    .c_str(strtab.offset + s.name)
                    .strip_prefix(CRC_PREFIX)?;
                Some(Symbol {
                    name,
                    crc: self.resolve_crc(s.value, s.shndx),
                    bind: match s.info >> 4 {
                        STB_LOCAL => Bind::Local,
                        STB_GLOBAL => Bind::Global,
                        STB_WEAK => Bind::Weak,
                        _ => Bind::None,
                    },
                })
            })
            .collect();
        (!exports.is_empty()).then_some(exports)
    }

    /// `kmod_elf_resolve_crc`: an absolute or undefined `__crc_` symbol's value is the CRC;
    /// otherwise it is the offset of a 32-bit CRC in the symbol's section (`u64::MAX` when
    /// that cannot be read). The arithmetic is libkmod's, on unsigned 64-bit numbers.
    fn resolve_crc(&self, value: u64, shndx: u16) -> u64 {
        if shndx == SHN_ABS || shndx == SHN_UNDEF {
            return value;
        }
        let Some(section) = self.section_info(shndx) else {
            return u64::MAX;
        };
        if value > section.size.wrapping_sub(4) {
            return u64::MAX;
        }
        self.uint(section.offset.wrapping_add(value), 4)
    }
}

/// The fields of one symbol table entry that libkmod reads.
#[derive(Clone, Copy)]
struct ElfSymbol {
    name: u64,
    info: u8,
    shndx: u16,
    value: u64,
}

/// Splits a string section the way libkmod does: leading NUL padding dropped, then (when at
/// least two bytes are left) every maximal run of non-NUL bytes is one string.
fn split_strings(data: &[u8]) -> Vec<&[u8]> {
    let start = data
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(data.len())
        .min(data.len().saturating_sub(1));
    let data = &data[start..];
    if data.len() <= 1 {
        return Vec::new();
    }
    data.split(|&b| b == 0).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_image::{ImageBuilder, Sym, SHT_PROGBITS, STB_GLOBAL};

    /// The `.modinfo` strings, as modinfo reads them.
    fn modinfo_strings(image: &[u8]) -> Result<Vec<Vec<u8>>, i32> {
        let elf = KmodElf::new(image)?;
        let strings = elf.strings(b".modinfo")?;
        Ok(strings.into_iter().map(<[u8]>::to_vec).collect())
    }

    /// A minimal ELF64 LSB image: sections NULL, .shstrtab, .modinfo.
    fn modinfo_image(modinfo: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0";
        let mut data = vec![0u8; 64];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = 2;
        data[5] = 1;
        let names_at = data.len() as u64;
        data.extend_from_slice(names);
        let modinfo_at = data.len() as u64;
        data.extend_from_slice(modinfo);
        let shoff = data.len() as u64;
        data[40..48].copy_from_slice(&shoff.to_le_bytes());
        data[58..60].copy_from_slice(&64u16.to_le_bytes());
        data[60..62].copy_from_slice(&3u16.to_le_bytes());
        data[62..64].copy_from_slice(&1u16.to_le_bytes());
        for (name, at, size) in [
            (0u32, 0u64, 0u64),
            (1, names_at, names.len() as u64),
            (11, modinfo_at, modinfo.len() as u64),
        ] {
            let mut header = [0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[24..32].copy_from_slice(&at.to_le_bytes());
            header[32..40].copy_from_slice(&size.to_le_bytes());
            data.extend_from_slice(&header);
        }
        data
    }

    #[test]
    fn modinfo_strings_as_libkmod_splits_them() {
        let odd = modinfo_image(b"\0\0a=1\0\0b=2\0c");
        assert_eq!(
            modinfo_strings(&odd).unwrap(),
            [b"a=1".to_vec(), b"b=2".to_vec(), b"c".to_vec()]
        );
        assert!(modinfo_strings(&modinfo_image(b"")).unwrap().is_empty());
        assert!(modinfo_strings(&modinfo_image(b"\0\0\0x"))
            .unwrap()
            .is_empty());
        let padded = modinfo_image(b"\0\0xy");
        assert_eq!(modinfo_strings(&padded).unwrap(), [b"xy".to_vec()]);
    }

    #[test]
    fn strings_split_like_libkmod() {
        assert_eq!(split_strings(b"\0\0a=1\0\0b\0"), [&b"a=1"[..], b"b"]);
        assert_eq!(split_strings(b"a\0bc"), [&b"a"[..], b"bc"]);
        // One byte left after the padding counts as nothing.
        assert!(split_strings(b"\0\0x").is_empty());
        assert!(split_strings(b"\0\0\0").is_empty());
        assert!(split_strings(b"").is_empty());
    }

    #[test]
    fn errors_are_libkmod_errno_values() {
        assert_eq!(modinfo_strings(b"short"), Err(ENOEXEC));
        assert_eq!(modinfo_strings(&[0u8; 100]), Err(ENOEXEC));
        assert_eq!(modinfo_strings(b"\x7fELF\x02\x01\x01"), Err(ENOEXEC));
        let good = modinfo_image(b"a=b\0");
        assert_eq!(modinfo_strings(&good[..64]), Err(EINVAL));
        assert_eq!(modinfo_strings(&good[..good.len() - 1]), Err(EINVAL));
        let mut no_strtab = good.clone();
        no_strtab[62] = 0;
        assert_eq!(modinfo_strings(&no_strtab), Err(EINVAL));
        let mut bad_class = good.clone();
        bad_class[4] = 7;
        assert_eq!(modinfo_strings(&bad_class), Err(EINVAL));
        // ".modinfo" renamed ".modinfX" in the section name table.
        let mut renamed = good;
        renamed[64 + 18] = b'X';
        assert_eq!(modinfo_strings(&renamed), Err(ENOENT));
    }

    /// Every reader and both edits on `image`: they return, whatever it holds, and an edit
    /// keeps the image's length.
    fn read_everything(image: &[u8]) {
        let Ok(mut elf) = KmodElf::new(image) else {
            return;
        };
        if let Ok(strings) = elf.strings(b".modinfo") {
            assert!(strings.iter().all(|s| !s.is_empty() && !s.contains(&0)));
        }
        let _ = elf.modversions();
        let _ = elf.symbols();
        let _ = elf.dependency_symbols();
        let _ = elf.strip_section(b"__versions");
        let _ = elf.strip_vermagic();
        assert_eq!(elf.image().len(), image.len());
        let _ = elf.modversions();
    }

    #[test]
    fn any_prefix_or_flip_never_panics() {
        let good = modinfo_image(b"license=GPL\0alias=x\0");
        for len in 0..good.len() {
            read_everything(&good[..len]);
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            read_everything(&bad);
        }
    }

    /// Every prefix and many byte mutations of a module: never a panic.
    #[test]
    fn never_panics() {
        let mut b = ImageBuilder::module();
        b.section("__ksymtab_strings", SHT_PROGBITS, 0, b"x\0".to_vec());
        let image = b.build();
        for len in 0..image.len() {
            read_everything(&image[..len]);
        }
        for at in 0..image.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = image.clone();
                bad[at] = value;
                read_everything(&bad);
            }
        }
    }

    #[test]
    fn reads_modinfo_exports_and_needs() {
        let mut b = ImageBuilder::module();
        b.section(
            "__ksymtab_strings",
            SHT_PROGBITS,
            0,
            b"demo_export\0demo_other\0".to_vec(),
        );
        let image = b.build();
        let elf = KmodElf::new(&image).unwrap();
        let exports = elf.symbols().unwrap();
        assert_eq!(
            exports.iter().map(|e| (e.name, e.crc)).collect::<Vec<_>>(),
            [(&b"demo_export"[..], 0), (b"demo_other", 0)]
        );
        assert!(exports.iter().all(|e| e.bind == Bind::Global));
        let modinfo = elf.strings(b".modinfo").unwrap();
        assert!(modinfo.contains(&&b"alias=pci:v00001234d*"[..]));
        // Weak references are needed symbols too (depmod just never warns about them).
        let needs: Vec<_> = elf
            .dependency_symbols()
            .unwrap()
            .iter()
            .map(|d| (d.name, d.bind))
            .collect();
        assert_eq!(
            needs,
            [
                (&b"_printk"[..], Bind::Undef),
                (b"maybe_there", Bind::Weak),
                (b"kmalloc_caches", Bind::Undef)
            ]
        );
        // No __versions: no modversions.
        assert_eq!(elf.modversions(), Err(ENOENT));
    }

    #[test]
    fn weak_and_versions() {
        let mut b = ImageBuilder::module();
        b.sections
            .retain(|s| s.name != ".symtab" && s.name != ".strtab");
        b.symbols(&[
            Sym {
                name: "needed",
                bind: STB_GLOBAL,
                shndx: 0,
            },
            Sym {
                name: "optional",
                bind: STB_WEAK,
                shndx: 0,
            },
        ]);
        let mut versions = Vec::new();
        for (crc, name) in [(0x1234u64, "module_layout"), (0xabcd, ".needed")] {
            let mut entry = crc.to_le_bytes().to_vec();
            entry.extend_from_slice(name.as_bytes());
            entry.resize(64, 0);
            versions.extend(entry);
        }
        b.section("__versions", SHT_PROGBITS, 0, versions);
        let image = b.build();
        let elf = KmodElf::new(&image).unwrap();
        let symbol = |name, crc, bind| Symbol { name, crc, bind };
        // `kmod_elf_get_dependency_symbols` matches names as they are, dot and all;
        // `kmod_elf_get_modversions` drops the dot.
        assert_eq!(
            elf.dependency_symbols().unwrap(),
            [
                symbol(b"needed", 0, Bind::Undef),
                symbol(b"optional", 0, Bind::Weak),
                symbol(b"module_layout", 0x1234, Bind::Undef),
                symbol(b".needed", 0xabcd, Bind::Undef),
            ]
        );
        assert_eq!(
            elf.modversions().unwrap(),
            [
                symbol(b"module_layout", 0x1234, Bind::Undef),
                symbol(b"needed", 0xabcd, Bind::Undef),
            ]
        );
    }

    #[test]
    fn needs_a_symbol_table() {
        let mut b = ImageBuilder::module();
        b.sections.retain(|s| s.name != ".symtab");
        let image = b.build();
        let elf = KmodElf::new(&image).unwrap();
        assert_eq!(elf.dependency_symbols(), Err(EINVAL));
        // Without `__crc_` symbols or `__ksymtab_strings`, no exports.
        assert_eq!(elf.symbols(), Err(ENOENT));
    }

    /// A minimal ELF64 image with sections: null, .modinfo, __versions, .shstrtab.
    fn strip_image() -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0__versions\0.shstrtab\0".to_vec();
        let modinfo = b"license=GPL\0vermagic=6.12 SMP\0name=x\0".to_vec();
        let mut img = vec![0u8; 64];
        img[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let modinfo_off = img.len();
        img.extend(&modinfo);
        let str_off = img.len();
        img.extend(&shstrtab);
        let shoff = img.len();
        let sh = |name: u32, flags: u64, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        let headers = [
            sh(0, 0, 0, 0),
            sh(1, 2, modinfo_off, modinfo.len()),
            sh(10, 0x2 | 0x1, 0, 0),
            sh(21, 0, str_off, shstrtab.len()),
        ];
        for h in headers {
            img.extend(h);
        }
        img[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        img[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        img[0x3c..0x3e].copy_from_slice(&4u16.to_le_bytes());
        img[0x3e..0x40].copy_from_slice(&3u16.to_le_bytes());
        img
    }

    #[test]
    fn strips_versions_and_vermagic() {
        let img = strip_image();
        let shoff = u64::from_le_bytes(img[0x28..0x30].try_into().unwrap()) as usize;
        let mut elf = KmodElf::new(&img[..]).unwrap();
        elf.strip_section(b"__versions").unwrap();
        elf.strip_vermagic().unwrap();
        assert_eq!(elf.strip_section(b"nope"), Err(ENOENT));
        assert_eq!(elf.strip_vermagic(), Err(ENOENT));
        let stripped = elf.into_image();
        // Copied on the first edit, the original left as it was.
        assert!(matches!(stripped, Cow::Owned(_)));
        let flags = |image: &[u8]| image[shoff + 2 * 64 + 8..][..8].to_vec();
        assert_eq!(flags(&img), 3u64.to_le_bytes());
        assert_eq!(flags(&stripped), 1u64.to_le_bytes());
        let elf = KmodElf::new(&stripped[..]).unwrap();
        assert_eq!(
            elf.section(b".modinfo").unwrap(),
            b"license=GPL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0name=x\0"
        );
        // Nothing to edit: the image stays borrowed.
        let mut elf = KmodElf::new(&stripped[..]).unwrap();
        assert_eq!(elf.strip_vermagic(), Err(ENOENT));
        assert!(matches!(elf.into_image(), Cow::Borrowed(_)));
    }

    /// Found by the `module_elf` fuzz target (now `kmod_elf`) in the reader this one replaced:
    /// a section header table offset near the end of the address space overflowed `offset + 4`
    /// while reading the first header.
    #[test]
    fn section_header_offset_near_usize_max() {
        for shoff in [u64::MAX, u64::MAX - 3, u64::MAX - 24] {
            let mut img = vec![0u8; 65];
            img[..6].copy_from_slice(b"\x7fELF\x02\x01");
            img[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
            img[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
            img[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
            img[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
            assert_eq!(KmodElf::new(&img).unwrap_err(), EINVAL);
            read_everything(&img);
        }
        // The fuzzer's input, minimized.
        let found = b"\x7fELF\x02\x01\0\0\xff\xff\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\
                      F\xff\0\x01ble\x04\x04\0\0\0F\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\
                      \0\0\0F\xff\0\x01ble\x04\x04P\0\0F";
        assert_eq!(found.len(), 64);
        assert!(KmodElf::new(&found[..]).is_err());
        read_everything(found);
    }

    /// An ELF64 image with the named sections (after the null one) and `.shstrtab` last; a
    /// section given with `Some(offset)` claims that offset instead of where its data is.
    fn image_with(sections: &[(&str, Option<u64>, Vec<u8>)]) -> Vec<u8> {
        let mut shstrtab = b"\0".to_vec();
        let mut img = vec![0u8; 64];
        let mut headers = vec![0u8; 64];
        let mut all: Vec<(&str, Option<u64>, Vec<u8>)> = sections.to_vec();
        all.push((".shstrtab", None, Vec::new()));
        let count = all.len();
        for (i, (name, claimed, data)) in all.into_iter().enumerate() {
            let name_at = shstrtab.len() as u32;
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
            let data = if i + 1 == count {
                shstrtab.clone()
            } else {
                data
            };
            let at = img.len() as u64;
            img.extend_from_slice(&data);
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name_at.to_le_bytes());
            h[24..32].copy_from_slice(&claimed.unwrap_or(at).to_le_bytes());
            h[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            headers.extend(h);
        }
        let shoff = img.len() as u64;
        img.extend(headers);
        img[..6].copy_from_slice(b"\x7fELF\x02\x01");
        img[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        img[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        img[0x3c..0x3e].copy_from_slice(&(count as u16 + 1).to_le_bytes());
        img[0x3e..0x40].copy_from_slice(&(count as u16).to_le_bytes());
        img
    }

    /// A `__crc_` symbol whose value is read from a section that claims an offset near
    /// `usize::MAX` gets the unknown CRC; the sum of offset and value used to overflow.
    #[test]
    fn crc_in_a_section_at_an_impossible_offset() {
        let strtab = b"\0__crc_foo\0".to_vec();
        let mut symtab = vec![0u8; 48];
        symtab[24..28].copy_from_slice(&1u32.to_le_bytes());
        symtab[30..32].copy_from_slice(&1u16.to_le_bytes()); // section 1, `bogus`
        symtab[32..40].copy_from_slice(&4u64.to_le_bytes()); // value: 4 bytes in
        let good = image_with(&[
            ("bogus", None, vec![1, 0, 0, 0, 2, 0, 0, 0]),
            (".symtab", None, symtab.clone()),
            (".strtab", None, strtab.clone()),
        ]);
        let elf = KmodElf::new(&good).unwrap();
        let found = elf.symbols().unwrap();
        assert_eq!((found[0].name, found[0].crc), (&b"foo"[..], 2));
        for claimed in [u64::MAX, u64::MAX - 4, (usize::MAX - 2) as u64] {
            let bad = image_with(&[
                ("bogus", Some(claimed), vec![0; 8]),
                (".symtab", None, symtab.clone()),
                (".strtab", None, strtab.clone()),
            ]);
            let elf = KmodElf::new(&bad).unwrap();
            let found = elf.symbols().unwrap();
            assert_eq!((found[0].name, found[0].crc), (&b"foo"[..], u64::MAX));
        }
        // A section of fewer than 4 bytes: libkmod's `size - 4` wraps, and any value passes
        // its check. The offset plus the value wraps around too (here to 3 bytes before the
        // section's data at 64: the end of the ELF header, `e_shstrndx` 4, then the 7), or
        // points past the end of the file: the unknown CRC.
        for (value, crc) in [(u64::MAX - 2, 0x0700_0400), (u64::MAX / 2, u64::MAX)] {
            let mut symtab = symtab.clone();
            symtab[32..40].copy_from_slice(&value.to_le_bytes());
            let tiny = image_with(&[
                ("bogus", None, vec![7, 0]),
                (".symtab", None, symtab),
                (".strtab", None, strtab.clone()),
            ]);
            let elf = KmodElf::new(&tiny).unwrap();
            assert_eq!(elf.symbols().unwrap()[0].crc, crc);
        }
    }

    /// A 32-bit big-endian image (sections NULL, .shstrtab, .modinfo, __versions), which
    /// libkmod reads like any other.
    fn elf32_msb() -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0__versions\0";
        let modinfo = b"license=GPL\0vermagic=6.12 SMP\0";
        let mut versions = 0x1234_5678u32.to_be_bytes().to_vec();
        versions.extend_from_slice(b".module_layout");
        versions.resize(64, 0);
        let mut data = vec![0u8; 52];
        data[..6].copy_from_slice(b"\x7fELF\x01\x02");
        let mut sections = vec![(0u32, 0u32, 0u32, 0u32)];
        for (name, flags, bytes) in [
            (1u32, 0u32, &names[..]),
            (11, 2, &modinfo[..]),
            (20, 2, &versions[..]),
        ] {
            sections.push((name, flags, data.len() as u32, bytes.len() as u32));
            data.extend_from_slice(bytes);
        }
        let shoff = data.len() as u32;
        data[32..36].copy_from_slice(&shoff.to_be_bytes());
        data[46..48].copy_from_slice(&40u16.to_be_bytes());
        data[48..50].copy_from_slice(&(sections.len() as u16).to_be_bytes());
        data[50..52].copy_from_slice(&1u16.to_be_bytes());
        for (name, flags, offset, size) in sections {
            let mut header = [0u8; 40];
            header[..4].copy_from_slice(&name.to_be_bytes());
            header[8..12].copy_from_slice(&flags.to_be_bytes());
            header[16..20].copy_from_slice(&offset.to_be_bytes());
            header[20..24].copy_from_slice(&size.to_be_bytes());
            data.extend_from_slice(&header);
        }
        data
    }

    #[test]
    fn reads_and_edits_32_bit_big_endian() {
        let image = elf32_msb();
        let mut elf = KmodElf::new(&image).unwrap();
        assert!(!elf.is64 && elf.msb);
        assert_eq!(
            elf.strings(b".modinfo").unwrap(),
            [&b"license=GPL"[..], b"vermagic=6.12 SMP"]
        );
        assert_eq!(
            elf.modversions().unwrap(),
            [Symbol {
                name: b"module_layout",
                crc: 0x1234_5678,
                bind: Bind::Undef
            }]
        );
        elf.strip_section(b"__versions").unwrap();
        elf.strip_vermagic().unwrap();
        let edited = elf.into_image();
        let shoff = u32::from_be_bytes(image[32..36].try_into().unwrap()) as usize;
        let flags = shoff + 3 * 40 + 8;
        assert_eq!(edited[flags..flags + 4], [0, 0, 0, 0]);
        assert_eq!(image[flags..flags + 4], [0, 0, 0, 2]);
        let elf = KmodElf::new(&edited[..]).unwrap();
        assert_eq!(elf.strings(b".modinfo").unwrap(), [&b"license=GPL"[..]]);
        read_everything(&image);
    }
}
