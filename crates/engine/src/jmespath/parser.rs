//! Pratt parser producing the expression tree, with go-jmespath's binding powers.

use serde_json::Value;

use super::lexer::{tokenize, Tok, Token};
use super::JmespathError;

/// Deepest expression nesting accepted; keeps parsing and evaluation off the stack limit.
pub(crate) const MAX_NESTING: usize = 128;

/// Deepest tree accepted (a chain like `a.b.c` grows the tree without nesting the parser).
pub(crate) const MAX_TREE_DEPTH: usize = 256;

/// A parsed node and the depth of the tree below it.
type Node = (Ast, usize);
type P = Result<Node, JmespathError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// The parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    Identity,
    Field(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Literal(Value),
    Subexpr(Box<Ast>, Box<Ast>),
    IndexExpr(Box<Ast>, Box<Ast>),
    /// `lhs[*].rhs`, `lhs[:].rhs`, `lhs[].rhs`: evaluate rhs on each element of lhs.
    Projection(Box<Ast>, Box<Ast>),
    /// `lhs.*.rhs`: evaluate rhs on each value of the object lhs.
    ValueProjection(Box<Ast>, Box<Ast>),
    /// `lhs[?cond].rhs`
    FilterProjection(Box<Ast>, Box<Ast>, Box<Ast>),
    Flatten(Box<Ast>),
    Pipe(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Not(Box<Ast>),
    Compare(Cmp, Box<Ast>, Box<Ast>),
    MultiList(Vec<Ast>),
    MultiHash(Vec<(String, Ast)>),
    Function(String, Vec<Ast>),
    Expref(Box<Ast>),
}

pub(crate) fn parse(expr: &str) -> Result<Ast, JmespathError> {
    let tokens = tokenize(expr)?;
    let mut parser = Parser {
        src: expr,
        tokens,
        index: 0,
        depth: 0,
    };
    let (ast, _) = parser.expression(0)?;
    if parser.current() != &Tok::Eof {
        return Err(parser.unexpected());
    }
    Ok(ast)
}

fn binding_power(tok: &Tok) -> u8 {
    match tok {
        Tok::Pipe => 1,
        Tok::Or => 2,
        Tok::And => 3,
        Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => 5,
        Tok::Flatten => 9,
        Tok::Star => 20,
        Tok::Filter => 21,
        Tok::Dot => 40,
        Tok::Not => 45,
        Tok::LBrace => 50,
        Tok::LBracket => 55,
        Tok::LParen => 60,
        _ => 0,
    }
}

const BP_STAR: u8 = 20;
const BP_FLATTEN: u8 = 9;
const BP_FILTER: u8 = 21;
const BP_DOT: u8 = 40;
const BP_NOT: u8 = 45;
const BP_PIPE: u8 = 1;
const BP_OR: u8 = 2;
const BP_AND: u8 = 3;
const BP_CMP: u8 = 5;

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    index: usize,
    depth: usize,
}

static EOF: Tok = Tok::Eof;

impl Parser<'_> {
    fn current(&self) -> &Tok {
        self.tokens.get(self.index).map_or(&EOF, |t| &t.tok)
    }

    fn lookahead(&self, n: usize) -> &Tok {
        self.tokens.get(self.index + n).map_or(&EOF, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens
            .get(self.index)
            .map_or(self.src.len(), |t| t.pos)
    }

    fn advance(&mut self) -> Tok {
        let tok = self.current().clone();
        self.index += 1;
        tok
    }

    fn unexpected(&self) -> JmespathError {
        let msg = match self.current() {
            Tok::Eof => "Incomplete expression".to_owned(),
            tok => format!("Unexpected token: {}", describe(tok)),
        };
        JmespathError::syntax(self.src, self.pos(), msg)
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), JmespathError> {
        if self.current() == tok {
            self.index += 1;
            Ok(())
        } else {
            let msg = format!(
                "Expected {}, received: {}",
                describe(tok),
                describe(self.current())
            );
            Err(JmespathError::syntax(self.src, self.pos(), msg))
        }
    }

    /// Wraps a node built from children of the given depths, enforcing the tree limit.
    fn node(&self, ast: Ast, child_depths: &[usize]) -> P {
        let depth = child_depths.iter().copied().max().unwrap_or(0) + 1;
        if depth > MAX_TREE_DEPTH {
            return Err(JmespathError::limit(format!(
                "expression tree deeper than {MAX_TREE_DEPTH} levels"
            )));
        }
        Ok((ast, depth))
    }

    fn leaf(ast: Ast) -> P {
        Ok((ast, 1))
    }

    fn expression(&mut self, bp: u8) -> P {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(JmespathError::limit(format!(
                "expression nesting exceeds {MAX_NESTING} levels"
            )));
        }
        let mut left = self.nud()?;
        while bp < binding_power(self.current()) {
            left = self.led(left)?;
        }
        self.depth -= 1;
        Ok(left)
    }

    fn nud(&mut self) -> P {
        let pos = self.pos();
        match self.advance() {
            Tok::Literal(v) => Self::leaf(Ast::Literal(v)),
            Tok::RawString(s) => Self::leaf(Ast::Literal(Value::String(s))),
            Tok::Identifier(name) => Self::leaf(Ast::Field(name)),
            Tok::QuotedIdentifier(name) => {
                if self.current() == &Tok::LParen {
                    return Err(JmespathError::syntax(
                        self.src,
                        pos,
                        "Can't use quoted identifier as function name.",
                    ));
                }
                Self::leaf(Ast::Field(name))
            }
            Tok::Star => {
                let (rhs, d) = if self.current() == &Tok::RBracket {
                    (Ast::Identity, 1)
                } else {
                    self.projection_rhs(BP_STAR)?
                };
                self.node(
                    Ast::ValueProjection(Box::new(Ast::Identity), Box::new(rhs)),
                    &[d],
                )
            }
            Tok::Filter => self.filter((Ast::Identity, 1)),
            Tok::LBrace => self.multi_hash(),
            Tok::Flatten => {
                let (rhs, d) = self.projection_rhs(BP_FLATTEN)?;
                let lhs = Ast::Flatten(Box::new(Ast::Identity));
                self.node(Ast::Projection(Box::new(lhs), Box::new(rhs)), &[2, d])
            }
            Tok::LBracket => match (self.current(), self.lookahead(1)) {
                (Tok::Number(_) | Tok::Colon, _) => {
                    let rhs = self.index_expression()?;
                    self.project_if_slice((Ast::Identity, 1), rhs)
                }
                (Tok::Star, Tok::RBracket) => {
                    self.index += 2;
                    let (rhs, d) = self.projection_rhs(BP_STAR)?;
                    self.node(
                        Ast::Projection(Box::new(Ast::Identity), Box::new(rhs)),
                        &[d],
                    )
                }
                _ => self.multi_list(),
            },
            Tok::At => Self::leaf(Ast::Identity),
            Tok::Expref => {
                let (inner, d) = self.expression(binding_power(&Tok::Expref))?;
                self.node(Ast::Expref(Box::new(inner)), &[d])
            }
            Tok::Not => {
                let (inner, d) = self.expression(BP_NOT)?;
                self.node(Ast::Not(Box::new(inner)), &[d])
            }
            Tok::LParen => {
                let inner = self.expression(0)?;
                self.expect(&Tok::RParen)?;
                Ok(inner)
            }
            Tok::Eof => Err(JmespathError::syntax(
                self.src,
                pos,
                "Incomplete expression",
            )),
            tok => Err(JmespathError::syntax(
                self.src,
                pos,
                format!("Invalid token: {}", describe(&tok)),
            )),
        }
    }

    fn led(&mut self, (left, ld): Node) -> P {
        let pos = self.pos();
        match self.advance() {
            Tok::Dot => {
                if self.current() == &Tok::Star {
                    self.index += 1;
                    let (rhs, d) = self.projection_rhs(BP_DOT)?;
                    self.node(
                        Ast::ValueProjection(Box::new(left), Box::new(rhs)),
                        &[ld, d],
                    )
                } else {
                    let (rhs, d) = self.dot_rhs(BP_DOT)?;
                    self.node(Ast::Subexpr(Box::new(left), Box::new(rhs)), &[ld, d])
                }
            }
            Tok::Pipe => {
                let (rhs, d) = self.expression(BP_PIPE)?;
                self.node(Ast::Pipe(Box::new(left), Box::new(rhs)), &[ld, d])
            }
            Tok::Or => {
                let (rhs, d) = self.expression(BP_OR)?;
                self.node(Ast::Or(Box::new(left), Box::new(rhs)), &[ld, d])
            }
            Tok::And => {
                let (rhs, d) = self.expression(BP_AND)?;
                self.node(Ast::And(Box::new(left), Box::new(rhs)), &[ld, d])
            }
            Tok::LParen => {
                let Ast::Field(name) = left else {
                    return Err(JmespathError::syntax(
                        self.src,
                        pos,
                        "Invalid function call: the function name must be an identifier",
                    ));
                };
                let mut args = Vec::new();
                let mut depths = Vec::new();
                while self.current() != &Tok::RParen {
                    if self.current() == &Tok::Eof {
                        return Err(self.unexpected());
                    }
                    let (arg, d) = self.expression(0)?;
                    args.push(arg);
                    depths.push(d);
                    if self.current() == &Tok::Comma {
                        self.index += 1;
                    }
                }
                self.expect(&Tok::RParen)?;
                self.node(Ast::Function(name, args), &depths)
            }
            Tok::Filter => self.filter((left, ld)),
            Tok::Flatten => {
                let (rhs, d) = self.projection_rhs(BP_FLATTEN)?;
                let lhs = Ast::Flatten(Box::new(left));
                self.node(Ast::Projection(Box::new(lhs), Box::new(rhs)), &[ld + 1, d])
            }
            tok @ (Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte) => {
                let (rhs, d) = self.expression(BP_CMP)?;
                let cmp = match tok {
                    Tok::Eq => Cmp::Eq,
                    Tok::Ne => Cmp::Ne,
                    Tok::Lt => Cmp::Lt,
                    Tok::Lte => Cmp::Lte,
                    Tok::Gt => Cmp::Gt,
                    _ => Cmp::Gte,
                };
                self.node(Ast::Compare(cmp, Box::new(left), Box::new(rhs)), &[ld, d])
            }
            Tok::LBracket => match self.current() {
                Tok::Number(_) | Tok::Colon => {
                    let rhs = self.index_expression()?;
                    self.project_if_slice((left, ld), rhs)
                }
                _ => {
                    self.expect(&Tok::Star)?;
                    self.expect(&Tok::RBracket)?;
                    let (rhs, d) = self.projection_rhs(BP_STAR)?;
                    self.node(Ast::Projection(Box::new(left), Box::new(rhs)), &[ld, d])
                }
            },
            tok => Err(JmespathError::syntax(
                self.src,
                pos,
                format!("Unexpected token: {}", describe(&tok)),
            )),
        }
    }

    fn index_expression(&mut self) -> Result<Ast, JmespathError> {
        if self.lookahead(0) == &Tok::Colon || self.lookahead(1) == &Tok::Colon {
            return self.slice_expression();
        }
        let pos = self.pos();
        let Tok::Number(n) = self.advance() else {
            return Err(JmespathError::syntax(self.src, pos, "Expected a number"));
        };
        self.expect(&Tok::RBracket)?;
        Ok(Ast::Index(n))
    }

    fn slice_expression(&mut self) -> Result<Ast, JmespathError> {
        let mut parts: [Option<i64>; 3] = [None, None, None];
        let mut index = 0usize;
        loop {
            match self.current().clone() {
                Tok::RBracket => break,
                Tok::Colon => {
                    index += 1;
                    if index > 2 {
                        return Err(self.unexpected());
                    }
                    self.index += 1;
                }
                Tok::Number(n) => {
                    if let Some(slot) = parts.get_mut(index) {
                        *slot = Some(n);
                    }
                    self.index += 1;
                }
                _ => return Err(self.unexpected()),
            }
        }
        self.expect(&Tok::RBracket)?;
        let [start, stop, step] = parts;
        Ok(Ast::Slice(start, stop, step))
    }

    fn project_if_slice(&mut self, (left, ld): Node, right: Ast) -> P {
        let is_slice = matches!(right, Ast::Slice(..));
        let index = Ast::IndexExpr(Box::new(left), Box::new(right));
        if is_slice {
            let (rhs, d) = self.projection_rhs(BP_STAR)?;
            self.node(
                Ast::Projection(Box::new(index), Box::new(rhs)),
                &[ld + 1, d],
            )
        } else {
            self.node(index, &[ld])
        }
    }

    fn projection_rhs(&mut self, bp: u8) -> P {
        let current = self.current();
        if binding_power(current) < 10 {
            return Self::leaf(Ast::Identity);
        }
        match current {
            Tok::LBracket | Tok::Filter => self.expression(bp),
            Tok::Dot => {
                self.index += 1;
                self.dot_rhs(bp)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn dot_rhs(&mut self, bp: u8) -> P {
        match self.current() {
            Tok::Identifier(_) | Tok::QuotedIdentifier(_) | Tok::Star => self.expression(bp),
            Tok::LBracket => {
                self.index += 1;
                self.multi_list()
            }
            Tok::LBrace => {
                self.index += 1;
                self.multi_hash()
            }
            _ => Err(self.unexpected()),
        }
    }

    fn filter(&mut self, (left, ld): Node) -> P {
        let (condition, cd) = self.expression(0)?;
        self.expect(&Tok::RBracket)?;
        let (rhs, rd) = if self.current() == &Tok::Flatten {
            (Ast::Identity, 1)
        } else {
            self.projection_rhs(BP_FILTER)?
        };
        self.node(
            Ast::FilterProjection(Box::new(left), Box::new(rhs), Box::new(condition)),
            &[ld, rd, cd],
        )
    }

    fn multi_list(&mut self) -> P {
        let mut items = Vec::new();
        let mut depths = Vec::new();
        loop {
            let (item, d) = self.expression(0)?;
            items.push(item);
            depths.push(d);
            match self.current() {
                Tok::Comma => {
                    self.index += 1;
                    if self.current() == &Tok::RBracket {
                        return Err(self.unexpected());
                    }
                }
                Tok::RBracket => {
                    self.index += 1;
                    return self.node(Ast::MultiList(items), &depths);
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn multi_hash(&mut self) -> P {
        let mut pairs = Vec::new();
        let mut depths = Vec::new();
        loop {
            let pos = self.pos();
            let key = match self.advance() {
                Tok::Identifier(k) | Tok::QuotedIdentifier(k) => k,
                tok => {
                    return Err(JmespathError::syntax(
                        self.src,
                        pos,
                        format!("Expected identifier, received: {}", describe(&tok)),
                    ))
                }
            };
            self.expect(&Tok::Colon)?;
            let (value, d) = self.expression(0)?;
            pairs.push((key, value));
            depths.push(d);
            // As in Go's parser, a pair followed by neither `,` nor `}` just runs on into the
            // next key: `{a: x b: y}` is `{a: x, b: y}`.
            match self.current() {
                Tok::Comma => self.index += 1,
                Tok::RBrace => {
                    self.index += 1;
                    return self.node(Ast::MultiHash(pairs), &depths);
                }
                _ => {}
            }
        }
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Identifier(s) => format!("identifier {s:?}"),
        Tok::QuotedIdentifier(s) => format!("quoted identifier {s:?}"),
        Tok::RawString(s) => format!("string '{s}'"),
        Tok::Literal(v) => format!("literal `{v}`"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Dot => "'.'".into(),
        Tok::Star => "'*'".into(),
        Tok::Flatten => "'[]'".into(),
        Tok::Filter => "'[?'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Colon => "':'".into(),
        Tok::Pipe => "'|'".into(),
        Tok::Or => "'||'".into(),
        Tok::And => "'&&'".into(),
        Tok::Not => "'!'".into(),
        Tok::Eq => "'=='".into(),
        Tok::Ne => "'!='".into(),
        Tok::Lt => "'<'".into(),
        Tok::Lte => "'<='".into(),
        Tok::Gt => "'>'".into(),
        Tok::Gte => "'>='".into(),
        Tok::At => "'@'".into(),
        Tok::Expref => "'&'".into(),
        Tok::Eof => "end of expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_projections_and_filters() {
        assert!(parse("a.b[*].c").is_ok());
        assert!(parse("a[?b == `1`].c | [0]").is_ok());
        assert!(parse("a[1:2:-1]").is_ok());
        assert!(parse("{a: b, c: [d, e]}").is_ok());
        assert!(parse("sort_by(@, &a.b)").is_ok());
        assert!(parse("a.*.b[]").is_ok());
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in [
            "a.", "a[", "[a,]", "{a}", "\"f\"(x)", "a..b", "a[?b", "(a", "",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn deep_nesting_is_a_clean_error() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        let err = parse(&deep).unwrap_err();
        assert!(err.to_string().contains("nesting"), "{err}");
        let not_chain = format!("{}a", "!".repeat(10_000));
        assert!(parse(&not_chain).is_err());
        let long_chain = vec!["a"; 5_000].join(".");
        let err = parse(&long_chain).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
    }
}
