//! The three runtimes give the same events for the same bytes, and a capture
//! replays to exactly the events of the session that recorded it.
//!
//! Each committed capture of `fixtures/captures/` is played by a loopback
//! [`ScriptedServer`]; the same URL is run on tokio, smol and blocking, each
//! recording its own capture. Then:
//! - every runtime's events equal the committed capture's replay, once the
//!   measured durations and the local address are normalized away;
//! - every run's own capture replays to exactly its live events, durations
//!   included;
//! - the replay of each committed capture gives the live events recorded
//!   beside it (`*.rtspcap.events`), durations included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rtsp_toolkit_conformance::captures_dir;
use rtsp_toolkit_conformance::events::{normalize_all, summary};
use rtsp_toolkit_conformance::runtimes::{self, Control, Runtime, StopWhen};
use rtsp_toolkit_conformance::script::{Script, ScriptedServer};
use rtsp_toolkit_core::capture::{replay, Capture};
use rtsp_toolkit_core::client::{ClientOptions, Event};

const CAPTURES: [&str; 3] = ["h264_aac", "h265", "pcm_16k_mono"];
/// Bound on one session in these tests.
const LIMIT: Duration = Duration::from_secs(30);

fn load(name: &str) -> Capture {
    let path = captures_dir().join(format!("{name}.rtspcap"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Capture::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_play(e: &Event) -> bool {
    matches!(e, Event::Method(m) if m.method.as_str() == "PLAY" && m.is_success())
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rtsp-toolkit-parity-{}-{name}.rtspcap", std::process::id()))
}

/// Removes a file when dropped (also when the test fails).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_capture(path: &Path) -> Capture {
    Capture::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn runtimes_agree_on_every_committed_capture() {
    for name in CAPTURES {
        let capture = load(name);
        let script = Script::from_capture(&capture).unwrap();
        assert!(script.frames > 0, "{name}: no media in the capture");
        let expected = normalize_all(replay(&capture, ClientOptions::default(), std::time::Instant::now()).unwrap());
        for runtime in Runtime::ALL {
            let server = ScriptedServer::start(script.clone());
            let own = TempFile(temp_path(&format!("{name}-{runtime:?}")));
            // The recorded URL (so request URIs match), connected to the script.
            let opts = capture
                .header
                .apply(ClientOptions::default())
                .with_forward_address(server.address())
                .with_capture(own.0.clone());
            // Stopped (TEARDOWN) once PLAY succeeded.
            let control = Control::within(LIMIT).stop_when(StopWhen::Event(is_play));
            let live = runtimes::run(runtime, &capture.header.url, opts, control).events;
            let requests = server.finish();
            assert!(
                requests.last().is_some_and(|r| r.starts_with("TEARDOWN ")),
                "{name} on {runtime:?}: requests {requests:?}"
            );
            assert_eq!(
                replay(
                    &read_capture(&own.0),
                    ClientOptions::default(),
                    std::time::Instant::now()
                )
                .unwrap(),
                live,
                "{name} on {runtime:?}: its own capture does not replay to its events"
            );
            let live = normalize_all(live);
            assert_eq!(live.len(), expected.len(), "{name} on {runtime:?}: event count");
            for (i, (a, b)) in live.iter().zip(&expected).enumerate() {
                assert_eq!(a, b, "{name} on {runtime:?}: event {i} differs");
            }
        }
    }
}

#[test]
fn committed_captures_replay_to_the_recorded_live_events() {
    // RTSP_TOOLKIT_BLESS=1 rewrites the `.events` files from the replays, for
    // when the core's events change on purpose; review the diff.
    let bless = std::env::var_os("RTSP_TOOLKIT_BLESS").is_some();
    for name in CAPTURES {
        let capture = load(name);
        let events = replay(&capture, ClientOptions::default(), std::time::Instant::now()).unwrap();
        let lines: Vec<String> = events.iter().map(summary).collect();
        let path = captures_dir().join(format!("{name}.rtspcap.events"));
        if bless {
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            continue;
        }
        let recorded = std::fs::read_to_string(&path).unwrap();
        let recorded: Vec<&str> = recorded.lines().collect();
        assert_eq!(lines.len(), recorded.len(), "{name}: event count");
        for (i, (a, b)) in lines.iter().zip(&recorded).enumerate() {
            assert_eq!(a, b, "{name}: event {i}");
        }
        // A clean session: set up, played, torn down.
        assert!(matches!(events.first(), Some(Event::Connect(c)) if c.result.is_ok()));
        assert!(matches!(events.last(), Some(Event::Closed(c)) if c.error.is_none()));
        assert!(events.iter().any(|e| matches!(e, Event::Rtp(_))));
        assert!(!capture.header.had_credentials);
    }
}

#[test]
fn committed_captures_are_small() {
    for name in CAPTURES {
        let len = std::fs::metadata(captures_dir().join(format!("{name}.rtspcap")))
            .unwrap()
            .len();
        assert!(len < 300 * 1024, "{name}: {len} bytes");
    }
}
