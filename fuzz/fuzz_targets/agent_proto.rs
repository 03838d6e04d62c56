//! Agent protocol lines (JSON), decoded as the host's numbered requests and as the agent's
//! numbered replies, with the base64 payloads of file contents and shell sessions; and the lines
//! an attaching kmodlab shell sends.
#![no_main]

use kmodlab_proto::{AttachMessage, Envelope, Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        if let Ok(r) = kmodlab_proto::decode::<Envelope<Request>>(line) {
            if let Request::Put { data, .. } | Request::Input { data, .. } = r.body {
                let _ = kmodlab_proto::base64_decode(&data);
            }
        }
        if let Ok(r) = kmodlab_proto::decode::<Envelope<Reply>>(line) {
            if let Reply::Output { data, .. } = r.body {
                let _ = kmodlab_proto::base64_decode(&data);
            }
        }
        if let Ok(AttachMessage::Data { data }) = kmodlab_proto::decode::<AttachMessage>(line) {
            let _ = kmodlab_proto::base64_decode(&data);
        }
    }
});
