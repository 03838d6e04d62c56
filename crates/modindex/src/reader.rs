//! Reading a `.bin` index (see [`crate::trie`] for the format) the way libkmod 30 reads it
//! (`index_mm_*`): exact lookups for `modules.dep.bin`, `modules.symbols.bin` and
//! `modules.builtin.bin`, wildcard lookups for `modules.alias.bin` and
//! `modules.builtin.alias.bin`, and a dump of every key.
//!
//! The reader works on the file's bytes and never trusts them: every offset is bounds-checked,
//! and a budget on the number of nodes read turns a trie whose offsets loop back into an error
//! instead of an endless walk. It never panics.

use std::fmt;

use crate::fnmatch::fnmatch;
use crate::trie::{
    INDEX_CHILDMAX, INDEX_MAGIC, INDEX_VERSION, NODE_CHILDS, NODE_MASK, NODE_PREFIX, NODE_VALUES,
};

/// What is wrong with an index file.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexErrorKind {
    /// Shorter than the 12-byte header.
    TooShort,
    /// The magic is not `B007F457`.
    BadMagic,
    /// The major version is not 2.
    BadVersion,
    /// A node, string or integer runs past the end of the file.
    Truncated,
    /// A node's child range is impossible (first after last, or past 127).
    BadChildRange,
    /// More nodes were visited than the file can hold: its offsets form a loop.
    Loop,
}

/// An error reading an index, with the file offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError {
    /// What went wrong.
    pub kind: IndexErrorKind,
    /// Where, in the file.
    pub offset: usize,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            IndexErrorKind::TooShort => "file is shorter than the index header",
            IndexErrorKind::BadMagic => "bad magic (not a module index)",
            IndexErrorKind::BadVersion => "unsupported index major version",
            IndexErrorKind::Truncated => "node runs past the end of the file",
            IndexErrorKind::BadChildRange => "node has an impossible child range",
            IndexErrorKind::Loop => "node offsets loop back",
        };
        write!(f, "module index: {what} at offset {:#x}", self.offset)
    }
}

impl std::error::Error for IndexError {}

/// One value stored under a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// Its priority (depmod stores the module's position in modules.dep order).
    pub priority: u32,
    /// The value's bytes, without the NUL.
    pub value: &'a [u8],
}

/// A parsed node: borrowed prefix, child range and values.
struct Node<'a> {
    prefix: &'a [u8],
    first: u8,
    /// The child offsets for `first..=last`; empty when the node has no children.
    children: &'a [u8],
    values: Vec<Value<'a>>,
}

impl Node<'_> {
    fn child(&self, ch: u8) -> Option<u32> {
        let at = usize::from(ch.checked_sub(self.first)?) * 4;
        let bytes = self.children.get(at..at + 4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// The characters of existing children, ascending.
    fn child_chars(&self) -> impl Iterator<Item = (u8, u32)> + '_ {
        self.children
            .chunks_exact(4)
            .enumerate()
            .filter_map(|(i, b)| {
                let offset = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                (offset & NODE_MASK != 0).then(|| (self.first + i as u8, offset))
            })
    }
}

/// A module index file (`modules.*.bin`), borrowed.
///
/// ```
/// use kmodlab_modindex::{Index, IndexBuilder};
/// let mut builder = IndexBuilder::new();
/// builder.insert(b"pci:v00008086d*", b"e1000e", 3).unwrap();
/// let bytes = builder.write();
/// let index = Index::parse(&bytes).unwrap();
/// let found = index.search_wildcard(b"pci:v00008086d000010D3").unwrap();
/// assert_eq!(found[0].value, b"e1000e");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Index<'a> {
    data: &'a [u8],
    root: u32,
}

/// Counts node reads; a well-formed file never reads more nodes than it has bytes.
struct Budget {
    left: usize,
}

impl<'a> Index<'a> {
    /// Checks the header (magic `B007F457`, major version 2) of an index file.
    pub fn parse(data: &'a [u8]) -> Result<Index<'a>, IndexError> {
        let word = |at: usize| {
            data.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (Some(magic), Some(version), Some(root)) = (word(0), word(4), word(8)) else {
            return Err(IndexError {
                kind: IndexErrorKind::TooShort,
                offset: 0,
            });
        };
        if magic != INDEX_MAGIC {
            return Err(IndexError {
                kind: IndexErrorKind::BadMagic,
                offset: 0,
            });
        }
        if version >> 16 != INDEX_VERSION >> 16 {
            return Err(IndexError {
                kind: IndexErrorKind::BadVersion,
                offset: 4,
            });
        }
        Ok(Index { data, root })
    }

    /// The most node reads a search for `key` makes in a well-formed file: every node once,
    /// and once more for each wildcard in the key (libkmod's walk reads the subtree below a
    /// wildcard child again when the key itself takes that child).
    fn budget(&self, key: &[u8]) -> Budget {
        let wildcards = key
            .iter()
            .filter(|&&b| matches!(b, b'*' | b'?' | b'['))
            .count();
        Budget {
            left: (self.data.len() + 1).saturating_mul(wildcards + 1),
        }
    }

    /// Reads the node at `offset` (with its flags); `None` for offset 0 (no node).
    fn node(&self, offset: u32, budget: &mut Budget) -> Result<Option<Node<'a>>, IndexError> {
        let start = (offset & NODE_MASK) as usize;
        if start == 0 {
            return Ok(None);
        }
        if budget.left == 0 {
            return Err(IndexError {
                kind: IndexErrorKind::Loop,
                offset: start,
            });
        }
        budget.left -= 1;
        let truncated = |at: usize| IndexError {
            kind: IndexErrorKind::Truncated,
            offset: at,
        };
        let mut at = start;
        let c_str = |at: &mut usize| -> Result<&'a [u8], IndexError> {
            let tail = self.data.get(*at..).ok_or_else(|| truncated(*at))?;
            let len = tail
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| truncated(*at))?;
            *at += len + 1;
            Ok(&tail[..len])
        };
        let word = |at: &mut usize| -> Result<u32, IndexError> {
            let b = self.data.get(*at..*at + 4).ok_or_else(|| truncated(*at))?;
            *at += 4;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let prefix = if offset & NODE_PREFIX != 0 {
            c_str(&mut at)?
        } else {
            &[]
        };
        let (first, children) = if offset & NODE_CHILDS != 0 {
            let range = self.data.get(at..at + 2).ok_or_else(|| truncated(at))?;
            let (first, last) = (range[0], range[1]);
            if first > last || last >= INDEX_CHILDMAX {
                return Err(IndexError {
                    kind: IndexErrorKind::BadChildRange,
                    offset: at,
                });
            }
            at += 2;
            let len = (usize::from(last - first) + 1) * 4;
            let children = self.data.get(at..at + len).ok_or_else(|| truncated(at))?;
            at += len;
            (first, children)
        } else {
            (INDEX_CHILDMAX, &[][..])
        };
        let mut values = Vec::new();
        if offset & NODE_VALUES != 0 {
            let count = word(&mut at)? as usize;
            // Each value takes at least 5 bytes: refuse counts the file cannot hold.
            if count > self.data.len().saturating_sub(at) / 5 {
                return Err(truncated(at));
            }
            values.reserve(count);
            for _ in 0..count {
                let priority = word(&mut at)?;
                let value = c_str(&mut at)?;
                values.push(Value { priority, value });
            }
        }
        Ok(Some(Node {
            prefix,
            first,
            children,
            values,
        }))
    }

    /// The values stored under exactly `key`, in file order (ascending priority); empty when
    /// the key is not in the index.
    pub fn values(&self, key: &[u8]) -> Result<Vec<Value<'a>>, IndexError> {
        let mut budget = self.budget(b"");
        let mut offset = self.root;
        let mut i = 0;
        while let Some(node) = self.node(offset, &mut budget)? {
            if key.get(i..i + node.prefix.len()) != Some(node.prefix) {
                return Ok(Vec::new());
            }
            i += node.prefix.len();
            let Some(&ch) = key.get(i) else {
                return Ok(node.values);
            };
            match node.child(ch) {
                Some(child) => offset = child,
                None => return Ok(Vec::new()),
            }
            i += 1;
        }
        Ok(Vec::new())
    }

    /// The first value under exactly `key` (the lowest priority), as libkmod's `index_search`
    /// returns it: what modprobe uses for `modules.dep.bin` and `modules.symbols.bin`.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<&'a [u8]>, IndexError> {
        Ok(self.values(key)?.first().map(|v| v.value))
    }

    /// Every value whose key, read as a shell wildcard pattern (`*`, `?`, `[...]`, as
    /// `fnmatch(3)` with no flags), matches `key` — libkmod's `index_searchwild`, used for
    /// `modules.alias.bin`. The result is in libkmod's order: ascending priority, and among
    /// equal priorities the value found last first.
    pub fn search_wildcard(&self, key: &[u8]) -> Result<Vec<Value<'a>>, IndexError> {
        let mut budget = self.budget(key);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut offset = self.root;
        let mut i = 0;
        while let Some(node) = self.node(offset, &mut budget)? {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if matches!(ch, b'*' | b'?' | b'[') {
                    let subkey = key.get(i + j..).unwrap_or_default();
                    self.wild_all(node, j, &mut buf, subkey, &mut out, &mut budget)?;
                    return Ok(out);
                }
                if key.get(i + j) != Some(&ch) {
                    return Ok(out);
                }
            }
            i += node.prefix.len();
            let rest = key.get(i..).unwrap_or_default();
            for wild in [b'*', b'?', b'['] {
                if let Some(child) = node.child(wild) {
                    if let Some(child) = self.node(child, &mut budget)? {
                        buf.push(wild);
                        self.wild_all(child, 0, &mut buf, rest, &mut out, &mut budget)?;
                        buf.pop();
                    }
                }
            }
            let Some(&ch) = key.get(i) else {
                add_values(&mut out, &node.values);
                return Ok(out);
            };
            match node.child(ch) {
                Some(child) => offset = child,
                None => return Ok(out),
            }
            i += 1;
        }
        Ok(out)
    }

    /// libkmod's `index_searchwild__all`: every key below `node` (whose prefix from `j` on is
    /// still to be appended to `buf`) is a pattern matched against `subkey`; children first,
    /// in character order, then the node's own values.
    fn wild_all(
        &self,
        node: Node<'a>,
        j: usize,
        buf: &mut Vec<u8>,
        subkey: &[u8],
        out: &mut Vec<Value<'a>>,
        budget: &mut Budget,
    ) -> Result<(), IndexError> {
        // An explicit stack: (node, its children still to visit, buf length to restore).
        struct Frame<'a> {
            node: Node<'a>,
            next: std::vec::IntoIter<(u8, u32)>,
            restore: usize,
        }
        let start = buf.len();
        buf.extend_from_slice(node.prefix.get(j..).unwrap_or_default());
        let next = node.child_chars().collect::<Vec<_>>().into_iter();
        let mut stack = vec![Frame {
            node,
            next,
            restore: start,
        }];
        while let Some(frame) = stack.last_mut() {
            if let Some((ch, offset)) = frame.next.next() {
                if let Some(child) = self.node(offset, budget)? {
                    let restore = buf.len();
                    buf.push(ch);
                    buf.extend_from_slice(child.prefix);
                    let next = child.child_chars().collect::<Vec<_>>().into_iter();
                    stack.push(Frame {
                        node: child,
                        next,
                        restore,
                    });
                }
                continue;
            }
            let Some(frame) = stack.pop() else { break };
            if !frame.node.values.is_empty() && fnmatch(buf, subkey) {
                add_values(out, &frame.node.values);
            }
            buf.truncate(frame.restore);
        }
        Ok(())
    }

    /// Every `(key, value)` in the index, in libkmod's dump order (`modprobe
    /// --show-config`-style listings): a node's values, then its children in character order.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Value<'a>)>, IndexError> {
        let mut budget = self.budget(b"");
        let mut out = Vec::new();
        // (offset, key so far, without the node's prefix)
        let mut stack: Vec<(u32, Vec<u8>)> = vec![(self.root, Vec::new())];
        while let Some((offset, mut key)) = stack.pop() {
            let Some(node) = self.node(offset, &mut budget)? else {
                continue;
            };
            key.extend_from_slice(node.prefix);
            for value in &node.values {
                out.push((key.clone(), *value));
            }
            let children: Vec<_> = node.child_chars().collect();
            for (ch, child) in children.into_iter().rev() {
                let mut child_key = key.clone();
                child_key.push(ch);
                stack.push((child, child_key));
            }
        }
        Ok(out)
    }
}

/// libkmod's `add_value` for search results, applied to each of `values` in turn: each goes
/// before the first value whose priority is not lower. `out` stays sorted by priority, so this
/// is a merge: the new values sorted by priority, the last added first among equals (a stable
/// sort of them reversed), each run of them before the old values of its priority. O(n log n)
/// where adding one by one took O(n²) (a crafted node of 200,000 values took minutes).
fn add_values<'a>(out: &mut Vec<Value<'a>>, values: &[Value<'a>]) {
    if let [value] = values {
        let at = out.partition_point(|v| v.priority < value.priority);
        out.insert(at, *value);
        return;
    }
    let mut new: Vec<Value<'a>> = values.iter().rev().copied().collect();
    new.sort_by_key(|v| v.priority);
    let old = std::mem::take(out);
    out.reserve(old.len() + new.len());
    let (mut old, mut new) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        let take_new = match (new.peek(), old.peek()) {
            (Some(n), Some(o)) => n.priority <= o.priority,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_new { new.next() } else { old.next() };
        out.extend(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndexBuilder;

    fn sample() -> Vec<u8> {
        let mut b = IndexBuilder::new();
        b.insert(b"pci:v00008086d*sv*", b"e1000e", 5).unwrap();
        b.insert(b"pci:v00008086d000010D3sv*", b"exact", 9).unwrap();
        b.insert(b"pci:v0000*", b"any_vendor", 1).unwrap();
        b.insert(b"usb:v1234p[0-9]*", b"range", 2).unwrap();
        b.insert(b"snd_pcm", b"kernel/sound/core/snd-pcm.ko.xz:", 3)
            .unwrap();
        b.insert(b"snd_pcm", b"second", 3).unwrap();
        b.write()
    }

    #[test]
    fn header_checks() {
        assert_eq!(
            Index::parse(b"\xb0\x07").unwrap_err().kind,
            IndexErrorKind::TooShort
        );
        assert_eq!(
            Index::parse(&[0; 12]).unwrap_err().kind,
            IndexErrorKind::BadMagic
        );
        let mut v3 = IndexBuilder::new().write();
        v3[5] = 3;
        assert_eq!(
            Index::parse(&v3).unwrap_err().kind,
            IndexErrorKind::BadVersion
        );
        // A minor version change is fine.
        let mut minor = IndexBuilder::new().write();
        minor[7] = 9;
        assert!(Index::parse(&minor).is_ok());
    }

    #[test]
    fn exact_lookups() {
        let bytes = sample();
        let index = Index::parse(&bytes).unwrap();
        // Newest first among equal priorities, in the file and so in lookups.
        assert_eq!(index.lookup(b"snd_pcm").unwrap(), Some(&b"second"[..]));
        assert_eq!(index.values(b"snd_pcm").unwrap().len(), 2);
        assert_eq!(index.lookup(b"snd_pc").unwrap(), None);
        assert_eq!(index.lookup(b"snd_pcmx").unwrap(), None);
        assert_eq!(index.lookup(b"").unwrap(), None);
    }

    #[test]
    fn wildcard_lookups() {
        let bytes = sample();
        let index = Index::parse(&bytes).unwrap();
        let names = |key: &[u8]| -> Vec<&[u8]> {
            index
                .search_wildcard(key)
                .unwrap()
                .iter()
                .map(|v| v.value)
                .collect()
        };
        assert_eq!(
            names(b"pci:v00008086d000010D3sv00001028"),
            [&b"any_vendor"[..], b"e1000e", b"exact"]
        );
        assert_eq!(
            names(b"pci:v00008086d00001111sv1"),
            [&b"any_vendor"[..], b"e1000e"]
        );
        assert_eq!(names(b"usb:v1234p7abc"), [&b"range"[..]]);
        assert!(names(b"usb:v1234pxabc").is_empty());
        assert!(names(b"snd").is_empty());
        // Equal priorities come out reversed from the file's order, as in libkmod.
        assert_eq!(
            names(b"snd_pcm"),
            [&b"kernel/sound/core/snd-pcm.ko.xz:"[..], b"second"]
        );
    }

    #[test]
    fn dump_order() {
        let bytes = sample();
        let index = Index::parse(&bytes).unwrap();
        let keys: Vec<String> = index
            .entries()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} {}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v.value)
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "pci:v0000* any_vendor",
                "pci:v00008086d*sv* e1000e",
                "pci:v00008086d000010D3sv* exact",
                "snd_pcm second",
                "snd_pcm kernel/sound/core/snd-pcm.ko.xz:",
                "usb:v1234p[0-9]* range",
            ]
        );
    }

    #[test]
    fn loops_and_garbage_are_errors() {
        // A root whose only child, for '*', is the root itself.
        let mut bytes = vec![0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1];
        bytes.extend_from_slice(&(12u32 | NODE_CHILDS).to_be_bytes());
        bytes.extend_from_slice(b"**");
        bytes.extend_from_slice(&(12u32 | NODE_CHILDS).to_be_bytes());
        let index = Index::parse(&bytes).unwrap();
        assert_eq!(index.entries().unwrap_err().kind, IndexErrorKind::Loop);
        assert_eq!(
            index.search_wildcard(b"x").unwrap_err().kind,
            IndexErrorKind::Loop
        );
        // An exact lookup is bounded by the key anyway.
        assert_eq!(index.lookup(b"***").unwrap(), None);
        assert_eq!(
            index.lookup(&[b'*'; 100]).unwrap_err().kind,
            IndexErrorKind::Loop
        );

        let good = sample();
        for len in 0..good.len() {
            if let Ok(index) = Index::parse(&good[..len]) {
                let _ = index.entries();
                let _ = index.search_wildcard(b"pci:v00008086d000010D3sv00001028");
                let _ = index.lookup(b"snd_pcm");
            }
        }
        for at in 0..good.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                if let Ok(index) = Index::parse(&bad) {
                    let _ = index.entries();
                    let _ = index.search_wildcard(b"usb:v1234p7abc");
                    let _ = index.lookup(b"snd_pcm");
                }
            }
        }
    }

    /// [`add_values`] gives the order of adding the values one by one, libkmod's way.
    #[test]
    fn add_values_is_adding_one_by_one() {
        let one_by_one = |out: &mut Vec<Value<'static>>, values: &[Value<'static>]| {
            for value in values {
                let at = out
                    .iter()
                    .position(|v| v.priority >= value.priority)
                    .unwrap_or(out.len());
                out.insert(at, *value);
            }
        };
        const NAMES: [&[u8]; 8] = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in 0..120 {
            let mut make = |n: usize| -> Vec<Value<'static>> {
                (0..n)
                    .map(|_| Value {
                        priority: (random() % 5) as u32,
                        value: NAMES[(random() % 8) as usize],
                    })
                    .collect()
            };
            let (first, second) = (make(len % 7), make(len));
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for values in [&first, &second] {
                add_values(&mut ours, values);
                one_by_one(&mut theirs, values);
            }
            assert_eq!(ours, theirs);
        }
    }

    /// One node with 200,000 values (priorities descending, the worst order for adding them one
    /// by one) is read and ordered in well under a second.
    #[test]
    fn many_values_are_ordered_quickly() {
        const COUNT: u32 = 200_000;
        let mut bytes = vec![0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1];
        bytes.extend_from_slice(&(12u32 | NODE_VALUES).to_be_bytes());
        bytes.extend_from_slice(&COUNT.to_be_bytes());
        for i in 0..COUNT {
            bytes.extend_from_slice(&(COUNT - i).to_be_bytes());
            bytes.extend_from_slice(b"m\0");
        }
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let index = Index::parse(&bytes).unwrap();
            let all = index.search_wildcard(b"").unwrap();
            let _ = done.send((
                all.len(),
                all.windows(2).all(|w| w[0].priority < w[1].priority),
            ));
        });
        let (len, sorted) = finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("ordering a node of 200,000 values takes more than 30 s");
        assert_eq!(len, COUNT as usize);
        assert!(sorted);
    }

    /// The budget never cuts a search of a well-formed index short, wildcards in the key
    /// included: the same answers as with no budget at all.
    #[test]
    fn budget_never_limits_well_formed_indexes() {
        let mut builder = IndexBuilder::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for n in 1..24 {
            keys.push(vec![b'*'; n]);
            keys.push([b"a".repeat(n), b"*".to_vec(), b"?".repeat(n)].concat());
            keys.push([b"[ab]*".repeat(n), b"x".to_vec()].concat());
            keys.push(format!("pci:v{n:08X}d*sv*sd*bc*sc*i*").into_bytes());
        }
        for (i, key) in keys.iter().enumerate() {
            builder
                .insert(key, format!("m{i}").as_bytes(), (i % 5) as u32)
                .unwrap();
        }
        let bytes = builder.write();
        let index = Index::parse(&bytes).unwrap();
        let mut queries = keys.clone();
        queries.extend([
            b"".to_vec(),
            b"a".repeat(30),
            b"pci:v00000003d00001234sv0sd0bc0sc0i0".to_vec(),
            b"*?[*?[*?[".to_vec(),
        ]);
        for key in &queries {
            let found = index.search_wildcard(key);
            assert!(found.is_ok(), "{}", String::from_utf8_lossy(key));
            assert!(index.values(key).is_ok());
        }
        assert!(!index.search_wildcard(&[b'*'; 23]).unwrap().is_empty());
    }

    /// A wildcard walk down a 1,000-node chain (keys `*`, `*x`, `*xx`, ...) needs no deep
    /// stack: it is a loop, not a recursion.
    #[test]
    fn deep_wildcard_walks_need_no_stack() {
        let mut builder = IndexBuilder::new();
        let mut key = b"*".to_vec();
        for _ in 0..1000 {
            builder.insert(&key, b"m", 0).unwrap();
            key.push(b'x');
        }
        let bytes = builder.write();
        let found = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let index = Index::parse(&bytes).unwrap();
                index.search_wildcard(&[b'x'; 100]).unwrap().len()
            })
            .unwrap()
            .join()
            .unwrap();
        // `*` followed by 0 ..= 100 `x`s matches 100 `x`s.
        assert_eq!(found, 101);
    }
}
