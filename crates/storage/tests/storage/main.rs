//! Integration tests of `quiverdb-storage`: one binary, one module per scenario (in
//! `tests/storage/`), sharing the helpers below.

use std::path::Path;

use quiverdb_storage::{
    CollectionConfig, Database, Error, Metadata, Metric, NewRecord, Pk, PkKind, RowId, Value,
};

fn rec(pk: impl Into<Option<Pk>>, text: &str, vector: Vec<f32>) -> NewRecord {
    NewRecord {
        pk: pk.into(),
        text: text.to_owned(),
        metadata: Metadata::new(),
        vector,
    }
}

fn s(k: &str) -> Option<Pk> {
    Some(Pk::Str(k.to_owned()))
}

fn cfg(pk_kind: PkKind, metric: Metric) -> CollectionConfig {
    CollectionConfig {
        pk_kind,
        metric,
        ..CollectionConfig::default()
    }
}

fn open(dir: &Path) -> Database {
    Database::open(dir).expect("open")
}

mod atomicity;
mod auto_ids;
mod bad_input;
mod catalog;
mod changes;
mod concurrency;
mod corruption;
mod crash;
mod locking;
mod model;
mod reopen;
mod round_trip;
mod same_process;
mod writes;
