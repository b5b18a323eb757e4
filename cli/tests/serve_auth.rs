//! `rtsp-toolkit serve --users FILE`: the banner says authentication is on
//! (and never shows a password), `probe` gets in with the right password and
//! is refused with a wrong one, and no password reaches the server's log.

mod support;

use std::time::Duration;

use support::{drain, lines, media_dir, run, spawn, temp_dir};

#[test]
fn serve_with_users_asks_for_credentials_and_never_prints_passwords() {
    let dir = temp_dir("serve-users");
    let users = dir.join("users");
    std::fs::write(&users, "# who may watch\nalice:PW-SECRET-1\n\nbob:PW-SECRET-2\n").unwrap();
    let media = media_dir();
    let mut p = spawn(&[
        "serve",
        "--dir",
        media.to_str().unwrap(),
        "--port",
        "0",
        "--users",
        users.to_str().unwrap(),
        "--realm",
        "test cams",
        "-vv",
    ]);
    let stderr = drain(p.0.stderr.take().unwrap());
    let out = lines(p.0.stdout.take().unwrap());
    let mut banner = Vec::new();
    while let Ok(line) = out.recv_timeout(Duration::from_secs(10)) {
        let last = line.starts_with("append ?play_count");
        banner.push(line);
        if last {
            break;
        }
    }
    let port: u16 = banner[0]
        .strip_prefix("listening on rtsp://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{banner:?}"));
    let text = banner.join("\n");
    assert!(
        text.contains("authentication on: 2 users, realm \"test cams\", Digest SHA-256/MD5; OPTIONS is open"),
        "{text}"
    );
    assert!(!text.contains("PW-SECRET"), "{text}");

    let url = |userinfo: &str| format!("rtsp://{userinfo}@127.0.0.1:{port}/h264_aac.mp4");
    let r = run(
        &["probe", &url("alice:PW-SECRET-1"), "--frames", "10", "--quiet"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run(
        &["probe", &url("bob:PW-WRONG"), "--frames", "10", "--quiet"],
        Duration::from_secs(20),
    );
    assert_ne!(r.code(), 0, "{r:?}");
    assert!(r.stderr.contains("401"), "{r:?}");
    assert!(
        !r.stderr.contains("PW-WRONG") && !r.stdout.contains("PW-WRONG"),
        "{r:?}"
    );

    drop(p);
    let log = stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    assert!(log.contains("credentials refused"), "{log}");
    for secret in ["PW-SECRET", "PW-WRONG", "Authorization: Digest", "response="] {
        assert!(!log.contains(secret), "{secret} in the server's log:\n{log}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_with_a_bad_user_file_is_a_usage_error() {
    let dir = temp_dir("serve-bad-users");
    let users = dir.join("users");
    std::fs::write(&users, "alice\n").unwrap();
    let media = media_dir();
    let r = run(
        &[
            "serve",
            "--dir",
            media.to_str().unwrap(),
            "--port",
            "0",
            "--users",
            users.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{r:?}");
    assert!(r.stderr.contains("line 1"), "{r:?}");
    let _ = std::fs::remove_dir_all(dir);
}
