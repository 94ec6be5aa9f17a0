//! `greater generate`: greedy generation from a prompt, streamed to stdout.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use greater_models::generate::{GenerateOptions, generate};
use greater_models::tokenizer::Tokenizer;

use super::{DEFAULT_MODEL, MODEL_HELP, load_model};

/// Flags of `greater generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long, default_value = DEFAULT_MODEL, help = MODEL_HELP)]
    model: String,
    /// The text to continue (with --chat: the user message).
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user turn with the model's chat template (and open the assistant turn).
    #[arg(long)]
    chat: bool,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 128, value_name = "N")]
    max_new_tokens: usize,
    /// Stop at the model's end-of-sequence / end-of-turn tokens (the default).
    #[arg(long, overrides_with = "no_stop")]
    stop: bool,
    /// Ignore stop tokens and always generate --max-new-tokens tokens.
    #[arg(long, overrides_with = "stop")]
    no_stop: bool,
}

/// Run `greater generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    let loaded = load_model(&args.model)?;
    let tok = &loaded.tokenizer;
    let ids = if args.chat { loaded.encode_chat(&args.prompt) } else { tok.encode(&args.prompt, true) }
        .context("encoding the prompt")?;
    let stop_ids = if args.no_stop { Vec::new() } else { tok.stop_ids().to_vec() };
    let opts = GenerateOptions { max_new_tokens: args.max_new_tokens, stop_ids: stop_ids.clone() };
    let mut stream = Stream::new(tok);
    let start = Instant::now();
    let mut error = None;
    let gens = generate(&loaded.model, std::slice::from_ref(&ids), &opts, |_, id| {
        if stop_ids.contains(&id) || error.is_some() {
            return;
        }
        if let Err(e) = stream.push(id) {
            error = Some(e);
        }
    })
    .context("generating")?;
    if let Some(e) = error {
        return Err(e);
    }
    stream.end()?;
    let n = gens[0].ids.len();
    let secs = start.elapsed().as_secs_f64();
    let why = match gens[0].stop {
        Some(id) => format!("stopped at {}", tok.id_to_token(id).unwrap_or_else(|| id.to_string())),
        None => "length limit".into(),
    };
    eprintln!(
        "[{} prompt tokens, {n} new tokens in {secs:.1} s ({:.1} tokens/s); {why}]",
        ids.len(),
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Prints the text of a growing id list as it grows: the whole list is decoded each time (so
/// multi-token characters and merged spaces come out right) and the new suffix is printed.
struct Stream<'a> {
    tok: &'a Tokenizer,
    ids: Vec<u32>,
    printed: String,
}

impl<'a> Stream<'a> {
    fn new(tok: &'a Tokenizer) -> Self {
        Self { tok, ids: Vec::new(), printed: String::new() }
    }

    fn push(&mut self, id: u32) -> Result<()> {
        self.ids.push(id);
        let text = self.tok.decode(&self.ids, true).context("decoding the generated tokens")?;
        // An incomplete UTF-8 sequence decodes to U+FFFD; wait for the rest of the character.
        if text.ends_with('\u{FFFD}') {
            return Ok(());
        }
        self.print_new(&text)
    }

    fn print_new(&mut self, text: &str) -> Result<()> {
        if let Some(new) = text.strip_prefix(self.printed.as_str()) {
            let mut out = std::io::stdout().lock();
            out.write_all(new.as_bytes()).and_then(|_| out.flush()).context("writing to stdout")?;
            self.printed = text.to_owned();
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        let text = self.tok.decode(&self.ids, true).context("decoding the generated tokens")?;
        self.print_new(&text)?;
        println!();
        Ok(())
    }
}
