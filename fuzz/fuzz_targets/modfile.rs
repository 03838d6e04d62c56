//! Module files (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`): compression detection, the three
//! decoders and the ELF/modinfo parser. Both calls must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmodlab_modfile::parse_module_file(data);
    let _ = kmodlab_modfile::decompress(data);
});
