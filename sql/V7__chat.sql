-- Customer-service chat (issue 7): conversations between a shopper and a
-- shop's staff, their messages, and the appeal / complaint / arbitration
-- cases that each get a conversation of their own.

-- Cases come first: a case conversation points at its case.
-- `status` moves only along these edges (checked in code, each recorded in
-- case_events): open -> escalated | withdrawn; escalated -> in_arbitration
-- | decided; in_arbitration -> decided. An `arbitration` case is filed
-- straight into the operators' queue (escalated).
CREATE TABLE cases (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('complaint', 'appeal', 'arbitration')),
    filed_by             BIGINT NOT NULL REFERENCES users (id),
    -- The shop involved: the one complained about, or the one filing.
    shop_id              BIGINT NOT NULL REFERENCES shops (id),
    -- Set when a shop files against a shopper; NULL when a shopper files against the shop.
    against_user_id      BIGINT REFERENCES users (id),
    -- The user answering for the other side (the shop's owner, or `against_user_id`).
    respondent_id        BIGINT NOT NULL REFERENCES users (id),
    order_id             BIGINT REFERENCES orders (id),
    subject              TEXT NOT NULL,
    description          TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('open', 'escalated', 'in_arbitration', 'decided',
                                                         'withdrawn')),
    operator_id          BIGINT REFERENCES users (id),
    decision             TEXT CHECK (decision IN ('resolved_for_shopper', 'resolved_for_merchant', 'dismissed')),
    decision_note        TEXT,
    escalated_at         TIMESTAMPTZ,
    decided_at           TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'decided') = (decision IS NOT NULL))
);
CREATE INDEX cases_filed_by_idx ON cases (filed_by, id DESC);
CREATE INDEX cases_respondent_idx ON cases (respondent_id, id DESC);
-- The operators' queue.
CREATE INDEX cases_queue_idx ON cases (escalated_at, id) WHERE status IN ('escalated', 'in_arbitration');

-- Every status change of a case, who made it and why.
CREATE TABLE case_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     BIGINT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    actor_id    BIGINT NOT NULL REFERENCES users (id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX case_events_case_idx ON case_events (case_id, id);

-- A conversation: customer service (a shopper and the shop's agent) or the
-- thread of a case. Its last seq is max(messages.seq): no counter row is
-- updated per message, so the message insert stays the only hot write.
CREATE TABLE conversations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('service', 'case')),
    shop_id     BIGINT NOT NULL REFERENCES shops (id),
    shopper_id  BIGINT NOT NULL REFERENCES users (id),
    product_id  BIGINT REFERENCES products (id),
    order_id    BIGINT REFERENCES orders (id),
    case_id     BIGINT UNIQUE REFERENCES cases (id),
    -- The staff member serving a `service` conversation; NULL while queued.
    agent_id    BIGINT REFERENCES users (id),
    status      TEXT NOT NULL CHECK (status IN ('queued', 'open', 'closed')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at   TIMESTAMPTZ,
    CHECK ((kind = 'case') = (case_id IS NOT NULL)),
    CHECK (status <> 'open' OR kind = 'case' OR agent_id IS NOT NULL)
);
-- One live service conversation per shopper and shop.
CREATE UNIQUE INDEX conversations_one_live ON conversations (shop_id, shopper_id)
    WHERE kind = 'service' AND status <> 'closed';
-- A shop's queue, oldest first, and each agent's open load.
CREATE INDEX conversations_queue_idx ON conversations (shop_id, id) WHERE status = 'queued';
CREATE INDEX conversations_agent_idx ON conversations (agent_id, shop_id) WHERE status = 'open';

-- Who may read and send in a conversation, and how far each has read.
-- A member who left (an agent after a transfer) keeps the row with `left_at`.
CREATE TABLE conversation_members (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL CHECK (role IN ('shopper', 'agent', 'filer', 'respondent', 'operator')),
    last_read_seq   BIGINT NOT NULL DEFAULT 0,
    joined_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    left_at         TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, user_id)
);
-- By user only: a conversation's members are found through the primary key.
CREATE INDEX conversation_members_user_idx ON conversation_members (user_id) WHERE left_at IS NULL;

-- Messages, numbered per conversation by the shard actor that owns it.
-- `client_msg_id` makes a retried send a no-op (unique per sender and
-- conversation). No foreign keys: rows come only from the shard actor, which
-- checked the conversation and the sender's membership, and a foreign-key
-- trigger per row would be the largest cost of the hottest insert. `id` is
-- the server id of a message, unique by its identity sequence.
CREATE TABLE messages (
    conversation_id BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    sender_id       BIGINT NOT NULL,
    client_msg_id   TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'image', 'product_card', 'order_card')),
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id)
);

-- Operators who handle complaints, appeals and arbitration.
INSERT INTO role_permissions (role_id, permission)
SELECT r.id, 'case.arbitrate' FROM roles r WHERE r.name IN ('admin', 'staff');
