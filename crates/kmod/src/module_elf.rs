//! What libkmod reads from and changes in a module's ELF image (`libkmod/libkmod-elf.c`), for
//! 64-bit little-endian modules: stripping `__versions` and `vermagic=` for a forced load, the
//! symbol versions a module needs (`__versions`) and the symbols it exports with their CRCs
//! (`__crc_*` symbols, or the names in `__ksymtab_strings`).

/// The section headers of a 64-bit little-endian ELF image: (name offset, header offset,
/// section offset, size) for each, and the index of the section name table.
pub(crate) struct Sections {
    headers: Vec<(u32, usize, usize, usize)>,
    shstrndx: usize,
}

// Offsets come from the file: every sum is checked (an offset near `usize::MAX` is `None`, not an
// overflow).

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

pub(crate) fn sections(image: &[u8]) -> Option<Sections> {
    if !image.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let shoff = usize::try_from(u64_at(image, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(image, 0x3a)?);
    let shnum = usize::from(u16_at(image, 0x3c)?);
    let shstrndx = usize::from(u16_at(image, 0x3e)?);
    if shentsize < 64 {
        return None;
    }
    let mut headers = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = u32_at(image, h)?;
        let off = usize::try_from(u64_at(image, h.checked_add(24)?)?).ok()?;
        let size = usize::try_from(u64_at(image, h.checked_add(32)?)?).ok()?;
        headers.push((name, h, off, size));
    }
    Some(Sections { headers, shstrndx })
}

fn find_section(image: &[u8], name: &str) -> Option<(usize, usize, usize)> {
    let s = sections(image)?;
    let &(_, _, stroff, strsize) = s.headers.get(s.shstrndx)?;
    let strtab = image.get(stroff..stroff.checked_add(strsize)?)?;
    s.headers.iter().find_map(|&(n, h, off, size)| {
        let rest = strtab.get(n as usize..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        (&rest[..end] == name.as_bytes()).then_some((h, off, size))
    })
}

/// `kmod_elf_strip_section`: clears `SHF_ALLOC` of the named section, so that the kernel does not
/// load it. Returns an errno when the image has no such section.
pub fn strip_section(image: &mut [u8], name: &str) -> Result<(), i32> {
    let (h, _, _) = find_section(image, name).ok_or(libc::ENOENT)?;
    let flags = u64_at(image, h + 8).ok_or(libc::EINVAL)?;
    let cleared = flags & !2u64; // SHF_ALLOC
    image[h + 8..h + 16].copy_from_slice(&cleared.to_le_bytes());
    Ok(())
}

/// `kmod_elf_strip_vermagic`: blanks the `vermagic=` string of `.modinfo` with NULs.
pub fn strip_vermagic(image: &mut [u8]) -> Result<(), i32> {
    let (_, off, size) = find_section(image, ".modinfo").ok_or(libc::ENOENT)?;
    let end = off.checked_add(size).ok_or(libc::EINVAL)?;
    let info = image.get_mut(off..end).ok_or(libc::EINVAL)?;
    let mut i = 0;
    while i < info.len() {
        if info[i] == 0 {
            i += 1;
            continue;
        }
        let len = info[i..]
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(info.len() - i);
        if info[i..].starts_with(b"vermagic=") {
            info[i..i + len].fill(0);
            return Ok(());
        }
        i += len;
    }
    Err(libc::ENOENT)
}

/// One symbol with its version CRC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolVersion {
    /// The CRC (0 when unknown).
    pub crc: u64,
    /// The symbol name.
    pub symbol: String,
}

fn section_bytes<'a>(image: &'a [u8], name: &str) -> Result<&'a [u8], i32> {
    let (_, off, size) = find_section(image, name).ok_or(libc::ENOENT)?;
    image
        .get(off..off.checked_add(size).ok_or(libc::EINVAL)?)
        .ok_or(libc::EINVAL)
}

fn cstr_at(bytes: &[u8], at: usize) -> String {
    let rest = bytes.get(at..).unwrap_or(&[]);
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

/// `kmod_elf_get_modversions`: the `__versions` entries (64 bytes: a CRC and a name; a leading
/// dot is dropped). An errno when there is no such section or its size is not a multiple of 64.
pub fn modversions(image: &[u8]) -> Result<Vec<SymbolVersion>, i32> {
    if !image.starts_with(b"\x7fELF\x02\x01") {
        return Err(libc::EINVAL);
    }
    let sec = section_bytes(image, "__versions")?;
    if sec.len() % 64 != 0 {
        return Err(libc::EINVAL);
    }
    Ok(sec
        .chunks(64)
        .map(|e| {
            let crc = u64::from_le_bytes(e[..8].try_into().unwrap_or([0; 8]));
            let mut symbol = cstr_at(&e[8..], 0);
            if symbol.starts_with('.') {
                symbol.remove(0);
            }
            SymbolVersion { crc, symbol }
        })
        .collect())
}

/// `kmod_elf_get_symbols`: the exported symbols, from the `__crc_NAME` symbols of `.symtab`
/// (their CRC read from the section they point into), or else the names in
/// `__ksymtab_strings` with CRC 0.
pub fn exports(image: &[u8]) -> Result<Vec<SymbolVersion>, i32> {
    if !image.starts_with(b"\x7fELF\x02\x01") {
        return Err(libc::EINVAL);
    }
    if let Some(v) = exports_from_crcs(image) {
        return Ok(v);
    }
    let strings = section_bytes(image, "__ksymtab_strings")?;
    Ok(strings
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| SymbolVersion {
            crc: 0,
            symbol: String::from_utf8_lossy(s).into_owned(),
        })
        .collect())
}

fn exports_from_crcs(image: &[u8]) -> Option<Vec<SymbolVersion>> {
    let strtab = section_bytes(image, ".strtab").ok()?;
    let symtab = section_bytes(image, ".symtab").ok()?;
    if symtab.len() % 24 != 0 {
        return None;
    }
    let secs = sections(image)?;
    let mut out = Vec::new();
    for sym in symtab.chunks(24).skip(1) {
        let name_off = u32::from_le_bytes(sym[0..4].try_into().ok()?) as usize;
        if name_off >= strtab.len() {
            return None;
        }
        let name = cstr_at(strtab, name_off);
        let Some(name) = name.strip_prefix("__crc_") else {
            continue;
        };
        let shndx = u16::from_le_bytes(sym[6..8].try_into().ok()?);
        let value = u64::from_le_bytes(sym[8..16].try_into().ok()?);
        // SHN_UNDEF and SHN_ABS: the value is the CRC itself.
        let crc = if shndx == 0 || shndx == 0xfff1 {
            value
        } else {
            match secs.headers.get(usize::from(shndx)) {
                Some(&(_, _, off, size)) if size >= 4 && value <= (size - 4) as u64 => off
                    .checked_add(value as usize)
                    .and_then(|at| u32_at(image, at))
                    .map_or(u64::MAX, u64::from),
                _ => u64::MAX,
            }
        };
        out.push(SymbolVersion {
            crc,
            symbol: name.to_string(),
        });
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image with sections: null, .modinfo, __versions, .shstrtab.
    fn image() -> Vec<u8> {
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
            sh(10, 2, 0, 0),
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

    /// Found by the `module_elf` fuzz target: a section header table offset near the end of the
    /// address space overflowed `offset + 4` while reading the first header.
    #[test]
    fn section_header_offset_near_usize_max() {
        for shoff in [u64::MAX, u64::MAX - 3, u64::MAX - 24] {
            let mut img = vec![0u8; 64];
            img[..6].copy_from_slice(b"\x7fELF\x02\x01");
            img[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
            img[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
            img[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
            img[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
            assert!(sections(&img).is_none());
            assert!(modversions(&img).is_err());
            assert!(exports(&img).is_err());
            assert!(strip_section(&mut img, "__versions").is_err());
            assert!(strip_vermagic(&mut img).is_err());
        }
        // The fuzzer's input, minimized.
        let found = b"\x7fELF\x02\x01\0\0\xff\xff\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\
                      F\xff\0\x01ble\x04\x04\0\0\0F\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\
                      \0\0\0F\xff\0\x01ble\x04\x04P\0\0F";
        assert_eq!(found.len(), 64);
        assert!(exports(found).is_err());
    }

    /// An ELF64 image with the named sections (after the null one) and `.shstrtab` last; a
    /// section given with `Some(offset)` claims that offset instead of where its data is.
    fn elf(sections: &[(&str, Option<u64>, Vec<u8>)]) -> Vec<u8> {
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
        let good = elf(&[
            ("bogus", None, vec![1, 0, 0, 0, 2, 0, 0, 0]),
            (".symtab", None, symtab.clone()),
            (".strtab", None, strtab.clone()),
        ]);
        let found = exports(&good).unwrap();
        assert_eq!((found[0].symbol.as_str(), found[0].crc), ("foo", 2));
        for claimed in [u64::MAX, u64::MAX - 4, (usize::MAX - 2) as u64] {
            let bad = elf(&[
                ("bogus", Some(claimed), vec![0; 8]),
                (".symtab", None, symtab.clone()),
                (".strtab", None, strtab.clone()),
            ]);
            let found = exports(&bad).unwrap();
            assert_eq!((found[0].symbol.as_str(), found[0].crc), ("foo", u64::MAX));
        }
    }

    #[test]
    fn strips_versions_and_vermagic() {
        let mut img = image();
        strip_section(&mut img, "__versions").unwrap();
        let (h, _, _) = find_section(&img, "__versions").unwrap();
        assert_eq!(u64_at(&img, h + 8), Some(0));
        strip_vermagic(&mut img).unwrap();
        let (_, off, size) = find_section(&img, ".modinfo").unwrap();
        assert_eq!(
            &img[off..off + size],
            b"license=GPL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0name=x\0"
        );
        assert_eq!(strip_section(&mut img, "nope"), Err(libc::ENOENT));
        assert_eq!(strip_vermagic(&mut img), Err(libc::ENOENT));
    }
}
