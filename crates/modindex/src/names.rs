//! Module names, module file names and aliases, normalised as kmod 30 normalises them.

/// kmod's `PATH_MAX - 1`: the longest name or alias its fixed buffers hold.
const NAME_MAX_LEN: usize = 4095;

/// The file name endings kmod 30 built with zstd, xz and zlib (`+ZSTD +XZ +ZLIB`) takes for
/// modules: `.ko`, `.ko.gz`, `.ko.xz` and `.ko.zst`, what every kmodlab tool reads. (Debian
/// builds kmod without zlib: its tools take `.ko.gz` files for unknown names.)
pub const MODULE_EXTENSIONS: [&[u8]; 4] = [b".ko", b".ko.gz", b".ko.xz", b".ko.zst"];

/// The module name of a file name (or of anything up to its first `.`): `-` becomes `_`
/// (kmod's `modname_normalize`).
///
/// ```
/// use kmodlab_modindex::names::modname_normalize;
/// assert_eq!(modname_normalize(b"snd-hda-intel.ko.xz"), b"snd_hda_intel");
/// ```
pub fn modname_normalize(name: &[u8]) -> Vec<u8> {
    name.iter()
        .take(NAME_MAX_LEN)
        .take_while(|&&b| b != 0 && b != b'.')
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect()
}

/// The part of `path` after its last `/`.
pub fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// The module name of a module path (kmod's `path_to_modname`); `None` when the path ends
/// with `/`.
///
/// ```
/// use kmodlab_modindex::names::path_to_modname;
/// assert_eq!(path_to_modname(b"kernel/fs/fat/vfat.ko"), Some(b"vfat".to_vec()));
/// ```
pub fn path_to_modname(path: &[u8]) -> Option<Vec<u8>> {
    let base = basename(path);
    (!base.is_empty()).then(|| modname_normalize(base))
}

/// Whether a file name is a module file name: longer than and ending with one of
/// [`MODULE_EXTENSIONS`].
pub fn has_module_extension(name: &[u8]) -> bool {
    MODULE_EXTENSIONS
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// The alias as stored in `modules.alias.bin` (kmod's `alias_normalize`): `-` becomes `_`
/// except inside `[...]`; `None` when a `]` has no `[` or a `[` is not closed.
///
/// ```
/// use kmodlab_modindex::names::alias_normalize;
/// assert_eq!(alias_normalize(b"usb:v*p[0-9]-x").unwrap(), b"usb:v*p[0-9]_x");
/// assert_eq!(alias_normalize(b"a[b"), None);
/// ```
pub fn alias_normalize(alias: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(alias.len());
    let mut i = 0;
    while i < NAME_MAX_LEN {
        match alias.get(i).copied().unwrap_or(0) {
            0 => break,
            b'-' => out.push(b'_'),
            b']' => return None,
            b'[' => {
                while let Some(&c) = alias.get(i).filter(|&&c| c != b']' && c != 0) {
                    out.push(c);
                    i += 1;
                }
                if alias.get(i) != Some(&b']') {
                    return None;
                }
                out.push(b']');
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert!(has_module_extension(b"a.ko"));
        assert!(has_module_extension(b"a.ko.xz"));
        assert!(has_module_extension(b"a.ko.zst"));
        assert!(has_module_extension(b"a.ko.gz"));
        assert!(!has_module_extension(b".ko"));
        assert!(has_module_extension(b"x.ko.xz.ko"));
        assert!(!has_module_extension(b"a.o"));
    }

    #[test]
    fn normalising() {
        assert_eq!(modname_normalize(b"a-b.c-d"), b"a_b");
        assert_eq!(modname_normalize(b"plain"), b"plain");
        assert_eq!(path_to_modname(b"/x/y/"), None);
        assert_eq!(path_to_modname(b"y-z.ko\n"), Some(b"y_z".to_vec()));
        assert_eq!(path_to_modname(b"noext\n"), Some(b"noext\n".to_vec()));
        assert_eq!(alias_normalize(b"a-b[c-d]e-f").unwrap(), b"a_b[c-d]e_f");
        assert_eq!(alias_normalize(b"x]"), None);
        assert_eq!(alias_normalize(b"[[]-"), Some(b"[[]_".to_vec()));
        assert_eq!(alias_normalize(&[b'a'; 5000]).unwrap().len(), 4095);
    }
}
