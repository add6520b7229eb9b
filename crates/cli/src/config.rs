//! The one configuration of c360, meilisearch-style: every setting is a field of [`Settings`],
//! settable as a flag (`--warehouse`), a `C360_*` environment variable (`C360_WAREHOUSE`) or a
//! key of a TOML file (`warehouse = "…"`, or `[llm] base_url = "…"` for `llm_base_url`).
//! Precedence: flag > environment > file > default.
//!
//! The file is `--config PATH`, else `C360_CONFIG`, else `./c360.toml` if it exists. Before the
//! flags are parsed, each key of the file is exported as its `C360_*` variable unless that
//! variable is already set; clap then resolves flags over environment over defaults as usual,
//! so the precedence holds by construction and there is one parser. Unknown keys are an error.
//!
//! Settings say *where* things are and *how* to run (paths, URLs, secrets, the server, the LLM);
//! the parameters of one run (how many orders, which campaign) stay arguments of their command.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory};

/// Every setting. Global: a flag may stand before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// The configuration file (TOML; default ./c360.toml if present).
    #[arg(long, global = true, env = "C360_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The hotdog2030 warehouse directory.
    #[arg(
        long,
        global = true,
        env = "C360_WAREHOUSE",
        default_value = "data/hotdog2030"
    )]
    pub warehouse: PathBuf,
    /// Metastore URL: sqlite://… or postgres://… (default: SQLite inside the warehouse directory).
    #[arg(long, global = true, env = "C360_METASTORE", value_name = "URL")]
    pub metastore: Option<String>,
    /// POS source (cyrg2025): a SQLite path, mysql://… or postgres://…
    #[arg(
        long,
        global = true,
        env = "C360_POS",
        default_value = "data/cyrg2025.db"
    )]
    pub pos: String,
    /// Mini-program source (cyrgweixin): a SQLite path, mysql://… or postgres://…
    #[arg(
        long,
        global = true,
        env = "C360_WX",
        default_value = "data/cyrgweixin.db"
    )]
    pub wx: String,
    /// The source contract: a TOML file of `[sources.*]` and `[entities.*]` saying where each
    /// entity comes from and how it is written (default: those tables in the configuration
    /// file, else the simulator's schema, `examples/sim.toml`).
    #[arg(long, global = true, env = "C360_CONTRACT", value_name = "FILE")]
    pub contract: Option<PathBuf>,
    /// The simulator's ground truth (kept apart from the sources; evaluation only).
    #[arg(long, global = true, env = "C360_TRUTH", value_name = "URL")]
    pub truth: Option<String>,
    /// Secret for hashing phones and unionids (default: the one the metastore generated on its
    /// first run; if given, it must match the stored one).
    #[arg(long, global = true, env = "C360_SALT", hide_env_values = true)]
    pub salt: Option<String>,
    /// Whom each customer's RFM is compared with: city | store | national.
    #[arg(long, global = true, env = "C360_RFM_GROUP", default_value = "city")]
    pub rfm_group: String,
    /// Where `serve` (and `demo`) listen.
    #[arg(
        long,
        global = true,
        env = "C360_ADDR",
        default_value = "127.0.0.1:8360"
    )]
    pub addr: String,
    /// Seconds between the server's checks for a new warehouse snapshot.
    #[arg(long, global = true, env = "C360_POLL_SECS", default_value_t = 2.0)]
    pub poll_secs: f64,
    /// Requests a second each API key may make on average (0: no limit); over it, 429.
    #[arg(long, global = true, env = "C360_RATE_LIMIT", default_value_t = 100.0)]
    pub rate_limit: f64,
    /// Requests a key may make at once above its average rate.
    #[arg(long, global = true, env = "C360_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,
    /// LLM insights (not cached) each key may ask for a minute (0: no limit).
    #[arg(
        long,
        global = true,
        env = "C360_LLM_RATE_PER_MIN",
        default_value_t = 20.0
    )]
    pub llm_rate_per_min: f64,
    /// OpenAI-compatible base URL for AI insights (unset: the rule-based writer).
    #[arg(long, global = true, env = "C360_LLM_BASE_URL", value_name = "URL")]
    pub llm_base_url: Option<String>,
    #[arg(
        long,
        global = true,
        env = "C360_LLM_MODEL",
        default_value = "gpt-4o-mini"
    )]
    pub llm_model: String,
    #[arg(long, global = true, env = "C360_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    #[arg(
        long,
        global = true,
        env = "C360_LLM_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub llm_timeout_secs: u64,
    #[arg(long, global = true, env = "C360_LLM_RETRIES", default_value_t = 2)]
    pub llm_retries: u32,
    /// Ask the LLM for `response_format: json_object` (some local servers reject it).
    #[arg(long, global = true, env = "C360_LLM_JSON_MODE", default_value_t = true, action = clap::ArgAction::Set)]
    pub llm_json_mode: bool,
    /// Who the CLI's changes are audited as (default cli:$USER).
    #[arg(long, global = true, env = "C360_ACTOR")]
    pub actor: Option<String>,
    /// Hide progress bars.
    #[arg(long, global = true, env = "C360_QUIET")]
    pub quiet: bool,
}

/// The tables of a TOML file that make up a source contract (not settings).
const CONTRACT_TABLES: [&str; 2] = ["sources", "entities"];

/// The configuration file in effect: `--config` / `C360_CONFIG`, else `./c360.toml` if present.
fn config_file(s: &Settings) -> Option<PathBuf> {
    s.config
        .clone()
        .or_else(|| Some(PathBuf::from("c360.toml")).filter(|p| p.exists()))
}

/// The contract tables of a TOML file, as a contract; None when it has none. `only_contract`:
/// any other key is an error (a contract file, not a configuration file).
fn contract_in(path: &Path, only_contract: bool) -> Result<Option<c360_etl::contract::Contract>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    let mut part = toml::Table::new();
    for (k, v) in table {
        if CONTRACT_TABLES.contains(&k.as_str()) {
            part.insert(k, v);
        } else if only_contract {
            bail!(
                "{}: {k:?} is not part of a source contract (only [sources.*] and [entities.*])",
                path.display()
            );
        }
    }
    if part.is_empty() {
        return Ok(None);
    }
    let c = c360_etl::contract::Contract::from_toml(&toml::to_string(&part)?)
        .with_context(|| format!("{}: source contract", path.display()))?;
    Ok(Some(c))
}

/// The source contract in effect: `--contract FILE`, else the `[sources]`/`[entities]` tables
/// of the configuration file, else None (the simulator's schema). Both at once is an error.
pub fn contract_of(s: &Settings) -> Result<Option<c360_etl::contract::Contract>> {
    let inline = match config_file(s) {
        Some(f) => contract_in(&f, false)?,
        None => None,
    };
    match (&s.contract, inline) {
        (Some(_), Some(_)) => bail!(
            "a source contract is given twice: --contract / C360_CONTRACT and [sources]/[entities] in the configuration file"
        ),
        (Some(f), None) => {
            if !f.exists() {
                bail!("source contract {} does not exist", f.display());
            }
            Ok(Some(contract_in(f, true)?.with_context(|| {
                format!("{}: no [sources] or [entities]", f.display())
            })?))
        }
        (None, c) => Ok(c),
    }
}

/// Where the contract in effect comes from, for messages.
pub fn contract_origin(s: &Settings) -> String {
    match (&s.contract, config_file(s)) {
        (Some(f), _) => f.display().to_string(),
        (None, Some(f)) if contract_in(&f, false).ok().flatten().is_some() => {
            format!("{} ([sources], [entities])", f.display())
        }
        _ => "the simulator's schema (examples/sim.toml)".into(),
    }
}

/// Settings whose values never print.
const SECRET: [&str; 2] = ["salt", "llm_api_key"];

impl Settings {
    /// The metastore URL: the configured one, or SQLite inside the warehouse directory.
    pub fn metastore_url(&self) -> String {
        metastore_in(&self.warehouse, self.metastore.clone())
    }

    /// The truth database, or the simulator's default path.
    pub fn truth_or_default(&self) -> String {
        self.truth.clone().unwrap_or_else(|| "data/truth.db".into())
    }

    /// The LLM behind AI insights, if a base URL is set.
    pub fn llm(&self) -> Option<c360_insights::llm::LlmConfig> {
        let base_url = self.llm_base_url.clone().filter(|s| !s.is_empty())?;
        Some(c360_insights::llm::LlmConfig {
            base_url,
            model: self.llm_model.clone(),
            api_key: c360_model::Secret::new(self.llm_api_key.clone().unwrap_or_default()),
            timeout: std::time::Duration::from_secs(self.llm_timeout_secs),
            max_retries: self.llm_retries,
            json_mode: self.llm_json_mode,
        })
    }

    pub fn actor(&self) -> String {
        self.actor.clone().unwrap_or_else(|| {
            format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            )
        })
    }

    pub fn salt(&self) -> Option<c360_model::Secret> {
        self.salt.clone().map(c360_model::Secret::new)
    }
}

/// The metastore URL for a warehouse directory and an optional configured URL.
pub fn metastore_in(warehouse: &Path, metastore: Option<String>) -> String {
    metastore.unwrap_or_else(|| {
        c360_etl::EtlConfig {
            warehouse: warehouse.to_path_buf(),
            ..Default::default()
        }
        .metastore()
    })
}

/// The settings' keys with their environment variables (`warehouse` → `C360_WAREHOUSE`).
fn keys() -> Vec<(String, String)> {
    let cmd = Settings::augment_args(clap::Command::new("c360"));
    cmd.get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_string();
            Some((a.get_id().as_str().to_string(), env))
        })
        .filter(|(k, _)| k != "config")
        .collect()
}

/// Which file to read: `--config` / `--config=` in `args`, else `C360_CONFIG`, else
/// `./c360.toml` if it exists. `Err` when a named file does not exist.
pub fn locate(args: &[OsString]) -> Result<Option<PathBuf>> {
    let mut named = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            named = it.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--config=") {
            named = Some(PathBuf::from(v));
        }
    }
    let named = named.or_else(|| std::env::var_os("C360_CONFIG").map(PathBuf::from));
    match named {
        Some(p) if !p.exists() => bail!("configuration file {} does not exist", p.display()),
        Some(p) => Ok(Some(p)),
        None => {
            let p = PathBuf::from("c360.toml");
            Ok(p.exists().then_some(p))
        }
    }
}

/// Reads the file into `(env var, value)` pairs; unknown keys and non-scalar values are errors
/// naming the key.
pub fn read_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    let known = keys();
    let mut out = Vec::new();
    let mut flat = Vec::new();
    for (k, v) in table {
        if CONTRACT_TABLES.contains(&k.as_str()) {
            // The source contract, read by `contract_of`.
            continue;
        }
        match v {
            toml::Value::Table(t) => {
                for (k2, v2) in t {
                    flat.push((format!("{k}_{k2}"), v2));
                }
            }
            v => flat.push((k, v)),
        }
    }
    for (k, v) in flat {
        let key = k.replace('-', "_");
        let Some((_, env)) = known.iter().find(|(id, _)| *id == key) else {
            let names: BTreeSet<&str> = known.iter().map(|(k, _)| k.as_str()).collect();
            bail!(
                "{}: unknown setting {k:?} (known: {})",
                path.display(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            );
        };
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "{}: setting {k:?} must be a string, number or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        };
        out.push((env.clone(), value));
    }
    Ok(out)
}

/// Exports the file's settings as environment variables where none is set; returns the
/// variables it set (so `config show` can say a value came from the file).
pub fn export_file(path: &Path) -> Result<BTreeSet<String>> {
    let mut set = BTreeSet::new();
    for (env, value) in read_file(path)? {
        if std::env::var_os(&env).is_none() {
            // Single-threaded here: main calls this before the runtime or any thread starts.
            std::env::set_var(&env, value);
            set.insert(env);
        }
    }
    Ok(set)
}

/// Where one setting's value came from.
fn source_of(m: &ArgMatches, id: &str, env: &str, from_file: &BTreeSet<String>) -> &'static str {
    let mut src = m.value_source(id);
    let mut sub = m.subcommand();
    while let Some((_, sm)) = sub {
        if let Some(s) = sm.value_source(id) {
            if src.is_none() || src == Some(ValueSource::DefaultValue) {
                src = Some(s);
            }
        }
        sub = sm.subcommand();
    }
    match src {
        Some(ValueSource::CommandLine) => "flag",
        Some(ValueSource::EnvVariable) if from_file.contains(env) => "file",
        Some(ValueSource::EnvVariable) => "env",
        Some(ValueSource::DefaultValue) => "default",
        _ => "unset",
    }
}

/// The effective configuration as TOML, each line with where its value came from; secrets
/// show as `***`.
pub fn show(
    s: &Settings,
    m: &ArgMatches,
    file: Option<&Path>,
    from_file: &BTreeSet<String>,
) -> String {
    let values: Vec<(&str, Option<String>)> = vec![
        ("warehouse", Some(s.warehouse.display().to_string())),
        ("metastore", Some(s.metastore_url())),
        ("pos", Some(c360_db::redact(&s.pos))),
        ("wx", Some(c360_db::redact(&s.wx))),
        ("contract", Some(contract_origin(s))),
        ("truth", s.truth.clone()),
        ("salt", s.salt.clone()),
        ("rfm_group", Some(s.rfm_group.clone())),
        ("addr", Some(s.addr.clone())),
        ("poll_secs", Some(s.poll_secs.to_string())),
        ("rate_limit", Some(s.rate_limit.to_string())),
        ("rate_burst", Some(s.rate_burst.to_string())),
        ("llm_rate_per_min", Some(s.llm_rate_per_min.to_string())),
        ("llm_base_url", s.llm_base_url.clone()),
        ("llm_model", Some(s.llm_model.clone())),
        ("llm_api_key", s.llm_api_key.clone()),
        ("llm_timeout_secs", Some(s.llm_timeout_secs.to_string())),
        ("llm_retries", Some(s.llm_retries.to_string())),
        ("llm_json_mode", Some(s.llm_json_mode.to_string())),
        ("actor", Some(s.actor())),
        ("quiet", Some(s.quiet.to_string())),
    ];
    let envs = keys();
    let mut out = format!(
        "# c360 effective configuration (file: {})\n",
        file.map_or("none".into(), |f| f.display().to_string())
    );
    for (k, v) in values {
        let env = envs
            .iter()
            .find(|(id, _)| id == k)
            .map_or(String::new(), |(_, e)| e.clone());
        let src = source_of(m, k, &env, from_file);
        let shown = match v {
            None => {
                out.push_str(&format!("# {k} = (unset)  # {env}\n"));
                continue;
            }
            Some(_) if SECRET.contains(&k) => "\"***\"".to_string(),
            Some(v) if v.parse::<f64>().is_ok() || v == "true" || v == "false" => v,
            Some(v) => format!("{v:?}"),
        };
        let src = if (k == "metastore" || k == "contract") && src == "unset" {
            "default"
        } else {
            src
        };
        out.push_str(&format!("{k} = {shown}  # {src}, {env}\n"));
    }
    out
}

/// Parses the command line after exporting the configuration file; returns the CLI, the
/// matches (for `config show`), the file and the variables it set.
pub fn parse<T: clap::FromArgMatches + CommandFactory>(
    args: Vec<OsString>,
) -> Result<(T, ArgMatches, Option<PathBuf>, BTreeSet<String>)> {
    let file = locate(&args)?;
    let from_file = match &file {
        Some(f) => export_file(f)?,
        None => BTreeSet::new(),
    };
    let m = T::command().get_matches_from(args);
    let t = T::from_arg_matches(&m).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((t, m, file, from_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_its_variable() {
        let k = keys();
        for (id, env) in &k {
            assert_eq!(env, &format!("C360_{}", id.to_uppercase()), "{id}");
        }
        assert!(k.iter().any(|(id, _)| id == "warehouse"));
        assert!(k.iter().any(|(id, _)| id == "llm_base_url"));
    }

    #[test]
    fn file_keys_map_to_variables_and_unknown_keys_fail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c360.toml");
        std::fs::write(
            &p,
            "warehouse = \"/srv/wh\"\npoll_secs = 5\n[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\njson_mode = false\n",
        )
        .unwrap();
        let mut got = read_file(&p).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                (
                    "C360_LLM_BASE_URL".to_string(),
                    "http://127.0.0.1:9/v1".to_string()
                ),
                ("C360_LLM_JSON_MODE".into(), "false".into()),
                ("C360_POLL_SECS".into(), "5".into()),
                ("C360_WAREHOUSE".into(), "/srv/wh".into()),
            ]
        );
        std::fs::write(&p, "warehous = \"x\"\n").unwrap();
        let e = read_file(&p).unwrap_err().to_string();
        assert!(e.contains("unknown setting \"warehous\""), "{e}");
        std::fs::write(&p, "warehouse = [1]\n").unwrap();
        let e = read_file(&p).unwrap_err().to_string();
        assert!(e.contains("must be a string"), "{e}");
    }
}
