//! Byte layouts of keys and values (specified in `docs/FORMAT.md`).
//!
//! Keys are hand-written big-endian bytes so that sled's lexicographic order is numeric
//! order. Every value starts with [`VALUE_VERSION`]. Structured values are bincode 2
//! (serde path, `standard()` config with an explicit limit); vectors are raw little-endian
//! `f32`s; a row's text is stored raw after its bincode header so it has no size limit.

use quiverdb_types::{Metadata, Pk, RowId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The first byte of every stored value.
pub(crate) const VALUE_VERSION: u8 = 1;

/// Upper bound for one bincode-encoded value (metadata, schema, change record).
const BINCODE_LIMIT: usize = 1 << 30;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

/// A stored value that could not be decoded; the caller turns it into `Error::Corrupted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

type Decoded<T> = std::result::Result<T, DecodeError>;

/// The internal id of a collection, the prefix of all its keys. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct CollectionId(pub(crate) u32);

impl CollectionId {
    pub(crate) fn prefix(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

/// `[collection id u32 BE][n u64 BE]`, for row ids and sequence numbers.
pub(crate) fn id_key(cid: CollectionId, n: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&cid.prefix());
    k[4..].copy_from_slice(&n.to_be_bytes());
    k
}

/// `meta` key of a collection's change-log watermark: `b"changes_pruned/"` + collection id.
pub(crate) fn pruned_key(cid: CollectionId) -> Vec<u8> {
    [b"changes_pruned/".as_slice(), &cid.prefix()].concat()
}

pub(crate) fn row_key(cid: CollectionId, row: RowId) -> [u8; 12] {
    id_key(cid, row.0)
}

/// The `u64` part of an [`id_key`].
pub(crate) fn decode_id_key(key: &[u8]) -> Decoded<u64> {
    let tail: [u8; 8] = key
        .get(4..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| DecodeError(format!("key of {} bytes, expected 12", key.len())))?;
    Ok(u64::from_be_bytes(tail))
}

const PK_INT: u8 = 1;
const PK_STR: u8 = 2;

/// `[collection id][tag][payload]`: tag 1 + `i64` with the sign bit flipped (BE), or tag 2 +
/// UTF-8 bytes. Sorts like `Pk`'s `Ord`.
pub(crate) fn pk_key(cid: CollectionId, pk: &Pk) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.extend_from_slice(&cid.prefix());
    match pk {
        Pk::Int(i) => {
            k.push(PK_INT);
            k.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Pk::Str(s) => {
            k.push(PK_STR);
            k.extend_from_slice(s.as_bytes());
        }
    }
    k
}

pub(crate) fn decode_pk_key(key: &[u8]) -> Decoded<Pk> {
    let bad = || DecodeError(format!("malformed primary-key key {key:?}"));
    match key.get(4) {
        Some(&PK_INT) => {
            let b: [u8; 8] = key
                .get(5..)
                .and_then(|t| t.try_into().ok())
                .ok_or_else(bad)?;
            Ok(Pk::Int((u64::from_be_bytes(b) ^ (1 << 63)) as i64))
        }
        Some(&PK_STR) => Ok(Pk::Str(
            String::from_utf8(key[5..].to_vec()).map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

fn check_version(value: &[u8]) -> Decoded<&[u8]> {
    match value.split_first() {
        Some((&VALUE_VERSION, rest)) => Ok(rest),
        Some((v, _)) => Err(DecodeError(format!(
            "value format version {v}, this build reads {VALUE_VERSION}"
        ))),
        None => Err(DecodeError("empty value".to_owned())),
    }
}

/// `[version][u64 BE]`.
pub(crate) fn encode_u64(n: u64) -> [u8; 9] {
    let mut v = [VALUE_VERSION; 9];
    v[1..].copy_from_slice(&n.to_be_bytes());
    v
}

pub(crate) fn decode_u64(value: &[u8]) -> Decoded<u64> {
    let rest = check_version(value)?;
    let b: [u8; 8] = rest
        .try_into()
        .map_err(|_| DecodeError(format!("u64 value of {} bytes", rest.len())))?;
    Ok(u64::from_be_bytes(b))
}

/// `[version][bincode(value)]`.
pub(crate) fn encode_serde<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![VALUE_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode_config())
        .map_err(|e| Error::Encoding(e.to_string()))?;
    Ok(out)
}

pub(crate) fn decode_serde<T: DeserializeOwned>(value: &[u8]) -> Decoded<T> {
    let rest = check_version(value)?;
    let (v, read) = bincode::serde::decode_from_slice(rest, bincode_config())
        .map_err(|e| DecodeError(e.to_string()))?;
    if read != rest.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after the value",
            rest.len() - read
        )));
    }
    Ok(v)
}

/// `[version][header length u32 BE][bincode((pk, metadata))][text UTF-8]`.
pub(crate) fn encode_row(pk: &Pk, metadata: &Metadata, text: &str) -> Result<Vec<u8>, Error> {
    let header = bincode::serde::encode_to_vec((pk, metadata), bincode_config())
        .map_err(|e| Error::Encoding(e.to_string()))?;
    let len = u32::try_from(header.len())
        .map_err(|_| Error::Encoding("metadata larger than 4 GiB".to_owned()))?;
    let mut out = Vec::with_capacity(5 + header.len() + text.len());
    out.push(VALUE_VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(text.as_bytes());
    Ok(out)
}

/// A decoded row value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRow {
    pub(crate) pk: Pk,
    pub(crate) metadata: Metadata,
    pub(crate) text: String,
}

pub(crate) fn decode_row(value: &[u8]) -> Decoded<StoredRow> {
    let rest = check_version(value)?;
    let short = || DecodeError("row value shorter than its header".to_owned());
    let len: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(short)?;
    let len = u32::from_be_bytes(len) as usize;
    let header = rest.get(4..4 + len).ok_or_else(short)?;
    let ((pk, metadata), read): ((Pk, Metadata), usize) =
        bincode::serde::decode_from_slice(header, bincode_config())
            .map_err(|e| DecodeError(e.to_string()))?;
    if read != len {
        return Err(DecodeError("row header has trailing bytes".to_owned()));
    }
    let text = String::from_utf8(rest[4 + len..].to_vec())
        .map_err(|_| DecodeError("row text is not UTF-8".to_owned()))?;
    Ok(StoredRow { pk, metadata, text })
}

/// `[version][f32 LE]*`.
pub(crate) fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 4 * v.len());
    out.push(VALUE_VERSION);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub(crate) fn decode_vector(value: &[u8]) -> Decoded<Vec<f32>> {
    let rest = check_version(value)?;
    if rest.len() % 4 != 0 {
        return Err(DecodeError(format!("vector value of {} bytes", rest.len())));
    }
    Ok(rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiverdb_types::Value;

    #[test]
    fn pk_keys_sort_like_pks() {
        let cid = CollectionId(7);
        let mut pks = vec![
            Pk::Int(i64::MIN),
            Pk::Int(-1),
            Pk::Int(0),
            Pk::Int(1),
            Pk::Int(i64::MAX),
            Pk::Str(String::new()),
            Pk::Str("a".into()),
            Pk::Str("ab".into()),
            Pk::Str("b".into()),
        ];
        let keys: Vec<_> = pks.iter().map(|p| pk_key(cid, p)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (k, p) in keys.iter().zip(&pks) {
            assert_eq!(&decode_pk_key(k).unwrap(), p);
        }
        pks.sort();
        assert_eq!(decode_pk_key(&sorted[0]).unwrap(), pks[0]);
    }

    #[test]
    fn id_keys_sort_numerically_and_by_collection() {
        let a = id_key(CollectionId(1), 255);
        let b = id_key(CollectionId(1), 256);
        let c = id_key(CollectionId(2), 0);
        assert!(a < b && b < c);
        assert_eq!(decode_id_key(&b).unwrap(), 256);
    }

    #[test]
    fn row_round_trip_keeps_int_and_float_apart() {
        let mut meta = Metadata::new();
        meta.insert("i".into(), Value::Int(2));
        meta.insert("f".into(), Value::Float(2.0));
        let bytes = encode_row(&Pk::Str("k".into()), &meta, "héllo").unwrap();
        let row = decode_row(&bytes).unwrap();
        assert_eq!(row.metadata, meta);
        assert_eq!(row.text, "héllo");
        assert_eq!(row.pk, Pk::Str("k".into()));
    }

    #[test]
    fn truncated_and_versioned_values_are_errors() {
        let bytes = encode_row(&Pk::Int(1), &Metadata::new(), "text").unwrap();
        assert!(decode_row(&bytes[..3]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert!(decode_row(&wrong).is_err());
        assert!(decode_vector(&[VALUE_VERSION, 1, 2, 3]).is_err());
        assert!(decode_u64(&[]).is_err());
        assert!(decode_serde::<u64>(&[VALUE_VERSION, 0xff, 0xff]).is_err());
    }

    #[test]
    fn vector_round_trip_is_bit_exact() {
        let v = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.25e-20];
        let back = decode_vector(&encode_vector(&v)).unwrap();
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
