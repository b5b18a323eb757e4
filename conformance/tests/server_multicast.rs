//! Our file server's multicast streams (`RTP/AVP;multicast`), each test in a
//! network namespace of its own (`conformance::netns`: only `lo`, multicast
//! on; nothing leaves it), on the tokio and the smol server:
//! - `ffprobe -rtsp_transport udp_multicast` counts every frame of every
//!   fixture, as over TCP in the same run (every fixture streams at once,
//!   each to a group of its own);
//! - GStreamer's `rtspsrc protocols=udp-mcast` plays to the end (EOS on our
//!   BYE);
//! - our client (tokio runtime) over multicast gets the frames it gets over
//!   TCP, and hears the same group, port and TTL the server was given;
//! - two of our clients on one path share one stream: the same group and
//!   SSRCs, the later one gets every frame from where it joined to the end;
//! - a published (live) path over multicast: our publisher publishes a file,
//!   our client and ffprobe read the path's group, from a keyframe to the
//!   publisher's end (the stream's BYE), every frame.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::events::{closed_error, frames_by_track, setup_transports};
use rtsp_toolkit_conformance::netns;
use rtsp_toolkit_conformance::peers::{
    ffprobe_count_frames, gst_ended_well, gst_fakesink_frames, parse_ffprobe_counts,
};
use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport, TransportKind};
use rtsp_toolkit_core::server::{GroupRange, PortRange};
use rtsp_toolkit_media::serving::ServerOptions;

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    ffprobe_over_multicast_counts_what_tcp_counts,
    gstreamer_rtspsrc_over_multicast_plays_to_the_end,
    our_client_over_multicast_gets_the_frames_of_tcp,
    two_clients_on_one_path_share_one_stream,
    a_published_path_goes_to_a_group_too,
);

use rtsp_toolkit_conformance::peers::FFPROBE_COUNTS as FIXTURES;

/// Longest any one peer or session may take (the fixtures last 5 s).
const LIMIT: Duration = Duration::from_secs(40);

/// A server whose groups, ports and TTL are not the defaults, so that the
/// tests see them come through.
fn server(runtime: ServerRuntime) -> TestServer {
    let mut options = ServerOptions::default();
    options.config.multicast_groups = GroupRange::parse("239.255.77.10-239.255.77.40").unwrap();
    options.config.multicast_ports = PortRange::new(46_000, 46_099).unwrap();
    options.config.multicast_ttl = 2;
    TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options)
}

/// Runs `cmd` to its end (killed past `limit`); its stdout, after checking
/// that it succeeded.
fn output(mut cmd: Command, limit: Duration) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the peer starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} ran past {limit:?}");
            }
        }
    };
    let (out, err) = (readers.0.join().unwrap(), readers.1.join().unwrap());
    // GStreamer's own race at its shutdown after EOS is not a failure.
    assert!(gst_ended_well(status, &out, &err), "{cmd:?}: {status}\n{err}");
    out
}

fn ffprobe_over_multicast_counts_what_tcp_counts(runtime: ServerRuntime) {
    netns::run(|| {
        let server = server(runtime);
        let outs: Vec<(String, String)> = std::thread::scope(|s| {
            let runs: Vec<_> = FIXTURES
                .iter()
                .map(|(name, _)| {
                    let url = server.url(name);
                    s.spawn(move || {
                        let tcp = std::thread::spawn({
                            let url = url.clone();
                            move || output(ffprobe_count_frames(&url, "tcp", &[]), LIMIT)
                        });
                        let multicast = output(ffprobe_count_frames(&url, "udp_multicast", &[]), LIMIT);
                        (multicast, tcp.join().unwrap())
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for ((name, want), (multicast, tcp)) in FIXTURES.iter().zip(outs) {
            let want: Vec<(String, usize)> = want.iter().map(|(c, n)| (c.to_string(), *n)).collect();
            assert_eq!(parse_ffprobe_counts(&multicast), want, "{name} over multicast");
            assert_eq!(
                parse_ffprobe_counts(&multicast),
                parse_ffprobe_counts(&tcp),
                "{name}: multicast vs TCP"
            );
        }
    });
}

fn gstreamer_rtspsrc_over_multicast_plays_to_the_end(runtime: ServerRuntime) {
    netns::run(|| {
        let server = server(runtime);
        let cases = [
            ("h264_aac.mp4", "rtph264depay ! h264parse", 125),
            ("tone.aac", "rtpmp4gdepay ! aacparse", 217),
        ];
        let outs: Vec<String> = std::thread::scope(|s| {
            let runs: Vec<_> = cases
                .iter()
                .map(|(name, chain, _)| {
                    let pipeline = format!(
                        "rtspsrc location={} protocols=udp-mcast name=s s. ! {chain} ! fakesink silent=false",
                        server.url(name)
                    );
                    s.spawn(move || {
                        let mut c = Command::new("gst-launch-1.0");
                        c.arg("-v").args(pipeline.split(' '));
                        output(c, LIMIT)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for ((name, _, want), out) in cases.iter().zip(outs) {
            let frames = gst_fakesink_frames(&out);
            assert_eq!(frames, *want, "{name}");
            assert!(out.contains("Got EOS"), "{name}: no EOS");
        }
    });
}

fn play(url: &str, transport: Transport) -> Run {
    let opts = ClientOptions::default().with_transport(transport);
    runtimes::run(Runtime::Tokio, url, opts, Control::within(LIMIT))
}

fn lost(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Loss(_))).count()
}

fn our_client_over_multicast_gets_the_frames_of_tcp(runtime: ServerRuntime) {
    netns::run(|| {
        let server = server(runtime);
        for name in ["h264_aac.mp4", "pcm_16k_mono.wav"] {
            let url = server.url(name);
            let (multicast, tcp) = std::thread::scope(|s| {
                let tcp = s.spawn(|| play(&url, Transport::Tcp));
                (play(&url, Transport::Multicast), tcp.join().unwrap())
            });
            for run in [&multicast, &tcp] {
                assert_eq!(closed_error(&run.events), None, "{name}");
            }
            let kinds = setup_transports(&multicast.events);
            assert!(!kinds.is_empty());
            for (k, kind) in kinds.iter().enumerate() {
                let TransportKind::Multicast { group, ports, ttl, .. } = *kind else {
                    panic!("{name}: {kind:?}");
                };
                assert!(
                    group.to_string().starts_with("239.255.77."),
                    "{name}: {group} from the configured range"
                );
                assert_eq!(ports, (46_000 + 2 * k as u16, 46_001 + 2 * k as u16), "{name}");
                assert_eq!(ttl, Some(2), "{name}");
            }
            assert_eq!(lost(&multicast.events), 0, "{name}");
            let (m, t) = (frames_by_track(&multicast.events), frames_by_track(&tcp.events));
            assert_eq!(m.len(), t.len(), "{name}: frames over multicast vs TCP");
            assert!(m == t, "{name}: the frames differ");
        }
    });
}

fn two_clients_on_one_path_share_one_stream(runtime: ServerRuntime) {
    netns::run(|| {
        let server = server(runtime);
        let url = server.url("h264_aac.mp4");
        let (first, later) = std::thread::scope(|s| {
            let first = s.spawn(|| play(&url, Transport::Multicast));
            std::thread::sleep(Duration::from_millis(1500));
            let later = play(&url, Transport::Multicast);
            (first.join().unwrap(), later)
        });
        for run in [&first, &later] {
            assert_eq!(closed_error(&run.events), None);
            assert_eq!(lost(&run.events), 0);
        }
        // One stream: the same groups, ports and SSRCs.
        let (a, b) = (setup_transports(&first.events), setup_transports(&later.events));
        assert_eq!(a.len(), 2);
        assert_eq!(a, b, "the later session joined the running stream");
        // The first got the whole file; the later one every frame from where it
        // joined to the end (its frames are the tail of the first one's).
        let (fa, fb) = (all_frames(&first.events), all_frames(&later.events));
        assert_eq!(fa.iter().filter(|f| f.0 == 0).count(), 125);
        assert_eq!(fa.iter().filter(|f| f.0 == 1).count(), 216);
        for track in [0, 1] {
            let ta: Vec<_> = fa.iter().filter(|f| f.0 == track).map(|f| &f.1).collect();
            let tb: Vec<_> = fb.iter().filter(|f| f.0 == track).map(|f| &f.1).collect();
            assert!(
                !tb.is_empty() && tb.len() < ta.len(),
                "track {track}: {} of {}",
                tb.len(),
                ta.len()
            );
            let tail = &ta[ta.len() - tb.len()..];
            // Equal, except that the first key frame the later client sees may
            // carry the parameter sets of the SDP in front (the first client's
            // came with them in band).
            let differ: Vec<usize> = (0..tb.len()).filter(|i| tail[*i] != tb[*i]).collect();
            assert!(
                differ.len() <= 1,
                "track {track}: frames {differ:?} of {} differ",
                tb.len()
            );
            for i in differ {
                assert!(
                    tb[i].len() > tail[i].len() && tb[i].ends_with(tail[i]),
                    "track {track}: frame {i}: {} bytes vs {}",
                    tb[i].len(),
                    tail[i].len()
                );
            }
        }
    });
}

/// Every frame: (track, payload), in arrival order per track.
fn all_frames(events: &[Event]) -> Vec<(usize, Vec<u8>)> {
    frames_by_track(events).into_iter().map(|(t, _, d)| (t, d)).collect()
}

fn a_published_path_goes_to_a_group_too(runtime: ServerRuntime) {
    netns::run(|| {
        let mut options = ServerOptions::default();
        options.config.multicast_groups = GroupRange::parse("239.255.77.10-239.255.77.40").unwrap();
        options.config.publish = vec!["live".into()];
        let server = TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options);
        let url = server.url("live");
        let file = rtsp_toolkit_conformance::media_dir().join("h264_aac.mp4");
        let source = std::sync::Arc::new(rtsp_toolkit_media::open(&file).unwrap());
        let publish_url = url.clone();
        let publisher = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(rtsp_toolkit_tokio::publish::publish(
                &publish_url,
                source,
                Default::default(),
                rtsp_toolkit_core::stop::StopSignal::new(),
                |_| {},
            ))
        });
        server.wait_for_describe(&url, 200, Duration::from_secs(10));
        let (ours, ffprobe) = std::thread::scope(|s| {
            let f = s.spawn(|| output(ffprobe_count_frames(&url, "udp_multicast", &[]), LIMIT));
            (play(&url, Transport::Multicast), f.join().unwrap())
        });
        assert!(publisher.join().unwrap().is_ok());
        assert_eq!(closed_error(&ours.events), None);
        assert_eq!(lost(&ours.events), 0);
        let kinds = setup_transports(&ours.events);
        assert!(
            kinds.iter().all(|k| matches!(k, TransportKind::Multicast { .. })),
            "{kinds:?}"
        );
        let video: Vec<_> = ours
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Video(v) => Some(v.frame.keyframe),
                _ => None,
            })
            .collect();
        // The file: 125 frames, keyframes every 25.
        assert!(video.first() == Some(&true), "the first frame is a keyframe");
        assert!([125, 100, 75].contains(&video.len()), "{} video frames", video.len());
        let counts = parse_ffprobe_counts(&ffprobe);
        let h264 = counts.iter().find(|(c, _)| c == "h264").map_or(0, |c| c.1);
        assert!([125, 100, 75].contains(&h264), "ffprobe: {counts:?}");
    });
}
