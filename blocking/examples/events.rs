//! Prints one line per session event, with the blocking runtime.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-blocking --example blocking_events -- rtsp://user:pass@127.0.0.1:8554/h264_aac.mp4 [seconds]
//! ```
//! Stops after `seconds` (default 5) with TEARDOWN, or when the server ends the stream.

use std::time::Duration;

use rtsp_toolkit_blocking::{ClientOptions, Event, Session};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: events RTSP_URL [SECONDS]");
        std::process::exit(2);
    };
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let session = match Session::open(&url, ClientOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    // Stopped from another thread; the session notices within 50 ms.
    let stop = session.stop_handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.stop();
    });
    let mut failed = false;
    for event in session {
        if let Event::Closed(c) = &event {
            failed = c.error.is_some();
        }
        println!("{event}");
    }
    std::process::exit(i32::from(failed));
}
