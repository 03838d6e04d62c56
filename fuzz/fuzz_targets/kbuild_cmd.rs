//! Kbuild's `.cmd` records (`savedcmd_T := ...`, `source_T`, `deps_T := \ ...`, rules with
//! `$(VAR)` and `$(wildcard ...)`), read for the targets and prerequisites that decide whether
//! `make` may be skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = kmodlab_kbuild::fresh::record_prerequisites(&text);
});
