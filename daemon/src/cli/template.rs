//! `--format` templates as `docker` users type them: the part of Go's
//! text/template they use, over the JSON object of each item — fields
//! (`{{.Name}}`, nested `{{.IPAM.Driver}}`), the functions `json`,
//! `index` (a key with dots: `{{index .Options "com.docker.network.bridge.name"}}`),
//! `join` (`{{join .Aliases ","}}`) and `len`, and the blocks
//! `{{range .X}}…{{end}}` (over a list's items or a map's values, in key
//! order, `.` being the item) and `{{if .X}}…{{else}}…{{end}}` (false,
//! zero, empty and missing are false). A string prints as is, anything
//! else as JSON; a missing field prints `<no value>`, as Go does for a map.
//! `\t` and `\n` in the template are a tab and a newline.

use super::CliError;
use serde_json::Value;

/// Renders `template` over `value`.
pub fn render(template: &str, value: &Value) -> Result<String, CliError> {
    let nodes = parse(template)?;
    let mut out = String::new();
    run(template, &nodes, value, &mut out)?;
    Ok(out)
}

/// The fields a template prints at its top level, in order (`{{.Name}}` →
/// `Name`): the columns of a `table` format.
pub fn columns(template: &str) -> Result<Vec<String>, CliError> {
    Ok(parse(template)?
        .into_iter()
        .filter_map(|n| match n {
            Node::Print(expr) => expr.split_whitespace().last().and_then(|p| p.strip_prefix('.')).map(str::to_string),
            _ => None,
        })
        .collect())
}

/// A parsed template.
#[derive(Debug)]
enum Node {
    Text(String),
    Print(String),
    Range(String, Vec<Node>),
    If(String, Vec<Node>, Vec<Node>),
}

fn parse(template: &str) -> Result<Vec<Node>, CliError> {
    // Each open block: its kind and expression, its nodes, and (for `if`) the nodes before `else`.
    struct Open {
        kind: &'static str,
        expr: String,
        nodes: Vec<Node>,
        then: Option<Vec<Node>>,
    }
    let mut stack: Vec<Open> = vec![Open { kind: "top", expr: String::new(), nodes: Vec::new(), then: None }];
    let mut rest = template;
    let push = |stack: &mut Vec<Open>, n: Node| stack.last_mut().expect("the top level").nodes.push(n);
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            push(&mut stack, Node::Text(unescape(&rest[..start])));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| bad(template, "unclosed action"))?;
        let action = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
        rest = &after[end + 2..];
        if let Some(expr) = action.strip_prefix("range ") {
            stack.push(Open { kind: "range", expr: expr.trim().to_string(), nodes: Vec::new(), then: None });
        } else if let Some(expr) = action.strip_prefix("if ") {
            stack.push(Open { kind: "if", expr: expr.trim().to_string(), nodes: Vec::new(), then: None });
        } else if action == "else" {
            let open = stack.last_mut().filter(|o| o.kind == "if" && o.then.is_none());
            let open = open.ok_or_else(|| bad(template, "{{else}} outside {{if}}"))?;
            open.then = Some(std::mem::take(&mut open.nodes));
        } else if action == "end" {
            if stack.len() < 2 {
                return Err(bad(template, "{{end}} without a block"));
            }
            let open = stack.pop().expect("a block");
            let node = match open.kind {
                "range" => Node::Range(open.expr, open.nodes),
                _ => match open.then {
                    Some(then) => Node::If(open.expr, then, open.nodes),
                    None => Node::If(open.expr, open.nodes, Vec::new()),
                },
            };
            push(&mut stack, node);
        } else {
            push(&mut stack, Node::Print(action.to_string()));
        }
    }
    if !rest.is_empty() {
        push(&mut stack, Node::Text(unescape(rest)));
    }
    if stack.len() != 1 {
        return Err(bad(template, "a block without {{end}}"));
    }
    Ok(stack.pop().expect("the top level").nodes)
}

fn run(template: &str, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), CliError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Print(expr) => out.push_str(&print(&eval(template, expr, dot)?)),
            Node::Range(expr, body) => match eval(template, expr, dot)? {
                Some(Value::Array(items)) => {
                    for item in &items {
                        run(template, body, item, out)?;
                    }
                }
                Some(Value::Object(map)) => {
                    for item in map.values() {
                        run(template, body, item, out)?;
                    }
                }
                Some(Value::Null) | None => {}
                Some(other) => return Err(bad(template, &format!("range over {other}, not a list or map"))),
            },
            Node::If(expr, then, otherwise) => {
                let branch = if truthy(eval(template, expr, dot)?.as_ref()) { then } else { otherwise };
                run(template, branch, dot, out)?;
            }
        }
    }
    Ok(())
}

/// A value as the template prints it.
fn print(v: &Option<Value>) -> String {
    match v {
        None => "<no value>".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// An expression: a field path, or a function and its arguments.
fn eval(template: &str, expr: &str, dot: &Value) -> Result<Option<Value>, CliError> {
    let words = words(template, expr)?;
    let arg = |i: usize| -> Result<Option<Value>, CliError> {
        let w = words.get(i).ok_or_else(|| bad(template, &format!("{expr:?} needs an argument")))?;
        match w.strip_prefix('"') {
            Some(s) => Ok(Some(Value::String(s.to_string()))),
            None => lookup(template, w, dot),
        }
    };
    let string_arg = |i: usize| -> Result<String, CliError> {
        match arg(i)? {
            Some(Value::String(s)) => Ok(s),
            _ => Err(bad(template, &format!("{expr:?}: argument {i} must be a string"))),
        }
    };
    match words.first().map(String::as_str) {
        Some("json") => Ok(Some(Value::String(arg(1)?.map_or_else(|| "null".to_string(), |v| v.to_string())))),
        Some("len") => Ok(Some(Value::from(match arg(1)? {
            Some(Value::Array(a)) => a.len(),
            Some(Value::Object(o)) => o.len(),
            Some(Value::String(s)) => s.len(),
            _ => 0,
        }))),
        Some("join") => {
            let sep = string_arg(2)?;
            let items = match arg(1)? {
                Some(Value::Array(a)) => a.iter().map(|v| print(&Some(v.clone()))).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            Ok(Some(Value::String(items.join(&sep))))
        }
        Some("index") => {
            let mut cur = arg(1)?;
            for i in 2..words.len() {
                let key = string_arg(i)?;
                cur = cur.and_then(|c| match c {
                    Value::Object(mut m) => m.remove(&key),
                    Value::Array(mut a) => key.parse::<usize>().ok().filter(|&n| n < a.len()).map(|n| a.swap_remove(n)),
                    _ => None,
                });
            }
            Ok(cur)
        }
        Some(w) if words.len() == 1 && w.starts_with('.') => lookup(template, w, dot),
        _ => Err(bad(template, &format!("{expr:?} is not a field (write .Name) or a known function"))),
    }
}

/// The words of an expression; a quoted string keeps its opening quote as a mark.
fn words(template: &str, expr: &str) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut rest = expr.trim();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').ok_or_else(|| bad(template, "unclosed string"))?;
            out.push(format!("\"{}", &q[..end]));
            rest = q[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(out)
}

/// The value at `.A.B` (`.` is the whole value).
fn lookup(template: &str, path: &str, value: &Value) -> Result<Option<Value>, CliError> {
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
    Ok(Some(cur.clone()))
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

    #[test]
    fn index_join_len_range_and_if() {
        let v = serde_json::json!({
            "Options": {"com.docker.network.bridge.name": "br0"},
            "Aliases": ["a", "b"],
            "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}, {"Subnet": "fd00::/64"}]},
            "Containers": {"x": {"Name": "web"}, "y": {"Name": "db"}},
            "Internal": false,
        });
        assert_eq!(render(r#"{{index .Options "com.docker.network.bridge.name"}}"#, &v).unwrap(), "br0");
        assert_eq!(render(r#"{{index .Options "nope"}}"#, &v).unwrap(), "<no value>");
        assert_eq!(render(r#"{{join .Aliases ","}}"#, &v).unwrap(), "a,b");
        assert_eq!(render("{{len .Aliases}}", &v).unwrap(), "2");
        assert_eq!(render("{{range .IPAM.Config}}{{.Subnet}} {{end}}", &v).unwrap(), "10.0.0.0/24 fd00::/64 ");
        assert_eq!(render("{{range .Containers}}{{.Name}};{{end}}", &v).unwrap(), "web;db;", "a map's values by key");
        assert_eq!(render("{{if .Internal}}int{{else}}ext{{end}}", &v).unwrap(), "ext");
        assert_eq!(render("{{if .Aliases}}{{range .Aliases}}[{{.}}]{{end}}{{end}}", &v).unwrap(), "[a][b]");
        assert_eq!(render("{{range .Nope}}x{{end}}", &v).unwrap(), "");
        for broken in [
            "{{range .Aliases}}",
            "{{end}}",
            "{{else}}",
            "{{if .X}}{{else}}{{else}}{{end}}",
            r#"{{index .Options "x}}"#,
        ] {
            assert!(render(broken, &v).is_err(), "{broken}");
        }
        assert_eq!(columns("table {{.ID}}\\t{{.Name}} {{json .Labels}}").unwrap(), ["ID", "Name", "Labels"]);
    }
}
