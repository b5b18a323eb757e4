//! `rtsp-toolkit capture` and `replay` end to end: a session against the
//! embedded server is recorded while `probe --json` output is printed, then
//! replayed offline; the replay's report (and every event line) equals the
//! live one, field by field. Also: stops, failed sessions, cut files, bad
//! files, and that credentials never reach the file or the output.
//!
//! Why the reports are equal, timings included: the capture holds every
//! input of the client with its instant, and the replay hands the same
//! inputs at the same offsets to a fresh client, which reads no clock; the
//! report's durations are all offsets from the session start
//! (`cli/src/report.rs`). No field is excluded from the comparisons below.

use std::time::Duration;

use serde_json::Value;

mod support;
use support::*;

fn report(lines: &[Value]) -> &Value {
    let last = lines.last().expect("some output");
    assert_eq!(last["type"], "report", "the report is the last line");
    last
}

/// A field of the video track (track 0) of a report.
fn video<'a>(report: &'a Value, key: &str) -> &'a Value {
    &report["tracks"][0][key]
}

#[test]
fn replayed_capture_equals_the_live_session() {
    let serve = Serve::start();
    let dir = temp_dir("capture-equal");
    let file = dir.join("h264_aac.rtspcap");
    let file = file.to_str().unwrap();
    // The stream ends by itself (RTCP BYE on both tracks after 5 s).
    let live = run(
        &["capture", &serve.url("h264_aac.mp4"), file, "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(live.code(), 0, "{live:?}");
    let replay = run(&["replay", file, "--json"], Duration::from_secs(30));
    assert_eq!(replay.code(), 0, "{replay:?}");
    assert!(replay.stderr.is_empty(), "{}", replay.stderr);

    let (live_lines, replay_lines) = (live.json(), replay.json());
    let (l, r) = (report(&live_lines), report(&replay_lines));
    assert_eq!(l["stopped_by"], Value::Null);
    assert_eq!(video(l, "frames"), 125, "the whole file: {l}");
    let (lo, ro) = (l.as_object().unwrap(), r.as_object().unwrap());
    assert_eq!(
        lo.keys().collect::<Vec<_>>(),
        ro.keys().collect::<Vec<_>>(),
        "same fields"
    );
    for (key, value) in lo {
        assert_eq!(&ro[key], value, "report field {key}");
    }
    // Not only the report: every event line, in order.
    assert_eq!(live_lines.len(), replay_lines.len());
    for (i, (a, b)) in live_lines.iter().zip(&replay_lines).enumerate() {
        assert_eq!(a, b, "line {i}");
    }

    // The text replay prints the report too.
    let text = run(&["replay", file, "--quiet"], Duration::from_secs(30));
    assert_eq!(text.code(), 0, "{text:?}");
    assert!(
        text.stdout.contains("the server ended the stream (RTCP BYE)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("frames        125"), "{}", text.stdout);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stopped_captures_replay_up_to_the_stop() {
    let serve = Serve::start();
    let dir = temp_dir("capture-stop");
    let file = dir.join("frames.rtspcap");
    let file = file.to_str().unwrap();
    // `probe --capture` is the same as `capture`.
    let live = run(
        &[
            "probe",
            &serve.url("h264_aac.mp4"),
            "--frames",
            "30",
            "--capture",
            file,
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(live.code(), 0, "{live:?}");
    let live_lines = live.json();
    let l = report(&live_lines);
    assert_eq!(
        (l["stopped_by"].as_str(), video(l, "frames").as_u64()),
        (Some("frames"), Some(30))
    );

    // With the same --frames the replay stops at the same frame: the same report.
    let same = run(&["replay", file, "--json", "--frames", "30"], Duration::from_secs(30));
    assert_eq!(same.code(), 0, "{same:?}");
    assert_eq!(report(&same.json()), l);

    // Without it, the replay counts up to the recorded stop request: the
    // frames the live probe had not read when it stopped are in.
    let plain = run(&["replay", file, "--json"], Duration::from_secs(30));
    assert_eq!(plain.code(), 0, "{plain:?}");
    let plain_lines = plain.json();
    let p = report(&plain_lines);
    assert_eq!(p["stopped_by"], "recorded");
    assert!(video(p, "frames").as_u64().unwrap() >= 30, "{p}");
    for key in [
        "connect",
        "play_s",
        "methods",
        "session_elapsed_s",
        "first_video_frame_s",
        "error",
    ] {
        assert_eq!(p[key], l[key], "{key}");
    }
    let text = run(&["replay", file, "-q"], Duration::from_secs(30));
    assert!(text.stdout.contains("stopped (as recorded)"), "{}", text.stdout);

    // `capture URL FILE --duration`: a capture stopped by time.
    let file2 = dir.join("duration.rtspcap");
    let file2 = file2.to_str().unwrap();
    let live = run(
        &["capture", &serve.url("h265.mp4"), file2, "--duration", "1", "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(live.code(), 0, "{live:?}");
    let live_lines = live.json();
    let l = report(&live_lines);
    assert_eq!(l["stopped_by"], "duration");
    let r = run(&["replay", file2, "--json"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{r:?}");
    let replay_lines = r.json();
    let r = report(&replay_lines);
    assert_eq!(r["stopped_by"], "recorded");
    assert!(video(r, "frames").as_u64() >= video(l, "frames").as_u64());
    assert_eq!(r["methods"], l["methods"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn failed_sessions_and_credentials() {
    let dir = temp_dir("capture-fail");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.join("refused.rtspcap");
    let file = file.to_str().unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/x");
    let live = run(&["capture", &url, file, "--json"], Duration::from_secs(20));
    assert_eq!(live.code(), 1, "{live:?}");
    let replay = run(&["replay", file, "--json"], Duration::from_secs(20));
    assert_eq!(replay.code(), 1, "{replay:?}");
    assert_eq!(replay.json(), live.json());
    assert!(replay.stderr.to_lowercase().contains("refused"), "{}", replay.stderr);

    // Credentials: used live, never written to the file or printed by the replay.
    let serve = Serve::start();
    let secret = dir.join("secret.rtspcap");
    let secret = secret.to_str().unwrap();
    let url = format!("rtsp://user:SECRETPW@127.0.0.1:{}/h264_aac.mp4", serve.port);
    let live = run(
        &["capture", &url, secret, "--frames", "10", "-q"],
        Duration::from_secs(20),
    );
    assert_eq!(live.code(), 0, "{live:?}");
    assert!(
        live.stdout.contains("capture:") && live.stdout.contains("secret.rtspcap"),
        "{}",
        live.stdout
    );
    let bytes = std::fs::read(secret).unwrap();
    assert!(
        !bytes.windows(8).any(|w| w == b"SECRETPW"),
        "the password is not in the capture"
    );
    let replay = run(&["replay", secret, "--frames", "10"], Duration::from_secs(20));
    assert_eq!(replay.code(), 0, "{replay:?}");
    for text in [&live.stdout, &live.stderr, &replay.stdout, &replay.stderr] {
        assert!(!text.contains("SECRETPW") && !text.contains("user:"), "{text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cut_and_bad_files() {
    let serve = Serve::start();
    let dir = temp_dir("capture-cut");
    let file = dir.join("full.rtspcap");
    let live = run(
        &[
            "capture",
            &serve.url("h264_aac.mp4"),
            file.to_str().unwrap(),
            "--frames",
            "50",
            "-q",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(live.code(), 0, "{live:?}");

    // Cut in the middle of a record, as a killed recorder may leave it: the
    // whole records before the cut replay, with a note.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.join("cut.rtspcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let r = run(&["replay", cut.to_str().unwrap(), "--json"], Duration::from_secs(20));
    assert_eq!(r.code(), 0, "{r:?}");
    let lines = r.json();
    let rep = report(&lines);
    assert!(video(rep, "frames").as_u64().unwrap() > 5, "{rep}");
    assert_eq!(rep["session_elapsed_s"], Value::Null, "the end was not recorded");
    let r = run(&["replay", cut.to_str().unwrap(), "-q"], Duration::from_secs(20));
    assert!(r.stderr.contains("cut short"), "{}", r.stderr);

    let not_capture = dir.join("not.rtspcap");
    std::fs::write(&not_capture, b"GIF89a....").unwrap();
    for (path, what) in [
        (not_capture.to_str().unwrap(), "not a capture file"),
        ("/nonexistent/x.rtspcap", "cannot read"),
    ] {
        let r = run(&["replay", path], Duration::from_secs(10));
        assert_eq!(r.code(), 2, "{r:?}");
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains(what),
            "{}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
    }
    // The capture file named twice, or one that cannot be created: usage errors.
    let r = run(
        &[
            "capture",
            &serve.url("h264_aac.mp4"),
            "a.rtspcap",
            "--capture",
            "b.rtspcap",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{r:?}");
    let r = run(
        &["capture", &serve.url("h264_aac.mp4"), "/nonexistent/dir/x.rtspcap"],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{r:?}");
    assert!(r.stderr.contains("capture file"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(dir);
}
