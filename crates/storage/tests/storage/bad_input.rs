use super::*;

#[test]
fn each_bad_input_has_its_typed_error() {
    let db = Database::temporary().unwrap();
    let c = db
        .create_collection(
            "c",
            CollectionConfig {
                dimension: Some(2),
                metric: Metric::Cosine,
                ..Default::default()
            },
        )
        .unwrap();
    let one = |r: NewRecord| {
        c.insert(vec![rec(s("ok"), "", vec![1.0, 0.0]), r])
            .unwrap_err()
    };
    assert!(matches!(
        one(rec(s("x"), "", vec![1.0])),
        Error::WrongDimension {
            expected: 2,
            got: 1
        }
    ));
    assert!(matches!(
        one(rec(s("x"), "", vec![1.0, f32::NEG_INFINITY])),
        Error::NonFiniteVector {
            row: 1,
            component: 1,
            ..
        }
    ));
    assert!(matches!(
        one(rec(s("x"), "", vec![0.0, 0.0])),
        Error::ZeroVector { row: 1 }
    ));
    assert!(matches!(
        one(rec(s("x"), "", vec![])),
        Error::EmptyVector { row: 1 }
    ));
    assert!(
        matches!(one(rec(s("ok"), "", vec![0.0, 1.0])), Error::DuplicatePk { pk } if pk == Pk::from("ok"))
    );
    assert!(matches!(
        one(rec(None, "", vec![0.0, 1.0])),
        Error::MissingPk { row: 1 }
    ));
    assert!(matches!(
        one(rec(Pk::Int(3), "", vec![0.0, 1.0])),
        Error::WrongPkKind {
            expected: PkKind::Str,
            got: Pk::Int(3)
        }
    ));

    let auto = db
        .create_collection("auto", cfg(PkKind::AutoInt, Metric::L2))
        .unwrap();
    let err = auto
        .insert(vec![rec(Pk::Int(1), "", vec![1.0])])
        .unwrap_err();
    assert!(matches!(
        err,
        Error::WrongPkKind {
            expected: PkKind::AutoInt,
            ..
        }
    ));
    assert!(err.to_string().contains("auto ids"), "{err}");
    let int = db
        .create_collection("int", cfg(PkKind::Int, Metric::L2))
        .unwrap();
    assert!(matches!(
        int.insert(vec![rec(s("a"), "", vec![1.0])]),
        Err(Error::WrongPkKind {
            expected: PkKind::Int,
            ..
        })
    ));

    for bad in ["", "9lives", "has-dash", "sp ace", "ünï"] {
        assert!(
            matches!(
                db.create_collection(bad, CollectionConfig::default()),
                Err(Error::InvalidName { .. })
            ),
            "{bad}"
        );
    }
    let long = "n".repeat(256);
    assert!(matches!(
        db.create_collection(&long, CollectionConfig::default()),
        Err(Error::InvalidName { .. })
    ));
    assert!(db
        .create_collection(&"n".repeat(255), CollectionConfig::default())
        .is_ok());
    assert!(matches!(
        db.create_collection("c", CollectionConfig::default()),
        Err(Error::CollectionExists { .. })
    ));
    assert!(matches!(
        db.open_collection("nope"),
        Err(Error::UnknownCollection { .. })
    ));
    assert!(matches!(
        db.create_collection(
            "zero",
            CollectionConfig {
                dimension: Some(0),
                ..Default::default()
            }
        ),
        Err(Error::InvalidConfig { .. })
    ));
    // Nothing of the rejected batches was written.
    assert_eq!(c.count().unwrap(), 0);
}
