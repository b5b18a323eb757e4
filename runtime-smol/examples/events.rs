//! Prints one line per session event, on smol.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-smol --example smol_events -- rtsp://user:pass@127.0.0.1:8554/h264_aac.mp4 [seconds]
//! ```
//! Stops after `seconds` (default 5) with TEARDOWN, or when the server ends the stream.

use std::time::Duration;

use futures_lite::StreamExt;
use rtsp_toolkit_smol::{ClientOptions, Event, Session};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: events RTSP_URL [SECONDS]");
        std::process::exit(2);
    };
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let failed = smol::block_on(async {
        let mut session = match Session::open(&url, ClientOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        // A timer on another thread: a StopSignal works from anywhere.
        let stop = session.stop_handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.stop();
        });
        let mut failed = false;
        while let Some(event) = session.next().await {
            if let Event::Closed(c) = &event {
                failed = c.error.is_some();
            }
            println!("{}", line(&event));
        }
        failed
    });
    std::process::exit(i32::from(failed));
}

fn line(event: &Event) -> String {
    match event {
        Event::Connect(c) => match &c.result {
            Ok((local, peer)) => format!("connect  {local} -> {peer} in {:?}", c.elapsed),
            Err(e) => format!("connect  {} failed in {:?}: {e}", c.target, c.elapsed),
        },
        Event::Method(m) => format!(
            "rtsp     {} {} -> {} {} elapsed={:?} session_elapsed={:?}",
            m.method, m.url, m.status, m.reason, m.elapsed, m.session_elapsed
        ),
        Event::Rtp(r) => format!(
            "rtp      track={} seq={} ts={} marker={} pt={} len={} recv_tick={:?}",
            r.track,
            r.packet.sequence_number,
            r.packet.timestamp,
            r.packet.marker,
            r.packet.payload_type,
            r.packet.payload.len(),
            r.recv_tick
        ),
        Event::Rtcp(r) => format!("rtcp     track={} {:?} recv_tick={:?}", r.track, r.packets, r.recv_tick),
        Event::Video(v) => format!(
            "video    track={} {:?} ts={} key={} len={} recv_tick={:?}",
            v.track,
            v.frame.codec,
            v.frame.timestamp,
            v.frame.keyframe,
            v.frame.data.len(),
            v.recv_tick
        ),
        Event::Audio(a) => format!(
            "audio    track={} {:?} ts={} samples={} len={} recv_tick={:?}",
            a.track,
            a.frame.codec,
            a.frame.timestamp,
            a.frame.sample_count,
            a.frame.data.len(),
            a.recv_tick
        ),
        Event::Loss(l) => format!(
            "loss     track={} lost={} before seq={}",
            l.track, l.lost, l.sequence_number
        ),
        Event::Warning(w) => format!("warning  {w:?}"),
        Event::Closed(c) => match &c.error {
            None => format!("closed   after {:?}", c.session_elapsed),
            Some(e) => format!("closed   after {:?}: {e}", c.session_elapsed),
        },
        other => format!("{other:?}"),
    }
}
