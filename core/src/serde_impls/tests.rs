//! The `serde` feature: every event variant serializes to the documented
//! form (`docs/CLI.md`'s schema, which is this serialization), and the
//! options read back what they wrote.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::client::{
    AudioFrameEvent, ClientOptions, ClosedEvent, ConnectEvent, Event, FallbackEvent, LogKinds, LossEvent,
    MetadataFrameEvent, MethodEvent, PortRange, RtcpEvent, RtpEvent, Track, TrackSelection, TrackStats, Transport,
    TransportKind, VideoFrameEvent, Warning,
};
use crate::codec::{AudioCodec, AudioFrame, DepacketizeError, MetadataFrame, VideoCodec, VideoFrame};
use crate::error::{ConnectionError, Error, ProtocolError};
use crate::message::{FramingError, Headers, Limits, Method};
use crate::rtcp::{Bye, ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SdesItem, SenderReport};
use crate::rtp::RtpPacket;
use crate::sdp::{MediaKind, Sdp};
use crate::server::{CloseReason, GroupRange, MulticastEnd, PlayCount, ServerConfig, ServerEvent, SessionTransport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\na=control:*\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n\
                   a=control:stream=0\r\nm=audio 0 RTP/AVP 0\r\na=control:stream=1\r\n";

fn track() -> Track {
    Track {
        index: 0,
        media_index: 0,
        kind: MediaKind::Video,
        codec: "H264".into(),
        payload_type: 96,
        clock_rate: 90_000,
        channels: None,
        control_url: "rtsp://127.0.0.1/cam/stream=0".into(),
        transport: TransportKind::Udp {
            client_ports: (50_000, 50_001),
            server_ports: Some((6970, 6971)),
            source: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ssrc: None,
        },
    }
}

fn rtp_packet() -> RtpPacket {
    RtpPacket {
        sequence_number: 7,
        timestamp: 90_000,
        ssrc: 0x1234,
        marker: true,
        payload_type: 96,
        csrc_count: 0,
        extension: None,
        padding: 0,
        payload: Bytes::from_static(&[1, 2, 3, 4, 5]),
    }
}

fn block() -> ReportBlock {
    ReportBlock {
        ssrc: 7,
        fraction_lost: 64,
        cumulative_lost: -1,
        highest_sequence: 65_540,
        jitter: 12,
        last_sr: 0,
        delay_since_last_sr: 0,
    }
}

fn refused() -> Error {
    Error::Connection(ConnectionError::with_source(
        "cannot connect to 127.0.0.1:1: Connection refused (os error 111)",
        std::io::Error::from_raw_os_error(111),
    ))
}

/// One event of each kind, with the `type` it must serialize with. The
/// match makes a new variant a compile error here until it has a sample.
fn one_of_each() -> Vec<(Event, &'static str)> {
    let type_of = |e: &Event| match e {
        Event::Connect(_) => "connect",
        Event::Method(_) => "rtsp",
        Event::Rtp(_) => "rtp",
        Event::Rtcp(_) => "rtcp",
        Event::RtcpSent(_) => "rtcp_sent",
        Event::Fallback(_) => "fallback",
        Event::Video(_) => "video",
        Event::Audio(_) => "audio",
        Event::Metadata(_) => "metadata",
        Event::Loss(_) => "loss",
        Event::Warning(_) => "warning",
        Event::Closed(_) => "closed",
    };
    let rtcp = RtcpEvent {
        track: 0,
        channel: 1,
        packets: vec![RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 9,
            reports: vec![block()],
        })],
        recv_tick: ms(2000),
    };
    let events = vec![
        Event::Connect(ConnectEvent {
            target: "127.0.0.1:8554".into(),
            elapsed: ms(3),
            result: Ok((addr("127.0.0.1:40000"), addr("127.0.0.1:8554"))),
            tls: None,
            tunnel: None,
        }),
        Event::Method(Box::new(MethodEvent {
            method: Method::Describe,
            url: "rtsp://127.0.0.1/cam".into(),
            cseq: 2,
            status: 200,
            reason: "OK".into(),
            request_headers: Headers::new().with("CSeq", "2").with("Authorization", "Digest ***"),
            headers: Headers::new().with("CSeq", "2").with("Content-Type", "application/sdp"),
            body: Bytes::from_static(SDP.as_bytes()),
            sdp: Some(Sdp::parse(SDP.as_bytes()).unwrap()),
            track: None,
            elapsed: ms(4),
            session_elapsed: ms(9),
        })),
        Event::Rtp(RtpEvent {
            track: 0,
            channel: 0,
            packet: rtp_packet(),
            recv_tick: ms(1500),
        }),
        Event::Rtcp(rtcp.clone()),
        Event::RtcpSent(rtcp),
        Event::Fallback(FallbackEvent {
            from: Transport::Udp,
            to: Transport::Tcp,
            reason: "the server answered 461".into(),
            session_elapsed: ms(250),
        }),
        Event::Video(VideoFrameEvent {
            track: 0,
            frame: VideoFrame {
                codec: VideoCodec::H265,
                timestamp: 3000,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x40]),
                keyframe: true,
                new_parameters: true,
                loss: 0,
            },
            extended_timestamp: 4_294_970_296,
            recv_tick: ms(40),
        }),
        Event::Audio(AudioFrameEvent {
            track: 1,
            frame: AudioFrame {
                codec: AudioCodec::AacLatm,
                timestamp: 1024,
                data: Bytes::from_static(&[0x21; 10]),
                sample_count: 1024,
                sample_rate: 48_000,
                channels: 2,
                loss: 3,
            },
            extended_timestamp: 1024,
            recv_tick: ms(25),
        }),
        Event::Loss(LossEvent {
            track: 0,
            lost: 2,
            sequence_number: 10,
            total_lost: 5,
            recv_tick: ms(125),
        }),
        Event::Warning(Warning::UnsupportedCodec {
            track: 1,
            codec: "VP8".into(),
        }),
        Event::Closed(ClosedEvent {
            session_elapsed: ms(1500),
            error: Some(refused()),
        }),
        Event::Metadata(MetadataFrameEvent {
            track: 2,
            frame: MetadataFrame {
                timestamp: 90_000,
                data: Bytes::from_static(b"<tt:MetadataStream><wsnt:Topic>tns1:A/B</wsnt:Topic></tt:MetadataStream>"),
                loss: 1,
            },
            extended_timestamp: 90_000,
            recv_tick: ms(500),
        }),
    ];
    events.into_iter().map(|e| (e.clone(), type_of(&e))).collect()
}

#[test]
fn every_event_variant_serializes_with_its_type() {
    let all = one_of_each();
    assert_eq!(all.len(), 12, "one sample per variant");
    for (event, kind) in &all {
        let v = to_json(event);
        assert_eq!(v["type"], *kind, "{v}");
        // The type comes first, as `docs/CLI.md` shows the lines.
        let text = serde_json::to_string(event).unwrap();
        assert!(text.starts_with(&format!(r#"{{"type":"{kind}""#)), "{text}");
    }
}

#[test]
fn events_serialize_to_the_documented_schema() {
    let all: Vec<Value> = one_of_each().iter().map(|(e, _)| to_json(e)).collect();
    assert_eq!(
        all[0],
        json!({"type": "connect", "target": "127.0.0.1:8554", "elapsed_s": 0.003,
               "local": "127.0.0.1:40000", "peer": "127.0.0.1:8554", "error": null})
    );
    let rtsp = &all[1];
    for (k, v) in [
        ("method", json!("DESCRIBE")),
        ("url", json!("rtsp://127.0.0.1/cam")),
        ("cseq", json!(2)),
        ("status", json!(200)),
        ("reason", json!("OK")),
        ("elapsed_s", json!(0.004)),
        ("session_elapsed_s", json!(0.009)),
        ("headers", json!([["CSeq", "2"], ["Content-Type", "application/sdp"]])),
        ("body", json!(SDP)),
    ] {
        assert_eq!(rtsp[k], v, "{k}: {rtsp}");
    }
    assert!(rtsp.get("track").is_none(), "only SETUP adds a track: {rtsp}");
    let media = &rtsp["media"][0];
    for (k, v) in [
        ("kind", json!("video")),
        ("codec", json!("H264")),
        ("payload_type", json!(96)),
        ("clock_rate", json!(90_000)),
        ("channels", Value::Null),
        ("control", json!("stream=0")),
        ("fmtp", json!([["packetization-mode", "1"]])),
    ] {
        assert_eq!(media[k], v, "{k}: {media}");
    }
    assert_eq!(rtsp["media"][1]["codec"], "PCMU");
    assert_eq!(
        all[2],
        json!({"type": "rtp", "track": 0, "channel": 0, "seq": 7, "timestamp": 90000, "ssrc": 4660,
               "marker": true, "payload_type": 96, "size": 5, "recv_tick_s": 1.5})
    );
    let rr = json!({"track": 0, "channel": 1, "packets": [{"kind": "rr", "ssrc": 9, "reports": 1, "blocks": [
        {"ssrc": 7, "fraction_lost": 64, "cumulative_lost": -1, "highest_sequence": 65540, "jitter": 12,
         "last_sr": 0, "delay_since_last_sr": 0}]}], "recv_tick_s": 2.0});
    let mut rtcp = rr.clone();
    rtcp["type"] = json!("rtcp");
    assert_eq!(all[3], rtcp);
    rtcp["type"] = json!("rtcp_sent");
    assert_eq!(all[4], rtcp);
    assert_eq!(
        all[5],
        json!({"type": "fallback", "from": "udp", "to": "tcp", "reason": "the server answered 461",
               "session_elapsed_s": 0.25})
    );
    assert_eq!(
        all[6],
        json!({"type": "video", "track": 0, "codec": "H265", "timestamp": 3000,
               "extended_timestamp": 4_294_970_296_i64, "size": 5, "keyframe": true, "new_parameters": true,
               "loss": 0, "recv_tick_s": 0.04})
    );
    assert_eq!(
        all[7],
        json!({"type": "audio", "track": 1, "codec": "AAC-LATM", "timestamp": 1024, "extended_timestamp": 1024,
               "size": 10, "samples": 1024, "sample_rate": 48000, "channels": 2, "loss": 3, "recv_tick_s": 0.025})
    );
    assert_eq!(
        all[8],
        json!({"type": "loss", "track": 0, "lost": 2, "sequence_number": 10, "total_lost": 5, "recv_tick_s": 0.125})
    );
    assert_eq!(
        all[9],
        json!({"type": "warning", "kind": "unsupported_codec", "track": 1,
               "message": "unsupported codec VP8: no frames, RTP statistics only", "codec": "VP8"})
    );
    assert_eq!(
        all[10],
        json!({"type": "closed", "session_elapsed_s": 1.5,
               "error": "connection error: cannot connect to 127.0.0.1:1: Connection refused (os error 111)",
               "error_kind": "connection"})
    );
    assert_eq!(
        all[11],
        json!({"type": "metadata", "track": 2, "timestamp": 90000, "extended_timestamp": 90000, "size": 72,
               "loss": 1, "root": "tt:MetadataStream", "topic": "tns1:A/B",
               "xml": "<tt:MetadataStream><wsnt:Topic>tns1:A/B</wsnt:Topic></tt:MetadataStream>",
               "recv_tick_s": 0.5})
    );
}

#[test]
fn a_failed_connect_and_a_setup() {
    let failed = Event::Connect(ConnectEvent {
        target: "127.0.0.1:1".into(),
        elapsed: ms(1),
        result: Err(refused()),
        tls: None,
        tunnel: None,
    });
    let v = to_json(&failed);
    assert_eq!((&v["local"], &v["peer"]), (&Value::Null, &Value::Null));
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("connection error: cannot connect"));

    let setup = Event::Method(Box::new(MethodEvent {
        method: Method::Setup,
        url: "rtsp://127.0.0.1/cam/stream=0".into(),
        cseq: 3,
        status: 200,
        reason: "OK".into(),
        request_headers: Headers::new(),
        headers: Headers::new(),
        body: Bytes::new(),
        sdp: None,
        track: Some(track()),
        elapsed: ms(1),
        session_elapsed: ms(12),
    }));
    let v = to_json(&setup);
    assert!(v.get("media").is_none(), "{v}");
    assert_eq!(v["body"], "");
    assert_eq!(
        v["track"],
        json!({"index": 0, "media_index": 0, "kind": "video", "codec": "H264", "payload_type": 96,
               "clock_rate": 90000, "channels": null, "control_url": "rtsp://127.0.0.1/cam/stream=0",
               "transport": {"kind": "udp", "client_ports": [50000, 50001], "server_ports": [6970, 6971],
                             "source": "127.0.0.1", "ssrc": null}})
    );
    let tcp = TransportKind::TcpInterleaved {
        rtp_channel: 2,
        rtcp_channel: 3,
    };
    assert_eq!(
        to_json(&tcp),
        json!({"kind": "tcp", "rtp_channel": 2, "rtcp_channel": 3})
    );
    let multicast = TransportKind::Multicast {
        group: "239.1.2.3".parse().unwrap(),
        ports: (5000, 5001),
        ttl: Some(4),
        source: "192.0.2.1".parse().unwrap(),
        ssrc: Some(5),
    };
    assert_eq!(
        to_json(&multicast),
        json!({"kind": "multicast", "group": "239.1.2.3", "ports": [5000, 5001], "ttl": 4,
               "source": "192.0.2.1", "ssrc": 5})
    );
    // Plain values read back.
    for t in [tcp, multicast, track().transport] {
        assert_eq!(serde_json::from_value::<TransportKind>(to_json(&t)).unwrap(), t);
    }
    assert_eq!(serde_json::from_value::<Track>(to_json(&track())).unwrap(), track());
    let sdp = Sdp::parse(SDP.as_bytes()).unwrap();
    assert_eq!(serde_json::from_value::<Sdp>(to_json(&sdp)).unwrap(), sdp);
}

#[test]
fn every_rtcp_packet_kind() {
    let sdes = vec![SdesChunk {
        ssrc: 3,
        items: vec![SdesItem {
            item_type: 1,
            value: Bytes::from_static(b"cam@host"),
        }],
    }];
    let packets = [
        RtcpPacket::SenderReport(SenderReport {
            ssrc: 1,
            ntp_timestamp: 2,
            rtp_timestamp: 3,
            packet_count: 4,
            octet_count: 5,
            reports: vec![],
        }),
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 9,
            reports: vec![block()],
        }),
        RtcpPacket::SourceDescription(sdes),
        RtcpPacket::Bye(Bye {
            ssrcs: vec![1, 2],
            reason: Some("done".into()),
        }),
        RtcpPacket::Other {
            packet_type: 206,
            count: 1,
            payload: Bytes::from_static(&[0; 8]),
        },
    ];
    let v: Vec<Value> = packets.iter().map(to_json).collect();
    assert_eq!(
        v[0],
        json!({"kind": "sr", "ssrc": 1, "ntp_timestamp": 2, "rtp_timestamp": 3, "packet_count": 4,
               "octet_count": 5, "reports": 0, "blocks": []})
    );
    assert_eq!((&v[1]["kind"], &v[1]["reports"]), (&json!("rr"), &json!(1)));
    assert_eq!(
        v[2],
        json!({"kind": "sdes", "cname": "cam@host", "chunks": [{"ssrc": 3, "items": [
            {"item_type": 1, "value": "cam@host"}]}]})
    );
    assert_eq!(v[3], json!({"kind": "bye", "ssrcs": [1, 2], "reason": "done"}));
    assert_eq!(
        v[4],
        json!({"kind": "other", "packet_type": 206, "count": 1, "size": 8})
    );
    // Each report on its own has the fields it has in a packet.
    let RtcpPacket::ReceiverReport(rr) = &packets[1] else {
        unreachable!()
    };
    let mut alone = v[1].clone();
    alone.as_object_mut().unwrap().remove("kind");
    assert_eq!(to_json(rr), alone);
    assert_eq!(to_json(&rtp_packet())["seq"], 7);
}

#[test]
fn every_warning_has_kind_track_and_message() {
    let warnings = [
        Warning::CseqMismatch {
            method: Method::Play,
            expected: 4,
            got: Some(5),
        },
        Warning::UnknownChannel { channel: 9, len: 12 },
        Warning::BadPacket {
            track: 0,
            channel: 0,
            error: "RTP version 1".into(),
        },
        Warning::KeepaliveFailed {
            method: Method::GetParameter,
            status: 405,
            fallback: Some(Method::Options),
        },
        Warning::ServerRequest {
            method: Method::Announce,
        },
        Warning::TeardownUnanswered,
        Warning::Depacketize {
            track: 1,
            error: DepacketizeError::Empty { codec: "H264" },
        },
        Warning::UnsupportedCodec {
            track: 1,
            codec: "VP8".into(),
        },
        Warning::ForeignDatagram {
            track: 0,
            from: addr("192.0.2.9:5000"),
        },
        Warning::Control {
            method: Method::Pause,
            status: Some(455),
            reason: "Method Not Valid in This State".into(),
        },
        Warning::BadContentBase {
            header: "Content-Base",
            value: "192.168.1.10:554/stream0/".into(),
            used: "rtsp://192.168.1.10/stream0".into(),
        },
    ];
    for w in &warnings {
        let v = to_json(w);
        assert_eq!(v["kind"], w.kind(), "{v}");
        assert_eq!(v["track"], json!(w.track()), "{v}");
        assert_eq!(v["message"], w.to_string(), "{v}");
    }
    assert_eq!(
        to_json(&warnings[0]),
        json!({"kind": "cseq_mismatch", "track": null, "message": "PLAY response has CSeq Some(5), expected 4",
               "method": "PLAY", "expected": 4, "got": 5})
    );
    assert_eq!(to_json(&warnings[6])["error"], "H264: empty payload");
    assert_eq!(to_json(&warnings[8])["from"], "192.0.2.9:5000");
    assert_eq!(
        to_json(&warnings[9]),
        json!({"kind": "control", "track": null,
               "message": "PAUSE refused by the server: 455 Method Not Valid in This State; the session goes on",
               "method": "PAUSE", "status": 455, "reason": "Method Not Valid in This State"})
    );
    assert_eq!(
        to_json(&warnings[10]),
        json!({"kind": "bad_content_base", "track": null,
               "message": "Content-Base \"192.168.1.10:554/stream0/\" is not an absolute rtsp:// URL: ignored; controls resolved against rtsp://192.168.1.10/stream0",
               "header": "Content-Base", "value": "192.168.1.10:554/stream0/", "used": "rtsp://192.168.1.10/stream0"})
    );
}

#[test]
fn errors_have_a_kind_and_a_message() {
    let errors = [
        refused(),
        Error::Timeout {
            waiting_for: "connection".into(),
            timeout: ms(4000),
        },
        Error::Protocol(ProtocolError::Framing(FramingError::UnexpectedByte { byte: 0x17 })),
        Error::Response {
            method: Method::Describe,
            status: 401,
            reason: "Unauthorized".into(),
        },
        Error::Config("bad".into()),
    ];
    let v: Vec<Value> = errors.iter().map(to_json).collect();
    assert_eq!(
        v[0],
        json!({"kind": "connection", "io_kind": "ConnectionRefused",
               "message": "connection error: cannot connect to 127.0.0.1:1: Connection refused (os error 111)"})
    );
    assert_eq!(
        v[1],
        json!({"kind": "timeout", "message": "timeout: no connection within 4s", "waiting_for": "connection",
               "timeout_s": 4.0})
    );
    assert_eq!(v[2]["kind"], "protocol");
    assert_eq!(v[2]["message"], errors[2].to_string());
    assert_eq!(
        v[3],
        json!({"kind": "response", "message": "DESCRIBE failed: 401 Unauthorized", "method": "DESCRIBE",
               "status": 401, "reason": "Unauthorized"})
    );
    assert_eq!(v[4], json!({"kind": "config", "message": "invalid configuration: bad"}));
    let Error::Connection(c) = &errors[0] else {
        unreachable!()
    };
    assert_eq!(to_json(c)["io_kind"], "ConnectionRefused");
}

#[test]
fn every_server_event_serializes_with_its_type() {
    let events = [
        ServerEvent::Request {
            method: Method::Options,
            uri: "rtsp://h/a.mp4".into(),
            cseq: Some(1),
            status: 200,
        },
        ServerEvent::SessionStarted {
            session_id: "s".into(),
            path: "a.mp4".into(),
            tracks: 2,
            play_count: PlayCount::Forever,
            transport: SessionTransport::Udp,
        },
        ServerEvent::PlaybackEnded {
            session_id: "s".into(),
            loops: 1,
            packets: 10,
            octets: 1000,
        },
        ServerEvent::FellBehind {
            session_id: "s".into(),
            behind: ms(6000),
            skipped: ms(1000),
            times: 1,
        },
        ServerEvent::ReceiverReport {
            session_id: "s".into(),
            track: 0,
            fraction_lost: 0,
            cumulative_lost: 0,
            highest_sequence: 100,
            jitter: ms(2),
            sent: 101,
        },
        ServerEvent::DatagramsDropped {
            dropped: 3,
            last_from: addr("192.0.2.1:9"),
        },
        ServerEvent::Detached { session_id: "s".into() },
        ServerEvent::MulticastStarted {
            path: "a.mp4".into(),
            group: Ipv4Addr::new(239, 255, 42, 0),
            tracks: 1,
            play_count: PlayCount::Times(NonZeroU32::new(3).unwrap()),
        },
        ServerEvent::MulticastEnded {
            path: "a.mp4".into(),
            group: Ipv4Addr::new(239, 255, 42, 0),
            reason: MulticastEnd::NoMembers,
            loops: 0,
            packets: 5,
            octets: 500,
        },
        ServerEvent::Closed {
            reason: CloseReason::SessionTimeout(ms(60_000)),
            elapsed: ms(61_000),
        },
        ServerEvent::AuthFailed {
            user: Some("alice".into()),
            reason: crate::server::auth::Refusal::WrongPassword,
        },
        ServerEvent::Fault {
            session_id: "s".into(),
            since_play: Some(ms(1500)),
            fault: crate::server::FaultEvent::Drop {
                track: 1,
                seq: 7,
                rtp_ts: 90_000,
            },
        },
        ServerEvent::Fault {
            session_id: "s".into(),
            since_play: None,
            fault: crate::server::FaultEvent::Quirk {
                quirk: crate::server::Quirk::WrongCseq,
                method: Method::Options,
            },
        },
        ServerEvent::Progress {
            session_id: "s".into(),
            path: "a.mp4".into(),
            transport: SessionTransport::Mixed,
            packets: 7,
            octets: 700,
            behind: ms(250),
            last: true,
        },
        ServerEvent::Publishing {
            session_id: "p".into(),
            path: "live".into(),
            tracks: 2,
            skipped: vec!["track 2: audio PCMU/8000 is not served".into()],
        },
        ServerEvent::Upstream {
            path: "cam".into(),
            up: false,
            reason: Some("connection refused".into()),
        },
    ];
    let type_of = |e: &ServerEvent| match e {
        ServerEvent::Request { .. } => "request",
        ServerEvent::SessionStarted { .. } => "session_started",
        ServerEvent::PlaybackEnded { .. } => "playback_ended",
        ServerEvent::Paused { .. } => "paused",
        ServerEvent::Resumed { .. } => "resumed",
        ServerEvent::FellBehind { .. } => "fell_behind",
        ServerEvent::ReceiverReport { .. } => "receiver_report",
        ServerEvent::DatagramsDropped { .. } => "datagrams_dropped",
        ServerEvent::Detached { .. } => "detached",
        ServerEvent::MulticastStarted { .. } => "multicast_started",
        ServerEvent::MulticastEnded { .. } => "multicast_ended",
        ServerEvent::Closed { .. } => "closed",
        ServerEvent::AuthFailed { .. } => "auth_failed",
        ServerEvent::Fault { .. } => "fault",
        ServerEvent::Progress { .. } => "progress",
        ServerEvent::Publishing { .. } => "publishing",
        ServerEvent::Upstream { .. } => "upstream",
    };
    for e in &events {
        assert_eq!(to_json(e)["type"], type_of(e));
    }
    assert_eq!(to_json(&events[1])["play_count"], 0);
    assert_eq!(to_json(&events[1])["transport"], "udp");
    let progress = to_json(&events[events.len() - 3]);
    assert_eq!(
        to_json(&events[events.len() - 1]),
        json!({"type": "upstream", "path": "cam", "up": false, "reason": "connection refused"})
    );
    assert_eq!(
        to_json(&events[events.len() - 2]),
        json!({"type": "publishing", "session_id": "p", "path": "live", "tracks": 2,
               "skipped": ["track 2: audio PCMU/8000 is not served"]})
    );
    assert_eq!(
        (&progress["transport"], &progress["behind_s"], &progress["last"]),
        (&json!("mixed"), &json!(0.25), &json!(true))
    );
    assert_eq!(to_json(&events[3])["behind_s"], 6.0);
    assert_eq!(to_json(&events[4])["jitter_s"], 0.002);
    assert_eq!(to_json(&events[7])["group"], "239.255.42.0");
    assert_eq!(to_json(&events[8])["reason"], "no_members");
    assert_eq!(
        to_json(&events[9]),
        json!({"type": "closed", "reason": {"kind": "session_timeout",
               "message": "session timed out (60s without requests or data)"}, "elapsed_s": 61.0})
    );
    assert_eq!(
        to_json(&events[10]),
        json!({"type": "auth_failed", "user": "alice",
               "reason": {"kind": "wrong_password", "message": "wrong password"}})
    );
    assert_eq!(
        to_json(&events[11]),
        json!({"type": "fault", "session_id": "s", "since_play_s": 1.5, "fault": "drop",
               "track": 1, "seq": 7, "rtp_ts": 90000})
    );
    assert_eq!(
        to_json(&events[12]),
        json!({"type": "fault", "session_id": "s", "since_play_s": null, "fault": "quirk",
               "quirk": "wrong_cseq", "method": "OPTIONS"})
    );
}

/// Every field away from its default, so that the round trip checks them all.
fn unusual_options() -> ClientOptions {
    ClientOptions {
        enable_video: false,
        enable_audio: false,
        enable_metadata: true,
        timeout: Duration::new(2, 500_000_001),
        forward_address: Some("127.0.0.1:9554".into()),
        session_id: Some("cam7".into()),
        log_prefix: "[cam] ".into(),
        log: LogKinds::RTSP | LogKinds::RTCP,
        user_agent: "test/1".into(),
        limits: Limits {
            max_header_bytes: 1000,
            max_body_bytes: 2000,
            max_headers: 30,
        },
        max_frame_bytes: 12345,
        assemble_frames: false,
        capture: Some("/tmp/x.rtspcap".into()),
        transport: Transport::Multicast,
        udp_ports: Some(PortRange::new(40_000, 40_099).unwrap()),
        reorder_packets: 17,
        reorder_window: Duration::ZERO,
        udp_fallback_after: ms(750),
        rtcp_reports: false,
        tracks: TrackSelection::Indexes(vec![0, 2]),
        // Never serialized: it comes back as None.
        credentials: None,
        headers: Headers::new().with("Require", "onvif-replay"),
        ca_file: Some("/etc/cam-ca.pem".into()),
        tls_fingerprint: Some("AB".repeat(32)),
        insecure: true,
        tunnel: crate::client::Tunnel::Http,
        start: Some(Duration::from_millis(2500)),
        end: Some(Duration::from_secs(9)),
        scale: Some(2.0),
        // Never serialized: it comes back as None.
        backchannel: None,
    }
}

#[test]
fn client_options_round_trip() {
    for opts in [ClientOptions::default(), unusual_options()] {
        let json = serde_json::to_string(&opts).unwrap();
        let back: ClientOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(format!("{back:?}"), format!("{opts:?}"), "{json}");
    }
    let v = to_json(&unusual_options());
    assert_eq!(v["timeout_s"], 2.500000001);
    assert_eq!(v["log"], json!(["rtsp", "rtcp"]));
    assert_eq!(v["transport"], "multicast");
    assert_eq!(v["udp_ports"], "40000-40099");
    assert_eq!(to_json(&ClientOptions::default())["udp_ports"], Value::Null);
}

#[test]
fn client_options_read_with_defaults_and_refuse_what_they_do_not_know() {
    let opts: ClientOptions =
        serde_json::from_str(r#"{"transport": "udp_multicast", "timeout_s": 10, "log": []}"#).unwrap();
    assert_eq!(opts.transport, Transport::Multicast);
    assert_eq!(opts.timeout, Duration::from_secs(10));
    assert_eq!(opts.log, LogKinds::NONE);
    assert_eq!(opts.reorder_packets, ClientOptions::default().reorder_packets);
    assert_eq!(opts.limits, Limits::default());
    let limits: ClientOptions = serde_json::from_str(r#"{"limits": {"max_headers": 5}}"#).unwrap();
    assert_eq!(limits.limits.max_headers, 5);
    assert_eq!(limits.limits.max_body_bytes, Limits::default().max_body_bytes);
    for bad in [
        r#"{"timeout": 4}"#,
        r#"{"timeout_s": -1}"#,
        r#"{"transport": "sctp"}"#,
        r#"{"udp_ports": "5001-5002"}"#,
        r#"{"log": ["rtsp", "everything"]}"#,
        r#"{"limits": {"max_lines": 5}}"#,
    ] {
        assert!(serde_json::from_str::<ClientOptions>(bad).is_err(), "{bad}");
    }
}

#[test]
fn server_config_round_trip() {
    let config = ServerConfig {
        max_lag: Duration::MAX,
        initial_rtp: Some((65_500, u32::MAX - 180_000)),
        multicast_groups: "239.1.1.0-239.1.1.15".parse::<GroupRange>().unwrap(),
        udp_ports: Some(PortRange::new(6000, 6099).unwrap()),
        udp: false,
        backchannel_codec: crate::client::BackchannelCodec::AacLatm,
        ..ServerConfig::default()
    };
    let json = serde_json::to_string(&config).unwrap();
    let back: ServerConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(format!("{back:?}"), format!("{config:?}"), "{json}");
    let v = to_json(&config);
    assert_eq!(v["initial_rtp"], json!([65500, u32::MAX - 180_000]));
    assert_eq!(v["multicast_groups"], "239.1.1.0-239.1.1.15");
    assert_eq!(v["session_timeout_s"], 60.0);
    assert_eq!(v["backchannel_codec"], "aac-latm");
    let partial: ServerConfig = serde_json::from_str(r#"{"max_payload": 1200}"#).unwrap();
    assert_eq!(partial.max_payload, 1200);
    assert_eq!(partial.session_timeout, ServerConfig::default().session_timeout);
    assert_eq!(partial.backchannel_codec, crate::client::BackchannelCodec::Pcmu);
}

#[test]
fn plain_values_round_trip() {
    let stats = TrackStats {
        track: 1,
        received: 100,
        lost: 2,
        duplicates: 1,
        late: 0,
        jitter: 90,
        clock_rate: 90_000,
    };
    assert_eq!(serde_json::from_value::<TrackStats>(to_json(&stats)).unwrap(), stats);
    for m in [Method::Describe, Method::Other("FOO".into())] {
        assert_eq!(serde_json::from_value::<Method>(to_json(&m)).unwrap(), m);
    }
    for k in [MediaKind::Video, MediaKind::Other("text".into())] {
        assert_eq!(serde_json::from_value::<MediaKind>(to_json(&k)).unwrap(), k);
    }
    for c in [
        AudioCodec::Aac,
        AudioCodec::AacLatm,
        AudioCodec::Pcma,
        AudioCodec::Pcmu,
        AudioCodec::Opus,
        AudioCodec::L16,
        AudioCodec::G722,
        AudioCodec::G726,
    ] {
        assert_eq!(serde_json::from_value::<AudioCodec>(to_json(&c)).unwrap(), c);
    }
    assert_eq!(to_json(&VideoCodec::H264), "H264");
    assert_eq!(to_json(&VideoCodec::Mjpeg), "MJPEG");
    assert_eq!(
        serde_json::from_value::<VideoCodec>(json!("MJPEG")).unwrap(),
        VideoCodec::Mjpeg
    );
    let headers = Headers::new()
        .with("WWW-Authenticate", "Digest")
        .with("WWW-Authenticate", "Basic");
    assert_eq!(serde_json::from_value::<Headers>(to_json(&headers)).unwrap(), headers);
    assert_eq!(
        serde_json::from_value::<PlayCount>(json!(0)).unwrap(),
        PlayCount::Forever
    );
    assert_eq!(serde_json::from_value::<PlayCount>(json!(1)).unwrap(), PlayCount::ONCE);
}
