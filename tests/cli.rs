//! The command line, run as the built binary: identifiers with and without
//! a key, status/path/clear/list/gc over a pool an `App` wrote, and the
//! start-up errors (exit 2, one line). What needs a daemon, a mount or a
//! socket stays in `scripts/test-cli.sh`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

use fileupload::Pool;
use fileupload::app::intercept::Limits;
use fileupload::app::render::render;
use fileupload::app::{App, route};
use fileupload::model::http::Request;
use fileupload::model::identifier::{Signer, to_hex};
use serde_json::Value;

use common::TempDir as Dir;

/// `fileupload ARGS` with a clean environment as far as the program's own
/// variables go, and `env` added.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fileupload"));
    for (name, _) in std::env::vars() {
        if name.starts_with("FILEUPLOAD_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `fileupload --directory POOL ARGS`.
fn fu(pool: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["--directory", pool.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, env)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Uploads one file through the core, as the daemon would, into `pool`.
fn upload(pool: &Path, key: Option<&[u8]>, id: Option<&str>, data: &[u8]) -> Value {
    let app = App::new(
        Pool::open(pool, Signer::new(key)).unwrap(),
        Limits::default(),
        true,
        1,
    );
    let mut body =
        b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"d.txt\"\r\n\r\n".to_vec();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--B--\r\n");
    let query = id
        .map(|id| format!("X-Progress-ID={id}"))
        .unwrap_or_default();
    let mut reader = body.as_slice();
    let r = render(app.handle(
        route("POST", "/upload", &query),
        Request {
            method: "POST".into(),
            path: "/upload".into(),
            query,
            headers: vec![(
                "Content-Type".into(),
                "multipart/form-data; boundary=B".into(),
            )],
            content_length: Some(body.len() as u64),
            body: &mut reader,
            interrupt: None,
        },
    ));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn identifiers_without_a_key() {
    let dir = Dir::new("id");
    let pool = dir.pool();
    let out = fu(&pool, &["id", "new"], &[]);
    assert_eq!(code(&out), 0);
    let id = stdout(&out).trim().to_owned();
    assert!(is_hex(&id, 32), "id new printed [{id}]");
    assert_ne!(stdout(&fu(&pool, &["id", "new"], &[])).trim(), id);
    assert_eq!(code(&fu(&pool, &["id", "check", &id], &[])), 0);
    let too_long = "a".repeat(65);
    let with_mac = format!("{id}:00");
    for bad in ["../x", "", "a.b", &with_mac, &too_long] {
        let out = fu(&pool, &["id", "check", bad], &[]);
        assert_eq!(code(&out), 1, "id check [{bad}]");
        assert!(
            stderr(&out).contains("invalid identifier"),
            "[{bad}]: {}",
            stderr(&out)
        );
    }
    assert_eq!(code(&fu(&pool, &["status", "../etc"], &[])), 1);
}

#[test]
fn identifiers_with_a_key() {
    let dir = Dir::new("key");
    let pool = dir.pool();
    let key = [("FILEUPLOAD_KEY", "s3cret")];
    let sid = stdout(&fu(&pool, &["id", "new"], &key)).trim().to_owned();
    let (id, mac) = sid.split_once(':').unwrap();
    assert!(
        is_hex(id, 32) && is_hex(mac, 64),
        "signed id new printed [{sid}]"
    );
    // The MAC is HMAC-SHA256 of the ID under the key.
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret"),
        id.as_bytes(),
    );
    assert_eq!(mac, to_hex(tag.as_ref()));
    let check = |text: &str, env: &[(&str, &str)]| code(&fu(&pool, &["id", "check", text], env));
    assert_eq!(check(&sid, &key), 0);
    assert_eq!(check(id, &key), 1, "missing MAC accepted");
    assert_eq!(
        check(&format!("{id}:{}", "0".repeat(64)), &key),
        1,
        "forged MAC accepted"
    );
    assert_eq!(check(&sid[..96], &key), 1, "truncated MAC accepted");
    let other = stdout(&fu(&pool, &["id", "new"], &key)).trim().to_owned();
    let other_mac = other.split_once(':').unwrap().1;
    assert_eq!(
        check(&format!("{id}:{other_mac}"), &key),
        1,
        "swapped MAC accepted"
    );
    assert_eq!(
        check(&sid, &[("FILEUPLOAD_KEY", "other")]),
        1,
        "another key's MAC accepted"
    );
    assert_eq!(check(&sid, &[]), 1, "a MAC accepted without a key");

    // A key file wins over the variable, and is refused when others can
    // read it.
    let file = dir.0.join("key");
    fs::write(&file, "s3cret\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let file = file.to_str().unwrap();
    let ignored = [("FILEUPLOAD_KEY", "ignored")];
    assert_eq!(
        code(&fu(
            &pool,
            &["--key-file", file, "id", "check", &sid],
            &ignored
        )),
        0
    );
    let from_env = [("FILEUPLOAD_KEY_FILE", file), ("FILEUPLOAD_KEY", "ignored")];
    assert_eq!(
        check(&sid, &from_env),
        0,
        "key file from the environment not used"
    );
    fs::set_permissions(file, fs::Permissions::from_mode(0o604)).unwrap();
    let out = fu(&pool, &["--key-file", file, "id", "new"], &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("accessible by other users"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_path_clear_list_gc() {
    let dir = Dir::new("pool");
    let pool = dir.pool();
    let key = [("FILEUPLOAD_KEY", "s3cret")];
    let signed = upload(&pool, Some(b"s3cret"), None, b"data");
    let sid = signed["identifier"].as_str().unwrap().to_owned();
    let plain = upload(&pool, None, Some("plain"), b"more");

    let out = fu(&pool, &["status", &sid], &key);
    assert_eq!(code(&out), 0);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).unwrap(),
        signed
    );
    let out = fu(&pool, &["path", &sid], &key);
    assert_eq!(code(&out), 0);
    let path = PathBuf::from(stdout(&out).trim_end());
    assert!(path.is_absolute(), "path not absolute: {}", path.display());
    assert_eq!(fs::read(&path).unwrap(), b"data");
    assert_eq!(
        code(&fu(&pool, &["path", &sid, "1"], &key)),
        1,
        "path of a missing file"
    );
    assert_eq!(code(&fu(&pool, &["path", "never-uploaded"], &[])), 1);
    let out = fu(&pool, &["status", "never-uploaded"], &[]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, "{\"state\":\"starting\"}\n")
    );

    let out = fu(&pool, &["list"], &[]);
    assert_eq!(code(&out), 0);
    let listed: Vec<Value> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "one line per upload");
    assert!(listed.contains(&plain), "{listed:?}");

    let out = fu(&pool, &["gc", "--older-than", "1h"], &[]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, ""),
        "gc kept recent uploads"
    );
    thread::sleep(Duration::from_millis(1100));
    let out = fu(&pool, &["gc", "--older-than", "1s"], &[]);
    assert_eq!(code(&out), 0);
    let mut gone: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    gone.sort();
    let mut want = vec![
        sid.split_once(':').unwrap().0.to_owned(),
        "plain".to_owned(),
    ];
    want.sort();
    assert_eq!(gone, want);
    let left: Vec<_> = fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "pool not empty after gc: {left:?}");
    assert_eq!(code(&fu(&pool, &["clear", "never-uploaded"], &[])), 0);
    upload(&pool, None, Some("again"), b"x");
    assert_eq!(code(&fu(&pool, &["clear", "again"], &[])), 0);
    assert!(!pool.join("again").exists());
}

/// A start-up error: exit status 2, one line on stderr, no panic.
fn bad_start(what: &str, args: &[&str], env: &[(&str, &str)]) {
    let out = run(args, env);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.ends_with('\n'), "{what}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{what}: {err}"
    );
}

#[test]
fn start_up_errors() {
    let dir = Dir::new("start");
    let pool = dir.pool();
    let pool = pool.to_str().unwrap();
    let nope = dir.0.join("nope");
    let file = dir.0.join("file");
    fs::write(&file, "").unwrap();
    bad_start(
        "bad size",
        &["--directory", pool, "--max-size", "12X", "list"],
        &[],
    );
    bad_start(
        "bad size from env",
        &["--directory", pool, "list"],
        &[("FILEUPLOAD_MAX_SIZE", "lots")],
    );
    bad_start(
        "unreadable key file",
        &[
            "--directory",
            pool,
            "--key-file",
            nope.to_str().unwrap(),
            "list",
        ],
        &[],
    );
    bad_start(
        "pool that cannot be created",
        &["--directory", "/proc/self/nope", "list"],
        &[],
    );
    bad_start(
        "pool that is a file",
        &["--directory", file.to_str().unwrap(), "list"],
        &[],
    );
    bad_start(
        "bad duration",
        &["--directory", pool, "gc", "--older-than", "soon"],
        &[],
    );
    bad_start(
        "bad listen address",
        &["--directory", pool, "serve", "--listen", "nowhere"],
        &[],
    );
    // The flag wins over the variable.
    let out = run(
        &["--directory", pool, "--max-size", "1M", "list"],
        &[("FILEUPLOAD_MAX_SIZE", "lots")],
    );
    assert_eq!(code(&out), 0, "flag did not win: {}", stderr(&out));
    // The pool directory is created 0700.
    let new = dir.0.join("newpool");
    assert_eq!(
        code(&run(&["--directory", new.to_str().unwrap(), "list"], &[])),
        0
    );
    assert_eq!(
        fs::metadata(&new).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// `fileupload metrics`: the pool's gauges in the Prometheus text format,
/// as `/metrics` gives them; a pool it cannot use is an error, never a
/// page of zeros.
#[test]
fn metrics_of_the_pool() {
    let dir = Dir::new("metrics");
    let pool = dir.pool();
    upload(&pool, None, Some("m1"), b"four");
    upload(&pool, None, Some("m2"), b"and eleven.");
    fs::create_dir(pool.join("m3")).unwrap();
    let out = fu(&pool, &["metrics"], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let samples = common::parse_metrics(&stdout(&out));
    let gauges: Vec<(&str, f64)> = samples.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    assert_eq!(
        gauges,
        [
            (r#"fileupload_pool_buckets{state="done"}"#, 2.0),
            (r#"fileupload_pool_buckets{state="error"}"#, 0.0),
            (r#"fileupload_pool_buckets{state="starting"}"#, 1.0),
            (r#"fileupload_pool_buckets{state="uploading"}"#, 0.0),
            ("fileupload_pool_stored_bytes", 15.0),
        ]
    );

    // A status document that cannot be read: exit 1 and why.
    fs::write(pool.join("m2").join("status.json"), "{not json").unwrap();
    let out = fu(&pool, &["metrics"], &[]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("status is damaged"),
        "{}",
        stderr(&out)
    );
    // A pool that is no directory: a start-up error.
    let file = dir.0.join("file");
    fs::write(&file, "").unwrap();
    bad_start(
        "metrics of a pool that is a file",
        &["--directory", file.to_str().unwrap(), "metrics"],
        &[],
    );
}
