//! The statistics behind `cm repro`'s verdicts: Student-t intervals of paired differences over
//! seeds, the exact binomial (Clopper–Pearson) interval of a rate, Fisher's exact test of two
//! rates, and the verdict rule (stated once, in [`super`]'s module docs, and applied here).
//!
//! Special functions are computed from `libm::lgamma` and the continued fraction of the
//! regularised incomplete beta function (Numerical Recipes, 3rd ed., §6.4); quantiles by
//! bisection. All are tested against published values.

use serde::{Deserialize, Serialize};

/// The verdict of one test of a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The 95 % interval of the effect lies on the claimed side (see [`super`]).
    Reproduced,
    /// The interval lies on the other side, or inside the equivalence margin.
    NotReproduced,
    /// Neither.
    Inconclusive,
}

impl Verdict {
    /// The words of the ledger.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// ln B(a, b).
fn ln_beta(a: f64, b: f64) -> f64 {
    libm::lgamma(a) + libm::lgamma(b) - libm::lgamma(a + b)
}

/// Continued fraction of the incomplete beta function (modified Lentz; NR §6.4 `betacf`).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b).
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * (1.0 - x).ln() - ln_beta(a, b)).exp();
    // The continued fraction converges fast for x < (a + 1)/(a + b + 2); use the symmetry
    // I_x(a, b) = 1 − I_{1−x}(b, a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// Quantile of Beta(a, b) by bisection on [`beta_inc`] (to 1e-12).
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if beta_inc(a, b, mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// CDF of Student's t with `df` degrees of freedom:
/// P(T ≤ t) = 1 − ½·I_{df/(df+t²)}(df/2, ½) for t ≥ 0.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * beta_inc(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Quantile of Student's t with `df` degrees of freedom (bisection on [`t_cdf`], to 1e-10).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile({p}, {df})");
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..300 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-11 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Mean, sample standard deviation and the two-sided 95 % Student-t interval of the mean.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Number of values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator; NaN for n < 2).
    pub sd: f64,
    /// Lower end of the 95 % interval (−∞ for n < 2).
    pub lo: f64,
    /// Upper end (+∞ for n < 2).
    pub hi: f64,
}

/// The 95 % t interval of the mean of `xs`: mean ± t_{0.975, n−1}·sd/√n. With one value the
/// interval is unbounded (nothing is known about the spread).
pub fn t_interval(xs: &[f64]) -> Interval {
    let n = xs.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / n as f64
    };
    if n < 2 {
        return Interval {
            n,
            mean,
            sd: f64::NAN,
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let half = t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt();
    Interval {
        n,
        mean,
        sd,
        lo: mean - half,
        hi: mean + half,
    }
}

/// Verdict of a superiority test: the effect is positive in the claimed direction.
/// Reproduced if lo > 0; not reproduced if hi < 0, or if the whole interval lies within
/// (−margin, margin) (no effect of a size that matters); inconclusive otherwise.
pub fn superiority(ci: &Interval, margin: f64) -> Verdict {
    if ci.lo > 0.0 {
        Verdict::Reproduced
    } else if ci.hi < 0.0 || (ci.lo > -margin && ci.hi < margin) {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    }
}

/// Verdict of a non-inferiority test ("matches or beats"): the effect is the advantage of the
/// arm over the reference (positive = better). Reproduced if lo > −margin; not reproduced if
/// hi < −margin; inconclusive otherwise.
pub fn non_inferiority(ci: &Interval, margin: f64) -> Verdict {
    if ci.lo > -margin {
        Verdict::Reproduced
    } else if ci.hi < -margin {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    }
}

/// The exact (Clopper–Pearson) two-sided 95 % interval of a rate k/n.
pub fn clopper_pearson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, nf) = (k as f64, n as f64);
    let lo = if k == 0.0 {
        0.0
    } else {
        beta_quantile(0.025, k, nf - k + 1.0)
    };
    let hi = if k == nf {
        1.0
    } else {
        beta_quantile(0.975, k + 1.0, nf - k)
    };
    (lo, hi)
}

fn ln_choose(n: usize, k: usize) -> f64 {
    libm::lgamma(n as f64 + 1.0) - libm::lgamma(k as f64 + 1.0) - libm::lgamma((n - k) as f64 + 1.0)
}

/// Fisher's exact test, one-sided: the probability, with both arms' margins fixed, that arm A
/// has at least `ka` events out of `na` when A and B (`kb` of `nb`) share one rate
/// (the hypergeometric upper tail).
pub fn fisher_one_sided(ka: usize, na: usize, kb: usize, nb: usize) -> f64 {
    let k = ka + kb;
    let n = na + nb;
    let denom = ln_choose(n, k);
    let mut p = 0.0;
    for x in ka..=k.min(na) {
        if k - x > nb {
            continue;
        }
        p += (ln_choose(na, x) + ln_choose(nb, k - x) - denom).exp();
    }
    p.min(1.0)
}

/// Verdict of a stability claim: `off` (the technique removed) diverges in `k_off` of `n_off`
/// runs, `on` in `k_on` of `n_on`. Reproduced if Fisher's one-sided p < 0.05; not reproduced
/// if the runs without the technique diverge no more often than those with it; inconclusive
/// otherwise.
pub fn rate_verdict(k_off: usize, n_off: usize, k_on: usize, n_on: usize) -> (Verdict, f64) {
    let p = fisher_one_sided(k_off, n_off, k_on, n_on);
    let rate = |k: usize, n: usize| k as f64 / n.max(1) as f64;
    let v = if p < 0.05 {
        Verdict::Reproduced
    } else if rate(k_off, n_off) <= rate(k_on, n_on) {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    };
    (v, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-sided 95 % critical values of Student's t (any table, e.g. NIST/SEMATECH e-Handbook
    /// 1.3.6.7.2): df 1 → 12.706, 2 → 4.303, 4 → 2.776, 10 → 2.228, 30 → 2.042.
    #[test]
    fn t_quantiles_match_tables() {
        for (df, want) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (4.0, 2.776_445_105),
            (10.0, 2.228_138_852),
            (30.0, 2.042_272_456),
        ] {
            let got = t_quantile(0.975, df);
            assert!((got - want).abs() < 1e-6, "df {df}: {got} vs {want}");
        }
        // Large df approaches the normal quantile 1.959964.
        assert!((t_quantile(0.975, 1e6) - 1.959_964).abs() < 1e-5);
        // One-sided 95 % at df 4: 2.131847.
        assert!((t_quantile(0.95, 4.0) - 2.131_847_1).abs() < 1e-6);
        assert!((t_cdf(0.0, 3.0) - 0.5).abs() < 1e-12);
        assert!((t_quantile(0.025, 2.0) + 4.302_652_730).abs() < 1e-6);
    }

    /// A hand-computed interval: xs = 1, 2, 3 → mean 2, sd 1, half-width 4.302653/√3 = 2.484138.
    #[test]
    fn t_interval_by_hand() {
        let ci = t_interval(&[1.0, 2.0, 3.0]);
        assert_eq!(ci.n, 3);
        assert!((ci.mean - 2.0).abs() < 1e-12 && (ci.sd - 1.0).abs() < 1e-12);
        assert!((ci.lo - (2.0 - 2.484_138)).abs() < 1e-5, "{ci:?}");
        assert!((ci.hi - (2.0 + 2.484_138)).abs() < 1e-5, "{ci:?}");
        let one = t_interval(&[0.3]);
        assert!(one.lo.is_infinite() && one.hi.is_infinite() && one.mean == 0.3);
        assert_eq!(superiority(&one, 0.01), Verdict::Inconclusive);
    }

    #[test]
    fn verdict_rules() {
        let ci = |lo, hi| Interval {
            n: 3,
            mean: 0.5 * (lo + hi),
            sd: 1.0,
            lo,
            hi,
        };
        assert_eq!(superiority(&ci(0.01, 0.3), 0.02), Verdict::Reproduced);
        assert_eq!(superiority(&ci(-0.3, -0.01), 0.02), Verdict::NotReproduced);
        assert_eq!(superiority(&ci(-0.01, 0.015), 0.02), Verdict::NotReproduced);
        assert_eq!(superiority(&ci(-0.1, 0.2), 0.02), Verdict::Inconclusive);
        assert_eq!(non_inferiority(&ci(-0.01, 0.05), 0.02), Verdict::Reproduced);
        assert_eq!(non_inferiority(&ci(-0.2, -0.05), 0.02), Verdict::NotReproduced);
        assert_eq!(non_inferiority(&ci(-0.05, 0.05), 0.02), Verdict::Inconclusive);
    }

    /// Clopper–Pearson: 0/5 → [0, 0.5218]; 5/5 → [0.4782, 1]; 2/5 → [0.0527, 0.8534]
    /// (R: `binom.test(2, 5)$conf.int`).
    #[test]
    fn clopper_pearson_matches_r() {
        let (lo, hi) = clopper_pearson(0, 5);
        assert!(lo == 0.0 && (hi - 0.521_823).abs() < 1e-5, "{hi}");
        let (lo, hi) = clopper_pearson(5, 5);
        assert!((lo - 0.478_176_9).abs() < 1e-5 && hi == 1.0);
        let (lo, hi) = clopper_pearson(2, 5);
        assert!(
            (lo - 0.052_745_3).abs() < 1e-5 && (hi - 0.853_367_1).abs() < 1e-5,
            "{lo} {hi}"
        );
    }

    /// Fisher one-sided, by hand: with 5 events among 10 runs (5/5 vs 0/5) the table is the
    /// most extreme one, p = 1/C(10,5) = 1/252; 4/5 vs 0/5 is P(X ≥ 4) for
    /// X ~ Hypergeometric(N 10, K 5, draws 4) = C(5,4)/C(10,4) = 5/210.
    #[test]
    fn fisher_by_hand() {
        assert!((fisher_one_sided(5, 5, 0, 5) - 1.0 / 252.0).abs() < 1e-12);
        assert!((fisher_one_sided(4, 5, 0, 5) - 5.0 / 210.0).abs() < 1e-12);
        assert!((fisher_one_sided(0, 5, 0, 5) - 1.0).abs() < 1e-12);
        // 3/5 vs 0/5: P(X ≥ 3), X ~ Hyp(10, 5, 3) = C(5,3)/C(10,3) = 10/120.
        assert!((fisher_one_sided(3, 5, 0, 5) - 10.0 / 120.0).abs() < 1e-12);
        assert_eq!(rate_verdict(4, 5, 0, 5).0, Verdict::Reproduced);
        assert_eq!(rate_verdict(3, 5, 0, 5).0, Verdict::Inconclusive);
        assert_eq!(rate_verdict(0, 5, 0, 5).0, Verdict::NotReproduced);
        assert_eq!(rate_verdict(1, 5, 2, 5).0, Verdict::NotReproduced);
    }
}
