//! `rtsp-toolkit publish FILE URL`: pushes a media file to an RTSP server in real time, as a camera
//! publishing to a recorder would (ANNOUNCE, SETUP with `mode=record`, RECORD, RTP interleaved on the
//! connection, TEARDOWN). The file is read and packetized as `serve` does (docs/CLI.md, "publish").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rtsp_toolkit_tokio::core::server::publish::{PublishEvent, PublishOptions};
use rtsp_toolkit_tokio::core::server::PlayCount;
use rtsp_toolkit_tokio::StopSignal;

use crate::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The media file (.mp4 .mkv .webm .wav .aac), read as `serve` reads it.
    pub file: PathBuf,
    /// rtsp://[user[:password]@]host[:port]/path to publish to.
    pub url: String,
    /// Send the file this many times back to back (0: until Ctrl-C).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u32,
    /// How long each answer may take, and the connection.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
    /// One JSON object per line on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &PublishArgs) -> u8 {
    let file = args.file.clone();
    let source = match tokio::task::spawn_blocking(move || rtsp_toolkit_media::open(&file)).await {
        Ok(Ok(s)) => Arc::new(s),
        Ok(Err(e)) => {
            eprintln!("error: cannot publish {}: {e}", args.file.display());
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    if !args.timeout.is_finite() || args.timeout <= 0.0 {
        eprintln!("error: --timeout must be a positive number of seconds");
        return EXIT_USAGE;
    }
    let options = PublishOptions {
        timeout: Duration::from_secs_f64(args.timeout.min(86_400.0)),
        count: std::num::NonZeroU32::new(args.count).map_or(PlayCount::Forever, PlayCount::Times),
        ..PublishOptions::default()
    };
    let stop = StopSignal::new();
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::serve::wait_for_signal().await;
            stop.stop();
        })
    };
    let json = args.json;
    let url = crate::probe::redact(&args.url);
    let tracks = source.tracks.len();
    let duration = source.duration;
    let mut failed = true;
    let result = rtsp_toolkit_tokio::publish::publish(&args.url, source, options, stop, |e| {
        if let PublishEvent::Finished { error, .. } = &e {
            failed = error.is_some();
        }
        print_event(&e, json);
    })
    .await;
    ctrl_c.abort();
    if let Err(e) = result {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    if !json && !failed {
        println!(
            "published {tracks} tracks ({:.3} s of media a time) to {url}",
            duration.as_secs_f64()
        );
    }
    if failed {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}

fn print_event(e: &PublishEvent, json: bool) {
    if json {
        let v = match e {
            PublishEvent::Response {
                method,
                url,
                status,
                reason,
                elapsed,
            } => serde_json::json!({
                "type": "rtsp", "method": method, "url": crate::probe::redact(url), "status": status,
                "reason": reason, "elapsed_s": elapsed.as_secs_f64(),
            }),
            PublishEvent::Recording { session, tracks } => {
                serde_json::json!({"type": "recording", "session": session, "tracks": tracks})
            }
            PublishEvent::Finished {
                loops,
                packets,
                octets,
                error,
            } => serde_json::json!({
                "type": "finished", "loops": loops, "packets": packets, "octets": octets,
                "error": error.as_ref().map(|e| e.to_string()),
            }),
        };
        println!("{v}");
        return;
    }
    match e {
        PublishEvent::Response {
            method,
            status,
            reason,
            elapsed,
            ..
        } => println!(
            "{method:<9} {status} {reason} in {:.1} ms",
            elapsed.as_secs_f64() * 1000.0
        ),
        PublishEvent::Recording { session, tracks } => {
            println!("recording: session {session}, {tracks} tracks, sending in real time")
        }
        PublishEvent::Finished {
            loops,
            packets,
            octets,
            error,
        } => {
            println!("sent      {packets} RTP packets, {octets} payload bytes, {loops} time(s) through");
            if let Some(e) = error {
                eprintln!("error: {e}");
            }
        }
    }
}
