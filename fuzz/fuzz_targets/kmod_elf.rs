//! The module ELF reader of the module tools (`kmodlab_modfile::kmod_elf::KmodElf`, libkmod's
//! lenient reader: 32/64-bit, either byte order) on an arbitrary uncompressed module image:
//! the `.modinfo` strings (modinfo, depmod), the symbol versions (`__versions`), the exports
//! (`__crc_*` symbols or `__ksymtab_strings`) and the needed symbols (depmod), and the two
//! edits of a forced load (`__versions` and `vermagic=` stripped). Every call must return an
//! answer or an errno, never panic; strings are non-empty without NULs, and an edit never
//! changes the image's length.
#![no_main]

use kmodlab_modfile::kmod_elf::KmodElf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut elf) = KmodElf::new(data) else {
        return;
    };
    if let Ok(strings) = elf.strings(b".modinfo") {
        for s in strings {
            assert!(!s.is_empty() && !s.contains(&0));
        }
    }
    let _ = elf.section(b"__ksymtab_strings");
    let _ = elf.modversions();
    let _ = elf.symbols();
    let _ = elf.dependency_symbols();
    let _ = elf.strip_section(b"__versions");
    let _ = elf.strip_vermagic();
    assert_eq!(elf.image().len(), data.len());
    // The edited image is read again, as the kernel would be handed it.
    let _ = elf.modversions();
});
