//! The `portcullis` command line: run, check, gen-certs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use portcullis::server::Control;
use tracing_subscriber::EnvFilter;

/// Exit status for bad configuration (`EX_USAGE`-style, as the spec requires).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "TLS, mutual-TLS identity and Redis 7.0 ACLs in front of any Redis"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "proxy.toml")]
    config: PathBuf,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration, certificates, keys and users; exit 0 or 64.
    Check,
    /// ACL tools.
    Acl {
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Write a development PKI: ca.pem ca.key server.pem server.key NAME.pem NAME.key.
    GenCerts {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// A client certificate to issue (CN = NAME); repeatable.
        #[arg(long = "client")]
        clients: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AclCommand {
    /// Print what `ACL DRYRUN USER COMMAND [ARG...]` answers for the configured users.
    /// Exit 0 when allowed, 1 when denied, 2 on an error reply, 64 on bad configuration.
    Dryrun {
        /// The user.
        user: String,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::Check => check(&cli.config),
        Command::GenCerts { out, clients } => gen_certs(&out, &clients),
        Command::Acl {
            command: AclCommand::Dryrun { user, command },
        } => acl_dryrun(&cli.config, &user, &command),
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Loads and prepares everything, printing each problem on its own line.
fn load(path: &Path) -> Result<portcullis::server::Prepared, ExitCode> {
    let config = portcullis::config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    portcullis::server::prepare(config).map_err(|errors| {
        for e in errors {
            eprintln!("{e}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(p) => {
            println!(
                "{}: OK ({} users)",
                path.display(),
                p.shared.live().users.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(path: &Path) -> ExitCode {
    let prepared = match load(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = prepared.shared.live().config.server.worker_threads {
        rt.worker_threads(n);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serve = async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(signals(tx));
        portcullis::server::run(prepared, path, rx).await
    };
    match rt.block_on(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "proxy stopped");
            ExitCode::FAILURE
        }
    }
}

/// Turns signals into controls: SIGHUP reloads, SIGTERM / SIGINT stop.
async fn signals(tx: tokio::sync::mpsc::Sender<Control>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    loop {
        let control = tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "stop requested"); Control::Stop }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "stop requested"); Control::Stop }
            _ = hup.recv() => { tracing::info!(signal = "SIGHUP", "reload requested"); Control::Reload }
        };
        if tx.send(control).await.is_err() || control == Control::Stop {
            return;
        }
    }
}

fn acl_dryrun(path: &Path, user: &str, command: &[String]) -> ExitCode {
    let prepared = match load(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let live = prepared.shared.live();
    let Some(u) = live.users.get(user) else {
        println!("ERR User '{user}' not found");
        return ExitCode::from(2);
    };
    let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let mut scratch = portcullis::acl::check::CheckScratch::default();
    let reply = portcullis::acl::check::dryrun_reply(u, &args, &mut scratch);
    let text = String::from_utf8_lossy(&reply);
    let (code, body) = match reply.first() {
        Some(b'+') => (0, text.trim_end().trim_start_matches('+').to_string()),
        Some(b'$') => (
            1,
            text.split_once("\r\n")
                .map(|x| x.1)
                .unwrap_or("")
                .trim_end()
                .to_string(),
        ),
        _ => (2, text.trim_end().trim_start_matches('-').to_string()),
    };
    println!("{body}");
    ExitCode::from(code)
}

fn gen_certs(out: &Path, clients: &[String]) -> ExitCode {
    match portcullis::certgen::write_dev_pki(out, clients) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-certs: {e}");
            ExitCode::FAILURE
        }
    }
}
