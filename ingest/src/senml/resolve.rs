//! RFC 8428 §4.6 resolution.

use serde_json::{Map, Value};

/// A resolved record: absolute name and time, unit and value filled in from the base fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub name: String,
    pub unit: Option<String>,
    /// Seconds since the epoch.
    pub time: f64,
    pub value: Option<f64>,
    pub string_value: Option<String>,
    pub bool_value: Option<bool>,
    pub data_value: Option<String>,
    pub sum: Option<f64>,
    pub update_time: Option<f64>,
    /// Fields this resolver does not know, kept as they were (e.g. links, `l`).
    pub extra: Map<String, Value>,
}

impl Resolved {
    /// The resolved record in SenML JSON form (as `.gen.resolved.json` files write it).
    pub fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("n".into(), Value::from(self.name.clone()));
        if let Some(u) = &self.unit {
            m.insert("u".into(), Value::from(u.clone()));
        }
        m.insert("t".into(), Value::from(self.time));
        if let Some(v) = self.value {
            m.insert("v".into(), Value::from(v));
        }
        if let Some(v) = &self.string_value {
            m.insert("vs".into(), Value::from(v.clone()));
        }
        if let Some(v) = self.bool_value {
            m.insert("vb".into(), Value::from(v));
        }
        if let Some(v) = &self.data_value {
            m.insert("vd".into(), Value::from(v.clone()));
        }
        if let Some(s) = self.sum {
            m.insert("s".into(), Value::from(s));
        }
        if let Some(ut) = self.update_time {
            m.insert("ut".into(), Value::from(ut));
        }
        Value::Object(m)
    }
}

/// Why a SenML pack was refused; `record` is 0-based.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SenmlError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("a SenML pack is a JSON array of records")]
    NotAnArray,
    #[error("record {0} is not an object")]
    NotAnObject(usize),
    #[error("record {record}: field {field:?} must be {expected}")]
    FieldType { record: usize, field: String, expected: &'static str },
    #[error("record {record}: field {field:?} ends in '_' and must be understood, but is not known")]
    MustUnderstand { record: usize, field: String },
    #[error("record {record}: resolved name {name:?} is not a valid SenML name")]
    BadName { record: usize, name: String },
    #[error("record {record}: no value (v, vs, vb, vd) and no sum (s)")]
    NoValue { record: usize },
    #[error("record {record}: bver {version} is newer than this resolver understands (10)")]
    Version { record: usize, version: f64 },
}

const RELATIVE_LIMIT: f64 = (1u64 << 28) as f64;

#[derive(Default)]
struct Base {
    name: String,
    time: f64,
    unit: Option<String>,
    value: Option<f64>,
    sum: Option<f64>,
}

/// Resolves a pack; `now` (seconds since the epoch) anchors relative times.
pub fn resolve(payload: &[u8], now: f64) -> Result<Vec<Resolved>, SenmlError> {
    let pack: Value = serde_json::from_slice(payload).map_err(|e| SenmlError::Json(e.to_string()))?;
    let Value::Array(records) = pack else {
        return Err(SenmlError::NotAnArray);
    };
    let mut base = Base::default();
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        let Value::Object(fields) = record else {
            return Err(SenmlError::NotAnObject(i));
        };
        let number = |f: &str| -> Result<Option<f64>, SenmlError> {
            match fields.get(f) {
                None => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or(SenmlError::FieldType {
                    record: i,
                    field: f.into(),
                    expected: "a number",
                }),
            }
        };
        let text = |f: &str| -> Result<Option<String>, SenmlError> {
            match fields.get(f) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SenmlError::FieldType { record: i, field: f.into(), expected: "a string" }),
            }
        };
        if let Some(version) = number("bver")? {
            if version > 10.0 {
                return Err(SenmlError::Version { record: i, version });
            }
        }
        if let Some(bn) = text("bn")? {
            base.name = bn;
        }
        if let Some(bt) = number("bt")? {
            base.time = bt;
        }
        if let Some(bu) = text("bu")? {
            base.unit = Some(bu);
        }
        if let Some(bv) = number("bv")? {
            base.value = Some(bv);
        }
        if let Some(bs) = number("bs")? {
            base.sum = Some(bs);
        }
        let mut extra = Map::new();
        for (key, value) in &fields {
            match key.as_str() {
                "bn" | "bt" | "bu" | "bv" | "bs" | "bver" | "n" | "u" | "v" | "vs" | "vb" | "vd" | "s" | "t" | "ut" => {
                }
                k if k.ends_with('_') => return Err(SenmlError::MustUnderstand { record: i, field: key.clone() }),
                _ => {
                    extra.insert(key.clone(), value.clone());
                }
            }
        }
        let name = format!("{}{}", base.name, text("n")?.unwrap_or_default());
        if !valid_name(&name) {
            return Err(SenmlError::BadName { record: i, name });
        }
        let mut time = base.time + number("t")?.unwrap_or(0.0);
        if time < RELATIVE_LIMIT {
            time += now;
        }
        let bool_value = match fields.get("vb") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(SenmlError::FieldType { record: i, field: "vb".into(), expected: "a boolean" }),
        };
        let (string_value, data_value) = (text("vs")?, text("vd")?);
        let value = match number("v")? {
            Some(v) => Some(base.value.unwrap_or(0.0) + v),
            None if string_value.is_none() && bool_value.is_none() && data_value.is_none() => base.value,
            None => None,
        };
        let sum = match number("s")? {
            Some(s) => Some(base.sum.unwrap_or(0.0) + s),
            None => None,
        };
        if value.is_none() && string_value.is_none() && bool_value.is_none() && data_value.is_none() && sum.is_none() {
            // A record of base fields alone sets the base for the records after it and is
            // not a measurement itself (RFC 8428 example 9).
            let base_only = fields.keys().all(|k| matches!(k.as_str(), "bn" | "bt" | "bu" | "bv" | "bs" | "bver"));
            if base_only {
                continue;
            }
            return Err(SenmlError::NoValue { record: i });
        }
        out.push(Resolved {
            name,
            unit: text("u")?.or_else(|| base.unit.clone()),
            time,
            value,
            string_value,
            bool_value,
            data_value,
            sum,
            update_time: number("ut")?,
            extra,
        });
    }
    Ok(out)
}

/// RFC 8428 §4.5.1: `[A-Za-z0-9][A-Za-z0-9:./_-]*` after concatenation.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '/' | '_' | '-'))
}
