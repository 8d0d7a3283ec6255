//! What starting a script costs Portico, and how that grows with the fds Portico holds
//! (client sockets, other scripts' pipes): `/bin/true` started and reaped through
//! `Process::spawn`, with a child that copies only the stdio slots and with one that
//! copies the whole fd table. `cargo bench --bench spawn`.

use std::os::fd::OwnedFd;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portico::cgi::env::CStrings;
use portico::cgi::spawn::{Input, Process};
use portico::cgi::stdio_slots;

fn spawn_and_reap(runtime: &tokio::runtime::Runtime) {
    runtime.block_on(async {
        let mut process = Process::spawn(
            &["/bin/true".into()],
            &CStrings::default(),
            Path::new("/"),
            Input::None,
            &[],
        )
        .expect("spawn /bin/true");
        process.exited().await.expect("wait");
        assert!(process.reap().expect("reap").status.is_success());
    });
}

fn open_fds(count: usize) -> Vec<OwnedFd> {
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    (0..count)
        .map(|_| OwnedFd::from(null.try_clone().expect("dup")))
        .collect()
}

fn spawn(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    stdio_slots::reserve(2);
    let mut group = c.benchmark_group("spawn /bin/true");
    group.sample_size(200);
    // Slots first: once disabled, they stay off for the process.
    for (table, disable) in [("stdio slots", false), ("whole fd table", true)] {
        if disable {
            stdio_slots::unusable();
        }
        for extra in [0, 1000] {
            let fds = open_fds(extra);
            group.bench_with_input(BenchmarkId::new(table, extra), &extra, |b, _| {
                b.iter(|| spawn_and_reap(&runtime))
            });
            drop(fds);
        }
    }
    group.finish();
}

criterion_group!(benches, spawn);
criterion_main!(benches);
