//! Folders and files the tool owns: the ownership marker, the one-writer lock, replacing and
//! moving aside, and the ledger of single output files.
//!
//! The rule: cm deletes, moves or overwrites only what it can prove it wrote.
//! - A run folder carries [`MARKER`] (`run.json`: tool, version, run id, kind, creation time).
//!   cm writes into a marked folder, an empty one, or one it creates; a non-empty unmarked
//!   folder is an error that names it ([`RunFolder::open`]). `--force` adopts such a folder:
//!   every entry already there is recorded in the marker and is never deleted, moved or
//!   overwritten (an entry with the name of one of cm's own files is refused instead).
//! - Inside a marked folder cm's own files are known by name ([`is_tool_file`]: checkpoints,
//!   `config.toml`, `log.jsonl`, the plots, …), plus single files the ledger vouches for.
//!   Nothing else is ever removed, not even when a demo folder is replaced ([`replace`]).
//! - `.`, `/`, the home folder and every parent of the current folder are never replaced or
//!   adopted ([`protected`]), even with `--force`.
//! - One writer per run folder: an advisory `flock` on [`LOCK`], held for the life of the
//!   training; a second process fails at once naming the holder's PID. The kernel releases the
//!   lock when its holder dies, so a killed run never blocks the next one.
//! - Single output files (`cm sample --out`, classifier weights, converted LPIPS weights) are
//!   replaced only when the folder's [`LEDGER`] shows that cm wrote exactly their current
//!   content; `--force` moves any other file aside (`NAME.old-N`) instead of destroying it.

use crate::fetch::sha256_hex;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// The ownership marker of a run folder.
pub const MARKER: &str = "run.json";
/// The lock file of a run folder (holds the PID of the process that has it locked).
pub const LOCK: &str = ".cm.lock";
/// The ledger of single files cm wrote into a folder: name → SHA-256 of the content it wrote.
pub const LEDGER: &str = ".cm-owned.json";

/// Files of a run besides its checkpoints (`ckpt-XXXXXXXX.safetensors`).
const RUN_FILES: &[&str] = &[
    "config.toml",
    "log.jsonl",
    "loss.png",
    "samples.png",
    "summary.json",
    "samples_1step.npy",
];

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// `ckpt-<digits>.safetensors`.
pub fn is_checkpoint_name(name: &str) -> bool {
    name.strip_prefix("ckpt-")
        .and_then(|r| r.strip_suffix(".safetensors"))
        .is_some_and(all_digits)
}

/// `ckpt-<digits>.safetensors.damaged[-N]`: a damaged checkpoint that resuming set aside.
fn is_damaged_checkpoint_name(name: &str) -> bool {
    let Some((ckpt, tail)) = name.rsplit_once(".damaged") else {
        return false;
    };
    is_checkpoint_name(ckpt) && (tail.is_empty() || tail.strip_prefix('-').is_some_and(all_digits))
}

/// Whether `name` is one of the files cm writes into a run folder (checkpoints, damaged
/// checkpoints set aside, the run's files, the marker, lock and ledger, and the temporary
/// files of [`crate::io::write_atomic`] for any of them).
pub fn is_tool_file(name: &str) -> bool {
    if matches!(name, MARKER | LOCK | LEDGER | ".write-test") || RUN_FILES.contains(&name) {
        return true;
    }
    if is_checkpoint_name(name) || is_damaged_checkpoint_name(name) {
        return true;
    }
    // `cm demo --compare`: compare.jsonl / .json / .md, compare-DATA.png, and the teachers'
    // training times compare-teacher-DATA-sSEED.txt.
    if let Some(rest) = name.strip_prefix("compare") {
        if matches!(rest, ".jsonl" | ".json" | ".md")
            || (rest.starts_with('-') && (rest.ends_with(".png") || rest.ends_with(".txt")))
        {
            return true;
        }
    }
    match name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")) {
        Some((stem, pid)) => all_digits(pid) && !stem.starts_with('.') && is_tool_file(stem),
        None => false,
    }
}

/// Sub-folders cm creates inside a run folder (each a marked run folder itself): the demo's
/// `teacher`, the comparison's `teacher-DATA-sSEED`, and `restart-N`, where `--restart` moves a
/// previous run.
pub fn is_tool_dir_name(name: &str) -> bool {
    name == "teacher" || name.strip_prefix("restart-").is_some_and(all_digits) || name.starts_with("teacher-")
}

/// The contents of `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Always "cm".
    pub tool: String,
    /// The version of cm (or the name of the tool script) that made the folder.
    pub version: String,
    /// Unique per run: creation time and 32 random bits; a new id after `--restart` or a
    /// demo's replacement. A running job checks it before every checkpoint.
    pub run_id: String,
    /// "train" or "demo" (`cm demo` replaces only demo folders).
    pub kind: String,
    /// UTC, RFC 3339.
    pub created: String,
    /// Entries that were in the folder when `--force` adopted it: never touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<String>,
}

impl Marker {
    /// A new marker (new run id, created now).
    pub fn new(kind: &str, foreign: Vec<String>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (y, mo, d, h, mi, s) = utc(now.as_secs());
        let mut z = now.as_nanos() as u64 ^ ((std::process::id() as u64) << 32) ^ next_count();
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            tool: "cm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            run_id: format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z-{:08x}", z as u32),
            kind: kind.into(),
            created: format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
            foreign,
        }
    }

    /// The marker of `dir`, if it has one written by cm (a `run.json` of another tool, or one
    /// that does not parse, is not cm's).
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
        serde_json::from_str::<Marker>(&text).ok().filter(|m| m.tool == "cm")
    }

    /// Writes this marker into `dir` atomically.
    pub fn write(self, dir: &Path) -> Result<Self> {
        let text = serde_json::to_string_pretty(&self)? + "\n";
        super::write_atomic(&dir.join(MARKER), text.as_bytes())?;
        Ok(self)
    }
}

fn next_count() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// (year, month, day, hour, minute, second) of a Unix time, UTC (civil-from-days, H. Hinnant).
fn utc(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + (m <= 2) as i64;
    (y, m, d, (rem / 3600) as u32, (rem / 60 % 60) as u32, (rem % 60) as u32)
}

/// What a path holds, as far as ownership goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// Nothing there (or not reachable; creating it will say why).
    Missing,
    /// An empty folder (cm's lock file and temporary files count as empty).
    Empty,
    /// A folder with cm's marker.
    Marked(Marker),
    /// A run folder of a cm from before markers: only cm's file names, and at least one
    /// checkpoint that carries cm's format tag.
    Legacy,
    /// Anything else; the names of its entries.
    Foreign(Vec<String>),
}

fn entry_names(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    v.sort();
    Ok(v)
}

fn is_cm_checkpoint(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| crate::ckpt::read_meta(&b).is_ok())
}

/// Classifies `dir` (read only).
pub fn inspect(dir: &Path) -> Result<Found> {
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(Found::Missing);
    };
    if !meta.is_dir() {
        bail!("{} is a file, not a folder", dir.display());
    }
    if let Some(m) = Marker::read(dir) {
        return Ok(Found::Marked(m));
    }
    // cm's lock file, write probe and temporary files (of a process that is claiming the
    // folder right now, or was killed) are not content.
    let names: Vec<String> = entry_names(dir)?
        .into_iter()
        .filter(|n| n != LOCK && n != ".write-test" && !(n.starts_with('.') && is_tool_file(n)))
        .collect();
    if names.is_empty() {
        return Ok(Found::Empty);
    }
    if names.iter().all(|n| is_tool_file(n))
        && names
            .iter()
            .any(|n| is_checkpoint_name(n) && is_cm_checkpoint(&dir.join(n)))
    {
        return Ok(Found::Legacy);
    }
    Ok(Found::Foreign(names))
}

/// Why `dir` may never be replaced or adopted: it is `/`, the home folder, the current folder
/// or one of its parents. None for any other path (and for paths that do not exist).
pub fn protected(dir: &Path) -> Option<&'static str> {
    let c = std::fs::canonicalize(dir).ok()?;
    if c.parent().is_none() {
        return Some("the root folder");
    }
    let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
    if home.as_ref() == Some(&c) {
        return Some("your home folder");
    }
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize).ok()?;
    if cwd == c {
        Some("the current folder")
    } else if cwd.starts_with(&c) {
        Some("a parent of the current folder")
    } else {
        None
    }
}

fn list_some(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(|s| s.as_str()).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn foreign_error(dir: &Path, names: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is not empty and is not a cm run folder (it has no run.json; it holds {}): choose another --out, or pass --force to use it anyway (cm never deletes or overwrites files it did not write)",
        dir.display(),
        list_some(names)
    )
}

fn protected_error(dir: &Path, what: &str, verb: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "refusing to {verb} {} ({what}), even with --force: choose a new or empty folder for --out",
        dir.display()
    )
}

#[cfg(unix)]
fn file_key(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}
#[cfg(not(unix))]
fn file_key(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// A held lock on a run folder; released when the last clone is dropped (or the process dies).
pub struct Lock {
    _file: File,
    key: (u64, u64),
}

/// Locks held by this process: the demo holds its folder while training into it, so a process
/// may take the same folder's lock more than once; another process cannot.
static HELD: Mutex<Vec<((u64, u64), Weak<Lock>)>> = Mutex::new(Vec::new());

/// Takes the one-writer lock of `dir` (an existing folder), or fails at once naming the PID
/// of the process that holds it.
pub fn lock(dir: &Path) -> Result<Arc<Lock>> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("output folder {} is not writable (cannot open {LOCK})", dir.display()))?;
    let key = file_key(&file.metadata()?);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|(_, w)| w.strong_count() > 0);
    if let Some(l) = held.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade()) {
        return Ok(l);
    }
    // A lock this process released a moment ago can still be held by a child process that was
    // forked (to run a command) while our file was open: the child's copy of the descriptor
    // holds the lock until its exec closes it (close-on-exec). That window is short, so when
    // the recorded holder is this very process, try again for up to a few seconds before
    // saying the folder is in use. (Seen as a rare failure of a test that reopens a run
    // right after closing it while other tests spawn `cm`.)
    let mut tries = 0;
    let result = loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock)
                if tries < 100 && recorded_pid(&mut file) == Some(std::process::id()) =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            r => break r,
        }
    };
    match result {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = match recorded_pid(&mut file) {
                Some(pid) => format!("PID {pid}"),
                None => "PID not yet recorded".into(),
            };
            bail!(
                "{} is in use by another cm process ({who}): one process at a time writes a run folder; wait for it to finish or stop it (a lock left by a killed process is released with it)",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
    let l = Arc::new(Lock { _file: file, key });
    held.push((l.key, Arc::downgrade(&l)));
    Ok(l)
}

/// The PID written into a lock file by the process that holds it (None if not yet written).
fn recorded_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Kinds of folders that hold a run (a training run, a demo); cm also marks folders of other
/// kinds (the tools' "table"), which are never trained into.
const RUN_KINDS: &[&str] = &["train", "demo"];

fn compatible(found: &str, wanted: &str) -> bool {
    found == wanted || (RUN_KINDS.contains(&found) && RUN_KINDS.contains(&wanted))
}

fn kind_error(dir: &Path, found: &str, wanted: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is a cm {found} folder, not a {} folder: choose another --out",
        dir.display(),
        if RUN_KINDS.contains(&wanted) { "run" } else { wanted }
    )
}

/// A run folder claimed and locked by this process.
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Its ownership marker (`run.json`).
    pub marker: Marker,
    id: (u64, u64),
    _lock: Arc<Lock>,
}

impl RunFolder {
    /// Claims `dir` for a run of `kind`: creates it, or checks that it is cm's (marked, empty,
    /// or a legacy run folder, which gets a marker); `force` adopts a non-empty unmarked folder
    /// without touching what is in it. Then takes the lock and checks the folder is writable.
    pub fn open(dir: &Path, kind: &str, force: bool) -> Result<Self> {
        match inspect(dir)? {
            Found::Foreign(names) => {
                if !force {
                    return Err(foreign_error(dir, &names));
                }
                if let Some(what) = protected(dir) {
                    return Err(protected_error(dir, what, "use"));
                }
            }
            Found::Marked(m) if !compatible(&m.kind, kind) => return Err(kind_error(dir, &m.kind, kind)),
            _ => {}
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create output folder {}", dir.display()))?;
        let lock = lock(dir)?;
        // Again under the lock: another process may have claimed the folder meanwhile.
        let marker = match inspect(dir)? {
            Found::Missing => bail!("{} disappeared while it was being claimed", dir.display()),
            Found::Marked(m) if !compatible(&m.kind, kind) => return Err(kind_error(dir, &m.kind, kind)),
            Found::Marked(m) => m,
            Found::Empty => Marker::new(kind, vec![]).write(dir)?,
            Found::Legacy => {
                eprintln!(
                    "note: {} is a run folder of an older cm (no run.json); marking it as cm's",
                    dir.display()
                );
                Marker::new("train", vec![]).write(dir)?
            }
            Found::Foreign(names) => {
                if !force {
                    return Err(foreign_error(dir, &names));
                }
                if let Some(what) = protected(dir) {
                    return Err(protected_error(dir, what, "use"));
                }
                let clash: Vec<String> = names
                    .iter()
                    .filter(|n| is_tool_file(n) || is_tool_dir_name(n))
                    .cloned()
                    .collect();
                if !clash.is_empty() {
                    bail!(
                        "--force: {} holds {}, which cm did not write but would write itself: move {} away first",
                        dir.display(),
                        list_some(&clash),
                        if clash.len() == 1 { "it" } else { "them" }
                    );
                }
                eprintln!(
                    "note: using {} with --force; its {} existing entries are left alone",
                    dir.display(),
                    names.len()
                );
                Marker::new(kind, names).write(dir)?
            }
        };
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"ok").with_context(|| format!("output folder {} is not writable", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        let id = file_key(&std::fs::metadata(dir)?);
        Ok(Self {
            dir: dir.to_path_buf(),
            marker,
            id,
            _lock: lock,
        })
    }

    /// Checks that the folder is still the one this process claimed: not deleted, moved or
    /// replaced, and its marker unchanged. Call before writing into it.
    pub fn check(&self) -> Result<()> {
        let d = self.dir.display();
        let Ok(m) = std::fs::metadata(&self.dir) else {
            bail!("{d} was deleted or moved away while this run was using it");
        };
        if file_key(&m) != self.id {
            bail!("{d} was replaced by another folder while this run was using it");
        }
        match Marker::read(&self.dir) {
            Some(m) if m.run_id == self.marker.run_id => Ok(()),
            _ => bail!(
                "the run.json of {d} was removed or replaced while this run was using it (run id {})",
                self.marker.run_id
            ),
        }
    }

    /// Gives the folder a new marker (new run id, created now; same kind and foreign entries).
    fn renew(&mut self) -> Result<()> {
        self.marker = Marker::new(&self.marker.kind, self.marker.foreign.clone()).write(&self.dir)?;
        Ok(())
    }

    /// Moves the run in this folder (checkpoints, config, log, plots, teacher) into a new
    /// `restart-N` sub-folder, which keeps the old marker and so stays a loadable, resumable
    /// run folder; the folder gets a new run id. Returns the sub-folder, or None when there was
    /// nothing to move.
    pub fn move_aside(&mut self) -> Result<Option<PathBuf>> {
        let names: Vec<String> = entry_names(&self.dir)?
            .into_iter()
            .filter(|n| !matches!(n.as_str(), MARKER | LOCK | LEDGER | ".write-test"))
            .filter(|n| !self.marker.foreign.contains(n))
            .filter(|n| {
                (is_tool_file(n) && !n.starts_with('.'))
                    || (n == "teacher" && Marker::read(&self.dir.join(n)).is_some())
            })
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let aside = (1..)
            .map(|n| self.dir.join(format!("restart-{n}")))
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .expect("a free name");
        std::fs::create_dir(&aside).with_context(|| format!("cannot create {}", aside.display()))?;
        Marker {
            foreign: vec![],
            ..self.marker.clone()
        }
        .write(&aside)?;
        for n in &names {
            std::fs::rename(self.dir.join(n), aside.join(n))
                .with_context(|| format!("cannot move {n} into {}", aside.display()))?;
        }
        sync_dir(&self.dir);
        self.renew()?;
        Ok(Some(aside))
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Claims `dir` for a fresh run of `kind`, replacing a previous run only when the folder is
/// a marked folder of the same kind: then cm's own files (and those the ledger vouches for) are
/// deleted and everything else is left where it is. Missing and empty folders are created or
/// used; a non-empty unmarked folder is an error (`force` uses it without deleting anything).
/// `.`, `/`, the home folder and parents of the current folder are never replaced.
pub fn replace(dir: &Path, kind: &str, force: bool) -> Result<RunFolder> {
    match inspect(dir)? {
        Found::Missing | Found::Empty => RunFolder::open(dir, kind, force),
        Found::Foreign(_) => RunFolder::open(dir, kind, force),
        Found::Legacy => bail!(
            "{} looks like a run folder of an older cm (it has no run.json), so cm cannot prove it wrote everything in it: remove it yourself or choose another --out",
            dir.display()
        ),
        Found::Marked(m) if m.kind != kind => bail!(
            "{} is a cm {} folder, not a {kind} folder, and only {kind} folders are replaced: choose another --out",
            dir.display(),
            m.kind
        ),
        Found::Marked(_) => {
            if let Some(what) = protected(dir) {
                return Err(protected_error(dir, what, "replace"));
            }
            let mut rf = RunFolder::open(dir, kind, false)?;
            clear_owned(dir, &rf.marker.foreign)?;
            rf.renew()?;
            Ok(rf)
        }
    }
}

/// Deletes cm's own files in the marked folder `dir` (never `keep`, the marker or the lock) and
/// empties marked tool sub-folders the same way, removing them when nothing else is left.
fn clear_owned(dir: &Path, keep: &[String]) -> Result<()> {
    let ledger = Ledger::read(dir);
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), MARKER | LOCK) || keep.contains(&name) {
            continue;
        }
        let ft = e.file_type()?;
        let path = e.path();
        if ft.is_dir() && is_tool_dir_name(&name) {
            let Some(m) = Marker::read(&path) else { continue };
            let _held = lock(&path)?;
            clear_owned(&path, &m.foreign)?;
            if m.foreign.is_empty() {
                let _ = std::fs::remove_file(path.join(MARKER));
                let _ = std::fs::remove_file(path.join(LOCK));
                let _ = std::fs::remove_dir(&path);
            }
        } else if ft.is_file() && (is_tool_file(&name) || ledger.vouches(dir, &name)) {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// Single files cm wrote into a folder, with the SHA-256 of what it wrote.
#[derive(Default, Serialize, Deserialize)]
struct Ledger {
    files: BTreeMap<String, String>,
}

impl Ledger {
    fn read(dir: &Path) -> Self {
        std::fs::read_to_string(dir.join(LEDGER))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Whether `dir/name` holds exactly what cm wrote there.
    fn vouches(&self, dir: &Path, name: &str) -> bool {
        self.files
            .get(name)
            .is_some_and(|h| std::fs::read(dir.join(name)).is_ok_and(|b| sha256_hex(&b) == *h))
    }
}

fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir.to_path_buf(), name))
}

/// `path` renamed to the first free `NAME.old-N` beside it; returns the new path.
pub fn move_file_aside(path: &Path) -> Result<PathBuf> {
    let (dir, name) = split(path)?;
    let to = (1..)
        .map(|n| dir.join(format!("{name}.old-{n}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("a free name");
    std::fs::rename(path, &to).with_context(|| format!("cannot move {} aside", path.display()))?;
    Ok(to)
}

/// Checks, before anything is written, that cm may write each of `paths`: absent, or holding
/// exactly what cm last wrote there (its folder's ledger says so). With `force`, any other
/// existing file is moved aside to `NAME.old-N` (and reported), never destroyed.
pub fn claim_outputs(paths: &[&Path], force: bool) -> Result<()> {
    let mut foreign = Vec::new();
    for &p in paths {
        let Ok(m) = std::fs::symlink_metadata(p) else { continue };
        if m.is_dir() {
            bail!("{} is a folder: give a file name", p.display());
        }
        let (dir, name) = split(p)?;
        if !Ledger::read(&dir).vouches(&dir, &name) {
            foreign.push(p);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    if !force {
        bail!(
            "{} already exists and cm cannot prove it wrote it (it is not in the folder's {LEDGER}, or it changed since): choose another --out, or pass --force to move it aside (to {}.old-N) and write the new file",
            foreign[0].display(),
            foreign[0].file_name().unwrap_or_default().to_string_lossy()
        );
    }
    for p in foreign {
        let to = move_file_aside(p)?;
        eprintln!("note: moved the existing {} to {}", p.display(), to.display());
    }
    Ok(())
}

/// Records `paths` (just written by cm) in their folders' ledgers, so that cm may replace them
/// later. A ledger lost to a concurrent update only makes cm more careful (it refuses).
pub fn record_outputs(paths: &[&Path]) -> Result<()> {
    let mut by_dir: BTreeMap<PathBuf, Vec<(String, String)>> = BTreeMap::new();
    for &p in paths {
        let (dir, name) = split(p)?;
        let bytes = std::fs::read(p).with_context(|| format!("cannot read back {}", p.display()))?;
        by_dir.entry(dir).or_default().push((name, sha256_hex(&bytes)));
    }
    for (dir, files) in by_dir {
        let mut l = Ledger::read(&dir);
        l.files.extend(files);
        super::write_atomic(&dir.join(LEDGER), (serde_json::to_string_pretty(&l)? + "\n").as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock held through another descriptor that names this process (a forked child's
    /// copy, here a second open of the file) is waited for while it is released; one that
    /// stays held still gives the "in use" error.
    #[test]
    fn a_lock_briefly_held_under_this_pid_is_waited_for() {
        let dir = std::env::temp_dir().join(format!("cm-unit-lockwait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LOCK);
        let mut other = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        other.lock().unwrap();
        writeln!(other, "{}", std::process::id()).unwrap();
        let t0 = std::time::Instant::now();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(other);
        });
        let l = lock(&dir).expect("the transient holder was waited for");
        assert!(
            t0.elapsed() >= std::time::Duration::from_millis(250),
            "locked before the release"
        );
        release.join().unwrap();
        drop(l);
        // Held for longer than the wait: refused with the holder named.
        let held = OpenOptions::new().write(true).open(&path).unwrap();
        held.lock().unwrap();
        let err = lock(&dir).err().expect("refused while held").to_string();
        assert!(err.contains("in use by another cm process"), "{err}");
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tool_file_names() {
        for n in [
            "run.json",
            "config.toml",
            "log.jsonl",
            "ckpt-00000010.safetensors",
            "ckpt-00000010.safetensors.damaged",
            "ckpt-00000010.safetensors.damaged-2",
            ".ckpt-00000010.safetensors.tmp-123",
            ".run.json.tmp-9",
            ".cm.lock",
        ] {
            assert!(is_tool_file(n), "{n}");
        }
        for n in [
            "thesis.txt",
            "ckpt-.safetensors",
            "ckpt-1x.safetensors",
            "ckpt-00000010.safetensors.damaged-",
            "ckpt-00000010.safetensors.damagedx",
            ".thesis.txt.tmp-1",
            ".config.toml.tmp-",
            "..config.toml.tmp-1.tmp-2",
            "teacher",
        ] {
            assert!(!is_tool_file(n), "{n}");
        }
        assert!(is_tool_dir_name("teacher") && is_tool_dir_name("restart-3") && !is_tool_dir_name("restart-"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc(1_767_225_599), (2025, 12, 31, 23, 59, 59));
    }
}
