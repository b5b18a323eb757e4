//! Tests of the server machine: scripted exchanges with exact bytes, every
//! error path, pacing with exact instants, loops, and the core client
//! talking to the server entirely in memory.

use std::num::NonZeroU32;

use super::headers::{parse_npt_range, starts_at_zero};
use super::request::{loggable_uri, MAX_EVENT_URI, PUBLIC};
use super::sdp_writer::npt;
use super::*;
use crate::client::{Client, ClientOptions, Event, Input, Output};
use crate::message::{Decoder, Response};
use crate::rtcp::{self, RtcpPacket};
use crate::rtp::RtpPacket;
use crate::sdp::Sdp;
use crate::source::{SourceCodec, SourceSample, SourceTrack};

const URL: &str = "rtsp://127.0.0.1:8554/dir/clip.mp4";
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
const ASC: &[u8] = &[0x12, 0x10];
const VIDEO_FRAMES: usize = 10;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The NAL units of a 4-byte-length-prefixed sample.
fn split_length_prefixed_for_test(data: &[u8], nals: &mut Vec<Vec<u8>>) {
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        nals.push(data[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
}

fn length_prefixed(nals: &[Vec<u8>]) -> Bytes {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&(n.len() as u32).to_be_bytes());
        v.extend_from_slice(n);
    }
    Bytes::from(v)
}

fn annex_b(sample: &Bytes) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= sample.len() {
        let len = u32::from_be_bytes(sample[off..off + 4].try_into().unwrap()) as usize;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&sample[off + 4..off + 4 + len]);
        off += 4 + len;
    }
    out
}

/// 10 H.264 access units at 25 fps (keyframes 0 and 5, with in-band SPS/PPS;
/// the first IDR is large enough for FU-A) and AAC frames of 1024 samples at
/// 44.1 kHz covering the same time, in send order.
pub(super) fn synthetic_source() -> MediaSource {
    let mut samples = Vec::new();
    for i in 0..VIDEO_FRAMES {
        let key = i % 5 == 0;
        let nals = if key {
            let mut idr = vec![0x65, 0x88];
            idr.extend((0..(if i == 0 { 3000 } else { 300 })).map(|b| (b * 7 + i) as u8 | 1));
            vec![SPS.to_vec(), PPS.to_vec(), idr]
        } else {
            let mut slice = vec![0x41, 0x9a];
            slice.extend((0..(100 + i * 10)).map(|b| (b + i) as u8 | 1));
            vec![slice]
        };
        samples.push(SourceSample {
            track: 0,
            decode_time: (i * 3600) as i64,
            presentation_time: (i * 3600) as i64,
            keyframe: key,
            data: length_prefixed(&nals),
        });
    }
    let video_end = Duration::from_millis(40 * VIDEO_FRAMES as u64);
    let mut j = 0u64;
    while Duration::from_nanos(j * 1024 * 1_000_000_000 / 44100) < video_end {
        let data: Vec<u8> = (0..(50 + j as usize % 7)).map(|b| (b as u8) ^ (j as u8)).collect();
        samples.push(SourceSample {
            track: 1,
            decode_time: (j * 1024) as i64,
            presentation_time: (j * 1024) as i64,
            keyframe: true,
            data: Bytes::from(data),
        });
        j += 1;
    }
    let audio_end = Duration::from_nanos(j * 1024 * 1_000_000_000 / 44100);
    let mut source = MediaSource {
        tracks: vec![
            SourceTrack {
                codec: SourceCodec::H264 {
                    sps: vec![Bytes::from_static(SPS)],
                    pps: vec![Bytes::from_static(PPS)],
                },
                clock_rate: 90000,
            },
            SourceTrack {
                codec: SourceCodec::Aac {
                    config: Bytes::from_static(ASC),
                    sample_rate: 44100,
                    channels: 2,
                },
                clock_rate: 44100,
            },
        ],
        samples,
        duration: video_end.max(audio_end),
    };
    let by_time: Vec<(Duration, usize)> = source
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| (source.send_time(s), i))
        .collect();
    let mut order = by_time;
    order.sort();
    source.samples = order.iter().map(|(_, i)| source.samples[*i].clone()).collect();
    source
}

fn config() -> ServerConfig {
    ServerConfig {
        server_name: "test".into(),
        rtcp_interval: Duration::from_secs(10),
        ..ServerConfig::default()
    }
}

/// Everything one drain of `poll_output` gave.
#[derive(Debug, Default)]
struct Drained {
    transmits: usize,
    responses: Vec<Response>,
    frames: Vec<(u8, Bytes)>,
    lookups: Vec<(u64, String)>,
    /// UDP pairs asked for (answered by the harness unless `manual_udp`).
    opens: Vec<UdpRequest>,
    datagrams: Vec<(UdpSocketId, SocketAddr, Bytes)>,
    /// Other sessions asked about: (token, id, teardown).
    others: Vec<(u64, String, bool)>,
    events: Vec<ServerEvent>,
    /// Multicast requests (answered by the harness unless `manual_multicast`).
    multicast: Vec<MulticastRequest>,
    /// RTP from the client's ONVIF backchannel: (session id, path, packet).
    backchannel: Vec<(String, String, crate::rtp::RtpPacket)>,
    /// Announcements (answered `Ok` by the harness unless the path is in `busy`).
    announces: Vec<(String, Arc<MediaSource>)>,
    /// The publisher's packets passed on: (track, packet).
    published: Vec<(usize, crate::rtp::RtpPacket)>,
    /// Live paths the connection asked to read.
    read_live: Vec<String>,
    timeout: Option<Instant>,
    closed: bool,
}

impl Drained {
    fn response(&self) -> &Response {
        assert_eq!(self.responses.len(), 1, "{self:#?}");
        &self.responses[0]
    }

    fn status(&self) -> u16 {
        self.response().status
    }

    fn rtp(&self, channel: u8) -> Vec<RtpPacket> {
        self.frames
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| RtpPacket::parse(p.clone()).unwrap())
            .collect()
    }

    fn rtcp(&self, channel: u8) -> Vec<Vec<RtcpPacket>> {
        self.frames
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| rtcp::parse_compound(p).unwrap())
            .collect()
    }
}

struct Harness {
    conn: Connection,
    t0: Instant,
    decoder: Decoder,
    cseq: u32,
    session: Option<String>,
    /// Leave `OpenUdp` unanswered (else: RTP port `UDP_BASE + 2 × pair`).
    manual_udp: bool,
    /// Sessions other connections own, for `OtherSession`.
    other_sessions: Vec<String>,
    /// The instant of the drain, for the harness's own answers.
    now: Instant,
    /// The multicast stream joined (member 1), made on the first Join
    /// unless `manual_multicast`.
    mcast: Option<MulticastStream>,
    manual_multicast: bool,
    /// Paths another connection publishes (their ANNOUNCE is refused).
    busy: Vec<String>,
}

/// First server RTP port the harness hands out.
const UDP_BASE: u16 = 7000;

/// The group of the harness's multicast stream.
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 42, 0);

/// A multicast track for answers made up by the robustness tests.
const MULTICAST_TRACK: MulticastTrack = MulticastTrack {
    group: GROUP,
    port: 5004,
    ttl: 1,
    ssrc: 0x1234_5678,
};

impl Harness {
    fn new() -> Harness {
        Harness::with(config(), 0)
    }

    fn with(config: ServerConfig, ntp: u64) -> Harness {
        let t0 = Instant::now();
        Harness {
            conn: Connection::new(Arc::new(config), t0, "127.0.0.1:50000".parse().unwrap(), 0x5eed, ntp),
            t0,
            decoder: Decoder::new(Limits::default()),
            cseq: 0,
            session: None,
            manual_udp: false,
            other_sessions: Vec::new(),
            now: t0,
            mcast: None,
            manual_multicast: false,
            busy: Vec::new(),
        }
    }

    fn with_max_lag(max_lag: Duration) -> Harness {
        Harness::with(ServerConfig { max_lag, ..config() }, 0)
    }

    fn at(&self, n: u64) -> Instant {
        self.t0 + ms(n)
    }

    fn drain(&mut self) -> Drained {
        let mut d = Drained::default();
        loop {
            match self.conn.poll_output() {
                ServerOutput::Transmit(b) => {
                    assert!(!b.is_empty());
                    d.transmits += 1;
                    self.decoder.extend(&b);
                    while let Some(m) = self.decoder.decode().unwrap() {
                        match m {
                            Message::Response(r) => d.responses.push(r),
                            Message::Interleaved { channel, payload } => d.frames.push((channel, payload)),
                            Message::Request(r) => panic!("server sent a request {r:?}"),
                        }
                    }
                }
                ServerOutput::Lookup { token, path } => d.lookups.push((token, path)),
                ServerOutput::OpenUdp(request) => {
                    d.opens.push(request);
                    if !self.manual_udp {
                        let port = UDP_BASE + 2 * request.pair;
                        let input = ServerInput::UdpOpened {
                            pair: request.pair,
                            result: Ok(port),
                        };
                        self.conn.handle_input(self.now, input);
                    }
                }
                ServerOutput::SendDatagram { socket, to, data } => d.datagrams.push((socket, to, data)),
                ServerOutput::OtherSession {
                    token,
                    session_id,
                    teardown,
                } => {
                    let found = self.other_sessions.contains(&session_id);
                    d.others.push((token, session_id, teardown));
                    self.conn
                        .handle_input(self.now, ServerInput::OtherSession { token, found });
                }
                ServerOutput::Multicast(request) => {
                    let now = self.now;
                    match &request {
                        MulticastRequest::Join {
                            token,
                            path,
                            play_count,
                            source,
                        } if !self.manual_multicast => {
                            let config = config();
                            let stream = self.mcast.get_or_insert_with(|| {
                                MulticastStream::new(
                                    &config,
                                    now,
                                    path.clone(),
                                    *play_count,
                                    source.clone(),
                                    GROUP,
                                    0x6d63,
                                    0,
                                )
                            });
                            stream.handle_input(now, MulticastInput::Join(1));
                            let tracks = stream.tracks().to_vec();
                            self.conn.handle_input(
                                now,
                                ServerInput::MulticastJoined {
                                    token: *token,
                                    result: Ok(&tracks),
                                },
                            );
                        }
                        MulticastRequest::Play { token } if !self.manual_multicast => {
                            let stream = self.mcast.as_mut().expect("joined before PLAY");
                            let position = stream.position(now);
                            stream.handle_input(now, MulticastInput::Play(1));
                            self.conn.handle_input(
                                now,
                                ServerInput::MulticastPlaying {
                                    token: *token,
                                    position,
                                },
                            );
                        }
                        _ => {}
                    }
                    d.multicast.push(request);
                }
                ServerOutput::Event(e) => d.events.push(e),
                ServerOutput::Backchannel {
                    session_id,
                    path,
                    packet,
                } => d.backchannel.push((session_id, path, packet)),
                ServerOutput::Announce { token, path, source } => {
                    let result = if self.busy.contains(&path) {
                        Err("published by another connection")
                    } else {
                        Ok(())
                    };
                    d.announces.push((path, source));
                    self.conn
                        .handle_input(self.now, ServerInput::Announced { token, result });
                }
                ServerOutput::Published { track, packet } => d.published.push((track, packet)),
                ServerOutput::ReadLive { path } => d.read_live.push(path),
                ServerOutput::Timeout(at) => {
                    d.timeout = Some(at);
                    break;
                }
                ServerOutput::Close => {
                    d.closed = true;
                    break;
                }
            }
        }
        d
    }

    fn input(&mut self, at: Instant, data: &[u8]) -> Drained {
        self.now = at;
        self.conn.handle_input(at, ServerInput::Data(data));
        self.drain()
    }

    fn timeout(&mut self, at: Instant) -> Drained {
        self.now = at;
        self.conn.handle_input(at, ServerInput::Timeout);
        self.drain()
    }

    /// Any other input at `at`.
    fn give(&mut self, at: Instant, input: ServerInput<'_>) -> Drained {
        self.now = at;
        self.conn.handle_input(at, input);
        self.drain()
    }

    /// Sends a request with the next CSeq (and the session, once known).
    fn request(&mut self, at: Instant, method: &str, uri: &str, extra: &[(&str, &str)]) -> Drained {
        self.cseq += 1;
        let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if let Some(s) = &self.session {
            if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("Session")) {
                text.push_str(&format!("Session: {s}\r\n"));
            }
        }
        for (n, v) in extra {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        let d = self.input(at, text.as_bytes());
        for r in &d.responses {
            assert_eq!(r.headers.cseq(), Some(self.cseq), "CSeq echoed: {r:?}");
        }
        d
    }

    /// DESCRIBE answered by a lookup giving `source`.
    fn describe(&mut self, at: Instant, uri: &str, source: &Arc<MediaSource>) -> Drained {
        let d = self.request(at, "DESCRIBE", uri, &[("Accept", "application/sdp")]);
        assert!(d.responses.is_empty());
        assert_eq!(d.lookups.len(), 1, "{d:?}");
        self.conn.handle_input(
            at,
            ServerInput::Lookup {
                token: d.lookups[0].0,
                result: Ok(source.clone()),
            },
        );
        self.drain()
    }

    fn setup(&mut self, at: Instant, track: usize, channels: &str) -> Drained {
        let uri = format!("{URL}/trackID={track}");
        let transport = format!("RTP/AVP/TCP;unicast;interleaved={channels}");
        let d = self.request(at, "SETUP", &uri, &[("Transport", &transport)]);
        if d.responses.len() == 1 && d.status() == 200 {
            let s = d.response().headers.get("Session").unwrap();
            self.session = Some(s.split(';').next().unwrap().to_owned());
        }
        d
    }

    /// DESCRIBE, SETUP both tracks on 0-1 and 2-3, PLAY at `at`.
    fn play(&mut self, at: Instant, source: &Arc<MediaSource>, query: &str) -> Drained {
        assert_eq!(self.describe(at, &format!("{URL}{query}"), source).status(), 200);
        assert_eq!(self.setup(at, 0, "0-1").status(), 200);
        assert_eq!(self.setup(at, 1, "2-3").status(), 200);
        let d = self.request(at, "PLAY", &format!("{URL}/"), &[("Range", "npt=0.000-")]);
        assert_eq!(d.status(), 200);
        d
    }
}

fn rtp_info(resp: &Response) -> Vec<(String, u16, u32)> {
    resp.headers
        .get("RTP-Info")
        .unwrap()
        .split(',')
        .map(|entry| {
            let mut url = String::new();
            let (mut seq, mut ts) = (0, 0);
            for p in entry.split(';') {
                if let Some(v) = p.strip_prefix("url=") {
                    url = v.to_owned();
                } else if let Some(v) = p.strip_prefix("seq=") {
                    seq = v.parse().unwrap();
                } else if let Some(v) = p.strip_prefix("rtptime=") {
                    ts = v.parse().unwrap();
                }
            }
            (url, seq, ts)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Scripted exchanges

#[test]
fn options_exact_bytes() {
    let mut h = Harness::new();
    h.conn.handle_input(
        h.t0,
        ServerInput::Data(b"OPTIONS rtsp://127.0.0.1:8554/dir/clip.mp4 RTSP/1.0\r\nCSeq: 7\r\n\r\n"),
    );
    let ServerOutput::Transmit(b) = h.conn.poll_output() else {
        panic!()
    };
    assert_eq!(
        &b[..],
        b"RTSP/1.0 200 OK\r\nCSeq: 7\r\nServer: test\r\n\
Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n\r\n"
    );
    let ServerOutput::Event(e) = h.conn.poll_output() else {
        panic!()
    };
    assert_eq!(
        e,
        ServerEvent::Request {
            method: Method::Options,
            uri: URL.into(),
            cseq: Some(7),
            status: 200
        }
    );
    // Nothing else: the idle deadline.
    assert!(matches!(h.conn.poll_output(), ServerOutput::Timeout(at) if at == h.t0 + Duration::from_secs(30)));
}

#[test]
fn date_header_from_ntp() {
    // 2024-02-29 12:34:56 UTC, plus 1.5 s elapsed.
    let ntp = (1_709_210_096u64 + crate::rtcp::NTP_UNIX_OFFSET_SECONDS) << 32;
    let mut h = Harness::with(config(), ntp);
    let d = h.request(h.at(1500), "OPTIONS", "*", &[]);
    assert_eq!(d.status(), 200);
    assert_eq!(d.response().headers.get("Date"), Some("Thu, 29 Feb 2024 12:34:57 GMT"));
    // Without a wall clock, no Date at all.
    let mut h = Harness::new();
    assert_eq!(
        h.request(h.t0, "OPTIONS", "*", &[]).response().headers.get("Date"),
        None
    );
}

#[test]
fn describe_setup_play_teardown() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let t = h.at(10);

    let d = h.request(
        t,
        "DESCRIBE",
        &format!("{URL}?play_count=1"),
        &[("Accept", "application/sdp")],
    );
    assert_eq!(d.lookups, vec![(1, "dir/clip.mp4".to_owned())]);
    assert!(d.responses.is_empty() && d.transmits == 0);
    h.conn.handle_input(
        t,
        ServerInput::Lookup {
            token: 1,
            result: Ok(source.clone()),
        },
    );
    let d = h.drain();
    let r = d.response();
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
    assert_eq!(r.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(
        r.headers.get("Content-Base"),
        Some("rtsp://127.0.0.1:8554/dir/clip.mp4/")
    );
    let sdp = Sdp::parse(&r.body).unwrap();
    assert_eq!(sdp.session_name.as_deref(), Some("clip.mp4"));
    assert!(sdp.origin.as_deref().unwrap().ends_with(" 1 IN IP4 127.0.0.1"));
    assert_eq!(sdp.attribute("control"), Some("*"));
    assert_eq!(
        sdp.attribute("range"),
        Some(format!("npt=0-{}", npt(source.duration)).as_str())
    );
    assert_eq!(sdp.media.len(), 2);
    let v = &sdp.media[0];
    assert_eq!((v.codec.as_str(), v.clock_rate, v.payload_type), ("H264", 90000, 96));
    assert_eq!(v.control.as_deref(), Some("trackID=0"));
    assert_eq!(v.fmtp_param("packetization-mode"), Some("1"));
    assert_eq!(v.fmtp_param("profile-level-id"), Some("42C01E"));
    let params = v.h264().unwrap().unwrap();
    assert_eq!((&params.sps[0][..], &params.pps[0][..]), (SPS, PPS));
    let a = &sdp.media[1];
    assert_eq!(
        (a.codec.as_str(), a.clock_rate, a.channels, a.payload_type),
        ("MPEG4-GENERIC", 44100, Some(2), 97)
    );
    assert_eq!(a.control.as_deref(), Some("trackID=1"));
    assert_eq!(a.fmtp_param("config"), Some("1210"));
    assert_eq!(a.fmtp_param("mode"), Some("AAC-hbr"));
    assert_eq!(a.fmtp_param("sizelength"), Some("13"));

    // SETUP reuses the described source: no second lookup.
    let d = h.setup(t, 0, "0-1");
    assert!(d.lookups.is_empty());
    let r = d.response();
    assert_eq!(r.status, 200);
    let session = r.headers.get("Session").unwrap();
    let (id, timeout) = session.split_once(';').unwrap();
    assert_eq!(timeout, "timeout=60");
    assert_eq!(id.len(), 16);
    assert_eq!(h.conn.session_id(), Some(id));
    let transport = r.headers.get("Transport").unwrap();
    assert!(
        transport.starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="),
        "{transport}"
    );
    // The second track, with channels left to the server: 2N-2N+1.
    let d = h.request(
        t,
        "SETUP",
        &format!("{URL}/trackID=1"),
        &[("Transport", "RTP/AVP/TCP;unicast")],
    );
    assert_eq!(d.status(), 200);
    assert!(d
        .response()
        .headers
        .get("Transport")
        .unwrap()
        .contains("interleaved=2-3"));
    assert_eq!(d.response().headers.get("Session"), Some(session));

    let d = h.request(t, "PLAY", &format!("{URL}/"), &[("Range", "npt=0.000-")]);
    let r = &d.responses[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("Session"), Some(id));
    assert_eq!(
        r.headers.get("Range"),
        Some(format!("npt=0.000-{}", npt(source.duration)).as_str())
    );
    let info = rtp_info(r);
    assert_eq!(info.len(), 2);
    assert_eq!(info[0].0, format!("{URL}/trackID=0"));
    assert_eq!(info[1].0, format!("{URL}/trackID=1"));
    // The first packets on each channel start where RTP-Info says.
    let v = d.rtp(0);
    let a = d.rtp(2);
    assert_eq!((v[0].sequence_number, v[0].timestamp), (info[0].1, info[0].2));
    assert_eq!((a[0].sequence_number, a[0].timestamp), (info[1].1, info[1].2));
    assert!(d.events.iter().any(|e| matches!(e,
        ServerEvent::SessionStarted { path, tracks: 2, play_count: PlayCount::Times(n), .. }
            if path == "dir/clip.mp4" && n.get() == 1)));

    let d = h.request(h.at(20), "GET_PARAMETER", &format!("{URL}/"), &[]);
    assert_eq!(d.status(), 200);
    assert_eq!(d.response().headers.get("Session"), Some(id));

    let d = h.request(h.at(30), "TEARDOWN", &format!("{URL}/"), &[]);
    assert_eq!(d.status(), 200);
    // The media stops; the connection stays for requests already on their
    // way (GStreamer's PAUSE can come after its TEARDOWN) until the client
    // closes it or the idle timeout passes; the session cannot play again.
    assert!(!d.closed && d.frames.is_empty());
    assert_eq!(d.timeout, Some(h.at(30_030)));
    let d = h.request(h.at(40), "PAUSE", &format!("{URL}/"), &[]);
    assert_eq!(d.status(), 200);
    assert!(d.frames.is_empty() && !d.closed);
    assert_eq!(h.request(h.at(50), "PLAY", &format!("{URL}/"), &[]).status(), 454);
    assert!(!h.timeout(h.at(30_029)).closed);
    let d = h.timeout(h.at(30_030));
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::Teardown,
            ..
        }
    )));
    // Closed for good.
    h.conn
        .handle_input(h.at(40), ServerInput::Data(b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n"));
    h.conn.handle_input(h.at(50), ServerInput::Timeout);
    assert!(matches!(h.conn.poll_output(), ServerOutput::Close));
    assert!(h.conn.is_closed());
}

#[test]
fn setup_without_describe_looks_up_then_pipelined_requests_wait() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let t = h.t0;
    // SETUP, then OPTIONS and SET_PARAMETER pipelined behind it, in one segment.
    let text = format!(
        "SETUP {URL}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=4-5\r\n\r\n\
         OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n\
         SET_PARAMETER * RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 3\r\n\r\nabc"
    );
    let d = h.input(t, text.as_bytes());
    assert_eq!(d.lookups, vec![(1, "dir/clip.mp4".to_owned())]);
    assert!(d.responses.is_empty());
    // A stale token is ignored.
    h.conn.handle_input(
        t,
        ServerInput::Lookup {
            token: 99,
            result: Err(LookupError::NotFound),
        },
    );
    assert!(h.drain().responses.is_empty());
    h.conn.handle_input(
        t,
        ServerInput::Lookup {
            token: 1,
            result: Ok(source),
        },
    );
    let d = h.drain();
    assert_eq!(d.responses.len(), 3);
    assert_eq!((d.responses[0].status, d.responses[0].headers.cseq()), (200, Some(1)));
    assert!(d.responses[0]
        .headers
        .get("Transport")
        .unwrap()
        .contains("interleaved=4-5"));
    assert_eq!((d.responses[1].status, d.responses[1].headers.cseq()), (200, Some(2)));
    assert_eq!((d.responses[2].status, d.responses[2].headers.cseq()), (451, Some(3)));
    // Debug output stays small: no samples.
    let debug = format!("{:?}", h.conn);
    assert!(debug.contains("dir/clip.mp4") && debug.len() < 400, "{debug}");
}

// ---------------------------------------------------------------------------
// Error paths

#[test]
fn no_cseq_is_400_without_cseq_and_the_connection_stays() {
    let mut h = Harness::new();
    let d = h.input(h.t0, b"OPTIONS * RTSP/1.0\r\n\r\n");
    let r = d.response();
    assert_eq!((r.status, r.headers.get("CSeq")), (400, None));
    assert!(!d.closed);
    let d = h.input(h.t0, b"OPTIONS * RTSP/1.0\r\nCSeq: abc\r\n\r\n");
    assert_eq!((d.status(), d.response().headers.get("CSeq")), (400, None));
    assert_eq!(h.request(h.t0, "OPTIONS", "*", &[]).status(), 200);
}

#[test]
fn unframeable_input_is_400_and_close() {
    let limits = Limits {
        max_header_bytes: 1024,
        max_body_bytes: 4096,
        max_headers: 16,
    };
    let cases: Vec<Vec<u8>> = vec![
        b"HELLO\r\n\r\n".to_vec(),
        b"OPTIONS *\r\nCSeq: 1\r\n\r\n".to_vec(),
        b"\x00\x01\x02".to_vec(),
        b"DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1099511627776\r\n\r\n".to_vec(),
        b"DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 4097\r\n\r\n".to_vec(),
        b"DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nno colon\r\n\r\n".to_vec(),
        [b"OPTIONS * RTSP/1.0\r\nX: ".to_vec(), vec![b'a'; 2000]].concat(),
        (0..40)
            .map(|i| format!("X-{i}: v\r\n"))
            .fold("OPTIONS * RTSP/1.0\r\n".to_owned(), |s, l| s + &l)
            .into_bytes(),
    ];
    for input in cases {
        let mut h = Harness::with(ServerConfig { limits, ..config() }, 0);
        let mut input = input;
        if input.starts_with(b"OPTIONS * RTSP/1.0\r\nX-") {
            input.extend_from_slice(b"\r\n");
        }
        let d = h.input(h.t0, &input);
        assert_eq!(d.status(), 400, "{:?}", String::from_utf8_lossy(&input));
        assert_eq!(d.response().headers.get("CSeq"), None);
        assert!(d.closed);
        assert!(d.events.iter().any(|e| matches!(
            e,
            ServerEvent::Closed {
                reason: CloseReason::Protocol(_),
                ..
            }
        )));
    }
}

#[test]
fn request_body_is_read_and_ignored() {
    let mut h = Harness::new();
    let d = h.input(
        h.t0,
        b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nx: 1\nOPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n",
    );
    assert_eq!(d.responses.len(), 2);
    assert_eq!((d.responses[0].status, d.responses[1].status), (451, 200));
    h.cseq = 2;
    assert_eq!(h.request(h.t0, "SET_PARAMETER", "*", &[]).status(), 200);
}

#[test]
fn traversal_spellings_are_404_without_lookup() {
    for uri in [
        "rtsp://h/../etc/passwd",
        "rtsp://h/%2e%2e/etc/passwd",
        "rtsp://h/%2E%2e/%2E%2e/etc/passwd",
        "rtsp://h/a.mp4/../../etc/passwd",
        "rtsp://h//etc/passwd",
        "rtsp://h/..%5c..%5cetc%5cpasswd",
        "rtsp://h/..\\..\\etc\\passwd",
        "rtsp://h/./a.mp4",
        "rtsp://h/a.mp4%00.txt",
        "rtsp://h/",
    ] {
        for method in ["DESCRIBE", "SETUP"] {
            let mut h = Harness::new();
            let uri = if method == "SETUP" {
                format!("{uri}/trackID=0")
            } else {
                uri.to_owned()
            };
            let d = h.request(h.t0, method, &uri, &[("Transport", "RTP/AVP/TCP;interleaved=0-1")]);
            assert_eq!(d.status(), 404, "{method} {uri}");
            assert!(d.lookups.is_empty(), "{method} {uri}");
            assert!(!d.closed);
        }
    }
    // Decoded once: %252e%252e is an odd name, looked up (and not found).
    let mut h = Harness::new();
    let d = h.request(h.t0, "DESCRIBE", "rtsp://h/%252e%252e/etc/passwd", &[]);
    assert_eq!(d.lookups, vec![(1, "%2e%2e/etc/passwd".to_owned())]);
    h.conn.handle_input(
        h.t0,
        ServerInput::Lookup {
            token: 1,
            result: Err(LookupError::NotFound),
        },
    );
    assert_eq!(h.drain().status(), 404);
    // A relative or foreign URI is a bad request.
    for uri in ["/a.mp4", "http://h/a.mp4", "rtsp:///a.mp4"] {
        let mut h = Harness::new();
        assert_eq!(h.request(h.t0, "DESCRIBE", uri, &[]).status(), 400, "{uri}");
    }
}

#[test]
fn lookup_errors_map_to_statuses() {
    let empty = Arc::new(MediaSource {
        tracks: vec![],
        samples: vec![],
        duration: Duration::ZERO,
    });
    for (result, status) in [
        (Err(LookupError::NotFound), 404),
        (Err(LookupError::Forbidden), 404),
        (Err(LookupError::NoSupportedTrack("vp9".into())), 415),
        (Err(LookupError::Unreadable("truncated moov".into())), 500),
        (Ok(empty), 415),
    ] {
        let mut h = Harness::new();
        let d = h.request(h.t0, "DESCRIBE", URL, &[]);
        h.conn.handle_input(
            h.t0,
            ServerInput::Lookup {
                token: d.lookups[0].0,
                result,
            },
        );
        let d = h.drain();
        assert_eq!(d.status(), status);
        assert_eq!(d.response().headers.cseq(), Some(1));
        assert!(d.response().body.is_empty(), "nothing about the outside is revealed");
    }
}

#[test]
fn unsupported_methods() {
    let mut h = Harness::new();
    // PAUSE is done, but needs a session.
    assert_eq!(h.request(h.t0, "PAUSE", URL, &[]).status(), 455);
    for m in ["ANNOUNCE", "RECORD", "REDIRECT"] {
        let d = h.request(h.t0, m, URL, &[]);
        assert_eq!(d.status(), 405, "{m}");
        assert_eq!(d.response().headers.get("Allow"), Some(PUBLIC));
    }
    let d = h.request(h.t0, "FLY", URL, &[]);
    assert_eq!((d.status(), d.response().reason.as_str()), (501, "Not Implemented"));
    assert!(!d.closed);
}

#[test]
fn setup_errors() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    let t = h.t0;
    let track = format!("{URL}/trackID=0");
    // Multicast naming its own group, UDP without client ports or to another
    // address, bogus, missing: 461.
    for transport in [
        "RTP/AVP;multicast;destination=239.1.2.3;port=5000-5001",
        "RTP/AVP/UDP;multicast;destination=224.0.0.1;client_port=5000-5001",
        "RTP/AVP;unicast",
        "RTP/AVP;unicast;client_port=0-1",
        "RTP/AVP;unicast;client_port=x",
        "RTP/AVP;unicast;client_port=5000-5000",
        "RTP/AVP;unicast;client_port=65535",
        "RTP/AVP;unicast;client_port=5000-5001;destination=10.0.0.9",
        "RTP/AVP;unicast;client_port=5000-5001;destination=example.com",
        "RTP/AVP/TCP;multicast;interleaved=0-1",
        "RTP/AVP/TCP;interleaved=x-y",
        "RTP/AVP/TCP;interleaved=300-301",
        "RTP/AVP/TCP;interleaved=3-3",
        "RTP/AVP/TCP;interleaved=255",
        "garbage",
        "",
    ] {
        let d = h.request(t, "SETUP", &track, &[("Transport", transport)]);
        assert_eq!(d.status(), 461, "{transport:?}");
    }
    let d = h.request(t, "SETUP", &track, &[]);
    assert_eq!(d.status(), 461);
    // The first spec of a list this server serves is taken.
    let d = h.request(
        t,
        "SETUP",
        &track,
        &[(
            "Transport",
            "RTP/AVP;multicast;destination=239.1.2.3,RTP/AVP;unicast;client_port=5000-5001;destination=10.0.0.9,RTP/AVP/TCP;unicast;interleaved=6-7",
        )],
    );
    assert_eq!(d.status(), 200);
    assert!(d
        .response()
        .headers
        .get("Transport")
        .unwrap()
        .contains("interleaved=6-7"));
    h.session = Some(h.conn.session_id().unwrap().to_owned());
    // Aggregate URL: 459; unknown track: 404; another file: 455; a taken channel: 461.
    let tr = [("Transport", "RTP/AVP/TCP;interleaved=0-1")];
    assert_eq!(h.request(t, "SETUP", URL, &tr).status(), 459);
    assert_eq!(h.request(t, "SETUP", &format!("{URL}/"), &tr).status(), 459);
    assert_eq!(h.request(t, "SETUP", &format!("{URL}/trackID=2"), &tr).status(), 404);
    assert_eq!(
        h.request(t, "SETUP", "rtsp://127.0.0.1:8554/other.mp4/trackID=0", &tr)
            .status(),
        455
    );
    let taken = [("Transport", "RTP/AVP/TCP;interleaved=7-8")];
    assert_eq!(h.request(t, "SETUP", &format!("{URL}/trackID=1"), &taken).status(), 461);
    // Wrong session id: 454.
    let wrong = [("Transport", "RTP/AVP/TCP;interleaved=2-3"), ("Session", "DEADBEEF")];
    assert_eq!(h.request(t, "SETUP", &format!("{URL}/trackID=1"), &wrong).status(), 454);
    // Setting up the same track again moves it.
    let d = h.request(t, "SETUP", &track, &tr);
    assert_eq!(d.status(), 200);
    assert!(d
        .response()
        .headers
        .get("Transport")
        .unwrap()
        .contains("interleaved=0-1"));
}

#[test]
fn session_errors() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let t = h.t0;
    // PLAY before SETUP: 455; with an unknown session: 454.
    assert_eq!(h.request(t, "PLAY", URL, &[]).status(), 455);
    assert_eq!(h.request(t, "PLAY", URL, &[("Session", "1234")]).status(), 454);
    assert_eq!(
        h.request(
            t,
            "SETUP",
            &format!("{URL}/trackID=0"),
            &[("Session", "1234"), ("Transport", "RTP/AVP/TCP;interleaved=0-1")]
        )
        .status(),
        454
    );
    assert_eq!(h.request(t, "GET_PARAMETER", URL, &[("Session", "1234")]).status(), 454);
    assert_eq!(h.request(t, "TEARDOWN", URL, &[("Session", "1234")]).status(), 454);
    h.play(t, &source, "");
    assert_eq!(
        h.request(t, "PLAY", &format!("{URL}/"), &[("Session", "FFFF")])
            .status(),
        454
    );
    // SETUP while playing: 455; PLAY while playing goes on (200).
    assert_eq!(h.setup(t, 1, "2-3").status(), 455);
    assert_eq!(h.request(t, "PLAY", &format!("{URL}/"), &[]).status(), 200);
    // PLAY of another presentation: 404.
    assert_eq!(
        h.request(t, "PLAY", "rtsp://127.0.0.1:8554/other.mp4", &[]).status(),
        404
    );
    // TEARDOWN with the right session still works.
    let d = h.request(t, "TEARDOWN", URL, &[]);
    assert_eq!(d.status(), 200);
    assert!(h.give(t, ServerInput::Eof).closed);
}

/// Plays `h` from `d` until `until`, every packet of `channel`.
fn packets_until(h: &mut Harness, d: Drained, until: Instant, channel: u8) -> (Vec<RtpPacket>, Vec<Drained>) {
    let all = collect_until_close(h, d, until);
    (all.iter().flat_map(|d| d.rtp(channel)).collect(), all)
}

#[test]
fn a_seek_starts_at_the_keyframe_at_or_before_the_range() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    h.setup(h.t0, 0, "0-1");
    h.setup(h.t0, 1, "2-3");
    // Keyframes are frames 0 and 5 (0.2 s): 0.3 s starts at 0.2 s.
    let d = h.request(h.t0, "PLAY", URL, &[("Range", "npt=0.3-")]);
    assert_eq!(d.status(), 200);
    let r = d.responses[0].clone();
    assert_eq!(
        r.headers.get("Range"),
        Some(format!("npt=0.200-{}", npt(source.duration)).as_str())
    );
    let info = rtp_info(&r);
    let until = h.t0 + Duration::from_secs(5);
    let (video, _) = packets_until(&mut h, d, until, 0);
    // The first packet is what RTP-Info says: its seq, and rtptime = base + 0.2 s.
    assert_eq!((video[0].sequence_number, video[0].timestamp), (info[0].1, info[0].2));
    let frames: Vec<u32> = video
        .iter()
        .filter(|p| p.marker)
        .map(|p| p.timestamp.wrapping_sub(info[0].2))
        .collect();
    assert_eq!(frames, (0..5).map(|i| i * 3600).collect::<Vec<_>>(), "frames 5..9");
    // The first frame is the IDR (after its parameter sets).
    assert_eq!(video[0].payload[0] & 0x1f, 24, "STAP-A with SPS/PPS");
    // Audio from 0.2 s on: its first timestamp is within a frame of its RTP-Info rtptime.
    let mut h2 = Harness::new();
    h2.describe(h2.t0, URL, &source);
    h2.setup(h2.t0, 0, "0-1");
    h2.setup(h2.t0, 1, "2-3");
    let d = h2.request(h2.t0, "PLAY", URL, &[("Range", "npt=0.3-")]);
    let info = rtp_info(&d.responses[0]);
    let until = h2.t0 + Duration::from_secs(5);
    let (audio, _) = packets_until(&mut h2, d, until, 2);
    assert!(
        audio[0].timestamp.wrapping_sub(info[1].2) < 1024,
        "{} vs {}",
        audio[0].timestamp,
        info[1].2
    );
    assert_eq!(audio[0].sequence_number, info[1].1);
}

#[test]
fn a_range_end_stops_there_and_play_count_is_one_timeline() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, &format!("{URL}?play_count=3"), &source);
    h.setup(h.t0, 0, "0-1");
    // 0.4 s a loop: npt 0.9 is loop 2 at 0.1 s, which starts at its keyframe 0.
    let end = source.duration * 2 + ms(300);
    let d = h.request(h.t0, "PLAY", URL, &[("Range", &format!("npt=0.9-{}", npt(end)))]);
    assert_eq!(d.status(), 200);
    let range = d.responses[0].headers.get("Range").unwrap().to_owned();
    assert_eq!(range, format!("npt={}-{}", npt(source.duration * 2), npt(end)));
    let until = h.t0 + Duration::from_secs(5);
    let (video, all) = packets_until(&mut h, d, until, 0);
    let frames = video.iter().filter(|p| p.marker).count();
    assert_eq!(frames, 8, "0.8 s .. 1.1 s of 40 ms frames, the end excluded");
    assert!(all
        .iter()
        .any(|d| d.events.iter().any(|e| matches!(e, ServerEvent::PlaybackEnded { .. }))));
    // Past the presentation, bad or reversed ranges, other units: 457.
    for (range, want) in [
        (format!("npt={}-", npt(source.duration * 3 + ms(10))), 457),
        ("npt=0.3-0.1".to_owned(), 457),
        ("npt=abc-".to_owned(), 457),
        ("clock=19961108T142300Z-".to_owned(), 457),
        ("npt=-1-".to_owned(), 457),
    ] {
        let mut h = Harness::new();
        h.describe(h.t0, &format!("{URL}?play_count=3"), &source);
        h.setup(h.t0, 0, "0-1");
        assert_eq!(
            h.request(h.t0, "PLAY", URL, &[("Range", &range)]).status(),
            want,
            "{range}"
        );
    }
}

#[test]
fn pause_keeps_the_place_and_play_resumes_with_continuous_numbers() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let d = h.play(h.t0, &source, "");
    let info = rtp_info(&d.responses[0]);
    // Play 0.1 s (frames 0..2 are due at 0, 40, 80 ms), then PAUSE.
    let until = h.at(100);
    let (before, _) = packets_until(&mut h, d, until, 0);
    let d = h.request(h.at(100), "PAUSE", URL, &[]);
    assert_eq!(d.status(), 200);
    // The next sample is audio frame 5 (5 × 1024 / 44100 s = 116.1 ms), before video frame 3 (120 ms).
    let paused = d
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Paused { npt, .. } => Some(*npt),
            _ => None,
        })
        .expect("a Paused event");
    assert_eq!(paused, Duration::from_nanos(5 * 1024 * 1_000_000_000 / 44100));
    // Paused: nothing due, nothing sent, whatever the time.
    assert_eq!(
        d.timeout.map(|t| t > h.at(100) + Duration::from_secs(20)),
        Some(true),
        "{:?}",
        d.timeout
    );
    let d = h.timeout(h.at(10_000));
    assert!(d.rtp(0).is_empty() && d.rtp(2).is_empty());
    // A second PAUSE is fine.
    assert_eq!(h.request(h.at(10_000), "PAUSE", URL, &[]).status(), 200);
    let d = h.request(h.at(10_000), "PLAY", URL, &[]);
    assert_eq!(d.status(), 200);
    let r = d.responses[0].clone();
    assert!(r.headers.get("Range").unwrap().starts_with("npt=0.116-"), "{r:?}");
    let again = rtp_info(&r);
    let last = before.last().unwrap();
    assert_eq!(again[0].1, last.sequence_number.wrapping_add(1), "seq goes on");
    let at = (paused.as_nanos() * 90_000 / 1_000_000_000) as u32;
    assert_eq!(again[0].2, info[0].2.wrapping_add(at), "rtptime of the npt");
    assert!(d.events.iter().any(|e| matches!(e, ServerEvent::Resumed { .. })));
    let until = h.at(20_000);
    let (after, _) = packets_until(&mut h, d, until, 0);
    let frames = |p: &[RtpPacket]| p.iter().filter(|p| p.marker).count();
    assert_eq!(frames(&before) + frames(&after), VIDEO_FRAMES, "every frame once");
    assert_eq!(
        after[0].timestamp,
        info[0].2.wrapping_add(3 * 3600),
        "video frame 3 comes next"
    );
}

#[test]
fn scale_paces_faster_and_reverse_is_not_implemented() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    h.setup(h.t0, 0, "0-1");
    let d = h.request(h.t0, "PLAY", URL, &[("Scale", "2")]);
    assert_eq!(d.status(), 200);
    assert_eq!(d.responses[0].headers.get("Scale"), Some("2"));
    // At scale 2 the ten 40 ms frames take 200 ms of wall time.
    let until = h.at(199);
    let (video, _) = packets_until(&mut h, d, until, 0);
    assert_eq!(video.iter().filter(|p| p.marker).count(), VIDEO_FRAMES);
    for scale in ["-1", "0", "abc", "1000"] {
        let mut h = Harness::new();
        h.describe(h.t0, URL, &source);
        h.setup(h.t0, 0, "0-1");
        assert_eq!(
            h.request(h.t0, "PLAY", URL, &[("Scale", scale)]).status(),
            501,
            "{scale}"
        );
    }
}

#[test]
fn npt_ranges_parse() {
    let s = |x: f64| Some(Duration::from_secs_f64(x));
    assert_eq!(parse_npt_range("npt=5-"), Ok((s(5.0), None)));
    assert_eq!(parse_npt_range("npt=0.5-2.25"), Ok((s(0.5), s(2.25))));
    assert_eq!(parse_npt_range("npt=now-"), Ok((None, None)));
    assert_eq!(parse_npt_range("npt=-3"), Ok((None, s(3.0))));
    assert_eq!(
        parse_npt_range("npt=01:02:03.5-;time=19970123T143720Z"),
        Ok((s(3723.5), None))
    );
    for bad in [
        "npt=",
        "npt=5",
        "smpte=0:10:00-",
        "npt=1:70:00-",
        "npt=inf-",
        "npt=NaN-",
        "npt=1e300-",
        "npt=0-now",
    ] {
        assert!(parse_npt_range(bad).is_err(), "{bad}");
    }
    assert!(starts_at_zero("npt=0-") && starts_at_zero("npt=0.000-") && starts_at_zero("npt=now-"));
    assert!(!starts_at_zero("npt=5-") && !starts_at_zero("clock=19961108T142300Z-") && !starts_at_zero("npt=x-"));
}

#[test]
fn idle_and_session_timeouts() {
    // No request at all: idle timeout.
    let mut h = Harness::new();
    let d = h.drain();
    assert_eq!(d.timeout, Some(h.t0 + Duration::from_secs(30)));
    // A partial request is not activity.
    let d = h.input(h.at(29_000), b"OPTIONS * RTSP/1.0\r\n");
    assert_eq!(d.timeout, Some(h.t0 + Duration::from_secs(30)));
    assert!(!h.timeout(h.at(29_999)).closed);
    let d = h.timeout(h.at(30_000));
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::IdleTimeout(_),
            ..
        }
    )));

    // With a session: session timeout, renewed by requests and by interleaved data.
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    let d = h.setup(h.t0, 0, "0-1");
    assert_eq!(d.timeout, Some(h.t0 + Duration::from_secs(60)));
    let d = h.input(h.at(50_000), b"$\x01\x00\x04abcd");
    assert_eq!(d.timeout, Some(h.at(110_000)));
    let d = h.request(h.at(100_000), "GET_PARAMETER", URL, &[]);
    assert_eq!(d.timeout, Some(h.at(160_000)));
    let d = h.timeout(h.at(160_000));
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::SessionTimeout(_),
            ..
        }
    )));
}

#[test]
fn eof_closes() {
    let mut h = Harness::new();
    h.conn
        .handle_input(h.t0, ServerInput::Data(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
    h.conn.handle_input(h.at(1), ServerInput::Eof);
    let d = h.drain();
    assert_eq!(d.transmits, 0);
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::PeerClosed,
            ..
        }
    )));
}

#[test]
fn too_many_pipelined_requests_close() {
    let mut h = Harness::new();
    let mut text = format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    for i in 0..20 {
        text.push_str(&format!("OPTIONS * RTSP/1.0\r\nCSeq: {}\r\n\r\n", i + 2));
    }
    let d = h.input(h.t0, text.as_bytes());
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::TooManyPipelined,
            ..
        }
    )));
}

#[test]
fn event_uri_has_no_credentials() {
    assert_eq!(loggable_uri("rtsp://u:p@h:1/a?x=@"), "rtsp://h:1/a?x=@");
    assert_eq!(loggable_uri("*"), "*");
    assert_eq!(loggable_uri(&"rtsp://h/".repeat(200)).len(), MAX_EVENT_URI);
}

// ---------------------------------------------------------------------------
// Pacing

/// Due instant of every sample of one play-through from `start`.
fn due_instants(source: &MediaSource, start: Instant) -> Vec<Instant> {
    source.samples.iter().map(|s| start + source.send_time(s)).collect()
}

#[test]
fn packets_leave_exactly_at_their_instants() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let start = h.at(100);
    let d = h.play(start, &source, "");
    let info = rtp_info(&d.responses[0]);
    let (v_base, a_base) = (info[0].2, info[1].2);
    let dues = due_instants(&source, start);
    let mut instants: Vec<Instant> = dues.clone();
    instants.dedup();

    // Collect per instant what went out; the PLAY call sent those due at `start`.
    let mut batches = vec![(start, d)];
    loop {
        let next = batches.last().unwrap().1.timeout.unwrap();
        if next >= start + source.duration {
            break;
        }
        // Nothing is sent a nanosecond early.
        let early = h.timeout(next - Duration::from_nanos(1));
        assert_eq!(early.transmits, 0);
        let d = h.timeout(next);
        batches.push((next, d));
    }
    assert_eq!(batches.iter().map(|(at, _)| *at).collect::<Vec<_>>(), instants);
    let mut seq = (info[0].1, info[1].1);
    for (at, d) in &batches {
        // One write per instant (the first also carries the PLAY response).
        assert_eq!(d.transmits, 1);
        let due: Vec<&SourceSample> = source
            .samples
            .iter()
            .zip(&dues)
            .filter(|(_, t)| *t == at)
            .map(|(s, _)| s)
            .collect();
        let mut want_v: Vec<u32> = due
            .iter()
            .filter(|s| s.track == 0)
            .map(|s| v_base.wrapping_add(s.presentation_time as u32))
            .collect();
        let mut want_a: Vec<u32> = due
            .iter()
            .filter(|s| s.track == 1)
            .map(|s| a_base.wrapping_add(s.presentation_time as u32))
            .collect();
        let mut got_v: Vec<u32> = d.rtp(0).iter().map(|p| p.timestamp).collect();
        got_v.dedup();
        let got_a: Vec<u32> = d.rtp(2).iter().map(|p| p.timestamp).collect();
        want_v.dedup();
        want_a.dedup();
        assert_eq!((got_v, got_a), (want_v, want_a), "at {:?}", *at - start);
        for p in d.rtp(0) {
            assert_eq!(p.sequence_number, seq.0);
            assert_eq!(p.payload_type, 96);
            seq.0 = seq.0.wrapping_add(1);
        }
        for p in d.rtp(2) {
            assert_eq!(p.sequence_number, seq.1);
            assert_eq!(p.payload_type, 97);
            assert!(p.marker);
            seq.1 = seq.1.wrapping_add(1);
        }
        // Markers: the last packet of each access unit.
        let v = d.rtp(0);
        for w in v.windows(2) {
            assert_eq!(w[0].marker, w[0].timestamp != w[1].timestamp);
        }
        if let Some(last) = v.last() {
            assert!(last.marker);
        }
    }
    // The big IDR was fragmented, within max_payload.
    assert!(batches[0].1.rtp(0).len() > 3);
    assert!(batches[0].1.rtp(0).iter().all(|p| p.payload.len() <= 1400));
    // The first SR rode with the first packets.
    let srs = batches[0].1.rtcp(1);
    assert_eq!(srs.len(), 1);
    assert!(
        matches!(&srs[0][..], [RtcpPacket::SenderReport(sr), RtcpPacket::SourceDescription(_)]
        if sr.rtp_timestamp == v_base && sr.packet_count as usize == batches[0].1.rtp(0).len())
    );

    // The end: SR + SDES + BYE on both RTCP channels at start + duration.
    let end = start + source.duration;
    assert_eq!(batches.last().unwrap().1.timeout, Some(end));
    let d = h.timeout(end);
    assert_eq!(d.transmits, 1);
    for ch in [1, 3] {
        let rtcp = d.rtcp(ch);
        assert_eq!(rtcp.len(), 1);
        assert!(matches!(
            &rtcp[0][..],
            [
                RtcpPacket::SenderReport(_),
                RtcpPacket::SourceDescription(_),
                RtcpPacket::Bye(_)
            ]
        ));
    }
    assert!(d
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::PlaybackEnded { loops: 1, .. })));
    // Linger, then close.
    let close_at = end + config().linger_after_end;
    assert_eq!(d.timeout, Some(close_at));
    assert!(!h.timeout(close_at - Duration::from_nanos(1)).closed);
    let d = h.timeout(close_at);
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::PlaybackEnded,
            ..
        }
    )));
}

#[test]
fn late_wakeup_sends_everything_due_in_one_write() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let start = h.t0;
    h.play(start, &source, "");
    let d = h.timeout(start + ms(200));
    assert_eq!(d.transmits, 1);
    let due = due_instants(&source, start)
        .iter()
        .zip(&source.samples)
        .filter(|(t, s)| **t > start && **t <= start + ms(200) && s.track == 1)
        .count();
    assert_eq!(d.rtp(2).len(), due);
}

/// Follows every deadline from `d` up to `until` (wake-ups exactly on time).
fn follow(h: &mut Harness, mut d: Drained, until: Instant) -> Vec<(Instant, Drained)> {
    let mut all = Vec::new();
    let mut at = None;
    loop {
        let next = d.timeout;
        all.push((at.unwrap_or(h.t0), d));
        match next {
            Some(t) if t <= until => {
                at = Some(t);
                d = h.timeout(t);
            }
            _ => break,
        }
    }
    all
}

#[test]
fn a_long_stall_catches_up_at_most_max_lag_then_the_schedule_moves() {
    let source = Arc::new(synthetic_source());
    let max_lag = ms(100);
    let mut h = Harness::with(
        ServerConfig {
            max_lag,
            rtcp_interval: Duration::from_secs(1),
            ..config()
        },
        0,
    );
    let start = h.t0;
    let d = h.play(start, &source, "?play_count=0");
    // On time for 1 s, then the runtime is not polled for 3 s.
    let before: Vec<RtpPacket> = follow(&mut h, d, start + ms(1000))
        .iter()
        .flat_map(|(_, d)| d.rtp(2))
        .collect();
    let last = before.last().unwrap().clone();
    let mut due_after: Vec<Instant> = Vec::new();
    for k in 0..20u32 {
        for s in source.samples.iter().filter(|s| s.track == 1) {
            due_after.push(start + source.duration * k + source.send_time(s));
        }
    }
    let next_due = *due_after.iter().find(|t| **t > start + ms(1000)).unwrap();
    let woke = start + ms(4000);
    let d = h.timeout(woke);
    let behind = woke - next_due;
    let skipped = behind - max_lag;
    // Only what fell due in the last max_lag went out, in one write.
    let audio = d.rtp(2);
    let in_window = due_after
        .iter()
        .filter(|t| **t >= next_due && **t <= next_due + max_lag)
        .count();
    assert_eq!(audio.len(), in_window, "{} packets", audio.len());
    assert!(audio.len() <= 6, "{}", audio.len());
    assert_eq!(d.transmits, 1);
    assert_eq!(
        d.events,
        vec![ServerEvent::FellBehind {
            session_id: h.session.clone().unwrap(),
            behind,
            skipped,
            times: 1,
        }]
    );
    // Nothing skipped in the stream: sequence numbers and timestamps go on
    // from the last packet before the stall.
    assert_eq!(audio[0].sequence_number, last.sequence_number.wrapping_add(1));
    assert_eq!(audio[0].timestamp, last.timestamp.wrapping_add(1024));
    // The schedule moved by `skipped`: the next wake-up is the next sample's
    // old due instant plus `skipped`, and from there it is real time again.
    let rest = due_after.iter().filter(|t| **t > next_due + max_lag);
    let want: Vec<Instant> = rest.take(5).map(|t| *t + skipped).collect();
    let mut got = Vec::new();
    let mut srs = Vec::new();
    let mut audio_ts: Vec<(Instant, u32)> = audio.iter().map(|p| (woke, p.timestamp)).collect();
    for c in d.rtcp(3) {
        if let RtcpPacket::SenderReport(sr) = &c[0] {
            srs.push((woke, sr.rtp_timestamp));
        }
    }
    let mut d = d;
    while got.len() < 80 {
        let at = d.timeout.unwrap();
        d = h.timeout(at);
        if !d.rtp(2).is_empty() {
            got.push(at);
        }
        for p in d.rtp(2) {
            audio_ts.push((at, p.timestamp));
        }
        for c in d.rtcp(3) {
            if let RtcpPacket::SenderReport(sr) = &c[0] {
                srs.push((at, sr.rtp_timestamp));
            }
        }
    }
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!(&got[..5], &want[..]);
    // The sender reports agree with the packets: an SR's RTP time is that
    // of the audio sent at the same instant (within one frame).
    assert!(srs.len() >= 2, "{srs:?}");
    for (at, ts) in srs {
        let sent = audio_ts.iter().rev().find(|(t, _)| *t <= at).unwrap().1;
        let diff = ts.wrapping_sub(sent);
        assert!(diff < 1024 + 8, "SR {ts} vs last audio {sent} at {:?}", at - start);
    }
}

#[test]
fn by_default_a_three_second_stall_is_caught_up_in_one_burst() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let start = h.t0;
    h.play(start, &source, "?play_count=0");
    let d = h.timeout(start + ms(3000));
    assert!(d.events.is_empty(), "{:?}", d.events);
    // Everything due by then went out: the next deadline is in the future.
    assert!(d.timeout.unwrap() > start + ms(3000));
    let n_audio = source.samples.iter().filter(|s| s.track == 1).count();
    let mut due = 0;
    for k in 0..10u32 {
        for s in source.samples.iter().filter(|s| s.track == 1) {
            let t = start + source.duration * k + source.send_time(s);
            due += usize::from(t > start && t <= start + ms(3000));
        }
    }
    assert_eq!(d.rtp(2).len(), due);
    assert!(due > 2 * n_audio);
}

#[test]
fn a_stall_loses_no_sample_and_moves_the_end() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::with_max_lag(ms(50));
    let start = h.t0;
    h.play(start, &source, "");
    let n_audio = source.samples.iter().filter(|s| s.track == 1).count();
    // Stalled from the start for 2 s (longer than the whole play-through).
    let d = h.timeout(start + ms(2000));
    let all = follow(&mut h, d, start + ms(10_000));
    let audio: Vec<u32> = all.iter().flat_map(|(_, d)| d.rtp(2)).map(|p| p.timestamp).collect();
    assert_eq!(audio.len(), n_audio - 1, "every sample after the first was sent");
    let bye_at = all
        .iter()
        .find(|(_, d)| d.rtcp(3).iter().flatten().any(|p| matches!(p, RtcpPacket::Bye(_))))
        .map(|(at, _)| *at)
        .unwrap();
    // The end moved by the skip: start + D + (2 s − first due after start − 50 ms).
    let first_late = source.samples.iter().filter(|s| s.track == 1).nth(1).unwrap();
    let skipped = ms(2000) - source.send_time(first_late) - ms(50);
    assert_eq!(bye_at, start + source.duration + skipped);
    let events: Vec<&ServerEvent> = all.iter().flat_map(|(_, d)| &d.events).collect();
    assert!(
        matches!(events[0], ServerEvent::FellBehind { times: 1, .. }),
        "{events:?}"
    );
}

#[test]
fn skips_within_five_seconds_are_summed_and_reported_before_close() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::with_max_lag(ms(100));
    let start = h.t0;
    h.play(start, &source, "?play_count=0");
    let d = h.timeout(start + ms(1000));
    let first = d.events.clone();
    assert!(
        matches!(first[..], [ServerEvent::FellBehind { times: 1, .. }]),
        "{first:?}"
    );
    let all = follow(&mut h, d, start + ms(1500));
    assert!(all.iter().skip(1).all(|(_, d)| d.events.is_empty()));
    // A second stall 2 s later: counted, not reported yet.
    let d = h.timeout(start + ms(3500));
    assert!(d.events.is_empty(), "{:?}", d.events);
    let mut next = d.timeout.unwrap();
    // Two more: the first at least 5 s after the first report is reported
    // with the sum.
    let d = h.timeout(next + ms(1000));
    assert!(d.events.is_empty());
    next = d.timeout.unwrap();
    let t3 = next + ms(2000).max(start + ms(6000) - next);
    let d = h.timeout(t3);
    let (skipped, times) = match &d.events[..] {
        [ServerEvent::FellBehind { skipped, times, .. }] => (*skipped, *times),
        other => panic!("{other:?}"),
    };
    assert_eq!(times, 3);
    assert!(skipped > ms(3000) && skipped < ms(5000), "{skipped:?}");
    // One more, then on time: reported 5 s after the last report, without
    // waiting for another skip.
    let next = d.timeout.unwrap();
    let d = h.timeout(next + ms(700));
    assert!(d.events.is_empty());
    let all = follow(&mut h, d, t3 + ms(6000));
    let reports: Vec<(Instant, &ServerEvent)> = all
        .iter()
        .skip(1)
        .flat_map(|(at, d)| d.events.iter().map(move |e| (*at, e)))
        .collect();
    assert!(
        matches!(reports[..], [(at, ServerEvent::FellBehind { times: 1, .. })]
            if at >= t3 + LAG_EVENT_INTERVAL && at < t3 + LAG_EVENT_INTERVAL + ms(100)),
        "{reports:?}"
    );
    // And one more, then TEARDOWN: reported before Closed.
    let next = all.last().unwrap().1.timeout.unwrap();
    let d = h.timeout(next + ms(700));
    assert!(d.events.is_empty());
    let d = h.request(next + ms(700), "TEARDOWN", URL, &[]);
    assert!(matches!(&d.events[..], [ServerEvent::Request { .. }]), "{:?}", d.events);
    let d = h.give(next + ms(700), ServerInput::Eof);
    assert!(d.closed);
    assert!(
        matches!(
            &d.events[..],
            [ServerEvent::FellBehind { times: 1, .. }, ServerEvent::Closed { .. }]
        ),
        "{:?}",
        d.events
    );
}

#[test]
fn abort_reports_the_pending_skips_and_the_reason_then_closes() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::with_max_lag(ms(500));
    let start = h.t0;
    h.play(start, &source, "?play_count=0");
    assert_eq!(h.timeout(start + ms(2000)).events.len(), 1);
    let d = h.timeout(start + ms(4000));
    assert!(d.events.is_empty());
    h.conn.handle_input(
        start + ms(4000),
        ServerInput::Abort(CloseReason::NotReading(Duration::from_secs(5))),
    );
    let d = h.drain();
    assert_eq!(d.transmits, 0);
    assert!(d.closed);
    assert!(
        matches!(
            &d.events[..],
            [
                ServerEvent::FellBehind { times: 1, .. },
                ServerEvent::Closed {
                    reason: CloseReason::NotReading(_),
                    ..
                }
            ]
        ),
        "{:?}",
        d.events
    );
    assert_eq!(
        CloseReason::NotReading(Duration::from_secs(5)).to_string(),
        "the client took no data for 5s"
    );
}

#[test]
fn rtcp_sender_reports_follow_the_interval() {
    let source = Arc::new(synthetic_source());
    let ntp0 = 0xe000_0000_0000_0000u64;
    let mut h = Harness::with(
        ServerConfig {
            rtcp_interval: ms(100),
            ..config()
        },
        ntp0,
    );
    let start = h.at(1000);
    let d = h.play(start, &source, "");
    let info = rtp_info(&d.responses[0]);
    let mut srs = Vec::new();
    let mut d = d;
    loop {
        for c in d.rtcp(3) {
            if let RtcpPacket::SenderReport(sr) = &c[0] {
                srs.push(sr.clone());
            }
        }
        let Some(next) = d.timeout else { break };
        if d.closed || next > start + source.duration {
            break;
        }
        d = h.timeout(next);
    }
    // At 0 (after the first audio frame), 100, 200, 300, 400 ms, and the
    // last one (with BYE) at the end, D = 18 × 1024 / 44100 s.
    assert_eq!(srs.len(), 6, "{srs:?}");
    for (k, sr) in srs.iter().enumerate() {
        let elapsed = if k < 5 { ms(100 * k as u64) } else { source.duration };
        assert_eq!(sr.ntp_timestamp, clock::ntp_add(ntp0, ms(1000) + elapsed));
        let ticks = (elapsed.as_nanos() * 44100 / 1_000_000_000) as u32;
        assert_eq!(sr.rtp_timestamp, info[1].2.wrapping_add(ticks));
    }
    assert_eq!(srs[5].rtp_timestamp, info[1].2.wrapping_add(18 * 1024 - 1));
    assert!(srs[..5]
        .windows(2)
        .all(|w| w[0].packet_count < w[1].packet_count && w[0].octet_count < w[1].octet_count));
    assert_eq!(srs[5].packet_count, 18);
}

fn collect_until_close(h: &mut Harness, mut d: Drained, until: Instant) -> Vec<Drained> {
    let mut all = Vec::new();
    loop {
        let next = d.timeout;
        let closed = d.closed;
        all.push(d);
        match next {
            Some(at) if !closed && at <= until => d = h.timeout(at),
            _ => break,
        }
    }
    all
}

#[test]
fn play_count_two_loops_with_continuous_seq_and_timestamps() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let start = h.t0;
    let d = h.play(start, &source, "?play_count=2");
    let r = &d.responses[0];
    assert_eq!(
        r.headers.get("Range"),
        Some(format!("npt=0.000-{}", npt(source.duration * 2)).as_str())
    );
    let info = rtp_info(r);
    let all = collect_until_close(&mut h, d, start + Duration::from_secs(60));
    assert!(all.last().unwrap().closed);
    let video: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(0)).collect();
    let audio: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(2)).collect();
    let n_video = source.samples.iter().filter(|s| s.track == 0).count();
    let n_audio = source.samples.iter().filter(|s| s.track == 1).count();
    let frames = |p: &[RtpPacket]| p.iter().filter(|p| p.marker).count();
    assert_eq!((frames(&video), frames(&audio)), (2 * n_video, 2 * n_audio));
    for (packets, first_seq) in [(&video, info[0].1), (&audio, info[1].1)] {
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(p.sequence_number, first_seq.wrapping_add(i as u16));
        }
    }
    // Timestamps: loop 2 = loop 1 + ceil(D × rate), increasing across the seam.
    let v_loop = ticks_ceil(source.duration, 90000);
    let a_loop = ticks_ceil(source.duration, 44100);
    let a_ts: Vec<u32> = audio.iter().map(|p| p.timestamp.wrapping_sub(info[1].2)).collect();
    for k in 0..n_audio {
        assert_eq!(a_ts[n_audio + k], a_ts[k] + a_loop as u32);
    }
    assert!(a_ts.windows(2).all(|w| w[0] < w[1]));
    let v_ts: Vec<u32> = video.iter().map(|p| p.timestamp.wrapping_sub(info[0].2)).collect();
    assert!(v_ts.windows(2).all(|w| w[0] <= w[1]));
    assert!(v_ts.contains(&(v_loop as u32)));
    // One BYE per track, after the last loop, at start + 2D.
    let byes: Vec<&Drained> = all
        .iter()
        .filter(|d| {
            d.rtcp(1)
                .iter()
                .any(|c| c.iter().any(|p| matches!(p, RtcpPacket::Bye(_))))
        })
        .collect();
    assert_eq!(byes.len(), 1);
    assert!(byes[0]
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::PlaybackEnded { loops: 2, .. })));
}

fn ticks_ceil(d: Duration, rate: u64) -> u64 {
    (d.as_nanos() as u64 * rate).div_ceil(1_000_000_000)
}

#[test]
fn play_count_zero_loops_until_teardown() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let start = h.t0;
    let d = h.play(start, &source, "?play_count=0");
    assert_eq!(d.responses[0].headers.get("Range"), Some("npt=0.000-"));
    let horizon = start + source.duration * 3 + ms(1);
    let all = collect_until_close(&mut h, d, horizon);
    let n_video = source.samples.iter().filter(|s| s.track == 0).count();
    let frames = all.iter().flat_map(|d| d.rtp(0)).filter(|p| p.marker).count();
    assert!(frames >= 3 * n_video, "{frames}");
    assert!(all
        .iter()
        .all(|d| !d.closed && d.rtcp(1).iter().flatten().all(|p| !matches!(p, RtcpPacket::Bye(_)))));
    // Still going; keepalives keep it alive, TEARDOWN ends it.
    let d = h.request(horizon, "TEARDOWN", URL, &[]);
    assert_eq!(d.status(), 200);
    assert!(d.frames.is_empty());
    // The client closes: at once.
    assert!(h.give(horizon, ServerInput::Eof).closed);
}

#[test]
fn play_count_is_remembered_and_capped() {
    let source = Arc::new(synthetic_source());
    // Given on DESCRIBE only, used by PLAY; a later SETUP may change it.
    let mut h = Harness::new();
    h.describe(h.t0, &format!("{URL}?play_count=3"), &source);
    h.setup(h.t0, 0, "0-1");
    let d = h.request(
        h.t0,
        "SETUP",
        &format!("{URL}/trackID=1?play_count=99999999999999999999999"),
        &[("Transport", "RTP/AVP/TCP;interleaved=2-3")],
    );
    assert_eq!(d.status(), 200);
    let d = h.request(h.t0, "PLAY", URL, &[]);
    assert!(d.events.iter().any(|e| matches!(e,
        ServerEvent::SessionStarted { play_count: PlayCount::Times(n), .. } if n.get() == u32::MAX)));
    // Range would overflow no Duration: u32::MAX × 0.418 s fits.
    assert!(d.responses[0].headers.get("Range").unwrap().starts_with("npt=0.000-"));
    let mut h = Harness::new();
    h.describe(h.t0, &format!("{URL}?play_count=-4"), &source);
    h.setup(h.t0, 0, "0-1");
    let d = h.request(h.t0, "PLAY", URL, &[]);
    assert!(d
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::SessionStarted { play_count, .. } if *play_count == PlayCount::ONCE)));
}

#[test]
fn degenerate_sources_do_not_spin() {
    // Zero duration, endless loop requested: played once.
    let mut src = synthetic_source();
    src.duration = Duration::ZERO;
    for s in &mut src.samples {
        s.decode_time = 0;
    }
    let source = Arc::new(src);
    let mut h = Harness::new();
    let d = h.play(h.t0, &source, "?play_count=0");
    let total: usize = d.rtp(0).iter().filter(|p| p.marker).count();
    assert_eq!(total, VIDEO_FRAMES);
    // Ended at once: the BYE rides with the PLAY answer, then the linger.
    assert!(d.rtcp(1).iter().flatten().any(|p| matches!(p, RtcpPacket::Bye(_))));
    assert_eq!(d.timeout, Some(h.t0 + config().linger_after_end));
    // Only the audio track set up, and a source whose audio has no samples.
    let mut src = synthetic_source();
    src.samples.retain(|s| s.track == 0);
    let source = Arc::new(src);
    let mut h = Harness::new();
    h.describe(h.t0, &format!("{URL}?play_count=0"), &source);
    h.setup(h.t0, 1, "2-3");
    let d = h.request(h.t0, "PLAY", URL, &[]);
    assert!(d.frames.is_empty());
    let end = d.timeout.unwrap();
    assert_eq!(end, h.t0 + source.duration);
    let d = h.timeout(end);
    assert!(d.rtcp(3).iter().flatten().any(|p| matches!(p, RtcpPacket::Bye(_))));
}

#[test]
fn pcma_and_h265_tracks_stream() {
    let vps = vec![0x40, 0x01, 0x0c, 0x01];
    let sps = vec![0x42, 0x01, 0x01, 0x01];
    let pps = vec![0x44, 0x01, 0xc1];
    let mut idr = vec![0x26, 0x01, 0xaf];
    idr.extend(std::iter::repeat_n(0x55, 2000));
    let source = Arc::new(MediaSource {
        tracks: vec![
            SourceTrack {
                codec: SourceCodec::H265 {
                    vps: vec![Bytes::from(vps.clone())],
                    sps: vec![Bytes::from(sps.clone())],
                    pps: vec![Bytes::from(pps.clone())],
                },
                clock_rate: 90000,
            },
            SourceTrack {
                codec: SourceCodec::Pcma,
                clock_rate: 8000,
            },
        ],
        samples: vec![
            SourceSample {
                track: 0,
                decode_time: 0,
                presentation_time: 0,
                keyframe: true,
                data: length_prefixed(&[vps, sps, pps, idr]),
            },
            SourceSample {
                track: 1,
                decode_time: 0,
                presentation_time: 0,
                keyframe: true,
                data: Bytes::from(vec![0xd5; 3000]),
            },
        ],
        duration: ms(375),
    });
    let mut h = Harness::new();
    let d = h.describe(h.t0, URL, &source);
    let sdp = Sdp::parse(&d.response().body).unwrap();
    assert!(sdp.media[0].codec_is("H265"));
    assert_eq!((sdp.media[1].payload_type, sdp.media[1].codec.as_str()), (8, "PCMA"));
    h.setup(h.t0, 0, "0-1");
    h.setup(h.t0, 1, "2-3");
    let d = h.request(h.t0, "PLAY", URL, &[]);
    let info = rtp_info(&d.responses[0]);
    let v = d.rtp(0);
    assert!(v.len() >= 3 && v.last().unwrap().marker);
    let a = d.rtp(2);
    // 3000 one-byte samples in 1400-byte packets, timestamps advancing by length.
    assert_eq!(a.iter().map(|p| p.payload.len()).collect::<Vec<_>>(), [1400, 1400, 200]);
    assert_eq!(
        a.iter()
            .map(|p| p.timestamp.wrapping_sub(info[1].2))
            .collect::<Vec<_>>(),
        [0, 1400, 2800]
    );
    assert!(a.iter().all(|p| p.payload_type == 8 && !p.marker));
}

#[test]
fn mjpeg_track_streams_images_the_client_rebuilds() {
    use crate::codec::jpeg;
    // A JPEG image rebuilt from a Q 50 packet of 3000 bytes of (stand-in) entropy-coded data.
    let sdp26 = Sdp::parse(b"v=0\r\nm=video 0 RTP/AVP 26\r\n").unwrap();
    let mut d = jpeg::Depacketizer::new(&sdp26.media[0], 1 << 20).unwrap();
    let mut payload = vec![0, 0, 0, 0, 1, 50, 40, 30];
    payload.extend((0..3000u32).map(|i| (i % 251) as u8));
    d.push(&rtp_packet(&payload), 0).unwrap();
    let image = d.pull().unwrap().data;
    let source = Arc::new(MediaSource {
        tracks: vec![SourceTrack {
            codec: SourceCodec::Mjpeg,
            clock_rate: 90000,
        }],
        samples: vec![
            SourceSample {
                track: 0,
                decode_time: 0,
                presentation_time: 0,
                keyframe: true,
                data: image.clone(),
            },
            // Not a JPEG image (file readers never give one): skipped, not sent.
            SourceSample {
                track: 0,
                decode_time: 0,
                presentation_time: 0,
                keyframe: true,
                data: Bytes::from_static(b"not a JPEG image"),
            },
        ],
        duration: ms(100),
    });
    let mut h = Harness::new();
    let resp = h.describe(h.t0, URL, &source);
    let sdp = Sdp::parse(&resp.response().body).unwrap();
    assert_eq!((sdp.media[0].payload_type, sdp.media[0].codec.as_str()), (26, "JPEG"));
    h.setup(h.t0, 0, "0-1");
    let out = h.request(h.t0, "PLAY", URL, &[]);
    let v = out.rtp(0);
    assert!(v.len() >= 3 && v.iter().all(|p| p.payload_type == 26));
    assert_eq!(v.iter().filter(|p| p.marker).count(), 1);
    let mut d = jpeg::Depacketizer::new(&sdp.media[0], 1 << 20).unwrap();
    for p in &v {
        d.push(p, 0).unwrap();
    }
    assert_eq!(d.pull().unwrap().data, image);
    assert!(d.pull().is_none());
}

/// An RTP packet with the marker bit, for feeding a depacketizer directly.
fn rtp_packet(payload: &[u8]) -> RtpPacket {
    RtpPacket {
        sequence_number: 1,
        timestamp: 0,
        ssrc: 1,
        marker: true,
        payload_type: 26,
        csrc_count: 0,
        extension: None,
        padding: 0,
        payload: Bytes::copy_from_slice(payload),
    }
}

// ---------------------------------------------------------------------------
// End to end: the core client against this server, in memory.

struct E2e {
    video: Vec<(Vec<u8>, i64, bool)>,
    audio: Vec<(Vec<u8>, i64)>,
    client_closed_cleanly: bool,
    server_events: Vec<ServerEvent>,
}

fn end_to_end(query: &str) -> E2e {
    end_to_end_with(config(), URL, query)
}

/// [`end_to_end`] with a server `config` and the client's `url`; `401`s
/// are expected when the config asks for credentials.
fn end_to_end_with(config: ServerConfig, url: &str, query: &str) -> E2e {
    let auth = config.auth.is_some();
    let source = Arc::new(synthetic_source());
    let t0 = Instant::now();
    let mut server = Connection::new(Arc::new(config), t0, "127.0.0.1:40000".parse().unwrap(), 42, 0);
    let mut client = Client::new(&format!("{url}{query}"), ClientOptions::default(), t0).unwrap();
    client.handle_input(
        t0,
        Input::Connected {
            local: "127.0.0.1:40000".parse().unwrap(),
            peer: "127.0.0.1:8554".parse().unwrap(),
        },
    );
    let mut now = t0;
    let mut result = E2e {
        video: vec![],
        audio: vec![],
        client_closed_cleanly: false,
        server_events: vec![],
    };
    let (mut to_server, mut to_client) = (Vec::<u8>::new(), Vec::<u8>::new());
    let (mut server_at, mut client_at) = (t0, t0);
    let (mut server_closed, mut client_done) = (false, false);
    for _ in 0..100_000 {
        while !server_closed {
            match server.poll_output() {
                ServerOutput::Transmit(b) => to_client.extend_from_slice(&b),
                ServerOutput::Lookup { token, path } => {
                    assert_eq!(path, "dir/clip.mp4");
                    server.handle_input(
                        now,
                        ServerInput::Lookup {
                            token,
                            result: Ok(source.clone()),
                        },
                    );
                }
                ServerOutput::Event(e) => result.server_events.push(e),
                o @ (ServerOutput::OpenUdp(_)
                | ServerOutput::Backchannel { .. }
                | ServerOutput::Announce { .. }
                | ServerOutput::Published { .. }
                | ServerOutput::ReadLive { .. }
                | ServerOutput::SendDatagram { .. }
                | ServerOutput::OtherSession { .. }
                | ServerOutput::Multicast(_)) => {
                    panic!("no UDP over TCP: {o:?}")
                }
                ServerOutput::Timeout(at) => {
                    server_at = at;
                    break;
                }
                ServerOutput::Close => server_closed = true,
            }
        }
        while !client_done {
            match client.poll_output() {
                Output::Transmit(b) => to_server.extend_from_slice(&b),
                Output::SendDatagram { .. } | Output::OpenUdp(_) | Output::Reconnect => {
                    panic!("a TCP session asked for UDP")
                }
                Output::Event(Event::Video(v)) => {
                    result
                        .video
                        .push((v.frame.data.to_vec(), v.extended_timestamp, v.frame.keyframe))
                }
                Output::Event(Event::Audio(a)) => result.audio.push((a.frame.data.to_vec(), a.extended_timestamp)),
                Output::Event(Event::Closed(c)) => result.client_closed_cleanly = c.error.is_none(),
                Output::Event(Event::Method(m)) => assert!(m.is_success() || (auth && m.status == 401), "{m:?}"),
                Output::Event(Event::Warning(w)) => panic!("client warning {w:?}"),
                Output::Event(_) => {}
                Output::Timeout(at) => {
                    client_at = at;
                    break;
                }
                Output::Done => client_done = true,
            }
        }
        if client_done && server_closed {
            break;
        }
        if !to_server.is_empty() && !server_closed {
            server.handle_input(now, ServerInput::Data(&std::mem::take(&mut to_server)));
            continue;
        }
        if !to_client.is_empty() && !client_done {
            client.handle_input(now, Input::Data(&std::mem::take(&mut to_client)));
            continue;
        }
        if server_closed && !client_done {
            client.handle_input(now, Input::Eof);
            continue;
        }
        if client_done && !server_closed {
            server.handle_input(now, ServerInput::Eof);
            continue;
        }
        now = server_at.min(client_at).max(now);
        if now >= server_at {
            server.handle_input(now, ServerInput::Timeout);
        }
        if now >= client_at {
            client.handle_input(now, Input::Timeout);
        }
    }
    assert!(client_done && server_closed, "did not finish");
    result
}

fn check_end_to_end(r: &E2e, loops: usize) {
    let source = synthetic_source();
    assert!(r.client_closed_cleanly);
    let video: Vec<&SourceSample> = source.samples.iter().filter(|s| s.track == 0).collect();
    let audio: Vec<&SourceSample> = source.samples.iter().filter(|s| s.track == 1).collect();
    assert_eq!(r.video.len(), loops * video.len());
    assert_eq!(r.audio.len(), loops * audio.len());
    let v_loop = ticks_ceil(source.duration, 90000) as i64;
    let a_loop = ticks_ceil(source.duration, 44100) as i64;
    for (i, (data, ts, key)) in r.video.iter().enumerate() {
        let (k, s) = (i / video.len(), video[i % video.len()]);
        assert_eq!(*data, annex_b(&s.data), "video frame {i}");
        assert_eq!(*key, s.keyframe);
        assert_eq!(ts - r.video[0].1, s.presentation_time + k as i64 * v_loop);
    }
    for (i, (data, ts)) in r.audio.iter().enumerate() {
        let (k, s) = (i / audio.len(), audio[i % audio.len()]);
        assert_eq!(&data[..], &s.data[..], "audio frame {i}");
        assert_eq!(ts - r.audio[0].1, s.presentation_time + k as i64 * a_loop);
    }
    // The client tore down after the BYEs; the server saw it.
    assert!(r.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::Teardown,
            ..
        }
    )));
    assert!(r
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::PlaybackEnded { loops: l, .. } if *l as usize == loops)));
}

#[test]
fn end_to_end_with_the_core_client() {
    let r = end_to_end("");
    check_end_to_end(&r, 1);
    let methods: Vec<(Method, u16)> = r
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request { method, status, .. } => Some((method.clone(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        methods,
        [
            (Method::Options, 200),
            (Method::Describe, 200),
            (Method::Setup, 200),
            (Method::Setup, 200),
            (Method::Play, 200),
            (Method::Teardown, 200)
        ]
    );
}

#[test]
fn end_to_end_play_count_two() {
    check_end_to_end(&end_to_end("?play_count=2"), 2);
}

// ---------------------------------------------------------------------------
// Robustness

fn drain_bounded(conn: &mut Connection) -> usize {
    let mut bytes = 0;
    for _ in 0..10_000 {
        match conn.poll_output() {
            ServerOutput::Transmit(b) => bytes += b.len(),
            ServerOutput::SendDatagram { data, .. } => bytes += data.len(),
            ServerOutput::OpenUdp(UdpRequest { pair, .. }) => {
                conn.handle_input(Instant::now(), ServerInput::UdpOpened { pair, result: Ok(7000) })
            }
            ServerOutput::OtherSession { token, .. } => conn.handle_input(
                Instant::now(),
                ServerInput::OtherSession {
                    token,
                    found: token % 2 == 0,
                },
            ),
            ServerOutput::Multicast(MulticastRequest::Join { token, .. }) => {
                let tracks = [Some(MULTICAST_TRACK), None];
                conn.handle_input(
                    Instant::now(),
                    ServerInput::MulticastJoined {
                        token,
                        result: Ok(&tracks),
                    },
                )
            }
            ServerOutput::Multicast(MulticastRequest::Play { token }) => {
                conn.handle_input(Instant::now(), ServerInput::MulticastPlaying { token, position: None })
            }
            ServerOutput::Lookup { .. }
            | ServerOutput::Event(_)
            | ServerOutput::Backchannel { .. }
            | ServerOutput::Announce { .. }
            | ServerOutput::Published { .. }
            | ServerOutput::ReadLive { .. } => {}
            ServerOutput::Timeout(_) | ServerOutput::Close => return bytes,
        }
    }
    panic!("poll_output never settled");
}

fn small_config() -> Arc<ServerConfig> {
    Arc::new(ServerConfig {
        limits: Limits {
            max_header_bytes: 512,
            max_body_bytes: 512,
            max_headers: 16,
        },
        ..config()
    })
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
        proptest::collection::vec(proptest::num::u8::ANY, 0..600), 0..6)) {
        let t0 = Instant::now();
        let mut conn = Connection::new(small_config(), t0, "10.0.0.1:1".parse().unwrap(), 1, 0);
        for (i, c) in chunks.iter().enumerate() {
            let now = t0 + ms(i as u64);
            conn.handle_input(now, ServerInput::Data(c));
            let out = drain_bounded(&mut conn);
            // Each request is at least 4 bytes and answered in well under 1 KiB.
            proptest::prop_assert!(out <= 1024 * (1 + c.len() / 4));
            conn.handle_input(now, ServerInput::Timeout);
            drain_bounded(&mut conn);
        }
    }

    #[test]
    fn request_fragments_never_panic(parts in proptest::collection::vec(proptest::sample::select(vec![
        "OPTIONS * RTSP/1.0\r\n", "DESCRIBE rtsp://h/a.mp4 RTSP/1.0\r\n", "SETUP rtsp://h/a.mp4/trackID=0 RTSP/1.0\r\n",
        "SETUP rtsp://h/a.mp4/trackID=1 RTSP/1.0\r\n", "PLAY rtsp://h/a.mp4/ RTSP/1.0\r\n", "TEARDOWN * RTSP/1.0\r\n",
        "GET_PARAMETER * RTSP/1.0\r\n", "PAUSE * RTSP/1.0\r\n", "SETUP rtsp://h/%2e%2e/trackID=0 RTSP/1.0\r\n",
        "CSeq: 1\r\n", "CSeq: x\r\n", "Session: 0\r\n", "Transport: RTP/AVP/TCP;interleaved=0-1\r\n",
        "Transport: RTP/AVP;unicast\r\n", "Transport: RTP/AVP/TCP\r\n", "Range: npt=3-\r\n",
        "Content-Length: 3\r\n", "Content-Length: 99999999999\r\n", "\r\n", "\n", "abc", "$\x00\x00\x02ab", "$\x01",
        "DESCRIBE rtsp://h/a.mp4?play_count=0 RTSP/1.0\r\n",
        "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n", "Transport: RTP/AVP/UDP;client_port=9\r\n",
        "Transport: RTP/AVP;unicast;client_port=5000-5001;destination=10.0.0.1\r\n", "Session: ABCDEF\r\n",
    ]), 0..40), answer in proptest::bool::ANY) {
        let source = Arc::new(synthetic_source());
        let t0 = Instant::now();
        let mut conn = Connection::new(small_config(), t0, "10.0.0.1:1".parse().unwrap(), 2, 0);
        let mut now = t0;
        for p in parts {
            now += ms(37);
            conn.handle_input(now, ServerInput::Data(p.as_bytes()));
            loop {
                match conn.poll_output() {
                    ServerOutput::Lookup { token, .. } => {
                        let result = if answer { Ok(source.clone()) } else { Err(LookupError::NotFound) };
                        conn.handle_input(now, ServerInput::Lookup { token, result });
                    }
                    ServerOutput::OpenUdp(UdpRequest { pair, .. }) => {
                        let result = if answer { Ok(6000 + 2 * pair) } else { Err("no port") };
                        conn.handle_input(now, ServerInput::UdpOpened { pair, result });
                    }
                    ServerOutput::OtherSession { token, .. } => {
                        conn.handle_input(now, ServerInput::OtherSession { token, found: answer });
                    }
                    ServerOutput::Multicast(MulticastRequest::Join { token, .. }) => {
                        let tracks = [Some(MULTICAST_TRACK)];
                        let result = if answer { Ok(&tracks[..]) } else { Err("no group") };
                        conn.handle_input(now, ServerInput::MulticastJoined { token, result });
                    }
                    ServerOutput::Multicast(MulticastRequest::Play { token }) => {
                        let position = answer.then(|| MulticastPosition {
                            start: ms(1500),
                            end: None,
                            play_count: PlayCount::Forever,
                            tracks: vec![Some((7, 9))],
                        });
                        conn.handle_input(now, ServerInput::MulticastPlaying { token, position });
                    }
                    ServerOutput::Transmit(_)
                    | ServerOutput::Event(_)
                    | ServerOutput::SendDatagram { .. }
                    | ServerOutput::Backchannel { .. }
                | ServerOutput::Announce { .. }
                | ServerOutput::Published { .. }
                | ServerOutput::ReadLive { .. } => {}
                    ServerOutput::Timeout(_) | ServerOutput::Close => break,
                }
            }
            conn.handle_input(now, ServerInput::Timeout);
            drain_bounded(&mut conn);
        }
    }
}

#[test]
fn play_count_type() {
    assert_eq!(PlayCount::default(), PlayCount::ONCE);
    assert_eq!(PlayCount::Times(NonZeroU32::new(4).unwrap()).times(), Some(4));
    assert_eq!(PlayCount::Forever.times(), None);
}

/// Rough cost check (run with `--release -- --ignored --nocapture`): 1000
/// looping sessions sharing one source, 10 s of media each, driven at their
/// deadlines.
#[test]
#[ignore]
fn thousand_sessions_cost() {
    let source = Arc::new(synthetic_source());
    let t0 = Instant::now();
    let mut conns: Vec<Harness> = (0..1000)
        .map(|_| {
            let mut h = Harness::new();
            h.t0 = t0;
            h.play(t0, &source, "?play_count=0");
            h
        })
        .collect();
    let wall = std::time::Instant::now();
    let (mut bytes, mut wakeups) = (0usize, 0usize);
    for h in &mut conns {
        let mut at = t0;
        while at < t0 + Duration::from_secs(10) {
            h.conn.handle_input(at, ServerInput::Timeout);
            loop {
                match h.conn.poll_output() {
                    ServerOutput::Transmit(b) => bytes += b.len(),
                    ServerOutput::Timeout(next) => {
                        at = next;
                        break;
                    }
                    ServerOutput::Close => panic!("closed"),
                    _ => {}
                }
            }
            wakeups += 1;
        }
        h.conn
            .handle_input(at, ServerInput::Data(b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 99\r\n\r\n"));
    }
    let spent = wall.elapsed();
    println!(
        "1000 sessions × 10 s: {wakeups} wake-ups, {} MB in {spent:?} ({:.1}% of one core)",
        bytes / 1_000_000,
        spent.as_secs_f64() / 10.0 * 100.0
    );
}

#[test]
fn initial_rtp_replaces_the_random_seq_and_timestamp_and_wraps_cleanly() {
    let source = Arc::new(synthetic_source());
    let near_wrap = (65_530u16, u32::MAX - 1000);
    let mut h = Harness::with(
        ServerConfig {
            initial_rtp: Some(near_wrap),
            ..config()
        },
        0,
    );
    let mut plain = Harness::new();
    let start = h.t0;
    let d = h.play(start, &source, "?play_count=2");
    let info = rtp_info(&d.responses[0]);
    assert!(info.iter().all(|(_, seq, ts)| (*seq, *ts) == near_wrap), "{info:?}");
    // The SSRCs do not depend on it: the random draws happen either way.
    let t0 = plain.t0;
    let d0 = plain.play(t0, &source, "?play_count=2");
    let all = collect_until_close(&mut h, d, start + Duration::from_secs(60));
    let plain_all = collect_until_close(&mut plain, d0, t0 + Duration::from_secs(60));
    for channel in [0, 2] {
        let packets: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(channel)).collect();
        assert!(packets.len() > 6, "{}", packets.len());
        assert_eq!(packets[0].sequence_number, near_wrap.0);
        assert_eq!(packets[0].timestamp, near_wrap.1);
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(p.sequence_number, near_wrap.0.wrapping_add(i as u16));
        }
        assert!(packets.iter().any(|p| p.sequence_number < 10));
        // Timestamps: unrolled, never backwards, and the 32-bit wrap is crossed.
        let ext: Vec<i64> = packets
            .iter()
            .map(|p| i64::from(p.timestamp.wrapping_sub(near_wrap.1)))
            .collect();
        assert!(ext.windows(2).all(|w| w[0] <= w[1]));
        assert!(packets.iter().any(|p| p.timestamp < near_wrap.1));
        let plain_ssrc = plain_all.iter().flat_map(|d| d.rtp(channel)).next().unwrap().ssrc;
        assert_eq!(packets[0].ssrc, plain_ssrc);
    }
}

/// A burst (here one huge access unit) must not leave its buffer behind for
/// the life of the connection: later batches get an ordinary one.
#[test]
fn a_large_batch_does_not_keep_its_buffer() {
    let mut source = synthetic_source();
    let video = source.samples.iter().position(|s| s.track == 0).unwrap();
    source.samples[video].data = length_prefixed(&[[&[0x65u8][..], &vec![0x42; 600 * 1024][..]].concat()]);
    let source = Arc::new(source);
    let mut h = Harness::new();
    let start = h.t0;
    // PLAY sends the first (huge) access unit at once.
    h.play(start, &source, "");
    // A later, ordinary batch.
    let _ = h.timeout(start + ms(500));
    assert!(
        h.conn.out.capacity() < RETAIN_OUTPUT_BYTES,
        "the output buffer kept {} bytes",
        h.conn.out.capacity()
    );
}

// ---------------------------------------------------------------------------
// RTP over UDP (unicast)

const CLIENT_RTP: &str = "127.0.0.1:5000";
const CLIENT_RTCP: &str = "127.0.0.1:5001";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Harness {
    /// SETUP of `track` over UDP to client ports `ports`.
    fn setup_udp(&mut self, at: Instant, track: usize, transport: &str) -> Drained {
        let uri = format!("{URL}/trackID={track}");
        let d = self.request(at, "SETUP", &uri, &[("Transport", transport)]);
        if d.responses.len() == 1 && d.status() == 200 {
            let s = d.response().headers.get("Session").unwrap();
            self.session = Some(s.split(';').next().unwrap().to_owned());
        }
        d
    }

    /// DESCRIBE, SETUP both tracks over UDP (client ports 5000-5001 and
    /// 5002-5003), PLAY at `at`.
    fn play_udp(&mut self, at: Instant, source: &Arc<MediaSource>, query: &str) -> Drained {
        assert_eq!(self.describe(at, &format!("{URL}{query}"), source).status(), 200);
        assert_eq!(
            self.setup_udp(at, 0, "RTP/AVP;unicast;client_port=5000-5001").status(),
            200
        );
        assert_eq!(
            self.setup_udp(at, 1, "RTP/AVP/UDP;unicast;client_port=5002-5003")
                .status(),
            200
        );
        let d = self.request(at, "PLAY", &format!("{URL}/"), &[("Range", "npt=0.000-")]);
        assert_eq!(d.status(), 200);
        d
    }

    /// A datagram from `from` on pair `pair`.
    fn datagram(&mut self, at: Instant, pair: u16, rtcp: bool, from: &str, data: &[u8]) -> Drained {
        self.give(
            at,
            ServerInput::Datagram {
                socket: UdpSocketId { pair, rtcp },
                from: addr(from),
                data,
            },
        )
    }
}

/// The transport parameter `name=` of a reply's `Transport`.
fn transport_param(resp: &Response, name: &str) -> Option<String> {
    let t = resp.headers.get("Transport")?;
    t.split(';')
        .find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[test]
fn udp_setup_waits_for_the_pair_then_answers_with_the_ports() {
    let source = Arc::new(synthetic_source());
    let config = ServerConfig {
        udp_ports: PortRange::new(30000, 30009).ok(),
        ..config()
    };
    let mut h = Harness::with(config, 0);
    h.manual_udp = true;
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 0, "RTP/AVP;unicast;client_port=5000-5001");
    assert!(d.responses.is_empty(), "the reply waits for the pair");
    assert_eq!(
        d.opens,
        [UdpRequest {
            pair: 0,
            bind: PortRange::new(30000, 30009).ok()
        }]
    );
    // A request pipelined meanwhile waits behind it.
    let d = h.request(h.t0, "OPTIONS", URL, &[]);
    assert!(d.responses.is_empty());
    // A stale or unknown answer changes nothing.
    let d = h.give(
        h.t0,
        ServerInput::UdpOpened {
            pair: 9,
            result: Ok(30000),
        },
    );
    assert!(d.responses.is_empty());
    let d = h.give(
        h.t0,
        ServerInput::UdpOpened {
            pair: 0,
            result: Ok(30004),
        },
    );
    assert_eq!(d.responses.len(), 2, "{d:#?}");
    let setup = &d.responses[0];
    assert_eq!(setup.status, 200);
    let transport = setup.headers.get("Transport").unwrap();
    assert!(
        transport.starts_with("RTP/AVP;unicast;client_port=5000-5001;server_port=30004-30005;ssrc="),
        "{transport}"
    );
    assert!(transport.ends_with(";mode=\"PLAY\""), "{transport}");
    assert_eq!(transport_param(setup, "ssrc").unwrap().len(), 8);
    assert!(setup.headers.get("Session").unwrap().ends_with(";timeout=60"));
    assert_eq!(d.responses[1].status, 200, "OPTIONS answered after");
    h.session = Some(h.conn.session_id().unwrap().to_owned());
    // The same track again keeps its pair; another track gets a new one;
    // `RTP/AVP/UDP` is echoed as spelled; a single client port means a pair.
    let d = h.setup_udp(h.t0, 0, "RTP/AVP/UDP;unicast;client_port=6000-6001");
    assert!(d.opens.is_empty());
    assert_eq!(transport_param(d.response(), "server_port").unwrap(), "30004-30005");
    assert_eq!(transport_param(d.response(), "client_port").unwrap(), "6000-6001");
    assert!(d
        .response()
        .headers
        .get("Transport")
        .unwrap()
        .starts_with("RTP/AVP/UDP;"));
    let d = h.setup_udp(h.t0, 1, "RTP/AVP;unicast;client_port=6002");
    assert_eq!(d.opens.len(), 1);
    assert_eq!(d.opens[0].pair, 1);
    let d = h.give(
        h.t0,
        ServerInput::UdpOpened {
            pair: 1,
            result: Ok(30000),
        },
    );
    assert_eq!(transport_param(d.response(), "server_port").unwrap(), "30000-30001");
    assert_eq!(transport_param(d.response(), "client_port").unwrap(), "6002-6003");
    // `destination` naming the client itself is fine.
    let d = h.setup_udp(h.t0, 1, "RTP/AVP;unicast;destination=127.0.0.1;client_port=6004-6005");
    assert_eq!(d.status(), 200);
}

#[test]
fn a_udp_setup_without_a_pair_is_461_and_leaves_no_session() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.manual_udp = true;
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 0, "RTP/AVP;unicast;client_port=5000-5001");
    let pair = d.opens[0].pair;
    let d = h.give(
        h.t0,
        ServerInput::UdpOpened {
            pair,
            result: Err("no free port in 30000-30001"),
        },
    );
    assert_eq!(d.status(), 461);
    assert_eq!(h.conn.session_id(), None);
    // An odd "RTP" port is refused as well.
    let d = h.setup_udp(h.t0, 0, "RTP/AVP;unicast;client_port=5000-5001");
    let pair = d.opens[0].pair;
    let d = h.give(
        h.t0,
        ServerInput::UdpOpened {
            pair,
            result: Ok(30001),
        },
    );
    assert_eq!(d.status(), 461);
    // TCP still works.
    assert_eq!(h.setup(h.t0, 0, "0-1").status(), 200);
}

/// Every packet a session sends, in order, with its instant: (instant,
/// track slot, rtcp, bytes). Interleaved channels 0-1 and 2-3 and UDP pairs
/// 0 and 1 are slots 0 and 1.
fn sent_packets(h: &mut Harness, d: Drained, until: Instant) -> Vec<(Instant, usize, bool, Bytes)> {
    let start = h.now;
    let mut out = Vec::new();
    let mut push = |at: Instant, d: &Drained| {
        for (c, p) in &d.frames {
            out.push((at, usize::from(*c / 2), c % 2 == 1, p.clone()));
        }
        for (socket, to, data) in &d.datagrams {
            let slot = usize::from(socket.pair);
            let port = 5000 + 2 * slot as u16 + u16::from(socket.rtcp);
            assert_eq!(*to, SocketAddr::new(addr(CLIENT_RTP).ip(), port));
            out.push((at, slot, socket.rtcp, data.clone()));
        }
    };
    push(start, &d);
    for (at, d) in follow(h, d, until) {
        push(at, &d);
    }
    out
}

#[test]
fn udp_sends_the_same_packets_at_the_same_instants_as_tcp() {
    let source = Arc::new(synthetic_source());
    for query in ["", "?play_count=2"] {
        let mut tcp = Harness::new();
        let d = tcp.play(tcp.t0, &source, query);
        let tcp_packets = {
            let until = tcp.at(10_000);
            sent_packets(&mut tcp, d, until)
        };
        let mut udp = Harness::new();
        let d = udp.play_udp(udp.t0, &source, query);
        assert_eq!(d.transmits, 1, "only the PLAY reply on the connection");
        assert!(d.frames.is_empty());
        assert!(!d.datagrams.is_empty(), "the first packets go with the reply");
        let udp_packets = {
            let until = udp.at(10_000);
            sent_packets(&mut udp, d, until)
        };
        // Same instants relative to PLAY, same bytes (same seed: same SSRCs,
        // sequence numbers, timestamps), same SRs and the final BYE.
        let rel = |v: &[(Instant, usize, bool, Bytes)], t0: Instant| {
            v.iter()
                .map(|(at, slot, rtcp, b)| (at.duration_since(t0), *slot, *rtcp, b.clone()))
                .collect::<Vec<_>>()
        };
        let (t, u) = (rel(&tcp_packets, tcp.t0), rel(&udp_packets, udp.t0));
        assert_eq!(t.len(), u.len(), "{query}");
        assert!(t == u, "{query}: UDP differs from TCP");
        let rtcp: Vec<_> = u.iter().filter(|p| p.2).collect();
        let last = rtcp.last().unwrap();
        assert!(rtcp::parse_compound(&last.3)
            .unwrap()
            .iter()
            .any(|p| matches!(p, RtcpPacket::Bye(_))));
        let loops = if query.is_empty() { 1 } else { 2 };
        let rtp_video = u.iter().filter(|p| p.1 == 0 && !p.2).count();
        let one_loop = t.iter().filter(|p| p.1 == 0 && !p.2).count() / loops;
        assert_eq!(rtp_video, one_loop * loops);
    }
}

#[test]
fn a_late_udp_wakeup_catches_up_like_tcp() {
    let source = Arc::new(synthetic_source());
    let (mut tcp, mut udp) = (Harness::with_max_lag(ms(1000)), Harness::with_max_lag(ms(1000)));
    tcp.play(tcp.t0, &source, "?play_count=0");
    udp.play_udp(udp.t0, &source, "?play_count=0");
    // 50 s late: both catch up the last second only, and say so.
    let (t, u) = (tcp.timeout(tcp.at(50_000)), udp.timeout(udp.at(50_000)));
    assert_eq!(t.frames.len(), u.datagrams.len());
    assert!(u.datagrams.len() > 10);
    assert!(u.events.iter().any(|e| matches!(e, ServerEvent::FellBehind { .. })));
    assert_eq!(t.timeout.map(|at| at - tcp.t0), u.timeout.map(|at| at - udp.t0));
}

#[test]
fn mixed_tcp_and_udp_tracks_in_one_session() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    assert_eq!(h.setup(h.t0, 0, "0-1").status(), 200);
    assert_eq!(
        h.setup_udp(h.t0, 1, "RTP/AVP;unicast;client_port=5002-5003").status(),
        200
    );
    let d = h.request(h.t0, "PLAY", &format!("{URL}/"), &[]);
    assert_eq!(d.status(), 200);
    let until = h.at(10_000);
    let all = follow(&mut h, d, until);
    let video = all.iter().map(|(_, d)| d.rtp(0).len()).sum::<usize>();
    let audio = all
        .iter()
        .flat_map(|(_, d)| &d.datagrams)
        .filter(|(s, to, _)| s.pair == 0 && !s.rtcp && *to == addr("127.0.0.1:5002"))
        .count();
    assert!(video >= VIDEO_FRAMES && audio > 0, "{video} {audio}");
    // The connection closing ends a session that has a TCP track.
    let mut h2 = Harness::new();
    h2.describe(h2.t0, URL, &source);
    h2.setup(h2.t0, 0, "0-1");
    h2.setup_udp(h2.t0, 1, "RTP/AVP;unicast;client_port=5002-5003");
    h2.request(h2.t0, "PLAY", &format!("{URL}/"), &[]);
    let d = h2.give(h2.at(1), ServerInput::Eof);
    assert!(d.closed);
}

/// A compound RTCP packet from the client: RR about `ssrc`, and SDES.
fn receiver_report(ssrc: u32, fraction_lost: u8, cumulative_lost: i32, jitter: u32) -> Vec<u8> {
    let mut b = BytesMut::new();
    rtcp::encode_receiver_report(
        &rtcp::ReceiverReport {
            ssrc: 0x1234,
            reports: vec![rtcp::ReportBlock {
                ssrc,
                fraction_lost,
                cumulative_lost,
                highest_sequence: 70_000,
                jitter,
                last_sr: 0,
                delay_since_last_sr: 0,
            }],
        },
        &mut b,
    );
    rtcp::encode_sdes_cname(0x1234, "client", &mut b);
    b.to_vec()
}

fn ssrc_of(d: &Drained) -> u32 {
    u32::from_str_radix(&transport_param(d.response(), "ssrc").unwrap(), 16).unwrap()
}

#[test]
fn receiver_reports_become_events_and_keep_the_session_alive() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 1, "RTP/AVP;unicast;client_port=5000-5001");
    let audio_ssrc = ssrc_of(&d);
    // (Not playing, so that the deadline is the session's expiry.)
    // From the client's RTCP port, about our SSRC: an event; about another
    // SSRC: nothing. 441 ticks at 44.1 kHz is 10 ms.
    let rr = receiver_report(audio_ssrc, 64, 3, 441);
    let d = h.datagram(h.at(50_000), 0, true, CLIENT_RTCP, &rr);
    let report = d
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::ReceiverReport {
                track,
                fraction_lost,
                cumulative_lost,
                highest_sequence,
                jitter,
                ..
            } => Some((*track, *fraction_lost, *cumulative_lost, *highest_sequence, *jitter)),
            _ => None,
        })
        .expect("a ReceiverReport event");
    assert_eq!(report, (1, 64, 3, 70_000, ms(10)));
    assert_eq!(d.timeout, Some(h.at(110_000)), "RTCP from the client is activity");
    let d = h.datagram(h.at(51_000), 0, true, CLIENT_RTCP, &receiver_report(7, 0, 0, 0));
    assert!(d.events.is_empty());
    // RTCP sent from the client's RTP port counts too (the client's address
    // is either port).
    let d = h.datagram(h.at(52_000), 0, true, CLIENT_RTP, &rr);
    assert_eq!(d.events.len(), 1);
    // Junk from the client is not RTCP: no event, no activity.
    let d = h.datagram(h.at(60_000), 0, true, CLIENT_RTCP, b"\x00junk");
    assert!(d.events.is_empty());
    assert_eq!(d.timeout, Some(h.at(112_000)));
    // A punch packet on the RTP port: ignored, not activity.
    let d = h.datagram(h.at(61_000), 0, false, CLIENT_RTP, &[0; 4]);
    assert!(d.events.is_empty());
    assert_eq!(d.timeout, Some(h.at(112_000)));
}

#[test]
fn datagrams_from_other_addresses_are_dropped_and_counted() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 1, "RTP/AVP;unicast;client_port=5000-5001");
    let rr = receiver_report(ssrc_of(&d), 0, 0, 0);
    let dropped = |d: &Drained| {
        d.events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::DatagramsDropped { dropped, last_from } => Some((*dropped, *last_from)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // Another port on the client's host, another host, a pair no track uses.
    let d = h.datagram(h.at(1_000), 0, true, "127.0.0.1:5009", &rr);
    assert_eq!(dropped(&d), [(1, addr("127.0.0.1:5009"))], "the first at once");
    assert!(!d.events.iter().any(|e| matches!(e, ServerEvent::ReceiverReport { .. })));
    assert_eq!(d.timeout.map(|t| t >= h.at(60_000)), Some(true));
    let d = h.datagram(h.at(2_000), 0, true, "10.9.9.9:5001", &rr);
    assert!(dropped(&d).is_empty(), "later ones are summed");
    let d = h.datagram(h.at(3_000), 5, false, CLIENT_RTP, &rr);
    assert!(dropped(&d).is_empty());
    // Not activity: the session still expires 60 s after SETUP.
    let d = h.timeout(h.at(60_000));
    assert!(d.closed);
    assert_eq!(dropped(&d), [(2, addr(CLIENT_RTP))], "reported before Closed");
    let closed_at = d.events.iter().position(|e| matches!(e, ServerEvent::Closed { .. }));
    let dropped_at = d
        .events
        .iter()
        .position(|e| matches!(e, ServerEvent::DatagramsDropped { .. }));
    assert!(dropped_at < closed_at);
    // Before any session: dropped too.
    let mut h = Harness::new();
    let d = h.datagram(h.t0, 0, true, CLIENT_RTCP, &rr);
    assert_eq!(dropped(&d).len(), 1);
}

#[test]
fn a_udp_session_outlives_its_connection_until_it_expires() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let d = h.play_udp(h.t0, &source, "?play_count=0");
    assert!(!h.conn.is_detached());
    let _ = d;
    let d = h.give(h.at(1_000), ServerInput::Eof);
    assert!(!d.closed);
    assert!(h.conn.is_detached());
    assert_eq!(
        d.events,
        [ServerEvent::Detached {
            session_id: h.session.clone().unwrap()
        }]
    );
    assert_eq!(d.transmits, 0);
    // It keeps playing: datagrams at the same instants as before.
    let d = h.timeout(h.at(2_000));
    assert!(!d.datagrams.is_empty() && d.transmits == 0);
    // Bytes on the dead connection are ignored; a second EOF changes nothing.
    let d = h.input(h.at(2_000), b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n");
    assert!(d.responses.is_empty());
    assert!(!h.give(h.at(2_000), ServerInput::Eof).closed);
    // Refreshed by RTCP from the client (at 30 s) and by a request on
    // another connection (KeepAlive, at 80 s): expires 60 s after the last.
    let rr = receiver_report(0, 0, 0, 0);
    h.datagram(h.at(30_000), 0, true, CLIENT_RTCP, &rr);
    let d = h.timeout(h.at(30_000));
    let until = h.at(80_000);
    let all = follow(&mut h, d, until);
    assert!(!all.iter().any(|(_, d)| d.closed), "alive at 80 s");
    let d = h.give(h.at(80_000), ServerInput::KeepAlive);
    assert!(!d.closed);
    let until = h.at(139_999);
    let all = follow(&mut h, d, until);
    assert!(!all.iter().any(|(_, d)| d.closed), "alive until 140 s");
    let d = h.timeout(h.at(140_000));
    assert!(d.closed);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::SessionTimeout(_),
            ..
        }
    )));
    assert!(!h.conn.is_detached());
}

#[test]
fn a_detached_session_ends_at_its_end_or_on_teardown_from_elsewhere() {
    let source = Arc::new(synthetic_source());
    // Played once: BYE at the end, linger, close.
    let mut h = Harness::new();
    h.play_udp(h.t0, &source, "");
    let d = h.give(h.at(10), ServerInput::Eof);
    let until = h.at(20_000);
    let all = collect_until_close(&mut h, d, until);
    let last = all.last().unwrap();
    assert!(last.closed);
    assert!(last.events.iter().any(|e| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::PlaybackEnded,
            ..
        }
    )));
    assert!(all
        .iter()
        .any(|d| d.events.iter().any(|e| matches!(e, ServerEvent::PlaybackEnded { .. }))));
    // A TEARDOWN on another connection: the runtime aborts it.
    let mut h = Harness::new();
    h.play_udp(h.t0, &source, "?play_count=0");
    h.give(h.at(10), ServerInput::Eof);
    let d = h.give(h.at(20), ServerInput::Abort(CloseReason::Teardown));
    assert!(d.closed && d.datagrams.is_empty());
    // Before PLAY, a closed connection ends the session (PLAY must come on
    // the session's own connection).
    let mut h = Harness::new();
    h.describe(h.t0, URL, &source);
    h.setup_udp(h.t0, 0, "RTP/AVP;unicast;client_port=5000-5001");
    assert!(h.give(h.at(10), ServerInput::Eof).closed);
}

#[test]
fn requests_naming_another_connections_session_ask_the_runtime() {
    let mut h = Harness::new();
    h.other_sessions = vec!["ABCDEF0123456789".into()];
    let other = [("Session", "ABCDEF0123456789")];
    let d = h.request(h.t0, "GET_PARAMETER", URL, &other);
    assert_eq!(d.others, [(d.others[0].0, "ABCDEF0123456789".to_owned(), false)]);
    assert_eq!(d.status(), 200);
    assert_eq!(d.response().headers.get("Session"), Some("ABCDEF0123456789"));
    let d = h.request(h.t0, "SET_PARAMETER", URL, &other);
    assert_eq!(d.status(), 200);
    let d = h.request(h.t0, "TEARDOWN", URL, &other);
    assert!(d.others[0].2, "a teardown");
    assert_eq!(d.status(), 200);
    assert!(!d.closed, "this connection goes on");
    // Unknown: 454; an implausible id is 454 without asking.
    let d = h.request(h.t0, "GET_PARAMETER", URL, &[("Session", "0000000000000001")]);
    assert_eq!(d.status(), 454);
    let long = "A".repeat(65);
    for id in ["x-y", long.as_str(), "a b"] {
        let d = h.request(h.t0, "GET_PARAMETER", URL, &[("Session", id)]);
        assert!(d.others.is_empty(), "{id}");
        assert_eq!(d.status(), 454, "{id}");
    }
    // While waiting, requests are held in order; stale answers are ignored.
    let mut h = Harness::new();
    h.cseq = 0;
    h.conn.handle_input(
        h.t0,
        ServerInput::Data(
            b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nSession: ABCD\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        ),
    );
    let mut token = None;
    let mut responses = 0;
    loop {
        match h.conn.poll_output() {
            ServerOutput::OtherSession { token: t, .. } => token = Some(t),
            ServerOutput::Transmit(_) => responses += 1,
            ServerOutput::Timeout(_) | ServerOutput::Close => break,
            _ => {}
        }
    }
    assert_eq!(responses, 0);
    let token = token.unwrap();
    h.conn.handle_input(
        h.t0,
        ServerInput::OtherSession {
            token: token + 1,
            found: true,
        },
    );
    h.conn.handle_input(
        h.t0,
        ServerInput::Lookup {
            token,
            result: Err(LookupError::NotFound),
        },
    );
    let d = h.give(h.t0, ServerInput::OtherSession { token, found: true });
    assert_eq!(d.responses.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200]);
}

proptest::proptest! {
    #[test]
    fn any_transport_header_never_panics(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "RTP/AVP", "RTP/AVP/UDP", "RTP/AVP/TCP", "rtp/avp/udp", "unicast", "multicast", "client_port=",
            "server_port=", "interleaved=", "destination=", "127.0.0.1", "::1", "[::1]", "10.0.0.1", "0", "1",
            "5000", "65535", "65536", "-", ";", ",", "=", " ", "ssrc=12", "mode=PLAY", "ttl=1", "x", "\u{e9}",
        ]), 0..24),
        answer in proptest::option::of(0u16..=u16::MAX),
        datagrams in proptest::collection::vec((0u16..3, proptest::bool::ANY, proptest::bool::ANY,
            proptest::collection::vec(proptest::num::u8::ANY, 0..80)), 0..8),
    ) {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        h.manual_udp = true;
        h.describe(h.t0, URL, &source);
        let transport: String = parts.concat();
        let d = h.request(h.t0, "SETUP", &format!("{URL}/trackID=0"), &[("Transport", &transport)]);
        let d = match (d.opens.first(), answer) {
            (Some(open), Some(port)) => h.give(h.t0, ServerInput::UdpOpened { pair: open.pair, result: Ok(port) }),
            (Some(open), None) => h.give(h.t0, ServerInput::UdpOpened { pair: open.pair, result: Err("x") }),
            (None, _) => d,
        };
        proptest::prop_assert_eq!(d.responses.len(), 1);
        if d.status() == 200 {
            h.session = Some(h.conn.session_id().unwrap().to_owned());
            h.request(h.t0, "PLAY", &format!("{URL}/"), &[]);
        }
        for (i, (pair, rtcp, client, data)) in datagrams.iter().enumerate() {
            let from = if *client { CLIENT_RTCP } else { "127.0.0.1:9" };
            h.datagram(h.at(i as u64 * 10), *pair, *rtcp, from, data);
        }
        let d = h.give(h.at(100), ServerInput::Eof);
        let d = if d.closed { d } else { h.timeout(h.at(200_000)) };
        proptest::prop_assert!(d.closed);
    }
}

// ---------------------------------------------------------------------------
// Multicast

impl Harness {
    /// DESCRIBE, SETUP both tracks over multicast, PLAY at `at`.
    fn play_multicast(&mut self, at: Instant, source: &Arc<MediaSource>, query: &str) -> Drained {
        assert_eq!(self.describe(at, &format!("{URL}{query}"), source).status(), 200);
        assert_eq!(self.setup_udp(at, 0, "RTP/AVP;multicast").status(), 200);
        assert_eq!(self.setup_udp(at, 1, "RTP/AVP/UDP;multicast").status(), 200);
        let d = self.request(at, "PLAY", &format!("{URL}/"), &[("Range", "npt=0.000-")]);
        assert_eq!(d.status(), 200);
        d
    }
}

/// Everything a multicast stream gives until it waits: the datagrams
/// (rtcp, to, data), the events, and the deadline (`None`: done).
type StreamDrain = (Vec<(bool, SocketAddr, Bytes)>, Vec<ServerEvent>, Option<Instant>);

fn drain_stream(m: &mut MulticastStream) -> StreamDrain {
    let (mut datagrams, mut events) = (Vec::new(), Vec::new());
    loop {
        match m.poll_output() {
            MulticastOutput::SendDatagram { rtcp, to, data } => datagrams.push((rtcp, to, data)),
            MulticastOutput::Event(e) => events.push(e),
            MulticastOutput::Timeout(at) => return (datagrams, events, Some(at)),
            MulticastOutput::Done => return (datagrams, events, None),
        }
    }
}

/// Runs a stream from `from` until it is done or `until`, waking at each
/// deadline: every datagram with the instant it left.
fn run_stream(m: &mut MulticastStream, from: Instant, until: Instant) -> Vec<(Instant, bool, SocketAddr, Bytes)> {
    let mut out = Vec::new();
    let mut now = from;
    for _ in 0..100_000 {
        m.handle_input(now, MulticastInput::Timeout);
        let (datagrams, _, next) = drain_stream(m);
        out.extend(datagrams.into_iter().map(|(r, to, d)| (now, r, to, d)));
        match next {
            Some(at) if at <= until => now = at.max(now),
            _ => return out,
        }
    }
    panic!("the stream never settled");
}

#[test]
fn group_ranges_parse_and_the_pool_hands_out_the_lowest_free_group() {
    let r = GroupRange::parse("239.255.0.1-239.255.0.3").unwrap();
    assert_eq!((r.len(), r.to_string()), (3, "239.255.0.1-239.255.0.3".to_owned()));
    assert_eq!(GroupRange::parse("239.1.1.1").unwrap().len(), 1);
    for bad in [
        "10.0.0.1-10.0.0.2",
        "239.0.0.9-239.0.0.1",
        "239.0.0.1-",
        "x",
        "",
        "::1-::2",
    ] {
        assert!(GroupRange::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(GroupRange::default().to_string(), "239.255.42.0-239.255.42.255");
    let mut pool = GroupPool::new(r);
    let g: Vec<_> = (0..3).map(|_| pool.take().unwrap()).collect();
    assert_eq!(
        g,
        ["239.255.0.1", "239.255.0.2", "239.255.0.3"].map(|a| a.parse::<Ipv4Addr>().unwrap())
    );
    assert_eq!(pool.take(), None, "all held");
    pool.give_back(g[1]);
    pool.give_back("239.9.9.9".parse().unwrap());
    assert_eq!(pool.held(), 2);
    assert_eq!(pool.take(), Some(g[1]), "the lowest free one again");
    let defaults = ServerConfig::default();
    assert_eq!(defaults.multicast_ports.to_string(), "5004-5099");
    assert_eq!(defaults.multicast_ttl, 1);
}

#[test]
fn a_multicast_setup_joins_the_stream_once_and_answers_with_its_group() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.describe(h.t0, &format!("{URL}?play_count=3"), &source);
    let d = h.setup_udp(h.t0, 0, "RTP/AVP;multicast;ttl=9;port=6000-6001");
    assert_eq!(d.status(), 200);
    assert!(matches!(
        &d.multicast[..],
        [MulticastRequest::Join { path, play_count, .. }]
            if path == "dir/clip.mp4" && *play_count == PlayCount::Times(NonZeroU32::new(3).unwrap())
    ));
    let stream = h.mcast.as_ref().unwrap();
    let tracks = stream.tracks().to_vec();
    let transport = d.response().headers.get("Transport").unwrap();
    assert_eq!(
        transport,
        format!(
            "RTP/AVP;multicast;destination=239.255.42.0;port=5004-5005;ttl=1;ssrc={:08X};mode=\"PLAY\"",
            tracks[0].unwrap().ssrc
        ),
        "the server's group, port and TTL, not the client's"
    );
    let d = h.setup_udp(h.t0, 1, "RTP/AVP/UDP;multicast");
    assert!(d.multicast.is_empty(), "joined once per session");
    assert_eq!(transport_param(d.response(), "port").unwrap(), "5006-5007");
    assert_eq!(
        transport_param(d.response(), "ssrc").unwrap(),
        format!("{:08X}", tracks[1].unwrap().ssrc)
    );
    assert!(d
        .response()
        .headers
        .get("Transport")
        .unwrap()
        .starts_with("RTP/AVP/UDP;multicast;"));
    // No unicast track in a multicast session, nor the other way round.
    let d = h.setup_udp(h.t0, 1, "RTP/AVP/TCP;interleaved=2-3");
    assert_eq!(d.status(), 461);
    let mut u = Harness::new();
    u.describe(u.t0, URL, &source);
    assert_eq!(u.setup(u.t0, 0, "0-1").status(), 200);
    assert_eq!(u.setup_udp(u.t0, 1, "RTP/AVP;multicast").status(), 461);
    // The first servable spec: multicast naming a group is skipped.
    let mut f = Harness::new();
    f.describe(f.t0, URL, &source);
    let d = f.setup_udp(
        f.t0,
        0,
        "RTP/AVP;multicast;destination=239.1.1.1,RTP/AVP/TCP;multicast,RTP/AVP;multicast",
    );
    assert_eq!(transport_param(d.response(), "destination").unwrap(), "239.255.42.0");
}

#[test]
fn a_failed_join_or_a_track_without_a_port_is_461_and_leaves_no_session() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.manual_multicast = true;
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 0, "RTP/AVP;multicast");
    assert!(d.responses.is_empty(), "the reply waits for the join");
    let Some(MulticastRequest::Join { token, .. }) = d.multicast.first() else {
        panic!("{d:?}");
    };
    let token = *token;
    // A stale token changes nothing; the answer does.
    let d = h.give(
        h.t0,
        ServerInput::MulticastJoined {
            token: token + 7,
            result: Err("x"),
        },
    );
    assert!(d.responses.is_empty());
    let d = h.give(
        h.t0,
        ServerInput::MulticastJoined {
            token,
            result: Err("every multicast group is in use"),
        },
    );
    assert_eq!(d.status(), 461);
    assert_eq!(h.conn.session_id(), None);
    // A stream that sends only the first track (a one-pair port range).
    let config = ServerConfig {
        multicast_ports: PortRange::new(6000, 6001).unwrap(),
        ..config()
    };
    let m = MulticastStream::new(&config, h.t0, "p".into(), PlayCount::ONCE, source.clone(), GROUP, 1, 0);
    assert_eq!(m.tracks().len(), 2);
    assert_eq!(m.tracks()[0].map(|t| t.port), Some(6000));
    assert_eq!(m.tracks()[1], None);
    let mut h = Harness::new();
    h.manual_multicast = true;
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 1, "RTP/AVP;multicast");
    let Some(MulticastRequest::Join { token, .. }) = d.multicast.first() else {
        panic!("{d:?}");
    };
    let token = *token;
    let d = h.give(
        h.t0,
        ServerInput::MulticastJoined {
            token,
            result: Ok(m.tracks()),
        },
    );
    assert_eq!(d.status(), 461, "track 1 has no port pair");
    assert_eq!(h.conn.session_id(), None);
    assert_eq!(h.setup_udp(h.t0, 0, "RTP/AVP;multicast").status(), 200);
}

#[test]
fn the_stream_sends_what_a_unicast_session_sends_at_the_same_instants() {
    let source = Arc::new(synthetic_source());
    for query in ["", "?play_count=2"] {
        let mut udp = Harness::new();
        let d = udp.play_udp(udp.t0, &source, query);
        let until = udp.at(10_000);
        let unicast: Vec<_> = follow(&mut udp, d, until)
            .into_iter()
            .flat_map(|(at, d)| {
                d.datagrams
                    .into_iter()
                    .map(move |(socket, _, data)| (at, usize::from(socket.pair), socket.rtcp, data))
            })
            .collect();
        let mut h = Harness::new();
        let d = h.play_multicast(h.t0, &source, query);
        assert!(d.datagrams.is_empty() && d.frames.is_empty(), "members send nothing");
        assert_eq!(
            d.timeout,
            Some(h.t0 + config().session_timeout),
            "only the session's timeout"
        );
        let m = h.mcast.as_mut().unwrap();
        assert!(m.is_playing());
        let (_, events, _) = drain_stream(m);
        assert!(matches!(&events[..], [ServerEvent::MulticastStarted { tracks: 2, .. }]));
        let t0 = h.t0;
        let sent = run_stream(m, t0, t0 + ms(10_000));
        assert!(m.is_done());
        // Same instants, kinds and payloads (the SSRCs, sequence numbers and
        // timestamps are the stream's own); RTP to port 5004 + 2k, RTCP above.
        let strip = |rtcp: bool, b: &Bytes| if rtcp { Bytes::new() } else { b.slice(12..) };
        let rel_u: Vec<_> = unicast
            .iter()
            .map(|(at, k, rtcp, b)| (at.duration_since(udp.t0), *k, *rtcp, strip(*rtcp, b)))
            .collect();
        let rel_m: Vec<_> = sent
            .iter()
            .map(|(at, rtcp, to, b)| {
                assert_eq!(to.ip(), GROUP);
                let k = usize::from((to.port() - 5004) / 2);
                assert_eq!(to.port() % 2 == 1, *rtcp);
                (at.duration_since(t0), k, *rtcp, strip(*rtcp, b))
            })
            .collect();
        assert_eq!(rel_u.len(), rel_m.len(), "{query}");
        assert!(
            rel_u == rel_m,
            "{query}: the multicast stream differs from a unicast session"
        );
        let last = &sent.last().unwrap().3;
        assert!(rtcp::parse_compound(last)
            .unwrap()
            .iter()
            .any(|p| matches!(p, RtcpPacket::Bye(_))));
        // The member hears of the end and closes after the linger, as over TCP.
        let end = sent.last().unwrap().0;
        let d = h.give(end, ServerInput::MulticastEnded);
        assert_eq!(d.timeout, Some(end + config().linger_after_end));
        let d = h.timeout(end + config().linger_after_end);
        assert!(d.closed);
        assert!(d.events.iter().any(|e| matches!(
            e,
            ServerEvent::Closed {
                reason: CloseReason::PlaybackEnded,
                ..
            }
        )));
    }
}

#[test]
fn a_late_joiner_gets_the_stream_where_it_is() {
    let source = Arc::new(synthetic_source());
    let mut a = Harness::new();
    a.play_multicast(a.t0, &source, "?play_count=0");
    let mut m = a.mcast.take().unwrap();
    let t0 = a.t0;
    let sent = run_stream(&mut m, t0, t0 + ms(1234));
    // The next packet of each track after 1.234 s.
    let next_seq = |k: usize| {
        sent.iter()
            .filter(|(_, rtcp, to, _)| !rtcp && to.port() == 5004 + 2 * k as u16)
            .map(|(_, _, _, b)| RtpPacket::parse(b.clone()).unwrap().sequence_number.wrapping_add(1))
            .last()
            .unwrap()
    };
    let mut b = Harness::new();
    b.mcast = Some(m);
    let at = t0 + ms(1234);
    let d = b.play_multicast(at, &source, "?play_count=0");
    let m = b.mcast.as_ref().unwrap();
    assert_eq!(m.members(), 1, "the harness names every member 1");
    let resp = d.response();
    assert_eq!(resp.headers.get("Range"), Some("npt=1.234-"));
    let info = rtp_info(resp);
    assert_eq!(info.len(), 2);
    for (k, (url, seq, rtptime)) in info.iter().enumerate() {
        assert_eq!(url, &format!("{URL}/trackID={k}"));
        assert_eq!(*seq, next_seq(k));
        let rate = [90_000u64, 44_100][k];
        let base = m.position(t0).unwrap().tracks[k].unwrap().1;
        assert_eq!(*rtptime, base.wrapping_add((1234 * rate / 1000) as u32));
    }
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::SessionStarted {
            play_count: PlayCount::Forever,
            ..
        }
    )));
    // A second PLAY is 455, as over TCP.
    assert_eq!(b.request(at, "PLAY", &format!("{URL}/"), &[]).status(), 455);
}

#[test]
fn the_last_member_leaving_ends_the_stream_with_a_bye() {
    let source = Arc::new(synthetic_source());
    let config = config();
    let t0 = Instant::now();
    let new = || MulticastStream::new(&config, t0, "p".into(), PlayCount::Forever, source.clone(), GROUP, 5, 0);
    // Never played: no datagram, done once the last leaves.
    let mut m = new();
    m.handle_input(t0, MulticastInput::Join(1));
    m.handle_input(t0, MulticastInput::Join(2));
    m.handle_input(t0 + ms(5), MulticastInput::Leave(1));
    assert!(!m.is_done());
    let (d, _, next) = drain_stream(&mut m);
    assert!(d.is_empty());
    assert!(next.unwrap() >= t0 + ms(5), "idle: a far deadline");
    m.handle_input(t0 + ms(9), MulticastInput::Leave(2));
    let (d, events, next) = drain_stream(&mut m);
    assert!(d.is_empty() && next.is_none() && m.is_done());
    assert!(matches!(
        &events[..],
        [ServerEvent::MulticastEnded {
            reason: MulticastEnd::NoMembers,
            packets: 0,
            ..
        }]
    ));
    assert_eq!(m.position(t0), None, "over: a PLAY now is 455");
    // Playing: the stream goes on while one member is left, and ends with
    // SR + SDES + BYE on both tracks when the last leaves.
    let mut m = new();
    for i in 1..=2 {
        m.handle_input(t0, MulticastInput::Join(i));
    }
    m.handle_input(t0, MulticastInput::Play(1));
    let before = run_stream(&mut m, t0, t0 + ms(300));
    assert!(before.iter().any(|p| !p.1));
    m.handle_input(t0 + ms(300), MulticastInput::Leave(2));
    assert!(m.is_playing());
    m.handle_input(t0 + ms(310), MulticastInput::Leave(1));
    let (d, events, next) = drain_stream(&mut m);
    assert_eq!(next, None);
    assert_eq!(d.len(), 2);
    for (rtcp, to, data) in &d {
        assert!(*rtcp && to.port() % 2 == 1 && to.ip() == GROUP);
        assert!(matches!(
            &rtcp::parse_compound(data).unwrap()[..],
            [
                RtcpPacket::SenderReport(_),
                RtcpPacket::SourceDescription(_),
                RtcpPacket::Bye(_)
            ]
        ));
    }
    assert!(matches!(
        &events[..],
        [ServerEvent::MulticastEnded {
            reason: MulticastEnd::NoMembers,
            packets: 1..,
            ..
        }]
    ));
    // Inputs after the end change nothing.
    m.handle_input(t0 + ms(400), MulticastInput::Play(3));
    assert!(matches!(m.poll_output(), MulticastOutput::Done));
    // Shutdown ends a playing stream the same way.
    let mut m = new();
    m.handle_input(t0, MulticastInput::Play(1));
    run_stream(&mut m, t0, t0 + ms(100));
    m.handle_input(t0 + ms(100), MulticastInput::Shutdown);
    let (d, events, next) = drain_stream(&mut m);
    assert_eq!((d.len(), next), (2, None));
    assert!(matches!(
        &events[..],
        [ServerEvent::MulticastEnded {
            reason: MulticastEnd::Shutdown,
            ..
        }]
    ));
}

#[test]
fn a_member_play_after_the_stream_ended_is_455_and_a_member_ends_with_its_connection() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    h.manual_multicast = true;
    h.describe(h.t0, URL, &source);
    let d = h.setup_udp(h.t0, 0, "RTP/AVP;multicast");
    let Some(MulticastRequest::Join { token, .. }) = d.multicast.first() else {
        panic!("{d:?}");
    };
    let token = *token;
    let tracks = [Some(MULTICAST_TRACK)];
    assert_eq!(
        h.give(
            h.t0,
            ServerInput::MulticastJoined {
                token,
                result: Ok(&tracks)
            }
        )
        .status(),
        200
    );
    let d = h.request(h.t0, "PLAY", URL, &[]);
    let Some(MulticastRequest::Play { token }) = d.multicast.first() else {
        panic!("{d:?}");
    };
    let token = *token;
    let d = h.give(h.t0, ServerInput::MulticastPlaying { token, position: None });
    assert_eq!(d.status(), 455);
    // A member that plays does not outlive its connection.
    let mut p = Harness::new();
    p.play_multicast(p.t0, &source, "");
    let d = p.give(p.at(10), ServerInput::Eof);
    assert!(d.closed);
}

#[test]
fn udp_and_multicast_can_be_turned_off() {
    let source = Arc::new(synthetic_source());
    let config = ServerConfig {
        udp: false,
        multicast: false,
        ..config()
    };
    let mut h = Harness::with(config, 0);
    h.describe(h.t0, URL, &source);
    for transport in ["RTP/AVP;unicast;client_port=5000-5001", "RTP/AVP;multicast"] {
        let d = h.setup_udp(h.t0, 0, transport);
        assert!(d.opens.is_empty(), "{transport}");
        assert_eq!(d.status(), 461, "{transport}");
    }
    // TCP offered after UDP in one header is taken.
    let d = h.setup_udp(
        h.t0,
        0,
        "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1",
    );
    assert_eq!(d.status(), 200);
}

// Authentication (see the `auth` module): the connection's part.

fn auth_config(f: impl FnOnce(&mut auth::AuthConfig)) -> ServerConfig {
    let mut a = auth::AuthConfig::new(auth::Users::from_passwords([("alice", "wonder land")]));
    f(&mut a);
    // Epoch: any instant before the harness's t0 works.
    let epoch = Instant::now();
    ServerConfig {
        auth: Some(Arc::new(auth::ServerAuth::new(a, [3; 32], epoch))),
        ..config()
    }
}

/// Our client's `Authorization` for `method` on `uri`, answering `resp`'s challenges.
fn authorization(resp: &Response, user: &str, password: &str, method: &str, uri: &str) -> String {
    let values: Vec<&str> = resp.headers.get_all("WWW-Authenticate").collect();
    let challenges = crate::auth::parse_challenges(&values).unwrap();
    let creds = crate::auth::Credentials {
        username: user.into(),
        password: password.into(),
    };
    crate::auth::Authenticator::from_challenges(creds, &challenges)
        .unwrap()
        .authorization(method, uri)
}

#[test]
fn auth_every_request_but_options_needs_credentials() {
    let mut h = Harness::with(auth_config(|_| {}), 0);
    let t = h.at(1);
    assert_eq!(h.request(t, "OPTIONS", URL, &[]).status(), 200);
    let d = h.request(t, "DESCRIBE", URL, &[]);
    assert_eq!(d.status(), 401);
    assert!(d.lookups.is_empty(), "nothing looked up before credentials");
    let challenges: Vec<&str> = d.response().headers.get_all("WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 2, "Digest SHA-256 and MD5, no Basic: {challenges:?}");
    assert!(challenges[0].starts_with("Digest realm=\"rtsp-toolkit\", nonce=\""));
    assert!(
        challenges[0].ends_with("algorithm=SHA-256, qop=\"auth\""),
        "{challenges:?}"
    );
    assert!(challenges[1].ends_with("algorithm=MD5, qop=\"auth\""), "{challenges:?}");
    let challenge = d.response().clone();
    for method in ["SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER", "PAUSE"] {
        let d = h.request(t, method, URL, &[]);
        assert_eq!(d.status(), 401, "{method}");
    }
    // With credentials: DESCRIBE, SETUP and PLAY go through.
    let source = Arc::new(synthetic_source());
    let a = authorization(&challenge, "alice", "wonder land", "DESCRIBE", URL);
    assert!(a.contains("algorithm=SHA-256"), "{a}");
    let d = h.request(t, "DESCRIBE", URL, &[("Authorization", &a)]);
    assert_eq!(d.lookups.len(), 1);
    h.conn.handle_input(
        t,
        ServerInput::Lookup {
            token: d.lookups[0].0,
            result: Ok(source.clone()),
        },
    );
    assert_eq!(h.drain().status(), 200);
    let setup_uri = format!("{URL}/trackID=0");
    let a = authorization(&challenge, "alice", "wonder land", "SETUP", &setup_uri);
    let d = h.request(
        t,
        "SETUP",
        &setup_uri,
        &[
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
            ("Authorization", &a),
        ],
    );
    assert_eq!(d.status(), 200);
    h.session = Some(
        d.response()
            .headers
            .get("Session")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned(),
    );
    // PLAY without credentials: refused, and no media.
    let d = h.request(t, "PLAY", URL, &[]);
    assert_eq!(d.status(), 401);
    let d = h.timeout(h.at(500));
    assert!(d.frames.is_empty(), "no RTP before an authenticated PLAY");
    let a = authorization(&challenge, "alice", "wonder land", "PLAY", URL);
    assert_eq!(
        h.request(h.at(500), "PLAY", URL, &[("Authorization", &a)]).status(),
        200
    );
    assert!(!h.timeout(h.at(600)).frames.is_empty());
}

#[test]
fn auth_wrong_password_is_401_an_event_and_nothing_served() {
    let mut h = Harness::with(auth_config(|_| {}), 0);
    let t = h.at(1);
    let challenge = h.request(t, "DESCRIBE", URL, &[]).response().clone();
    for (method, uri) in [
        ("DESCRIBE", URL.to_owned()),
        ("SETUP", format!("{URL}/trackID=0")),
        ("PLAY", URL.to_owned()),
    ] {
        let a = authorization(&challenge, "alice", "not the password", method, &uri);
        let d = h.request(
            t,
            method,
            &uri,
            &[
                ("Authorization", &a),
                ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
            ],
        );
        assert_eq!(d.status(), 401, "{method}");
        assert!(d.lookups.is_empty() && d.frames.is_empty() && d.opens.is_empty());
        assert!(d.events.iter().any(|e| matches!(
            e,
            ServerEvent::AuthFailed {
                user: Some(u),
                reason: auth::Refusal::WrongPassword,
            } if u == "alice"
        )));
        // No event or log line carries the password.
        assert!(!format!("{:?}", d.events).contains("not the password"));
    }
    assert!(h.conn.session_id().is_none());
    // A user name that is no user's (maybe a password typed in the wrong field) is not reported.
    let a = authorization(&challenge, "wonder land", "alice", "DESCRIBE", URL);
    let d = h.request(t, "DESCRIBE", URL, &[("Authorization", &a)]);
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::AuthFailed {
            user: None,
            reason: auth::Refusal::UnknownUser
        }
    )));
    assert!(!format!("{:?}", d.events).contains("wonder"));
}

#[test]
fn auth_stale_nonce_at_exact_instants() {
    let mut h = Harness::with(auth_config(|a| a.nonce_lifetime = ms(100)), 0);
    let challenge = h.request(h.at(10), "GET_PARAMETER", URL, &[]).response().clone();
    let a = authorization(&challenge, "alice", "wonder land", "GET_PARAMETER", URL);
    // The nonce was issued at t0 + 10 ms: good until t0 + 110 ms inclusive.
    assert_eq!(
        h.request(h.at(110), "GET_PARAMETER", URL, &[("Authorization", &a)])
            .status(),
        200
    );
    let d = h.request(h.at(111), "GET_PARAMETER", URL, &[("Authorization", &a)]);
    assert_eq!(d.status(), 401);
    let values: Vec<&str> = d.response().headers.get_all("WWW-Authenticate").collect();
    assert!(values.iter().all(|v| v.ends_with(", stale=true")), "{values:?}");
    assert!(
        !d.events.iter().any(|e| matches!(e, ServerEvent::AuthFailed { .. })),
        "a stale nonce is not a failure"
    );
    let fresh = d.response().clone();
    let a = authorization(&fresh, "alice", "wonder land", "GET_PARAMETER", URL);
    assert_eq!(
        h.request(h.at(111), "GET_PARAMETER", URL, &[("Authorization", &a)])
            .status(),
        200
    );
}

#[test]
fn auth_failures_get_503_with_retry_after_then_recover() {
    let mut h = Harness::with(
        auth_config(|a| {
            a.max_failures = 3;
            a.block_for = Duration::from_secs(20);
        }),
        0,
    );
    let challenge = h.request(h.at(1), "DESCRIBE", URL, &[]).response().clone();
    let wrong = authorization(&challenge, "alice", "guess", "DESCRIBE", URL);
    for i in 0..3 {
        assert_eq!(
            h.request(h.at(2 + i), "DESCRIBE", URL, &[("Authorization", &wrong)])
                .status(),
            401
        );
    }
    let right = authorization(&challenge, "alice", "wonder land", "DESCRIBE", URL);
    let d = h.request(h.at(4), "DESCRIBE", URL, &[("Authorization", &right)]);
    assert_eq!(d.status(), 503, "blocked, right password or not");
    assert_eq!(d.response().headers.get("Retry-After"), Some("20"));
    assert!(d.lookups.is_empty());
    assert_eq!(h.request(h.at(4), "OPTIONS", URL, &[]).status(), 200);
    let d = h.request(h.at(10_004), "DESCRIBE", URL, &[]);
    assert_eq!((d.status(), d.response().headers.get("Retry-After")), (503, Some("10")));
    // 20 s after the third failure: a fresh challenge, and in.
    let d = h.request(h.at(20_004), "DESCRIBE", URL, &[]);
    assert_eq!(d.status(), 401);
    let right = authorization(d.response(), "alice", "wonder land", "DESCRIBE", URL);
    let d = h.request(h.at(20_004), "DESCRIBE", URL, &[("Authorization", &right)]);
    assert_eq!(d.lookups.len(), 1);
}

#[test]
fn auth_garbage_and_huge_authorization_headers_are_refused() {
    let mut h = Harness::with(auth_config(|a| a.max_failures = 1000), 0);
    let huge = format!("Digest username=\"{}\"", "x".repeat(50_000));
    for value in [
        "Digest",
        "Basic",
        "Basic !!!!",
        "Basic YWxpY2U6d29uZGVyIGxhbmQ=", // alice:wonder land, but Basic is off
        "Digest username=\"alice\", realm=\"rtsp-toolkit\", nonce=\"00\", uri=\"x\", response=\"00\"",
        "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==",
        "\u{1F600}",
        huge.as_str(),
    ] {
        let d = h.request(h.at(1), "DESCRIBE", URL, &[("Authorization", value)]);
        assert_eq!(d.status(), 401, "{:.60}", value);
        assert!(d.lookups.is_empty());
    }
    assert!(!h.conn.is_closed());
}

#[test]
fn auth_basic_with_allow_basic() {
    let mut h = Harness::with(auth_config(|a| a.allow_basic = true), 0);
    let d = h.request(h.at(1), "DESCRIBE", URL, &[]);
    let values: Vec<&str> = d.response().headers.get_all("WWW-Authenticate").collect();
    assert_eq!(values.last(), Some(&"Basic realm=\"rtsp-toolkit\""));
    let d = h.request(
        h.at(1),
        "DESCRIBE",
        URL,
        &[("Authorization", "Basic YWxpY2U6d29uZGVyIGxhbmQ=")],
    );
    assert_eq!(d.lookups.len(), 1);
}

#[test]
fn end_to_end_with_the_core_client_and_digest() {
    let url = "rtsp://alice:wonder%20land@127.0.0.1:8554/dir/clip.mp4";
    let r = end_to_end_with(auth_config(|_| {}), url, "");
    check_end_to_end(&r, 1);
    let statuses: Vec<(Method, u16)> = r
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request { method, status, .. } => Some((method.clone(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (Method::Options, 200),
            (Method::Describe, 401),
            (Method::Describe, 200),
            (Method::Setup, 200),
            (Method::Setup, 200),
            (Method::Play, 200),
            (Method::Teardown, 200)
        ]
    );
}

#[test]
fn require_tags_are_551_unless_the_backchannel_is_offered_and_asked_for() {
    const TAG: &str = "www.onvif.org/ver20/backchannel";
    let source = Arc::new(synthetic_source());
    // Not offered: any Require tag is refused, and named back.
    let mut h = Harness::new();
    let t = h.at(10);
    let d = h.request(t, "OPTIONS", URL, &[("Require", "funky-feature")]);
    assert_eq!(
        (d.status(), d.response().reason.as_str()),
        (551, "Option not supported")
    );
    assert_eq!(d.response().headers.get("Unsupported"), Some("funky-feature"));
    let d = h.request(t, "DESCRIBE", URL, &[("Require", TAG)]);
    assert_eq!(d.status(), 551);
    assert_eq!(d.response().headers.get("Unsupported"), Some(TAG));
    assert!(d.lookups.is_empty());

    // Offered: DESCRIBE with the tag gets the sendonly section; others are still 551.
    let mut h = Harness::with(
        ServerConfig {
            backchannel: true,
            ..config()
        },
        0,
    );
    let d = h.request(t, "DESCRIBE", URL, &[("Require", &format!("{TAG}, other"))]);
    assert_eq!(d.response().headers.get("Unsupported"), Some("other"));
    let plain = h.describe(t, URL, &source);
    assert_eq!(Sdp::parse(&plain.response().body).unwrap().media.len(), 2);
    let d = h.request(t, "DESCRIBE", URL, &[("Require", TAG)]);
    h.conn.handle_input(
        t,
        ServerInput::Lookup {
            token: d.lookups[0].0,
            result: Ok(source.clone()),
        },
    );
    let d = h.drain();
    let sdp = Sdp::parse(&d.response().body).unwrap();
    assert_eq!(sdp.media.len(), 3);
    let b = &sdp.media[2];
    assert_eq!((b.codec.as_str(), b.clock_rate, b.payload_type), ("PCMU", 8000, 0));
    assert_eq!(b.control.as_deref(), Some("trackID=2"));
    assert!(crate::client::backchannel::is_backchannel(b));

    // SETUP of the media tracks and the backchannel (channels left to the
    // server: not those of the others), PLAY, then audio comes in.
    assert_eq!(h.setup(t, 0, "0-1").status(), 200);
    let d = h.request(
        t,
        "SETUP",
        &format!("{URL}/trackID=2"),
        &[("Transport", "RTP/AVP/TCP;unicast"), ("Require", TAG)],
    );
    assert_eq!(d.status(), 200, "{d:?}");
    assert_eq!(
        d.response().headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=4-5")
    );
    // Without the tag, the backchannel's trackID is no track.
    let d = h.request(
        t,
        "SETUP",
        &format!("{URL}/trackID=2"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=6-7")],
    );
    assert_eq!(d.status(), 404);
    // Its channels are taken.
    assert_eq!(h.setup(t, 1, "4-5").status(), 461);
    assert_eq!(h.setup(t, 1, "2-3").status(), 200);
    let d = h.request(t, "PLAY", &format!("{URL}/"), &[("Require", TAG)]);
    assert_eq!(d.status(), 200);
    let mut packet = bytes::BytesMut::new();
    crate::rtp::RtpHeader {
        sequence_number: 9,
        timestamp: 160,
        ssrc: 5,
        marker: true,
        payload_type: 0,
    }
    .write_packet(&[0xff; 160], &mut packet);
    let mut framed = bytes::BytesMut::new();
    crate::message::encode_interleaved(4, &packet, &mut framed).unwrap();
    // RTCP on 5 and media on other channels are not backchannel audio.
    crate::message::encode_interleaved(5, &[0x80, 201, 0, 1, 0, 0, 0, 5], &mut framed).unwrap();
    crate::message::encode_interleaved(4, &[1, 2], &mut framed).unwrap();
    let d = h.input(h.at(20), &framed);
    assert_eq!(d.backchannel.len(), 1, "{d:?}");
    let (id, path, p) = &d.backchannel[0];
    assert_eq!(Some(id.as_str()), h.conn.session_id());
    assert_eq!(path, "dir/clip.mp4");
    assert_eq!((p.sequence_number, p.timestamp, p.payload.len()), (9, 160, 160));
}

#[test]
fn a_request_after_the_end_restarts_the_linger() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let d = h.play(h.t0, &source, "");
    // Play to the end: the next deadline is then the linger's end.
    let mut d = d;
    let mut ended_at = None;
    for _ in 0..1000 {
        if d.events.iter().any(|e| matches!(e, ServerEvent::PlaybackEnded { .. })) {
            ended_at = Some(h.now);
            break;
        }
        let at = d.timeout.expect("a deadline while playing");
        d = h.timeout(at);
    }
    let ended_at = ended_at.expect("the presentation ended");
    let linger = config().linger_after_end;
    assert_eq!(d.timeout, Some(ended_at + linger));
    // A PAUSE near the linger's end (GStreamer's, before its TEARDOWN) is
    // answered and starts the linger again.
    let late = ended_at + linger - ms(1);
    let d = h.request(late, "PAUSE", URL, &[]);
    assert_eq!(d.status(), 200);
    assert_eq!(d.timeout, Some(late + linger));
    assert!(
        !h.timeout(ended_at + linger).closed,
        "not closed at the first linger's end"
    );
    assert_eq!(h.request(late + ms(2), "TEARDOWN", URL, &[]).status(), 200);
}

/// The camera simulator (`faults`): what each fault does to the wire, and
/// that its events say exactly that.
mod simulator {
    use super::*;
    use crate::server::faults::FaultEvent;

    fn faults(all: &[Drained]) -> Vec<(Option<Duration>, FaultEvent)> {
        all.iter()
            .flat_map(|d| &d.events)
            .filter_map(|e| match e {
                ServerEvent::Fault { since_play, fault, .. } => Some((*since_play, fault.clone())),
                _ => None,
            })
            .collect()
    }

    /// What a session with `query` gave: the (track, sequence number
    /// relative to the first) of each drop event, the drains, the RTP-Info.
    type Run = (Vec<(usize, u16)>, Vec<Drained>, Vec<(String, u16, u32)>);

    fn dropped_and_received(query: &str) -> Run {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, query);
        let info = rtp_info(&d.responses[0]);
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        let dropped = faults(&all)
            .into_iter()
            .filter_map(|(_, f)| match f {
                FaultEvent::Drop { track, seq, .. } => Some((track, seq.wrapping_sub(info[track].1))),
                _ => None,
            })
            .collect();
        (dropped, all, info)
    }

    #[test]
    fn drops_over_tcp_are_exactly_the_gaps_and_repeat_with_the_seed() {
        let (dropped, all, info) = dropped_and_received("?drop=0.2&seed=3");
        assert!(all.last().unwrap().closed);
        assert!(dropped.len() > 3, "{dropped:?}");
        for (track, channel) in [(0usize, 0u8), (1, 2)] {
            let got: Vec<u16> = all
                .iter()
                .flat_map(|d| d.rtp(channel))
                .map(|p| p.sequence_number.wrapping_sub(info[track].1))
                .collect();
            let lost: Vec<u16> = dropped.iter().filter(|(t, _)| *t == track).map(|(_, s)| *s).collect();
            let mut every: Vec<u16> = got.iter().chain(&lost).copied().collect();
            every.sort_unstable();
            // Received and dropped make the whole sequence, once each.
            assert_eq!(every, (0..every.len() as u16).collect::<Vec<_>>(), "track {track}");
            assert!(got.iter().all(|s| !lost.contains(s)));
        }
        // The same seed drops the same packets; another seed others.
        assert_eq!(dropped_and_received("?drop=0.2&seed=3").0, dropped);
        assert_ne!(dropped_and_received("?drop=0.2&seed=4").0, dropped);
    }

    #[test]
    fn a_bad_fault_parameter_is_400_with_the_reason() {
        let mut h = Harness::new();
        let d = h.request(h.t0, "DESCRIBE", &format!("{URL}?drop=7"), &[]);
        assert_eq!(d.status(), 400);
        assert!(d.lookups.is_empty());
        let body = String::from_utf8_lossy(&d.response().body).into_owned();
        assert!(body.contains("drop=7") && body.contains("0 to 1"), "{body}");
        // The next request is not affected.
        let d = h.request(h.t0, "OPTIONS", URL, &[]);
        assert_eq!(d.status(), 200);
        assert!(d.response().body.is_empty());
    }

    #[test]
    fn quirks_change_the_answers_and_say_so() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let q = "?quirk=no_public,no_content_base,no_session_timeout,no_get_parameter";
        let d = h.request(h.t0, "OPTIONS", &format!("{URL}{q}"), &[]);
        assert_eq!(d.response().headers.get("Public"), None);
        let d = h.describe(h.t0, &format!("{URL}{q}"), &source);
        assert_eq!(d.status(), 200);
        assert_eq!(d.response().headers.get("Content-Base"), None);
        let d = h.setup(h.t0, 0, "0-1");
        let session = d.response().headers.get("Session").unwrap();
        assert!(!session.contains("timeout"), "{session}");
        let d = h.request(h.t0, "GET_PARAMETER", URL, &[]);
        assert_eq!(d.status(), 501);
        let d2 = h.request(h.t0, "SET_PARAMETER", URL, &[]);
        assert_eq!(d2.status(), 501);
        let quirks: Vec<_> = faults(&[d, d2])
            .into_iter()
            .map(|(_, f)| match f {
                FaultEvent::Quirk { quirk, method } => (quirk, method),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            quirks,
            vec![
                (Quirk::NoGetParameter, Method::GetParameter),
                (Quirk::NoGetParameter, Method::SetParameter)
            ]
        );
        // Without the quirks, the same connection's answers would have them:
        // a fresh one shows the plain answers.
        let mut plain = Harness::new();
        let d = plain.request(plain.t0, "OPTIONS", URL, &[]);
        assert!(d.response().headers.get("Public").is_some());
    }

    /// `quirk=control_absolute`: absolute controls with Hikvision's query,
    /// which the server takes for SETUP and PLAY; `no_session_control`:
    /// no session-level control, the media ones relative.
    #[test]
    fn control_quirks_rewrite_the_sdp_controls() {
        let source = Arc::new(synthetic_source());
        let controls = |d: &Drained| -> Vec<String> {
            String::from_utf8_lossy(&d.response().body)
                .lines()
                .filter_map(|l| l.strip_prefix("a=control:").map(str::to_owned))
                .collect()
        };
        let mut h = Harness::new();
        let d = h.describe(h.t0, &format!("{URL}?quirk=control_absolute"), &source);
        assert_eq!(d.status(), 200);
        let base = format!("{URL}/");
        assert_eq!(
            controls(&d),
            vec![
                format!("{base}?transportmode=unicast"),
                format!("{base}trackID=0?transportmode=unicast"),
                format!("{base}trackID=1?transportmode=unicast"),
            ]
        );
        assert!(matches!(
            faults(&[d]).as_slice(),
            [(
                None,
                FaultEvent::Quirk {
                    quirk: Quirk::ControlAbsolute,
                    method: Method::Describe
                }
            )]
        ));
        for (track, channels) in [(0, "0-1"), (1, "2-3")] {
            let uri = format!("{base}trackID={track}?transportmode=unicast");
            let transport = format!("RTP/AVP/TCP;unicast;interleaved={channels}");
            let d = h.request(h.t0, "SETUP", &uri, &[("Transport", &transport)]);
            assert_eq!(d.status(), 200);
            let s = d.response().headers.get("Session").unwrap();
            h.session = Some(s.split(';').next().unwrap().to_owned());
        }
        let d = h.request(h.t0, "PLAY", &format!("{base}?transportmode=unicast"), &[]);
        assert_eq!(d.status(), 200);
        assert!(!d.rtp(0).is_empty());

        let mut h = Harness::new();
        let d = h.describe(h.t0, &format!("{URL}?quirk=no_session_control"), &source);
        assert_eq!(controls(&d), vec!["trackID=0", "trackID=1"]);
        assert_eq!(faults(&[d]).len(), 1);
    }

    /// `quirk=other_channels`: the SETUPs answered (and the media sent) on
    /// 10-11 and 12-13 instead of 0-1 and 2-3; `no_interleaved`: answered
    /// without `interleaved=`, the media on the channels asked for.
    #[test]
    fn transport_quirks_change_the_channels_or_leave_them_out() {
        let source = Arc::new(synthetic_source());
        for (quirk, channels) in [("other_channels", [10u8, 12]), ("no_interleaved", [0, 2])] {
            let mut h = Harness::new();
            assert_eq!(h.describe(h.t0, &format!("{URL}?quirk={quirk}"), &source).status(), 200);
            let mut quirks = Vec::new();
            for (track, asked) in [(0, "0-1"), (1, "2-3")] {
                let d = h.setup(h.t0, track, asked);
                assert_eq!(d.status(), 200);
                let transport = d.response().headers.get("Transport").unwrap().to_owned();
                let ch = channels[track];
                if quirk == "other_channels" {
                    assert!(
                        transport.contains(&format!("interleaved={ch}-{}", ch + 1)),
                        "{transport}"
                    );
                } else {
                    assert!(!transport.contains("interleaved"), "{transport}");
                    assert!(transport.starts_with("RTP/AVP/TCP;unicast;"), "{transport}");
                }
                quirks.extend(faults(&[d]));
            }
            assert_eq!(quirks.len(), 2, "{quirk}: {quirks:?}");
            let d = h.request(h.t0, "PLAY", &format!("{URL}/"), &[]);
            assert_eq!(d.status(), 200);
            let until = h.t0 + Duration::from_secs(60);
            let all = collect_until_close(&mut h, d, until);
            for ch in channels {
                assert!(
                    all.iter().map(|d| d.rtp(ch).len()).sum::<usize>() > 5,
                    "{quirk}: channel {ch}"
                );
            }
            if quirk == "other_channels" {
                assert!(all.iter().all(|d| d.rtp(0).is_empty() && d.rtp(2).is_empty()));
            }
        }
    }

    /// `quirk=wrong_content_base`: the Content-Base names another path,
    /// which the server then takes (SETUP, PLAY) for the presentation.
    #[test]
    fn wrong_content_base_names_another_path_taken_for_the_file() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.describe(h.t0, &format!("{URL}?quirk=wrong_content_base"), &source);
        let base = "rtsp://127.0.0.1:8554/elsewhere/stream0/";
        assert_eq!(d.response().headers.get("Content-Base"), Some(base));
        assert_eq!(faults(&[d]).len(), 1);
        for (track, channels) in [(0, "0-1"), (1, "2-3")] {
            let transport = format!("RTP/AVP/TCP;unicast;interleaved={channels}");
            let d = h.request(
                h.t0,
                "SETUP",
                &format!("{base}trackID={track}"),
                &[("Transport", &transport)],
            );
            assert_eq!(d.status(), 200);
            let s = d.response().headers.get("Session").unwrap();
            h.session = Some(s.split(';').next().unwrap().to_owned());
        }
        let d = h.request(h.t0, "PLAY", base, &[]);
        assert_eq!(d.status(), 200);
        assert!(!d.rtp(0).is_empty() && !d.rtp(2).is_empty());
        // Without the quirk, the other path is another file, looked up.
        let mut plain = Harness::new();
        assert_eq!(plain.describe(plain.t0, URL, &source).status(), 200);
        let d = plain.request(
            plain.t0,
            "SETUP",
            &format!("{base}trackID=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        );
        assert!(d.responses.is_empty());
        assert_eq!(d.lookups[0].1, "elsewhere/stream0");
    }

    /// `quirk=unauthorized_after_play`: every request before PLAY is
    /// answered, every one after it is 401 with a challenge (one event
    /// each), and the media goes on.
    #[test]
    fn unauthorized_after_play_refuses_every_later_request() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, "?play_count=5&quirk=unauthorized_after_play");
        assert!(faults(&[d]).is_empty(), "nothing refused up to PLAY");
        let mut refused = Vec::new();
        for (i, method) in ["GET_PARAMETER", "OPTIONS", "TEARDOWN"].into_iter().enumerate() {
            let d = h.request(h.t0 + ms(100 * (i as u64 + 1)), method, &format!("{URL}/"), &[]);
            assert_eq!(d.status(), 401, "{method}");
            assert_eq!(
                d.response().headers.get("WWW-Authenticate"),
                Some("Basic realm=\"camera\"")
            );
            assert!(!d.closed, "{method}");
            refused.extend(faults(&[d]));
        }
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused.iter().all(|(since, f)| since.is_some()
            && matches!(
                f,
                FaultEvent::Quirk {
                    quirk: Quirk::UnauthorizedAfterPlay,
                    ..
                }
            )));
        // The TEARDOWN was refused: the media goes on.
        let d = h.timeout(h.t0 + ms(1000));
        assert!(!d.rtp(0).is_empty());
    }

    /// `quirk=content_base_no_scheme`: DESCRIBE's Content-Base is
    /// `HOST:PORT/PATH/` without a scheme (one event), and the requests on
    /// the request URL, where a client that ignores it goes, are served.
    #[test]
    fn content_base_no_scheme_is_host_port_and_path_without_a_scheme() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.describe(h.t0, &format!("{URL}?quirk=content_base_no_scheme"), &source);
        assert_eq!(d.status(), 200);
        assert_eq!(
            d.response().headers.get("Content-Base"),
            Some("127.0.0.1:8554/dir/clip.mp4/")
        );
        assert_eq!(
            faults(&[d]),
            vec![(
                None,
                FaultEvent::Quirk {
                    quirk: Quirk::ContentBaseNoScheme,
                    method: Method::Describe
                }
            )]
        );
        assert_eq!(h.setup(h.t0, 0, "0-1").status(), 200);
        assert_eq!(h.setup(h.t0, 1, "2-3").status(), 200);
        let d = h.request(h.t0, "PLAY", URL, &[]);
        assert_eq!(d.status(), 200);
        assert!(!d.rtp(0).is_empty() && !d.rtp(2).is_empty());
        assert!(faults(&[d]).is_empty(), "one event, at DESCRIBE");
        // Without a port in the URL, the default one.
        let mut h = Harness::new();
        let d = h.describe(h.t0, "rtsp://cam.example/stream0?quirk=content_base_no_scheme", &source);
        assert_eq!(
            d.response().headers.get("Content-Base"),
            Some("cam.example:554/stream0/")
        );
    }

    /// With the server's users: DESCRIBE, SETUPs and PLAY answered with the
    /// credentials for the first challenge's nonce (issued 1 ms in, PLAY 4 ms
    /// in); the challenge is kept.
    fn play_with_credentials(query: &str) -> (Harness, Response) {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::with(auth_config(|_| {}), 0);
        let uri = format!("{URL}{query}");
        let challenge = h.request(h.at(1), "DESCRIBE", &uri, &[]).response().clone();
        assert_eq!(challenge.status, 401);
        let a = authorization(&challenge, "alice", "wonder land", "DESCRIBE", &uri);
        let d = h.request(h.at(2), "DESCRIBE", &uri, &[("Authorization", &a)]);
        h.conn.handle_input(
            h.at(2),
            ServerInput::Lookup {
                token: d.lookups[0].0,
                result: Ok(source),
            },
        );
        assert_eq!(h.drain().status(), 200);
        for (track, channels) in [(0, "0-1"), (1, "2-3")] {
            let uri = format!("{URL}/trackID={track}");
            let a = authorization(&challenge, "alice", "wonder land", "SETUP", &uri);
            let transport = format!("RTP/AVP/TCP;unicast;interleaved={channels}");
            let d = h.request(
                h.at(3),
                "SETUP",
                &uri,
                &[("Transport", &transport), ("Authorization", &a)],
            );
            assert_eq!(d.status(), 200);
            let s = d.response().headers.get("Session").unwrap();
            h.session = Some(s.split(';').next().unwrap().to_owned());
        }
        let play = format!("{URL}/");
        let a = authorization(&challenge, "alice", "wonder land", "PLAY", &play);
        let d = h.request(h.at(4), "PLAY", &play, &[("Authorization", &a)]);
        assert_eq!(d.status(), 200);
        assert!(faults(&[d]).is_empty(), "the nonce is good up to PLAY");
        (h, challenge)
    }

    fn nonce_of(resp: &Response) -> String {
        let v = resp.headers.get("WWW-Authenticate").unwrap();
        let start = v.find("nonce=\"").unwrap() + 7;
        v[start..].split('"').next().unwrap().to_owned()
    }

    /// `quirk=reauth_after_play` with the server's users (Axis M5525,
    /// SharpRTSP#126): after PLAY, a right answer to the nonce issued before
    /// it is 401 with fresh challenges (a new nonce, not stale; one event,
    /// not an authentication failure); the right answer to the new nonce
    /// passes, a wrong password for it is a failure, OPTIONS is not asked,
    /// and the media goes on. Without the quirk the old nonce passes.
    #[test]
    fn reauth_after_play_with_users_refuses_the_nonce_from_before_play() {
        let play = format!("{URL}/");
        let (mut h, old) = play_with_credentials("?play_count=5&quirk=reauth_after_play");
        let a = authorization(&old, "alice", "wonder land", "GET_PARAMETER", &play);
        let d = h.request(h.at(1000), "GET_PARAMETER", &play, &[("Authorization", &a)]);
        assert_eq!(d.status(), 401);
        let values: Vec<&str> = d.response().headers.get_all("WWW-Authenticate").collect();
        assert_eq!(values.len(), 2, "{values:?}");
        assert!(values.iter().all(|v| !v.contains("stale")), "{values:?}");
        let fresh = d.response().clone();
        assert_ne!(nonce_of(&fresh), nonce_of(&old));
        assert!(!d.events.iter().any(|e| matches!(e, ServerEvent::AuthFailed { .. })));
        assert_eq!(
            faults(&[d]),
            vec![(
                Some(ms(996)),
                FaultEvent::Quirk {
                    quirk: Quirk::ReauthAfterPlay,
                    method: Method::GetParameter
                }
            )]
        );
        for (at, method) in [(1001, "GET_PARAMETER"), (1002, "SET_PARAMETER")] {
            let a = authorization(&fresh, "alice", "wonder land", method, &play);
            let d = h.request(h.at(at), method, &play, &[("Authorization", &a)]);
            assert_eq!(d.status(), 200, "{method}");
            assert!(faults(&[d]).is_empty());
        }
        // The old nonce stays refused; OPTIONS needs nothing.
        let d = h.request(h.at(1003), "GET_PARAMETER", &play, &[("Authorization", &a)]);
        assert_eq!(d.status(), 401);
        assert_eq!(faults(&[d]).len(), 1);
        assert_eq!(h.request(h.at(1004), "OPTIONS", &play, &[]).status(), 200);
        let a = authorization(&fresh, "alice", "not it", "GET_PARAMETER", &play);
        let d = h.request(h.at(1005), "GET_PARAMETER", &play, &[("Authorization", &a)]);
        assert_eq!(d.status(), 401);
        assert!(d.events.iter().any(|e| matches!(
            e,
            ServerEvent::AuthFailed {
                reason: auth::Refusal::WrongPassword,
                ..
            }
        )));
        assert!(faults(&[d]).is_empty(), "a wrong password is no quirk");
        assert!(!h.timeout(h.at(1500)).rtp(0).is_empty(), "the media goes on");
        let a = authorization(&fresh, "alice", "wonder land", "TEARDOWN", &play);
        assert_eq!(
            h.request(h.at(1600), "TEARDOWN", &play, &[("Authorization", &a)])
                .status(),
            200
        );

        // Without the quirk the nonce from before PLAY is good after it.
        let (mut h, old) = play_with_credentials("?play_count=5");
        let a = authorization(&old, "alice", "wonder land", "GET_PARAMETER", &play);
        let d = h.request(h.at(1000), "GET_PARAMETER", &play, &[("Authorization", &a)]);
        assert_eq!(d.status(), 200);
    }

    /// `quirk=reauth_after_play` without the server's users: nothing asked
    /// up to PLAY; after it every request but OPTIONS that does not answer
    /// the simulator's nonce is 401 with one Digest challenge for it (the
    /// same nonce each time, from the seed; one event each); a Digest
    /// answer to it passes, whoever it names; the media goes on.
    #[test]
    fn reauth_after_play_without_users_challenges_after_play() {
        let source = Arc::new(synthetic_source());
        let run = |seed: &str| {
            let mut h = Harness::new();
            let d = h.play(
                h.t0,
                &source,
                &format!("?play_count=5&quirk=reauth_after_play&seed={seed}"),
            );
            assert!(faults(&[d]).is_empty(), "nothing asked up to PLAY");
            let play = format!("{URL}/");
            let d = h.request(h.at(100), "GET_PARAMETER", &play, &[]);
            assert_eq!(d.status(), 401);
            let challenge = d.response().clone();
            let values: Vec<&str> = challenge.headers.get_all("WWW-Authenticate").collect();
            let nonce = nonce_of(&challenge);
            assert_eq!(nonce.len(), 32);
            assert_eq!(
                values,
                [format!("Digest realm=\"camera\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"").as_str()]
            );
            assert_eq!(faults(&[d]).len(), 1);
            assert_eq!(h.request(h.at(101), "OPTIONS", &play, &[]).status(), 200);
            // Another nonce's answer: refused with the same challenge.
            let other = Response {
                status: 401,
                reason: "Unauthorized".into(),
                headers: Headers::new().with("WWW-Authenticate", "Digest realm=\"camera\", nonce=\"0123\""),
                body: Bytes::new(),
            };
            let a = authorization(&other, "u", "p", "GET_PARAMETER", &play);
            let d = h.request(h.at(102), "GET_PARAMETER", &play, &[("Authorization", &a)]);
            assert_eq!(d.status(), 401);
            assert_eq!(nonce_of(d.response()), nonce);
            assert_eq!(faults(&[d]).len(), 1);
            for (at, method, user) in [(200, "GET_PARAMETER", "u"), (300, "SET_PARAMETER", "anyone")] {
                let a = authorization(&challenge, user, "any", method, &play);
                let d = h.request(h.at(at), method, &play, &[("Authorization", &a)]);
                assert_eq!(d.status(), 200, "{method}");
                assert!(faults(&[d]).is_empty());
            }
            assert!(!h.timeout(h.at(1000)).rtp(0).is_empty(), "the media goes on");
            let a = authorization(&challenge, "u", "p", "TEARDOWN", &play);
            assert_eq!(
                h.request(h.at(1100), "TEARDOWN", &play, &[("Authorization", &a)])
                    .status(),
                200
            );
            nonce
        };
        assert_eq!(run("1"), run("1"));
        assert_ne!(run("1"), run("2"));
    }

    /// `slow=300`: each request is answered 300 ms after it came, the next
    /// one (pipelined behind it) 300 ms after that; the deadline says when;
    /// a PLAY's media starts with its late answer.
    #[test]
    fn slow_answers_each_request_after_its_delay() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let t0 = h.t0;
        let d = h.request(t0, "OPTIONS", &format!("{URL}?slow=300"), &[]);
        assert!(d.responses.is_empty());
        assert_eq!(d.timeout, Some(t0 + ms(300)));
        assert!(matches!(
            faults(&[d]).as_slice(),
            [(
                None,
                FaultEvent::Slow {
                    method: Method::Options,
                    delay_ms: 300
                }
            )]
        ));
        // A DESCRIBE pipelined 100 ms later waits behind it.
        let d = h.request(t0 + ms(100), "DESCRIBE", URL, &[("Accept", "application/sdp")]);
        assert!(d.responses.is_empty() && d.lookups.is_empty());
        assert_eq!(d.timeout, Some(t0 + ms(300)));
        let d = h.timeout(t0 + ms(299));
        assert!(d.responses.is_empty());
        let d = h.timeout(t0 + ms(300));
        assert_eq!(d.responses.len(), 1);
        assert_eq!(d.responses[0].status, 200);
        assert!(d.lookups.is_empty(), "the DESCRIBE waits its own 300 ms");
        assert_eq!(d.timeout, Some(t0 + ms(600)));
        assert_eq!(faults(&[d]).len(), 1);
        let d = h.timeout(t0 + ms(600));
        assert_eq!(d.lookups.len(), 1);
        h.conn.handle_input(
            t0 + ms(600),
            ServerInput::Lookup {
                token: d.lookups[0].0,
                result: Ok(source.clone()),
            },
        );
        assert_eq!(h.drain().status(), 200);
        // SETUP, SETUP, PLAY: 300 ms each; the media starts with the PLAY's answer.
        let mut at = t0 + ms(600);
        for (track, channels) in [(0, "0-1"), (1, "2-3")] {
            let transport = format!("RTP/AVP/TCP;unicast;interleaved={channels}");
            let d = h.request(
                at,
                "SETUP",
                &format!("{URL}/trackID={track}"),
                &[("Transport", &transport)],
            );
            assert!(d.responses.is_empty());
            at += ms(300);
            let d = h.timeout(at);
            assert_eq!(d.status(), 200);
            let s = d.response().headers.get("Session").unwrap();
            h.session = Some(s.split(';').next().unwrap().to_owned());
        }
        let d = h.request(at, "PLAY", &format!("{URL}/"), &[]);
        assert!(d.responses.is_empty() && d.rtp(0).is_empty());
        let d = h.timeout(at + ms(300));
        assert_eq!(d.status(), 200);
        assert!(!d.rtp(0).is_empty());
    }

    #[test]
    fn wrong_cseq_answers_with_the_next_one() {
        let mut h = Harness::new();
        let d = h.input(
            h.t0,
            format!("OPTIONS {URL}?quirk=wrong_cseq RTSP/1.0\r\nCSeq: 7\r\n\r\n").as_bytes(),
        );
        assert_eq!(d.response().headers.cseq(), Some(8));
        assert!(matches!(
            faults(&[d]).as_slice(),
            [(
                None,
                FaultEvent::Quirk {
                    quirk: Quirk::WrongCseq,
                    ..
                }
            )]
        ));
    }

    #[test]
    fn no_cseq_answers_without_one() {
        let mut h = Harness::new();
        let d = h.input(
            h.t0,
            format!("OPTIONS {URL}?quirk=no_cseq RTSP/1.0\r\nCSeq: 7\r\n\r\n").as_bytes(),
        );
        assert_eq!(d.response().status, 200);
        assert_eq!(d.response().headers.get("CSeq"), None);
        assert!(matches!(
            faults(&[d]).as_slice(),
            [(
                None,
                FaultEvent::Quirk {
                    quirk: Quirk::NoCseq,
                    ..
                }
            )]
        ));
    }

    #[test]
    fn a_stall_sends_nothing_for_its_length_then_the_backlog() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let start = h.t0;
        let d = h.play(start, &source, "?play_count=3&stall=0.3:1");
        let steps = follow(&mut h, d, start + Duration::from_secs(30));
        let (stall_from, stall_to) = (start + ms(300), start + ms(1300));
        let sent_at: Vec<Instant> = steps
            .iter()
            .filter(|(_, d)| !d.frames.is_empty())
            .map(|(at, _)| *at)
            .collect();
        assert!(sent_at.iter().all(|t| *t < stall_from || *t >= stall_to), "{sent_at:?}");
        assert!(
            sent_at.contains(&stall_to),
            "the backlog goes out at the end of the stall"
        );
        let all: Vec<Drained> = steps.into_iter().map(|(_, d)| d).collect();
        let stalls = faults(&all);
        assert!(
            matches!(stalls.as_slice(), [(Some(at), FaultEvent::Stall { length })] if *at >= ms(300) && *length == ms(1000))
        );
        // Nothing is lost.
        let frames = all.iter().flat_map(|d| d.rtp(0)).filter(|p| p.marker).count();
        assert_eq!(frames, 3 * source.samples.iter().filter(|s| s.track == 0).count());
    }

    #[test]
    fn close_after_closes_without_bye() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let start = h.t0;
        let d = h.play(start, &source, "?play_count=0&close_after=0.5");
        let all = collect_until_close(&mut h, d, start + Duration::from_secs(30));
        let last = all.last().unwrap();
        assert!(last.closed);
        assert!(last
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::Closed { reason: CloseReason::Fault, elapsed } if *elapsed == ms(500))));
        assert!(!all
            .iter()
            .flat_map(|d| d.rtcp(1))
            .any(|c| c.iter().any(|p| matches!(p, RtcpPacket::Bye(_)))));
        let sent = all.iter().map(|d| d.rtp(0).len() + d.rtp(2).len()).sum::<usize>() as u64;
        assert!(matches!(faults(&all).as_slice(), [(Some(_), FaultEvent::Close { packets })] if *packets == sent));
        // By packets: exactly that many go out.
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, "?close_after=5p");
        let until = h.t0 + Duration::from_secs(30);
        let all = collect_until_close(&mut h, d, until);
        assert_eq!(all.iter().map(|d| d.rtp(0).len() + d.rtp(2).len()).sum::<usize>(), 5);
        assert!(all.last().unwrap().closed);
    }

    /// The RTP packets of a session in the order they went out: (track,
    /// sequence number relative to the first).
    fn sent_in_order(all: &[Drained], info: &[(String, u16, u32)]) -> Vec<(usize, u16)> {
        all.iter()
            .flat_map(|d| &d.frames)
            .filter(|(c, _)| *c == 0 || *c == 2)
            .map(|(c, p)| {
                let track = usize::from(*c / 2);
                let seq = RtpPacket::parse(p.clone()).unwrap().sequence_number;
                (track, seq.wrapping_sub(info[track].1))
            })
            .collect()
    }

    #[test]
    fn drop_packets_drops_exactly_those_packets() {
        let (none, clean, info) = dropped_and_received("?play_count=1&seed=1");
        assert!(none.is_empty());
        let every = sent_in_order(&clean, &info);
        assert!(every.len() > 12 && every.iter().any(|(t, _)| *t == 1));
        // Given unsorted and twice: packets 0, 4, 9 and 12 of the session.
        let (dropped, all, info) = dropped_and_received("?play_count=1&drop_packets=9,0,4,12,4");
        let picked = [0, 4, 9, 12];
        assert_eq!(dropped, picked.iter().map(|k| every[*k]).collect::<Vec<_>>());
        let rest: Vec<(usize, u16)> = (0..every.len())
            .filter(|k| !picked.contains(k))
            .map(|k| every[k])
            .collect();
        assert_eq!(sent_in_order(&all, &info), rest);
        assert!(all.last().unwrap().closed);
    }

    /// `freeze=`: a stall that holds the answers too: a request that comes
    /// during it is answered at its end, with the backlog.
    #[test]
    fn a_freeze_holds_the_answers_until_its_end() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let start = h.t0;
        let d = h.play(start, &source, "?play_count=3&freeze=0.3:1");
        let all: Vec<Drained> = follow(&mut h, d, start + ms(400)).into_iter().map(|(_, d)| d).collect();
        let last = all.last().unwrap();
        assert_eq!(last.timeout, Some(start + ms(1300)), "nothing before the freeze's end");
        assert!(matches!(
            faults(&all).as_slice(),
            [(Some(at), FaultEvent::Freeze { length })] if *at >= ms(300) && *length == ms(1000)
        ));
        let d = h.request(start + ms(500), "GET_PARAMETER", URL, &[]);
        assert!(d.responses.is_empty() && d.frames.is_empty(), "{d:?}");
        assert_eq!(d.timeout, Some(start + ms(1300)));
        assert!(matches!(
            faults(&[d]).as_slice(),
            [(
                _,
                FaultEvent::Slow {
                    method: Method::GetParameter,
                    delay_ms: 800
                }
            )]
        ));
        let d = h.timeout(start + ms(1299));
        assert!(d.responses.is_empty() && d.frames.is_empty());
        let d = h.timeout(start + ms(1300));
        assert_eq!(d.response().status, 200);
        assert!(!d.rtp(0).is_empty(), "the backlog with the answer");
        // After it, answers come at once again.
        let d = h.request(start + ms(1400), "GET_PARAMETER", URL, &[]);
        assert_eq!(d.response().status, 200);
        // `stall=` answers during the stall.
        let mut h = Harness::new();
        let d = h.play(start, &source, "?play_count=3&stall=0.3:1");
        follow(&mut h, d, start + ms(400));
        let d = h.request(start + ms(500), "GET_PARAMETER", URL, &[]);
        assert_eq!(d.response().status, 200);
        assert!(d.frames.is_empty());
    }

    #[test]
    fn ssrc_change_seq_jump_and_no_marker() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(
            h.t0,
            &source,
            "?play_count=3&ssrc_change=0.5&seq_jump=0.5&quirk=no_marker",
        );
        let info = rtp_info(&d.responses[0]);
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        let video: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(0)).collect();
        assert!(video.iter().all(|p| !p.marker));
        let changes = faults(&all);
        let (from, to) = changes
            .iter()
            .find_map(|(_, f)| match f {
                FaultEvent::SsrcChange { track: 0, from, to } => Some((*from, *to)),
                _ => None,
            })
            .unwrap();
        let (seq_from, seq_to) = changes
            .iter()
            .find_map(|(_, f)| match f {
                FaultEvent::SeqJump { track: 0, from, to } => Some((*from, *to)),
                _ => None,
            })
            .unwrap();
        assert_eq!(seq_to, seq_from.wrapping_add(crate::server::faults::SEQ_JUMP));
        let at = video.iter().position(|p| p.ssrc == to).unwrap();
        assert!(at > 0 && video[..at].iter().all(|p| p.ssrc == from) && video[at..].iter().all(|p| p.ssrc == to));
        assert_eq!(video[at].sequence_number, seq_to);
        assert_eq!(video[at - 1].sequence_number, seq_from.wrapping_sub(1));
        assert_eq!(video[0].sequence_number, info[0].1);
    }

    /// `ts_jump=0.5`: at one sample of each track the RTP timestamps move
    /// 10 s of its clock ahead, the sequence numbers going on without a gap,
    /// and the sender reports after it map to the new timeline.
    #[test]
    fn ts_jump_moves_the_timestamps_once_without_a_sequence_gap() {
        ts_jump_by("", 10_000);
        ts_jump_by(":-3000", -3000);
        ts_jump_by(":250", 250);
    }

    /// `ts_jump=0.5{by}`: the timestamps of each track jump `ms` once.
    fn ts_jump_by(by: &str, ms: i64) {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, &format!("?play_count=3&ts_jump=0.5{by}"));
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        let jumps = faults(&all);
        assert_eq!(jumps.len(), 2, "{jumps:?}");
        for (track, channel, rate) in [(0usize, 0u8, 90_000u32), (1, 2, 44_100)] {
            let (since, from, to) = jumps
                .iter()
                .find_map(|(since, f)| match f {
                    FaultEvent::TsJump { track: t, from, to } if *t == track => Some((*since, *from, *to)),
                    _ => None,
                })
                .unwrap();
            assert!(
                since.is_some_and(|s| s >= super::ms(500) && s < super::ms(600)),
                "{since:?}"
            );
            let jump = (ms * i64::from(rate) / 1000) as u32;
            assert_eq!(to.wrapping_sub(from), jump);
            let packets: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(channel)).collect();
            let at = packets.iter().position(|p| p.timestamp == to).unwrap();
            assert!(at > 0);
            // No sequence gap anywhere.
            for w in packets.windows(2) {
                assert_eq!(w[1].sequence_number, w[0].sequence_number.wrapping_add(1));
            }
            // Every step of the timestamps is small but the one at the jump.
            for (i, w) in packets.windows(2).enumerate() {
                let step = w[1].timestamp.wrapping_sub(w[0].timestamp);
                if i + 1 == at {
                    let beyond = step.wrapping_sub(jump);
                    assert!(beyond > 0 && beyond < rate / 2, "{step}");
                } else {
                    assert!(step < rate / 2, "{i}: {step}");
                }
            }
            // The last sender report is on the new timeline.
            let last_sr = all
                .iter()
                .flat_map(|d| d.rtcp(channel + 1))
                .filter_map(|c| match &c[0] {
                    RtcpPacket::SenderReport(sr) => Some(sr.rtp_timestamp),
                    _ => None,
                })
                .last()
                .unwrap();
            let last = packets.last().unwrap().timestamp;
            assert!(last_sr.wrapping_sub(last) < rate, "SR {last_sr} after {last}");
        }
    }

    /// `sr_offset=-250`: every sender report of the audio track (track 1)
    /// says an NTP time 250 ms before the video's report of the same
    /// instant; one event per shifted report; the video's are true.
    #[test]
    fn sr_offset_shifts_the_ntp_time_of_every_track_but_the_first() {
        let source = Arc::new(synthetic_source());
        let run = |query: &str| {
            let mut h = Harness::new();
            let d = h.play(h.t0, &source, query);
            let until = h.t0 + Duration::from_secs(60);
            collect_until_close(&mut h, d, until)
        };
        let ntp_of = |d: &Drained, channel: u8| {
            d.rtcp(channel).iter().find_map(|c| match &c[0] {
                RtcpPacket::SenderReport(sr) => Some(sr.ntp_timestamp),
                _ => None,
            })
        };
        let pairs = |all: &[Drained]| -> Vec<(u64, u64)> {
            all.iter()
                .filter_map(|d| Some((ntp_of(d, 1)?, ntp_of(d, 3)?)))
                .collect()
        };
        let plain = pairs(&run("?play_count=30"));
        let all = run("?play_count=30&sr_offset=-250");
        let shifted = pairs(&all);
        assert!(shifted.len() >= 3, "{shifted:?}");
        assert_eq!(plain.len(), shifted.len());
        let quarter = (1u64 << 32) / 4;
        for ((v0, a0), (v, a)) in plain.iter().zip(&shifted) {
            assert_eq!(v0, a0, "without the fault the reports of one instant agree");
            assert_eq!(v.wrapping_sub(*a), quarter, "video {v}, audio {a}");
        }
        let events = faults(&all);
        assert_eq!(events.len(), shifted.len(), "{events:?}");
        assert!(events.iter().all(|(_, f)| *f
            == FaultEvent::SrOffset {
                track: 1,
                offset_ms: -250
            }));
    }

    /// `keyframe_gap=0.5:0.5`: the keyframes due from 0.5 s to 1 s after
    /// PLAY (two: the synthetic source has one every 0.2 s of a loop) are
    /// not sent, every packet of them a `drop` event; every other packet
    /// goes out, audio included.
    #[test]
    fn keyframe_gap_drops_the_keyframes_due_in_it() {
        let (dropped, all, info) = dropped_and_received("?play_count=5&keyframe_gap=0.5:0.5");
        let events = faults(&all);
        assert!(dropped.iter().all(|(track, _)| *track == 0), "{dropped:?}");
        let stamps: std::collections::BTreeSet<u32> = events
            .iter()
            .filter_map(|(since, f)| match f {
                FaultEvent::Drop { rtp_ts, .. } => {
                    assert!(since.is_some_and(|s| s >= ms(500) && s < ms(1000)), "{since:?}");
                    Some(*rtp_ts)
                }
                _ => None,
            })
            .collect();
        // Two keyframes, from 0.5 s to 1 s of the 90 kHz clock (a loop is
        // a little longer than its 0.4 s of video: the audio's end).
        let base = info[0].2;
        assert_eq!(stamps.len(), 2, "{stamps:?}");
        assert!(stamps
            .iter()
            .all(|ts| (45_000..90_000).contains(&ts.wrapping_sub(base))));
        let video: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(0)).collect();
        assert!(video.iter().all(|p| !stamps.contains(&p.timestamp)));
        // Received and dropped make the whole sequence.
        let mut every: Vec<u16> = video
            .iter()
            .map(|p| p.sequence_number.wrapping_sub(info[0].1))
            .chain(dropped.iter().map(|(_, s)| *s))
            .collect();
        every.sort_unstable();
        assert_eq!(every, (0..every.len() as u16).collect::<Vec<_>>());
        // The frames between them are sent: 5 loops of 10 frames, 2 gone.
        let frames: std::collections::BTreeSet<u32> = video.iter().map(|p| p.timestamp).collect();
        assert_eq!(frames.len(), 48);
    }

    /// The whole H.264 NAL units of an RTP payload: the payload itself, or
    /// those inside a STAP-A; none for a FU-A fragment.
    fn whole_nals(pl: &[u8]) -> Vec<&[u8]> {
        match pl[0] & 0x1f {
            24 => {
                let mut out = Vec::new();
                let mut at = 1;
                while at + 2 < pl.len() {
                    let len = usize::from(u16::from_be_bytes([pl[at], pl[at + 1]]));
                    out.push(&pl[at + 2..(at + 2 + len).min(pl.len())]);
                    at += 2 + len;
                }
                out
            }
            28 => Vec::new(),
            _ => vec![pl],
        }
    }

    /// The H.264 NAL unit types in RTP payloads (inside STAP-A, and the
    /// start of FU-A).
    fn nal_types(packets: &[RtpPacket]) -> Vec<u8> {
        let mut types = Vec::new();
        for p in packets {
            let pl = &p.payload[..];
            if pl[0] & 0x1f == 28 {
                if pl[1] & 0x80 != 0 {
                    types.push(pl[1] & 0x1f);
                }
            } else {
                types.extend(whole_nals(pl).iter().map(|n| n[0] & 0x1f));
            }
        }
        types
    }

    /// `params=sdp`: the synthetic source's in-band SPS and PPS are taken
    /// out of the stream, the SDP keeps them; `params=inband`: the SDP has
    /// none, and a source without in-band sets gets them in front of every
    /// keyframe.
    #[test]
    fn params_put_the_parameter_sets_only_in_the_sdp_or_only_in_band() {
        let with_sets = Arc::new(synthetic_source());
        let mut bare = synthetic_source();
        for sample in bare.samples.iter_mut().filter(|s| s.track == 0) {
            let mut nals = Vec::new();
            split_length_prefixed_for_test(&sample.data, &mut nals);
            nals.retain(|n| !matches!(n[0] & 0x1f, 7 | 8));
            sample.data = length_prefixed(&nals);
        }
        let bare = Arc::new(bare);
        let run = |source: &Arc<MediaSource>, query: &str| {
            let mut h = Harness::new();
            let d = h.describe(h.t0, &format!("{URL}{query}"), source);
            let sdp = String::from_utf8_lossy(&d.response().body).into_owned();
            let events = faults(&[d]);
            assert_eq!(h.setup(h.t0, 0, "0-1").status(), 200);
            assert_eq!(h.setup(h.t0, 1, "2-3").status(), 200);
            let d = h.request(h.t0, "PLAY", &format!("{URL}/"), &[]);
            let until = h.t0 + Duration::from_secs(60);
            let all = collect_until_close(&mut h, d, until);
            let video: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(0)).collect();
            (sdp, events, nal_types(&video))
        };
        let count = |types: &[u8], t: u8| types.iter().filter(|x| **x == t).count();
        // 2 keyframes (IDR, type 5) in the synthetic source's 10 frames.
        let (sdp, events, types) = run(&with_sets, "");
        assert!(sdp.contains("sprop-parameter-sets=") && events.is_empty());
        assert_eq!((count(&types, 5), count(&types, 7), count(&types, 8)), (2, 2, 2));
        let (sdp, events, types) = run(&with_sets, "?params=sdp");
        assert!(sdp.contains("sprop-parameter-sets="));
        assert_eq!(
            events,
            vec![(
                None,
                FaultEvent::Params {
                    params: crate::server::faults::Params::Sdp
                }
            )]
        );
        assert_eq!((count(&types, 5), count(&types, 7), count(&types, 8)), (2, 0, 0));
        let (_, _, types) = run(&bare, "");
        assert_eq!((count(&types, 5), count(&types, 7), count(&types, 8)), (2, 0, 0));
        let (sdp, events, types) = run(&bare, "?params=inband");
        assert!(!sdp.contains("sprop"), "{sdp}");
        assert!(
            sdp.contains("a=fmtp:96 packetization-mode=1;profile-level-id="),
            "{sdp}"
        );
        assert_eq!(events.len(), 1);
        assert_eq!((count(&types, 5), count(&types, 7), count(&types, 8)), (2, 2, 2));
        // Each SPS right before its PPS and IDR.
        let at = types.iter().position(|t| *t == 7).unwrap();
        assert_eq!(&types[at..at + 3], &[7, 8, 5]);
    }

    /// The H.264 SPS NAL units in RTP payloads (single NAL unit packets and
    /// STAP-A), with their packets' timestamps.
    fn sps_units(packets: &[RtpPacket]) -> Vec<(u32, Vec<u8>)> {
        packets
            .iter()
            .flat_map(|p| {
                whole_nals(&p.payload)
                    .into_iter()
                    .filter(|n| n[0] & 0x1f == 7)
                    .map(|n| (p.timestamp, n.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `resolution_change=0.3`: from the first keyframe 0.3 s after PLAY
    /// on, every keyframe's SPS is the one with half the picture size (the
    /// rest of it the source's, the PPS and slices unchanged); before it,
    /// the source's. One event; `:WxH` takes that size to the cropping unit.
    #[test]
    fn resolution_change_sends_an_sps_with_another_size_from_a_keyframe_on() {
        use crate::codec::sps;
        let source = Arc::new(synthetic_source());
        let original = sps::h264(SPS).unwrap();
        let run = |query: &str| {
            let mut h = Harness::new();
            let d = h.play(h.t0, &source, query);
            let info = rtp_info(&d.responses[0]);
            let until = h.t0 + Duration::from_secs(60);
            let all = collect_until_close(&mut h, d, until);
            let video: Vec<RtpPacket> = all.iter().flat_map(|d| d.rtp(0)).collect();
            (faults(&all), sps_units(&video), info[0].2)
        };
        let (events, units, base) = run("?play_count=2&resolution_change=0.3");
        let half = (original.width / 2, original.height / 2);
        assert_eq!(events.len(), 1, "{events:?}");
        let (since, fault) = &events[0];
        assert_eq!(
            fault,
            &FaultEvent::ResolutionChange {
                track: 0,
                from: (original.width, original.height),
                to: half
            }
        );
        assert!(since.is_some_and(|s| s >= ms(300)), "{since:?}");
        // Keyframes every 5 frames (0.2 s): 0, 0.2, then the second loop's.
        assert_eq!(units.len(), 4, "one SPS per keyframe");
        for (ts, nal) in &units {
            let at = ts.wrapping_sub(base);
            let info = sps::h264(nal).unwrap();
            if at < 27_000 {
                assert_eq!(nal, SPS, "before 0.3 s: the source's SPS");
            } else {
                assert_eq!((info.width, info.height), half, "at {at}");
                assert_eq!((info.profile, info.level), (original.profile, original.level));
            }
        }
        assert!(units.iter().filter(|(ts, _)| ts.wrapping_sub(base) >= 27_000).count() >= 2);
        // A size of its own; before PLAY's 0.3 s nothing changes.
        let (events, units, _) = run("?play_count=2&resolution_change=0.3:100x64");
        let to = (100, 64);
        assert!(matches!(events[..], [(_, FaultEvent::ResolutionChange { to: t, .. })] if t == to));
        let last = sps::h264(&units.last().unwrap().1).unwrap();
        assert_eq!((last.width, last.height), to);
        // A size larger than the picture: nothing changes, no event.
        let (events, units, _) = run("?resolution_change=0:4000x4000");
        assert!(events.is_empty(), "{events:?}");
        assert!(units.iter().all(|(_, n)| n == SPS));
    }

    /// `bye_at=0.2`: a BYE on both tracks 0.2 s after PLAY, the media going
    /// on after it, and the end's BYE as usual.
    #[test]
    fn bye_at_says_bye_early_and_the_media_goes_on() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, "?play_count=2&bye_at=0.2");
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        let byes = |channel: u8| -> Vec<usize> {
            // The index in `all` of each drain with a BYE on `channel`.
            all.iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.rtcp(channel)
                        .iter()
                        .any(|c| c.iter().any(|p| matches!(p, RtcpPacket::Bye(_))))
                })
                .map(|(i, _)| i)
                .collect()
        };
        for channel in [1u8, 3] {
            let at = byes(channel);
            assert_eq!(at.len(), 2, "the early BYE and the end's on channel {channel}");
            let after: usize = all[at[0] + 1..].iter().map(|d| d.rtp(channel - 1).len()).sum();
            assert!(
                after > 5,
                "{after} RTP packets after the early BYE on channel {}",
                channel - 1
            );
        }
        let events = faults(&all);
        assert_eq!(events.len(), 1, "{events:?}");
        let (since, fault) = &events[0];
        assert_eq!(fault, &FaultEvent::Bye { tracks: 2 });
        assert!(since.is_some_and(|s| s >= Duration::from_millis(200) && s < Duration::from_millis(300)));
    }

    /// `quirk=no_sr`: no sender report all along; the end still says BYE,
    /// in a compound that starts with an empty receiver report.
    #[test]
    fn no_sr_sends_no_sender_report_and_still_the_bye() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, "?play_count=30&quirk=no_sr");
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        for channel in [1u8, 3] {
            let compounds: Vec<Vec<RtcpPacket>> = all.iter().flat_map(|d| d.rtcp(channel)).collect();
            assert_eq!(
                compounds.len(),
                1,
                "only the BYE's compound on channel {channel}: {compounds:?}"
            );
            let c = &compounds[0];
            assert!(
                matches!(&c[0], RtcpPacket::ReceiverReport(rr) if rr.reports.is_empty()),
                "{c:?}"
            );
            assert!(c.iter().any(|p| matches!(p, RtcpPacket::Bye(_))), "{c:?}");
            assert!(!c.iter().any(|p| matches!(p, RtcpPacket::SenderReport(_))), "{c:?}");
        }
        // 30 × 0.4 s of media: without the quirk, sender reports every 5 s.
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, "?play_count=30");
        let all = collect_until_close(&mut h, d, until);
        let srs = all
            .iter()
            .flat_map(|d| d.rtcp(1))
            .filter(|c| matches!(c[0], RtcpPacket::SenderReport(_)))
            .count();
        assert!(srs >= 3, "{srs} sender reports");
    }

    #[test]
    fn jitter_and_reorder_over_udp_deliver_every_packet_once() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play_udp(h.t0, &source, "?jitter_ms=30&reorder=2&seed=5");
        let info = rtp_info(&d.responses[0]);
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        let seqs: Vec<u16> = all
            .iter()
            .flat_map(|d| &d.datagrams)
            .filter(|(s, _, _)| s.pair == 0 && !s.rtcp)
            .map(|(_, _, b)| {
                RtpPacket::parse(b.clone())
                    .unwrap()
                    .sequence_number
                    .wrapping_sub(info[0].1)
            })
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..seqs.len() as u16).collect::<Vec<_>>());
        assert_ne!(seqs, sorted, "some packets overtook others");
        let events = faults(&all);
        assert!(events
            .iter()
            .any(|(_, f)| matches!(f, FaultEvent::Reorder { depth: 2, .. })));
        assert!(events
            .iter()
            .any(|(_, f)| matches!(f, FaultEvent::Delay { delay_ms, .. } if *delay_ms <= 30)));
    }
}

mod simulator_dup {
    use super::*;
    use crate::server::faults::FaultEvent;

    #[test]
    fn duplicates_go_out_twice_and_bursts_drop_in_a_row() {
        let source = Arc::new(synthetic_source());
        let mut h = Harness::new();
        let d = h.play(h.t0, &source, "?play_count=5&dup=0.1&drop=0.05&burst=3&seed=9");
        let info = rtp_info(&d.responses[0]);
        let until = h.t0 + Duration::from_secs(60);
        let all = collect_until_close(&mut h, d, until);
        let events: Vec<FaultEvent> = all
            .iter()
            .flat_map(|d| &d.events)
            .filter_map(|e| match e {
                ServerEvent::Fault { fault, .. } => Some(fault.clone()),
                _ => None,
            })
            .collect();
        let seqs: Vec<u16> = all
            .iter()
            .flat_map(|d| d.rtp(0))
            .map(|p| p.sequence_number.wrapping_sub(info[0].1))
            .collect();
        let duplicated: Vec<u16> = events
            .iter()
            .filter_map(|f| match f {
                FaultEvent::Duplicate { track: 0, seq, .. } => Some(seq.wrapping_sub(info[0].1)),
                _ => None,
            })
            .collect();
        let dropped: Vec<u16> = events
            .iter()
            .filter_map(|f| match f {
                FaultEvent::Drop { track: 0, seq, .. } => Some(seq.wrapping_sub(info[0].1)),
                _ => None,
            })
            .collect();
        assert!(!duplicated.is_empty() && !dropped.is_empty());
        // Each duplicated packet comes twice in a row; dropped ones never.
        for s in &duplicated {
            let at = seqs.iter().position(|x| x == s).unwrap();
            assert_eq!(seqs[at + 1], *s);
        }
        assert!(dropped.iter().all(|s| !seqs.contains(s)));
        let mut unique = seqs.clone();
        unique.dedup();
        assert_eq!(seqs.len(), unique.len() + duplicated.len());
        assert_eq!(
            unique.len() + dropped.len(),
            usize::from(*unique.iter().chain(&dropped).max().unwrap()) + 1
        );
    }
}

#[test]
fn progress_reports_the_totals_every_interval_and_once_more_before_closed() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::with(
        ServerConfig {
            progress_interval: Some(ms(1000)),
            ..config()
        },
        0,
    );
    let start = h.t0;
    let d = h.play(start, &source, "?play_count=0");
    assert!(d.events.iter().any(|e| matches!(
        e,
        ServerEvent::SessionStarted {
            transport: SessionTransport::Tcp,
            ..
        }
    )));
    let mut packets = d.rtp(0).len() + d.rtp(2).len();
    // Follow the schedule for 3.5 s, the wake-up due at 2 s 300 ms late.
    let mut reports = Vec::new();
    let mut d = d;
    let mut late_done = false;
    for _ in 0..100_000 {
        let Some(mut at) = d.timeout.filter(|&t| t <= start + ms(3500)) else {
            break;
        };
        if !late_done && at >= start + ms(2000) {
            at += ms(300);
            late_done = true;
        }
        d = h.timeout(at);
        for e in &d.events {
            if let ServerEvent::Progress { .. } = e {
                reports.push((at, packets as u64, e.clone()));
            }
        }
        packets += d.rtp(0).len() + d.rtp(2).len();
    }
    assert_eq!(reports.len(), 3, "{reports:?}");
    for (k, (at, sent_before, e)) in reports.iter().enumerate() {
        let ServerEvent::Progress {
            session_id,
            path,
            transport,
            packets,
            octets,
            behind,
            last,
        } = e
        else {
            unreachable!()
        };
        assert_eq!(
            (path.as_str(), *transport, *last),
            ("dir/clip.mp4", SessionTransport::Tcp, false)
        );
        assert_eq!(Some(session_id.as_str()), h.session.as_deref());
        // Counted before this wake-up's media went out.
        assert_eq!(packets, sent_before);
        assert!(*octets > *packets);
        // Due each second; the one at 3 s on time, the late wake-up's shows how late it was.
        assert!(*at >= start + ms(1000 * (k as u64 + 1)), "{k}: {:?}", *at - start);
        if k == 1 {
            assert!(*behind >= ms(200) && *behind <= ms(300), "{behind:?}");
        } else {
            assert_eq!(*behind, Duration::ZERO);
        }
    }
    // TEARDOWN: the last report, with everything sent, then Closed.
    h.request(start + ms(3600), "TEARDOWN", URL, &[]);
    let d = h.give(start + ms(3600), ServerInput::Eof);
    let n = d.events.len();
    assert!(n >= 2, "{:?}", d.events);
    assert!(
        matches!(&d.events[n - 2], ServerEvent::Progress { packets: p, last: true, .. } if *p == packets as u64),
        "{:?} (sent {packets})",
        d.events
    );
    assert!(matches!(d.events[n - 1], ServerEvent::Closed { .. }));
}

#[test]
fn no_progress_by_default() {
    let source = Arc::new(synthetic_source());
    let mut h = Harness::new();
    let start = h.t0;
    let d = h.play(start, &source, "?play_count=0");
    let all = follow(&mut h, d, start + ms(12_000));
    assert!(all
        .iter()
        .all(|(_, d)| !d.events.iter().any(|e| matches!(e, ServerEvent::Progress { .. }))));
    let d = h.request(start + ms(12_100), "TEARDOWN", URL, &[]);
    assert!(!d.events.iter().any(|e| matches!(e, ServerEvent::Progress { .. })));
}

// ---------------------------------------------------------------------------
// Live paths: a publisher (ANNOUNCE, SETUP mode=record, RECORD) and a reader

mod live_paths {
    use super::*;

    const LIVE: &str = "rtsp://127.0.0.1:8554/live";
    /// What FFmpeg 5.1 announces for an MP4 with H.264 and AAC (`-c copy -f rtsp`).
    const FFMPEG_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        a=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkAoEf+yA==,aM48gA==; profile-level-id=42C01E\r\n\
        a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
        a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1210\r\n\
        a=control:streamid=1\r\n";

    fn publishing(paths: &[&str]) -> Harness {
        Harness::with(
            ServerConfig {
                publish: paths.iter().map(|p| p.to_string()).collect(),
                ..config()
            },
            0,
        )
    }

    fn announce(h: &mut Harness, at: Instant, uri: &str, content_type: &str, body: &str) -> Drained {
        h.cseq += 1;
        let text = format!(
            "ANNOUNCE {uri} RTSP/1.0\r\nCSeq: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            h.cseq,
            body.len()
        );
        h.input(at, text.as_bytes())
    }

    fn frame(channel: u8, packet: &[u8]) -> Vec<u8> {
        let mut v = vec![b'$', channel];
        v.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        v.extend_from_slice(packet);
        v
    }

    fn rtp_bytes(seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn packet(seq: u16, ts: u32, marker: bool, payload: &'static [u8]) -> RtpPacket {
        RtpPacket::parse(Bytes::from(rtp_bytes(seq, ts, 0xabcd, marker, payload))).unwrap()
    }

    #[test]
    fn a_publisher_announces_sets_up_records_and_its_rtp_is_passed_on() {
        let mut h = publishing(&["live"]);
        let t = h.t0;
        let d = h.request(t, "OPTIONS", LIVE, &[]);
        assert_eq!(
            d.response().headers.get("Public"),
            Some(&*format!("{PUBLIC}, ANNOUNCE, RECORD"))
        );
        let d = announce(&mut h, t, LIVE, "application/sdp", FFMPEG_SDP);
        assert_eq!(d.status(), 200, "{d:#?}");
        assert_eq!(d.announces.len(), 1);
        assert_eq!(d.announces[0].0, "live");
        assert_eq!(d.announces[0].1.tracks.len(), 2);
        let d = h.request(
            t,
            "SETUP",
            &format!("{LIVE}/streamid=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")],
        );
        assert_eq!(d.status(), 200);
        assert_eq!(
            d.response().headers.get("Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
        );
        let session = d.response().headers.get("Session").unwrap().to_owned();
        assert!(session.ends_with(";timeout=60"), "{session}");
        h.session = Some(session.split(';').next().unwrap().to_owned());
        let d = h.request(
            t,
            "SETUP",
            &format!("{LIVE}/streamid=1"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3;mode=\"RECORD\"")],
        );
        assert_eq!(d.status(), 200);
        // Before RECORD nothing is passed on.
        let d = h.input(t, &frame(0, &rtp_bytes(1, 0, 7, false, &[0x67, 1])));
        assert!(d.published.is_empty());
        let d = h.request(t, "RECORD", LIVE, &[("Range", "npt=0.000-")]);
        assert_eq!(d.status(), 200);
        assert!(d.events.iter().any(|e| matches!(e,
            ServerEvent::Publishing { path, tracks: 2, skipped, .. } if path == "live" && skipped.is_empty())));
        let mut bytes = frame(0, &rtp_bytes(2, 3600, 7, true, &[0x65, 1, 2]));
        bytes.extend(frame(
            1,
            &[
                0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ));
        bytes.extend(frame(2, &rtp_bytes(9, 1024, 8, true, &[0, 16, 5, 0, 1])));
        bytes.extend(frame(2, &[0x80])); // not RTP: dropped
        let d = h.input(h.at(40), &bytes);
        let got: Vec<(usize, u16)> = d.published.iter().map(|(t, p)| (*t, p.sequence_number)).collect();
        assert_eq!(got, vec![(0, 2), (2 - 1, 9)]);
        // The publisher's media keeps its session alive.
        let d = h.timeout(h.at(59_000));
        assert!(!d.closed);
        let d = h.input(h.at(59_000), &frame(0, &rtp_bytes(3, 7200, 7, true, &[0x41, 1])));
        assert_eq!(d.published.len(), 1);
        assert!(!h.timeout(h.at(118_000)).closed);
        // Its keepalive and TEARDOWN name its session.
        assert_eq!(h.request(h.at(118_000), "GET_PARAMETER", LIVE, &[]).status(), 200);
        let d = h.request(h.at(118_500), "TEARDOWN", LIVE, &[]);
        assert_eq!(d.status(), 200);
        assert!(d.closed, "a publisher's TEARDOWN ends its path at once");
    }

    #[test]
    fn publishing_refusals() {
        // Publishing off: 405 as before, without ANNOUNCE in Allow.
        let mut h = Harness::new();
        let t = h.t0;
        let d = announce(&mut h, t, LIVE, "application/sdp", FFMPEG_SDP);
        assert_eq!(d.status(), 405);
        assert_eq!(d.response().headers.get("Allow"), Some(PUBLIC));
        let mut h = publishing(&["live"]);
        let t = h.t0;
        assert_eq!(
            announce(&mut h, t, "rtsp://127.0.0.1:8554/other", "application/sdp", FFMPEG_SDP).status(),
            403
        );
        assert_eq!(announce(&mut h, t, LIVE, "text/plain", FFMPEG_SDP).status(), 415);
        let d = announce(&mut h, t, LIVE, "application/sdp", "not sdp");
        assert_eq!(d.status(), 400);
        let only_pcmu = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(announce(&mut h, t, LIVE, "application/sdp", only_pcmu).status(), 415);
        assert_eq!(h.request(t, "RECORD", LIVE, &[]).status(), 455);
        h.busy.push("live".into());
        assert_eq!(announce(&mut h, t, LIVE, "application/sdp", FFMPEG_SDP).status(), 455);
        h.busy.clear();
        assert_eq!(announce(&mut h, t, LIVE, "application/sdp", FFMPEG_SDP).status(), 200);
        let setup = |h: &mut Harness, uri: &str, transport: &str| {
            h.request(t, "SETUP", uri, &[("Transport", transport)]).status()
        };
        let track0 = format!("{LIVE}/streamid=0");
        assert_eq!(
            setup(&mut h, &track0, "RTP/AVP;unicast;client_port=5000-5001;mode=record"),
            461
        );
        assert_eq!(setup(&mut h, &track0, "RTP/AVP/TCP;unicast;interleaved=0-1"), 455);
        assert_eq!(
            setup(
                &mut h,
                &format!("{LIVE}/streamid=7"),
                "RTP/AVP/TCP;interleaved=0-1;mode=record"
            ),
            404
        );
        assert_eq!(setup(&mut h, &track0, "RTP/AVP/TCP;interleaved=0-1;mode=record"), 200);
        assert_eq!(
            setup(
                &mut h,
                &format!("{LIVE}/streamid=1"),
                "RTP/AVP/TCP;interleaved=1-2;mode=record"
            ),
            461
        );
        // A publisher does not play.
        assert_eq!(h.request(t, "PLAY", LIVE, &[]).status(), 455);
        // Any path with `*`.
        let mut h = publishing(&["*"]);
        assert_eq!(
            announce(&mut h, t, "rtsp://127.0.0.1:8554/a/b", "application/sdp", FFMPEG_SDP).status(),
            200
        );
    }

    /// A reader of `live` set up on both tracks (0-1, 2-3) and playing.
    fn reader() -> (Harness, Drained) {
        let mut h = Harness::new();
        let t = h.t0;
        let source = crate::server::live::announced_source(FFMPEG_SDP.as_bytes())
            .unwrap()
            .source;
        let d = h.request(t, "DESCRIBE", LIVE, &[]);
        let token = d.lookups[0].0;
        assert_eq!(d.lookups[0].1, "live");
        let d = h.give(t, ServerInput::LiveFound { token, source });
        assert_eq!(d.status(), 200);
        let sdp = Sdp::parse(&d.response().body).unwrap();
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.attribute("range"), Some("npt=0-"));
        assert_eq!(sdp.media[0].h264().unwrap().unwrap().sps, vec![Bytes::from_static(SPS)]);
        assert_eq!(
            h.request(
                t,
                "SETUP",
                &format!("{LIVE}/trackID=0"),
                &[("Transport", "RTP/AVP/TCP;interleaved=0-1")]
            )
            .status(),
            200
        );
        let d = h.request(
            t,
            "SETUP",
            &format!("{LIVE}/trackID=1"),
            &[("Transport", "RTP/AVP/TCP;interleaved=2-3")],
        );
        h.session = Some(
            d.response()
                .headers
                .get("Session")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned(),
        );
        let d = h.request(t, "PLAY", LIVE, &[]);
        assert_eq!(d.status(), 200);
        assert_eq!(d.read_live, vec!["live".to_owned()]);
        (h, d)
    }

    #[test]
    fn a_reader_gets_the_packets_restamped_from_a_keyframe_then_the_end() {
        let (mut h, d) = reader();
        let info = rtp_info(d.response());
        assert_eq!(d.response().headers.get("Range"), Some("npt=0.000-"));
        assert!(d
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::SessionStarted { tracks: 2, .. })));
        // A P-frame first: a reader starts at a keyframe.
        let d = h.give(
            h.at(10),
            ServerInput::LivePacket {
                track: 0,
                packet: &packet(500, 90_000, true, &[0x41, 1]),
            },
        );
        assert!(d.frames.is_empty());
        assert_eq!(
            h.conn.live_forwarded(),
            0,
            "a packet waiting for a keyframe is not passed on"
        );
        let d = h.give(
            h.at(20),
            ServerInput::LivePacket {
                track: 0,
                packet: &packet(501, 93_600, false, &[0x67, 1]),
            },
        );
        let sent = d.rtp(0);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].sequence_number, info[0].1,
            "RTP-Info's seq is the first packet's"
        );
        assert_eq!(h.conn.live_forwarded(), 1);
        assert!(!sent[0].marker);
        let base = sent[0].timestamp;
        let ssrc = sent[0].ssrc;
        assert_ne!(ssrc, 0xabcd);
        // A lost packet (502) stays a gap; the marker is passed on.
        let d = h.give(
            h.at(60),
            ServerInput::LivePacket {
                track: 0,
                packet: &packet(503, 97_200, true, &[0x41, 2]),
            },
        );
        let sent = d.rtp(0);
        assert_eq!(sent[0].sequence_number, info[0].1.wrapping_add(2));
        assert_eq!(sent[0].timestamp, base.wrapping_add(3600));
        assert!(sent[0].marker);
        assert_eq!(sent[0].ssrc, ssrc);
        // Audio needs no keyframe.
        let d = h.give(
            h.at(61),
            ServerInput::LivePacket {
                track: 1,
                packet: &packet(9, 1024, true, &[0, 16, 1, 1]),
            },
        );
        assert_eq!(d.rtp(2).len(), 1);
        assert_eq!(d.rtp(2)[0].sequence_number, info[1].1);
        // Sender reports on the interval, from the last packet's timestamp.
        let d = h.timeout(h.at(10_020));
        let reports = d.rtcp(1);
        assert!(matches!(&reports[0][0], RtcpPacket::SenderReport(sr)
            if sr.ssrc == ssrc && sr.packet_count == 2 && sr.rtp_timestamp == base.wrapping_add(3600 + 90_000 * 9960 / 1000)));
        // PAUSE: nothing passed on; PLAY again: from the next keyframe.
        assert_eq!(h.request(h.at(10_100), "PAUSE", LIVE, &[]).status(), 200);
        let d = h.give(
            h.at(10_110),
            ServerInput::LivePacket {
                track: 1,
                packet: &packet(10, 2048, true, &[0, 16, 1, 1]),
            },
        );
        assert!(d.frames.is_empty());
        assert_eq!(h.request(h.at(10_200), "PLAY", LIVE, &[]).status(), 200);
        let d = h.give(
            h.at(10_210),
            ServerInput::LivePacket {
                track: 0,
                packet: &packet(600, 200_000, true, &[0x41, 1]),
            },
        );
        assert!(d.frames.is_empty());
        let d = h.give(
            h.at(10_220),
            ServerInput::LivePacket {
                track: 0,
                packet: &packet(601, 203_600, true, &[0x65, 1]),
            },
        );
        let sent = d.rtp(0);
        assert_eq!(sent[0].sequence_number, info[0].1.wrapping_add(3), "numbering goes on");
        // The publisher leaves: SR + BYE on both tracks, then the linger.
        let d = h.give(h.at(11_000), ServerInput::LiveEnded);
        for channel in [1, 3] {
            let rtcp = d.rtcp(channel);
            assert!(rtcp[0].iter().any(|p| matches!(p, RtcpPacket::Bye(_))), "{rtcp:?}");
        }
        assert!(d
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::PlaybackEnded { packets: 4, .. })));
        assert_eq!(h.request(h.at(11_100), "PLAY", LIVE, &[]).status(), 455);
        let d = h.timeout(h.at(21_200));
        assert!(d.closed);
        assert!(d.events.iter().any(|e| matches!(
            e,
            ServerEvent::Closed {
                reason: CloseReason::PlaybackEnded,
                ..
            }
        )));
    }

    #[test]
    fn a_live_reader_may_be_a_multicast_member_and_slow_readers_close_with_their_reason() {
        let mut h = Harness::new();
        let t = h.t0;
        let source = crate::server::live::announced_source(FFMPEG_SDP.as_bytes())
            .unwrap()
            .source;
        let d = h.request(t, "DESCRIBE", LIVE, &[]);
        h.give(
            t,
            ServerInput::LiveFound {
                token: d.lookups[0].0,
                source,
            },
        );
        let d = h.request(
            t,
            "SETUP",
            &format!("{LIVE}/trackID=0"),
            &[("Transport", "RTP/AVP;multicast")],
        );
        assert_eq!(d.status(), 200, "the path's multicast stream joined");
        assert!(matches!(d.multicast[..], [MulticastRequest::Join { .. }]));
        h.session = Some(
            d.response()
                .headers
                .get("Session")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned(),
        );
        // Its PLAY is a member's (the stream passes the packets on), not a unicast reader's.
        let d = h.request(t, "PLAY", LIVE, &[]);
        assert_eq!(d.status(), 200);
        assert!(d.read_live.is_empty());
        assert!(matches!(d.multicast[..], [MulticastRequest::Play { .. }]));
        let (mut h, _) = reader();
        let d = h.give(h.at(5), ServerInput::Abort(CloseReason::SlowReader));
        assert!(d.closed);
        assert!(d.events.iter().any(|e| matches!(
            e,
            ServerEvent::Closed {
                reason: CloseReason::SlowReader,
                ..
            }
        )));
    }
}

#[test]
fn a_live_paths_multicast_stream_passes_the_packets_on_from_a_keyframe_and_ends_with_the_path() {
    let source = crate::server::live::announced_source(
        b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
          a=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n",
    )
    .unwrap()
    .source;
    let config = config();
    let t0 = Instant::now();
    let mut m = MulticastStream::new(&config, t0, "live".into(), PlayCount::ONCE, source, GROUP, 5, 0).live();
    let packet = |seq: u16, ts: u32, payload: &[u8]| {
        let mut v = vec![0x80, 96];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 9]);
        v.extend_from_slice(payload);
        RtpPacket::parse(Bytes::from(v)).unwrap()
    };
    m.handle_input(t0, MulticastInput::Join(1));
    // Before PLAY nothing is sent.
    m.handle_input(
        t0,
        MulticastInput::LivePacket {
            track: 0,
            packet: &packet(1, 0, &[0x65, 1]),
        },
    );
    assert!(drain_stream(&mut m).0.is_empty());
    m.handle_input(t0, MulticastInput::Play(1));
    let (_, events, _) = drain_stream(&mut m);
    assert!(matches!(&events[..], [ServerEvent::MulticastStarted { .. }]));
    let position = m.position(t0).unwrap();
    assert_eq!(position.end, None, "a live stream has no end");
    let (seq, ts) = position.tracks[0].unwrap();
    // A P-frame waits; the keyframe and what follows go to the group, re-stamped.
    m.handle_input(
        t0 + ms(10),
        MulticastInput::LivePacket {
            track: 0,
            packet: &packet(2, 3600, &[0x41, 1]),
        },
    );
    assert!(drain_stream(&mut m).0.is_empty());
    m.handle_input(
        t0 + ms(50),
        MulticastInput::LivePacket {
            track: 0,
            packet: &packet(3, 7200, &[0x65, 1]),
        },
    );
    m.handle_input(
        t0 + ms(90),
        MulticastInput::LivePacket {
            track: 0,
            packet: &packet(4, 10_800, &[0x41, 1]),
        },
    );
    let (d, _, _) = drain_stream(&mut m);
    let sent: Vec<RtpPacket> = d
        .iter()
        .map(|(_, _, data)| RtpPacket::parse(data.clone()).unwrap())
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(d
        .iter()
        .all(|(rtcp, to, _)| !rtcp && to.ip() == std::net::IpAddr::V4(GROUP)));
    assert_eq!((sent[0].sequence_number, sent[0].timestamp), (seq, ts));
    assert_eq!(
        (sent[1].sequence_number, sent[1].timestamp),
        (seq.wrapping_add(1), ts.wrapping_add(3600))
    );
    // The path ends: SR + BYE, and the stream is over.
    m.handle_input(t0 + ms(200), MulticastInput::LiveEnded);
    let (d, events, next) = drain_stream(&mut m);
    assert!(d.iter().any(|(rtcp, _, data)| *rtcp
        && rtcp::parse_compound(data)
            .unwrap()
            .iter()
            .any(|p| matches!(p, RtcpPacket::Bye(_)))));
    assert!(next.is_none() && m.is_done());
    assert!(matches!(&events[..], [ServerEvent::MulticastEnded { packets: 2, .. }]));
}
