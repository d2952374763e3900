//! How well the mixture `method.teacher = "gmm"` fits ([`cm::data::em::fit_teacher`], what the
//! demo uses) models each point data set: the SWD of 10 000 of its exact samples against the
//! demo's reference, as a multiple of the demo's data floor (mean of 8 fresh draws), averaged
//! over 5 sample draws (one SWD carries ±30 % sampling noise); the fit's time and size; and the
//! time of one 512-row denoiser call (the teacher's cost in a distillation step), Cholesky per
//! row ([`cm::data::gmm::Gmm::denoise_rows`]) against the diagonalised form ([`EigenGmm`]).
//!
//! `cargo run --release --example gmm_fit [DATA...]` (default: the built-ins without an exact
//! mixture, then ring8).
use cm::data::gmm::EigenGmm;
use cm::data::{em, Dataset};
use cm::eval::{swd, swd_floor};
use cm::rng::Rng;

fn main() -> anyhow::Result<()> {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names = ["moons", "swiss-roll", "checkerboard", "rings", "pinwheel", "ring8"]
            .map(String::from)
            .to_vec();
    }
    let n = 10_000;
    for name in &names {
        let data = Dataset::from_name(name)?;
        let d = data.dim();
        let st = data.standardizer();
        let f = em::fit_teacher(&data, &st, 0)?;
        let (reference, first) = data.reference_pair(&mut Rng::new(0xE7A1), n);
        let floor = swd_floor(&data, &reference, &first, &mut Rng::new(0xF1005));
        let s = (7..12)
            .map(|s| swd(&st.inverse(&f.gmm.sample(&mut Rng::new(s), n)), &reference, d))
            .sum::<f64>()
            / 5.0;
        let xs = f.gmm.sample(&mut Rng::new(3), 512);
        let mut r = Rng::new(4);
        let sig: Vec<f64> = (0..512).map(|_| (r.normal() * 1.2 - 1.1).exp()).collect();
        let time = |g: &dyn Fn() -> Vec<f64>| {
            let t = std::time::Instant::now();
            for _ in 0..10 {
                std::hint::black_box(g());
            }
            t.elapsed().as_secs_f64() * 100.0
        };
        let e = EigenGmm::new(&f.gmm);
        println!(
            "{name:14} K={:3} ({} points, {:.1}s)  SWD {s:.4} floor {:.4} = {:.2}x  denoise 512 rows: {:.2} ms Cholesky, {:.2} ms eigen  held-out ll {:?}",
            f.selection.k,
            f.points,
            f.seconds,
            floor.mean,
            s / floor.mean,
            time(&|| f.gmm.denoise_rows(&xs, &sig)),
            time(&|| e.denoise_rows(&xs, &sig)),
            f.selection.tried.iter().map(|(k, l)| format!("{k}:{l:.3}")).collect::<Vec<_>>()
        );
    }
    Ok(())
}
