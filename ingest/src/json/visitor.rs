//! The serde visitor behind [`super::JsonDecoder`]: one pass, no intermediate tree.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

use super::{JsonMapping, RawReading};
use crate::dead_letter::Rejection;
use crate::quantity::Quantity;
use crate::reading::Quality;
use crate::time;

type Emit<'e, 'a> = &'e mut dyn FnMut(Result<RawReading<'a>, Rejection>);

pub(super) fn decode<'a>(mapping: &'a JsonMapping, zone: chrono_tz::Tz, payload: &'a [u8], emit: Emit<'_, 'a>) {
    let de = serde_json::Deserializer::from_slice(payload);
    decode_with(mapping, zone, de, emit)
}

/// As [`decode`], for text already known to be UTF-8 (its strings are not checked again).
pub(super) fn decode_str<'a>(mapping: &'a JsonMapping, zone: chrono_tz::Tz, payload: &'a str, emit: Emit<'_, 'a>) {
    let de = serde_json::Deserializer::from_str(payload);
    decode_with(mapping, zone, de, emit)
}

fn decode_with<'a, R: serde_json::de::Read<'a>>(
    mapping: &'a JsonMapping,
    zone: chrono_tz::Tz,
    mut de: serde_json::Deserializer<R>,
    emit: Emit<'_, 'a>,
) {
    let ctx = Ctx { mapping, zone };
    let result = DocSeed { ctx: &ctx, emit: &mut *emit }.deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = result {
        emit(Err(Rejection::Undecodable { message: format!("JSON: {e}") }));
    }
}

pub(super) struct Ctx<'a> {
    pub(super) mapping: &'a JsonMapping,
    pub(super) zone: chrono_tz::Tz,
}

/// A field's value, kept only as far as a reading needs it.
pub(super) enum Scalar<'a> {
    Num(f64),
    Str(Cow<'a, str>),
    Bool,
    Null,
    Nested,
}

impl<'a> Scalar<'a> {
    fn describe(&self) -> &'static str {
        match self {
            Scalar::Num(_) => "a number",
            Scalar::Str(_) => "a string",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Nested => "an object or array",
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        let _ = v;
        Ok(Scalar::Bool)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Keys borrowed where possible; escaped keys are rare and get an owned copy.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct DocSeed<'c, 'e, 'a> {
    ctx: &'c Ctx<'a>,
    emit: Emit<'e, 'a>,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or an array of objects")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let record = read_record(self.ctx, map)?;
        (self.emit)(record.into_reading(self.ctx, None));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while let Some(item) = seq.next_element_seed(ItemSeed(self.ctx))? {
            let result = match item {
                Item::Record(record) => record.into_reading(self.ctx, Some(index)),
                Item::NotAnObject(what) => {
                    Err(Rejection::Undecodable { message: format!("record {index}: expected an object, found {what}") })
                }
            };
            (self.emit)(result);
            index += 1;
        }
        Ok(())
    }
}

/// One element of a batch array.
enum Item<'a> {
    Record(Record<'a>),
    NotAnObject(&'static str),
}

struct ItemSeed<'c, 'a>(&'c Ctx<'a>);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, 'de> {
    type Value = Item<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, 'de> {
    type Value = Item<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_record(self.0, map).map(Item::Record)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Item::NotAnObject("an array"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Item::NotAnObject("a string"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Item::NotAnObject("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Item::NotAnObject("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Item::NotAnObject("a number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Item::NotAnObject("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Item::NotAnObject("null"))
    }
}

/// The mapped fields of one record; every other field is skipped unread.
#[derive(Default)]
pub(super) struct Record<'a> {
    pub(super) station: Option<Scalar<'a>>,
    pub(super) quantity: Option<Scalar<'a>>,
    pub(super) value: Option<Scalar<'a>>,
    pub(super) unit: Option<Scalar<'a>>,
    pub(super) time: Option<Scalar<'a>>,
}

fn read_record<'de, A: MapAccess<'de>>(ctx: &Ctx<'de>, mut map: A) -> Result<Record<'de>, A::Error> {
    let m = ctx.mapping;
    let mut record = Record::default();
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        let slot = if key == m.station.as_str() {
            &mut record.station
        } else if key == m.value.as_str() {
            &mut record.value
        } else if key == m.time.as_str() {
            &mut record.time
        } else if key == m.unit.as_str() {
            &mut record.unit
        } else if m.fixed_quantity.is_none() && key == m.quantity.as_str() {
            &mut record.quantity
        } else {
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        *slot = Some(map.next_value()?);
    }
    Ok(record)
}

impl<'a> Record<'a> {
    pub(super) fn into_reading(self, ctx: &Ctx<'a>, index: Option<usize>) -> Result<RawReading<'a>, Rejection> {
        let m = ctx.mapping;
        let at = |msg: String| Rejection::Undecodable {
            message: match index {
                Some(i) => format!("record {i}: {msg}"),
                None => msg,
            },
        };
        let station = match self.station {
            Some(Scalar::Str(s)) => s,
            Some(Scalar::Num(n)) if n.fract() == 0.0 && n.abs() < 1e15 => Cow::Owned(format!("{n}")),
            Some(other) => return Err(at(format!("field {:?} (station) is {}", m.station, other.describe()))),
            None => return Err(at(format!("missing field {:?} (station)", m.station))),
        };
        let quantity = match m.fixed_quantity {
            Some(q) => q,
            None => match self.quantity {
                Some(Scalar::Str(s)) => {
                    s.parse::<Quantity>().map_err(|_| Rejection::UnknownQuantity { quantity: s.into_owned() })?
                }
                Some(other) => return Err(at(format!("field {:?} (quantity) is {}", m.quantity, other.describe()))),
                None => return Err(at(format!("missing field {:?} (quantity)", m.quantity))),
            },
        };
        let value = match self.value {
            Some(Scalar::Num(n)) => n,
            Some(Scalar::Str(s)) => match s.trim().parse::<f64>() {
                Ok(n) => n,
                Err(_) => return Err(at(format!("field {:?} (value) is {:?}, not a number", m.value, s))),
            },
            Some(other) => return Err(at(format!("field {:?} (value) is {}", m.value, other.describe()))),
            None => return Err(at(format!("missing field {:?} (value)", m.value))),
        };
        let unit = match self.unit {
            Some(Scalar::Str(s)) => Some(s),
            Some(Scalar::Null) | None => m.fixed_unit.as_deref().map(Cow::Borrowed),
            Some(other) => return Err(at(format!("field {:?} (unit) is {}", m.unit, other.describe()))),
        };
        let time = match self.time {
            Some(Scalar::Num(n)) => Some(time::from_number(n, m.time_format).map_err(|e| at(e.to_string()))?),
            Some(Scalar::Str(s)) => Some(time::from_text(&s, m.time_format, ctx.zone).map_err(|e| at(e.to_string()))?),
            Some(Scalar::Null) | None => None,
            Some(other) => return Err(at(format!("field {:?} (time) is {}", m.time, other.describe()))),
        };
        Ok(RawReading { station, quantity, value, unit, time, quality: Quality::Good })
    }
}
