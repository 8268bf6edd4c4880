//! Strom's benchmarks. The criterion benches under `benches/` measure the
//! hot paths in isolation (batch validation, log append and read); the
//! `strom-load` command measures a real broker end to end. Figures and the
//! commands that produced them are in the README.
