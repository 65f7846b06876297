use super::*;
use std::collections::BTreeMap;

fn rich_metadata() -> Metadata {
    let mut inner = BTreeMap::new();
    inner.insert(
        "deep".to_owned(),
        Value::Map(BTreeMap::from([("k".to_owned(), Value::Int(-7))])),
    );
    inner.insert(
        "list".to_owned(),
        Value::List(vec![
            Value::Int(1),
            Value::Str("a".into()),
            Value::List(vec![Value::Float(2.5)]),
        ]),
    );
    Metadata::from([
        ("null".to_owned(), Value::Null),
        ("bool".to_owned(), Value::Bool(true)),
        ("int".to_owned(), Value::Int(2)),
        ("float".to_owned(), Value::Float(2.0)),
        ("neg".to_owned(), Value::Float(-0.5e300)),
        ("str".to_owned(), Value::Str("héllo ✓".into())),
        ("empty_list".to_owned(), Value::List(vec![])),
        ("map".to_owned(), Value::Map(inner)),
    ])
}

#[test]
fn every_value_kind_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big_text: String = "0123456789abcdef".repeat(5 * 1024 * 1024 / 16);
    let records = vec![
        NewRecord {
            pk: s("rich"),
            text: "t".into(),
            metadata: rich_metadata(),
            vector: vec![1.0, -2.0, 3.5],
        },
        NewRecord {
            pk: s("big"),
            text: big_text.clone(),
            metadata: Metadata::new(),
            vector: vec![0.0, 0.0, 1e-30],
        },
        NewRecord {
            pk: s(""),
            text: String::new(),
            metadata: Metadata::new(),
            vector: vec![f32::MAX, f32::MIN, 0.0],
        },
    ];
    {
        let db = open(dir.path());
        let c = db
            .create_collection("docs", cfg(PkKind::Str, Metric::L2))
            .unwrap();
        let receipt = c.insert(records.clone()).unwrap();
        assert_eq!(receipt.seq, 1);
        assert_eq!(receipt.inserted.len(), 3);
    }
    let db = open(dir.path());
    let c = db.open_collection("docs").unwrap();
    let got = c
        .get(&[
            Pk::from("rich"),
            Pk::from("big"),
            Pk::from(""),
            Pk::from("nope"),
        ])
        .unwrap();
    for (g, want) in got.iter().zip(&records) {
        let g = g.as_ref().expect("stored");
        assert_eq!(Some(&g.pk), want.pk.as_ref());
        assert_eq!(g.text, want.text);
        assert_eq!(g.metadata, want.metadata);
        assert_eq!(g.vector, want.vector);
    }
    assert!(got[3].is_none());
    let rich = got[0].as_ref().unwrap();
    assert_eq!(rich.metadata["int"], Value::Int(2));
    assert_eq!(rich.metadata["float"], Value::Float(2.0));
    assert_eq!(got[1].as_ref().unwrap().text.len(), big_text.len());
    let schema = c.schema();
    assert_eq!(schema.dimension, Some(3));
    assert_eq!(schema.pk_kind, PkKind::Str);
    assert_eq!(c.count().unwrap(), 3);
    assert!(c.check_integrity().unwrap().is_ok());
}

#[test]
fn schema_and_dimension_persist() {
    let dir = tempfile::tempdir().unwrap();
    let index = quiverdb_storage::IndexParams {
        engine: "hnsw".into(),
        m: 8,
        ef_construction: 50,
        ef_search: 20,
    };
    {
        let db = open(dir.path());
        let c = db
            .create_collection(
                "c",
                CollectionConfig {
                    index: index.clone(),
                    metric: Metric::Ip,
                    pk_kind: PkKind::Int,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(c.schema().dimension, None);
        c.insert(vec![rec(Pk::Int(5), "x", vec![1.0, 2.0])])
            .unwrap();
        assert_eq!(c.schema().dimension, Some(2));
    }
    let db = open(dir.path());
    let schema = db.open_collection("c").unwrap().schema();
    assert_eq!(schema.name, "c");
    assert_eq!(schema.dimension, Some(2));
    assert_eq!(schema.metric, Metric::Ip);
    assert_eq!(schema.pk_kind, PkKind::Int);
    assert_eq!(schema.index, index);
    assert_eq!(schema.format_version, quiverdb_storage::FORMAT_VERSION);
}

#[test]
fn cosine_vectors_are_stored_normalized() {
    let db = Database::temporary().unwrap();
    let c = db
        .create_collection("c", cfg(PkKind::Int, Metric::Cosine))
        .unwrap();
    c.insert(vec![rec(Pk::Int(1), "", vec![0.0, 3.0, 4.0])])
        .unwrap();
    let v = c.get(&[Pk::Int(1)]).unwrap().remove(0).unwrap().vector;
    assert!(
        (v[1] - 0.6).abs() < 1e-6 && (v[2] - 0.8).abs() < 1e-6,
        "{v:?}"
    );
}

/// The one-tree scans a loader uses agree with the full scan, in row order, through
/// upserts (new row ids) and deletes, in this collection only.
#[test]
fn row_and_vector_scans_agree_with_the_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = db
        .create_collection("c", cfg(PkKind::Str, Metric::L2))
        .unwrap();
    let other = db
        .create_collection("other", cfg(PkKind::Str, Metric::L2))
        .unwrap();
    other
        .insert(vec![rec(s("x"), "other", vec![9.0, 9.0])])
        .unwrap();
    c.insert(
        (0..20)
            .map(|i| rec(s(&format!("k{i}")), &format!("t{i}"), vec![i as f32, 1.0]))
            .collect(),
    )
    .unwrap();
    c.upsert(vec![rec(s("k3"), "new", vec![30.0, 3.0])])
        .unwrap();
    c.delete(&[Pk::from("k5"), Pk::from("k7")]).unwrap();

    let full: Vec<_> = c.scan().map(Result::unwrap).collect();
    let rows: Vec<_> = c.scan_rows().map(Result::unwrap).collect();
    let vectors: Vec<_> = c.scan_vectors().map(Result::unwrap).collect();
    assert_eq!(full.len(), 18);
    assert_eq!(rows.len(), full.len());
    assert_eq!(vectors.len(), full.len());
    for ((r, row), (vrow, v)) in full.iter().zip(&rows).zip(&vectors) {
        assert_eq!(
            (&r.pk, r.row, &r.text, &r.metadata),
            (&row.pk, row.row, &row.text, &row.metadata)
        );
        assert_eq!((r.row, &r.vector), (*vrow, v));
    }
    assert_eq!(
        rows.last().unwrap().text,
        "new",
        "the upserted version moved to the end"
    );
    db.drop_collection("c").unwrap();
    assert!(matches!(
        c.scan_rows().next(),
        Some(Err(Error::UnknownCollection { .. }))
    ));
}
