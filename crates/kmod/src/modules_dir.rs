//! The lookups modprobe makes in a modules directory (`/lib/modules/VERSION`), answered from
//! depmod's text files: `modules.dep`, `modules.alias`, `modules.symbols`, `modules.builtin`
//! and `modules.builtin.modinfo`.
//!
//! libkmod reads the `.bin` tries depmod writes beside them; the text files hold the same
//! entries, and this module rebuilds what matters of the tries from them: a key's values are
//! ordered by priority (the module's position in `modules.dep`, as depmod gives it), a wildcard
//! search returns every value whose key matches, ordered the same way, and a dump lists keys in
//! byte order. Keys of `modules.alias` are normalized as depmod normalizes them for the trie
//! (dashes become underscores outside brackets).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::fnmatch::fnmatch;
use crate::modprobe_config::underscores;

/// One entry: where its key and value are in [`Index::strings`], and its priority.
#[derive(Clone, Copy, Debug)]
struct Item {
    key: (u32, u32),
    value: (u32, u32),
    priority: u32,
}

/// A key-value index with the ordering rules of depmod's tries: a key's values are ordered by
/// priority, and among equal priorities the one inserted last comes first; keys are in byte
/// order.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Every key and value, one after the other.
    strings: String,
    /// The entries in the order depmod inserted them.
    items: Vec<Item>,
    /// Key → the item `search` returns, built on first use.
    exact: OnceCell<HashMap<String, usize>>,
}

impl Index {
    fn push(&mut self, key: &str, value: &str, priority: u32) {
        let mut add = |s: &str| {
            let start = self.strings.len() as u32;
            self.strings.push_str(s);
            (start, self.strings.len() as u32)
        };
        let key = add(key);
        let value = add(value);
        self.items.push(Item {
            key,
            value,
            priority,
        });
    }

    /// Builds the index from `(key, value, priority)` triples in the order depmod inserted them.
    fn build<K: AsRef<str>, V: AsRef<str>>(items: impl IntoIterator<Item = (K, V, u32)>) -> Index {
        let mut index = Index::default();
        for (k, v, p) in items {
            index.push(k.as_ref(), v.as_ref(), p);
        }
        index
    }

    fn key(&self, item: &Item) -> &str {
        &self.strings[item.key.0 as usize..item.key.1 as usize]
    }

    fn value(&self, item: &Item) -> &str {
        &self.strings[item.value.0 as usize..item.value.1 as usize]
    }

    /// Item positions in trie order: by key, then priority, then latest inserted first.
    fn trie_order(&self, mut positions: Vec<usize>) -> Vec<usize> {
        positions.sort_by(|&a, &b| {
            let (ia, ib) = (&self.items[a], &self.items[b]);
            self.key(ia)
                .as_bytes()
                .cmp(self.key(ib).as_bytes())
                .then(ia.priority.cmp(&ib.priority))
                .then(b.cmp(&a))
        });
        positions
    }

    /// The first value stored under exactly `key` (`index_search`).
    pub fn search(&self, key: &str) -> Option<&str> {
        let exact = self.exact.get_or_init(|| {
            let mut map: HashMap<String, usize> = HashMap::new();
            for (i, item) in self.items.iter().enumerate() {
                match map.get_mut(self.key(item)) {
                    Some(best) if self.items[*best].priority < item.priority => {}
                    Some(best) => *best = i,
                    None => {
                        map.insert(self.key(item).to_string(), i);
                    }
                }
            }
            map
        });
        exact.get(key).map(|&i| self.value(&self.items[i]))
    }

    /// Every value whose key matches `key`, either exactly or as a wildcard pattern
    /// (`index_searchwild`), ordered by priority.
    pub fn search_wild(&self, key: &str) -> Vec<String> {
        let hits: Vec<usize> = (0..self.items.len())
            .filter(|&i| key_matches(self.key(&self.items[i]), key))
            .collect();
        let mut out: Vec<&Item> = Vec::new();
        for i in self.trie_order(hits) {
            let item = &self.items[i];
            // libkmod's add_value: before the first value of equal or higher priority.
            let pos = out.partition_point(|o| o.priority < item.priority);
            out.insert(pos, item);
        }
        out.into_iter().map(|i| self.value(i).to_string()).collect()
    }

    /// Every key and value, one `PREFIXKEY VALUE` line each, in trie order (`index_dump`).
    pub fn dump(&self, prefix: &str) -> String {
        let mut s =
            String::with_capacity(self.strings.len() + self.items.len() * (prefix.len() + 2));
        for i in self.trie_order((0..self.items.len()).collect()) {
            let item = &self.items[i];
            s.push_str(prefix);
            s.push_str(self.key(item));
            s.push(' ');
            s.push_str(self.value(item));
            s.push('\n');
        }
        s
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Whether the trie key `pattern` matches `key` as `index_searchwild` decides: up to its first
/// wildcard character the pattern must equal the key byte for byte, and from there on it is
/// matched with `fnmatch`.
fn key_matches(pattern: &str, key: &str) -> bool {
    match pattern.find(['*', '?', '[']) {
        None => pattern == key,
        Some(w) => {
            key.len() >= w
                && key.as_bytes()[..w] == pattern.as_bytes()[..w]
                && key.is_char_boundary(w)
                && fnmatch(&pattern[w..], &key[w..])
        }
    }
}

/// libkmod's `modname_normalize` (see [`crate::common_modinfo::lookup::modname_normalize`]) of
/// a name as text.
pub fn modname_normalize(name: &str) -> String {
    String::from_utf8_lossy(&crate::common_modinfo::lookup::modname_normalize(
        name.as_bytes(),
    ))
    .into_owned()
}

/// libkmod's `path_to_modname`: the normalized module name of a file path.
pub fn path_to_modname(path: &str) -> Option<String> {
    let base = path.rsplit('/').next().unwrap_or(path);
    if base.is_empty() {
        return None;
    }
    Some(modname_normalize(base))
}

/// libkmod's `alias_normalize`: dashes become underscores outside brackets; `None` for
/// unbalanced brackets.
pub fn alias_normalize(alias: &str) -> Option<String> {
    underscores(alias)
}

/// Where the text files come from: a directory, or contents given in memory.
#[derive(Clone, Debug)]
enum Source {
    Dir(PathBuf),
    Texts(HashMap<&'static str, Vec<u8>>),
}

/// The indexes of one modules directory, each read when first asked for. An index is `None`
/// when its file could not be read, which libkmod treats as "not found" for lookups in it.
#[derive(Debug)]
pub struct ModulesDir {
    source: Source,
    deps: OnceCell<(Option<Index>, HashMap<String, u32>)>,
    aliases: OnceCell<Option<Index>>,
    symbols: OnceCell<Option<Index>>,
    builtin: OnceCell<Option<Index>>,
    builtin_aliases: OnceCell<Option<Index>>,
}

impl ModulesDir {
    /// The modules directory `dir` (`/lib/modules/VERSION`); nothing is read yet.
    pub fn open(dir: &Path) -> ModulesDir {
        ModulesDir::with_source(Source::Dir(dir.to_path_buf()))
    }

    /// A modules directory whose files have the given contents (by file name, e.g.
    /// `modules.dep`); files not given do not exist.
    pub fn from_texts(files: &[(&'static str, &[u8])]) -> ModulesDir {
        ModulesDir::with_source(Source::Texts(
            files.iter().map(|(n, t)| (*n, t.to_vec())).collect(),
        ))
    }

    fn with_source(source: Source) -> ModulesDir {
        ModulesDir {
            source,
            deps: OnceCell::new(),
            aliases: OnceCell::new(),
            symbols: OnceCell::new(),
            builtin: OnceCell::new(),
            builtin_aliases: OnceCell::new(),
        }
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        match &self.source {
            Source::Dir(dir) => std::fs::read(dir.join(name)).ok(),
            Source::Texts(map) => map.get(name).cloned(),
        }
    }

    fn deps_and_priorities(&self) -> &(Option<Index>, HashMap<String, u32>) {
        self.deps.get_or_init(|| {
            // A module's priority is its position in modules.dep (depmod's mod->idx).
            let mut priority: HashMap<String, u32> = HashMap::new();
            let index = self.read("modules.dep").map(|text| {
                let text = String::from_utf8_lossy(&text);
                let mut index = Index::default();
                for line in text.lines() {
                    let Some(colon) = line.find(':') else {
                        continue;
                    };
                    let Some(name) = path_to_modname(&line[..colon]) else {
                        continue;
                    };
                    let idx = index.len() as u32;
                    index.push(&name, line, idx);
                    priority.entry(name).or_insert(idx);
                }
                index
            });
            (index, priority)
        })
    }

    /// `modules.dep`: module name → its whole line (`path: dep dep`).
    pub fn deps(&self) -> Option<&Index> {
        self.deps_and_priorities().0.as_ref()
    }

    fn alias_file(&self, name: &str, normalize: bool) -> Option<Index> {
        let text = self.read(name)?;
        let priority = &self.deps_and_priorities().1;
        let text = String::from_utf8_lossy(&text);
        let mut index = Index::default();
        for line in text.lines() {
            let Some((key, module)) = line
                .strip_prefix("alias ")
                .and_then(|rest| rest.split_once(' '))
            else {
                continue;
            };
            let module = module.trim_end();
            let p = priority.get(module).copied().unwrap_or(u32::MAX);
            if normalize && key.contains(['-', '[', ']']) {
                let Some(key) = alias_normalize(key) else {
                    continue;
                };
                index.push(&key, module, p);
            } else {
                index.push(key, module, p);
            }
        }
        Some(index)
    }

    /// `modules.alias`: alias pattern (normalized) → module name.
    pub fn aliases(&self) -> Option<&Index> {
        self.aliases
            .get_or_init(|| self.alias_file("modules.alias", true))
            .as_ref()
    }

    /// `modules.symbols`: `symbol:NAME` → module name.
    pub fn symbols(&self) -> Option<&Index> {
        self.symbols
            .get_or_init(|| self.alias_file("modules.symbols", false))
            .as_ref()
    }

    /// `modules.builtin`: module name → "".
    pub fn builtin(&self) -> Option<&Index> {
        self.builtin
            .get_or_init(|| {
                let text = self.read("modules.builtin")?;
                Some(Index::build(
                    String::from_utf8_lossy(&text)
                        .lines()
                        .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
                        .filter_map(path_to_modname)
                        .map(|m| (m, String::new(), 0))
                        .collect::<Vec<_>>(),
                ))
            })
            .as_ref()
    }

    /// Aliases of built-in modules, from `modules.builtin.modinfo`: alias pattern → module name.
    pub fn builtin_aliases(&self) -> Option<&Index> {
        self.builtin_aliases
            .get_or_init(|| {
                let bytes = self.read("modules.builtin.modinfo")?;
                Some(Index::build(
                    bytes
                        .split(|&b| b == 0)
                        .filter_map(|rec| {
                            let rec = String::from_utf8_lossy(rec);
                            let (module, rest) = rec.split_once('.')?;
                            let value = rest.strip_prefix("alias=")?;
                            if module.is_empty() || value.is_empty() {
                                return None;
                            }
                            Some((alias_normalize(value)?, module.to_string(), 0))
                        })
                        .collect::<Vec<_>>(),
                ))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_paths() {
        assert_eq!(
            path_to_modname("kernel/sound/core/snd-timer.ko.xz").as_deref(),
            Some("snd_timer")
        );
        assert_eq!(modname_normalize("snd-hda-intel"), "snd_hda_intel");
        assert_eq!(path_to_modname("dir/"), None);
    }

    #[test]
    fn wildcard_search_orders_by_module_position() {
        let dep = b"kernel/a.ko:\nkernel/b.ko: kernel/a.ko\nkernel/c-d.ko:\n";
        let alias = b"alias pci:v00001234d*sv*sd*bc*sc*i* c_d\nalias pci:v0000*d0000ABCD* b\n\
                      alias fs-foo a\nalias snd-x[-_]y b\n";
        let dir = ModulesDir::from_texts(&[("modules.dep", dep), ("modules.alias", alias)]);
        let a = dir.aliases().unwrap();
        assert_eq!(
            a.search_wild("pci:v00001234d0000ABCDsv0sd0bc0sc0i0"),
            ["b", "c_d"]
        );
        assert_eq!(a.search_wild("fs_foo"), ["a"]);
        assert!(a.search_wild("fs_fo").is_empty());
        assert_eq!(a.search_wild("snd_x-y"), ["b"]);
        assert_eq!(
            dir.deps().unwrap().search("b"),
            Some("kernel/b.ko: kernel/a.ko")
        );
        assert_eq!(
            a.dump("alias "),
            "alias fs_foo a\nalias pci:v0000*d0000ABCD* b\n\
             alias pci:v00001234d*sv*sd*bc*sc*i* c_d\nalias snd_x[-_]y b\n"
        );
    }

    #[test]
    fn builtin_modinfo_aliases() {
        let modinfo = b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c.alias=crypto-crc32c\0";
        let dir = ModulesDir::from_texts(&[
            ("modules.builtin", b"kernel/fs/ext4/ext4.ko\n"),
            ("modules.builtin.modinfo", modinfo),
        ]);
        assert!(dir.deps().is_none());
        assert_eq!(dir.builtin().unwrap().search("ext4"), Some(""));
        assert_eq!(
            dir.builtin_aliases().unwrap().search_wild("fs_ext4"),
            ["ext4"]
        );
    }
}
