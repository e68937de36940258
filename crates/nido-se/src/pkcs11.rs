//! [`Pkcs11Se`]: a secure element in a PKCS#11 token (a hardware token,
//! an embedded secure element with a PKCS#11 module, or SoftHSM2 in tests).
//!
//! ## What lives where
//!
//! | secret | where | how it is used |
//! |---|---|---|
//! | IDevID private key (ECDSA P-256) | token: `CKO_PRIVATE_KEY`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, label [`IDEVID_LABEL`] | TLS CertificateVerify: SHA-256 on the host, `CKM_ECDSA` in the token (SoftHSM2 refuses `CKM_ECDSA_SHA256`), raw r‖s turned into DER on the host |
//! | K | token: `CKO_SECRET_KEY`/`CKK_AES`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, `CKA_ENCRYPT` only, label [`K_LABEL`] | every E_K of MILENAGE (TS 35.206 §4.1) is one `CKM_AES_ECB` block encryption in the token |
//! | OPc | token: private `CKO_DATA`, label [`OPC_LABEL`] | read after login for each challenge and XORed on the host (MILENAGE uses OPc only as XOR input and output of E_K) |
//! | SQN window (TS 33.102 Annex C.2) | token: private `CKO_DATA`, label [`SQN_WINDOW_LABEL`] | replaced (new object, then the old one destroyed) *before* RES* is returned |
//! | public part of the package | token: private `CKO_DATA`, label [`SUBSCRIPTION_LABEL`] | the package's CBOR with K and OPc zeroed; it is the commit record of an installation |
//! | last erasure receipt and count of resets (not secret) | token: private `CKO_DATA`, label [`ERASURE_LABEL`], `CKA_ID`-like id = the erased package id | created before the subscription's objects are destroyed by [`SecureElement::reset`]; a new one replaces it at the next reset |
//! | provisioning X25519 key | **host memory only** | HPKE opening needs X25519, which PKCS#11 tokens rarely offer; the key exists for one provisioning, is never written anywhere, and a restart forgets it (the device then asks for a package again with a new key) |
//!
//! So K never leaves the token: on [`SecureElement::install_package`] the
//! package is opened on the host (HPKE), K is created in the token, and the
//! host copies of K and OPc are zeroized. The IDevID key is imported once
//! from the factory PKCS#8 by [`Pkcs11Se::create`].
//!
//! ## Crash safety
//!
//! Token objects are written one at a time, so an installation is ordered
//! to be all or nothing: K, OPc and the window of the new subscription are
//! created under a fresh random installation id; then the old
//! subscription's commit record is destroyed, then its objects; then the
//! new commit record is created. [`Pkcs11Se::open`] takes the subscription
//! whose commit record exists and destroys objects of any other
//! installation, so after a power cut the element holds the old
//! subscription, the new one, or (if the cut fell between the two commit
//! records) none — never a mixture. A window update creates the new window
//! object before it destroys the old one; if both survive a power cut,
//! `open` keeps their slot-by-slot maximum (windows only grow, so that is
//! the newer one). A reset creates its receipt object first, then erases
//! the subscription; `open` finishes a reset cut in between (a committed
//! subscription whose package the newest receipt names is erased).
//!
//! ## Limits
//!
//! - One [`Pkcs11Se`] per token at a time; the PKCS#11 module is loaded and
//!   initialised once per process and stays so.
//! - `cryptoki` copies attribute values and AES outputs through buffers it
//!   does not zeroize (OPc as read back, the intermediate MILENAGE blocks);
//!   nido zeroizes every copy it owns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use nido_prov::ErasureReceipt;
use nido_prov::package::{Binding, CredentialPackage, PackageSecrets, PublicPart, SealedPackage};
use nido_sec::aka::UeAka;
use nido_sec::{K, KProv, Opc, PrivateKey32, SqnWindow};
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::{SignatureAlgorithm, SignatureScheme};
use zeroize::{Zeroize, Zeroizing};

use crate::milenage::{self, BlockCipher, Milenage};
use crate::{Installed, SeAkaError, SeError, SecureElement};

/// Where Debian's `softhsm2` package installs the SoftHSM2 PKCS#11 module.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// `CKA_LABEL` of the IDevID private key and of its public key.
pub const IDEVID_LABEL: &str = "nido-idevid";
/// `CKA_LABEL` of K (a secret AES key object).
pub const K_LABEL: &str = "nido-k";
/// `CKA_LABEL` of the OPc data object.
pub const OPC_LABEL: &str = "nido-opc";
/// `CKA_LABEL` of the SQN window data object.
pub const SQN_WINDOW_LABEL: &str = "nido-sqn-window";
/// `CKA_LABEL` of the subscription's commit record (its public part).
pub const SUBSCRIPTION_LABEL: &str = "nido-subscription";
/// `CKA_LABEL` of the erasure data object (count of resets ‖ last receipt).
pub const ERASURE_LABEL: &str = "nido-erasure";
/// `CKA_APPLICATION` of nido's data objects.
pub const APPLICATION: &str = "nido-se";

/// DER of the prime256v1 OID (`CKA_EC_PARAMS`).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// SubjectPublicKeyInfo prefix for an uncompressed P-256 point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The version octet that starts nido's data object values.
const DATA_VERSION: u8 = 1;
const WINDOW_LEN: usize = 32 * 8 + 8;

/// Which token, and how to log in.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The label of the initialised token.
    pub token_label: String,
    /// The user PIN.
    pub user_pin: Zeroizing<String>,
}

impl core::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("user_pin", &"[redacted]")
            .finish()
    }
}

impl Pkcs11Config {
    /// A configuration for `module`, the token labelled `token_label`, logging in with `user_pin`.
    pub fn new(module: impl Into<PathBuf>, token_label: &str, user_pin: &str) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.to_owned(),
            user_pin: Zeroizing::new(user_pin.to_owned()),
        }
    }

    /// SoftHSM2 as Debian installs it ([`SOFTHSM2_MODULE`]); the token
    /// directory comes from the `SOFTHSM2_CONF` file.
    pub fn softhsm2(token_label: &str, user_pin: &str) -> Self {
        Self::new(SOFTHSM2_MODULE, token_label, user_pin)
    }
}

fn ck(op: &'static str, e: CkError) -> SeError {
    let reason = match e {
        CkError::Pkcs11(rv, function) => format!("{function} returned {rv:?}"),
        other => other.to_string(),
    };
    SeError::Token { op, reason }
}

fn malformed(op: &'static str, what: &str) -> SeError {
    SeError::Token {
        op,
        reason: format!("token content is not what nido stored: {what}"),
    }
}

/// The process-wide context of a module: loaded and initialised once.
fn context(module: &Path) -> Result<Pkcs11, SeError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| SeError::Token {
        op: "load module",
        reason: format!("{}: {e}", module.display()),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("C_Initialize", e)),
    }
    contexts.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A logged-in read-write session on the token, shared by the element and
/// its signer. `Session` is `Send` but not `Sync`: the mutex makes the
/// signer usable from any thread, one token call at a time.
struct Token {
    label: String,
    session: Mutex<Session>,
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Token {
    fn open(config: &Pkcs11Config) -> Result<Self, SeError> {
        let ctx = context(&config.module)?;
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| ck("C_GetSlotList", e))?;
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| ck("C_GetTokenInfo", e))?;
            if info.label().trim_end() == config.token_label {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| SeError::TokenNotFound {
            module: config.module.clone(),
            label: config.token_label.clone(),
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| ck("C_OpenSession", e))?;
        let pin = AuthPin::from(config.user_pin.as_str());
        match session.login(UserType::User, Some(&pin)) {
            // Login state is per application: another session of this
            // process may have logged in already.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(ck("C_Login", e)),
        }
        Ok(Self {
            label: config.token_label.clone(),
            session: Mutex::new(session),
        })
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves no half-done token call
        // that a later call could observe: PKCS#11 calls are atomic.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn find(session: &Session, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>, SeError> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| ck("C_FindObjects", e))
}

/// Reads one attribute; `None` if the token does not return it.
fn attribute(
    session: &Session,
    object: ObjectHandle,
    which: AttributeType,
) -> Result<Option<Attribute>, SeError> {
    Ok(session
        .get_attributes(object, &[which])
        .map_err(|e| ck("C_GetAttributeValue", e))?
        .into_iter()
        .next())
}

fn zeroize_values(template: &mut [Attribute]) {
    for a in template {
        if let Attribute::Value(v) = a {
            v.zeroize();
        }
    }
}

/// Creates a private token data object holding `DATA_VERSION ‖ id ‖ payload`.
fn create_data(
    session: &Session,
    label: &str,
    id: &[u8; 16],
    payload: &[u8],
) -> Result<ObjectHandle, SeError> {
    let mut value = Vec::with_capacity(1 + 16 + payload.len());
    value.push(DATA_VERSION);
    value.extend_from_slice(id);
    value.extend_from_slice(payload);
    let mut template = vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Application(APPLICATION.as_bytes().to_vec()),
        Attribute::Value(value),
    ];
    let created = session.create_object(&template);
    zeroize_values(&mut template);
    created.map_err(|e| ck("C_CreateObject", e))
}

/// Reads a data object written by [`create_data`]: (id, payload).
fn read_data(
    session: &Session,
    object: ObjectHandle,
) -> Result<([u8; 16], Zeroizing<Vec<u8>>), SeError> {
    let Some(Attribute::Value(value)) = attribute(session, object, AttributeType::Value)? else {
        return Err(malformed("read data object", "no value"));
    };
    let value = Zeroizing::new(value);
    if value.len() < 17 || value[0] != DATA_VERSION {
        return Err(malformed("read data object", "unknown data object format"));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&value[1..17]);
    Ok((id, Zeroizing::new(value[17..].to_vec())))
}

fn encode_window(window: &SqnWindow) -> Vec<u8> {
    let mut out = Vec::with_capacity(WINDOW_LEN);
    for seq in window.seqs() {
        out.extend_from_slice(&seq.to_be_bytes());
    }
    out.extend_from_slice(&window.delta.to_be_bytes());
    out
}

fn decode_window(bytes: &[u8]) -> Result<SqnWindow, SeError> {
    if bytes.len() != WINDOW_LEN {
        return Err(malformed("read SQN window", "window length"));
    }
    let mut seqs = [0u64; 32];
    for (seq, chunk) in seqs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *seq = u64::from_be_bytes(b);
    }
    let mut d = [0u8; 8];
    d.copy_from_slice(&bytes[32 * 8..]);
    Ok(SqnWindow::from_seqs(seqs, u64::from_be_bytes(d)))
}

/// Slot-by-slot maximum: of two windows the element held, the newer one.
fn newest(a: &SqnWindow, b: &SqnWindow) -> SqnWindow {
    let mut seqs = *a.seqs();
    for (s, o) in seqs.iter_mut().zip(b.seqs()) {
        *s = (*s).max(*o);
    }
    SqnWindow::from_seqs(seqs, a.delta.max(b.delta))
}

/// DER `ECDSA-Sig-Value` (RFC 3279) from the raw r ‖ s of `CKM_ECDSA`.
fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    fn integer(out: &mut Vec<u8>, x: &[u8]) {
        let start = x.iter().position(|b| *b != 0).unwrap_or(x.len() - 1);
        let x = &x[start..];
        let pad = x[0] & 0x80 != 0;
        out.push(0x02);
        out.push((x.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
    }
    let mut body = Vec::with_capacity(72);
    integer(&mut body, &raw[..32]);
    integer(&mut body, &raw[32..]);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    Some(out)
}

/// The IDevID key in the token, as rustls's [`rustls::sign::SigningKey`]:
/// ECDSA P-256 with SHA-256 (TLS 1.3 `ecdsa_secp256r1_sha256`).
#[derive(Debug)]
struct TokenSigningKey {
    token: Arc<Token>,
    key: ObjectHandle,
    spki: Vec<u8>,
}

impl rustls::sign::SigningKey for TokenSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| {
                Box::new(TokenSigner {
                    token: self.token.clone(),
                    key: self.key,
                }) as Box<dyn rustls::sign::Signer>
            })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct TokenSigner {
    token: Arc<Token>,
    key: ObjectHandle,
}

impl rustls::sign::Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let raw = self
            .token
            .session()
            .sign(&Mechanism::Ecdsa, self.key, digest.as_ref())
            .map_err(|e| rustls::Error::General(format!("PKCS#11 C_Sign: {e}")))?;
        ecdsa_der(&raw).ok_or_else(|| {
            rustls::Error::General(format!(
                "PKCS#11 CKM_ECDSA returned {} octets, not 64",
                raw.len()
            ))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// E_K in the token: one `CKM_AES_ECB` block encryption under K.
struct TokenAes<'a> {
    session: &'a Session,
    k: ObjectHandle,
}

impl BlockCipher for TokenAes<'_> {
    fn encrypt_block(&self, block: &[u8; 16]) -> Result<Zeroizing<[u8; 16]>, SeError> {
        let out = Zeroizing::new(
            self.session
                .encrypt(&Mechanism::AesEcb, self.k, block)
                .map_err(|e| ck("C_Encrypt (AES-ECB under K)", e))?,
        );
        let mut block = Zeroizing::new([0u8; 16]);
        if out.len() != 16 {
            return Err(malformed("C_Encrypt (AES-ECB under K)", "not one block"));
        }
        block.copy_from_slice(&out);
        Ok(block)
    }
}

/// An installed subscription: its token objects and cached public state.
struct Subscription {
    id: [u8; 16],
    k: ObjectHandle,
    opc: ObjectHandle,
    window_object: ObjectHandle,
    window: SqnWindow,
    record: ObjectHandle,
    public: PublicPart,
}

impl Subscription {
    /// OPc, read from its data object (which must be this installation's).
    fn read_opc(&self, session: &Session) -> Result<Zeroizing<[u8; 16]>, SeError> {
        let (id, opc) = read_data(session, self.opc)?;
        if id != self.id || opc.len() != 16 {
            return Err(malformed("read OPc", "not this subscription's OPc"));
        }
        let mut block = Zeroizing::new([0u8; 16]);
        block.copy_from_slice(&opc);
        Ok(block)
    }
}

/// A secure element in a PKCS#11 token (see the [module documentation](self)).
pub struct Pkcs11Se {
    token: Arc<Token>,
    idevid: Arc<TokenSigningKey>,
    provisioning: Option<PrivateKey32>,
    subscription: Option<Subscription>,
    erasure: Option<Erasure>,
}

/// The erasure object: the count of resets and the last receipt, until a
/// new package spends it.
struct Erasure {
    object: ObjectHandle,
    resets: u64,
    receipt: Option<ErasureReceipt>,
}

/// The erasure object's value: the count of resets ‖ the receipt's CBOR
/// (nothing once spent).
fn erasure_payload(resets: u64, receipt: Option<&ErasureReceipt>) -> Vec<u8> {
    let mut payload = resets.to_be_bytes().to_vec();
    if let Some(r) = receipt {
        payload.extend_from_slice(&r.encode());
    }
    payload
}

/// Finds the erasure objects, keeps the newest (the highest count; a reset
/// cut short may leave two) and destroys the others.
fn load_erasure(session: &Session) -> Result<Option<Erasure>, SeError> {
    let mut newest: Option<Erasure> = None;
    for object in find(session, ObjectClass::DATA, ERASURE_LABEL)? {
        let (_, payload) = read_data(session, object)?;
        let (count, cbor) = payload
            .split_first_chunk::<8>()
            .ok_or_else(|| malformed("open", "erasure object too short"))?;
        let receipt = (!cbor.is_empty())
            .then(|| ErasureReceipt::decode(cbor))
            .transpose()
            .map_err(|e| malformed("open", &format!("erasure receipt: {e}")))?;
        let this = Erasure {
            object,
            resets: u64::from_be_bytes(*count),
            receipt,
        };
        let older = match newest.take() {
            // The higher count wins; at an equal count (a spending cut
            // short) the spent one.
            Some(n) if (n.resets, n.receipt.is_none()) >= (this.resets, this.receipt.is_none()) => {
                newest = Some(n);
                this
            }
            other => {
                newest = Some(this);
                match other {
                    Some(o) => o,
                    None => continue,
                }
            }
        };
        session
            .destroy_object(older.object)
            .map_err(|e| ck("C_DestroyObject (superseded erasure receipt)", e))?;
    }
    Ok(newest)
}

impl core::fmt::Debug for Pkcs11Se {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pkcs11Se")
            .field("token", &self.token.label)
            .field("provisioning_key", &self.provisioning.is_some())
            .field("subscription", &self.subscription.is_some())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Se {
    /// Factory provisioning: imports the IDevID private key (ECDSA P-256,
    /// PKCS#8 from the factory bundle) into the token as a sensitive,
    /// non-extractable signing key, with its public key beside it. Refuses
    /// a token that holds an IDevID key already.
    pub fn create(config: &Pkcs11Config, idevid_key: &PrivateKeyDer<'_>) -> Result<Self, SeError> {
        let PrivateKeyDer::Pkcs8(pkcs8) = idevid_key else {
            return Err(SeError::IdentityKey(
                "the PKCS#11 element imports PKCS#8 keys only".into(),
            ));
        };
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.secret_pkcs8_der())
                .map_err(|_| {
                    SeError::IdentityKey("the PKCS#11 element holds ECDSA P-256 keys only".into())
                })?;
        let scalar = pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| SeError::IdentityKey("private scalar".into()))?;
        let scalar = Zeroizing::new(scalar.as_ref().to_vec());
        let point = pair.public_key().as_ref().to_vec();

        let token = Arc::new(Token::open(config)?);
        let session = token.session();
        if !find(&session, ObjectClass::PRIVATE_KEY, IDEVID_LABEL)?.is_empty() {
            return Err(SeError::IdentityKey(format!(
                "token {:?} holds an IDevID key already (use Pkcs11Se::open)",
                config.token_label
            )));
        }
        let id =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &point).as_ref()[..16].to_vec();
        let mut ec_point = vec![0x04, point.len() as u8];
        ec_point.extend_from_slice(&point);
        let public = session
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(P256_PARAMS.to_vec()),
                Attribute::EcPoint(ec_point),
                Attribute::Label(IDEVID_LABEL.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ])
            .map_err(|e| ck("C_CreateObject (IDevID public key)", e))?;
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Derive(false),
            Attribute::Unwrap(false),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Value(scalar.to_vec()),
            Attribute::Label(IDEVID_LABEL.as_bytes().to_vec()),
            Attribute::Id(id),
        ];
        let created = session.create_object(&template);
        zeroize_values(&mut template);
        if let Err(e) = created {
            // Leave no half-imported identity behind.
            let _ = session.destroy_object(public);
            return Err(ck("C_CreateObject (IDevID private key)", e));
        }
        drop(session);
        Self::load(token)
    }

    /// Opens the element in the token of `config`: finds the IDevID key and
    /// the committed subscription, and removes leftovers of an interrupted
    /// installation or erasure (see the module documentation).
    pub fn open(config: &Pkcs11Config) -> Result<Self, SeError> {
        Self::load(Arc::new(Token::open(config)?))
    }

    fn load(token: Arc<Token>) -> Result<Self, SeError> {
        let session = token.session();
        let keys = find(&session, ObjectClass::PRIVATE_KEY, IDEVID_LABEL)?;
        let [key] = keys.as_slice() else {
            return Err(SeError::IdentityKey(format!(
                "token {:?} holds {} IDevID private keys, not one",
                token.label,
                keys.len()
            )));
        };
        let publics = find(&session, ObjectClass::PUBLIC_KEY, IDEVID_LABEL)?;
        let [public] = publics.as_slice() else {
            return Err(SeError::IdentityKey(format!(
                "token {:?} holds {} IDevID public keys, not one",
                token.label,
                publics.len()
            )));
        };
        let Some(Attribute::EcPoint(ec_point)) =
            attribute(&session, *public, AttributeType::EcPoint)?
        else {
            return Err(malformed("read IDevID public key", "no CKA_EC_POINT"));
        };
        // CKA_EC_POINT is a DER OCTET STRING; some tokens store the raw point.
        let point = match ec_point.as_slice() {
            [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
            raw if raw.len() == 65 && raw[0] == 0x04 => raw,
            _ => return Err(malformed("read IDevID public key", "not a P-256 point")),
        };
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        let idevid = Arc::new(TokenSigningKey {
            token: token.clone(),
            key: *key,
            spki,
        });
        let subscription = load_subscription(&session)?;
        let erasure = load_erasure(&session)?;
        drop(session);
        let mut se = Self {
            token,
            idevid,
            provisioning: None,
            subscription,
            erasure,
        };
        // A reset cut between its receipt and the erasure: finish it.
        let unfinished = matches!(
            (&se.subscription, &se.erasure),
            (Some(sub), Some(Erasure { receipt: Some(r), .. })) if r.package_id == sub.public.package_id
        );
        if unfinished {
            se.try_erase_subscription()?;
        }
        Ok(se)
    }

    /// Erases the subscription from the token, reporting a token error. The
    /// subscription is forgotten in memory either way; objects a failed
    /// erasure left behind are removed by the next [`Pkcs11Se::open`] if
    /// its commit record is gone.
    pub fn try_erase_subscription(&mut self) -> Result<(), SeError> {
        let Some(sub) = self.subscription.take() else {
            return Ok(());
        };
        let session = self.token.session();
        session
            .destroy_object(sub.record)
            .map_err(|e| ck("C_DestroyObject (commit record)", e))?;
        let mut result = Ok(());
        for object in [sub.k, sub.opc, sub.window_object] {
            if let Err(e) = session.destroy_object(object) {
                result = Err(ck("C_DestroyObject", e));
            }
        }
        result
    }
}

/// Finds the committed subscription and destroys objects of any other
/// installation.
fn load_subscription(session: &Session) -> Result<Option<Subscription>, SeError> {
    let mut records = Vec::new();
    for object in find(session, ObjectClass::DATA, SUBSCRIPTION_LABEL)? {
        let (id, payload) = read_data(session, object)?;
        records.push((object, id, payload));
    }
    if records.len() > 1 {
        return Err(malformed(
            "open",
            "several committed subscriptions (nido never leaves two)",
        ));
    }
    let committed = records.first().map(|(_, id, _)| *id);

    let mut ks = Vec::new();
    for object in find(session, ObjectClass::SECRET_KEY, K_LABEL)? {
        let Some(Attribute::Id(id)) = attribute(session, object, AttributeType::Id)? else {
            return Err(malformed("open", "K without CKA_ID"));
        };
        ks.push((object, id));
    }
    let mut opcs = Vec::new();
    for object in find(session, ObjectClass::DATA, OPC_LABEL)? {
        let (id, _) = read_data(session, object)?;
        opcs.push((object, id));
    }
    let mut windows = Vec::new();
    for object in find(session, ObjectClass::DATA, SQN_WINDOW_LABEL)? {
        let (id, payload) = read_data(session, object)?;
        windows.push((object, id, decode_window(&payload)?));
    }

    // Leftovers of another installation (uncommitted, or an old one).
    let mine = |id: &[u8]| committed.is_some_and(|c| c.as_slice() == id);
    let leftovers = ks
        .iter()
        .filter(|(_, id)| !mine(id))
        .map(|(o, _)| *o)
        .chain(opcs.iter().filter(|(_, id)| !mine(id)).map(|(o, _)| *o))
        .chain(
            windows
                .iter()
                .filter(|(_, id, _)| !mine(id))
                .map(|(o, _, _)| *o),
        )
        .collect::<Vec<_>>();
    for object in leftovers {
        session.destroy_object(object).map_err(|e| {
            ck(
                "C_DestroyObject (leftover of an interrupted installation)",
                e,
            )
        })?;
    }

    let Some((record, id, payload)) = records.into_iter().next() else {
        return Ok(None);
    };
    let k = ks
        .iter()
        .filter(|(_, i)| mine(i))
        .map(|(o, _)| *o)
        .collect::<Vec<_>>();
    let opc = opcs
        .iter()
        .filter(|(_, i)| mine(i))
        .map(|(o, _)| *o)
        .collect::<Vec<_>>();
    let (&[k], &[opc]) = (k.as_slice(), opc.as_slice()) else {
        return Err(malformed(
            "open",
            "the committed subscription lacks K or OPc, or has several",
        ));
    };
    let mut mine_windows = windows.into_iter().filter(|(_, i, _)| mine(i));
    let Some((mut window_object, _, mut window)) = mine_windows.next() else {
        return Err(malformed(
            "open",
            "the committed subscription has no SQN window",
        ));
    };
    // A window update cut short leaves two: keep the newer, destroy the other.
    for (object, _, w) in mine_windows {
        let merged = newest(&window, &w);
        let (keep, drop_object) = if merged == w {
            (object, window_object)
        } else {
            (window_object, object)
        };
        window = merged;
        window_object = keep;
        session
            .destroy_object(drop_object)
            .map_err(|e| ck("C_DestroyObject (superseded SQN window)", e))?;
    }
    let package = CredentialPackage::from_cbor(&payload)
        .map_err(|e| malformed("open", &format!("commit record: {e}")))?;
    let (_, public) = package.split();
    Ok(Some(Subscription {
        id,
        k,
        opc,
        window_object,
        window,
        record,
        public,
    }))
}

/// Creates K, OPc and the window of a new installation; on failure destroys
/// what it created.
fn create_subscription_objects(
    session: &Session,
    id: &[u8; 16],
    secrets: &PackageSecrets,
    window: &SqnWindow,
) -> Result<(ObjectHandle, ObjectHandle, ObjectHandle), SeError> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Value(secrets.k.expose().to_vec()),
        Attribute::Label(K_LABEL.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    let k = session.create_object(&template);
    zeroize_values(&mut template);
    let k = k.map_err(|e| ck("C_CreateObject (K)", e))?;
    let opc = match create_data(session, OPC_LABEL, id, secrets.opc.expose()) {
        Ok(o) => o,
        Err(e) => {
            let _ = session.destroy_object(k);
            return Err(e);
        }
    };
    let window = match create_data(session, SQN_WINDOW_LABEL, id, &encode_window(window)) {
        Ok(w) => w,
        Err(e) => {
            let _ = session.destroy_object(opc);
            let _ = session.destroy_object(k);
            return Err(e);
        }
    };
    Ok((k, opc, window))
}

impl SecureElement for Pkcs11Se {
    fn idevid_signer(&self) -> Arc<dyn rustls::sign::SigningKey> {
        self.idevid.clone()
    }

    fn new_provisioning_key(&mut self) -> Result<[u8; 32], SeError> {
        let (private, public) = crate::provisioning_key_pair()?;
        self.provisioning = Some(private);
        Ok(public)
    }

    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
        k_prov: &KProv,
    ) -> Result<Installed, SeError> {
        let private = self.provisioning.take().ok_or(SeError::NoProvisioningKey)?;
        let opened = crate::open_package(sealed, &private, binding, k_prov)?;
        drop(private);
        let (secrets, public) = opened.split();
        let confirmation_mac = secrets.confirmation_mac(&public.package_id);
        // The commit record: the package with K and OPc zeroed.
        let record_cbor = CredentialPackage::join(
            PackageSecrets {
                k: K::new([0; 16]),
                opc: Opc::new([0; 16]),
            },
            public.clone(),
        )
        .to_cbor()
        .map_err(|e| SeError::Package(e.to_string()))?;
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| SeError::Crypto("no randomness for the installation id".into()))?;

        let token = self.token.clone();
        let session = token.session();
        let window = SqnWindow::default();
        let (k, opc, window_object) =
            create_subscription_objects(&session, &id, &secrets, &window)?;
        // K and OPc are in the token: the host copies go now.
        drop(secrets);
        if let Some(old) = self.subscription.as_ref() {
            if let Err(e) = session.destroy_object(old.record) {
                for object in [k, opc, window_object] {
                    let _ = session.destroy_object(object);
                }
                return Err(ck("C_DestroyObject (previous commit record)", e));
            }
            for object in [old.k, old.opc, old.window_object] {
                // Uncommitted now: `open` removes what this leaves.
                let _ = session.destroy_object(object);
            }
            self.subscription = None;
        }
        let record = match create_data(&session, SUBSCRIPTION_LABEL, &id, &record_cbor) {
            Ok(r) => r,
            Err(e) => {
                // Uncommitted: remove now (or `open` will).
                for object in [k, opc, window_object] {
                    let _ = session.destroy_object(object);
                }
                return Err(e);
            }
        };
        // The new package spends the receipt of the last reset: the object
        // keeps the count only (if this fails, the stale receipt names a
        // package the network no longer holds and is refused there).
        if let Some(erasure) = self.erasure.as_mut().filter(|e| e.receipt.is_some())
            && let Ok(object) = create_data(
                &session,
                ERASURE_LABEL,
                &public.package_id,
                &erasure_payload(erasure.resets, None),
            )
        {
            let _ = session.destroy_object(erasure.object);
            erasure.object = object;
            erasure.receipt = None;
        }
        drop(session);
        self.subscription = Some(Subscription {
            id,
            k,
            opc,
            window_object,
            window,
            record,
            public: public.clone(),
        });
        Ok(Installed {
            public,
            confirmation_mac,
        })
    }

    fn has_subscription(&self) -> bool {
        self.subscription.is_some()
    }

    fn installed(&self) -> Option<PublicPart> {
        self.subscription.as_ref().map(|s| s.public.clone())
    }

    fn erase_subscription(&mut self) {
        // The trait cannot report the error; see `try_erase_subscription`.
        let _ = self.try_erase_subscription();
    }

    fn reset(&mut self, serial: &str, erased_at_unix: u64) -> Result<ErasureReceipt, SeError> {
        let token = self.token.clone();
        let sub = self.subscription.as_ref().ok_or(SeError::NoSubscription)?;
        let resets = self
            .erasure
            .as_ref()
            .map_or(0, |e| e.resets)
            .saturating_add(1);
        let receipt = crate::make_receipt(
            self.idevid.as_ref(),
            serial,
            sub.public.package_id,
            resets,
            erased_at_unix,
            |receipt| {
                // MILENAGE f3 and f4 with every E_K in the token, as for a
                // challenge. The session is released before the IDevID key
                // signs (the signer locks it too).
                let session = token.session();
                let opc = sub.read_opc(&session)?;
                let aes = TokenAes {
                    session: &session,
                    k: sub.k,
                };
                let out = Milenage::new(&aes, &opc).f2345(&receipt.proof_rand())?;
                Ok(receipt.proof_from(&out.ck, &out.ik))
            },
        )?;
        let payload = erasure_payload(resets, Some(&receipt));
        let session = token.session();
        // The receipt first: a power cut after it leaves a reset that
        // `open` finishes; one before it leaves the subscription untouched.
        let object = create_data(&session, ERASURE_LABEL, &sub.public.package_id, &payload)?;
        if let Some(old) = self.erasure.take() {
            // If this fails `open` keeps the newer (higher count).
            let _ = session.destroy_object(old.object);
        }
        drop(session);
        self.erasure = Some(Erasure {
            object,
            resets,
            receipt: Some(receipt.clone()),
        });
        self.provisioning = None;
        self.try_erase_subscription()?;
        Ok(receipt)
    }

    fn erasure_receipt(&self) -> Option<ErasureReceipt> {
        match (&self.subscription, &self.erasure) {
            (None, Some(e)) => e.receipt.clone(),
            _ => None,
        }
    }

    fn authenticate(
        &mut self,
        rand: &[u8; 16],
        autn: &[u8; 16],
        snn: &[u8],
    ) -> Result<UeAka, SeAkaError> {
        let token = self.token.clone();
        let sub = self.subscription.as_mut().ok_or(SeError::NoSubscription)?;
        let session = token.session();
        let opc_block = sub.read_opc(&session)?;
        let aes = TokenAes {
            session: &session,
            k: sub.k,
        };
        let mut window = sub.window.clone();
        let answer = milenage::respond(
            &Milenage::new(&aes, &opc_block),
            &mut window,
            rand,
            autn,
            snn,
        )?;
        // The advanced window is in the token before RES* leaves; if it
        // cannot be written, the answer is dropped (zeroized), not given.
        let new_object = create_data(&session, SQN_WINDOW_LABEL, &sub.id, &encode_window(&window))?;
        // If this fails the old window stays beside the new one: `open`
        // keeps the newer of the two.
        let _ = session.destroy_object(sub.window_object);
        sub.window_object = new_object;
        sub.window = window;
        Ok(answer)
    }

    fn sqn_window(&self) -> Option<SqnWindow> {
        self.subscription.as_ref().map(|s| s.window.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    #[test]
    fn raw_ecdsa_signatures_become_der_that_verifies() {
        // Sign with aws-lc-rs in fixed (raw r‖s) form, convert, verify as ASN.1.
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
        )
        .unwrap();
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref().to_vec());
        for i in 0..200u32 {
            let msg = i.to_be_bytes();
            let raw = pair.sign(&rng, &msg).unwrap();
            let der = ecdsa_der(raw.as_ref()).unwrap();
            public.verify(&msg, &der).unwrap();
        }
        assert!(ecdsa_der(&[0; 63]).is_none());
        // Leading zeros are stripped, a high bit is padded.
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[32] = 0x80;
        let der = ecdsa_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
    }

    #[test]
    fn newest_window_is_the_slotwise_maximum() {
        let mut a = [0u64; 32];
        let mut b = [0u64; 32];
        a[0] = 5;
        b[0] = 7;
        b[1] = 2;
        let w = newest(&SqnWindow::from_seqs(a, 10), &SqnWindow::from_seqs(b, 10));
        assert_eq!(w.seqs()[0], 7);
        assert_eq!(w.seqs()[1], 2);
        let enc = encode_window(&w);
        assert_eq!(decode_window(&enc).unwrap(), w);
        assert!(decode_window(&enc[1..]).is_err());
    }

    #[test]
    fn config_debug_redacts_the_pin() {
        let c = Pkcs11Config::softhsm2("nido", "98765432");
        assert!(!format!("{c:?}").contains("98765432"));
    }
}
