//! `Code:` lines of crash reports: hex bytes with the faulting one marked, decoded as x86_64.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let _ = kmodlab_symbolize::parse_code_line(&line);
    let _ = kmodlab_symbolize::disassemble_code_line(&line);
});
