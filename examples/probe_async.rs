use std::time::Instant;
use quiverdb::{HashingEmbeddings, VectorStore};
#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::env::args().nth(2).unwrap_or("native".into()); let s = VectorStore::builder().index(quiverdb::IndexOptions { engine, ..Default::default() }).path(dir.path()).embeddings(HashingEmbeddings::new(384)).auto_id(true).open().unwrap();
    s.add_texts(["warm"], None, None).unwrap();
    let mode = std::env::args().nth(1).unwrap_or_default();
    for round in 0..20 {
        let t = Instant::now();
        if mode == "sync" {
            for i in 0..100 { s.add_texts([format!("sdoc {i} {round}")], None, None).unwrap(); }
        } else {
        let tasks: Vec<_> = (0..100).map(|i| { let s = s.clone(); tokio::spawn(async move { s.aadd_texts([format!("doc {i} {round}")], None, None).await }) }).collect();
        for t in tasks { t.await.unwrap().unwrap(); }
        }
        if round % 5 == 0 { println!("{mode} add 100: {:?}", t.elapsed()); }
    }
}
