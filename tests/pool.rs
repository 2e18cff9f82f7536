//! The pool and the core, driven in memory: no sockets, real files.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use fileupload::app::intercept::Limits;
use fileupload::app::render::render;
use fileupload::app::{App, route};
use fileupload::model::http::{Request, Response};
use fileupload::model::identifier::{Identifier, Signer};
use fileupload::model::status::State;
use fileupload::{Error, Pool};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fileupload-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn id(text: &str) -> Identifier {
    Identifier::parse_id(text).unwrap()
}

fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, data) in parts {
        b.extend_from_slice(
            format!("--BB\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = filename {
            b.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
        }
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--BB--\r\n");
    b
}

fn request<'a>(
    method: &str,
    url: &str,
    body: &'a mut dyn Read,
    length: Option<u64>,
) -> Request<'a> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: vec![(
            "content-type".into(),
            "multipart/form-data; boundary=BB".into(),
        )],
        content_length: length,
        body,
        interrupt: None,
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn upload_status_clear_in_memory() {
    let dir = temp_dir("memory");
    let app = App::new(
        Pool::open(&dir, Signer::new(None)).unwrap(),
        Limits::default(),
        true,
        4,
    );
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let b = body(&[("f", Some("data.bin"), &data), ("k", None, b"v")]);
    let len = b.len() as u64;
    let r = ask(
        &app,
        request("POST", "/upload?X-Progress-ID=mem", &mut &b[..], Some(len)),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let d = json(&r.body);
    assert_eq!(d["state"], "done");
    assert_eq!(d["received"], len);
    assert_eq!(d["files"][0]["length"], 2_000_000);
    assert_eq!(d["fields"]["k"][0], "v");
    assert_eq!(fs::read(dir.join("mem/0")).unwrap(), data);
    let r = ask(
        &app,
        request(
            "GET",
            "/upload/status?X-Progress-ID=mem",
            &mut &b""[..],
            None,
        ),
    );
    assert_eq!(json(&r.body), d);
    let r = ask(
        &app,
        request("DELETE", "/upload?X-Progress-ID=mem", &mut &b""[..], None),
    );
    assert_eq!(json(&r.body), serde_json::json!({"success": true}));
    assert!(!dir.join("mem").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exactly_one_of_two_simultaneous_writers_wins() {
    let dir = temp_dir("race");
    let pool = Arc::new(Pool::open(&dir, Signer::new(None)).unwrap());
    for round in 0..50 {
        let (start, begun) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, start, begun) = (pool.clone(), start.clone(), begun.clone());
                thread::spawn(move || {
                    start.wait();
                    let upload = pool.begin_upload(&id("same"), Some(1));
                    // Neither finishes before both have begun: the two
                    // overlap for sure, however late a thread is scheduled.
                    begun.wait();
                    upload.map(|u| u.finish().map(|_| ()))
                })
            })
            .collect();
        let results: Vec<_> = writers.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(e) if e.status() == 409))
            .count();
        assert_eq!((won, conflicts), (1, 1), "round {round}: {results:?}");
        if round % 10 == 0 {
            pool.clear_upload_bucket(&id("same")).unwrap();
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clearing_an_upload_in_progress_stops_its_writer() {
    let dir = temp_dir("clear");
    let pool = Arc::new(Pool::open(&dir, Signer::new(None)).unwrap());
    let mut upload = pool.begin_upload(&id("busy"), None).unwrap();
    let mut file = upload.create_file("f", "a.txt", "text/plain").unwrap();
    file.write(b"partial").unwrap();
    let clearer = {
        let pool = pool.clone();
        thread::spawn(move || pool.clear_upload_bucket(&id("busy")))
    };
    thread::sleep(Duration::from_millis(300));
    // The writer notices at its next publication.
    let err = upload.progress(7).unwrap_err();
    assert_eq!(err.status(), 410);
    upload.fail(&err);
    clearer.join().unwrap().unwrap();
    assert!(
        !dir.join("busy").exists(),
        "{:?}",
        fs::read_dir(dir.join("busy")).map(|d| d.count())
    );
    assert_eq!(
        pool.access_upload_bucket(&id("busy"))
            .status()
            .unwrap()
            .state,
        State::Starting
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dead_writer_is_reported_interrupted_and_its_parts_removed() {
    let dir = temp_dir("dead");
    let pool = Pool::open(&dir, Signer::new(None)).unwrap();
    // What a killed writer leaves: status `uploading`, a partial file, and a
    // lock file nobody holds.
    let bucket = dir.join("dead");
    fs::create_dir(&bucket).unwrap();
    fs::write(bucket.join("lock"), b"").unwrap();
    // Killed after its first file was complete: that file is no upload's
    // either, and must not pass for one.
    fs::write(bucket.join("0"), b"whole").unwrap();
    fs::write(bucket.join("1.part"), b"half").unwrap();
    fs::write(
        bucket.join("status.json"),
        br#"{"identifier":"dead","state":"uploading","received":9,"size":20,"files":[],"fields":{}}"#,
    )
    .unwrap();
    let status = pool.access_upload_bucket(&id("dead")).status().unwrap();
    assert_eq!(status.state, State::Error);
    assert_eq!(status.error.as_deref(), Some("upload interrupted"));
    let mut left: Vec<_> = fs::read_dir(&bucket)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["lock", "status.json"]);
    assert_eq!(
        pool.gc(Duration::from_secs(3600)).unwrap(),
        vec![id("dead")]
    );
    assert!(!bucket.exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_live_upload_is_neither_interrupted_nor_collected() {
    let dir = temp_dir("live");
    let pool = Pool::open(&dir, Signer::new(None)).unwrap();
    let upload = pool.begin_upload(&id("live"), Some(5)).unwrap();
    assert_eq!(
        pool.access_upload_bucket(&id("live"))
            .status()
            .unwrap()
            .state,
        State::Uploading
    );
    assert!(pool.gc(Duration::ZERO).unwrap().is_empty());
    assert!(dir.join("live").exists());
    upload.fail(&Error::bad_request("test over"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_upload_leaves_a_finished_one_alone() {
    let dir = temp_dir("keep");
    let pool = Pool::open(&dir, Signer::new(None)).unwrap();
    let mut upload = pool.begin_upload(&id("keep"), None).unwrap();
    let mut f = upload.create_file("f", "a", "text/plain").unwrap();
    f.write(b"kept").unwrap();
    upload.complete_file(f).unwrap();
    upload.finish().unwrap();
    pool.record_failure(&id("keep"), Some(1 << 40), &Error::too_large("too big"))
        .unwrap();
    let bucket = pool.access_upload_bucket(&id("keep"));
    assert!(bucket.is_complete().unwrap());
    assert_eq!(
        fs::read(bucket.filename(0).unwrap().unwrap()).unwrap(),
        b"kept"
    );
    let d = bucket.description().unwrap();
    assert_eq!(
        d.files()[0].path.as_deref(),
        Some(dir.canonicalize().unwrap().join("keep/0").to_str().unwrap())
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bucket_replaced_by_a_symlink_is_not_followed() {
    let dir = temp_dir("link");
    let outside = temp_dir("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("status.json"), br#"{"state":"done"}"#).unwrap();
    let pool = Pool::open(&dir, Signer::new(None)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("evil")).unwrap();
    assert_eq!(
        pool.begin_upload(&id("evil"), None).unwrap_err().status(),
        500
    );
    assert_eq!(
        pool.access_upload_bucket(&id("evil"))
            .status()
            .unwrap_err()
            .status(),
        500
    );
    assert_eq!(
        pool.clear_upload_bucket(&id("evil")).unwrap_err().status(),
        500
    );
    let left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("status.json")]);
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn status_reads_are_whole_and_go_forward_while_a_writer_publishes() {
    let dir = temp_dir("torn");
    let pool = Arc::new(Pool::open(&dir, Signer::new(None)).unwrap());
    let mut upload = pool.begin_upload(&id("torn"), None).unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..3000 {
                    let s = pool.access_upload_bucket(&id("torn")).status().unwrap();
                    let r = s.received.unwrap_or(0);
                    assert!(r >= last, "received went from {last} to {r}");
                    last = r;
                    if s.state == State::Done {
                        break;
                    }
                }
            })
        })
        .collect();
    for n in 1..=3000u64 {
        // Steps of 1 MiB, so that every call publishes.
        upload.progress(n << 20).unwrap();
    }
    upload.finish().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// Routes, answers and renders a request as a front end does.
fn ask(app: &App, request: Request<'_>) -> Response {
    let route = route(&request.method, &request.path, &request.query);
    render(app.handle(route, request))
}
