//! Shared pieces of the `bgp-inject` / `bgp-sink` benchmark helpers: a minimal BGP session
//! (connect, OPEN/KEEPALIVE exchange, framed reads) built on `brindle-bgp-wire`, and
//! `/proc` sampling of the process under test.
//!
//! These are benchmark tools, not a BGP implementation: no FSM, no timers beyond sending
//! KEEPALIVEs, no collision handling. They always connect actively to a passive target.

pub mod workload;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use brindle_bgp_wire::capability::Capability;
use brindle_bgp_wire::{
    Family, Message, OpenMsg, SessionContext, decode_message, encode_message, frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Nanoseconds since the Unix epoch (wall clock, comparable across processes).
pub fn epoch_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// CPU time (utime + stime, in clock ticks) and peak RSS (VmHWM, KiB) of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime in clock ticks (`getconf CLK_TCK`).
    pub cpu_ticks: u64,
    /// VmHWM in KiB.
    pub hwm_kib: u64,
}

/// Read utime + stime and VmHWM of `pid` from `/proc`.
pub fn sample_pid(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // Fields after the parenthesised comm: state is field 3; utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample {
        cpu_ticks: utime + stime,
        hwm_kib,
    })
}

/// Sum of [`sample_pid`] over several processes (FRR: bgpd + zebra).
pub fn sample_pids(pids: &[u32]) -> anyhow::Result<ProcSample> {
    let mut total = ProcSample::default();
    for &pid in pids {
        let s = sample_pid(pid)?;
        total.cpu_ticks += s.cpu_ticks;
        total.hwm_kib += s.hwm_kib;
    }
    Ok(total)
}

/// Connect to `addr`, retrying every 200 ms until `deadline`.
pub async fn connect_retry(addr: SocketAddr, deadline: Instant) -> anyhow::Result<TcpStream> {
    loop {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("connect to {addr}"));
            }
            Err(_) if Instant::now() >= deadline => bail!("connect to {addr}: timed out"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Connect to `to` from source address `src`, retrying every 200 ms until `deadline`.
pub async fn connect_from(
    src: Ipv4Addr,
    to: SocketAddr,
    deadline: Instant,
) -> anyhow::Result<TcpStream> {
    loop {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(std::net::IpAddr::V4(src), 0))
            .with_context(|| format!("bind {src}"))?;
        match tokio::time::timeout(Duration::from_secs(2), sock.connect(to)).await {
            Ok(Ok(s)) => return Ok(s),
            _ if Instant::now() >= deadline => bail!("connect from {src} to {to}: gave up"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Reads whole BGP messages from a socket with one large buffer.
#[derive(Debug)]
pub struct MsgReader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    /// Bytes read from the socket so far.
    pub bytes: u64,
}

impl MsgReader {
    /// Wrap a read half.
    pub fn new(rd: OwnedReadHalf) -> MsgReader {
        MsgReader {
            rd,
            buf: Vec::with_capacity(1 << 20),
            start: 0,
            bytes: 0,
        }
    }

    /// The next whole message (header included), decoded with `ctx`. `Ok(None)` on EOF.
    pub async fn next(&mut self, ctx: &SessionContext) -> anyhow::Result<Option<Message>> {
        loop {
            let avail = self.buf.get(self.start..).unwrap_or_default();
            if let Some(h) = frame(avail, ctx.max_message_len())
                .map_err(|e| anyhow::anyhow!("bad BGP header: {e}"))?
            {
                let raw = avail.get(..h.length).context("framed length")?;
                let msg = decode_message(raw, ctx)
                    .map_err(|e| anyhow::anyhow!("undecodable message: {e}"))?;
                self.start += h.length;
                return Ok(Some(msg.msg));
            }
            // Compact, then read more.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let len = self.buf.len();
            self.buf.resize(len + (256 << 10), 0);
            let n = self
                .rd
                .read(self.buf.get_mut(len..).unwrap_or_default())
                .await?;
            self.buf.truncate(len + n);
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
        }
    }
}

/// An established session: negotiated context, reader and writer halves.
#[derive(Debug)]
pub struct Session {
    /// What the OPENs negotiated.
    pub ctx: SessionContext,
    /// Incoming messages.
    pub reader: MsgReader,
    /// Outgoing bytes.
    pub writer: OwnedWriteHalf,
    /// Negotiated hold time in seconds.
    pub hold_time: u16,
}

/// Send our OPEN (IPv4 unicast, 4-octet AS), read the peer's OPEN, send KEEPALIVE, and wait
/// for the peer's KEEPALIVE. Every step is bounded by `deadline`.
pub async fn handshake(
    stream: TcpStream,
    asn: u32,
    router_id: Ipv4Addr,
    hold_time: u16,
    deadline: Instant,
) -> anyhow::Result<Session> {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = MsgReader::new(rd);
    let local = OpenMsg::new(
        asn,
        hold_time,
        router_id,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    );
    let pre = SessionContext::default();
    let mut out = Vec::new();
    encode_message(&Message::Open(local.clone()), &pre, &mut out)
        .map_err(|e| anyhow::anyhow!("encode OPEN: {e}"))?;
    wr.write_all(&out).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    let remote = match tokio::time::timeout(left, reader.next(&pre)).await {
        Ok(Ok(Some(Message::Open(o)))) => o,
        Ok(Ok(Some(other))) => bail!("expected OPEN, got {other:?}"),
        Ok(Ok(None)) => bail!("connection closed before OPEN"),
        Ok(Err(e)) => return Err(e),
        Err(_) => bail!("timed out waiting for OPEN"),
    };
    let ctx = SessionContext::negotiate(&local, &remote);
    let hold = hold_time.min(remote.hold_time);
    out.clear();
    encode_message(&Message::Keepalive, &ctx, &mut out)
        .map_err(|e| anyhow::anyhow!("encode KEEPALIVE: {e}"))?;
    wr.write_all(&out).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, reader.next(&ctx)).await {
        Ok(Ok(Some(Message::Keepalive))) => {}
        Ok(Ok(Some(other))) => bail!("expected KEEPALIVE, got {other:?}"),
        Ok(Ok(None)) => bail!("connection closed before KEEPALIVE"),
        Ok(Err(e)) => return Err(e),
        Err(_) => bail!("timed out waiting for KEEPALIVE"),
    }
    Ok(Session {
        ctx,
        reader,
        writer: wr,
        hold_time: hold,
    })
}

/// An encoded KEEPALIVE.
pub fn keepalive_bytes() -> Vec<u8> {
    let mut v = Vec::new();
    let _ = encode_message(&Message::Keepalive, &SessionContext::default(), &mut v);
    v
}

/// Parse `a.b.c.d/len`.
pub fn parse_v4_net(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/').context("expected a.b.c.d/len")?;
    Ok((a.parse()?, l.parse()?))
}
