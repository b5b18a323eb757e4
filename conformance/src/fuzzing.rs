//! Fuzz entry points: one function per parser or machine that takes bytes
//! from outside, shared by the cargo-fuzz targets of `fuzz/` (nightly) and by
//! `tests/fuzz_corpus.rs`, which replays the committed corpus and every
//! regression input through the same functions on stable.
//!
//! Each function drives its entry point with arbitrary bytes and asserts the
//! invariants that must hold for any input: no panic, a bounded number of
//! outputs, and outputs no larger than the configured limits. It is not a
//! correctness test; the unit and conformance tests are.
//!
//! [`TARGETS`] lists them by the name of their fuzz target and corpus
//! directory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtsp_toolkit_core::auth::{self, Authenticator, Credentials};
use rtsp_toolkit_core::client::{Client, ClientOptions, Event, Input, Output};
use rtsp_toolkit_core::codec::{jpeg, sps, Depacketizer, Frame, SequenceTracker, VideoCodec};
use rtsp_toolkit_core::message::{Decoder, Limits, Message};
use rtsp_toolkit_core::rtp::RtpPacket;
use rtsp_toolkit_core::sdp::Sdp;
use rtsp_toolkit_core::server::{
    CloseReason, Connection, LookupError, MulticastPosition, MulticastRequest, MulticastTrack, PlayCount, ServerConfig,
    ServerInput, ServerOutput, UdpSocketId,
};
use rtsp_toolkit_core::source::{MediaSource, SourceCodec, SourceSample, SourceTrack};
use rtsp_toolkit_core::{capture, rtcp};
use rtsp_toolkit_media::FileKind;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target: (fuzz target and corpus directory name, entry point).
pub const TARGETS: &[(&str, Target)] = &[
    ("client_decoder", client_decoder),
    ("server_decoder", server_decoder),
    ("sdp", sdp),
    ("auth", auth),
    ("server_auth", server_auth),
    ("server_tunnel", server_tunnel),
    ("faults", faults),
    ("announce", announce),
    ("profile", profile),
    ("client_tunnel", client_tunnel),
    ("rtp", rtp),
    ("rtcp", rtcp),
    ("depacketize_h264", depacketize_h264),
    ("depacketize_h265", depacketize_h265),
    ("depacketize_aac", depacketize_aac),
    ("depacketize_latm", depacketize_latm),
    ("depacketize_g711", depacketize_g711),
    ("depacketize_jpeg", depacketize_jpeg),
    ("depacketize_metadata", depacketize_metadata),
    ("depacketize_audio", depacketize_audio),
    ("sps", sps),
    ("client_session", client_session),
    ("server_connection", server_connection),
    ("server_udp", server_udp),
    ("publisher", publisher),
    ("capture", capture),
    ("client_replay", client_replay),
    ("media_mp4", media_mp4),
    ("media_mkv", media_mkv),
    ("media_wav", media_wav),
    ("media_aac", media_aac),
];

/// Most outputs drained after one input before the machine is declared
/// stuck: far more than any legitimate chunk of at most a few KiB produces.
const MAX_POLLS_PER_STEP: usize = 200_000;

/// Splits `data` into chunks of `size` bytes (at least 1).
fn chunks(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    data.chunks(size.max(1))
}

/// The first byte (if any) and the rest.
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => (0, &[]),
    }
}

// ---------------------------------------------------------------------------
// Message framing

/// Feeds `data` (after a byte choosing chunk size and limits) to a decoder and
/// decodes until it needs more input or fails.
fn decoder(data: &[u8], default_limits: Limits) {
    let (b, rest) = split_first(data);
    let limits = if b & 0x80 != 0 {
        Limits {
            max_header_bytes: 256,
            max_body_bytes: 512,
            max_headers: 8,
        }
    } else {
        default_limits
    };
    let chunk = usize::from(b & 0x7f) + 1;
    let mut dec = Decoder::new(limits);
    let mut fed = 0usize;
    let mut consumed_messages = 0usize;
    for c in chunks(rest, chunk) {
        dec.extend(c);
        fed += c.len();
        loop {
            match dec.decode() {
                Ok(Some(m)) => {
                    consumed_messages += 1;
                    assert!(consumed_messages <= fed, "more messages than bytes");
                    match m {
                        Message::Request(r) => {
                            assert!(r.body.len() <= limits.max_body_bytes);
                            assert!(r.headers.len() <= limits.max_headers);
                        }
                        Message::Response(r) => {
                            assert!(r.body.len() <= limits.max_body_bytes);
                            assert!(r.headers.len() <= limits.max_headers);
                        }
                        Message::Interleaved { payload, .. } => assert!(payload.len() <= 0xffff),
                    }
                }
                Ok(None) => break,
                // Out of sync: the caller closes the connection.
                Err(_) => return,
            }
        }
        assert!(dec.buffered() <= fed);
    }
}

/// The client's decoder: responses and `$` frames from a server.
pub fn client_decoder(data: &[u8]) {
    decoder(data, ClientOptions::default().limits);
}

/// The server's decoder: requests (and `$` frames) from a client.
pub fn server_decoder(data: &[u8]) {
    decoder(data, ServerConfig::default().limits);
}

// ---------------------------------------------------------------------------
// SDP, auth, RTP, RTCP, captures

/// SDP parsing, then every per-media accessor a client uses, and a
/// depacketizer for each media section.
pub fn sdp(data: &[u8]) {
    let Ok(sdp) = Sdp::parse(data) else {
        return;
    };
    let _ = sdp.attribute("control");
    for m in &sdp.media {
        let _ = m.h264();
        let _ = m.h265();
        let _ = m.mpeg4_generic();
        let _ = m.mp4a_latm();
        let _ = m.parameter_sets_annex_b();
        let _ = m.audio_specific_config();
        let _ = m.attribute("control");
        let _ = Depacketizer::new(m, 64 * 1024);
    }
}

/// `WWW-Authenticate` values (one per line), then an `Authorization` for
/// every challenge that parsed.
pub fn auth(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let Ok(challenges) = auth::parse_challenges(&values) else {
        return;
    };
    let _ = auth::choose(&challenges);
    let credentials = Credentials {
        username: "user".into(),
        password: "pa:ss".into(),
    };
    for c in challenges {
        if let Ok(mut a) = Authenticator::new(credentials.clone(), c) {
            a.set_cnonce_seed(1);
            let h = a.authorization("DESCRIBE", "rtsp://127.0.0.1/stream");
            assert!(!h.is_empty());
            let _ = a.authorization("SETUP", "rtsp://127.0.0.1/stream/trackID=1");
        }
    }
}

/// An `Authorization` value, as the server reads it: the parser (bounded,
/// never a panic), then the whole check of a server with users (the value
/// twice within a nonce's lifetime, then after it; never accepted, since
/// the input cannot know the nonce secret), then the first line as the
/// text of a user file.
pub fn server_auth(data: &[u8]) {
    use rtsp_toolkit_core::server::auth::{
        parse_authorization, AuthConfig, Authorization, ServerAuth, Users, Verdict, MAX_AUTHORIZATION_BYTES,
    };
    let text = String::from_utf8_lossy(data);
    let parsed = parse_authorization(&text);
    let basic = matches!(parsed, Ok(Authorization::Basic { .. }));
    match parsed {
        Ok(Authorization::Digest(d)) => {
            assert!(text.len() <= MAX_AUTHORIZATION_BYTES);
            let stored = d.username.len() + d.realm.len() + d.nonce.len() + d.uri.len() + d.response.len();
            assert!(stored <= text.len(), "more kept than read");
        }
        Ok(Authorization::Basic { username, password }) => {
            assert!(username.len() + password.len() <= text.len());
        }
        Err(_) => {}
    }
    let mut config = AuthConfig::new(Users::from_passwords([("user", "pa:ss")]));
    config.allow_basic = data.first().is_some_and(|b| b & 1 != 0);
    config.max_failures = 3;
    config.max_tracked = 4;
    config.nonce_lifetime = Duration::from_millis(10);
    let t0 = Instant::now();
    let server = ServerAuth::new(config, [9; 32], t0);
    let peer = addr("127.0.0.1:40000").ip();
    for (i, ms) in [0u64, 5, 50, 60_000].into_iter().enumerate() {
        let now = t0 + Duration::from_millis(ms);
        let v = server.check(now, peer, "DESCRIBE", "rtsp://127.0.0.1/stream", Some(&text));
        assert!(
            !matches!(v, Verdict::Allowed { .. }) || basic,
            "a Digest answer accepted without the nonce secret: {v:?}"
        );
        let _ = server.challenges(now, peer, i % 2 == 0);
    }
    if let Some(line) = text.lines().next() {
        let _ = Users::parse(line);
    }
}

/// A connection's first bytes as the server reads them for RTSP-over-HTTP
/// tunnels: byte 0 is the chunk size (1 to 64); the rest is sniffed on every
/// prefix (once decided, the answer stays), read as a tunnel request head
/// (which takes no more than [`MAX_HEAD`](rtsp_toolkit_core::server::tunnel::MAX_HEAD)
/// bytes and keeps only a valid cookie), and what follows the head (or all
/// of it) is decoded as a POST body in chunks, which must give what one
/// decode of the whole gives, within 3/4 of the input.
/// The camera simulator's query parser (`server::faults`): any text gives
/// faults within their documented bounds or an error naming a parameter,
/// and the URL parser carries the same answer.
pub fn faults(data: &[u8]) {
    use rtsp_toolkit_core::server::faults::{Faults, FAULTS};
    let query = String::from_utf8_lossy(data);
    match Faults::parse_query(&query) {
        Ok(Some(f)) => {
            assert!(f.drop_ppm <= 1_000_000 && f.dup_ppm <= 1_000_000);
            assert!(f.burst <= 100);
            assert!(f.reorder <= 64);
            assert!(f.jitter <= Duration::from_secs(10));
            assert!(f.session_timeout.is_none_or(|t| t <= Duration::from_secs(3600)));
        }
        Ok(None) => {}
        Err(e) => {
            assert!(FAULTS.iter().any(|(name, _, _)| *name == e.param), "{e}");
            assert!(e.value.chars().count() <= 64);
        }
    }
    if let Ok(t) = rtsp_toolkit_core::server::path::parse_target(&format!("rtsp://h/a.mp4?{query}")) {
        if !query.contains(['#', '?']) {
            assert_eq!(t.faults, Faults::parse_query(&query));
        }
    }
}

pub fn server_tunnel(data: &[u8]) {
    use rtsp_toolkit_core::server::tunnel::{parse_head, sniff, Base64Decoder, Sniff, MAX_COOKIE, MAX_HEAD};
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut decided = None;
    for n in 0..=rest.len().min(8) {
        let s = sniff(&rest[..n]);
        if let Some(d) = decided {
            assert_eq!(s, d, "sniff changed its mind at {n} bytes");
        } else if s != Sniff::NeedMore {
            decided = Some(s);
        }
    }
    let body = match parse_head(rest) {
        Ok(Some((request, len))) => {
            assert!(len <= MAX_HEAD && len <= rest.len());
            assert!(!request.cookie.is_empty() && request.cookie.len() <= MAX_COOKIE);
            assert!(request.cookie.bytes().all(|b| b.is_ascii_graphic()));
            &rest[len..]
        }
        Ok(None) => {
            assert!(rest.len() < MAX_HEAD);
            rest
        }
        Err(_) => rest,
    };
    let mut whole = Vec::new();
    let whole_result = Base64Decoder::new().decode(body, &mut whole);
    assert!(whole.len() <= body.len() / 4 * 3 + 3);
    let mut decoder = Base64Decoder::new();
    let mut chunked = Vec::new();
    let mut chunked_result = Ok(());
    for piece in body.chunks(chunk) {
        chunked_result = decoder.decode(piece, &mut chunked);
        if chunked_result.is_err() {
            break;
        }
    }
    assert_eq!(chunked_result, whole_result);
    assert_eq!(chunked, whole);
}

/// The answer to a client's tunnel GET (byte 0: the chunk size it arrives
/// in): read whole and chunk by chunk, the two must agree, and an answer
/// never needs more than [`MAX_RESPONSE_HEAD`] bytes. The rest, as the
/// POST body of our writes, decodes back to itself.
///
/// [`MAX_RESPONSE_HEAD`]: rtsp_toolkit_core::client::tunnel::MAX_RESPONSE_HEAD
pub fn client_tunnel(data: &[u8]) {
    use rtsp_toolkit_core::client::tunnel::{encode, parse_response, MAX_RESPONSE_HEAD};
    use rtsp_toolkit_core::server::tunnel::Base64Decoder;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let whole = parse_response(rest);
    if let Ok(Some((r, len))) = &whole {
        assert!(*len <= rest.len() && *len <= MAX_RESPONSE_HEAD && r.status == 200);
    }
    if matches!(whole, Ok(None)) {
        assert!(rest.len() < MAX_RESPONSE_HEAD);
    }
    // As a client reads it: the first answer that is not "more" is final,
    // and is the whole input's answer.
    let mut seen = 0;
    let mut chunked = Ok(None);
    while seen < rest.len() {
        seen = (seen + chunk).min(rest.len());
        chunked = parse_response(&rest[..seen]);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }
    match (&chunked, &whole) {
        (Ok(Some((a, n))), Ok(Some((b, m)))) => assert!(a == b && n == m),
        // The same kind of error (a `NotHttp` found early quotes less of the line).
        (Err(a), Err(b)) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a} / {b}"),
        (Ok(None), Ok(None)) => {}
        (c, w) => panic!("chunked {c:?} but whole {w:?}"),
    }
    let mut decoded = Vec::new();
    let mut d = Base64Decoder::new();
    for piece in rest.chunks(chunk) {
        d.decode(&encode(piece), &mut decoded).expect("our base64 decodes");
    }
    assert_eq!(decoded, rest);
}

/// One RTP packet.
pub fn rtp(data: &[u8]) {
    if let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(data)) {
        let ext = p.extension.as_ref().map_or(0, |e| e.data.len() + 4);
        assert!(12 + 4 * usize::from(p.csrc_count) + ext + p.payload.len() + usize::from(p.padding) <= data.len());
    }
}

/// One compound RTCP packet.
pub fn rtcp(data: &[u8]) {
    if let Ok(packets) = rtcp::parse_compound(&Bytes::copy_from_slice(data)) {
        assert!(packets.len() <= data.len() / 4);
    }
}

/// A session capture file: parsed, and written back.
pub fn capture(data: &[u8]) {
    let Ok(c) = capture::Capture::parse(data) else {
        return;
    };
    assert!(c.received().len() <= data.len());
    let _ = c.encode();
}

/// Most records replayed by [`client_replay`]: far more than the seeds hold,
/// few enough that one input replays in well under a second.
const MAX_REPLAY_RECORDS: usize = 20_000;

/// A capture replayed through a client: every kind of input (connection
/// results, TCP bytes, UDP pairs opened or refused, datagrams from the
/// server or anyone else, timeouts, close) in any order and at any instant,
/// under the transport options its header names.
pub fn client_replay(data: &[u8]) {
    let Ok(c) = capture::Capture::parse(data) else {
        return;
    };
    if c.records.len() > MAX_REPLAY_RECORDS {
        return;
    }
    let opts = ClientOptions::default().with_max_frame_bytes(MAX_FRAME);
    if let Ok(events) = capture::replay(&c, opts, Instant::now()) {
        for e in &events {
            if let Event::Video(v) = e {
                assert!(v.frame.data.len() <= MAX_FRAME + 4096);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Depacketizers

/// Frames larger than this are dropped by the depacketizers under test.
const MAX_FRAME: usize = 64 * 1024;

fn media_of(sdp: &str) -> rtsp_toolkit_core::sdp::Media {
    Sdp::parse(sdp.as_bytes())
        .expect("fixed fuzz SDP parses")
        .media
        .remove(0)
}

/// Reads `data` as records of (2-byte header, 1 byte sequence step, 1 byte
/// timestamp step, payload) and pushes each as an RTP packet into the
/// depacketizer for the SDP chosen by the first byte.
///
/// Header: bits 0..=10 payload length (capped by what is left), bit 15 the
/// marker. A sequence step of 0 repeats the previous number; 0x80.. go
/// backwards.
fn depacketize(sdps: &[&str], data: &[u8]) {
    let (b, mut rest) = split_first(data);
    let media = media_of(sdps[usize::from(b) % sdps.len()]);
    let Ok(mut d) = Depacketizer::new(&media, MAX_FRAME) else {
        return;
    };
    let mut tracker = SequenceTracker::new();
    let mut seq: u16 = 0xfff0;
    let mut ts: u32 = 0xffff_0000;
    let (mut frames, mut packets, mut pushed) = (0usize, 0usize, 0usize);
    while rest.len() >= 4 {
        let header = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(header & 0x07ff).min(rest.len() - 4);
        seq = seq.wrapping_add(rest[2] as i8 as u16);
        ts = ts.wrapping_add((rest[3] as i8 as i32 * 1024) as u32);
        let payload = Bytes::copy_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];
        let packet = RtpPacket {
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0x1234_5678,
            marker: header & 0x8000 != 0,
            payload_type: 96,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload,
        };
        let lost = tracker.observe(seq);
        let _ = d.push(&packet, lost);
        packets += 1;
        pushed += len;
        while let Some(f) = d.pull() {
            // A frame may be completed by a later packet (fragments, LATM
            // elements spanning packets), so bound the total, not per packet.
            frames += 1;
            assert!(
                frames <= 8 * pushed + packets,
                "{frames} frames from {packets} packets of {pushed} bytes"
            );
            let size = match &f {
                Frame::Video(v) => v.data.len(),
                Frame::Audio(a) => a.data.len(),
                Frame::Metadata(m) => {
                    assert!(!m.data.is_empty(), "an empty metadata document");
                    m.data.len()
                }
            };
            // Video frames may carry SDP parameter sets in front of the capped data.
            assert!(size <= MAX_FRAME + 4096, "frame of {size} bytes over the limit");
        }
    }
}

/// H.264 (RFC 6184): single NAL, STAP-A, FU-A.
pub fn depacketize_h264(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA\r\n",
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
        ],
        data,
    );
}

/// H.265 (RFC 7798): single NAL, AP, FU, with and without DON.
pub fn depacketize_h265(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n",
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n\
             a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwB4lZgJ\r\n",
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-max-don-diff=2\r\n",
        ],
        data,
    );
}

/// AAC in RFC 3640 `mpeg4-generic`: hbr, lbr, CTS/DTS deltas, constant size.
pub fn depacketize_aac(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
             a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/48000/1\r\n\
             a=fmtp:97 streamtype=5;mode=AAC-lbr;config=1188;sizeLength=6;indexLength=2;indexDeltaLength=2\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
             a=fmtp:97 mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3;ctsdeltalength=8;dtsdeltalength=4\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/8000\r\na=fmtp:97 mode=AAC-x;config=1588;constantSize=4\r\n",
        ],
        data,
    );
}

/// AAC in RFC 3016 `MP4A-LATM`, in-band and out-of-band configuration.
pub fn depacketize_latm(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\n\
             a=fmtp:96 profile-level-id=15;object=2;cpresent=0;config=400024203fc0\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\na=fmtp:96 cpresent=1\r\n",
        ],
        data,
    );
}

/// G.711 A-law and mu-law, mono and stereo.
pub fn depacketize_g711(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 PCMA/16000/2\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 8\r\n",
        ],
        data,
    );
}

/// Motion JPEG (RFC 2435): static and dynamic payload types, `a=x-dimensions`.
/// The packetizer then reads every rebuilt image, and the input as one image.
pub fn depacketize_jpeg(data: &[u8]) {
    let sdps = [
        "v=0\r\nm=video 0 RTP/AVP 26\r\n",
        "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 JPEG/90000\r\na=x-dimensions:2560,1440\r\n",
    ];
    depacketize(&sdps, data);
    let mut packetizer = jpeg::Packetizer::new(1400);
    let _ = packetizer.packetize(data);
    let (b, mut rest) = split_first(data);
    let mut d = jpeg::Depacketizer::new(&media_of(sdps[usize::from(b) % sdps.len()]), MAX_FRAME).expect("a JPEG track");
    let mut seq = 0u16;
    while rest.len() >= 2 {
        let len = usize::from(rest[0]).min(rest.len() - 1);
        let packet = RtpPacket {
            sequence_number: seq,
            timestamp: u32::from(seq / 4),
            ssrc: 1,
            marker: rest[1] & 1 != 0,
            payload_type: 26,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload: Bytes::copy_from_slice(&rest[1..1 + len]),
        };
        rest = &rest[1 + len..];
        seq = seq.wrapping_add(1);
        let _ = d.push(&packet, 0);
        while let Some(f) = d.pull() {
            if let Ok(payloads) = packetizer.packetize(&f.data) {
                assert!(!payloads.is_empty());
            }
        }
    }
}

/// ONVIF metadata (`vnd.onvif.metadata`): documents joined up to the
/// marker bit, at the usual and at an unusual clock rate.
pub fn depacketize_metadata(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n",
            "v=0\r\nm=application 0 RTP/AVP 98\r\na=rtpmap:98 VND.ONVIF.METADATA/1000\r\n",
        ],
        data,
    );
}

/// Opus (mono and stereo), L16 (static payload types and a dynamic one of
/// 6 channels), G.722 (static and stereo) and G.726-40.
pub fn depacketize_audio(data: &[u8]) {
    depacketize(
        &[
            "v=0\r\nm=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 111\r\na=rtpmap:111 OPUS/48000/2\r\na=fmtp:111 sprop-stereo=1\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 10\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 11\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 L16/16000/6\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 9\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 G722/8000/2\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 98\r\na=rtpmap:98 G726-40/8000\r\n",
        ],
        data,
    );
}

/// `codec::sps`: the H.264 and H.265 SPS readers on the bytes as one NAL
/// unit, and [`sps::resolution`] on them as an Annex B access unit. A size
/// it reports is never zero.
pub fn sps(data: &[u8]) {
    for info in [sps::h264(data), sps::h265(data)].into_iter().flatten() {
        assert!(info.width > 0 && info.height > 0, "{info:?}");
    }
    // A readable SPS rewritten to half its size reads back as that size
    // (to the cropping unit, at most 4), everything else kept.
    for (codec, read) in [
        (VideoCodec::H264, sps::h264 as fn(&[u8]) -> _),
        (VideoCodec::H265, sps::h265),
    ] {
        let Ok(before) = read(data) else { continue };
        let (w, h) = (before.width.div_ceil(2), before.height.div_ceil(2));
        if let Ok(out) = sps::with_size(codec, data, w, h) {
            let after = read(&out).expect("a rewritten SPS reads");
            assert!(after.width >= w && after.width < w + 4, "{before:?} -> {after:?}");
            assert!(after.height >= h && after.height < h + 8, "{before:?} -> {after:?}");
            assert_eq!((after.profile, after.level), (before.profile, before.level));
        }
    }
    let au = Bytes::copy_from_slice(data);
    for codec in [VideoCodec::H264, VideoCodec::H265] {
        if let Some((w, h)) = sps::resolution(codec, &au) {
            assert!(w > 0 && h > 0);
        }
    }
}

// ---------------------------------------------------------------------------
// Machines

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("fixed address")
}

/// The client session machine fed arbitrary server bytes.
///
/// Byte 0: bit 0 no video, bit 1 no audio (not both), bit 2 no frame
/// assembly, bit 3 credentials in the URL, bit 4 small message limits,
/// bits 5..=7 how often a timeout fires. Byte 1: chunk size. The rest is what
/// the server sends, fed in chunks 50 ms apart.
pub fn client_session(data: &[u8]) {
    let (flags, rest) = split_first(data);
    let (chunk, rest) = split_first(rest);
    let mut opts = ClientOptions::default()
        .with_video(flags & 1 == 0)
        .with_audio(flags & 2 == 0 || flags & 1 != 0)
        .with_assemble_frames(flags & 4 == 0)
        .with_max_frame_bytes(MAX_FRAME);
    if flags & 0x10 != 0 {
        opts.limits = Limits {
            max_header_bytes: 512,
            max_body_bytes: 2048,
            max_headers: 16,
        };
    }
    let url = if flags & 8 != 0 {
        "rtsp://user:pa%3Ass@127.0.0.1:8554/stream"
    } else {
        "rtsp://127.0.0.1:8554/stream"
    };
    let timeout_every = usize::from(flags >> 5);
    let start = Instant::now();
    let mut client = Client::new(url, opts, start).expect("valid client options");
    let mut now = start;
    client.handle_input(
        now,
        Input::Connected {
            local: addr("127.0.0.1:40000"),
            peer: addr("127.0.0.1:8554"),
        },
    );
    let mut done = drain_client(&mut client);
    for (i, c) in chunks(rest, usize::from(chunk) * 8 + 1).enumerate() {
        if done {
            return;
        }
        now += Duration::from_millis(50);
        client.handle_input(now, Input::Data(c));
        done = drain_client(&mut client);
        if !done && timeout_every != 0 && i % timeout_every == 0 {
            now += Duration::from_millis(1000);
            client.handle_input(now, Input::Timeout);
            done = drain_client(&mut client);
        }
    }
    if !done {
        client.handle_input(now + Duration::from_millis(1), Input::Eof);
        assert!(drain_client(&mut client), "the session ends at EOF");
    }
}

/// Drains the client; true once it is done.
fn drain_client(client: &mut Client) -> bool {
    for _ in 0..MAX_POLLS_PER_STEP {
        match client.poll_output() {
            Output::Transmit(b) => assert!(!b.is_empty()),
            // The fuzzed sessions are over TCP: no UDP sockets to open or use.
            Output::SendDatagram { .. } | Output::OpenUdp(_) | Output::Reconnect => {}
            Output::Event(Event::Video(v)) => assert!(v.frame.data.len() <= MAX_FRAME + 4096),
            Output::Event(_) => {}
            Output::Timeout(_) => return false,
            Output::Done => return true,
        }
    }
    panic!("client produced over {MAX_POLLS_PER_STEP} outputs for one input");
}

/// A small presentation: 4 H.264 access units and AAC frames at 44.1 kHz,
/// or (for `pcma`) G.711 A-law only.
fn fuzz_source(pcma: bool) -> MediaSource {
    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    let prefixed = |nals: &[&[u8]]| {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    };
    if pcma {
        let samples = (0..5)
            .map(|i| SourceSample {
                track: 0,
                decode_time: i * 160,
                presentation_time: i * 160,
                keyframe: true,
                data: Bytes::from(vec![0xd5; 160]),
            })
            .collect();
        return MediaSource {
            tracks: vec![SourceTrack {
                codec: SourceCodec::Pcma,
                clock_rate: 8000,
            }],
            samples,
            duration: Duration::from_millis(100),
        };
    }
    let idr: Vec<u8> = [0x65, 0x88]
        .into_iter()
        .chain((0..2000).map(|b| (b % 251) as u8 | 1))
        .collect();
    let mut samples = Vec::new();
    for i in 0..4i64 {
        let data = if i == 0 {
            prefixed(&[SPS, PPS, &idr])
        } else {
            prefixed(&[&[0x41, 0x9a, 0x11, 0x22, 0x33]])
        };
        samples.push(SourceSample {
            track: 0,
            decode_time: i * 3600,
            presentation_time: i * 3600,
            keyframe: i == 0,
            data,
        });
        samples.push(SourceSample {
            track: 1,
            decode_time: i * 1024,
            presentation_time: i * 1024,
            keyframe: true,
            data: Bytes::from(vec![0x21; 40]),
        });
    }
    MediaSource {
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
                    config: Bytes::from_static(&[0x12, 0x10]),
                    sample_rate: 44100,
                    channels: 2,
                },
                clock_rate: 44100,
            },
        ],
        samples,
        duration: Duration::from_millis(160),
    }
}

/// The publishing machine fed arbitrary server bytes (answers, channel
/// data, requests). Byte 0: bits 0..=2 how often a timeout fires (0:
/// never), bit 3 loop the source forever, bit 4 ask to close half way, bit
/// 5 end with an I/O error instead of EOF. Byte 1: chunk size. The rest is
/// what the server sends, fed in chunks 20 ms apart. Whatever comes, the
/// machine ends within bounded output once the connection ends.
pub fn publisher(data: &[u8]) {
    use rtsp_toolkit_core::server::publish::{PublishEvent, PublishInput, PublishOptions, PublishOutput, Publisher};
    let (flags, rest) = split_first(data);
    let (chunk, rest) = split_first(rest);
    let start = Instant::now();
    let mut options = PublishOptions {
        timeout: Duration::from_secs(2),
        ..PublishOptions::default()
    };
    if flags & 8 != 0 {
        options.count = rtsp_toolkit_core::server::PlayCount::Forever;
    }
    let source = Arc::new(fuzz_source(false));
    let mut p = Publisher::new("rtsp://u:p@127.0.0.1:8554/live", source, options, start, 7, 0).unwrap();
    let mut now = start;
    let mut done = false;
    let mut finished = 0;
    let mut drain = |p: &mut Publisher, done: &mut bool| {
        for _ in 0..MAX_POLLS_PER_STEP {
            match p.poll_output() {
                PublishOutput::Transmit(b) => assert!(!b.is_empty()),
                PublishOutput::Event(PublishEvent::Finished { .. }) => finished += 1,
                PublishOutput::Event(_) => {}
                PublishOutput::Timeout(_) => return,
                PublishOutput::Done => {
                    *done = true;
                    return;
                }
            }
        }
        panic!("the publisher does not stop producing output");
    };
    p.handle_input(
        now,
        PublishInput::Connected {
            local: addr("127.0.0.1:40000"),
            peer: addr("127.0.0.1:8554"),
        },
    );
    drain(&mut p, &mut done);
    let timeout_every = usize::from(flags & 7);
    let pieces: Vec<&[u8]> = chunks(rest, usize::from(chunk) * 8 + 1).collect();
    for (i, c) in pieces.iter().enumerate() {
        if done {
            break;
        }
        now += Duration::from_millis(20);
        p.handle_input(now, PublishInput::Data(c));
        drain(&mut p, &mut done);
        if !done && timeout_every != 0 && i % timeout_every == 0 {
            now += Duration::from_millis(300);
            p.handle_input(now, PublishInput::Timeout);
            drain(&mut p, &mut done);
        }
        if !done && flags & 16 != 0 && i == pieces.len() / 2 {
            p.handle_input(now, PublishInput::Close);
            drain(&mut p, &mut done);
        }
    }
    if !done {
        let end = if flags & 32 != 0 {
            PublishInput::IoError("fuzz")
        } else {
            PublishInput::Eof
        };
        p.handle_input(now, end);
        drain(&mut p, &mut done);
    }
    assert!(done, "the publisher did not end with its connection");
    assert_eq!(finished, 1, "one Finished event");
}

/// The server connection machine fed arbitrary client bytes.
///
/// Byte 0: bits 0..=1 how lookups are answered (source, G.711 source, not
/// found, unreadable), bit 2 small message limits, bits 3..=5 how often a
/// timeout fires, bit 6 `max_lag` zero (every late wake-up moves the
/// schedule), bit 7 end with [`ServerInput::Abort`] instead of EOF. Byte 1:
/// chunk size. The rest is what the client sends, fed in chunks 20 ms apart.
pub fn server_connection(data: &[u8]) {
    let (flags, rest) = split_first(data);
    let (chunk, rest) = split_first(rest);
    let mut config = ServerConfig {
        session_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(3),
        linger_after_end: Duration::from_secs(1),
        // Publishers too: ANNOUNCE, SETUP mode=record, RECORD and their RTP.
        publish: vec!["*".into()],
        ..ServerConfig::default()
    };
    if flags & 64 != 0 {
        config.max_lag = Duration::ZERO;
    }
    if flags & 4 != 0 {
        config.limits = Limits {
            max_header_bytes: 512,
            max_body_bytes: 2048,
            max_headers: 16,
        };
    }
    let av = Arc::new(fuzz_source(false));
    let pcma = Arc::new(fuzz_source(true));
    let lookup = |path: &str| -> Result<Arc<MediaSource>, LookupError> {
        let _ = path;
        match flags & 3 {
            0 => Ok(av.clone()),
            1 => Ok(pcma.clone()),
            2 => Err(LookupError::NotFound),
            _ => Err(LookupError::Unreadable("fuzz".into())),
        }
    };
    let timeout_every = usize::from((flags >> 3) & 7);
    let start = Instant::now();
    let mut now = start;
    let mut conn = Connection::new(Arc::new(config), start, addr("127.0.0.1:40000"), 7, 0);
    let mut transmitted = 0usize;
    let mut closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
    for (i, c) in chunks(rest, usize::from(chunk) * 8 + 1).enumerate() {
        if closed {
            break;
        }
        now += Duration::from_millis(20);
        conn.handle_input(now, ServerInput::Data(c));
        closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
        if !closed && timeout_every != 0 && i % timeout_every == 0 {
            now += Duration::from_millis(300);
            conn.handle_input(now, ServerInput::Timeout);
            closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
        }
    }
    if !closed {
        let at = now + Duration::from_millis(1);
        if flags & 128 != 0 {
            conn.handle_input(at, ServerInput::Abort(CloseReason::NotReading(Duration::from_secs(5))));
        } else {
            conn.handle_input(at, ServerInput::Eof);
        }
        let mut closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
        if !closed && conn.is_detached() {
            // A UDP session plays on without its connection, until it expires.
            conn.handle_input(at + Duration::from_secs(3600), ServerInput::Timeout);
            closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
        }
        assert!(
            closed,
            "the connection closes at EOF or abort (a UDP session once expired)"
        );
    }
    // What the server writes is bounded by what it was asked: responses to
    // at most one request per input byte, plus a few seconds of the small
    // source's media.
    assert!(
        transmitted <= 4096 * (data.len() + 64),
        "{transmitted} bytes out for {} in",
        data.len()
    );
}

/// A server connection playing over UDP, fed arbitrary datagrams: the
/// client's receiver reports, junk, and strangers' packets, on either socket
/// of either pair, with time passing.
///
/// A fixed exchange sets up two tracks over UDP (client ports 50000-50003)
/// and plays. Then the input is records: byte 0 picks the socket (bit 0
/// RTCP, bit 1 pair 1, bit 2 from a stranger's address, bit 3 from the
/// client's other port, bits 4..=7 milliseconds ×20 to let pass first),
/// byte 1 the length, then that many bytes of datagram. Every 8th record
/// also hands in a timeout. At the end the connection closes (EOF), and a
/// detached session must expire.
pub fn server_udp(data: &[u8]) {
    let config = ServerConfig {
        session_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(3),
        linger_after_end: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let av = Arc::new(fuzz_source(false));
    let lookup = |_: &str| -> Result<Arc<MediaSource>, LookupError> { Ok(av.clone()) };
    let start = Instant::now();
    let mut now = start;
    let client = addr("127.0.0.1:40000");
    let mut conn = Connection::new(Arc::new(config), start, client, 7, 0);
    let mut transmitted = 0usize;
    let base = "rtsp://127.0.0.1:8554/a.mp4";
    let setup = format!(
        "DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\n\r\n\
         SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=50000-50001\r\n\r\n"
    );
    let mut closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
    conn.handle_input(now, ServerInput::Data(setup.as_bytes()));
    closed |= drain_server(&mut conn, now, &lookup, &mut transmitted);
    let Some(session) = conn.session_id().map(str::to_owned) else {
        panic!("the fixed SETUP over UDP made a session");
    };
    let rest = format!(
        "SETUP {base}/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\nTransport: RTP/AVP;unicast;client_port=50002-50003\r\n\r\n\
         PLAY {base} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"
    );
    conn.handle_input(now, ServerInput::Data(rest.as_bytes()));
    closed |= drain_server(&mut conn, now, &lookup, &mut transmitted);
    let mut input = data;
    let mut i = 0usize;
    while !closed && input.len() >= 2 {
        let (sel, len) = (input[0], usize::from(input[1]));
        let body = &input[2..];
        let payload = &body[..len.min(body.len())];
        input = &body[payload.len()..];
        now += Duration::from_millis(20 * u64::from(sel >> 4));
        let pair = u16::from(sel & 2 != 0);
        let socket = UdpSocketId {
            pair,
            rtcp: sel & 1 != 0,
        };
        let port = 50_000 + 2 * pair + u16::from(socket.rtcp != (sel & 8 != 0));
        let from = if sel & 4 != 0 {
            SocketAddr::from(([127, 0, 0, 2], port))
        } else {
            SocketAddr::from(([127, 0, 0, 1], port))
        };
        conn.handle_input(
            now,
            ServerInput::Datagram {
                socket,
                from,
                data: payload,
            },
        );
        closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
        if !closed && i % 8 == 7 {
            conn.handle_input(now, ServerInput::Timeout);
            closed = drain_server(&mut conn, now, &lookup, &mut transmitted);
        }
        i += 1;
    }
    if !closed {
        let at = now + Duration::from_millis(1);
        conn.handle_input(at, ServerInput::Eof);
        let mut closed = drain_server(&mut conn, at, &lookup, &mut transmitted);
        if !closed && conn.is_detached() {
            conn.handle_input(at + Duration::from_secs(3600), ServerInput::Timeout);
            closed = drain_server(&mut conn, at, &lookup, &mut transmitted);
        }
        assert!(closed, "the connection closes at EOF (a UDP session once expired)");
    }
}

/// Drains the connection, answering lookups; true once it closed.
fn drain_server(
    conn: &mut Connection,
    now: Instant,
    lookup: &dyn Fn(&str) -> Result<Arc<MediaSource>, LookupError>,
    transmitted: &mut usize,
) -> bool {
    for _ in 0..MAX_POLLS_PER_STEP {
        match conn.poll_output() {
            ServerOutput::Transmit(b) => {
                assert!(!b.is_empty());
                *transmitted += b.len();
            }
            ServerOutput::Lookup { token, path } => conn.handle_input(
                now,
                ServerInput::Lookup {
                    token,
                    result: lookup(&path),
                },
            ),
            // Odd tokens (the first announce) are taken; even ones find the path published already.
            ServerOutput::Announce { token, .. } => conn.handle_input(
                now,
                ServerInput::Announced {
                    token,
                    result: if token % 2 == 1 { Ok(()) } else { Err("busy") },
                },
            ),
            ServerOutput::OpenUdp(request) => conn.handle_input(
                now,
                ServerInput::UdpOpened {
                    pair: request.pair,
                    result: Ok(40_000 + 2 * (request.pair % 1000)),
                },
            ),
            ServerOutput::SendDatagram { data, .. } => *transmitted += data.len(),
            ServerOutput::OtherSession { token, .. } => conn.handle_input(
                now,
                ServerInput::OtherSession {
                    token,
                    found: token % 2 == 0,
                },
            ),
            ServerOutput::Multicast(MulticastRequest::Join { token, source, .. }) => {
                // A stream that sends every track, on port pair k of 5004-.
                let tracks: Vec<_> = (0..source.tracks.len())
                    .map(|k| {
                        Some(MulticastTrack {
                            group: std::net::Ipv4Addr::new(239, 255, 42, 0),
                            port: 5004 + 2 * (k as u16 % 1000),
                            ttl: 1,
                            ssrc: k as u32,
                        })
                    })
                    .collect();
                conn.handle_input(
                    now,
                    ServerInput::MulticastJoined {
                        token,
                        result: Ok(&tracks),
                    },
                )
            }
            ServerOutput::Multicast(MulticastRequest::Play { token }) => conn.handle_input(
                now,
                ServerInput::MulticastPlaying {
                    token,
                    position: (token % 2 == 0).then(|| MulticastPosition {
                        start: std::time::Duration::from_millis(token % 5000),
                        end: None,
                        play_count: PlayCount::Forever,
                        tracks: vec![Some((token as u16, token as u32)); 2],
                    }),
                },
            ),
            ServerOutput::Event(_)
            | ServerOutput::Backchannel { .. }
            | ServerOutput::Published { .. }
            | ServerOutput::ReadLive { .. } => {}
            ServerOutput::Timeout(_) => return false,
            ServerOutput::Close => return true,
        }
    }
    panic!("server produced over {MAX_POLLS_PER_STEP} outputs for one input");
}

// ---------------------------------------------------------------------------
// Media files

fn media(data: &[u8], kind: FileKind) {
    let Ok(source) = rtsp_toolkit_media::from_bytes(Bytes::copy_from_slice(data), kind) else {
        return;
    };
    for s in &source.samples {
        assert!(s.track < source.tracks.len());
        let _ = source.send_time(s);
    }
}

/// An MP4 file.
pub fn media_mp4(data: &[u8]) {
    media(data, FileKind::Mp4);
}

/// A Matroska file.
pub fn media_mkv(data: &[u8]) {
    media(data, FileKind::Mkv);
}

/// A WAV file (PCM), transcoded to G.711, to L16 or to G.722: the input's
/// length modulo 3 picks which (one encoding per input keeps the target as
/// fast as before).
pub fn media_wav(data: &[u8]) {
    use rtsp_toolkit_media::WavEncoding;
    let encoding = [WavEncoding::Pcma, WavEncoding::L16, WavEncoding::G722][data.len() % 3];
    let Ok(source) = rtsp_toolkit_media::from_bytes_with(Bytes::copy_from_slice(data), FileKind::Wav, encoding) else {
        return;
    };
    for s in &source.samples {
        assert!(s.track < source.tracks.len());
    }
}

/// An ADTS AAC file.
pub fn media_aac(data: &[u8]) {
    media(data, FileKind::Aac);
}

/// A publisher's ANNOUNCE body as the server reads it
/// (`rtsp_toolkit_core::server::live::announced_source`): never a panic; a
/// presentation it accepts has between 1 and `MAX_ANNOUNCED_TRACKS` tracks,
/// one control entry per track, and no samples. Every slice of the input is
/// also asked whether it starts a keyframe, for each codec.
pub fn announce(data: &[u8]) {
    use rtsp_toolkit_core::server::live::{announced_source, starts_keyframe, MAX_ANNOUNCED_TRACKS};
    if let Ok(a) = announced_source(data) {
        let n = a.source.tracks.len();
        assert!((1..=MAX_ANNOUNCED_TRACKS).contains(&n));
        assert_eq!(a.controls.len(), n);
        assert!(a.source.samples.is_empty());
        for t in &a.source.tracks {
            assert!(t.clock_rate > 0);
        }
    }
    let codecs = [
        SourceCodec::H264 {
            sps: vec![],
            pps: vec![],
        },
        SourceCodec::H265 {
            vps: vec![],
            sps: vec![],
            pps: vec![],
        },
        SourceCodec::Pcma,
    ];
    for start in 0..data.len().min(16) {
        for codec in &codecs {
            let _ = starts_keyframe(codec, &data[start..]);
        }
    }
}

/// A fault profile file (`serve --profile`, `rtsp_toolkit_core::server::profile`):
/// never a panic, and the same text gives the same answer.
pub fn profile(data: &[u8]) {
    use rtsp_toolkit_core::server::profile::parse_profile;
    let text = String::from_utf8_lossy(data);
    let first = parse_profile(&text);
    assert_eq!(first, parse_profile(&text));
}
