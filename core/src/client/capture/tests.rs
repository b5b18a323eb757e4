//! Recording inside the client, the file format, and replay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::format::KIND_INPUT;
use super::*;
use crate::client::{Client, ClientOptions, Event, Input, Output, TrackSelection, Transport, UdpSocketId};
use crate::message::Limits;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:stream=0\r\n";

fn response(cseq: u32, extra: &str, body: &str) -> String {
    format!(
        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A scripted session through a recorder: the live events and the file.
fn live_session(url: &str) -> (Vec<Event>, Bytes) {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let opts = ClientOptions {
        enable_audio: false,
        timeout: Duration::from_millis(1500),
        capture: Some("x".into()),
        ..Default::default()
    };
    let mut rec = Client::new(url, opts, t0).unwrap();
    let mut events = Vec::new();
    let mut file = BytesMut::new();
    let mut step = |rec: &mut Client, events: &mut Vec<Event>| {
        loop {
            match rec.poll_output() {
                Output::Event(e) => events.push(e),
                Output::Transmit(_) => {}
                _ => break,
            }
        }
        if let Some(b) = rec.take_capture() {
            file.extend_from_slice(&b);
        }
    };
    rec.handle_input(
        ms(1),
        Input::Connected {
            local: addr("127.0.0.1:5000"),
            peer: addr("127.0.0.1:554"),
        },
    );
    step(&mut rec, &mut events);
    rec.handle_input(
        ms(3),
        Input::Data(response(1, "Public: OPTIONS, DESCRIBE\r\n", "").as_bytes()),
    );
    step(&mut rec, &mut events);
    let describe = response(2, "Content-Type: application/sdp\r\n", SDP);
    // Split across two reads at different instants.
    rec.handle_input(ms(5), Input::Data(&describe.as_bytes()[..20]));
    rec.handle_input(ms(7), Input::Data(&describe.as_bytes()[20..]));
    step(&mut rec, &mut events);
    let setup = response(
        3,
        "Session: abc;timeout=60\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n",
        "",
    );
    rec.handle_input(ms(9), Input::Data(setup.as_bytes()));
    step(&mut rec, &mut events);
    let mut play = response(4, "Session: abc\r\n", "").into_bytes();
    play.extend_from_slice(&[b'$', 0, 0, 12, 0x80, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7]);
    rec.handle_input(ms(11), Input::Data(&play));
    step(&mut rec, &mut events);
    rec.handle_input(ms(900), Input::Timeout);
    step(&mut rec, &mut events);
    rec.handle_input(ms(1000), Input::Close);
    step(&mut rec, &mut events);
    rec.handle_input(ms(2600), Input::Timeout);
    step(&mut rec, &mut events);
    (events, file.freeze())
}

#[test]
fn replay_gives_the_live_events_with_durations() {
    let (live, file) = live_session("rtsp://user:pw@127.0.0.1/cam");
    assert!(matches!(live.last(), Some(Event::Closed(_))));
    assert!(live.iter().any(|e| matches!(e, Event::Rtp(_))));
    let capture = Capture::parse(&file).unwrap();
    assert_eq!(capture.header.url, "rtsp://127.0.0.1/cam");
    assert!(capture.header.had_credentials);
    assert!(!file.windows(2).any(|w| w == b"pw"), "password recorded");
    assert_eq!(
        replay(&capture, ClientOptions::default(), Instant::now()).unwrap(),
        live
    );
}

#[test]
fn round_trip_of_every_record_kind() {
    let capture = Capture {
        header: CaptureHeader {
            url: "rtsp://[::1]:8554/a b".into(),
            had_credentials: false,
            enable_video: true,
            enable_audio: false,
            timeout: Duration::from_nanos(1_234_567_891),
            forward_address: Some("relay:1554".into()),
            limits: Limits::default(),
            transport: Transport::Auto,
            reorder_packets: 256,
            reorder_window: Duration::from_millis(100),
            udp_fallback_after: Duration::from_secs(3),
            rtcp_reports: true,
            tracks: TrackSelection::Indexes(vec![0, 3]),
            start: Some(Duration::from_millis(2500)),
            end: Some(Duration::from_secs(7)),
            scale: Some("0.5".into()),
        },
        records: vec![
            Record {
                offset: Duration::from_nanos(5),
                kind: RecordKind::Connected {
                    local: addr("[::1]:4000"),
                    peer: addr("[::1]:8554"),
                },
            },
            Record {
                offset: Duration::from_nanos(6),
                kind: RecordKind::ConnectFailed {
                    kind: std::io::ErrorKind::ConnectionRefused,
                    reason: "refused".into(),
                },
            },
            Record {
                offset: Duration::from_millis(7),
                kind: RecordKind::Input(Bytes::from_static(b"RTSP/1.0")),
            },
            Record {
                offset: Duration::from_millis(8),
                kind: RecordKind::Eof,
            },
            Record {
                offset: Duration::from_millis(9),
                kind: RecordKind::IoError {
                    kind: std::io::ErrorKind::ConnectionReset,
                    reason: "reset".into(),
                },
            },
            Record {
                offset: Duration::from_millis(10),
                kind: RecordKind::Timeout,
            },
            Record {
                offset: Duration::from_secs(11),
                kind: RecordKind::Close,
            },
            Record {
                offset: Duration::from_secs(12),
                kind: RecordKind::UdpOpened {
                    pair: 1,
                    result: Ok(50_000),
                },
            },
            Record {
                offset: Duration::from_secs(12),
                kind: RecordKind::UdpOpened {
                    pair: 0,
                    result: Err("address in use".into()),
                },
            },
            Record {
                offset: Duration::from_secs(13),
                kind: RecordKind::Datagram {
                    socket: UdpSocketId::rtcp(3),
                    from: addr("[::1]:6971"),
                    data: Bytes::from_static(b"\x80\xc9\x00\x01abcd"),
                },
            },
        ],
    };
    let bytes = capture.encode();
    assert_eq!(Capture::parse(&bytes).unwrap(), capture);
    // Every strict prefix is an error, never a panic or a shorter capture
    // (except prefixes ending exactly at a record boundary).
    for n in 0..bytes.len() {
        if let Ok(c) = Capture::parse(&bytes[..n]) {
            assert!(c.records.len() < capture.records.len());
        }
    }
}

#[test]
fn long_input_is_split_and_replays_the_same() {
    let w = CaptureHeader {
        url: "rtsp://h/".into(),
        had_credentials: false,
        enable_video: true,
        enable_audio: true,
        timeout: Duration::from_secs(1),
        forward_address: None,
        limits: Limits::default(),
        transport: Transport::Tcp,
        reorder_packets: 256,
        reorder_window: Duration::from_millis(100),
        udp_fallback_after: Duration::from_secs(3),
        rtcp_reports: true,
        tracks: TrackSelection::All,
        start: None,
        end: None,
        scale: None,
    };
    let t0 = Instant::now();
    let mut writer = CaptureWriter::new(&w, t0);
    let big = Bytes::from(vec![7u8; MAX_RECORD_LEN as usize + 10]);
    writer.record(t0, Input::Data(&big));
    let c = Capture::parse(&writer.take()).unwrap();
    assert_eq!(c.records.len(), 2);
    assert_eq!(c.received(), big);
}

#[test]
fn typed_errors() {
    let mut good = Capture {
        header: CaptureHeader {
            url: "rtsp://h/".into(),
            had_credentials: false,
            enable_video: true,
            enable_audio: true,
            timeout: Duration::from_secs(1),
            forward_address: None,
            limits: Limits::default(),
            transport: Transport::Tcp,
            reorder_packets: 256,
            reorder_window: Duration::from_millis(100),
            udp_fallback_after: Duration::from_secs(3),
            rtcp_reports: true,
            tracks: TrackSelection::FirstOfEachKind,
            start: None,
            end: None,
            scale: None,
        },
        records: vec![],
    }
    .encode();
    let mut next = good.clone();
    next[8..10].copy_from_slice(&(VERSION + 1).to_be_bytes());
    assert_eq!(
        Capture::parse(&next),
        Err(CaptureError::UnsupportedVersion(VERSION + 1))
    );
    let mut v0 = good.clone();
    v0[9] = 0;
    assert_eq!(Capture::parse(&v0), Err(CaptureError::UnsupportedVersion(0)));
    assert!(matches!(Capture::parse(b"RTSP"), Err(CaptureError::Truncated { .. })));
    let mut huge = good.clone();
    huge[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(Capture::parse(&huge), Err(CaptureError::HeaderTooLong(u32::MAX)));
    let at = good.len();
    good.extend_from_slice(&[99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Capture::parse(&good), Err(CaptureError::UnknownRecord { at, kind: 99 }));
    good[at] = KIND_INPUT;
    good[at + 9..at + 13].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        Capture::parse(&good),
        Err(CaptureError::RecordTooLong { at, len: u32::MAX })
    );
}

/// The kinds a capture has a code for.
fn arb_io_kind() -> impl Strategy<Value = std::io::ErrorKind> {
    use std::io::ErrorKind as K;
    proptest::sample::select(vec![
        K::Other,
        K::ConnectionRefused,
        K::ConnectionReset,
        K::HostUnreachable,
        K::NetworkUnreachable,
        K::BrokenPipe,
        K::TimedOut,
        K::UnexpectedEof,
        K::OutOfMemory,
    ])
}

fn arb_kind() -> impl Strategy<Value = RecordKind> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>(), any::<u16>()).prop_map(|(ip, a, b)| RecordKind::Connected {
            local: SocketAddr::from((ip, a)),
            peer: SocketAddr::from(([127, 0, 0, 1], b)),
        }),
        (arb_io_kind(), "[a-z ]{0,20}").prop_map(|(kind, reason)| RecordKind::ConnectFailed { kind, reason }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| RecordKind::Input(v.into())),
        Just(RecordKind::Eof),
        (arb_io_kind(), "\\PC{0,20}").prop_map(|(kind, reason)| RecordKind::IoError { kind, reason }),
        Just(RecordKind::Timeout),
        Just(RecordKind::Close),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Capture::parse(&data);
    }

    #[test]
    fn arbitrary_records_after_a_valid_header_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut data = Capture {
            header: CaptureHeader {
                url: "rtsp://h/".into(),
                had_credentials: true,
                enable_video: true,
                enable_audio: true,
                timeout: Duration::from_secs(1),
                forward_address: None,
                limits: Limits::default(),
                transport: Transport::Tcp,
                reorder_packets: 256,
                reorder_window: Duration::from_millis(100),
                udp_fallback_after: Duration::from_secs(3),
                rtcp_reports: true,
                tracks: TrackSelection::FirstOfEachKind,
                start: None,
                end: None,
                scale: None,
            },
            records: vec![],
        }
        .encode();
        data.extend_from_slice(&tail);
        if let Ok(c) = Capture::parse(&data) {
            // Whatever parses also replays without panicking.
            let _ = replay(&c, ClientOptions::default(), Instant::now());
        }
    }

    #[test]
    fn records_round_trip(
        kinds in proptest::collection::vec((any::<u64>(), arb_kind()), 0..16),
        video in any::<bool>(),
        creds in any::<bool>(),
        timeout_ns in 1u64..u64::MAX,
    ) {
        let capture = Capture {
            header: CaptureHeader {
                url: "rtsp://127.0.0.1:1/x".into(),
                had_credentials: creds,
                enable_video: video,
                enable_audio: true,
                timeout: Duration::from_nanos(timeout_ns),
                forward_address: None,
                limits: Limits::default(),
                transport: Transport::Tcp,
                reorder_packets: 256,
                reorder_window: Duration::from_millis(100),
                udp_fallback_after: Duration::from_secs(3),
                rtcp_reports: true,
                tracks: if video { TrackSelection::Video } else { TrackSelection::FirstOfEachKind },
                start: None,
                end: None,
                scale: None,
            },
            records: kinds
                .into_iter()
                .map(|(ns, kind)| Record { offset: Duration::from_nanos(ns), kind })
                .collect(),
        };
        prop_assert_eq!(Capture::parse(&capture.encode()).unwrap(), capture);
    }
}

fn tcp_header() -> CaptureHeader {
    CaptureHeader {
        url: "rtsp://127.0.0.1:1/x".into(),
        had_credentials: false,
        enable_video: true,
        enable_audio: true,
        timeout: Duration::from_secs(1),
        forward_address: None,
        limits: Limits::default(),
        transport: Transport::Tcp,
        reorder_packets: 256,
        reorder_window: Duration::from_millis(100),
        udp_fallback_after: Duration::from_secs(3),
        rtcp_reports: true,
        tracks: TrackSelection::FirstOfEachKind,
        start: None,
        end: None,
        scale: None,
    }
}

#[test]
fn a_replayed_connect_failure_keeps_its_error_kind() {
    let t0 = Instant::now();
    let opts = ClientOptions {
        capture: Some("x".into()),
        ..Default::default()
    };
    let mut rec = Client::new("rtsp://127.0.0.1:1/x", opts, t0).unwrap();
    let refused = std::io::Error::from_raw_os_error(111);
    let reason = refused.to_string();
    rec.handle_input(
        t0 + Duration::from_millis(1),
        Input::ConnectFailed(crate::client::IoFailure::from_io(&refused, &reason)),
    );
    let mut live = Vec::new();
    while let Output::Event(e) = rec.poll_output() {
        live.push(e);
    }
    let capture = Capture::parse(&rec.take_capture().unwrap()).unwrap();
    let replayed = replay(&capture, ClientOptions::default(), t0).unwrap();
    assert_eq!(replayed, live);
    let Some(Event::Closed(closed)) = replayed.last() else {
        panic!("{replayed:?}")
    };
    let Some(crate::Error::Connection(e)) = &closed.error else {
        panic!("{closed:?}")
    };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    // The replay rebuilds the io::Error from the kind and the reason.
    assert_eq!(e.io_error().unwrap().kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn version_2_failures_are_read_without_a_kind() {
    // A version 2 file: a connect-failure record whose payload is only the reason.
    let mut v2 = Capture {
        header: tcp_header(),
        records: vec![],
    }
    .encode();
    v2[8..10].copy_from_slice(&2u16.to_be_bytes());
    for kind in [2u8, 5] {
        v2.push(kind);
        v2.extend_from_slice(&7u64.to_be_bytes());
        v2.extend_from_slice(&7u32.to_be_bytes());
        v2.extend_from_slice(b"refused");
    }
    let c = Capture::parse(&v2).unwrap();
    let other = std::io::ErrorKind::Other;
    assert_eq!(
        c.records.iter().map(|r| r.kind.clone()).collect::<Vec<_>>(),
        [
            RecordKind::ConnectFailed {
                kind: other,
                reason: "refused".into()
            },
            RecordKind::IoError {
                kind: other,
                reason: "refused".into()
            },
        ]
    );
    // Version 3 reads the first byte as the kind: an empty payload is an error.
    let mut v3 = Capture {
        header: tcp_header(),
        records: vec![],
    }
    .encode();
    let at = v3.len();
    v3.push(2);
    v3.extend_from_slice(&[0; 12]);
    assert!(matches!(Capture::parse(&v3), Err(CaptureError::BadRecord { at: a, .. }) if a == at));
}

#[test]
fn kinds_without_a_code_are_recorded_as_other() {
    let t0 = Instant::now();
    let mut w = CaptureWriter::new(&tcp_header(), t0);
    w.record(
        t0,
        Input::IoError(crate::client::IoFailure::new(std::io::ErrorKind::IsADirectory, "odd")),
    );
    let c = Capture::parse(&w.take()).unwrap();
    assert_eq!(
        c.records[0].kind,
        RecordKind::IoError {
            kind: std::io::ErrorKind::Other,
            reason: "odd".into()
        }
    );
}

#[test]
fn version_3_header_without_track_selection_reads_as_the_default() {
    let header = CaptureHeader::for_options("rtsp://h/", false, &ClientOptions::default());
    let mut file = Capture {
        header,
        records: vec![],
    }
    .encode();
    let len = u32::from_be_bytes(file[10..14].try_into().unwrap()) as usize;
    assert_eq!(file.len(), 14 + len);
    assert_eq!(file[13 + len], 0, "the default selection is the last header byte");
    file.pop();
    file[10..14].copy_from_slice(&(len as u32 - 1).to_be_bytes());
    let c = Capture::parse(&file).unwrap();
    assert_eq!(c.header.tracks, TrackSelection::FirstOfEachKind);
    assert_eq!(c.header.transport, Transport::Tcp);
    // And a selection survives the round trip.
    let opts = ClientOptions::default().with_tracks(TrackSelection::Indexes(vec![2, 0]));
    let header = CaptureHeader::for_options("rtsp://h/", false, &opts);
    let c = Capture::parse(
        &Capture {
            header,
            records: vec![],
        }
        .encode(),
    )
    .unwrap();
    assert_eq!(c.header.tracks, TrackSelection::Indexes(vec![2, 0]));
    assert_eq!(
        c.header.apply(ClientOptions::default()).tracks,
        TrackSelection::Indexes(vec![2, 0])
    );
}
