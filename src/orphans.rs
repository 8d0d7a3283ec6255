//! Processes that escaped: a descendant of a script or worker that left its process group
//! (`setsid`, a double fork) or was left behind when the group's leader exited, so that
//! ending the group no longer reaches it. Left alone it would outlive its request and be
//! re-parented to init, out of Portico's sight.
//!
//! Linux's PR_SET_CHILD_SUBREAPER makes Portico the parent such a process falls to when
//! its own parent exits. A sweep then lists Portico's children (`/proc/self/task/*/children`)
//! and kills and reaps every one that Portico did not start itself (`children` has those),
//! unless it is still in the process group of a script or worker that has not been reaped:
//! a script's background child may go on writing its response after the script exits,
//! until the run's deadlines end the whole group. So no descendant outlives its script's
//! run by more than two sweeps. The stronger bound, a cgroup per script, needs a delegated
//! cgroup tree and is not taken here.

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use crate::children;
use crate::metrics::metrics;

/// Makes Portico the reaper of its descendants' orphans.
pub fn adopt() -> io::Result<()> {
    // SAFETY: prctl with an integer argument has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sweeps every `interval` until the runtime ends.
pub fn spawn_sweeper(interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweep = Sweep::default();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // Reading /proc and reaping can block briefly: off the runtime's threads.
            let Ok(next) = tokio::task::spawn_blocking(move || {
                sweep.once();
                sweep
            })
            .await
            else {
                return;
            };
            sweep = next;
        }
    })
}

/// A child not in the table is only taken for an orphan when the sweep before saw it too:
/// a script just spawned is registered within microseconds, never a whole interval later.
#[derive(Default)]
struct Sweep {
    suspects: HashSet<i32>,
}

impl Sweep {
    fn once(&mut self) {
        let children = match own_children() {
            Ok(children) => children,
            Err(error) => {
                tracing::warn!(%error, "could not list Portico's child processes");
                return;
            }
        };
        let strangers: HashSet<i32> = children
            .into_iter()
            .filter(|&pid| !children::is_known(pid) && !children::owns_group(group_of(pid)))
            .collect();
        for &pid in strangers.intersection(&self.suspects) {
            end(pid);
        }
        self.suspects = strangers;
    }
}

/// Kills an escaped process (with its group, when it leads one of its own) and reaps it.
fn end(pid: i32) {
    let Some(state) = read_state(pid) else {
        return;
    };
    if state != 'Z' {
        let command = command_line(pid);
        // SAFETY: getpgid and kill have no memory effects. The pid is an unreaped child of
        // Portico's, so it cannot have been reused.
        unsafe {
            if group_of(pid) == pid {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
        metrics().orphans_killed.inc();
        tracing::warn!(
            pid,
            command,
            "killed a process that escaped the process group of a script or worker and \
             outlived its parent"
        );
    }
    let mut status = 0;
    // SAFETY: pid is our child; status is valid memory. SIGKILL ends it promptly.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn group_of(pid: i32) -> i32 {
    // SAFETY: getpgid has no memory effects; a vanished pid gives -1.
    unsafe { libc::getpgid(pid) }
}

/// The pids of Portico's children, from the kernel's per-thread lists (an orphan is
/// re-parented to one of Portico's threads), else from every process's parent pid.
fn own_children() -> io::Result<Vec<i32>> {
    let mut pids = Vec::new();
    let mut listed = false;
    for task in std::fs::read_dir("/proc/self/task")? {
        let Ok(text) = std::fs::read_to_string(task?.path().join("children")) else {
            continue;
        };
        listed = true;
        pids.extend(
            text.split_ascii_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok()),
        );
    }
    if listed {
        return Ok(pids);
    }
    // Kernels built without CONFIG_PROC_CHILDREN: field 4 of each /proc/PID/stat.
    let me = std::process::id() as i32;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if stat_fields(pid).and_then(|fields| fields.get(1)?.parse::<i32>().ok()) == Some(me) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The fields of /proc/PID/stat after the command name: state, ppid, pgrp, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_ascii_whitespace().map(str::to_owned).collect())
}

fn read_state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

fn command_line(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = raw
        .split(|&byte| byte == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let me = std::process::id() as i32;
        let fields = stat_fields(me).expect("own stat");
        assert_eq!(fields[0].len(), 1, "state: {fields:?}");
        // SAFETY: getppid has no effects.
        let parent = unsafe { libc::getppid() };
        assert_eq!(fields[1].parse::<i32>().unwrap(), parent);
    }

    #[test]
    fn own_children_lists_a_child_just_started() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let listed = own_children().unwrap().contains(&pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(listed);
    }
}
