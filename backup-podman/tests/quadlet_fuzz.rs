//! Bounded-time fuzzing of the quadlet parser and discovery: seeded random and mutated
//! unit files never panic, and what the parser keeps stays within the input's size.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use backup_podman::quadlet::{discover, split_words, unquote, UnitFile};
use backup_podman::tarscan::TarScan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BUDGET: Duration = Duration::from_secs(6);

const SEEDS: &[&str] = &[
    "[Container]\nImage=x\nVolume=data.volume:/d:Z\nVolume=\"a b:/c\"\nMount=type=bind,source=./s,destination=/s\n",
    "[Volume]\nVolumeName=v\n# c\n; c\nLabel=a=b \\\n  c=d\n",
    "[Pod]\nVolume=shared.volume:/x\n[Unit]\nDescription=\\\n",
    "[Container]\r\nExec=sh -c 'echo \"hi\"' \\\r\n#x\r\n\\\n",
];

const PIECES: &[&str] = &[
    "\n",
    "\\",
    "\\\n",
    "[",
    "]",
    "=",
    "\"",
    "'",
    "#",
    ";",
    ":",
    ",",
    " ",
    "\t",
    "\r\n",
    "Volume=",
    "Mount=type=volume,source=",
    "VolumeName=",
    "[Container]",
    "[Volume]",
    "[Pod]",
    ".volume",
    "/",
    "./",
    "%h",
    "\u{fffd}",
    "é",
];

fn mutate(rng: &mut StdRng, base: &str) -> String {
    let mut text: Vec<u8> = base.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..12) {
        let at = rng.random_range(0..=text.len());
        match rng.random_range(0..4) {
            0 => {
                let piece = PIECES[rng.random_range(0..PIECES.len())];
                text.splice(at..at, piece.bytes());
            }
            1 if !text.is_empty() => {
                let end = (at + rng.random_range(1..8)).min(text.len());
                let start = at.min(end);
                text.drain(start..end);
            }
            2 => text.insert(at, rng.random()),
            _ => {
                let len = rng.random_range(0..64);
                let random: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                text.splice(at..at, random);
            }
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn random_and_mutated_unit_files_never_panic_and_stay_bounded() {
    let mut rng = StdRng::seed_from_u64(0x005e_ed13);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < BUDGET / 2 {
        let base = SEEDS[rng.random_range(0..SEEDS.len())];
        let text = mutate(&mut rng, base);
        let (unit, issues) = UnitFile::parse(&text);
        let lines = text.split('\n').count();
        assert!(
            unit.assignments().len() + issues.len() <= lines,
            "more results than lines"
        );
        let kept: usize = unit
            .assignments()
            .iter()
            .map(|a| a.key.len() + a.value.len())
            .sum();
        let mut sections: Vec<*const u8> = unit
            .assignments()
            .iter()
            .map(|a| a.section.as_ptr())
            .collect();
        sections.dedup();
        // Keys and values never grow beyond the input plus one joining space per line,
        // and each section name is stored once, however many assignments it has.
        assert!(
            kept <= text.len() + lines,
            "the parser kept {kept} bytes of {}",
            text.len()
        );
        assert!(sections.len() <= lines);
        let shared = unit.assignments().windows(2).all(|w| {
            w[0].section != w[1].section || std::sync::Arc::ptr_eq(&w[0].section, &w[1].section)
        });
        assert!(
            shared,
            "consecutive assignments of one section do not share its name"
        );
        for a in unit.assignments() {
            let words = split_words(&a.value);
            assert!(words.iter().map(String::len).sum::<usize>() <= a.value.len());
            assert!(unquote(&a.value).len() <= a.value.len());
        }
        runs += 1;
    }
    assert!(runs > 1000, "only {runs} inputs in the time budget");
}

#[test]
fn random_deployment_directories_never_panic_discovery() {
    let mut rng = StdRng::seed_from_u64(0xd15c);
    let start = Instant::now();
    let mut runs = 0u64;
    let names = [
        "a.container",
        "b.volume",
        "c.pod",
        "d.network",
        "e.build",
        "f.kube",
        "a.container.d/x.conf",
        "container.d/y.conf",
        "volume.d/z.conf",
    ];
    while start.elapsed() < BUDGET / 3 {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..rng.random_range(1..6) {
            let name = names[rng.random_range(0..names.len())];
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let seed = SEEDS[rng.random_range(0..SEEDS.len())];
            let text = mutate(&mut rng, seed);
            std::fs::write(path, text).unwrap();
        }
        let deployment = discover(dir.path()).unwrap();
        for volume in &deployment.volumes {
            assert!(!volume.name.is_empty());
        }
        runs += 1;
    }
    assert!(runs > 20, "only {runs} directories in the time budget");
}

#[test]
fn random_bytes_never_panic_the_tar_checker() {
    let mut rng = StdRng::seed_from_u64(0x7a7);
    let start = Instant::now();
    while start.elapsed() < BUDGET / 6 {
        let len = rng.random_range(0..4096);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && bytes.len() > 160 {
            // Plausible headers: octal size fields with random content.
            bytes[124..136].copy_from_slice(b"00000001000\0");
        }
        let mut scan = TarScan::new();
        let _ = scan.feed(&bytes);
        let _ = scan.finish();
    }
}
