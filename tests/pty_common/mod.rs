//! A command in a pseudo-terminal, read back through a terminal emulator (vt100): what a person
//! at the terminal would see, screen by screen.

#![allow(dead_code)]

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hft-connector");

/// Environment variables of the test's own environment that would change the outcome.
pub const CLEARED: [&str; 4] = [
    "NO_COLOR",
    "RUST_LOG",
    "HFT_CONNECTOR_LOG_FORMAT",
    "CLICOLOR_FORCE",
];

/// A command running in a pseudo-terminal, its output fed to a terminal emulator.
pub struct Term {
    pub child: Box<dyn Child + Send + Sync>,
    _master: Box<dyn MasterPty + Send>,
    rx: mpsc::Receiver<Vec<u8>>,
    /// The terminal emulator fed with everything the command wrote.
    pub parser: vt100::Parser,
    /// How many times the output moved the cursor home (`ESC [ H`): full-screen redraws.
    pub homes: usize,
    eof: bool,
}

impl Term {
    /// Runs `hft-connector ARGS` in a `rows` x `cols` terminal, with `env` on top of the
    /// environment minus [`CLEARED`].
    pub fn spawn(args: &[String], env: &[(&str, &str)], rows: u16, cols: u16) -> Term {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pty");
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(args);
        for k in CLEARED {
            cmd.env_remove(k);
        }
        cmd.env("TERM", "xterm-256color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawns in the pty");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EOF or EIO once the child and its terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Term {
            child,
            _master: pair.master,
            rx,
            parser: vt100::Parser::new(rows, cols, 0),
            homes: 0,
            eof: false,
        }
    }

    /// Feeds output to the emulator until `done(screen, homes)` holds, calling `each` on every
    /// screen.
    pub fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut each: impl FnMut(&vt100::Screen),
        mut done: impl FnMut(&vt100::Screen, usize) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self.parser.screen(), self.homes) {
                return;
            }
            assert!(
                Instant::now() < deadline && !self.eof,
                "{what}: not seen; the screen:\n{}",
                self.parser.screen().contents()
            );
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(bytes) => {
                    self.feed(&bytes);
                    each(self.parser.screen());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.homes += bytes.windows(3).filter(|w| w == b"\x1b[H").count();
        self.parser.process(bytes);
    }

    /// SIGINT (as Ctrl-C would send), then the rest of the output and the exit code.
    pub fn interrupt(&mut self, mut each: impl FnMut(&vt100::Screen)) -> u32 {
        let pid = self.child.process_id().expect("pid");
        kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("signal");
        let status = self.child.wait().expect("exit status");
        // The reader ends once the terminal has nothing more to give.
        while let Ok(bytes) = self.rx.recv_timeout(Duration::from_secs(10)) {
            self.feed(&bytes);
            each(self.parser.screen());
        }
        status.exit_code()
    }

    /// The non-empty lines on the screen (wrapped rows joined), trailing blanks trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.parser
            .screen()
            .contents()
            .lines()
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}
