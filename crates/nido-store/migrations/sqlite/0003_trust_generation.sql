-- The trust generation: a counter that every change of the DCS's trust
-- data (manufacturers, CRLs, block list) advances in the same transaction,
-- by the triggers below, whoever makes the change (a nido command, another
-- network process, an operator's SQL). A serving network polls it and
-- reloads its trust store when it moved. A later migration that rebuilds
-- one of these tables must create its three triggers again.
CREATE TABLE trust_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL CHECK (generation >= 0)
);
INSERT INTO trust_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER manufacturers_trust_insert AFTER INSERT ON manufacturers
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER manufacturers_trust_update AFTER UPDATE ON manufacturers
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER manufacturers_trust_delete AFTER DELETE ON manufacturers
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER crls_trust_insert AFTER INSERT ON crls
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER crls_trust_update AFTER UPDATE ON crls
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER crls_trust_delete AFTER DELETE ON crls
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER blocked_trust_insert AFTER INSERT ON blocked
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER blocked_trust_update AFTER UPDATE ON blocked
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER blocked_trust_delete AFTER DELETE ON blocked
BEGIN UPDATE trust_generation SET generation = generation + 1 WHERE id = 1; END;

-- SUPIs allocated per manufacturer, against its quota (the policy's
-- max_subscriptions): counted in the transaction that allocates the MSIN,
-- never decremented (an MSIN is never handed out twice either).
CREATE TABLE manufacturer_allocations (
    manufacturer TEXT PRIMARY KEY,
    allocated    INTEGER NOT NULL CHECK (allocated >= 0)
);
