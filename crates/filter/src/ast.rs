//! The parse tree: what the text says, before names and types are resolved.

use crate::lexer::Sel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator with its operands swapped (`c < f` is `f > c`).
    pub(crate) fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            o => o,
        }
    }

    pub(crate) fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Equal,
            CmpOp::Ne => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::Le => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Ge => ord != Less,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl ArithOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Pow => "**",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Pos,
    BitNot,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    JsonContains,
    JsonContainsAll,
    JsonContainsAny,
    ArrayContains,
    ArrayContainsAll,
    ArrayContainsAny,
    ArrayLength,
}

impl Func {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::JsonContains => "json_contains",
            Func::JsonContainsAll => "json_contains_all",
            Func::JsonContainsAny => "json_contains_any",
            Func::ArrayContains => "array_contains",
            Func::ArrayContainsAll => "array_contains_all",
            Func::ArrayContainsAny => "array_contains_any",
            Func::ArrayLength => "array_length",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// An identifier or `$meta` with its selectors.
    Field {
        name: String,
        path: Vec<Sel>,
    },
    Template(String),
    List(Vec<Node>),
    Unary(UnOp, Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
    /// Shifts and bitwise `& | ^`: parsed like Milvus, always rejected.
    Bitwise(&'static str),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    /// `lo lo_op field hi_op hi`, normalised to ascending order (`>` forms are swapped).
    Range {
        lo: Box<Node>,
        lo_incl: bool,
        field: Box<Node>,
        hi_incl: bool,
        hi: Box<Node>,
    },
    In {
        lhs: Box<Node>,
        rhs: Box<Node>,
        negated: bool,
    },
    Like {
        lhs: Box<Node>,
        pattern: String,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Exists(Box<Node>),
    IsNull {
        field: Box<Node>,
        negated: bool,
    },
    Call(Func, Vec<Node>),
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Byte offset of the node's first token (its operator for infix nodes).
    pub at: usize,
    /// Nesting depth of the subtree (bounded by the parser).
    pub depth: u32,
    /// Whether the node was written inside parentheses.
    pub grouped: bool,
}
