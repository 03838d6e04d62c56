//! Lookups in depmod's `.bin` indexes (`modules.dep.bin`, `modules.alias.bin`, ...), with the
//! results and the order of results that libkmod's file-based reader gives.
//!
//! The format: a header (magic `B007F457`, version `0002xxxx`, root offset, all big-endian
//! u32), then trie nodes. A node offset carries flags in its top nibble: `0x80000000` the node
//! starts with a NUL-terminated prefix string, `0x40000000` it has values (a u32 count, then
//! for each a u32 priority and a NUL-terminated string), `0x20000000` it has children (a first
//! and a last byte, then one u32 offset per byte in between; offset 0 is no child). The low 28
//! bits are the file offset of the node.
//!
//! Malformed indexes never panic: a node that cannot be read is treated as absent.

const MAGIC: u32 = 0xB007_F457;
const VERSION_MAJOR: u32 = 0x0002;
const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDREN: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// One value of a key, with the priority depmod gave it (the module's place in
/// `modules.order` for aliases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexValue {
    /// The value: a module name, or a `modules.dep` line.
    pub value: Vec<u8>,
    /// Lower sorts first.
    pub priority: u32,
}

/// An index file's bytes.
#[derive(Debug, Clone)]
pub struct Index {
    data: Vec<u8>,
    root: u32,
}

/// One trie node, read.
struct Node<'a> {
    prefix: &'a [u8],
    /// First child byte and the child offsets from it on.
    first: u8,
    children: Vec<u32>,
    values: Vec<IndexValue>,
}

impl<'a> Node<'a> {
    fn child(&self, ch: u8) -> u32 {
        // libkmod passes the key's `char`, signed: bytes from 0x80 up never match.
        if ch >= 0x80 || ch < self.first {
            return 0;
        }
        self.children
            .get(usize::from(ch - self.first))
            .copied()
            .unwrap_or(0)
    }

    /// The child bytes, in order.
    fn child_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.children.len()).filter_map(|i| u8::try_from(usize::from(self.first) + i).ok())
    }
}

/// libkmod's `add_value()`: keeps `values` sorted by priority, a new value going before the
/// ones of equal priority.
fn add_value(values: &mut Vec<IndexValue>, value: IndexValue) {
    let at = values
        .iter()
        .position(|v| v.priority >= value.priority)
        .unwrap_or(values.len());
    values.insert(at, value);
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn c_str(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let tail = data.get(at..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    Some((tail.get(..len)?, at + len + 1))
}

impl Index {
    /// Checks the header of an index file's contents; `None` when it is not an index (libkmod
    /// then treats the file as missing).
    pub fn parse(data: Vec<u8>) -> Option<Index> {
        if be32(&data, 0)? != MAGIC || be32(&data, 4)? >> 16 != VERSION_MAJOR {
            return None;
        }
        let root = be32(&data, 8)?;
        Some(Index { data, root })
    }

    /// Reads and checks an index file; `None` when it cannot be read or is not an index.
    pub fn open(path: &std::path::Path) -> Option<Index> {
        Index::parse(std::fs::read(path).ok()?)
    }

    fn node(&self, offset: u32) -> Option<Node<'_>> {
        let data = &self.data;
        let mut at = usize::try_from(offset & OFFSET_MASK).ok()?;
        if at == 0 {
            return None;
        }
        let mut prefix: &[u8] = b"";
        if offset & FLAG_PREFIX != 0 {
            (prefix, at) = c_str(data, at)?;
        }
        let mut first = 0x80;
        let mut children = Vec::new();
        if offset & FLAG_CHILDREN != 0 {
            first = *data.get(at)?;
            let last = *data.get(at + 1)?;
            at += 2;
            for _ in first..=last {
                children.push(be32(data, at)?);
                at += 4;
            }
        }
        let mut values = Vec::new();
        if offset & FLAG_VALUES != 0 {
            let count = be32(data, at)?;
            at += 4;
            for _ in 0..count {
                let priority = be32(data, at)?;
                let (value, next) = c_str(data, at + 4)?;
                at = next;
                add_value(
                    &mut values,
                    IndexValue {
                        value: value.to_vec(),
                        priority,
                    },
                );
            }
        }
        Some(Node {
            prefix,
            first,
            children,
            values,
        })
    }

    /// The first value of `key` (libkmod's `index_search()`): the lowest priority, and among
    /// equal priorities the one stored last.
    pub fn search(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut node = self.node(self.root)?;
        let mut i = 0;
        loop {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if key.get(i + j) != Some(&ch) {
                    return None;
                }
            }
            i += node.prefix.len();
            let Some(&ch) = key.get(i) else {
                return node.values.into_iter().next().map(|v| v.value);
            };
            node = self.node(node.child(ch))?;
            i += 1;
        }
    }

    /// Every value of every key that matches `key`, where the stored keys may hold wildcards
    /// (`*`, `?`, `[...]`, as `fnmatch()` reads them), in libkmod's order
    /// (`index_searchwild()`): by priority, ties in the order libkmod's walk meets them.
    pub fn search_wild(&self, key: &[u8]) -> Vec<IndexValue> {
        let mut out = Vec::new();
        let mut pattern = Vec::new();
        let Some(mut node) = self.node(self.root) else {
            return out;
        };
        let mut i = 0;
        loop {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if matches!(ch, b'*' | b'?' | b'[') {
                    let subkey = key.get(i + j..).unwrap_or_default();
                    self.wild_all(&node, j, &mut pattern, subkey, &mut out, 0);
                    return out;
                }
                if key.get(i + j) != Some(&ch) {
                    return out;
                }
            }
            i += node.prefix.len();
            let subkey = key.get(i..).unwrap_or_default();
            for wildcard in [b'*', b'?', b'['] {
                if let Some(child) = self.node(node.child(wildcard)) {
                    pattern.push(wildcard);
                    self.wild_all(&child, 0, &mut pattern, subkey, &mut out, 0);
                    pattern.pop();
                }
            }
            let Some(&ch) = key.get(i) else {
                for value in node.values {
                    add_value(&mut out, value);
                }
                return out;
            };
            match self.node(node.child(ch)) {
                Some(child) => node = child,
                None => return out,
            }
            i += 1;
        }
    }

    /// Below a wildcard: every key of the subtree, matched whole against `subkey`.
    fn wild_all(
        &self,
        node: &Node<'_>,
        from: usize,
        pattern: &mut Vec<u8>,
        subkey: &[u8],
        out: &mut Vec<IndexValue>,
        depth: usize,
    ) {
        // A well-formed trie is as deep as its longest key; a cycle in a corrupt one is not.
        if depth > 4096 {
            return;
        }
        let pushed = node.prefix.len().saturating_sub(from);
        pattern.extend_from_slice(node.prefix.get(from..).unwrap_or_default());
        for ch in node.child_bytes() {
            if let Some(child) = self.node(node.child(ch)) {
                pattern.push(ch);
                self.wild_all(&child, 0, pattern, subkey, out, depth + 1);
                pattern.pop();
            }
        }
        if !node.values.is_empty() && fnmatch(pattern, subkey) {
            for value in &node.values {
                add_value(out, value.clone());
            }
        }
        pattern.truncate(pattern.len() - pushed);
    }
}

/// `fnmatch(pattern, string, 0)` in the C locale: the module index's matcher.
pub use kmodlab_modindex::fnmatch::fnmatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_glibc() {
        let yes = [
            (
                "pci:v00008086d*sv*sd*bc*sc*i*",
                "pci:v00008086d00001234sv0sd0bc01sc02i03",
            ),
            ("*", ""),
            ("a*b*c", "abbbc"),
            ("a?c", "a/c"),
            ("[a-c]x", "bx"),
            ("[!a-c]x", "dx"),
            ("[^a]x", "bx"),
            ("[]]", "]"),
            ("[a-]", "-"),
            ("[[:digit:]]z", "5z"),
            ("\\*", "*"),
            ("[", "["),
            ("a[b", "a[b"),
            (
                "usb:v0BDAp8153d*dc*dsc*dp*ic02isc06ip00in*",
                "usb:v0BDAp8153d0000dc00dsc00dp00ic02isc06ip00in00",
            ),
        ];
        for (p, s) in yes {
            assert!(fnmatch(p.as_bytes(), s.as_bytes()), "{p} {s}");
        }
        let no = [
            ("a*b", "ac"),
            ("?", ""),
            ("[a-c]", "d"),
            ("[!a]", "a"),
            ("\\*", "x"),
            ("abc", "abcd"),
            ("[[:nope:]]", "a"),
            ("a\\", "a"),
        ];
        for (p, s) in no {
            assert!(!fnmatch(p.as_bytes(), s.as_bytes()), "{p} {s}");
        }
    }

    /// A hand-built index: root "" with children 'a' and '*'; "ab" has two values, "*x" one.
    fn sample() -> Index {
        let mut data = Vec::new();
        data.extend(MAGIC.to_be_bytes());
        data.extend(0x0002_0001u32.to_be_bytes());
        data.extend(0u32.to_be_bytes()); // root, patched below
                                         // Node "b" (prefix "b", two values, priorities 2 and 1).
        let ab = data.len() as u32;
        data.extend(b"b\0");
        data.extend(2u32.to_be_bytes());
        data.extend(2u32.to_be_bytes());
        data.extend(b"second\0");
        data.extend(1u32.to_be_bytes());
        data.extend(b"first\0");
        // Node "x" under '*': prefix "x", one value.
        let star = data.len() as u32;
        data.extend(b"x\0");
        data.extend(1u32.to_be_bytes());
        data.extend(0u32.to_be_bytes());
        data.extend(b"wild\0");
        // Root: children '*' ..= 'a'.
        let root = data.len() as u32;
        data.push(b'*');
        data.push(b'a');
        for ch in b'*'..=b'a' {
            let offset = match ch {
                b'*' => star | FLAG_PREFIX | FLAG_VALUES,
                b'a' => ab | FLAG_PREFIX | FLAG_VALUES,
                _ => 0,
            };
            data.extend(offset.to_be_bytes());
        }
        data[8..12].copy_from_slice(&(root | FLAG_CHILDREN).to_be_bytes());
        Index::parse(data).unwrap()
    }

    #[test]
    fn exact_and_wildcard_searches() {
        let index = sample();
        assert_eq!(index.search(b"ab").as_deref(), Some(&b"first"[..]));
        assert_eq!(index.search(b"a"), None);
        assert_eq!(index.search(b"abc"), None);
        let values: Vec<Vec<u8>> = index
            .search_wild(b"ab")
            .into_iter()
            .map(|v| v.value)
            .collect();
        assert_eq!(values, [b"first".to_vec(), b"second".to_vec()]);
        let values: Vec<Vec<u8>> = index
            .search_wild(b"abx")
            .into_iter()
            .map(|v| v.value)
            .collect();
        assert_eq!(values, [b"wild".to_vec()]);
        let values = index.search_wild(b"zzx");
        assert_eq!(values.len(), 1);
        assert!(index.search_wild(b"q").is_empty());
    }

    #[test]
    fn corrupt_indexes_never_panic() {
        let good = sample().data;
        assert!(Index::parse(good[..8].to_vec()).is_none());
        for len in 12..good.len() {
            if let Some(index) = Index::parse(good[..len].to_vec()) {
                let _ = index.search(b"ab");
                let _ = index.search_wild(b"abx");
            }
        }
        for at in 8..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xa5;
            if let Some(index) = Index::parse(bad) {
                let _ = index.search(b"ab");
                let _ = index.search_wild(b"abx");
            }
        }
    }
}
