//! The file server end to end on loopback, on every runtime that has one
//! (tokio and smol: each test runs once per server, in the modules
//! `tokio_server` and `smol_server`): our client on every fixture, loop
//! control, path confinement, many clients, a client that never reads, the
//! connection limit, shutdown. Third-party clients (ffprobe, GStreamer,
//! retina) are in `conformance/tests/server_interop.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_tokio::{ClientOptions, Event, ServerOptions, Session};

// Each test body below, once per server runtime.
rtsp_toolkit_conformance::on_every_server!(
    #[tokio::test]
    every_fixture_plays_whole,
    play_count_two_delivers_twice_with_continuous_timestamps,
    nothing_outside_the_root_is_served,
    many_clients_at_once,
    a_client_that_never_reads_is_dropped,
    shutdown_closes_sessions,
    unsupported_tracks_are_skipped_and_unsupported_files_refused,
    connection_limit,
);

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media")
}

fn start(runtime: ServerRuntime, root: &Path) -> TestServer {
    TestServer::start(runtime, root)
}

/// Plays `url` to its end; frames per track and all events. Bounded by 40 s.
async fn play(url: &str) -> ([usize; 2], Vec<Event>) {
    let mut session = Session::open(url, ClientOptions::default()).unwrap();
    let mut frames = [0; 2];
    let mut events = Vec::new();
    let run = async {
        while let Some(e) = session.next().await {
            match &e {
                Event::Video(v) => frames[v.track] += 1,
                Event::Audio(a) => frames[a.track] += 1,
                _ => {}
            }
            events.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("session ended in time");
    (frames, events)
}

fn closed_error(events: &[Event]) -> Option<rtsp_toolkit_tokio::Error> {
    match events.last() {
        Some(Event::Closed(c)) => c.error.clone(),
        other => panic!("last event is not Closed: {other:?}"),
    }
}

/// Every fixture, all at once (real-time pacing: ~5 s in all): the frames
/// the file has (the media crate's counts, which match ffprobe's on the file).
async fn every_fixture_plays_whole(runtime: ServerRuntime) {
    let server = start(runtime, &fixtures());
    let cases = [
        ("h264_aac.mp4", [125, 216]),
        ("h264_bframes.mp4", [125, 216]),
        ("h265_aac.mkv", [125, 217]),
        ("h265.mp4", [125, 0]),
        ("tone.aac", [217, 0]),
        ("pcm_16k_mono.wav", [250, 0]),
        ("pcm_44k_stereo.wav", [100, 0]),
    ];
    let runs = futures_util::future::join_all(
        cases
            .iter()
            .map(|(name, _)| play_owned(format!("rtsp://{}/{name}", server.local_addr()))),
    )
    .await;
    for ((name, expected), (frames, events)) in cases.iter().zip(runs) {
        assert_eq!(frames, *expected, "{name}");
        assert_eq!(closed_error(&events), None, "{name}");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Loss(_) | Event::Warning(_))),
            "{name}"
        );
        let rtcp_sr = events.iter().filter(|e| matches!(e, Event::Rtcp(_))).count();
        assert!(rtcp_sr >= 2, "{name}: sender reports and BYE");
    }
    let urls = server.urls();
    assert_eq!(urls.len(), 7, "{urls:?}");
    assert!(urls[0].starts_with(&format!("rtsp://{}/", server.local_addr())));
    server.shutdown();
    server.wait().await;
}

async fn play_owned(url: String) -> ([usize; 2], Vec<Event>) {
    play(&url).await
}

async fn play_count_two_delivers_twice_with_continuous_timestamps(runtime: ServerRuntime) {
    let server = start(runtime, &fixtures());
    let (frames, events) = play(&format!("rtsp://{}/h264_aac.mp4?play_count=2", server.local_addr())).await;
    assert_eq!(frames, [250, 432]);
    assert_eq!(closed_error(&events), None);
    let mut last_seq: [Option<u16>; 2] = [None; 2];
    let mut max_ts = [i64::MIN; 2];
    let mut audio_ts = Vec::new();
    for e in &events {
        match e {
            Event::Rtp(r) => {
                if let Some(prev) = last_seq[r.track] {
                    assert_eq!(
                        r.packet.sequence_number,
                        prev.wrapping_add(1),
                        "sequence continues across the loop"
                    );
                }
                last_seq[r.track] = Some(r.packet.sequence_number);
            }
            Event::Video(v) => max_ts[0] = max_ts[0].max(v.extended_timestamp),
            Event::Audio(a) => audio_ts.push(a.extended_timestamp),
            _ => {}
        }
    }
    // Audio timestamps strictly increase through both plays, 1024 apart
    // within a play.
    assert!(
        audio_ts.windows(2).all(|w| w[1] > w[0]),
        "audio timestamps increase across the loop"
    );
    assert!(audio_ts.windows(2).filter(|w| w[1] - w[0] != 1024).count() <= 1);
    server.shutdown();
}

/// Sends one raw request on a fresh connection and returns the status line.
fn raw_status(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).lines().next().unwrap_or("").to_owned()
}

fn describe(addr: SocketAddr, path: &str) -> String {
    raw_status(
        addr,
        &format!("DESCRIBE rtsp://{addr}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    )
}

async fn nothing_outside_the_root_is_served(runtime: ServerRuntime) {
    // root/inside.mp4 (a real file), root/sub/ok.mp4 -> ../inside.mp4 (a symlink
    // inside), root/escape.mp4 -> outside/secret.mp4, root/dir -> outside/.
    let tmp = std::env::temp_dir().join(format!("rtsp-toolkit-root-{}-{}", runtime.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (root, outside) = (tmp.join("root"), tmp.join("outside"));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(fixtures().join("h265.mp4"), root.join("inside.mp4")).unwrap();
    std::fs::copy(fixtures().join("h265.mp4"), outside.join("secret.mp4")).unwrap();
    std::os::unix::fs::symlink("../inside.mp4", root.join("sub/ok.mp4")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.mp4"), root.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("dir")).unwrap();

    let server = start(runtime, &root);
    let addr = server.local_addr();
    let ok = tokio::task::spawn_blocking(move || {
        let mut out = vec![];
        for path in ["/inside.mp4", "/sub/ok.mp4"] {
            out.push((path, describe(addr, path)));
        }
        for path in [
            "/escape.mp4",
            "/dir/secret.mp4",
            "/../outside/secret.mp4",
            "/%2e%2e/outside/secret.mp4",
            "/%2E%2e/outside/secret.mp4",
            "/%252e%252e/outside/secret.mp4",
            "/..%5coutside%5csecret.mp4",
            "/inside.mp4/../../outside/secret.mp4",
            "//etc/passwd",
            "/etc/passwd",
            "/nope.mp4",
            "/sub",
        ] {
            out.push((path, describe(addr, path)));
        }
        out
    })
    .await
    .unwrap();
    for (path, status) in &ok {
        let want = if ["/inside.mp4", "/sub/ok.mp4"].contains(path) {
            "200"
        } else {
            "404"
        };
        assert!(status.starts_with(&format!("RTSP/1.0 {want}")), "{path}: {status}");
    }
    let urls = server.urls();
    assert!(
        urls.iter().all(|u| !u.contains("escape") && !u.contains("secret")),
        "{urls:?}"
    );
    assert!(urls.iter().any(|u| u.ends_with("/inside.mp4")) && urls.iter().any(|u| u.ends_with("/sub/ok.mp4")));
    // After all that, a fresh OPTIONS still gets 200.
    let status = tokio::task::spawn_blocking(move || {
        raw_status(addr, &format!("OPTIONS rtsp://{addr}/ RTSP/1.0\r\nCSeq: 9\r\n\r\n"))
    })
    .await
    .unwrap();
    assert!(status.starts_with("RTSP/1.0 200"), "{status}");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&tmp);
}

async fn many_clients_at_once(runtime: ServerRuntime) {
    let server = start(runtime, &fixtures());
    let url = format!("rtsp://{}/h264_aac.mp4", server.local_addr());
    let runs = futures_util::future::join_all((0..20).map(|_| play_owned(url.clone()))).await;
    for (frames, events) in runs {
        assert_eq!(frames, [125, 216]);
        assert_eq!(closed_error(&events), None);
    }
    server.shutdown();
}

/// A client that asks for media and never reads is dropped by the documented
/// policy; a normal client on the same server is not affected.
async fn a_client_that_never_reads_is_dropped(runtime: ServerRuntime) {
    let opts = ServerOptions {
        write_stall: Duration::from_millis(500),
        send_buffer: Some(8 * 1024),
        ..Default::default()
    };
    let server = TestServer::with_options(runtime, fixtures(), opts);
    let addr = server.local_addr();
    // The stalled client: DESCRIBE, SETUP, PLAY on a looping file, with a
    // tiny receive buffer, then it never reads again.
    let stalled = tokio::task::spawn_blocking(move || {
        let mut s = small_buffer_connect(addr);
        let url = format!("rtsp://{addr}/h264_aac.mp4");
        for req in [
            format!("DESCRIBE {url}?play_count=0 RTSP/1.0\r\nCSeq: 0\r\n\r\n"),
            format!(
                "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ),
            format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
        ] {
            s.write_all(req.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    })
    .await
    .unwrap();
    let normal = play(&format!("rtsp://{addr}/h265.mp4")).await;
    assert_eq!(normal.0, [125, 0]);
    // By now (5 s of media later) the stalled connection has been dropped.
    let mut count = server.connections();
    for _ in 0..50 {
        if count == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        count = server.connections();
    }
    assert_eq!(count, 0, "the stalled connection is still open");
    drop(stalled);
    server.shutdown();
}

fn small_buffer_connect(addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    })
}

async fn shutdown_closes_sessions(runtime: ServerRuntime) {
    let server = start(runtime, &fixtures());
    let url = format!("rtsp://{}/h264_aac.mp4?play_count=0", server.local_addr());
    let mut session = Session::open(&url, ClientOptions::default()).unwrap();
    let mut frames = 0;
    let mut closed = None;
    let run = async {
        while let Some(e) = session.next().await {
            match e {
                Event::Video(_) => {
                    frames += 1;
                    if frames == 10 {
                        server.shutdown();
                    }
                }
                Event::Closed(c) => closed = Some(c),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("ended after shutdown");
    let closed = closed.expect("closed event");
    assert!(
        matches!(closed.error, Some(rtsp_toolkit_tokio::Error::Connection(_))),
        "{closed:?}"
    );
    server.wait().await;
}

/// Unsupported tracks are skipped, never transcoded; a file with none left is
/// refused with 415. The files are made with FFmpeg at test time.
async fn unsupported_tracks_are_skipped_and_unsupported_files_refused(runtime: ServerRuntime) {
    let dir = std::env::temp_dir().join(format!("rtsp-toolkit-codecs-{}-{}", runtime.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let make = |name: &str, vcodec: &str| {
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=64x48:rate=5",
                "-f",
                "lavfi",
                "-i",
            ])
            .args([
                "sine=frequency=440",
                "-t",
                "1",
                "-c:v",
                vcodec,
                "-c:a",
                "libmp3lame",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(dir.join(name))
            .status()
            .expect("ffmpeg (scripts/peers/install.sh)");
        assert!(status.success(), "ffmpeg made {name}");
    };
    make("h264_mp3.mp4", "libx264");
    make("mpeg4_mp3.mp4", "mpeg4");
    let server = start(runtime, &dir);
    let addr = server.local_addr();
    let refused = tokio::task::spawn_blocking(move || describe(addr, "/mpeg4_mp3.mp4"))
        .await
        .unwrap();
    assert!(refused.starts_with("RTSP/1.0 415"), "{refused}");
    let (frames, events) = play(&format!("rtsp://{addr}/h264_mp3.mp4")).await;
    assert_eq!(frames, [5, 0], "the H.264 track only");
    let setups = events
        .iter()
        .filter(|e| matches!(e, Event::Method(m) if m.method.as_str() == "SETUP"))
        .count();
    assert_eq!(setups, 1, "the MP3 track is not offered");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Past the connection limit new connections are closed at once; the server
/// keeps answering once a slot is free.
async fn connection_limit(runtime: ServerRuntime) {
    let limit = ServerOptions {
        max_connections: 2,
        ..Default::default()
    };
    let server = TestServer::with_options(runtime, fixtures(), limit);
    let addr = server.local_addr();
    let options = format!("OPTIONS rtsp://{addr}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    let (held, third, after) = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let third = raw_status(addr, &options);
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let after = raw_status(addr, &options);
        ((), third, after)
    })
    .await
    .unwrap();
    let () = held;
    assert_eq!(third, "", "the third connection is closed without an answer");
    assert!(after.starts_with("RTSP/1.0 200"), "{after}");
    server.shutdown();
}

/// Two sessions share one stop signal; dropping one ends that one only (its
/// connection closes), the other plays on and the signal stays down (`load`
/// shares one signal over all its sessions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_session_ends_it_and_not_the_others_sharing_its_signal() {
    let server = start(ServerRuntime::Tokio, &fixtures());
    let url = server.url("h264_aac.mp4?play_count=0");
    let stop = rtsp_toolkit_tokio::StopSignal::new();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut s = Session::open_with_stop(&url, ClientOptions::default(), stop.clone()).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = s.next().await {
                if matches!(e, Event::Rtp(_)) {
                    return true;
                }
            }
            false
        });
        assert!(first.await.expect("RTP in time"), "session ended before RTP");
        sessions.push(s);
    }
    assert_eq!(server.connections(), 2);
    drop(sessions.pop());
    // Its connection closes (TEARDOWN, then the close), bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.connections() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped session's connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!stop.is_stopped(), "dropping one session raised the shared signal");
    // The other plays on: a second of packets after the drop.
    let mut other = sessions.pop().unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut packets = 0;
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, other.next()).await {
            Ok(Some(Event::Rtp(_))) => packets += 1,
            Ok(Some(Event::Closed(c))) => panic!("the other session closed: {c:?}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the other session ended"),
            Err(_) => break,
        }
    }
    assert!(packets > 20, "{packets} packets in the second after the drop");
    // The shared signal still stops it.
    stop.stop();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = other.next().await {
            if let Event::Closed(c) = e {
                return c.error;
            }
        }
        panic!("no Closed event");
    });
    assert!(closed.await.expect("closed in time").is_none());
}
