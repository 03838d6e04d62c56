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
//! Malformed indexes never panic: a node that cannot be read is treated as absent. Nor do they
//! make a search walk forever: node offsets can point back up the trie (a loop), so each search
//! has a budget of work, one unit per node read plus one per byte of it: twice the file's size
//! plus one, times one more than the number of wildcard bytes (`*`, `?`, `[`) in the key. A
//! well-formed index never runs out: its nodes are disjoint byte ranges, so reading each once
//! costs at most twice its size plus one, and a search reads a node more than once only below a
//! wildcard child that the key itself takes, once more for each. A search that runs out reads no
//! more nodes (they count as absent) and returns what it found so far.

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

/// What a search may still read (see the module documentation).
struct Budget(usize);

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
}

/// `values` in the order libkmod's `add_value()` leaves them when it adds them one after
/// another to an empty list, each going before the first value whose priority is not lower:
/// sorted by priority, and among equal priorities the one added last first. That is a stable
/// sort by priority of the values in reverse, which takes O(n log n) where adding them one by
/// one took O(n²) (a crafted index with many values spent seconds there).
fn as_added(mut values: Vec<IndexValue>) -> Vec<IndexValue> {
    values.reverse();
    values.sort_by_key(|v| v.priority);
    values
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

    /// The budget of a search for `key`.
    fn budget(&self, key: &[u8]) -> Budget {
        let wildcards = key
            .iter()
            .filter(|&&c| matches!(c, b'*' | b'?' | b'['))
            .count();
        let once = self.data.len().saturating_mul(2).saturating_add(1);
        Budget(once.saturating_mul(wildcards + 1))
    }

    /// The node at `offset`, paid for from `budget`; `None` when there is none, it cannot be
    /// read or the budget is spent.
    fn node(&self, offset: u32, budget: &mut Budget) -> Option<Node<'_>> {
        let data = &self.data;
        let start = usize::try_from(offset & OFFSET_MASK).ok()?;
        if start == 0 || budget.0 == 0 {
            return None;
        }
        let mut at = start;
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
                values.push(IndexValue {
                    value: value.to_vec(),
                    priority,
                });
            }
        }
        let values = as_added(values);
        let cost = 1 + (at - start);
        if cost > budget.0 {
            budget.0 = 0;
            return None;
        }
        budget.0 -= cost;
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
        self.search_in(key, &mut self.budget(key))
    }

    fn search_in(&self, key: &[u8], budget: &mut Budget) -> Option<Vec<u8>> {
        let mut node = self.node(self.root, budget)?;
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
            node = self.node(node.child(ch), budget)?;
            i += 1;
        }
    }

    /// Every value of every key that matches `key`, where the stored keys may hold wildcards
    /// (`*`, `?`, `[...]`, as `fnmatch()` reads them), in libkmod's order
    /// (`index_searchwild()`): by priority, ties in the order libkmod's walk meets them.
    pub fn search_wild(&self, key: &[u8]) -> Vec<IndexValue> {
        self.search_wild_in(key, &mut self.budget(key))
    }

    fn search_wild_in(&self, key: &[u8], budget: &mut Budget) -> Vec<IndexValue> {
        as_added(self.wild_values(key, budget))
    }

    /// The values [`Index::search_wild`] returns, in the order it meets them.
    fn wild_values(&self, key: &[u8], budget: &mut Budget) -> Vec<IndexValue> {
        let mut out = Vec::new();
        let mut pattern = Vec::new();
        let Some(mut node) = self.node(self.root, budget) else {
            return out;
        };
        let mut i = 0;
        loop {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if matches!(ch, b'*' | b'?' | b'[') {
                    let subkey = key.get(i + j..).unwrap_or_default();
                    self.wild_all(node, j, &mut pattern, subkey, &mut out, budget);
                    return out;
                }
                if key.get(i + j) != Some(&ch) {
                    return out;
                }
            }
            i += node.prefix.len();
            let subkey = key.get(i..).unwrap_or_default();
            for wildcard in [b'*', b'?', b'['] {
                if let Some(child) = self.node(node.child(wildcard), budget) {
                    pattern.push(wildcard);
                    self.wild_all(child, 0, &mut pattern, subkey, &mut out, budget);
                    pattern.pop();
                }
            }
            let Some(&ch) = key.get(i) else {
                out.extend(node.values);
                return out;
            };
            match self.node(node.child(ch), budget) {
                Some(child) => node = child,
                None => return out,
            }
            i += 1;
        }
    }

    /// Below a wildcard: every key of the subtree of `node` (whose prefix from `from` on is
    /// still to be appended to `pattern`), matched whole against `subkey`; children first, in
    /// byte order, then the node's own values. A walk with an explicit stack, at most 4096 nodes
    /// deep (a well-formed trie is as deep as its longest key; a loop in a corrupt one is not).
    fn wild_all(
        &self,
        node: Node<'_>,
        from: usize,
        pattern: &mut Vec<u8>,
        subkey: &[u8],
        out: &mut Vec<IndexValue>,
        budget: &mut Budget,
    ) {
        /// A node being walked: the next child byte to visit, and the length of `pattern`
        /// before the node's part of it.
        struct Frame<'n> {
            node: Node<'n>,
            next: usize,
            restore: usize,
        }
        let restore = pattern.len();
        pattern.extend_from_slice(node.prefix.get(from..).unwrap_or_default());
        let mut stack = vec![Frame {
            node,
            next: 0,
            restore,
        }];
        while let Some(frame) = stack.last_mut() {
            if frame.next < frame.node.children.len() {
                let i = frame.next;
                frame.next += 1;
                let Ok(ch) = u8::try_from(usize::from(frame.node.first) + i) else {
                    continue;
                };
                let offset = frame.node.child(ch);
                if stack.len() > 4096 {
                    continue;
                }
                if let Some(child) = self.node(offset, budget) {
                    let restore = pattern.len();
                    pattern.push(ch);
                    pattern.extend_from_slice(child.prefix);
                    stack.push(Frame {
                        node: child,
                        next: 0,
                        restore,
                    });
                }
                continue;
            }
            let Some(frame) = stack.pop() else { break };
            if !frame.node.values.is_empty() && fnmatch(pattern, subkey) {
                out.extend(frame.node.values.iter().cloned());
            }
            pattern.truncate(frame.restore);
        }
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

    /// A root whose children for `*` ..= `?` (22 of them) are all the root itself: every walk
    /// below a wildcard branched 22 ways at each of 4096 levels, and never ended. With the
    /// budget it reads a couple of nodes.
    fn cyclic() -> Index {
        let mut data = Vec::new();
        data.extend(MAGIC.to_be_bytes());
        data.extend(0x0002_0001u32.to_be_bytes());
        let root = 12 | FLAG_CHILDREN;
        data.extend(root.to_be_bytes());
        data.push(b'*');
        data.push(b'?');
        for _ in b'*'..=b'?' {
            data.extend(root.to_be_bytes());
        }
        Index::parse(data).unwrap()
    }

    #[test]
    fn cyclic_trie_searches_end() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let index = cyclic();
            let found = (
                index.search_wild(b"x"),
                index.search_wild(b"***"),
                index.search(&[b'*'; 4000]),
            );
            let _ = done.send(found);
        });
        let (wild, wild_stars, exact) = finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a search of a cyclic index walks forever");
        assert!(wild.is_empty() && wild_stars.is_empty() && exact.is_none());
    }

    /// The budget never cuts a search of a well-formed index short, wildcards in the key
    /// included (a search reads nodes again below the wildcard children the key takes).
    #[test]
    fn budget_never_limits_well_formed_indexes() {
        let mut builder = kmodlab_modindex::IndexBuilder::new();
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
        let index = Index::parse(builder.write()).unwrap();
        let unlimited = || Budget(usize::MAX);
        let mut queries = keys.clone();
        queries.extend([
            b"".to_vec(),
            b"a".repeat(30),
            b"pci:v00000003d00001234sv0sd0bc0sc0i0".to_vec(),
            b"*?[*?[*?[".to_vec(),
        ]);
        for key in &queries {
            let mut budget = index.budget(key);
            let wild = index.search_wild_in(key, &mut budget);
            assert!(budget.0 > 0, "{}", String::from_utf8_lossy(key));
            assert_eq!(wild, index.search_wild_in(key, &mut unlimited()));
            let mut budget = index.budget(key);
            let exact = index.search_in(key, &mut budget);
            assert!(budget.0 > 0);
            assert_eq!(exact, index.search_in(key, &mut unlimited()));
        }
        assert!(!index.search_wild(&[b'*'; 23]).is_empty());
    }

    /// A wildcard walk down a 1,000-node chain (keys `*`, `*x`, `*xx`, ...) needs no deep
    /// stack: it is a loop, not a recursion (a recursion 4,096 deep overflowed a thread's
    /// stack).
    #[test]
    fn deep_wildcard_walks_need_no_stack() {
        let mut builder = kmodlab_modindex::IndexBuilder::new();
        let mut key = b"*".to_vec();
        for _ in 0..1000 {
            builder.insert(&key, b"m", 0).unwrap();
            key.push(b'x');
        }
        let index = Index::parse(builder.write()).unwrap();
        let found = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || index.search_wild(&[b'x'; 100]).len())
            .unwrap()
            .join()
            .unwrap();
        // `*` followed by 0 ..= 100 `x`s matches 100 `x`s.
        assert_eq!(found, 101);
    }

    /// [`as_added`] gives the order of adding the values one by one, libkmod's way.
    #[test]
    fn as_added_is_adding_one_by_one() {
        let one_by_one = |values: &[IndexValue]| {
            let mut out: Vec<IndexValue> = Vec::new();
            for value in values {
                let at = out
                    .iter()
                    .position(|v| v.priority >= value.priority)
                    .unwrap_or(out.len());
                out.insert(at, value.clone());
            }
            out
        };
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200 {
            let values: Vec<IndexValue> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    IndexValue {
                        value: format!("v{i}").into_bytes(),
                        priority: (seed % 5) as u32,
                    }
                })
                .collect();
            assert_eq!(as_added(values.clone()), one_by_one(&values));
        }
    }

    /// One node with 200,000 values (priorities descending, the worst order for adding them one
    /// by one): sorting them took O(n²) per read, minutes here, found by the `modinfo_index`
    /// fuzz target as inputs of a few KiB taking seconds.
    #[test]
    fn many_values_are_sorted_quickly() {
        const COUNT: u32 = 200_000;
        let mut data = Vec::new();
        data.extend(MAGIC.to_be_bytes());
        data.extend(0x0002_0001u32.to_be_bytes());
        data.extend((12 | FLAG_VALUES).to_be_bytes());
        data.extend(COUNT.to_be_bytes());
        for i in 0..COUNT {
            data.extend((COUNT - i).to_be_bytes());
            data.extend(b"m\0");
        }
        let index = Index::parse(data).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send((index.search(b""), index.search_wild(b"")));
        });
        let (first, all) = finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("reading a node of 200,000 values takes more than 30 s");
        assert_eq!(first.as_deref(), Some(&b"m"[..]));
        assert_eq!(all.len(), COUNT as usize);
        assert!(all.windows(2).all(|w| w[0].priority < w[1].priority));
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
