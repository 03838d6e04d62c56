//! One `/dev/kmsg` record (`PRIO,SEQ,TS,FLAGS[,caller=..];MESSAGE\n KEY=VALUE\n...`), as one
//! `read(2)` returns it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmodlab_kmsg::parse_record(data);
});
