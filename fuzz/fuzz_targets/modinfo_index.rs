//! modinfo's index reader (`kmodlab_kmod::common_modinfo::index`, libkmod's file-based reader
//! with its result order) on arbitrary bytes: the header, exact lookups (`modules.dep.bin`,
//! `modules.builtin.bin`) and wildcard lookups (`modules.alias.bin`), with keys taken from the
//! input. Every call must return, never panic; a trie whose offsets loop must not walk forever.
#![no_main]

use kmodlab_kmod::common_modinfo::index::Index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(index) = Index::parse(data.to_vec()) else {
        return;
    };
    // Keys: the input's last bytes, and the same cut at its first NUL (a key as a string).
    let tail = &data[data.len().saturating_sub(24)..];
    let cut = &tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())];
    for key in [tail, cut, &b"*"[..], b""] {
        let _ = index.search(key);
        let _ = index.search_wild(key);
    }
});
