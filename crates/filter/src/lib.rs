//! The Milvus 2.5 boolean filter language for QuiverDB.
//!
//! Every search, query and delete of the LangChain–Milvus API takes a filter such as
//! `source == "a.pdf" and page > 2`. This crate turns that text into a [`Filter`] that
//! answers, row by row, exactly what Milvus would answer.
//!
//! # Model
//! * **Pipeline.** [`compile`] lexes and parses (precedence of the Milvus ANTLR grammar),
//!   resolves names against a [`Schema`], applies Milvus's parse-time type rules, folds
//!   constants, fills `{name}` templates from [`Params`], and lowers the result to a compiled
//!   predicate. [`Filter::matches`] evaluates it over a [`Row`] without parsing or
//!   allocating.
//! * **Names.** The pk field, the text field and declared fields are addressed by name; with
//!   the dynamic field on, any other name (and `$meta["k"]`) is a metadata key. Typed fields
//!   and dynamic keys are both read from [`Row::metadata`].
//! * **Runtime rules (Milvus 2.5 executor).** A comparison on a missing JSON key or a value
//!   of another type is false, except `!=`, which is true; integer literals equal stored
//!   floats of the same value; strings compare bytewise; `not` is plain negation. SQL NULL
//!   in a nullable typed field is *unknown*: such rows match no comparison, not even `!=` or
//!   `not (...)`.
//! * **Supersets.** A few expressions Milvus rejects but users obviously mean are accepted;
//!   `docs/FILTERS.md` lists each one beside the Milvus behaviour.
//!
//! # Invariants
//! * No input panics: errors are [`FilterError`]s with a byte offset; nesting is bounded by
//!   [`MAX_DEPTH`] and `and`/`or` chains are flat, so recursion depth is bounded.
//! * [`Filter::pk_candidates`] and [`Filter::index_hint`] only narrow: every row that
//!   matches lies inside them.
//!
//! # Example
//! ```
//! use quiverdb_filter::{compile, Params, Row, Schema};
//! use quiverdb_types::{Metadata, Pk, Value};
//!
//! struct Doc { pk: Pk, text: String, meta: Metadata }
//! impl Row for Doc {
//!     fn pk(&self) -> &Pk { &self.pk }
//!     fn text(&self) -> &str { &self.text }
//!     fn metadata(&self) -> &Metadata { &self.meta }
//! }
//!
//! let schema = Schema::dynamic("pk", false, "text");
//! let f = compile("source == 'a.pdf' and page > 1", &schema, &Params::new()).unwrap();
//! let mut meta = Metadata::new();
//! meta.insert("source".into(), Value::from("a.pdf"));
//! meta.insert("page".into(), Value::Float(2.0));
//! let doc = Doc { pk: Pk::from("d1"), text: "hello".into(), meta };
//! assert!(f.matches(&doc));
//!
//! let err = compile("page > 1 And source == 'a'", &schema, &Params::new()).unwrap_err();
//! assert_eq!(err.to_string(), "unexpected token 'And' at 9: keywords are all lower or all upper case");
//! ```
//!
//! # Concurrency
//! [`Filter`] is immutable, `Send + Sync`; share it across threads freely.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ast;
mod check;
mod compiled;
pub mod conformance;
mod constants;
mod error;
mod filter;
mod lexer;
mod like;
mod parser;
mod planner;
mod resolve;
mod schema;

pub use error::{FilterError, FilterErrorKind};
pub use filter::{compile, Filter};
pub use parser::MAX_DEPTH;
pub use planner::IndexHint;
pub use schema::{ElementType, FieldDef, FieldType, Params, Row, Schema};
