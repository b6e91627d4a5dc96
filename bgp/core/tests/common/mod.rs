//! Shared test helpers: configuration shorthands, a single-speaker driver that plays the
//! neighbor by hand, and a simulated network that wires several speakers together through
//! the real wire encoder and decoder.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use brindle_bgp_core::*;
use brindle_bgp_wire::{
    Capability, Family, Message, OpenMsg, Prefix, SessionContext, UpdateMsg, decode_message,
    encode_message, frame,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

pub fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').expect("prefix");
    let l: u8 = l.parse().expect("len");
    match a.parse::<IpAddr>().expect("addr") {
        IpAddr::V4(a) => Prefix::v4(a, l).expect("v4"),
        IpAddr::V6(a) => Prefix::v6(a, l).expect("v6"),
    }
}

pub fn sock(a: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(a, port)
}

pub fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// The OPEN a neighbor sends: 4-octet AS, (enhanced) route refresh, the given families.
pub fn open_from(asn: u32, id: &str, hold: u16, families: &[Family]) -> OpenMsg {
    let mut caps: Vec<Capability> = families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    caps.push(Capability::FourOctetAs(asn));
    OpenMsg::new(asn, hold, v4(id), caps)
}

pub fn msg(peer: IpAddr, c: u64, m: Message) -> Input {
    Input::Message {
        peer,
        conn_id: ConnId(c),
        msg: m,
        findings: Vec::new(),
    }
}

pub fn connected(peer: IpAddr, c: u64, dir: Direction, local: IpAddr) -> Input {
    Input::TcpConnected {
        peer,
        conn_id: ConnId(c),
        direction: dir,
        local: sock(local, 40000),
        remote: sock(peer, 179),
    }
}

/// Sent typed messages of `out`.
pub fn sent(out: &[Output]) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// Every message of `out` decoded (typed sends as they are, encoded ones decoded with `ctx`).
pub fn all_messages(out: &[Output], ctx: &SessionContext) -> Vec<Message> {
    let mut v = Vec::new();
    for o in out {
        match o {
            Output::Send { msg, .. } => v.push(msg.clone()),
            Output::SendEncoded { bytes, .. } => v.extend(decode_stream(bytes, ctx)),
            _ => {}
        }
    }
    v
}

pub fn decode_stream(bytes: &[u8], ctx: &SessionContext) -> Vec<Message> {
    let mut v = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let h = frame(rest, ctx.max_message_len())
            .expect("frame")
            .expect("whole");
        let d = decode_message(&rest[..h.length], ctx).expect("decode");
        assert!(d.findings.is_empty(), "findings {:?}", d.findings);
        v.push(d.msg);
        rest = &rest[h.length..];
    }
    v
}

/// UPDATEs of `out`, decoded with `ctx`.
pub fn updates(out: &[Output], ctx: &SessionContext) -> Vec<UpdateMsg> {
    all_messages(out, ctx)
        .into_iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

pub fn notification_codes(out: &[Output]) -> Vec<(u8, u8)> {
    sent(out)
        .iter()
        .filter_map(|m| match m {
            Message::Notification(n) => Some((n.code(), n.subcode())),
            _ => None,
        })
        .collect()
}

pub fn has(out: &[Output], f: impl Fn(&Output) -> bool) -> bool {
    out.iter().any(f)
}

pub fn state_changes(out: &[Output]) -> Vec<(State, State)> {
    out.iter()
        .filter_map(|o| match o {
            Output::PeerStateChanged { old, new, .. } => Some((*old, *new)),
            _ => None,
        })
        .collect()
}

/// Drive `s` through a handshake with `peer` on connection `c` (active), the neighbor
/// answering with `open`. Returns all outputs.
pub fn establish(
    s: &mut Speaker,
    peer: IpAddr,
    c: u64,
    open: OpenMsg,
    now: Instant,
) -> Vec<Output> {
    let local = ip(if peer.is_ipv4() {
        "10.0.0.1"
    } else {
        "fd00::1"
    });
    let mut out = s.step(connected(peer, c, Direction::Active, local), now);
    out.extend(s.step(msg(peer, c, Message::Open(open)), now));
    out.extend(s.step(msg(peer, c, Message::Keepalive), now));
    assert_eq!(
        s.peer_status(peer).map(|p| p.state),
        Some(State::Established),
        "outputs: {out:#?}"
    );
    out
}

/// The UPDATE a neighbor sends for IPv4 routes.
pub fn announce_v4(
    path: &[u32],
    next_hop: &str,
    prefixes: &[&str],
    extra: Vec<brindle_bgp_wire::PathAttribute>,
) -> Message {
    use brindle_bgp_wire::{AsPath, Nlri, Origin, PathAttribute};
    let mut attributes = vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath::from_sequence(path.to_vec())),
        PathAttribute::NextHop(v4(next_hop)),
    ];
    attributes.extend(extra);
    attributes.sort_by_key(|a| a.type_code());
    Message::Update(UpdateMsg {
        withdrawn: Vec::new(),
        attributes,
        nlri: prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
    })
}

pub fn withdraw_v4(prefixes: &[&str]) -> Message {
    use brindle_bgp_wire::Nlri;
    Message::Update(UpdateMsg {
        withdrawn: prefixes.iter().map(|p| Nlri::new(pfx(p))).collect(),
        attributes: Vec::new(),
        nlri: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------
// A simulated network of speakers.

/// One speaker in the network with what the driver would keep.
pub struct Node {
    pub speaker: Speaker,
    pub addr: IpAddr,
    pub kernel: BTreeMap<Prefix, Vec<IpAddr>>,
    pub timers: BTreeMap<TimerId, Instant>,
    pub ctx: BTreeMap<u64, SessionContext>,
    pub log: Vec<Output>,
}

/// Speakers wired through encode/decode; connections are pairs of ends sharing one id.
pub struct Net {
    pub nodes: Vec<Node>,
    pub now: Instant,
    next_conn: u64,
    /// conn id -> (node a, node b), a being the side that connected.
    conns: BTreeMap<u64, (usize, usize)>,
    queue: VecDeque<(usize, Input)>,
    /// When false, Connect outputs are dropped (the other side connects).
    pub allow_connect: bool,
}

impl Net {
    pub fn new() -> Self {
        Net {
            nodes: Vec::new(),
            now: Instant::from_secs(1000),
            next_conn: 1,
            conns: BTreeMap::new(),
            queue: VecDeque::new(),
            allow_connect: true,
        }
    }

    pub fn add(&mut self, speaker: Speaker, addr: IpAddr) -> usize {
        self.nodes.push(Node {
            speaker,
            addr,
            kernel: BTreeMap::new(),
            timers: BTreeMap::new(),
            ctx: BTreeMap::new(),
            log: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn by_addr(&self, a: IpAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == a)
    }

    pub fn input(&mut self, node: usize, input: Input) {
        self.queue.push_back((node, input));
        self.run();
    }

    fn other_end(&self, node: usize, c: u64) -> Option<usize> {
        let (a, b) = *self.conns.get(&c)?;
        Some(if a == node { b } else { a })
    }

    fn handle(&mut self, i: usize, outs: Vec<Output>) {
        let me = self.nodes[i].addr;
        for o in outs {
            self.nodes[i].log.push(o.clone());
            match o {
                Output::Connect { addr, .. } => {
                    if !self.allow_connect {
                        continue;
                    }
                    if let Some(j) = self.by_addr(addr) {
                        let c = self.next_conn;
                        self.next_conn += 1;
                        self.conns.insert(c, (i, j));
                        let (ai, aj) = (self.nodes[i].addr, self.nodes[j].addr);
                        self.queue.push_back((
                            i,
                            Input::TcpConnected {
                                peer: aj,
                                conn_id: ConnId(c),
                                direction: Direction::Active,
                                local: sock(ai, 40000 + c as u16),
                                remote: sock(aj, 179),
                            },
                        ));
                        self.queue.push_back((
                            j,
                            Input::TcpConnected {
                                peer: ai,
                                conn_id: ConnId(c),
                                direction: Direction::Passive,
                                local: sock(aj, 179),
                                remote: sock(ai, 40000 + c as u16),
                            },
                        ));
                    } else {
                        self.queue.push_back((i, Input::TcpFailed { peer: addr }));
                    }
                }
                Output::Send { conn_id, msg, .. } => {
                    let ctx = self.nodes[i]
                        .ctx
                        .get(&conn_id.0)
                        .cloned()
                        .unwrap_or_default();
                    let mut bytes = Vec::new();
                    encode_message(&msg, &ctx, &mut bytes).expect("encode");
                    self.deliver(i, conn_id.0, me, bytes);
                }
                Output::SendEncoded { conn_id, bytes, .. } => self.deliver(i, conn_id.0, me, bytes),
                Output::SetContext { conn_id, ctx, .. } => {
                    self.nodes[i].ctx.insert(conn_id.0, ctx);
                }
                Output::Close { conn_id, .. } => {
                    if let Some(j) = self.other_end(i, conn_id.0) {
                        self.conns.remove(&conn_id.0);
                        self.queue
                            .push_back((j, Input::TcpClosed { peer: me, conn_id }));
                    }
                }
                Output::ArmTimer { timer, at } => {
                    self.nodes[i].timers.insert(timer, at);
                }
                Output::CancelTimer(timer) => {
                    self.nodes[i].timers.remove(&timer);
                }
                Output::InstallRoute { prefix, nexthops } => {
                    self.nodes[i].kernel.insert(prefix, nexthops);
                }
                Output::RemoveRoute { prefix } => {
                    self.nodes[i].kernel.remove(&prefix);
                }
                Output::RibSynced
                | Output::PeerStateChanged { .. }
                | Output::TrackNexthop(_)
                | Output::UntrackNexthop(_) => {}
            }
        }
    }

    fn deliver(&mut self, from: usize, c: u64, from_addr: IpAddr, bytes: Vec<u8>) {
        let Some(j) = self.other_end(from, c) else {
            return;
        };
        let ctx = self.nodes[j].ctx.get(&c).cloned().unwrap_or_default();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let h = frame(rest, ctx.max_message_len())
                .expect("frame")
                .expect("whole message");
            let input = match decode_message(&rest[..h.length], &ctx) {
                Ok(d) => Input::Message {
                    peer: from_addr,
                    conn_id: ConnId(c),
                    msg: d.msg,
                    findings: d.findings,
                },
                Err(error) => Input::DecodeError {
                    peer: from_addr,
                    conn_id: ConnId(c),
                    error,
                },
            };
            self.queue.push_back((j, input));
            rest = &rest[h.length..];
        }
    }

    /// Process queued inputs until quiet.
    pub fn run(&mut self) {
        let mut guard = 0;
        while let Some((i, input)) = self.queue.pop_front() {
            guard += 1;
            assert!(guard < 100_000, "network does not settle");
            let now = self.now;
            let outs = self.nodes[i].speaker.step(input, now);
            self.handle(i, outs);
        }
    }

    /// Advance the clock by `d`, firing due timers in deadline order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| n.timers.iter().map(move |(t, at)| (*at, i, *t)))
                .filter(|(at, _, _)| *at <= end)
                .min();
            let Some((at, i, timer)) = next else {
                break;
            };
            self.nodes[i].timers.remove(&timer);
            self.now = self.now.max(at);
            self.queue.push_back((i, Input::TimerExpired(timer)));
            self.run();
        }
        self.now = end;
    }

    pub fn state(&self, node: usize, peer: IpAddr) -> Option<State> {
        self.nodes[node].speaker.peer_status(peer).map(|p| p.state)
    }
}
