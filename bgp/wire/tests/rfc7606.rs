//! RFC 7606 (and RFC 4271 §6) malformation table: each row is an input and the treatment the
//! decoder must choose. UPDATE rows give the body (after the header); header rows give the
//! whole message.

mod common;

use brindle_bgp_wire::{
    Decoded, Error, Family, Message, SessionContext, decode_message, decode_update,
};
use common::{MARKER, hex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Decodes with no findings.
    Clean,
    /// Session reset with this code/subcode.
    Reset(u8, u8),
    /// At least one treat-as-withdraw finding.
    Withdraw,
    /// Attribute discard findings only.
    Discard,
}

#[derive(Debug, Clone, Copy)]
enum Ctx {
    Two,
    Four,
}

impl Ctx {
    fn get(self) -> SessionContext {
        match self {
            Ctx::Two => SessionContext::default(),
            Ctx::Four => SessionContext::four_octet(),
        }
    }
}

const ORIGIN: &str = "40 01 01 00";
const AS_PATH: &str = "40 02 00";
const NEXT_HOP: &str = "40 03 04 0a000001";
const NLRI: &str = "18 0a0000";

/// Build an UPDATE body from withdrawn routes, attributes and NLRI (annotated hex).
fn body(w: &str, a: &str, n: &str) -> Vec<u8> {
    let (w, a, n) = (hex(w), hex(a), hex(n));
    let mut b = Vec::new();
    b.extend((w.len() as u16).to_be_bytes());
    b.extend(w);
    b.extend((a.len() as u16).to_be_bytes());
    b.extend(a);
    b.extend(n);
    b
}

/// Mandatory attributes plus `extra`.
fn with_base(extra: &str) -> String {
    format!("{ORIGIN} {AS_PATH} {NEXT_HOP} {extra}")
}

fn classify(r: &Result<Decoded<brindle_bgp_wire::UpdateMsg>, Error>) -> Expect {
    match r {
        Err(Error::SessionReset { notification, .. }) => {
            Expect::Reset(notification.code(), notification.subcode())
        }
        Err(e) => panic!("unexpected error kind {e:?}"),
        Ok(d) if d.findings.is_empty() => Expect::Clean,
        Ok(d) if d.treat_as_withdraw() => Expect::Withdraw,
        Ok(_) => Expect::Discard,
    }
}

#[test]
fn update_malformations() {
    use Expect::*;
    let mp6 = "80 0e 1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8";
    let rows: Vec<(&str, Ctx, Vec<u8>, Expect)> = vec![
        // ---- lengths of the UPDATE fields (RFC 4271 §6.3, RFC 7606 §4) ----
        (
            "withdrawn length overruns the message",
            Ctx::Four,
            hex("0010 0a"),
            Reset(3, 1),
        ),
        (
            "total attribute length overruns the message",
            Ctx::Four,
            hex("0000 0020 40010100"),
            Reset(3, 1),
        ),
        ("body of one octet", Ctx::Four, hex("00"), Reset(3, 1)),
        (
            "body without total attribute length",
            Ctx::Four,
            hex("0000"),
            Reset(3, 1),
        ),
        (
            "attribute overruns the attribute section",
            Ctx::Four,
            body("", &format!("{} 80 04 08 0000", with_base("")), NLRI),
            Withdraw,
        ),
        (
            "two octets left in the attribute section",
            Ctx::Four,
            body("", &with_base("80 04"), NLRI),
            Withdraw,
        ),
        (
            "extended-length header truncated",
            Ctx::Four,
            body("", &with_base("90 04 00"), NLRI),
            Withdraw,
        ),
        // ---- NLRI syntax (RFC 7606 §5.3) ----
        (
            "withdrawn prefix length 33",
            Ctx::Four,
            body("21 0a000000 00", "", ""),
            Reset(3, 10),
        ),
        (
            "NLRI prefix length 33",
            Ctx::Four,
            body("", &with_base(""), "21 0a000000 00"),
            Reset(3, 10),
        ),
        (
            "NLRI prefix overruns",
            Ctx::Four,
            body("", &with_base(""), "18 0a00"),
            Reset(3, 10),
        ),
        (
            "MP_REACH IPv6 prefix length 129",
            Ctx::Four,
            body(
                "",
                &format!(
                    "{ORIGIN} {AS_PATH} 80 0e 1a 0002 01 10 20010db8000000000000000000000001 00 81 20010db8"
                ),
                "",
            ),
            Reset(3, 10),
        ),
        (
            "MP_UNREACH prefix overruns",
            Ctx::Four,
            body("", "80 0f 05 0002 01 40 20", ""),
            Reset(3, 10),
        ),
        // ---- MP attributes (RFC 7606 §3 g, §7.11) ----
        (
            "duplicate MP_REACH_NLRI",
            Ctx::Four,
            body("", &format!("{ORIGIN} {AS_PATH} {mp6} {mp6}"), ""),
            Reset(3, 1),
        ),
        (
            "duplicate MP_UNREACH_NLRI",
            Ctx::Four,
            body("", "80 0f 03 0002 01 80 0f 03 0002 01", ""),
            Reset(3, 1),
        ),
        (
            "MP_REACH IPv6 next hop length 5",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} {AS_PATH} 80 0e 0a 0002 01 05 2001 0db8 00 00 00"),
                "",
            ),
            Reset(3, 9),
        ),
        (
            "MP_REACH IPv6 next hop length 4",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} {AS_PATH} 80 0e 09 0002 01 04 0a000001 00"),
                "",
            ),
            Reset(3, 9),
        ),
        (
            "MP_REACH shorter than its header",
            Ctx::Four,
            body("", "80 0e 02 0002", ""),
            Reset(3, 9),
        ),
        (
            "MP_REACH next hop overruns",
            Ctx::Four,
            body("", "80 0e 05 0002 01 10 00", ""),
            Reset(3, 9),
        ),
        (
            "MP_REACH with well-known flags",
            Ctx::Four,
            body(
                "",
                &format!(
                    "{ORIGIN} {AS_PATH} 40 0e 1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8"
                ),
                "",
            ),
            Reset(3, 4),
        ),
        (
            "MP_REACH for a family not enabled",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} {AS_PATH} 80 0e 0b 0001 02 04 0a000001 00 08 0a"),
                "",
            ),
            Discard,
        ),
        // ---- unknown attributes (RFC 4271 §6.3) ----
        (
            "unrecognized well-known attribute",
            Ctx::Four,
            body("", &with_base("40 63 01 00"), NLRI),
            Reset(3, 2),
        ),
        (
            "unknown optional attribute kept",
            Ctx::Four,
            body("", &with_base("c0 63 01 00"), NLRI),
            Clean,
        ),
        // ---- duplicates (RFC 7606 §3 g) ----
        (
            "duplicate ORIGIN",
            Ctx::Four,
            body("", &with_base("40 01 01 01"), NLRI),
            Discard,
        ),
        (
            "duplicate COMMUNITIES",
            Ctx::Four,
            body("", &with_base("c0 08 04 00000001 c0 08 04 00000002"), NLRI),
            Discard,
        ),
        // ---- ORIGIN (§7.1) ----
        (
            "ORIGIN length 2",
            Ctx::Four,
            body("", &format!("40 01 02 0000 {AS_PATH} {NEXT_HOP}"), NLRI),
            Withdraw,
        ),
        (
            "ORIGIN value 3",
            Ctx::Four,
            body("", &format!("40 01 01 03 {AS_PATH} {NEXT_HOP}"), NLRI),
            Withdraw,
        ),
        (
            "ORIGIN flagged optional",
            Ctx::Four,
            body("", &format!("c0 01 01 00 {AS_PATH} {NEXT_HOP}"), NLRI),
            Withdraw,
        ),
        // ---- AS_PATH (§7.2) ----
        (
            "AS_PATH segment type 5",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} 40 02 06 05 01 0000fde8 {NEXT_HOP}"),
                NLRI,
            ),
            Withdraw,
        ),
        (
            "AS_PATH zero-length segment",
            Ctx::Four,
            body("", &format!("{ORIGIN} 40 02 02 02 00 {NEXT_HOP}"), NLRI),
            Withdraw,
        ),
        (
            "AS_PATH segment overruns",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} 40 02 06 02 02 0000fde8 {NEXT_HOP}"),
                NLRI,
            ),
            Withdraw,
        ),
        (
            "AS_PATH trailing octet",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} 40 02 07 02 01 0000fde8 00 {NEXT_HOP}"),
                NLRI,
            ),
            Withdraw,
        ),
        (
            "AS_PATH 2-octet path on 4-octet session",
            Ctx::Four,
            body(
                "",
                &format!("{ORIGIN} 40 02 04 02 01 fde8 {NEXT_HOP}"),
                NLRI,
            ),
            Withdraw,
        ),
        // ---- other well-known and optional attributes ----
        (
            "NEXT_HOP length 5",
            Ctx::Four,
            body("", &format!("{ORIGIN} {AS_PATH} 40 03 05 0a00000100"), NLRI),
            Withdraw,
        ),
        (
            "MED length 3",
            Ctx::Four,
            body("", &with_base("80 04 03 000000"), NLRI),
            Withdraw,
        ),
        (
            "MED flagged well-known",
            Ctx::Four,
            body("", &with_base("40 04 04 00000000"), NLRI),
            Withdraw,
        ),
        (
            "LOCAL_PREF length 2",
            Ctx::Four,
            body("", &with_base("40 05 02 0000"), NLRI),
            Withdraw,
        ),
        (
            "ATOMIC_AGGREGATE length 1",
            Ctx::Four,
            body("", &with_base("40 06 01 00"), NLRI),
            Discard,
        ),
        (
            "ATOMIC_AGGREGATE flagged optional",
            Ctx::Four,
            body("", &with_base("c0 06 00"), NLRI),
            Discard,
        ),
        (
            "AGGREGATOR length 7 (4-octet)",
            Ctx::Four,
            body("", &with_base("c0 07 07 0000fde8 0a0000"), NLRI),
            Discard,
        ),
        (
            "AGGREGATOR length 8 (2-octet)",
            Ctx::Two,
            body("", &with_base("c0 07 08 0000fde8 0a000001"), NLRI),
            Discard,
        ),
        (
            "COMMUNITIES empty",
            Ctx::Four,
            body("", &with_base("c0 08 00"), NLRI),
            Withdraw,
        ),
        (
            "COMMUNITIES length 5",
            Ctx::Four,
            body("", &with_base("c0 08 05 0000000100"), NLRI),
            Withdraw,
        ),
        (
            "ORIGINATOR_ID length 3",
            Ctx::Four,
            body("", &with_base("80 09 03 0a0000"), NLRI),
            Withdraw,
        ),
        (
            "CLUSTER_LIST length 6",
            Ctx::Four,
            body("", &with_base("80 0a 06 0a0000010a00"), NLRI),
            Withdraw,
        ),
        (
            "EXTENDED_COMMUNITIES length 7",
            Ctx::Four,
            body("", &with_base("c0 10 07 00020000000000"), NLRI),
            Withdraw,
        ),
        (
            "LARGE_COMMUNITIES length 13",
            Ctx::Four,
            body("", &with_base("c0 20 0d 00000001000000020000000300"), NLRI),
            Withdraw,
        ),
        (
            "AS4_PATH malformed",
            Ctx::Two,
            body("", &with_base("c0 11 03 02 01 00"), NLRI),
            Discard,
        ),
        (
            "AS4_PATH with confederation segment",
            Ctx::Two,
            body("", &with_base("c0 11 06 03 01 0000fde8"), NLRI),
            Discard,
        ),
        (
            "AS4_PATH on a 4-octet session",
            Ctx::Four,
            body("", &with_base("c0 11 06 02 01 0000fde8"), NLRI),
            Discard,
        ),
        (
            "AS4_AGGREGATOR length 6",
            Ctx::Two,
            body("", &with_base("c0 12 06 fde8 0a000001"), NLRI),
            Discard,
        ),
        // ---- missing well-known attributes (§3 d) ----
        (
            "missing ORIGIN",
            Ctx::Four,
            body("", &format!("{AS_PATH} {NEXT_HOP}"), NLRI),
            Withdraw,
        ),
        (
            "missing AS_PATH",
            Ctx::Four,
            body("", &format!("{ORIGIN} {NEXT_HOP}"), NLRI),
            Withdraw,
        ),
        (
            "missing NEXT_HOP with IPv4 NLRI",
            Ctx::Four,
            body("", &format!("{ORIGIN} {AS_PATH}"), NLRI),
            Withdraw,
        ),
        (
            "no attributes at all with NLRI",
            Ctx::Four,
            body("", "", NLRI),
            Withdraw,
        ),
        (
            "missing ORIGIN with MP_REACH only",
            Ctx::Four,
            body("", &format!("{AS_PATH} {mp6}"), ""),
            Withdraw,
        ),
        (
            "NEXT_HOP not needed with MP_REACH only",
            Ctx::Four,
            body("", &format!("{ORIGIN} {AS_PATH} {mp6}"), ""),
            Clean,
        ),
        (
            "attributes without NLRI need nothing",
            Ctx::Four,
            body("", "c0 08 04 00000001", ""),
            Clean,
        ),
        ("withdrawal only", Ctx::Four, body(NLRI, "", ""), Clean),
    ];
    assert!(rows.len() >= 25);
    let mut failures = Vec::new();
    for (name, ctx, bytes, want) in &rows {
        let got = classify(&decode_update(bytes, &ctx.get()));
        if got != *want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn treat_as_withdraw_still_returns_the_nlri() {
    // AS_PATH malformed, classic NLRI and MP_REACH NLRI present.
    let b = body(
        "",
        &format!(
            "{ORIGIN} 40 02 02 02 00 {NEXT_HOP} \
             80 0e 1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8"
        ),
        "18 0a0000 18 0a0001",
    );
    let d = decode_update(&b, &SessionContext::four_octet()).unwrap();
    assert!(d.treat_as_withdraw());
    let announced: Vec<_> = d.msg.announced().map(|(f, n)| (f, n.prefix)).collect();
    assert_eq!(announced.len(), 3);
    assert_eq!(announced[2].0, Family::IPV6_UNICAST);
    let reason = d.findings[0].to_string();
    assert!(
        reason.contains("AS_PATH") && reason.contains("byte"),
        "{reason}"
    );
}

#[test]
fn attribute_overrun_keeps_nlri_via_total_length() {
    let b = body("", &format!("{} 80 04 08 0000", with_base("")), NLRI);
    let d = decode_update(&b, &SessionContext::four_octet()).unwrap();
    assert!(d.treat_as_withdraw());
    assert_eq!(d.msg.nlri.len(), 1);
}

#[test]
fn discard_removes_only_the_attribute() {
    let b = body("", &with_base("40 06 01 00 c0 08 04 00000001"), NLRI);
    let d = decode_update(&b, &SessionContext::four_octet()).unwrap();
    assert!(!d.treat_as_withdraw());
    assert_eq!(d.findings.len(), 1);
    assert!(matches!(d.findings[0], Error::AttributeDiscard { .. }));
    assert_eq!(d.msg.attributes.len(), 4); // ORIGIN, AS_PATH, NEXT_HOP, COMMUNITIES
    assert!(
        d.findings[0]
            .to_string()
            .contains("ATOMIC_AGGREGATE (type 6)")
    );
}

#[test]
fn reset_data_carries_the_attribute() {
    let b = body("", &with_base("40 63 01 00"), NLRI);
    let e = decode_update(&b, &SessionContext::four_octet()).unwrap_err();
    assert_eq!(e.notification().unwrap().data, hex("40 63 01 00"));
}

fn msg(rest: &str) -> Vec<u8> {
    let mut v = hex(MARKER);
    v.extend(hex(rest));
    v
}

#[test]
fn message_level_malformations() {
    let rows: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        (
            "marker not all ones",
            {
                let mut m = msg("0013 04");
                m[0] = 0xfe;
                m
            },
            (1, 1),
        ),
        ("length below 19", msg("0012 04"), (1, 2)),
        ("length above 4096", msg("1001 02"), (1, 2)),
        ("unknown type 6", msg("0013 06"), (1, 3)),
        ("KEEPALIVE with a body", msg("0014 04 00"), (1, 2)),
        (
            "OPEN shorter than 29",
            msg("001c 01 04 fde8 00b4 0a000001"),
            (1, 2),
        ),
        ("UPDATE shorter than 23", msg("0016 02 000000"), (1, 2)),
        ("NOTIFICATION shorter than 21", msg("0014 03 06"), (1, 2)),
        (
            "ROUTE-REFRESH of 24 octets",
            msg("0018 05 0001 00 01 00"),
            (7, 1),
        ),
        (
            "OPEN version 3",
            msg("001d 01 03 fde8 00b4 0a000001 00"),
            (2, 1),
        ),
        (
            "OPEN hold time 2",
            msg("001d 01 04 fde8 0002 0a000001 00"),
            (2, 6),
        ),
        (
            "OPEN identifier 0",
            msg("001d 01 04 fde8 00b4 00000000 00"),
            (2, 3),
        ),
        (
            "OPEN unknown optional parameter",
            msg("0020 01 04 fde8 00b4 0a000001 03 01 01 00"),
            (2, 4),
        ),
        (
            "OPEN parameter length inconsistent",
            msg("001f 01 04 fde8 00b4 0a000001 05 02 00"),
            (2, 0),
        ),
        (
            "OPEN capability overruns",
            msg("0021 01 04 fde8 00b4 0a000001 04 02 02 01 08"),
            (2, 0),
        ),
        (
            "OPEN 4-octet AS capability length 2",
            msg("0023 01 04 fde8 00b4 0a000001 06 02 04 41 02 0000"),
            (2, 0),
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, (code, sub)) in &rows {
        match decode_message(bytes, &SessionContext::default()) {
            Err(Error::SessionReset { notification, .. })
                if notification.code() == *code && notification.subcode() == *sub => {}
            other => failures.push(format!("{name}: want {code}/{sub}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Data of 1/2 is the bad length; of 2/1 the supported version.
    let e = decode_message(&msg("0012 04"), &SessionContext::default()).unwrap_err();
    assert_eq!(e.notification().unwrap().data, vec![0x00, 0x12]);
    let e = decode_message(
        &msg("001d 01 03 fde8 00b4 0a000001 00"),
        &SessionContext::default(),
    )
    .unwrap_err();
    assert_eq!(e.notification().unwrap().data, vec![0x00, 0x04]);
    let _ = Message::Keepalive;
}
