//! Scripted tests of the user's PAUSE and later PLAYs (`control.rs`): the
//! phase rules, the requests sent, `RTP-Info` after a seek, no read timeout
//! while paused, and captures that record them.

use super::*;

impl Harness {
    fn pause(&mut self, at_ms: u64) {
        self.c.handle_input(self.at(at_ms), Input::Pause);
        self.drain();
    }

    fn play_from(&mut self, at_ms: u64, range: PlayRange, scale: Option<f64>) {
        let scale = scale.map(|s| Scale::new(s).unwrap());
        self.c.handle_input(self.at(at_ms), Input::Play { range, scale });
        self.drain();
    }

    fn control_warnings(&self) -> Vec<(Method, Option<u16>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Warning(Warning::Control { method, status, .. }) => Some((method.clone(), *status)),
                _ => None,
            })
            .collect()
    }

    /// The next deadline, in whole milliseconds after t0 (rounded up).
    fn next_ms(&self) -> u64 {
        let d = self.deadline.expect("a deadline") - self.t0;
        (d.as_micros() as u64).div_ceil(1000)
    }

    fn losses_total(&self) -> u32 {
        self.events
            .iter()
            .map(|e| if let Event::Loss(l) = e { l.lost } else { 0 })
            .sum()
    }
}

const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN";

#[test]
fn pause_and_play_are_refused_outside_their_phases_with_a_warning() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.pause(1);
    h.connect(5);
    h.play_from(6, PlayRange::resume(), None);
    assert_eq!(h.requests.len(), 1, "only OPTIONS was sent");
    assert_eq!(
        h.control_warnings(),
        [(Method::Pause, None), (Method::Play, None)],
        "refused before PLAY, and before the connection too"
    );
    let Event::Warning(w) = h.events.last().unwrap() else {
        panic!()
    };
    assert_eq!(
        w.to_string(),
        "PLAY not sent: the session is not playing yet (waiting for the OPTIONS response)"
    );
    assert_eq!(w.kind(), "control");
    assert!(h.closed().is_none());
}

#[test]
fn pause_then_resume_then_seek_sends_the_requests_and_shows_their_answers() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    h.input(60, &rtp(0, 1, 0, true, b"\x65a"));
    h.pause(100);
    let pause = h.last_request().clone();
    assert_eq!(
        (pause.method.clone(), pause.uri.as_str()),
        (Method::Pause, "rtsp://127.0.0.1:8554/a.mp4/")
    );
    assert_eq!(pause.headers.get("Session"), Some("abc"));
    // A second request while the PAUSE is unanswered is refused.
    h.play_from(101, PlayRange::resume(), None);
    assert_eq!(h.requests.len(), 6);
    h.reply(110, "200 OK", "Session: abc\r\n", "");
    // Paused: a pause is refused, PLAY resumes (no Range: where it paused).
    h.pause(120);
    h.play_from(130, PlayRange::resume(), None);
    let resume = h.last_request().clone();
    assert_eq!(resume.method, Method::Play);
    assert_eq!(resume.headers.get("Range"), None);
    assert_eq!(resume.headers.get("Scale"), None);
    h.reply(
        140,
        "200 OK",
        "RTP-Info: url=rtsp://127.0.0.1:8554/a.mp4/stream=0;seq=2;rtptime=0\r\n",
        "",
    );
    // Playing: a seek with an end and a scale.
    h.play_from(
        150,
        PlayRange::between(Duration::from_millis(2500), Duration::from_secs(4)),
        Some(2.0),
    );
    let seek = h.last_request().clone();
    assert_eq!(seek.headers.get("Range"), Some("npt=2.500-4.000"));
    assert_eq!(seek.headers.get("Scale"), Some("2"));
    h.reply(160, "200 OK", "Range: npt=2.000-4.000\r\n", "");
    let methods: Vec<(String, u16)> = h
        .method_events()
        .iter()
        .skip(5)
        .map(|m| (m.method.to_string(), m.status))
        .collect();
    assert_eq!(
        methods,
        [("PAUSE".into(), 200), ("PLAY".into(), 200), ("PLAY".into(), 200)]
    );
    assert_eq!(
        h.control_warnings(),
        [(Method::Play, None), (Method::Pause, None)],
        "PLAY while PAUSE was unanswered, PAUSE while paused"
    );
    // A range that cannot be is refused without a request.
    h.play_from(
        170,
        PlayRange {
            start: None,
            end: Some(Duration::from_secs(1)),
        },
        None,
    );
    assert_eq!(h.requests.len(), 8);
    assert!(h.closed().is_none());
}

#[test]
fn a_refused_pause_is_a_warning_and_the_session_plays_on() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    h.pause(100);
    h.reply(110, "455 Method Not Valid in This State", "", "");
    assert_eq!(h.control_warnings(), [(Method::Pause, Some(455))]);
    assert!(h.closed().is_none());
    // Still playing: the read timeout (4 s) runs from the last data.
    h.timeout(110 + 4000);
    let closed = h.closed().expect("a read timeout while playing");
    assert!(matches!(closed.error, Some(Error::Timeout { .. })));
}

#[test]
fn paused_silence_is_not_a_timeout_and_keepalives_go_on() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    h.pause(100);
    h.reply(110, "200 OK", "Session: abc\r\n", "");
    // 30 s of silence, far over the 4 s read timeout: every deadline is a
    // keepalive (session timeout 10 s: every 5 s) or a receiver report.
    let mut keepalives = 0;
    for _ in 0..40 {
        let t = h.next_ms();
        if t > 30_000 {
            break;
        }
        let sent = h.requests.len();
        h.timeout(t);
        assert!(h.closed().is_none(), "{:?}", h.closed());
        if h.requests.len() > sent {
            assert_eq!(h.last_request().method, Method::GetParameter);
            keepalives += 1;
            h.reply(t + 5, "200 OK", "Session: abc\r\n", "");
        }
    }
    assert_eq!(keepalives, 5, "at 5.05, 10.055, ... 25.07 s");
    assert!(
        h.events.iter().any(|e| matches!(e, Event::RtcpSent(_))),
        "reports go on"
    );
    // An unanswered keepalive is still a timeout while paused.
    let t = h.next_ms();
    h.timeout(t);
    let t = h.next_ms();
    h.timeout(t);
    let t = h.next_ms();
    h.timeout(t);
    assert!(matches!(h.closed().unwrap().error, Some(Error::Timeout { .. })));
}

#[test]
fn resume_restarts_the_read_timeout() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    h.pause(100);
    h.reply(110, "200 OK", "", "");
    h.play_from(3000, PlayRange::resume(), None);
    h.reply(3010, "200 OK", "", "");
    // Keepalive at 5050 answered at once; the read timeout is 3010 + 4000.
    h.timeout(5050);
    h.reply(5051, "200 OK", "", "");
    h.timeout(7009);
    assert!(h.closed().is_none());
    h.timeout(5051 + 4000);
    assert!(h.closed().is_some());
}

#[test]
fn a_seek_is_a_discontinuity_not_loss() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    for seq in 1..=3u16 {
        h.input(60 + u64::from(seq), &rtp(0, seq, u32::from(seq) * 3000, true, b"\x65a"));
    }
    h.play_from(100, PlayRange::from(Duration::from_secs(10)), None);
    // The server jumped its sequence (a seek, as some servers do).
    h.reply(
        110,
        "200 OK",
        "RTP-Info: url=rtsp://127.0.0.1:8554/a.mp4/stream=0;seq=500;rtptime=900000,url=rtsp://127.0.0.1:8554/a.mp4/stream=1;seq=77;rtptime=1\r\n",
        "",
    );
    h.input(120, &rtp(0, 500, 900_000, true, b"\x65b"));
    h.input(121, &rtp(0, 501, 903_000, true, b"\x65c"));
    assert_eq!(h.losses_total(), 0, "the jump is not loss");
    let frames: Vec<i64> = h
        .events
        .iter()
        .filter_map(|e| {
            if let Event::Video(v) = e {
                Some(v.extended_timestamp)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(frames.last(), Some(&903_000), "frames go on after the seek");
    // A real gap after it still is.
    h.input(122, &rtp(0, 503, 909_000, true, b"\x65d"));
    assert_eq!(h.losses_total(), 1);
}

#[test]
fn a_seek_answered_without_rtp_info_starts_the_count_again() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    h.input(61, &rtp(0, 1, 0, true, b"\x65a"));
    h.play_from(100, PlayRange::from(Duration::from_secs(1)), None);
    h.reply(110, "200 OK", "", "");
    h.input(120, &rtp(0, 900, 90_000, true, b"\x65b"));
    h.input(121, &rtp(0, 901, 93_000, true, b"\x65c"));
    assert_eq!(h.losses_total(), 0);
}

#[test]
fn a_session_with_pause_and_seek_replays_from_its_capture() {
    let opts = ClientOptions {
        capture: Some("unused".into()),
        ..ClientOptions::default()
    };
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", opts);
    h.play(PUBLIC);
    h.input(61, &rtp(0, 1, 0, true, b"\x65a"));
    h.pause(100);
    h.reply(110, "200 OK", "", "");
    h.play_from(200, PlayRange::from(Duration::from_millis(1500)), Some(0.5));
    h.reply(
        210,
        "200 OK",
        "RTP-Info: url=rtsp://127.0.0.1:8554/a.mp4/stream=0;seq=500;rtptime=1\r\n",
        "",
    );
    h.input(220, &rtp(0, 500, 90_000, true, b"\x65b"));
    h.pause(230);
    h.pause(231);
    h.c.handle_input(h.at(300), Input::Close);
    h.drain();
    h.reply(310, "200 OK", "", "");
    assert!(h.done);
    let capture = crate::capture::Capture::parse(&h.c.take_capture().unwrap()).unwrap();
    let kinds: Vec<&crate::capture::RecordKind> = capture
        .records
        .iter()
        .map(|r| &r.kind)
        .filter(|k| {
            matches!(
                k,
                crate::capture::RecordKind::Pause | crate::capture::RecordKind::Play { .. }
            )
        })
        .collect();
    assert_eq!(kinds.len(), 4);
    assert_eq!(
        kinds[1],
        &crate::capture::RecordKind::Play {
            range: PlayRange::from(Duration::from_millis(1500)),
            scale: Some(Scale::new(0.5).unwrap())
        }
    );
    let replayed = crate::capture::replay(&capture, ClientOptions::default(), h.t0).unwrap();
    assert_eq!(replayed, h.events);
    // Encoded again, byte for byte.
    assert_eq!(crate::capture::Capture::parse(&capture.encode()).unwrap(), capture);
}

#[test]
fn a_server_that_jumps_before_it_answers_the_seek_is_not_loss() {
    let mut h = Harness::new("rtsp://127.0.0.1:8554/a.mp4", ClientOptions::default());
    h.play(PUBLIC);
    for seq in 1..=3u16 {
        h.input(60 + u64::from(seq), &rtp(0, seq, u32::from(seq) * 3000, true, b"\x65a"));
    }
    h.play_from(100, PlayRange::from(Duration::from_secs(3)), None);
    // GStreamer: packet 4 flushed, 5 onwards from the new position, then
    // the answer, whose RTP-Info names a later packet than the first sent.
    h.input(105, &rtp(0, 5, 270_000, true, b"\x65b"));
    h.input(106, &rtp(0, 6, 273_000, true, b"\x65c"));
    h.reply(
        110,
        "200 OK",
        "RTP-Info: url=rtsp://127.0.0.1:8554/a.mp4/stream=0;seq=7;rtptime=270000\r\n",
        "",
    );
    h.input(111, &rtp(0, 7, 276_000, true, b"\x65d"));
    assert_eq!(h.losses_total(), 0);
    // Loss after the seek is loss again.
    h.input(112, &rtp(0, 9, 282_000, true, b"\x65e"));
    assert_eq!(h.losses_total(), 1);
}

#[test]
fn the_backchannel_stops_while_paused_and_goes_on_without_a_burst() {
    use crate::client::BackchannelAudio;
    let audio = BackchannelAudio::new();
    audio.push_pcm(&[0i16; 1600], 8000, 1).unwrap();
    let mut h = Harness::new(
        "rtsp://127.0.0.1:8554/cam",
        ClientOptions::default().with_backchannel(audio.clone()),
    );
    h.connect(1);
    h.reply(2, "200 OK", &format!("Public: {PUBLIC}\r\n"), "");
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
    h.reply(
        5,
        "200 OK",
        "Session: s\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n",
        "",
    );
    h.reply(10, "200 OK", "Session: s\r\n", "");
    let sent = |h: &mut Harness| h.interleaved.drain(..).filter(|(ch, _)| *ch == 2).count();
    h.timeout(10);
    assert_eq!(sent(&mut h), 1);
    h.pause(15);
    h.reply(16, "200 OK", "Session: s\r\n", "");
    assert!(
        h.next_ms() > 1000,
        "no backchannel deadline while paused: {}",
        h.next_ms()
    );
    h.timeout(1000);
    assert_eq!(sent(&mut h), 0, "nothing sent while paused");
    h.play_from(2000, PlayRange::resume(), None);
    h.reply(2001, "200 OK", "Session: s\r\n", "");
    assert!(h.next_ms() <= 2001, "the backchannel is due at once");
    h.timeout(2001);
    assert_eq!(sent(&mut h), 1, "one packet, not the 100 of the pause");
    h.timeout(2021);
    assert_eq!(sent(&mut h), 1);
}
