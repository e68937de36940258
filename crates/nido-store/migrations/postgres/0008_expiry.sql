-- Issue #16 items 3, 4 and 5: a credential package's validity is
-- enforced, SUCI home network keys rotate, devices change owners.
--
-- subscriptions.not_after: when the last package delivered ends (its
-- not_after_unix, seconds since the Unix epoch). From then on the AMF
-- refuses a registration with it (#7, integrity protected) and the device
-- renews by onboarding again with its erasure receipt. NULL for a package
-- delivered before this schema: never refused for expiry.
-- subscriptions.suci_key_id: the id of the SUCI home network key the last
-- package carried, which the device conceals its SUPI with: a key is
-- retired only once no subscription's package carries it. NULL for a
-- package delivered before this schema.
ALTER TABLE subscriptions ADD COLUMN not_after BIGINT;
ALTER TABLE subscriptions ADD COLUMN suci_key_id BIGINT;

-- revoked_claims: the claim codes (keyed hashes) of a device released for
-- a transfer (`nido owner release`). They never claim it again, even when
-- the manufacturer's claims file is imported again (its import skips them).
CREATE TABLE revoked_claims (
    claim_code_hash TEXT PRIMARY KEY,
    device          TEXT NOT NULL,
    at              BIGINT NOT NULL
);
