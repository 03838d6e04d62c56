//! depmod's configuration (`depmod.d(5)`): `search`, `override`, `external` and `exclude`
//! lines, parsed as kmod 30 parses them.
//!
//! kmod keeps each list with the newest entry first (it prepends), and that order matters: a
//! later `search` entry has a lower index and so a lower priority. The lists here are in kmod's
//! order.

use crate::{Diagnostic, Level};

/// One entry of the `search` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// `built-in`: the directories no other entry names (`kernel/`, ...).
    BuiltIn,
    /// `external`: the directories given by `external` lines.
    External,
    /// A subdirectory of the module directory, such as `updates`.
    Path(Vec<u8>),
}

/// What the `depmod.d` files say, lists newest entry first (kmod's order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepmodConfig {
    /// The `search` entries.
    pub searches: Vec<Search>,
    /// The `override` entries that apply to this kernel, each as `SUBDIR/MODNAME` (to be
    /// compared with a module path relative to the module directory, extension removed).
    pub overrides: Vec<Vec<u8>>,
    /// The `external` directories that apply to this kernel.
    pub externals: Vec<Vec<u8>>,
    /// The `exclude` names: directory (or file) names skipped during the search.
    pub excludes: Vec<Vec<u8>>,
}

/// Whether a kernel version pattern of an `override` or `external` line matches `kversion`:
/// `*` matches all, anything else is a POSIX extended regular expression searched for in the
/// version (an invalid one matches nothing).
pub fn kernel_matches(pattern: &[u8], kversion: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let Ok(pattern) = std::str::from_utf8(pattern) else {
        return false;
    };
    match regex_lite::Regex::new(pattern) {
        Ok(re) => re.is_match(&String::from_utf8_lossy(kversion)),
        Err(_) => false,
    }
}

/// Splits a file into logical lines as kmod's `freadline_wrapped` does: `\` before a newline
/// joins two lines; `\` before anything else is dropped (and at the very end becomes a 0xff
/// byte). Yields `(line, number of its last physical line)`.
pub fn logical_lines(contents: &[u8]) -> Vec<(Vec<u8>, u32)> {
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut number = 0u32;
    let mut i = 0;
    loop {
        let Some(&c) = contents.get(i) else {
            if !line.is_empty() {
                lines.push((line, number + 1));
            }
            return lines;
        };
        i += 1;
        match c {
            b'\n' => {
                number += 1;
                lines.push((std::mem::take(&mut line), number));
            }
            b'\\' => match contents.get(i) {
                Some(b'\n') => {
                    number += 1;
                    i += 1;
                }
                Some(&next) => {
                    line.push(next);
                    i += 1;
                }
                None => line.push(0xff),
            },
            c => line.push(c),
        }
    }
}

impl DepmodConfig {
    /// Reads one configuration file's `contents`; `filename` is for messages, `kversion` the
    /// kernel version that `override` and `external` lines are matched against. Messages
    /// (kmod's wording, each ending with a newline) are appended to `diagnostics`.
    pub fn parse(
        &mut self,
        filename: &str,
        contents: &[u8],
        kversion: &[u8],
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        for (mut line, number) in logical_lines(contents) {
            // kmod's lines are C strings: a NUL byte ends them.
            if let Some(nul) = line.iter().position(|&c| c == 0) {
                line.truncate(nul);
            }
            if line.first().is_none_or(|&c| c == b'#') {
                continue;
            }
            let mut words = line
                .split(|&c| c == b' ' || c == b'\t')
                .filter(|w| !w.is_empty());
            let Some(cmd) = words.next() else { continue };
            let mut bad = false;
            match cmd {
                b"search" => {
                    for word in words {
                        let entry = match word {
                            b"built-in" => Search::BuiltIn,
                            b"external" => Search::External,
                            path => Search::Path(path.to_vec()),
                        };
                        self.searches.insert(0, entry);
                    }
                }
                b"override" => match (words.next(), words.next(), words.next()) {
                    (Some(modname), Some(version), Some(subdir)) => {
                        if kernel_matches(version, kversion) {
                            let mut path = subdir.to_vec();
                            path.push(b'/');
                            path.extend_from_slice(modname);
                            self.overrides.insert(0, path);
                        } else {
                            diagnostics.push(Diagnostic::new(
                                Level::Info,
                                format!(
                                    "{filename}:{number}: override kernel did not match {}\n",
                                    String::from_utf8_lossy(version)
                                ),
                            ));
                        }
                    }
                    _ => bad = true,
                },
                b"external" => match (words.next(), words.next()) {
                    (Some(version), Some(dir)) => {
                        if kernel_matches(version, kversion) {
                            self.externals.insert(0, dir.to_vec());
                        } else {
                            diagnostics.push(Diagnostic::new(
                                Level::Info,
                                format!(
                                    "{filename}:{number}: external directory did not match {}\n",
                                    String::from_utf8_lossy(version)
                                ),
                            ));
                        }
                    }
                    _ => bad = true,
                },
                b"exclude" => {
                    for word in words {
                        self.excludes.insert(0, word.to_vec());
                    }
                }
                b"include" | b"make_map_files" => diagnostics.push(Diagnostic::new(
                    Level::Info,
                    format!(
                        "{filename}:{number}: command {} not implemented yet\n",
                        String::from_utf8_lossy(cmd)
                    ),
                )),
                _ => bad = true,
            }
            if bad {
                diagnostics.push(Diagnostic::new(
                    Level::Error,
                    format!(
                        "{filename}:{number}: ignoring bad line starting with '{}'\n",
                        String::from_utf8_lossy(cmd)
                    ),
                ));
            }
        }
    }

    /// After the last file: with no `search` line at all, kmod searches `updates` first.
    pub fn finish(&mut self) {
        if self.searches.is_empty() {
            self.searches.push(Search::Path(b"updates".to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_join_and_count() {
        let lines = logical_lines(b"a\\\nb\nc\\d\n\nlast");
        assert_eq!(
            lines,
            [
                (b"ab".to_vec(), 2),
                (b"cd".to_vec(), 3),
                (b"".to_vec(), 4),
                (b"last".to_vec(), 5)
            ]
        );
        assert_eq!(logical_lines(b"x\\"), [(vec![b'x', 0xff], 1)]);
        assert!(logical_lines(b"").is_empty());
    }

    #[test]
    fn commands() {
        let mut config = DepmodConfig::default();
        let mut diags = Vec::new();
        config.parse(
            "/etc/depmod.d/a.conf",
            b"# comment\nsearch updates built-in\tx\noverride e1000e * extra\n\
              override foo 5\\.4.* extra\nexternal 6\\.12 /opt/mods\nexclude skipme other\n\
              bogus line\noverride short\ninclude x\n   \n",
            b"6.12.95+deb12-amd64",
            &mut diags,
        );
        config.finish();
        assert_eq!(
            config.searches,
            [
                Search::Path(b"x".to_vec()),
                Search::BuiltIn,
                Search::Path(b"updates".to_vec())
            ]
        );
        assert_eq!(config.overrides, [b"extra/e1000e".to_vec()]);
        assert_eq!(config.externals, [b"/opt/mods".to_vec()]);
        assert_eq!(config.excludes, [b"other".to_vec(), b"skipme".to_vec()]);
        let messages: Vec<_> = diags
            .iter()
            .map(|d| (d.level, d.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    Level::Info,
                    // kmod's line reader drops a backslash before anything but a newline.
                    "/etc/depmod.d/a.conf:4: override kernel did not match 5.4.*\n"
                ),
                (
                    Level::Error,
                    "/etc/depmod.d/a.conf:7: ignoring bad line starting with 'bogus'\n"
                ),
                (
                    Level::Error,
                    "/etc/depmod.d/a.conf:8: ignoring bad line starting with 'override'\n"
                ),
                (
                    Level::Info,
                    "/etc/depmod.d/a.conf:9: command include not implemented yet\n"
                ),
            ]
        );
    }

    #[test]
    fn default_search_is_updates() {
        let mut config = DepmodConfig::default();
        config.finish();
        assert_eq!(config.searches, [Search::Path(b"updates".to_vec())]);
        assert!(kernel_matches(b"^6\\.", b"6.1"));
        assert!(!kernel_matches(b"^5\\.", b"6.1"));
        assert!(!kernel_matches(b"(", b"6.1"));
    }
}
