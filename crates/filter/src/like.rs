//! `like` patterns: `%` any run, `_` one character, `\` escapes the next character.
//!
//! Compiled once into the cheapest matcher that fits (exact, prefix, suffix, substring) or a
//! general wildcard matcher that walks the text without allocating.

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Piece {
    Lit(char),
    One,
    Many,
}

/// A compiled `like` pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LikePattern {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    General(Box<[Piece]>),
}

impl LikePattern {
    pub(crate) fn compile(pattern: &str) -> LikePattern {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '%' => {
                    if pieces.last() == Some(&Piece::Many) {
                        continue;
                    }
                    Piece::Many
                }
                '_' => Piece::One,
                '\\' => Piece::Lit(chars.next().unwrap_or('\\')),
                c => Piece::Lit(c),
            });
        }
        let lit = |ps: &[Piece]| -> Option<Box<str>> {
            ps.iter()
                .map(|p| match p {
                    Piece::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect::<Option<String>>()
                .map(String::into_boxed_str)
        };
        let n = pieces.len();
        let starts = n > 0 && pieces[0] == Piece::Many;
        let ends = n > 0 && pieces[n - 1] == Piece::Many;
        if let Some(s) = lit(&pieces) {
            return LikePattern::Exact(s);
        }
        if starts && ends && n >= 2 {
            if let Some(s) = lit(&pieces[1..n - 1]) {
                return LikePattern::Contains(s);
            }
        }
        if ends {
            if let Some(s) = lit(&pieces[..n - 1]) {
                return LikePattern::Prefix(s);
            }
        }
        if starts {
            if let Some(s) = lit(&pieces[1..]) {
                return LikePattern::Suffix(s);
            }
        }
        LikePattern::General(pieces.into_boxed_slice())
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            LikePattern::Exact(p) => s == &**p,
            LikePattern::Prefix(p) => s.starts_with(&**p),
            LikePattern::Suffix(p) => s.ends_with(&**p),
            LikePattern::Contains(p) => s.contains(&**p),
            LikePattern::General(ps) => general(ps, s),
        }
    }
}

/// Wildcard match with single-star backtracking: O(len(s) * len(pattern)) worst case.
fn general(ps: &[Piece], s: &str) -> bool {
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < s.len() {
        let c = s[ti..].chars().next().unwrap_or('\0');
        match ps.get(pi) {
            Some(Piece::Many) => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(Piece::One) => {
                ti += c.len_utf8();
                pi += 1;
                continue;
            }
            Some(Piece::Lit(l)) if *l == c => {
                ti += c.len_utf8();
                pi += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                let sc = s[st..].chars().next().unwrap_or('\0');
                let nt = st + sc.len_utf8();
                star = Some((sp, nt));
                pi = sp + 1;
                ti = nt;
            }
            None => return false,
        }
    }
    ps[pi.min(ps.len())..].iter().all(|p| *p == Piece::Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        LikePattern::compile(p).matches(s)
    }

    #[test]
    fn shapes_are_recognised() {
        assert_eq!(
            LikePattern::compile("ab%"),
            LikePattern::Prefix("ab".into())
        );
        assert_eq!(
            LikePattern::compile("%ab"),
            LikePattern::Suffix("ab".into())
        );
        assert_eq!(
            LikePattern::compile("%ab%"),
            LikePattern::Contains("ab".into())
        );
        assert_eq!(
            LikePattern::compile("a\\%"),
            LikePattern::Exact("a%".into())
        );
        assert_eq!(LikePattern::compile("%"), LikePattern::Prefix("".into()));
        assert!(matches!(
            LikePattern::compile("a_%"),
            LikePattern::General(_)
        ));
    }

    #[test]
    fn wildcards_match_characters() {
        assert!(m("item_4%", "item 40"));
        assert!(!m("item_4%", "item4"));
        assert!(m("%item 4_", "item 41"));
        assert!(!m("%item 4_", "item 4"));
        assert!(m("_", "é"), "_ is one character, not one byte");
        assert!(m("%é%", "ünïcödé item"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("a%b%c", "axxbyyc"));
        assert!(!m("a%b%c", "axxbyy"));
        assert!(m("100\\%%", "100% off"));
        assert!(!m("100\\%%", "1000"));
        assert!(m("a\\_b", "a_b") && !m("a\\_b", "axb"));
        assert!(m("%%a%%", "xa"));
    }
}
