//! A symbol table for gdb made from a running kernel's `/proc/kallsyms`, for a kernel whose
//! vmlinux with DWARF is not at hand (Debian's lives in a separate 1 GB `-dbg` package).
//!
//! The result is a small ELF executable for x86-64 with no code or data in it: sections of type
//! `SHT_NOBITS` that cover the kernel's addresses, and a `.symtab` with one symbol per kallsyms
//! line. gdb takes it as its program file and reads every byte from the target, so kernel frames,
//! `info symbol` and `break *do_init_module` have names. Code symbols (`t`, `T`, `w`, `W`) become
//! functions, the others objects; lowercase letters are local symbols. Each symbol's size is the
//! distance to the next address, as kallsyms itself reports them. Lines of modules (`[name]`),
//! symbols below the kernel's half of the address space (per-CPU offsets, zeroed addresses when
//! `kptr_restrict` hides them), and lines that do not parse are left out.

/// What [`elf_from_kallsyms`] kept.
#[derive(Debug, PartialEq, Eq)]
pub struct KallsymsElf {
    /// The ELF file.
    pub elf: Vec<u8>,
    /// How many symbols it holds.
    pub symbols: usize,
}

/// The lowest address of the kernel's half of the x86-64 address space.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

struct Sym<'a> {
    addr: u64,
    name: &'a str,
    code: bool,
    global: bool,
}

/// One run of symbols of the same kind (code or not), which becomes one section.
struct Run {
    start: u64,
    end: u64,
    code: bool,
}

fn parse_line(line: &str) -> Option<Sym<'_>> {
    let mut words = line.split_whitespace();
    let addr = u64::from_str_radix(words.next()?, 16).ok()?;
    let kind = words.next()?;
    let name = words.next()?;
    if words.next().is_some() || addr < KERNEL_HALF || kind.len() != 1 {
        // A module's symbol (`[name]` follows), or not a kernel address.
        return None;
    }
    let letter = kind.chars().next()?;
    if !letter.is_ascii_alphabetic() || matches!(letter, 'U' | 'u') {
        return None;
    }
    Some(Sym {
        addr,
        name,
        code: matches!(letter, 't' | 'T' | 'w' | 'W'),
        global: letter.is_ascii_uppercase(),
    })
}

/// Makes the ELF file from the text of `/proc/kallsyms`. `None` when no line gives a kernel
/// symbol with an address (kallsyms read without the right to see addresses shows zeros).
pub fn elf_from_kallsyms(text: &str) -> Option<KallsymsElf> {
    let mut syms: Vec<Sym> = text.lines().filter_map(parse_line).collect();
    if syms.is_empty() {
        return None;
    }
    syms.sort_by_key(|s| s.addr);
    // Sections: runs of consecutive symbols of one kind, each ending where the next begins; the
    // last one ends a page after its last symbol.
    let mut runs: Vec<Run> = Vec::new();
    let mut run_of = Vec::with_capacity(syms.len());
    for s in &syms {
        match runs.last_mut() {
            Some(r) if r.code == s.code => {}
            _ => {
                if let Some(r) = runs.last_mut() {
                    r.end = s.addr;
                }
                runs.push(Run {
                    start: s.addr,
                    end: s.addr,
                    code: s.code,
                });
            }
        }
        run_of.push(runs.len());
    }
    if let Some(r) = runs.last_mut() {
        r.end = syms.last().map_or(r.start, |s| s.addr).saturating_add(4096);
    }

    let mut strtab = vec![0u8];
    let mut shstrtab = vec![0u8];
    let add_name = |table: &mut Vec<u8>, name: &str| -> u32 {
        let at = table.len() as u32;
        table.extend_from_slice(name.as_bytes());
        table.push(0);
        at
    };

    // Local symbols first, as ELF wants; `sh_info` of .symtab is the first global's index.
    let mut order: Vec<usize> = (0..syms.len()).collect();
    order.sort_by_key(|&i| syms[i].global);
    let first_global = 1 + order.iter().take_while(|&&i| !syms[i].global).count();
    let mut symtab = vec![0u8; 24];
    for &i in &order {
        let s = &syms[i];
        let next = syms
            .get(i + 1)
            .filter(|_| run_of[i + 1] == run_of[i])
            .map_or(runs[run_of[i] - 1].end, |n| n.addr);
        let size = next.saturating_sub(s.addr);
        let name = add_name(&mut strtab, s.name);
        let bind: u8 = if s.global { 1 } else { 0 };
        let kind: u8 = if s.code { 2 } else { 1 }; // STT_FUNC, STT_OBJECT
        symtab.extend_from_slice(&name.to_le_bytes());
        symtab.push(bind << 4 | kind);
        symtab.push(0);
        // Section indexes: 0 is the null section, runs start at 1.
        symtab.extend_from_slice(&(run_of[i] as u16).to_le_bytes());
        symtab.extend_from_slice(&s.addr.to_le_bytes());
        symtab.extend_from_slice(&size.to_le_bytes());
    }
    // More sections than ELF's 16-bit indexes can hold would need extended numbering; a
    // kernel has a handful of runs, so refuse rather than write a broken file.
    let sections = runs.len() + 4;
    if sections >= 0xff00 {
        return None;
    }

    // The file: header, .symtab, .strtab, .shstrtab, then the section headers.
    let mut headers: Vec<[u64; 8]> = vec![[0; 8]];
    let text_name = add_name(&mut shstrtab, ".text");
    let data_name = add_name(&mut shstrtab, ".data");
    const SHT_NOBITS: u64 = 8;
    const SHF_WRITE: u64 = 1;
    const SHF_ALLOC: u64 = 2;
    const SHF_EXECINSTR: u64 = 4;
    for r in &runs {
        let (name, flags) = if r.code {
            (text_name, SHF_ALLOC | SHF_EXECINSTR)
        } else {
            (data_name, SHF_ALLOC | SHF_WRITE)
        };
        // name | type, flags, addr, offset, size, link | info, addralign, entsize
        headers.push([
            u64::from(name) | SHT_NOBITS << 32,
            flags,
            r.start,
            64,
            r.end.saturating_sub(r.start),
            0,
            1,
            0,
        ]);
    }
    let symtab_name = add_name(&mut shstrtab, ".symtab");
    let strtab_name = add_name(&mut shstrtab, ".strtab");
    let shstrtab_name = add_name(&mut shstrtab, ".shstrtab");
    let symtab_at = 64u64;
    let strtab_at = symtab_at + symtab.len() as u64;
    let shstrtab_at = strtab_at + strtab.len() as u64;
    let headers_at = (shstrtab_at + shstrtab.len() as u64).next_multiple_of(8);
    let strtab_index = headers.len() as u64 + 1;
    headers.push([
        u64::from(symtab_name) | 2 << 32, // SHT_SYMTAB
        0,
        0,
        symtab_at,
        symtab.len() as u64,
        strtab_index | (first_global as u64) << 32,
        8,
        24,
    ]);
    for (name, at, len) in [
        (strtab_name, strtab_at, strtab.len()),
        (shstrtab_name, shstrtab_at, shstrtab.len()),
    ] {
        headers.push([u64::from(name) | 3 << 32, 0, 0, at, len as u64, 0, 1, 0]);
    }

    let mut elf = Vec::with_capacity(headers_at as usize + headers.len() * 64);
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes()); // entry
    elf.extend_from_slice(&0u64.to_le_bytes()); // no program headers
    elf.extend_from_slice(&headers_at.to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [
        64u16,
        0,
        0,
        64,
        headers.len() as u16,
        headers.len() as u16 - 1,
    ] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&symtab);
    elf.extend_from_slice(&strtab);
    elf.extend_from_slice(&shstrtab);
    elf.resize(headers_at as usize, 0);
    for h in &headers {
        let [name_type, flags, addr, offset, size, link_info, align, entsize] = *h;
        elf.extend_from_slice(&name_type.to_le_bytes()); // sh_name, sh_type
        elf.extend_from_slice(&flags.to_le_bytes());
        elf.extend_from_slice(&addr.to_le_bytes());
        elf.extend_from_slice(&offset.to_le_bytes());
        elf.extend_from_slice(&size.to_le_bytes());
        elf.extend_from_slice(&link_info.to_le_bytes()); // sh_link, sh_info
        elf.extend_from_slice(&align.to_le_bytes());
        elf.extend_from_slice(&entsize.to_le_bytes());
    }
    Some(KallsymsElf {
        elf,
        symbols: syms.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

    const SAMPLE: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff81000000 T _stext
ffffffff81000000 T startup_64
ffffffff81000100 t secondary_startup_64
ffffffff81000200 T do_init_module
ffffffff82000000 D __start_rodata
ffffffff82000040 r some_table
ffffffff83000000 t init_one
ffffffffc0000000 t hello_init\t[hello]
not a line at all
ffffffff83000100 U undefined_thing
";

    #[test]
    fn symbols_keep_their_addresses_kinds_and_sizes() {
        let out = elf_from_kallsyms(SAMPLE).unwrap();
        assert_eq!(out.symbols, 7);
        let file = object::File::parse(&*out.elf).unwrap();
        assert_eq!(file.architecture(), object::Architecture::X86_64);
        let find = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .unwrap_or_else(|| panic!("{name}"))
        };
        let init = find("do_init_module");
        assert_eq!(init.address(), 0xffff_ffff_8100_0200);
        assert_eq!(init.kind(), SymbolKind::Text);
        assert!(init.is_global());
        // To the next symbol, which is data: the end of this run of code.
        assert_eq!(init.size(), 0xffff_ffff_8200_0000 - 0xffff_ffff_8100_0200);
        let local = find("secondary_startup_64");
        assert!(!local.is_global());
        assert_eq!(local.size(), 0x100);
        let table = find("some_table");
        assert_eq!(table.kind(), SymbolKind::Data);
        assert_eq!(table.size(), 0xffff_ffff_8300_0000 - 0xffff_ffff_8200_0040);
        assert_eq!(find("init_one").size(), 4096);
        for gone in ["hello_init", "fixed_percpu_data", "undefined_thing"] {
            assert!(file.symbols().all(|s| s.name() != Ok(gone)), "{gone}");
        }
        // Three runs: code, data, code again; each a section covering its addresses.
        let sections: Vec<_> = file
            .sections()
            .filter(|s| s.name() == Ok(".text") || s.name() == Ok(".data"))
            .map(|s| (s.name().unwrap().to_string(), s.address(), s.size()))
            .collect();
        assert_eq!(
            sections,
            [
                (".text".into(), 0xffff_ffff_8100_0000, 0x100_0000),
                (".data".into(), 0xffff_ffff_8200_0000, 0x100_0000),
                (".text".into(), 0xffff_ffff_8300_0000, 4096),
            ]
        );
    }

    #[test]
    fn hidden_addresses_give_nothing() {
        assert_eq!(
            elf_from_kallsyms("0000000000000000 T _stext\n0000000000000000 t x\n"),
            None
        );
        assert_eq!(elf_from_kallsyms(""), None);
    }
}
