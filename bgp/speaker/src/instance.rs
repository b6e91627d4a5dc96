//! The instance task: the one owner of a [`brindle_bgp_core::Speaker`], and the code that
//! spawns every other task of a BGP instance.
//!
//! ```text
//!   SpeakerHandle ──Command (mpsc)──┐                      ┌──KernelCmd──▶ kernel task
//!   (add/update/remove peers,       │                      │              (owns the netlink
//!    originate, status, shutdown)   ▼                      │               socket)
//!                          ┌──────────────────────────────┐│
//!   accept task ──Accepted─▶        instance task          ├┘
//!   (listener, MD5 keys)   │ owns Speaker, deadline map,   │──WriteCmd──▶ writer task ─▶ TCP
//!   connect tasks ─────────▶ connection table, encoding    │                (one per conn)
//!   (one per attempt)      │ step(input, now) → outputs    │──ctx──────▶ reader task ◀─ TCP
//!                          └──────────────▲───────────────┘             (frame + decode)
//!                                         └──────── ConnEvent (Message / Closed) ─┘
//! ```
//!
//! Nothing but this task touches protocol state, so there are no locks. Time is tokio's
//! clock: the core's `Instant` is the number of milliseconds since the instance started, and
//! armed timers live in a deadline map here; the task sleeps until the earliest one. Outputs
//! are performed in order: messages are encoded with the connection's context here and
//! written by the connection's writer task; `Close` reaches the writer after the last message.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use brindle_bgp_core::{
    ConnId, Direction, Input, Instant as CoreInstant, Output, Speaker, TimerId,
};
use brindle_bgp_wire::{Prefix, SessionContext};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{DriverConfig, NeighborConfig, StartMode};
use crate::connection::{self, ConnEvent, ConnTasks, WriteCmd};
use crate::error::Error;
use crate::handle::{Command, SpeakerHandle};
use crate::kernel::{Kernel, KernelCmd};
use crate::nexthop::{NhCmd, Tracker};
use crate::transport;

/// How long a closed connection's writer may go on flushing before it is aborted.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Decoded messages and other events queued for the instance task.
const EVENT_QUEUE: usize = 128;

/// Queued events taken at once; runs of messages among them are one step of the core.
const EVENT_BATCH: usize = 64;

/// Everything the other tasks tell the instance task.
#[derive(Debug)]
pub enum Event {
    /// From a connection's reader or writer.
    Conn(ConnEvent),
    /// An outgoing connection is up.
    Connected {
        /// The neighbor.
        peer: IpAddr,
        /// The socket.
        stream: TcpStream,
    },
    /// An outgoing connection attempt failed.
    ConnectFailed {
        /// The neighbor.
        peer: IpAddr,
        /// Why.
        reason: String,
    },
    /// The next-hop tracker's answer.
    Nexthop {
        /// The next hop.
        addr: IpAddr,
        /// Reachable through a route that is not ours.
        reachable: bool,
        /// That route's gateways (empty: directly connected).
        via: Vec<IpAddr>,
    },
    /// The listener accepted a connection.
    Accepted {
        /// The socket.
        stream: TcpStream,
        /// The remote address.
        remote: SocketAddr,
    },
}

#[derive(Debug)]
struct Conn {
    peer: IpAddr,
    ctx: SessionContext,
    tasks: ConnTasks,
}

impl Conn {
    /// Queue bytes; true when the queue just became blocked.
    fn write(&self, bytes: Vec<u8>) -> bool {
        self.tasks.write(bytes)
    }
}

/// The instance task's state.
#[derive(Debug)]
struct Instance {
    speaker: Speaker,
    epoch: tokio::time::Instant,
    deadlines: BTreeMap<TimerId, CoreInstant>,
    queue: BTreeSet<(CoreInstant, TimerId)>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    neighbors: BTreeMap<IpAddr, NeighborConfig>,
    connecting: BTreeMap<IpAddr, Vec<JoinHandle<()>>>,
    closing: Vec<JoinHandle<()>>,
    listener: Option<Arc<TcpListener>>,
    accept_task: Option<JoinHandle<()>>,
    events: mpsc::Sender<Event>,
    kernel: Option<mpsc::UnboundedSender<KernelCmd>>,
    /// The next-hop tracker (with kernel routes on).
    nexthop: Option<mpsc::UnboundedSender<NhCmd>>,
    blackholes: BTreeSet<Prefix>,
    /// During shutdown kernel outputs are dropped, so routes survive for graceful restart.
    kernel_frozen: bool,
    /// Write-queue water marks (bytes) of every connection.
    write_queue: (usize, usize),
    /// The GTSM minimum TTL set on the listener.
    listener_min_ttl: u8,
    /// Where every input is recorded, when asked.
    record: Option<std::io::LineWriter<std::fs::File>>,
    /// Connections whose write queue became blocked while outputs were performed; the core
    /// hears of them once the outputs are done.
    newly_blocked: Vec<(IpAddr, ConnId)>,
}

/// Start a BGP instance: open the kernel route socket, read our leftover routes, bind the
/// listener, add the configured neighbors and prefixes, and spawn the tasks. Must run inside
/// a tokio runtime; sockets are created in the network namespace of the calling thread.
pub async fn start(config: DriverConfig) -> Result<(SpeakerHandle, JoinHandle<()>), Error> {
    let kernel = if config.kernel.enabled {
        Some(Kernel::open(config.kernel.clone()).await?)
    } else {
        None
    };
    let leftover = kernel.as_ref().map(Kernel::leftover).unwrap_or_default();
    let fib_stats = kernel.as_ref().map(Kernel::stats);
    let gr = config.speaker.graceful_restart.is_some();
    let restarting = gr
        && match config.start {
            StartMode::Auto => !leftover.is_empty(),
            StartMode::Restarting => true,
            StartMode::Fresh => false,
        };
    let listener = match config.listen {
        Some(a) => Some(Arc::new(transport::listen(a)?)),
        None => None,
    };
    let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let kernel_tx = kernel.map(|k| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(k.run(rx));
        tx
    });
    // Bounded: a neighbor that floods us waits in its reader (and TCP) once this many
    // decoded messages are queued, which bounds the memory a flood can take before
    // max-prefix cuts it off.
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    // With kernel routes, next hops are resolved through the kernel's routes (RFC 4271
    // §9.1.2.1); without, every next hop counts as reachable.
    let nexthop = if config.kernel.enabled {
        let t = Tracker::open(config.kernel.clone(), events_tx.clone(), kernel_tx.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(t.run(rx));
        Some(tx)
    } else {
        None
    };
    let mut speaker_config = config.speaker.clone();
    speaker_config.nexthop_tracking = nexthop.is_some();
    speaker_config.install_routes = config.kernel.enabled;
    let record = match &config.record {
        Some(path) => {
            let f = std::fs::File::create(path).map_err(|e| {
                Error::config(format!("record file {}", path.display()), e.to_string())
            })?;
            let mut w = std::io::LineWriter::new(f);
            let start = brindle_bgp_core::record::Entry::Start {
                config: speaker_config.clone(),
                restarting,
            };
            use std::io::Write;
            let _ = writeln!(w, "{}", start.to_line());
            Some(w)
        }
        None => None,
    };
    let (speaker, first) = if restarting {
        Speaker::new_restarting(speaker_config, CoreInstant::ZERO)
    } else {
        (Speaker::new(speaker_config), Vec::new())
    };
    tracing::info!(
        target: "bgp.instance",
        event = "start",
        local_as = config.speaker.local_as,
        router_id = %config.speaker.router_id,
        listen = ?listen_addr,
        restarting,
        leftover_routes = leftover.len(),
    );
    let mut inst = Instance {
        speaker,
        epoch: tokio::time::Instant::now(),
        deadlines: BTreeMap::new(),
        queue: BTreeSet::new(),
        conns: BTreeMap::new(),
        next_conn: 1,
        neighbors: BTreeMap::new(),
        connecting: BTreeMap::new(),
        closing: Vec::new(),
        listener: listener.clone(),
        accept_task: None,
        events: events_tx.clone(),
        kernel: kernel_tx,
        nexthop,
        blackholes: BTreeSet::new(),
        kernel_frozen: false,
        write_queue: (config.write_queue_high, config.write_queue_high / 4),
        newly_blocked: Vec::new(),
        listener_min_ttl: 0,
        record,
    };
    inst.perform(first);
    if !restarting {
        inst.kernel_cmd(KernelCmd::Synced);
    }
    let mut batch = Vec::new();
    for n in config.neighbors {
        inst.set_transport(&n, None)?;
        batch.push(Input::AddPeer(n.peer.clone()));
        inst.neighbors.insert(n.peer.address, n);
    }
    for o in config.originate {
        if o.blackhole {
            inst.blackholes.insert(o.prefix);
            inst.kernel_cmd(KernelCmd::Blackhole(o.prefix, true));
        }
        batch.push(Input::Originate(o.prefix, o.attrs));
    }
    inst.step(Input::Batch(batch));
    inst.listener_gtsm()?;
    if let Some(l) = listener {
        inst.accept_task = Some(tokio::spawn(accept_loop(l, events_tx)));
    }
    let epoch = inst.epoch;
    let task = tokio::spawn(inst.run(cmd_rx, events_rx));
    Ok((
        SpeakerHandle::new(cmd_tx, listen_addr, epoch, fib_stats),
        task,
    ))
}

async fn accept_loop(l: Arc<TcpListener>, events: mpsc::Sender<Event>) {
    loop {
        match l.accept().await {
            Ok((stream, remote)) => {
                if events
                    .send(Event::Accepted { stream, remote })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(target: "bgp.instance", event = "accept_failed", error = %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sleep until `at`, or forever when there is nothing to wait for.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Instance {
    fn now(&self) -> CoreInstant {
        CoreInstant(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn step(&mut self, input: Input) {
        let now = self.now();
        self.record(now, &input);
        let out = self.speaker.step(input, now);
        self.perform(out);
        // SendBlocked only arms a timer, so this does not recurse further.
        for (peer, conn_id) in std::mem::take(&mut self.newly_blocked) {
            let now = self.now();
            let input = Input::SendBlocked { peer, conn_id };
            self.record(now, &input);
            let out = self.speaker.step(input, now);
            self.perform(out);
        }
    }

    /// Append an input to the recording, if one was asked for; a write error stops it.
    fn record(&mut self, at: CoreInstant, input: &Input) {
        let Some(w) = &mut self.record else {
            return;
        };
        use std::io::Write;
        let line = brindle_bgp_core::record::Entry::Step {
            at,
            input: input.clone(),
        }
        .to_line();
        if let Err(e) = writeln!(w, "{line}") {
            tracing::warn!(target: "bgp.instance", event = "record_failed", error = %e, "recording stopped");
            self.record = None;
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Command>, mut events: mpsc::Receiver<Event>) {
        loop {
            let next = self
                .queue
                .first()
                .map(|(at, _)| self.epoch + Duration::from_millis(at.0));
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(Command::Shutdown { flush_routes, done }) => {
                        self.shutdown(flush_routes).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c),
                    None => {
                        self.shutdown(false).await;
                        return;
                    }
                },
                Some(e) = events.recv() => self.events(e, &mut events),
                _ = sleep_until(next) => self.fire_due(),
            }
        }
    }

    fn fire_due(&mut self) {
        let now = self.now();
        let due: Vec<(CoreInstant, TimerId)> = self
            .queue
            .iter()
            .take_while(|(at, _)| *at <= now)
            .copied()
            .collect();
        for (at, t) in due {
            self.queue.remove(&(at, t));
            self.deadlines.remove(&t);
            self.step(Input::TimerExpired(t));
        }
    }

    fn arm(&mut self, t: TimerId, at: CoreInstant) {
        if let Some(old) = self.deadlines.insert(t, at) {
            self.queue.remove(&(old, t));
        }
        self.queue.insert((at, t));
    }

    fn cancel(&mut self, t: TimerId) {
        if let Some(old) = self.deadlines.remove(&t) {
            self.queue.remove(&(old, t));
        }
    }

    fn kernel_cmd(&self, cmd: KernelCmd) {
        if self.kernel_frozen {
            return;
        }
        if let Some(k) = &self.kernel {
            let _ = k.send(cmd);
        }
    }

    fn perform(&mut self, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Connect {
                    peer,
                    addr,
                    port,
                    local,
                } => self.connect(peer, SocketAddr::new(addr, port), local),
                Output::Send { conn_id, msg, .. } => {
                    if let Some(c) = self.conns.get(&conn_id) {
                        match msg.encode(&c.ctx) {
                            Ok(b) => {
                                if c.write(b) {
                                    self.newly_blocked.push((c.peer, conn_id));
                                }
                            }
                            Err(e) => {
                                tracing::warn!(target: "bgp.instance", event = "encode_failed", peer = %c.peer, error = %e)
                            }
                        }
                    }
                }
                Output::SendEncoded { conn_id, bytes, .. } => {
                    if let Some(c) = self.conns.get(&conn_id)
                        && c.write(bytes)
                    {
                        self.newly_blocked.push((c.peer, conn_id));
                    }
                }
                Output::SetContext { conn_id, ctx, .. } => {
                    if let Some(c) = self.conns.get_mut(&conn_id) {
                        let _ = c.tasks.reader_ctx.send(ctx.clone());
                        c.ctx = ctx;
                    }
                }
                Output::Close { conn_id, .. } => self.close_conn(conn_id),
                Output::ArmTimer { timer, at } => self.arm(timer, at),
                Output::CancelTimer(t) => self.cancel(t),
                Output::InstallRoute { prefix, nexthops } => {
                    self.kernel_cmd(KernelCmd::Install(prefix, nexthops))
                }
                Output::RemoveRoute { prefix } => self.kernel_cmd(KernelCmd::Remove(prefix)),
                Output::RibSynced => {
                    tracing::info!(target: "bgp.instance", event = "rib_synced");
                    self.kernel_cmd(KernelCmd::Synced)
                }
                Output::TrackNexthop(a) => {
                    if let Some(t) = &self.nexthop {
                        let _ = t.send(NhCmd::Track(a));
                    }
                }
                Output::UntrackNexthop(a) => {
                    if let Some(t) = &self.nexthop {
                        let _ = t.send(NhCmd::Untrack(a));
                    }
                }
                Output::PeerStateChanged { peer, old, new } => {
                    tracing::info!(target: "bgp.instance", event = "peer_state", peer = %peer, old = %old, new = %new);
                }
            }
        }
    }

    /// Close a connection: the writer flushes what is queued, then shuts the socket down. A
    /// writer that cannot finish within [`CLOSE_LINGER`] (a neighbor that does not read) is
    /// aborted, which drops the socket and its queue.
    fn close_conn(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            let _ = c.tasks.writer.send(WriteCmd::Close);
            c.tasks.reader.abort();
            let abort = c.tasks.writer_task.abort_handle();
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_LINGER).await;
                abort.abort();
            });
            self.closing.retain(|h| !h.is_finished());
            self.closing.push(c.tasks.writer_task);
        }
    }

    /// Bytes queued towards `peer` on all its connections.
    fn queued_bytes(&self, peer: IpAddr) -> u64 {
        self.conns
            .values()
            .filter(|c| c.peer == peer)
            .map(|c| c.tasks.gauge.queued() as u64)
            .sum()
    }

    fn register(&mut self, peer: IpAddr, stream: TcpStream, direction: Direction) {
        let (local, remote) = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(r)) => (l, r),
            _ => {
                if direction == Direction::Active {
                    self.step(Input::TcpFailed { peer });
                }
                return;
            }
        };
        let local = SocketAddr::new(local.ip().to_canonical(), local.port());
        let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
        let conn_id = ConnId(self.next_conn);
        self.next_conn += 1;
        let gauge = Arc::new(connection::WriteGauge::new(
            self.write_queue.0,
            self.write_queue.1,
        ));
        let tasks = connection::spawn(stream, peer, conn_id, self.events.clone(), gauge);
        self.conns.insert(
            conn_id,
            Conn {
                peer,
                ctx: SessionContext::default(),
                tasks,
            },
        );
        tracing::debug!(target: "bgp.instance", event = "tcp_connected", peer = %peer, conn = %conn_id, ?direction, %local, %remote);
        self.step(Input::TcpConnected {
            peer,
            conn_id,
            direction,
            local,
            remote,
        });
    }

    /// Handle `first` and whatever else is already queued (up to [`EVENT_BATCH`]): runs of
    /// decoded messages go to the core as one [`Input::Batch`], so the decision process,
    /// advertisement and the writers' wake-ups happen once per run instead of once per
    /// message. Other events are handled one by one, in order.
    fn events(&mut self, first: Event, queue: &mut mpsc::Receiver<Event>) {
        let mut batch: Vec<Input> = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(e) = next.take() {
            taken += 1;
            match e {
                Event::Conn(ConnEvent::Message {
                    conn_id,
                    peer,
                    decoded: Ok(d),
                }) => {
                    if self.conns.contains_key(&conn_id) {
                        batch.push(Input::Message {
                            peer,
                            conn_id,
                            msg: d.msg,
                            findings: d.findings,
                        });
                    }
                }
                Event::Nexthop {
                    addr,
                    reachable,
                    via,
                } => batch.push(Input::NexthopReachability {
                    addr,
                    reachable,
                    via,
                }),
                other => {
                    self.flush_batch(&mut batch);
                    self.event(other);
                }
            }
            if taken < EVENT_BATCH {
                next = queue.try_recv().ok();
            }
        }
        self.flush_batch(&mut batch);
    }

    fn flush_batch(&mut self, batch: &mut Vec<Input>) {
        match batch.len() {
            0 => {}
            1 => {
                if let Some(i) = batch.pop() {
                    self.step(i);
                }
            }
            _ => self.step(Input::Batch(std::mem::take(batch))),
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Conn(ConnEvent::Message {
                conn_id,
                peer,
                decoded,
            }) => {
                if !self.conns.contains_key(&conn_id) {
                    return;
                }
                match decoded {
                    Ok(d) => self.step(Input::Message {
                        peer,
                        conn_id,
                        msg: d.msg,
                        findings: d.findings,
                    }),
                    Err(error) => {
                        tracing::warn!(target: "bgp.instance", event = "decode_error", peer = %peer, conn = %conn_id, error = %error);
                        self.step(Input::DecodeError {
                            peer,
                            conn_id,
                            error,
                        })
                    }
                }
            }
            Event::Conn(ConnEvent::Drained { conn_id, peer }) => {
                // A drain reported before a later write blocked the queue again is stale:
                // the core heard of that block after it.
                if self
                    .conns
                    .get(&conn_id)
                    .is_some_and(|c| !c.tasks.gauge.is_blocked())
                {
                    self.step(Input::SendReady { peer, conn_id });
                }
            }
            Event::Conn(ConnEvent::Closed {
                conn_id,
                peer,
                reason,
            }) => {
                if self.conns.contains_key(&conn_id) {
                    tracing::info!(target: "bgp.instance", event = "tcp_closed", peer = %peer, conn = %conn_id, reason = %reason);
                    self.close_conn(conn_id);
                    self.step(Input::TcpClosed { peer, conn_id });
                }
            }
            Event::Nexthop {
                addr,
                reachable,
                via,
            } => {
                self.step(Input::NexthopReachability {
                    addr,
                    reachable,
                    via,
                });
            }
            Event::Connected { peer, stream } => {
                self.register(peer, stream, Direction::Active);
            }
            Event::ConnectFailed { peer, reason } => {
                tracing::debug!(target: "bgp.instance", event = "connect_failed", peer = %peer, reason = %reason);
                self.step(Input::TcpFailed { peer });
            }
            Event::Accepted { stream, remote } => {
                let peer = remote.ip().to_canonical();
                if let Some(n) = self.neighbors.get(&peer) {
                    let ebgp = n.peer.remote_as != self.speaker.config().local_as;
                    if let Err(e) = transport::apply_ttl(&stream, peer, &n.transport, ebgp) {
                        tracing::warn!(target: "bgp.instance", event = "socket_options_failed", peer = %peer, error = %e);
                    }
                }
                let _ = stream.set_nodelay(true);
                self.register(peer, stream, Direction::Passive);
            }
        }
    }

    fn connect(&mut self, peer: IpAddr, remote: SocketAddr, local: Option<IpAddr>) {
        let Some(n) = self.neighbors.get(&peer) else {
            self.step(Input::TcpFailed { peer });
            return;
        };
        let t = n.transport.clone();
        let ebgp = n.peer.remote_as != self.speaker.config().local_as;
        let timeout = n
            .peer
            .connect_retry
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        let events = self.events.clone();
        let h = tokio::spawn(async move {
            let ev = match transport::connect(remote, local, &t, ebgp, timeout).await {
                Ok(stream) => Event::Connected { peer, stream },
                Err(e) => Event::ConnectFailed {
                    peer,
                    reason: e.to_string(),
                },
            };
            let _ = events.send(ev).await;
        });
        let v = self.connecting.entry(peer).or_default();
        v.retain(|h| !h.is_finished());
        v.push(h);
    }

    /// Keep the listener's minimum TTL at the least strict neighbor's GTSM minimum.
    fn listener_gtsm(&mut self) -> Result<(), Error> {
        let Some(l) = &self.listener else {
            return Ok(());
        };
        let local_as = self.speaker.config().local_as;
        let min = transport::listener_min_ttl(
            self.neighbors
                .values()
                .map(|n| (&n.transport, n.peer.remote_as != local_as)),
        );
        if min != self.listener_min_ttl {
            transport::set_listener_min_ttl(l, min)?;
            tracing::info!(target: "bgp.instance", event = "listener_min_ttl", min_ttl = min);
            self.listener_min_ttl = min;
        }
        Ok(())
    }

    /// Set the listener's MD5 key for a neighbor (`old` = its previous settings).
    fn set_transport(&self, n: &NeighborConfig, old: Option<&NeighborConfig>) -> Result<(), Error> {
        let Some(l) = &self.listener else {
            return Ok(());
        };
        let new_pw = n.transport.password.as_deref();
        let old_pw = old.and_then(|o| o.transport.password.as_deref());
        if new_pw != old_pw {
            transport::listener_md5(l, n.peer.address, new_pw)?;
        }
        Ok(())
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::AddPeer(n, reply) => {
                let addr = n.peer.address;
                let r = if self.neighbors.contains_key(&addr) {
                    Err(Error::config(format!("peer {addr}"), "already exists"))
                } else {
                    self.set_transport(&n, None).and_then(|()| {
                        self.step(Input::AddPeer(n.peer.clone()));
                        self.neighbors.insert(addr, n);
                        self.listener_gtsm()
                    })
                };
                let _ = reply.send(r);
            }
            Command::UpdatePeer(n, reply) => {
                let addr = n.peer.address;
                let r = match self.neighbors.get(&addr).cloned() {
                    None => Err(Error::config(format!("peer {addr}"), "does not exist")),
                    Some(old) => self.set_transport(&n, Some(&old)).map(|()| {
                        let mut batch = vec![Input::UpdatePeer(n.peer.clone())];
                        if old.transport != n.transport {
                            // Socket options only take effect on a new connection.
                            batch.push(Input::AdminDown(addr));
                            batch.push(Input::AdminUp(addr));
                        }
                        self.neighbors.insert(addr, n);
                        self.step(Input::Batch(batch));
                    }),
                };
                let r = r.and_then(|()| self.listener_gtsm());
                let _ = reply.send(r);
            }
            Command::RemovePeer(addr, reply) => {
                let r = match self.neighbors.remove(&addr) {
                    None => Err(Error::config(format!("peer {addr}"), "does not exist")),
                    Some(old) => {
                        self.step(Input::RemovePeer(addr));
                        for h in self.connecting.remove(&addr).unwrap_or_default() {
                            h.abort();
                        }
                        match (&self.listener, old.transport.password.is_some()) {
                            (Some(l), true) => transport::listener_md5(l, addr, None),
                            _ => Ok(()),
                        }
                        .and_then(|()| self.listener_gtsm())
                    }
                };
                let _ = reply.send(r);
            }
            Command::AdminUp(a) => self.step(Input::AdminUp(a)),
            Command::AdminDown(a) => self.step(Input::AdminDown(a)),
            Command::Originate(o) => {
                if o.blackhole {
                    self.blackholes.insert(o.prefix);
                    self.kernel_cmd(KernelCmd::Blackhole(o.prefix, true));
                } else if self.blackholes.remove(&o.prefix) {
                    self.kernel_cmd(KernelCmd::Blackhole(o.prefix, false));
                }
                self.step(Input::Originate(o.prefix, o.attrs));
            }
            Command::Withdraw(p) => {
                if self.blackholes.remove(&p) {
                    self.kernel_cmd(KernelCmd::Blackhole(p, false));
                }
                self.step(Input::WithdrawOriginated(p));
            }
            Command::RouteRefresh(a, f) => self.step(Input::RouteRefreshRequest(a, f)),
            Command::Peers(r) => {
                let mut v = self.speaker.peers();
                for p in &mut v {
                    p.out_queue_bytes = self.queued_bytes(p.address);
                }
                let _ = r.send(v);
            }
            Command::Peer(a, r) => {
                let mut p = self.speaker.peer_status(a);
                if let Some(p) = &mut p {
                    p.out_queue_bytes = self.queued_bytes(a);
                }
                let _ = r.send(p);
            }
            Command::Routes(r) => {
                let _ = r.send(self.speaker.routes());
            }
            Command::KernelRoutes(r) => {
                // The kernel task answers on its own channel, so the instance does not wait
                // for the netlink dump.
                let _ = r.send(self.kernel.as_ref().map(|k| {
                    let (tx, rx) = oneshot::channel();
                    let _ = k.send(KernelCmd::Read(tx));
                    rx
                }));
            }
            Command::Adj(a, inbound, r) => {
                let _ = r.send(if inbound {
                    self.speaker.adj_rib_in(a)
                } else {
                    self.speaker.adj_rib_out(a)
                });
            }
            Command::Installed(r) => {
                let _ = r.send(self.speaker.installed_routes().clone());
            }
            Command::KernelExclude(p) => self.kernel_cmd(KernelCmd::Exclude(p)),
            Command::Shutdown { done, .. } => {
                // Handled in `run`; unreachable here, answer anyway.
                let _ = done.send(());
            }
        }
    }

    /// Cease/Administrative Shutdown to every neighbor, wait (bounded) for the writers to
    /// flush, and leave kernel routes in place unless `flush_routes`.
    async fn shutdown(&mut self, flush_routes: bool) {
        tracing::info!(target: "bgp.instance", event = "shutdown", flush_routes);
        self.kernel_frozen = true;
        let peers: Vec<IpAddr> = self.neighbors.keys().copied().collect();
        self.step(Input::Batch(
            peers.iter().map(|p| Input::AdminDown(*p)).collect(),
        ));
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close_conn(id);
        }
        for (_, hs) in std::mem::take(&mut self.connecting) {
            for h in hs {
                h.abort();
            }
        }
        if let Some(a) = self.accept_task.take() {
            a.abort();
        }
        let writers = std::mem::take(&mut self.closing);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(writers)).await;
        if flush_routes && let Some(k) = &self.kernel {
            let (tx, rx) = oneshot::channel();
            if k.send(KernelCmd::Flush(tx)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
            }
        }
    }
}
