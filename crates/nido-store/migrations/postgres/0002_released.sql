-- A subscription the operator released for re-provisioning (`nido network
-- release`).
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_state_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_state_check
    CHECK (state IN ('created', 'provisioned', 'active', 'released'));
