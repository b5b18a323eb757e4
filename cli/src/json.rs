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
//! A small hand-written writer: the output is flat and the field order is
//! part of what makes the lines readable, so no serializer is needed.

use std::fmt::Write as _;
use std::time::Duration;

use rtsp_toolkit_tokio::core::client::{ConnectEvent, FallbackEvent, MethodEvent};
use rtsp_toolkit_tokio::core::rtcp::{ReportBlock, RtcpPacket};
use rtsp_toolkit_tokio::core::sdp::Sdp;
use rtsp_toolkit_tokio::{Error, Event, Track, TransportKind};

use crate::decode::DecodeSummary;
use crate::report::{audio_codec_name, kind_name, video_codec_name, Report, TrackReport};
use crate::text::warning_parts;

/// Fields added to every object: the session label and log prefix, when set.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub session_id: Option<String>,
    pub prefix: Option<String>,
}

/// A JSON object under construction.
#[derive(Debug)]
pub struct Obj {
    buf: String,
    empty: bool,
}

impl Obj {
    /// `{"type": kind, ...context}`.
    pub fn new(kind: &str, ctx: &Context) -> Obj {
        let mut o = Obj::bare();
        o.str("type", kind);
        if let Some(id) = &ctx.session_id {
            o.str("session_id", id);
        }
        if let Some(p) = &ctx.prefix {
            o.str("prefix", p);
        }
        o
    }

    /// `{` with no fields yet.
    pub fn bare() -> Obj {
        Obj {
            buf: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        write_str(&mut self.buf, key);
        self.buf.push(':');
        &mut self.buf
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        write_str(self.key(key), value);
        self
    }

    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        let _ = write!(self.key(key), "{value}");
        self
    }

    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        let _ = write!(self.key(key), "{value}");
        self
    }

    pub fn opt_uint(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.uint(key, v),
            None => self.null(key),
        }
    }

    /// A number; `null` if not finite (JSON has no NaN).
    pub fn float(&mut self, key: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            let _ = write!(self.key(key), "{value}");
            self
        } else {
            self.null(key)
        }
    }

    pub fn opt_float(&mut self, key: &str, value: Option<f64>) -> &mut Self {
        match value {
            Some(v) => self.float(key, v),
            None => self.null(key),
        }
    }

    /// A duration in seconds.
    pub fn secs(&mut self, key: &str, value: Duration) -> &mut Self {
        self.float(key, value.as_secs_f64())
    }

    pub fn opt_secs(&mut self, key: &str, value: Option<Duration>) -> &mut Self {
        self.opt_float(key, value.map(|d| d.as_secs_f64()))
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    /// A value that is already JSON (a nested object or array).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    pub fn finish(&mut self) -> String {
        let mut s = std::mem::take(&mut self.buf);
        s.push('}');
        s
    }
}

/// `[a,b,...]` of values that are already JSON.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&item);
    }
    s.push(']');
    s
}

/// A JSON string literal.
pub fn string(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    write_str(&mut s, value);
    s
}

fn write_str(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The machine-readable kind of an error: `connection`, `timeout`,
/// `protocol`, `response` or `config`.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Connection(_) => "connection",
        Error::Timeout { .. } => "timeout",
        Error::Protocol(_) => "protocol",
        Error::Response { .. } => "response",
        Error::Config(_) => "config",
        _ => "other",
    }
}

/// The line for one event, or `None` for an event kind this version does not know.
pub fn event_line(ctx: &Context, event: &Event) -> Option<String> {
    Some(match event {
        Event::Connect(c) => connect(ctx, c),
        Event::Method(m) => method(ctx, m),
        Event::Rtp(r) => {
            let p = &r.packet;
            Obj::new("rtp", ctx)
                .uint("track", r.track as u64)
                .uint("channel", u64::from(r.channel))
                .uint("seq", u64::from(p.sequence_number))
                .uint("timestamp", u64::from(p.timestamp))
                .uint("ssrc", u64::from(p.ssrc))
                .bool("marker", p.marker)
                .uint("payload_type", u64::from(p.payload_type))
                .uint("size", p.payload.len() as u64)
                .secs("recv_tick_s", r.recv_tick)
                .finish()
        }
        Event::Rtcp(r) => Obj::new("rtcp", ctx)
            .uint("track", r.track as u64)
            .uint("channel", u64::from(r.channel))
            .raw("packets", &array(r.packets.iter().map(rtcp_packet)))
            .secs("recv_tick_s", r.recv_tick)
            .finish(),
        // What the client sent: the same fields as `rtcp` (the tick is when it was handed out).
        Event::RtcpSent(r) => Obj::new("rtcp_sent", ctx)
            .uint("track", r.track as u64)
            .uint("channel", u64::from(r.channel))
            .raw("packets", &array(r.packets.iter().map(rtcp_packet)))
            .secs("recv_tick_s", r.recv_tick)
            .finish(),
        Event::Fallback(f) => fallback(ctx, f),
        Event::Video(v) => {
            let f = &v.frame;
            Obj::new("video", ctx)
                .uint("track", v.track as u64)
                .str("codec", video_codec_name(f.codec))
                .uint("timestamp", u64::from(f.timestamp))
                .int("extended_timestamp", v.extended_timestamp)
                .uint("size", f.data.len() as u64)
                .bool("keyframe", f.keyframe)
                .bool("new_parameters", f.new_parameters)
                .uint("loss", u64::from(f.loss))
                .secs("recv_tick_s", v.recv_tick)
                .finish()
        }
        Event::Audio(a) => {
            let f = &a.frame;
            Obj::new("audio", ctx)
                .uint("track", a.track as u64)
                .str("codec", audio_codec_name(f.codec))
                .uint("timestamp", u64::from(f.timestamp))
                .int("extended_timestamp", a.extended_timestamp)
                .uint("size", f.data.len() as u64)
                .uint("samples", u64::from(f.sample_count))
                .uint("sample_rate", u64::from(f.sample_rate))
                .uint("channels", u64::from(f.channels))
                .uint("loss", u64::from(f.loss))
                .secs("recv_tick_s", a.recv_tick)
                .finish()
        }
        Event::Loss(l) => Obj::new("loss", ctx)
            .uint("track", l.track as u64)
            .uint("lost", u64::from(l.lost))
            .uint("sequence_number", u64::from(l.sequence_number))
            .uint("total_lost", l.total_lost)
            .secs("recv_tick_s", l.recv_tick)
            .finish(),
        Event::Warning(w) => {
            let (kind, track, message) = warning_parts(w);
            Obj::new("warning", ctx)
                .str("kind", kind)
                .opt_uint("track", track.map(|t| t as u64))
                .str("message", &message)
                .finish()
        }
        Event::Closed(c) => Obj::new("closed", ctx)
            .secs("session_elapsed_s", c.session_elapsed)
            .opt_str("error", c.error.as_ref().map(|e| e.to_string()).as_deref())
            .opt_str("error_kind", c.error.as_ref().map(error_kind))
            .finish(),
        _ => return None,
    })
}

fn fallback(ctx: &Context, f: &FallbackEvent) -> String {
    Obj::new("fallback", ctx)
        .str("from", f.from.as_str())
        .str("to", f.to.as_str())
        .str("reason", &f.reason)
        .secs("session_elapsed_s", f.session_elapsed)
        .finish()
}

fn connect(ctx: &Context, c: &ConnectEvent) -> String {
    let mut o = Obj::new("connect", ctx);
    o.str("target", &c.target).secs("elapsed_s", c.elapsed);
    match &c.result {
        Ok((local, peer)) => o
            .str("local", &local.to_string())
            .str("peer", &peer.to_string())
            .null("error"),
        Err(e) => o.null("local").null("peer").str("error", &e.to_string()),
    };
    o.finish()
}

fn method(ctx: &Context, m: &MethodEvent) -> String {
    let mut o = Obj::new("rtsp", ctx);
    o.str("method", m.method.as_str())
        .str("url", &m.url)
        .uint("cseq", u64::from(m.cseq))
        .uint("status", u64::from(m.status))
        .str("reason", &m.reason)
        .secs("elapsed_s", m.elapsed)
        .secs("session_elapsed_s", m.session_elapsed);
    if let Some(sdp) = &m.sdp {
        o.raw("media", &sdp_media(sdp));
    }
    if let Some(t) = &m.track {
        o.raw("track", &track(t));
    }
    o.finish()
}

/// The media sections of an SDP: what the server offers.
fn sdp_media(sdp: &Sdp) -> String {
    array(sdp.media.iter().map(|m| {
        Obj::bare()
            .str("kind", kind_name(&m.kind))
            .str("codec", &m.codec)
            .uint("payload_type", u64::from(m.payload_type))
            .uint("clock_rate", u64::from(m.clock_rate))
            .opt_uint("channels", m.channels.map(u64::from))
            .opt_str("control", m.control.as_deref())
            .finish()
    }))
}

fn track(t: &Track) -> String {
    Obj::bare()
        .uint("index", t.index as u64)
        .str("kind", kind_name(&t.kind))
        .str("codec", &t.codec)
        .uint("payload_type", u64::from(t.payload_type))
        .uint("clock_rate", u64::from(t.clock_rate))
        .opt_uint("channels", t.channels.map(u64::from))
        .str("control_url", &t.control_url)
        .raw("transport", &transport(&t.transport))
        .finish()
}

/// A track's transport: `{kind: "tcp", rtp_channel, rtcp_channel}`,
/// `{kind: "udp", client_ports, server_ports, source, ssrc}` or
/// `{kind: "multicast", group, ports, ttl, source, ssrc}`.
fn transport(t: &TransportKind) -> String {
    let pair = |p: (u16, u16)| format!("[{},{}]", p.0, p.1);
    let mut o = Obj::bare();
    o.str("kind", t.name());
    match t {
        TransportKind::TcpInterleaved {
            rtp_channel,
            rtcp_channel,
        } => {
            o.uint("rtp_channel", u64::from(*rtp_channel))
                .uint("rtcp_channel", u64::from(*rtcp_channel));
        }
        TransportKind::Udp {
            client_ports,
            server_ports,
            source,
            ssrc,
        } => {
            o.raw("client_ports", &pair(*client_ports));
            match server_ports {
                Some(p) => o.raw("server_ports", &pair(*p)),
                None => o.null("server_ports"),
            };
            o.str("source", &source.to_string())
                .opt_uint("ssrc", ssrc.map(u64::from));
        }
        TransportKind::Multicast {
            group,
            ports,
            ttl,
            source,
            ssrc,
        } => {
            o.str("group", &group.to_string())
                .raw("ports", &pair(*ports))
                .opt_uint("ttl", ttl.map(u64::from))
                .str("source", &source.to_string())
                .opt_uint("ssrc", ssrc.map(u64::from));
        }
        _ => {}
    }
    o.finish()
}

fn rtcp_packet(p: &RtcpPacket) -> String {
    let mut o = Obj::bare();
    match p {
        RtcpPacket::SenderReport(sr) => o
            .str("kind", "sr")
            .uint("ssrc", u64::from(sr.ssrc))
            .uint("ntp_timestamp", sr.ntp_timestamp)
            .uint("rtp_timestamp", u64::from(sr.rtp_timestamp))
            .uint("packet_count", u64::from(sr.packet_count))
            .uint("octet_count", u64::from(sr.octet_count)),
        RtcpPacket::ReceiverReport(rr) => o
            .str("kind", "rr")
            .uint("ssrc", u64::from(rr.ssrc))
            .uint("reports", rr.reports.len() as u64)
            .raw("blocks", &array(rr.reports.iter().map(report_block))),
        RtcpPacket::SourceDescription(chunks) => o
            .str("kind", "sdes")
            .opt_str("cname", chunks.iter().find_map(|c| c.cname())),
        RtcpPacket::Bye(b) => o
            .str("kind", "bye")
            .raw("ssrcs", &array(b.ssrcs.iter().map(|s| s.to_string())))
            .opt_str("reason", b.reason.as_deref()),
        RtcpPacket::Other { packet_type, .. } => o.str("kind", "other").uint("packet_type", u64::from(*packet_type)),
    };
    o.finish()
}

/// One report block of a receiver report (RFC 3550 §6.4.2).
fn report_block(b: &ReportBlock) -> String {
    Obj::bare()
        .uint("ssrc", u64::from(b.ssrc))
        .uint("fraction_lost", u64::from(b.fraction_lost))
        .int("cumulative_lost", i64::from(b.cumulative_lost))
        .uint("highest_sequence", u64::from(b.highest_sequence))
        .uint("jitter", u64::from(b.jitter))
        .uint("last_sr", u64::from(b.last_sr))
        .uint("delay_since_last_sr", u64::from(b.delay_since_last_sr))
        .finish()
}

/// The final `report` object; `decode` is `null` without `--decode` / `--save-first-frame`.
pub fn report_line(
    ctx: &Context,
    url: &str,
    stopped_by: Option<&str>,
    r: &Report,
    decode: Option<&DecodeSummary>,
) -> String {
    let mut o = Obj::new("report", ctx);
    o.str("url", url)
        .opt_secs("session_elapsed_s", r.session_elapsed)
        .opt_str("error", r.error.as_deref())
        .opt_str("stopped_by", stopped_by);
    match &r.connect {
        Some(c) => {
            let mut co = Obj::bare();
            co.str("target", &c.target).secs("elapsed_s", c.elapsed);
            match &c.result {
                Ok((l, p)) => co
                    .str("local", &l.to_string())
                    .str("peer", &p.to_string())
                    .null("error"),
                Err(e) => co.null("local").null("peer").str("error", e),
            };
            o.raw("connect", &co.finish())
        }
        None => o.null("connect"),
    };
    o.opt_secs("play_s", r.play_at)
        .opt_secs("first_video_frame_s", r.first_video_frame)
        .opt_secs("first_audio_frame_s", r.first_audio_frame)
        .raw(
            "methods",
            &array(r.methods.iter().map(|m| {
                Obj::bare()
                    .str("method", &m.method)
                    .uint("count", m.count)
                    .raw("statuses", &array(m.statuses.iter().map(|s| s.to_string())))
                    .secs("min_s", m.min)
                    .secs("avg_s", m.avg)
                    .secs("max_s", m.max)
                    .finish()
            })),
        )
        .raw("tracks", &array(r.tracks.iter().map(track_report)))
        .uint("warnings", r.warnings)
        .opt_str("fallback", r.fallback.as_deref())
        .raw("decode", &decode.map_or_else(|| "null".to_owned(), decode_summary));
    o.finish()
}

fn track_report(t: &TrackReport) -> String {
    let k = t.keyframe_interval.as_ref();
    Obj::bare()
        .uint("track", t.index as u64)
        .str("kind", &t.kind)
        .str("codec", &t.codec)
        .uint("clock_rate", u64::from(t.clock_rate))
        .opt_uint("channels", t.channels.map(u64::from))
        .opt_str("unsupported", t.unsupported.as_deref())
        .uint("rtp_packets", t.rtp_packets)
        .uint("rtp_payload_bytes", t.rtp_payload_bytes)
        .opt_float("rtp_bitrate_bps", t.rtp_bitrate)
        .uint("lost", t.lost)
        .float("loss_percent", t.loss_percent)
        .opt_float("jitter_s", t.jitter)
        .opt_float("max_jitter_s", t.max_jitter)
        .uint("sender_reports", t.sender_reports)
        .uint("byes", t.byes)
        .uint("receiver_reports_sent", t.receiver_reports_sent)
        .str("transport", &t.transport)
        .uint("frames", t.frames)
        .uint("keyframes", t.keyframes)
        .uint("damaged_frames", t.damaged_frames)
        .uint("frame_bytes", t.frame_bytes)
        .opt_secs("first_frame_s", t.first_frame)
        .opt_secs("first_frame_after_play_s", t.first_frame_after_play)
        .opt_float("media_duration_s", t.media_duration)
        .opt_float("frame_rate", t.frame_rate)
        .opt_float("bitrate_bps", t.bitrate)
        .opt_float("keyframe_interval_frames", k.map(|k| k.frames_avg))
        .opt_uint("keyframe_interval_frames_min", k.map(|k| k.frames_min))
        .opt_uint("keyframe_interval_frames_max", k.map(|k| k.frames_max))
        .opt_float("keyframe_interval_s", k.map(|k| k.seconds_avg))
        .bool("timestamps_reordered", t.timestamps_reordered)
        .opt_secs("max_frame_gap_s", t.max_frame_gap)
        .uint("samples", t.samples)
        .opt_uint("sample_rate", t.sample_rate.map(u64::from))
        .opt_uint("audio_channels", t.audio_channels.map(u64::from))
        .finish()
}

/// The report's `decode` object.
fn decode_summary(d: &DecodeSummary) -> String {
    let mut o = Obj::bare();
    o.opt_uint("track", d.track.map(|t| t as u64))
        .opt_str("codec", d.codec.as_deref())
        .bool("all_frames", d.all_frames)
        .uint("pictures", d.pictures);
    match d.resolution {
        Some((w, h)) => o.uint("width", w.into()).uint("height", h.into()),
        None => o.null("width").null("height"),
    };
    o.uint("errors", d.errors)
        .uint("skipped", d.skipped)
        .opt_str("first_error", d.first_error.as_deref())
        .opt_str("unavailable", d.unavailable.as_deref())
        .opt_str(
            "first_frame",
            d.first_frame.as_ref().map(|p| p.display().to_string()).as_deref(),
        )
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_toolkit_tokio::core::client::ClosedEvent;

    #[test]
    fn escapes_strings() {
        assert_eq!(string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
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
            r#"{"type":"rtcp_sent","track":0,"channel":1,"packets":[{"kind":"rr","ssrc":9,"reports":1,"blocks":[{"ssrc":7,"fraction_lost":64,"cumulative_lost":-1,"highest_sequence":65540,"jitter":12,"last_sr":0,"delay_since_last_sr":0}]}],"recv_tick_s":2}"#
        );
    }

    #[test]
    fn context_fields_and_non_finite_numbers() {
        let ctx = Context {
            session_id: Some("s01".into()),
            prefix: Some("cam".into()),
        };
        let line = Obj::new("x", &ctx).float("f", f64::NAN).opt_uint("n", None).finish();
        assert_eq!(
            line,
            r#"{"type":"x","session_id":"s01","prefix":"cam","f":null,"n":null}"#
        );
    }
}
