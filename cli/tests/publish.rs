//! `rtsp-toolkit publish FILE URL` against real receivers: FFmpeg's RTSP listen mode and GStreamer's
//! RECORD-mode server (with Digest auth) record what we
//! publish (every frame of the file, with its timing), Ctrl-C ends a looping publish (BYE, TEARDOWN), and a
//! server that does not take publishers (ours without `--publish` answers ANNOUNCE 405) gives a clear refusal.
//! Our publisher into our server: conformance/tests/server_publish.rs.

mod support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{media_dir, run, spawn, temp_dir, wait_bounded, Proc, Run, Serve};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `ffmpeg -rtsp_flags listen` on a free port, stream-copying what it receives into `out`.
fn ffmpeg_listen(out: &std::path::Path) -> (Proc, String) {
    let url = format!("rtsp://127.0.0.1:{}/live", free_port());
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_flags",
            "listen",
            "-timeout",
            "30",
            "-i",
            &url,
        ])
        .args(["-c", "copy", "-y", out.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg (scripts/peers/install.sh installs it)");
    (Proc(child), url)
}

/// Runs `publish` with `args` once FFmpeg listens (it takes one connection, so it is not probed: a
/// publish that finds nothing listening yet fails at once with "cannot connect" and is run again), bounded.
fn publish_when_listening(args: &[&str], limit: Duration) -> Run {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = run(args, limit);
        if r.code() == 1
            && (r.stderr.contains("cannot connect") || r.stdout.contains("cannot connect"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return r;
    }
}

/// Frames per stream of `file`, as `ffprobe -count_frames` reads them: (codec, frames).
fn frames(file: &std::path::Path) -> Vec<(String, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (codec, n) = l.split_once(',')?;
            Some((codec.to_owned(), n.trim().parse().ok()?))
        })
        .collect()
}

/// The duration ffprobe gives `file`, in seconds.
fn duration(file: &std::path::Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(f64::NAN)
}

#[test]
fn ffmpeg_records_every_frame_we_publish_with_its_timing() {
    let dir = temp_dir("publish-ffmpeg");
    let out = dir.join("received.mkv");
    let (ffmpeg, url) = ffmpeg_listen(&out);
    let file = media_dir().join("h264_aac.mp4");
    let started = Instant::now();
    let r = publish_when_listening(
        &["publish", file.to_str().unwrap(), &url, "--json"],
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    assert_eq!(r.code(), 0, "{r:?}");
    let events = r.json();
    let methods: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "rtsp")
        .map(|e| (e["method"].as_str().unwrap().to_owned(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        methods[..4],
        [
            ("ANNOUNCE".to_owned(), 200),
            ("SETUP".to_owned(), 200),
            ("SETUP".to_owned(), 200),
            ("RECORD".to_owned(), 200)
        ]
    );
    let finished = events.last().unwrap();
    assert_eq!(finished["type"], "finished", "{finished}");
    assert!(finished["error"].is_null(), "{finished}");
    assert!(finished["packets"].as_u64().unwrap() > 300, "{finished}");
    // Real time: the 5 s file takes about 5 s to publish.
    assert!(took >= Duration::from_millis(4500), "published in {took:?}");
    // FFmpeg ends its recording when the connection closes.
    let ff = wait_bounded(ffmpeg, Duration::from_secs(20));
    assert!(ff.status.success(), "ffmpeg: {}", ff.stderr);
    assert_eq!(frames(&out), frames(&file), "frames received against the file's");
    let (sent, received) = (duration(&file), duration(&out));
    assert!(
        (sent - received).abs() < 0.1,
        "durations: file {sent} s, received {received} s"
    );
}

#[test]
fn ctrl_c_ends_a_looping_publish_and_the_receiver_keeps_what_came() {
    let dir = temp_dir("publish-loop");
    let out = dir.join("received.mkv");
    let (ffmpeg, url) = ffmpeg_listen(&out);
    let file = media_dir().join("h264_aac.mp4");
    // Started until FFmpeg listens, then left running.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut publisher = loop {
        let mut p = spawn(&["publish", file.to_str().unwrap(), &url, "--count", "0", "--json"]);
        std::thread::sleep(Duration::from_millis(500));
        match p.0.try_wait().unwrap() {
            None => break p,
            Some(_) => {
                assert!(Instant::now() < deadline, "ffmpeg never listened");
                drop(p);
            }
        }
    };
    // Past the first play-through: it loops.
    std::thread::sleep(Duration::from_secs(6));
    assert!(publisher.0.try_wait().unwrap().is_none(), "ended by itself");
    let pid = publisher.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let r = wait_bounded(publisher, Duration::from_secs(15));
    assert_eq!(r.code(), 0, "{r:?}");
    let finished = r.json().pop().unwrap();
    assert_eq!(finished["type"], "finished", "{finished}");
    assert!(finished["error"].is_null(), "{finished}");
    assert_eq!(finished["loops"], 2, "in its second time through: {finished}");
    let ff = wait_bounded(ffmpeg, Duration::from_secs(20));
    assert!(ff.status.success(), "ffmpeg: {}", ff.stderr);
    let received = duration(&out);
    assert!(received > 6.0, "received {received} s: looped past the file's 5 s");
}

#[test]
fn a_server_that_takes_no_publisher_refuses_clearly() {
    let serve = Serve::start();
    let file = media_dir().join("h264_aac.mp4");
    let r = run(
        &["publish", file.to_str().unwrap(), &serve.url("live")],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(r.stderr.contains("ANNOUNCE refused: 405"), "{r:?}");
    let r = run(
        &["publish", "/nonexistent.mp4", &serve.url("live")],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 2, "{r:?}");
    let r = run(
        &["publish", file.to_str().unwrap(), "http://x/"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code(), 2, "{r:?}");
}

/// GStreamer's RTSP server in RECORD mode (`gst-rtsp-server.py --record OUT.mkv`, Digest auth) takes our
/// publish: a 401 answered with the URL's credentials, every video frame written, the audio but for the
/// last few frames (GStreamer's record pipeline drops what it has not muxed when it tears down: 2 to 4 of
/// 216 AAC frames in our runs). Wrong credentials: a clear failure, nothing sent.
#[test]
fn gstreamers_record_mode_server_takes_our_publish_with_digest_auth() {
    use rtsp_toolkit_conformance::peers::GstServer;
    let dir = temp_dir("publish-gst");
    let out = dir.join("recorded.mkv");
    let gst = GstServer::start_with(
        Some(("alice", "s3cret", "digest")),
        &["--record", out.to_str().unwrap()],
    );
    let file = media_dir().join("h264_aac.mp4");
    let url = gst.url_with("alice:s3cret", "record");
    let r = run(
        &["publish", file.to_str().unwrap(), &url, "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(!r.stdout.contains("s3cret"), "credentials printed: {}", r.stdout);
    let statuses: Vec<_> = r
        .json()
        .iter()
        .filter(|e| e["type"] == "rtsp")
        .map(|e| (e["method"].as_str().unwrap().to_owned(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        statuses[..2],
        [("ANNOUNCE".to_owned(), 401), ("ANNOUNCE".to_owned(), 200)]
    );
    assert_eq!(statuses.last().unwrap(), &("TEARDOWN".to_owned(), 200));
    // The file is written as the pipeline goes; wait (bounded) for the muxer's last write.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (video, audio) = loop {
        let f = frames(&out);
        let get = |c: &str| f.iter().find(|(n, _)| n == c).map_or(0, |(_, k)| *k);
        let (v, a) = (get("h264"), get("aac"));
        if (v == 125 && a >= 210) || Instant::now() > deadline {
            break (v, a);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(video, 125, "every video frame of the file");
    assert!((210..=216).contains(&audio), "{audio} of the file's 216 AAC frames");
    let wrong = gst.url_with("alice:wrong", "record");
    let r = run(&["publish", file.to_str().unwrap(), &wrong], Duration::from_secs(30));
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(r.stderr.contains("authentication failed"), "{r:?}");
    assert!(r.stdout.contains("sent      0 RTP packets"), "{r:?}");
}
