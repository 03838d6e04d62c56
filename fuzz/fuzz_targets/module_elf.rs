//! modprobe's module ELF reader (`kmodlab_kmod::module_elf`) on an arbitrary image: the symbol
//! versions it needs (`__versions`), its exports (`__crc_*` symbols or `__ksymtab_strings`),
//! and the two edits of a forced load (`__versions` and `vermagic=` stripped). Every call must
//! return, never panic, and an edit never changes the image's length.
#![no_main]

use kmodlab_kmod::module_elf::{exports, modversions, strip_section, strip_vermagic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = modversions(data);
    let _ = exports(data);
    let mut image = data.to_vec();
    let _ = strip_section(&mut image, "__versions");
    let _ = strip_vermagic(&mut image);
    assert_eq!(image.len(), data.len());
    // The edited image is read again, as the kernel would be handed it.
    let _ = modversions(&image);
});
