//! Fuzz target: the snapshot decoder, with checksums bypassed by re-sealing the
//! input so the body decoder (MessagePack) and the engine's restore checks are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linggong_server::snapshot::{decode_snapshot, seal_snapshot_body};

fuzz_target!(|data: &[u8]| {
    let _ = decode_snapshot(data);
    // Wrap the input as a body with a valid header and checksum.
    let sealed = seal_snapshot_body(0, data);
    if let Ok((_, snap)) = decode_snapshot(&sealed) {
        let _ = linggong_server::state::ServiceState::restore(Default::default(), snap, 16);
    }
});
