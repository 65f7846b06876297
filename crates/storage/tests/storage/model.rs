//! Random insert/upsert/delete/reopen sequences checked against a `BTreeMap` model.
use super::*;
use std::collections::BTreeMap;

/// xorshift64*: a fixed-seed generator, so a failure replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Model = BTreeMap<Pk, (String, Vec<f32>)>;

fn check(c: &quiverdb_storage::Collection, model: &Model) {
    assert_eq!(c.count().unwrap(), model.len());
    let stored: BTreeMap<Pk, (String, Vec<f32>)> = c
        .scan()
        .map(|r| {
            let r = r.unwrap();
            (r.pk, (r.text, r.vector))
        })
        .collect();
    assert_eq!(&stored, model);
    let rep = c.check_integrity().unwrap();
    assert!(rep.is_ok(), "{:?}", rep.problems);
}

#[test]
fn random_operations_match_the_model() {
    for seed in [1u64, 7, 42] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut model = Model::new();
        let mut db = open(dir.path());
        let mut c = db
            .create_collection("m", cfg(PkKind::Int, Metric::L2))
            .unwrap();
        let mut seq = 0;
        for step in 0..120 {
            let key = |rng: &mut Rng| Pk::Int(rng.below(30) as i64);
            let batch = |rng: &mut Rng| -> Vec<NewRecord> {
                (0..1 + rng.below(4))
                    .map(|_| {
                        let v = rng.below(1000) as f32;
                        rec(key(rng), &format!("s{step}-{v}"), vec![v, 1.0])
                    })
                    .collect()
            };
            match rng.below(10) {
                0..=3 => {
                    let b = batch(&mut rng);
                    let mut keys: Vec<_> = b.iter().map(|r| r.pk.clone().unwrap()).collect();
                    let stored_or_dup = keys.iter().any(|k| model.contains_key(k)) || {
                        keys.sort();
                        keys.windows(2).any(|w| w[0] == w[1])
                    };
                    match c.insert(b.clone()) {
                        Ok(r) => {
                            assert!(!stored_or_dup);
                            seq += 1;
                            assert_eq!(r.seq, seq);
                            for x in b {
                                model.insert(x.pk.unwrap(), (x.text, x.vector));
                            }
                        }
                        Err(Error::DuplicatePk { .. }) => assert!(stored_or_dup),
                        Err(e) => panic!("{e}"),
                    }
                }
                4..=6 => {
                    let b = batch(&mut rng);
                    c.upsert(b.clone()).unwrap();
                    seq += 1;
                    for x in b {
                        model.insert(x.pk.unwrap(), (x.text, x.vector));
                    }
                }
                7..=8 => {
                    let keys: Vec<_> = (0..1 + rng.below(3)).map(|_| key(&mut rng)).collect();
                    let r = c.delete(&keys).unwrap();
                    let mut removed = 0;
                    for k in &keys {
                        removed += usize::from(model.remove(k).is_some());
                    }
                    assert_eq!(r.removed.len(), removed);
                    seq += u64::from(removed > 0);
                }
                _ => {
                    drop((c, db));
                    db = open(dir.path());
                    c = db.open_collection("m").unwrap();
                }
            }
            assert_eq!(c.last_seq(), seq, "seed {seed} step {step}");
            if step % 20 == 19 {
                check(&c, &model);
            }
        }
        check(&c, &model);
        assert_eq!(c.changes_since(0).unwrap().len() as u64, seq);
    }
}
