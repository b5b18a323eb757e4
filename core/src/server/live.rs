//! Live paths: a publisher's announced presentation, and the rules that turn
//! its RTP into each reader's stream.
//!
//! A publisher (`ANNOUNCE` with an SDP, `SETUP` with `mode=record`, `RECORD`)
//! makes a path live; its SDP becomes a [`MediaSource`] without samples
//! ([`announced_source`]): the tracks this server can describe again, so that
//! a reader's DESCRIBE answer is written by the same writer as a file's, with
//! the same payload types. The publisher's RTP packets come out of its
//! connection as [`ServerOutput::Published`](super::ServerOutput::Published);
//! the runtime fans them out to the readers' connections, which re-stamp them
//! (`Restamp`): each reader gets its own SSRC, sequence numbers and
//! timestamps, starting at the random values of its SETUP, so that what its
//! `RTP-Info` says is what its first packet carries. A gap in the
//! publisher's sequence numbers stays a gap (a reader sees the loss); a new
//! publisher SSRC (a restarted source) continues the reader's numbering and
//! moves its timestamps by the wall-clock time between the two packets: a
//! clean discontinuity, never a jump backwards. Video tracks (H.264, H.265)
//! start at the first packet that starts a keyframe or carries parameter
//! sets, so that a late reader's first frame decodes.
//!
//! `docs/ARCHITECTURE.md`, "Live paths", has the whole path of a packet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rtp::RtpPacket;
use crate::sdp::{Media, MediaKind, Sdp};
use crate::source::{MediaSource, SourceCodec, SourceTrack};

/// Most tracks an announced presentation may have.
pub const MAX_ANNOUNCED_TRACKS: usize = 16;

/// What a publisher's `ANNOUNCE` gave: the presentation readers get, and the
/// publisher's own `a=control` of each of its tracks (to match its SETUPs).
#[derive(Debug, Clone)]
pub struct Announced {
    /// The tracks this server serves, with their parameters; no samples.
    pub source: Arc<MediaSource>,
    /// Per track of [`Announced::source`]: the publisher's media section it
    /// came from (index in its SDP) and that section's `a=control`.
    pub controls: Vec<(usize, Option<String>)>,
    /// Media sections left out, with why (a codec this server cannot
    /// describe again).
    pub skipped: Vec<String>,
}

/// Why an `ANNOUNCE` body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// The body is not a session description.
    #[error("the ANNOUNCE body is not SDP: {0}")]
    BadSdp(String),
    /// No media section has a codec this server can serve.
    #[error("no track this server can serve ({0})")]
    NoTrack(String),
    /// More than [`MAX_ANNOUNCED_TRACKS`] media sections.
    #[error("more than {MAX_ANNOUNCED_TRACKS} tracks")]
    TooManyTracks,
}

/// The presentation an `ANNOUNCE` body describes, as far as this server can
/// serve it again.
pub fn announced_source(body: &[u8]) -> Result<Announced, AnnounceError> {
    let sdp = Sdp::parse(body).map_err(|e| AnnounceError::BadSdp(e.to_string()))?;
    if sdp.media.len() > MAX_ANNOUNCED_TRACKS {
        return Err(AnnounceError::TooManyTracks);
    }
    let mut tracks = Vec::new();
    let mut controls = Vec::new();
    let mut skipped = Vec::new();
    for (i, media) in sdp.media.iter().enumerate() {
        match track_of(media) {
            Ok(track) => {
                tracks.push(track);
                controls.push((i, media.control.clone()));
            }
            Err(why) => skipped.push(format!("track {i}: {why}")),
        }
    }
    if tracks.is_empty() {
        let why = if skipped.is_empty() {
            "no media section".to_owned()
        } else {
            skipped.join("; ")
        };
        return Err(AnnounceError::NoTrack(why));
    }
    Ok(Announced {
        source: Arc::new(MediaSource {
            tracks,
            samples: Vec::new(),
            duration: Duration::ZERO,
        }),
        controls,
        skipped,
    })
}

/// The track of one announced media section, if its codec is one this
/// server describes and whose RTP payloads it can pass on unchanged.
fn track_of(media: &Media) -> Result<SourceTrack, String> {
    let codec = media.codec.to_ascii_uppercase();
    let rate = media.clock_rate;
    let bad = |e: crate::sdp::SdpError| e.to_string();
    let (codec, clock_rate) = match (&media.kind, codec.as_str()) {
        (MediaKind::Video, "H264") => {
            let p = media.h264().map_err(bad)?;
            if p.as_ref().is_some_and(|p| p.packetization_mode > 1) {
                return Err("H.264 packetization-mode 2 (interleaved) is not served".into());
            }
            let (sps, pps) = p.map(|p| (p.sps, p.pps)).unwrap_or_default();
            (SourceCodec::H264 { sps, pps }, 90_000)
        }
        (MediaKind::Video, "H265") => {
            let p = media.h265().map_err(bad)?;
            if p.as_ref().is_some_and(|p| p.max_don_diff > 0) {
                return Err("H.265 with sprop-max-don-diff (DONL fields) is not served".into());
            }
            let (vps, sps, pps) = p.map(|p| (p.vps, p.sps, p.pps)).unwrap_or_default();
            (SourceCodec::H265 { vps, sps, pps }, 90_000)
        }
        (MediaKind::Video, "JPEG") => (SourceCodec::Mjpeg, 90_000),
        (MediaKind::Audio, "MPEG4-GENERIC") => {
            let p = media
                .mpeg4_generic()
                .map_err(bad)?
                .ok_or("MPEG4-GENERIC without fmtp")?;
            // Passed on as they come, so they must be what our SDP says.
            let hbr = p.mode.eq_ignore_ascii_case("AAC-hbr")
                && (p.size_length, p.index_length, p.index_delta_length) == (13, 3, 3)
                && p.cts_delta_length == 0
                && p.dts_delta_length == 0
                && p.constant_size.is_none();
            if !hbr {
                return Err(format!("MPEG4-GENERIC mode {} is not AAC-hbr 13/3/3", p.mode));
            }
            let asc = crate::sdp::parse_audio_specific_config(&p.config).map_err(bad)?;
            let channels = u16::from(asc.channels).max(media.channels.unwrap_or(1)).max(1);
            let sample_rate = if rate > 0 { rate } else { asc.sample_rate };
            let codec = SourceCodec::Aac {
                config: p.config,
                sample_rate,
                channels,
            };
            (codec, sample_rate)
        }
        (MediaKind::Audio, "PCMA") if rate == 8000 && media.channels.unwrap_or(1) == 1 => (SourceCodec::Pcma, 8000),
        (MediaKind::Audio, "G722") => (SourceCodec::G722, 8000),
        (MediaKind::Audio, "OPUS") => {
            let stereo = media.fmtp_param("sprop-stereo").is_some_and(|v| v.trim() == "1");
            (
                SourceCodec::Opus {
                    channels: 1 + u16::from(stereo),
                },
                48_000,
            )
        }
        (MediaKind::Audio, "L16") if rate > 0 => {
            let channels = media.channels.unwrap_or(1).max(1);
            (SourceCodec::L16 { channels }, rate)
        }
        (MediaKind::Application, "VND.ONVIF.METADATA") => (SourceCodec::OnvifMetadata, rate.max(1)),
        _ => {
            return Err(format!(
                "{} {}/{rate} is not served",
                media_kind(&media.kind),
                media.codec
            ))
        }
    };
    Ok(SourceTrack { codec, clock_rate })
}

fn media_kind(kind: &MediaKind) -> &str {
    match kind {
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Application => "application",
        MediaKind::Other(s) => s,
    }
}

/// Which announced track a publisher's SETUP names: its Request-URI ends
/// with (or is) the track's `a=control`; without controls, the `N` of a
/// trailing `trackID=N` or `streamid=N` counts media sections.
pub(super) fn track_of_setup(announced: &Announced, uri: &str) -> Option<usize> {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri).trim_end_matches('/');
    let by_control = announced.controls.iter().position(|(_, control)| {
        control.as_deref().is_some_and(|c| {
            let c = c.trim_end_matches('/');
            !c.is_empty() && c != "*" && (uri == c || uri.ends_with(&format!("/{c}")))
        })
    });
    by_control.or_else(|| {
        let last = uri.rsplit('/').next()?;
        let (_, n) = last.split_once('=')?;
        let n: usize = n.parse().ok()?;
        announced.controls.iter().position(|(section, _)| *section == n)
    })
}

/// Whether an RTP payload of `codec` starts a picture a decoder can start
/// at: a keyframe (H.264 IDR, H.265 IRAP), or the parameter sets that come
/// first in one. Other codecs: always.
pub fn starts_keyframe(codec: &SourceCodec, payload: &[u8]) -> bool {
    match codec {
        SourceCodec::H264 { .. } => h264_starts_keyframe(payload),
        SourceCodec::H265 { .. } => h265_starts_keyframe(payload),
        _ => true,
    }
}

fn h264_starts_keyframe(p: &[u8]) -> bool {
    let key = |t: u8| t == 5 || t == 7;
    match p.first().map(|b| b & 0x1f) {
        // STAP-A: 2-byte sizes, each NAL unit's header first.
        Some(24) => {
            let mut rest = &p[1..];
            for _ in 0..64 {
                let [hi, lo, tail @ ..] = rest else { return false };
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                match tail.first() {
                    Some(h) if len > 0 && len <= tail.len() => {
                        if key(h & 0x1f) {
                            return true;
                        }
                        rest = &tail[len..];
                    }
                    _ => return false,
                }
            }
            false
        }
        // FU-A: the start fragment of an IDR slice.
        Some(28) => p.get(1).is_some_and(|fu| fu & 0x80 != 0 && key(fu & 0x1f)),
        Some(t) => key(t),
        None => false,
    }
}

fn h265_starts_keyframe(p: &[u8]) -> bool {
    let key = |t: u8| (16..=21).contains(&t) || (32..=34).contains(&t);
    let nal_type = |b: u8| (b >> 1) & 0x3f;
    match p.first().map(|b| nal_type(*b)) {
        // Aggregation packet: 2-byte sizes after the 2-byte header.
        Some(48) => {
            let mut rest = p.get(2..).unwrap_or_default();
            for _ in 0..64 {
                let [hi, lo, tail @ ..] = rest else { return false };
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                match tail.first() {
                    Some(h) if len > 1 && len <= tail.len() => {
                        if key(nal_type(*h)) {
                            return true;
                        }
                        rest = &tail[len..];
                    }
                    _ => return false,
                }
            }
            false
        }
        // Fragmentation unit: S bit and type in the third byte.
        Some(49) => p.get(2).is_some_and(|fu| fu & 0x80 != 0 && key(fu & 0x3f)),
        Some(t) => p.len() > 2 && key(t),
        None => false,
    }
}

/// How one reader's track re-stamps the publisher's packets (see the module
/// docs): the offsets from the publisher's sequence numbers and timestamps
/// to the reader's, fixed at the first packet passed on and again at every
/// new publisher SSRC.
#[derive(Debug, Clone)]
pub(super) struct Restamp {
    /// The publisher's SSRC the offsets are for (`None`: nothing passed on yet).
    from_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// The reader's timestamp of the last packet passed on, and when.
    last: Option<(u32, Instant)>,
}

/// What [`Restamp::map`] decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mapped {
    /// Send it with this sequence number and timestamp.
    Send { seq: u16, timestamp: u32 },
    /// Not yet: the track waits for a keyframe.
    Wait,
}

impl Restamp {
    pub fn new() -> Restamp {
        Restamp {
            from_ssrc: None,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
        }
    }

    /// Starts over at the next keyframe (after a PAUSE; the numbering goes on).
    pub fn regate(&mut self) {
        self.from_ssrc = None;
    }

    /// The reader's sequence number and timestamp for `packet`, received
    /// at `now`; `next_seq` and `ts_base` are the reader track's next
    /// sequence number and, for its very first packet, timestamp.
    pub fn map(
        &mut self,
        codec: &SourceCodec,
        packet: &RtpPacket,
        now: Instant,
        next_seq: u16,
        ts_base: u32,
        clock_rate: u32,
    ) -> Mapped {
        if self.from_ssrc != Some(packet.ssrc) {
            // A first packet, or one of a new source: a decoder can only
            // start at a keyframe.
            if !starts_keyframe(codec, &packet.payload) {
                return Mapped::Wait;
            }
            // The first packet: the SETUP's base. A later source: on from
            // the last packet, by the wall-clock time between them.
            let ts = match self.last {
                None => ts_base,
                Some((last_ts, at)) => {
                    let elapsed = now.saturating_duration_since(at);
                    let ticks = elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
                    last_ts.wrapping_add((ticks as u32).max(1))
                }
            };
            self.from_ssrc = Some(packet.ssrc);
            self.seq_offset = next_seq.wrapping_sub(packet.sequence_number);
            self.ts_offset = ts.wrapping_sub(packet.timestamp);
        }
        let timestamp = packet.timestamp.wrapping_add(self.ts_offset);
        self.last = Some((timestamp, now));
        Mapped::Send {
            seq: packet.sequence_number.wrapping_add(self.seq_offset),
            timestamp,
        }
    }

    /// The reader's RTP timestamp at `now`, for a sender report: the last
    /// packet's, advanced by the wall-clock time since it arrived (`None`
    /// before the first packet).
    pub fn timestamp_at(&self, now: Instant, clock_rate: u32) -> Option<u32> {
        let (ts, at) = self.last?;
        let ticks = now.saturating_duration_since(at).as_nanos() * u128::from(clock_rate) / 1_000_000_000;
        Some(ts.wrapping_add(ticks as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const FFMPEG_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        a=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAHqzZQKAv+XARAAADAAEAAAMAMg8WLZY=,aOvjyyLA; profile-level-id=64001E\r\n\
        a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
        a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\n\
        a=control:streamid=1\r\nm=audio 0 RTP/AVP 0\r\na=control:streamid=2\r\n";

    #[test]
    fn ffmpegs_announce_gives_h264_and_aac_and_skips_pcmu() {
        let a = announced_source(FFMPEG_SDP.as_bytes()).unwrap();
        assert_eq!(a.source.tracks.len(), 2);
        assert!(
            matches!(&a.source.tracks[0].codec, SourceCodec::H264 { sps, pps } if sps.len() == 1 && pps.len() == 1)
        );
        assert!(matches!(
            &a.source.tracks[1].codec,
            SourceCodec::Aac {
                sample_rate: 44_100,
                channels: 2,
                ..
            }
        ));
        assert_eq!(
            a.controls,
            vec![(0, Some("streamid=0".into())), (1, Some("streamid=1".into()))]
        );
        assert_eq!(a.skipped.len(), 1, "{:?}", a.skipped);
        assert_eq!(track_of_setup(&a, "rtsp://127.0.0.1:8554/live/streamid=1"), Some(1));
        assert_eq!(track_of_setup(&a, "rtsp://127.0.0.1:8554/live/streamid=0"), Some(0));
        assert_eq!(track_of_setup(&a, "rtsp://127.0.0.1:8554/live/streamid=2"), None);
        assert_eq!(track_of_setup(&a, "rtsp://127.0.0.1:8554/live"), None);
    }

    #[test]
    fn refusals_are_typed() {
        assert!(matches!(announced_source(b"hello"), Err(AnnounceError::BadSdp(_))));
        let only_pcmu = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        assert!(matches!(
            announced_source(only_pcmu.as_bytes()),
            Err(AnnounceError::NoTrack(_))
        ));
        let lbr = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\n\
            a=rtpmap:97 MPEG4-GENERIC/48000/1\r\na=fmtp:97 mode=AAC-lbr;sizelength=6;indexlength=2;indexdeltalength=2;config=1188\r\n";
        assert!(matches!(announced_source(lbr.as_bytes()), Err(AnnounceError::NoTrack(w)) if w.contains("AAC-lbr")));
        let many: String = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n".to_owned()
            + &"m=audio 0 RTP/AVP 8\r\n".repeat(MAX_ANNOUNCED_TRACKS + 1);
        assert_eq!(
            announced_source(many.as_bytes()).unwrap_err(),
            AnnounceError::TooManyTracks
        );
    }

    #[test]
    fn keyframe_starts() {
        let h264 = SourceCodec::H264 {
            sps: vec![],
            pps: vec![],
        };
        assert!(starts_keyframe(&h264, &[0x67, 1, 2]));
        assert!(starts_keyframe(&h264, &[0x65, 1, 2]));
        assert!(!starts_keyframe(&h264, &[0x41, 1, 2]));
        assert!(starts_keyframe(&h264, &[0x7c, 0x85, 1])); // FU-A start of an IDR
        assert!(!starts_keyframe(&h264, &[0x7c, 0x05, 1])); // its middle
        assert!(starts_keyframe(&h264, &[0x78, 0, 2, 0x09, 0x10, 0, 2, 0x67, 0])); // STAP-A: AUD, SPS
        assert!(!starts_keyframe(&h264, &[0x78, 0, 9, 0x67])); // a STAP-A cut short
        assert!(!starts_keyframe(&h264, &[]));
        let h265 = SourceCodec::H265 {
            vps: vec![],
            sps: vec![],
            pps: vec![],
        };
        assert!(starts_keyframe(&h265, &[0x40, 0x01, 0x0c])); // VPS
        assert!(starts_keyframe(&h265, &[0x26, 0x01, 0xaf])); // IDR_W_RADL
        assert!(!starts_keyframe(&h265, &[0x02, 0x01, 0xd0])); // TRAIL_R
        assert!(starts_keyframe(&h265, &[0x62, 0x01, 0x93, 0xaf])); // FU start of IDR_W_RADL
        assert!(!starts_keyframe(&h265, &[0x62, 0x01, 0x13, 0xaf]));
        assert!(starts_keyframe(&h265, &[0x60, 0x01, 0, 3, 0x40, 0x01, 0x0c])); // AP with a VPS
        assert!(starts_keyframe(&SourceCodec::Pcma, &[1]));
    }

    fn packet(ssrc: u32, seq: u16, ts: u32, payload: &'static [u8]) -> RtpPacket {
        RtpPacket {
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            marker: false,
            payload_type: 96,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn restamping_waits_for_a_keyframe_keeps_gaps_and_continues_over_a_new_source() {
        let codec = SourceCodec::H264 {
            sps: vec![],
            pps: vec![],
        };
        let t0 = Instant::now();
        let mut r = Restamp::new();
        assert_eq!(
            r.map(&codec, &packet(1, 100, 5000, &[0x41]), t0, 7, 1000, 90_000),
            Mapped::Wait
        );
        assert_eq!(
            r.map(&codec, &packet(1, 101, 8000, &[0x67]), t0, 7, 1000, 90_000),
            Mapped::Send {
                seq: 7,
                timestamp: 1000
            }
        );
        // A gap of one stays a gap; timestamps follow the publisher's.
        assert_eq!(
            r.map(&codec, &packet(1, 103, 11_000, &[0x41]), t0, 8, 1000, 90_000),
            Mapped::Send {
                seq: 9,
                timestamp: 4000
            }
        );
        // Wrap-around of both.
        let mut w = Restamp::new();
        assert_eq!(
            w.map(
                &SourceCodec::Pcma,
                &packet(2, u16::MAX, u32::MAX, &[1]),
                t0,
                10,
                20,
                8000
            ),
            Mapped::Send { seq: 10, timestamp: 20 }
        );
        assert_eq!(
            w.map(&SourceCodec::Pcma, &packet(2, 0, 159, &[1]), t0, 11, 20, 8000),
            Mapped::Send {
                seq: 11,
                timestamp: 180
            }
        );
        // A new publisher SSRC 1 s later: numbering goes on from the next
        // sequence number, timestamps one second on, after a keyframe.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            r.map(&codec, &packet(9, 4, 0, &[0x41]), t1, 10, 1000, 90_000),
            Mapped::Wait
        );
        assert_eq!(
            r.map(&codec, &packet(9, 5, 77, &[0x65]), t1, 10, 1000, 90_000),
            Mapped::Send {
                seq: 10,
                timestamp: 94_000
            }
        );
        assert_eq!(
            r.timestamp_at(t1 + Duration::from_millis(500), 90_000),
            Some(94_000 + 45_000)
        );
        r.regate();
        assert_eq!(
            r.map(&codec, &packet(9, 6, 3077, &[0x41]), t1, 11, 1000, 90_000),
            Mapped::Wait
        );
    }
}
