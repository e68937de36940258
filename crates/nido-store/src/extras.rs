//! What the network process needs beyond the [`nido_net::Store`] trait:
//! the IMSI range, the audit trail, devices seen, the DCS's trust data
//! (manufacturers, CRLs, blocked serials) and the provisioning log.

use nido_pki::{Policy, TrustStore};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::batch::{AuditBatch, AuditConn, Op};
use crate::error::SqlStoreError;
use crate::policy;
use crate::records::{
    AuditEntry, BlockedRecord, CrlRecord, DeviceRecord, ManufacturerRecord, ProvisioningRecord,
};
use crate::sql::{SqlStore, now_unix, on_pool, to_i64, to_u64};
use nido_net::StoreError;

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// What [`SqlStore::release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The device has no subscription.
    NoSubscription,
    /// Released; it was `was` (`provisioned` or `active`).
    Released {
        /// The subscription.
        supi: String,
        /// Its state before.
        was: String,
    },
    /// Nothing to release: the subscription is already re-provisionable.
    Unchanged {
        /// The subscription.
        supi: String,
        /// Its state (`created` or `released`).
        state: String,
    },
}

/// The `not_after` of a package ended at `at` (Unix seconds) by the
/// operator, a release or a claim: the second before, as a package is
/// valid through its `not_after` second ([`nido_net::Subscription::expired`]).
pub(crate) fn ended_at(at: i64) -> i64 {
    at.saturating_sub(1)
}

/// Which subscriptions [`SqlStore::end_packages`] ends the package of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packages<'a> {
    /// The subscription of one device.
    Of(&'a nido_net::DeviceId),
    /// Every subscription whose package may carry SUCI key `id`: it does,
    /// or it was delivered before the store kept the key id.
    MayCarrySuciKey(u8),
    /// Every subscription.
    All,
}

/// What [`SqlStore::end_packages`] did to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageEnd {
    /// The device.
    pub device: String,
    /// Its subscription.
    pub supi: String,
}

/// Moves the trust generation, in the transaction of a change the serving
/// networks must take: a change of their configuration (a SUCI key), or
/// packages ended by the operator (a rekey, a release, a claim), after
/// which they look further back for ended packages
/// ([`nido_net::dcs::TrustSource::packages_ended`]), whatever the clocks
/// and however long the transaction took.
pub(crate) const BUMP_TRUST_GENERATION: &str =
    "UPDATE trust_generation SET generation = generation + 1 WHERE id = 1";

impl SqlStore {
    /// Ends the packages of `which` subscriptions at `at` (`nido network
    /// rekey`, issue #16 item 4): sets each one's end (`not_after`) to the second before `at`
    /// (a package is valid through its `not_after` second) where it ended
    /// later or had none, with an audit entry each, in one transaction.
    /// The AMF then refuses the device's next registration (#7, integrity
    /// protected) and the device renews with its erasure receipt, getting
    /// a new K. Only that column changes: a network serving at the same
    /// time never sees an SQN or a state go back. Returns the subscriptions
    /// changed (none when there is no such subscription, or its package
    /// had already ended).
    pub fn end_packages(
        &self,
        which: Packages<'_>,
        at: u64,
        reason: &str,
    ) -> Result<Vec<PackageEnd>, SqlStoreError> {
        let at_i = to_i64(at, "time")?;
        let end = ended_at(at_i);
        let (device, key) = match which {
            Packages::Of(d) => (Some(d.to_string()), None),
            Packages::MayCarrySuciKey(k) => (None, Some(i64::from(k))),
            Packages::All => (None, None),
        };
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE subscriptions SET not_after = $1, updated_at = $2 \
                     WHERE ($3 IS NULL OR device = $3) \
                     AND ($4 IS NULL OR suci_key_id = $4 OR suci_key_id IS NULL) \
                     AND (not_after IS NULL OR not_after > $1) \
                     RETURNING device, supi",
                )
                .bind(end)
                .bind(at_i)
                .bind(device.as_deref())
                .bind(key)
                .fetch_all(&mut *tx)
                .await?;
                let mut audit = AuditBatch::default();
                let mut ended = Vec::with_capacity(rows.len());
                for (device, supi) in rows {
                    let event = nido_net::NetworkEvent::PackageEnded {
                        device: crate::sql::device_id(&device)?,
                        supi: nido_sec::Supi::parse(&supi)
                            .map_err(|e| SqlStoreError::Corrupt(format!("SUPI {supi}: {e}")))?,
                        reason: reason.to_owned(),
                    };
                    audit.entry(AuditEntry::from_event(at, &event));
                    ended.push(PackageEnd { device, supi });
                }
                audit.write(&mut *tx).await?;
                if !ended.is_empty() {
                    sqlx::query(BUMP_TRUST_GENERATION).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(ended)
            })
        })
    }

    /// Sets the size of the IMSI range: [`nido_net::Store::allocate_msin`]
    /// hands out 1..=`size` and then refuses (`Exhausted`). A store starts
    /// with an empty range. Refuses (`Conflict`) a size below the number
    /// already allocated.
    pub fn set_msin_range(&self, size: u64) -> Result<(), SqlStoreError> {
        let size = to_i64(size, "range size")?;
        let changed = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query(
                    "UPDATE msin_counter SET range_size = $1 WHERE id = 1 AND allocated <= $1",
                )
                .bind(size)
                .execute(p)
                .await?
                .rows_affected())
            })
        })?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!(
                "more than {size} MSINs are already allocated"
            ))
            .into());
        }
        Ok(())
    }

    /// Releases the subscription of `device` for re-provisioning
    /// (`nido network release`): sets its state to `released` only if it is
    /// `provisioned` or `active`, and writes the audit entry, in one
    /// transaction. Only the state column changes, so a network serving at
    /// the same time never sees its SQN go back. Returns the SUPI and the
    /// state it had, or `None` when there is nothing to release (no
    /// subscription, or one already re-provisionable: `created`,
    /// `released`), with that state.
    pub fn release(
        &self,
        device: &nido_net::DeviceId,
        at: u64,
        reason: &str,
    ) -> Result<Release, SqlStoreError> {
        let at_i = to_i64(at, "time")?;
        let id = device.to_string();
        let found: Option<(String, String)> = self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                let found: Option<(String, String)> =
                    sqlx::query_as("SELECT supi, state FROM subscriptions WHERE device = $1")
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((supi, state)) = &found
                    && (state == "provisioned" || state == "active")
                {
                    let event = nido_net::NetworkEvent::Released {
                        device: device.clone(),
                        supi: nido_sec::Supi::parse(supi)
                            .map_err(|e| SqlStoreError::Corrupt(format!("SUPI {supi}: {e}")))?,
                        reason: reason.to_owned(),
                    };
                    let mut rows = AuditBatch::default();
                    rows.entry(AuditEntry::from_event(at, &event));
                    rows.seen(id.clone(), "released", at)?;
                    sqlx::query(
                        "UPDATE subscriptions SET state = 'released', updated_at = $1 \
                         WHERE device = $2 AND state = $3",
                    )
                    .bind(at_i)
                    .bind(&id)
                    .bind(state)
                    .execute(&mut *tx)
                    .await?;
                    rows.write(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(found)
            })
        })?;
        Ok(match found {
            None => Release::NoSubscription,
            Some((supi, state)) if state == "provisioned" || state == "active" => {
                Release::Released { supi, was: state }
            }
            Some((supi, state)) => Release::Unchanged { supi, state },
        })
    }

    /// The IMSI range: (MSINs allocated, range size).
    pub fn msin_range(&self) -> Result<(u64, u64), SqlStoreError> {
        let (allocated, size): (i64, i64) = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(
                    sqlx::query_as("SELECT allocated, range_size FROM msin_counter WHERE id = 1")
                        .fetch_one(p)
                        .await?,
                )
            })
        })?;
        Ok((to_u64(allocated, "allocated")?, to_u64(size, "range size")?))
    }

    /// Appends the audit entries of `events` and updates the devices they
    /// name, in one transaction (one durable commit for a driver's batch;
    /// the same statements as an audit write of [`nido_net::Store::apply`]).
    pub fn append_audit_batch(
        &self,
        at: u64,
        events: &[nido_net::NetworkEvent],
    ) -> Result<(), SqlStoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.try_apply(&[Op::Audit { at, events }])
    }

    /// Appends to the audit trail (append-only: the schema refuses updates and deletes).
    pub fn append_audit(&self, entry: AuditEntry) -> Result<(), SqlStoreError> {
        self.run(async {
            on_pool!(self, |p, _begin| {
                let mut c = p.acquire().await?;
                c.append_audit(core::slice::from_ref(&entry)).await
            })
        })
    }

    /// The last `limit` audit entries, oldest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, SqlStoreError> {
        let mut entries = self.audit_rows(
            &crate::AuditFilter {
                limit,
                ..crate::AuditFilter::default()
            },
            limit,
        )?;
        entries.reverse();
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    /// Records that device `serial` was seen at `now` (unix seconds) in `state`
    /// (free text, e.g. `onboarding`, `provisioned`, `refused`).
    pub fn touch_device(&self, serial: &str, state: &str, now: u64) -> Result<(), SqlStoreError> {
        let now = to_i64(now, "time")?;
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(
                    "INSERT INTO devices (serial, state, first_seen, last_seen) \
                     VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (serial) DO UPDATE SET state = excluded.state, \
                     last_seen = excluded.last_seen",
                )
                .bind(serial)
                .bind(state)
                .bind(now)
                .execute(p)
                .await?;
                Ok(())
            })
        })
    }

    /// Every device seen, by serial.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, SqlStoreError> {
        let rows: Vec<(String, String, i64, i64)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT serial, state, first_seen, last_seen FROM devices ORDER BY serial",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(|(serial, state, first, last)| {
                Ok(DeviceRecord {
                    serial,
                    state,
                    first_seen: to_u64(first, "time")?,
                    last_seen: to_u64(last, "time")?,
                })
            })
            .collect()
    }

    /// Adds or replaces an enrolled manufacturer (its root and policy). A
    /// root already enrolled under another name is a `Conflict`.
    pub fn put_manufacturer(
        &self,
        name: &str,
        root_der: &[u8],
        policy: &Policy,
    ) -> Result<(), SqlStoreError> {
        // The name is the first half of its devices' identities
        // (MANUFACTURER/SERIAL): no '/'.
        nido_pki::check_manufacturer_name(name)
            .map_err(|e| SqlStoreError::Invalid(e.to_string()))?;
        let json = policy::to_json(policy);
        let now = to_i64(now_unix(), "time")?;
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(
                    "INSERT INTO manufacturers (name, root_der, policy, updated_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET root_der = excluded.root_der, \
                     policy = excluded.policy, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(root_der)
                .bind(&json)
                .bind(now)
                .execute(p)
                .await?;
                Ok(())
            })
        })
    }

    /// The enrolled manufacturers, by name.
    pub fn manufacturers(&self) -> Result<Vec<ManufacturerRecord>, SqlStoreError> {
        let rows: Vec<(String, Vec<u8>, String)> =
            self.run(async {
                on_pool!(self, |p, _begin| {
                    Ok(sqlx::query_as(
                        "SELECT name, root_der, policy FROM manufacturers ORDER BY name",
                    )
                    .fetch_all(p)
                    .await?)
                })
            })?;
        rows.into_iter()
            .map(|(name, root_der, json)| {
                let policy = policy::from_json(&json)
                    .map_err(|e| SqlStoreError::Corrupt(format!("{name}: {e}")))?;
                Ok(ManufacturerRecord {
                    name,
                    root_der,
                    policy,
                })
            })
            .collect()
    }

    /// Stores a CRL of `manufacturer` signed by the CA certificate
    /// `issuer_der`, replacing the one from the same CA unless the stored one
    /// is newer (`this_update`, unix seconds). Validate it with
    /// [`TrustStore::add_crl`] first: the store keeps octets, it does not
    /// parse them. An unknown manufacturer is `NotFound`.
    pub fn add_crl(
        &self,
        manufacturer: &str,
        crl_der: &[u8],
        issuer_der: &[u8],
        this_update: u64,
    ) -> Result<(), SqlStoreError> {
        let this_update = to_i64(this_update, "thisUpdate")?;
        let issuer_hash = sha256(issuer_der);
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(
                    "INSERT INTO crls (manufacturer, issuer_hash, issuer_der, crl_der, this_update) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (manufacturer, issuer_hash) DO UPDATE SET \
                     crl_der = excluded.crl_der, this_update = excluded.this_update \
                     WHERE crls.this_update <= excluded.this_update",
                )
                .bind(manufacturer)
                .bind(&issuer_hash)
                .bind(issuer_der)
                .bind(crl_der)
                .bind(this_update)
                .execute(p)
                .await?;
                Ok(())
            })
        })
    }

    /// Every stored CRL, by manufacturer and thisUpdate.
    pub fn crls(&self) -> Result<Vec<CrlRecord>, SqlStoreError> {
        let rows: Vec<(String, Vec<u8>, Vec<u8>, i64)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT manufacturer, crl_der, issuer_der, this_update FROM crls \
                     ORDER BY manufacturer, this_update",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(|(manufacturer, crl_der, issuer_der, this_update)| {
                Ok(CrlRecord {
                    manufacturer,
                    crl_der,
                    issuer_der,
                    this_update: to_u64(this_update, "thisUpdate")?,
                })
            })
            .collect()
    }

    /// Blocks a device (that manufacturer's only); `false` if it was
    /// already blocked (its first reason stays). A block and its `blocked`
    /// audit entry commit together.
    pub fn block(&self, device: &nido_net::DeviceId, reason: &str) -> Result<bool, SqlStoreError> {
        self.block_with(device, reason, false)
    }

    /// [`SqlStore::block`], `deferred` to the device's next registration
    /// when set ([`nido_pki::TrustStore::block_at_next_registration`]). A
    /// block at once replaces a deferred one (`true`, with its audit
    /// entry); nothing else changes a block that exists. The device's
    /// owner is told in the same transaction: a `blocked` event in the
    /// outbox (`reason`: the operator's, and whether at once or from the
    /// next registration), delivered like its data.
    pub fn block_with(
        &self,
        device: &nido_net::DeviceId,
        reason: &str,
        deferred: bool,
    ) -> Result<bool, SqlStoreError> {
        let serial = device.to_string();
        let at = now_unix();
        let now = to_i64(at, "time")?;
        let mut entry = AuditEntry::new(at, "blocked", reason);
        entry.device = Some(serial.clone());
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                let n = sqlx::query(
                    "INSERT INTO blocked (serial, reason, at, deferred) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (serial) DO UPDATE SET deferred = excluded.deferred, \
                     reason = excluded.reason, at = excluded.at \
                     WHERE blocked.deferred AND NOT excluded.deferred",
                )
                .bind(&serial)
                .bind(reason)
                .bind(now)
                .bind(deferred)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    (*tx).append_audit(core::slice::from_ref(&entry)).await?;
                    let when = if deferred {
                        "from its next registration"
                    } else {
                        "at once"
                    };
                    (*tx)
                        .append_event(
                            &serial,
                            "blocked",
                            &format!("{reason} ({when})"),
                            now * 1000,
                        )
                        .await?;
                }
                tx.commit().await?;
                Ok(n == 1)
            })
        })
    }

    /// Releases `device` from its owner for a transfer (issue #16 item 3):
    /// `by` is the owner asking (refused unless it is the device's owner)
    /// or `None` for the operator. In one transaction: every claim code of
    /// the device is forgotten (the old owner's code, and any unused one,
    /// no longer claims it), `new_code_hash` (the SHA-256 of a fresh claim
    /// code, [`nido_pki::bundle::claim_code_hash`]) becomes its only one,
    /// its subscription loses its owner and its package ends at `at` (the
    /// device renews at its next registration, erasing the old owner's
    /// third-party credentials, proved by its receipt, and gets the next
    /// owner's), with an `owner_released` audit entry; the old owner's
    /// pending downlinks are cancelled. From the commit on the old owner
    /// sees nothing of the device: its last word about the device is a
    /// `released` event in the outbox. The operator may also release a
    /// device without an owner: its claim codes are replaced (a lost code).
    /// Returns the old owner, if any.
    pub fn release_owner(
        &self,
        device: &nido_net::DeviceId,
        by: Option<&str>,
        new_code_hash: &str,
        at: u64,
        reason: &str,
    ) -> Result<Option<String>, SqlStoreError> {
        let id = device.to_string();
        let at_i = to_i64(at, "time")?;
        let mac = self.sealer.claim_mac(new_code_hash);
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                // The read side's one definition of a device's owner, with
                // the device as parameter $1 (no text of ours in the SQL).
                let sql = format!("SELECT {}", crate::query::owner_of("$1"));
                let owner: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
                let owner = match (owner, by) {
                    (Some(o), Some(b)) if o == b => Some(o),
                    (owner, None) => owner,
                    // Another owner's device looks like no device.
                    _ => {
                        return Err(StoreError::NotFound(format!("{id} has no owner to release it"))
                            .into());
                    }
                };
                // The old owner's last word about the device, while it is
                // still theirs (the outbox resolves the owner now).
                (*tx)
                    .append_event(&id, "released", reason, at_i * 1000)
                    .await?;
                // Revoked, not only deleted: an import of the claims file
                // again must not bring the code from the box back.
                sqlx::query(
                    "INSERT INTO revoked_claims (claim_code_hash, device, at) \
                     SELECT claim_code_hash, device, $2 FROM claims WHERE device = $1 \
                     ON CONFLICT (claim_code_hash) DO NOTHING",
                )
                .bind(&id)
                .bind(at_i)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM claims WHERE device = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                // What the old owner's application left for the device
                // is not sent to it once it is someone else's.
                sqlx::query(
                    "UPDATE downlink SET status = 'cancelled' WHERE device = $1 AND status = 'pending'",
                )
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO claims (claim_code_hash, device, keyed) VALUES ($1, $2, TRUE)")
                    .bind(&mac)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE subscriptions SET owner = NULL, updated_at = $2, \
                     not_after = CASE WHEN not_after IS NULL OR not_after > $3 THEN $3 \
                     ELSE not_after END WHERE device = $1",
                )
                .bind(&id)
                .bind(at_i)
                .bind(ended_at(at_i))
                .execute(&mut *tx)
                .await?;
                let who = by.map_or_else(|| "the operator".to_owned(), |b| format!("owner {b}"));
                let from = owner
                    .as_deref()
                    .map_or_else(|| "no owner".to_owned(), |o| format!("owner {o}"));
                let mut entry = AuditEntry::new(
                    at,
                    "owner_released",
                    format!("from {from} by {who}: {reason}; its claim codes revoked, a new one issued"),
                );
                entry.device = Some(id.clone());
                (*tx).append_audit(core::slice::from_ref(&entry)).await?;
                sqlx::query(BUMP_TRUST_GENERATION).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(owner)
            })
        })
    }

    /// Lifts a block; `false` if the device was not blocked. The change,
    /// its `unblocked` audit entry and an `unblocked` event for its owner
    /// commit together.
    pub fn unblock(&self, device: &nido_net::DeviceId) -> Result<bool, SqlStoreError> {
        let serial = device.to_string();
        let at = now_unix();
        let at_ms = to_i64(at, "time")?.saturating_mul(1000);
        let mut entry = AuditEntry::new(at, "unblocked", "");
        entry.device = Some(serial.clone());
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                let n = sqlx::query("DELETE FROM blocked WHERE serial = $1")
                    .bind(&serial)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    (*tx).append_audit(core::slice::from_ref(&entry)).await?;
                    (*tx)
                        .append_event(&serial, "unblocked", "the operator lifted the block", at_ms)
                        .await?;
                }
                tx.commit().await?;
                Ok(n == 1)
            })
        })
    }

    /// The blocked devices, by identity.
    pub fn blocked(&self) -> Result<Vec<BlockedRecord>, SqlStoreError> {
        let rows: Vec<(String, String, i64, bool)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT serial, reason, at, deferred FROM blocked ORDER BY serial",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(|(serial, reason, at, deferred)| {
                Ok(BlockedRecord {
                    serial,
                    reason,
                    at: to_u64(at, "time")?,
                    deferred,
                })
            })
            .collect()
    }

    /// The devices of `manufacturer` whose subscription (not released)
    /// got its last package on a certificate of `issuer` (name, DER) whose
    /// serialNumber is in `serials` (a CRL's revoked list): what a CRL
    /// import suspends.
    pub fn subscribed_devices_with_certs(
        &self,
        manufacturer: &str,
        issuer: &[u8],
        serials: &[Vec<u8>],
    ) -> Result<Vec<nido_net::DeviceId>, SqlStoreError> {
        if serials.is_empty() {
            return Ok(Vec::new());
        }
        // An exact, case-sensitive prefix on both backends (substr counts
        // characters), as the device listing's manufacturer filter.
        let prefix = format!("{manufacturer}/");
        let sql = format!(
            "SELECT d.serial, d.cert_serial FROM devices d \
             JOIN subscriptions s ON s.device = d.serial \
             WHERE d.cert_serial IS NOT NULL AND d.cert_issuer = $2 \
             AND s.state <> 'released' AND substr(d.serial, 1, {}) = $1 \
             ORDER BY d.serial",
            prefix.chars().count()
        );
        let rows: Vec<(String, Vec<u8>)> = self.run(async {
            on_pool!(self, |p, _begin| {
                // Only a number of ours is spliced in; the name is bound.
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&prefix)
                    .bind(issuer)
                    .fetch_all(p)
                    .await?)
            })
        })?;
        let wanted: std::collections::HashSet<&[u8]> = serials.iter().map(Vec::as_slice).collect();
        rows.into_iter()
            .filter(|(_, cert)| wanted.contains(cert.as_slice()))
            .map(|(serial, _)| crate::sql::device_id(&serial))
            .collect()
    }

    /// The packages delivered to `device`, oldest first (written by
    /// `put_subscription` whenever the package id changes).
    pub fn provisioning_log(
        &self,
        device: &nido_net::DeviceId,
    ) -> Result<Vec<ProvisioningRecord>, SqlStoreError> {
        let device = device.to_string();
        let rows: Vec<(Vec<u8>, String, String, i64, bool)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT package_id, device, supi, at, reprovisioned FROM provisioning \
                     WHERE device = $1 ORDER BY id",
                )
                .bind(&device)
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(|(package_id, device, supi, at, reprovisioned)| {
                Ok(ProvisioningRecord {
                    package_id: package_id
                        .as_slice()
                        .try_into()
                        .map_err(|_| SqlStoreError::Corrupt("package id".into()))?,
                    device,
                    supi,
                    at: to_u64(at, "time")?,
                    reprovisioned,
                })
            })
            .collect()
    }

    /// The DCS's trust store from the stored manufacturers, CRLs and block
    /// list (each root and CRL is validated again on the way in).
    pub fn trust_store(&self) -> Result<TrustStore, SqlStoreError> {
        let mut trust = TrustStore::new();
        let manufacturers = self.manufacturers()?;
        let names: Vec<String> = manufacturers.iter().map(|m| m.name.clone()).collect();
        for m in manufacturers {
            trust
                .enroll(&m.name, CertificateDer::from(m.root_der), m.policy)
                .map_err(|e| SqlStoreError::Corrupt(e.to_string()))?;
        }
        for c in self.crls()? {
            trust
                .add_crl(
                    &c.manufacturer,
                    &CertificateRevocationListDer::from(c.crl_der),
                    &CertificateDer::from(c.issuer_der),
                )
                .map_err(|e| SqlStoreError::Corrupt(e.to_string()))?;
        }
        for b in self.blocked()? {
            if b.serial.contains('/') {
                let id = crate::sql::device_id(&b.serial)?;
                if b.deferred {
                    trust.block_at_next_registration(&id);
                } else {
                    trust.block(&id);
                }
            } else {
                // A serial blocked before schema 4 while no manufacturer was
                // enrolled (the migration qualifies the others): it blocks
                // that serial under every manufacturer, as it meant then.
                for name in &names {
                    let id = nido_net::DeviceId::new(name, &b.serial).map_err(|e| {
                        SqlStoreError::Corrupt(format!("blocked {:?}: {e}", b.serial))
                    })?;
                    trust.block(&id);
                }
            }
        }
        Ok(trust)
    }

    /// Moves the trust generation without a trust change: the network's
    /// configuration changed (a SUCI home network key added or retired,
    /// `nido network suci-key`), and every serving network reloads it at
    /// its next poll, as after a trust change.
    pub fn bump_trust_generation(&self) -> Result<(), SqlStoreError> {
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(BUMP_TRUST_GENERATION).execute(p).await?;
                Ok(())
            })
        })
    }

    /// How many subscriptions' packages carry each SUCI home network key
    /// id (`None`: packages delivered before the store kept it), by id.
    pub fn suci_key_use(&self) -> Result<Vec<(Option<u8>, u64)>, SqlStoreError> {
        let rows: Vec<(Option<i64>, i64)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT suci_key_id, COUNT(*) FROM subscriptions GROUP BY suci_key_id \
                     ORDER BY suci_key_id",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(|(id, n)| {
                let id = id
                    .map(|id| {
                        u8::try_from(id)
                            .map_err(|_| SqlStoreError::Corrupt(format!("SUCI key id {id}")))
                    })
                    .transpose()?;
                Ok((id, to_u64(n, "count")?))
            })
            .collect()
    }

    /// The SUPIs of the subscriptions whose credential package ended within
    /// `from..=to` (Unix seconds, its `not_after` second): ended by the
    /// operator (`nido network rekey`, an owner release: the second before
    /// the change) or by its validity. One indexed range read (schema 9),
    /// for a serving network to poll and end the registrations of those
    /// packages ([`nido_net::Network::end_registrations`]).
    pub fn packages_ended(&self, from: u64, to: u64) -> Result<Vec<nido_sec::Supi>, SqlStoreError> {
        let (from, to) = (to_i64(from, "time")?, to_i64(to, "time")?);
        let rows: Vec<String> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_scalar(
                    "SELECT supi FROM subscriptions WHERE not_after >= $1 AND not_after <= $2 \
                     ORDER BY supi",
                )
                .bind(from)
                .bind(to)
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.iter()
            .map(|supi| {
                nido_sec::Supi::parse(supi)
                    .map_err(|e| SqlStoreError::Corrupt(format!("SUPI {supi}: {e}")))
            })
            .collect()
    }

    /// The trust generation: advanced by the database (triggers of schema
    /// 3) in the transaction of every change of manufacturers, CRLs or the
    /// block list, whoever makes it. One indexed read, for a serving
    /// network to poll.
    pub fn trust_generation(&self) -> Result<u64, SqlStoreError> {
        let g: i64 = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(
                    sqlx::query_scalar("SELECT generation FROM trust_generation WHERE id = 1")
                        .fetch_one(p)
                        .await?,
                )
            })
        })?;
        to_u64(g, "trust generation")
    }
}

impl nido_net::dcs::TrustSource for SqlStore {
    type Error = SqlStoreError;

    fn trust_generation(&self) -> Result<u64, SqlStoreError> {
        SqlStore::trust_generation(self)
    }

    fn packages_ended(&self, from: u64, to: u64) -> Result<Vec<nido_sec::Supi>, SqlStoreError> {
        SqlStore::packages_ended(self, from, to)
    }

    fn trust_store(&self) -> Result<TrustStore, SqlStoreError> {
        SqlStore::trust_store(self)
    }
}
