//! A backend wrapper whose change streams break after every `n` changes, to prove that
//! watches resume without losing or repeating events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use brindle_datastore::{Backend, Change, Error, Key, Kind, Result, Revision, Stored};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

pub struct Flaky {
    inner: Arc<dyn Backend>,
    every: usize,
    breaks: Arc<AtomicUsize>,
}

impl Flaky {
    pub fn new(inner: Arc<dyn Backend>, every: usize) -> Flaky {
        Flaky {
            inner,
            every,
            breaks: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn breaks(&self) -> usize {
        self.breaks.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Backend for Flaky {
    fn endpoint(&self) -> String {
        format!("flaky({})", self.inner.endpoint())
    }
    async fn get(&self, key: &Key) -> Result<Stored> {
        self.inner.get(key).await
    }
    async fn list(&self, kind: Kind, ns: Option<&str>) -> Result<(Vec<Stored>, Revision)> {
        self.inner.list(kind, ns).await
    }
    async fn create(&self, key: &Key, value: &Value) -> Result<Revision> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision> {
        self.inner.update(key, value, expected).await
    }
    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision> {
        self.inner.delete(key, expected).await
    }
    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>> {
        let inner = self.inner.changes(kind, after).await?;
        let breaks = self.breaks.clone();
        let every = self.every;
        // Pass `every` changes, then fail like a dropped connection.
        let cut = inner.take(every).chain(futures::stream::once(async move {
            breaks.fetch_add(1, Ordering::SeqCst);
            Err(Error::Unavailable {
                endpoint: "flaky".into(),
                reason: "cut".into(),
            })
        }));
        Ok(Box::pin(cut))
    }
}
