//! `bgp-inject`: connect to the router under test, bring up one eBGP session and send N
//! distinct IPv4 prefixes packed with `pack_updates`, then stay established (KEEPALIVEs)
//! until killed.
//!
//! The prefixes are `base + i * 2^(32 - len)` for i in 0..N, all inside `--space`.
//! Just before the first UPDATE is written, the wall clock (ns since the epoch) and the
//! target's CPU ticks are written to `--start-file` as `"<ns> <ticks>"`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use brindle_bgp_bench::{
    connect_retry, epoch_ns, handshake, keepalive_bytes, parse_v4_net, sample_pids,
};
use brindle_bgp_wire::{
    AsPath, Family, Message, Nlri, Origin, PathAttribute, Prefix, UpdateMsg, encode_message,
    pack_updates,
};
use clap::Parser;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
#[command(about = "Inject N IPv4 prefixes into a BGP router (benchmark helper)")]
struct Args {
    /// Router under test, e.g. 198.18.0.2:179.
    #[arg(long)]
    connect: SocketAddr,
    /// Our AS.
    #[arg(long, default_value_t = 65001)]
    local_as: u32,
    /// Our BGP identifier.
    #[arg(long)]
    router_id: Ipv4Addr,
    /// NEXT_HOP of every route (our address on the link).
    #[arg(long)]
    next_hop: Ipv4Addr,
    /// Number of prefixes.
    #[arg(long)]
    count: u32,
    /// Address space the prefixes are carved from.
    #[arg(long, default_value = "240.0.0.0/4")]
    space: String,
    /// Length of every prefix.
    #[arg(long, default_value_t = 24)]
    prefix_len: u8,
    /// Where to write "<epoch ns> <target cpu ticks>" just before the first UPDATE.
    #[arg(long)]
    start_file: PathBuf,
    /// Target processes whose CPU ticks go into the start file (repeatable).
    #[arg(long)]
    target_pid: Vec<u32>,
    /// Hold time we offer.
    #[arg(long, default_value_t = 180)]
    hold_time: u16,
    /// Give up if the session is not up within this many seconds.
    #[arg(long, default_value_t = 60)]
    connect_timeout: u64,
}

fn prefixes(args: &Args) -> anyhow::Result<Vec<Nlri>> {
    let (base, space_len) = parse_v4_net(&args.space)?;
    let len = args.prefix_len;
    if len > 32 || len < space_len {
        bail!("prefix length {len} does not fit in {}", args.space);
    }
    let capacity = 1u64 << (len - space_len);
    if u64::from(args.count) > capacity {
        bail!(
            "{} holds only {capacity} /{len} prefixes, {} asked",
            args.space,
            args.count
        );
    }
    let base = u32::from(base) & (u32::MAX.checked_shl(32 - u32::from(space_len)).unwrap_or(0));
    let step = 1u64 << (32 - len);
    (0..u64::from(args.count))
        .map(|i| {
            let a = u64::from(base) + i * step;
            let a = u32::try_from(a).context("prefix out of range")?;
            Prefix::v4(Ipv4Addr::from(a), len)
                .map(Nlri::new)
                .context("prefix")
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nlri = prefixes(&args)?;
    let deadline = Instant::now() + Duration::from_secs(args.connect_timeout);
    let stream = connect_retry(args.connect, deadline).await?;
    let mut sess = handshake(
        stream,
        args.local_as,
        args.router_id,
        args.hold_time,
        deadline,
    )
    .await
    .context("session with the target")?;
    eprintln!(
        "bgp-inject: established with {} (hold {} s)",
        args.connect, sess.hold_time
    );

    // Everything is encoded before the clock starts: only the router's work is timed.
    let attrs = vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath::from_sequence(vec![args.local_as])),
        PathAttribute::NextHop(args.next_hop),
    ];
    let ctx = sess.ctx.clone();
    let msgs = pack_updates(&attrs, &nlri, &ctx, ctx.max_message_len())
        .map_err(|e| anyhow::anyhow!("pack_updates: {e}"))?;
    let mut eor = Vec::new();
    encode_message(
        &Message::Update(UpdateMsg::end_of_rib_marker(Family::IPV4_UNICAST)),
        &ctx,
        &mut eor,
    )
    .map_err(|e| anyhow::anyhow!("encode End-of-RIB: {e}"))?;
    let total: usize = msgs.iter().map(Vec::len).sum();
    eprintln!(
        "bgp-inject: {} prefixes in {} UPDATEs, {} bytes",
        nlri.len(),
        msgs.len(),
        total
    );

    // Drain whatever the target sends us; a NOTIFICATION or a close ends the benchmark.
    let mut reader = sess.reader;
    let rctx = ctx.clone();
    let reader_task = tokio::spawn(async move {
        loop {
            match reader.next(&rctx).await {
                Ok(Some(Message::Notification(n))) => {
                    return format!("NOTIFICATION {}/{} from target", n.code(), n.subcode());
                }
                Ok(Some(_)) => {}
                Ok(None) => return "target closed the session".to_string(),
                Err(e) => return format!("read error: {e:#}"),
            }
        }
    });

    let cpu0 = sample_pids(&args.target_pid)
        .map(|s| s.cpu_ticks)
        .unwrap_or(0);
    let t0 = epoch_ns();
    std::fs::write(&args.start_file, format!("{t0} {cpu0}\n"))
        .with_context(|| format!("write {}", args.start_file.display()))?;
    let started = Instant::now();
    // 64 messages (~256 KiB) per write call.
    for chunk in msgs.chunks(64) {
        sess.writer.write_all(&chunk.concat()).await?;
    }
    sess.writer.write_all(&eor).await?;
    eprintln!(
        "bgp-inject: all UPDATEs written in {:.3} s (the target may still be reading)",
        started.elapsed().as_secs_f64()
    );

    let ka = keepalive_bytes();
    let period = Duration::from_secs(u64::from(sess.hold_time / 3).max(1));
    let mut tick = tokio::time::interval(period);
    tokio::pin!(reader_task);
    loop {
        tokio::select! {
            _ = tick.tick() => sess.writer.write_all(&ka).await?,
            why = &mut reader_task => {
                let why = why.unwrap_or_else(|e| format!("reader task: {e}"));
                bail!("bgp-inject: {why}");
            }
        }
    }
}
