-- Issue #16 item 5: a credential package's validity is enforced.
--
-- subscriptions.not_after: when the last package delivered ends (its
-- not_after_unix, seconds since the Unix epoch). From then on the AMF
-- refuses a registration with it (#7, integrity protected) and the device
-- renews by onboarding again with its erasure receipt. NULL for a package
-- delivered before this schema: never refused for expiry.
ALTER TABLE subscriptions ADD COLUMN not_after BIGINT;
