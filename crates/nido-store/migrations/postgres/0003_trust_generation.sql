-- The trust generation: a counter that every change of the DCS's trust
-- data (manufacturers, CRLs, block list) advances in the same transaction,
-- by the triggers below, whoever makes the change (a nido command, another
-- network process, an operator's SQL). A serving network polls it and
-- reloads its trust store when it moved. A later migration that recreates
-- one of these tables must create its triggers again.
CREATE TABLE trust_generation (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL CHECK (generation >= 0)
);
INSERT INTO trust_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION trust_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE trust_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER manufacturers_trust AFTER INSERT OR UPDATE OR DELETE ON manufacturers
    FOR EACH ROW EXECUTE FUNCTION trust_generation_bump();
CREATE TRIGGER manufacturers_trust_truncate AFTER TRUNCATE ON manufacturers
    FOR EACH STATEMENT EXECUTE FUNCTION trust_generation_bump();
CREATE TRIGGER crls_trust AFTER INSERT OR UPDATE OR DELETE ON crls
    FOR EACH ROW EXECUTE FUNCTION trust_generation_bump();
CREATE TRIGGER crls_trust_truncate AFTER TRUNCATE ON crls
    FOR EACH STATEMENT EXECUTE FUNCTION trust_generation_bump();
CREATE TRIGGER blocked_trust AFTER INSERT OR UPDATE OR DELETE ON blocked
    FOR EACH ROW EXECUTE FUNCTION trust_generation_bump();
CREATE TRIGGER blocked_trust_truncate AFTER TRUNCATE ON blocked
    FOR EACH STATEMENT EXECUTE FUNCTION trust_generation_bump();

-- SUPIs allocated per manufacturer, against its quota (the policy's
-- max_subscriptions): counted in the transaction that allocates the MSIN,
-- never decremented (an MSIN is never handed out twice either).
CREATE TABLE manufacturer_allocations (
    manufacturer TEXT PRIMARY KEY,
    allocated    BIGINT NOT NULL CHECK (allocated >= 0)
);
