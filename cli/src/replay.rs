//! `rtsp-toolkit capture URL FILE` and `rtsp-toolkit replay FILE`: record a
//! client session to a file, and replay it offline through the probe's own
//! event handling and report, so that a problem seen in the field can be
//! sent and looked at elsewhere.
//!
//! `capture` is `probe URL --capture FILE`: the library's session capture
//! ([`ClientOptions::capture`]; the format is `rtsp_toolkit_core::capture`'s)
//! records every input of the client (connection result, bytes and
//! datagrams received, timeouts, the stop request) with its instant, and the
//! runtime writes them to FILE as the session runs, so a killed recording
//! keeps what was written.
//!
//! `replay` runs a fresh core `Client` through those inputs at their
//! recorded instants (as `capture::replay` does) and hands every event to
//! the probe (`probe.rs`) as the live session would. The client reads no
//! clock, so the events are the live ones, durations and receive ticks
//! included, and so is the report. Two things a capture does not hold:
//! - why the live probe stopped (`--frames`, `--duration`, Ctrl-C): a replay
//!   stops counting at the recorded stop request and says `stopped_by:
//!   "recorded"`; `replay --frames N` stops at the same frame as `--frames N`
//!   did live;
//! - which events the live probe had read when it stopped: media already
//!   received but not yet read then was not counted live, and is counted by
//!   the replay (up to the stop request). A session that ended by itself
//!   (the stream ended, an error) or by `--frames` replays to the same report.

use std::path::PathBuf;

use clap::{Args, Parser};
use rtsp_toolkit_tokio::core::capture::{Capture, CaptureError, MAGIC};

use crate::probe::{self, ProbeOptions};
use crate::EXIT_USAGE;

/// `capture URL FILE [probe options]`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// rtsp://[user[:password]@]host[:port]/path
    pub url: String,
    /// The capture file to write (replaced if it exists).
    pub file: PathBuf,
    #[command(flatten)]
    pub probe: ProbeOptions,
}

/// `replay FILE [options]`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A capture file, from `capture`, `probe --capture` or the library's `ClientOptions::capture`.
    pub file: PathBuf,
    /// Stop counting after N video frames (audio frames when there is no video), as
    /// `--frames N` did when the capture was made.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub frames: Option<u64>,
    /// One JSON object per line per event, then a report object (the schema of `probe --json`).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Text: only the report and errors, no event lines.
    #[arg(short, long, help_heading = "Output", conflicts_with = "json")]
    pub quiet: bool,
    /// Text: also print a line per RTP and RTCP packet.
    #[arg(long, help_heading = "Output")]
    pub rtp: bool,
    /// Text: print the first N frames of each track.
    #[arg(long, value_name = "N", default_value_t = 5, help_heading = "Output")]
    pub frame_lines: u64,
    /// Write the video as a raw Annex B stream, from the first keyframe (as `probe --save-video`).
    #[arg(long, value_name = "FILE", help_heading = "Save")]
    pub save_video: Option<PathBuf>,
    /// Write the audio decoded to PCM s16le as a WAV file (as `probe --save-audio`).
    #[arg(long, value_name = "FILE.wav", help_heading = "Save")]
    pub save_audio: Option<PathBuf>,
    /// Decode every video frame (needs a build with `--features decode`; as `probe --decode`).
    #[arg(long, help_heading = "Save")]
    pub decode: bool,
}

/// Runs `capture`: a probe that records its session to FILE.
pub async fn run_capture(args: &CaptureArgs) -> u8 {
    if args.probe.capture.is_some() {
        eprintln!("error: capture: give the capture file once (FILE, not --capture)");
        return EXIT_USAGE;
    }
    let mut opts = args.probe.clone();
    opts.capture = Some(args.file.clone());
    probe::run(&args.url, &opts).await
}

/// Runs `replay`: the recorded session through the probe; the probe's exit
/// code, or 2 when FILE cannot be read or is not a capture.
pub async fn run_replay(args: &ReplayArgs) -> u8 {
    let path = args.file.display();
    let data = match std::fs::read(&args.file) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {path}: {e}");
            return EXIT_USAGE;
        }
    };
    let capture = match Capture::parse(&data) {
        Ok(c) => c,
        Err(e @ CaptureError::Truncated { .. }) => {
            // A recorder killed in the middle of a write: the whole records before it still replay.
            match whole_records_len(&data).map(|n| Capture::parse(&data[..n])) {
                Some(Ok(c)) => {
                    if !args.json {
                        eprintln!(
                            "note: {path}: {e}; replaying the {} whole records before it",
                            c.records.len()
                        );
                    }
                    c
                }
                _ => {
                    eprintln!("error: {path}: {e}");
                    return EXIT_USAGE;
                }
            }
        }
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return EXIT_USAGE;
        }
    };
    let opts = match probe_options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    probe::drive(&capture.header.url, &opts, Some(&capture)).await
}

/// The probe options of a replay: the defaults of `probe`, with the replay's
/// output and save options. (Parsed from no arguments, so that every probe
/// option has its documented default.)
fn probe_options(args: &ReplayArgs) -> Result<ProbeOptions, clap::Error> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Defaults {
        #[command(flatten)]
        probe: ProbeOptions,
    }
    let mut o = Defaults::try_parse_from(std::iter::empty::<&str>())?.probe;
    o.frames = args.frames;
    o.json = args.json;
    o.quiet = args.quiet;
    o.rtp = args.rtp;
    o.frame_lines = args.frame_lines;
    o.save_video = args.save_video.clone();
    o.save_audio = args.save_audio.clone();
    o.decode = args.decode;
    Ok(o)
}

/// The length of the longest prefix of `data` that is a header and whole
/// records (the framing of the capture format: kind u8, offset u64, length
/// u32, payload); `None` if not even the header is whole.
fn whole_records_len(data: &[u8]) -> Option<usize> {
    let be_u32 = |at: usize| -> Option<usize> {
        let b = data.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if !data.starts_with(MAGIC) {
        return None;
    }
    let mut end = (MAGIC.len() + 2 + 4).checked_add(be_u32(MAGIC.len() + 2)?)?;
    if end > data.len() {
        return None;
    }
    while let Some(len) = be_u32(end + 9) {
        let next = (end + 13).checked_add(len)?;
        if next > data.len() {
            break;
        }
        end = next;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_records_of_a_cut_capture() {
        let mut data = MAGIC.to_vec();
        data.extend([0, 2, 0, 0, 0, 3, 9, 9, 9]);
        assert_eq!(whole_records_len(&data), Some(17));
        assert_eq!(whole_records_len(&data[..16]), None, "header cut");
        // kind 4 (eof) at 5 ns, no payload; then kind 3 with 2 bytes, cut after 1.
        data.extend([4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0]);
        data.extend([3, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 2, 0xaa]);
        assert_eq!(whole_records_len(&data), Some(30));
        assert_eq!(whole_records_len(b"GIF89a"), None);
    }
}
