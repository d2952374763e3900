//! Integration tests: the real `cm` executable and the library's loop and IO.
//!
//! One test binary (`cargo test --release --test it`); modules by concern.

mod audit;
mod bad_input;
mod common;
mod conditional;
mod configs;
mod conformance;
mod fuzzloop;
mod kill;
mod methods;
mod nonfinite;
mod props;
mod regressions;
mod resume;
