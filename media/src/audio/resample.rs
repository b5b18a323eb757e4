//! Streaming sample-rate conversion: a windowed-sinc polyphase resampler.
//!
//! What it is: a band-limited interpolator for interleaved `f32` audio that keeps its state across
//! calls, so a stream cut into frames of any size resamples exactly as if it came in one piece.
//! Output sample `n` is the input signal evaluated at input position `n * in_rate / out_rate`;
//! there is no added delay, the filter looks ahead instead (so the newest half-filter of input
//! waits for the next call or for [`Resampler::flush`]).
//!
//! What it is not: a variable-rate (drift-correcting) resampler; the ratio is fixed at creation.
//!
//! Why hand-written rather than `rubato`: what is needed here is one fixed ratio, streaming
//! input of arbitrary lengths (an AAC frame, a G.711 packet), and exact output counts
//! (`ceil(inputs * out / in)` after a flush) so that decoded frames keep exact durations. That is
//! a couple of hundred lines with no dependency, while `rubato`'s fixed-ratio resamplers work on
//! chunks of a configured size and would need their own buffering and count bookkeeping around
//! them anyway.
//!
//! The filter is a Kaiser-windowed sinc (beta 8) with 32 taps on each side at the lower of the two
//! rates, and its cutoff (-6 dB) at 0.46 times the lower rate. Measured, downsampling 44.1 kHz to
//! 16 kHz or 48 kHz to 8 kHz: flat (within 0.01 dB) to 0.42 times the output rate, and anything
//! from 0.52 times the output rate up (what would alias) at least 85 dB down. Coefficients are
//! tabulated per phase: exactly (one row per phase) when the reduced ratio `out/in = L/M` has
//! `L <= 512`, which covers the common rates, and otherwise with 512 rows and linear
//! interpolation between neighbouring rows.

/// Taps on each side of the centre, counted at the lower of the two rates.
const HALF_TAPS: usize = 32;
/// Cutoff as a fraction of the lower Nyquist frequency.
const ROLLOFF: f64 = 0.92;
/// Kaiser window shape.
const KAISER_BETA: f64 = 8.0;
/// Most table rows; ratios needing more phases interpolate between rows.
const MAX_PHASES: u64 = 512;
/// Largest supported ratio between the two rates, either way.
pub const MAX_RATIO: u32 = 64;

/// Why a [`Resampler`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// A rate is zero, or the two are too far apart.
    #[error("cannot resample {from} Hz to {to} Hz: rates must be non-zero and within a factor of {MAX_RATIO}")]
    UnsupportedRatio {
        /// The input rate in Hz.
        from: u32,
        /// The output rate in Hz.
        to: u32,
    },
    /// The frames have no channel.
    #[error("cannot resample zero channels")]
    NoChannels,
}

/// A streaming resampler for interleaved `f32` samples.
///
/// ```
/// use rtsp_toolkit_media::audio::Resampler;
///
/// let mut r = Resampler::new(48_000, 16_000, 1).unwrap();
/// let mut out = Vec::new();
/// for _ in 0..10 {
///     r.process(&[0.25; 480], &mut out); // 10 ms at a time
/// }
/// r.flush(&mut out);
/// assert_eq!(out.len(), 1600); // 100 ms at 16 kHz, exactly
/// ```
#[derive(Debug, Clone)]
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    /// Reduced ratio: `out_rate / in_rate == up / down`.
    up: u64,
    down: u64,
    /// Taps on each side of the centre, at the input rate.
    half: usize,
    /// Table rows per unit of input position; `up` when exact.
    phases: u64,
    /// `phases + 1` rows of `2 * half` coefficients, row `p` for fractional position `p / phases`.
    coefs: Vec<f32>,
    /// Per channel, pending input; index 0 is the first tap of the next output.
    history: Vec<Vec<f32>>,
    /// Fractional part of the next output's position, in units of `1 / up`.
    frac: u64,
    /// Input samples (per channel) taken since creation or the last flush.
    inputs: u64,
    /// Output samples (per channel) produced since creation or the last flush.
    outputs: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-12 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` Hz for `channels` interleaved channels.
    ///
    /// # Errors
    ///
    /// A zero rate, rates more than [`MAX_RATIO`] apart, or zero channels.
    pub fn new(in_rate: u32, out_rate: u32, channels: u16) -> Result<Self, ResampleError> {
        let unsupported = ResampleError::UnsupportedRatio {
            from: in_rate,
            to: out_rate,
        };
        if in_rate == 0 || out_rate == 0 {
            return Err(unsupported);
        }
        if u64::from(in_rate) > u64::from(out_rate) * u64::from(MAX_RATIO)
            || u64::from(out_rate) > u64::from(in_rate) * u64::from(MAX_RATIO)
        {
            return Err(unsupported);
        }
        if channels == 0 {
            return Err(ResampleError::NoChannels);
        }
        let g = gcd(u64::from(in_rate), u64::from(out_rate));
        let (up, down) = (u64::from(out_rate) / g, u64::from(in_rate) / g);
        // Everything below is in input samples: when downsampling the filter widens (and its
        // cutoff drops) by the ratio so that it is the same filter measured at the output rate.
        let ratio = (out_rate as f64 / in_rate as f64).min(1.0);
        let half = (HALF_TAPS as f64 / ratio).ceil() as usize;
        let cutoff = 0.5 * ROLLOFF * ratio; // cycles per input sample
        let phases = up.min(MAX_PHASES);
        let taps = 2 * half;
        let mut coefs = Vec::with_capacity((phases as usize + 1) * taps);
        let mut row = vec![0.0f64; taps];
        for p in 0..=phases {
            let f = p as f64 / phases as f64;
            for (j, c) in row.iter_mut().enumerate() {
                // Distance from the output position to tap j's input sample.
                let t = f + (half - 1) as f64 - j as f64;
                let x = t / half as f64;
                let window = if x.abs() >= 1.0 {
                    0.0
                } else {
                    bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA)
                };
                let arg = 2.0 * cutoff * t;
                let sinc = if arg == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                };
                *c = sinc * window;
            }
            // Unity gain at DC for every phase, so a constant stays exactly constant.
            let sum: f64 = row.iter().sum();
            coefs.extend(row.iter().map(|c| (c / sum) as f32));
        }
        let mut r = Resampler {
            in_rate,
            out_rate,
            channels: usize::from(channels),
            up,
            down,
            half,
            phases,
            coefs,
            history: vec![Vec::new(); usize::from(channels)],
            frac: 0,
            inputs: 0,
            outputs: 0,
        };
        r.reset();
        Ok(r)
    }

    /// Input rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.out_rate
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// Forgets all input, as if newly made.
    pub fn reset(&mut self) {
        for h in &mut self.history {
            h.clear();
            // Zeros before the first input, so the first output sits exactly on input 0.
            h.resize(self.half - 1, 0.0);
        }
        self.frac = 0;
        self.inputs = 0;
        self.outputs = 0;
    }

    /// Output samples per channel owed for the input so far: one for every output position
    /// before the end of the input.
    fn owed(&self) -> u64 {
        (self.inputs * self.up).div_ceil(self.down)
    }

    /// Output samples per channel for the first `inputs` input samples per channel since the
    /// last flush (what [`Resampler::flush`] will have produced in total for that input).
    pub fn outputs_for(&self, inputs: u64) -> u64 {
        (inputs * self.up).div_ceil(self.down)
    }

    /// Appends the interleaved `input` and writes every output sample that can be computed to
    /// `out` (interleaved). A trailing partial sample frame of `input` is ignored.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let frames = input.len() / self.channels;
        for (c, h) in self.history.iter_mut().enumerate() {
            h.extend(input.iter().skip(c).step_by(self.channels).take(frames));
        }
        self.inputs += frames as u64;
        self.run(out, self.owed());
    }

    /// Writes the remaining output for the input so far, as if it were followed by silence,
    /// then resets. The total output since creation or the last flush is exactly
    /// `ceil(inputs * out_rate / in_rate)` samples per channel.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        for h in &mut self.history {
            h.resize(h.len() + self.half, 0.0);
        }
        self.run(out, self.owed());
        self.reset();
    }

    /// Produces outputs until `limit` in total or until the history runs out.
    fn run(&mut self, out: &mut Vec<f32>, limit: u64) {
        let taps = 2 * self.half;
        let available = self.history[0].len();
        let mut pos = 0usize;
        let exact = self.phases == self.up;
        while self.outputs < limit && pos + taps <= available {
            let (row, weight) = if exact {
                (self.frac as usize, 0.0)
            } else {
                let scaled = self.frac * self.phases;
                ((scaled / self.up) as usize, (scaled % self.up) as f32 / self.up as f32)
            };
            let a = &self.coefs[row * taps..(row + 1) * taps];
            for h in &self.history {
                let x = &h[pos..pos + taps];
                let mut y = dot(x, a);
                if weight != 0.0 {
                    let b = &self.coefs[(row + 1) * taps..(row + 2) * taps];
                    y += weight * (dot(x, b) - y);
                }
                out.push(y);
            }
            self.outputs += 1;
            self.frac += self.down;
            pos += (self.frac / self.up) as usize;
            self.frac %= self.up;
        }
        // The step never exceeds `half`, so `pos` stays within the history.
        for h in &mut self.history {
            h.drain(..pos);
        }
    }
}

fn dot(x: &[f32], c: &[f32]) -> f32 {
    // Four partial sums let the compiler vectorize without reassociation licence.
    let mut acc = [0.0f32; 4];
    let (xc, xr) = x.split_at(x.len() - x.len() % 4);
    let (cc, cr) = c.split_at(xc.len());
    for (xs, cs) in xc.chunks_exact(4).zip(cc.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += xs[k] * cs[k];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (a, b) in xr.iter().zip(cr) {
        sum += a * b;
    }
    sum
}
