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

/// The fuzz targets' selector byte for a session context (the same bits the targets read).
fn selector(ctx: &SessionContext) -> u8 {
    use brindle_bgp_wire::Family;
    u8::from(ctx.four_octet_as)
        | (u8::from(ctx.extended_message) << 1)
        | (u8::from(ctx.add_path_rx.contains(&Family::IPV4_UNICAST)) << 2)
        | (u8::from(ctx.add_path_rx.contains(&Family::IPV6_UNICAST)) << 3)
}

/// With `BRINDLE_FUZZ_SEEDS=DIR` set, writes a vector as a seed for every fuzz target that can
/// take it (`DIR/<target>/<name>`), in each target's input format. `bash
/// bgp/wire/fuzz/seeds.sh` regenerates the committed seeds this way.
fn seed(bytes: &[u8], ctx: &SessionContext) {
    let Ok(dir) = std::env::var("BRINDLE_FUZZ_SEEDS") else {
        return;
    };
    let sel = selector(ctx);
    let name: String = {
        // A stable name from the content (FNV-1a).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes.iter().chain([sel].iter()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    };
    let put = |target: &str, data: Vec<u8>| {
        let d = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&d).expect("seed dir");
        std::fs::write(d.join(&name), data).expect("seed");
    };
    put("frame", bytes.to_vec());
    put("decode_message", [&[sel][..], bytes].concat());
    if bytes.len() > 19 {
        match bytes[18] {
            1 => put("decode_open", bytes[19..].to_vec()),
            2 => {
                let update_sel = u8::from(ctx.four_octet_as)
                    | (u8::from(
                        ctx.add_path_rx
                            .contains(&brindle_bgp_wire::Family::IPV4_UNICAST),
                    ) << 1)
                    | (u8::from(
                        ctx.add_path_rx
                            .contains(&brindle_bgp_wire::Family::IPV6_UNICAST),
                    ) << 2);
                put("decode_update", [&[update_sel][..], &bytes[19..]].concat())
            }
            _ => {}
        }
    }
}

/// Decode `bytes`, check it equals `expected` with no findings, and re-encode to `bytes`.
pub fn round_trip(bytes: &[u8], ctx: &SessionContext, expected: &Message) {
    seed(bytes, ctx);
    let Decoded { msg, findings } = decode_message(bytes, ctx).expect("decodes");
    assert_eq!(&msg, expected);
    assert!(findings.is_empty(), "unexpected findings: {findings:?}");
    let mut out = Vec::new();
    encode_message(expected, ctx, &mut out).expect("encodes");
    assert_eq!(out, bytes, "re-encoding differs");
}
