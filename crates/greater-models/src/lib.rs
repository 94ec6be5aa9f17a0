//! `greater-models` answers one question: "a causal language model on a device".
//!
//! It holds the architectures (one family per file under [`arch`]), GGUF and safetensors
//! loading ([`loading`]), the tokenizer and chat templates, the KV cache and greedy generation.
//! It knows nothing of tasks, prompts under optimisation or the GReaTer loop.

pub mod arch;
pub mod cache;
pub mod chat;
pub mod config;
pub mod device;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod generate;
pub mod hub;
pub mod layers;
pub mod loading;
pub mod model;
pub mod random;
pub mod rng;
pub mod testing;
pub mod tokenizer;

pub use arch::{AnyModel, CausalLm};
pub use cache::KvCache;
pub use config::ModelConfig;
pub use device::default_device;
pub use error::LoadError;
