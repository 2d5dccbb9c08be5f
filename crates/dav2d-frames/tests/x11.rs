//! X11 capture under Xvfb (installed by `make test`): a window of a known
//! colour drawn by the test's own X client is found in the captured frame.
//! Without Xvfb the test says so and passes, unless `DAV2D_REQUIRE_XVFB` is
//! set (as `make test` sets it), where a missing Xvfb is a failure.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, CreateWindowAux, WindowClass};

struct Xvfb {
    child: Child,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_xvfb() -> Option<Xvfb> {
    let found = Command::new("Xvfb")
        .arg("-help")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status();
    if found.is_err() {
        assert!(
            std::env::var_os("DAV2D_REQUIRE_XVFB").is_none(),
            "Xvfb is not installed: apt-get install -y xvfb (make test does)"
        );
        eprintln!(
            "skipped: Xvfb is not installed (apt-get install -y xvfb; make test installs it)"
        );
        return None;
    }
    let number = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free display number");
    let display = format!(":{number}");
    let child = Command::new("Xvfb")
        .args([
            &display,
            "-screen",
            "0",
            "320x240x24",
            "-nolisten",
            "tcp",
            "-br",
            // An X server resets when its last client leaves, and drops
            // the clients connecting meanwhile: the readiness probe below
            // is such a last client.
            "-noreset",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts");
    let server = Xvfb { child, display };
    // Ready once a client gets through the setup and a round trip twice in
    // a row (with -noreset, a probe that leaves does not reset the server).
    let ready = || {
        x11rb::connect(Some(&server.display))
            .ok()
            .and_then(|(client, _)| client.get_input_focus().ok()?.reply().ok())
            .is_some()
    };
    let mut in_a_row = 0;
    for _ in 0..400 {
        in_a_row = if ready() { in_a_row + 1 } else { 0 };
        if in_a_row == 2 {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("Xvfb {} did not come up", server.display);
}

#[test]
fn a_window_drawn_on_the_display_is_found_in_the_captured_frame() {
    let Some(server) = start_xvfb() else { return };
    let (client, screen) = x11rb::connect(Some(&server.display)).unwrap();
    let root = client.setup().roots[screen].clone();
    let window = client.generate_id().unwrap();
    client
        .create_window(
            root.root_depth,
            window,
            root.root,
            10,
            20,
            50,
            40,
            0,
            WindowClass::INPUT_OUTPUT,
            root.root_visual,
            &CreateWindowAux::new()
                .background_pixel(0x00FF_8040)
                .override_redirect(1),
        )
        .unwrap();
    client.map_window(window).unwrap();
    client.flush().unwrap();
    client.get_input_focus().unwrap().reply().unwrap();
    let source = dav2d_frames::open(&format!("x11:{}?rate=60", server.display)).unwrap();
    let pool = source.pool().clone();
    let mut last = None;
    let mut found = false;
    for _ in 0..50 {
        let lease = pool
            .next_after(last, Duration::from_secs(10))
            .expect("a captured frame");
        let layout = &lease.meta().layout;
        assert_eq!(
            (layout.width, layout.height, layout.format.as_str()),
            (320, 240, "bgra8")
        );
        let stride = layout.planes[0].stride;
        let pixel = |x: usize, y: usize| &lease.data()[y * stride + 4 * x..y * stride + 4 * x + 3];
        if pixel(30, 40) == [0x40, 0x80, 0xFF] {
            assert_eq!(pixel(5, 5), [0, 0, 0], "outside the window: the black root");
            found = true;
            break;
        }
        last = Some(lease.meta().seq);
    }
    assert!(found, "the window's colour is in the captured frame");
    drop(source);
    let missing = dav2d_frames::open(":nosuchdisplay").err().unwrap();
    assert!(missing.contains("unknown frame source ''"), "{missing}");
    let gone = dav2d_frames::open("x11::1999").err().unwrap();
    assert!(
        gone.contains("cannot connect to the X11 display ':1999'"),
        "{gone}"
    );
}
