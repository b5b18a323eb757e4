//! The camera simulator (`serve` with faults and quirks in the URL,
//! docs/SIMULATOR.md) against our own client (`probe --json`, the tokio
//! runtime) and ffprobe: for each fault and quirk, what the client reported
//! (loss, warnings, errors, frames) is compared with the server's fault log
//! (`serve --json`'s `fault` lines).
//!
//! Every process is bounded in time and killed on drop; each test has its own
//! server on a free loopback port.

use std::collections::HashSet;
use std::process::Command;
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::*;

/// `serve --json --seed 5` of the fixtures on a free port, its stdout kept.
struct JsonServe {
    _proc: Proc,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl JsonServe {
    fn start() -> JsonServe {
        JsonServe::start_with(&[])
    }

    /// With more `serve` arguments (`--users FILE`).
    fn start_with(extra: &[&str]) -> JsonServe {
        let dir = media_dir();
        let mut args = vec![
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--port",
            "0",
            "--json",
            "--seed",
            "5",
        ];
        args.extend_from_slice(extra);
        let mut p = spawn(&args);
        let _stderr = drain(p.0.stderr.take().unwrap());
        let lines = lines(p.0.stdout.take().unwrap());
        let first: Value = serde_json::from_str(
            &lines
                .recv_timeout(Duration::from_secs(10))
                .expect("serve prints its address"),
        )
        .unwrap();
        assert_eq!(first["type"], "server");
        let port = first["address"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        JsonServe { _proc: p, lines, port }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path_and_query}", self.port)
    }

    /// The server's event lines so far: read until none came for 300 ms
    /// (at most 5 s).
    fn events(&self) -> Vec<Value> {
        let start = Instant::now();
        let mut out = Vec::new();
        while start.elapsed() < Duration::from_secs(5) {
            match self.lines.recv_timeout(Duration::from_millis(300)) {
                Ok(l) => out.push(serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))),
                Err(_) => break,
            }
        }
        out
    }

    /// The `fault` lines so far.
    fn faults(&self) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["type"] == "fault").collect()
    }
}

fn probe(url: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["probe", url, "--json"];
    args.extend_from_slice(extra);
    let r = run(&args, Duration::from_secs(40));
    r.json()
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn report(events: &[Value]) -> &Value {
    let last = events.last().expect("some output");
    assert_eq!(last["type"], "report", "the report is the last line");
    last
}

/// (video frames, audio frames) of the report.
fn frames(events: &[Value]) -> (u64, u64) {
    let t = &report(events)["tracks"];
    (t[0]["frames"].as_u64().unwrap(), t[1]["frames"].as_u64().unwrap())
}

fn clean_end(events: &[Value]) {
    let r = report(events);
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(of_type(events, "loss").len(), 0);
}

/// The events of a whole clean play of the fixture (the baseline): played
/// once per run of this file, on a server of its own, and shared by the
/// tests (every server here serves the same fixture with the same seed, so
/// the baseline is the same for each; playing it once per test was a third
/// of this file's time).
fn clean_events() -> &'static [Value] {
    static CLEAN: OnceLock<Vec<Value>> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let serve = JsonServe::start();
        let events = probe(&serve.url("h264_aac.mp4"), &[]);
        clean_end(&events);
        events
    })
}

/// (video frames, audio frames) of the baseline.
fn clean() -> (u64, u64) {
    frames(clean_events())
}

/// Runs `f` on every case at once, each on a thread of its own; a case's
/// panic fails the test. Each case starts a server of its own, so that the
/// fault lines it reads are its own.
fn at_once<T: Sync>(cases: &[T], f: impl Fn(&T) + Sync) {
    std::thread::scope(|s| {
        let f = &f;
        let threads: Vec<_> = cases.iter().map(|c| s.spawn(move || f(c))).collect();
        threads.into_iter().for_each(joined);
    });
}

/// A scoped thread's result, its panic re-raised.
fn joined<T>(t: std::thread::ScopedJoinHandle<'_, T>) -> T {
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn quirk_events<'a>(faults: &'a [Value], name: &str) -> Vec<&'a Value> {
    faults
        .iter()
        .filter(|f| f["fault"] == "quirk" && f["quirk"] == name)
        .collect()
}

/// Dropped packets: each destroys the frame of its RTP timestamp (one
/// access unit of H.264, one AAC frame), and the client loses exactly
/// those frames and counts exactly those packets lost.
fn drops_destroy_exactly_their_frames(query: &str, transport: &str) {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(
        &serve.url(&format!("h264_aac.mp4?{query}")),
        &["--transport", transport],
    );
    let faults = serve.faults();
    let drops: Vec<&Value> = faults.iter().filter(|f| f["fault"] == "drop").collect();
    assert!(drops.len() >= 5, "{faults:?}");
    assert_eq!(drops.len(), faults.len(), "only drops: {faults:?}");
    let destroyed = |track: u64| {
        drops
            .iter()
            .filter(|d| d["track"] == track)
            .map(|d| d["rtp_ts"].as_u64().unwrap())
            .collect::<HashSet<u64>>()
            .len() as u64
    };
    let dropped = |track: u64| drops.iter().filter(|d| d["track"] == track).count() as u64;
    assert!(report(&events)["error"].is_null());
    assert_eq!(
        frames(&events),
        (video - destroyed(0), audio - destroyed(1)),
        "frames lost = frames the drops destroyed"
    );
    let tracks = &report(&events)["tracks"];
    for track in [0, 1] {
        assert_eq!(
            tracks[track as usize]["lost"].as_u64().unwrap(),
            dropped(track),
            "track {track}"
        );
        let lost_events: u64 = of_type(&events, "loss")
            .iter()
            .filter(|l| l["track"] == track)
            .map(|l| l["lost"].as_u64().unwrap())
            .sum();
        assert_eq!(lost_events, dropped(track), "track {track}");
    }
}

#[test]
fn drops_over_tcp_destroy_exactly_their_frames() {
    drops_destroy_exactly_their_frames("drop=0.03&seed=11", "tcp");
}

#[test]
fn bursts_of_drops_destroy_exactly_their_frames() {
    drops_destroy_exactly_their_frames("drop=0.02&burst=3&seed=4", "tcp");
}

#[test]
fn drops_over_udp_destroy_exactly_their_frames() {
    drops_destroy_exactly_their_frames("drop=0.03&seed=11", "udp");
}

/// Duplicated packets (`dup=`): over UDP the client's reorder buffer drops
/// the copies, so every frame comes once.
#[test]
fn duplicates_over_udp_are_dropped_by_the_client() {
    duplicates_are_dropped("udp");
}

/// The same over TCP, where no reorder buffer is on: the client drops a copy
/// of the packet before (it used to assemble the frame twice: 133 video
/// frames of 125 with `dup=0.1&seed=4`, and a duplicated FU-A fragment was a
/// depacketize warning; the simulator found it).
#[test]
fn duplicates_over_tcp_are_dropped_by_the_client() {
    duplicates_are_dropped("tcp");
}

fn duplicates_are_dropped(transport: &str) {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?dup=0.1&seed=4"), &["--transport", transport]);
    clean_end(&events);
    let faults = serve.faults();
    assert!(
        faults.iter().filter(|f| f["fault"] == "duplicate").count() >= 10,
        "{faults:?}"
    );
    assert_eq!(of_type(&events, "warning").len(), 0);
    assert_eq!(frames(&events), (video, audio));
}

#[test]
fn ffprobe_sees_the_drops() {
    let serve = JsonServe::start();
    let count = |url: &str| {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-select_streams",
                "v:0",
                "-count_frames",
            ])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url])
            .output()
            .expect("ffprobe (FFmpeg) is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap()
    };
    // The whole stream from another server, beside the damaged one.
    let other = JsonServe::start();
    let whole_url = other.url("h264_aac.mp4");
    let (whole, damaged) = std::thread::scope(|s| {
        let whole = s.spawn(|| count(&whole_url));
        let damaged = count(&serve.url("h264_aac.mp4?drop=0.03&seed=11"));
        (joined(whole), damaged)
    });
    let destroyed = serve
        .faults()
        .iter()
        .filter(|f| f["fault"] == "drop" && f["track"] == 0)
        .map(|f| f["rtp_ts"].as_u64().unwrap())
        .collect::<HashSet<u64>>()
        .len() as u64;
    assert!(destroyed > 0);
    // FFmpeg decodes what is left of a damaged frame, so it may count a few
    // more than ours; never all of them, never fewer than were left whole.
    assert!(
        damaged < whole && damaged >= whole - destroyed,
        "{damaged} of {whole}, {destroyed} destroyed"
    );
}

/// The sizes of the keyframes our client assembled.
fn keyframe_sizes(events: &[Value]) -> Vec<u64> {
    of_type(events, "video")
        .iter()
        .filter(|v| v["keyframe"] == true)
        .map(|v| v["size"].as_u64().unwrap())
        .collect()
}

/// `params=inband`: no parameter sets in the SDP, and in front of every
/// keyframe in the stream. Our client (and ffprobe) play every frame; it
/// takes the sets from the first keyframe, and each later keyframe it hands
/// on is larger by them. `params=sdp`: only in the SDP; the fixtures have
/// none in-band, so the stream is as without it (the core's test has a
/// source with in-band sets taken out).
#[test]
fn params_only_in_band_or_only_in_the_sdp_play_whole() {
    let serve = JsonServe::start();
    let clean_events = clean_events();
    let (video, audio) = frames(clean_events);
    let clean_keys = keyframe_sizes(clean_events);
    assert_eq!(clean_keys.len(), 5);
    let describe = |events: &[Value]| {
        of_type(events, "rtsp")
            .into_iter()
            .find(|r| r["method"] == "DESCRIBE")
            .unwrap()
            .to_string()
    };
    assert!(describe(clean_events).contains("sprop-parameter-sets"));

    // ffprobe with params=inband and our client with params=sdp, each on a
    // server of its own, beside our client with params=inband here.
    let (ffprobe_serve, sdp_serve) = (JsonServe::start(), JsonServe::start());
    let ffprobe_url = ffprobe_serve.url("h264_aac.mp4?params=inband");
    let sdp_url = sdp_serve.url("h264_aac.mp4?params=sdp");
    std::thread::scope(|s| {
        let ffprobe = s.spawn(|| ffprobe_video_frames(&ffprobe_url));
        let sdp = s.spawn(|| probe(&sdp_url, &[]));
        params_inband(&serve, clean_events, &describe);
        assert_eq!(joined(ffprobe), 125);
        let events = joined(sdp);
        clean_end(&events);
        assert_eq!(frames(&events), (video, audio));
        assert!(describe(&events).contains("sprop-parameter-sets"));
        assert_eq!(keyframe_sizes(&events), clean_keys);
    });
}

/// `params=inband` with our client (see `params_only_in_band_or_only_in_the_sdp_play_whole`).
fn params_inband(serve: &JsonServe, clean_events: &[Value], describe: &dyn Fn(&[Value]) -> String) {
    let (video, audio) = frames(clean_events);
    let clean_keys = keyframe_sizes(clean_events);
    let events = probe(&serve.url("h264_aac.mp4?params=inband"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    assert_eq!(of_type(&events, "warning").len(), 0);
    assert!(!describe(&events).contains("sprop"), "{}", describe(&events));
    let keys = keyframe_sizes(&events);
    // The first keyframe carries the sets either way (our client puts the
    // SDP's in front of it); the later ones only with params=inband.
    assert_eq!(keys[0], clean_keys[0]);
    let grown: HashSet<u64> = keys[1..].iter().zip(&clean_keys[1..]).map(|(a, b)| a - b).collect();
    assert_eq!(grown.len(), 1, "{keys:?} {clean_keys:?}");
    assert!(grown.iter().all(|g| (20..100).contains(g)), "{grown:?}");
    let faults = serve.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(
        (&faults[0]["fault"], &faults[0]["params"]),
        (&json!("params"), &json!("inband"))
    );
}

/// `resolution_change=2`: from the fixture's keyframe at 2 s on, its
/// keyframes carry an SPS that crops the 320x240 pictures to 160x120 (the
/// SDP keeps the old size, as a camera's does when its resolution is
/// changed while it streams). Our client plays every frame and warns once
/// (`resolution_change`, both sizes), matching the server's one `fault`
/// line; FFmpeg decodes every frame, at the old size, then the new.
#[test]
fn resolution_change_is_a_warning_and_plays_whole() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let url = serve.url("h264_aac.mp4?resolution_change=2");
    // FFmpeg on a server of its own, beside our client.
    let other = JsonServe::start();
    let ffmpeg_url = other.url("h264_aac.mp4?resolution_change=2");
    let (events, out) = std::thread::scope(|s| {
        let ffmpeg = s.spawn(|| {
            Command::new("ffprobe")
                .args(["-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0"])
                .args(["-show_entries", "frame=width,height", "-of", "csv=p=0", &ffmpeg_url])
                .output()
                .expect("ffprobe (FFmpeg) is installed")
        });
        (probe(&url, &[]), joined(ffmpeg))
    });
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let warnings = of_type(&events, "warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0];
    assert_eq!(
        (&w["kind"], &w["track"], &w["from"], &w["to"]),
        (
            &json!("resolution_change"),
            &json!(0),
            &json!([320, 240]),
            &json!([160, 120])
        )
    );
    // Right before the keyframe 2 s in (the 51st frame), not elsewhere.
    let at = events.iter().position(|e| e["type"] == "warning").unwrap();
    let before = events[..at].iter().filter(|e| e["type"] == "video").count();
    assert_eq!(before, 50);
    assert_eq!(events[at + 1]["type"], "video");
    assert_eq!(events[at + 1]["keyframe"], true);
    let faults = serve.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(
        (&faults[0]["fault"], &faults[0]["from"], &faults[0]["to"]),
        (&json!("resolution_change"), &json!([320, 240]), &json!([160, 120]))
    );
    assert!(faults[0]["since_play_s"].as_f64().unwrap() >= 2.0);
    // FFmpeg decodes every frame, each at the size its SPS gives.
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // One line per frame (the first has side data: a trailing comma and
    // an empty line).
    let sizes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(sizes.len(), 125);
    assert!(sizes[..50].iter().all(|s| s == "320,240"), "{sizes:?}");
    assert!(sizes[50..].iter().all(|s| s == "160,120"), "{sizes:?}");
}

/// Video frames ffprobe decodes from `url` over TCP.
fn ffprobe_video_frames(url: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-count_frames",
        ])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url])
        .output()
        .expect("ffprobe (FFmpeg) is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap()
}

#[test]
fn wrong_cseq_is_a_warning_per_answer_and_the_session_plays() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?quirk=wrong_cseq"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let warnings = of_type(&events, "warning");
    assert!(warnings.iter().all(|w| w["kind"] == "cseq_mismatch"));
    for w in &warnings {
        assert_eq!(w["got"].as_u64().unwrap(), w["expected"].as_u64().unwrap() + 1, "{w}");
    }
    let faults = serve.faults();
    let done = quirk_events(&faults, "wrong_cseq");
    // OPTIONS, DESCRIBE, 2 SETUP, PLAY, TEARDOWN.
    assert_eq!(done.len(), 6, "{faults:?}");
    assert_eq!(warnings.len(), done.len());
}

#[test]
fn no_cseq_is_a_warning_per_answer_and_the_session_plays() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?quirk=no_cseq"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let warnings = of_type(&events, "warning");
    assert!(warnings
        .iter()
        .all(|w| w["kind"] == "cseq_mismatch" && w["got"].is_null()));
    let faults = serve.faults();
    assert_eq!(quirk_events(&faults, "no_cseq").len(), 6, "{faults:?}");
    assert_eq!(warnings.len(), 6);
}

#[test]
fn no_get_parameter_falls_back_to_options_keepalives() {
    let serve = JsonServe::start();
    let events = probe(&serve.url("h264_aac.mp4?quirk=no_get_parameter&session_timeout=2"), &[]);
    clean_end(&events);
    let warnings = of_type(&events, "warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["kind"], "keepalive_failed");
    assert_eq!(warnings[0]["method"], "GET_PARAMETER");
    assert_eq!(warnings[0]["status"], 501);
    assert_eq!(warnings[0]["fallback"], "OPTIONS");
    let rtsp = of_type(&events, "rtsp");
    let play = rtsp.iter().position(|r| r["method"] == "PLAY").unwrap();
    let keepalives: Vec<&str> = rtsp[play + 1..]
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .filter(|m| *m != "TEARDOWN")
        .collect();
    assert!(keepalives.len() >= 3, "{keepalives:?}");
    assert_eq!(keepalives[0], "GET_PARAMETER");
    assert!(keepalives[1..].iter().all(|m| *m == "OPTIONS"), "{keepalives:?}");
    let faults = serve.faults();
    assert_eq!(quirk_events(&faults, "no_get_parameter").len(), 1, "{faults:?}");
}

#[test]
fn no_public_means_options_keepalives_from_the_start() {
    let serve = JsonServe::start();
    let events = probe(&serve.url("h264_aac.mp4?quirk=no_public&session_timeout=2"), &[]);
    clean_end(&events);
    let rtsp = of_type(&events, "rtsp");
    assert!(rtsp[0]["headers"].as_array().unwrap().iter().all(|h| h[0] != "Public"));
    let options = rtsp.iter().filter(|r| r["method"] == "OPTIONS").count();
    assert!(options >= 4, "OPTIONS first and as the keepalive: {options}");
    assert!(rtsp.iter().all(|r| r["method"] != "GET_PARAMETER"));
    assert_eq!(of_type(&events, "warning").len(), 0);
    assert_eq!(quirk_events(&serve.faults(), "no_public").len(), options);
}

#[test]
fn no_session_timeout_and_no_content_base_play_whole() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?quirk=no_session_timeout,no_content_base"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let rtsp = of_type(&events, "rtsp");
    let header = |r: &Value, name: &str| {
        r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_owned())
    };
    let describe = rtsp.iter().find(|r| r["method"] == "DESCRIBE").unwrap();
    assert_eq!(header(describe, "Content-Base"), None);
    let setups: Vec<&&Value> = rtsp.iter().filter(|r| r["method"] == "SETUP").collect();
    assert_eq!(setups.len(), 2);
    for (i, s) in setups.iter().enumerate() {
        assert!(!header(s, "Session").unwrap().contains("timeout"));
        // The relative control against the request URL, as a directory.
        assert_eq!(s["url"], serve.url(&format!("h264_aac.mp4/trackID={i}")));
    }
    let faults = serve.faults();
    assert_eq!(quirk_events(&faults, "no_content_base").len(), 1);
    assert_eq!(quirk_events(&faults, "no_session_timeout").len(), 2);
}

/// `quirk=control_absolute`: the SETUPs and the PLAY go to the absolute
/// control URLs as they are (their `?transportmode=unicast` shows it: no
/// resolution against the Content-Base gives it); `no_session_control`:
/// the PLAY goes to the Content-Base. Both play whole, without a warning.
#[test]
fn control_variants_are_followed_and_play_whole() {
    let (video, audio) = clean();
    let cases = [
        (
            "control_absolute",
            "h264_aac.mp4/trackID={i}?transportmode=unicast",
            "h264_aac.mp4/?transportmode=unicast",
        ),
        ("no_session_control", "h264_aac.mp4/trackID={i}", "h264_aac.mp4/"),
    ];
    at_once(&cases, |&(quirk, setup, play)| {
        let serve = JsonServe::start();
        let events = probe(&serve.url(&format!("h264_aac.mp4?quirk={quirk}")), &[]);
        clean_end(&events);
        assert_eq!(frames(&events), (video, audio), "{quirk}");
        assert_eq!(of_type(&events, "warning").len(), 0, "{quirk}");
        let rtsp = of_type(&events, "rtsp");
        let setups: Vec<&&Value> = rtsp.iter().filter(|r| r["method"] == "SETUP").collect();
        assert_eq!(setups.len(), 2);
        for (i, s) in setups.iter().enumerate() {
            assert_eq!(s["url"], serve.url(&setup.replace("{i}", &i.to_string())), "{quirk}");
        }
        let p = rtsp.iter().find(|r| r["method"] == "PLAY").unwrap();
        assert_eq!(p["url"], serve.url(play), "{quirk}");
        assert_eq!(quirk_events(&serve.faults(), quirk).len(), 1, "{quirk}");
    });
}

/// `quirk=other_channels`: the SETUPs are answered with channels 10-11 and
/// 12-13 (the media goes there); `no_interleaved`: without `interleaved=`
/// (the media on the channels asked for). Our client takes the answered
/// channels, else the ones it asked for: the whole stream, no warning (a
/// wrong choice would be `unknown_channel` warnings and no frames).
#[test]
fn transport_answers_with_other_or_no_channels_play_whole() {
    let (video, audio) = clean();
    let cases = [
        ("other_channels", ["tcp (channels 10-11)", "tcp (channels 12-13)"]),
        ("no_interleaved", ["tcp (channels 0-1)", "tcp (channels 2-3)"]),
    ];
    at_once(&cases, |&(quirk, channels)| {
        let serve = JsonServe::start();
        let events = probe(&serve.url(&format!("h264_aac.mp4?quirk={quirk}")), &[]);
        clean_end(&events);
        assert_eq!(frames(&events), (video, audio), "{quirk}");
        assert_eq!(of_type(&events, "warning").len(), 0, "{quirk}");
        let tracks = &report(&events)["tracks"];
        for (i, want) in channels.iter().enumerate() {
            assert_eq!(tracks[i]["transport"], *want, "{quirk}");
        }
        assert_eq!(quirk_events(&serve.faults(), quirk).len(), 2, "{quirk}");
    });
}

/// `quirk=wrong_content_base`: the Content-Base names another path. Our
/// client follows it (RFC 2326 §C.1.1): the SETUPs, the PLAY and the
/// TEARDOWN go to `/elsewhere/stream0/`, which this camera, ignoring the
/// path after DESCRIBE, takes for the file: the whole stream, no warning.
#[test]
fn a_wrong_content_base_is_followed() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?quirk=wrong_content_base"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    assert_eq!(of_type(&events, "warning").len(), 0);
    let rtsp = of_type(&events, "rtsp");
    let urls: Vec<(&str, &str)> = rtsp
        .iter()
        .map(|r| (r["method"].as_str().unwrap(), r["url"].as_str().unwrap()))
        .collect();
    let wrong = serve.url("elsewhere/stream0/");
    for (method, url) in &urls {
        match *method {
            "SETUP" => assert!(url.starts_with(&format!("{wrong}trackID=")), "{urls:?}"),
            "PLAY" | "TEARDOWN" => assert_eq!(*url, wrong, "{urls:?}"),
            _ => {}
        }
    }
    assert_eq!(quirk_events(&serve.faults(), "wrong_content_base").len(), 1);
}

/// `quirk=unauthorized_after_play`: every request after PLAY is answered
/// 401. Our client fails clearly at its first keepalive (1 s in with
/// `session_timeout=2`): without credentials, an error naming the 401 and
/// that the URL has none; with credentials, after retrying once with them,
/// "credentials rejected". The frames up to then were played.
#[test]
fn unauthorized_after_play_fails_the_session_at_the_first_keepalive() {
    let serve = JsonServe::start();
    for (userinfo, says, refused) in [
        ("", "no credentials in the URL", 1),
        ("u:p@", "credentials rejected", 2),
    ] {
        let url = format!(
            "rtsp://{userinfo}127.0.0.1:{}/h264_aac.mp4?quirk=unauthorized_after_play&session_timeout=2",
            serve.port
        );
        let events = probe(&url, &[]);
        let closed = of_type(&events, "closed");
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0]["error_kind"], "response", "{}", closed[0]);
        let error = closed[0]["error"].as_str().unwrap();
        assert!(
            error.contains("GET_PARAMETER") && error.contains("401") && error.contains(says),
            "{error}"
        );
        let (video, _) = frames(&events);
        assert!((15..=40).contains(&video), "{video} video frames in about a second");
        let rtsp = of_type(&events, "rtsp");
        let statuses: Vec<(&str, u64)> = rtsp
            .iter()
            .map(|r| (r["method"].as_str().unwrap(), r["status"].as_u64().unwrap()))
            .collect();
        let play = statuses.iter().position(|(m, _)| *m == "PLAY").unwrap();
        assert!(statuses[..=play].iter().all(|(_, s)| *s == 200), "{statuses:?}");
        assert!(statuses[play + 1..].iter().all(|(_, s)| *s == 401), "{statuses:?}");
        assert_eq!(statuses.len() - play - 1, refused, "{statuses:?}");
        assert_eq!(
            quirk_events(&serve.faults(), "unauthorized_after_play").len(),
            refused,
            "one 401 per request after PLAY"
        );
    }
}

/// `quirk=content_base_no_scheme`: the Content-Base is
/// `127.0.0.1:PORT/h264_aac.mp4/`, without a scheme, as SV3C cameras answer.
/// Our client ignores it with one `bad_content_base` warning naming it and
/// resolves the controls against the request URL: the SETUPs go to
/// `h264_aac.mp4/trackID=N`, and the whole stream plays.
#[test]
fn a_content_base_without_a_scheme_is_ignored_with_a_warning() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let url = serve.url("h264_aac.mp4?quirk=content_base_no_scheme");
    let events = probe(&url, &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let warnings = of_type(&events, "warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let value = format!("127.0.0.1:{}/h264_aac.mp4/", serve.port);
    assert_eq!(warnings[0]["kind"], "bad_content_base");
    assert_eq!(warnings[0]["header"], "Content-Base");
    assert_eq!(warnings[0]["value"], value.as_str());
    assert_eq!(warnings[0]["used"], url.as_str());
    let rtsp = of_type(&events, "rtsp");
    let describe = rtsp.iter().find(|r| r["method"] == "DESCRIBE").unwrap();
    assert!(describe["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "Content-Base" && h[1] == value.as_str()));
    let setups: Vec<&&Value> = rtsp.iter().filter(|r| r["method"] == "SETUP").collect();
    assert_eq!(setups.len(), 2);
    for (i, s) in setups.iter().enumerate() {
        assert_eq!(s["url"], serve.url(&format!("h264_aac.mp4/trackID={i}")));
    }
    assert_eq!(quirk_events(&serve.faults(), "content_base_no_scheme").len(), 1);
}

/// `quirk=reauth_after_play`: after PLAY the camera's Digest nonce changes.
/// With `serve --users`, the first keepalive (1 s in with
/// `session_timeout=2`) answers the nonce from before PLAY and gets 401 with
/// a new one; without users, it has no credentials yet and gets the
/// simulator's challenge. Either way our client sends the keepalive again
/// with the URL's credentials for the new nonce, every later keepalive and
/// the TEARDOWN pass, and the whole stream plays without a warning: one 401
/// and one quirk event after PLAY. Without credentials in the URL, the
/// session ends at that 401 naming it.
#[test]
fn reauth_after_play_is_answered_and_the_whole_stream_plays() {
    let dir = temp_dir("reauth-after-play");
    let users = dir.join("users");
    std::fs::write(&users, "u:p\n").unwrap();
    let (video, audio) = clean();
    // With users and without, each on its server, at once.
    at_once(&[true, false], |&describe_401| {
        let serve = if describe_401 {
            JsonServe::start_with(&["--users", users.to_str().unwrap()])
        } else {
            JsonServe::start()
        };
        let url = format!(
            "rtsp://u:p@127.0.0.1:{}/h264_aac.mp4?quirk=reauth_after_play&session_timeout=2",
            serve.port
        );
        let events = probe(&url, &[]);
        clean_end(&events);
        assert_eq!(frames(&events), (video, audio), "users: {describe_401}");
        assert_eq!(of_type(&events, "warning").len(), 0, "users: {describe_401}");
        let rtsp = of_type(&events, "rtsp");
        let statuses: Vec<(&str, u64)> = rtsp
            .iter()
            .map(|r| (r["method"].as_str().unwrap(), r["status"].as_u64().unwrap()))
            .collect();
        let play = statuses.iter().position(|(m, _)| *m == "PLAY").unwrap();
        let refused_before = statuses[..play].iter().filter(|(_, s)| *s == 401).count();
        assert_eq!(refused_before, usize::from(describe_401), "{statuses:?}");
        assert_eq!(statuses[play].1, 200);
        let after = &statuses[play + 1..];
        assert_eq!(after[0], ("GET_PARAMETER", 401), "{statuses:?}");
        assert_eq!(after[1], ("GET_PARAMETER", 200), "{statuses:?}");
        assert!(after[2..].iter().all(|(_, s)| *s == 200), "{statuses:?}");
        assert_eq!(after.last().unwrap().0, "TEARDOWN", "{statuses:?}");
        let keepalives = after.iter().filter(|(m, _)| *m == "GET_PARAMETER").count();
        assert!(keepalives >= 4, "keepalives go on after the new nonce: {statuses:?}");
        let nonce = |r: &Value| {
            let h = r["headers"].as_array().unwrap();
            let v = h.iter().find(|h| h[0] == "WWW-Authenticate").unwrap()[1]
                .as_str()
                .unwrap();
            v.split("nonce=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        };
        let refusal = rtsp[play + 1];
        assert!(!refusal["headers"].to_string().contains("stale"), "{refusal}");
        if describe_401 {
            let first = rtsp.iter().find(|r| r["status"] == 401).unwrap();
            assert_ne!(nonce(first), nonce(refusal), "a new nonce after PLAY");
        }
        let faults = serve.faults();
        assert_eq!(quirk_events(&faults, "reauth_after_play").len(), 1, "{faults:?}");
        assert_eq!(faults.len(), 1, "{faults:?}");
    });
    // Without credentials: the first keepalive's 401 ends the session.
    let plain = JsonServe::start();
    let url = format!(
        "rtsp://127.0.0.1:{}/h264_aac.mp4?quirk=reauth_after_play&session_timeout=2",
        plain.port
    );
    let events = probe(&url, &[]);
    let closed = of_type(&events, "closed");
    assert_eq!(closed[0]["error_kind"], "response", "{}", closed[0]);
    let error = closed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("GET_PARAMETER") && error.contains("401") && error.contains("no credentials in the URL"),
        "{error}"
    );
    assert_eq!(quirk_events(&plain.faults(), "reauth_after_play").len(), 1);
}

/// `slow=MS`: every answer comes MS late. Within the client's response
/// timeout the session plays whole and every method's round trip is at
/// least MS (one `slow` event per request); beyond it, the client gives up
/// with a timeout error naming the request.
#[test]
fn slow_answers_are_waited_for_up_to_the_response_timeout() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?slow=300"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let methods = report(&events)["methods"].as_array().unwrap().clone();
    assert_eq!(methods.len(), 5, "{methods:?}");
    for m in &methods {
        let (min, max) = (m["min_s"].as_f64().unwrap(), m["max_s"].as_f64().unwrap());
        assert!(min >= 0.3 && max < 1.5, "{m}");
    }
    let faults = serve.faults();
    // OPTIONS, DESCRIBE, 2 SETUP, PLAY, TEARDOWN.
    assert_eq!(faults.len(), 6, "{faults:?}");
    assert!(faults.iter().all(|f| f["fault"] == "slow" && f["delay_ms"] == 300));

    let events = probe(&serve.url("h264_aac.mp4?slow=2000"), &["--timeout", "1"]);
    let closed = of_type(&events, "closed");
    assert_eq!(closed[0]["error_kind"], "timeout", "{}", closed[0]);
    assert_eq!(closed[0]["error"], "timeout: no response to OPTIONS within 1s");
    let faults = serve.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(
        (&faults[0]["fault"], &faults[0]["method"]),
        (&json!("slow"), &json!("OPTIONS"))
    );
}

#[test]
fn no_marker_loses_no_frame() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?quirk=no_marker"), &[]);
    clean_end(&events);
    // Frames end when the timestamp changes; the last one at the server's BYE.
    assert_eq!(frames(&events), (video, audio));
    assert!(of_type(&events, "rtp").iter().all(|p| p["marker"] == false));
}

/// `quirk=no_sr`: the client plays every frame and ends at the BYE without
/// ever seeing a sender report (so a recording cannot be aligned by them).
#[test]
fn no_sr_plays_every_frame_and_ends_at_the_bye() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?quirk=no_sr"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let kinds: Vec<&str> = of_type(&events, "rtcp")
        .iter()
        .flat_map(|e| e["packets"].as_array().unwrap())
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"sr"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "bye").count(), 2, "{kinds:?}");
}

/// `keyframe_gap=1:2`: the fixture's keyframes at 1 s and 2 s (one a
/// second) are not sent, every packet of them a `drop` event. Our client
/// loses exactly those two frames and reports the loss (`loss` events, the
/// next frame's `loss`), hands on the frames between them (which a decoder
/// cannot decode without their keyframe), and the next keyframe, at 3 s, is
/// the first whole picture again: the report counts 2 keyframes fewer and a
/// keyframe interval of 3 s less the 2 frames lost.
#[test]
fn keyframe_gap_loses_the_keyframes_and_recovers_at_the_next() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?keyframe_gap=1:2"), &[]);
    let faults = serve.faults();
    assert!(
        faults.iter().all(|f| f["fault"] == "drop" && f["track"] == 0),
        "{faults:?}"
    );
    let stamps: HashSet<u64> = faults.iter().map(|f| f["rtp_ts"].as_u64().unwrap()).collect();
    assert_eq!(stamps.len(), 2, "{faults:?}");
    let r = report(&events);
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(frames(&events), (video - 2, audio));
    let t = &r["tracks"][0];
    assert_eq!(t["lost"].as_u64().unwrap(), faults.len() as u64);
    let lost: u64 = of_type(&events, "loss")
        .iter()
        .map(|l| l["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, faults.len() as u64);
    assert_eq!(t["keyframes"], 3, "5 keyframes less the 2 not sent");
    assert_eq!(
        t["keyframe_interval_frames_max"], 73,
        "3 s of 25 frames less the 2 lost"
    );
    // The first keyframe after the losses is the one at 3 s: 90000 ticks
    // after the last one lost.
    let (a, b) = {
        let mut v: Vec<u64> = stamps.into_iter().collect();
        v.sort_unstable();
        (v[0], v[1])
    };
    // The later of the two, on the 32-bit clock (which may wrap between).
    let last_lost = if (b - a) < 1 << 31 { b } else { a };
    let after = |ts: u64| ((1u64 << 32) + ts - last_lost) % (1 << 32);
    let recovered = of_type(&events, "video")
        .into_iter()
        .find(|v| v["keyframe"] == true && (1..1 << 31).contains(&after(v["timestamp"].as_u64().unwrap())))
        .unwrap();
    assert_eq!(after(recovered["timestamp"].as_u64().unwrap()), 90_000);
}

#[test]
fn a_stall_is_a_gap_then_a_burst_and_loses_nothing() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?stall=1:2"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let gap = report(&events)["tracks"][0]["max_frame_gap_s"].as_f64().unwrap();
    assert!((1.9..3.0).contains(&gap), "{gap}");
    let faults = serve.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["fault"], "stall");
    assert_eq!(faults[0]["for_s"], 2.0);
}

#[test]
fn close_after_is_a_connection_error_after_exactly_the_packets_sent() {
    let serve = JsonServe::start();
    let events = probe(&serve.url("h264_aac.mp4?close_after=1.5"), &[]);
    let r = report(&events);
    assert_eq!(of_type(&events, "closed")[0]["error_kind"], "connection", "{r}");
    let faults = serve.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["fault"], "close");
    let since = faults[0]["since_play_s"].as_f64().unwrap();
    assert!((1.5..2.0).contains(&since), "{since}");
    assert_eq!(
        of_type(&events, "rtp").len() as u64,
        faults[0]["packets"].as_u64().unwrap()
    );
}

/// `bye_at=1`: the server says BYE on every track after a second and goes
/// on sending; the client takes the BYE for the end (RFC 3550 §6.6: the
/// source left) and tears down, without an error, with the first second of
/// frames.
#[test]
fn bye_at_ends_the_session_cleanly_at_the_bye() {
    let serve = JsonServe::start();
    let events = probe(&serve.url("h264_aac.mp4?bye_at=1"), &[]);
    clean_end(&events);
    let faults = serve.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!((&faults[0]["fault"], &faults[0]["tracks"]), (&json!("bye"), &json!(2)));
    let (video, _) = frames(&events);
    // 25 frames a second; the BYE comes at 1 s, the TEARDOWN's answer a moment later.
    assert!((20..=35).contains(&video), "{video} video frames");
    let methods: Vec<&str> = of_type(&events, "rtsp")
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods.last(), Some(&"TEARDOWN"), "{methods:?}");
}

#[test]
fn ssrc_change_and_seq_jump_are_taken_without_loss() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    let events = probe(&serve.url("h264_aac.mp4?ssrc_change=2&seq_jump=3"), &[]);
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let faults = serve.faults();
    for (kind, n) in [("ssrc_change", 2), ("seq_jump", 2)] {
        assert_eq!(faults.iter().filter(|f| f["fault"] == kind).count(), n, "{faults:?}");
    }
    let change = faults
        .iter()
        .find(|f| f["fault"] == "ssrc_change" && f["track"] == 0)
        .unwrap();
    let ssrcs: HashSet<u64> = of_type(&events, "rtp")
        .iter()
        .filter(|p| p["track"] == 0)
        .map(|p| p["ssrc"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ssrcs,
        HashSet::from([change["from"].as_u64().unwrap(), change["to"].as_u64().unwrap()])
    );
}

/// `ts_jump=2`: every track's timestamps jump 10 s ahead two seconds in,
/// without a sequence gap. Our client plays on: every frame, no loss, one
/// `timestamp_jump` warning per track at the packet that carries the jump
/// (by the jump and one frame's interval); the report shows 10 s more of media
/// (`media_duration_s` about 15 s for the fixture's 5 s) and as the largest
/// jitter (RFC 3550's estimator takes 1/16 of the 10 s: about 0.625 s).
#[test]
fn ts_jump_plays_on_and_shows_in_the_media_duration() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    // Forward 10 s: the span of the timestamps 10 s longer; back 3 s at 2 s:
    // the last 3 s repeat the timeline from -1 s, a span of 3 s. RFC 3550's
    // jitter estimator takes 1/16 of the jump.
    for (query, jump_s, span, jitter) in [
        ("ts_jump=2", 10i64, 14.9..15.3, 0.6..0.7),
        ("ts_jump=2:-3000", -3, 2.9..3.1, 0.17..0.21),
    ] {
        let _ = serve.events();
        let events = probe(&serve.url(&format!("h264_aac.mp4?{query}")), &[]);
        clean_end(&events);
        assert_eq!(frames(&events), (video, audio), "{query}");
        let warnings = of_type(&events, "warning");
        assert_eq!(warnings.len(), 2, "{query}: {warnings:?}");
        let faults = serve.faults();
        assert_eq!(faults.len(), 2, "{faults:?}");
        let tracks = &report(&events)["tracks"];
        for (track, rate) in [(0u64, 90_000i64), (1, 44_100)] {
            let jump = faults.iter().find(|f| f["track"] == track).unwrap();
            assert_eq!(jump["fault"], "ts_jump");
            let (from, to) = (jump["from"].as_u64().unwrap(), jump["to"].as_u64().unwrap());
            assert_eq!(
                to.wrapping_sub(from) % (1 << 32),
                (jump_s * rate).rem_euclid(1 << 32) as u64,
                "{query}: {jump}"
            );
            let w = warnings.iter().find(|w| w["track"] == track).unwrap();
            assert_eq!((&w["kind"], &w["to"]), (&json!("timestamp_jump"), &json!(to)), "{w}");
            let ms = w["jump_ms"].as_i64().unwrap() - jump_s * 1000;
            assert!((0..=50).contains(&ms), "{query}: {w}");
            // The packets carry the new timeline from the jump on.
            assert!(of_type(&events, "rtp")
                .iter()
                .any(|p| p["track"] == track && p["timestamp"] == to));
            let t = &tracks[track as usize];
            let duration = t["media_duration_s"].as_f64().unwrap();
            assert!(span.contains(&duration), "{query} track {track}: {duration}");
            let j = t["max_jitter_s"].as_f64().unwrap();
            assert!(jitter.contains(&j), "{query} track {track}: {j}");
            assert_eq!(t["lost"], 0);
        }
    }
}

/// The start time of each stream of a recording, by ffprobe.
fn start_times(path: &std::path::Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (FFmpeg) is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// `sr_offset=MS`: the audio's sender reports say an NTP time MS off. A
/// recording aligns the tracks by the sender reports, so the audio starts
/// MS later than the video in the file (the video MS later when MS is
/// negative); one `sr_offset` event per shifted report, as many as the
/// client counted on the audio track.
#[test]
fn sr_offset_moves_the_audio_of_a_recording_by_the_offset() {
    let dir = temp_dir("sim-sr-offset");
    at_once(
        &[(0, 0.0, 0.0), (500, 0.0, 0.5), (-500, 0.5, 0.0)],
        |&(ms, video_start, audio_start)| {
            let serve = JsonServe::start();
            let path = dir.join(format!("sr_offset_{ms}.mp4"));
            let query = if ms == 0 {
                String::new()
            } else {
                format!("?sr_offset={ms}")
            };
            let r = run(
                &[
                    "probe",
                    &serve.url(&format!("h264_aac.mp4{query}")),
                    "--json",
                    "--record",
                    path.to_str().unwrap(),
                ],
                Duration::from_secs(40),
            );
            assert_eq!(r.code(), 0, "{}", r.stderr);
            let events = r.json();
            clean_end(&events);
            let starts = start_times(&path);
            assert_eq!(starts.len(), 2, "{starts:?}");
            assert!(
                (starts[0] - video_start).abs() < 0.03 && (starts[1] - audio_start).abs() < 0.03,
                "sr_offset={ms}: video starts at {}, audio at {}",
                starts[0],
                starts[1]
            );
            let faults = serve.faults();
            let reports = report(&events)["tracks"][1]["sender_reports"].as_u64().unwrap();
            if ms == 0 {
                assert!(faults.is_empty(), "{faults:?}");
            } else {
                assert!(reports >= 2);
                assert_eq!(faults.len() as u64, reports, "{faults:?}");
                assert!(faults
                    .iter()
                    .all(|f| f["fault"] == "sr_offset" && f["track"] == 1 && f["offset_ms"] == ms));
            }
        },
    );
}

#[test]
fn jitter_and_reorder_over_udp_within_the_reorder_window_lose_nothing() {
    let serve = JsonServe::start();
    let (video, audio) = clean();
    // Held for one packet (40 ms of video at most) plus up to 30 ms: within
    // the client's 100 ms reorder window.
    let events = probe(
        &serve.url("h264_aac.mp4?reorder=1&jitter_ms=30&seed=2"),
        &["--transport", "udp"],
    );
    clean_end(&events);
    assert_eq!(frames(&events), (video, audio));
    let faults = serve.faults();
    assert!(
        faults.iter().filter(|f| f["fault"] == "reorder").count() >= 5,
        "{faults:?}"
    );
    assert!(faults.iter().filter(|f| f["fault"] == "delay").count() >= 50);
    assert!(faults
        .iter()
        .all(|f| f["fault"] != "delay" || f["delay_ms"].as_u64().unwrap() <= 30));
}

#[test]
fn a_bad_fault_is_a_400_with_the_reason() {
    let serve = JsonServe::start();
    let events = probe(&serve.url("h264_aac.mp4?drop=2"), &[]);
    let describe = of_type(&events, "rtsp")
        .into_iter()
        .find(|r| r["method"] == "DESCRIBE")
        .unwrap();
    assert_eq!(describe["status"], 400);
    let body = describe["body"].as_str().unwrap();
    assert!(body.contains("drop=2") && body.contains("0 to 1"), "{body}");
    assert!(!report(&events)["error"].is_null());
}

#[test]
fn list_profiles_names_every_fault_and_quirk() {
    let r = run(&["serve", "--list-profiles"], Duration::from_secs(10));
    assert_eq!(r.code(), 0);
    for name in [
        "seed=",
        "drop=",
        "drop_packets=",
        "burst=",
        "dup=",
        "reorder=",
        "jitter_ms=",
        "stall=",
        "freeze=",
        "keyframe_gap=",
        "close_after=",
        "ssrc_change=",
        "seq_jump=",
        "ts_jump=",
        "sr_offset=",
        "slow=",
        "params=",
        "session_timeout=",
        "quirk=",
        "wrong_cseq",
        "no_cseq",
        "no_get_parameter",
        "no_session_timeout",
        "no_content_base",
        "no_public",
        "no_marker",
        "no_sr",
        "control_absolute",
        "no_session_control",
        "other_channels",
        "no_interleaved",
        "wrong_content_base",
        "unauthorized_after_play",
        "content_base_no_scheme",
        "reauth_after_play",
    ] {
        assert!(r.stdout.contains(name), "{name} missing:\n{}", r.stdout);
    }
    // Without --list-profiles, --dir is still required.
    assert_eq!(run(&["serve"], Duration::from_secs(10)).code(), 2);
}

/// B-frames with decreasing timestamps need no fault: our server sends a
/// file's samples in decode order, each with its presentation time, as a
/// camera with B-frames does, so `h264_bframes.mp4`'s timestamps go back at
/// every B-frame. Our client hands on every frame in that order, without a
/// warning; sorted, the timestamps are every frame interval once.
#[test]
fn b_frames_come_with_decreasing_timestamps_and_play_whole() {
    let serve = JsonServe::start();
    let events = probe(&serve.url("h264_bframes.mp4"), &[]);
    clean_end(&events);
    assert_eq!(of_type(&events, "warning").len(), 0);
    let ts: Vec<u64> = of_type(&events, "video")
        .iter()
        .map(|v| v["extended_timestamp"].as_u64().unwrap())
        .collect();
    // The fixture's 125 frames at 25 fps: 3600 ticks apart.
    assert_eq!(ts.len(), 125);
    let back = ts.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(back >= 30, "{back} steps back");
    let mut sorted = ts.clone();
    sorted.sort_unstable();
    assert!(sorted.windows(2).all(|w| w[1] - w[0] == 3600), "{sorted:?}");
    assert!(serve.faults().is_empty());
}
