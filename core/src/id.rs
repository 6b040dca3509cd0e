//! Object ids: 64 lower-case hex characters, as Docker's.

use rand::RngCore;

/// A new random id.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` looks like a full id.
#[cfg(test)]
pub(crate) fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = super::new_id();
        let b = super::new_id();
        assert!(super::is_full_id(&a));
        assert_ne!(a, b);
    }
}
