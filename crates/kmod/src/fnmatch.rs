//! Shell wildcard matching with the semantics of glibc's `fnmatch(pattern, string, 0)`, which
//! kmod uses for modprobe.d aliases, softdeps, install/remove commands and module aliases:
//! `*` matches any run of bytes (slashes and leading dots included), `?` any one byte, `[...]`
//! a set (`!` or `^` negates, `a-z` ranges, `[:class:]` classes, `]` first is literal), and a
//! backslash quotes the next byte. An unterminated `[` matches itself.

/// Whether `string` matches the shell wildcard `pattern` (the module index's matcher, on text).
pub fn fnmatch(pattern: &str, string: &str) -> bool {
    kmodlab_modindex::fnmatch::fnmatch(pattern.as_bytes(), string.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn stars_and_questions() {
        assert!(fnmatch(
            "pci:v00008086d*sv*",
            "pci:v00008086d0000100Esv00001234"
        ));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a*b*c", "aXXbYYc"));
        assert!(!fnmatch("a*b*c", "aXXbYY"));
        assert!(fnmatch("snd_?ci", "snd_pci"));
        assert!(!fnmatch("snd_?ci", "snd_ci"));
        assert!(fnmatch("*/x", "a/b/x"));
        assert!(fnmatch(".*", ".hidden"));
        assert!(fnmatch("exact", "exact"));
        assert!(!fnmatch("exact", "exactly"));
    }

    #[test]
    fn brackets() {
        assert!(fnmatch("usb:v[0-9]*", "usb:v1"));
        assert!(!fnmatch("usb:v[!0-9]*", "usb:v1"));
        assert!(fnmatch("usb:v[^0-9]*", "usb:vA"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("[[:digit:]]x", "7x"));
        assert!(!fnmatch("[[:digit:]]x", "ax"));
        assert!(fnmatch("a[b", "a[b"));
        assert!(fnmatch("dmi*:pn[Vv]iewpad*", "dmi:bvnX:pnViewpad10"));
    }

    #[test]
    fn backslash_quotes() {
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("a\\", "a\\"));
    }
}
