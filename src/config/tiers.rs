//! Tier definitions: the built-in `free`, `standard` and `enterprise`, or a TOML file
//! (`--tiers FILE`) that replaces them. A limit left out of a tier is no limit.
//!
//! ```toml
//! default = "standard"          # the tier a new tenant gets
//! [tiers.free]
//! agents = 10                   # agents per tenant (disabled ones count)
//! sockets = 10                  # concurrent agent sockets per tenant
//! events_per_second = 10        # emits through the API, per tenant (token bucket)
//! events_burst = 20             # bucket size; default twice the rate
//! webhooks_per_second = 5       # per source
//! webhooks_burst = 10
//! inbox_retention = "1day"      # default: --inbox-ttl
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One tier's limits, as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tier {
    pub name: String,
    /// Agents per tenant; `null` is no limit.
    pub agents: Option<u32>,
    /// Concurrent agent sockets per tenant.
    pub sockets: Option<u32>,
    /// Events emitted through the API per tenant.
    pub events: Option<Rate>,
    /// Webhooks accepted per source.
    pub webhooks: Option<Rate>,
    /// How long an event waits in an inbox, in seconds; `null` is `--inbox-ttl`.
    pub inbox_retention_s: Option<u64>,
}

/// A token bucket: `per_second` refills, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rate {
    #[schema(value_type = u32, minimum = 1)]
    pub per_second: NonZeroU32,
    #[schema(value_type = u32, minimum = 1)]
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone)]
pub struct Tiers {
    tiers: BTreeMap<String, Tier>,
    default: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TiersError {
    #[error("the tiers file: {0}")]
    Read(#[from] super::FileError),
    #[error("the tiers file is not valid: {0}")]
    Parse(String),
}

/// The file's shape: limits as written, checked into [`Tier`]s.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: String,
    tiers: BTreeMap<String, TierFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    agents: Option<u32>,
    sockets: Option<u32>,
    events_per_second: Option<NonZeroU32>,
    events_burst: Option<NonZeroU32>,
    webhooks_per_second: Option<NonZeroU32>,
    webhooks_burst: Option<NonZeroU32>,
    inbox_retention: Option<String>,
}

const BUILT_IN: &str = r#"
default = "standard"
[tiers.free]
agents = 10
sockets = 10
events_per_second = 10
webhooks_per_second = 5
inbox_retention = "1day"
[tiers.standard]
agents = 10000
sockets = 10000
events_per_second = 1000
webhooks_per_second = 200
[tiers.enterprise]
inbox_retention = "30days"
"#;

impl Default for Tiers {
    fn default() -> Tiers {
        match Tiers::parse(BUILT_IN) {
            Ok(t) => t,
            Err(e) => unreachable!("the built-in tiers parse (a unit test checks): {e}"),
        }
    }
}

impl Tiers {
    /// The file's tiers, or the built-in ones without a file.
    pub fn load(file: Option<&Path>) -> Result<Tiers, TiersError> {
        let Some(path) = file else {
            return Ok(Tiers::default());
        };
        Tiers::parse(&super::read_file(path)?)
    }

    pub fn parse(text: &str) -> Result<Tiers, TiersError> {
        let file: File = toml::from_str(text).map_err(|e| TiersError::Parse(e.to_string()))?;
        let mut tiers = BTreeMap::new();
        for (name, t) in file.tiers {
            check_tier_name(&name).map_err(TiersError::Parse)?;
            let tier = t.check(&name).map_err(TiersError::Parse)?;
            tiers.insert(name, tier);
        }
        if !tiers.contains_key(&file.default) {
            return Err(TiersError::Parse(format!(
                "default = {:?} names no tier defined in the file",
                file.default
            )));
        }
        Ok(Tiers {
            tiers,
            default: file.default,
        })
    }

    /// The tier called `name`; an unknown name (a tier since removed from the file)
    /// gets the default tier.
    pub fn get(&self, name: &str) -> &Tier {
        self.tiers
            .get(name)
            .or_else(|| self.tiers.get(&self.default))
            .unwrap_or_else(|| unreachable!("the default tier exists (checked at parse)"))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tiers.contains_key(name)
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn all(&self) -> impl Iterator<Item = &Tier> {
        self.tiers.values()
    }

    /// The configured names, for error messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.tiers.keys().map(String::as_str).collect();
        names.join(", ")
    }
}

/// A tier's name: a short lowercase word, as stored on tenants.
pub fn check_tier_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tier {name:?}: must be 1–32 lowercase letters, digits, '-' or '_'"
        ))
    }
}

fn rate(per_second: Option<NonZeroU32>, burst: Option<NonZeroU32>) -> Option<Rate> {
    per_second.map(|per_second| Rate {
        per_second,
        burst: burst.unwrap_or(per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1))),
    })
}

impl TierFile {
    fn check(self, name: &str) -> Result<Tier, String> {
        let bare_burst = (self.events_burst.is_some() && self.events_per_second.is_none())
            || (self.webhooks_burst.is_some() && self.webhooks_per_second.is_none());
        if bare_burst {
            return Err(format!("tier {name:?}: a burst needs its per_second rate"));
        }
        let inbox_retention_s = match self.inbox_retention {
            None => None,
            Some(text) => {
                let d: Duration = humantime::parse_duration(&text)
                    .map_err(|e| format!("tier {name:?}: inbox_retention {text:?}: {e}"))?;
                if d < Duration::from_secs(1) {
                    return Err(format!(
                        "tier {name:?}: inbox_retention must be at least 1s"
                    ));
                }
                Some(d.as_secs())
            }
        };
        Ok(Tier {
            name: name.to_owned(),
            agents: self.agents,
            sockets: self.sockets,
            events: rate(self.events_per_second, self.events_burst),
            webhooks: rate(self.webhooks_per_second, self.webhooks_burst),
            inbox_retention_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_tiers_are_free_standard_and_enterprise() {
        let tiers = Tiers::default();
        assert_eq!(tiers.names(), "enterprise, free, standard");
        assert_eq!(tiers.default_name(), "standard");
        let free = tiers.get("free");
        assert_eq!(free.agents, Some(10));
        assert_eq!(free.events.map(|r| r.burst.get()), Some(20));
        assert_eq!(free.inbox_retention_s, Some(86_400));
        let enterprise = tiers.get("enterprise");
        assert_eq!((enterprise.agents, enterprise.events), (None, None));
        // A tenant left on a tier the file no longer has gets the default's limits.
        assert_eq!(tiers.get("gone").name, "standard");
    }

    #[test]
    fn a_file_with_a_mistake_is_refused_with_the_reason() {
        let cases = [
            ("default = \"x\"\n[tiers.a]\n", "names no tier"),
            ("default = \"a\"\n[tiers.a]\nagnets = 3\n", "unknown field"),
            ("default = \"a\"\n[tiers.A]\n", "lowercase"),
            (
                "default = \"a\"\n[tiers.a]\nevents_burst = 3\n",
                "needs its per_second",
            ),
            (
                "default = \"a\"\n[tiers.a]\nevents_per_second = 0\n",
                "nonzero",
            ),
            (
                "default = \"a\"\n[tiers.a]\ninbox_retention = \"soon\"\n",
                "inbox_retention",
            ),
        ];
        for (text, why) in cases {
            let err = Tiers::parse(text).expect_err(text).to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_burst_defaults_to_two_seconds_of_rate() {
        let tiers = Tiers::parse(
            "default = \"a\"\n[tiers.a]\nwebhooks_per_second = 7\nevents_per_second = 3\nevents_burst = 4\n",
        )
        .expect("parses");
        let a = tiers.get("a");
        assert_eq!(
            a.webhooks.map(|r| (r.per_second.get(), r.burst.get())),
            Some((7, 14))
        );
        assert_eq!(
            a.events.map(|r| (r.per_second.get(), r.burst.get())),
            Some((3, 4))
        );
        assert_eq!(a.sockets, None);
    }

    #[test]
    fn the_readmes_example_file_parses() {
        let readme = include_str!("../../README.md");
        let from = readme
            .find("```toml\ndefault = ")
            .expect("the README's tiers example");
        let block = &readme[from + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("end of the block")];
        let tiers = Tiers::parse(block).expect("the README's example is a valid tiers file");
        assert_eq!(tiers.names(), "free, partner, standard");
        assert_eq!(tiers.get("partner").agents, None);
    }
}
