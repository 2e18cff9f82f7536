//! Upload identifiers: `ID` or `ID:MAC`, minted from `getrandom` and signed
//! with HMAC-SHA256 when a key is configured.
//!
//! Only a validated [`Identifier`] ever becomes a path component in the pool,
//! and its characters are `[A-Za-z0-9-]`: no `/`, no `.`, no NUL, so no
//! identifier can name anything outside its bucket.

use ring::hmac;

use crate::model::error::{Error, Result};

/// The longest `ID` accepted.
pub const MAX_ID_LEN: usize = 64;

/// A validated identifier (its `ID` part; the MAC has been checked).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// The `ID` part, safe to use as a file name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the syntax of a bare `ID` (no MAC): 1 to 64 of `[A-Za-z0-9-]`.
    pub fn parse_id(id: &str) -> Result<Identifier> {
        if id.is_empty() {
            return Err(Error::bad_request("invalid identifier: empty"));
        }
        if id.len() > MAX_ID_LEN {
            return Err(Error::bad_request(format!(
                "invalid identifier: longer than {MAX_ID_LEN} characters"
            )));
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::bad_request(
                "invalid identifier: only letters, digits and '-' are allowed",
            ));
        }
        Ok(Identifier(id.to_owned()))
    }
}

/// Mints and checks identifiers, with or without a signing key.
///
/// ```
/// use fileupload::model::identifier::Signer;
/// let signer = Signer::new(Some(b"secret"));
/// let id = signer.create().unwrap();
/// let text = signer.format(&id);
/// assert_eq!(signer.verify(&text).unwrap(), id);
/// assert!(signer.verify(id.as_str()).is_err()); // the MAC is required
/// ```
#[derive(Clone)]
pub struct Signer {
    key: Option<hmac::Key>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Signer {
    /// A signer with the given key, or one that accepts and mints bare
    /// identifiers when there is none.
    pub fn new(key: Option<&[u8]>) -> Signer {
        Signer {
            key: key.map(|k| hmac::Key::new(hmac::HMAC_SHA256, k)),
        }
    }

    /// Whether identifiers carry a MAC.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// A fresh identifier: 128 random bits as 32 lowercase hex digits.
    /// Fails (500) only when the operating system has no random source.
    pub fn create(&self) -> Result<Identifier> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("no random source for identifiers: {e}")))?;
        Ok(Identifier(to_hex(&bytes)))
    }

    /// The identifier as a client must send it: `ID`, or `ID:MAC` when keyed.
    pub fn format(&self, id: &Identifier) -> String {
        match &self.key {
            Some(key) => format!(
                "{}:{}",
                id.0,
                to_hex(hmac::sign(key, id.0.as_bytes()).as_ref())
            ),
            None => id.0.clone(),
        }
    }

    /// Checks `ID` or `ID:MAC` as sent by a client. With a key, the MAC is
    /// required and compared in constant time; without one, a MAC is refused.
    pub fn verify(&self, text: &str) -> Result<Identifier> {
        let (id, mac) = match text.split_once(':') {
            Some((id, mac)) => (id, Some(mac)),
            None => (text, None),
        };
        let id = Identifier::parse_id(id)?;
        match (&self.key, mac) {
            (None, None) => Ok(id),
            (None, Some(_)) => Err(Error::bad_request(
                "invalid identifier: no key is configured, so a MAC is not accepted",
            )),
            (Some(_), None) => Err(Error::bad_request("invalid identifier: the MAC is missing")),
            (Some(key), Some(mac)) => {
                let mac = unhex(mac)
                    .ok_or_else(|| Error::bad_request("invalid identifier: wrong MAC"))?;
                hmac::verify(key, id.0.as_bytes(), &mac)
                    .map_err(|_| Error::bad_request("invalid identifier: wrong MAC"))?;
                Ok(id)
            }
        }
    }
}

/// Lowercase hex of a byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Lowercase hex only, as `format` writes it: one spelling per MAC.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_identifiers() {
        let s = Signer::new(None);
        let id = s.create().unwrap();
        assert_eq!(id.as_str().len(), 32);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(s.create().unwrap(), id);
        assert_eq!(s.format(&id), id.as_str());
        assert_eq!(s.verify("abc-DEF-123").unwrap().as_str(), "abc-DEF-123");
        let long = "a".repeat(64);
        assert!(s.verify(&long).is_ok());
        for bad in [
            "",
            "../x",
            "..",
            "a/b",
            "a.b",
            "a\0b",
            "%2e%2e",
            "a b",
            "é",
            &"a".repeat(65),
            "abc:00",
        ] {
            let e = s.verify(bad).unwrap_err();
            assert_eq!(e.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn signed_identifiers() {
        let s = Signer::new(Some(b"k"));
        let id = s.create().unwrap();
        let text = s.format(&id);
        assert_eq!(text.len(), 32 + 1 + 64);
        assert_eq!(s.verify(&text).unwrap(), id);
        // Missing, forged, truncated, uppercased and swapped MACs.
        let (bare, mac) = text.split_once(':').unwrap();
        assert!(s.verify(bare).is_err());
        assert!(s.verify(&format!("{bare}:{}", "0".repeat(64))).is_err());
        assert!(s.verify(&format!("{bare}:{}", &mac[..63])).is_err());
        assert!(s.verify(&format!("{bare}:{}", &mac[..62])).is_err());
        assert!(s.verify(&format!("{bare}:{}", mac.to_uppercase())).is_err());
        let other = s.format(&s.create().unwrap());
        let other_mac = other.split_once(':').unwrap().1;
        assert!(s.verify(&format!("{bare}:{other_mac}")).is_err());
        // Another key's MAC.
        assert!(Signer::new(Some(b"j")).verify(&text).is_err());
    }

    #[test]
    fn known_mac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") is a
        // published test vector; only letters and spaces, so use the ID form.
        let s = Signer::new(Some(b"key"));
        let id = Identifier::parse_id("abc").unwrap();
        let expected =
            to_hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"key"), b"abc").as_ref());
        assert_eq!(s.format(&id), format!("abc:{expected}"));
        assert_eq!(
            to_hex(
                hmac::sign(
                    &hmac::Key::new(hmac::HMAC_SHA256, b"key"),
                    b"The quick brown fox jumps over the lazy dog"
                )
                .as_ref()
            ),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
