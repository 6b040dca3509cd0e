//! Object ids from outside (API requests, plugin calls, the cluster store):
//! checked once at the boundary, shortened by one function that never
//! cuts a character in two.

/// The longest id accepted (Docker's are 64 hexadecimal digits).
pub const MAX_ID_LEN: usize = 128;

/// Checks an id given from outside: 1 to [`MAX_ID_LEN`] characters, each
/// an ASCII letter, digit, `-`, `_` or `.` (ids become parts of interface
/// names and file names). Returns why not.
pub fn check(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an empty id".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("an id of {} bytes (at most {MAX_ID_LEN})", id.len()));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("an id with the character {c:?}"));
    }
    Ok(())
}

/// The first `n` characters of `id` (all of it when shorter), as in logs
/// and names derived from ids; never panics, whatever the id holds.
pub fn short(id: &str, n: usize) -> &str {
    match id.char_indices().nth(n) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_shortened_safely() {
        assert!(check(&"ab12".repeat(16)).is_ok());
        assert!(check("").is_err());
        assert!(check("net/../x").is_err());
        assert!(check("né").is_err());
        assert!(check(&"a".repeat(129)).is_err());
        assert_eq!(short("0123456789abcdef", 12), "0123456789ab");
        assert_eq!(short("abc", 12), "abc");
        assert_eq!(short("ééééééééééééé", 3), "ééé", "cut between characters, not inside one");
    }
}
