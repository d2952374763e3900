#![no_main]
//! Config loader: any text gives a validated config or an error, never a panic; an accepted
//! config round-trips through TOML.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = cm::config::Config::from_toml(text) {
        let back = cm::config::Config::from_toml(&c.to_toml()).expect("an accepted config re-parses");
        assert_eq!(back.to_toml(), c.to_toml());
    }
});
