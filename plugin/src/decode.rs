//! Decoding JSON as Go's `encoding/json` does: object keys match struct
//! fields case-insensitively (an exact match wins), unknown keys are
//! ignored, `null` leaves the zero value.
//!
//! This is a [`Deserializer`] wrapper over [`serde_json::Value`]: when a
//! type asks for a struct, the wrapper renames the object's keys to the
//! field names the type declares, then decodes as usual, recursively. It
//! works with the unchanged serde types of `cnm-driverapi` and `cnm-ipamapi`.

use serde::de::value::StringDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Decodes `bytes` (JSON) into `T` with Go's field matching.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    from_value(serde_json::from_slice(bytes)?)
}

/// Decodes a JSON value into `T` with Go's field matching; `null` decodes as `{}`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    let value = if value.is_null() { Value::Object(Map::new()) } else { value };
    T::deserialize(CaseInsensitive(value))
}

/// Looks up `name` in an object as Go would: the exact key, else a key equal ignoring ASCII case.
pub fn get_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// Renames the keys of `obj` to the declared `fields` they match: a key
/// equal to a field wins over keys that match it only ignoring case; other
/// keys are left as they are (and ignored by the type).
fn fold_keys(obj: Map<String, Value>, fields: &'static [&'static str]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value, bool)> = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let (name, exact) = if fields.contains(&k.as_str()) {
            (k, true)
        } else {
            match fields.iter().find(|f| f.eq_ignore_ascii_case(&k)) {
                Some(f) => ((*f).to_string(), false),
                None => (k, true),
            }
        };
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some(slot) if exact || !slot.2 => *slot = (name, v, exact),
            Some(_) => {}
            None => out.push((name, v, exact)),
        }
    }
    out.into_iter().map(|(n, v, _)| (n, v)).collect()
}

struct CaseInsensitive(Value);

impl<'de> Deserializer<'de> for CaseInsensitive {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(m) => {
                visitor.visit_map(Entries { iter: m.into_iter().collect::<Vec<_>>().into_iter(), value: None })
            }
            Value::Array(a) => visitor.visit_seq(Items(a.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(CaseInsensitive(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(m) => visitor.visit_map(Entries { iter: fold_keys(m, fields).into_iter(), value: None }),
            other => CaseInsensitive(other).deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u8(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u16(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u32(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map identifier ignored_any
    }
}

struct Entries {
    iter: std::vec::IntoIter<(String, Value)>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                let key: StringDeserializer<serde_json::Error> = k.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Self::Error> {
        let v = self.value.take().unwrap_or(Value::Null);
        seed.deserialize(CaseInsensitive(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = serde_json::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Self::Error> {
        match self.0.next() {
            Some(v) => seed.deserialize(CaseInsensitive(v)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnm_driverapi::{Capability, JoinResponse, Scope};

    #[test]
    fn field_names_match_ignoring_case_and_unknown_fields_are_ignored() {
        let c: Capability = from_slice(br#"{"scope":"global","CONNECTIVITYSCOPE":"local","extra":1}"#).unwrap();
        assert_eq!(c.data_scope, Scope::Global);
        assert_eq!(c.connectivity_scope, Some(Scope::Local));
        let j: JoinResponse = from_slice(
            br#"{"interfacename":{"srcname":"v1","dstprefix":"eth","DstName":"x"},"gateway":"10.0.0.1",
                "staticroutes":[{"destination":"0.0.0.0/0","routetype":0,"nexthop":"10.0.0.1"}]}"#,
        )
        .unwrap();
        assert_eq!(j.interface_name.unwrap().src_name, "v1");
        assert_eq!(j.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(j.static_routes[0].next_hop, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn exact_match_wins_and_null_is_empty() {
        for body in [&br#"{"Scope":"local","scope":"global"}"#[..], br#"{"scope":"global","Scope":"local"}"#] {
            let c: Capability = from_slice(body).unwrap();
            assert_eq!(c.data_scope, Scope::Local, "{}", String::from_utf8_lossy(body));
        }
        let j: JoinResponse = from_slice(b"null").unwrap();
        assert_eq!(j, JoinResponse::default());
        assert!(from_slice::<Capability>(b"{\"scope\":\"planet\"}").is_err());
        assert!(from_slice::<Capability>(b"").is_err());
    }
}
