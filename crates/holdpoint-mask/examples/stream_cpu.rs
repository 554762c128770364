//! Throughput of the streaming masker by CPU time, for a machine shared with other work (where
//! criterion's wall-clock numbers move with the load): masks a body `N` times on this thread and
//! divides its bytes by the thread's own CPU time (`/proc/thread-self/schedstat`).
//!
//! `cargo run --release -p holdpoint-mask --example stream_cpu -- [secrets|configmaps|watch] [N]`

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use std::time::Instant;

use holdpoint_mask::{JsonStream, MaskConfig, Masker, NO_REVEAL};

/// CPU time this thread has run, in nanoseconds.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "secrets".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let body = match which.as_str() {
        "configmaps" => serde_json::to_vec(&fixtures::config_map_list(10_000)),
        "watch" => Ok(fixtures::secret_watch(10_000)),
        _ => serde_json::to_vec(&fixtures::secret_list(10_000)),
    }
    .expect("fixture encodes");
    let masker = Masker::new(&MaskConfig::default()).expect("default config");
    let run = || {
        let mut s = JsonStream::new(NO_REVEAL.clone(), 16 << 20);
        let mut out = Vec::with_capacity(128 << 10);
        let mut total = 0;
        for chunk in body.chunks(64 << 10) {
            s.push(&masker, chunk, &mut out).expect("masks");
            total += out.len();
            out.clear();
        }
        s.finish(&masker, &mut out).expect("masks");
        total + out.len()
    };
    run(); // warm-up
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    let mut written = 0;
    for _ in 0..n {
        written += run();
    }
    let (cpu, wall) = (cpu_ns() - cpu0, wall0.elapsed());
    let bytes = (body.len() * n) as f64;
    println!(
        "{which}: {} bytes x {n}, out {} bytes; CPU {:.3} s: {:.0} MB/s ({:.0} MiB/s); wall {:.3} s: {:.0} MB/s",
        body.len(),
        written / n,
        cpu as f64 / 1e9,
        bytes / (cpu as f64 / 1e9) / 1e6,
        bytes / (cpu as f64 / 1e9) / (1 << 20) as f64,
        wall.as_secs_f64(),
        bytes / wall.as_secs_f64() / 1e6,
    );
}
