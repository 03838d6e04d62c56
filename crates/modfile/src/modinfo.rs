//! The `.modinfo` section: NUL-separated `key=value` strings.

/// The `key=value` entries of a module's `.modinfo` section, in section order.
///
/// Keys may repeat (`alias`, `parm`, `parmtype`, `firmware`, ...); [`Modinfo::get`] returns the
/// first value as the kernel's `get_modinfo()` does, [`Modinfo::get_all`] every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modinfo {
    entries: Vec<(String, String)>,
}

impl Modinfo {
    /// Every `(key, value)` pair in section order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The first value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value for `key`, in section order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `vermagic=` string the kernel compares with its own before loading, e.g.
    /// `6.12.95+deb12-amd64 SMP preempt mod_unload modversions `.
    pub fn vermagic(&self) -> Option<&str> {
        self.get("vermagic")
    }

    /// The `name=` entry that `modpost` writes for every module built since Linux 5.x.
    pub fn name(&self) -> Option<&str> {
        self.get("name")
    }
}

/// Reads the contents of a `.modinfo` section.
///
/// The section is a run of NUL-terminated `key=value` strings, padded with extra NULs for
/// alignment; empty strings are skipped and a last string without its NUL is kept. A string
/// without `=` becomes a key with an empty value (the kernel never matches it; `kmod` shows it
/// as a key without value). Bytes that are not UTF-8 are replaced with U+FFFD.
pub fn modinfo_from_section(section: &[u8]) -> Modinfo {
    let entries = section
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| match s.iter().position(|&b| b == b'=') {
            Some(eq) => (lossy(s.get(..eq)), lossy(s.get(eq + 1..))),
            None => (lossy(Some(s)), String::new()),
        })
        .collect();
    Modinfo { entries }
}

fn lossy(bytes: Option<&[u8]>) -> String {
    String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LP: &[u8] = b"license=GPL\0description=Generic parallel printer driver\0\
        alias=char-major-6-*\0parmtype=reset:bool\0parmtype=parport:array of charp\0\
        depends=parport\0intree=Y\0name=lp\0retpoline=Y\0\0\0\
        vermagic=6.12.95+deb12-amd64 SMP preempt mod_unload modversions \0";

    #[test]
    fn reads_entries_in_order() {
        let info = modinfo_from_section(LP);
        assert_eq!(info.entries().len(), 10);
        assert_eq!(
            info.entries()[0],
            ("license".to_string(), "GPL".to_string())
        );
        assert_eq!(info.name(), Some("lp"));
        assert_eq!(
            info.vermagic(),
            Some("6.12.95+deb12-amd64 SMP preempt mod_unload modversions ")
        );
        assert_eq!(info.get("depends"), Some("parport"));
        assert_eq!(info.get("parmtype"), Some("reset:bool"));
        assert_eq!(
            info.get_all("parmtype").collect::<Vec<_>>(),
            ["reset:bool", "parport:array of charp"]
        );
        assert_eq!(info.get("firmware"), None);
        assert_eq!(info.get_all("firmware").count(), 0);
    }

    #[test]
    fn odd_strings() {
        let info = modinfo_from_section(b"\0\0noequals\0empty=\0a=b=c\0=v\0last=unterminated");
        let pairs: Vec<(&str, &str)> = info
            .entries()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("noequals", ""),
                ("empty", ""),
                ("a", "b=c"),
                ("", "v"),
                ("last", "unterminated")
            ]
        );
        assert_eq!(modinfo_from_section(b""), Modinfo::default());
        assert_eq!(modinfo_from_section(b"\0\0\0").entries().len(), 0);
        let latin1 = modinfo_from_section(b"author=J\xf6rg\0");
        assert_eq!(latin1.get("author"), Some("J\u{fffd}rg"));
    }
}
