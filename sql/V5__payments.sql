-- Payments (seed 1 用户支付 / 订单支付, the `payment` and `user_pay_info`
-- tables): one row per attempt with its own event log, refunds, saved
-- payment accounts, and the sandbox gateway's own books.

CREATE TABLE payments (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Shown to shoppers and sent to the gateway; random, not guessable.
    payment_no          TEXT NOT NULL UNIQUE,
    user_id             BIGINT NOT NULL REFERENCES users (id),
    order_id            BIGINT NOT NULL REFERENCES orders (id),
    -- alipay, wechat, bank, btc, eth, usdt, doge, sandbox.
    provider            TEXT NOT NULL,
    amount_cents        BIGINT NOT NULL CHECK (amount_cents > 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    -- The gateway's id of this payment, and of the money movement that
    -- settled it (the idempotency key of its callbacks).
    provider_payment_id TEXT NOT NULL,
    provider_txn_id     TEXT,
    pay_url             TEXT NOT NULL,
    paid_at             TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_payment_id)
);
CREATE UNIQUE INDEX payments_provider_txn_key ON payments (provider, provider_txn_id)
    WHERE provider_txn_id IS NOT NULL;
CREATE INDEX payments_user_idx ON payments (user_id, id DESC);
CREATE INDEX payments_order_idx ON payments (order_id);

-- Everything that happened to a payment, oldest first.
CREATE TABLE payment_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id BIGINT NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('created', 'pending', 'succeeded', 'failed', 'refund_requested',
                                             'refunded', 'refund_failed', 'callback_rejected')),
    detail     JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payment_events_payment_idx ON payment_events (payment_id, id);

-- Money going back through the gateway.
-- Recorded in the transaction that decides the refund, then sent by the
-- refund worker (retried until the gateway takes it; the refund's id is the
-- gateway's idempotency key, so a retry never refunds twice).
CREATE TABLE refunds (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id         BIGINT NOT NULL REFERENCES payments (id),
    amount_cents       BIGINT NOT NULL CHECK (amount_cents > 0),
    reason             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts           INT NOT NULL DEFAULT 0,
    provider_refund_id TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment_idx ON refunds (payment_id);
CREATE INDEX refunds_unsent_idx ON refunds (updated_at) WHERE status <> 'succeeded';

-- Saved payment accounts (seed `user_pay_info`): only a masked number is
-- kept; a payment password is hashed like a login password.
CREATE TABLE user_pay_accounts (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider              TEXT NOT NULL,
    holder_name           TEXT NOT NULL,
    -- e.g. "**** **** **** 4242" or "0x12…cdef".
    account_masked        TEXT NOT NULL,
    payment_password_hash TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX user_pay_accounts_user_idx ON user_pay_accounts (user_id, id);

-- The sandbox gateway's own records, as a real gateway keeps on its side:
-- what it was asked to collect, and what it refunded.
CREATE TABLE sandbox_gateway_payments (
    provider_payment_id TEXT PRIMARY KEY,
    merchant_reference  TEXT NOT NULL,
    amount_cents        BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('open', 'paid', 'declined')),
    txn_id              TEXT,
    refunded_cents      BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The sandbox's refunds by the merchant's idempotency key.
CREATE TABLE sandbox_gateway_refunds (
    refund_key          TEXT PRIMARY KEY,
    provider_payment_id TEXT NOT NULL REFERENCES sandbox_gateway_payments (provider_payment_id),
    amount_cents        BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO role_permissions (role_id, permission)
SELECT r.id, 'payment.read' FROM roles r WHERE r.name IN ('admin', 'staff');
