-- nido-store schema version 1 (PostgreSQL). Applied once, in one transaction;
-- never edit it: add 0002_*.sql (and its SQLite twin) instead.

-- Store-wide values: the KEK check value.
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE manufacturers (
    name       TEXT PRIMARY KEY,
    root_der   BYTEA NOT NULL UNIQUE,
    policy     TEXT NOT NULL,            -- JSON
    updated_at BIGINT NOT NULL
);

-- One CRL per (manufacturer, signing CA); a newer one replaces it.
CREATE TABLE crls (
    manufacturer TEXT NOT NULL REFERENCES manufacturers (name) ON DELETE CASCADE,
    issuer_hash  BYTEA NOT NULL,          -- SHA-256 of issuer_der
    issuer_der   BYTEA NOT NULL,
    crl_der      BYTEA NOT NULL,
    this_update  BIGINT NOT NULL,
    PRIMARY KEY (manufacturer, issuer_hash)
);

CREATE TABLE blocked (
    serial TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at     BIGINT NOT NULL
);

CREATE TABLE devices (
    serial     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

CREATE TABLE owners (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    credentials_enc BYTEA NOT NULL        -- AES-256-GCM under the KEK, AAD = owner id
);

-- A claim code is used once: owner and claimed_at are set together, once.
CREATE TABLE claims (
    claim_code_hash TEXT PRIMARY KEY,
    device          TEXT NOT NULL,
    owner           TEXT REFERENCES owners (id),
    claimed_at      BIGINT,
    claim_seq       BIGINT,             -- orders the claims of one device
    CHECK ((owner IS NULL) = (claimed_at IS NULL) AND (owner IS NULL) = (claim_seq IS NULL))
);
CREATE INDEX claims_device ON claims (device);

-- One subscription per SUPI (primary key) and per device (UNIQUE).
CREATE TABLE subscriptions (
    supi       TEXT PRIMARY KEY,
    device     TEXT NOT NULL UNIQUE,
    k_enc      BYTEA NOT NULL,            -- AES-256-GCM under the KEK, AAD = SUPI
    opc_enc    BYTEA NOT NULL,            -- AES-256-GCM under the KEK, AAD = SUPI
    amf        BYTEA NOT NULL CHECK (octet_length(amf) = 2),
    sqn_seq    BIGINT NOT NULL CHECK (sqn_seq >= 0),
    sqn_ind    BIGINT NOT NULL CHECK (sqn_ind BETWEEN 0 AND 255),
    state      TEXT NOT NULL CHECK (state IN ('created', 'provisioned', 'active')),
    owner      TEXT,
    package_id BYTEA NOT NULL CHECK (octet_length(package_id) = 16),
    updated_at BIGINT NOT NULL
);

CREATE TABLE provisioning (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    package_id    BYTEA NOT NULL,
    device        TEXT NOT NULL,
    supi          TEXT NOT NULL,
    at            BIGINT NOT NULL,
    reprovisioned BOOLEAN NOT NULL
);
CREATE INDEX provisioning_device ON provisioning (device);

CREATE TABLE audit (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    device TEXT,
    supi   TEXT,
    cause  BIGINT,
    detail TEXT NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only';
END
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The IMSI range: MSINs 1..=range_size; `allocated` is the last one handed out.
CREATE TABLE msin_counter (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    allocated  BIGINT NOT NULL CHECK (allocated >= 0),
    range_size BIGINT NOT NULL CHECK (range_size >= 0)
);
INSERT INTO msin_counter (id, allocated, range_size) VALUES (1, 0, 0);
