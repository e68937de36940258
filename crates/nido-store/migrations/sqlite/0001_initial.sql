-- nido-store schema version 1 (SQLite). Applied once, in one transaction;
-- never edit it: add 0002_*.sql (and its PostgreSQL twin) instead.

-- Store-wide values: the KEK check value.
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE manufacturers (
    name       TEXT PRIMARY KEY,
    root_der   BLOB NOT NULL UNIQUE,
    policy     TEXT NOT NULL,            -- JSON
    updated_at INTEGER NOT NULL
);

-- One CRL per (manufacturer, signing CA); a newer one replaces it.
CREATE TABLE crls (
    manufacturer TEXT NOT NULL REFERENCES manufacturers (name) ON DELETE CASCADE,
    issuer_hash  BLOB NOT NULL,          -- SHA-256 of issuer_der
    issuer_der   BLOB NOT NULL,
    crl_der      BLOB NOT NULL,
    this_update  INTEGER NOT NULL,
    PRIMARY KEY (manufacturer, issuer_hash)
);

CREATE TABLE blocked (
    serial TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL
);

CREATE TABLE devices (
    serial     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);

CREATE TABLE owners (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    credentials_enc BLOB NOT NULL        -- AES-256-GCM under the KEK, AAD = owner id
);

-- A claim code is used once: owner and claimed_at are set together, once.
CREATE TABLE claims (
    claim_code_hash TEXT PRIMARY KEY,
    device          TEXT NOT NULL,
    owner           TEXT REFERENCES owners (id),
    claimed_at      INTEGER,
    claim_seq       INTEGER,             -- orders the claims of one device
    CHECK ((owner IS NULL) = (claimed_at IS NULL) AND (owner IS NULL) = (claim_seq IS NULL))
);
CREATE INDEX claims_device ON claims (device);

-- One subscription per SUPI (primary key) and per device (UNIQUE).
CREATE TABLE subscriptions (
    supi       TEXT PRIMARY KEY,
    device     TEXT NOT NULL UNIQUE,
    k_enc      BLOB NOT NULL,            -- AES-256-GCM under the KEK, AAD = SUPI
    opc_enc    BLOB NOT NULL,            -- AES-256-GCM under the KEK, AAD = SUPI
    amf        BLOB NOT NULL CHECK (length(amf) = 2),
    sqn_seq    INTEGER NOT NULL CHECK (sqn_seq >= 0),
    sqn_ind    INTEGER NOT NULL CHECK (sqn_ind BETWEEN 0 AND 255),
    state      TEXT NOT NULL CHECK (state IN ('created', 'provisioned', 'active')),
    owner      TEXT,
    package_id BLOB NOT NULL CHECK (length(package_id) = 16),
    updated_at INTEGER NOT NULL
);

CREATE TABLE provisioning (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id    BLOB NOT NULL,
    device        TEXT NOT NULL,
    supi          TEXT NOT NULL,
    at            INTEGER NOT NULL,
    reprovisioned BOOLEAN NOT NULL
);
CREATE INDEX provisioning_device ON provisioning (device);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    device TEXT,
    supi   TEXT,
    cause  INTEGER,
    detail TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;

-- The IMSI range: MSINs 1..=range_size; `allocated` is the last one handed out.
CREATE TABLE msin_counter (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    allocated  INTEGER NOT NULL CHECK (allocated >= 0),
    range_size INTEGER NOT NULL CHECK (range_size >= 0)
);
INSERT INTO msin_counter (id, allocated, range_size) VALUES (1, 0, 0);
