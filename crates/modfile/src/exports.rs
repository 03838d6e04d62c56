//! What `depmod` reads from a module: the `.modinfo` strings, the symbols the module exports
//! (with their CRCs) and the symbols it needs from others, read exactly the way kmod 30's
//! libkmod reads them (`kmod_elf_get_strings`, `kmod_elf_get_symbols`,
//! `kmod_elf_get_dependency_symbols`), so that depmod's outputs match kmod's byte for byte.
//!
//! This reader is deliberately more lenient than [`crate::parse_module`]: like libkmod it takes
//! 32- and 64-bit, little- and big-endian ELF files of any type, finds sections by name, skips
//! sections whose data lies outside the file, and only refuses a file whose ELF header, section
//! header table or section name table is unusable. Every read is bounds-checked; it never
//! panics.

use std::collections::HashMap;

use crate::error::{Error, ErrorKind};

const EI_NIDENT: usize = 16;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
const STB_WEAK: u8 = 2;
const STT_REGISTER: u8 = 13;
const EM_SPARC: u16 = 2;
const EM_SPARCV9: u16 = 43;
/// One `__versions` entry: a CRC (4 or 8 bytes) and the rest of 64 bytes for the name.
const MODVERSION_SIZE: u64 = 64;

/// A symbol the module exports (`EXPORT_SYMBOL*`), with its CRC when the module was built with
/// `CONFIG_MODVERSIONS` (0 when it was not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSymbol {
    /// The symbol's name, as in the module (no prefix stripped).
    pub name: Vec<u8>,
    /// The symbol's CRC: the value `__crc_NAME` points at, `u64::MAX` when that cannot be
    /// read, 0 when the exports come from `__ksymtab_strings`.
    pub crc: u64,
}

/// A symbol the module needs: an undefined symbol of its symbol table, or an entry of its
/// `__versions` table that no undefined symbol names (`module_layout`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencySymbol {
    /// The symbol's name.
    pub name: Vec<u8>,
    /// The CRC the module expects, from `__versions` (0 when the module has none for it).
    pub crc: u64,
    /// The reference is weak (`STB_WEAK`): the module loads without it.
    pub weak: bool,
}

/// What `depmod` needs from one module image, in the order libkmod returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSymbols {
    /// The `.modinfo` strings (`key=value`), split at runs of NUL bytes, empty strings left
    /// out; empty when the module has no `.modinfo`.
    pub modinfo: Vec<Vec<u8>>,
    /// The exported symbols: from the `__crc_*` symbols of the symbol table when there are
    /// any, else from the `__ksymtab_strings` section; empty when neither is there.
    pub exports: Vec<ExportedSymbol>,
    /// The symbols the module needs, in symbol table order, then the unused `__versions`
    /// entries; empty when the symbol table cannot be read.
    pub dependencies: Vec<DependencySymbol>,
}

impl ModuleSymbols {
    /// The `.modinfo` entries as `(key, value)`: the key is what comes before the first `=`;
    /// an entry without `=` is a key with an empty value (libkmod's `kmod_module_get_info`).
    pub fn modinfo_entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.modinfo
            .iter()
            .map(|entry| match entry.iter().position(|&b| b == b'=') {
                Some(eq) => (&entry[..eq], &entry[eq + 1..]),
                None => (&entry[..], &b""[..]),
            })
    }
}

/// Reads the `.modinfo` strings, the exported symbols and the needed symbols of an uncompressed
/// module image, as kmod 30 does.
///
/// Errors (the only ones libkmod reports for these reads): [`ErrorKind::NotElf`] when the image
/// is 16 bytes or shorter or lacks the ELF magic (kmod: `ENOEXEC`); [`ErrorKind::Corrupt`] when
/// the ELF class or data encoding is unknown, the header is cut short, the section header
/// entry size is wrong, the section header table runs past the end or the section name table
/// is unusable (kmod: `EINVAL`).
pub fn read_module_symbols(image: &[u8]) -> Result<ModuleSymbols, Error> {
    let elf = KmodElf::new(image)?;
    Ok(ModuleSymbols {
        modinfo: elf.strings(b".modinfo"),
        exports: elf.exports(),
        dependencies: elf.dependencies(),
    })
}

/// Where a section's data is and what it is called.
#[derive(Clone, Copy)]
struct SectionInfo {
    offset: u64,
    size: u64,
    name_offset: u32,
}

/// An ELF image as libkmod's `struct kmod_elf` sees it.
struct KmodElf<'a> {
    image: &'a [u8],
    is64: bool,
    msb: bool,
    shoff: u64,
    shnum: u16,
    shentsize: u16,
    machine: u16,
    /// The section name table's data.
    names: &'a [u8],
}

fn corrupt(detail: &str) -> Error {
    Error::new(ErrorKind::Corrupt, None, detail)
}

impl<'a> KmodElf<'a> {
    fn new(image: &'a [u8]) -> Result<KmodElf<'a>, Error> {
        if image.len() <= EI_NIDENT || !image.starts_with(b"\x7fELF") {
            return Err(Error::new(
                ErrorKind::NotElf,
                None,
                "no ELF magic (or 16 bytes or fewer)",
            ));
        }
        let is64 = match image[4] {
            1 if image.len() > 52 => false,
            2 if image.len() > 64 => true,
            1 | 2 => return Err(corrupt("the file is too short for its ELF header")),
            _ => return Err(corrupt("unknown ELF class")),
        };
        let msb = match image[5] {
            1 => false,
            2 => true,
            _ => return Err(corrupt("unknown ELF data encoding")),
        };
        let mut elf = KmodElf {
            image,
            is64,
            msb,
            shoff: 0,
            shnum: 0,
            shentsize: 0,
            machine: 0,
            names: &[],
        };
        let (shoff, shentsize, shnum, shstrndx) = if is64 {
            (
                elf.uint(40, 8),
                elf.uint(58, 2),
                elf.uint(60, 2),
                elf.uint(62, 2),
            )
        } else {
            (
                elf.uint(32, 4),
                elf.uint(46, 2),
                elf.uint(48, 2),
                elf.uint(50, 2),
            )
        };
        elf.shoff = shoff;
        elf.shentsize = shentsize as u16;
        elf.shnum = shnum as u16;
        elf.machine = elf.uint(18, 2) as u16;
        let expected = if is64 { 64 } else { 40 };
        if u64::from(elf.shentsize) != expected {
            return Err(corrupt("unexpected section header entry size"));
        }
        let table_end = (expected * u64::from(elf.shnum)).checked_add(shoff);
        if table_end.is_none_or(|end| end > elf.len()) {
            return Err(corrupt(
                "the section header table runs past the end of the file",
            ));
        }
        let strings = elf
            .section_info(shstrndx as u16)
            .ok_or_else(|| corrupt("no usable section name table"))?;
        let names = elf.data(strings);
        if names.last() != Some(&0) {
            return Err(corrupt(
                "the section name table is empty or does not end with NUL",
            ));
        }
        elf.names = names;
        Ok(elf)
    }

    fn len(&self) -> u64 {
        self.image.len() as u64
    }

    /// `elf_get_uint`: `size` bytes at `offset` in the file's byte order, `u64::MAX` when they
    /// are not all inside the file.
    fn uint(&self, offset: u64, size: usize) -> u64 {
        let Some(bytes) = usize::try_from(offset)
            .ok()
            .and_then(|start| self.image.get(start..start.checked_add(size)?))
        else {
            return u64::MAX;
        };
        if self.msb {
            bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
        } else {
            bytes
                .iter()
                .rev()
                .fold(0, |acc, &b| (acc << 8) | u64::from(b))
        }
    }

    /// The NUL-terminated string at `offset` in the file (up to the end of the file when no NUL
    /// follows), as libkmod reads names straight out of the mapped file.
    fn c_str(&self, offset: u64) -> &'a [u8] {
        let tail = usize::try_from(offset)
            .ok()
            .and_then(|at| self.image.get(at..))
            .unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    /// `elf_get_section_info`: `None` for section 0, an index past the table, or data that does
    /// not fit in the file.
    fn section_info(&self, index: u16) -> Option<SectionInfo> {
        if index == SHN_UNDEF || index >= self.shnum {
            return None;
        }
        let header = self.shoff + u64::from(index) * u64::from(self.shentsize);
        let (offset, size, name_offset) = if self.is64 {
            (
                self.uint(header + 24, 8),
                self.uint(header + 32, 8),
                self.uint(header, 4),
            )
        } else {
            (
                self.uint(header + 16, 4),
                self.uint(header + 20, 4),
                self.uint(header, 4),
            )
        };
        let end = offset.checked_add(size)?;
        (end <= self.len()).then_some(SectionInfo {
            offset,
            size,
            name_offset: name_offset as u32,
        })
    }

    fn data(&self, section: SectionInfo) -> &'a [u8] {
        // In bounds: `section_info` checked that offset + size fits in the file.
        let start = section.offset as usize;
        self.image
            .get(start..start + section.size as usize)
            .unwrap_or_default()
    }

    /// `kmod_elf_get_section`: the first section (from index 1) called `name` whose data fits
    /// in the file.
    fn section(&self, name: &[u8]) -> Option<SectionInfo> {
        (1..self.shnum).find_map(|index| {
            let info = self.section_info(index)?;
            let at = usize::try_from(info.name_offset).ok()?;
            let tail = self.names.get(at..)?;
            let end = tail.iter().position(|&b| b == 0)?;
            (&tail[..end] == name).then_some(info)
        })
    }

    /// `kmod_elf_get_strings`: the non-empty NUL-separated strings of a section, after its
    /// leading NUL padding. As in libkmod, what is left after the padding must be at least two
    /// bytes long.
    fn strings(&self, name: &[u8]) -> Vec<Vec<u8>> {
        self.section(name)
            .map(|section| split_strings(self.data(section)))
            .unwrap_or_default()
    }

    fn symbol_size(&self) -> u64 {
        if self.is64 {
            24
        } else {
            16
        }
    }

    /// `(st_name, st_info, st_shndx, st_value)` of the symbol at `offset`.
    fn symbol(&self, offset: u64) -> (u64, u8, u16, u64) {
        if self.is64 {
            (
                self.uint(offset, 4),
                self.uint(offset + 4, 1) as u8,
                self.uint(offset + 6, 2) as u16,
                self.uint(offset + 8, 8),
            )
        } else {
            (
                self.uint(offset, 4),
                self.uint(offset + 12, 1) as u8,
                self.uint(offset + 14, 2) as u16,
                self.uint(offset + 4, 4),
            )
        }
    }

    /// The `.strtab` and `.symtab` sections, when both are there and the symbol table is a
    /// whole number of entries; with the symbol count.
    fn symbol_tables(&self) -> Option<(SectionInfo, SectionInfo, u64)> {
        let strtab = self.section(b".strtab")?;
        let symtab = self.section(b".symtab")?;
        (symtab.size % self.symbol_size() == 0).then_some((
            strtab,
            symtab,
            symtab.size / self.symbol_size(),
        ))
    }

    /// `kmod_elf_get_symbols`: the `__crc_*` symbols, or else `__ksymtab_strings`.
    fn exports(&self) -> Vec<ExportedSymbol> {
        self.crc_exports().unwrap_or_else(|| {
            self.strings(b"__ksymtab_strings")
                .into_iter()
                .map(|name| ExportedSymbol { name, crc: 0 })
                .collect()
        })
    }

    /// The exports named by `__crc_*` symbols; `None` (fall back to `__ksymtab_strings`) when
    /// there is no symbol table, a symbol name lies outside `.strtab`, or there is no such
    /// symbol.
    fn crc_exports(&self) -> Option<Vec<ExportedSymbol>> {
        const CRC_PREFIX: &[u8] = b"__crc_";
        let (strtab, symtab, count) = self.symbol_tables()?;
        let size = self.symbol_size();
        let mut exports = Vec::new();
        for i in 1..count {
            let (name_offset, _, _, _) = self.symbol(symtab.offset + i * size);
            if name_offset >= strtab.size {
                return None;
            }
        }
        for i in 1..count {
            let (name_offset, _, shndx, value) = self.symbol(symtab.offset + i * size);
            let name = self.c_str(strtab.offset + name_offset);
            if let Some(name) = name.strip_prefix(CRC_PREFIX) {
                exports.push(ExportedSymbol {
                    name: name.to_vec(),
                    crc: self.resolve_crc(value, shndx),
                });
            }
        }
        (!exports.is_empty()).then_some(exports)
    }

    /// `kmod_elf_resolve_crc`: an absolute or undefined `__crc_` symbol's value is the CRC;
    /// otherwise it is the offset of a 32-bit CRC in the symbol's section.
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
        self.uint(section.offset + value, 4)
    }

    /// `kmod_elf_get_dependency_symbols`.
    fn dependencies(&self) -> Vec<DependencySymbol> {
        let crc_size: u64 = if self.is64 { 8 } else { 4 };
        let versions = self
            .section(b"__versions")
            .filter(|v| v.size % MODVERSION_SIZE == 0)
            .map(|v| (v.offset, v.size / MODVERSION_SIZE))
            .unwrap_or((0, 0));
        let version_name = |i: u64| self.c_str(versions.0 + i * MODVERSION_SIZE + crc_size);
        let version_crc = |i: u64| self.uint(versions.0 + i * MODVERSION_SIZE, crc_size as usize);
        // The first entry with each name, as libkmod's linear search finds it.
        let mut by_name: HashMap<&[u8], u64> = HashMap::with_capacity(versions.1 as usize);
        for i in 0..versions.1 {
            by_name.entry(version_name(i)).or_insert(i);
        }
        let mut visited = vec![false; versions.1 as usize];

        let Some((strtab, symtab, count)) = self.symbol_tables() else {
            return Vec::new();
        };
        let size = self.symbol_size();
        let sparc = self.machine == EM_SPARC || self.machine == EM_SPARCV9;
        let mut dependencies = Vec::new();
        for i in 1..count {
            let (name_offset, info, shndx, _) = self.symbol(symtab.offset + i * size);
            if shndx != SHN_UNDEF || (sparc && info & 0xf == STT_REGISTER) {
                continue;
            }
            if name_offset >= strtab.size {
                return Vec::new();
            }
            let name = self.c_str(strtab.offset + name_offset);
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
            dependencies.push(DependencySymbol {
                name: name.to_vec(),
                crc,
                weak: info >> 4 == STB_WEAK,
            });
        }
        for (i, _) in visited.iter().enumerate().filter(|(_, &seen)| !seen) {
            let i = i as u64;
            dependencies.push(DependencySymbol {
                name: version_name(i).to_vec(),
                crc: version_crc(i),
                weak: false,
            });
        }
        dependencies
    }
}

/// Splits a string section the way libkmod does: leading NUL padding dropped, then (if at
/// least two bytes are left) every maximal run of non-NUL bytes is one string.
fn split_strings(mut data: &[u8]) -> Vec<Vec<u8>> {
    while data.len() > 1 && data[0] == 0 {
        data = &data[1..];
    }
    if data.len() <= 1 {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_image::{ImageBuilder, Sym, SHT_PROGBITS, STB_GLOBAL};

    #[test]
    fn strings_split_like_libkmod() {
        assert_eq!(
            split_strings(b"\0\0a=1\0\0b\0"),
            [b"a=1".to_vec(), b"b".to_vec()]
        );
        assert_eq!(split_strings(b"a\0bc"), [b"a".to_vec(), b"bc".to_vec()]);
        // One byte left after the padding counts as nothing.
        assert!(split_strings(b"\0\0x").is_empty());
        assert!(split_strings(b"\0\0\0").is_empty());
        assert!(split_strings(b"").is_empty());
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
        let symbols = read_module_symbols(&b.build()).unwrap();
        assert_eq!(
            symbols
                .exports
                .iter()
                .map(|e| e.name.as_slice())
                .collect::<Vec<_>>(),
            [&b"demo_export"[..], b"demo_other"]
        );
        assert!(symbols.modinfo.contains(&b"alias=pci:v00001234d*".to_vec()));
        // Weak references are needed symbols too (depmod just never warns about them).
        let needs: Vec<_> = symbols
            .dependencies
            .iter()
            .map(|d| (d.name.as_slice(), d.weak))
            .collect();
        assert_eq!(
            needs,
            [
                (&b"_printk"[..], false),
                (b"maybe_there", true),
                (b"kmalloc_caches", false)
            ]
        );
        let entries: Vec<_> = symbols.modinfo_entries().collect();
        assert!(entries.contains(&(&b"name"[..], &b"demo"[..])));
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
        for (crc, name) in [(0x1234u64, "module_layout"), (0xabcd, "needed")] {
            let mut entry = crc.to_le_bytes().to_vec();
            entry.extend_from_slice(name.as_bytes());
            entry.resize(64, 0);
            versions.extend(entry);
        }
        b.section("__versions", SHT_PROGBITS, 0, versions);
        let deps = read_module_symbols(&b.build()).unwrap().dependencies;
        assert_eq!(
            deps,
            [
                DependencySymbol {
                    name: b"needed".to_vec(),
                    crc: 0xabcd,
                    weak: false
                },
                DependencySymbol {
                    name: b"optional".to_vec(),
                    crc: 0,
                    weak: true
                },
                DependencySymbol {
                    name: b"module_layout".to_vec(),
                    crc: 0x1234,
                    weak: false
                },
            ]
        );
    }

    #[test]
    fn refuses_what_libkmod_refuses() {
        assert_eq!(
            read_module_symbols(b"hello world, not elf")
                .unwrap_err()
                .kind(),
            ErrorKind::NotElf
        );
        assert_eq!(
            read_module_symbols(b"\x7fELF\x02\x01\x01")
                .unwrap_err()
                .kind(),
            ErrorKind::NotElf
        );
        let mut image = ImageBuilder::module().build();
        image[4] = 7;
        assert_eq!(
            read_module_symbols(&image).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }

    /// Every prefix and many byte mutations of a module: never a panic.
    #[test]
    fn never_panics() {
        let mut b = ImageBuilder::module();
        b.section("__ksymtab_strings", SHT_PROGBITS, 0, b"x\0".to_vec());
        let image = b.build();
        for len in 0..image.len() {
            let _ = read_module_symbols(&image[..len]);
        }
        for at in 0..image.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = image.clone();
                bad[at] = value;
                let _ = read_module_symbols(&bad);
            }
        }
    }
}
