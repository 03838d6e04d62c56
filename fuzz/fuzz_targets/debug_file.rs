//! Module files for symbolization: ELF sections, symbols, relocations and DWARF of a .ko (or a
//! vmlinux), then a lookup and a disassembly of the first function found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = kmodlab_symbolize::DebugFile::from_bytes(Path::new("fuzz.ko"), data.to_vec())
    else {
        return;
    };
    let _ = file.module_name();
    let _ = file.has_debug_info();
    for name in ["init_module", "cleanup_module", "my_oops_init"] {
        let _ = file.function_size(name);
        let _ = file.locate(name, 0x15, true, Some(0x30));
        let _ = file.locate(name, 0, false, None);
        let _ = file.disassemble_function(name, Some(0x15));
    }
});
