//! kmemleak's report file, read for one module's leaks: every object whose backtrace has a bare
//! address in a made-up module range is kept with that frame named, then parsed as crash reports.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = String::from_utf8_lossy(data);
    let resolve = |addr: u64| -> Option<String> {
        (0xffff_ffff_a000_0000..0xffff_ffff_a000_2000)
            .contains(&addr)
            .then(|| format!("f+{:#x}/0x2000 [m]", addr - 0xffff_ffff_a000_0000))
    };
    let leaks = kmodlab_crash::kmemleak::module_leaks(&report, &resolve);
    let _ = kmodlab_crash::parse_reports(&leaks);
});
