//! Golden values computed once with a reference implementation (the generating script is
//! quoted next to each): numbers our code must reproduce, independent of our own maths.

/// The Fréchet distance of two 4-d Gaussians against SciPy (pytorch-fid's formula:
/// ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2·sqrtm(Σ₁Σ₂))). Generated with numpy 2 / scipy:
///
/// ```python
/// A = np.array([[(i*7+j*3)%5-2.0 for j in range(4)] for i in range(4)])/3
/// B = np.array([[(i*5+j*2)%7-3.0 for j in range(4)] for i in range(4)])/4
/// s1 = A@A.T + 0.1*np.eye(4); s2 = B@B.T + 0.2*np.eye(4)
/// mu1 = [0.5, -1.0, 0.25, 2.0]; mu2 = [0.0, 0.5, -0.75, 1.0]
/// fd = ((mu1-mu2)**2).sum() + np.trace(s1 + s2 - 2*scipy.linalg.sqrtm(s1@s2).real)
/// ```
#[test]
fn frechet_distance_matches_scipy() {
    let d = 4;
    let m = |f: &dyn Fn(usize, usize) -> f64, scale: f64, ridge: f64| -> Vec<f64> {
        let a: Vec<f64> = (0..d * d).map(|k| f(k / d, k % d) / scale).collect();
        let mut s = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                s[i * d + j] =
                    (0..d).map(|k| a[i * d + k] * a[j * d + k]).sum::<f64>() + if i == j { ridge } else { 0.0 };
            }
        }
        s
    };
    let s1 = m(&|i, j| ((i * 7 + j * 3) % 5) as f64 - 2.0, 3.0, 0.1);
    let s2 = m(&|i, j| ((i * 5 + j * 2) % 7) as f64 - 3.0, 4.0, 0.2);
    assert!((s2[0] - 1.45).abs() < 1e-12 && (s1[1] + 0.5555555555555555).abs() < 1e-12);
    let (mu1, mu2) = ([0.5, -1.0, 0.25, 2.0], [0.0, 0.5, -0.75, 1.0]);
    let fd = cm::eval::images::frechet_from_stats(&mu1, &s1, &mu2, &s2, d);
    assert!(
        (fd - 4.860174195572812).abs() < 1e-9,
        "FD {fd} vs SciPy 4.860174195572812"
    );
}
