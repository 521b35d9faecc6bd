//! Fuzz target: the WAL record decoder (frame, checksum, then the prost payload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use linggong_server::convert::wal::decode;
use linggong_server::wal::decode_frame;

fuzz_target!(|data: &[u8]| {
    // The payload decoder on raw bytes (as if a corrupted record passed its checksum)...
    let _ = decode(data);
    // ...and the framing on the same bytes, then the payload of any frame found.
    if let Ok(frame) = decode_frame(data) {
        assert!(frame.len <= data.len());
        let _ = decode(frame.payload);
    }
});
