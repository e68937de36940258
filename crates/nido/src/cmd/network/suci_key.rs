//! `nido network suci-key`: the SUCI home network keys (TS 33.501 Annex C),
//! rotated without stopping the network (issue #16 item 4).
//!
//! The keys are the `[[keys.suci]]` entries of `nido.toml`, each with its
//! private key in a 0600 file under `keys/`: the first is the one the PVS
//! hands to devices in their packages; every one de-conceals. `add` puts a
//! new key first, `retire` removes one that no subscription's package
//! carries any more (the store keeps each package's key id, schema 8). A
//! change moves the trust generation, so a running `serve` takes the keys
//! again within its poll interval. Devices move to a new key when their
//! package is renewed: `nido network rekey --suci-key OLD` ends the
//! packages that carry the old one.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use nido_pki::files::{MODE_PUBLIC, MODE_SECRET, write_atomic};
use nido_sec::suci::{HomeNetworkKey, Profile};

use super::{DirArg, config};

#[derive(Subcommand)]
pub(crate) enum SuciKeyCmd {
    /// Lists the keys: id, profile, whether the PVS hands it to devices,
    /// how many subscriptions' packages carry it.
    List(ListArgs),
    /// Adds a key and makes it the one handed to devices from now on; the
    /// others keep de-concealing. Devices get it with their next package
    /// (`nido network rekey --suci-key OLD` renews those on the old key).
    Add(AddArgs),
    /// Removes a key (its entry and its private key file) once no
    /// subscription's package carries it; refused while one does.
    Retire(RetireArgs),
}

#[derive(Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    dir: DirArg,
    /// One JSON object per key: {"id", "profile", "current", "packages"}.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    /// X25519 (ECIES profile A).
    A,
    /// P-256 (ECIES profile B).
    B,
}

#[derive(Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The ECIES profile.
    #[arg(long, value_enum, default_value = "a")]
    profile: ProfileArg,
    /// The key id devices name in their SUCI (0-255); default: one above
    /// the highest in use.
    #[arg(long)]
    id: Option<u8>,
}

#[derive(Args)]
pub(crate) struct RetireArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The key id.
    #[arg(value_name = "ID")]
    id: u8,
}

pub(crate) fn run(cmd: &SuciKeyCmd) -> Result<()> {
    match cmd {
        SuciKeyCmd::List(a) => list(a),
        SuciKeyCmd::Add(a) => add(a),
        SuciKeyCmd::Retire(a) => retire(a),
    }
}

/// How many packages carry `id`, and how many may (delivered before the
/// store kept key ids).
fn carried(use_: &[(Option<u8>, u64)], id: u8) -> (u64, u64) {
    let of = |k: Option<u8>| use_.iter().find(|(i, _)| *i == k).map_or(0, |(_, n)| *n);
    (of(Some(id)), of(None))
}

fn list(a: &ListArgs) -> Result<()> {
    let (config, store) = super::open(&a.dir.dir, None)?;
    let use_ = store.suci_key_use()?;
    for (n, k) in config.keys.suci.iter().enumerate() {
        let (packages, _) = carried(&use_, k.id);
        if a.json {
            outln!(
                "{}",
                serde_json::json!({"id": k.id, "profile": k.profile, "current": n == 0, "packages": packages})
            );
        } else {
            outln!(
                "{:>3}  profile {}  {:<24} {} packages carry it",
                k.id,
                k.profile,
                if n == 0 {
                    "handed to devices"
                } else {
                    "de-concealing only"
                },
                packages
            );
        }
    }
    let unknown = use_
        .iter()
        .find(|(id, _)| id.is_none())
        .map_or(0, |(_, n)| *n);
    if unknown > 0 && !a.json {
        outln!("{unknown} packages were delivered before nido recorded their key");
    }
    Ok(())
}

/// The lock file of `nido.toml` edits (`nido.toml.lock` beside it).
const LOCK_FILE: &str = "nido.toml.lock";

/// Takes the exclusive lock of `nido.toml` edits (an advisory lock on
/// `nido.toml.lock`, waiting for another `suci-key add` or `retire` to
/// finish), held until the returned file is dropped: two edits at the same
/// moment both land, one after the other, each reading what the other
/// wrote.
fn lock_config(dir: &std::path::Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    file.lock()
        .with_context(|| format!("{}: lock", path.display()))?;
    Ok(file)
}

fn add(a: &AddArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let _lock = lock_config(dir)?;
    let (config, store) = super::open(dir, None)?;
    let used: Vec<u8> = config.keys.suci.iter().map(|k| k.id).collect();
    let id = match a.id {
        Some(id) => id,
        None => match used.iter().max() {
            None => 1,
            Some(m) => m
                .checked_add(1)
                .with_context(|| "key id 255 is in use: give a free one with --id".to_owned())?,
        },
    };
    if used.contains(&id) {
        bail!("SUCI key id {id} is in use (`nido network suci-key list`)");
    }
    let (profile, letter) = match a.profile {
        ProfileArg::A => (Profile::A, "A"),
        ProfileArg::B => (Profile::B, "B"),
    };
    let key = HomeNetworkKey::generate(profile, id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let private = key.private_octets().map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = format!("keys/suci-{}-{id}.hex", letter.to_ascii_lowercase());
    if dir.join(&file).exists() {
        bail!("{}: exists already", dir.join(&file).display());
    }
    write_atomic(
        &dir.join(&file),
        hex::encode(private.expose()).as_bytes(),
        MODE_SECRET,
    )?;
    let path = dir.join(config::FILE);
    let text = std::fs::read_to_string(&path)?;
    let entry =
        format!("[[keys.suci]]\nprofile = \"{letter}\"\nid = {id}\nprivate_key = \"{file}\"\n\n");
    let edited = match text.lines().position(|l| l.trim() == "[[keys.suci]]") {
        Some(at) => {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.insert(at, entry.trim_end_matches('\n'));
            lines.insert(at + 1, "");
            lines.join("\n") + "\n"
        }
        None => format!("{text}\n{entry}"),
    };
    if let Err(e) = replace_config(dir, &edited, |c| {
        c.keys.suci.first().is_some_and(|k| k.id == id)
    }) {
        // Nothing names the new key: it goes, so a retry starts clean.
        let _ = std::fs::remove_file(dir.join(&file));
        return Err(e);
    }
    store.bump_trust_generation()?;
    outln!(
        "SUCI key {id} (profile {letter}) added and handed to devices in every package from now on ({file}); a running serve takes it within its poll interval"
    );
    if let Some(old) = used.first() {
        outln!(
            "  next: nido network rekey --dir {} --suci-key {old}   (devices move at their next registration)\n  then: nido network suci-key retire --dir {} {old}   (once no package carries it)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn retire(a: &RetireArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let _lock = lock_config(dir)?;
    let (config, store) = super::open(dir, None)?;
    let Some(pos) = config.keys.suci.iter().position(|k| k.id == a.id) else {
        bail!("no SUCI key {} (`nido network suci-key list`)", a.id);
    };
    if pos == 0 {
        bail!(
            "SUCI key {} is the one handed to devices: add its successor first (`nido network suci-key add`)",
            a.id
        );
    }
    let (packages, unknown) = carried(&store.suci_key_use()?, a.id);
    if packages + unknown > 0 {
        bail!(
            "SUCI key {} is still carried by {packages} packages (and {unknown} delivered before nido recorded their key may carry it): their devices would no longer register. Renew them with `nido network rekey --dir {} --suci-key {}` and retire once they have",
            a.id,
            dir.display(),
            a.id
        );
    }
    let file = config.keys.suci[pos].private_key.clone();
    let path = dir.join(config::FILE);
    let text = std::fs::read_to_string(&path)?;
    let edited = without_entry(&text, a.id).with_context(|| {
        format!(
            "{}: no [[keys.suci]] entry with id = {}",
            path.display(),
            a.id
        )
    })?;
    let id = a.id;
    replace_config(dir, &edited, |c| c.keys.suci.iter().all(|k| k.id != id))?;
    store.bump_trust_generation()?;
    // The configuration no longer names it: nothing reads it again.
    let key_path = dir.join(&file);
    if let Err(e) = std::fs::remove_file(&key_path) {
        tracing::warn!(file = %key_path.display(), error = %e, "retired key file not removed");
    }
    outln!(
        "SUCI key {id} retired: no network de-conceals with it once serve has reloaded ({} removed)",
        file.display()
    );
    Ok(())
}

/// `text` without the `[[keys.suci]]` table whose `id` is `id` (from its
/// header to the next table header, blank lines after it included).
fn without_entry(text: &str, id: u8) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let mut start = 0;
    while start < lines.len() {
        if lines[start].trim() == "[[keys.suci]]" {
            let end = (start + 1..lines.len())
                .find(|&i| is_header(lines[i]))
                .unwrap_or(lines.len());
            let names_id = lines[start + 1..end].iter().any(|l| {
                l.split_once('=')
                    .is_some_and(|(k, v)| k.trim() == "id" && v.trim() == id.to_string())
            });
            if names_id {
                let mut kept: Vec<&str> = lines[..start].to_vec();
                kept.extend_from_slice(&lines[end..]);
                return Some(kept.join("\n") + "\n");
            }
            start = end;
        } else {
            start += 1;
        }
    }
    None
}

/// Writes `edited` over `nido.toml` (one atomic write) if it parses, its
/// keys load and `expect` holds; otherwise leaves the file as it was and
/// says why. The caller holds [`lock_config`] from its read of the file
/// on.
fn replace_config(
    dir: &std::path::Path,
    edited: &str,
    expect: impl Fn(&config::Config) -> bool,
) -> Result<()> {
    let path = dir.join(config::FILE);
    let checked = config::Config::parse(edited, &path).and_then(|c| {
        config::suci_keys(dir, &c)?;
        if expect(&c) {
            Ok(())
        } else {
            bail!("the edited [[keys.suci]] entries are not as expected")
        }
    });
    checked.map_err(|e| e.context(format!("{}: left as it was", path.display())))?;
    write_atomic(&path, edited.as_bytes(), MODE_PUBLIC)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{lock_config, without_entry};

    #[test]
    fn a_second_edit_waits_for_the_lock_of_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_config(dir.path()).unwrap();
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(super::LOCK_FILE))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
    }

    #[test]
    fn an_entry_is_removed_by_its_id_and_nothing_else() {
        let text = "[keys]\nop = \"keys/op.hex\"\n\n# the keys\n[[keys.suci]]\nprofile = \"A\"\nid = 2\nprivate_key = \"keys/suci-a-2.hex\"\n\n[[keys.suci]]\nprofile = \"A\"\nid = 1\nprivate_key = \"keys/suci-a-1.hex\"\n\n[[dcs]]\nrealm = \"x\"\n";
        let out = without_entry(text, 1).unwrap();
        assert_eq!(
            out,
            "[keys]\nop = \"keys/op.hex\"\n\n# the keys\n[[keys.suci]]\nprofile = \"A\"\nid = 2\nprivate_key = \"keys/suci-a-2.hex\"\n\n[[dcs]]\nrealm = \"x\"\n"
        );
        assert!(without_entry(text, 12).is_none());
        assert!(without_entry(text, 3).is_none());
    }
}
