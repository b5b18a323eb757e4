//! `rtsp-toolkit relay URL` and `serve --relay NAME=URL` / `--publish PATH` without `--dir`: the live paths
//! in the `server` line (JSON and text), the upstream's state as `upstream` lines, credentials never printed,
//! a relay whose upstream is down answers 404 (not live) and keeps trying, and bad specs are usage errors.
//! The relay's media (third-party readers, a killed upstream, slow readers) is tested in
//! conformance/tests/server_relay.rs; publishing in conformance/tests/server_publish.rs.

mod support;

use std::time::{Duration, Instant};

use support::{lines, run, spawn};

#[test]
fn relay_of_an_unreachable_camera_lists_its_path_reports_it_down_and_prints_no_password() {
    let mut p = spawn(&[
        "relay",
        "rtsp://admin:s3cret@127.0.0.1:1/stream1",
        "--name",
        "door",
        "--port",
        "0",
        "--json",
    ]);
    let out = lines(p.0.stdout.take().unwrap());
    let err = support::drain(p.0.stderr.take().unwrap());
    let first: serde_json::Value = serde_json::from_str(&out.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(first["type"], "server");
    assert_eq!(first["urls"], serde_json::json!([]));
    let live = &first["live"][0];
    let address = first["address"].as_str().unwrap().to_owned();
    assert_eq!(live["url"], format!("rtsp://{address}/door"));
    assert_eq!(live["source"], "relay of rtsp://127.0.0.1:1/stream1");
    // The upstream is down: `upstream` lines with the reason, again after the back-off.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut downs = Vec::new();
    while downs.len() < 2 && Instant::now() < deadline {
        if let Ok(l) = out.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v["type"] == "upstream" {
                downs.push(v);
            }
        }
    }
    assert_eq!(downs.len(), 2, "two attempts within 10 s");
    assert!(downs
        .iter()
        .all(|d| d["up"] == false && d["path"] == "door" && d["reason"].is_string()));
    // Not live: a reader gets 404, and the probe says so.
    let probe = run(
        &["probe", &format!("rtsp://{address}/door"), "--json"],
        Duration::from_secs(20),
    );
    assert_ne!(probe.code(), 0);
    assert!(probe.stdout.contains("404"), "{}", probe.stdout);
    drop(p);
    let stderr = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let all: String = std::iter::from_fn(|| out.try_recv().ok())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !all.contains("s3cret") && !stderr.contains("s3cret"),
        "the password was printed"
    );
}

#[test]
fn serve_without_dir_needs_a_live_path_and_lists_them_in_text() {
    let r = run(&["serve", "--port", "0"], Duration::from_secs(10));
    assert_eq!(r.code(), 2);
    assert!(r.stderr.contains("--dir DIR is required"), "{}", r.stderr);
    let r = run(&["serve", "--relay", "cam", "--port", "0"], Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(r.stderr.contains("NAME=URL"), "{}", r.stderr);
    let r = run(&["relay", "http://127.0.0.1/x", "--port", "0"], Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.stderr);
    let mut p = spawn(&[
        "serve",
        "--publish",
        "live",
        "--relay",
        "cam=rtsp://127.0.0.1:1/x",
        "--port",
        "0",
    ]);
    let out = lines(p.0.stdout.take().unwrap());
    let text: Vec<String> = std::iter::from_fn(|| out.recv_timeout(Duration::from_secs(5)).ok())
        .take_while(|l| l != "Ctrl-C stops")
        .collect();
    let text = text.join("\n");
    assert!(text.contains("/cam  (relay of rtsp://127.0.0.1:1/x)"), "{text}");
    assert!(text.contains("/live  (publish here)"), "{text}");
    assert!(text.contains("serving live paths only (no --dir)"), "{text}");
    assert!(!text.contains("append ?play_count"), "no hint about files: {text}");
}
