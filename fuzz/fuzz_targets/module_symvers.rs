//! A `Module.symvers` as depmod reads it for `-E` (`kmodlab_modindex::depmod::parse_symvers`),
//! with and without a symbol prefix. Its lines are also read by a model of kmod's loop (`fgets`,
//! `strtok(" \t")`, the C library's own `strtoull(ver, &end, 16)`): the symbols and the number
//! of messages must be the model's. The symbols, written back, read back the same.
#![no_main]

use kmodlab_modindex::depmod::{parse_symvers, Symbol};
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;

const FILENAME: &str = "/usr/src/linux-headers-fuzz/Module.symvers";

/// kmod's reading of one line (shorter than its buffer): `Some(Ok(symbol))`, `Some(Err(()))`
/// for an invalid version, `None` for a line skipped.
fn model_line(line: &[u8], prefix: u8) -> Option<Result<Symbol, ()>> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let mut words = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let (ver, sym, place) = (words.next()?, words.next()?, words.next()?);
    if place != b"vmlinux" {
        return None;
    }
    let c = CString::new(ver).expect("no NUL in a C string");
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `c` is a NUL-terminated string; `end` is set to point into it.
    let crc = unsafe { libc::strtoull(c.as_ptr(), &mut end, 16) };
    // SAFETY: `end` points into `c`, at its NUL at the latest.
    if unsafe { *end } != 0 {
        return Some(Err(()));
    }
    let name = match sym.split_first() {
        Some((&first, rest)) if prefix != 0 && first == prefix => rest,
        _ => sym,
    };
    Some(Ok(Symbol {
        name: name.to_vec(),
        crc,
    }))
}

fuzz_target!(|data: &[u8]| {
    for prefix in [0, b'_'] {
        let (symbols, diagnostics) = parse_symvers(data, FILENAME, prefix);
        for d in &diagnostics {
            assert!(d.message.starts_with(FILENAME) && d.message.ends_with('\n'));
        }

        // The model, when every line fits depmod's buffer: then fgets gives the lines, each
        // with its newline (which strtok leaves in the last word).
        if data.split(|&b| b == b'\n').all(|l| l.len() < 10_000) {
            let mut expected = Vec::new();
            let mut invalid = 0;
            for line in data.split_inclusive(|&b| b == b'\n') {
                match model_line(line, prefix) {
                    Some(Ok(symbol)) => expected.push(symbol),
                    Some(Err(())) => invalid += 1,
                    None => {}
                }
            }
            assert_eq!(symbols, expected);
            assert_eq!(diagnostics.len(), invalid);
        }

        // Written back as depmod's input, read back.
        if symbols.iter().any(|s| s.name.len() > 10_000) {
            continue;
        }
        let mut text = Vec::new();
        for s in &symbols {
            assert!(!s
                .name
                .iter()
                .any(|&b| matches!(b, b' ' | b'\t' | b'\n' | 0)));
            text.extend_from_slice(format!("0x{:08x}\t", s.crc).as_bytes());
            if prefix != 0 {
                text.push(prefix);
            }
            text.extend_from_slice(&s.name);
            text.extend_from_slice(b"\tvmlinux\tEXPORT_SYMBOL\t\n");
        }
        let (again, messages) = parse_symvers(&text, FILENAME, prefix);
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(again, symbols);
    }
});
