//! The tus headers a client controls: `Upload-Metadata`, the digit-only
//! lengths and offsets, `Upload-Checksum`, base64. Never a panic, and what
//! is accepted is safe to echo and to store.
#![no_main]

use fileupload::model::http::HeaderValue;
use fileupload::model::tus::{decode_base64, parse_checksum, parse_digits, parse_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(metadata) = parse_metadata(&text) {
        // HEAD echoes the header as given: it must pass the header check.
        assert!(HeaderValue::new(metadata.raw.clone()).is_ok(), "{text:?}");
        for key in metadata.pairs.keys() {
            assert!(!key.is_empty());
            assert!(key.bytes().all(|b| b.is_ascii_graphic() && b != b','), "{key:?}");
        }
        if let Some(name) = metadata.filename() {
            assert!(!name.contains(['/', '\\']), "{name:?}");
            assert!(!name.chars().any(char::is_control), "{name:?}");
        }
        if let Some(kind) = metadata.content_type() {
            assert!(!kind.chars().any(char::is_control), "{kind:?}");
        }
    }
    if let Ok(n) = parse_digits("x", &text) {
        assert!(text.bytes().all(|b| b.is_ascii_digit()) && n <= i64::MAX as u64);
        assert_eq!(text.trim_start_matches('0').len(), n.to_string().trim_start_matches('0').len());
    }
    if let Ok(checksum) = parse_checksum(&text) {
        assert_eq!(checksum.expected.len(), checksum.algorithm.output_len());
    }
    if let Some(bytes) = decode_base64(&text) {
        assert_eq!(bytes.len(), text.len() / 4 * 3 - text.bytes().rev().take_while(|&b| b == b'=').count());
    }
});
