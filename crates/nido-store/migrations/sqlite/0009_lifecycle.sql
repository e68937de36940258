-- Issue #16: a registration under way ends when its credential package
-- does (an operator's rekey or owner release, or the end of its validity):
-- every serving network asks, once per poll, which packages ended since it
-- last asked. An index on the end keeps that one range read, whatever the
-- number of subscriptions.
CREATE INDEX subscriptions_not_after ON subscriptions (not_after);

-- Issue #16 item 1: a device's owner is told when its device is blocked,
-- unblocked or released, through the same outbox and destinations as its
-- data. outbox.kind: 'uplink' (a burst) or 'event' (data: a JSON object
-- {"event": ..., "reason": ...}); both share the device's sequence numbers.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'uplink';
