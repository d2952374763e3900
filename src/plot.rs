//! Temporary stub; replaced by the real plotting module.
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub px: Vec<[u8; 3]>,
}
pub fn scatter_panels(_panels: &[(&str, &[f64])], _range: Option<(f64, f64, f64, f64)>) -> Canvas {
    Canvas { w: 1, h: 1, px: vec![[255; 3]] }
}
pub fn line_plot(_title: &str, _series: &[(&str, &[(f64, f64)])]) -> Canvas {
    Canvas { w: 1, h: 1, px: vec![[255; 3]] }
}
pub fn write_png_atomic(_path: &std::path::Path, _c: &Canvas) -> std::io::Result<()> {
    Ok(())
}
