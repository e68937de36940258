//! Who is in the demo: a manufacturer the network trusts (with a CRL and a
//! blocked serial), a second manufacturer it does not trust, an owner with
//! third-party credentials who claims every fourth device, good devices and
//! the devices that must be refused, each with the 5GMM cause it must get.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use nido_eap::fixtures::Onboarding;
use nido_net::{Owner, Store};
use nido_pki::{ClaimCode, DeviceIdentity, DeviceProfile, Manufacturer, Revoked};
use nido_prov::ThirdPartyCredential;

/// The owner's identifier.
pub(super) const OWNER: &str = "acme-farms";

/// Every `CLAIM_EVERY`-th good device is claimed by the owner.
const CLAIM_EVERY: u64 = 4;

/// A kind of device that must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bad {
    /// Its reason key in the report.
    pub reason: &'static str,
    /// The 5GMM cause the network must send.
    pub cause: u8,
}

/// What a device in the fleet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Must end active; `claimed` by the owner or standalone.
    Good {
        /// Whether the owner claimed it.
        claimed: bool,
    },
    /// Must be refused.
    Bad(Bad),
}

/// The bad devices besides the clone: reason, profile, cause.
const REVOKED: Bad = Bad {
    reason: "revoked",
    cause: 3,
};
const EXPIRED: Bad = Bad {
    reason: "expired",
    cause: 3,
};
const FOREIGN: Bad = Bad {
    reason: "foreign_manufacturer",
    cause: 75,
};
const NOT_YET_VALID: Bad = Bad {
    reason: "not_yet_valid",
    cause: 74,
};
const SERVER_AUTH_ONLY: Bad = Bad {
    reason: "server_auth_only",
    cause: 3,
};
const BLOCKED: Bad = Bad {
    reason: "blocked",
    cause: 3,
};
/// A second device with a good device's identity, onboarding while the
/// first one is (clone detection, `clone_window`).
pub(super) const CLONE: Bad = Bad {
    reason: "clone",
    cause: 74,
};

/// A good device's identity and, if the owner claimed it, the hash of its
/// claim code.
type Issued = (DeviceIdentity, Option<String>);

/// The world of the demo and its devices in arrival order.
pub(super) struct Population {
    /// The trusted manufacturer, the network's trust store and its DCS.
    pub world: Onboarding,
    /// The owner's third-party credentials.
    pub credentials: Vec<ThirdPartyCredential>,
    /// Devices in arrival order (the fleet index): identity and kind.
    /// The clone follows the device it copies.
    pub plan: Vec<(DeviceIdentity, Kind)>,
    /// Claim code hashes of the claimed devices: (serial, hash).
    pub claims: Vec<(String, String)>,
}

impl Population {
    /// Makes the manufacturers, the trust store and `good` good devices
    /// plus the bad ones, issuing on `threads` threads; `progress` is
    /// called after each identity.
    pub(super) fn new(
        good: u64,
        now: SystemTime,
        threads: usize,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Self> {
        let revoked_n = good + 1;
        let blocked_n = good + 2;
        let mut revoked = None;
        let world = Onboarding::with_trust("Acme Sensors", now, |m, trust| {
            let id = m.issue_device(&m.device_serial(revoked_n), &DeviceProfile::standard(now))?;
            let crl = m.crl(
                &[Revoked::of(&id, now - Duration::from_secs(60))],
                now - Duration::from_secs(30),
                now + Duration::from_secs(86_400),
                1,
            )?;
            trust.add_crl(m.name(), &crl, m.issuing_der())?;
            trust.block(&nido_pki::DeviceId::new(
                m.name(),
                &m.device_serial(blocked_n),
            )?);
            revoked = Some(id);
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("manufacturer: {e}"))?;
        let revoked = revoked.context("the revoked identity")?;
        // A manufacturer the network never enrolled; its device is set up
        // with the trusted DCS realm and root, so it reaches the DCS.
        let rogue = Manufacturer::generate("Rogue Devices", now)
            .map_err(|e| anyhow::anyhow!("second manufacturer: {e}"))?;
        let m = &world.manufacturer;
        let issue = |m: &Manufacturer, n: u64, profile: &DeviceProfile| {
            m.issue_device(&m.device_serial(n), profile)
                .map_err(|e| anyhow::anyhow!("issuing device {n}: {e}"))
        };

        let mut plan = Vec::with_capacity(good as usize + 8);
        plan.push((revoked, Kind::Bad(REVOKED)));
        progress();
        for (n, profile, bad) in [
            (good + 3, DeviceProfile::expired(now), EXPIRED),
            (good + 4, DeviceProfile::not_yet_valid(now), NOT_YET_VALID),
            (
                good + 5,
                DeviceProfile::server_auth_only(now),
                SERVER_AUTH_ONLY,
            ),
            (blocked_n, DeviceProfile::standard(now), BLOCKED),
        ] {
            plan.push((issue(m, n, &profile)?, Kind::Bad(bad)));
            progress();
        }
        plan.push((
            issue(&rogue, 1, &DeviceProfile::standard(now))?,
            Kind::Bad(FOREIGN),
        ));
        progress();

        // The good devices, in contiguous runs of serial numbers, one per
        // thread (each identity is a P-256 key and a signature).
        let standard = DeviceProfile::standard(now);
        let threads = (threads.max(1) as u64).min(good.max(1));
        let runs: Vec<Result<Vec<Issued>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (from, to) = (1 + t * good / threads, 1 + (t + 1) * good / threads);
                    let (standard, issue) = (&standard, &issue);
                    s.spawn(move || {
                        (from..to)
                            .map(|n| {
                                let id = issue(m, n, standard)?;
                                let claim = if n % CLAIM_EVERY == 0 {
                                    let code = ClaimCode::generate()
                                        .map_err(|e| anyhow::anyhow!("claim code: {e}"))?;
                                    Some(code.hash())
                                } else {
                                    None
                                };
                                progress();
                                Ok((id, claim))
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("an issuing thread panicked")))
                })
                .collect()
        });
        let mut claims = Vec::new();
        // The clone copies the first good device and follows it.
        let mut first = true;
        for run in runs {
            for (id, claim) in run? {
                let claimed = claim.is_some();
                if let Some(hash) = claim {
                    claims.push((id.serial.clone(), hash));
                }
                let clone = std::mem::take(&mut first).then(|| DeviceIdentity {
                    serial: id.serial.clone(),
                    cert_serial: id.cert_serial.clone(),
                    chain: id.chain.clone(),
                    key: id.key.clone_key(),
                });
                plan.push((id, Kind::Good { claimed }));
                if let Some(twin) = clone {
                    plan.push((twin, Kind::Bad(CLONE)));
                    progress();
                }
            }
        }
        Ok(Self {
            world,
            credentials: owner_credentials(),
            plan,
            claims,
        })
    }

    /// Puts the owner in `store` and has it claim its devices (the factory
    /// exported the claim code hashes; the owner typed the codes).
    pub(super) fn enroll_owner(&self, store: &mut dyn Store) -> Result<()> {
        store
            .put_owner(Owner {
                id: OWNER.into(),
                name: "Acme Farms".into(),
                credentials: self.credentials.clone(),
            })
            .map_err(|e| anyhow::anyhow!("owner: {e}"))?;
        for (serial, hash) in &self.claims {
            let device = nido_net::DeviceId::new(self.world.manufacturer.name(), serial)?;
            store
                .add_claimable(&device, hash)
                .map_err(|e| anyhow::anyhow!("claims: {e}"))?;
            let claimed = store
                .claim(OWNER, hash)
                .map_err(|e| anyhow::anyhow!("claim: {e}"))?;
            anyhow::ensure!(claimed == device, "claimed {claimed}, not {device}");
        }
        Ok(())
    }
}

/// The owner's third-party credentials: an LwM2M server with a PSK and an
/// MQTT broker with a client certificate.
fn owner_credentials() -> Vec<ThirdPartyCredential> {
    vec![
        ThirdPartyCredential::Lwm2m {
            server_uri: "coaps://lwm2m.acme-farms.example:5684".into(),
            psk_identity: "acme-farms".into(),
            psk: zeroize::Zeroizing::new(b"acme-farms-psk-0".to_vec()),
        },
        ThirdPartyCredential::Mqtt {
            broker_uri: "mqtts://broker.acme-farms.example:8883".into(),
            client_id: "acme-farms-fleet".into(),
            client_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                .into(),
            client_key_pem: zeroize::Zeroizing::new(
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".into(),
            ),
        },
    ]
}
