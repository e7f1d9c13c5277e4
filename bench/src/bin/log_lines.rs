//! Measures what one line of the server's text log costs the thread that
//! logs it: installs the server's logging, logs the lines of story calls
//! as the server does (each call's span and first line, then a line per
//! chunk, whose text a story keeps, made once), and prints the time per
//! line, best of seven rounds. The log writer's thread writes to wherever
//! stderr goes.
//!
//! Usage: `log_lines [CALLS [THREADS]] 2>/dev/null` (default 2000 calls a
//! round, on one thread). With more threads, each logs CALLS calls at
//! once, as a server's connection threads do, and the time is a thread's
//! per line. Run it on a quiet machine, alternating builds: it is steadier
//! than the whole server, but still shares its cores.

use std::time::Instant;

use anyhow::Context;
use assistant_proto::{sequence, text::Escaped};
use assistant_server::{LogFormat, init_logging};
use tracing::{info, info_span};

/// Lines a story call logs besides its chunks: the request, the start,
/// `[EOF]` and the finish.
const OTHER_LINES: u64 = 4;

/// Chunks in `alice.txt` at the default chunk size.
const CHUNKS: usize = 142;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: u64 = match args.next() {
        Some(calls) => calls.parse().context("CALLS must be a number")?,
        None => 2000,
    };
    let threads: u64 = match args.next() {
        Some(threads) => threads.parse().context("THREADS must be a number")?,
        None => 1,
    };
    let _logging = init_logging(LogFormat::Text).context("starting the log writer")?;
    // Lines with previews from real text, at varying offsets, made once.
    let text = sequence::greeting("Peter S", "SUSTech").repeat(40);
    let text = text.as_bytes();
    let reads: Vec<String> = (0..CHUNKS)
        .map(|chunk| {
            let at = (chunk * 7) % (text.len() - 10);
            format!("Read {} bytes: {} ...", 1024, Escaped(&text[at..at + 10]))
        })
        .collect();
    let mut best = f64::MAX;
    for round in 0..7 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for thread in 0..threads {
                let reads = &reads;
                s.spawn(move || {
                    let first = (round * threads + thread) * calls;
                    log_calls(first, calls, reads);
                });
            }
        });
        let lines = calls * (CHUNKS as u64 + OTHER_LINES);
        let per_line = start.elapsed().as_nanos() as f64 / lines as f64;
        println!("round {round}: {per_line:.1} ns a line");
        best = best.min(per_line);
    }
    println!("best: {best:.1} ns a line");
    Ok(())
}

/// Logs `calls` story calls' lines, numbered from `first`.
fn log_calls(first: u64, calls: u64, reads: &[String]) {
    for call in 0..calls {
        let span = info_span!(
            "call",
            id = first + call + 1,
            method = "/assistant.AssistantService/TellStory",
            peer = "127.0.0.1:52988",
            user = "Peter S",
        );
        let _entered = span.enter();
        info!("Received story-telling request from Peter S, SUSTech.");
        info!("Start streaming {}", "alice.txt");
        for read in reads {
            info!(message = read.as_str());
        }
        info!("[EOF]");
        info!("Finishes streaming alice.txt for Peter S from SUSTech.");
    }
}
