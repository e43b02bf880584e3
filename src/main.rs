//! `tidewatch`: streaming monitoring and early warning for IoT sensor networks.

mod auth;
mod check;
mod config;
mod console;
mod dead_letters;
mod decode_tool;
mod demo;
mod durable;
mod http;
mod http_server;
mod http_users;
mod json_lines;
mod load;
mod load_kafka;
mod login_throttle;
mod metrics;
mod protocols;
mod reload;
mod replay;
mod routes;
mod runtime;
mod sinks;
mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tidewatch_ingest::Registry;
use tidewatch_rules::{compile, read_sources, RuleSource};

use crate::config::Config;
use crate::runtime::{RunOptions, Settings};

#[derive(Parser)]
#[command(name = "tidewatch", version, about = "Streaming monitoring and early warning for IoT sensor networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything on one machine: embedded broker, flood simulator, example rules, HTTP API.
    Demo {
        /// Stop by itself after this long (e.g. 60s, 5m).
        #[arg(long, value_parser = duration)]
        duration: Option<Duration>,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Address of the embedded MQTT broker (default: a free port on 127.0.0.1).
        #[arg(long)]
        mqtt_listen: Option<SocketAddr>,
        /// Real time per simulated minute.
        #[arg(long, default_value = "500ms", value_parser = duration)]
        speed: Duration,
        /// Rule-engine worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Directory for alerts.jsonl and dead_letters.jsonl.
        #[arg(long, default_value = "var/demo")]
        out: PathBuf,
    },
    /// Users of the HTTP API, and their tokens (in the configuration's alert store).
    Users {
        #[arg(long, default_value = "config/tidewatch.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Run a deployment from its configuration file.
    Run {
        #[arg(long, default_value = "config/tidewatch.toml")]
        config: PathBuf,
        /// Stop by itself after this long.
        #[arg(long, value_parser = duration)]
        duration: Option<Duration>,
    },
    /// Replay a recorded file (JSON lines or CSV) through the deployment's rules: the same
    /// decoding, engine and alert workflow as a live feed, with a fresh alert store in
    /// `--out`; nobody is notified unless `--notify`.
    Replay {
        #[arg(long, default_value = "config/tidewatch.toml")]
        config: PathBuf,
        #[command(flatten)]
        args: replay::ReplayArgs,
    },
    /// Decode raw device traffic and print readings and rejections as JSON lines.
    Decode {
        /// The traffic's protocol.
        #[arg(long, value_enum)]
        format: decode_tool::DecodeFormat,
        /// JSON field mapping (a TOML file with the fields of a route's `json` table).
        #[arg(long)]
        map: Option<PathBuf>,
        /// Zone of device-local times.
        #[arg(long, default_value = "Asia/Shanghai", value_parser = zone)]
        time_zone: chrono_tz::Tz,
        /// Input file; `-` or nothing for standard input.
        input: Option<PathBuf>,
    },
    /// Publish synthetic JSON readings, as fast as possible or at a rate (throughput and
    /// latency measurements).
    Load(load::LoadOptions),
    /// Rule-file tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files and print every error with file:line:column.
    Check {
        /// Rule files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Station registry to check attributes and per-station ladders against
        /// (default: config/stations.toml if it exists).
        #[arg(long)]
        stations: Option<PathBuf>,
    },
    /// Run rule unit tests: input series and the transitions expected (see docs/rules.md).
    Test {
        /// Test files (`*.test.toml`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user (or change one's role and password). The password is read from the
    /// first line of standard input, or TIDEWATCH_PASSWORD; without either, a token-only user.
    Add {
        name: String,
        /// viewer, duty, analyst or admin.
        #[arg(long)]
        role: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their roles and how many tokens they have.
    List,
    /// Make a bearer token for a user (printed once).
    Token {
        name: String,
        /// What the token is for (e.g. the machine that uses it).
        #[arg(long, default_value = "")]
        label: String,
        /// It stops working after this long (e.g. 90d); default never.
        #[arg(long, value_parser = duration)]
        expires: Option<Duration>,
    },
    /// List a user's tokens (their ids, labels and expiry; never the tokens).
    Tokens { name: String },
    /// Revoke a token by its id (from `tokens`).
    Revoke { id: String },
}

fn users(config: &std::path::Path, command: UsersCommand) -> anyhow::Result<std::process::ExitCode> {
    use tidewatch_alerting::users::Role;
    let config = Config::load(config)?;
    block_on(async move {
        let store = tidewatch_alerting::Store::open(&config.alerting.store).await?;
        let now = tidewatch_alerting::manager::now_ms();
        match command {
            UsersCommand::Add { name, role, password_stdin } => {
                let Some(role) = Role::parse(&role) else {
                    anyhow::bail!("--role {role:?}: viewer, duty, analyst or admin");
                };
                let password = if password_stdin {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    Some(line.trim_end_matches(['\r', '\n']).to_owned()).filter(|p| !p.is_empty())
                } else {
                    std::env::var("TIDEWATCH_PASSWORD").ok().filter(|p| !p.is_empty())
                };
                store.put_user(&name, role, password.as_deref(), now).await?;
                println!("user {name}: {}{}", role.name(), if password.is_some() { ", password set" } else { "" });
            }
            UsersCommand::List => {
                for u in store.users().await? {
                    println!("{}\t{}\t{} token(s)", u.name, u.role.name(), u.tokens);
                }
            }
            UsersCommand::Token { name, label, expires } => {
                let expires_at = expires.map(|d| now + d.as_millis() as i64);
                match store.new_token(&name, &label, now, expires_at).await? {
                    Some(new) => {
                        println!("{}", new.token);
                        eprintln!("token id {} (revoke with `tidewatch users revoke {}`)", new.id, new.id);
                    }
                    None => anyhow::bail!("no user {name:?}: add it first with `tidewatch users add`"),
                }
            }
            UsersCommand::Tokens { name } => match store.tokens(&name).await? {
                Some(tokens) => {
                    for t in tokens {
                        let expires = t.expires_at.map_or("never".to_owned(), tidewatch_ingest::time::to_rfc3339);
                        println!("{}\t{}\texpires {expires}", t.id, t.label);
                    }
                }
                None => anyhow::bail!("no user {name:?}"),
            },
            UsersCommand::Revoke { id } => {
                if !store.revoke_token(&id).await? {
                    anyhow::bail!("no token {id:?} (ids are 16 hex digits; see `tidewatch users tokens NAME`)");
                }
                println!("token {id} revoked");
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

fn zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse().map_err(|_| format!("{s:?} is not an IANA time zone name"))
}

fn duration(s: &str) -> Result<Duration, String> {
    tidewatch_rules::duration::parse_duration(s).map(|ms| Duration::from_millis(ms as u64))
}

fn main() -> std::process::ExitCode {
    // Two TLS crypto providers are built in (rumqttc brings aws-lc-rs, reqwest ring):
    // rustls then wants the process to pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=off,rumqttc=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Rules { command: RulesCommand::Check { paths, stations } } => {
            let ok = check::rules_check(&paths, stations)?;
            Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
        }
        Command::Rules { command: RulesCommand::Test { files } } => {
            let ok = check::rules_test(&files);
            Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
        }
        Command::Load(options) => {
            block_on(load::run(options))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Decode { format, map, time_zone, input } => {
            decode_tool::run(format, map, input, time_zone)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Users { config, command } => users(&config, command),
        Command::Run { config, duration } => {
            let config = Config::load(&config)?;
            let settings = settings(config, None)?;
            block_on(runtime::run(settings, RunOptions { duration, ..Default::default() }))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Replay { config, args } => {
            let config = replay::configure(Config::load(&config)?, &args)?;
            let settings = settings(config, None)?;
            let options = RunOptions {
                until_sources_end: true,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                ..Default::default()
            };
            block_on(runtime::run(settings, options))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Demo { duration, http, mqtt_listen, speed, workers, out } => {
            let mqtt_listen = match mqtt_listen {
                Some(a) => a,
                None => SocketAddr::from(([127, 0, 0, 1], tidewatch_connectors::mqtt::embedded::free_local_port()?)),
            };
            let credentials = out.join("mqtt-credentials.toml").display().to_string().replace('\\', "/");
            let mut config: Config = toml::from_str(&format!(
                r#"stations = "<built-in>"
rules = ["<built-in>"]
[engine]
workers = {workers}
[mqtt]
embedded_listen = "{mqtt_listen}"
embedded_credentials = "{credentials}"
client_id = "tidewatch-demo"
[[mqtt.route]]
name = "json"
filter = "tidewatch/json/#"
format = "json"
[[mqtt.route]]
name = "hj212"
filter = "tidewatch/hj212/#"
format = "hj212"
[http]
listen = "{http}"
"#
            ))?;
            config.output.alerts_file = Some(out.join("alerts.jsonl"));
            config.output.dead_letter_file = Some(out.join("dead_letters.jsonl"));
            // Each demo replays the same six hours: it starts with an empty alert store, or
            // the alerts still open from the last run would swallow this run's first fires.
            let db = out.join("alerts.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            config.alerting.store = format!("sqlite://{}", db.display());
            let registry = Registry::from_toml_str(demo::STATIONS)?;
            let sources: Vec<RuleSource> =
                demo::RULES.iter().map(|(n, t)| RuleSource { name: (*n).into(), text: (*t).into() }).collect();
            let settings = settings(config, Some((registry, sources)))?;
            println!(
                "Tidewatch demo: {} stations, {} rules; embedded MQTT broker on {mqtt_listen}",
                settings.registry.len(),
                settings.rules.rules.len()
            );
            println!("Simulating a flood on the Qiantang (JSON gauges) and a pollution episode (HJ 212 loggers) from six hours ago at {:?} per simulated minute.", speed);
            println!(
                "Console: http://{http}/console (log in as admin, password below) · API: http://{http}/api/alerts · metrics: http://{http}/metrics · files in {}",
                out.display()
            );
            println!("Alerts appear below as they fire (Ctrl-C to stop).\n");
            let simulate = demo::SimulatorOptions {
                speed,
                start_back: Duration::from_secs(6 * 3600),
                topic_prefix: "tidewatch".into(),
                status_every: Some(Duration::from_secs(10)),
            };
            block_on(runtime::run(settings, RunOptions { duration, simulate: Some(simulate), ..Default::default() }))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// Loads registry and rules (from the config's files unless given) and checks everything.
fn settings(config: Config, given: Option<(Registry, Vec<RuleSource>)>) -> anyhow::Result<Settings> {
    // Every problem of the configuration and the duty roster it names, at once.
    let mut problems = Vec::new();
    let timing = config.check().map_err(|p| problems.extend(p)).ok();
    if let Some(duty) = &config.alerting.duty {
        if let Err(p) = tidewatch_alerting::Duty::load(duty) {
            problems.extend(p);
        }
    }
    let timing = match timing {
        Some(timing) if problems.is_empty() => timing,
        _ => anyhow::bail!(
            "invalid configuration ({} problem{}):\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        ),
    };
    let (registry, sources) = match given {
        Some(g) => g,
        None => {
            let registry = Registry::load(&config.stations)?;
            let sources = read_sources(&config.rules).map_err(|d| anyhow::anyhow!("{}: {}", d.file, d.message))?;
            (registry, sources)
        }
    };
    let rules = compile(&sources, &registry).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("rule files rejected ({} errors):\n  {}", lines.len(), lines.join("\n  "))
    })?;
    Ok(Settings { config, timing, registry: Arc::new(registry), rules: Arc::new(rules), rule_sources: sources })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
        .expect("tokio runtime")
        .block_on(future)
}
