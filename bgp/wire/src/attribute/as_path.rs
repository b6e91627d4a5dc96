//! AS_PATH (RFC 4271 §4.3 / §5.1.2) and AS4_PATH (RFC 6793 §3): segments of 2- or 4-octet AS
//! numbers, the RFC 7606 §7.2 malformation rules, and the helpers the core needs (loop check,
//! best-path length, RFC 6793 §4.2.3 reconstruction).
//!
//! ```text
//!  +-----------------+-----------------+---------------------------------+
//!  | Segment type (1)| Segment len (1) | ASNs (len × 2 or len × 4 octets)|   repeated
//!  +-----------------+-----------------+---------------------------------+
//! ```
//!
//! Pure: no I/O.

use crate::open::AS_TRANS;
use crate::reader::Reader;

/// Path segment type.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentType {
    /// 1: AS_SET (unordered).
    Set,
    /// 2: AS_SEQUENCE (ordered).
    Sequence,
    /// 3: AS_CONFED_SEQUENCE (RFC 5065).
    ConfedSequence,
    /// 4: AS_CONFED_SET (RFC 5065).
    ConfedSet,
}

impl SegmentType {
    fn from_u8(v: u8) -> Option<SegmentType> {
        match v {
            1 => Some(SegmentType::Set),
            2 => Some(SegmentType::Sequence),
            3 => Some(SegmentType::ConfedSequence),
            4 => Some(SegmentType::ConfedSet),
            _ => None,
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    /// True for the two confederation segment types.
    pub fn is_confed(self) -> bool {
        matches!(self, SegmentType::ConfedSequence | SegmentType::ConfedSet)
    }
}

/// One path segment. On the wire a segment holds 1..=255 AS numbers; the encoder splits longer
/// segments.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// AS numbers in wire order.
    pub asns: Vec<u32>,
}

impl AsSegment {
    /// An AS_SEQUENCE.
    pub fn sequence(asns: Vec<u32>) -> AsSegment {
        AsSegment {
            kind: SegmentType::Sequence,
            asns,
        }
    }
}

/// An AS path: AS_PATH or AS4_PATH contents.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments in wire order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty when `asns` is empty).
    pub fn from_sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment::sequence(asns)],
        }
    }

    /// True when `asn` appears in any segment (RFC 4271 §9.1.2 loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Path length for best-path selection (RFC 4271 §9.1.2.2 a, RFC 5065 §5.3): each
    /// AS_SEQUENCE AS counts 1, each AS_SET counts 1, confederation segments count 0.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbouring AS: first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        let s = self.segments.first()?;
        if s.kind == SegmentType::Sequence {
            s.asns.first().copied()
        } else {
            None
        }
    }

    /// The originating AS: last AS of a trailing AS_SEQUENCE.
    pub fn origin_as(&self) -> Option<u32> {
        let s = self.segments.last()?;
        if s.kind == SegmentType::Sequence {
            s.asns.last().copied()
        } else {
            None
        }
    }

    /// True when an AS does not fit in 2 octets, so a 2-octet session also needs AS4_PATH.
    pub fn needs_as4_path(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|a| *a > u32::from(u16::MAX)))
    }

    /// Prepend `asn` as the first AS of a leading AS_SEQUENCE (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentType::Sequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn)
            }
            _ => self.segments.insert(0, AsSegment::sequence(vec![asn])),
        }
    }

    /// RFC 6793 §4.2.3: rebuild the real path from a 2-octet session's AS_PATH (`self`) and
    /// its AS4_PATH. When AS4_PATH is longer than AS_PATH it is ignored; otherwise the leading
    /// ASes of AS_PATH that AS4_PATH lacks are kept and AS4_PATH is appended.
    pub fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let total = self.path_len();
        let n4 = as4.path_len();
        if n4 > total {
            return self.clone();
        }
        let mut keep = total - n4;
        let mut segments = Vec::new();
        for s in &self.segments {
            if keep == 0 && !s.kind.is_confed() {
                break;
            }
            match s.kind {
                SegmentType::Sequence => {
                    let take = keep.min(s.asns.len());
                    keep -= take;
                    segments.push(AsSegment {
                        kind: s.kind,
                        asns: s.asns.iter().take(take).copied().collect(),
                    });
                }
                SegmentType::Set => {
                    keep -= 1;
                    segments.push(s.clone());
                }
                SegmentType::ConfedSequence | SegmentType::ConfedSet => segments.push(s.clone()),
            }
        }
        segments.extend(as4.segments.iter().cloned());
        AsPath { segments }
    }

    /// Decode; `None` when malformed per RFC 7606 §7.2 (unknown segment type, zero-length
    /// segment, overrun, or trailing octets).
    pub(crate) fn decode(mut r: Reader<'_>, four_octet: bool) -> Result<AsPath, String> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        while !r.is_empty() {
            let at = r.offset();
            let (Some(t), Some(n)) = (r.u8(), r.u8()) else {
                return Err(format!("truncated segment header at byte {at}"));
            };
            let kind =
                SegmentType::from_u8(t).ok_or_else(|| format!("segment type {t} at byte {at}"))?;
            if n == 0 {
                return Err(format!("zero-length segment at byte {at}"));
            }
            let mut asns = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let asn = if four_octet {
                    r.u32()
                } else {
                    r.u16().map(u32::from)
                };
                asns.push(asn.ok_or_else(|| {
                    format!("segment at byte {at} overruns ({n} ASNs of {width} octets)")
                })?);
            }
            segments.push(AsSegment { kind, asns });
        }
        Ok(AsPath { segments })
    }

    /// Append the segments with 2- or 4-octet ASNs. With 2 octets, ASNs above 65535 become
    /// AS_TRANS (RFC 6793 §4.2.2). Segments longer than 255 are split.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        for s in &self.segments {
            for chunk in s.asns.chunks(255) {
                out.push(s.kind.to_u8());
                out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                for &a in chunk {
                    if four_octet {
                        out.extend_from_slice(&a.to_be_bytes());
                    } else {
                        let a = u16::try_from(a).unwrap_or(AS_TRANS);
                        out.extend_from_slice(&a.to_be_bytes());
                    }
                }
            }
        }
    }
}
