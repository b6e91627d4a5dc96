//! The crate's one error type. Every variant is a protocol answer: it says what the session
//! must do about the bytes that produced it (RFC 4271 §6, RFC 7606 §2).
//!
//! Pure: no I/O.

use crate::notification::NotificationMsg;

/// What went wrong, expressed as the action the speaker must take.
///
/// * [`Error::SessionReset`] carries the NOTIFICATION to send before closing the session.
/// * [`Error::TreatAsWithdraw`] and [`Error::AttributeDiscard`] are RFC 7606 findings; the
///   UPDATE decoder returns them *beside* a decoded message (see [`crate::Decoded`]), never as
///   the `Err` of a decode call.
/// * [`Error::Encode`] means a value cannot be put on the wire (for example a message larger
///   than the negotiated maximum); nothing must be sent.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Send this NOTIFICATION and close the session (RFC 7606 "session reset").
    #[error("session reset ({code}/{subcode}): {reason}", code = notification.code(), subcode = notification.subcode())]
    SessionReset {
        /// The NOTIFICATION to send: code, subcode and data.
        notification: NotificationMsg,
        /// Which field or byte offset was wrong, for logs.
        reason: String,
    },
    /// RFC 7606 §2 "treat-as-withdraw": every prefix announced in the UPDATE (classic NLRI and
    /// MP_REACH_NLRI) must be handled as if it had been withdrawn.
    #[error("treat-as-withdraw: {reason}")]
    TreatAsWithdraw {
        /// The offending attribute type and byte offset.
        reason: String,
    },
    /// RFC 7606 §2 "attribute discard": the named attribute was dropped from the decoded
    /// UPDATE; the rest of the UPDATE is processed normally.
    #[error("attribute discard: {reason}")]
    AttributeDiscard {
        /// The offending attribute type and byte offset.
        reason: String,
    },
    /// A value cannot be encoded; do not send anything.
    #[error("cannot encode: {reason}")]
    Encode {
        /// What did not fit or was out of range.
        reason: String,
    },
}

impl Error {
    /// A session reset with the given code, subcode and data.
    pub fn reset(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> Self {
        Error::SessionReset {
            notification: NotificationMsg::from_codes(code, subcode, data),
            reason: reason.into(),
        }
    }

    /// A treat-as-withdraw finding.
    pub fn withdraw(reason: impl Into<String>) -> Self {
        Error::TreatAsWithdraw {
            reason: reason.into(),
        }
    }

    /// An attribute-discard finding.
    pub fn discard(reason: impl Into<String>) -> Self {
        Error::AttributeDiscard {
            reason: reason.into(),
        }
    }

    /// An encoding failure.
    pub fn encode(reason: impl Into<String>) -> Self {
        Error::Encode {
            reason: reason.into(),
        }
    }

    /// The NOTIFICATION to send, when this error resets the session.
    pub fn notification(&self) -> Option<&NotificationMsg> {
        match self {
            Error::SessionReset { notification, .. } => Some(notification),
            _ => None,
        }
    }
}

/// A decoded value with the RFC 7606 findings met while decoding it.
///
/// `findings` only ever holds [`Error::TreatAsWithdraw`] and [`Error::AttributeDiscard`];
/// a session reset is returned as the `Err` of the decode call instead.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<T> {
    /// The decoded message. Discarded attributes are absent from it.
    pub msg: T,
    /// Non-fatal findings, in the order they were met.
    pub findings: Vec<Error>,
}

impl<T> Decoded<T> {
    /// True when at least one finding asks for treat-as-withdraw.
    pub fn treat_as_withdraw(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f, Error::TreatAsWithdraw { .. }))
    }
}
