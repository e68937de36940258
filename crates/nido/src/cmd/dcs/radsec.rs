//! `nido dcs serve --radsec`: RADIUS over TLS (RFC 6614) in front of the
//! same single-threaded DCS loop as the UDP transport.
//!
//! - One accept thread; one thread per TCP connection (operators are few:
//!   at most [`MAX_CONNECTIONS`] at once, more are closed at accept), each
//!   doing blocking rustls I/O with a short read timeout.
//! - TLS 1.3 or 1.2 with the DCS's certificate (`dcs.pem`, `dcs.key`); the
//!   client must present a certificate whose SHA-256 fingerprint is a
//!   configured RadSec client ([`PinnedClients`]), and must prove it holds
//!   its key (the handshake signature, checked with the provider's
//!   algorithms). Nothing else about the certificate matters: the pin is
//!   the trust.
//! - A connection thread frames the plaintext with
//!   [`nido_radius::stream::StreamFramer`] and hands whole packets to the
//!   DCS loop ([`Inbound`]); the loop answers over the connection's own
//!   channel ([`ToConn`]) after the audit sync of the batch, so the UDP
//!   path's invariant holds: a decision is durable before its reply leaves.
//! - A bad Length, an unauthentic packet or a packet of a client no longer
//!   configured closes the connection (RFC 6614 §2.5); there is no
//!   retransmission on a connection, so nothing is retried here.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nido_dcs::clients::fingerprint_hex;
use nido_radius::stream::StreamFramer;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Most RadSec connections at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A handshake must end within this.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long a connection thread waits for octets before it looks at its
/// replies (the added latency of a reply, at most).
const POLL: Duration = Duration::from_millis(5);

/// SHA-256 of a certificate's DER: how a RadSec client is pinned.
pub(crate) fn fingerprint(der: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The fingerprints of the configured RadSec clients, replaced on reload.
pub(crate) type Pins = Arc<RwLock<HashSet<[u8; 32]>>>;

/// The pins of `clients`.
pub(crate) fn pins_of(clients: &nido_dcs::Clients) -> HashSet<[u8; 32]> {
    clients.radsec_clients().map(|c| c.fingerprint).collect()
}

/// Accepts a client certificate only if it is pinned; checks the handshake
/// signature with the provider's algorithms.
#[derive(Debug)]
struct PinnedClients {
    pins: Pins,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        let pinned = self.pins.read().map(|p| p.contains(&fp)).unwrap_or(false);
        if pinned {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::warn!(
                fingerprint = %fingerprint_hex(&fp),
                "RadSec client certificate is not a configured client (nido dcs add-client --radsec-cert): handshake refused"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS server configuration: the DCS's chain and key, pinned clients.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pins: Pins,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedClients {
        pins,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("RadSec TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("RadSec: dcs.pem/dcs.key")?;
    Ok(Arc::new(config))
}

/// A whole packet of a RadSec connection, for the DCS loop.
pub(crate) struct Inbound {
    /// The client certificate's fingerprint.
    pub(crate) fingerprint: [u8; 32],
    /// The TCP peer.
    pub(crate) from: SocketAddr,
    /// The packet (exactly its Length).
    pub(crate) packet: Vec<u8>,
    /// Where the answer goes.
    pub(crate) reply: Sender<ToConn>,
}

/// What the DCS loop tells a connection.
pub(crate) enum ToConn {
    /// Send this packet.
    Packet(Vec<u8>),
    /// Close the connection (an invalid packet, RFC 6614 §2.5).
    Close(&'static str),
}

/// Binds `addr` and accepts connections on a thread of its own; packets go
/// to `to_dcs`. Returns the bound address.
pub(crate) fn listen(
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    to_dcs: SyncSender<Inbound>,
    stop: Arc<AtomicBool>,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| format!("RadSec TCP {addr}"))?;
    let local = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("radsec-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    tracing::warn!(peer = %peer, max = MAX_CONNECTIONS, "RadSec connection refused: too many");
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (config, to_dcs, stop, active) =
                    (config.clone(), to_dcs.clone(), stop.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("radsec-{peer}"))
                    .spawn(move || {
                        match connection(stream, peer, config, &to_dcs, &stop) {
                            Ok(why) => tracing::info!(peer = %peer, why, "RadSec connection closed"),
                            Err(e) => tracing::warn!(peer = %peer, error = %format!("{e:#}"), "RadSec connection closed"),
                        }
                        active.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    tracing::warn!(peer = %peer, "RadSec connection refused: no thread");
                }
            }
        })
        .context("RadSec accept thread")?;
    Ok(local)
}

/// One connection, until it closes: handshake, then packets in and out.
fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    to_dcs: &SyncSender<Inbound>,
    stop: &AtomicBool,
) -> Result<&'static str> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(HANDSHAKE))?;
    stream.set_nodelay(true)?;
    let mut tls = rustls::ServerConnection::new(config)?;
    let (reply, replies): (Sender<ToConn>, Receiver<ToConn>) = mpsc::channel();
    let started = Instant::now();
    let mut framer = StreamFramer::new();
    let mut fingerprint_of: Option<[u8; 32]> = None;
    let mut buf = [0u8; 4096];
    loop {
        if stop.load(Ordering::Relaxed) {
            tls.send_close_notify();
            flush(&mut tls, &mut stream)?;
            return Ok("stopping");
        }
        flush(&mut tls, &mut stream)?;
        match tls.read_tls(&mut stream) {
            Ok(0) => return Ok("peer closed"),
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Sends the alert rustls queued, then gives up.
                    let _ = flush(&mut tls, &mut stream);
                    return Err(anyhow!("TLS: {e}"));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("TCP receive"),
        }
        if tls.is_handshaking() {
            if started.elapsed() > HANDSHAKE {
                return Err(anyhow!("no TLS handshake within {HANDSHAKE:?}"));
            }
            continue;
        }
        let fp = match fingerprint_of {
            Some(fp) => fp,
            None => {
                let fp = tls
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| fingerprint(c))
                    .ok_or_else(|| anyhow!("no client certificate"))?;
                tracing::info!(
                    peer = %peer,
                    fingerprint = %fingerprint_hex(&fp),
                    version = ?tls.protocol_version(),
                    "RadSec connection up"
                );
                fingerprint_of = Some(fp);
                fp
            }
        };
        loop {
            let room = framer.room().min(buf.len());
            match tls.reader().read(&mut buf[..room]) {
                Ok(0) => {
                    tls.send_close_notify();
                    let _ = flush(&mut tls, &mut stream);
                    return Ok("peer closed (close_notify)");
                }
                Ok(n) => {
                    framer.push(&buf[..n])?;
                    while let Some(packet) = framer.pop()? {
                        to_dcs
                            .send(Inbound {
                                fingerprint: fp,
                                from: peer,
                                packet,
                                reply: reply.clone(),
                            })
                            .map_err(|_| anyhow!("the DCS loop stopped"))?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("TLS receive"),
            }
        }
        loop {
            match replies.try_recv() {
                Ok(ToConn::Packet(p)) => tls.writer().write_all(&p)?,
                Ok(ToConn::Close(why)) => {
                    tls.send_close_notify();
                    let _ = flush(&mut tls, &mut stream);
                    return Ok(why);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }
}

/// Writes whatever TLS records are pending (blocking, bounded by the write
/// timeout).
fn flush(tls: &mut rustls::ServerConnection, stream: &mut TcpStream) -> Result<()> {
    while tls.wants_write() {
        tls.write_tls(stream).context("TCP send")?;
    }
    Ok(())
}
