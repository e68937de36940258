-- Issue #15: the HTTP API's bearer tokens, and the indexes its queries use.
--
-- api_tokens: one row per token. Only the SHA-256 of the token is kept
-- (a token is 32 random octets: no dictionary to guess from), so the
-- database alone lets no one in. `role` is operator or owner; an owner
-- token is bound to one owner. A revoked or expired token is refused;
-- rows are kept, for the audit of who held access when.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('operator', 'owner')),
    owner      TEXT,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    CHECK ((role = 'owner') = (owner IS NOT NULL))
);

-- A device's audit trail, its last refusal, and the devices by state.
CREATE INDEX audit_device ON audit (device, id);
CREATE INDEX devices_state ON devices (state, serial);
CREATE INDEX subscriptions_owner ON subscriptions (owner, device);
CREATE INDEX claims_owner ON claims (owner, device);
