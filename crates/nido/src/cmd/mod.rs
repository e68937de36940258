//! One module per top-level subcommand.

pub(crate) mod bench;
pub(crate) mod crypto;
pub(crate) mod dcs;
pub(crate) mod delivery;
pub(crate) mod demo;
pub(crate) mod device;
pub(crate) mod measure;
pub(crate) mod mfr;
pub(crate) mod nas;
pub(crate) mod network;
pub(crate) mod owner;
pub(crate) mod sim;

/// The factory bundle directories under `factory` (those holding a
/// `manifest.json`), sorted by name, at most `limit`; an error if none.
pub(crate) fn bundle_dirs(
    factory: &std::path::Path,
    limit: Option<usize>,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(factory)
        .with_context(|| format!("--factory {}", factory.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    dirs.sort();
    if let Some(n) = limit {
        dirs.truncate(n);
    }
    if dirs.is_empty() {
        anyhow::bail!("--factory {}: no device bundle", factory.display());
    }
    Ok(dirs)
}
