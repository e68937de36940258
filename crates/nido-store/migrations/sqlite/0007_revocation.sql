-- Issue #16: a CRL that revokes the certificate of a device that already
-- holds a subscription suspends it.
--
-- devices.cert_serial, cert_issuer: the serialNumber (big-endian) and the
-- issuer name (DER) of the certificate of the device that got its last
-- package (EAP-TLS with the built-in DCS; NULL when a relayed realm's DCS
-- authenticated it, or before this schema), so a CRL imported later finds
-- the devices it revokes.
-- blocked.deferred: a block that takes effect at the device's next
-- registration (the operator's policy for such a CRL) rather than ending a
-- registration under way.
ALTER TABLE devices ADD COLUMN cert_serial BLOB;
ALTER TABLE devices ADD COLUMN cert_issuer BLOB;
ALTER TABLE blocked ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0;
