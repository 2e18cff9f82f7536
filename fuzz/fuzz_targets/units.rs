//! Sizes and durations from the command line and the environment: never a
//! panic or an overflow, and what parses means what it says.
#![no_main]

use fileupload::model::units::{parse_duration, parse_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(bytes)) = parse_size(text) {
        assert!(bytes > 0, "0 is no limit, never Some(0)");
        let digits: String = text
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let number: u64 = digits.parse().unwrap_or(0);
        assert!(bytes >= number, "{text:?} gave {bytes}");
        assert_eq!(bytes % number.max(1), 0, "{text:?} gave {bytes}");
    }
    if let Ok(d) = parse_duration(text) {
        let digits: String = text
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let number: u64 = digits.parse().unwrap_or(0);
        assert!(
            d.as_secs() >= number && d.subsec_nanos() == 0,
            "{text:?} gave {d:?}"
        );
    }
});
