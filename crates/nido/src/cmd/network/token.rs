//! `nido network token`: bearer tokens of the HTTP API and web console
//! (`nido network serve --api`). A token is shown once, when created; the
//! store keeps its SHA-256 only.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use nido_api::auth;
use nido_api::service::{now, time};

use super::{DirArg, ListArgs, open};

const ABOUT: &str = "\
Tokens of the HTTP API and the web console (`nido network serve --api`).
An operator's token sees and manages every device; an owner's token sees
its own devices, subscriptions and credentials only.

  nido network token create --dir net --role operator --label alice
  nido network token create --dir net --role owner --owner acme-farms --expires 90d
  T=$(nido network token create --dir net --role operator | tail -1)
  curl -H \"Authorization: Bearer $T\" http://127.0.0.1:8080/api/v1/devices
  nido network token list --dir net
  nido network token revoke --dir net tok-3f9a0c12d4e5

The token is printed once, alone on the last line; the network keeps only
its SHA-256. Revoking takes effect at the next request.";

/// `nido network token` subcommands.
#[derive(Subcommand)]
#[command(about = ABOUT, long_about = ABOUT)]
pub(crate) enum TokenCmd {
    /// Creates a token and prints it (once, alone on the last line).
    Create(CreateArgs),
    /// Revokes a token by its id (from `list`).
    Revoke(RevokeArgs),
    /// Lists tokens (their ids, roles, owners, times; never the tokens).
    List(ListArgs),
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    dir: DirArg,
    /// `operator` (every device) or `owner` (one owner's, with --owner).
    #[arg(long, value_parser = ["operator", "owner"])]
    role: String,
    /// The owner an owner's token is bound to (it must exist: `nido owner
    /// create`).
    #[arg(long, required_if_eq("role", "owner"))]
    owner: Option<String>,
    /// How long it lives: `30d`, `12h`, `90m` (default: until revoked).
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
    expires: Option<u64>,
    /// What it is for (shown by `list`).
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The token's id (`tok-…`).
    id: String,
}

/// A lifetime in seconds: N followed by d, h or m.
fn parse_lifetime(s: &str) -> Result<u64, String> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: a number followed by d, h or m (30d, 12h, 90m)"))?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => None,
    };
    match secs {
        Some(s) if s > 0 && s <= 10 * 365 * 86_400 => Ok(s),
        _ => Err(format!(
            "{s:?}: from 1m to 3650d, written as 30d, 12h or 90m"
        )),
    }
}

pub(crate) fn run(command: TokenCmd) -> Result<()> {
    match command {
        TokenCmd::Create(a) => {
            if a.role == "operator" && a.owner.is_some() {
                bail!("--owner is for --role owner; an operator's token sees every owner");
            }
            let (_, store) = open(&a.dir.dir, None)?;
            let at = now();
            let (token, record) = auth::new_token(
                &a.role,
                a.owner.clone(),
                &a.label,
                at,
                a.expires.map(|s| at + s),
            )
            .map_err(|_| anyhow::anyhow!("no randomness for a token"))?;
            store
                .create_token(&record, &auth::hash(&token))
                .map_err(|e| anyhow::anyhow!("token: {e}"))?;
            eprintln!(
                "token {} ({}{}){}: shown once, keep it secret",
                record.id,
                record.role,
                record
                    .owner
                    .as_deref()
                    .map_or(String::new(), |o| format!(" of {o}")),
                record
                    .expires_at
                    .map_or(String::new(), |t| format!(", expires {}", time(t)))
            );
            outln!("{}", &*token);
            Ok(())
        }
        TokenCmd::Revoke(a) => {
            let (_, store) = open(&a.dir.dir, None)?;
            if !store.revoke_token(&a.id, now())? {
                bail!("{}: no such token, or already revoked", a.id);
            }
            outln!("{} revoked", a.id);
            Ok(())
        }
        TokenCmd::List(a) => {
            let (_, store) = open(&a.dir.dir, None)?;
            let at = now();
            for t in store.tokens()? {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= at) {
                    "expired"
                } else {
                    "live"
                };
                if a.json {
                    outln!(
                        "{}",
                        serde_json::json!({"id": t.id, "role": t.role, "owner": t.owner, "label": t.label,
                            "status": status, "created_at": time(t.created_at),
                            "expires_at": t.expires_at.map(time), "revoked_at": t.revoked_at.map(time)})
                    );
                } else {
                    outln!(
                        "{:<18} {:<8} {:<16} {:<8} created {} {}",
                        t.id,
                        t.role,
                        t.owner.as_deref().unwrap_or("-"),
                        status,
                        time(t.created_at),
                        t.label
                    );
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d"), Ok(30 * 86_400));
        assert_eq!(parse_lifetime("12h"), Ok(12 * 3_600));
        assert_eq!(parse_lifetime("90m"), Ok(5_400));
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("30").is_err());
        assert!(parse_lifetime("99999999999999999999d").is_err());
        assert!(parse_lifetime("").is_err());
    }
}
