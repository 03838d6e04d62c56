//! The indexes of a modules directory (`/lib/modules/VERSION`), as every tool reads them: each
//! `modules.*.bin` file through the module index's bounded reader (`kmodlab_modindex::Index`,
//! fuzzed; a corrupt or looping trie reads as absent instead of hanging), opened on first use.
//!
//! Where a `.bin` file is missing, the same trie is built in memory from depmod's text file
//! beside it (`modules.dep`, `modules.alias`, `modules.symbols`, `modules.builtin`,
//! `modules.builtin.modinfo`), with the priorities depmod gives (a module's position in
//! `modules.dep`), so that a tree with only text files answers as one with both.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use kmodlab_modindex::names::{alias_normalize, path_to_modname};
use kmodlab_modindex::{depmod, text, Index, IndexBuilder};

/// One of the indexes libkmod reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `modules.dep.bin`: module name → its `modules.dep` line.
    Dep,
    /// `modules.alias.bin`: normalised alias pattern → module name.
    Alias,
    /// `modules.symbols.bin`: `symbol:NAME` → module name.
    Symbols,
    /// `modules.builtin.bin`: built-in module name → "".
    Builtin,
    /// `modules.builtin.alias.bin`: a built-in module's alias pattern → its name.
    BuiltinAlias,
}

const ALL: [Which; 5] = [
    Which::Dep,
    Which::Alias,
    Which::Symbols,
    Which::Builtin,
    Which::BuiltinAlias,
];

impl Which {
    /// The index file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Which::Dep => "modules.dep.bin",
            Which::Alias => "modules.alias.bin",
            Which::Symbols => "modules.symbols.bin",
            Which::Builtin => "modules.builtin.bin",
            Which::BuiltinAlias => "modules.builtin.alias.bin",
        }
    }

    fn slot(self) -> usize {
        ALL.iter().position(|&w| w == self).unwrap_or(0)
    }
}

/// The indexes of one modules directory, each read (or built) once.
pub struct Indexes {
    dir: Vec<u8>,
    tries: [OnceCell<Option<Vec<u8>>>; 5],
}

impl Indexes {
    /// The indexes of the modules directory `dir`; nothing is read yet.
    pub fn open(dir: &[u8]) -> Indexes {
        Indexes {
            dir: dir.to_vec(),
            tries: Default::default(),
        }
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        let path = [&self.dir[..], b"/", name.as_bytes()].concat();
        std::fs::read(Path::new(OsStr::from_bytes(&path))).ok()
    }

    /// The trie of `which`: its `.bin` file, or else built from the text file.
    fn index(&self, which: Which) -> Option<Index<'_>> {
        let bytes = self.tries[which.slot()]
            .get_or_init(|| {
                self.read(which.file_name())
                    .or_else(|| self.build_from_text(which))
            })
            .as_deref()?;
        Index::parse(bytes).ok()
    }

    /// The first value stored under exactly `key` (libkmod's `index_search`).
    pub fn lookup(&self, which: Which, key: &[u8]) -> Option<Vec<u8>> {
        self.index(which)?.lookup(key).ok()?.map(<[u8]>::to_vec)
    }

    /// Whether the index exists (as a `.bin` file or a text file to build it from).
    pub fn exists(&self, which: Which) -> bool {
        self.index(which).is_some()
    }

    /// Every value whose key, as a wildcard pattern, matches `key`, in libkmod's order
    /// (`index_searchwild`); empty when the index is missing or unreadable.
    pub fn search_wild(&self, which: Which, key: &[u8]) -> Vec<Vec<u8>> {
        let Some(index) = self.index(which) else {
            return Vec::new();
        };
        let found = index.search_wildcard(key).unwrap_or_default();
        found.into_iter().map(|v| v.value.to_vec()).collect()
    }

    /// Every `PREFIXKEY VALUE` line of the index, in libkmod's dump order (`index_dump`).
    pub fn dump(&self, which: Which, prefix: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(index) = self.index(which) else {
            return out;
        };
        for (key, value) in index.entries().unwrap_or_default() {
            out.extend_from_slice(prefix);
            out.extend_from_slice(&key);
            out.push(b' ');
            out.extend_from_slice(value.value);
            out.push(b'\n');
        }
        out
    }

    /// The trie depmod would have written for `which`, from its text file; `None` without it.
    /// Entries that the trie cannot hold (non-ASCII) are left out, as depmod fails on them.
    fn build_from_text(&self, which: Which) -> Option<Vec<u8>> {
        let trie = |entries: Vec<(Vec<u8>, Vec<u8>, u32)>| {
            let mut builder = IndexBuilder::new();
            for (key, value, priority) in entries {
                let _ = builder.insert(&key, &value, priority);
            }
            builder.write()
        };
        match which {
            Which::Dep => Some(trie(dep_entries(&self.read("modules.dep")?))),
            Which::Alias | Which::Symbols => {
                let (file, normalize) = match which {
                    Which::Alias => ("modules.alias", true),
                    _ => ("modules.symbols", false),
                };
                let aliases = self.read(file)?;
                // A module's priority is its position in modules.dep (depmod's `mod->idx`).
                let mut priority = HashMap::new();
                let deps = self.read("modules.dep").unwrap_or_default();
                for (name, _, idx) in dep_entries(&deps) {
                    priority.entry(name).or_insert(idx);
                }
                let entries = text::parse_aliases(&aliases)
                    .into_iter()
                    .filter_map(|(key, module)| {
                        let key = if normalize {
                            alias_normalize(key)?
                        } else {
                            key.to_vec()
                        };
                        let p = priority.get(module).copied().unwrap_or(u32::MAX);
                        Some((key, module.to_vec(), p))
                    })
                    .collect();
                Some(trie(entries))
            }
            Which::Builtin => depmod::modules_builtin_bin(&self.read("modules.builtin")?)
                .ok()
                .map(|(bytes, _)| bytes),
            Which::BuiltinAlias => {
                depmod::modules_builtin_alias_bin(&self.read("modules.builtin.modinfo")?)
                    .ok()
                    .map(|(bytes, _)| bytes)
            }
        }
    }
}

/// `(module name, whole line, position)` of each `modules.dep` line with a colon.
fn dep_entries(deps: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
    text::lines(deps)
        .filter_map(|line| text::parse_dep_line(line).map(|dep| (line, dep)))
        .filter_map(|(line, dep)| Some((path_to_modname(dep.path)?, line.to_vec())))
        .enumerate()
        .map(|(i, (name, line))| (name, line, i as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A modules directory with `files`, removed when dropped.
    struct Tree(std::path::PathBuf);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(files: &[(&str, &[u8])]) -> (Tree, Indexes) {
        let dir = std::env::temp_dir().join(format!(
            "kmodlab-indexes-{}-{}",
            std::process::id(),
            kmodlab_testkit::test_name()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let indexes = Indexes::open(dir.as_os_str().as_bytes());
        (Tree(dir), indexes)
    }

    const DEP: &[u8] = b"kernel/a.ko: kernel/c.ko\nkernel/b-x.ko:\nkernel/c.ko:\n";
    const ALIAS: &[u8] = b"# comment\nalias pci:v1* b_x\nalias pci:v1* a\nalias fs-c c\n";

    #[test]
    fn text_files_answer_as_their_tries() {
        let (_dir, ix) = tree(&[("modules.dep", DEP), ("modules.alias", ALIAS)]);
        assert_eq!(
            ix.lookup(Which::Dep, b"a").as_deref(),
            Some(&b"kernel/a.ko: kernel/c.ko"[..])
        );
        assert_eq!(
            ix.lookup(Which::Dep, b"b_x").as_deref(),
            Some(&b"kernel/b-x.ko:"[..])
        );
        // Ordered by the modules' positions in modules.dep, whatever the alias file's order.
        assert_eq!(
            ix.search_wild(Which::Alias, b"pci:v1234"),
            [b"a".to_vec(), b"b_x".to_vec()]
        );
        // Keys are normalised as depmod stores them.
        assert_eq!(ix.search_wild(Which::Alias, b"fs_c"), [b"c".to_vec()]);
        assert!(ix.search_wild(Which::Symbols, b"symbol:x").is_empty());
        assert!(!ix.exists(Which::Builtin));
        assert_eq!(
            ix.dump(Which::Alias, b"alias "),
            b"alias fs_c c\nalias pci:v1* a\nalias pci:v1* b_x\n"
        );
    }

    #[test]
    fn bin_files_are_preferred_and_bad_ones_read_as_absent() {
        let mut builder = IndexBuilder::new();
        builder.insert(b"vfat", b"kernel/vfat.ko:", 0).unwrap();
        let bin = builder.write();
        let (_dir, ix) = tree(&[
            ("modules.dep", DEP),
            ("modules.dep.bin", &bin),
            ("modules.alias.bin", b"not an index"),
        ]);
        assert_eq!(
            ix.lookup(Which::Dep, b"vfat").as_deref(),
            Some(&b"kernel/vfat.ko:"[..])
        );
        assert_eq!(ix.lookup(Which::Dep, b"a"), None);
        assert!(ix.search_wild(Which::Alias, b"x").is_empty());
        assert!(!ix.exists(Which::Alias));
    }

    #[test]
    fn builtin_from_its_text_files() {
        let (_dir, ix) = tree(&[
            ("modules.builtin", b"kernel/fs/ext4/ext4.ko\n"),
            (
                "modules.builtin.modinfo",
                b"ext4.alias=fs-ext4\0ext4.license=GPL\0",
            ),
        ]);
        assert_eq!(
            ix.lookup(Which::Builtin, b"ext4").as_deref(),
            Some(&b""[..])
        );
        assert_eq!(
            ix.search_wild(Which::BuiltinAlias, b"fs_ext4"),
            [b"ext4".to_vec()]
        );
    }
}
