//! Counts the server's heap allocations per call: runs the project's server
//! (or the floor) in this process under a counting allocator, drives it with
//! h2load from outside (so the load generator's own allocations are not
//! counted), and prints allocations and bytes allocated per call.
//!
//! Usage: `allocs project|floor [CALLS]` (default 2000). Needs h2load.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    net::SocketAddr,
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
};

/// The system allocator, counting.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to the system allocator unchanged; the
// counters are atomics that allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` or `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The pre-encoded request: TellStoryRequest{user_name: "Peter S",
/// institution: "SUSTech"} in a gRPC frame.
const REQUEST: &[u8] = b"\x00\x00\x00\x00\x12\x0a\x07Peter S\x12\x07SUSTech";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "project".into());
    let calls: u64 = std::env::args().nth(2).map_or(Ok(2000), |n| n.parse())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    match which.as_str() {
        "project" => {
            drop(listener);
            let config = assistant_server::Config {
                addr,
                think_time: std::time::Duration::ZERO,
                chunk_delay: std::time::Duration::ZERO,
                ..assistant_server::Config::default()
            };
            let server = assistant_server::Server::bind(config).await?;
            tokio::spawn(server.serve(std::future::pending()));
        }
        "floor" => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(assistant_bench::service())
                    .serve_with_incoming(incoming),
            );
        }
        other => return Err(format!("unknown server `{other}`: project or floor").into()),
    }

    // A warm-up run, so that connection set-up and lazily built state are
    // not counted against the calls.
    h2load(addr, 100)?;
    let (allocations, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    h2load(addr, calls)?;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    let bytes = BYTES.load(Ordering::Relaxed) - bytes;
    println!(
        "{which}: {:.1} allocations and {:.0} bytes allocated per call ({calls} calls)",
        allocations as f64 / calls as f64,
        bytes as f64 / calls as f64
    );
    Ok(())
}

/// Runs h2load against `addr` for `calls` calls, failing unless all succeed.
fn h2load(addr: SocketAddr, calls: u64) -> Result<(), Box<dyn std::error::Error>> {
    let request = std::env::temp_dir().join(format!("assistant-allocs-{}.bin", std::process::id()));
    std::fs::write(&request, REQUEST)?;
    let output = Command::new("h2load")
        .args(["-c", "4", "-m", "4", "-n", &calls.to_string()])
        .args([
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-d",
        ])
        .arg(&request)
        .arg(format!(
            "http://{addr}/assistant.AssistantService/TellStory"
        ))
        .output()?;
    let _ = std::fs::remove_file(&request);
    let report = String::from_utf8_lossy(&output.stdout);
    let wanted = format!("{calls} succeeded");
    if !report.contains(&wanted) {
        return Err(format!("h2load did not complete every call:\n{report}").into());
    }
    Ok(())
}
