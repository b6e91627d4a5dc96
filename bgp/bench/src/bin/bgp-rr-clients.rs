//! `bgp-rr-clients`: the route-reflector workload. Brings up `--sessions` iBGP sessions to the
//! router under test, one per source address (`--source-base` + s), each announcing its own
//! `--per-session` prefixes; the router reflects them, so every client must end up with every
//! other client's prefixes. The moment all have them, samples the router's CPU time and peak
//! RSS and prints one `result` line (the format of `bgp-sink`). Exit status 2 on timeout.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use brindle_bgp_bench::{
    Session, connect_from, epoch_ns, handshake, keepalive_bytes, parse_v4_net, sample_pids,
    workload,
};
use brindle_bgp_wire::{AsPath, Message, Origin, PathAttribute, Prefix, pack_updates};
use clap::Parser;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

#[derive(Debug, Parser)]
#[command(about = "Route-reflector clients for the BGP benchmark")]
struct Args {
    #[arg(long)]
    connect: SocketAddr,
    #[arg(long, default_value_t = 65002)]
    local_as: u32,
    #[arg(long, default_value_t = 100)]
    sessions: u32,
    #[arg(long)]
    source_base: Ipv4Addr,
    #[arg(long, default_value_t = 1000)]
    per_session: u32,
    #[arg(long, default_value = "240.0.0.0/4")]
    space: String,
    #[arg(long, default_value_t = 24)]
    prefix_len: u8,
    #[arg(long)]
    start_file: PathBuf,
    #[arg(long)]
    target_pid: Vec<u32>,
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.sessions;
    let per = args.per_session;
    let all = workload::uniform(parse_v4_net(&args.space)?, args.prefix_len, n * per)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    let mut sessions: Vec<(Ipv4Addr, Session)> = Vec::new();
    for s in 0..n {
        let src = Ipv4Addr::from(u32::from(args.source_base) + s);
        let stream = connect_from(src, args.connect, deadline).await?;
        let sess = handshake(stream, args.local_as, src, 180, deadline)
            .await
            .with_context(|| format!("session from {src}"))?;
        sessions.push((src, sess));
    }
    eprintln!("bgp-rr-clients: {n} sessions established");

    let want = ((n - 1) * per) as usize;
    let done = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(Notify::new());
    let mut writes = Vec::new();
    for (s, (src, sess)) in sessions.into_iter().enumerate() {
        let attrs = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::NextHop(src),
            PathAttribute::LocalPref(100),
        ];
        let mine = &all[s * per as usize..(s + 1) * per as usize];
        let msgs = pack_updates(&attrs, mine, &sess.ctx, sess.ctx.max_message_len())
            .map_err(|e| anyhow::anyhow!("pack_updates: {e}"))?;
        let ctx = sess.ctx.clone();
        let mut reader = sess.reader;
        let (done, received, notify) = (done.clone(), received.clone(), notify.clone());
        tokio::spawn(async move {
            let mut have: HashSet<Prefix> = HashSet::with_capacity(want);
            let mut counted = false;
            while let Ok(Some(m)) = reader.next(&ctx).await {
                if let Message::Update(u) = m {
                    for (_, x) in u.withdrawals() {
                        have.remove(&x.prefix);
                    }
                    for (_, x) in u.announced() {
                        have.insert(x.prefix);
                    }
                    if !counted && have.len() >= want {
                        counted = true;
                        received.fetch_add(have.len() as u64, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::AcqRel);
                        notify.notify_one();
                    }
                }
            }
        });
        writes.push((sess.writer, msgs.concat()));
    }

    let cpu0 = sample_pids(&args.target_pid)
        .map(|s| s.cpu_ticks)
        .unwrap_or(0);
    let t0 = epoch_ns();
    std::fs::write(&args.start_file, format!("{t0} {cpu0}\n"))?;
    let mut writers = Vec::new();
    for (mut w, bytes) in writes {
        writers.push(tokio::spawn(async move {
            let _ = w.write_all(&bytes).await;
            let ka = keepalive_bytes();
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                if w.write_all(&ka).await.is_err() {
                    return;
                }
            }
        }));
    }
    let ok = tokio::time::timeout_at(deadline.into(), async {
        while done.load(Ordering::Acquire) < n as usize {
            notify.notified().await;
        }
    })
    .await
    .is_ok();
    let t1 = epoch_ns();
    let sample = sample_pids(&args.target_pid);
    for w in writers {
        w.abort();
    }
    let tck = args.clk_tck.max(1) as f64;
    let (cpu, hwm) = match sample {
        Ok(s) => (
            format!("{:.2}", s.cpu_ticks.saturating_sub(cpu0) as f64 / tck),
            format!("{:.1}", s.hwm_kib as f64 / 1024.0),
        ),
        Err(_) => ("-".into(), "-".into()),
    };
    println!(
        "result status={} count={} elapsed_s={:.3} first_update_s=- cpu_s={cpu} rss_hwm_mib={hwm} clients_done={}",
        if ok { "ok" } else { "timeout" },
        received.load(Ordering::Relaxed),
        (t1 - t0) as f64 / 1e9,
        done.load(Ordering::Acquire),
    );
    if !ok {
        std::process::exit(2);
    }
    Ok(())
}
