//! The `.modinfo` strings of a module image, read as leniently (and as strictly) as libkmod's
//! own ELF reader: 32- and 64-bit, either byte order; only the section header table, the
//! section name table and the first section called `.modinfo` need to be sound. Failures are
//! the errno values libkmod returns, so that messages match.

/// `ENOENT`: no `.modinfo` section.
pub const ENOENT: i32 = 2;
/// `ENOEXEC`: not an ELF file.
pub const ENOEXEC: i32 = 8;
/// `EINVAL`: an ELF file libkmod cannot read.
pub const EINVAL: i32 = 22;

const EI_NIDENT: usize = 16;

struct Elf<'a> {
    image: &'a [u8],
    is64: bool,
    msb: bool,
    shoff: u64,
    shnum: u16,
    /// Offset and size of the section name table.
    strtab: (u64, u64),
}

impl<'a> Elf<'a> {
    fn uint(&self, at: u64, size: usize) -> Option<u64> {
        let at = usize::try_from(at).ok()?;
        let bytes = self.image.get(at..at.checked_add(size)?)?;
        Some(if self.msb {
            bytes.iter().fold(0, |v, &b| (v << 8) | u64::from(b))
        } else {
            bytes.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b))
        })
    }

    /// `(sh_offset, sh_size, sh_name)` of section `index`, when the section lies inside the
    /// image.
    fn section(&self, index: u16) -> Option<(u64, u64, u32)> {
        if index == 0 || index >= self.shnum {
            return None;
        }
        let entsize: u64 = if self.is64 { 64 } else { 40 };
        let header = self.shoff.checked_add(u64::from(index) * entsize)?;
        let (name, offset, size) = if self.is64 {
            (
                self.uint(header, 4)?,
                self.uint(header + 24, 8)?,
                self.uint(header + 32, 8)?,
            )
        } else {
            (
                self.uint(header, 4)?,
                self.uint(header + 16, 4)?,
                self.uint(header + 20, 4)?,
            )
        };
        let end = offset.checked_add(size)?;
        if end > self.image.len() as u64 {
            return None;
        }
        Some((offset, size, u32::try_from(name).ok()?))
    }

    fn parse(image: &'a [u8]) -> Result<Elf<'a>, i32> {
        if image.len() <= EI_NIDENT || !image.starts_with(b"\x7fELF") {
            return Err(ENOEXEC);
        }
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
        let mut elf = Elf {
            image,
            is64,
            msb,
            shoff: 0,
            shnum: 0,
            strtab: (0, 0),
        };
        let (shoff, rest) = if is64 {
            (elf.uint(40, 8), 58)
        } else {
            (elf.uint(32, 4), 46)
        };
        let field = |at: u64| elf.uint(at, 2).and_then(|v| u16::try_from(v).ok());
        let (Some(shoff), Some(entsize), Some(shnum), Some(shstrndx)) =
            (shoff, field(rest), field(rest + 2), field(rest + 4))
        else {
            return Err(EINVAL);
        };
        let expected = if is64 { 64 } else { 40 };
        if entsize != expected {
            return Err(EINVAL);
        }
        let table_end = u64::from(entsize) * u64::from(shnum);
        match table_end.checked_add(shoff) {
            Some(end) if end <= image.len() as u64 => {}
            _ => return Err(EINVAL),
        }
        elf.shoff = shoff;
        elf.shnum = shnum;
        // libkmod asserts (and aborts) on a section name table index of 0 or out of range;
        // here that is an invalid file like any other.
        let (offset, size, _) = elf.section(shstrndx).ok_or(EINVAL)?;
        let last = offset
            .checked_add(size)
            .and_then(|end| end.checked_sub(1))
            .filter(|_| size > 0)
            .ok_or(EINVAL)?;
        if elf.uint(last, 1) != Some(0) {
            return Err(EINVAL);
        }
        elf.strtab = (offset, size);
        Ok(elf)
    }

    /// The bytes of the first section called `name`.
    fn section_named(&self, name: &[u8]) -> Option<&'a [u8]> {
        let (names_at, names_size) = self.strtab;
        let names = self
            .image
            .get(usize::try_from(names_at).ok()?..usize::try_from(names_at + names_size).ok()?)?;
        (1..self.shnum).find_map(|index| {
            let (offset, size, name_at) = self.section(index)?;
            let tail = names.get(usize::try_from(name_at).ok()?..)?;
            let len = tail.iter().position(|&b| b == 0)?;
            if tail.get(..len)? != name {
                return None;
            }
            let start = usize::try_from(offset).ok()?;
            self.image.get(start..start + usize::try_from(size).ok()?)
        })
    }
}

/// The NUL-separated strings of the `.modinfo` section of an (uncompressed) module image, as
/// libkmod's `kmod_elf_get_strings()` splits them: leading NULs skipped, runs of NULs
/// separating strings, a last string without its NUL kept. An errno value when the image is
/// not ELF (`ENOEXEC`), not readable ELF (`EINVAL`) or has no `.modinfo` (`ENOENT`).
pub fn modinfo_strings(image: &[u8]) -> Result<Vec<&[u8]>, i32> {
    let elf = Elf::parse(image)?;
    let section = elf.section_named(b".modinfo").ok_or(ENOENT)?;
    let start = section
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(section.len())
        .min(section.len().saturating_sub(1));
    let strings = section.get(start..).unwrap_or_default();
    // libkmod gives nothing for a section that is a single byte once its padding is skipped.
    if strings.len() <= 1 {
        return Ok(Vec::new());
    }
    Ok(strings
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 LSB image: sections NULL, .shstrtab, .modinfo.
    fn image(modinfo: &[u8]) -> Vec<u8> {
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
    fn strings_as_libkmod_splits_them() {
        let odd = image(b"\0\0a=1\0\0b=2\0c");
        assert_eq!(modinfo_strings(&odd).unwrap(), [&b"a=1"[..], b"b=2", b"c"]);
        assert!(modinfo_strings(&image(b"")).unwrap().is_empty());
        assert!(modinfo_strings(&image(b"\0\0\0x")).unwrap().is_empty());
        let padded = image(b"\0\0xy");
        assert_eq!(modinfo_strings(&padded).unwrap(), [&b"xy"[..]]);
    }

    #[test]
    fn errors_are_libkmod_errno_values() {
        assert_eq!(modinfo_strings(b"short"), Err(ENOEXEC));
        assert_eq!(modinfo_strings(&[0u8; 100]), Err(ENOEXEC));
        let good = image(b"a=b\0");
        assert_eq!(modinfo_strings(&good[..64]), Err(EINVAL));
        assert_eq!(modinfo_strings(&good[..good.len() - 1]), Err(EINVAL));
        let mut no_strtab = good.clone();
        no_strtab[62] = 0;
        assert_eq!(modinfo_strings(&no_strtab), Err(EINVAL));
        // ".modinfo" renamed ".modinfX" in the section name table.
        let mut renamed = good;
        renamed[64 + 18] = b'X';
        assert_eq!(modinfo_strings(&renamed), Err(ENOENT));
    }

    #[test]
    fn any_prefix_or_flip_never_panics() {
        let good = image(b"license=GPL\0alias=x\0");
        for len in 0..good.len() {
            let _ = modinfo_strings(&good[..len]);
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            let _ = modinfo_strings(&bad);
        }
    }
}
