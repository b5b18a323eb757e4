//! `rtsp-toolkit check` end to end on loopback: a list file and URL
//! arguments mixing a good stream (our embedded server), a wrong password
//! (GStreamer's server with Digest auth), a closed port and a silent server
//! (accepts the connection and never answers). Each row gets its status, in
//! input order; any failure is exit 1, all good is exit 0; `--json` rows and
//! the summary parse; credentials never show; `--jobs` bounds concurrency.
//!
//! Every process is bounded in time and every file is under a per-test
//! temporary directory.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::*;

/// A server that accepts connections and never answers, for `hold`; the
/// connections are closed when it ends.
fn silent_server(hold: Duration) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = thread::spawn(move || {
        let end = Instant::now() + hold;
        let mut held: Vec<TcpStream> = Vec::new();
        while Instant::now() < end {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, thread)
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The table's rows (after the header, before the blank line): (URL, status, the whole line).
fn table_rows(stdout: &str) -> Vec<(String, String, String)> {
    let mut lines = stdout.lines();
    let header = lines.next().expect("a header line");
    assert!(header.starts_with("URL ") && header.contains("STATUS"), "{header}");
    lines
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let url = words.next().unwrap().to_owned();
            let status = words.next().unwrap().to_owned();
            (url, status, l.to_owned())
        })
        .collect()
}

#[test]
fn mixed_urls_get_a_status_each_and_exit_1() {
    let serve = Serve::start();
    let gst = rtsp_toolkit_conformance::peers::GstServer::start(Some(("bob", "right", "digest")));
    let (silent_port, silent) = silent_server(Duration::from_secs(20));
    let closed = closed_port();

    let good = serve.url("h264_aac.mp4");
    let wrong_pw = gst.url_with("bob:SECRETPW", "h264_aac.mp4");
    let right_pw = gst.url_with("bob:right", "h265.mp4");
    let refused = format!("rtsp://127.0.0.1:{closed}/x");
    let silent_url = format!("rtsp://127.0.0.1:{silent_port}/silent");
    let dir = temp_dir("check-mixed");
    let list = dir.join("cameras.txt");
    std::fs::write(
        &list,
        format!("# the site's cameras\n{good}   # lobby\n\n{wrong_pw}\n{refused}\n"),
    )
    .unwrap();
    let list = list.to_str().unwrap();
    let common = ["--duration", "1", "--timeout", "2", "--jobs", "3"];

    let mut args = vec!["check", list, &silent_url, &right_pw];
    args.extend(common);
    let start = Instant::now();
    let r = run(&args, Duration::from_secs(60));
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(30));
    let rows = table_rows(&r.stdout);
    let clean = |u: &str| u.replace("bob:SECRETPW@", "").replace("bob:right@", "");
    let expected = [
        (clean(&good), "ok"),
        (clean(&wrong_pw), "auth"),
        (refused.clone(), "refused"),
        (silent_url.clone(), "timeout"),
        (clean(&right_pw), "ok"),
    ];
    let got: Vec<(String, &str)> = rows.iter().map(|(u, s, _)| (u.clone(), s.as_str())).collect();
    assert_eq!(got, expected, "rows in input order:\n{}", r.stdout);
    let good_line = &rows[0].2;
    for part in ["H264,AAC", "320x240", "25.00", "0.00 %"] {
        assert!(good_line.contains(part), "{part} in {good_line}");
    }
    assert!(rows[1].2.contains("401"), "{}", rows[1].2);
    assert!(rows[2].2.to_lowercase().contains("refused"), "{}", rows[2].2);
    assert!(rows[3].2.contains("OPTIONS"), "{}", rows[3].2);
    assert!(
        rows[4].2.contains("H265") && rows[4].2.contains("320x240"),
        "{}",
        rows[4].2
    );
    assert!(
        r.stdout.contains("2 of 5 passed; failed: 1 auth, 1 refused, 1 timeout"),
        "{}",
        r.stdout
    );
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("SECRETPW") && !text.contains("bob:"), "{text}");
    }

    // --json: one object per URL in input order, then the summary.
    args.push("--json");
    let r = run(&args, Duration::from_secs(60));
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(!r.stdout.contains("SECRETPW") && !r.stderr.contains("SECRETPW"));
    let lines = r.json();
    assert_eq!(lines.len(), 6, "{}", r.stdout);
    let (checks, summary) = lines.split_at(5);
    let got: Vec<(String, &str)> = checks
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "check");
            (c["url"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, expected);
    for key in [
        "ok",
        "error",
        "note",
        "first_frame_s",
        "play_s",
        "codecs",
        "width",
        "height",
        "frame_rate",
        "bitrate_bps",
        "frames",
        "rtp_packets",
        "lost",
        "loss_percent",
        "session_elapsed_s",
    ] {
        for c in checks {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
    let ok = &checks[0];
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["error"], Value::Null);
    assert_eq!(ok["codecs"], serde_json::json!(["H264", "MPEG4-GENERIC"]));
    assert_eq!((ok["width"].as_u64(), ok["height"].as_u64()), (Some(320), Some(240)));
    assert!((ok["frame_rate"].as_f64().unwrap() - 25.0).abs() < 0.5, "{ok}");
    assert!(ok["frames"].as_u64().unwrap() > 20, "{ok}");
    assert!(ok["first_frame_s"].as_f64().unwrap() >= ok["play_s"].as_f64().unwrap());
    assert!(ok["bitrate_bps"].as_f64().unwrap() > 100_000.0);
    assert_eq!(ok["lost"], 0);
    for c in &checks[1..4] {
        assert_eq!(c["ok"], false);
        assert!(c["error"].is_string(), "{c}");
        assert_eq!(c["width"], Value::Null);
        assert_eq!(c["frames"], 0);
    }
    assert!(checks[1]["error"].as_str().unwrap().contains("401"));
    let s = &summary[0];
    assert_eq!(s["type"], "check_summary");
    assert_eq!(
        (s["urls"].as_u64(), s["passed"].as_u64(), s["failed"].as_u64()),
        (Some(5), Some(2), Some(3))
    );
    assert_eq!(
        s["statuses"],
        serde_json::json!({"ok": 2, "auth": 1, "refused": 1, "timeout": 1})
    );
    assert!(s["elapsed_s"].as_f64().unwrap() > 0.0);

    drop(silent.join());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn all_good_exits_0() {
    let serve = Serve::start();
    let urls = [
        serve.url("h264_aac.mp4"),
        serve.url("h265_aac.mkv"),
        serve.url("tone.aac"),
    ];
    let r = run(
        &["check", &urls[0], &urls[1], &urls[2], "--duration", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let rows = table_rows(&r.stdout);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(_, s, _)| s == "ok"), "{}", r.stdout);
    assert!(
        rows[1].2.contains("H265,AAC") && rows[1].2.contains("320x240"),
        "{}",
        rows[1].2
    );
    // Audio only: no resolution and no video frame rate.
    assert!(rows[2].2.contains(" AAC ") && !rows[2].2.contains('x'), "{}", rows[2].2);
    assert!(r.stdout.contains("3 of 3 passed"), "{}", r.stdout);

    let r = run(
        &["check", &urls[0], "--duration", "1", "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let lines = r.json();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[1]["failed"], 0);
}

#[test]
fn jobs_bound_the_sessions_at_once() {
    // Three silent servers and a one-second timeout: one at a time takes three
    // timeouts, three at a time one.
    let servers: Vec<_> = (0..3).map(|_| silent_server(Duration::from_secs(20))).collect();
    let urls: Vec<String> = servers.iter().map(|(p, _)| format!("rtsp://127.0.0.1:{p}/x")).collect();
    let elapsed = |jobs: &str| {
        let mut args = vec!["check", "--json", "--timeout", "1", "--jobs", jobs];
        args.extend(urls.iter().map(String::as_str));
        let r = run(&args, Duration::from_secs(30));
        assert_eq!(r.code(), 1, "{r:?}");
        let lines = r.json();
        assert!(lines[..3].iter().all(|l| l["status"] == "timeout"), "{}", r.stdout);
        lines[3]["elapsed_s"].as_f64().unwrap()
    };
    let serial = elapsed("1");
    assert!(serial >= 3.0, "{serial}");
    let parallel = elapsed("3");
    assert!(parallel < 2.5, "{parallel}");
    for (_, t) in servers {
        drop(t.join());
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = temp_dir("check-usage");
    let bad_list = dir.join("bad.txt");
    std::fs::write(&bad_list, "rtsp://127.0.0.1/a\nhttp://user:SECRETPW@cam/b\n").unwrap();
    let empty_list = dir.join("empty.txt");
    std::fs::write(&empty_list, "# nothing yet\n\n").unwrap();
    for args in [
        vec!["check"],
        vec!["check", "/nonexistent/cameras.txt"],
        vec!["check", bad_list.to_str().unwrap()],
        vec!["check", empty_list.to_str().unwrap()],
        vec!["check", "rtsp://127.0.0.1/a", "--jobs", "0"],
        vec!["check", "rtsp://127.0.0.1/a", "--duration", "0"],
        vec!["check", "rtsp://127.0.0.1/a", "--transport", "sctp"],
    ] {
        let r = run(&args, Duration::from_secs(10));
        assert_eq!(r.code(), 2, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        assert!(!r.stderr.contains("SECRETPW"), "{}", r.stderr);
    }
    let r = run(&["check", bad_list.to_str().unwrap()], Duration::from_secs(10));
    assert!(r.stderr.contains("bad.txt:2:"), "{}", r.stderr);
    // A URL the client cannot use is a row, not a usage error.
    let r = run(
        &["check", "rtsp://127.0.0.1:99999/x", "--json"],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 1, "{r:?}");
    assert_eq!(r.json()[0]["status"], "bad_url");
    let _ = std::fs::remove_dir_all(dir);
}
