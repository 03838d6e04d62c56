//! Writing the `.bin` index: a compressed trie of 7-bit ASCII keys, each key with a list of
//! values ordered by priority, laid out exactly as kmod 30's depmod lays it out.
//!
//! # The format
//!
//! All integers are 32-bit big-endian. The file starts with the magic `B007F457`, the version
//! `00020001` and the offset of the root node. A node is
//!
//! ```text
//! prefix   NUL-terminated string      (present when the offset has flag 0x80000000)
//! first    u8, last u8                (present when the offset has flag 0x20000000)
//! children u32 offset × (last - first + 1), 0 for no child
//! count    u32                        (present when the offset has flag 0x40000000)
//! values   count × (priority u32, NUL-terminated value)
//! ```
//!
//! and is referred to by its file offset (low 28 bits) ORed with the flags of the fields it
//! has. The child for character `c` continues the key with `c` and then the child's prefix.
//!
//! kmod 30 writes the trie in post-order: every node after all of its children, so the root
//! comes last and the header's root offset points near the end of the file ("root-last").
//! Children are written in character order. Within a node the values are in ascending priority;
//! among equal priorities the value inserted last comes first (kmod inserts a new value before
//! the first one whose priority is not lower).

use std::fmt;

pub(crate) const INDEX_MAGIC: u32 = 0xB007_F457;
pub(crate) const INDEX_VERSION: u32 = 0x0002_0001;
/// Keys and values are 7-bit ASCII: children are indexed by characters below 128.
pub(crate) const INDEX_CHILDMAX: u8 = 128;
pub(crate) const NODE_PREFIX: u32 = 0x8000_0000;
pub(crate) const NODE_VALUES: u32 = 0x4000_0000;
pub(crate) const NODE_CHILDS: u32 = 0x2000_0000;
pub(crate) const NODE_MASK: u32 = 0x0FFF_FFFF;

/// A key or value that is not 7-bit ASCII: the index cannot hold it.
///
/// kmod 30 means to stop with `Module index: bad character` here (its check misses such bytes on
/// platforms where `char` is signed, and what follows is undefined behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonAsciiError {
    /// The offending byte.
    pub byte: u8,
    /// The whole string it is in.
    pub string: Vec<u8>,
}

impl fmt::Display for NonAsciiError {
    /// kmod's wording: `Module index: bad character '\xc3'=0xffffffc3 - only 7-bit ASCII is
    /// supported:` then the string on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kmod prints the character as a signed char promoted to int.
        let shown = i32::from(self.byte as i8) as u32;
        write!(
            f,
            "Module index: bad character '{}'=0x{shown:x} - only 7-bit ASCII is supported:\n{}\n",
            String::from_utf8_lossy(&[self.byte]),
            String::from_utf8_lossy(&self.string)
        )
    }
}

impl std::error::Error for NonAsciiError {}

#[derive(Debug, Clone, Default)]
struct Node {
    prefix: Vec<u8>,
    /// In file order: ascending priority, the newest first among equals.
    values: Vec<(u32, Box<[u8]>)>,
    /// `(character, node)`, sorted by character.
    children: Vec<(u8, u32)>,
}

impl Node {
    fn child(&self, ch: u8) -> Option<u32> {
        self.children
            .binary_search_by_key(&ch, |&(c, _)| c)
            .ok()
            .map(|i| self.children[i].1)
    }

    fn set_child(&mut self, ch: u8, node: u32) {
        match self.children.binary_search_by_key(&ch, |&(c, _)| c) {
            Ok(i) => self.children[i].1 = node,
            Err(i) => self.children.insert(i, (ch, node)),
        }
    }

    /// Adds a value where kmod's `index_add_value` puts it; tells whether the same value was
    /// already there.
    fn add_value(&mut self, value: &[u8], priority: u32) -> bool {
        let duplicate = self.values.iter().any(|(_, v)| &v[..] == value);
        let at = self
            .values
            .iter()
            .position(|&(p, _)| p >= priority)
            .unwrap_or(self.values.len());
        self.values.insert(at, (priority, value.into()));
        duplicate
    }
}

/// An index being built in memory, to be written with [`IndexBuilder::write`].
///
/// ```
/// let mut index = kmodlab_modindex::IndexBuilder::new();
/// index.insert(b"snd_pcm", b"kernel/sound/core/snd-pcm.ko.xz:", 7).unwrap();
/// let bytes = index.write();
/// assert_eq!(&bytes[..4], &[0xB0, 0x07, 0xF4, 0x57]);
/// ```
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    /// Node 0 is the root.
    nodes: Vec<Node>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder::new()
    }
}

fn check_ascii(s: &[u8]) -> Result<(), NonAsciiError> {
    match s.iter().find(|&&b| b >= INDEX_CHILDMAX) {
        Some(&byte) => Err(NonAsciiError {
            byte,
            string: s.to_vec(),
        }),
        None => Ok(()),
    }
}

impl IndexBuilder {
    /// An empty index (a root node with no prefix, no values and no children).
    pub fn new() -> IndexBuilder {
        IndexBuilder {
            nodes: vec![Node::default()],
        }
    }

    /// Adds `value` with `priority` under `key`, as kmod's `index_insert` does, and tells
    /// whether `key` already had this same value (depmod warns about those with `-w`).
    ///
    /// Keys and values must be 7-bit ASCII without NUL bytes (a NUL would end them in the
    /// file); anything else is refused before the index changes.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        priority: u32,
    ) -> Result<bool, NonAsciiError> {
        check_ascii(key)?;
        check_ascii(value)?;
        let mut node = 0usize;
        let mut i = 0usize;
        loop {
            // Make the node's prefix a prefix of the rest of the key, splitting it if needed.
            let prefix_len = self.nodes[node].prefix.len();
            let matched = self.nodes[node]
                .prefix
                .iter()
                .zip(key.get(i..).unwrap_or_default())
                .take_while(|(a, b)| a == b)
                .count();
            if matched < prefix_len {
                let old = std::mem::take(&mut self.nodes[node]);
                let ch = old.prefix[matched];
                let tail = Node {
                    prefix: old.prefix[matched + 1..].to_vec(),
                    values: old.values,
                    children: old.children,
                };
                let tail_index = self.push(tail);
                let head = &mut self.nodes[node];
                head.prefix = old.prefix[..matched].to_vec();
                head.children = vec![(ch, tail_index)];
            }
            i += matched;
            let Some(&ch) = key.get(i) else {
                return Ok(self.nodes[node].add_value(value, priority));
            };
            match self.nodes[node].child(ch) {
                Some(child) => {
                    node = child as usize;
                    i += 1;
                }
                None => {
                    let mut child = Node {
                        prefix: key[i + 1..].to_vec(),
                        ..Node::default()
                    };
                    child.add_value(value, priority);
                    let child_index = self.push(child);
                    self.nodes[node].set_child(ch, child_index);
                    return Ok(false);
                }
            }
        }
    }

    fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    /// The index file, byte for byte as kmod 30 writes it (root-last).
    pub fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.nodes.len() * 16 + 12);
        out.extend_from_slice(&INDEX_MAGIC.to_be_bytes());
        out.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let mut offsets = vec![0u32; self.nodes.len()];
        // Post-order without recursion: (node, how many children are written already).
        let mut stack: Vec<(u32, usize)> = vec![(0, 0)];
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let n = &self.nodes[node as usize];
            if let Some(&(_, child)) = n.children.get(*next) {
                *next += 1;
                stack.push((child, 0));
                continue;
            }
            stack.pop();
            offsets[node as usize] = self.write_node(n, &offsets, &mut out);
        }
        let root = offsets[0].to_be_bytes();
        out[8..12].copy_from_slice(&root);
        out
    }

    fn write_node(&self, node: &Node, offsets: &[u32], out: &mut Vec<u8>) -> u32 {
        let mut offset = out.len() as u32;
        if !node.prefix.is_empty() {
            out.extend_from_slice(&node.prefix);
            out.push(0);
            offset |= NODE_PREFIX;
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last())
        {
            out.push(first);
            out.push(last);
            let mut children = node.children.iter().peekable();
            for ch in first..=last {
                let child = children.next_if(|&&(c, _)| c == ch);
                let at = child.map_or(0, |&(_, index)| offsets[index as usize]);
                out.extend_from_slice(&at.to_be_bytes());
            }
            offset |= NODE_CHILDS;
        }
        if !node.values.is_empty() {
            out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
            for (priority, value) in &node.values {
                out.extend_from_slice(&priority.to_be_bytes());
                out.extend_from_slice(value);
                out.push(0);
            }
            offset |= NODE_VALUES;
        }
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_index_is_a_header_and_an_empty_root() {
        let bytes = IndexBuilder::new().write();
        assert_eq!(
            bytes,
            [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12],
            "the root has no fields, so its offset is the end of the header"
        );
    }

    #[test]
    fn one_key_is_a_root_with_one_child() {
        let mut index = IndexBuilder::new();
        assert_eq!(index.insert(b"ab", b"v", 3), Ok(false));
        let bytes = index.write();
        let mut expected = vec![0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 0];
        // Child for 'a' at 12: prefix "b", one value (3, "v").
        expected.extend_from_slice(b"b\0");
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3, b'v', 0]);
        // Root at 24: children 'a'..'a' → 12 with PREFIX|VALUES flags.
        expected.extend_from_slice(&[b'a', b'a', 0xC0, 0, 0, 12]);
        expected[8..12].copy_from_slice(&(24u32 | NODE_CHILDS).to_be_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn values_by_priority_newest_first_among_equals() {
        let mut index = IndexBuilder::new();
        index.insert(b"k", b"b", 2).unwrap();
        index.insert(b"k", b"a", 1).unwrap();
        index.insert(b"k", b"c", 2).unwrap();
        assert_eq!(index.insert(b"k", b"a", 5), Ok(true));
        let values: Vec<_> = index.nodes[index.nodes[0].child(b'k').unwrap() as usize]
            .values
            .iter()
            .map(|(p, v)| (*p, v.to_vec()))
            .collect();
        assert_eq!(
            values,
            [
                (1, b"a".to_vec()),
                (2, b"c".to_vec()),
                (2, b"b".to_vec()),
                (5, b"a".to_vec())
            ]
        );
    }

    #[test]
    fn splitting_keeps_every_key() {
        let mut index = IndexBuilder::new();
        for (i, key) in ["once", "one", "on", "ask", "ate", "a"].iter().enumerate() {
            index
                .insert(key.as_bytes(), key.as_bytes(), i as u32)
                .unwrap();
        }
        let bytes = index.write();
        let reader = crate::Index::parse(&bytes).unwrap();
        for key in ["once", "one", "on", "ask", "ate", "a"] {
            assert_eq!(
                reader.lookup(key.as_bytes()).unwrap(),
                Some(key.as_bytes()),
                "{key}"
            );
        }
        assert_eq!(reader.lookup(b"o").unwrap(), None);
        assert_eq!(reader.lookup(b"onc").unwrap(), None);
    }

    #[test]
    fn non_ascii_is_refused() {
        let mut index = IndexBuilder::new();
        let e = index.insert("caf\u{e9}".as_bytes(), b"v", 0).unwrap_err();
        assert_eq!(e.byte, 0xc3);
        assert!(e
            .to_string()
            .starts_with("Module index: bad character '\u{fffd}'=0xffffffc3 - only 7-bit"));
        assert!(index.insert(b"k", &[0x80], 0).is_err());
        assert_eq!(index.write(), IndexBuilder::new().write());
    }
}
