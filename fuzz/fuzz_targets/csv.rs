#![no_main]
//! CSV point loader: any bytes give points or an error, never a panic; accepted input is
//! rectangular and finite.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((v, d)) = cm::data::files::parse_csv(data) {
        assert!(d >= 1 && !v.is_empty() && v.len() % d == 0);
        assert!(v.iter().all(|x| x.is_finite()));
    }
});
