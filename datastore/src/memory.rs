//! The in-memory backend, for unit tests and single-process tools. Same semantics as the
//! others: a global revision, compare-and-swap, a bounded change history for watches.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::watch;

use crate::{Backend, Change, ChangeOp, Error, Key, Kind, Result, Revision, Stored, Write};

/// How many changes are kept for watches to resume from.
pub const HISTORY: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, (Key, Value, Revision)>,
    revision: Revision,
    history: VecDeque<Change>,
    /// Revisions up to and including this one are no longer in `history`.
    compacted: Revision,
}

/// The memory backend. Cloning shares the store.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    notify: Arc<watch::Sender<Revision>>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend {
            state: Arc::new(Mutex::new(State::default())),
            notify: Arc::new(watch::channel(0).0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every write
        // mutates the state only after all its checks passed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops history up to `revision`, as etcd's compaction does (for tests of re-listing).
    pub fn compact(&self, revision: Revision) {
        let mut st = self.lock();
        while st.history.front().is_some_and(|c| c.revision <= revision) {
            st.history.pop_front();
        }
        st.compacted = st.compacted.max(revision);
    }

    /// Applies a write whose checks passed under the same lock acquisition.
    fn commit(&self, mut st: MutexGuard<'_, State>, key: &Key, op: ChangeOp) -> Revision {
        let rev = Self::apply(&mut st, key, op);
        drop(st);
        self.notify.send_replace(rev);
        rev
    }

    /// Records one write in the state (its checks passed under the held lock).
    fn apply(st: &mut State, key: &Key, op: ChangeOp) -> Revision {
        st.revision += 1;
        let rev = st.revision;
        match &op {
            ChangeOp::Created(v) | ChangeOp::Modified(v) => {
                st.objects.insert(key.path(), (key.clone(), v.clone(), rev));
            }
            ChangeOp::Deleted => {
                st.objects.remove(&key.path());
            }
            ChangeOp::Progress => {}
        }
        st.history.push_back(Change {
            revision: rev,
            key: key.clone(),
            op,
        });
        if st.history.len() > HISTORY
            && let Some(old) = st.history.pop_front()
        {
            st.compacted = old.revision;
        }
        rev
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn endpoint(&self) -> String {
        "memory".to_string()
    }

    async fn get(&self, key: &Key) -> Result<Stored> {
        let st = self.lock();
        match st.objects.get(&key.path()) {
            Some((k, v, r)) => Ok(Stored {
                key: k.clone(),
                value: v.clone(),
                revision: *r,
            }),
            None => Err(Error::NotFound {
                key: key.to_string(),
            }),
        }
    }

    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Stored>, Revision)> {
        let st = self.lock();
        let items = st
            .objects
            .values()
            .filter(|(k, _, _)| {
                k.kind == kind && (namespace.is_none() || k.namespace.as_deref() == namespace)
            })
            .map(|(k, v, r)| Stored {
                key: k.clone(),
                value: v.clone(),
                revision: *r,
            })
            .collect();
        Ok((items, st.revision))
    }

    async fn create(&self, key: &Key, value: &Value) -> Result<Revision> {
        // Check and write under one lock acquisition, so two creators cannot both win.
        let st = self.lock();
        if st.objects.contains_key(&key.path()) {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        Ok(self.commit(st, key, ChangeOp::Created(value.clone())))
    }

    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision> {
        let st = self.lock();
        match st.objects.get(&key.path()) {
            None => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Some((_, _, r)) if *r != expected => Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: Some(*r),
            }),
            Some(_) => Ok(self.commit(st, key, ChangeOp::Modified(value.clone()))),
        }
    }

    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision> {
        let st = self.lock();
        match (st.objects.get(&key.path()).map(|(_, _, r)| *r), expected) {
            (None, _) => Err(Error::NotFound {
                key: key.to_string(),
            }),
            (Some(r), Some(e)) if r != e => Err(Error::Conflict {
                key: key.to_string(),
                expected: e,
                actual: Some(r),
            }),
            _ => Ok(self.commit(st, key, ChangeOp::Deleted)),
        }
    }

    fn transactions(&self) -> bool {
        true
    }

    async fn commit(&self, writes: &[Write]) -> Result<Vec<Revision>> {
        crate::txn::distinct_keys(writes)?;
        let mut st = self.lock();
        let mut ops = Vec::with_capacity(writes.len());
        for w in writes {
            let current = st.objects.get(&w.key().path()).map(|(_, _, r)| *r);
            ops.push(match (w.check(current)?, w.value()) {
                ("create", Some(v)) => ChangeOp::Created(v.clone()),
                ("update", Some(v)) => ChangeOp::Modified(v.clone()),
                _ => ChangeOp::Deleted,
            });
        }
        let revs: Vec<Revision> = writes
            .iter()
            .zip(ops)
            .map(|(w, op)| Self::apply(&mut st, w.key(), op))
            .collect();
        drop(st);
        if let Some(last) = revs.last() {
            self.notify.send_replace(*last);
        }
        Ok(revs)
    }

    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>> {
        {
            let st = self.lock();
            if after < st.compacted {
                return Err(Error::Compacted {
                    requested: after,
                    oldest: st.compacted + 1,
                });
            }
        }
        let this = self.clone();
        let rx = self.notify.subscribe();
        let stream =
            futures::stream::unfold((this, rx, after), move |(this, mut rx, last)| async move {
                loop {
                    let batch: std::result::Result<Vec<Change>, Error> = {
                        let st = this.lock();
                        if last < st.compacted {
                            Err(Error::Compacted {
                                requested: last,
                                oldest: st.compacted + 1,
                            })
                        } else {
                            let from = st.history.partition_point(|c| c.revision <= last);
                            Ok(st
                                .history
                                .range(from..)
                                .filter(|c| c.key.kind == kind)
                                .cloned()
                                .collect())
                        }
                    };
                    match batch {
                        Err(e) => return Some((vec![Err(e)], (this, rx, Revision::MAX))),
                        Ok(b) if !b.is_empty() => {
                            let new_last = b.last().map(|c| c.revision).unwrap_or(last);
                            return Some((b.into_iter().map(Ok).collect(), (this, rx, new_last)));
                        }
                        Ok(_) => {
                            if rx.changed().await.is_err() {
                                return None;
                            }
                        }
                    }
                }
            });
        Ok(Box::pin(futures::StreamExt::flat_map(
            stream,
            futures::stream::iter,
        )))
    }
}
