//! Podman benchmark: the adapter's volume export and import against plain
//! `podman volume export > file` and `podman volume import VOLUME file` of the same
//! volume, in one run, with the adapter's peak memory. A second row per direction
//! compares with podman's bytes passed through a pipe (`podman volume export | cat >
//! file`, `cat file | podman volume import VOLUME -`): the floor of anything that reads
//! the bytes on their way, as the adapter must to check, hash and compress them. Podman
//! writing or reading a file itself moves the bytes in the kernel without that hop.
//!
//! `cargo bench -p backup-benches --bench podman`. Environment:
//! - `PODMAN_BENCH_MB` (default 512): MiB of pseudo-random data in the volume (64 files
//!   plus many small ones);
//! - `PODMAN_BENCH_RUNS` (default 3) rounds per side; the fastest run counts.
//!
//! Storage is an isolated podman root in a temporary directory (backup-testkit's
//! `PodmanEnv`); with `TMPDIR=/dev/shm` it is in memory, which takes the disk's run-to-run
//! swings out of the comparison. The adapter's export also checks every tar header as it streams and
//! records the volume root's owner and mode; its import also checks the archive and
//! restores the root's owner and mode. Both import into a freshly created, empty volume.
//! A last table prints each side's CPU time (all of its processes) beside its wall time:
//! how many cores it kept busy, which shows when a side has no spare core for a reader.

use std::path::Path;
use std::time::{Duration, Instant};

use backup_benches::{children_cpu_time, cpu_time, measure, print_report, time_shell, Row};
use backup_core::artifact::stream_from_reader;
use backup_core::{ArtifactDescriptor, DataExporter, DataImporter, ImportMode, ServiceTarget};
use backup_podman::{PodmanExporter, PodmanImporter, RECIPE};
use backup_testkit::data::PseudoRandom;
use backup_testkit::podman::PodmanEnv;
use futures::StreamExt;
use std::io::Write;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn fill(root: &Path, mib: usize) {
    let mut generator = PseudoRandom::new(0xbe9c);
    let big = (mib * 1024 * 1024 - 4 * 1024 * 1024) / 64;
    let mut buffer = vec![0u8; big];
    for i in 0..64 {
        generator.fill(&mut buffer);
        std::fs::write(root.join(format!("big-{i:02}.bin")), &buffer).expect("write");
    }
    std::fs::create_dir_all(root.join("small")).expect("mkdir");
    let mut small = vec![0u8; 4096];
    for i in 0..1024 {
        generator.fill(&mut small);
        std::fs::write(root.join(format!("small/{i:04}")), &small).expect("write");
    }
}

fn service(env: &PodmanEnv, volume: &str) -> ServiceTarget {
    let mut config = env.service_config(&env.dir().join("quadlets"), Some(&[volume]));
    config["stopContainers"] = serde_json::json!(false);
    ServiceTarget::local("bench", RECIPE, config)
}

/// Exports `volume` with the adapter into `path`; returns bytes and the descriptor with
/// its late metadata.
async fn adapter_export(env: &PodmanEnv, volume: &str, path: &Path) -> (u64, ArtifactDescriptor) {
    let service = service(env, volume);
    let artifacts = PodmanExporter.artifacts(&service).await.expect("artifacts");
    let mut artifact = artifacts
        .into_iter()
        .find(|a| a.name == backup_podman::volume_artifact_name(volume))
        .expect("volume artifact");
    let data = PodmanExporter
        .export(&service, &artifact)
        .await
        .expect("export");
    // Written synchronously, as podman's own redirect is: the comparison is of the
    // export, not of tokio's file I/O.
    let mut file = std::fs::File::create(path).expect("create");
    let mut stream = data.stream;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("export stream");
        bytes += chunk.len() as u64;
        file.write_all(&chunk).expect("write");
    }
    file.flush().expect("flush");
    if let Some(late) = data.late_metadata {
        artifact.metadata.extend(late.await.expect("late metadata"));
    }
    (bytes, artifact)
}

async fn adapter_import(env: &PodmanEnv, volume: &str, artifact: &ArtifactDescriptor, path: &Path) {
    let service = service(env, volume);
    let mut artifact = artifact.clone();
    artifact.name = backup_podman::volume_artifact_name(volume);
    artifact
        .metadata
        .insert("volume".into(), serde_json::json!(volume));
    let file = tokio::fs::File::open(path).await.expect("open");
    PodmanImporter
        .import(
            &service,
            &artifact,
            stream_from_reader(file),
            ImportMode::default(),
        )
        .await
        .expect("import");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mib = env_number("PODMAN_BENCH_MB", 512).max(8);
    let runs = env_number("PODMAN_BENCH_RUNS", 3);
    let env = PodmanEnv::start();
    env.create_volume("bench");
    fill(&env.mountpoint("bench"), mib);
    std::fs::create_dir_all(env.dir().join("quadlets")).expect("quadlet dir");
    let dir = tempfile::tempdir_in(env.dir()).expect("temp dir");
    let podman = format!("{} {}", env.program(), env.global_args().join(" "));
    let native_file = dir.path().join("native.tar");
    let ours_file = dir.path().join("ours.tar");
    // Warm the page cache once so neither side pays for the first read.
    time_shell(&format!("{podman} volume export bench > /dev/null"));

    // Three sides, their order rotated every round: podman writing its file itself,
    // podman's output passed through a pipe (`| cat >`, the floor of any consumer that
    // reads the bytes, as the adapter must to check and compress them), and the adapter.
    let piped_file = dir.path().join("piped.tar");
    let (mut native_export, mut piped_export, mut ours_export) =
        (Side::default(), Side::default(), Side::default());
    let mut export_peak = 0;
    let mut exported = None;
    for run in 0..runs {
        for side in 0..3 {
            match (side + run) % 3 {
                0 => native_export.time(|| {
                    time_shell(&format!(
                        "{podman} volume export bench > {}",
                        native_file.display()
                    ));
                }),
                1 => piped_export.time(|| {
                    time_shell(&format!(
                        "{podman} volume export bench | cat > {}",
                        piped_file.display()
                    ));
                }),
                _ => ours_export.time(|| {
                    let (out, _, peak) =
                        measure(|| runtime.block_on(adapter_export(&env, "bench", &ours_file)));
                    export_peak = export_peak.max(peak);
                    exported = Some(out);
                }),
            }
        }
    }
    let (bytes, artifact) = exported.expect("at least one run");

    let recreate = |volume: &str| {
        let _ = env.try_podman(&["volume", "rm", "--force", volume]);
        env.create_volume(volume);
        time_shell("sync");
    };
    let (mut native_import, mut piped_import, mut ours_import) =
        (Side::default(), Side::default(), Side::default());
    let mut import_peak = 0;
    for run in 0..runs {
        for side in 0..3 {
            match (side + run) % 3 {
                0 => {
                    recreate("native");
                    native_import.time(|| {
                        time_shell(&format!(
                            "{podman} volume import native {}",
                            native_file.display()
                        ));
                    });
                }
                1 => {
                    recreate("piped");
                    piped_import.time(|| {
                        time_shell(&format!(
                            "cat {} | {podman} volume import piped -",
                            native_file.display()
                        ));
                    });
                }
                _ => {
                    recreate("ours");
                    ours_import.time(|| {
                        let ((), _, peak) = measure(|| {
                            runtime.block_on(adapter_import(&env, "ours", &artifact, &ours_file))
                        });
                        import_peak = import_peak.max(peak);
                    });
                }
            }
        }
    }
    let digest = |volume: &str| backup_testkit::tree::tree_digest(&env.mountpoint(volume));
    assert_eq!(
        digest("ours"),
        digest("bench"),
        "the adapter's import differs from the source"
    );
    for native in ["native", "piped"] {
        assert_eq!(
            digest(native),
            digest("bench"),
            "podman's import into `{native}` differs from the source"
        );
    }

    let row = |name: &str, ours: &Side, native: &Side, peak_kib: u64| Row {
        name: name.into(),
        bytes,
        ours: ours.best,
        native: native.best,
        peak_kib,
    };
    print_report(
        &format!("podman volume, {mib} MiB, best of {runs}"),
        "podman s",
        &[
            row("volume export", &ours_export, &native_export, export_peak),
            row(
                "volume export vs podman | cat",
                &ours_export,
                &piped_export,
                export_peak,
            ),
            row("volume import", &ours_import, &native_import, import_peak),
            row(
                "volume import vs cat | podman",
                &ours_import,
                &piped_import,
                import_peak,
            ),
        ],
    );
    println!("goal: ratio <= 1.05; peak RSS is the whole benchmark process (runtime included)");
    println!(
        "\nCPU of the fastest run, every process of the side (podman and its helpers included):"
    );
    println!(
        "{:<32} {:>10} {:>10} {:>12}",
        "side", "wall s", "CPU s", "cores busy"
    );
    for (name, side) in [
        ("export: podman > file", &native_export),
        ("export: podman | cat > file", &piped_export),
        ("export: adapter", &ours_export),
        ("import: podman import file", &native_import),
        ("import: cat | podman import -", &piped_import),
        ("import: adapter", &ours_import),
    ] {
        println!(
            "{name:<32} {:>10.3} {:>10.2} {:>12.2}",
            side.best.as_secs_f64(),
            side.cpu.as_secs_f64(),
            side.cpu.as_secs_f64() / side.best.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "with 2 cores, a side whose native run already keeps ~1.5 busy has no spare core: \
         every CPU-s the reader of the bytes adds lengthens the run"
    );
}

/// One side of the comparison: its fastest run and the CPU time (this process and its
/// children, all processes of the side) that run used.
struct Side {
    best: Duration,
    cpu: Duration,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            best: Duration::MAX,
            cpu: Duration::ZERO,
        }
    }
}

impl Side {
    /// Runs `work`, keeping its wall and CPU time when it is the fastest so far.
    fn time(&mut self, work: impl FnOnce()) {
        let cpu_before = cpu_time() + children_cpu_time();
        let start = Instant::now();
        work();
        let elapsed = start.elapsed();
        let cpu = (cpu_time() + children_cpu_time()).saturating_sub(cpu_before);
        if elapsed < self.best {
            self.best = elapsed;
            self.cpu = cpu;
        }
    }
}
