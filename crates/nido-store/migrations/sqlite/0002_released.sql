-- A subscription the operator released for re-provisioning (`nido network
-- release`): SQLite cannot change a CHECK constraint, so the table is
-- rebuilt with the new state allowed (same columns, same data).
CREATE TABLE subscriptions_v2 (
    supi       TEXT PRIMARY KEY,
    device     TEXT NOT NULL UNIQUE,
    k_enc      BLOB NOT NULL,            -- AES-256-GCM under the KEK, AAD = SUPI
    opc_enc    BLOB NOT NULL,            -- AES-256-GCM under the KEK, AAD = SUPI
    amf        BLOB NOT NULL CHECK (length(amf) = 2),
    sqn_seq    INTEGER NOT NULL CHECK (sqn_seq >= 0),
    sqn_ind    INTEGER NOT NULL CHECK (sqn_ind BETWEEN 0 AND 255),
    state      TEXT NOT NULL CHECK (state IN ('created', 'provisioned', 'active', 'released')),
    owner      TEXT,
    package_id BLOB NOT NULL CHECK (length(package_id) = 16),
    updated_at INTEGER NOT NULL
);
INSERT INTO subscriptions_v2
    (supi, device, k_enc, opc_enc, amf, sqn_seq, sqn_ind, state, owner, package_id, updated_at)
SELECT supi, device, k_enc, opc_enc, amf, sqn_seq, sqn_ind, state, owner, package_id, updated_at
FROM subscriptions;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_v2 RENAME TO subscriptions;
