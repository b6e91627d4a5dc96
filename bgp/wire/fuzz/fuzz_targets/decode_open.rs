//! OPEN body decode (no context needed); decoded OPENs must round-trip.
#![no_main]

use brindle_bgp_wire::decode_open;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(open) = decode_open(data) {
        let mut body = Vec::new();
        if open.encode_body(&mut body).is_ok() {
            assert_eq!(decode_open(&body).expect("re-encoded OPEN decodes"), open);
        }
    }
});
