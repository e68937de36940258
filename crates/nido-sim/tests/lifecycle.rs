//! A device's life after onboarding (issue #16), in simulated time: a
//! factory reset with proof of erasure re-provisions the subscription in
//! place without the operator, while a clone, a replayed or forged
//! receipt and another device's receipt still get #74.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use nido_net::{NetworkEvent, ResetSeen, Subscription, SubscriptionState};
use nido_pki::{DeviceIdentity, DeviceProfile};
use nido_prov::ErasureReceipt;
use nido_prov::package::{Binding, PublicPart, SealedPackage};
use nido_se::{Installed, MemorySe, SeAkaError, SeError, SecureElement};
use nido_sec::aka::UeAka;
use nido_sec::{Cause, KProv, Milenage, SqnWindow};
use nido_sim::Faults;
use nido_sim::Fleet;
use nido_sim::scenario::{self, NetworkOptions};
use nido_ue::{DeviceState, RejectMessage};

use common::{device_with, device_with_se, fleet, refusals, rejections, settle, world};

const HOUR: Duration = Duration::from_secs(3600);

/// A memory element that misbehaves as a test asks: its device presents
/// `receipt` in its provisioning requests (while it holds no subscription),
/// whatever its own history (what a clone or a forger would send), and it
/// reports its packages as valid `skew` seconds longer than they are (the
/// view of a device whose clock runs behind, which never renews in time).
struct Tweaked {
    inner: MemorySe,
    receipt: Option<ErasureReceipt>,
    skew: u64,
}

impl Tweaked {
    fn later(&self, mut public: PublicPart) -> PublicPart {
        public.not_after_unix += self.skew;
        public
    }
}

impl SecureElement for Tweaked {
    fn idevid_signer(&self) -> Arc<dyn rustls::sign::SigningKey> {
        self.inner.idevid_signer()
    }
    fn new_provisioning_key(&mut self) -> Result<[u8; 32], SeError> {
        self.inner.new_provisioning_key()
    }
    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
        k_prov: &KProv,
    ) -> Result<Installed, SeError> {
        let installed = self.inner.install_package(sealed, binding, k_prov)?;
        Ok(Installed {
            public: self.later(installed.public),
            ..installed
        })
    }
    fn has_subscription(&self) -> bool {
        self.inner.has_subscription()
    }
    fn installed(&self) -> Option<PublicPart> {
        self.inner.installed().map(|p| self.later(p))
    }
    fn erase_subscription(&mut self) {
        self.inner.erase_subscription();
    }
    fn reset(&mut self, serial: &str, erased_at_unix: u64) -> Result<ErasureReceipt, SeError> {
        self.inner.reset(serial, erased_at_unix)
    }
    fn erasure_receipt(&self) -> Option<ErasureReceipt> {
        match &self.receipt {
            Some(r) => (!self.inner.has_subscription()).then(|| r.clone()),
            None => self.inner.erasure_receipt(),
        }
    }
    fn authenticate(
        &mut self,
        rand: &[u8; 16],
        autn: &[u8; 16],
        snn: &[u8],
    ) -> Result<UeAka, SeAkaError> {
        self.inner.authenticate(rand, autn, snn)
    }
    fn sqn_window(&self) -> Option<SqnWindow> {
        self.inner.sqn_window()
    }
}

/// A device holding `id` (a copy of its IDevID) that presents `receipt`.
fn presenting(
    world: &nido_eap::fixtures::Onboarding,
    id: &DeviceIdentity,
    receipt: ErasureReceipt,
) -> nido_ue::Device {
    device_with_se(world, id, |inner| {
        Box::new(Tweaked {
            inner,
            receipt: Some(receipt),
            skew: 0,
        }) as Box<dyn SecureElement>
    })
}

/// Device 0 was told once, in `message` with #7 protected (so believed at
/// once), and the network said why: its package ended.
fn told_once_that_its_package_ended(fleet: &Fleet, message: RejectMessage) {
    assert_eq!(
        rejections(fleet, 0),
        [(message, Cause::SERVICES_NOT_ALLOWED)],
        "told once, protected (believed at once)"
    );
    let refused = refusals(fleet, 0);
    assert!(
        refused
            .iter()
            .any(|(_, cause, reason)| *cause == Cause::SERVICES_NOT_ALLOWED
                && reason.contains("ended")),
        "{refused:?}"
    );
}

fn subscriptions(fleet: &Fleet) -> Vec<Subscription> {
    fleet.network().store().subscriptions().unwrap()
}

/// Waits until device `i` got `n` rejections (or an hour passed).
fn rejected(fleet: &mut Fleet, i: usize, n: usize) {
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| rejections(f, i).len() >= n));
}

/// `receipt` signed again with the device's IDevID key (what a clone holding
/// a copy of that key can do).
fn signed_by(id: &DeviceIdentity, mut receipt: ErasureReceipt) -> ErasureReceipt {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, id.key.secret_pkcs8_der())
        .unwrap();
    receipt.signature = key
        .sign(&SystemRandom::new(), &receipt.signed_octets())
        .unwrap()
        .as_ref()
        .to_vec();
    receipt
}

/// The acceptance path and the clone: the device is reset with its
/// receipt, onboards again and gets a new K in the same subscription
/// without operator action; a clone that copied its IDevID before the
/// reset gets #74 before and after, and changes nothing.
#[test]
fn a_reset_device_gets_a_new_k_in_place_and_a_clone_still_gets_74() {
    let world = world();
    let m = &world.manufacturer;
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &[DeviceProfile::standard(world.now)],
        Faults::NONE,
        31,
    );
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let before = subscriptions(&fleet).pop().unwrap();

    // The clone (IDevID copied at the factory) has no receipt: #74.
    fleet.add_device(scenario::device(&world, &id, false).unwrap());
    fleet.power_on(1);
    rejected(&mut fleet, 1, 1);
    assert_eq!(
        rejections(&fleet, 1),
        [(
            RejectMessage::DeregistrationRequest,
            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
        )]
    );
    fleet.power_off(1);

    // The owner resets the device.
    fleet.advance(HOUR);
    let now = fleet.now();
    let receipt = fleet.device_mut(0).factory_reset(now).unwrap();
    assert_eq!(receipt.package_id, before.package_id);
    assert_eq!(receipt.counter, 1);
    assert!(!fleet.device(0).secure_element().has_subscription());
    assert!(fleet.device(0).subscription().is_none());
    assert_eq!(fleet.device(0).state(), DeviceState::Off);
    let delivered_before = fleet
        .network_events()
        .iter()
        .filter(|e| matches!(e, NetworkEvent::PackageDelivered { .. }))
        .count();
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert!(
        rejections(&fleet, 0).is_empty(),
        "{:?}",
        rejections(&fleet, 0)
    );

    let after = subscriptions(&fleet);
    assert_eq!(after.len(), 1, "never a second subscription");
    let after = &after[0];
    assert_eq!(after.supi, before.supi, "re-provisioned in place");
    assert!(after.k != before.k, "a new K");
    assert_ne!(after.package_id, before.package_id);
    assert_eq!(after.state, SubscriptionState::Active);
    assert_eq!(fleet.device(0).subscription().unwrap().supi, before.supi);
    assert_eq!(
        fleet.device(0).secure_element().erasure_receipt(),
        None,
        "spent by the new package"
    );
    let delivered: Vec<_> = fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::PackageDelivered {
                reprovisioned,
                after_reset,
                ..
            } => Some((*reprovisioned, *after_reset)),
            _ => None,
        })
        .skip(delivered_before)
        .collect();
    assert_eq!(
        delivered,
        [(
            true,
            Some(ResetSeen {
                resets: 1,
                erased_at_unix: receipt.erased_at_unix,
                signed: true,
            })
        )]
    );

    // The clone again, after the reset: still #74, nothing changed.
    fleet.power_on(1);
    rejected(&mut fleet, 1, 2);
    assert_eq!(
        rejections(&fleet, 1)[1],
        (
            RejectMessage::DeregistrationRequest,
            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
        )
    );
    assert!(fleet.device(1).subscription().is_none());
    let unchanged = subscriptions(&fleet).pop().unwrap();
    assert!(unchanged.k == after.k && unchanged.package_id == after.package_id);
    assert_eq!(unchanged.state, SubscriptionState::Active);
}

/// Receipts that do not prove the erasure of this device's current package
/// are refused with #74, protected, and change nothing: a replay of the
/// device's own receipt after the network re-provisioned, a forgery by a
/// clone that holds the IDevID key but never had K, a receipt made with K
/// but not signed by the device (an insider without the IDevID key),
/// one that verifies while the device is registered and sending (a copy of
/// its whole element), and another device's genuine receipt.
#[test]
fn replayed_forged_unsigned_and_foreign_receipts_get_74() {
    let world = world();
    let m = &world.manufacturer;
    let profile = DeviceProfile::standard(world.now);
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &[profile.clone(), profile.clone()],
        Faults::NONE,
        32,
    );
    let a = m.issue_device(&m.device_serial(1), &profile).unwrap();
    let b = m.issue_device(&m.device_serial(2), &profile).unwrap();
    fleet.power_on(0);
    fleet.power_on(1);
    assert!(settle(&mut fleet, &[0, 1]));

    // A is reset (a minute after its last burst) and re-provisioned: its
    // receipt is spent.
    fleet.advance(Duration::from_secs(60));
    let now = fleet.now();
    let old_receipt = fleet.device_mut(0).factory_reset(now).unwrap();
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let of = |fleet: &Fleet, serial: &str| {
        subscriptions(fleet)
            .into_iter()
            .find(|s| s.device.serial() == serial)
            .unwrap()
    };
    let a_now = of(&fleet, &a.serial);
    let b_now = of(&fleet, &b.serial);
    // Quiet for longer than the clone window: A is not "in use" (case 5).
    fleet.advance(Duration::from_secs(60));

    // 1. The replay: A's spent receipt, presented again by a copy of A.
    // 2. The forgery: for A's current package, signed with A's IDevID key,
    //    with a proof not made with K.
    let mut forged = old_receipt.clone();
    forged.package_id = a_now.package_id;
    forged.counter = 2;
    forged.proof = [0x5a; 32];
    let forged = signed_by(&a, forged);
    // 3. K right, signature not the device's (another key signs).
    let mut unsigned = old_receipt.clone();
    unsigned.package_id = a_now.package_id;
    unsigned.counter = 3;
    unsigned.proof = unsigned.proof_with(&Milenage::new(&a_now.k, &a_now.opc));
    // 5. A receipt that verifies (a copy of the whole element: K and the
    //    IDevID key) while A is registered and sending: a clone.
    let mut whole = unsigned.clone();
    whole.counter = 4;
    whole.proof = whole.proof_with(&Milenage::new(&a_now.k, &a_now.opc));
    let whole = signed_by(&a, whole);
    let unsigned = signed_by(&b, unsigned);
    // 4. Another device's receipt: a device with B's identity (whose
    //    subscription is active) presenting A's genuine receipt.

    let cases = [
        (old_receipt.clone(), "is for package"),
        (forged, "proof of the erased K does not verify"),
        (unsigned, "signature does not verify"),
    ];
    for (n, (receipt, why)) in cases.into_iter().enumerate() {
        let i = fleet.add_device(presenting(&world, &a, receipt));
        fleet.power_on(i);
        rejected(&mut fleet, i, 1);
        assert_eq!(
            rejections(&fleet, i),
            [(
                RejectMessage::DeregistrationRequest,
                Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
            )],
            "case {n}"
        );
        let refused = refusals(&fleet, i);
        assert!(
            refused.iter().any(|(_, cause, reason)| *cause
                == Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
                && reason.contains("erasure receipt refused")
                && reason.contains(why)),
            "case {n}: {refused:?}"
        );
        fleet.power_off(i);
    }
    // 5: A sends a burst (in use), the copy of its element presents a
    // receipt that would verify.
    fleet.send_data(0, b"t=21.5C").unwrap();
    fleet.advance(Duration::from_millis(200));
    let copy = fleet.add_device(presenting(&world, &a, whole));
    fleet.power_on(copy);
    rejected(&mut fleet, copy, 1);
    assert!(
        refusals(&fleet, copy)
            .iter()
            .any(|(_, _, reason)| reason.contains("registered and in use")),
        "{:?}",
        refusals(&fleet, copy)
    );
    assert!(fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::CloneSuspected { device, .. } if device.serial() == a.serial
    )));
    fleet.power_off(copy);

    let foreign = fleet.add_device(presenting(&world, &b, old_receipt));
    fleet.power_on(foreign);
    rejected(&mut fleet, foreign, 1);
    assert!(
        refusals(&fleet, foreign)
            .iter()
            .any(|(_, _, reason)| reason.contains("names device serial")),
        "{:?}",
        refusals(&fleet, foreign)
    );

    // Nothing changed: A keeps its current subscription, B its own.
    let a_end = of(&fleet, &a.serial);
    let b_end = of(&fleet, &b.serial);
    assert!(a_end.k == a_now.k && a_end.package_id == a_now.package_id);
    assert!(b_end.k == b_now.k && b_end.package_id == b_now.package_id);
    assert_eq!(subscriptions(&fleet).len(), 2);
    assert_eq!(
        fleet.device(0).state(),
        DeviceState::Active,
        "{:?}\n{:?}",
        rejections(&fleet, 0),
        refusals(&fleet, 0)
    );
}

/// A fleet on a network whose packages are valid for `validity`, with one
/// device (`timers`, its element `wrap`ped); the device is active once this
/// returns.
fn renewing_fleet(
    world: &nido_eap::fixtures::Onboarding,
    validity: Duration,
    timers: nido_ue::Timers,
    wrap: impl FnOnce(MemorySe) -> Box<dyn SecureElement>,
    seed: u64,
) -> Fleet {
    let options = NetworkOptions {
        validity,
        ..NetworkOptions::default()
    };
    let (mut fleet, _sink) = fleet(world, &options, &[], Faults::NONE, seed);
    let m = &world.manufacturer;
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    fleet.add_device(device_with(world, &id, timers, wrap));
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    fleet
}

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The device's `Renewing` events: (package erased, ended then, refused).
fn renewals(fleet: &Fleet, i: usize) -> Vec<([u8; 16], u64, bool)> {
    fleet
        .device_events(i)
        .iter()
        .filter_map(|e| match e {
            nido_ue::DeviceEvent::Renewing {
                package_id,
                not_after_unix,
                refused,
            } => Some((*package_id, *not_after_unix, *refused)),
            _ => None,
        })
        .collect()
}

/// The renewed subscription is the old one in place: one subscription, same
/// SUPI, a new K and package, valid for `validity` from the renewal, active,
/// and its delivery reported as after a reset (the receipt); the device
/// sees the new end `skew` seconds later.
fn assert_renewed(
    fleet: &Fleet,
    before: &Subscription,
    validity: Duration,
    renewed_at: u64,
    skew: u64,
) {
    let after = subscriptions(fleet);
    assert_eq!(after.len(), 1, "never a second subscription");
    let after = &after[0];
    assert_eq!(after.supi, before.supi, "renewed in place");
    assert!(after.k != before.k, "a new K");
    assert_ne!(after.package_id, before.package_id);
    assert_eq!(after.state, SubscriptionState::Active);
    let end = after.not_after_unix.unwrap();
    assert!(
        (renewed_at + validity.as_secs()..renewed_at + validity.as_secs() + 60).contains(&end),
        "valid for {validity:?} from the renewal at {renewed_at}: {end}"
    );
    assert_eq!(
        fleet.device(0).subscription().unwrap().not_after_unix,
        end + skew,
        "the device holds the new package"
    );
    let last = fleet
        .network_events()
        .iter()
        .rev()
        .find_map(|e| match e {
            NetworkEvent::PackageDelivered {
                reprovisioned,
                after_reset,
                ..
            } => Some((*reprovisioned, after_reset.is_some())),
            _ => None,
        })
        .unwrap();
    assert_eq!(last, (true, true), "re-provisioned on the erasure receipt");
}

/// Issue #16 item 5, before the end: a device whose package ends within
/// `renew_before` renews it at its next registration (erasure receipt, new
/// K, same SUPI, a new validity) and is never refused.
#[test]
fn a_device_renews_its_package_before_it_ends() {
    let world = world();
    let validity = 2 * HOUR;
    let timers = nido_ue::Timers {
        renew_before: HOUR / 2,
        ..nido_ue::Timers::default()
    };
    let mut fleet = renewing_fleet(&world, validity, timers, |se| Box::new(se), 41);
    let before = subscriptions(&fleet).pop().unwrap();
    let start = unix(world.now);
    let end = before
        .not_after_unix
        .expect("the store keeps the package's end");
    assert!((start + 7200..start + 7260).contains(&end), "{end}");
    assert_eq!(fleet.device(0).subscription().unwrap().not_after_unix, end);

    // Outside the window, a registration changes nothing.
    fleet.power_off(0);
    fleet.advance(HOUR);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert!(renewals(&fleet, 0).is_empty());
    assert_eq!(subscriptions(&fleet)[0].package_id, before.package_id);

    // Inside it (20 minutes before the end), the device renews.
    fleet.power_off(0);
    fleet.advance(HOUR / 3 + HOUR / 6 + Duration::from_secs(300));
    let renewed_at = unix(fleet.now());
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(renewals(&fleet, 0), [(before.package_id, end, false)]);
    assert!(
        rejections(&fleet, 0).is_empty(),
        "{:?}",
        rejections(&fleet, 0)
    );
    assert_renewed(&fleet, &before, validity, renewed_at, 0);
}

/// Issue #16 item 5, after the end: a device that missed its window (here
/// one whose clock runs a day behind) is refused with an integrity-protected #7
/// when it registers with the ended package, erases it and renews; the
/// network never accepts the ended package.
#[test]
fn an_ended_package_is_refused_with_7_and_the_device_renews() {
    let world = world();
    let validity = 2 * HOUR;
    let timers = nido_ue::Timers {
        renew_before: HOUR / 2,
        ..nido_ue::Timers::default()
    };
    let mut fleet = renewing_fleet(
        &world,
        validity,
        timers,
        |inner| {
            Box::new(Tweaked {
                inner,
                receipt: None,
                skew: 86_400,
            })
        },
        43,
    );
    let before = subscriptions(&fleet).pop().unwrap();
    let end = before.not_after_unix.unwrap();

    fleet.power_off(0);
    fleet.advance(2 * HOUR + Duration::from_secs(120));
    let refused_at = unix(fleet.now());
    assert!(refused_at > end);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    told_once_that_its_package_ended(&fleet, RejectMessage::RegistrationReject);
    assert_eq!(
        renewals(&fleet, 0),
        [(before.package_id, end + 86_400, true)],
        "the end as the device saw it"
    );
    assert_renewed(&fleet, &before, validity, refused_at, 86_400);
}

/// A device registered when its package ends (the operator's rekey or
/// owner release, or its validity) does not wait for its next
/// registration: the driver hands the network the ended SUPIs
/// ([`nido_net::Network::end_registrations`]) and the network deregisters
/// it, protected, with #7; the device erases the package with its receipt
/// and renews it at once. A SUPI registered nowhere is left alone.
#[test]
fn a_registered_device_whose_package_ends_is_deregistered_and_renews() {
    let world = world();
    let validity = Duration::from_secs(365 * 86_400);
    let mut fleet = renewing_fleet(
        &world,
        validity,
        nido_ue::Timers::default(),
        |inner| Box::new(inner),
        44,
    );
    // The data session comes up right after the registration.
    fleet.advance(Duration::from_secs(5));
    let before = subscriptions(&fleet).pop().unwrap();
    let now = fleet.now();
    // Nobody registered with this one: nothing is sent.
    let stranger = nido_sec::Supi::parse("imsi-999990000099999").unwrap();
    let sent = fleet.link_stats().sent;
    fleet.network_mut().end_registrations(now, &[stranger]);
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.link_stats().sent, sent);
    assert!(rejections(&fleet, 0).is_empty());

    let mut ended = before.clone();
    ended.not_after_unix = Some(unix(fleet.now()) - 1);
    fleet
        .network_mut()
        .store_mut()
        .put_subscription(ended)
        .unwrap();
    let now = fleet.now();
    fleet
        .network_mut()
        .end_registrations(now, std::slice::from_ref(&before.supi));
    fleet.pump();
    fleet.advance(Duration::from_secs(5));
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    told_once_that_its_package_ended(&fleet, RejectMessage::DeregistrationRequest);
    assert_eq!(renewals(&fleet, 0).len(), 1);
    assert!(renewals(&fleet, 0)[0].2, "renewed as refused");
    assert_renewed(&fleet, &before, validity, unix(now), 0);
}

/// Issue #16 item 4, SUCI key rotation in simulated time: the operator adds
/// key 2 (handed to devices from then on; key 1 still de-conceals) and ends
/// the packages carrying key 1; the device renews at its next registration
/// and gets key 2; key 1 is retired and the device registers again, which
/// it can only do by concealing with key 2.
#[test]
fn a_suci_key_rotation_moves_a_device_to_the_new_key() {
    use nido_sec::suci::{HomeNetworkKey, Profile};
    let world = world();
    let key = |profile, id| {
        let k = HomeNetworkKey::generate(profile, id).unwrap();
        let private = k.private_octets().unwrap();
        move || HomeNetworkKey::from_private(profile, id, &private).unwrap()
    };
    let (old, new) = (key(Profile::A, 1), key(Profile::B, 2));
    let network = scenario::network_with_store_and_key(
        &world,
        &NetworkOptions::default(),
        Box::new(nido_net::MemorySink::new()),
        Box::new(nido_net::MemoryStore::new(1_000)),
        old(),
    )
    .unwrap();
    let link = nido_sim::Link::new(Faults::NONE, Faults::NONE, 47).unwrap();
    let mut fleet = Fleet::new(network, link, world.now, true);
    let m = &world.manufacturer;
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    fleet.add_device(scenario::device(&world, &id, false).unwrap());
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    let before = subscriptions(&fleet).pop().unwrap();
    assert_eq!(before.suci_key_id, Some(1));
    assert_eq!(
        fleet
            .device(0)
            .subscription()
            .unwrap()
            .home_network_key
            .key_id,
        1
    );

    // Key 2 first, key 1 kept; the package carrying key 1 ends now.
    fleet.power_off(0);
    fleet
        .network_mut()
        .set_home_network_keys(vec![new(), old()]);
    let now = unix(fleet.now());
    let mut ended = before.clone();
    ended.not_after_unix = Some(now - 1);
    fleet
        .network_mut()
        .store_mut()
        .put_subscription(ended)
        .unwrap();
    fleet.advance(HOUR);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(renewals(&fleet, 0).len(), 1);
    let renewed = subscriptions(&fleet).pop().unwrap();
    assert_eq!(renewed.supi, before.supi);
    assert_eq!(
        renewed.suci_key_id,
        Some(2),
        "the new package carries key 2"
    );
    let public = &fleet.device(0).subscription().unwrap().home_network_key;
    assert_eq!((public.key_id, public.profile), (2, Profile::B));

    // Key 1 retired: the device still registers (its SUCI names key 2).
    fleet.power_off(0);
    fleet.network_mut().set_home_network_keys(vec![new()]);
    fleet.advance(HOUR);
    let rejected_before = rejections(&fleet, 0).len();
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(rejections(&fleet, 0).len(), rejected_before);
    assert_eq!(renewals(&fleet, 0).len(), 1, "no second renewal");
}

/// A network whose packages are valid for less than the devices' renewal
/// window: a device does not renew its fresh package at every
/// registration (it has held it for less than the window), and renews it
/// when the network refuses it as ended.
#[test]
fn a_package_shorter_than_the_window_is_not_renewed_at_every_registration() {
    let world = world();
    let timers = nido_ue::Timers {
        renew_before: HOUR / 2,
        ..nido_ue::Timers::default()
    };
    let mut fleet = renewing_fleet(&world, HOUR / 3, timers, |se| Box::new(se), 53);
    for _ in 0..2 {
        fleet.power_off(0);
        fleet.advance(Duration::from_secs(300));
        fleet.power_on(0);
        assert!(settle(&mut fleet, &[0]));
        assert_eq!(fleet.device(0).state(), DeviceState::Active);
    }
    assert!(renewals(&fleet, 0).is_empty(), "{:?}", renewals(&fleet, 0));
    // Past its end (20 minutes after delivery), held for less than the
    // window (25 minutes): not renewed early, so refused, then renewed.
    fleet.power_off(0);
    fleet.advance(HOUR / 4);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let renewed = renewals(&fleet, 0);
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert!(renewed[0].2, "refused as ended");
}
