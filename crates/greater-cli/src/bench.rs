//! `greater bench`: the suites live in the `greater-bench` crate; this module gives them what
//! only the binary does (fetching models with a progress bar, finding task data, drawing
//! progress bars).

use anyhow::Result;
use greater_models::model::LoadedModel;
use greater_opt::Observer;
use greater_tasks::Task;

pub use greater_bench::BenchArgs;

use crate::cmd::{load_model, load_task};
use crate::progress::Bars;

/// The CLI's side of [`greater_bench::Host`].
#[derive(Debug, Default)]
struct Cli;

impl greater_bench::Host for Cli {
    fn load_model(&self, name: &str) -> Result<LoadedModel> {
        load_model(name)
    }

    fn load_task(&self, name: &str) -> Result<Task> {
        load_task(name)
    }

    fn observer(&self, steps: usize) -> Box<dyn Observer> {
        Box::new(Bars::with_steps(steps, 0))
    }
}

/// Run the suite `args` names.
pub fn run(args: BenchArgs) -> Result<()> {
    greater_bench::run(args, &Cli)
}
