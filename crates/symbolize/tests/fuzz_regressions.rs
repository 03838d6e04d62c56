//! Inputs the fuzzer (`fuzz/fuzz_targets/debug_file.rs`) found panicking, replayed as it calls
//! them: each must come back with a result or an error, never a panic.

use kmodlab_symbolize::DebugFile;
use std::path::Path;

#[test]
fn fuzz_found_files_do_not_panic() {
    // A symbol at an address near u64::MAX: the disassembler's line lookup overflowed.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["fuzz-disasm-overflow.bin"] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let Ok(file) = DebugFile::from_bytes(Path::new(name), data) else {
            continue;
        };
        for f in ["init_module", "cleanup_module", "my_oops_init"] {
            let _ = file.function_size(f);
            let _ = file.locate(f, 0x15, true, Some(0x30));
            let _ = file.locate(f, 0, false, None);
            let _ = file.disassemble_function(f, Some(0x15));
        }
    }
}
