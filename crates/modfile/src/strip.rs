//! A module image without its debug information, for a guest that only loads it.
//!
//! The kernel never reads a module's DWARF: `.debug_*` sections (and the `.rela.debug_*`
//! sections that relocate them) are not allocated, and the loader skips relocations of
//! sections that are not. They are most of a module built with debug info (150 of a hello
//! module's 177 KB), and copying them into a guest and through `finit_module` costs time on
//! every run. [`without_debug_info`] keeps every section header, so section indices, symbols
//! and relocations stay valid, and empties the debug sections: the data of every other section
//! is laid out again, byte for byte, at its alignment.

use crate::elf::{Elf, Section, SHF_ALLOC, SHT_NOBITS, SHT_NULL};
use crate::signature::SIGNATURE_MAGIC;

const SHT_RELA: u32 = 4;
const SHT_REL: u32 = 9;
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
/// The largest section alignment kept in the file layout (a page); larger values are kept in
/// the header but not padded to.
const MAX_FILE_ALIGN: u64 = 4096;

/// `image` (an uncompressed module) with its `.debug_*` sections and their relocation sections
/// emptied, or `None` when there is nothing to empty, or when the image must stay as it is: a signed
/// module (the signature covers every byte), or anything that is not a valid ELF module.
pub fn without_debug_info(image: &[u8]) -> Option<Vec<u8>> {
    if image.ends_with(SIGNATURE_MAGIC) {
        return None;
    }
    let elf = Elf::parse(image).ok()?;
    let sections = elf.sections();
    let header = |s: &Section| -> Option<&[u8]> {
        let at = usize::try_from(s.header_offset).ok()?;
        image.get(at..at.checked_add(SHDR_SIZE)?)
    };
    let is_debug = |s: &Section| s.flags & SHF_ALLOC == 0 && s.name.starts_with(b".debug");
    let mut dropped = Vec::with_capacity(sections.len());
    for s in sections {
        let relocates_debug = (s.kind == SHT_RELA || s.kind == SHT_REL)
            && header(s)
                .and_then(|h| h.get(44..48))
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .and_then(|info| sections.get(usize::try_from(info).ok()?))
                .is_some_and(is_debug);
        dropped.push(is_debug(s) || relocates_debug);
    }
    if !sections
        .iter()
        .zip(&dropped)
        .any(|(s, &d)| d && !s.data.is_empty())
    {
        return None;
    }

    let mut out = image.get(..EHDR_SIZE)?.to_vec();
    let mut headers = Vec::with_capacity(sections.len() * SHDR_SIZE);
    for (s, &drop) in sections.iter().zip(&dropped) {
        let mut h = header(s)?.to_vec();
        if drop {
            h[24..32].copy_from_slice(&0u64.to_le_bytes());
            h[32..40].copy_from_slice(&0u64.to_le_bytes());
        } else if s.kind != SHT_NULL && s.kind != SHT_NOBITS {
            let align = u64::from_le_bytes(h[48..56].try_into().ok()?).clamp(1, MAX_FILE_ALIGN);
            pad_to(&mut out, align);
            h[24..32].copy_from_slice(&(out.len() as u64).to_le_bytes());
            out.extend_from_slice(s.data);
        }
        headers.extend_from_slice(&h);
    }
    pad_to(&mut out, 8);
    let shoff = out.len() as u64;
    out[40..48].copy_from_slice(&shoff.to_le_bytes());
    out.extend_from_slice(&headers);
    Some(out)
}

/// Pads `out` with zeros to a multiple of `align`.
fn pad_to(out: &mut Vec<u8>, align: u64) {
    let align = usize::try_from(align).unwrap_or(1).max(1);
    let len = out.len().div_ceil(align) * align;
    out.resize(len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_image::{ImageBuilder, SHT_PROGBITS};

    /// The demo module with two debug sections and a relocation section for the first.
    fn with_debug() -> (Vec<u8>, ImageBuilder) {
        let mut b = ImageBuilder::module();
        let info = b.section(".debug_info", SHT_PROGBITS, 0, vec![0xd1; 3000]);
        b.section(".debug_str", SHT_PROGBITS, 0x30, vec![0xd5; 500]);
        let rela = b.section(".rela.debug_info", SHT_RELA, 0x40, vec![0xee; 48]);
        b.section(".comment", SHT_PROGBITS, 0x30, b"GCC\0".to_vec());
        let (mut image, layout) = b.build_with_layout();
        let at = layout.header(usize::from(rela)) + 44;
        image[at..at + 4].copy_from_slice(&u32::from(info).to_le_bytes());
        (image, b)
    }

    #[test]
    fn debug_sections_are_emptied_and_the_rest_is_kept_byte_for_byte() {
        let (image, _) = with_debug();
        let stripped = without_debug_info(&image).expect("it has debug sections");
        assert!(stripped.len() + 3500 < image.len(), "{}", stripped.len());
        let before = Elf::parse(&image).unwrap();
        let after = Elf::parse(&stripped).expect("still a valid ELF file");
        assert_eq!(before.sections().len(), after.sections().len());
        for (b, a) in before.sections().iter().zip(after.sections()) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.flags, b.flags);
            assert_eq!(a.link, b.link);
            let debug = a.name.starts_with(b".debug") || a.name.starts_with(b".rela.debug");
            if debug {
                assert!(a.data.is_empty(), "{}", a.display_name());
            } else {
                assert_eq!(a.data, b.data, "{}", a.display_name());
            }
        }
        // What a module tool reads is the same.
        let (b, a) = (
            crate::parse_module(&image).unwrap(),
            crate::parse_module(&stripped).unwrap(),
        );
        assert_eq!(a.name, b.name);
        assert_eq!(a.modinfo, b.modinfo);
        assert_eq!(a.undefined_symbols, b.undefined_symbols);
        // Nothing left to strip.
        assert_eq!(without_debug_info(&stripped), None);
    }

    #[test]
    fn a_signed_module_or_one_without_debug_info_is_left_alone() {
        let (mut image, _) = with_debug();
        image.extend_from_slice(b"signature bytes");
        image.extend_from_slice(SIGNATURE_MAGIC);
        assert_eq!(without_debug_info(&image), None);
        assert_eq!(without_debug_info(&ImageBuilder::module().build()), None);
    }

    #[test]
    fn bad_input_is_left_alone() {
        let (image, _) = with_debug();
        assert_eq!(without_debug_info(b""), None);
        assert_eq!(without_debug_info(b"\x7fELF"), None);
        for cut in [10, 64, image.len() / 2, image.len() - 1] {
            assert_eq!(without_debug_info(&image[..cut]), None, "cut at {cut}");
        }
    }
}
