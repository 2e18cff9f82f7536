//! The HTTP/1.1 request layer on arbitrary bytes, fed in arbitrary
//! pieces: never a panic, and the same head (or the same refusal) and the
//! same chunked body (or the same framing error) however a socket cuts
//! the bytes and however small the reader's buffer.
#![no_main]

use fileupload::front::http::codec::{Dechunker, HeadScan};
use libfuzzer_sys::fuzz_target;

fn head(data: &[u8], step: usize) -> String {
    let mut scan = HeadScan::default();
    let mut end = 0;
    loop {
        end = (end + step).min(data.len());
        match scan.scan(&data[..end]) {
            Ok(Some((head, used))) => {
                assert!(used <= end);
                return format!("{head:?} {used}");
            }
            Ok(None) if end == data.len() => return "incomplete".into(),
            Ok(None) => {}
            Err(e) => return format!("{e:?}"),
        }
    }
}

fn body(data: &[u8], step: usize, room: usize) -> (Vec<u8>, Option<bool>) {
    let mut dechunker = Dechunker::default();
    let mut out = vec![0; room];
    let mut decoded = Vec::new();
    for piece in data.chunks(step) {
        let mut at = 0;
        while at < piece.len() && !dechunker.is_done() {
            match dechunker.decode(&piece[at..], &mut out) {
                Ok((used, written)) => {
                    assert!(used > 0 || written > 0, "no progress");
                    at += used;
                    decoded.extend_from_slice(&out[..written]);
                }
                Err(_) => return (decoded, None),
            }
        }
    }
    let done = dechunker.is_done();
    (decoded, Some(done))
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let whole = head(data, data.len().max(1));
    assert_eq!(head(data, step), whole, "cut every {step} bytes");
    let whole = body(data, data.len().max(1), 1 << 16);
    assert_eq!(body(data, step, 1 << 16), whole, "cut every {step} bytes");
    assert_eq!(body(data, step, 3), whole, "into 3-byte buffers");
});
