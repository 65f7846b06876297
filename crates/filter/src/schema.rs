//! What a filter can name: the collection schema, the row accessor trait and template values.

use quiverdb_types::{Metadata, Pk, Value};

/// The collection as the filter sees it: a primary key, a text field, typed scalar fields and
/// optionally the dynamic field (every other metadata key).
#[derive(Clone, Debug)]
pub struct Schema {
    /// Name of the primary-key field (LangChain: `pk`).
    pub pk_field: String,
    /// Whether primary keys are `INT64` (else `VARCHAR`).
    pub pk_is_int: bool,
    /// Name of the text field (LangChain: `text`), a non-nullable `VARCHAR`.
    pub text_field: String,
    /// Declared fields other than the pk and text; read from `Row::metadata()[name]`.
    pub fields: Vec<FieldDef>,
    /// Whether the dynamic field is enabled: unknown names are metadata keys.
    pub dynamic: bool,
}

/// One declared field.
#[derive(Clone, Debug)]
pub struct FieldDef {
    /// The field name.
    pub name: String,
    /// Its type.
    pub ty: FieldType,
    /// Whether rows may hold SQL NULL (absent from the metadata map, or `Value::Null`).
    pub nullable: bool,
}

/// The type of a declared field (Milvus `INT8/16/32` map to `Int64`, `FLOAT` to `Double`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// `BOOL`.
    Bool,
    /// `INT64` (and the narrower integer types).
    Int64,
    /// `DOUBLE` (and `FLOAT`).
    Double,
    /// `VARCHAR`.
    VarChar,
    /// `JSON`: reachable through key paths only.
    Json,
    /// `ARRAY` of scalars of the given element type.
    Array(ElementType),
    /// A vector field: present in the schema, never filterable.
    Vector,
}

/// The element type of an `ARRAY` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    /// `BOOL` elements.
    Bool,
    /// Integer elements.
    Int64,
    /// Floating-point elements.
    Double,
    /// `VARCHAR` elements.
    VarChar,
}

impl Schema {
    /// The LangChain-style store: pk + text + dynamic metadata, no other declared field.
    pub fn dynamic(pk_field: &str, pk_is_int: bool, text_field: &str) -> Schema {
        Schema {
            pk_field: pk_field.to_owned(),
            pk_is_int,
            text_field: text_field.to_owned(),
            fields: Vec::new(),
            dynamic: true,
        }
    }

    /// Adds a declared field (builder style).
    pub fn with_field(mut self, name: &str, ty: FieldType, nullable: bool) -> Schema {
        self.fields.push(FieldDef {
            name: name.to_owned(),
            ty,
            nullable,
        });
        self
    }

    pub(crate) fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A stored record as the filter reads it.
///
/// Typed declared fields and dynamic keys are both read from `metadata()[name]`; a typed
/// field missing from the map or holding `Value::Null` is SQL NULL.
pub trait Row {
    /// The primary key.
    fn pk(&self) -> &Pk;
    /// The text field.
    fn text(&self) -> &str;
    /// Declared non-pk/text fields and dynamic keys.
    fn metadata(&self) -> &Metadata;
}

/// Values for `{name}` templates (Milvus `filter_params`).
pub type Params = std::collections::BTreeMap<String, Value>;
