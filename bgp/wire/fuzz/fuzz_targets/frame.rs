//! Framing of a byte stream: split it into messages until more bytes are needed or an error.
#![no_main]

use brindle_bgp_wire::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for max in [MAX_MESSAGE_LEN, MAX_EXTENDED_MESSAGE_LEN] {
        let mut rest = data;
        while let Ok(Some(h)) = frame(rest, max) {
            assert!(h.length >= 19 && h.length <= max && h.length <= rest.len());
            rest = &rest[h.length..];
        }
    }
});
