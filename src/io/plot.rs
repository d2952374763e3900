//! Dependency-light plotting for training diagnostics.
//!
//! Everything here renders into a plain RGB [`Canvas`] and is encoded with the `png` crate only:
//! no font files, no system libraries, so plots can be written from any training run (including
//! headless CI) without extra setup. Text uses a tiny built-in 5x7 bitmap font that covers ASCII
//! letters, digits, space and the symbols `.,-+:=()/%_[]*`; any other character is drawn as a
//! hollow box so a missing glyph is visible rather than silently dropped.
//!
//! Coordinates: pixel positions are `i64` so that drawing partly (or wholly) off the canvas is
//! clipped instead of wrapping around or panicking; sizes are `usize`.

use std::path::Path;

/// Page background used by all plot helpers.
const WHITE: [u8; 3] = [255, 255, 255];
/// Light grid lines: visible but never competing with data.
const GRID: [u8; 3] = [228, 228, 228];
/// Plot-area frame.
const FRAME: [u8; 3] = [150, 150, 150];
/// Titles and tick labels.
const INK: [u8; 3] = [40, 40, 40];
/// Scatter dot colour (dark blue: darkens a white background clearly even at low alpha).
const DOT: [u8; 3] = [20, 60, 170];
/// Distinct series colours (matplotlib's "tab10").
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Glyph cell: 5x7 glyph plus one column/row of spacing.
const CELL_W: usize = 6;
const GLYPH_H: usize = 7;

/// An RGB canvas, row-major: pixel `(x, y)` is `px[y * w + x]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels (at least 1).
    pub w: usize,
    /// Height in pixels (at least 1).
    pub h: usize,
    /// The `w·h` RGB pixels, row-major from the top-left.
    pub px: Vec<[u8; 3]>,
}

impl Canvas {
    /// A `w`×`h` canvas filled with `bg`. Zero sizes are raised to 1 because a PNG cannot be
    /// empty, and a plot of nothing should still be writable.
    pub fn new(w: usize, h: usize, bg: [u8; 3]) -> Self {
        let (w, h) = (w.max(1), h.max(1));
        Canvas {
            w,
            h,
            px: vec![bg; w * h],
        }
    }

    /// Pixel at `(x, y)`, or `None` outside the canvas.
    pub fn get(&self, x: i64, y: i64) -> Option<[u8; 3]> {
        self.index(x, y).map(|i| self.px[i])
    }

    /// Sets one pixel; silently ignores positions outside the canvas.
    pub fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if let Some(i) = self.index(x, y) {
            self.px[i] = color;
        }
    }

    /// Alpha-blends `color` over the pixel at `(x, y)` (`alpha` in [0, 1]). Repeated blends
    /// accumulate, which is what makes overlapping scatter dots show density.
    pub fn blend(&mut self, x: i64, y: i64, color: [u8; 3], alpha: f32) {
        let a = alpha.clamp(0.0, 1.0);
        if let Some(i) = self.index(x, y) {
            let p = &mut self.px[i];
            for k in 0..3 {
                let v = p[k] as f32 * (1.0 - a) + color[k] as f32 * a;
                p[k] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            None
        } else {
            Some(y as usize * self.w + x as usize)
        }
    }

    /// Fills a `w`×`h` rectangle with top-left corner `(x, y)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, color: [u8; 3]) {
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = (x.saturating_add(w as i64)).min(self.w as i64);
        let y1 = (y.saturating_add(h as i64)).min(self.h as i64);
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.px[yy as usize * self.w + xx as usize] = color;
            }
        }
    }

    /// Outline of a rectangle (1 px), clipped to the canvas.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: usize, h: usize, color: [u8; 3]) {
        if w == 0 || h == 0 {
            return;
        }
        let (x1, y1) = (x + w as i64 - 1, y + h as i64 - 1);
        self.line(x, y, x1, y, color);
        self.line(x, y1, x1, y1, color);
        self.line(x, y, x, y1, color);
        self.line(x1, y, x1, y1, color);
    }

    /// 1-px line from `(x0, y0)` to `(x1, y1)` inclusive (Bresenham). The segment is clipped to
    /// the canvas first, so far-off endpoints cost nothing and never wrap.
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3]) {
        let Some((x0, y0, x1, y1)) = self.clip_segment(x0, y0, x1, y1) else {
            return;
        };
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Liang–Barsky clip of a segment to the canvas rectangle, in f64 to avoid overflow.
    fn clip_segment(&self, x0: i64, y0: i64, x1: i64, y1: i64) -> Option<(i64, i64, i64, i64)> {
        let (fx0, fy0) = (x0 as f64, y0 as f64);
        let (dx, dy) = (x1 as f64 - fx0, y1 as f64 - fy0);
        let (xmax, ymax) = ((self.w - 1) as f64, (self.h - 1) as f64);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [(-dx, fx0), (dx, xmax - fx0), (-dy, fy0), (dy, ymax - fy0)] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if t0 > t1 {
            return None;
        }
        // Unclipped endpoints stay exact; clipped ones are rounded back into the canvas.
        let pt = |t: f64| -> (i64, i64) {
            let x = (fx0 + t * dx).round().clamp(0.0, xmax) as i64;
            let y = (fy0 + t * dy).round().clamp(0.0, ymax) as i64;
            (x, y)
        };
        let (a, b) = if t0 == 0.0 { (x0, y0) } else { pt(t0) };
        let (c, d) = if t1 == 1.0 { (x1, y1) } else { pt(t1) };
        Some((a, b, c, d))
    }

    /// Draws `s` with its top-left corner at `(x, y)` using the built-in 5x7 font, each font
    /// pixel becoming a `scale`×`scale` block. `'\n'` starts a new line. Clipped to the canvas.
    pub fn text(&mut self, x: i64, y: i64, s: &str, color: [u8; 3], scale: usize) {
        let sc = scale.max(1) as i64;
        let (mut cx, mut cy) = (x, y);
        for ch in s.chars() {
            if ch == '\n' {
                cx = x;
                cy += (GLYPH_H as i64 + 2) * sc;
                continue;
            }
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for c in 0..5 {
                    if bits & (0x10 >> c) != 0 {
                        let px = cx + c as i64 * sc;
                        let py = cy + r as i64 * sc;
                        self.fill_rect(px, py, sc as usize, sc as usize, color);
                    }
                }
            }
            cx += CELL_W as i64 * sc;
        }
    }

    /// Copies `other` with its top-left corner at `(x, y)`, clipped to this canvas.
    pub fn blit(&mut self, other: &Canvas, x: i64, y: i64) {
        for oy in 0..other.h {
            let ty = y + oy as i64;
            if ty < 0 || ty >= self.h as i64 {
                continue;
            }
            for ox in 0..other.w {
                let tx = x + ox as i64;
                if tx < 0 || tx >= self.w as i64 {
                    continue;
                }
                self.px[ty as usize * self.w + tx as usize] = other.px[oy * other.w + ox];
            }
        }
    }

    /// Encodes the canvas as an 8-bit RGB PNG.
    pub fn to_png_bytes(&self) -> Vec<u8> {
        assert_eq!(self.px.len(), self.w * self.h, "Canvas px length must be w*h");
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().expect("PNG header into a Vec cannot fail");
            let raw: Vec<u8> = self.px.iter().flatten().copied().collect();
            writer.write_image_data(&raw).expect("PNG data into a Vec cannot fail");
        }
        out
    }
}

/// Width in pixels of `s` rendered at `scale` (widest line if `s` contains newlines; no
/// trailing spacing column), for centring and right-aligning labels.
pub fn text_width(s: &str, scale: usize) -> usize {
    let n = s.split('\n').map(|l| l.chars().count()).max().unwrap_or(0);
    if n == 0 {
        0
    } else {
        (n * CELL_W - 1) * scale.max(1)
    }
}

/// Characters with a real glyph (besides space). Everything else renders as a hollow box.
pub const FONT_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,-+:=()/%_[]*";

/// 5x7 glyph rows, top to bottom; bit 4 (0x10) is the leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c {
        ' ' => [0; 7],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        'a' => [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
        'c' => [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        'e' => [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        // x-height bowl and a descender, so 'g' does not read as '9' ("trainin9 loss").
        'g' => [0x00, 0x00, 0x0F, 0x11, 0x0F, 0x01, 0x0E],
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        'i' => [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'j' => [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'm' => [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'n' => [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'q' => [0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'u' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D],
        'v' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'w' => [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A],
        'x' => [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        'y' => [0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'z' => [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '*' => [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00],
        // Unsupported: a hollow box, so the gap is obvious.
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

/// Writes PNG bytes atomically: write to `<path>.tmp-<pid>`, fsync, rename over `path`.
///
/// Readers (a dashboard, a person refreshing an image viewer) therefore see either the old or
/// the new complete file, never a half-written one, even if training is killed mid-write.
/// The temp file is removed if anything fails.
pub fn write_png_atomic(path: &Path, canvas: &Canvas) -> anyhow::Result<()> {
    super::write_atomic(path, &canvas.to_png_bytes())
}

// ---------------------------------------------------------------------------------------------
// Axis helpers
// ---------------------------------------------------------------------------------------------

/// "Nice" tick positions (multiples of 1, 2 or 5 × 10^k) inside `[lo, hi]`, about `target` of
/// them. Returns an empty list for a degenerate or non-finite range.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (Vec::new(), 0.0);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
    let mut ticks = Vec::new();
    let mut i = (lo / step).ceil();
    while ticks.len() < 100 {
        let v = i * step;
        if v > hi + step * 1e-9 {
            break;
        }
        // Snap float noise (e.g. 3e-17) to an exact zero so it prints as "0".
        ticks.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        i += 1.0;
    }
    (ticks, step)
}

/// Tick label with just enough decimals for the tick spacing `step`; scientific notation for
/// very large or very small magnitudes so labels stay short.
fn fmt_tick(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let decimals = if step > 0.0 {
        (-(step.log10()) - 1e-9).ceil().max(0.0) as usize
    } else {
        2
    };
    if v.abs() >= 1e5 || decimals > 4 {
        format!("{:.1e}", v)
    } else {
        format!("{:.*}", decimals, v)
    }
}

/// Label for `m × 10^e` on a log axis: plain decimals for moderate exponents, `me±k` otherwise.
fn fmt_log_tick(m: u32, e: i32) -> String {
    if (-3..=4).contains(&e) {
        let v = m as f64 * 10f64.powi(e);
        format!("{:.*}", (-e).max(0) as usize, v)
    } else {
        format!("{}e{}", m, e)
    }
}

/// Linear interpolated percentile (`p` in [0, 1]) of already-sorted data.
fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let f = pos - i as f64;
    sorted[i] * (1.0 - f) + sorted[j] * f
}

/// Automatic scatter range from row-major (x, y) pairs: 0.5th–99.5th percentiles per axis (so a
/// few outliers or a diverged sample do not squash the plot), padded by 15% and made square
/// (equal span on both axes) so shapes are not distorted.
fn auto_range(points: &[f64]) -> (f64, f64, f64, f64) {
    let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = points
        .chunks_exact(2)
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .map(|p| (p[0], p[1]))
        .unzip();
    if xs.is_empty() {
        return (-1.0, 1.0, -1.0, 1.0);
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    ys.sort_by(|a, b| a.total_cmp(b));
    let (x0, x1) = (percentile_sorted(&xs, 0.005), percentile_sorted(&xs, 0.995));
    let (y0, y1) = (percentile_sorted(&ys, 0.005), percentile_sorted(&ys, 0.995));
    let span = (x1 - x0).max(y1 - y0) * 1.3;
    let span = if span > 0.0 && span.is_finite() { span } else { 1.0 };
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    (cx - span / 2.0, cx + span / 2.0, cy - span / 2.0, cy + span / 2.0)
}

// ---------------------------------------------------------------------------------------------
// Scatter panels
// ---------------------------------------------------------------------------------------------

/// Side length of a scatter plot area in pixels.
const SC_AREA: usize = 360;
/// Margins around the plot area inside one panel: room for the title and tick labels.
const SC_LEFT: usize = 48;
const SC_RIGHT: usize = 14;
const SC_TOP: usize = 26;
const SC_BOTTOM: usize = 20;
const SC_PANEL_W: usize = SC_LEFT + SC_AREA + SC_RIGHT;
const SC_PANEL_H: usize = SC_TOP + SC_AREA + SC_BOTTOM;

/// Pixel of data point `(x, y)` in a scatter area whose top-left is `(ox, oy)`, or `None` if
/// the point is non-finite or outside the range. The range check happens in f64 *before* any
/// integer conversion, so far-away points can never wrap into view.
fn scatter_pixel(x: f64, y: f64, r: (f64, f64, f64, f64), ox: i64, oy: i64) -> Option<(i64, i64)> {
    let (xmin, xmax, ymin, ymax) = r;
    if !(x >= xmin && x <= xmax && y >= ymin && y <= ymax) {
        return None; // also rejects NaN
    }
    let last = (SC_AREA - 1) as f64;
    let fx = (x - xmin) / (xmax - xmin) * last;
    let fy = (ymax - y) / (ymax - ymin) * last; // y grows upwards
    Some((ox + fx.round() as i64, oy + fy.round() as i64))
}

/// Side-by-side 2-D scatter panels with a shared axis range. Each panel: (title, row-major points N×2 as f64).
///
/// Points are drawn as small semi-transparent dots (alpha-blended so density shows; the alpha
/// shrinks as N grows so dense clouds do not saturate). Each panel is a 360x360 plot area plus a
/// title strip and tick-label margins, with light grid lines on the shared range. Range:
/// `range` if `Some((xmin, xmax, ymin, ymax))` (used as given, not squared), else computed from
/// the FIRST panel's points (0.5th/99.5th percentiles, padded 15%, square aspect); an invalid
/// given range (non-finite or empty) also falls back to the automatic one. Points outside the
/// range are skipped (not clamped), as are NaN/inf points. A trailing odd coordinate is ignored.
pub fn scatter_panels(panels: &[(&str, &[f64])], range: Option<(f64, f64, f64, f64)>) -> Canvas {
    let valid = |r: (f64, f64, f64, f64)| [r.0, r.1, r.2, r.3].iter().all(|v| v.is_finite()) && r.1 > r.0 && r.3 > r.2;
    let r = match range {
        Some(r) if valid(r) => r,
        _ => auto_range(panels.first().map(|p| p.1).unwrap_or(&[])),
    };
    let n_panels = panels.len().max(1);
    let mut cv = Canvas::new(n_panels * SC_PANEL_W, SC_PANEL_H, WHITE);
    let (xt, xstep) = nice_ticks(r.0, r.1, 5);
    let (yt, ystep) = nice_ticks(r.2, r.3, 5);
    let area = SC_AREA as i64;

    for slot in 0..n_panels {
        let ox = (slot * SC_PANEL_W + SC_LEFT) as i64;
        let oy = SC_TOP as i64;
        // Grid + tick labels (positions via the same mapping as the data).
        for &t in &xt {
            if let Some((px, _)) = scatter_pixel(t, r.2, r, ox, oy) {
                cv.line(px, oy, px, oy + area - 1, GRID);
                let label = fmt_tick(t, xstep);
                let lw = text_width(&label, 1) as i64;
                cv.text(px - lw / 2, oy + area + 5, &label, INK, 1);
            }
        }
        for &t in &yt {
            if let Some((_, py)) = scatter_pixel(r.0, t, r, ox, oy) {
                cv.line(ox, py, ox + area - 1, py, GRID);
                let label = fmt_tick(t, ystep);
                let lw = text_width(&label, 1) as i64;
                cv.text(ox - 5 - lw, py - 3, &label, INK, 1);
            }
        }
        if let Some((title, pts)) = panels.get(slot) {
            let n = pts
                .chunks_exact(2)
                .filter(|p| p[0].is_finite() && p[1].is_finite())
                .count()
                .max(1);
            let alpha = (300.0 / n as f32).sqrt().clamp(0.08, 0.7);
            for p in pts.chunks_exact(2) {
                let Some((px, py)) = scatter_pixel(p[0], p[1], r, ox, oy) else {
                    continue;
                };
                // 3x3 dot with softened corners, clipped to the plot area.
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (x, y) = (px + dx, py + dy);
                        if x < ox || y < oy || x >= ox + area || y >= oy + area {
                            continue;
                        }
                        let a = if dx != 0 && dy != 0 { alpha * 0.4 } else { alpha };
                        cv.blend(x, y, DOT, a);
                    }
                }
            }
            // Title, truncated to the panel width so it never spills into the next panel.
            let max_chars = (SC_PANEL_W - 8) / (CELL_W * 2);
            let t: String = title.chars().take(max_chars).collect();
            let tw = text_width(&t, 2) as i64;
            let tx = (slot * SC_PANEL_W) as i64 + SC_PANEL_W as i64 / 2 - tw / 2;
            cv.text(tx.max((slot * SC_PANEL_W) as i64 + 4), 5, &t, INK, 2);
        }
        cv.stroke_rect(ox - 1, oy - 1, SC_AREA + 2, SC_AREA + 2, FRAME);
    }
    cv
}

// ---------------------------------------------------------------------------------------------
// Line plot
// ---------------------------------------------------------------------------------------------

const LP_W: usize = 800;
const LP_H: usize = 450;
const LP_LEFT: i64 = 66;
const LP_RIGHT: i64 = 16;
const LP_TOP: i64 = 30;
const LP_BOTTOM: i64 = 30;
/// EMA decay for the smoothed overlay (the TensorBoard-style default).
const EMA: f64 = 0.9;

/// Mixes `c` toward white by `t` (0 = unchanged, 1 = white): the faint colour of raw curves.
fn lighten(c: [u8; 3], t: f32) -> [u8; 3] {
    c.map(|v| (v as f32 + (255.0 - v as f32) * t).round() as u8)
}

/// Loss curve(s): x = step, y = value on a log10 axis when all values > 0 (else linear); several
/// named series in distinct colours with a legend; also draws a smoothed (EMA 0.9) version of
/// each series over the raw one. Axis tick labels with the font. 800x450.
///
/// The raw curve is drawn faint and the EMA bold in the same hue, so the trend is readable
/// even when per-step losses are noisy. Non-finite points are skipped (the curve breaks there)
/// and ignored for the log/linear decision and the axis range.
pub fn line_plot(title: &str, series: &[(&str, &[(f64, f64)])]) -> Canvas {
    let mut cv = Canvas::new(LP_W, LP_H, WHITE);
    let (x0, y0) = (LP_LEFT, LP_TOP);
    let (x1, y1) = (LP_W as i64 - LP_RIGHT - 1, LP_H as i64 - LP_BOTTOM - 1);
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().filter(finite).copied()).collect();
    let log = !all.is_empty() && all.iter().all(|p| p.1 > 0.0);
    let ty = |v: f64| if log { v.log10() } else { v };

    // Data ranges (x unpadded: steps usually start at 0; y padded 5%).
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &all {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(ty(y));
        ymax = ymax.max(ty(y));
    }
    if all.is_empty() {
        (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
    }
    if xmax <= xmin {
        (xmin, xmax) = (xmin - 0.5, xmax + 0.5);
    }
    if ymax <= ymin {
        let d = if log || ymin == 0.0 { 0.5 } else { ymin.abs() * 0.1 };
        (ymin, ymax) = (ymin - d, ymax + d);
    }
    let pad = (ymax - ymin) * 0.05;
    (ymin, ymax) = (ymin - pad, ymax + pad);

    let map = |x: f64, yt: f64| -> (i64, i64) {
        let fx = x0 as f64 + (x - xmin) / (xmax - xmin) * (x1 - x0) as f64;
        let fy = y1 as f64 - (yt - ymin) / (ymax - ymin) * (y1 - y0) as f64;
        (fx.round() as i64, fy.round() as i64)
    };

    // Grid and tick labels.
    let (xt, xstep) = nice_ticks(xmin, xmax, 8);
    for &t in &xt {
        let (px, _) = map(t, ymin);
        cv.line(px, y0, px, y1, GRID);
        let label = fmt_tick(t, xstep);
        cv.text(px - text_width(&label, 1) as i64 / 2, y1 + 6, &label, INK, 1);
    }
    for (pos, label) in y_ticks(ymin, ymax, log) {
        let (_, py) = map(xmin, pos);
        cv.line(x0, py, x1, py, GRID);
        cv.text(x0 - 5 - text_width(&label, 1) as i64, py - 3, &label, INK, 1);
    }
    let axis_note = if log { "step  (y: log scale)" } else { "step" };
    cv.text(
        x1 - text_width(axis_note, 1) as i64,
        LP_H as i64 - 11,
        axis_note,
        INK,
        1,
    );

    // Raw curves first (faint), then EMA curves (bold) on top of all raw ones.
    for pass in 0..2 {
        for (si, (_, pts)) in series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            let color = if pass == 0 { lighten(color, 0.6) } else { color };
            let mut ema: Option<f64> = None;
            let mut prev: Option<(i64, i64)> = None;
            let mut drawn = 0usize;
            for &(x, y) in pts.iter() {
                if !(x.is_finite() && y.is_finite()) {
                    prev = None; // break the curve at a gap
                    continue;
                }
                let v = if pass == 0 {
                    y
                } else {
                    let e = ema.map_or(y, |e| EMA * e + (1.0 - EMA) * y);
                    ema = Some(e);
                    e
                };
                let p = map(x, ty(v));
                if let Some(q) = prev {
                    cv.line(q.0, q.1, p.0, p.1, color);
                    if pass == 1 {
                        cv.line(q.0, q.1 + 1, p.0, p.1 + 1, color); // 2 px thick
                    }
                }
                prev = Some(p);
                drawn += 1;
            }
            // A lone point has no segment; mark it so it is not invisible.
            if drawn == 1 && pass == 1 {
                let p = prev.unwrap();
                cv.fill_rect(p.0 - 1, p.1 - 1, 3, 3, color);
            }
        }
    }
    cv.stroke_rect(x0, y0, (x1 - x0 + 1) as usize, (y1 - y0 + 1) as usize, FRAME);

    if all.is_empty() {
        let msg = "no data";
        let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
        cv.text(cx - text_width(msg, 2) as i64 / 2, cy - 7, msg, INK, 2);
    }

    let entries: Vec<(&str, bool)> = series.iter().map(|s| (s.0, false)).collect();
    legend(&mut cv, &entries, x1, y0);

    let tw = text_width(title, 2) as i64;
    cv.text((LP_W as i64 - tw) / 2, 8, title, INK, 2);
    cv
}

/// One line of a [`band_plot`]: its name and points (x, centre, low, high).
pub struct Band<'a> {
    /// Legend label.
    pub name: &'a str,
    /// (x, centre line, lower edge, upper edge) per point, in x order.
    pub points: &'a [(f64, f64, f64, f64)],
    /// A dashed line (reference lines such as an exact sampler or a teacher).
    pub dashed: bool,
}

/// Lines with shaded bands: x against a centre value (e.g. the mean over seeds), the band
/// between its low and high edges (e.g. the spread over seeds) shaded in the line's colour at
/// 18 % opacity; each point marked. A log10 y axis when every finite value is positive and the
/// values span more than a factor of 5 (else linear). `xlabel` is written under the axis,
/// `note` (e.g. "band: min-max over 3 seeds") in the top-left corner; a series with a single
/// point gets its band as an error bar. 800x450.
pub fn band_plot(title: &str, xlabel: &str, note: &str, series: &[Band<'_>]) -> Canvas {
    let mut cv = Canvas::new(LP_W, LP_H, WHITE);
    let (x0, y0) = (LP_LEFT, LP_TOP);
    let (x1, y1) = (LP_W as i64 - LP_RIGHT - 1, LP_H as i64 - LP_BOTTOM - 1);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in series {
        for &(x, m, lo, hi) in s.points {
            if !x.is_finite() {
                continue;
            }
            for v in [m, lo, hi] {
                if v.is_finite() {
                    xs.push(x);
                    ys.push(v);
                }
            }
        }
    }
    let (ylo, yhi) = ys.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let log = !ys.is_empty() && ylo > 0.0 && yhi / ylo > 5.0;
    let ty = |v: f64| if log { v.log10() } else { v };
    let (mut xmin, mut xmax) = xs.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (mut ymin, mut ymax) = if ys.is_empty() { (0.0, 1.0) } else { (ty(ylo), ty(yhi)) };
    if xs.is_empty() {
        (xmin, xmax) = (0.0, 1.0);
    }
    if xmax <= xmin {
        (xmin, xmax) = (xmin - 0.5, xmax + 0.5);
    }
    if ymax <= ymin {
        let d = if ymin == 0.0 { 0.5 } else { ymin.abs() * 0.1 };
        (ymin, ymax) = (ymin - d, ymax + d);
    }
    let pad = (ymax - ymin) * 0.06;
    (ymin, ymax) = (ymin - pad, ymax + pad);
    let xpad = (xmax - xmin) * 0.02;
    (xmin, xmax) = (xmin - xpad, xmax + xpad);
    let map = |x: f64, yt: f64| -> (f64, f64) {
        (
            x0 as f64 + (x - xmin) / (xmax - xmin) * (x1 - x0) as f64,
            y1 as f64 - (yt - ymin) / (ymax - ymin) * (y1 - y0) as f64,
        )
    };
    let (xt, xstep) = nice_ticks(xmin, xmax, 8);
    for &t in &xt {
        let px = map(t, ymin).0.round() as i64;
        cv.line(px, y0, px, y1, GRID);
        let label = fmt_tick(t, xstep);
        cv.text(px - text_width(&label, 1) as i64 / 2, y1 + 6, &label, INK, 1);
    }
    for (pos, label) in y_ticks(ymin, ymax, log) {
        let py = map(xmin, pos).1.round() as i64;
        cv.line(x0, py, x1, py, GRID);
        cv.text(x0 - 5 - text_width(&label, 1) as i64, py - 3, &label, INK, 1);
    }
    let axis_note = if log {
        format!("{xlabel}  (y: log scale)")
    } else {
        xlabel.to_string()
    };
    cv.text(
        x1 - text_width(&axis_note, 1) as i64,
        LP_H as i64 - 11,
        &axis_note,
        INK,
        1,
    );
    // Bands first (all of them), then the lines on top, so no band hides a line. Each pixel
    // column of a band is blended once (the union of the segments that cover it), so joints
    // between segments are not darker.
    for (si, s) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let mut cols: Vec<Option<(i64, i64)>> = vec![None; LP_W];
        for w in s.points.windows(2) {
            let (a, b) = (w[0], w[1]);
            if ![a.0, a.2, a.3, b.0, b.2, b.3].iter().all(|v| v.is_finite()) {
                continue;
            }
            let (pa, pb) = (map(a.0, ty(a.2)), map(b.0, ty(b.2)));
            let (qa, qb) = (map(a.0, ty(a.3)), map(b.0, ty(b.3)));
            let (ca, cb) = (pa.0.round() as i64, pb.0.round() as i64);
            for px in ca.max(x0)..=cb.min(x1) {
                let f = if cb > ca {
                    (px - ca) as f64 / (cb - ca) as f64
                } else {
                    0.0
                };
                let lo = pa.1 + f * (pb.1 - pa.1);
                let hi = qa.1 + f * (qb.1 - qa.1);
                let (top, bot) = (hi.min(lo).round() as i64, hi.max(lo).round() as i64);
                let c = &mut cols[px as usize];
                *c = Some(match *c {
                    Some((t, b)) => (t.min(top), b.max(bot)),
                    None => (top, bot),
                });
            }
        }
        for (px, c) in cols.iter().enumerate() {
            if let Some((top, bot)) = *c {
                for py in top.max(y0)..=bot.min(y1) {
                    cv.blend(px as i64, py, color, 0.18);
                }
            }
        }
    }
    for (si, s) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let mut prev: Option<(i64, i64)> = None;
        let mut seg = 0usize;
        for &(x, m, _, _) in s.points {
            if !(x.is_finite() && m.is_finite()) {
                prev = None;
                continue;
            }
            let (fx, fy) = map(x, ty(m));
            let p = (fx.round() as i64, fy.round() as i64);
            if let Some(q) = prev {
                if s.dashed {
                    // 8 px on, 6 px off along the segment.
                    let len = (((p.0 - q.0).pow(2) + (p.1 - q.1).pow(2)) as f64).sqrt().max(1.0);
                    let n = (len / 14.0).ceil() as usize;
                    for k in 0..n {
                        let (t0, t1) = (k as f64 * 14.0 / len, ((k as f64 * 14.0 + 8.0) / len).min(1.0));
                        let at = |t: f64| {
                            (
                                (q.0 as f64 + t * (p.0 - q.0) as f64).round() as i64,
                                (q.1 as f64 + t * (p.1 - q.1) as f64).round() as i64,
                            )
                        };
                        let (a, b) = (at(t0), at(t1));
                        cv.line(a.0, a.1, b.0, b.1, color);
                        cv.line(a.0, a.1 + 1, b.0, b.1 + 1, color);
                    }
                } else {
                    cv.line(q.0, q.1, p.0, p.1, color);
                    cv.line(q.0, q.1 + 1, p.0, p.1 + 1, color);
                }
                seg += 1;
            }
            // A lone point is drawn below, as an error bar.
            let lone = s.points.iter().filter(|q| q.0.is_finite() && q.1.is_finite()).count() == 1;
            if !s.dashed && !lone {
                cv.fill_rect(p.0 - 2, p.1 - 2, 5, 5, color);
            }
            prev = Some(p);
        }
        if seg == 0 {
            if let Some(p) = prev {
                // A lone point (one x value): its band as an error bar with caps, set off
                // sideways by the series' index so bars at the same x do not hide each other.
                let dx = (si as i64 * 2 - series.len() as i64 + 1) * 6;
                let &(x, _, lo, hi) = s
                    .points
                    .iter()
                    .rev()
                    .find(|q| q.0.is_finite() && q.1.is_finite())
                    .unwrap();
                if lo.is_finite() && hi.is_finite() {
                    let (ylo, yhi) = (map(x, ty(lo)).1.round() as i64, map(x, ty(hi)).1.round() as i64);
                    cv.line(p.0 + dx, ylo, p.0 + dx, yhi, color);
                    cv.line(p.0 + dx + 1, ylo, p.0 + dx + 1, yhi, color);
                    cv.line(p.0 + dx - 4, ylo, p.0 + dx + 5, ylo, color);
                    cv.line(p.0 + dx - 4, yhi, p.0 + dx + 5, yhi, color);
                }
                cv.fill_rect(p.0 + dx - 2, p.1 - 2, 6, 5, color);
            }
        }
    }
    cv.stroke_rect(x0, y0, (x1 - x0 + 1) as usize, (y1 - y0 + 1) as usize, FRAME);
    if ys.is_empty() {
        let msg = "no data";
        let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
        cv.text(cx - text_width(msg, 2) as i64 / 2, cy - 7, msg, INK, 2);
    }
    if !note.is_empty() {
        cv.text(x0 + 6, y0 + 6, note, INK, 1);
    }
    let entries: Vec<(&str, bool)> = series.iter().map(|s| (s.name, s.dashed)).collect();
    legend(&mut cv, &entries, x1, y0);
    let tw = text_width(title, 2) as i64;
    cv.text((LP_W as i64 - tw) / 2, 8, title, INK, 2);
    cv
}

/// The legend of [`line_plot`] and [`band_plot`]: a framed box in the top-right corner of the
/// plot area (right edge `x1`, top `y0`), one row per (name, dashed) entry in palette order.
fn legend(cv: &mut Canvas, entries: &[(&str, bool)], x1: i64, y0: i64) {
    if entries.is_empty() {
        return;
    }
    let tw = entries.iter().map(|e| text_width(e.0, 1)).max().unwrap_or(0);
    let (bw, bh) = (tw + 34, entries.len() * 12 + 6);
    let (bx, by) = (x1 - 8 - bw as i64, y0 + 8);
    cv.fill_rect(bx, by, bw, bh, WHITE);
    cv.stroke_rect(bx, by, bw, bh, FRAME);
    for (si, &(name, dashed)) in entries.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let ly = by + 6 + si as i64 * 12;
        if dashed {
            cv.fill_rect(bx + 6, ly + 2, 7, 3, color);
            cv.fill_rect(bx + 17, ly + 2, 7, 3, color);
        } else {
            cv.fill_rect(bx + 6, ly + 2, 18, 3, color);
        }
        cv.text(bx + 28, ly, name, INK, 1);
    }
}

/// Y tick positions (in axis units: log10(value) on a log axis) and their labels.
///
/// Log axes get ticks at 1, 2, 5 × 10^k (only decades if that is too many, thinned further
/// for huge ranges). When the range is narrower than that spacing provides, fall back to nice
/// linear ticks of the value itself, placed at their log positions.
fn y_ticks(lo: f64, hi: f64, log: bool) -> Vec<(f64, String)> {
    if !log {
        let (t, step) = nice_ticks(lo, hi, 6);
        return t.into_iter().map(|v| (v, fmt_tick(v, step))).collect();
    }
    let (e0, e1) = (lo.floor() as i32, hi.ceil() as i32);
    let within = |p: f64| p >= lo && p <= hi;
    let mut ticks: Vec<(f64, String)> = Vec::new();
    for mults in [&[1u32, 2, 5][..], &[1u32][..]] {
        ticks.clear();
        let every = ((e1 - e0) / 8 + 1).max(1);
        for e in e0..=e1 {
            if mults.len() == 1 && (e - e0) % every != 0 {
                continue;
            }
            for &m in mults {
                let p = (m as f64).log10() + e as f64;
                if within(p) {
                    ticks.push((p, fmt_log_tick(m, e)));
                }
            }
        }
        if ticks.len() <= 9 {
            break;
        }
    }
    if ticks.len() < 2 {
        let (vlo, vhi) = (10f64.powf(lo), 10f64.powf(hi));
        let (t, step) = nice_ticks(vlo, vhi, 5);
        ticks = t
            .into_iter()
            .filter(|&v| v > 0.0)
            .map(|v| (v.log10(), fmt_tick(v, step)))
            .collect();
    }
    ticks
}

// ---------------------------------------------------------------------------------------------
// Image grids
// ---------------------------------------------------------------------------------------------

/// Gap between images in a grid, in pixels.
const GRID_GAP: usize = 2;

/// Maps a model-space value in [-1, 1] to a byte; out-of-range values are clamped (NaN → 0).
fn to_byte(v: f32) -> u8 {
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// Image grid: `images` row-major N×(C·H·W) in [-1,1] (C = 1 grey or 3 RGB, channel-first),
/// laid out `cols` per row with 2 px gaps, each image upscaled by integer `zoom` (nearest).
/// Values clamped.
///
/// Gaps are only *between* images (no outer border) and are white. Image `k` sits at
/// `x = (k % cols) * (w*zoom + 2)`, `y = (k / cols) * (h*zoom + 2)`. `cols` is clamped to
/// `1..=n` and `zoom` to at least 1 so a bad setting degrades instead of panicking.
///
/// # Panics
/// If `c` is not 1 or 3, or `images.len() != n*c*h*w` (a shape bug upstream).
pub fn image_grid(images: &[f32], n: usize, c: usize, h: usize, w: usize, cols: usize, zoom: usize) -> Canvas {
    assert!(c == 1 || c == 3, "image_grid: channels must be 1 or 3, got {c}");
    assert_eq!(
        images.len(),
        n * c * h * w,
        "image_grid: expected n*c*h*w = {n}*{c}*{h}*{w} values"
    );
    if n == 0 {
        return Canvas::new(1, 1, WHITE);
    }
    let zoom = zoom.max(1);
    let cols = cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (w * zoom, h * zoom);
    let mut cv = Canvas::new(
        cols * cw + (cols - 1) * GRID_GAP,
        rows * ch + (rows - 1) * GRID_GAP,
        WHITE,
    );
    let plane = h * w;
    for k in 0..n {
        let img = &images[k * c * plane..(k + 1) * c * plane];
        let (ox, oy) = ((k % cols) * (cw + GRID_GAP), (k / cols) * (ch + GRID_GAP));
        for yy in 0..ch {
            for xx in 0..cw {
                let i = (yy / zoom) * w + xx / zoom;
                let rgb = if c == 1 {
                    [to_byte(img[i]); 3]
                } else {
                    [to_byte(img[i]), to_byte(img[plane + i]), to_byte(img[2 * plane + i])]
                };
                cv.px[(oy + yy) * cv.w + ox + xx] = rgb;
            }
        }
    }
    cv
}

/// Height of the title strip above each part in [`titled_row`].
const TITLE_STRIP: usize = 16;
/// Horizontal gap between parts in [`titled_row`].
const ROW_GAP: usize = 8;

/// Horizontal concatenation of canvases with titles above each (title strip 16 px), e.g.
/// 1-step vs 2-step grids.
///
/// Each slot is as wide as the wider of its canvas and its title (canvas and title both
/// centred in it), slots are separated by 8 px, and everything sits on white.
pub fn titled_row(parts: &[(&str, &Canvas)]) -> Canvas {
    let slot_w: Vec<usize> = parts.iter().map(|(t, c)| c.w.max(text_width(t, 1))).collect();
    let total_w = slot_w.iter().sum::<usize>() + ROW_GAP * parts.len().saturating_sub(1);
    let max_h = parts.iter().map(|p| p.1.h).max().unwrap_or(0);
    let mut cv = Canvas::new(total_w, TITLE_STRIP + max_h, WHITE);
    let mut x = 0usize;
    for ((title, part), &sw) in parts.iter().zip(&slot_w) {
        let tw = text_width(title, 1);
        cv.text((x + (sw - tw) / 2) as i64, 4, title, INK, 1);
        cv.blit(part, (x + (sw - part.w) / 2) as i64, TITLE_STRIP as i64);
        x += sw + ROW_GAP;
    }
    cv
}

/// A grid of the first (up to) `n` images of a flat sample set (values in [-1, 1]).
pub fn image_grid_of(xs: &[f64], (c, h, w): (usize, usize, usize), n: usize) -> Canvas {
    let d = c * h * w;
    let n = n.min(xs.len() / d);
    let v: Vec<f32> = xs[..n * d].iter().map(|&x| x as f32).collect();
    let cols = (n as f64).sqrt().ceil() as usize;
    let zoom = (64 / h.max(w)).clamp(1, 4);
    image_grid(&v, n, c, h, w, cols, zoom)
}

/// Data, 1-step and 2-step image grids side by side (`sets` as returned by
/// [`crate::eval::evaluate`]: fresh data, 1-step, 2-step, untrained).
pub fn image_comparison(sets: &[Vec<f64>], shape: (usize, usize, usize), n: usize) -> Canvas {
    let data = image_grid_of(&sets[0], shape, n);
    let one = image_grid_of(&sets[1], shape, n);
    let two = image_grid_of(&sets[2], shape, n);
    titled_row(&[("data", &data), ("1-step", &one), ("2-step", &two)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Letters must not read as digits: no lowercase glyph equals a digit's, and 'g' (once
    /// drawn as a closed bowl from the top row, so "training" read "trainin9") starts at the
    /// x-height like the other descender letters.
    #[test]
    fn letters_do_not_read_as_digits() {
        for l in 'a'..='z' {
            for d in '0'..='9' {
                assert_ne!(glyph(l), glyph(d), "'{l}' is drawn as '{d}'");
            }
        }
        for c in ['g', 'p', 'q', 'y'] {
            assert_eq!(&glyph(c)[..2], &[0, 0], "'{c}' rises above the x-height");
        }
    }

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(bytes);
        let mut reader = dec.read_info().expect("valid PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("valid PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn unique_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cm-plot-test-{}-{}", std::process::id(), name));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn png_roundtrip_size_and_pixels() {
        let mut cv = Canvas::new(7, 3, [10, 20, 30]);
        cv.set(0, 0, [255, 0, 0]);
        cv.set(6, 2, [0, 255, 0]);
        cv.set(3, 1, [1, 2, 3]);
        let (w, h, buf) = decode(&cv.to_png_bytes());
        assert_eq!((w, h), (7, 3));
        assert_eq!(buf.len(), 7 * 3 * 3);
        let at = |x: usize, y: usize| [buf[(y * 7 + x) * 3], buf[(y * 7 + x) * 3 + 1], buf[(y * 7 + x) * 3 + 2]];
        assert_eq!(at(0, 0), [255, 0, 0]);
        assert_eq!(at(6, 2), [0, 255, 0]);
        assert_eq!(at(3, 1), [1, 2, 3]);
        assert_eq!(at(1, 0), [10, 20, 30]);
        // Full equality against the canvas, pixel by pixel.
        let flat: Vec<u8> = cv.px.iter().flatten().copied().collect();
        assert_eq!(buf, flat);
    }

    #[test]
    fn zero_sized_canvas_still_encodes() {
        let cv = Canvas::new(0, 0, WHITE);
        let (w, h, _) = decode(&cv.to_png_bytes());
        assert_eq!((w, h), (1, 1));
    }

    #[test]
    fn drawing_off_canvas_is_clipped_not_wrapped() {
        let mut cv = Canvas::new(10, 10, WHITE);
        cv.set(-1, 0, INK);
        cv.set(10, 0, INK);
        cv.fill_rect(-5, -5, 3, 3, INK);
        cv.line(-1_000_000_000, 20, 1_000_000_000, 20, INK);
        cv.text(100, 100, "Hello", INK, 3);
        cv.blit(&Canvas::new(4, 4, INK), 12, -20);
        assert!(cv.px.iter().all(|&p| p == WHITE));
        // A line crossing the canvas is drawn across all of it, endpoints clipped.
        cv.line(-1_000_000_000, 5, 1_000_000_000, 5, INK);
        assert!((0..10).all(|x| cv.get(x, 5) == Some(INK)));
        assert_eq!(cv.px.iter().filter(|&&p| p == INK).count(), 10);
        // Partial blit lands in the right place.
        let mut cv = Canvas::new(10, 10, WHITE);
        cv.blit(&Canvas::new(4, 4, INK), -2, 8);
        assert_eq!(cv.px.iter().filter(|&&p| p == INK).count(), 2 * 2);
        assert_eq!(cv.get(0, 8), Some(INK));
        assert_eq!(cv.get(1, 9), Some(INK));
        assert_eq!(cv.get(2, 9), Some(WHITE));
    }

    #[test]
    fn line_endpoints_and_diagonal() {
        let mut cv = Canvas::new(10, 10, WHITE);
        cv.line(1, 1, 8, 8, INK);
        for i in 1..=8 {
            assert_eq!(cv.get(i, i), Some(INK));
        }
        assert_eq!(cv.px.iter().filter(|&&p| p == INK).count(), 8);
    }

    fn render_char(ch: char) -> Canvas {
        let mut cv = Canvas::new(6, 8, WHITE);
        cv.text(0, 0, &ch.to_string(), INK, 1);
        cv
    }

    #[test]
    fn font_every_glyph_has_pixels_and_all_differ() {
        let rendered: Vec<(char, Canvas)> = FONT_CHARS.chars().map(|c| (c, render_char(c))).collect();
        for (c, cv) in &rendered {
            let ink = cv.px.iter().filter(|&&p| p == INK).count();
            assert!(ink > 0, "glyph {c:?} renders nothing");
            // Glyph stays in its 5x7 box (spacing column/row stay clear).
            for y in 0..8 {
                assert_eq!(cv.get(5, y), Some(WHITE), "glyph {c:?} bleeds into spacing");
            }
            for x in 0..6 {
                assert_eq!(cv.get(x, 7), Some(WHITE), "glyph {c:?} bleeds into spacing");
            }
        }
        for i in 0..rendered.len() {
            for j in i + 1..rendered.len() {
                assert_ne!(
                    rendered[i].1, rendered[j].1,
                    "glyphs {:?} and {:?} look identical",
                    rendered[i].0, rendered[j].0
                );
            }
        }
        // Space is blank; an unsupported char is visible (box) and differs from all glyphs.
        assert!(render_char(' ').px.iter().all(|&p| p == WHITE));
        let unknown = render_char('#');
        assert!(unknown.px.contains(&INK));
        assert!(rendered.iter().all(|(_, cv)| *cv != unknown));
    }

    #[test]
    fn text_scale_and_advance() {
        let mut cv = Canvas::new(40, 20, WHITE);
        cv.text(0, 0, "II", INK, 2);
        // 'I' top row is 0x0E -> columns 1..=3, scaled by 2 -> x 2..=7; second glyph +12.
        for x in 2..8 {
            assert_eq!(cv.get(x, 0), Some(INK));
            assert_eq!(cv.get(x + 12, 1), Some(INK));
        }
        assert_eq!(cv.get(0, 0), Some(WHITE));
        assert_eq!(cv.get(8, 0), Some(WHITE));
        assert_eq!(text_width("II", 2), 22);
        assert_eq!(text_width("", 2), 0);
    }

    /// Location of data point (x, y) in panel `slot` for a given range (mirrors the layout).
    fn expected_px(slot: usize, x: f64, y: f64, r: (f64, f64, f64, f64)) -> (i64, i64) {
        let ox = (slot * SC_PANEL_W + SC_LEFT) as i64;
        scatter_pixel(x, y, r, ox, SC_TOP as i64).unwrap()
    }

    #[test]
    fn scatter_darkens_right_region_only() {
        let r = (0.0, 1.0, 0.0, 1.0);
        let pts: Vec<f64> = (0..50).flat_map(|_| [0.25, 0.75]).collect();
        let empty = scatter_panels(&[("a", &[]), ("b", &[])], Some(r));
        let full = scatter_panels(&[("a", &[]), ("b", &pts)], Some(r));
        assert_eq!((full.w, full.h), (2 * SC_PANEL_W, SC_PANEL_H));
        // Dot centre: x=0.25 is a quarter from the left, y=0.75 a quarter from the top.
        let (cx, cy) = expected_px(1, 0.25, 0.75, r);
        assert_eq!(cx, (SC_PANEL_W + SC_LEFT) as i64 + (0.25f64 * 359.0).round() as i64);
        assert_eq!(cy, SC_TOP as i64 + (0.25f64 * 359.0).round() as i64);
        let p = full.get(cx, cy).unwrap();
        assert!(
            p.iter().map(|&v| v as u32).sum::<u32>() < 3 * 150,
            "dot not dark: {p:?}"
        );
        // Every changed pixel is within the dot's 3x3 footprint.
        let mut changed = 0;
        for y in 0..full.h as i64 {
            for x in 0..full.w as i64 {
                if full.get(x, y) != empty.get(x, y) {
                    changed += 1;
                    assert!((x - cx).abs() <= 1 && (y - cy).abs() <= 1, "stray pixel at ({x},{y})");
                }
            }
        }
        assert_eq!(changed, 9);
        // Far region (opposite corner, off the grid lines) is pure background.
        let (fx, fy) = expected_px(1, 0.9, 0.1, r);
        assert_eq!(full.get(fx, fy), Some(WHITE));
    }

    #[test]
    fn scatter_alpha_shows_density() {
        let r = (0.0, 1.0, 0.0, 1.0);
        // Many points spread out (low alpha), a few stacked on one spot get darker than one.
        let mut pts: Vec<f64> = Vec::new();
        for i in 0..2000 {
            pts.extend([0.05 + 0.0004 * i as f64, 0.1]);
        }
        pts.extend([0.5, 0.5]);
        for _ in 0..20 {
            pts.extend([0.8, 0.8]);
        }
        let cv = scatter_panels(&[("d", &pts)], Some(r));
        let (sx, sy) = expected_px(0, 0.5, 0.5, r);
        let (dx, dy) = expected_px(0, 0.8, 0.8, r);
        let lum = |p: [u8; 3]| p.iter().map(|&v| v as u32).sum::<u32>();
        let single = lum(cv.get(sx, sy).unwrap());
        let dense = lum(cv.get(dx, dy).unwrap());
        assert!(single < 3 * 255, "single dot invisible");
        assert!(dense < single, "stacked dots should be darker ({dense} vs {single})");
    }

    #[test]
    fn scatter_outside_range_and_nonfinite_are_skipped() {
        let r = (0.0, 1.0, 0.0, 1.0);
        let bad = [
            1.5,
            0.5,
            -0.5,
            0.5,
            0.5,
            1.01,
            0.5,
            -0.01, // just outside each edge
            -1e300,
            -1e300,
            1e300,
            0.5,
            4.0e9,
            0.5, // huge (would wrap if cast first)
            f64::NAN,
            0.5,
            0.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.5,
            0.5, // odd trailing coordinate
        ];
        let empty = scatter_panels(&[("t", &[])], Some(r));
        let cv = scatter_panels(&[("t", &bad)], Some(r));
        assert_eq!(cv, empty);
        // Points exactly on the boundary are kept.
        let edge = scatter_panels(&[("t", &[1.0, 1.0])], Some(r));
        assert_ne!(edge, empty);
    }

    #[test]
    fn scatter_auto_range_uses_first_panel_square_and_robust() {
        let mut pts: Vec<f64> = Vec::new();
        for i in 0..1000 {
            let t = i as f64 / 999.0;
            pts.extend([10.0 + 2.0 * t, -1.0 + 1.0 * t]); // x in [10,12], y in [-1,0]
        }
        pts.extend([1e9, 1e9, f64::NAN, 0.0]); // one outlier + NaN must not matter
        let (x0, x1, y0, y1) = auto_range(&pts);
        assert!((x1 - x0 - (y1 - y0)).abs() < 1e-9, "not square");
        assert!(x0 < 10.1 && x1 > 11.9 && y0 < -0.9 && y1 > -0.1, "data not covered");
        assert!(x1 - x0 < 2.0 * 1.3 + 0.1, "outlier inflated the range: {x0}..{x1}");
        assert!(((x0 + x1) / 2.0 - 11.0).abs() < 0.05 && ((y0 + y1) / 2.0 + 0.5).abs() < 0.05);
        // Panels with no data or degenerate data still give a usable range.
        assert_eq!(auto_range(&[]), (-1.0, 1.0, -1.0, 1.0));
        let (a, b, c, d) = auto_range(&[3.0, 3.0, 3.0, 3.0]);
        assert!(b > a && d > c && a < 3.0 && b > 3.0);
        // The second panel's points do not influence the auto range: a panel-2-only dot far
        // away is outside and leaves the canvas identical to an empty panel 2.
        let with = scatter_panels(&[("a", &pts), ("b", &[100.0, 100.0])], None);
        let without = scatter_panels(&[("a", &pts), ("b", &[])], None);
        assert_eq!(with, without);
        // An invalid explicit range falls back to auto rather than panicking.
        let fallback = scatter_panels(&[("a", &pts)], Some((1.0, 1.0, 0.0, f64::NAN)));
        assert_eq!(fallback, scatter_panels(&[("a", &pts)], None));
    }

    #[test]
    fn nice_ticks_are_round_and_inside() {
        let (t, step) = nice_ticks(-1.3, 2.7, 5);
        assert_eq!(step, 1.0);
        assert_eq!(t, vec![-1.0, 0.0, 1.0, 2.0]);
        let (t, step) = nice_ticks(0.0, 0.001, 5);
        assert!((step - 0.0002).abs() < 1e-12);
        assert_eq!(t.len(), 6);
        assert_eq!(fmt_tick(0.0004, step), "0.0004");
        assert_eq!(fmt_tick(2.5, 0.5), "2.5");
        assert_eq!(fmt_tick(2000.0, 1000.0), "2000");
        assert_eq!(fmt_tick(-2.0, 1.0), "-2");
        assert_eq!(fmt_tick(0.3, 0.1), "0.3");
        assert_eq!(fmt_tick(0.05, 0.01), "0.05");
        assert!(nice_ticks(1.0, 1.0, 5).0.is_empty());
        assert!(nice_ticks(0.0, f64::NAN, 5).0.is_empty());
    }

    #[test]
    fn log_ticks() {
        // 0.001 .. 10: decades only (1-2-5 would be too many).
        let t = y_ticks(-3.0, 1.0, true);
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(labels, ["0.001", "0.01", "0.1", "1", "10"]);
        // Within one decade: 1-2-5.
        let t = y_ticks(0.0, 1.0, true);
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(labels, ["1", "2", "5", "10"]);
        // Extreme exponents use e-notation.
        assert_eq!(fmt_log_tick(1, -7), "1e-7");
        // A very narrow range still gets at least two ticks.
        assert!(y_ticks(0.30, 0.32, true).len() >= 2);
    }

    #[test]
    fn line_plot_draws_series_colors_and_handles_edge_cases() {
        let a: Vec<(f64, f64)> = (0..500).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect();
        let b: Vec<(f64, f64)> = (0..500).map(|i| (i as f64, 0.5 + 0.1 * ((i % 7) as f64))).collect();
        let cv = line_plot("loss", &[("a", &a), ("b", &b)]);
        assert_eq!((cv.w, cv.h), (LP_W, LP_H));
        let count = |c: [u8; 3]| cv.px.iter().filter(|&&p| p == c).count();
        for c in [PALETTE[0], PALETTE[1]] {
            assert!(count(c) > 300, "bold EMA curve missing for {c:?}");
            assert!(count(lighten(c, 0.6)) > 100, "raw curve missing for {c:?}");
        }
        // Log axis: a curve 1/(1+x) from 1 to 0.002 spans most of the plot height.
        let rows: Vec<usize> = (0..cv.h)
            .filter(|&y| (0..cv.w).any(|x| cv.px[y * cv.w + x] == PALETTE[0]))
            .collect();
        assert!(rows.last().unwrap() - rows.first().unwrap() > 300);
        // Edge cases: no series, empty series, NaN/negative values, single point.
        let _ = line_plot("empty", &[]);
        let _ = line_plot("empty2", &[("x", &[])]);
        let _ = line_plot("nan", &[("x", &[(0.0, f64::NAN), (1.0, -1.0), (2.0, 3.0)])]);
        let one = line_plot("one", &[("x", &[(5.0, 2.0)])]);
        assert!(one.px.iter().filter(|&&p| p == PALETTE[0]).count() >= 9);
    }

    #[test]
    fn line_plot_uses_linear_axis_when_values_not_positive() {
        // With a zero value the axis must be linear: y = x maps to a straight diagonal, so the
        // curve's mid-step is halfway between its ends (would not be on a log axis).
        let s: Vec<(f64, f64)> = (0..=100).map(|i| (i as f64, i as f64)).collect();
        let cv = line_plot("lin", &[("s", &s)]);
        let col_rows = |x: i64| -> Vec<i64> {
            (0..cv.h as i64)
                .filter(|&y| cv.get(x, y) == Some(lighten(PALETTE[0], 0.6)))
                .collect()
        };
        let (x0, x1) = (LP_LEFT, LP_W as i64 - LP_RIGHT - 1);
        let xm = (x0 + x1) / 2;
        let ym = col_rows(xm);
        assert!(!ym.is_empty());
        let mid = (LP_TOP + LP_H as i64 - LP_BOTTOM - 1) / 2;
        assert!(
            (ym[0] - mid).abs() <= 3,
            "raw curve at row {} not near middle {mid}",
            ym[0]
        );
    }

    #[test]
    fn image_grid_offsets_and_values() {
        let (n, h, w, cols, zoom) = (5usize, 3usize, 2usize, 2usize, 3usize);
        let vals = [-1.0f32, -0.5, 0.0, 0.5, 1.0];
        let data: Vec<f32> = vals.iter().flat_map(|&v| std::iter::repeat_n(v, h * w)).collect();
        let cv = image_grid(&data, n, 1, h, w, cols, zoom);
        let (cw, ch) = (w * zoom, h * zoom);
        assert_eq!((cv.w, cv.h), (2 * cw + 2, 3 * ch + 2 * 2));
        for (k, &v) in vals.iter().enumerate() {
            let g = ((v + 1.0) * 127.5).round() as u8;
            let (ox, oy) = ((k % cols) * (cw + 2), (k / cols) * (ch + 2));
            for y in oy..oy + ch {
                for x in ox..ox + cw {
                    assert_eq!(cv.px[y * cv.w + x], [g; 3], "image {k} at ({x},{y})");
                }
            }
        }
        // Gap column and the empty sixth cell are background.
        assert_eq!(cv.get(cw as i64, 0), Some(WHITE));
        assert_eq!(cv.get(cw as i64 + 1, 0), Some(WHITE));
        assert_eq!(cv.get((cw + 2) as i64, (2 * (ch + 2)) as i64), Some(WHITE));
        assert_eq!(to_byte(-1.0), 0);
        assert_eq!(to_byte(0.0), 128);
        assert_eq!(to_byte(1.0), 255);
    }

    #[test]
    fn image_grid_rgb_channel_first_nearest_zoom_and_clamp() {
        // One 2x2 RGB image: R plane = [1, -1, -1, -1], G = [-1, 1, ...], B = [.., 1, ..],
        // last pixel out of range in all planes (clamped).
        let r = [1.0f32, -1.0, -1.0, 5.0];
        let g = [-1.0f32, 1.0, -1.0, 5.0];
        let b = [-1.0f32, -1.0, 1.0, -7.0];
        let data: Vec<f32> = r.iter().chain(&g).chain(&b).copied().collect();
        let cv = image_grid(&data, 1, 3, 2, 2, 4, 2);
        assert_eq!((cv.w, cv.h), (4, 4));
        let expect = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
        for (i, e) in expect.iter().enumerate() {
            let (bx, by) = ((i % 2) * 2, (i / 2) * 2);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                assert_eq!(cv.px[(by + dy) * 4 + bx + dx], *e, "pixel {i}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "n*c*h*w")]
    fn image_grid_rejects_wrong_length() {
        image_grid(&[0.0; 10], 1, 1, 3, 3, 1, 1);
    }

    #[test]
    fn titled_row_layout() {
        let a = Canvas::new(50, 30, [255, 0, 0]);
        let b = Canvas::new(40, 20, [0, 0, 255]);
        let cv = titled_row(&[("1-step", &a), ("2-step", &b)]);
        assert_eq!((cv.w, cv.h), (50 + ROW_GAP + 40, TITLE_STRIP + 30));
        assert_eq!(cv.get(0, TITLE_STRIP as i64), Some([255, 0, 0]));
        assert_eq!(cv.get(49, (TITLE_STRIP + 29) as i64), Some([255, 0, 0]));
        let bx = (50 + ROW_GAP) as i64;
        assert_eq!(cv.get(bx, TITLE_STRIP as i64), Some([0, 0, 255]));
        assert_eq!(cv.get(bx + 39, (TITLE_STRIP + 19) as i64), Some([0, 0, 255]));
        assert_eq!(cv.get(bx, (TITLE_STRIP + 20) as i64), Some(WHITE));
        // Titles are drawn in the strip above each part.
        let ink_in = |x0: i64, x1: i64| (0..TITLE_STRIP as i64).any(|y| (x0..x1).any(|x| cv.get(x, y) == Some(INK)));
        assert!(ink_in(0, 50));
        assert!(ink_in(bx, bx + 40));
        // A title wider than its part widens the slot instead of overlapping the neighbour.
        let small = Canvas::new(4, 4, [0, 0, 0]);
        let cv = titled_row(&[("a long title", &small), ("x", &small)]);
        assert_eq!(
            cv.w,
            text_width("a long title", 1) + ROW_GAP + text_width("x", 1).max(4)
        );
    }

    #[test]
    fn write_png_atomic_overwrites_and_leaves_no_temp() {
        let dir = unique_dir("atomic");
        let path = dir.join("plot.png");
        fs::write(&path, b"old junk that is not a png").unwrap();
        let mut cv = Canvas::new(5, 4, [9, 8, 7]);
        cv.set(2, 3, [200, 100, 50]);
        write_png_atomic(&path, &cv).unwrap();
        let (w, h, buf) = decode(&fs::read(&path).unwrap());
        assert_eq!((w, h), (5, 4));
        assert_eq!(&buf[(3 * 5 + 2) * 3..(3 * 5 + 2) * 3 + 3], &[200, 100, 50]);
        // Second write replaces the first.
        let cv2 = Canvas::new(3, 2, [1, 1, 1]);
        write_png_atomic(&path, &cv2).unwrap();
        let (w, h, _) = decode(&fs::read(&path).unwrap());
        assert_eq!((w, h), (3, 2));
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["plot.png".to_string()]);
        // Writing into a missing directory fails cleanly and leaves nothing behind.
        assert!(write_png_atomic(&dir.join("nope").join("x.png"), &cv).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
