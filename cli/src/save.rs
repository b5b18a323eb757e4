//! `--save-video`, `--save-audio` and `--save-metadata`: frames to files.
//!
//! Video is written as received: an Annex B elementary stream (`.h264` /
//! `.h265`), or for MJPEG the JPEG images one after the other (`.mjpeg`, which
//! FFmpeg reads as its `mjpeg` format), that ffplay and ffprobe read as is. Frames before the first
//! keyframe are skipped so that the file starts decodable (a live camera
//! joined mid-GOP). Audio is decoded to PCM s16le by `rtsp-toolkit-media`
//! and written as a WAV file, at the source rate or resampled to
//! `--audio-rate`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rtsp_toolkit_tokio::{MetadataFrameEvent, VideoFrameEvent};

/// The file for the `n`-th track (0-based) of a kind saved to `base`: `base`
/// itself for the first, `stem-trackK.ext` (K the track index) for the others.
pub fn track_path(base: &Path, n: usize, track: usize) -> PathBuf {
    if n == 0 {
        return base.to_owned();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-track{track}.{}", ext.to_string_lossy()),
        None => format!("{stem}-track{track}"),
    };
    base.with_file_name(name)
}

/// One sink per set-up track of a kind: the first writes to the path given,
/// the others next to it ([`track_path`]).
#[derive(Debug)]
pub struct Sinks<S> {
    base: PathBuf,
    /// The first sink exists before the session starts (a bad path is a
    /// usage error); it takes the first track set up.
    first: Option<S>,
    pub sinks: Vec<(usize, S)>,
}

impl<S> Sinks<S> {
    pub fn new(base: &Path, first: S) -> Sinks<S> {
        Sinks {
            base: base.to_owned(),
            first: Some(first),
            sinks: Vec::new(),
        }
    }

    /// Track `track` of this kind was set up: its sink (made with `make` for
    /// every track but the first).
    pub fn add(&mut self, track: usize, make: impl FnOnce(&Path) -> io::Result<S>) -> io::Result<&mut S> {
        if let Some(i) = self.sinks.iter().position(|(t, _)| *t == track) {
            return Ok(&mut self.sinks[i].1);
        }
        let sink = match self.first.take() {
            Some(s) => s,
            None => make(&track_path(&self.base, self.sinks.len(), track))?,
        };
        self.sinks.push((track, sink));
        Ok(&mut self.sinks.last_mut().expect("just pushed").1)
    }

    /// The sink of `track`, if it was set up.
    pub fn get(&mut self, track: usize) -> Option<&mut S> {
        self.sinks.iter_mut().find(|(t, _)| *t == track).map(|(_, s)| s)
    }

    /// Every sink, the unused first one included (it still gets finished).
    pub fn all(&mut self) -> impl Iterator<Item = &mut S> {
        self.sinks.iter_mut().map(|(_, s)| s).chain(self.first.as_mut())
    }
}

/// Writes the video frames of one track to an Annex B file.
#[derive(Debug)]
pub struct VideoSink {
    path: PathBuf,
    file: BufWriter<File>,
    /// The first keyframe was written.
    started: bool,
    pub frames: u64,
    pub bytes: u64,
    /// Frames skipped while waiting for the first keyframe.
    pub skipped: u64,
}

impl VideoSink {
    /// Creates (truncates) the file now, so that a bad path is a usage error.
    pub fn create(path: &Path) -> io::Result<VideoSink> {
        Ok(VideoSink {
            path: path.to_owned(),
            file: BufWriter::new(File::create(path)?),
            started: false,
            frames: 0,
            bytes: 0,
            skipped: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a frame of its track (from the first keyframe on; [`Sinks`]
    /// hands each sink only its own track's frames).
    pub fn frame(&mut self, v: &VideoFrameEvent) -> io::Result<()> {
        if !self.started {
            if !v.frame.keyframe {
                self.skipped += 1;
                return Ok(());
            }
            self.started = true;
        }
        self.file.write_all(&v.frame.data)?;
        self.frames += 1;
        self.bytes += v.frame.data.len() as u64;
        Ok(())
    }

    /// Flushes the file.
    pub fn finish(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}

/// Writes ONVIF metadata documents in the sidecar format `serve` reads
/// (`rtsp_toolkit_media::sidecar`): a line `<seconds> <xml>` per document,
/// seconds from the first document of its track.
#[derive(Debug)]
pub struct MetadataSink {
    path: PathBuf,
    file: BufWriter<File>,
    /// (track, RTP clock rate, extended timestamp of its first document).
    tracks: Vec<(usize, u32, Option<i64>)>,
    pub documents: u64,
}

impl MetadataSink {
    /// Creates (truncates) the file now, so that a bad path is a usage error.
    pub fn create(path: &Path) -> io::Result<MetadataSink> {
        Ok(MetadataSink {
            path: path.to_owned(),
            file: BufWriter::new(File::create(path)?),
            tracks: Vec::new(),
            documents: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Track `track` was set up with this RTP clock rate.
    pub fn track(&mut self, track: usize, clock_rate: u32) {
        if !self.tracks.iter().any(|t| t.0 == track) {
            self.tracks.push((track, clock_rate, None));
        }
    }

    /// Appends one document.
    pub fn document(&mut self, m: &MetadataFrameEvent) -> io::Result<()> {
        let i = match self.tracks.iter().position(|t| t.0 == m.track) {
            Some(i) => i,
            None => {
                self.tracks.push((m.track, 90_000, None));
                self.tracks.len() - 1
            }
        };
        let (_, rate, first) = &mut self.tracks[i];
        let first = *first.get_or_insert(m.extended_timestamp);
        let ticks = (m.extended_timestamp - first).max(0) as u128;
        let nanos = ticks * 1_000_000_000 / u128::from((*rate).max(1));
        let at = std::time::Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64);
        self.file
            .write_all(&rtsp_toolkit_media::sidecar::line(at, &m.frame.data))?;
        self.documents += 1;
        Ok(())
    }

    /// Flushes the file.
    pub fn finish(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}

pub use audio::AudioSink;

mod audio {
    use super::*;
    use rtsp_toolkit_media::audio::{AudioDecoder, PcmFrame, WavWriter};
    use rtsp_toolkit_tokio::core::sdp::Media;
    use rtsp_toolkit_tokio::AudioFrameEvent;

    /// Decodes the frames of one audio track and writes them as WAV.
    #[derive(Debug)]
    pub struct AudioSink {
        path: PathBuf,
        rate: Option<u32>,
        /// Made once the track's SDP media is known (at its SETUP).
        decoder: Option<(usize, AudioDecoder)>,
        writer: Option<WavWriter<BufWriter<File>>>,
        file: Option<File>,
        pub frames: u64,
        pub samples: u64,
        pub sample_rate: u32,
        pub channels: u16,
        pub errors: u64,
    }

    impl AudioSink {
        /// Creates (truncates) the file now, so that a bad path is a usage error.
        pub fn create(path: &Path, rate: Option<u32>) -> io::Result<AudioSink> {
            Ok(AudioSink {
                path: path.to_owned(),
                rate,
                decoder: None,
                writer: None,
                file: Some(File::create(path)?),
                frames: 0,
                samples: 0,
                sample_rate: 0,
                channels: 0,
                errors: 0,
            })
        }

        pub fn path(&self) -> &Path {
            &self.path
        }

        /// Its audio track was set up with this SDP media. An error means
        /// this codec cannot be decoded.
        pub fn track(&mut self, track: usize, media: &Media) -> Result<(), String> {
            if self.decoder.is_some() {
                return Ok(());
            }
            let d = AudioDecoder::from_media(media, self.rate).map_err(|e| e.to_string())?;
            self.decoder = Some((track, d));
            Ok(())
        }

        /// Decodes one frame and appends its PCM. Decode errors of single
        /// frames are counted, not fatal; write errors are.
        pub fn frame(&mut self, a: &AudioFrameEvent) -> io::Result<()> {
            let Some((track, decoder)) = self.decoder.as_mut() else {
                return Ok(());
            };
            if *track != a.track {
                return Ok(());
            }
            let pcm = match decoder.feed(&a.frame) {
                Ok(pcm) => pcm,
                Err(_) => {
                    self.errors += 1;
                    return Ok(());
                }
            };
            self.frames += 1;
            self.write(pcm)
        }

        fn write(&mut self, pcm: Vec<PcmFrame>) -> io::Result<()> {
            for p in pcm {
                if self.writer.is_none() {
                    let Some(file) = self.file.take() else { return Ok(()) };
                    self.sample_rate = p.sample_rate;
                    self.channels = p.channels;
                    self.writer = Some(WavWriter::new(BufWriter::new(file), p.sample_rate, p.channels)?);
                }
                if let Some(w) = self.writer.as_mut() {
                    w.write_frame(&p)?;
                    self.samples += p.sample_count() as u64;
                }
            }
            Ok(())
        }

        /// Finishes the WAV header. With no audio decoded, the file is an
        /// empty WAV at the requested (or 8 kHz) rate so that it is still valid.
        pub fn finish(&mut self) -> io::Result<()> {
            // The resampler holds back the end of the last frame.
            if let Some((_, decoder)) = self.decoder.as_mut() {
                let rest = decoder.flush();
                self.write(rest)?;
            }
            if self.writer.is_none() {
                if let Some(file) = self.file.take() {
                    self.writer = Some(WavWriter::new(BufWriter::new(file), self.rate.unwrap_or(8000), 1)?);
                }
            }
            match self.writer.take() {
                Some(w) => w.finish().map(|_| ()),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_tracks_get_their_own_files() {
        let base = Path::new("/tmp/x/cam.h264");
        assert_eq!(track_path(base, 0, 0), base);
        assert_eq!(track_path(base, 1, 2), Path::new("/tmp/x/cam-track2.h264"));
        assert_eq!(track_path(Path::new("out"), 1, 3), Path::new("out-track3"));
        let mut s = Sinks::new(base, 10u32);
        assert_eq!(*s.add(1, |_| Ok(0)).unwrap(), 10);
        assert_eq!(*s.add(3, |p| Ok(p.to_string_lossy().len() as u32)).unwrap(), 22);
        assert_eq!(*s.add(1, |_| Ok(99)).unwrap(), 10, "a track is added once");
        assert_eq!(s.get(3).copied(), Some(22));
        assert_eq!(s.all().count(), 2);
    }
}
