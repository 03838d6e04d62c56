//! Reading depmod's text files back: `modules.dep`, `modules.alias` / `modules.symbols`,
//! `modules.softdep`, `modules.devname`, and the one-path-per-line `modules.order` and
//! `modules.builtin`. Lines are split on spaces and tabs as libkmod splits them.

/// One `modules.dep` line: a module's path and the paths of everything it needs, the modules
/// to load first listed last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepLine<'a> {
    /// The module's path, relative to the module directory unless it is outside it.
    pub path: &'a [u8],
    /// Its dependencies, direct and indirect.
    pub dependencies: Vec<&'a [u8]>,
}

fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t' || b == b'\r')
        .filter(|w| !w.is_empty())
}

/// The lines of a text file, without their newlines (a last line without one included).
pub fn lines(contents: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trimmed = contents.strip_suffix(b"\n").unwrap_or(contents);
    trimmed
        .split(|&b| b == b'\n')
        .filter(move |_| !contents.is_empty())
}

/// Parses one `modules.dep` line (`PATH: DEP DEP...`); `None` without the colon.
pub fn parse_dep_line(line: &[u8]) -> Option<DepLine<'_>> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some(DepLine {
        path: &line[..colon],
        dependencies: words(&line[colon + 1..]).collect(),
    })
}

/// Parses `modules.dep` (or the value of a `modules.dep.bin` entry), skipping lines without a
/// colon.
pub fn parse_modules_dep(contents: &[u8]) -> Vec<DepLine<'_>> {
    lines(contents).filter_map(parse_dep_line).collect()
}

/// Parses `modules.alias` or `modules.symbols`: the `(pattern, module)` of each
/// `alias PATTERN MODULE` line; comments and other lines are skipped.
pub fn parse_aliases(contents: &[u8]) -> Vec<(&[u8], &[u8])> {
    lines(contents)
        .filter_map(|line| {
            let mut w = words(line);
            match (w.next(), w.next(), w.next()) {
                (Some(b"alias"), Some(pattern), Some(module)) => Some((pattern, module)),
                _ => None,
            }
        })
        .collect()
}

/// Parses `modules.softdep`: `(module, the rest of the line)` of each `softdep MODULE ...`
/// line, the rest being the module's `softdep` value (`pre: a b post: c`).
pub fn parse_softdeps(contents: &[u8]) -> Vec<(&[u8], &[u8])> {
    lines(contents)
        .filter_map(|line| {
            let rest = line.strip_prefix(b"softdep ")?;
            let space = rest.iter().position(|&b| b == b' ')?;
            Some((&rest[..space], &rest[space + 1..]))
        })
        .collect()
}

/// One `modules.devname` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Devname<'a> {
    /// The module.
    pub module: &'a [u8],
    /// The device node name under `/dev`.
    pub devname: &'a [u8],
    /// `b'c'` for a character device, `b'b'` for a block device.
    pub kind: u8,
    /// The device major number.
    pub major: u32,
    /// The device minor number.
    pub minor: u32,
}

/// Parses `modules.devname` (`MODULE DEVNAME cMAJOR:MINOR`), skipping comments and lines that
/// do not parse.
pub fn parse_devnames(contents: &[u8]) -> Vec<Devname<'_>> {
    lines(contents)
        .filter_map(|line| {
            let mut w = words(line);
            let (module, devname, node) = (w.next()?, w.next()?, w.next()?);
            if module.starts_with(b"#") {
                return None;
            }
            let (&kind, numbers) = node.split_first()?;
            if kind != b'c' && kind != b'b' {
                return None;
            }
            let numbers = std::str::from_utf8(numbers).ok()?;
            let (major, minor) = numbers.split_once(':')?;
            Some(Devname {
                module,
                devname,
                kind,
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_depmod_writes() {
        let dep = b"kernel/a.ko.xz: kernel/b.ko.xz kernel/c.ko.xz\nkernel/c.ko.xz:\n";
        let lines = parse_modules_dep(dep);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].path, b"kernel/a.ko.xz");
        assert_eq!(
            lines[0].dependencies,
            [&b"kernel/b.ko.xz"[..], b"kernel/c.ko.xz"]
        );
        assert!(lines[1].dependencies.is_empty());

        let alias = b"# Aliases extracted from modules themselves.\nalias pci:v*d* e1000e\n";
        assert_eq!(parse_aliases(alias), [(&b"pci:v*d*"[..], &b"e1000e"[..])]);

        let softdep = b"# Soft dependencies.\nsoftdep ext4 pre: crc32c\n";
        assert_eq!(
            parse_softdeps(softdep),
            [(&b"ext4"[..], &b"pre: crc32c"[..])]
        );

        let devname = b"# Device nodes\nfuse fuse c10:229\nloop loop-control c10:237\n";
        let d = parse_devnames(devname);
        assert_eq!(d.len(), 2);
        assert_eq!((d[1].kind, d[1].major, d[1].minor), (b'c', 10, 237));

        assert_eq!(lines_of_order(), 2);
    }

    fn lines_of_order() -> usize {
        lines(b"kernel/a.ko\nkernel/b.ko\n").count()
    }

    #[test]
    fn empty_file_has_no_lines() {
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").collect::<Vec<_>>(), [&b""[..]]);
        assert_eq!(lines(b"a\nb").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
    }
}
