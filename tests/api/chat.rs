//! Chat: routing to the least-loaded online agent and the queue, acks after
//! the commit, dedup of retried sends, live delivery, resume after a
//! reconnect with exactly the missed messages, read receipts, typing,
//! members only, transfer and close, the slow consumer, and cases from
//! filing to decision.

use std::time::Duration;

use actix_codec::Framed;
use awc::http::StatusCode;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::{fresh_settings, spawn_app, spawn_app_with, TestApp};

/// A test's WebSocket client.
struct Ws {
    framed: Framed<BoxedSocket, Codec>,
}

impl Ws {
    async fn connect(app: &TestApp, token: &str) -> Ws {
        let url = format!("{}/api/chat/ws?token={token}", app.address.replacen("http", "ws", 1));
        let (_, framed) = awc::Client::new().ws(url).connect().await.expect("ws connect");
        Ws { framed }
    }

    async fn send(&mut self, frame: Value) {
        self.framed.send(Message::Text(frame.to_string().into())).await.expect("ws send");
    }

    /// The next JSON frame within `wait`, `None` on a close or timeout.
    async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(wait, self.framed.next()).await.ok()??.ok()?;
            match frame {
                Frame::Text(bytes) => return serde_json::from_slice(&bytes).ok(),
                Frame::Ping(bytes) => {
                    let _ = self.framed.send(Message::Pong(bytes)).await;
                }
                Frame::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next frame of type `kind`, skipping others (presence, typing...).
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame =
                self.next_within(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("no {kind} frame"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Asserts no frame of type `kind` arrives for a while.
    async fn none_of(&mut self, kind: &str) {
        while let Some(frame) = self.next_within(Duration::from_millis(400)).await {
            assert_ne!(frame["type"], kind, "unexpected {frame}");
        }
    }

    async fn say(&mut self, conversation_id: i64, client_msg_id: &str, text: &str) -> Value {
        self.send(json!({"type": "send", "conversation_id": conversation_id, "client_msg_id": client_msg_id,
                         "kind": "text", "payload": {"text": text}}))
            .await;
        self.next_of("ack").await
    }
}

/// An approved shop: (shop id, owner token) and chat staff `agents` (ids, tokens).
async fn shop_with_agents(
    app: &TestApp,
    admin: &str,
    name: &str,
    agents: &[&str],
) -> (i64, String, Vec<(i64, String)>) {
    let owner_name = format!("{}_owner", name.to_lowercase().replace(' ', ""));
    let (shop_id, owner) = app.open_shop(admin, &owner_name, name).await;
    let mut staff = Vec::new();
    for agent in agents {
        let (id, token) = app.member(agent).await;
        let path = format!("/api/merchant/shops/{shop_id}/staff");
        let reply = app
            .call("POST", &path, Some(&owner), Some(json!({"login": agent, "role": "customer_service"})))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let reply = app.call("POST", &format!("/api/shops/{shop_id}/invitation"), Some(&token), None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        staff.push((id, token));
    }
    (shop_id, owner, staff)
}

async fn open(app: &TestApp, token: &str, shop_id: i64) -> Value {
    let reply =
        app.call("POST", "/api/chat/conversations", Some(token), Some(json!({"shop_id": shop_id}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body
}

/// Waits until the shop's router counts `n` online agents (connections
/// register asynchronously).
async fn online(app: &TestApp, shop_id: i64, n: usize) {
    let state = app.state.as_ref().unwrap();
    for _ in 0..100 {
        if rs_cms::chat::service::online_agents(state, shop_id).await.unwrap().len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the shop never had {n} agents online");
}

#[actix_web::test]
async fn conversations_go_to_the_least_loaded_online_agent_and_wait_when_none_is_online() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, _, staff) = shop_with_agents(&app, &admin, "Tea House", &["amy", "bob"]).await;
    let [(amy_id, amy), (bob_id, bob)] = [staff[0].clone(), staff[1].clone()];
    let (_, s1) = app.member("shopper1").await;
    let (_, s2) = app.member("shopper2").await;
    let (_, s3) = app.member("shopper3").await;

    // Nobody online: the shopper waits in the queue and sees it.
    let first = open(&app, &s1, shop_id).await;
    assert_eq!((first["status"].as_str(), first["agent_id"].as_i64()), (Some("queued"), None));
    let mut shopper1 = Ws::connect(&app, &s1).await;

    // Amy comes online and is given the waiting conversation.
    let mut amy_ws = Ws::connect(&app, &amy).await;
    let assigned = amy_ws.next_of("assigned").await;
    assert_eq!(
        (assigned["conversation_id"].clone(), assigned["agent_id"].as_i64()),
        (first["id"].clone(), Some(amy_id))
    );
    assert_eq!(shopper1.next_of("assigned").await["agent_id"], amy_id);
    let _bob_ws = Ws::connect(&app, &bob).await;
    online(&app, shop_id, 2).await;

    // Bob holds none, Amy one: Bob gets the next; then a tie goes to the lower id.
    assert_eq!(open(&app, &s2, shop_id).await["agent_id"], bob_id);
    let third = open(&app, &s3, shop_id).await;
    assert_eq!(third["agent_id"], amy_id.min(bob_id));
    // Opening again answers the live conversation.
    let again =
        app.call("POST", "/api/chat/conversations", Some(&s1), Some(json!({"shop_id": shop_id}))).await;
    assert_eq!((again.status, again.body["id"].clone()), (StatusCode::OK, first["id"].clone()));
}

#[actix_web::test]
async fn an_agent_at_the_cap_leaves_shoppers_queued_until_a_conversation_closes_or_moves() {
    let (mut settings, db_name) = fresh_settings().await;
    settings.chat.agent_cap = 1;
    let app = spawn_app_with(settings, db_name).await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner, staff) = shop_with_agents(&app, &admin, "Cap Shop", &["cara", "dan"]).await;
    let [(cara_id, cara), (dan_id, dan)] = [staff[0].clone(), staff[1].clone()];
    let (_, s1) = app.member("shopper1").await;
    let (_, s2) = app.member("shopper2").await;
    let mut cara_ws = Ws::connect(&app, &cara).await;
    online(&app, shop_id, 1).await;

    let first = open(&app, &s1, shop_id).await;
    assert_eq!(first["agent_id"], cara_id);
    assert_eq!(cara_ws.next_of("assigned").await["conversation_id"], first["id"]);
    let second = open(&app, &s2, shop_id).await;
    assert_eq!(second["status"], "queued");

    // Closing the first frees Cara's slot for the queued one.
    let close = format!("/api/merchant/shops/{shop_id}/chat/conversations/{}/close", first["id"]);
    let reply = app.call("POST", &close, Some(&cara), None).await;
    assert_eq!((reply.status, reply.body["status"].as_str()), (StatusCode::OK, Some("closed")));
    assert_eq!(app.call("POST", &close, Some(&cara), None).await.status, StatusCode::CONFLICT);
    let assigned = cara_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation_id"], second["id"]);

    // A transfer needs the colleague online and below the cap.
    let transfer = format!("/api/merchant/shops/{shop_id}/chat/conversations/{}/transfer", second["id"]);
    let reply = app.call("POST", &transfer, Some(&owner), Some(json!({"agent_id": dan_id}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let mut dan_ws = Ws::connect(&app, &dan).await;
    online(&app, shop_id, 2).await;
    let reply = app.call("POST", &transfer, Some(&owner), Some(json!({"agent_id": dan_id}))).await;
    assert_eq!(
        (reply.status, reply.body["agent_id"].as_i64()),
        (StatusCode::OK, Some(dan_id)),
        "{:?}",
        reply.body
    );
    assert_eq!(dan_ws.next_of("assigned").await["conversation_id"], second["id"]);
    // Cara is no longer a member.
    let mut cara_ws = Ws::connect(&app, &cara).await;
    let id = second["id"].as_i64().unwrap();
    cara_ws
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "x", "kind": "text",
                        "payload": {"text": "still here?"}}))
        .await;
    assert_eq!(cara_ws.next_of("error").await["code"], "forbidden");
    // Someone not on the shop's chat staff can be neither target nor actor.
    let (stranger_id, stranger) = app.member("stranger").await;
    let reply = app.call("POST", &transfer, Some(&owner), Some(json!({"agent_id": stranger_id}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.call("POST", &transfer, Some(&stranger), Some(json!({"agent_id": cara_id}))).await.status,
        StatusCode::FORBIDDEN
    );
}

/// A shop with one online agent and a shopper's open conversation:
/// (conversation id, shopper id, shopper token, agent id, agent token).
async fn chatting(app: &TestApp) -> (i64, i64, String, i64, String) {
    let (_, admin) = app.admin("root").await;
    let (shop_id, _, staff) = shop_with_agents(app, &admin, "Noodle Bar", &["agent"]).await;
    let (agent_id, agent) = staff[0].clone();
    let _warm = Ws::connect(app, &agent).await;
    online(app, shop_id, 1).await;
    let (shopper_id, shopper) = app.member("shopper").await;
    let conversation = open(app, &shopper, shop_id).await;
    assert_eq!(conversation["agent_id"], agent_id);
    (conversation["id"].as_i64().unwrap(), shopper_id, shopper, agent_id, agent)
}

#[actix_web::test]
async fn a_message_is_acked_once_stored_delivered_live_and_a_retry_is_not_duplicated() {
    let app = spawn_app().await;
    let (id, shopper_id, shopper, _, agent) = chatting(&app).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;

    let ack = shopper_ws.say(id, "c-1", "Is the green tea in stock?").await;
    assert_eq!(
        (ack["conversation_id"].as_i64(), ack["seq"].as_i64(), ack["client_msg_id"].as_str()),
        (Some(id), Some(1), Some("c-1"))
    );
    // Acknowledged means stored.
    let client = app.db.get().await.unwrap();
    let stored: i64 = client
        .query_one("SELECT id FROM messages WHERE conversation_id = $1 AND seq = 1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ack["id"].as_i64(), Some(stored));

    let delivered = agent_ws.next_of("deliver").await;
    assert_eq!((delivered["seq"].as_i64(), delivered["sender_id"].as_i64()), (Some(1), Some(shopper_id)));
    assert_eq!(delivered["payload"]["text"], "Is the green tea in stock?");

    // The same client id again: the first ack, nothing new stored or delivered.
    let retry = shopper_ws.say(id, "c-1", "Is the green tea in stock?").await;
    assert_eq!(retry, ack);
    assert_eq!(app.count("messages").await, 1);
    agent_ws.none_of("deliver").await;

    // Cards and images travel as structured payloads; bad ones are refused.
    shopper_ws
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "c-2", "kind": "product_card",
                           "payload": {"product_id": 7, "title": "Green tea"}}))
        .await;
    assert_eq!(shopper_ws.next_of("ack").await["seq"], 2);
    assert_eq!(agent_ws.next_of("deliver").await["kind"], "product_card");
    shopper_ws
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "c-3", "kind": "image",
                           "payload": {"url": "not a url"}}))
        .await;
    let error = shopper_ws.next_of("error").await;
    assert_eq!(
        (error["code"].as_str(), error["client_msg_id"].as_str()),
        (Some("validation_failed"), Some("c-3"))
    );
    // A NUL (valid JSON, refused by jsonb) is refused up front: stored in
    // a batch, it would have failed every message committed with it.
    for payload in [json!({"text": "a\u{0}b"}), json!({"text": "ok", "te\u{0}xt": 1})] {
        shopper_ws
            .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "c-nul", "kind": "text",
                         "payload": payload}))
            .await;
        let error = shopper_ws.next_of("error").await;
        assert_eq!(error["code"], "validation_failed", "{error}");
    }
    assert_eq!(shopper_ws.say(id, "c-4", "still here, backslash \\u0000 is text").await["seq"], 3);
    assert_eq!(agent_ws.next_of("deliver").await["payload"]["text"], "still here, backslash \\u0000 is text");
    shopper_ws.send(json!({"type": "shout"})).await;
    assert_eq!(shopper_ws.next_of("error").await["code"], "invalid_body");
    shopper_ws.framed.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(shopper_ws.next_of("error").await["code"], "malformed_json");

    // History pages by seq.
    let path = format!("/api/chat/conversations/{id}/messages?after_seq=1&limit=10");
    let reply = app.call("GET", &path, Some(&agent), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body.as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let reply =
        app.call("GET", &format!("/api/chat/conversations/{id}/messages?limit=0"), Some(&agent), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// Whether the shard owning `id` holds it in memory.
async fn held(app: &TestApp, id: i64) -> bool {
    let held = app.state.as_ref().unwrap().chat.hub.shard(id).send(actors::chat::shard::Held).await.unwrap();
    held.contains(&id)
}

#[actix_web::test]
async fn a_members_live_conversations_are_loaded_when_they_connect_and_closed_ones_are_not() {
    let app = spawn_app().await;
    let (closed, _, shopper, _, agent) = chatting(&app).await;
    let shop_id: i64 = app
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT shop_id FROM conversations WHERE id = $1", &[&closed])
        .await
        .unwrap()
        .get(0);
    let close = format!("/api/merchant/shops/{shop_id}/chat/conversations/{closed}/close");
    let reply = app.call("POST", &close, Some(&agent), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let live = open(&app, &shopper, shop_id).await["id"].as_i64().unwrap();
    assert!(!held(&app, live).await && !held(&app, closed).await, "nothing has used them yet");

    // Both are found by the one query a connection makes; once the live
    // one is loaded, the closed one would have been too.
    let _shopper_ws = Ws::connect(&app, &shopper).await;
    let mut warmed = false;
    for _ in 0..100 {
        if held(&app, live).await {
            warmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(warmed, "connecting loads the member's live conversation before its first message");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held(&app, closed).await, "a closed conversation is not loaded");
}

#[actix_web::test]
async fn a_retry_the_shard_forgot_is_found_in_the_database_and_not_stored_again() {
    // No acks remembered: every retry of a committed send reaches the store.
    let (mut settings, db_name) = fresh_settings().await;
    settings.chat.dedup_window = 0;
    let app = spawn_app_with(settings, db_name).await;
    let (id, _, shopper, _, agent) = chatting(&app).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    let first = shopper_ws.say(id, "r-1", "first").await;
    agent_ws.next_of("deliver").await;

    // The retry fails the plain insert on the client id; the batch is
    // written again skipping it, and the stored one is answered.
    // The very same ack (the shard stamps messages in microseconds, as
    // Postgres stores them).
    assert_eq!(shopper_ws.say(id, "r-1", "first").await, first);
    let next = shopper_ws.say(id, "r-2", "second").await;
    assert_eq!(next["seq"], 3, "the retry drew seq 2, left unused");
    assert_eq!(app.count("messages").await, 2);
    assert_eq!(agent_ws.next_of("deliver").await["client_msg_id"], "r-2");
}

#[actix_web::test]
async fn a_reconnecting_client_gets_exactly_the_messages_it_missed() {
    let app = spawn_app().await;
    let (id, _, shopper, _, agent) = chatting(&app).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    for n in 1..=2 {
        shopper_ws.say(id, &format!("m{n}"), &format!("message {n}")).await;
        assert_eq!(agent_ws.next_of("deliver").await["seq"], n);
    }
    drop(agent_ws);
    for n in 3..=5 {
        shopper_ws.say(id, &format!("m{n}"), &format!("message {n}")).await;
    }

    let mut agent_ws = Ws::connect(&app, &agent).await;
    let (seqs, done) = resumed(&mut agent_ws, id, 2).await;
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!((done["last_seq"].as_i64(), done["more"].as_bool()), (Some(5), Some(false)));
    // Live again afterwards, and nothing twice.
    shopper_ws.say(id, "m6", "message 6").await;
    assert_eq!(agent_ws.next_of("deliver").await["seq"], 6);
    agent_ws.none_of("deliver").await;
}

#[actix_web::test]
async fn read_receipts_and_typing_reach_the_other_member() {
    let app = spawn_app().await;
    let (id, shopper_id, shopper, agent_id, agent) = chatting(&app).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    shopper_ws.say(id, "r1", "hello").await;
    shopper_ws.say(id, "r2", "anyone?").await;

    agent_ws.send(json!({"type": "typing", "conversation_id": id})).await;
    let typing = shopper_ws.next_of("typing").await;
    assert_eq!((typing["conversation_id"].as_i64(), typing["user_id"].as_i64()), (Some(id), Some(agent_id)));

    agent_ws.send(json!({"type": "read", "conversation_id": id, "seq": 99})).await;
    let read = shopper_ws.next_of("read").await;
    // Clamped to the last message.
    assert_eq!((read["user_id"].as_i64(), read["seq"].as_i64()), (Some(agent_id), Some(2)));
    let mine = app.call("GET", &format!("/api/chat/conversations/{id}"), Some(&agent), None).await;
    assert_eq!((mine.body["last_seq"].as_i64(), mine.body["last_read_seq"].as_i64()), (Some(2), Some(2)));
    let list = app.call("GET", "/api/chat/conversations", Some(&shopper), None).await;
    assert_eq!(
        (list.body["total"].as_i64(), list.body["items"][0]["shopper_id"].as_i64()),
        (Some(1), Some(shopper_id))
    );
}

#[actix_web::test]
async fn only_members_may_read_or_send() {
    let app = spawn_app().await;
    let (id, _, _, _, _) = chatting(&app).await;
    let (_, outsider) = app.member("outsider").await;

    let reply =
        app.call("GET", &format!("/api/chat/conversations/{id}/messages"), Some(&outsider), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(
        app.call("GET", &format!("/api/chat/conversations/{id}"), Some(&outsider), None).await.status,
        StatusCode::NOT_FOUND
    );
    let mut ws = Ws::connect(&app, &outsider).await;
    ws.send(json!({"type": "send", "conversation_id": id, "client_msg_id": "x", "kind": "text", "payload": {"text": "hi"}})).await;
    assert_eq!(ws.next_of("error").await["code"], "forbidden");
    ws.send(json!({"type": "typing", "conversation_id": id})).await;
    assert_eq!(ws.next_of("error").await["code"], "forbidden");
    ws.send(json!({"type": "resume", "conversations": [{"conversation_id": id, "last_seq": 0}]})).await;
    assert_eq!(ws.next_of("error").await["code"], "not_found");
    assert_eq!(app.count("messages").await, 0);

    // No token, no connection.
    let url = format!("{}/api/chat/ws", app.address.replacen("http", "ws", 1));
    assert!(awc::Client::new().ws(url).connect().await.is_err());
}

#[actix_web::test]
async fn a_client_too_slow_to_drain_its_queue_is_disconnected() {
    let (mut settings, db_name) = fresh_settings().await;
    settings.chat.outbound_capacity = 8;
    let app = spawn_app_with(settings, db_name).await;
    let (id, _, shopper, _, agent) = chatting(&app).await;
    // The agent connects and stops reading.
    let mut slow = Ws::connect(&app, &agent).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    let text = "x".repeat(1900);
    let sent = 3000;
    for n in 0..sent {
        shopper_ws
            .send(json!({"type": "send", "conversation_id": id, "client_msg_id": format!("s{n}"),
                               "kind": "text", "payload": {"text": text}}))
            .await;
        if n % 50 == 49 {
            // Keep within the in-flight limit.
            for _ in 0..50 {
                shopper_ws.next_of("ack").await;
            }
        }
    }
    // Reading now finds the close (1008) long before all of them.
    let mut delivered = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.framed.next()).await {
            Ok(Some(Ok(Frame::Text(_)))) => delivered += 1,
            Ok(Some(Ok(Frame::Close(reason)))) => {
                assert_eq!(reason.map(|r| r.code), Some(awc::ws::CloseCode::Policy));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the slow connection was not closed ({delivered} delivered)"),
        }
    }
    assert!(delivered < sent, "all {delivered} delivered");
    // Nothing was lost for the record: history has every message.
    let reply = app
        .call(
            "GET",
            &format!("/api/chat/conversations/{id}/messages?before_seq=999999&limit=1"),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(reply.body[0]["seq"], sent);
}

#[actix_web::test]
async fn a_complaint_is_escalated_taken_and_decided_with_every_change_recorded() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "olga", "Olga's Outlet").await;
    let (shopper_id, shopper) = app.member("pat").await;
    let (_, stranger) = app.member("quinn").await;

    let body = json!({"kind": "complaint", "shop_id": shop_id, "subject": "Broken teapot",
                      "description": "It arrived in pieces and the shop will not answer."});
    let reply = app.call("POST", "/api/cases", Some(&shopper), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let case = reply.body;
    let case_id = case["id"].as_i64().unwrap();
    let thread = case["conversation_id"].as_i64().unwrap();
    assert_eq!((case["status"].as_str(), case["filed_by"].as_i64()), (Some("open"), Some(shopper_id)));
    let mut bad = body.clone();
    bad["subject"] = json!("");
    assert_eq!(
        app.call("POST", "/api/cases", Some(&shopper), Some(bad.clone())).await.code(),
        "validation_failed"
    );
    bad["subject"] = json!("Broken\u{0}teapot");
    assert_eq!(app.call("POST", "/api/cases", Some(&shopper), Some(bad)).await.code(), "validation_failed");
    assert_eq!(
        app.call("POST", "/api/cases", Some(&owner), Some(body)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The shop answers in the thread; outsiders see nothing.
    let mut owner_ws = Ws::connect(&app, &owner).await;
    owner_ws.say(thread, "o1", "Please send a photo.").await;
    let cases = format!("/api/cases/{case_id}");
    assert_eq!(app.call("GET", &cases, Some(&stranger), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call("POST", &format!("{cases}/escalate"), Some(&stranger), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("GET", "/api/system/cases", Some(&shopper), None).await.status,
        StatusCode::FORBIDDEN
    );
    let reply =
        app.call("GET", &format!("/api/chat/conversations/{thread}/messages"), Some(&stranger), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Escalated: in the operators' queue; an operator reads the thread, takes and decides it.
    let reply = app.call("POST", &format!("{cases}/escalate"), Some(&shopper), None).await;
    assert_eq!(reply.body["status"], "escalated");
    assert_eq!(
        app.call("POST", &format!("{cases}/escalate"), Some(&shopper), None).await.code(),
        "invalid_state"
    );
    let queue = app.call("GET", "/api/system/cases", Some(&admin), None).await;
    assert_eq!(queue.body["items"][0]["id"], case_id);
    let history =
        app.call("GET", &format!("/api/chat/conversations/{thread}/messages"), Some(&admin), None).await;
    assert_eq!(history.body[0]["payload"]["text"], "Please send a photo.");
    let reply = app.call("POST", &format!("/api/system/cases/{case_id}/take"), Some(&admin), None).await;
    assert_eq!(reply.body["status"], "in_arbitration");
    let mut admin_ws = Ws::connect(&app, &admin).await;
    admin_ws.say(thread, "a1", "I am looking into it.").await;
    assert_eq!(owner_ws.next_of("deliver").await["payload"]["text"], "I am looking into it.");
    let decide = format!("/api/system/cases/{case_id}/decision");
    let reply =
        app.call("POST", &decide, Some(&admin), Some(json!({"decision": "maybe", "note": "x"}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app
        .call(
            "POST",
            &decide,
            Some(&admin),
            Some(json!({"decision": "resolved_for_shopper", "note": "Refund in full."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        (reply.body["status"].as_str(), reply.body["decision"].as_str()),
        (Some("decided"), Some("resolved_for_shopper"))
    );
    let events: Vec<&str> =
        reply.body["events"].as_array().unwrap().iter().map(|e| e["to_status"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["open", "escalated", "in_arbitration", "decided"]);
    assert_eq!(
        app.call("POST", &decide, Some(&admin), Some(json!({"decision": "dismissed", "note": "again"})))
            .await
            .code(),
        "invalid_state"
    );
    // The thread is closed now.
    assert_eq!(owner_ws.next_of("closed").await["conversation_id"], thread);
    owner_ws.send(json!({"type": "send", "conversation_id": thread, "client_msg_id": "o2", "kind": "text", "payload": {"text": "But"}})).await;
    assert_eq!(owner_ws.next_of("error").await["code"], "invalid_state");
    let mine = app.call("GET", "/api/cases", Some(&owner), None).await;
    assert_eq!(mine.body["total"], 1);
    // Only the filer withdraws.
    let second = app
        .call(
            "POST",
            "/api/cases",
            Some(&shopper),
            Some(json!({"kind": "appeal", "shop_id": shop_id,
              "subject": "Penalty", "description": "Please review."})),
        )
        .await;
    let withdraw = format!("/api/cases/{}/withdraw", second.body["id"]);
    assert_eq!(app.call("POST", &withdraw, Some(&owner), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call("POST", &withdraw, Some(&shopper), None).await.body["status"], "withdrawn");
}

/// Two nodes of one chat cluster on one database and Redis prefix.
async fn two_nodes() -> (TestApp, TestApp) {
    let (mut settings, db_name) = fresh_settings().await;
    settings.chat.cluster = true;
    settings.chat.owner_ttl_ms = 1500;
    let a = spawn_app_with(settings.clone(), db_name.clone()).await;
    let b = spawn_app_with(settings, db_name).await;
    (a, b)
}

/// Messages of a resume, until its `resumed` frame: (seqs, resumed frame).
async fn resumed(ws: &mut Ws, id: i64, last_seq: i64) -> (Vec<i64>, Value) {
    ws.send(json!({"type": "resume", "conversations": [{"conversation_id": id, "last_seq": last_seq}]}))
        .await;
    let mut seqs = Vec::new();
    loop {
        let frame = ws.next_within(Duration::from_secs(10)).await.expect("frame");
        match frame["type"].as_str() {
            Some("deliver") => seqs.push(frame["seq"].as_i64().unwrap()),
            Some("resumed") => return (seqs, frame),
            _ => {}
        }
    }
}

#[actix_web::test]
async fn across_two_nodes_routing_delivery_dedup_presence_and_resume_work_as_on_one() {
    let (a, b) = two_nodes().await;
    let (_, admin) = a.admin("root").await;
    let (shop_id, _, staff) = shop_with_agents(&a, &admin, "Noodle Bar", &["agent"]).await;
    let (agent_id, agent) = staff[0].clone();

    // The agent is online on node B only; a conversation opened on node A goes to them.
    let mut agent_ws = Ws::connect(&b, &agent).await;
    online(&a, shop_id, 1).await;
    let (shopper_id, shopper) = a.member("shopper").await;
    let conversation = open(&a, &shopper, shop_id).await;
    assert_eq!(
        (conversation["agent_id"].as_i64(), conversation["status"].as_str()),
        (Some(agent_id), Some("open"))
    );
    let id = conversation["id"].as_i64().unwrap();
    assert_eq!(agent_ws.next_of("assigned").await["conversation_id"], id);

    // Shopper on A, agent on B: each hears the other live, in order.
    let mut shopper_ws = Ws::connect(&a, &shopper).await;
    let first = shopper_ws.say(id, "s1", "hello from node A").await;
    let delivered = agent_ws.next_of("deliver").await;
    assert_eq!((delivered["seq"].as_i64(), delivered["sender_id"].as_i64()), (Some(1), Some(shopper_id)));
    assert_eq!(agent_ws.say(id, "g1", "hello from node B").await["seq"], 2);
    assert_eq!(shopper_ws.next_of("deliver").await["seq"], 2);
    for n in 3..=4 {
        shopper_ws.say(id, &format!("s{n}"), "more").await;
    }
    assert_eq!(agent_ws.next_of("deliver").await["seq"], 3);
    assert_eq!(agent_ws.next_of("deliver").await["seq"], 4);

    // Node B forwarded the agent's send to node A, which owns the conversation.
    assert!(b.state.as_ref().unwrap().metrics.chat_forwarded.get() >= 1);
    assert_eq!(a.state.as_ref().unwrap().metrics.chat_forwarded.get(), 0);

    // A retry of s1 through the other node gets the first ack; nothing new.
    let mut shopper_on_b = Ws::connect(&b, &shopper).await;
    assert_eq!(shopper_on_b.say(id, "s1", "hello from node A").await, first);
    assert_eq!(a.count("messages").await, 4);
    agent_ws.none_of("deliver").await;

    // Read receipts and typing cross too.
    agent_ws.send(json!({"type": "read", "conversation_id": id, "seq": 4})).await;
    let read = shopper_ws.next_of("read").await;
    assert_eq!((read["user_id"].as_i64(), read["seq"].as_i64()), (Some(agent_id), Some(4)));
    agent_ws.send(json!({"type": "typing", "conversation_id": id})).await;
    assert_eq!(shopper_ws.next_of("typing").await["user_id"], agent_id);

    // The shopper drops off node A, misses three, and resumes on node B:
    // exactly the missed ones, then live again, nothing twice.
    drop(shopper_ws);
    drop(shopper_on_b);
    for n in 5..=7 {
        agent_ws.say(id, &format!("g{n}"), "while you were away").await;
    }
    let mut shopper_ws = Ws::connect(&b, &shopper).await;
    let (seqs, done) = resumed(&mut shopper_ws, id, 4).await;
    assert_eq!(seqs, vec![5, 6, 7]);
    assert_eq!((done["last_seq"].as_i64(), done["more"].as_bool()), (Some(7), Some(false)));
    agent_ws.say(id, "g8", "welcome back").await;
    assert_eq!(shopper_ws.next_of("deliver").await["seq"], 8);
    shopper_ws.none_of("deliver").await;

    // Presence: the agent also connects on node A (still one agent online),
    // then leaves both nodes; the shopper, on node B, hears them go offline.
    let agent_on_a = Ws::connect(&a, &agent).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rs_cms::chat::service::online_agents(b.state.as_ref().unwrap(), shop_id).await.unwrap(),
        vec![agent_id]
    );
    drop(agent_ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rs_cms::chat::service::online_agents(b.state.as_ref().unwrap(), shop_id).await.unwrap(),
        vec![agent_id]
    );
    drop(agent_on_a);
    let presence = shopper_ws.next_of("presence").await;
    assert_eq!((presence["user_id"].as_i64(), presence["online"].as_bool()), (Some(agent_id), Some(false)));
    online(&b, shop_id, 0).await;
}

#[actix_web::test]
async fn a_node_stopping_cleanly_gives_its_conversations_back_at_once() {
    let (mut settings, db_name) = fresh_settings().await;
    settings.chat.cluster = true;
    settings.chat.owner_ttl_ms = 30_000; // so only a hand-back, not a lapse, frees it here
    let a = spawn_app_with(settings.clone(), db_name.clone()).await;
    let b = spawn_app_with(settings, db_name).await;
    let (id, _, shopper, _, _) = chatting(&a).await;
    let mut on_a = Ws::connect(&a, &shopper).await;
    assert_eq!(on_a.say(id, "s1", "first").await["seq"], 1);
    let kv = &b.state.as_ref().unwrap().kv;
    let owner_key = kv.key(format_args!("chat:owner:{id}"));
    let owned =
        || async { redis::cmd("EXISTS").arg(&owner_key).query_async::<bool>(&mut kv.conn()).await.unwrap() };
    assert!(owned().await, "node A owns the conversation it served");

    a.stop().await;
    let mut given_back = false;
    for _ in 0..60 {
        if !owned().await {
            given_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(given_back, "a clean stop hands the lease back instead of letting it run 30 s");
    let mut on_b = Ws::connect(&b, &shopper).await;
    assert_eq!(on_b.say(id, "s2", "second").await["seq"], 2, "node B serves it at once");
}

#[actix_web::test]
async fn a_conversation_whose_owner_died_is_refused_for_a_retry_then_taken_over_after_its_lease() {
    let (a, b) = two_nodes().await;
    let (id, _, shopper, _, agent) = chatting(&a).await;
    let mut shopper_ws = Ws::connect(&a, &shopper).await;
    let mut agent_ws = Ws::connect(&b, &agent).await;
    assert_eq!(shopper_ws.say(id, "s1", "first").await["seq"], 1);
    assert_eq!(agent_ws.next_of("deliver").await["seq"], 1);

    // Another node takes the conversation over and dies at once: node A
    // notices at its next renewal and forwards to the dead owner, which
    // never answers, so the send is refused for a retry and nothing stored.
    let kv = &a.state.as_ref().unwrap().kv;
    let owner_key = kv.key(format_args!("chat:owner:{id}"));
    let _: () = redis::cmd("SET")
        .arg(&owner_key)
        .arg("dead-node")
        .arg("PX")
        .arg(2500)
        .query_async(&mut kv.conn())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    shopper_ws
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "s2", "kind": "text",
                     "payload": {"text": "second"}}))
        .await;
    let refused = shopper_ws.next_of("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_msg_id"].as_str()),
        (Some("unavailable"), Some("s2"))
    );
    assert_eq!(a.count("messages").await, 1);

    // The dead owner's lease runs out (the refusal came 2 s after the
    // send, past it): the retry is served, once.
    assert_eq!(shopper_ws.say(id, "s2", "second").await["seq"], 2);
    assert_eq!(agent_ws.next_of("deliver").await["seq"], 2);
    agent_ws.none_of("deliver").await;
    assert_eq!(a.count("messages").await, 2);
}

#[actix_web::test]
async fn a_live_message_after_a_gap_comes_after_the_missed_ones_from_the_database() {
    let app = spawn_app().await;
    let (id, shopper_id, shopper, _, agent) = chatting(&app).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    shopper_ws.say(id, "m1", "one").await;
    assert_eq!(agent_ws.next_of("deliver").await["seq"], 1);

    // Seqs 2 and 3 are stored but never delivered live to the agent (as
    // when their events are lost on the way from another node).
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, kind, payload)
             SELECT $1, s, $2, 'lost-' || s, 'text', jsonb_build_object('text', 'lost ' || s)
             FROM generate_series(2, 3) AS s",
            &[&id, &shopper_id],
        )
        .await
        .unwrap();
    app.state.as_ref().unwrap().chat.forget(id);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The next live message reaches the agent after the two it missed.
    assert_eq!(shopper_ws.say(id, "m4", "four").await["seq"], 4);
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(agent_ws.next_of("deliver").await["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, vec![2, 3, 4]);
    agent_ws.none_of("deliver").await;
}

#[actix_web::test]
async fn a_seq_taken_by_another_writer_is_refused_for_a_retry_and_the_conversation_reloaded() {
    let app = spawn_app().await;
    let (id, shopper_id, shopper, agent_id, agent) = chatting(&app).await;
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    assert_eq!(shopper_ws.say(id, "m1", "one").await["seq"], 1);

    // A second writer (an owner whose lease this node's shard missed)
    // stores seq 2 behind the shard's back.
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, kind, payload)
             VALUES ($1, 2, $2, 'elsewhere', 'text', '{\"text\": \"from the other writer\"}')",
            &[&id, &agent_id],
        )
        .await
        .unwrap();

    // The shard's seq 2 collides: refused for a retry, nothing of it stored.
    shopper_ws
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "m2", "kind": "text",
                     "payload": {"text": "two"}}))
        .await;
    let refused = shopper_ws.next_of("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_msg_id"].as_str()),
        (Some("unavailable"), Some("m2"))
    );
    // The retry goes after the other writer's message.
    assert_eq!(shopper_ws.say(id, "m2", "two").await["seq"], 3);
    let seqs: Vec<i64> = client
        .query(
            "SELECT seq FROM messages WHERE conversation_id = $1 AND sender_id = $2 ORDER BY seq",
            &[&id, &shopper_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(seqs, vec![1, 3]);
    // The agent gets 1, then 2 (filled from the database) and 3.
    let mut delivered = Vec::new();
    for _ in 0..3 {
        delivered.push(agent_ws.next_of("deliver").await["seq"].as_i64().unwrap());
    }
    assert_eq!(delivered, vec![1, 2, 3]);
}

#[actix_web::test]
async fn a_write_with_one_seq_taken_stores_none_of_its_conversation_and_all_of_the_others() {
    use actors::chat::{ChatWrite, ChatWritten, MessageDraft, MessageKind};
    use actors::writer::BatchStore;
    use std::sync::Arc;

    let app = spawn_app().await;
    let draft = |conversation_id: i64, seq: i64, client: &str| {
        Arc::new(MessageDraft {
            conversation_id,
            seq,
            sender_id: 7,
            client_msg_id: client.into(),
            kind: MessageKind::Text,
            payload: r#"{"text": "hi"}"#.into(),
            created_at: std::time::SystemTime::now(),
        })
    };
    let client = app.db.get().await.unwrap();
    // Another writer holds seq 2 of conversation 1.
    client
        .execute(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, kind, payload)
             VALUES (1, 2, 8, 'other', 'text', '{\"text\": \"other\"}')",
            &[],
        )
        .await
        .unwrap();
    let store = rs_cms::chat::store::PgChat::new(app.db.clone());
    let written = store
        .write_batch(&[
            ChatWrite::Messages(vec![draft(1, 2, "a"), draft(1, 3, "b")]),
            ChatWrite::Messages(vec![draft(2, 1, "c")]),
        ])
        .await
        .unwrap();
    assert_eq!(written[0], ChatWritten::SeqTaken);
    assert!(matches!(&written[1], ChatWritten::Messages(m) if m.len() == 1 && !m[0].duplicate));
    let stored: Vec<(i64, i64, String)> = client
        .query("SELECT conversation_id, seq, client_msg_id FROM messages ORDER BY 1, 2", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(stored, vec![(1, 2, "other".to_owned()), (2, 1, "c".to_owned())]);
}

#[actix_web::test]
async fn staff_removed_from_a_shop_lose_its_conversations_and_get_no_new_ones() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner, staff) = shop_with_agents(&app, &admin, "Dumpling Den", &["amy", "bob"]).await;
    let [(amy_id, amy), (bob_id, bob)] = [staff[0].clone(), staff[1].clone()];
    let mut amy_ws = Ws::connect(&app, &amy).await;
    online(&app, shop_id, 1).await;
    let (_, shopper) = app.member("pat").await;
    let conversation = open(&app, &shopper, shop_id).await;
    let id = conversation["id"].as_i64().unwrap();
    assert_eq!(conversation["agent_id"], amy_id);
    assert_eq!(amy_ws.say(id, "a-1", "Hello, how can I help?").await["seq"], 1);
    // An earlier conversation of hers, closed.
    let (_, earlier_shopper) = app.member("ola").await;
    let earlier = open(&app, &earlier_shopper, shop_id).await["id"].as_i64().unwrap();
    let close = format!("/api/merchant/shops/{shop_id}/chat/conversations/{earlier}/close");
    assert_eq!(app.call("POST", &close, Some(&amy), None).await.status, StatusCode::OK);

    // A role change that keeps chat.serve changes nothing for routing.
    let path = format!("/api/merchant/shops/{shop_id}/staff/{amy_id}");
    let manager = app.call("PUT", &path, Some(&owner), Some(json!({"role": "manager"}))).await;
    assert_eq!(manager.status, StatusCode::OK, "{:?}", manager.body);
    online(&app, shop_id, 1).await;

    // Amy is removed while still connected; Bob comes online.
    assert_eq!(app.call("DELETE", &path, Some(&owner), None).await.status, StatusCode::NO_CONTENT);
    let earlier_history = format!("/api/chat/conversations/{earlier}/messages");
    assert_eq!(app.call("GET", &earlier_history, Some(&amy), None).await.code(), "not_found");
    let mut bob_ws = Ws::connect(&app, &bob).await;
    let assigned = bob_ws.next_of("assigned").await;
    assert_eq!(
        (assigned["conversation_id"].as_i64(), assigned["agent_id"].as_i64()),
        (Some(id), Some(bob_id))
    );

    let history = format!("/api/chat/conversations/{id}/messages");
    assert_eq!(app.call("GET", &history, Some(&amy), None).await.code(), "not_found");
    amy_ws
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "a-2", "kind": "text",
                     "payload": {"text": "still here?"}}))
        .await;
    assert_eq!(amy_ws.next_of("error").await["code"], "forbidden");
    let moved = app.call("GET", &format!("/api/chat/conversations/{id}"), Some(&shopper), None).await;
    assert_eq!(moved.body["agent_id"], bob_id, "the conversation went back to the queue and on to Bob");
    online(&app, shop_id, 1).await;
    let (_, other) = app.member("quinn").await;
    assert_eq!(open(&app, &other, shop_id).await["agent_id"], bob_id, "nothing new is routed to Amy");
}

#[actix_web::test]
async fn shoppers_routed_after_their_agent_connected_hear_the_agent_go_offline() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, _, staff) = shop_with_agents(&app, &admin, "Bao Bar", &["amy"]).await;
    let (amy_id, amy) = staff[0].clone();
    let amy_ws = Ws::connect(&app, &amy).await;
    online(&app, shop_id, 1).await;
    let (_, shopper) = app.member("pat").await;
    assert_eq!(open(&app, &shopper, shop_id).await["agent_id"], amy_id);
    let mut shopper_ws = Ws::connect(&app, &shopper).await;

    drop(amy_ws);
    let presence = shopper_ws.next_of("presence").await;
    assert_eq!((presence["user_id"].as_i64(), presence["online"].as_bool()), (Some(amy_id), Some(false)));
}

#[actix_web::test]
async fn an_agent_of_two_shops_dropping_at_once_is_not_left_online() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (first, _, staff) = shop_with_agents(&app, &admin, "Congee Corner", &["amy"]).await;
    let (_, amy) = staff[0].clone();
    let (second, owner) = app.open_shop(&admin, "second_owner", "Second Shop").await;
    let path = format!("/api/merchant/shops/{second}/staff");
    let reply = app
        .call("POST", &path, Some(&owner), Some(json!({"login": "amy", "role": "customer_service"})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let reply = app.call("POST", &format!("/api/shops/{second}/invitation"), Some(&amy), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    for _ in 0..10 {
        drop(Ws::connect(&app, &amy).await);
    }
    for shop_id in [first, second] {
        online(&app, shop_id, 0).await;
        // And stays so: no late "online" lands after the last "offline".
        tokio::time::sleep(Duration::from_millis(300)).await;
        online(&app, shop_id, 0).await;
    }
}

#[actix_web::test]
async fn a_live_message_never_overtakes_the_older_ones_a_reconnecting_clients_resume_fetches() {
    let app = spawn_app().await;
    let (id, _, shopper, _, agent) = chatting(&app).await;
    let mut agent_ws = Ws::connect(&app, &agent).await;
    // Two messages while the shopper is away.
    agent_ws.say(id, "a-1", "Your order shipped").await;
    agent_ws.say(id, "a-2", "Tracking: SF123").await;

    // The shopper reconnects; a third message is sent before its resume.
    let mut shopper_ws = Ws::connect(&app, &shopper).await;
    agent_ws.say(id, "a-3", "Anything else?").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    shopper_ws
        .send(json!({"type": "resume", "conversations": [{"conversation_id": id, "last_seq": 0}]}))
        .await;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        seqs.push(shopper_ws.next_of("deliver").await["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, [1, 2, 3], "in order, each once");
    shopper_ws.none_of("deliver").await;
}
