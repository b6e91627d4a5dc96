//! Calico's label selector language, as a pure library: a parser with positioned errors, an
//! evaluator over a label map, and a canonical printer.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! selector   := or-expr | ""                      (empty selects everything)
//! or-expr    := and-expr ( "||" and-expr )*
//! and-expr   := unary ( "&&" unary )*
//! unary      := "!" unary | primary
//! primary    := "(" or-expr ")" | "all()" | "global()"
//!             | "has(" key ")"
//!             | key "==" string | key "!=" string
//!             | key "in" "{" [string ("," string)*] "}" | key "not" "in" "{" ... "}"
//!             | key "contains" string | key "starts" "with" string | key "ends" "with" string
//! key        := [A-Za-z0-9_./-]+
//! string     := '"' [^"]* '"' | "'" [^']* "'"
//! ```
//!
//! Absent labels: `k != v` and `k not in {..}` are true when `k` is absent (as in Calico);
//! `==`, `in`, `contains`, `starts with` and `ends with` are false. `global()` is true for every
//! label map; it only has a special meaning in a `namespaceSelector`, where the policy
//! calculation uses [`Selector::is_global`] to select non-namespaced endpoints.
//!
//! The printer ([`std::fmt::Display`]) writes a canonical form: double-quoted strings (single
//! quotes when the value contains a double quote), set members sorted and de-duplicated, single
//! spaces around operators, and only the parentheses precedence requires. Parsing the printed
//! form gives back an equal selector.

mod parse;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

pub use parse::ParseError;

/// A parsed selector expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `all()` (and the empty selector).
    All,
    /// `global()`.
    Global,
    /// `has(key)`.
    Has(String),
    /// `key == "value"`.
    Eq(String, String),
    /// `key != "value"`: also true when the label is absent.
    NotEq(String, String),
    /// `key in {"a", "b"}`.
    In(String, BTreeSet<String>),
    /// `key not in {"a", "b"}`: also true when the label is absent.
    NotIn(String, BTreeSet<String>),
    /// `key contains "s"`.
    Contains(String, String),
    /// `key starts with "s"`.
    StartsWith(String, String),
    /// `key ends with "s"`.
    EndsWith(String, String),
    /// `!expr`.
    Not(Box<Selector>),
    /// `a && b && ...` (two or more operands).
    And(Vec<Selector>),
    /// `a || b || ...` (two or more operands).
    Or(Vec<Selector>),
}

/// Anything that can answer "what is the value of label `key`?".
pub trait Labels {
    /// The value of the label, or `None` when absent.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for [(&str, &str)] {
    fn label(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

impl Selector {
    /// Parses a selector; the empty (or all-blank) string selects everything.
    pub fn parse(input: &str) -> Result<Selector, ParseError> {
        parse::parse(input)
    }

    /// Evaluates the selector against a label map.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Selector::All | Selector::Global => true,
            Selector::Has(k) => labels.label(k).is_some(),
            Selector::Eq(k, v) => labels.label(k) == Some(v.as_str()),
            Selector::NotEq(k, v) => labels.label(k) != Some(v.as_str()),
            Selector::In(k, set) => labels.label(k).is_some_and(|v| set.contains(v)),
            Selector::NotIn(k, set) => !labels.label(k).is_some_and(|v| set.contains(v)),
            Selector::Contains(k, s) => labels.label(k).is_some_and(|v| v.contains(s.as_str())),
            Selector::StartsWith(k, s) => {
                labels.label(k).is_some_and(|v| v.starts_with(s.as_str()))
            }
            Selector::EndsWith(k, s) => labels.label(k).is_some_and(|v| v.ends_with(s.as_str())),
            Selector::Not(e) => !e.matches(labels),
            Selector::And(es) => es.iter().all(|e| e.matches(labels)),
            Selector::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    /// True when the selector is exactly `global()`: in a `namespaceSelector` it selects
    /// non-namespaced endpoints (host endpoints, global network sets).
    pub fn is_global(&self) -> bool {
        matches!(self, Selector::Global)
    }

    /// A label every match must carry with one of a few values: `(key, values)` from an
    /// `==` or `in` at the top or inside a top-level `&&`. Lets callers look candidates up in
    /// a label index instead of testing every object; `None` when there is no such label.
    pub fn required_values(&self) -> Option<(&str, Vec<&str>)> {
        match self {
            Selector::Eq(k, v) => Some((k.as_str(), vec![v.as_str()])),
            Selector::In(k, set) => Some((k.as_str(), set.iter().map(String::as_str).collect())),
            Selector::And(es) => es.iter().find_map(Selector::required_values),
            _ => None,
        }
    }

    /// The label keys the selector reads, sorted; used to index endpoints by label.
    pub fn label_keys(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect_keys(&mut out);
        out
    }

    /// The same expression over renamed label keys (e.g. a service account's labels, which
    /// endpoints carry as `pcsa.<key>`).
    pub fn map_keys(&self, f: &dyn Fn(&str) -> String) -> Selector {
        match self {
            Selector::All => Selector::All,
            Selector::Global => Selector::Global,
            Selector::Has(k) => Selector::Has(f(k)),
            Selector::Eq(k, v) => Selector::Eq(f(k), v.clone()),
            Selector::NotEq(k, v) => Selector::NotEq(f(k), v.clone()),
            Selector::In(k, v) => Selector::In(f(k), v.clone()),
            Selector::NotIn(k, v) => Selector::NotIn(f(k), v.clone()),
            Selector::Contains(k, v) => Selector::Contains(f(k), v.clone()),
            Selector::StartsWith(k, v) => Selector::StartsWith(f(k), v.clone()),
            Selector::EndsWith(k, v) => Selector::EndsWith(f(k), v.clone()),
            Selector::Not(e) => Selector::Not(Box::new(e.map_keys(f))),
            Selector::And(es) => Selector::And(es.iter().map(|e| e.map_keys(f)).collect()),
            Selector::Or(es) => Selector::Or(es.iter().map(|e| e.map_keys(f)).collect()),
        }
    }

    fn collect_keys<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Selector::All | Selector::Global => {}
            Selector::Has(k)
            | Selector::Eq(k, _)
            | Selector::NotEq(k, _)
            | Selector::In(k, _)
            | Selector::NotIn(k, _)
            | Selector::Contains(k, _)
            | Selector::StartsWith(k, _)
            | Selector::EndsWith(k, _) => {
                out.insert(k.as_str());
            }
            Selector::Not(e) => e.collect_keys(out),
            Selector::And(es) | Selector::Or(es) => es.iter().for_each(|e| e.collect_keys(out)),
        }
    }

    /// Binding strength for the printer: higher binds tighter.
    fn precedence(&self) -> u8 {
        match self {
            Selector::Or(_) => 1,
            Selector::And(_) => 2,
            _ => 3,
        }
    }

    fn fmt_child(&self, child: &Selector, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A negated operand needs parentheses unless it is a primary; an operand of `&&` or
        // `||` needs them when it binds no tighter than its parent (keeps nesting explicit).
        let needs_parens = match self {
            Selector::Not(_) => child.precedence() < 3,
            _ => child.precedence() <= self.precedence(),
        };
        if needs_parens {
            write!(f, "({child})")
        } else {
            write!(f, "{child}")
        }
    }
}

/// Writes a string literal in the canonical quoting.
fn fmt_str(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if s.contains('"') {
        write!(f, "'{s}'")
    } else {
        write!(f, "\"{s}\"")
    }
}

fn fmt_set(set: &BTreeSet<String>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        fmt_str(v, f)?;
    }
    f.write_str("}")
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("all()"),
            Selector::Global => f.write_str("global()"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Eq(k, v) => {
                write!(f, "{k} == ")?;
                fmt_str(v, f)
            }
            Selector::NotEq(k, v) => {
                write!(f, "{k} != ")?;
                fmt_str(v, f)
            }
            Selector::In(k, set) => {
                write!(f, "{k} in ")?;
                fmt_set(set, f)
            }
            Selector::NotIn(k, set) => {
                write!(f, "{k} not in ")?;
                fmt_set(set, f)
            }
            Selector::Contains(k, v) => {
                write!(f, "{k} contains ")?;
                fmt_str(v, f)
            }
            Selector::StartsWith(k, v) => {
                write!(f, "{k} starts with ")?;
                fmt_str(v, f)
            }
            Selector::EndsWith(k, v) => {
                write!(f, "{k} ends with ")?;
                fmt_str(v, f)
            }
            Selector::Not(e) => {
                f.write_str("!")?;
                self.fmt_child(e, f)
            }
            Selector::And(es) | Selector::Or(es) => {
                let op = if matches!(self, Selector::And(_)) {
                    " && "
                } else {
                    " || "
                };
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    self.fmt_child(e, f)?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}
