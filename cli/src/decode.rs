//! `probe --decode` and `probe --save-first-frame FILE.png`: the video track decoded.
//!
//! [`DecodeSummary`] is what the report shows (text and JSON); it exists in every build so the
//! report code has one shape. The decoding itself ([`FrameDecoder`], PNG writing) needs the
//! cargo feature `decode` (FFmpeg's libavcodec through `rtsp-toolkit-media`); without it the
//! options are refused with a usage error that says how to build with it.
//!
//! What it is not: a player. Pictures are counted and the first is saved; `view` shows them.

use std::path::PathBuf;

/// What decoding the video track gave, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeSummary {
    /// The decoded track (the first video track set up).
    pub track: Option<usize>,
    /// Its codec as the SDP names it.
    pub codec: Option<String>,
    /// Whether every frame was decoded (`--decode`), or only up to the first picture.
    pub all_frames: bool,
    /// Pictures the decoder gave.
    pub pictures: u64,
    /// Size of the last picture.
    pub resolution: Option<(u32, u32)>,
    /// Frames the decoder rejected (damaged, or not what the SDP said).
    pub errors: u64,
    /// Frames not decoded because they came before the first keyframe, or after a loss or an
    /// error and before the next keyframe.
    pub skipped: u64,
    /// The first decode error, in words.
    pub first_error: Option<String>,
    /// Why nothing could be decoded at all (no video track, unsupported codec, no decoder).
    pub unavailable: Option<String>,
    /// Where the first picture was written (`--save-first-frame`), once it was.
    pub first_frame: Option<PathBuf>,
}

impl DecodeSummary {
    /// The report's `decoded` lines (text output).
    pub fn text_lines(&self) -> Vec<String> {
        let mut what = match (&self.unavailable, self.resolution) {
            (Some(why), _) => format!("nothing: {why}"),
            (None, Some((w, h))) => format!("{} pictures {w}x{h}", self.pictures),
            (None, None) => format!("{} pictures", self.pictures),
        };
        if let (Some(t), Some(c)) = (self.track, &self.codec) {
            what.push_str(&format!(" (track {t} {c})"));
        }
        let mut lines = vec![format!("  {:<14}{what}", "decoded")];
        let mut problems = format!("{} decode errors", self.errors);
        if let Some(e) = &self.first_error {
            problems.push_str(&format!(" (first: {e})"));
        }
        problems.push_str(&format!(", {} frames skipped waiting for a keyframe", self.skipped));
        lines.push(format!("  {:<14}{problems}", ""));
        lines
    }
}

#[cfg(feature = "decode")]
pub use imp::FrameDecoder;

#[cfg(feature = "decode")]
mod imp {
    use std::fs::File;
    use std::io::{self, BufWriter};
    use std::path::{Path, PathBuf};

    use rtsp_toolkit_media::video::{Picture, PixelFormat, VideoDecodeError, VideoDecoder};
    use rtsp_toolkit_tokio::core::sdp::{Media, MediaKind};
    use rtsp_toolkit_tokio::{Track, VideoFrameEvent};

    use super::DecodeSummary;

    /// Decodes the first video track for the probe.
    pub struct FrameDecoder {
        decoder: Option<VideoDecoder>,
        /// `--save-first-frame`: the path and the file, created before connecting.
        png: Option<(PathBuf, Option<File>)>,
        summary: DecodeSummary,
    }

    impl std::fmt::Debug for FrameDecoder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("FrameDecoder")
                .field("summary", &self.summary)
                .finish_non_exhaustive()
        }
    }

    impl FrameDecoder {
        /// `all_frames`: `--decode`; `png`: `--save-first-frame`. The PNG file is created now, so
        /// that a path that cannot be written is a usage error before connecting.
        pub fn new(all_frames: bool, png: Option<&Path>) -> io::Result<FrameDecoder> {
            let png = match png {
                Some(p) => Some((p.to_owned(), Some(File::create(p)?))),
                None => None,
            };
            Ok(FrameDecoder {
                decoder: None,
                png,
                summary: DecodeSummary {
                    all_frames,
                    ..DecodeSummary::default()
                },
            })
        }

        pub fn summary(&self) -> &DecodeSummary {
            &self.summary
        }

        /// A track was set up: the first video track gets the decoder.
        pub fn setup(&mut self, track: &Track, media: &Media) {
            if track.kind != MediaKind::Video || self.summary.track.is_some() {
                return;
            }
            self.summary.track = Some(track.index);
            self.summary.codec = Some(track.codec.clone());
            match VideoDecoder::from_sdp(media, PixelFormat::Rgb24) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => self.summary.unavailable = Some(e.to_string()),
            }
        }

        /// Whether frames still need decoding.
        fn active(&self) -> bool {
            self.summary.all_frames || self.png.as_ref().is_some_and(|(_, file)| file.is_some())
        }

        /// Decodes one frame of the decoded track. `Err` only when the PNG cannot be written.
        pub fn frame(&mut self, v: &VideoFrameEvent) -> Result<(), String> {
            if Some(v.track) != self.summary.track || !self.active() {
                return Ok(());
            }
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(());
            };
            let result = decoder.feed(&v.frame);
            self.pictures(result)
        }

        /// The end of the session: the pictures the decoder still holds.
        pub fn finish(&mut self) -> Result<(), String> {
            if !self.active() {
                return Ok(());
            }
            let Some(decoder) = self.decoder.as_mut() else {
                return self.no_picture();
            };
            let result = decoder.flush();
            self.pictures(result)?;
            self.no_picture()
        }

        fn pictures(&mut self, result: Result<Vec<Picture>, VideoDecodeError>) -> Result<(), String> {
            match result {
                Ok(pictures) => {
                    for p in pictures {
                        self.summary.pictures += 1;
                        self.summary.resolution = Some((p.width, p.height));
                        self.save(&p)?;
                    }
                }
                Err(VideoDecodeError::WaitingForKeyframe) => self.summary.skipped += 1,
                Err(e) => {
                    self.summary.errors += 1;
                    self.summary.first_error.get_or_insert_with(|| e.to_string());
                }
            }
            Ok(())
        }

        /// Writes `picture` if it is the first.
        fn save(&mut self, picture: &Picture) -> Result<(), String> {
            let Some((path, file)) = self.png.as_mut() else {
                return Ok(());
            };
            let Some(file) = file.take() else { return Ok(()) };
            write_png(file, picture).map_err(|e| format!("writing {}: {e}", path.display()))?;
            self.summary.first_frame = Some(path.clone());
            Ok(())
        }

        /// `--save-first-frame` and the session ended without a picture: an error, and the empty
        /// file is removed.
        fn no_picture(&mut self) -> Result<(), String> {
            let Some((path, file)) = self.png.as_mut() else {
                return Ok(());
            };
            if file.take().is_none() {
                return Ok(());
            }
            let _ = std::fs::remove_file(&*path);
            let why = match (&self.summary.unavailable, &self.summary.first_error, self.summary.track) {
                (Some(u), _, _) => u.clone(),
                (None, Some(e), _) => format!("the frames could not be decoded ({e})"),
                (None, None, None) => "no video track was set up".to_owned(),
                (None, None, Some(_)) => "no keyframe arrived".to_owned(),
            };
            Err(format!("--save-first-frame {}: no picture: {why}", path.display()))
        }
    }

    /// An RGB24 picture as an 8-bit RGB PNG.
    pub fn write_png(file: File, picture: &Picture) -> io::Result<()> {
        let mut encoder = png::Encoder::new(BufWriter::new(file), picture.width, picture.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(io::Error::other)?;
        writer.write_image_data(&picture.data).map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)
    }
}
