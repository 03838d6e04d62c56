//! `/proc/kallsyms` text made into an ELF symbol table for gdb
//! (`kmodlab_symbolize::elf_from_kallsyms`): never a panic, never more symbols than lines, and
//! the file it writes is an ELF file the crate's own reader takes.
#![no_main]

use kmodlab_symbolize::{elf_from_kallsyms, DebugFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(out) = elf_from_kallsyms(text) else {
        return;
    };
    assert!(out.symbols >= 1 && out.symbols <= text.lines().count());
    if let Err(e) = DebugFile::from_bytes(std::path::Path::new("kallsyms.elf"), out.elf) {
        panic!("the ELF file does not read back: {e}");
    }
});
