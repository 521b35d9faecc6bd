//! The machine a run happened on (cores, CPU model, kernel, memory, load average, the data
//! directory's file system) and CPU time by thread group, read from `/proc` so the report can say
//! what was busy: the load tool's threads, the server's, the Raft log writer.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Where the run ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MachineInfo {
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Physical memory, MiB.
    pub memory_mib: u64,
    /// 1, 5 and 15-minute load averages when the run started.
    pub load_average_start: [f64; 3],
    /// Load averages when it ended.
    pub load_average_end: [f64; 3],
    /// The server under load: how it was started and built.
    pub server_build: String,
    /// File system type of the server's data directory, when the tool started the server.
    pub data_dir_fs: Option<String>,
    /// Cores the whole machine kept busy during the window (this process and everything else).
    pub machine_cores_busy: Option<f64>,
}

impl MachineInfo {
    /// Reads what `/proc` tells about this machine now.
    pub fn probe(server_build: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024);
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
            memory_mib,
            load_average_start: load_average(),
            load_average_end: [0.0; 3],
            server_build,
            data_dir_fs: None,
            machine_cores_busy: None,
        }
    }
}

/// The current 1, 5 and 15-minute load averages (zeros if unreadable).
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, field) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = field.parse().unwrap_or(0.0);
    }
    out
}

/// Jiffies since boot from `/proc/stat`: (busy, total) over all CPUs (busy excludes idle and iowait).
pub fn system_cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0) };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Cores kept busy by the whole machine between two [`system_cpu_jiffies`] readings.
pub fn system_cores_busy(before: (u64, u64), after: (u64, u64), secs: f64) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64 / clock_ticks_per_s();
    busy / secs.max(1e-9)
}

/// The file system type of the mount holding `path` (longest matching mount point).
pub fn filesystem_of(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, mount, fs) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mount).then(|| (mount.len(), fs.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds used so far by the threads of a process, grouped by thread name with trailing
/// digits and dashes trimmed (`lg-client-3` and `lg-client-7` are one group `lg-client`).
pub fn cpu_by_thread_group(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let ticks = clock_ticks_per_s();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else { continue };
        // The name is in parentheses and may hold spaces: fields resume after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state(0) ppid(1) ... utime(11) stime(12).
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else { continue };
        let secs = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / ticks;
        let group = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '#').to_string();
        *out.entry(if group.is_empty() { name.to_string() } else { group }).or_insert(0.0) += secs;
    }
    out
}

/// CPU seconds used so far by a whole process (user and system, every thread it ever had but not
/// its children), from `/proc/PID/stat`; `None` once it is gone.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_s())
}

/// CPU used between two readings, per group, as a share of one core over `secs` (1.0 = one core busy).
pub fn cpu_share(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, secs: f64) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), ((v - before.get(k).copied().unwrap_or(0.0)) / secs.max(1e-9)).max(0.0)))
        .filter(|(_, share)| *share >= 0.005)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_threads_with_cpu_time() {
        let spin = std::thread::Builder::new()
            .name("probe-spin-1".into())
            .spawn(|| {
                let started = std::time::Instant::now();
                let mut x = 0u64;
                while started.elapsed() < std::time::Duration::from_millis(50) {
                    x = x.wrapping_add(std::hint::black_box(1));
                }
                x
            })
            .unwrap();
        let groups = cpu_by_thread_group(std::process::id());
        let whole = process_cpu_secs(std::process::id()).expect("this process has a stat file");
        assert!(whole >= 0.0 && whole + 0.05 >= groups.values().sum::<f64>(), "{whole} {groups:?}");
        let (busy, total) = system_cpu_jiffies();
        assert!(total > 0 && busy <= total);
        spin.join().unwrap();
        assert!(!groups.is_empty());
        assert!(groups.keys().all(|k| !k.ends_with(|c: char| c.is_ascii_digit())), "{groups:?}");
        let info = MachineInfo::probe("test".into());
        assert!(info.cores >= 1);
        assert!(filesystem_of(Path::new("/")).is_some());
    }
}
