//! Our file server against third-party clients on loopback: `ffprobe`
//! (FFmpeg), GStreamer's `rtspsrc`, and retina, over TCP interleaved and
//! (ffprobe, GStreamer) over UDP. Every fixture must give the frames the
//! file has, from the tokio server and the smol server alike (each test
//! runs once per server, in `tokio_server` and `smol_server`).

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{PlayOptions, Session as RetinaSession, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;
use rtsp_toolkit_conformance::peers::{
    ffprobe_count_frames, gst_ended_well, gst_fakesink_frames, parse_ffprobe_counts,
};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::server::ServerEvent;
use rtsp_toolkit_media::serving::{EventHook, ServerOptions};

rtsp_toolkit_conformance::on_every_server!(
    #[tokio::test]
    ffprobe_counts_every_frame,
    ffprobe_play_count_two_counts_twice,
    gstreamer_rtspsrc_receives_every_frame,
    retina_receives_every_frame,
    ffprobe_over_udp_counts_what_tcp_counts,
    gstreamer_rtspsrc_over_udp_plays_to_the_end,
);

use rtsp_toolkit_conformance::peers::FFPROBE_COUNTS as FIXTURES;

fn start(runtime: ServerRuntime) -> TestServer {
    TestServer::start(runtime, rtsp_toolkit_conformance::media_dir())
}

/// What the server reported: when (since the server started), the
/// client's address, the event.
type Log = Arc<Mutex<Vec<(Duration, Option<SocketAddr>, ServerEvent)>>>;

/// [`start`], with every server event logged, so that a failure shows what
/// the server saw and did.
fn start_logged(runtime: ServerRuntime) -> (TestServer, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let t0 = Instant::now();
    let options = ServerOptions {
        events: Some(EventHook::new(move |peer, e: &ServerEvent| {
            sink.lock().unwrap().push((t0.elapsed(), peer, e.clone()))
        })),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options);
    (server, log)
}

/// The log, one event per line, without progress reports.
fn show(log: &Log) -> String {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, _, e)| !matches!(e, ServerEvent::Progress { .. }))
        .map(|(t, peer, e)| format!("{:>8.3} {peer:?} {e:?}\n", t.as_secs_f64()))
        .collect()
}

/// Runs a command with a deadline; its output, whatever its status.
async fn output(mut cmd: Command, limit: Duration) -> Output {
    tokio::time::timeout(limit, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("command finished in time")
        .unwrap()
        .expect("command ran")
}

/// Runs a command with a deadline; its stdout.
async fn run(cmd: Command, limit: Duration) -> String {
    let out = output(cmd, limit).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ffprobe(url: &str, extra: &[&str]) -> Command {
    ffprobe_count_frames(url, "tcp", extra)
}

async fn ffprobe_counts_every_frame(runtime: ServerRuntime) {
    let server = start(runtime);
    // All at once: pacing is real time.
    let runs = futures_util::future::join_all(FIXTURES.iter().map(|(name, _)| {
        let url = format!("rtsp://{}/{name}", server.local_addr());
        run(ffprobe(&url, &[]), Duration::from_secs(40))
    }))
    .await;
    for ((name, want), out) in FIXTURES.iter().zip(runs) {
        let want: Vec<(String, usize)> = want.iter().map(|(c, n)| (c.to_string(), *n)).collect();
        assert_eq!(parse_ffprobe_counts(&out), want, "{name}");
    }
    server.shutdown();
}

async fn ffprobe_play_count_two_counts_twice(runtime: ServerRuntime) {
    let server = start(runtime);
    let url = format!("rtsp://{}/h264_aac.mp4?play_count=2", server.local_addr());
    let out = run(ffprobe(&url, &[]), Duration::from_secs(40)).await;
    assert_eq!(
        parse_ffprobe_counts(&out),
        vec![("h264".into(), 250), ("aac".into(), 432)]
    );
    server.shutdown();
}

/// GStreamer's rtspsrc over TCP: frames counted at a fakesink; it ends on our BYE (EOS).
async fn gstreamer_rtspsrc_receives_every_frame(runtime: ServerRuntime) {
    let cases = [
        ("h264_aac.mp4", "rtph264depay ! h264parse", 125),
        ("h265.mp4", "rtph265depay ! h265parse", 125),
        ("tone.aac", "rtpmp4gdepay ! aacparse", 217),
    ];
    gstreamer_plays_to_the_end(runtime, "tcp", &cases).await;
}

/// GStreamer's rtspsrc with `protocols` on each case (file, depayloader
/// chain, frames): every frame reaches the fakesink, and our BYE ends it (EOS).
async fn gstreamer_plays_to_the_end(runtime: ServerRuntime, protocols: &str, cases: &[(&str, &str, usize)]) {
    let (server, log) = start_logged(runtime);
    let runs = futures_util::future::join_all(cases.iter().map(|(name, chain, _)| {
        let mut c = Command::new("gst-launch-1.0");
        let pipeline = format!(
            "rtspsrc location=rtsp://{}/{name} protocols={protocols} name=s s. ! {chain} ! fakesink silent=false",
            server.local_addr()
        );
        c.arg("-v").args(pipeline.split(' '));
        output(c, Duration::from_secs(40))
    }))
    .await;
    for ((name, _, want), out) in cases.iter().zip(runs) {
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // A failure shows what the server saw and did.
        assert!(
            gst_ended_well(out.status, &stdout, &stderr),
            "{name} over {protocols}: {stderr}\nthe server's events:\n{}",
            show(&log)
        );
        let out = stdout;
        assert_eq!(gst_fakesink_frames(&out), *want, "{name} over {protocols}");
        assert!(out.contains("Got EOS"), "{name} over {protocols}: no EOS");
    }
    // The server closed each connection because the client asked or left,
    // never on its own (GStreamer ends its session with TEARDOWN). The
    // clients have exited; their EOFs reach the server within moments.
    let closes = || -> Vec<String> {
        log.lock()
            .unwrap()
            .iter()
            .filter_map(|(_, _, e)| match e {
                ServerEvent::Closed { reason, .. } => Some(format!("{reason:?}")),
                _ => None,
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while closes().len() < cases.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closes = closes();
    assert_eq!(closes.len(), cases.len(), "{}", show(&log));
    assert!(
        closes.iter().all(|r| r == "Teardown" || r == "PeerClosed"),
        "{closes:?}\n{}",
        show(&log)
    );
    server.shutdown();
}

/// retina against our server: the frames of every track of every fixture.
async fn retina_receives_every_frame(runtime: ServerRuntime) {
    let server = start(runtime);
    let runs = futures_util::future::join_all(FIXTURES.iter().map(|(name, want)| {
        let url = format!("rtsp://{}/{name}", server.local_addr());
        let total: usize = want.iter().map(|(_, n)| n).sum();
        retina_frames(url, total)
    }))
    .await;
    for ((name, want), got) in FIXTURES.iter().zip(runs) {
        let total: usize = want.iter().map(|(_, n)| n).sum();
        assert_eq!(got, total, "{name}");
    }
    server.shutdown();
}

async fn retina_frames(url: String, expected: usize) -> usize {
    let mut session = RetinaSession::describe(url::Url::parse(&url).unwrap(), SessionOptions::default())
        .await
        .expect("retina DESCRIBE");
    for i in 0..session.streams().len() {
        session
            .setup(i, SetupOptions::default().transport(Transport::Tcp(Default::default())))
            .await
            .expect("retina SETUP");
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("retina PLAY")
        .demuxed()
        .unwrap();
    let mut n = 0;
    while n < expected {
        match tokio::time::timeout(Duration::from_secs(3), demuxed.next()).await {
            Ok(Some(Ok(CodecItem::VideoFrame(_) | CodecItem::AudioFrame(_)))) => n += 1,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("{url}: retina: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    n
}

/// `ffprobe -rtsp_transport udp` counts every frame of every fixture, the
/// same counts as over TCP in the same run (loopback loses nothing).
async fn ffprobe_over_udp_counts_what_tcp_counts(runtime: ServerRuntime) {
    let server = start(runtime);
    let runs = futures_util::future::join_all(FIXTURES.iter().flat_map(|(name, _)| {
        let url = format!("rtsp://{}/{name}", server.local_addr());
        ["udp", "tcp"].map(|transport| run(ffprobe_count_frames(&url, transport, &[]), Duration::from_secs(40)))
    }))
    .await;
    for ((name, want), out) in FIXTURES.iter().zip(runs.chunks(2)) {
        let want: Vec<(String, usize)> = want.iter().map(|(c, n)| (c.to_string(), *n)).collect();
        assert_eq!(parse_ffprobe_counts(&out[0]), want, "{name} over UDP");
        assert_eq!(
            parse_ffprobe_counts(&out[0]),
            parse_ffprobe_counts(&out[1]),
            "{name}: UDP vs TCP"
        );
    }
    server.shutdown();
}

/// GStreamer's rtspsrc over UDP only: every frame, and EOS on our BYE
/// (sent to its RTCP port).
async fn gstreamer_rtspsrc_over_udp_plays_to_the_end(runtime: ServerRuntime) {
    let cases = [
        ("h264_aac.mp4", "rtph264depay ! h264parse", 125),
        ("tone.aac", "rtpmp4gdepay ! aacparse", 217),
    ];
    gstreamer_plays_to_the_end(runtime, "udp", &cases).await;
}
