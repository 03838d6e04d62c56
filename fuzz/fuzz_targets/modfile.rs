//! Module files (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`): compression detection, the three
//! decoders, the ELF/modinfo parser and the appended-signature parser (trailer and PKCS#7
//! DER). Every call must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmodlab_modfile::parse_module_file(data);
    let _ = kmodlab_modfile::parse_signature(data);
    if let Ok(image) = kmodlab_modfile::decompress(data) {
        let _ = kmodlab_modfile::parse_signature(&image);
    }
});
