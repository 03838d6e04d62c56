//! Agent protocol lines (JSON), decoded as the host's numbered requests and as the agent's
//! numbered replies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = kmodlab_proto::decode::<kmodlab_proto::Envelope<kmodlab_proto::Request>>(line);
        let _ = kmodlab_proto::decode::<kmodlab_proto::Envelope<kmodlab_proto::Reply>>(line);
    }
});
