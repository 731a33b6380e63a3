//! Running the `pciplan` program: the one way every command-line test starts it.
//!
//! The program is the one cargo built for this test run (`CARGO_BIN_EXE_pciplan`, present
//! with the default feature `cli`). Output is read on threads while the program runs, so a
//! large result cannot fill a pipe and stall it, and a run that outlives its limit fails the
//! test instead of hanging it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a run may take unless the test says otherwise.
pub const LIMIT: Duration = Duration::from_secs(120);

/// What one run of `pciplan` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, as text.
    pub stdout: String,
    /// Standard error, as text.
    pub stderr: String,
}

impl Ran {
    /// `(code, stdout, stderr)`, for tests that destructure.
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// Runs `pciplan ARGS` in the package directory, with `stdin` as standard input (none: an
/// empty, closed one), within [`LIMIT`].
pub fn run(args: &[&str], stdin: Option<&str>) -> Ran {
    run_within(args, stdin, LIMIT)
}

/// Like [`run`], failing the test when the program takes longer than `limit`.
pub fn run_within(args: &[&str], stdin: Option<&str>, limit: Duration) -> Ran {
    let Some(exe) = option_env!("CARGO_BIN_EXE_pciplan") else {
        panic!("the pciplan program is built only with the `cli` feature (a default one)")
    };
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pciplan");
    let feeder = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let text = text.to_owned();
        // The program may stop reading early (a usage error): a broken pipe is its answer.
        std::thread::spawn(move || drop(pipe.write_all(text.as_bytes())))
    });
    let out = reader(child.stdout.take().expect("stdout pipe"));
    let err = reader(child.stderr.take().expect("stderr pipe"));
    let code = wait(&mut child, limit, args);
    if let Some(f) = feeder {
        let _ = f.join();
    }
    Ran {
        code,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait(child: &mut Child, limit: Duration, args: &[&str]) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for pciplan") {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pciplan {args:?} took more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
