//! One datastore API over the Kubernetes API, etcd v3 and an embedded SQLite store.
//!
//! ```text
//!   callers (ipam, felix, bgp, brindlectl)
//!        |  typed: Resource / Key / Revision
//!        v
//!   Datastore  -- validates every write (brindle-crds), builds watches, retries conflicts
//!        |  untyped: JSON values at keys, revisions
//!        v
//!   dyn Backend: memory | sqlite | etcd | kubernetes
//! ```
//!
//! Every stored object carries a revision (`metadata.resourceVersion` as a decimal string).
//! Updates are compare-and-swap on that revision; every read-modify-write in Brindle goes through
//! [`retry::retry_on_conflict`]. Watches give an initial listing, an explicit [`WatchEvent::InSync`]
//! marker, then ordered changes, and resume from the last revision seen after a disconnect
//! (re-listing, announced by [`WatchEvent::Resync`], when the history is gone).

pub mod etcd;
pub mod kubernetes;
pub mod memory;
pub mod reflector;
pub mod retry;
pub mod sqlite;
pub mod txn;
pub mod watch;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use brindle_crds::ValidationErrors;
pub use brindle_crds::{Kind, Resource};
use brindle_selector::Selector;
pub use retry::{RetryPolicy, retry_on_conflict};
pub use txn::{Op, Write};
pub use watch::{WatchEvent, WatchStream};

/// A store-wide, monotonically increasing version number. Every write gets a new one.
pub type Revision = u64;

/// How long one datastore call may take before it fails with [`Error::Unavailable`].
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The object's kind.
    pub kind: Kind,
    /// Its namespace (namespaced kinds only).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl Key {
    /// A cluster-scoped key.
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            namespace: None,
            name: name.into(),
        }
    }

    /// A namespaced key.
    pub fn namespaced(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Key {
        Key {
            kind,
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// The key of a resource.
    pub fn of(r: &Resource) -> Key {
        Key {
            kind: r.kind(),
            namespace: if r.kind().namespaced() {
                r.namespace().map(str::to_string)
            } else {
                None
            },
            name: r.name().to_string(),
        }
    }

    /// The storage path: `plural/name` or `plural/namespace/name`.
    pub fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind.plural(), self.name),
            None => format!("{}/{}", self.kind.plural(), self.name),
        }
    }

    /// Parses a storage path back into a key.
    pub fn from_path(path: &str) -> Option<Key> {
        let mut parts = path.splitn(3, '/');
        let plural = parts.next()?;
        let kind = Kind::ALL.iter().copied().find(|k| k.plural() == plural)?;
        let a = parts.next()?;
        match (kind.namespaced(), parts.next()) {
            (true, Some(name)) => Some(Key::namespaced(kind, a, name)),
            (false, None) => Some(Key::new(kind, a)),
            _ => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind.name(), self.name),
            None => write!(f, "{}/{}", self.kind.name(), self.name),
        }
    }
}

/// Datastore errors. Each names the object or the endpoint it is about.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No object at the key.
    #[error("{key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// `create` found an object already there.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The object changed since the revision the caller read.
    #[error("{key}: conflict (expected revision {expected}, found {actual:?})")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The revision found (None when the object is gone).
        actual: Option<Revision>,
    },
    /// The datastore could not be reached or did not answer in time.
    #[error("datastore {endpoint} unavailable: {reason}")]
    Unavailable {
        /// The endpoint (file path, URL...).
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The resource failed validation.
    #[error("{key} is invalid: {errors}")]
    Invalid {
        /// The key.
        key: String,
        /// Every rejected field.
        errors: ValidationErrors,
    },
    /// A watch asked for history that has been compacted away.
    #[error("revision {requested} has been compacted (oldest available {oldest})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// Stored data that does not decode, or a backend-specific failure.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// True when a write that failed this way may still have happened (or may still happen):
    /// the datastore timed out or the connection broke after the request left. The caller
    /// must re-read before it undoes anything on the strength of the failure.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// The datastore's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One object as a backend stores it: JSON without `resourceVersion`, plus its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Where it lives.
    pub key: Key,
    /// The object (apiVersion, kind, metadata, spec).
    pub value: Value,
    /// The revision of its last write.
    pub revision: Revision,
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOp {
    /// Created.
    Created(Value),
    /// Replaced.
    Modified(Value),
    /// Deleted.
    Deleted,
    /// Nothing changed, but the store has reached this revision (a Kubernetes bookmark):
    /// a watch resumes from here, so a quiet kind does not fall behind the compaction point.
    Progress,
}

/// One entry of a backend's change history.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The revision of the write.
    pub revision: Revision,
    /// The key written.
    pub key: Key,
    /// What was written.
    pub op: ChangeOp,
}

/// A storage backend. Values are opaque JSON to it; the [`Datastore`] does typing and
/// validation. Every call fails within a bounded time.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Names the backend's endpoint in errors and logs.
    fn endpoint(&self) -> String;
    /// Reads one object.
    async fn get(&self, key: &Key) -> Result<Stored>;
    /// Reads every object of a kind (in one namespace, or all) and the store's revision at
    /// that moment, so a watch can continue from it.
    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Stored>, Revision)>;
    /// Writes a new object; fails with AlreadyExists.
    async fn create(&self, key: &Key, value: &Value) -> Result<Revision>;
    /// Replaces an object if its revision is still `expected`.
    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision>;
    /// Deletes an object, if its revision is still `expected` when given.
    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision>;
    /// Changes to objects of `kind` with revisions after `after`, in order. The stream ends
    /// (or yields an error) when the connection is lost; the caller resumes from the last
    /// revision it saw. Fails with [`Error::Compacted`] when that history is gone.
    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>>;
    /// The cluster-scoped objects of `kind` whose names start with `prefix`, in name order
    /// (say, one node's block affinities). Backends read only those natively (an index range
    /// on SQLite, a key prefix on etcd); the default lists the kind and filters.
    async fn list_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<Stored>> {
        let (items, _) = self.list(kind, None).await?;
        Ok(items
            .into_iter()
            .filter(|s| s.key.name.starts_with(prefix))
            .collect())
    }
    /// True when [`Backend::commit`] is atomic.
    fn transactions(&self) -> bool {
        false
    }
    /// Applies every write (each with its precondition) or none; see [`txn`].
    async fn commit(&self, writes: &[Write]) -> Result<Vec<Revision>> {
        let _ = writes;
        Err(Error::Internal(format!(
            "{}: multi-object transactions are not supported",
            self.endpoint()
        )))
    }
}

/// Typed access to a backend: every write is validated, every read decoded.
#[derive(Clone)]
pub struct Datastore {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Datastore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datastore")
            .field("endpoint", &self.backend.endpoint())
            .finish()
    }
}

/// Turns a stored value into a typed resource with its revision in `resourceVersion`.
pub fn decode(stored: Stored) -> Result<Resource> {
    let Stored {
        key,
        mut value,
        revision,
    } = stored;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("apiVersion");
        obj.remove("kind");
    }
    let mut r = Resource::from_value_of_kind(key.kind, value)
        .map_err(|e| Error::Internal(format!("{key}: stored object does not decode: {e}")))?;
    r.metadata_mut().resource_version = Some(revision.to_string());
    Ok(r)
}

/// The JSON a backend stores for a resource: no `resourceVersion`.
pub fn encode(r: &Resource) -> Value {
    let mut v = r.to_value();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

/// The revision a resource was read at, from `metadata.resourceVersion`.
pub fn revision_of(r: &Resource) -> Option<Revision> {
    r.metadata()
        .resource_version
        .as_deref()
        .and_then(|s| s.parse().ok())
}

impl Datastore {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn Backend>) -> Datastore {
        Datastore { backend }
    }

    /// The backend's endpoint.
    pub fn endpoint(&self) -> String {
        self.backend.endpoint()
    }

    /// The underlying backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Reads one resource.
    pub async fn get(&self, key: &Key) -> Result<Resource> {
        decode(self.backend.get(key).await?)
    }

    /// Lists resources of a kind, optionally in one namespace and filtered by a label
    /// selector over `metadata.labels`. Sorted by key.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<Vec<Resource>> {
        let (items, _) = self.backend.list(kind, namespace).await?;
        Ok(Self::decode_all(items, selector))
    }

    /// The cluster-scoped objects of `kind` whose names start with `prefix` (read natively by
    /// the backend: the rest of the kind is not read).
    pub async fn list_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<Resource>> {
        let items = self.backend.list_prefix(kind, prefix).await?;
        Ok(Self::decode_all(items, None))
    }

    fn decode_all(items: Vec<Stored>, selector: Option<&Selector>) -> Vec<Resource> {
        let mut out = Vec::with_capacity(items.len());
        for s in items {
            // One object that does not decode (written by a newer version, say) is reported
            // and skipped; it must not hide every other object of its kind.
            let key = s.key.clone();
            let r = match decode(s) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(target: "datastore.list", %key, error = %e, "skipping undecodable object");
                    continue;
                }
            };
            let labels = r.metadata().labels.clone().unwrap_or_default();
            if selector.is_none_or(|sel| sel.matches(&labels)) {
                out.push(r);
            }
        }
        out.sort_by_key(Key::of);
        out
    }

    pub(crate) fn check(r: &Resource) -> Result<Key> {
        let key = Key::of(r);
        r.validate().map_err(|errors| Error::Invalid {
            key: key.to_string(),
            errors,
        })?;
        if r.kind().namespaced() && key.namespace.is_none() {
            return Err(Error::Invalid {
                key: key.to_string(),
                errors: ValidationErrors(vec![brindle_crds::FieldError {
                    path: "metadata.namespace".into(),
                    reason: "required for this kind".into(),
                }]),
            });
        }
        Ok(key)
    }

    /// Creates a resource; returns it with its revision.
    pub async fn create(&self, r: &Resource) -> Result<Resource> {
        let key = Self::check(r)?;
        let rev = self.backend.create(&key, &encode(r)).await?;
        let mut out = r.clone();
        out.metadata_mut().resource_version = Some(rev.to_string());
        Ok(out)
    }

    /// Replaces a resource if it is still at the revision in its `resourceVersion` (which is
    /// required); returns it with its new revision.
    pub async fn update(&self, r: &Resource) -> Result<Resource> {
        let key = Self::check(r)?;
        let expected = revision_of(r).ok_or_else(|| Error::Invalid {
            key: key.to_string(),
            errors: ValidationErrors(vec![brindle_crds::FieldError {
                path: "metadata.resourceVersion".into(),
                reason: "an update needs the revision it was read at".into(),
            }]),
        })?;
        let rev = self.backend.update(&key, &encode(r), expected).await?;
        let mut out = r.clone();
        out.metadata_mut().resource_version = Some(rev.to_string());
        Ok(out)
    }

    /// Deletes a resource, optionally only if it is still at `expected`.
    pub async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<()> {
        self.backend.delete(key, expected).await.map(|_| ())
    }

    /// Creates the resource, or replaces whatever is there (retrying on conflict).
    pub async fn apply(&self, r: &Resource) -> Result<Resource> {
        let key = Self::check(r)?;
        retry_on_conflict(&RetryPolicy::default(), &key.to_string(), || async {
            match self.backend.get(&key).await {
                Err(Error::NotFound { .. }) => match self.create(r).await {
                    // Lost a race with another creator: retry as an update.
                    Err(Error::AlreadyExists { key }) => Err(Error::Conflict {
                        key,
                        expected: 0,
                        actual: None,
                    }),
                    other => other,
                },
                Err(e) => Err(e),
                Ok(current) => {
                    let mut next = r.clone();
                    next.metadata_mut().resource_version = Some(current.revision.to_string());
                    self.update(&next).await
                }
            }
        })
        .await
    }

    /// Watches a kind: initial listing (or resumption after `from`), [`WatchEvent::InSync`],
    /// then changes; reconnects with backoff by itself. Dropping the stream stops it.
    pub fn watch(&self, kind: Kind, from: Option<Revision>) -> WatchStream {
        watch::spawn(self.backend.clone(), kind, from)
    }
}

/// Opens a datastore from its one-string description: `memory`, `sqlite:PATH` (with
/// `?synchronous=normal` to trade the last commits on a power cut for speed; FULL by default),
/// `etcd:http://HOST:PORT[,http://HOST:PORT...]`, or `kubernetes`. `BRINDLE_DATASTORE`
/// holds it when no flag is given.
pub async fn open(spec: &str) -> Result<Datastore> {
    let backend: Arc<dyn Backend> = if spec == "memory" {
        Arc::new(memory::MemoryBackend::new())
    } else if let Some(rest) = spec.strip_prefix("sqlite:") {
        let (path, durability) = match rest.split_once('?') {
            None => (rest, sqlite::Durability::Full),
            Some((p, "synchronous=full")) => (p, sqlite::Durability::Full),
            Some((p, "synchronous=normal")) => (p, sqlite::Durability::Normal),
            Some((_, q)) => {
                return Err(Error::Unavailable {
                    endpoint: spec.to_string(),
                    reason: format!(
                        "unknown option {q:?} (synchronous=full or synchronous=normal)"
                    ),
                });
            }
        };
        Arc::new(sqlite::SqliteBackend::open_with(path, durability)?)
    } else if let Some(urls) = spec.strip_prefix("etcd:") {
        let endpoints: Vec<String> = urls.split(',').map(str::to_string).collect();
        Arc::new(etcd::EtcdBackend::connect(&endpoints, etcd::DEFAULT_PREFIX).await?)
    } else if spec == "kubernetes" {
        Arc::new(kubernetes::KubernetesBackend::infer().await?)
    } else {
        return Err(Error::Unavailable {
            endpoint: spec.to_string(),
            reason: "unknown datastore (use memory, sqlite:PATH, etcd:http://HOST:PORT[,...] \
                     or kubernetes)"
                .to_string(),
        });
    };
    Ok(Datastore::new(backend))
}
