//! depmod's configuration (`kmodlab_modindex::config`): the input as a `depmod.d` file, split
//! into logical lines and parsed. What was read is written back as a `depmod.d` file, which
//! must read back to the same configuration without a message.
#![no_main]

use kmodlab_modindex::config::{logical_lines, DepmodConfig, Search};
use libfuzzer_sys::fuzz_target;

const FILENAME: &str = "/etc/depmod.d/fuzz.conf";
const KVERSION: &[u8] = b"6.12.95+deb12-amd64";

/// A word as it must be written for kmod's line reader to give it back: a backslash escaped.
fn escaped(word: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(word.len());
    for &b in word {
        if b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn is_word(word: &[u8]) -> bool {
    !word.is_empty() && !word.iter().any(|&b| matches!(b, b' ' | b'\t' | b'\n' | 0))
}

fuzz_target!(|data: &[u8]| {
    // Logical lines: one per newline that is not escaped (and one for an unterminated last
    // line), numbered in increasing order, never more bytes than the file.
    let lines = logical_lines(data);
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    assert!(lines.len() <= newlines + 1);
    assert!(lines.windows(2).all(|w| w[0].1 < w[1].1));
    assert!(lines.last().is_none_or(|l| l.1 as usize <= newlines + 1));
    assert!(lines.iter().map(|l| l.0.len()).sum::<usize>() <= data.len());
    assert!(lines.iter().all(|l| !l.0.contains(&b'\n')));
    if !data.contains(&b'\\') {
        // Without backslashes the lines are the file's lines.
        let mut joined: Vec<u8> = lines
            .iter()
            .flat_map(|l| [&l.0[..], b"\n"].concat())
            .collect();
        if !data.ends_with(b"\n") {
            joined.pop();
        }
        assert_eq!(joined, data);
    }

    let mut config = DepmodConfig::default();
    let mut diagnostics = Vec::new();
    config.parse(FILENAME, data, KVERSION, &mut diagnostics);
    for d in &diagnostics {
        assert!(d.message.starts_with(FILENAME) && d.message.ends_with('\n'));
    }
    for path in &config.overrides {
        assert!(path.contains(&b'/') && path.len() >= 3);
    }
    assert!(config.externals.iter().all(|w| is_word(w)));
    assert!(config.excludes.iter().all(|w| is_word(w)));

    // Written back (lists are newest first: oldest written first), read back.
    let mut text = Vec::new();
    for search in config.searches.iter().rev() {
        let word = match search {
            Search::BuiltIn => b"built-in".to_vec(),
            Search::External => b"external".to_vec(),
            Search::Path(path) => {
                assert!(is_word(path));
                assert!(path != b"built-in" && path != b"external");
                escaped(path)
            }
        };
        text.extend_from_slice(b"search ");
        text.extend_from_slice(&word);
        text.push(b'\n');
    }
    for path in config.overrides.iter().rev() {
        // SUBDIR/MODNAME, both non-empty: split at a slash that leaves two words.
        let slash = (1..path.len() - 1)
            .find(|&i| path[i] == b'/')
            .expect("an override path has a slash between two words");
        let (subdir, modname) = (&path[..slash], &path[slash + 1..]);
        text.extend_from_slice(b"override ");
        text.extend_from_slice(&escaped(modname));
        text.extend_from_slice(b" * ");
        text.extend_from_slice(&escaped(subdir));
        text.push(b'\n');
    }
    for dir in config.externals.iter().rev() {
        text.extend_from_slice(b"external * ");
        text.extend_from_slice(&escaped(dir));
        text.push(b'\n');
    }
    for name in config.excludes.iter().rev() {
        text.extend_from_slice(b"exclude ");
        text.extend_from_slice(&escaped(name));
        text.push(b'\n');
    }
    let mut again = DepmodConfig::default();
    let mut messages = Vec::new();
    again.parse(FILENAME, &text, KVERSION, &mut messages);
    assert!(messages.is_empty(), "{messages:?} reading back {text:?}");
    assert_eq!(again, config, "reading back {text:?}");

    config.finish();
    assert!(!config.searches.is_empty());
});
