//! What the process itself costs while it runs a fleet: resident memory
//! and CPU time, from `/proc` (Linux; zeros elsewhere). The fleet report
//! ([`nido_sim::report`]) carries them.

/// The resident memory lines of `/proc/self/status`: (`VmRSS`, `VmHWM`),
/// octets; zeros where unavailable.
pub(crate) fn memory_now() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time this process has used so far (user + system, all threads),
/// from `/proc/self/stat` (clock ticks of `USER_HZ`, 100 per second on
/// Linux); zero where unavailable.
pub(crate) fn cpu_time() -> std::time::Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return std::time::Duration::ZERO;
    };
    // The command name (field 2) may hold spaces: count from its ')'.
    let ticks = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11) // fields 3..=13; utime and stime are 14 and 15
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0);
    std::time::Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        // Spin until the counter moves (it has a 10 ms resolution); a
        // reading that never moves fails after a generous wall deadline.
        let before = cpu_time();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while cpu_time() < before + std::time::Duration::from_millis(50) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cpu_time() did not move"
            );
        }
    }
}
