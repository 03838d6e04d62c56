//! Lab specs (`kmodlab.toml`): TOML syntax, then the spec's own checks (regexes, kinds,
//! verdicts, timeouts).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kmodlab_spec::parse("fuzz.toml", text);
    }
});
