//! Argument parsing, progress, summaries and exit codes. Everything else is the library's: this
//! module must not convert, build folder paths or talk to Bedrock by itself.

mod from_bedrock;
mod inputs;
mod jobs;
mod models;
mod run;
mod serve;
mod to_bedrock;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code when every line was converted.
pub const EXIT_OK: u8 = 0;
/// Exit code when some lines were rejected (and `--allow-rejects` was not given).
pub const EXIT_REJECTS: u8 = 1;
/// Exit code when the run failed: bad arguments, unreadable input, unwritable output.
pub const EXIT_FAILED: u8 = 2;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Run OpenAI-format batch files on Amazon Bedrock batch inference.
///
/// Converts OpenAI Batch API input files (one {"custom_id","method","url","body"} request per
/// line) into Bedrock batch inference records, and Bedrock's output back into OpenAI output and
/// error files: streaming, in parallel, in bounded memory, with every line and every custom_id
/// accounted for.
#[derive(Debug, Parser)]
#[command(name = "bedrock-batch", version, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// No progress bar and no summary on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Machine-readable output: the job commands print JSON (OpenAI Batch objects) on stdout; the
    /// converters print their summary as one JSON line on stderr.
    #[arg(long, global = true)]
    json: bool,

    /// Take a batch folder's lock from the run holding it (for a run known to be dead whose
    /// S3 lease has not run out yet; a dead local run's lock is free at once anyway).
    #[arg(long, global = true)]
    break_lock: bool,

    #[command(flatten)]
    s3: S3Args,

    /// A Bedrock-compatible control-plane endpoint (AWS_ENDPOINT_URL_BEDROCK works too).
    #[arg(long, global = true, value_name = "URL")]
    bedrock_endpoint_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

/// How to reach S3 for `s3://` inputs and outputs (AWS conventions: the default credential chain,
/// AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3).
#[derive(Debug, clap::Args)]
struct S3Args {
    /// AWS profile of the shared config files.
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,

    /// AWS region.
    #[arg(long, global = true, value_name = "REGION")]
    region: Option<String>,

    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (path-style addressing follows).
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,

    /// Force path-style addressing (automatic with a custom endpoint).
    #[arg(long, global = true)]
    s3_path_style: bool,

    /// Encrypt what is written with this KMS key: S3 objects (SSE-KMS) and Bedrock jobs' output.
    #[arg(long, global = true, value_name = "KEY_ID")]
    kms_key_id: Option<String>,

    /// Fail unless the bucket belongs to this account.
    #[arg(long, global = true, value_name = "ACCOUNT_ID")]
    expected_bucket_owner: Option<String>,

    /// Smallest multipart part, 5MiB to 5GiB (grown so no object needs more than 10,000 parts).
    #[arg(long, global = true, value_name = "SIZE", default_value = "8MiB", value_parser = units::bytes_in(5 << 20, 5 << 30))]
    s3_part_size: u64,

    /// Size of each ranged GET when reading from S3, 64KiB to 1GiB.
    #[arg(long, global = true, value_name = "SIZE", default_value = "8MiB", value_parser = units::bytes_in(64 << 10, 1 << 30))]
    s3_range_size: u64,

    /// S3 requests in flight per object (ranged GETs when reading, parts when writing), 1 to 64.
    #[arg(long, global = true, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    s3_concurrency: u16,
}

impl S3Args {
    fn options(&self) -> bedrock_batch::io::S3Options {
        bedrock_batch::io::S3Options {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            path_style: self.s3_path_style.then_some(true),
            kms_key_id: self.kms_key_id.clone(),
            expected_bucket_owner: self.expected_bucket_owner.clone(),
            part_size: self.s3_part_size,
            range_size: self.s3_range_size,
            upload_concurrency: usize::from(self.s3_concurrency),
            read_concurrency: usize::from(self.s3_concurrency),
            ..bedrock_batch::io::S3Options::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    ToBedrock(to_bedrock::Args),
    FromBedrock(from_bedrock::Args),
    Submit(jobs::SubmitCommand),
    Status(jobs::StatusCommand),
    List(jobs::ListCommand),
    Cancel(jobs::CancelCommand),
    Wait(jobs::WaitCommand),
    Run(Box<run::Args>),
    Serve(serve::Args),
    Models(models::Args),
}

/// What every command gets: storage, the way to Bedrock, and the output switches.
pub(crate) struct Context {
    storage: bedrock_batch::io::Storage,
    storage_options: bedrock_batch::io::S3Options,
    bedrock: bedrock_batch::driver::BedrockOptions,
    /// `--kms-key-id`: for S3 objects written and for Bedrock's output.
    kms_key_id: Option<String>,
    quiet: bool,
    json: bool,
    break_lock: bool,
    /// Cancelled on Ctrl-C or SIGTERM: `serve` stops gracefully, every other command stops
    /// where it is.
    shutdown: tokio_util::sync::CancellationToken,
}

impl Context {
    async fn driver(&self) -> bedrock_batch::driver::Driver {
        bedrock_batch::driver::Driver::connect(&self.bedrock).await
    }

    /// A check of a folder's jobs that connects to Bedrock only when there are jobs to check
    /// (a local folder never submitted needs no AWS configuration, and gets no warning about
    /// one).
    fn job_check(&self) -> LazyJobCheck<'_> {
        LazyJobCheck {
            cx: self,
            driver: tokio::sync::OnceCell::new(),
        }
    }

    /// How `command` takes a batch folder's lock.
    fn lock(&self, command: &str) -> bedrock_batch::batch_folder::LockOptions {
        bedrock_batch::batch_folder::LockOptions {
            break_lock: self.break_lock,
            ..bedrock_batch::batch_folder::LockOptions::for_command(command)
        }
    }
}

/// See [`Context::job_check`].
pub(crate) struct LazyJobCheck<'c> {
    cx: &'c Context,
    driver: tokio::sync::OnceCell<bedrock_batch::driver::Driver>,
}

impl bedrock_batch::batch_folder::JobCheck for LazyJobCheck<'_> {
    fn running<'a>(
        &'a self,
        job_arns: &'a [String],
    ) -> futures::future::BoxFuture<
        'a,
        Result<Vec<String>, bedrock_batch::batch_folder::JobCheckError>,
    > {
        Box::pin(async move {
            if job_arns.is_empty() {
                return Ok(Vec::new());
            }
            let driver = self.driver.get_or_init(|| self.cx.driver()).await;
            driver.running(job_arns).await
        })
    }
}

/// Raises this process's limit of open files to what the system allows it: many inputs read
/// ahead, results split per input and a server's connections all hold descriptors, and the
/// default soft limit (1024 on Linux, 256 on macOS) is far below the hard one.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit this function owns.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::debug!(
                    "cannot raise the open files limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Parses the arguments, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        // A server logs each request by default.
        0 if matches!(cli.command, Command::Serve(_)) => tracing::Level::INFO,
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let cx = Context {
        storage: bedrock_batch::io::Storage::new(cli.s3.options()),
        storage_options: cli.s3.options(),
        bedrock: bedrock_batch::driver::BedrockOptions {
            profile: cli.s3.profile.clone(),
            region: cli.s3.region.clone(),
            endpoint_url: cli.bedrock_endpoint_url.clone(),
            ..Default::default()
        },
        kms_key_id: cli.s3.kms_key_id.clone(),
        quiet: cli.quiet,
        json: cli.json,
        break_lock: cli.break_lock,
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    let storage = &cx.storage;
    let serving = matches!(cli.command, Command::Serve(_));
    let interrupted = match &cli.command {
        Command::Run(_) | Command::Submit(_) | Command::Wait(_) => {
            "interrupted: jobs already submitted keep running on Bedrock; run the same command again to resume, or stop them with `bedrock-batch cancel`"
        }
        _ => "interrupted: no output was completed",
    };
    let result = runtime.block_on(async {
        let work = async {
            match cli.command {
                Command::ToBedrock(args) => to_bedrock::run(args, &cx).await,
                Command::FromBedrock(args) => from_bedrock::run(args, &cx).await,
                Command::Submit(args) => jobs::submit(args, &cx).await,
                Command::Status(args) => jobs::status(args, &cx).await,
                Command::List(args) => jobs::list(args, &cx).await,
                Command::Cancel(args) => jobs::cancel(args, &cx).await,
                Command::Wait(args) => jobs::wait(args, &cx).await,
                Command::Run(args) => run::run(*args, &cx).await,
                Command::Serve(args) => serve::run(args, &cx).await,
                Command::Models(args) => models::run(args, &cx).await,
            }
        };
        tokio::spawn(cancel_on_signal(cx.shutdown.clone()));
        tokio::select! {
            result = work => result,
            // `serve` stops gracefully by itself.
            _ = cx.shutdown.cancelled(), if !serving => {
                // The conversion was dropped: local temporary files are gone; abort what S3 holds.
                storage.abort_open_uploads().await;
                eprintln!("{interrupted}");
                Ok(EXIT_INTERRUPTED)
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or (on Unix) SIGTERM, what service managers send.
async fn cancel_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
}

/// Writes a `--summary` file whole or not at all (a temporary file renamed into place).
pub(crate) async fn write_summary(path: &std::path::Path, json: Vec<u8>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use bedrock_batch::io::ObjectWriter;
    let what = || format!("writing the summary to {}", path.display());
    let mut w = Box::new(
        bedrock_batch::io::LocalFile::create(path.to_path_buf())
            .await
            .with_context(what)?,
    );
    w.write(bytes::Bytes::from(json)).await.with_context(what)?;
    w.finish().await.with_context(what)
}

/// A progress bar on stderr when it is a terminal and not `--quiet`; hidden otherwise.
pub(crate) fn progress_bar(total: Option<u64>, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let style = |t: &str| {
        indicatif::ProgressStyle::with_template(t)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    };
    match total {
        Some(total) => indicatif::ProgressBar::new(total)
            .with_style(style("{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}").progress_chars("=> ")),
        None => indicatif::ProgressBar::new_spinner().with_style(style("{elapsed_precise} {spinner} {bytes} {binary_bytes_per_sec}")),
    }
}
