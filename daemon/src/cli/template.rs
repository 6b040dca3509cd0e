//! `--format` templates as `docker` users type them: the part of Go's
//! text/template they use — `{{.Field}}`, nested `{{.IPAM.Driver}}`,
//! `{{json .}}` or `{{json .Field}}` — over the JSON object of each item.
//! A string prints as is, anything else as JSON; a missing field prints
//! `<no value>`, as Go does for a map. `\t` and `\n` in the template are a
//! tab and a newline.

use super::CliError;
use serde_json::Value;

/// Renders `template` over `value`.
pub fn render(template: &str, value: &Value) -> Result<String, CliError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&unescape(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| bad(template, "unclosed action"))?;
        out.push_str(&action(template, after[..end].trim(), value)?);
        rest = &after[end + 2..];
    }
    out.push_str(&unescape(rest));
    Ok(out)
}

/// One `{{…}}`: a field path, or `json` and a field path.
fn action(template: &str, action: &str, value: &Value) -> Result<String, CliError> {
    let (as_json, path) = match action.strip_prefix("json") {
        Some(p) if p.starts_with(' ') => (true, p.trim()),
        _ => (false, action),
    };
    let found = lookup(template, path, value)?;
    Ok(match found {
        None => "<no value>".to_string(),
        Some(v) if as_json => v.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    })
}

/// The value at `.A.B` (`.` is the whole value).
fn lookup<'a>(template: &str, path: &str, value: &'a Value) -> Result<Option<&'a Value>, CliError> {
    let Some(fields) = path.strip_prefix('.') else {
        return Err(bad(template, &format!("{path:?} is not a field (write .Name)")));
    };
    let mut cur = value;
    for f in fields.split('.').filter(|f| !f.is_empty()) {
        match cur.get(f) {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn bad(template: &str, why: &str) -> CliError {
    CliError::Usage(format!("invalid --format {template:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_nested_fields_and_json() {
        let v =
            serde_json::json!({"Name": "n1", "IPAM": {"Driver": "default"}, "Internal": true, "Labels": {"a": "b"}});
        assert_eq!(render("{{.Name}}", &v).unwrap(), "n1");
        assert_eq!(render("{{ .IPAM.Driver }}\\t{{.Internal}}", &v).unwrap(), "default\ttrue");
        assert_eq!(render("{{json .Labels}}", &v).unwrap(), r#"{"a":"b"}"#);
        assert_eq!(render("{{.Nope}}", &v).unwrap(), "<no value>");
        assert_eq!(render("id: {{json .Name}}!", &v).unwrap(), r#"id: "n1"!"#);
        assert!(render("{{.Name", &v).is_err());
        assert!(render("{{Name}}", &v).is_err());
    }
}
