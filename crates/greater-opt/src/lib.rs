//! `greater-opt`: the GReaTer loop and everything that runs a model over a task.
//!
//! - [`layout`]: a task example as token ids with the index range of every part (SPEC A3).
//! - [`eval`]: greedy reasoning, extractor, answer; exact, flexible and constrained scores (SPEC A6).
//! - [`optimize`]: the loop of SPEC B.1.2 with the fixes of A2, checkpoints and events.
//! - [`resume`]: what a continued run may change, and when a finished run is reopened.
//! - [`report`]: `report.json` and a self-contained `report.html`.
//! - [`memory`]: the peak memory a run will need, predicted from shapes before it starts.
//!
//! Progress goes through the [`Observer`] trait; this crate never prints.

pub mod answer_pass;
pub mod cost;
pub mod error;
pub mod eval;
pub mod faults;
pub mod finish;
pub mod layout;
pub mod manifest;
pub mod memory;
pub mod observer;
pub mod optimize;
pub mod report;
pub mod resume;
pub mod rollout;

pub use error::OptError;
pub use observer::{NoObserver, Observer};
