//! The floor: the leanest tonic server that does `TellStory`'s work, as a
//! baseline for the project's server; see `assistant_bench::Floor`.
//!
//! Usage: `floor [ADDR]` (default `127.0.0.1:50052`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50052".into())
        .parse()?;
    eprintln!("floor listening on {addr}");
    tonic::transport::Server::builder()
        .add_service(assistant_bench::service())
        .serve(addr)
        .await?;
    Ok(())
}
