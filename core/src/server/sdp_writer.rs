//! SDP generation for DESCRIBE answers (RFC 4566, with the RTP payload
//! formats of RFC 6184, RFC 7798, RFC 3640, RFC 3551 and RFC 2435).
//!
//! One function, [`session_description`], turns a [`MediaSource`] into the
//! text a client needs to set up its tracks: one `m=` section per source
//! track, controlled by `trackID=N` (N being the track's index in the
//! source) under the presentation's base URL. It does not parse SDP (see
//! [`crate::sdp`]) and knows nothing of sessions.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;

use crate::codec::aac;
use crate::source::{MediaSource, SourceCodec};

/// Dynamic payload type of video tracks.
pub(super) const PT_VIDEO: u8 = 96;
/// Dynamic payload type of AAC tracks.
pub(super) const PT_AAC: u8 = 97;
/// Static payload type of PCMA (RFC 3551).
pub(super) const PT_PCMA: u8 = 8;
/// Static payload type of JPEG (RFC 3551, RFC 2435).
pub(super) const PT_JPEG: u8 = 26;
/// Dynamic payload type of ONVIF metadata tracks (the one cameras commonly use).
pub(super) const PT_METADATA: u8 = 107;
/// Static payload type of G.722 (RFC 3551).
pub(super) const PT_G722: u8 = 9;
/// Dynamic payload type of Opus and of L16 other than 44.1 kHz mono/stereo.
pub(super) const PT_AUDIO: u8 = 97;

/// The RTP payload type a track of `codec` is sent with.
pub(super) fn payload_type(codec: &SourceCodec) -> u8 {
    match codec {
        SourceCodec::H264 { .. } | SourceCodec::H265 { .. } => PT_VIDEO,
        SourceCodec::Aac { .. } => PT_AAC,
        SourceCodec::Pcma => PT_PCMA,
        SourceCodec::Mjpeg => PT_JPEG,
        SourceCodec::OnvifMetadata => PT_METADATA,
        SourceCodec::G722 => PT_G722,
        SourceCodec::Opus { .. } => PT_AUDIO,
        SourceCodec::L16 { .. } => PT_AUDIO,
    }
}

/// What DESCRIBE answers with.
#[derive(Debug, Clone)]
pub(super) struct Description<'a> {
    pub source: &'a MediaSource,
    /// `host[:port]` of the Request-URI, for the `o=` address when it is an IP literal.
    pub authority: &'a str,
    /// `s=`: the file name.
    pub name: &'a str,
    /// `o=` session id.
    pub origin_id: u64,
    /// End of `a=range:npt=0-…`; `None` for an open range (endless loop).
    pub range_end: Option<Duration>,
    /// Add the ONVIF backchannel section of this codec (`a=sendonly`,
    /// `trackID=N` after the source's N tracks).
    pub backchannel: Option<crate::client::BackchannelCodec>,
}

/// `secs.mmm` with exactly three decimals (truncated to the millisecond).
pub(super) fn npt(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The SDP text, CRLF line ends.
pub(super) fn session_description(d: &Description<'_>) -> String {
    let mut s = String::with_capacity(512);
    let (net, addr) = origin_address(d.authority);
    // `name` was checked for control characters by the path rules; SDP
    // text is UTF-8.
    let name = if d.name.is_empty() { "-" } else { d.name };
    let _ = write!(s, "v=0\r\no=- {} 1 IN {net} {addr}\r\ns={name}\r\n", d.origin_id);
    let _ = write!(
        s,
        "c=IN {net} {}\r\nt=0 0\r\na=control:*\r\n",
        if net == "IP6" { "::" } else { "0.0.0.0" }
    );
    match d.range_end {
        Some(end) => {
            let _ = write!(s, "a=range:npt=0-{}\r\n", npt(end));
        }
        None => s.push_str("a=range:npt=0-\r\n"),
    }
    for (i, track) in d.source.tracks.iter().enumerate() {
        let pt = payload_type(&track.codec);
        let rate = track.clock_rate;
        match &track.codec {
            SourceCodec::H264 { sps, pps } => {
                let _ = write!(s, "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} H264/{rate}\r\n");
                let _ = write!(s, "a=fmtp:{pt} packetization-mode=1");
                if let Some(id) = sps.first().and_then(|s| s.get(1..4)) {
                    let _ = write!(s, ";profile-level-id={:02X}{:02X}{:02X}", id[0], id[1], id[2]);
                }
                let sets: Vec<&Bytes> = sps.iter().chain(pps.iter()).filter(|n| !n.is_empty()).collect();
                if !sets.is_empty() {
                    let _ = write!(s, ";sprop-parameter-sets={}", base64_list(&sets));
                }
                s.push_str("\r\n");
            }
            SourceCodec::H265 { vps, sps, pps } => {
                let _ = write!(s, "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} H265/{rate}\r\n");
                let params: Vec<String> = [("sprop-vps", vps), ("sprop-sps", sps), ("sprop-pps", pps)]
                    .into_iter()
                    .filter_map(|(key, sets)| {
                        let sets: Vec<&Bytes> = sets.iter().filter(|n| !n.is_empty()).collect();
                        (!sets.is_empty()).then(|| format!("{key}={}", base64_list(&sets)))
                    })
                    .collect();
                if !params.is_empty() {
                    let _ = write!(s, "a=fmtp:{pt} {}\r\n", params.join(";"));
                }
            }
            SourceCodec::Aac { config, channels, .. } => {
                let _ = write!(
                    s,
                    "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} MPEG4-GENERIC/{rate}/{}\r\n",
                    (*channels).max(1)
                );
                let _ = write!(s, "a=fmtp:{pt} profile-level-id=1;{}", aac::Packetizer::FMTP);
                if !config.is_empty() {
                    s.push_str(";config=");
                    for b in config.iter() {
                        let _ = write!(s, "{b:02x}");
                    }
                }
                s.push_str("\r\n");
            }
            SourceCodec::Pcma => {
                let _ = write!(s, "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} PCMA/{rate}/1\r\n");
            }
            SourceCodec::Mjpeg => {
                // The rtpmap is optional for a static type, and helps clients that only read it.
                let _ = write!(s, "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} JPEG/{rate}\r\n");
            }
            SourceCodec::OnvifMetadata => {
                let _ = write!(
                    s,
                    "m=application 0 RTP/AVP {pt}\r\na=rtpmap:{pt} vnd.onvif.metadata/{rate}\r\n"
                );
            }
            SourceCodec::G722 => {
                let _ = write!(s, "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} G722/{rate}/1\r\n");
            }
            SourceCodec::Opus { channels } => {
                // RFC 7587 §7: always opus/48000/2; stereo is a parameter.
                let _ = write!(
                    s,
                    "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} sprop-stereo={}\r\n",
                    u8::from(*channels >= 2)
                );
            }
            SourceCodec::L16 { channels } => {
                let _ = write!(
                    s,
                    "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} L16/{rate}/{}\r\n",
                    (*channels).max(1)
                );
            }
        }
        let _ = write!(s, "a=control:trackID={i}\r\n");
    }
    if let Some(codec) = d.backchannel {
        let n = d.source.tracks.len();
        s.push_str(&codec.offer(&format!("trackID={n}")));
    }
    s
}

fn base64_list(sets: &[&Bytes]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    sets.iter().map(|n| engine.encode(n)).collect::<Vec<_>>().join(",")
}

/// `o=`/`c=` network type and address: the Request-URI's host when it is an
/// IP literal, else the unspecified address (a name would need resolving).
fn origin_address(authority: &str) -> (&'static str, String) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some(ip) = rest.split(']').next().and_then(|h| h.parse::<Ipv6Addr>().ok()) {
            return ("IP6", ip.to_string());
        }
    }
    let host = authority.split(':').next().unwrap_or("");
    match host.parse::<Ipv4Addr>() {
        Ok(ip) => ("IP4", ip.to_string()),
        Err(_) => ("IP4", "0.0.0.0".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::{MediaKind, Sdp};
    use crate::source::SourceTrack;

    fn source(codecs: Vec<(SourceCodec, u32)>) -> MediaSource {
        MediaSource {
            tracks: codecs
                .into_iter()
                .map(|(codec, clock_rate)| SourceTrack { codec, clock_rate })
                .collect(),
            samples: vec![],
            duration: Duration::from_millis(12_345),
        }
    }

    fn describe(src: &MediaSource, authority: &str) -> Sdp {
        let text = session_description(&Description {
            source: src,
            authority,
            name: "clip.mp4",
            origin_id: 42,
            range_end: Some(src.duration),
            backchannel: None,
        });
        assert!(text.ends_with("\r\n"));
        assert!(!text.contains("\r\n\r\n"));
        Sdp::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn h264_and_aac() {
        let sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9]);
        let pps = Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb]);
        let src = source(vec![
            (
                SourceCodec::H264 {
                    sps: vec![sps.clone()],
                    pps: vec![pps.clone()],
                },
                90000,
            ),
            (
                SourceCodec::Aac {
                    config: Bytes::from_static(&[0x12, 0x10]),
                    sample_rate: 44100,
                    channels: 2,
                },
                44100,
            ),
        ]);
        let sdp = describe(&src, "10.1.2.3:8554");
        assert_eq!(sdp.origin.as_deref(), Some("- 42 1 IN IP4 10.1.2.3"));
        assert_eq!(sdp.session_name.as_deref(), Some("clip.mp4"));
        assert_eq!(sdp.attribute("control"), Some("*"));
        assert_eq!(sdp.attribute("range"), Some("npt=0-12.345"));
        let v = &sdp.media[0];
        assert_eq!(
            (v.kind.clone(), v.payload_type, v.codec.as_str(), v.clock_rate),
            (MediaKind::Video, 96, "H264", 90000)
        );
        assert_eq!(v.control.as_deref(), Some("trackID=0"));
        let h = v.h264().unwrap().unwrap();
        assert_eq!(h.packetization_mode, 1);
        assert_eq!(h.profile_level_id, Some([0x64, 0x00, 0x1f]));
        assert_eq!((h.sps, h.pps), (vec![sps], vec![pps]));
        assert_eq!(v.fmtp_param("profile-level-id"), Some("64001F"));
        let a = &sdp.media[1];
        assert_eq!(
            (a.kind.clone(), a.payload_type, a.clock_rate, a.channels),
            (MediaKind::Audio, 97, 44100, Some(2))
        );
        assert!(a.codec_is("MPEG4-GENERIC"));
        assert_eq!(a.control.as_deref(), Some("trackID=1"));
        let g = a.mpeg4_generic().unwrap().unwrap();
        assert_eq!(
            (g.mode.as_str(), g.size_length, g.index_length, g.index_delta_length),
            ("AAC-hbr", 13, 3, 3)
        );
        assert_eq!(&g.config[..], &[0x12, 0x10]);
        assert_eq!(a.fmtp_param("streamtype"), Some("5"));
        assert_eq!(a.fmtp_param("profile-level-id"), Some("1"));
        // The depacketizers accept what we describe.
        crate::codec::Depacketizer::new(v, 1 << 20).unwrap();
        crate::codec::Depacketizer::new(a, 1 << 20).unwrap();
    }

    #[test]
    fn h265_and_pcma() {
        let vps = Bytes::from_static(&[0x40, 0x01, 0x0c]);
        let sps = Bytes::from_static(&[0x42, 0x01, 0x01]);
        let pps = Bytes::from_static(&[0x44, 0x01, 0xc0]);
        let src = source(vec![
            (
                SourceCodec::H265 {
                    vps: vec![vps.clone()],
                    sps: vec![sps.clone()],
                    pps: vec![pps.clone()],
                },
                90000,
            ),
            (SourceCodec::Pcma, 8000),
        ]);
        let sdp = describe(&src, "[::1]:554");
        assert_eq!(sdp.origin.as_deref(), Some("- 42 1 IN IP6 ::1"));
        let v = &sdp.media[0];
        assert!(v.codec_is("H265"));
        let h = v.h265().unwrap().unwrap();
        assert_eq!((h.vps, h.sps, h.pps), (vec![vps], vec![sps], vec![pps]));
        let a = &sdp.media[1];
        assert_eq!(
            (a.payload_type, a.codec.as_str(), a.clock_rate, a.channels),
            (8, "PCMA", 8000, Some(1))
        );
        assert_eq!(a.control.as_deref(), Some("trackID=1"));
        crate::codec::Depacketizer::new(v, 1 << 20).unwrap();
        crate::codec::Depacketizer::new(a, 1 << 20).unwrap();
    }

    #[test]
    fn mjpeg_static_payload_type() {
        let src = source(vec![(SourceCodec::Mjpeg, 90000)]);
        let sdp = describe(&src, "127.0.0.1:8554");
        let v = &sdp.media[0];
        assert_eq!((v.payload_type, v.codec.as_str(), v.clock_rate), (26, "JPEG", 90000));
        assert!(matches!(
            crate::codec::Depacketizer::new(v, 1 << 20),
            Ok(crate::codec::Depacketizer::Jpeg(_))
        ));
    }

    #[test]
    fn opus_l16_and_g722() {
        let src = source(vec![
            (SourceCodec::Opus { channels: 2 }, 48000),
            (SourceCodec::L16 { channels: 2 }, 22050),
            (SourceCodec::G722, 8000),
            (SourceCodec::Opus { channels: 1 }, 48000),
        ]);
        let sdp = describe(&src, "127.0.0.1:8554");
        let got: Vec<_> = sdp
            .media
            .iter()
            .map(|m| (m.payload_type, m.codec.as_str(), m.clock_rate, m.channels))
            .collect();
        assert_eq!(
            got,
            [
                (97, "opus", 48000, Some(2)),
                (97, "L16", 22050, Some(2)),
                (9, "G722", 8000, Some(1)),
                (97, "opus", 48000, Some(2)),
            ]
        );
        assert_eq!(sdp.media[0].fmtp_param("sprop-stereo"), Some("1"));
        assert_eq!(sdp.media[3].fmtp_param("sprop-stereo"), Some("0"));
        // The depacketizers accept what we describe, with the right channels.
        let frames_of = |m: &crate::sdp::Media, payload: &'static [u8]| {
            let mut d = crate::codec::Depacketizer::new(m, 1 << 20).unwrap();
            let p = crate::rtp::RtpPacket {
                sequence_number: 1,
                timestamp: 0,
                ssrc: 1,
                marker: false,
                payload_type: m.payload_type,
                csrc_count: 0,
                extension: None,
                padding: 0,
                payload: Bytes::from_static(payload),
            };
            d.push(&p, 0).unwrap();
            match d.pull() {
                Some(crate::codec::Frame::Audio(a)) => (a.sample_rate, a.channels, a.sample_count),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(frames_of(&sdp.media[0], &[0xfc, 1]), (48000, 2, 960));
        assert_eq!(frames_of(&sdp.media[1], &[0; 8]), (22050, 2, 2));
        assert_eq!(frames_of(&sdp.media[2], &[0; 8]), (16000, 1, 16));
        assert_eq!(frames_of(&sdp.media[3], &[0xfc, 1]), (48000, 1, 960));
    }

    #[test]
    fn hostname_origin_and_open_range() {
        let src = source(vec![(SourceCodec::Pcma, 8000)]);
        let text = session_description(&Description {
            source: &src,
            authority: "camera.local:8554",
            name: "",
            origin_id: 7,
            range_end: None,
            backchannel: None,
        });
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.origin.as_deref(), Some("- 7 1 IN IP4 0.0.0.0"));
        assert_eq!(sdp.session_name.as_deref(), Some("-"));
        assert_eq!(sdp.attribute("range"), Some("npt=0-"));
    }

    #[test]
    fn npt_has_three_decimals() {
        assert_eq!(npt(Duration::ZERO), "0.000");
        assert_eq!(npt(Duration::from_micros(1_234_567)), "1.234");
        assert_eq!(npt(Duration::from_secs(3600)), "3600.000");
    }
}
