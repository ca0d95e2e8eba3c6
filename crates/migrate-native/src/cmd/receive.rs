//! `migrate-native receive`: the destination daemon. Serves one migration after another (each
//! connection on its own thread); a bad peer only loses its own connection.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::cmd::load_key;
use precopy_net::receiver::Receiver;
use precopy_net::store::Store;

/// Arguments of `receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Address to listen on, e.g. 0.0.0.0:7300 (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: String,
    /// Where source paths land: /var/app/db arrives as DIR/var/app/db.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// File holding the pre-shared token (at least 16 bytes; never sent over the wire).
    #[arg(long, value_name = "F", env = "PRECOPY_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// After a restart, the application must still run this long to count as started (one
    /// that exits sooner is reported, with its last lines on stderr).
    #[arg(long, default_value = "1s", value_parser = crate::cmd::duration)]
    pub restart_grace: f64,
    /// At the stop-time check, read every file again rather than trust the hash computed when
    /// it was written here (while its inode, size and times are unchanged). Costs time in the
    /// downtime that grows with the whole tree.
    #[arg(long)]
    pub verify_reread: bool,
}

/// Runs `receive`.
pub fn run(args: ReceiveArgs) -> Result<ExitCode> {
    let key = load_key(&args.token_file)?;
    let mut store = Store::open(&args.root)
        .with_context(|| format!("opening the root {}", args.root.display()))?;
    if args.verify_reread {
        store = store.rereading_at_verify();
    }
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    // The first line of stdout is the bound address, for scripts and tests that asked for port 0.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    eprintln!("receive: root {}", store.root().display());
    let restart_grace = Duration::from_secs_f64(args.restart_grace);
    Arc::new(Receiver {
        store,
        key,
        restart_grace,
    })
    .serve(listener)?;
    Ok(ExitCode::SUCCESS)
}
