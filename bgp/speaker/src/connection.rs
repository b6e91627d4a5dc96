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
}

/// Spawn the reader and writer of a connection.
pub fn spawn(
    stream: TcpStream,
    peer: IpAddr,
    conn_id: ConnId,
    events: mpsc::Sender<crate::instance::Event>,
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
    let writer_task = tokio::spawn(async move {
        let r = std::panic::AssertUnwindSafe(write_loop(wr, wrx))
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
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
) -> std::io::Result<()> {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            WriteCmd::Bytes(b) => wr.write_all(&b).await?,
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
