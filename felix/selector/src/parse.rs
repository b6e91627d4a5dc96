//! The selector parser: a hand-written recursive descent over the input bytes, so that every
//! error carries the byte offset where it was found. Pure.

use std::collections::BTreeSet;
use std::fmt;

use crate::Selector;

/// A selector that does not parse: what was expected and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// Byte offset in the input where the problem starts.
    pub offset: usize,
    /// What the parser expected or found.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

/// Longest selector accepted; deeper nesting than this is refused too, so hostile input
/// cannot exhaust the stack.
const MAX_LEN: usize = 64 * 1024;
const MAX_DEPTH: usize = 128;

pub(crate) fn parse(input: &str) -> Result<Selector, ParseError> {
    if input.len() > MAX_LEN {
        return Err(ParseError {
            offset: MAX_LEN,
            message: format!("selector longer than {MAX_LEN} bytes"),
        });
    }
    let mut p = Parser {
        s: input.as_bytes(),
        src: input,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.pos == p.s.len() {
        return Ok(Selector::All);
    }
    let sel = p.or_expr()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err(format!("unexpected {}", p.describe_here())));
    }
    Ok(sel)
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
    depth: usize,
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

impl Parser<'_> {
    fn err(&self, message: String) -> ParseError {
        ParseError {
            offset: self.pos,
            message,
        }
    }

    fn describe_here(&self) -> String {
        match self.src.get(self.pos..).and_then(|r| r.chars().next()) {
            None => "end of selector".to_string(),
            Some(c) => format!("'{c}'"),
        }
    }

    fn skip_ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Consumes `tok` (after blanks) if it is next.
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(tok.as_bytes()) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    /// Consumes a whole word (not followed by a key byte) if it is next.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        let end = self.pos + word.len();
        if self.s[self.pos..].starts_with(word.as_bytes())
            && !self.s.get(end).is_some_and(|b| is_key_byte(*b))
        {
            self.pos = end;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &str) -> Result<(), ParseError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{tok}', found {}", self.describe_here())))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("selector nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Selector, ParseError> {
        self.enter()?;
        let mut terms = vec![self.and_expr()?];
        while self.eat("||") {
            terms.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Selector::Or(terms)
        })
    }

    fn and_expr(&mut self) -> Result<Selector, ParseError> {
        let mut terms = vec![self.unary()?];
        while self.eat("&&") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Selector::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Selector, ParseError> {
        self.skip_ws();
        // `!=` never starts an expression, so a leading `!` is always negation.
        if self.eat("!") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Selector::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Selector, ParseError> {
        self.skip_ws();
        if self.eat("(") {
            let inner = self.or_expr()?;
            self.expect(")")?;
            return Ok(inner);
        }
        let start = self.pos;
        if self.eat_call("all") {
            self.expect(")")?;
            return Ok(Selector::All);
        }
        if self.eat_call("global") {
            self.expect(")")?;
            return Ok(Selector::Global);
        }
        if self.eat_call("has") {
            let key = self.key()?;
            self.expect(")")?;
            return Ok(Selector::Has(key));
        }
        self.pos = start;
        let key = self.key()?;
        self.skip_ws();
        if self.eat("==") {
            return Ok(Selector::Eq(key, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Selector::NotEq(key, self.string()?));
        }
        if self.eat_word("in") {
            return Ok(Selector::In(key, self.set()?));
        }
        if self.eat_word("not") {
            if !self.eat_word("in") {
                return Err(self.err(format!(
                    "expected 'in' after 'not', found {}",
                    self.describe_here()
                )));
            }
            return Ok(Selector::NotIn(key, self.set()?));
        }
        if self.eat_word("contains") {
            return Ok(Selector::Contains(key, self.string()?));
        }
        if self.eat_word("starts") {
            self.expect_word_with("starts")?;
            return Ok(Selector::StartsWith(key, self.string()?));
        }
        if self.eat_word("ends") {
            self.expect_word_with("ends")?;
            return Ok(Selector::EndsWith(key, self.string()?));
        }
        Err(self.err(format!(
            "expected an operator (==, !=, in, not in, contains, starts with, ends with) after \
             label '{key}', found {}",
            self.describe_here()
        )))
    }

    fn expect_word_with(&mut self, after: &str) -> Result<(), ParseError> {
        if self.eat_word("with") {
            Ok(())
        } else {
            Err(self.err(format!(
                "expected 'with' after '{after}', found {}",
                self.describe_here()
            )))
        }
    }

    /// `name(` with optional blanks before the parenthesis.
    fn eat_call(&mut self, name: &str) -> bool {
        let start = self.pos;
        if self.eat_word(name) && self.eat("(") {
            return true;
        }
        self.pos = start;
        false
    }

    fn key(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(is_key_byte) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err(format!(
                "expected a label name, found {}",
                self.describe_here()
            )));
        }
        Ok(self.src[start..self.pos].to_string())
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => {
                return Err(self.err(format!(
                    "expected a quoted string, found {}",
                    self.describe_here()
                )));
            }
        };
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == quote {
                let value = self.src[start..self.pos].to_string();
                self.pos += 1;
                return Ok(value);
            }
            self.pos += 1;
        }
        Err(ParseError {
            offset: open,
            message: "unterminated string".to_string(),
        })
    }

    fn set(&mut self) -> Result<BTreeSet<String>, ParseError> {
        self.expect("{")?;
        let mut out = BTreeSet::new();
        if self.eat("}") {
            return Ok(out);
        }
        loop {
            out.insert(self.string()?);
            if self.eat("}") {
                return Ok(out);
            }
            if !self.eat(",") {
                return Err(self.err(format!(
                    "expected ',' or '}}', found {}",
                    self.describe_here()
                )));
            }
        }
    }
}
