//! `Binary`: the `scrubgate` executable run on a config file, its stderr collected, its
//! ingest address learned from the "scrubgate listening" log line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `scrubgate run`.
pub struct Binary {
    /// The process.
    pub child: Child,
    /// The ingest listener, `127.0.0.1:<port>`.
    pub addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Binary {
    /// Runs `scrubgate run --config <config>` (the config must log in JSON format) and
    /// waits until it listens.
    pub async fn start(config: &Path) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scrubgate"))
            .args(["run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                    if value["message"] == "scrubgate listening" {
                        let ingest = value["ingest"].as_str().unwrap_or_default().to_owned();
                        let _ = addr_tx.send(ingest);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr =
            tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(10)))
                .await
                .unwrap()
                .expect("scrubgate did not start");
        Binary {
            child,
            addr,
            lines,
            reader: Some(reader),
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`) and waits for the process to exit; returns
    /// whether it exited successfully.
    pub async fn signal_and_wait(mut self, signal: &str) -> (bool, String) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let mut child = self.child;
        let exit = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let logs = self.lines.lock().unwrap().join("\n");
        (exit.success(), logs)
    }
}

/// A config file for [`Binary`] in `dir`: listeners on free ports, `upstream`, the
/// default test project, JSON logs at `level`.
pub fn binary_config(dir: &Path, upstream: &str, level: &str) -> PathBuf {
    let projects = dir.join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    std::fs::write(
        projects.join(format!("{}.json", super::PROJECT)),
        super::default_project(),
    )
    .unwrap();
    let config = dir.join("scrubgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [upstream]\nurl = {upstream:?}\ntimeout = \"2s\"\n[projects]\ndir = {:?}\n\
             [log]\nformat = \"json\"\nlevel = {level:?}\n",
            dir.join("data").display().to_string(),
            projects.display().to_string()
        ),
    )
    .unwrap();
    config
}
