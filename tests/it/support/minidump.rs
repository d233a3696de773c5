//! Real Linux minidumps, written with `minidump-writer` (ptrace, as Breakpad and Crashpad
//! write them) of a child process that holds planted personal data: on its stack (UTF-8
//! and UTF-16LE), in its command line and environment, and running from a directory
//! named after a planted user name (`.../home/<user>/app/crashy`).
//!
//! The child is this test binary again, running the ignored test
//! `native::crashing_child` with `SCRUBGATE_CRASHING_CHILD` set.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The planted user name (the home directory the child runs from).
pub const USER: &str = "plantuser";
/// The planted e-mail address (stack, UTF-8 and UTF-16LE; command line; environment).
pub const EMAIL: &str = "jane.native@example.com";
/// The planted IP address (stack).
pub const IP: &str = "203.0.113.45";
/// The planted secret (environment, `API_TOKEN`).
pub const TOKEN: &str = "tok9f8e7d6c5b4a3921zz";

/// The environment variable that makes the test binary the crashing child.
pub const CHILD_VAR: &str = "SCRUBGATE_CRASHING_CHILD";

/// The line the child prints once its planted values are on its stack.
pub const READY: &str = "SCRUBGATE-CHILD-READY";

/// Every planted value.
pub fn plants() -> [&'static str; 4] {
    [USER, EMAIL, IP, TOKEN]
}

/// The child's body: plants values on its stack and sleeps until it is killed.
pub fn run_child() {
    let text = format!("cwd /home/{USER}/app: {EMAIL} from {IP}");
    let mut utf8 = [0u8; 96];
    utf8[..text.len()].copy_from_slice(text.as_bytes());
    let mut wide = [0u16; 96];
    for (slot, unit) in wide
        .iter_mut()
        .zip(format!("wide {EMAIL} C:\\Users\\{USER}\\AppData").encode_utf16())
    {
        *slot = unit;
    }
    let utf8 = std::hint::black_box(utf8);
    let wide = std::hint::black_box(wide);
    println!("{READY}");
    std::thread::sleep(std::time::Duration::from_secs(60));
    std::hint::black_box((&utf8, &wide));
}

/// A minidump of a child that holds the plants.
pub fn write_dump() -> Vec<u8> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let app = dir.path().join("home").join(USER).join("app");
    std::fs::create_dir_all(&app).unwrap();
    let exe = app.join("crashy");
    let me = std::env::current_exe().unwrap();
    if std::fs::hard_link(&me, &exe).is_err() {
        std::fs::copy(&me, &exe).unwrap();
    }
    let mut child = Command::new(&exe)
        .args([
            "--exact",
            "native::crashing_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            &format!("--skip=contact-{EMAIL}"),
        ])
        .env(CHILD_VAR, "1")
        .env("API_TOKEN", TOKEN)
        .env("CONTACT_EMAIL", EMAIL)
        .current_dir(&app)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|line| line.is_ok_and(|l| l.contains(READY)));
    assert!(ready, "the child did not start");
    let pid = i32::try_from(child.id()).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    let written = minidump_writer::minidump_writer::MinidumpWriter::new(pid, pid).dump(&mut file);
    child.kill().ok();
    child.wait().ok();
    let dump = written.expect("minidump-writer could not dump the child (is ptrace allowed?)");
    assert!(dump.starts_with(b"MDMP"));
    dump
}

/// What a dump holds, as rust-minidump reads it: thread ids, module base names and
/// stack sizes, for comparing a scrubbed dump with its original.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    /// Thread ids and the size of their stack memory.
    pub threads: Vec<(u32, u32)>,
    /// Module base names.
    pub module_basenames: Vec<String>,
    /// Module count.
    pub modules: usize,
}

/// The [`Shape`] of a dump; panics when it does not parse.
pub fn shape(dump: &[u8]) -> Shape {
    use minidump::Module;
    let parsed = minidump::Minidump::read(dump).expect("the dump parses");
    let threads: minidump::MinidumpThreadList<'_> = parsed.get_stream().expect("thread list");
    let modules: minidump::MinidumpModuleList = parsed.get_stream().expect("module list");
    Shape {
        threads: threads
            .threads
            .iter()
            .map(|t| (t.raw.thread_id, t.raw.stack.memory.data_size))
            .collect(),
        module_basenames: modules
            .iter()
            .map(|m| {
                let file = m.code_file();
                file.rsplit(['/', '\\']).next().unwrap_or("").to_owned()
            })
            .collect(),
        modules: modules.iter().count(),
    }
}

/// Where a planted value still is in `bytes`, in any encoding (raw, UTF-16LE,
/// JSON-escaped, percent-encoded); empty when it is nowhere.
pub fn leaks(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for plant in plants() {
        let mut forms = vec![("raw", plant.as_bytes().to_vec())];
        forms.extend(super::other_encodings(plant));
        let escaped = serde_json::to_string(plant).unwrap();
        forms.push(("json", escaped.trim_matches('"').as_bytes().to_vec()));
        for (form, needle) in forms {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(format!("{plant} ({form})"));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}
