//! The whole upload path, `App::handle` over a real pool directory, fed an
//! arbitrary body and boundary: never a panic, only the expected statuses,
//! a JSON answer, and nothing in the bucket but the pool's own files.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use fileupload::Pool;
use fileupload::app::render::render;
use fileupload::app::{App, Route};
use fileupload::model::http::Request;
use fileupload::model::identifier::Signer;
use fileupload::app::intercept::Limits;
use libfuzzer_sys::fuzz_target;

fn app() -> &'static (App, PathBuf) {
    static APP: OnceLock<(App, PathBuf)> = OnceLock::new();
    APP.get_or_init(|| {
        // scripts/fuzz gives a directory on a tmpfs (every run writes files)
        // and removes it afterwards.
        let base = std::env::var_os("FILEUPLOAD_FUZZ_POOL")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("fileupload-fuzz-{}", std::process::id()));
        let pool = Pool::open(&dir, Signer::new(None)).expect("pool");
        let limits = Limits {
            max_size: Some(64 * 1024),
            max_files: 3,
            idle_timeout: None,
        };
        (App::new(pool, limits, true, 4), dir.join("fuzz"))
    })
}

fuzz_target!(|data: &[u8]| {
    // Layout: boundary length, boundary, body.
    let Some((&blen, rest)) = data.split_first() else {
        return;
    };
    let blen = usize::from(blen % 80).min(rest.len());
    let (boundary, body) = rest.split_at(blen);
    let boundary = String::from_utf8_lossy(boundary).replace(['"', '\r', '\n'], "");
    let (app, bucket) = app();
    let mut reader = body;
    // The route every request of this target takes.
    let response = render(app.handle(Route::Upload, Request {
        method: "POST".into(),
        path: "/upload".into(),
        query: "X-Progress-ID=fuzz".into(),
        headers: vec![(
            "Content-Type".into(),
            format!("multipart/form-data; boundary=\"{boundary}\""),
        )],
        content_length: Some(body.len() as u64),
        body: &mut reader,
        interrupt: None,
    }));
    assert!(
        matches!(response.status, 201 | 400 | 413),
        "status {}",
        response.status
    );
    let json: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON answer");
    assert_eq!(
        json["state"],
        if response.status == 201 {
            "done"
        } else {
            "error"
        }
    );
    if let Ok(entries) = std::fs::read_dir(bucket) {
        for entry in entries {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                name == "lock" || name == "status.json" || name.parse::<usize>().is_ok(),
                "unexpected file {name} in the bucket"
            );
        }
    }
});
