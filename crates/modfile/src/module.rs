//! What a loader needs to know about a module before loading it.

use crate::elf::{Elf, Section, SHF_ALLOC, SHN_UNDEF, SHT_NOBITS, SHT_SYMTAB, STB_GLOBAL};
use crate::error::{Error, ErrorKind};
use crate::modinfo::{modinfo_from_section, Modinfo};

/// Section holding the module's `struct module` (`__this_module`), written by `modpost`.
const THIS_MODULE: &[u8] = b".gnu.linkonce.this_module";

/// Offset of `name` in `struct module` on 64-bit kernels. The struct has started with
/// `enum module_state state; struct list_head list; char name[MODULE_NAME_LEN];` for as long as
/// `.gnu.linkonce.this_module` has existed: a 4-byte enum, 4 bytes of padding to align the
/// 16-byte `list_head` (two pointers), then the name at 4 + 4 + 16 = 24.
const STRUCT_MODULE_NAME_OFFSET: usize = 24;

/// `MODULE_NAME_LEN` on 64-bit kernels: `64 - sizeof(unsigned long)`, NUL included.
const MODULE_NAME_LEN: usize = 56;

/// What a loader needs to know about a module before loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The `.modinfo` entries.
    pub modinfo: Modinfo,
    /// The module's name: the `.modinfo` `name=` value when present and non-empty, else the
    /// `name` field of the `struct module` in `.gnu.linkonce.this_module` (offset 24 on 64-bit
    /// kernels), the same fallback as the kernel's loader.
    pub name: String,
    /// Names of the global symbols the module uses but does not define (`SHN_UNDEF`,
    /// `STB_GLOBAL`, non-empty name), in symbol table order. These are what the kernel must
    /// resolve from its own and other modules' exports. Weak undefined symbols are left out: the
    /// kernel loads a module whose weak symbols stay unresolved.
    pub undefined_symbols: Vec<String>,
    /// Best effort: the module defines `init_module` (what `module_init()` emits) or has an
    /// `.init.text` section.
    pub has_init: bool,
    /// Best effort: the module defines `cleanup_module` (what `module_exit()` emits) or has an
    /// `.exit.text` section.
    pub has_exit: bool,
}

/// Parses an uncompressed module image (ELF64 little-endian ET_REL, machine any).
///
/// The checks follow the kernel's own before it loads a module (`elf_validity_cache_copy()`):
/// every section must lie inside the input, the section name table must be NUL-terminated,
/// there must be exactly one symbol table, one `.modinfo` and one allocated
/// `.gnu.linkonce.this_module` with contents. The size of `struct module` depends on the kernel
/// configuration, so it is not checked against any particular kernel.
///
/// Errors: [`ErrorKind::NotElf`] when the input is not ELF, [`ErrorKind::Truncated`] when it
/// ends before a header, table or section it describes, [`ErrorKind::NotRelocatable`] when the
/// ELF type is not `ET_REL`, [`ErrorKind::NotAModule`] when `.modinfo`,
/// `.gnu.linkonce.this_module` or the symbol table is missing (or the ELF is not 64-bit
/// little-endian), [`ErrorKind::Corrupt`] for inconsistent tables. Offsets in errors are
/// offsets in `elf`.
pub fn parse_module(elf: &[u8]) -> Result<ModuleInfo, Error> {
    let file = Elf::parse(elf)?;
    let modinfo_section = unique_section(&file, b".modinfo")?;
    let this_module = unique_section(&file, THIS_MODULE)?;
    let symtab = symbol_table(&file)?;

    if this_module.kind == SHT_NOBITS {
        return Err(Error::at(
            ErrorKind::Corrupt,
            this_module.header_offset,
            "`.gnu.linkonce.this_module` has no contents (SHT_NOBITS)",
        ));
    }
    if this_module.flags & SHF_ALLOC == 0 {
        return Err(Error::at(
            ErrorKind::Corrupt,
            this_module.header_offset,
            "`.gnu.linkonce.this_module` is not allocated (SHF_ALLOC is clear)",
        ));
    }

    let modinfo = modinfo_from_section(modinfo_section.data);
    let name = match modinfo.name() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => struct_module_name(this_module)?,
    };

    let mut undefined_symbols = Vec::new();
    let mut defines_init = false;
    let mut defines_exit = false;
    for symbol in file.symbols(symtab)? {
        let symbol = symbol?;
        if symbol.shndx == SHN_UNDEF {
            if symbol.bind == STB_GLOBAL && !symbol.name.is_empty() {
                undefined_symbols.push(String::from_utf8_lossy(symbol.name).into_owned());
            }
        } else if symbol.name == b"init_module" {
            defines_init = true;
        } else if symbol.name == b"cleanup_module" {
            defines_exit = true;
        }
    }
    let has_section = |name: &[u8]| file.sections_named(name).next().is_some();

    Ok(ModuleInfo {
        modinfo,
        name,
        undefined_symbols,
        has_init: defines_init || has_section(b".init.text"),
        has_exit: defines_exit || has_section(b".exit.text"),
    })
}

/// The one section called `name`: missing is [`ErrorKind::NotAModule`], more than one is
/// [`ErrorKind::Corrupt`] (the kernel refuses both).
fn unique_section<'f, 'a>(
    file: &'f Elf<'a>,
    name: &'static [u8],
) -> Result<&'f Section<'a>, Error> {
    let shown = String::from_utf8_lossy(name);
    let mut found = file.sections_named(name);
    let first = found.next().ok_or_else(|| {
        Error::new(
            ErrorKind::NotAModule,
            None,
            format!("the ELF file has no `{shown}` section"),
        )
    })?;
    if let Some(second) = found.next() {
        return Err(Error::at(
            ErrorKind::Corrupt,
            second.header_offset,
            format!(
                "more than one `{shown}` section (#{} and #{})",
                first.index, second.index
            ),
        ));
    }
    Ok(first)
}

/// The one `SHT_SYMTAB` section.
fn symbol_table<'f, 'a>(file: &'f Elf<'a>) -> Result<&'f Section<'a>, Error> {
    let mut tables = file.sections().iter().filter(|s| s.kind == SHT_SYMTAB);
    let first = tables.next().ok_or_else(|| {
        Error::new(
            ErrorKind::NotAModule,
            None,
            "the ELF file has no symbol table (stripped?)",
        )
    })?;
    if let Some(second) = tables.next() {
        return Err(Error::at(
            ErrorKind::Corrupt,
            second.header_offset,
            format!(
                "more than one symbol table (#{} and #{})",
                first.index, second.index
            ),
        ));
    }
    Ok(first)
}

/// The `name` field of the `struct module` stored in `.gnu.linkonce.this_module`.
fn struct_module_name(this_module: &Section<'_>) -> Result<String, Error> {
    let offset = this_module
        .offset
        .saturating_add(u64::try_from(STRUCT_MODULE_NAME_OFFSET).unwrap_or(u64::MAX));
    let end = this_module
        .data
        .len()
        .min(STRUCT_MODULE_NAME_OFFSET + MODULE_NAME_LEN);
    let field = this_module
        .data
        .get(STRUCT_MODULE_NAME_OFFSET..end)
        .unwrap_or_default();
    let name = field
        .iter()
        .position(|&b| b == 0)
        .and_then(|len| field.get(..len))
        .ok_or_else(|| {
            Error::at(
                ErrorKind::Corrupt,
                offset,
                format!(
                    "`.modinfo` has no name= and the name in `.gnu.linkonce.this_module` ({} \
                     bytes) is missing or not NUL-terminated within {MODULE_NAME_LEN} bytes",
                    this_module.data.len()
                ),
            )
        })?;
    if name.is_empty() {
        return Err(Error::at(
            ErrorKind::Corrupt,
            offset,
            "`.modinfo` has no name= and the name in `.gnu.linkonce.this_module` is empty",
        ));
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_image::{
        struct_module, ImageBuilder, Sym, SHF_EXECINSTR, SHT_PROGBITS, STB_GLOBAL,
    };
    use crate::{decompress, parse_module_file};

    fn kind_of(image: &[u8]) -> ErrorKind {
        parse_module(image).unwrap_err().kind()
    }

    fn put_u16(image: &mut [u8], at: usize, value: u16) {
        image[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u32(image: &mut [u8], at: usize, value: u32) {
        image[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(image: &mut [u8], at: usize, value: u64) {
        image[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn index_of(b: &ImageBuilder, name: &str) -> usize {
        1 + b.sections.iter().position(|s| s.name == name).unwrap()
    }

    #[test]
    fn good_module() {
        let info = parse_module(&ImageBuilder::module().build()).unwrap();
        assert_eq!(info.name, "demo");
        assert_eq!(info.modinfo.name(), Some("demo"));
        assert_eq!(
            info.modinfo.vermagic(),
            Some("6.12.0-test SMP preempt mod_unload ")
        );
        assert_eq!(info.modinfo.entries().len(), 7);
        assert_eq!(
            info.modinfo.get_all("alias").collect::<Vec<_>>(),
            ["pci:v00001234d*", "usb:v0BDAp*"]
        );
        assert_eq!(info.modinfo.get("depends"), Some(""));
        assert_eq!(info.undefined_symbols, ["_printk", "kmalloc_caches"]);
        assert!(info.has_init);
        assert!(info.has_exit);
    }

    #[test]
    fn init_and_exit_from_symbols_or_sections() {
        // Only the sections.
        let mut b = ImageBuilder::module();
        b.sections
            .retain(|s| s.name != ".symtab" && s.name != ".strtab");
        b.symbols(&[Sym {
            name: "_printk",
            bind: STB_GLOBAL,
            shndx: 0,
        }]);
        let info = parse_module(&b.build()).unwrap();
        assert!(info.has_init && info.has_exit);

        // Only the symbols.
        let mut b = ImageBuilder::module();
        b.get_mut(".init.text").name = ".text.unlikely".into();
        b.get_mut(".exit.text").name = ".text.other".into();
        let info = parse_module(&b.build()).unwrap();
        assert!(info.has_init && info.has_exit);

        // Neither: an undefined `init_module` does not count.
        let mut b = ImageBuilder::module();
        b.get_mut(".init.text").name = ".text.unlikely".into();
        b.get_mut(".exit.text").name = ".text.other".into();
        b.sections
            .retain(|s| s.name != ".symtab" && s.name != ".strtab");
        b.symbols(&[Sym {
            name: "init_module",
            bind: STB_GLOBAL,
            shndx: 0,
        }]);
        let info = parse_module(&b.build()).unwrap();
        assert!(!info.has_init && !info.has_exit);
        assert_eq!(info.undefined_symbols, ["init_module"]);
    }

    #[test]
    fn name_falls_back_to_struct_module() {
        for modinfo in [
            &b"license=GPL\0vermagic=6.12.0 \0"[..],
            b"name=\0license=GPL\0",
        ] {
            let mut b = ImageBuilder::module();
            b.get_mut(".modinfo").data = modinfo.to_vec();
            b.get_mut(".gnu.linkonce.this_module").data = struct_module("fallback_mod", 0x380);
            let info = parse_module(&b.build()).unwrap();
            assert_eq!(info.name, "fallback_mod");
            assert_eq!(info.modinfo.get("license"), Some("GPL"));
        }
        // A 55-character name is the longest that fits MODULE_NAME_LEN.
        let long = "m".repeat(55);
        let mut b = ImageBuilder::module();
        b.get_mut(".modinfo").data = b"license=GPL\0".to_vec();
        b.get_mut(".gnu.linkonce.this_module").data = struct_module(&long, 80);
        assert_eq!(parse_module(&b.build()).unwrap().name, long);
    }

    #[test]
    fn struct_module_name_must_be_there() {
        let cases: [(&str, Vec<u8>); 4] = [
            ("too small", vec![0; 20]),
            ("empty name", struct_module("", 128)),
            ("not terminated", vec![b'x'; 128]),
            ("cut before the NUL", struct_module("abcdefgh", 24 + 8)),
        ];
        for (what, data) in cases {
            let mut b = ImageBuilder::module();
            b.get_mut(".modinfo").data = b"license=GPL\0".to_vec();
            b.get_mut(".gnu.linkonce.this_module").data = data;
            let e = parse_module(&b.build()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        }
    }

    /// The image cut at every length: never a panic, always an error, and `Truncated` for every
    /// non-empty prefix since the section header table comes last.
    #[test]
    fn every_truncation_is_an_error() {
        let image = ImageBuilder::module().build();
        assert!(parse_module(&image).is_ok());
        assert_eq!(kind_of(&image[..0]), ErrorKind::NotElf);
        for len in 1..image.len() {
            let e = parse_module(&image[..len]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Truncated, "cut at {len}: {e}");
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(e.offset().is_some(), "{line}");
        }
    }

    #[test]
    fn truncation_messages_say_what_and_where() {
        let (image, layout) = ImageBuilder::module().build_with_layout();
        let e = parse_module(&image[..30]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated module file at offset 0x0: ELF header needs 64 bytes but the input has 30"
        );
        let e = parse_module(&image[..image.len() - 1]).unwrap_err();
        assert_eq!(e.offset(), Some(layout.shoff as u64));
        assert!(e.detail().starts_with("section header table ("), "{e}");

        // A section whose data runs past the end, with an intact header table.
        let mut bad = image.clone();
        let modinfo = index_of(&ImageBuilder::module(), ".modinfo");
        put_u64(
            &mut bad,
            layout.header(modinfo) + 24,
            image.len() as u64 - 4,
        );
        let e = parse_module(&bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
        assert!(e.detail().contains("`.modinfo`"), "{e}");
        assert_eq!(e.offset(), Some(image.len() as u64 - 4));
    }

    #[test]
    fn not_elf() {
        for input in [
            &b"hello, world"[..],
            b"MZ\x90\x00",
            b"\x7fELx",
            b"#!/bin/sh\n",
            &[0u8; 100],
        ] {
            let e = parse_module(input).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotElf, "{e}");
            assert!(e.to_string().starts_with("not an ELF file"), "{e}");
        }
        assert_eq!(kind_of(b"\x7fEL"), ErrorKind::Truncated);
    }

    #[test]
    fn not_relocatable() {
        for e_type in [0u16, 2, 3, 4, 0xfe00] {
            let mut b = ImageBuilder::module();
            b.e_type = e_type;
            let e = parse_module(&b.build()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotRelocatable, "{e}");
        }
        let mut b = ImageBuilder::module();
        b.e_type = 3;
        assert_eq!(
            parse_module(&b.build()).unwrap_err().to_string(),
            "not a relocatable ELF file at offset 0x10: ELF type is ET_DYN (3), kernel modules \
             are ET_REL (1)"
        );
    }

    #[test]
    fn missing_sections_are_not_a_module() {
        for (renamed, what) in [
            (".modinfo", "no `.modinfo` section"),
            (
                ".gnu.linkonce.this_module",
                "no `.gnu.linkonce.this_module` section",
            ),
        ] {
            let mut b = ImageBuilder::module();
            b.get_mut(renamed).name = ".data".into();
            let e = parse_module(&b.build()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotAModule, "{e}");
            assert!(e.detail().contains(what), "{e}");
        }
        // Stripped: no symbol table.
        let mut b = ImageBuilder::module();
        b.sections
            .retain(|s| s.name != ".symtab" && s.name != ".strtab");
        let e = parse_module(&b.build()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAModule, "{e}");
        assert!(e.detail().contains("stripped"), "{e}");
        // An ordinary object file.
        let mut b = ImageBuilder::empty();
        b.section(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, vec![0xc3]);
        b.symbols(&[Sym {
            name: "main",
            bind: STB_GLOBAL,
            shndx: 1,
        }]);
        assert_eq!(kind_of(&b.build()), ErrorKind::NotAModule);
        // No sections at all.
        let mut image = ImageBuilder::module().build();
        put_u16(&mut image, 60, 0);
        assert_eq!(kind_of(&image), ErrorKind::NotAModule);
    }

    #[test]
    fn other_elf_flavours() {
        let image = ImageBuilder::module().build();
        let mut elf32 = image.clone();
        elf32[4] = 1;
        assert_eq!(kind_of(&elf32), ErrorKind::NotAModule);
        let mut big_endian = image.clone();
        big_endian[5] = 2;
        assert_eq!(kind_of(&big_endian), ErrorKind::NotAModule);
        let mut bad_class = image.clone();
        bad_class[4] = 9;
        assert_eq!(kind_of(&bad_class), ErrorKind::Corrupt);
        let mut bad_data = image.clone();
        bad_data[5] = 0;
        assert_eq!(kind_of(&bad_data), ErrorKind::Corrupt);
        // Any machine is fine.
        let mut arm64 = image;
        put_u16(&mut arm64, 18, 183);
        assert!(parse_module(&arm64).is_ok());
    }

    #[test]
    fn corrupt_headers_and_tables() {
        let b = ImageBuilder::module();
        let (image, layout) = b.build_with_layout();
        let layout = &layout;
        let shnum = u16::from_le_bytes([image[60], image[61]]);
        let modinfo = index_of(&b, ".modinfo");
        let symtab = index_of(&b, ".symtab");
        let strtab = index_of(&b, ".strtab");
        let shstrtab = usize::from(shnum) - 1;
        let this_module = index_of(&b, ".gnu.linkonce.this_module");

        type Patch<'l> = Box<dyn Fn(&mut Vec<u8>) + 'l>;
        let cases: Vec<(&str, ErrorKind, Patch<'_>)> = vec![
            (
                "shentsize",
                ErrorKind::Corrupt,
                Box::new(|i| put_u16(i, 58, 40)),
            ),
            (
                "shstrndx 0",
                ErrorKind::Corrupt,
                Box::new(|i| put_u16(i, 62, 0)),
            ),
            (
                "shstrndx out of range",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u16(i, 62, shnum)),
            ),
            (
                "shstrndx xindex",
                ErrorKind::Corrupt,
                Box::new(|i| put_u16(i, 62, 0xffff)),
            ),
            (
                "shoff in header",
                ErrorKind::Corrupt,
                Box::new(|i| put_u64(i, 40, 8)),
            ),
            (
                "shoff overflow",
                ErrorKind::Corrupt,
                Box::new(|i| put_u64(i, 40, u64::MAX - 100)),
            ),
            (
                "shoff past end",
                ErrorKind::Truncated,
                Box::new(|i| put_u64(i, 40, 1 << 40)),
            ),
            (
                "shnum too big",
                ErrorKind::Truncated,
                Box::new(|i| put_u16(i, 60, 0xffff)),
            ),
            (
                "section 0 not null",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.shoff + 4, 1)),
            ),
            (
                "section name offset",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.header(modinfo), 0xffff_fff0)),
            ),
            (
                "shstrtab not terminated",
                ErrorKind::Corrupt,
                Box::new(move |i| {
                    let at = layout.header(shstrtab) + 32;
                    let size = u64::from_le_bytes(i[at..at + 8].try_into().unwrap());
                    put_u64(i, at, size - 1);
                }),
            ),
            (
                "shstrtab empty",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u64(i, layout.header(shstrtab) + 32, 0)),
            ),
            (
                "section offset overflow",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u64(i, layout.header(modinfo) + 24, u64::MAX - 2)),
            ),
            (
                "section size past end",
                ErrorKind::Truncated,
                Box::new(move |i| put_u64(i, layout.header(modinfo) + 32, 1 << 33)),
            ),
            (
                "symtab link 0",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.header(symtab) + 40, 0)),
            ),
            (
                "symtab link out of range",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.header(symtab) + 40, 0xffff_ffff)),
            ),
            (
                "symbol name out of range",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.data_offset[symtab] + 24 * 6, 0x7fff_0000)),
            ),
            (
                "strtab not terminated",
                ErrorKind::Corrupt,
                Box::new(move |i| {
                    let at = layout.header(strtab) + 32;
                    let size = u64::from_le_bytes(i[at..at + 8].try_into().unwrap());
                    put_u64(i, at, size - 1);
                }),
            ),
            (
                "two symbol tables",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.header(strtab) + 4, 2)),
            ),
            (
                "two .modinfo",
                ErrorKind::Corrupt,
                Box::new(move |i| {
                    let name =
                        u32::from_le_bytes(i[layout.header(modinfo)..][..4].try_into().unwrap());
                    put_u32(i, layout.header(modinfo - 1), name);
                }),
            ),
            (
                "this_module nobits",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u32(i, layout.header(this_module) + 4, 8)),
            ),
            (
                "this_module not alloc",
                ErrorKind::Corrupt,
                Box::new(move |i| put_u64(i, layout.header(this_module) + 8, 1)),
            ),
        ];
        for (what, kind, patch) in cases {
            let mut bad = image.clone();
            patch(&mut bad);
            let e = parse_module(&bad).unwrap_err();
            assert_eq!(e.kind(), kind, "{what}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    /// Every byte of the image set to a few values: never a panic.
    #[test]
    fn byte_mutations_never_panic() {
        let image = ImageBuilder::module().build();
        let mut ok = 0;
        for at in 0..image.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff, image[at] ^ 0x10] {
                let mut bad = image.clone();
                bad[at] = value;
                if parse_module(&bad).is_ok() {
                    ok += 1;
                }
            }
        }
        // Most bytes (code, padding, symbol values) do not matter.
        assert!(ok > 0);
    }

    /// Header fields set to extreme values: never a panic.
    #[test]
    fn extreme_header_fields_never_panic() {
        let (image, layout) = ImageBuilder::module().build_with_layout();
        let shnum = usize::from(u16::from_le_bytes([image[60], image[61]]));
        let mut fields: Vec<(usize, usize)> = vec![(40, 8), (58, 2), (60, 2), (62, 2)];
        for i in 0..shnum {
            let h = layout.header(i);
            fields.extend([
                (h, 4),
                (h + 4, 4),
                (h + 8, 8),
                (h + 24, 8),
                (h + 32, 8),
                (h + 40, 4),
            ]);
        }
        for (at, width) in fields {
            for value in [
                0u64,
                1,
                0x7f,
                0xff,
                0xffff,
                0x7fff_ffff,
                0xffff_ffff,
                u64::MAX,
            ] {
                let mut bad = image.clone();
                bad[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                let _ = parse_module(&bad);
            }
        }
    }

    #[test]
    fn parse_module_file_accepts_each_compression() {
        use std::io::Write;
        let image = ImageBuilder::module().build();
        let expected = parse_module(&image).unwrap();

        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &image[..], &mut xz).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&image).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &image[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );

        for file in [image.clone(), xz, gz, zst] {
            assert_eq!(parse_module_file(&file).unwrap(), expected);
        }
        // A compressed file that is not a module.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"plain text").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            parse_module_file(&gz).unwrap_err().kind(),
            ErrorKind::NotElf
        );
        assert_eq!(decompress(&gz).unwrap().as_ref(), b"plain text");
    }
}
