//! Request and answer bodies as Go's `encoding/json` encoder writes them:
//! compact JSON, `<`, `>`, `&`, U+2028 and U+2029 escaped, one final `\n`.

use bytes::Bytes;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, Serializer};
use std::io::{self, Write};

/// serde_json's compact formatter with Go's HTML-safe string escapes.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        CompactFormatter.begin_string(writer)
    }
}

/// Encodes `value` as Docker sends it: compact JSON followed by a single `\n`.
pub fn to_body<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn compact_with_go_escapes_and_newline() {
        let v = serde_json::json!({"a": "<x>&y\u{2028}", "b": [1, 2]});
        let body = super::to_body(&v).unwrap();
        assert_eq!(&body[..], br#"{"a":"\u003cx\u003e\u0026y\u2028","b":[1,2]}"#.iter().chain(b"\n").copied().collect::<Vec<u8>>().as_slice());
    }
}
