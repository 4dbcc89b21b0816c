//! Terraform values as the plugin protocol carries them (cty's msgpack and JSON encodings), decoded
//! into a small typed tree: null, unknown (with cty's refinements), bool, exact numbers, strings,
//! sequences (lists, sets, tuples) and string-keyed maps (maps and objects).
//!
//! Numbers are exact: cty sends an integer as a msgpack int, a binary-exact fraction as a float and
//! every other number as a decimal string; all three decode into a `Decimal`, and numbers are written
//! back as an int or a decimal string, never as a lossy float.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::Error;

/// The msgpack extension code cty uses for a wholly unknown value.
const UNKNOWN_EXT: i8 = 0;
/// The msgpack extension code cty uses for an unknown value with refinements.
const REFINED_UNKNOWN_EXT: i8 = 12;

/// What Terraform already knows about a value that is not known yet (cty "refinements").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refinements {
    /// The value will not be null.
    pub not_null: bool,
    /// A string value will start with this.
    pub string_prefix: Option<String>,
    /// A number will be at least this (and whether the bound is inclusive).
    pub number_lower: Option<(Decimal, bool)>,
    /// A number will be at most this (and whether the bound is inclusive).
    pub number_upper: Option<(Decimal, bool)>,
    /// A collection will have at least this many elements.
    pub length_lower: Option<u64>,
    /// A collection will have at most this many elements.
    pub length_upper: Option<u64>,
}

/// One Terraform value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Null: an optional attribute that is not set, or an absent object.
    #[default]
    Null,
    /// Known only after apply.
    Unknown(Refinements),
    /// A bool.
    Bool(bool),
    /// An exact number.
    Number(Decimal),
    /// A string.
    String(String),
    /// A list, set or tuple (all msgpack arrays).
    Seq(Vec<Value>),
    /// A map or object (both msgpack maps with string keys).
    Map(BTreeMap<String, Value>),
}

static NULL: Value = Value::Null;

impl PartialEq for Value {
    /// Equality as cty sees it: numbers by value (`2000` equals `2000.0`), unknowns never equal.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// A string, or null when absent.
    pub fn opt_string(s: Option<impl Into<String>>) -> Value {
        s.map(Value::string).unwrap_or(Value::Null)
    }

    /// A number, or null when absent.
    pub fn opt_number(n: Option<Decimal>) -> Value {
        n.map(Value::Number).unwrap_or(Value::Null)
    }

    /// A wholly unknown value.
    pub fn unknown() -> Value {
        Value::Unknown(Refinements::default())
    }

    /// An object built from its attributes.
    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A map of strings.
    pub fn string_map(map: &BTreeMap<String, String>) -> Value {
        Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::string(v)))
                .collect(),
        )
    }

    /// A sequence of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Seq(items.into_iter().map(Value::string).collect())
    }

    /// An attribute of an object; null when the object is null or lacks it.
    pub fn get(&self, name: &str) -> &Value {
        match self {
            Value::Map(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// A mutable attribute of an object (inserted as null when missing).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Map(m) => Some(m.entry(name.to_owned()).or_default()),
            _ => None,
        }
    }

    /// Sets an attribute of an object; no effect on other values.
    pub fn set(&mut self, name: &str, value: Value) {
        if let Value::Map(m) = self {
            m.insert(name.to_owned(), value);
        }
    }

    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True for an unknown value at the top level.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }

    /// True when nothing inside the value is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::Seq(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(m) => m.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    /// The value with every unknown inside it replaced by null: a state must be wholly known, and
    /// a state saved after a partial failure has nothing better for what was never read back.
    pub fn unknown_as_null(self) -> Value {
        match self {
            Value::Unknown(_) => Value::Null,
            Value::Seq(items) => {
                Value::Seq(items.into_iter().map(Value::unknown_as_null).collect())
            }
            Value::Map(m) => Value::Map(
                m.into_iter()
                    .map(|(k, v)| (k, v.unknown_as_null()))
                    .collect(),
            ),
            other => other,
        }
    }

    /// The string, if this is a known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a known number.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as an integer, if it is a known whole number that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_decimal()
            .filter(|n| n.fract().is_zero())
            .and_then(|n| n.to_i64())
    }

    /// The bool, if this is a known bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements of a known list or set; empty for null.
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// The entries of a known map or object; `None` for anything else.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A known map of strings (null is empty); `None` when it or an element is unknown.
    pub fn to_string_map(&self) -> Option<BTreeMap<String, String>> {
        match self {
            Value::Null => Some(BTreeMap::new()),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect(),
            _ => None,
        }
    }

    /// The known strings of a list or set (null is empty); `None` when any is unknown.
    pub fn to_strings(&self) -> Option<Vec<String>> {
        match self {
            Value::Null => Some(Vec::new()),
            Value::Seq(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }

    /// Decodes cty's msgpack encoding.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Value, Error> {
        let mut reader = bytes;
        let raw = rmpv::decode::read_value(&mut reader)
            .map_err(|e| Error::Value(format!("malformed msgpack: {e}")))?;
        if !reader.is_empty() {
            return Err(Error::Value(format!(
                "{} bytes after the msgpack value",
                reader.len()
            )));
        }
        from_rmpv(raw)
    }

    /// Encodes as cty's msgpack encoding.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &to_rmpv(self))
            .expect("writing msgpack to a Vec cannot fail");
        out
    }

    /// Decodes cty's JSON encoding (used for stored state); JSON has no unknowns.
    pub fn from_json(bytes: &[u8]) -> Result<Value, Error> {
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Value(format!("malformed JSON: {e}")))?;
        from_json_value(json)
    }
}

fn number_from_f64(f: f64) -> Result<Decimal, Error> {
    // cty sends a float only when the number is exactly that binary value; its shortest decimal
    // form is what the configuration said.
    if !f.is_finite() {
        return Err(Error::Value(format!("the number {f} is not finite")));
    }
    Decimal::from_str(&format!("{f}"))
        .or_else(|_| Decimal::from_scientific(&format!("{f:e}")))
        .map_err(|_| Error::Value(format!("the number {f} is out of range")))
}

/// A number cty sent as a decimal string (plain or with an exponent), exactly.
pub(crate) fn number_from_string(s: &str) -> Result<Decimal, Error> {
    Decimal::from_str_exact(s)
        .or_else(|_| Decimal::from_scientific(s))
        .map_err(|_| {
            Error::Value(format!(
                "the number {s} cannot be represented exactly (at most 28 significant digits)"
            ))
        })
}

fn from_rmpv(raw: rmpv::Value) -> Result<Value, Error> {
    use rmpv::Value as R;
    Ok(match raw {
        R::Nil => Value::Null,
        R::Boolean(b) => Value::Bool(b),
        R::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(v), _) => Value::Number(Decimal::from(v)),
            (None, Some(v)) => Value::Number(Decimal::from(v)),
            _ => return Err(Error::Value("integer out of range".into())),
        },
        R::F32(f) => Value::Number(number_from_f64(f64::from(f))?),
        R::F64(f) => Value::Number(number_from_f64(f)?),
        R::String(s) => {
            let s = s
                .into_str()
                .ok_or_else(|| Error::Value("a string is not UTF-8".into()))?;
            Value::String(s)
        }
        R::Binary(_) => return Err(Error::Value("unexpected binary value".into())),
        R::Array(items) => Value::Seq(items.into_iter().map(from_rmpv).collect::<Result<_, _>>()?),
        R::Map(entries) => {
            let mut map = BTreeMap::new();
            for (k, v) in entries {
                let key = match k {
                    R::String(s) => s
                        .into_str()
                        .ok_or_else(|| Error::Value("a map key is not UTF-8".into()))?,
                    other => return Err(Error::Value(format!("unexpected map key {other}"))),
                };
                map.insert(key, from_rmpv(v)?);
            }
            Value::Map(map)
        }
        R::Ext(UNKNOWN_EXT, _) => Value::unknown(),
        R::Ext(REFINED_UNKNOWN_EXT, payload) => Value::Unknown(refinements(&payload)?),
        R::Ext(code, _) => {
            return Err(Error::Value(format!("unexpected msgpack extension {code}")));
        }
    })
}

/// Decodes the refinements payload: a msgpack map keyed by small integers.
fn refinements(payload: &[u8]) -> Result<Refinements, Error> {
    let mut reader = payload;
    let raw = rmpv::decode::read_value(&mut reader)
        .map_err(|e| Error::Value(format!("malformed unknown-value refinements: {e}")))?;
    let mut out = Refinements::default();
    let rmpv::Value::Map(entries) = raw else {
        return Ok(out);
    };
    let bound = |v: &rmpv::Value| -> Result<Option<(Decimal, bool)>, Error> {
        let rmpv::Value::Array(pair) = v else {
            return Ok(None);
        };
        let number = match pair.first().cloned().map(from_rmpv).transpose()? {
            Some(Value::Number(n)) => n,
            Some(Value::String(s)) => number_from_string(&s)?,
            _ => return Ok(None),
        };
        Ok(Some((
            number,
            pair.get(1).and_then(|b| b.as_bool()).unwrap_or(false),
        )))
    };
    for (k, v) in entries {
        match k.as_i64() {
            Some(1) => out.not_null = v.as_bool().unwrap_or(false),
            Some(2) => out.string_prefix = v.as_str().map(str::to_owned),
            Some(3) => out.number_lower = bound(&v)?,
            Some(4) => out.number_upper = bound(&v)?,
            Some(5) => out.length_lower = v.as_u64(),
            Some(6) => out.length_upper = v.as_u64(),
            _ => {}
        }
    }
    Ok(out)
}

fn to_rmpv(value: &Value) -> rmpv::Value {
    use rmpv::Value as R;
    match value {
        Value::Null => R::Nil,
        // Refinements are advisory; a plain unknown is always a correct answer.
        Value::Unknown(_) => R::Ext(UNKNOWN_EXT, vec![0]),
        Value::Bool(b) => R::Boolean(*b),
        Value::Number(n) => match n.fract().is_zero().then(|| n.to_i64()).flatten() {
            Some(i) => R::from(i),
            None => R::from(n.normalize().to_string()),
        },
        Value::String(s) => R::from(s.as_str()),
        Value::Seq(items) => R::Array(items.iter().map(to_rmpv).collect()),
        Value::Map(m) => R::Map(
            m.iter()
                .map(|(k, v)| (R::from(k.as_str()), to_rmpv(v)))
                .collect(),
        ),
    }
}

fn from_json_value(json: serde_json::Value) -> Result<Value, Error> {
    use serde_json::Value as J;
    Ok(match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => Value::Number(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Decimal::from(i),
            (None, Some(u), _) => Decimal::from(u),
            (None, None, Some(f)) => number_from_f64(f)?,
            _ => return Err(Error::Value(format!("the number {n} is out of range"))),
        }),
        J::String(s) => Value::String(s),
        J::Array(items) => Value::Seq(
            items
                .into_iter()
                .map(from_json_value)
                .collect::<Result<_, _>>()?,
        ),
        J::Object(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| Ok((k, from_json_value(v)?)))
                .collect::<Result<_, Error>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn encode(raw: rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &raw).unwrap();
        out
    }

    #[test]
    fn numbers_arriving_as_int_float_or_string_decode_exactly() {
        for (raw, want) in [
            (rmpv::Value::from(2000), dec!(2000)),
            (rmpv::Value::F64(2000.0), dec!(2000)),
            (rmpv::Value::F64(0.5), dec!(0.5)),
            (rmpv::Value::from("0.1"), dec!(0.1)),
            (
                rmpv::Value::from("12345678901234567890.123456"),
                dec!(12345678901234567890.123456),
            ),
            (rmpv::Value::from(u64::MAX), Decimal::from(u64::MAX)),
        ] {
            let bytes = encode(raw);
            let value = Value::from_msgpack(&bytes).unwrap();
            // Strings are only numbers when the schema says so; here they decode as strings.
            let got = match value {
                Value::Number(n) => n,
                Value::String(s) => Decimal::from_str_exact(&s).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn two_thousand_and_two_thousand_point_zero_are_equal_and_encode_identically() {
        let a = Value::Number(dec!(2000));
        let b = Value::Number(dec!(2000.0));
        assert_eq!(a, b);
        assert_eq!(a.to_msgpack(), b.to_msgpack());
    }

    #[test]
    fn fractions_are_written_as_decimal_strings_never_floats() {
        let bytes = Value::Number(dec!(0.10)).to_msgpack();
        assert_eq!(
            rmpv::decode::read_value(&mut &bytes[..]).unwrap(),
            rmpv::Value::from("0.1")
        );
    }

    #[test]
    fn unknown_and_refined_unknown_values_decode() {
        let plain = encode(rmpv::Value::Ext(0, vec![0]));
        assert!(Value::from_msgpack(&plain).unwrap().is_unknown());

        let payload = encode(rmpv::Value::Map(vec![
            (rmpv::Value::from(1), rmpv::Value::from(true)),
            (rmpv::Value::from(2), rmpv::Value::from("arn:aws:sns:")),
        ]));
        let refined = encode(rmpv::Value::Ext(12, payload));
        let Value::Unknown(r) = Value::from_msgpack(&refined).unwrap() else {
            panic!("not unknown")
        };
        assert!(r.not_null);
        assert_eq!(r.string_prefix.as_deref(), Some("arn:aws:sns:"));
    }

    #[test]
    fn an_object_round_trips_through_msgpack() {
        let value = Value::object([
            ("name", Value::string("team-a")),
            ("amount", Value::Number(dec!(250.75))),
            ("tags", Value::Map(BTreeMap::new())),
            ("emails", Value::strings(["a@example.com"])),
            ("arn", Value::unknown()),
            ("start", Value::Null),
        ]);
        let back = Value::from_msgpack(&value.to_msgpack()).unwrap();
        // Without a schema a fraction stays the decimal string it travels as (`Block::conform`
        // makes it a number); either way it is exact.
        assert_eq!(back.get("amount"), &Value::string("250.75"));
        assert!(back.get("arn").is_unknown());
        assert!(back.get("start").is_null());
        assert_eq!(back.get("emails").to_strings().unwrap(), ["a@example.com"]);
    }

    #[test]
    fn malformed_msgpack_is_an_error_not_a_panic() {
        assert!(Value::from_msgpack(&[0xd9]).is_err());
        assert!(Value::from_msgpack(&[0x92, 0x01]).is_err());
        assert!(
            Value::from_msgpack(&[0x01, 0x02]).is_err(),
            "trailing bytes"
        );
        assert!(Value::from_msgpack(&encode(rmpv::Value::Ext(5, vec![]))).is_err());
    }

    #[test]
    fn state_json_decodes() {
        let v = Value::from_json(br#"{"amount": 2000.5, "n": 3, "s": "x", "l": [true, null]}"#)
            .unwrap();
        assert_eq!(v.get("amount").as_decimal(), Some(dec!(2000.5)));
        assert_eq!(v.get("n").as_i64(), Some(3));
        assert_eq!(v.get("l").items().len(), 2);
    }
}
