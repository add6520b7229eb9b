//! The process's resident memory, for logging where a long piece of work peaks.

/// The process's peak resident memory over a stretch of work (one step), sampled every 10 ms
/// from `/proc/self/statm` by a background thread. Sampling instead of the kernel's high-water
/// mark (`VmHWM`), because resetting that mark would also reset what a parent measures with
/// `getrusage`; a peak shorter than the interval can be missed. `None` where `/proc` is absent.
pub struct RssPeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl RssPeak {
    pub fn start() -> Option<RssPeak> {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let now = rss_bytes()?;
        let peak = std::sync::Arc::new(AtomicU64::new(now));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::Builder::new()
            .name("rss-peak".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(r) = rss_bytes() {
                        p.fetch_max(r, Ordering::Relaxed);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            })
            .ok()?;
        Some(RssPeak { peak, stop })
    }

    /// The peak since the last call (or the start), in MiB, and starts the next stretch.
    pub fn take_mib(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let now = rss_bytes().unwrap_or(0);
        let p = self.peak.swap(now, Ordering::Relaxed).max(now);
        p / (1024 * 1024)
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
