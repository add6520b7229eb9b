//! The `c360` binary: reads the configuration (file, then flags and environment), sets up
//! logging, and hands over to a subcommand. All real work lives in the library crates.

mod alloc;
mod commands;
mod config;

fn main() -> std::process::ExitCode {
    alloc::configure();
    let parsed = config::parse::<commands::Cli>(std::env::args_os().collect());
    let (cli, matches, file, from_file) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("C360_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if cli.verbose {
            "info,sqlx=warn"
        } else {
            "warn,sqlx=error"
        })
    });
    // Colour only on a terminal: a log redirected to a file gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let origin = commands::Origin {
        matches,
        file,
        from_file,
    };
    match rt.block_on(commands::run(cli, origin)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
