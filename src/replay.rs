//! `tidewatch replay FILE`: a recorded file through the same decode → engine → alerts path
//! as a live feed, at full speed or at `--speed`, with its own alert store and output
//! directory (nobody is notified unless asked).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tidewatch_connectors::file::FileStatus;

use crate::config::Config;
use crate::sources::{FileFormat, FileSource, SourceConfig};

/// What `tidewatch replay` was asked.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The recording: JSON lines (`.jsonl`) or CSV with a header (`.csv`).
    pub file: PathBuf,
    /// jsonl or csv (default: by the file's extension).
    #[arg(long, value_parser = file_format)]
    pub format: Option<FileFormat>,
    /// Which fields or columns hold what: a TOML file with a route's `json` fields
    /// (station, quantity, value, unit, time, time_format, time_zone, fixed_quantity, fixed_unit).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Event time per wall-clock time (60: an hour a minute); default as fast as it goes.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Directory for alerts.jsonl, dead_letters.jsonl and the replay's alert store.
    #[arg(long, default_value = "var/replay")]
    pub out: PathBuf,
    /// Send notifications to the duty roster (default: only print and record them).
    #[arg(long)]
    pub notify: bool,
    /// Also feed the configuration's sinks.
    #[arg(long)]
    pub sinks: bool,
    /// Do not print each transition.
    #[arg(long)]
    pub quiet: bool,
}

fn file_format(s: &str) -> Result<FileFormat, String> {
    match s {
        "jsonl" => Ok(FileFormat::Jsonl),
        "csv" => Ok(FileFormat::Csv),
        other => Err(format!("{other:?}: jsonl or csv")),
    }
}

/// The deployment's configuration, turned into a replay of one file.
pub fn configure(mut config: Config, args: &ReplayArgs) -> anyhow::Result<Config> {
    let format = match args.format {
        Some(f) => f,
        None => match args.file.extension().and_then(|e| e.to_str()) {
            Some("csv") => FileFormat::Csv,
            _ => FileFormat::Jsonl,
        },
    };
    let mapping = match &args.mapping {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            tidewatch_ingest::toml_all::parse(&text, &path.display().to_string())
                .map_err(|p| anyhow::anyhow!("mapping rejected:\n  {}", p.join("\n  ")))?
        }
        None => Default::default(),
    };
    config.source = vec![SourceConfig::File(FileSource {
        name: "replay".into(),
        path: args.file.clone(),
        format,
        mapping,
        speed: args.speed,
        reorder: false,
    })];
    config.mqtt = None;
    config.listener.clear();
    if !args.sinks {
        config.sink.clear();
    }
    if !args.notify {
        config.alerting.duty = None;
    }
    config.state.dir = None;
    config.http.listen = "127.0.0.1:0".parse().expect("valid address");
    config.output.console = !args.quiet;
    config.output.alerts_file = Some(args.out.join("alerts.jsonl"));
    config.output.dead_letter_file = Some(args.out.join("dead_letters.jsonl"));
    // A fresh alert store per replay: alerts still open from an earlier one would swallow
    // this one's first fires.
    std::fs::create_dir_all(&args.out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.out.display()))?;
    let db = args.out.join("alerts.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    for file in ["alerts.jsonl", "dead_letters.jsonl"] {
        let _ = std::fs::remove_file(args.out.join(file));
    }
    config.alerting.store = format!("sqlite://{}", db.display());
    Ok(config)
}

/// A progress bar per file on the terminal, until aborted.
pub async fn progress(files: Vec<(&'static str, Arc<FileStatus>)>) {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {bytes}/{total_bytes} {msg} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let shown: Vec<_> = files
        .into_iter()
        .map(|(name, status)| {
            let bar = bars.add(ProgressBar::new(status.bytes_total.load(Ordering::Relaxed)));
            bar.set_style(style.clone());
            bar.set_prefix(name);
            (bar, status)
        })
        .collect();
    loop {
        for (bar, status) in &shown {
            bar.set_position(status.bytes_read.load(Ordering::Relaxed));
            bar.set_message(format!("{} lines", status.lines.load(Ordering::Relaxed)));
            if status.finished.load(Ordering::Relaxed) && !bar.is_finished() {
                bar.finish();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
