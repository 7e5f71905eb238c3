//! A 3x3 convolution with stride 1 and padding 1 on contiguous NCHW `f32`
//! data: the forward pass, the input gradient and the weight and bias
//! gradients.
//!
//! Each image is lowered on its own (im2col into a buffer of
//! `9 * channels_in * height * width` floats, 590 KB for the 16-channel
//! 32x32 layers of a CIFAR ResNet, so it stays in the L2 cache) and multiplied
//! with one gemm whose long side is the spatial one. Images are split into
//! contiguous parts, one rayon task each, so both cores work from the first
//! image on and the weight gradient is summed in a fixed order: the results do
//! not depend on scheduling.
//!
//! With stride 1 and padding 1 the input gradient is itself such a
//! convolution: of the output gradient, by the weights with their channel
//! axes swapped and their taps rotated by 180 degrees.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Taps of a 3x3 kernel.
const TAPS: usize = 9;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Image height, the same at the input and the output.
    pub height: usize,
    /// Image width, the same at the input and the output.
    pub width: usize,
}

impl ConvShape {
    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Elements of the input, `[batch, channels_in, height, width]`.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels_in * self.plane()
    }

    /// Elements of the output, `[batch, channels_out, height, width]`.
    pub fn output_len(&self) -> usize {
        self.batch * self.channels_out * self.plane()
    }

    /// Elements of the weights, `[channels_out, channels_in, 3, 3]`.
    pub fn weight_len(&self) -> usize {
        self.channels_out * self.channels_in * TAPS
    }

    /// The shape of the convolution that computes this one's input gradient.
    fn transposed(&self) -> Self {
        Self {
            channels_in: self.channels_out,
            channels_out: self.channels_in,
            ..*self
        }
    }

    /// Images per parallel part: about two parts per thread, so that a thread
    /// slowed by other work does not hold the whole step back.
    fn images_per_part(&self) -> usize {
        let parts = 2 * rayon::current_num_threads().max(1);
        self.batch.div_ceil(parts).max(1)
    }
}

/// Writes the 3x3 patches of one image, `[channels, height, width]`, into
/// `col`, `[channels * 9, height * width]`: row `c * 9 + kh * 3 + kw` holds the
/// image shifted by `(kh - 1, kw - 1)`, with zeros where it leaves the image.
fn im2col(image: &[f32], channels: usize, height: usize, width: usize, col: &mut [f32]) {
    let plane = height * width;
    for c in 0..channels {
        let source = &image[c * plane..(c + 1) * plane];
        for kh in 0..3 {
            for kw in 0..3 {
                let row = (c * TAPS + kh * 3 + kw) * plane;
                let target = &mut col[row..row + plane];
                for y in 0..height {
                    let line = &mut target[y * width..(y + 1) * width];
                    let Some(sy) = (y + kh).checked_sub(1).filter(|&sy| sy < height) else {
                        line.fill(0.0);
                        continue;
                    };
                    let src = &source[sy * width..(sy + 1) * width];
                    match kw {
                        0 => {
                            line[0] = 0.0;
                            line[1..].copy_from_slice(&src[..width - 1]);
                        }
                        1 => line.copy_from_slice(src),
                        _ => {
                            line[..width - 1].copy_from_slice(&src[1..]);
                            line[width - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// A matrix operand: its first element and its column and row strides.
struct Operand<T> {
    ptr: T,
    col_stride: usize,
    row_stride: usize,
}

/// `dst (+)= lhs [m, k] x rhs [k, n]` on one thread, adding to `dst` when
/// `accumulate`.
///
/// # Safety
///
/// Each operand's strides must address only elements inside its allocation
/// for the given sizes.
unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: Operand<*mut f32>,
    accumulate: bool,
    lhs: Operand<*const f32>,
    rhs: Operand<*const f32>,
) {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// `out = weight * col (+ bias)` for one image: `out` is `[channels_out, plane]`.
fn forward_image(
    col: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    s: &ConvShape,
) {
    let plane = s.plane();
    let depth = s.channels_in * TAPS;
    if let Some(bias) = bias {
        for (channel, b) in out.chunks_exact_mut(plane).zip(bias) {
            channel.fill(*b);
        }
    }
    // out^T [plane, channels_out] = col^T [plane, depth] x weight^T [depth, channels_out];
    // the long spatial side is gemm's row side, which its micro-kernels prefer.
    // SAFETY: the pointers cover `plane * channels_out`, `depth * plane` and
    // `channels_out * depth` elements, as the strides below address them.
    unsafe {
        matmul(
            [plane, s.channels_out, depth],
            Operand {
                ptr: out.as_mut_ptr(),
                col_stride: plane,
                row_stride: 1,
            },
            bias.is_some(),
            Operand {
                ptr: col.as_ptr(),
                col_stride: plane,
                row_stride: 1,
            },
            Operand {
                ptr: weight.as_ptr(),
                col_stride: depth,
                row_stride: 1,
            },
        );
    }
}

/// The convolution of `input` by `weight`, plus `bias` when given.
///
/// `input` is `[batch, channels_in, height, width]`, `weight`
/// `[channels_out, channels_in, 3, 3]`, `bias` `[channels_out]`; the result is
/// `[batch, channels_out, height, width]`.
pub fn forward(input: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &ConvShape) -> Vec<f32> {
    assert_eq!(input.len(), s.input_len(), "conv3x3: input length");
    assert_eq!(weight.len(), s.weight_len(), "conv3x3: weight length");
    let mut out = vec![0.0; s.output_len()];
    if s.output_len() == 0 {
        return out;
    }
    let per = s.images_per_part();
    let (in_image, out_image) = (s.channels_in * s.plane(), s.channels_out * s.plane());
    out.par_chunks_mut(per * out_image)
        .zip(input.par_chunks(per * in_image))
        .for_each(|(out, input)| {
            let mut col = vec![0.0; s.channels_in * TAPS * s.plane()];
            for (out, image) in out
                .chunks_exact_mut(out_image)
                .zip(input.chunks_exact(in_image))
            {
                im2col(image, s.channels_in, s.height, s.width, &mut col);
                forward_image(&col, weight, bias, out, s);
            }
        });
    out
}

/// The gradient of the input, `[batch, channels_in, height, width]`, given the
/// gradient of the output.
pub fn input_grad(output_grad: &[f32], weight: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(
        output_grad.len(),
        s.output_len(),
        "conv3x3: output gradient length"
    );
    assert_eq!(weight.len(), s.weight_len(), "conv3x3: weight length");
    // w'[ci, co, kh, kw] = w[co, ci, 2 - kh, 2 - kw]
    let mut rotated = vec![0.0; weight.len()];
    for co in 0..s.channels_out {
        for ci in 0..s.channels_in {
            for tap in 0..TAPS {
                rotated[(ci * s.channels_out + co) * TAPS + tap] =
                    weight[(co * s.channels_in + ci) * TAPS + (TAPS - 1 - tap)];
            }
        }
    }
    forward(output_grad, &rotated, None, &s.transposed())
}

/// The gradients of the weights, `[channels_out, channels_in, 3, 3]`, and of
/// the bias, `[channels_out]`, given the input and the output gradient.
pub fn weight_and_bias_grad(
    input: &[f32],
    output_grad: &[f32],
    s: &ConvShape,
) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(input.len(), s.input_len(), "conv3x3: input length");
    assert_eq!(
        output_grad.len(),
        s.output_len(),
        "conv3x3: output gradient length"
    );
    let plane = s.plane();
    let depth = s.channels_in * TAPS;
    let per = s.images_per_part();
    let (in_image, out_image) = (s.channels_in * plane, s.channels_out * plane);
    if s.batch == 0 || plane == 0 {
        return (vec![0.0; s.weight_len()], vec![0.0; s.channels_out]);
    }
    let parts: Vec<(Vec<f32>, Vec<f32>)> = input
        .par_chunks(per * in_image)
        .zip(output_grad.par_chunks(per * out_image))
        .map(|(input, output_grad)| {
            let mut weight_grad = vec![0.0; s.weight_len()];
            let mut bias_grad = vec![0.0; s.channels_out];
            let mut col = vec![0.0; depth * plane];
            for (image, grad) in input
                .chunks_exact(in_image)
                .zip(output_grad.chunks_exact(out_image))
            {
                im2col(image, s.channels_in, s.height, s.width, &mut col);
                // dW^T [depth, channels_out] += col [depth, plane] x grad^T [plane, channels_out]
                // SAFETY: as in `forward_image`, every stride stays inside its slice.
                unsafe {
                    matmul(
                        [depth, s.channels_out, plane],
                        Operand {
                            ptr: weight_grad.as_mut_ptr(),
                            col_stride: depth,
                            row_stride: 1,
                        },
                        true,
                        Operand {
                            ptr: col.as_ptr(),
                            col_stride: 1,
                            row_stride: plane,
                        },
                        Operand {
                            ptr: grad.as_ptr(),
                            col_stride: plane,
                            row_stride: 1,
                        },
                    );
                }
                for (sum, channel) in bias_grad.iter_mut().zip(grad.chunks_exact(plane)) {
                    *sum += channel.iter().sum::<f32>();
                }
            }
            (weight_grad, bias_grad)
        })
        .collect();
    // Parts are summed in image order, whatever thread computed them.
    let mut parts = parts.into_iter();
    let (mut weight_grad, mut bias_grad) = parts.next().expect("at least one image");
    for (w, b) in parts {
        weight_grad
            .iter_mut()
            .zip(&w)
            .for_each(|(sum, x)| *sum += x);
        bias_grad.iter_mut().zip(&b).for_each(|(sum, x)| *sum += x);
    }
    (weight_grad, bias_grad)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The definition, one multiply-add at a time, in f64.
    fn naive(input: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &ConvShape) -> Vec<f64> {
        let (h, w) = (s.height as isize, s.width as isize);
        let mut out = vec![0.0f64; s.output_len()];
        for n in 0..s.batch {
            for co in 0..s.channels_out {
                for y in 0..h {
                    for x in 0..w {
                        let mut sum = bias.map_or(0.0, |b| b[co] as f64);
                        for ci in 0..s.channels_in {
                            for kh in 0..3isize {
                                for kw in 0..3isize {
                                    let (sy, sx) = (y + kh - 1, x + kw - 1);
                                    if sy < 0 || sy >= h || sx < 0 || sx >= w {
                                        continue;
                                    }
                                    let i = ((n * s.channels_in + ci) as isize * h + sy) * w + sx;
                                    let k =
                                        ((co * s.channels_in + ci) * 3) as isize * 3 + kh * 3 + kw;
                                    sum += input[i as usize] as f64 * weight[k as usize] as f64;
                                }
                            }
                        }
                        out[((n * s.channels_out + co) as isize * h * w + y * w + x) as usize] =
                            sum;
                    }
                }
            }
        }
        out
    }

    /// `len` pseudo-random values in [-1, 1) from an xorshift of `seed`.
    pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            // f32 sums of at most a few hundred products of values below 1.
            assert!(
                ((*g as f64) - w).abs() <= 1e-5 * scale,
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    const SHAPES: [ConvShape; 3] = [
        ConvShape {
            batch: 3,
            channels_in: 2,
            channels_out: 5,
            height: 4,
            width: 6,
        },
        ConvShape {
            batch: 5,
            channels_in: 16,
            channels_out: 16,
            height: 8,
            width: 8,
        },
        ConvShape {
            batch: 1,
            channels_in: 3,
            channels_out: 2,
            height: 1,
            width: 1,
        },
    ];

    #[test]
    fn forward_matches_the_definition() {
        for s in SHAPES {
            let (x, w, b) = (
                values(s.input_len(), 1),
                values(s.weight_len(), 2),
                values(s.channels_out, 3),
            );
            assert_close(
                &forward(&x, &w, Some(&b), &s),
                &naive(&x, &w, Some(&b), &s),
                "with bias",
            );
            assert_close(
                &forward(&x, &w, None, &s),
                &naive(&x, &w, None, &s),
                "no bias",
            );
        }
    }

    /// `<forward(x), g>` is linear in `x` and in `w`: its gradients are
    /// `input_grad(g)` and `weight_grad(x, g)`. Checked on unit vectors.
    #[test]
    fn gradients_are_the_adjoints_of_the_forward_pass() {
        for s in SHAPES {
            let (x, w, g) = (
                values(s.input_len(), 4),
                values(s.weight_len(), 5),
                values(s.output_len(), 6),
            );
            let dot = |y: &[f64]| y.iter().zip(&g).map(|(a, b)| a * *b as f64).sum::<f64>();
            let dx = input_grad(&g, &w, &s);
            let (dw, db) = weight_and_bias_grad(&x, &g, &s);
            let want_dx: Vec<f64> = (0..x.len())
                .map(|i| {
                    let mut unit = vec![0.0; x.len()];
                    unit[i] = 1.0;
                    dot(&naive(&unit, &w, None, &s))
                })
                .collect();
            let want_dw: Vec<f64> = (0..w.len())
                .map(|i| {
                    let mut unit = vec![0.0; w.len()];
                    unit[i] = 1.0;
                    dot(&naive(&x, &unit, None, &s))
                })
                .collect();
            let want_db: Vec<f64> = (0..s.channels_out)
                .map(|c| {
                    let plane = s.height * s.width;
                    (0..s.batch)
                        .flat_map(|n| g[(n * s.channels_out + c) * plane..][..plane].iter())
                        .map(|v| *v as f64)
                        .sum()
                })
                .collect();
            assert_close(&dx, &want_dx, "input gradient");
            assert_close(&dw, &want_dw, "weight gradient");
            assert_close(&db, &want_db, "bias gradient");
        }
    }

    #[test]
    fn weight_gradient_does_not_depend_on_scheduling() {
        let s = ConvShape {
            batch: 9,
            channels_in: 4,
            channels_out: 3,
            height: 5,
            width: 5,
        };
        let (x, g) = (values(s.input_len(), 7), values(s.output_len(), 8));
        let first = weight_and_bias_grad(&x, &g, &s);
        for _ in 0..5 {
            assert_eq!(weight_and_bias_grad(&x, &g, &s), first);
        }
    }
}
