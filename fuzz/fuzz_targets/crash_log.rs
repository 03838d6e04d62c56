//! Kernel console logs: the whole-log parser, and the streaming scanner fed the same lines one
//! at a time as a live console would.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let log = String::from_utf8_lossy(data);
    let _ = kmodlab_crash::parse_reports(&log);

    let mut scanner = kmodlab_crash::Scanner::new();
    for line in log.split('\n') {
        let _ = scanner.push_line(line);
        let _ = scanner.in_report();
    }
    let _ = scanner.finish();
});
