use std::process::ExitCode;

/// mimalloc rather than the system allocator: under concurrent requests glibc's malloc spent a
/// quarter of the server's time in its own bookkeeping and arena locks, and kept more memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    switchboard::cli::main().await
}
