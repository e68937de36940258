//! `nido crypto ...`: the 3GPP security functions, one JSON object per call,
//! keys named as in `shared/vectors/*.json`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use nido_sec::algorithms::{AlgInput, nea, nia};
use nido_sec::kdf::{self, AccessType};
use nido_sec::milenage::{Amf, Milenage, Sqn, opc_from_op};
use nido_sec::suci::{HomeNetworkKey, Profile, bcd_to_msin};
use nido_sec::{K, Op, Opc, PrivateKey32, SecError, Supi};

use crate::args::{UsageError, hex_any, hex_n, number_in};

/// The functions.
#[derive(Subcommand)]
pub(crate) enum Crypto {
    /// MILENAGE f1..f5* and AUTN (TS 35.206), e.g. to check a SIM's answers.
    Milenage(MilenageArgs),
    /// A NEA ciphering algorithm over a bit string (TS 33.501 D.2). Ciphering and deciphering are the same.
    Nea(AlgArgs),
    /// A NIA integrity algorithm over a bit string (TS 33.501 D.3); with --mac, verify instead.
    Nia(NiaArgs),
    /// De-conceal a SUCI scheme output with the home network private key (TS 33.501 C.3).
    SuciDeconceal(SuciArgs),
    /// The 5G-AKA key chain from K/OPc to K_NAS and K_gNB (TS 33.501 Annex A).
    #[command(name = "kdf-5g")]
    Kdf5g(KdfArgs),
}

/// MILENAGE inputs.
#[derive(Args)]
pub(crate) struct MilenageArgs {
    /// K, 32 hex digits.
    #[arg(long)]
    k: String,
    /// OP, 32 hex digits (OPc is derived).
    #[arg(long, conflicts_with = "opc", required_unless_present = "opc")]
    op: Option<String>,
    /// OPc, 32 hex digits.
    #[arg(long)]
    opc: Option<String>,
    /// RAND, 32 hex digits.
    #[arg(long)]
    rand: String,
    /// SQN, 12 hex digits.
    #[arg(long)]
    sqn: String,
    /// AMF, 4 hex digits (8000 for 5G).
    #[arg(long)]
    amf: String,
}

/// The inputs every NEA/NIA call takes.
#[derive(Args)]
pub(crate) struct AlgArgs {
    /// Algorithm: 1 (SNOW 3G), 2 (AES), 3 (ZUC).
    #[arg(long)]
    alg: u64,
    /// The 128-bit key, 32 hex digits.
    #[arg(long)]
    key: String,
    /// COUNT, 8 hex digits.
    #[arg(long)]
    count: String,
    /// BEARER, 0..=31 (NAS on 3GPP access: 1).
    #[arg(long)]
    bearer: u64,
    /// DIRECTION: 0 uplink, 1 downlink.
    #[arg(long)]
    direction: u64,
    /// Length of the data in bits (the data has ceil(bits/8) octets).
    #[arg(long)]
    length_bits: u64,
    /// The data, hex.
    #[arg(long)]
    data: String,
}

/// NIA inputs.
#[derive(Args)]
pub(crate) struct NiaArgs {
    #[command(flatten)]
    common: AlgArgs,
    /// A MAC to verify, 8 hex digits: exit code 1 if it does not match.
    #[arg(long)]
    mac: Option<String>,
}

/// ECIES profile.
#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    /// Profile A: X25519.
    A,
    /// Profile B: P-256.
    B,
}

/// SUCI de-concealment inputs.
#[derive(Args)]
pub(crate) struct SuciArgs {
    /// Protection scheme profile.
    #[arg(long, value_enum, ignore_case = true)]
    profile: ProfileArg,
    /// The home network private key, 64 hex digits.
    #[arg(long)]
    hn_private_key: String,
    /// Ephemeral public key || ciphertext || MAC tag, hex.
    #[arg(long)]
    scheme_output: String,
}

/// 5G key chain inputs.
#[derive(Args)]
pub(crate) struct KdfArgs {
    /// K, 32 hex digits.
    #[arg(long)]
    k: String,
    /// OPc, 32 hex digits.
    #[arg(long)]
    opc: String,
    /// RAND, 32 hex digits.
    #[arg(long)]
    rand: String,
    /// SQN, 12 hex digits.
    #[arg(long)]
    sqn: String,
    /// AMF, 4 hex digits.
    #[arg(long)]
    amf: String,
    /// Serving network name, e.g. 5G:mnc001.mcc001.3gppnetwork.org.
    #[arg(long)]
    snn: String,
    /// SUPI: imsi-DIGITS, DIGITS, or nai-USER@REALM.
    #[arg(long)]
    supi: String,
    /// ABBA, hex.
    #[arg(long, default_value = "0000")]
    abba: String,
}

/// Runs one `nido crypto` subcommand and prints its JSON.
pub(crate) fn run(command: Crypto) -> Result<()> {
    let out = match command {
        Crypto::Milenage(a) => milenage(&a)?,
        Crypto::Nea(a) => nea_cmd(&a)?,
        Crypto::Nia(a) => nia_cmd(&a)?,
        Crypto::SuciDeconceal(a) => suci(&a)?,
        Crypto::Kdf5g(a) => kdf5g(&a)?,
    };
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn subscriber(k: &str, op: Option<&str>, opc: Option<&str>) -> Result<(K, Opc), UsageError> {
    let k = K::new(hex_n::<16>("--k", k)?);
    let opc = match (op, opc) {
        (_, Some(opc)) => Opc::new(hex_n::<16>("--opc", opc)?),
        (Some(op), None) => opc_from_op(&k, &Op::new(hex_n::<16>("--op", op)?)),
        (None, None) => return Err(UsageError::new("--opc", "one of --op or --opc is required")),
    };
    Ok((k, opc))
}

fn milenage(a: &MilenageArgs) -> Result<Value> {
    let (k, opc) = subscriber(&a.k, a.op.as_deref(), a.opc.as_deref())?;
    let rand = hex_n::<16>("--rand", &a.rand)?;
    let sqn = Sqn::from_octets(hex_n::<6>("--sqn", &a.sqn)?);
    let amf = Amf(hex_n::<2>("--amf", &a.amf)?);
    let o = Milenage::new(&k, &opc).outputs(&rand, sqn, amf);
    Ok(json!({
        "opc": hex::encode(opc.expose()),
        "f1_mac_a": hex::encode(o.f1_mac_a),
        "f1star_mac_s": hex::encode(o.f1star_mac_s),
        "f2_res": hex::encode(o.f2_res),
        "f3_ck": hex::encode(o.f3_ck.expose()),
        "f4_ik": hex::encode(o.f4_ik.expose()),
        "f5_ak": hex::encode(o.f5_ak.expose()),
        "f5star_ak": hex::encode(o.f5star_ak.expose()),
        "autn": hex::encode(o.autn),
    }))
}

fn alg_input(a: &AlgArgs) -> Result<(AlgInput, [u8; 16], Vec<u8>), UsageError> {
    let input = AlgInput {
        alg: number_in("--alg", a.alg, 1..=3)? as u8,
        count: u32::from_be_bytes(hex_n::<4>("--count", &a.count)?),
        bearer: number_in("--bearer", a.bearer, 0..=31)? as u8,
        direction: number_in("--direction", a.direction, 0..=1)? as u8,
    };
    let key = hex_n::<16>("--key", &a.key)?;
    let data = hex_any("--data", &a.data)?;
    let need = a.length_bits.div_ceil(8);
    if need != data.len() as u64 {
        return Err(UsageError::new(
            "--length-bits",
            format!(
                "{} bits need {need} octets of --data, got {}",
                a.length_bits,
                data.len()
            ),
        ));
    }
    Ok((input, key, data))
}

fn nea_cmd(a: &AlgArgs) -> Result<Value> {
    let (input, key, mut data) = alg_input(a)?;
    nea(input, &key, &mut data, a.length_bits)?;
    Ok(json!({ "output": hex::encode(data) }))
}

fn nia_cmd(a: &NiaArgs) -> Result<Value> {
    let (input, key, data) = alg_input(&a.common)?;
    let mac = nia(input, &key, &data, a.common.length_bits)?;
    if let Some(expected) = &a.mac {
        let expected = hex_n::<4>("--mac", expected)?;
        if expected != mac {
            anyhow::bail!(
                "MAC does not verify: computed {}, given {}",
                hex::encode(mac),
                hex::encode(expected)
            );
        }
        return Ok(json!({ "mac": hex::encode(mac), "verified": true }));
    }
    Ok(json!({ "mac": hex::encode(mac) }))
}

fn suci(a: &SuciArgs) -> Result<Value> {
    let profile = match a.profile {
        ProfileArg::A => Profile::A,
        ProfileArg::B => Profile::B,
    };
    let private = PrivateKey32::new(hex_n::<32>("--hn-private-key", &a.hn_private_key)?);
    let output = hex_any("--scheme-output", &a.scheme_output)?;
    let key = HomeNetworkKey::from_private(profile, 0, &private)
        .map_err(|e| UsageError::new("--hn-private-key", e.to_string()))?;
    let input = key.deconceal(&output).map_err(|e| match e {
        SecError::Length { .. } | SecError::PublicKey { .. } => {
            anyhow::Error::new(UsageError::new("--scheme-output", e.to_string()))
        }
        other => anyhow::Error::new(other),
    })?;
    let mut out = Map::new();
    out.insert("scheme_input".into(), hex::encode(&*input).into());
    if let Ok(msin) = bcd_to_msin(&input) {
        out.insert("msin_if_imsi".into(), msin.into());
    }
    Ok(Value::Object(out))
}

fn kdf5g(a: &KdfArgs) -> Result<Value> {
    let (k, opc) = subscriber(&a.k, None, Some(&a.opc))?;
    let rand = hex_n::<16>("--rand", &a.rand)?;
    let sqn = Sqn::from_octets(hex_n::<6>("--sqn", &a.sqn)?);
    let amf = Amf(hex_n::<2>("--amf", &a.amf)?);
    let abba = hex_any("--abba", &a.abba)?;
    let supi = Supi::parse(&a.supi).map_err(|e| UsageError::new("--supi", e.to_string()))?;
    let snn = a.snn.as_bytes();

    let av = Milenage::new(&k, &opc).vector(&rand, sqn, amf);
    let mut sqn_xor_ak = [0u8; 6];
    sqn_xor_ak.copy_from_slice(&av.autn[..6]);
    let xres_star = kdf::res_star(&av.ck, &av.ik, snn, &rand, &av.xres)?;
    let kausf = kdf::kausf_5g_aka(&av.ck, &av.ik, snn, &sqn_xor_ak)?;
    let kseaf = kdf::kseaf(&kausf, snn)?;
    let kamf = kdf::kamf(&kseaf, &supi, &abba)?;
    let kgnb = kdf::kgnb(&kamf, 0, AccessType::ThreeGpp)?;
    let mut out = Map::new();
    let mut put = |k: &str, v: &[u8]| {
        out.insert(k.to_owned(), hex::encode(v).into());
    };
    put("res", &av.xres);
    put("ck", av.ck.expose());
    put("ik", av.ik.expose());
    put("autn", &av.autn);
    put("xres_star", xres_star.expose());
    put("hxres_star", &kdf::hres_star(&rand, &xres_star));
    put("kausf", kausf.expose());
    put("kseaf", kseaf.expose());
    put("kamf", kamf.expose());
    for alg in 1..=3u8 {
        put(
            &format!("knas_enc_128_nea{alg}"),
            kdf::knas_enc(&kamf, alg)?.expose(),
        );
        put(
            &format!("knas_int_128_nia{alg}"),
            kdf::knas_int(&kamf, alg)?.expose(),
        );
    }
    put("kgnb_3gpp_access", kgnb.expose());
    put(
        "kn3iwf_non3gpp_access",
        kdf::kgnb(&kamf, 0, AccessType::NonThreeGpp)?.expose(),
    );
    put("nh_first_sync_kgnb", &*kdf::nh(&kamf, kgnb.expose())?);
    Ok(Value::Object(out))
}
