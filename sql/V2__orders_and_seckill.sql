-- Orders (shared by flash sales and, later, cart checkout) and the flash-sale
-- (seckill) engine's tables. Money is integer minor units (cents).

CREATE TABLE seckill_events (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The SKU on sale. The catalog (issue 3) adds the foreign key and the
    -- stock movement out of regular inventory.
    sku_id              BIGINT NOT NULL,
    title               TEXT NOT NULL,
    price_cents         BIGINT NOT NULL CHECK (price_cents >= 0),
    currency            TEXT NOT NULL DEFAULT 'CNY',
    total_stock         INT NOT NULL CHECK (total_stock > 0),
    -- Written only by the group-commit writer (one decrement per event per
    -- batch) and by expiry/cancellation (returns). The CHECK is the database's
    -- last line of defence against oversell.
    remaining_stock     INT NOT NULL CHECK (remaining_stock >= 0 AND remaining_stock <= total_stock),
    per_user_limit      INT NOT NULL CHECK (per_user_limit > 0),
    starts_at           TIMESTAMPTZ NOT NULL,
    ends_at             TIMESTAMPTZ NOT NULL,
    payment_window_secs INT NOT NULL CHECK (payment_window_secs > 0),
    require_purchase_token BOOLEAN NOT NULL DEFAULT false,
    -- Token-bucket limits on the buy path (requests/second); NULL means the
    -- configured default, 0 turns the limit off.
    user_rate_per_sec   INT CHECK (user_rate_per_sec >= 0),
    ip_rate_per_sec     INT CHECK (ip_rate_per_sec >= 0),
    opened_at           TIMESTAMPTZ,
    closed_at           TIMESTAMPTZ,
    created_by          BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX seckill_events_ends_idx ON seckill_events (ends_at) WHERE closed_at IS NULL;

-- Units each user holds in live (not cancelled) orders of an event. The
-- CHECK backs the per-user limit in the database as well as in the actor.
CREATE TABLE seckill_user_counts (
    event_id       BIGINT NOT NULL REFERENCES seckill_events (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    per_user_limit INT NOT NULL,
    bought         INT NOT NULL,
    PRIMARY KEY (event_id, user_id),
    CHECK (bought >= 0 AND bought <= per_user_limit)
);

CREATE TABLE orders (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Readable and unguessable: yymmdd + 12 random digits.
    order_no         TEXT NOT NULL UNIQUE,
    user_id          BIGINT NOT NULL REFERENCES users (id),
    shop_id          BIGINT,
    kind             TEXT NOT NULL CHECK (kind IN ('normal', 'seckill')),
    seckill_event_id BIGINT REFERENCES seckill_events (id),
    status           TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'shipped', 'delivered',
                                                     'completed', 'cancelled')),
    total_cents      BIGINT NOT NULL CHECK (total_cents >= 0),
    currency         TEXT NOT NULL DEFAULT 'CNY',
    idempotency_key  TEXT,
    pay_before       TIMESTAMPTZ,
    paid_at          TIMESTAMPTZ,
    cancelled_at     TIMESTAMPTZ,
    cancel_reason    TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'seckill') = (seckill_event_id IS NOT NULL))
);
CREATE UNIQUE INDEX orders_idempotency_key ON orders (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_user_idx ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_event_idx ON orders (seckill_event_id, status) WHERE seckill_event_id IS NOT NULL;
CREATE INDEX orders_unpaid_deadline_idx ON orders (pay_before) WHERE status = 'pending_payment';

CREATE TABLE order_items (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku_id           BIGINT NOT NULL,
    title            TEXT NOT NULL,
    quantity         INT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    total_cents      BIGINT NOT NULL CHECK (total_cents >= 0)
);
CREATE INDEX order_items_order_idx ON order_items (order_id);

-- Every status change of an order: who, when, from, to, why.
CREATE TABLE order_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_history_order_idx ON order_history (order_id, id);

-- Payments that could not be applied (order expired or cancelled first):
-- recorded so they can be refunded; they never resurrect the order.
CREATE TABLE payment_exceptions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     BIGINT NOT NULL REFERENCES orders (id),
    amount_cents BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    refunded_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
