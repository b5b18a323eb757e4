//! WAV files, re-encoded for RTSP as G.711 A-law, 8 kHz mono (by default),
//! as L16 at the file's rate and channels, or as G.722 16 kHz mono (see
//! [`WavEncoding`]).
//!
//! Reads a RIFF/WAVE file's `fmt ` and `data` chunks (PCM 8-bit unsigned,
//! 16/24/32-bit signed, 32/64-bit float; also as WAVE_FORMAT_EXTENSIBLE),
//! any sample rate from 1 kHz to 768 kHz and any channel count. For PCMA,
//! channels are averaged to mono, resampled to 8 kHz by [`resample_to_8k`],
//! encoded with [`linear_to_alaw`] and cut into 160-byte samples (20 ms; the
//! last is padded with A-law silence). For G.722 they are averaged to mono,
//! resampled to 16 kHz by [`resample`], encoded with the core's
//! [`g722::Encoder`] and cut into 160-byte samples (20 ms at the 8000 Hz RTP
//! clock; the last may be shorter). For L16 every channel is kept at the
//! file's rate, each sample rounded to 16 bits (big-endian), in samples of
//! 20 ms (the last may be shorter); at most [`MAX_L16_CHANNELS`] channels. A `data` chunk that claims more bytes than the file
//! has (a truncated or still-growing file) is read as far as it goes. Not
//! supported: compressed WAV formats (ADPCM, μ-law, ...), RF64.
//!
//! Unlike the other demuxers the samples are not views of the file: they are
//! views of one buffer holding the encoded stream (A-law: one byte per 8 kHz
//! sample, about 1/11 of a 44.1 kHz 16-bit stereo file; G.722: twice that;
//! L16: as large as a 16-bit file).

use bytes::Bytes;
use rtsp_toolkit_core::codec::g711::linear_to_alaw;
use rtsp_toolkit_core::codec::g722;
use rtsp_toolkit_core::source::{SourceCodec, SourceTrack};

use crate::reader::Reader;
use crate::timeline::{Timed, TrackOut};
use crate::{malformed, MediaError, WavEncoding};

/// Output rate (Hz).
pub(crate) const RATE: u32 = 8000;
/// Bytes (= 8 kHz samples) per source sample: 20 ms.
pub(crate) const SAMPLE_BYTES: usize = 160;
/// A-law code of silence.
const ALAW_SILENCE: u8 = 0xD5;
const MIN_RATE: u32 = 1000;
/// Most channels an L16 track keeps.
pub(crate) const MAX_L16_CHANNELS: usize = 8;
const MAX_RATE: u32 = 768_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Int,
    Float,
}

#[derive(Debug, Clone, Copy)]
struct Format {
    encoding: Encoding,
    channels: usize,
    rate: u32,
    /// Bytes per sample of one channel.
    width: usize,
    /// Bytes per frame (all channels).
    block_align: usize,
}

fn unsupported(why: String) -> MediaError {
    tracing::info!("skipping WAV audio: {why}");
    MediaError::NoSupportedTrack {
        skipped: vec![format!("WAV audio: {why}")],
    }
}

fn parse_fmt(body: &[u8]) -> Result<Format, MediaError> {
    let bad = || malformed("truncated 'fmt ' chunk");
    let mut r = Reader::new(body);
    let mut tag = r.u16_le().ok_or_else(bad)?;
    let channels = usize::from(r.u16_le().ok_or_else(bad)?);
    let rate = r.u32_le().ok_or_else(bad)?;
    let _byte_rate = r.u32_le().ok_or_else(bad)?;
    let block_align = usize::from(r.u16_le().ok_or_else(bad)?);
    let bits = r.u16_le().ok_or_else(bad)?;
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, sub-format GUID.
        r.skip(8).ok_or_else(bad)?;
        tag = r.u16_le().ok_or_else(bad)?;
    }
    let encoding = match (tag, bits) {
        (1, 8 | 16 | 24 | 32) => Encoding::Int,
        (3, 32 | 64) => Encoding::Float,
        _ => {
            return Err(unsupported(format!(
                "format tag {tag:#06x} with {bits} bits per sample"
            )))
        }
    };
    let width = usize::from(bits / 8);
    if channels == 0 {
        return Err(malformed("WAV with 0 channels"));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(unsupported(format!(
            "sample rate {rate} Hz (supported: {MIN_RATE}..={MAX_RATE})"
        )));
    }
    if block_align < channels * width {
        return Err(malformed(format!(
            "block align {block_align} is less than {channels} channels × {width} bytes"
        )));
    }
    Ok(Format {
        encoding,
        channels,
        rate,
        width,
        block_align,
    })
}

/// One channel sample as a float in [-1, 1].
fn decode(bytes: &[u8], format: &Format) -> f64 {
    match (format.encoding, bytes) {
        (Encoding::Int, [b]) => (f64::from(*b) - 128.0) / 128.0,
        (Encoding::Int, [a, b]) => f64::from(i16::from_le_bytes([*a, *b])) / 32768.0,
        (Encoding::Int, [a, b, c]) => f64::from(i32::from_le_bytes([0, *a, *b, *c]) >> 8) / 8_388_608.0,
        (Encoding::Int, [a, b, c, d]) => f64::from(i32::from_le_bytes([*a, *b, *c, *d])) / 2_147_483_648.0,
        (Encoding::Float, [a, b, c, d]) => f64::from(f32::from_le_bytes([*a, *b, *c, *d])),
        (Encoding::Float, b) => b.try_into().map(f64::from_le_bytes).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// One channel sample as a 16-bit value, rounded and clamped.
fn to_i16(v: f64) -> i16 {
    if v.is_finite() {
        (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
    } else {
        0
    }
}

/// Samples of `chunk` bytes each (the last may be shorter), `ticks` RTP
/// ticks apart, as views of `encoded`.
fn cut(encoded: Bytes, chunk: usize, ticks: i64) -> Vec<Timed> {
    let chunk = chunk.max(1);
    (0..encoded.len().div_ceil(chunk))
        .map(|i| {
            let end = ((i + 1) * chunk).min(encoded.len());
            let duration = ticks * (end - i * chunk) as i64 / chunk as i64;
            Timed {
                dts: i as i64 * ticks,
                pts: i as i64 * ticks,
                duration,
                keyframe: true,
                data: encoded.slice(i * chunk..end),
            }
        })
        .collect()
}

/// Demuxes (re-encodes) a WAV file held in `data`.
pub(crate) fn demux(data: &Bytes, encoding: WavEncoding) -> Result<(Vec<TrackOut>, Vec<String>), MediaError> {
    let mut r = Reader::new(data);
    if r.take(4) != Some(b"RIFF") || r.skip(4).is_none() || r.take(4) != Some(b"WAVE") {
        return Err(malformed("not a RIFF/WAVE file"));
    }
    let mut format = None;
    let mut pcm: Option<&[u8]> = None;
    while r.remaining() >= 8 {
        let id = r.take(4).ok_or_else(|| malformed("truncated chunk header"))?;
        let size = r.u32_le().ok_or_else(|| malformed("truncated chunk header"))? as usize;
        if id == b"data" {
            // May claim more than there is: take what there is.
            pcm = Some(r.take(size.min(r.remaining())).unwrap_or_default());
            break;
        }
        let body = r
            .take(size)
            .ok_or_else(|| malformed("chunk runs past the end of the file"))?;
        if id == b"fmt " {
            format = Some(parse_fmt(body)?);
        }
        if size % 2 == 1 {
            let _ = r.skip(1); // padding byte
        }
    }
    let format = format.ok_or_else(|| malformed("no 'fmt ' chunk before 'data'"))?;
    let pcm = pcm.ok_or_else(|| malformed("no 'data' chunk"))?;

    if encoding == WavEncoding::L16 {
        if format.channels > MAX_L16_CHANNELS {
            return Err(unsupported(format!(
                "{} channels as L16 (at most {MAX_L16_CHANNELS})",
                format.channels
            )));
        }
        let be: Vec<u8> = pcm
            .chunks_exact(format.block_align)
            .flat_map(|frame| {
                frame[..format.channels * format.width]
                    .chunks_exact(format.width)
                    .flat_map(|s| to_i16(decode(s, &format)).to_be_bytes())
            })
            .collect();
        // 20 ms of sample frames per sample.
        let frames = (format.rate / 50).max(1) as usize;
        let samples = cut(Bytes::from(be), frames * 2 * format.channels, frames as i64);
        return Ok((
            vec![TrackOut {
                track: SourceTrack {
                    codec: SourceCodec::L16 {
                        channels: format.channels as u16,
                    },
                    clock_rate: format.rate,
                },
                name: "WAV audio".into(),
                samples,
            }],
            Vec::new(),
        ));
    }

    let mono: Vec<f32> = pcm
        .chunks_exact(format.block_align)
        .map(|frame| {
            let sum: f64 = frame[..format.channels * format.width]
                .chunks_exact(format.width)
                .map(|s| decode(s, &format))
                .sum();
            let v = sum / format.channels as f64;
            if v.is_finite() {
                v as f32
            } else {
                0.0
            }
        })
        .collect();
    if encoding == WavEncoding::G722 {
        let pcm16: Vec<i16> = resample(&mono, format.rate, g722::SAMPLE_RATE)
            .iter()
            .map(|&v| to_i16(f64::from(v)))
            .collect();
        let mut codes = Vec::with_capacity(pcm16.len() / 2 + 1);
        let mut encoder = g722::Encoder::new();
        encoder.encode(&pcm16, &mut codes);
        if pcm16.len() % 2 == 1 {
            encoder.encode(&[0], &mut codes); // the odd last sample, paired with silence
        }
        let samples = cut(Bytes::from(codes), SAMPLE_BYTES, SAMPLE_BYTES as i64);
        return Ok((
            vec![TrackOut {
                track: SourceTrack {
                    codec: SourceCodec::G722,
                    clock_rate: g722::CLOCK_RATE,
                },
                name: "WAV audio".into(),
                samples,
            }],
            Vec::new(),
        ));
    }

    let resampled = resample_to_8k(&mono, format.rate);
    let mut alaw: Vec<u8> = resampled
        .iter()
        .map(|&v| linear_to_alaw((f64::from(v) * 32768.0).round().clamp(-32768.0, 32767.0) as i16))
        .collect();
    let padded = alaw.len().div_ceil(SAMPLE_BYTES) * SAMPLE_BYTES;
    alaw.resize(padded, ALAW_SILENCE);
    let alaw = Bytes::from(alaw);

    let samples = (0..alaw.len() / SAMPLE_BYTES)
        .map(|i| Timed {
            dts: (i * SAMPLE_BYTES) as i64,
            pts: (i * SAMPLE_BYTES) as i64,
            duration: SAMPLE_BYTES as i64,
            keyframe: true,
            data: alaw.slice(i * SAMPLE_BYTES..(i + 1) * SAMPLE_BYTES),
        })
        .collect();
    Ok((
        vec![TrackOut {
            track: SourceTrack {
                codec: SourceCodec::Pcma,
                clock_rate: RATE,
            },
            name: "WAV audio".into(),
            samples,
        }],
        Vec::new(),
    ))
}

/// Zero crossings of the windowed sinc on each side of its centre.
const ZERO_CROSSINGS: usize = 8;
/// Kernel table entries per zero crossing (linearly interpolated).
const TABLE_RESOLUTION: usize = 256;
/// Low-pass cutoff as a fraction of the lower of the two Nyquist rates'
/// doubles (0.45 × 8000 = 3600 Hz when downsampling to 8 kHz).
const CUTOFF: f64 = 0.45;

/// Resamples mono audio at `rate` Hz to 8 kHz with a Blackman-windowed sinc
/// low-pass (cutoff 0.45 × the lower sample rate, i.e. 3.6 kHz for
/// downsampling; 8 zero crossings each side).
///
/// Quality is meant for telephony: flat to about 3 kHz, about -6 dB at
/// 3.6 kHz, and content above 4 kHz that would alias is attenuated by more
/// than 50 dB (checked in the tests). Each output sample is normalised by the
/// sum of its weights, so DC gain is exactly 1, including at the edges.
/// Output length is `ceil(len × 8000 / rate)`.
pub(crate) fn resample_to_8k(input: &[f32], rate: u32) -> Vec<f32> {
    resample(input, rate, RATE)
}

/// [`resample_to_8k`] to any output rate `out_rate` (the cutoff is 0.45 ×
/// the lower of the two rates; output length `ceil(len × out_rate / rate)`).
pub(crate) fn resample(input: &[f32], rate: u32, out_rate: u32) -> Vec<f32> {
    if input.is_empty() || rate == 0 || out_rate == 0 {
        return Vec::new();
    }
    let out_len = (input.len() as u64 * u64::from(out_rate)).div_ceil(u64::from(rate));
    let Ok(out_len) = usize::try_from(out_len) else {
        return Vec::new();
    };
    if rate == out_rate {
        return input.to_vec();
    }
    // Cutoff in cycles per input sample, doubled: the sinc's zero crossings
    // are 1 / (2 fc) input samples apart.
    let two_fc = 2.0 * CUTOFF * f64::from(rate.min(out_rate)) / f64::from(rate);
    let half_width = ZERO_CROSSINGS as f64 / two_fc;
    let table: Vec<f64> = (0..=ZERO_CROSSINGS * TABLE_RESOLUTION + 1)
        .map(|i| {
            let z = i as f64 / TABLE_RESOLUTION as f64; // in zero crossings
            let u = (z / ZERO_CROSSINGS as f64).min(1.0);
            let sinc = if z == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * z).sin() / (std::f64::consts::PI * z)
            };
            let window = 0.42 + 0.5 * (std::f64::consts::PI * u).cos() + 0.08 * (2.0 * std::f64::consts::PI * u).cos();
            sinc * window
        })
        .collect();
    let kernel = |x: f64| -> f64 {
        let z = x.abs() * two_fc * TABLE_RESOLUTION as f64;
        let i = z as usize;
        if i + 1 >= table.len() {
            return 0.0;
        }
        let f = z - i as f64;
        table[i] * (1.0 - f) + table[i + 1] * f
    };
    let last = input.len() as i64 - 1;
    (0..out_len as u64)
        .map(|n| {
            // Exact position n × rate / out_rate in input samples.
            let num = n * u64::from(rate);
            let t = (num / u64::from(out_rate)) as f64 + (num % u64::from(out_rate)) as f64 / f64::from(out_rate);
            let lo = ((t - half_width).ceil() as i64).max(0);
            let hi = ((t + half_width).floor() as i64).min(last);
            let (mut acc, mut weights) = (0.0f64, 0.0f64);
            for k in lo..=hi {
                let w = kernel(k as f64 - t);
                acc += w * f64::from(input[k as usize]);
                weights += w;
            }
            if weights.abs() > 1e-9 {
                (acc / weights) as f32
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn passes_1khz_and_rejects_aliases() {
        for rate in [11025, 16000, 44100, 48000] {
            let out = resample_to_8k(&tone(1000.0, rate, 0.5), rate);
            assert_eq!(out.len(), 4000);
            let middle = &out[200..3800];
            let gain = rms(middle) / (0.5 / 2f64.sqrt());
            assert!((0.97..1.03).contains(&gain), "{rate}: 1 kHz gain {gain}");
            // 6 kHz would alias to 2 kHz without the low-pass.
            if rate > 12000 {
                let out = resample_to_8k(&tone(6000.0, rate, 0.5), rate);
                let level = 20.0 * (rms(&out[200..3800]) / (0.5 / 2f64.sqrt())).log10();
                assert!(level < -50.0, "{rate}: 6 kHz alias at {level:.1} dB");
            }
        }
    }

    #[test]
    fn upsamples() {
        let out = resample_to_8k(&tone(500.0, 4000, 0.5), 4000);
        assert_eq!(out.len(), 4000);
        let gain = rms(&out[200..3800]) / (0.5 / 2f64.sqrt());
        assert!((0.97..1.03).contains(&gain), "gain {gain}");
    }

    /// A 16-bit PCM WAV file of `samples` (interleaved).
    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Bytes {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut f = Vec::new();
        f.extend_from_slice(b"RIFF");
        f.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        f.extend_from_slice(b"WAVEfmt ");
        f.extend_from_slice(&16u32.to_le_bytes());
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        f.extend_from_slice(&(2 * channels).to_le_bytes());
        f.extend_from_slice(&16u16.to_le_bytes());
        f.extend_from_slice(b"data");
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&data);
        Bytes::from(f)
    }

    #[test]
    fn l16_keeps_rate_channels_and_samples() {
        let pcm: Vec<i16> = (0..2205 * 2).map(|i| (i * 7 - 15000) as i16).collect();
        let (tracks, _) = demux(&wav(22050, 2, &pcm), WavEncoding::L16).unwrap();
        let t = &tracks[0];
        assert_eq!(
            (t.track.codec.clone(), t.track.clock_rate),
            (SourceCodec::L16 { channels: 2 }, 22050)
        );
        // 20 ms samples (441 frames of 4 bytes), the last shorter.
        let lens: Vec<usize> = t.samples.iter().map(|s| s.data.len()).collect();
        assert_eq!(lens, [1764, 1764, 1764, 1764, 1764]);
        assert_eq!(
            t.samples.iter().map(|s| s.pts).collect::<Vec<_>>(),
            [0, 441, 882, 1323, 1764]
        );
        let mut back = Vec::new();
        for s in &t.samples {
            rtsp_toolkit_core::codec::l16::to_native(&s.data, &mut back);
        }
        assert_eq!(back, pcm);
        let short = demux(&wav(8000, 1, &[1, 2, 3]), WavEncoding::L16).unwrap().0;
        assert_eq!((short[0].samples.len(), short[0].samples[0].duration), (1, 3));
        assert!(demux(&wav(8000, 9, &[0; 9]), WavEncoding::L16).is_err());
    }

    #[test]
    fn g722_is_16k_mono_on_the_8k_clock() {
        // 0.5 s of a 1 kHz stereo tone at 44.1 kHz.
        let pcm: Vec<i16> = (0..22050)
            .flat_map(|i| {
                let v = ((std::f64::consts::TAU * 1000.0 * f64::from(i) / 44100.0).sin() * 10000.0) as i16;
                [v, v]
            })
            .collect();
        let (tracks, _) = demux(&wav(44100, 2, &pcm), WavEncoding::G722).unwrap();
        let t = &tracks[0];
        assert_eq!((t.track.codec.clone(), t.track.clock_rate), (SourceCodec::G722, 8000));
        let bytes: usize = t.samples.iter().map(|s| s.data.len()).sum();
        assert_eq!(bytes, 4000, "8000 16 kHz samples, one byte per two");
        assert!(t.samples.iter().all(|s| s.data.len() == 160 && s.duration == 160));
        let mut out = Vec::new();
        let mut dec = g722::Decoder::new();
        for s in &t.samples {
            dec.decode(&s.data, &mut out);
        }
        let rms = (out[1000..7000]
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / 6000.0)
            .sqrt();
        assert!((6500.0..7600.0).contains(&rms), "decoded tone RMS {rms}");
    }

    #[test]
    fn dc_is_preserved() {
        let out = resample_to_8k(&[0.25; 1000], 44100);
        assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-5));
    }
}
