//! Handmade ELF64 little-endian module images for the unit tests, and the three compressors
//! ([`xz`], [`gzip`], [`zstd`]) that make compressed ones.
//!
//! Layout of a built image: the 64-byte ELF header, each section's data (8-byte aligned) in
//! section order, the section name table, then the section header table at the very end, so
//! that cutting the image anywhere cuts the section header table.

pub(crate) const SHT_PROGBITS: u32 = 1;
pub(crate) const SHT_SYMTAB: u32 = 2;
pub(crate) const SHT_STRTAB: u32 = 3;
pub(crate) const SHT_NOBITS: u32 = 8;
pub(crate) const SHF_WRITE: u64 = 0x1;
pub(crate) const SHF_ALLOC: u64 = 0x2;
pub(crate) const SHF_EXECINSTR: u64 = 0x4;
pub(crate) const STB_LOCAL: u8 = 0;
pub(crate) const STB_GLOBAL: u8 = 1;
pub(crate) const STB_WEAK: u8 = 2;

/// The `.modinfo` of [`ImageBuilder::module`].
pub(crate) const DEMO_MODINFO: &[u8] = b"license=GPL\0description=kmodlab demo\0\
    alias=pci:v00001234d*\0alias=usb:v0BDAp*\0depends=\0name=demo\0\0\0\
    vermagic=6.12.0-test SMP preempt mod_unload \0";

/// One section to lay out.
#[derive(Debug, Clone)]
pub(crate) struct SectionSpec {
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    pub data: Vec<u8>,
    /// `sh_size` for `SHT_NOBITS` sections (their data is empty).
    pub nobits_size: u64,
    pub link: u32,
    pub entsize: u64,
}

/// One symbol: name, binding and the index of its section (0 for undefined).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sym {
    pub name: &'static str,
    pub bind: u8,
    pub shndx: u16,
}

/// Where things landed in a built image, for tests that patch it.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Offset of the section header table.
    pub shoff: usize,
    /// Offset of each section's data, by section index (0 for the null section).
    pub data_offset: Vec<usize>,
}

impl Layout {
    /// Offset of section `index`'s header.
    pub fn header(&self, index: usize) -> usize {
        self.shoff + 64 * index
    }
}

/// Builds an ELF64 little-endian relocatable image section by section.
#[derive(Debug, Clone)]
pub(crate) struct ImageBuilder {
    pub e_type: u16,
    pub sections: Vec<SectionSpec>,
}

impl ImageBuilder {
    /// An image with no sections but the null section and, when built, `.shstrtab`.
    pub fn empty() -> ImageBuilder {
        ImageBuilder {
            e_type: 1,
            sections: Vec::new(),
        }
    }

    /// A well-formed module named `demo`: text, init and exit text, `.modinfo`,
    /// `.gnu.linkonce.this_module`, `.bss` and a symbol table.
    pub fn module() -> ImageBuilder {
        let mut b = ImageBuilder::empty();
        let text = b.section(
            ".text",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_EXECINSTR,
            vec![0xc3; 16],
        );
        let init = b.section(
            ".init.text",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_EXECINSTR,
            vec![0x90; 12],
        );
        let exit = b.section(
            ".exit.text",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_EXECINSTR,
            vec![0x90; 4],
        );
        b.section(".modinfo", SHT_PROGBITS, SHF_ALLOC, DEMO_MODINFO.to_vec());
        let this_module = b.section(
            ".gnu.linkonce.this_module",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            struct_module("demo", 128),
        );
        b.sections.push(SectionSpec {
            name: ".bss".into(),
            kind: SHT_NOBITS,
            flags: SHF_ALLOC | SHF_WRITE,
            data: Vec::new(),
            nobits_size: 1 << 20,
            link: 0,
            entsize: 0,
        });
        b.symbols(&[
            Sym {
                name: "",
                bind: STB_LOCAL,
                shndx: text,
            },
            Sym {
                name: "demo_init",
                bind: STB_LOCAL,
                shndx: init,
            },
            Sym {
                name: "init_module",
                bind: STB_GLOBAL,
                shndx: init,
            },
            Sym {
                name: "cleanup_module",
                bind: STB_GLOBAL,
                shndx: exit,
            },
            Sym {
                name: "__this_module",
                bind: STB_GLOBAL,
                shndx: this_module,
            },
            Sym {
                name: "_printk",
                bind: STB_GLOBAL,
                shndx: 0,
            },
            Sym {
                name: "maybe_there",
                bind: STB_WEAK,
                shndx: 0,
            },
            Sym {
                name: "",
                bind: STB_GLOBAL,
                shndx: 0,
            },
            Sym {
                name: "kmalloc_caches",
                bind: STB_GLOBAL,
                shndx: 0,
            },
        ]);
        b
    }

    /// Appends a section; returns its index.
    pub fn section(&mut self, name: &str, kind: u32, flags: u64, data: Vec<u8>) -> u16 {
        self.sections.push(SectionSpec {
            name: name.into(),
            kind,
            flags,
            data,
            nobits_size: 0,
            link: 0,
            entsize: 0,
        });
        u16::try_from(self.sections.len()).unwrap()
    }

    /// The section called `name`.
    pub fn get_mut(&mut self, name: &str) -> &mut SectionSpec {
        self.sections.iter_mut().find(|s| s.name == name).unwrap()
    }

    /// Appends `.symtab` (with a null symbol first) and its `.strtab`.
    pub fn symbols(&mut self, symbols: &[Sym]) {
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        for sym in symbols {
            let name = if sym.name.is_empty() {
                0
            } else {
                let at = strtab.len();
                strtab.extend_from_slice(sym.name.as_bytes());
                strtab.push(0);
                at
            };
            symtab.extend_from_slice(&u32::try_from(name).unwrap().to_le_bytes());
            symtab.push(sym.bind << 4);
            symtab.push(0);
            symtab.extend_from_slice(&sym.shndx.to_le_bytes());
            symtab.extend_from_slice(&[0; 16]);
        }
        let strtab_index = u32::try_from(self.sections.len() + 2).unwrap();
        self.sections.push(SectionSpec {
            name: ".symtab".into(),
            kind: SHT_SYMTAB,
            flags: 0,
            data: symtab,
            nobits_size: 0,
            link: strtab_index,
            entsize: 24,
        });
        self.section(".strtab", SHT_STRTAB, 0, strtab);
    }

    /// The image bytes.
    pub fn build(&self) -> Vec<u8> {
        self.build_with_layout().0
    }

    /// The image bytes and where its parts are.
    pub fn build_with_layout(&self) -> (Vec<u8>, Layout) {
        let mut all = self.sections.clone();
        let mut shstrtab = vec![0u8];
        let mut name_offsets = Vec::new();
        for s in &all {
            name_offsets.push(u32::try_from(shstrtab.len()).unwrap());
            shstrtab.extend_from_slice(s.name.as_bytes());
            shstrtab.push(0);
        }
        name_offsets.push(u32::try_from(shstrtab.len()).unwrap());
        shstrtab.extend_from_slice(b".shstrtab\0");
        all.push(SectionSpec {
            name: ".shstrtab".into(),
            kind: SHT_STRTAB,
            flags: 0,
            data: shstrtab,
            nobits_size: 0,
            link: 0,
            entsize: 0,
        });

        let mut out = vec![0u8; 64];
        let mut data_offset = vec![0usize];
        for s in &all {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            data_offset.push(out.len());
            out.extend_from_slice(&s.data);
        }
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len();
        out.extend_from_slice(&[0; 64]); // the null section
        for (i, s) in all.iter().enumerate() {
            let size = if s.kind == SHT_NOBITS {
                s.nobits_size
            } else {
                s.data.len() as u64
            };
            out.extend_from_slice(&name_offsets[i].to_le_bytes());
            out.extend_from_slice(&s.kind.to_le_bytes());
            out.extend_from_slice(&s.flags.to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
            out.extend_from_slice(&(data_offset[i + 1] as u64).to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&s.link.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // sh_info
            out.extend_from_slice(&8u64.to_le_bytes()); // sh_addralign
            out.extend_from_slice(&s.entsize.to_le_bytes());
        }

        let shnum = u16::try_from(all.len() + 1).unwrap();
        let header = &mut out[..64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2; // ELFCLASS64
        header[5] = 1; // ELFDATA2LSB
        header[6] = 1; // EV_CURRENT
        header[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        header[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        header[20..24].copy_from_slice(&1u32.to_le_bytes());
        header[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        header[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        header[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        header[60..62].copy_from_slice(&shnum.to_le_bytes());
        header[62..64].copy_from_slice(&(shnum - 1).to_le_bytes()); // .shstrtab is last
        (out, Layout { shoff, data_offset })
    }
}

/// `len` bytes of a `struct module` with `name` at offset 24.
pub(crate) fn struct_module(name: &str, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    data[24..24 + name.len()].copy_from_slice(name.as_bytes());
    data
}

/// `data` compressed with xz.
pub(crate) fn xz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
    out
}

/// `data` compressed with gzip.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// `data` compressed with zstd.
pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}
