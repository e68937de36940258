//! What peer and server share: moving TLS octets between rustls and EAP-TLS
//! frames, in both directions, with fragmentation.

use std::collections::VecDeque;

use crate::tls_frame::{Reassembler, TlsFrame, fragment};
use crate::{FailureReason, Settings};

/// The TLS side of one EAP-TLS conversation.
pub(crate) struct Conversation {
    pub(crate) conn: rustls::Connection,
    pub(crate) outbox: VecDeque<TlsFrame>,
    pub(crate) reassembler: Reassembler,
    pub(crate) settings: Settings,
    pub(crate) rounds: usize,
    /// The outbox holds a TLS alert (and nothing else) after a TLS error.
    pub(crate) alert_pending: bool,
}

impl Conversation {
    pub(crate) fn new(conn: rustls::Connection, settings: Settings) -> Self {
        Self {
            conn,
            outbox: VecDeque::new(),
            reassembler: Reassembler::new(settings.limits),
            settings,
            rounds: 0,
            alert_pending: false,
        }
    }

    /// Counts a round; fails past the limit.
    pub(crate) fn round(&mut self) -> Result<(), FailureReason> {
        self.rounds += 1;
        if self.rounds > self.settings.max_rounds {
            return Err(FailureReason::TooManyRounds(self.settings.max_rounds));
        }
        Ok(())
    }

    /// Feeds a complete TLS message (one or more records) to rustls. On a
    /// TLS error, whatever alert rustls wants to send is queued.
    pub(crate) fn feed(&mut self, message: &[u8]) -> Result<(), FailureReason> {
        let mut rest = message;
        while !rest.is_empty() {
            match self.conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(FailureReason::Tls(e.to_string())),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Whatever flight was still owed is void: only the alert goes out.
                self.outbox.clear();
                self.alert_pending = self.queue_output();
                return Err(match e {
                    rustls::Error::AlertReceived(a) => FailureReason::Alert(format!("{a:?}")),
                    other => FailureReason::Tls(other.to_string()),
                });
            }
        }
        Ok(())
    }

    /// Moves everything rustls wants to send into the outbox, fragmented.
    /// Returns whether anything was queued.
    pub(crate) fn queue_output(&mut self) -> bool {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if out.is_empty() {
            return false;
        }
        self.outbox
            .extend(fragment(&out, self.settings.fragment_size));
        true
    }

    /// Takes the queued TLS alert, if a TLS error left one.
    pub(crate) fn take_alert(&mut self) -> Option<TlsFrame> {
        if !std::mem::take(&mut self.alert_pending) {
            return None;
        }
        let alert = self.outbox.pop_front();
        self.outbox.clear();
        alert
    }

    /// Whether `frame` is an acknowledgement: no data, no L, no M (RFC 5216 §2.1.5).
    pub(crate) fn is_ack(frame: &TlsFrame) -> bool {
        frame.data.is_empty() && frame.message_length.is_none() && !frame.more()
    }

    /// Reads application data rustls decrypted.
    pub(crate) fn read_plaintext(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    }

    /// Exports MSK/EMSK/Method-Id.
    pub(crate) fn export(&self) -> Result<crate::EapTlsKeys, FailureReason> {
        crate::keys::export_from(|out, label, ctx| {
            self.conn
                .export_keying_material(out, label, ctx)
                .map(|_| ())
        })
        .map_err(|e| FailureReason::Tls(e.to_string()))
    }
}
