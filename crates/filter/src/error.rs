//! The one error type of the crate: what went wrong, where (byte offset), and what to do.

use std::fmt;

/// What kind of problem a [`FilterError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// The text is not a well-formed expression (bad token, missing operand, trailing input).
    Syntax,
    /// A literal could not be read (integer out of range, bad escape, invalid number).
    Literal,
    /// A name is neither a schema field nor reachable as a dynamic key.
    UnknownField,
    /// An operator or function was applied to operands of the wrong type.
    Type,
    /// Valid grammar that Milvus 2.5 (and so QuiverDB) does not execute.
    Unsupported,
    /// A `{name}` template has no value, or its value cannot be used there.
    Template,
    /// The expression nests deeper than the parser allows.
    TooDeep,
}

/// A filter expression that cannot be compiled.
///
/// `offset` is the byte offset in the expression where the problem starts; `message` is the
/// full human-readable text, which already names the offset
/// (`unexpected token 'And' at 12: keywords are all lower or all upper case`).
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub struct FilterError {
    /// The category of the problem.
    pub kind: FilterErrorKind,
    /// Byte offset into the expression.
    pub offset: usize,
    /// Human-readable message: `<what> at <offset>[: <how to fix>]`.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl FilterError {
    /// Builds an error whose message reads `<what> at <offset>` plus `: <hint>` when given.
    pub(crate) fn new(kind: FilterErrorKind, offset: usize, what: impl fmt::Display) -> Self {
        FilterError {
            kind,
            offset,
            message: format!("{what} at {offset}"),
        }
    }

    /// Appends an actionable hint to the message.
    pub(crate) fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.message = format!("{}: {hint}", self.message);
        self
    }
}

pub(crate) type Result<T> = std::result::Result<T, FilterError>;

pub(crate) fn syntax(offset: usize, what: impl fmt::Display) -> FilterError {
    FilterError::new(FilterErrorKind::Syntax, offset, what)
}

pub(crate) fn type_err(offset: usize, what: impl fmt::Display) -> FilterError {
    FilterError::new(FilterErrorKind::Type, offset, what)
}

pub(crate) fn unsupported(offset: usize, what: impl fmt::Display) -> FilterError {
    FilterError::new(FilterErrorKind::Unsupported, offset, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_offset_then_hint() {
        let e =
            syntax(12, "unexpected token 'And'").hint("keywords are all lower or all upper case");
        assert_eq!(
            e.to_string(),
            "unexpected token 'And' at 12: keywords are all lower or all upper case"
        );
        assert_eq!(e.offset, 12);
        assert_eq!(e.kind, FilterErrorKind::Syntax);
    }
}
