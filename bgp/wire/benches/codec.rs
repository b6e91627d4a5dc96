//! Codec throughput: 1M IPv4 /24s packed into 4 KiB UPDATEs sharing one attribute set (encode
//! with the builder, decode with framing + `decode_message`), and a churn stream of many
//! attribute sets with few prefixes each. Figures are recorded in `benches/README.md`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use brindle_bgp_wire::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PREFIXES: u32 = 1_000_000;

fn prefixes(n: u32, base: u32) -> Vec<Nlri> {
    (0..n)
        .map(|i| Nlri::new(Prefix::v4(Ipv4Addr::from(base + (i << 8)), 24).unwrap()))
        .collect()
}

fn attrs(i: u32) -> Vec<PathAttribute> {
    vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath::from_sequence(vec![
            65000,
            65001 + (i % 50),
            4_200_000_000 + i,
        ])),
        PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
        PathAttribute::MultiExitDisc(i),
        PathAttribute::Communities(vec![
            Community::new(65000, (i % 65536) as u16),
            Community::NO_EXPORT,
        ]),
        PathAttribute::LargeCommunities(vec![LargeCommunity {
            global_admin: 65000,
            local_data1: i,
            local_data2: 7,
        }]),
    ]
}

/// Decode a stream of concatenated messages; returns (messages, prefixes).
fn decode_stream(stream: &[u8], ctx: &SessionContext) -> (usize, usize) {
    let (mut msgs, mut pfx) = (0, 0);
    let mut rest = stream;
    while let Some(h) = frame(rest, ctx.max_message_len()).unwrap() {
        let (m, tail) = rest.split_at(h.length);
        let d = decode_message(m, ctx).unwrap();
        if let Message::Update(u) = d.msg {
            pfx += u.nlri.len() + u.withdrawn.len();
        }
        msgs += 1;
        rest = tail;
    }
    (msgs, pfx)
}

fn bench(c: &mut Criterion) {
    let ctx = SessionContext::four_octet();
    let all = prefixes(PREFIXES, 0x0100_0000);
    let shared = attrs(0);
    let msgs = pack_updates(&shared, &all, &ctx, 4096).unwrap();
    let stream: Vec<u8> = msgs.concat();
    eprintln!(
        "bulk: {} UPDATEs, {} octets, {:.0} prefixes per message",
        msgs.len(),
        stream.len(),
        f64::from(PREFIXES) / msgs.len() as f64
    );

    let mut g = c.benchmark_group("bulk_1M_ipv4_24");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(u64::from(PREFIXES)));
    g.bench_function("encode_pack_updates", |b| {
        b.iter(|| pack_updates(black_box(&shared), black_box(&all), &ctx, 4096).unwrap())
    });
    g.bench_function("decode_stream", |b| {
        b.iter(|| decode_stream(black_box(&stream), &ctx))
    });
    g.bench_function("encode_withdrawals", |b| {
        b.iter(|| pack_withdrawals(Family::IPV4_UNICAST, black_box(&all), &ctx, 4096).unwrap())
    });
    g.finish();

    // Churn: 10,000 attribute sets with 10 prefixes each.
    let sets: Vec<(Vec<PathAttribute>, Vec<Nlri>)> = (0..10_000u32)
        .map(|i| (attrs(i), prefixes(10, 0x0100_0000 + i * 10 * 256)))
        .collect();
    let churn: Vec<u8> = sets
        .iter()
        .flat_map(|(a, p)| pack_updates(a, p, &ctx, 4096).unwrap())
        .flatten()
        .collect();
    let mut g = c.benchmark_group("churn_10k_sets_x10");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("encode", |b| {
        b.iter(|| {
            sets.iter()
                .map(|(a, p)| pack_updates(a, p, &ctx, 4096).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode_stream(black_box(&churn), &ctx))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
