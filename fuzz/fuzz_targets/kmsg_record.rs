//! One `/dev/kmsg` record (`PRIO,SEQ,TS,FLAGS[,caller=..];MESSAGE\n KEY=VALUE\n...`), as one
//! `read(2)` returns it, or one NUL-separated record of a `dmesg --kmsg-file` input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = kmodlab_kmsg::parse_record(data) {
        // The message never holds more bytes than the record.
        assert!(r.message.len() <= data.len());
        let _ = r.text();
    }
});
