//! Records a client session to a capture file, for `fixtures/captures/`.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-conformance --example record -- URL OUT.rtspcap SECONDS
//! ```
//! Runs the session on the tokio runtime with `ClientOptions::capture` set,
//! stops it (TEARDOWN) after SECONDS, and writes the live events, one
//! summary line each (see `rtsp_toolkit_conformance::events::summary`), to
//! `OUT.rtspcap.events` so that tests can check that a replay gives them back
//! exactly. Never put a password in a URL you record: it is not stored, but
//! the server's answers are.

use std::io::Write;
use std::time::Duration;

use futures_lite::StreamExt;
use rtsp_toolkit_conformance::events::summary;
use rtsp_toolkit_tokio::{ClientOptions, Event, Session};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, out, secs] = args.as_slice() else {
        eprintln!("usage: record URL OUT SECONDS");
        std::process::exit(2);
    };
    let secs: f64 = secs.parse().expect("SECONDS is a number");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let events = runtime.block_on(async {
        let options = ClientOptions::default().with_capture(out);
        let mut session = Session::open(url, options).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2);
        });
        let stop = session.stop_handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.stop();
        });
        let mut events = Vec::new();
        while let Some(e) = session.next().await {
            events.push(e);
        }
        events
    });
    let path = format!("{out}.events");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create the events file"));
    for e in &events {
        writeln!(file, "{}", summary(e)).expect("write the events file");
    }
    file.flush().expect("write the events file");
    let count = |k: fn(&Event) -> bool| events.iter().filter(|e| k(e)).count();
    eprintln!(
        "{} events ({} rtp, {} rtcp) -> {out}, {path}",
        events.len(),
        count(|e| matches!(e, Event::Rtp(_))),
        count(|e| matches!(e, Event::Rtcp(_)))
    );
    if let Some(Event::Closed(c)) = events.last() {
        if let Some(e) = &c.error {
            eprintln!("session error: {e}");
            std::process::exit(1);
        }
    }
}
