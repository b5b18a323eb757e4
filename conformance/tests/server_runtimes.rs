//! Our server played to our own client on every runtime: the same frames on
//! tokio, smol and blocking, the whole file, ending cleanly on the server's
//! BYE; against the tokio server and the smol server alike.

use std::time::Duration;

use rtsp_toolkit_conformance::runtimes::{self, Control};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event};

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

fn every_runtime_gets_every_frame(server: ServerRuntime) {
    let server = TestServer::start(server, rtsp_toolkit_conformance::media_dir());
    let url = server.url("h264_aac.mp4");
    let runs = runtimes::at_once(|runtime| {
        runtimes::run(
            runtime,
            &url,
            ClientOptions::default(),
            Control::within(Duration::from_secs(40)),
        )
    });
    for run in runs {
        assert_eq!(
            tally(&run.events),
            ([125, 216], true),
            "{} client, {} server",
            run.runtime.name(),
            server.runtime().name()
        );
    }
    server.shutdown();
}

#[test]
fn every_runtime_gets_every_frame_from_our_tokio_server() {
    every_runtime_gets_every_frame(ServerRuntime::Tokio);
}

#[test]
fn every_runtime_gets_every_frame_from_our_smol_server() {
    every_runtime_gets_every_frame(ServerRuntime::Smol);
}
