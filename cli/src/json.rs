//! `--json` output: one JSON object per line per event, then the report.
//!
//! The schema is documented in `docs/CLI.md` and is stable: every object has
//! a `type`; field names do not change meaning; durations are seconds as
//! numbers with an `_s` suffix; RTP timestamps, sizes and counts are
//! integers; `error` is a string or `null`; a value that is unknown is
//! `null`, never left out (except `session_id` and `prefix`, which are only
//! there when given). URLs come from the events, which never carry
//! credentials.
//!
//! The lines are `serde_json`'s output. An event is the library's own
//! serialization of it (the `serde` feature of `rtsp-toolkit-core`, whose
//! crate docs describe the forms: the schema is that serialization); the
//! report is [`crate::report`]'s types, which derive theirs. [`line`] puts
//! the `type` first and the [`Context`] fields after it.

use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use rtsp_toolkit_tokio::core::duration_secs;
use rtsp_toolkit_tokio::Event;

use crate::decode::DecodeSummary;
use crate::report::{ConnectInfo, MethodRow, Report, TrackReport};

/// Fields added to every object: the session label and log prefix, when set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// One line: `{"type": kind, session_id, prefix, ...body's fields}`.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    context: &'a Context,
    #[serde(flatten)]
    body: &'a T,
}

/// The line of `body` (anything that serializes as an object) as an object
/// of type `kind`, with the context's fields after the type.
pub fn line<T: Serialize>(kind: &str, ctx: &Context, body: &T) -> String {
    serde_json::to_string(&Line {
        kind,
        context: ctx,
        body,
    })
    .unwrap_or_else(|e| {
        // None of the types written here fails (no maps with non-string
        // keys, paths written as text), but a line is due either way.
        serde_json::json!({"type": kind, "serialization_error": e.to_string()}).to_string()
    })
}

/// The line for one event, or `None` for an event kind this version does not know.
pub fn event_line(ctx: &Context, event: &Event) -> Option<String> {
    // The names are the library's tags (`serde(tag = "type")`); the test
    // below holds them equal.
    Some(match event {
        Event::Connect(c) => line("connect", ctx, c),
        Event::Method(m) => line("rtsp", ctx, &**m),
        Event::Rtp(r) => line("rtp", ctx, r),
        Event::Rtcp(r) => line("rtcp", ctx, r),
        // What the client sent: the same fields as `rtcp` (the tick is when it was handed out).
        Event::RtcpSent(r) => line("rtcp_sent", ctx, r),
        Event::Fallback(f) => line("fallback", ctx, f),
        Event::Video(v) => line("video", ctx, v),
        Event::Audio(a) => line("audio", ctx, a),
        Event::Metadata(m) => line("metadata", ctx, m),
        Event::Loss(l) => line("loss", ctx, l),
        Event::Warning(w) => line("warning", ctx, w),
        Event::Closed(c) => line("closed", ctx, c),
        _ => return None,
    })
}

/// The `demo` command's first line: the embedded server.
pub fn server_line(ctx: &Context, address: SocketAddr, root: &Path, urls: &[String], probe: &str) -> String {
    #[derive(Serialize)]
    struct Server<'a> {
        address: SocketAddr,
        root: String,
        urls: &'a [String],
        probe: &'a str,
    }
    let server = Server {
        address,
        root: root.display().to_string(),
        urls,
        probe,
    };
    line("server", ctx, &server)
}

/// The final `report` object; `decode` is `null` without `--decode` / `--save-first-frame`.
pub fn report_line(
    ctx: &Context,
    url: &str,
    stopped_by: Option<&str>,
    r: &Report,
    decode: Option<&DecodeSummary>,
) -> String {
    #[derive(Serialize)]
    struct ReportLine<'a> {
        url: &'a str,
        #[serde(with = "duration_secs::option")]
        session_elapsed_s: Option<std::time::Duration>,
        error: Option<&'a str>,
        stopped_by: Option<&'a str>,
        connect: Option<&'a ConnectInfo>,
        #[serde(with = "duration_secs::option")]
        play_s: Option<std::time::Duration>,
        #[serde(with = "duration_secs::option")]
        first_video_frame_s: Option<std::time::Duration>,
        #[serde(with = "duration_secs::option")]
        first_audio_frame_s: Option<std::time::Duration>,
        methods: &'a [MethodRow],
        tracks: &'a [TrackReport],
        warnings: u64,
        fallback: Option<&'a str>,
        decode: Option<Decode<'a>>,
    }
    let report = ReportLine {
        url,
        session_elapsed_s: r.session_elapsed,
        error: r.error.as_deref(),
        stopped_by,
        connect: r.connect.as_ref(),
        play_s: r.play_at,
        first_video_frame_s: r.first_video_frame,
        first_audio_frame_s: r.first_audio_frame,
        methods: &r.methods,
        tracks: &r.tracks,
        warnings: r.warnings,
        fallback: r.fallback.as_deref(),
        decode: decode.map(Decode::of),
    };
    line("report", ctx, &report)
}

/// The report's `decode` object.
#[derive(Serialize)]
struct Decode<'a> {
    track: Option<usize>,
    codec: Option<&'a str>,
    all_frames: bool,
    pictures: u64,
    width: Option<u32>,
    height: Option<u32>,
    errors: u64,
    skipped: u64,
    first_error: Option<&'a str>,
    unavailable: Option<&'a str>,
    first_frame: Option<String>,
}

impl<'a> Decode<'a> {
    fn of(d: &'a DecodeSummary) -> Self {
        Decode {
            track: d.track,
            codec: d.codec.as_deref(),
            all_frames: d.all_frames,
            pictures: d.pictures,
            width: d.resolution.map(|(w, _)| w),
            height: d.resolution.map(|(_, h)| h),
            errors: d.errors,
            skipped: d.skipped,
            first_error: d.first_error.as_deref(),
            unavailable: d.unavailable.as_deref(),
            first_frame: d.first_frame.as_ref().map(|p| p.display().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use rtsp_toolkit_tokio::core::client::{ClosedEvent, FallbackEvent};
    use rtsp_toolkit_tokio::core::rtcp::{ReportBlock, RtcpPacket};

    #[test]
    fn escapes_strings() {
        let ctx = Context {
            session_id: Some("a\"b\\c\nd\u{1}é".into()),
            prefix: None,
        };
        assert_eq!(
            line("x", &ctx, &serde_json::json!({})),
            r#"{"type":"x","session_id":"a\"b\\c\nd\u0001é"}"#
        );
    }

    #[test]
    fn closed_line_has_null_error() {
        let ctx = Context::default();
        let line = event_line(
            &ctx,
            &Event::Closed(ClosedEvent {
                session_elapsed: Duration::from_millis(1500),
                error: None,
            }),
        )
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"closed","session_elapsed_s":1.5,"error":null,"error_kind":null}"#
        );
    }

    #[test]
    fn fallback_and_rtcp_sent_lines() {
        use rtsp_toolkit_tokio::core::client::{RtcpEvent, Transport};
        use rtsp_toolkit_tokio::core::rtcp::ReceiverReport;
        let ctx = Context::default();
        let line = event_line(
            &ctx,
            &Event::Fallback(FallbackEvent {
                from: Transport::Udp,
                to: Transport::Tcp,
                reason: "the server answered 461".into(),
                session_elapsed: Duration::from_millis(250),
            }),
        )
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"fallback","from":"udp","to":"tcp","reason":"the server answered 461","session_elapsed_s":0.25}"#
        );
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 64,
            cumulative_lost: -1,
            highest_sequence: 65_540,
            jitter: 12,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        let line = event_line(
            &ctx,
            &Event::RtcpSent(RtcpEvent {
                track: 0,
                channel: 1,
                packets: vec![RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 9,
                    reports: vec![block],
                })],
                recv_tick: Duration::from_secs(2),
            }),
        )
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"rtcp_sent","track":0,"channel":1,"packets":[{"kind":"rr","ssrc":9,"reports":1,"blocks":[{"ssrc":7,"fraction_lost":64,"cumulative_lost":-1,"highest_sequence":65540,"jitter":12,"last_sr":0,"delay_since_last_sr":0}]}],"recv_tick_s":2.0}"#
        );
    }

    #[test]
    fn context_fields_come_after_the_type() {
        let ctx = Context {
            session_id: Some("s01".into()),
            prefix: Some("cam".into()),
        };
        let closed = Event::Closed(ClosedEvent {
            session_elapsed: Duration::from_secs(1),
            error: None,
        });
        assert_eq!(
            event_line(&ctx, &closed).unwrap(),
            r#"{"type":"closed","session_id":"s01","prefix":"cam","session_elapsed_s":1.0,"error":null,"error_kind":null}"#
        );
        // Non-finite numbers are null (JSON has no NaN).
        assert_eq!(
            line("x", &Context::default(), &serde_json::json!({"f": f64::NAN})),
            r#"{"type":"x","f":null}"#
        );
    }

    /// Without context, every event's line is the library's serialization of it.
    #[test]
    fn event_lines_are_the_library_serialization() {
        use rtsp_toolkit_tokio::core::client::{
            ConnectEvent, LossEvent, MethodEvent, RtcpEvent, RtpEvent, Transport, Warning,
        };
        use rtsp_toolkit_tokio::core::message::{Headers, Method};
        use rtsp_toolkit_tokio::core::rtp::RtpPacket;
        use rtsp_toolkit_tokio::{AudioCodec, AudioFrame, AudioFrameEvent, VideoCodec, VideoFrame, VideoFrameEvent};
        let tick = Duration::from_millis(40);
        let rtcp = RtcpEvent {
            track: 0,
            channel: 1,
            packets: vec![RtcpPacket::Bye(Default::default())],
            recv_tick: tick,
        };
        let events = [
            Event::Connect(ConnectEvent {
                target: "h:554".into(),
                elapsed: tick,
                result: Ok(("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:554".parse().unwrap())),
                tls: None,
                tunnel: None,
            }),
            Event::Method(Box::new(MethodEvent {
                method: Method::Options,
                url: "rtsp://h/".into(),
                cseq: 1,
                status: 200,
                reason: "OK".into(),
                request_headers: Headers::new().with("CSeq", "1"),
                headers: Headers::new().with("CSeq", "1"),
                body: Default::default(),
                sdp: None,
                track: None,
                elapsed: tick,
                session_elapsed: tick,
            })),
            Event::Rtp(RtpEvent {
                track: 0,
                channel: 0,
                packet: RtpPacket::parse(vec![0x80, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7, 1].into()).unwrap(),
                recv_tick: tick,
            }),
            Event::Rtcp(rtcp.clone()),
            Event::RtcpSent(rtcp),
            Event::Fallback(FallbackEvent {
                from: Transport::Udp,
                to: Transport::Tcp,
                reason: "r".into(),
                session_elapsed: tick,
            }),
            Event::Video(VideoFrameEvent {
                track: 0,
                frame: VideoFrame {
                    codec: VideoCodec::H264,
                    timestamp: 1,
                    data: Default::default(),
                    keyframe: true,
                    new_parameters: false,
                    loss: 0,
                },
                extended_timestamp: 1,
                recv_tick: tick,
            }),
            Event::Audio(AudioFrameEvent {
                track: 1,
                frame: AudioFrame {
                    codec: AudioCodec::Pcma,
                    timestamp: 1,
                    data: Default::default(),
                    sample_count: 160,
                    sample_rate: 8000,
                    channels: 1,
                    loss: 0,
                },
                extended_timestamp: 1,
                recv_tick: tick,
            }),
            Event::Loss(LossEvent {
                track: 0,
                lost: 1,
                sequence_number: 3,
                total_lost: 1,
                recv_tick: tick,
            }),
            Event::Warning(Warning::TeardownUnanswered),
            Event::Closed(ClosedEvent {
                session_elapsed: tick,
                error: None,
            }),
        ];
        for e in &events {
            let line = event_line(&Context::default(), e).unwrap();
            assert_eq!(line, serde_json::to_string(e).unwrap());
        }
    }

    /// The report's fields, in the documented order, with their units.
    #[test]
    fn report_line_has_the_documented_fields() {
        use crate::report::KeyframeInterval;
        let ms = Duration::from_millis;
        let track = TrackReport {
            index: 0,
            kind: "video".into(),
            codec: "H264".into(),
            clock_rate: 90_000,
            channels: None,
            unsupported: None,
            rtp_packets: 10,
            rtp_payload_bytes: 1000,
            rtp_bitrate: Some(8000.0),
            lost: 1,
            loss_percent: 10.0,
            jitter: Some(0.001),
            max_jitter: Some(0.002),
            sender_reports: 1,
            byes: 0,
            receiver_reports_sent: 2,
            transport: "tcp (channels 0-1)".into(),
            frames: 5,
            keyframes: 1,
            damaged_frames: 0,
            frame_bytes: 900,
            first_frame: Some(ms(120)),
            first_frame_after_play: Some(ms(20)),
            media_duration: Some(0.2),
            frame_rate: Some(25.0),
            bitrate: Some(36_000.0),
            keyframe_interval: None,
            timestamps_reordered: false,
            max_frame_gap: Some(ms(40)),
            samples: 0,
            sample_rate: None,
            audio_channels: None,
        };
        let with_interval = TrackReport {
            keyframe_interval: Some(KeyframeInterval {
                frames_avg: 25.0,
                frames_min: 24,
                frames_max: 26,
                seconds_avg: 1.0,
            }),
            ..track.clone()
        };
        let report = Report {
            connect: Some(ConnectInfo {
                target: "127.0.0.1:554".into(),
                elapsed: ms(2),
                result: Err("connection error: refused".into()),
            }),
            play_at: Some(ms(100)),
            methods: vec![MethodRow {
                method: "OPTIONS".into(),
                count: 2,
                statuses: vec![401, 200],
                min: ms(1),
                avg: ms(2),
                max: ms(3),
            }],
            tracks: vec![track, with_interval],
            first_video_frame: Some(ms(120)),
            first_audio_frame: None,
            session_elapsed: Some(ms(1500)),
            error: None,
            warnings: 3,
            fallback: None,
        };
        let decode = DecodeSummary {
            track: Some(0),
            codec: Some("H264".into()),
            pictures: 5,
            resolution: Some((640, 480)),
            first_frame: Some("/tmp/f.png".into()),
            ..Default::default()
        };
        let ctx = Context::default();
        let text = report_line(&ctx, "rtsp://h/", Some("frames"), &report, Some(&decode));
        let keys = [
            "type",
            "url",
            "session_elapsed_s",
            "error",
            "stopped_by",
            "connect",
            "play_s",
            "first_video_frame_s",
            "first_audio_frame_s",
            "methods",
            "tracks",
            "warnings",
            "fallback",
            "decode",
        ];
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), keys.len(), "{text}");
        let at: Vec<usize> = keys.iter().map(|k| text.find(&format!("\"{k}\":")).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "documented order: {text}");
        assert_eq!(v["type"], "report");
        assert_eq!(v["session_elapsed_s"], 1.5);
        assert_eq!(v["stopped_by"], "frames");
        assert_eq!(
            v["connect"],
            serde_json::json!({"target": "127.0.0.1:554", "elapsed_s": 0.002, "local": null, "peer": null,
                               "error": "connection error: refused"})
        );
        assert_eq!(v["play_s"], 0.1);
        assert_eq!(v["first_audio_frame_s"], serde_json::Value::Null);
        assert_eq!(
            v["methods"],
            serde_json::json!([{"method": "OPTIONS", "count": 2, "statuses": [401, 200], "min_s": 0.001,
                                "avg_s": 0.002, "max_s": 0.003}])
        );
        assert_eq!(
            v["decode"],
            serde_json::json!({"track": 0, "codec": "H264", "all_frames": false, "pictures": 5, "width": 640,
                               "height": 480, "errors": 0, "skipped": 0, "first_error": null,
                               "unavailable": null, "first_frame": "/tmp/f.png"})
        );
        let track_keys = [
            "track",
            "kind",
            "codec",
            "clock_rate",
            "channels",
            "unsupported",
            "rtp_packets",
            "rtp_payload_bytes",
            "rtp_bitrate_bps",
            "lost",
            "loss_percent",
            "jitter_s",
            "max_jitter_s",
            "sender_reports",
            "byes",
            "receiver_reports_sent",
            "transport",
            "frames",
            "keyframes",
            "damaged_frames",
            "frame_bytes",
            "first_frame_s",
            "first_frame_after_play_s",
            "media_duration_s",
            "frame_rate",
            "bitrate_bps",
            "keyframe_interval_frames",
            "keyframe_interval_frames_min",
            "keyframe_interval_frames_max",
            "keyframe_interval_s",
            "timestamps_reordered",
            "max_frame_gap_s",
            "samples",
            "sample_rate",
            "audio_channels",
        ];
        let t = serde_json::to_string(&report.tracks[0]).unwrap();
        let at: Vec<usize> = track_keys
            .iter()
            .map(|k| t.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "documented order: {t}");
        let t0 = &v["tracks"][0];
        assert_eq!(t0.as_object().unwrap().len(), track_keys.len());
        assert_eq!(t0["keyframe_interval_frames"], serde_json::Value::Null);
        assert_eq!(t0["first_frame_s"], 0.12);
        assert_eq!(t0["max_frame_gap_s"], 0.04);
        assert_eq!(t0["sample_rate"], serde_json::Value::Null);
        let t1 = &v["tracks"][1];
        assert_eq!(
            [
                &t1["keyframe_interval_frames"],
                &t1["keyframe_interval_frames_min"],
                &t1["keyframe_interval_frames_max"],
                &t1["keyframe_interval_s"]
            ],
            [
                &serde_json::json!(25.0),
                &serde_json::json!(24),
                &serde_json::json!(26),
                &serde_json::json!(1.0)
            ]
        );
        // Without decoding, `decode` is null.
        let v: serde_json::Value = serde_json::from_str(&report_line(&ctx, "u", None, &report, None)).unwrap();
        assert_eq!(v["decode"], serde_json::Value::Null);
        assert_eq!(v["stopped_by"], serde_json::Value::Null);
    }
}
