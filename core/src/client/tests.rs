//! Scripted-server tests of the client machine: exact requests, exact timings.

use super::*;
use crate::error::ProtocolError;
use crate::message::parse_interleaved;
use crate::message::Decoder;
use crate::message::Limits;
use crate::sdp::MediaKind;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:stream=0\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\na=control:stream=1\r\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Harness {
    c: Client,
    t0: Instant,
    requests: Vec<Request>,
    events: Vec<Event>,
    deadline: Option<Instant>,
    done: bool,
    /// Interleaved frames the client sent (its RTCP), by channel.
    interleaved: Vec<(u8, Bytes)>,
    datagrams: Vec<(UdpSocketId, SocketAddr, Bytes)>,
    opens: Vec<UdpRequest>,
    reconnects: usize,
}

impl Harness {
    fn new(url: &str, opts: ClientOptions) -> Harness {
        let t0 = Instant::now();
        let c = Client::new(url, opts, t0).unwrap();
        let mut h = Harness {
            c,
            t0,
            requests: vec![],
            events: vec![],
            deadline: None,
            done: false,
            interleaved: vec![],
            datagrams: vec![],
            opens: vec![],
            reconnects: 0,
        };
        h.drain();
        h
    }

    fn at(&self, n: u64) -> Instant {
        self.t0 + ms(n)
    }

    fn drain(&mut self) {
        let mut dec = Decoder::new(Limits::default());
        loop {
            match self.c.poll_output() {
                Output::Transmit(b) => {
                    dec.extend(&b);
                    while let Some(m) = dec.decode().unwrap() {
                        match m {
                            Message::Request(r) => self.requests.push(r),
                            Message::Response(_) => {}
                            Message::Interleaved { channel, payload } => self.interleaved.push((channel, payload)),
                        }
                    }
                }
                Output::Event(e) => self.events.push(e),
                Output::SendDatagram { socket, to, data } => self.datagrams.push((socket, to, data)),
                Output::OpenUdp(r) => self.opens.push(r),
                Output::Reconnect => self.reconnects += 1,
                Output::Timeout(at) => {
                    self.deadline = Some(at);
                    break;
                }
                Output::Done => {
                    self.done = true;
                    self.deadline = None;
                    break;
                }
            }
        }
    }

    fn connect(&mut self, at_ms: u64) {
        self.c.handle_input(
            self.at(at_ms),
            Input::Connected {
                local: "127.0.0.1:40000".parse().unwrap(),
                peer: "127.0.0.1:8554".parse().unwrap(),
            },
        );
        self.drain();
    }

    fn input(&mut self, at_ms: u64, data: &[u8]) {
        self.c.handle_input(self.at(at_ms), Input::Data(data));
        self.drain();
    }

    fn timeout(&mut self, at_ms: u64) {
        self.c.handle_input(self.at(at_ms), Input::Timeout);
        self.drain();
    }

    fn last_request(&self) -> &Request {
        self.requests.last().expect("a request")
    }

    fn reply(&mut self, at_ms: u64, status: &str, headers: &str, body: &str) {
        let cseq = self.last_request().headers.cseq().unwrap();
        let cl = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let msg = format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}{cl}\r\n{body}");
        self.input(at_ms, msg.as_bytes());
    }

    fn method_events(&self) -> Vec<&MethodEvent> {
        self.events
            .iter()
            .filter_map(|e| {
                if let Event::Method(m) = e {
                    Some(m.as_ref())
                } else {
                    None
                }
            })
            .collect()
    }

    fn closed(&self) -> Option<&ClosedEvent> {
        self.events
            .iter()
            .find_map(|e| if let Event::Closed(c) = e { Some(c) } else { None })
    }

    /// OPTIONS, DESCRIBE, SETUP x2, PLAY answered; playing from `t0+50ms`.
    fn play(&mut self, public: &str) {
        self.connect(5);
        self.reply(10, "200 OK", &format!("Public: {public}\r\n"), "");
        self.reply(
            20,
            "200 OK",
            "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\nContent-Type: application/sdp\r\n",
            SDP,
        );
        self.reply(
            30,
            "200 OK",
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1\r\nSession: abc;timeout=10\r\n",
            "",
        );
        self.reply(
            40,
            "200 OK",
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nSession: abc;timeout=10\r\n",
            "",
        );
        self.reply(50, "200 OK", "RTP-Info: url=x;seq=1;rtptime=0\r\nSession: abc\r\n", "");
    }
}

fn rtp(channel: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    let mut out = vec![b'$', channel];
    out.extend_from_slice(&(p.len() as u16).to_be_bytes());
    out.extend_from_slice(&p);
    out
}

fn bye(channel: u8) -> Vec<u8> {
    let p = [0x81u8, 203, 0, 1, 0x12, 0x34, 0x56, 0x78];
    let mut out = vec![b'$', channel, 0, p.len() as u8];
    out.extend_from_slice(&p);
    out
}

#[test]
fn full_session_exact_requests_and_timings() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4?play_count=2", ClientOptions::default());
    assert_eq!(h.requests.len(), 0, "nothing sent before connect");
    assert_eq!(h.deadline, Some(h.at(4000)), "connect deadline");
    h.play("OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN");

    let lines: Vec<String> = h.requests.iter().map(|r| format!("{} {}", r.method, r.uri)).collect();
    assert_eq!(
        lines,
        [
            "OPTIONS rtsp://127.0.0.1:8554/a.mp4?play_count=2",
            "DESCRIBE rtsp://127.0.0.1:8554/a.mp4?play_count=2",
            "SETUP rtsp://127.0.0.1:8554/a.mp4/stream=0",
            "SETUP rtsp://127.0.0.1:8554/a.mp4/stream=1",
            "PLAY rtsp://127.0.0.1:8554/a.mp4/",
        ]
    );
    let cseqs: Vec<u32> = h.requests.iter().map(|r| r.headers.cseq().unwrap()).collect();
    assert_eq!(cseqs, [1, 2, 3, 4, 5]);
    assert_eq!(h.requests[1].headers.get("Accept"), Some("application/sdp"));
    assert_eq!(
        h.requests[2].headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    assert_eq!(h.requests[2].headers.get("Session"), None);
    assert_eq!(
        h.requests[3].headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=2-3")
    );
    assert_eq!(h.requests[3].headers.get("Session"), Some("abc"));
    assert_eq!(h.requests[4].headers.get("Range"), Some("npt=0.000-"));
    assert!(h
        .requests
        .iter()
        .all(|r| r.headers.get("User-Agent").unwrap().starts_with("rtsp-toolkit/")));

    let Event::Connect(c) = &h.events[0] else {
        panic!("{:?}", h.events[0])
    };
    assert_eq!(c.elapsed, ms(5));
    assert_eq!(c.target, "127.0.0.1:8554");
    let m = h.method_events();
    let timing: Vec<(&str, u16, Duration, Duration)> = m
        .iter()
        .map(|e| (e.method.as_str(), e.status, e.elapsed, e.session_elapsed))
        .collect();
    assert_eq!(
        timing,
        [
            ("OPTIONS", 200, ms(5), ms(10)),
            ("DESCRIBE", 200, ms(10), ms(20)),
            ("SETUP", 200, ms(10), ms(30)),
            ("SETUP", 200, ms(10), ms(40)),
            ("PLAY", 200, ms(10), ms(50)),
        ]
    );
    let sdp = m[1].sdp.as_ref().expect("DESCRIBE carries the SDP");
    assert_eq!(sdp.media.len(), 2);
    let t0 = m[2].track.as_ref().unwrap();
    assert_eq!((t0.index, t0.codec.as_str(), t0.clock_rate), (0, "H264", 90000));
    assert_eq!(
        t0.transport,
        TransportKind::TcpInterleaved {
            rtp_channel: 0,
            rtcp_channel: 1
        }
    );
    let t1 = m[3].track.as_ref().unwrap();
    assert_eq!((t1.index, t1.kind.clone(), t1.channels), (1, MediaKind::Audio, Some(2)));
    assert_eq!(h.c.tracks().len(), 2);

    // Media: RTP on both tracks, with exact receive ticks.
    let mut data = rtp(0, 7, 9000, true, b"\x65abc");
    data.extend(rtp(2, 9, 1024, true, b"aac"));
    h.input(70, &data);
    let rtps: Vec<&RtpEvent> = h
        .events
        .iter()
        .filter_map(|e| if let Event::Rtp(r) = e { Some(r) } else { None })
        .collect();
    assert_eq!(rtps.len(), 2);
    assert_eq!(
        (rtps[0].track, rtps[0].packet.sequence_number, rtps[0].packet.timestamp),
        (0, 7, 9000)
    );
    assert_eq!(&rtps[0].packet.payload[..], b"\x65abc");
    assert_eq!(rtps[0].recv_tick, ms(70));
    assert_eq!((rtps[1].track, rtps[1].channel), (1, 2));

    // Stop: TEARDOWN on the aggregate URL with the session, then Closed without error.
    h.c.handle_input(h.at(100), Input::Close);
    h.drain();
    let td = h.last_request();
    assert_eq!(
        (td.method.clone(), td.uri.as_str()),
        (Method::Teardown, "rtsp://127.0.0.1:8554/a.mp4/")
    );
    assert_eq!(td.headers.get("Session"), Some("abc"));
    assert!(!h.done);
    h.reply(103, "200 OK", "Session: abc\r\n", "");
    let last = h
        .method_events()
        .last()
        .map(|e| (e.method.clone(), e.elapsed, e.session_elapsed))
        .unwrap();
    assert_eq!(last, (Method::Teardown, ms(3), ms(103)));
    assert_eq!(
        h.events.last(),
        Some(&Event::Closed(ClosedEvent {
            session_elapsed: ms(103),
            error: None
        }))
    );
    assert!(h.done);
}

#[test]
fn keepalive_uses_get_parameter_then_falls_back_to_options() {
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.mp4",
        ClientOptions {
            timeout: Duration::from_secs(20),
            // Only the keepalive's deadlines here (reports have their tests).
            rtcp_reports: false,
            ..Default::default()
        },
    );
    h.play("OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN");
    // Session timeout 10 s: keepalive every 5 s after PLAY.
    assert_eq!(h.deadline, Some(h.at(5050)));
    h.input(3000, &rtp(0, 1, 0, true, b"x"));
    h.timeout(5050);
    assert_eq!(h.last_request().method, Method::GetParameter);
    assert_eq!(h.last_request().uri, "rtsp://127.0.0.1:8554/a.mp4/");
    assert_eq!(h.last_request().headers.get("Session"), Some("abc"));
    h.reply(5060, "405 Method Not Allowed", "", "");
    assert!(h.closed().is_none());
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Warning(Warning::KeepaliveFailed {
            status: 405,
            fallback: Some(Method::Options),
            ..
        })
    )));
    assert_eq!(h.last_request().method, Method::Options, "fallback sent at once");
    h.reply(5070, "200 OK", "", "");
    assert_eq!(h.deadline, Some(h.at(10070)));
    h.timeout(10070);
    assert_eq!(h.last_request().method, Method::Options);
    assert!(h.closed().is_none());
}

#[test]
fn keepalive_is_options_when_public_lacks_get_parameter() {
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.mp4",
        ClientOptions {
            timeout: Duration::from_secs(20),
            ..Default::default()
        },
    );
    h.play("OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN");
    h.timeout(5050);
    assert_eq!(h.last_request().method, Method::Options);
    assert_eq!(h.last_request().uri, "rtsp://127.0.0.1:8554/a.mp4");
}

#[test]
fn keepalive_response_with_wrong_cseq_is_tolerated() {
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.mp4",
        ClientOptions {
            timeout: Duration::from_secs(20),
            ..Default::default()
        },
    );
    h.play("GET_PARAMETER");
    h.timeout(5050);
    h.input(5060, b"RTSP/1.0 200 OK\r\nCSeq: 999\r\n\r\n");
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Warning(Warning::CseqMismatch {
            expected: 6,
            got: Some(999),
            ..
        })
    )));
    h.input(5070, b"RTSP/1.0 200 OK\r\n\r\n");
    assert!(h.closed().is_none());
}

#[test]
fn basic_auth_retry_with_percent_decoded_credentials() {
    let mut h = Harness::new("rtsp://alice:s3cr%40t@127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    assert_eq!(
        h.last_request().uri,
        "rtsp://127.0.0.1:8554/a.mp4",
        "no credentials in the Request-URI"
    );
    assert_eq!(h.c.url(), "rtsp://127.0.0.1:8554/a.mp4");
    h.reply(2, "200 OK", "", "");
    h.reply(
        3,
        "401 Unauthorized",
        "WWW-Authenticate: Basic realm=\"GStreamer RTSP Server\"\r\n",
        "",
    );
    let retry = h.last_request().clone();
    assert_eq!(retry.method, Method::Describe);
    assert_eq!(retry.headers.cseq(), Some(3));
    // base64("alice:s3cr@t")
    assert_eq!(retry.headers.get("Authorization"), Some("Basic YWxpY2U6czNjckB0"));
    h.reply(9, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\n", SDP);
    let m = h.method_events();
    assert_eq!(m.iter().map(|e| e.status).collect::<Vec<_>>(), [200, 401, 200]);
    assert_eq!((m[1].elapsed, m[2].elapsed), (ms(1), ms(6)));
    // Later requests keep authenticating.
    assert!(h.last_request().headers.get("Authorization").is_some());
    assert_eq!(h.last_request().method, Method::Setup);
}

#[test]
fn digest_auth_retry() {
    let mut h = Harness::new("rtsp://bob:p%3Aa%40ss@127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(
        3,
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"GStreamer RTSP Server\", nonce=\"abc123\"\r\n",
        "",
    );
    let auth = h.last_request().headers.get("Authorization").unwrap().to_owned();
    assert!(auth.starts_with("Digest "), "{auth}");
    assert!(auth.contains("username=\"bob\""));
    assert!(auth.contains("uri=\"rtsp://127.0.0.1:8554/a.mp4\""));
    assert!(!auth.contains("p:a@ss"));
}

#[test]
fn second_401_is_a_response_error_not_a_loop() {
    let mut h = Harness::new("rtsp://alice:wrong@127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"r\"\r\n", "");
    h.reply(4, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"r\"\r\n", "");
    assert_eq!(h.requests.len(), 3);
    let closed = h.closed().unwrap();
    assert!(
        matches!(
            &closed.error,
            Some(Error::Response {
                method: Method::Describe,
                status: 401,
                ..
            })
        ),
        "{closed:?}"
    );
    assert!(h.done);
    let msg = closed.error.as_ref().unwrap().to_string();
    assert!(!msg.contains("wrong"), "{msg}");
}

#[test]
fn unauthorized_without_credentials_is_a_response_error() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"r\"\r\n", "");
    assert!(matches!(
        h.closed().unwrap().error,
        Some(Error::Response { status: 401, .. })
    ));
}

#[test]
fn describe_404_is_a_response_error() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/nope.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "501 Not Implemented", "", ""); // OPTIONS refused: tolerated
    h.reply(3, "404 Not Found", "", "");
    let e = h.closed().unwrap().error.clone().unwrap();
    assert_eq!(
        e,
        Error::Response {
            method: Method::Describe,
            status: 404,
            reason: "Not Found".into()
        }
    );
    assert_eq!(e.to_string(), "DESCRIBE failed: 404 Not Found");
}

#[test]
fn timeouts_per_phase() {
    // Connect.
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a", ClientOptions::default());
    h.timeout(3999);
    assert!(h.closed().is_none());
    h.timeout(4000);
    let c = h.closed().unwrap();
    assert_eq!(c.session_elapsed, ms(4000));
    assert!(matches!(&c.error, Some(Error::Timeout { waiting_for, .. }) if waiting_for.contains("connection")));

    // A response.
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a", ClientOptions::default());
    h.connect(10);
    assert_eq!(h.deadline, Some(h.at(4010)));
    h.timeout(4010);
    assert!(
        matches!(&h.closed().unwrap().error, Some(Error::Timeout { waiting_for, .. }) if waiting_for == "response to OPTIONS")
    );

    // Silence while playing (no receiver reports: only the keepalive's deadlines).
    let quiet = ClientOptions {
        rtcp_reports: false,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", quiet);
    h.play("");
    h.input(2000, &rtp(0, 1, 0, true, b"x"));
    assert_eq!(
        h.deadline,
        Some(h.at(5050)),
        "keepalive (session timeout 10 s / 2 after PLAY) comes first"
    );
    h.timeout(5050);
    assert_eq!(h.last_request().method, Method::Options);
    h.reply(5060, "200 OK", "", "");
    assert_eq!(h.deadline, Some(h.at(9060)), "silence deadline: last data + 4 s");
    h.timeout(9059);
    assert!(h.closed().is_none());
    h.timeout(9060);
    let c = h.closed().unwrap();
    assert!(
        matches!(&c.error, Some(Error::Timeout { waiting_for, .. }) if waiting_for.contains("while playing")),
        "{c:?}"
    );
    assert_eq!(c.session_elapsed, ms(9060));
}

#[test]
fn connect_failure_gives_connect_event_and_connection_error() {
    let mut h = Harness::new("rtsp://127.0.0.1:1/a", ClientOptions::default());
    let refused = std::io::Error::from_raw_os_error(111);
    let reason = "Connection refused (os error 111)";
    h.c.handle_input(h.at(2), Input::ConnectFailed(IoFailure::from_io(&refused, reason)));
    h.drain();
    let Event::Connect(c) = &h.events[0] else { panic!() };
    assert!(c.result.is_err());
    assert_eq!(c.elapsed, ms(2));
    assert!(
        matches!(&h.closed().unwrap().error, Some(Error::Connection(m)) if m.message().contains("refused") && m.message().contains("127.0.0.1:1"))
    );
    // The io::Error is kept: its kind, and as the error's source.
    let Some(Error::Connection(e)) = &h.closed().unwrap().error else {
        panic!()
    };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(e.io_error().unwrap().raw_os_error(), Some(111));
    let error = h.closed().unwrap().error.clone().unwrap();
    let source = std::error::Error::source(&error).unwrap();
    assert_eq!(
        source.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert_eq!(
        error.to_string(),
        "connection error: cannot connect to 127.0.0.1:1: Connection refused (os error 111)"
    );
    assert!(h.done);
}

#[test]
fn eof_while_playing_is_a_connection_error_but_after_bye_is_clean() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    h.c.handle_input(h.at(60), Input::Eof);
    h.drain();
    assert!(
        matches!(&h.closed().unwrap().error, Some(Error::Connection(m)) if m.message().contains("while playing") && m.kind() == std::io::ErrorKind::UnexpectedEof)
    );

    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    let mut d = bye(1);
    d.extend(bye(3));
    h.input(60, &d);
    assert_eq!(h.events.iter().filter(|e| matches!(e, Event::Rtcp(_))).count(), 2);
    assert_eq!(
        h.last_request().method,
        Method::Teardown,
        "BYE on every track ends the session"
    );
    h.c.handle_input(h.at(61), Input::Eof);
    h.drain();
    assert_eq!(h.closed().unwrap().error, None);

    // BYE on one track only: the stream goes on.
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    h.input(60, &bye(1));
    assert_eq!(h.last_request().method, Method::Play);
    h.input(70, &bye(3));
    assert_eq!(h.last_request().method, Method::Teardown);
    h.reply(71, "200 OK", "", "");
    assert_eq!(h.closed().unwrap().error, None);
}

#[test]
fn unknown_channel_is_ignored_and_counted() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    let mut d = rtp(9, 1, 0, true, b"zz");
    d.extend(rtp(0, 2, 0, true, b"ok"));
    h.input(60, &d);
    assert_eq!(h.c.ignored_frames(), 1);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Warning(Warning::UnknownChannel { channel: 9, .. }))));
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Rtp(r) if r.packet.sequence_number == 2)));
}

/// Over TCP there is no reorder buffer: a packet sent twice, or one behind
/// the last, is dropped before it could repeat or break a frame, and counted.
#[test]
fn interleaved_copies_and_packets_behind_are_dropped_and_counted() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    // Video track 0 on channel 0: single NAL units, one frame each (marker set).
    let nal = |b: u8| [0x41, b, 1, 2, 3];
    let mut d = Vec::new();
    for (seq, ts) in [(1u16, 0u32), (2, 3000), (2, 3000), (3, 6000), (1, 0), (4, 9000)] {
        d.extend(rtp(0, seq, ts, true, &nal(seq as u8)));
    }
    h.input(60, &d);
    let seqs: Vec<u16> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Rtp(r) if r.track == 0 => Some(r.packet.sequence_number),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert!(!h.events.iter().any(|e| matches!(e, Event::Loss(_) | Event::Warning(_))));
    let s = h.c.track_stats()[0];
    assert_eq!((s.received, s.lost, s.duplicates, s.late), (4, 0, 1, 1));
}

/// A timestamp that jumps 10 s ahead, or 3 s back, between two packets
/// 40 ms apart is one `timestamp_jump` warning each; a stall (2 s without
/// packets, the timestamps 40 ms on) and a gap in sending (2 s of time, 2 s
/// of timestamps) are not; every frame is handed on.
#[test]
fn timestamp_jumps_are_warnings_and_stalls_and_gaps_are_not() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    // (arrival ms, RTP timestamp at 90 kHz: 3600 ticks are 40 ms)
    let packets = [
        (100u64, 0u32),
        (140, 3_600),
        (180, 3_600 * 2 + 900_000), // +10 s
        (220, 3_600 * 3 + 900_000),
        (2_220, 3_600 * 4 + 900_000),                     // a 2 s stall
        (4_220, 3_600 * 4 + 900_000 + 180_000),           // 2 s of time, 2 s of timestamps
        (4_260, 3_600 * 5 + 900_000 + 180_000 - 270_000), // -3 s
    ];
    for (i, (at, ts)) in packets.into_iter().enumerate() {
        h.input(at, &rtp(0, i as u16 + 1, ts, true, &[0x41, i as u8, 1, 2, 3]));
    }
    let warnings: Vec<&Warning> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(
        warnings,
        [
            &Warning::TimestampJump {
                track: 0,
                from: 3_600,
                to: 907_200,
                jump_ms: 10_040
            },
            &Warning::TimestampJump {
                track: 0,
                from: 1_094_400,
                to: 828_000,
                jump_ms: -2_960
            },
        ]
    );
    assert_eq!(warnings[0].kind(), "timestamp_jump");
    assert_eq!(
        h.events.iter().filter(|e| matches!(e, Event::Video(_))).count(),
        packets.len()
    );
}

/// A sender that never sets the marker bit: each access unit ends at the
/// next timestamp, and the last one at the sender's BYE.
#[test]
fn without_marker_bits_the_last_frame_ends_at_bye() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    let mut d = Vec::new();
    for seq in 1u16..=3 {
        d.extend(rtp(0, seq, u32::from(seq) * 3000, false, &[0x65, seq as u8, 1, 2]));
    }
    h.input(60, &d);
    let video = |h: &Harness| h.events.iter().filter(|e| matches!(e, Event::Video(_))).count();
    assert_eq!(video(&h), 2, "the third waits for its end");
    h.input(70, &bye(1));
    assert_eq!(video(&h), 3, "the BYE ends it");
    let last = h.events.iter().rev().find_map(|e| match e {
        Event::Video(v) => Some(v.frame.timestamp),
        _ => None,
    });
    assert_eq!(last, Some(9000));
}

#[test]
fn audio_only_and_video_only() {
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.mp4",
        ClientOptions {
            enable_video: false,
            ..Default::default()
        },
    );
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\n", SDP);
    assert_eq!(h.last_request().uri, "rtsp://127.0.0.1:8554/a.mp4/stream=1");
    assert_eq!(
        h.last_request().headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    h.reply(4, "200 OK", "Session: s\r\n", "");
    assert_eq!(h.last_request().method, Method::Play);

    let sdp_audio_only = "v=0\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=1\r\n";
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.wav",
        ClientOptions {
            enable_audio: false,
            ..Default::default()
        },
    );
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "200 OK", "", sdp_audio_only);
    let e = h.closed().unwrap().error.clone().unwrap();
    assert!(
        matches!(&e, Error::Protocol(ProtocolError::NoTracks(m)) if m.contains("audio")),
        "{e}"
    );

    assert!(matches!(
        Client::new(
            "rtsp://h/a",
            ClientOptions {
                enable_audio: false,
                enable_video: false,
                ..Default::default()
            },
            Instant::now()
        ),
        Err(Error::Config(_))
    ));
}

#[test]
fn bad_urls_are_config_errors() {
    for u in ["http://h/a", "not a url", "rtsp:///nohost"] {
        assert!(
            matches!(
                Client::new(u, ClientOptions::default(), Instant::now()),
                Err(Error::Config(_))
            ),
            "{u}"
        );
    }
}

#[test]
fn forward_address_changes_only_the_target() {
    let opts = ClientOptions {
        forward_address: Some("127.0.0.1:9000".into()),
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://camera.example:554/live", opts);
    assert_eq!(h.c.connect_target(), ("127.0.0.1".to_string(), 9000));
    h.connect(1);
    assert_eq!(h.last_request().uri, "rtsp://camera.example:554/live");
    assert_eq!(
        Client::new("rtsp://[::1]/x", ClientOptions::default(), Instant::now())
            .unwrap()
            .connect_target(),
        ("::1".to_string(), 554)
    );
}

#[test]
fn huge_content_length_is_a_prompt_protocol_error() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a", ClientOptions::default());
    h.connect(1);
    h.input(
        2,
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 1099511627776\r\n\r\n",
    );
    assert!(matches!(
        h.closed().unwrap().error,
        Some(Error::Protocol(ProtocolError::Framing(
            crate::message::FramingError::BodyTooLarge { .. }
        )))
    ));
    assert!(h.done);
}

#[test]
fn server_request_is_answered_501() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    h.input(60, b"SET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 77\r\n\r\n");
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Warning(Warning::ServerRequest { .. }))));
    assert!(h.closed().is_none());
}

#[test]
fn close_before_session_is_immediate() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.c.handle_input(h.at(2), Input::Close);
    h.drain();
    assert_eq!(h.closed().unwrap().error, None);
    assert!(h.done);
    assert_eq!(h.requests.len(), 1);
}

#[test]
fn teardown_unanswered_still_closes_cleanly() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play("");
    h.c.handle_input(h.at(100), Input::Close);
    h.drain();
    assert_eq!(h.deadline, Some(h.at(4100)));
    h.timeout(4100);
    assert_eq!(h.closed().unwrap().error, None);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Warning(Warning::TeardownUnanswered))));
}

/// A DESCRIBE answer whose `Content-Base` is not an absolute rtsp:// or
/// rtsps:// URL: SV3C cameras answer their own `192.168.1.10:554/stream0/`
/// without a scheme (moonfire-nvr#356, kerberos-io/agent#132), an Android
/// camera app `IP:PORT/` (mediamtx#6167). It is ignored with one warning
/// naming it, and the controls are resolved against the request URL (a
/// good `Content-Location` is taken before that, RFC 2326 §C.1.1); a host
/// name before the port would otherwise parse as a URL scheme.
#[test]
fn a_content_base_that_is_not_an_rtsp_url_is_ignored_with_a_warning() {
    // The request URL, with its query, is the aggregate control `*`.
    let request = "rtsp://127.0.0.1:8554/a.mp4?x=1";
    let request_setup = "rtsp://127.0.0.1:8554/a.mp4/stream=0";
    for (headers, bad, setup, play) in [
        (
            "Content-Base: 192.168.1.10:554/stream0/\r\n",
            "192.168.1.10:554/stream0/",
            request_setup,
            request,
        ),
        (
            "Content-Base: camera.local:554/stream0/\r\n",
            "camera.local:554/stream0/",
            request_setup,
            request,
        ),
        (
            "Content-Base: 127.0.0.1:8554/\r\n",
            "127.0.0.1:8554/",
            request_setup,
            request,
        ),
        ("Content-Base: /stream0/\r\n", "/stream0/", request_setup, request),
        (
            "Content-Base: http://127.0.0.1:8554/stream0/\r\n",
            "http://127.0.0.1:8554/stream0/",
            request_setup,
            request,
        ),
        (
            "Content-Base: 10.0.0.2:554/x/\r\nContent-Location: rtsp://127.0.0.1:8554/loc/\r\n",
            "10.0.0.2:554/x/",
            "rtsp://127.0.0.1:8554/loc/stream=0",
            "rtsp://127.0.0.1:8554/loc/",
        ),
    ] {
        let mut h = Harness::new(request, ClientOptions::default());
        h.connect(1);
        h.reply(2, "200 OK", "Public: GET_PARAMETER\r\n", "");
        h.reply(3, "200 OK", headers, SDP);
        assert!(h.closed().is_none(), "{headers}: {:?}", h.closed());
        assert_eq!(h.last_request().method, Method::Setup, "{headers}");
        assert_eq!(h.last_request().uri, setup, "{headers}");
        let warnings: Vec<&Warning> = h
            .events
            .iter()
            .filter_map(|e| if let Event::Warning(w) = e { Some(w) } else { None })
            .collect();
        assert_eq!(warnings.len(), 1, "{headers}: {warnings:?}");
        assert_eq!(warnings[0].kind(), "bad_content_base", "{headers}");
        assert!(warnings[0].to_string().contains(bad), "{}", warnings[0]);
        h.reply(
            4,
            "200 OK",
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: s\r\n",
            "",
        );
        h.reply(
            5,
            "200 OK",
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nSession: s\r\n",
            "",
        );
        assert_eq!(h.last_request().method, Method::Play);
        assert_eq!(h.last_request().uri, play, "{headers}");
        h.reply(6, "200 OK", "Session: s\r\n", "");
        assert!(h.closed().is_none(), "{headers}");
    }
    // A good one, absolute with another host or in upper case, is followed without a warning.
    for base in ["rtsp://10.0.0.2:554/stream0/", "RTSPS://cam.example/s/"] {
        let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
        h.connect(1);
        h.reply(2, "200 OK", "", "");
        h.reply(3, "200 OK", &format!("Content-Base: {base}\r\n"), SDP);
        assert_eq!(
            h.last_request().uri,
            format!("{}stream=0", base.replacen("RTSPS", "rtsps", 1))
        );
        assert!(!h.events.iter().any(|e| matches!(e, Event::Warning(_))), "{base}");
    }
}

#[test]
fn join_control_cases() {
    let base = Url::parse("rtsp://h:554/live/ch1").unwrap();
    assert_eq!(
        join_control(&base, Some("trackID=0")),
        "rtsp://h:554/live/ch1/trackID=0"
    );
    assert_eq!(join_control(&base, None), "rtsp://h:554/live/ch1");
    let base = Url::parse("rtsp://h/a.mp4/").unwrap();
    assert_eq!(join_control(&base, Some("stream=1")), "rtsp://h/a.mp4/stream=1");
    assert_eq!(
        join_control(&base, Some("rtsp://h/a.mp4/stream=1")),
        "rtsp://h/a.mp4/stream=1"
    );
}

#[test]
fn parse_interleaved_cases() {
    assert_eq!(
        parse_interleaved("RTP/AVP/TCP;unicast;interleaved=4-5;ssrc=1"),
        Some((4, 5))
    );
    assert_eq!(parse_interleaved("RTP/AVP/TCP;interleaved=6"), Some((6, 7)));
    assert_eq!(parse_interleaved("RTP/AVP/TCP;interleaved=x-y"), None);
    assert_eq!(parse_interleaved("RTP/AVP/TCP;interleaved=255"), None);
}

proptest::proptest! {
    /// Whatever the server sends, the machine neither panics nor keeps more
    /// than a bounded amount of output, and it always ends with one Closed.
    #[test]
    fn arbitrary_server_bytes(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)) {
        let mut h = Harness::new("rtsp://u:p@127.0.0.1:8554/a.mp4", ClientOptions::default());
        h.connect(1);
        for (i, c) in chunks.iter().enumerate() {
            h.input(2 + i as u64, c);
        }
        h.timeout(100_000);
        h.c.handle_input(h.at(100_001), Input::Close);
        h.drain();
        h.timeout(200_000);
        proptest::prop_assert!(h.done);
        proptest::prop_assert_eq!(h.events.iter().filter(|e| matches!(e, Event::Closed(_))).count(), 1);
    }

    /// A well-formed session interleaved with arbitrary RTP payloads.
    #[test]
    fn scripted_session_with_arbitrary_media(pkts in proptest::collection::vec((0u8..6, proptest::collection::vec(proptest::num::u8::ANY, 0..64)), 0..30)) {
        let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
        h.play("GET_PARAMETER");
        for (i, (ch, p)) in pkts.iter().enumerate() {
            let mut f = vec![b'$', *ch];
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
            f.extend_from_slice(p);
            h.input(60 + i as u64, &f);
        }
        proptest::prop_assert!(h.closed().is_none());
    }
}

#[test]
fn frames_can_be_turned_off() {
    let opts = ClientOptions {
        assemble_frames: false,
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play("");
    let mut d = rtp(0, 1, 0, true, b"\x65abc");
    d.extend(rtp(0, 3, 3000, true, b"\x41abc"));
    h.input(60, &d);
    assert_eq!(h.events.iter().filter(|e| matches!(e, Event::Rtp(_))).count(), 2);
    assert_eq!(
        h.events.iter().filter(|e| matches!(e, Event::Loss(_))).count(),
        1,
        "loss is still counted"
    );
    assert!(!h
        .events
        .iter()
        .any(|e| matches!(e, Event::Video(_) | Event::Warning(_))));
}

#[test]
fn keepalive_401_reauthenticates_once_then_fails() {
    let opts = ClientOptions {
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://bob:pw@127.0.0.1:8554/a.mp4", opts);
    h.play("GET_PARAMETER");
    h.timeout(5050);
    assert_eq!(h.last_request().method, Method::GetParameter);
    let challenge = "WWW-Authenticate: Digest realm=\"r\", nonce=\"fresh\", stale=true\r\n";
    h.reply(5060, "401 Unauthorized", challenge, "");
    let retry = h.last_request().clone();
    assert_eq!(retry.method, Method::GetParameter, "the keepalive is retried");
    assert!(retry.headers.get("Authorization").unwrap().contains("nonce=\"fresh\""));
    h.reply(5070, "200 OK", "", "");
    assert!(h.closed().is_none());
    // The next keepalive is refused twice: the session ends with a Response error.
    h.timeout(10070);
    h.reply(10080, "401 Unauthorized", challenge, "");
    h.reply(10090, "401 Unauthorized", challenge, "");
    assert!(matches!(
        h.closed().unwrap().error,
        Some(Error::Response {
            method: Method::GetParameter,
            status: 401,
            ..
        })
    ));
}

/// A camera whose Digest nonce changes after PLAY (Axis M5525,
/// SharpRTSP#126; the simulator's `reauth_after_play`): the keepalive that
/// answers the old nonce gets 401 with a new one, without `stale=true`. The
/// keepalive is sent again answering the new nonce, and the session goes on
/// without a warning; each later keepalive and the TEARDOWN answer the
/// newest nonce, and a second change later is survived the same way.
#[test]
fn a_nonce_changed_after_play_is_answered_and_the_session_goes_on() {
    let opts = ClientOptions {
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://bob:pw@127.0.0.1:8554/a.mp4", opts);
    let challenge = |nonce: &str| format!("WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\"\r\n");
    let answers = |r: &Request, nonce: &str| {
        r.headers
            .get("Authorization")
            .is_some_and(|a| a.contains(&format!("nonce=\"{nonce}\"")))
    };
    h.connect(5);
    h.reply(
        10,
        "200 OK",
        "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER\r\n",
        "",
    );
    h.reply(12, "401 Unauthorized", &challenge("n1"), "");
    assert!(answers(h.last_request(), "n1"));
    h.reply(20, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\n", SDP);
    h.reply(
        30,
        "200 OK",
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: abc;timeout=10\r\n",
        "",
    );
    h.reply(
        40,
        "200 OK",
        "Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nSession: abc;timeout=10\r\n",
        "",
    );
    assert_eq!(h.last_request().method, Method::Play);
    assert!(answers(h.last_request(), "n1"));
    h.reply(50, "200 OK", "Session: abc\r\n", "");
    let mut at = 50;
    for (old, new) in [("n1", "n2"), ("n2", "n3")] {
        // A keepalive with the old nonce, refused with a new one.
        at += 5000;
        h.timeout(at);
        assert_eq!(h.last_request().method, Method::GetParameter);
        assert!(answers(h.last_request(), old), "{:?}", h.last_request());
        h.reply(at + 10, "401 Unauthorized", &challenge(new), "");
        let retry = h.last_request().clone();
        assert_eq!(retry.method, Method::GetParameter, "the keepalive is sent again");
        assert!(answers(&retry, new), "{retry:?}");
        h.reply(at + 20, "200 OK", "Session: abc\r\n", "");
        assert!(h.closed().is_none(), "{:?}", h.closed());
        // The next keepalive answers the new nonce, and passes.
        at += 5020;
        h.timeout(at);
        assert_eq!(h.last_request().method, Method::GetParameter);
        assert!(answers(h.last_request(), new));
        h.reply(at + 10, "200 OK", "Session: abc\r\n", "");
        at += 10;
    }
    h.c.handle_input(h.at(at + 100), Input::Close);
    h.drain();
    assert_eq!(h.last_request().method, Method::Teardown);
    assert!(answers(h.last_request(), "n3"));
    h.reply(at + 110, "200 OK", "", "");
    assert_eq!(h.closed().unwrap().error, None);
    assert!(!h.events.iter().any(|e| matches!(e, Event::Warning(_))));
    let statuses: Vec<(Method, u16)> = h.method_events().iter().map(|m| (m.method.clone(), m.status)).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|(m, s)| *m == Method::GetParameter && *s == 401)
            .count(),
        2,
        "{statuses:?}"
    );
}

#[test]
fn stale_nonce_reauthenticates_without_counting_a_failure() {
    let mut h = Harness::new("rtsp://bob:pw@127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    let challenge = |nonce: &str, stale: bool| {
        format!(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\"{}\r\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{}\r\n",
            if stale { ", stale=true" } else { "" },
            if stale { ", stale=true" } else { "" },
        )
    };
    h.reply(3, "401 Unauthorized", &challenge("n1", false), "");
    let first = h.last_request().headers.get("Authorization").unwrap().to_owned();
    assert!(
        first.contains("nonce=\"n1\"") && first.contains("algorithm=SHA-256"),
        "{first}"
    );
    // The retried DESCRIBE is refused as stale, with a new nonce: answered
    // again, although a second plain 401 would have ended the session.
    h.reply(4, "401 Unauthorized", &challenge("n2", true), "");
    assert!(h.closed().is_none());
    let second = h.last_request().clone();
    assert_eq!(second.method, Method::Describe);
    assert!(second.headers.get("Authorization").unwrap().contains("nonce=\"n2\""));
    // Stale again with the same nonce: that is a refusal, and this request
    // was refused once already.
    h.reply(5, "401 Unauthorized", &challenge("n2", true), "");
    assert!(matches!(
        h.closed().unwrap().error,
        Some(Error::Response {
            method: Method::Describe,
            status: 401,
            ..
        })
    ));
}

#[test]
fn endless_stale_nonces_are_bounded() {
    let mut h = Harness::new("rtsp://bob:pw@127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(
        3,
        "401 Unauthorized",
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n0\"\r\n",
        "",
    );
    let mut sent = h.requests.len();
    for i in 1..=10u64 {
        if h.closed().is_some() {
            break;
        }
        let c = format!("WWW-Authenticate: Digest realm=\"r\", nonce=\"n{i}\", stale=true\r\n");
        h.reply(3 + i, "401 Unauthorized", &c, "");
        if h.requests.len() > sent {
            sent = h.requests.len();
        }
    }
    assert!(
        h.closed().is_some(),
        "a server calling every nonce stale ends the session"
    );
    // OPTIONS, DESCRIBE, its first retry, then at most MAX_STALE_RETRIES more.
    assert_eq!(sent, 3 + usize::from(super::MAX_STALE_RETRIES));
}

#[test]
fn keepalive_answer_after_stop_is_not_taken_for_teardown() {
    let opts = ClientOptions {
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play("GET_PARAMETER");
    h.timeout(5050);
    let keepalive_cseq = h.last_request().headers.cseq().unwrap();
    h.c.handle_input(h.at(5055), Input::Close);
    h.drain();
    let teardown_cseq = h.last_request().headers.cseq().unwrap();
    assert_eq!(h.last_request().method, Method::Teardown);
    h.input(
        5060,
        format!("RTSP/1.0 200 OK\r\nCSeq: {keepalive_cseq}\r\n\r\n").as_bytes(),
    );
    assert!(h.closed().is_none(), "the keepalive's answer does not end the teardown");
    assert!(!h.events.iter().any(|e| matches!(e, Event::Warning(_))));
    h.input(
        5070,
        format!("RTSP/1.0 200 OK\r\nCSeq: {teardown_cseq}\r\n\r\n").as_bytes(),
    );
    assert_eq!(h.closed().unwrap().error, None);
    let last = h.method_events().last().map(|m| (m.method.clone(), m.elapsed)).unwrap();
    assert_eq!(last, (Method::Teardown, ms(15)));
}

/// RTP over UDP and multicast, receiver reports, fallback.
mod control;
mod udp;

/// Three video sections and an audio one: what each selection sets up.
const SDP_MANY: &str = "v=0\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:v0\r\n\
m=audio 0 RTP/AVP 0\r\na=control:a1\r\n\
m=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=control:v2\r\n\
m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\na=control:m3\r\n";

/// The control URLs a selection sets up, in order.
fn setups_for(tracks: TrackSelection) -> Result<Vec<String>, Error> {
    setups_for_with(tracks, false)
}

/// [`setups_for`], with [`ClientOptions::enable_metadata`] as given.
fn setups_for_with(tracks: TrackSelection, metadata: bool) -> Result<Vec<String>, Error> {
    let opts = ClientOptions::default().with_tracks(tracks).with_metadata(metadata);
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a", opts);
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a/\r\n", SDP_MANY);
    let mut urls = Vec::new();
    for i in 0..8 {
        if let Some(c) = h.closed() {
            return Err(c.error.clone().expect("an error"));
        }
        if h.last_request().method != Method::Setup {
            break;
        }
        let uri = h.last_request().uri.clone();
        let channel = 2 * urls.len();
        urls.push(uri.rsplit('/').next().unwrap().to_owned());
        h.reply(
            4 + i,
            "200 OK",
            &format!(
                "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved={channel}-{}\r\n",
                channel + 1
            ),
            "",
        );
    }
    assert_eq!(h.last_request().method, Method::Play);
    let tracks: Vec<usize> = h.c.tracks().map(|t| t.media_index).collect();
    assert_eq!(tracks.len(), urls.len());
    Ok(urls)
}

#[test]
fn track_selection_sets_up_any_number_of_tracks_in_sdp_order() {
    assert_eq!(setups_for(TrackSelection::FirstOfEachKind).unwrap(), ["v0", "a1"]);
    assert_eq!(
        setups_for_with(TrackSelection::FirstOfEachKind, true).unwrap(),
        ["v0", "a1", "m3"]
    );
    assert_eq!(setups_for(TrackSelection::All).unwrap(), ["v0", "a1", "v2", "m3"]);
    assert_eq!(setups_for(TrackSelection::Video).unwrap(), ["v0", "v2"]);
    assert_eq!(setups_for(TrackSelection::Audio).unwrap(), ["a1"]);
    assert_eq!(
        setups_for(TrackSelection::Indexes(vec![3, 0, 3])).unwrap(),
        ["v0", "m3"]
    );
    let e = setups_for(TrackSelection::Indexes(vec![1, 4])).unwrap_err();
    assert!(
        matches!(&e, Error::Protocol(ProtocolError::NoTracks(m)) if m.contains("track 4") && m.contains("4 media")),
        "{e}"
    );
    assert!(matches!(
        Client::new(
            "rtsp://h/a",
            ClientOptions::default().with_tracks(TrackSelection::Indexes(vec![])),
            Instant::now()
        ),
        Err(Error::Config(_))
    ));
}

#[test]
fn extra_headers_go_on_every_request_and_session_headers_are_refused() {
    let opts = ClientOptions::default()
        .with_header("X-Token", "abc")
        .with_header("Require", "www.onvif.org/ver20/backchannel")
        .with_user_agent("cam-tester/2");
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\n", SDP);
    for r in &h.requests {
        assert_eq!(r.headers.get("x-token"), Some("abc"), "{:?}", r.method);
        assert_eq!(r.headers.get("User-Agent"), Some("cam-tester/2"));
        assert_eq!(r.headers.get_all("CSeq").count(), 1);
    }
    let m = h.method_events();
    assert_eq!(m[0].request_headers.get("X-Token"), Some("abc"));
    assert_eq!(m[0].request_headers.get("CSeq"), Some("1"));
    for (name, value) in [
        ("CSeq", "9"),
        ("session", "x"),
        ("Authorization", "Basic eA=="),
        ("Transport", "RTP/AVP"),
        ("Content-Length", "1"),
        ("User-Agent", "x"),
        ("Bad Name", "x"),
        ("X-Ok", "a\r\nInjected: 1"),
    ] {
        let opts = ClientOptions::default().with_header(name, value);
        assert!(
            matches!(Client::new("rtsp://h/a", opts, Instant::now()), Err(Error::Config(_))),
            "{name}: {value:?}"
        );
    }
}

#[test]
fn credentials_option_wins_over_the_url_and_is_masked_in_events() {
    let opts = ClientOptions::default().with_credentials("alice", "s3cr@t");
    let mut h = Harness::new("rtsp://mallory:other@127.0.0.1:8554/a.mp4", opts);
    assert!(!format!("{:?}", h.c.options()).contains("s3cr@t"), "password in Debug");
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"r\"\r\n", "");
    // base64("alice:s3cr@t")
    assert_eq!(
        h.last_request().headers.get("Authorization"),
        Some("Basic YWxpY2U6czNjckB0")
    );
    h.reply(4, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a.mp4/\r\n", SDP);
    let m = h.method_events();
    assert_eq!(m[2].request_headers.get("Authorization"), Some("Basic ***"));
    assert!(m[1].request_headers.get("Authorization").is_none());
    for e in &h.events {
        let text = format!("{e:?}");
        assert!(!text.contains("YWxpY2U6czNjckB0") && !text.contains("s3cr@t"), "{text}");
    }
    // Without any credentials a 401 says so.
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"r\"\r\n", "");
    assert!(matches!(
        h.closed().unwrap().error,
        Some(Error::Response { status: 401, .. })
    ));
}

#[test]
fn metadata_documents_become_metadata_events() {
    let opts = ClientOptions::default()
        .with_metadata(true)
        .with_video(false)
        .with_audio(false);
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a", opts);
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/a/\r\n", SDP_MANY);
    assert!(h.last_request().uri.ends_with("/m3"), "{}", h.last_request().uri);
    h.reply(
        4,
        "200 OK",
        "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        "",
    );
    assert_eq!(h.last_request().method, Method::Play);
    h.reply(5, "200 OK", "Session: s\r\n", "");
    h.input(6, &rtp(0, 1, 9000, false, b"<tt:MetadataStream>"));
    h.input(7, &rtp(0, 2, 9000, true, b"</tt:MetadataStream>"));
    h.input(8, &rtp(0, 3, 18000, true, b"<x/>"));
    let docs: Vec<(usize, i64, Vec<u8>)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Metadata(m) => Some((m.track, m.extended_timestamp, m.frame.data.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(
        docs,
        [
            (0, 9000, b"<tt:MetadataStream></tt:MetadataStream>".to_vec()),
            (0, 18000, b"<x/>".to_vec())
        ]
    );
    assert!(!h.events.iter().any(|e| matches!(e, Event::Warning(_))));
}

/// A camera's SDP with the backchannel: video, then the audio it receives.
const SDP_BACKCHANNEL: &str = "v=0\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:v0\r\na=recvonly\r\n\
m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:back\r\na=sendonly\r\n";

#[test]
fn backchannel_audio_is_paced_on_the_sendonly_track() {
    use crate::client::{backchannel, BackchannelAudio};
    let audio = BackchannelAudio::new();
    let pcm: Vec<i16> = (0..400).map(|i| (i * 37 % 2000) as i16 - 1000).collect();
    audio.push_pcm(&pcm, 8000, 1).unwrap();
    audio.close();
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/cam",
        ClientOptions::default().with_backchannel(audio.clone()),
    );
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(
        3,
        "200 OK",
        "Content-Base: rtsp://127.0.0.1:8554/cam/\r\n",
        SDP_BACKCHANNEL,
    );
    h.reply(
        4,
        "200 OK",
        "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        "",
    );
    assert!(h.last_request().uri.ends_with("/back"), "{}", h.last_request().uri);
    h.reply(
        5,
        "200 OK",
        "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n",
        "",
    );
    assert_eq!(h.last_request().method, Method::Play);
    for r in &h.requests {
        let require = r.headers.get("Require");
        match r.method {
            Method::Options => assert_eq!(require, None),
            _ => assert_eq!(require, Some(backchannel::REQUIRE_TAG), "{:?}", r.method),
        }
    }
    h.reply(10, "200 OK", "Session: s\r\n", "");
    // The first packet is due at PLAY's answer, then one every 20 ms.
    assert_eq!(h.deadline, Some(h.at(10)));
    let mut packets = Vec::new();
    for t in [10, 29, 30, 50, 70] {
        h.timeout(t);
        packets.extend(h.interleaved.drain(..).filter(|(ch, _)| *ch == 2).map(|(_, p)| (t, p)));
    }
    let parsed: Vec<(u64, usize, u32, bool)> = packets
        .iter()
        .map(|(t, p)| {
            let p = crate::rtp::RtpPacket::parse(p.clone()).unwrap();
            (*t, p.payload.len(), p.timestamp, p.marker)
        })
        .collect();
    let ts0 = parsed[0].2;
    assert_eq!(
        parsed
            .iter()
            .map(|&(t, n, ts, m)| (t, n, ts.wrapping_sub(ts0), m))
            .collect::<Vec<_>>(),
        [(10, 160, 0, true), (30, 160, 160, false), (50, 80, 320, false)]
    );
    let sent: Vec<u8> = packets
        .iter()
        .flat_map(|(_, p)| crate::rtp::RtpPacket::parse(p.clone()).unwrap().payload.to_vec())
        .collect();
    let expected: Vec<u8> = pcm.iter().map(|&s| crate::codec::g711::linear_to_ulaw(s)).collect();
    assert_eq!(sent, expected);
    assert!(audio.is_done());
    assert_eq!(audio.sent(), 400);
    // Done: no more backchannel deadlines (the next is a keepalive or the read timeout).
    assert!(h.deadline.unwrap() > h.at(1000));
    assert!(
        !h.events.iter().any(|e| matches!(e, Event::Warning(_))),
        "{:?}",
        h.events
    );
}

#[test]
fn backchannel_without_a_sendonly_track_warns_and_the_session_goes_on() {
    use crate::client::BackchannelAudio;
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/a.mp4",
        ClientOptions::default().with_backchannel(BackchannelAudio::new()),
    );
    h.play("DESCRIBE, SETUP, PLAY, TEARDOWN");
    assert_eq!(h.requests.iter().filter(|r| r.method == Method::Setup).count(), 2);
    let w: Vec<&Warning> = h
        .events
        .iter()
        .filter_map(|e| if let Event::Warning(w) = e { Some(w) } else { None })
        .collect();
    assert!(matches!(w[..], [Warning::Backchannel { track: None, .. }]), "{w:?}");
    assert!(h.closed().is_none());
}

/// A camera's SDP with an AAC backchannel (AAC-LC, 8 kHz mono: `config=1588`).
const SDP_AAC_BACKCHANNEL: &str = "v=0\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:v0\r\na=recvonly\r\n\
m=audio 0 RTP/AVP 98\r\na=rtpmap:98 MPEG4-GENERIC/8000/1\r\n\
a=fmtp:98 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1588;sizelength=13;indexlength=3;indexdeltalength=3\r\n\
a=control:back\r\na=sendonly\r\n";

/// A stand-in AAC encoder: an access unit per 1024 samples, its bytes the
/// frame's number repeated (10 + number) times; at the end one for the
/// rest and one more (the encoder delay).
struct FakeAac {
    buffered: usize,
    made: u8,
}

impl crate::client::AacEncoder for FakeAac {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), crate::client::AacEncodeError> {
        self.buffered += pcm.len();
        while self.buffered >= 1024 {
            self.buffered -= 1024;
            out.push(Bytes::from(vec![self.made; 10 + usize::from(self.made)]));
            self.made += 1;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), crate::client::AacEncodeError> {
        for _ in 0..2 {
            out.push(Bytes::from(vec![self.made; 10 + usize::from(self.made)]));
            self.made += 1;
        }
        Ok(())
    }
}

/// Plays `sdp` with `audio` on the backchannel (the second section, set
/// up on channels 2-3) and runs 20 ms ticks from PLAY's answer for `ms`.
fn run_backchannel(sdp: &str, audio: &crate::client::BackchannelAudio, ms: u64) -> Harness {
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/cam",
        ClientOptions::default().with_backchannel(audio.clone()),
    );
    h.connect(1);
    h.reply(2, "200 OK", "", "");
    h.reply(3, "200 OK", "Content-Base: rtsp://127.0.0.1:8554/cam/\r\n", sdp);
    h.reply(
        4,
        "200 OK",
        "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        "",
    );
    h.reply(
        5,
        "200 OK",
        "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n",
        "",
    );
    h.reply(10, "200 OK", "Session: s\r\n", "");
    let mut t = 10;
    while t <= 10 + ms {
        h.timeout(t);
        t += 20;
    }
    h
}

#[test]
fn aac_backchannel_sends_the_encoders_access_units_as_aac_hbr() {
    use crate::client::{AacEncoder, AacEncoderConfig, BackchannelAudio};
    use std::sync::{Arc, Mutex};
    let audio = BackchannelAudio::new();
    audio.push_pcm(&[0i16; 2500], 8000, 1).unwrap();
    audio.close();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    audio.set_aac_encoder(Arc::new(
        move |c: &AacEncoderConfig| -> Result<Box<dyn AacEncoder>, crate::client::AacEncodeError> {
            seen.lock().unwrap().push(c.clone());
            Ok(Box::new(FakeAac { buffered: 0, made: 0 }))
        },
    ));
    let mut h = run_backchannel(SDP_AAC_BACKCHANNEL, &audio, 1000);
    let config = asked.lock().unwrap().clone();
    assert_eq!(config.len(), 1);
    assert_eq!(
        (config[0].sample_rate, config[0].channels, config[0].frame_length),
        (8000, 1, 1024)
    );
    assert_eq!(&config[0].audio_specific_config[..], [0x15, 0x88]);
    let packets: Vec<crate::rtp::RtpPacket> = h
        .interleaved
        .drain(..)
        .filter(|(ch, _)| *ch == 2)
        .map(|(_, p)| crate::rtp::RtpPacket::parse(p).unwrap())
        .collect();
    // Two whole frames and the two the end flushes, one AU per packet.
    assert_eq!(packets.len(), 4, "{packets:?}");
    let ts0 = packets[0].timestamp;
    for (k, p) in packets.iter().enumerate() {
        assert_eq!(p.payload_type, 98);
        assert!(p.marker);
        assert_eq!(p.timestamp.wrapping_sub(ts0), 1024 * k as u32);
        let len = 10 + k;
        let mut expected = vec![0, 16, (len >> 5) as u8, (len << 3) as u8];
        expected.extend(std::iter::repeat_n(k as u8, len));
        assert_eq!(&p.payload[..], &expected[..]);
    }
    assert!(audio.is_done());
    assert_eq!(
        h.c.pacer.as_ref().and_then(backchannel::Pacer::deadline),
        None,
        "done: no more backchannel deadlines"
    );
    assert!(
        !h.events.iter().any(|e| matches!(e, Event::Warning(_))),
        "{:?}",
        h.events
    );
}

#[test]
fn aac_backchannel_without_an_encoder_or_of_another_kind_warns_and_sends_nothing() {
    use crate::client::{AacEncoder, AacEncoderConfig, BackchannelAudio};
    use std::sync::Arc;
    let he_aac = SDP_AAC_BACKCHANNEL.replace("config=1588", "config=2B8A0800");
    let lbr = SDP_AAC_BACKCHANNEL.replace("mode=AAC-hbr", "mode=AAC-lbr");
    let latm_in_band = SDP_AAC_BACKCHANNEL
        .replace("MPEG4-GENERIC/8000/1", "MP4A-LATM/8000/1")
        .replace("config=1588", "cpresent=1");
    for (sdp, encoder, why) in [
        (SDP_AAC_BACKCHANNEL, false, "no AAC encoder was given"),
        (he_aac.as_str(), true, "only mono or stereo AAC-LC"),
        (lbr.as_str(), true, "only AAC-hbr"),
        (latm_in_band.as_str(), true, "only cpresent=0"),
    ] {
        let audio = BackchannelAudio::new();
        audio.push_pcm(&[0i16; 2500], 8000, 1).unwrap();
        audio.close();
        if encoder {
            audio.set_aac_encoder(Arc::new(
                |_: &AacEncoderConfig| -> Result<Box<dyn AacEncoder>, crate::client::AacEncodeError> {
                    Ok(Box::new(FakeAac { buffered: 0, made: 0 }))
                },
            ));
        }
        let h = run_backchannel(sdp, &audio, 200);
        assert!(!h.interleaved.iter().any(|(ch, _)| *ch == 2), "{why}: nothing sent");
        // (A track no depacketizer takes, LATM with cpresent=1, also has its
        // `UnsupportedCodec` warning.)
        let w: Vec<&Warning> = h
            .events
            .iter()
            .filter_map(|e| if let Event::Warning(w) = e { Some(w) } else { None })
            .filter(|w| !matches!(w, Warning::UnsupportedCodec { .. }))
            .collect();
        assert!(
            matches!(&w[..], [Warning::Backchannel { track: Some(1), reason }] if reason.contains(why)),
            "{why}: {w:?}"
        );
        assert_eq!(audio.queued(), 2500);
    }
}

#[test]
fn latm_backchannel_sends_one_access_unit_per_audio_mux_element() {
    use crate::client::{AacEncoder, AacEncoderConfig, BackchannelAudio};
    use std::sync::Arc;
    let sdp = "v=0\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
        m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:v0\r\na=recvonly\r\n\
        m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MP4A-LATM/16000/1\r\n\
        a=fmtp:97 profile-level-id=15;object=2;cpresent=0;config=400028103FC0\r\n\
        a=control:back\r\na=sendonly\r\n";
    let audio = BackchannelAudio::new();
    audio.push_pcm(&[0i16; 2500], 16000, 1).unwrap();
    audio.close();
    audio.set_aac_encoder(Arc::new(
        |c: &AacEncoderConfig| -> Result<Box<dyn AacEncoder>, crate::client::AacEncodeError> {
            assert_eq!(
                (c.sample_rate, c.channels, &c.audio_specific_config[..]),
                (16000, 1, &[0x14, 0x08][..])
            );
            Ok(Box::new(FakeAac { buffered: 0, made: 0 }))
        },
    ));
    let mut h = run_backchannel(sdp, &audio, 1000);
    let packets: Vec<crate::rtp::RtpPacket> = h
        .interleaved
        .drain(..)
        .filter(|(ch, _)| *ch == 2)
        .map(|(_, p)| crate::rtp::RtpPacket::parse(p).unwrap())
        .collect();
    assert_eq!(packets.len(), 4, "{packets:?}");
    let ts0 = packets[0].timestamp;
    for (k, p) in packets.iter().enumerate() {
        assert_eq!((p.payload_type, p.marker), (97, true));
        assert_eq!(p.timestamp.wrapping_sub(ts0), 1024 * k as u32);
        let len = 10 + k;
        let mut expected = vec![len as u8];
        expected.extend(std::iter::repeat_n(k as u8, len));
        assert_eq!(&p.payload[..], &expected[..]);
    }
    assert!(
        !h.events.iter().any(|e| matches!(e, Event::Warning(_))),
        "{:?}",
        h.events
    );
}
