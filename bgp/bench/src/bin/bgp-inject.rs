//! `bgp-inject`: connect to the router under test, bring up one eBGP session and send N
//! distinct IPv4 prefixes packed with `pack_updates`, then stay established (KEEPALIVEs)
//! until killed.
//!
//! Profiles: `uniform` (default), `base + i * 2^(32 - len)` for i in 0..N inside `--space`
//! with one attribute set and an AS path of `--path-len` ASes; `internet`, N prefixes from /8
//! to /24 in 240.0.0.0/4 spread over `--attr-sets` distinct attribute sets (see
//! `workload.rs`).
//! Just before the first UPDATE is written, the wall clock (ns since the epoch) and the
//! target's CPU ticks are written to `--start-file` as `"<ns> <ticks>"`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use brindle_bgp_bench::{
    connect_from, connect_retry, epoch_ns, handshake, keepalive_bytes, parse_v4_net, sample_pids,
    workload,
};
use brindle_bgp_wire::{
    AsPath, Family, Message, Nlri, Origin, PathAttribute, SessionContext, UpdateMsg,
    encode_message, pack_updates,
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
    /// Source address to connect from (default: the kernel's choice).
    #[arg(long)]
    bind: Option<Ipv4Addr>,
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
    /// `uniform` or `internet`.
    #[arg(long, default_value = "uniform")]
    profile: String,
    /// Internet profile: distinct attribute sets.
    #[arg(long, default_value_t = 300_000)]
    attr_sets: u32,
    /// Uniform profile: AS path length (our AS then fillers), for the churn workload.
    #[arg(long, default_value_t = 1)]
    path_len: u32,
}

/// The UPDATEs to send, packed per attribute set, and the number of prefixes.
fn messages(args: &Args, ctx: &SessionContext) -> anyhow::Result<(Vec<Vec<u8>>, usize)> {
    let max = ctx.max_message_len();
    let pack = |attrs: &[PathAttribute], nlri: &[Nlri]| {
        pack_updates(attrs, nlri, ctx, max).map_err(|e| anyhow::anyhow!("pack_updates: {e}"))
    };
    let mut msgs = Vec::new();
    match args.profile.as_str() {
        "uniform" => {
            let nlri = workload::uniform(parse_v4_net(&args.space)?, args.prefix_len, args.count)?;
            let mut path = vec![args.local_as];
            path.extend((1..args.path_len.max(1)).map(|x| 64600 + x));
            let attrs = vec![
                PathAttribute::Origin(Origin::Igp),
                PathAttribute::AsPath(AsPath::from_sequence(path)),
                PathAttribute::NextHop(args.next_hop),
            ];
            msgs = pack(&attrs, &nlri)?;
            Ok((msgs, nlri.len()))
        }
        "internet" => {
            let nlri = workload::internet(args.count)?;
            let mut by_set: std::collections::HashMap<u32, Vec<Nlri>> = Default::default();
            for (i, n) in nlri.iter().enumerate() {
                by_set
                    .entry(workload::internet_set(i as u32, args.attr_sets))
                    .or_default()
                    .push(*n);
            }
            let mut sets: Vec<u32> = by_set.keys().copied().collect();
            sets.sort_unstable();
            for k in sets {
                let attrs = workload::internet_attrs(k, args.local_as, args.next_hop);
                msgs.extend(pack(&attrs, &by_set[&k])?);
            }
            eprintln!(
                "bgp-inject: internet profile, {} attribute sets",
                by_set.len()
            );
            Ok((msgs, nlri.len()))
        }
        o => bail!("unknown profile {o:?}: expected uniform or internet"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.connect_timeout);
    let stream = match args.bind {
        Some(src) => connect_from(src, args.connect, deadline).await?,
        None => connect_retry(args.connect, deadline).await?,
    };
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
    let ctx = sess.ctx.clone();
    let (msgs, count) = messages(&args, &ctx)?;
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
        count,
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
