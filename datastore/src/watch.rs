//! Watches built on any backend: list, in-sync marker, then changes; on disconnect resume from
//! the last revision seen (no event lost or repeated); when that history is gone, announce
//! [`WatchEvent::Resync`] and list again. One task per watch, ended when the stream is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::{Backend, ChangeOp, Error, Key, Kind, Resource, Revision, Stored, decode};

/// What a watch reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// An object exists (initial listing) or was created.
    Added(Resource),
    /// An object was replaced.
    Modified(Resource),
    /// An object was deleted at this revision.
    Deleted(Key, Revision),
    /// The initial listing is complete: the consumer now has the whole state at this revision.
    InSync(Revision),
    /// History was lost: forget everything; a fresh listing and `InSync` follow.
    Resync,
}

/// A running watch; dropping it stops the task behind it.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<WatchEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for WatchStream {
    type Item = WatchEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.rx.poll_recv(cx)
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) fn spawn(backend: Arc<dyn Backend>, kind: Kind, from: Option<Revision>) -> WatchStream {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(async move {
        run(backend, kind, from, tx).await;
    });
    WatchStream { rx, task }
}

/// Returns when the receiver is gone.
async fn run(
    backend: Arc<dyn Backend>,
    kind: Kind,
    from: Option<Revision>,
    tx: mpsc::Sender<WatchEvent>,
) {
    let mut last: Option<Revision> = from;
    let mut at_last: Vec<Key> = Vec::new();
    let mut backoff = MIN_BACKOFF;
    loop {
        let after = match last {
            Some(r) => r,
            None => match backend.list(kind, None).await {
                Ok((items, rev)) => {
                    for s in items {
                        let Some(ev) = decoded(s, WatchEvent::Added) else {
                            continue;
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    if tx.send(WatchEvent::InSync(rev)).await.is_err() {
                        return;
                    }
                    last = Some(rev);
                    at_last.clear();
                    rev
                }
                Err(e) => {
                    tracing::warn!(target: "datastore.watch", kind = kind.name(), error = %e, "list failed, retrying");
                    backoff = sleep_backoff(backoff).await;
                    continue;
                }
            },
        };
        let mut stream = match backend.changes(kind, after).await {
            Ok(s) => s,
            Err(Error::Compacted { requested, oldest }) => {
                tracing::info!(target: "datastore.watch", kind = kind.name(), requested, oldest, "history compacted, re-listing");
                if tx.send(WatchEvent::Resync).await.is_err() {
                    return;
                }
                last = None;
                continue;
            }
            Err(e) => {
                tracing::warn!(target: "datastore.watch", kind = kind.name(), error = %e, "watch failed, retrying");
                backoff = sleep_backoff(backoff).await;
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(change)) => {
                        // Already delivered (before a reconnect)? One revision can carry
                        // several keys (an etcd transaction), so keys at the last revision
                        // are remembered.
                        match last {
                            Some(l) if change.revision < l => continue,
                            Some(l) if change.revision == l => {
                                if at_last.contains(&change.key) {
                                    continue;
                                }
                            }
                            _ => at_last.clear(),
                        }
                        at_last.push(change.key.clone());
                        last = Some(change.revision);
                        let ev = match change.op {
                            ChangeOp::Progress => None,
                            ChangeOp::Created(v) => decoded(Stored { key: change.key, value: v, revision: change.revision }, WatchEvent::Added),
                            ChangeOp::Modified(v) => decoded(Stored { key: change.key, value: v, revision: change.revision }, WatchEvent::Modified),
                            ChangeOp::Deleted => Some(WatchEvent::Deleted(change.key, change.revision)),
                        };
                        if let Some(ev) = ev && tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(Error::Compacted { .. })) => {
                        if tx.send(WatchEvent::Resync).await.is_err() {
                            return;
                        }
                        last = None;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(target: "datastore.watch", kind = kind.name(), error = %e, "watch stream broke, resuming");
                        backoff = sleep_backoff(backoff).await;
                        break;
                    }
                    None => {
                        backoff = sleep_backoff(backoff).await;
                        break;
                    }
                },
                _ = tx.closed() => return,
            }
        }
    }
}

/// Decodes a stored object into the event `wrap` builds; an undecodable object is logged and
/// skipped rather than ending the watch.
fn decoded(s: Stored, wrap: fn(Resource) -> WatchEvent) -> Option<WatchEvent> {
    let key = s.key.clone();
    match decode(s) {
        Ok(r) => Some(wrap(r)),
        Err(e) => {
            tracing::error!(target: "datastore.watch", %key, error = %e, "skipping undecodable object");
            None
        }
    }
}

async fn sleep_backoff(current: Duration) -> Duration {
    tokio::time::sleep(current.mul_f64(0.5 + fastrand::f64())).await;
    (current * 2).min(MAX_BACKOFF)
}
