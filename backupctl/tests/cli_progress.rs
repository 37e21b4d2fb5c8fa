//! Progress bars on a terminal (a pseudo-terminal opened here), none through a pipe.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use common::{stderr, Options, Workspace};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};

/// A pseudo-terminal: the controller side and the device the program writes to.
fn open_pty() -> (OwnedFd, std::fs::File) {
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let size = Winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&controller, size).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (controller, device)
}

fn big_workspace() -> Workspace {
    let ws = Workspace::new(Options::default());
    // Enough data that the export reports bytes several times.
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(ws.files.join("big.bin"), data).unwrap();
    ws.ok(&["init"]);
    ws
}

#[test]
fn create_on_a_terminal_draws_progress_bars_on_stderr() {
    let ws = big_workspace();
    let (controller, device) = open_pty();
    let mut child = ws
        .command(&["create"])
        .stdout(Stdio::piped())
        .stderr(device.try_clone().unwrap())
        .spawn()
        .unwrap();
    drop(device);
    let mut reader = std::fs::File::from(controller);
    let drain = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the program (the last holder of the device) has exited.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&drain.join().unwrap()).into_owned();
    assert!(status.success(), "{seen}");
    assert!(
        seen.contains("files/tree.tar"),
        "a bar per artifact: {seen:?}"
    );
    assert!(
        seen.contains('\u{1b}'),
        "bars redraw with terminal control sequences: {seen:?}"
    );
    assert!(
        seen.contains('█'),
        "the bar is filled as bytes arrive: {seen:?}"
    );
}

#[test]
fn create_through_a_pipe_prints_plain_lines_and_no_bars() {
    let ws = big_workspace();
    let out = ws.run(&["create"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("export files: started"), "{err}");
    assert!(
        !err.contains('█') && !err.contains('\u{1b}') && !err.contains('\r'),
        "{err:?}"
    );
    let quiet = ws.run(&["--json", "create"]);
    assert!(
        stderr(&quiet).is_empty(),
        "--json prints nothing on stderr: {}",
        stderr(&quiet)
    );
}
