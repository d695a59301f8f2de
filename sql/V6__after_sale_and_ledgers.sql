-- After-sale (seed 1 订单退款/退货) and the money ledgers (用户账单, 店铺财务).

-- What has been refunded of an order and of each line. The CHECKs are the
-- last word on "a refund never exceeds what was paid", whatever races the
-- application loses.
ALTER TABLE orders
    ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0,
    -- What completion credited to the shop (paid minus refunded then);
    -- null until the order completes.
    ADD COLUMN settled_cents  BIGINT,
    -- The commission rate (basis points) completion charged, so a later
    -- refund gives back exactly the commission taken.
    ADD COLUMN commission_bps INT,
    -- The gateway payment that paid the order; refunds go back through it.
    ADD COLUMN paid_by_payment_id BIGINT,
    ADD CONSTRAINT orders_refund_within_total CHECK (refunded_cents BETWEEN 0 AND total_cents);
ALTER TABLE order_items
    ADD COLUMN refunded_quantity INT NOT NULL DEFAULT 0,
    ADD COLUMN refunded_cents    BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT order_items_refund_within_line
        CHECK (refunded_quantity BETWEEN 0 AND quantity AND refunded_cents BETWEEN 0 AND total_cents);

-- A shopper's refund (before shipping) or return-and-refund (after
-- delivery) request, for a whole order or some of its lines.
CREATE TABLE after_sales (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Shown to people: "R" + yymmdd + 12 random digits.
    case_no            TEXT NOT NULL UNIQUE,
    order_id           BIGINT NOT NULL REFERENCES orders (id),
    user_id            BIGINT NOT NULL REFERENCES users (id),
    shop_id            BIGINT REFERENCES shops (id),
    kind               TEXT NOT NULL CHECK (kind IN ('refund', 'return')),
    status             TEXT NOT NULL CHECK (status IN ('requested', 'rejected', 'disputed', 'approved',
                                                       'returning', 'refunded', 'withdrawn', 'closed')),
    reason             TEXT NOT NULL,
    photos             JSONB NOT NULL DEFAULT '[]',
    amount_cents       BIGINT NOT NULL CHECK (amount_cents > 0),
    -- The last reason given by whoever decided (merchant or operator).
    decision_note      TEXT,
    return_carrier     TEXT,
    return_tracking_no TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX after_sales_order_idx ON after_sales (order_id);
CREATE INDEX after_sales_user_idx ON after_sales (user_id, id DESC);
CREATE INDEX after_sales_shop_idx ON after_sales (shop_id, id DESC) WHERE shop_id IS NOT NULL;
CREATE INDEX after_sales_disputed_idx ON after_sales (id) WHERE status = 'disputed';

-- The lines (and units) a request covers, with what they refund.
CREATE TABLE after_sale_items (
    after_sale_id BIGINT NOT NULL REFERENCES after_sales (id) ON DELETE CASCADE,
    sku_id        BIGINT NOT NULL,
    quantity      INT NOT NULL CHECK (quantity > 0),
    amount_cents  BIGINT NOT NULL CHECK (amount_cents >= 0),
    PRIMARY KEY (after_sale_id, sku_id)
);

-- Every status change of a request: who, when, from, to, why.
CREATE TABLE after_sale_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    after_sale_id BIGINT NOT NULL REFERENCES after_sales (id) ON DELETE CASCADE,
    from_status   TEXT,
    to_status     TEXT NOT NULL,
    actor_id      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    note          TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX after_sale_events_idx ON after_sale_events (after_sale_id, id);

-- When the gateway took a refund (a user's bill and the shop statistics
-- date it by this), and the request it pays.
ALTER TABLE refunds
    ADD COLUMN succeeded_at  TIMESTAMPTZ,
    ADD COLUMN after_sale_id BIGINT REFERENCES after_sales (id);
UPDATE refunds SET succeeded_at = updated_at WHERE status = 'succeeded';
CREATE INDEX refunds_succeeded_idx ON refunds (succeeded_at) WHERE status = 'succeeded';
ALTER TABLE orders ADD CONSTRAINT orders_paid_by_payment_fk
    FOREIGN KEY (paid_by_payment_id) REFERENCES payments (id);
CREATE INDEX payments_paid_idx ON payments (user_id, paid_at) WHERE paid_at IS NOT NULL;

-- Withdrawals of a shop's balance, paid out once an operator approves.
CREATE TABLE shop_withdrawals (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id        BIGINT NOT NULL REFERENCES shops (id),
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
    status         TEXT NOT NULL CHECK (status IN ('requested', 'paid', 'rejected')),
    -- Where the money goes, as the merchant typed it (masked when shown).
    payout_account TEXT NOT NULL,
    requested_by   BIGINT NOT NULL REFERENCES users (id),
    decided_by     BIGINT REFERENCES users (id),
    note           TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at     TIMESTAMPTZ
);
CREATE INDEX shop_withdrawals_shop_idx ON shop_withdrawals (shop_id, id DESC);
CREATE INDEX shop_withdrawals_open_idx ON shop_withdrawals (id) WHERE status = 'requested';

-- The platform's books, double entry. Every money event is one journal
-- entry whose lines sum to zero: a positive amount debits its account, a
-- negative one credits it. The accounts:
--   cash              money held at the gateways (debit = in)
--   escrow            paid for orders not yet completed (credit balance)
--   refunds_payable   refunds decided, not yet taken by the gateway
--   commission        the platform's cut of completed orders
--   platform_sales    completed flash-sale orders that belong to no shop
--   shop_balance      what the platform owes a shop (credit balance)
--   shop_withdrawing  a shop's withdrawals awaiting an operator
CREATE TABLE journal_entries (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('payment', 'refund_owed', 'refund_sent', 'unapplied_receipt',
                                                'settlement', 'withdrawal_requested', 'withdrawal_paid',
                                                'withdrawal_rejected')),
    order_id      BIGINT REFERENCES orders (id),
    refund_id     BIGINT REFERENCES refunds (id),
    withdrawal_id BIGINT REFERENCES shop_withdrawals (id),
    memo          TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX journal_entries_order_idx ON journal_entries (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE journal_lines (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id     BIGINT NOT NULL REFERENCES journal_entries (id),
    account      TEXT NOT NULL CHECK (account IN ('cash', 'escrow', 'refunds_payable', 'commission',
                                                  'platform_sales', 'shop_balance', 'shop_withdrawing')),
    shop_id      BIGINT REFERENCES shops (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents <> 0),
    CHECK ((account IN ('shop_balance', 'shop_withdrawing')) = (shop_id IS NOT NULL))
);
CREATE INDEX journal_lines_entry_idx ON journal_lines (entry_id);
CREATE INDEX journal_lines_shop_idx ON journal_lines (shop_id, id DESC) WHERE shop_id IS NOT NULL;

-- An entry that does not balance cannot commit, whatever code wrote it.
CREATE FUNCTION journal_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT sum(amount_cents) FROM journal_lines WHERE entry_id = NEW.entry_id) <> 0 THEN
        RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER journal_lines_balance AFTER INSERT ON journal_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balances();

-- The books are append-only: a mistake is corrected by a new entry.
CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_append_only();

-- Operators who approve withdrawals and read the platform's books.
INSERT INTO role_permissions (role_id, permission)
SELECT r.id, 'finance.manage' FROM roles r WHERE r.name = 'admin';
