-- Shops (B side), their staff, the category tree, products (SPU) with their
-- SKUs, and the inventory ledger (seed 1 店铺系统 / 商品系统, seed 2 product_spu).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A shop is born as an application (`pending`) that operators approve or
-- reject; operators may later suspend and reinstate it.
CREATE TABLE shops (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id       BIGINT NOT NULL REFERENCES users (id),
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    logo_url       TEXT,
    contact_name   TEXT NOT NULL,
    contact_phone  TEXT NOT NULL,
    return_address TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'active', 'rejected', 'suspended')),
    -- Why it was rejected or suspended.
    status_reason  TEXT,
    reviewed_by    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    reviewed_at    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Names are unique among shops that exist or are being applied for.
CREATE UNIQUE INDEX shops_name_key ON shops (lower(name)) WHERE status <> 'rejected';
-- One open application per member at a time.
CREATE UNIQUE INDEX shops_one_pending_per_owner ON shops (owner_id) WHERE status = 'pending';
CREATE INDEX shops_status_idx ON shops (status, created_at, id);

-- Staff of a shop with a shop-scoped role. `permissions` is the explicit set
-- of a `custom` role (NULL for the built-in roles, which the code defines).
-- An invitation is a row not yet accepted.
CREATE TABLE shop_members (
    shop_id     BIGINT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'customer_service', 'warehouse', 'custom')),
    permissions TEXT[] CHECK ((role = 'custom') = (permissions IS NOT NULL)),
    invited_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    accepted_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, user_id)
);
CREATE INDEX shop_members_user_idx ON shop_members (user_id);
CREATE UNIQUE INDEX shop_members_one_owner ON shop_members (shop_id) WHERE role = 'owner';

CREATE TABLE categories (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id  BIGINT REFERENCES categories (id),
    name       TEXT NOT NULL,
    sort_order INT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE UNIQUE INDEX categories_sibling_name_key ON categories (COALESCE(parent_id, 0), lower(name));

-- A product (SPU). Its columns hold the live, customer-visible version.
-- While it has never been listed (`draft`, `pending_review`, `rejected`),
-- edits write these columns directly. Once it has been listed, an edit of
-- its customer-facing content is held in `pending_content` for review and
-- the live version stays up until an operator approves the revision.
CREATE TABLE products (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id         BIGINT NOT NULL REFERENCES shops (id),
    category_id     BIGINT NOT NULL REFERENCES categories (id),
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    brand           TEXT NOT NULL DEFAULT '',
    images          TEXT[] NOT NULL DEFAULT '{}',
    tags            TEXT[] NOT NULL DEFAULT '{}',
    audience        TEXT NOT NULL DEFAULT 'anyone' CHECK (audience IN ('anyone', 'members_only')),
    product_type    TEXT NOT NULL DEFAULT 'normal' CHECK (product_type IN ('normal', 'recharge', 'license')),
    -- Display attributes, {"material": "cotton"}: filterable.
    attributes      JSONB NOT NULL DEFAULT '{}',
    -- Spec definitions, [{"name": "colour", "values": ["red", "blue"]}].
    specs           JSONB NOT NULL DEFAULT '[]',
    status          TEXT NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'pending_review', 'rejected', 'listed', 'unlisted')),
    review_reason   TEXT,
    -- Bumped on every edit; a review names the revision it approves, so an
    -- edit made while an operator was looking is never approved unseen.
    revision        INT NOT NULL DEFAULT 1,
    -- A listed (or unlisted) product's edit awaiting review, and its state.
    pending_content JSONB,
    pending_state   TEXT CHECK (pending_state IN ('pending_review', 'rejected')),
    pending_reason  TEXT,
    -- Cheapest and dearest active SKU, for price filters and sorting.
    min_price_cents BIGINT NOT NULL DEFAULT 0,
    max_price_cents BIGINT NOT NULL DEFAULT 0,
    sales_count     BIGINT NOT NULL DEFAULT 0,
    search          TSVECTOR GENERATED ALWAYS AS (
                        to_tsvector('simple', name || ' ' || brand || ' ' || description)) STORED,
    listed_at       TIMESTAMPTZ,
    created_by      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((pending_content IS NULL) = (pending_state IS NULL))
);
CREATE INDEX products_shop_idx ON products (shop_id, id DESC);
CREATE INDEX products_listed_newest_idx ON products (listed_at DESC, id DESC) WHERE status = 'listed';
CREATE INDEX products_listed_price_idx ON products (min_price_cents, id) WHERE status = 'listed';
CREATE INDEX products_category_idx ON products (category_id) WHERE status = 'listed';
CREATE INDEX products_search_idx ON products USING GIN (search);
CREATE INDEX products_name_trgm_idx ON products USING GIN (name gin_trgm_ops);
CREATE INDEX products_attributes_idx ON products USING GIN (attributes jsonb_path_ops);
CREATE INDEX products_review_queue_idx ON products (updated_at, id)
    WHERE status = 'pending_review' OR pending_state = 'pending_review';

-- One SKU per combination of spec values. A SKU dropped from its product is
-- deactivated, never deleted: orders and carts keep pointing at it.
CREATE TABLE skus (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id          BIGINT NOT NULL REFERENCES products (id),
    shop_id             BIGINT NOT NULL REFERENCES shops (id),
    -- {"colour": "red", "size": "XL"}; `spec_key` is its canonical text form.
    spec_values         JSONB NOT NULL,
    spec_key            TEXT NOT NULL,
    code                TEXT NOT NULL,
    price_cents         BIGINT NOT NULL CHECK (price_cents >= 0),
    market_price_cents  BIGINT CHECK (market_price_cents >= 0),
    -- Changed only together with an `inventory_movements` row, by one
    -- conditional statement.
    stock               INT NOT NULL DEFAULT 0 CHECK (stock >= 0),
    low_stock_threshold INT NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
    active              BOOLEAN NOT NULL DEFAULT true,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (product_id, spec_key)
);
CREATE UNIQUE INDEX skus_code_key ON skus (shop_id, lower(code)) WHERE active;
CREATE INDEX skus_low_stock_idx ON skus (shop_id, id) WHERE active AND stock <= low_stock_threshold;

-- Every change of a SKU's stock: what, by how much, the level after, who
-- and why. The sum of `delta` per SKU always equals its stock.
CREATE TABLE inventory_movements (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku_id      BIGINT NOT NULL REFERENCES skus (id),
    shop_id     BIGINT NOT NULL REFERENCES shops (id),
    kind        TEXT NOT NULL CHECK (kind IN ('adjustment', 'reservation', 'sale', 'release', 'return')),
    delta       INT NOT NULL CHECK (delta <> 0),
    stock_after INT NOT NULL CHECK (stock_after >= 0),
    order_id    BIGINT REFERENCES orders (id),
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    reason      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX inventory_movements_shop_idx ON inventory_movements (shop_id, id DESC);
CREATE INDEX inventory_movements_sku_idx ON inventory_movements (sku_id, id DESC);

-- Platform permissions of this area.
INSERT INTO role_permissions (role_id, permission)
SELECT r.id, p.permission
FROM roles r
CROSS JOIN (VALUES ('shop.review'), ('product.review'), ('catalog.manage')) AS p (permission)
WHERE r.name IN ('admin', 'staff');
