//! `--record FILE.mp4|FILE.mkv`: every received video and audio track, stream
//! copied into a fragmented MP4 or Matroska file by `rtsp_toolkit_media::record`
//! (the format choices, timing and fragmenting are documented there and in
//! docs/CLI.md). This is only the glue: the file is created before connecting,
//! session events go in, and the report gets its `saved` lines.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use rtsp_toolkit_media::record::{Alignment, RecordFormat, RecordSummary, Recorder};
use rtsp_toolkit_tokio::Event;

use crate::text;

/// A recording in progress.
#[derive(Debug)]
pub struct RecordSink {
    path: PathBuf,
    recorder: Recorder<BufWriter<File>>,
    summary: Option<RecordSummary>,
}

impl RecordSink {
    /// Creates (truncates) the file now, so that a bad path or extension is a usage error.
    pub fn create(path: &Path) -> Result<RecordSink, String> {
        if RecordFormat::from_path(path).is_none() {
            return Err(format!(
                "{}: the extension must be .mp4 (fragmented MP4) or .mkv (Matroska)",
                path.display()
            ));
        }
        let recorder = Recorder::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(RecordSink {
            path: path.to_owned(),
            recorder,
            summary: None,
        })
    }

    /// Feeds one session event; the notes to show (tracks that are not
    /// recorded), or a write error.
    pub fn event(&mut self, event: &Event) -> Result<Vec<String>, String> {
        self.recorder
            .on_event(event)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        Ok(self.recorder.take_notes())
    }

    /// Writes what is held and completes the file.
    pub fn finish(&mut self) -> Result<(), String> {
        let summary = self
            .recorder
            .finish()
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.summary = Some(summary);
        Ok(())
    }

    /// The report's lines: the file, then one per track.
    pub fn saved_lines(&self) -> Vec<String> {
        let s = self.summary.clone().unwrap_or_else(|| self.recorder.summary());
        let (kind, unit) = match s.format {
            RecordFormat::Mp4 => ("fragmented MP4", "fragments"),
            RecordFormat::Mkv => ("Matroska", "clusters"),
        };
        let aligned = match s.alignment {
            Alignment::SenderReports if s.tracks.len() > 1 => ", aligned by RTCP sender reports",
            Alignment::Arrival if s.tracks.len() > 1 => ", aligned by arrival time",
            _ => "",
        };
        let mut lines = vec![format!(
            "recording: {:.3} s of {kind} ({} {unit}, {}{aligned}) to {}",
            s.duration.as_secs_f64(),
            s.fragments,
            text::bytes(s.bytes),
            self.path.display()
        )];
        for t in &s.tracks {
            let mut l = format!("  track {} {} {}", t.track, t.kind, t.codec);
            if let Some((w, h)) = t.resolution {
                l.push_str(&format!(" {w}x{h}"));
            }
            l.push_str(&format!(
                ": {} frames, {:.3} s, {}",
                t.frames,
                t.duration.as_secs_f64(),
                text::bytes(t.bytes)
            ));
            let mut notes = Vec::new();
            if t.skipped > 0 {
                notes.push(format!("{} frames before the first keyframe skipped", t.skipped));
            }
            if t.dropped > 0 {
                notes.push(format!("{} frames with backward timestamps dropped", t.dropped));
            }
            if t.parameter_changes > 0 {
                notes.push(format!("in-band parameter set changes: {}", t.parameter_changes));
            }
            if !notes.is_empty() {
                l.push_str(&format!(" ({})", notes.join("; ")));
            }
            lines.push(l);
        }
        for n in &s.not_recorded {
            lines.push(format!("  {n}"));
        }
        lines
    }
}
