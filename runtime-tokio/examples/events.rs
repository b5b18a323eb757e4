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
        match event {
            Event::Connect(c) => match c.result {
                Ok((local, peer)) => println!("connect  {local} -> {peer} in {:?}", c.elapsed),
                Err(e) => println!("connect  {} failed in {:?}: {e}", c.target, c.elapsed),
            },
            Event::Method(m) => println!(
                "rtsp     {} {} -> {} {} elapsed={:?} session_elapsed={:?}",
                m.method, m.url, m.status, m.reason, m.elapsed, m.session_elapsed
            ),
            Event::Rtp(r) => println!(
                "rtp      track={} seq={} ts={} marker={} pt={} len={} recv_tick={:?}",
                r.track,
                r.packet.sequence_number,
                r.packet.timestamp,
                r.packet.marker,
                r.packet.payload_type,
                r.packet.payload.len(),
                r.recv_tick
            ),
            Event::Rtcp(r) => println!("rtcp     track={} {:?} recv_tick={:?}", r.track, r.packets, r.recv_tick),
            Event::Video(v) => println!(
                "video    track={} {:?} ts={} size={} keyframe={} new_parameters={} loss={} recv_tick={:?}",
                v.track,
                v.frame.codec,
                v.frame.timestamp,
                v.frame.data.len(),
                v.frame.keyframe,
                v.frame.new_parameters,
                v.frame.loss,
                v.recv_tick
            ),
            Event::Audio(a) => println!(
                "audio    track={} {:?} ts={} size={} samples={} rate={} channels={} recv_tick={:?}",
                a.track,
                a.frame.codec,
                a.frame.timestamp,
                a.frame.data.len(),
                a.frame.sample_count,
                a.frame.sample_rate,
                a.frame.channels,
                a.recv_tick
            ),
            Event::Loss(l) => println!(
                "loss     track={} lost={} before seq={}",
                l.track, l.lost, l.sequence_number
            ),
            Event::Warning(w) => println!("warning  {w:?}"),
            Event::Closed(c) => {
                failed = c.error.is_some();
                match c.error {
                    None => println!("closed   after {:?}", c.session_elapsed),
                    Some(e) => println!("closed   after {:?}: {e}", c.session_elapsed),
                }
            }
            other => println!("other    {other:?}"),
        }
    }
    std::process::exit(i32::from(failed));
}
