//! `nido mfr ...`: the manufacturer's side of onboarding. A root and an
//! issuing CA in a directory, IDevID factory bundles by the thousand, the
//! DCS's server certificate, revocations and CRLs (nido-pki does the work).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use nido_pki::bundle::{append_claims, write_server_identity};
use nido_pki::files::{MODE_PUBLIC, pem, write_atomic};
use nido_pki::store::{append_issued, find_issued};
use nido_pki::{
    ClaimCode, DeviceProfile, FactoryBundle, IssuedRecord, Manufacturer, ManufacturerLock,
    PkiError, RevocationReason, Revoked, Validity,
};

use crate::args::{UsageError, number_in};

const MFR_AFTER_HELP: &str = "\
How it fits together:
  The manufacturer keeps a root CA and an issuing CA (ECDSA P-256) in one
  directory. The issuing CA signs each device's IDevID certificate (IEEE
  802.1AR style: subject serialNumber, hardwareModuleName, clientAuth, no
  expiration) and the DCS's TLS server certificate. The operator enrolls the
  root (mfr-root.pem) in its DCS; devices carry the same root to recognise
  the genuine DCS. Revocations go out as CRLs signed by the issuing CA.

A first run:
  nido mfr init     --dir acme-ca --name \"Acme Sensors\" --realm dcs.acme.example
  nido mfr issue    --dir acme-ca --count 1000 --out factory/batch-1
  nido mfr dcs-cert --dir acme-ca --host dcs.acme.example --out dcs-tls
  nido mfr revoke   --dir acme-ca ACMESENS-0000000042
  nido mfr crl      --dir acme-ca --out acme.crl.pem

The manufacturer directory:
  root.pem, issuing.pem          CA certificates
  root.key, issuing.key          CA private keys (0600; keep this directory offline)
  manufacturer.json              name, DCS realm (and external_dcs), next serial,
                                 CRL number, revocations
  issued.csv                     every certificate signed: serial,cert_serial,not_after
One nido command at a time holds the directory (DIR/lock).";

/// Manufacturer subcommands.
#[derive(Subcommand)]
#[command(after_long_help = MFR_AFTER_HELP)]
pub(crate) enum Mfr {
    /// Create a manufacturer: root CA, issuing CA and state, in a new directory.
    ///
    /// Keys are ECDSA P-256, written 0600; the CA certificates have no
    /// well-defined expiration (notAfter 99991231235959Z) because the IDevIDs
    /// they sign have none. Refuses to touch a directory that already holds a
    /// manufacturer.
    Init(InitArgs),
    /// Issue N device identities, one factory bundle directory per device.
    ///
    /// Each OUTDIR/<serial>/ holds device.key (0600), device.pem, chain.pem
    /// (device + issuing CA, what the device sends in TLS), mfr-root.pem (its
    /// trust anchor for the DCS) and manifest.json (serial, manufacturer, DCS
    /// realm, file hashes). The claim code is not in the bundle (whoever
    /// reads a device's flash must not claim it): it goes to
    /// OUTDIR/labels/<serial>.txt (0600) for the box label and the owner.
    /// OUTDIR/claims.csv gets serial,claim_code_hash for the operator,
    /// signed: OUTDIR/claims.csv.sig is a detached ECDSA P-256 SHA-256
    /// signature by the issuing CA, OUTDIR/issuing-ca.pem the certificate
    /// to check it with (`nido network import-claims --signer`, or
    /// `openssl dgst -sha256 -verify`).
    ///
    /// Serials (<prefix>-<10 digits>) continue from the last run: the counter
    /// in manufacturer.json is advanced before anything is signed, so serials
    /// never repeat, even after a crash. DIR/issued.csv and claims.csv are
    /// fsync'd batch by batch before the batch's bundles are written; the
    /// bundle files themselves are not synced one by one (run `sync` before
    /// moving OUTDIR to removable media).
    Issue(IssueArgs),
    /// Issue the DCS's TLS server certificate (dNSName HOST, serverAuth).
    ///
    /// Writes OUTDIR/dcs.pem (server + issuing CA), OUTDIR/dcs.key (0600) and
    /// OUTDIR/mfr-root.pem. Devices verify this chain against the root they
    /// carry, so only a DCS this manufacturer certified can onboard them.
    DcsCert(DcsCertArgs),
    /// Revoke devices by serial (every certificate issued to each serial).
    ///
    /// Records the revocation in manufacturer.json; publish it with
    /// `nido mfr crl`. Revoking twice is harmless. All serials are checked
    /// first: an unknown serial revokes nothing.
    Revoke(RevokeArgs),
    /// Write a new CRL (PEM) of every revocation so far, signed by the issuing CA.
    ///
    /// Each CRL gets the next CRL number; a DCS refuses to go back to a lower one.
    Crl(CrlArgs),
}

/// `init` inputs.
#[derive(Args)]
pub(crate) struct InitArgs {
    /// The manufacturer directory to create (mode 0700).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Manufacturer name, the O= of every certificate (1 to 64 characters).
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Realm of the manufacturer's DCS, which devices put in their anonymous
    /// onboarding SUCI (anonymous@REALM). Default: dcs.<name>.nido.invalid.
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,
    /// The manufacturer runs its own DCS (TS 33.501 I.9.2.3): onboarding
    /// networks relay its devices' EAP to it over RADIUS. Recorded in
    /// manufacturer.json; every factory bundle then says "kausf_from": "msk"
    /// (the device takes K_AUSF from the MSK, as the AAA server returns no
    /// EMSK). Without it, the operator's built-in DCS authenticates the
    /// devices and K_AUSF comes from the EMSK.
    #[arg(long)]
    external_dcs: bool,
    /// Device serial prefix (1 to 16 of A-Z a-z 0-9). Default: the first 8
    /// letters and digits of the name, upper case.
    #[arg(long, value_name = "PREFIX")]
    serial_prefix: Option<String>,
    /// hwType OID of the hardwareModuleName (RFC 4108) in every IDevID.
    /// Default: nido's generic 2.25 UUID OID.
    #[arg(long, value_name = "OID")]
    hw_type: Option<String>,
}

/// `issue` inputs.
#[derive(Args)]
pub(crate) struct IssueArgs {
    /// The manufacturer directory (from `nido mfr init`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How many device identities to issue (1 to 10000000).
    #[arg(long, value_name = "N")]
    count: u64,
    /// Where the bundles go (created if missing; may hold earlier batches).
    #[arg(long, value_name = "OUTDIR")]
    out: PathBuf,
    /// Print a JSON summary on stdout instead of a sentence.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: the number of CPUs, at most 8).
    #[arg(long, value_name = "N")]
    threads: Option<u64>,
}

/// `dcs-cert` inputs.
#[derive(Args)]
pub(crate) struct DcsCertArgs {
    /// The manufacturer directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The DCS's DNS name (subjectAltName dNSName).
    #[arg(long, value_name = "NAME")]
    host: String,
    /// Where dcs.pem, dcs.key and mfr-root.pem go (created if missing).
    #[arg(long, value_name = "OUTDIR")]
    out: PathBuf,
    /// Validity in days (from one hour ago, for devices with slow clocks).
    #[arg(long, value_name = "DAYS", default_value_t = 397)]
    days: u64,
}

/// Revocation reasons offered on the command line (RFC 5280 §5.3.1).
#[derive(Clone, Copy, ValueEnum)]
enum ReasonArg {
    /// No reason code in the CRL.
    Unspecified,
    /// The device key is known or suspected to be compromised.
    KeyCompromise,
    /// Ownership or affiliation changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// The device was retired.
    CessationOfOperation,
    /// The privilege the certificate stood for was withdrawn.
    PrivilegeWithdrawn,
}

impl From<ReasonArg> for RevocationReason {
    fn from(r: ReasonArg) -> Self {
        match r {
            ReasonArg::Unspecified => Self::Unspecified,
            ReasonArg::KeyCompromise => Self::KeyCompromise,
            ReasonArg::AffiliationChanged => Self::AffiliationChanged,
            ReasonArg::Superseded => Self::Superseded,
            ReasonArg::CessationOfOperation => Self::CessationOfOperation,
            ReasonArg::PrivilegeWithdrawn => Self::PrivilegeWithdrawn,
        }
    }
}

/// `revoke` inputs.
#[derive(Args)]
pub(crate) struct RevokeArgs {
    /// The manufacturer directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Why (goes into the CRL entry).
    #[arg(long, value_enum, default_value = "unspecified")]
    reason: ReasonArg,
    /// Device serials, as in the bundle directory names (e.g. ACMESENS-0000000042).
    #[arg(value_name = "SERIAL", required = true)]
    serials: Vec<String>,
}

/// `crl` inputs.
#[derive(Args)]
pub(crate) struct CrlArgs {
    /// The manufacturer directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The CRL file to write (PEM, replaced atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Days until nextUpdate: publish a new CRL before then.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    days: u64,
}

/// Runs `nido mfr ...`.
pub(crate) fn run(command: Mfr) -> Result<()> {
    match command {
        Mfr::Init(a) => init(&a),
        Mfr::Issue(a) => issue(&a),
        Mfr::DcsCert(a) => dcs_cert(&a),
        Mfr::Revoke(a) => revoke(&a),
        Mfr::Crl(a) => crl(&a),
    }
}

/// Maps an invalid-argument error of nido-pki to a usage error on `arg`.
fn usage(arg: &'static str) -> impl Fn(PkiError) -> anyhow::Error {
    move |e| match e {
        PkiError::Invalid { problem, .. } => UsageError::new(arg, problem).into(),
        other => other.into(),
    }
}

/// Locks and loads the manufacturer in `dir`.
fn open(dir: &Path) -> Result<(ManufacturerLock, Manufacturer)> {
    if !Manufacturer::exists(dir) {
        bail!(
            "{}: no manufacturer here (create one with `nido mfr init --dir {} --name NAME`)",
            dir.display(),
            dir.display()
        );
    }
    let lock = ManufacturerLock::acquire(dir)?;
    let m = Manufacturer::load(dir)?;
    Ok((lock, m))
}

/// The root's SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it.
fn fingerprint(der: &[u8]) -> String {
    nido_pki::files::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn init(a: &InitArgs) -> Result<()> {
    if Manufacturer::exists(&a.dir) {
        bail!(
            "{}: already holds a manufacturer; refusing to replace its keys",
            a.dir.display()
        );
    }
    let mut m = Manufacturer::generate(&a.name, SystemTime::now()).map_err(usage("--name"))?;
    if let Some(r) = &a.realm {
        m.set_dcs_realm(r).map_err(usage("--realm"))?;
    }
    if let Some(p) = &a.serial_prefix {
        m.set_serial_prefix(p).map_err(usage("--serial-prefix"))?;
    }
    m.set_external_dcs(a.external_dcs);
    if let Some(t) = &a.hw_type {
        m.set_hw_type(t).map_err(usage("--hw-type"))?;
    }
    m.save(&a.dir)?;
    outln!(
        "manufacturer {:?} created in {}\n  DCS realm:      {}{}\n  serials:        {}\n  root SHA-256:   {}\n  next: nido mfr issue --dir {} --count N --out OUTDIR",
        m.name(),
        a.dir.display(),
        m.dcs_realm(),
        if m.external_dcs() {
            " (the manufacturer's own DCS; K_AUSF from the MSK)"
        } else {
            ""
        },
        m.device_serial(1),
        fingerprint(m.root_der()),
        a.dir.display()
    );
    Ok(())
}

/// Devices per batch: one fsync'd log append and claims append per batch,
/// about 16 batches per thread (each fsync also commits the file system
/// journal full of new bundle files, so fewer is faster), 64 to 4096.
fn batch_size(count: u64, threads: usize) -> usize {
    usize::try_from(count / (threads as u64 * 16))
        .unwrap_or(4096)
        .clamp(64, 4096)
}

fn issue(a: &IssueArgs) -> Result<()> {
    let count = number_in("--count", a.count, 1..=10_000_000)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let threads = match a.threads {
        Some(t) => number_in("--threads", t, 1..=64)?,
        None => cpus.min(8),
    } as usize;
    let (_lock, mut m) = open(&a.dir)?;
    let serials = m.reserve_serials(count)?;
    // The counter is on disk before anything is signed: a crash leaves a gap.
    m.save_state(&a.dir)?;

    let started = Instant::now();
    let now = SystemTime::now();
    let profile = DeviceProfile::standard(now);
    let batches: Vec<&[String]> = serials.chunks(batch_size(count, threads)).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let append = Mutex::new(());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(count);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} identities ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let work = |batch: &[String]| -> Result<()> {
        let mut issued = Vec::with_capacity(batch.len());
        for serial in batch {
            let id = m.issue_device(serial, &profile)?;
            let code = ClaimCode::generate()?;
            issued.push((id, code));
        }
        let records = issued
            .iter()
            .map(|(id, _)| IssuedRecord::of(&id.serial, id.certificate()))
            .collect::<Result<Vec<_>, _>>()?;
        let claims: Vec<(String, String)> = issued
            .iter()
            .map(|(id, code)| (id.serial.clone(), code.hash()))
            .collect();
        {
            // Logged (fsync'd) before any bundle leaves: the CA's record of
            // what it signed is never behind the bundles.
            let _guard = append.lock().map_err(|_| anyhow!("a worker panicked"))?;
            append_issued(&a.dir, &records)?;
            append_claims(&a.out, &claims)?;
        }
        for (id, code) in &issued {
            FactoryBundle::write(
                &a.out,
                id,
                m.name(),
                m.dcs_realm(),
                m.kausf_from(),
                m.root_der(),
                code,
            )?;
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };

    nido_pki::files::create_dir_all(&a.out)?;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(batch) = batches.get(i) else { break };
                        if let Err(e) = work(batch) {
                            stop.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            bar.set_position(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e.context(format!(
            "issuing stopped after {} of {count} identities",
            done.load(Ordering::Relaxed)
        )));
    }
    // The operator imports claims only signed by the manufacturer: a
    // detached ECDSA P-256 SHA-256 signature of the whole claims.csv by the
    // issuing CA, and the issuing CA certificate to check it with
    // (`openssl dgst -sha256 -verify <(openssl x509 -pubkey -noout -in
    // issuing-ca.pem) -signature claims.csv.sig claims.csv`).
    let claims_csv = a.out.join("claims.csv");
    let signed = std::fs::read(&claims_csv).with_context(|| claims_csv.display().to_string())?;
    let sig = m.sign_detached(&signed)?;
    nido_pki::files::write_atomic(
        &a.out.join("claims.csv.sig"),
        &sig,
        nido_pki::files::MODE_PUBLIC,
    )?;
    nido_pki::files::write_atomic(
        &a.out.join("issuing-ca.pem"),
        nido_pki::files::pem("CERTIFICATE", m.issuing_der()).as_bytes(),
        nido_pki::files::MODE_PUBLIC,
    )?;
    nido_pki::files::sync_dir(&a.out.join("labels"))?;
    nido_pki::files::sync_dir(&a.out)?;

    let seconds = started.elapsed().as_secs_f64();
    let first = serials.first().map(String::as_str).unwrap_or_default();
    let last = serials.last().map(String::as_str).unwrap_or_default();
    let claims = a.out.join("claims.csv");
    if a.json {
        let summary = json!({
            "manufacturer": m.name(),
            "dcs_realm": m.dcs_realm(),
            "kausf_from": m.kausf_from().as_str(),
            "count": count,
            "first_serial": first,
            "last_serial": last,
            "out": a.out.display().to_string(),
            "claims_csv": claims.display().to_string(),
            "threads": threads,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "per_second": (count as f64 / seconds.max(1e-9)).round(),
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        outln!(
            "issued {count} device identities {first} .. {last} into {} in {seconds:.2} s ({:.0}/s); claim code hashes for the operator: {}",
            a.out.display(),
            count as f64 / seconds.max(1e-9),
            claims.display()
        );
    }
    Ok(())
}

fn dcs_cert(a: &DcsCertArgs) -> Result<()> {
    let days = number_in("--days", a.days, 1..=36_500)? as u32;
    let (_lock, m) = open(&a.dir)?;
    let id = m
        .issue_dcs(&a.host, Validity::days(SystemTime::now(), days))
        .map_err(usage("--host"))?;
    append_issued(
        &a.dir,
        &[IssuedRecord::of(&format!("dcs:{}", a.host), &id.chain[0])?],
    )?;
    let [chain, key, root] = write_server_identity(&a.out, &id, m.root_der())?;
    outln!(
        "DCS certificate for {} ({days} days): {} (chain), {} (key, 0600), {} (manufacturer root)",
        a.host,
        chain.display(),
        key.display(),
        root.display()
    );
    Ok(())
}

fn revoke(a: &RevokeArgs) -> Result<()> {
    let (_lock, mut m) = open(&a.dir)?;
    let now = SystemTime::now();
    let mut found = Vec::new();
    for serial in &a.serials {
        let records = find_issued(&a.dir, serial)?;
        if records.is_empty() {
            bail!(
                "{serial}: no certificate was issued for this serial (see {}); nothing revoked",
                a.dir.join("issued.csv").display()
            );
        }
        found.push(records);
    }
    let mut lines = Vec::new();
    for r in found.into_iter().flatten() {
        let fresh = m.revoke(Revoked {
            serial: r.serial.clone(),
            cert_serial: r.cert_serial.clone(),
            revoked_at: now,
            reason: a.reason.into(),
        });
        lines.push(format!(
            "{} {} (certificate serial {})",
            if fresh { "revoked" } else { "already revoked" },
            r.serial,
            hex::encode_upper(&r.cert_serial)
        ));
    }
    m.save_state(&a.dir)?;
    for l in lines {
        outln!("{l}");
    }
    outln!(
        "publish it: nido mfr crl --dir {} --out FILE",
        a.dir.display()
    );
    Ok(())
}

fn crl(a: &CrlArgs) -> Result<()> {
    let days = number_in("--days", a.days, 1..=3650)?;
    let (_lock, mut m) = open(&a.dir)?;
    let now = SystemTime::now();
    let crl = m.next_crl(now, now + Duration::from_secs(days * 86_400))?;
    // The number is spent before the file is written: a failed write leaves
    // a gap in CRL numbers, never two CRLs with one number.
    m.save_state(&a.dir)?;
    write_atomic(&a.out, pem("X509 CRL", &crl).as_bytes(), MODE_PUBLIC)?;
    outln!(
        "CRL number {} with {} revoked certificate(s), next update in {days} days: {}",
        m.crl_number(),
        m.revoked().len(),
        a.out.display()
    );
    Ok(())
}
