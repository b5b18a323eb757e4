//! Our client over UDP against GStreamer's rtsp-server on loopback, on every
//! runtime: whole fixtures give exactly the frames they give over TCP, with
//! no loss, no warning, and receiver reports that say so; and each runtime's
//! capture of its UDP session replays to exactly its live events (the
//! cross-runtime parity of the UDP inputs).

use std::time::Duration;

use rtsp_toolkit_conformance::events::{closed_error, methods};
use rtsp_toolkit_conformance::peers::GstServer;
use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime};
use rtsp_toolkit_core::capture::{replay, Capture};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport, TransportKind};
use rtsp_toolkit_core::rtcp::RtcpPacket;

/// Bound on one session in these tests.
const LIMIT: Duration = Duration::from_secs(40);

fn play(runtime: Runtime, url: &str, transport: Transport) -> Run {
    let opts = ClientOptions {
        transport,
        ..Default::default()
    };
    runtimes::run(runtime, url, opts, Control::within(LIMIT))
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
    let opts = ClientOptions {
        transport: Transport::Udp,
        capture: Some(path.clone()),
        ..Default::default()
    };
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

/// Every frame of every track, in order: (track, extended timestamp, bytes).
fn frames(events: &[Event]) -> Vec<(usize, i64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some((v.track, v.extended_timestamp, v.frame.data.to_vec())),
            Event::Audio(a) => Some((a.track, a.extended_timestamp, a.frame.data.to_vec())),
            _ => None,
        })
        .collect()
}

fn transports(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Method(m) => m.track.as_ref().map(|t| t.transport.name()),
            _ => None,
        })
        .collect()
}

#[test]
fn whole_fixtures_over_udp_give_the_frames_of_tcp_on_every_runtime() {
    let server = GstServer::start(None);
    for name in ["h264_aac.mp4", "h265.mp4", "pcm_16k_mono.wav"] {
        let url = server.url(name);
        let tcp = play(Runtime::Tokio, &url, Transport::Tcp);
        let expected = frames(&tcp.events);
        assert!(!expected.is_empty(), "{name}: no frames over TCP");
        assert_eq!(closed_error(&tcp.events), None, "{name}");
        for run in runtimes::at_once(|rt| play_udp_recorded(rt, &url)) {
            let (rt, events) = (run.runtime.name(), &run.events);
            assert_eq!(closed_error(events), None, "{name} on {rt}");
            assert!(transports(events).iter().all(|t| *t == "udp"), "{name} on {rt}");
            assert!(
                !methods(events).iter().any(|(m, _)| m == "TEARDOWN") || closed_error(events).is_none(),
                "{name} on {rt}"
            );
            let got = frames(events);
            assert_eq!(got.len(), expected.len(), "{name} on {rt}: frame count");
            assert!(got == expected, "{name} on {rt}: frames differ from TCP's");
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
                        assert!(rr.reports.iter().all(|b| b.cumulative_lost == 0), "{name} on {rt}: {rr:?}");
                    }
                }
            }
            // The server's ports and SSRC were read back.
            let udp = events.iter().find_map(|e| match e {
                Event::Method(m) => m.track.as_ref().map(|t| t.transport),
                _ => None,
            });
            assert!(
                matches!(udp, Some(TransportKind::Udp { server_ports: Some(_), .. })),
                "{name} on {rt}: {udp:?}"
            );
        }
    }
}
