//! Precedence-climbing parser with the operator levels of the Milvus 2.5 ANTLR grammar.
//!
//! One deliberate difference: `not`/`!` takes its operand up to the next `and`/`or` (SQL
//! reading), so `not a > 1` means `not (a > 1)`. Milvus parses `(not a) > 1` and then always
//! rejects it, so every expression Milvus accepts keeps its meaning.

use crate::ast::{ArithOp, CmpOp, Func, Kind, Node, UnOp};
use crate::error::{syntax, unsupported, FilterError, FilterErrorKind, Result};
use crate::lexer::{is_miscased_keyword, tokenize, Kw, Punct, Tok, Token};

/// Deepest nesting accepted (parentheses, prefix operators, lists, operator chains).
pub const MAX_DEPTH: u32 = 128;

const BP_OR: u8 = 2;
const BP_AND: u8 = 4;
const BP_EQ: u8 = 12;
const BP_REL: u8 = 14;
const BP_IN: u8 = 16;
const BP_PREFIX: u8 = 24;
const BP_POW: u8 = 26;
const BP_LIKE: u8 = 28;

/// Parses `src`; `Ok(None)` for an empty or whitespace-only expression.
pub(crate) fn parse(src: &str) -> Result<Option<Node>> {
    let toks = tokenize(src)?;
    if matches!(toks[0].tok, Tok::Eof) {
        return Ok(None);
    }
    let mut p = Parser { src, toks, i: 0 };
    let node = p.expr(0, 0)?;
    let t = p.peek();
    if !matches!(t.tok, Tok::Eof) {
        return Err(p.unexpected(
            p.i,
            "expected an operator such as and, or, ==, in, or the end",
        ));
    }
    Ok(Some(node))
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
}

fn too_deep(at: usize) -> FilterError {
    FilterError::new(FilterErrorKind::TooDeep, at, "expression nests too deeply").hint(format!(
        "at most {MAX_DEPTH} levels are supported; flatten the expression"
    ))
}

fn is_field(n: &Node) -> bool {
    matches!(n.kind, Kind::Field { .. }) && !n.grouped
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn text(&self, idx: usize) -> &str {
        let t = &self.toks[idx.min(self.toks.len() - 1)];
        let s = &self.src[t.start..t.end];
        match s.char_indices().nth(40) {
            Some((cut, _)) => &s[..cut],
            None => s,
        }
    }

    fn unexpected(&self, idx: usize, expected: &str) -> FilterError {
        let t = &self.toks[idx.min(self.toks.len() - 1)];
        if matches!(t.tok, Tok::Eof) {
            return syntax(t.start, "unexpected end of expression").hint(expected.to_owned());
        }
        let text = self.text(idx);
        let e = syntax(t.start, format!("unexpected token '{text}'"));
        if let Tok::Ident { name, .. } = &t.tok {
            if is_miscased_keyword(name) {
                return e.hint("keywords are all lower or all upper case");
            }
        }
        e.hint(expected.to_owned())
    }

    fn expect(&mut self, p: Punct, what: &str) -> Result<Token> {
        if self.peek().tok == Tok::P(p) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(self.i, what))
        }
    }

    fn expr(&mut self, min_bp: u8, depth: u32) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(too_deep(self.peek().start));
        }
        let mut lhs = self.prefix(depth)?;
        loop {
            let t = self.peek().clone();
            let lbp = match &t.tok {
                Tok::Kw(Kw::Or) | Tok::P(Punct::OrOr) => BP_OR,
                Tok::Kw(Kw::And) | Tok::P(Punct::AndAnd) => BP_AND,
                Tok::P(Punct::Pipe) => 6,
                Tok::P(Punct::Caret) => 8,
                Tok::P(Punct::Amp) => 10,
                Tok::P(Punct::Eq | Punct::Ne) => BP_EQ,
                Tok::P(Punct::Lt | Punct::Le | Punct::Gt | Punct::Ge) => BP_REL,
                Tok::Kw(Kw::In) => BP_IN,
                Tok::Kw(Kw::Not) if matches!(self.peek_at(1), Tok::Kw(Kw::In)) => BP_IN,
                Tok::P(Punct::Shl | Punct::Shr) => 18,
                Tok::P(Punct::Plus | Punct::Minus) => 20,
                Tok::P(Punct::Star | Punct::Slash | Punct::Percent) => 22,
                Tok::P(Punct::Pow) => BP_POW,
                Tok::Kw(Kw::Like) => BP_LIKE,
                _ => break,
            };
            if lbp <= min_bp {
                break;
            }
            self.bump();
            let at = t.start;
            lhs = match t.tok {
                Tok::Kw(Kw::Like) => {
                    let pt = self.bump();
                    let Tok::Str(pattern) = pt.tok else {
                        return Err(
                            self.unexpected(self.i - 1, "like needs a string literal pattern")
                        );
                    };
                    let d = lhs.depth;
                    sized(
                        Kind::Like {
                            lhs: Box::new(lhs),
                            pattern,
                        },
                        at,
                        [d],
                    )?
                }
                Tok::Kw(Kw::Not) | Tok::Kw(Kw::In) => {
                    let negated = matches!(t.tok, Tok::Kw(Kw::Not));
                    if negated {
                        self.bump();
                    }
                    let rhs = self.expr(BP_IN, depth + 1)?;
                    let d = [&lhs, &rhs].map(|n| n.depth);
                    let k = Kind::In {
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        negated,
                    };
                    sized(k, at, d)?
                }
                Tok::Kw(Kw::And)
                | Tok::P(Punct::AndAnd)
                | Tok::Kw(Kw::Or)
                | Tok::P(Punct::OrOr) => {
                    let rhs = self.expr(lbp, depth + 1)?;
                    let is_and = lbp == BP_AND;
                    join(lhs, rhs, is_and, at)?
                }
                Tok::P(p @ (Punct::Lt | Punct::Le | Punct::Gt | Punct::Ge)) => {
                    let rhs = self.expr(BP_REL, depth + 1)?;
                    let next = self.peek().tok.clone();
                    let asc = matches!(p, Punct::Lt | Punct::Le);
                    let same_dir = match next {
                        Tok::P(Punct::Lt | Punct::Le) => asc,
                        Tok::P(Punct::Gt | Punct::Ge) => !asc,
                        _ => false,
                    };
                    if is_field(&rhs) && same_dir {
                        let Tok::P(p2) = self.bump().tok else {
                            unreachable!()
                        };
                        let third = self.expr(BP_REL, depth + 1)?;
                        let incl1 = matches!(p, Punct::Le | Punct::Ge);
                        let incl2 = matches!(p2, Punct::Le | Punct::Ge);
                        let d = [lhs.depth, rhs.depth, third.depth];
                        let (lo, lo_incl, hi, hi_incl) = if asc {
                            (lhs, incl1, third, incl2)
                        } else {
                            (third, incl2, lhs, incl1)
                        };
                        let k = Kind::Range {
                            lo: Box::new(lo),
                            lo_incl,
                            field: Box::new(rhs),
                            hi_incl,
                            hi: Box::new(hi),
                        };
                        sized(k, at, d)?
                    } else {
                        let op = match p {
                            Punct::Lt => CmpOp::Lt,
                            Punct::Le => CmpOp::Le,
                            Punct::Gt => CmpOp::Gt,
                            _ => CmpOp::Ge,
                        };
                        let d = [lhs.depth, rhs.depth];
                        sized(Kind::Cmp(op, Box::new(lhs), Box::new(rhs)), at, d)?
                    }
                }
                Tok::P(p) => {
                    let rhs = self.expr(lbp, depth + 1)?;
                    let d = [lhs.depth, rhs.depth];
                    let (l, r) = (Box::new(lhs), Box::new(rhs));
                    let k = match p {
                        Punct::Eq => Kind::Cmp(CmpOp::Eq, l, r),
                        Punct::Ne => Kind::Cmp(CmpOp::Ne, l, r),
                        Punct::Plus => Kind::Arith(ArithOp::Add, l, r),
                        Punct::Minus => Kind::Arith(ArithOp::Sub, l, r),
                        Punct::Star => Kind::Arith(ArithOp::Mul, l, r),
                        Punct::Slash => Kind::Arith(ArithOp::Div, l, r),
                        Punct::Percent => Kind::Arith(ArithOp::Mod, l, r),
                        Punct::Pow => Kind::Arith(ArithOp::Pow, l, r),
                        Punct::Shl => Kind::Bitwise("<<"),
                        Punct::Shr => Kind::Bitwise(">>"),
                        Punct::Amp => Kind::Bitwise("&"),
                        Punct::Pipe => Kind::Bitwise("|"),
                        _ => Kind::Bitwise("^"),
                    };
                    sized(k, at, d)?
                }
                _ => return Err(self.unexpected(self.i - 1, "expected an operator")),
            };
        }
        Ok(lhs)
    }

    fn prefix(&mut self, depth: u32) -> Result<Node> {
        let t = self.peek().clone();
        let op = match t.tok {
            Tok::P(Punct::Minus) => Some((UnOp::Neg, BP_PREFIX)),
            Tok::P(Punct::Plus) => Some((UnOp::Pos, BP_PREFIX)),
            Tok::P(Punct::Tilde) => Some((UnOp::BitNot, BP_PREFIX)),
            // SQL reading: the operand of `not` runs up to the next `and` / `or`.
            Tok::P(Punct::Bang) | Tok::Kw(Kw::Not) => Some((UnOp::Not, BP_AND)),
            _ => None,
        };
        if let Some((op, bp)) = op {
            self.bump();
            let operand = self.expr(bp, depth + 1)?;
            let d = operand.depth;
            return sized(Kind::Unary(op, Box::new(operand)), t.start, [d]);
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: u32) -> Result<Node> {
        let idx = self.i;
        let t = self.bump();
        let at = t.start;
        let leaf = |k: Kind| {
            Ok(Node {
                kind: k,
                at,
                depth: 1,
                grouped: false,
            })
        };
        match t.tok {
            Tok::Int(v) => leaf(Kind::Int(v)),
            Tok::Float(v) => leaf(Kind::Float(v)),
            Tok::Str(s) => leaf(Kind::Str(s)),
            Tok::Bool(b) => leaf(Kind::Bool(b)),
            Tok::Ident { name, path } => {
                if path.is_empty() && self.peek().tok == Tok::P(Punct::LParen) {
                    return Err(unsupported(at, format!("unknown function '{name}'")).hint(
                        "supported functions are json_contains(_all|_any), \
                         array_contains(_all|_any) and array_length",
                    ));
                }
                let field = Node {
                    kind: Kind::Field { name, path },
                    at,
                    depth: 1,
                    grouped: false,
                };
                if self.peek().tok == Tok::Kw(Kw::Is) {
                    let is_at = self.bump().start;
                    let negated = self.peek().tok == Tok::Kw(Kw::Not);
                    if negated {
                        self.bump();
                    }
                    if self.peek().tok != Tok::Kw(Kw::Null) {
                        return Err(self.unexpected(self.i, "expected 'is null' or 'is not null'"));
                    }
                    self.bump();
                    let k = Kind::IsNull {
                        field: Box::new(field),
                        negated,
                    };
                    return sized(k, is_at, [1]);
                }
                Ok(field)
            }
            Tok::P(Punct::LBrace) => {
                let nt = self.bump();
                let Tok::Ident { name, path } = nt.tok else {
                    return Err(self.unexpected(self.i - 1, "expected a template name: {name}"));
                };
                if !path.is_empty() {
                    return Err(syntax(nt.start, "a template name cannot have selectors"));
                }
                self.expect(Punct::RBrace, "expected '}' to close the template")?;
                leaf(Kind::Template(name))
            }
            Tok::P(Punct::LParen) => {
                let mut inner = self.expr(0, depth + 1)?;
                self.expect(Punct::RParen, "expected ')'")?;
                inner.grouped = true;
                Ok(inner)
            }
            Tok::P(Punct::LBracket) => {
                let mut items = Vec::new();
                loop {
                    if self.peek().tok == Tok::P(Punct::RBracket) {
                        self.bump();
                        break;
                    }
                    items.push(self.expr(0, depth + 1)?);
                    match self.peek().tok {
                        Tok::P(Punct::Comma) => {
                            self.bump();
                        }
                        Tok::P(Punct::RBracket) => {
                            self.bump();
                            break;
                        }
                        _ => return Err(self.unexpected(self.i, "expected ',' or ']' in the list")),
                    }
                }
                let d = items.iter().map(|n| n.depth).max().unwrap_or(0);
                sized(Kind::List(items), at, [d])
            }
            Tok::Kw(Kw::Exists) => {
                let operand = self.expr(BP_LIKE, depth + 1)?;
                let d = operand.depth;
                sized(Kind::Exists(Box::new(operand)), at, [d])
            }
            Tok::Kw(Kw::TextMatch) => Err(unsupported(at, "text_match is not supported")
                .hint("QuiverDB has no analyzers; use like '%word%' instead")),
            Tok::Kw(
                kw @ (Kw::JsonContains
                | Kw::JsonContainsAll
                | Kw::JsonContainsAny
                | Kw::ArrayContains
                | Kw::ArrayContainsAll
                | Kw::ArrayContainsAny
                | Kw::ArrayLength),
            ) => {
                let func = match kw {
                    Kw::JsonContains => Func::JsonContains,
                    Kw::JsonContainsAll => Func::JsonContainsAll,
                    Kw::JsonContainsAny => Func::JsonContainsAny,
                    Kw::ArrayContains => Func::ArrayContains,
                    Kw::ArrayContainsAll => Func::ArrayContainsAll,
                    Kw::ArrayContainsAny => Func::ArrayContainsAny,
                    _ => Func::ArrayLength,
                };
                let arity = if func == Func::ArrayLength { 1 } else { 2 };
                let usage = if arity == 1 {
                    format!("usage: {}(field)", func.name())
                } else {
                    format!("usage: {}(field, value)", func.name())
                };
                self.expect(Punct::LParen, &usage)?;
                let mut args = Vec::new();
                for k in 0..arity {
                    args.push(self.expr(0, depth + 1)?);
                    let want = if k + 1 < arity {
                        Punct::Comma
                    } else {
                        Punct::RParen
                    };
                    self.expect(want, &usage)?;
                }
                let d = args.iter().map(|n| n.depth).max().unwrap_or(0);
                sized(Kind::Call(func, args), at, [d])
            }
            _ => {
                self.i = idx;
                let e = self.unexpected(idx, "expected a value, a field name or '('");
                self.i = idx + 1;
                Err(e)
            }
        }
    }
}

fn sized<const N: usize>(kind: Kind, at: usize, child_depths: [u32; N]) -> Result<Node> {
    let depth = child_depths.iter().copied().max().unwrap_or(0) + 1;
    if depth > MAX_DEPTH {
        return Err(too_deep(at));
    }
    Ok(Node {
        kind,
        at,
        depth,
        grouped: false,
    })
}

/// Builds a flat n-ary `and`/`or` so long chains do not nest.
fn join(lhs: Node, rhs: Node, is_and: bool, at: usize) -> Result<Node> {
    let flat = !lhs.grouped
        && matches!(
            (&lhs.kind, is_and),
            (Kind::And(_), true) | (Kind::Or(_), false)
        );
    // A flattened node is already one level above its children.
    let depth = if flat {
        lhs.depth.max(rhs.depth + 1)
    } else {
        lhs.depth.max(rhs.depth) + 1
    };
    if depth > MAX_DEPTH {
        return Err(too_deep(at));
    }
    let start = lhs.at.min(at);
    let mut items = match lhs.kind {
        Kind::And(v) | Kind::Or(v) if flat => v,
        kind => vec![Node { kind, ..lhs }],
    };
    items.push(rhs);
    let kind = if is_and {
        Kind::And(items)
    } else {
        Kind::Or(items)
    };
    Ok(Node {
        kind,
        at: start,
        depth,
        grouped: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(n: &Node) -> String {
        match &n.kind {
            Kind::Int(v) => v.to_string(),
            Kind::Float(v) => format!("{v:?}"),
            Kind::Str(s) => format!("{s:?}"),
            Kind::Bool(b) => b.to_string(),
            Kind::Field { name, path } => {
                format!("{name}{}", if path.is_empty() { "" } else { "[..]" })
            }
            Kind::Template(t) => format!("{{{t}}}"),
            Kind::List(v) => format!("[{}]", v.iter().map(shape).collect::<Vec<_>>().join(",")),
            Kind::Unary(op, x) => format!("({op:?} {})", shape(x)),
            Kind::Arith(op, a, b) => format!("({} {} {})", shape(a), op.symbol(), shape(b)),
            Kind::Bitwise(op) => format!("(bitwise {op})"),
            Kind::Cmp(op, a, b) => format!("({} {} {})", shape(a), op.symbol(), shape(b)),
            Kind::Range {
                lo,
                lo_incl,
                field,
                hi_incl,
                hi,
            } => format!(
                "({} {} {} {} {})",
                shape(lo),
                if *lo_incl { "<=" } else { "<" },
                shape(field),
                if *hi_incl { "<=" } else { "<" },
                shape(hi)
            ),
            Kind::In { lhs, rhs, negated } => {
                format!(
                    "({} {}in {})",
                    shape(lhs),
                    if *negated { "not " } else { "" },
                    shape(rhs)
                )
            }
            Kind::Like { lhs, pattern } => format!("({} like {pattern:?})", shape(lhs)),
            Kind::And(v) => format!(
                "(and {})",
                v.iter().map(shape).collect::<Vec<_>>().join(" ")
            ),
            Kind::Or(v) => format!("(or {})", v.iter().map(shape).collect::<Vec<_>>().join(" ")),
            Kind::Exists(x) => format!("(exists {})", shape(x)),
            Kind::IsNull { field, negated } => {
                format!(
                    "({} is {}null)",
                    shape(field),
                    if *negated { "not " } else { "" }
                )
            }
            Kind::Call(f, args) => {
                format!(
                    "{}({})",
                    f.name(),
                    args.iter().map(shape).collect::<Vec<_>>().join(",")
                )
            }
        }
    }

    fn p(s: &str) -> String {
        shape(&parse(s).unwrap().unwrap())
    }

    #[test]
    fn precedence_follows_the_grammar() {
        assert_eq!(
            p("a or b == 1 and c == 2"),
            "(or a (and (b == 1) (c == 2)))"
        );
        assert_eq!(p("-a ** 2"), "(Neg (a ** 2))");
        assert_eq!(p("a ** 2 ** 3"), "((a ** 2) ** 3)");
        assert_eq!(p("a + 1 * 2 == 3"), "((a + (1 * 2)) == 3)");
        assert_eq!(p("not a like 'x%'"), "(Not (a like \"x%\"))");
        assert_eq!(p("not a > 1 and b"), "(and (Not (a > 1)) b)");
        assert_eq!(p("x not in [1, 2,]"), "(x not in [1,2])");
        assert_eq!(p("a is not null"), "(a is not null)");
        assert_eq!(p("exists a[\"k\"] == 1"), "((exists a[..]) == 1)");
    }

    #[test]
    fn chained_ranges() {
        assert_eq!(p("1 < a <= 3"), "(1 < a <= 3)");
        assert_eq!(p("3 >= a > 1"), "(1 < a <= 3)");
        assert_eq!(p("a < 1 < 3"), "((a < 1) < 3)");
        assert_eq!(p("1 < (a) < 3"), "((1 < a) < 3)");
    }

    #[test]
    fn and_or_chains_stay_flat() {
        let long = vec!["a == 1"; 5000].join(" and ");
        let n = parse(&long).unwrap().unwrap();
        assert!(n.depth <= 3, "depth {}", n.depth);
    }

    #[test]
    fn errors_are_positioned_and_actionable() {
        let e = parse("pk > 1 And pk < 3").unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(
            e.message
                .contains("keywords are all lower or all upper case"),
            "{e}"
        );
        assert!(parse("(pk > 5").is_err());
        assert!(parse("pk > 5)").is_err());
        assert!(parse("pk == 5 5").is_err());
        assert!(parse("pk ==== 5").is_err());
        assert!(parse("pk in [1, 2").is_err());
        assert!(parse("text like 5").is_err());
        assert!(parse("foo(pk)").is_err());
        let deep = format!("{}a == 1{}", "(".repeat(1000), ")".repeat(1000));
        assert_eq!(parse(&deep).unwrap_err().kind, FilterErrorKind::TooDeep);
        let nots = format!("{}a == 1", "not ".repeat(100_000));
        assert_eq!(parse(&nots).unwrap_err().kind, FilterErrorKind::TooDeep);
    }

    #[test]
    fn empty_is_none() {
        assert!(parse("  \n\t").unwrap().is_none());
    }
}
