use std::io::{Cursor, Read, Seek, SeekFrom};

use bytes::Bytes;
use rtsp_toolkit_core::sdp::Sdp;

use super::*;
use rtsp_toolkit_core::codec::g722;

const TONE_AAC: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/media/tone.aac"));

/// The raw access units of an ADTS stream (headers, and CRCs when present, removed).
fn adts_access_units(mut data: &[u8]) -> Vec<Bytes> {
    let mut units = Vec::new();
    while data.len() >= 7 {
        assert_eq!((data[0], data[1] & 0xF6), (0xFF, 0xF0), "ADTS sync");
        let protection_absent = data[1] & 1 == 1;
        let header = if protection_absent { 7 } else { 9 };
        let len = (usize::from(data[3] & 3) << 11) | (usize::from(data[4]) << 3) | usize::from(data[5] >> 5);
        assert!(len > header && len <= data.len(), "ADTS frame length");
        units.push(Bytes::copy_from_slice(&data[header..len]));
        data = &data[len..];
    }
    assert!(data.is_empty());
    units
}

fn aac_frame(timestamp: u32, data: Bytes) -> AudioFrame {
    AudioFrame {
        codec: AudioCodec::Aac,
        timestamp,
        data,
        sample_count: 1024,
        sample_rate: 44100,
        channels: 2,
        loss: 0,
    }
}

fn g711_frame(codec: AudioCodec, timestamp: u32, data: Vec<u8>, channels: u16) -> AudioFrame {
    AudioFrame {
        codec,
        timestamp,
        sample_count: (data.len() / usize::from(channels)) as u32,
        data: Bytes::from(data),
        sample_rate: 8000,
        channels,
        loss: 0,
    }
}

/// Feeds all of `tone.aac` and flushes.
fn decode_tone(output_sample_rate: Option<u32>) -> (AudioDecoder, Vec<PcmFrame>) {
    let mut decoder = AudioDecoder::new(AudioCodec::Aac, Some(&[0x12, 0x10]), 0, 0, output_sample_rate).unwrap();
    let mut out = Vec::new();
    for (i, au) in adts_access_units(TONE_AAC).into_iter().enumerate() {
        out.extend(decoder.feed(&aac_frame(i as u32 * 1024, au)).unwrap());
    }
    out.extend(decoder.flush());
    (decoder, out)
}

/// One channel of interleaved frames, concatenated.
fn channel(frames: &[PcmFrame], c: usize) -> Vec<i16> {
    frames
        .iter()
        .flat_map(|f| f.samples.iter().skip(c).step_by(usize::from(f.channels)).copied())
        .collect()
}

/// Sign changes per second.
fn zero_crossing_rate(samples: &[i16], sample_rate: u32) -> f64 {
    let crossings = samples.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 * f64::from(sample_rate) / samples.len() as f64
}

fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len() as f64).sqrt()
}

fn sine(freq: f64, rate: u32, n: usize, amplitude: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
        .collect()
}

#[test]
fn g711_known_codes() {
    // ITU-T G.711 end points and smallest steps, in 16-bit linear.
    let alaw = [(0xD5u8, 8i16), (0x55, -8), (0xAA, 32256), (0x2A, -32256)];
    let ulaw = [
        (0xFFu8, 0i16),
        (0x7F, 0),
        (0x80, 32124),
        (0x00, -32124),
        (0xFE, 8),
        (0x7E, -8),
    ];
    for (codec, table) in [(AudioCodec::Pcma, &alaw[..]), (AudioCodec::Pcmu, &ulaw[..])] {
        let mut d = AudioDecoder::new(codec, None, 8000, 1, None).unwrap();
        let codes: Vec<u8> = table.iter().map(|t| t.0).collect();
        let out = d.feed(&g711_frame(codec, 1234, codes, 1)).unwrap();
        assert_eq!(out.len(), 1);
        let expected: Vec<i16> = table.iter().map(|t| t.1).collect();
        assert_eq!(out[0].samples, expected, "{codec:?}");
        assert_eq!((out[0].timestamp, out[0].sample_rate, out[0].channels), (1234, 8000, 1));
        assert!(d.flush().is_empty());
    }
}

#[test]
fn g711_stereo_and_bad_length() {
    let mut d = AudioDecoder::new(AudioCodec::Pcma, None, 8000, 2, None).unwrap();
    let out = d
        .feed(&g711_frame(AudioCodec::Pcma, 0, vec![0xD5, 0x55, 0xAA, 0x2A], 2))
        .unwrap();
    assert_eq!(out[0].samples, [8, -8, 32256, -32256]);
    assert_eq!(out[0].sample_count(), 2);
    let err = d
        .feed(&g711_frame(AudioCodec::Pcma, 160, vec![0xD5; 3], 1))
        .unwrap_err();
    assert_eq!(
        err,
        AudioDecodeError::G711Length {
            timestamp: 160,
            len: 3,
            channels: 2
        }
    );
    assert!(err.to_string().contains("not whole 2-channel samples"), "{err}");
}

#[test]
fn codec_mismatch_is_an_error() {
    let mut d = AudioDecoder::new(AudioCodec::Pcmu, None, 8000, 1, None).unwrap();
    let err = d.feed(&g711_frame(AudioCodec::Pcma, 0, vec![0; 160], 1)).unwrap_err();
    assert!(matches!(err, AudioDecodeError::CodecMismatch { .. }), "{err}");
    // LATM and generic AAC frames are both raw access units: one decoder takes either.
    let mut d = AudioDecoder::new(AudioCodec::AacLatm, Some(&[0x12, 0x10]), 0, 0, None).unwrap();
    let au = adts_access_units(TONE_AAC).remove(5);
    assert_eq!(d.feed(&aac_frame(0, au)).unwrap().len(), 1);
}

#[test]
fn pcm_frame_bytes() {
    let f = PcmFrame {
        timestamp: 0,
        sample_rate: 8000,
        channels: 2,
        samples: vec![1, -2, 0x1234, -32768],
    };
    assert_eq!(f.pcm_bytes(), [1, 0, 0xFE, 0xFF, 0x34, 0x12, 0x00, 0x80]);
    assert_eq!(f.sample_count(), 2);
    assert_eq!(f.duration_secs(), 2.0 / 8000.0);
}

#[test]
fn aac_tone_decodes_to_440_hz() {
    let (decoder, frames) = decode_tone(None);
    assert_eq!((decoder.output_sample_rate(), decoder.output_channels()), (44100, 2));
    assert_eq!(frames.len(), 217);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.timestamp, f.sample_rate, f.channels), (i as u32 * 1024, 44100, 2));
        assert_eq!(f.sample_count(), 1024);
    }
    // Skip the encoder's priming (the first 1024 samples and the decoder's overlap).
    for c in 0..2 {
        let samples = channel(&frames, c);
        let steady = &samples[3 * 1024..];
        let zcr = zero_crossing_rate(steady, 44100);
        assert!((792.0..=968.0).contains(&zcr), "channel {c}: {zcr} crossings/s");
        let level = rms(&steady.iter().map(|&s| f32::from(s) / 32768.0).collect::<Vec<_>>());
        assert!(level > 0.01, "channel {c} is silent: rms {level}");
    }
}

#[test]
fn aac_tone_resampled_to_16k() {
    let (_, native) = decode_tone(None);
    let (decoder, frames) = decode_tone(Some(16_000));
    assert_eq!(
        (decoder.source_sample_rate(), decoder.output_sample_rate()),
        (44100, 16_000)
    );
    // One output frame per source frame, with the source timestamps.
    assert_eq!(frames.len(), 217);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.timestamp, f.sample_rate, f.channels), (i as u32 * 1024, 16_000, 2));
        assert!((371..=372).contains(&f.sample_count()), "{}", f.sample_count());
    }
    let in_secs: f64 = native.iter().map(PcmFrame::duration_secs).sum();
    let out_secs: f64 = frames.iter().map(PcmFrame::duration_secs).sum();
    assert!(
        (out_secs / in_secs - 1.0).abs() < 0.01,
        "{in_secs} s became {out_secs} s"
    );
    let total: usize = frames.iter().map(PcmFrame::sample_count).sum();
    assert_eq!(total, (217usize * 1024 * 16_000).div_ceil(44_100));
    let samples = channel(&frames, 0);
    let steady = &samples[2000..];
    let zcr = zero_crossing_rate(steady, 16_000);
    assert!((792.0..=968.0).contains(&zcr), "{zcr} crossings/s");
    // The tone keeps its level through the resampler (within 0.2 dB).
    let native_level = rms(&channel(&native, 0)[5000..]
        .iter()
        .map(|&s| f32::from(s))
        .collect::<Vec<_>>());
    let level = rms(&steady.iter().map(|&s| f32::from(s)).collect::<Vec<_>>());
    assert!((level / native_level - 1.0).abs() < 0.025, "{native_level} -> {level}");
}

#[test]
fn damaged_aac_frame_is_an_error_and_decoding_continues() {
    let units = adts_access_units(TONE_AAC);
    let mut d = AudioDecoder::new(AudioCodec::Aac, Some(&[0x12, 0x10]), 0, 0, None).unwrap();
    for (i, au) in units[..10].iter().enumerate() {
        d.feed(&aac_frame(i as u32 * 1024, au.clone())).unwrap();
    }
    // A channel pair element (id 1) followed by nonsense.
    let garbage = Bytes::from_static(&[0x21, 0xFF, 0xFF, 0xFF, 0x00, 0x13, 0x37, 0xFF, 0xFF]);
    let err = d.feed(&aac_frame(10 * 1024, garbage)).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Aac { timestamp: 10240, .. }), "{err:?}");
    assert!(err.to_string().starts_with("AAC frame at RTP timestamp 10240"), "{err}");
    let mut tail = Vec::new();
    for (i, au) in units.iter().enumerate().skip(11).take(20) {
        tail.extend(d.feed(&aac_frame(i as u32 * 1024, au.clone())).unwrap());
    }
    assert_eq!(tail.len(), 20);
    let samples = channel(&tail[2..], 0);
    let zcr = zero_crossing_rate(&samples, 44100);
    assert!((792.0..=968.0).contains(&zcr), "{zcr} crossings/s after the bad frame");
}

#[test]
fn random_aac_frames_never_panic() {
    // xorshift: deterministic garbage of assorted lengths, some starting like real elements.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let good = adts_access_units(TONE_AAC);
    let mut d = AudioDecoder::new(AudioCodec::Aac, Some(&[0x12, 0x10]), 0, 0, Some(16_000)).unwrap();
    for i in 0..3000u32 {
        let data: Vec<u8> = match i % 3 {
            0 => (0..next() % 64).map(|_| next() as u8).collect(),
            1 => (0..next() % 800).map(|_| next() as u8).collect(),
            _ => {
                // A real frame with a few bits flipped.
                let mut v = good[(next() % good.len() as u64) as usize].to_vec();
                for _ in 0..1 + next() % 4 {
                    let bit = (next() % (v.len() as u64 * 8)) as usize;
                    v[bit / 8] ^= 1 << (bit % 8);
                }
                v
            }
        };
        let _ = d.feed(&aac_frame(i * 1024, Bytes::from(data)));
    }
    let _ = d.flush();
}

#[test]
fn he_aac_config_selects_the_lc_core() {
    // Explicit SBR: AOT 5, 24 kHz core, stereo, 48 kHz extension, underlying AOT 2.
    let he = [0x2B, 0x11, 0x88, 0x00];
    let (asc, rate, channels) = lc_config(Some(&he), 0, 0).unwrap();
    assert_eq!((asc.as_slice(), rate, channels), (&[0x13, 0x10][..], 24000, 2));
    let d = AudioDecoder::new(AudioCodec::Aac, Some(&he), 0, 0, None).unwrap();
    assert_eq!((d.output_sample_rate(), d.output_channels()), (24000, 2));
}

#[test]
fn lc_config_round_trips_through_the_core_parser() {
    for rate in [8000, 16000, 22050, 44100, 48000, 96000, 12345] {
        for ch in [1u8, 2] {
            let asc = lc_audio_specific_config(rate, ch);
            let c = parse_audio_specific_config(&asc).unwrap();
            assert_eq!(
                (c.object_type, c.sample_rate, c.channel_configuration, c.frame_length),
                (2, rate, ch, 1024)
            );
        }
    }
    assert_eq!(lc_audio_specific_config(44100, 2), [0x12, 0x10]);
    // Without a config: AAC-LC at the given rate and channels.
    assert_eq!(lc_config(None, 48000, 1).unwrap(), (vec![0x11, 0x88], 48000, 1));
}

#[test]
fn unsupported_aac_is_refused_at_creation() {
    // AAC Main (AOT 1), 44.1 kHz stereo.
    let err = AudioDecoder::new(AudioCodec::Aac, Some(&[0x0A, 0x10]), 0, 0, None).unwrap_err();
    assert!(matches!(err, AudioDecodeError::UnsupportedAac(_)), "{err}");
    // 5.1 (channel configuration 6).
    let err = AudioDecoder::new(AudioCodec::Aac, Some(&[0x12, 0x30]), 0, 0, None).unwrap_err();
    assert!(err.to_string().contains("channel configuration 6"), "{err}");
    // 960-sample frames.
    let err = AudioDecoder::new(AudioCodec::Aac, Some(&[0x12, 0x14]), 0, 0, None).unwrap_err();
    assert!(err.to_string().contains("960-sample"), "{err}");
    // Truncated config.
    let err = AudioDecoder::new(AudioCodec::Aac, Some(&[0x12]), 0, 0, None).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Config(_)), "{err}");
    // No config and no rate.
    let err = AudioDecoder::new(AudioCodec::Aac, None, 0, 2, None).unwrap_err();
    assert!(matches!(err, AudioDecodeError::InvalidFormat { .. }), "{err}");
    // An output rate the resampler refuses.
    let err = AudioDecoder::new(AudioCodec::Pcmu, None, 8000, 1, Some(8000 * 100)).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Resample(_)), "{err}");
}

fn media(body: &str) -> Media {
    let text = format!("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{body}");
    Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
}

#[test]
fn from_media_reads_the_sdp() {
    let generic = media(
        "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/44100/2\r\n\
         a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1210;sizeLength=13;indexLength=3;indexDeltaLength=3\r\n",
    );
    let d = AudioDecoder::from_media(&generic, Some(48000)).unwrap();
    assert_eq!(d.codec(), AudioCodec::Aac);
    assert_eq!(
        (d.source_sample_rate(), d.output_sample_rate(), d.output_channels()),
        (44100, 48000, 2)
    );

    let latm = media(
        "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\n\
         a=fmtp:96 profile-level-id=15;object=2;cpresent=0;config=400024203FC0\r\n",
    );
    let mut d = AudioDecoder::from_media(&latm, None).unwrap();
    assert_eq!(d.codec(), AudioCodec::AacLatm);
    assert_eq!((d.output_sample_rate(), d.output_channels()), (44100, 2));
    let mut frame = aac_frame(0, adts_access_units(TONE_AAC).remove(3));
    frame.codec = AudioCodec::AacLatm;
    assert_eq!(d.feed(&frame).unwrap()[0].sample_count(), 1024);

    let pcma = media("m=audio 0 RTP/AVP 8\r\n");
    let d = AudioDecoder::from_media(&pcma, None).unwrap();
    assert_eq!(
        (d.codec(), d.output_sample_rate(), d.output_channels()),
        (AudioCodec::Pcma, 8000, 1)
    );

    // A codec without a decoder (Opus has one now: GSM stands in).
    let gsm = media("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 GSM/8000\r\n");
    let err = AudioDecoder::from_media(&gsm, None).unwrap_err();
    assert_eq!(err, AudioDecodeError::UnsupportedCodec("GSM".to_owned()));

    let no_mode = media("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 config=1210\r\n");
    let err = AudioDecoder::from_media(&no_mode, None).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Config(_)), "{err}");
}

#[test]
fn g711_resampled_frames_keep_timestamps_and_length() {
    let mut d = AudioDecoder::new(AudioCodec::Pcmu, None, 8000, 1, Some(44_100)).unwrap();
    let tone: Vec<u8> = sine(440.0, 8000, 8000, 0.5)
        .iter()
        .map(|&s| g711::linear_to_ulaw((s * 32767.0) as i16))
        .collect();
    let mut out = Vec::new();
    for (i, chunk) in tone.chunks(160).enumerate() {
        let frames = d
            .feed(&g711_frame(AudioCodec::Pcmu, 5000 + i as u32 * 160, chunk.to_vec(), 1))
            .unwrap();
        if i == 0 {
            assert!(frames.is_empty(), "the first frame waits for look-ahead");
        } else {
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].timestamp, 5000 + (i as u32 - 1) * 160);
        }
        out.extend(frames);
    }
    out.extend(d.flush());
    assert_eq!(out.len(), 50);
    assert_eq!(out.iter().map(PcmFrame::sample_count).sum::<usize>(), 44_100);
    assert!(out.iter().all(|f| f.sample_count() == 882));
    let zcr = zero_crossing_rate(&channel(&out, 0), 44_100);
    assert!((870.0..=890.0).contains(&zcr), "{zcr}");
    // After a flush the decoder starts afresh.
    assert!(d
        .feed(&g711_frame(AudioCodec::Pcmu, 0, vec![0xFF; 160], 1))
        .unwrap()
        .is_empty());
    assert_eq!(d.flush()[0].sample_count(), 882);
}

#[test]
fn resampler_chunking_does_not_change_output() {
    let input = sine(1000.0, 48_000, 4801 * 2, 0.5); // stereo, odd frame count
    let mut whole = Vec::new();
    let mut r = Resampler::new(48_000, 44_100, 2).unwrap();
    r.process(&input, &mut whole);
    r.flush(&mut whole);
    assert_eq!(whole.len() / 2, (4801usize * 44_100).div_ceil(48_000));
    let mut pieces = Vec::new();
    let mut x = 7usize;
    let mut rest = &input[..];
    while !rest.is_empty() {
        x = (x * 31 + 11) % 97;
        let n = (2 * x).min(rest.len());
        r.process(&rest[..n], &mut pieces);
        rest = &rest[n..];
    }
    r.flush(&mut pieces);
    assert_eq!(whole, pieces);
}

#[test]
fn resampler_passes_the_passband_and_stops_aliases() {
    for (from, to) in [
        (44_100, 16_000),
        (48_000, 8000),
        (8000, 44_100),
        (11_025, 48_000),
        (16_000, 48_000),
    ] {
        let lower = from.min(to);
        let n = from as usize; // one second
        let measure = |freq: f64| {
            let mut r = Resampler::new(from, to, 1).unwrap();
            let mut out = Vec::new();
            r.process(&sine(freq, from, n, 0.5), &mut out);
            r.flush(&mut out);
            assert_eq!(out.len(), (n * to as usize).div_ceil(from as usize));
            let edge = out.len() / 10; // away from the start and end transients
            rms(&out[edge..out.len() - edge]) / rms(&sine(freq, from, n, 0.5))
        };
        // Passband: a tone at a third of the lower Nyquist frequency keeps its level.
        let pass = measure(f64::from(lower) / 6.0);
        assert!((pass - 1.0).abs() < 0.01, "{from}->{to}: passband gain {pass}");
        if to < from {
            // Stopband: tones above the output Nyquist frequency are gone (< -80 dB).
            for k in [0.52, 0.6, 0.9] {
                let stop = measure(f64::from(to) * k);
                assert!(stop < 1e-4, "{from}->{to}: alias gain {stop} at {k} x {to} Hz");
            }
        }
    }
}

#[test]
fn resampler_keeps_constants_constant() {
    let mut r = Resampler::new(11_025, 48_000, 1).unwrap(); // interpolated table
    let mut out = Vec::new();
    r.process(&[0.25; 4000], &mut out);
    for &s in &out[200..] {
        assert!((s - 0.25).abs() < 1e-4, "{s}");
    }
    assert!(Resampler::new(0, 8000, 1).is_err());
    assert!(Resampler::new(8000, 8000 * 65, 1).is_err());
    assert_eq!(Resampler::new(8000, 16000, 0).unwrap_err(), ResampleError::NoChannels);
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

#[test]
fn wav_round_trip() {
    let (_, frames) = decode_tone(Some(16_000));
    let mut w = WavWriter::new(Cursor::new(Vec::new()), 16_000, 2).unwrap();
    for f in &frames {
        w.write_frame(f).unwrap();
    }
    let data_bytes = w.data_bytes();
    let wrong = PcmFrame {
        timestamp: 0,
        sample_rate: 8000,
        channels: 2,
        samples: vec![0; 4],
    };
    assert_eq!(
        w.write_frame(&wrong).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let mut cursor = w.finish().unwrap();
    let total: usize = frames.iter().map(|f| f.samples.len() * 2).sum();
    assert_eq!(data_bytes as usize, total);
    assert_eq!(cursor.position(), 44 + total as u64);
    cursor.seek(SeekFrom::Start(0)).unwrap();
    let mut file = Vec::new();
    cursor.read_to_end(&mut file).unwrap();
    assert_eq!(&file[0..4], b"RIFF");
    assert_eq!(read_u32(&file, 4) as usize, file.len() - 8);
    assert_eq!(&file[8..16], b"WAVEfmt ");
    assert_eq!(read_u32(&file, 16), 16);
    assert_eq!(read_u16(&file, 20), 1);
    assert_eq!(read_u16(&file, 22), 2);
    assert_eq!(read_u32(&file, 24), 16_000);
    assert_eq!(read_u32(&file, 28), 64_000);
    assert_eq!(read_u16(&file, 32), 4);
    assert_eq!(read_u16(&file, 34), 16);
    assert_eq!(&file[36..40], b"data");
    assert_eq!(read_u32(&file, 40) as usize, total);
    let first: Vec<u8> = frames.iter().take(2).flat_map(PcmFrame::pcm_bytes).collect();
    assert_eq!(&file[44..44 + first.len()], &first[..]);

    // A writer dropped without finish still leaves a valid header.
    let mut buf = Cursor::new(vec![0xAAu8; 3]);
    buf.seek(SeekFrom::End(0)).unwrap();
    {
        let mut w = WavWriter::new(&mut buf, 8000, 1).unwrap();
        w.write_samples(&[1, 2, 3]).unwrap();
    }
    let file = buf.into_inner();
    assert_eq!(file.len(), 3 + 44 + 6);
    assert_eq!((read_u32(&file, 3 + 4), read_u32(&file, 3 + 40)), (36 + 6, 6));
}

/// `ffprobe` (when installed) reads the written file as what it is.
#[test]
fn wav_is_readable_by_ffprobe() {
    let Ok(probe) = std::process::Command::new("ffprobe").arg("-version").output() else {
        eprintln!("ffprobe not installed; skipped");
        return;
    };
    assert!(probe.status.success());
    let (_, frames) = decode_tone(None);
    let path = std::env::temp_dir().join(format!("rtsp-toolkit-audio-{}.wav", std::process::id()));
    let mut w = WavWriter::new(std::fs::File::create(&path).unwrap(), 44_100, 2).unwrap();
    for f in &frames {
        w.write_frame(f).unwrap();
    }
    w.finish().unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .arg("stream=codec_name,sample_rate,channels,duration_ts")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "codec_name=pcm_s16le",
        "sample_rate=44100",
        "channels=2",
        "duration_ts=222208",
    ] {
        assert!(text.lines().any(|l| l == expected), "{expected} not in\n{text}");
    }
}

/// Plays half a second of the tone when there is an output device; otherwise checks that the
/// failure is a typed error (build machines have no sound card).
#[cfg(feature = "playback")]
#[test]
fn player_plays_or_reports_no_device() {
    match Player::open_default() {
        Ok(mut player) => {
            let (_, frames) = decode_tone(None);
            for f in frames.iter().take(22) {
                player.play(f).unwrap();
            }
            assert!(player.queued() > std::time::Duration::ZERO || player.underruns() > 0);
        }
        Err(e) => {
            assert!(matches!(e, PlaybackError::NoDevice | PlaybackError::Device(_)), "{e}");
            eprintln!("no audio output here: {e}");
        }
    }
}

#[test]
fn l16_and_g722_decode() {
    let media = |text: &str| Sdp::parse(format!("v=0\r\n{text}").as_bytes()).unwrap().media.remove(0);
    // L16 stereo 22.05 kHz: big-endian samples come out as they are.
    let mut d = AudioDecoder::from_media(&media("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 L16/22050/2\r\n"), None).unwrap();
    assert_eq!(
        (d.codec(), d.output_sample_rate(), d.output_channels()),
        (AudioCodec::L16, 22050, 2)
    );
    let frame = AudioFrame {
        codec: AudioCodec::L16,
        timestamp: 7,
        data: Bytes::from_static(&[0x01, 0x02, 0xff, 0xfe, 0x80, 0x00, 0x7f, 0xff]),
        sample_count: 2,
        sample_rate: 22050,
        channels: 2,
        loss: 0,
    };
    let pcm = d.feed(&frame).unwrap();
    assert_eq!(pcm[0].samples, [0x0102, -2, i16::MIN, i16::MAX]);
    assert_eq!((pcm[0].timestamp, pcm[0].sample_count()), (7, 2));
    let odd = AudioFrame {
        data: Bytes::from_static(&[1, 2, 3]),
        ..frame.clone()
    };
    assert!(matches!(d.feed(&odd), Err(AudioDecodeError::PcmLength { len: 3, .. })));
    // Static payload type 11: 44.1 kHz mono.
    let d = AudioDecoder::from_media(&media("m=audio 0 RTP/AVP 11\r\n"), None).unwrap();
    assert_eq!((d.output_sample_rate(), d.output_channels()), (44100, 1));

    // G.722: the 8000 Hz RTP clock, 16 kHz out; what the core's decoder gives.
    let mut d = AudioDecoder::from_media(&media("m=audio 0 RTP/AVP 9\r\n"), None).unwrap();
    assert_eq!(
        (d.codec(), d.output_sample_rate(), d.output_channels()),
        (AudioCodec::G722, 16000, 1)
    );
    let tone: Vec<i16> = (0..640).map(|i| ((f64::from(i) * 0.3).sin() * 8000.0) as i16).collect();
    let mut codes = Vec::new();
    g722::Encoder::new().encode(&tone, &mut codes);
    let mut want = Vec::new();
    g722::Decoder::new().decode(&codes, &mut want);
    let frame = AudioFrame {
        codec: AudioCodec::G722,
        timestamp: 160,
        data: Bytes::from(codes.clone()),
        sample_count: 640,
        sample_rate: 16000,
        channels: 1,
        loss: 0,
    };
    let pcm = d.feed(&frame).unwrap();
    assert_eq!(
        (pcm[0].timestamp, pcm[0].sample_rate, &pcm[0].samples),
        (160, 16000, &want)
    );
    // Stereo: bytes interleaved by channel, each channel its own decoder.
    let mut d = AudioDecoder::new(AudioCodec::G722, None, 8000, 2, None).unwrap();
    let both: Vec<u8> = codes.iter().flat_map(|&c| [c, c]).collect();
    let pcm = d
        .feed(&AudioFrame {
            data: Bytes::from(both),
            channels: 2,
            ..frame.clone()
        })
        .unwrap();
    let left: Vec<i16> = pcm[0].samples.iter().step_by(2).copied().collect();
    assert_eq!(left, want);
    assert_eq!(pcm[0].samples[1..].iter().step_by(2).copied().collect::<Vec<_>>(), want);
    assert!(d
        .feed(&AudioFrame {
            data: Bytes::from_static(&[1, 2, 3]),
            ..frame
        })
        .is_err());
}

#[test]
fn opus_decodes_to_48k_and_survives_garbage() {
    let media = |text: &str| Sdp::parse(format!("v=0\r\n{text}").as_bytes()).unwrap().media.remove(0);
    let d = AudioDecoder::from_media(
        &media("m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 sprop-stereo=1\r\n"),
        None,
    )
    .unwrap();
    assert_eq!(
        (d.codec(), d.output_sample_rate(), d.output_channels()),
        (AudioCodec::Opus, 48000, 2)
    );
    let mut d = AudioDecoder::from_media(
        &media("m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"),
        Some(16000),
    )
    .unwrap();
    assert_eq!((d.output_sample_rate(), d.output_channels()), (16000, 1));
    assert!(AudioDecoder::new(AudioCodec::Opus, None, 48000, 3, None).is_err());
    // A CELT 20 ms packet of silence-like bytes, then garbage: never a panic.
    let frame = |data: Vec<u8>| AudioFrame {
        codec: AudioCodec::Opus,
        timestamp: 0,
        data: Bytes::from(data),
        sample_count: 960,
        sample_rate: 48000,
        channels: 1,
        loss: 0,
    };
    let _ = d.feed(&frame(vec![0xf8, 0xff, 0xfe]));
    let mut seed = 0x1234_5678u32;
    for len in 0..400usize {
        let data: Vec<u8> = (0..len % 97)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        if let Ok(pcm) = d.feed(&frame(data)) {
            assert!(pcm.iter().all(|p| p.sample_count() <= 5760 / 3));
        }
    }
}
