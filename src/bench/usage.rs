//! What a bench run cost the machine, read before and after each run: CPU and peak RSS.
//!
//! CPU split, in-process: Portico's share is this process's CPU minus the generator's
//! threads; the scripts' share is what reaped children used (getrusage RUSAGE_CHILDREN)
//! plus what live children (launched workers) used, read from /proc.

use std::time::Duration;

use super::report::Costs;

/// Counters read before and after a run.
pub(super) struct Snapshot {
    pub(super) process_cpu: Option<f64>,
    pub(super) children_cpu: Option<f64>,
    pub(super) peak_rss_kib: Option<u64>,
}

impl Snapshot {
    pub(super) fn delta(&self, after: &Snapshot, load_cpu: Duration) -> Costs {
        let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Costs {
            gateway_cpu_seconds: diff(self.process_cpu, after.process_cpu)
                .map(|cpu| (cpu - load_cpu.as_secs_f64()).max(0.0)),
            scripts_cpu_seconds: diff(self.children_cpu, after.children_cpu),
            peak_rss_kib: after.peak_rss_kib,
        }
    }
}

pub(super) fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes only the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds of this process's live children (launched workers), from /proc.
pub(super) fn live_children_cpu() -> f64 {
    let me = std::process::id().to_string();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let pid: u32 = name.to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name: state ppid ... utime(14) stime(15).
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            if fields.get(1)? != &me {
                return None;
            }
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

pub(super) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_subtract_the_generators_own_cpu() {
        let before = Snapshot {
            process_cpu: Some(1.0),
            children_cpu: Some(2.0),
            peak_rss_kib: Some(100),
        };
        let after = Snapshot {
            process_cpu: Some(4.0),
            children_cpu: Some(2.5),
            peak_rss_kib: Some(120),
        };
        let costs = before.delta(&after, Duration::from_secs(1));
        assert_eq!(costs.gateway_cpu_seconds, Some(2.0));
        assert_eq!(costs.scripts_cpu_seconds, Some(0.5));
    }
}
