//! Chat templates: the model's own Jinja template, rendered with minijinja as Hugging Face
//! transformers renders it.
//!
//! transformers compiles chat templates with `trim_blocks` and `lstrip_blocks` on, exposes
//! `messages`, `add_generation_prompt` and the special tokens (`bos_token`, `eos_token`), and adds
//! `raise_exception`, `strftime_now` and a `tojson` that writes like Python's `json.dumps`;
//! templates also call Python string methods (`.strip()`, `.startswith()`), which
//! minijinja-contrib's `pycompat` supplies, and printed booleans read `True`/`False`. All of that
//! is reproduced here (see `chat_template_utils.py` in transformers).
//!
//! The template comes from the model (GGUF `tokenizer.chat_template`, or `chat_template` in
//! `tokenizer_config.json` / a `chat_template.jinja` beside it). When the model has none, a
//! built-in template for its family is used and [`ChatTemplate::source`] says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use crate::LoadError;
use crate::config::Family;
use crate::loading::Metadata;
use crate::tokenizer::Tokenizer;

/// The text-only Gemma 3 template (Gemma 2 uses the same turn format): a system message is
/// prepended to the first user turn, `assistant` becomes `model`, contents are trimmed.
pub const GEMMA_FALLBACK_TEMPLATE: &str = "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// ChatML (`<|im_start|>role\n…<|im_end|>\n`), the format of SmolLM2 and Qwen2 instruct models.
pub const CHATML_FALLBACK_TEMPLATE: &str = "{%- for message in messages -%}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}";

/// Instructions one rendering may execute (minijinja fuel). The SmolLM2, Qwen2.5 and Gemma 3
/// templates take about 32 per message (38–52 for one message, 475–648 for twenty), so this
/// allows conversations of some 3 000 messages; a template that loops without end, or builds a
/// string by repeated concatenation (quadratic copying), is stopped in well under a second.
pub const TEMPLATE_FUEL: u64 = 100_000;

/// Bytes one rendering may write. A prompt is a few KiB; a template that prints without end
/// is stopped here instead of filling memory.
pub const MAX_RENDERED_BYTES: usize = 8 << 20;

/// Where a chat template came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSource {
    /// The model's own template.
    Model,
    /// The model has none; the built-in template of this family is used.
    Fallback(Family),
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The turn's text.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The template's name inside `env`, which also names it in error messages.
    name: String,
    text: String,
    source: TemplateSource,
    origin: PathBuf,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// Compiles `text`. `origin` is the file it came from and `name` the field within it
    /// (`tokenizer.chat_template`); both name the template in errors. A syntax error is a
    /// [`LoadError::Template`].
    pub fn new(
        text: impl Into<String>,
        source: TemplateSource,
        origin: impl Into<PathBuf>,
        name: impl Into<String>,
        tokenizer: &Tokenizer,
    ) -> Result<Self, LoadError> {
        let (text, origin, name) = (text.into(), origin.into(), name.into());
        let mut env = environment();
        env.add_template_owned(name.clone(), text.clone())
            .map_err(|e| LoadError::Template { path: origin.clone(), reason: format!("`{name}`: {}", describe(&e)) })?;
        Ok(Self { env, name, text, source, origin, bos_token: tokenizer.bos_token(), eos_token: tokenizer.eos_token() })
    }

    /// The template of a GGUF model: `tokenizer.chat_template`, or the `family` fallback when the
    /// file has none. `path` is the GGUF file.
    pub fn from_gguf(
        metadata: &Metadata,
        path: impl AsRef<Path>,
        family: Family,
        tokenizer: &Tokenizer,
    ) -> Result<Self, LoadError> {
        const KEY: &str = "tokenizer.chat_template";
        match metadata.get(KEY) {
            None => Self::fallback(family, tokenizer),
            Some(value) => {
                let text = value.as_str().ok_or_else(|| LoadError::BadField {
                    path: path.as_ref().into(),
                    field: KEY.into(),
                    reason: format!("expected a string, found {}", value.type_name()),
                })?;
                Self::new(text, TemplateSource::Model, path.as_ref(), KEY, tokenizer)
            }
        }
    }

    /// The template of a Hugging Face model folder: `chat_template` in `tokenizer_config`
    /// (a string, or a list of `{name, template}` of which `default` is used), else a
    /// `chat_template.jinja` beside it, else the `family` fallback.
    pub fn from_tokenizer_config(
        tokenizer_config: impl AsRef<Path>,
        family: Family,
        tokenizer: &Tokenizer,
    ) -> Result<Self, LoadError> {
        let path = tokenizer_config.as_ref();
        let json = crate::tokenizer::read_json(path)?;
        match json.get("chat_template") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(text)) => {
                return Self::new(text.as_str(), TemplateSource::Model, path, "chat_template", tokenizer);
            }
            Some(serde_json::Value::Array(named)) => {
                let template_named = |wanted: Option<&str>| {
                    named.iter().find_map(|entry| {
                        let name = entry.get("name")?.as_str()?;
                        let text = entry.get("template")?.as_str()?;
                        (wanted.is_none() || wanted == Some(name)).then_some((name, text))
                    })
                };
                if let Some((name, text)) = template_named(Some("default")).or_else(|| template_named(None)) {
                    let field = format!("chat_template[{name}]");
                    return Self::new(text, TemplateSource::Model, path, field, tokenizer);
                }
            }
            Some(other) => {
                return Err(LoadError::BadField {
                    path: path.into(),
                    field: "chat_template".into(),
                    reason: format!("expected a string or a list of named templates, found {other}"),
                });
            }
        }
        let jinja = path.with_file_name("chat_template.jinja");
        if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| LoadError::io(&jinja, e))?;
            return Self::new(text, TemplateSource::Model, &jinja, "chat_template.jinja", tokenizer);
        }
        Self::fallback(family, tokenizer)
    }

    /// The built-in template of `family`: Gemma's turn format for Gemma 2/3, ChatML otherwise.
    pub fn fallback(family: Family, tokenizer: &Tokenizer) -> Result<Self, LoadError> {
        let text = match family {
            Family::Gemma2 | Family::Gemma3 => GEMMA_FALLBACK_TEMPLATE,
            Family::Llama | Family::Qwen2 => CHATML_FALLBACK_TEMPLATE,
        };
        tracing::info!(?family, "the model has no chat template; using the built-in one");
        let origin = format!("<built-in {family:?} chat template>");
        Self::new(text, TemplateSource::Fallback(family), origin, "fallback", tokenizer)
    }

    /// Renders `messages`. With `add_generation_prompt`, the template's opening of an assistant
    /// turn is appended. The result is meant for `encode(.., add_special = false)`: templates write
    /// BOS themselves.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, LoadError> {
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        ctx.insert("messages", Value::from_serialize(messages));
        ctx.insert("add_generation_prompt", Value::from(add_generation_prompt));
        // Absent special tokens stay undefined (rendering as ""), as in transformers.
        if let Some(bos) = &self.bos_token {
            ctx.insert("bos_token", Value::from(bos.as_str()));
        }
        if let Some(eos) = &self.eos_token {
            ctx.insert("eos_token", Value::from(eos.as_str()));
        }
        let error = |e: Error| LoadError::Template {
            path: self.origin.clone(),
            reason: format!("`{}`: rendering failed: {}", self.name, describe(&e)),
        };
        let mut out = CappedOutput { bytes: Vec::new(), limit: MAX_RENDERED_BYTES };
        self.env.get_template(&self.name).map_err(error)?.render_captured_to(ctx, &mut out).map_err(error)?;
        String::from_utf8(out.bytes).map_err(|e| LoadError::Template {
            path: self.origin.clone(),
            reason: format!("`{}`: rendering produced invalid UTF-8: {e}", self.name),
        })
    }

    /// Whether the template is the model's own or a built-in fallback.
    pub fn source(&self) -> TemplateSource {
        self.source
    }

    /// The Jinja source.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The file the template came from (a description for fallbacks).
    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// A writer that refuses to grow past `limit` bytes.
struct CappedOutput {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other(format!(
                "the output exceeds {} MiB; the template does not terminate sensibly",
                self.limit >> 20
            )));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A minijinja environment configured like transformers' template sandbox, with limits: fuel
/// ([`TEMPLATE_FUEL`]) and an output cap ([`MAX_RENDERED_BYTES`]). Strings built inside a
/// template (`ns.s ~ ns.s` doubling in a loop) are not bounded by either; see the fuzzing notes.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message))
    });
    env.add_function("strftime_now", |format: String| strftime(&format, now_utc()));
    env.add_filter("tojson", tojson);
    // Python prints booleans and None capitalised; minijinja would write `true` and `none`.
    env.set_formatter(|out, state, value| match value.kind() {
        ValueKind::Bool => Ok(out.write_str(if value.is_true() { "True" } else { "False" })?),
        ValueKind::None => Ok(out.write_str("None")?),
        _ => minijinja::escape_formatter(out, state, value),
    });
    env
}

/// An error with its whole chain of causes (minijinja puts the line in the outer one).
fn describe(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// transformers' `tojson`: Python's `json.dumps(value, ensure_ascii=False, indent=indent)`, with
/// keys in the order the template built them and without HTML escaping.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(value: &Value, indent: Option<usize>, depth: usize, out: &mut String) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    let item_separator = if indent.is_some() { "," } else { ", " };
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&value.to_string()),
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            out.push_str(
                &serde_json::to_string(text).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?,
            );
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_separator);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter()?.collect();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_separator);
                }
                newline(out, depth + 1);
                write_json(&Value::from(key.to_string()), indent, depth + 1, out)?;
                out.push_str(": ");
                write_json(&value.get_item(key)?, indent, depth + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        _ => {
            return Err(Error::new(ErrorKind::BadSerialization, format!("cannot convert {} to JSON", value.kind())));
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch, UTC.
fn now_utc() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Python's `strftime` for the codes chat templates use (`%d %b %Y` in Llama 3.x):
/// `%Y %y %m %d %e %b %B %a %A %H %M %S %%`; any other code is copied unchanged.
fn strftime(format: &str, unix_seconds: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_known_dates() {
        // 2024-07-26 00:00:00 UTC (Llama 3.1's default date) = 19 930 days after the epoch.
        let t = 19_930 * 86_400 + 13 * 3600 + 5 * 60 + 9;
        assert_eq!(strftime("%d %b %Y", t), "26 Jul 2024");
        assert_eq!(strftime("%A %B %e, %H:%M:%S %% %q", t), "Friday July 26, 13:05:09 % %q");
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
        // 2000-02-29, a leap day: 11 016 days.
        assert_eq!(strftime("%Y-%m-%d %a", 11_016 * 86_400), "2000-02-29 Tue");
    }
}
