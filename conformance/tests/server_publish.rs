//! Publishing into our server (live paths, `ServerConfig::publish`), on the tokio and the smol server:
//! FFmpeg publishes a file (`ffmpeg -re -i FILE -c copy -f rtsp`: ANNOUNCE, SETUP mode=record, RECORD)
//! while ffprobe, GStreamer's rtspsrc and our client read the path at once; our own publisher
//! (`rtsp_toolkit_tokio::publish`) into our server. Each reader starts at a keyframe and then gets every
//! frame the publisher sent until it left: its frame count is the file's minus the frames before one of
//! the file's keyframes, exactly (a lost, doubled or undecodable frame would break that). The end is a
//! BYE: every reader ends by itself. Then the path is free to publish again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::peers::{
    ffprobe_count_frames, gst_fakesink_frames, gst_rtspsrc_h264, parse_ffprobe_counts, run_bounded,
};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_core::server::publish::{PublishEvent, PublishOptions};
use rtsp_toolkit_tokio::server::ServerOptions;

fn media() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media")
}

/// The video frames of `file` and the indices of its keyframes.
fn keyframes(file: &Path) -> (usize, Vec<usize>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (scripts/peers/install.sh installs it)");
    // One line per frame, `1` or `0` (the first may have a trailing comma: side data), blank lines between.
    let flags: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(|l| l == "1")
        .collect();
    let keys = flags.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
    (flags.len(), keys)
}

/// A process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Our blocking client reads `url` to its end: (video frames, whether the
/// first was a keyframe, frames reporting loss, the close error). Every
/// video frame's timestamp is the previous one's plus the file's 40 ms
/// (3600 at 90 kHz): the publisher's timing arrives unchanged.
fn our_reader(url: &str) -> (usize, bool, usize, Option<String>) {
    let session = rtsp_toolkit_blocking::Session::open(url, ClientOptions::default()).expect("open");
    let (mut frames, mut first_key, mut lossy, mut error) = (0, false, 0, None);
    let mut last_ts: Option<i64> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    for event in session {
        match event {
            Event::Video(v) => {
                if frames == 0 {
                    first_key = v.frame.keyframe;
                }
                if let Some(last) = last_ts {
                    assert_eq!(v.extended_timestamp - last, 3600, "frame {frames}: the file's timing");
                }
                last_ts = Some(v.extended_timestamp);
                frames += 1;
                lossy += usize::from(v.frame.loss > 0);
            }
            Event::Closed(c) => error = c.error.map(|e| e.to_string()),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the live stream did not end");
    }
    (frames, first_key, lossy, error)
}

fn server(runtime: ServerRuntime) -> TestServer {
    let mut options = ServerOptions::default();
    options.config.publish = vec!["live".into()];
    options.config.linger_after_end = Duration::from_secs(2);
    TestServer::with_options(runtime, media(), options)
}

/// `frames` is the file's count from one of its keyframes on, joined within 3 s.
fn check_from_a_keyframe(who: &str, frames: usize, total: usize, keys: &[usize]) {
    assert!(
        keys.iter().any(|k| total - k == frames && *k <= 75),
        "{who}: {frames} video frames; the file has {total} with keyframes at {keys:?}"
    );
}

#[test]
fn ffmpeg_publishes_and_ffprobe_gstreamer_and_our_client_read_at_once() {
    let file = media().join("h264_aac.mp4");
    let (total, keys) = keyframes(&file);
    assert!(total > 100 && keys.len() > 2, "{total} {keys:?}");
    for runtime in [ServerRuntime::Tokio, ServerRuntime::Smol] {
        let rt = runtime.name();
        let server = server(runtime);
        let url = server.url("live");
        let publisher = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(&file)
            .args(["-c", "copy", "-rtsp_transport", "tcp", "-f", "rtsp", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg");
        let mut publisher = Killed(publisher);
        server.wait_for_describe(&url, 200, Duration::from_secs(10));
        let u = url.clone();
        let ffprobe = thread::spawn(move || run_bounded(ffprobe_count_frames(&u, "tcp", &[]), Duration::from_secs(30)));
        let u = url.clone();
        let gst = thread::spawn(move || run_bounded(gst_rtspsrc_h264(&u), Duration::from_secs(30)));
        let u = url.clone();
        let ours = thread::spawn(move || our_reader(&u));

        let (frames, first_key, lossy, error) = ours.join().unwrap();
        assert!(first_key, "{rt}: our client's first frame is a keyframe");
        assert_eq!((lossy, error), (0, None), "{rt}: no loss, the end is no error");
        check_from_a_keyframe(&format!("{rt}: our client"), frames, total, &keys);

        let (out, err) = ffprobe.join().unwrap();
        let counts = parse_ffprobe_counts(&out);
        let video = counts.iter().find(|(c, _)| c == "h264").map_or(0, |c| c.1);
        check_from_a_keyframe(&format!("{rt}: ffprobe ({err})"), video, total, &keys);
        assert!(counts.iter().any(|(c, n)| c == "aac" && *n > 100), "{rt}: {counts:?}");

        let (out, err) = gst.join().unwrap();
        let buffers = gst_fakesink_frames(&out);
        check_from_a_keyframe(&format!("{rt}: GStreamer ({err})"), buffers, total, &keys);

        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = publisher.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{rt}: FFmpeg did not finish");
            thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{rt}: FFmpeg publisher failed");
        // The publisher left: the path is not live, and may be published again.
        server.wait_for_describe(&url, 404, Duration::from_secs(5));
    }
}

#[test]
fn our_publisher_into_our_server_and_one_publisher_per_path() {
    let file = media().join("h264_aac.mp4");
    let (total, keys) = keyframes(&file);
    for runtime in [ServerRuntime::Tokio, ServerRuntime::Smol] {
        let rt = runtime.name();
        let server = server(runtime);
        let url = server.url("live");
        let stop = rtsp_toolkit_core::stop::StopSignal::new();
        let source = Arc::new(rtsp_toolkit_media::open(&file).expect("the fixture opens"));
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (u, s, src) = (url.clone(), stop.clone(), source.clone());
        let publisher = thread::spawn(move || {
            let mut error = None;
            let r = tokio.block_on(rtsp_toolkit_tokio::publish::publish(
                &u,
                src,
                PublishOptions::default(),
                s,
                |e| {
                    if let PublishEvent::Finished { error: e, .. } = e {
                        error = e.map(|e| e.to_string());
                    }
                },
            ));
            r.map_err(|e| e.to_string()).and_then(|()| error.map_or(Ok(()), Err))
        });
        server.wait_for_describe(&url, 200, Duration::from_secs(10));
        // A second publisher of the same path is refused while the first publishes; another path too.
        for (path, status) in [("live", "455"), ("other", "403")] {
            let mut s = TcpStream::connect(server.local_addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=control:a\r\n";
            write!(
                s,
                "ANNOUNCE {} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                server.url(path),
                sdp.len()
            )
            .unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(head.starts_with(&format!("RTSP/1.0 {status}")), "{rt}: {path}: {head}");
        }
        let (frames, first_key, lossy, error) = our_reader(&url);
        assert!(first_key && lossy == 0 && error.is_none(), "{rt}: {error:?}");
        check_from_a_keyframe(&format!("{rt}: our client of our publisher"), frames, total, &keys);
        let report = publisher.join().unwrap();
        assert!(report.is_ok(), "{rt}: {report:?}");
    }
}

#[test]
fn a_server_with_users_asks_publishers_for_credentials() {
    use rtsp_toolkit_core::server::auth::{AuthConfig, Users};
    let file = media().join("h264_aac.mp4");
    let mut options = ServerOptions {
        auth: Some(AuthConfig::new(Users::parse("cam:s3cret\n").unwrap())),
        ..ServerOptions::default()
    };
    options.config.publish = vec!["live".into()];
    let server = TestServer::with_options(ServerRuntime::Tokio, media(), options);
    let source = Arc::new(rtsp_toolkit_media::open(&file).expect("the fixture opens"));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let publish = |url: String, stop: rtsp_toolkit_core::stop::StopSignal| {
        let mut finished = None;
        let r = tokio.block_on(rtsp_toolkit_tokio::publish::publish(
            &url,
            source.clone(),
            PublishOptions::default(),
            stop,
            |e| {
                if let PublishEvent::Finished { error, packets, .. } = e {
                    finished = Some((error.map(|e| e.to_string()), packets));
                }
            },
        ));
        assert!(r.is_ok(), "{r:?}");
        finished.expect("a Finished event")
    };
    let stop = rtsp_toolkit_core::stop::StopSignal::new();
    // Without credentials: refused before anything is sent.
    let (error, packets) = publish(server.url("live"), stop.clone());
    assert!(error.as_deref().is_some_and(|e| e.contains("credentials")), "{error:?}");
    assert_eq!(packets, 0);
    // With them: published; a reader without credentials is refused, one with them plays.
    let url = format!("rtsp://cam:s3cret@{}/live", server.local_addr());
    let stop2 = stop.clone();
    thread::scope(|s| {
        let p = s.spawn(|| publish(url.clone(), stop2));
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.describe_status(&server.url("live")) != 401 || !live_with(&url) {
            assert!(Instant::now() < deadline, "not live");
            thread::sleep(Duration::from_millis(100));
        }
        let (frames, first_key, lossy, error) = our_reader(&url);
        assert!(
            first_key && lossy == 0 && error.is_none() && frames > 50,
            "{frames} {error:?}"
        );
        let (error, packets) = p.join().unwrap();
        assert!(error.is_none() && packets > 300, "{error:?} {packets}");
    });
}

/// Whether `url` (with credentials) answers DESCRIBE 200, through our client.
fn live_with(url: &str) -> bool {
    let session = rtsp_toolkit_blocking::Session::open(url, ClientOptions::default()).expect("open");
    for event in session {
        if let Event::Method(m) = event {
            // The first answer is the challenge; the client then sends its credentials.
            if m.method == rtsp_toolkit_core::message::Method::Describe && m.status != 401 {
                return m.status == 200;
            }
        }
    }
    false
}

#[test]
fn with_the_gop_cache_a_late_reader_starts_at_the_last_keyframe_at_once() {
    let file = media().join("h264_aac.mp4");
    let (total, keys) = keyframes(&file);
    // Keyframes one second apart: a reader that joins 1.4 s in is between the second and the third.
    assert_eq!(keys[..3], [0, 25, 50], "the fixture's GOPs");
    let mut options = ServerOptions {
        gop_cache: true,
        ..ServerOptions::default()
    };
    options.config.publish = vec!["live".into()];
    let server = TestServer::with_options(ServerRuntime::Tokio, media(), options);
    let url = server.url("live");
    let source = Arc::new(rtsp_toolkit_media::open(&file).expect("the fixture opens"));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (u, stop) = (url.clone(), rtsp_toolkit_core::stop::StopSignal::new());
    let publisher = thread::spawn(move || {
        tokio.block_on(rtsp_toolkit_tokio::publish::publish(
            &u,
            source,
            PublishOptions::default(),
            stop,
            |_| {},
        ))
    });
    server.wait_for_describe(&url, 200, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(1400));
    let opened = Instant::now();
    let session = rtsp_toolkit_blocking::Session::open(&url, ClientOptions::default()).expect("open");
    let (mut frames, mut first) = (0usize, None);
    let mut last_ts = None;
    for event in session {
        if let Event::Video(v) = event {
            if first.is_none() {
                first = Some((opened.elapsed(), v.frame.keyframe));
            }
            if let Some(last) = last_ts {
                assert_eq!(v.extended_timestamp - last, 3600, "the GOP's timing is kept");
            }
            last_ts = Some(v.extended_timestamp);
            frames += 1;
        }
        assert!(opened.elapsed() < Duration::from_secs(30), "the stream did not end");
    }
    let (delay, key) = first.expect("a frame");
    assert!(key, "the first frame is the cached keyframe");
    assert!(
        delay < Duration::from_millis(400),
        "first frame {delay:?} after the open"
    );
    assert_eq!(frames, total - 25, "every frame from the second keyframe on");
    assert!(publisher.join().unwrap().is_ok());
}
