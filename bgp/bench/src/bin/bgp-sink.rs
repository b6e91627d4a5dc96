//! `bgp-sink`: peer with the router under test, count the distinct IPv4 prefixes it
//! advertises (announcements minus withdrawals) and, the moment all `--count` are present,
//! sample the target's CPU time and peak RSS, print one `result` line and exit.
//!
//! The elapsed time runs from the injector's first UPDATE (its `--start-file`) to the
//! moment the last missing prefix arrives here. Exit status 2 on timeout.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use brindle_bgp_bench::{connect_retry, epoch_ns, handshake, keepalive_bytes, sample_pids};
use brindle_bgp_wire::{Message, Prefix};
use clap::Parser;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
#[command(about = "Count prefixes received from a BGP router (benchmark helper)")]
struct Args {
    /// Router under test, e.g. 198.18.0.5:179.
    #[arg(long)]
    connect: SocketAddr,
    /// Our AS.
    #[arg(long, default_value_t = 65003)]
    local_as: u32,
    /// Our BGP identifier.
    #[arg(long)]
    router_id: Ipv4Addr,
    /// Prefixes to wait for.
    #[arg(long)]
    count: usize,
    /// The injector's start file ("<epoch ns> <cpu ticks>").
    /// Injectors' start files (repeatable; the earliest start counts).
    #[arg(long)]
    start_file: Vec<PathBuf>,
    /// Created once the session is established (the script then starts the injector).
    #[arg(long)]
    ready_file: PathBuf,
    /// Target processes to sample (repeatable; CPU and VmHWM are summed).
    #[arg(long)]
    target_pid: Vec<u32>,
    /// Clock ticks per second (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Give up after this many seconds (session setup included).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Hold time we offer.
    #[arg(long, default_value_t = 180)]
    hold_time: u16,
    /// Churn workload: K phases. In phase j a prefix counts only while its path comes from
    /// injector j (the second AS of the path is `--as-base` + j); when all `--count` do, the
    /// sink writes `<ready-file>.phase<j>` and moves on. Done after phase K - 1.
    #[arg(long, default_value_t = 0)]
    phases: u32,
    /// Churn workload: the first injector's AS.
    #[arg(long, default_value_t = 65101)]
    as_base: u32,
}

#[derive(Debug, Default)]
struct Counts {
    present: HashSet<Prefix>,
    updates: u64,
    announced: u64,
    withdrawn: u64,
    first_update_ns: Option<u128>,
}

fn read_start(path: &PathBuf) -> Option<(u128, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The earliest start of several injectors.
fn read_starts(paths: &[PathBuf]) -> Option<(u128, u64)> {
    paths.iter().filter_map(read_start).min_by_key(|s| s.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let stream = connect_retry(args.connect, deadline).await?;
    let sess = handshake(
        stream,
        args.local_as,
        args.router_id,
        args.hold_time,
        deadline,
    )
    .await
    .context("session with the target")?;
    std::fs::write(&args.ready_file, "established\n")?;
    eprintln!(
        "bgp-sink: established with {} (hold {} s)",
        args.connect, sess.hold_time
    );

    let mut writer = sess.writer;
    let period = Duration::from_secs(u64::from(sess.hold_time / 3).max(1));
    let keepalives = tokio::spawn(async move {
        let ka = keepalive_bytes();
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if writer.write_all(&ka).await.is_err() {
                return;
            }
        }
    });

    let ctx = sess.ctx;
    let mut reader = sess.reader;
    let phases = args.phases;
    let mut phase = 0u32;
    // Whether an announcement counts: always, unless it is not from this phase's injector.
    let wanted = |phase: u32, path: Option<&brindle_bgp_wire::AsPath>| -> bool {
        phases == 0
            || path.and_then(|a| {
                a.segments
                    .iter()
                    .flat_map(|s| s.asns.iter())
                    .nth(1)
                    .copied()
            }) == Some(args.as_base + phase)
    };
    let mut c = Counts {
        present: HashSet::with_capacity(args.count),
        ..Counts::default()
    };
    let outcome: anyhow::Result<bool> = tokio::time::timeout_at(deadline.into(), async {
        loop {
            if c.present.len() >= args.count {
                if phases == 0 || phase + 1 >= phases {
                    break;
                }
                let f = format!("{}.phase{phase}", args.ready_file.display());
                std::fs::write(&f, "done\n")?;
                phase += 1;
                c.present.clear();
            }
            match reader.next(&ctx).await? {
                Some(Message::Update(u)) => {
                    c.updates += 1;
                    if c.first_update_ns.is_none() && !u.nlri.is_empty() {
                        c.first_update_ns = Some(epoch_ns());
                    }
                    for (_, n) in u.withdrawals() {
                        c.withdrawn += 1;
                        c.present.remove(&n.prefix);
                    }
                    let path = u.as_path();
                    for (_, n) in u.announced() {
                        c.announced += 1;
                        if wanted(phase, path) {
                            c.present.insert(n.prefix);
                        } else {
                            c.present.remove(&n.prefix);
                        }
                    }
                }
                Some(Message::Notification(n)) => {
                    anyhow::bail!("NOTIFICATION {}/{} from target", n.code(), n.subcode())
                }
                Some(_) => {}
                None => anyhow::bail!("target closed the session"),
            }
        }
        Ok(true)
    })
    .await
    .unwrap_or(Ok(false));
    let done_ns = epoch_ns();
    // Sample first: this is "the moment the receiver has all N".
    let sample = sample_pids(&args.target_pid);
    keepalives.abort();

    let start = read_starts(&args.start_file);
    let secs = |a: u128, b: u128| (b.saturating_sub(a)) as f64 / 1e9;
    let (elapsed, first) = match start {
        Some((t0, _)) => (
            format!("{:.3}", secs(t0, done_ns)),
            c.first_update_ns
                .map(|f| format!("{:.3}", secs(t0, f)))
                .unwrap_or_else(|| "-".into()),
        ),
        None => ("-".into(), "-".into()),
    };
    let tck = args.clk_tck.max(1) as f64;
    let (cpu, cpu_total, hwm) = match (&sample, start) {
        (Ok(s), Some((_, c0))) => (
            format!("{:.2}", s.cpu_ticks.saturating_sub(c0) as f64 / tck),
            format!("{:.2}", s.cpu_ticks as f64 / tck),
            format!("{:.1}", s.hwm_kib as f64 / 1024.0),
        ),
        (Ok(s), None) => (
            "-".into(),
            format!("{:.2}", s.cpu_ticks as f64 / tck),
            format!("{:.1}", s.hwm_kib as f64 / 1024.0),
        ),
        (Err(_), _) => ("-".into(), "-".into(), "-".into()),
    };
    let status = match &outcome {
        Ok(true) => "ok".to_string(),
        Ok(false) => "timeout".to_string(),
        Err(e) => format!("error:{}", e.to_string().replace(' ', "_")),
    };
    println!(
        "result status={status} count={} elapsed_s={elapsed} first_update_s={first} cpu_s={cpu} \
         cpu_total_s={cpu_total} rss_hwm_mib={hwm} updates={} announced={} withdrawn={} bytes={}",
        c.present.len(),
        c.updates,
        c.announced,
        c.withdrawn,
        reader.bytes
    );
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(2),
        Err(e) => Err(e),
    }
}
