//! Human-readable output: one line per event, the per-second summaries, the
//! live status line and the final report, as strings. Writing them (and
//! where) is `probe.rs`'s job.
//!
//! Every event line starts with the session time (seconds since the session
//! started, from the event itself where it carries one) and a word saying
//! what it is, so the columns line up and `grep`/`awk` work on them.

use std::fmt::Write as _;
use std::time::Duration;

use rtsp_toolkit_tokio::core::client::{ConnectEvent, FallbackEvent, MethodEvent};
use rtsp_toolkit_tokio::core::rtcp::RtcpPacket;
use rtsp_toolkit_tokio::{
    AudioFrameEvent, LossEvent, MetadataFrameEvent, RtcpEvent, RtpEvent, VideoFrameEvent, Warning,
};

use crate::report::{audio_codec_name, kind_name, video_codec_name, Report, Totals, TrackReport};

/// A duration for people: `0.41 ms`, `12.3 ms`, `1.204 s`.
pub fn dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// Seconds as a duration for people.
pub fn secs(s: f64) -> String {
    dur(Duration::from_secs_f64(s.max(0.0)))
}

/// A bitrate: `312.4 kb/s`, `4.21 Mb/s`.
pub fn bitrate(bps: f64) -> String {
    if bps >= 10_000_000.0 {
        format!("{:.1} Mb/s", bps / 1e6)
    } else if bps >= 1_000_000.0 {
        format!("{:.2} Mb/s", bps / 1e6)
    } else {
        format!("{:.1} kb/s", bps / 1e3)
    }
}

/// A byte count: `812 B`, `6.1 kB`, `1.24 MB`.
pub fn bytes(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else if n < 1_000_000 {
        format!("{:.1} kB", n as f64 / 1e3)
    } else {
        format!("{:.2} MB", n as f64 / 1e6)
    }
}

/// The time column: `   1.234s`.
pub fn at(d: Duration) -> String {
    format!("{:>8.3}s", d.as_secs_f64())
}

/// `time  word  rest`, the shape of every event line.
pub fn line(time: Duration, word: &str, rest: &str) -> String {
    format!("{}  {word:<9} {rest}", at(time))
}

pub fn connect(c: &ConnectEvent) -> String {
    match &c.result {
        Ok((local, peer)) => {
            let mut text = format!("{peer} in {} (local {local})", dur(c.elapsed));
            if let Some(tls) = &c.tls {
                text.push_str(&format!(", {} {}", tls.version, tls.cipher_suite));
                if let Some(fp) = &tls.peer_fingerprint {
                    text.push_str(&format!(", certificate SHA-256 {fp}"));
                }
            }
            if let Some(t) = &c.tunnel {
                text.push_str(&format!(", HTTP tunnel (x-sessioncookie {})", t.cookie));
            }
            line(c.elapsed, "connect", &text)
        }
        Err(e) => line(c.elapsed, "connect", &e.to_string()),
    }
}

/// `--show headers`: the request's fields (`> `) and the response's (`< `),
/// indented under the method line. `Authorization` comes masked from the core.
pub fn headers(m: &MethodEvent) -> Vec<String> {
    let mut lines = vec![format!("{INDENT}> {} {} RTSP/1.0", m.method, m.url)];
    lines.extend(m.request_headers.iter().map(|(n, v)| format!("{INDENT}> {n}: {v}")));
    lines.push(format!("{INDENT}< RTSP/1.0 {} {}", m.status, m.reason));
    lines.extend(m.headers.iter().map(|(n, v)| format!("{INDENT}< {n}: {v}")));
    lines
}

/// `--show sdp`: a response body that is text (the SDP of a DESCRIBE), one
/// indented line per line; other bodies as their size.
pub fn body(m: &MethodEvent) -> Vec<String> {
    if m.body.is_empty() {
        return Vec::new();
    }
    match std::str::from_utf8(&m.body) {
        Ok(text) => text
            .lines()
            .take(1000)
            .map(|l| {
                format!(
                    "{INDENT}| {}",
                    l.chars().filter(|c| !c.is_control()).collect::<String>()
                )
            })
            .collect(),
        Err(_) => vec![format!("{INDENT}| ({} bytes of binary body)", m.body.len())],
    }
}

/// Indentation of the lines under an event line.
const INDENT: &str = "             ";

pub fn method(m: &MethodEvent) -> String {
    let status = format!("{} {}", m.status, m.reason);
    let mut rest = format!("{status:<18}{:>10}", dur(m.elapsed));
    let mut extra = String::new();
    if let Some(sdp) = &m.sdp {
        let media: Vec<String> = sdp
            .media
            .iter()
            .map(|md| {
                format!(
                    "{} {}",
                    kind_name(&md.kind),
                    codec_label(&md.codec, md.clock_rate, md.channels)
                )
            })
            .collect();
        extra = media.join(", ");
    }
    if let Some(t) = &m.track {
        extra = format!(
            "track {} {} {} over {}",
            t.index,
            kind_name(&t.kind),
            codec_label(&t.codec, t.clock_rate, t.channels),
            crate::report::transport_label(&t.transport)
        );
    }
    if m.method.as_str() == "PLAY" {
        if let Some(range) = m.headers.get("Range") {
            extra = format!("Range: {range}");
        }
    }
    if !extra.is_empty() {
        rest.push_str("   ");
        rest.push_str(&extra);
    }
    line(m.session_elapsed, m.method.as_str(), &rest)
}

/// `H264/90000`, `MPEG4-GENERIC/44100/2`.
pub fn codec_label(codec: &str, clock_rate: u32, channels: Option<u16>) -> String {
    let codec = if codec.is_empty() { "?" } else { codec };
    match channels {
        Some(c) => format!("{codec}/{clock_rate}/{c}"),
        None => format!("{codec}/{clock_rate}"),
    }
}

pub fn video(v: &VideoFrameEvent, number: u64) -> String {
    let f = &v.frame;
    let mut rest = format!(
        "#{number:<4} {:<5} ts {:<10} {:>9}",
        video_codec_name(f.codec),
        f.timestamp,
        bytes(f.data.len() as u64)
    );
    if f.keyframe {
        rest.push_str("  key");
    }
    if f.new_parameters {
        rest.push_str("  +params");
    }
    if f.loss > 0 {
        let _ = write!(rest, "  after {} lost packets", f.loss);
    }
    line(v.recv_tick, &format!("video {}", v.track), &rest)
}

pub fn audio(a: &AudioFrameEvent, number: u64) -> String {
    let f = &a.frame;
    let mut rest = format!(
        "#{number:<4} {:<5} ts {:<10} {:>9}  {} samples",
        audio_codec_name(f.codec),
        f.timestamp,
        bytes(f.data.len() as u64),
        f.sample_count
    );
    if f.loss > 0 {
        let _ = write!(rest, "  after {} lost packets", f.loss);
    }
    line(a.recv_tick, &format!("audio {}", a.track), &rest)
}

/// One ONVIF metadata document: its size, root element and first event
/// topic (found by a byte scan, see `onvif_metadata::summary`).
pub fn metadata(m: &MetadataFrameEvent, number: u64) -> String {
    let f = &m.frame;
    let s = rtsp_toolkit_tokio::core::codec::onvif_metadata::summary(&f.data);
    let mut rest = format!(
        "#{number:<4} ts {:<10} {:>9}  <{}>",
        f.timestamp,
        bytes(f.data.len() as u64),
        s.root.as_deref().unwrap_or("?")
    );
    if let Some(topic) = s.topic {
        let _ = write!(rest, "  topic {topic}");
    }
    if f.loss > 0 {
        let _ = write!(rest, "  after {} lost packets", f.loss);
    }
    line(m.recv_tick, &format!("meta {}", m.track), &rest)
}

pub fn rtp(r: &RtpEvent) -> String {
    let p = &r.packet;
    line(
        r.recv_tick,
        &format!("rtp {}", r.track),
        &format!(
            "seq {:<5} ts {:<10} pt {:<3} {:>7}{}",
            p.sequence_number,
            p.timestamp,
            p.payload_type,
            bytes(p.payload.len() as u64),
            if p.marker { "  M" } else { "" }
        ),
    )
}

pub fn rtcp(r: &RtcpEvent) -> String {
    let kinds: Vec<String> = r
        .packets
        .iter()
        .map(|p| match p {
            RtcpPacket::SenderReport(sr) => format!("SR (rtp ts {}, {} packets)", sr.rtp_timestamp, sr.packet_count),
            RtcpPacket::ReceiverReport(_) => "RR".to_owned(),
            RtcpPacket::SourceDescription(_) => "SDES".to_owned(),
            RtcpPacket::Bye(b) => match &b.reason {
                Some(reason) => format!("BYE ({reason})"),
                None => "BYE".to_owned(),
            },
            RtcpPacket::Other { packet_type, .. } => format!("PT {packet_type}"),
        })
        .collect();
    line(r.recv_tick, &format!("rtcp {}", r.track), &kinds.join(", "))
}

/// What the client sent on an RTCP channel: `rtcp N    sent RR (...), SDES, BYE`,
/// with the report's loss and jitter figures.
pub fn rtcp_sent(r: &RtcpEvent) -> String {
    let kinds: Vec<String> = r
        .packets
        .iter()
        .map(|p| match p {
            RtcpPacket::ReceiverReport(rr) => match rr.reports.first() {
                Some(b) => format!(
                    "RR (fraction lost {}/256, lost {}, highest seq {}, jitter {})",
                    b.fraction_lost, b.cumulative_lost, b.highest_sequence, b.jitter
                ),
                None => "RR (nothing received yet)".to_owned(),
            },
            RtcpPacket::SenderReport(_) => "SR".to_owned(),
            RtcpPacket::SourceDescription(_) => "SDES".to_owned(),
            RtcpPacket::Bye(_) => "BYE".to_owned(),
            RtcpPacket::Other { packet_type, .. } => format!("PT {packet_type}"),
        })
        .collect();
    line(
        r.recv_tick,
        &format!("rtcp {}", r.track),
        &format!("sent {}", kinds.join(", ")),
    )
}

/// The session changed transport: `fallback  udp -> tcp: why`.
pub fn fallback(f: &FallbackEvent) -> String {
    line(
        f.session_elapsed,
        "fallback",
        &format!("{} -> {}: {}", f.from, f.to, f.reason),
    )
}

pub fn loss(l: &LossEvent) -> String {
    line(
        l.recv_tick,
        &format!("loss {}", l.track),
        &format!(
            "{} packet{} lost before seq {} ({} on this track)",
            l.lost,
            if l.lost == 1 { "" } else { "s" },
            l.sequence_number,
            l.total_lost
        ),
    )
}

/// (machine kind, track, message) of a warning.
pub fn warning_parts(w: &Warning) -> (&'static str, Option<usize>, String) {
    // The library's words, as in the JSON `warning` objects.
    (w.kind(), w.track(), w.to_string())
}

pub fn warning(time: Duration, w: &Warning) -> String {
    let (_, track, message) = warning_parts(w);
    let word = match track {
        Some(t) => format!("warning {t}"),
        None => "warning".to_owned(),
    };
    line(time, &word, &message)
}

/// One track's activity between two snapshots, `secs` apart: `video 25 fr 312.4 kb/s 1 key`.
pub fn activity(kind: &str, now: &Totals, before: &Totals, secs: f64) -> String {
    let frames = now.frames - before.frames;
    let (data, label) = if now.frames > 0 || now.frame_bytes > 0 {
        (now.frame_bytes - before.frame_bytes, "fr")
    } else {
        (now.rtp_bytes - before.rtp_bytes, "")
    };
    let rate = if secs > 0.0 { data as f64 * 8.0 / secs } else { 0.0 };
    let mut s = if label.is_empty() {
        format!("{kind} {} pkts {}", now.rtp_packets - before.rtp_packets, bitrate(rate))
    } else {
        let fps = if secs > 0.0 { frames as f64 / secs } else { 0.0 };
        format!("{kind} {fps:>5.1} fps {:>10}", bitrate(rate))
    };
    let keys = now.keyframes - before.keyframes;
    if keys > 0 {
        let _ = write!(s, " {keys} key");
    }
    let lost = now.lost - before.lost;
    if lost > 0 {
        let _ = write!(s, " {lost} lost");
    }
    s
}

/// The report, as aligned text.
pub fn report(url: &str, closed_how: &str, r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "report  {url}");
    let kv = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<14}{v}");
    };
    if let Some(d) = r.session_elapsed {
        kv(&mut out, "session", &format!("{}, {closed_how}", dur(d)));
    }
    if let Some(c) = &r.connect {
        match &c.result {
            Ok((_, peer)) => kv(&mut out, "connect", &format!("{} to {peer}", dur(c.elapsed))),
            Err(e) => kv(&mut out, "connect", &format!("failed after {}: {e}", dur(c.elapsed))),
        }
    }
    if let Some(p) = r.play_at {
        kv(&mut out, "playing after", &dur(p));
    }
    for (label, first) in [
        ("first video", r.first_video_frame),
        ("first audio", r.first_audio_frame),
    ] {
        if let Some(t) = first {
            let after = r.play_at.map(|p| format!(" ({} after PLAY)", dur(t.saturating_sub(p))));
            kv(&mut out, label, &format!("{}{}", dur(t), after.unwrap_or_default()));
        }
    }
    if r.warnings > 0 {
        kv(&mut out, "warnings", &r.warnings.to_string());
    }
    if let Some(why) = &r.fallback {
        kv(&mut out, "fallback", &format!("UDP -> TCP: {why}"));
    }

    if !r.methods.is_empty() {
        out.push('\n');
        let rows: Vec<[String; 6]> = r
            .methods
            .iter()
            .map(|m| {
                let statuses: Vec<String> = m.statuses.iter().map(|s| s.to_string()).collect();
                [
                    m.method.clone(),
                    m.count.to_string(),
                    statuses.join(","),
                    dur(m.min),
                    dur(m.avg),
                    dur(m.max),
                ]
            })
            .collect();
        let header = ["method", "count", "status", "min", "avg", "max"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let fmt_row = |cells: [&str; 6]| {
            format!(
                "  {:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {:>w5$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5],
            )
        };
        let _ = writeln!(out, "{}", fmt_row(header));
        for row in &rows {
            let _ = writeln!(
                out,
                "{}",
                fmt_row([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])
            );
        }
    }
    for t in &r.tracks {
        out.push('\n');
        track(&mut out, t);
    }
    out
}

fn track(out: &mut String, t: &TrackReport) {
    let _ = writeln!(
        out,
        "  track {}  {}  {}",
        t.index,
        t.kind,
        codec_label(&t.codec, t.clock_rate, t.channels)
    );
    let kv = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "    {k:<14}{v}");
    };
    if let Some(why) = &t.unsupported {
        kv(out, "frames", format!("none: unsupported codec {why}"));
    } else {
        let mut frames = format!("{}", t.frames);
        if t.kind == "video" {
            let _ = write!(frames, " ({} keyframes)", t.keyframes);
        }
        let _ = write!(frames, ", {}", bytes(t.frame_bytes));
        if t.damaged_frames > 0 {
            let _ = write!(frames, ", {} after packet loss", t.damaged_frames);
        }
        kv(out, "frames", frames);
        if let (Some(rate), Some(ch)) = (t.sample_rate, t.audio_channels) {
            kv(
                out,
                "audio",
                format!("{} samples/channel, {rate} Hz, {ch} ch", t.samples),
            );
        }
        if let Some(fps) = t.frame_rate {
            kv(out, "frame rate", format!("{fps:.2} fps"));
        }
        if let (Some(b), Some(d)) = (t.bitrate, t.media_duration) {
            kv(out, "bitrate", format!("{} over {} of media", bitrate(b), secs(d)));
        }
        if let Some(k) = &t.keyframe_interval {
            let frames = if k.frames_min == k.frames_max {
                format!("{} frames", k.frames_min)
            } else {
                format!("{:.1} frames ({}-{})", k.frames_avg, k.frames_min, k.frames_max)
            };
            kv(out, "keyframes", format!("every {frames}, {}", secs(k.seconds_avg)));
        } else if t.keyframes == 1 && t.kind == "video" {
            kv(out, "keyframes", format!("only one in {} frames", t.frames));
        }
        if let Some(first) = t.first_frame {
            let after = t.first_frame_after_play.map(|a| format!(" ({} after PLAY)", dur(a)));
            kv(
                out,
                "first frame",
                format!("{}{}", dur(first), after.unwrap_or_default()),
            );
        }
        if let Some(gap) = t.max_frame_gap {
            kv(out, "max gap", format!("{} between frames", dur(gap)));
        }
    }
    if !t.transport.is_empty() {
        kv(out, "transport", t.transport.clone());
    }
    let mut rtp = format!("{} packets, {} lost ({:.2} %)", t.rtp_packets, t.lost, t.loss_percent);
    if t.unsupported.is_some() {
        if let Some(b) = t.rtp_bitrate {
            let _ = write!(rtp, ", {}", bitrate(b));
        }
    }
    kv(out, "rtp", rtp);
    if let (Some(j), Some(max)) = (t.jitter, t.max_jitter) {
        let note = if t.timestamps_reordered {
            "; B-frame reordering counts as jitter"
        } else {
            ""
        };
        kv(
            out,
            "jitter",
            format!("{} (peak {}, RFC 3550{note})", secs(j), secs(max)),
        );
    }
    if t.sender_reports > 0 || t.byes > 0 || t.receiver_reports_sent > 0 {
        kv(
            out,
            "rtcp",
            format!(
                "{} sender reports{} in, {} receiver reports out",
                t.sender_reports,
                if t.byes > 0 { ", BYE" } else { "" },
                t.receiver_reports_sent
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(dur(Duration::from_micros(412)), "0.41 ms");
        assert_eq!(dur(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(dur(Duration::from_millis(5104)), "5.104 s");
        assert_eq!(bitrate(312_400.0), "312.4 kb/s");
        assert_eq!(bitrate(4_210_000.0), "4.21 Mb/s");
        assert_eq!(bytes(6103), "6.1 kB");
        assert_eq!(at(Duration::from_millis(1234)), "   1.234s");
    }

    #[test]
    fn activity_line() {
        let before = Totals::default();
        let now = Totals {
            frames: 25,
            frame_bytes: 39_000,
            keyframes: 1,
            rtp_packets: 30,
            rtp_bytes: 39_500,
            lost: 0,
        };
        assert_eq!(
            activity("video", &now, &before, 1.0),
            "video  25.0 fps 312.0 kb/s 1 key"
        );
    }
}
