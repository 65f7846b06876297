//! The compiled [`Filter`] and [`compile`], the crate's entry point.

use quiverdb_types::Pk;

use crate::compiled::{Pred, Tri};
use crate::error::FilterError;
use crate::planner::{self, IndexHint};
use crate::schema::{Params, Row, Schema};

/// A compiled filter: parsed, type-checked and lowered once, evaluated per row.
///
/// `Send + Sync`, cheap to clone relative to compiling again.
#[derive(Clone, Debug)]
pub struct Filter {
    pred: Pred,
}

/// Compiles a Milvus boolean expression against `schema`, filling `{name}` templates from
/// `params`. An empty or whitespace-only expression matches every row.
pub fn compile(expr: &str, schema: &Schema, params: &Params) -> Result<Filter, FilterError> {
    let pred = match crate::parser::parse(expr)? {
        None => Pred::Const(true),
        Some(root) => crate::check::lower(&root, schema, params)?,
    };
    Ok(Filter { pred })
}

impl Filter {
    /// A filter that matches every row (what an empty expression compiles to).
    pub fn match_all() -> Filter {
        Filter {
            pred: Pred::Const(true),
        }
    }

    /// Whether `row` satisfies the filter (SQL NULL outcomes do not match).
    pub fn matches(&self, row: &dyn Row) -> bool {
        self.pred.eval(row) == Tri::True
    }

    /// Whether every row matches (empty filter, or one folded to true like `1 == 1`).
    pub fn is_match_all(&self) -> bool {
        matches!(self.pred, Pred::Const(true))
    }

    /// Whether no row can match (folded to false, like `true and false`).
    pub fn is_match_none(&self) -> bool {
        matches!(self.pred, Pred::Const(false))
    }

    /// `Some(pks)` when only rows whose pk is in the list can match (top-level `pk == c`,
    /// `pk in [..]`, an `and` containing one, or an `or` of such). Sorted, deduplicated.
    /// Callers still call [`Filter::matches`].
    pub fn pk_candidates(&self) -> Option<Vec<Pk>> {
        planner::pk_candidates(&self.pred)
    }

    /// A top-level conjunct `key == const` / `key in [consts]` on a top-level metadata key,
    /// for a scalar index. Callers still call [`Filter::matches`].
    pub fn index_hint(&self) -> Option<IndexHint> {
        planner::index_hint(&self.pred)
    }
}
