//! The etcd v3 backend: objects under a configurable key prefix, compare-and-swap on
//! `mod_revision` in a transaction, watches that resume from a revision and report compaction.
//!
//! Keys: `<prefix><plural>/<name>` or `<prefix><plural>/<namespace>/<name>`. The store-wide
//! revision is etcd's own, so watches resume exactly where they left off.

use std::future::Future;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions,
};
use futures::stream::BoxStream;
use serde_json::Value;

use crate::{
    Backend, CALL_TIMEOUT, Change, ChangeOp, Error, Key, Kind, Result, Revision, Stored, Write,
};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "/brindle/v1/";

/// The etcd backend.
#[derive(Clone)]
pub struct EtcdBackend {
    client: Client,
    prefix: String,
    endpoints: String,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl EtcdBackend {
    /// Connects to the given endpoints (`http://127.0.0.1:2379`); fails within
    /// [`CALL_TIMEOUT`] when none answers.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdBackend> {
        let shown = format!("etcd:{}", endpoints.join(","));
        let opts = ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(2))
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(5),
            );
        let client = tokio::time::timeout(CALL_TIMEOUT, Client::connect(endpoints, Some(opts)))
            .await
            .map_err(|_| Error::Unavailable {
                endpoint: shown.clone(),
                reason: "connect timed out".into(),
            })?
            .map_err(|e| Error::Unavailable {
                endpoint: shown.clone(),
                reason: e.to_string(),
            })?;
        let backend = EtcdBackend {
            client,
            prefix: prefix.to_string(),
            endpoints: shown,
        };
        // Prove the cluster answers now rather than at the first real call.
        let mut c = backend.client.clone();
        backend
            .call(async move { c.get("/", Some(GetOptions::new().with_count_only())).await })
            .await?;
        Ok(backend)
    }

    fn key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.path())
    }

    fn kind_prefix(&self, kind: Kind, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if kind.namespaced() => format!("{}{}/{ns}/", self.prefix, kind.plural()),
            _ => format!("{}{}/", self.prefix, kind.plural()),
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            endpoint: self.endpoints.clone(),
            reason: e.to_string(),
        }
    }

    /// Runs one etcd call with the call timeout, mapping failures to Unavailable.
    async fn call<T>(&self, f: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable("timed out")),
        }
    }

    fn parse(&self, key: Key, bytes: &[u8], revision: i64) -> Result<Stored> {
        let value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Internal(format!("{key}: stored JSON: {e}")))?;
        Ok(Stored {
            key,
            value,
            revision: revision as Revision,
        })
    }

    fn key_of(&self, raw: &[u8]) -> Option<Key> {
        let s = std::str::from_utf8(raw).ok()?;
        Key::from_path(s.strip_prefix(&self.prefix)?)
    }

    /// Compacts etcd's history up to `revision` (operators run this; tests use it to check
    /// that watches re-list).
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        let mut c = self.client.clone();
        self.call(async move { c.compact(revision as i64, None).await })
            .await
            .map(|_| ())
    }

    /// Runs a guarded transaction; returns the new revision, or what the key holds now.
    async fn txn(
        &self,
        k: &str,
        when: Compare,
        then: TxnOp,
    ) -> Result<std::result::Result<Revision, Option<Revision>>> {
        let mut c = self.client.clone();
        let txn = Txn::new()
            .when([when])
            .and_then([then])
            .or_else([TxnOp::get(k, None)]);
        let resp = self.call(async move { c.txn(txn).await }).await?;
        if resp.succeeded() {
            let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
            return Ok(Ok(rev as Revision));
        }
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => {
                Some(g.kvs().first().map(|kv| kv.mod_revision() as Revision))
            }
            _ => None,
        });
        Ok(Err(current.flatten()))
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn endpoint(&self) -> String {
        self.endpoints.clone()
    }

    async fn get(&self, key: &Key) -> Result<Stored> {
        let mut c = self.client.clone();
        let k = self.key(key);
        let resp = self.call(async move { c.get(k, None).await }).await?;
        match resp.kvs().first() {
            Some(kv) => self.parse(key.clone(), kv.value(), kv.mod_revision()),
            None => Err(Error::NotFound {
                key: key.to_string(),
            }),
        }
    }

    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Stored>, Revision)> {
        let mut c = self.client.clone();
        let p = self.kind_prefix(kind, namespace);
        let resp = self
            .call(async move { c.get(p, Some(GetOptions::new().with_prefix())).await })
            .await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default() as Revision;
        let mut out = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let Some(key) = self.key_of(kv.key()) else {
                tracing::warn!(target: "datastore.etcd", key = %String::from_utf8_lossy(kv.key()), "skipping foreign key");
                continue;
            };
            out.push(self.parse(key, kv.value(), kv.mod_revision())?);
        }
        Ok((out, rev))
    }

    async fn create(&self, key: &Key, value: &Value) -> Result<Revision> {
        let k = self.key(key);
        let put = TxnOp::put(k.clone(), value.to_string(), None);
        match self
            .txn(
                &k,
                Compare::create_revision(k.clone(), CompareOp::Equal, 0),
                put,
            )
            .await?
        {
            Ok(rev) => Ok(rev),
            Err(_) => Err(Error::AlreadyExists {
                key: key.to_string(),
            }),
        }
    }

    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision> {
        let k = self.key(key);
        let put = TxnOp::put(k.clone(), value.to_string(), None);
        match self
            .txn(
                &k,
                Compare::mod_revision(k.clone(), CompareOp::Equal, expected as i64),
                put,
            )
            .await?
        {
            Ok(rev) => Ok(rev),
            Err(None) => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Err(Some(actual)) => Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: Some(actual),
            }),
        }
    }

    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision> {
        let k = self.key(key);
        let del = TxnOp::delete(k.clone(), None);
        let cmp = match expected {
            Some(e) => Compare::mod_revision(k.clone(), CompareOp::Equal, e as i64),
            None => Compare::create_revision(k.clone(), CompareOp::Greater, 0),
        };
        match self.txn(&k, cmp, del).await? {
            Ok(rev) => Ok(rev),
            Err(None) => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Err(Some(actual)) => Err(Error::Conflict {
                key: key.to_string(),
                expected: expected.unwrap_or_default(),
                actual: Some(actual),
            }),
        }
    }

    /// A key-prefix range read: only the matching keys travel.
    async fn list_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<Stored>> {
        let mut c = self.client.clone();
        let p = format!("{}{prefix}", self.kind_prefix(kind, None));
        let resp = self
            .call(async move { c.get(p, Some(GetOptions::new().with_prefix())).await })
            .await?;
        let mut out = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let Some(key) = self.key_of(kv.key()) else {
                continue;
            };
            out.push(self.parse(key, kv.value(), kv.mod_revision())?);
        }
        Ok(out)
    }

    fn transactions(&self) -> bool {
        true
    }

    /// One `Txn`: every write's precondition as a comparison, every write as an operation;
    /// when a comparison fails, the keys are read in the same transaction to name the write
    /// that failed. Every write gets the transaction's revision.
    async fn commit(&self, writes: &[Write]) -> Result<Vec<Revision>> {
        crate::txn::distinct_keys(writes)?;
        let mut when = Vec::with_capacity(writes.len());
        let mut then = Vec::with_capacity(writes.len());
        let mut gets = Vec::with_capacity(writes.len());
        for w in writes {
            let k = self.key(w.key());
            when.push(match w {
                Write::Create { .. } => Compare::create_revision(k.clone(), CompareOp::Equal, 0),
                Write::Update { expected, .. }
                | Write::Delete {
                    expected: Some(expected),
                    ..
                } => Compare::mod_revision(k.clone(), CompareOp::Equal, *expected as i64),
                Write::Delete { expected: None, .. } => {
                    Compare::create_revision(k.clone(), CompareOp::Greater, 0)
                }
            });
            then.push(match w.value() {
                Some(v) => TxnOp::put(k.clone(), v.to_string(), None),
                None => TxnOp::delete(k.clone(), None),
            });
            gets.push(TxnOp::get(k, None));
        }
        let mut c = self.client.clone();
        let txn = Txn::new().when(when).and_then(then).or_else(gets);
        let resp = self.call(async move { c.txn(txn).await }).await?;
        if resp.succeeded() {
            let rev = resp.header().map(|h| h.revision()).unwrap_or_default() as Revision;
            return Ok(vec![rev; writes.len()]);
        }
        let current: Vec<Option<Revision>> = resp
            .op_responses()
            .into_iter()
            .map(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => {
                    g.kvs().first().map(|kv| kv.mod_revision() as Revision)
                }
                _ => None,
            })
            .collect();
        for (w, cur) in writes.iter().zip(current) {
            w.check(cur)?;
        }
        Err(Error::Conflict {
            key: writes
                .first()
                .map(|w| w.key().to_string())
                .unwrap_or_default(),
            expected: 0,
            actual: None,
        })
    }

    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>> {
        let mut c = self.client.clone();
        let p = self.kind_prefix(kind, None);
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after as i64 + 1)
            .with_progress_notify();
        let mut ws = self
            .call(async move { c.watch(p, Some(opts)).await })
            .await?;
        // The first response says whether the watch was created or refused for compaction.
        let first = self.call(ws.message()).await?;
        let Some(first) = first else {
            return Err(self.unavailable("watch closed at creation"));
        };
        if first.compact_revision() > 0 || (first.canceled() && first.compact_revision() > 0) {
            return Err(Error::Compacted {
                requested: after,
                oldest: first.compact_revision() as Revision,
            });
        }
        if first.canceled() {
            return Err(self.unavailable(format!("watch canceled: {}", first.cancel_reason())));
        }
        let this = self.clone();
        let pending = changes_of(&this, &first);
        let stream = futures::stream::unfold(
            (this, ws, Some(pending), false),
            |(this, mut ws, pending, done)| async move {
                if done {
                    return None;
                }
                if let Some(p) = pending
                    && !p.is_empty()
                {
                    return Some((p, (this, ws, None, false)));
                }
                loop {
                    match ws.message().await {
                        Ok(Some(resp)) => {
                            if resp.compact_revision() > 0 {
                                let e = Error::Compacted {
                                    requested: 0,
                                    oldest: resp.compact_revision() as Revision,
                                };
                                return Some((vec![Err(e)], (this, ws, None, true)));
                            }
                            let batch = changes_of(&this, &resp);
                            if !batch.is_empty() {
                                return Some((batch, (this, ws, None, false)));
                            }
                            if resp.canceled() {
                                return None;
                            }
                        }
                        Ok(None) => return None,
                        Err(e) => {
                            let err = this.unavailable(e);
                            return Some((vec![Err(err)], (this, ws, None, true)));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(futures::StreamExt::flat_map(
            stream,
            futures::stream::iter,
        )))
    }
}

fn changes_of(this: &EtcdBackend, resp: &etcd_client::WatchResponse) -> Vec<Result<Change>> {
    let mut out = Vec::new();
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let Some(key) = this.key_of(kv.key()) else {
            continue;
        };
        let revision = kv.mod_revision() as Revision;
        let op = match ev.event_type() {
            EventType::Delete => Ok(ChangeOp::Deleted),
            EventType::Put => match serde_json::from_slice::<Value>(kv.value()) {
                Ok(v) if kv.create_revision() == kv.mod_revision() => Ok(ChangeOp::Created(v)),
                Ok(v) => Ok(ChangeOp::Modified(v)),
                Err(e) => Err(Error::Internal(format!("{key}: stored JSON: {e}"))),
            },
        };
        out.push(op.map(|op| Change { revision, key, op }));
    }
    out
}
