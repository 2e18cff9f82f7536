//! The multipart intercept's parser over arbitrary bytes, an arbitrary
//! boundary and arbitrary read sizes: it must never panic, must count every
//! byte it reads, and must give the same parts (or the same error status)
//! whatever the read sizes.
#![no_main]

use std::io::{self, Read};

use fileupload::model::multipart::Parser;
use libfuzzer_sys::fuzz_target;

/// Hands out the body in pieces whose sizes come from the input.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    turn: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = match self.sizes {
            [] => usize::MAX,
            sizes => usize::from(sizes[self.turn % sizes.len()]).max(1),
        };
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Parts = Vec<(String, Option<String>, Option<String>, Vec<u8>)>;

fn parse(body: &[u8], boundary: &str, sizes: &[u8], limit: Option<u64>) -> Result<Parts, u16> {
    let mut reader = Pieces {
        data: body,
        sizes,
        turn: 0,
    };
    let mut parser = Parser::new(&mut reader, boundary, limit);
    let mut parts = Vec::new();
    let result = (|| {
        while let Some(mut part) = parser.next_part()? {
            let mut data = Vec::new();
            while let Some(chunk) = parser.read_chunk(&mut part)? {
                data.extend_from_slice(&chunk);
            }
            parts.push((
                part.name.clone(),
                part.filename.clone(),
                part.content_type.clone(),
                data,
            ));
        }
        parser.finish()
    })();
    assert!(
        parser.received() <= body.len() as u64,
        "counted bytes never read"
    );
    if let Some(limit) = limit {
        assert!(
            result.is_err() || parser.received() <= limit,
            "limit not enforced"
        );
    }
    match result {
        Ok(()) => {
            assert_eq!(
                parser.received(),
                body.len() as u64,
                "a success reads the whole body"
            );
            Ok(parts)
        }
        Err(e) => {
            assert!(
                matches!(e.status(), 400 | 413),
                "unexpected status {}",
                e.status()
            );
            Err(e.status())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Layout: boundary length, boundary, read-size count, read sizes, body.
    let Some((&blen, rest)) = data.split_first() else {
        return;
    };
    let blen = usize::from(blen % 80).min(rest.len());
    let (boundary, rest) = rest.split_at(blen);
    let boundary = String::from_utf8_lossy(boundary);
    let Some((&slen, rest)) = rest.split_first() else {
        return;
    };
    let slen = usize::from(slen % 8).min(rest.len());
    let (sizes, body) = rest.split_at(slen);

    let limit = (body.len() > 16).then(|| body.len() as u64 / 2);
    let first = parse(body, &boundary, sizes, None);
    // The same body all at once, and byte by byte: the same outcome.
    assert_eq!(
        parse(body, &boundary, &[], None),
        first,
        "differs with one read"
    );
    assert_eq!(
        parse(body, &boundary, &[1], None),
        first,
        "differs byte by byte"
    );
    let _ = parse(body, &boundary, sizes, limit);
});
