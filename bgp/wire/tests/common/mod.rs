//! Helpers shared by the integration tests.
#![allow(dead_code)]

use brindle_bgp_wire::{Decoded, Message, SessionContext, decode_message, encode_message};

/// Parse annotated hex: on each line, everything after `//` is a comment; whitespace is
/// ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: String = s
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The 16-octet marker as annotated hex.
pub const MARKER: &str = "ffffffff ffffffff ffffffff ffffffff";

/// Decode `bytes`, check it equals `expected` with no findings, and re-encode to `bytes`.
pub fn round_trip(bytes: &[u8], ctx: &SessionContext, expected: &Message) {
    let Decoded { msg, findings } = decode_message(bytes, ctx).expect("decodes");
    assert_eq!(&msg, expected);
    assert!(findings.is_empty(), "unexpected findings: {findings:?}");
    let mut out = Vec::new();
    encode_message(expected, ctx, &mut out).expect("encodes");
    assert_eq!(out, bytes, "re-encoding differs");
}
