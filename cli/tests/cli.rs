//! The `rtsp-toolkit` binary end to end: `demo`, `serve` + `probe` against the
//! embedded server, saved files checked with ffprobe, the error cases and
//! their exit codes, Ctrl-C, and that no password ever reaches the output.
//!
//! Every child process is bounded in time (killed on timeout or drop) and
//! every file is written under a per-test temporary directory.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::*;

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn report(events: &[Value]) -> &Value {
    let last = events.last().expect("some output");
    assert_eq!(last["type"], "report", "the report is the last line");
    last
}

/// The one line on stderr, which must start with `error:`.
fn error_line(r: &Run) -> &str {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line, got: {:?}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
    lines[0]
}

fn ffprobe(args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .output()
        .expect("ffprobe (FFmpeg) is installed: .ci/run installs it");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn demo_json_is_one_object_per_event_and_a_report() {
    let r = run(&["demo", "--json"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    assert!(r.stderr.is_empty(), "nothing on stderr: {}", r.stderr);
    let events = r.json();
    assert_eq!(events[0]["type"], "server");
    assert!(events[0]["urls"].as_array().unwrap().len() >= 7);

    let methods: Vec<(&str, u64)> = of_type(&events, "rtsp")
        .iter()
        .map(|e| (e["method"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        methods,
        [
            ("OPTIONS", 200),
            ("DESCRIBE", 200),
            ("SETUP", 200),
            ("SETUP", 200),
            ("PLAY", 200),
            ("TEARDOWN", 200)
        ]
    );
    for e in of_type(&events, "rtsp") {
        assert!(e["elapsed_s"].as_f64().unwrap() >= 0.0);
        assert!(e["session_elapsed_s"].as_f64().unwrap() >= e["elapsed_s"].as_f64().unwrap());
        assert!(!e["url"].as_str().unwrap().contains('@'));
    }
    let connect = of_type(&events, "connect");
    assert_eq!(connect.len(), 1);
    assert!(connect[0]["error"].is_null());

    let video = of_type(&events, "video");
    assert_eq!(video.len(), 125, "h264_aac.mp4 has 125 frames");
    assert_eq!(video[0]["keyframe"], true);
    assert_eq!(video[0]["codec"], "H264");
    assert!(video
        .iter()
        .all(|v| v["timestamp"].is_u64() && v["size"].as_u64().unwrap() > 0));
    assert_eq!(video.iter().filter(|v| v["keyframe"] == true).count(), 5);
    let audio = of_type(&events, "audio");
    assert!((215..=217).contains(&audio.len()), "{} AAC frames", audio.len());
    assert!(audio.iter().all(|a| a["samples"] == 1024 && a["codec"] == "AAC"));
    assert!(of_type(&events, "rtp").len() >= video.len() + audio.len());
    assert!(!of_type(&events, "rtcp").is_empty());

    let closed = of_type(&events, "closed");
    assert_eq!(closed.len(), 1);
    assert!(closed[0]["error"].is_null());
    assert!(closed[0]["session_elapsed_s"].as_f64().unwrap() > 4.5);

    let rep = report(&events);
    assert!(rep["error"].is_null());
    assert!(rep["stopped_by"].is_null(), "the server ended the stream");
    let v = &rep["tracks"][0];
    assert_eq!(v["kind"], "video");
    assert_eq!(v["frames"], 125);
    assert_eq!(v["keyframes"], 5);
    assert!((v["frame_rate"].as_f64().unwrap() - 25.0).abs() < 0.01, "{v}");
    assert!((v["media_duration_s"].as_f64().unwrap() - 5.0).abs() < 0.01);
    assert_eq!(v["keyframe_interval_frames"], 25.0);
    assert!((v["keyframe_interval_s"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(v["lost"], 0);
    assert!(v["jitter_s"].as_f64().unwrap() >= 0.0);
    assert!(v["bitrate_bps"].as_f64().unwrap() > 50_000.0);
    assert!(rep["first_video_frame_s"].as_f64().unwrap() > 0.0);
    let a = &rep["tracks"][1];
    assert_eq!(a["kind"], "audio");
    assert_eq!(a["sample_rate"], 44100);
    let table: Vec<&str> = rep["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(table, ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN"]);
    let setup = &rep["methods"][2];
    assert_eq!(setup["count"], 2);
    assert!(setup["min_s"].as_f64() <= setup["avg_s"].as_f64() && setup["avg_s"].as_f64() <= setup["max_s"].as_f64());
}

#[test]
fn demo_text_prints_urls_timeline_and_report() {
    let r = run(&["demo"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    let out = &r.stdout;
    for needle in [
        "/h264_aac.mp4",
        "/h265_aac.mkv",
        "OPTIONS",
        "DESCRIBE  200 OK",
        "PLAY      200 OK",
        "summary",
        "report  rtsp://127.0.0.1:",
        "method    count",
        "frame rate    25.00 fps",
        "keyframes     every 25 frames, 1.000 s",
        "jitter",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    assert!(!out.contains('\r'), "no status line when stderr is not a terminal");
}

#[test]
fn saved_video_and_audio_read_back_with_ffprobe() {
    let serve = Serve::start();
    let dir = temp_dir("save");
    let video = dir.join("out.h264");
    let wav = dir.join("out.wav");
    let r = run(
        &[
            "probe",
            &serve.url("h264_aac.mp4"),
            "--quiet",
            "--save-video",
            video.to_str().unwrap(),
            "--save-audio",
            wav.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    assert!(r.stdout.contains("saved"), "{}", r.stdout);

    let frames = ffprobe(&[
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,nb_read_frames",
        "-of",
        "csv=p=0",
        video.to_str().unwrap(),
    ]);
    assert_eq!(frames, "h264,125");

    let info = ffprobe(&[
        "-show_entries",
        "stream=codec_name,sample_rate,channels,duration",
        "-of",
        "csv=p=0",
        wav.to_str().unwrap(),
    ]);
    let fields: Vec<&str> = info.split(',').collect();
    assert_eq!(&fields[..3], ["pcm_s16le", "44100", "2"], "{info}");
    let duration: f64 = fields[3].parse().unwrap();
    assert!((duration - 5.0).abs() < 0.1, "WAV lasts {duration} s");

    // Resampled, audio only, stopped by --frames.
    let wav16 = dir.join("out16.wav");
    let r = run(
        &[
            "probe",
            &serve.url("h264_aac.mp4"),
            "--no-video",
            "--frames",
            "43",
            "--json",
            "--save-audio",
            wav16.to_str().unwrap(),
            "--audio-rate",
            "16000",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    let events = r.json();
    assert_eq!(of_type(&events, "audio").len(), 43);
    assert!(of_type(&events, "video").is_empty());
    assert_eq!(report(&events)["stopped_by"], "frames");
    let info = ffprobe(&[
        "-show_entries",
        "stream=sample_rate,duration",
        "-of",
        "csv=p=0",
        wav16.to_str().unwrap(),
    ]);
    let (rate, duration) = info.split_once(',').unwrap();
    assert_eq!(rate, "16000");
    let duration: f64 = duration.parse().unwrap();
    let expected = 43.0 * 1024.0 / 44100.0;
    assert!((duration - expected).abs() < 0.03, "{duration} vs {expected}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn frames_and_duration_stop_the_session_with_teardown() {
    let serve = Serve::start();
    let r = run(
        &["probe", &serve.url("h265_aac.mkv"), "--frames", "10", "--json"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    let events = r.json();
    assert_eq!(of_type(&events, "video").len(), 10);
    assert_eq!(of_type(&events, "video")[0]["codec"], "H265");
    assert!(of_type(&events, "rtsp")
        .iter()
        .any(|e| e["method"] == "TEARDOWN" && e["status"] == 200));
    assert_eq!(report(&events)["stopped_by"], "frames");
    assert_eq!(report(&events)["tracks"][0]["frames"], 10);

    let start = Instant::now();
    let r = run(
        &[
            "probe",
            &serve.url("h264_aac.mp4?play_count=0"),
            "--duration",
            "1.5",
            "--json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 0, "stderr: {}", r.stderr);
    assert!(start.elapsed() < Duration::from_secs(6));
    let events = r.json();
    let rep = report(&events);
    assert_eq!(rep["stopped_by"], "duration");
    let frames = rep["tracks"][0]["frames"].as_u64().unwrap();
    assert!((30..=45).contains(&frames), "{frames} frames in 1.5 s at 25 fps");
}

#[test]
fn ctrl_c_tears_down_and_reports() {
    signal_tears_down_and_reports("INT");
}

#[test]
fn sigterm_tears_down_and_reports_like_ctrl_c() {
    signal_tears_down_and_reports("TERM");
}

fn signal_tears_down_and_reports(signal: &str) {
    let serve = Serve::start();
    let mut p = spawn(&["probe", &serve.url("h264_aac.mp4?play_count=0"), "--json"]);
    let rx = lines(p.0.stdout.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.iter().any(|l: &String| l.contains(r#""type":"video""#)) {
        assert!(Instant::now() < deadline, "no video frame");
        lines.push(rx.recv_timeout(Duration::from_secs(10)).expect("output"));
    }
    thread::sleep(Duration::from_millis(500));
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not stop on SIG{signal}");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
        lines.push(l);
    }
    let events: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(of_type(&events, "rtsp")
        .iter()
        .any(|e| e["method"] == "TEARDOWN" && e["status"] == 200));
    assert!(of_type(&events, "closed")[0]["error"].is_null());
    assert_eq!(report(&events)["stopped_by"], "interrupt");
}

#[test]
fn refused_connection_is_one_error_line_and_exit_1() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("rtsp://127.0.0.1:{port}/x");
    let r = run(&["probe", &url, "--quiet"], Duration::from_secs(10));
    assert_eq!(r.code(), 1);
    let line = error_line(&r).to_lowercase();
    assert!(line.contains("refused"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");

    // --json: the same on stderr; stdout has the events and the report.
    let r = run(&["probe", &url, "--json"], Duration::from_secs(10));
    assert_eq!(r.code(), 1);
    error_line(&r);
    let events = r.json();
    assert!(of_type(&events, "connect")[0]["error"].is_string());
    assert_eq!(of_type(&events, "closed")[0]["error_kind"], "connection");
    assert!(report(&events)["error"].is_string());
}

#[test]
fn bad_urls_and_options_exit_2() {
    for args in [
        vec!["probe", "rtsp://"],
        vec!["probe", "not a url"],
        vec!["probe", "http://127.0.0.1/x"],
        vec!["probe", "rtsp://127.0.0.1/x", "--timeout", "0"],
        vec!["probe", "rtsp://127.0.0.1/x", "--no-video", "--no-audio"],
        vec!["probe", "rtsp://127.0.0.1/x", "--audio-rate", "16000"],
        vec!["probe", "rtsp://127.0.0.1/x", "--forward", "host:notaport"],
        vec!["probe", "rtsp://127.0.0.1/x", "--save-video", "/nonexistent-dir/x.h264"],
        vec!["probe", "rtsp://127.0.0.1/x", "--transport", "sctp"],
        vec!["probe", "rtsp://127.0.0.1/x", "--udp-ports", "5001-5001"],
        vec!["probe", "rtsp://127.0.0.1/x", "--reorder-packets", "0"],
        vec!["probe"],
        vec!["bogus"],
    ] {
        let r = run(&args, Duration::from_secs(10));
        assert_eq!(r.code(), 2, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    let r = run(&["probe", "rtsp://"], Duration::from_secs(10));
    error_line(&r);
    let r = run(&["--help"], Duration::from_secs(10));
    assert_eq!(r.code(), 0);
    assert!(r.stdout.contains("probe") && r.stdout.contains("serve") && r.stdout.contains("demo"));
}

#[test]
fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold the connection without answering.
    let holder = thread::spawn(move || listener.accept().map(|(s, _)| s).ok());
    let start = Instant::now();
    let r = run(
        &["probe", &format!("rtsp://127.0.0.1:{port}/x"), "--timeout", "1"],
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 1);
    let line = error_line(&r);
    assert!(line.contains("timeout") && line.contains("OPTIONS"), "{line}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(holder.join());
}

#[test]
fn wrong_password_is_401_and_never_printed() {
    let gst = rtsp_toolkit_conformance::peers::GstServer::start(Some(("bob", "right", "digest")));
    let url = gst.url_with("bob:SECRETPW", "h264_aac.mp4");
    for args in [vec!["probe", &url, "-vvv"], vec!["probe", &url, "--json", "-vvv"]] {
        let r = run(&args, Duration::from_secs(20));
        assert_eq!(r.code(), 1, "{r:?}");
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .expect("an error line");
        assert!(line.contains("401"), "{line}");
        assert!(
            !r.stdout.contains("SECRETPW") && !r.stderr.contains("SECRETPW"),
            "{r:?}"
        );
    }
    let r = run(&["probe", &url], Duration::from_secs(20));
    assert_eq!(r.code(), 1);
    assert!(error_line(&r).contains("401"));

    // The right password works (Digest).
    let ok = gst.url_with("bob:right", "h264_aac.mp4");
    let r = run(&["probe", &ok, "--frames", "5", "--quiet"], Duration::from_secs(20));
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(!r.stdout.contains("right@"));
}

#[test]
fn credentials_never_appear_in_any_output() {
    let serve = Serve::start();
    let url = format!("rtsp://user:SECRETPW@127.0.0.1:{}/h264_aac.mp4", serve.port);
    let dir = temp_dir("secret");
    let video = dir.join("v.h264");
    for args in [
        vec!["probe", &url, "--frames", "30", "--rtp", "-vvv"],
        vec!["probe", &url, "--frames", "30", "--json", "-vvv"],
        vec![
            "probe",
            &url,
            "--frames",
            "30",
            "--quiet",
            "--save-video",
            video.to_str().unwrap(),
        ],
    ] {
        let r = run(&args, Duration::from_secs(20));
        assert_eq!(r.code(), 0, "{r:?}");
        assert!(!r.stdout.is_empty());
        for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(!text.contains("SECRETPW"), "password in {name} of {args:?}:\n{text}");
            assert!(!text.contains("user:"), "user info in {name} of {args:?}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A scripted RTSP server offering one VP8 track (no depacketizer): it
/// answers the setup, sends RTP packets and a BYE, then answers TEARDOWN.
fn vp8_server(packets: u16) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=vp8\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
                   a=rtpmap:96 VP8/90000\r\na=control:track1\r\n";
        loop {
            let mut head = String::new();
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let method = head.split_whitespace().next().unwrap_or("").to_owned();
            let cseq = head
                .lines()
                .find_map(|l| l.strip_prefix("CSeq:"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            let base = format!("rtsp://127.0.0.1:{port}/cam/");
            let reply = match method.as_str() {
                "OPTIONS" => format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
                ),
                "DESCRIBE" => format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {base}\r\nContent-Type: application/sdp\r\n\
                     Content-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                ),
                "SETUP" => format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1234;timeout=60\r\n\
                     Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
                ),
                "PLAY" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1234\r\n\r\n"),
                _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1234\r\n\r\n"),
            };
            s.write_all(reply.as_bytes()).unwrap();
            match method.as_str() {
                "PLAY" => {
                    let mut out = Vec::new();
                    for seq in 0..packets {
                        let ts = u32::from(seq) * 3000;
                        let mut p = vec![0x80, 0x80 | 96];
                        p.extend_from_slice(&seq.to_be_bytes());
                        p.extend_from_slice(&ts.to_be_bytes());
                        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                        p.extend_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0]);
                        out.push(b'$');
                        out.push(0);
                        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
                        out.extend_from_slice(&p);
                    }
                    // RTCP BYE for the SSRC: the stream is over.
                    let bye = [0x81, 203, 0, 1, 0x12, 0x34, 0x56, 0x78];
                    out.extend_from_slice(&[b'$', 1, 0, bye.len() as u8]);
                    out.extend_from_slice(&bye);
                    s.write_all(&out).unwrap();
                }
                "TEARDOWN" => return,
                _ => {}
            }
        }
    });
    (port, handle)
}

#[test]
fn unsupported_codec_is_reported_with_rtp_statistics() {
    let (port, server) = vp8_server(20);
    let r = run(
        &["probe", &format!("rtsp://127.0.0.1:{port}/cam"), "--json"],
        Duration::from_secs(15),
    );
    server.join().unwrap();
    assert_eq!(r.code(), 3, "{r:?}");
    let line = error_line(&r);
    assert!(line.contains("unsupported codec") && line.contains("VP8"), "{line}");
    let events = r.json();
    let warnings = of_type(&events, "warning");
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["kind"], "unsupported_codec");
    assert_eq!(warnings[0]["track"], 0);
    assert_eq!(of_type(&events, "rtp").len(), 20);
    let t = &report(&events)["tracks"][0];
    assert!(t["unsupported"].as_str().unwrap().contains("VP8"));
    assert_eq!(t["rtp_packets"], 20);
    assert_eq!(t["frames"], 0);
    assert_eq!(t["lost"], 0);
    assert!(t["jitter_s"].is_number());
}

/// `probe --transport udp` and `auto` against GStreamer's server: the
/// transport is in the SETUP lines, the report and the JSON; auto against a
/// server that refuses UDP says it fell back.
#[test]
fn probe_over_udp_shows_the_transport() {
    let gst = rtsp_toolkit_conformance::peers::GstServer::start(None);
    let url = gst.url("h264_aac.mp4");
    let r = run(
        &["probe", &url, "--transport", "udp", "--frames", "50", "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let events = r.json();
    let setups: Vec<&Value> = of_type(&events, "rtsp")
        .into_iter()
        .filter(|e| e["method"] == "SETUP")
        .collect();
    assert_eq!(setups.len(), 2);
    for s in &setups {
        let t = &s["track"]["transport"];
        assert_eq!(t["kind"], "udp", "{s}");
        assert!(t["client_ports"][0].as_u64().unwrap() % 2 == 0, "{t}");
        assert!(t["server_ports"].is_array(), "{t}");
    }
    let rep = report(&events);
    for t in rep["tracks"].as_array().unwrap() {
        assert!(t["transport"].as_str().unwrap().starts_with("udp (ports "), "{t}");
    }
    assert!(rep["fallback"].is_null());
    let r = run(
        &["probe", &url, "--transport", "udp", "--frames", "25"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("over udp (ports "), "{}", r.stdout);

    let tcp_only = rtsp_toolkit_conformance::peers::GstServer::start_with(None, &["--protocols", "tcp"]);
    let r = run(
        &[
            "probe",
            &tcp_only.url("h264_aac.mp4"),
            "--transport",
            "auto",
            "--frames",
            "25",
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let events = r.json();
    let fallback = of_type(&events, "fallback");
    assert_eq!(fallback.len(), 1, "{events:?}");
    assert_eq!(
        (fallback[0]["from"].as_str(), fallback[0]["to"].as_str()),
        (Some("udp"), Some("tcp"))
    );
    assert!(report(&events)["fallback"].as_str().unwrap().contains("461"));
}
