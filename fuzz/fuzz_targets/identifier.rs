//! Identifier parsing and verification: never a panic, and nothing accepted
//! that could be more than one safe path component.
#![no_main]

use fileupload::model::identifier::{Identifier, Signer};
use libfuzzer_sys::fuzz_target;

fn safe(id: &Identifier) {
    let s = id.as_str();
    assert!(!s.is_empty() && s.len() <= 64, "length {}", s.len());
    assert!(
        s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "unsafe identifier {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = Identifier::parse_id(text) {
        safe(&id);
        assert_eq!(id.as_str(), text);
    }
    let bare = Signer::new(None);
    if let Ok(id) = bare.verify(text) {
        safe(&id);
        assert_eq!(bare.format(&id), text, "a bare identifier is its own text");
    }
    let keyed = Signer::new(Some(b"fuzz key"));
    match keyed.verify(text) {
        Ok(id) => {
            safe(&id);
            assert_eq!(
                keyed.format(&id),
                text,
                "only the one right MAC is accepted"
            );
        }
        Err(e) => assert_eq!(e.status(), 400),
    }
    // The right MAC of whatever ID the input starts with verifies; the
    // input as a MAC for a fixed ID does not (unless it is that MAC).
    if let Ok(id) = Identifier::parse_id(text.split(':').next().unwrap_or("")) {
        assert_eq!(keyed.verify(&keyed.format(&id)).ok(), Some(id.clone()));
        let forged = format!("fixed:{}", text.split(':').nth(1).unwrap_or(""));
        if let Ok(fixed) = Identifier::parse_id("fixed") {
            if forged != keyed.format(&fixed) {
                assert!(
                    keyed.verify(&forged).is_err(),
                    "forged MAC accepted: {forged}"
                );
            }
        }
    }
});
