//! modinfo's `.modinfo` reader (`kmodlab_kmod::common_modinfo::kmod_elf::modinfo_strings`,
//! libkmod's lenient ELF reader: 32/64-bit, either byte order) on an arbitrary module image.
//! It must return the strings or an errno, never panic.
#![no_main]

use kmodlab_kmod::common_modinfo::kmod_elf::modinfo_strings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(strings) = modinfo_strings(data) {
        // Every string is a slice of the image, without NULs.
        for s in strings {
            assert!(!s.is_empty() && !s.contains(&0));
        }
    }
});
