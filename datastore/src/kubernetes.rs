//! The Kubernetes backend: Brindle's CRDs (group `brindle.dev`, version `v1`) through kube-rs.
//!
//! `resourceVersion` is the revision (parsed as an integer: every API server backed by etcd
//! issues numeric versions, though Kubernetes calls them opaque). Updates are `PUT` with the
//! expected `resourceVersion` (409 → Conflict); deletes carry a precondition. Watches ask for
//! bookmarks (which move the resume point, as `ChangeOp::Progress`), skip an unreadable event
//! rather than fail on it, and report 410 Gone as compaction, which makes the watch re-list.
//! Credentials come from the in-cluster service account or the kubeconfig
//! (`kube::Client::try_default`).
//!
//! There is no API server on the build machines: the tests drive this backend against kube's
//! mock service (request paths, verbs, bodies, error mapping, 410 handling).

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions,
    WatchEvent, WatchParams,
};
use serde_json::Value;

use crate::{Backend, Change, ChangeOp, Error, Key, Kind, Result, Revision, Stored};

/// The Kubernetes backend.
#[derive(Clone)]
pub struct KubernetesBackend {
    client: kube::Client,
    endpoint: String,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Server-managed metadata that is not part of what Brindle stores.
const SERVER_FIELDS: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
];

impl KubernetesBackend {
    /// Connects with in-cluster or kubeconfig credentials.
    pub async fn infer() -> Result<KubernetesBackend> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| Error::Unavailable {
                endpoint: "kubernetes".into(),
                reason: e.to_string(),
            })?;
        let endpoint = format!("kubernetes:{}", config.cluster_url);
        let client = kube::Client::try_from(config).map_err(|e| Error::Unavailable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
        Ok(KubernetesBackend { client, endpoint })
    }

    /// Wraps an existing client (tests pass a mock service).
    pub fn new(client: kube::Client, endpoint: impl Into<String>) -> KubernetesBackend {
        KubernetesBackend {
            client,
            endpoint: endpoint.into(),
        }
    }

    fn resource(kind: Kind) -> ApiResource {
        ApiResource {
            group: brindle_crds::GROUP.into(),
            version: brindle_crds::VERSION.into(),
            api_version: brindle_crds::API_VERSION.into(),
            kind: kind.name().into(),
            plural: kind.plural().into(),
        }
    }

    fn api(&self, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = Self::resource(kind);
        match namespace {
            Some(ns) if kind.namespaced() => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    fn map_err(&self, key: &str, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) => match s.code {
                404 => Error::NotFound {
                    key: key.to_string(),
                },
                410 => Error::Compacted {
                    requested: 0,
                    oldest: 0,
                },
                422 | 400 => {
                    Error::Internal(format!("{key}: rejected by the API server: {}", s.message))
                }
                code => Error::Unavailable {
                    endpoint: self.endpoint.clone(),
                    reason: format!("HTTP {code}: {}", s.message),
                },
            },
            other => Error::Unavailable {
                endpoint: self.endpoint.clone(),
                reason: other.to_string(),
            },
        }
    }

    fn stored(obj: DynamicObject, kind: Kind) -> Result<Stored> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let key = Key {
            kind,
            namespace: if kind.namespaced() {
                obj.metadata.namespace.clone()
            } else {
                None
            },
            name,
        };
        let revision = revision_of(&obj, &key)?;
        let mut value =
            serde_json::to_value(&obj).map_err(|e| Error::Internal(format!("{key}: {e}")))?;
        if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_FIELDS {
                m.remove(*f);
            }
        }
        Ok(Stored {
            key,
            value,
            revision,
        })
    }

    fn object(key: &Key, value: &Value, rv: Option<Revision>) -> Result<DynamicObject> {
        let mut obj: DynamicObject = serde_json::from_value(value.clone())
            .map_err(|e| Error::Internal(format!("{key}: {e}")))?;
        obj.metadata.resource_version = rv.map(|r| r.to_string());
        Ok(obj)
    }
}

fn revision_of(obj: &DynamicObject, key: &Key) -> Result<Revision> {
    let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
    rv.parse()
        .map_err(|_| Error::Internal(format!("{key}: resourceVersion '{rv}' is not numeric")))
}

#[async_trait]
impl Backend for KubernetesBackend {
    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    async fn get(&self, key: &Key) -> Result<Stored> {
        let obj = self
            .api(key.kind, key.namespace.as_deref())
            .get(&key.name)
            .await
            .map_err(|e| self.map_err(&key.to_string(), e))?;
        Self::stored(obj, key.kind)
    }

    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Stored>, Revision)> {
        let list = self
            .api(kind, namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| self.map_err(kind.plural(), e))?;
        let rev = list
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        let items = list
            .items
            .into_iter()
            .map(|o| Self::stored(o, kind))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, rev))
    }

    async fn create(&self, key: &Key, value: &Value) -> Result<Revision> {
        let obj = Self::object(key, value, None)?;
        match self
            .api(key.kind, key.namespace.as_deref())
            .create(&PostParams::default(), &obj)
            .await
        {
            Ok(o) => revision_of(&o, key),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::AlreadyExists {
                key: key.to_string(),
            }),
            Err(e) => Err(self.map_err(&key.to_string(), e)),
        }
    }

    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision> {
        let obj = Self::object(key, value, Some(expected))?;
        match self
            .api(key.kind, key.namespace.as_deref())
            .replace(&key.name, &PostParams::default(), &obj)
            .await
        {
            Ok(o) => revision_of(&o, key),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: None,
            }),
            Err(e) => Err(self.map_err(&key.to_string(), e)),
        }
    }

    /// Kubernetes does not report the revision of a deletion; 0 is returned.
    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision> {
        let dp = DeleteParams {
            preconditions: expected.map(|r| Preconditions {
                resource_version: Some(r.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .api(key.kind, key.namespace.as_deref())
            .delete(&key.name, &dp)
            .await
        {
            Ok(_) => Ok(0),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Conflict {
                key: key.to_string(),
                expected: expected.unwrap_or_default(),
                actual: None,
            }),
            Err(e) => Err(self.map_err(&key.to_string(), e)),
        }
    }

    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>> {
        // Bookmarks are on by default in kube 5.
        let wp = WatchParams::default().timeout(290);
        let events = self
            .api(kind, None)
            .watch(&wp, &after.to_string())
            .await
            .map_err(|e| self.map_err(kind.plural(), e))?;
        let endpoint = self.endpoint.clone();
        let stream = events.filter_map(move |ev| {
            let endpoint = endpoint.clone();
            async move {
                let (obj, make): (DynamicObject, fn(Value) -> ChangeOp) = match ev {
                    Ok(WatchEvent::Added(o)) => (o, ChangeOp::Created),
                    Ok(WatchEvent::Modified(o)) => (o, ChangeOp::Modified),
                    Ok(WatchEvent::Deleted(o)) => (o, |_| ChangeOp::Deleted),
                    // A bookmark moves the resume point, so a quiet kind's watch does not
                    // restart from a revision the server has compacted away.
                    Ok(WatchEvent::Bookmark(b)) => {
                        let rv = b.metadata.resource_version;
                        return match rv.parse() {
                            Ok(revision) => Some(Ok(Change {
                                revision,
                                key: Key::new(kind, ""),
                                op: ChangeOp::Progress,
                            })),
                            Err(_) => {
                                tracing::warn!(target: "datastore.kubernetes", kind = kind.name(), rv, "ignoring a bookmark with a non-numeric resourceVersion");
                                None
                            }
                        };
                    }
                    Ok(WatchEvent::Error(s)) if s.code == 410 => {
                        return Some(Err(Error::Compacted {
                            requested: after,
                            oldest: 0,
                        }));
                    }
                    Ok(WatchEvent::Error(s)) => {
                        return Some(Err(Error::Unavailable {
                            endpoint,
                            reason: format!("watch error {}: {}", s.code, s.message),
                        }));
                    }
                    Err(e) => {
                        return Some(Err(Error::Unavailable {
                            endpoint,
                            reason: e.to_string(),
                        }));
                    }
                };
                // One object that cannot be read (say, a resourceVersion that is not a
                // number) is reported and skipped: failing the stream would resume at the same
                // point and fail again forever.
                match Self::stored(obj, kind) {
                    Ok(s) => Some(Ok(Change {
                        revision: s.revision,
                        key: s.key,
                        op: make(s.value),
                    })),
                    Err(e) => {
                        tracing::error!(target: "datastore.kubernetes", kind = kind.name(), error = %e, "skipping an unreadable watch event");
                        None
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}
