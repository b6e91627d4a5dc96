//! The crate's one error type.

use std::net::IpAddr;

/// What went wrong in the driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed.
    #[error("{what} for {peer:?}: {source}")]
    Socket {
        /// The operation (e.g. "setsockopt TCP_MD5SIG").
        what: &'static str,
        /// The neighbor it was about, when any.
        peer: Option<IpAddr>,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listener could not be created.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink {what}: {reason}")]
    Netlink {
        /// The operation.
        what: &'static str,
        /// The error text.
        reason: String,
    },
    /// The configuration is invalid.
    #[error("config: {field}: {reason}")]
    Config {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The speaker task is gone.
    #[error("the speaker task has stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
