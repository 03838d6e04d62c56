//! Reading an ELF file once: sections, symbols, a load layout for relocatable modules and the
//! relocations of the debug and code sections applied in place.
//!
//! A `.ko` is an ELF relocatable file: every section starts at address 0 and the DWARF sections
//! refer to code through `.rela.debug_*` relocations against section symbols. Here each
//! allocated section gets its own address, laid out the way the kernel's module loader lays a
//! module out (`kernel/module/main.c`, `layout_sections`): executable sections whose name does
//! not start with `.init` one after the other in the "text" region, `.init*` executable sections
//! in the "init text" region, everything else allocated in a data region. The relocations of the
//! `.debug_*` sections and of the executable sections are then applied with those addresses, so
//! that every code address in the DWARF data is unambiguous and the code bytes can be
//! disassembled with their call targets. Undefined symbols (`_printk`) get addresses of their
//! own, below the module, so that a call to them can be named.
//!
//! An executable (`vmlinux`) is used as it is.

use std::collections::HashMap;
use std::sync::Arc;

use object::elf;
use object::read::elf::{FileHeader, Rela as _, SectionHeader, Sym as _};
use object::LittleEndian as LE;

/// Base of the module's text region (`.text`, `.exit.text`, `.text.*`).
pub(crate) const TEXT_BASE: u64 = 0xffff_ffff_c000_0000;
/// Base of the module's init text region (`.init.text`).
pub(crate) const INIT_TEXT_BASE: u64 = 0xffff_ffff_d000_0000;
/// Base of the module's other allocated sections.
const DATA_BASE: u64 = 0xffff_ffff_e000_0000;
/// Base of the addresses given to undefined symbols.
const EXTERN_BASE: u64 = 0xffff_ffff_a000_0000;

/// Where an allocated section lives once laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    /// Not allocated (debug sections, `.modinfo` is allocated though).
    None,
    /// Executable, not `.init*`.
    Text,
    /// Executable `.init*`.
    InitText,
    /// Allocated, not executable.
    Data,
}

/// One section header, with its assigned address.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    /// Offset of the section's bytes in [`Image::data`] (0 for `SHT_NOBITS`).
    pub offset: usize,
    pub size: u64,
    /// Address: `sh_addr` in an executable, the laid-out address in a relocatable file.
    pub addr: u64,
    pub region: Region,
}

impl Section {
    /// Whether the section holds code.
    pub fn is_exec(&self) -> bool {
        self.flags & elf::SHF_EXECINSTR.0 != 0 && self.flags & elf::SHF_ALLOC.0 != 0
    }

    /// The section's bytes, if it has any in the file.
    pub fn bytes<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        if self.sh_type == elf::SHT_NOBITS.0 {
            return None;
        }
        let end = self.offset.checked_add(usize::try_from(self.size).ok()?)?;
        data.get(self.offset..end)
    }
}

/// One named symbol from `.symtab`.
#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    /// The name as in the file (`_RNv...` for Rust).
    pub name: String,
    /// Demangled without hash for Rust symbols, else the name.
    pub display: String,
    /// Index of the section it is defined in.
    pub section: Option<usize>,
    /// Address after layout.
    pub addr: u64,
    /// `st_size`.
    pub size: u64,
    /// `STT_FUNC`.
    pub func: bool,
    /// The size the kernel's kallsyms reports: distance to the next symbol, or to the end of the
    /// code region, whose size is a whole number of pages (0 when not in code).
    pub kallsyms_size: u64,
}

/// An ELF file read into memory, relocated, with its sections and symbols.
pub(crate) struct Image {
    /// The whole (decompressed) file, relocations applied.
    pub data: Arc<[u8]>,
    pub sections: Vec<Section>,
    /// Named symbols (no section or file symbols), in symbol-table order.
    pub symbols: Vec<Symbol>,
    /// Addresses given to undefined symbols, with their names.
    pub externs: Vec<(u64, String)>,
    /// `ET_REL`.
    pub relocatable: bool,
    /// `EM_X86_64`.
    pub x86_64: bool,
    /// The bytes of relocated code sections as they are in the file, by section index (to
    /// show instruction bytes as `objdump -d` of the file shows them).
    pub original_code: HashMap<usize, Vec<u8>>,
    /// Symbol indexes by name: as in the file, demangled without hash, demangled with hash.
    pub by_name: HashMap<String, Vec<usize>>,
}

/// Demangles a Rust symbol without its hash; returns other names as they are.
pub(crate) fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

fn align_up(v: u64, align: u64) -> u64 {
    if align <= 1 {
        return v;
    }
    v.checked_add(align - 1).map_or(v, |x| x / align * align)
}

/// Whether kallsyms ignores a symbol name (unnamed, mapping and local labels).
fn ignored_name(name: &str) -> bool {
    name.is_empty() || name.starts_with('$') || name.starts_with(".L")
}

impl Image {
    /// Reads an uncompressed ELF image; `data` must not be shared (relocations are applied to
    /// it in place). Errors are one line of text.
    pub fn parse(mut data: Arc<[u8]>) -> Result<Image, String> {
        let (sections, symbols, externs, relocs, relocatable, x86_64) = {
            let data = &data[..];
            let hdr = elf::FileHeader64::<LE>::parse(data)
                .map_err(|e| format!("not a 64-bit little-endian ELF file: {e}"))?;
            let endian = hdr.endian().map_err(|e| e.to_string())?;
            let e_type = hdr.e_type(endian);
            let relocatable = e_type == elf::ET_REL;
            let x86_64 = hdr.e_machine(endian) == elf::EM_X86_64;
            if relocatable && !x86_64 {
                return Err("relocatable ELF file for a machine other than x86_64".into());
            }
            let table = hdr.sections(endian, data).map_err(|e| e.to_string())?;
            let mut sections = Vec::with_capacity(table.len());
            for sh in table.iter() {
                let name = table
                    .section_name(endian, sh)
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .unwrap_or_default();
                let sh_type = sh.sh_type(endian).0;
                let flags = sh.sh_flags(endian).0;
                let size = sh.sh_size(endian);
                let offset = if sh_type == elf::SHT_NOBITS.0 {
                    0
                } else {
                    usize::try_from(sh.sh_offset(endian)).unwrap_or(usize::MAX)
                };
                let alloc = flags & elf::SHF_ALLOC.0 != 0;
                let exec = flags & elf::SHF_EXECINSTR.0 != 0;
                let region = match (alloc, exec) {
                    (false, _) => Region::None,
                    (true, true) if name.starts_with(".init") => Region::InitText,
                    (true, true) => Region::Text,
                    (true, false) => Region::Data,
                };
                sections.push(Section {
                    name,
                    sh_type,
                    flags,
                    offset,
                    size,
                    addr: sh.sh_addr(endian),
                    region,
                });
                // Remember the alignment in the address field until layout.
                if relocatable {
                    let last = sections.last_mut().expect("just pushed");
                    last.addr = sh.sh_addralign(endian);
                }
            }
            if relocatable {
                let mut cursors = [
                    (Region::Text, TEXT_BASE),
                    (Region::InitText, INIT_TEXT_BASE),
                    (Region::Data, DATA_BASE),
                ];
                for s in &mut sections {
                    let align = s.addr;
                    s.addr = 0;
                    if let Some((_, cur)) = cursors.iter_mut().find(|(r, _)| *r == s.region) {
                        let addr = align_up(*cur, align.min(1 << 20));
                        s.addr = addr;
                        *cur = addr.saturating_add(s.size.min(1 << 28));
                    }
                }
            }

            let symtab = table
                .symbols(endian, data, elf::SHT_SYMTAB)
                .map_err(|e| e.to_string())?;
            // Address of every symbol-table entry, for relocations (index 0 included).
            let mut sym_addr = vec![0u64; symtab.len()];
            let mut symbols = Vec::new();
            let mut externs: Vec<(u64, String)> = Vec::new();
            let mut extern_index: HashMap<String, u64> = HashMap::new();
            for (i, sym) in symtab.iter().enumerate() {
                let name = symtab
                    .symbol_name(endian, sym)
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .unwrap_or_default();
                let shndx = sym.st_shndx(endian);
                let value = sym.st_value(endian);
                let section = symtab
                    .symbol_section(endian, sym, object::SymbolIndex(i))
                    .ok()
                    .flatten()
                    .map(|s| s.0)
                    .filter(|&s| s < sections.len());
                let st_type = sym.st_type();
                let addr = if let Some(s) = section {
                    if relocatable {
                        if sections[s].region == Region::None {
                            value
                        } else {
                            sections[s].addr.wrapping_add(value)
                        }
                    } else {
                        value
                    }
                } else if shndx == elf::SHN_UNDEF && i != 0 && !name.is_empty() {
                    if relocatable {
                        let next = EXTERN_BASE + 16 * extern_index.len() as u64;
                        let a = *extern_index.entry(name.clone()).or_insert(next);
                        if a == next {
                            externs.push((a, name.clone()));
                        }
                        a
                    } else {
                        0
                    }
                } else {
                    value
                };
                sym_addr[i] = addr;
                if i == 0
                    || ignored_name(&name)
                    || st_type == elf::STT_SECTION
                    || st_type == elf::STT_FILE
                    || section.is_none()
                {
                    continue;
                }
                symbols.push(Symbol {
                    display: demangle(&name),
                    name,
                    section,
                    addr,
                    size: sym.st_size(endian),
                    func: st_type == elf::STT_FUNC,
                    kallsyms_size: 0,
                });
            }

            // Relocations to apply: those of debug sections and of code (relocatable files only).
            let mut relocs = Vec::new();
            if relocatable {
                for sh in table.iter() {
                    let Ok(Some((rela, link))) = sh.rela(endian, data) else {
                        continue;
                    };
                    if link.0 != symtab.section().0 {
                        continue;
                    }
                    let target = sh.sh_info(endian) as usize;
                    let Some(t) = sections.get(target) else {
                        continue;
                    };
                    if !(t.is_exec() || t.name.starts_with(".debug_") && t.region == Region::None) {
                        continue;
                    }
                    for r in rela {
                        relocs.push(Reloc {
                            section: target,
                            offset: r.r_offset(endian),
                            r_type: r.r_type(endian, false).0,
                            sym: r.r_sym(endian, false) as usize,
                            addend: r.r_addend(endian),
                            sym_addr: None,
                        });
                    }
                }
                for r in &mut relocs {
                    // Resolve the symbol's address now, while the table is at hand.
                    r.sym_addr = sym_addr.get(r.sym).copied();
                }
            }
            (sections, symbols, externs, relocs, relocatable, x86_64)
        };

        let mut original_code = HashMap::new();
        for r in &relocs {
            if let Some(sec) = sections.get(r.section).filter(|s| s.is_exec()) {
                if let (std::collections::hash_map::Entry::Vacant(e), Some(b)) =
                    (original_code.entry(r.section), sec.bytes(&data))
                {
                    e.insert(b.to_vec());
                }
            }
        }
        if !relocs.is_empty() {
            let bytes = Arc::get_mut(&mut data).ok_or("the image is shared")?;
            for r in &relocs {
                apply(bytes, &sections, r);
            }
        }
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in symbols.iter().enumerate() {
            let mut add = |k: &str| {
                let v = by_name.entry(k.to_string()).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            };
            add(&s.name);
            add(&s.display);
            if let Ok(d) = rustc_demangle::try_demangle(&s.name) {
                add(&d.to_string());
            }
        }

        let mut image = Image {
            data,
            sections,
            symbols,
            externs,
            relocatable,
            x86_64,
            original_code,
            by_name,
        };
        image.compute_kallsyms_sizes();
        Ok(image)
    }

    /// Sizes as kallsyms reports them: from a symbol to the next one above it in the same code
    /// region (or section, in an executable), else to the region's end.
    fn compute_kallsyms_sizes(&mut self) {
        let key = |s: &Section| -> (u8, usize) {
            match s.region {
                Region::Text => (0, 0),
                Region::InitText => (1, 0),
                _ => (2, 0),
            }
        };
        // Group: region for relocatable files; section for executables.
        let group = |sym: &Symbol, sections: &[Section], rel: bool| -> Option<(u8, usize)> {
            let s = &sections[sym.section?];
            if !s.is_exec() {
                return None;
            }
            Some(if rel {
                key(s)
            } else {
                (3, sym.section.unwrap_or(0))
            })
        };
        let mut ends: HashMap<(u8, usize), u64> = HashMap::new();
        for (i, s) in self.sections.iter().enumerate() {
            if !s.is_exec() {
                continue;
            }
            let g = if self.relocatable { key(s) } else { (3, i) };
            let mut end = s.addr.saturating_add(s.size);
            if self.relocatable {
                // The loader allocates each region in whole pages, and kallsyms measures the
                // last symbol of a region to the region's end: `init+0x15/0xff0`.
                end = align_up(end, 4096);
            }
            let e = ends.entry(g).or_insert(end);
            *e = (*e).max(end);
        }
        let mut order: Vec<usize> = (0..self.symbols.len())
            .filter(|&i| group(&self.symbols[i], &self.sections, self.relocatable).is_some())
            .collect();
        order.sort_by_key(|&i| {
            let s = &self.symbols[i];
            (group(s, &self.sections, self.relocatable), s.addr)
        });
        // From the highest address down: the next higher address in the same group is that
        // of the following symbol, or the same as its own when they share an address.
        let mut current: Option<(u8, usize)> = None;
        let mut following: Option<u64> = None;
        let mut next_higher: Option<u64> = None;
        for &i in order.iter().rev() {
            let g = group(&self.symbols[i], &self.sections, self.relocatable);
            let addr = self.symbols[i].addr;
            if g != current {
                current = g;
                next_higher = None;
            } else if following != Some(addr) {
                next_higher = following;
            }
            following = Some(addr);
            let end = next_higher
                .or_else(|| g.and_then(|g| ends.get(&g).copied()))
                .unwrap_or(addr);
            self.symbols[i].kallsyms_size = end.saturating_sub(addr);
        }
    }

    /// The bytes of a section by name (first such section).
    pub fn section_named(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// One relocation to apply.
struct Reloc {
    section: usize,
    offset: u64,
    r_type: u32,
    sym: usize,
    addend: i64,
    sym_addr: Option<u64>,
}

/// Applies one x86_64 relocation in place; anything out of range or unknown is skipped.
fn apply(data: &mut [u8], sections: &[Section], r: &Reloc) {
    let Some(sec) = sections.get(r.section) else {
        return;
    };
    let Some(s) = r.sym_addr else {
        return;
    };
    let (width, value) = {
        let sa = s.wrapping_add(r.addend as u64);
        let p = if sec.region == Region::None {
            0
        } else {
            sec.addr
        }
        .wrapping_add(r.offset);
        match r.r_type {
            // R_X86_64_64
            1 => (8, sa),
            // R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_GOTPCREL, GOTPCRELX, REX_GOTPCRELX
            2 | 4 | 9 | 41 | 42 => (4, sa.wrapping_sub(p)),
            // R_X86_64_32, R_X86_64_32S
            10 | 11 => (4, sa),
            // R_X86_64_PC64
            24 => (8, sa.wrapping_sub(p)),
            _ => return,
        }
    };
    if sec.sh_type == elf::SHT_NOBITS.0 || r.offset.saturating_add(width) > sec.size {
        return;
    }
    let Some(start) = usize::try_from(r.offset)
        .ok()
        .and_then(|o| sec.offset.checked_add(o))
    else {
        return;
    };
    let Some(dst) = start
        .checked_add(width as usize)
        .and_then(|end| data.get_mut(start..end))
    else {
        return;
    };
    dst.copy_from_slice(&value.to_le_bytes()[..width as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_symbols_are_demangled_without_hash() {
        assert_eq!(
            demangle("_RNvCs1234abcd_9rust_oops4init"),
            "rust_oops::init"
        );
        assert_eq!(
            demangle("_ZN9rust_oops4init17h0123456789abcdefE"),
            "rust_oops::init"
        );
        assert_eq!(demangle("my_oops_init"), "my_oops_init");
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(0x25, 16), 0x30);
        assert_eq!(align_up(0x30, 16), 0x30);
        assert_eq!(align_up(7, 0), 7);
        assert_eq!(align_up(u64::MAX, 16), u64::MAX);
    }
}
