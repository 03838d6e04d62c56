//! A `System.map` as depmod reads it for `-F` (`kmodlab_modindex::depmod::parse_system_map`),
//! with and without a symbol prefix: every line is a symbol, a message or skipped, and the
//! symbols found, written back as a `System.map`, read back the same without a message.
#![no_main]

use kmodlab_modindex::depmod::parse_system_map;
use libfuzzer_sys::fuzz_target;

const FILENAME: &str = "/boot/System.map-fuzz";

fuzz_target!(|data: &[u8]| {
    // fgets with depmod's 10240-byte buffer: at most one piece per 10239 bytes or newline.
    let pieces = data.iter().filter(|&&b| b == b'\n').count() + data.len() / 10239 + 1;
    for prefix in [0, b'_'] {
        let (symbols, diagnostics) = parse_system_map(data, FILENAME, prefix);
        assert!(symbols.len() + diagnostics.len() <= pieces);
        for d in &diagnostics {
            assert!(d.message.starts_with(FILENAME) && d.message.ends_with('\n'));
        }
        let mut text = Vec::new();
        for s in &symbols {
            assert!(!s.name.contains(&b'\n') && !s.name.contains(&0));
            assert_eq!(s.crc, 0);
            text.extend_from_slice(b"ffffffff82345678 r ");
            if prefix != 0 {
                text.push(prefix);
            }
            text.extend_from_slice(b"__ksymtab_");
            text.extend_from_slice(&s.name);
            text.push(b'\n');
        }
        // A line longer than the buffer would be read in two pieces.
        if symbols.iter().any(|s| s.name.len() > 10_000) {
            continue;
        }
        let (again, messages) = parse_system_map(&text, FILENAME, prefix);
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(again, symbols);
    }
});
