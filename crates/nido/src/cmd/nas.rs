//! `nido nas decode`: a NAS PDU field by field, verified and deciphered when
//! keys are given.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use nido_nas::pdu::{self, Dropped, Field, Mode};
use nido_nas::security::{Algorithms, StatelessKeys, split_header, verify_and_decipher};
use nido_sec::{KNasEnc, KNasInt};

use crate::args::{UsageError, hex_any, hex_n, number_in};

/// NAS subcommands.
#[derive(Subcommand)]
pub(crate) enum Nas {
    /// Decode a 5GS NAS PDU (TS 24.501); with --knas-int, verify its MAC and
    /// decipher it. Strict: a truncated or malformed IE, optional ones
    /// included, is one error line naming the IE and its offset (exit 1);
    /// --lenient shows what a receiver keeps instead (TS 24.501 clause 7).
    ///
    /// Example: nido nas decode 7e0383494a7c007e005d220002f0f0e1
    ///   --knas-int 06c661bdcb505f1690bea90685d939f5 --alg 2 --direction 1
    Decode(DecodeArgs),
}

/// Decode inputs.
#[derive(Args)]
pub(crate) struct DecodeArgs {
    /// The PDU, hex.
    pdu: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Decode as a receiver does (TS 24.501 clause 7): the optional IEs it
    /// ignores (truncated, syntactically incorrect, repeated, out of
    /// sequence, unknown) are listed as dropped instead of refusing the
    /// PDU; a faulty mandatory IE is still an error.
    #[arg(long)]
    lenient: bool,
    /// K_NASint, 32 hex digits: verify the NAS MAC.
    #[arg(long)]
    knas_int: Option<String>,
    /// K_NASenc, 32 hex digits: decipher (security header types 2 and 4).
    #[arg(long, requires = "knas_int")]
    knas_enc: Option<String>,
    /// Algorithm number for both NIA and NEA: 0..=3.
    #[arg(long, default_value_t = 2)]
    alg: u64,
    /// Ciphering algorithm, when it differs from --alg (e.g. 0 for NEA0).
    #[arg(long)]
    nea: Option<u64>,
    /// The full NAS COUNT (decimal, or 0x-hex); default: overflow 0 and the PDU's sequence number.
    #[arg(long)]
    count: Option<String>,
    /// DIRECTION: 0 uplink (UE to network), 1 downlink.
    #[arg(long, default_value_t = 0)]
    direction: u64,
}

/// Runs `nido nas ...`.
pub(crate) fn run(command: Nas) -> Result<()> {
    match command {
        Nas::Decode(a) => decode(&a),
    }
}

fn parse_count(text: &str) -> Result<u32, UsageError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => text.parse::<u32>(),
    };
    let value = parsed.map_err(|e| UsageError::new("--count", format!("{text:?}: {e}")))?;
    if value > 0x00ff_ffff {
        return Err(UsageError::new(
            "--count",
            format!("{value:#x} exceeds the 24-bit NAS COUNT"),
        ));
    }
    Ok(value)
}

fn decode(a: &DecodeArgs) -> Result<()> {
    let pdu = hex_any("PDU", &a.pdu)?;
    let mode = if a.lenient {
        Mode::Receiver
    } else {
        Mode::Strict
    };
    let received = pdu::decode_with(&pdu, mode)?;
    let outer = &received.message;
    let mut report = json!({
        "message": outer.to_string(),
        "octets": pdu.len(),
        "fields": fields_json(&pdu::fields(outer, &pdu)),
        "dropped": dropped_json(&received.dropped),
    });
    let mut text = vec![outer.to_string()];
    text.extend(fields_text(&pdu::fields(outer, &pdu)));
    text.extend(dropped_text(&received.dropped));

    if let Some(knas_int) = &a.knas_int {
        let alg = number_in("--alg", a.alg, 0..=3)? as u8;
        let nea = number_in("--nea", a.nea.unwrap_or(a.alg), 0..=3)? as u8;
        let keys = StatelessKeys {
            knas_int: KNasInt::new(hex_n::<16>("--knas-int", knas_int)?),
            knas_enc: a
                .knas_enc
                .as_deref()
                .map(|k| hex_n::<16>("--knas-enc", k).map(KNasEnc::new))
                .transpose()?,
            algorithms: Algorithms { nia: alg, nea },
            count: a.count.as_deref().map(parse_count).transpose()?,
            direction: number_in("--direction", a.direction, 0..=1)? as u8,
        };
        let (sht, _, _) = split_header(&pdu)?;
        if sht == 0 {
            return Err(UsageError::new("--knas-int", "the PDU is not security protected").into());
        }
        let (plain, count) = verify_and_decipher(&pdu, &keys)?;
        let inner = pdu::decode_with(&plain, mode)?;
        let inner_fields = pdu::fields(&inner.message, &plain);
        report["verified"] = json!({
            "mac": "ok",
            "count": count,
            "plain": hex::encode(&plain),
            "message": inner.message.to_string(),
            "fields": fields_json(&inner_fields),
            "dropped": dropped_json(&inner.dropped),
        });
        text.push(format!(
            "MAC verified at NAS COUNT {count}; plain message {}:",
            hex::encode(&plain)
        ));
        text.push(inner.message.to_string());
        text.extend(fields_text(&inner_fields));
        text.extend(dropped_text(&inner.dropped));
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("{}", text.join("\n"));
    }
    Ok(())
}

fn fields_json(fields: &[Field]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| json!({ "ie": f.name, "offset": f.offset, "octets": f.octets, "value": f.value }))
            .collect(),
    )
}

fn dropped_json(dropped: &[Dropped]) -> Value {
    Value::Array(
        dropped
            .iter()
            .map(|d| {
                json!({
                    "ie": d.ie,
                    "iei": format!("{:#04x}", d.iei),
                    "offset": d.offset,
                    "length": d.len,
                    "reason": d.reason.describe(),
                })
            })
            .collect(),
    )
}

/// The IEs a receiver did not keep, one line each: `dropped` with its
/// offset, name, IEI and why.
fn dropped_text(dropped: &[Dropped]) -> Vec<String> {
    dropped
        .iter()
        .map(|d| {
            format!(
                "  {:4}  dropped {} (IEI {:#04x}, {} octets): {}",
                d.offset,
                d.ie,
                d.iei,
                d.len,
                d.reason.describe()
            )
        })
        .collect()
}

fn fields_text(fields: &[Field]) -> Vec<String> {
    fields
        .iter()
        .map(|f| {
            let offset = f
                .offset
                .map_or_else(|| "   -".to_owned(), |o| format!("{o:4}"));
            let octets = f
                .octets
                .as_deref()
                .map(|o| format!(" [{o}]"))
                .unwrap_or_default();
            format!("  {offset}  {}{octets}: {}", f.name, f.value)
        })
        .collect()
}
