//! A syslog(2) buffer or a `dmesg --file` input: `<PRI>[SEC.USEC] [CALLER] MESSAGE` records, one
//! per line (continuation lines do not start with `<`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut total = 0;
    for r in kmodlab_kmsg::syslog_records(data) {
        total += r.message.len();
        assert!(total <= data.len());
    }
});
