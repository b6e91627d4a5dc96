//! Value types shared by several resources: AS numbers, ports, protocols, secret references and
//! the int-or-string encodings Calico's `projectcalico.org/v3` API uses. Pure.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema for a field that accepts an integer or a string (Kubernetes' structural form).
fn int_or_string_schema(description: &str) -> Schema {
    json_schema!({
        "description": description,
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    })
}

/// Either an integer or a string in a manifest; both forms are accepted on input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum IntOrStr {
    Int(i64),
    Str(String),
}

/// A 4-octet BGP AS number. Accepts `65001`, `"65001"` and the RFC 5396 `"a.b"` notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsNumber(pub u32);

/// The default AS number of a Brindle cluster (as Calico's).
pub const DEFAULT_AS_NUMBER: AsNumber = AsNumber(64512);

impl AsNumber {
    /// Parses decimal or `a.b` (asdot) notation; 0 is not a valid AS.
    pub fn parse(s: &str) -> Result<AsNumber, String> {
        let s = s.trim();
        let n: u64 = if let Some((hi, lo)) = s.split_once('.') {
            let hi: u64 = hi
                .parse()
                .map_err(|_| format!("'{s}' is not an AS number"))?;
            let lo: u64 = lo
                .parse()
                .map_err(|_| format!("'{s}' is not an AS number"))?;
            if hi > 65535 || lo > 65535 {
                return Err(format!(
                    "'{s}': each half of asdot notation must be 0-65535"
                ));
            }
            (hi << 16) | lo
        } else {
            s.parse()
                .map_err(|_| format!("'{s}' is not an AS number"))?
        };
        Self::from_u64(n)
    }

    fn from_u64(n: u64) -> Result<AsNumber, String> {
        if n == 0 || n > u64::from(u32::MAX) {
            return Err(format!("AS number {n} is outside 1-4294967295"));
        }
        Ok(AsNumber(n as u32))
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AsNumber {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AsNumber::parse(s)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrStr::deserialize(d)? {
            IntOrStr::Int(n) => {
                let n = u64::try_from(n)
                    .map_err(|_| serde::de::Error::custom(format!("AS number {n} is negative")))?;
                AsNumber::from_u64(n).map_err(serde::de::Error::custom)
            }
            IntOrStr::Str(s) => AsNumber::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for AsNumber {
    fn schema_name() -> Cow<'static, str> {
        "AsNumber".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        int_or_string_schema("AS number: 1-4294967295, decimal or asdot (a.b)")
    }
}

/// An IP protocol in a policy rule: a name Calico knows or a number 1-255.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    IcmpV6,
    /// SCTP (132).
    Sctp,
    /// UDP-Lite (136).
    UdpLite,
    /// Any other protocol by number.
    Number(u8),
}

impl Protocol {
    /// The IANA protocol number.
    pub fn number(&self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmp => 1,
            Protocol::IcmpV6 => 58,
            Protocol::Sctp => 132,
            Protocol::UdpLite => 136,
            Protocol::Number(n) => *n,
        }
    }

    /// True for protocols that carry ports (TCP, UDP, SCTP, UDP-Lite).
    pub fn has_ports(&self) -> bool {
        matches!(self.number(), 6 | 17 | 132 | 136)
    }

    /// Parses a protocol name (case-insensitive, as Calico) or number.
    pub fn parse(s: &str) -> Result<Protocol, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "icmpv6" => Protocol::IcmpV6,
            "sctp" => Protocol::Sctp,
            "udplite" => Protocol::UdpLite,
            other => match other.parse::<i64>() {
                Ok(n) => Self::from_i64(n)?,
                Err(_) => {
                    return Err(format!(
                        "unknown protocol '{s}' (use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)"
                    ));
                }
            },
        })
    }

    fn from_i64(n: i64) -> Result<Protocol, String> {
        match u8::try_from(n) {
            Ok(n) if n >= 1 => Ok(match n {
                6 => Protocol::Tcp,
                17 => Protocol::Udp,
                1 => Protocol::Icmp,
                58 => Protocol::IcmpV6,
                132 => Protocol::Sctp,
                136 => Protocol::UdpLite,
                n => Protocol::Number(n),
            }),
            _ => Err(format!("protocol number {n} is outside 1-255")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Icmp => f.write_str("ICMP"),
            Protocol::IcmpV6 => f.write_str("ICMPv6"),
            Protocol::Sctp => f.write_str("SCTP"),
            Protocol::UdpLite => f.write_str("UDPLite"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrStr::deserialize(d)? {
            IntOrStr::Int(n) => Protocol::from_i64(n).map_err(serde::de::Error::custom),
            IntOrStr::Str(s) => Protocol::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Protocol {
    fn schema_name() -> Cow<'static, str> {
        "Protocol".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        int_or_string_schema("TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite, or a protocol number 1-255")
    }
}

/// A port in a policy rule: one port, a range `first:last`, or a named port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    /// A port range, inclusive; a single port has `first == last`.
    Range {
        /// First port, 0-65535.
        first: u16,
        /// Last port, at least `first`.
        last: u16,
    },
    /// A named port (resolved against the endpoint's named ports).
    Named(String),
}

impl Port {
    /// Parses `80`, `"80"`, `"8080:8090"` or a port name.
    pub fn parse(s: &str) -> Result<Port, String> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once(':') {
            let first: u16 = a
                .parse()
                .map_err(|_| format!("'{a}' in port range '{s}' is not 0-65535"))?;
            let last: u16 = b
                .parse()
                .map_err(|_| format!("'{b}' in port range '{s}' is not 0-65535"))?;
            if first > last {
                return Err(format!(
                    "port range '{s}' has its first port after its last"
                ));
            }
            return Ok(Port::Range { first, last });
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            let p: u16 = s
                .parse()
                .map_err(|_| format!("port {s} is outside 0-65535"))?;
            return Ok(Port::Range { first: p, last: p });
        }
        let valid_name = !s.is_empty()
            && s.len() <= 15
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.bytes().any(|b| b.is_ascii_lowercase())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--");
        if valid_name {
            Ok(Port::Named(s.to_string()))
        } else {
            Err(format!(
                "'{s}' is not a port, a port range (a:b) or a port name (IANA_SVC_NAME: \
                 lowercase letters, digits and '-', at most 15 characters)"
            ))
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Range { first, last } if first == last => write!(f, "{first}"),
            Port::Range { first, last } => write!(f, "{first}:{last}"),
            Port::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Range { first, last } if first == last => s.serialize_u16(*first),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrStr::deserialize(d)? {
            IntOrStr::Int(n) => match u16::try_from(n) {
                Ok(p) => Ok(Port::Range { first: p, last: p }),
                Err(_) => Err(serde::de::Error::custom(format!(
                    "port {n} is outside 0-65535"
                ))),
            },
            IntOrStr::Str(s) => Port::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        int_or_string_schema("a port 0-65535, a range \"first:last\", or a named port")
    }
}

/// A reference to one key of a Kubernetes Secret (as Calico's BGP passwords).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name (in Brindle's namespace).
    pub name: String,
    /// The key within the Secret.
    pub key: String,
}

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPassword {
    /// The Secret key holding the TCP MD5 password.
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// A CIDR entry in a list (`serviceClusterIPs: [{cidr: ...}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrEntry {
    /// The CIDR.
    pub cidr: String,
}
