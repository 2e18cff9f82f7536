//! The CGI environment (and FastCGI PARAMS) turned into a request, from
//! arbitrary name-value pairs: never a panic, and what is accepted says
//! what the variables said.
#![no_main]

use fileupload::front::cgi::head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Lines of NAME=VALUE, names from a list a web server really sets
    // chosen by the first byte, so that the fuzzer reaches them.
    const NAMES: [&str; 10] = [
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
        "CONTENT_LENGTH", "HTTP_X_PROGRESS_ID", "HTTP_ACCEPT", "HTTP_TRANSFER_ENCODING", "REQUEST_URI",
    ];
    let vars: Vec<(String, String)> = text
        .split('\n')
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            let name = match name.bytes().next() {
                Some(b) if usize::from(b) < NAMES.len() => NAMES[usize::from(b)].to_string(),
                _ => name.to_string(),
            };
            (name, value.to_string())
        })
        .collect();
    let lengths: Vec<&str> = vars
        .iter()
        .filter(|(n, _)| n == "CONTENT_LENGTH")
        .map(|(_, v)| v.as_str())
        .collect();
    if let Ok(request) = head(vars.clone()) {
        assert!(!request.method.bytes().any(|b| b.is_ascii_lowercase()), "{:?}", request.method);
        if let Some(n) = request.content_length {
            assert!(
                lengths.iter().any(|v| v.trim().parse::<u64>() == Ok(n)),
                "length {n} from {lengths:?}"
            );
        }
    }
});
