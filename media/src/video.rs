//! Video decode (cargo feature `decode`): the core's Annex B [`VideoFrame`]s in, pictures out.
//!
//! What it is: a [`VideoDecoder`] for one H.264, H.265 or MJPEG track, made from the track's SDP
//! [`Media`] (for its out-of-band parameter sets) or from a codec and parameter sets, that turns
//! each [`VideoFrame`] into zero or more [`Picture`]s: packed RGB24 or planar YUV 4:2:0 with
//! their width, height and RTP timestamp, in presentation order.
//!
//! What it is not: a renderer, a scaler to arbitrary sizes, or a jitter buffer. Pictures come out
//! when the decoder has them: with B-frames, a few frames after the frame that carried them
//! (the decoder's reorder delay), and [`VideoDecoder::flush`] hands out the last ones at the end.
//!
//! # Why FFmpeg (ffmpeg-next)
//! The toolkit this project grows from decoded through PyAV, that is FFmpeg's libavcodec; the
//! `ffmpeg-next` binding gives the same decoders (H.264 *and* H.265, robust to the damaged streams
//! cameras send) from the FFmpeg a Debian machine already has (5.1 on Debian 12, detected at build
//! time), is maintained, and is safe Rust. `openh264` would have spared the system library but
//! decodes H.264 only, and no maintained pure-Rust H.265 decoder exists. MJPEG goes through
//! libavcodec's JPEG decoder too: the feature links it already, so a pure-Rust JPEG crate would
//! only add a second decoder (and a dependency) for the same pictures. The price: building this
//! feature needs FFmpeg's development headers and libclang (Debian: `libavcodec-dev
//! libavformat-dev libavutil-dev libswscale-dev pkg-config clang libclang-dev`), which is why it
//! is a feature and not a default.
//!
//! # Errors and recovery
//! Every failure is an [`Err`] value, never a panic. Frames before the first keyframe, and after a
//! loss or a decode error until the next keyframe, are not given to libavcodec (they would only
//! make smeared pictures from missing references): [`VideoDecoder::feed`] answers
//! [`VideoDecodeError::WaitingForKeyframe`] for them. A frame libavcodec rejects is
//! [`VideoDecodeError::Decode`]; the decoder then waits for the next keyframe and recovers there.
//!
//! # Parameter sets
//! Cameras often send SPS/PPS (and VPS) only in the SDP's `sprop-*` parameters. The decoder puts
//! them in front of the first keyframe it decodes, unless that frame carries its own; in-band
//! parameter sets that arrive later replace them as usual.
//!
//! # Example: decode after DESCRIBE
//! Open a session, create the decoder from the DESCRIBE's SDP for the video track SETUP chose,
//! print each picture's timestamp and size:
//!
//! ```no_run
//! use rtsp_toolkit_blocking::{ClientOptions, Event, Session};
//! use rtsp_toolkit_media::video::{PixelFormat, VideoDecoder};
//!
//! let options = ClientOptions::default().with_audio(false);
//! let session = Session::open("rtsp://127.0.0.1:8554/h264_aac.mp4", options)?;
//! let mut sdp = None;
//! let mut decoder = None;
//! for event in session {
//!     match event {
//!         Event::Method(m) => {
//!             sdp = m.sdp.or(sdp);
//!             if let (Some(track), Some(sdp)) = (&m.track, &sdp) {
//!                 decoder = Some(VideoDecoder::from_sdp(&sdp.media[track.media_index], PixelFormat::Rgb24)?);
//!             }
//!         }
//!         Event::Video(v) => {
//!             let Some(decoder) = decoder.as_mut() else { continue };
//!             match decoder.feed(&v.frame) {
//!                 Ok(pictures) => {
//!                     for p in pictures {
//!                         println!("picture ts={} {}x{}", p.timestamp, p.width, p.height);
//!                     }
//!                 }
//!                 Err(e) => println!("frame ts={} not decoded: {e}", v.frame.timestamp),
//!             }
//!         }
//!         Event::Closed(c) => println!("closed: {:?}", c.error),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Once;

use bytes::{Bytes, BytesMut};
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use rtsp_toolkit_core::codec::{VideoCodec, VideoFrame};
use rtsp_toolkit_core::sdp::Media;

/// How a [`Picture`]'s bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B: `width * 3` bytes per row, no padding.
    Rgb24,
    /// Planar YUV 4:2:0, 8-bit: the Y plane (`width * height`), then U and V (each
    /// `ceil(width / 2) * ceil(height / 2)`), no padding.
    Yuv420p,
}

/// One decoded picture.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    /// RTP timestamp of the frame that carried this picture (presentation time, 90 kHz).
    pub timestamp: u32,
    /// Width in pixels (the SPS's, cropped).
    pub width: u32,
    /// Height in pixels (cropped).
    pub height: u32,
    /// How `data` is laid out.
    pub format: PixelFormat,
    /// The pixels, laid out as [`PixelFormat`] says.
    pub data: Vec<u8>,
}

impl fmt::Debug for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Picture")
            .field("timestamp", &self.timestamp)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .field("data", &format_args!("{} bytes", self.data.len()))
            .finish()
    }
}

impl Picture {
    /// The Y, U and V planes of a [`PixelFormat::Yuv420p`] picture; `None` for RGB24.
    pub fn yuv_planes(&self) -> Option<(&[u8], &[u8], &[u8])> {
        if self.format != PixelFormat::Yuv420p {
            return None;
        }
        let luma = self.width as usize * self.height as usize;
        let chroma = chroma_len(self.width) * chroma_len(self.height);
        let (y, rest) = self.data.split_at_checked(luma)?;
        let (u, v) = rest.split_at_checked(chroma)?;
        Some((y, u, v.get(..chroma)?))
    }
}

fn chroma_len(n: u32) -> usize {
    n.div_ceil(2) as usize
}

/// Why a decoder could not be made, or a frame gave no picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VideoDecodeError {
    /// The SDP's encoding name is not H264, H265 or JPEG.
    #[error("no video decoder for {0:?} (H264, H265 and JPEG are supported)")]
    UnsupportedCodec(String),
    /// libavcodec could not open a decoder (missing from this FFmpeg build, out of memory).
    #[error("cannot open the {codec:?} decoder: {reason}")]
    Open {
        /// The codec asked for.
        codec: VideoCodec,
        /// libavcodec's message.
        reason: String,
    },
    /// A frame of another codec than the decoder's.
    #[error("a {frame:?} frame given to the {decoder:?} decoder")]
    CodecMismatch {
        /// The decoder's codec.
        decoder: VideoCodec,
        /// The frame's codec.
        frame: VideoCodec,
    },
    /// Not decoded: the decoder starts, and restarts after a loss or a decode error, at a
    /// keyframe.
    #[error("waiting for a keyframe")]
    WaitingForKeyframe,
    /// libavcodec rejected the frame (damaged or not what the SDP said); the decoder waits for the
    /// next keyframe.
    #[error("decode error: {0}")]
    Decode(String),
    /// The picture could not be converted to the output format.
    #[error("cannot convert the picture: {0}")]
    Convert(String),
}

/// Decodes the frames of one video track. See the [module documentation](self).
///
/// Not `Send` (libswscale's context is a raw pointer that ffmpeg-next does not mark as sendable):
/// make it on the thread that decodes.
pub struct VideoDecoder {
    codec: VideoCodec,
    format: PixelFormat,
    decoder: ff::decoder::Video,
    /// SDP parameter sets, put in front of the first keyframe that has none of its own.
    parameter_sets: Option<Bytes>,
    /// Whether parameter sets reached libavcodec (from the SDP or in-band).
    parameters_sent: bool,
    waiting_for_keyframe: bool,
    /// Converts the decoder's pixel format and size to `format`; rebuilt when they change.
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    decoded: ff::frame::Video,
    converted: ff::frame::Video,
}

impl fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoDecoder")
            .field("codec", &self.codec)
            .field("format", &self.format)
            .field("parameter_sets", &self.parameter_sets.as_ref().map(Bytes::len))
            .field("waiting_for_keyframe", &self.waiting_for_keyframe)
            .finish_non_exhaustive()
    }
}

static INIT: Once = Once::new();

impl VideoDecoder {
    /// A decoder for `codec`, with out-of-band parameter sets in Annex B form (as
    /// [`Media::parameter_sets_annex_b`] gives them), giving pictures in `format`.
    ///
    /// ```
    /// use rtsp_toolkit_core::codec::VideoCodec;
    /// use rtsp_toolkit_media::video::{PixelFormat, VideoDecoder};
    /// let decoder = VideoDecoder::new(VideoCodec::H265, None, PixelFormat::Yuv420p)?;
    /// assert_eq!(decoder.codec(), VideoCodec::H265);
    /// # Ok::<(), rtsp_toolkit_media::video::VideoDecodeError>(())
    /// ```
    pub fn new(
        codec: VideoCodec,
        parameter_sets: Option<Bytes>,
        format: PixelFormat,
    ) -> Result<Self, VideoDecodeError> {
        INIT.call_once(|| {
            // Registers nothing on FFmpeg 4+; kept for older libraries. Cannot fail there.
            let _ = ff::init();
        });
        let open_error = |reason: String| VideoDecodeError::Open { codec, reason };
        let id = match codec {
            VideoCodec::H264 => ff::codec::Id::H264,
            VideoCodec::H265 => ff::codec::Id::HEVC,
            VideoCodec::Mjpeg => ff::codec::Id::MJPEG,
        };
        let av_codec =
            ff::decoder::find(id).ok_or_else(|| open_error("this FFmpeg build has no such decoder".into()))?;
        let decoder = ff::codec::Context::new_with_codec(av_codec)
            .decoder()
            .open_as(av_codec)
            .and_then(|d| d.video())
            .map_err(|e| open_error(e.to_string()))?;
        Ok(VideoDecoder {
            codec,
            format,
            decoder,
            parameter_sets: parameter_sets.filter(|p| !p.is_empty()),
            parameters_sent: false,
            waiting_for_keyframe: true,
            scaler: None,
            decoded: ff::frame::Video::empty(),
            converted: ff::frame::Video::empty(),
        })
    }

    /// A decoder for the track an SDP media section describes (`H264`, `H265` or `JPEG`, any
    /// case), with its `sprop-*` parameter sets.
    pub fn from_sdp(media: &Media, format: PixelFormat) -> Result<Self, VideoDecodeError> {
        let codec = if media.codec.eq_ignore_ascii_case("H264") {
            VideoCodec::H264
        } else if media.codec.eq_ignore_ascii_case("H265") {
            VideoCodec::H265
        } else if media.codec.eq_ignore_ascii_case("JPEG") {
            return VideoDecoder::new(VideoCodec::Mjpeg, None, format);
        } else {
            return Err(VideoDecodeError::UnsupportedCodec(media.codec.clone()));
        };
        VideoDecoder::new(codec, media.parameter_sets_annex_b(), format)
    }

    /// The codec this decoder decodes.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// The format of the pictures it gives.
    pub fn pixel_format(&self) -> PixelFormat {
        self.format
    }

    /// Whether the next frame must be a keyframe to be decoded (at the start, and after a loss
    /// or a decode error).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// Decodes one frame; returns the pictures that became ready (none, one, or with B-frames
    /// sometimes more), in presentation order.
    ///
    /// # Errors
    ///
    /// [`VideoDecodeError::WaitingForKeyframe`] for a frame skipped until the next keyframe,
    /// [`VideoDecodeError::Decode`] when libavcodec rejects it (then frames are skipped until the
    /// next keyframe), [`VideoDecodeError::Convert`] when a picture cannot be converted,
    /// [`VideoDecodeError::CodecMismatch`] for a frame of another codec.
    pub fn feed(&mut self, frame: &VideoFrame) -> Result<Vec<Picture>, VideoDecodeError> {
        if frame.codec != self.codec {
            return Err(VideoDecodeError::CodecMismatch {
                decoder: self.codec,
                frame: frame.codec,
            });
        }
        if frame.loss > 0 {
            // The frames that were lost may be references of this one.
            self.waiting_for_keyframe = true;
        }
        if self.waiting_for_keyframe && !frame.keyframe {
            return Err(VideoDecodeError::WaitingForKeyframe);
        }
        let data = match (&self.parameter_sets, self.parameters_sent || frame.new_parameters) {
            (Some(sets), false) => {
                let mut joined = BytesMut::with_capacity(sets.len() + frame.data.len());
                joined.extend_from_slice(sets);
                joined.extend_from_slice(&frame.data);
                joined.freeze()
            }
            _ => frame.data.clone(),
        };
        let mut packet = ff::Packet::copy(&data);
        packet.set_pts(Some(i64::from(frame.timestamp)));
        if frame.keyframe {
            packet.set_flags(ff::packet::Flags::KEY);
        }
        let mut pictures = Vec::new();
        if let Err(e) = self.decoder.send_packet(&packet) {
            self.waiting_for_keyframe = true;
            // Pictures finished before the bad frame are still good.
            let _ = self.drain(&mut pictures);
            return Err(VideoDecodeError::Decode(e.to_string()));
        }
        if frame.keyframe {
            self.waiting_for_keyframe = false;
        }
        self.parameters_sent |= self.parameter_sets.is_some() || frame.new_parameters;
        self.drain(&mut pictures)?;
        Ok(pictures)
    }

    /// Ends the stream: returns the pictures the decoder still holds (its reorder delay), then
    /// is ready for a new stream starting at a keyframe.
    ///
    /// # Errors
    ///
    /// As [`VideoDecoder::feed`] for the held pictures.
    pub fn flush(&mut self) -> Result<Vec<Picture>, VideoDecodeError> {
        let mut pictures = Vec::new();
        let result = match self.decoder.send_eof() {
            Ok(()) => self.drain(&mut pictures),
            Err(e) => Err(VideoDecodeError::Decode(e.to_string())),
        };
        // Back to a fresh state: `send_eof` ended the decoder's stream.
        self.decoder.flush();
        self.waiting_for_keyframe = true;
        self.parameters_sent = false;
        result.map(|()| pictures)
    }

    /// Receives every picture libavcodec has ready.
    fn drain(&mut self, pictures: &mut Vec<Picture>) -> Result<(), VideoDecodeError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => pictures.push(self.convert()?),
                Err(ff::Error::Other {
                    errno: ff::util::error::EAGAIN,
                })
                | Err(ff::Error::Eof) => return Ok(()),
                Err(e) => {
                    self.waiting_for_keyframe = true;
                    return Err(VideoDecodeError::Decode(e.to_string()));
                }
            }
        }
    }

    /// `self.decoded` as a [`Picture`] in the output format.
    fn convert(&mut self) -> Result<Picture, VideoDecodeError> {
        let (src, width, height) = (self.decoded.format(), self.decoded.width(), self.decoded.height());
        if width == 0 || height == 0 || src == Pixel::None {
            return Err(VideoDecodeError::Convert("the decoder gave an empty picture".into()));
        }
        let timestamp = self.decoded.pts().or(self.decoded.timestamp()).unwrap_or_default() as u32;
        let (dst, planes) = match self.format {
            PixelFormat::Rgb24 => (Pixel::RGB24, 1),
            PixelFormat::Yuv420p => (Pixel::YUV420P, 3),
        };
        let frame = if src == dst {
            &self.decoded
        } else {
            let stale = self
                .scaler
                .as_ref()
                .is_none_or(|(f, w, h, _)| (*f, *w, *h) != (src, width, height));
            if stale {
                let ctx = scaling::Context::get(src, width, height, dst, width, height, scaling::Flags::BILINEAR)
                    .map_err(|e| VideoDecodeError::Convert(format!("{src:?} to {dst:?}: {e}")))?;
                self.scaler = Some((src, width, height, ctx));
                self.converted = ff::frame::Video::empty();
            }
            let Some((_, _, _, ctx)) = self.scaler.as_mut() else {
                unreachable!("the scaler was just made")
            };
            ctx.run(&self.decoded, &mut self.converted)
                .map_err(|e| VideoDecodeError::Convert(e.to_string()))?;
            &self.converted
        };
        if frame.planes() < planes {
            return Err(VideoDecodeError::Convert(format!("{planes} planes expected")));
        }
        let mut data = Vec::with_capacity(match self.format {
            PixelFormat::Rgb24 => width as usize * height as usize * 3,
            PixelFormat::Yuv420p => width as usize * height as usize + 2 * chroma_len(width) * chroma_len(height),
        });
        for plane in 0..planes {
            let (row, rows) = match (self.format, plane) {
                (PixelFormat::Rgb24, _) => (width as usize * 3, height as usize),
                (PixelFormat::Yuv420p, 0) => (width as usize, height as usize),
                (PixelFormat::Yuv420p, _) => (chroma_len(width), chroma_len(height)),
            };
            let stride = frame.stride(plane);
            let bytes = frame.data(plane);
            for r in 0..rows {
                let line = bytes
                    .get(r * stride..r * stride + row)
                    .ok_or_else(|| VideoDecodeError::Convert("a plane is shorter than its picture".into()))?;
                data.extend_from_slice(line);
            }
        }
        Ok(Picture {
            timestamp,
            width,
            height,
            format: self.format,
            data,
        })
    }
}

/// Turns libavcodec's own messages on stderr (`[h264 @ 0x...] error while decoding MB ...`) on or
/// off for the whole process. They are on (FFmpeg's default) until this is called; the decoder's
/// errors reach the caller as values either way, so a program with its own output usually turns
/// them off.
pub fn set_ffmpeg_logging(enabled: bool) {
    ff::util::log::set_level(if enabled {
        ff::util::log::Level::Info
    } else {
        ff::util::log::Level::Quiet
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceCodec;
    use std::path::Path;

    /// Every frame of the first video track of a fixture, as the client would give them.
    fn frames(name: &str) -> (VideoCodec, Bytes, Vec<VideoFrame>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/media")
            .join(name);
        let source = crate::open(&path).unwrap();
        let (track, params, codec) = source
            .tracks
            .iter()
            .enumerate()
            .find_map(|(i, t)| match &t.codec {
                SourceCodec::H264 { sps, pps } => Some((i, sps.iter().chain(pps).cloned().collect(), VideoCodec::H264)),
                SourceCodec::H265 { vps, sps, pps } => Some((
                    i,
                    vps.iter().chain(sps).chain(pps).cloned().collect::<Vec<_>>(),
                    VideoCodec::H265,
                )),
                _ => None,
            })
            .unwrap();
        let frames = source
            .samples
            .iter()
            .filter(|s| s.track == track)
            .map(|s| VideoFrame {
                codec,
                timestamp: s.presentation_time as u32,
                data: annex_b(&s.data),
                keyframe: s.keyframe,
                new_parameters: false,
                loss: 0,
            })
            .collect();
        (codec, annex_b_sets(&params), frames)
    }

    fn annex_b_sets(sets: &[Bytes]) -> Bytes {
        let mut out = Vec::new();
        for s in sets {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(s);
        }
        out.into()
    }

    /// 4-byte length prefixes → start codes.
    fn annex_b(mut data: &[u8]) -> Bytes {
        let mut out = Vec::new();
        while data.len() >= 4 {
            let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&data[4..4 + n]);
            data = &data[4 + n..];
        }
        out.into()
    }

    fn decode_all(decoder: &mut VideoDecoder, frames: &[VideoFrame]) -> (Vec<Picture>, usize) {
        let mut pictures = Vec::new();
        let mut errors = 0;
        for f in frames {
            match decoder.feed(f) {
                Ok(p) => pictures.extend(p),
                Err(_) => errors += 1,
            }
        }
        pictures.extend(decoder.flush().unwrap());
        (pictures, errors)
    }

    /// `ffprobe -count_frames` gives 125 decoded frames of 320x240 for each fixture.
    #[test]
    fn decodes_every_fixture_frame() {
        for (name, format) in [
            ("h264_aac.mp4", PixelFormat::Rgb24),
            ("h264_bframes.mp4", PixelFormat::Yuv420p),
            ("h265.mp4", PixelFormat::Rgb24),
            ("h265_aac.mkv", PixelFormat::Yuv420p),
        ] {
            let (codec, params, frames) = frames(name);
            let mut decoder = VideoDecoder::new(codec, Some(params), format).unwrap();
            let (pictures, errors) = decode_all(&mut decoder, &frames);
            assert_eq!((pictures.len(), errors), (125, 0), "{name}");
            for p in &pictures {
                assert_eq!((p.width, p.height, p.format), (320, 240, format), "{name}");
                let len = match format {
                    PixelFormat::Rgb24 => 320 * 240 * 3,
                    PixelFormat::Yuv420p => 320 * 240 * 3 / 2,
                };
                assert_eq!(p.data.len(), len);
            }
            // Presentation order: the timestamps of the B-frame fixtures come out sorted.
            assert!(pictures.windows(2).all(|w| w[0].timestamp < w[1].timestamp), "{name}");
            // testsrc2 is colourful: not a flat picture.
            let first = &pictures[0].data;
            let mean = first.iter().map(|&b| f64::from(b)).sum::<f64>() / first.len() as f64;
            let var = first.iter().map(|&b| (f64::from(b) - mean).powi(2)).sum::<f64>() / first.len() as f64;
            assert!(var > 100.0, "{name}: variance {var}");
        }
    }

    #[test]
    fn yuv_planes_split() {
        let (codec, params, frames) = frames("h264_aac.mp4");
        let mut decoder = VideoDecoder::new(codec, Some(params), PixelFormat::Yuv420p).unwrap();
        let p = decoder.feed(&frames[0]).unwrap().remove(0);
        let (y, u, v) = p.yuv_planes().unwrap();
        assert_eq!((y.len(), u.len(), v.len()), (320 * 240, 160 * 120, 160 * 120));
    }

    #[test]
    fn skips_to_the_first_keyframe_and_needs_parameter_sets() {
        let (codec, params, frames) = frames("h264_aac.mp4");
        let mut decoder = VideoDecoder::new(codec, Some(params), PixelFormat::Rgb24).unwrap();
        // Start in the middle of the first GOP.
        assert_eq!(decoder.feed(&frames[3]), Err(VideoDecodeError::WaitingForKeyframe));
        assert!(decoder.waiting_for_keyframe());
        assert_eq!(decoder.feed(&frames[0]).unwrap().len(), 1);
        assert!(!decoder.waiting_for_keyframe());

        // Without the SDP's parameter sets the first keyframe cannot be decoded.
        let mut bare = VideoDecoder::new(codec, None, PixelFormat::Rgb24).unwrap();
        let got = bare.feed(&frames[0]);
        assert!(got.as_ref().map_or(true, Vec::is_empty), "{got:?}");
    }

    #[test]
    fn recovers_at_the_next_keyframe_after_loss_and_damage() {
        for name in ["h264_aac.mp4", "h265.mp4"] {
            let (codec, params, mut frames) = frames(name);
            let mut decoder = VideoDecoder::new(codec, Some(params), PixelFormat::Rgb24).unwrap();
            // Frame 10 arrives after a loss; frame 30 is garbage in a keyframe's clothes.
            frames[10].loss = 3;
            let mut garbage = vec![0, 0, 0, 1];
            garbage.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
            frames[30].data = garbage.into();
            let mut results = Vec::new();
            for f in &frames {
                results.push(decoder.feed(f));
            }
            // Lost: skipped until the next keyframe.
            let next_key = (11..frames.len()).find(|&i| frames[i].keyframe).unwrap();
            for (i, r) in results.iter().enumerate().take(next_key).skip(10) {
                assert_eq!(r, &Err(VideoDecodeError::WaitingForKeyframe), "{name} frame {i}");
            }
            assert!(results[next_key].is_ok(), "{name}");
            let pictures: usize = results.iter().filter_map(|r| r.as_ref().ok()).map(Vec::len).sum();
            let skipped = results.iter().filter(|r| r.is_err()).count();
            assert!(
                pictures > 50 && skipped >= next_key - 10,
                "{name}: {pictures} pictures, {skipped} skipped"
            );
            // After the damage, decoding is back at the next keyframe.
            let key_after = (31..frames.len()).find(|&i| frames[i].keyframe).unwrap();
            assert!(
                results[key_after + 1].as_ref().is_ok_and(|p| !p.is_empty()),
                "{name}: {:?}",
                results[key_after + 1]
            );
        }
    }

    #[test]
    fn arbitrary_bytes_are_errors_not_panics() {
        for codec in [VideoCodec::H264, VideoCodec::H265, VideoCodec::Mjpeg] {
            let mut decoder = VideoDecoder::new(codec, None, PixelFormat::Rgb24).unwrap();
            let mut seed = 7u32;
            for len in [0usize, 1, 4, 5, 17, 300, 5000] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (seed >> 16) as u8
                    })
                    .collect();
                let frame = VideoFrame {
                    codec,
                    timestamp: len as u32,
                    data: data.into(),
                    keyframe: true,
                    new_parameters: true,
                    loss: 0,
                };
                let _ = decoder.feed(&frame);
            }
            let _ = decoder.flush();
            let other = VideoFrame {
                codec: if codec == VideoCodec::H264 {
                    VideoCodec::H265
                } else {
                    VideoCodec::H264
                },
                timestamp: 0,
                data: Bytes::new(),
                keyframe: true,
                new_parameters: false,
                loss: 0,
            };
            assert!(matches!(
                decoder.feed(&other),
                Err(VideoDecodeError::CodecMismatch { .. })
            ));
        }
    }

    /// A 16x8 gray MJPEG image rebuilt by the core's RFC 2435 depacketizer (Q 50): one 4:2:2
    /// MCU whose four blocks are all DC 0 and end of block, coded with the standard Huffman
    /// tables (Y: DC `00`, EOB `1010`; Cb, Cr: DC `00`, EOB `00`), padded with ones.
    fn gray_mjpeg_frame() -> VideoFrame {
        use rtsp_toolkit_core::codec::jpeg;
        let sdp = rtsp_toolkit_core::sdp::Sdp::parse(b"v=0\r\nm=video 0 RTP/AVP 26\r\n").unwrap();
        let mut d = jpeg::Depacketizer::new(&sdp.media[0], 1 << 20).unwrap();
        let payload = [0, 0, 0, 0, 0, 50, 2, 1, 0b0010_1000, 0b1010_0000, 0b0000_1111];
        let packet = rtsp_toolkit_core::rtp::RtpPacket {
            sequence_number: 1,
            timestamp: 90,
            ssrc: 1,
            marker: true,
            payload_type: 26,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload: Bytes::copy_from_slice(&payload),
        };
        d.push(&packet, 0).unwrap();
        d.pull().unwrap()
    }

    #[test]
    fn decodes_mjpeg_rebuilt_from_rtp() {
        let frame = gray_mjpeg_frame();
        let sdp =
            rtsp_toolkit_core::sdp::Sdp::parse(b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 JPEG/90000\r\n").unwrap();
        let mut decoder = VideoDecoder::from_sdp(&sdp.media[0], PixelFormat::Yuv420p).unwrap();
        assert_eq!(decoder.codec(), VideoCodec::Mjpeg);
        let mut pictures = decoder.feed(&frame).unwrap();
        pictures.extend(decoder.flush().unwrap());
        assert_eq!(pictures.len(), 1);
        let p = &pictures[0];
        assert_eq!((p.width, p.height, p.timestamp), (16, 8, 90));
        let (y, u, v) = p.yuv_planes().unwrap();
        // DC 0 is mid-gray (128, or about that once converted to video range).
        assert!(y.iter().chain(u).chain(v).all(|&b| (120..=136).contains(&b)), "{y:?}");
        // Every frame is a keyframe: a loss before a frame costs nothing more.
        let mut lossy = frame.clone();
        lossy.loss = 2;
        let mut after_loss = decoder.feed(&lossy).unwrap();
        after_loss.extend(decoder.flush().unwrap());
        assert_eq!(after_loss.len(), 1);
        let mut rgb = VideoDecoder::new(VideoCodec::Mjpeg, None, PixelFormat::Rgb24).unwrap();
        let mut pictures = rgb.feed(&frame).unwrap();
        pictures.extend(rgb.flush().unwrap());
        assert_eq!(pictures[0].data.len(), 16 * 8 * 3);
    }

    #[test]
    fn from_sdp_refuses_other_codecs() {
        let sdp = rtsp_toolkit_core::sdp::Sdp::parse(
            b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
        )
        .unwrap();
        let err = VideoDecoder::from_sdp(&sdp.media[0], PixelFormat::Rgb24).unwrap_err();
        assert_eq!(err, VideoDecodeError::UnsupportedCodec("VP8".into()));
    }
}
