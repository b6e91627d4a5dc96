//! Multi-object transactions: several writes, each with its own precondition, applied
//! together or not at all.
//!
//! IPAM uses them to charge a handle and take an address from a block in one commit (one
//! fsync on SQLite, one Raft round on etcd) instead of two, and so that no crash or timeout
//! can ever leave one without the other. SQLite runs them in one `BEGIN IMMEDIATE`
//! transaction, etcd in one `Txn` whose comparisons are every write's precondition, the
//! memory store under one lock. The Kubernetes API has no multi-object transaction:
//! [`Backend::transactions`] is false there and callers fall back to ordered single writes.

use crate::{Datastore, Error, Key, Resource, Result, Revision, encode, revision_of};
use serde_json::Value;

/// One write of a transaction, as a backend sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create; fails with AlreadyExists.
    Create {
        /// Where.
        key: Key,
        /// The object.
        value: Value,
    },
    /// Replace if still at `expected`; fails with NotFound or Conflict.
    Update {
        /// Where.
        key: Key,
        /// The object.
        value: Value,
        /// The revision it was read at.
        expected: Revision,
    },
    /// Delete (if still at `expected`, when given); fails with NotFound or Conflict.
    Delete {
        /// Where.
        key: Key,
        /// The revision it was read at, if the delete is conditional.
        expected: Option<Revision>,
    },
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &Key {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }

    /// The value written (None for a delete).
    pub fn value(&self) -> Option<&Value> {
        match self {
            Write::Create { value, .. } | Write::Update { value, .. } => Some(value),
            Write::Delete { .. } => None,
        }
    }

    /// Checks the precondition against the key's current revision (None when absent):
    /// the change-log operation name (`create`, `update`, `delete`) or the error naming the key.
    pub fn check(&self, current: Option<Revision>) -> Result<&'static str> {
        let k = || self.key().to_string();
        match (self, current) {
            (Write::Create { .. }, None) => Ok("create"),
            (Write::Create { .. }, Some(_)) => Err(Error::AlreadyExists { key: k() }),
            (Write::Update { .. } | Write::Delete { .. }, None) => {
                Err(Error::NotFound { key: k() })
            }
            (Write::Update { expected, .. }, Some(r)) if r != *expected => Err(Error::Conflict {
                key: k(),
                expected: *expected,
                actual: Some(r),
            }),
            (Write::Update { .. }, Some(_)) => Ok("update"),
            (
                Write::Delete {
                    expected: Some(e), ..
                },
                Some(r),
            ) if r != *e => Err(Error::Conflict {
                key: k(),
                expected: *e,
                actual: Some(r),
            }),
            (Write::Delete { .. }, Some(_)) => Ok("delete"),
        }
    }
}

/// Refuses a transaction that writes one key twice (its outcome would depend on order).
pub(crate) fn distinct_keys(writes: &[Write]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for w in writes {
        if !seen.insert(w.key().path()) {
            return Err(Error::Internal(format!(
                "a transaction writes {} twice",
                w.key()
            )));
        }
    }
    Ok(())
}

/// One typed write of [`Datastore::commit`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Create the resource.
    Create(Resource),
    /// Replace the resource if it is still at the revision in its `resourceVersion`.
    Update(Resource),
    /// Delete, optionally only at a revision.
    Delete(Key, Option<Revision>),
}

impl Datastore {
    /// True when the backend applies [`Datastore::commit`] atomically (memory, SQLite, etcd;
    /// not Kubernetes).
    pub fn transactions(&self) -> bool {
        self.backend().transactions()
    }

    /// Validates every resource, then applies every write or none. Returns each write's
    /// revision. A failed precondition is that write's error (AlreadyExists, NotFound or
    /// Conflict, naming its key); an ambiguous failure ([`Error::is_ambiguous`]) means all of
    /// it or none of it may have happened.
    pub async fn commit(&self, ops: &[Op]) -> Result<Vec<Revision>> {
        let mut writes = Vec::with_capacity(ops.len());
        for op in ops {
            writes.push(match op {
                Op::Create(r) => Write::Create {
                    key: Self::check(r)?,
                    value: encode(r),
                },
                Op::Update(r) => {
                    let key = Self::check(r)?;
                    let expected = revision_of(r).ok_or_else(|| {
                        Error::Internal(format!(
                            "{key}: an update in a transaction needs the revision it was read at"
                        ))
                    })?;
                    Write::Update {
                        key,
                        value: encode(r),
                        expected,
                    }
                }
                Op::Delete(key, expected) => Write::Delete {
                    key: key.clone(),
                    expected: *expected,
                },
            });
        }
        distinct_keys(&writes)?;
        self.backend().commit(&writes).await
    }
}
