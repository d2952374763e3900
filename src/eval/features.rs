//! Statistics of feature sets for the evaluation protocol: KID, precision/recall,
//! memorisation share and class agreement.
//!
//! Every function takes feature sets as row-major `&[f64]` of N rows and `d` columns (N×d), in
//! whatever feature space the caller chose (e.g. the penultimate layer of a classifier); no
//! tensors, so the numbers do not depend on a backend. The pairwise loops are blocked into
//! tiles of 32×128 rows, so memory stays O(N·d) (never O(N²)), and run on
//! rayon over blocks of query rows. Reductions collect per-block partial results in block
//! order before summing, so every result is the same on every run and thread count.

use crate::rng::Rng;
use rayon::prelude::*;

/// Default number of random subsets of [`kid`] (clean-fid and torch-fidelity use 100).
pub const KID_SUBSETS: usize = 100;
/// Default subset size of [`kid`] (clean-fid and torch-fidelity use 1000).
pub const KID_SUBSET_SIZE: usize = 1000;
/// Default neighbourhood size of [`precision_recall`] (Kynkäänniemi et al. 2019 use k = 3).
pub const PR_K: usize = 3;

/// Query rows per rayon task.
const Q_BLOCK: usize = 32;
/// Reference rows per tile: 128 rows of d = 64 f64 are 64 KiB, which stays in L2 while the
/// task's query rows are compared with them.
const R_BLOCK: usize = 128;

/// Rows of an N×d set, checking the shape.
fn rows(x: &[f64], d: usize) -> usize {
    assert!(d > 0, "feature dimension d must be positive");
    assert!(
        x.len().is_multiple_of(d),
        "set length {} is not a multiple of d = {d}",
        x.len()
    );
    x.len() / d
}

// ---------------------------------------------------------------------------------------------
// Tile kernels. The crate targets baseline x86-64 (SSE2), so the two inner loops are compiled
// again for AVX-512 and AVX2 and picked at run time; the body is `#[inline(always)]` so it is
// really compiled inside each copy (the same scheme as `nets::fused`, repeated here so that this
// module stands alone).

macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
                    // SAFETY: the CPU supports the features v4 is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3.
                    return unsafe { v3($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// `out[a·nr + c] = f(q_a, r_c)` for all rows a of `q` and c of `r`, where f is the squared
/// Euclidean distance (`DOT = false`) or the dot product (`DOT = true`).
///
/// One query row meets four reference rows at a time: four independent accumulator chains
/// hide the add latency and each load of the query row serves four pairs. The squared
/// distance is summed from the differences (not as ‖q‖² + ‖r‖² − 2q·r), so it is exactly 0
/// for identical rows and never negative — exact copies must compare as copies in
/// [`memorisation_share`] and identical sets must give precision and recall exactly 1.
#[inline(always)]
fn tile_body<const DOT: bool>(q: &[f64], r: &[f64], d: usize, out: &mut [f64]) {
    let nr = r.len() / d;
    for (qa, o) in q.chunks_exact(d).zip(out.chunks_exact_mut(nr)) {
        let (qc, qt) = qa.as_chunks::<8>();
        let mut c = 0;
        while c + 4 <= nr {
            let rr: [&[f64]; 4] = std::array::from_fn(|u| &r[(c + u) * d..(c + u + 1) * d]);
            let mut acc = [[0.0f64; 8]; 4];
            for (k, x) in qc.iter().enumerate() {
                for u in 0..4 {
                    let y = &rr[u][k * 8..k * 8 + 8];
                    for l in 0..8 {
                        acc[u][l] += term::<DOT>(x[l], y[l]);
                    }
                }
            }
            for u in 0..4 {
                o[c + u] = finish::<DOT>(&acc[u], qt, &rr[u][qc.len() * 8..]);
            }
            c += 4;
        }
        // The last nr mod 4 columns, one at a time but with the same lanes and the same order
        // of additions, so a pair's value does not depend on where it falls in the tile (ties
        // between distances must be exact ties, e.g. for duplicated rows).
        for (cc, oc) in o.iter_mut().enumerate().skip(c) {
            let (yc, yt) = r[cc * d..(cc + 1) * d].as_chunks::<8>();
            let mut acc = [0.0f64; 8];
            for (x, y) in qc.iter().zip(yc) {
                for l in 0..8 {
                    acc[l] += term::<DOT>(x[l], y[l]);
                }
            }
            *oc = finish::<DOT>(&acc, qt, yt);
        }
    }
}

/// Sums the eight lanes, then adds the d mod 8 tail terms.
#[inline(always)]
fn finish<const DOT: bool>(acc: &[f64; 8], xt: &[f64], yt: &[f64]) -> f64 {
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in xt.iter().zip(yt) {
        s += term::<DOT>(*x, *y);
    }
    s
}

#[inline(always)]
fn term<const DOT: bool>(x: f64, y: f64) -> f64 {
    if DOT {
        x * y
    } else {
        (x - y) * (x - y)
    }
}

#[inline(always)]
fn sq_dist_body(q: &[f64], r: &[f64], d: usize, out: &mut [f64]) {
    tile_body::<false>(q, r, d, out)
}

#[inline(always)]
fn dot_body(q: &[f64], r: &[f64], d: usize, out: &mut [f64]) {
    tile_body::<true>(q, r, d, out)
}

multiversion!(
    /// Squared Euclidean distances between the rows of `q` and of `r` (see [`tile_body`]).
    fn sq_dist_tile(q: &[f64], r: &[f64], d: usize, out: &mut [f64]) => sq_dist_body
);
multiversion!(
    /// Dot products between the rows of `q` and of `r` (see [`tile_body`]).
    fn dot_tile(q: &[f64], r: &[f64], d: usize, out: &mut [f64]) => dot_body
);

/// Reference rows `j0..j0+R_BLOCK` (clipped at n) of an N×d set, with their first index.
fn ref_blocks(r: &[f64], d: usize, from: usize) -> impl Iterator<Item = (usize, &[f64])> {
    let n = r.len() / d;
    (from..n)
        .step_by(R_BLOCK)
        .map(move |j0| (j0, &r[j0 * d..(j0 + R_BLOCK).min(n) * d]))
}

// ---------------------------------------------------------------------------------------------
// KID

/// The KID kernel on a dot product: k(x, y) = (x·y/d + 1)³, the cubic polynomial kernel of
/// Bińkowski et al. 2018 (γ = 1/d, c = 1), as in clean-fid and torch-fidelity.
#[inline]
fn poly3(dot: f64, d: usize) -> f64 {
    let t = dot / d as f64 + 1.0;
    t * t * t
}

/// Σ_{i<j} k(x_i, x_j) over one set, each unordered pair once (half the kernel evaluations).
fn within_kernel_sum(x: &[f64], d: usize) -> f64 {
    let parts: Vec<f64> = x
        .par_chunks(Q_BLOCK * d)
        .enumerate()
        .map(|(bi, q)| {
            let i0 = bi * Q_BLOCK;
            let nq = q.len() / d;
            let mut tile = vec![0.0; Q_BLOCK * R_BLOCK];
            let mut s = 0.0;
            // Columns from i0 on: pairs with both ends in earlier rows were counted by earlier
            // blocks; inside the tile only j > i counts.
            for (j0, r) in ref_blocks(x, d, i0) {
                let nr = r.len() / d;
                dot_tile(q, r, d, &mut tile[..nq * nr]);
                for a in 0..nq {
                    let first = (i0 + a + 1).saturating_sub(j0).min(nr);
                    s += tile[a * nr + first..(a + 1) * nr]
                        .iter()
                        .map(|&t| poly3(t, d))
                        .sum::<f64>();
                }
            }
            s
        })
        .collect();
    parts.iter().sum()
}

/// Σ_{i,j} k(x_i, y_j) over all pairs of two sets.
fn cross_kernel_sum(x: &[f64], y: &[f64], d: usize) -> f64 {
    let parts: Vec<f64> = x
        .par_chunks(Q_BLOCK * d)
        .map(|q| {
            let nq = q.len() / d;
            let mut tile = vec![0.0; Q_BLOCK * R_BLOCK];
            let mut s = 0.0;
            for (_, r) in ref_blocks(y, d, 0) {
                let nr = r.len() / d;
                dot_tile(q, r, d, &mut tile[..nq * nr]);
                s += tile[..nq * nr].iter().map(|&t| poly3(t, d)).sum::<f64>();
            }
            s
        })
        .collect();
    parts.iter().sum()
}

/// Unbiased squared MMD with the KID kernel on all points of two sets of m and n rows:
///
/// MMD²_u = Σ_{i≠i'} k(a_i, a_i')/(m(m−1)) + Σ_{j≠j'} k(b_j, b_j')/(n(n−1)) − 2 Σ_{i,j} k(a_i, b_j)/(mn)
///
/// (Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR, Lemma 6: two U-statistics and a
/// sample mean; Bińkowski et al. 2018 call its value on Inception features the KID). Dropping the diagonal i = i' is what makes it unbiased:
/// E[MMD²_u] equals the population MMD² for any m, n ≥ 2, so unlike FID its value does not
/// drift with the sample size — and it can be negative when the two distributions agree. It
/// is the estimator `mmd2(…, mmd_est='unbiased')` of torch-fidelity and clean-fid's
/// `kernel_distance` for one subset (those two use m = n).
///
/// Cost O((m + n)²·d); [`kid`] averages it over subsets instead for large sets.
pub fn kid_full(a: &[f64], b: &[f64], d: usize) -> f64 {
    let (m, n) = (rows(a, d), rows(b, d));
    assert!(
        m >= 2 && n >= 2,
        "kid_full needs at least 2 rows in each set (got {m} and {n})"
    );
    let (m, n) = (m as f64, n as f64);
    2.0 * within_kernel_sum(a, d) / (m * (m - 1.0)) + 2.0 * within_kernel_sum(b, d) / (n * (n - 1.0))
        - 2.0 * cross_kernel_sum(a, b, d) / (m * n)
}

/// `m` distinct indices of `0..idx.len()`, uniformly at random (partial Fisher–Yates on `idx`,
/// which any earlier shuffling leaves a permutation of the same indices).
fn choose(rng: &mut Rng, idx: &mut [usize], m: usize) -> Vec<usize> {
    for i in 0..m {
        let j = i + rng.below(idx.len() - i);
        idx.swap(i, j);
    }
    idx[..m].to_vec()
}

/// The rows `idx` of an N×d set, gathered into a new m×d set.
fn gather(x: &[f64], d: usize, idx: &[usize]) -> Vec<f64> {
    idx.iter().flat_map(|&i| &x[i * d..(i + 1) * d]).copied().collect()
}

/// Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", ICLR) in
/// the protocol of clean-fid and torch-fidelity: `subsets` times, draw `subset_size` rows of
/// `a` and, independently, `subset_size` rows of `b`, each without replacement, and take the
/// unbiased MMD² of [`kid_full`] between the two subsets. Returns the mean over subsets and its
/// standard error std/√subsets (std with the n − 1 divisor; NaN when `subsets` = 1).
///
/// Why subsets: one estimate on all N points costs O(N²·d); 100 subsets of 1000 cost a fixed
/// 3·10⁸ kernel evaluations whatever N, and each subset's estimate is unbiased, so their mean is
/// too.
///
/// What the standard error covers: only the spread from drawing the subsets out of these two
/// fixed sets, not the sampling noise of the sets themselves; when `subsets·subset_size` is not
/// small next to N the subsets overlap and it understates the uncertainty about the population
/// value. torch-fidelity reports the std itself (`kernel_inception_distance_std`), i.e. this
/// value times √subsets; clean-fid reports only the mean.
///
/// `subset_size` is clipped to the smaller set's size, as clean-fid does; the subsets are drawn
/// from `Rng::new(seed)`, so the result is a pure function of the inputs.
pub fn kid(a: &[f64], b: &[f64], d: usize, subsets: usize, subset_size: usize, seed: u64) -> (f64, f64) {
    let (na, nb) = (rows(a, d), rows(b, d));
    let m = subset_size.min(na).min(nb);
    assert!(
        m >= 2,
        "kid needs subsets of at least 2 rows (sizes {na}, {nb}, subset_size {subset_size})"
    );
    assert!(subsets >= 1, "kid needs at least one subset");
    // Draw every subset first, in order, so that the estimates do not depend on the order in
    // which the parallel tasks below run.
    let mut rng = Rng::new(seed);
    let (mut ia, mut ib): (Vec<usize>, Vec<usize>) = ((0..na).collect(), (0..nb).collect());
    let draws: Vec<(Vec<usize>, Vec<usize>)> = (0..subsets)
        .map(|_| (choose(&mut rng, &mut ia, m), choose(&mut rng, &mut ib, m)))
        .collect();
    let est: Vec<f64> = draws
        .par_iter()
        .map(|(sa, sb)| kid_full(&gather(a, d, sa), &gather(b, d, sb), d))
        .collect();
    let s = subsets as f64;
    let mean = est.iter().sum::<f64>() / s;
    let var = est.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (s - 1.0);
    (mean, (var / s).sqrt())
}

// ---------------------------------------------------------------------------------------------
// Nearest neighbours

/// For each row of `x`, the squared distance to its k-th nearest neighbour among the other rows
/// (its own index excluded, so an exact duplicate elsewhere in the set counts, at distance 0).
fn knn_radii_sq(x: &[f64], d: usize, k: usize) -> Vec<f64> {
    let n = rows(x, d);
    assert!(
        k >= 1 && n > k,
        "k-NN radii need k ≥ 1 and more than k rows (k = {k}, {n} rows)"
    );
    let mut radii = vec![0.0; n];
    radii
        .par_chunks_mut(Q_BLOCK)
        .zip(x.par_chunks(Q_BLOCK * d))
        .enumerate()
        .for_each(|(bi, (rad, q))| {
            let i0 = bi * Q_BLOCK;
            let nq = rad.len();
            // Per query row, its k smallest distances so far, ascending.
            let mut best = vec![f64::INFINITY; nq * k];
            let mut tile = vec![0.0; Q_BLOCK * R_BLOCK];
            for (j0, r) in ref_blocks(x, d, 0) {
                let nr = r.len() / d;
                sq_dist_tile(q, r, d, &mut tile[..nq * nr]);
                for a in 0..nq {
                    let bst = &mut best[a * k..(a + 1) * k];
                    for (c, &v) in tile[a * nr..(a + 1) * nr].iter().enumerate() {
                        if v < bst[k - 1] && j0 + c != i0 + a {
                            let mut p = k - 1;
                            while p > 0 && bst[p - 1] > v {
                                bst[p] = bst[p - 1];
                                p -= 1;
                            }
                            bst[p] = v;
                        }
                    }
                }
            }
            for (a, ra) in rad.iter_mut().enumerate() {
                *ra = best[a * k + k - 1];
            }
        });
    radii
}

/// How many rows of `q` lie in at least one ball of `r`: ‖q_i − r_j‖² ≤ `radii_sq[j]` for some j.
fn covered_count(q: &[f64], r: &[f64], radii_sq: &[f64], d: usize) -> usize {
    let parts: Vec<usize> = q
        .par_chunks(Q_BLOCK * d)
        .map(|qb| {
            let nq = qb.len() / d;
            let mut covered = [false; Q_BLOCK];
            let mut left = nq;
            let mut tile = vec![0.0; Q_BLOCK * R_BLOCK];
            for (j0, rb) in ref_blocks(r, d, 0) {
                // Once every row of the block is covered the remaining balls cannot change it.
                if left == 0 {
                    break;
                }
                let nr = rb.len() / d;
                sq_dist_tile(qb, rb, d, &mut tile[..nq * nr]);
                for a in 0..nq {
                    if !covered[a]
                        && tile[a * nr..(a + 1) * nr]
                            .iter()
                            .zip(&radii_sq[j0..j0 + nr])
                            .any(|(v, r)| v <= r)
                    {
                        covered[a] = true;
                        left -= 1;
                    }
                }
            }
            nq - left
        })
        .collect();
    parts.iter().sum()
}

/// For each row of `q`, the index of its nearest row in `r` (the lowest index on ties) and the
/// squared distance to it.
fn nearest(q: &[f64], r: &[f64], d: usize) -> Vec<(usize, f64)> {
    let mut out = vec![(0usize, f64::INFINITY); rows(q, d)];
    out.par_chunks_mut(Q_BLOCK)
        .zip(q.par_chunks(Q_BLOCK * d))
        .for_each(|(o, qb)| {
            let nq = o.len();
            let mut tile = vec![0.0; Q_BLOCK * R_BLOCK];
            for (j0, rb) in ref_blocks(r, d, 0) {
                let nr = rb.len() / d;
                sq_dist_tile(qb, rb, d, &mut tile[..nq * nr]);
                for (a, oa) in o.iter_mut().enumerate() {
                    for (c, &v) in tile[a * nr..(a + 1) * nr].iter().enumerate() {
                        // Strict: an equal distance later keeps the earlier (lower) index.
                        if v < oa.1 {
                            *oa = (j0 + c, v);
                        }
                    }
                }
            }
        });
    out
}

// ---------------------------------------------------------------------------------------------
// Precision and recall

/// Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
/// Metric for Assessing Generative Models", NeurIPS, §2, eqs. 1–3). Each sample's neighbourhood is the ball
/// around it whose radius is the distance to its k-th nearest neighbour within its own set
/// (itself excluded; k = [`PR_K`] = 3 in the paper); a set's manifold is the union of its
/// balls, and with f(φ, Φ) = 1 if ‖φ − φ'‖ ≤ ‖φ' − NN_k(φ', Φ)‖ for some φ' ∈ Φ (eq. 1):
///
/// precision = (1/|Φ_g|) Σ_{φ_g} f(φ_g, Φ_r)  — the share of fake samples on the real manifold;
/// recall    = (1/|Φ_r|) Σ_{φ_r} f(φ_r, Φ_g)  — the share of real samples on the fake manifold.
///
/// Returns `(precision, recall)`. Distances are compared squared (the same order, no square
/// roots), and a point on a ball's boundary counts as inside (≤, as in the paper and its
/// official code, which also compares squared distances). The two sets may differ in size; each needs more than k rows. Cost
/// O((|Φ_r| + |Φ_g|)²·d) time, O(N·d) memory.
pub fn precision_recall(real: &[f64], fake: &[f64], d: usize, k: usize) -> (f64, f64) {
    let (nr, nf) = (rows(real, d), rows(fake, d));
    let (rad_r, rad_f) = (knn_radii_sq(real, d, k), knn_radii_sq(fake, d, k));
    let precision = covered_count(fake, real, &rad_r, d) as f64 / nf as f64;
    let recall = covered_count(real, fake, &rad_f, d) as f64 / nr as f64;
    (precision, recall)
}

// ---------------------------------------------------------------------------------------------
// Memorisation

/// The share of generated samples that sit closer to a training sample than that training
/// sample's own nearest neighbour in the training set — the complement of the "authenticity"
/// of Alaa et al. 2022 ("How Faithful is your Synthetic Data? Sample-level Metrics for
/// Evaluating and Auditing Generative Models", ICML).
///
/// Exact rule, with distances Euclidean in the feature space: for each sample s, let t be its
/// nearest training row (the lowest index on ties) and δ(s) = ‖s − t‖; let ρ(t) be the
/// distance from t to its nearest *other* training row. s counts as memorised when
/// δ(s) < ρ(t), or when δ(s) = 0 (an exact copy counts even if the training set holds a
/// duplicate of t, which makes ρ(t) = 0). The result is (memorised samples)/(samples).
///
/// Exact copies give 1. A sample drawn independently from the training distribution is
/// memorised by this rule exactly when s and t are mutual nearest neighbours in train ∪ {s},
/// which is far from rare: for standard Gaussians we measured about 0.6 at d = 2, 0.4 at d = 8
/// and 0.17 at d = 64 (scipy k-d tree, 1000 samples against 1000–5000 training points). So
/// read the value against the same statistic of held-out real data (the no-memorisation
/// baseline), not against 0.
pub fn memorisation_share(samples: &[f64], train: &[f64], d: usize) -> f64 {
    let ns = rows(samples, d);
    assert!(ns > 0, "memorisation_share needs at least one sample");
    let near = nearest(samples, train, d);
    // ρ(t) only for the training rows that are some sample's nearest: with 10 000 samples
    // against 60 000 training images that is at most a sixth of the full k-NN pass.
    let mut matched: Vec<usize> = near.iter().map(|&(t, _)| t).collect();
    matched.sort_unstable();
    matched.dedup();
    let rho = nn_dist_sq_of(&matched, train, d);
    let hits = near
        .iter()
        .filter(|&&(t, dsq)| {
            let r = rho[matched.binary_search(&t).expect("matched row")];
            dsq < r || dsq == 0.0
        })
        .count();
    hits as f64 / ns as f64
}

/// For each training row index in `idx`, the squared distance to its nearest *other* row of
/// `train` (itself excluded by index, so a duplicate gives 0): [`knn_radii_sq`] with k = 1
/// for just these rows.
fn nn_dist_sq_of(idx: &[usize], train: &[f64], d: usize) -> Vec<f64> {
    let q: Vec<f64> = idx
        .iter()
        .flat_map(|&i| train[i * d..(i + 1) * d].iter().copied())
        .collect();
    let mut out = vec![f64::INFINITY; idx.len()];
    out.par_chunks_mut(Q_BLOCK)
        .zip(q.par_chunks(Q_BLOCK * d))
        .zip(idx.par_chunks(Q_BLOCK))
        .for_each(|((o, qb), ib)| {
            let nq = o.len();
            let mut tile = vec![0.0; Q_BLOCK * R_BLOCK];
            for (j0, rb) in ref_blocks(train, d, 0) {
                let nr = rb.len() / d;
                sq_dist_tile(qb, rb, d, &mut tile[..nq * nr]);
                for (a, oa) in o.iter_mut().enumerate() {
                    for (c, &v) in tile[a * nr..(a + 1) * nr].iter().enumerate() {
                        if v < *oa && j0 + c != ib[a] {
                            *oa = v;
                        }
                    }
                }
            }
        });
    out
}

// ---------------------------------------------------------------------------------------------
// Class agreement

/// The share of samples whose class, as predicted by a classifier on the generated image,
/// equals the class the sample was conditioned on: whether a class-conditional model obeys its
/// label, as far as the classifier can tell (its own error rate bounds what this can show on
/// real data). Panics when the slices differ in length or are empty.
pub fn class_agreement(predicted: &[usize], conditioning: &[usize]) -> f64 {
    assert_eq!(
        predicted.len(),
        conditioning.len(),
        "class_agreement: predicted and conditioning differ in length"
    );
    assert!(!predicted.is_empty(), "class_agreement of no samples");
    let same = predicted.iter().zip(conditioning).filter(|(p, c)| p == c).count();
    same as f64 / predicted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n rows of N(mean, L·Lᵀ), drawn as mean + L·z (`l` row-major d×d).
    fn gauss(rng: &mut Rng, n: usize, mean: &[f64], l: &[f64]) -> Vec<f64> {
        let d = mean.len();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            out.extend((0..d).map(|i| mean[i] + (0..d).map(|j| l[i * d + j] * z[j]).sum::<f64>()));
        }
        out
    }

    fn eye(d: usize) -> Vec<f64> {
        (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect()
    }

    /// n rows of N(shift·1, I) in d dimensions.
    fn std_gauss(rng: &mut Rng, n: usize, d: usize, shift: f64) -> Vec<f64> {
        (0..n * d).map(|_| shift + rng.normal()).collect()
    }

    /// x_ij = sin(0.7 i + 1.3 j + c) + 0.5 cos(0.11 i (j + 1) + c): fixed sets that the numpy
    /// reference script rebuilds with the same operations in the same order.
    fn det(n: usize, d: usize, c: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * d);
        for i in 0..n {
            for j in 0..d {
                let (i, j) = (i as f64, j as f64);
                out.push((0.7 * i + 1.3 * j + c).sin() + 0.5 * (0.11 * i * (j + 1.0) + c).cos());
            }
        }
        out
    }

    fn mean_se(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, (var / n).sqrt())
    }

    // ----- brute-force references: plain loops over all pairs, sequential sums, no tiles -----

    fn row(x: &[f64], d: usize, i: usize) -> &[f64] {
        &x[i * d..(i + 1) * d]
    }

    fn sq(x: &[f64], y: &[f64]) -> f64 {
        x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
    }

    fn k3(x: &[f64], y: &[f64]) -> f64 {
        (x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() / x.len() as f64 + 1.0).powi(3)
    }

    /// MMD² with the cubic kernel; `unbiased = false` keeps the diagonal (the V-statistic).
    fn mmd_naive(a: &[f64], b: &[f64], d: usize, unbiased: bool) -> f64 {
        let (m, n) = (a.len() / d, b.len() / d);
        let within = |x: &[f64], n: usize| {
            let mut s = 0.0;
            for i in 0..n {
                for j in 0..n {
                    if i != j || !unbiased {
                        s += k3(row(x, d, i), row(x, d, j));
                    }
                }
            }
            s / if unbiased { (n * (n - 1)) as f64 } else { (n * n) as f64 }
        };
        let mut cross = 0.0;
        for i in 0..m {
            for j in 0..n {
                cross += k3(row(a, d, i), row(b, d, j));
            }
        }
        within(a, m) + within(b, n) - 2.0 * cross / (m * n) as f64
    }

    /// Squared distance from each row to its k-th nearest other row, by sorting all distances.
    fn radii_naive(x: &[f64], d: usize, k: usize) -> Vec<f64> {
        let n = x.len() / d;
        (0..n)
            .map(|i| {
                let mut ds: Vec<f64> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| sq(row(x, d, i), row(x, d, j)))
                    .collect();
                ds.sort_by(f64::total_cmp);
                ds[k - 1]
            })
            .collect()
    }

    fn pr_naive(real: &[f64], fake: &[f64], d: usize, k: usize) -> (f64, f64) {
        let (rr, rf) = (radii_naive(real, d, k), radii_naive(fake, d, k));
        let share = |q: &[f64], r: &[f64], rad: &[f64]| {
            let nq = q.len() / d;
            let inside = (0..nq).filter(|&i| (0..r.len() / d).any(|j| sq(row(q, d, i), row(r, d, j)) <= rad[j]));
            inside.count() as f64 / nq as f64
        };
        (share(fake, real, &rr), share(real, fake, &rf))
    }

    fn memo_naive(samples: &[f64], train: &[f64], d: usize) -> f64 {
        let (ns, nt) = (samples.len() / d, train.len() / d);
        let rho = radii_naive(train, d, 1);
        let hits = (0..ns)
            .filter(|&i| {
                let s = row(samples, d, i);
                let mut t = 0;
                for j in 1..nt {
                    if sq(s, row(train, d, j)) < sq(s, row(train, d, t)) {
                        t = j;
                    }
                }
                let dsq = sq(s, row(train, d, t));
                dsq < rho[t] || dsq == 0.0
            })
            .count();
        hits as f64 / ns as f64
    }

    // ----- KID -----

    /// E (X·Y/d + 1)³ for independent X ~ N(m1, S1), Y ~ N(m2, S2) in d dimensions.
    ///
    /// With s = X·Y and (k(x,y) = Σ_j C(3,j) (s/d)^j) only E s, E s², E s³ are needed:
    ///   E s  = m1·m2 =: a
    ///   E s² = tr(M1 M2),  M_i = S_i + m_i m_iᵀ (E[Xᵀ Y Yᵀ X] = E[Xᵀ M2 X])
    ///   E s³ = a³ + 3a·m2ᵀS1m2 + 3[a(m1ᵀS2m1 + tr(S1S2)) + 2·m2ᵀS1S2m1]
    /// (given X, s ~ N(m2·X, XᵀS2X) and E Z³ = μ³ + 3μσ² for Z ~ N(μ, σ²); then X = m1 + Z1 and
    /// the odd moments of Z1 vanish). Checked against 5·10⁷-pair Monte Carlo in the numpy script.
    fn ek(m1: &[f64], s1: &[f64], m2: &[f64], s2: &[f64]) -> f64 {
        let d = m1.len();
        let mm = |x: &[f64], y: &[f64]| -> Vec<f64> {
            (0..d * d)
                .map(|ij| (0..d).map(|k| x[ij / d * d + k] * y[k * d + ij % d]).sum())
                .collect()
        };
        let mv =
            |x: &[f64], v: &[f64]| -> Vec<f64> { (0..d).map(|i| (0..d).map(|k| x[i * d + k] * v[k]).sum()).collect() };
        let dot = |u: &[f64], v: &[f64]| -> f64 { u.iter().zip(v).map(|(p, q)| p * q).sum() };
        let tr = |x: &[f64]| -> f64 { (0..d).map(|i| x[i * d + i]).sum() };
        let second =
            |s: &[f64], m: &[f64]| -> Vec<f64> { (0..d * d).map(|ij| s[ij] + m[ij / d] * m[ij % d]).collect() };
        let a = dot(m1, m2);
        let e2 = tr(&mm(&second(s1, m1), &second(s2, m2)));
        let s1s2 = mm(s1, s2);
        let e3 = a.powi(3)
            + 3.0 * a * dot(m2, &mv(s1, m2))
            + 3.0 * (a * (dot(m1, &mv(s2, m1)) + tr(&s1s2)) + 2.0 * dot(m2, &mv(&s1s2, m1)));
        let d = d as f64;
        1.0 + 3.0 * a / d + 3.0 * e2 / (d * d) + e3 / (d * d * d)
    }

    /// The pair of 4-D Gaussians of the unbiasedness tests: X ~ N(0, I), Y ~ N(m2, L Lᵀ).
    fn gaussian_pair() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let m2 = vec![0.5, 0.0, -0.5, 0.25];
        #[rustfmt::skip]
        let l2 = vec![
            1.0, 0.0, 0.0, 0.0,
            0.3, 0.8, 0.0, 0.0,
            0.0, -0.2, 1.2, 0.0,
            0.1, 0.0, 0.4, 0.6,
        ];
        (vec![0.0; 4], eye(4), m2, l2)
    }

    fn closed_form_mmd2(m1: &[f64], l1: &[f64], m2: &[f64], l2: &[f64]) -> f64 {
        let d = m1.len();
        let cov = |l: &[f64]| -> Vec<f64> {
            (0..d * d)
                .map(|ij| (0..d).map(|k| l[ij / d * d + k] * l[ij % d * d + k]).sum())
                .collect()
        };
        let (s1, s2) = (cov(l1), cov(l2));
        ek(m1, &s1, m1, &s1) + ek(m2, &s2, m2, &s2) - 2.0 * ek(m1, &s1, m2, &s2)
    }

    /// Reference values from this throwaway numpy (2.4.6) script, run once; abridged to what
    /// the tests use:
    ///
    /// ```python
    /// def ek(m1, S1, m2, S2, d):   # same formula as `ek` above
    ///     a = m1 @ m2; M1 = S1 + np.outer(m1, m1); M2 = S2 + np.outer(m2, m2)
    ///     e3 = a**3 + 3*a*(m2 @ S1 @ m2) + 3*(a*(m1 @ S2 @ m1 + np.trace(S1 @ S2)) + 2*(m2 @ S1 @ S2 @ m1))
    ///     return 1 + 3*a/d + 3*np.trace(M1 @ M2)/d**2 + e3/d**3
    /// def mmd2_unbiased(x, y):     # clean-fid kernel_distance / torch-fidelity mmd2, any m, n
    ///     d = x.shape[1]
    ///     kxx = (x @ x.T / d + 1) ** 3; kyy = (y @ y.T / d + 1) ** 3; kxy = (x @ y.T / d + 1) ** 3
    ///     m, n = len(x), len(y)
    ///     return ((kxx.sum() - np.trace(kxx)) / (m*(m-1)) + (kyy.sum() - np.trace(kyy)) / (n*(n-1))
    ///             - 2 * kxy.sum() / (m*n))
    /// d = 4; m1 = np.zeros(d); S1 = np.eye(d); m2 = np.array([0.5, 0.0, -0.5, 0.25])
    /// L = np.array([[1.0,0,0,0], [0.3,0.8,0,0], [0,-0.2,1.2,0], [0.1,0,0.4,0.6]]); S2 = L @ L.T
    /// mmd2_closed = ek(m1,S1,m1,S1,d) + ek(m2,S2,m2,S2,d) - 2*ek(m1,S1,m2,S2,d)
    ///     # -> 0.9357746154785156  (E k: XX' 1.75, YY' 2.7992121154785155, XY 1.80671875)
    /// # Monte Carlo, 5e7 pairs per term: E k(X,Y) 1.80662 ± 0.00040 (closed 1.80672),
    /// # E k(Y,Y') 2.79956 ± 0.00074 (closed 2.79921); a third pair with both means and both
    /// # covariances non-trivial: 1.90649 ± 0.00039 (closed 1.90699).
    /// # Mean of 20000 mmd2_unbiased on m = n = 20 draws: 0.92659 ± 0.00609.
    /// def det(n, d, c):
    ///     i = np.arange(n)[:, None]; j = np.arange(d)[None, :]
    ///     return np.sin(0.7 * i + 1.3 * j + c) + 0.5 * np.cos(0.11 * i * (j + 1) + c)
    /// mmd2_unbiased(det(37, 5, 0.0), det(29, 5, 1.0) + 0.2)   # -> -0.12274598631181721
    /// ```
    const NUMPY_MMD2_CLOSED: f64 = 0.9357746154785156;
    const NUMPY_KID_FULL_DET: f64 = -0.12274598631181721;

    #[test]
    fn kid_full_matches_numpy_on_fixed_sets() {
        let a = det(37, 5, 0.0);
        let b: Vec<f64> = det(29, 5, 1.0).iter().map(|x| x + 0.2).collect();
        let got = kid_full(&a, &b, 5);
        assert!(
            (got - NUMPY_KID_FULL_DET).abs() < 1e-12,
            "{got} vs numpy {NUMPY_KID_FULL_DET}"
        );
    }

    #[test]
    fn kid_full_matches_brute_force_across_tiles() {
        // Sizes that are not multiples of the blocks and span several tiles; d with and without
        // a tail after the 8-lane chunks.
        let mut r = Rng::new(4);
        for d in [3, 11, 16] {
            let a = std_gauss(&mut r, 300, d, 0.0);
            let b = std_gauss(&mut r, 171, d, 0.3);
            let (got, want) = (kid_full(&a, &b, d), mmd_naive(&a, &b, d, true));
            assert!(
                (got - want).abs() < 1e-11 * want.abs().max(1.0),
                "d {d}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn kid_full_is_unbiased_for_gaussians() {
        let (m1, l1, m2, l2) = gaussian_pair();
        let want = closed_form_mmd2(&m1, &l1, &m2, &l2);
        assert!(
            (want - NUMPY_MMD2_CLOSED).abs() < 1e-12,
            "closed form {want} vs numpy {NUMPY_MMD2_CLOSED}"
        );
        // Unbiased means right on average at any size, so use many tiny sets where a biased
        // estimator would be far off.
        let (reps, m) = (4000, 20);
        let mut r = Rng::new(11);
        let (mut u, mut v) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
        for _ in 0..reps {
            let a = gauss(&mut r, m, &m1, &l1);
            let b = gauss(&mut r, m, &m2, &l2);
            u.push(kid_full(&a, &b, 4));
            v.push(mmd_naive(&a, &b, 4, false));
        }
        let (mu, se) = mean_se(&u);
        assert!((mu - want).abs() < 4.0 * se, "mean {mu} ± {se} vs closed form {want}");
        // The test has the power to see a bias: the V-statistic (diagonal kept) on the same
        // draws is rejected by a wide margin.
        let (mv, _) = mean_se(&v);
        assert!(
            (mv - want).abs() > 10.0 * se,
            "V-statistic {mv} not told apart from {want} (se {se})"
        );
    }

    #[test]
    fn kid_over_subsets_is_unbiased_and_its_standard_error_is_honest() {
        // Same distribution: zero within the standard error. Subsets of 200 out of 10 000 barely
        // overlap, so the standard error is close to the true sampling error here.
        let mut r = Rng::new(12);
        let d = 16;
        let a = std_gauss(&mut r, 10_000, d, 0.0);
        let b = std_gauss(&mut r, 10_000, d, 0.0);
        let (mean, se) = kid(&a, &b, d, 100, 200, 1);
        assert!(se > 0.0 && mean.abs() < 3.0 * se, "same distribution: {mean} ± {se}");
        // A small shift is seen.
        let c = std_gauss(&mut r, 10_000, d, 0.15);
        let (ms, ses) = kid(&a, &c, d, 100, 200, 1);
        assert!(ms > 10.0 * ses, "shifted: {ms} ± {ses}");
        // Known case: the subset mean is centred on the closed form.
        let (m1, l1, m2, l2) = gaussian_pair();
        let want = closed_form_mmd2(&m1, &l1, &m2, &l2);
        let x = gauss(&mut r, 20_000, &m1, &l1);
        let y = gauss(&mut r, 20_000, &m2, &l2);
        let (mk, sek) = kid(&x, &y, 4, 200, 100, 2);
        assert!((mk - want).abs() < 4.0 * sek, "{mk} ± {sek} vs closed form {want}");
    }

    #[test]
    fn kid_with_whole_sets_as_subsets_is_kid_full_and_seeded() {
        let a = det(40, 5, 0.0);
        let b: Vec<f64> = det(40, 5, 1.0).iter().map(|x| x + 0.2).collect();
        let full = kid_full(&a, &b, 5);
        // subset_size is clipped to 40, so each subset is a permutation of the whole set.
        let (mean, se) = kid(&a, &b, 5, 3, 1000, 9);
        assert!((mean - full).abs() < 1e-12 && se < 1e-12, "{mean} ± {se} vs {full}");
        let mut r = Rng::new(5);
        let x = std_gauss(&mut r, 500, 8, 0.0);
        let y = std_gauss(&mut r, 500, 8, 0.1);
        assert_eq!(kid(&x, &y, 8, 10, 50, 3), kid(&x, &y, 8, 10, 50, 3));
        assert_ne!(kid(&x, &y, 8, 10, 50, 3), kid(&x, &y, 8, 10, 50, 4));
    }

    // ----- precision / recall -----

    #[test]
    fn precision_recall_of_identical_and_of_far_apart_sets() {
        let mut r = Rng::new(6);
        let x = std_gauss(&mut r, 700, 8, 0.0);
        assert_eq!(precision_recall(&x, &x, 8, PR_K), (1.0, 1.0));
        let far: Vec<f64> = x.iter().map(|v| v + 100.0).collect();
        assert_eq!(precision_recall(&x, &far, 8, PR_K), (0.0, 0.0));
    }

    #[test]
    fn precision_recall_of_a_fake_set_missing_half_the_modes() {
        // Real: four unit Gaussians 14–20 apart in 2-D; fake: only the first two. Even a fake
        // set from the real distribution itself scores a little under 1 on both (the k-NN balls
        // of a finite set miss part of the distribution's tails; more so in higher d), so
        // compare with that baseline: dropping two modes keeps precision and halves recall.
        let d = 2;
        let centre = |c: usize| -> Vec<f64> {
            let mut m = vec![0.0; d];
            m[c / 2] = if c.is_multiple_of(2) { 10.0 } else { -10.0 };
            m
        };
        let mut r = Rng::new(7);
        let mut draw = |modes: usize| -> Vec<f64> {
            (0..modes)
                .flat_map(|c| gauss(&mut r, 1000, &centre(c), &eye(d)))
                .collect()
        };
        let real = draw(4);
        let (full, half) = (draw(4), draw(2));
        let (p0, r0) = precision_recall(&real, &full, d, PR_K);
        assert!(p0 > 0.9 && r0 > 0.9, "same distribution: {p0}, {r0}");
        let (p, rec) = precision_recall(&real, &half, d, PR_K);
        assert!((p - p0).abs() < 0.03, "precision {p} vs baseline {p0}");
        assert!((rec - 0.5 * r0).abs() < 0.03, "recall {rec} vs half the baseline {r0}");
    }

    #[test]
    fn precision_recall_counts_the_ball_boundary_as_inside() {
        // A worked 1-D case with k = 1, exact in f64. Real points 0, 1, 3, 6, 10 have radii
        // 1, 1, 2, 3, 4. Fake −1 is at distance 1 from 0 and 14 at distance 4 from 10, both
        // exactly on a ball's boundary (inside, ≤); 4.5 is 1.5 from 3 (inside); 20 is outside.
        // Fake radii are 5.5, 5.5, 6, 6 and cover every real point.
        let real = [0.0, 1.0, 3.0, 6.0, 10.0];
        let fake = [-1.0, 14.0, 20.0, 4.5];
        assert_eq!(precision_recall(&real, &fake, 1, 1), (0.75, 1.0));
        assert_eq!(precision_recall(&fake, &real, 1, 1), (1.0, 0.75));
    }

    #[test]
    fn precision_recall_matches_brute_force() {
        let mut r = Rng::new(8);
        for d in [5, 11] {
            let mut real = std_gauss(&mut r, 300, d, 0.0);
            let mut fake = std_gauss(&mut r, 271, d, 0.4);
            // Duplicates inside a set (zero radii) and copies across sets (zero distances).
            real.copy_within(10 * d..20 * d, 200 * d);
            fake[..30 * d].copy_from_slice(&real[50 * d..80 * d]);
            for k in [1, 3, 5] {
                assert_eq!(
                    precision_recall(&real, &fake, d, k),
                    pr_naive(&real, &fake, d, k),
                    "d {d} k {k}"
                );
            }
        }
    }

    // ----- memorisation -----

    #[test]
    fn memorisation_of_copies_is_one() {
        let mut r = Rng::new(9);
        let d = 16;
        let mut train = std_gauss(&mut r, 2000, d, 0.0);
        assert_eq!(memorisation_share(&train[..500 * d], &train, d), 1.0);
        // Still 1 when the copied training rows have duplicates (their ρ is 0).
        train.copy_within(0..10 * d, 1000 * d);
        assert_eq!(memorisation_share(&train[..10 * d], &train, d), 1.0);
        // Near-copies (of rows without duplicates): noise far below the nearest-neighbour
        // spacing (about 3 here).
        let noisy: Vec<f64> = train[100 * d..600 * d].iter().map(|v| v + 0.01 * r.normal()).collect();
        assert_eq!(memorisation_share(&noisy, &train, d), 1.0);
    }

    #[test]
    fn memorisation_of_a_fresh_draw_is_the_mutual_neighbour_rate() {
        // In 64-D a fresh sample and its nearest training row are mutual nearest neighbours
        // about 17 % of the time (scipy reference in the doc comment); copies add on top.
        let mut r = Rng::new(10);
        let d = 64;
        let train = std_gauss(&mut r, 5000, d, 0.0);
        let fresh = std_gauss(&mut r, 1000, d, 0.0);
        let base = memorisation_share(&fresh, &train, d);
        assert!((0.08..0.3).contains(&base), "fresh draw {base}");
        let mut half = fresh.clone();
        half[..500 * d].copy_from_slice(&train[..500 * d]);
        let mixed = memorisation_share(&half, &train, d);
        let want = 0.5 + 0.5 * memorisation_share(&fresh[500 * d..], &train, d);
        assert!((mixed - want).abs() < 1e-12, "{mixed} vs {want}");
        assert!(mixed > base + 0.3);
    }

    #[test]
    fn memorisation_matches_brute_force() {
        let mut r = Rng::new(13);
        for d in [2, 11] {
            let mut train = std_gauss(&mut r, 300, d, 0.0);
            train.copy_within(0..5 * d, 250 * d);
            let mut samples = std_gauss(&mut r, 200, d, 0.0);
            samples[..20 * d].copy_from_slice(&train[..20 * d]);
            assert_eq!(
                memorisation_share(&samples, &train, d),
                memo_naive(&samples, &train, d),
                "d {d}"
            );
        }
    }

    // ----- class agreement -----

    #[test]
    fn class_agreement_counts_matches() {
        assert_eq!(class_agreement(&[1, 2, 3], &[1, 2, 3]), 1.0);
        assert_eq!(class_agreement(&[0, 0, 0, 0], &[1, 2, 3, 4]), 0.0);
        assert_eq!(class_agreement(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
    }

    #[test]
    #[should_panic(expected = "differ in length")]
    fn class_agreement_rejects_unequal_lengths() {
        class_agreement(&[1, 2], &[1]);
    }

    /// Timing on 10k×10k at d = 64 (not a pass/fail test):
    /// `cargo test --release --lib featstats::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_10k_by_10k_d64() {
        let mut r = Rng::new(14);
        let d = 64;
        let real = std_gauss(&mut r, 10_000, d, 0.0);
        let fake = std_gauss(&mut r, 10_000, d, 0.05);
        let t = std::time::Instant::now();
        let pr = precision_recall(&real, &fake, d, PR_K);
        println!(
            "precision_recall 10k×10k d64 k3: {:.2} s  {pr:?}",
            t.elapsed().as_secs_f64()
        );
        let t = std::time::Instant::now();
        let k = kid(&real, &fake, d, KID_SUBSETS, KID_SUBSET_SIZE, 0);
        println!("kid 100×1000 d64: {:.2} s  {k:?}", t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let m = memorisation_share(&fake, &real, d);
        println!(
            "memorisation_share 10k vs 10k d64: {:.2} s  {m}",
            t.elapsed().as_secs_f64()
        );
        let t = std::time::Instant::now();
        let kf = kid_full(&real, &fake, d);
        println!("kid_full 10k×10k d64: {:.2} s  {kf}", t.elapsed().as_secs_f64());
        println!("rayon threads: {}", rayon::current_num_threads());
    }
}
