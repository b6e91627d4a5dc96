//! One TCP connection: a reader task that frames and decodes messages with the connection's
//! current [`SessionContext`] and forwards them to the instance task, and a writer task that
//! writes the bytes the instance task encoded. Neither touches protocol state.
//!
//! After an OPEN the reader stops decoding until the instance task answers with the
//! negotiated context (or closes the connection), so an UPDATE that follows closely is never
//! decoded with the pre-OPEN context. A decode error is forwarded once and the reader then
//! waits to be closed. A panic in either task is caught and reported as a closed connection,
//! so it only takes down this neighbor's session.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use brindle_bgp_core::ConnId;
use brindle_bgp_wire::{
    Decoded, Error as WireError, Message, SessionContext, decode_message, frame,
};
use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a connection reports to the instance task.
#[derive(Debug)]
pub enum ConnEvent {
    /// A decoded message, or the session reset its bytes call for.
    Message {
        /// The connection.
        conn_id: ConnId,
        /// The neighbor.
        peer: IpAddr,
        /// The decoder's verdict.
        decoded: Result<Decoded<Message>, WireError>,
    },
    /// The write queue drained below its low-water mark after it had been blocked.
    Drained {
        /// The connection.
        conn_id: ConnId,
        /// The neighbor.
        peer: IpAddr,
    },
    /// The connection was closed by the neighbor, broke, or its task panicked.
    Closed {
        /// The connection.
        conn_id: ConnId,
        /// The neighbor.
        peer: IpAddr,
        /// Why.
        reason: String,
    },
}

/// What the instance task tells a writer.
#[derive(Debug)]
pub enum WriteCmd {
    /// Write these bytes (whole messages).
    Bytes(Vec<u8>),
    /// Flush, shut the socket down, stop.
    Close,
}

/// The bytes queued for one connection's writer, shared by the instance task (which adds) and
/// the writer (which subtracts what the kernel took). Crossing `high` blocks the queue (the
/// instance tells the core [`brindle_bgp_core::Input::SendBlocked`]); draining to `low`
/// unblocks it ([`ConnEvent::Drained`]).
#[derive(Debug)]
pub struct WriteGauge {
    queued: AtomicUsize,
    blocked: AtomicBool,
    high: usize,
    low: usize,
}

impl WriteGauge {
    /// A gauge with these water marks (bytes).
    pub fn new(high: usize, low: usize) -> Self {
        WriteGauge {
            queued: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            high,
            low: low.min(high),
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// True while above the high-water mark and not yet drained to the low one.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire)
    }

    /// Count `n` more bytes queued; true when this made the queue blocked.
    fn add(&self, n: usize) -> bool {
        let q = self.queued.fetch_add(n, Ordering::AcqRel) + n;
        q > self.high
            && self
                .blocked
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Count `n` bytes written; true when this unblocked the queue.
    fn sub(&self, n: usize) -> bool {
        let q = self.queued.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        q <= self.low
            && self
                .blocked
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The instance task's handle on one connection.
#[derive(Debug)]
pub struct ConnTasks {
    /// Bytes to write.
    pub writer: mpsc::UnboundedSender<WriteCmd>,
    /// New decode contexts for the reader.
    pub reader_ctx: mpsc::UnboundedSender<SessionContext>,
    /// The reader task (aborted on close).
    pub reader: JoinHandle<()>,
    /// The writer task (awaited on shutdown so the last NOTIFICATION leaves).
    pub writer_task: JoinHandle<()>,
    /// What is queued for the writer.
    pub gauge: Arc<WriteGauge>,
}

impl ConnTasks {
    /// Queue whole messages; true when the queue just went above its high-water mark.
    pub fn write(&self, bytes: Vec<u8>) -> bool {
        let n = bytes.len();
        // Counted before the writer can see them: the writer subtracts what it wrote, and must
        // never subtract bytes not yet added.
        let blocked = self.gauge.add(n);
        if self.writer.send(WriteCmd::Bytes(bytes)).is_err() {
            self.gauge.sub(n);
            return false;
        }
        blocked
    }
}

/// Spawn the reader and writer of a connection.
pub fn spawn(
    stream: TcpStream,
    peer: IpAddr,
    conn_id: ConnId,
    events: mpsc::Sender<crate::instance::Event>,
    gauge: Arc<WriteGauge>,
) -> ConnTasks {
    let (rd, wr) = stream.into_split();
    let (wtx, wrx) = mpsc::unbounded_channel();
    let (ctx_tx, ctx_rx) = mpsc::unbounded_channel();
    let ev = events.clone();
    let reader = tokio::spawn(async move {
        let r = std::panic::AssertUnwindSafe(read_loop(rd, peer, conn_id, ctx_rx, &ev))
            .catch_unwind()
            .await;
        let reason = match r {
            Ok(reason) => reason,
            Err(_) => "reader task panicked".to_string(),
        };
        let _ = ev
            .send(crate::instance::Event::Conn(ConnEvent::Closed {
                conn_id,
                peer,
                reason,
            }))
            .await;
    });
    let g = gauge.clone();
    let writer_task = tokio::spawn(async move {
        let r = std::panic::AssertUnwindSafe(write_loop(wr, wrx, &g, peer, conn_id, &events))
            .catch_unwind()
            .await;
        let reason = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("write failed: {e}"),
            Err(_) => "writer task panicked".to_string(),
        };
        let _ = events
            .send(crate::instance::Event::Conn(ConnEvent::Closed {
                conn_id,
                peer,
                reason,
            }))
            .await;
    });
    ConnTasks {
        writer: wtx,
        reader_ctx: ctx_tx,
        reader,
        writer_task,
        gauge,
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    gauge: &WriteGauge,
    peer: IpAddr,
    conn_id: ConnId,
    events: &mpsc::Sender<crate::instance::Event>,
) -> std::io::Result<()> {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            WriteCmd::Bytes(b) => {
                wr.write_all(&b).await?;
                if gauge.sub(b.len()) {
                    let e = crate::instance::Event::Conn(ConnEvent::Drained { conn_id, peer });
                    let _ = events.send(e).await;
                }
            }
            WriteCmd::Close => {
                wr.flush().await?;
                let _ = wr.shutdown().await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads until the connection ends; returns why.
async fn read_loop(
    mut rd: OwnedReadHalf,
    peer: IpAddr,
    conn_id: ConnId,
    mut ctx_rx: mpsc::UnboundedReceiver<SessionContext>,
    events: &mpsc::Sender<crate::instance::Event>,
) -> String {
    let mut buf = BytesMut::with_capacity(8192);
    let mut ctx = SessionContext::default();
    let mut paused = false;
    let mut failed = false;
    loop {
        while !paused && !failed {
            let header = match frame(&buf, ctx.max_message_len()) {
                Ok(None) => break,
                Ok(Some(h)) => h,
                Err(e) => {
                    failed = true;
                    let m = ConnEvent::Message {
                        conn_id,
                        peer,
                        decoded: Err(e),
                    };
                    if events.send(crate::instance::Event::Conn(m)).await.is_err() {
                        return "instance gone".into();
                    }
                    break;
                }
            };
            let bytes = buf.split_to(header.length);
            let decoded = decode_message(&bytes, &ctx);
            paused = matches!(
                decoded,
                Ok(Decoded {
                    msg: Message::Open(_),
                    ..
                })
            );
            failed = decoded.is_err();
            let m = ConnEvent::Message {
                conn_id,
                peer,
                decoded,
            };
            if events.send(crate::instance::Event::Conn(m)).await.is_err() {
                return "instance gone".into();
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return "closed by neighbor".into(),
                Ok(_) => {}
                Err(e) => return format!("read failed: {e}"),
            },
            c = ctx_rx.recv() => match c {
                Some(c) => {
                    ctx = c;
                    paused = false;
                }
                None => return "closed".into(),
            },
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(65536);
        }
    }
}
