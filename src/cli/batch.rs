//! `pciplan batch`: the command-line side of [`pciplan::batch`] (reading, writing, progress,
//! summary, `--shard` and `--resume`). Planning itself is the library's.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pciplan::batch::{Batch, BatchOptions, Resume, Shard, Summary, DEFAULT_CHUNK};
use pciplan::Catalog;

use super::fail;

/// Arguments of `pciplan batch`.
#[derive(clap::Args)]
pub struct BatchArgs {
    /// JSON Lines file, one request per line, or `-` for standard input.
    file: String,
    /// Plan only lines where (line - 1) % N == K - 1 (line numbers stay those of the input).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Append to this result file, skipping lines it already answers (after a kill, the
    /// cut-off last line is dropped first). Results go there instead of standard output.
    #[arg(long, value_name = "OUT.jsonl")]
    resume: Option<PathBuf>,
    /// Plan every guest on its own, without the shape cache (for measurements).
    #[arg(long)]
    no_shape_cache: bool,
    /// Lines planned together (bounds memory).
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "N")]
    chunk: usize,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    quiet: bool,
    /// Adopt existing guests: addresses are preferences (see `pciplan plan --adopt`).
    #[arg(long)]
    adopt: bool,
}

/// Runs `pciplan batch`.
pub fn run(args: BatchArgs, catalog: Option<Catalog>) -> ExitCode {
    let shard = match args.shard.as_deref().map(Shard::parse).transpose() {
        Ok(s) => s,
        Err(e) => return fail(2, &format!("--{e}")),
    };
    let (input, size): (Box<dyn BufRead>, Option<u64>) = if args.file == "-" {
        (
            Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
            None,
        )
    } else {
        match File::open(&args.file) {
            Ok(f) => {
                let size = f.metadata().ok().map(|m| m.len());
                (Box::new(BufReader::with_capacity(1 << 20, f)), size)
            }
            Err(e) => return fail(2, &format!("{}: {e}", args.file)),
        }
    };
    let mut skip = None;
    // Unbuffered: a chunk's result lines come in pieces of many whole lines, each written
    // at once (standard output's own line buffer passes whole lines through).
    let mut out: Box<dyn Write> = match &args.resume {
        None => Box::new(io::stdout().lock()),
        Some(path) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path);
            let file = match file {
                Ok(f) => f,
                Err(e) => return fail(2, &format!("{}: {e}", path.display())),
            };
            let resume = match Resume::read(BufReader::new(&file)) {
                Ok(r) => r,
                Err(e) => return fail(2, &format!("{}: {e}", path.display())),
            };
            // Drop a line cut short by a kill, then append.
            if let Err(e) = file.set_len(resume.valid_len) {
                return fail(2, &format!("{}: {e}", path.display()));
            }
            let file = match OpenOptions::new().append(true).open(path) {
                Ok(f) => f,
                Err(e) => return fail(2, &format!("{}: {e}", path.display())),
            };
            if !resume.done.is_empty() {
                eprintln!(
                    "pciplan: resuming: {} lines already answered in {}",
                    resume.done.len(),
                    path.display()
                );
            }
            skip = Some(resume.done);
            Box::new(file)
        }
    };
    let opts = BatchOptions {
        chunk: args.chunk.max(1),
        shape_cache: !args.no_shape_cache,
        shard,
        skip,
        catalog: catalog.map(Arc::new),
        adopt: args.adopt,
    };
    let bar = progress_bar(size, args.quiet);
    let start = Instant::now();
    let mut batch = Batch::new(input, opts);
    let mut summary = Summary::default();
    let mut status = ExitCode::SUCCESS;
    loop {
        let rows = match batch.next_chunk_rendered() {
            Ok(Some(rows)) => rows,
            Ok(None) => break,
            Err(e) => {
                eprintln!("pciplan: {}: {e}", args.file);
                status = ExitCode::from(2);
                break;
            }
        };
        rows.add_to(&mut summary);
        for text in rows.texts() {
            if let Err(e) = out.write_all(text.as_bytes()) {
                return write_failed(e);
            }
        }
        // One flush per chunk: a killed batch loses at most the chunk in flight.
        if let Err(e) = out.flush() {
            return write_failed(e);
        }
        if let Some(b) = &bar {
            b.set_position(if size.is_some() {
                batch.bytes_read()
            } else {
                summary.guests
            });
            b.set_message(format!("{} guests", summary.guests));
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    summary.elapsed = start.elapsed();
    eprintln!("{summary}");
    if let Some(s) = batch.cache_stats() {
        eprintln!("shape cache: {} hits, {} misses", s.hits, s.misses);
    }
    status
}

fn write_failed(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    fail(2, &format!("writing results: {e}"))
}

fn progress_bar(size: Option<u64>, quiet: bool) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = match size {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{bar:40} {percent:>3}% {msg} {elapsed_precise} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    Some(bar)
}
