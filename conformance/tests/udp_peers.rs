//! Our client over UDP against GStreamer's rtsp-server on loopback, on every
//! runtime: whole fixtures give exactly the frames they give over TCP, with
//! no loss, no warning, and receiver reports that say so; and each runtime's
//! capture of its UDP session replays to exactly its live events (the
//! cross-runtime parity of the UDP inputs).

use std::time::Duration;

use rtsp_toolkit_conformance::events::{closed_error, frames_by_track, methods, setup_transport_names};
use rtsp_toolkit_conformance::peers::GstServer;
use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime};
use rtsp_toolkit_core::capture::{replay, Capture};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport, TransportKind};
use rtsp_toolkit_core::rtcp::RtcpPacket;

/// Bound on one session in these tests.
const LIMIT: Duration = Duration::from_secs(40);

fn play(runtime: Runtime, url: &str, transport: Transport) -> Run {
    let opts = ClientOptions::default().with_transport(transport);
    runtimes::run(runtime, url, opts, Control::within(LIMIT))
}

/// Runs `a` and `b` at the same time (`a` on a thread of its own): the TCP
/// session that gives the expected frames plays beside the UDP sessions
/// compared with it, instead of before them.
fn beside<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    })
}

/// Removes a file when dropped (also when the test fails).
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Plays `url` over UDP on `runtime`, recording a capture; checks that the
/// capture replays to exactly the live events.
fn play_udp_recorded(runtime: Runtime, url: &str) -> Run {
    let path = std::env::temp_dir().join(format!(
        "rtsp-toolkit-udp-{}-{}.rtspcap",
        std::process::id(),
        runtime.name()
    ));
    let _file = TempFile(path.clone());
    let opts = ClientOptions::default()
        .with_transport(Transport::Udp)
        .with_capture(path.clone());
    let run = runtimes::run(runtime, url, opts, Control::within(LIMIT));
    let capture = Capture::parse(&std::fs::read(&path).expect("the capture file")).expect("a capture");
    let replayed = replay(&capture, ClientOptions::default(), std::time::Instant::now()).expect("replays");
    assert!(
        replayed == run.events,
        "{}: the UDP capture does not replay to the live events ({} vs {} events)",
        runtime.name(),
        replayed.len(),
        run.events.len()
    );
    run
}

#[test]
fn whole_fixtures_over_udp_give_the_frames_of_tcp_on_every_runtime() {
    let server = GstServer::start(None);
    for name in ["h264_aac.mp4", "h265.mp4", "pcm_16k_mono.wav"] {
        let url = server.url(name);
        let (tcp, udp) = beside(
            || play(Runtime::Tokio, &url, Transport::Tcp),
            || runtimes::at_once(|rt| play_udp_recorded(rt, &url)),
        );
        let expected = frames_by_track(&tcp.events);
        assert!(!expected.is_empty(), "{name}: no frames over TCP");
        assert_eq!(closed_error(&tcp.events), None, "{name}");
        for run in udp {
            let (rt, events) = (run.runtime.name(), &run.events);
            assert_eq!(closed_error(events), None, "{name} on {rt}");
            assert!(
                setup_transport_names(events).iter().all(|t| *t == "udp"),
                "{name} on {rt}"
            );
            assert!(
                !methods(events).iter().any(|(m, _)| m == "TEARDOWN") || closed_error(events).is_none(),
                "{name} on {rt}"
            );
            let got = frames_by_track(events);
            assert_eq!(got.len(), expected.len(), "{name} on {rt}: frame count");
            if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
                let show =
                    |f: &(usize, i64, Vec<u8>)| (f.0, f.1, f.2.len(), f.2.iter().take(8).copied().collect::<Vec<_>>());
                panic!(
                    "{name} on {rt}: frame {i} differs from TCP's: {:?} vs {:?}",
                    show(&got[i]),
                    show(&expected[i])
                );
            }
            let odd: Vec<&Event> = events
                .iter()
                .filter(|e| matches!(e, Event::Loss(_) | Event::Warning(_)))
                .collect();
            assert!(odd.is_empty(), "{name} on {rt}: {odd:?}");
            // Our receiver reports went out and say nothing was lost.
            let reports: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::RtcpSent(r) => Some(r),
                    _ => None,
                })
                .collect();
            assert!(!reports.is_empty(), "{name} on {rt}: no receiver report sent");
            for r in reports {
                for p in &r.packets {
                    if let RtcpPacket::ReceiverReport(rr) = p {
                        assert!(
                            rr.reports.iter().all(|b| b.cumulative_lost == 0),
                            "{name} on {rt}: {rr:?}"
                        );
                    }
                }
            }
            // The server's ports and SSRC were read back.
            let udp = events.iter().find_map(|e| match e {
                Event::Method(m) => m.track.as_ref().map(|t| t.transport),
                _ => None,
            });
            assert!(
                matches!(
                    udp,
                    Some(TransportKind::Udp {
                        server_ports: Some(_),
                        ..
                    })
                ),
                "{name} on {rt}: {udp:?}"
            );
        }
    }
}

/// RTCP receiver reports the client sent on `track`: (fraction lost,
/// cumulative lost, extended highest sequence number, jitter), in order.
fn receiver_reports(events: &[Event], track: usize) -> Vec<(u8, i32, u32, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RtcpSent(r) if r.track == track => Some(r),
            _ => None,
        })
        .flat_map(|r| r.packets.iter())
        .filter_map(|p| match p {
            RtcpPacket::ReceiverReport(rr) => rr.reports.first().copied(),
            _ => None,
        })
        .map(|b| (b.fraction_lost, b.cumulative_lost, b.highest_sequence, b.jitter))
        .collect()
}

/// Through a relay that drops, duplicates, reorders, delays and jitters the
/// video: frames equal the clean run's except those that lost data; the
/// losses are exactly the drops; jitter and the receiver reports agree with
/// what the relay did.
#[test]
fn impaired_udp_gives_exactly_the_scheduled_losses() {
    use rtsp_toolkit_conformance::impair::{Impairments, Relay, RelayOptions};
    let gst = GstServer::start(None);
    let name = "h264_aac.mp4";
    let clean = play(Runtime::Tokio, &gst.url(name), Transport::Tcp);
    let clean_frames = frames_by_track(&clean.events);
    let video = Impairments::new(7)
        .drop_packets([40, 41, 90, 200])
        .duplicate_probability(0.02)
        .reorder_probability(0.03, 3)
        .delay(Duration::from_millis(5))
        .jitter(Duration::from_millis(8));
    let relay = Relay::start_with(
        ([127, 0, 0, 1], gst.port).into(),
        RelayOptions::new(Impairments::new(7)).track(0, video),
    )
    .unwrap();
    let run = play(Runtime::Tokio, &relay.url(name), Transport::Udp);
    let report = relay.stop();
    let events = &run.events;
    assert_eq!(closed_error(events), None);
    let t = report
        .tracks
        .iter()
        .find(|t| t.track == 0)
        .expect("the video track went through the relay");
    assert!(!t.dropped.is_empty() && !t.reordered.is_empty(), "{t:?}");
    // Losses: exactly the dropped sequence numbers (all before the last packet).
    let mut lost: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            Event::Loss(l) if l.track == 0 => Some(l),
            _ => None,
        })
        .flat_map(|l| (1..=l.lost).map(move |k| l.sequence_number.wrapping_sub(k as u16)))
        .collect();
    lost.sort_unstable();
    let mut dropped = t.dropped.clone();
    dropped.sort_unstable();
    assert_eq!(lost, dropped, "loss events vs the relay's drops");
    assert!(
        !events.iter().any(|e| matches!(e, Event::Loss(l) if l.track == 1)),
        "audio was not impaired"
    );
    // Frames: audio untouched; video equal to the clean run's except the
    // frames that lost data (dropped, or flagged damaged).
    let audio = |f: &[(usize, i64, Vec<u8>)]| f.iter().filter(|f| f.0 == 1).cloned().collect::<Vec<_>>();
    assert!(
        audio(&frames_by_track(events)) == audio(&clean_frames),
        "audio frames differ"
    );
    let clean_video: std::collections::HashMap<i64, &Vec<u8>> =
        clean_frames.iter().filter(|f| f.0 == 0).map(|f| (f.1, &f.2)).collect();
    let mut intact = 0;
    let mut first_ts = None;
    for e in events {
        if let Event::Video(v) = e {
            let ts = v.extended_timestamp - *first_ts.get_or_insert(v.extended_timestamp);
            if v.frame.loss == 0 {
                let want = clean_video.get(&ts).expect("a frame of the clean run");
                assert!(**want == v.frame.data.to_vec(), "frame at {ts} differs");
                intact += 1;
            }
        }
    }
    assert!(
        intact + 4 * dropped.len() >= clean_video.len(),
        "{intact} intact of {}",
        clean_video.len()
    );
    // Receiver reports: the last cumulative count is the drops; each
    // report's fraction is its interval's loss.
    let rrs = receiver_reports(events, 0);
    assert!(rrs.len() >= 2, "{rrs:?}");
    let last = rrs.last().unwrap();
    assert_eq!(last.1 as usize, dropped.len(), "{rrs:?}");
    let mut prev = (0i32, 0u32);
    for (i, (fraction, cum, highest, _)) in rrs.iter().enumerate() {
        if i > 0 && *highest > prev.1 {
            let expected = u64::from(highest - prev.1);
            let lost = (cum - prev.0).max(0) as u64;
            assert_eq!(
                u64::from(*fraction),
                (lost * 256 / expected).min(255),
                "report {i}: {rrs:?}"
            );
        }
        prev = (*cum, *highest);
    }
    // Jitter: within 20 % of what the relay measured on what it sent.
    let reference = t.jitter.expect("the relay's jitter");
    let ours = f64::from(last.3);
    assert!(
        (ours - reference).abs() <= 0.2 * reference,
        "reported jitter {ours} vs the relay's {reference:.1} (timestamp units)"
    );
}

/// A GStreamer server that offers TCP only answers a UDP SETUP with 461: the
/// session goes on over TCP on the same connection.
#[test]
fn auto_falls_back_when_the_server_refuses_udp() {
    let gst = GstServer::start_with(None, &["--protocols", "tcp"]);
    let url = gst.url("h264_aac.mp4");
    for run in runtimes::at_once(|rt| play(rt, &url, Transport::Auto)) {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(closed_error(events), None, "{rt}");
        let fallbacks: Vec<_> = events
            .iter()
            .filter_map(|e| if let Event::Fallback(f) = e { Some(f) } else { None })
            .collect();
        assert_eq!(fallbacks.len(), 1, "{rt}: {fallbacks:?}");
        assert!(fallbacks[0].reason.contains("461"), "{rt}: {}", fallbacks[0].reason);
        assert_eq!(setup_transport_names(events), ["tcp", "tcp"], "{rt}");
        assert_eq!(frames_by_track(events).len(), 125 + 215, "{rt}");
    }
}

/// A server whose UDP never arrives (a relay that drops every datagram):
/// after `udp_fallback_after`, TEARDOWN and a fresh session over TCP.
#[test]
fn auto_falls_back_when_no_udp_arrives() {
    use rtsp_toolkit_conformance::impair::{Impairments, Relay};
    let gst = GstServer::start(None);
    let relay = Relay::start(
        ([127, 0, 0, 1], gst.port).into(),
        Impairments::new(1).drop_probability(1.0),
    )
    .unwrap();
    let url = relay.url("h264_aac.mp4");
    let opts = ClientOptions::default()
        .with_transport(Transport::Auto)
        .with_udp_fallback_after(Duration::from_millis(1500));
    for run in runtimes::at_once(|rt| runtimes::run(rt, &url, opts.clone(), Control::within(LIMIT))) {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(closed_error(events), None, "{rt}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Fallback(f) if f.reason.contains("no RTP"))),
            "{rt}"
        );
        let connects = events.iter().filter(|e| matches!(e, Event::Connect(_))).count();
        assert_eq!(connects, 2, "{rt}: a fresh connection");
        assert_eq!(setup_transport_names(events), ["udp", "udp", "tcp", "tcp"], "{rt}");
        let m: Vec<String> = methods(events).into_iter().map(|(m, _)| m).collect();
        let teardown = m
            .iter()
            .position(|m| m == "TEARDOWN")
            .expect("the UDP session torn down");
        assert!(
            m[teardown + 1..].starts_with(&["OPTIONS".to_string(), "DESCRIBE".to_string()]),
            "{rt}: {m:?}"
        );
        assert_eq!(frames_by_track(events).len(), 125 + 215, "{rt}");
    }
    drop(relay);
}

/// Datagrams sent to the client's ports from another local port are
/// dropped and counted, never frames.
#[test]
fn injected_datagrams_are_dropped() {
    use rtsp_toolkit_conformance::impair::{Impairments, Relay};
    let gst = GstServer::start(None);
    // The relay tells us the client's ports (from its SETUP); it impairs nothing.
    let relay = Relay::start(([127, 0, 0, 1], gst.port).into(), Impairments::new(1)).unwrap();
    let url = relay.url("h264_aac.mp4");
    let opts = ClientOptions::default().with_transport(Transport::Udp);
    let (run, sent) = std::thread::scope(|s| {
        let relay = &relay;
        let injector = s.spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut sent = 0;
            while std::time::Instant::now() < deadline && sent < 200 {
                let ports = relay
                    .report()
                    .tracks
                    .first()
                    .map(|t| t.client_ports)
                    .filter(|p| p.0 != 0);
                if let Some((rtp, rtcp)) = ports {
                    // A valid-looking RTP packet with a far sequence number, and an RTCP BYE.
                    let mut p = vec![0x80, 96, 0x7f, 0xff, 0, 0, 0, 0, 1, 2, 3, 4];
                    p.extend_from_slice(&[0x65; 100]);
                    let _ = socket.send_to(&p, ("127.0.0.1", rtp));
                    let _ = socket.send_to(&[0x81, 203, 0, 1, 1, 2, 3, 4], ("127.0.0.1", rtcp));
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        });
        let control = Control::within(LIMIT).stop_after(Duration::from_secs(3));
        let run = runtimes::run(Runtime::Tokio, &url, opts, control);
        (run, injector.join().unwrap())
    });
    assert!(sent > 0, "nothing injected");
    let events = &run.events;
    assert_eq!(closed_error(events), None);
    let warned = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Warning(rtsp_toolkit_core::client::Warning::ForeignDatagram { .. })
            )
        })
        .count();
    assert!(warned >= 1, "no ForeignDatagram warning");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Rtp(r) if r.packet.ssrc == 0x0102_0304)),
        "an injected packet became an RTP event"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Rtcp(r)
            if r.packets.iter().any(|p| matches!(p, RtcpPacket::Bye(b) if b.ssrcs.contains(&0x0102_0304))))),
        "an injected BYE was taken"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Loss(_))),
        "an injected packet caused a loss"
    );
    assert!(frames_by_track(events).len() > 10);
}

/// Our client joins the multicast group GStreamer names, inside a network
/// namespace of its own (nothing leaves it), on every runtime. GStreamer's
/// multicast stream to a receiver on its own host breaks off after its first
/// RTCP exchange (about 2.5 s; see `scripts/peers/gst-rtsp-server.py`), so
/// the sessions are stopped after 2 s and checked for what came until then.
#[test]
fn multicast_from_gstreamer_in_a_namespace() {
    rtsp_toolkit_conformance::netns::run(|| {
        let gst = GstServer::start_with(None, &["--multicast"]);
        let url = gst.url("h264_aac.mp4");
        let opts = ClientOptions::default().with_transport(Transport::Multicast);
        let control = Control::within(LIMIT).stop_after(Duration::from_secs(2));
        for run in runtimes::at_once(|rt| runtimes::run(rt, &url, opts.clone(), control)) {
            let (rt, events) = (run.runtime.name(), &run.events);
            assert_eq!(closed_error(events), None, "{rt}");
            assert_eq!(setup_transport_names(events), ["multicast", "multicast"], "{rt}");
            let group = events.iter().find_map(|e| match e {
                Event::Method(m) => m.track.as_ref().map(|t| t.transport),
                _ => None,
            });
            assert!(
                matches!(group, Some(TransportKind::Multicast { group, .. }) if group.is_multicast()),
                "{rt}: {group:?}"
            );
            let n = frames_by_track(events).len();
            assert!(n >= 10, "{rt}: {n} frames over multicast");
            assert!(!events.iter().any(|e| matches!(e, Event::Warning(_))), "{rt}");
        }
    });
}

/// Our client over UDP against our own server (tokio and smol), on every
/// runtime at once: the frames of TCP, no loss, receiver reports out.
fn ours_over_udp(server: rtsp_toolkit_conformance::servers::ServerRuntime) {
    use rtsp_toolkit_conformance::servers::TestServer;
    let server = TestServer::start(server, rtsp_toolkit_conformance::media_dir());
    for name in ["h264_aac.mp4", "h265_aac.mkv", "pcm_16k_mono.wav"] {
        let url = server.url(name);
        let (tcp, udp) = beside(
            || play(Runtime::Blocking, &url, Transport::Tcp),
            || runtimes::at_once(|rt| play(rt, &url, Transport::Udp)),
        );
        let expected = frames_by_track(&tcp.events);
        assert!(!expected.is_empty(), "{name}");
        for run in udp {
            let (rt, events) = (run.runtime.name(), &run.events);
            assert_eq!(closed_error(events), None, "{name} on {rt}");
            assert!(
                setup_transport_names(events).iter().all(|t| *t == "udp"),
                "{name} on {rt}"
            );
            let got = frames_by_track(events);
            assert_eq!(got.len(), expected.len(), "{name} on {rt}: frame count");
            assert!(got == expected, "{name} on {rt}: frames differ from TCP's");
            let odd: Vec<&Event> = events
                .iter()
                .filter(|e| matches!(e, Event::Loss(_) | Event::Warning(_)))
                .collect();
            assert!(odd.is_empty(), "{name} on {rt}: {odd:?}");
            assert!(events.iter().any(|e| matches!(e, Event::RtcpSent(_))), "{name} on {rt}");
        }
    }
}

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    ours_over_udp
);
