#![no_main]
//! `.npy` loader: any bytes give points or an error, never a panic or a huge allocation.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((v, d)) = cm::data::files::parse_npy(data) {
        assert!(d >= 1 && !v.is_empty() && v.len() % d == 0);
        assert!(v.len() * 4 <= data.len(), "more values than the file has bytes");
        assert!(v.iter().all(|x| x.is_finite()));
    }
});
