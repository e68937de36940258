-- Issue #16: a registration under way ends when its credential package
-- does (an operator's rekey or owner release, or the end of its validity):
-- every serving network asks, once per poll, which packages ended since it
-- last asked. An index on the end keeps that one range read, whatever the
-- number of subscriptions.
CREATE INDEX subscriptions_not_after ON subscriptions (not_after);
