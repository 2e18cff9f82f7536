//! The FastCGI record layer on arbitrary bytes, fed in arbitrary pieces:
//! never a panic, and the same records (or the same error) however the
//! bytes are cut, as a socket may cut them.
#![no_main]

use fileupload::front::fastcgi::record::{Decoder, decode_pairs};
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], step: usize) -> (Vec<String>, bool) {
    let mut decoder = Decoder::default();
    let mut records = Vec::new();
    for piece in data.chunks(step.max(1)) {
        decoder.push(piece);
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => records.push(format!("{record:?}")),
                Ok(None) => break,
                Err(_) => return (records, true),
            }
        }
    }
    (records, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let whole = decode(data, data.len());
    assert_eq!(decode(data, usize::from(step)), whole, "cut every {step} bytes");
    assert_eq!(decode(data, 1), whole, "byte by byte");
    // Name-value pairs, as in PARAMS and GET_VALUES.
    let _ = decode_pairs(data);
});
