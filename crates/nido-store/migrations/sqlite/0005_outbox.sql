-- Issue #14: devices' uplink data on its way to their owners' applications.
--
-- outbox: one row per burst the network acknowledged, written in the same
-- transaction as the rest of the datagram's writes (the SERVICE ACCEPT
-- waits for it). `owner` is '' for a device no owner claimed (the
-- operator's default delivery). `seq` counts a device's bursts from 1
-- (uplink_seq), the idempotency key its owner sees. `status` is pending,
-- delivered (the broker's PUBACK, the file's fsync) or dropped (the
-- owner's outbox was full: the oldest pending burst gives way, with an
-- audit entry). Delivered rows are pruned after a day.
CREATE TABLE uplink_seq (
    device TEXT PRIMARY KEY,
    last   INTEGER NOT NULL
);
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device       TEXT NOT NULL,
    owner        TEXT NOT NULL,
    supi         TEXT NOT NULL,
    psi          INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    data         BLOB NOT NULL,
    at_ms        INTEGER NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at INTEGER,
    UNIQUE (device, seq)
);
CREATE INDEX outbox_pending ON outbox (owner, id) WHERE status = 'pending';
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status = 'delivered';

-- Where an owner's devices' data goes; owner '' is the operator's default
-- (devices no owner claimed, owners without their own). kind: mqtt or
-- webhook; topic_prefix is '' for a webhook. password_enc: the MQTT
-- password or the webhook's HMAC key, sealed under the KEK. tls_ca: the
-- PEM CA certificates an mqtts:// broker is checked against (NULL: the
-- Web PKI roots).
CREATE TABLE delivery (
    owner        TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    url          TEXT NOT NULL,
    topic_prefix TEXT NOT NULL,
    username     TEXT,
    password_enc BLOB,
    tls_ca       TEXT,
    updated_at   INTEGER NOT NULL
);

-- Downlink (issue #14): data an owner's application sent a device (its
-- broker's PREFIX/<serial>/down), kept until the network sent it to the
-- device (right after the device's next burst): status pending, then sent.
CREATE TABLE downlink (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    data        BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    sent_ms     INTEGER
);
CREATE INDEX downlink_pending ON downlink (id) WHERE status = 'pending';
