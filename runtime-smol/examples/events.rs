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
            println!("{event}");
        }
        failed
    });
    std::process::exit(i32::from(failed));
}
