use quiverdb_types::Metadata;
use serde::{Deserialize, Serialize};

/// A piece of text with its metadata, as LangChain's `Document`.
///
/// Documents returned by the store carry their primary key twice: in `id` (as a string)
/// and in `metadata["pk"]` (as stored: an int for auto ids), the way the LangChain–Milvus
/// store reports it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Document {
    /// The document's id, if it has one.
    pub id: Option<String>,
    /// The text.
    pub page_content: String,
    /// Schemaless metadata.
    pub metadata: Metadata,
}

impl Document {
    /// A document with text and no metadata.
    pub fn new(page_content: impl Into<String>) -> Self {
        Document {
            id: None,
            page_content: page_content.into(),
            metadata: Metadata::new(),
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}
