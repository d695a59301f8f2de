-- The gateway transaction a refund gives back, for money that arrived on a
-- payment already settled (charged twice, or paid after a decline): a
-- redelivered callback of that transaction must find its refund, not owe
-- a new one.
ALTER TABLE refunds ADD COLUMN source_txn_id TEXT;
CREATE UNIQUE INDEX refunds_source_txn_idx ON refunds (payment_id, source_txn_id)
    WHERE source_txn_id IS NOT NULL;
