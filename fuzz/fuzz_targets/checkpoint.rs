#![no_main]
//! Checkpoint (safetensors) loader against a small fixed architecture: any bytes give a
//! state or an error, never a panic.
use burn::prelude::*;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn specs() -> &'static Vec<cm::nets::ParamSpec> {
    static S: OnceLock<Vec<cm::nets::ParamSpec>> = OnceLock::new();
    S.get_or_init(|| {
        let mut cfg = cm::config::Config::default();
        let cm::config::ModelConfig::Mlp(m) = &mut cfg.model;
        m.hidden = 4;
        m.depth = 1;
        m.emb_dim = 2;
        cm::run::Setup::new(&cfg, &Device::flex()).unwrap().specs
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = cm::ckpt::read_meta(data);
    if let Ok(st) = cm::ckpt::from_bytes(data, specs(), &Device::flex()) {
        assert_eq!(st.online.len(), specs().len());
    }
});
