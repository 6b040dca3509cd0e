//! Serde helpers for the remote protocol's encodings: empty strings that mean
//! "absent", and typed values carried as strings.

use serde::{Deserialize, Deserializer, Serializer};
use std::fmt::Display;
use std::str::FromStr;

/// `Option<T>` carried as a string where `""` means `None` (always serialized).
pub mod empty_none {
    use super::*;

    /// Serializes `None` as `""` and `Some(v)` as `v.to_string()`.
    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }

    /// Deserializes `""`, `null` or a missing field as `None`.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s: Option<String> = Option::deserialize(d)?;
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// A value carried as its string form (`Display` / `FromStr`).
pub mod string {
    use super::*;

    /// Serializes `v.to_string()`.
    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Parses the string form.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.trim().parse().map_err(serde::de::Error::custom)
    }
}

/// `Option<T>` carried as a string, omitted when `None` (use with `skip_serializing_if`).
pub mod opt_string {
    use super::*;

    /// Serializes `Some(v)` as `v.to_string()` (and `None` as `""`, when not skipped).
    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        empty_none::serialize(v, s)
    }

    /// Deserializes `""`, `null` or a missing field as `None`.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        empty_none::deserialize(d)
    }
}

/// A `null` that deserializes as the type's default (Go encodes nil maps and slices as `null`).
pub fn null_default<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: Default + Deserialize<'de>,
    D: Deserializer<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
