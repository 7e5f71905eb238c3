//! Batch normalisation over contiguous NCHW `f32` data with the batch's own
//! statistics (training), forward and backward, in four passes over memory
//! instead of the dozen that composing it from tensor operations takes.
//!
//! Per-channel sums run in parallel over channels, in `f32` within one image
//! plane and in `f64` across planes; element-wise passes run in parallel over
//! images. Nothing depends on how rayon schedules the work.

use rayon::prelude::*;

/// The sizes of one batch-norm input, `[batch, channels, plane]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Images in the batch.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Elements per channel of one image (height times width).
    pub plane: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Elements per channel over the batch.
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

/// Reduces `g(a[i], b[i])` over paired slices with sixteen running sums, so
/// that the loop compiles to vector adds.
fn reduce(a: &[f32], b: &[f32], g: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for lane in 0..16 {
            acc[lane] += g(xa[lane], xb[lane]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| g(*x, *y)).sum();
    acc.iter().sum::<f32>() + tail
}

/// `sum over images of f(plane of channel c in that image)`, in f64.
fn per_channel(s: &NormShape, f: impl Fn(usize, usize) -> f32 + Sync) -> Vec<f64> {
    (0..s.channels)
        .into_par_iter()
        .map(|c| (0..s.batch).map(|n| f(n, c) as f64).sum())
        .collect()
}

fn plane<'a>(data: &'a [f32], s: &NormShape, n: usize, c: usize) -> &'a [f32] {
    &data[(n * s.channels + c) * s.plane..][..s.plane]
}

/// `out[n, c, :] = a[c] * x[n, c, :] + b[c] (+ k[c] * y[n, c, :])`, in parallel over images.
fn affine(
    x: &[f32],
    y: Option<&[f32]>,
    a: &[f32],
    b: &[f32],
    k: &[f32],
    s: &NormShape,
) -> Vec<f32> {
    let mut out = vec![0.0f32; s.len()];
    let image = s.channels * s.plane;
    if image == 0 {
        return out;
    }
    out.par_chunks_mut(image).enumerate().for_each(|(n, out)| {
        for c in 0..s.channels {
            let target = &mut out[c * s.plane..][..s.plane];
            let xs = plane(x, s, n, c);
            match y {
                None => {
                    for (o, x) in target.iter_mut().zip(xs) {
                        *o = a[c] * x + b[c];
                    }
                }
                Some(y) => {
                    let ys = plane(y, s, n, c);
                    for ((o, x), y) in target.iter_mut().zip(xs).zip(ys) {
                        *o = a[c] * x + k[c] * y + b[c];
                    }
                }
            }
        }
    });
    out
}

/// The batch's per-channel mean and biased variance.
pub fn statistics(x: &[f32], s: &NormShape) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.len(), "batch norm: input length");
    let count = s.count().max(1.0);
    let mean: Vec<f64> = per_channel(s, |n, c| {
        let xs = plane(x, s, n, c);
        reduce(xs, xs, |v, _| v)
    })
    .into_iter()
    .map(|sum| sum / count)
    .collect();
    let var = per_channel(s, |n, c| {
        let (xs, m) = (plane(x, s, n, c), mean[c] as f32);
        reduce(xs, xs, |v, _| (v - m) * (v - m))
    });
    (
        mean.iter().map(|m| *m as f32).collect(),
        var.iter().map(|v| (v / count) as f32).collect(),
    )
}

/// `gamma * (x - mean) / sqrt(var + epsilon) + beta` with the batch's
/// statistics; returns the output, the mean and the biased variance.
pub fn forward_train(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    s: &NormShape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = statistics(x, s);
    let out = forward_with(x, gamma, beta, &mean, &var, epsilon, s);
    (out, mean, var)
}

/// Batch norm with given statistics (the running ones, in evaluation).
pub fn forward_with(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    s: &NormShape,
) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "batch norm: input length");
    let scale: Vec<f32> = (0..s.channels)
        .map(|c| (gamma[c] as f64 / (var[c] as f64 + epsilon).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..s.channels)
        .map(|c| beta[c] - mean[c] * scale[c])
        .collect();
    affine(x, None, &scale, &shift, &[], s)
}

/// The gradients of the input, gamma and beta of [`forward_train`], given the
/// output gradient and the statistics it returned.
pub fn backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    output_grad: &[f32],
    s: &NormShape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.len(), "batch norm: input length");
    assert_eq!(output_grad.len(), s.len(), "batch norm: gradient length");
    let dy = output_grad;
    let sum_dy = per_channel(s, |n, c| {
        let g = plane(dy, s, n, c);
        reduce(g, g, |v, _| v)
    });
    let sum_dy_dev = per_channel(s, |n, c| {
        let (xs, g, m) = (plane(x, s, n, c), plane(dy, s, n, c), mean[c]);
        reduce(g, xs, |g, v| g * (v - m))
    });
    let count = s.count().max(1.0);
    let (mut k_dy, mut k_x, mut k_1) = (
        vec![0.0; s.channels],
        vec![0.0; s.channels],
        vec![0.0; s.channels],
    );
    let (mut gamma_grad, mut beta_grad) = (vec![0.0; s.channels], vec![0.0; s.channels]);
    for c in 0..s.channels {
        let inv_std = 1.0 / (var[c] as f64 + epsilon).sqrt();
        let g = gamma[c] as f64;
        // x_hat = (x - m) inv_std; dx = g inv_std (dy - mean(dy) - x_hat mean(dy x_hat))
        let mean_dy = sum_dy[c] / count;
        let mean_dy_xhat = sum_dy_dev[c] * inv_std / count;
        k_dy[c] = (g * inv_std) as f32;
        k_x[c] = (-g * inv_std * inv_std * mean_dy_xhat) as f32;
        k_1[c] =
            (-g * inv_std * mean_dy + g * inv_std * inv_std * mean_dy_xhat * mean[c] as f64) as f32;
        gamma_grad[c] = (sum_dy_dev[c] * inv_std) as f32;
        beta_grad[c] = sum_dy[c] as f32;
    }
    let x_grad = affine(dy, Some(x), &k_dy, &k_1, &k_x, s);
    (x_grad, gamma_grad, beta_grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64, offset: f32) -> Vec<f32> {
        crate::conv::tests::values(len, seed)
            .into_iter()
            .map(|v| v + offset)
            .collect()
    }

    /// The loss `sum(out * probe)` in f64, for finite differences.
    fn loss(x: &[f64], gamma: &[f64], beta: &[f64], probe: &[f32], s: &NormShape, eps: f64) -> f64 {
        let count = s.count();
        let mut total = 0.0;
        for c in 0..s.channels {
            let idx = |n: usize, i: usize| (n * s.channels + c) * s.plane + i;
            let all = || (0..s.batch).flat_map(move |n| (0..s.plane).map(move |i| idx(n, i)));
            let mean = all().map(|j| x[j]).sum::<f64>() / count;
            let var = all().map(|j| (x[j] - mean).powi(2)).sum::<f64>() / count;
            for j in all() {
                total +=
                    (gamma[c] * (x[j] - mean) / (var + eps).sqrt() + beta[c]) * probe[j] as f64;
            }
        }
        total
    }

    #[test]
    fn forward_normalises_each_channel() {
        let s = NormShape {
            batch: 4,
            channels: 3,
            plane: 37,
        };
        let x = values(s.len(), 1, 5.0);
        let (gamma, beta) = (vec![1.0, 2.0, 0.5], vec![0.0, -1.0, 3.0]);
        let (out, mean, var) = forward_train(&x, &gamma, &beta, 1e-5, &s);
        for c in 0..3 {
            let vals: Vec<f64> = (0..s.batch)
                .flat_map(|n| plane(&out, &s, n, c).iter().map(|v| *v as f64))
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let sd = (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
            assert!((m - beta[c] as f64).abs() < 1e-4, "channel {c} mean {m}");
            assert!((sd - gamma[c] as f64).abs() < 1e-3, "channel {c} std {sd}");
            assert!(
                (mean[c] - 5.0).abs() < 0.2 && var[c] > 0.2 && var[c] < 0.5,
                "{mean:?} {var:?}"
            );
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let s = NormShape {
            batch: 3,
            channels: 2,
            plane: 5,
        };
        let eps = 1e-5;
        let x = values(s.len(), 2, 0.5);
        let probe = values(s.len(), 3, 0.0);
        let (gamma, beta) = (vec![1.5f32, -0.7], vec![0.2f32, 0.1]);
        let (_, mean, var) = forward_train(&x, &gamma, &beta, eps, &s);
        let (dx, dgamma, dbeta) = backward(&x, &gamma, &mean, &var, eps, &probe, &s);

        let f64s = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<f64>>();
        let (x64, g64, b64) = (f64s(&x), f64s(&gamma), f64s(&beta));
        let h = 1e-6;
        let numeric = |which: usize, i: usize| {
            let (mut xp, mut gp, mut bp) = (x64.clone(), g64.clone(), b64.clone());
            let (mut xm, mut gm, mut bm) = (x64.clone(), g64.clone(), b64.clone());
            match which {
                0 => (xp[i] += h, xm[i] -= h),
                1 => (gp[i] += h, gm[i] -= h),
                _ => (bp[i] += h, bm[i] -= h),
            };
            (loss(&xp, &gp, &bp, &probe, &s, eps) - loss(&xm, &gm, &bm, &probe, &s, eps))
                / (2.0 * h)
        };
        for i in 0..s.len() {
            let want = numeric(0, i);
            assert!(
                (dx[i] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()),
                "dx[{i}] {} vs {want}",
                dx[i]
            );
        }
        for c in 0..2 {
            let (wg, wb) = (numeric(1, c), numeric(2, c));
            assert!(
                (dgamma[c] as f64 - wg).abs() < 1e-3 * (1.0 + wg.abs()),
                "dgamma {c}"
            );
            assert!(
                (dbeta[c] as f64 - wb).abs() < 1e-3 * (1.0 + wb.abs()),
                "dbeta {c}"
            );
        }
    }
}
