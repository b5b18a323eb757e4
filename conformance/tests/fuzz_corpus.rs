//! Replays the committed fuzz corpus on stable: every file of
//! `fuzz/corpus/<target>/` (seeds) and `fuzz/regressions/<target>/` (the
//! minimized inputs of past findings) goes through the same entry point as the
//! cargo-fuzz target of that name (`rtsp_toolkit_conformance::fuzzing`).
//!
//! The seeds are written by the ignored test `write_seeds` from the committed
//! fixtures (`RTSP_TOOLKIT_WRITE_SEEDS=1 cargo test -p rtsp-toolkit-conformance
//! --test fuzz_corpus -- --ignored write_seeds`); the media seeds are small
//! files made with ffmpeg (see `docs/RELIABILITY.md`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtsp_toolkit_core::client::Output;

use bytes::{Buf, Bytes};
use rtsp_toolkit_conformance::fuzzing::TARGETS;
use rtsp_toolkit_conformance::{captures_dir, repo_root};
use rtsp_toolkit_core::capture::Capture;
use rtsp_toolkit_core::message::{Decoder, Limits, Message};
use rtsp_toolkit_core::rtcp;
use rtsp_toolkit_core::rtp::RtpPacket;
use rtsp_toolkit_core::server::{Connection, ServerConfig, ServerInput, ServerOutput};

fn fuzz_dir() -> PathBuf {
    repo_root().join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut total = 0;
    for (name, target) in TARGETS {
        for path in files(&fuzz_dir().join(kind).join(name)) {
            let data = fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} failed", path.display());
            total += 1;
        }
    }
    total
}

#[test]
fn corpus_replays_cleanly() {
    for (name, _) in TARGETS {
        assert!(
            !files(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name} has no seed"
        );
    }
    assert!(replay("corpus") >= TARGETS.len());
}

#[test]
fn regressions_replay_cleanly() {
    replay("regressions");
}

#[test]
fn every_fuzz_target_has_an_entry_point() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut on_disk: Vec<String> = files(&dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn committed_corpus_is_small() {
    let mut total = 0;
    for kind in ["corpus", "regressions"] {
        for (name, _) in TARGETS {
            for p in files(&fuzz_dir().join(kind).join(name)) {
                total += fs::metadata(p).unwrap().len();
            }
        }
    }
    assert!(total < 1024 * 1024, "committed fuzz inputs are {total} bytes");
}

// ---------------------------------------------------------------------------
// Seed writer

struct Session {
    received: Bytes,
    messages: Vec<Message>,
}

fn session(name: &str) -> Session {
    let capture = Capture::parse(&fs::read(captures_dir().join(name)).unwrap()).unwrap();
    let received = capture.received().freeze();
    let mut dec = Decoder::new(Limits::default());
    dec.extend(&received);
    let mut messages = Vec::new();
    while let Some(m) = dec.decode().unwrap() {
        messages.push(m);
    }
    Session { received, messages }
}

fn interleaved(s: &Session, channel: u8) -> Vec<Bytes> {
    s.messages
        .iter()
        .filter_map(|m| match m {
            Message::Interleaved { channel: c, payload } if *c == channel => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

/// Seeds of `depacketize_audio`: (name, SDP selector, payloads in order).
fn audio_payloads() -> Vec<(&'static str, u8, Vec<Bytes>)> {
    use rtsp_toolkit_core::codec::{g722, l16};
    // Opus packets: CELT 20 ms (code 0), SILK 20 ms ×2 (code 1), code 2,
    // code 3 VBR with padding.
    let opus = vec![
        Bytes::from_static(&[0xfc, 0x11, 0x22, 0x33]),
        Bytes::from_static(&[0x09, 0x01, 0x02]),
        Bytes::from_static(&[0x7a, 0x02, 0x01, 0x02, 0x03]),
        Bytes::from_static(&[0xfb, 0xc3, 0x01, 0x01, 0x02, 0x09, 0x08, 0x08, 0x07, 0x00]),
    ];
    let pcm: Vec<i16> = (0..600).map(|i| ((i * 97) % 20000 - 10000) as i16).collect();
    let mut be = Vec::new();
    l16::from_native(&pcm, &mut be);
    let be = Bytes::from(be);
    let l16_stereo = l16::Packetizer::new(2, 400)
        .packetize(&be)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let l16_mono = l16::Packetizer::new(1, 300)
        .packetize(&be)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let g722 = g722::Packetizer::new(160)
        .packetize(&Bytes::from((0..400u32).map(|i| (i * 13) as u8).collect::<Vec<u8>>()))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    vec![
        ("opus_stereo", 1, opus),
        ("l16_stereo_static", 2, l16_stereo),
        ("l16_mono_static", 3, l16_mono),
        ("g722", 5, g722),
        // G.726-40: 8 codes in 5 bytes.
        (
            "g726_40",
            7,
            vec![Bytes::from_static(&[0x12, 0x34, 0x56, 0x78, 0x9a]); 3],
        ),
    ]
}

/// Depacketizer records (see `fuzzing::depacketize`) of bare payloads, one
/// sequence number and 1024 timestamp units apart.
fn payload_records(selector: u8, payloads: &[Bytes]) -> Vec<u8> {
    let mut out = vec![selector];
    for p in payloads {
        let len = p.len().min(0x7ff);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&[1, 1]);
        out.extend_from_slice(&p[..len]);
    }
    out
}

/// Depacketizer records (see `fuzzing::depacketize`) from RTP packets.
fn records(selector: u8, packets: &[Bytes], max: usize) -> Vec<u8> {
    let mut out = vec![selector];
    let mut prev: Option<(u16, u32)> = None;
    for p in packets.iter().take(max) {
        let p = RtpPacket::parse(p.clone()).unwrap();
        let len = p.payload.len().min(0x7ff);
        let (seq_step, ts_step) = match prev {
            None => (1, 0),
            Some((s, t)) => (
                p.sequence_number.wrapping_sub(s) as i8 as u8,
                ((p.timestamp.wrapping_sub(t) as i32 + 512) / 1024).clamp(-128, 127) as i8 as u8,
            ),
        };
        prev = Some((p.sequence_number, p.timestamp));
        let header = len as u16 | if p.marker { 0x8000 } else { 0 };
        out.extend_from_slice(&header.to_be_bytes());
        out.extend_from_slice(&[seq_step, ts_step]);
        out.extend_from_slice(&p.payload[..len]);
    }
    out
}

fn with_prefix(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

/// Client bytes for a whole server session against the fuzz source: the
/// session id is the one the machine picks for the fuzz target's seed.
/// Every fault parameter at once.
const FAULTS_ALL: &str = "seed=7&drop=0.1&drop_packets=1,5&reorder=3&jitter_ms=20&stall=0.2:0.3&close_after=300p&ssrc_change=0.1&seq_jump=0.2&session_timeout=5&bye_at=0.3&ts_jump=0.25&sr_offset=-250&keyframe_gap=0.1:0.2&params=inband&resolution_change=0.1:64x48&quirk=no_marker,no_session_timeout,no_content_base,no_sr,control_absolute,no_session_control,other_channels,wrong_content_base,unauthorized_after_play,content_base_no_scheme,reauth_after_play";

/// What FFmpeg 5.1 announces when it publishes an MP4 with H.264 and AAC.
const FFMPEG_ANNOUNCE: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    a=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
    a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkAoEf+yA==,aM48gA==; profile-level-id=42C01E\r\n\
    a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
    a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1210\r\n\
    a=control:streamid=1\r\n";

/// A publisher's whole session (server_connection's format): ANNOUNCE,
/// SETUP mode=record of both tracks, RECORD, RTP and RTCP interleaved, TEARDOWN.
fn publisher_script() -> Vec<u8> {
    let base = "rtsp://127.0.0.1:8554/live";
    let req = |cseq: u32, method: &str, uri: &str, extra: &str| {
        format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n").into_bytes()
    };
    let frame = |channel: u8, payload: &[u8]| {
        let mut v = vec![b'$', channel];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    };
    let rtp = |seq: u16, payload: &[u8]| {
        let mut v = vec![0x80, 0xe0, (seq >> 8) as u8, seq as u8, 0, 0, 0x0e, 0x10, 0, 0, 0, 1];
        v.extend_from_slice(payload);
        v
    };
    let announce = format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{FFMPEG_ANNOUNCE}",
        FFMPEG_ANNOUNCE.len()
    );
    let mut announce_req = req(2, "ANNOUNCE", base, &announce);
    // `req` ends the head; the body follows it.
    announce_req.truncate(announce_req.len() - 2);
    [
        vec![0x00, 0xff],
        req(1, "OPTIONS", base, ""),
        announce_req,
        req(
            3,
            "SETUP",
            &format!("{base}/streamid=0"),
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n",
        ),
        req(
            4,
            "SETUP",
            &format!("{base}/streamid=1"),
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record\r\n",
        ),
        req(5, "RECORD", base, "Range: npt=0.000-\r\n"),
        frame(0, &rtp(1, &[0x65, 0x88, 1, 2, 3])),
        frame(2, &rtp(7, &[0, 16, 0, 8, 1])),
        frame(1, &[0x80, 200, 0, 1, 0, 0, 0, 1]),
        req(6, "TEARDOWN", base, ""),
    ]
    .concat()
}

/// A whole session whose URL asks for every fault (server_connection's
/// format: byte 0 the options, byte 1 the chunk size, then the requests).
fn faults_script() -> Vec<u8> {
    let base = format!("rtsp://127.0.0.1:8554/clip.mp4?{FAULTS_ALL}");
    let req = |cseq: u32, method: &str, uri: &str, extra: &str| {
        format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n").into_bytes()
    };
    [
        vec![0x08, 0xff],
        req(1, "OPTIONS", &base, ""),
        req(2, "DESCRIBE", &base, "Accept: application/sdp\r\n"),
        req(
            3,
            "SETUP",
            "rtsp://127.0.0.1:8554/clip.mp4/trackID=0",
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
        req(4, "PLAY", &base, ""),
        req(5, "GET_PARAMETER", &base, ""),
    ]
    .concat()
}

fn server_script() -> Vec<u8> {
    let base = "rtsp://127.0.0.1:8554/clip.mp4";
    let mut conn = Connection::new(
        Arc::new(ServerConfig::default()),
        Instant::now(),
        "127.0.0.1:40000".parse().unwrap(),
        7,
        0,
    );
    let now = Instant::now() + Duration::from_millis(5);
    let req = |cseq: u32, method: &str, uri: &str, extra: &str| {
        format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n").into_bytes()
    };
    let mut script = Vec::new();
    let setup = [
        req(1, "OPTIONS", base, ""),
        req(2, "DESCRIBE", base, "Accept: application/sdp\r\n"),
        req(
            3,
            "SETUP",
            &format!("{base}/trackID=0"),
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    ]
    .concat();
    conn.handle_input(now, ServerInput::Data(&setup));
    let source = Arc::new(fuzz_source_for_seeds());
    loop {
        match conn.poll_output() {
            ServerOutput::Lookup { token, .. } => conn.handle_input(
                now,
                ServerInput::Lookup {
                    token,
                    result: Ok(source.clone()),
                },
            ),
            ServerOutput::Timeout(_) | ServerOutput::Close => break,
            _ => {}
        }
    }
    let session = conn.session_id().expect("SETUP made a session").to_owned();
    script.extend_from_slice(&setup);
    let s = format!("Session: {session}\r\n");
    script.extend(req(
        4,
        "SETUP",
        &format!("{base}/trackID=1"),
        &format!("{s}Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n"),
    ));
    script.extend(req(5, "PLAY", base, &format!("{s}Range: npt=0-\r\n")));
    // An RTCP receiver report from the client.
    script.extend_from_slice(&[b'$', 1, 0, 8, 0x80, 201, 0, 1, 0, 0, 0, 1]);
    script.extend(req(6, "GET_PARAMETER", base, &s));
    script.extend(req(
        7,
        "SET_PARAMETER",
        base,
        &format!("{s}Content-Type: text/parameters\r\nContent-Length: 5\r\n"),
    ));
    script.extend_from_slice(b"a: b\n");
    script.extend(req(8, "TEARDOWN", base, &s));
    script
}

/// A UDP session as a capture (format 2), for the `client_replay` seeds:
/// the DESCRIBE answer of `s`, both tracks set up over UDP, then `s`'s RTP
/// and RTCP as datagrams from the server's ports, with a few swapped, one
/// repeated, one from a stranger, timeouts between, and the close.
fn udp_capture(s: &Session) -> Vec<u8> {
    use rtsp_toolkit_core::client::{Client, ClientOptions, Input, Transport, UdpSocketId};
    let sdp = s
        .messages
        .iter()
        .find_map(|m| match m {
            Message::Response(r) if r.headers.get("Content-Type").is_some_and(|t| t.contains("sdp")) => {
                Some(r.body.clone())
            }
            _ => None,
        })
        .expect("a DESCRIBE answer");
    let t0 = Instant::now();
    let opts = ClientOptions::default()
        .with_transport(Transport::Udp)
        .with_capture("seed");
    let mut c = Client::new("rtsp://127.0.0.1:8554/h264_aac.mp4", opts, t0).unwrap();
    let mut ms = 0u64;
    let mut at = |step: u64| {
        ms += step;
        t0 + Duration::from_millis(ms)
    };
    let reply = |cseq: u32, headers: &str, body: &[u8]| {
        let mut m = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{headers}");
        if !body.is_empty() {
            m.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        m.push_str("\r\n");
        let mut m = m.into_bytes();
        m.extend_from_slice(body);
        m
    };
    let drain = |c: &mut Client| while !matches!(c.poll_output(), Output::Timeout(_) | Output::Done) {};
    c.handle_input(
        at(1),
        Input::Connected {
            local: "127.0.0.1:40000".parse().unwrap(),
            peer: "127.0.0.1:8554".parse().unwrap(),
        },
    );
    drain(&mut c);
    c.handle_input(at(1), Input::Data(&reply(1, "", b"")));
    drain(&mut c);
    let base = "Content-Base: rtsp://127.0.0.1:8554/h264_aac.mp4/\r\n";
    c.handle_input(at(1), Input::Data(&reply(2, base, &sdp)));
    drain(&mut c);
    for (pair, cseq) in [(0u16, 3u32), (1, 4)] {
        let port = 50_000 + 2 * pair;
        c.handle_input(at(1), Input::UdpOpened { pair, result: Ok(port) });
        drain(&mut c);
        let server = 6970 + 2 * pair;
        let t = format!(
            "Transport: RTP/AVP;unicast;client_port={port}-{};server_port={server}-{};ssrc=5\r\nSession: s;timeout=60\r\n",
            port + 1,
            server + 1
        );
        c.handle_input(at(1), Input::Data(&reply(cseq, &t, b"")));
        drain(&mut c);
    }
    c.handle_input(at(1), Input::Data(&reply(5, "Session: s\r\n", b"")));
    drain(&mut c);
    let mut sent = 0;
    for m in &s.messages {
        let Message::Interleaved { channel, payload } = m else {
            continue;
        };
        if *channel > 3 || sent >= 120 {
            continue;
        }
        let pair = u16::from(*channel / 2);
        let rtcp = channel % 2 == 1;
        let socket = UdpSocketId { pair, rtcp };
        let from = std::net::SocketAddr::from(([127, 0, 0, 1], 6970 + 2 * pair + u16::from(rtcp)));
        let stranger = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let step = if sent % 7 == 3 { 0 } else { 2 };
        let who = if sent == 17 { stranger } else { from };
        c.handle_input(
            at(step),
            Input::Datagram {
                socket,
                from: who,
                data: payload,
            },
        );
        if sent % 11 == 5 {
            // Repeated.
            c.handle_input(
                at(0),
                Input::Datagram {
                    socket,
                    from,
                    data: payload,
                },
            );
        }
        drain(&mut c);
        if sent % 13 == 0 {
            c.handle_input(at(150), Input::Timeout);
            drain(&mut c);
        }
        sent += 1;
    }
    c.handle_input(at(5000), Input::Timeout);
    drain(&mut c);
    c.handle_input(at(1), Input::Close);
    drain(&mut c);
    c.handle_input(at(1), Input::Data(&reply(6, "Session: s\r\n", b"")));
    drain(&mut c);
    c.take_capture().expect("recorded").to_vec()
}

/// What the fuzz target's lookups answer (it only matters that SETUP works).
fn fuzz_source_for_seeds() -> rtsp_toolkit_core::source::MediaSource {
    use rtsp_toolkit_core::source::{MediaSource, SourceCodec, SourceSample, SourceTrack};
    MediaSource {
        tracks: vec![SourceTrack {
            codec: SourceCodec::Pcma,
            clock_rate: 8000,
        }],
        samples: vec![SourceSample {
            track: 0,
            decode_time: 0,
            presentation_time: 0,
            keyframe: true,
            data: Bytes::from_static(&[0xd5; 160]),
        }],
        duration: Duration::from_millis(20),
    }
}

#[test]
#[ignore = "writes fuzz/corpus seeds; run with RTSP_TOOLKIT_WRITE_SEEDS=1"]
fn write_seeds() {
    if std::env::var_os("RTSP_TOOLKIT_WRITE_SEEDS").is_none() {
        return;
    }
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), data).unwrap();
    };
    let av = session("h264_aac.rtspcap");
    let hevc = session("h265.rtspcap");
    let pcm = session("pcm_16k_mono.rtspcap");

    // Framing.
    write(
        "client_decoder",
        "h264_aac",
        &with_prefix(&[0x7f], &av.received[..6000]),
    );
    write(
        "client_decoder",
        "h265_small_limits",
        &with_prefix(&[0x83], &hevc.received[..3000]),
    );
    let script = server_script();
    write("server_decoder", "session", &with_prefix(&[0x7f], &script));
    write("server_decoder", "session_small_limits", &with_prefix(&[0x81], &script));

    // SDP bodies of the DESCRIBE responses.
    for (name, s) in [("h264_aac", &av), ("h265", &hevc), ("pcma", &pcm)] {
        for m in &s.messages {
            if let Message::Response(r) = m {
                if r.headers.get("Content-Type").is_some_and(|t| t.contains("sdp")) {
                    write("sdp", name, &r.body);
                }
            }
        }
    }
    write(
        "sdp",
        "latm",
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\nm=audio 0 RTP/AVP 96\r\n\
a=rtpmap:96 MP4A-LATM/44100/2\r\na=fmtp:96 profile-level-id=15;object=2;cpresent=0;config=400024203fc0\r\n\
a=control:trackID=1\r\n",
    );

    // Challenges.
    write("auth", "basic", b"Basic realm=\"cam\"");
    write(
        "auth",
        "digest",
        b"Digest realm=\"cam\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", algorithm=MD5",
    );
    write(
        "auth",
        "digest_qop_and_basic",
        b"Digest realm=\"x@y\", qop=\"auth,auth-int\", nonce=\"abc\", opaque=\"5ccc\", stale=TRUE\nBasic realm=\"x\"",
    );

    // Authorization values, as the server reads them.
    write(
        "server_auth",
        "digest_sha256_rfc7616",
        br#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
    );
    write(
        "server_auth",
        "digest_md5_no_qop",
        br#"Digest username="user", realm="rtsp-toolkit", nonce="0000000000989680a1b2c3d4e5f60718293a4b5c6d7e8f90", uri="rtsp://127.0.0.1/stream", response="0123456789abcdef0123456789abcdef""#,
    );
    write(
        "server_auth",
        "digest_userhash_escapes",
        br#"digest USERNAME="a"b", realm="rtsp-toolkit", nonce="n", uri="rtsp://127.0.0.1/stream", response="x", userhash=true, qop="auth", nc=1, cnonce="c""#,
    );
    write("server_auth", "basic", b"Basic dXNlcjpwYTpzcw==");
    write("server_auth", "basic_bad", b"Basic !!!=");
    write("server_auth", "garbage", b"Digest username=\"unterminated, realm=");

    // RTSP-over-HTTP tunnel halves.
    for (name, data) in TUNNEL_SEEDS {
        write("server_tunnel", name, data);
    }
    // Answers to our tunnel GET: ours, GStreamer's, a refusal, RTSP.
    let ours = [
        &b"\x07"[..],
        rtsp_toolkit_core::server::tunnel::GET_RESPONSE,
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
    ]
    .concat();
    write("client_tunnel", "ours", &ours);
    write(
        "client_tunnel",
        "gstreamer",
        b"\x0dHTTP/1.0 200 OK\r\nServer: GStreamer RTSP Server\r\nConnection: close\r\nCache-Control: no-store\r\nPragma: no-cache\r\nContent-Type: application/x-rtsp-tunnelled\r\n\r\n$\x00\x00\x04abcd",
    );
    write(
        "client_tunnel",
        "refused",
        b"\x03HTTP/1.1 403 Forbidden\nContent-Length: 0\n\n",
    );
    write("client_tunnel", "rtsp", b"\x02RTSP/1.0 400 Bad Request\r\n\r\n");

    // Packets.
    for (name, s, ch) in [("h264", &av, 0), ("aac", &av, 2), ("h265", &hevc, 0), ("pcma", &pcm, 0)] {
        for (i, p) in interleaved(s, ch).iter().take(3).enumerate() {
            write("rtp", &format!("{name}_{i}"), p);
        }
        if let Some(p) = interleaved(s, ch + 1).first() {
            write("rtcp", name, p);
        }
    }
    {
        use rtsp_toolkit_core::rtcp::{ReceiverReport, ReportBlock, SenderReport};
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 3,
            cumulative_lost: -2,
            highest_sequence: 70_000,
            jitter: 12,
            last_sr: 5,
            delay_since_last_sr: 6,
        };
        let mut out = bytes::BytesMut::new();
        let sr = SenderReport {
            ssrc: 7,
            ntp_timestamp: 0xe000_0000_8000_0000,
            rtp_timestamp: 90_000,
            packet_count: 10,
            octet_count: 12_000,
            reports: vec![block],
        };
        rtcp::encode_sender_report(&sr, &mut out);
        rtcp::encode_sdes_cname(7, "server@example", &mut out);
        write("rtcp", "sr_sdes", &out);
        out.clear();
        rtcp::encode_receiver_report(
            &ReceiverReport {
                ssrc: 8,
                reports: vec![block, block],
            },
            &mut out,
        );
        rtcp::encode_bye(&[7, 8], Some("done"), &mut out);
        write("rtcp", "rr_bye", &out);
    }
    write(
        "rtp",
        "csrc_ext_padding",
        &[
            0xb1, 0x60, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 1, 2, 3, 0, 2,
        ],
    );

    // Depacketizers: the first packets of each capture, as records.
    write("depacketize_h264", "sdp_params", &records(0, &interleaved(&av, 0), 24));
    write("depacketize_h264", "plain", &records(1, &interleaved(&av, 0)[4..], 12));
    write("depacketize_h265", "plain", &records(0, &interleaved(&hevc, 0), 24));
    write("depacketize_aac", "hbr", &records(0, &interleaved(&av, 2), 12));
    write(
        "depacketize_latm",
        "cpresent0",
        &[0, 0x80, 6, 1, 1, 5, 0x21, 0x10, 0x20, 0x30, 0x40],
    );
    write("depacketize_g711", "pcmu", &records(0, &interleaved(&pcm, 0), 3));
    write("depacketize_g711", "pcma_stereo", &records(1, &interleaved(&pcm, 0), 2));
    {
        // MJPEG: a 16x8 gray image (one 4:2:2 MCU of empty blocks) in two Q 50
        // fragments, then the rebuilt image sent again by the packetizer (Q 255,
        // in-band tables), then with restart markers (type 64).
        use rtsp_toolkit_core::codec::jpeg;
        use rtsp_toolkit_core::rtp::RtpHeader;
        let rtp = |seq: u16, ts: u32, marker: bool, payload: &[u8]| {
            let mut out = bytes::BytesMut::new();
            RtpHeader {
                sequence_number: seq,
                timestamp: ts,
                ssrc: 7,
                marker,
                payload_type: 26,
            }
            .write_packet(payload, &mut out);
            out.freeze()
        };
        let mut packets = vec![
            rtp(1, 0, false, &[0, 0, 0, 0, 0, 50, 2, 1, 0b0010_1000]),
            rtp(2, 0, true, &[0, 0, 0, 1, 0, 50, 2, 1, 0b1010_0000, 0b0000_1111]),
        ];
        let media = rtsp_toolkit_core::sdp::Sdp::parse(b"v=0\r\nm=video 0 RTP/AVP 26\r\n")
            .unwrap()
            .media
            .remove(0);
        let mut d = jpeg::Depacketizer::new(&media, 1 << 20).unwrap();
        for p in &packets {
            d.push(&RtpPacket::parse(p.clone()).unwrap(), 0).unwrap();
        }
        let image = d.pull().unwrap().data;
        for (i, payload) in jpeg::Packetizer::new(150).packetize(&image).unwrap().iter().enumerate() {
            packets.push(rtp(3 + i as u16, 3000, true, payload));
        }
        packets.push(rtp(
            9,
            6000,
            true,
            &[
                0,
                0,
                0,
                0,
                64,
                60,
                2,
                1,
                0,
                1,
                0xff,
                0xff,
                0b0010_1000,
                0b1010_0000,
                0b0000_1111,
            ],
        ));
        write("depacketize_jpeg", "gray", &records(0, &packets, 16));
        // Metadata: a document in three fragments, a whole one, then one
        // whose middle fragment is lost (sequence step 2), then a last one.
        let doc = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\"><tt:Event><wsnt:NotificationMessage><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>";
        let mut out = vec![0u8];
        let mut record = |payload: &[u8], marker: bool, seq_step: u8, ts_step: u8| {
            let header = payload.len() as u16 | if marker { 0x8000 } else { 0 };
            out.extend_from_slice(&header.to_be_bytes());
            out.extend_from_slice(&[seq_step, ts_step]);
            out.extend_from_slice(payload);
        };
        let third = doc.len() / 3;
        record(&doc[..third], false, 1, 0);
        record(&doc[third..2 * third], false, 1, 0);
        record(&doc[2 * third..], true, 1, 0);
        record(doc, true, 1, 88);
        record(&doc[..third], false, 1, 88);
        record(&doc[2 * third..], true, 2, 0);
        record(doc, true, 1, 88);
        write("depacketize_metadata", "fragments_and_loss", &out);
        out[0] = 1;
        write("depacketize_metadata", "clock_1000", &out);
    }
    // Opus, L16 and G.722: payloads made by the packetizers (no capture).
    for (name, selector, payloads) in audio_payloads() {
        write("depacketize_audio", name, &payload_records(selector, &payloads));
    }

    // SPS NAL units: the fixtures' (320x240; the H.264 one is also their
    // sprop-parameter-sets), and libx264's for 1080p (cropped) after an
    // access unit delimiter, as an Annex B access unit.
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    write(
        "sps",
        "h264_320x240",
        &hex("6764000dacb20283f60220000003002000000641e28549"),
    );
    write(
        "sps",
        "h265_320x240",
        &hex("42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210"),
    );
    write(
        "sps",
        "h264_1080p_annexb",
        &hex("0000000109100000000167640028acd940780227e5c044000003000400000300c83c60c658000001"),
    );

    // Machines: byte 0 options, byte 1 chunk size, then the stream.
    let cut = |b: &Bytes, n: usize| b.slice(..n.min(b.len()));
    write(
        "client_session",
        "h264_aac",
        &with_prefix(&[0x00, 0xff], &cut(&av.received, 12_000)),
    );
    write(
        "client_session",
        "h265_chunks",
        &with_prefix(&[0x22, 0x10], &cut(&hevc.received, 8_000)),
    );
    write(
        "client_session",
        "pcma_whole",
        &with_prefix(&[0x05, 0x40], &pcm.received),
    );
    write("server_connection", "av", &with_prefix(&[0x00, 0xff], &script));
    write(
        "server_connection",
        "av_chunks_timeouts",
        &with_prefix(&[0x0c, 0x03], &script),
    );
    write("server_connection", "pcma", &with_prefix(&[0x01, 0xff], &script));
    write("server_connection", "not_found", &with_prefix(&[0x02, 0xff], &script));
    write("server_connection", "av_faults", &faults_script());
    // The camera simulator's queries.
    write("faults", "all", FAULTS_ALL.as_bytes());
    write("announce", "ffmpeg", FFMPEG_ANNOUNCE.as_bytes());
    write(
        "profile",
        "every_form",
        b"# a flaky camera\nseed = 7\ndrop = 0.03  # 3 %\nstall = \"20:5\"\nquirk = [\"wrong_cseq\", \"no_public\"]\nclose_after = 300p\n",
    );
    write(
        "profile",
        "mistakes",
        b"dorp = 1\nquirk = [\"a\" \"b\"]\nstall = \"2:3\n",
    );
    write("server_connection", "publisher", &publisher_script());
    write("faults", "bad_drop", b"play_count=2&drop=1.5");
    write("faults", "burst_dup", b"drop=0.2&burst=100&dup=1&seed=0");
    // `slow=` is left out of FAULTS_ALL: its session would wait for timeouts
    // the server_connection seed does not give.
    write("faults", "slow", b"slow=250&sr_offset=-40&ts_jump=1");
    write("faults", "params_sdp", b"params=sdp&keyframe_gap=0:0.5&slow=1");
    write(
        "faults",
        "ts_jump_back",
        b"ts_jump=0.5:-3000&ts_jump=1:86400000&ts_jump=2:-86400000",
    );
    write(
        "faults",
        "freeze",
        b"freeze=0.5:2&drop_packets=0,7,7,999999999&stall=1:1&freeze=0:0.1",
    );
    write(
        "faults",
        "quirks",
        b"quirk=wrong_cseq,no_get_parameter,no_public&seed=18446744073709551615",
    );
    // A server taking a publisher: ANNOUNCE, two SETUPs, RECORD answered, a receiver report on the
    // RTCP channel, a keepalive answered, a request of the server's, TEARDOWN answered.
    let answers = [
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: 12345678;timeout=4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n",
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 12345678\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\r\n",
        "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n",
    ];
    let mut publish = answers.concat().into_bytes();
    publish.extend_from_slice(&[b'$', 1, 0, 8, 0x80, 201, 0, 1, 0, 0, 0, 1]);
    publish.extend_from_slice(b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n");
    publish.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n");
    write("publisher", "record", &with_prefix(&[0x00, 0xff], &publish));
    write("publisher", "record_timeouts", &with_prefix(&[0x01, 0x02], &publish));
    write("publisher", "loop_close", &with_prefix(&[0x1a, 0x10], &publish));
    let challenge = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\r\n\r\n";
    let mut auth = challenge.to_vec();
    auth.extend_from_slice(&publish.clone()[..]);
    write("publisher", "digest", &with_prefix(&[0x20, 0xff], &auth));

    // Captures: a whole small one and the start of another.
    let pcm_file = fs::read(captures_dir().join("pcm_16k_mono.rtspcap")).unwrap();
    write("capture", "pcm", &pcm_file);
    write("client_replay", "pcm_tcp_v1", &pcm_file);
    write("client_replay", "h264_aac_udp", &udp_capture(&av));
    // The server over UDP: records of (socket/source/time byte, length, datagram).
    let record = |sel: u8, d: &[u8]| {
        let mut r = vec![sel, d.len() as u8];
        r.extend_from_slice(d);
        r
    };
    let mut rr = bytes::BytesMut::new();
    rtcp::encode_receiver_report(
        &rtcp::ReceiverReport {
            ssrc: 9,
            reports: vec![rtcp::ReportBlock {
                ssrc: 1,
                fraction_lost: 12,
                cumulative_lost: 3,
                highest_sequence: 100,
                jitter: 40,
                ..Default::default()
            }],
        },
        &mut rr,
    );
    rtcp::encode_sdes_cname(9, "fuzz@127.0.0.1", &mut rr);
    let mut bye = bytes::BytesMut::new();
    rtcp::encode_bye(&[1], Some("bye"), &mut bye);
    let mut seed = Vec::new();
    seed.extend(record(0x51, &rr)); // an RR on pair 0's RTCP socket, 100 ms in
    seed.extend(record(0x00, &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9])); // an RTP header on the RTP socket
    seed.extend(record(0x57, &bye)); // a stranger's BYE on pair 1's RTCP socket
    seed.extend(record(0x09, &rr[..7])); // a cut RR from the client's other port
    seed.extend(record(0xf3, &rr)); // 300 ms later, pair 1
    write("server_udp", "reports_and_strangers", &seed);
    write("server_udp", "quiet", &record(0xf1, &[]));
    let hevc_file = fs::read(captures_dir().join("h265.rtspcap")).unwrap();
    write("capture", "h265_cut", &hevc_file[..4000]);

    // ADTS: the first frames of the fixture.
    let aac = fs::read(repo_root().join("fixtures/media/tone.aac")).unwrap();
    let mut frames = &aac[..];
    let mut len = 0;
    for _ in 0..4 {
        let frame = (usize::from(frames[3] & 3) << 11) | (usize::from(frames[4]) << 3) | usize::from(frames[5] >> 5);
        len += frame;
        frames.advance(frame);
    }
    write("media_aac", "tone_4_frames", &aac[..len]);
}

/// The media seeds are valid files, so that fuzzing starts deep in the readers.
#[test]
fn media_seeds_are_valid_files() {
    use rtsp_toolkit_media::{from_bytes, FileKind};
    for (dir, kind) in [
        ("media_mp4", FileKind::Mp4),
        ("media_mkv", FileKind::Mkv),
        ("media_wav", FileKind::Wav),
        ("media_aac", FileKind::Aac),
    ] {
        for p in files(&fuzz_dir().join("corpus").join(dir)) {
            let source = from_bytes(Bytes::from(fs::read(&p).unwrap()), kind);
            assert!(source.is_ok_and(|s| !s.samples.is_empty()), "{}", p.display());
        }
    }
}

/// The seeds of the `server_tunnel` target: byte 0 the chunk size, then a
/// connection's first bytes.
const TUNNEL_SEEDS: &[(&str, &[u8])] = &[
    (
        "get_ffmpeg",
        b"\x06GET /h264_aac.mp4 HTTP/1.1\r\nUser-Agent: Lavf59.27.100\r\nAccept: application/x-rtsp-tunnelled\r\nx-sessioncookie: 4f6c9a0e1c8d2b7a\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n",
    ),
    (
        "post_two_requests",
        b"\x02POST /h264_aac.mp4 HTTP/1.0\r\nx-sessioncookie: 4f6c9a0e1c8d2b7a\r\nContent-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\nT1BUSU9OUyAqIFJUU1AvMS4wDQpDU2VxOiAxDQoNCg==\r\nREVTQ1JJQkUgcnRzcDovL3gvIFJUU1AvMS4wDQpDU2VxOiAyDQoNCg==",
    ),
    ("get_plain_http", b"\x01GET / HTTP/1.1\nHost: x\n\n"),
    (
        "post_garbage",
        b"\x03POST / HTTP/1.1\r\nx-sessioncookie: a\r\nContent-Type: application/x-rtsp-tunnelled\r\n\r\nQU=J!!",
    ),
    ("rtsp", b"\x07GET_PARAMETER rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
];
