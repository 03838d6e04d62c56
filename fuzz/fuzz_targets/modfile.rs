//! Module files (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`): compression detection, the three
//! decoders, the ELF/modinfo parser and the appended-signature parser (trailer and PKCS#7
//! DER); and the same file opened as the module tools open it (`kmod_file::load`: libkmod's
//! magic check, xz padding, gzip method check, a zstd stream cut short), with every
//! compression and with Debian's; a module without its debug information reads the same. Every
//! call must return, never panic.
#![no_main]

use kmodlab_modfile::kmod_file::{load, Compressions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmodlab_modfile::parse_module_file(data);
    let _ = kmodlab_modfile::parse_signature(data);
    // A module without its debug sections reads the same, and has nothing more to empty.
    if let Some(lean) = kmodlab_modfile::without_debug_info(data) {
        assert_eq!(
            kmodlab_modfile::parse_module(&lean).ok().map(|m| (m.name, m.undefined_symbols)),
            kmodlab_modfile::parse_module(data).ok().map(|m| (m.name, m.undefined_symbols)),
        );
        assert_eq!(kmodlab_modfile::without_debug_info(&lean), None);
    }
    if let Ok(image) = kmodlab_modfile::decompress(data) {
        let _ = kmodlab_modfile::parse_signature(&image);
    }
    for compressions in [Compressions::ALL, Compressions::DEBIAN] {
        if let Ok(image) = load(data, compressions) {
            // Not compressed in a known format: the file as it is.
            if compressions.identify(data) == Ok(kmodlab_modfile::Compression::None) {
                assert_eq!(&*image, data);
            }
        }
    }
});
