//! Module index files (`modules.*.bin`, the trie kmod's depmod writes): the reader on arbitrary
//! bytes (header, exact and wildcard lookups, the dump), and the writer read back by the
//! reader. Every call must return, never panic.
#![no_main]

use kmodlab_modindex::{Index, IndexBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The input as an index file, looked up with a key taken from its last bytes.
    if let Ok(index) = Index::parse(data) {
        let key = &data[data.len().saturating_sub(24)..];
        let _ = index.lookup(key);
        let _ = index.values(key);
        let _ = index.search_wildcard(key);
        if let Ok(entries) = index.entries() {
            for (key, _) in entries.iter().take(16) {
                let _ = index.lookup(key);
                let _ = index.search_wildcard(key);
            }
        }
    }

    // The input as `key<TAB>value` lines (made 7-bit ASCII without NUL): every pair written
    // must be read back.
    let ascii: Vec<u8> = data.iter().map(|&b| (b & 0x7f).max(1)).collect();
    let mut builder = IndexBuilder::new();
    let mut pairs = Vec::new();
    for (i, line) in ascii.split(|&b| b == b'\n').enumerate() {
        let (key, value) = match line.iter().position(|&b| b == b'\t') {
            Some(tab) => (&line[..tab], &line[tab + 1..]),
            None => (line, &b""[..]),
        };
        builder
            .insert(key, value, (i % 4) as u32)
            .expect("7-bit ASCII is accepted");
        pairs.push((key, value));
    }
    let bytes = builder.write();
    let index = Index::parse(&bytes).expect("a written index parses");
    for (key, value) in &pairs {
        let values = index.values(key).expect("a written index reads");
        assert!(values.iter().any(|v| v.value == *value), "lost {key:?} -> {value:?}");
    }
    assert_eq!(index.entries().expect("a written index dumps").len(), pairs.len());
});
