//! Smoke test of the impairment relay (`conformance::impair`) with real
//! peers: GStreamer's rtsp-server behind it, `ffprobe -rtsp_transport udp`
//! in front. The relay's own behaviour is unit-tested in `src/impair.rs`;
//! this checks that it speaks to third-party RTSP stacks (their SETUP
//! replies, SDP and RTCP) and that its report names the packets it impaired.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::impair::{Impairments, Relay, RelayOptions};
use rtsp_toolkit_conformance::peers::{ffprobe_count_frames, parse_ffprobe_counts, GstServer};

/// `ffprobe` over UDP with a deadline: (codec, frames) per stream.
fn ffprobe_udp(url: &str, limit: Duration) -> Vec<(String, usize)> {
    let mut child = ffprobe_count_frames(url, "udp", &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ffprobe");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("ffprobe status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ffprobe ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("ffprobe output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    parse_ffprobe_counts(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn ffprobe_over_udp_through_the_relay_to_gstreamer() {
    let gst = GstServer::start(None);
    let server: SocketAddr = ([127, 0, 0, 1], gst.port).into();
    // Video (track 0) only: two drops, a duplicate, a swap.
    let video = Impairments::new(13)
        .drop_packets([50, 51])
        .duplicate_packets([60])
        .reorder_packets([70], 2);
    let relay = Relay::start_with(server, RelayOptions::new(Impairments::new(13)).track(0, video)).unwrap();
    // A clean direct run at the same time, for the counts to compare with.
    let direct_url = gst.url("h264_aac.mp4");
    let direct = std::thread::spawn(move || ffprobe_udp(&direct_url, Duration::from_secs(60)));
    let counts = ffprobe_udp(&relay.url("h264_aac.mp4"), Duration::from_secs(60));
    let direct = direct.join().expect("the direct ffprobe");
    let report = relay.stop();

    assert_eq!(report.connections, 1);
    assert_eq!(report.tracks.len(), 2, "{report:#?}");
    let (v, a) = (&report.tracks[0], &report.tracks[1]);
    assert_eq!(v.status, Some(200));
    assert!(v.server_ports.is_some() && a.server_ports.is_some());
    assert_eq!(v.clock_rate, Some(90000), "H.264's rtpmap");
    assert!(
        a.clock_rate.is_some_and(|r| r != 90000),
        "AAC's rtpmap: {:?}",
        a.clock_rate
    );
    assert!(v.received.len() > 100 && a.received.len() > 100);
    assert_eq!(v.dropped, [v.received[50], v.received[51]]);
    assert_eq!(v.duplicated, [v.received[60]]);
    assert_eq!(v.reordered, [v.received[70]]);
    assert!(a.dropped.is_empty() && a.duplicated.is_empty() && a.reordered.is_empty());
    assert_eq!(a.delivered(), a.received, "the audio track is untouched");
    assert!(v.jitter.is_some() && a.jitter.is_some());
    assert_eq!((v.unroutable, a.unroutable, v.overflow), (0, 0, 0));
    println!(
        "ffprobe {counts:?} (direct {direct:?}); video jitter {:?}, audio jitter {:?}; RTCP to client {}/{}, to server {}/{}",
        v.jitter, a.jitter, v.rtcp_to_client, a.rtcp_to_client, v.rtcp_to_server, a.rtcp_to_server
    );

    // The audio arrives whole; the video lost at most the frames of the two
    // dropped packets (ffprobe counts what its decoder could still use).
    let get = |counts: &[(String, usize)], codec: &str| counts.iter().find(|(c, _)| c == codec).map(|(_, n)| *n);
    assert_eq!(get(&counts, "aac"), get(&direct, "aac"), "{counts:?} vs {direct:?}");
    let (video, clean) = (get(&counts, "h264").unwrap_or(0), get(&direct, "h264").unwrap_or(0));
    assert!(
        clean >= 120 && video + 3 >= clean && video <= clean,
        "{counts:?} vs {direct:?}"
    );
}
