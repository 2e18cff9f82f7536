//! Query strings, percent-decoding, `Accept`, JSONP names, HTML escaping
//! and routing: never a panic, and the safety properties they promise.
#![no_main]

use fileupload::app::route;
use fileupload::model::http::{escape_html, parse_query, percent_decode, prefers_html, valid_callback};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let params = parse_query(&text);
    assert!(params.len() <= text.split('&').count());
    let decoded = percent_decode(&text);
    if !text.contains(['%', '+']) {
        assert_eq!(decoded, text, "nothing to decode");
    }
    assert!(
        decoded.len() <= text.len() * 3,
        "decoding only shrinks, or fixes invalid UTF-8"
    );
    let _ = prefers_html(&text);
    if valid_callback(&text) {
        let b = text.as_bytes();
        assert!(!b.is_empty() && b.len() <= 64);
        assert!(b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b'$');
        assert!(
            b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'),
            "callback {text:?} would be echoed into JavaScript"
        );
    }
    let escaped = escape_html(&text);
    assert!(
        !escaped.contains(['<', '>', '"', '\'']),
        "unescaped: {escaped:?}"
    );
    for method in ["GET", "POST", "DELETE", "PUT"] {
        let (path, query) = text.split_once('?').unwrap_or((&text, ""));
        let _ = route(method, path, query);
    }
});
