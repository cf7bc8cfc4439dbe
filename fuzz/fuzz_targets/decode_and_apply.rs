//! Fuzz target: any bytes, split into lines, through the decoder, the fast-path/general-path
//! agreement check, and the book. Nothing may panic; the fast path may never disagree.
#![no_main]

use hft_connector::normalizer::Normalizer;
use hft_connector::protocol::ws::{decode, decode_general, decode_line, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut normalizer = Normalizer::new(Some(5));
    let mut events = Vec::new();
    for line in text.lines() {
        let decoded = decode(line);
        assert_eq!(decoded, decode_general(line), "fast path disagrees on {line:?}");
        if let Ok(Frame::Unknown(raw)) = decoded {
            assert_eq!(raw, line);
        }
        if let Ok(received) = decode_line(line) {
            events.clear();
            normalizer.push(&received, &mut events);
            for e in &events {
                let _ = e.to_json();
            }
        }
    }
});
