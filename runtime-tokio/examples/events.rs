//! Prints one line per session event.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-tokio --example events -- rtsp://user:pass@127.0.0.1:8554/h264_aac.mp4 [seconds]
//! ```
//! Stops after `seconds` (default 5) with TEARDOWN, or when the server ends the stream.

use std::time::Duration;

use futures_util::StreamExt;
use rtsp_toolkit_tokio::{ClientOptions, Event, Session};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: events RTSP_URL [SECONDS]");
        std::process::exit(2);
    };
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let mut session = match Session::open(&url, ClientOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let stop = session.stop_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.stop();
    });
    let mut failed = false;
    while let Some(event) = session.next().await {
        if let Event::Closed(c) = &event {
            failed = c.error.is_some();
        }
        println!("{event}");
    }
    std::process::exit(i32::from(failed));
}
