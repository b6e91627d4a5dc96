//! Decode every message captured from BIRD, FRR and GoBGP (`tests/fixtures/*.hex`, produced by
//! `tests/capture.rs`) with `brindle_bgp_wire`, and re-encode it: byte for byte where the
//! fixture says the encoding is canonical, to an equal message otherwise.

use brindle_bgp_wire::{SessionContext, decode_message};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn captured_messages_decode_and_reencode() {
    let ctx = SessionContext::four_octet();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    for name in ["bird", "frr", "gobgp"] {
        let path = dir.join(format!("{name}.hex"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut kinds = std::collections::BTreeSet::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        {
            let mut parts = line.split_whitespace();
            let (kind, tag, bytes) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                unhex(parts.next().unwrap_or_default()),
            );
            let d =
                decode_message(&bytes, &ctx).unwrap_or_else(|e| panic!("{name}:{}: {e}", n + 1));
            assert!(d.findings.is_empty(), "{name}:{}: {:?}", n + 1, d.findings);
            let again = d.msg.encode(&ctx).expect("encode");
            if tag == "canonical" {
                assert_eq!(again, bytes, "{name}:{}: re-encoding differs", n + 1);
            } else {
                let d2 = decode_message(&again, &ctx).expect("decode re-encoded");
                assert_eq!(d2.msg, d.msg, "{name}:{}", n + 1);
            }
            kinds.insert(kind.to_string());
            checked += 1;
        }
        assert!(
            kinds.contains("open") && kinds.contains("update"),
            "{name}: {kinds:?}"
        );
    }
    assert!(checked >= 9, "only {checked} messages");
}
