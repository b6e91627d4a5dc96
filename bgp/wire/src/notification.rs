//! NOTIFICATION messages (RFC 4271 §4.5) with every error code and subcode registered by IANA
//! as typed enums, and the RFC 8203/RFC 9003 shutdown communication carried by Cease subcodes 2
//! (Administrative Shutdown) and 4 (Administrative Reset).
//!
//! ```text
//!  0                   1                   2                   3
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  | Error code    | Error subcode |   Data (variable)             |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Pure: no I/O.

use std::fmt;

use crate::error::Error;

macro_rules! subcode_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr,)* }) => {
        $(#[$m])*
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this crate does not name.
            Unknown(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$var => $val,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

subcode_enum!(
    /// Code 1, Message Header Error (RFC 4271 §6.1).
    HeaderSubcode {
        /// 0: no specific subcode.
        Unspecific = 0,
        /// 1: the marker is not all ones.
        ConnectionNotSynchronized = 1,
        /// 2: the length field is out of range; data is the length.
        BadMessageLength = 2,
        /// 3: unknown message type; data is the type.
        BadMessageType = 3,
    }
);

subcode_enum!(
    /// Code 2, OPEN Message Error (RFC 4271 §6.2, RFC 5492, RFC 9234).
    OpenSubcode {
        /// 0: no specific subcode.
        Unspecific = 0,
        /// 1: data is the largest supported version (2 octets).
        UnsupportedVersionNumber = 1,
        /// 2: the peer's AS is not the configured one.
        BadPeerAs = 2,
        /// 3: BGP identifier is zero or otherwise invalid.
        BadBgpIdentifier = 3,
        /// 4: an optional parameter type is not recognised.
        UnsupportedOptionalParameter = 4,
        /// 6: hold time of 1 or 2 seconds (or refused by policy).
        UnacceptableHoldTime = 6,
        /// 7: RFC 5492 unsupported capability; data lists the capabilities.
        UnsupportedCapability = 7,
        /// 11: RFC 9234 BGP role mismatch.
        RoleMismatch = 11,
    }
);

subcode_enum!(
    /// Code 3, UPDATE Message Error (RFC 4271 §6.3).
    UpdateSubcode {
        /// 0: no specific subcode.
        Unspecific = 0,
        /// 1: lengths inconsistent, duplicate MP attributes.
        MalformedAttributeList = 1,
        /// 2: unknown attribute with the Optional bit clear.
        UnrecognizedWellKnownAttribute = 2,
        /// 3: ORIGIN, AS_PATH or NEXT_HOP missing.
        MissingWellKnownAttribute = 3,
        /// 4: flags conflict with the attribute type.
        AttributeFlagsError = 4,
        /// 5: attribute length wrong for its type.
        AttributeLengthError = 5,
        /// 6: ORIGIN value undefined.
        InvalidOriginAttribute = 6,
        /// 8: NEXT_HOP syntactically invalid.
        InvalidNextHopAttribute = 8,
        /// 9: optional attribute malformed.
        OptionalAttributeError = 9,
        /// 10: NLRI field syntactically invalid.
        InvalidNetworkField = 10,
        /// 11: AS_PATH malformed.
        MalformedAsPath = 11,
    }
);

subcode_enum!(
    /// Code 5, Finite State Machine Error (RFC 6608).
    FsmSubcode {
        /// 0: unspecified.
        Unspecific = 0,
        /// 1: unexpected message in OpenSent.
        UnexpectedMessageInOpenSent = 1,
        /// 2: unexpected message in OpenConfirm.
        UnexpectedMessageInOpenConfirm = 2,
        /// 3: unexpected message in Established.
        UnexpectedMessageInEstablished = 3,
    }
);

subcode_enum!(
    /// Code 6, Cease (RFC 4486, RFC 8538, RFC 9384).
    CeaseSubcode {
        /// 0: no specific subcode.
        Unspecific = 0,
        /// 1: maximum number of prefixes reached.
        MaxPrefixesReached = 1,
        /// 2: administrative shutdown (may carry a shutdown communication).
        AdministrativeShutdown = 2,
        /// 3: peer de-configured.
        PeerDeconfigured = 3,
        /// 4: administrative reset (may carry a shutdown communication).
        AdministrativeReset = 4,
        /// 5: connection rejected.
        ConnectionRejected = 5,
        /// 6: other configuration change.
        OtherConfigurationChange = 6,
        /// 7: connection collision resolution.
        ConnectionCollisionResolution = 7,
        /// 8: out of resources.
        OutOfResources = 8,
        /// 9: RFC 8538 hard reset.
        HardReset = 9,
        /// 10: RFC 9384 BFD down.
        BfdDown = 10,
    }
);

subcode_enum!(
    /// Code 7, ROUTE-REFRESH Message Error (RFC 7313 §5).
    RouteRefreshSubcode {
        /// 0: no specific subcode.
        Unspecific = 0,
        /// 1: invalid message length.
        InvalidMessageLength = 1,
    }
);

/// A NOTIFICATION error code with its typed subcode.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader(HeaderSubcode),
    /// 2: OPEN Message Error.
    Open(OpenSubcode),
    /// 3: UPDATE Message Error.
    Update(UpdateSubcode),
    /// 4: Hold Timer Expired (subcode carried as is).
    HoldTimerExpired(u8),
    /// 5: Finite State Machine Error.
    Fsm(FsmSubcode),
    /// 6: Cease.
    Cease(CeaseSubcode),
    /// 7: ROUTE-REFRESH Message Error.
    RouteRefresh(RouteRefreshSubcode),
    /// 8: Send Hold Timer Expired (RFC 9687; subcode carried as is).
    SendHoldTimerExpired(u8),
    /// Any other code.
    Unknown {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
}

/// `BadPeerAs` → `Bad Peer AS` (acronyms as the RFCs write them).
fn words(debug: &str) -> String {
    let mut out = String::new();
    for (i, ch) in debug.chars().enumerate() {
        if i > 0 && ch.is_uppercase() {
            out.push(' ');
        }
        out.push(ch);
    }
    out.split(' ')
        .map(|w| match w {
            "As" => "AS",
            "Bgp" => "BGP",
            "Fsm" => "FSM",
            "Nlri" => "NLRI",
            "Open" => "OPEN",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl ErrorCode {
    /// The error in words, as the RFCs name it: `OPEN Message Error / Bad Peer AS`.
    pub fn text(&self) -> String {
        match self {
            ErrorCode::MessageHeader(s) => {
                format!("Message Header Error / {}", words(&format!("{s:?}")))
            }
            ErrorCode::Open(s) => format!("OPEN Message Error / {}", words(&format!("{s:?}"))),
            ErrorCode::Update(s) => format!("UPDATE Message Error / {}", words(&format!("{s:?}"))),
            ErrorCode::HoldTimerExpired(_) => "Hold Timer Expired".into(),
            ErrorCode::Fsm(s) => {
                format!("Finite State Machine Error / {}", words(&format!("{s:?}")))
            }
            ErrorCode::Cease(s) => format!("Cease / {}", words(&format!("{s:?}"))),
            ErrorCode::RouteRefresh(s) => {
                format!("ROUTE-REFRESH Message Error / {}", words(&format!("{s:?}")))
            }
            ErrorCode::SendHoldTimerExpired(_) => "Send Hold Timer Expired".into(),
            ErrorCode::Unknown { code, subcode } => format!("error {code}/{subcode}"),
        }
    }

    /// Type the raw code and subcode.
    pub fn from_codes(code: u8, subcode: u8) -> ErrorCode {
        match code {
            1 => ErrorCode::MessageHeader(subcode.into()),
            2 => ErrorCode::Open(subcode.into()),
            3 => ErrorCode::Update(subcode.into()),
            4 => ErrorCode::HoldTimerExpired(subcode),
            5 => ErrorCode::Fsm(subcode.into()),
            6 => ErrorCode::Cease(subcode.into()),
            7 => ErrorCode::RouteRefresh(subcode.into()),
            8 => ErrorCode::SendHoldTimerExpired(subcode),
            code => ErrorCode::Unknown { code, subcode },
        }
    }

    /// The wire error code.
    pub fn code(&self) -> u8 {
        match self {
            ErrorCode::MessageHeader(_) => 1,
            ErrorCode::Open(_) => 2,
            ErrorCode::Update(_) => 3,
            ErrorCode::HoldTimerExpired(_) => 4,
            ErrorCode::Fsm(_) => 5,
            ErrorCode::Cease(_) => 6,
            ErrorCode::RouteRefresh(_) => 7,
            ErrorCode::SendHoldTimerExpired(_) => 8,
            ErrorCode::Unknown { code, .. } => *code,
        }
    }

    /// The wire error subcode.
    pub fn subcode(&self) -> u8 {
        match *self {
            ErrorCode::MessageHeader(s) => s.into(),
            ErrorCode::Open(s) => s.into(),
            ErrorCode::Update(s) => s.into(),
            ErrorCode::HoldTimerExpired(s) | ErrorCode::SendHoldTimerExpired(s) => s,
            ErrorCode::Fsm(s) => s.into(),
            ErrorCode::Cease(s) => s.into(),
            ErrorCode::RouteRefresh(s) => s.into(),
            ErrorCode::Unknown { subcode, .. } => subcode,
        }
    }
}

/// A NOTIFICATION message (RFC 4271 §4.5). The data is kept raw so that the message
/// round-trips exactly; typed views are methods.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotificationMsg {
    /// Error code and subcode.
    pub error: ErrorCode,
    /// Diagnostic data, meaning depends on the code.
    pub data: Vec<u8>,
}

/// Longest shutdown communication in octets (RFC 9003 §2).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

impl NotificationMsg {
    /// Build from raw code, subcode and data.
    pub fn from_codes(code: u8, subcode: u8, data: Vec<u8>) -> NotificationMsg {
        NotificationMsg {
            error: ErrorCode::from_codes(code, subcode),
            data,
        }
    }

    /// Build from a typed code.
    pub fn new(error: ErrorCode, data: Vec<u8>) -> NotificationMsg {
        NotificationMsg { error, data }
    }

    /// A Cease with an RFC 9003 shutdown communication. `subcode` should be
    /// [`CeaseSubcode::AdministrativeShutdown`] or [`CeaseSubcode::AdministrativeReset`]. The
    /// text is cut to 255 octets at a character boundary.
    pub fn shutdown(subcode: CeaseSubcode, text: &str) -> NotificationMsg {
        let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        let text = text.get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(1 + text.len());
        data.push(u8::try_from(text.len()).unwrap_or(0));
        data.extend_from_slice(text.as_bytes());
        NotificationMsg::new(ErrorCode::Cease(subcode), data)
    }

    /// Raw error code.
    pub fn code(&self) -> u8 {
        self.error.code()
    }

    /// Raw error subcode.
    pub fn subcode(&self) -> u8 {
        self.error.subcode()
    }

    /// The RFC 8203/9003 shutdown communication of a Cease 2 or 4, when the data holds a valid
    /// one (length octet, then that many octets of UTF-8). Returns `None` otherwise.
    pub fn shutdown_communication(&self) -> Option<&str> {
        if !matches!(
            self.error,
            ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown)
                | ErrorCode::Cease(CeaseSubcode::AdministrativeReset)
        ) {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// Decode the body (after the 19-octet header).
    pub fn decode(body: &[u8]) -> Result<NotificationMsg, Error> {
        match body {
            [code, subcode, data @ ..] => {
                Ok(NotificationMsg::from_codes(*code, *subcode, data.to_vec()))
            }
            _ => Err(Error::reset(
                1,
                2,
                u16::try_from(body.len() + 19)
                    .unwrap_or(u16::MAX)
                    .to_be_bytes()
                    .to_vec(),
                "NOTIFICATION shorter than 21 octets",
            )),
        }
    }

    /// Append the body (after the header).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.code());
        out.push(self.subcode());
        out.extend_from_slice(&self.data);
    }
}

impl fmt::Display for NotificationMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {:?}", self.code(), self.subcode(), self.error)?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, " \"{text}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_words() {
        assert_eq!(
            ErrorCode::Open(OpenSubcode::BadPeerAs).text(),
            "OPEN Message Error / Bad Peer AS"
        );
        assert_eq!(
            ErrorCode::Open(OpenSubcode::BadBgpIdentifier).text(),
            "OPEN Message Error / Bad BGP Identifier"
        );
        assert_eq!(ErrorCode::HoldTimerExpired(0).text(), "Hold Timer Expired");
        assert_eq!(
            ErrorCode::Unknown {
                code: 9,
                subcode: 1
            }
            .text(),
            "error 9/1"
        );
    }
}
