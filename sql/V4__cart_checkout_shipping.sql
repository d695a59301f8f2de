-- Address book, carts, checkout of normal orders, and shipping
-- (seed 1 购物车系统, 订单系统, 店铺物流管理).

CREATE TABLE addresses (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient   TEXT NOT NULL,
    phone       TEXT NOT NULL,
    -- Province / city / district as one line, e.g. "Zhejiang Hangzhou Xihu".
    region      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    postal_code TEXT,
    is_default  BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user_idx ON addresses (user_id, id);
CREATE UNIQUE INDEX addresses_one_default ON addresses (user_id) WHERE is_default;

-- Cart lines, written only by the shopper's cart actor through a
-- group-commit writer. `version` grows with every change the actor makes,
-- so batches committed out of order never roll a line back; a removed
-- line stays as a tombstone (quantity 0) that a later add revives.
CREATE TABLE cart_lines (
    user_id           BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sku_id            BIGINT NOT NULL REFERENCES skus (id),
    quantity          INT NOT NULL CHECK (quantity >= 0),
    selected          BOOLEAN NOT NULL DEFAULT true,
    -- The unit price when the line was first added, to show price changes.
    added_price_cents BIGINT NOT NULL CHECK (added_price_cents >= 0),
    version           BIGINT NOT NULL,
    added_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, sku_id)
);

-- One checkout places one order per shop; it carries the idempotency key.
CREATE TABLE checkouts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    idempotency_key TEXT,
    -- Digest of the request, to refuse a key reused for a different one.
    request_digest  TEXT NOT NULL,
    total_cents     BIGINT NOT NULL CHECK (total_cents >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX checkouts_idempotency_key ON checkouts (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

ALTER TABLE orders
    ADD COLUMN checkout_id      BIGINT REFERENCES checkouts (id),
    -- The address as it was at checkout.
    ADD COLUMN shipping_address JSONB,
    ADD COLUMN shipped_at       TIMESTAMPTZ,
    ADD COLUMN delivered_at     TIMESTAMPTZ,
    ADD COLUMN completed_at     TIMESTAMPTZ,
    -- When a delivered order completes by itself.
    ADD COLUMN complete_after   TIMESTAMPTZ;
CREATE INDEX orders_shop_idx ON orders (shop_id, created_at DESC, id DESC) WHERE shop_id IS NOT NULL;
CREATE INDEX orders_checkout_idx ON orders (checkout_id) WHERE checkout_id IS NOT NULL;
CREATE INDEX orders_complete_after_idx ON orders (complete_after) WHERE status = 'delivered';
-- Normal orders hold a shop; flash-sale orders may not (yet).
ALTER TABLE orders ADD CONSTRAINT orders_normal_has_shop CHECK (kind <> 'normal' OR shop_id IS NOT NULL);

-- A snapshot of what was bought: product, spec, price.
ALTER TABLE order_items
    ADD COLUMN product_id  BIGINT REFERENCES products (id),
    ADD COLUMN spec_values JSONB NOT NULL DEFAULT '{}';

-- Notes merchants and operators add to an order.
CREATE TABLE order_notes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    author_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    note       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_notes_order_idx ON order_notes (order_id, id);

-- One shipment per order: carrier, tracking number, what went in the box.
CREATE TABLE shipments (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    BIGINT NOT NULL UNIQUE REFERENCES orders (id) ON DELETE CASCADE,
    carrier     TEXT NOT NULL,
    tracking_no TEXT NOT NULL,
    -- [{"sku_id": 1, "quantity": 2}]
    items       JSONB NOT NULL,
    shipped_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (carrier, tracking_no)
);

-- Tracking events, from the merchant or the carrier's webhook. A carrier's
-- own event id makes a redelivered webhook a no-op.
CREATE TABLE tracking_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id BIGINT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('in_transit', 'out_for_delivery', 'delivered', 'exception')),
    location    TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    occurred_at TIMESTAMPTZ NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('merchant', 'carrier')),
    external_id TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tracking_events_shipment_idx ON tracking_events (shipment_id, occurred_at, id);
CREATE UNIQUE INDEX tracking_events_external_key ON tracking_events (shipment_id, external_id)
    WHERE external_id IS NOT NULL;

-- Platform permissions of this area.
INSERT INTO role_permissions (role_id, permission)
SELECT r.id, p.permission
FROM roles r
CROSS JOIN (VALUES ('order.audit'), ('order.intervene')) AS p (permission)
WHERE r.name IN ('admin', 'staff');
