-- Device identities become MANUFACTURER/SERIAL (issue #17): an IDevID serial
-- is unique only within its manufacturer, so every device key (subscriptions,
-- claims, block list, devices seen, provisioning log) names the enrolled
-- manufacturer too. Rows written before name the serial alone:
-- - with exactly one manufacturer enrolled, they are its devices and are
--   qualified with its name;
-- - a blocked serial is blocked under every enrolled manufacturer (what the
--   old serial-only block meant), when at least one is enrolled;
-- - with several manufacturers, other rows are left as they are: they no
--   longer match any device and are reported as stored data that does not
--   decode (the operator re-imports claims, re-onboards the device).
-- The audit trail is append-only and keeps what it said then.
--
-- Claim code hashes become keyed (HMAC-SHA-256 under a key derived from the
-- KEK): `keyed` says which rows are; the store re-keys the old ones when it
-- opens (SQL cannot compute the HMAC).

UPDATE subscriptions SET device = (SELECT name FROM manufacturers) || '/' || device
WHERE device NOT LIKE '%/%' AND (SELECT COUNT(*) FROM manufacturers) = 1;
UPDATE claims SET device = (SELECT name FROM manufacturers) || '/' || device
WHERE device NOT LIKE '%/%' AND (SELECT COUNT(*) FROM manufacturers) = 1;
UPDATE provisioning SET device = (SELECT name FROM manufacturers) || '/' || device
WHERE device NOT LIKE '%/%' AND (SELECT COUNT(*) FROM manufacturers) = 1;
UPDATE devices SET serial = (SELECT name FROM manufacturers) || '/' || serial
WHERE serial NOT LIKE '%/%' AND (SELECT COUNT(*) FROM manufacturers) = 1;

INSERT INTO blocked (serial, reason, at)
SELECT m.name || '/' || b.serial, b.reason, b.at
FROM blocked b CROSS JOIN manufacturers m
WHERE b.serial NOT LIKE '%/%'
ON CONFLICT (serial) DO NOTHING;
DELETE FROM blocked
WHERE serial NOT LIKE '%/%' AND EXISTS (SELECT 1 FROM manufacturers);

ALTER TABLE claims ADD COLUMN keyed BOOLEAN NOT NULL DEFAULT FALSE;
