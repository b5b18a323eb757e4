//! Our server played to our own client on every runtime: the same frames on
//! tokio, smol and blocking, the whole file, ending cleanly on the server's BYE.

use std::time::Duration;

use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_tokio::ServerBuilder;

/// Frames per track, and whether the session closed without error.
fn tally(events: &[Event]) -> ([usize; 2], bool) {
    let mut frames = [0; 2];
    for e in events {
        match e {
            Event::Video(v) => frames[v.track] += 1,
            Event::Audio(a) => frames[a.track] += 1,
            _ => {}
        }
    }
    let clean = matches!(events.last(), Some(Event::Closed(c)) if c.error.is_none());
    (frames, clean)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runtime_gets_every_frame_from_our_server() {
    let server = ServerBuilder::new(rtsp_toolkit_conformance::media_dir())
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("rtsp://{}/h264_aac.mp4", server.local_addr());

    let blocking_url = url.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let session = rtsp_toolkit_blocking::Session::open(&blocking_url, ClientOptions::default()).unwrap();
        session.take(100_000).collect::<Vec<_>>()
    });
    let smol_url = url.clone();
    let smol = tokio::task::spawn_blocking(move || {
        smol::block_on(async {
            let mut session = rtsp_toolkit_smol::Session::open(&smol_url, ClientOptions::default()).unwrap();
            let mut events = Vec::new();
            while let Some(e) = session.next_event().await {
                events.push(e);
            }
            events
        })
    });
    let tokio_events = async {
        let mut session = rtsp_toolkit_tokio::Session::open(&url, ClientOptions::default()).unwrap();
        let mut events = Vec::new();
        while let Some(e) = session.next_event().await {
            events.push(e);
        }
        events
    };
    let (b, s, t) = tokio::time::timeout(Duration::from_secs(40), async {
        tokio::join!(blocking, smol, tokio_events)
    })
    .await
    .expect("all three sessions ended");
    for (name, events) in [("blocking", b.unwrap()), ("smol", s.unwrap()), ("tokio", t)] {
        assert_eq!(tally(&events), ([125, 216], true), "{name}");
    }
    server.shutdown();
}
