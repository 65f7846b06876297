//! Fuzzes the filter compiler: any UTF-8 text, against both pk kinds, with a parameter
//! set; a compiled filter is also evaluated on a few rows. Nothing may panic, overflow the
//! stack or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiverdb_filter::{compile, Params, Row, Schema};
use quiverdb_types::{Metadata, Pk, Value};

struct Doc {
    pk: Pk,
    text: String,
    meta: Metadata,
}

impl Row for Doc {
    fn pk(&self) -> &Pk {
        &self.pk
    }
    fn text(&self) -> &str {
        &self.text
    }
    fn metadata(&self) -> &Metadata {
        &self.meta
    }
}

fn rows() -> Vec<Doc> {
    let mut m = Metadata::new();
    m.insert("a".into(), Value::Int(3));
    m.insert("s".into(), Value::from("x y"));
    m.insert("f".into(), Value::Float(0.5));
    m.insert(
        "l".into(),
        Value::List(vec![Value::Int(1), Value::from("b")]),
    );
    let mut nested = Metadata::new();
    nested.insert("k".into(), Value::Bool(true));
    m.insert("m".into(), Value::Map(nested));
    vec![
        Doc {
            pk: Pk::Int(7),
            text: "hello".into(),
            meta: m.clone(),
        },
        Doc {
            pk: Pk::from("k1"),
            text: String::new(),
            meta: Metadata::new(),
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let mut params = Params::new();
    params.insert("p".into(), Value::Int(1));
    params.insert("ps".into(), Value::List(vec![Value::Int(1), Value::Int(2)]));
    for pk_is_int in [false, true] {
        let schema = Schema::dynamic("pk", pk_is_int, "text");
        if let Ok(filter) = compile(expr, &schema, &params) {
            for row in rows() {
                let _ = filter.matches(&row);
            }
        }
    }
});
