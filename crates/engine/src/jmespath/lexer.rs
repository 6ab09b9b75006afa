//! Splits a JMESPath expression into tokens, following go-jmespath's lexer (raw strings keep
//! every backslash except the one before `'`; JSON literals are backtick-quoted).

use serde_json::Value;

use super::JmespathError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Identifier(String),
    QuotedIdentifier(String),
    RawString(String),
    Literal(Value),
    Number(i64),
    Dot,
    Star,
    Flatten,
    Filter,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Colon,
    Pipe,
    Or,
    And,
    Not,
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    At,
    Expref,
    Eof,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, JmespathError> {
    let mut lexer = Lexer {
        src: input,
        bytes: input.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.tok == Tok::Eof;
        out.push(token);
        if done {
            return Ok(out);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn error(&self, pos: usize, msg: impl Into<String>) -> JmespathError {
        JmespathError::syntax(self.src, pos, msg)
    }

    fn next_token(&mut self) -> Result<Token, JmespathError> {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                pos: start,
            });
        };
        let simple = |tok: Tok, len: usize, lexer: &mut Self| {
            lexer.pos += len;
            Ok(Token { tok, pos: start })
        };
        match c {
            b'.' => simple(Tok::Dot, 1, self),
            b'*' => simple(Tok::Star, 1, self),
            b']' => simple(Tok::RBracket, 1, self),
            b'{' => simple(Tok::LBrace, 1, self),
            b'}' => simple(Tok::RBrace, 1, self),
            b'(' => simple(Tok::LParen, 1, self),
            b')' => simple(Tok::RParen, 1, self),
            b',' => simple(Tok::Comma, 1, self),
            b':' => simple(Tok::Colon, 1, self),
            b'@' => simple(Tok::At, 1, self),
            b'[' => match self.peek_at(1) {
                Some(b']') => simple(Tok::Flatten, 2, self),
                Some(b'?') => simple(Tok::Filter, 2, self),
                _ => simple(Tok::LBracket, 1, self),
            },
            b'|' => match self.peek_at(1) {
                Some(b'|') => simple(Tok::Or, 2, self),
                _ => simple(Tok::Pipe, 1, self),
            },
            b'&' => match self.peek_at(1) {
                Some(b'&') => simple(Tok::And, 2, self),
                _ => simple(Tok::Expref, 1, self),
            },
            b'!' => match self.peek_at(1) {
                Some(b'=') => simple(Tok::Ne, 2, self),
                _ => simple(Tok::Not, 1, self),
            },
            b'<' => match self.peek_at(1) {
                Some(b'=') => simple(Tok::Lte, 2, self),
                _ => simple(Tok::Lt, 1, self),
            },
            b'>' => match self.peek_at(1) {
                Some(b'=') => simple(Tok::Gte, 2, self),
                _ => simple(Tok::Gt, 1, self),
            },
            b'=' => match self.peek_at(1) {
                Some(b'=') => simple(Tok::Eq, 2, self),
                _ => Err(self.error(start, "Unknown char: '='")),
            },
            b'\'' => self.raw_string(start),
            b'"' => self.quoted_identifier(start),
            b'`' => self.json_literal(start),
            b'-' | b'0'..=b'9' => self.number(start),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                    self.pos += 1;
                }
                Ok(Token {
                    tok: Tok::Identifier(self.slice(start, self.pos).to_owned()),
                    pos: start,
                })
            }
            _ => {
                let ch = self.src.get(start..).and_then(|s| s.chars().next());
                Err(self.error(
                    start,
                    format!(
                        "Unknown char: {}",
                        ch.map_or_else(String::new, |c| c.to_string())
                    ),
                ))
            }
        }
    }

    fn slice(&self, from: usize, to: usize) -> &str {
        self.src.get(from..to).unwrap_or("")
    }

    /// Consumes up to the closing `delim` (skipping backslash-escaped characters) and
    /// returns the text between the delimiters.
    fn until(&mut self, start: usize, delim: u8) -> Result<String, JmespathError> {
        self.pos += 1;
        let content_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error(start, "Unclosed delimiter")),
                Some(b'\\') => self.pos += 2,
                Some(c) if c == delim => {
                    let content = self.slice(content_start, self.pos).to_owned();
                    self.pos += 1;
                    return Ok(content);
                }
                Some(_) => self.pos += 1,
            }
            if self.pos > self.bytes.len() {
                return Err(self.error(start, "Unclosed delimiter"));
            }
        }
    }

    fn raw_string(&mut self, start: usize) -> Result<Token, JmespathError> {
        let text = self.until(start, b'\'')?.replace("\\'", "'");
        Ok(Token {
            tok: Tok::RawString(text),
            pos: start,
        })
    }

    fn quoted_identifier(&mut self, start: usize) -> Result<Token, JmespathError> {
        self.until(start, b'"')?;
        let quoted = self.slice(start, self.pos);
        let name: String = serde_json::from_str(quoted)
            .map_err(|e| self.error(start, format!("invalid quoted identifier: {e}")))?;
        Ok(Token {
            tok: Tok::QuotedIdentifier(name),
            pos: start,
        })
    }

    fn json_literal(&mut self, start: usize) -> Result<Token, JmespathError> {
        let text = self.until(start, b'`')?.replace("\\`", "`");
        let value: Value = serde_json::from_str(text.trim())
            .map_err(|e| self.error(start, format!("invalid JSON literal: {e}")))?;
        Ok(Token {
            tok: Tok::Literal(value),
            pos: start,
        })
    }

    fn number(&mut self, start: usize) -> Result<Token, JmespathError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error(start, "Unknown char: '-'"));
            }
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let text = self.slice(start, self.pos);
        let n: i64 = text
            .parse()
            .map_err(|_| self.error(start, format!("invalid number: {text}")))?;
        Ok(Token {
            tok: Tok::Number(n),
            pos: start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn raw_strings_keep_backslashes_except_before_quote() {
        assert_eq!(
            toks(r"'a\d+\'b'"),
            vec![Tok::RawString(r"a\d+'b".into()), Tok::Eof]
        );
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            toks("a[?b >= `1`] || !c"),
            vec![
                Tok::Identifier("a".into()),
                Tok::Filter,
                Tok::Identifier("b".into()),
                Tok::Gte,
                Tok::Literal(json!(1)),
                Tok::RBracket,
                Tok::Or,
                Tok::Not,
                Tok::Identifier("c".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn unclosed_and_unknown_chars_fail() {
        assert!(tokenize("'abc").is_err());
        assert!(tokenize("a = b").is_err());
        assert!(tokenize("a + b").is_err());
        assert!(tokenize("`{bad`").is_err());
    }
}
