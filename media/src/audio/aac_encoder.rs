//! AAC-LC encoding through FFmpeg's native `aac` encoder (libavcodec, through
//! ffmpeg-next), for the ONVIF backchannel: the core sends AAC but has no
//! encoder of its own (see `rtsp_toolkit_core::client::backchannel`), so the
//! `decode` feature, which links libavcodec already, gives it one.
//!
//! What it is: an [`AacEncoder`] (16-bit PCM in, raw AAC-LC access units
//! out, 1024 samples each, no ADTS header) and the [`FfmpegAacEncoderFactory`]
//! a `BackchannelAudio` takes. What it is not: a general audio encoder (no
//! other codec, no rate conversion: the PCM must be at the config's rate,
//! which the session sees to).
//!
//! The encoder delays the audio by one frame (1024 samples of priming that a
//! decoder gives back as near silence before the first sample), and the last
//! frame is padded with silence: the decoded audio is the sent audio 1024
//! samples later, followed by up to one frame of silence.

use bytes::Bytes;
use ffmpeg_next as ff;
use rtsp_toolkit_core::client::{AacEncodeError, AacEncoder, AacEncoderConfig, AacEncoderFactory};

/// Makes an [`FfmpegAacEncoder`] per session: give it to the backchannel
/// queue (`BackchannelAudio::set_aac_encoder`).
///
/// ```no_run
/// use std::sync::Arc;
/// use rtsp_toolkit_core::client::BackchannelAudio;
/// use rtsp_toolkit_media::audio::FfmpegAacEncoderFactory;
///
/// let audio = BackchannelAudio::new().with_aac_encoder(Arc::new(FfmpegAacEncoderFactory));
/// # drop(audio);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FfmpegAacEncoderFactory;

impl AacEncoderFactory for FfmpegAacEncoderFactory {
    fn new_encoder(&self, config: &AacEncoderConfig) -> Result<Box<dyn AacEncoder>, AacEncodeError> {
        Ok(Box::new(FfmpegAacEncoder::new(config)?))
    }
}

/// One AAC-LC stream's encoder: 16-bit PCM in, raw AAC-LC access units of
/// 1024 samples out (no ADTS header), FFmpeg's native `aac` encoder.
///
/// The encoder delays the audio by one frame (1024 samples of priming that
/// a decoder gives back as near silence before the first sample), and the
/// last frame is padded with silence: the decoded audio is the sent audio
/// 1024 samples later, followed by up to one frame of silence.
pub struct FfmpegAacEncoder {
    encoder: ff::codec::encoder::audio::Encoder,
    frame: ff::frame::Audio,
    packet: ff::Packet,
    channels: usize,
    frame_size: usize,
    /// Interleaved samples waiting for a whole frame.
    pending: Vec<i16>,
    /// Presentation time of the next frame, in samples.
    pts: i64,
    finished: bool,
}

impl std::fmt::Debug for FfmpegAacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegAacEncoder")
            .field("channels", &self.channels)
            .field("frame_size", &self.frame_size)
            .field("pending", &self.pending.len())
            .field("pts", &self.pts)
            .finish_non_exhaustive()
    }
}

fn ff_error(what: &str) -> impl Fn(ff::Error) -> AacEncodeError + '_ {
    move |e| AacEncodeError(format!("{what}: {e}"))
}

impl FfmpegAacEncoder {
    /// An encoder producing `config`'s format (AAC-LC, its rate, mono or
    /// stereo, 1024-sample frames) at 48 kbit/s per channel, or the most
    /// AAC carries at a low rate (6 bits per sample).
    ///
    /// # Errors
    ///
    /// Another channel count or frame length, or FFmpeg without its `aac`
    /// encoder or refusing the rate.
    pub fn new(config: &AacEncoderConfig) -> Result<Self, AacEncodeError> {
        let layout = match config.channels {
            1 => ff::ChannelLayout::MONO,
            2 => ff::ChannelLayout::STEREO,
            n => return Err(AacEncodeError(format!("{n} channels: only mono or stereo"))),
        };
        if config.frame_length != 1024 || config.sample_rate == 0 || config.sample_rate > 96_000 {
            return Err(AacEncodeError(format!(
                "{}-sample frames at {} Hz: only 1024-sample frames up to 96 kHz",
                config.frame_length, config.sample_rate
            )));
        }
        let _ = ff::init();
        let codec = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| AacEncodeError("this FFmpeg build has no AAC encoder".into()))?;
        let mut encoder = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(ff_error("an AAC encoder"))?;
        let format = ff::format::Sample::F32(ff::format::sample::Type::Planar);
        encoder.set_rate(config.sample_rate as i32);
        encoder.set_channel_layout(layout);
        encoder.set_format(format);
        // 48 kbit/s per channel, within what AAC carries at the rate (6144
        // bits per channel per 1024-sample frame).
        let per_channel = 48_000.min(6 * config.sample_rate as usize);
        encoder.set_bit_rate(per_channel * usize::from(config.channels));
        encoder.set_time_base((1, config.sample_rate as i32));
        let encoder = encoder.open_as(codec).map_err(ff_error("opening the AAC encoder"))?;
        let frame_size = encoder.frame_size() as usize;
        if frame_size != 1024 {
            return Err(AacEncodeError(format!(
                "FFmpeg's AAC frames are {frame_size} samples, not 1024"
            )));
        }
        let channels = usize::from(config.channels);
        let mut frame = ff::frame::Audio::new(format, frame_size, layout);
        frame.set_rate(config.sample_rate);
        if frame.planes() != channels {
            return Err(AacEncodeError(format!(
                "FFmpeg made an audio frame of {} planes for {channels} channels",
                frame.planes()
            )));
        }
        Ok(FfmpegAacEncoder {
            encoder,
            frame,
            packet: ff::Packet::empty(),
            channels,
            frame_size,
            pending: Vec::with_capacity(frame_size * channels),
            pts: 0,
            finished: false,
        })
    }

    /// Sends the pending samples (a whole frame, or the last one padded
    /// with silence) to the encoder and collects what it gives back.
    fn send_frame(&mut self, out: &mut Vec<Bytes>) -> Result<(), AacEncodeError> {
        self.pending.resize(self.frame_size * self.channels, 0);
        for c in 0..self.channels {
            let plane = self.frame.plane_mut::<f32>(c);
            for (dst, src) in plane.iter_mut().zip(self.pending.iter().skip(c).step_by(self.channels)) {
                *dst = f32::from(*src) / 32768.0;
            }
        }
        self.pending.clear();
        self.frame.set_pts(Some(self.pts));
        self.pts += self.frame_size as i64;
        self.encoder
            .send_frame(&self.frame)
            .map_err(ff_error("encoding a frame"))?;
        self.receive(out)
    }

    fn receive(&mut self, out: &mut Vec<Bytes>) -> Result<(), AacEncodeError> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    if let Some(data) = self.packet.data().filter(|d| !d.is_empty()) {
                        out.push(Bytes::copy_from_slice(data));
                    }
                }
                Err(ff::Error::Other {
                    errno: ff::util::error::EAGAIN,
                })
                | Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(ff_error("an access unit")(e)),
            }
        }
    }
}

impl AacEncoder for FfmpegAacEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), AacEncodeError> {
        if self.finished {
            return Err(AacEncodeError("audio after the end".into()));
        }
        let whole = self.frame_size * self.channels;
        let mut rest = pcm;
        while !rest.is_empty() {
            let n = (whole - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.pending.len() == whole {
                self.send_frame(out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), AacEncodeError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if !self.pending.is_empty() {
            self.send_frame(out)?;
        }
        self.encoder.send_eof().map_err(ff_error("ending the stream"))?;
        self.receive(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioDecoder;
    use rtsp_toolkit_core::codec::{AudioCodec, AudioFrame};

    /// `config` as the core derives it from a server's section.
    fn config(rate: u32, channels: u16) -> AacEncoderConfig {
        let media = rtsp_toolkit_core::client::BackchannelCodec::Aac.offered_media("x");
        let mut c = rtsp_toolkit_core::client::backchannel::aac_config(&media).unwrap();
        c.sample_rate = rate;
        c.channels = channels;
        c
    }

    #[test]
    fn a_tone_comes_back_through_symphonia_one_frame_late() {
        // 1 s of a 440 Hz tone at 16 kHz, mono, fed in uneven pieces.
        let tone: Vec<i16> = (0..16_000)
            .map(|i| ((f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 16_000.0).sin() * 10_000.0) as i16)
            .collect();
        let c = config(16_000, 1);
        let mut e = FfmpegAacEncoderFactory.new_encoder(&c).unwrap();
        let mut aus = Vec::new();
        for piece in tone.chunks(333) {
            e.encode(piece, &mut aus).unwrap();
        }
        e.finish(&mut aus).unwrap();
        assert!(e.encode(&[0], &mut aus).is_err(), "nothing after the end");
        // 16 frames of audio (the last padded) and the encoder's one of delay.
        assert_eq!(aus.len(), 17);
        let mut d = AudioDecoder::new(AudioCodec::Aac, Some(&c.audio_specific_config), 16_000, 1, None).unwrap();
        let mut back = Vec::new();
        for (k, au) in aus.iter().enumerate() {
            let frame = AudioFrame {
                codec: AudioCodec::Aac,
                timestamp: 1024 * k as u32,
                data: au.clone(),
                sample_count: 1024,
                sample_rate: 16_000,
                channels: 1,
                loss: 0,
            };
            for pcm in d.feed(&frame).unwrap() {
                back.extend(pcm.samples);
            }
        }
        assert_eq!(back.len(), 17 * 1024);
        // Aligned by the encoder's delay, the tone is there: small error.
        let sent = &tone[1000..15_000];
        let got = &back[1024 + 1000..1024 + 15_000];
        let err: f64 = sent
            .iter()
            .zip(got)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let energy: f64 = sent.iter().map(|&a| f64::from(a).powi(2)).sum();
        assert!(err / energy < 0.01, "relative error {}", err / energy);
    }

    #[test]
    fn stereo_and_bad_configs() {
        let mut e = FfmpegAacEncoder::new(&config(48_000, 2)).unwrap();
        let mut aus = Vec::new();
        e.encode(&vec![1000i16; 2 * 4096], &mut aus).unwrap();
        e.finish(&mut aus).unwrap();
        assert_eq!(aus.len(), 5);
        assert!(FfmpegAacEncoder::new(&config(16_000, 3)).is_err());
        assert!(FfmpegAacEncoder::new(&config(0, 1)).is_err());
    }
}
