//! `greater-fuzz`: fuzzing every parser of greater on stable Rust.
//!
//! Each [target](targets::TARGETS) feeds mutated and generated inputs to one parser (GGUF, the
//! dequantisers, safetensors, `config.json`, `tokenizer.json`, chat templates, the task files and
//! `tasks.toml`) behind `catch_unwind`. A panic is a finding (its input is saved); an input that
//! runs longer than the time limit ends the process (a hang); an allocation that would take the
//! live heap over the per-input cap is refused by [`alloc::CapAlloc`] and aborts the process.
//! The input being run is always on disk, so every finding comes with its reproducer.
//!
//! Run it with `cargo xtask fuzz [--target T] [--inputs N]`.

pub mod alloc;
pub mod driver;
pub mod mutate;
pub mod seeds;
pub mod targets;

pub use driver::{Options, Stats, run_target};
pub use targets::{TARGETS, Target, target};
