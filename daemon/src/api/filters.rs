//! Docker's `filters` query parameter: JSON, either `{"key": {"value": true}}`
//! (current clients) or `{"key": ["value"]}` (old ones). Values of one key
//! match if any matches; `label` filters must all match.

use crate::errors::ApiError;
use std::collections::BTreeMap;

/// Parsed filters: key to values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the parameter (absent or empty: no filters); keys must be in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Filters, ApiError> {
        let raw = raw.unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
        let obj = value.as_object().ok_or_else(|| ApiError::bad_request("invalid filters: expected a JSON object"))?;
        let mut out = BTreeMap::new();
        for (key, v) in obj {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
            let values: Vec<String> = match v {
                serde_json::Value::Object(m) => {
                    m.iter().filter(|(_, on)| on.as_bool().unwrap_or(false)).map(|(k, _)| k.clone()).collect()
                }
                serde_json::Value::Array(a) => {
                    a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<_>>().ok_or_else(|| {
                        ApiError::bad_request(format!("invalid filter '{key}': values must be strings"))
                    })?
                }
                _ => {
                    return Err(ApiError::bad_request(format!("invalid filter '{key}': expected an object or a list")));
                }
            };
            out.insert(key.clone(), values);
        }
        Ok(Filters(out))
    }

    /// The values of `key` (empty when the filter is absent).
    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True if `key` is absent, or `pred` holds for one of its values.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        let v = self.values(key);
        v.is_empty() || v.iter().any(|s| pred(s))
    }

    /// True if every `key` filter (`k` or `k=v`) matches `labels`.
    pub fn labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.values(key).iter().all(|f| label_matches(f, labels))
    }

    /// True if no `key` filter (`k` or `k=v`) matches `labels` (for `label!`).
    pub fn no_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        !self.values(key).iter().any(|f| label_matches(f, labels))
    }

    /// The one boolean value of `key`, if given (`true`/`1` or `false`/`0`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.values(key) {
            [] => Ok(None),
            [v] => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::bad_request(format!("invalid filter '{key}={v}': expected a boolean"))),
            },
            _ => Err(ApiError::bad_request(format!("invalid filter '{key}': only one value is allowed"))),
        }
    }
}

fn label_matches(filter: &str, labels: &BTreeMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// Parses a prune `until` value as Docker does: a Unix timestamp (with an
/// optional fraction), an RFC 3339 time or date, or a Go-style duration
/// before now (`10m`, `24h`, `1h30m`).
pub fn parse_until(value: &str, now: u64) -> Result<u64, ApiError> {
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(secs);
    }
    if let Some((s, f)) = value.split_once('.')
        && let Ok(secs) = s.parse::<u64>()
        && !f.is_empty()
        && f.bytes().all(|b| b.is_ascii_digit())
    {
        return Ok(secs);
    }
    if let Some(secs) = crate::wire::time::parse_rfc3339(value) {
        return Ok(secs);
    }
    let bad = || {
        ApiError::bad_request(format!(
            "invalid filter 'until={value}': expected a Unix timestamp, an RFC 3339 time or a duration such as 24h"
        ))
    };
    let mut total = 0u64;
    let mut num = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        // A duration longer than the epoch is refused, never wrapped.
        total = n.checked_mul(unit).and_then(|d| total.checked_add(d)).ok_or_else(bad)?;
    }
    if !num.is_empty() || value.is_empty() {
        return Err(bad());
    }
    Ok(now.saturating_sub(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_not_wrapped() {
        assert!(parse_until("99999999999999999999h", 1000).is_err());
        assert!(parse_until("5124095576030432h", 1000).is_err(), "u64 overflow in the multiplication");
        assert_eq!(parse_until("1h", 7200).unwrap(), 3600);
        assert_eq!(parse_until("3h", 7200).unwrap(), 0, "before the epoch clamps to it");
    }

    #[test]
    fn both_filter_encodings_parse() {
        let a = Filters::parse(Some(r#"{"name":{"n1":true,"off":false}}"#), &["name"]).unwrap();
        assert_eq!(a.values("name"), ["n1"]);
        let b = Filters::parse(Some(r#"{"name":["n1"]}"#), &["name"]).unwrap();
        assert_eq!(b.values("name"), ["n1"]);
        assert!(Filters::parse(None, &[]).unwrap().any("name", |_| false));
    }

    #[test]
    fn bad_filters_are_refused_with_the_key() {
        let e = Filters::parse(Some(r#"{"colour":["red"]}"#), &["name"]).unwrap_err();
        assert_eq!(e.message, "invalid filter 'colour'");
        assert!(Filters::parse(Some("{"), &["name"]).is_err());
        assert!(Filters::parse(Some(r#"{"name":3}"#), &["name"]).is_err());
    }

    #[test]
    fn labels_must_all_match() {
        let f = Filters::parse(Some(r#"{"label":["a","b=2"]}"#), &["label"]).unwrap();
        let mut l = BTreeMap::from([("a".to_string(), "x".to_string())]);
        assert!(!f.labels("label", &l));
        l.insert("b".into(), "2".into());
        assert!(f.labels("label", &l));
        assert!(!f.no_labels("label", &l));
    }

    #[test]
    fn until_accepts_seconds_and_durations() {
        assert_eq!(parse_until("100", 5000).unwrap(), 100);
        assert_eq!(parse_until("1h30m", 10_000).unwrap(), 10_000 - 5400);
        assert!(parse_until("3d", 10).is_err());
        assert!(parse_until("5", 10).is_ok());
        assert!(parse_until("5x", 10).is_err());
    }
}
