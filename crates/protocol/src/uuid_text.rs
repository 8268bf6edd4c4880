//! Kafka's text form of a UUID (topic ids, cluster ids): the 16 bytes in
//! URL-safe base64 without padding, 22 characters, as `Uuid.toString()` in
//! Kafka prints them and as `kafka-storage random-uuid` generates them.

use uuid::Uuid;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes a UUID as 22 base64url characters.
pub fn uuid_to_base64(id: &Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(
                ALPHABET
                    .get(((acc >> bits) & 0x3f) as usize)
                    .copied()
                    .unwrap_or(b'A'),
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET
                .get(((acc << (6 - bits)) & 0x3f) as usize)
                .copied()
                .unwrap_or(b'A'),
        ));
    }
    out
}

/// Decodes 22 base64url characters (also accepts the standard `+/`
/// alphabet and trailing `=` padding). Returns `None` for anything else.
pub fn uuid_from_base64(text: &str) -> Option<Uuid> {
    let text = text.trim().trim_end_matches('=');
    if text.len() != 22 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut i = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(i)? = (acc >> bits) as u8;
            i += 1;
        }
    }
    Some(Uuid::from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_value() {
        for _ in 0..100 {
            let id = Uuid::new_v4();
            let t = uuid_to_base64(&id);
            assert_eq!(t.len(), 22);
            assert_eq!(uuid_from_base64(&t), Some(id));
        }
        assert_eq!(uuid_to_base64(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(uuid_from_base64("not a uuid"), None);
    }
}
