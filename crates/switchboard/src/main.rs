use std::process::ExitCode;

/// jemalloc rather than the system allocator: under concurrent requests glibc's malloc spent a
/// quarter of the server's time in its own bookkeeping and arena locks. Its settings are baked in
/// at build time (`.cargo/config.toml`): a background thread hands freed memory back to the
/// system within a second or two, so an idle server is as small as it was with glibc (mimalloc,
/// tried first, kept the startup's transient memory until the next burst of work).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Before the runtime's threads exist: it sets an environment variable.
    switchboard::cli::settle_thread_count();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(switchboard::cli::main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
