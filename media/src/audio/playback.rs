//! Live playback of decoded audio on the default output device (cargo feature `playback`).
//!
//! What it is: a [`Player`] that takes [`PcmFrame`]s as they are decoded, converts them to the
//! device's rate and channel layout, and queues them for the device's callback. What it is not:
//! a jitter buffer with clock recovery; the queue is bounded (one second) and, when the stream
//! runs faster than the device, the oldest audio is dropped to keep latency bounded; when it
//! runs slower, the device plays silence until more arrives.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};

use super::{PcmFrame, ResampleError, Resampler};

/// Why playback could not start or continue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaybackError {
    /// The system has no default output device.
    #[error("no default audio output device")]
    NoDevice,
    /// The device refused a configuration or a stream (cpal's message).
    #[error("audio output device: {0}")]
    Device(String),
    /// The device wants a sample format the player cannot write.
    #[error("the output device's sample format {0:?} is not supported")]
    UnsupportedFormat(String),
    /// The audio cannot be resampled to the device's rate.
    #[error("cannot convert to the output device's rate: {0}")]
    Resample(#[from] ResampleError),
}

fn device_error(e: impl fmt::Display) -> PlaybackError {
    PlaybackError::Device(e.to_string())
}

/// What the device callback and the feeding side share.
#[derive(Debug, Default)]
struct Queue {
    /// Interleaved samples at the device's rate and channel count.
    samples: VecDeque<f32>,
    /// Device callbacks that found the queue short after the first frame arrived.
    underruns: u64,
    /// Whether any frame was queued yet (silence before that is no underrun).
    started: bool,
}

/// Plays [`PcmFrame`]s on the default output device.
///
/// Holds the device stream: playback stops when the player is dropped. The stream handle is not
/// `Send` on every platform, so keep the player on the thread that made it.
///
/// ```no_run
/// # fn frames() -> Vec<rtsp_toolkit_media::audio::PcmFrame> { Vec::new() }
/// let mut player = rtsp_toolkit_media::audio::Player::open_default()?;
/// for frame in frames() {
///     player.play(&frame)?;
/// }
/// # Ok::<(), rtsp_toolkit_media::audio::PlaybackError>(())
/// ```
pub struct Player {
    _stream: cpal::Stream,
    queue: Arc<Mutex<Queue>>,
    device_rate: u32,
    device_channels: u16,
    /// Converts the current source format to the device rate; rebuilt when the format changes.
    resampler: Option<Resampler>,
    source: Option<(u32, u16)>,
    /// Most samples (interleaved) kept queued.
    max_queued: usize,
    scratch: Vec<f32>,
    resampled: Vec<f32>,
}

impl fmt::Debug for Player {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Player")
            .field("device_rate", &self.device_rate)
            .field("device_channels", &self.device_channels)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Player {
    /// Opens the default output device in its default configuration and starts playing
    /// (silence until frames arrive).
    ///
    /// # Errors
    ///
    /// No device, a device that refuses its own default configuration, or an exotic sample
    /// format.
    pub fn open_default() -> Result<Self, PlaybackError> {
        let host = cpal::default_host();
        let device = host.default_output_device().ok_or(PlaybackError::NoDevice)?;
        let supported = device.default_output_config().map_err(device_error)?;
        let config: StreamConfig = supported.config();
        let queue = Arc::new(Mutex::new(Queue::default()));
        let stream = match supported.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, config, &queue)?,
            SampleFormat::F64 => build::<f64>(&device, config, &queue)?,
            SampleFormat::I16 => build::<i16>(&device, config, &queue)?,
            SampleFormat::I32 => build::<i32>(&device, config, &queue)?,
            SampleFormat::U16 => build::<u16>(&device, config, &queue)?,
            SampleFormat::I8 => build::<i8>(&device, config, &queue)?,
            SampleFormat::U8 => build::<u8>(&device, config, &queue)?,
            other => return Err(PlaybackError::UnsupportedFormat(format!("{other:?}"))),
        };
        stream.play().map_err(device_error)?;
        let device_channels = config.channels.max(1);
        Ok(Player {
            _stream: stream,
            queue,
            device_rate: config.sample_rate,
            device_channels,
            resampler: None,
            source: None,
            max_queued: config.sample_rate as usize * usize::from(device_channels),
            scratch: Vec::new(),
            resampled: Vec::new(),
        })
    }

    /// The device's sample rate in Hz.
    pub fn device_sample_rate(&self) -> u32 {
        self.device_rate
    }

    /// The device's channel count.
    pub fn device_channels(&self) -> u16 {
        self.device_channels
    }

    /// How much audio is queued for the device.
    pub fn queued(&self) -> Duration {
        let samples = self.lock().samples.len() / usize::from(self.device_channels);
        Duration::from_secs_f64(samples as f64 / f64::from(self.device_rate))
    }

    /// Device callbacks so far that ran out of audio (and played silence).
    pub fn underruns(&self) -> u64 {
        self.lock().underruns
    }

    /// Queues a frame. Mono is copied to every device channel, anything onto a mono device is
    /// averaged, otherwise channels map in order (extra device channels are silent).
    ///
    /// # Errors
    ///
    /// A frame rate the resampler cannot reach from the device rate.
    pub fn play(&mut self, frame: &PcmFrame) -> Result<(), PlaybackError> {
        let channels = frame.channels.max(1);
        if self.source != Some((frame.sample_rate, channels)) {
            self.resampler = if frame.sample_rate == self.device_rate {
                None
            } else {
                Some(Resampler::new(frame.sample_rate, self.device_rate, channels)?)
            };
            self.source = Some((frame.sample_rate, channels));
        }
        self.scratch.clear();
        self.scratch
            .extend(frame.samples.iter().map(|&s| f32::from(s) / 32768.0));
        let source = match &mut self.resampler {
            Some(r) => {
                self.resampled.clear();
                r.process(&self.scratch, &mut self.resampled);
                &self.resampled
            }
            None => &self.scratch,
        };
        let (src, dst) = (usize::from(channels), usize::from(self.device_channels));
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.started = true;
        for s in source.chunks_exact(src) {
            for c in 0..dst {
                queue.samples.push_back(if src == 1 {
                    s[0]
                } else if dst == 1 {
                    s.iter().sum::<f32>() / src as f32
                } else {
                    s.get(c).copied().unwrap_or(0.0)
                });
            }
        }
        let excess = queue.samples.len().saturating_sub(self.max_queued);
        if excess > 0 {
            // Whole sample frames only, so channels stay in place.
            let excess = (excess.div_ceil(dst) * dst).min(queue.samples.len());
            queue.samples.drain(..excess);
            tracing::debug!(dropped = excess / dst, "playback queue full; dropped the oldest audio");
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn build<T>(
    device: &cpal::Device,
    config: StreamConfig,
    queue: &Arc<Mutex<Queue>>,
) -> Result<cpal::Stream, PlaybackError>
where
    T: SizedSample + FromSample<f32>,
{
    let queue = Arc::clone(queue);
    device
        .build_output_stream::<T, _, _>(
            config,
            move |out: &mut [T], _| {
                let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
                if q.started && q.samples.len() < out.len() {
                    q.underruns += 1;
                }
                for o in out.iter_mut() {
                    *o = T::from_sample(q.samples.pop_front().unwrap_or(0.0));
                }
            },
            |e| tracing::warn!(error = %e, "audio output stream error"),
            None,
        )
        .map_err(device_error)
}
