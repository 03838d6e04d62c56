//! A `modules.builtin.modinfo` (NUL-terminated `MODULE.KEY=VALUE` strings): depmod turning it
//! into `modules.builtin.alias.bin` (`kmodlab_modindex::depmod::modules_builtin_alias_bin`),
//! the index read back (`Index::parse`, `entries`, `values`) and built again from what it holds,
//! which must give the same pairs; and modinfo's lookup of a built-in module's strings
//! (`kmodlab_kmod::kmod_context::fuzz_builtin_modinfo`), whose strings must be the module's.
#![no_main]

use kmodlab_kmod::kmod_context::fuzz_builtin_modinfo;
use kmodlab_modindex::depmod::modules_builtin_alias_bin;
use kmodlab_modindex::Index;
use libfuzzer_sys::fuzz_target;

/// The `(alias, module)` pairs of an index, sorted.
fn pairs(index: &Index) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs: Vec<_> = index
        .entries()
        .expect("a written index dumps")
        .into_iter()
        .map(|(key, value)| (key, value.value.to_vec()))
        .collect();
    pairs.sort();
    pairs
}

fuzz_target!(|data: &[u8]| {
    // depmod.
    match modules_builtin_alias_bin(data) {
        Err(_) => assert!(!data.is_ascii()),
        Ok((bin, diagnostics)) => {
            assert!(diagnostics.iter().all(|d| d.message.ends_with('\n')));
            let index = Index::parse(&bin).expect("a written index parses");
            let found = pairs(&index);
            let mut again = Vec::new();
            for (alias, module) in &found {
                assert!(!alias.is_empty() && !alias.contains(&0));
                assert!(!module.is_empty() && !module.contains(&0) && !module.contains(&b'.'));
                let values = index.values(alias).expect("a written index reads");
                assert!(values.iter().any(|v| v.value == &module[..]));
                again.extend_from_slice(&[&module[..], b".alias=", alias, b"\0"].concat());
            }
            // What the index holds, written as modules.builtin.modinfo, gives the same index.
            let (bin, messages) = modules_builtin_alias_bin(&again).expect("ASCII");
            assert!(messages.is_empty(), "{messages:?}");
            let index = Index::parse(&bin).expect("a written index parses");
            assert_eq!(pairs(&index), found);
        }
    }

    // modinfo, for the module of the first string and for a name from the input's end.
    let strings: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let complete = &strings[..strings.len() - 1];
    let first = complete
        .first()
        .and_then(|s| s.iter().position(|&b| b == b'.').map(|dot| &s[..dot]));
    let tail = &data[data.len().saturating_sub(8)..];
    for name in first.into_iter().chain([tail, &b"x"[..]]) {
        let mut logged = Vec::new();
        match fuzz_builtin_modinfo(data, name, &mut |m| logged.push(m.to_vec())) {
            Ok(found) => {
                assert!(!found.is_empty());
                // Each string is one of the file's, without `MODULE.`.
                for s in &found {
                    let whole = [name, b".", s].concat();
                    assert!(
                        complete.contains(&&whole[..]),
                        "{whole:?} is not in the file"
                    );
                }
            }
            Err(errno) => assert_eq!(errno, libc::ENOSYS),
        }
        // The walk stops at the first string without a module name, logged once.
        assert!(logged.len() <= 1);
        if first == Some(name) {
            // The first group of strings is always found.
            assert!(fuzz_builtin_modinfo(data, name, &mut |_| {}).is_ok());
        }
    }
});
