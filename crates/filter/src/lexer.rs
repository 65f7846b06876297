//! Tokens of the Milvus 2.5 filter language, with byte offsets.
//!
//! Longest-match like the ANTLR lexer: `ident["k"][0]` is one path token (no whitespace
//! inside), keywords are exact lower- or upper-case spellings, string literals are unquoted
//! with Go `strconv.Unquote` rules after Milvus's single-to-double quote conversion.

use crate::error::{syntax, FilterError, FilterErrorKind, Result};

/// One selector of a path token: `["key"]` or `[3]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Sel {
    Key(String),
    Index(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kw {
    And,
    Or,
    Not,
    In,
    Like,
    Exists,
    Is,
    Null,
    JsonContains,
    JsonContainsAll,
    JsonContainsAny,
    ArrayContains,
    ArrayContainsAll,
    ArrayContainsAny,
    ArrayLength,
    TextMatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Punct {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Pow,
    Shl,
    Shr,
    Amp,
    Pipe,
    Caret,
    Tilde,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// An identifier or `$meta`, optionally followed by `[..]` selectors.
    Ident {
        name: String,
        path: Vec<Sel>,
    },
    Kw(Kw),
    P(Punct),
    Eof,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

pub(crate) fn keyword(word: &str) -> Option<Kw> {
    Some(match word {
        "and" | "AND" => Kw::And,
        "or" | "OR" => Kw::Or,
        "not" | "NOT" => Kw::Not,
        "in" | "IN" => Kw::In,
        "like" | "LIKE" => Kw::Like,
        "exists" | "EXISTS" => Kw::Exists,
        "is" | "IS" => Kw::Is,
        "null" | "NULL" => Kw::Null,
        "json_contains" | "JSON_CONTAINS" => Kw::JsonContains,
        "json_contains_all" | "JSON_CONTAINS_ALL" => Kw::JsonContainsAll,
        "json_contains_any" | "JSON_CONTAINS_ANY" => Kw::JsonContainsAny,
        "array_contains" | "ARRAY_CONTAINS" => Kw::ArrayContains,
        "array_contains_all" | "ARRAY_CONTAINS_ALL" => Kw::ArrayContainsAll,
        "array_contains_any" | "ARRAY_CONTAINS_ANY" => Kw::ArrayContainsAny,
        "array_length" | "ARRAY_LENGTH" => Kw::ArrayLength,
        "text_match" | "TEXT_MATCH" => Kw::TextMatch,
        _ => return None,
    })
}

/// Whether `word` is a keyword in some other letter case (`And`, `Not`, `tRuE`).
pub(crate) fn is_miscased_keyword(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    keyword(word).is_none()
        && (keyword(&lower).is_some() || (lower == "true" || lower == "false"))
        && !matches!(word, "True" | "False")
}

fn literal_err(offset: usize, what: impl std::fmt::Display) -> FilterError {
    FilterError::new(FilterErrorKind::Literal, offset, what)
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>> {
    let mut lx = Lexer {
        src,
        b: src.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_ws();
        let start = lx.pos;
        if start >= lx.b.len() {
            out.push(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
            return Ok(out);
        }
        let tok = lx.next_token()?;
        out.push(Token {
            tok,
            start,
            end: lx.pos,
        });
    }
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.b.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(0), b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
    }

    fn next_token(&mut self) -> Result<Tok> {
        let start = self.pos;
        let c = self.peek(0);
        if is_ident_start(c) || (c == b'$' && self.src[start..].starts_with("$meta")) {
            return self.word();
        }
        if c.is_ascii_digit() || (c == b'.' && self.peek(1).is_ascii_digit()) {
            return self.number();
        }
        if c == b'"' || c == b'\'' {
            return Ok(Tok::Str(self.string()?));
        }
        let two = [c, self.peek(1)];
        let (p, len) = match &two {
            b"==" => (Punct::Eq, 2),
            b"!=" => (Punct::Ne, 2),
            b"<=" => (Punct::Le, 2),
            b">=" => (Punct::Ge, 2),
            b"<<" => (Punct::Shl, 2),
            b">>" => (Punct::Shr, 2),
            b"**" => (Punct::Pow, 2),
            b"&&" => (Punct::AndAnd, 2),
            b"||" => (Punct::OrOr, 2),
            _ => match c {
                b'<' => (Punct::Lt, 1),
                b'>' => (Punct::Gt, 1),
                b'+' => (Punct::Plus, 1),
                b'-' => (Punct::Minus, 1),
                b'*' => (Punct::Star, 1),
                b'/' => (Punct::Slash, 1),
                b'%' => (Punct::Percent, 1),
                b'&' => (Punct::Amp, 1),
                b'|' => (Punct::Pipe, 1),
                b'^' => (Punct::Caret, 1),
                b'~' => (Punct::Tilde, 1),
                b'!' => (Punct::Bang, 1),
                b'(' => (Punct::LParen, 1),
                b')' => (Punct::RParen, 1),
                b'[' => (Punct::LBracket, 1),
                b']' => (Punct::RBracket, 1),
                b'{' => (Punct::LBrace, 1),
                b'}' => (Punct::RBrace, 1),
                b',' => (Punct::Comma, 1),
                b'=' => {
                    return Err(syntax(start, "unexpected '='")
                        .hint("equality is written '==' (a single '=' is not an operator)"))
                }
                _ => {
                    let ch = self.src[start..].chars().next().unwrap_or('?');
                    return Err(syntax(start, format!("unexpected character {ch:?}")));
                }
            },
        };
        self.pos += len;
        Ok(Tok::P(p))
    }

    fn word(&mut self) -> Result<Tok> {
        let start = self.pos;
        if self.b[start] == b'$' {
            self.pos += "$meta".len();
            if is_ident_char(self.peek(0)) {
                return Err(syntax(start, "unexpected '$'")
                    .hint("'$meta' is the only name that starts with '$'"));
            }
        } else {
            while is_ident_char(self.peek(0)) {
                self.pos += 1;
            }
        }
        let word = &self.src[start..self.pos];
        if self.peek(0) != b'[' || (word != "$meta" && keyword(word).is_some()) {
            if let Some(kw) = keyword(word) {
                return Ok(Tok::Kw(kw));
            }
            match word {
                "true" | "True" | "TRUE" => return Ok(Tok::Bool(true)),
                "false" | "False" | "FALSE" => return Ok(Tok::Bool(false)),
                _ => {}
            }
            return Ok(Tok::Ident {
                name: word.to_owned(),
                path: Vec::new(),
            });
        }
        let mut path = Vec::new();
        while self.peek(0) == b'[' {
            let open = self.pos;
            self.pos += 1;
            let c = self.peek(0);
            let sel = if c == b'"' || c == b'\'' {
                let key = self.string()?;
                if key.is_empty() {
                    return Err(syntax(open, "empty json key").hint("a key path needs a key"));
                }
                Sel::Key(key)
            } else if c.is_ascii_digit() {
                let s = self.pos;
                while self.peek(0).is_ascii_digit() {
                    self.pos += 1;
                }
                let idx = self.src[s..self.pos]
                    .parse::<usize>()
                    .map_err(|_| literal_err(s, "array index out of range"))?;
                Sel::Index(idx)
            } else {
                return Err(syntax(open + 1, format!("invalid selector after '{word}['")).hint(
                    "json key must be enclosed in double quotes or single quotes, \
                     an index must be a non-negative integer, and no spaces are allowed inside [...]",
                ));
            };
            if self.peek(0) != b']' {
                return Err(syntax(self.pos, "expected ']' to close the path selector")
                    .hint("no spaces are allowed inside [...] of a key path"));
            }
            self.pos += 1;
            path.push(sel);
        }
        Ok(Tok::Ident {
            name: word.to_owned(),
            path,
        })
    }

    fn number(&mut self) -> Result<Tok> {
        let start = self.pos;
        let b = self.b;
        let tok = if b[start] == b'0' && matches!(self.peek(1), b'x' | b'X') {
            self.pos += 2;
            let ds = self.pos;
            while self.peek(0).is_ascii_hexdigit() {
                self.pos += 1;
            }
            let int_digits = &self.src[ds..self.pos];
            if matches!(self.peek(0), b'.' | b'p' | b'P') {
                self.hex_float(start, int_digits)?
            } else {
                if int_digits.is_empty() {
                    return Err(literal_err(start, "hex literal without digits"));
                }
                Tok::Int(i64::from_str_radix(int_digits, 16).map_err(|_| int_range(start))?)
            }
        } else if b[start] == b'0' && matches!(self.peek(1), b'b' | b'B') {
            self.pos += 2;
            let ds = self.pos;
            while matches!(self.peek(0), b'0' | b'1') {
                self.pos += 1;
            }
            let digits = &self.src[ds..self.pos];
            if digits.is_empty() {
                return Err(literal_err(start, "binary literal without digits"));
            }
            Tok::Int(i64::from_str_radix(digits, 2).map_err(|_| int_range(start))?)
        } else {
            while self.peek(0).is_ascii_digit() {
                self.pos += 1;
            }
            let mut is_float = false;
            if self.peek(0) == b'.' {
                is_float = true;
                self.pos += 1;
                while self.peek(0).is_ascii_digit() {
                    self.pos += 1;
                }
            }
            if matches!(self.peek(0), b'e' | b'E') {
                let save = self.pos;
                self.pos += 1;
                if matches!(self.peek(0), b'+' | b'-') {
                    self.pos += 1;
                }
                if self.peek(0).is_ascii_digit() {
                    is_float = true;
                    while self.peek(0).is_ascii_digit() {
                        self.pos += 1;
                    }
                } else {
                    self.pos = save;
                }
            }
            let text = &self.src[start..self.pos];
            if is_float {
                Tok::Float(
                    text.parse::<f64>()
                        .map_err(|_| literal_err(start, format!("invalid float {text:?}")))?,
                )
            } else if text.len() > 1 && text.starts_with('0') {
                let v = i64::from_str_radix(&text[1..], 8).map_err(|_| {
                    if text.bytes().any(|c| c > b'7') {
                        literal_err(start, format!("invalid octal literal {text:?}"))
                            .hint("a leading 0 makes an octal number (010 is 8)")
                    } else {
                        int_range(start)
                    }
                })?;
                Tok::Int(v)
            } else {
                Tok::Int(text.parse::<i64>().map_err(|_| int_range(start))?)
            }
        };
        if is_ident_char(self.peek(0)) || self.peek(0) == b'.' {
            return Err(literal_err(start, "invalid number literal")
                .hint("a number must be followed by an operator or whitespace"));
        }
        Ok(tok)
    }

    fn hex_float(&mut self, start: usize, int_digits: &str) -> Result<Tok> {
        let mut mant = 0f64;
        for c in int_digits.chars() {
            mant = mant * 16.0 + f64::from(c.to_digit(16).unwrap_or(0));
        }
        let mut scale = 0i32;
        if self.peek(0) == b'.' {
            self.pos += 1;
            while self.peek(0).is_ascii_hexdigit() {
                let d = char::from(self.peek(0)).to_digit(16).unwrap_or(0);
                mant = mant * 16.0 + f64::from(d);
                scale -= 4;
                self.pos += 1;
            }
        }
        if !matches!(self.peek(0), b'p' | b'P') {
            return Err(literal_err(start, "hex float needs a 'p' exponent").hint("e.g. 0x1.8p1"));
        }
        self.pos += 1;
        let es = self.pos;
        if matches!(self.peek(0), b'+' | b'-') {
            self.pos += 1;
        }
        while self.peek(0).is_ascii_digit() {
            self.pos += 1;
        }
        let exp: i32 = self.src[es..self.pos]
            .parse()
            .map_err(|_| literal_err(start, "invalid hex float exponent"))?;
        Ok(Tok::Float(mant * 2f64.powi(exp.saturating_add(scale))))
    }

    /// Reads a quoted literal at `self.pos` and returns its unescaped value.
    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let quote = self.b[start];
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let i = self.pos;
            let Some(&c) = self.b.get(i) else {
                return Err(syntax(start, "unterminated string literal")
                    .hint(format!("close it with {}", char::from(quote))));
            };
            match c {
                b'\n' | b'\r' => {
                    return Err(syntax(i, "line break inside a string literal")
                        .hint("write \\n instead of a raw line break"))
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape(quote, i, &mut out)?;
                }
                _ if c == quote => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| {
            literal_err(start, "string literal is not valid UTF-8")
                .hint("\\x and octal escapes must spell whole UTF-8 characters")
        })
    }

    fn escape(&mut self, quote: u8, at: usize, out: &mut Vec<u8>) -> Result<()> {
        let c = self.peek(0);
        self.pos += 1;
        let simple = match c {
            b'a' => Some(7u8),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' => Some(b'\\'),
            b'"' => Some(b'"'),
            b'\'' if quote == b'\'' => Some(b'\''),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            return Ok(());
        }
        match c {
            b'x' => {
                let v = self.hex_digits(2, at)?;
                out.push(v as u8);
            }
            b'0'..=b'7' => {
                let s = self.pos - 1;
                let digits = self.src.get(s..s + 3).unwrap_or("");
                if digits.len() != 3 || !digits.bytes().all(|d| (b'0'..=b'7').contains(&d)) {
                    return Err(literal_err(at, "octal escape needs exactly three digits"));
                }
                let v = u32::from_str_radix(digits, 8).unwrap_or(256);
                if v > 255 {
                    return Err(literal_err(at, "octal escape above \\377"));
                }
                self.pos = s + 3;
                out.push(v as u8);
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                let v = self.hex_digits(n, at)?;
                let ch = char::from_u32(v)
                    .ok_or_else(|| literal_err(at, format!("invalid unicode escape U+{v:X}")))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            b'\'' => {
                return Err(literal_err(at, "unknown escape \\' inside double quotes")
                    .hint("write ' directly inside \"...\" (\\' only escapes in single quotes)"))
            }
            0 => return Err(syntax(at, "unterminated string literal")),
            _ => {
                let shown = self.src[self.pos - 1..].chars().next().unwrap_or('?');
                // Keep the cursor on a char boundary for the caller.
                self.pos = self.pos - 1 + shown.len_utf8();
                let mut e = literal_err(at, format!("unknown escape sequence \\{shown}"));
                if matches!(shown, '%' | '_') {
                    e = e.hint(format!(
                        "to match a literal {shown} in a like pattern write \\\\{shown} \
                         (the string literal consumes one backslash)"
                    ));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn hex_digits(&mut self, n: usize, at: usize) -> Result<u32> {
        let s = self.pos;
        let digits = self.src.get(s..s + n).unwrap_or("");
        if digits.len() != n || !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
            return Err(literal_err(
                at,
                format!("escape needs exactly {n} hex digits"),
            ));
        }
        self.pos = s + n;
        u32::from_str_radix(digits, 16).map_err(|_| literal_err(at, "invalid hex escape"))
    }
}

fn int_range(offset: usize) -> FilterError {
    literal_err(offset, "integer literal out of the int64 range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn integers_in_every_base() {
        assert_eq!(
            toks("010 0x1F 0b101 0 42")[..5],
            [
                Tok::Int(8),
                Tok::Int(31),
                Tok::Int(5),
                Tok::Int(0),
                Tok::Int(42)
            ]
        );
        assert!(tokenize("9223372036854775808").is_err());
        assert!(tokenize("08").is_err());
        assert!(tokenize("1.2.3").is_err());
    }

    #[test]
    fn floats_with_exponents() {
        assert_eq!(
            toks("1.5 .5 5. 1e3 1.5e-2 0x1.8p1")[..6],
            [
                Tok::Float(1.5),
                Tok::Float(0.5),
                Tok::Float(5.0),
                Tok::Float(1000.0),
                Tok::Float(0.015),
                Tok::Float(3.0)
            ]
        );
    }

    #[test]
    fn strings_unescape_like_go() {
        assert_eq!(
            toks(r#"'it\'s' "a\"b" 'a"b' "\u65e5\x41\101\n""#)[..4],
            [
                Tok::Str("it's".into()),
                Tok::Str("a\"b".into()),
                Tok::Str("a\"b".into()),
                Tok::Str("日AA\n".into())
            ]
        );
        assert!(tokenize(r"'100\%'").is_err());
        assert!(tokenize(r#""it\'s""#).is_err());
        assert!(tokenize("'open").is_err());
        assert!(tokenize(r"'\xff'").is_err(), "invalid UTF-8 is refused");
    }

    #[test]
    fn paths_are_single_tokens() {
        assert_eq!(
            toks(r#"$meta["a"][0]"#)[0],
            Tok::Ident {
                name: "$meta".into(),
                path: vec![Sel::Key("a".into()), Sel::Index(0)]
            }
        );
        assert!(tokenize("a[k]").is_err());
        assert!(tokenize(r#"a[ "k" ]"#).is_err());
        assert!(tokenize(r#"a[""]"#).is_err());
    }

    #[test]
    fn keywords_are_case_exact() {
        assert_eq!(
            toks("and AND And")[..3],
            [
                Tok::Kw(Kw::And),
                Tok::Kw(Kw::And),
                Tok::Ident {
                    name: "And".into(),
                    path: vec![]
                }
            ]
        );
        assert_eq!(toks("True tRuE")[0], Tok::Bool(true));
        assert!(is_miscased_keyword("tRuE") && is_miscased_keyword("Not"));
        assert!(!is_miscased_keyword("True") && !is_miscased_keyword("color"));
    }
}
