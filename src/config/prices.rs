//! Model prices: USD per million tokens of each kind, the built-in table or a TOML file
//! (`--prices FILE`) that replaces it. Usage analytics price stored token counts when
//! asked, never storing a cost, so a changed table re-prices history.
//!
//! ```toml
//! [models."claude-sonnet-4-5"]   # exact name, or a prefix of the names it prices
//! input = 3.00
//! output = 15.00
//! cache_read = 0.30
//! cache_write = 3.75
//! source = "https://www.anthropic.com/pricing"   # optional: where the figures came from
//! as_of = "2025-09-29"                           # optional: when they were read
//! ```

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Tokens of each kind a model used (or a sum of such).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

impl AddAssign for Tokens {
    fn add_assign(&mut self, o: Tokens) {
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
    }
}

/// One model's prices, USD per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    pub source: Option<String>,
    pub as_of: Option<NaiveDate>,
}

impl Price {
    /// What `t` costs at these prices, in USD.
    pub fn cost(&self, t: &Tokens) -> f64 {
        (t.input_tokens as f64 * self.input
            + t.output_tokens as f64 * self.output
            + t.cache_read_tokens as f64 * self.cache_read
            + t.cache_write_tokens as f64 * self.cache_write)
            / 1_000_000.0
    }

    fn check(&self, model: &str) -> Result<(), String> {
        let all = [
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ];
        match all.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            Some((name, v)) => Err(format!(
                "model {model:?}: {name} = {v} is not a price (USD per million tokens, 0 or more)"
            )),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prices {
    models: BTreeMap<String, Price>,
}

#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    #[error("the prices file: {0}")]
    Read(#[from] super::FileError),
    #[error("the prices file is not valid: {0}")]
    Parse(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    models: BTreeMap<String, Price>,
}

/// List prices for standard API calls. Anthropic's `cache_write` is the 5-minute cache
/// write; OpenAI and Google charge no cache write beyond input, so theirs is the input
/// price. Sonnet and Gemini Pro prompts over 200k tokens cost more than listed here.
const BUILT_IN: &str = r#"
[models."claude-opus-4-5"]
input = 5.0
output = 25.0
cache_read = 0.5
cache_write = 6.25
source = "https://www.anthropic.com/pricing"
as_of = "2025-11-24"
[models."claude-opus-4-1"]
input = 15.0
output = 75.0
cache_read = 1.5
cache_write = 18.75
source = "https://www.anthropic.com/pricing"
as_of = "2025-08-05"
[models."claude-opus-4"]
input = 15.0
output = 75.0
cache_read = 1.5
cache_write = 18.75
source = "https://www.anthropic.com/pricing"
as_of = "2025-05-22"
[models."claude-sonnet-4"]
input = 3.0
output = 15.0
cache_read = 0.3
cache_write = 3.75
source = "https://www.anthropic.com/pricing (Sonnet 4 and 4.5, prompts up to 200k tokens)"
as_of = "2025-09-29"
[models."claude-haiku-4-5"]
input = 1.0
output = 5.0
cache_read = 0.1
cache_write = 1.25
source = "https://www.anthropic.com/pricing"
as_of = "2025-10-15"
[models."gpt-5"]
input = 1.25
output = 10.0
cache_read = 0.125
cache_write = 1.25
source = "https://openai.com/api/pricing (GPT-5 and GPT-5.1)"
as_of = "2025-11-13"
[models."gpt-5-mini"]
input = 0.25
output = 2.0
cache_read = 0.025
cache_write = 0.25
source = "https://openai.com/api/pricing"
as_of = "2025-08-07"
[models."gpt-5-nano"]
input = 0.05
output = 0.4
cache_read = 0.005
cache_write = 0.05
source = "https://openai.com/api/pricing"
as_of = "2025-08-07"
[models."gpt-4.1"]
input = 2.0
output = 8.0
cache_read = 0.5
cache_write = 2.0
source = "https://openai.com/api/pricing"
as_of = "2025-04-14"
[models."gpt-4.1-mini"]
input = 0.4
output = 1.6
cache_read = 0.1
cache_write = 0.4
source = "https://openai.com/api/pricing"
as_of = "2025-04-14"
[models."gpt-4.1-nano"]
input = 0.1
output = 0.4
cache_read = 0.025
cache_write = 0.1
source = "https://openai.com/api/pricing"
as_of = "2025-04-14"
[models."gemini-2.5-pro"]
input = 1.25
output = 10.0
cache_read = 0.125
cache_write = 1.25
source = "https://ai.google.dev/gemini-api/docs/pricing (prompts up to 200k tokens; cache storage not included)"
as_of = "2025-06-17"
[models."gemini-2.5-flash"]
input = 0.3
output = 2.5
cache_read = 0.03
cache_write = 0.3
source = "https://ai.google.dev/gemini-api/docs/pricing (text input; cache storage not included)"
as_of = "2025-06-17"
[models."gemini-2.5-flash-lite"]
input = 0.1
output = 0.4
cache_read = 0.01
cache_write = 0.1
source = "https://ai.google.dev/gemini-api/docs/pricing (text input; cache storage not included)"
as_of = "2025-07-22"
"#;

impl Default for Prices {
    fn default() -> Prices {
        match Prices::parse(BUILT_IN) {
            Ok(p) => p,
            Err(e) => unreachable!("the built-in prices parse (a unit test checks): {e}"),
        }
    }
}

impl Prices {
    /// The file's prices, or the built-in ones without a file.
    pub fn load(file: Option<&Path>) -> Result<Prices, PricesError> {
        let Some(path) = file else {
            return Ok(Prices::default());
        };
        Prices::parse(&super::read_file(path)?)
    }

    pub fn parse(text: &str) -> Result<Prices, PricesError> {
        let file: File = toml::from_str(text).map_err(|e| PricesError::Parse(e.to_string()))?;
        for (model, price) in &file.models {
            if model.trim().is_empty() {
                return Err(PricesError::Parse("a model name is empty".into()));
            }
            price.check(model).map_err(PricesError::Parse)?;
        }
        Ok(Prices {
            models: file.models,
        })
    }

    /// The price of `model`: its own entry, else the longest configured name it starts
    /// with (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`); `None` if neither.
    pub fn get(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }

    /// The configured names and prices, by name.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Price)> {
        self.models.iter().map(|(n, p)| (n.as_str(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_prices_parse_and_each_says_where_it_came_from() {
        let prices = Prices::default();
        assert!(prices.all().count() >= 10);
        for (name, p) in prices.all() {
            assert!(p.source.is_some() && p.as_of.is_some(), "{name}");
            assert!(p.output >= p.input && p.cache_read <= p.input, "{name}");
        }
        let sonnet = prices.get("claude-sonnet-4-5").expect("sonnet 4.5");
        assert_eq!((sonnet.input, sonnet.output), (3.0, 15.0));
    }

    #[test]
    fn a_model_is_priced_by_its_name_or_its_longest_configured_prefix() {
        let prices = Prices::default();
        let input = |m: &str| prices.get(m).map(|p| p.input);
        assert_eq!(input("claude-sonnet-4-5-20250929"), Some(3.0));
        assert_eq!(input("claude-opus-4-5-20251101"), Some(5.0));
        assert_eq!(input("claude-opus-4-20250514"), Some(15.0));
        assert_eq!(input("gpt-5-mini-2025-08-07"), Some(0.25));
        assert_eq!(input("gpt-5"), Some(1.25));
        assert_eq!(input("gpt-4.1-nano"), Some(0.1));
        assert_eq!(input("gemini-2.5-flash-lite"), Some(0.1));
        assert_eq!(input("gemini-2.5-flash-preview-09-2025"), Some(0.3));
        assert_eq!(input("llama-3"), None);
        assert_eq!(input("claude"), None);
    }

    #[test]
    fn cost_is_tokens_times_prices_per_million() {
        let prices = Prices::parse(
            "[models.m]\ninput = 2.0\noutput = 10.0\ncache_read = 0.5\ncache_write = 4.0\n",
        )
        .expect("parses");
        let t = Tokens {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cache_read_tokens: 2_000_000,
            cache_write_tokens: 250_000,
        };
        // 2 + 5 + 1 + 1
        assert_eq!(prices.get("m").map(|p| p.cost(&t)), Some(9.0));
    }

    #[test]
    fn a_file_with_a_mistake_is_refused_with_the_reason() {
        let price = "input = 1.0\noutput = 1.0\ncache_read = 1.0\ncache_write = 1.0\n";
        let cases = [
            (format!("[models.m]\n{price}colour = 1\n"), "unknown field"),
            ("[models.m]\ninput = 1.0\n".to_owned(), "missing field"),
            (
                format!(
                    "[models.m]\n{}",
                    price.replace("input = 1.0", "input = -1.0")
                ),
                "input = -1 is not a price",
            ),
            (format!("[models.m]\n{price}as_of = \"soon\"\n"), "as_of"),
            (format!("[models.\" \"]\n{price}"), "empty"),
            ("[prices.m]\n".to_owned(), "unknown field"),
        ];
        for (text, why) in cases {
            let err = Prices::parse(&text).expect_err(&text).to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_example_file_above_parses() {
        let doc: String = include_str!("prices.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! ").or(l.strip_prefix("//!")))
            .map(|l| format!("{l}\n"))
            .collect();
        let from = doc.find("```toml\n").expect("the example") + "```toml\n".len();
        let block = &doc[from..];
        let block = &block[..block.find("```").expect("end of the block")];
        let prices = Prices::parse(block).expect("the example is a valid prices file");
        assert!(prices.get("claude-sonnet-4-5-20250929").is_some());
    }
}
